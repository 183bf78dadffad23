/*
 * hv.c - the hypervisor backend registry and helpers shared by every backend.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/core/hv.h"

extern const struct hv_ops sim_hv_ops;
#ifdef XLEXT_HAVE_XEN
extern const struct hv_ops xen_hv_ops;
#define XEN_OPS (&xen_hv_ops)
#else
#define XEN_OPS NULL
#endif

static const struct registry_entry hv_entries[] = {
    {"xen", "Xen through libxl, libxenctrl and libxenstore", XEN_OPS, XLEXT_XEN_WHY},
    {"sim", "simulated Xen host: domUs are processes on this machine", &sim_hv_ops, NULL},
};

const struct registry hv_registry = {
    .kind = "hypervisor backend",
    .entries = hv_entries,
    .nentries = sizeof(hv_entries) / sizeof(hv_entries[0]),
#ifdef XLEXT_HAVE_XEN
    .default_name = "xen",
#else
    .default_name = "sim",
#endif
};

int hv_open_by_name(const char *name, struct loop *loop, const struct hv_ops **ops_r,
                    struct hv **hv_r)
{
	const void *ops;
	char why[256];
	int rc;

	rc = registry_lookup(&hv_registry, name, &ops, why, sizeof(why));
	if (rc) {
		log_error("%s", why);
		return rc;
	}
	*ops_r = ops;
	return (*ops_r)->open(hv_r, loop);
}

const struct hv_ops *hv_ops_by_name(const char *name)
{
	const void *ops = NULL;

	if (registry_lookup(&hv_registry, name, &ops, NULL, 0))
		return NULL;
	return ops;
}

const char *hv_type_name(enum hv_domain_type type)
{
	switch (type) {
	case HV_TYPE_PV:
		return "pv";
	case HV_TYPE_PVH:
		return "pvh";
	case HV_TYPE_HVM:
		return "hvm";
	}
	return "unknown";
}

int hv_type_parse(const char *s, enum hv_domain_type *type_r)
{
	if (!strcmp(s, "pv"))
		*type_r = HV_TYPE_PV;
	else if (!strcmp(s, "pvh"))
		*type_r = HV_TYPE_PVH;
	else if (!strcmp(s, "hvm"))
		*type_r = HV_TYPE_HVM;
	else
		return ERR_INVAL;
	return 0;
}
