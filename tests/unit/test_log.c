/* Unit tests of common/log.c: levels, the capture sink, errno suffixes, thread safety. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

static struct log_sink *cap;

static int setup(void **state)
{
	(void)state;
	cap = log_sink_capture();
	assert_non_null(cap);
	log_set_sink(cap);
	log_set_level(LOGL_WARN);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_sink(NULL);
	cap->destroy(cap);
	return 0;
}

static void test_levels_filter(void **state)
{
	(void)state;
	log_error("domain %s failed", "vm1");
	log_warn("disk %s slow", "xvda");
	log_info("not shown %d", 1);
	log_debug("not shown %d", 2);
	assert_int_equal(log_capture_count(cap), 2);
	assert_string_equal(log_capture_get(cap, 0),
	                    "error: test_levels_filter: domain vm1 failed");
	assert_string_equal(log_capture_get(cap, 1), "warning: test_levels_filter: disk xvda slow");
	assert_null(log_capture_get(cap, 2));
}

static void test_verbose_raises_level(void **state)
{
	(void)state;
	log_verbose();
	assert_int_equal(log_get_level(), LOGL_INFO);
	log_info("now shown");
	log_debug("still hidden");
	log_verbose();
	log_verbose(); /* stays at debug */
	assert_int_equal(log_get_level(), LOGL_DEBUG);
	log_debug("shown at debug");
	assert_int_equal(log_capture_count(cap), 2);
	assert_true(log_capture_contains(cap, "now shown"));
	assert_true(log_capture_contains(cap, "shown at debug"));
	assert_false(log_capture_contains(cap, "still hidden"));
}

static void test_errno_suffix_and_preserved(void **state)
{
	(void)state;
	errno = EBADF;
	log_error_errno(ENOENT, "cannot open %s", "/etc/haagent.conf");
	assert_int_equal(errno, EBADF);
	assert_true(
	    log_capture_contains(cap, "cannot open /etc/haagent.conf: No such file or directory"));
}

static void test_clear_and_long_message(void **state)
{
	char big[4000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_error("%s", big);
	assert_int_equal(log_capture_count(cap), 1);
	/* truncated to the line limit, never overflowing */
	assert_true(strlen(log_capture_get(cap, 0)) < sizeof(big));
	log_capture_clear(cap);
	assert_int_equal(log_capture_count(cap), 0);
}

static void *log_worker(void *arg)
{
	for (int i = 0; i < 500; i++)
		log_error("thread %ld message %d", (long)(intptr_t)arg, i);
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[4];

	(void)state;
	for (long i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_worker, (void *)(intptr_t)i), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(log_capture_count(cap), 2000);
	assert_true(log_capture_contains(cap, "thread 3 message 499"));
}

static void test_level_names(void **state)
{
	(void)state;
	assert_string_equal(log_level_name(LOGL_ERROR), "error");
	assert_string_equal(log_level_name(LOGL_WARN), "warning");
	assert_string_equal(log_level_name(LOGL_INFO), "info");
	assert_string_equal(log_level_name(LOGL_DEBUG), "debug");
}

static void test_stderr_sink_format(void **state)
{
	char buf[512] = "";
	FILE *saved = stderr;
	FILE *mem = fmemopen(buf, sizeof(buf), "w");

	(void)state;
	assert_non_null(mem);
	log_set_sink(log_sink_stderr("/usr/sbin/xl-ext"));
	stderr = mem;
	log_error("domain vm1 not found");
	log_warn("bandwidth cap below 1 Mbit/s");
	fflush(mem);
	stderr = saved;
	fclose(mem);
	log_set_sink(cap);
	assert_string_equal(buf, "xl-ext: domain vm1 not found\n"
	                         "xl-ext: warning: bandwidth cap below 1 Mbit/s\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_levels_filter, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verbose_raises_level, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errno_suffix_and_preserved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clear_and_long_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stderr_sink_format, setup, teardown),
	    cmocka_unit_test(test_level_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
