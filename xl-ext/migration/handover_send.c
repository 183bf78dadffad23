/*
 * handover_send.c - the sending end of the reservation hand-over (handover.h): this host's
 * view of every LUN in the request, the destination's answer judged before anything is
 * suspended, its final message in the --json report.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/migration/handover_int.h"
#include "xl-ext/storage/hostid.h"
#include "xl-ext/storage/iscsi.h"
#include "xl-ext/storage/lunid.h"

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
		rc = ho_open_lun(target, host, lun_r);
	if (!lun_have_libiscsi() && rc == ERR_NOTSUP && *path_r == LUN_PATH_LIBISCSI && !*lun_r)
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
	json_object_object_add(o, "holder",
	                       view.reserved ? json_object_new_string(ho_key_str(view.holder, kb))
	                                     : NULL);
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
			dup = !strcmp(ho_jstr(json_object_array_get_idx(luns, j), "url"), url);
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
	json_object_object_add(req, "source_key", json_object_new_string(ho_key_str(s->key, kb)));
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
		    domain, dest, d->vdev, d->spec, host, ho_key_str(key, kb),
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
		const char *u = ho_jstr(l, "url");

		if (u && !strcmp(u, url))
			return l;
	}
	return NULL;
}

int ho_sender_ready(void *ctx, const char *answer)
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
			          ho_jstr(s->answer, "dest_host") ? ho_jstr(s->answer, "dest_host")
			                                          : "?",
			          s->dest, ho_jstr(l, "why") ? ho_jstr(l, "why") : "?");
			rc =
			    s->disks->verdict[i] == MIG_DISK_MISMATCH ? ERR_MISMATCH : ERR_CONFLICT;
		}
	}
	if (!json_object_get_boolean(ok) && !rc)
		rc = ERR_REMOTE;
	return rc;
}

/*
 * The destination runs the guest but sent no final message: it may have died before its
 * preempt, leaving this host's key holding LUNs the guest writes there. Name each LUN it
 * registered for and the operator's step.
 */
static void warn_not_taken_over(const struct ho_sender *s)
{
	json_object *luns, *v;
	char kb[20];

	if (!s->answer || !json_object_object_get_ex(s->answer, "luns", &luns) ||
	    !json_object_is_type(luns, json_type_array))
		return;
	for (size_t j = 0; j < json_object_array_length(luns); j++) {
		json_object *l = json_object_array_get_idx(luns, j);
		const char *url = ho_jstr(l, "url");

		if (!url || !json_object_object_get_ex(l, "registered", &v) ||
		    !json_object_get_boolean(v))
			continue;
		log_warn("domain %s: %s may not have taken %s over: if 'xl-ext pr %s show' lists "
		         "this host's key %s, run 'xl-ext pr %s fence %s' on the destination",
		         s->domain, s->dest, url, url, ho_key_str(s->key, kb), url, kb);
	}
}

void ho_sender_final(void *ctx, const char *final)
{
	struct ho_sender *s = ctx;
	json_object *luns;

	s->final = final ? json_tokener_parse(final) : NULL;
	if (!final) {
		warn_not_taken_over(s);
		return;
	}
	if (!s->final || !json_object_object_get_ex(s->final, "luns", &luns) ||
	    !json_object_is_type(luns, json_type_array)) {
		log_warn("domain %s: %s's final hand-over message has no list of LUNs; "
		         "check the reservations with 'xl-ext pr URL show'",
		         s->domain, s->dest);
		return;
	}
	for (size_t j = 0; j < json_object_array_length(luns); j++) {
		json_object *l = json_object_array_get_idx(luns, j);
		const char *st = ho_jstr(l, "handover");
		const char *url = ho_jstr(l, "url") ? ho_jstr(l, "url") : "?";

		if (st && !strcmp(st, "failed"))
			log_error(
			    "domain %s runs on %s, but the reservation of %s was not handed over: "
			    "%s; the source's key may still be registered (xl-ext pr URL show)",
			    s->domain, s->dest, url, ho_jstr(l, "why") ? ho_jstr(l, "why") : "?");
		else if (st)
			log_info("domain %s: %s: hand-over %s, holder %s", s->domain, url, st,
			         ho_jstr(l, "holder") ? ho_jstr(l, "holder") : "none");
	}
}

void ho_sender_report(const struct ho_sender *s, json_object *disks_json, json_object *report)
{
	json_object *h = json_object_new_object();
	char kb[20];

	json_object_object_add(h, "source_host", json_object_new_string(s->host));
	json_object_object_add(h, "source_key", json_object_new_string(ho_key_str(s->key, kb)));
	json_object_object_add(h, "dest_host",
	                       ho_jstr(s->answer, "dest_host")
	                           ? json_object_new_string(ho_jstr(s->answer, "dest_host"))
	                           : NULL);
	json_object_object_add(h, "dest_key",
	                       ho_jstr(s->answer, "dest_key")
	                           ? json_object_new_string(ho_jstr(s->answer, "dest_key"))
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
		                       f && ho_jstr(f, "handover")
		                           ? json_object_new_string(ho_jstr(f, "handover"))
		                           : json_object_new_string(a ? "not done" : "not asked"));
		json_object_object_add(o, "holder_before",
		                       a && ho_jstr(a, "holder_before")
		                           ? json_object_new_string(ho_jstr(a, "holder_before"))
		                           : NULL);
		json_object_object_add(o, "preempted_key",
		                       f && ho_jstr(f, "preempted")
		                           ? json_object_new_string(ho_jstr(f, "preempted"))
		                           : NULL);
		json_object_object_add(o, "holder_after",
		                       f && ho_jstr(f, "holder")
		                           ? json_object_new_string(ho_jstr(f, "holder"))
		                           : NULL);
		json_object_object_add(
		    o, "keys_after",
		    f && json_object_object_get_ex(f, "keys", &v) ? json_object_get(v) : NULL);
		if (f && ho_jstr(f, "why"))
			json_object_object_add(o, "why", json_object_new_string(ho_jstr(f, "why")));
		else if (a && ho_jstr(a, "why"))
			json_object_object_add(o, "why", json_object_new_string(ho_jstr(a, "why")));
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
