/*
 * cluster_sim.h - the simulated cluster backend's control interface.
 *
 * A "world" holds N configured nodes (nodeids 1..N, names node1..nodeN) in one process, as
 * corosync's vqsim does with forked nodes. Handles opened through cl_sim_ops join the
 * group as the node chosen with cl_sim_world_next_node(). One global sequencer gives the
 * total order: a message or membership change is appended to the queue of every member of
 * the sender's partition at once, so every node delivers the same sequence; a delay shifts
 * delivery time (virtual, in ms) without ever reordering a queue. Partitions, crashes,
 * corosync restarts and quorum (more than half of the configured nodes up in the partition,
 * votequorum's rule with one vote each) are controlled by the test.
 */
#ifndef XLEXT_HAAGENT_CLUSTER_SIM_H
#define XLEXT_HAAGENT_CLUSTER_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "haagent/cluster.h"

#define CL_SIM_MAX_NODES 16

struct cl_sim_world;

extern const struct cluster_ops cl_sim_ops;

/* A world of nnodes nodes, all up, in one partition, none joined yet. */
int cl_sim_world_new(struct cl_sim_world **world_r, size_t nnodes);
/* Frees the world; every handle must be closed first. */
void cl_sim_world_free(struct cl_sim_world *world);

/* The world and node the next cl_sim_ops.open() uses. */
void cl_sim_world_next_node(struct cl_sim_world *world, uint32_t nodeid);

/* Delay applied to messages sent from now on (virtual ms); 0 for none. */
void cl_sim_set_delay(struct cl_sim_world *world, unsigned delay_ms);

/*
 * Node nodeid gets votequorum's report of a membership change before CPG's membership
 * change itself (the two services notify independently: on real corosync a healing
 * minority often hears "quorate" first); the report that follows every membership change
 * still comes after it. Off by default.
 */
void cl_sim_set_quorum_first(struct cl_sim_world *world, uint32_t nodeid, bool on);

/*
 * votequorum's two_node rule: the quorum is one vote, so a node that lost every other member
 * (its peer dead, or cut off from it: then both sides) stays quorate. Meant for 2-node worlds;
 * in a larger one it gives a lone node the same quorum. Off by default.
 */
void cl_sim_set_two_node(struct cl_sim_world *world, bool on);

/*
 * Assign partitions: part[i] is the partition of node i+1 (nnodes entries). Members of
 * each partition get a membership change and a quorum update.
 */
void cl_sim_partition(struct cl_sim_world *world, const int *part);

/* Node nodeid's corosync and agent die at once: it leaves without a word to it. */
void cl_sim_crash(struct cl_sim_world *world, uint32_t nodeid);

/*
 * Node nodeid's corosync restarts: its handle gets the lost callback (the agent must close
 * it and open a new one), the others see it leave.
 */
void cl_sim_restart_corosync(struct cl_sim_world *world, uint32_t nodeid);

/* Bring a crashed node's corosync back (its agent then opens a handle again). */
void cl_sim_revive(struct cl_sim_world *world, uint32_t nodeid);

/*
 * Deliver everything due, advancing virtual time as needed, until nothing is queued or
 * max_events callbacks ran. Returns the number of callbacks run.
 */
size_t cl_sim_run(struct cl_sim_world *world, size_t max_events);

/* Deliver what is due for nodeid only, at the current virtual time (one event if one). */
size_t cl_sim_step_node(struct cl_sim_world *world, uint32_t nodeid);

/* Virtual time in ms. */
uint64_t cl_sim_now(const struct cl_sim_world *world);

/* Number of events waiting for delivery in the whole world. */
size_t cl_sim_pending(const struct cl_sim_world *world);

#endif
