/*
 * Tests of haagent's executor (haagent/executor.c) on the simulated cluster
 * (haagent/cluster_sim.c): node 1 runs the real executor - claims, jobs in forked children,
 * SIGCHLD through its loop, outcomes multicast - with a test worker in the children instead
 * of real migrations (ha_exec_env.worker); nodes 2 and 3 only apply what is delivered. Every
 * job a child ran is appended to a file, so the test sees exactly what was started, when.
 */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "haagent/cluster_sim.h"
#include "haagent/executor.h"
#include "haagent/worker.h"

#define NNODES       3
#define JOB_LIMIT_MS 20000

struct tnode {
	uint32_t id;
	struct ha_state *st;
	struct cluster *cl;
	struct tctx *c;
	bool hold; /* keep what it submits in its outbox (node 1: the executor's pump) */
};

struct tctx {
	struct cl_sim_world *w;
	struct tnode nodes[NNODES + 1]; /* 1-based */
	uint64_t free_mib[NNODES + 1];
	struct loop *loop;
	struct ha_config cfg;
	struct ha_executor *ex;
};

/* What the children do: the status per job kind, the fence report. Read after fork. */
static int status_send, status_create, status_stop, status_fence, status_recv;
static const char *fence_report;
static bool with_key; /* a migration_key is configured (the default here) */
static char jobs_path[64];
static struct log_sink *capture;

/*
 * The executor asks the hypervisor whether an orphaned incoming guest is here, and what a
 * killed migration worker left of g1: nothing, g1--migratedaway, g1 suspended, g1 running.
 */
#define STATUS_KILLED (-9) /* the send worker dies of SIGKILL */
/* LEFT_SHUTDOWN_SUSPENDED: as xen lists a suspended domain (shut down for a suspend, not paused) */
static enum {
	LEFT_NONE,
	LEFT_AWAY,
	LEFT_SUSPENDED,
	LEFT_SHUTDOWN_SUSPENDED,
	LEFT_RUNNING
} left_here;
static unsigned resumes, destroys;
static bool g2_incoming_here; /* a receive worker left g2--incoming here */

static int fake_lookup(struct hv *hv, const char *name, uint32_t *domid_r)
{
	(void)hv;
	if ((left_here == LEFT_AWAY && !strcmp(name, "g1--migratedaway")) ||
	    (g2_incoming_here && !strcmp(name, "g2--incoming")) ||
	    ((left_here == LEFT_SUSPENDED || left_here == LEFT_SHUTDOWN_SUSPENDED ||
	      left_here == LEFT_RUNNING) &&
	     !strcmp(name, "g1"))) {
		*domid_r = 7;
		return 0;
	}
	return ERR_NOTFOUND;
}

static int fake_info(struct hv *hv, uint32_t domid, struct hv_domain_info *info)
{
	(void)hv;
	memset(info, 0, sizeof(*info));
	info->domid = domid;
	info->paused = left_here == LEFT_SUSPENDED;
	info->suspended = left_here == LEFT_SHUTDOWN_SUSPENDED;
	info->running = !info->paused && !info->suspended;
	return 0;
}

static int fake_resume(struct hv *hv, uint32_t domid)
{
	(void)hv;
	(void)domid;
	resumes++;
	left_here = LEFT_RUNNING;
	return 0;
}

static int fake_destroy(struct hv *hv, uint32_t domid)
{
	(void)hv;
	(void)domid;
	destroys++;
	g2_incoming_here = false;
	return 0;
}

static const struct hv_ops fake_ops = {.name = "fake",
                                       .lookup = fake_lookup,
                                       .info = fake_info,
                                       .resume = fake_resume,
                                       .destroy = fake_destroy};
static int fake_hv_storage;
#define FAKE_HV ((struct hv *)&fake_hv_storage)

/* --- the children's worker ------------------------------------------------------------------ */

static int test_worker(void *arg, const char *kind, const char *guest, uint32_t from, uint32_t to,
                       int report_fd)
{
	char line[160];
	int fd, status = HA_WORKER_FAILED;

	(void)arg;
	snprintf(line, sizeof(line), "%s %s %u>%u\n", kind, guest[0] ? guest : "-", from, to);
	fd = open(jobs_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fd_write_exact(fd, line, strlen(line)) != 0)
		return 99;
	close(fd);
	if (!strcmp(kind, "send"))
		status = status_send;
	else if (!strcmp(kind, "create"))
		status = status_create;
	else if (!strcmp(kind, "stop"))
		status = status_stop;
	else if (!strcmp(kind, "fence"))
		status = status_fence;
	else if (!strcmp(kind, "receive"))
		status = status_recv;
	if (report_fd >= 0 && fence_report &&
	    fd_write_exact(report_fd, fence_report, strlen(fence_report)) != 0)
		return 98;
	/*
	 * Exit through exec, not by returning to the executor's _exit: under valgrind the forked
	 * copy of this process would count the libraries' state (freed by their destructors at a
	 * normal exit only) as leaks and replace the status with --error-exitcode's.
	 */
	snprintf(line, sizeof(line), status == STATUS_KILLED ? "kill -9 $$" : "exit %d", status);
	execl("/bin/sh", "sh", "-c", line, (char *)NULL);
	return 97;
}

/* The jobs the children ran, one per line, in order. */
static void jobs_read(char *buf, size_t len)
{
	char *data = NULL;
	size_t n = 0;

	buf[0] = '\0';
	if (file_read_all(jobs_path, 65536, &data, &n) == 0) {
		snprintf(buf, len, "%.*s", (int)n, data);
		free(data);
	}
}

static void assert_jobs(const char *want)
{
	char got[4096];

	jobs_read(got, sizeof(got));
	if (strcmp(got, want) != 0)
		fail_msg("jobs run:\n%s\nwanted:\n%s", got[0] ? got : "(none)\n",
		         want[0] ? want : "(none)\n");
}

/* --- the cluster ----------------------------------------------------------------------------- */

/*
 * Node 1 runs g1 (unless g1_gone) and node 2 g2, node 3 nothing; a node in g1_also_on runs
 * g1 as well.
 */
static bool g1_also_on[NNODES + 1];
static bool g1_gone;

static void refresh_local(struct tnode *n)
{
	struct ha_guest_info g[2];
	size_t ng = 0;
	char name[16];

	memset(g, 0, sizeof(g));
	if (n->id != 3 && !(n->id == 1 && g1_gone)) {
		snprintf(g[ng].name, sizeof(g[ng].name), "g%u", n->id);
		g[ng++].mem_mib = 1024;
	}
	if (n->id != 1 && g1_also_on[n->id]) {
		snprintf(g[ng].name, sizeof(g[ng].name), "g1");
		g[ng++].mem_mib = 1024;
	}
	snprintf(name, sizeof(name), "node%u", n->id);
	assert_int_equal(ha_state_set_local(n->st, name, n->c->free_mib[n->id], 1024, g, ng), 0);
}

static void pump(struct tnode *n)
{
	uint8_t *buf;
	size_t len;

	while (!n->hold && ha_state_next_outgoing(n->st, &buf, &len) == 0) {
		if (n->cl)
			cl_sim_ops.send(n->cl, buf, len);
		free(buf);
	}
}

static void exec_pump(void *arg)
{
	pump(arg);
}

/* After every cluster event, as the daemon does: send, then reconcile (node 1). */
static void after_event(struct tnode *n)
{
	pump(n);
	if (n->id == 1 && n->c->ex)
		ha_exec_reconcile(n->c->ex);
}

static void cb_deliver(void *arg, uint32_t from, const void *msg, size_t len)
{
	struct tnode *n = arg;

	ha_state_deliver(n->st, from, msg, len);
	after_event(n);
}

static void cb_membership(void *arg, const uint32_t *members, size_t nm, const uint32_t *left,
                          size_t nl, const uint32_t *joined, size_t nj)
{
	struct tnode *n = arg;

	ha_state_membership(n->st, members, nm, left, nl, joined, nj);
	after_event(n);
}

static void cb_quorum(void *arg, bool quorate)
{
	struct tnode *n = arg;

	ha_state_quorum(n->st, quorate);
	after_event(n);
}

static void cb_lost(void *arg, int err)
{
	(void)arg;
	(void)err;
	fail_msg("a node lost the simulated cluster");
}

static const struct cluster_callbacks callbacks = {cb_deliver, cb_membership, cb_quorum, cb_lost};

/* A port nothing listens on now, for the executor's migration listener. */
static unsigned free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Wait for the running jobs' children to end (their SIGCHLD, through the loop). */
static void wait_jobs(struct tctx *c)
{
	int64_t deadline = loop_now_ms() + JOB_LIMIT_MS;

	while (ha_exec_running(c->ex) > 0) {
		if (loop_now_ms() > deadline)
			fail_msg("%u jobs still running after %d s", ha_exec_running(c->ex),
			         JOB_LIMIT_MS / 1000);
		loop_run_once(c->loop, 100);
	}
}

/* Deliver everything, and let every job end, until nothing happens any more. */
static void settle(struct tctx *c)
{
	for (int guard = 0; guard < 1000; guard++) {
		size_t ran = cl_sim_run(c->w, 100000);

		if (ha_exec_running(c->ex) > 0) {
			wait_jobs(c);
			continue;
		}
		if (ran == 0)
			return;
	}
	fail_msg("the cluster did not settle");
}

/* Three nodes: node 1 (the executor) runs g1, node 2 runs g2, node 3 nothing. */
static struct tctx *setup_cluster(uint64_t free1, uint64_t free2, uint64_t free3)
{
	struct tctx *c = calloc(1, sizeof(*c));
	struct ha_exec_env env;

	assert_non_null(c);
	c->free_mib[1] = free1;
	c->free_mib[2] = free2;
	c->free_mib[3] = free3;
	ha_config_defaults(&c->cfg);
	if (with_key)
		snprintf(c->cfg.migration_key, sizeof(c->cfg.migration_key),
		         "/nonexistent/test.key");
	c->cfg.migration_port = free_port();
	assert_int_equal(loop_new(&c->loop), 0);
	assert_int_equal(cl_sim_world_new(&c->w, NNODES), 0);
	for (uint32_t id = 1; id <= NNODES; id++) {
		c->nodes[id].id = id;
		c->nodes[id].c = c;
		assert_int_equal(ha_state_new(&c->nodes[id].st, id, NULL), 0);
		refresh_local(&c->nodes[id]);
	}
	env = (struct ha_exec_env){.loop = c->loop,
	                           .cfg = &c->cfg,
	                           .hv_ops = &fake_ops,
	                           .hv = FAKE_HV,
	                           .st = c->nodes[1].st,
	                           .pump = exec_pump,
	                           .arg = &c->nodes[1],
	                           .worker = test_worker};
	assert_int_equal(ha_exec_new(&c->ex, &env), 0);
	for (uint32_t id = 2; id <= NNODES; id++) {
		char addr[32];

		snprintf(addr, sizeof(addr), "127.0.0.%u", id);
		ha_exec_set_node_addr(c->ex, id, addr);
	}
	for (uint32_t id = 1; id <= NNODES; id++) {
		cl_sim_world_next_node(c->w, id);
		assert_int_equal(
		    cl_sim_ops.open(&c->nodes[id].cl, "haagent", &callbacks, &c->nodes[id]), 0);
		cl_sim_run(c->w, 100000);
	}
	settle(c);
	for (uint32_t id = 1; id <= NNODES; id++) {
		assert_true(ha_state_synced(c->nodes[id].st));
		assert_true(ha_state_quorate(c->nodes[id].st));
	}
	assert_jobs("");
	return c;
}

static void teardown_cluster(struct tctx *c)
{
	wait_jobs(c);
	ha_exec_free(c->ex);
	for (uint32_t id = 1; id <= NNODES; id++) {
		if (c->nodes[id].cl)
			cl_sim_ops.close(c->nodes[id].cl);
		ha_state_free(c->nodes[id].st);
	}
	cl_sim_world_free(c->w);
	loop_free(c->loop);
	ha_config_release(&c->cfg);
	free(c);
	unlink(jobs_path);
}

/* Node id reports what it runs now (an UPDATE, as its daemon's heartbeat would). */
static void report(struct tctx *c, uint32_t id)
{
	refresh_local(&c->nodes[id]);
	assert_true(ha_state_announce(c->nodes[id].st, true) >= 0);
	pump(&c->nodes[id]);
	settle(c);
}

/* Node by submits SET_STATE for node. */
static void mark(struct tctx *c, uint32_t by, uint32_t node, enum ha_node_state state)
{
	struct ha_msg m = {.type = HA_MSG_SET_STATE, .node = node, .state = state};

	snprintf(m.text, sizeof(m.text), "test");
	assert_int_equal(ha_state_submit(c->nodes[by].st, &m), 0);
	pump(&c->nodes[by]);
}

static const struct ha_guest_info *guest(struct tctx *c, uint32_t viewer, const char *name)
{
	const struct ha_guest_info *g = ha_state_guest(c->nodes[viewer].st, name);

	assert_non_null(g);
	return g;
}

static bool has_event(struct tctx *c, const char *needle)
{
	const struct ha_event *ev;
	size_t n = ha_state_events(c->nodes[3].st, &ev);

	for (size_t i = 0; i < n; i++)
		if (strstr(ev[i].text, needle))
			return true;
	return false;
}

static void print_events(struct tctx *c)
{
	const struct ha_event *ev;
	size_t n = ha_state_events(c->nodes[3].st, &ev);

	for (size_t i = 0; i < n; i++)
		print_message("  event: %s\n", ev[i].text);
}

/* --- tests ------------------------------------------------------------------------------------ */

/*
 * Node 1 marked failing: it claims the migration of g1 to node 2 (the node with the most
 * room), starts the job only once its claim was applied in agreed order, and reports it
 * done: g1 is node 2's on every node.
 */
static void test_migration_claimed_then_started(void **state)
{
	struct tctx *c = setup_cluster(8192, 16384, 8192);

	(void)state;
	status_send = HA_WORKER_OK;
	/* hold what node 1 sends: its claim stays undelivered */
	c->nodes[1].hold = true;
	mark(c, 2, 1, HA_NODE_FAILING);
	cl_sim_run(c->w, 100000);
	assert_int_equal(ha_state_node(c->nodes[1].st, 1)->state, HA_NODE_FAILING);
	assert_int_equal(guest(c, 1, "g1")->moving_to, 0);
	assert_int_equal(ha_exec_running(c->ex), 0);
	assert_jobs("");
	/* the claim was made: released, it is the one message on its way */
	c->nodes[1].hold = false;
	pump(&c->nodes[1]);
	assert_int_equal(cl_sim_pending(c->w), NNODES);
	assert_int_equal(ha_exec_running(c->ex), 0);
	/* the claim is applied: now the job runs (one child), then its outcome is applied */
	settle(c);
	assert_jobs("send g1 1>2\n");
	for (uint32_t id = 1; id <= NNODES; id++) {
		assert_int_equal(guest(c, id, "g1")->owner, 2);
		assert_int_equal(guest(c, id, "g1")->moving_to, 0);
	}
	assert_int_equal(ha_exec_running(c->ex), 0);
	print_events(c);
	assert_true(has_event(c, "guest g1 now runs on node2 (migrated from node1)"));
	teardown_cluster(c);
}

/* A claim the view refuses (its target failed meanwhile) starts nothing. */
static void test_refused_claim_starts_nothing(void **state)
{
	struct tctx *c = setup_cluster(8192, 16384, 8192);

	(void)state;
	status_send = HA_WORKER_OK;
	c->nodes[1].hold = true;
	mark(c, 2, 1, HA_NODE_FAILING);
	cl_sim_run(c->w, 100000);
	/* node 1 has claimed g1 -> node 2, held back; node 3 marks node 2 failing first */
	mark(c, 3, 2, HA_NODE_FAILING);
	c->nodes[1].hold = false;
	pump(&c->nodes[1]);
	cl_sim_run(c->w, 100000);
	assert_int_equal(ha_state_node(c->nodes[1].st, 2)->state, HA_NODE_FAILING);
	assert_int_equal(guest(c, 1, "g1")->moving_to, 0);
	assert_int_equal(guest(c, 1, "g1")->owner, 1);
	assert_int_equal(ha_exec_running(c->ex), 0);
	wait_jobs(c);
	assert_jobs("");
	teardown_cluster(c);
}

/* The job fails: MIG_FAILED, the guest stays; retried up to max_attempts, then it stays. */
static void test_failed_job_submits_mig_failed(void **state)
{
	struct tctx *c = setup_cluster(8192, 16384, 8192);
	const struct ha_guest_info *g;

	(void)state;
	status_send = HA_WORKER_FAILED;
	mark(c, 2, 1, HA_NODE_FAILING);
	settle(c);
	print_events(c);
	assert_true(has_event(c, "migration of guest g1 from node1 to node2 failed (1): remote "
	                         "side reported failure: the guest still runs on the source"));
	g = guest(c, 2, "g1");
	assert_int_equal(g->owner, 1);
	assert_int_equal(g->moving_to, 0);
	assert_int_equal(g->failures, PLAN_DEFAULT_MAX_ATTEMPTS);
	assert_jobs("send g1 1>2\nsend g1 1>2\nsend g1 1>2\n");
	teardown_cluster(c);
}

/*
 * The migration worker is killed (SIGKILL) after it renamed g1 away: the paused copy here may
 * be the guest's only copy or a stale one, as after a broken final handshake: reported done,
 * kept until the target reports g1 running, then dropped. Before, a killed worker counted as
 * failed: g1 stayed node 1's in the view while it ran on node 2 and its copy here stayed
 * paused forever.
 */
static void test_killed_worker_left_away_copy(void **state)
{
	struct tctx *c = setup_cluster(8192, 16384, 8192);

	(void)state;
	status_send = STATUS_KILLED;
	left_here = LEFT_AWAY;
	mark(c, 2, 1, HA_NODE_FAILING);
	settle(c);
	assert_jobs("send g1 1>2\n");
	assert_int_equal(guest(c, 3, "g1")->owner, 2);
	assert_true(log_capture_contains(capture, "was killed (signal 9)"));
	g1_also_on[2] = true;
	report(c, 2);
	wait_jobs(c);
	assert_jobs("send g1 1>2\ndrop-away g1 1>0\n");
	assert_int_equal(resumes, 0);
	g1_also_on[2] = false;
	teardown_cluster(c);
}

/*
 * Killed after it suspended g1 but before the rename: GO was never sent, so g1 is resumed here
 * at once and the move counts as failed (retried). Killed in pre-copy (g1 running): failed,
 * nothing resumed.
 */
static void killed_worker_suspended(int left)
{
	struct tctx *c = setup_cluster(8192, 16384, 8192);

	status_send = STATUS_KILLED;
	left_here = left;
	mark(c, 2, 1, HA_NODE_FAILING);
	settle(c);
	assert_int_equal(resumes, 1); /* the first attempt; the retries find it running */
	assert_int_equal(guest(c, 2, "g1")->owner, 1);
	assert_int_equal(guest(c, 2, "g1")->failures, PLAN_DEFAULT_MAX_ATTEMPTS);
	assert_jobs("send g1 1>2\nsend g1 1>2\nsend g1 1>2\n");
	assert_true(log_capture_contains(capture, "suspended but never handed over: resumed"));
	teardown_cluster(c);
}

static void test_killed_worker_suspended_or_running(void **state)
{
	(void)state;
	killed_worker_suspended(LEFT_SUSPENDED);
}

/*
 * The same on xen, which lists a suspended domain as shut down for a suspend, not paused:
 * before, the executor took it for not suspended and left it so (check-xen test 6).
 */
static void test_killed_worker_xen_suspended(void **state)
{
	(void)state;
	killed_worker_suspended(LEFT_SHUTDOWN_SUSPENDED);
}

/*
 * A receive worker killed mid-migration (g2, node 2 -> node 1, before GO) left g2--incoming
 * paused here: it is destroyed (it never ran; g2 still runs on node 2). Before, it stayed.
 */
static void test_killed_receiver_destroys_incoming(void **state)
{
	struct tctx *c = setup_cluster(16384, 8192, 1024);
	struct ha_msg m = {.type = HA_MSG_MIG_START, .from = 2, .to = 1};
	struct sockaddr_in dst = {.sin_family = AF_INET}, src = {.sin_family = AF_INET};
	int fd;

	(void)state;
	snprintf(m.guest, sizeof(m.guest), "g2");
	snprintf(m.text, sizeof(m.text), "test");
	assert_int_equal(ha_state_submit(c->nodes[2].st, &m), 0);
	pump(&c->nodes[2]);
	settle(c);
	assert_int_equal(guest(c, 1, "g2")->moving_to, 1);
	status_recv = STATUS_KILLED;
	g2_incoming_here = true;
	/* node 1's address opens its migration listener; node 2 connects from its own */
	ha_exec_set_node_addr(c->ex, 1, "127.0.0.1");
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, "127.0.0.2", &src.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr), 1);
	dst.sin_port = htons((uint16_t)c->cfg.migration_port);
	assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
	for (int64_t end = loop_now_ms() + JOB_LIMIT_MS; destroys == 0 && loop_now_ms() < end;)
		loop_run_once(c->loop, 100);
	wait_jobs(c);
	assert_jobs("receive - 2>0\n");
	assert_int_equal(destroys, 1);
	assert_false(g2_incoming_here);
	assert_true(log_capture_contains(capture, "a receive worker (a migration from node node2) "
	                                          "was killed (signal 9)"));
	assert_true(log_capture_contains(capture, "g2--incoming (domid 7), left by the killed "
	                                          "receive worker, destroyed"));
	close(fd);
	teardown_cluster(c);
}

/*
 * Past the point of no return (HA_WORKER_UNDEFINED): reported done, and the paused copy here
 * (g1--migratedaway) is kept until the target reports g1 running; then it is dropped.
 */
static void test_undefined_job_reported_done(void **state)
{
	struct tctx *c = setup_cluster(8192, 16384, 8192);

	(void)state;
	status_send = HA_WORKER_UNDEFINED;
	mark(c, 2, 1, HA_NODE_FAILING);
	settle(c);
	assert_jobs("send g1 1>2\n");
	assert_int_equal(guest(c, 3, "g1")->owner, 2);
	assert_false(guest(c, 1, "g1")->reported);
	report(c, 2); /* node 2 does not list g1 in this report, sent before it arrived */
	g1_also_on[2] = true;
	report(c, 2);
	wait_jobs(c);
	assert_jobs("send g1 1>2\ndrop-away g1 1>0\n");
	assert_int_equal(guest(c, 3, "g1")->owner, 2);
	g1_also_on[2] = false;
	teardown_cluster(c);
}

/*
 * The same, but the target does not run g1: its report drops g1 from the view, and after
 * AWAY_ABSENT_MS (10 s) without g1 the paused copy here is resumed, never before.
 */
static void test_undefined_target_lacks_it(void **state)
{
	struct tctx *c = setup_cluster(8192, 16384, 8192);
	int64_t t0, deadline;
	char got[4096] = "";

	(void)state;
	status_send = HA_WORKER_UNDEFINED;
	mark(c, 2, 1, HA_NODE_FAILING);
	settle(c);
	report(c, 2);
	assert_null(ha_state_guest(c->nodes[1].st, "g1"));
	t0 = loop_now_ms();
	deadline = t0 + 20000;
	while (!strstr(got, "resume-away") && loop_now_ms() < deadline) {
		ha_exec_reconcile(c->ex);
		loop_run_once(c->loop, 200);
		jobs_read(got, sizeof(got));
	}
	wait_jobs(c);
	assert_jobs("send g1 1>2\nresume-away g1 1>0\n");
	assert_true(loop_now_ms() - t0 >= 10000);
	teardown_cluster(c);
}

/* Without quorum, node 1 starts nothing, though its view has down nodes owning guests. */
static void test_no_job_without_quorum(void **state)
{
	static const int alone[NNODES] = {1, 0, 0};
	struct tctx *c = setup_cluster(8192, 16384, 8192);
	struct plan_action *a = NULL;
	size_t na = 0;

	(void)state;
	status_fence = HA_WORKER_OK;
	c->cfg.self_fence_s = 0; /* nothing at all, not even the self-fence check */
	cl_sim_partition(c->w, alone);
	settle(c);
	assert_false(ha_state_quorate(c->nodes[1].st));
	assert_int_equal(ha_state_node(c->nodes[1].st, 2)->state, HA_NODE_DOWN);
	assert_int_equal(ha_state_plan(c->nodes[1].st, &a, &na), ERR_NOQUORUM);
	free(a);
	/* marked failing itself (an operator on the minority side): still nothing */
	mark(c, 1, 1, HA_NODE_FAILING);
	settle(c);
	ha_exec_reconcile(c->ex);
	assert_int_equal(ha_exec_running(c->ex), 0);
	assert_jobs("");
	assert_int_equal(guest(c, 1, "g1")->owner, 1);
	assert_int_equal(guest(c, 1, "g1")->moving_to, 0);
	teardown_cluster(c);
}

/*
 * Run node 1's loop and executor until a job whose line holds needle ended ("" for any), bounded
 * by JOB_LIMIT_MS.
 */
static void wait_job(struct tctx *c, const char *needle)
{
	int64_t deadline = loop_now_ms() + JOB_LIMIT_MS;
	char got[4096];

	do {
		assert_true(loop_now_ms() < deadline);
		loop_run_once(c->loop, 100);
		ha_exec_reconcile(c->ex);
		settle(c); /* what the executor submitted is delivered, its jobs reaped */
		jobs_read(got, sizeof(got));
	} while (!got[0] || !strstr(got, needle));
}

/*
 * Without quorum for self_fence_s, the self-fence check is the one job node 1 runs (its child
 * checks the LUNs of the guests it runs: the worker here only records it); not before, and
 * no more once the quorum is back.
 */
static void test_self_fence_without_quorum(void **state)
{
	static const int alone[NNODES] = {1, 0, 0}, together[NNODES] = {0, 0, 0};
	struct tctx *c = setup_cluster(8192, 16384, 8192);
	int64_t deadline;

	(void)state;
	c->cfg.self_fence_s = 1;
	ha_exec_reconcile(c->ex);
	assert_jobs(""); /* quorate: no check */
	cl_sim_partition(c->w, alone);
	settle(c);
	assert_false(ha_state_quorate(c->nodes[1].st));
	ha_exec_reconcile(c->ex); /* the quorum loss is noted; the check waits self_fence_s */
	assert_jobs("");
	wait_job(c, "");
	assert_jobs("self-fence - 1>0\n");
	/* the quorum is back: no further check, though the period is over */
	cl_sim_partition(c->w, together);
	settle(c);
	assert_true(ha_state_quorate(c->nodes[1].st));
	deadline = loop_now_ms() + 2500; /* longer than the check's period (2 s) */
	while (loop_now_ms() < deadline) {
		loop_run_once(c->loop, 100);
		ha_exec_reconcile(c->ex);
		wait_jobs(c);
	}
	assert_jobs("self-fence - 1>0\n");
	teardown_cluster(c);
}

/*
 * votequorum's two_node keeps a node that lost its peer quorate: cut off from the others it
 * may still be fenced by them (quorate too), so alone it runs the self-fence check as a node
 * without quorum does, after self_fence_s. With a peer still there it does not: a quorate
 * node with a live peer is the side that fences, never the fenced one.
 */
static void test_self_fence_alone_with_two_node(void **state)
{
	static const int one_down[NNODES] = {0, 0, 1}, alone[NNODES] = {1, 0, 0};
	struct tctx *c = setup_cluster(8192, 16384, 8192);
	int64_t deadline;
	char got[4096];

	(void)state;
	c->cfg.self_fence_s = 1;
	status_fence = HA_WORKER_OK;
	cl_sim_set_two_node(c->w, true);
	cl_sim_partition(c->w, one_down); /* node 3 cut off; nodes 1 and 2 together */
	settle(c);
	assert_true(ha_state_quorate(c->nodes[1].st));
	deadline = loop_now_ms() + 1500; /* past self_fence_s */
	while (loop_now_ms() < deadline) {
		loop_run_once(c->loop, 100);
		ha_exec_reconcile(c->ex);
		wait_jobs(c);
	}
	jobs_read(got, sizeof(got));
	assert_null(strstr(got, "self-fence")); /* node 1 fenced node 3 instead */
	cl_sim_partition(c->w, alone);          /* now node 1 is alone, and quorate */
	settle(c);
	assert_true(ha_state_quorate(c->nodes[1].st));
	assert_true(ha_state_quorate(c->nodes[2].st));
	unlink(jobs_path);
	wait_job(c, "");
	assert_jobs("self-fence - 1>0\n");
	teardown_cluster(c);
}

/*
 * Node 2 dies: node 1 (the lowest live member) fences it; the fence job's report becomes the
 * FENCED message's text; then g2 restarts on node 1 (the most room) by a create job. A fence
 * command (a power fence) is configured: the restart does not wait.
 */
static void test_fence_job_then_restart(void **state)
{
	struct tctx *c = setup_cluster(16384, 8192, 8192);

	(void)state;
	snprintf(c->cfg.fence_command, sizeof(c->cfg.fence_command), "/usr/sbin/test-power-off");
	status_fence = HA_WORKER_OK;
	status_create = HA_WORKER_OK;
	fence_report = "node2 powered off by the test";
	cl_sim_crash(c->w, 2);
	settle(c);
	print_events(c);
	assert_jobs("fence - 2>0\ncreate g2 2>1\n");
	assert_int_equal(ha_state_node(c->nodes[3].st, 2)->state, HA_NODE_FENCED);
	assert_int_equal(guest(c, 3, "g2")->owner, 1);
	assert_false(guest(c, 3, "g2")->stopped);
	teardown_cluster(c);
}

/*
 * Fenced by reservation alone (no fence command): the fence counts at once (FENCED: a node
 * that rejoins now is handled as fenced), but g2's restart waits until node 2's self-fence
 * has had its bound (self_fence_s + 2 check periods + a LUN step's bound: 8 s here) to
 * destroy the copy still running there.
 */
static void test_restart_waits_for_self_fence(void **state)
{
	struct tctx *c = setup_cluster(16384, 8192, 8192);
	int64_t t0;

	(void)state;
	c->cfg.self_fence_s = 1;
	status_fence = HA_WORKER_OK;
	status_create = HA_WORKER_OK;
	cl_sim_crash(c->w, 2);
	t0 = loop_now_ms();
	settle(c);
	assert_jobs("fence - 2>0\n");
	assert_int_equal(ha_state_node(c->nodes[1].st, 2)->state, HA_NODE_FENCED);
	wait_job(c, "create g2");
	assert_jobs("fence - 2>0\ncreate g2 2>1\n");
	assert_true(loop_now_ms() - t0 >= 8000);
	assert_true(log_capture_contains(
	    capture, "node node2 was fenced by reservation alone: the restart of g2 waits"));
	teardown_cluster(c);
}

/* The fence fails: FENCE_FAILED with the child's report, the node stays down, nothing
 * restarts. */
static void test_fence_job_fails(void **state)
{
	struct tctx *c = setup_cluster(16384, 8192, 8192);
	const struct ha_event *ev;
	size_t n;
	bool found = false;

	(void)state;
	status_fence = HA_WORKER_FAILED;
	status_create = HA_WORKER_OK;
	fence_report = "no power switch answered";
	cl_sim_crash(c->w, 2);
	settle(c);
	assert_jobs("fence - 2>0\n");
	assert_int_equal(ha_state_node(c->nodes[3].st, 2)->state, HA_NODE_DOWN);
	assert_int_equal(guest(c, 3, "g2")->owner, 2);
	n = ha_state_events(c->nodes[3].st, &ev);
	for (size_t i = 0; i < n; i++) {
		print_message("  event: %s\n", ev[i].text);
		found = found || strstr(ev[i].text, "no power switch answered");
	}
	assert_true(found);
	assert_true(log_capture_contains(capture, "could not be fenced"));
	teardown_cluster(c);
}

/* Without a migration_key, a planned migration is not claimed, and that is logged once. */
static void test_no_migration_key(void **state)
{
	struct tctx *c;
	unsigned warnings = 0;

	(void)state;
	with_key = false;
	c = setup_cluster(8192, 16384, 8192);
	status_send = HA_WORKER_OK;
	mark(c, 2, 1, HA_NODE_FAILING);
	settle(c);
	ha_exec_reconcile(c->ex);
	assert_jobs("");
	assert_int_equal(guest(c, 3, "g1")->owner, 1);
	assert_int_equal(guest(c, 3, "g1")->moving_to, 0);
	for (size_t i = 0; i < log_capture_count(capture); i++)
		warnings +=
		    strstr(log_capture_get(capture, i), "no migration_key is configured") != NULL;
	assert_int_equal(warnings, 1);
	teardown_cluster(c);
}

/* The owner's half of a cold restart (worker.c), against a backend that reads configs. */
static unsigned opens, closes;

static int fake_open(struct hv **hv_r, struct loop *loop)
{
	(void)loop;
	*hv_r = FAKE_HV;
	opens++;
	return 0;
}

static void fake_close(struct hv *hv)
{
	assert_ptr_equal(hv, FAKE_HV);
	closes++;
}

static int fake_list(struct hv *hv, struct hv_domain_info **doms_r, size_t *n_r)
{
	assert_ptr_equal(hv, FAKE_HV); /* the worker's own connection, not the daemon's */
	assert_int_equal(opens, closes + 1);
	*doms_r = calloc(1, sizeof(**doms_r));
	if (!*doms_r)
		return ERR_NOMEM;
	snprintf((*doms_r)[0].name, sizeof((*doms_r)[0].name), "g1");
	*n_r = 1;
	return 0;
}

static int fake_config_file_json(struct hv *hv, const char *path, const char *name, char **json_r)
{
	(void)hv;
	assert_string_equal(name, "g1");
	if (strcmp(path, "/etc/xen/g1.cfg"))
		return ERR_NOTFOUND;
	*json_r = strdup("{}");
	return *json_r ? 0 : ERR_NOMEM;
}

/*
 * A guest is shut down for a cold restart only if it can be started again: without a
 * 'config', or with one the backend cannot read, it keeps running and the log says why; with
 * a readable one it is destroyed.
 */
static void test_stop_for_restart_needs_config(void **state)
{
	struct hv_ops ops = fake_ops;

	(void)state;
	ops.open = fake_open;
	ops.close = fake_close;
	ops.config_file_json = fake_config_file_json;
	left_here = LEFT_RUNNING;
	destroys = 0;
	log_capture_clear(capture);
	assert_int_equal(ha_worker_stop_for_restart(&ops, "g1", NULL, -1), HA_WORKER_FAILED);
	assert_true(log_capture_contains(capture, "cold restart of g1: not shut down here: "
	                                          "haagent.conf gives it no 'config'"));
	assert_int_equal(ha_worker_stop_for_restart(&ops, "g1", "/etc/xen/missing.cfg", -1),
	                 HA_WORKER_FAILED);
	assert_true(
	    log_capture_contains(capture, "its config /etc/xen/missing.cfg cannot be read"));
	assert_int_equal(destroys, 0);
	assert_int_equal(ha_worker_stop_for_restart(&ops, "g1", "/etc/xen/g1.cfg", -1),
	                 HA_WORKER_OK);
	assert_int_equal(destroys, 1);
	/* a backend that cannot convert configs: the file must at least be readable */
	ops.config_file_json = NULL;
	assert_int_equal(ha_worker_stop_for_restart(&ops, "g1", "/nonexistent/g1.cfg", -1),
	                 HA_WORKER_FAILED);
	assert_int_equal(destroys, 1);
	left_here = LEFT_NONE;
	/* the self-fence child lists domains through a connection it opens and closes */
	{
		struct hv_domain_info *doms = NULL;
		size_t n = 0;

		ops.list = fake_list;
		opens = closes = 0;
		assert_int_equal(ha_worker_list(&ops, &doms, &n), 0);
		assert_int_equal(n, 1);
		assert_string_equal(doms[0].name, "g1");
		assert_int_equal(opens, 1);
		assert_int_equal(closes, 1);
		free(doms);
	}
}

/*
 * Node 1 marked failing --cold (stopping): it shuts g1 down itself, with no claim and no
 * live migration, and multicasts GUEST_STOPPED; the restart is then the target's (node 2,
 * the most room) to claim. A report of node 1's that no longer lists g1, sent while the stop
 * job runs, does not drop g1 from the view (it would never be restarted).
 */
static void test_cold_evacuation_stops_here(void **state)
{
	struct tctx *c = setup_cluster(8192, 16384, 8192);
	struct plan_action *a = NULL;
	size_t na = 0;

	(void)state;
	status_stop = HA_WORKER_OK;
	status_send = HA_WORKER_OK;
	mark(c, 2, 1, HA_NODE_STOPPING);
	cl_sim_run(c->w, 100000);
	assert_int_equal(ha_state_node(c->nodes[3].st, 1)->state, HA_NODE_STOPPING);
	assert_int_equal(ha_exec_running(c->ex), 1); /* the stop job, at once: no claim */
	/* g1 is gone from node 1's hypervisor before the job's end is seen */
	g1_gone = true;
	refresh_local(&c->nodes[1]);
	assert_int_equal(ha_state_announce(c->nodes[1].st, true), 1);
	pump(&c->nodes[1]);
	cl_sim_run(c->w, 100000);
	assert_int_equal(guest(c, 3, "g1")->owner, 1);
	settle(c);
	print_events(c);
	assert_jobs("stop g1 1>2\n");
	assert_false(has_event(c, "guest g1 no longer runs on node1"));
	assert_true(has_event(c, "guest g1 shut down on node1 for a cold restart"));
	for (uint32_t id = 1; id <= NNODES; id++) {
		assert_int_equal(guest(c, id, "g1")->owner, 1);
		assert_true(guest(c, id, "g1")->stopped);
	}
	/* now the target starts it: node 2's action, not node 1's */
	assert_int_equal(ha_state_plan(c->nodes[1].st, &a, &na), 0);
	assert_int_equal(na, 1);
	assert_int_equal(a[0].kind, PLAN_COLD_RESTART);
	assert_int_equal(a[0].executor, 2);
	free(a);
	/* node 1's reports, now the job ended, leave the stopped g1 alone */
	report(c, 1);
	assert_true(guest(c, 3, "g1")->stopped);
	assert_jobs("stop g1 1>2\n");
	teardown_cluster(c);
}

/*
 * Node 2 marked failing --cold: node 2 shuts g2 down (simulated here: its GUEST_STOPPED),
 * then node 1, the target with the most room, claims the restart and starts g2 by a create
 * job; g2 is node 1's on every node. Node 1 never starts it while it may still run on 2.
 */
static void test_cold_evacuation_starts_here(void **state)
{
	struct tctx *c = setup_cluster(16384, 8192, 8192);
	struct ha_msg m = {.type = HA_MSG_GUEST_STOPPED, .from = 2};

	(void)state;
	status_create = HA_WORKER_OK;
	mark(c, 3, 2, HA_NODE_STOPPING);
	settle(c);
	assert_jobs(""); /* g2 still runs on node 2: nothing for node 1 yet */
	assert_int_equal(guest(c, 1, "g2")->moving_to, 0);
	snprintf(m.guest, sizeof(m.guest), "g2");
	snprintf(m.text, sizeof(m.text), "for a cold restart");
	assert_int_equal(ha_state_submit(c->nodes[2].st, &m), 0);
	pump(&c->nodes[2]);
	settle(c);
	print_events(c);
	assert_jobs("create g2 2>1\n");
	assert_true(has_event(c, "guest g2 now runs on node1 (restarted from node2"));
	for (uint32_t id = 1; id <= NNODES; id++) {
		assert_int_equal(guest(c, id, "g2")->owner, 1);
		assert_false(guest(c, id, "g2")->stopped);
	}
	teardown_cluster(c);
}

static int reset(void **state)
{
	(void)state;
	g1_gone = false;
	left_here = LEFT_NONE;
	resumes = destroys = 0;
	g2_incoming_here = false;
	with_key = true;
	status_send = status_create = status_stop = status_fence = status_recv = HA_WORKER_FAILED;
	fence_report = NULL;
	unlink(jobs_path);
	log_capture_clear(capture);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_migration_claimed_then_started, reset),
	    cmocka_unit_test_setup(test_refused_claim_starts_nothing, reset),
	    cmocka_unit_test_setup(test_failed_job_submits_mig_failed, reset),
	    cmocka_unit_test_setup(test_undefined_job_reported_done, reset),
	    cmocka_unit_test_setup(test_undefined_target_lacks_it, reset),
	    cmocka_unit_test_setup(test_killed_worker_left_away_copy, reset),
	    cmocka_unit_test_setup(test_killed_worker_suspended_or_running, reset),
	    cmocka_unit_test_setup(test_killed_worker_xen_suspended, reset),
	    cmocka_unit_test_setup(test_killed_receiver_destroys_incoming, reset),
	    cmocka_unit_test_setup(test_no_job_without_quorum, reset),
	    cmocka_unit_test_setup(test_self_fence_without_quorum, reset),
	    cmocka_unit_test_setup(test_self_fence_alone_with_two_node, reset),
	    cmocka_unit_test_setup(test_restart_waits_for_self_fence, reset),
	    cmocka_unit_test_setup(test_no_migration_key, reset),
	    cmocka_unit_test_setup(test_fence_job_then_restart, reset),
	    cmocka_unit_test_setup(test_fence_job_fails, reset),
	    cmocka_unit_test_setup(test_stop_for_restart_needs_config, reset),
	    cmocka_unit_test_setup(test_cold_evacuation_stops_here, reset),
	    cmocka_unit_test_setup(test_cold_evacuation_starts_here, reset),
	};
	int rc;

	snprintf(jobs_path, sizeof(jobs_path), "/tmp/test_executor_jobs.%ld", (long)getpid());
	capture = log_sink_capture();
	log_set_sink(capture);
	log_set_level(LOGL_DEBUG);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_set_sink(NULL);
	capture->destroy(capture);
	unlink(jobs_path);
	return rc;
}
