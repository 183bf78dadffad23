/*
 * ha_testcluster.c - a reference cluster for the state machine's tests: N agents on the
 * simulated cluster backend, each with a reference executor (it claims what the plan gives
 * it and acts only on its own claim once applied) and a model hypervisor recording where
 * every guest really runs, so that a checker can assert after every delivered event that no
 * guest runs twice (see ha_testcluster.h).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "tests/unit/ha_testcluster.h"

const char *const gname[NGUESTS] = {"g1", "g2", "g3", "g4", "g5", "g6", "g7"};
const uint32_t ghome[NGUESTS] = {1, 1, 1, 1, 2, 3, 0};

int gindex(const char *name)
{
	for (int i = 0; i < NGUESTS; i++)
		if (strcmp(gname[i], name) == 0)
			return i;
	return -1;
}

void refresh_local(struct tnode *n)
{
	struct ha_guest_info g[NGUESTS];
	size_t ng = 0;
	char name[16];

	memset(g, 0, sizeof(g));
	for (int i = 0; i < NGUESTS; i++) {
		if (!n->ctx->running[n->id][i])
			continue;
		snprintf(g[ng].name, sizeof(g[ng].name), "%s", gname[i]);
		g[ng].mem_mib = 1024;
		g[ng].dirty_mibps = (uint32_t)i;
		ng++;
	}
	snprintf(name, sizeof(name), "node%u", n->id);
	assert_int_equal(
	    ha_state_set_local(
	        n->st, name, n->ctx->free_mib[n->id] ? n->ctx->free_mib[n->id] : 8192, 1024, g, ng),
	    0);
}

void pump(struct tnode *n)
{
	uint8_t *buf;
	size_t len;

	while (ha_state_next_outgoing(n->st, &buf, &len) == 0) {
		if (n->cl)
			cl_sim_ops.send(n->cl, buf, len);
		free(buf);
	}
}

static bool pending_has(struct tnode *n, const char *key)
{
	for (size_t i = 0; i < sizeof(n->pending) / sizeof(n->pending[0]); i++)
		if (strcmp(n->pending[i], key) == 0)
			return true;
	return false;
}

static void pending_set(struct tnode *n, const char *key, bool on)
{
	for (size_t i = 0; i < sizeof(n->pending) / sizeof(n->pending[0]); i++) {
		if (on && !n->pending[i][0]) {
			snprintf(n->pending[i], HA_NAME_MAX, "%s", key);
			return;
		}
		if (!on && strcmp(n->pending[i], key) == 0)
			n->pending[i][0] = '\0';
	}
}

void submit(struct tnode *n, enum ha_msg_type type, const char *guest, uint32_t from, uint32_t to,
            uint32_t node)
{
	struct ha_msg m = {.type = type, .from = from, .to = to, .node = node};

	snprintf(m.guest, sizeof(m.guest), "%s", guest ? guest : "");
	if (type == HA_MSG_MIG_FAILED) {
		m.err = ERR_IO;
		snprintf(m.text, sizeof(m.text), "peer node left during the migration");
	}
	if (type == HA_MSG_MIG_DONE) /* the figures a source's executor reports */
		snprintf(m.text, sizeof(m.text), "downtime 6.4 ms, total 120.0 ms");
	assert_int_equal(ha_state_submit(n->st, &m), 0);
}

/* The fence command: power the node off (its guests die with it). */
void fence(struct ctx *c, uint32_t victim)
{
	c->fences[victim]++;
	if (!c->fence_keeps_guests)
		memset(c->running[victim], 0, sizeof(c->running[victim]));
	if (c->fence_spares_node)
		return;
	cl_sim_crash(c->w, victim);
	c->nodes[victim].agent = false;
}

/* Claim what the plan gives this node. */
void execute(struct tnode *n)
{
	struct ctx *c = n->ctx;
	struct plan_action *a = NULL;
	size_t na = 0;
	char key[HA_NAME_MAX];

	if (!c->auto_exec || !n->agent || ha_state_plan(n->st, &a, &na) < 0)
		return;
	for (size_t i = 0; i < na; i++) {
		if (a[i].executor != n->id)
			continue;
		snprintf(key, sizeof(key), "%s", a[i].kind == PLAN_FENCE ? "fence" : a[i].guest);
		if (pending_has(n, key))
			continue;
		if (a[i].kind == PLAN_MIGRATE) {
			submit(n, HA_MSG_MIG_START, a[i].guest, a[i].from, a[i].to, 0);
		} else if (a[i].kind == PLAN_COLD_RESTART && c->hold_restarts) {
			continue;
		} else if (a[i].kind == PLAN_COLD_RESTART) {
			submit(n, a[i].from == n->id ? HA_MSG_GUEST_STOPPED : HA_MSG_RESTART_START,
			       a[i].guest, a[i].from, a[i].to, 0);
		} else if (a[i].kind == PLAN_FENCE &&
		           (!c->auto_fence || (c->fence_only_by && c->fence_only_by != n->id))) {
			c->fence_tries[n->id][a[i].from]++;
			continue;
		} else if (a[i].kind == PLAN_FENCE) {
			c->fence_tries[n->id][a[i].from]++;
			fence(c, a[i].from);
			submit(n, HA_MSG_FENCED, NULL, 0, 0, a[i].from);
		} else {
			continue;
		}
		pending_set(n, key, true);
	}
	free(a);
}

/* Our own claim came back: act on it if it was applied. */
static void on_own(struct tnode *n, const struct ha_msg *m, int rc)
{
	struct ctx *c = n->ctx;
	int gi = m->guest[0] ? gindex(m->guest) : -1;

	pending_set(n, m->type == HA_MSG_FENCED ? "fence" : m->guest, false);
	if (rc < 0 || gi < 0)
		return;
	if (m->type == HA_MSG_MIG_START && c->auto_complete) {
		c->migrations++;
		c->running[m->from][gi] = false; /* switch-over: one copy at a time */
		c->running[m->to][gi] = true;
		submit(n, HA_MSG_MIG_DONE, m->guest, m->from, m->to, 0);
	} else if (m->type == HA_MSG_RESTART_START) {
		c->restarts[gi]++;
		c->running[m->to][gi] = true;
		submit(n, HA_MSG_GUEST_RESTARTED, m->guest, m->from, m->to, 0);
	} else if (m->type == HA_MSG_GUEST_STOPPED) {
		c->running[m->from][gi] = false;
	}
}

static void cb_deliver(void *arg, uint32_t from, const void *msg, size_t len)
{
	struct tnode *n = arg;
	struct ha_msg m;
	int rc = ha_state_deliver(n->st, from, msg, len);

	if (from == n->id && ha_msg_decode(msg, len, &m) == 0) {
		on_own(n, &m, rc);
		ha_msg_release(&m);
	}
	refresh_local(n);
	execute(n);
	pump(n);
}

/* A peer of an in-flight migration left: the survivor reports (the guest stays put). */
static void report_orphans(struct tnode *n, const uint32_t *members, size_t nm)
{
	const struct ha_guest_info *g;
	size_t ng = ha_state_guests(n->st, &g);

	for (size_t i = 0; i < ng; i++) {
		uint32_t peer = g[i].owner == n->id ? g[i].moving_to : g[i].owner;
		bool present = false;

		if (!g[i].moving_to || (g[i].owner != n->id && g[i].moving_to != n->id))
			continue;
		for (size_t k = 0; k < nm; k++)
			present = present || members[k] == peer;
		if (!present)
			submit(n, HA_MSG_MIG_FAILED, g[i].name, g[i].owner, g[i].moving_to, 0);
	}
}

static void cb_membership(void *arg, const uint32_t *members, size_t nm, const uint32_t *left,
                          size_t nl, const uint32_t *joined, size_t nj)
{
	struct tnode *n = arg;

	refresh_local(n);
	ha_state_membership(n->st, members, nm, left, nl, joined, nj);
	if (ha_state_synced(n->st) && !n->ctx->late_orphans)
		report_orphans(n, members, nm);
	execute(n);
	pump(n);
}

static void cb_quorum(void *arg, bool quorate)
{
	struct tnode *n = arg;

	ha_state_quorum(n->st, quorate);
	execute(n);
	pump(n);
}

static void cb_lost(void *arg, int err)
{
	struct tnode *n = arg;

	(void)err;
	ha_state_lost(n->st);
	n->reopen = true;
}

static const struct cluster_callbacks callbacks = {cb_deliver, cb_membership, cb_quorum, cb_lost};

void open_node(struct ctx *c, uint32_t id)
{
	struct tnode *n = &c->nodes[id];

	if (n->cl)
		cl_sim_ops.close(n->cl);
	n->cl = NULL;
	n->agent = true;
	n->reopen = false;
	cl_sim_world_next_node(c->w, id);
	assert_int_equal(cl_sim_ops.open(&n->cl, "haagent", &callbacks, n), 0);
}

/* No guest runs on two nodes; limits hold in every node's view. */
void check_invariants(struct ctx *c)
{
	for (int g = 0; g < NGUESTS; g++) {
		int copies = 0;

		for (uint32_t id = 1; id <= NNODES; id++)
			copies += c->running[id][g];
		if (copies > 1 && !c->allow_copies)
			fail_msg("guest %s runs on %d nodes", gname[g], copies);
	}
	for (uint32_t id = 1; id <= NNODES; id++) {
		const struct ha_node_info *nodes;
		size_t nn;

		if (!c->nodes[id].agent)
			continue;
		nn = ha_state_nodes(c->nodes[id].st, &nodes);
		for (size_t i = 0; i < nn; i++) {
			assert_true(nodes[i].outgoing <= 2);
			assert_true(nodes[i].incoming <= 2);
			c->max_out =
			    nodes[i].outgoing > c->max_out ? nodes[i].outgoing : c->max_out;
			c->max_in = nodes[i].incoming > c->max_in ? nodes[i].incoming : c->max_in;
		}
	}
}

/*
 * Deliver one event: without seed, to the first node with one due; with seed, to a node
 * picked at random among those (its nodeid folded into *trace). Virtual time passes when
 * nothing is due. Returns the number of events delivered (0: none left).
 */
static size_t step_one(struct ctx *c, unsigned *seed, uint64_t *trace)
{
	uint32_t first = seed ? (uint32_t)rand_r(seed) % NNODES : 0;

	for (uint32_t k = 0; seed && k < NNODES; k++) {
		uint32_t id = 1 + (first + k) % NNODES;

		if (cl_sim_step_node(c->w, id)) {
			*trace = (*trace ^ id) * 1099511628211ull;
			return 1;
		}
	}
	return cl_sim_run(c->w, 1);
}

/* Deliver one event at a time, checking after each; reopen nodes that lost corosync. */
static void run_loop(struct ctx *c, unsigned *seed, uint64_t *trace)
{
	for (int guard = 0; guard < 100000; guard++) {
		size_t ran = step_one(c, seed, trace);

		check_invariants(c);
		for (uint32_t id = 1; id <= NNODES; id++)
			if (c->nodes[id].reopen)
				open_node(c, id), ran++;
		if (ran == 0)
			return;
	}
	fail_msg("the cluster did not settle");
}

void run(struct ctx *c)
{
	run_loop(c, NULL, NULL);
}

void run_shuffled(struct ctx *c, unsigned *seed, uint64_t *trace)
{
	run_loop(c, seed, trace);
}

struct ctx *setup_cluster(const uint32_t *order, unsigned delay)
{
	struct ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	assert_int_equal(cl_sim_world_new(&c->w, NNODES), 0);
	cl_sim_set_delay(c->w, delay);
	c->auto_exec = c->auto_complete = c->auto_fence = true;
	for (int g = 0; g < NHOMED; g++)
		c->running[ghome[g]][g] = true;
	for (uint32_t id = 1; id <= NNODES; id++) {
		c->nodes[id].id = id;
		c->nodes[id].ctx = c;
		assert_int_equal(ha_state_new(&c->nodes[id].st, id, NULL), 0);
		refresh_local(&c->nodes[id]);
	}
	for (int i = 0; i < NNODES; i++) {
		open_node(c, order[i]);
		cl_sim_run(c->w, 2); /* joins interleave with the previous round */
	}
	run(c);
	return c;
}

void teardown_cluster(struct ctx *c)
{
	for (uint32_t id = 1; id <= NNODES; id++) {
		if (c->nodes[id].cl)
			cl_sim_ops.close(c->nodes[id].cl);
		ha_state_free(c->nodes[id].st);
	}
	cl_sim_world_free(c->w);
	free(c);
}

void render_plan(struct ha_state *st, char *buf, size_t len)
{
	struct plan_action *a = NULL;
	size_t n = 0, off = 0;
	int rc = ha_state_plan(st, &a, &n);

	snprintf(buf, len, "rc=%d", rc);
	off = strlen(buf);
	for (size_t i = 0; i < n && off < len; i++)
		off += snprintf(buf + off, len - off, " %s:%s:%u>%u", plan_kind_name(a[i].kind),
		                a[i].guest, a[i].from, a[i].to);
	free(a);
}

/* Every live agent: synced, same digest, same plan. */
void assert_agreement(struct ctx *c)
{
	uint64_t digest = 0;
	char ref[2048] = "", got[2048];

	for (uint32_t id = 1; id <= NNODES; id++) {
		struct tnode *n = &c->nodes[id];

		if (!n->agent)
			continue;
		assert_true(ha_state_synced(n->st));
		render_plan(n->st, got, sizeof(got));
		if (!digest) {
			digest = ha_state_digest(n->st);
			snprintf(ref, sizeof(ref), "%s", got);
			continue;
		}
		if (ha_state_digest(n->st) != digest)
			fail_msg("node %u's view differs", id);
		assert_string_equal(got, ref);
	}
}

uint32_t owner_of(struct ctx *c, uint32_t viewer, const char *guest)
{
	const struct ha_guest_info *g = ha_state_guest(c->nodes[viewer].st, guest);

	assert_non_null(g);
	return g->owner;
}

void mark(struct ctx *c, uint32_t by, uint32_t node, enum ha_node_state state)
{
	struct ha_msg m = {.type = HA_MSG_SET_STATE, .node = node, .state = state, .text = "test"};

	assert_int_equal(ha_state_submit(c->nodes[by].st, &m), 0);
	pump(&c->nodes[by]);
}

/* Node id samples its model hypervisor and announces (UPDATE) what changed. */
int announce(struct ctx *c, uint32_t id, bool heartbeat)
{
	struct tnode *n = &c->nodes[id];
	int rc;

	refresh_local(n);
	rc = ha_state_announce(n->st, heartbeat);
	pump(n);
	return rc;
}

bool every_node_has_event(struct ctx *c, const char *text)
{
	for (uint32_t id = 1; id <= NNODES; id++) {
		const struct ha_event *ev;
		size_t nev = ha_state_events(c->nodes[id].st, &ev);
		bool found = false;

		for (size_t i = 0; i < nev && !found; i++)
			found = strstr(ev[i].text, text) != NULL;
		if (!found) {
			print_message("  node %u has no event \"%s\"\n", id, text);
			return false;
		}
	}
	return true;
}
