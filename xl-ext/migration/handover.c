/*
 * handover.c - LUN identity and reservation hand-over inside the migration handshake
 * (handover.h).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/migration/handover.h"
#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/hostid.h"
#include "xl-ext/storage/iscsi.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/storage/lunid.h"
#include "xl-ext/storage/owner.h"

#define HO_TIMEOUT_S 5
#define HO_MAX_LUNS  16
#ifdef XLEXT_HAVE_ISCSI
#define HO_LIBISCSI 1
#else
#define HO_LIBISCSI 0
#endif
/* source_view: the LUN is skipped because this xl-ext has no libiscsi (not an error code) */
#define HO_NO_LIBISCSI 1

struct ho_sender {
	char domain[64];
	char dest[256];
	char host[64];
	uint64_t key;
	int kernel; /* LUNs through the kernel initiator's block devices (xen backend) */
	struct mig_disks *disks;
	char *request;
	json_object *answer; /* the destination's answer, NULL until it came */
	json_object *final;  /* its last message */
};

struct ho_lun {
	char url[600];
	char spec[512];
	int readonly;
	enum own_plan plan;
	struct own_machine m;
	int registered;
	char why[1400];
	struct disk_info disk;       /* the spec, classified here (kind DISK_LOCAL if it did not) */
	char target[LUN_TARGET_MAX]; /* what was opened: the URL or the kernel device */
	struct lun *lun;
	struct lun *klun; /* block-iscsi on xen: the kernel's session, registered after restore */
};

struct ho_receiver {
	int kernel; /* LUNs through the kernel initiator's block devices (xen backend) */
	char host[64];
	uint64_t key;
	uint64_t src_key;
	char src_host[64];
	unsigned n;
	struct ho_lun luns[HO_MAX_LUNS];
};

static const char *key_str(uint64_t key, char buf[20])
{
	snprintf(buf, 20, "0x%016" PRIx64, key);
	return buf;
}

static uint64_t key_parse(json_object *o, const char *field)
{
	json_object *v;
	uint64_t key = 0;

	if (o && json_object_object_get_ex(o, field, &v) &&
	    json_object_is_type(v, json_type_string))
		own_host_key(NULL, json_object_get_string(v), &key);
	return key;
}

static const char *jstr(json_object *o, const char *field)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, field, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

static json_object *keys_json(const struct own_view *v)
{
	json_object *a = json_object_new_array();
	char kb[20];

	for (unsigned i = 0; i < v->nkeys; i++)
		json_object_array_add(a, json_object_new_string(key_str(v->keys[i], kb)));
	return a;
}

/* target: an iscsi:// URL (a session as initiator iqn...:host) or a kernel block device. */
static int open_lun(const char *target, const char *host, struct lun **lun_r)
{
	char initiator[ISCSI_INITIATOR_MAX];
	int rc = iscsi_initiator_name(host, initiator, sizeof(initiator));

	return rc ? rc : lun_open(target, initiator, HO_TIMEOUT_S, lun_r);
}

/* REGISTER (sa_key = key) or UNREGISTER (sa_key 0) key on lun, for a WERO reservation. */
static int pr_register(struct lun *lun, enum own_op op, uint64_t key)
{
	struct own_cmd cmd = {.op = op,
	                      .key = key,
	                      .sa_key = op == OWN_OP_REGISTER ? key : 0,
	                      .type = OWN_PR_TYPE_WERO};

	return lun_pr_out(lun, &cmd);
}

/*
 * Sender: open the iSCSI disk d as this host (host) sees it - the kernel initiator's device on
 * the xen backend (kernel 1), a libiscsi session otherwise - into *lun_r, naming what it opened
 * in target and *path_r. HO_NO_LIBISCSI when this build has no libiscsi for it.
 */
static int open_source_lun(const struct disk_info *d, int kernel, const char *host,
                           char target[LUN_TARGET_MAX], enum lun_path *path_r, struct lun **lun_r)
{
	int rc;

	*path_r = LUN_PATH_LIBISCSI;
	*lun_r = NULL;
	rc = lun_choose(d, kernel, 0, NULL, target, path_r);
	if (!rc)
		rc = open_lun(target, host, lun_r);
	if (!HO_LIBISCSI && rc == ERR_NOTSUP && *path_r == LUN_PATH_LIBISCSI && !*lun_r)
		return HO_NO_LIBISCSI;
	return rc;
}

/* Sender: identity and reservation holder of one LUN as this host sees them. */
static int source_view(const struct ho_sender *s, const struct disk_info *d, const char *url,
                       json_object *o)
{
	struct lunid *id = calloc(1, sizeof(*id));
	struct lun *lun = NULL;
	struct own_view view;
	char *idjson = NULL, kb[20], target[LUN_TARGET_MAX];
	enum lun_path path = LUN_PATH_LIBISCSI;
	int rc;

	if (!id)
		return ERR_NOMEM;
	rc = open_source_lun(d, s->kernel, s->host, target, &path, &lun);
	if (rc == HO_NO_LIBISCSI)
		goto out; /* built without libiscsi: the caller skips this LUN */
	if (!rc)
		rc = lun_identity(lun, id);
	if (!rc)
		rc = lunid_to_json(id, &idjson);
	if (!rc)
		rc = lun_pr_read(lun, &view);
	if (rc) {
		log_error("domain %s: disk %s ('%s'): host %s cannot read the LUN's identity and "
		          "reservation (%s): %s",
		          s->domain, d->vdev, d->spec, s->host,
		          path == LUN_PATH_KERNEL ? target : url, err_str(rc));
		goto out;
	}
	log_debug("domain %s: disk %s: source reads %s through %s", s->domain, d->vdev,
	          lun_name(lun), lun_path_name(path));
	json_object_object_add(o, "source_access", json_object_new_string(lun_path_name(path)));
	json_object_object_add(o, "identity", json_tokener_parse(idjson));
	json_object_object_add(
	    o, "holder", view.reserved ? json_object_new_string(key_str(view.holder, kb)) : NULL);
out:
	lun_close(lun);
	free(idjson);
	free(id);
	return rc;
}

int ho_sender_new(const char *domain, const char *dest, struct mig_disks *disks, int kernel,
                  struct ho_sender **s_r)
{
	struct ho_sender *s = calloc(1, sizeof(*s));
	json_object *req = json_object_new_object(), *luns = json_object_new_array();
	char kb[20];
	int rc;

	*s_r = NULL;
	if (!s || !req || !luns) {
		rc = ERR_NOMEM;
		goto fail;
	}
	snprintf(s->domain, sizeof(s->domain), "%s", domain);
	snprintf(s->dest, sizeof(s->dest), "%s", dest);
	s->disks = disks;
	s->kernel = kernel;
	rc = hostid_local(s->host, sizeof(s->host), &s->key);
	if (rc)
		goto fail;
	for (unsigned i = 0; i < disks->n; i++) {
		const struct disk_info *d = &disks->info[i];
		char url[600];
		json_object *o;
		int dup = 0;

		if (d->kind != DISK_ISCSI || disk_iscsi_url(d, url, sizeof(url)))
			continue;
		for (size_t j = 0; j < json_object_array_length(luns) && !dup; j++)
			dup = !strcmp(jstr(json_object_array_get_idx(luns, j), "url"), url);
		if (dup)
			continue; /* one entry per LUN; the first spec names it */
		if (json_object_array_length(luns) >= HO_MAX_LUNS) {
			log_error(
			    "domain %s: more than %d iSCSI LUNs; the hand-over handles at most %d",
			    domain, HO_MAX_LUNS, HO_MAX_LUNS);
			rc = ERR_NOTSUP;
			goto fail;
		}
		o = json_object_new_object();
		json_object_object_add(o, "url", json_object_new_string(url));
		json_object_object_add(o, "spec", json_object_new_string(d->spec));
		json_object_object_add(o, "readonly", json_object_new_boolean(d->readonly));
		rc = source_view(s, d, url, o);
		if (rc == HO_NO_LIBISCSI) {
			/* only a build without libiscsi; a target answering ILLEGAL REQUEST to
			 * PR IN or VPD 0x83 (ERR_NOTSUP) is an error like any other */
			log_warn(
			    "domain %s: disk %s: this xl-ext is built without libiscsi, its LUN "
			    "is not handed over",
			    domain, d->vdev);
			json_object_put(o);
			continue;
		}
		json_object_array_add(luns, o);
		if (rc)
			goto fail;
	}
	json_object_object_add(req, "domain", json_object_new_string(domain));
	json_object_object_add(req, "source_host", json_object_new_string(s->host));
	json_object_object_add(req, "source_key", json_object_new_string(key_str(s->key, kb)));
	json_object_object_add(req, "luns", luns);
	luns = NULL;
	s->request = strdup(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	json_object_put(req);
	if (!s->request) {
		ho_sender_free(s);
		return ERR_NOMEM;
	}
	*s_r = s;
	return 0;
fail:
	json_object_put(luns);
	json_object_put(req);
	ho_sender_free(s);
	return rc;
}

int ho_check_not_stranded(const char *domain, const char *dest, const struct mig_disks *disks,
                          int kernel)
{
	char host[64], target[LUN_TARGET_MAX], url[600], kb[20];
	uint64_t key;
	int rc, refused = 0;

	rc = hostid_local(host, sizeof(host), &key);
	if (rc) {
		log_warn("domain %s: cannot derive this host's reservation key (%s): its LUNs' "
		         "reservations are not checked",
		         domain, err_str(rc));
		return 0;
	}
	for (unsigned i = 0; i < disks->n; i++) {
		const struct disk_info *d = &disks->info[i];
		enum lun_path path = LUN_PATH_LIBISCSI;
		struct lun *lun = NULL;
		struct own_view view;

		if (d->kind != DISK_ISCSI || d->readonly || disk_iscsi_url(d, url, sizeof(url)))
			continue;
		rc = open_source_lun(d, kernel, host, target, &path, &lun);
		if (rc == HO_NO_LIBISCSI)
			continue; /* built without libiscsi: nothing of ours reserves it either */
		if (!rc)
			rc = lun_pr_read(lun, &view);
		lun_close(lun);
		if (rc) {
			log_warn(
			    "domain %s: disk %s: cannot read the reservation of %s (%s); if this "
			    "host holds it, the guest will not be able to write on %s",
			    domain, d->vdev, path == LUN_PATH_KERNEL ? target : url, err_str(rc),
			    dest);
			continue;
		}
		if (!view.reserved || view.holder != key)
			continue;
		log_error(
		    "migration of %s to %s refused: disk %s ('%s'): this host (%s, key %s) "
		    "holds the reservation of %s, and %s is not xl-ext or did not answer "
		    "xl-ext's pre-flight query, so nothing would hand it over and the guest "
		    "could not write there. Migrate to xl-ext (ssh -s, or --tcp), or give the "
		    "LUN up first: xl-ext pr %s giveup",
		    domain, dest, d->vdev, d->spec, host, key_str(key, kb),
		    path == LUN_PATH_KERNEL ? target : url, dest,
		    path == LUN_PATH_KERNEL ? target : url);
		refused = 1;
	}
	if (refused)
		log_error("migration of %s to %s refused; the domain was not touched", domain,
		          dest);
	return refused ? ERR_CONFLICT : 0;
}

const char *ho_sender_request(const struct ho_sender *s)
{
	return s->request;
}

/* The answer's or final message's entry for url, or NULL. */
static json_object *lun_entry(json_object *msg, const char *url)
{
	json_object *luns;

	if (!msg || !json_object_object_get_ex(msg, "luns", &luns) ||
	    !json_object_is_type(luns, json_type_array))
		return NULL;
	for (size_t j = 0; j < json_object_array_length(luns); j++) {
		json_object *l = json_object_array_get_idx(luns, j);
		const char *u = jstr(l, "url");

		if (u && !strcmp(u, url))
			return l;
	}
	return NULL;
}

static int sender_ready(void *ctx, const char *answer)
{
	struct ho_sender *s = ctx;
	json_object *ok = NULL;
	int rc = 0;

	s->answer = json_tokener_parse(answer);
	if (!s->answer || !json_object_object_get_ex(s->answer, "ok", &ok) ||
	    !json_object_is_type(ok, json_type_boolean)) {
		log_error("domain %s: %s's answer to the storage hand-over is not xl-ext's JSON",
		          s->domain, s->dest);
		return ERR_PROTO;
	}
	for (unsigned i = 0; i < s->disks->n; i++) {
		const struct disk_info *d = &s->disks->info[i];
		json_object *l, *v;
		char url[600];

		if (d->kind != DISK_ISCSI || disk_iscsi_url(d, url, sizeof(url)))
			continue;
		l = lun_entry(s->answer, url);
		if (!l)
			continue;
		if (json_object_object_get_ex(l, "verified", &v) && v)
			s->disks->verdict[i] =
			    json_object_get_boolean(v) ? MIG_DISK_VERIFIED : MIG_DISK_MISMATCH;
		if (json_object_object_get_ex(l, "ok", &v) && !json_object_get_boolean(v)) {
			log_error("domain %s: disk %s ('%s', %s) cannot be handed over to host %s "
			          "(%s): %s",
			          s->domain, d->vdev, d->spec, url,
			          jstr(s->answer, "dest_host") ? jstr(s->answer, "dest_host") : "?",
			          s->dest, jstr(l, "why") ? jstr(l, "why") : "?");
			rc =
			    s->disks->verdict[i] == MIG_DISK_MISMATCH ? ERR_MISMATCH : ERR_CONFLICT;
		}
	}
	if (!json_object_get_boolean(ok) && !rc)
		rc = ERR_REMOTE;
	return rc;
}

static void sender_final(void *ctx, const char *final)
{
	struct ho_sender *s = ctx;
	json_object *luns;

	s->final = final ? json_tokener_parse(final) : NULL;
	if (!s->final || !json_object_object_get_ex(s->final, "luns", &luns) ||
	    !json_object_is_type(luns, json_type_array)) {
		if (final)
			log_warn("domain %s: %s's final hand-over message has no list of LUNs; "
			         "check the reservations with 'xl-ext pr URL show'",
			         s->domain, s->dest);
		return;
	}
	for (size_t j = 0; j < json_object_array_length(luns); j++) {
		json_object *l = json_object_array_get_idx(luns, j);
		const char *st = jstr(l, "handover");
		const char *url = jstr(l, "url") ? jstr(l, "url") : "?";

		if (st && !strcmp(st, "failed"))
			log_error(
			    "domain %s runs on %s, but the reservation of %s was not handed over: "
			    "%s; the source's key may still be registered (xl-ext pr URL show)",
			    s->domain, s->dest, url, jstr(l, "why") ? jstr(l, "why") : "?");
		else if (st)
			log_info("domain %s: %s: hand-over %s, holder %s", s->domain, url, st,
			         jstr(l, "holder") ? jstr(l, "holder") : "none");
	}
}

void ho_sender_report(const struct ho_sender *s, json_object *disks_json, json_object *report)
{
	json_object *h = json_object_new_object();
	char kb[20];

	json_object_object_add(h, "source_host", json_object_new_string(s->host));
	json_object_object_add(h, "source_key", json_object_new_string(key_str(s->key, kb)));
	json_object_object_add(h, "dest_host",
	                       jstr(s->answer, "dest_host")
	                           ? json_object_new_string(jstr(s->answer, "dest_host"))
	                           : NULL);
	json_object_object_add(h, "dest_key",
	                       jstr(s->answer, "dest_key")
	                           ? json_object_new_string(jstr(s->answer, "dest_key"))
	                           : NULL);
	if (s->final) {
		json_object *t;

		if (json_object_object_get_ex(s->final, "preempt_ms", &t))
			json_object_object_add(h, "preempt_ms", json_object_get(t));
	}
	json_object_object_add(report, "handover", h);
	for (size_t i = 0; i < json_object_array_length(disks_json) && i < s->disks->n; i++) {
		const struct disk_info *d = &s->disks->info[i];
		json_object *o = json_object_new_object(), *a, *f, *v;
		char url[600];

		if (d->kind != DISK_ISCSI || disk_iscsi_url(d, url, sizeof(url))) {
			json_object_put(o);
			continue;
		}
		a = lun_entry(s->answer, url);
		f = lun_entry(s->final, url);
		json_object_object_add(o, "registered",
		                       a && json_object_object_get_ex(a, "registered", &v)
		                           ? json_object_get(v)
		                           : NULL);
		json_object_object_add(o, "handover",
		                       f && jstr(f, "handover")
		                           ? json_object_new_string(jstr(f, "handover"))
		                           : json_object_new_string(a ? "not done" : "not asked"));
		json_object_object_add(o, "holder_before",
		                       a && jstr(a, "holder_before")
		                           ? json_object_new_string(jstr(a, "holder_before"))
		                           : NULL);
		json_object_object_add(o, "preempted_key",
		                       f && jstr(f, "preempted")
		                           ? json_object_new_string(jstr(f, "preempted"))
		                           : NULL);
		json_object_object_add(
		    o, "holder_after",
		    f && jstr(f, "holder") ? json_object_new_string(jstr(f, "holder")) : NULL);
		json_object_object_add(
		    o, "keys_after",
		    f && json_object_object_get_ex(f, "keys", &v) ? json_object_get(v) : NULL);
		if (f && jstr(f, "why"))
			json_object_object_add(o, "why", json_object_new_string(jstr(f, "why")));
		else if (a && jstr(a, "why"))
			json_object_object_add(o, "why", json_object_new_string(jstr(a, "why")));
		json_object_object_add(json_object_array_get_idx(disks_json, i), "ownership", o);
	}
}

void ho_sender_free(struct ho_sender *s)
{
	if (!s)
		return;
	free(s->request);
	json_object_put(s->answer);
	json_object_put(s->final);
	free(s);
}

/* --- receiver --------------------------------------------------------------------------- */

int ho_receiver_new(int kernel, struct ho_receiver **r_r)
{
	*r_r = calloc(1, sizeof(**r_r));
	if (!*r_r)
		return ERR_NOMEM;
	(*r_r)->kernel = kernel;
	return 0;
}

/*
 * Which way in to l: with the xen backend the kernel initiator's device (logged in first for
 * by-path disks, lun_choose), the one blkback writes the guest's disk through; otherwise, or
 * when the spec does not classify here, a libiscsi session to the URL as before.
 */
static enum lun_path choose_target(struct ho_receiver *r, struct ho_lun *l, int *rc_r)
{
	enum lun_path path = LUN_PATH_LIBISCSI;

	*rc_r = 0;
	snprintf(l->target, sizeof(l->target), "%s", l->url);
	if (!r->kernel)
		return path;
	if (disk_classify(l->spec, &l->disk) || l->disk.kind != DISK_ISCSI) {
		log_warn("migration receiver: disk '%s' does not classify as iSCSI here: using a "
		         "libiscsi session to %s",
		         l->spec, l->url);
		l->disk.kind = DISK_LOCAL;
		return path;
	}
	*rc_r = lun_choose(&l->disk, 1, 1, NULL, l->target, &path);
	return path;
}

/*
 * A block-iscsi disk prepared through libiscsi (it had no kernel session then): once the
 * restore has attached the disk, its script has logged in, and this host's key must be
 * registered on the kernel's session too - the one blkback writes the guest's disk through -
 * before the guest runs. 0 when done or nothing to do; otherwise the error, logged.
 */
static int register_kernel(struct ho_receiver *r, struct ho_lun *l)
{
	char target[LUN_TARGET_MAX], kb[20];
	enum lun_path path = LUN_PATH_LIBISCSI;
	struct lun *k = NULL;
	int rc;

	if (l->klun || !r->kernel || l->disk.kind != DISK_ISCSI || !l->lun || !l->registered ||
	    lun_path(l->lun) != LUN_PATH_LIBISCSI)
		return 0;
	rc = lun_choose(&l->disk, 1, 0, NULL, target, &path);
	if (!rc && path != LUN_PATH_KERNEL)
		rc = ERR_NOTFOUND;
	if (!rc)
		rc = open_lun(target, r->host, &k);
	if (!rc)
		rc = pr_register(k, OWN_OP_REGISTER, r->key);
	if (rc) {
		log_error("migration target: disk '%s': cannot register key %s on the kernel "
		          "initiator's session of %s (%s): the guest could not write once the "
		          "source's key is preempted",
		          l->spec, key_str(r->key, kb), l->url,
		          path == LUN_PATH_KERNEL ? err_str(rc)
		                                  : "no block device after the restore");
		lun_close(k);
		return rc;
	}
	log_info("migration target: disk '%s': key %s registered on the kernel's session (%s)",
	         l->spec, key_str(r->key, kb), target);
	l->klun = k;
	return 0;
}

/* Prepare one LUN: log in, compare identity, plan and register. 0 when it may proceed. */
static int prepare_lun(struct ho_receiver *r, struct ho_lun *l, json_object *req_lun,
                       json_object *out)
{
	struct lunid *want = calloc(1, sizeof(*want)), *have = calloc(1, sizeof(*have));
	json_object *identity;
	struct own_view view;
	char why[256] = "", kb[20];
	enum lun_path path = LUN_PATH_LIBISCSI;
	int rc;

	if (!want || !have) {
		rc = ERR_NOMEM;
		goto out;
	}
	path = choose_target(r, l, &rc);
	if (!rc)
		rc = open_lun(l->target, r->host, &l->lun);
	if (!HO_LIBISCSI && rc == ERR_NOTSUP && path == LUN_PATH_LIBISCSI && !l->lun) {
		json_object_object_add(out, "verified", NULL);
		snprintf(l->why, sizeof(l->why), "xl-ext on this host is built without libiscsi");
		rc = 0;
		goto out;
	}
	if (rc && path == LUN_PATH_KERNEL) {
		snprintf(l->why, sizeof(l->why),
		         "host %s cannot use %.300s, the kernel initiator's device of %.300s: %s; "
		         "check 'iscsiadm -m session' and that the target's ACL admits this "
		         "host's initiator (/etc/iscsi/initiatorname.iscsi)",
		         r->host, l->target, l->url, err_str(rc));
		goto out;
	}
	if (rc && l->disk.kind == DISK_ISCSI && r->kernel) {
		snprintf(l->why, sizeof(l->why),
		         "host %s cannot log in to %s: %s; check iscsiadm's "
		         "messages above and the portal",
		         r->host, l->url, err_str(rc));
		goto out;
	}
	if (rc) {
		char initiator[ISCSI_INITIATOR_MAX] = "";

		iscsi_initiator_name(r->host, initiator, sizeof(initiator));
		snprintf(l->why, sizeof(l->why),
		         "host %s cannot log in to %s: %s; check the portal "
		         "and that the target's ACL admits initiator %s",
		         r->host, l->url, err_str(rc), initiator);
		goto out;
	}
	json_object_object_add(out, "access", json_object_new_string(lun_path_name(path)));
	json_object_object_add(out, "device",
	                       path == LUN_PATH_KERNEL ? json_object_new_string(l->target) : NULL);
	if (!json_object_object_get_ex(req_lun, "identity", &identity) ||
	    lunid_from_json(json_object_to_json_string(identity), want)) {
		snprintf(l->why, sizeof(l->why), "the sender's identity of %s is malformed",
		         l->url);
		rc = ERR_PROTO;
		goto out;
	}
	rc = lun_identity(l->lun, have);
	if (!rc && lunid_compare(want, have, why, sizeof(why)))
		rc = ERR_MISMATCH;
	json_object_object_add(out, "verified", json_object_new_boolean(!rc));
	if (rc) {
		snprintf(l->why, sizeof(l->why),
		         "%s as seen from host %s is not the source's LUN: %s", lun_name(l->lun),
		         r->host, rc == ERR_MISMATCH ? why : err_str(rc));
		goto out;
	}
	if (l->readonly) {
		snprintf(l->why, sizeof(l->why),
		         "read-only: identity verified, ownership untouched");
		goto out;
	}
	rc = lun_pr_read(l->lun, &view);
	if (rc) {
		snprintf(l->why, sizeof(l->why), "host %s cannot read the reservation of %s: %s",
		         r->host, lun_name(l->lun), err_str(rc));
		goto out;
	}
	json_object_object_add(out, "holder_before",
	                       view.reserved ? json_object_new_string(key_str(view.holder, kb))
	                                     : NULL);
	l->plan = own_plan_handover(&view, r->src_key, r->key, why, sizeof(why));
	if (l->plan == OWN_PLAN_REFUSE) {
		snprintf(l->why, sizeof(l->why), "%s: %s", lun_name(l->lun), why);
		rc = ERR_CONFLICT;
		goto out;
	}
	if (l->plan == OWN_PLAN_HANDOVER) {
		rc = own_init(&l->m, OWN_FLOW_HANDOVER, r->key, r->src_key);
		if (!rc)
			rc = own_drive(&l->m, lun_pr_execute, l->lun);
		if (!rc)
			l->registered = 1;
		else
			snprintf(l->why, sizeof(l->why), "host %s cannot register key %s on %s: %s",
			         r->host, key_str(r->key, kb), lun_name(l->lun),
			         l->m.why[0] ? l->m.why : err_str(rc));
	} else {
		rc = pr_register(l->lun, OWN_OP_REGISTER, r->key);
		if (!rc)
			l->registered = 1;
		snprintf(l->why, sizeof(l->why),
		         rc ? "host %s cannot register key %s on %s: %s"
		            : "host %s registered key %s on %s, which has no "
		              "reservation: nothing to hand over%s",
		         r->host, key_str(r->key, kb), lun_name(l->lun), rc ? err_str(rc) : "");
	}
out:
	json_object_object_add(out, "registered", json_object_new_boolean(l->registered));
	free(want);
	free(have);
	return rc;
}

/* Undo what prepare_lun registered (undo), and log out. */
static void release_lun(struct ho_receiver *r, struct ho_lun *l, int undo)
{
	if (undo && l->registered && l->plan == OWN_PLAN_HANDOVER && !l->m.go) {
		own_abort(&l->m);
		own_drive(&l->m, lun_pr_execute, l->lun);
	} else if (l->registered && l->plan == OWN_PLAN_REGISTER) {
		if (pr_register(l->lun, OWN_OP_UNREGISTER, r->key))
			log_warn("%s: could not remove this host's registration", lun_name(l->lun));
	}
	if (undo && l->klun) {
		if (pr_register(l->klun, OWN_OP_UNREGISTER, r->key))
			log_warn("%s: could not remove this host's registration on the kernel's "
			         "session",
			         lun_name(l->klun));
	}
	l->registered = 0;
	lun_close(l->lun);
	lun_close(l->klun);
	l->lun = NULL;
	l->klun = NULL;
}

/* GO given, the guest runs here: take the reservation over. Fills out. */
static void go_lun(struct ho_receiver *r, struct ho_lun *l, json_object *out)
{
	struct own_view view;
	char kb[20];
	int rc = 0;

	if (!l->lun) {
		json_object_object_add(out, "handover", json_object_new_string("not checked"));
		json_object_object_add(out, "why", json_object_new_string(l->why));
		return;
	}
	if (l->registered && !register_kernel(r, l) && l->klun) {
		/* finish on the kernel's session: the preempt and the final view are its */
		lun_close(l->lun);
		l->lun = l->klun;
		l->klun = NULL;
	}
	json_object_object_add(out, "access",
	                       json_object_new_string(lun_path_name(lun_path(l->lun))));
	if (l->plan == OWN_PLAN_HANDOVER && l->registered) {
		own_go(&l->m);
		for (int attempt = 0; attempt < 3; attempt++) {
			rc = own_drive(&l->m, lun_pr_execute, l->lun);
			if (!rc || own_finished(&l->m))
				break;
		}
		json_object_object_add(out, "handover",
		                       json_object_new_string(rc ? "failed" : "done"));
		json_object_object_add(out, "preempted",
		                       json_object_new_string(key_str(r->src_key, kb)));
		if (rc)
			json_object_object_add(
			    out, "why",
			    json_object_new_string(l->m.why[0] ? l->m.why : err_str(rc)));
	} else {
		json_object_object_add(
		    out, "handover",
		    json_object_new_string(l->readonly ? "read-only" : "not reserved"));
		json_object_object_add(out, "why", json_object_new_string(l->why));
	}
	if (!lun_pr_read(l->lun, &view)) {
		json_object_object_add(
		    out, "holder",
		    view.reserved ? json_object_new_string(key_str(view.holder, kb)) : NULL);
		json_object_object_add(out, "keys", keys_json(&view));
	}
}

/*
 * A LUN of the request names the iscsi:// URL the sender's disk_iscsi_url made; anything else
 * (none, a device path, one too long for l->url) is refused, not truncated or opened.
 */
static int check_lun_url(json_object *q, struct ho_lun *l, json_object *out)
{
	const char *url = jstr(q, "url");

	if (url && !strncmp(url, "iscsi://", 8) && strlen(url) < sizeof(l->url))
		return 0;
	snprintf(l->why, sizeof(l->why),
	         "the sender's LUN entry has no iscsi:// URL of at most %zu bytes",
	         sizeof(l->url) - 1);
	json_object_object_add(out, "registered", json_object_new_boolean(0));
	return ERR_PROTO;
}

static int receiver_prepare(void *ctx, const char *request, char **answer_r)
{
	struct ho_receiver *r = ctx;
	json_object *req = json_tokener_parse(request), *luns = NULL,
	            *ans = json_object_new_object();
	json_object *outs = json_object_new_array();
	char kb[20];
	int rc = 0, first = 0;

	*answer_r = NULL;
	rc = hostid_local(r->host, sizeof(r->host), &r->key);
	json_object_object_add(ans, "dest_host", json_object_new_string(r->host));
	json_object_object_add(ans, "dest_key", json_object_new_string(key_str(r->key, kb)));
	if (!rc && (!req || !json_object_object_get_ex(req, "luns", &luns) ||
	            !json_object_is_type(luns, json_type_array))) {
		log_error("migration receiver: the sender's storage request is not xl-ext's JSON");
		rc = ERR_PROTO;
	}
	if (!rc) {
		r->src_key = key_parse(req, "source_key");
		snprintf(r->src_host, sizeof(r->src_host), "%s",
		         jstr(req, "source_host") ? jstr(req, "source_host") : "?");
		if (!r->src_key)
			rc = ERR_PROTO;
	}
	if (!rc && json_object_array_length(luns) > HO_MAX_LUNS) {
		log_error("migration receiver: the sender's storage request names %zu LUNs; this "
		          "host hands over at most %d",
		          json_object_array_length(luns), HO_MAX_LUNS);
		rc = ERR_NOTSUP;
	}
	for (size_t i = 0; !rc && i < json_object_array_length(luns); i++) {
		json_object *q = json_object_array_get_idx(luns, i), *o = json_object_new_object(),
		            *ro;
		struct ho_lun *l = &r->luns[r->n++];
		int lrc;

		snprintf(l->url, sizeof(l->url), "%s", jstr(q, "url") ? jstr(q, "url") : "");
		snprintf(l->spec, sizeof(l->spec), "%s", jstr(q, "spec") ? jstr(q, "spec") : "");
		l->readonly =
		    json_object_object_get_ex(q, "readonly", &ro) && json_object_get_boolean(ro);
		json_object_object_add(o, "url", json_object_new_string(l->url));
		lrc = check_lun_url(q, l, o);
		if (!lrc)
			lrc = prepare_lun(r, l, q, o);
		json_object_object_add(o, "ok", json_object_new_boolean(!lrc));
		json_object_object_add(o, "why", json_object_new_string(l->why));
		json_object_array_add(outs, o);
		if (lrc) {
			log_error("migration receiver: disk '%s' of %s: %s", l->spec,
			          jstr(req, "domain") ? jstr(req, "domain") : "?", l->why);
			if (!first)
				first = lrc;
		} else {
			log_info("migration receiver: disk '%s': %s", l->spec,
			         l->registered && l->plan == OWN_PLAN_HANDOVER
			             ? "identity verified, registered, source holds the reservation"
			             : l->why);
		}
	}
	if (!rc)
		rc = first;
	json_object_object_add(ans, "ok", json_object_new_boolean(!rc));
	json_object_object_add(ans, "luns", outs);
	*answer_r = strdup(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN));
	json_object_put(ans);
	json_object_put(req);
	return rc;
}

static int receiver_go(void *ctx, char **final_r)
{
	struct ho_receiver *r = ctx;
	json_object *fin = json_object_new_object(), *outs = json_object_new_array();
	int64_t t0 = loop_now_us();

	for (unsigned i = 0; i < r->n; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "url", json_object_new_string(r->luns[i].url));
		go_lun(r, &r->luns[i], o);
		json_object_array_add(outs, o);
		release_lun(r, &r->luns[i], 0);
	}
	json_object_object_add(fin, "luns", outs);
	json_object_object_add(fin, "preempt_ms",
	                       json_object_new_double((double)(loop_now_us() - t0) / 1000.0));
	*final_r = strdup(json_object_to_json_string_ext(fin, JSON_C_TO_STRING_PLAIN));
	log_info("migration target: reservation hand-over: %s", *final_r ? *final_r : "?");
	json_object_put(fin);
	r->n = 0;
	return 0;
}

/* The domain exists here, paused, its disks attached: block-iscsi disks' kernel sessions. */
static int receiver_received(void *ctx)
{
	struct ho_receiver *r = ctx;
	int rc = 0;

	for (unsigned i = 0; i < r->n && !rc; i++)
		rc = register_kernel(r, &r->luns[i]);
	return rc;
}

static void receiver_abort(void *ctx)
{
	struct ho_receiver *r = ctx;

	for (unsigned i = 0; i < r->n; i++)
		release_lun(r, &r->luns[i], 1);
	r->n = 0;
}

void ho_receiver_free(struct ho_receiver *r)
{
	if (!r)
		return;
	receiver_abort(r);
	free(r);
}

const struct mig_ext_ops ho_ext_ops = {
    .ready = sender_ready,
    .final = sender_final,
    .prepare = receiver_prepare,
    .received = receiver_received,
    .go = receiver_go,
    .abort = receiver_abort,
};
