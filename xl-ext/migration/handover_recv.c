/*
 * handover_recv.c - the receiving end of the reservation hand-over (handover.h): log in,
 * compare identities and register before the stream; preempt the source's key once the
 * guest runs here; undo on failure.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/migration/handover_int.h"
#include "xl-ext/storage/hostid.h"
#include "xl-ext/storage/iscsi.h"
#include "xl-ext/storage/iscsiadm.h"
#include "xl-ext/storage/lunid.h"

int ho_receiver_new(int kernel, struct ho_receiver **r_r)
{
	*r_r = calloc(1, sizeof(**r_r));
	if (!*r_r)
		return ERR_NOMEM;
	(*r_r)->kernel = kernel;
	(*r_r)->adm = &iscsiadm_system;
	return 0;
}

void ho_receiver_set_iscsiadm(struct ho_receiver *r, const struct iscsiadm_ops *adm)
{
	r->adm = adm ? adm : &iscsiadm_system;
}

/*
 * Which way in to l: with the xen backend the kernel initiator's device (logged in first for
 * by-path disks, lun_choose), the one blkback writes the guest's disk through; otherwise, or
 * when the spec does not classify here, a libiscsi session to the URL as before.
 */
static enum lun_path choose_target(struct ho_receiver *r, struct ho_lun *l, int *rc_r)
{
	struct lun_choice_env env = {.iscsiadm = r->adm, .login_timeout_s = HO_LOGIN_TIMEOUT_S};
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
	/* a session made here for a migration that is then refused is logged out by abort */
	if (l->disk.form == DISK_FORM_BYPATH) {
		*rc_r =
		    iscsiadm_ensure_login(r->adm, &l->disk, HO_LOGIN_TIMEOUT_S, &l->made_session);
		if (*rc_r)
			return path;
	}
	*rc_r = lun_choose(&l->disk, 1, 0, &env, l->target, &path);
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
		rc = ho_open_lun(target, r->host, &k);
	if (!rc)
		rc = ho_pr_register(k, OWN_OP_REGISTER, r->key);
	if (rc) {
		log_error("migration target: disk '%s': cannot register key %s on the kernel "
		          "initiator's session of %s (%s): the guest could not write once the "
		          "source's key is preempted",
		          l->spec, ho_key_str(r->key, kb), l->url,
		          path == LUN_PATH_KERNEL ? err_str(rc)
		                                  : "no block device after the restore");
		lun_close(k);
		return rc;
	}
	log_info("migration target: disk '%s': key %s registered on the kernel's session (%s)",
	         l->spec, ho_key_str(r->key, kb), target);
	l->klun = k;
	return 0;
}

/*
 * The libiscsi session to l failed (ERR_IO, ERR_TIMEOUT: the target restarted, the path
 * broke): log in again. The kernel initiator recovers its own sessions: nothing to do there.
 */
static int reopen_lun(struct ho_receiver *r, struct ho_lun *l)
{
	if (l->lun && lun_path(l->lun) == LUN_PATH_KERNEL)
		return 0;
	lun_close(l->lun);
	l->lun = NULL;
	return ho_open_lun(l->target, r->host, &l->lun);
}

/*
 * The stream is in and the source suspended: is this host's registration still there? A
 * target restarted without persistence has forgotten it (and the source's reservation), and
 * the guest's first write here would then be refused for good (simdisk, like a host that was
 * fenced): register again, on a new session if the old one went with the target, unless
 * another host reserved the LUN meanwhile. 0 when registered; otherwise the error, logged.
 */
static int recheck_lun(struct ho_receiver *r, struct ho_lun *l)
{
	struct own_view view;
	char why[256] = "", kb[20];
	int rc;

	if (!l->lun || !l->registered)
		return 0;
	memset(&view, 0, sizeof(view));
	rc = lun_pr_read(l->lun, &view);
	if (err_is_transport(rc)) {
		rc = reopen_lun(r, l);
		if (!rc)
			rc = lun_pr_read(l->lun, &view);
	}
	if (!rc && own_view_has_key(&view, r->key))
		return 0;
	/* reserved, by whoever (the source's own session after a target restart, or a host
	 * that fenced this one), and this host's key gone: it was preempted, and cannot tell
	 * why; registering again would undo a fence. Refused: the guest stays on the source. */
	if (!rc && own_plan_rejoin(&view, r->key) == OWN_REJOIN_CONFLICT) {
		snprintf(why, sizeof(why),
		         "key %s holds the reservation and this host's key was preempted (a "
		         "target restart or a fence of this host); retry the migration",
		         ho_key_str(view.holder, kb));
		rc = ERR_CONFLICT;
	}
	if (!rc &&
	    own_plan_handover(&view, r->src_key, r->key, why, sizeof(why)) == OWN_PLAN_REFUSE)
		rc = ERR_CONFLICT;
	if (!rc)
		rc = ho_pr_register(l->lun, OWN_OP_REGISTER, r->key);
	if (rc) {
		log_error("migration target: disk '%s': host %s's registration on %s is gone and "
		          "cannot be made again: %s",
		          l->spec, r->host, l->url, why[0] ? why : err_str(rc));
		return rc;
	}
	log_warn("migration target: disk '%s': %s no longer listed key %s (the target restarted "
	         "without persistent reservations?): registered again",
	         l->spec, l->url, ho_key_str(r->key, kb));
	return 0;
}

/*
 * After GO the guest runs here, and the hand-over's preempt failed with err: this host's
 * registration or the source's is gone (a target restarted without persistence forgets
 * both, and the session goes with it). Take the LUN as a fence of the source's key does
 * (owner.h): register, preempt it, reserve when nobody holds the LUN. A LUN reserved while
 * this host's key is gone (this host was preempted: maybe fenced, by a third host or by the
 * source's) is left alone, and this host does not register again: the guest's session would
 * join the registration. 0 when this host holds the reservation.
 */
static int retake_lun(struct ho_receiver *r, struct ho_lun *l, int err)
{
	struct own_machine f;
	struct own_view view;
	char kb[20];
	int rc = 0;

	memset(&f, 0, sizeof(f));
	memset(&view, 0, sizeof(view));
	if (err_is_transport(err))
		rc = reopen_lun(r, l);
	if (!rc)
		rc = lun_pr_read(l->lun, &view);
	/* reserved and this host's key gone (own_plan_rejoin): preempted, maybe fenced by the
	 * holder, the source's host itself; only a LUN that nobody holds (the target forgot
	 * its reservations) or one this host is still registered on is taken */
	if (!rc && own_plan_rejoin(&view, r->key) == OWN_REJOIN_CONFLICT) {
		snprintf(f.why, sizeof(f.why),
		         "key %s holds the reservation and this host's key was preempted",
		         ho_key_str(view.holder, kb));
		rc = ERR_CONFLICT;
	}
	if (!rc)
		rc = own_init(&f, OWN_FLOW_FENCE, r->key, r->src_key);
	if (!rc)
		rc = own_drive(&f, lun_pr_execute, l->lun);
	if (!rc)
		rc = lun_pr_read(l->lun, &view);
	if (!rc && (!view.reserved || view.holder != r->key))
		rc = ERR_CONFLICT;
	if (rc) {
		log_error("migration target: disk '%s': the hand-over's preempt failed (%s), and "
		          "taking %s over as after a fence of key %s failed too: %s",
		          l->spec, err_str(err), l->url, ho_key_str(r->src_key, kb),
		          f.why[0] ? f.why : err_str(rc));
		/* the report's "why" is the retake's, the last word on this LUN */
		snprintf(l->m.why, sizeof(l->m.why), "%s", f.why[0] ? f.why : err_str(rc));
		return rc;
	}
	log_warn("migration target: disk '%s': the hand-over's preempt failed (%s: the target "
	         "restarted without persistent reservations?); %s taken over as after a fence "
	         "of key %s",
	         l->spec, err_str(err), l->url, ho_key_str(r->src_key, kb));
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
		rc = ho_open_lun(l->target, r->host, &l->lun);
	if (!lun_have_libiscsi() && rc == ERR_NOTSUP && path == LUN_PATH_LIBISCSI && !l->lun) {
		json_object_object_add(out, "verified", NULL);
		if (!l->readonly && ho_jstr(req_lun, "holder")) {
			/* no session to register on: after GO the guest's writes here would be
			 * refused by the reservation the source's key holds */
			snprintf(
			    l->why, sizeof(l->why),
			    "xl-ext on host %s is built without libiscsi and has no kernel "
			    "session to %s, so it cannot take over the reservation key %s holds: "
			    "log this host in to the target (iscsiadm) or install xl-ext with "
			    "libiscsi",
			    r->host, l->url, ho_jstr(req_lun, "holder"));
			rc = ERR_NOTSUP;
			goto out;
		}
		snprintf(l->why, sizeof(l->why),
		         "xl-ext on this host is built without libiscsi: not checked (%s)",
		         l->readonly ? "read-only" : "no reservation to hand over");
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
	                       view.reserved ? json_object_new_string(ho_key_str(view.holder, kb))
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
			         r->host, ho_key_str(r->key, kb), lun_name(l->lun),
			         l->m.why[0] ? l->m.why : err_str(rc));
	} else {
		rc = ho_pr_register(l->lun, OWN_OP_REGISTER, r->key);
		if (!rc)
			l->registered = 1;
		snprintf(l->why, sizeof(l->why),
		         rc ? "host %s cannot register key %s on %s: %s"
		            : "host %s registered key %s on %s, which has no "
		              "reservation: nothing to hand over%s",
		         r->host, ho_key_str(r->key, kb), lun_name(l->lun), rc ? err_str(rc) : "");
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
		if (ho_pr_register(l->lun, OWN_OP_UNREGISTER, r->key))
			log_warn("%s: could not remove this host's registration", lun_name(l->lun));
	}
	if (undo && l->klun) {
		if (ho_pr_register(l->klun, OWN_OP_UNREGISTER, r->key))
			log_warn("%s: could not remove this host's registration on the kernel's "
			         "session",
			         lun_name(l->klun));
	}
	l->registered = 0;
	lun_close(l->lun);
	lun_close(l->klun);
	l->lun = NULL;
	l->klun = NULL;
	if (undo && l->made_session) {
		iscsiadm_logout(r->adm, &l->disk, HO_LOGIN_TIMEOUT_S);
		l->made_session = 0;
	}
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
		if (rc && !retake_lun(r, l, rc))
			rc = 0;
		json_object_object_add(out, "handover",
		                       json_object_new_string(rc ? "failed" : "done"));
		json_object_object_add(out, "preempted",
		                       json_object_new_string(ho_key_str(r->src_key, kb)));
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
		    view.reserved ? json_object_new_string(ho_key_str(view.holder, kb)) : NULL);
		json_object_object_add(out, "keys", ho_keys_json(&view));
	}
}

/*
 * A LUN of the request names the iscsi:// URL the sender's disk_iscsi_url made; anything else
 * (none, a device path, one too long for l->url) is refused, not truncated or opened.
 */
static int check_lun_url(json_object *q, struct ho_lun *l, json_object *out)
{
	const char *url = ho_jstr(q, "url");

	if (url && !strncmp(url, "iscsi://", 8) && strlen(url) < sizeof(l->url))
		return 0;
	snprintf(l->why, sizeof(l->why),
	         "the sender's LUN entry has no iscsi:// URL of at most %zu bytes",
	         sizeof(l->url) - 1);
	json_object_object_add(out, "registered", json_object_new_boolean(0));
	return ERR_PROTO;
}

int ho_receiver_prepare(void *ctx, const char *request, char **answer_r)
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
	json_object_object_add(ans, "dest_key", json_object_new_string(ho_key_str(r->key, kb)));
	if (!rc && (!req || !json_object_object_get_ex(req, "luns", &luns) ||
	            !json_object_is_type(luns, json_type_array))) {
		log_error("migration receiver: the sender's storage request is not xl-ext's JSON");
		rc = ERR_PROTO;
	}
	if (!rc) {
		r->src_key = ho_key_parse(req, "source_key");
		snprintf(r->src_host, sizeof(r->src_host), "%s",
		         ho_jstr(req, "source_host") ? ho_jstr(req, "source_host") : "?");
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

		snprintf(l->url, sizeof(l->url), "%s", ho_jstr(q, "url") ? ho_jstr(q, "url") : "");
		snprintf(l->spec, sizeof(l->spec), "%s",
		         ho_jstr(q, "spec") ? ho_jstr(q, "spec") : "");
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
			          ho_jstr(req, "domain") ? ho_jstr(req, "domain") : "?", l->why);
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

int ho_receiver_go(void *ctx, char **final_r)
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
	                       mig_json_number((double)(loop_now_us() - t0) / 1000.0, 3));
	*final_r = strdup(json_object_to_json_string_ext(fin, JSON_C_TO_STRING_PLAIN));
	log_info("migration target: reservation hand-over: %s", *final_r ? *final_r : "?");
	json_object_put(fin);
	r->n = 0;
	return 0;
}

/* The domain exists here, paused, its disks attached: block-iscsi disks' kernel sessions. */
int ho_receiver_received(void *ctx)
{
	struct ho_receiver *r = ctx;
	int rc = 0;

	for (unsigned i = 0; i < r->n && !rc; i++) {
		rc = recheck_lun(r, &r->luns[i]);
		if (!rc)
			rc = register_kernel(r, &r->luns[i]);
	}
	return rc;
}

void ho_receiver_abort(void *ctx)
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
	ho_receiver_abort(r);
	free(r);
}
