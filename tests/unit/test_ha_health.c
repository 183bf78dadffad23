/* Tests of the health-check hook (haagent/health.c) with real commands. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/loop.h"
#include "haagent/health.h"

/* Poll every 10 ms until the check asks to mark the node, at most limit_ms. */
static int run_until_trip(struct ha_health_check *h, int64_t limit_ms, char *why, size_t len)
{
	int64_t end = loop_now_ms() + limit_ms;

	while (loop_now_ms() < end) {
		int rc = ha_health_poll(h, loop_now_ms(), why, len);

		if (rc != 0)
			return rc;
		usleep(10000);
	}
	return 0;
}

static void test_counting_is_per_streak(void **state)
{
	struct ha_health_check h;

	(void)state;
	ha_health_init(&h, "x", 1000, 1000, 3);
	assert_false(ha_health_record(&h, false, "a"));
	assert_false(ha_health_record(&h, false, "b"));
	assert_true(ha_health_record(&h, false, "c"));  /* third in a row */
	assert_false(ha_health_record(&h, false, "d")); /* once per streak */
	assert_false(ha_health_record(&h, true, NULL));
	assert_false(ha_health_record(&h, false, "e"));
	assert_false(ha_health_record(&h, false, "f"));
	assert_true(ha_health_record(&h, false, "g"));
}

static void test_failing_command_trips(void **state)
{
	struct ha_health_check h;
	char why[256] = "";

	(void)state;
	ha_health_init(&h, "exit 3", 20, 1000, 3);
	assert_int_equal(run_until_trip(&h, 3000, why, sizeof(why)), 1);
	assert_string_equal(why,
	                    "health check 'exit 3' failed 3 times in a row, last: exit status 3");
	ha_health_stop(&h);
}

static void test_hanging_command_times_out(void **state)
{
	struct ha_health_check h;
	char why[256] = "";
	int64_t t0 = loop_now_ms();

	(void)state;
	ha_health_init(&h, "sleep 30", 10, 100, 2);
	assert_int_equal(run_until_trip(&h, 3000, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "failed 2 times in a row, last: timed out after 100 ms"));
	assert_true(loop_now_ms() - t0 < 2000);
	assert_int_equal(h.pid, 0); /* killed and reaped */
}

static void test_passing_command_never_trips(void **state)
{
	struct ha_health_check h;
	char why[256];

	(void)state;
	ha_health_init(&h, "true", 10, 1000, 1);
	assert_int_equal(run_until_trip(&h, 300, why, sizeof(why)), 0);
	assert_int_equal(h.failures, 0);
	ha_health_stop(&h);
	ha_health_init(&h, "", 10, 1000, 1); /* disabled */
	assert_int_equal(run_until_trip(&h, 50, why, sizeof(why)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counting_is_per_streak),
	    cmocka_unit_test(test_failing_command_trips),
	    cmocka_unit_test(test_hanging_command_times_out),
	    cmocka_unit_test(test_passing_command_never_trips),
	};

	log_set_sink(log_sink_capture());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
