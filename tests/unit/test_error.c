/* Unit tests of common/error.c and common/fault.c. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fault.h"

static void test_every_code_has_text_and_name(void **state)
{
	(void)state;
	for (int code = 0; code >= ERR_CODE_MIN; code--) {
		assert_string_not_equal(err_str(code), "unknown error");
		assert_string_not_equal(err_name(code), "ERR_UNKNOWN");
		assert_int_equal(strncmp(err_name(code), "ERR_", 4), 0);
	}
}

static void test_unknown_code(void **state)
{
	(void)state;
	assert_string_equal(err_str(ERR_CODE_MIN - 1), "unknown error");
	assert_string_equal(err_name(42), "ERR_UNKNOWN");
}

static void test_names_are_distinct(void **state)
{
	(void)state;
	for (int a = 0; a >= ERR_CODE_MIN; a--)
		for (int b = a - 1; b >= ERR_CODE_MIN; b--) {
			assert_string_not_equal(err_name(a), err_name(b));
			assert_string_not_equal(err_str(a), err_str(b));
		}
}

static void test_from_errno(void **state)
{
	(void)state;
	assert_int_equal(err_from_errno(0), ERR_OK);
	assert_int_equal(err_from_errno(ENOMEM), ERR_NOMEM);
	assert_int_equal(err_from_errno(ENOENT), ERR_NOTFOUND);
	assert_int_equal(err_from_errno(EEXIST), ERR_EXISTS);
	assert_int_equal(err_from_errno(ETIMEDOUT), ERR_TIMEOUT);
	assert_int_equal(err_from_errno(EACCES), ERR_PERM);
	assert_int_equal(err_from_errno(EPERM), ERR_PERM);
	assert_int_equal(err_from_errno(EINVAL), ERR_INVAL);
	assert_int_equal(err_from_errno(ENOSYS), ERR_NOTSUP);
	assert_int_equal(err_from_errno(ECONNRESET), ERR_IO);
	assert_int_equal(err_from_errno(EPIPE), ERR_IO);
}

static void test_exit_status(void **state)
{
	(void)state;
	assert_int_equal(err_exit_status(ERR_OK), 0);
	for (int code = -1; code >= ERR_CODE_MIN; code--)
		assert_int_equal(err_exit_status(code), 1);
}

/* Only a failed connection is worth a new session; an answer (a conflict) is not. */
static void test_is_transport(void **state)
{
	(void)state;
	for (int code = 0; code >= ERR_CODE_MIN; code--)
		assert_int_equal(err_is_transport(code) != 0,
		                 code == ERR_IO || code == ERR_TIMEOUT);
}

/* XLEXT_FAULT's grammar: a point is named exactly, actions kill (default) and stop. */
static void test_fault_lookup(void **state)
{
	(void)state;
	assert_int_equal(fault_lookup("", "send:go"), 0);
	assert_int_equal(fault_lookup("send:go", "send:go"), 'k');
	assert_int_equal(fault_lookup("send:go=kill", "send:go"), 'k');
	assert_int_equal(fault_lookup("recv:ready,send:go=stop", "send:go"), 's');
	assert_int_equal(fault_lookup("recv:ready,send:go=stop", "recv:ready"), 'k');
	assert_int_equal(fault_lookup("send:gone", "send:go"), 0);
	assert_int_equal(fault_lookup("send:g", "send:go"), 0);
	assert_int_equal(fault_lookup("send:round-1", "send:round-10"), 0);
	assert_int_equal(fault_lookup("send:round-10", "send:round-10"), 'k');
	assert_int_equal(fault_lookup("recv:go", "send:go"), 0);
	/* malformed: no side, empty entry, unknown action */
	assert_int_equal(fault_lookup("go", "send:go"), -1);
	assert_int_equal(fault_lookup(",send:go", "send:go"), -1);
	assert_int_equal(fault_lookup("send:go=explode", "send:go"), -1);
}

/* A named point kills (or stops) the process that reaches it; any other point does nothing. */
static void test_fault_point_acts(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("XLEXT_FAULT", "send:ready,recv:go", 1);
		fault_point("send:go");
		fault_point_n("recv:round", 1);
		fault_point("recv:go");
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("XLEXT_FAULT", "recv:round-2=stop", 1);
		fault_point_n("recv:round", 1);
		fault_point_n("recv:round", 2);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsetenv("XLEXT_FAULT");
		fault_point("send:go");
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_code_has_text_and_name),
	    cmocka_unit_test(test_unknown_code),
	    cmocka_unit_test(test_names_are_distinct),
	    cmocka_unit_test(test_from_errno),
	    cmocka_unit_test(test_exit_status),
	    cmocka_unit_test(test_is_transport),
	    cmocka_unit_test(test_fault_lookup),
	    cmocka_unit_test(test_fault_point_acts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
