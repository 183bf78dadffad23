/*
 * state.h - haagent's replicated state machine.
 *
 * Every node holds the same view of the cluster (nodes, guests, who owns what, migrations in
 * flight) because it changes only by applying, in the agreed total order of the cluster
 * backend, the messages of msg.h and the membership changes delivered in that same order.
 * The machine is pure: it never sends or sleeps; what it wants multicast (HELLO, SYNC, GENERATION)
 * is queued in an outbox the caller drains with ha_state_next_outgoing().
 *
 * Rules that keep guests safe:
 *  - a guest has exactly one owner; claims (migration-started, restart-started) are
 *    accepted only when the guest is idle and the claimant is the node the plan names, so
 *    two nodes can never both act on a guest: act only after your claim was applied;
 *  - a node that leaves the group becomes DOWN; its guests are never restarted until a
 *    FENCED message for it is applied; a migration whose peer left stays in flight until
 *    the surviving side reports done or failed (only it knows whether the point of no
 *    return was passed);
 *  - quorum is a local gate (votequorum is not in the agreed stream): without it
 *    ha_state_plan() returns ERR_NOQUORUM and the node takes no action; after a
 *    membership change in which nodes left, it stays closed until the next quorum report
 *    (the backend reports quorum after every membership change), so a minority never acts
 *    on the departure of the majority in the gap between the two callbacks.
 *
 * Generations: the view carries a generation that only a quorate membership advances, like
 * Pacemaker's CIB epoch. After every membership change, and when quorum returns, each member
 * that is quorate (with a quorum report since nodes last left), in sync and out of a round
 * multicasts GENERATION(its generation, the membership as it knows it). The first one
 * delivered in that very membership advances the view's generation by one on every member;
 * the others, and any sent for another membership, are ignored. A node acts (plans, claims,
 * starts jobs) only once that has happened in its current membership: a healing minority
 * that hears "quorate" from votequorum before CPG delivers the merge therefore takes no
 * action on its old view (its GENERATION, delivered after the merge, names the old
 * membership), and a partition without quorum never advances its view.
 *
 * Re-sync after a join (a "sync round"): the membership change that brings joiners starts
 * a round on every member. Each member multicasts HELLO (its own facts, its view's
 * generation, and whether it holds the view: synced, quorate, stale) and buffers every other
 * message. When the HELLO of every member has been delivered, all members pick the same
 * source among the holders: the highest generation, then synced+quorate > synced > stale (a
 * view kept across a lost corosync connection), then the lowest nodeid. The source
 * multicasts SYNC (its view and generation as of the membership change, which is exactly
 * where everyone started buffering); every member adopts it and replays its buffer. With no
 * holder at all (cluster start), all start from an empty view at generation 0. A change
 * during a round restarts it. Members of a partition that merges back therefore take the
 * view of the side that was quorate last, whatever the nodeids and whatever quorum each side
 * believed it had when its HELLO was sent.
 */
#ifndef XLEXT_HAAGENT_STATE_H
#define XLEXT_HAAGENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "haagent/msg.h"
#include "haagent/planner.h"

#define HA_EVENTS_MAX 64
#define HA_EVENT_TEXT 192

struct ha_state;

struct ha_state_config {
	unsigned max_outgoing;    /* 0: default 2 */
	unsigned max_incoming;    /* 0: default 2 */
	unsigned max_attempts;    /* 0: default 3 */
	uint32_t bandwidth_mibps; /* 0: planner default */
};

struct ha_event {
	uint64_t seq;
	char text[HA_EVENT_TEXT];
};

/* A new state machine for node self (unsynced until its first sync round). */
int ha_state_new(struct ha_state **st_r, uint32_t self, const struct ha_state_config *cfg);
void ha_state_free(struct ha_state *st);

/*
 * This node's own facts, sent in its HELLO: its name, memory and the guests it runs
 * (owner fields ignored). Copied.
 */
int ha_state_set_local(struct ha_state *st, const char *name, uint64_t free_mib,
                       uint64_t reserve_mib, const struct ha_guest_info *guests, size_t nguests);

/*
 * Between sync rounds: queue an UPDATE with this node's facts (as last set with
 * ha_state_set_local()) when they differ from what it last announced (HELLO or UPDATE), when
 * a guest it runs is missing from the view, when the view says it owns a guest that no
 * longer runs here, or when heartbeat is true. Returns 1 when queued, 0 when there was
 * nothing to say or the node is not synced (the next sync round carries its facts), or an
 * error from ha_state_submit().
 *
 * Applied in agreed order on every node: an unknown guest joins the view owned by the
 * sender; a guest another node owns and runs is never taken over (a CONFLICT event, the
 * owner is kept); a guest of the sender's that it no longer runs leaves the view unless a
 * migration or restart of it is in flight; the sender's free memory is taken when no
 * migration or restart touches it (the view's accounting of one in flight is kept).
 *
 * Called periodically, it also queues this node's GENERATION again when the last one was
 * never confirmed (a multicast lost while corosync was busy would otherwise freeze it).
 */
int ha_state_announce(struct ha_state *st, bool heartbeat);

/* A membership change, in agreed order with the messages. */
void ha_state_membership(struct ha_state *st, const uint32_t *members, size_t nmembers,
                         const uint32_t *left, size_t nleft, const uint32_t *joined,
                         size_t njoined);

/* The local quorum view changed. */
void ha_state_quorum(struct ha_state *st, bool quorate);

/*
 * The connection to the cluster was lost: forget the membership, keep the view as stale
 * (it is only used if no member holds a current one when we join again).
 */
void ha_state_lost(struct ha_state *st);

/*
 * Apply (or buffer during a sync round) one message delivered from node from. Returns 0
 * when applied or buffered, ERR_PROTO for an undecodable message, or the reason a valid
 * message was refused (ERR_NOTFOUND unknown guest or node, ERR_BUSY wrong state,
 * ERR_PERM wrong sender, ERR_NOSPACE no room/limit); a refused message changes nothing.
 */
int ha_state_deliver(struct ha_state *st, uint32_t from, const void *buf, size_t len);

/* Encode m and queue it for multicast. */
int ha_state_submit(struct ha_state *st, const struct ha_msg *m);

/* Pop the next message to multicast (*buf_r is the caller's); ERR_NOTFOUND when empty. */
int ha_state_next_outgoing(struct ha_state *st, uint8_t **buf_r, size_t *len_r);

/*
 * The plan for the current view (caller frees *actions_r). ERR_NOQUORUM without quorum,
 * ERR_BUSY while not synced, during a sync round, or before the view's generation is
 * confirmed in the current membership.
 */
int ha_state_plan(const struct ha_state *st, struct plan_action **actions_r, size_t *n_r);

/*
 * A 64-bit digest of the replicated view (generation, nodes and guests), equal on nodes in
 * agreement.
 */
uint64_t ha_state_digest(const struct ha_state *st);

bool ha_state_synced(const struct ha_state *st);
/*
 * Does this node hold the view: synced, though maybe inside a sync round now? A request
 * checked against it may be submitted even inside a round: every member buffers it there and
 * applies it after the round's SYNC, in the agreed order, to the view as of the membership
 * change, the one it was checked against.
 */
bool ha_state_holds_view(const struct ha_state *st);
/* Is a sync round open (HELLOs awaited, messages buffered)? */
bool ha_state_in_round(const struct ha_state *st);
bool ha_state_quorate(const struct ha_state *st);
/*
 * May this node act (start jobs, claim what the plan gives it)? Quorate (with a quorum report
 * since nodes last left), in sync, and the view's generation confirmed in this membership.
 */
bool ha_state_may_act(const struct ha_state *st);
/* The view's generation (0 before any quorate membership confirmed one). */
uint64_t ha_state_generation(const struct ha_state *st);
uint32_t ha_state_self(const struct ha_state *st);

/*
 * This node's CPU time so far, in seconds: its domains' (the hypervisor's per-domain figure)
 * and the agent's own with its jobs'; sampled at at_ms (the daemon's monotonic clock). Local,
 * never replicated: "status" shows it, a drill turns two samples into a utilisation.
 */
void ha_state_set_cpu(struct ha_state *st, double guests_s, double agent_s, int64_t at_ms);
/* false when never set */
bool ha_state_cpu(const struct ha_state *st, double *guests_s, double *agent_s, int64_t *at_ms);

/* Read access for status output and tests; NULL when unknown. */
const struct ha_node_info *ha_state_node(const struct ha_state *st, uint32_t nodeid);
const struct ha_node_info *ha_state_node_by_name(const struct ha_state *st, const char *name);
const struct ha_guest_info *ha_state_guest(const struct ha_state *st, const char *name);
size_t ha_state_nodes(const struct ha_state *st, const struct ha_node_info **nodes_r);
size_t ha_state_guests(const struct ha_state *st, const struct ha_guest_info **guests_r);

/*
 * Guests this node runs although the view has them on another node, found when this node
 * rejoined after it was fenced: a reservation fence stops a guest's writes, not the guest, and
 * the cluster restarted it elsewhere meanwhile. The executor destroys each of them before this
 * node does anything else. ha_state_stale_copy gives the i-th (NULL past the last);
 * ha_state_stale_copy_done forgets one (its destroy started); ha_state_stale_copy_again puts
 * one back (its destroy failed, to be tried again).
 */
const char *ha_state_stale_copy(const struct ha_state *st, size_t i);
void ha_state_stale_copy_done(struct ha_state *st, const char *name);
void ha_state_stale_copy_again(struct ha_state *st, const char *name);

/*
 * The executor's stop job for guest runs on this node (a cold restart whose owner is alive):
 * running true when it starts, false once it ended (after its GUEST_STOPPED was submitted).
 * Meanwhile this node's UPDATE does not report the guest gone: applied before GUEST_STOPPED,
 * that report would drop the guest from the view, and nothing would ever restart it.
 */
void ha_state_local_stop(struct ha_state *st, const char *name, bool running);

/* Recent events, oldest first (at most HA_EVENTS_MAX). */
size_t ha_state_events(const struct ha_state *st, const struct ha_event **events_r);

#endif
