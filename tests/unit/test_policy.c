/* Table-driven tests of the pre-copy policies (xl-ext/policy.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "xl-ext/precopy/policy.h"

#define MIB      (1024.0 * 1024.0)
#define GBIT_BPS (1e9 / 8)

/* 256 MiB guest */
static struct pc_params params(enum pc_policy_kind kind, enum pc_on_stall stall)
{
	struct pc_params p = {
	    .kind = kind,
	    .on_stall = stall,
	    .nr_pages = 65536,
	    .page_wire_bytes = 4104,
	};
	return p;
}

static struct pc_round round_of(unsigned i, uint64_t dirty, double bw, double dirty_pps,
                                uint64_t total)
{
	struct pc_round r = {
	    .round = i,
	    .pages_sent = 1000,
	    .bytes_sent = 1000 * 4104,
	    .duration_us = 100000,
	    .dirty_pages = dirty,
	    .total_bytes = total,
	    .bandwidth_Bps = bw,
	    .dirty_rate_pps = dirty_pps,
	};
	return r;
}

struct xen_case {
	unsigned round;
	uint64_t dirty;
	enum pc_decision want;
	const char *reason;
};

static void test_xen_policy_table(void **state)
{
	static const struct xen_case cases[] = {
	    {0, 10000, PC_CONTINUE, "pre-copy continues"},
	    {0, 49, PC_STOP_AND_COPY, "fewer than 50 dirty pages"},
	    {1, 50, PC_CONTINUE, "pre-copy continues"},
	    {3, 100000, PC_CONTINUE, "pre-copy continues"},
	    {4, 100000, PC_STOP_AND_COPY, "iteration limit reached"},
	    {2, 0, PC_STOP_AND_COPY, "fewer than 50 dirty pages"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pc_state st;
		struct pc_params p = params(PC_POLICY_XEN, PC_STALL_ABORT);
		struct pc_round r = round_of(cases[i].round, cases[i].dirty, GBIT_BPS, 1000, 0);
		struct pc_verdict v;

		pc_init(&st, &p);
		v = pc_decide(&st, &r);
		assert_int_equal(v.decision, cases[i].want);
		assert_string_equal(v.reason, cases[i].reason);
		assert_int_equal(v.throttle_pct, 0);
	}
}

static void test_xen_policy_max_iters_override(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_XEN, PC_STALL_ABORT);
	struct pc_round r = round_of(4, 100000, GBIT_BPS, 1000, 0);

	(void)state;
	p.max_iters = 10;
	pc_init(&st, &p);
	assert_int_equal(pc_decide(&st, &r).decision, PC_CONTINUE);
	r.round = 9;
	assert_int_equal(pc_decide(&st, &r).decision, PC_STOP_AND_COPY);
}

static void test_adaptive_stops_when_fits_downtime(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_ABORT);
	struct pc_verdict v;
	/*
	 * 1 Gbit/s, 20 ms target less the default 8 ms fixed switch-over cost:
	 * 125e6 * 0.012 / 4104 = 365 pages fit
	 */
	struct pc_round fits = round_of(1, 350, GBIT_BPS, 2000, 300 * MIB);
	struct pc_round too_many = round_of(1, 400, GBIT_BPS, 2000, 300 * MIB);

	(void)state;
	/* dirtied too fast for one more round to cut the set fourfold (20000 pages/s for the
	 * 11 ms it would take: 230 of 350 again): stop now */
	fits.dirty_rate_pps = 20000;
	too_many.dirty_rate_pps = 20000;
	pc_init(&st, &p);
	v = pc_decide(&st, &fits);
	assert_int_equal(v.decision, PC_STOP_AND_COPY);
	assert_string_equal(v.reason, "dirty set fits the downtime target");
	assert_true(v.est_downtime_us <= 20000);
	pc_init(&st, &p);
	v = pc_decide(&st, &too_many);
	assert_int_equal(v.decision, PC_CONTINUE);
	assert_true(v.est_downtime_us > 20000);
	/* a measured fixed cost replaces the default: 1 ms leaves room for 400 pages */
	p.fixed_downtime_us = 1000;
	pc_init(&st, &p);
	assert_int_equal(pc_decide(&st, &too_many).decision, PC_STOP_AND_COPY);
}

/*
 * A set that fits but that one more round would cut fourfold and by 1 ms or more of downtime
 * (350 pages, 2000 dirtied a second: 23 left after the 11 ms round) gets that round, twice at
 * most; then the switch-over.
 */
static void test_adaptive_polishes_a_set_that_fits(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_ABORT);
	struct pc_round fits = round_of(1, 350, GBIT_BPS, 2000, 300 * MIB);
	struct pc_verdict v;

	(void)state;
	pc_init(&st, &p);
	for (unsigned i = 0; i < 2; i++) {
		fits.round = 1 + i;
		v = pc_decide(&st, &fits);
		assert_int_equal(v.decision, PC_CONTINUE);
		assert_string_equal(v.reason,
		                    "dirty set fits; one more round shrinks the downtime");
		assert_int_equal(v.throttle_pct, 0);
	}
	fits.round = 3;
	v = pc_decide(&st, &fits);
	assert_int_equal(v.decision, PC_STOP_AND_COPY);
	assert_string_equal(v.reason, "dirty set fits the downtime target");
	/* a set of 30 pages: the round would save under 1 ms */
	pc_init(&st, &p);
	fits.dirty_pages = 30;
	assert_int_equal(pc_decide(&st, &fits).decision, PC_STOP_AND_COPY);
	/* nor past the iteration limit */
	p.max_iters = 2;
	pc_init(&st, &p);
	fits.dirty_pages = 350;
	fits.round = 1;
	assert_int_equal(pc_decide(&st, &fits).decision, PC_STOP_AND_COPY);
}

static void test_adaptive_downtime_target_option(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_ABORT);
	/* dirtied fast enough that one more round would not cut the set fourfold */
	struct pc_round r = round_of(1, 2500, GBIT_BPS, 10000, 300 * MIB);

	(void)state;
	p.downtime_ms = 100; /* 2500 pages = 82 ms at 1 Gbit/s, + 8 ms fixed */
	pc_init(&st, &p);
	assert_int_equal(pc_decide(&st, &r).decision, PC_STOP_AND_COPY);
	p.downtime_ms = 50;
	pc_init(&st, &p);
	assert_int_equal(pc_decide(&st, &r).decision, PC_CONTINUE);
}

static void test_adaptive_zero_bandwidth_never_stops_on_fit(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_ABORT);
	struct pc_round r = round_of(0, 100, 0.0, 0, 0);

	(void)state;
	pc_init(&st, &p);
	assert_int_equal(pc_decide(&st, &r).decision, PC_CONTINUE);
	r.dirty_pages = 0; /* nothing left: always done */
	assert_int_equal(pc_decide(&st, &r).decision, PC_STOP_AND_COPY);
}

/* A hot set that never shrinks: the three --on-stall modes. */
static struct pc_verdict run_stalling(enum pc_on_stall mode, unsigned *rounds_r, unsigned *thr_r)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, mode);
	struct pc_verdict v = {0};
	uint64_t total = 256 * MIB;
	double to_send = 65536; /* round 0 sends the whole guest */

	pc_init(&st, &p);
	*thr_r = 0;
	for (unsigned i = 0; i < 100; i++) {
		/* a 128 MiB hot set dirtied at 400 MiB/s; a round lasts as long as its send */
		double raw_pps = 400 * MIB / 4096;
		double pps = raw_pps * (1.0 - st.throttle_pct / 100.0);
		double secs = to_send * 4104 / GBIT_BPS;
		uint64_t dirty = pps * secs > 32768 ? 32768 : (uint64_t)(pps * secs);
		struct pc_round r = round_of(i, dirty, GBIT_BPS, pps, total);

		v = pc_decide(&st, &r);
		*rounds_r = i + 1;
		if (v.throttle_pct > *thr_r)
			*thr_r = v.throttle_pct;
		if (v.decision != PC_CONTINUE)
			break;
		total += dirty * 4104;
		to_send = (double)dirty;
	}
	return v;
}

static void test_adaptive_stall_abort(void **state)
{
	unsigned rounds, thr;
	struct pc_verdict v = run_stalling(PC_STALL_ABORT, &rounds, &thr);

	(void)state;
	assert_int_equal(v.decision, PC_ABORT);
	assert_string_equal(v.reason, "dirty set is not shrinking (not converging)");
	assert_int_equal(rounds, 3); /* rounds 1 and 2 without progress */
	assert_int_equal(thr, 0);
}

static void test_adaptive_stall_force(void **state)
{
	unsigned rounds, thr;
	struct pc_verdict v = run_stalling(PC_STALL_FORCE, &rounds, &thr);

	(void)state;
	assert_int_equal(v.decision, PC_STOP_AND_COPY);
	assert_string_equal(v.reason, "not converging: switch-over forced");
	assert_int_equal(rounds, 3);
}

static void test_adaptive_stall_throttle_converges(void **state)
{
	unsigned rounds, thr;
	struct pc_verdict v = run_stalling(PC_STALL_THROTTLE, &rounds, &thr);

	(void)state;
	assert_int_equal(v.decision, PC_STOP_AND_COPY);
	assert_string_equal(v.reason, "dirty set fits the downtime target");
	assert_true(thr >= PC_THROTTLE_MIN);
	assert_true(thr <= PC_THROTTLE_MAX);
	assert_true(rounds < 30);
	assert_true(v.est_downtime_us <= 20000);
}

static void test_adaptive_byte_cap(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_THROTTLE);
	/* 3 x 256 MiB cap: with 760 MiB sent, another 32768-page round would pass it */
	struct pc_round r = round_of(5, 32768, GBIT_BPS, 30000, 760 * MIB);
	struct pc_verdict v;

	(void)state;
	pc_init(&st, &p);
	v = pc_decide(&st, &r);
	assert_int_equal(v.decision, PC_STOP_AND_COPY);
	assert_string_equal(v.reason, "byte limit reached: switch-over forced");
	p.on_stall = PC_STALL_ABORT;
	pc_init(&st, &p);
	v = pc_decide(&st, &r);
	assert_int_equal(v.decision, PC_ABORT);
	assert_string_equal(v.reason, "byte limit reached (not converging)");
	/* an explicit cap */
	p.max_total_bytes = 2000 * MIB;
	pc_init(&st, &p);
	assert_int_equal(pc_decide(&st, &r).decision, PC_CONTINUE);
}

/* The byte cap holds with the final copy: it reserves what the next round lets the guest dirty. */
static void test_adaptive_byte_cap_reserves_final_copy(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_THROTTLE);
	/*
	 * Cap 3 x 256 MiB (~769.5 MiB on the wire). 630 MiB sent + a 32768-page round (~128 MiB)
	 * would fit; the ~17 MiB the guest dirties during that round (4096 pages/s for ~1.08 s),
	 * sent in stop-and-copy, would not.
	 */
	struct pc_round r = round_of(5, 32768, GBIT_BPS, 4096, 600 * MIB);
	struct pc_verdict v;

	(void)state;
	pc_init(&st, &p);
	assert_int_equal(pc_decide(&st, &r).decision, PC_CONTINUE);
	r.total_bytes = 630 * MIB;
	pc_init(&st, &p);
	v = pc_decide(&st, &r);
	assert_int_equal(v.decision, PC_STOP_AND_COPY);
	assert_string_equal(v.reason, "byte limit reached: switch-over forced");
}

/* --on-stall throttle starts at round 1 when the guest dirties as fast as the link carries. */
static void test_adaptive_throttles_early_and_halves(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_THROTTLE);
	double link_pps = GBIT_BPS / 4104;
	struct pc_round r = round_of(1, 30000, GBIT_BPS, link_pps, 300 * MIB);
	struct pc_verdict v;

	(void)state;
	pc_init(&st, &p);
	v = pc_decide(&st, &r);
	assert_int_equal(v.decision, PC_CONTINUE);
	assert_true(v.throttle_pct >= 50); /* at least half of the guest's speed taken at once */
	/* still saturated (a hot set hides the true rate): at least half of the rest again */
	r.round = 2;
	r.total_bytes += 30000 * 4104;
	{
		unsigned before = v.throttle_pct;

		v = pc_decide(&st, &r);
		assert_true(v.throttle_pct >= before + (100 - before) / 2);
	}
	/* the same guest with --on-stall abort is not judged before its stalled rounds */
	p.on_stall = PC_STALL_ABORT;
	pc_init(&st, &p);
	r.round = 1;
	assert_int_equal(pc_decide(&st, &r).decision, PC_CONTINUE);
}

/*
 * migrate --compress: once a page sent again costs 32 bytes, not 4104, the same dirty set
 * fits the downtime target, and a guest dirtying as fast as the link carries whole pages is
 * not throttled; the byte cap set at the start stays.
 */
static void test_page_cost_of_deltas(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_THROTTLE);
	double link_pps = GBIT_BPS / 4104;
	struct pc_round r = round_of(1, 30000, GBIT_BPS, link_pps, 300 * MIB);
	struct pc_verdict v;
	uint64_t cap;

	(void)state;
	pc_init(&st, &p);
	cap = st.p.max_total_bytes;
	v = pc_decide(&st, &r);
	assert_int_equal(v.decision, PC_CONTINUE);
	assert_true(v.throttle_pct > 0);
	pc_init(&st, &p);
	pc_set_page_cost(&st, 32);
	v = pc_decide(&st, &r);
	/* 30000 x 32 bytes at 1 Gbit/s: 7.7 ms, within 20 ms with the fixed cost; a round as
	 * cheap leaves 234 pages: one more round first */
	assert_int_equal(v.decision, PC_CONTINUE);
	assert_string_equal(v.reason, "dirty set fits; one more round shrinks the downtime");
	assert_int_equal(v.throttle_pct, 0);
	assert_true(v.est_downtime_us < 20000);
	r.dirty_pages = 300000; /* 77 ms: another round, still no throttle */
	r.dirty_rate_pps = link_pps;
	v = pc_decide(&st, &r);
	assert_int_equal(v.decision, PC_CONTINUE);
	assert_int_equal(v.throttle_pct, 0);
	assert_int_equal(st.p.max_total_bytes, cap);
	pc_set_page_cost(&st, 0); /* no figure: the last one stays */
	assert_int_equal(st.p.page_wire_bytes, 32);
}

static void test_adaptive_iteration_limit(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_FORCE);
	struct pc_round r = round_of(29, 5000, GBIT_BPS, 100, 300 * MIB);

	(void)state;
	pc_init(&st, &p);
	assert_string_equal(pc_decide(&st, &r).reason,
	                    "iteration limit reached: switch-over forced");
	p.max_iters = 40;
	pc_init(&st, &p);
	assert_int_equal(pc_decide(&st, &r).decision, PC_CONTINUE);
}

static void test_converging_guest_never_throttled(void **state)
{
	struct pc_state st;
	struct pc_params p = params(PC_POLICY_ADAPTIVE, PC_STALL_THROTTLE);
	uint64_t dirty = 20000;
	struct pc_verdict v;
	unsigned i;

	(void)state;
	pc_init(&st, &p);
	for (i = 0; i < 30; i++) {
		struct pc_round r = round_of(i, dirty, GBIT_BPS, 8000, 256 * MIB);

		v = pc_decide(&st, &r);
		assert_int_equal(v.throttle_pct, 0);
		if (v.decision != PC_CONTINUE)
			break;
		dirty /= 3;
	}
	assert_int_equal(v.decision, PC_STOP_AND_COPY);
}

static void test_names_parse(void **state)
{
	enum pc_policy_kind k;
	enum pc_on_stall m;

	(void)state;
	assert_int_equal(pc_policy_parse("xen", &k), 0);
	assert_int_equal(k, PC_POLICY_XEN);
	assert_string_equal(pc_policy_name(k), "xen");
	assert_int_equal(pc_policy_parse("adaptive", &k), 0);
	assert_int_equal(pc_policy_parse("fast", &k), ERR_INVAL);
	assert_int_equal(pc_on_stall_parse("throttle", &m), 0);
	assert_string_equal(pc_on_stall_name(m), "throttle");
	assert_int_equal(pc_on_stall_parse("abort", &m), 0);
	assert_int_equal(m, PC_STALL_ABORT);
	assert_int_equal(pc_on_stall_parse("Abort", &m), ERR_INVAL);
	assert_string_equal(pc_decision_name(PC_STOP_AND_COPY), "stop-and-copy");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xen_policy_table),
	    cmocka_unit_test(test_xen_policy_max_iters_override),
	    cmocka_unit_test(test_adaptive_stops_when_fits_downtime),
	    cmocka_unit_test(test_adaptive_downtime_target_option),
	    cmocka_unit_test(test_adaptive_zero_bandwidth_never_stops_on_fit),
	    cmocka_unit_test(test_adaptive_stall_abort),
	    cmocka_unit_test(test_adaptive_stall_force),
	    cmocka_unit_test(test_adaptive_stall_throttle_converges),
	    cmocka_unit_test(test_adaptive_byte_cap),
	    cmocka_unit_test(test_adaptive_byte_cap_reserves_final_copy),
	    cmocka_unit_test(test_adaptive_throttles_early_and_halves),
	    cmocka_unit_test(test_adaptive_iteration_limit),
	    cmocka_unit_test(test_page_cost_of_deltas),
	    cmocka_unit_test(test_adaptive_polishes_a_set_that_fits),
	    cmocka_unit_test(test_converging_guest_never_throttled),
	    cmocka_unit_test(test_names_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
