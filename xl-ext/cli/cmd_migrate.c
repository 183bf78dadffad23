/*
 * cmd_migrate.c - "xl-ext migrate" and "xl-ext migrate-receive".
 *
 * xl's options and remote command line (-C -s -e -p -D --debug --live), plus the extensions:
 * pre-copy policy, bandwidth cap, JSON report, progress.
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

#include <json-c/json.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/migration/disks.h"
#include "xl-ext/migration/preflight_exchange.h"
#include "xl-ext/migration/handover.h"
#include "xl-ext/migration/handshake.h"
#include "xl-ext/sim/simcfg.h"
#include "xl-ext/migration/transport.h"
#include "xl-ext/cli/xlext.h"
#include "xl-ext/migration/xlproto.h"

static volatile sig_atomic_t mig_cancel;

static void on_cancel(int signo)
{
	(void)signo;
	mig_cancel = 1;
}

/* "1Gbit", "800Mbit", "100MB" (bytes), "64MiB": bytes per second; 0 on error. */
static uint64_t parse_rate(const char *s)
{
	static const struct {
		const char *unit;
		double factor;
	} units[] = {
	    {"bit", 1.0 / 8},  {"kbit", 1e3 / 8}, {"Kbit", 1e3 / 8},  {"Mbit", 1e6 / 8},
	    {"Gbit", 1e9 / 8}, {"B", 1},          {"KB", 1e3},        {"MB", 1e6},
	    {"GB", 1e9},       {"KiB", 1024.0},   {"MiB", 1048576.0}, {"GiB", 1073741824.0},
	};
	char *end;
	double v = strtod(s, &end);

	if (end == s || v <= 0)
		return 0;
	if (!strncmp(end, "/s", 2))
		end += 2;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t l = strlen(units[i].unit);

		if (!strncmp(end, units[i].unit, l) &&
		    (!end[l] || !strcmp(end + l, "/s") || !strcmp(end + l, "ps")))
			return (uint64_t)(v * units[i].factor);
	}
	return 0;
}

/* Spawn "sh -c rune" with pipes to its stdin and from its stdout (xl's migration child). */
static pid_t spawn_rune(const char *rune, int *send_fd, int *recv_fd)
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
		/* Ctrl-C cancels through the sender, not by killing this */
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

/* Reap the transport child, waiting at most ~2 s (as xl does). */
static void reap_child(pid_t pid)
{
	int status;

	for (int i = 0; i < 200; i++) {
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

static const char *result_text(enum mig_result r)
{
	switch (r) {
	case MIG_OK:
		return "ok";
	case MIG_FAILED_RESUMED:
		return "failed; domain resumed on the source";
	case MIG_FAILED_TARGET:
		return "failed at the target; domain resumed on the source";
	case MIG_FAILED_UNDEFINED:
		return "failed after the point of no return; domain state undefined";
	case MIG_FAILED_NO_RESUME:
		return "failed to suspend; domain left as it is";
	}
	return "?";
}

static void print_json(const char *name, const char *host, const struct mig_params *p,
                       const struct mig_report *rep, enum mig_result result, int rc,
                       const struct mig_disks *disks, const struct ho_sender *ho)
{
	json_object *o = mig_report_json(rep), *dj = mig_disks_json(disks);

	json_object_object_add(o, "domain", json_object_new_string(name));
	json_object_object_add(o, "destination", json_object_new_string(host));
	json_object_object_add(o, "backend",
	                       json_object_new_string(xlext_globals.backend
	                                                  ? xlext_globals.backend
	                                                  : hv_registry.default_name));
	json_object_object_add(o, "result", json_object_new_string(rc ? "failed" : "ok"));
	json_object_object_add(o, "outcome", json_object_new_string(result_text(result)));
	json_object_object_add(o, "error", rc ? json_object_new_string(err_str(rc)) : NULL);
	json_object_object_add(o, "policy", json_object_new_string(pc_policy_name(p->policy.kind)));
	json_object_object_add(o, "on_stall",
	                       json_object_new_string(pc_on_stall_name(p->policy.on_stall)));
	json_object_object_add(
	    o, "downtime_target_ms",
	    json_object_new_int(
	        (int)(p->policy.downtime_ms ? p->policy.downtime_ms : PC_DEFAULT_DOWNTIME_MS)));
	json_object_object_add(o, "bandwidth_cap_bps",
	                       json_object_new_int64((int64_t)p->bandwidth_Bps * 8));
	if (ho)
		ho_sender_report(ho, dj, o);
	else
		json_object_object_add(o, "handover", NULL);
	json_object_object_add(o, "disks", dj);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* The configuration JSON to send: -C FILE overrides the running domain's. */
static int config_for(const struct hv_ops *ops, struct hv *hv, uint32_t domid, const char *file,
                      const char *name, char **json_r)
{
	struct sim_config cfg;
	int rc;

	if (!file)
		return ops->config_json(hv, domid, json_r);
	if (ops->config_file_json)
		return ops->config_file_json(hv, file, name, json_r);
	if (strcmp(ops->name, "sim")) {
		log_error("-C %s: the %s backend cannot convert xl.cfg files; use 'xl migrate -C'",
		          file, ops->name);
		return ERR_NOTSUP;
	}
	rc = simcfg_parse_file(file, &cfg);
	if (rc)
		return rc;
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	return simcfg_to_json(&cfg, json_r);
}

/*
 * With the xen backend the guest's disk is written by blkback through the kernel initiator's
 * session (open-iscsi), and a reservation key counts only on the session that registered it:
 * the hand-over then runs on the disks' kernel block devices (SG_IO). The sim backend's guests
 * write through libiscsi sessions of their own, and so does its hand-over.
 */
static int uses_kernel_initiator(const struct hv_ops *ops)
{
	return !strcmp(ops->name, "xen");
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
};

#define TCP_CONNECT_TIMEOUT_MS 10000

/*
 * The direct transport: connect, prove we hold the key, check the receiver does too. Returns
 * the connected socket or a negative error (logged).
 */
static int open_tcp(const char *addr, const char *key_file, uint32_t flags)
{
	struct tr_key key;
	int fd, rc;

	rc = tr_key_load(key_file, &key);
	if (rc)
		return rc;
	fd = tr_connect(addr, TCP_CONNECT_TIMEOUT_MS);
	if (fd >= 0) {
		rc = tr_auth_sender(fd, &key, addr, flags);
		if (rc) {
			close(fd);
			fd = rc;
		}
	}
	tr_key_clear(&key);
	return fd;
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
	    CMD_LONGOPTS_END,
	};
	struct mig_send_args a = {.send_fd = -1, .recv_fd = -1};
	struct mig_report rep;
	enum mig_result result = MIG_FAILED_RESUMED;
	const char *config_file = NULL, *ssh = "ssh", *host, *tcp = NULL, *key_file = NULL;
	char *rune = NULL, *json = NULL, name[HV_NAME_MAX];
	int opt, rc, no_daemon = 0, paused = 0, want_json = 0, progress = -1;
	bool dry_run = false, estimate = false, allow_local_disks = false, dest_xlext = false;
	struct ho_sender *ho = NULL;
	struct mig_disks disks = {0};
	struct sigaction sa = {.sa_handler = on_cancel}, old_int, old_term;
	struct hv_domain_info info;
	pid_t child = -1;
	char *end;

	a.reply_timeout_ms = 120000;
	a.params.policy.kind = PC_POLICY_ADAPTIVE;
	a.params.policy.on_stall = PC_STALL_THROTTLE;
	CMD_FOREACH_OPT (opt, argc, argv, "FC:s:epD", longopts, &xlext_table,
	                 cmd_find(&xlext_table, "migrate", NULL), 1) {
	case 'C':
		config_file = optarg;
		break;
	case 's':
		ssh = optarg;
		break;
	case 'F':
		break;
	case 'e':
		no_daemon = 1;
		break;
	case 'p':
		paused = 1;
		break;
	case 'D':
		break; /* the sim backend has no domid to preserve; xen passes it through */
	case OPT_DEBUG:
		a.params.debug = true;
		break;
	case OPT_LIVE:
		break; /* accepted for compatibility, as xl does */
	case OPT_POLICY:
		if (pc_policy_parse(optarg, &a.params.policy.kind)) {
			log_error("--policy: '%s' unknown (xen, adaptive)", optarg);
			return 2;
		}
		break;
	case OPT_MAX_ITERS:
		a.params.policy.max_iters = (unsigned)strtoul(optarg, &end, 10);
		if (*end || !a.params.policy.max_iters ||
		    a.params.policy.max_iters > MIG_MAX_ROUNDS) {
			log_error("--max-iters: '%s' is not between 1 and %d", optarg,
			          MIG_MAX_ROUNDS);
			return 2;
		}
		break;
	case OPT_DOWNTIME:
		a.params.policy.downtime_ms = (uint32_t)strtoul(optarg, &end, 10);
		if (*end || !a.params.policy.downtime_ms || a.params.policy.downtime_ms > 600000) {
			log_error("--downtime-ms: '%s' is not between 1 and 600000", optarg);
			return 2;
		}
		break;
	case OPT_BANDWIDTH:
		a.params.bandwidth_Bps = parse_rate(optarg);
		if (!a.params.bandwidth_Bps) {
			log_error("--bandwidth: '%s' is not a rate (e.g. 1Gbit, 500Mbit, 100MiB)",
			          optarg);
			return 2;
		}
		break;
	case OPT_MAX_BYTES:
		a.params.policy.max_total_bytes = strtoull(optarg, &end, 10);
		if (*end || !a.params.policy.max_total_bytes) {
			log_error("--max-bytes: '%s' is not a byte count", optarg);
			return 2;
		}
		break;
	case OPT_ON_STALL:
		if (pc_on_stall_parse(optarg, &a.params.policy.on_stall)) {
			log_error("--on-stall: '%s' unknown (abort, force, throttle)", optarg);
			return 2;
		}
		break;
	case OPT_JSON:
		want_json = 1;
		break;
	case OPT_PROGRESS:
		progress = 1;
		break;
	case OPT_NO_PROGRESS:
		progress = 0;
		break;
	case OPT_REPLY_TIMEOUT:
		a.reply_timeout_ms = (int)strtoul(optarg, &end, 10) * 1000;
		if (*end || a.reply_timeout_ms <= 0 || a.reply_timeout_ms > 86400000) {
			log_error("--reply-timeout: '%s' is not a number of seconds", optarg);
			return 2;
		}
		break;
	case OPT_TCP:
		tcp = optarg;
		break;
	case OPT_KEY:
		key_file = optarg;
		break;
	case OPT_DRY_RUN:
		dry_run = true;
		break;
	case OPT_ESTIMATE:
		estimate = true;
		break;
	case OPT_ALLOW_LOCAL_DISKS:
		allow_local_disks = true;
		break;
	}
	if (argc - optind > 2) {
		log_error("migrate: too many arguments");
		return 2;
	}
	if (!tcp != !key_file) {
		log_error("migrate: --tcp and --key go together (the direct transport is always "
		          "authenticated)");
		return 2;
	}
	if (!tcp && argc - optind < 2) {
		log_error(
		    "migrate: missing arguments: which host? (xl-ext migrate <domain> <host>, "
		    "or --tcp ADDR:PORT --key FILE)");
		return 2;
	}
	host = argc - optind == 2 ? argv[optind + 1] : tcp;
	a.params.progress = progress < 0 ? isatty(2) : progress;
	a.params.cancel = &mig_cancel;
	rc = xlext_open(NULL, &a.ops, &a.hv);
	if (rc)
		goto out;
	rc = a.ops->lookup(a.hv, argv[optind], &a.domid);
	if (rc) {
		log_error("domain '%s' does not exist", argv[optind]);
		goto out;
	}
	rc = a.ops->info(a.hv, a.domid, &info);
	if (rc)
		goto out;
	snprintf(name, sizeof(name), "%s", info.name);
	a.name = name;
	if (tcp && dry_run) {
		log_error(
		    "migrate --dry-run asks the destination through the ssh (-s) transport; a "
		    "--listen receiver serves one migration only");
		rc = ERR_INVAL;
		goto out;
	}
	/* a local writable disk would be left behind: refuse before asking the destination */
	rc = mig_disks_collect(a.ops, a.hv, a.domid, name, config_file, &disks);
	if (!rc)
		rc = mig_disks_check(name, &disks, allow_local_disks);
	if (rc) {
		log_error("migration of %s to %s refused by the disk check; the domain was not "
		          "touched",
		          name, host);
		goto out;
	}
	/* over --tcp the receiver checks memory and names itself, before anything is suspended */
	if (!tcp)
		rc = preflight_run(&(struct preflight_args){a.ops, a.hv, &info, ssh, host, dry_run,
		                                            &disks, &dest_xlext});
	if (!rc && estimate)
		rc = preflight_estimate(a.ops, a.hv, a.domid, name);
	if (rc || dry_run) {
		if (dry_run)
			fprintf(stderr, "Dry run of migrating %s to %s: %s; nothing was changed.\n",
			        name, host, rc ? "refused" : "checks passed");
		goto out;
	}
	rc = config_for(a.ops, a.hv, a.domid, config_file, name, &json);
	if (rc) {
		log_error("cannot get the configuration of domain %s to send", name);
		goto out;
	}
	a.config_json = json;
	a.peer = host;
	/* both ends xl-ext (--tcp, or the pre-flight answered): LUN identity and reservation
	 * hand-over ride on the handshake; stock xl gets its own protocol, unchanged */
	if (tcp || dest_xlext) {
		rc = ho_sender_new(name, host, &disks, uses_kernel_initiator(a.ops), &ho);
		if (rc) {
			log_error("migration of %s to %s refused: its disks cannot be handed over "
			          "(above); "
			          "the domain was not touched",
			          name, host);
			goto out;
		}
		a.ext = &ho_ext_ops;
		a.ext_ctx = ho;
		a.ext_request = ho_sender_request(ho);
	} else {
		rc = ho_check_not_stranded(name, host, &disks, uses_kernel_initiator(a.ops));
		if (rc)
			goto out;
		for (unsigned i = 0; i < disks.n; i++)
			if (disks.info[i].kind == DISK_ISCSI) {
				log_warn("migration of %s: %s is not xl-ext: its LUN identity and "
				         "reservation hand-over are skipped (disk %s)",
				         name, host, disks.info[i].vdev);
				break;
			}
	}
	signal(SIGPIPE, SIG_IGN);
	if (tcp) {
		a.send_fd =
		    open_tcp(tcp, key_file,
		             (paused ? TR_FLAG_PAUSED : 0) | (a.params.debug ? TR_FLAG_DEBUG : 0));
		if (a.send_fd < 0) {
			rc = a.send_fd;
			log_error("migration of %s to %s not started; the domain was not touched",
			          name, tcp);
			goto out;
		}
		a.recv_fd = dup(a.send_fd);
	} else {
		rune = xlp_rune(ssh, host, "xl-ext", isatty(2), no_daemon, a.params.debug, paused,
		                NULL);
		if (!rune) {
			rc = ERR_NOMEM;
			goto out;
		}
		child = spawn_rune(rune, &a.send_fd, &a.recv_fd);
		if (child < 0) {
			rc = err_from_errno(errno);
			log_error_errno(errno, "cannot start the migration transport '%s'", rune);
			goto out;
		}
	}
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	rc = mig_send(&a, &rep, &result);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	close(a.send_fd);
	a.send_fd = -1;
	if (child > 0)
		reap_child(child);
	if (want_json)
		print_json(name, host, &a.params, &rep, result, rc, &disks, ho);
	if (!rc && rep.total_bytes)
		fprintf(
		    stderr,
		    "Migration of %s to %s successful (downtime %.1f ms, %.2f x memory sent).\n",
		    name, host, (double)(rep.t_end_us - rep.t_pause_us) / 1000.0,
		    rep.nr_pages ? (double)rep.total_bytes / ((double)rep.nr_pages * 4096) : 0);
	else if (!rc) /* xen: libxenguest does not say how much it sent, nor when it paused */
		fprintf(stderr,
		        "Migration of %s to %s successful (%.1f ms from the end of the "
		        "stream to the destination's report).\n",
		        name, host, (double)(rep.t_end_us - rep.t_pause_us) / 1000.0);
	else if (result == MIG_OK)
		fprintf(stderr, "Migration of %s to %s failed: %s.\n", name, host, err_str(rc));
	else /* "Migration of g1 to h2 failed; domain resumed on the source (...)." */
		fprintf(stderr, "Migration of %s to %s %s (%s).\n", name, host, result_text(result),
		        err_str(rc));
out:
	if (a.send_fd >= 0)
		close(a.send_fd);
	if (a.recv_fd >= 0)
		close(a.recv_fd);
	free(rune);
	free(json);
	ho_sender_free(ho);
	mig_disks_dispose(&disks);
	if (a.hv)
		a.ops->close(a.hv);
	return err_exit_status(rc);
}

/*
 * migrate-receive --listen: accept connections until one sender proves it holds the key (others
 * are logged and dropped), then receive from it. Returns that connection or a negative error.
 */
static int accept_authenticated(const char *addr, const char *key_file, int timeout_s,
                                uint32_t *flags_r)
{
	int64_t deadline = timeout_s ? loop_now_ms() + (int64_t)timeout_s * 1000 : 0;
	struct tr_key key;
	char peer[96];
	int lfd, fd = ERR_TIMEOUT, rc;

	rc = tr_key_load(key_file, &key);
	if (rc)
		return rc;
	lfd = tr_listen(addr);
	if (lfd < 0) {
		tr_key_clear(&key);
		return lfd;
	}
	log_info("migration receiver: listening on %s", addr);
	for (;;) {
		int left = deadline ? (int)(deadline - loop_now_ms()) : 0;

		if (deadline && left <= 0) {
			fd = ERR_TIMEOUT;
			break;
		}
		fd = tr_accept(lfd, left, peer, sizeof(peer));
		if (fd == ERR_TIMEOUT || (fd < 0 && fd != ERR_IO))
			break;
		if (fd < 0)
			continue;
		rc = tr_auth_receiver(fd, &key, peer, flags_r);
		if (!rc) {
			log_info("migration receiver: sender %s authenticated", peer);
			break;
		}
		close(fd);
		fd = rc;
	}
	if (fd == ERR_TIMEOUT)
		log_error("migration receiver: no authenticated sender on %s within %d s", addr,
		          timeout_s);
	close(lfd);
	tr_key_clear(&key);
	return fd;
}

int main_migrate_receive(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"key", required_argument, NULL, OPT_KEY},
	    {"accept-timeout", required_argument, NULL, OPT_ACCEPT_TIMEOUT},
	    {"preflight", no_argument, NULL, OPT_PREFLIGHT},
	    CMD_LONGOPTS_END,
	};
	struct mig_receive_args a = {.send_fd = 1, .recv_fd = 0, .ext = &ho_ext_ops};
	struct ho_receiver *ho = NULL;
	const char *listen_addr = NULL, *key_file = NULL;
	struct mig_report rep;
	uint32_t domid, flags = 0;
	int opt, rc, conn = -1, accept_timeout = 0;
	char *end;

	CMD_FOREACH_OPT (opt, argc, argv, "Fedrp", longopts, &xlext_table,
	                 cmd_find(&xlext_table, "migrate-receive", NULL), 0) {
	case 'F':
	case 'e':
		break;
	case 'd':
		a.debug = true;
		break;
	case 'r':
		log_error("migrate-receive -r (Remus) is not supported");
		return 2;
	case 'p':
		a.paused = true;
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
		return preflight_serve();
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
	signal(SIGPIPE, SIG_IGN);
	rc = xlext_open(NULL, &a.ops, &a.hv);
	if (rc)
		return 1;
	if (listen_addr) {
		conn = accept_authenticated(listen_addr, key_file, accept_timeout, &flags);
		if (conn < 0) {
			rc = conn;
			goto out;
		}
		a.send_fd = a.recv_fd = conn;
		a.paused |= !!(flags & TR_FLAG_PAUSED);
		a.debug |= !!(flags & TR_FLAG_DEBUG);
	}
	rc = ho_receiver_new(uses_kernel_initiator(a.ops), &ho);
	if (rc)
		goto out;
	a.ext_ctx = ho;
	rc = mig_receive(&a, &rep, &domid);
	if (!rc)
		fprintf(stderr, "migration target: domain started successfully (domid %u)\n",
		        domid);
out:
	if (conn >= 0)
		close(conn);
	ho_receiver_free(ho);
	a.ops->close(a.hv);
	return err_exit_status(rc);
}
