/*
 * xen_migrate.c - the xen backend's migration stream: produced by libxl_domain_suspend,
 * consumed by libxl_domain_create_restore, as xl's migrate / migrate-receive do.
 *
 * Pre-copy runs inside libxenguest with Xen's fixed policy; the handshake around the stream
 * (banner, save header, renames, GO, report) is handshake.c's, shared with the sim backend.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/core/hv.h"
#include "xl-ext/precopy/codec.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/iscsiadm.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/xen/xen.h"

#define XEN_ISCSI_LOGIN_TIMEOUT_S 20
#define XEN_WATCH_INTERVAL_US     2000

/* The policy options libxl 4.17 cannot pass to libxenguest: say they are ignored. */
static void warn_unapplied_params(uint32_t domid, const struct mig_params *p)
{
	char what[160] = "";

	if (p->policy.max_iters)
		strncat(what, " --max-iters", sizeof(what) - strlen(what) - 1);
	if (p->policy.downtime_ms)
		strncat(what, " --downtime-ms", sizeof(what) - strlen(what) - 1);
	if (p->policy.max_total_bytes)
		strncat(what, " --max-bytes", sizeof(what) - strlen(what) - 1);
	if (p->bandwidth_Bps)
		strncat(what, " --bandwidth", sizeof(what) - strlen(what) - 1);
	if (p->policy.on_stall != PC_STALL_THROTTLE)
		strncat(what, " --on-stall", sizeof(what) - strlen(what) - 1);
	if (p->policy.kind != PC_POLICY_ADAPTIVE && p->policy.kind != PC_POLICY_XEN)
		strncat(what, " --policy", sizeof(what) - strlen(what) - 1);
	if (p->compress & COMPRESS_ALL)
		strncat(what, " --compress", sizeof(what) - strlen(what) - 1);
	if (p->streams > 1)
		strncat(what, " --streams", sizeof(what) - strlen(what) - 1);
	if (what[0])
		log_warn("domain %u: ignoring%s: with the xen backend pre-copy runs inside "
		         "libxenguest with Xen's own policy (5 iterations or fewer than 50 dirty "
		         "pages), which libxl 4.17 does not let us change",
		         domid, what);
}

/*
 * Beside libxl_domain_suspend, which does not return before the stream ends: a thread that
 * notes when the guest really stopped (the hypervisor reports it shut down for suspend: the
 * start of the downtime, as the sim's engine measures it) and turns a cancel request into
 * libxl_ao_abort, which makes libxenguest's rounds end with ERROR_ABORTED.
 */
struct suspend_watch {
	libxl_ctx *ctx;
	xc_interface *xch; /* NULL: no suspend time, the end of the stream bounds it */
	uint32_t domid;
	volatile sig_atomic_t *cancel;
	atomic_int stop;
	atomic_int aborted;
	_Atomic int64_t t_suspended_us;
};

static void *suspend_watch_run(void *arg)
{
	struct suspend_watch *w = arg;
	xc_dominfo_t info;

	while (!atomic_load(&w->stop)) {
		if (w->cancel && *w->cancel && !atomic_exchange(&w->aborted, 1))
			libxl_ao_abort(w->ctx, NULL); /* the synchronous suspend below */
		if (w->xch && !atomic_load(&w->t_suspended_us) &&
		    xc_domain_getinfo(w->xch, w->domid, 1, &info) == 1 && info.domid == w->domid &&
		    info.shutdown && info.shutdown_reason == LIBXL_SHUTDOWN_REASON_SUSPEND)
			atomic_store(&w->t_suspended_us, loop_now_us());
		usleep(XEN_WATCH_INTERVAL_US);
	}
	return NULL;
}

/*
 * Send domid's memory and state to fd with libxl's live migration (libxl_domain_suspend with
 * LIBXL_SUSPEND_LIVE, plus LIBXL_SUSPEND_DEBUG for --debug). On success the domain is
 * suspended here. ERR_TIMEOUT when the guest did not suspend in time (the caller must not
 * resume it, as xl does not); ERR_CANCELLED when params->cancel was set and libxl aborted;
 * any other error: the caller resumes it.
 */
int xen_send_stream(struct hv *hv, uint32_t domid, int fd, const struct mig_params *params,
                    struct mig_report *report)
{
	struct suspend_watch w = {.ctx = hv->ctx, .domid = domid, .cancel = params->cancel};
	libxl_dominfo di;
	pthread_t thread;
	bool watching;
	int flags = LIBXL_SUSPEND_LIVE;
	int rc;

	warn_unapplied_params(domid, params);
	if (params->debug)
		flags |= LIBXL_SUSPEND_DEBUG;
	w.xch = xen_xc(hv);
	if (report) {
		report->t_start_us = loop_now_us();
		snprintf(report->dirtylog_method, sizeof(report->dirtylog_method), "xen");
		libxl_dominfo_init(&di);
		if (!libxl_domain_info(hv->ctx, &di, domid))
			report->nr_pages = di.current_memkb / 4;
		libxl_dominfo_dispose(&di);
	}
	watching = pthread_create(&thread, NULL, suspend_watch_run, &w) == 0;
	if (!watching)
		log_warn("domain %u: no suspend watcher: the downtime is measured from the end of "
		         "the stream, and Ctrl-C cannot cancel the live rounds",
		         domid);
	rc = libxl_domain_suspend(hv->ctx, domid, fd, flags, NULL);
	if (watching) {
		atomic_store(&w.stop, 1);
		pthread_join(thread, NULL);
	}
	if (report) {
		report->t_stream_end_us = loop_now_us();
		/* the guest stopped when the hypervisor saw it suspended; without that, the end
		 * of the stream bounds it */
		report->t_pause_us = atomic_load(&w.t_suspended_us) ? atomic_load(&w.t_suspended_us)
		                                                    : report->t_stream_end_us;
		report->t_suspended_us = report->t_pause_us;
		report->verified = params->debug;
		report->reason = "libxenguest pre-copy (Xen's policy)";
	}
	if (rc == ERROR_ABORTED && atomic_load(&w.aborted)) {
		log_error("domain %u: migration cancelled: libxl aborted the suspend", domid);
		return ERR_CANCELLED;
	}
	if (rc) {
		log_error("domain %u: libxl_domain_suspend failed (libxl error %d)", domid, rc);
		return xen_err(rc);
	}
	return 0;
}

/*
 * Resume a domain whose suspend for migration failed (suspend_cancel, as xl does). A stream
 * that broke during the live rounds (the destination died) leaves the domain running, never
 * suspended: libxl_domain_resume then fails ("Dom N not suspended", xc_domain_resume EINVAL)
 * although nothing is wrong, so only a domain that is shut down for suspend is resumed.
 */
int xen_resume(struct hv *hv, uint32_t domid)
{
	libxl_dominfo di;
	int rc;

	libxl_dominfo_init(&di);
	rc = libxl_domain_info(hv->ctx, &di, domid);
	if (!rc && !(di.shutdown && di.shutdown_reason == LIBXL_SHUTDOWN_REASON_SUSPEND)) {
		libxl_dominfo_dispose(&di);
		log_info("domain %u was not suspended: it kept running, nothing to resume", domid);
		return 0;
	}
	libxl_dominfo_dispose(&di);
	rc = libxl_domain_resume(hv->ctx, domid, 1, NULL);

	if (rc)
		log_error("domain %u: libxl_domain_resume failed (libxl error %d)", domid, rc);
	return xen_err(rc);
}

/* Replace the configuration's name with the name the domain is created under. */
int xen_config_set_name(libxl_domain_config *cfg, const char *name)
{
	char *copy = strdup(name);

	if (!copy)
		return ERR_NOMEM;
	free(cfg->c_info.name);
	cfg->c_info.name = copy;
	return 0;
}

/*
 * The disk spec of libxl disk d (disk.h's syntax) into spec, for disk_classify: a by-path
 * device as phy:, a block-iscsi (or other script) disk with its script and target. 0, or
 * ERR_NOTFOUND for a disk without a path or vdev (a CD-ROM drive left empty).
 */
static int libxl_disk_spec(const libxl_device_disk *d, char *spec, size_t len)
{
	int n;

	if (!d->pdev_path || !d->vdev)
		return ERR_NOTFOUND;
	if (d->script)
		n = snprintf(spec, len, "vdev=%s,access=%s,script=%s,target=%s", d->vdev,
		             d->readwrite ? "rw" : "ro", d->script, d->pdev_path);
	else
		n = snprintf(spec, len, "phy:%s,%s,%s", d->pdev_path, d->vdev,
		             d->readwrite ? "w" : "r");
	return n > 0 && (size_t)n < len ? 0 : ERR_NOTFOUND;
}

/* Disk i of cfg classified into di: 0 when it is an iSCSI disk (writable too, with rw_only). */
static int iscsi_disk_at(const libxl_domain_config *cfg, int i, bool rw_only, struct disk_info *di)
{
	const libxl_device_disk *d = &cfg->disks[i];
	char spec[DISK_SPEC_MAX];

	if ((rw_only && !d->readwrite) || libxl_disk_spec(d, spec, sizeof(spec)) ||
	    disk_classify(spec, di) || di->kind != DISK_ISCSI)
		return ERR_NOTFOUND;
	return 0;
}

int xen_login_iscsi_disks(const libxl_domain_config *cfg, const char *name, uint64_t *made_r)
{
	struct disk_info *di = calloc(1, sizeof(*di));
	int rc = 0;

	*made_r = 0;
	if (!di)
		return ERR_NOMEM;
	for (int i = 0; i < cfg->num_disks && !rc; i++) {
		const char *pdev = cfg->disks[i].pdev_path;
		int made = 0;

		/* block-iscsi disks are left to Xen's script, which logs in by itself */
		if (!pdev || strncmp(pdev, "/dev/disk/by-path/ip-", 21) ||
		    iscsi_disk_at(cfg, i, false, di))
			continue;
		rc = iscsiadm_ensure_login(&iscsiadm_system, di, XEN_ISCSI_LOGIN_TIMEOUT_S, &made);
		if (made && i < 64)
			*made_r |= 1ull << i;
		if (rc)
			log_error(
			    "domain %s: disk %s has no device on this host and the iSCSI login "
			    "failed (above)",
			    name, cfg->disks[i].vdev);
	}
	free(di);
	if (rc)
		xen_logout_iscsi_disks(cfg, *made_r);
	return rc;
}

void xen_logout_iscsi_disks(const libxl_domain_config *cfg, uint64_t made)
{
	struct disk_info *di = made ? calloc(1, sizeof(*di)) : NULL;

	for (int i = 0; di && i < cfg->num_disks && i < 64; i++)
		if ((made & (1ull << i)) && !iscsi_disk_at(cfg, i, false, di))
			iscsiadm_logout(&iscsiadm_system, di, XEN_ISCSI_LOGIN_TIMEOUT_S);
	free(di);
}

int xen_take_iscsi_disks(const libxl_domain_config *cfg, const char *name)
{
	struct disk_info *di = calloc(1, sizeof(*di));
	int rc = 0;

	if (!di)
		return ERR_NOMEM;
	for (int i = 0; i < cfg->num_disks && !rc; i++)
		if (!iscsi_disk_at(cfg, i, true, di))
			rc = lun_acquire_for_start(di, name, 1, NULL);
	free(di);
	return rc;
}

/*
 * Create a paused domain named name (<name>--incoming) from the libxl v2 stream on fd and the
 * sender's libxl_domain_config JSON. On failure a half-created domain is destroyed, so nothing
 * is left behind.
 */
int xen_receive_stream(struct hv *hv, int fd, const char *name, const char *config_json,
                       const struct mig_params *params, struct mig_report *report,
                       uint32_t *domid_r)
{
	libxl_domain_restore_params rp;
	libxl_domain_config cfg;
	uint32_t domid = (uint32_t)INVALID_DOMID;
	uint64_t made = 0; /* iSCSI sessions made for this domain */
	int rc;

	(void)params;
	libxl_domain_config_init(&cfg);
	libxl_domain_restore_params_init(&rp);
	if (report)
		report->t_start_us = loop_now_us();
	rc = libxl_domain_config_from_json(hv->ctx, &cfg, config_json);
	if (rc) {
		log_error("incoming domain %s: the sender's configuration is not a libxl domain "
		          "configuration (libxl error %d)",
		          name, rc);
		rc = ERR_PROTO;
		goto out;
	}
	rc = xen_config_set_name(&cfg, name);
	if (rc)
		goto out;
	rc = xen_login_iscsi_disks(&cfg, name, &made);
	if (rc) {
		log_error("incoming domain %s: not created; the sender keeps the domain", name);
		goto out;
	}
	rp.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_NONE;
	rp.stream_version = 2;
	/* libxl leaves it paused: handshake.c unpauses after the GO message, unless -p */
	/* as xl's migrate-receive: the send-back fd is the channel to the sender */
	rc = libxl_domain_create_restore(
	    hv->ctx, &cfg, &domid, fd,
	    params && params->send_back_fd > 0 ? params->send_back_fd : -1, &rp, NULL, NULL);
	if (rc) {
		log_error("incoming domain %s: libxl_domain_create_restore failed (libxl error %d)",
		          name, rc);
		if (domid != (uint32_t)INVALID_DOMID && domid != 0)
			libxl_domain_destroy(hv->ctx, domid, NULL);
		xen_logout_iscsi_disks(&cfg, made); /* sessions made for it alone */
		rc = xen_err(rc);
		goto out;
	}
	if (report)
		report->t_stream_end_us = loop_now_us();
	*domid_r = domid;
out:
	libxl_domain_restore_params_dispose(&rp);
	libxl_domain_config_dispose(&cfg);
	return rc;
}
