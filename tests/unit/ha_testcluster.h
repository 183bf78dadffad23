/*
 * ha_testcluster.h - a reference cluster for the state machine's unit tests (haagent/state*.c
 * on haagent/cluster_sim.c): NNODES agents, each with a reference executor that claims what
 * the plan gives it and acts only on its own claim once applied, and a model hypervisor per
 * node recording where every guest really runs. run() delivers one event at a time and
 * checks after each that no guest runs on two nodes.
 *
 * Guests g1..g4 start on node1, g5 on node2, g6 on node3; g7 runs nowhere at first.
 */
#ifndef XLEXT_TESTS_HA_TESTCLUSTER_H
#define XLEXT_TESTS_HA_TESTCLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "haagent/cluster_sim.h"
#include "haagent/state.h"

#define NNODES  3
#define NGUESTS 7 /* g7 runs nowhere at first: started by hand in the announcement tests */
#define NHOMED  6

struct tnode {
	uint32_t id;
	struct ha_state *st;
	struct cluster *cl;
	struct ctx *ctx;
	bool agent;  /* agent process running */
	bool reopen; /* lost the cluster: reopen from the test loop */
	char pending[NGUESTS + NNODES + 1][HA_NAME_MAX]; /* claims sent, not yet delivered */
};

struct ctx {
	struct cl_sim_world *w;
	struct tnode nodes[NNODES + 1];    /* 1-based */
	bool running[NNODES + 1][NGUESTS]; /* the model hypervisors */
	bool auto_exec, auto_complete, auto_fence;
	unsigned restarts[NGUESTS], fences[NNODES + 1], migrations;
	unsigned max_out, max_in;
	uint64_t free_mib[NNODES + 1]; /* the model hypervisors' free memory; 0: 8192 */
	bool allow_copies;             /* a test that starts a guest twice by hand */
	/* fencing kills the victim's guests only: its isolated agent and corosync stay up (the
	 * fence agent of haagent-partition.test), so it can merge back later */
	bool fence_spares_node;
	/* a reservation-only fence: the victim's guests keep running (their writes are refused) */
	bool fence_keeps_guests;
	/* cold restarts are planned but not claimed (a fenced node comes back before them) */
	bool hold_restarts;
	/* only this node's executor fences (0: any): one side of a two_node split */
	uint32_t fence_only_by;
	/* the survivors of a move whose peer left do not report it at once (a receiver that
	 * waits for a GO until its timeout): the test submits the failures itself */
	bool late_orphans;
	/* [executor][victim]: fences the plan made executor start (counted with auto_fence
	 * off too) */
	unsigned fence_tries[NNODES + 1][NNODES + 1];
};

extern const char *const gname[NGUESTS];
extern const uint32_t ghome[NGUESTS];

/* Index of guest name in gname, -1 if none. */
int gindex(const char *name);
/* Tell node n's state machine what its model hypervisor runs. */
void refresh_local(struct tnode *n);
/* Multicast what node n's state machine queued. */
void pump(struct tnode *n);
/* Queue one message on node n (not sent before pump()). */
void submit(struct tnode *n, enum ha_msg_type type, const char *guest, uint32_t from, uint32_t to,
            uint32_t node);
/* The fence command: power victim off (its guests die with it). */
void fence(struct ctx *c, uint32_t victim);
/* Node n claims what the plan gives it. */
void execute(struct tnode *n);
/* Node id's agent opens (or reopens) its cluster handle. */
void open_node(struct ctx *c, uint32_t id);
/* Fails the test when a guest runs twice or a node's migration limits are exceeded. */
void check_invariants(struct ctx *c);
/* Deliver one event at a time, checking after each, until nothing is left. */
void run(struct ctx *c);
/*
 * Like run(), but each event goes to a node picked at random among those with one due: the
 * agents interleave differently, so their messages reach the total order differently. The
 * sequence of nodes served is folded into *trace.
 */
void run_shuffled(struct ctx *c, unsigned *seed, uint64_t *trace);
/* A cluster whose agents joined in the given order with a message delay (virtual ms). */
struct ctx *setup_cluster(const uint32_t *order, unsigned delay);
void teardown_cluster(struct ctx *c);
/* "rc=<plan rc> kind:guest:from>to ..." for node st's plan. */
void render_plan(struct ha_state *st, char *buf, size_t len);
/* Every live agent: synced, same digest, same plan. */
void assert_agreement(struct ctx *c);
/* The owner of guest in viewer's view (the guest must be known). */
uint32_t owner_of(struct ctx *c, uint32_t viewer, const char *guest);
/* Node by multicasts SET_STATE node := state. */
void mark(struct ctx *c, uint32_t by, uint32_t node, enum ha_node_state state);
/* Node id samples its model hypervisor and announces; returns ha_state_announce()'s rc. */
int announce(struct ctx *c, uint32_t id, bool heartbeat);
/* Does every node's event log hold text? */
bool every_node_has_event(struct ctx *c, const char *text);

#endif
