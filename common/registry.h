/*
 * registry.h - pick a backend implementation by name at run time.
 *
 * Tables of backends (hypervisor: xen, sim; cluster: corosync, sim) are arrays of entries
 * built from what configure enabled. The registry finds one by name, reports why a named one
 * is not available in this build, and lists the choices for --help and error messages.
 */
#ifndef XLEXT_COMMON_REGISTRY_H
#define XLEXT_COMMON_REGISTRY_H

#include <stddef.h>

struct registry_entry {
	const char *name;
	const char *description;
	const void *ops;        /* the backend's vtable, NULL when not built */
	const char *why_absent; /* when ops is NULL: why ("configure found no libxenlight") */
};

struct registry {
	const char *kind; /* "hypervisor backend" */
	const struct registry_entry *entries;
	size_t nentries;
	const char *default_name;
};

/*
 * Look up name (NULL or "" selects the default). On success *ops_r is the vtable and 0 is
 * returned; ERR_NOTFOUND for an unknown name, ERR_NOTSUP for a backend not built, each with a
 * message in why (if non-NULL) naming the choices or the reason.
 */
int registry_lookup(const struct registry *reg, const char *name, const void **ops_r, char *why,
                    size_t why_len);

/* Comma-separated names of the backends built ("sim, xen"), into buf. */
void registry_list(const struct registry *reg, char *buf, size_t len);

#endif
