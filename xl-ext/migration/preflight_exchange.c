/*
 * preflight_exchange.c - the shell around preflight.c: gather the facts on each side, ask the
 * destination through the migration rune, print the verdict; and the --estimate sample.
 *
 *   sender:      <sshcmd> <host> xl-ext migrate-receive --preflight   (-s "": <host> --preflight)
 *                with, on stdin, nothing or one JSON line of iSCSI LUN identities to verify
 *                (mig_disks_identity_request)
 *   destination: prints one line of JSON (pf_dest_to_json, plus "luns" verdicts when asked)
 *                on stdout and exits 0
 *
 * Stock xl answers that with its usage text: the destination's checks are then skipped with a
 * warning, and the reachability check is the xl handshake's banner itself.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/loop.h"
#include "common/log.h"
#include "xl-ext/migration/disks.h"
#include "xl-ext/migration/orchestrator.h"
#include "xl-ext/migration/preflight_exchange.h"
#include "xl-ext/migration/preflight.h"
#include "xl-ext/migration/xlproto.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/precopy/engine_rate.h"
#include "xl-ext/precopy/predict.h"

#define PF_MAX_ANSWER       (1u << 20)
#define PF_MAX_REQUEST      (1u << 20)
#define PF_ESTIMATE_MS      1000
#define PF_ESTIMATE_WINDOWS 4 /* the sample's windows: their overlap gives the working set */
#define PF_TIMEOUT_MS       60000

/* This host's facts as a migration destination. */
static int collect_dest(const struct hv_ops *ops, struct hv *hv, struct pf_dest *dst)
{
	struct hv_domain_info *doms = NULL;
	struct hv_host_info hi;
	size_t n = 0;
	int rc;

	memset(dst, 0, sizeof(*dst));
	rc = ops->host_info(hv, &hi);
	if (rc)
		return rc;
	snprintf(dst->hypervisor, sizeof(dst->hypervisor), "%s", hi.hypervisor);
	snprintf(dst->version, sizeof(dst->version), "%s", hi.version);
	dst->free_kib = hi.free_kib;
	rc = ops->list(hv, &doms, &n);
	if (rc)
		return rc;
	dst->names = calloc(n ? n : 1, sizeof(*dst->names));
	if (!dst->names) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		dst->names[i] = strdup(doms[i].name);
		if (!dst->names[i]) {
			rc = ERR_NOMEM;
			goto out;
		}
		dst->n_names++;
	}
	if (ops->cpu_featureset) {
		/* unknown featuresets only skip the CPU check on the sender */
		if (ops->cpu_featureset(hv, HV_FEATURES_PV_MAX, &dst->pv_max))
			dst->pv_max.nr_words = 0;
		if (ops->cpu_featureset(hv, HV_FEATURES_HVM_MAX, &dst->hvm_max))
			dst->hvm_max.nr_words = 0;
	}
out:
	free(doms);
	return rc;
}

/* The sender's request on stdin (empty from senders before LUN verification); NULL if none. */
static char *read_request(void)
{
	char *buf;
	size_t len;

	if (isatty(0))
		return NULL;
	buf = malloc(PF_MAX_REQUEST + 1);
	if (!buf)
		return NULL;
	len = fread(buf, 1, PF_MAX_REQUEST, stdin);
	buf[len] = '\0';
	if (!len) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* This host's facts, plus the verdicts on the LUN identities the sender asked about. */
static int dest_answer(struct pf_dest *dst, const char *request, char **json_r)
{
	json_object *o;
	int rc;

	rc = pf_dest_to_json(dst, json_r);
	if (rc)
		return rc;
	o = json_tokener_parse(*json_r);
	if (!o)
		return ERR_INTERNAL;
	/* this receiver understands XLP_OPT_XLEXT (older xl-ext ones would not) */
	json_object_object_add(o, "handshake_ext", json_object_new_int(1));
	if (request)
		rc = mig_disks_verify_request(request, o);
	if (!rc) {
		free(*json_r);
		*json_r = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		if (!*json_r)
			rc = ERR_NOMEM;
	}
	json_object_put(o);
	return rc;
}

int preflight_serve(const struct hv_ops *ops, struct hv *hv)
{
	struct pf_dest dst = {0};
	char *json = NULL, *request = read_request();
	int rc;

	rc = collect_dest(ops, hv, &dst);
	if (!rc)
		rc = dest_answer(&dst, request, &json);
	if (!rc)
		printf("%s\n", json);
	else
		log_error("pre-flight: cannot describe this host: %s", err_str(rc));
	free(request);
	free(json);
	dst.answered = true;
	pf_dest_dispose(&dst);
	return rc;
}

/*
 * Run "sh -c cmd" in a process group of its own with stdin from in_path (NULL: /dev/null); its
 * stdout, at most max bytes, in *out_r (caller frees). The whole exchange is bounded by
 * PF_TIMEOUT_MS: a destination that does not answer (a silent network, a stuck ssh) is killed
 * and its answer is whatever came, so the checks are skipped, never waited for forever.
 */
static int run_capture(const char *cmd, const char *in_path, size_t max, char **out_r, int *exit_r)
{
	int64_t deadline = loop_now_ms() + PF_TIMEOUT_MS;
	char *buf = malloc(max + 1);
	size_t len = 0;
	int out[2], status = 0;
	pid_t pid, r;

	if (!buf)
		return ERR_NOMEM;
	if (pipe2(out, O_CLOEXEC) < 0) {
		free(buf);
		return err_from_errno(errno);
	}
	pid = fork();
	if (pid == 0) {
		int in = open(in_path ? in_path : "/dev/null", O_RDONLY);

		setpgid(0, 0);
		if (in < 0 || dup2(in, 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	if (pid < 0) {
		close(out[0]);
		free(buf);
		return err_from_errno(errno);
	}
	setpgid(pid, pid); /* also here: no window where the group does not exist */
	while (len < max) {
		int64_t left = deadline - loop_now_ms();
		ssize_t n;

		if (left <= 0 || fd_wait_readable(out[0], (int)left) == ERR_TIMEOUT) {
			log_warn("pre-flight: '%s' did not answer within %d s; stopped", cmd,
			         PF_TIMEOUT_MS / 1000);
			break;
		}
		n = read(out[0], buf + len, max - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(out[0]);
	/* the answer is in: what still runs of the command has two seconds to end */
	for (int i = 0; (r = waitpid(pid, &status, WNOHANG)) == 0; i++) {
		if (i == 200 || loop_now_ms() >= deadline) {
			kill(-pid, SIGKILL);
			r = waitpid(pid, &status, 0);
			break;
		}
		usleep(10000);
	}
	if (exit_r)
		*exit_r = r == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (r == pid && (!WIFEXITED(status) || WEXITSTATUS(status)))
		log_debug("pre-flight: '%s' exited with status %d", cmd,
		          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	buf[len] = '\0';
	*out_r = buf;
	return 0;
}

/* The request in a private temporary file, for the rune's stdin; its path in path (32 bytes). */
static int write_request(const char *request, char *path)
{
	size_t len = strlen(request);
	int fd, rc = 0;

	snprintf(path, 32, "/tmp/xl-ext-pf.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return err_from_errno(errno);
	if (write(fd, request, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
		rc = ERR_IO;
	close(fd);
	if (rc)
		unlink(path);
	return rc;
}

/*
 * Ask the destination for its facts, sending request (or nothing) on its stdin; dst->answered
 * is false when it did not (stock xl). Its JSON line in *line_r (caller frees) when it did.
 * *unreachable_r: ssh itself failed (exit 255, nothing printed): the host was not reached.
 */
static void query_dest(const char *ssh, const char *host, const char *request, struct pf_dest *dst,
                       char **line_r, bool *unreachable_r)
{
	char *rune = NULL, *answer = NULL, *line, in_path[32] = "";
	int status = -1;

	memset(dst, 0, sizeof(*dst));
	*line_r = NULL;
	*unreachable_r = false;
	if (request && write_request(request, in_path)) {
		log_warn("pre-flight: cannot write the LUN identities for %s to a temporary file",
		         host);
		in_path[0] = '\0';
	}
	if (ssh[0])
		rune = xlp_rune(ssh, host, "xl-ext", 0, 0, 0, 0, "--preflight");
	else if (asprintf(&rune, "%s --preflight", host) < 0)
		rune = NULL;
	if (!rune ||
	    run_capture(rune, in_path[0] ? in_path : NULL, PF_MAX_ANSWER, &answer, &status))
		goto out;
	/* ssh exits 255 for its own errors (name, connection, authentication) */
	*unreachable_r = ssh[0] && status == 255 && !answer[0];
	/* the answer is the last line; a login banner may come before it */
	line = answer;
	for (char *nl; (nl = strchr(line, '\n')) && nl[1];)
		line = nl + 1;
	if (pf_dest_from_json(line, dst))
		log_debug("pre-flight: '%s' did not answer with xl-ext's JSON", rune);
	else
		*line_r = strdup(line);
out:
	if (in_path[0])
		unlink(in_path);
	free(answer);
	free(rune);
}

/* Stock xl at the other end: is it there and does it speak the handshake? Reads its banner. */
static int probe_banner(const struct preflight_args *a)
{
	char *rune = xlp_rune(a->ssh, a->host, "xl-ext", 0, 0, 0, 0, NULL), *answer = NULL;
	int rc;

	if (!rune)
		return ERR_NOMEM;
	rc = run_capture(rune, NULL, xlp_banner_len(), &answer, NULL);
	if (!rc &&
	    (strlen(answer) != xlp_banner_len() || memcmp(answer, xlp_banner, xlp_banner_len()))) {
		log_error("pre-flight: '%s' did not answer with xl's migration banner: the "
		          "destination is unreachable or runs neither xl-ext nor xl",
		          rune);
		rc = ERR_PROTO;
	}
	free(answer);
	free(rune);
	return rc;
}

/* The domain and this host, as the source of a migration. */
static int collect_source(const struct preflight_args *a, struct pf_source *src)
{
	struct hv_host_info hi;
	int rc;

	memset(src, 0, sizeof(*src));
	src->name = a->info->name;
	src->type = a->info->type;
	src->memory_kib = a->info->memory_kib;
	rc = a->ops->host_info(a->hv, &hi);
	if (rc)
		return rc;
	snprintf(src->hypervisor, sizeof(src->hypervisor), "%s", hi.hypervisor);
	snprintf(src->version, sizeof(src->version), "%s", hi.version);
	if (a->ops->cpu_featureset &&
	    a->ops->cpu_featureset(a->hv,
	                           a->info->type == HV_TYPE_PV ? HV_FEATURES_PV_DEFAULT
	                                                       : HV_FEATURES_HVM_DEFAULT,
	                           &src->features))
		src->features.nr_words = 0;
	src->feature_name = a->ops->cpu_feature_name;
	return 0;
}

/*
 * Run the pre-flight checks for migrating a->info to a->host. Nothing is suspended or changed.
 * Failed checks are logged as errors, skipped ones as warnings; with a->dry_run every check's
 * verdict is printed on stderr. Returns 0 or the first failed check's error code.
 */
int preflight_run(const struct preflight_args *a)
{
	struct pf_source src;
	struct pf_dest dst;
	struct pf_result res;
	char *request = NULL, *line = NULL;
	int rc, disks_rc = 0;
	bool unreachable;

	rc = collect_source(a, &src);
	if (rc) {
		log_error("pre-flight: cannot describe this host: %s", err_str(rc));
		return rc;
	}
	if (a->disks) {
		rc = mig_disks_identity_request(a->disks, &request);
		if (rc) {
			log_error("migration of %s to %s refused: its disks' LUN identities cannot "
			          "be verified; the domain was not touched",
			          src.name, a->host);
			return rc;
		}
	}
	query_dest(a->ssh, a->host, request, &dst, &line, &unreachable);
	if (unreachable) {
		log_error(
		    "migration of %s to %s refused: %s cannot be reached with '%s' (it exited "
		    "255: ssh could not resolve, connect or log in; its message is above); the "
		    "domain was not touched",
		    src.name, a->host, a->host, a->ssh);
		rc = ERR_IO;
		goto out;
	}
	if (a->xlext_r) {
		json_object *o = dst.answered && line ? json_tokener_parse(line) : NULL;

		*a->xlext_r = o && json_object_object_get_ex(o, "handshake_ext", NULL);
		json_object_put(o);
	}
	if (request)
		disks_rc = mig_disks_apply_answer(src.name, a->host, a->disks, line);
	if (!dst.answered && a->dry_run) {
		rc = probe_banner(a);
		if (rc)
			goto out;
		fprintf(stderr, "pre-flight: reachable: ok (xl's migration banner)\n");
	} else if (a->dry_run) {
		fprintf(stderr, "pre-flight: reachable: ok (xl-ext %s host)\n", dst.hypervisor);
	}
	rc = pf_check(&src, &dst, &res);
	if (!rc)
		rc = disks_rc;
	else if (disks_rc)
		log_error("pre-flight: a disk is not the same LUN on %s (above)", a->host);
	if (!dst.answered && !a->dry_run)
		log_warn("pre-flight: %s did not answer xl-ext's query (stock xl there?): its "
		         "memory, name, CPU and version were not checked",
		         a->host);
	for (int id = 0; id < PF_NR_CHECKS; id++) {
		if (res.status[id] == PF_FAIL)
			log_error("pre-flight check '%s' failed for %s to %s: %s",
			          pf_check_name(id), src.name, a->host, res.message[id]);
		else if (res.status[id] == PF_SKIPPED &&
		         (a->dry_run || (dst.answered && src.features.nr_words)))
			log_warn("pre-flight check '%s' skipped: %s", pf_check_name(id),
			         res.message[id]);
		else if (a->dry_run)
			fprintf(stderr, "pre-flight: %s: ok\n", pf_check_name(id));
	}
	if (rc)
		log_error("migration of %s to %s refused by the pre-flight checks; the domain was "
		          "not touched",
		          src.name, a->host);
out:
	free(line);
	free(request);
	pf_dest_dispose(&dst);
	return rc;
}

/*
 * --estimate: sample the domain's dirty rate with log-dirty mode (xen backend) and print it.
 */
/* Whether a prediction is over --max-downtime-ms or --max-total-s. */
static bool over_limits(const struct estimate_args *ea, const struct pc_prediction *p)
{
	return (ea->max_downtime_ms && p->downtime_ms > ea->max_downtime_ms) ||
	       (ea->max_total_s > 0 && p->total_s > ea->max_total_s);
}

#define PF_ENGINE_RUNS 3

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The sample of a backend that tracks the working set: the model's prediction, and the limits. */
static int estimate_model(const struct hv_ops *ops, struct hv *hv, uint32_t domid, const char *name,
                          const struct estimate_args *ea)
{
	struct hv_dirty_sample s;
	struct pc_workload w;
	struct pc_prediction pm[MIG_MODE_AUTO] = {{0}}, *p;
	double link = ea->params ? (double)ea->params->bandwidth_Bps : 0, mem, engine,
	       er[PF_ENGINE_RUNS];
	unsigned nruns = 0;
	enum mig_mode mode = ea->mode_r ? *ea->mode_r : MIG_MODE_PRECOPY;
	int rc;

	rc = ops->sample_dirty(hv, domid, PF_ESTIMATE_MS / PF_ESTIMATE_WINDOWS, PF_ESTIMATE_WINDOWS,
	                       &s);
	if (rc) {
		log_error("cannot sample the dirtying of %s: %s", name, err_str(rc));
		return rc;
	}
	rc = pc_fit_workload(s.dirtied, s.windows, s.window_ms / 1000.0, s.union_pages, s.nr_pages,
	                     &w);
	if (rc)
		return rc;
	w.data_pages = s.data_pages;
	w.sends_all = s.sender_sends_all;
	mem = (double)w.nr_pages * 4096;
	fprintf(stderr,
	        "estimate: %s writes %.0f pages/s (%.1f MiB/s) within a working set of %llu pages "
	        "(%.0f MiB); %llu of its %llu pages hold data (sampled %u x %u ms)\n",
	        name, w.dirty_pps, w.dirty_pps * 4096 / 1048576, (unsigned long long)w.wws_pages,
	        (double)w.wws_pages * 4096 / 1048576, (unsigned long long)w.data_pages,
	        (unsigned long long)w.nr_pages, s.windows, s.window_ms);
	if (link <= 0) {
		if (ea->max_downtime_ms || ea->max_total_s > 0 || mode == MIG_MODE_AUTO) {
			log_error(
			    "migrate --max-downtime-ms/--max-total-s/--mode auto: the prediction "
			    "needs the link's rate: give --bandwidth RATE");
			return ERR_INVAL;
		}
		fprintf(stderr, "estimate: give --bandwidth RATE (the link's rate) for the "
		                "migration's predicted rounds, downtime, total time and bytes\n");
		return 0;
	}
	/* on a path faster than the engine (unshaped, or a fast LAN) the engine bounds it: the
	 * median of three streams through it (a busy host's CPU moves them unevenly) */
	for (unsigned i = 0;
	     i < PF_ENGINE_RUNS && !w.sends_all && !pc_engine_rate(PC_ENGINE_RATE_BYTES, &er[i]);
	     i++)
		nruns++;
	if (nruns == PF_ENGINE_RUNS) {
		qsort(er, nruns, sizeof(er[0]), cmp_double);
		engine = er[nruns / 2];
		fprintf(stderr,
		        "estimate: the migration engine moves %.0f Mbit/s on this host (the median "
		        "of %u streams of %llu MiB through it, both ends here: %.0f-%.0f)%s\n",
		        engine * 8 / 1e6, nruns, (unsigned long long)(PC_ENGINE_RATE_BYTES >> 20),
		        er[0] * 8 / 1e6, er[nruns - 1] * 8 / 1e6,
		        engine < link ? "; less than the link: the predictions take that rate"
		                      : "");
		if (engine < link)
			link = engine;
	}
	pc_predict(&ea->params->policy, &w, link, &pm[MIG_MODE_PRECOPY]);
	p = &pm[MIG_MODE_PRECOPY];
	fprintf(stderr,
	        "estimate: pre-copy (%s policy) at %.0f Mbit/s: %u live rounds, downtime %.1f ms "
	        "(%llu pages last), total %.2f s, %.0f MiB sent (%.2f x memory); %s (%s)%s\n",
	        pc_policy_name(ea->params->policy.kind), link * 8 / 1e6, p->rounds, p->downtime_ms,
	        (unsigned long long)p->final_pages, p->total_s, (double)p->bytes / 1048576,
	        (double)p->bytes / mem, pc_decision_name(p->decision), p->reason,
	        p->max_throttle ? ", throttled" : "");
	if (ea->postcopy || ea->postcopy_backend) {
		pc_predict_hybrid(&ea->params->policy, &w, link, &pm[MIG_MODE_HYBRID]);
		pc_predict_postcopy(&w, link, &pm[MIG_MODE_POSTCOPY]);
		p = &pm[MIG_MODE_HYBRID];
		fprintf(stderr,
		        "estimate: hybrid at %.0f Mbit/s: %u live rounds, then %llu pages "
		        "post-copied; downtime %.1f ms, total %.2f s, %.0f MiB sent (%.2f x "
		        "memory)\n",
		        link * 8 / 1e6, p->rounds, (unsigned long long)p->final_pages,
		        p->downtime_ms, p->total_s, (double)p->bytes / 1048576,
		        (double)p->bytes / mem);
		p = &pm[MIG_MODE_POSTCOPY];
		fprintf(
		    stderr,
		    "estimate: post-copy at %.0f Mbit/s: downtime %.1f ms, total %.2f s, %.0f MiB "
		    "sent (%.2f x memory); the guest waits for each page it touches before the "
		    "page arrived\n",
		    link * 8 / 1e6, p->downtime_ms, p->total_s, (double)p->bytes / 1048576,
		    (double)p->bytes / mem);
	}
	if (mode == MIG_MODE_AUTO) {
		/* pre-copy when it converges unthrottled within the limits (nothing is at risk
		 * while it runs), then hybrid, then post-copy */
		static const enum mig_mode order[] = {MIG_MODE_PRECOPY, MIG_MODE_HYBRID,
		                                      MIG_MODE_POSTCOPY};

		for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && mode == MIG_MODE_AUTO;
		     i++) {
			const struct pc_prediction *c = &pm[order[i]];

			if (order[i] != MIG_MODE_PRECOPY && !ea->postcopy)
				break;
			if (order[i] == MIG_MODE_PRECOPY &&
			    (c->decision != PC_STOP_AND_COPY || c->max_throttle))
				continue;
			if (!over_limits(ea, c))
				mode = order[i];
		}
		if (mode == MIG_MODE_AUTO) {
			log_error(
			    "migration of %s refused before anything moved: no mode is predicted "
			    "to %s%s",
			    name,
			    ea->max_downtime_ms || ea->max_total_s > 0
			        ? "meet --max-downtime-ms/--max-total-s"
			        : "converge without throttling the guest",
			    ea->postcopy
			        ? ""
			        : " (post-copy and hybrid need the sim backend and --tcp)");
			return ERR_NOTCONV;
		}
		fprintf(stderr, "estimate: --mode auto chooses %s\n", mig_mode_name(mode));
		*ea->mode_r = mode;
	}
	p = &pm[mode];
	if (mode == MIG_MODE_PRECOPY && p->decision == PC_ABORT &&
	    (ea->max_downtime_ms || ea->max_total_s > 0)) {
		log_error("migration of %s refused before anything moved: pre-copy is predicted "
		          "not to converge (%s)",
		          name, p->reason);
		return ERR_NOTCONV;
	}
	if (ea->max_downtime_ms && p->downtime_ms > ea->max_downtime_ms) {
		log_error("migration of %s refused before anything moved: predicted downtime %.1f "
		          "ms (%s) is over --max-downtime-ms %u (a higher --bandwidth or a lower "
		          "dirty rate would shorten it)",
		          name, p->downtime_ms, mig_mode_name(mode), ea->max_downtime_ms);
		return ERR_NOTCONV;
	}
	if (ea->max_total_s > 0 && p->total_s > ea->max_total_s) {
		log_error(
		    "migration of %s refused before anything moved: predicted total %.2f s (%s) is "
		    "over --max-total-s %g",
		    name, p->total_s, mig_mode_name(mode), ea->max_total_s);
		return ERR_NOTCONV;
	}
	return 0;
}

int preflight_estimate(const struct hv_ops *ops, struct hv *hv, uint32_t domid, const char *name,
                       const struct estimate_args *ea)
{
	if (ops->sample_dirty)
		return estimate_model(ops, hv, domid, name, ea);
	log_error("--estimate samples the guest's dirtying, which the %s backend cannot; it "
	          "reports dirty rates per round with --progress instead",
	          ops->name);
	return ERR_NOTSUP;
}

/* The sink's answer: "xl-ext-sink <bytes>\n". */
#define PF_SINK_WORD      "xl-ext-sink"
#define PF_BURST_REPLY_MS 60000
#define PF_SINK_MEM_MAX   (1ull << 30) /* written into memory; beyond, counted only */

int preflight_sink(void)
{
	static uint8_t buf[1 << 16];
	uint64_t total = 0;
	/* what it reads goes into a new memory file, as a receiver writes guest memory: on a fast
	 * path that, not the link, is what a migration's rate meets */
	int mem = memfd_create("xl-ext-sink", MFD_CLOEXEC);

	for (;;) {
		int rc = fd_wait_readable(0, PF_BURST_REPLY_MS);
		ssize_t n;

		if (rc) {
			log_error("migrate-receive --sink: nothing from the sender for %d s",
			          PF_BURST_REPLY_MS / 1000);
			return rc;
		}
		n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_from_errno(errno);
		if (n == 0)
			break;
		if (mem >= 0 && total + (uint64_t)n <= PF_SINK_MEM_MAX &&
		    pwrite(mem, buf, (size_t)n, (off_t)total) != n) {
			close(mem); /* no memory for it: counted only */
			mem = -1;
		}
		total += (uint64_t)n;
	}
	if (mem >= 0)
		close(mem);
	printf("%s %llu\n", PF_SINK_WORD, (unsigned long long)total);
	return fflush(stdout) ? ERR_IO : 0;
}

int preflight_burst(const char *ssh, const char *host, uint64_t bytes, double *Bps_r)
{
	uint64_t s = 0x9e3779b97f4a7c15ull, got = 0, sent = 0;
	char *rune = NULL, answer[64] = "";
	size_t alen = 0;
	int send_fd = -1, recv_fd = -1, rc = 0;
	uint8_t *buf = malloc(1 << 20);
	int64_t t0;
	pid_t child;

	if (!buf)
		return ERR_NOMEM;
	/* words of a xorshift generator: nothing for ssh's compression to gain on */
	for (size_t i = 0; i < (1u << 20); i += 8) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		memcpy(buf + i, &s, 8);
	}
	if (ssh[0])
		rune = xlp_rune(ssh, host, "xl-ext", 0, 0, 0, 0, "--sink");
	else if (asprintf(&rune, "%s --sink", host) < 0)
		rune = NULL;
	if (!rune) {
		free(buf);
		return ERR_NOMEM;
	}
	signal(SIGPIPE, SIG_IGN);
	child = mig_spawn_rune(rune, &send_fd, &recv_fd);
	if (child < 0) {
		rc = err_from_errno(errno);
		log_error_errno(errno, "estimate: cannot start '%s'", rune);
		goto out;
	}
	t0 = loop_now_us();
	while (!rc && sent < bytes) {
		size_t n = bytes - sent < (1u << 20) ? (size_t)(bytes - sent) : (1u << 20);

		rc = fd_write_exact(send_fd, buf, n);
		sent += rc ? 0 : n;
	}
	close(send_fd);
	while (!rc && alen + 1 < sizeof(answer)) {
		ssize_t n;

		rc = fd_wait_readable(recv_fd, PF_BURST_REPLY_MS);
		if (rc)
			break;
		n = read(recv_fd, answer + alen, sizeof(answer) - 1 - alen);
		if (n <= 0)
			break;
		alen += (size_t)n;
		answer[alen] = '\0';
		if (strchr(answer, '\n'))
			break;
	}
	if (!rc)
		*Bps_r =
		    (double)bytes * 1e6 / (double)(loop_now_us() - t0 > 0 ? loop_now_us() - t0 : 1);
	if (!rc && (sscanf(answer, PF_SINK_WORD " %llu", (unsigned long long *)&got) != 1 ||
	            got != bytes)) {
		log_error("estimate: '%s' did not count the burst (is xl-ext installed there? it "
		          "answered '%.40s')",
		          rune, answer);
		rc = ERR_PROTO;
	} else if (rc) {
		log_error("estimate: the burst through '%s' failed (%s)", rune, err_str(rc));
	}
	close(recv_fd);
	mig_reap_child(child);
out:
	free(rune);
	free(buf);
	return rc;
}
