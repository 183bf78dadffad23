/*
 * Partitions that merge back (haagent/state_sync.c: sync rounds and view generations) on the
 * simulated cluster, in many delivery orders.
 *
 * The merged cluster must take the view of the side that was quorate last, whatever the
 * nodeids and whatever quorum the minority believed it had when it sent its HELLO: on real
 * corosync, votequorum often tells a healing minority "quorate" (of the merged membership)
 * before CPG delivers the merge itself. In that gap the minority must not act on its old
 * view, in which the majority's nodes are down and unfenced: it would fence them.
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

#define SEEDS 25 /* delivery orders tried per scenario */

/* What the majority does while the minority is cut off. */
enum progress {
	PROGRESS_NONE,      /* nothing: it waits to fence the minority (no fence agent) */
	PROGRESS_FENCE,     /* fences the minority (its guests die) and restarts them */
	PROGRESS_MIGRATION, /* moves a guest between its own nodes */
	PROGRESS_IN_FLIGHT, /* starts that migration; it ends only after the merge */
	PROGRESS_MAX
};

struct merge_case {
	uint32_t minority; /* the node cut off */
	bool quorum_first; /* it hears votequorum before CPG, at the split and at the merge */
	enum progress progress;
	unsigned seed;
};

/* The node whose view node id adopted in its last sync round (0 if none). */
static uint32_t sync_source(struct ctx *c, uint32_t id)
{
	static const char prefix[] = "view synchronised from node ";
	const struct ha_event *ev;
	size_t nev = ha_state_events(c->nodes[id].st, &ev);

	for (size_t i = nev; i-- > 0;) {
		const char *at = strstr(ev[i].text, prefix);

		if (at)
			return (uint32_t)strtoul(at + sizeof(prefix) - 1, NULL, 10);
	}
	return 0;
}

/* The two nodes other than the minority, lowest first. */
static void majority_of(uint32_t minority, uint32_t *a_r, uint32_t *b_r)
{
	*a_r = minority == 1 ? 2 : 1;
	*b_r = minority == 3 ? 2 : 3;
}

/* The majority (a, b) makes progress while the minority is cut off. */
static void majority_progress(struct ctx *c, enum progress p, uint32_t a, uint32_t b)
{
	if (p == PROGRESS_NONE || p == PROGRESS_FENCE) {
		run(c); /* with auto_fence, the minority is fenced and its guests restart */
		return;
	}
	c->auto_complete = p == PROGRESS_MIGRATION;
	mark(c, a, b, HA_NODE_FAILING); /* b's guests go to a, the only ok node */
	run(c);
}

/* A migration the majority left in flight across the merge ends now. */
static void finish_in_flight(struct ctx *c, uint32_t viewer)
{
	const struct ha_guest_info *g;
	size_t ng = ha_state_guests(c->nodes[viewer].st, &g);
	bool any = false;

	for (size_t i = 0; i < ng; i++) {
		int gi = gindex(g[i].name);

		if (!g[i].moving_to || gi < 0)
			continue;
		c->running[g[i].owner][gi] = false;
		c->running[g[i].moving_to][gi] = true;
		submit(&c->nodes[g[i].owner], HA_MSG_MIG_DONE, g[i].name, g[i].owner,
		       g[i].moving_to, 0);
		pump(&c->nodes[g[i].owner]);
		any = true;
	}
	assert_true(any);
	c->auto_complete = true;
	run(c);
}

/* One split and merge; returns the trace of the merge's delivery order. */
static uint64_t merge_once(const struct merge_case *mc)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	int split[NNODES] = {0, 0, 0};
	const int whole[NNODES] = {0, 0, 0};
	struct ctx *c = setup_cluster(order, 0);
	uint32_t want[NGUESTS]; /* owner after the merge, as the majority's view says; 0: none */
	uint32_t a, b, m = mc->minority;
	unsigned seed = mc->seed * 7919u + m * 131u + (unsigned)mc->progress * 17u +
	                (mc->quorum_first ? 1u : 0u);
	uint64_t trace = 1469598103934665603ull;

	majority_of(m, &a, &b);
	c->auto_fence = mc->progress == PROGRESS_FENCE;
	c->fence_spares_node = true;
	cl_sim_set_quorum_first(c->w, m, mc->quorum_first);
	split[m - 1] = 1;
	cl_sim_partition(c->w, split);
	majority_progress(c, mc->progress, a, b);
	for (int g = 0; g < NGUESTS; g++) {
		const struct ha_guest_info *gi = ha_state_guest(c->nodes[a].st, gname[g]);

		want[g] = !gi ? 0 : gi->moving_to ? gi->moving_to : gi->owner;
	}
	cl_sim_partition(c->w, whole);
	run_shuffled(c, &seed, &trace);
	if (mc->progress == PROGRESS_IN_FLIGHT)
		finish_in_flight(c, a);
	assert_agreement(c);
	for (uint32_t id = 1; id <= NNODES; id++) {
		uint32_t source = sync_source(c, id);

		if (source != a && source != b)
			fail_msg("minority %u, %s, progress %d, seed %u: node %u took the view of "
			         "node %u",
			         m, mc->quorum_first ? "quorum first" : "membership first",
			         (int)mc->progress, mc->seed, id, source);
		assert_int_equal(c->fence_tries[m][a] + c->fence_tries[m][b], 0);
		assert_int_equal(c->fence_tries[id][a] + c->fence_tries[id][b], 0);
	}
	for (int g = 0; g < NGUESTS; g++) {
		const struct ha_guest_info *gi = ha_state_guest(c->nodes[m].st, gname[g]);

		if (!want[g]) {
			assert_null(gi);
			continue;
		}
		assert_non_null(gi);
		if (gi->owner != want[g])
			fail_msg("minority %u, %s, progress %d, seed %u: %s owned by %u, the "
			         "majority's view said %u",
			         m, mc->quorum_first ? "quorum first" : "membership first",
			         (int)mc->progress, mc->seed, gname[g], gi->owner, want[g]);
	}
	assert_int_equal(ha_state_node(c->nodes[a].st, m)->state, HA_NODE_OK); /* back */
	teardown_cluster(c);
	return trace;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;

	return p < q ? -1 : p > q;
}

/*
 * Every minority node (lowest, middle, highest nodeid), hearing quorum before or after the
 * membership change, every kind of majority progress, SEEDS delivery orders each.
 */
static void test_merge_orderings(void **state)
{
	enum { RUNS = NNODES * 2 * PROGRESS_MAX * SEEDS };
	uint64_t *traces = calloc(RUNS, sizeof(*traces));
	size_t n = 0, distinct = 0;

	(void)state;
	assert_non_null(traces);
	for (uint32_t m = 1; m <= NNODES; m++)
		for (int qf = 0; qf < 2; qf++)
			for (int p = 0; p < PROGRESS_MAX; p++)
				for (unsigned s = 0; s < SEEDS; s++) {
					struct merge_case mc = {m, qf == 1, (enum progress)p, s};

					traces[n++] = merge_once(&mc);
				}
	qsort(traces, n, sizeof(*traces), cmp_u64);
	for (size_t i = 0; i < n; i++)
		distinct += i == 0 || traces[i] != traces[i - 1];
	print_message("  %zu merges (3 minorities x quorum first or not x %d kinds of progress "
	              "x %d seeds): %zu distinct delivery orders, each took the majority's view\n",
	              n, PROGRESS_MAX, SEEDS, distinct);
	assert_true(distinct > n / 2);
	free(traces);
}

/*
 * Step by step: node1, cut off, hears "quorate" before the merge's membership change. In that
 * gap its view still says node2 and node3 are down, unfenced, holding guests: it must plan
 * nothing (the fix for issue 22), and the merge must give it the majority's view.
 */
static void test_healing_minority_hears_quorum_first(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	static const int split[NNODES] = {1, 0, 0}, whole[NNODES] = {0, 0, 0};
	struct ctx *c = setup_cluster(order, 0);
	struct plan_action *a = NULL;
	size_t na = 0;

	(void)state;
	c->auto_fence = false;
	cl_sim_set_quorum_first(c->w, 1, true);
	cl_sim_partition(c->w, split);
	run(c);
	mark(c, 2, 3, HA_NODE_FAILING); /* g6 moves to node2 on the majority side */
	run(c);
	assert_int_equal(owner_of(c, 1, "g6"), 3);
	assert_int_equal(ha_state_node(c->nodes[1].st, 2)->state, HA_NODE_DOWN);
	cl_sim_partition(c->w, whole);
	assert_int_equal(cl_sim_step_node(c->w, 1), 1); /* votequorum: quorate */
	assert_true(ha_state_quorate(c->nodes[1].st));
	assert_true(ha_state_plan(c->nodes[1].st, &a, &na) < 0);
	assert_int_equal(na, 0);
	assert_int_equal(c->fence_tries[1][2] + c->fence_tries[1][3], 0);
	run(c);
	assert_agreement(c);
	assert_int_equal(owner_of(c, 1, "g6"), 2);
	assert_int_equal(ha_state_node(c->nodes[1].st, 3)->state, HA_NODE_FAILING);
	assert_int_equal(c->fence_tries[1][2] + c->fence_tries[1][3], 0);
	assert_int_equal(sync_source(c, 1), 2);
	teardown_cluster(c);
}

/* Node from multicasts GENERATION(generation, members). */
static void send_generation(struct ctx *c, uint32_t from, uint64_t generation,
                            const uint32_t *members, size_t nmembers)
{
	struct ha_msg m = {.type = HA_MSG_GENERATION, .generation = generation};

	memcpy(m.members, members, nmembers * sizeof(members[0]));
	m.nmembers = nmembers;
	assert_int_equal(ha_state_submit(c->nodes[from].st, &m), 0);
	pump(&c->nodes[from]);
}

/* Only a quorate membership advances the generation, once per membership, for itself. */
static void test_generation_rules(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3}, all[NNODES] = {1, 2, 3}, one[1] = {1};
	static const int split[NNODES] = {1, 0, 0};
	struct ctx *c = setup_cluster(order, 1);
	uint64_t g0 = ha_state_generation(c->nodes[1].st);

	(void)state;
	c->auto_fence = false;
	assert_true(g0 >= 1);
	for (uint32_t id = 1; id <= NNODES; id++)
		assert_true(ha_state_may_act(c->nodes[id].st));
	/* a GENERATION for another membership, or for an old generation, changes nothing */
	send_generation(c, 2, g0, one, 1);
	send_generation(c, 2, g0 - 1, all, NNODES);
	run(c);
	assert_agreement(c);
	assert_true(ha_state_generation(c->nodes[3].st) == g0);
	/* one for this membership and generation advances it everywhere, once */
	send_generation(c, 3, g0, all, NNODES);
	send_generation(c, 2, g0, all, NNODES);
	run(c);
	assert_agreement(c);
	assert_true(ha_state_generation(c->nodes[1].st) == g0 + 1);
	/* a split: the quorate side moves on by one, the minority stays where it was */
	cl_sim_partition(c->w, split);
	run(c);
	assert_true(ha_state_generation(c->nodes[1].st) == g0 + 1);
	assert_false(ha_state_may_act(c->nodes[1].st));
	assert_true(ha_state_generation(c->nodes[2].st) == g0 + 2);
	assert_true(ha_state_generation(c->nodes[3].st) == g0 + 2);
	assert_true(ha_state_may_act(c->nodes[2].st));
	assert_true(every_node_has_event(c, "confirmed by"));
	teardown_cluster(c);
}

/* A GENERATION lost on its way (a failed multicast) is asked for again by the next announce. */
static void test_lost_generation_asked_again(void **state)
{
	static const uint32_t order[NNODES] = {1, 2, 3};
	static const int split[NNODES] = {0, 0, 1};
	struct ctx *c = setup_cluster(order, 0);
	struct cluster *cl1 = c->nodes[1].cl, *cl2 = c->nodes[2].cl;

	(void)state;
	c->auto_fence = false;
	cl_sim_partition(c->w, split);
	/* deliver the membership change and quorum reports; what 1 and 2 multicast meanwhile
	 * is lost (the harness's pump() drops what a node without a handle sends) */
	c->nodes[1].cl = c->nodes[2].cl = NULL;
	while (cl_sim_step_node(c->w, 1) + cl_sim_step_node(c->w, 2) > 0)
		;
	c->nodes[1].cl = cl1;
	c->nodes[2].cl = cl2;
	assert_true(ha_state_quorate(c->nodes[1].st));
	assert_false(ha_state_may_act(c->nodes[1].st));
	assert_false(ha_state_may_act(c->nodes[2].st));
	(void)announce(c, 2, false);
	run(c);
	assert_true(ha_state_may_act(c->nodes[1].st));
	assert_true(ha_state_may_act(c->nodes[2].st));
	teardown_cluster(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_healing_minority_hears_quorum_first),
	    cmocka_unit_test(test_merge_orderings),
	    cmocka_unit_test(test_generation_rules),
	    cmocka_unit_test(test_lost_generation_asked_again),
	};

	log_set_sink(log_sink_capture());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
