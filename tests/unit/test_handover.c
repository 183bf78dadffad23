/*
 * Tests of the storage hand-over in the migration handshake (xl-ext/migration/handover.c),
 * the parts that need no iSCSI target: the sender's request, its judgment of the receiver's
 * answer and final message, the --json report, and the receiver's prepare/go/abort on
 * requests that are malformed, oversized, empty, or name LUNs nobody serves.
 *
 * A LUN "nobody serves" is a portal on a loopback port this test holds bound but never
 * listens on: a build with libiscsi fails to log in at once (connection refused), a build
 * without it does not try. The expectations that differ are under XLEXT_HAVE_ISCSI, as in
 * the code.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
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
#include "xl-ext/migration/handover.h"
#include "xl-ext/storage/iscsiadm.h"
#include "xl-ext/storage/owner.h"

#define IQN "iqn.2020-01.org.example:unit"

static struct log_sink *capture;
static int dead_fd = -1;     /* bound, never listening: connections are refused */
static unsigned dead_port;   /* its port */
static char iscsi_spec[256]; /* a writable block-iscsi disk on that portal */
static char iscsi_url[256];  /* its URL */

/* --- helpers ------------------------------------------------------------------------------- */

/* Classified disks from specs (NULL-terminated); free with mig_disks_dispose. */
static void make_disks(struct mig_disks *d, const char *const *specs)
{
	unsigned n = 0;

	while (specs[n])
		n++;
	memset(d, 0, sizeof(*d));
	d->info = calloc(n ? n : 1, sizeof(*d->info));
	d->verdict = calloc(n ? n : 1, sizeof(*d->verdict));
	assert_non_null(d->info);
	assert_non_null(d->verdict);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(disk_classify(specs[i], &d->info[i]), 0);
		d->verdict[i] = MIG_DISK_UNCHECKED;
	}
	d->n = n;
}

static json_object *parse(const char *s)
{
	json_object *o = json_tokener_parse(s);

	if (!o)
		fail_msg("not JSON: '%s'", s ? s : "(null)");
	return o;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no '%s' in %s", key, json_object_to_json_string(o));
	return v;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	if (!json_object_is_type(v, json_type_string))
		fail_msg("'%s' is not a string in %s", key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

static void key_text(uint64_t key, char buf[20])
{
	snprintf(buf, 20, "0x%016llx", (unsigned long long)key);
}

/* This host's key as hostid.c derives it (XLEXT_HOST is set by main). */
static uint64_t host_key(const char *host)
{
	uint64_t key;

	assert_int_equal(own_host_key(host, NULL, &key), 0);
	return key;
}

/* A sender for domain g1 over disks, whose request was built for no LUN: the LUN entries
 * of the answers below are judged against disks as they are when the answer comes. */
static struct ho_sender *sender_for(struct mig_disks *d)
{
	struct ho_sender *s = NULL;
	unsigned n = d->n;

	d->n = 0;
	assert_int_equal(ho_sender_new("g1", "h2", d, 0, &s), 0);
	d->n = n;
	return s;
}

/* --- the sender's request ----------------------------------------------------------------- */

static void test_request_without_iscsi_disks(void **state)
{
	static const char *const specs[] = {"file:/var/lib/xen/images/g1.iso,xvdc:cdrom,r",
	                                    "file:/var/lib/xen/images/g1.img,xvda,w", NULL};
	struct mig_disks d;
	struct ho_sender *s = NULL;
	json_object *req, *luns;
	char kb[20];

	(void)state;
	make_disks(&d, specs);
	assert_int_equal(ho_sender_new("g1", "h2", &d, 0, &s), 0);
	assert_non_null(s);
	req = parse(ho_sender_request(s));
	assert_string_equal(get_str(req, "domain"), "g1");
	assert_string_equal(get_str(req, "source_host"), "unit-src");
	key_text(host_key("unit-src"), kb);
	assert_string_equal(get_str(req, "source_key"), kb);
	luns = get(req, "luns");
	assert_true(json_object_is_type(luns, json_type_array));
	assert_int_equal(json_object_array_length(luns), 0);
	json_object_put(req);
	ho_sender_free(s);
	mig_disks_dispose(&d);
}

/* XLEXT_PR_KEY overrides the derived key; a malformed one refuses (named in the log). */
static void test_request_key_from_environment(void **state)
{
	static const char *const none[] = {NULL};
	struct mig_disks d;
	struct ho_sender *s = NULL;
	json_object *req;

	(void)state;
	make_disks(&d, none);
	setenv("XLEXT_PR_KEY", "0xabc123", 1);
	assert_int_equal(ho_sender_new("g1", "h2", &d, 0, &s), 0);
	req = parse(ho_sender_request(s));
	assert_string_equal(get_str(req, "source_key"), "0x0000000000abc123");
	json_object_put(req);
	ho_sender_free(s);
	s = NULL;
	setenv("XLEXT_PR_KEY", "not-a-key", 1);
	assert_int_equal(ho_sender_new("g1", "h2", &d, 0, &s), ERR_INVAL);
	assert_null(s);
	assert_true(log_capture_contains(capture, "XLEXT_PR_KEY='not-a-key'"));
	unsetenv("XLEXT_PR_KEY");
	mig_disks_dispose(&d);
}

/* An iSCSI disk whose portal refuses: with libiscsi the request cannot be built (the
 * destination could not compare identities); without it the LUN is left out, warned. */
static void test_request_iscsi_disk_unreachable(void **state)
{
	const char *specs[] = {iscsi_spec, NULL};
	struct mig_disks d;
	struct ho_sender *s = NULL;
	int rc;

	(void)state;
	make_disks(&d, specs);
	assert_int_equal(d.info[0].kind, DISK_ISCSI);
	rc = ho_sender_new("g1", "h2", &d, 0, &s);
#ifdef XLEXT_HAVE_ISCSI
	assert_int_not_equal(rc, 0);
	assert_null(s);
	assert_true(log_capture_contains(capture, "cannot read the LUN's identity"));
#else
	json_object *req;

	assert_int_equal(rc, 0);
	req = parse(ho_sender_request(s));
	assert_int_equal(json_object_array_length(get(req, "luns")), 0);
	assert_true(log_capture_contains(capture, "built without libiscsi"));
	json_object_put(req);
	ho_sender_free(s);
#endif
	mig_disks_dispose(&d);
}

/* Towards stock xl: no LUN this host holds. No iSCSI disk, or an unreadable one: passes. */
static void test_not_stranded(void **state)
{
	static const char *const local[] = {"file:/var/lib/xen/images/g1.img,xvda,w", NULL};
	const char *iscsi[] = {iscsi_spec, NULL};
	struct mig_disks d;

	(void)state;
	make_disks(&d, local);
	assert_int_equal(ho_check_not_stranded("g1", "h2", &d, 0), 0);
	mig_disks_dispose(&d);
	make_disks(&d, iscsi);
	assert_int_equal(ho_check_not_stranded("g1", "h2", &d, 0), 0);
#ifdef XLEXT_HAVE_ISCSI
	assert_true(log_capture_contains(capture, "cannot read the reservation of"));
#endif
	mig_disks_dispose(&d);
}

/* --- ready: the sender judges the receiver's answer ---------------------------------------- */

/* tmpl with every @URL@ replaced by the iSCSI disk's URL, into out. */
static void substitute_url(char *out, size_t len, const char *tmpl)
{
	size_t off = 0;

	while (*tmpl && off + 1 < len) {
		if (strncmp(tmpl, "@URL@", 5) == 0) {
			off += (size_t)snprintf(out + off, len - off, "%s", iscsi_url);
			tmpl += 5;
		} else {
			out[off++] = *tmpl++;
		}
	}
	assert_true(off < len);
	out[off] = '\0';
}

struct answer_case {
	const char *answer; /* @URL@: the iSCSI disk's URL */
	int rc;
	enum mig_disk_verdict verdict; /* of the iSCSI disk */
	const char *log;               /* in the log, or NULL */
};

static void test_ready_judges_answers(void **state)
{
	static const struct answer_case cases[] = {
	    {"{\"ok\":true,\"dest_host\":\"h2\",\"dest_key\":\"0x2\",\"luns\":[]}", 0,
	     MIG_DISK_UNCHECKED, NULL},
	    {"{\"ok\":true,\"luns\":[{\"url\":\"@URL@\",\"ok\":true,\"verified\":true}]}", 0,
	     MIG_DISK_VERIFIED, NULL},
	    {"{\"ok\":true,\"luns\":[{\"url\":\"@URL@\",\"ok\":true,\"verified\":null}]}", 0,
	     MIG_DISK_UNCHECKED, NULL},
	    /* refused, with the receiver's reasons */
	    {"{\"ok\":false,\"dest_host\":\"h2\",\"luns\":[{\"url\":\"@URL@\",\"ok\":false,"
	     "\"verified\":false,\"why\":\"another LUN here\"}]}",
	     ERR_MISMATCH, MIG_DISK_MISMATCH, "another LUN here"},
	    {"{\"ok\":false,\"dest_host\":\"h2\",\"luns\":[{\"url\":\"@URL@\",\"ok\":false,"
	     "\"verified\":true,\"why\":\"reserved by a third host\"}]}",
	     ERR_CONFLICT, MIG_DISK_VERIFIED, "reserved by a third host"},
	    {"{\"ok\":false,\"luns\":[{\"url\":\"@URL@\",\"ok\":false}]}", ERR_CONFLICT,
	     MIG_DISK_UNCHECKED, "cannot be handed over to host ? (h2): ?"},
	    {"{\"ok\":false}", ERR_REMOTE, MIG_DISK_UNCHECKED, NULL},
	    {"{\"ok\":false,\"luns\":[]}", ERR_REMOTE, MIG_DISK_UNCHECKED, NULL},
	    /* malformed or incomplete: refused, never a crash */
	    {"", ERR_PROTO, MIG_DISK_UNCHECKED, "is not xl-ext's JSON"},
	    {"not json", ERR_PROTO, MIG_DISK_UNCHECKED, "is not xl-ext's JSON"},
	    {"{\"ok\":tru", ERR_PROTO, MIG_DISK_UNCHECKED, NULL},
	    {"[]", ERR_PROTO, MIG_DISK_UNCHECKED, NULL},
	    {"\"ok\"", ERR_PROTO, MIG_DISK_UNCHECKED, NULL},
	    {"{}", ERR_PROTO, MIG_DISK_UNCHECKED, NULL},
	    {"{\"luns\":[]}", ERR_PROTO, MIG_DISK_UNCHECKED, NULL},
	    {"{\"ok\":\"false\"}", ERR_PROTO, MIG_DISK_UNCHECKED, NULL},
	    {"{\"ok\":1}", ERR_PROTO, MIG_DISK_UNCHECKED, NULL},
	    {"{\"ok\":null}", ERR_PROTO, MIG_DISK_UNCHECKED, NULL},
	    /* LUN entries of the wrong shape are ignored; the answer's ok decides */
	    {"{\"ok\":true,\"luns\":\"@URL@\"}", 0, MIG_DISK_UNCHECKED, NULL},
	    {"{\"ok\":true,\"luns\":[1,null,\"x\",{\"url\":7},{\"ok\":false}]}", 0,
	     MIG_DISK_UNCHECKED, NULL},
	    {"{\"ok\":false,\"luns\":[1,null,{\"url\":null}]}", ERR_REMOTE, MIG_DISK_UNCHECKED,
	     NULL},
	};
	const char *specs[] = {"file:/var/lib/xen/images/g1.img,xvda,w", iscsi_spec, NULL};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mig_disks d;
		struct ho_sender *s;
		char answer[1024];
		int rc;

		make_disks(&d, specs);
		s = sender_for(&d);
		log_capture_clear(capture);
		substitute_url(answer, sizeof(answer), cases[i].answer);
		rc = ho_ext_ops.ready(s, answer);
		if (rc != cases[i].rc)
			fail_msg("answer '%s': %s, want %s", answer, err_name(rc),
			         err_name(cases[i].rc));
		if (d.verdict[1] != cases[i].verdict)
			fail_msg("answer '%s': verdict %d, want %d", answer, d.verdict[1],
			         cases[i].verdict);
		assert_int_equal(d.verdict[0], MIG_DISK_UNCHECKED); /* the local disk */
		if (cases[i].log && !log_capture_contains(capture, cases[i].log))
			fail_msg("answer '%s': no '%s' in the log", answer, cases[i].log);
		ho_sender_free(s);
		mig_disks_dispose(&d);
	}
}

/* --- final and the --json report ----------------------------------------------------------- */

/* The report of a sender whose answer and final message were these (either may be NULL). */
static json_object *report_after(const char *answer, const char *final, bool call_final,
                                 json_object **disks_r)
{
	const char *specs[] = {"file:/var/lib/xen/images/g1.img,xvda,w", iscsi_spec, NULL};
	struct mig_disks d;
	struct ho_sender *s;
	json_object *report = json_object_new_object();

	make_disks(&d, specs);
	s = sender_for(&d);
	if (answer)
		ho_ext_ops.ready(s, answer);
	if (call_final)
		ho_ext_ops.final(s, final);
	*disks_r = mig_disks_json(&d);
	ho_sender_report(s, *disks_r, report);
	ho_sender_free(s);
	mig_disks_dispose(&d);
	return report;
}

static json_object *ownership(json_object *disks, size_t i)
{
	json_object *v = NULL;

	json_object_object_get_ex(json_object_array_get_idx(disks, i), "ownership", &v);
	return v;
}

static void test_final_and_report(void **state)
{
	char answer[1024], final[1024], kb[20];
	json_object *report, *disks, *h, *o;

	(void)state;
	snprintf(answer, sizeof(answer),
	         "{\"ok\":true,\"dest_host\":\"h2\",\"dest_key\":\"0x0000000000000002\","
	         "\"luns\":[{\"url\":\"%s\",\"ok\":true,\"verified\":true,\"registered\":true,"
	         "\"holder_before\":\"0x0000000000000001\",\"why\":\"registered\"}]}",
	         iscsi_url);
	snprintf(final, sizeof(final),
	         "{\"luns\":[{\"url\":\"%s\",\"handover\":\"done\","
	         "\"preempted\":\"0x0000000000000001\",\"holder\":\"0x0000000000000002\","
	         "\"keys\":[\"0x0000000000000002\"]}],\"preempt_ms\":3.5}",
	         iscsi_url);
	report = report_after(answer, final, true, &disks);
	h = get(report, "handover");
	assert_string_equal(get_str(h, "source_host"), "unit-src");
	key_text(host_key("unit-src"), kb);
	assert_string_equal(get_str(h, "source_key"), kb);
	assert_string_equal(get_str(h, "dest_host"), "h2");
	assert_string_equal(get_str(h, "dest_key"), "0x0000000000000002");
	assert_true(json_object_get_double(get(h, "preempt_ms")) == 3.5);
	/* the local disk has no ownership; the LUN has the whole story */
	assert_null(ownership(disks, 0));
	o = ownership(disks, 1);
	assert_non_null(o);
	assert_true(json_object_get_boolean(get(o, "registered")));
	assert_string_equal(get_str(o, "handover"), "done");
	assert_string_equal(get_str(o, "holder_before"), "0x0000000000000001");
	assert_string_equal(get_str(o, "preempted_key"), "0x0000000000000001");
	assert_string_equal(get_str(o, "holder_after"), "0x0000000000000002");
	assert_int_equal(json_object_array_length(get(o, "keys_after")), 1);
	assert_string_equal(get_str(o, "why"), "registered");
	assert_true(get(json_object_array_get_idx(disks, 1), "identity_verified") != NULL);
	json_object_put(disks);
	json_object_put(report);
}

/* A failed hand-over in the final message: an error in the log, "failed" in the report. */
static void test_final_failed_handover(void **state)
{
	char answer[1024], final[1024];
	json_object *report, *disks, *o;

	(void)state;
	snprintf(answer, sizeof(answer), "{\"ok\":true,\"luns\":[{\"url\":\"%s\",\"ok\":true}]}",
	         iscsi_url);
	snprintf(final, sizeof(final),
	         "{\"luns\":[{\"url\":\"%s\",\"handover\":\"failed\",\"why\":\"PREEMPT "
	         "refused\"}]}",
	         iscsi_url);
	log_capture_clear(capture);
	report = report_after(answer, final, true, &disks);
	assert_true(log_capture_contains(capture, "was not handed over: PREEMPT refused"));
	o = ownership(disks, 1);
	assert_string_equal(get_str(o, "handover"), "failed");
	assert_string_equal(get_str(o, "why"), "PREEMPT refused");
	assert_null(get(o, "holder_after"));
	json_object_put(disks);
	json_object_put(report);
}

/* No final message, a malformed one, one without LUNs: no crash, the report says so. */
static void test_final_missing_or_malformed(void **state)
{
	static const char *const finals[] = {
	    NULL, "", "garbage", "{}", "[]", "{\"luns\":5}", "{\"luns\":[1,null,{\"url\":3}]}"};
	char answer[1024];

	(void)state;
	snprintf(answer, sizeof(answer), "{\"ok\":true,\"luns\":[{\"url\":\"%s\",\"ok\":true}]}",
	         iscsi_url);
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		json_object *report, *disks, *h, *o;

		log_capture_clear(capture);
		report = report_after(answer, finals[i], true, &disks);
		h = get(report, "handover");
		assert_false(json_object_object_get_ex(h, "preempt_ms", NULL));
		o = ownership(disks, 1);
		assert_non_null(o);
		/* asked, answered, never finished */
		assert_string_equal(get_str(o, "handover"), "not done");
		assert_null(get(o, "holder_after"));
		assert_null(get(o, "preempted_key"));
		if (finals[i] && !log_capture_contains(capture, "has no list of LUNs") &&
		    strstr(finals[i], "luns\":[") == NULL)
			fail_msg("final '%s': no warning", finals[i]);
		json_object_put(disks);
		json_object_put(report);
	}
}

/*
 * The destination registered for the LUN, then sent no final message (it died before its
 * preempt, say): the log names the LUN, this host's key and the operator's step.
 */
static void test_final_missing_names_the_step(void **state)
{
	char answer[1024], want[1280], kb[20];
	json_object *report, *disks;

	(void)state;
	snprintf(answer, sizeof(answer),
	         "{\"ok\":true,\"luns\":[{\"url\":\"%s\",\"ok\":true,\"registered\":true}]}",
	         iscsi_url);
	key_text(host_key("unit-src"), kb);
	report = report_after(answer, NULL, true, &disks);
	snprintf(want, sizeof(want),
	         "h2 may not have taken %s over: if 'xl-ext pr %s show' lists this host's key %s, "
	         "run 'xl-ext pr %s fence %s' on the destination",
	         iscsi_url, iscsi_url, kb, iscsi_url, kb);
	if (!log_capture_contains(capture, want))
		fail_msg("no '%s' in the log", want);
	json_object_put(disks);
	json_object_put(report);
	/* not registered there: nothing to take over, nothing said */
	snprintf(answer, sizeof(answer),
	         "{\"ok\":true,\"luns\":[{\"url\":\"%s\",\"ok\":true,\"registered\":false}]}",
	         iscsi_url);
	log_capture_clear(capture);
	report = report_after(answer, NULL, true, &disks);
	assert_false(log_capture_contains(capture, "may not have taken"));
	json_object_put(disks);
	json_object_put(report);
}

/* The report before any answer (the receiver never answered): nothing invented. */
static void test_report_without_answer(void **state)
{
	json_object *report, *disks, *h, *o;

	(void)state;
	report = report_after(NULL, NULL, false, &disks);
	h = get(report, "handover");
	assert_null(get(h, "dest_host"));
	assert_null(get(h, "dest_key"));
	o = ownership(disks, 1);
	assert_string_equal(get_str(o, "handover"), "not asked");
	assert_null(get(o, "registered"));
	assert_null(get(o, "holder_before"));
	json_object_put(disks);
	json_object_put(report);
}

/* --- the receiver --------------------------------------------------------------------------- */

/* prepare(request) on a fresh receiver: its result, the answer checked to be JSON. */
static int prepare(const char *request, json_object **answer_r, struct ho_receiver **r_r)
{
	struct ho_receiver *r = NULL;
	char *answer = NULL;
	int rc;

	assert_int_equal(ho_receiver_new(0, &r), 0);
	rc = ho_ext_ops.prepare(r, request, &answer);
	if (!answer)
		fail_msg("request '%.80s': no answer", request);
	*answer_r = parse(answer);
	free(answer);
	/* the answer always says who would take the LUNs over, and whether it agrees */
	assert_string_equal(get_str(*answer_r, "dest_host"), "unit-src");
	if (json_object_get_boolean(get(*answer_r, "ok")) != (rc == 0))
		fail_msg("request '%.80s': rc %s but ok %s", request, err_name(rc),
		         json_object_to_json_string(get(*answer_r, "ok")));
	if (r_r)
		*r_r = r;
	else
		ho_receiver_free(r);
	return rc;
}

static void test_prepare_malformed_requests(void **state)
{
	static const char *const requests[] = {
	    "",
	    "not json",
	    "{",
	    "[]",
	    "42",
	    "{}",
	    "{\"luns\":[]}",                                        /* no source key */
	    "{\"source_key\":\"0x1\"}",                             /* no LUN list */
	    "{\"source_key\":\"0x1\",\"luns\":{}}",                 /* not a list */
	    "{\"source_key\":\"0x1\",\"luns\":\"x\"}",              /* not a list */
	    "{\"source_key\":\"zz\",\"luns\":[]}",                  /* not a key */
	    "{\"source_key\":\"0x0\",\"luns\":[]}",                 /* key 0 */
	    "{\"source_key\":1,\"luns\":[]}",                       /* not a string */
	    "{\"source_key\":\"0x12345678901234567\",\"luns\":[]}", /* 17 digits */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		json_object *answer;
		int rc = prepare(requests[i], &answer, NULL);

		if (rc != ERR_PROTO)
			fail_msg("request '%s': %s, not ERR_PROTO", requests[i], err_name(rc));
		assert_false(json_object_get_boolean(get(answer, "ok")));
		json_object_put(answer);
	}
}

/* No LUN: nothing to hand over, agreed; go reports an empty list. */
static void test_prepare_empty_then_go(void **state)
{
	struct ho_receiver *r;
	json_object *answer, *fin;
	char *final = NULL;

	(void)state;
	assert_int_equal(prepare("{\"domain\":\"g1\",\"source_host\":\"h1\","
	                         "\"source_key\":\"0x1\",\"luns\":[]}",
	                         &answer, &r),
	                 0);
	assert_int_equal(json_object_array_length(get(answer, "luns")), 0);
	assert_int_equal(ho_ext_ops.received(r), 0);
	assert_int_equal(ho_ext_ops.go(r, &final), 0);
	assert_non_null(final);
	fin = parse(final);
	assert_int_equal(json_object_array_length(get(fin, "luns")), 0);
	assert_true(json_object_is_type(get(fin, "preempt_ms"), json_type_double));
	json_object_put(fin);
	free(final);
	json_object_put(answer);
	ho_receiver_free(r);
}

/* A LUN nobody serves: refused with libiscsi (cannot log in), "not checked" without. */
static void test_prepare_unreachable_lun_then_abort(void **state)
{
	struct ho_receiver *r;
	json_object *answer, *l;
	char request[1024];
	int rc;

	(void)state;
	snprintf(request, sizeof(request),
	         "{\"domain\":\"g1\",\"source_host\":\"h1\",\"source_key\":\"0x1\",\"luns\":"
	         "[{\"url\":\"%s\",\"spec\":\"%s\",\"readonly\":false,\"identity\":{}}]}",
	         iscsi_url, iscsi_spec);
	rc = prepare(request, &answer, &r);
	assert_int_equal(json_object_array_length(get(answer, "luns")), 1);
	l = json_object_array_get_idx(get(answer, "luns"), 0);
	assert_string_equal(get_str(l, "url"), iscsi_url);
	assert_false(json_object_get_boolean(get(l, "registered")));
#ifdef XLEXT_HAVE_ISCSI
	assert_int_not_equal(rc, 0);
	assert_false(json_object_get_boolean(get(l, "ok")));
	assert_non_null(strstr(get_str(l, "why"), "cannot log in"));
#else
	assert_int_equal(rc, 0);
	assert_true(json_object_get_boolean(get(l, "ok")));
	assert_null(get(l, "verified"));
	assert_non_null(strstr(get_str(l, "why"), "without libiscsi"));
#endif
	/* the migration fails: abort undoes prepare, twice is harmless, then free */
	ho_ext_ops.abort(r);
	ho_ext_ops.abort(r);
	json_object_put(answer);
	ho_receiver_free(r);
}

/*
 * The source holds the LUN's reservation and this host has no session to register on: a
 * build without libiscsi must refuse, not answer "not checked" (after GO the guest's writes
 * here would be refused). With libiscsi the LUN nobody serves is refused at the login.
 */
static void test_prepare_held_lun_without_session(void **state)
{
	struct ho_receiver *r;
	json_object *answer, *l;
	char request[1024];
	int rc;

	(void)state;
	snprintf(request, sizeof(request),
	         "{\"domain\":\"g1\",\"source_host\":\"h1\",\"source_key\":\"0x1\",\"luns\":"
	         "[{\"url\":\"%s\",\"spec\":\"%s\",\"readonly\":false,\"identity\":{},"
	         "\"holder\":\"0x0000000000000001\"}]}",
	         iscsi_url, iscsi_spec);
	rc = prepare(request, &answer, &r);
	l = json_object_array_get_idx(get(answer, "luns"), 0);
	assert_int_not_equal(rc, 0);
	assert_false(json_object_get_boolean(get(l, "ok")));
	assert_false(json_object_get_boolean(get(answer, "ok")));
	assert_false(json_object_get_boolean(get(l, "registered")));
#ifndef XLEXT_HAVE_ISCSI
	assert_non_null(strstr(get_str(l, "why"), "cannot take over the reservation key "
	                                          "0x0000000000000001 holds"));
#endif
	ho_ext_ops.abort(r);
	json_object_put(answer);
	ho_receiver_free(r);
}

/* A scripted iscsiadm for a kernel receiver: what it ran, and whether the device exists. */
struct fake_adm {
	char transcript[1024];
	int session; /* the target's session exists (made before, or by a login) */
};

static int adm_run(void *ctx, char *const argv[], int timeout_s, char *out, size_t cap)
{
	struct fake_adm *f = ctx;

	(void)timeout_s;
	for (unsigned a = 0; argv[a]; a++) {
		strcat(f->transcript, a == 2 ? argv[a] : "");
		strcat(f->transcript, argv[a + 1] ? "" : " ");
		if (!strcmp(argv[a], "--login") || !strcmp(argv[a], "--logout")) {
			strcat(f->transcript, argv[a] + 2);
			strcat(f->transcript, " ");
			f->session = !strcmp(argv[a], "--login");
		}
	}
	snprintf(out, cap, "%s", "");
	return 0;
}

static int adm_exists(void *ctx, const char *path)
{
	(void)path;
	return ((struct fake_adm *)ctx)->session;
}

static void adm_sleep(void *ctx, int ms)
{
	(void)ctx;
	(void)ms;
}

/*
 * A kernel (xen) receiver refusing a by-path LUN after logging in to its target for it (the
 * device cannot be used here): abort logs out the session it made, and only that one; a
 * session that existed before is left alone.
 */
static void test_kernel_receiver_logs_out_what_it_made(void **state)
{
	struct fake_adm f = {.session = 0};
	struct iscsiadm_ops adm = {adm_run, adm_exists, adm_sleep, &f};
	struct ho_receiver *r = NULL;
	char request[1024], *answer = NULL;

	(void)state;
	snprintf(request, sizeof(request),
	         "{\"domain\":\"g1\",\"source_host\":\"h1\",\"source_key\":\"0x1\",\"luns\":"
	         "[{\"url\":\"iscsi://127.0.0.1:%u/" IQN "/1\",\"spec\":\"phy:/dev/disk/by-path/"
	         "ip-127.0.0.1:%u-iscsi-" IQN
	         "-lun-1,xvda,w\",\"readonly\":false,\"identity\":{}}]}",
	         dead_port, dead_port);
	assert_int_equal(ho_receiver_new(1, &r), 0);
	ho_receiver_set_iscsiadm(r, &adm);
	assert_int_not_equal(ho_ext_ops.prepare(r, request, &answer), 0);
	assert_non_null(strstr(answer, "the kernel initiator's device"));
	free(answer);
	assert_string_equal(f.transcript, "discovery node login ");
	ho_ext_ops.abort(r);
	assert_string_equal(f.transcript, "discovery node login node logout ");
	assert_int_equal(f.session, 0);
	ho_ext_ops.abort(r); /* twice: nothing more */
	assert_string_equal(f.transcript, "discovery node login node logout ");
	ho_receiver_free(r);
	/* the session existed before: used, refused, never logged out */
	f = (struct fake_adm){.session = 1};
	answer = NULL;
	assert_int_equal(ho_receiver_new(1, &r), 0);
	ho_receiver_set_iscsiadm(r, &adm);
	assert_int_not_equal(ho_ext_ops.prepare(r, request, &answer), 0);
	free(answer);
	ho_ext_ops.abort(r);
	assert_string_equal(f.transcript, "");
	ho_receiver_free(r);
}

/* LUN entries that are not LUNs: refused, whichever the build, before anything is opened. */
static void test_prepare_malformed_luns(void **state)
{
	char big_url[1200], request[1600];
	const char *entries[] = {"{}",
	                         "null",
	                         "7",
	                         "{\"url\":\"nonsense\"}",
	                         "{\"url\":\"/dev/null\",\"spec\":\"phy:/dev/null,xvda,w\"}",
	                         "{\"url\":5}",
	                         big_url};

	(void)state;
	memset(big_url, 0, sizeof(big_url));
	snprintf(big_url, sizeof(big_url), "{\"url\":\"iscsi://127.0.0.1:%u/" IQN ":", dead_port);
	memset(big_url + strlen(big_url), 'x', 900);
	strcat(big_url, "/0\"}");
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
		json_object *answer, *l;
		int rc;

		snprintf(request, sizeof(request), "{\"source_key\":\"0x1\",\"luns\":[%s]}",
		         entries[i]);
		rc = prepare(request, &answer, NULL);
		if (rc != ERR_PROTO)
			fail_msg("LUN entry '%.60s': %s, not ERR_PROTO", entries[i], err_name(rc));
		l = json_object_array_get_idx(get(answer, "luns"), 0);
		assert_false(json_object_get_boolean(get(l, "ok")));
		assert_false(json_object_get_boolean(get(l, "registered")));
		assert_non_null(strstr(get_str(l, "why"), "no iscsi:// URL"));
		json_object_put(answer);
	}
}

/* More LUNs than the receiver handles: refused, not handed over in part. */
static void test_prepare_too_many_luns(void **state)
{
	size_t cap = 64 * 1024, off;
	char *request = malloc(cap);
	json_object *answer;
	int rc;

	(void)state;
	assert_non_null(request);
	off = (size_t)snprintf(request, cap, "{\"source_key\":\"0x1\",\"luns\":[");
	for (int i = 0; i < 17; i++)
		off += (size_t)snprintf(request + off, cap - off,
		                        "%s{\"url\":\"iscsi://127.0.0.1:%u/" IQN "/%d\","
		                        "\"spec\":\"vdev=xvd%c,script=block-iscsi,target=iqn=" IQN
		                        ",portal=127.0.0.1:%u,lun=%d\",\"readonly\":true}",
		                        i ? "," : "", dead_port, i, 'b' + i, dead_port, i);
	snprintf(request + off, cap - off, "]}");
	rc = prepare(request, &answer, NULL);
	if (rc != ERR_NOTSUP)
		fail_msg("17 LUNs: %s, not ERR_NOTSUP: %s", err_name(rc),
		         json_object_to_json_string(answer));
	assert_int_equal(json_object_array_length(get(answer, "luns")), 0);
	assert_true(log_capture_contains(capture, "names 17 LUNs"));
	json_object_put(answer);
	free(request);
}

/* --- setup ---------------------------------------------------------------------------------- */

static int clear_log(void **state)
{
	(void)state;
	log_capture_clear(capture);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_request_without_iscsi_disks, clear_log),
	    cmocka_unit_test_setup(test_request_key_from_environment, clear_log),
	    cmocka_unit_test_setup(test_request_iscsi_disk_unreachable, clear_log),
	    cmocka_unit_test_setup(test_not_stranded, clear_log),
	    cmocka_unit_test_setup(test_ready_judges_answers, clear_log),
	    cmocka_unit_test_setup(test_final_and_report, clear_log),
	    cmocka_unit_test_setup(test_final_failed_handover, clear_log),
	    cmocka_unit_test_setup(test_final_missing_or_malformed, clear_log),
	    cmocka_unit_test_setup(test_final_missing_names_the_step, clear_log),
	    cmocka_unit_test_setup(test_report_without_answer, clear_log),
	    cmocka_unit_test_setup(test_prepare_malformed_requests, clear_log),
	    cmocka_unit_test_setup(test_prepare_empty_then_go, clear_log),
	    cmocka_unit_test_setup(test_prepare_unreachable_lun_then_abort, clear_log),
	    cmocka_unit_test_setup(test_prepare_held_lun_without_session, clear_log),
	    cmocka_unit_test_setup(test_kernel_receiver_logs_out_what_it_made, clear_log),
	    cmocka_unit_test_setup(test_prepare_malformed_luns, clear_log),
	    cmocka_unit_test_setup(test_prepare_too_many_luns, clear_log),
	};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int rc;

	setenv("XLEXT_HOST", "unit-src", 1);
	unsetenv("XLEXT_PR_KEY");
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dead_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (dead_fd < 0 || bind(dead_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(dead_fd, (struct sockaddr *)&sa, &len) < 0) {
		perror("test_handover: cannot bind a loopback port");
		return 1;
	}
	dead_port = ntohs(sa.sin_port);
	snprintf(iscsi_spec, sizeof(iscsi_spec),
	         "vdev=xvdb,script=block-iscsi,target=iqn=" IQN ",portal=127.0.0.1:%u", dead_port);
	snprintf(iscsi_url, sizeof(iscsi_url), "iscsi://127.0.0.1:%u/" IQN "/0", dead_port);
	capture = log_sink_capture();
	log_set_sink(capture);
	log_set_level(LOGL_DEBUG);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_set_sink(NULL);
	capture->destroy(capture);
	close(dead_fd);
	return rc;
}
