/*
 * cmd_migrate.c - "xl-ext migrate" and "xl-ext migrate-receive".
 *
 * xl's options and remote command line (-C -s -e -p -D --debug --live), plus the extensions:
 * pre-copy policy, bandwidth cap, JSON report, progress.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/cli/xlext.h"
#include "xl-ext/migration/orchestrator.h"
#include "xl-ext/migration/preflight_exchange.h"
#include "xl-ext/precopy/codec.h"
#include "xl-ext/precopy/postcopy.h"
#include "xl-ext/precopy/stream.h"
#include "xl-ext/migration/transport.h"

static volatile sig_atomic_t mig_cancel;

static void on_cancel(int signo)
{
	(void)signo;
	mig_cancel = 1;
}

enum {
	OPT_DEBUG = 256,
	OPT_LIVE,
	OPT_POLICY,
	OPT_MAX_ITERS,
	OPT_DOWNTIME,
	OPT_BANDWIDTH,
	OPT_ON_STALL,
	OPT_JSON,
	OPT_PROGRESS,
	OPT_NO_PROGRESS,
	OPT_MAX_BYTES,
	OPT_REPLY_TIMEOUT,
	OPT_TCP,
	OPT_KEY,
	OPT_LISTEN,
	OPT_ACCEPT_TIMEOUT,
	OPT_DRY_RUN,
	OPT_ESTIMATE,
	OPT_PREFLIGHT,
	OPT_ALLOW_LOCAL_DISKS,
	OPT_NO_PREFLIGHT,
	OPT_COMPRESS,
	OPT_COMPRESS_CACHE,
	OPT_STREAMS,
	OPT_MAX_DOWNTIME,
	OPT_MAX_TOTAL,
	OPT_MODE,
	OPT_PREPAGE,
	OPT_SINK,
};

/* A size in bytes: N, NKiB, NMiB or NGiB; 0 when it is not one. */
static uint64_t size_parse(const char *s)
{
	static const struct {
		const char *unit;
		double factor;
	} units[] = {{"", 1}, {"B", 1}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
	char *end;
	double v = strtod(s, &end);

	if (end == s || v <= 0 || v > 1e15)
		return 0;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(end, units[i].unit))
			return (uint64_t)(v * units[i].factor);
	return 0;
}

/* The migrate options beyond the domain and host; 2 (usage) on a bad value, else 0. */
static int migrate_option(int opt, const char *arg, struct mig_request *req, int *json,
                          int *progress)
{
	struct pc_params *p = &req->params.policy;
	unsigned long n;
	char *end;

	switch (opt) {
	case OPT_POLICY:
		if (pc_policy_parse(arg, &p->kind)) {
			log_error("--policy: '%s' unknown (xen, adaptive)", arg);
			return 2;
		}
		break;
	case OPT_MAX_ITERS:
		p->max_iters = (unsigned)strtoul(arg, &end, 10);
		if (*end || !p->max_iters || p->max_iters > MIG_MAX_ROUNDS) {
			log_error("--max-iters: '%s' is not between 1 and %d", arg, MIG_MAX_ROUNDS);
			return 2;
		}
		break;
	case OPT_DOWNTIME:
		p->downtime_ms = (uint32_t)strtoul(arg, &end, 10);
		if (*end || !p->downtime_ms || p->downtime_ms > 600000) {
			log_error("--downtime-ms: '%s' is not between 1 and 600000", arg);
			return 2;
		}
		break;
	case OPT_BANDWIDTH:
		req->params.bandwidth_Bps = pc_rate_parse(arg);
		if (!req->params.bandwidth_Bps) {
			log_error("--bandwidth: '%s' is not a rate (e.g. 1Gbit, 500Mbit, 100MiB)",
			          arg);
			return 2;
		}
		break;
	case OPT_MAX_BYTES:
		p->max_total_bytes = strtoull(arg, &end, 10);
		if (*end || !p->max_total_bytes) {
			log_error("--max-bytes: '%s' is not a byte count", arg);
			return 2;
		}
		break;
	case OPT_ON_STALL:
		if (pc_on_stall_parse(arg, &p->on_stall)) {
			log_error("--on-stall: '%s' unknown (abort, force, throttle)", arg);
			return 2;
		}
		break;
	case OPT_REPLY_TIMEOUT:
		req->reply_timeout_ms = (int)strtoul(arg, &end, 10) * 1000;
		if (*end || req->reply_timeout_ms <= 0 || req->reply_timeout_ms > 86400000) {
			log_error("--reply-timeout: '%s' is not a number of seconds", arg);
			return 2;
		}
		break;
	case OPT_COMPRESS:
		if (compress_parse(arg, &req->params.compress)) {
			log_error(
			    "--compress: '%s' unknown (auto, none, delta, lz4, zstd, delta+lz4, "
			    "delta+zstd)",
			    arg);
			return 2;
		}
		break;
	case OPT_STREAMS:
		n = strtoul(arg, &end, 10);
		req->params.streams = (unsigned)n;
		if (*end || *arg == '-' || n < 1 || n > STREAM_MAX_STREAMS) {
			log_error("--streams: '%s' is not a number of connections (1-%u)", arg,
			          STREAM_MAX_STREAMS);
			return 2;
		}
		break;
	case OPT_MODE:
		if (mig_mode_parse(arg, &req->params.mode)) {
			log_error("--mode: '%s' unknown (precopy, postcopy, hybrid, auto)", arg);
			return 2;
		}
		break;
	case OPT_PREPAGE:
		n = strtoul(arg, &end, 10);
		req->params.prepage = (unsigned)n;
		if (*end || *arg == '-' || end == arg || n > PC_PREPAGE_MAX) {
			log_error("--prepage: '%s' is not a number of pages (0-%u)", arg,
			          PC_PREPAGE_MAX);
			return 2;
		}
		break;
	case OPT_MAX_DOWNTIME:
		n = strtoul(arg, &end, 10);
		req->max_downtime_ms = (uint32_t)n;
		if (*end || *arg == '-' || n < 1 || n > 600000) {
			log_error("--max-downtime-ms: '%s' is not between 1 and 600000", arg);
			return 2;
		}
		break;
	case OPT_MAX_TOTAL:
		req->max_total_s = strtod(arg, &end);
		if (*end || end == arg || !(req->max_total_s > 0) || req->max_total_s > 86400) {
			log_error("--max-total-s: '%s' is not a number of seconds (0-86400)", arg);
			return 2;
		}
		break;
	case OPT_COMPRESS_CACHE:
		req->params.compress_cache_bytes = size_parse(arg);
		if (req->params.compress_cache_bytes < 4096) {
			log_error(
			    "--compress-cache: '%s' is not a size of at least 4KiB (e.g. 256MiB, "
			    "1GiB)",
			    arg);
			return 2;
		}
		break;
	case OPT_JSON:
		*json = 1;
		break;
	case OPT_PROGRESS:
	case OPT_NO_PROGRESS:
		*progress = opt == OPT_PROGRESS;
		break;
	}
	return 0;
}

int main_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"debug", no_argument, NULL, OPT_DEBUG},
	    {"live", no_argument, NULL, OPT_LIVE},
	    {"policy", required_argument, NULL, OPT_POLICY},
	    {"max-iters", required_argument, NULL, OPT_MAX_ITERS},
	    {"downtime-ms", required_argument, NULL, OPT_DOWNTIME},
	    {"bandwidth", required_argument, NULL, OPT_BANDWIDTH},
	    {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
	    {"on-stall", required_argument, NULL, OPT_ON_STALL},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"progress", no_argument, NULL, OPT_PROGRESS},
	    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
	    {"reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT},
	    {"tcp", required_argument, NULL, OPT_TCP},
	    {"key", required_argument, NULL, OPT_KEY},
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    {"estimate", no_argument, NULL, OPT_ESTIMATE},
	    {"allow-local-disks", no_argument, NULL, OPT_ALLOW_LOCAL_DISKS},
	    {"no-preflight", no_argument, NULL, OPT_NO_PREFLIGHT},
	    {"compress", required_argument, NULL, OPT_COMPRESS},
	    {"compress-cache", required_argument, NULL, OPT_COMPRESS_CACHE},
	    {"streams", required_argument, NULL, OPT_STREAMS},
	    {"max-downtime-ms", required_argument, NULL, OPT_MAX_DOWNTIME},
	    {"max-total-s", required_argument, NULL, OPT_MAX_TOTAL},
	    {"mode", required_argument, NULL, OPT_MODE},
	    {"prepage", required_argument, NULL, OPT_PREPAGE},
	    CMD_LONGOPTS_END,
	};
	struct sigaction sa = {.sa_handler = on_cancel}, old_int, old_term;
	struct mig_outcome out = {.result = MIG_REFUSED};
	struct mig_request req;
	int opt, rc, want_json = 0, progress = -1;
	char line[512];

	mig_request_init(&req);
	CMD_FOREACH_OPT (opt, argc, argv, "FC:s:epD", longopts, &xlext_table,
	                 cmd_find(&xlext_table, "migrate", NULL), 1) {
	case 'C':
		req.config_file = optarg;
		break;
	case 's':
		req.ssh = optarg;
		break;
	case 'e':
		req.no_daemon = true;
		break;
	case 'p':
		req.paused = true;
		break;
	case 'F':
	case 'D':      /* the sim backend has no domid to preserve; xen passes it through */
	case OPT_LIVE: /* accepted for compatibility, as xl does */
		break;
	case OPT_DEBUG:
		req.params.debug = true;
		break;
	case OPT_TCP:
		req.tcp_addr = optarg;
		break;
	case OPT_KEY:
		req.key_file = optarg;
		break;
	case OPT_DRY_RUN:
		req.dry_run = true;
		break;
	case OPT_ESTIMATE:
		req.estimate = true;
		break;
	case OPT_ALLOW_LOCAL_DISKS:
		req.allow_local_disks = true;
		break;
	case OPT_NO_PREFLIGHT:
		req.no_preflight = true;
		break;
	default:
		if (migrate_option(opt, optarg, &req, &want_json, &progress))
			return 2;
		break;
	}
	if (argc - optind > 2) {
		log_error("migrate: too many arguments");
		return 2;
	}
	if (!req.tcp_addr != !req.key_file) {
		log_error("migrate: --tcp and --key go together (the direct transport is always "
		          "authenticated)");
		return 2;
	}
	if (req.params.streams > 1 && !req.tcp_addr) {
		log_error("migrate: --streams %u needs the direct transport (--tcp ADDR:PORT --key "
		          "FILE); ssh carries one stream",
		          req.params.streams);
		return 2;
	}
	if (req.params.mode != MIG_MODE_PRECOPY && req.params.mode != MIG_MODE_AUTO &&
	    !req.tcp_addr) {
		log_error("migrate: --mode %s needs the direct transport (--tcp ADDR:PORT --key "
		          "FILE): post-copy asks for pages on a connection of its own",
		          mig_mode_name(req.params.mode));
		return 2;
	}
	if (!req.tcp_addr && argc - optind < 2) {
		log_error(
		    "migrate: missing arguments: which host? (xl-ext migrate <domain> <host>, "
		    "or --tcp ADDR:PORT --key FILE)");
		return 2;
	}
	req.domain = argv[optind];
	req.host = argc - optind == 2 ? argv[optind + 1] : req.tcp_addr;
	req.params.progress = progress < 0 ? isatty(2) : progress;
	req.params.cancel = &mig_cancel;
	rc = xlext_open(NULL, &req.ops, &req.hv);
	if (rc)
		return err_exit_status(rc);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	rc = mig_run(&req, &out);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (req.dry_run && out.name[0]) {
		fprintf(stderr, "Dry run of migrating %s to %s: %s; nothing was changed.\n",
		        out.name, out.where, rc ? "refused" : "checks passed");
	} else if (out.name[0]) {
		if (want_json && out.result != MIG_REFUSED) {
			json_object *o = mig_outcome_json(&req, &out);

			printf("%s\n",
			       json_object_to_json_string_ext(
			           o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(o);
		}
		mig_outcome_line(&out, line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
	mig_outcome_dispose(&out);
	req.ops->close(req.hv);
	return err_exit_status(rc);
}

/* migrate-receive --listen: a sender's extra streams come to the same listener. */
static int accept_stream(void *arg, int timeout_ms)
{
	return tr_accept_stream(arg, timeout_ms);
}

/* ... and once they came, the listener closes: nobody else connects during the migration. */
static void streams_done(void *arg)
{
	tr_listener_close(arg);
}

int main_migrate_receive(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"key", required_argument, NULL, OPT_KEY},
	    {"accept-timeout", required_argument, NULL, OPT_ACCEPT_TIMEOUT},
	    {"preflight", no_argument, NULL, OPT_PREFLIGHT},
	    {"sink", no_argument, NULL, OPT_SINK},
	    CMD_LONGOPTS_END,
	};
	struct mig_serve_request req = {.send_fd = 1, .recv_fd = 0};
	struct tr_listener listener = {.fd = -1};
	struct pc_streams streams = {
	    .accept = accept_stream, .done = streams_done, .arg = &listener};
	const char *listen_addr = NULL, *key_file = NULL;
	struct mig_report rep;
	uint32_t domid, flags = 0;
	int opt, rc, conn = -1, accept_timeout = 0;
	bool preflight = false;
	char *end;

	CMD_FOREACH_OPT (opt, argc, argv, "Fedrp", longopts, &xlext_table,
	                 cmd_find(&xlext_table, "migrate-receive", NULL), 0) {
	case 'F':
	case 'e':
		break;
	case 'd':
		req.debug = true;
		break;
	case 'r':
		log_error("migrate-receive -r (Remus) is not supported");
		return 2;
	case 'p':
		req.paused = true;
		break;
	case OPT_LISTEN:
		listen_addr = optarg;
		break;
	case OPT_KEY:
		key_file = optarg;
		break;
	case OPT_ACCEPT_TIMEOUT:
		accept_timeout = (int)strtol(optarg, &end, 10);
		if (*end || accept_timeout <= 0 || accept_timeout > 86400) {
			log_error("--accept-timeout: '%s' is not a number of seconds (1-86400)",
			          optarg);
			return 2;
		}
		break;
	case OPT_PREFLIGHT:
		preflight = true;
		break;
	case OPT_SINK:
		return err_exit_status(preflight_sink());
	}
	if (argc - optind != 0) {
		log_error("migrate-receive takes no arguments");
		return 2;
	}
	if (!listen_addr != !key_file) {
		log_error("migrate-receive: --listen and --key go together (the direct transport "
		          "is always authenticated)");
		return 2;
	}
	rc = xlext_open(NULL, &req.ops, &req.hv);
	if (rc)
		return 1;
	if (preflight) {
		rc = preflight_serve(req.ops, req.hv);
		goto out;
	}
	if (listen_addr) {
		conn = tr_accept_authenticated(listen_addr, key_file, accept_timeout, &flags,
		                               &listener);
		if (conn < 0) {
			rc = conn;
			goto out;
		}
		req.send_fd = req.recv_fd = conn;
		req.streams = &streams;
		req.paused |= !!(flags & TR_FLAG_PAUSED);
		req.debug |= !!(flags & TR_FLAG_DEBUG);
	}
	rc = mig_serve(&req, &rep, &domid);
	if (!rc)
		fprintf(stderr, "migration target: domain started successfully (domid %u)\n",
		        domid);
out:
	if (conn >= 0)
		close(conn);
	tr_listener_close(&listener);
	req.ops->close(req.hv);
	return err_exit_status(rc);
}
