/*
 * simcfg.c - sim domU configuration: xl.cfg through libxlutil, JSON through json-c.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libxl.h>
#include <libxlutil.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/sim/simcfg.h"
#include "xl-ext/core/xlcfg.h"

const char *sim_pattern_name(enum sim_pattern p)
{
	switch (p) {
	case SIM_PATTERN_UNIFORM:
		return "uniform";
	case SIM_PATTERN_SEQUENTIAL:
		return "sequential";
	case SIM_PATTERN_HOTSET:
		return "hotset";
	}
	return "?";
}

static int pattern_parse(const char *s, enum sim_pattern *p)
{
	if (!strcmp(s, "uniform"))
		*p = SIM_PATTERN_UNIFORM;
	else if (!strcmp(s, "sequential"))
		*p = SIM_PATTERN_SEQUENTIAL;
	else if (!strcmp(s, "hotset") || !strcmp(s, "hot"))
		*p = SIM_PATTERN_HOTSET;
	else
		return ERR_INVAL;
	return 0;
}

/* "k=v,k=v" spec: return the value of key into out, 1 if found. */
static int spec_get(const char *spec, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = spec;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		while (len && *p == ' ') {
			p++;
			len--;
		}
		if (len > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			size_t vlen = len - klen - 1;

			if (vlen >= outlen)
				vlen = outlen - 1;
			memcpy(out, p + klen + 1, vlen);
			out[vlen] = '\0';
			return 1;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

static int parse_number(const char *source, const char *key, const char *s, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > max) {
		log_error("%s: %s: '%s' is not a number between 0 and %.0f", source, key, s, max);
		return ERR_INVAL;
	}
	*out = v;
	return 0;
}

static int parse_workload(const char *source, const char *spec, struct sim_config *cfg)
{
	static const char *const keys[] = {"dirty_mibps", "pattern",  "hot_mib",
	                                   "seed",        "fill_mib", "disk_write_hz"};
	char val[128];
	double d;
	int rc;

	/* every item must be a known key */
	for (const char *p = spec; p && *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		bool known = false;

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (len > strlen(keys[i]) && !strncmp(p, keys[i], strlen(keys[i])) &&
			    p[strlen(keys[i])] == '=')
				known = true;
		if (!known) {
			log_error("%s: workload: unknown item '%.*s' (known: dirty_mibps, pattern, "
			          "hot_mib, seed, fill_mib, disk_write_hz)",
			          source, (int)len, p);
			return ERR_INVAL;
		}
		p = end ? end + 1 : NULL;
	}
	if (spec_get(spec, "dirty_mibps", val, sizeof(val))) {
		rc = parse_number(source, "workload dirty_mibps", val, 100000, &cfg->dirty_mibps);
		if (rc)
			return rc;
	}
	if (spec_get(spec, "pattern", val, sizeof(val)) && pattern_parse(val, &cfg->pattern)) {
		log_error("%s: workload pattern '%s' unknown (uniform, sequential, hotset)", source,
		          val);
		return ERR_INVAL;
	}
	if (spec_get(spec, "hot_mib", val, sizeof(val))) {
		rc = parse_number(source, "workload hot_mib", val, SIMCFG_MAX_MEMORY_MIB, &d);
		if (rc)
			return rc;
		cfg->hot_mib = (uint64_t)d;
	}
	if (spec_get(spec, "seed", val, sizeof(val))) {
		rc = parse_number(source, "workload seed", val, 4e18, &d);
		if (rc)
			return rc;
		cfg->seed = (uint64_t)d;
	}
	if (spec_get(spec, "fill_mib", val, sizeof(val))) {
		rc = parse_number(source, "workload fill_mib", val, (double)cfg->memory_mib, &d);
		if (rc)
			return rc;
		cfg->fill_mib = (uint64_t)d;
	}
	if (spec_get(spec, "disk_write_hz", val, sizeof(val))) {
		rc = parse_number(source, "workload disk_write_hz", val, SIMCFG_MAX_DISK_WRITE_HZ,
		                  &cfg->disk_write_hz);
		if (rc)
			return rc;
	}
	if (cfg->pattern == SIM_PATTERN_HOTSET &&
	    (cfg->hot_mib == 0 || cfg->hot_mib > cfg->memory_mib)) {
		log_error("%s: workload pattern hotset needs hot_mib between 1 and memory (%llu)",
		          source, (unsigned long long)cfg->memory_mib);
		return ERR_INVAL;
	}
	return 0;
}

static int parse_disks(XLU_Config *xc, const char *source, struct sim_config *cfg)
{
	XLU_ConfigList *list;
	int n = 0;

	if (xlu_cfg_get_list(xc, "disk", &list, &n, 0))
		return 0; /* no disks */
	if (n > SIMCFG_MAX_DISKS) {
		log_error("%s: disk: %d disks, at most %d supported", source, n, SIMCFG_MAX_DISKS);
		return ERR_INVAL;
	}
	for (int i = 0; i < n; i++) {
		const char *spec = xlu_cfg_get_listitem(list, i);
		struct sim_disk *d = &cfg->disks[cfg->ndisks];
		libxl_device_disk disk;
		int rc;

		if (!spec) {
			log_error("%s: disk: entry %d is not a string", source, i);
			return ERR_INVAL;
		}
		libxl_device_disk_init(&disk);
		rc = xlcfg_disk_parse(xc, source, spec, &disk);
		if (rc < 0) {
			libxl_device_disk_dispose(&disk);
			return rc;
		}
		if (rc) {
			log_error("%s: disk: cannot parse '%s'", source, spec);
			libxl_device_disk_dispose(&disk);
			return ERR_INVAL;
		}
		snprintf(d->spec, sizeof(d->spec), "%s", spec);
		snprintf(d->target, sizeof(d->target), "%s", disk.pdev_path ? disk.pdev_path : "");
		snprintf(d->vdev, sizeof(d->vdev), "%s", disk.vdev ? disk.vdev : "");
		snprintf(d->script, sizeof(d->script), "%s", disk.script ? disk.script : "");
		d->readwrite = disk.readwrite != 0;
		libxl_device_disk_dispose(&disk);
		cfg->ndisks++;
	}
	return 0;
}

static int parse_common(XLU_Config *xc, const char *source, struct sim_config *cfg)
{
	XLU_ConfigList *vifs;
	const char *s;
	long l;
	int nvifs = 0, rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->vcpus = 1;
	cfg->type = HV_TYPE_PV;
	if (xlu_cfg_get_string(xc, "name", &s, 0) || !s[0]) {
		log_error("%s: no domain name (name = \"...\")", source);
		return ERR_INVAL;
	}
	if (strlen(s) >= HV_NAME_MAX - 16 || strchr(s, '/') || strchr(s, ' ')) {
		log_error(
		    "%s: name '%s': must be shorter than %d characters, without '/' or spaces",
		    source, s, HV_NAME_MAX - 16);
		return ERR_INVAL;
	}
	snprintf(cfg->name, sizeof(cfg->name), "%s", s);
	if (!xlu_cfg_get_string(xc, "type", &s, 0) && hv_type_parse(s, &cfg->type)) {
		log_error("%s: type '%s': must be pv, pvh or hvm", source, s);
		return ERR_INVAL;
	}
	if (!xlu_cfg_get_string(xc, "builder", &s, 1) && !strcmp(s, "hvm"))
		cfg->type = HV_TYPE_HVM;
	if (xlu_cfg_get_long(xc, "memory", &l, 0) || l <= 0 || l > SIMCFG_MAX_MEMORY_MIB) {
		log_error("%s: memory: a size in MiB between 1 and %u is required", source,
		          SIMCFG_MAX_MEMORY_MIB);
		return ERR_INVAL;
	}
	cfg->memory_mib = (uint64_t)l;
	if (!xlu_cfg_get_long(xc, "vcpus", &l, 0)) {
		if (l < 1 || l > SIMCFG_MAX_VCPUS) {
			log_error("%s: vcpus: %ld is not between 1 and %d", source, l,
			          SIMCFG_MAX_VCPUS);
			return ERR_INVAL;
		}
		cfg->vcpus = (unsigned)l;
	}
	if (!xlu_cfg_get_list(xc, "vif", &vifs, &nvifs, 0) && nvifs > 0) {
		const char *vif = xlu_cfg_get_listitem(vifs, 0);

		if (vif) {
			spec_get(vif, "ip", cfg->ip, sizeof(cfg->ip));
			spec_get(vif, "mac", cfg->mac, sizeof(cfg->mac));
		}
	}
	rc = parse_disks(xc, source, cfg);
	if (rc)
		return rc;
	if (!xlu_cfg_get_string(xc, "workload", &s, 1)) {
		rc = parse_workload(source, s, cfg);
		if (rc)
			return rc;
	}
	return 0;
}

int simcfg_parse_data(const char *source, const char *data, size_t len, struct sim_config *cfg)
{
	XLU_Config *xc;
	int rc;

	rc = xlcfg_read_data(source, data, len, &xc);
	if (rc)
		return rc;
	rc = parse_common(xc, source, cfg);
	xlu_cfg_destroy(xc);
	return rc;
}

int simcfg_parse_file(const char *path, struct sim_config *cfg)
{
	XLU_Config *xc;
	int rc;

	rc = xlcfg_read_file(path, &xc);
	if (rc)
		return rc;
	rc = parse_common(xc, path, cfg);
	xlu_cfg_destroy(xc);
	return rc;
}

int simcfg_to_json(const struct sim_config *cfg, char **json_r)
{
	json_object *o = json_object_new_object(), *disks = json_object_new_array();
	const char *s;

	if (!o || !disks)
		return ERR_NOMEM;
	json_object_object_add(o, "name", json_object_new_string(cfg->name));
	json_object_object_add(o, "type", json_object_new_string(hv_type_name(cfg->type)));
	json_object_object_add(o, "memory", json_object_new_int64((int64_t)cfg->memory_mib));
	json_object_object_add(o, "vcpus", json_object_new_int((int)cfg->vcpus));
	json_object_object_add(o, "ip", json_object_new_string(cfg->ip));
	json_object_object_add(o, "mac", json_object_new_string(cfg->mac));
	json_object_object_add(o, "dirty_mibps", json_object_new_double(cfg->dirty_mibps));
	json_object_object_add(o, "pattern",
	                       json_object_new_string(sim_pattern_name(cfg->pattern)));
	json_object_object_add(o, "hot_mib", json_object_new_int64((int64_t)cfg->hot_mib));
	json_object_object_add(o, "seed", json_object_new_int64((int64_t)cfg->seed));
	json_object_object_add(o, "fill_mib", json_object_new_int64((int64_t)cfg->fill_mib));
	json_object_object_add(o, "disk_write_hz", json_object_new_double(cfg->disk_write_hz));
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		json_object *d = json_object_new_object();

		json_object_object_add(d, "spec", json_object_new_string(cfg->disks[i].spec));
		json_object_object_add(d, "target", json_object_new_string(cfg->disks[i].target));
		json_object_object_add(d, "vdev", json_object_new_string(cfg->disks[i].vdev));
		json_object_object_add(d, "script", json_object_new_string(cfg->disks[i].script));
		json_object_object_add(d, "readwrite",
		                       json_object_new_boolean(cfg->disks[i].readwrite));
		json_object_array_add(disks, d);
	}
	json_object_object_add(o, "disks", disks);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	*json_r = s ? strdup(s) : NULL;
	json_object_put(o);
	return *json_r ? 0 : ERR_NOMEM;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int jnum(json_object *o, const char *key, double *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return ERR_INVAL;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return ERR_INVAL;
	*out = json_object_get_double(v);
	return 0;
}

int simcfg_from_json(const char *json, struct sim_config *cfg)
{
	json_object *o = json_tokener_parse(json), *disks;
	const char *s;
	double d;
	int rc = ERR_INVAL;

	memset(cfg, 0, sizeof(*cfg));
	if (!o || !json_object_is_type(o, json_type_object))
		goto out;
	s = jstr(o, "name");
	if (!s || !s[0] || strlen(s) >= HV_NAME_MAX - 16 || strchr(s, '/'))
		goto out;
	snprintf(cfg->name, sizeof(cfg->name), "%s", s);
	s = jstr(o, "type");
	if (!s || hv_type_parse(s, &cfg->type))
		goto out;
	if (jnum(o, "memory", &d) || d < 1 || d > SIMCFG_MAX_MEMORY_MIB)
		goto out;
	cfg->memory_mib = (uint64_t)d;
	if (jnum(o, "vcpus", &d) || d < 1 || d > SIMCFG_MAX_VCPUS)
		goto out;
	cfg->vcpus = (unsigned)d;
	if ((s = jstr(o, "ip")))
		snprintf(cfg->ip, sizeof(cfg->ip), "%s", s);
	if ((s = jstr(o, "mac")))
		snprintf(cfg->mac, sizeof(cfg->mac), "%s", s);
	if (jnum(o, "dirty_mibps", &cfg->dirty_mibps) || cfg->dirty_mibps < 0)
		goto out;
	s = jstr(o, "pattern");
	if (!s || pattern_parse(s, &cfg->pattern))
		goto out;
	if (jnum(o, "hot_mib", &d) || d < 0 || d > (double)cfg->memory_mib)
		goto out;
	cfg->hot_mib = (uint64_t)d;
	if (jnum(o, "seed", &d) || d < 0)
		goto out;
	cfg->seed = (uint64_t)d;
	if (!jnum(o, "fill_mib", &d) && d >= 0 && d <= (double)cfg->memory_mib)
		cfg->fill_mib = (uint64_t)d; /* optional: older senders do not send it */
	if (!jnum(o, "disk_write_hz", &d) && d >= 0 && d <= SIMCFG_MAX_DISK_WRITE_HZ)
		cfg->disk_write_hz = d; /* optional too */
	if (json_object_object_get_ex(o, "disks", &disks)) {
		size_t n;

		if (!json_object_is_type(disks, json_type_array))
			goto out;
		n = json_object_array_length(disks);
		if (n > SIMCFG_MAX_DISKS)
			goto out;
		for (size_t i = 0; i < n; i++) {
			json_object *dj = json_object_array_get_idx(disks, i), *rw;
			struct sim_disk *dk = &cfg->disks[i];

			if (!(s = jstr(dj, "spec")))
				goto out;
			snprintf(dk->spec, sizeof(dk->spec), "%s", s);
			if ((s = jstr(dj, "target")))
				snprintf(dk->target, sizeof(dk->target), "%s", s);
			if ((s = jstr(dj, "vdev")))
				snprintf(dk->vdev, sizeof(dk->vdev), "%s", s);
			if ((s = jstr(dj, "script")))
				snprintf(dk->script, sizeof(dk->script), "%s", s);
			dk->readwrite = json_object_object_get_ex(dj, "readwrite", &rw) &&
			                json_object_get_boolean(rw);
			cfg->ndisks++;
		}
	}
	rc = 0;
out:
	if (rc)
		log_error("domain configuration JSON is malformed or out of range");
	json_object_put(o);
	return rc;
}
