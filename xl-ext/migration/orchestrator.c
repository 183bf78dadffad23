/*
 * orchestrator.c - one live migration from a request to an outcome (orchestrator.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/migration/handover.h"
#include "xl-ext/migration/orchestrator.h"
#include "xl-ext/precopy/postcopy.h"
#include "xl-ext/migration/preflight_exchange.h"
#include "xl-ext/migration/transport.h"
#include "xl-ext/migration/xlproto.h"

#define MIG_REPLY_TIMEOUT_MS   120000
#define MIG_CONNECT_TIMEOUT_MS 10000
#define MIG_REAP_WAIT_MS       2000

void mig_request_init(struct mig_request *req)
{
	memset(req, 0, sizeof(*req));
	req->channel_fd = -1;
	req->ssh = "ssh";
	req->reply_timeout_ms = MIG_REPLY_TIMEOUT_MS;
	req->params.policy.kind = PC_POLICY_ADAPTIVE;
	req->params.policy.on_stall = PC_STALL_THROTTLE;
	req->params.prepage = PC_PREPAGE_DEFAULT;
}

const char *mig_result_text(enum mig_result result)
{
	switch (result) {
	case MIG_OK:
		return "ok";
	case MIG_REFUSED:
		return "refused; the domain was not touched";
	case MIG_FAILED_RESUMED:
		return "failed; domain resumed on the source";
	case MIG_FAILED_TARGET:
		return "failed at the target; domain resumed on the source";
	case MIG_FAILED_UNDEFINED:
		return "failed after the point of no return; domain state undefined";
	case MIG_FAILED_NO_RESUME:
		return "failed to suspend; domain left as it is";
	case MIG_FAILED_POSTCOPY:
		return "post-copy failed after the switch-over; domain paused on the target for "
		       "good";
	}
	return "?";
}

pid_t mig_spawn_rune(const char *rune, int *send_fd, int *recv_fd)
{
	int to[2], from[2];
	pid_t pid;

	if (pipe2(to, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(from, O_CLOEXEC) < 0) {
		close(to[0]);
		close(to[1]);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		/* Ctrl-C cancels through the sender, not by killing the transport */
		signal(SIGINT, SIG_IGN);
		execlp("sh", "sh", "-c", rune, (char *)NULL);
		perror("failed to exec sh");
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	if (pid < 0) {
		close(to[1]);
		close(from[0]);
		return -1;
	}
	*send_fd = to[1];
	*recv_fd = from[0];
	return pid;
}

void mig_reap_child(pid_t pid)
{
	int status;

	for (int i = 0; i < MIG_REAP_WAIT_MS / 10; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			if (WIFEXITED(status) && WEXITSTATUS(status))
				log_info("migration transport process exited with status %d",
				         WEXITSTATUS(status));
			return;
		}
		if (r < 0)
			return;
		usleep(10000);
	}
	log_warn("migration transport process [%ld] not exiting, no longer waiting", (long)pid);
}

/* The configuration JSON to send: -C FILE overrides the running domain's. */
static int config_for(const struct mig_request *req, uint32_t domid, const char *name,
                      char **json_r)
{
	if (!req->config_file)
		return req->ops->config_json(req->hv, domid, json_r);
	if (!req->ops->config_file_json) {
		log_error("-C %s: the %s backend cannot convert configuration files",
		          req->config_file, req->ops->name);
		return ERR_NOTSUP;
	}
	return req->ops->config_file_json(req->hv, req->config_file, name, json_r);
}

/* Steps 2-4: disks, pre-flight, estimate. 0 when the migration may go on. */
static int check(const struct mig_request *req, uint32_t domid, const struct hv_domain_info *info,
                 struct mig_outcome *out, bool *xlext_r)
{
	int rc;

	rc = mig_disks_collect(req->ops, req->hv, domid, out->name, req->config_file, &out->disks);
	if (!rc)
		rc = mig_disks_check(out->name, &out->disks, req->allow_local_disks);
	if (rc) {
		log_error("migration of %s to %s refused by the disk check; the domain was not "
		          "touched",
		          out->name, out->where);
		return rc;
	}
	/* a --listen receiver, or the caller's own channel to mig_serve, is xl-ext */
	*xlext_r = req->tcp_addr != NULL || req->channel_fd >= 0;
	if (!*xlext_r && !req->no_preflight) {
		struct preflight_args pa = {
		    .ops = req->ops,
		    .hv = req->hv,
		    .info = info,
		    .ssh = req->ssh ? req->ssh : "ssh",
		    .host = req->host,
		    .dry_run = req->dry_run,
		    .disks = &out->disks,
		    .xlext_r = xlext_r,
		};

		rc = preflight_run(&pa);
	}
	out->mode = req->params.mode;
	if (!rc && (req->estimate || req->max_downtime_ms || req->max_total_s > 0 ||
	            req->params.mode == MIG_MODE_AUTO)) {
		struct mig_params p = req->params; /* the link's rate for the model only */
		struct estimate_args ea = {.params = &p,
		                           .max_downtime_ms = req->max_downtime_ms,
		                           .max_total_s = req->max_total_s,
		                           .postcopy = req->ops->postcopy_end && req->tcp_addr &&
		                                       req->channel_fd < 0,
		                           .postcopy_backend = req->ops->postcopy_end != NULL,
		                           .mode_r = &out->mode};

		/* no --bandwidth: a burst through the transport the migration takes (ssh; a
		 * --listen receiver serves one migration only) */
		if (!p.bandwidth_Bps && req->ops->sample_dirty && !req->tcp_addr &&
		    req->channel_fd < 0 && req->host) {
			double Bps = 0;

			if (!preflight_burst(req->ssh ? req->ssh : "ssh", req->host, PF_BURST_BYTES,
			                     &Bps)) {
				fprintf(stderr,
				        "estimate: the transport carried %llu MiB at %.0f Mbit/s\n",
				        PF_BURST_BYTES >> 20, Bps * 8 / 1e6);
				p.bandwidth_Bps = (uint64_t)Bps;
			}
		}
		rc = preflight_estimate(req->ops, req->hv, domid, out->name, &ea);
	}
	return rc;
}

/* Step 6: the hand-over between xl-ext ends, or the stranded-reservation check. */
static int storage(const struct mig_request *req, bool dest_xlext, struct mig_outcome *out,
                   struct mig_send_args *a)
{
	int rc;

	if (dest_xlext) {
		rc = ho_sender_new(out->name, out->where, &out->disks, req->ops->kernel_initiator,
		                   &out->handover);
		if (rc) {
			log_error("migration of %s to %s refused: its disks cannot be handed over "
			          "(above); the domain was not touched",
			          out->name, out->where);
			return rc;
		}
		a->ext = &ho_ext_ops;
		a->ext_ctx = out->handover;
		a->ext_request = ho_sender_request(out->handover);
		return 0;
	}
	rc = ho_check_not_stranded(out->name, out->where, &out->disks, req->ops->kernel_initiator);
	if (rc)
		return rc;
	for (unsigned i = 0; i < out->disks.n; i++)
		if (out->disks.info[i].kind == DISK_ISCSI) {
			log_warn("migration of %s: %s is not xl-ext: its LUN identity and "
			         "reservation hand-over are skipped (disk %s)",
			         out->name, out->where, out->disks.info[i].vdev);
			break;
		}
	return 0;
}

/* Step 7: connect. The child of the rune transport in *child_r (-1 over TCP). */
static int connect_transport(const struct mig_request *req, struct mig_send_args *a, pid_t *child_r)
{
	char *rune;

	*child_r = -1;
	if (req->channel_fd >= 0) {
		a->send_fd = dup(req->channel_fd);
		a->recv_fd = dup(req->channel_fd);
		return a->send_fd < 0 || a->recv_fd < 0 ? err_from_errno(errno) : 0;
	}
	if (req->tcp_addr) {
		uint32_t flags =
		    (req->paused ? TR_FLAG_PAUSED : 0) | (req->params.debug ? TR_FLAG_DEBUG : 0);

		a->send_fd = tr_open_authenticated(req->tcp_addr, req->key_file, flags,
		                                   MIG_CONNECT_TIMEOUT_MS);
		if (a->send_fd < 0) {
			int rc = a->send_fd;

			a->send_fd = -1;
			return rc;
		}
		a->recv_fd = dup(a->send_fd);
		return a->recv_fd < 0 ? err_from_errno(errno) : 0;
	}
	rune = xlp_rune(req->ssh ? req->ssh : "ssh", req->host, "xl-ext", isatty(2), req->no_daemon,
	                req->params.debug, req->paused, NULL);
	if (!rune)
		return ERR_NOMEM;
	*child_r = mig_spawn_rune(rune, &a->send_fd, &a->recv_fd);
	if (*child_r < 0) {
		int rc = err_from_errno(errno);

		log_error_errno(errno, "cannot start the migration transport '%s'", rune);
		free(rune);
		return rc;
	}
	free(rune);
	return 0;
}

/* migrate --streams: each extra stream is one more authenticated connection to the receiver. */
static int open_stream(void *arg)
{
	const struct mig_request *req = arg;

	return tr_open_authenticated(req->tcp_addr, req->key_file, TR_FLAG_STREAM,
	                             MIG_CONNECT_TIMEOUT_MS);
}

int mig_run(const struct mig_request *req, struct mig_outcome *out)
{
	struct mig_send_args a = {.send_fd = -1, .recv_fd = -1};
	struct pc_streams extra = {.open = open_stream, .arg = (void *)req};
	struct hv_domain_info info;
	bool dest_xlext = false;
	char *json = NULL;
	pid_t child = -1;
	int rc;

	memset(out, 0, sizeof(*out));
	out->result = MIG_REFUSED;
	out->where = req->tcp_addr ? req->tcp_addr : req->host ? req->host : "the caller's channel";
	out->policy = req->ops->native_precopy ? req->ops->native_precopy
	                                       : pc_policy_name(req->params.policy.kind);
	a.ops = req->ops;
	a.hv = req->hv;
	rc = req->ops->lookup(req->hv, req->domain, &a.domid);
	if (rc) {
		log_error("domain '%s' does not exist", req->domain);
		goto out;
	}
	rc = req->ops->info(req->hv, a.domid, &info);
	if (rc)
		goto out;
	snprintf(out->name, sizeof(out->name), "%s", info.name);
	if (req->params.streams > 1 && (!req->tcp_addr || req->channel_fd >= 0)) {
		log_error("migrate --streams: more than one stream needs the direct transport "
		          "(--tcp ADDR:PORT --key FILE); ssh carries one");
		rc = ERR_INVAL;
		goto out;
	}
	if (req->params.mode != MIG_MODE_PRECOPY && req->params.mode != MIG_MODE_AUTO &&
	    !req->ops->postcopy_end) {
		log_error("migrate --mode %s: the %s backend has no post-copy (Xen 4.17 has none); "
		          "use --mode precopy",
		          mig_mode_name(req->params.mode), req->ops->name);
		rc = ERR_NOTSUP;
		goto out;
	}
	if (req->params.mode != MIG_MODE_PRECOPY && req->params.mode != MIG_MODE_AUTO &&
	    (!req->tcp_addr || req->channel_fd >= 0)) {
		log_error("migrate --mode %s: post-copy asks for pages on a connection of its own, "
		          "which needs the direct transport (--tcp ADDR:PORT --key FILE)",
		          mig_mode_name(req->params.mode));
		rc = ERR_INVAL;
		goto out;
	}
	if ((req->tcp_addr || req->channel_fd >= 0) && req->dry_run) {
		log_error(
		    "migrate --dry-run asks the destination through the ssh (-s) transport; a "
		    "--listen receiver serves one migration only");
		rc = ERR_INVAL;
		goto out;
	}
	rc = check(req, a.domid, &info, out, &dest_xlext);
	if (rc || req->dry_run)
		goto out;
	rc = config_for(req, a.domid, out->name, &json);
	if (rc) {
		log_error("cannot get the configuration of domain %s to send", out->name);
		goto out;
	}
	rc = storage(req, dest_xlext, out, &a);
	if (rc)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	rc = connect_transport(req, &a, &child);
	if (rc) {
		log_error("migration of %s to %s not started; the domain was not touched",
		          out->name, out->where);
		goto out;
	}
	a.name = out->name;
	a.config_json = json;
	a.peer = out->where;
	a.reply_timeout_ms =
	    req->reply_timeout_ms > 0 ? req->reply_timeout_ms : MIG_REPLY_TIMEOUT_MS;
	a.params = req->params;
	a.params.mode = out->mode == MIG_MODE_AUTO ? MIG_MODE_PRECOPY : out->mode;
	a.params.extra = req->params.streams > 1 || a.params.mode ? &extra : NULL;
	/* the receiver may take none of the stream for as long as it may take to answer */
	a.params.stall_timeout_ms = a.reply_timeout_ms;
	rc = mig_send(&a, &out->report, &out->result);
	pc_send_release(); /* what the stream kept past the downtime */
out:
	if (a.send_fd >= 0)
		close(a.send_fd);
	if (child > 0)
		mig_reap_child(child);
	if (a.recv_fd >= 0)
		close(a.recv_fd);
	free(json);
	out->rc = rc;
	return rc;
}

void mig_outcome_line(const struct mig_outcome *out, char *buf, size_t len)
{
	const struct mig_report *r = &out->report;
	double downtime = (double)(r->t_end_us - r->t_pause_us) / 1000.0;

	if (!out->rc && r->total_bytes && r->postcopy.used)
		snprintf(buf, len,
		         "Migration of %s to %s successful (downtime %.1f ms, %.2f x memory sent; "
		         "post-copy: %llu of %llu pages asked for, the last one %.1f ms after the "
		         "start).",
		         out->name, out->where, downtime,
		         r->nr_pages ? (double)r->total_bytes / ((double)r->nr_pages * 4096) : 0,
		         (unsigned long long)r->postcopy.pulled,
		         (unsigned long long)r->postcopy.needed,
		         (double)(r->postcopy.t_end_us - r->t_start_us) / 1000.0);
	else if (!out->rc && r->total_bytes)
		snprintf(buf, len,
		         "Migration of %s to %s successful (downtime %.1f ms, %.2f x memory sent).",
		         out->name, out->where, downtime,
		         r->nr_pages ? (double)r->total_bytes / ((double)r->nr_pages * 4096) : 0);
	else if (!out->rc) /* xen: libxenguest does not say how much it sent */
		snprintf(buf, len, "Migration of %s to %s successful (downtime %.1f ms).",
		         out->name, out->where, downtime);
	else if (out->result == MIG_OK)
		snprintf(buf, len, "Migration of %s to %s failed: %s.", out->name, out->where,
		         err_str(out->rc));
	else /* "Migration of g1 to h2 failed; domain resumed on the source (...)." */
		snprintf(buf, len, "Migration of %s to %s %s (%s).", out->name[0] ? out->name : "?",
		         out->where, mig_result_text(out->result), err_str(out->rc));
}

json_object *mig_outcome_json(const struct mig_request *req, const struct mig_outcome *out)
{
	const struct pc_params *p = &req->params.policy;
	json_object *o = mig_report_json(&out->report), *dj = mig_disks_json(&out->disks);
	bool native = req->ops->native_precopy != NULL;

	json_object_object_add(o, "domain", json_object_new_string(out->name));
	json_object_object_add(o, "destination", json_object_new_string(out->where));
	json_object_object_add(o, "backend", json_object_new_string(req->ops->name));
	json_object_object_add(o, "result", json_object_new_string(out->rc ? "failed" : "ok"));
	json_object_object_add(o, "outcome", json_object_new_string(mig_result_text(out->result)));
	json_object_object_add(o, "error",
	                       out->rc ? json_object_new_string(err_str(out->rc)) : NULL);
	/* what really ran: the project's engine with these settings, or the backend's own */
	json_object_object_add(o, "policy", json_object_new_string(out->policy));
	json_object_object_add(
	    o, "on_stall", native ? NULL : json_object_new_string(pc_on_stall_name(p->on_stall)));
	json_object_object_add(
	    o, "downtime_target_ms",
	    native ? NULL
	           : json_object_new_int(
	                 (int)(p->downtime_ms ? p->downtime_ms : PC_DEFAULT_DOWNTIME_MS)));
	json_object_object_add(
	    o, "bandwidth_cap_bps",
	    native ? NULL : json_object_new_int64((int64_t)req->params.bandwidth_Bps * 8));
	if (out->handover)
		ho_sender_report(out->handover, dj, o);
	else
		json_object_object_add(o, "handover", NULL);
	json_object_object_add(o, "disks", dj);
	return o;
}

void mig_outcome_dispose(struct mig_outcome *out)
{
	ho_sender_free(out->handover);
	out->handover = NULL;
	mig_disks_dispose(&out->disks);
}

int mig_serve(const struct mig_serve_request *req, struct mig_report *report, uint32_t *domid_r)
{
	struct mig_receive_args a = {
	    .ops = req->ops,
	    .hv = req->hv,
	    .send_fd = req->send_fd,
	    .recv_fd = req->recv_fd,
	    .paused = req->paused,
	    .debug = req->debug,
	    .ext = &ho_ext_ops,
	    .streams = req->streams,
	};
	struct ho_receiver *ho = NULL;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	rc = ho_receiver_new(req->ops->kernel_initiator, &ho);
	if (rc)
		return rc;
	a.ext_ctx = ho;
	rc = mig_receive(&a, report, domid_r);
	pc_receive_release(); /* what the stream kept past the downtime */
	ho_receiver_free(ho);
	return rc;
}
