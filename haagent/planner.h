/*
 * planner.h - the evacuation planner: a pure function from the replicated view to actions.
 *
 * Every node runs plan_compute() on the same replicated view and gets the same plan, so no
 * coordinator is needed: each action names the node that executes it (the source of a live
 * migration, the target of a cold restart, the lowest live member for fencing). The planner
 * does no I/O, keeps no state between calls, and breaks every tie by guest name or nodeid,
 * never by input order, pointer or hash.
 *
 * What is planned:
 *  - guests owned by a FAILING or DRAINING node: live migration to an OK node;
 *  - guests owned by a STOPPING node (marked failing --cold): cold restart on an OK node,
 *    the running guest shut down by its owner first, as Heartbeat's init.d stop/start does;
 *  - guests owned by a FENCED node: cold restart on an OK node (from shared storage);
 *  - a guest an operator asked to move (ctl migrate): live migration to that node only,
 *    within the same capacity, anti-affinity and limit rules (STAY with the reason if not);
 *  - DOWN (not yet fenced) nodes that own a guest or receive one: a FENCE action; their
 *    guests are never restarted before it succeeds (a node that left owning nothing, such
 *    as an agent stopped after its evacuation, is not fenced);
 *  - guests whose live migration failed max_attempts times: the guest's fallback
 *    (stay where it is, or cold restart elsewhere); a cold restart is given up (STAY, with
 *    a reason) once the guest's failures reach 2 * max_attempts, so nothing is retried
 *    forever.
 *
 * Ordering rule (documented in haagent(8)): the estimated migration time of a guest is the
 * pre-copy sum M/R * 1/(1 - D/R) for memory M, dirty rate D and bandwidth R (capped at
 * 5*M/R when D >= 0.8 R, where the engine forces the switch-over). Guests are planned longest
 * first (LPT), which, with at most max_outgoing parallel streams per source, keeps the
 * evacuation makespan within 4/3 of the optimum; ties by guest name.
 *
 * Target rule: among OK nodes with room (free - dom0 reserve - memory already planned onto it
 * >= guest memory) and no guest of the same anti-affinity group (running, incoming or
 * planned), the guest's preferred nodes in the order given, then the node with the most room
 * left, ties by lowest nodeid. A feasible target whose incoming limit is reached is skipped
 * for one with a free slot; when every feasible target (or the source) is at its limit the
 * guest is DEFERred to a later round, not failed.
 */
#ifndef XLEXT_HAAGENT_PLANNER_H
#define XLEXT_HAAGENT_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HA_NAME_MAX                  64
#define HA_MAX_PREFERRED             4
#define HA_REASON_MAX                128
#define PLAN_DEFAULT_MAX_OUTGOING    2
#define PLAN_DEFAULT_MAX_INCOMING    2
#define PLAN_DEFAULT_MAX_ATTEMPTS    3
#define PLAN_DEFAULT_BANDWIDTH_MIBPS 100

enum ha_node_state {
	HA_NODE_OK = 0,
	HA_NODE_FAILING = 1,  /* marked failing: evacuate by live migration */
	HA_NODE_DRAINING = 2, /* its agent is stopping: evacuate, then it leaves */
	HA_NODE_DOWN = 3,     /* left the group, not fenced yet: hands off its guests */
	HA_NODE_FENCED = 4,   /* fenced: its guests are certainly off */
	HA_NODE_STOPPING = 5, /* marked failing --cold: evacuate by shutdown and cold start */
	HA_NODE_STATE_COUNT
};

enum ha_fallback {
	HA_FALLBACK_STAY = 0,
	HA_FALLBACK_COLD_RESTART = 1,
};

struct plan_node {
	uint32_t nodeid;
	char name[HA_NAME_MAX];
	enum ha_node_state state;
	uint64_t free_mib;    /* free memory as last reported, minus reservations in flight */
	uint64_t reserve_mib; /* kept for dom0 */
	unsigned outgoing;    /* live migrations in flight from this node */
	unsigned incoming;    /* live migrations in flight to this node */
	bool member;          /* in the current group membership */
};

struct plan_guest {
	char name[HA_NAME_MAX];
	uint32_t owner; /* nodeid; exactly one */
	uint64_t mem_mib;
	uint32_t dirty_mibps;                          /* measured or estimated dirty rate */
	char preferred[HA_MAX_PREFERRED][HA_NAME_MAX]; /* node names, most preferred first */
	char anti_affinity[HA_NAME_MAX];               /* "" for none */
	enum ha_fallback fallback;
	uint32_t moving_to;    /* nodeid of a migration or restart in flight, 0 if none */
	bool stopped;          /* not running (its node was fenced): needs a cold restart */
	unsigned failures;     /* failed live migrations since it was last placed */
	uint32_t requested_to; /* operator request (ctl migrate): live-migrate it there */
};

struct plan_input {
	const struct plan_node *nodes;
	size_t nnodes;
	const struct plan_guest *guests;
	size_t nguests;
	unsigned max_outgoing;    /* 0: PLAN_DEFAULT_MAX_OUTGOING */
	unsigned max_incoming;    /* 0: PLAN_DEFAULT_MAX_INCOMING */
	unsigned max_attempts;    /* 0: PLAN_DEFAULT_MAX_ATTEMPTS */
	uint32_t bandwidth_mibps; /* 0: PLAN_DEFAULT_BANDWIDTH_MIBPS */
};

enum plan_kind {
	PLAN_MIGRATE = 0,      /* live-migrate guest from -> to; executed by from */
	PLAN_COLD_RESTART = 1, /* start guest on to from shared storage; executed by to, or by
	                        * a live from that first shuts the running guest down */
	PLAN_FENCE = 2,        /* fence node from; executed by executor */
	PLAN_DEFER = 3,        /* movable, but a concurrency limit is reached: next round */
	PLAN_STAY = 4,         /* cannot move: stays (running or stopped); reason says why */
};

struct plan_action {
	enum plan_kind kind;
	char guest[HA_NAME_MAX]; /* "" for FENCE */
	uint32_t from;           /* current owner (node to fence for FENCE) */
	uint32_t to;             /* target, 0 when none */
	uint32_t executor;       /* the node that carries the action out, 0 for DEFER/STAY */
	uint64_t est_ms;         /* estimated migration time */
	char reason[HA_REASON_MAX];
};

/*
 * Compute the plan for in. On success *actions_r (caller frees) holds *n_r actions in
 * execution order: FENCE first, then guests longest-estimated first. Returns 0,
 * ERR_INVAL for malformed input (duplicate nodeid or guest name, unknown owner) or
 * ERR_NOMEM.
 */
int plan_compute(const struct plan_input *in, struct plan_action **actions_r, size_t *n_r);

/* Estimated live-migration time of mem_mib at dirty_mibps over bandwidth_mibps, in ms. */
uint64_t plan_estimate_ms(uint64_t mem_mib, uint32_t dirty_mibps, uint32_t bandwidth_mibps);

/* "migrate", "cold-restart", "fence", "defer", "stay". */
const char *plan_kind_name(enum plan_kind kind);

/* "ok", "failing", "draining", "down", "fenced", "stopping" (or "?"). */
const char *ha_node_state_name(enum ha_node_state state);

#endif
