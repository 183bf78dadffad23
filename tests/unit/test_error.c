/* Unit tests of common/error.c. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_code_has_text_and_name),
	    cmocka_unit_test(test_unknown_code),
	    cmocka_unit_test(test_names_are_distinct),
	    cmocka_unit_test(test_from_errno),
	    cmocka_unit_test(test_exit_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
