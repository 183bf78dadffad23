/*
 * planner.c - the evacuation planner (see planner.h for the rules). Pure: no I/O, no globals.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "haagent/planner.h"

/* Working copy of the input, sorted, with the reservations made while planning. */
struct plan_work {
	const struct plan_input *in;
	const struct plan_node **nodes;   /* by nodeid */
	const struct plan_guest **guests; /* by name */
	int64_t *room;                    /* free - reserve - planned, per node */
	unsigned *out, *inc;              /* in flight + planned, per node */
	uint32_t *planned_to;             /* per guest, 0 if none */
	unsigned max_out, max_in, max_attempts;
	uint32_t bandwidth;
	struct plan_action *actions;
	size_t nactions;
};

const char *plan_kind_name(enum plan_kind kind)
{
	static const char *const names[] = {"migrate", "cold-restart", "fence", "defer", "stay"};

	return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
}

const char *ha_node_state_name(enum ha_node_state state)
{
	static const char *const names[] = {"ok",   "failing", "draining",
	                                    "down", "fenced",  "stopping"};

	_Static_assert(sizeof(names) / sizeof(names[0]) == HA_NODE_STATE_COUNT,
	               "a name for every node state");
	return (unsigned)state < HA_NODE_STATE_COUNT ? names[state] : "?";
}

uint64_t plan_estimate_ms(uint64_t mem_mib, uint32_t dirty_mibps, uint32_t bandwidth_mibps)
{
	uint64_t bw = bandwidth_mibps ? bandwidth_mibps : PLAN_DEFAULT_BANDWIDTH_MIBPS;

	/* The engine forces the switch-over (or throttles) past 0.8 R: about 5 passes. */
	if ((uint64_t)dirty_mibps * 5 >= bw * 4)
		return mem_mib * 5000 / bw;
	return mem_mib * 1000 / (bw - dirty_mibps);
}

static int cmp_node_ptr(const void *a, const void *b)
{
	const struct plan_node *x = *(const struct plan_node *const *)a;
	const struct plan_node *y = *(const struct plan_node *const *)b;

	return x->nodeid < y->nodeid ? -1 : x->nodeid > y->nodeid;
}

static int cmp_guest_ptr(const void *a, const void *b)
{
	const struct plan_guest *x = *(const struct plan_guest *const *)a;
	const struct plan_guest *y = *(const struct plan_guest *const *)b;

	return strcmp(x->name, y->name);
}

static int node_index(const struct plan_work *w, uint32_t nodeid)
{
	size_t lo = 0, hi = w->in->nnodes;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (w->nodes[mid]->nodeid == nodeid)
			return (int)mid;
		if (w->nodes[mid]->nodeid < nodeid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static const char *node_name(const struct plan_work *w, uint32_t nodeid)
{
	int i = node_index(w, nodeid);

	return i < 0 ? "?" : w->nodes[i]->name;
}

/* vsnprintf: truncating a long reason is fine, and no -Wformat-truncation noise. */
static void textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void textf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static struct plan_action *add_action(struct plan_work *w, enum plan_kind kind,
                                      const struct plan_guest *g, uint32_t from, uint32_t to,
                                      uint32_t executor)
{
	struct plan_action *a = &w->actions[w->nactions++];

	memset(a, 0, sizeof(*a));
	a->kind = kind;
	if (g)
		textf(a->guest, sizeof(a->guest), "%s", g->name);
	a->from = from;
	a->to = to;
	a->executor = executor;
	return a;
}

/* A node can host live guests: a member in state OK. */
static bool node_usable(const struct plan_node *n)
{
	return n->member && n->state == HA_NODE_OK;
}

/* Does node idx already hold (run, receive, or get planned) a guest of g's group? */
static bool anti_affinity_clash(const struct plan_work *w, const struct plan_guest *g, size_t idx)
{
	uint32_t nodeid = w->nodes[idx]->nodeid;

	if (!g->anti_affinity[0])
		return false;
	for (size_t i = 0; i < w->in->nguests; i++) {
		const struct plan_guest *o = w->guests[i];

		if (o == g || strcmp(o->anti_affinity, g->anti_affinity) != 0)
			continue;
		if (o->owner == nodeid || o->moving_to == nodeid || w->planned_to[i] == nodeid)
			return true;
	}
	return false;
}

static int preferred_rank(const struct plan_guest *g, const struct plan_node *n)
{
	for (int i = 0; i < HA_MAX_PREFERRED; i++)
		if (g->preferred[i][0] && strcmp(g->preferred[i], n->name) == 0)
			return i;
	return HA_MAX_PREFERRED;
}

/*
 * Feasible targets for g in preference order into idx_r; returns their count. When there
 * is none, why explains the closest miss.
 */
static size_t targets_for(const struct plan_work *w, const struct plan_guest *g, size_t *idx_r,
                          char *why, size_t why_len)
{
	size_t n = 0, usable = 0, clash = 0;
	int64_t best_room = INT64_MIN;
	const char *best_name = "";

	for (size_t i = 0; i < w->in->nnodes; i++) {
		const struct plan_node *node = w->nodes[i];

		if (node->nodeid == g->owner || !node_usable(node))
			continue;
		usable++;
		if (w->room[i] > best_room) {
			best_room = w->room[i];
			best_name = node->name;
		}
		if (w->room[i] < (int64_t)g->mem_mib)
			continue;
		if (anti_affinity_clash(w, g, i)) {
			clash++;
			continue;
		}
		idx_r[n++] = i;
	}
	/* Insertion sort by (preferred rank, room desc, nodeid): n is small. */
	for (size_t i = 1; i < n; i++) {
		size_t v = idx_r[i], j = i;
		int rv = preferred_rank(g, w->nodes[v]);

		while (j > 0) {
			size_t u = idx_r[j - 1];
			int ru = preferred_rank(g, w->nodes[u]);

			if (ru < rv || (ru == rv && w->room[u] > w->room[v]) ||
			    (ru == rv && w->room[u] == w->room[v] &&
			     w->nodes[u]->nodeid < w->nodes[v]->nodeid))
				break;
			idx_r[j] = u;
			j--;
		}
		idx_r[j] = v;
	}
	if (n == 0 && usable == 0)
		textf(why, why_len, "no node is ok to receive it");
	else if (n == 0 && clash > 0)
		textf(why, why_len,
		      "no node without a guest of anti-affinity group '%s' has %" PRIu64
		      " MiB free",
		      g->anti_affinity, g->mem_mib);
	else if (n == 0)
		textf(why, why_len,
		      "no node has %" PRIu64 " MiB free (most: %" PRId64 " MiB on %s)", g->mem_mib,
		      best_room < 0 ? 0 : best_room, best_name);
	return n;
}

static void reserve(struct plan_work *w, size_t gi, size_t ti)
{
	w->room[ti] -= (int64_t)w->guests[gi]->mem_mib;
	w->planned_to[gi] = w->nodes[ti]->nodeid;
}

/* Plan a cold restart of guest gi (stopped, or a failed live move with that fallback). */
static void plan_cold(struct plan_work *w, size_t gi, size_t *cand, const char *because)
{
	const struct plan_guest *g = w->guests[gi];
	int oi = node_index(w, g->owner);
	bool owner_alive = oi >= 0 && w->nodes[oi]->member && w->nodes[oi]->state != HA_NODE_DOWN &&
	                   w->nodes[oi]->state != HA_NODE_FENCED && !g->stopped;
	char why[HA_REASON_MAX];
	struct plan_action *a;

	if (g->failures >= 2 * w->max_attempts) {
		a = add_action(w, PLAN_STAY, g, g->owner, 0, 0);
		textf(a->reason, sizeof(a->reason),
		      "%s: gave up after %u failed attempts; needs an operator", because,
		      g->failures);
		return;
	}
	if (targets_for(w, g, cand, why, sizeof(why)) == 0) {
		a = add_action(w, PLAN_STAY, g, g->owner, 0, 0);
		textf(a->reason, sizeof(a->reason), "%s: %s", because, why);
		return;
	}
	reserve(w, gi, cand[0]);
	/* A running guest is shut down by its owner first; a stopped one is started by the
	 * target. */
	a = add_action(w, PLAN_COLD_RESTART, g, g->owner, w->nodes[cand[0]]->nodeid,
	               owner_alive ? g->owner : w->nodes[cand[0]]->nodeid);
	textf(a->reason, sizeof(a->reason), "%s", because);
}

static void plan_live(struct plan_work *w, size_t gi, size_t *cand)
{
	const struct plan_guest *g = w->guests[gi];
	int oi = node_index(w, g->owner);
	char why[HA_REASON_MAX];
	struct plan_action *a;
	size_t n;

	if (g->failures >= w->max_attempts) {
		if (g->fallback == HA_FALLBACK_COLD_RESTART) {
			plan_cold(w, gi, cand, "live migration failed, fallback cold-restart");
			return;
		}
		a = add_action(w, PLAN_STAY, g, g->owner, 0, 0);
		textf(a->reason, sizeof(a->reason), "live migration failed %u times; fallback stay",
		      g->failures);
		return;
	}
	n = targets_for(w, g, cand, why, sizeof(why));
	if (g->requested_to) {
		size_t k = 0;

		while (k < n && w->nodes[cand[k]]->nodeid != g->requested_to)
			k++;
		if (k == n) {
			a = add_action(w, PLAN_STAY, g, g->owner, 0, 0);
			textf(a->reason, sizeof(a->reason),
			      "requested move to %s impossible: not ok, no room or anti-affinity",
			      node_name(w, g->requested_to));
			return;
		}
		cand[0] = cand[k];
		n = 1;
	}
	if (n == 0) {
		a = add_action(w, PLAN_STAY, g, g->owner, 0, 0);
		textf(a->reason, sizeof(a->reason), "%s%s", why,
		      g->fallback == HA_FALLBACK_COLD_RESTART ? "; no cold restart either" : "");
		return;
	}
	if (w->out[oi] >= w->max_out) {
		a = add_action(w, PLAN_DEFER, g, g->owner, 0, 0);
		textf(a->reason, sizeof(a->reason), "%s at its outgoing limit (%u)",
		      w->nodes[oi]->name, w->max_out);
		return;
	}
	for (size_t k = 0; k < n; k++) {
		size_t ti = cand[k];

		if (w->inc[ti] >= w->max_in)
			continue;
		reserve(w, gi, ti);
		w->out[oi]++;
		w->inc[ti]++;
		a = add_action(w, PLAN_MIGRATE, g, g->owner, w->nodes[ti]->nodeid, g->owner);
		a->est_ms = plan_estimate_ms(g->mem_mib, g->dirty_mibps, w->bandwidth);
		if (w->nodes[oi]->state == HA_NODE_OK)
			textf(a->reason, sizeof(a->reason), "operator request");
		else
			textf(a->reason, sizeof(a->reason), "%s is %s", w->nodes[oi]->name,
			      ha_node_state_name(w->nodes[oi]->state));
		return;
	}
	a = add_action(w, PLAN_DEFER, g, g->owner, 0, 0);
	textf(a->reason, sizeof(a->reason), "every target (%s first) at its incoming limit (%u)",
	      w->nodes[cand[0]]->name, w->max_in);
}

/* Lowest live member: it runs the fence command. */
static uint32_t fence_executor(const struct plan_work *w)
{
	for (size_t i = 0; i < w->in->nnodes; i++) {
		const struct plan_node *n = w->nodes[i];

		if (n->member && n->state != HA_NODE_DOWN && n->state != HA_NODE_FENCED)
			return n->nodeid;
	}
	return 0;
}

/* A down node needs fencing only if a guest runs, or may run, on it. */
static bool holds_guests(const struct plan_work *w, uint32_t nodeid)
{
	for (size_t i = 0; i < w->in->nguests; i++)
		if (w->guests[i]->owner == nodeid || w->guests[i]->moving_to == nodeid)
			return true;
	return false;
}

enum move_kind { MOVE_NONE, MOVE_LIVE, MOVE_COLD, MOVE_WAIT_FENCE };

static enum move_kind move_kind_of(const struct plan_work *w, const struct plan_guest *g)
{
	const struct plan_node *owner = w->nodes[node_index(w, g->owner)];

	if (g->moving_to)
		return MOVE_NONE;
	if (owner->state == HA_NODE_DOWN)
		return MOVE_WAIT_FENCE;
	if (g->stopped || owner->state == HA_NODE_FENCED || owner->state == HA_NODE_STOPPING)
		return MOVE_COLD;
	if (owner->state == HA_NODE_FAILING || owner->state == HA_NODE_DRAINING)
		return MOVE_LIVE;
	if (g->requested_to && owner->member)
		return MOVE_LIVE;
	return MOVE_NONE;
}

/* Why a guest is cold-restarted (the owner's state, or the guest already stopped). */
static const char *cold_reason(const struct plan_work *w, const struct plan_guest *g)
{
	const struct plan_node *owner = w->nodes[node_index(w, g->owner)];

	if (owner->state == HA_NODE_FENCED)
		return "its node was fenced";
	if (owner->state == HA_NODE_STOPPING)
		return "its node is stopping: cold evacuation";
	return "stopped for a cold restart";
}

/* Sort key: cold restarts first (their guests are down), then longest estimate first. */
static int cmp_order(const struct plan_work *w, size_t a, size_t b)
{
	const struct plan_guest *x = w->guests[a], *y = w->guests[b];
	enum move_kind kx = move_kind_of(w, x), ky = move_kind_of(w, y);
	uint64_t ex, ey;

	if ((kx == MOVE_COLD) != (ky == MOVE_COLD))
		return kx == MOVE_COLD ? -1 : 1;
	ex = kx == MOVE_COLD ? x->mem_mib
	                     : plan_estimate_ms(x->mem_mib, x->dirty_mibps, w->bandwidth);
	ey = ky == MOVE_COLD ? y->mem_mib
	                     : plan_estimate_ms(y->mem_mib, y->dirty_mibps, w->bandwidth);
	if (ex != ey)
		return ex > ey ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int work_init(struct plan_work *w, const struct plan_input *in)
{
	size_t nn = in->nnodes, ng = in->nguests;

	memset(w, 0, sizeof(*w));
	w->in = in;
	w->max_out = in->max_outgoing ? in->max_outgoing : PLAN_DEFAULT_MAX_OUTGOING;
	w->max_in = in->max_incoming ? in->max_incoming : PLAN_DEFAULT_MAX_INCOMING;
	w->max_attempts = in->max_attempts ? in->max_attempts : PLAN_DEFAULT_MAX_ATTEMPTS;
	w->bandwidth = in->bandwidth_mibps ? in->bandwidth_mibps : PLAN_DEFAULT_BANDWIDTH_MIBPS;
	w->nodes = calloc(nn + 1, sizeof(*w->nodes));
	w->guests = calloc(ng + 1, sizeof(*w->guests));
	w->room = calloc(nn + 1, sizeof(*w->room));
	w->out = calloc(nn + 1, sizeof(*w->out));
	w->inc = calloc(nn + 1, sizeof(*w->inc));
	w->planned_to = calloc(ng + 1, sizeof(*w->planned_to));
	w->actions = calloc(nn + ng + 1, sizeof(*w->actions));
	if (!w->nodes || !w->guests || !w->room || !w->out || !w->inc || !w->planned_to ||
	    !w->actions)
		return ERR_NOMEM;
	for (size_t i = 0; i < nn; i++)
		w->nodes[i] = &in->nodes[i];
	for (size_t i = 0; i < ng; i++)
		w->guests[i] = &in->guests[i];
	qsort(w->nodes, nn, sizeof(*w->nodes), cmp_node_ptr);
	qsort(w->guests, ng, sizeof(*w->guests), cmp_guest_ptr);
	for (size_t i = 0; i < nn; i++) {
		const struct plan_node *n = w->nodes[i];

		if (i > 0 && w->nodes[i - 1]->nodeid == n->nodeid)
			return ERR_INVAL;
		w->room[i] = (int64_t)n->free_mib - (int64_t)n->reserve_mib;
		w->out[i] = n->outgoing;
		w->inc[i] = n->incoming;
	}
	for (size_t i = 0; i < ng; i++) {
		if (i > 0 && strcmp(w->guests[i - 1]->name, w->guests[i]->name) == 0)
			return ERR_INVAL;
		if (node_index(w, w->guests[i]->owner) < 0)
			return ERR_INVAL;
	}
	return 0;
}

static void work_free(struct plan_work *w)
{
	free(w->nodes);
	free(w->guests);
	free(w->room);
	free(w->out);
	free(w->inc);
	free(w->planned_to);
	free(w->actions);
}

int plan_compute(const struct plan_input *in, struct plan_action **actions_r, size_t *n_r)
{
	struct plan_work w;
	size_t *order = NULL, *cand = NULL, norder = 0;
	int rc;

	*actions_r = NULL;
	*n_r = 0;
	rc = work_init(&w, in);
	if (rc < 0)
		goto out;
	order = calloc(in->nguests + 1, sizeof(*order));
	cand = calloc(in->nnodes + 1, sizeof(*cand));
	if (!order || !cand) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < in->nnodes; i++) {
		if (w.nodes[i]->state != HA_NODE_DOWN || !holds_guests(&w, w.nodes[i]->nodeid))
			continue;
		struct plan_action *a =
		    add_action(&w, PLAN_FENCE, NULL, w.nodes[i]->nodeid, 0, fence_executor(&w));
		textf(a->reason, sizeof(a->reason), "%s left the cluster unfenced%s",
		      w.nodes[i]->name, a->executor ? "" : "; no live member can fence it");
	}
	for (size_t i = 0; i < in->nguests; i++) {
		enum move_kind k = move_kind_of(&w, w.guests[i]);

		if (k == MOVE_WAIT_FENCE) {
			struct plan_action *a =
			    add_action(&w, PLAN_STAY, w.guests[i], w.guests[i]->owner, 0, 0);
			textf(a->reason, sizeof(a->reason),
			      "%s is down and not fenced: never restarted before fencing",
			      node_name(&w, w.guests[i]->owner));
		} else if (k != MOVE_NONE) {
			order[norder++] = i;
		}
	}
	/* Insertion sort keeps it stable and simple; the key is a total order anyway. */
	for (size_t i = 1; i < norder; i++) {
		size_t v = order[i], j = i;

		while (j > 0 && cmp_order(&w, order[j - 1], v) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
	for (size_t i = 0; i < norder; i++) {
		if (move_kind_of(&w, w.guests[order[i]]) == MOVE_COLD)
			plan_cold(&w, order[i], cand, cold_reason(&w, w.guests[order[i]]));
		else
			plan_live(&w, order[i], cand);
	}
	*actions_r = w.actions;
	*n_r = w.nactions;
	w.actions = NULL;
	rc = 0;
out:
	free(order);
	free(cand);
	work_free(&w);
	return rc;
}
