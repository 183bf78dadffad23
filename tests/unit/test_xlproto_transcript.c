/*
 * Byte-exact transcripts of xl's migration handshake through mig_send and mig_receive
 * (xl-ext/migration/handshake.c), over a socketpair, with a fake struct hv_ops: the peer's bytes
 * are hand-built from the documented format (DESIGN.md), as stock xl migrate / migrate-receive send
 * them, and what our side writes is compared byte for byte. Every failure branch.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/migration/handshake.h"
#include "xl-ext/migration/xlproto.h"

#define STREAM "LIBXL-V2-STREAM-BYTES"
#define CONFIG "{\"c_info\":{\"name\":\"vm1\"}}"

/* --- the fake backend: records calls, returns scripted codes ----------------------------- */

static char calls[1024];
static int rc_send, rc_receive, rc_rename, rc_unpause, rc_resume, rc_destroy;
static bool vm1_exists;
static struct log_sink *capture;

static void record(const char *fmt, ...)
{
	va_list ap;
	size_t l = strlen(calls);

	va_start(ap, fmt);
	vsnprintf(calls + l, sizeof(calls) - l, fmt, ap);
	va_end(ap);
}

static int fake_lookup(struct hv *hv, const char *name, uint32_t *domid_r)
{
	(void)hv;
	record("lookup(%s) ", name);
	if (vm1_exists && !strcmp(name, "vm1")) {
		*domid_r = 3;
		return 0;
	}
	return ERR_NOTFOUND;
}

static int fake_rename(struct hv *hv, uint32_t domid, const char *o, const char *n)
{
	(void)hv;
	record("rename(%u,%s,%s) ", domid, o, n);
	return rc_rename;
}

static int fake_unpause(struct hv *hv, uint32_t domid)
{
	(void)hv;
	record("unpause(%u) ", domid);
	return rc_unpause;
}

static int fake_destroy(struct hv *hv, uint32_t domid)
{
	(void)hv;
	record("destroy(%u) ", domid);
	return rc_destroy;
}

static int fake_resume(struct hv *hv, uint32_t domid)
{
	(void)hv;
	record("resume(%u) ", domid);
	return rc_resume;
}

static int fake_send_stream(struct hv *hv, uint32_t domid, int fd, const struct mig_params *p,
                            struct mig_report *rep)
{
	(void)hv;
	(void)rep;
	record("send_stream(%u,debug=%d) ", domid, p->debug);
	if (rc_send)
		return rc_send;
	return write(fd, STREAM, strlen(STREAM)) == (ssize_t)strlen(STREAM) ? 0 : ERR_IO;
}

static int fake_receive_stream(struct hv *hv, int fd, const char *name, const char *json,
                               const struct mig_params *p, struct mig_report *rep,
                               uint32_t *domid_r)
{
	char buf[sizeof(STREAM)] = "";

	(void)hv;
	(void)rep;
	record("receive_stream(%s,%s,debug=%d) ", name, json, p->debug);
	if (rc_receive)
		return rc_receive;
	if (read(fd, buf, strlen(STREAM)) != (ssize_t)strlen(STREAM) || strcmp(buf, STREAM))
		return ERR_PROTO;
	*domid_r = 9;
	return 0;
}

static const struct hv_ops fake_ops = {
    .name = "fake",
    .lookup = fake_lookup,
    .rename = fake_rename,
    .unpause = fake_unpause,
    .destroy = fake_destroy,
    .resume = fake_resume,
    .send_stream = fake_send_stream,
    .receive_stream = fake_receive_stream,
};

/* --- transcripts ------------------------------------------------------------------------- */

struct buf {
	uint8_t d[4096];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->d));
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void put_u32(struct buf *b, uint32_t v)
{
	put(b, &v, 4); /* xl writes host byte order; the byte-order word tells the reader */
}

/* The save-file header exactly as xl's save_domain_core_writeconfig builds it. */
static void put_header(struct buf *b, const char *json)
{
	uint32_t len = (uint32_t)strlen(json) + 1;

	put(b, "Xen saved domain, xl format\n \0 \r", 32);
	put_u32(b, 0x01020304);
	put_u32(b, (1u << 0) | (1u << 1)); /* JSON | STREAMv2 */
	put_u32(b, 0);                     /* optional flags */
	put_u32(b, 4 + len);               /* optional data length */
	put_u32(b, len);
	put(b, json, len);
}

#define BANNER "xl migration receiver ready, send binary domain data.\n"
#define READY  "domain received, ready to unpause"
#define GO     "domain is yours, you are cleared to unpause"
#define REPORT "my copy unpause results are as follows"

static int sp[2];

static int setup(void **state)
{
	(void)state;
	calls[0] = '\0';
	rc_send = rc_receive = rc_rename = rc_unpause = rc_resume = rc_destroy = 0;
	vm1_exists = false;
	log_capture_clear(capture);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	return 0;
}

/* Load the peer's bytes; eof: the peer then closes its sending side. */
static void peer_says(const struct buf *b, bool eof)
{
	assert_int_equal(write(sp[1], b->d, b->n), (ssize_t)b->n);
	if (eof)
		shutdown(sp[1], SHUT_WR);
}

/* Everything our side wrote, compared byte for byte. */
static void expect_we_said(const struct buf *want)
{
	struct buf got = {.n = 0};
	ssize_t n;

	shutdown(sp[0], SHUT_WR);
	while ((n = read(sp[1], got.d + got.n, sizeof(got.d) - got.n)) > 0)
		got.n += (size_t)n;
	if (got.n != want->n || memcmp(got.d, want->d, want->n)) {
		print_message("got %zu bytes, want %zu\n", got.n, want->n);
		fail_msg("transcript differs");
	}
}

static int run_send(enum mig_result *result, bool debug)
{
	struct mig_send_args a = {
	    .ops = &fake_ops,
	    .domid = 7,
	    .name = "vm1",
	    .config_json = CONFIG,
	    .send_fd = sp[0],
	    .recv_fd = sp[0],
	    .peer = "node2",
	    .reply_timeout_ms = 2000,
	};
	struct mig_report rep;

	a.params.debug = debug;
	return mig_send(&a, &rep, result);
}

/* What our sender writes up to and including the stream. */
static void sender_prefix(struct buf *b)
{
	put_header(b, CONFIG);
	put(b, STREAM, strlen(STREAM));
}

static void test_send_ok(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	enum mig_result r;

	(void)state;
	put(&in, BANNER, strlen(BANNER)); /* no NUL */
	put(&in, READY, sizeof(READY));
	put(&in, REPORT, sizeof(REPORT));
	put(&in, "\0", 1);
	peer_says(&in, false);
	assert_int_equal(run_send(&r, true), 0);
	assert_int_equal(r, MIG_OK);
	sender_prefix(&out);
	put(&out, GO, sizeof(GO));
	expect_we_said(&out);
	assert_string_equal(calls, "send_stream(7,debug=1) rename(7,vm1,vm1--migratedaway) "
	                           "destroy(7) ");
}

static void test_send_target_fails(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	enum mig_result r;

	(void)state;
	put(&in, BANNER, strlen(BANNER));
	put(&in, READY, sizeof(READY));
	put(&in, REPORT, sizeof(REPORT));
	put(&in, "\x03", 1);      /* xl sends -rc of libxl's ERROR_FAIL */
	put(&in, GO, sizeof(GO)); /* permission for the sender to resume */
	peer_says(&in, false);
	assert_int_equal(run_send(&r, false), ERR_REMOTE);
	assert_int_equal(r, MIG_FAILED_TARGET);
	sender_prefix(&out);
	put(&out, GO, sizeof(GO));
	expect_we_said(&out);
	/* waits for GO back, renames back, resumes */
	assert_string_equal(calls, "send_stream(7,debug=0) rename(7,vm1,vm1--migratedaway) "
	                           "rename(7,vm1--migratedaway,vm1) resume(7) ");
	assert_true(log_capture_contains(capture, "reports startup failure (status code 3)"));
}

static void test_send_target_fails_no_go_back(void **state)
{
	struct buf in = {.n = 0};
	enum mig_result r;

	(void)state;
	put(&in, BANNER, strlen(BANNER));
	put(&in, READY, sizeof(READY));
	put(&in, REPORT, sizeof(REPORT));
	put(&in, "\x03", 1);
	peer_says(&in, true); /* and then nothing: not resumed, state undefined */
	assert_int_not_equal(run_send(&r, false), 0);
	assert_int_equal(r, MIG_FAILED_UNDEFINED);
	assert_string_equal(calls, "send_stream(7,debug=0) rename(7,vm1,vm1--migratedaway) ");
}

static void test_send_io_error_after_go(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	enum mig_result r;

	(void)state;
	put(&in, BANNER, strlen(BANNER));
	put(&in, READY, sizeof(READY));
	peer_says(&in, true); /* the connection dies after GO: no report */
	assert_int_not_equal(run_send(&r, false), 0);
	assert_int_equal(r, MIG_FAILED_UNDEFINED);
	sender_prefix(&out);
	put(&out, GO, sizeof(GO));
	expect_we_said(&out);
	/* neither resumed nor destroyed here */
	assert_string_equal(calls, "send_stream(7,debug=0) rename(7,vm1,vm1--migratedaway) ");
	/* a clear message naming both ends */
	assert_true(log_capture_contains(capture, "domain state is now undefined"));
	assert_true(log_capture_contains(capture, "vm1 to node2"));
	assert_true(log_capture_contains(capture, "Check BOTH hosts"));
	assert_true(log_capture_contains(capture, "vm1--migratedaway"));
}

static void test_send_suspend_timeout(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	enum mig_result r;

	(void)state;
	put(&in, BANNER, strlen(BANNER));
	peer_says(&in, false);
	rc_send = ERR_TIMEOUT;
	assert_int_equal(run_send(&r, false), ERR_TIMEOUT);
	assert_int_equal(r, MIG_FAILED_NO_RESUME);
	put_header(&out, CONFIG);
	expect_we_said(&out);
	assert_string_equal(calls, "send_stream(7,debug=0) "); /* no resume, as xl */
}

static void test_send_stream_fails_resumes(void **state)
{
	struct buf in = {.n = 0};
	enum mig_result r;

	(void)state;
	put(&in, BANNER, strlen(BANNER));
	peer_says(&in, false);
	rc_send = ERR_IO;
	assert_int_equal(run_send(&r, false), ERR_IO);
	assert_int_equal(r, MIG_FAILED_RESUMED);
	assert_string_equal(calls, "send_stream(7,debug=0) resume(7) ");
}

static void test_send_receiver_gives_up(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	enum mig_result r;

	(void)state;
	/* xl migrate-receive exits when creating the domain fails: EOF instead of "ready" */
	put(&in, BANNER, strlen(BANNER));
	peer_says(&in, true);
	assert_int_not_equal(run_send(&r, false), 0);
	assert_int_equal(r, MIG_FAILED_RESUMED);
	sender_prefix(&out);
	expect_we_said(&out); /* no GO */
	assert_string_equal(calls, "send_stream(7,debug=0) resume(7) ");
}

static void test_send_rename_fails(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	enum mig_result r;

	(void)state;
	put(&in, BANNER, strlen(BANNER));
	put(&in, READY, sizeof(READY));
	peer_says(&in, false);
	rc_rename = ERR_EXISTS;
	assert_int_not_equal(run_send(&r, false), 0);
	assert_int_equal(r, MIG_FAILED_RESUMED);
	sender_prefix(&out);
	expect_we_said(&out); /* no GO: the target never may run it */
	assert_string_equal(calls, "send_stream(7,debug=0) rename(7,vm1,vm1--migratedaway) "
	                           "resume(7) ");
}

static void test_send_bad_banner(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	enum mig_result r;

	(void)state;
	put(&in, "xl migration receiver ready, send binary domain data.\0", 54);
	peer_says(&in, false);
	assert_int_equal(run_send(&r, false), ERR_PROTO);
	expect_we_said(&out);           /* nothing sent */
	assert_string_equal(calls, ""); /* domain untouched */
	assert_true(log_capture_contains(capture, "the domain was not touched"));
}

/* --- receiver ---------------------------------------------------------------------------- */

static int run_receive(bool paused, uint32_t *domid)
{
	struct mig_receive_args a = {
	    .ops = &fake_ops,
	    .send_fd = sp[0],
	    .recv_fd = sp[0],
	    .paused = paused,
	};
	struct mig_report rep;

	return mig_receive(&a, &rep, domid);
}

/* What stock xl migrate sends up to the GO message. */
static void xl_sender_stream(struct buf *b)
{
	put_header(b, CONFIG);
	put(b, STREAM, strlen(STREAM));
}

static void test_receive_ok(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	uint32_t domid = 0;

	(void)state;
	xl_sender_stream(&in);
	put(&in, GO, sizeof(GO));
	peer_says(&in, false);
	assert_int_equal(run_receive(false, &domid), 0);
	assert_int_equal(domid, 9);
	put(&out, BANNER, strlen(BANNER));
	put(&out, READY, sizeof(READY));
	put(&out, REPORT, sizeof(REPORT));
	put(&out, "\0", 1);
	expect_we_said(&out);
	assert_string_equal(calls, "lookup(vm1) receive_stream(vm1--incoming," CONFIG ",debug=0) "
	                           "rename(9,vm1--incoming,vm1) unpause(9) ");
}

static void test_receive_paused(void **state)
{
	struct buf in = {.n = 0};
	uint32_t domid = 0;

	(void)state;
	xl_sender_stream(&in);
	put(&in, GO, sizeof(GO));
	peer_says(&in, false);
	assert_int_equal(run_receive(true, &domid), 0);
	assert_string_equal(calls, "lookup(vm1) receive_stream(vm1--incoming," CONFIG ",debug=0) "
	                           "rename(9,vm1--incoming,vm1) ");
}

static void test_receive_unpause_fails(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	uint32_t domid = 0;

	(void)state;
	xl_sender_stream(&in);
	put(&in, GO, sizeof(GO));
	peer_says(&in, false);
	rc_unpause = ERR_IO;
	assert_int_equal(run_receive(false, &domid), ERR_IO);
	put(&out, BANNER, strlen(BANNER));
	put(&out, READY, sizeof(READY));
	put(&out, REPORT, sizeof(REPORT));
	put(&out, "\x03", 1);      /* -ERR_IO */
	put(&out, GO, sizeof(GO)); /* destroyed our copy: the sender may resume */
	expect_we_said(&out);
	assert_string_equal(calls, "lookup(vm1) receive_stream(vm1--incoming," CONFIG ",debug=0) "
	                           "rename(9,vm1--incoming,vm1) unpause(9) destroy(9) ");
}

static void test_receive_no_go(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	uint32_t domid = 0;

	(void)state;
	xl_sender_stream(&in);
	peer_says(&in, true); /* the sender vanished before GO */
	assert_int_not_equal(run_receive(false, &domid), 0);
	put(&out, BANNER, strlen(BANNER));
	put(&out, READY, sizeof(READY));
	put(&out, REPORT, sizeof(REPORT));
	put(&out, "\x03", 1);
	put(&out, GO, sizeof(GO));
	expect_we_said(&out);
	assert_string_equal(calls, "lookup(vm1) receive_stream(vm1--incoming," CONFIG ",debug=0) "
	                           "destroy(9) ");
}

static void test_receive_restore_fails(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	uint32_t domid = 0;

	(void)state;
	xl_sender_stream(&in);
	peer_says(&in, false);
	rc_receive = ERR_IO; /* the backend cleaned up its half-created domain */
	assert_int_equal(run_receive(false, &domid), ERR_IO);
	put(&out, BANNER, strlen(BANNER)); /* then silence, as xl: the sender resumes */
	expect_we_said(&out);
	assert_string_equal(calls, "lookup(vm1) receive_stream(vm1--incoming," CONFIG ",debug=0) ");
}

static void test_receive_name_clash(void **state)
{
	struct buf in = {.n = 0}, out = {.n = 0};
	uint32_t domid = 0;

	(void)state;
	xl_sender_stream(&in);
	peer_says(&in, false);
	vm1_exists = true;
	assert_int_equal(run_receive(false, &domid), ERR_EXISTS);
	put(&out, BANNER, strlen(BANNER));
	expect_we_said(&out);
	assert_string_equal(calls, "lookup(vm1) ");
}

static void test_receive_bad_headers(void **state)
{
	static const struct {
		size_t off;
		uint8_t val;
	} corrupt[] = {
	    {0, 'x'},   /* magic */
	    {31, 0},    /* last magic byte */
	    {32, 0x01}, /* byte order 0x01020301 */
	    {36, 0x07}, /* unknown mandatory flag */
	    {36, 0x01}, /* JSON without STREAMv2 */
	    {36, 0x02}, /* STREAMv2 without the config */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++) {
		struct buf in = {.n = 0}, out = {.n = 0};
		uint32_t domid = 0;

		if (i)
			setup(NULL);
		xl_sender_stream(&in);
		in.d[corrupt[i].off] = corrupt[i].val;
		peer_says(&in, false);
		assert_int_equal(run_receive(false, &domid), ERR_PROTO);
		put(&out, BANNER, strlen(BANNER));
		expect_we_said(&out);
		assert_string_equal(calls, "");
		if (i + 1 < sizeof(corrupt) / sizeof(corrupt[0]))
			teardown(NULL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_send_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_target_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_target_fails_no_go_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_io_error_after_go, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_suspend_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_stream_fails_resumes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_receiver_gives_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_rename_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_bad_banner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive_paused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive_unpause_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive_no_go, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive_restore_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive_name_clash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive_bad_headers, setup, teardown),
	};
	int rc;

	capture = log_sink_capture();
	log_set_sink(capture);
	log_set_level(LOGL_DEBUG);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_set_sink(NULL);
	if (capture->destroy)
		capture->destroy(capture);
	return rc;
}
