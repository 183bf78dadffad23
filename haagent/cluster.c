/*
 * cluster.c - the cluster backend registry.
 */
#include "config.h"

#include "haagent/cluster.h"
#include "haagent/cluster_sim.h"

static const struct registry_entry cluster_entries[] = {
	{"corosync", "corosync 3: CPG, votequorum and cmap", NULL,
#ifdef XLEXT_HAVE_COROSYNC
	 "not implemented in this version"
#else
	 XLEXT_COROSYNC_WHY
#endif
	},
	{"sim", "simulated cluster in one process, for tests", &cl_sim_ops, NULL},
};

const struct registry cluster_registry = {
	.kind = "cluster backend",
	.entries = cluster_entries,
	.nentries = sizeof(cluster_entries) / sizeof(cluster_entries[0]),
	.default_name = "corosync",
};
