/*
 * Tests of the control socket (haagent/ctl.c): request handling against a one-node
 * cluster (sim backend), bad input refused clearly, the socket's permissions and uid check.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "haagent/cluster_sim.h"
#include "haagent/ctl.h"

struct one {
	struct cl_sim_world *w;
	struct cluster *cl;
	struct ha_state *st;
};

static void pump(struct one *o)
{
	uint8_t *buf;
	size_t len;

	while (ha_state_next_outgoing(o->st, &buf, &len) == 0) {
		cl_sim_ops.send(o->cl, buf, len);
		free(buf);
	}
}

static void cb_deliver(void *arg, uint32_t from, const void *msg, size_t len)
{
	struct one *o = arg;

	ha_state_deliver(o->st, from, msg, len);
	pump(o);
}

static void cb_membership(void *arg, const uint32_t *m, size_t nm, const uint32_t *l, size_t nl,
                          const uint32_t *j, size_t nj)
{
	struct one *o = arg;

	ha_state_membership(o->st, m, nm, l, nl, j, nj);
	pump(o);
}

static void cb_quorum(void *arg, bool q)
{
	ha_state_quorum(((struct one *)arg)->st, q);
}

static const struct cluster_callbacks cbs = {cb_deliver, cb_membership, cb_quorum, NULL};

static int setup(void **state)
{
	struct one *o = calloc(1, sizeof(*o));
	struct ha_guest_info g = {.name = "vm1", .mem_mib = 512};

	assert_int_equal(cl_sim_world_new(&o->w, 1), 0);
	assert_int_equal(ha_state_new(&o->st, 1, NULL), 0);
	assert_int_equal(ha_state_set_local(o->st, "alpha", 8192, 1024, &g, 1), 0);
	cl_sim_world_next_node(o->w, 1);
	assert_int_equal(cl_sim_ops.open(&o->cl, "t", &cbs, o), 0);
	cl_sim_run(o->w, 1000);
	assert_true(ha_state_synced(o->st));
	*state = o;
	return 0;
}

static int teardown(void **state)
{
	struct one *o = *state;

	cl_sim_ops.close(o->cl);
	ha_state_free(o->st);
	cl_sim_world_free(o->w);
	free(o);
	return 0;
}

static void expect(struct one *o, const char *req, size_t len, const char *needle)
{
	char *reply = NULL;

	assert_int_equal(ha_ctl_handle(o->st, req, len, &reply), 0);
	assert_non_null(reply);
	if (!strstr(reply, needle))
		fail_msg("request '%.60s': answer '%s' lacks '%s'", req, reply, needle);
	free(reply);
}

#define EXPECT(o, req, needle) expect((o), (req), strlen(req), (needle))

static void test_garbage_refused(void **state)
{
	struct one *o = *state;
	char big[HA_CTL_REQUEST_MAX + 10];

	EXPECT(o, "", "\"error\":\"empty request\"");
	EXPECT(o, "nope", "not a JSON object");
	EXPECT(o, "{", "not a JSON object");
	EXPECT(o, "[1,2]", "not a JSON object");
	EXPECT(o, "{\"cmd\":\"status\"} trailing", "not a JSON object");
	EXPECT(o, "{\"cmd\":5}", "missing \\\"cmd\\\"");
	EXPECT(o, "{\"cmd\":\"reboot-everything\"}", "unknown command 'reboot-everything'");
	expect(o, "{\"cmd\":\"st\0atus\"}", 17, "NUL byte");
	memset(big, ' ', sizeof(big));
	expect(o, big, sizeof(big), "larger than 4096 bytes");
}

static void test_status_nodes_guests(void **state)
{
	struct one *o = *state;

	EXPECT(o, "{\"cmd\":\"status\"}", "\"node\":\"alpha\"");
	EXPECT(o, "{\"cmd\":\"status\"}", "\"quorate\":true");
	EXPECT(o, "{\"cmd\":\"nodes\"}", "\"free_mib\":8192");
	EXPECT(o, "{\"cmd\":\"guests\"}",
	       "\"name\":\"vm1\",\"owner\":\"alpha\",\"state\":\"running\"");
	EXPECT(o, "{\"cmd\":\"events\"}", "guest vm1 runs on alpha");
}

static void test_mark_failing_and_clear(void **state)
{
	struct one *o = *state;

	EXPECT(o, "{\"cmd\":\"mark-failing\",\"node\":\"zeta\"}",
	       "unknown node 'zeta' (known: alpha)");
	EXPECT(o, "{\"cmd\":\"mark-failing\"}", "missing \\\"node\\\"");
	EXPECT(o, "{\"cmd\":\"mark-failing\",\"node\":\"alpha\",\"reason\":\"a\\nb\"}",
	       "control characters");
	EXPECT(o, "{\"cmd\":\"mark-failing\",\"node\":\"alpha\",\"reason\":\"disk\"}",
	       "\"message\":\"node alpha: failing requested\"");
	pump(o);
	cl_sim_run(o->w, 100);
	assert_int_equal(ha_state_node(o->st, 1)->state, HA_NODE_FAILING);
	EXPECT(o, "{\"cmd\":\"status\"}", "stay vm1: no node is ok to receive it");
	EXPECT(o, "{\"cmd\":\"clear\",\"node\":\"1\"}", "\"ok\":true");
	pump(o);
	cl_sim_run(o->w, 100);
	assert_int_equal(ha_state_node(o->st, 1)->state, HA_NODE_OK);
	EXPECT(o, "{\"cmd\":\"migrate\",\"guest\":\"nothere\",\"node\":\"alpha\"}",
	       "unknown guest 'nothere'");
	EXPECT(o, "{\"cmd\":\"migrate\",\"guest\":\"vm1\",\"node\":\"beta\"}",
	       "unknown node 'beta' (known: alpha)");
	EXPECT(o, "{\"cmd\":\"migrate\",\"guest\":\"vm1\",\"node\":\"alpha\"}",
	       "guest vm1 already runs on alpha");
	ha_state_quorum(o->st, false);
	EXPECT(o, "{\"cmd\":\"mark-failing\",\"node\":\"alpha\"}", "no quorum");
	EXPECT(o, "{\"cmd\":\"status\"}", "\"frozen\":true");
	ha_state_quorum(o->st, true);
}

/* A raw client: connect, send, half-close (before the server runs). */
static int raw_client(const char *path, const void *req, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (len)
		assert_int_equal(fd_write_exact(fd, req, len), 0);
	shutdown(fd, SHUT_WR);
	return fd;
}

static int handle(void *arg, const char *request, size_t len, char **reply_r)
{
	return ha_ctl_handle(arg, request, len, reply_r);
}

/* Run the server's loop until the client on fd has its whole answer (EOF), within 10 s. */
static char *serve_and_read(struct loop *loop, int fd)
{
	static char buf[65536];
	int64_t deadline = loop_now_ms() + 10000;
	size_t off = 0;
	ssize_t n = -1;

	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	while (n != 0 && loop_now_ms() < deadline) {
		loop_run_once(loop, 10);
		while ((n = read(fd, buf + off, sizeof(buf) - 1 - off)) > 0)
			off += (size_t)n;
	}
	assert_int_equal(n, 0);
	buf[off] = '\0';
	close(fd);
	return buf;
}

/* A client that connected and sent nothing: no answer yet (its fd stays open). */
static bool no_answer_yet(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
}

static int silent_client(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void test_socket(void **state)
{
	struct one *o = *state;
	char dir[] = "/tmp/hactl.XXXXXX", path[128], *reply = NULL;
	struct ha_ctl_server *srv = NULL;
	int silent[HA_CTL_CLIENTS_MAX];
	struct loop *loop = NULL;
	int64_t t0, waited;
	struct stat sb;
	int lfd, cfd;
	pid_t pid;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(loop_new(&loop), 0);
	snprintf(path, sizeof(path), "%s/run/haagent.sock", dir);
	assert_int_equal(ha_ctl_listen(path, &lfd), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/run", dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/run/haagent.sock", dir);

	/* a client of another uid is refused */
	assert_int_equal(ha_ctl_server_new(loop, lfd, getuid() + 1, handle, o->st, &srv), 0);
	cfd = raw_client(path, "{\"cmd\":\"status\"}", 16);
	assert_non_null(strstr(serve_and_read(loop, cfd), "permission denied: only root"));
	ha_ctl_server_free(srv);

	assert_int_equal(ha_ctl_server_new(loop, lfd, getuid(), handle, o->st, &srv), 0);
	cfd = raw_client(path, "{\"cmd\":\"status\"}", 16);
	assert_non_null(strstr(serve_and_read(loop, cfd), "\"ok\":true"));
	{
		static char big[20000];

		memset(big, 'x', sizeof(big));
		cfd = raw_client(path, big, 8000); /* more than the limit, less than the buffer */
		assert_non_null(
		    strstr(serve_and_read(loop, cfd), "larger than 4096 bytes refused"));
	}
	cfd = raw_client(path, "\x01\x02garbage", 9);
	assert_non_null(strstr(serve_and_read(loop, cfd), "not a JSON object"));

	/* a client that sends nothing delays nobody, and is answered after the timeout */
	t0 = loop_now_ms();
	silent[0] = silent_client(path);
	loop_run_once(loop, 10);
	cfd = raw_client(path, "{\"cmd\":\"nodes\"}", 15);
	assert_non_null(strstr(serve_and_read(loop, cfd), "\"name\":\"alpha\""));
	assert_true(no_answer_yet(silent[0]));
	assert_non_null(strstr(serve_and_read(loop, silent[0]), "request not complete within"));
	waited = loop_now_ms() - t0;
	assert_true(waited >= HA_CTL_TIMEOUT_MS);

	/* every slot taken by silent clients: the next one waits in the backlog, then is served */
	for (int i = 0; i < HA_CTL_CLIENTS_MAX; i++) {
		silent[i] = silent_client(path);
		loop_run_once(loop, 10);
	}
	cfd = raw_client(path, "{\"cmd\":\"status\"}", 16);
	for (int i = 0; i < 5; i++)
		loop_run_once(loop, 10);
	assert_true(no_answer_yet(cfd));
	assert_non_null(strstr(serve_and_read(loop, cfd), "\"ok\":true"));
	for (int i = 0; i < HA_CTL_CLIENTS_MAX; i++)
		assert_non_null(strstr(serve_and_read(loop, silent[i]), "request not complete"));

	/* the client side, against a forked server */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 300; i++)
			loop_run_once(loop, 10);
		_exit(0);
	}
	assert_int_equal(ha_ctl_call(path, "{\"cmd\":\"nodes\"}", &reply, 2000), 0);
	assert_non_null(strstr(reply, "\"name\":\"alpha\""));
	free(reply);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	ha_ctl_server_free(srv);
	loop_free(loop);
	close(lfd);
	unlink(path);
	assert_int_equal(ha_ctl_call(path, "{\"cmd\":\"nodes\"}", &reply, 500), ERR_NOTFOUND);
	snprintf(path, sizeof(path), "%s/run", dir);
	rmdir(path);
	rmdir(dir);
}

/* --- three nodes: "where" and "leaving" ----------------------------------------------- */

struct three {
	struct cl_sim_world *w;
	struct one n[3]; /* n[i] is nodeid i + 1; n[i].w is the shared world */
};

static void run3(struct three *t)
{
	for (int i = 0; i < 3; i++)
		if (t->n[i].cl)
			pump(&t->n[i]);
	cl_sim_run(t->w, 10000);
}

/*
 * alpha (1) runs vm1 (512 MiB) and vm2 (3000 MiB, prefers gamma); beta (2) has 8192 MiB free,
 * gamma (3) 4096 MiB: vm1 goes to beta (most room), vm2 to gamma (preferred).
 */
static int setup3(void **state)
{
	static const char *const names[] = {"alpha", "beta", "gamma"};
	static const uint64_t free_mib[] = {8192, 8192, 4096};
	struct three *t = calloc(1, sizeof(*t));
	struct ha_guest_info g[2] = {{.name = "vm1", .mem_mib = 512},
	                             {.name = "vm2", .mem_mib = 3000}};

	snprintf(g[1].preferred[0], sizeof(g[1].preferred[0]), "gamma");
	assert_int_equal(cl_sim_world_new(&t->w, 3), 0);
	for (uint32_t i = 0; i < 3; i++) {
		t->n[i].w = t->w;
		assert_int_equal(ha_state_new(&t->n[i].st, i + 1, NULL), 0);
		assert_int_equal(ha_state_set_local(t->n[i].st, names[i], free_mib[i], 1024,
		                                    i == 0 ? g : NULL, i == 0 ? 2 : 0),
		                 0);
		cl_sim_world_next_node(t->w, i + 1);
		assert_int_equal(cl_sim_ops.open(&t->n[i].cl, "t", &cbs, &t->n[i]), 0);
		run3(t);
	}
	for (int i = 0; i < 3; i++)
		assert_true(ha_state_synced(t->n[i].st));
	*state = t;
	return 0;
}

static int teardown3(void **state)
{
	struct three *t = *state;

	for (int i = 0; i < 3; i++) {
		cl_sim_ops.close(t->n[i].cl);
		ha_state_free(t->n[i].st);
	}
	cl_sim_world_free(t->w);
	free(t);
	return 0;
}

static void test_where(void **state)
{
	struct three *t = *state;
	struct one *beta = &t->n[1];

	EXPECT(beta, "{\"cmd\":\"where\"}", "missing \\\"guest\\\"");
	EXPECT(beta, "{\"cmd\":\"where\",\"guest\":\"vm9\"}", "unknown guest 'vm9'");
	/* asked on any node, the same answer: alpha is ok, the plan if it left */
	EXPECT(beta, "{\"cmd\":\"where\",\"guest\":\"vm1\"}",
	       "\"guest\":\"vm1\",\"owner\":\"alpha\",\"owner_state\":\"ok\",\"state\":\"running\","
	       "\"moving\":false,\"target\":\"beta\"");
	EXPECT(&t->n[0], "{\"cmd\":\"where\",\"guest\":\"vm2\"}", "\"target\":\"gamma\"");
	EXPECT(&t->n[0], "{\"cmd\":\"where\",\"guest\":\"vm2\"}",
	       "\"reason\":\"if alpha left: migrate: ");
	/* asking changed nothing: alpha is still ok, no plan */
	assert_int_equal(ha_state_node(beta->st, 1)->state, HA_NODE_OK);
	EXPECT(beta, "{\"cmd\":\"status\"}", "\"plan\":[]");

	/* no room anywhere for vm2 once gamma is full: no target, the planner's reason */
	EXPECT(beta, "{\"cmd\":\"mark-failing\",\"node\":\"gamma\"}", "\"ok\":true");
	run3(t);
	EXPECT(beta, "{\"cmd\":\"where\",\"guest\":\"vm2\"}", "\"target\":\"beta\"");
	EXPECT(beta, "{\"cmd\":\"mark-failing\",\"node\":\"beta\"}", "\"ok\":true");
	run3(t);
	EXPECT(beta, "{\"cmd\":\"where\",\"guest\":\"vm2\"}", "\"target\":\"\",");
	EXPECT(beta, "{\"cmd\":\"where\",\"guest\":\"vm2\"}", "\"reason\":\"if alpha left: stay: ");
	EXPECT(beta, "{\"cmd\":\"clear\",\"node\":\"beta\"}", "\"ok\":true");
	EXPECT(beta, "{\"cmd\":\"clear\",\"node\":\"gamma\"}", "\"ok\":true");
	run3(t);

	/* a migration in flight: the target is where it is going */
	EXPECT(beta, "{\"cmd\":\"migrate\",\"guest\":\"vm1\",\"node\":\"gamma\"}", "\"ok\":true");
	run3(t);
	{
		struct ha_msg m = {.type = HA_MSG_MIG_START, .from = 1, .to = 3};

		snprintf(m.guest, sizeof(m.guest), "vm1");
		assert_int_equal(ha_state_submit(t->n[0].st, &m), 0);
		run3(t);
	}
	assert_int_equal(ha_state_guest(beta->st, "vm1")->moving_to, 3);
	EXPECT(beta, "{\"cmd\":\"where\",\"guest\":\"vm1\"}",
	       "\"state\":\"migrating\",\"moving\":true,\"target\":\"gamma\"");
	EXPECT(beta, "{\"cmd\":\"where\",\"guest\":\"vm1\"}",
	       "\"reason\":\"live migration to gamma in progress\"");
}

static void test_leaving(void **state)
{
	struct three *t = *state;
	struct one *alpha = &t->n[0];

	EXPECT(alpha, "{\"cmd\":\"leaving\"}",
	       "\"node\":\"alpha\",\"state\":\"ok\",\"leaving\":false");
	EXPECT(alpha, "{\"cmd\":\"leaving\",\"node\":\"zeta\"}", "unknown node 'zeta'");
	EXPECT(&t->n[2], "{\"cmd\":\"mark-failing\",\"node\":\"alpha\",\"reason\":\"fan\"}",
	       "\"ok\":true");
	run3(t);
	EXPECT(alpha, "{\"cmd\":\"leaving\"}",
	       "\"node\":\"alpha\",\"state\":\"failing\",\"leaving\":true,\"reason\":\"fan\"");
	EXPECT(&t->n[1], "{\"cmd\":\"leaving\",\"node\":\"alpha\"}", "\"leaving\":true");
	EXPECT(&t->n[1], "{\"cmd\":\"leaving\"}", "\"node\":\"beta\",\"state\":\"ok\"");
	/* once failing, "where" answers with the real plan */
	EXPECT(&t->n[1], "{\"cmd\":\"where\",\"guest\":\"vm1\"}",
	       "\"owner_state\":\"failing\",\"state\":\"running\",\"moving\":false,"
	       "\"target\":\"beta\"");
	/* draining (an agent stopping) is leaving too */
	{
		struct ha_msg m = {.type = HA_MSG_SET_STATE, .node = 2, .state = HA_NODE_DRAINING};

		assert_int_equal(ha_state_submit(t->n[1].st, &m), 0);
		run3(t);
	}
	EXPECT(alpha, "{\"cmd\":\"leaving\",\"node\":\"beta\"}",
	       "\"state\":\"draining\",\"leaving\":true");
	EXPECT(alpha, "{\"cmd\":\"leaving\",\"node\":\"3\"}",
	       "\"node\":\"gamma\",\"state\":\"ok\"");
}

/*
 * mark-failing with "cold": the node is stopping (in nodes, status and leaving), the plan
 * cold-restarts its guests (shut down by alpha, no live migration), "where" says so; a cold
 * that is not a boolean is refused; clear returns the node to ok.
 */
static void test_mark_failing_cold(void **state)
{
	struct three *t = *state;
	struct one *beta = &t->n[1];

	EXPECT(beta, "{\"cmd\":\"mark-failing\",\"node\":\"alpha\",\"cold\":\"yes\"}",
	       "\"cold\\\" must be true or false");
	EXPECT(beta, "{\"cmd\":\"mark-failing\",\"node\":\"alpha\",\"cold\":false}",
	       "\"message\":\"node alpha: failing requested\"");
	run3(t);
	EXPECT(beta,
	       "{\"cmd\":\"mark-failing\",\"node\":\"alpha\",\"cold\":true,\"reason\":\"psu\"}",
	       "\"message\":\"node alpha: stopping requested\"");
	run3(t);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ha_state_node(t->n[i].st, 1)->state, HA_NODE_STOPPING);
	EXPECT(beta, "{\"cmd\":\"nodes\"}", "\"name\":\"alpha\",\"state\":\"stopping\"");
	EXPECT(&t->n[0], "{\"cmd\":\"status\"}", "\"state\":\"stopping\"");
	EXPECT(&t->n[2], "{\"cmd\":\"leaving\",\"node\":\"alpha\"}",
	       "\"state\":\"stopping\",\"leaving\":true,\"reason\":\"psu\"");
	EXPECT(beta, "{\"cmd\":\"status\"}",
	       "\"plan\":[\"cold-restart vm2: its node is stopping: cold evacuation\","
	       "\"cold-restart vm1: its node is stopping: cold evacuation\"]");
	EXPECT(beta, "{\"cmd\":\"where\",\"guest\":\"vm2\"}",
	       "\"owner_state\":\"stopping\",\"state\":\"running\",\"moving\":false,"
	       "\"target\":\"gamma\"");
	EXPECT(beta, "{\"cmd\":\"where\",\"guest\":\"vm1\"}",
	       "\"reason\":\"cold-restart: its node is stopping: cold evacuation\"");
	EXPECT(beta, "{\"cmd\":\"clear\",\"node\":\"alpha\"}", "\"ok\":true");
	run3(t);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ha_state_node(t->n[i].st, 1)->state, HA_NODE_OK);
	EXPECT(beta, "{\"cmd\":\"leaving\",\"node\":\"alpha\"}", "\"leaving\":false");
	EXPECT(beta, "{\"cmd\":\"status\"}", "\"plan\":[]");
}

/*
 * Inside a sync round (gamma rejoined: beta has the membership change, no HELLO delivered
 * yet), beta still holds the view: mark-failing is accepted and said to apply when the round
 * ends, and it does, on every node; gamma, the joiner, holds no view yet and is refused.
 */
static void test_mark_failing_in_sync_round(void **state)
{
	struct three *t = *state;
	struct one *beta = &t->n[1], *gamma = &t->n[2];

	cl_sim_ops.close(gamma->cl);
	gamma->cl = NULL;
	run3(t);
	ha_state_free(gamma->st);
	assert_int_equal(ha_state_new(&gamma->st, 3, NULL), 0);
	assert_int_equal(ha_state_set_local(gamma->st, "gamma", 4096, 1024, NULL, 0), 0);
	cl_sim_world_next_node(t->w, 3);
	assert_int_equal(cl_sim_ops.open(&gamma->cl, "t", &cbs, gamma), 0);
	while (!ha_state_in_round(beta->st))
		assert_int_equal(cl_sim_step_node(t->w, 2), 1);
	assert_true(ha_state_holds_view(beta->st));
	assert_false(ha_state_synced(beta->st));
	EXPECT(beta, "{\"cmd\":\"mark-failing\",\"node\":\"alpha\",\"reason\":\"in the round\"}",
	       "node alpha: failing requested (a sync round is open: applied when it ends)");
	EXPECT(gamma, "{\"cmd\":\"mark-failing\",\"node\":\"alpha\"}",
	       "not in sync with the cluster yet (it is joining and holds no view); retry in a few "
	       "seconds");
	assert_int_equal(ha_state_node(beta->st, 1)->state, HA_NODE_OK);
	run3(t);
	for (int i = 0; i < 3; i++) {
		assert_true(ha_state_synced(t->n[i].st));
		assert_int_equal(ha_state_node(t->n[i].st, 1)->state, HA_NODE_FAILING);
	}
	EXPECT(gamma, "{\"cmd\":\"leaving\",\"node\":\"alpha\"}",
	       "\"state\":\"failing\",\"leaving\":true,\"reason\":\"in the round\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_garbage_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_nodes_guests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mark_failing_and_clear, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_where, setup3, teardown3),
	    cmocka_unit_test_setup_teardown(test_leaving, setup3, teardown3),
	    cmocka_unit_test_setup_teardown(test_mark_failing_cold, setup3, teardown3),
	    cmocka_unit_test_setup_teardown(test_mark_failing_in_sync_round, setup3, teardown3),
	};

	log_set_sink(log_sink_capture());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
