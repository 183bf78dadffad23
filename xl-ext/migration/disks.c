/*
 * disks.c - the disks of a domain about to migrate, for "xl-ext migrate": gathered from
 * the backend, classified with storage/disk.c, checked before anything is suspended, and
 * reported in --json.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/migration/disks.h"
#include "xl-ext/core/xlcfg.h"
#include "xl-ext/storage/hostid.h"
#include "xl-ext/storage/iscsi.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/storage/lunid.h"

#define LUN_TIMEOUT_S 5

static int disks_alloc(struct mig_disks *d, unsigned n)
{
	memset(d, 0, sizeof(*d));
	d->info = calloc(n ? n : 1, sizeof(*d->info));
	d->verdict = calloc(n ? n : 1, sizeof(*d->verdict));
	if (!d->info || !d->verdict) {
		mig_disks_dispose(d);
		return ERR_NOMEM;
	}
	return 0;
}

static int classify_one(const char *name, const char *spec, struct mig_disks *d)
{
	int rc = disk_classify(spec, &d->info[d->n]);

	if (rc) {
		log_error("domain %s: disk '%s' cannot be classified (see above); fix the domain's "
		          "disk configuration before migrating",
		          name, spec);
		return rc;
	}
	d->verdict[d->n++] = MIG_DISK_UNCHECKED;
	return 0;
}

int mig_disks_collect(const struct hv_ops *ops, struct hv *hv, uint32_t domid, const char *name,
                      const char *config_file, struct mig_disks *disks_r)
{
	struct hv_disk_specs specs = {0};
	int rc;

	memset(disks_r, 0, sizeof(*disks_r));
	if (config_file) {
		rc = xlcfg_disk_specs(config_file, &specs);
	} else if (ops->disk_specs) {
		rc = ops->disk_specs(hv, domid, &specs);
	} else {
		log_debug("domain %s: the %s backend does not list disks; disks not checked", name,
		          ops->name);
		return 0;
	}
	if (rc) {
		log_error("domain %s: cannot read its disks from %s: %s", name,
		          config_file ? config_file : "the hypervisor", err_str(rc));
		return rc;
	}
	rc = disks_alloc(disks_r, (unsigned)specs.n);
	for (size_t i = 0; !rc && i < specs.n; i++)
		rc = classify_one(name, specs.spec[i], disks_r);
	if (rc)
		mig_disks_dispose(disks_r);
	hv_disk_specs_free(&specs);
	return rc;
}

int mig_disks_check(const char *name, const struct mig_disks *disks, int allow_local)
{
	return disk_check_migratable(name, disks->info, disks->n, allow_local);
}

json_object *mig_disks_json(const struct mig_disks *disks)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < disks->n; i++) {
		const struct disk_info *d = &disks->info[i];
		json_object *o = json_object_new_object();
		char portal[DISK_HOST_MAX + 16];

		json_object_object_add(o, "spec", json_object_new_string(d->spec));
		json_object_object_add(o, "vdev", json_object_new_string(d->vdev));
		json_object_object_add(o, "kind", json_object_new_string(disk_kind_name(d->kind)));
		json_object_object_add(o, "readonly", json_object_new_boolean(d->readonly));
		if (d->kind == DISK_ISCSI) {
			snprintf(portal, sizeof(portal), strchr(d->host, ':') ? "[%s]:%u" : "%s:%u",
			         d->host, d->port);
			json_object_object_add(o, "portal", json_object_new_string(portal));
			json_object_object_add(o, "iqn", json_object_new_string(d->iqn));
			json_object_object_add(o, "lun", json_object_new_int((int)d->lun));
			json_object_object_add(o, "identity_verified",
			                       disks->verdict[i] == MIG_DISK_UNCHECKED
			                           ? NULL
			                           : json_object_new_boolean(disks->verdict[i]));
		}
		json_object_array_add(a, o);
	}
	return a;
}

/*
 * This host's view of a LUN through a session of our own (lun.h), as the initiator named
 * after this host (hostid.h). ERR_NOTSUP in a build without libiscsi.
 */
static int read_identity(const struct disk_info *d, struct lunid *id_r)
{
	char url[DISK_URL_MAX], host[256], initiator[ISCSI_INITIATOR_MAX];
	struct lun *lun = NULL;
	uint64_t key;
	int rc;

	rc = disk_iscsi_url(d, url, sizeof(url));
	if (!rc)
		rc = hostid_local(host, sizeof(host), &key);
	if (!rc)
		rc = iscsi_initiator_name(host, initiator, sizeof(initiator));
	if (!rc)
		rc = lun_open(url, initiator, LUN_TIMEOUT_S, &lun);
	if (!rc)
		rc = lun_identity(lun, id_r);
	lun_close(lun);
	return rc;
}

int mig_disks_identity_request(const struct mig_disks *disks, char **json_r)
{
	json_object *req = NULL, *luns = NULL;
	struct lunid *id = NULL;
	char *idjson = NULL;
	int rc = 0;

	*json_r = NULL;
	id = calloc(1, sizeof(*id));
	req = json_object_new_object();
	luns = json_object_new_array();
	if (!id || !req || !luns) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (unsigned i = 0; i < disks->n; i++) {
		const struct disk_info *d = &disks->info[i];
		json_object *o;

		if (d->kind != DISK_ISCSI)
			continue;
		rc = read_identity(d, id);
		if (rc == ERR_NOTSUP) {
			log_debug("disk %s: built without libiscsi, LUN identity not verified",
			          d->vdev);
			rc = 0;
			continue;
		}
		if (!rc)
			rc = lunid_to_json(id, &idjson);
		if (rc) {
			log_error(
			    "disk %s ('%s'): cannot read its LUN identity on this host (%s), so "
			    "the destination's view cannot be compared with it",
			    d->vdev, d->spec, err_str(rc));
			goto out;
		}
		o = json_object_new_object();
		json_object_object_add(o, "spec", json_object_new_string(d->spec));
		json_object_object_add(o, "identity", json_tokener_parse(idjson));
		json_object_array_add(luns, o);
		free(idjson);
		idjson = NULL;
	}
	if (!json_object_array_length(luns))
		goto out;
	json_object_object_add(req, "luns", luns);
	luns = NULL;
	*json_r = strdup(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	if (!*json_r)
		rc = ERR_NOMEM;
out:
	json_object_put(luns);
	json_object_put(req);
	free(idjson);
	free(id);
	return rc;
}

/* One requested LUN on this host: verdict (1, 0, -1 for "cannot check") and why. */
static int verify_one(const char *spec, json_object *identity, char *why, size_t whylen)
{
	struct lunid *want = calloc(1, sizeof(*want)), *have = calloc(1, sizeof(*have));
	struct disk_info *d = calloc(1, sizeof(*d));
	int verdict = 0, rc;

	if (!want || !have || !d) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	if (disk_classify(spec, d) || d->kind != DISK_ISCSI) {
		snprintf(why, whylen, "not an iSCSI disk spec here");
		goto out;
	}
	if (lunid_from_json(json_object_to_json_string(identity), want)) {
		snprintf(why, whylen, "the sender's identity is malformed");
		goto out;
	}
	rc = read_identity(d, have);
	if (rc == ERR_NOTSUP) {
		snprintf(why, whylen, "xl-ext here is built without libiscsi");
		verdict = -1;
	} else if (rc) {
		snprintf(why, whylen, "cannot read the LUN from this host: %s", err_str(rc));
	} else if (lunid_compare(want, have, why, whylen)) {
		verdict = 0;
	} else {
		snprintf(why, whylen, "same identity");
		verdict = 1;
	}
out:
	free(want);
	free(have);
	free(d);
	return verdict;
}

int mig_disks_verify_request(const char *request, json_object *answer)
{
	json_object *req = json_tokener_parse(request), *luns, *out;
	char why[256];
	size_t n;

	if (!req || !json_object_object_get_ex(req, "luns", &luns) ||
	    !json_object_is_type(luns, json_type_array)) {
		log_error("pre-flight: the sender's disk request is not xl-ext's JSON");
		json_object_put(req);
		return ERR_PROTO;
	}
	out = json_object_new_array();
	n = json_object_array_length(luns);
	for (size_t i = 0; i < n; i++) {
		json_object *l = json_object_array_get_idx(luns, i), *spec, *identity, *o;
		int verdict = 0;

		if (!json_object_object_get_ex(l, "spec", &spec) ||
		    !json_object_object_get_ex(l, "identity", &identity))
			continue;
		verdict = verify_one(json_object_get_string(spec), identity, why, sizeof(why));
		log_info("pre-flight: disk '%s': %s", json_object_get_string(spec), why);
		o = json_object_new_object();
		json_object_object_add(o, "spec", json_object_get(spec));
		json_object_object_add(o, "verified",
		                       verdict < 0 ? NULL : json_object_new_boolean(verdict));
		json_object_object_add(o, "why", json_object_new_string(why));
		json_object_array_add(out, o);
	}
	json_object_object_add(answer, "luns", out);
	json_object_put(req);
	return 0;
}

int mig_disks_apply_answer(const char *name, const char *host, struct mig_disks *disks,
                           const char *answer)
{
	json_object *o = answer ? json_tokener_parse(answer) : NULL, *luns = NULL;
	int rc = 0;

	if (o)
		json_object_object_get_ex(o, "luns", &luns);
	for (unsigned i = 0; i < disks->n; i++) {
		const struct disk_info *d = &disks->info[i];
		json_object *verified = NULL, *why = NULL;
		size_t n = luns && json_object_is_type(luns, json_type_array)
		               ? json_object_array_length(luns)
		               : 0;
		int found = 0;

		if (d->kind != DISK_ISCSI)
			continue;
		for (size_t j = 0; j < n && !found; j++) {
			json_object *l = json_object_array_get_idx(luns, j), *spec;

			if (json_object_object_get_ex(l, "spec", &spec) &&
			    !strcmp(json_object_get_string(spec), d->spec)) {
				found = 1;
				json_object_object_get_ex(l, "verified", &verified);
				json_object_object_get_ex(l, "why", &why);
			}
		}
		if (!found || !verified) {
			log_warn(
			    "domain %s: %s did not verify the LUN identity of disk %s ('%s')%s%s",
			    name, host, d->vdev, d->spec, why ? ": " : "",
			    why ? json_object_get_string(why) : "");
			continue;
		}
		disks->verdict[i] =
		    json_object_get_boolean(verified) ? MIG_DISK_VERIFIED : MIG_DISK_MISMATCH;
		if (disks->verdict[i] == MIG_DISK_MISMATCH) {
			log_error("domain %s: disk %s ('%s') is not the same LUN on %s: %s", name,
			          d->vdev, d->spec, host, why ? json_object_get_string(why) : "?");
			rc = ERR_MISMATCH;
		}
	}
	json_object_put(o);
	return rc;
}

void mig_disks_dispose(struct mig_disks *disks)
{
	free(disks->info);
	free(disks->verdict);
	memset(disks, 0, sizeof(*disks));
}
