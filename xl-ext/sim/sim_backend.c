/*
 * sim_backend.c - the simulated Xen host backend (struct hv_ops "sim"): the domain
 * operations and the table. The host and its records are sim_host.c, the domain processes
 * sim_spawn.c (a domain is a process, simdom.c), migration streams sim_migrate.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "xl-ext/sim/sim_int.h"
#include "xl-ext/sim/simcfg.h"

static int sim_create(struct hv *hv, const char *config_path, const struct hv_create_args *args,
                      uint32_t *domid_r)
{
	struct sim_config cfg;
	int rc;

	rc = simcfg_parse_file(config_path, &cfg);
	if (rc)
		return rc;
	if (args && args->name)
		snprintf(cfg.name, sizeof(cfg.name), "%s", args->name);
	rc = sim_create_from_config(hv, &cfg, 0, domid_r);
	if (rc)
		return rc;
	if (!args || !args->paused) {
		rc = sim_ctl_call(hv, *domid_r, "unpause", NULL, 0);
		if (rc) {
			log_error("domain %s (%u) was created but could not be started: %s",
			          cfg.name, *domid_r, err_str(rc));
			sim_destroy_domain(hv, *domid_r);
		}
	}
	return rc;
}

static int sim_destroy(struct hv *hv, uint32_t domid)
{
	return sim_destroy_domain(hv, domid);
}

static int sim_pause(struct hv *hv, uint32_t domid)
{
	return sim_ctl_call(hv, domid, "pause", NULL, 0);
}

static int sim_unpause(struct hv *hv, uint32_t domid)
{
	return sim_ctl_call(hv, domid, "unpause", NULL, 0);
}

static int sim_rename(struct hv *hv, uint32_t domid, const char *old_name, const char *new_name)
{
	struct hv_domain_info info;
	char req[HV_NAME_MAX + 16];
	int rc;

	if (!new_name[0] || strlen(new_name) >= HV_NAME_MAX || strchr(new_name, '/') ||
	    strchr(new_name, ' ')) {
		log_error("'%s' is not a valid domain name", new_name);
		return ERR_INVAL;
	}
	rc = sim_lock(hv);
	if (rc)
		return rc;
	rc = sim_read_info(hv, domid, &info, NULL);
	if (rc)
		goto out;
	if (old_name && strcmp(info.name, old_name)) {
		log_error("domain %u is named '%s', not '%s'", domid, info.name, old_name);
		rc = ERR_BUSY;
		goto out;
	}
	if (strcmp(info.name, new_name) && sim_name_taken(hv, new_name)) {
		log_error("a domain named '%s' already exists on this host", new_name);
		rc = ERR_EXISTS;
		goto out;
	}
	snprintf(req, sizeof(req), "rename %s", new_name);
	rc = sim_ctl_call(hv, domid, req, NULL, 0);
out:
	sim_unlock(hv);
	return rc;
}

static int load_config(struct hv *hv, uint32_t domid, struct sim_config *cfg)
{
	char path[340], *json = NULL;
	int rc;

	sim_dom_dir(hv, domid, path, sizeof(path));
	strncat(path, "/config.json", sizeof(path) - strlen(path) - 1);
	rc = file_read_all(path, 1 << 20, &json, NULL);
	if (rc)
		return rc == ERR_NOTFOUND ? rc : ERR_IO;
	rc = simcfg_from_json(json, cfg);
	free(json);
	return rc;
}

static int sim_config_json(struct hv *hv, uint32_t domid, char **json_r)
{
	struct hv_domain_info info;
	struct sim_config cfg;
	int rc;

	rc = sim_read_info(hv, domid, &info, NULL);
	if (!rc)
		rc = load_config(hv, domid, &cfg);
	if (rc)
		return rc;
	snprintf(cfg.name, sizeof(cfg.name), "%s", info.name);
	return simcfg_to_json(&cfg, json_r);
}

static int sim_resume(struct hv *hv, uint32_t domid)
{
	return sim_ctl_call(hv, domid, "resume", NULL, 0);
}

int sim_check_domain(struct hv *hv, uint32_t domid, char *out, size_t cap)
{
	return sim_ctl_call(hv, domid, "check", out, cap);
}

int sim_query_domain(struct hv *hv, uint32_t domid, char *out, size_t cap)
{
	return sim_ctl_call(hv, domid, "info", out, cap);
}

const struct hv_ops sim_hv_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .host_info = sim_host_info,
    .list = sim_list,
    .lookup = sim_lookup,
    .info = sim_info,
    .create = sim_create,
    .destroy = sim_destroy,
    .pause = sim_pause,
    .unpause = sim_unpause,
    .rename = sim_rename,
    .config_json = sim_config_json,
    .send_stream = sim_send_stream,
    .resume = sim_resume,
    .receive_stream = sim_receive_stream,
    .disk_specs = sim_disk_specs,
    .config_file_json = sim_config_file_json,
    .domain_check = sim_domain_check,
    .sample_dirty = sim_sample_dirty,
    .postcopy_end = sim_postcopy_end,
};
