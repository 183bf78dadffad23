/*
 * Tests of the migration orchestrator (xl-ext/migration/orchestrator.c): mig_run against
 * mig_serve, both real, over a socketpair passed as the request's channel, with a fake
 * hypervisor backend (struct hv_ops) on each end. The fake keeps a small domain table
 * (name, running/paused/suspended) and moves a tiny stream, so every branch of the
 * handshake can be taken on purpose: each test says where the domain ends up and checks
 * that it never runs twice.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/migration/orchestrator.h"

#define MAX_DOMS     8
#define JOIN_LIMIT_S 30
#define GUEST        "g1"
#define WHERE        "the caller's channel"

/* --- the fake backend --------------------------------------------------------------------- */

enum fstate { F_RUNNING, F_PAUSED, F_SUSPENDED };

struct fdom {
	bool used;
	uint32_t domid;
	char name[HV_NAME_MAX];
	enum fstate state;
};

/* How a fake host misbehaves, chosen per test. */
enum fail_point {
	FAIL_NONE = 0,
	FAIL_INFO,
	FAIL_DISK_SPECS,
	FAIL_CONFIG,
	FAIL_SEND_IO,      /* suspends, sends half the stream, ERR_IO */
	FAIL_SEND_NOTCONV, /* live rounds do not converge: ERR_NOTCONV, not suspended */
	FAIL_SEND_TIMEOUT, /* the suspend never completes: ERR_TIMEOUT, left paused */
	FAIL_RENAME_AWAY,  /* sender: rename to --migratedaway */
	FAIL_RECEIVE,      /* receiver: reads the stream, then fails */
	FAIL_RENAME_IN,    /* receiver: rename from --incoming */
	FAIL_UNPAUSE,      /* receiver: unpause */
	CUT_BEFORE_BANNER, /* receiver: closes the channel without a word */
	CUT_AFTER_HEADER,  /* receiver: closes once it has the header */
	CUT_AFTER_STREAM,  /* receiver: closes once it has the stream */
	CUT_AFTER_GO,      /* receiver: closes once it has the GO */
	CUT_BEFORE_GO,     /* sender: its channel cannot be written once renamed away */
};

struct hv {
	const char *host;
	struct fdom doms[MAX_DOMS];
	uint32_t next_domid;
	enum fail_point fail;
	int channel; /* the receiver's end, for the cuts */
	const char *disks[4];
	unsigned resumes, destroys, creates, renames;
};

static struct log_sink *capture;

static struct fdom *dom_by_id(struct hv *hv, uint32_t domid)
{
	for (int i = 0; i < MAX_DOMS; i++)
		if (hv->doms[i].used && hv->doms[i].domid == domid)
			return &hv->doms[i];
	return NULL;
}

static struct fdom *dom_by_name(struct hv *hv, const char *name)
{
	for (int i = 0; i < MAX_DOMS; i++)
		if (hv->doms[i].used && strcmp(hv->doms[i].name, name) == 0)
			return &hv->doms[i];
	return NULL;
}

static struct fdom *dom_add(struct hv *hv, const char *name, enum fstate state)
{
	for (int i = 0; i < MAX_DOMS; i++) {
		struct fdom *d = &hv->doms[i];

		if (d->used)
			continue;
		d->used = true;
		d->domid = hv->next_domid++;
		d->state = state;
		snprintf(d->name, sizeof(d->name), "%s", name);
		return d;
	}
	return NULL;
}

static unsigned dom_count(const struct hv *hv)
{
	unsigned n = 0;

	for (int i = 0; i < MAX_DOMS; i++)
		n += hv->doms[i].used;
	return n;
}

static void cut(struct hv *hv)
{
	shutdown(hv->channel, SHUT_RDWR);
}

static int f_lookup(struct hv *hv, const char *name_or_id, uint32_t *domid_r)
{
	struct fdom *d = dom_by_name(hv, name_or_id);

	/* the receiver looks its guest up right after the header */
	if (hv->fail == CUT_AFTER_HEADER)
		cut(hv);
	if (!d)
		return ERR_NOTFOUND;
	*domid_r = d->domid;
	return 0;
}

static int f_info(struct hv *hv, uint32_t domid, struct hv_domain_info *info)
{
	struct fdom *d = dom_by_id(hv, domid);

	if (hv->fail == FAIL_INFO)
		return ERR_IO;
	if (!d)
		return ERR_NOTFOUND;
	memset(info, 0, sizeof(*info));
	info->domid = domid;
	snprintf(info->name, sizeof(info->name), "%s", d->name);
	info->type = HV_TYPE_PVH;
	info->memory_kib = 65536;
	info->vcpus = 1;
	info->running = d->state == F_RUNNING;
	info->paused = d->state != F_RUNNING;
	return 0;
}

static int f_destroy(struct hv *hv, uint32_t domid)
{
	struct fdom *d = dom_by_id(hv, domid);

	if (!d)
		return ERR_NOTFOUND;
	d->used = false;
	hv->destroys++;
	return 0;
}

static int f_unpause(struct hv *hv, uint32_t domid)
{
	struct fdom *d = dom_by_id(hv, domid);

	if (!d)
		return ERR_NOTFOUND;
	if (hv->fail == FAIL_UNPAUSE)
		return ERR_BUSY;
	d->state = F_RUNNING;
	return 0;
}

static int f_rename(struct hv *hv, uint32_t domid, const char *old_name, const char *new_name)
{
	struct fdom *d = dom_by_id(hv, domid);

	if (!d || (old_name && strcmp(d->name, old_name) != 0))
		return ERR_NOTFOUND;
	if (dom_by_name(hv, new_name))
		return ERR_EXISTS;
	if (hv->fail == CUT_AFTER_GO) /* the receiver renames right after the GO */
		cut(hv);
	if (hv->fail == CUT_BEFORE_GO && strstr(new_name, "--migratedaway"))
		shutdown(hv->channel, SHUT_WR); /* the sender's GO write fails: EPIPE */
	if ((hv->fail == FAIL_RENAME_AWAY && strstr(new_name, "--migratedaway")) ||
	    (hv->fail == FAIL_RENAME_IN && strstr(old_name, "--incoming")))
		return ERR_PERM;
	snprintf(d->name, sizeof(d->name), "%s", new_name);
	hv->renames++;
	return 0;
}

static int f_config_json(struct hv *hv, uint32_t domid, char **json_r)
{
	struct fdom *d = dom_by_id(hv, domid);
	char buf[128];

	if (hv->fail == FAIL_CONFIG || !d)
		return ERR_IO;
	snprintf(buf, sizeof(buf), "{\"name\":\"%s\",\"memory\":64}", d->name);
	*json_r = strdup(buf);
	return *json_r ? 0 : ERR_NOMEM;
}

static int f_disk_specs(struct hv *hv, uint32_t domid, struct hv_disk_specs *specs)
{
	(void)domid;
	memset(specs, 0, sizeof(*specs));
	if (hv->fail == FAIL_DISK_SPECS)
		return ERR_IO;
	for (int i = 0; i < 4 && hv->disks[i]; i++) {
		int rc = hv_disk_specs_add(specs, hv->disks[i]);

		if (rc) {
			hv_disk_specs_free(specs);
			return rc;
		}
	}
	return 0;
}

/* The fake stream: magic, the domain's name, a few pages' worth of bytes, end marker. */
#define STREAM_MAGIC "FAKESTRM"
#define STREAM_END   "FAKEEND!"
#define STREAM_PAGES 4
#define PAGE_BYTES   64

static int f_send_stream(struct hv *hv, uint32_t domid, int fd, const struct mig_params *params,
                         struct mig_report *report)
{
	struct fdom *d = dom_by_id(hv, domid);
	uint8_t pages[STREAM_PAGES * PAGE_BYTES];
	uint32_t len;
	int rc;

	if (!d)
		return ERR_NOTFOUND;
	memset(report, 0, sizeof(*report));
	report->t_start_us = loop_now_us();
	report->nr_pages = STREAM_PAGES;
	rc = fd_write_exact(fd, STREAM_MAGIC, 8);
	if (rc)
		return rc;
	if (params->cancel && *params->cancel)
		return ERR_CANCELLED; /* before the stop-and-copy: never suspended */
	if (hv->fail == FAIL_SEND_NOTCONV) {
		report->reason = "test: dirty set is not shrinking";
		return ERR_NOTCONV;
	}
	if (hv->fail == FAIL_SEND_TIMEOUT) {
		d->state = F_PAUSED; /* asked to suspend, never confirmed */
		return ERR_TIMEOUT;
	}
	report->t_pause_us = loop_now_us();
	d->state = F_SUSPENDED;
	if (hv->fail == FAIL_SEND_IO)
		return ERR_IO;
	len = (uint32_t)strlen(d->name);
	memset(pages, 0xa5, sizeof(pages));
	rc = fd_write_exact(fd, &len, sizeof(len));
	if (!rc)
		rc = fd_write_exact(fd, d->name, len);
	if (!rc)
		rc = fd_write_exact(fd, pages, sizeof(pages));
	if (!rc)
		rc = fd_write_exact(fd, STREAM_END, 8);
	/* twice the memory: the report's "x memory sent" */
	report->total_bytes = 2ull * STREAM_PAGES * 4096;
	report->t_stream_end_us = loop_now_us();
	return rc;
}

static int f_resume(struct hv *hv, uint32_t domid)
{
	struct fdom *d = dom_by_id(hv, domid);

	if (!d)
		return ERR_NOTFOUND;
	d->state = F_RUNNING;
	hv->resumes++;
	return 0;
}

static int f_receive_stream(struct hv *hv, int fd, const char *name, const char *config_json,
                            const struct mig_params *params, struct mig_report *report,
                            uint32_t *domid_r)
{
	uint8_t pages[STREAM_PAGES * PAGE_BYTES];
	char magic[8], sent_name[HV_NAME_MAX];
	struct fdom *d;
	uint32_t len;
	int rc;

	(void)params;
	(void)config_json;
	memset(report, 0, sizeof(*report));
	rc = fd_read_exact(fd, magic, sizeof(magic));
	if (!rc && memcmp(magic, STREAM_MAGIC, 8))
		rc = ERR_PROTO;
	if (!rc)
		rc = fd_read_exact(fd, &len, sizeof(len));
	if (!rc && len >= sizeof(sent_name))
		rc = ERR_PROTO;
	if (!rc)
		rc = fd_read_exact(fd, sent_name, len);
	if (!rc)
		rc = fd_read_exact(fd, pages, sizeof(pages));
	if (!rc)
		rc = fd_read_exact(fd, magic, sizeof(magic));
	if (!rc && memcmp(magic, STREAM_END, 8))
		rc = ERR_PROTO;
	if (rc)
		return rc;
	sent_name[len] = '\0';
	/* the stream is the sender's guest, created here under the incoming name */
	if (strncmp(name, sent_name, len) || strcmp(name + len, "--incoming"))
		return ERR_PROTO;
	for (size_t i = 0; i < sizeof(pages); i++)
		if (pages[i] != 0xa5)
			return ERR_CHECKSUM;
	if (hv->fail == FAIL_RECEIVE)
		return ERR_NOSPACE;
	if (hv->fail == CUT_AFTER_STREAM)
		cut(hv);
	d = dom_add(hv, name, F_PAUSED);
	if (!d)
		return ERR_NOSPACE;
	hv->creates++;
	report->nr_pages = STREAM_PAGES;
	*domid_r = d->domid;
	return 0;
}

static const struct hv_ops fake_ops = {
    .name = "fake",
    .lookup = f_lookup,
    .info = f_info,
    .destroy = f_destroy,
    .unpause = f_unpause,
    .rename = f_rename,
    .config_json = f_config_json,
    .send_stream = f_send_stream,
    .resume = f_resume,
    .receive_stream = f_receive_stream,
    .disk_specs = f_disk_specs,
};

/* --- both ends -------------------------------------------------------------------------- */

struct run {
	struct hv src, dst;
	struct mig_request req;
	struct mig_outcome out;
	volatile sig_atomic_t cancel;
	/* the receiver */
	bool serve_paused;
	pthread_t thread;
	int recv_rc;
	uint32_t recv_domid;
	struct mig_report recv_report;
	char line[512];
};

static void *receiver_thread(void *arg)
{
	struct run *r = arg;
	struct mig_serve_request sr = {.ops = &fake_ops,
	                               .hv = &r->dst,
	                               .send_fd = r->dst.channel,
	                               .recv_fd = r->dst.channel,
	                               .paused = r->serve_paused};

	r->recv_rc = ERR_IO;
	if (r->dst.fail != CUT_BEFORE_BANNER)
		r->recv_rc = mig_serve(&sr, &r->recv_report, &r->recv_domid);
	close(r->dst.channel);
	return NULL;
}

static struct run *setup_run(void)
{
	struct run *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->src.host = "src";
	r->dst.host = "dst";
	r->src.next_domid = 1;
	r->dst.next_domid = 100;
	assert_non_null(dom_add(&r->src, "other", F_RUNNING));
	assert_non_null(dom_add(&r->src, GUEST, F_RUNNING));
	mig_request_init(&r->req);
	r->req.ops = &fake_ops;
	r->req.hv = &r->src;
	r->req.domain = GUEST;
	r->req.reply_timeout_ms = 10000;
	r->req.params.cancel = &r->cancel;
	return r;
}

/* Run the migration with the receiver in a thread; both ends have finished on return. */
static void migrate(struct run *r)
{
	struct timespec limit;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r->dst.channel = sv[1];
	r->src.channel = sv[0];
	r->req.channel_fd = sv[0];
	assert_int_equal(pthread_create(&r->thread, NULL, receiver_thread, r), 0);
	mig_run(&r->req, &r->out);
	/* the sender is done: the receiver, if it still waits, sees the channel end */
	close(sv[0]);
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += JOIN_LIMIT_S;
	if (pthread_timedjoin_np(r->thread, NULL, &limit) != 0)
		fail_msg("the receiver did not finish within %d s", JOIN_LIMIT_S);
	mig_outcome_line(&r->out, r->line, sizeof(r->line));
	print_message("  %s\n", r->line);
}

static void teardown_run(struct run *r)
{
	mig_outcome_dispose(&r->out);
	free(r);
}

/* How many copies of the guest run, on both hosts together (under any name). */
static unsigned running_copies(struct run *r)
{
	unsigned n = 0;

	for (int i = 0; i < MAX_DOMS; i++) {
		struct fdom *s = &r->src.doms[i], *d = &r->dst.doms[i];

		n += s->used && s->state == F_RUNNING && strncmp(s->name, GUEST, 2) == 0;
		n += d->used && d->state == F_RUNNING && strncmp(d->name, GUEST, 2) == 0;
	}
	return n;
}

/* The guest runs on the source under its own name, and nowhere else. */
static void assert_stays_on_source(struct run *r)
{
	struct fdom *d = dom_by_name(&r->src, GUEST);

	assert_non_null(d);
	assert_int_equal(d->state, F_RUNNING);
	assert_null(dom_by_name(&r->src, GUEST "--migratedaway"));
	assert_null(dom_by_name(&r->dst, GUEST));
	assert_null(dom_by_name(&r->dst, GUEST "--incoming"));
	assert_int_equal(running_copies(r), 1);
	assert_int_equal(dom_count(&r->src), 2); /* the guest and "other" */
}

/* The one-line outcome for a failure: "Migration of g1 to ... <result text> (<error>)." */
static void assert_failure_line(struct run *r, enum mig_result result, int rc)
{
	char want[512];

	snprintf(want, sizeof(want), "Migration of %s to %s %s (%s).", GUEST, WHERE,
	         mig_result_text(result), err_str(rc));
	assert_string_equal(r->line, want);
}

/* Refused before anything was suspended: untouched, nothing resumed or renamed. */
static void assert_refused(struct run *r, int rc)
{
	assert_int_equal(r->out.rc, rc);
	assert_int_equal(r->out.result, MIG_REFUSED);
	assert_stays_on_source(r);
	assert_int_equal(r->src.resumes, 0);
	assert_int_equal(r->src.renames, 0);
	assert_int_equal(r->dst.creates, 0);
	assert_int_not_equal(r->recv_rc, 0);
	assert_failure_line(r, MIG_REFUSED, rc);
}

/* Failed after the suspend, before the point of no return: resumed here, one copy. */
static void assert_resumed(struct run *r, int rc)
{
	assert_int_equal(r->out.rc, rc);
	assert_int_equal(r->out.result, MIG_FAILED_RESUMED);
	assert_stays_on_source(r);
	assert_int_equal(r->src.resumes, 1);
	assert_int_equal(r->dst.destroys, r->dst.creates);
	assert_int_not_equal(r->recv_rc, 0);
	assert_failure_line(r, MIG_FAILED_RESUMED, rc);
}

static const char *json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* --- tests ------------------------------------------------------------------------------- */

static void test_success(void **state)
{
	struct run *r = setup_run();
	struct fdom *d;
	json_object *j, *h;
	const char *prefix = "Migration of " GUEST " to " WHERE " successful (downtime ";
	const char *suffix = " ms, 2.00 x memory sent).";
	size_t ll;

	(void)state;
	r->src.disks[0] = "file:/var/lib/xen/images/g1.iso,xvdc:cdrom,r";
	migrate(r);
	assert_int_equal(r->out.rc, 0);
	assert_int_equal(r->out.result, MIG_OK);
	assert_int_equal(r->recv_rc, 0);
	/* exactly once, running, on the destination under its own name */
	d = dom_by_name(&r->dst, GUEST);
	assert_non_null(d);
	assert_int_equal(d->state, F_RUNNING);
	assert_int_equal(r->recv_domid, d->domid);
	assert_int_equal(dom_count(&r->dst), 1);
	assert_int_equal(r->dst.creates, 1);
	/* the source copy is gone, nothing was resumed; "other" is untouched */
	assert_null(dom_by_name(&r->src, GUEST));
	assert_null(dom_by_name(&r->src, GUEST "--migratedaway"));
	assert_int_equal(r->src.destroys, 1);
	assert_int_equal(r->src.resumes, 0);
	assert_int_equal(dom_count(&r->src), 1);
	assert_int_equal(running_copies(r), 1);
	assert_string_equal(r->out.name, GUEST);
	assert_string_equal(r->out.where, WHERE);
	assert_string_equal(r->out.policy, "adaptive");
	assert_true(r->out.report.t_go_us >= r->out.report.t_ready_us);
	assert_true(r->out.report.t_end_us >= r->out.report.t_go_us);
	ll = strlen(r->line);
	assert_true(ll > strlen(prefix) + strlen(suffix));
	assert_memory_equal(r->line, prefix, strlen(prefix));
	assert_string_equal(r->line + ll - strlen(suffix), suffix);
	/* the disk was classified and is in the report */
	assert_int_equal(r->out.disks.n, 1);
	assert_int_equal(r->out.disks.info[0].kind, DISK_LOCAL);
	assert_true(r->out.disks.info[0].readonly);

	j = mig_outcome_json(&r->req, &r->out);
	assert_non_null(j);
	assert_string_equal(json_str(j, "result"), "ok");
	assert_string_equal(json_str(j, "outcome"), "ok");
	assert_string_equal(json_str(j, "domain"), GUEST);
	assert_string_equal(json_str(j, "destination"), WHERE);
	assert_string_equal(json_str(j, "backend"), "fake");
	assert_string_equal(json_str(j, "policy"), "adaptive");
	assert_string_equal(json_str(j, "on_stall"), "throttle");
	assert_true(json_object_object_get_ex(j, "error", &h));
	assert_null(h);
	/* an xl-ext peer: the hand-over ran (without LUNs) and is reported */
	assert_true(json_object_object_get_ex(j, "handover", &h));
	assert_non_null(h);
	assert_non_null(json_str(h, "source_key"));
	assert_non_null(json_str(h, "dest_key"));
	assert_true(json_object_object_get_ex(j, "disks", &h));
	assert_int_equal(json_object_array_length(h), 1);
	json_object_put(j);
	teardown_run(r);
}

/* A receiver told to leave it paused (-p): renamed, not unpaused; the source copy is gone. */
static void test_success_paused_destination(void **state)
{
	struct run *r = setup_run();
	struct fdom *d;

	(void)state;
	r->serve_paused = true;
	migrate(r);
	assert_int_equal(r->out.rc, 0);
	assert_int_equal(r->out.result, MIG_OK);
	d = dom_by_name(&r->dst, GUEST);
	assert_non_null(d);
	assert_int_equal(d->state, F_PAUSED);
	assert_null(dom_by_name(&r->dst, GUEST "--incoming"));
	assert_null(dom_by_name(&r->src, GUEST));
	assert_int_equal(r->src.destroys, 1);
	assert_int_equal(running_copies(r), 0);
	teardown_run(r);
}

static void test_unknown_domain(void **state)
{
	struct run *r = setup_run();
	char want[256];

	(void)state;
	r->req.domain = "nosuch";
	migrate(r);
	assert_int_equal(r->out.rc, ERR_NOTFOUND);
	assert_int_equal(r->out.result, MIG_REFUSED);
	assert_stays_on_source(r);
	assert_int_equal(r->src.resumes, 0);
	assert_true(log_capture_contains(capture, "domain 'nosuch' does not exist"));
	/* no name known: the line says "?" */
	snprintf(want, sizeof(want), "Migration of ? to %s %s (%s).", WHERE,
	         mig_result_text(MIG_REFUSED), err_str(ERR_NOTFOUND));
	assert_string_equal(r->line, want);
	teardown_run(r);
}

static void test_info_fails(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->src.fail = FAIL_INFO;
	migrate(r);
	r->src.fail = FAIL_NONE;
	assert_int_equal(r->out.rc, ERR_IO);
	assert_int_equal(r->out.result, MIG_REFUSED);
	assert_stays_on_source(r);
	assert_int_equal(r->src.resumes, 0);
	teardown_run(r);
}

static void test_disk_specs_fail(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->src.fail = FAIL_DISK_SPECS;
	migrate(r);
	assert_refused(r, ERR_IO);
	assert_true(log_capture_contains(capture, "cannot read its disks"));
	teardown_run(r);
}

static void test_local_disk_refused(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->src.disks[0] = "file:/var/lib/xen/images/g1.img,xvda,w";
	migrate(r);
	assert_refused(r, ERR_NOTSUP);
	assert_true(log_capture_contains(capture, "is local and writable"));
	assert_true(log_capture_contains(capture, "refused by the disk check"));
	teardown_run(r);
}

static void test_local_disk_allowed(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->src.disks[0] = "file:/var/lib/xen/images/g1.img,xvda,w";
	r->req.allow_local_disks = true;
	migrate(r);
	assert_int_equal(r->out.rc, 0);
	assert_int_equal(r->out.result, MIG_OK);
	assert_non_null(dom_by_name(&r->dst, GUEST));
	assert_null(dom_by_name(&r->src, GUEST));
	assert_int_equal(running_copies(r), 1);
	assert_true(log_capture_contains(capture, "is not moved"));
	teardown_run(r);
}

static void test_config_json_fails(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->src.fail = FAIL_CONFIG;
	migrate(r);
	assert_refused(r, ERR_IO);
	assert_true(log_capture_contains(capture, "cannot get the configuration"));
	teardown_run(r);
}

/* -C FILE with a backend that cannot convert configuration files. */
static void test_config_file_unsupported(void **state)
{
	struct run *r = setup_run();
	char path[] = "/tmp/test_orchestrator_cfgXXXXXX";
	const char *cfg = "name = \"g1\"\nmemory = 64\ndisk = [ ]\n";
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(fd_write_exact(fd, cfg, strlen(cfg)), 0);
	close(fd);
	r->req.config_file = path;
	migrate(r);
	unlink(path);
	assert_refused(r, ERR_NOTSUP);
	assert_true(log_capture_contains(capture, "cannot convert configuration files"));
	teardown_run(r);
}

/*
 * A shared iSCSI disk whose portal refuses connections (a loopback port bound, never
 * listening): with libiscsi its LUN cannot be read for the hand-over, so the migration is
 * refused before anything is suspended; without libiscsi the LUN is skipped (warned) and the
 * domain moves.
 */
static void test_iscsi_disk_unreadable(void **state)
{
	struct run *r = setup_run();
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	char spec[256];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)state;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(spec, sizeof(spec),
	         "vdev=xvdb,script=block-iscsi,target=iqn=iqn.2020-01.org.example:unit,"
	         "portal=127.0.0.1:%u",
	         ntohs(sa.sin_port));
	r->src.disks[0] = spec;
	migrate(r);
	close(fd);
	assert_int_equal(r->out.disks.n, 1);
	assert_int_equal(r->out.disks.info[0].kind, DISK_ISCSI);
#ifdef XLEXT_HAVE_ISCSI
	assert_int_not_equal(r->out.rc, 0);
	assert_refused(r, r->out.rc);
	assert_true(log_capture_contains(capture, "its disks cannot be handed over"));
#else
	assert_int_equal(r->out.rc, 0);
	assert_int_equal(r->out.result, MIG_OK);
	assert_non_null(dom_by_name(&r->dst, GUEST));
	assert_int_equal(running_copies(r), 1);
	assert_true(log_capture_contains(capture, "built without libiscsi"));
#endif
	teardown_run(r);
}

/* --dry-run asks the destination over ssh: not possible over the caller's channel. */
static void test_dry_run_over_channel(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->req.dry_run = true;
	migrate(r);
	assert_refused(r, ERR_INVAL);
	teardown_run(r);
}

static void test_send_stream_io(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->src.fail = FAIL_SEND_IO;
	migrate(r);
	assert_resumed(r, ERR_IO);
	assert_int_equal(r->dst.creates, 0);
	teardown_run(r);
}

static void test_send_stream_not_converging(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->src.fail = FAIL_SEND_NOTCONV;
	migrate(r);
	assert_resumed(r, ERR_NOTCONV);
	assert_true(log_capture_contains(capture, "test: dirty set is not shrinking"));
	teardown_run(r);
}

static void test_send_stream_cancelled(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->cancel = 1;
	migrate(r);
	assert_resumed(r, ERR_CANCELLED);
	assert_true(log_capture_contains(capture, "cancelled; the domain keeps running here"));
	teardown_run(r);
}

/* The suspend timed out: as xl, the domain is left as it is, not resumed. */
static void test_send_stream_timeout(void **state)
{
	struct run *r = setup_run();
	struct fdom *d;

	(void)state;
	r->src.fail = FAIL_SEND_TIMEOUT;
	migrate(r);
	assert_int_equal(r->out.rc, ERR_TIMEOUT);
	assert_int_equal(r->out.result, MIG_FAILED_NO_RESUME);
	assert_int_equal(r->src.resumes, 0);
	d = dom_by_name(&r->src, GUEST);
	assert_non_null(d);
	assert_int_equal(d->state, F_PAUSED);
	assert_null(dom_by_name(&r->dst, GUEST));
	assert_null(dom_by_name(&r->dst, GUEST "--incoming"));
	assert_int_equal(running_copies(r), 0);
	assert_failure_line(r, MIG_FAILED_NO_RESUME, ERR_TIMEOUT);
	teardown_run(r);
}

/* The destination already runs a domain of that name. */
static void test_receiver_name_clash(void **state)
{
	struct run *r = setup_run();

	(void)state;
	assert_non_null(dom_add(&r->dst, GUEST, F_RUNNING));
	migrate(r);
	assert_int_equal(r->recv_rc, ERR_EXISTS);
	assert_int_equal(r->out.rc, ERR_IO);
	assert_int_equal(r->out.result, MIG_REFUSED);
	assert_int_equal(r->src.resumes, 0);
	assert_int_equal(dom_by_name(&r->src, GUEST)->state, F_RUNNING);
	/* the destination's own g1 is untouched and alone */
	assert_int_equal(dom_count(&r->dst), 1);
	assert_int_equal(r->dst.creates, 0);
	assert_int_equal(r->dst.destroys, 0);
	assert_failure_line(r, MIG_REFUSED, ERR_IO);
	teardown_run(r);
}

static void test_receive_stream_fails(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->dst.fail = FAIL_RECEIVE;
	migrate(r);
	assert_int_equal(r->recv_rc, ERR_NOSPACE);
	assert_resumed(r, ERR_IO);
	assert_int_equal(r->dst.creates, 0);
	teardown_run(r);
}

static void test_sender_rename_fails(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->src.fail = FAIL_RENAME_AWAY;
	migrate(r);
	assert_resumed(r, ERR_PERM);
	/* the receiver had the copy, never got GO, and destroyed it */
	assert_int_equal(r->dst.creates, 1);
	assert_int_equal(r->dst.destroys, 1);
	assert_int_equal(dom_count(&r->dst), 0);
	teardown_run(r);
}

/* The target cannot start it: it reports failure, destroys its copy, gives GO back. */
static void check_target_failure(enum fail_point fail)
{
	struct run *r = setup_run();

	r->dst.fail = fail;
	migrate(r);
	assert_int_equal(r->out.rc, ERR_REMOTE);
	assert_int_equal(r->out.result, MIG_FAILED_TARGET);
	assert_int_not_equal(r->recv_rc, 0);
	assert_stays_on_source(r);
	assert_int_equal(r->src.resumes, 1);
	/* renamed away, then back */
	assert_int_equal(r->src.renames, 2);
	assert_int_equal(r->dst.creates, 1);
	assert_int_equal(r->dst.destroys, 1);
	assert_int_equal(dom_count(&r->dst), 0);
	assert_failure_line(r, MIG_FAILED_TARGET, ERR_REMOTE);
	assert_true(log_capture_contains(capture, "reports startup failure"));
	teardown_run(r);
}

static void test_receiver_rename_fails(void **state)
{
	(void)state;
	check_target_failure(FAIL_RENAME_IN);
}

static void test_receiver_unpause_fails(void **state)
{
	(void)state;
	check_target_failure(FAIL_UNPAUSE);
}

static void test_cut_before_banner(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->dst.fail = CUT_BEFORE_BANNER;
	migrate(r);
	assert_refused(r, ERR_IO);
	assert_true(log_capture_contains(capture, "the receiver did not answer"));
	teardown_run(r);
}

static void test_cut_after_header(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->dst.fail = CUT_AFTER_HEADER;
	migrate(r);
	assert_refused(r, ERR_IO);
	teardown_run(r);
}

static void test_cut_after_stream(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->dst.fail = CUT_AFTER_STREAM;
	migrate(r);
	assert_resumed(r, ERR_IO);
	assert_int_equal(r->dst.creates, 1);
	assert_int_equal(dom_count(&r->dst), 0);
	teardown_run(r);
}

/*
 * Past the point of no return: the sender cannot know what the target did, so it leaves its
 * copy renamed away and suspended (MIG_FAILED_UNDEFINED); the target, unable to report, keeps
 * its running copy, which is the guest (as stock xl does). Exactly one running copy.
 */
static void test_cut_after_go(void **state)
{
	struct run *r = setup_run();
	struct fdom *d;

	(void)state;
	r->dst.fail = CUT_AFTER_GO;
	migrate(r);
	assert_int_equal(r->out.rc, ERR_IO);
	assert_int_equal(r->out.result, MIG_FAILED_UNDEFINED);
	assert_int_equal(r->src.resumes, 0);
	assert_null(dom_by_name(&r->src, GUEST));
	d = dom_by_name(&r->src, GUEST "--migratedaway");
	assert_non_null(d);
	assert_int_equal(d->state, F_SUSPENDED);
	assert_int_equal(r->dst.destroys, 0);
	d = dom_by_name(&r->dst, GUEST);
	assert_non_null(d);
	assert_int_equal(d->state, F_RUNNING);
	assert_int_equal(running_copies(r), 1);
	assert_failure_line(r, MIG_FAILED_UNDEFINED, ERR_IO);
	assert_true(log_capture_contains(capture, "domain state is now undefined"));
	assert_true(log_capture_contains(capture, "must be destroyed, never resumed"));
	teardown_run(r);
}

/*
 * The GO message cannot be written: none of it left, and a receiver starts the guest only on
 * the whole message, so the sender renames its copy back and resumes it (stock xl would leave
 * both copies paused); the receiver, seeing the channel end instead of GO, destroys its copy.
 */
static void test_go_not_sent(void **state)
{
	struct run *r = setup_run();

	(void)state;
	r->src.fail = CUT_BEFORE_GO;
	migrate(r);
	assert_resumed(r, ERR_IO);
	assert_int_equal(r->src.renames, 2);
	assert_int_equal(r->dst.creates, 1);
	assert_int_equal(dom_count(&r->dst), 0);
	assert_true(log_capture_contains(capture, "cannot send the GO message"));
	teardown_run(r);
}

static void test_failure_json(void **state)
{
	struct run *r = setup_run();
	json_object *j, *v;

	(void)state;
	r->src.fail = FAIL_SEND_NOTCONV;
	migrate(r);
	j = mig_outcome_json(&r->req, &r->out);
	assert_string_equal(json_str(j, "result"), "failed");
	assert_string_equal(json_str(j, "outcome"), mig_result_text(MIG_FAILED_RESUMED));
	assert_string_equal(json_str(j, "error"), err_str(ERR_NOTCONV));
	assert_true(json_object_object_get_ex(j, "disks", &v));
	assert_int_equal(json_object_array_length(v), 0);
	/* no switch-over happened: no downtime, null rather than a made-up -1 */
	assert_true(json_object_object_get_ex(j, "downtime_ms", &v));
	assert_null(v);
	json_object_put(j);
	teardown_run(r);
}

/* Report figures are printed rounded (21.845, not 21.844999999999999). */
static void test_report_figures_rounded(void **state)
{
	struct mig_report rep = {0};
	json_object *j;
	const char *text;

	(void)state;
	rep.nr_pages = 3;
	rep.total_bytes = 4096 * 4;
	rep.t_start_us = 1000000;
	rep.t_pause_us = 1000000 + 100000;
	rep.t_suspended_us = rep.t_pause_us + 1000;
	rep.t_stream_end_us = rep.t_suspended_us + 20845;
	rep.t_end_us = rep.t_pause_us + 21845;
	j = mig_report_json(&rep);
	text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
	print_message("  %s\n", text);
	assert_non_null(strstr(text, "\"downtime_ms\":21.845,"));
	assert_non_null(strstr(text, "\"total_time_ms\":121.845,"));
	assert_non_null(strstr(text, "\"bytes_per_memory\":1.3333,"));
	assert_non_null(strstr(text, "\"target_ready\":null"));
	json_object_put(j);
}

/*
 * --mode postcopy or hybrid with a backend that has no post-copy (xen: Xen 4.17 has none), or
 * over a transport without a channel of its own: refused in one line, nothing touched.
 */
static void test_postcopy_refused(void **state)
{
	for (int k = 0; k < 2; k++) {
		struct run *r = setup_run();

		(void)state;
		log_capture_clear(capture);
		r->req.params.mode = k ? MIG_MODE_HYBRID : MIG_MODE_POSTCOPY;
		migrate(r);
		assert_refused(r, ERR_NOTSUP);
		assert_true(log_capture_contains(capture, "the fake backend has no post-copy"));
		assert_true(log_capture_contains(capture, "use --mode precopy"));
		teardown_run(r);
	}
}

static void test_result_texts(void **state)
{
	(void)state;
	assert_string_equal(mig_result_text(MIG_OK), "ok");
	assert_string_equal(mig_result_text(MIG_REFUSED), "refused; the domain was not touched");
	assert_string_equal(mig_result_text(MIG_FAILED_RESUMED),
	                    "failed; domain resumed on the source");
	assert_string_equal(mig_result_text(MIG_FAILED_TARGET),
	                    "failed at the target; domain resumed on the source");
	assert_string_equal(mig_result_text(MIG_FAILED_UNDEFINED),
	                    "failed after the point of no return; domain state undefined");
	assert_string_equal(mig_result_text(MIG_FAILED_NO_RESUME),
	                    "failed to suspend; domain left as it is");
	assert_string_equal(mig_result_text(MIG_FAILED_POSTCOPY),
	                    "post-copy failed after the switch-over; domain paused on the target "
	                    "for good");
	assert_string_equal(mig_result_text((enum mig_result)99), "?");
}

static int setup(void **state)
{
	(void)state;
	log_capture_clear(capture);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_success, setup),
	    cmocka_unit_test_setup(test_success_paused_destination, setup),
	    cmocka_unit_test_setup(test_unknown_domain, setup),
	    cmocka_unit_test_setup(test_info_fails, setup),
	    cmocka_unit_test_setup(test_disk_specs_fail, setup),
	    cmocka_unit_test_setup(test_local_disk_refused, setup),
	    cmocka_unit_test_setup(test_local_disk_allowed, setup),
	    cmocka_unit_test_setup(test_config_json_fails, setup),
	    cmocka_unit_test_setup(test_config_file_unsupported, setup),
	    cmocka_unit_test_setup(test_iscsi_disk_unreadable, setup),
	    cmocka_unit_test_setup(test_dry_run_over_channel, setup),
	    cmocka_unit_test_setup(test_send_stream_io, setup),
	    cmocka_unit_test_setup(test_send_stream_not_converging, setup),
	    cmocka_unit_test_setup(test_send_stream_cancelled, setup),
	    cmocka_unit_test_setup(test_send_stream_timeout, setup),
	    cmocka_unit_test_setup(test_receiver_name_clash, setup),
	    cmocka_unit_test_setup(test_receive_stream_fails, setup),
	    cmocka_unit_test_setup(test_sender_rename_fails, setup),
	    cmocka_unit_test_setup(test_receiver_rename_fails, setup),
	    cmocka_unit_test_setup(test_receiver_unpause_fails, setup),
	    cmocka_unit_test_setup(test_cut_before_banner, setup),
	    cmocka_unit_test_setup(test_cut_after_header, setup),
	    cmocka_unit_test_setup(test_cut_after_stream, setup),
	    cmocka_unit_test_setup(test_cut_after_go, setup),
	    cmocka_unit_test_setup(test_go_not_sent, setup),
	    cmocka_unit_test_setup(test_failure_json, setup),
	    cmocka_unit_test_setup(test_postcopy_refused, setup),
	    cmocka_unit_test(test_report_figures_rounded),
	    cmocka_unit_test(test_result_texts),
	};
	int rc;

	/* a write to a channel the other end closed fails with EPIPE, as in xl-ext */
	signal(SIGPIPE, SIG_IGN);
	/* this host's reservation key for the hand-over messages, not the build machine's */
	setenv("XLEXT_HOST", "unit-host", 1);
	unsetenv("XLEXT_PR_KEY");
	capture = log_sink_capture();
	log_set_sink(capture);
	log_set_level(LOGL_DEBUG);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_set_sink(NULL);
	capture->destroy(capture);
	return rc;
}
