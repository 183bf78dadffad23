/*
 * test_drill.c - the drill's parser of httperf's statistics (--httperf), on httperf 0.9's
 * own output: counts, errors by kind, median and max, the p99 from the lifetime histogram
 * (with elided bins), an interrupted run with no statistics, and a missing file.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "haagent/drill.h"

static char path[64];

static void write_file(const char *text)
{
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/test_drill.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char *sample =
    "httperf --verbose --timeout=3 --client=0/1 --server=10.77.0.102 --port=80 --uri=/ "
    "--rate=5 --send-buffer=4096 --recv-buffer=16384 --num-conns=100000000 --num-calls=1\n"
    "Maximum connect burst length: 1\n"
    "\n"
    "Connection lifetime histogram (time in ms):\n"
    "             0.5 90\n"
    "             1.5 8\n"
    "             :\n"
    "             8.5 1\n"
    "          1020.5 1\n"
    "\n"
    "Total: connections 102 requests 101 replies 100 test-duration 20.004 s\n"
    "\n"
    "Connection time [ms]: min 0.3 avg 11.4 max 1020.9 median 0.5 stddev 4.2\n"
    "Connection time [ms]: connect 0.9\n"
    "Reply status: 1xx=0 2xx=100 3xx=0 4xx=0 5xx=0\n"
    "\n"
    "Errors: total 2 client-timo 1 socket-timo 0 connrefused 0 connreset 1\n"
    "Errors: fd-unavail 0 addrunavail 0 ftab-full 0 other 0\n";

static void test_parse_statistics(void **state)
{
	struct drill_httperf r;

	(void)state;
	write_file(sample);
	drill_httperf_parse(path, &r);
	unlink(path);
	assert_true(r.have);
	assert_int_equal(r.requests, 101);
	assert_int_equal(r.replies, 100);
	assert_int_equal(r.errors, 2);
	assert_int_equal(r.timeouts, 1);
	assert_int_equal(r.refused, 0);
	assert_int_equal(r.reset, 1);
	assert_true(fabs(r.duration_s - 20.004) < 1e-9);
	assert_true(fabs(r.p50_ms - 0.5) < 1e-9);
	assert_true(fabs(r.max_ms - 1020.9) < 1e-9);
	/* 90 + 8 + 1 = 99 of 100 lifetimes end in the 8 ms bin: p99 is its upper edge */
	assert_true(fabs(r.p99_ms - 9.0) < 1e-9);
}

static void test_parse_no_statistics(void **state)
{
	struct drill_httperf r;

	(void)state;
	/* killed before it printed anything: nothing made up */
	write_file("httperf: maximum number of open descriptors = 1024\n");
	drill_httperf_parse(path, &r);
	unlink(path);
	assert_false(r.have);
	assert_int_equal(r.requests, 0);
	assert_true(isnan(r.p50_ms) && isnan(r.p99_ms) && isnan(r.max_ms));
	drill_httperf_parse("/nonexistent/httperf.txt", &r);
	assert_false(r.have);
}

static void test_parse_p99_capped_by_max(void **state)
{
	struct drill_httperf r;

	(void)state;
	/* one sample: the bin's upper edge (2.0) is above the max httperf measured (1.6) */
	write_file("Connection lifetime histogram (time in ms):\n"
	           "             1.5 1\n"
	           "\n"
	           "Total: connections 1 requests 1 replies 1 test-duration 0.2 s\n"
	           "Connection time [ms]: min 1.6 avg 1.6 max 1.6 median 1.5 stddev 0.0\n"
	           "Errors: total 0 client-timo 0 socket-timo 0 connrefused 0 connreset 0\n");
	drill_httperf_parse(path, &r);
	unlink(path);
	assert_true(r.have);
	assert_true(fabs(r.p99_ms - 1.6) < 1e-9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_statistics),
	    cmocka_unit_test(test_parse_no_statistics),
	    cmocka_unit_test(test_parse_p99_capped_by_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
