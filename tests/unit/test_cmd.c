/* Unit tests of common/cmd.c: lookup by prefix, generated help, option parsing. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/cmd.h"

static int last_called;
static const char *last_value;
static int last_positional;

static const struct cmd_table table;

static int h_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"debug", no_argument, NULL, 256},
	    {"bandwidth", required_argument, NULL, 257},
	    CMD_LONGOPTS_END,
	};
	int opt;

	last_value = NULL;
	CMD_FOREACH_OPT (opt, argc, argv, "C:s:ep", longopts, &table, &table.cmds[0], 2) {
	case 'C':
	case 257:
		last_value = optarg;
		break;
	case 's':
	case 'e':
	case 'p':
	case 256:
		break;
	}
	last_called = 1;
	last_positional = argc - optind;
	return 0;
}

static int h_migrate_receive(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	last_called = 2;
	return 0;
}

static int h_list(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	last_called = 3;
	return 0;
}

static const struct cmd_spec cmds[] = {
    {"migrate", h_migrate, "Migrate a domain", "[options] <Domain> <host>", "  -C FILE  config\n"},
    {"migrate-receive", h_migrate_receive, "Receive", "", NULL},
    {"list", h_list, "List domains", "[Domain]", NULL},
};

static const struct cmd_table table = {.prog = "xl-ext", .cmds = cmds, .ncmds = 3};

static int run(const char *line)
{
	static char buf[256]; /* getopt keeps pointers into it */
	char *argv[16];
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *tok = strtok(buf, " "); tok && argc < 15; tok = strtok(NULL, " "))
		argv[argc++] = tok;
	argv[argc] = NULL;
	last_called = 0;
	return cmd_dispatch(&table, argc, argv);
}

static void test_find_exact_and_prefix(void **state)
{
	int amb;

	(void)state;
	assert_ptr_equal(cmd_find(&table, "migrate", &amb), &cmds[0]);
	assert_ptr_equal(cmd_find(&table, "migrate-r", &amb), &cmds[1]);
	assert_ptr_equal(cmd_find(&table, "li", &amb), &cmds[2]);
	assert_int_equal(amb, 0);
	/* "mig" is a prefix of migrate and migrate-receive, but "migrate" is exact */
	assert_null(cmd_find(&table, "mig", &amb));
	assert_int_equal(amb, 1);
	assert_null(cmd_find(&table, "xyz", &amb));
	assert_int_equal(amb, 0);
	assert_null(cmd_find(&table, "", &amb));
}

static void test_dispatch_and_options(void **state)
{
	(void)state;
	assert_int_equal(run("migrate -C /etc/xen/vm1.cfg vm1 host2"), 0);
	assert_int_equal(last_called, 1);
	assert_string_equal(last_value, "/etc/xen/vm1.cfg");
	assert_int_equal(last_positional, 2);
	assert_int_equal(run("migrate --bandwidth 1Gbit -e vm1 host2"), 0);
	assert_string_equal(last_value, "1Gbit");
	assert_int_equal(run("l"), 0);
	assert_int_equal(last_called, 3);
}

static void test_usage_errors(void **state)
{
	(void)state;
	assert_int_equal(run("migrate vm1"), 2); /* missing host */
	assert_int_equal(last_called, 0);
	assert_int_equal(run("migrate -x vm1 host2"), 2);
	assert_int_equal(run("migrate --nope vm1 host2"), 2);
	assert_int_equal(run("migrate vm1 host2 -C"), 0); /* '+': options stop at the domain */
	assert_int_equal(run("migrate -C"), 2);           /* value missing */
	assert_int_equal(run("mig"), 2);                  /* ambiguous */
	assert_int_equal(run("frobnicate"), 2);
}

static void test_help_generated(void **state)
{
	char buf[2048] = "";
	FILE *mem = fmemopen(buf, sizeof(buf), "w");

	(void)state;
	cmd_print_usage(mem, &table, &cmds[0]);
	cmd_print_list(mem, &table);
	fclose(mem);
	assert_non_null(strstr(buf, "Usage: xl-ext migrate [options] <Domain> <host>"));
	assert_non_null(strstr(buf, "-C FILE  config"));
	assert_non_null(strstr(buf, "  migrate-receive  Receive\n"));
	assert_non_null(strstr(buf, "  list             List domains\n"));
	assert_int_equal(run("migrate --help"), 0);
	assert_int_equal(last_called, 0);
}

static void test_not_implemented(void **state)
{
	(void)state;
	assert_int_equal(cmd_not_implemented("xl-ext", "frob"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find_exact_and_prefix),
	    cmocka_unit_test(test_dispatch_and_options),
	    cmocka_unit_test(test_usage_errors),
	    cmocka_unit_test(test_help_generated),
	    cmocka_unit_test(test_not_implemented),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
