/* Table-driven tests of the evacuation planner (haagent/planner.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "haagent/planner.h"

#define OK       HA_NODE_OK
#define FAILING  HA_NODE_FAILING
#define DRAINING HA_NODE_DRAINING
#define DOWN     HA_NODE_DOWN
#define FENCED   HA_NODE_FENCED
#define STOPPING HA_NODE_STOPPING

/* Nodes n1..nN: name "nK", member unless down/fenced, 1 GiB dom0 reserve. */
#define NODE(id, st, free)                                                        \
	{                                                                         \
		id, "n" #id, st, free, 1024, 0, 0, (st) != DOWN && (st) != FENCED \
	}
#define GUEST(nm, own, mem)                              \
	{                                                \
		.name = nm, .owner = own, .mem_mib = mem \
	}

struct plan_case {
	const char *name;
	struct plan_node nodes[6];
	size_t nnodes;
	struct plan_guest guests[10];
	size_t nguests;
	unsigned max_out, max_in;
	const char *expect; /* the plan rendered by render() */
	const char *reason; /* substring of some action's reason, or NULL */
};

/* "kind:guest:from>to@executor" joined with spaces; stay/defer without target. */
static void render(const struct plan_action *a, size_t n, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		const char *sep = i ? " " : "";

		if (a[i].kind == PLAN_FENCE)
			off += snprintf(buf + off, len - off, "%sfence:%u@%u", sep, a[i].from,
			                a[i].executor);
		else if (a[i].kind == PLAN_STAY || a[i].kind == PLAN_DEFER)
			off += snprintf(buf + off, len - off, "%s%s:%s", sep,
			                plan_kind_name(a[i].kind), a[i].guest);
		else
			off += snprintf(buf + off, len - off, "%s%s:%s:%u>%u@%u", sep,
			                plan_kind_name(a[i].kind), a[i].guest, a[i].from, a[i].to,
			                a[i].executor);
	}
}

static const struct plan_case cases[] = {
    {"nothing to do when every node is ok",
     {NODE(1, OK, 8192), NODE(2, OK, 8192)},
     2,
     {GUEST("a", 1, 1024), GUEST("b", 2, 1024)},
     2,
     0,
     0,
     "",
     NULL},
    {"largest first, most room wins, limits 2/2",
     {NODE(1, FAILING, 0), NODE(2, OK, 8192), NODE(3, OK, 6144)},
     3,
     {GUEST("a", 1, 512), GUEST("b", 1, 2048), GUEST("c", 1, 1024), GUEST("d", 1, 256)},
     4,
     0,
     0,
     "migrate:b:1>2@1 migrate:c:1>2@1 defer:a defer:d",
     "outgoing limit (2)"},
    {"capacity: only the node with room is chosen",
     {NODE(1, FAILING, 0), NODE(2, OK, 2048), NODE(3, OK, 5120)},
     3,
     {GUEST("big", 1, 3072)},
     1,
     0,
     0,
     "migrate:big:1>3@1",
     NULL},
    {"capacity counts the dom0 reserve",
     {NODE(1, FAILING, 0), NODE(2, OK, 4096)},
     2,
     {GUEST("big", 1, 3584)},
     1,
     0,
     0,
     "stay:big",
     "no node has 3584 MiB free (most: 3072 MiB on n2)"},
    {"capacity counts memory planned in this round",
     {NODE(1, FAILING, 0), NODE(2, OK, 5000)},
     2,
     {GUEST("a", 1, 2048), GUEST("b", 1, 2048)},
     2,
     4,
     4,
     "migrate:a:1>2@1 stay:b",
     "no node has 2048 MiB free"},
    {"preferred node first even with less room",
     {NODE(1, FAILING, 0), NODE(2, OK, 16384), NODE(3, OK, 4096)},
     3,
     {{.name = "web", .owner = 1, .mem_mib = 1024, .preferred = {"n3"}}},
     1,
     0,
     0,
     "migrate:web:1>3@1",
     NULL},
    {"preferred node without room: next best",
     {NODE(1, FAILING, 0), NODE(2, OK, 16384), NODE(3, OK, 1500)},
     3,
     {{.name = "web", .owner = 1, .mem_mib = 1024, .preferred = {"n3", "n9"}}},
     1,
     0,
     0,
     "migrate:web:1>2@1",
     NULL},
    {"anti-affinity keeps group members apart",
     {NODE(1, FAILING, 0), NODE(2, OK, 16384), NODE(3, OK, 4096)},
     3,
     {{.name = "web1", .owner = 1, .mem_mib = 1024, .anti_affinity = "web"},
      {.name = "web2", .owner = 2, .mem_mib = 1024, .anti_affinity = "web"}},
     2,
     0,
     0,
     "migrate:web1:1>3@1",
     NULL},
    {"anti-affinity: no node left",
     {NODE(1, FAILING, 0), NODE(2, OK, 16384)},
     2,
     {{.name = "web1", .owner = 1, .mem_mib = 1024, .anti_affinity = "web"},
      {.name = "web2", .owner = 2, .mem_mib = 1024, .anti_affinity = "web"}},
     2,
     0,
     0,
     "stay:web1",
     "anti-affinity group 'web'"},
    {"anti-affinity among guests planned in the same round",
     {NODE(1, FAILING, 0), NODE(2, OK, 16384), NODE(3, OK, 8192)},
     3,
     {{.name = "db1", .owner = 1, .mem_mib = 1024, .anti_affinity = "db"},
      {.name = "db2", .owner = 1, .mem_mib = 1024, .anti_affinity = "db"}},
     2,
     0,
     0,
     "migrate:db1:1>2@1 migrate:db2:1>3@1",
     NULL},
    {"incoming limit spreads the load",
     {NODE(1, FAILING, 0), NODE(2, DRAINING, 0), NODE(3, OK, 65536), NODE(4, OK, 8192)},
     4,
     {GUEST("a", 1, 1000), GUEST("b", 1, 900), GUEST("c", 2, 800), GUEST("d", 2, 700)},
     4,
     0,
     0,
     "migrate:a:1>3@1 migrate:b:1>3@1 migrate:c:2>4@2 migrate:d:2>4@2",
     NULL},
    {"incoming limit 1 with a single target defers",
     {NODE(1, FAILING, 0), NODE(2, OK, 65536)},
     2,
     {GUEST("a", 1, 1000), GUEST("b", 1, 900)},
     2,
     2,
     1,
     "migrate:a:1>2@1 defer:b",
     "incoming limit (1)"},
    {"in-flight migrations count against the limits",
     {NODE(1, FAILING, 0), {2, "n2", OK, 65536, 1024, 0, 2, true}},
     2,
     {GUEST("a", 1, 1000), {.name = "b", .owner = 1, .mem_mib = 900, .moving_to = 2}},
     2,
     0,
     0,
     "defer:a",
     NULL},
    {"slow dirty guest goes before a bigger quiet one",
     {NODE(1, FAILING, 0), NODE(2, OK, 65536)},
     2,
     {GUEST("quiet", 1, 2000), {.name = "hot", .owner = 1, .mem_mib = 1000, .dirty_mibps = 90}},
     2,
     1,
     0,
     "migrate:hot:1>2@1 defer:quiet",
     NULL},
    {"no ok node at all",
     {NODE(1, FAILING, 0), NODE(2, FAILING, 8192)},
     2,
     {GUEST("a", 1, 512)},
     1,
     0,
     0,
     "stay:a",
     "no node is ok"},
    {"down node: fence, never restart before",
     {NODE(1, OK, 8192), NODE(2, OK, 8192), NODE(3, DOWN, 0)},
     3,
     {GUEST("a", 3, 512)},
     1,
     0,
     0,
     "fence:3@1 stay:a",
     "not fenced"},
    {"down node owning nothing is not fenced",
     {NODE(1, OK, 8192), NODE(2, OK, 8192), NODE(3, DOWN, 0)},
     3,
     {GUEST("a", 1, 512)},
     1,
     0,
     0,
     "",
     NULL},
    {"fenced node: cold restart, executed by the target",
     {NODE(1, OK, 8192), NODE(2, OK, 8192), NODE(3, FENCED, 0)},
     3,
     {GUEST("a", 3, 512), GUEST("b", 3, 4096)},
     2,
     0,
     0,
     "cold-restart:b:3>1@1 cold-restart:a:3>2@2",
     NULL},
    {"fenced node without room anywhere: stays stopped",
     {NODE(1, OK, 2048), NODE(3, FENCED, 0)},
     2,
     {GUEST("a", 3, 4096)},
     1,
     0,
     0,
     "stay:a",
     "its node was fenced: no node has"},
    {"repeated failures: fallback stay",
     {NODE(1, FAILING, 0), NODE(2, OK, 8192)},
     2,
     {{.name = "a", .owner = 1, .mem_mib = 512, .failures = 3}},
     1,
     0,
     0,
     "stay:a",
     "failed 3 times; fallback stay"},
    {"repeated failures: fallback cold-restart, by the owner",
     {NODE(1, FAILING, 0), NODE(2, OK, 8192)},
     2,
     {{.name = "a",
       .owner = 1,
       .mem_mib = 512,
       .failures = 3,
       .fallback = HA_FALLBACK_COLD_RESTART}},
     1,
     0,
     0,
     "cold-restart:a:1>2@1",
     NULL},
    {"cold restarts are not retried forever",
     {NODE(1, OK, 8192), NODE(3, FENCED, 0)},
     2,
     {{.name = "a", .owner = 3, .mem_mib = 512, .stopped = true, .failures = 6}},
     1,
     0,
     0,
     "stay:a",
     "gave up after 6 failed attempts"},
    {"operator request moves a guest off an ok node, to that node",
     {NODE(1, OK, 8192), NODE(2, OK, 65536), NODE(3, OK, 8192)},
     3,
     {{.name = "a", .owner = 1, .mem_mib = 512, .requested_to = 3}},
     1,
     0,
     0,
     "migrate:a:1>3@1",
     "operator request"},
    {"operator request to a node without room stays, with the reason",
     {NODE(1, OK, 8192), NODE(2, OK, 65536), NODE(3, OK, 1200)},
     3,
     {{.name = "a", .owner = 1, .mem_mib = 512, .requested_to = 3}},
     1,
     0,
     0,
     "stay:a",
     "requested move to n3 impossible"},
    {"stopping node: each guest shut down by its owner, for a start on an ok node; none live",
     {NODE(1, STOPPING, 0), NODE(2, OK, 8192), NODE(3, OK, 8192)},
     3,
     {GUEST("a", 1, 512), GUEST("b", 1, 4096)},
     2,
     0,
     0,
     "cold-restart:b:1>2@1 cold-restart:a:1>3@1",
     "its node is stopping: cold evacuation"},
    {"stopping node, its guests shut down: each started by its target",
     {NODE(1, STOPPING, 0), NODE(2, OK, 8192), NODE(3, OK, 8192)},
     3,
     {{.name = "a", .owner = 1, .mem_mib = 512, .stopped = true},
      {.name = "b", .owner = 1, .mem_mib = 4096, .stopped = true}},
     2,
     0,
     0,
     "cold-restart:b:1>2@2 cold-restart:a:1>3@3",
     NULL},
    {"stopping node: the live-migration limits do not hold the shutdowns back",
     {NODE(1, STOPPING, 0), NODE(2, OK, 65536)},
     2,
     {GUEST("a", 1, 512), GUEST("b", 1, 512), GUEST("c", 1, 512)},
     3,
     1,
     1,
     "cold-restart:a:1>2@1 cold-restart:b:1>2@1 cold-restart:c:1>2@1",
     NULL},
    {"stopping node without an ok node with room: its guest keeps running there",
     {NODE(1, STOPPING, 0), NODE(2, OK, 1024)},
     2,
     {GUEST("a", 1, 512)},
     1,
     0,
     0,
     "stay:a",
     "its node is stopping: cold evacuation: no node has 512 MiB free"},
    {"a stopping node receives no guest, whatever its room",
     {NODE(1, FAILING, 0), NODE(2, STOPPING, 65536), NODE(3, OK, 4096)},
     3,
     {GUEST("a", 1, 512),
      GUEST("b", 3, 512),
      {.name = "c", .owner = 3, .mem_mib = 256, .stopped = true}},
     3,
     0,
     0,
     "stay:c migrate:a:1>3@1",
     "no node is ok to receive it"},
    {"only stopping nodes besides the failing one: nowhere to go",
     {NODE(1, FAILING, 0), NODE(2, STOPPING, 65536)},
     2,
     {GUEST("a", 1, 512)},
     1,
     0,
     0,
     "stay:a",
     "no node is ok"},
    {"tie on room: lowest nodeid",
     {NODE(1, FAILING, 0), NODE(3, OK, 8192), NODE(2, OK, 8192)},
     3,
     {GUEST("a", 1, 512)},
     1,
     0,
     0,
     "migrate:a:1>2@1",
     NULL},
};

static void run_case(const struct plan_case *c)
{
	struct plan_input in = {c->nodes,   c->nnodes, c->guests, c->nguests,
	                        c->max_out, c->max_in, 0,         0};
	struct plan_action *a = NULL;
	size_t n = 0;
	char got[1024];
	bool reason_found = c->reason == NULL;

	assert_int_equal(plan_compute(&in, &a, &n), 0);
	render(a, n, got, sizeof(got));
	if (strcmp(got, c->expect) != 0)
		fail_msg("case '%s':\n  expected '%s'\n  got      '%s'", c->name, c->expect, got);
	for (size_t i = 0; i < n; i++)
		if (c->reason && strstr(a[i].reason, c->reason))
			reason_found = true;
	if (!reason_found) {
		for (size_t i = 0; i < n; i++)
			print_message("  reason[%zu] %s\n", i, a[i].reason);
		fail_msg("case '%s': no reason contains '%s'", c->name, c->reason);
	}
	free(a);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

/* Shuffling nodes and guests changes nothing in the plan (determinism across nodes). */
static void test_shuffled_input_same_plan(void **state)
{
	struct plan_node nodes[5] = {NODE(1, FAILING, 0), NODE(2, OK, 9000), NODE(3, OK, 9000),
	                             NODE(4, DRAINING, 0), NODE(5, OK, 9000)};
	struct plan_guest guests[8];
	char ref[1024], got[1024];
	unsigned seed = 42;

	(void)state;
	for (int i = 0; i < 8; i++) {
		memset(&guests[i], 0, sizeof(guests[i]));
		snprintf(guests[i].name, sizeof(guests[i].name), "g%d", i);
		guests[i].owner = i % 2 ? 1 : 4;
		guests[i].mem_mib = 512 * (1 + i % 3); /* many ties on estimate */
		if (i % 4 == 0)
			snprintf(guests[i].anti_affinity, HA_NAME_MAX, "grp");
	}
	for (int round = 0; round < 200; round++) {
		struct plan_input in = {nodes, 5, guests, 8, 0, 0, 0, 0};
		struct plan_action *a = NULL;
		size_t n = 0;

		assert_int_equal(plan_compute(&in, &a, &n), 0);
		render(a, n, round ? got : ref, sizeof(ref));
		if (round)
			assert_string_equal(got, ref);
		free(a);
		for (int i = 7; i > 0; i--) {
			int j = (int)(rand_r(&seed) % (unsigned)(i + 1));
			struct plan_guest tg = guests[i];

			guests[i] = guests[j];
			guests[j] = tg;
		}
		for (int i = 4; i > 0; i--) {
			int j = (int)(rand_r(&seed) % (unsigned)(i + 1));
			struct plan_node tn = nodes[i];

			nodes[i] = nodes[j];
			nodes[j] = tn;
		}
	}
	print_message("  plan: %s\n", ref);
}

/*
 * Random views with nodes in every state: no guest is ever planned onto a node that is not
 * an ok member (a stopping node empties itself, it takes nothing), and a guest of a stopping
 * node is only ever cold-restarted, shut down first by its owner while it runs.
 */
static void test_never_onto_a_leaving_node(void **state)
{
	static const enum ha_node_state states[] = {OK,   OK,     FAILING, DRAINING,
	                                            DOWN, FENCED, STOPPING};
	unsigned seed = 7, moves = 0, cold = 0;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		struct plan_node nodes[5];
		struct plan_guest guests[8];
		struct plan_input in = {nodes, 5, guests, 8, 0, 0, 0, 0};
		struct plan_action *a = NULL;
		size_t n = 0;

		for (uint32_t i = 0; i < 5; i++) {
			enum ha_node_state st = states[rand_r(&seed) % 7];

			nodes[i] = (struct plan_node)NODE(i + 1, st, 1024 + rand_r(&seed) % 8192);
		}
		for (int i = 0; i < 8; i++) {
			memset(&guests[i], 0, sizeof(guests[i]));
			snprintf(guests[i].name, sizeof(guests[i].name), "g%d", i);
			guests[i].owner = 1 + rand_r(&seed) % 5;
			guests[i].mem_mib = 256 * (1 + rand_r(&seed) % 8);
			guests[i].stopped = rand_r(&seed) % 4 == 0;
		}
		assert_int_equal(plan_compute(&in, &a, &n), 0);
		for (size_t k = 0; k < n; k++) {
			const struct plan_node *to = NULL, *from = NULL;
			const struct plan_guest *g = NULL;

			if (a[k].kind != PLAN_MIGRATE && a[k].kind != PLAN_COLD_RESTART)
				continue;
			for (int i = 0; i < 5; i++) {
				if (nodes[i].nodeid == a[k].to)
					to = &nodes[i];
				if (nodes[i].nodeid == a[k].from)
					from = &nodes[i];
			}
			for (int i = 0; i < 8; i++)
				if (!strcmp(guests[i].name, a[k].guest))
					g = &guests[i];
			assert_non_null(to);
			assert_non_null(from);
			assert_non_null(g);
			if (to->state != OK || !to->member)
				fail_msg("round %d: %s planned onto n%u, which is %s", round,
				         a[k].guest, to->nodeid, ha_node_state_name(to->state));
			moves++;
			if (from->state != STOPPING)
				continue;
			assert_int_equal(a[k].kind, PLAN_COLD_RESTART);
			/* running: its owner shuts it down; stopped: its target starts it */
			assert_int_equal(a[k].executor, g->stopped ? a[k].to : a[k].from);
			cold++;
		}
		free(a);
	}
	print_message("  %u moves planned, %u of them off a stopping node\n", moves, cold);
	assert_true(cold > 100);
}

static void test_state_names(void **state)
{
	(void)state;
	assert_string_equal(ha_node_state_name(OK), "ok");
	assert_string_equal(ha_node_state_name(FENCED), "fenced");
	assert_string_equal(ha_node_state_name(STOPPING), "stopping");
	assert_string_equal(ha_node_state_name(HA_NODE_STATE_COUNT), "?");
	/* the wire values of the states older releases know stay what they were */
	assert_int_equal(FENCED, 4);
	assert_int_equal(STOPPING, 5);
}

static void test_invalid_input(void **state)
{
	struct plan_node dup[2] = {NODE(1, OK, 1), NODE(1, OK, 1)};
	struct plan_node one[1] = {NODE(1, OK, 1)};
	struct plan_guest orphan[1] = {GUEST("a", 7, 1)};
	struct plan_guest twins[2] = {GUEST("a", 1, 1), GUEST("a", 1, 1)};
	struct plan_input in1 = {dup, 2, NULL, 0, 0, 0, 0, 0};
	struct plan_input in2 = {one, 1, orphan, 1, 0, 0, 0, 0};
	struct plan_input in3 = {one, 1, twins, 2, 0, 0, 0, 0};
	struct plan_action *a = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(plan_compute(&in1, &a, &n), ERR_INVAL);
	assert_int_equal(plan_compute(&in2, &a, &n), ERR_INVAL);
	assert_int_equal(plan_compute(&in3, &a, &n), ERR_INVAL);
	assert_null(a);
}

static void test_estimate(void **state)
{
	(void)state;
	assert_int_equal(plan_estimate_ms(1000, 0, 100), 10000);
	assert_int_equal(plan_estimate_ms(1000, 50, 100), 20000);
	assert_int_equal(plan_estimate_ms(1000, 80, 100), 50000); /* forced switch-over cap */
	assert_int_equal(plan_estimate_ms(1000, 500, 100), 50000);
	assert_int_equal(plan_estimate_ms(1000, 0, 0), 10000); /* default bandwidth */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_shuffled_input_same_plan),
	    cmocka_unit_test(test_never_onto_a_leaving_node),
	    cmocka_unit_test(test_state_names),
	    cmocka_unit_test(test_invalid_input),
	    cmocka_unit_test(test_estimate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
