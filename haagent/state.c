/*
 * state.c - the replicated state machine: applying messages in agreed order (the sync
 * rounds and membership handling are in state_sync.c).
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "haagent/state_int.h"

void ha_state_event(struct ha_state *st, const char *fmt, ...)
{
	struct ha_event *ev;
	va_list ap;

	if (st->nevents == HA_EVENTS_MAX) {
		memmove(&st->events[0], &st->events[1],
		        sizeof(st->events[0]) * (HA_EVENTS_MAX - 1));
		st->nevents--;
	}
	ev = &st->events[st->nevents++];
	ev->seq = ++st->event_seq;
	va_start(ap, fmt);
	vsnprintf(ev->text, sizeof(ev->text), fmt, ap);
	va_end(ap);
	log_info("node %" PRIu32 ": %s", st->self, ev->text);
}

void ha_state_buffer_clear(struct ha_state *st)
{
	for (size_t i = 0; i < st->nbuffer; i++)
		free(st->buffer[i].buf);
	free(st->buffer);
	st->buffer = NULL;
	st->nbuffer = 0;
}

int ha_state_new(struct ha_state **st_r, uint32_t self, const struct ha_state_config *cfg)
{
	struct ha_state *st;

	*st_r = NULL;
	if (self == 0)
		return ERR_INVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return ERR_NOMEM;
	st->self = self;
	if (cfg)
		st->cfg = *cfg;
	snprintf(st->local_name, sizeof(st->local_name), "node%" PRIu32, self);
	*st_r = st;
	return 0;
}

void ha_state_free(struct ha_state *st)
{
	if (!st)
		return;
	ha_state_buffer_clear(st);
	for (size_t i = 0; i < st->noutbox; i++)
		free(st->outbox[i].buf);
	free(st->local_guests);
	free(st->announced_guests);
	free(st);
}

int ha_state_set_local(struct ha_state *st, const char *name, uint64_t free_mib,
                       uint64_t reserve_mib, const struct ha_guest_info *guests, size_t nguests)
{
	struct ha_guest_info *copy = NULL;

	if (nguests > HA_MAX_GUESTS || !name || strlen(name) >= HA_NAME_MAX)
		return ERR_INVAL;
	if (nguests) {
		copy = calloc(nguests, sizeof(*copy));
		if (!copy)
			return ERR_NOMEM;
		memcpy(copy, guests, nguests * sizeof(*copy));
	}
	free(st->local_guests);
	st->local_guests = copy;
	st->local_nguests = nguests;
	snprintf(st->local_name, sizeof(st->local_name), "%s", name);
	st->local_free = free_mib;
	st->local_reserve = reserve_mib;
	return 0;
}

bool ha_state_for_membership(const struct ha_state *st, const struct ha_msg *m)
{
	return m->nmembers == st->nmembers &&
	       memcmp(m->members, st->members, st->nmembers * sizeof(st->members[0])) == 0;
}

struct ha_node_info *ha_state_find_node(struct ha_state *st, uint32_t nodeid)
{
	for (size_t i = 0; i < st->nnodes; i++)
		if (st->nodes[i].nodeid == nodeid)
			return &st->nodes[i];
	return NULL;
}

/* Find or add the record of nodeid; nodes stay sorted by nodeid. NULL when full. */
struct ha_node_info *ha_state_add_node(struct ha_state *st, uint32_t nodeid)
{
	struct ha_node_info *n = ha_state_find_node(st, nodeid);
	size_t at = 0;

	if (n)
		return n;
	if (st->nnodes == HA_MAX_NODES)
		return NULL;
	while (at < st->nnodes && st->nodes[at].nodeid < nodeid)
		at++;
	memmove(&st->nodes[at + 1], &st->nodes[at], (st->nnodes - at) * sizeof(st->nodes[0]));
	st->nnodes++;
	n = &st->nodes[at];
	memset(n, 0, sizeof(*n));
	n->nodeid = nodeid;
	snprintf(n->name, sizeof(n->name), "node%" PRIu32, nodeid);
	return n;
}

static struct ha_guest_info *find_guest(struct ha_state *st, const char *name)
{
	for (size_t i = 0; i < st->nguests; i++)
		if (strcmp(st->guests[i].name, name) == 0)
			return &st->guests[i];
	return NULL;
}

/* Add a guest record, keeping guests sorted by name. NULL when full. */
static struct ha_guest_info *add_guest(struct ha_state *st, const char *name)
{
	size_t at = 0;

	if (st->nguests == HA_MAX_GUESTS)
		return NULL;
	while (at < st->nguests && strcmp(st->guests[at].name, name) < 0)
		at++;
	memmove(&st->guests[at + 1], &st->guests[at], (st->nguests - at) * sizeof(st->guests[0]));
	st->nguests++;
	memset(&st->guests[at], 0, sizeof(st->guests[0]));
	snprintf(st->guests[at].name, sizeof(st->guests[at].name), "%s", name);
	return &st->guests[at];
}

static const char *node_name(struct ha_state *st, uint32_t nodeid)
{
	struct ha_node_info *n = ha_state_find_node(st, nodeid);

	return n ? n->name : "?";
}

static bool node_alive(const struct ha_node_info *n)
{
	return n && n->member && n->state != HA_NODE_DOWN && n->state != HA_NODE_FENCED;
}

static unsigned limit(unsigned v, unsigned def)
{
	return v ? v : def;
}

/* Copy the configuration fields a node reports about its own guest. */
static void take_config(struct ha_guest_info *g, const struct ha_guest_info *from)
{
	g->mem_mib = from->mem_mib;
	g->dirty_mibps = from->dirty_mibps;
	g->type = from->type;
	memcpy(g->disks, from->disks, sizeof(g->disks));
	memcpy(g->preferred, from->preferred, sizeof(g->preferred));
	memcpy(g->anti_affinity, from->anti_affinity, sizeof(g->anti_affinity));
	g->fallback = from->fallback;
}

static int apply_hello(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	struct ha_node_info *n = ha_state_add_node(st, from);
	bool was_fenced;

	if (!n)
		return ERR_NOSPACE;
	was_fenced = n->state == HA_NODE_FENCED;
	str_copy(n->name, sizeof(n->name), m->text);
	n->free_mib = m->free_mib;
	n->reserve_mib = m->reserve_mib;
	n->member = 1;
	if (n->state == HA_NODE_DOWN || n->state == HA_NODE_FENCED) {
		ha_state_event(st, "node %s is back (was %s)", n->name,
		               ha_node_state_name(n->state));
		n->state = HA_NODE_OK;
		n->reason[0] = '\0';
	}
	for (size_t i = 0; i < m->nguests; i++) {
		const struct ha_guest_info *r = &m->guests[i];
		struct ha_guest_info *g = find_guest(st, r->name);
		struct ha_node_info *owner;

		if (!g) {
			g = add_guest(st, r->name);
			if (!g)
				return ERR_NOSPACE;
			g->owner = from;
			g->reported = 1;
			take_config(g, r);
			ha_state_event(st, "guest %s runs on %s", g->name, n->name);
			continue;
		}
		owner = ha_state_find_node(st, g->owner);
		if (g->owner == from && was_fenced && g->stopped && g->moving_to == 0) {
			/* fenced, and back before the guest restarted anywhere: this copy lost its
			 * LUNs to the fence (its writes are refused) and must not go on; it is
			 * destroyed here, and the guest cold-restarts as the fence planned */
			ha_state_event(st,
			               "stale copy of %s on %s (fenced before its restart): %s "
			               "destroys it, the guest restarts",
			               g->name, n->name, n->name);
			if (from == st->self)
				ha_state_stale_copy_again(st, g->name);
		} else if (g->owner == from) {
			take_config(g, r);
			g->stopped = 0;
			g->reported = 1;
		} else if (g->moving_to == from) {
			/* arriving: the migration's outcome message decides */
		} else if (g->stopped && g->moving_to == 0 && owner &&
		           owner->state != HA_NODE_DOWN) {
			ha_state_event(st, "guest %s found running on %s", g->name, n->name);
			g->owner = from;
			g->stopped = 0;
			g->reported = 1;
			take_config(g, r);
		} else if (was_fenced) {
			/* its copy was cut off and fenced, the guest restarted elsewhere: that
			 * copy is stale, whatever it still holds in memory */
			ha_state_event(
			    st,
			    "stale copy of %s on %s (fenced while cut off; the guest runs on "
			    "%s): %s destroys it",
			    g->name, n->name, node_name(st, g->owner), n->name);
			if (from == st->self)
				ha_state_stale_copy_again(st, g->name);
		} else {
			ha_state_event(
			    st, "CONFLICT: guest %s reported by %s but owned by %s; owner kept",
			    g->name, n->name, node_name(st, g->owner));
		}
	}
	/* A node that was fenced runs nothing it does not report now. */
	for (size_t i = 0; was_fenced && i < st->nguests; i++) {
		struct ha_guest_info *g = &st->guests[i];
		bool listed = false;

		for (size_t k = 0; k < m->nguests && !listed; k++)
			listed = strcmp(m->guests[k].name, g->name) == 0;
		if (g->owner == from && !listed && g->moving_to == 0)
			g->stopped = 1;
	}
	return 0;
}

/* Drop a guest record (the array stays sorted). */
static void remove_guest(struct ha_state *st, struct ha_guest_info *g)
{
	size_t at = (size_t)(g - st->guests);

	memmove(&st->guests[at], &st->guests[at + 1],
	        (st->nguests - at - 1) * sizeof(st->guests[0]));
	st->nguests--;
}

/* Does a migration or restart from or to nodeid run? */
static bool node_moving(struct ha_state *st, uint32_t nodeid)
{
	for (size_t i = 0; i < st->nguests; i++) {
		const struct ha_guest_info *g = &st->guests[i];

		if (g->moving_to && (g->moving_to == nodeid || g->owner == nodeid))
			return true;
	}
	return false;
}

/* A guest the sender reports running (UPDATE). */
static void update_running(struct ha_state *st, struct ha_node_info *n,
                           const struct ha_guest_info *r)
{
	struct ha_guest_info *g = find_guest(st, r->name);
	struct ha_node_info *owner;

	if (!g) {
		g = add_guest(st, r->name);
		if (!g) {
			ha_state_event(st,
			               "guest %s appeared on %s: no room in the view (%d guests)",
			               r->name, n->name, HA_MAX_GUESTS);
			return;
		}
		g->owner = n->nodeid;
		g->reported = 1;
		take_config(g, r);
		ha_state_event(st, "guest %s appeared on %s", g->name, n->name);
		return;
	}
	if (g->owner == n->nodeid) {
		take_config(g, r); /* "stopped" changes only through the restart messages */
		g->reported = 1;
		return;
	}
	if (g->moving_to == n->nodeid)
		return; /* arriving: the migration's outcome message decides */
	owner = ha_state_find_node(st, g->owner);
	if (g->stopped && g->moving_to == 0 && owner && owner->state != HA_NODE_DOWN) {
		/* started by hand while waiting for a restart: it runs here now, do not
		 * start a second copy */
		ha_state_event(st, "guest %s found running on %s", g->name, n->name);
		g->owner = n->nodeid;
		g->stopped = 0;
		g->reported = 1;
		take_config(g, r);
		return;
	}
	ha_state_event(st, "CONFLICT: guest %s reported by %s but owned by %s; owner kept", g->name,
	               n->name, node_name(st, g->owner));
}

/* A guest the sender owned in its view and no longer runs (UPDATE). */
static void update_gone(struct ha_state *st, struct ha_node_info *n, const char *name)
{
	struct ha_guest_info *g = find_guest(st, name);

	if (!g || g->owner != n->nodeid || g->stopped)
		return; /* not its guest (any more), or waiting for a restart */
	if (g->moving_to) {
		ha_state_event(st,
		               "guest %s no longer listed by %s: kept, a migration of it is in "
		               "flight",
		               g->name, n->name);
		return;
	}
	ha_state_event(st, "guest %s no longer runs on %s: removed", g->name, n->name);
	remove_guest(st, g);
}

static int apply_update(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	struct ha_node_info *n = ha_state_find_node(st, from);

	if (!n)
		return ERR_NOTFOUND;
	if (!node_alive(n))
		return ERR_BUSY; /* a node that is back reports in its sync round's HELLO */
	n->reserve_mib = m->reserve_mib;
	if (!node_moving(st, from))
		n->free_mib = m->free_mib;
	for (size_t i = 0; i < m->nguests; i++) {
		if (m->guests[i].stopped)
			update_gone(st, n, m->guests[i].name);
		else
			update_running(st, n, &m->guests[i]);
	}
	return 0;
}

static int apply_set_state(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	struct ha_node_info *n = ha_state_find_node(st, m->node);

	(void)from;
	if (!n)
		return ERR_NOTFOUND;
	if (m->state != HA_NODE_OK && m->state != HA_NODE_FAILING && m->state != HA_NODE_DRAINING &&
	    m->state != HA_NODE_STOPPING)
		return ERR_INVAL; /* down and fenced come from membership and FENCED only */
	if (!node_alive(n) && n->state != HA_NODE_OK)
		return ERR_BUSY;
	if (n->state == m->state)
		return 0;
	ha_state_event(st, "node %s: %s -> %s%s%s", n->name, ha_node_state_name(n->state),
	               ha_node_state_name(m->state), m->text[0] ? ": " : "", m->text);
	n->state = m->state;
	snprintf(n->reason, sizeof(n->reason), "%s", m->text);
	return 0;
}

/* Find the guest of a migration/restart message and check the sender's role. */
static int lookup_move(struct ha_state *st, const struct ha_msg *m, struct ha_guest_info **g_r,
                       struct ha_node_info **src_r, struct ha_node_info **dst_r)
{
	*g_r = find_guest(st, m->guest);
	if (!*g_r)
		return ERR_NOTFOUND;
	*src_r = ha_state_find_node(st, m->from);
	*dst_r = ha_state_find_node(st, m->to);
	if (!*src_r || !*dst_r || m->from == m->to)
		return ERR_NOTFOUND;
	if ((*g_r)->owner != m->from)
		return ERR_BUSY;
	return 0;
}

/* Can dst take g now (alive, ok, room, incoming limit)? */
static int check_target(struct ha_state *st, const struct ha_guest_info *g,
                        const struct ha_node_info *dst, bool live)
{
	if (!node_alive(dst) || dst->state != HA_NODE_OK)
		return ERR_BUSY;
	if ((int64_t)dst->free_mib - (int64_t)dst->reserve_mib < (int64_t)g->mem_mib)
		return ERR_NOSPACE;
	if (live && dst->incoming >= limit(st->cfg.max_incoming, PLAN_DEFAULT_MAX_INCOMING))
		return ERR_NOSPACE;
	return 0;
}

static int apply_mig_start(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	struct ha_guest_info *g;
	struct ha_node_info *src, *dst;
	int rc = lookup_move(st, m, &g, &src, &dst);

	if (rc < 0)
		return rc;
	if (from != m->from)
		return ERR_PERM; /* only the source executes its migrations */
	if (g->moving_to || g->stopped || !node_alive(src))
		return ERR_BUSY;
	if (src->outgoing >= limit(st->cfg.max_outgoing, PLAN_DEFAULT_MAX_OUTGOING))
		return ERR_NOSPACE;
	rc = check_target(st, g, dst, true);
	if (rc < 0)
		return rc;
	g->moving_to = dst->nodeid;
	src->outgoing++;
	dst->incoming++;
	dst->free_mib -= g->mem_mib;
	ha_state_event(st, "migration of guest %s from %s to %s started", g->name, src->name,
	               dst->name);
	return 0;
}

/* End of a live migration (done: the guest is the target's) or of a restart attempt. */
static int apply_move_end(struct ha_state *st, uint32_t from, const struct ha_msg *m, bool done)
{
	struct ha_guest_info *g;
	struct ha_node_info *src, *dst;
	int rc = lookup_move(st, m, &g, &src, &dst);
	bool restart;

	if (rc < 0)
		return rc;
	if (from != m->from && from != m->to)
		return ERR_PERM; /* the surviving side reports */
	if (g->moving_to != m->to)
		return ERR_BUSY;
	restart = g->stopped;
	g->requested_to = 0; /* an operator request is served once, whatever the outcome */
	if (!restart) {
		if (src->outgoing)
			src->outgoing--;
		if (dst->incoming)
			dst->incoming--;
	}
	g->moving_to = 0;
	if (done) {
		g->owner = dst->nodeid;
		g->reported = 0; /* until the new owner reports it running */
		g->failures = 0;
		g->stopped = 0;
		if (!restart && node_alive(src))
			src->free_mib +=
			    g->mem_mib; /* a stopped guest gave its memory back already */
		ha_state_event(st, "guest %s now runs on %s (%s from %s%s%s)", g->name, dst->name,
		               restart ? "restarted" : "migrated", src->name,
		               m->text[0] ? ", " : "", m->text);
	} else {
		dst->free_mib += g->mem_mib;
		if (g->failures < 255)
			g->failures++;
		/* its source was fenced while the move was in flight (the fence left the moving
		 * guest to this outcome): it runs nowhere now and restarts as the fence planned */
		if (src->state == HA_NODE_FENCED)
			g->stopped = 1;
		ha_state_event(st, "%s of guest %s from %s to %s failed (%u): %s%s%s",
		               restart ? "restart" : "migration", g->name, src->name, dst->name,
		               g->failures, err_str(m->err), m->text[0] ? ": " : "", m->text);
	}
	return 0;
}

static int apply_fenced(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	struct ha_node_info *n = ha_state_find_node(st, m->node);

	(void)from;
	if (!n)
		return ERR_NOTFOUND;
	if (n->state != HA_NODE_DOWN)
		return ERR_BUSY; /* never fence a member: it would kill running guests */
	n->state = HA_NODE_FENCED;
	n->outgoing = n->incoming = 0;
	snprintf(n->reason, sizeof(n->reason), "fenced by %s", node_name(st, from));
	for (size_t i = 0; i < st->nguests; i++) {
		struct ha_guest_info *g = &st->guests[i];

		if (g->owner == n->nodeid && g->moving_to == 0)
			g->stopped = 1;
	}
	/*
	 * A fence advances the view's generation too (every member of this partition applies it
	 * at the same point of the agreed order). Where both sides of a split are quorate
	 * (votequorum's two_node), each confirms generations of its own, and the merge takes the
	 * highest: the side that fenced the other then wins over one that only saw it leave, and
	 * the fence survives the merge (the fenced node's copies are stale, its guests restart
	 * once), where equal generations would let the lower nodeid's view drop it.
	 */
	st->generation++;
	ha_state_event(st, "node %s fenced by %s%s%s (view generation %" PRIu64 ")", n->name,
	               node_name(st, from), m->text[0] ? ": " : "", m->text, st->generation);
	return 0;
}

/* Fencing failed: the node stays DOWN and its guests down; everyone records why. */
static int apply_fence_failed(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	struct ha_node_info *n = ha_state_find_node(st, m->node);

	if (!n)
		return ERR_NOTFOUND;
	ha_state_event(st, "node %s could not be fenced by %s: %s", n->name, node_name(st, from),
	               m->text);
	return 0;
}

static int apply_restart_start(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	struct ha_guest_info *g;
	struct ha_node_info *src, *dst;
	int rc = lookup_move(st, m, &g, &src, &dst);

	if (rc < 0)
		return rc;
	if (from != m->to)
		return ERR_PERM; /* the target starts it */
	if (g->moving_to || !g->stopped || src->state == HA_NODE_DOWN)
		return ERR_BUSY; /* a guest of an unfenced down node is never restarted */
	rc = check_target(st, g, dst, false);
	if (rc < 0)
		return rc;
	g->moving_to = dst->nodeid;
	dst->free_mib -= g->mem_mib;
	ha_state_event(st, "cold restart of guest %s on %s started", g->name, dst->name);
	return 0;
}

static int apply_guest_stopped(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	struct ha_guest_info *g = find_guest(st, m->guest);
	struct ha_node_info *n;

	if (!g)
		return ERR_NOTFOUND;
	if (from != g->owner || m->from != g->owner)
		return ERR_PERM;
	if (g->moving_to || g->stopped)
		return ERR_BUSY;
	g->stopped = 1;
	n = ha_state_find_node(st, from);
	if (n)
		n->free_mib += g->mem_mib;
	ha_state_event(st, "guest %s shut down on %s for a cold restart%s%s%s", g->name,
	               node_name(st, from), m->text[0] ? " (" : "", m->text, m->text[0] ? ")" : "");
	return 0;
}

/*
 * A member vouches that it was quorate in this very membership: the view moves on to the next
 * generation, and this membership may act on it. A GENERATION sent for another membership
 * (a healing minority hears "quorate" before the merge's membership change) vouches for
 * nothing here; the first of several for one generation is enough.
 */
static int apply_generation(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	if (!ha_state_for_membership(st, m) || m->generation != st->generation)
		return ERR_BUSY;
	st->generation++;
	st->generation_confirmed = true;
	ha_state_event(st, "view generation %" PRIu64 " confirmed by %s for %zu member(s)",
	               st->generation, node_name(st, from), st->nmembers);
	return 0;
}

static int apply_migrate_request(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	struct ha_guest_info *g = find_guest(st, m->guest);
	struct ha_node_info *dst = ha_state_find_node(st, m->to);

	if (!g || !dst)
		return ERR_NOTFOUND;
	if (g->owner == m->to)
		return ERR_INVAL;
	if (g->moving_to || g->stopped || !node_alive(dst) || dst->state != HA_NODE_OK)
		return ERR_BUSY;
	g->requested_to = m->to;
	ha_state_event(st, "migration of guest %s from %s to %s requested through %s%s%s", g->name,
	               node_name(st, g->owner), dst->name, node_name(st, from),
	               m->text[0] ? ": " : "", m->text);
	return 0;
}

int ha_state_apply(struct ha_state *st, uint32_t from, const struct ha_msg *m)
{
	switch (m->type) {
	case HA_MSG_HELLO:
		return apply_hello(st, from, m);
	case HA_MSG_SET_STATE:
		return apply_set_state(st, from, m);
	case HA_MSG_MIG_START:
		return apply_mig_start(st, from, m);
	case HA_MSG_MIG_DONE:
	case HA_MSG_GUEST_RESTARTED:
		return apply_move_end(st, from, m, true);
	case HA_MSG_MIG_FAILED:
		return apply_move_end(st, from, m, false);
	case HA_MSG_FENCED:
		return apply_fenced(st, from, m);
	case HA_MSG_FENCE_FAILED:
		return apply_fence_failed(st, from, m);
	case HA_MSG_RESTART_START:
		return apply_restart_start(st, from, m);
	case HA_MSG_GUEST_STOPPED:
		return apply_guest_stopped(st, from, m);
	case HA_MSG_MIGRATE_REQUEST:
		return apply_migrate_request(st, from, m);
	case HA_MSG_UPDATE:
		return apply_update(st, from, m);
	case HA_MSG_GENERATION:
		return apply_generation(st, from, m);
	case HA_MSG_SYNC:
		return 0; /* outside a sync round: stale, ignored */
	}
	return ERR_PROTO;
}

int ha_state_submit(struct ha_state *st, const struct ha_msg *m)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	if (st->noutbox == HA_OUTBOX_MAX)
		return ERR_BUSY;
	rc = ha_msg_encode(m, &buf, &len);
	if (rc < 0)
		return rc;
	st->outbox[st->noutbox].buf = buf;
	st->outbox[st->noutbox].len = len;
	st->noutbox++;
	return 0;
}

int ha_state_next_outgoing(struct ha_state *st, uint8_t **buf_r, size_t *len_r)
{
	if (st->noutbox == 0)
		return ERR_NOTFOUND;
	*buf_r = st->outbox[0].buf;
	*len_r = st->outbox[0].len;
	memmove(&st->outbox[0], &st->outbox[1], (st->noutbox - 1) * sizeof(st->outbox[0]));
	st->noutbox--;
	return 0;
}

int ha_state_plan(const struct ha_state *st, struct plan_action **actions_r, size_t *n_r)
{
	struct plan_node nodes[HA_MAX_NODES];
	struct plan_guest *guests;
	struct plan_input in = {
	    .nodes = nodes,
	    .nnodes = st->nnodes,
	    .nguests = st->nguests,
	    .max_outgoing = st->cfg.max_outgoing,
	    .max_incoming = st->cfg.max_incoming,
	    .max_attempts = st->cfg.max_attempts,
	    .bandwidth_mibps = st->cfg.bandwidth_mibps,
	};
	int rc;

	*actions_r = NULL;
	*n_r = 0;
	if (!st->quorate || st->quorum_stale)
		return ERR_NOQUORUM;
	if (!st->synced || st->syncing || !st->generation_confirmed)
		return ERR_BUSY;
	guests = calloc(st->nguests + 1, sizeof(*guests));
	if (!guests)
		return ERR_NOMEM;
	for (size_t i = 0; i < st->nnodes; i++) {
		const struct ha_node_info *n = &st->nodes[i];

		nodes[i] = (struct plan_node){n->nodeid,
		                              "",
		                              (enum ha_node_state)n->state,
		                              n->free_mib,
		                              n->reserve_mib,
		                              n->outgoing,
		                              n->incoming,
		                              n->member};
		memcpy(nodes[i].name, n->name, sizeof(n->name));
	}
	for (size_t i = 0; i < st->nguests; i++) {
		const struct ha_guest_info *g = &st->guests[i];
		struct plan_guest *p = &guests[i];

		memcpy(p->name, g->name, sizeof(p->name));
		p->owner = g->owner;
		p->mem_mib = g->mem_mib;
		p->dirty_mibps = g->dirty_mibps;
		memcpy(p->preferred, g->preferred, sizeof(p->preferred));
		memcpy(p->anti_affinity, g->anti_affinity, sizeof(p->anti_affinity));
		p->fallback = (enum ha_fallback)g->fallback;
		p->moving_to = g->moving_to;
		p->stopped = g->stopped;
		p->failures = g->failures;
		p->requested_to = g->requested_to;
	}
	in.guests = guests;
	rc = plan_compute(&in, actions_r, n_r);
	free(guests);
	return rc;
}

uint64_t ha_state_digest(const struct ha_state *st)
{
	struct ha_msg m = {.type = HA_MSG_SYNC, .generation = st->generation};
	uint64_t h = 1469598103934665603ull;
	uint8_t *buf = NULL;
	size_t len = 0;

	m.nodes = (struct ha_node_info *)st->nodes;
	m.nnodes = st->nnodes;
	m.guests = (struct ha_guest_info *)st->guests;
	m.nguests = st->nguests;
	if (ha_msg_encode(&m, &buf, &len) < 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		h = (h ^ buf[i]) * 1099511628211ull;
	free(buf);
	return h;
}

bool ha_state_synced(const struct ha_state *st)
{
	return st->synced && !st->syncing;
}

bool ha_state_holds_view(const struct ha_state *st)
{
	return st->synced;
}

bool ha_state_in_round(const struct ha_state *st)
{
	return st->syncing;
}

bool ha_state_quorate(const struct ha_state *st)
{
	return st->quorate;
}

bool ha_state_may_act(const struct ha_state *st)
{
	return st->quorate && !st->quorum_stale && st->synced && !st->syncing &&
	       st->generation_confirmed;
}

uint64_t ha_state_generation(const struct ha_state *st)
{
	return st->generation;
}

uint32_t ha_state_self(const struct ha_state *st)
{
	return st->self;
}

void ha_state_set_cpu(struct ha_state *st, double guests_s, double agent_s, int64_t at_ms)
{
	st->cpu_guests_s = guests_s;
	st->cpu_agent_s = agent_s;
	st->cpu_at_ms = at_ms;
}

bool ha_state_cpu(const struct ha_state *st, double *guests_s, double *agent_s, int64_t *at_ms)
{
	*guests_s = st->cpu_guests_s;
	*agent_s = st->cpu_agent_s;
	*at_ms = st->cpu_at_ms;
	return st->cpu_at_ms > 0;
}

const struct ha_node_info *ha_state_node(const struct ha_state *st, uint32_t nodeid)
{
	return ha_state_find_node((struct ha_state *)st, nodeid);
}

const struct ha_node_info *ha_state_node_by_name(const struct ha_state *st, const char *name)
{
	for (size_t i = 0; i < st->nnodes; i++)
		if (strcmp(st->nodes[i].name, name) == 0)
			return &st->nodes[i];
	return NULL;
}

const struct ha_guest_info *ha_state_guest(const struct ha_state *st, const char *name)
{
	return find_guest((struct ha_state *)st, name);
}

size_t ha_state_nodes(const struct ha_state *st, const struct ha_node_info **nodes_r)
{
	*nodes_r = st->nodes;
	return st->nnodes;
}

size_t ha_state_guests(const struct ha_state *st, const struct ha_guest_info **guests_r)
{
	*guests_r = st->guests;
	return st->nguests;
}

size_t ha_state_events(const struct ha_state *st, const struct ha_event **events_r)
{
	*events_r = st->events;
	return st->nevents;
}

const char *ha_state_stale_copy(const struct ha_state *st, size_t i)
{
	return i < st->nstale_copies ? st->stale_copies[i] : NULL;
}

void ha_state_stale_copy_done(struct ha_state *st, const char *name)
{
	for (size_t i = 0; i < st->nstale_copies; i++) {
		if (strcmp(st->stale_copies[i], name) != 0)
			continue;
		memmove(st->stale_copies[i], st->stale_copies[i + 1],
		        (st->nstale_copies - i - 1) * sizeof(st->stale_copies[0]));
		st->nstale_copies--;
		return;
	}
}

void ha_state_stale_copy_again(struct ha_state *st, const char *name)
{
	for (size_t i = 0; i < st->nstale_copies; i++)
		if (strcmp(st->stale_copies[i], name) == 0)
			return;
	if (st->nstale_copies < HA_MAX_GUESTS)
		str_copy(st->stale_copies[st->nstale_copies++], HA_NAME_MAX, name);
}

bool ha_state_local_stopping(const struct ha_state *st, const char *name)
{
	for (size_t i = 0; i < st->nlocal_stops; i++)
		if (strcmp(st->local_stops[i], name) == 0)
			return true;
	return false;
}

void ha_state_local_stop(struct ha_state *st, const char *name, bool running)
{
	for (size_t i = 0; i < st->nlocal_stops; i++) {
		if (strcmp(st->local_stops[i], name) != 0)
			continue;
		if (!running) {
			memmove(st->local_stops[i], st->local_stops[i + 1],
			        (st->nlocal_stops - i - 1) * sizeof(st->local_stops[0]));
			st->nlocal_stops--;
		}
		return;
	}
	if (running && st->nlocal_stops < HA_MAX_GUESTS)
		str_copy(st->local_stops[st->nlocal_stops++], HA_NAME_MAX, name);
}
