/*
 * state_int.h - the state machine's insides: the struct, and what state.c (the view and
 * the messages that change it) provides to state_sync.c (membership, sync rounds, this
 * node's reports). The dependency goes one way: state.c calls nothing of state_sync.c, so
 * everything declared here is defined in state.c.
 */
#ifndef XLEXT_HAAGENT_STATE_INT_H
#define XLEXT_HAAGENT_STATE_INT_H

#include "haagent/state.h"

#define HA_OUTBOX_MAX      64
#define HA_SYNC_BUFFER_MAX 4096

struct ha_raw_msg {
	uint32_t from;
	uint8_t *buf;
	size_t len;
};

struct ha_state {
	uint32_t self;
	struct ha_state_config cfg;
	bool quorate;      /* local votequorum view */
	bool quorum_stale; /* nodes left since the last quorum report: do not act yet */
	bool synced;       /* holds the replicated view */
	bool stale;        /* the view was kept across a lost connection */

	/*
	 * The view's generation (state.h): advanced in agreed order by a GENERATION that a
	 * member sent while quorate, for the very membership it is delivered in. Until that
	 * happens in the current membership (confirmed), this node takes no action.
	 */
	uint64_t generation;
	bool generation_confirmed;
	bool generation_requested; /* this node's GENERATION is queued for this membership */

	/* The replicated view: nodes sorted by nodeid, guests by name. */
	struct ha_node_info nodes[HA_MAX_NODES];
	size_t nnodes;
	struct ha_guest_info guests[HA_MAX_GUESTS];
	size_t nguests;

	/* Local log of what happened, for "haagent ctl events". */
	struct ha_event events[HA_EVENTS_MAX];
	size_t nevents;
	uint64_t event_seq;

	/* Membership as last delivered. */
	uint32_t members[HA_MAX_NODES];
	size_t nmembers;

	/* Sync round: HELLOs seen, messages buffered since the membership change. */
	bool syncing;
	uint32_t hello_from[HA_MAX_NODES];
	uint8_t hello_flags[HA_MAX_NODES];
	uint64_t hello_generation[HA_MAX_NODES];
	size_t nhello;
	uint32_t sync_source; /* chosen once every HELLO is in; 0 before */
	struct ha_raw_msg *buffer;
	size_t nbuffer;

	struct ha_raw_msg outbox[HA_OUTBOX_MAX];
	size_t noutbox;

	/* This node's own facts, for its HELLO. */
	char local_name[HA_NAME_MAX];
	uint64_t local_free, local_reserve;
	struct ha_guest_info *local_guests;
	size_t local_nguests;

	/* This node's CPU use (ha_state_set_cpu), for status: local, not replicated. */
	double cpu_guests_s, cpu_agent_s;
	int64_t cpu_at_ms;

	/* Guests this node runs that the view has elsewhere, after it was fenced (state.h). */
	char stale_copies[HA_MAX_GUESTS][HA_NAME_MAX];
	size_t nstale_copies;

	/* Guests the executor is shutting down here for a cold restart (state.h). */
	char local_stops[HA_MAX_GUESTS][HA_NAME_MAX];
	size_t nlocal_stops;

	/* What this node last announced (HELLO or UPDATE), to send UPDATE on change only. */
	bool announced;
	uint64_t announced_free, announced_reserve;
	struct ha_guest_info *announced_guests;
	size_t announced_nguests;
};

/* Record an event (and log it at info level). */
void ha_state_event(struct ha_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Apply one decoded message to a synced view. */
int ha_state_apply(struct ha_state *st, uint32_t from, const struct ha_msg *m);
struct ha_node_info *ha_state_find_node(struct ha_state *st, uint32_t nodeid);
struct ha_node_info *ha_state_add_node(struct ha_state *st, uint32_t nodeid);
/* Was m (SYNC, GENERATION) sent for exactly the current membership? */
bool ha_state_for_membership(const struct ha_state *st, const struct ha_msg *m);
/* Is the executor shutting name down here (ha_state_local_stop)? */
bool ha_state_local_stopping(const struct ha_state *st, const char *name);
/* Drop the messages buffered during a sync round. */
void ha_state_buffer_clear(struct ha_state *st);

#endif
