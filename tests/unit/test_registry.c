/* Unit tests of common/registry.c and the hypervisor backend table built into libxlext. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/registry.h"
#include "xl-ext/core/hv.h"

static const int ops_a = 1, ops_b = 2;

static const struct registry_entry entries[] = {
    {"alpha", "first", &ops_a, NULL},
    {"beta", "second", &ops_b, NULL},
    {"gamma", "not built", NULL, "libgamma not found"},
};

static const struct registry reg = {
    .kind = "test backend",
    .entries = entries,
    .nentries = 3,
    .default_name = "beta",
};

static void test_lookup_by_name(void **state)
{
	const void *ops = NULL;
	char why[128];

	(void)state;
	assert_int_equal(registry_lookup(&reg, "alpha", &ops, why, sizeof(why)), 0);
	assert_ptr_equal(ops, &ops_a);
	assert_int_equal(registry_lookup(&reg, "beta", &ops, why, sizeof(why)), 0);
	assert_ptr_equal(ops, &ops_b);
}

static void test_default(void **state)
{
	const void *ops = NULL;

	(void)state;
	assert_int_equal(registry_lookup(&reg, NULL, &ops, NULL, 0), 0);
	assert_ptr_equal(ops, &ops_b);
	ops = NULL;
	assert_int_equal(registry_lookup(&reg, "", &ops, NULL, 0), 0);
	assert_ptr_equal(ops, &ops_b);
}

static void test_unknown_lists_choices(void **state)
{
	const void *ops = NULL;
	char why[128];

	(void)state;
	assert_int_equal(registry_lookup(&reg, "delta", &ops, why, sizeof(why)), ERR_NOTFOUND);
	assert_null(ops);
	assert_string_equal(why, "unknown test backend 'delta' (available: alpha, beta)");
}

static void test_not_built_says_why(void **state)
{
	const void *ops = NULL;
	char why[128];

	(void)state;
	assert_int_equal(registry_lookup(&reg, "gamma", &ops, why, sizeof(why)), ERR_NOTSUP);
	assert_null(ops);
	assert_string_equal(why, "test backend 'gamma' is not built in: libgamma not found");
}

static void test_list_truncates_safely(void **state)
{
	char small[8];

	(void)state;
	registry_list(&reg, small, sizeof(small));
	assert_true(strlen(small) < sizeof(small));
}

static void test_hv_registry_has_sim(void **state)
{
	const void *ops = NULL;
	char why[128];

	(void)state;
	assert_int_equal(registry_lookup(&hv_registry, "sim", &ops, why, sizeof(why)), 0);
	assert_string_equal(((const struct hv_ops *)ops)->name, "sim");
#ifdef XLEXT_HAVE_XEN
	assert_int_equal(registry_lookup(&hv_registry, "xen", &ops, why, sizeof(why)), 0);
	assert_string_equal(((const struct hv_ops *)ops)->name, "xen");
#else
	assert_int_equal(registry_lookup(&hv_registry, "xen", &ops, why, sizeof(why)), ERR_NOTSUP);
#endif
}

static void test_hv_type_names(void **state)
{
	enum hv_domain_type t;

	(void)state;
	assert_int_equal(hv_type_parse("hvm", &t), 0);
	assert_int_equal(t, HV_TYPE_HVM);
	assert_string_equal(hv_type_name(t), "hvm");
	assert_int_equal(hv_type_parse("pv", &t), 0);
	assert_string_equal(hv_type_name(t), "pv");
	assert_int_equal(hv_type_parse("HVM ", &t), ERR_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lookup_by_name),
	    cmocka_unit_test(test_default),
	    cmocka_unit_test(test_unknown_lists_choices),
	    cmocka_unit_test(test_not_built_says_why),
	    cmocka_unit_test(test_list_truncates_safely),
	    cmocka_unit_test(test_hv_registry_has_sim),
	    cmocka_unit_test(test_hv_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
