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
#include "tests/unit/ha_testcluster.h"

static struct log_sink *capture;

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

/*
 * As above, but the targets report the broken migrations only after the majority fenced
 * node1 (a receiver waits for its GO until its timeout, and the fence is quicker): the
 * moving guests were left to the migrations' outcome by the fence, and their failure must
 * leave them to restart. Before, they stayed owned by the fenced node, not stopped, and every
 * restart claim was refused: the guests were lost.
 */
static void test_move_fails_after_its_source_was_fenced(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);
	const struct ha_guest_info *g;
	uint32_t to[4] = {0};
	unsigned moving = 0;

	(void)state;
	c->auto_complete = false;
	c->late_orphans = true;
	mark(c, 2, 1, HA_NODE_FAILING);
	run(c);
	for (int i = 0; i < 4; i++) {
		to[i] = ha_state_guest(c->nodes[2].st, gname[i])->moving_to;
		moving += to[i] != 0;
	}
	assert_int_equal(moving, 2);
	c->auto_complete = true;
	fence(c, 1);
	c->fences[1] = 0;
	run(c);
	assert_int_equal(c->fences[1], 1);
	for (int i = 0; i < 4; i++) {
		if (!to[i])
			continue;
		g = ha_state_guest(c->nodes[2].st, gname[i]);
		assert_int_equal(g->moving_to, to[i]); /* left to the outcome */
		assert_int_equal(c->restarts[i], 0);
		submit(&c->nodes[to[i]], HA_MSG_MIG_FAILED, gname[i], 1, to[i], 0);
		pump(&c->nodes[to[i]]);
	}
	run(c);
	assert_agreement(c);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(c->restarts[i], 1);
		assert_int_not_equal(owner_of(c, 3, gname[i]), 1);
		assert_false(ha_state_guest(c->nodes[3].st, gname[i])->stopped);
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

/*
 * Node 1 cut off from nodes 2 and 3 and fenced by reservation: its guests keep running there,
 * their writes refused. was: what node 1 ran before. Returns how many.
 */
static unsigned cut_off_and_fence_node1(struct ctx *c, bool *was)
{
	static const int split[NNODES] = {1, 0, 0};
	unsigned nwas = 0;

	c->fence_spares_node = true;
	c->fence_keeps_guests = true;
	c->allow_copies = true;
	memcpy(was, c->running[1], sizeof(c->running[1]));
	cl_sim_partition(c->w, split);
	run(c);
	assert_int_equal(c->fences[1], 1);
	for (int g = 0; g < NGUESTS; g++)
		nwas += was[g];
	assert_true(nwas > 0);
	return nwas;
}

/* The stale copies node 1 was told of: each one a guest it ran before the fence. */
static unsigned stale_copies_of_node1(struct ctx *c, const bool *was)
{
	unsigned n = 0;
	const char *name;

	while ((name = ha_state_stale_copy(c->nodes[1].st, n)) != NULL) {
		assert_true(gindex(name) >= 0 && was[gindex(name)]);
		n++;
	}
	return n;
}

/*
 * The partition heals (node 1, fenced by reservation, rejoins): every node agrees, node 1 was
 * told each copy it ran before the fence is stale, and each of those guests waits, stopped,
 * for its restart.
 */
static void heal_with_stale_copies_of_node1(struct ctx *c, const bool *was, unsigned nwas)
{
	static const int whole[NNODES] = {0, 0, 0};

	cl_sim_partition(c->w, whole);
	run(c);
	assert_agreement(c);
	assert_int_equal(stale_copies_of_node1(c, was), nwas);
	for (int g = 0; g < NGUESTS; g++)
		if (was[g])
			assert_true(ha_state_guest(c->nodes[3].st, gname[g])->stopped);
}

/*
 * votequorum's two_node: both sides of a split are quorate and confirm generations of their
 * own. Nodes 2 and 3 fence node 1 by reservation (its guests keep running, frozen); node 1,
 * alone, fences nobody (fence_only_by). At the heal the view of the side that fenced wins,
 * since FENCED advanced its generation: node 1's copies are stale, to be destroyed, and its
 * guests restart once. Before, both sides had the same generation and node 1's view (the
 * lowest nodeid) won: the fence was forgotten and node 1's frozen copies kept as running.
 */
static void test_two_node_split_fence_survives_merge(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);
	bool was[NGUESTS];
	unsigned nwas;

	(void)state;
	cl_sim_set_two_node(c->w, true);
	c->fence_only_by = 2;
	c->hold_restarts = true;
	nwas = cut_off_and_fence_node1(c, was);
	assert_true(ha_state_quorate(c->nodes[1].st)); /* alone, and quorate */
	assert_true(ha_state_generation(c->nodes[2].st) > ha_state_generation(c->nodes[1].st));
	heal_with_stale_copies_of_node1(c, was, nwas);
	teardown_cluster(c);
}

/*
 * Node 1 is cut off and fenced by reservation (its guests keep running, frozen), and the
 * partition heals before any of its guests restarted elsewhere. Its copies lost their LUNs:
 * they are stale even though the view still has node 1 as their owner. Node 1 destroys them
 * and each guest cold-restarts once. Before, node 1's HELLO took them back as running there,
 * unable to write, and nothing restarted them.
 */
static void test_rejoin_between_fence_and_restart(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	struct ctx *c = setup_cluster(order, 1);
	bool was[NGUESTS];
	unsigned nwas;
	const char *name;
	char text[96];

	(void)state;
	c->hold_restarts = true;
	nwas = cut_off_and_fence_node1(c, was);
	for (int g = 0; g < NGUESTS; g++) {
		if (!was[g])
			continue;
		assert_int_equal(c->restarts[g], 0); /* held */
		assert_true(ha_state_guest(c->nodes[2].st, gname[g])->stopped);
	}
	heal_with_stale_copies_of_node1(c, was, nwas);
	for (int g = 0; g < NGUESTS; g++) {
		if (!was[g])
			continue;
		snprintf(text, sizeof(text),
		         "stale copy of %s on node1 (fenced before its restart)", gname[g]);
		assert_true(every_node_has_event(c, text));
	}
	/* node 1's executor destroys them; then the restarts go ahead, once each */
	while ((name = ha_state_stale_copy(c->nodes[1].st, 0)) != NULL) {
		c->running[1][gindex(name)] = false;
		ha_state_stale_copy_done(c->nodes[1].st, name);
	}
	announce(c, 1, false);
	c->hold_restarts = false;
	for (uint32_t id = 1; id <= NNODES; id++)
		execute(&c->nodes[id]);
	run(c);
	assert_agreement(c);
	for (int g = 0; g < NGUESTS; g++) {
		unsigned copies = 0;

		if (!was[g])
			continue;
		assert_int_equal(c->restarts[g], 1);
		for (uint32_t id = 1; id <= NNODES; id++)
			copies += c->running[id][g];
		assert_int_equal(copies, 1);
		assert_false(ha_state_guest(c->nodes[2].st, gname[g])->stopped);
	}
	teardown_cluster(c);
}

/*
 * A reservation-only fence stops a guest's writes, not the guest. After the heal the fenced
 * node, and only it, learns which of its guests run elsewhere now (ha_state_stale_copy), every
 * node says so, and once it destroyed them the view is unchanged.
 */
static void test_heal_after_reservation_fence(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	static const int whole[NNODES] = {0, 0, 0};
	struct ctx *c = setup_cluster(order, 1);
	bool was[NGUESTS];
	unsigned nwas;
	const char *name;
	char text[96];

	(void)state;
	nwas = cut_off_and_fence_node1(c, was);
	for (int g = 0; g < NGUESTS; g++) {
		if (!was[g])
			continue;
		assert_int_equal(c->restarts[g], 1);
		assert_true(c->running[1][g]); /* the stale copy */
		assert_int_not_equal(owner_of(c, 2, gname[g]), 1);
	}
	assert_null(ha_state_stale_copy(c->nodes[1].st, 0)); /* cut off: knows nothing yet */
	cl_sim_partition(c->w, whole);
	run(c);
	assert_agreement(c);
	assert_int_equal(stale_copies_of_node1(c, was), nwas);
	assert_null(ha_state_stale_copy(c->nodes[2].st, 0));
	assert_null(ha_state_stale_copy(c->nodes[3].st, 0));
	for (int g = 0; g < NGUESTS; g++) {
		if (!was[g])
			continue;
		snprintf(text, sizeof(text), "stale copy of %s on node1", gname[g]);
		assert_true(every_node_has_event(c, text));
	}
	/* node1's executor destroys them; its next report changes nothing in the view */
	while ((name = ha_state_stale_copy(c->nodes[1].st, 0)) != NULL) {
		for (int g = 0; g < NGUESTS; g++)
			if (strcmp(gname[g], name) == 0)
				c->running[1][g] = false;
		ha_state_stale_copy_done(c->nodes[1].st, name);
	}
	announce(c, 1, false);
	run(c);
	assert_agreement(c);
	for (int g = 0; g < NGUESTS; g++) {
		if (!was[g])
			continue;
		assert_int_not_equal(owner_of(c, 1, gname[g]), 1);
		assert_int_equal(c->restarts[g], 1);
	}
	/* a conflict that does not follow a fence names the conflict and dooms nothing */
	c->running[1][0] = true;
	announce(c, 1, true);
	run(c);
	assert_null(ha_state_stale_copy(c->nodes[1].st, 0));
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
	/* every node's events carry the migration's figures (what a drill reads) */
	assert_true(
	    every_node_has_event(c, "(migrated from node1, downtime 6.4 ms, total 120.0 ms)"));
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
	    cmocka_unit_test(test_move_fails_after_its_source_was_fenced),
	    cmocka_unit_test(test_corosync_restart_resyncs),
	    cmocka_unit_test(test_partition_heal_takes_quorate_view),
	    cmocka_unit_test(test_two_node_split_fence_survives_merge),
	    cmocka_unit_test(test_rejoin_between_fence_and_restart),
	    cmocka_unit_test(test_heal_after_reservation_fence),
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
