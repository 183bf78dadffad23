/*
 * state_sync.c - membership, quorum and the sync round of the replicated state machine
 * (the protocol is described in state.h), and this node's own reports: HELLO in a round,
 * UPDATE between rounds.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fault.h"
#include "common/log.h"
#include "haagent/state_int.h"

static bool contains(const uint32_t *ids, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static int buffer_add(struct ha_state *st, uint32_t from, const void *buf, size_t len)
{
	struct ha_raw_msg *nb;
	uint8_t *copy;

	if (st->nbuffer == HA_SYNC_BUFFER_MAX) {
		log_error("node %" PRIu32
		          ": sync round buffer full (%d messages): message from %" PRIu32
		          " dropped",
		          st->self, HA_SYNC_BUFFER_MAX, from);
		return ERR_NOSPACE;
	}
	nb = realloc(st->buffer, (st->nbuffer + 1) * sizeof(*nb));
	if (!nb)
		return ERR_NOMEM;
	st->buffer = nb;
	copy = malloc(len);
	if (!copy)
		return ERR_NOMEM;
	memcpy(copy, buf, len);
	st->buffer[st->nbuffer].from = from;
	st->buffer[st->nbuffer].buf = copy;
	st->buffer[st->nbuffer].len = len;
	st->nbuffer++;
	return 0;
}

/* Apply every buffered message in delivery order, then drop the buffer. */
static void replay_buffer(struct ha_state *st)
{
	for (size_t i = 0; i < st->nbuffer; i++) {
		struct ha_msg m;
		int rc;

		if (ha_msg_decode(st->buffer[i].buf, st->buffer[i].len, &m) < 0)
			continue;
		rc = ha_state_apply(st, st->buffer[i].from, &m);
		/* an operator's request accepted inside the round ("applied when it ends") that
		 * the view refuses now: said, not dropped in silence */
		if (rc < 0 && m.type == HA_MSG_SET_STATE)
			ha_state_event(st,
			               "request from node %" PRIu32 " to make node %" PRIu32
			               " %s, made during a sync round, refused after it: %s",
			               st->buffer[i].from, m.node, ha_node_state_name(m.state),
			               err_str(rc));
		else if (rc < 0 && m.type == HA_MSG_MIGRATE_REQUEST)
			ha_state_event(st,
			               "request from node %" PRIu32
			               " to migrate guest %s, made during "
			               "a sync round, refused after it: %s",
			               st->buffer[i].from, m.guest, err_str(rc));
		ha_msg_release(&m);
	}
	ha_state_buffer_clear(st);
}

/* Bring the view's member flags in line with the membership: absent members are down. */
static void apply_membership(struct ha_state *st)
{
	for (size_t i = 0; i < st->nmembers; i++) {
		struct ha_node_info *n = ha_state_add_node(st, st->members[i]);

		if (n)
			n->member = 1;
	}
	for (size_t i = 0; i < st->nnodes; i++) {
		struct ha_node_info *n = &st->nodes[i];
		bool owns = false;

		if (!n->member || contains(st->members, st->nmembers, n->nodeid))
			continue;
		n->member = 0;
		if (n->state == HA_NODE_FENCED || n->state == HA_NODE_DOWN)
			continue;
		for (size_t k = 0; k < st->nguests && !owns; k++)
			owns = st->guests[k].owner == n->nodeid ||
			       st->guests[k].moving_to == n->nodeid;
		snprintf(n->reason, sizeof(n->reason), "left the group while %s",
		         ha_node_state_name(n->state));
		n->state = HA_NODE_DOWN;
		ha_state_event(st, "node %s left the cluster: down%s", n->name,
		               owns ? ", its guests wait for fencing" : ", owning no guest");
	}
}

/* Remember the local facts as announced (after queueing HELLO or UPDATE). */
static void remember_announced(struct ha_state *st)
{
	struct ha_guest_info *copy = NULL;

	if (st->local_nguests) {
		copy = calloc(st->local_nguests, sizeof(*copy));
		if (!copy) {
			st->announced = false; /* the next call announces again */
			return;
		}
		memcpy(copy, st->local_guests, st->local_nguests * sizeof(*copy));
	}
	free(st->announced_guests);
	st->announced_guests = copy;
	st->announced_nguests = st->local_nguests;
	st->announced_free = st->local_free;
	st->announced_reserve = st->local_reserve;
	st->announced = true;
}

static void send_hello(struct ha_state *st)
{
	struct ha_msg m = {.type = HA_MSG_HELLO};
	int rc;

	fault_point("agent:hello"); /* the fault matrix: a sync round held open */
	snprintf(m.text, sizeof(m.text), "%s", st->local_name);
	m.free_mib = st->local_free;
	m.reserve_mib = st->local_reserve;
	m.flags =
	    (uint8_t)((st->synced ? HA_HELLO_SYNCED : 0) | (st->quorate ? HA_HELLO_QUORATE : 0) |
	              (st->stale ? HA_HELLO_STALE : 0));
	m.generation = st->generation;
	m.guests = st->local_guests;
	m.nguests = st->local_nguests;
	rc = ha_state_submit(st, &m);
	if (rc < 0)
		log_error("node %" PRIu32 ": cannot queue HELLO: %s", st->self, err_str(rc));
	else
		remember_announced(st);
}

/*
 * Quorate, in sync, out of a round and not confirmed in this membership yet: vouch for the
 * view (state.h). Once per membership (ha_state_announce() asks again if it got lost).
 */
static void request_generation(struct ha_state *st)
{
	struct ha_msg m = {.type = HA_MSG_GENERATION, .generation = st->generation};
	int rc;

	if (!st->quorate || st->quorum_stale || !st->synced || st->syncing ||
	    st->generation_confirmed || st->generation_requested)
		return;
	memcpy(m.members, st->members, st->nmembers * sizeof(st->members[0]));
	m.nmembers = st->nmembers;
	rc = ha_state_submit(st, &m);
	if (rc < 0) {
		log_error("node %" PRIu32 ": cannot queue GENERATION: %s; this node takes no "
		          "action until it can",
		          st->self, err_str(rc));
		return;
	}
	st->generation_requested = true;
}

/* The membership changed or quorum was lost: no action until a new confirmation. */
static void unconfirm(struct ha_state *st)
{
	st->generation_confirmed = false;
	st->generation_requested = false;
}

void ha_state_membership(struct ha_state *st, const uint32_t *members, size_t nmembers,
                         const uint32_t *left, size_t nleft, const uint32_t *joined, size_t njoined)
{
	bool was_syncing = st->syncing;

	(void)left;
	/* The membership callback may run before votequorum's view of the same change: with
	 * nodes gone, wait for the next quorum report before acting (a minority would
	 * otherwise fence the majority in between). */
	if (nleft > 0)
		st->quorum_stale = true;
	if (nmembers > HA_MAX_NODES) {
		log_error("node %" PRIu32 ": %zu members, more than %d: extra ignored", st->self,
		          nmembers, HA_MAX_NODES);
		nmembers = HA_MAX_NODES;
	}
	/* A round in progress ends here: holders catch up, others start over. */
	if (st->syncing && st->synced)
		replay_buffer(st);
	ha_state_buffer_clear(st);
	st->syncing = false;
	unconfirm(st);
	memcpy(st->members, members, nmembers * sizeof(*members));
	st->nmembers = nmembers;
	if (st->synced)
		apply_membership(st);
	/* Every member of the configuration takes the same decision here. */
	if (njoined == 0 && !was_syncing) {
		request_generation(st);
		return;
	}
	if (njoined > 0 && st->synced)
		ha_state_event(st, "%zu node(s) joined: sync round", njoined);
	(void)joined;
	st->syncing = true;
	st->nhello = 0;
	st->sync_source = 0;
	send_hello(st);
}

void ha_state_quorum(struct ha_state *st, bool quorate)
{
	st->quorum_stale = false;
	if (st->quorate != quorate) {
		st->quorate = quorate;
		if (quorate)
			ha_state_event(st, "quorum regained: acting again");
		else
			ha_state_event(st, "quorum lost: frozen, no action until it returns");
	}
	if (!quorate)
		unconfirm(st);
	request_generation(st);
}

void ha_state_lost(struct ha_state *st)
{
	ha_state_buffer_clear(st);
	st->syncing = false;
	st->nmembers = 0;
	st->quorate = false;
	unconfirm(st);
	if (st->synced) {
		st->synced = false;
		st->stale = true;
	}
	for (size_t i = 0; i < st->noutbox; i++)
		free(st->outbox[i].buf);
	st->noutbox = 0;
	ha_state_event(st, "connection to the cluster lost: view kept as stale until re-sync");
}

static int hello_rank(uint8_t flags)
{
	if ((flags & HA_HELLO_SYNCED) && (flags & HA_HELLO_QUORATE))
		return 3;
	if (flags & HA_HELLO_SYNCED)
		return 2;
	return flags & HA_HELLO_STALE ? 1 : 0;
}

static int cmp_node_info(const void *a, const void *b)
{
	const struct ha_node_info *x = a, *y = b;

	return x->nodeid < y->nodeid ? -1 : x->nodeid > y->nodeid;
}

static int cmp_guest_info(const void *a, const void *b)
{
	return strcmp(((const struct ha_guest_info *)a)->name,
	              ((const struct ha_guest_info *)b)->name);
}

/*
 * End of the round: the view is set (adopted or fresh); replay what was buffered (a
 * GENERATION among it names this membership only if it was sent after the merge), then
 * vouch for the view if this node is quorate.
 */
static void finish_round(struct ha_state *st)
{
	st->synced = true;
	st->stale = false;
	st->syncing = false;
	apply_membership(st);
	replay_buffer(st);
	request_generation(st);
}

/*
 * Every member's HELLO is in: everyone picks the same source, among the holders of a view
 * the one whose view a quorate membership confirmed last (highest generation), then by rank,
 * then the lowest nodeid. The quorate flag alone cannot decide: a healing minority's
 * votequorum may say "quorate" (of the merged membership) before its HELLO is sent.
 */
static void choose_source(struct ha_state *st)
{
	uint64_t best_generation = 0;
	int best_rank = 0;
	uint32_t source = 0;

	for (size_t i = 0; i < st->nhello; i++) {
		int r = hello_rank(st->hello_flags[i]);
		uint64_t g = st->hello_generation[i];

		if (r == 0)
			continue; /* holds no view */
		if (source == 0 || g > best_generation ||
		    (g == best_generation &&
		     (r > best_rank || (r == best_rank && st->hello_from[i] < source)))) {
			best_generation = g;
			best_rank = r;
			source = st->hello_from[i];
		}
	}
	if (source == 0) {
		st->nnodes = 0;
		st->nguests = 0;
		st->generation = 0;
		ha_state_event(st, "no member holds a view: starting from the nodes' reports");
		finish_round(st);
		return;
	}
	st->sync_source = source;
	if (source == st->self) {
		struct ha_msg m = {.type = HA_MSG_SYNC, .generation = st->generation};
		int rc;

		memcpy(m.members, st->members, st->nmembers * sizeof(st->members[0]));
		m.nmembers = st->nmembers;
		m.nodes = st->nodes;
		m.nnodes = st->nnodes;
		m.guests = st->guests;
		m.nguests = st->nguests;
		rc = ha_state_submit(st, &m);
		if (rc < 0)
			log_error("node %" PRIu32 ": cannot queue SYNC: %s", st->self, err_str(rc));
	}
}

static int take_sync(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	if (st->sync_source == 0 || from != st->sync_source || !ha_state_for_membership(st, m))
		return ERR_BUSY; /* not this round's transfer */
	/* a view without guests (or nodes) comes with no array: memcpy's NULL is undefined */
	if (m->nnodes)
		memcpy(st->nodes, m->nodes, m->nnodes * sizeof(m->nodes[0]));
	st->nnodes = m->nnodes;
	if (m->nguests)
		memcpy(st->guests, m->guests, m->nguests * sizeof(m->guests[0]));
	st->nguests = m->nguests;
	qsort(st->nodes, st->nnodes, sizeof(st->nodes[0]), cmp_node_info);
	qsort(st->guests, st->nguests, sizeof(st->guests[0]), cmp_guest_info);
	st->generation = m->generation;
	ha_state_event(st,
	               "view synchronised from node %" PRIu32 " (generation %" PRIu64
	               ", %zu nodes, %zu guests)",
	               from, st->generation, st->nnodes, st->nguests);
	finish_round(st);
	return 0;
}

static int deliver_in_round(struct ha_state *st, uint32_t from, const void *buf, size_t len,
                            const struct ha_msg *m)
{
	int rc;

	if (m->type == HA_MSG_SYNC)
		return take_sync(st, from, m);
	rc = buffer_add(st, from, buf, len);
	if (rc < 0)
		return rc;
	if (m->type != HA_MSG_HELLO || !contains(st->members, st->nmembers, from) ||
	    contains(st->hello_from, st->nhello, from) || st->sync_source)
		return 0;
	st->hello_from[st->nhello] = from;
	st->hello_flags[st->nhello] = m->flags;
	st->hello_generation[st->nhello] = m->generation;
	st->nhello++;
	if (st->nhello == st->nmembers)
		choose_source(st);
	return 0;
}

int ha_state_deliver(struct ha_state *st, uint32_t from, const void *buf, size_t len)
{
	struct ha_msg m;
	int rc;

	rc = ha_msg_decode(buf, len, &m);
	if (rc == ERR_NOTSUP) {
		log_error("node %" PRIu32 ": message from node %" PRIu32
		          " is haagent protocol version %u, this agent speaks %d: refused (a sync "
		          "round cannot complete); run the same haagent release on every node",
		          st->self, from, ha_msg_version(buf, len), HA_MSG_VERSION);
		return rc;
	}
	if (rc < 0) {
		log_warn("node %" PRIu32 ": malformed message (%zu bytes) from node %" PRIu32
		         " refused",
		         st->self, len, from);
		return rc;
	}
	if (st->syncing)
		rc = deliver_in_round(st, from, buf, len, &m);
	else if (st->synced)
		rc = ha_state_apply(st, from, &m);
	else
		rc = 0; /* not part of a view yet: the next sync round brings it */
	if (rc < 0)
		log_debug("node %" PRIu32 ": %s from node %" PRIu32 " refused: %s", st->self,
		          ha_msg_type_name(m.type), from, err_str(rc));
	ha_msg_release(&m);
	return rc;
}

static bool local_runs(const struct ha_state *st, const char *name)
{
	for (size_t i = 0; i < st->local_nguests; i++)
		if (strcmp(st->local_guests[i].name, name) == 0)
			return true;
	return false;
}

/* Did the facts change since the last announcement, or does the view disagree with them? */
static bool announce_needed(const struct ha_state *st, size_t ngone)
{
	if (!st->announced || ngone || st->announced_free != st->local_free ||
	    st->announced_reserve != st->local_reserve ||
	    st->announced_nguests != st->local_nguests ||
	    (st->local_nguests && memcmp(st->announced_guests, st->local_guests,
	                                 st->local_nguests * sizeof(st->local_guests[0])) != 0))
		return true;
	for (size_t i = 0; i < st->local_nguests; i++)
		if (!ha_state_guest(st, st->local_guests[i].name))
			return true;
	return false;
}

int ha_state_announce(struct ha_state *st, bool heartbeat)
{
	struct ha_msg m = {.type = HA_MSG_UPDATE};
	size_t ngone = 0;
	int rc;

	/* A GENERATION that was never confirmed may have been lost (a multicast that failed
	 * while corosync was busy): ask again, at the announcement's pace. */
	if (!st->generation_confirmed)
		st->generation_requested = false;
	request_generation(st);
	if (!st->synced || st->syncing)
		return 0;
	m.guests = calloc(HA_MAX_GUESTS, sizeof(*m.guests));
	if (!m.guests)
		return ERR_NOMEM;
	if (st->local_nguests) /* local_guests may be NULL when there are none */
		memcpy(m.guests, st->local_guests, st->local_nguests * sizeof(m.guests[0]));
	m.nguests = st->local_nguests;
	for (size_t i = 0; i < m.nguests; i++) {
		m.guests[i].owner = st->self;
		m.guests[i].moving_to = 0;
		m.guests[i].stopped = 0;
	}
	/* Ours in the view but not running here: say so, the rest of the view follows. An
	 * idle one only; the outcome of a migration or restart is reported by its messages,
	 * and so is that of a shutdown for a cold restart (its GUEST_STOPPED). */
	for (size_t i = 0; i < st->nguests && m.nguests < HA_MAX_GUESTS; i++) {
		const struct ha_guest_info *g = &st->guests[i];

		if (g->owner != st->self || g->moving_to || g->stopped || local_runs(st, g->name) ||
		    ha_state_local_stopping(st, g->name))
			continue;
		memset(&m.guests[m.nguests], 0, sizeof(m.guests[0]));
		memcpy(m.guests[m.nguests].name, g->name, sizeof(g->name));
		m.guests[m.nguests].owner = st->self;
		m.guests[m.nguests].stopped = 1;
		m.nguests++;
		ngone++;
	}
	rc = 0;
	if (!heartbeat && !announce_needed(st, ngone))
		goto out;
	snprintf(m.text, sizeof(m.text), "%s", st->local_name);
	m.free_mib = st->local_free;
	m.reserve_mib = st->local_reserve;
	rc = ha_state_submit(st, &m);
	if (rc < 0) {
		log_warn("node %" PRIu32 ": cannot queue UPDATE: %s", st->self, err_str(rc));
		goto out;
	}
	remember_announced(st);
	rc = 1;
out:
	free(m.guests);
	return rc;
}
