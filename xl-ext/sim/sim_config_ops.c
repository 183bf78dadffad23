/*
 * sim_config_ops.c - the sim backend's configuration capabilities of struct hv_ops: a
 * domain's disk specs, an xl.cfg file as the JSON a running domain's config_json gives, and
 * the backend's own check of a domain.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/sim/sim.h"
#include "xl-ext/sim/simcfg.h"

int sim_disk_specs(struct hv *hv, uint32_t domid, struct hv_disk_specs *specs)
{
	struct sim_config *cfg = calloc(1, sizeof(*cfg));
	char *json = NULL;
	int rc;

	specs->n = 0;
	specs->spec = NULL;
	if (!cfg)
		return ERR_NOMEM;
	rc = sim_hv_ops.config_json(hv, domid, &json);
	if (!rc)
		rc = simcfg_from_json(json, cfg);
	for (unsigned i = 0; !rc && i < cfg->ndisks; i++)
		rc = hv_disk_specs_add(specs, cfg->disks[i].spec);
	if (rc)
		hv_disk_specs_free(specs);
	free(json);
	free(cfg);
	return rc;
}

int sim_config_file_json(struct hv *hv, const char *path, const char *name, char **json_r)
{
	struct sim_config *cfg = calloc(1, sizeof(*cfg));
	int rc;

	(void)hv;
	if (!cfg)
		return ERR_NOMEM;
	rc = simcfg_parse_file(path, cfg);
	if (!rc && name)
		snprintf(cfg->name, sizeof(cfg->name), "%s", name);
	if (!rc)
		rc = simcfg_to_json(cfg, json_r);
	free(cfg);
	return rc;
}

int sim_domain_check(struct hv *hv, uint32_t domid, bool status_only, char *out, size_t len)
{
	return status_only ? sim_query_domain(hv, domid, out, len)
	                   : sim_check_domain(hv, domid, out, len);
}
