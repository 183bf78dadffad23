/*
 * simdisk.c - a simulated guest's shared iSCSI disk and its journal workload (simdisk.h).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/sim/simdisk.h"
#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/hostid.h"
#include "xl-ext/storage/journal.h"
#include "xl-ext/storage/owner.h"
#ifdef XLEXT_HAVE_ISCSI
#include "xl-ext/storage/iscsi.h"
#endif

#ifdef XLEXT_HAVE_ISCSI

#define SIMDISK_TIMEOUT_S  5
#define SIMDISK_RELOGIN_MS 200 /* between two logins after a lost session */

enum simdisk_state { SD_OK, SD_CONFLICT, SD_ERROR };

struct simdisk {
	char domain[64];
	char host[64];
	char url[600];
	char vdev[32];
	uint64_t key;
	struct iscsi_lun *lun;
	struct journal_dev dev;
	struct simdisk_mem *mem; /* in guest memory */
	int registered;          /* this session's registration is made */
	int lost;                /* the session failed: log in again before the next write */
	int rejoin;              /* logged in again: the host's ownership is to be restored */
	int64_t relogin_at_ms;   /* no login attempt before this (monotonic) */
	enum simdisk_state state;
	int last_error;
	uint64_t written; /* records acknowledged on this host */
	uint64_t conflicts;
	uint64_t errors;
	uint64_t first_seq_here; /* first sequence number this host wrote (0: none yet) */
	uint64_t relogins;       /* sessions logged in again after one was lost */
};

static int dev_read(void *ctx, uint64_t lba, void *buf, size_t len)
{
	return iscsi_lun_read(ctx, lba, buf, len);
}

static int dev_write(void *ctx, uint64_t lba, const void *buf, size_t len)
{
	return iscsi_lun_write(ctx, lba, buf, len);
}

static int pr_exec(void *ctx, const struct own_cmd *cmd, struct own_view *view)
{
	return iscsi_pr_execute(ctx, cmd, view);
}

/* The first writable iSCSI disk of cfg, as a URL. */
static int pick_disk(struct simdisk *sd, const struct sim_config *cfg)
{
	struct disk_info *di = calloc(1, sizeof(*di));
	int rc = ERR_NOTFOUND;

	if (!di)
		return ERR_NOMEM;
	for (unsigned i = 0; i < cfg->ndisks && rc == ERR_NOTFOUND; i++) {
		if (disk_classify(cfg->disks[i].spec, di) || di->kind != DISK_ISCSI || di->readonly)
			continue;
		rc = disk_iscsi_url(di, sd->url, sizeof(sd->url));
		snprintf(sd->vdev, sizeof(sd->vdev), "%s", di->vdev);
	}
	free(di);
	return rc;
}

/* Fresh boot: acquire the LUN and start the journal. */
static int start_fresh(struct simdisk *sd, uint64_t guest_id)
{
	struct journal_writer w;
	struct own_machine m;
	uint64_t found = 0;
	int rc;

	rc = own_init(&m, OWN_FLOW_ACQUIRE, sd->key, 0);
	if (!rc)
		rc = own_drive(&m, pr_exec, sd->lun);
	if (rc) {
		log_error("domain %s: cannot take ownership of %s with host %s's key 0x%016" PRIx64
		          ": %s; another host owns it (xl-ext pr URL show tells which)",
		          sd->domain, iscsi_lun_name(sd->lun), sd->host, sd->key,
		          m.why[0] ? m.why : err_str(rc));
		return rc;
	}
	sd->registered = 1;
	/* The journal belongs to the disk, not to the boot: a cold restart (haagent after a
	 * fence, or a plain destroy and create) continues the journal found on the LUN, so
	 * the checker sees one chain across hosts; an empty LUN starts one with the boot id. */
	rc = journal_find_latest(&sd->dev, JOURNAL_DEFAULT_BASE, JOURNAL_DEFAULT_RING, &found);
	if (rc == 0 && found != guest_id) {
		log_info("domain %s: %s holds the journal of guest %" PRIu64 ": continuing it",
		         sd->domain, iscsi_lun_name(sd->lun), found);
		guest_id = found;
	} else if (rc && rc != ERR_NOTFOUND) {
		log_error("domain %s: cannot read the journal on %s: %s", sd->domain,
		          iscsi_lun_name(sd->lun), err_str(rc));
		return rc;
	}
	rc = journal_writer_open(&w, &sd->dev, guest_id, sd->key, JOURNAL_DEFAULT_BASE,
	                         JOURNAL_DEFAULT_RING);
	if (rc) {
		log_error("domain %s: cannot start the journal on %s: %s", sd->domain,
		          iscsi_lun_name(sd->lun), err_str(rc));
		return rc;
	}
	sd->mem->guest_id = guest_id;
	sd->mem->next_seq = w.next_seq;
	sd->mem->prev_csum = w.prev_csum;
	sd->mem->acked = w.acked;
	sd->mem->base = JOURNAL_DEFAULT_BASE;
	sd->mem->ring = JOURNAL_DEFAULT_RING;
	__atomic_store_n(&sd->mem->magic, SIMDISK_MEM_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

int simdisk_open(struct simdisk **sd_r, const struct sim_config *cfg, const char *domain, void *mem,
                 uint64_t guest_id, int incoming)
{
	struct simdisk *sd = calloc(1, sizeof(*sd));
	char initiator[ISCSI_INITIATOR_MAX];
	int rc;

	*sd_r = NULL;
	if (!sd)
		return ERR_NOMEM;
	snprintf(sd->domain, sizeof(sd->domain), "%s", domain);
	sd->mem = (struct simdisk_mem *)((uint8_t *)mem + SIMDISK_MEM_OFFSET);
	rc = pick_disk(sd, cfg);
	if (rc == ERR_NOTFOUND)
		log_error("domain %s: workload disk_write_hz needs a writable iSCSI disk "
		          "(block-iscsi or /dev/disk/by-path/...-iscsi-...) in its disk list",
		          domain);
	if (!rc)
		rc = hostid_local(sd->host, sizeof(sd->host), &sd->key);
	if (!rc)
		rc = iscsi_initiator_name(sd->host, initiator, sizeof(initiator));
	if (!rc) {
		rc = iscsi_lun_open(sd->url, initiator, SIMDISK_TIMEOUT_S, &sd->lun);
		if (rc)
			log_error("domain %s: host %s cannot log in to disk %s (%s): %s; check the "
			          "portal, the target's ACL and that tgtd runs",
			          domain, sd->host, sd->vdev, sd->url, err_str(rc));
	}
	if (rc)
		goto fail;
	sd->dev = (struct journal_dev){dev_read, dev_write, sd->lun, iscsi_lun_block_size(sd->lun),
	                               iscsi_lun_nblocks(sd->lun)};
	if (!incoming) {
		rc = start_fresh(sd, guest_id);
		if (rc)
			goto fail;
		log_info("domain %s: disk %s on %s owned with key 0x%016" PRIx64 ", journal of "
		         "guest %" PRIu64 " from record %" PRIu64,
		         domain, sd->vdev, iscsi_lun_name(sd->lun), sd->key, sd->mem->guest_id,
		         sd->mem->next_seq);
	}
	*sd_r = sd;
	return 0;
fail:
	simdisk_close(sd);
	return rc;
}

/*
 * The session failed (the target restarted, the path broke): log in again, at most every
 * SIMDISK_RELOGIN_MS, as a kernel initiator's session recovery does. A host that had
 * registered restores its ownership next (rejoin); one that had not registers on its first
 * write as before.
 */
static int relogin(struct simdisk *sd)
{
	char initiator[ISCSI_INITIATOR_MAX];
	struct iscsi_lun *lun = NULL;
	int64_t now = loop_now_ms();
	int rc;

	if (now < sd->relogin_at_ms)
		return ERR_IO;
	sd->relogin_at_ms = now + SIMDISK_RELOGIN_MS;
	rc = iscsi_initiator_name(sd->host, initiator, sizeof(initiator));
	if (!rc)
		rc = iscsi_lun_open(sd->url, initiator, SIMDISK_TIMEOUT_S, &lun);
	if (rc)
		return rc;
	iscsi_lun_close(sd->lun);
	sd->lun = lun;
	sd->dev.ctx = lun;
	sd->lost = 0;
	/* a rejoin still pending from an earlier login (its read failed) stays pending */
	sd->rejoin = sd->rejoin || (sd->registered && sd->state != SD_CONFLICT);
	sd->registered = 0;
	sd->relogins++;
	log_info("domain %s: host %s logged in to %s again after its session was lost", sd->domain,
	         sd->host, iscsi_lun_name(lun));
	return 0;
}

/*
 * Logged in again after a lost session, a host that owned the LUN restores its ownership on
 * the new session (own_plan_rejoin): it registers the session when its key is still
 * registered; it takes the LUN again when the target lost every registration and the
 * reservation (a restart without persistence); it never registers again when another key
 * reserved it meanwhile (it was fenced): that is a reservation conflict.
 */
static int rejoin(struct simdisk *sd)
{
	struct own_cmd cmd = {
	    .op = OWN_OP_REGISTER, .key = sd->key, .sa_key = sd->key, .type = OWN_PR_TYPE_WERO};
	struct own_machine m;
	struct own_view view;
	int rc = iscsi_pr_read(sd->lun, &view);

	if (rc)
		return rc;
	switch (own_plan_rejoin(&view, sd->key)) {
	case OWN_REJOIN_CONFLICT:
		sd->rejoin = 0;
		return ERR_CONFLICT;
	case OWN_REJOIN_WAIT:
		return ERR_BUSY; /* another host registered, nobody reserved: look again later */
	case OWN_REJOIN_JOIN:
		rc = iscsi_pr_out(sd->lun, &cmd);
		break;
	case OWN_REJOIN_ACQUIRE:
		log_warn("domain %s: %s lists no registration and no reservation any more (the "
		         "target restarted without persistent reservations?): host %s takes it "
		         "again with key 0x%016" PRIx64,
		         sd->domain, iscsi_lun_name(sd->lun), sd->host, sd->key);
		rc = own_init(&m, OWN_FLOW_ACQUIRE, sd->key, 0);
		if (!rc)
			rc = own_drive(&m, pr_exec, sd->lun);
		break;
	}
	if (rc)
		return rc;
	sd->rejoin = 0;
	sd->registered = 1;
	return 0;
}

/* Log in again and restore ownership when needed: 0 when the session is ready to write. */
static int recover(struct simdisk *sd)
{
	int rc = 0;

	if (sd->lost)
		rc = relogin(sd);
	if (!rc && sd->rejoin)
		rc = rejoin(sd); /* a failed session: write_failed marks it lost */
	return rc;
}

/*
 * An incoming guest's first write on this host: its session joins the host's registration,
 * which the migration's hand-over made before the source suspended. If the LUN is reserved
 * and this host's key is no longer registered, the host was preempted (fenced) since: joining
 * with REGISTER AND IGNORE EXISTING KEY would give it write access back, so it is a conflict.
 */
static int register_here(struct simdisk *sd)
{
	struct own_cmd cmd = {
	    .op = OWN_OP_REGISTER, .key = sd->key, .sa_key = sd->key, .type = OWN_PR_TYPE_WERO};
	struct own_view view;
	int rc = iscsi_pr_read(sd->lun, &view), listed;

	if (rc) {
		log_error("domain %s: host %s cannot read the reservation of %s: %s", sd->domain,
		          sd->host, iscsi_lun_name(sd->lun), err_str(rc));
		return rc;
	}
	listed = own_view_has_key(&view, sd->key);
	if (view.reserved && !listed)
		return ERR_CONFLICT; /* reported by the caller as a reservation conflict */
	rc = iscsi_pr_out(sd->lun, &cmd);
	if (rc) {
		log_error("domain %s: host %s cannot register key 0x%016" PRIx64 " on %s: %s",
		          sd->domain, sd->host, sd->key, iscsi_lun_name(sd->lun), err_str(rc));
		return rc;
	}
	sd->registered = 1;
	return 0;
}

static void report(struct simdisk *sd, enum simdisk_state st, int rc, uint64_t seq)
{
	if (sd->state == st && sd->last_error == rc)
		return;
	sd->state = st;
	sd->last_error = rc;
	if (st == SD_CONFLICT)
		log_error("domain %s: write of journal record %" PRIu64 " to %s refused with "
		          "RESERVATION CONFLICT: host %s's key 0x%016" PRIx64 " no longer owns the "
		          "LUN (preempted or fenced); the record is not acknowledged and this host "
		          "does not register again",
		          sd->domain, seq, iscsi_lun_name(sd->lun), sd->host, sd->key);
	else if (st == SD_ERROR)
		log_error("domain %s: write of journal record %" PRIu64 " to %s failed: %s",
		          sd->domain, seq, iscsi_lun_name(sd->lun), err_str(rc));
	else
		log_info("domain %s: writes to %s succeed again", sd->domain,
		         iscsi_lun_name(sd->lun));
}

/*
 * A write, or the step before it, failed with rc at record seq: count it and say so; a
 * failed session is logged in again before the next write.
 */
static int write_failed(struct simdisk *sd, int rc, uint64_t seq)
{
	if (err_is_transport(rc))
		sd->lost = 1;
	if (rc == ERR_CONFLICT)
		sd->conflicts++;
	else
		sd->errors++;
	report(sd, rc == ERR_CONFLICT ? SD_CONFLICT : SD_ERROR, rc, seq);
	return rc;
}

int simdisk_write(struct simdisk *sd)
{
	struct journal_writer w;
	char payload[96];
	struct timespec ts;
	uint64_t seq;
	int n, rc;

	if (__atomic_load_n(&sd->mem->magic, __ATOMIC_ACQUIRE) != SIMDISK_MEM_MAGIC) {
		report(sd, SD_ERROR, ERR_PROTO, 0);
		return ERR_PROTO; /* the guest's memory holds no writer state */
	}
	rc = recover(sd);
	if (rc)
		return write_failed(sd, rc, sd->mem->next_seq);
	if (!sd->registered && sd->state != SD_CONFLICT) {
		rc = register_here(sd);
		if (rc)
			return write_failed(sd, rc, sd->mem->next_seq);
	}
	w = (struct journal_writer){.dev = &sd->dev,
	                            .guest_id = sd->mem->guest_id,
	                            .key = sd->key,
	                            .base = sd->mem->base,
	                            .ring = sd->mem->ring,
	                            .next_seq = sd->mem->next_seq,
	                            .prev_csum = sd->mem->prev_csum,
	                            .acked = sd->mem->acked};
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(payload, sizeof(payload), "domain %s host %s t %lld.%09ld", sd->domain,
	             sd->host, (long long)ts.tv_sec, ts.tv_nsec);
	rc = journal_append(&w, payload, (size_t)n, &seq);
	if (rc)
		return write_failed(sd, rc, w.next_seq);
	if (!sd->first_seq_here)
		sd->first_seq_here = seq;
	sd->mem->next_seq = w.next_seq;
	sd->mem->prev_csum = w.prev_csum;
	sd->mem->acked = w.acked;
	sd->written++;
	if (sd->state != SD_OK)
		report(sd, SD_OK, 0, seq);
	return 0;
}

void simdisk_info(const struct simdisk *sd, char *buf, size_t cap)
{
	static const char *const names[] = {"ok", "reservation-conflict", "error"};

	snprintf(buf, cap,
	         ",\"disk\":{\"vdev\":\"%s\",\"url\":\"%s\",\"host\":\"%s\",\"key\":\"0x%016" PRIx64
	         "\",\"state\":\"%s\",\"guest_id\":%" PRIu64 ",\"acked\":%" PRIu64
	         ",\"next_seq\":%" PRIu64 ",\"first_seq_here\":%" PRIu64
	         ",\"written_here\":%" PRIu64 ",\"conflicts\":%" PRIu64 ",\"errors\":%" PRIu64
	         ",\"relogins\":%" PRIu64 "}",
	         sd->vdev, sd->url, sd->host, sd->key, names[sd->state], sd->mem->guest_id,
	         sd->mem->acked, sd->mem->next_seq, sd->first_seq_here, sd->written, sd->conflicts,
	         sd->errors, sd->relogins);
}

int simdisk_release(struct simdisk *sd, const char *domain)
{
	static const enum own_op steps[] = {OWN_OP_PREEMPT, OWN_OP_RELEASE, OWN_OP_UNREGISTER};
	size_t len = strlen(domain), tail = strlen("--migratedaway");
	int rc = 0;

	if (!sd || !sd->registered || sd->state == SD_CONFLICT ||
	    (len > tail && !strcmp(domain + len - tail, "--migratedaway")))
		return 0;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && !rc; i++) {
		struct own_cmd cmd = {.op = steps[i],
		                      .key = sd->key,
		                      .sa_key = steps[i] == OWN_OP_PREEMPT ? sd->key : 0,
		                      .type = OWN_PR_TYPE_WERO};

		rc = iscsi_pr_out(sd->lun, &cmd);
		if (rc)
			log_error("domain %s: giving %s back failed at %s (key 0x%016" PRIx64
			          "): %s; "
			          "clear it with 'xl-ext pr URL register preempt KEY release "
			          "unregister' from this host",
			          domain, iscsi_lun_name(sd->lun), own_op_name(steps[i]), sd->key,
			          err_str(rc));
	}
	if (!rc) {
		sd->registered = 0;
		log_info("domain %s: %s released by host %s (key 0x%016" PRIx64 ")", domain,
		         iscsi_lun_name(sd->lun), sd->host, sd->key);
	}
	return rc;
}

void simdisk_close(struct simdisk *sd)
{
	if (!sd)
		return;
	iscsi_lun_close(sd->lun);
	free(sd);
}

#else /* without libiscsi */

int simdisk_open(struct simdisk **sd_r, const struct sim_config *cfg, const char *domain, void *mem,
                 uint64_t guest_id, int incoming)
{
	(void)cfg;
	(void)mem;
	(void)guest_id;
	(void)incoming;
	*sd_r = NULL;
	log_error("domain %s: workload disk_write_hz needs iSCSI, and this xl-ext is built "
	          "without libiscsi (configure --with-iscsi)",
	          domain);
	return ERR_NOTSUP;
}

int simdisk_write(struct simdisk *sd)
{
	(void)sd;
	return ERR_NOTSUP;
}

void simdisk_info(const struct simdisk *sd, char *buf, size_t cap)
{
	(void)sd;
	if (cap)
		buf[0] = '\0';
}

int simdisk_release(struct simdisk *sd, const char *domain)
{
	(void)sd;
	(void)domain;
	return 0;
}

void simdisk_close(struct simdisk *sd)
{
	(void)sd;
}

#endif
