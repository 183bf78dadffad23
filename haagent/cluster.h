/*
 * cluster.h - the cluster backend interface (struct cluster_ops).
 *
 * haagent sees the cluster only through this vtable: a process group with totally ordered
 * (agreed) delivery, membership changes, quorum changes and the configured node list.
 * Backends: "corosync" (CPG, votequorum, cmap; built when configure finds them) and "sim"
 * (nodes simulated in one process with controllable partitions and delays, as corosync's
 * vqsim does, for unit tests). Only the backend's file includes corosync headers.
 */
#ifndef XLEXT_HAAGENT_CLUSTER_H
#define XLEXT_HAAGENT_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/registry.h"

struct cluster;

struct cluster_node {
	uint32_t nodeid;
	char name[64];
	char addr[64];
};

struct cluster_callbacks {
	/* A message in the agreed total order, from the member nodeid. */
	void (*deliver)(void *arg, uint32_t from_nodeid, const void *msg, size_t len);
	/* The group's membership changed. */
	void (*membership)(void *arg, const uint32_t *members, size_t nmembers,
	                   const uint32_t *left, size_t nleft, const uint32_t *joined,
	                   size_t njoined);
	/* Quorum changed (votequorum). */
	void (*quorum)(void *arg, bool quorate);
	/* The connection to the cluster engine was lost (e.g. corosync restarted). */
	void (*lost)(void *arg, int err);
};

struct cluster_ops {
	const char *name;

	/* Join the group; callbacks run from dispatch(). */
	int (*open)(struct cluster **cl_r, const char *group, const struct cluster_callbacks *cb,
	            void *arg);
	void (*close)(struct cluster *cl);
	/* The descriptors to poll for input; dispatch(fd) when one is readable. */
	int (*fds)(struct cluster *cl, int *fds, size_t max, size_t *n_r);
	int (*dispatch)(struct cluster *cl, int fd);
	/* Multicast msg to the group in agreed order (delivered to the sender too). */
	int (*send)(struct cluster *cl, const void *msg, size_t len);
	int (*local_nodeid)(struct cluster *cl, uint32_t *nodeid_r);
	/* The configured nodes (cmap nodelist for corosync); caller frees *nodes_r. */
	int (*nodes)(struct cluster *cl, struct cluster_node **nodes_r, size_t *n_r);
};

/* The table of cluster backends built into this binary. */
extern const struct registry cluster_registry;

#endif
