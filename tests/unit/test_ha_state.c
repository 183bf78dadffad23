/*
 * The replicated state machine (haagent/state*.c) on the simulated cluster
 * (haagent/cluster_sim.c): several nodes reach identical state and plans; partitions,
 * node loss mid-migration, corosync restart, garbage on the bus.
 *
 * Each node runs a reference executor: it claims what the plan gives it, acts only on its
 * own claim once applied, and a model hypervisor records where every guest really runs, so
 * a checker can assert after every delivered event that no guest runs twice.
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
#include "common/log.h"
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
};

static struct log_sink *capture;

static const char *const gname[NGUESTS] = {"g1", "g2", "g3", "g4", "g5", "g6", "g7"};
static const uint32_t ghome[NGUESTS] = {1, 1, 1, 1, 2, 3, 0};

static int gindex(const char *name)
{
	for (int i = 0; i < NGUESTS; i++)
		if (strcmp(gname[i], name) == 0)
			return i;
	return -1;
}

static void refresh_local(struct tnode *n)
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

static void pump(struct tnode *n)
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

static void submit(struct tnode *n, enum ha_msg_type type, const char *guest, uint32_t from,
                   uint32_t to, uint32_t node)
{
	struct ha_msg m = {.type = type, .from = from, .to = to, .node = node};

	snprintf(m.guest, sizeof(m.guest), "%s", guest ? guest : "");
	if (type == HA_MSG_MIG_FAILED) {
		m.err = ERR_IO;
		snprintf(m.text, sizeof(m.text), "peer node left during the migration");
	}
	assert_int_equal(ha_state_submit(n->st, &m), 0);
}

/* The fence command: power the node off (its guests die with it). */
static void fence(struct ctx *c, uint32_t victim)
{
	c->fences[victim]++;
	cl_sim_crash(c->w, victim);
	c->nodes[victim].agent = false;
	memset(c->running[victim], 0, sizeof(c->running[victim]));
}

/* Claim what the plan gives this node. */
static void execute(struct tnode *n)
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
		} else if (a[i].kind == PLAN_COLD_RESTART) {
			submit(n, a[i].from == n->id ? HA_MSG_GUEST_STOPPED : HA_MSG_RESTART_START,
			       a[i].guest, a[i].from, a[i].to, 0);
		} else if (a[i].kind == PLAN_FENCE && c->auto_fence) {
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
	if (ha_state_synced(n->st))
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

static void open_node(struct ctx *c, uint32_t id)
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
static void check_invariants(struct ctx *c)
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

/* Deliver one event at a time, checking after each; reopen nodes that lost corosync. */
static void run(struct ctx *c)
{
	for (int guard = 0; guard < 100000; guard++) {
		size_t ran = cl_sim_run(c->w, 1);

		check_invariants(c);
		for (uint32_t id = 1; id <= NNODES; id++)
			if (c->nodes[id].reopen)
				open_node(c, id), ran++;
		if (ran == 0)
			return;
	}
	fail_msg("the cluster did not settle");
}

static struct ctx *setup_cluster(const uint32_t *order, unsigned delay)
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

static void teardown_cluster(struct ctx *c)
{
	for (uint32_t id = 1; id <= NNODES; id++) {
		if (c->nodes[id].cl)
			cl_sim_ops.close(c->nodes[id].cl);
		ha_state_free(c->nodes[id].st);
	}
	cl_sim_world_free(c->w);
	free(c);
}

static void render_plan(struct ha_state *st, char *buf, size_t len)
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
static void assert_agreement(struct ctx *c)
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

static uint32_t owner_of(struct ctx *c, uint32_t viewer, const char *guest)
{
	const struct ha_guest_info *g = ha_state_guest(c->nodes[viewer].st, guest);

	assert_non_null(g);
	return g->owner;
}

static void mark(struct ctx *c, uint32_t by, uint32_t node, enum ha_node_state state)
{
	struct ha_msg m = {.type = HA_MSG_SET_STATE, .node = node, .state = state, .text = "test"};

	assert_int_equal(ha_state_submit(c->nodes[by].st, &m), 0);
	pump(&c->nodes[by]);
}

static void test_join_reordered_with_delays(void **state)
{
	static const uint32_t orders[3][NNODES] = {{1, 2, 3}, {3, 1, 2}, {2, 3, 1}};

	(void)state;
	for (int o = 0; o < 3; o++) {
		struct ctx *c = setup_cluster(orders[o], (unsigned)o * 7);

		assert_agreement(c);
		for (int g = 0; g < NHOMED; g++)
			for (uint32_t id = 1; id <= NNODES; id++)
				assert_int_equal(owner_of(c, id, gname[g]), ghome[g]);
		assert_string_equal(ha_state_node(c->nodes[1].st, 3)->name, "node3");
		teardown_cluster(c);
	}
}

static void test_same_plan_on_every_node(void **state)
{
	static const uint32_t order[NNODES] = {2, 1, 3};
	struct ctx *c = setup_cluster(order, 3);
	char plan[2048];

	(void)state;
	c->auto_exec = false;
	mark(c, 3, 1, HA_NODE_FAILING);
	run(c);
	assert_agreement(c);
	render_plan(c->nodes[1].st, plan, sizeof(plan));
	print_message("  plan: %s\n", plan);
	assert_non_null(strstr(plan, "migrate:"));
	assert_non_null(strstr(plan, "defer:"));
	teardown_cluster(c);
}

static void test_mark_failing_evacuates(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 2);

	(void)state;
	mark(c, 2, 1, HA_NODE_FAILING);
	run(c);
	assert_agreement(c);
	for (int g = 0; g < 4; g++) {
		assert_int_not_equal(owner_of(c, 2, gname[g]), 1);
		assert_false(c->running[1][g]);
	}
	assert_int_equal(c->migrations, 4);
	assert_int_equal(c->max_out, 2); /* the limit was used, never exceeded */
	print_message("  4 guests moved, max outgoing %u, max incoming %u\n", c->max_out,
	              c->max_in);
	/* clear returns the node to service */
	mark(c, 3, 1, HA_NODE_OK);
	run(c);
	assert_int_equal(ha_state_node(c->nodes[2].st, 1)->state, HA_NODE_OK);
	teardown_cluster(c);
}

static void test_partition_minority_frozen(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	static const int split[NNODES] = {1, 0, 0};
	struct ctx *c = setup_cluster(order, 0);
	struct plan_action *a = NULL;
	size_t na = 0;
	char plan[2048];

	(void)state;
	c->auto_fence = false;
	cl_sim_partition(c->w, split);
	run(c);
	/* the minority knows it lost the others but acts on nothing */
	assert_false(ha_state_quorate(c->nodes[1].st));
	assert_int_equal(ha_state_plan(c->nodes[1].st, &a, &na), ERR_NOQUORUM);
	assert_int_equal(ha_state_node(c->nodes[1].st, 2)->state, HA_NODE_DOWN);
	/* the majority wants node1 fenced and restarts nothing before */
	render_plan(c->nodes[2].st, plan, sizeof(plan));
	print_message("  majority plan: %s\n", plan);
	assert_non_null(strstr(plan, "fence::1>0"));
	for (int g = 0; g < NGUESTS; g++)
		assert_int_equal(c->restarts[g], 0);
	/* even a forced restart claim of an unfenced node's guest is refused */
	submit(&c->nodes[2], HA_MSG_RESTART_START, "g1", 1, 2, 0);
	pump(&c->nodes[2]);
	run(c);
	assert_int_equal(c->restarts[0], 0);
	assert_int_equal(owner_of(c, 3, "g1"), 1);
	/* now fence: node1 is powered off, then its guests restart exactly once */
	c->auto_fence = true;
	execute(&c->nodes[2]);
	pump(&c->nodes[2]);
	run(c);
	assert_int_equal(c->fences[1], 1);
	for (int g = 0; g < 4; g++) {
		assert_int_equal(c->restarts[g], 1);
		assert_int_not_equal(owner_of(c, 2, gname[g]), 1);
	}
	assert_agreement(c);
	teardown_cluster(c);
}

/* With fencing armed from the start: only the quorate side fences, once, then restarts. */
static void test_minority_never_fences(void **state)
{
	static const uint32_t order[NNODES] = {3, 2, 1};
	static const int split[NNODES] = {1, 0, 0};
	struct ctx *c = setup_cluster(order, 1);

	(void)state;
	cl_sim_partition(c->w, split);
	run(c);
	assert_int_equal(c->fences[2], 0);
	assert_int_equal(c->fences[3], 0);
	assert_int_equal(c->fences[1], 1);
	for (int g = 0; g < 4; g++)
		assert_int_equal(c->restarts[g], 1);
	assert_int_equal(c->restarts[4] + c->restarts[5], 0);
	assert_agreement(c);
	teardown_cluster(c);
}

static void test_target_dies_mid_migration(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);
	const struct ha_guest_info *g;
	uint32_t moving_to = 0;

	(void)state;
	c->auto_complete = false;
	mark(c, 2, 1, HA_NODE_FAILING);
	run(c);
	for (int i = 0; i < 4; i++) {
		g = ha_state_guest(c->nodes[1].st, gname[i]);
		if (g->moving_to == 3)
			moving_to = 3;
	}
	assert_int_equal(moving_to, 3);
	/* node3 dies with a migration to it in flight: node1 reports it failed */
	c->auto_complete = true;
	fence(c, 3);
	c->fences[3] = 0;
	run(c);
	/* the migration to node2 that was in flight completes too */
	for (int i = 0; i < 4; i++) {
		g = ha_state_guest(c->nodes[1].st, gname[i]);
		if (g->moving_to == 2) {
			c->running[1][i] = false;
			c->running[2][i] = true;
			submit(&c->nodes[1], HA_MSG_MIG_DONE, gname[i], 1, 2, 0);
		}
	}
	pump(&c->nodes[1]);
	run(c);
	assert_agreement(c);
	assert_int_equal(c->fences[3], 1); /* fenced once by the majority (1, 2) */
	for (int i = 0; i < NHOMED; i++) {
		assert_int_equal(owner_of(c, 2, gname[i]), 2);
		assert_true(c->running[2][i]);
	}
	{
		const struct ha_event *ev;
		size_t nev = ha_state_events(c->nodes[2].st, &ev);

		for (size_t i = 0; i < nev; i++)
			if (strstr(ev[i].text, "failed") || strstr(ev[i].text, "fenced"))
				print_message("  event: %s\n", ev[i].text);
	}
	teardown_cluster(c);
}

static void test_source_dies_mid_migration(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);

	(void)state;
	c->auto_complete = false;
	mark(c, 2, 1, HA_NODE_FAILING);
	run(c);
	assert_int_equal(ha_state_node(c->nodes[2].st, 1)->outgoing, 2);
	/* node1 dies before the point of no return: the targets drop their copies */
	c->auto_complete = true;
	fence(c, 1);
	c->fences[1] = 0;
	run(c);
	assert_agreement(c);
	assert_int_equal(c->fences[1], 1);
	for (int g = 0; g < 4; g++) {
		assert_int_equal(c->restarts[g], 1);
		assert_int_not_equal(owner_of(c, 3, gname[g]), 1);
	}
	teardown_cluster(c);
}

static void test_corosync_restart_resyncs(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 2);

	(void)state;
	c->auto_fence = false;
	mark(c, 1, 3, HA_NODE_FAILING); /* some history the restarted node must get back */
	run(c);
	cl_sim_restart_corosync(c->w, 2);
	run(c);
	assert_agreement(c);
	assert_int_equal(ha_state_node(c->nodes[2].st, 3)->state, HA_NODE_FAILING);
	assert_int_equal(ha_state_node(c->nodes[1].st, 2)->state, HA_NODE_OK);
	assert_int_equal(owner_of(c, 2, "g5"), 2);
	assert_int_equal(c->fences[2], 0);
	teardown_cluster(c);
}

static void test_partition_heal_takes_quorate_view(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	static const int split[NNODES] = {1, 0, 0}, whole[NNODES] = {0, 0, 0};
	struct ctx *c = setup_cluster(order, 0);

	(void)state;
	c->auto_fence = false;
	cl_sim_partition(c->w, split);
	run(c);
	mark(c, 2, 3, HA_NODE_FAILING); /* g6 moves to node2 on the majority side */
	run(c);
	assert_int_equal(owner_of(c, 2, "g6"), 2);
	assert_int_equal(owner_of(c, 1, "g6"), 3); /* the minority saw nothing */
	cl_sim_partition(c->w, whole);
	run(c);
	assert_agreement(c);
	assert_int_equal(owner_of(c, 1, "g6"), 2);
	assert_int_equal(ha_state_node(c->nodes[1].st, 3)->state, HA_NODE_FAILING);
	assert_int_equal(ha_state_node(c->nodes[3].st, 1)->state, HA_NODE_OK);
	teardown_cluster(c);
}

/* ctl migrate: any node submits the request, the owner carries it out, once. */
static void test_operator_migration(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);

	(void)state;
	submit(&c->nodes[1], HA_MSG_MIGRATE_REQUEST, "g5", 2, 3, 0);
	pump(&c->nodes[1]);
	run(c);
	assert_agreement(c);
	assert_int_equal(owner_of(c, 1, "g5"), 3);
	assert_true(c->running[3][4]);
	assert_false(c->running[2][4]);
	assert_int_equal(ha_state_guest(c->nodes[2].st, "g5")->requested_to, 0);
	assert_int_equal(c->migrations, 1);
	/* a request to a node that is not ok is refused everywhere */
	mark(c, 1, 1, HA_NODE_FAILING);
	run(c);
	submit(&c->nodes[3], HA_MSG_MIGRATE_REQUEST, "g6", 3, 1, 0);
	pump(&c->nodes[3]);
	run(c);
	assert_int_equal(ha_state_guest(c->nodes[2].st, "g6")->requested_to, 0);
	assert_int_equal(owner_of(c, 2, "g6"), 3);
	teardown_cluster(c);
}

static void test_garbage_on_the_bus(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 0);
	uint64_t before = ha_state_digest(c->nodes[1].st);
	uint8_t junk[512];
	unsigned seed = 1;

	(void)state;
	log_capture_clear(capture);
	for (int i = 0; i < 50; i++) {
		for (size_t k = 0; k < sizeof(junk); k++)
			junk[k] = (uint8_t)rand_r(&seed);
		cl_sim_ops.send(c->nodes[2].cl, junk, (size_t)(i * 10));
	}
	run(c);
	assert_agreement(c);
	assert_true(ha_state_digest(c->nodes[3].st) == before);
	assert_true(log_capture_contains(
	    capture, "node 3: malformed message (490 bytes) from node 2 refused"));
	mark(c, 2, 3, HA_NODE_DRAINING);
	run(c);
	assert_int_equal(owner_of(c, 1, "g6"), 1);
	teardown_cluster(c);
}

/* Node id samples its model hypervisor and announces (UPDATE) what changed. */
static int announce(struct ctx *c, uint32_t id, bool heartbeat)
{
	struct tnode *n = &c->nodes[id];
	int rc;

	refresh_local(n);
	rc = ha_state_announce(n->st, heartbeat);
	pump(n);
	return rc;
}

static bool every_node_has_event(struct ctx *c, const char *text)
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

/* A guest started by hand on node2 joins every view, owned by node2; free memory follows. */
static void test_update_guest_appears(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);

	(void)state;
	/* nothing changed since the sync round: nothing is sent */
	for (uint32_t id = 1; id <= NNODES; id++)
		assert_int_equal(announce(c, id, false), 0);
	c->running[2][6] = true;
	c->free_mib[2] = 7168;
	assert_int_equal(announce(c, 2, false), 1);
	run(c);
	assert_agreement(c);
	for (uint32_t id = 1; id <= NNODES; id++) {
		assert_int_equal(owner_of(c, id, "g7"), 2);
		assert_int_equal(ha_state_guest(c->nodes[id].st, "g7")->mem_mib, 1024);
		assert_int_equal(ha_state_node(c->nodes[id].st, 2)->free_mib, 7168);
	}
	assert_true(every_node_has_event(c, "guest g7 appeared on node2"));
	assert_int_equal(announce(c, 2, false), 0);
	/* the heartbeat repeats the same facts and changes nothing */
	{
		uint64_t before = ha_state_digest(c->nodes[1].st);

		assert_int_equal(announce(c, 2, true), 1);
		run(c);
		assert_agreement(c);
		assert_true(ha_state_digest(c->nodes[1].st) == before);
	}
	teardown_cluster(c);
}

/* A guest destroyed by hand on its owner leaves every view. */
static void test_update_guest_disappears(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);

	(void)state;
	c->running[3][5] = false; /* g6 */
	assert_int_equal(announce(c, 3, false), 1);
	run(c);
	assert_agreement(c);
	for (uint32_t id = 1; id <= NNODES; id++) {
		assert_null(ha_state_guest(c->nodes[id].st, "g6"));
		assert_int_equal(owner_of(c, id, "g5"), 2);
	}
	assert_true(every_node_has_event(c, "guest g6 no longer runs on node3: removed"));
	/* once the view agrees, nothing more is said */
	assert_int_equal(announce(c, 3, false), 0);
	teardown_cluster(c);
}

/* The same name started on two nodes: the first report in agreed order owns it. */
static void test_update_same_name_on_two_nodes(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);

	(void)state;
	c->allow_copies = true;
	c->running[2][6] = true;
	c->running[3][6] = true;
	assert_int_equal(announce(c, 2, false), 1);
	assert_int_equal(announce(c, 3, false), 1);
	run(c);
	assert_agreement(c);
	for (uint32_t id = 1; id <= NNODES; id++)
		assert_int_equal(owner_of(c, id, "g7"), 2);
	assert_true(every_node_has_event(
	    c, "CONFLICT: guest g7 reported by node3 but owned by node2; owner kept"));
	/* a running guest of another node is never taken over, not by a heartbeat either */
	c->running[1][4] = true; /* g5, node2's */
	assert_int_equal(announce(c, 1, true), 1);
	assert_int_equal(announce(c, 3, true), 1);
	run(c);
	assert_agreement(c);
	for (uint32_t id = 1; id <= NNODES; id++) {
		assert_int_equal(owner_of(c, id, "g7"), 2);
		assert_int_equal(owner_of(c, id, "g5"), 2);
	}
	assert_true(every_node_has_event(
	    c, "CONFLICT: guest g5 reported by node1 but owned by node2; owner kept"));
	teardown_cluster(c);
}

/* Reports during a live migration never drop the migrating guest. */
static void test_update_during_migration(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);
	struct ha_msg m = {
	    .type = HA_MSG_UPDATE, .free_mib = 8192, .reserve_mib = 1024, .text = "node1"};
	struct ha_guest_info gone = {.name = "", .stopped = 1, .owner = 1};
	const struct ha_guest_info *g = NULL;
	int gi = -1;
	uint32_t to;

	(void)state;
	c->auto_complete = false;
	mark(c, 2, 1, HA_NODE_FAILING);
	run(c);
	for (int i = 0; i < NHOMED && gi < 0; i++) {
		g = ha_state_guest(c->nodes[1].st, gname[i]);
		if (g->moving_to)
			gi = i;
	}
	assert_true(gi >= 0);
	to = g->moving_to;
	/* the source's hypervisor no longer lists it (renamed for the switch-over) */
	c->running[1][gi] = false;
	(void)announce(c, 1, true);
	/* a report sampled before the claim was applied: "gone" */
	snprintf(gone.name, sizeof(gone.name), "%s", gname[gi]);
	m.guests = &gone;
	m.nguests = 1;
	assert_int_equal(ha_state_submit(c->nodes[1].st, &m), 0);
	pump(&c->nodes[1]);
	/* the target already lists the arriving guest */
	c->running[to][gi] = true;
	assert_int_equal(announce(c, to, false), 1);
	run(c);
	assert_agreement(c);
	for (uint32_t id = 1; id <= NNODES; id++) {
		g = ha_state_guest(c->nodes[id].st, gname[gi]);
		assert_non_null(g);
		assert_int_equal(g->owner, 1);
		assert_int_equal(g->moving_to, to);
	}
	assert_true(every_node_has_event(c, "kept, a migration of it is in flight"));
	/* the outcome message moves it */
	submit(&c->nodes[1], HA_MSG_MIG_DONE, gname[gi], 1, to, 0);
	pump(&c->nodes[1]);
	run(c);
	for (uint32_t id = 1; id <= NNODES; id++)
		assert_int_equal(owner_of(c, id, gname[gi]), to);
	teardown_cluster(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_join_reordered_with_delays),
	    cmocka_unit_test(test_same_plan_on_every_node),
	    cmocka_unit_test(test_mark_failing_evacuates),
	    cmocka_unit_test(test_partition_minority_frozen),
	    cmocka_unit_test(test_minority_never_fences),
	    cmocka_unit_test(test_target_dies_mid_migration),
	    cmocka_unit_test(test_source_dies_mid_migration),
	    cmocka_unit_test(test_corosync_restart_resyncs),
	    cmocka_unit_test(test_partition_heal_takes_quorate_view),
	    cmocka_unit_test(test_operator_migration),
	    cmocka_unit_test(test_garbage_on_the_bus),
	    cmocka_unit_test(test_update_guest_appears),
	    cmocka_unit_test(test_update_guest_disappears),
	    cmocka_unit_test(test_update_same_name_on_two_nodes),
	    cmocka_unit_test(test_update_during_migration),
	};

	capture = log_sink_capture();
	log_set_sink(capture);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
