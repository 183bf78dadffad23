/*
 * test_iscsiadm.c - kernel-initiator login (storage/iscsiadm.h) against a scripted iscsiadm:
 * the exact argument vectors run (no shell), and each failure's error.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/iscsiadm.h"

struct script {
	char transcript[2048]; /* one line per command: its argv joined by spaces */
	int exits[4];          /* exit status of command i */
	const char *outputs[4];
	unsigned ncmds;
	int device_after; /* the device exists after this many commands (-1: never) */
	unsigned sleeps;
	unsigned appear_after_sleeps; /* with device_after: also this many 100 ms polls */
	int made;                     /* iscsiadm_ensure_login's *made_r */
};

static int fake_run(void *ctx, char *const argv[], int timeout_s, char *out, size_t cap)
{
	struct script *s = ctx;
	unsigned i = s->ncmds++;

	assert_true(timeout_s > 0);
	for (unsigned a = 0; argv[a]; a++) {
		strcat(s->transcript, argv[a]);
		strcat(s->transcript, argv[a + 1] ? " " : "\n");
	}
	assert_true(i < 4);
	snprintf(out, cap, "%s", s->outputs[i] ? s->outputs[i] : "");
	return s->exits[i];
}

static int fake_exists(void *ctx, const char *path)
{
	struct script *s = ctx;

	assert_non_null(strstr(path, "/dev/disk/by-path/ip-"));
	return s->device_after >= 0 && s->ncmds >= (unsigned)s->device_after &&
	       s->sleeps >= s->appear_after_sleeps;
}

static void fake_sleep(void *ctx, int ms)
{
	struct script *s = ctx;

	assert_int_equal(ms, 100);
	s->sleeps++;
}

static struct disk_info classify(const char *spec)
{
	struct disk_info d;

	assert_int_equal(disk_classify(spec, &d), 0);
	return d;
}

#define BYPATH \
	"phy:/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2024-01.org.example:store-lun-3,xvda,w"

static struct log_sink *cap;

static int run(struct script *s, const char *spec)
{
	struct iscsiadm_ops ops = {fake_run, fake_exists, fake_sleep, s};
	struct disk_info d = classify(spec);

	log_capture_clear(cap);
	return iscsiadm_ensure_login(&ops, &d, 2, &s->made);
}

static void expect_message(const char *needle)
{
	if (!log_capture_contains(cap, needle))
		fail_msg(
		    "no message containing '%s' (got '%s')", needle,
		    log_capture_get(cap, log_capture_count(cap) ? log_capture_count(cap) - 1 : 0)
		        ? log_capture_get(cap, log_capture_count(cap) - 1)
		        : "nothing");
}

static void test_device_path(void **state)
{
	struct disk_info d = classify(BYPATH);
	char path[512];

	(void)state;
	assert_int_equal(iscsiadm_device_path(&d, path, sizeof(path)), 0);
	assert_string_equal(path, "/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-"
	                          "iqn.2024-01.org.example:store-lun-3");
	d = classify("vdev=xvdb,script=block-iscsi,target=iqn=iqn.2024-01.org.example:s,"
	             "portal=[fd00::5]:3261,lun=7");
	assert_int_equal(iscsiadm_device_path(&d, path, sizeof(path)), 0);
	assert_string_equal(path, "/dev/disk/by-path/ip-[fd00::5]:3261-iscsi-"
	                          "iqn.2024-01.org.example:s-lun-7");
	d = classify("file:/var/lib/xen/a.img,xvda,w");
	assert_int_equal(iscsiadm_device_path(&d, path, sizeof(path)), ERR_INVAL);
}

static void test_already_there(void **state)
{
	struct script s = {.device_after = 0};

	(void)state;
	assert_int_equal(run(&s, BYPATH), 0);
	assert_int_equal(s.ncmds, 0);
	assert_int_equal(s.made, 0);
}

static void test_discovery_then_login(void **state)
{
	struct script s = {.device_after = 2};

	(void)state;
	assert_int_equal(run(&s, BYPATH), 0);
	assert_string_equal(s.transcript,
	                    "iscsiadm -m discovery -t st -p 10.0.0.5:3260\n"
	                    "iscsiadm -m node -T iqn.2024-01.org.example:store -p 10.0.0.5:3260 "
	                    "--login\n");
	assert_int_equal(s.sleeps, 0);
	assert_int_equal(s.made, 1); /* a session of its own: the caller may log it out */
}

static void test_session_exists_and_udev_late(void **state)
{
	struct script s = {
	    .exits = {0, ISCSIADM_ERR_SESS_EXISTS}, .device_after = 2, .appear_after_sleeps = 5};

	(void)state;
	/* a session already exists (exit 15): fine; udev creates the device 500 ms later */
	assert_int_equal(run(&s, BYPATH), 0);
	assert_int_equal(s.ncmds, 2);
	assert_int_equal(s.sleeps, 5);
	assert_int_equal(s.made, 0); /* someone else's session: never logged out by us */
	/* the device never shows up: polled every 100 ms within the timeout, then an error */
	s = (struct script){.exits = {0, ISCSIADM_ERR_SESS_EXISTS}, .device_after = -1};
	assert_int_equal(run(&s, BYPATH), ERR_NOTFOUND);
	assert_int_equal(s.ncmds, 2);
	assert_int_equal(s.sleeps, 21); /* 0..2000 ms in 100 ms steps */
	expect_message("disk xvda: logged in to iqn.2024-01.org.example:store at 10.0.0.5:3260, "
	               "but LUN 3 has no device /dev/disk/by-path/ip-10.0.0.5:3260-iscsi-"
	               "iqn.2024-01.org.example:store-lun-3 after 2 s");
}

static void test_discovery_fails(void **state)
{
	struct script s = {.exits = {4},
	                   .outputs = {"iscsiadm: cannot make connection to "
	                               "10.0.0.5: No route to host\nmore"},
	                   .device_after = -1};

	(void)state;
	assert_int_equal(run(&s, BYPATH), ERR_IO);
	assert_int_equal(s.ncmds, 1); /* no login after a failed discovery */
	expect_message("disk xvda: iSCSI discovery at portal 10.0.0.5:3260 failed (iscsiadm exit "
	               "status): iscsiadm: cannot make connection to 10.0.0.5: No route to host; "
	               "check that the portal is reachable");
}

static void test_login_fails(void **state)
{
	struct script s = {.exits = {0, 24},
	                   .outputs = {"", "iscsiadm: initiator reported error "
	                                   "(24 - iSCSI login failed due to "
	                                   "authorization failure)"},
	                   .device_after = -1};

	(void)state;
	assert_int_equal(run(&s, BYPATH), ERR_IO);
	assert_int_equal(s.ncmds, 2);
	assert_int_equal(s.sleeps, 0);
	expect_message("disk xvda: iSCSI login to iqn.2024-01.org.example:store at portal "
	               "10.0.0.5:3260 failed (exit status 24): iscsiadm: initiator reported error "
	               "(24 - iSCSI login failed due to authorization failure); check the target's "
	               "ACL");
}

/* A session made for nothing (a refused migration) is logged out: the exact argv, errors. */
static void test_logout(void **state)
{
	struct script s = {.device_after = -1};
	struct iscsiadm_ops ops = {fake_run, fake_exists, fake_sleep, &s};
	struct disk_info d = classify(BYPATH);

	(void)state;
	log_capture_clear(cap);
	assert_int_equal(iscsiadm_logout(&ops, &d, 2), 0);
	assert_string_equal(s.transcript,
	                    "iscsiadm -m node -T iqn.2024-01.org.example:store -p 10.0.0.5:3260 "
	                    "--logout\n");
	expect_message("disk xvda: logged out of iqn.2024-01.org.example:store at 10.0.0.5:3260");
	s = (struct script){.exits = {21}, .outputs = {"iscsiadm: No matching sessions found"}};
	assert_int_equal(iscsiadm_logout(&ops, &d, 2), ERR_IO);
	expect_message("logging out of iqn.2024-01.org.example:store at 10.0.0.5:3260 failed "
	               "(exit status 21): iscsiadm: No matching sessions found");
	d = classify("file:/var/lib/xen/a.img,xvda,w");
	assert_int_equal(iscsiadm_logout(&ops, &d, 2), ERR_INVAL);
	/* the login made the session, but the LUN never appeared: made, so it can be undone */
	s = (struct script){.device_after = -1};
	assert_int_equal(run(&s, BYPATH), ERR_NOTFOUND);
	assert_int_equal(s.made, 1);
}

static void test_iscsiadm_missing(void **state)
{
	struct script s = {.exits = {ERR_NOTFOUND}, .device_after = -1};

	(void)state;
	assert_int_equal(run(&s, BYPATH), ERR_IO);
	expect_message("failed (not found)");
}

/* The real runner: execv of the program found in PATH, arguments untouched by any shell */
static void test_system_runner(void **state)
{
	char dir[] = "/tmp/xl-ext-test-iscsiadm.XXXXXX", path[128], out[256] = "";
	char prog[] = "iscsiadm", a1[] = "-m", a2[] = "a b;echo $HOME `id`";
	char *argv[] = {prog, a1, a2, NULL};
	const char *old_path = getenv("PATH");
	char *saved = old_path ? strdup(old_path) : NULL;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/iscsiadm", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\nfor a in \"$@\"; do printf '[%%s]' \"$a\"; done\necho\nexit 3\n");
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
	setenv("PATH", dir, 1);
	assert_int_equal(iscsiadm_system.run(NULL, argv, 5, out, sizeof(out)), 3);
	assert_string_equal(out, "[-m][a b;echo $HOME `id`]\n");
	assert_int_equal(iscsiadm_system.exists(NULL, path), 1);
	unlink(path);
	rmdir(dir);
	if (saved)
		setenv("PATH", saved, 1);
	free(saved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_device_path),
	    cmocka_unit_test(test_already_there),
	    cmocka_unit_test(test_discovery_then_login),
	    cmocka_unit_test(test_session_exists_and_udev_late),
	    cmocka_unit_test(test_discovery_fails),
	    cmocka_unit_test(test_login_fails),
	    cmocka_unit_test(test_logout),
	    cmocka_unit_test(test_iscsiadm_missing),
	    cmocka_unit_test(test_system_runner),
	};

	int rc;

	cap = log_sink_capture();
	log_set_sink(cap);
	log_set_level(LOGL_INFO); /* the logout's confirmation is an info line */
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	return rc;
}
