/* Tests of haagent's fencing decisions (haagent/fence.c): which methods a mode selects, and
 * the reservation key of a node. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/loop.h"
#include "haagent/fence.h"
#include "haagent/worker.h"
#include "xl-ext/storage/owner.h"

#define C HA_FENCE_BY_COMMAND
#define R HA_FENCE_BY_RESERVATION

/* The decision table: mode x fence_command set x shared LUNs -> methods (0: cannot fence). */
static const struct {
	enum ha_fence_mode mode;
	bool command;
	size_t nluns;
	unsigned methods;
	const char *why; /* part of the explanation when methods is 0 */
} table[] = {
    {HA_FENCE_AUTO, true, 0, C, NULL},
    {HA_FENCE_AUTO, true, 3, C, NULL},
    {HA_FENCE_AUTO, false, 2, R, NULL},
    {HA_FENCE_AUTO, false, 0, 0, "configure fence_command"},
    {HA_FENCE_COMMAND, true, 2, C, NULL},
    {HA_FENCE_COMMAND, false, 2, 0, "no fence_command"},
    {HA_FENCE_RESERVATION, true, 1, R, NULL},
    {HA_FENCE_RESERVATION, false, 1, R, NULL},
    {HA_FENCE_RESERVATION, true, 0, 0, "no shared iSCSI LUN"},
    {HA_FENCE_BOTH, true, 1, C | R, NULL},
    {HA_FENCE_BOTH, false, 1, 0, "no fence_command"},
    {HA_FENCE_BOTH, true, 0, 0, "no shared iSCSI LUN"},
    {(enum ha_fence_mode)9, true, 1, 0, "unknown fence_mode"},
};

static void test_decision_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char why[HA_FENCE_WHY_MAX] = "";
		unsigned m = 99;
		int rc = ha_fence_methods(table[i].mode, table[i].command, table[i].nluns, &m, why,
		                          sizeof(why));

		if (m != table[i].methods || rc != (table[i].methods ? 0 : ERR_INVAL) ||
		    (table[i].why && !strstr(why, table[i].why)))
			fail_msg("row %zu (%s, command %d, %zu LUNs): methods %u rc %d why '%s', "
			         "expected %u '%s'",
			         i, ha_fence_mode_name(table[i].mode), table[i].command,
			         table[i].nluns, m, rc, why, table[i].methods,
			         table[i].why ? table[i].why : "");
	}
}

static void test_node_key(void **state)
{
	uint64_t k = 0, derived = 0;
	char why[HA_FENCE_WHY_MAX] = "";

	(void)state;
	/* not listed: derived from the name exactly as xl-ext derives a host's key */
	assert_int_equal(own_host_key("h1", NULL, &derived), 0);
	assert_int_equal(ha_fence_node_key("", "h1", &k, why, sizeof(why)), 0);
	assert_true(k == derived);
	assert_int_equal(ha_fence_node_key(NULL, "h1", &k, why, sizeof(why)), 0);
	assert_true(k == derived);
	assert_int_equal(ha_fence_node_key("h2=0x1234", "h1", &k, why, sizeof(why)), 0);
	assert_true(k == derived);
	/* listed: the explicit key */
	assert_int_equal(ha_fence_node_key("h2=0x1234, h1=abcd", "h1", &k, why, sizeof(why)), 0);
	assert_true(k == 0xabcd);
	assert_int_equal(ha_fence_node_key(" h1=0X00ff ,", "h1", &k, why, sizeof(why)), 0);
	assert_true(k == 0xff);
	/* malformed entries are refused, naming the entry */
	assert_int_equal(ha_fence_node_key("h1", "h1", &k, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "'h1': expected NAME=KEY"));
	assert_int_equal(ha_fence_node_key("h1=zz", "h1", &k, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "'h1=zz'"));
	assert_int_equal(ha_fence_node_key("h1=0", "h2", &k, why, sizeof(why)), ERR_INVAL);
	assert_int_equal(ha_fence_node_key("=12", "h2", &k, why, sizeof(why)), ERR_INVAL);
}

/* The fence command: its exit status decides, and a command that hangs is killed with what
 * it started once the bound passes (the node then counts as not fenced). */
static void test_fence_command(void **state)
{
	char cmd[256], marker[] = "/tmp/test_ha_fence.XXXXXX";
	int64_t t0;
	int fd;

	(void)state;
	assert_int_equal(ha_worker_fence("true", "h1", 5), HA_WORKER_OK);
	assert_int_equal(ha_worker_fence("false", "h1", 5), HA_WORKER_FAILED);
	assert_int_equal(ha_worker_fence("", "h1", 5), HA_WORKER_FAILED);
	/* the node name is an argument, not shell text */
	assert_int_equal(ha_worker_fence("test \"$1\" = 'h1;x' && true", "h1;x", 5), HA_WORKER_OK);
	/* a hung agent: killed after 1 s, and so is the child it started (its process group) */
	fd = mkstemp(marker);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "echo $$ >%s; sleep 30 & wait; :", marker);
	t0 = loop_now_ms();
	assert_int_equal(ha_worker_fence(cmd, "h1", 1), HA_WORKER_FAILED);
	assert_true(loop_now_ms() - t0 < 20000);
	{
		FILE *f = fopen(marker, "r");
		long pgid = 0;

		assert_non_null(f);
		assert_int_equal(fscanf(f, "%ld", &pgid), 1);
		fclose(f);
		assert_true(pgid > 1);
		/* no process of the group is left once init has reaped the killed ones */
		for (int i = 0; i < 500 && kill(-(pid_t)pgid, 0) == 0; i++)
			usleep(10000);
		assert_int_equal(kill(-(pid_t)pgid, 0), -1);
		assert_int_equal(errno, ESRCH);
	}
	unlink(marker);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decision_table),
	    cmocka_unit_test(test_node_key),
	    cmocka_unit_test(test_fence_command),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
