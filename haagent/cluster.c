/*
 * cluster.c - the cluster backend registry.
 */
#include "config.h"

#include "haagent/cluster.h"
#include "haagent/cluster_sim.h"

#ifdef XLEXT_HAVE_COROSYNC
extern const struct cluster_ops cl_corosync_ops; /* cluster_corosync.c */
#define COROSYNC_OPS &cl_corosync_ops
#define COROSYNC_WHY NULL
#else
#define COROSYNC_OPS NULL
#define COROSYNC_WHY XLEXT_COROSYNC_WHY
#endif

static const struct registry_entry cluster_entries[] = {
    {"corosync", "corosync 3: CPG, votequorum and cmap", COROSYNC_OPS, COROSYNC_WHY},
    {"sim", "simulated cluster in one process, for tests", &cl_sim_ops, NULL},
};

const struct registry cluster_registry = {
    .kind = "cluster backend",
    .entries = cluster_entries,
    .nentries = sizeof(cluster_entries) / sizeof(cluster_entries[0]),
    .default_name = "corosync",
};
