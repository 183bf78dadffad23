/*
 * cmd_disks.c - the disks of a domain about to migrate, for "xl-ext migrate": gathered from
 * the backend, classified with storage/disk.c, checked before anything is suspended, and
 * reported in --json.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/cmd_disks.h"
#include "xl-ext/sim/simcfg.h"

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

/* sim: the specs as written in the domain's configuration (or in the -C file). */
static int collect_sim(const struct hv_ops *ops, struct hv *hv, uint32_t domid, const char *name,
                       const char *config_file, struct mig_disks *d)
{
	struct sim_config *cfg = calloc(1, sizeof(*cfg));
	char *json = NULL;
	int rc;

	if (!cfg)
		return ERR_NOMEM;
	if (config_file) {
		rc = simcfg_parse_file(config_file, cfg);
	} else {
		rc = ops->config_json(hv, domid, &json);
		if (!rc)
			rc = simcfg_from_json(json, cfg);
	}
	if (rc) {
		log_error("domain %s: cannot read its configuration to check its disks", name);
		goto out;
	}
	rc = disks_alloc(d, cfg->ndisks);
	for (unsigned i = 0; !rc && i < cfg->ndisks; i++)
		rc = classify_one(name, cfg->disks[i].spec, d);
out:
	free(json);
	free(cfg);
	return rc;
}

/*
 * xen: a spec rebuilt from each backend's params and script. The backend's mode is not
 * carried by hv_disk, so every disk counts as writable: the safe side of the check.
 */
static int collect_backends(const struct hv_ops *ops, struct hv *hv, uint32_t domid,
                            const char *name, struct mig_disks *d)
{
	struct hv_disk *bk = NULL;
	char spec[DISK_SPEC_MAX];
	size_t n = 0;
	int rc;

	rc = ops->disk_backends(hv, domid, &bk, &n);
	if (rc) {
		log_error("domain %s: cannot read its disk backends: %s", name, err_str(rc));
		return rc;
	}
	rc = disks_alloc(d, (unsigned)n);
	for (size_t i = 0; !rc && i < n; i++) {
		if (bk[i].script[0])
			snprintf(spec, sizeof(spec), "vdev=%s,access=rw,script=%s,target=%s",
			         bk[i].vdev, bk[i].script, bk[i].params);
		else
			snprintf(spec, sizeof(spec), "vdev=%s,access=rw,target=%s", bk[i].vdev,
			         bk[i].params);
		rc = classify_one(name, spec, d);
	}
	free(bk);
	return rc;
}

int mig_disks_collect(const struct hv_ops *ops, struct hv *hv, uint32_t domid, const char *name,
                      const char *config_file, struct mig_disks *disks_r)
{
	int rc;

	memset(disks_r, 0, sizeof(*disks_r));
	if (!strcmp(ops->name, "sim"))
		rc = collect_sim(ops, hv, domid, name, config_file, disks_r);
	else if (ops->disk_backends)
		rc = collect_backends(ops, hv, domid, name, disks_r);
	else {
		log_debug("domain %s: the %s backend does not list disks; disks not checked", name,
		          ops->name);
		return 0;
	}
	if (rc)
		mig_disks_dispose(disks_r);
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

void mig_disks_dispose(struct mig_disks *disks)
{
	free(disks->info);
	free(disks->verdict);
	memset(disks, 0, sizeof(*disks));
}
