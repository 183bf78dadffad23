/*
 * executor.c - this node's part of the plan: claims, jobs in child processes, outcomes
 * (see executor.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "haagent/executor.h"
#include "haagent/fence.h"
#include "haagent/worker.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/migration/transport.h"

#define MAX_JOBS               64
#define MAX_RECEIVERS          8
#define MAX_RECEIVERS_PER_PEER 2
#define CLAIM_TIMEOUT_MS       10000
#define REPORT_TIMEOUT_MS      30000
#define FENCE_RETRY_MS         10000
#define STALE_RETRY_MS         5000
/* A guest the view lost after its migration broke: how long before its paused copy resumes. */
#define AWAY_ABSENT_MS           10000
#define FENCE_LUN_TIMEOUT_S      10
#define SELF_FENCE_LUN_TIMEOUT_S 3 /* a self-fence check's bound per LUN step (restart_wait_ms) */
#define SELF_FENCE_EVERY_MS      2000 /* the self-fence check's period while cut off */

enum job_kind {
	JOB_CLAIM,
	JOB_SEND,
	JOB_RECV,
	JOB_CREATE,
	JOB_STOP,
	JOB_FENCE,
	JOB_ORPHAN,
	JOB_STALE,       /* destroy this node's stale copy of a guest that runs elsewhere */
	JOB_AWAY_DROP,   /* destroy <guest>--migratedaway: the target reported the guest running */
	JOB_AWAY_RESUME, /* resume <guest>--migratedaway: the target does not run the guest */
	JOB_SELF_FENCE,  /* without quorum: stop the guests whose LUNs the cluster took away */
};

static const char *const job_kind_names[] = {"claim",     "send",        "receive",   "create",
                                             "stop",      "fence",       "orphan",    "stale",
                                             "drop-away", "resume-away", "self-fence"};

struct job {
	bool used;
	enum job_kind kind;
	char guest[HA_NAME_MAX];
	uint32_t from, to, node;
	pid_t pid;     /* running child, 0 when done */
	int64_t since; /* when claimed/started/done; for a failed fence: when to retry */
	int report_fd; /* fence, send: read end of the pipe the child writes its report line to */
};

struct ha_executor {
	struct ha_exec_env env;
	struct job jobs[MAX_JOBS];
	struct {
		uint32_t nodeid;
		char addr[64];             /* its ring0 address, as configured */
		char ip[INET6_ADDRSTRLEN]; /* resolved, "" when it does not resolve */
	} addrs[HA_MAX_NODES];
	size_t naddrs;
	int listen_fd;
	struct loop_fd *listen_watch;
	char listen_addr[64]; /* what listen_fd is bound to, "" when none */
	bool warned_no_key;
	/*
	 * Guests whose migration from here broke past the point of no return: paused here as
	 * <guest>--migratedaway until the view says whether the target runs them.
	 */
	struct {
		bool used;
		char guest[HA_NAME_MAX];
		int64_t absent_since; /* when the view first lacked the guest; 0 while it has it */
	} away[MAX_JOBS];
	int64_t cut_off_since; /* when this node was cut off (cut_off; 0: it is not): the
	                        * self-fence */
	/* nodes seen fenced, and since when (this node's clock): a fence by reservation alone
	 * holds their guests' restarts until their self-fence has stopped them (restart_wait) */
	struct {
		uint32_t node; /* 0: free */
		int64_t since;
		bool said; /* the wait was logged */
	} fenced[HA_MAX_NODES];
	uint32_t failed_fence_node;                  /* the last failed fence's node and report: */
	char failed_fence_report[HA_REASON_MAX * 2]; /* a repeated failure is not an event again */
};

/* The address of a socket's peer as text. */
static void ip_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *a = ss->ss_family == AF_INET6
	                    ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
	                    : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	if (!inet_ntop(ss->ss_family, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

static void open_listener(struct ha_executor *ex, const char *addr);
static int receivers_from(const struct ha_executor *ex, uint32_t node);
static void on_incoming(struct loop *loop, struct loop_fd *w, int fd, short revents, void *arg);

static uint32_t self_id(const struct ha_executor *ex)
{
	return ha_state_self(ex->env.st);
}

static struct job *find_job(struct ha_executor *ex, int kind, const char *guest, uint32_t node)
{
	for (size_t i = 0; i < MAX_JOBS; i++) {
		struct job *j = &ex->jobs[i];

		if (!j->used || (kind >= 0 && j->kind != (enum job_kind)kind))
			continue;
		if (guest ? strcmp(j->guest, guest) == 0 : j->node == node)
			return j;
	}
	return NULL;
}

static struct job *add_job(struct ha_executor *ex, enum job_kind kind, const char *guest,
                           uint32_t from, uint32_t to)
{
	for (size_t i = 0; i < MAX_JOBS; i++) {
		struct job *j = &ex->jobs[i];

		if (j->used)
			continue;
		memset(j, 0, sizeof(*j));
		j->used = true;
		j->kind = kind;
		snprintf(j->guest, sizeof(j->guest), "%s", guest ? guest : "");
		j->from = from;
		j->to = to;
		j->node = from;
		j->since = loop_now_ms();
		j->report_fd = -1;
		return j;
	}
	log_error("executor: more than %d jobs at once; %s waits", MAX_JOBS, guest ? guest : "");
	return NULL;
}

static void submit(struct ha_executor *ex, enum ha_msg_type type, const char *guest, uint32_t from,
                   uint32_t to, uint32_t node, int err, const char *text)
{
	struct ha_msg m = {.type = type, .from = from, .to = to, .node = node, .err = err};
	int rc;

	snprintf(m.guest, sizeof(m.guest), "%s", guest ? guest : "");
	snprintf(m.text, sizeof(m.text), "%s", text ? text : "");
	rc = ha_state_submit(ex->env.st, &m);
	if (rc < 0)
		log_error("executor: cannot submit %s for %s: %s", ha_msg_type_name(type),
		          guest ? guest : "", err_str(rc));
	ex->env.pump(ex->env.arg);
}

static const char *node_addr(const struct ha_executor *ex, uint32_t nodeid)
{
	for (size_t i = 0; i < ex->naddrs; i++)
		if (ex->addrs[i].nodeid == nodeid)
			return ex->addrs[i].addr;
	return NULL;
}

void ha_exec_set_node_addr(struct ha_executor *ex, uint32_t nodeid, const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char spec[96];
	size_t i = 0;

	while (i < ex->naddrs && ex->addrs[i].nodeid != nodeid)
		i++;
	if (i == ex->naddrs) {
		if (ex->naddrs == HA_MAX_NODES)
			return;
		ex->naddrs++;
	}
	ex->addrs[i].nodeid = nodeid;
	snprintf(ex->addrs[i].addr, sizeof(ex->addrs[i].addr), "%s", addr);
	/* the IP a migration from it comes from (ring0_addr may be a name) */
	ex->addrs[i].ip[0] = '\0';
	snprintf(spec, sizeof(spec), strchr(addr, ':') ? "[%s]:1" : "%s:1", addr);
	if (tr_parse_addr(spec, &ss, &len) == 0)
		ip_text(&ss, ex->addrs[i].ip, sizeof(ex->addrs[i].ip));
	if (nodeid == self_id(ex) && !ex->env.cfg->migration_listen[0])
		open_listener(ex, addr);
}

static const struct ha_guest_conf *guest_conf(const struct ha_executor *ex, const char *name)
{
	for (size_t i = 0; i < ex->env.cfg->nguests; i++)
		if (strcmp(ex->env.cfg->guests[i].name, name) == 0)
			return &ex->env.cfg->guests[i];
	return NULL;
}

/*
 * In the fence job's child: fence node (nodeid) by the configured method(s) over the guests
 * the view says it owns; the one-line outcome goes to report_fd for the cluster's events.
 */
static int run_fence(struct ha_executor *ex, uint32_t nodeid, const char *name, int report_fd)
{
	const struct ha_config *cfg = ex->env.cfg;
	struct ha_fence_guest fg[HA_MAX_GUESTS];
	struct ha_fence_args a = {
	    .mode = (enum ha_fence_mode)cfg->fence_mode,
	    .command = cfg->fence_command,
	    .node_keys = cfg->node_keys,
	    .victim = name,
	    .guests = fg,
	    .timeout_s = FENCE_LUN_TIMEOUT_S,
	    .command_timeout_s = (int)cfg->fence_timeout_s,
	};
	const struct ha_guest_info *g;
	size_t ng = ha_state_guests(ex->env.st, &g);
	char report[HA_REASON_MAX * 2];
	int status;

	for (size_t i = 0; i < ng && a.nguests < HA_MAX_GUESTS; i++) {
		const struct ha_guest_conf *gc;

		if (g[i].owner != nodeid && g[i].moving_to != nodeid)
			continue;
		gc = guest_conf(ex, g[i].name);
		fg[a.nguests].incoming = g[i].owner != nodeid;
		fg[a.nguests].name = g[i].name;
		fg[a.nguests].config = gc ? gc->config : "";
		fg[a.nguests].disks = gc && gc->disks[0] ? gc->disks : g[i].disks;
		a.nguests++;
	}
	status = ha_fence_run(&a, report, sizeof(report));
	if (report_fd >= 0 && write(report_fd, report, strlen(report)) < 0)
		log_warn("fence of %s: cannot pass its report to the agent", name);
	return status;
}

/*
 * The fence arguments for a LUN check of one guest (ha_fence_self_check, ha_fence_adopt): its
 * config, and its disks from haagent.conf or else the view. *a points at *fg.
 */
static void one_guest_args(struct ha_executor *ex, const char *guest, struct ha_fence_guest *fg,
                           struct ha_fence_args *a)
{
	const struct ha_guest_conf *gc = guest_conf(ex, guest);
	const struct ha_guest_info *g = ha_state_guest(ex->env.st, guest);

	*fg = (struct ha_fence_guest){
	    .name = guest,
	    .config = gc ? gc->config : "",
	    .disks = gc && gc->disks[0] ? gc->disks
	             : g                ? g->disks
	                                : "",
	};
	*a = (struct ha_fence_args){
	    .node_keys = ex->env.cfg->node_keys,
	    .guests = fg,
	    .nguests = 1,
	    .timeout_s = FENCE_LUN_TIMEOUT_S,
	};
}

/*
 * In the self-fence job's child (this node cut off for self_fence_s): destroy every
 * guest running here whose shared LUN the cluster took away from this node (ha_fence_self_check:
 * reserved, this node's key gone). Such a copy can no longer write its disk, and the
 * majority restarts the guest elsewhere once it fenced this node: stopping it here now, not
 * at the heal, keeps two copies from ever running at once for longer than the bound. A LUN
 * that cannot be read decides nothing: the guest is kept.
 */
static int run_self_fence(struct ha_executor *ex)
{
	const struct ha_node_info *me = ha_state_node(ex->env.st, self_id(ex));
	struct hv_domain_info *doms = NULL;
	size_t ndoms = 0;

	/* in the child: a connection of its own, as every worker (libxl's is the daemon's) */
	if (!me || ha_worker_list(ex->env.hv_ops, &doms, &ndoms) != 0)
		return HA_WORKER_FAILED;
	log_debug("self-fence: node %s cut off: checking the LUNs of its %zu domain(s)", me->name,
	          ndoms);
	for (size_t i = 0; i < ndoms; i++) {
		const struct ha_guest_conf *gc = guest_conf(ex, doms[i].name);
		struct ha_fence_guest fg;
		struct ha_fence_args a;
		char lun[LUN_TARGET_MAX] = "";
		int rc;

		if (doms[i].domid == 0 || doms[i].dying || !gc) {
			log_debug(
			    "self-fence: %s (domid %u) is not a guest of haagent.conf: not checked",
			    doms[i].name, doms[i].domid);
			continue;
		}
		one_guest_args(ex, doms[i].name, &fg, &a);
		a.timeout_s =
		    SELF_FENCE_LUN_TIMEOUT_S; /* the others' restart_wait_ms counts on it */
		rc = ha_fence_self_check(&a, me->name, lun, sizeof(lun));
		if (rc == 0)
			log_debug("self-fence: %s's LUNs still have node %s's key: kept",
			          doms[i].name, me->name);
		else if (rc < 0)
			log_debug("self-fence: %s kept: its LUNs could not be checked (%s)",
			          doms[i].name, err_str(rc));
		if (rc != 1)
			continue;
		log_warn("self-fence: node %s is cut off from the cluster and its key is gone from "
		         "LUN %s of %s "
		         "(the cluster fenced it by reservation; the guest restarts elsewhere): "
		         "destroying its copy here",
		         me->name, lun, doms[i].name);
		if (ha_worker_destroy(ex->env.hv_ops, doms[i].name, -1) != HA_WORKER_OK)
			log_error(
			    "self-fence: %s still runs here: destroy it by hand (xl destroy %s)",
			    doms[i].name, doms[i].name);
	}
	free(doms);
	return HA_WORKER_OK;
}

/*
 * In the restart job's child: if another member (the one that fenced the guest's old owner
 * by reservation) holds a shared LUN of guest with its own key, take it over (fence.h).
 */
static int adopt_luns(struct ha_executor *ex, const char *guest)
{
	const struct ha_config *cfg = ex->env.cfg;
	const struct ha_node_info *nodes;
	size_t nn = ha_state_nodes(ex->env.st, &nodes), nkeys = 0;
	uint64_t keys[HA_MAX_NODES];
	struct ha_fence_guest fg;
	struct ha_fence_args a;
	char why[HA_FENCE_WHY_MAX];
	unsigned methods = 0;

	/* Only a reservation fence leaves a LUN held by a member's key: with the fence command
	 * alone there is nothing to take over, and no LUN access is needed to restart. */
	if (ha_fence_methods(cfg->fence_mode, cfg->fence_command[0] != '\0', 1, &methods, why,
	                     sizeof(why)) ||
	    !(methods & HA_FENCE_BY_RESERVATION))
		return 0;
	one_guest_args(ex, guest, &fg, &a);
	for (size_t i = 0; i < nn && nkeys < HA_MAX_NODES; i++) {
		if (!nodes[i].member || nodes[i].nodeid == self_id(ex))
			continue;
		if (ha_fence_node_key(cfg->node_keys, nodes[i].name, &keys[nkeys], why,
		                      sizeof(why)) == 0)
			nkeys++;
	}
	return ha_fence_adopt(&a, keys, nkeys);
}

/* Read what a fence or send child reported (one line, possibly empty). */
static void read_report(struct job *j, char *buf, size_t len)
{
	ssize_t n = 0;

	buf[0] = '\0';
	if (j->report_fd < 0)
		return;
	n = read(j->report_fd, buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(j->report_fd);
	j->report_fd = -1;
}

/* Fork a child for job j running the job's worker. */
static void start_job(struct ha_executor *ex, struct job *j, int conn)
{
	const struct ha_config *cfg = ex->env.cfg;
	const struct ha_guest_conf *gc;
	const struct ha_node_info *n;
	char addr[96];
	pid_t pid;
	int status = HA_WORKER_FAILED;

	int report[2] = {-1, -1};

	if (j->kind == JOB_SEND)
		snprintf(addr, sizeof(addr), "%s:%u",
		         node_addr(ex, j->to) ? node_addr(ex, j->to) : "?", cfg->migration_port);
	if ((j->kind == JOB_FENCE || j->kind == JOB_SEND || j->kind == JOB_CREATE ||
	     j->kind == JOB_STOP) &&
	    pipe2(report, O_CLOEXEC) < 0)
		report[0] = report[1] = -1; /* the outcome still comes from the exit status */
	pid = fork();
	if (pid < 0) {
		log_error_errno(errno, "executor: cannot fork for %s", j->guest);
		j->pid = 0;
		if (report[0] >= 0) {
			close(report[0]);
			close(report[1]);
		}
		return;
	}
	if (pid > 0) {
		if (report[1] >= 0)
			close(report[1]);
		if (j->report_fd >= 0)
			close(j->report_fd);
		j->report_fd = report[0];
		j->pid = pid;
		j->since = loop_now_ms();
		if (j->kind == JOB_FENCE) { /* the one job that harms another node: always said */
			n = ha_state_node(ex->env.st, j->node);
			log_info("executor: fence of node %s started as pid %d", n ? n->name : "?",
			         (int)pid);
		} else {
			log_debug("executor: job %d for %s started as pid %d", (int)j->kind,
			          j->guest[0] ? j->guest : "a node", (int)pid);
		}
		return;
	}
	ha_worker_child_init(report[1] >= 0 ? report[1] : conn);
	/* the worker opens the hypervisor anew: the daemon's connection is not its to use */
	if (ex->env.hv && ex->env.hv_ops && ex->env.hv_ops->postfork_child)
		ex->env.hv_ops->postfork_child(ex->env.hv);
	if (ex->env.worker)
		_exit(ex->env.worker(ex->env.arg, job_kind_names[j->kind], j->guest, j->from, j->to,
		                     j->kind == JOB_FENCE ? report[1] : -1));
	switch (j->kind) {
	case JOB_SEND:
		status = ha_worker_send(ex->env.hv_ops, j->guest, addr, cfg, report[1]);
		break;
	case JOB_RECV:
		status = ha_worker_receive(ex->env.hv_ops, conn, cfg->migration_key);
		break;
	case JOB_CREATE:
		gc = guest_conf(ex, j->guest);
		if (adopt_luns(ex, j->guest) == 0)
			status = ha_worker_create(ex->env.hv_ops, gc ? gc->config : NULL, j->guest,
			                          report[1]);
		break;
	case JOB_STOP:
		gc = guest_conf(ex, j->guest);
		status = ha_worker_stop_for_restart(ex->env.hv_ops, j->guest,
		                                    gc ? gc->config : NULL, report[1]);
		break;
	case JOB_STALE:
		status = ha_worker_destroy(ex->env.hv_ops, j->guest, report[1]);
		break;
	case JOB_AWAY_DROP:
	case JOB_AWAY_RESUME:
		status =
		    ha_worker_settle_away(ex->env.hv_ops, j->guest, j->kind == JOB_AWAY_RESUME);
		break;
	case JOB_FENCE:
		n = ha_state_node(ex->env.st, j->node);
		status = run_fence(ex, j->node, n ? n->name : "?", report[1]);
		break;
	case JOB_SELF_FENCE:
		status = run_self_fence(ex);
		break;
	default:
		break;
	}
	_exit(status);
}

static void away_add(struct ha_executor *ex, const char *guest)
{
	for (size_t i = 0; i < MAX_JOBS; i++) {
		if (ex->away[i].used)
			continue;
		ex->away[i].used = true;
		snprintf(ex->away[i].guest, sizeof(ex->away[i].guest), "%s", guest);
		ex->away[i].absent_since = 0;
		return;
	}
	log_error("executor: %s--migratedaway stays paused here: too many broken migrations to "
	          "follow; resume or destroy it by hand once you know where %s runs",
	          guest, guest);
}

static void away_remove(struct ha_executor *ex, const char *guest)
{
	for (size_t i = 0; i < MAX_JOBS; i++)
		if (ex->away[i].used && strcmp(ex->away[i].guest, guest) == 0)
			ex->away[i].used = false;
}

/*
 * Settle the paused copies of migrations that broke past the point of no return: the view
 * has the guest on the target after the source's MIG_DONE. Once the guest's owner reported it
 * running (g->reported), the copy here is stale: destroy it. When the view lost the guest (its
 * owner's report does not list it: the target does not run it) for AWAY_ABSENT_MS, the copy
 * here is the only one: resume it (this node's next report adds it back to the view).
 */
static void resolve_away(struct ha_executor *ex)
{
	int64_t now = loop_now_ms();

	for (size_t i = 0; i < MAX_JOBS; i++) {
		const struct ha_guest_info *g;
		const char *name = ex->away[i].guest;
		struct job *j;

		if (!ex->away[i].used || find_job(ex, JOB_AWAY_DROP, name, 0) ||
		    find_job(ex, JOB_AWAY_RESUME, name, 0))
			continue;
		g = ha_state_guest(ex->env.st, name);
		if (g) {
			ex->away[i].absent_since = 0;
			if (g->moving_to || !g->reported)
				continue;
			log_info("executor: %s runs on node %" PRIu32 ": dropping its paused copy "
			         "here",
			         name, g->owner);
			j = add_job(ex, JOB_AWAY_DROP, name, self_id(ex), 0);
		} else if (!ex->away[i].absent_since) {
			ex->away[i].absent_since = now;
			continue;
		} else if (now - ex->away[i].absent_since < AWAY_ABSENT_MS) {
			continue;
		} else {
			j = add_job(ex, JOB_AWAY_RESUME, name, self_id(ex), 0);
		}
		if (j)
			start_job(ex, j, -1);
	}
}

/* A job's child ended: multicast its outcome. */
static void job_done(struct ha_executor *ex, struct job *j, int status)
{
	uint32_t self = self_id(ex);

	log_debug("executor: %s job for %s%s ended with status %d", job_kind_names[j->kind],
	          j->guest[0] ? "guest " : "node ", j->guest[0] ? j->guest : "", status);
	j->pid = 0;
	j->since = loop_now_ms();
	switch (j->kind) {
	case JOB_SEND: {
		char report[HA_REASON_MAX];

		read_report(j, report, sizeof(report));
		if (status == HA_WORKER_FAILED)
			submit(ex, HA_MSG_MIG_FAILED, j->guest, self, j->to, 0, ERR_REMOTE,
			       "the guest still runs on the source");
		else if (status == HA_WORKER_LOST) /* never resumed or dropped here on its own */
			submit(ex, HA_MSG_MIG_DONE, j->guest, self, j->to, 0, 0,
			       "post-copy lost: paused on both hosts; restart it from its disks");
		else
			submit(ex, HA_MSG_MIG_DONE, j->guest, self, j->to, 0, 0,
			       status == HA_WORKER_OK ? report : "after the point of no return");
		if (status == HA_WORKER_UNDEFINED)
			away_add(ex, j->guest);
		break;
	}
	case JOB_SELF_FENCE:
		j->since = loop_now_ms() + SELF_FENCE_EVERY_MS; /* checked again while cut off */
		break;
	case JOB_AWAY_DROP:
	case JOB_AWAY_RESUME:
		if (status == HA_WORKER_OK) {
			away_remove(ex, j->guest);
			j->since = 0; /* done: forget the job */
		} else {
			j->since = loop_now_ms() + STALE_RETRY_MS; /* then tried again */
		}
		break;
	case JOB_CREATE: {
		char report[HA_REASON_MAX];

		read_report(j, report, sizeof(report));
		if (status == HA_WORKER_OK)
			submit(ex, HA_MSG_GUEST_RESTARTED, j->guest, j->from, self, 0, 0, report);
		else
			submit(ex, HA_MSG_MIG_FAILED, j->guest, j->from, self, 0, ERR_REMOTE,
			       "cold restart failed");
		break;
	}
	case JOB_STOP: {
		char report[HA_REASON_MAX];

		read_report(j, report, sizeof(report));
		if (status == HA_WORKER_OK)
			submit(ex, HA_MSG_GUEST_STOPPED, j->guest, self, 0, 0, 0, report);
		/* after the submit: a report of the guest gone now follows GUEST_STOPPED */
		ha_state_local_stop(ex->env.st, j->guest, false);
		break;
	}
	case JOB_STALE:
		if (status == HA_WORKER_OK) {
			log_warn(
			    "executor: stale copy of %s destroyed: it runs on another node since "
			    "this one was fenced",
			    j->guest);
			j->since = 0; /* done: forget the job */
		} else {
			log_error("executor: the stale copy of %s still runs here (its destroy "
			          "failed); retrying in %d s",
			          j->guest, STALE_RETRY_MS / 1000);
			j->since = loop_now_ms() + STALE_RETRY_MS;
			ha_state_stale_copy_again(ex->env.st, j->guest);
		}
		break;
	case JOB_FENCE: {
		char report[HA_REASON_MAX * 2];

		read_report(j, report, sizeof(report));
		if (status == HA_WORKER_OK) {
			j->since = loop_now_ms() + REPORT_TIMEOUT_MS; /* until FENCED applies */
			submit(ex, HA_MSG_FENCED, NULL, 0, 0, j->node, 0,
			       report[0] ? report : "fence command succeeded");
		} else {
			j->since = loop_now_ms() + FENCE_RETRY_MS; /* retry then */
			log_error("node %" PRIu32
			          " could not be fenced; retrying in %d s: its guests "
			          "stay down until then",
			          j->node, FENCE_RETRY_MS / 1000);
			/* one event per node and cause; the retries only log */
			if (!report[0])
				snprintf(report, sizeof(report), "see the fencing node's log");
			if (ex->failed_fence_node != j->node ||
			    strcmp(ex->failed_fence_report, report) != 0)
				submit(ex, HA_MSG_FENCE_FAILED, NULL, 0, 0, j->node, ERR_REMOTE,
				       report);
			ex->failed_fence_node = j->node;
			snprintf(ex->failed_fence_report, sizeof(ex->failed_fence_report), "%s",
			         report);
		}
		break;
	}
	default:
		break;
	}
}

/*
 * A migration worker killed by a signal cannot say how far it got; what it left on this host
 * does. <guest>--migratedaway: renamed away, and GO maybe sent: undefined until the target
 * reports, as after a broken final handshake. The guest paused under its own name: suspended
 * but never renamed away, so GO was never sent (xl's protocol renames first): resumed here.
 * Running: it died in pre-copy and nothing changed.
 */
static int killed_send_status(struct ha_executor *ex, const struct job *j, int sig)
{
	const struct hv_ops *ops = ex->env.hv_ops;
	char away[HV_NAME_MAX + 16];
	struct hv_domain_info info;
	uint32_t domid;
	int rc;

	log_error("executor: the migration worker of %s to node %" PRIu32
	          " was killed (signal %d); looking at what it left here",
	          j->guest, j->to, sig);
	if (!ops || !ops->lookup)
		return HA_WORKER_FAILED;
	snprintf(away, sizeof(away), "%s--migratedaway", j->guest);
	if (ops->lookup(ex->env.hv, away, &domid) == 0) {
		log_error("executor: %s is paused here as %s: the target may run it; kept until "
		          "its node reports",
		          j->guest, away);
		return HA_WORKER_UNDEFINED;
	}
	if (ops->lookup(ex->env.hv, j->guest, &domid) != 0 || !ops->info ||
	    ops->info(ex->env.hv, domid, &info) != 0 || !(info.paused || info.suspended))
		return HA_WORKER_FAILED;
	rc = ops->resume ? ops->resume(ex->env.hv, domid) : ERR_NOTSUP;
	if (rc)
		log_error("executor: %s stays suspended here (resume failed: %s); never sent to "
		          "the target: resume it by hand (xl-ext unpause %s)",
		          j->guest, err_str(rc), j->guest);
	else
		log_warn("executor: %s was suspended but never handed over: resumed here",
		         j->guest);
	return HA_WORKER_FAILED;
}

/*
 * A receive worker died of a signal: the copy it was receiving is left here paused as
 * <guest>--incoming (libxl and the sim name it so until GO; it never ran). Destroy the
 * incoming copies of the guests of the sending node, unless another migration from that node
 * is still arriving (whose copy it might be). The sender sees its connection fail, resumes the
 * guest and reports the move failed.
 */
static void killed_recv_cleanup(struct ha_executor *ex, const struct job *j, int sig)
{
	const struct hv_ops *ops = ex->env.hv_ops;
	const struct ha_node_info *n = ha_state_node(ex->env.st, j->from);
	const struct ha_guest_info *g;
	size_t ng = ha_state_guests(ex->env.st, &g);
	char incoming[HV_NAME_MAX + 16];
	uint32_t domid;

	log_error("executor: a receive worker (a migration from node %s) was killed (signal %d); "
	          "looking for the copy it left here",
	          n ? n->name : "?", sig);
	if (!ops || !ops->lookup || !ops->destroy || !ex->env.hv)
		return;
	if (receivers_from(ex, j->from) > 0) {
		log_warn("executor: other migrations from node %s are arriving: their copies are "
		         "kept; an incoming copy left behind is destroyed when its sender fails",
		         n ? n->name : "?");
		return;
	}
	for (size_t i = 0; i < ng; i++) {
		if (g[i].owner != j->from)
			continue;
		snprintf(incoming, sizeof(incoming), "%s--incoming", g[i].name);
		if (ops->lookup(ex->env.hv, incoming, &domid) != 0)
			continue;
		if (ops->destroy(ex->env.hv, domid) == 0)
			log_warn("executor: %s (domid %u), left by the killed receive worker, "
			         "destroyed: %s still runs on node %s",
			         incoming, domid, g[i].name, n ? n->name : "?");
		else
			log_error(
			    "executor: %s (domid %u), left by the killed receive worker, could "
			    "not be destroyed: destroy it by hand (xl destroy %s)",
			    incoming, domid, incoming);
	}
}

static void on_sigchld(struct loop *loop, int signo, void *arg)
{
	struct ha_executor *ex = arg;

	(void)loop;
	(void)signo;
	for (size_t i = 0; i < MAX_JOBS; i++) {
		struct job *j = &ex->jobs[i];
		int status;

		if (!j->used || j->pid <= 0 || waitpid(j->pid, &status, WNOHANG) != j->pid)
			continue;
		if (j->kind == JOB_SEND && WIFSIGNALED(status)) {
			job_done(ex, j, killed_send_status(ex, j, WTERMSIG(status)));
		} else if (j->kind == JOB_RECV && WIFSIGNALED(status)) {
			j->pid = 0; /* not a receiver still arriving */
			killed_recv_cleanup(ex, j, WTERMSIG(status));
			job_done(ex, j, HA_WORKER_FAILED);
		} else
			job_done(ex, j, WIFEXITED(status) ? WEXITSTATUS(status) : HA_WORKER_FAILED);
	}
	ha_exec_reconcile(ex);
}

/* Forget jobs whose effect is visible in the view (or that timed out). */
static void expire_jobs(struct ha_executor *ex, int64_t now)
{
	for (size_t i = 0; i < MAX_JOBS; i++) {
		struct job *j = &ex->jobs[i];
		const struct ha_guest_info *g;
		const struct ha_node_info *n;
		bool drop = false;

		if (!j->used || j->pid > 0)
			continue;
		g = j->guest[0] ? ha_state_guest(ex->env.st, j->guest) : NULL;
		switch (j->kind) {
		case JOB_CLAIM:
			drop = !g || g->moving_to || now - j->since > CLAIM_TIMEOUT_MS;
			break;
		case JOB_SEND:
		case JOB_CREATE:
		case JOB_ORPHAN:
			drop = !g || !g->moving_to || now - j->since > REPORT_TIMEOUT_MS;
			break;
		case JOB_STOP:
			drop = !g || g->stopped || now - j->since > REPORT_TIMEOUT_MS;
			if (drop) /* job_done cleared it, unless the fork failed */
				ha_state_local_stop(ex->env.st, j->guest, false);
			break;
		case JOB_FENCE:
			n = ha_state_node(ex->env.st, j->node);
			/* since: after a success, when to give up waiting for FENCED; after a
			 * failure, when to retry (a new job, planned again) */
			drop = !n || n->state != HA_NODE_DOWN || now >= j->since;
			break;
		case JOB_RECV:
			drop = true;
			break;
		case JOB_STALE:
		case JOB_AWAY_DROP:
		case JOB_AWAY_RESUME:
		case JOB_SELF_FENCE:
			drop = now >=
			       j->since; /* after a failure (self-fence: any end): when to retry */
			break;
		}
		if (drop)
			j->used = false;
	}
}

static unsigned running(const struct ha_executor *ex, int kind)
{
	unsigned n = 0;

	for (size_t i = 0; i < MAX_JOBS; i++)
		n += ex->jobs[i].used && ex->jobs[i].pid > 0 &&
		     (kind < 0 || ex->jobs[i].kind == (enum job_kind)kind);
	return n;
}

unsigned ha_exec_running(const struct ha_executor *ex)
{
	return running(ex, -1);
}

/* Start the jobs of claims the view accepted; report migrations whose source left. */
static void start_accepted(struct ha_executor *ex)
{
	const struct ha_guest_info *g;
	size_t ng = ha_state_guests(ex->env.st, &g);
	uint32_t self = self_id(ex);

	for (size_t i = 0; i < ng; i++) {
		const struct ha_node_info *src = ha_state_node(ex->env.st, g[i].owner);
		struct job *j;

		if (!g[i].moving_to)
			continue;
		if (g[i].owner == self && !g[i].stopped && !find_job(ex, JOB_SEND, g[i].name, 0)) {
			j = add_job(ex, JOB_SEND, g[i].name, self, g[i].moving_to);
			if (j && !node_addr(ex, g[i].moving_to)) {
				j->pid = 0;
				submit(ex, HA_MSG_MIG_FAILED, g[i].name, self, g[i].moving_to, 0,
				       ERR_NOTFOUND, "no address known for the target");
			} else if (j) {
				start_job(ex, j, -1);
			}
		} else if (g[i].moving_to == self && g[i].stopped &&
		           !find_job(ex, JOB_CREATE, g[i].name, 0)) {
			j = add_job(ex, JOB_CREATE, g[i].name, g[i].owner, self);
			if (j)
				start_job(ex, j, -1);
		} else if (g[i].moving_to == self && !g[i].stopped && src && !src->member &&
		           !running(ex, JOB_RECV) && !find_job(ex, JOB_ORPHAN, g[i].name, 0) &&
		           ex->env.hv) {
			uint32_t domid;
			bool here = ex->env.hv_ops->lookup(ex->env.hv, g[i].name, &domid) == 0;

			add_job(ex, JOB_ORPHAN, g[i].name, g[i].owner, self);
			submit(ex, here ? HA_MSG_MIG_DONE : HA_MSG_MIG_FAILED, g[i].name,
			       g[i].owner, self, 0, here ? 0 : ERR_IO,
			       here ? "source left after the point of no return"
			            : "source left: the incoming copy was destroyed");
		}
	}
}

/*
 * How long after a node is fenced its guests' restarts wait, in ms. A fence by reservation
 * alone stops the node's writes at once, its guests only when its own self-fence destroys
 * them (cut off for self_fence_s, then checked every SELF_FENCE_EVERY_MS, each check a LUN
 * read bounded by SELF_FENCE_LUN_TIMEOUT_S): wait for that bound, so that two copies never
 * run at once while the fenced node's agent lives. A fence command (power) needs no wait;
 * self_fence_s 0 (no self-fence anywhere: the same value on every node) gives none either.
 */
static int64_t restart_wait_ms(const struct ha_executor *ex)
{
	const struct ha_config *cfg = ex->env.cfg;
	unsigned methods = 0;
	char why[HA_FENCE_WHY_MAX];

	/* the methods a fence of a node with a shared LUN uses here (fence.c decides them) */
	(void)ha_fence_methods((enum ha_fence_mode)cfg->fence_mode, cfg->fence_command[0] != '\0',
	                       1, &methods, why, sizeof(why));
	if (methods != HA_FENCE_BY_RESERVATION || !cfg->self_fence_s)
		return 0;
	return (int64_t)cfg->self_fence_s * 1000 + 2 * SELF_FENCE_EVERY_MS +
	       SELF_FENCE_LUN_TIMEOUT_S * 1000;
}

/*
 * Every reconcile: note each node of the view seen fenced for the first time (its guests'
 * restarts wait from now: restart_may_start), and forget the nodes whose wait is over and
 * that are no longer fenced (one still fenced keeps its entry: its wait is not started
 * again; one fenced again later waits again).
 */
static void track_fenced(struct ha_executor *ex)
{
	const struct ha_node_info *nodes;
	size_t nn = ha_state_nodes(ex->env.st, &nodes);
	int64_t now = loop_now_ms(), wait = restart_wait_ms(ex);

	for (size_t i = 0; i < HA_MAX_NODES; i++) {
		const struct ha_node_info *o =
		    ex->fenced[i].node ? ha_state_node(ex->env.st, ex->fenced[i].node) : NULL;

		if (ex->fenced[i].node && now - ex->fenced[i].since >= wait &&
		    (!o || o->state != HA_NODE_FENCED))
			ex->fenced[i].node = 0;
	}
	for (size_t k = 0; k < nn && wait > 0; k++) {
		size_t i, free_i = HA_MAX_NODES;

		if (nodes[k].state != HA_NODE_FENCED)
			continue;
		for (i = 0; i < HA_MAX_NODES && ex->fenced[i].node != nodes[k].nodeid; i++)
			if (!ex->fenced[i].node && free_i == HA_MAX_NODES)
				free_i = i;
		if (i < HA_MAX_NODES || free_i == HA_MAX_NODES)
			continue;
		ex->fenced[free_i].node = nodes[k].nodeid;
		ex->fenced[free_i].since = now;
		ex->fenced[free_i].said = false;
	}
}

/*
 * May the guests of node (their old owner) restart now? Not within restart_wait_ms of when
 * this node first saw it fenced (first seen now: the wait starts), even if it has rejoined
 * since: its copies are stale then and it destroys them, or its self-fence already did, and
 * the restart still waits for that bound. track_fenced keeps the entries.
 */
static bool restart_may_start(struct ha_executor *ex, uint32_t node, const char *guest)
{
	const struct ha_node_info *n = ha_state_node(ex->env.st, node);
	int64_t now = loop_now_ms(), wait = restart_wait_ms(ex);
	size_t i;

	for (i = 0; i < HA_MAX_NODES && ex->fenced[i].node != node; i++)
		;
	if (i == HA_MAX_NODES || now - ex->fenced[i].since >= wait)
		return true; /* never seen fenced, or its wait is over */
	if (!ex->fenced[i].said)
		log_info(
		    "executor: node %s was fenced by reservation alone: the restart of %s waits "
		    "%" PRId64 " s for that node's self-fence to stop its copy",
		    n ? n->name : "?", guest, (wait - (now - ex->fenced[i].since) + 999) / 1000);
	ex->fenced[i].said = true;
	return false;
}

/* Claim (or run) what the plan gives this node. */
static void claim_planned(struct ha_executor *ex)
{
	struct plan_action *a = NULL;
	uint32_t self = self_id(ex);
	size_t na = 0;

	if (ha_state_plan(ex->env.st, &a, &na) < 0)
		return; /* no quorum or not in sync: no action at all */
	for (size_t i = 0; i < na; i++) {
		struct job *j;

		if (a[i].executor != self)
			continue;
		if (a[i].kind == PLAN_FENCE) {
			if (!find_job(ex, JOB_FENCE, NULL, a[i].from)) {
				j = add_job(ex, JOB_FENCE, NULL, a[i].from, 0);
				if (j)
					start_job(ex, j, -1);
			}
			continue;
		}
		if (find_job(ex, -1, a[i].guest, 0))
			continue;
		if (a[i].kind == PLAN_MIGRATE && !ex->env.cfg->migration_key[0]) {
			if (!ex->warned_no_key)
				log_error("live migration of %s planned, but no migration_key is "
				          "configured: nothing is migrated",
				          a[i].guest);
			ex->warned_no_key = true;
		} else if (a[i].kind == PLAN_MIGRATE) {
			add_job(ex, JOB_CLAIM, a[i].guest, a[i].from, a[i].to);
			submit(ex, HA_MSG_MIG_START, a[i].guest, a[i].from, a[i].to, 0, 0,
			       a[i].reason);
		} else if (a[i].kind == PLAN_COLD_RESTART && a[i].from == self) {
			/* no claim: only the owner acts on its running guest; the target claims
			 * the restart once GUEST_STOPPED was applied */
			j = add_job(ex, JOB_STOP, a[i].guest, self, a[i].to);
			if (j) {
				ha_state_local_stop(ex->env.st, a[i].guest, true);
				start_job(ex, j, -1);
			}
		} else if (a[i].kind == PLAN_COLD_RESTART) {
			if (!restart_may_start(ex, a[i].from, a[i].guest))
				continue;
			add_job(ex, JOB_CLAIM, a[i].guest, a[i].from, a[i].to);
			submit(ex, HA_MSG_RESTART_START, a[i].guest, a[i].from, a[i].to, 0, 0,
			       a[i].reason);
		}
	}
	free(a);
}

/*
 * Destroy the copies of guests this node still runs although they run elsewhere since it was
 * fenced (ha_state_stale_copy). True while any is left: nothing else is done until then.
 */
static bool destroy_stale_copies(struct ha_executor *ex)
{
	const char *name;
	bool left = false;
	struct job *j;

	for (size_t i = 0; (name = ha_state_stale_copy(ex->env.st, i)) != NULL;) {
		left = true;
		if (find_job(ex, JOB_STALE, name, 0)) {
			i++; /* its destroy runs, or failed and waits to be retried */
			continue;
		}
		j = add_job(ex, JOB_STALE, name, self_id(ex), 0);
		if (!j)
			break;
		log_warn("executor: %s runs here but on another node in the cluster's view (this "
		         "node was fenced): destroying this stale copy first",
		         name);
		ha_state_stale_copy_done(ex->env.st, name); /* name is gone now: i stays */
		start_job(ex, j, -1);
	}
	return left || running(ex, JOB_STALE) > 0;
}

/*
 * Is this node cut off, so that the cluster may fence it and restart its guests elsewhere
 * while they still run here? Without quorum, or quorate while every other node of the view is
 * down: votequorum's two_node (or last_man_standing) keeps a lone node quorate, and then the
 * other side of a split is quorate too and may have fenced this one.
 */
static bool cut_off(const struct ha_executor *ex)
{
	const struct ha_node_info *nodes;
	size_t n = ha_state_nodes(ex->env.st, &nodes), others = 0, down = 0;

	if (!ha_state_quorate(ex->env.st))
		return true;
	for (size_t i = 0; i < n; i++) {
		if (nodes[i].nodeid == self_id(ex))
			continue;
		others++;
		down += nodes[i].state == HA_NODE_DOWN || nodes[i].state == HA_NODE_FENCED ||
		        !nodes[i].member;
	}
	return others > 0 && down == others;
}

/*
 * Cut off (cut_off: without quorum, or alone though quorate) for self_fence_s, and again every
 * SELF_FENCE_EVERY_MS while it lasts: the self-fence job, which destroys the guests here whose
 * LUNs the cluster took away (the one action a node without quorum takes, on its own guests).
 */
static void self_fence(struct ha_executor *ex)
{
	int64_t now = loop_now_ms();
	struct job *j;

	if (!ex->env.cfg->self_fence_s || !cut_off(ex)) {
		ex->cut_off_since = 0;
		return;
	}
	if (!ex->cut_off_since)
		ex->cut_off_since = now;
	if (now - ex->cut_off_since < (int64_t)ex->env.cfg->self_fence_s * 1000 ||
	    find_job(ex, JOB_SELF_FENCE, "", 0))
		return;
	j = add_job(ex, JOB_SELF_FENCE, "", self_id(ex), 0);
	if (j)
		start_job(ex, j, -1);
}

void ha_exec_reconcile(struct ha_executor *ex)
{
	if (!ex || !ex->env.hv || !ha_state_synced(ex->env.st))
		return;
	expire_jobs(ex, loop_now_ms());
	track_fenced(ex);
	self_fence(ex);
	if (!ha_state_may_act(ex->env.st))
		return; /* no quorum, or the view not confirmed in this membership: no action at
		         * all but the self-fence check (running jobs finish) */
	if (destroy_stale_copies(ex))
		return;
	resolve_away(ex);
	start_accepted(ex);
	claim_planned(ex);
}

/* The member whose address peer is (its IP in host), or 0 for a stranger. */
static uint32_t peer_node(const struct ha_executor *ex, const struct sockaddr_storage *peer,
                          char *host, size_t len)
{
	ip_text(peer, host, len);
	for (size_t i = 0; i < ex->naddrs; i++)
		if (ex->addrs[i].ip[0] && !strcmp(ex->addrs[i].ip, host))
			return ex->addrs[i].nodeid;
	return 0;
}

static int receivers_from(const struct ha_executor *ex, uint32_t node)
{
	int n = 0;

	for (size_t i = 0; i < MAX_JOBS; i++)
		n += ex->jobs[i].used && ex->jobs[i].pid > 0 && ex->jobs[i].kind == JOB_RECV &&
		     ex->jobs[i].from == node;
	return n;
}

static void on_incoming(struct loop *loop, struct loop_fd *w, int fd, short revents, void *arg)
{
	struct ha_executor *ex = arg;
	struct sockaddr_storage peer;
	socklen_t plen;
	char host[INET6_ADDRSTRLEN];
	uint32_t from;
	struct job *j;
	int conn;

	(void)loop;
	(void)w;
	(void)revents;
	plen = sizeof(peer);
	conn = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
	if (conn < 0)
		return;
	/* only cluster members migrate to us, and a member at most MAX_RECEIVERS_PER_PEER
	 * at once: a stranger cannot hold the receivers' slots while it stalls authenticating */
	from = peer_node(ex, &peer, host, sizeof(host));
	if (!from) {
		log_warn("migration listener: connection from %s refused: not a cluster node's "
		         "address",
		         host);
		close(conn);
		return;
	}
	if (receivers_from(ex, from) >= MAX_RECEIVERS_PER_PEER) {
		log_warn("migration listener: node %" PRIu32 " (%s) already has %d migrations "
		         "arriving here; connection dropped",
		         from, host, MAX_RECEIVERS_PER_PEER);
		close(conn);
		return;
	}
	if (running(ex, JOB_RECV) >= MAX_RECEIVERS || !(j = add_job(ex, JOB_RECV, "", from, 0))) {
		log_warn("migration listener: %d receivers busy, connection dropped",
		         MAX_RECEIVERS);
		close(conn);
		return;
	}
	start_job(ex, j, conn);
	if (j->pid <= 0)
		j->used = false;
	close(conn);
}

/*
 * Listen for incoming migrations on addr (this node's ring0 address, or migration_listen),
 * replacing a listener on another address. Logged either way.
 */
static void open_listener(struct ha_executor *ex, const char *addr)
{
	char spec[96];
	int fd;

	if (!ex->env.cfg->migration_key[0] || !ex->env.hv || !strcmp(addr, ex->listen_addr))
		return;
	snprintf(spec, sizeof(spec), strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr,
	         ex->env.cfg->migration_port);
	fd = tr_listen(spec);
	if (fd < 0) {
		log_error("migration listener: cannot listen on %s (%s): this node receives no "
		          "live migration; set migration_listen in haagent.conf to an address of "
		          "this host",
		          spec, err_str(fd));
		return;
	}
	if (ex->listen_watch)
		loop_fd_remove(ex->listen_watch);
	if (ex->listen_fd >= 0)
		close(ex->listen_fd);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ex->listen_fd = fd;
	ex->listen_watch = loop_fd_add(ex->env.loop, fd, POLLIN, on_incoming, ex);
	snprintf(ex->listen_addr, sizeof(ex->listen_addr), "%s", addr);
	log_info("migration listener on %s", spec);
}

int ha_exec_new(struct ha_executor **ex_r, const struct ha_exec_env *env)
{
	struct ha_executor *ex = calloc(1, sizeof(*ex));
	int rc;

	*ex_r = NULL;
	if (!ex)
		return ERR_NOMEM;
	ex->env = *env;
	ex->listen_fd = -1;
	rc = loop_signal_add(env->loop, SIGCHLD, on_sigchld, ex);
	if (rc < 0) {
		free(ex);
		return rc;
	}
	/* without migration_listen, the listener waits for this node's ring0 address */
	if (env->cfg->migration_listen[0])
		open_listener(ex, env->cfg->migration_listen);
	*ex_r = ex;
	return 0;
}

void ha_exec_free(struct ha_executor *ex)
{
	if (!ex)
		return;
	if (ex->listen_watch)
		loop_fd_remove(ex->listen_watch);
	if (ex->listen_fd >= 0)
		close(ex->listen_fd);
	free(ex);
}
