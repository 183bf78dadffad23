/* Tests of the haagent.conf parser (haagent/conf.c): the shipped example, and malformed files. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "haagent/conf.h"

static void test_shipped_example(void **state)
{
	struct ha_config c;
	char err[512], path[1024];
	const char *srcdir = getenv("top_srcdir");

	(void)state;
	snprintf(path, sizeof(path), "%s/resources/examples/haagent.conf", srcdir ? srcdir : "..");
	assert_int_equal(ha_config_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.cluster, "corosync");
	assert_int_equal(c.dom0_reserve_mib, 1024);
	assert_int_equal(c.max_outgoing, 2);
	assert_int_equal(c.health_failures, 3);
	assert_int_equal(c.announce_interval_s, 5);
	assert_int_equal(c.announce_heartbeat_s, 60);
	assert_string_equal(c.fence_command, "/usr/local/sbin/fence-node");
	assert_int_equal(c.nguests, 1);
	assert_string_equal(c.guests[0].name, "vm1");
	assert_string_equal(c.guests[0].preferred[0], "node2");
	assert_string_equal(c.guests[0].preferred[1], "node3");
	assert_string_equal(c.guests[0].anti_affinity, "web");
	assert_int_equal(c.guests[0].fallback, HA_FALLBACK_COLD_RESTART);
	ha_config_release(&c);
}

static void test_defaults_and_overrides(void **state)
{
	static const char text[] = "# comment only\n\n  max_incoming = 4   # trailing comment\n"
	                           "group=ha2\n[ guest  db ]\nmemory_mib = 4096\ntype = hvm\n"
	                           "preferred = n1, n2\n";
	struct ha_config c;
	char err[512];

	(void)state;
	ha_config_defaults(&c);
	assert_int_equal(ha_config_parse(text, strlen(text), "t.conf", &c, err, sizeof(err)), 0);
	assert_int_equal(c.max_incoming, 4);
	assert_int_equal(c.max_outgoing, 2);
	assert_string_equal(c.group, "ha2");
	assert_int_equal(c.nguests, 1);
	assert_int_equal(c.guests[0].memory_mib, 4096);
	assert_int_equal(c.guests[0].type, 2);
	assert_string_equal(c.guests[0].preferred[1], "n2");
	assert_int_equal(c.guests[0].fallback, HA_FALLBACK_STAY);
	assert_int_equal(c.fence_mode, 0); /* auto */
	ha_config_release(&c);
}

static void test_fence_keys(void **state)
{
	static const char text[] = "fence_mode = reservation\nnode_keys = h1=0x1234, h2=abcd\n";
	struct ha_config c;
	char err[512];

	(void)state;
	ha_config_defaults(&c);
	assert_int_equal(ha_config_parse(text, strlen(text), "t.conf", &c, err, sizeof(err)), 0);
	assert_int_equal(c.fence_mode, 2);
	assert_string_equal(c.node_keys, "h1=0x1234, h2=abcd");
	ha_config_release(&c);
}

static const struct {
	const char *text;
	const char *error;
} bad[] = {
    {"cluster = corosync\nmax_outgoin = 2\n", "t.conf:2: unknown key 'max_outgoin'"},
    {"max_outgoing = 0\n", "t.conf:1: key 'max_outgoing': '0' is not a number in 1..64"},
    {"max_outgoing = two\n", "t.conf:1: key 'max_outgoing': 'two' is not a number in 1..64"},
    {"max_outgoing = -1\n", "t.conf:1: key 'max_outgoing': '-1' is not a number"},
    {"announce_interval_s = 0\n",
     "t.conf:1: key 'announce_interval_s': '0' is not a number in 1..3600"},
    {"dom0_reserve_mib = 99999999999999999999\n", "t.conf:1: key 'dom0_reserve_mib': "},
    {"\n\nthis is not a pair\n", "t.conf:3: expected 'key = value', got 'this is not a pair'"},
    {" = 3\n", "t.conf:1: missing key before '='"},
    {"[guest vm1]\nfallback = maybe\n",
     "t.conf:2: key 'fallback': 'maybe' is not one of stay, cold-restart"},
    {"[guest vm1]\ntype = xen\n", "t.conf:2: key 'type': 'xen' is not one of pv, pvh, hvm"},
    {"fence_mode = stonith\n",
     "t.conf:1: key 'fence_mode': 'stonith' is not one of auto, command, reservation, both"},
    {"[guest vm1]\n[guest vm1]\n", "t.conf:2: section [guest vm1] appears twice"},
    {"[host a]\n", "t.conf:1: unknown section '[host a]'"},
    {"[guest vm1\n", "t.conf:1: section header '[guest vm1' must be [guest NAME]"},
    {"[guest bad/name]\n", "t.conf:1: section [guest bad/name]: not a valid guest name"},
    {"[guest vm1]\nfence_command = /bin/true\n",
     "t.conf:2: unknown key 'fence_command' in [guest vm1]"},
    {"[guest vm1]\npreferred = a b c d e\n", "t.conf:2: key 'preferred': more than 4 nodes"},
    {"[guest vm1]\nanti_affinity = a b\n", "t.conf:2: key 'anti_affinity': 'a b' is not a valid"},
    {"node_name = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
     "t.conf:1: key 'node_name': value longer than 63 characters"},
};

static void test_malformed_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ha_config c;
		char err[512];
		int rc;

		ha_config_defaults(&c);
		rc = ha_config_parse(bad[i].text, strlen(bad[i].text), "t.conf", &c, err,
		                     sizeof(err));
		if (rc != ERR_INVAL || strncmp(err, bad[i].error, strlen(bad[i].error)) != 0)
			fail_msg("case %zu: rc %d, error '%s', expected '%s...'", i, rc, err,
			         bad[i].error);
		ha_config_release(&c);
	}
}

static void test_nul_and_long_line(void **state)
{
	struct ha_config c;
	char err[512], *big;

	(void)state;
	ha_config_defaults(&c);
	assert_int_equal(ha_config_parse("group = a\0b\n", 12, "t.conf", &c, err, sizeof(err)),
	                 ERR_INVAL);
	assert_string_equal(err, "t.conf:1: NUL byte in the file");
	big = malloc(5000);
	assert_non_null(big);
	memset(big, 'x', 5000);
	assert_int_equal(ha_config_parse(big, 5000, "t.conf", &c, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "t.conf:1: line longer than 1023 characters");
	free(big);
	assert_int_equal(ha_config_load("/nonexistent/haagent.conf", &c, err, sizeof(err)),
	                 ERR_NOTFOUND);
	assert_non_null(strstr(err, "/nonexistent/haagent.conf: cannot read"));
	ha_config_release(&c);
}

/* A file whose commands would run as root may not be writable by anyone else. */
static void test_file_permissions(void **state)
{
	char path[] = "/tmp/test_ha_config.XXXXXX", err[512];
	struct ha_config c;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "cluster = sim\n", 14), 14);
	close(fd);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(ha_config_load(path, &c, err, sizeof(err)), 0);
	ha_config_release(&c);
	assert_int_equal(chmod(path, 0664), 0);
	assert_int_equal(ha_config_load(path, &c, err, sizeof(err)), ERR_PERM);
	assert_non_null(strstr(err, "writable by group or others (mode 664)"));
	assert_int_equal(chmod(path, 0646), 0);
	assert_int_equal(ha_config_load(path, &c, err, sizeof(err)), ERR_PERM);
	if (geteuid() == 0) { /* another owner: refused */
		assert_int_equal(chmod(path, 0644), 0);
		assert_int_equal(chown(path, 4242, 0), 0);
		assert_int_equal(ha_config_load(path, &c, err, sizeof(err)), ERR_PERM);
		assert_non_null(strstr(err, "owned by uid 4242, not root"));
	}
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shipped_example),   cmocka_unit_test(test_defaults_and_overrides),
	    cmocka_unit_test(test_fence_keys),        cmocka_unit_test(test_malformed_files),
	    cmocka_unit_test(test_nul_and_long_line), cmocka_unit_test(test_file_permissions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
