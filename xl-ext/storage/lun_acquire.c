/*
 * lun_acquire.c - a domain about to start on this host takes its shared iSCSI LUN (lun.h).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/hostid.h"
#include "xl-ext/storage/iscsi.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/storage/owner.h"

#define ACQUIRE_TIMEOUT_S 20

int lun_acquire_for_start(const struct disk_info *d, const char *domain, int kernel,
                          const struct lun_choice_env *env)
{
	char target[LUN_TARGET_MAX], host[128], initiator[ISCSI_INITIATOR_MAX];
	enum lun_path path = LUN_PATH_LIBISCSI;
	struct own_machine m;
	struct own_view v;
	struct lun *lun = NULL;
	uint64_t key = 0;
	int rc;

	rc = lun_choose(d, kernel, 1, env, target, &path);
	if (!rc)
		rc = hostid_local(host, sizeof(host), &key);
	if (!rc)
		rc = iscsi_initiator_name(host, initiator, sizeof(initiator));
	if (!rc)
		rc = lun_open(target, initiator, ACQUIRE_TIMEOUT_S, &lun);
	if (rc) {
		log_error("domain %s: disk %s ('%s'): cannot open its LUN to take it for host %s: "
		          "%s; not started",
		          domain, d->vdev, d->spec, host[0] ? host : "?", err_str(rc));
		return rc;
	}
	rc = own_init(&m, OWN_FLOW_ACQUIRE, key, 0);
	if (!rc)
		rc = own_drive(&m, lun_pr_execute, lun);
	if (rc && lun_pr_read(lun, &v) == 0 && v.reserved && v.holder != key) {
		log_error("domain %s: disk %s: LUN %s is reserved by key 0x%016" PRIx64
		          ", not this host's (%s, 0x%016" PRIx64 "): the host holding it may run "
		          "the guest, which must never run twice; not started. If that host is "
		          "dead, fence it first (haagent does; by hand: xl-ext pr %s register "
		          "preempt 0x%016" PRIx64 ")",
		          domain, d->vdev, lun_name(lun), v.holder, host, key, target, v.holder);
		rc = ERR_CONFLICT;
	} else if (rc) {
		log_error("domain %s: disk %s: cannot take LUN %s with host %s's key 0x%016" PRIx64
		          ": %s; not started",
		          domain, d->vdev, lun_name(lun), host, key,
		          m.why[0] ? m.why : err_str(rc));
	} else {
		log_info("domain %s: disk %s: LUN %s held by host %s's key 0x%016" PRIx64
		         " (WERO), registered on the %s session the guest writes through",
		         domain, d->vdev, lun_name(lun), host, key, lun_path_name(path));
	}
	lun_close(lun);
	return rc;
}
