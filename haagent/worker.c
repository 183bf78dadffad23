/*
 * worker.c - the executor's child-process jobs (see worker.h).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "haagent/worker.h"
#include "xl-ext/migration/orchestrator.h"
#include "xl-ext/migration/transport.h"

#define REPLY_TIMEOUT_MS           60000
#define HA_FENCE_CMD_MAX           256
#define HA_FENCE_TIMEOUT_DEFAULT_S 60

void ha_worker_child_init(int keep_fd)
{
	sigset_t none;

	/* Nothing of the daemon's (corosync IPC, control and migration sockets, signalfd)
	 * leaks into a job or the domain processes it starts. */
	for (int fd = 3; fd < 1024; fd++)
		if (fd != keep_fd)
			close(fd);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
}

static int open_hv(const struct hv_ops *ops, struct loop **loop_r, struct hv **hv_r)
{
	int rc = loop_new(loop_r);

	if (rc == 0)
		rc = ops->open(hv_r, *loop_r);
	return rc;
}

int ha_worker_send(const struct hv_ops *ops, const char *guest, const char *addr,
                   const struct ha_config *cfg, int report_fd)
{
	struct mig_outcome out = {.result = MIG_REFUSED};
	struct loop *loop = NULL;
	struct mig_request req;
	char line[512];
	int rc, status = HA_WORKER_FAILED;

	mig_request_init(&req);
	req.ops = ops;
	req.domain = guest;
	req.host = addr;
	req.tcp_addr = addr;
	req.key_file = cfg->migration_key;
	req.reply_timeout_ms = REPLY_TIMEOUT_MS;
	req.params.policy.kind = (enum pc_policy_kind)cfg->migration_policy;
	req.params.policy.on_stall = (enum pc_on_stall)cfg->migration_on_stall;
	req.params.policy.downtime_ms = cfg->migration_downtime_ms;
	req.params.policy.max_iters = cfg->migration_max_iters;
	req.params.bandwidth_Bps = (uint64_t)cfg->migration_bandwidth_mibps << 20;
	rc = open_hv(ops, &loop, &req.hv);
	if (rc < 0) {
		log_error("migration of %s to %s: cannot open the hypervisor: %s", guest, addr,
		          err_str(rc));
		goto out;
	}
	/* the same checks, hand-over and report as "xl-ext migrate" */
	rc = mig_run(&req, &out);
	mig_outcome_line(&out, line, sizeof(line));
	if (rc == 0) {
		double total_ms = (double)(out.report.t_end_us - out.report.t_start_us) / 1000.0;
		double down_ms = (double)(out.report.t_end_us - out.report.t_pause_us) / 1000.0;

		log_info("migration of %s to %s done in %.1f ms, downtime %.1f ms (%s)", guest,
		         addr, total_ms, down_ms,
		         out.handover ? "storage handed over" : "no shared storage to hand over");
		if (report_fd >= 0) {
			int n = snprintf(line, sizeof(line), "downtime %.1f ms, total %.1f ms",
			                 down_ms, total_ms);

			if (write(report_fd, line, (size_t)n) < 0)
				log_debug("migration of %s: the report line to the agent was lost",
				          guest);
		}
		status = HA_WORKER_OK;
	} else if (out.result == MIG_FAILED_POSTCOPY) {
		/* the copy here is older than the guest's disks: it must never run again */
		log_error(
		    "%s: both copies of %s stay paused (here as %s--migratedaway); restart it "
		    "from its disks",
		    line, guest, guest);
		status = HA_WORKER_LOST;
	} else if (out.result == MIG_FAILED_UNDEFINED) {
		/*
		 * Past GO the target may run it: never resume here on our own. The paused copy
		 * (<guest>--migratedaway) stays until the cluster knows whether the target runs the
		 * guest (the executor then drops it or resumes it): it may be the only copy left.
		 */
		log_error("%s: kept paused here as %s--migratedaway until %s reports whether it "
		          "runs it",
		          line, guest, addr);
		status = HA_WORKER_UNDEFINED;
	} else {
		log_error("%s; it runs here", line);
	}
out:
	mig_outcome_dispose(&out);
	if (req.hv)
		ops->close(req.hv);
	loop_free(loop);
	return status;
}

int ha_worker_receive(const struct hv_ops *ops, int conn, const char *key_file)
{
	struct mig_serve_request req = {.ops = ops, .send_fd = conn, .recv_fd = conn};
	struct loop *loop = NULL;
	struct mig_report rep;
	struct tr_key key;
	uint32_t flags = 0, domid = 0;
	int rc;

	rc = tr_key_load(key_file, &key);
	if (rc == 0) {
		rc = tr_auth_receiver(conn, &key, "migration sender", &flags);
		tr_key_clear(&key);
	}
	if (rc < 0)
		return HA_WORKER_FAILED; /* logged by the transport */
	tr_tune_socket(conn);
	req.paused = flags & TR_FLAG_PAUSED;
	req.debug = flags & TR_FLAG_DEBUG;
	rc = open_hv(ops, &loop, &req.hv);
	if (rc == 0)
		rc = mig_serve(&req, &rep, &domid);
	if (req.hv)
		ops->close(req.hv);
	loop_free(loop);
	return rc == 0 ? HA_WORKER_OK : HA_WORKER_FAILED;
}

/* "<what> 12.3 ms" since t0 to fd (if >= 0): the figure the executor multicasts. */
static void report_span(int fd, const char *what, int64_t t0_us)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%s %.1f ms", what,
	                 (double)(loop_now_us() - t0_us) / 1000.0);

	if (fd >= 0 && write(fd, line, (size_t)n) < 0)
		log_debug("the %s figure to the agent was lost", what);
}

int ha_worker_create(const struct hv_ops *ops, const char *config_path, const char *guest,
                     int report_fd)
{
	struct hv_create_args args = {.paused = false, .name = guest};
	struct loop *loop = NULL;
	struct hv *hv = NULL;
	int64_t t0 = loop_now_us();
	uint32_t domid;
	int rc;

	if (!config_path || !config_path[0]) {
		log_error("cold restart of %s: no 'config' for it in haagent.conf", guest);
		return HA_WORKER_FAILED;
	}
	rc = open_hv(ops, &loop, &hv);
	if (rc == 0 && ops->lookup(hv, guest, &domid) == 0)
		rc = ERR_EXISTS; /* never a second copy */
	else if (rc == 0)
		rc = ops->create(hv, config_path, &args, &domid);
	if (rc < 0) {
		log_error("cold restart of %s from %s failed: %s", guest, config_path, err_str(rc));
	} else {
		log_info("guest %s started from %s (domid %u)", guest, config_path, domid);
		report_span(report_fd, "start", t0);
	}
	if (hv)
		ops->close(hv);
	loop_free(loop);
	return rc == 0 ? HA_WORKER_OK : HA_WORKER_FAILED;
}

int ha_worker_destroy(const struct hv_ops *ops, const char *guest, int report_fd)
{
	struct loop *loop = NULL;
	struct hv *hv = NULL;
	int64_t t0 = loop_now_us();
	uint32_t domid;
	int rc;

	rc = open_hv(ops, &loop, &hv);
	if (rc == 0)
		rc = ops->lookup(hv, guest, &domid);
	if (rc == ERR_NOTFOUND) {
		log_info("%s does not run here (any more): nothing to destroy", guest);
		rc = 0;
	} else if (rc == 0) {
		rc = ops->destroy(hv, domid);
	}
	if (rc < 0)
		log_error("destroying %s failed: %s", guest, err_str(rc));
	else
		report_span(report_fd, "stop", t0);
	if (hv)
		ops->close(hv);
	loop_free(loop);
	return rc == 0 ? HA_WORKER_OK : HA_WORKER_FAILED;
}

int ha_worker_list(const struct hv_ops *ops, struct hv_domain_info **doms_r, size_t *n_r)
{
	struct loop *loop = NULL;
	struct hv *hv = NULL;
	int rc = open_hv(ops, &loop, &hv);

	if (rc == 0)
		rc = ops->list(hv, doms_r, n_r);
	if (hv)
		ops->close(hv);
	loop_free(loop);
	return rc;
}

int ha_worker_stop_for_restart(const struct hv_ops *ops, const char *guest, const char *config_path,
                               int report_fd)
{
	struct loop *loop = NULL;
	struct hv *hv = NULL;
	char *json = NULL;
	int rc = 0;

	if (!config_path || !config_path[0]) {
		log_error("cold restart of %s: not shut down here: haagent.conf gives it no "
		          "'config', so no node could start it again; it keeps running",
		          guest);
		return HA_WORKER_FAILED;
	}
	if (ops->config_file_json) {
		rc = open_hv(ops, &loop, &hv);
		if (rc == 0)
			rc = ops->config_file_json(hv, config_path, guest, &json);
		free(json);
		if (hv)
			ops->close(hv);
		loop_free(loop);
	} else if (access(config_path, R_OK) != 0) {
		rc = ERR_NOTFOUND;
	}
	if (rc < 0) {
		log_error("cold restart of %s: not shut down here: its config %s cannot be read "
		          "(%s), so it could not be started again from it; it keeps running: fix "
		          "'config' in haagent.conf",
		          guest, config_path, err_str(rc));
		return HA_WORKER_FAILED;
	}
	return ha_worker_destroy(ops, guest, report_fd);
}

int ha_worker_settle_away(const struct hv_ops *ops, const char *guest, bool resume)
{
	char away[HV_NAME_MAX + 16];
	struct loop *loop = NULL;
	struct hv *hv = NULL;
	uint32_t domid;
	int rc;

	snprintf(away, sizeof(away), "%s--migratedaway", guest);
	if (!resume)
		return ha_worker_destroy(ops, away, -1);
	rc = open_hv(ops, &loop, &hv);
	if (rc == 0)
		rc = ops->lookup(hv, away, &domid);
	if (rc == 0)
		rc = ops->rename(hv, domid, away, guest);
	if (rc == 0)
		rc = ops->unpause(hv, domid);
	if (rc < 0)
		log_error("resuming %s (paused here as %s) failed: %s", guest, away, err_str(rc));
	else
		log_warn("%s resumed here: its migration broke past the point of no return and the "
		         "target does not run it",
		         guest);
	if (hv)
		ops->close(hv);
	loop_free(loop);
	return rc == 0 ? HA_WORKER_OK : HA_WORKER_FAILED;
}

int ha_worker_fence(const char *command, const char *node_name, int timeout_s)
{
	char script[HA_FENCE_CMD_MAX + 16];
	int64_t deadline;
	pid_t pid, r;
	int status = 0;

	if (timeout_s <= 0)
		timeout_s = HA_FENCE_TIMEOUT_DEFAULT_S;
	deadline = loop_now_ms() + (int64_t)timeout_s * 1000;

	if (!command || !command[0]) {
		log_error("node %s must be fenced but no fence_command is configured", node_name);
		return HA_WORKER_FAILED;
	}
	/* The node name is an argument, never part of the shell text. */
	snprintf(script, sizeof(script), "%s \"$1\"", command);
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0); /* its own group: a timeout kills whatever it started too */
		execl("/bin/sh", "sh", "-c", script, "sh", node_name, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		log_error_errno(errno, "cannot run the fence command for %s", node_name);
		return HA_WORKER_FAILED;
	}
	setpgid(pid, pid);
	while ((r = waitpid(pid, &status, WNOHANG)) == 0 || (r < 0 && errno == EINTR)) {
		if (loop_now_ms() >= deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			log_error(
			    "fence command '%s' for node %s did not finish within %d s (fence_"
			    "timeout_s): killed; the node is NOT fenced and none of its guests "
			    "restarts",
			    command, node_name, timeout_s);
			return HA_WORKER_FAILED;
		}
		usleep(20000);
	}
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_error("fence command '%s' for node %s failed (status %d)", command, node_name,
		          r >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return HA_WORKER_FAILED;
	}
	log_info("fence command '%s' for node %s succeeded", command, node_name);
	return HA_WORKER_OK;
}
