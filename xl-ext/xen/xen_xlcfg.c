/*
 * xen_xlcfg.c - an xl.cfg file to the libxl_domain_config a migration sends (migrate -C).
 *
 * xl's own parser (tools/xl/xl_parse.c) lives inside xl, not in a library, so this converts
 * what a migration needs with libxlutil's xlu_cfg_* and xlu_disk_parse: name, type (or
 * builder), memory, maxmem, vcpus, maxvcpus, kernel, ramdisk, cmdline (or root and extra),
 * bootloader, the disk list, the vif list (mac, bridge, ip, script) and the on_poweroff,
 * on_reboot, on_crash and on_watchdog actions. Every other key is
 * ignored with a debug message naming it; 'xl migrate -C' has the full parser.
 *
 * Nothing here needs a hypervisor: the libxl types are initialised and encoded without a
 * context (libxl_domain_config_to_json takes one only for its logger and accepts NULL).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxlutil.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/xen/xen.h"
#include "xl-ext/core/xlcfg.h"

static const char *const known_keys[] = {
    "name",   "type",        "builder",   "memory",   "maxmem",      "vcpus",      "maxvcpus",
    "kernel", "ramdisk",     "cmdline",   "root",     "extra",       "bootloader", "disk",
    "vif",    "on_poweroff", "on_reboot", "on_crash", "on_watchdog",
};

/* Log, at debug level, each top-level key of path this conversion does not read. */
static void log_unknown_keys(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *key;
		size_t len, i;
		int known = 0;

		while (isspace((unsigned char)*p))
			p++;
		key = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		len = (size_t)(p - key);
		while (*p == ' ' || *p == '\t')
			p++;
		if (!len || *p != '=' || !isalpha((unsigned char)key[0]))
			continue; /* comment, list continuation or blank */
		for (i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]) && !known; i++)
			known = strlen(known_keys[i]) == len && !strncmp(known_keys[i], key, len);
		if (!known)
			log_debug("%s: '%.*s' is not converted by xl-ext (ignored; 'xl migrate -C' "
			          "parses every xl.cfg key)",
			          path, (int)len, key);
	}
	fclose(f);
}

static int dup_string(const char *s, char **r)
{
	*r = strdup(s);
	return *r ? 0 : ERR_NOMEM;
}

/* An optional string key into *r (left NULL when absent). */
static int get_opt_string(XLU_Config *xc, const char *key, char **r)
{
	const char *s;

	if (xlu_cfg_get_string(xc, key, &s, 1))
		return 0;
	return dup_string(s, r);
}

static int parse_type(XLU_Config *xc, const char *path, libxl_domain_type *type_r)
{
	const char *s;

	*type_r = LIBXL_DOMAIN_TYPE_PV;
	if (!xlu_cfg_get_string(xc, "type", &s, 0)) {
		if (libxl_domain_type_from_string(s, type_r) ||
		    *type_r == LIBXL_DOMAIN_TYPE_INVALID) {
			log_error("%s: type '%s': must be pv, pvh or hvm", path, s);
			return ERR_INVAL;
		}
	} else if (!xlu_cfg_get_string(xc, "builder", &s, 0)) {
		if (!strcmp(s, "hvm"))
			*type_r = LIBXL_DOMAIN_TYPE_HVM;
		else if (strcmp(s, "generic")) {
			log_error("%s: builder '%s': must be generic or hvm", path, s);
			return ERR_INVAL;
		}
	}
	return 0;
}

static int parse_memory(XLU_Config *xc, const char *path, libxl_domain_build_info *b)
{
	long memory, maxmem;

	if (xlu_cfg_get_long(xc, "memory", &memory, 0) || memory <= 0) {
		log_error("%s: memory: a size in MiB is required (memory = 1024)", path);
		return ERR_INVAL;
	}
	maxmem = memory;
	if (!xlu_cfg_get_long(xc, "maxmem", &maxmem, 0) && maxmem < memory) {
		log_error("%s: maxmem: %ld MiB is less than memory (%ld MiB)", path, maxmem,
		          memory);
		return ERR_INVAL;
	}
	b->target_memkb = (uint64_t)memory * 1024;
	b->max_memkb = (uint64_t)maxmem * 1024;
	return 0;
}

/* vcpus online of maxvcpus; the bitmap is allocated as libxl_bitmap_alloc would, without ctx. */
static int parse_vcpus(XLU_Config *xc, const char *path, libxl_domain_build_info *b)
{
	long vcpus = 1, maxvcpus;

	if (!xlu_cfg_get_long(xc, "vcpus", &vcpus, 0) && (vcpus < 1 || vcpus > 4096)) {
		log_error("%s: vcpus: %ld is not between 1 and 4096", path, vcpus);
		return ERR_INVAL;
	}
	maxvcpus = vcpus;
	if (!xlu_cfg_get_long(xc, "maxvcpus", &maxvcpus, 0) &&
	    (maxvcpus < vcpus || maxvcpus > 4096)) {
		log_error("%s: maxvcpus: %ld is not between vcpus (%ld) and 4096", path, maxvcpus,
		          vcpus);
		return ERR_INVAL;
	}
	b->max_vcpus = (int)maxvcpus;
	b->avail_vcpus.size = (uint32_t)(maxvcpus + 7) / 8;
	b->avail_vcpus.map = calloc(b->avail_vcpus.size, 1);
	if (!b->avail_vcpus.map)
		return ERR_NOMEM;
	for (long i = 0; i < vcpus; i++)
		libxl_bitmap_set(&b->avail_vcpus, (int)i);
	return 0;
}

/* kernel, ramdisk, cmdline (or "root=ROOT EXTRA" as xl builds it) and, for PV, bootloader. */
static int parse_boot(XLU_Config *xc, libxl_domain_build_info *b)
{
	const char *root = NULL, *extra = NULL;
	int rc;

	rc = get_opt_string(xc, "kernel", &b->kernel);
	if (!rc)
		rc = get_opt_string(xc, "ramdisk", &b->ramdisk);
	if (!rc)
		rc = get_opt_string(xc, "cmdline", &b->cmdline);
	if (rc)
		return rc;
	if (!b->cmdline) {
		xlu_cfg_get_string(xc, "root", &root, 0);
		xlu_cfg_get_string(xc, "extra", &extra, 0);
		if ((root || extra) &&
		    asprintf(&b->cmdline, "%s%s%s%s", root ? "root=" : "", root ? root : "",
		             root && extra ? " " : "", extra ? extra : "") < 0) {
			b->cmdline = NULL;
			return ERR_NOMEM;
		}
	}
	if (b->type == LIBXL_DOMAIN_TYPE_PV)
		return get_opt_string(xc, "bootloader", &b->u.pv.bootloader);
	return 0;
}

static int parse_disks(XLU_Config *xc, const char *path, libxl_domain_config *cfg)
{
	XLU_ConfigList *list;
	int n = 0, rc;

	if (xlu_cfg_get_list(xc, "disk", &list, &n, 0) || n <= 0)
		return 0;
	cfg->disks = calloc((size_t)n, sizeof(*cfg->disks));
	if (!cfg->disks)
		return ERR_NOMEM;
	for (int i = 0; i < n; i++) {
		const char *spec = xlu_cfg_get_listitem(list, i);
		libxl_device_disk *d = &cfg->disks[i];

		libxl_device_disk_init(d);
		cfg->num_disks = i + 1; /* disposed with the config from now on */
		if (!spec) {
			log_error("%s: disk: entry %d is not a string", path, i + 1);
			return ERR_INVAL;
		}
		rc = xlcfg_disk_parse(xc, path, spec, d);
		if (rc < 0)
			return rc;
		if (rc) {
			log_error(
			    "%s: disk: cannot parse entry %d '%s' (see xl-disk-configuration(5))",
			    path, i + 1, spec);
			return ERR_INVAL;
		}
	}
	return 0;
}

static int parse_mac(const char *s, libxl_mac mac)
{
	unsigned v[6];
	char end;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
	           &end) != 6)
		return ERR_INVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/* One vif entry "mac=..,bridge=..,ip=..,script=.."; other keys are logged and ignored. */
static int parse_vif(const char *path, int index, const char *spec, libxl_device_nic *nic)
{
	char *copy = strdup(spec), *save = NULL, *tok;
	int rc = 0;

	if (!copy)
		return ERR_NOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
		char *val = strchr(tok, '=');

		while (isspace((unsigned char)*tok))
			tok++;
		if (!val) {
			log_error("%s: vif: entry %d '%s': '%s' is not key=value", path, index,
			          spec, tok);
			rc = ERR_INVAL;
			break;
		}
		*val++ = '\0';
		if (!strcmp(tok, "mac")) {
			rc = parse_mac(val, nic->mac);
			if (rc)
				log_error("%s: vif: entry %d: mac '%s' is not six hex bytes "
				          "(00:16:3e:xx:xx:xx)",
				          path, index, val);
		} else if (!strcmp(tok, "bridge")) {
			free(nic->bridge);
			rc = dup_string(val, &nic->bridge);
		} else if (!strcmp(tok, "ip")) {
			free(nic->ip);
			rc = dup_string(val, &nic->ip);
		} else if (!strcmp(tok, "script")) {
			free(nic->script);
			rc = dup_string(val, &nic->script);
		} else {
			log_debug("%s: vif: entry %d: '%s' is not converted by xl-ext (ignored)",
			          path, index, tok);
		}
	}
	free(copy);
	return rc;
}

static int parse_vifs(XLU_Config *xc, const char *path, libxl_domain_config *cfg)
{
	XLU_ConfigList *list;
	int n = 0, rc;

	if (xlu_cfg_get_list(xc, "vif", &list, &n, 0) || n <= 0)
		return 0;
	cfg->nics = calloc((size_t)n, sizeof(*cfg->nics));
	if (!cfg->nics)
		return ERR_NOMEM;
	for (int i = 0; i < n; i++) {
		const char *spec = xlu_cfg_get_listitem(list, i);
		libxl_device_nic *nic = &cfg->nics[i];

		libxl_device_nic_init(nic);
		cfg->num_nics = i + 1;
		nic->devid = i;
		if (!spec) {
			log_error("%s: vif: entry %d is not a string", path, i + 1);
			return ERR_INVAL;
		}
		rc = parse_vif(path, i + 1, spec, nic);
		if (rc)
			return rc;
	}
	return 0;
}

/* xl.cfg(5)'s names of the actions on a domain's shutdown */
static const struct {
	const char *name;
	libxl_action_on_shutdown action;
} action_names[] = {
    {"destroy", LIBXL_ACTION_ON_SHUTDOWN_DESTROY},
    {"restart", LIBXL_ACTION_ON_SHUTDOWN_RESTART},
    {"rename-restart", LIBXL_ACTION_ON_SHUTDOWN_RESTART_RENAME},
    {"preserve", LIBXL_ACTION_ON_SHUTDOWN_PRESERVE},
    {"coredump-destroy", LIBXL_ACTION_ON_SHUTDOWN_COREDUMP_DESTROY},
    {"coredump-restart", LIBXL_ACTION_ON_SHUTDOWN_COREDUMP_RESTART},
    {"soft-reset", LIBXL_ACTION_ON_SHUTDOWN_SOFT_RESET},
};

/*
 * on_poweroff, on_reboot, on_crash, on_watchdog, with xl's defaults where a key is absent
 * (restart on reboot, destroy otherwise).
 */
static int parse_actions(XLU_Config *xc, const char *path, libxl_domain_config *cfg)
{
	const struct {
		const char *key;
		libxl_action_on_shutdown *a;
		libxl_action_on_shutdown dflt;
	} keys[] = {
	    {"on_poweroff", &cfg->on_poweroff, LIBXL_ACTION_ON_SHUTDOWN_DESTROY},
	    {"on_reboot", &cfg->on_reboot, LIBXL_ACTION_ON_SHUTDOWN_RESTART},
	    {"on_crash", &cfg->on_crash, LIBXL_ACTION_ON_SHUTDOWN_DESTROY},
	    {"on_watchdog", &cfg->on_watchdog, LIBXL_ACTION_ON_SHUTDOWN_DESTROY},
	};
	const char *v;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		libxl_action_on_shutdown *a = keys[i].a;
		size_t j = 0;

		*a = keys[i].dflt;
		if (xlu_cfg_get_string(xc, keys[i].key, &v, 0))
			continue;
		while (j < sizeof(action_names) / sizeof(action_names[0]) &&
		       strcmp(action_names[j].name, v))
			j++;
		if (j == sizeof(action_names) / sizeof(action_names[0])) {
			log_error("%s: %s: unknown action '%s' (destroy, restart, rename-restart, "
			          "preserve, coredump-destroy, coredump-restart, soft-reset)",
			          path, keys[i].key, v);
			return ERR_INVAL;
		}
		*a = action_names[j].action;
	}
	return 0;
}

static int parse_config(XLU_Config *xc, const char *path, libxl_domain_config *cfg)
{
	libxl_domain_type type;
	const char *name;
	int rc;

	if (xlu_cfg_get_string(xc, "name", &name, 0) || !name[0]) {
		log_error("%s: name: the domain's name is required (name = \"...\")", path);
		return ERR_INVAL;
	}
	rc = parse_type(xc, path, &type);
	if (rc)
		return rc;
	cfg->c_info.type = type;
	libxl_uuid_generate(&cfg->c_info.uuid);
	rc = dup_string(name, &cfg->c_info.name);
	if (rc)
		return rc;
	libxl_domain_build_info_init_type(&cfg->b_info, type);
	rc = parse_memory(xc, path, &cfg->b_info);
	if (!rc)
		rc = parse_vcpus(xc, path, &cfg->b_info);
	if (!rc)
		rc = parse_boot(xc, &cfg->b_info);
	if (!rc)
		rc = parse_disks(xc, path, cfg);
	if (!rc)
		rc = parse_vifs(xc, path, cfg);
	if (!rc)
		rc = parse_actions(xc, path, cfg);
	return rc;
}

int xen_xlcfg_parse(const char *path, libxl_domain_config *cfg)
{
	XLU_Config *xc;
	int rc;

	rc = xlcfg_read_file(path, &xc);
	if (rc)
		return rc;
	rc = parse_config(xc, path, cfg);
	if (!rc)
		log_unknown_keys(path);
	xlu_cfg_destroy(xc);
	return rc;
}

int xen_xlcfg_to_json(libxl_ctx *ctx, const char *path, const char *name, char **json_r)
{
	libxl_domain_config cfg;
	char *json;
	int rc;

	libxl_domain_config_init(&cfg);
	rc = xen_xlcfg_parse(path, &cfg);
	if (rc)
		goto out;
	if (name && strcmp(name, cfg.c_info.name)) {
		log_debug("%s: name '%s' replaced by the domain's, '%s'", path, cfg.c_info.name,
		          name);
		free(cfg.c_info.name);
		rc = dup_string(name, &cfg.c_info.name);
		if (rc)
			goto out;
	}
	json = libxl_domain_config_to_json(ctx, &cfg);
	if (!json) {
		log_error("%s: cannot encode the configuration as libxl JSON", path);
		rc = ERR_NOMEM;
		goto out;
	}
	*json_r = json;
out:
	libxl_domain_config_dispose(&cfg);
	return rc;
}
