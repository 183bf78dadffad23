/*
 * main.c - haagent: the HA agent daemon, and "haagent ctl" to talk to it.
 *
 *   haagent [-f] [-c FILE] [-v]      run the daemon (foreground with -f)
 *   haagent ctl [--json] <command>   query or command the local daemon
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "common/cmd.h"
#include "common/error.h"
#include "common/log.h"
#include "haagent/cluster.h"
#include "haagent/conf.h"
#include "haagent/ctl.h"
#include "haagent/daemon.h"
#include "haagent/drill.h"

#define HAAGENT_DEFAULT_CONF   SYSCONFDIR "/haagent.conf"
#define HAAGENT_DEFAULT_SOCKET RUNSTATEDIR "/haagent/haagent.sock"

static const struct cmd_table ctl_table;

#define CTL_OPTIONS                                              \
	"  --json              print the daemon's JSON answer\n" \
	"  -s, --socket PATH   the daemon's control socket (default " HAAGENT_DEFAULT_SOCKET ")\n"

struct ctl_opts {
	bool json;
	const char *socket;
	const char *reason; /* mark-failing only */
	bool cold;          /* mark-failing only */
};

/*
 * Let options follow the positional arguments ("mark-failing NODE --reason R", as the
 * issue and the man page write it): move them, with their values, before the first
 * positional argument, keeping their order. "--" ends options.
 */
static void options_first(int argc, char **argv)
{
	char *opts[64], *args[64];
	int nopt = 0, narg = 0, i;

	if (argc > 64)
		return;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--"))
			break;
		if (a[0] != '-' || !a[1]) {
			args[narg++] = argv[i];
			continue;
		}
		opts[nopt++] = argv[i];
		if ((!strcmp(a, "--reason") || !strcmp(a, "--socket") || !strcmp(a, "-s")) &&
		    i + 1 < argc)
			opts[nopt++] = argv[++i];
	}
	for (; i < argc; i++)
		args[narg++] = argv[i];
	memcpy(argv + 1, opts, (size_t)nopt * sizeof(*argv));
	memcpy(argv + 1 + nopt, args, (size_t)narg * sizeof(*argv));
}

/*
 * Common options of every ctl command, and with mark_failing that command's own (--reason,
 * --cold); returns -1 to go on, else the exit status.
 */
static int ctl_options(int argc, char **argv, const char *name, int min_args, int max_args,
                       bool mark_failing, struct ctl_opts *o)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"socket", required_argument, NULL, 's'},
	    {"reason", required_argument, NULL, 'r'},
	    {"cold", no_argument, NULL, 'C'},
	    CMD_LONGOPTS_END,
	};
	const struct cmd_spec *cmd = cmd_find(&ctl_table, name, NULL);
	int opt;

	options_first(argc, argv);
	o->json = false;
	o->socket = getenv("HAAGENT_SOCKET") ? getenv("HAAGENT_SOCKET") : HAAGENT_DEFAULT_SOCKET;
	o->reason = NULL;
	o->cold = false;
	CMD_FOREACH_OPT (opt, argc, argv, "s:", longopts, &ctl_table, cmd, min_args) {
	case 'j':
		o->json = true;
		break;
	case 's':
		o->socket = optarg;
		break;
	case 'r':
	case 'C':
		if (!mark_failing) {
			fprintf(stderr, "haagent ctl %s: %s is only for mark-failing\n", name,
			        opt == 'r' ? "--reason" : "--cold");
			return 2;
		}
		if (opt == 'r')
			o->reason = optarg;
		else
			o->cold = true;
		break;
	}
	if (argc - optind > max_args) {
		fprintf(stderr, "haagent ctl %s: unexpected argument '%s'\n", name,
		        argv[optind + max_args]);
		return 2;
	}
	return -1;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int64_t jint(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static bool jbool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static void print_status(json_object *a)
{
	json_object *plan;

	printf("haagent on %s (nodeid %" PRId64 "): %s, %s, %s; %" PRId64 " nodes, %" PRId64
	       " guests, view generation %" PRId64 "\n",
	       jstr(a, "node"), jint(a, "nodeid"), jstr(a, "state"),
	       jbool(a, "quorate") ? "quorate" : "NOT quorate",
	       jbool(a, "synced") ? "in sync" : "not in sync yet", jint(a, "nodes"),
	       jint(a, "guests"), jint(a, "generation"));
	if (jbool(a, "frozen"))
		printf("FROZEN: this partition has no quorum and takes no action\n");
	else if (jbool(a, "synced") && !jbool(a, "acting"))
		printf("WAITING: view generation %" PRId64 " not yet confirmed by a quorate member "
		       "of this membership: no action until it is (if this lasts, check corosync "
		       "on every node)\n",
		       jint(a, "generation"));
	if (json_object_object_get_ex(a, "plan", &plan))
		for (size_t i = 0; i < json_object_array_length(plan); i++)
			printf("  %s\n",
			       json_object_get_string(json_object_array_get_idx(plan, i)));
}

static void print_nodes(json_object *a)
{
	json_object *list;

	printf("%-6s %-16s %-9s %-6s %9s %9s %3s %3s  %s\n", "NODEID", "NAME", "STATE", "MEMBER",
	       "FREE_MIB", "RESERVE", "OUT", "IN", "REASON");
	if (!json_object_object_get_ex(a, "nodes", &list))
		return;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *n = json_object_array_get_idx(list, i);

		printf("%-6" PRId64 " %-16s %-9s %-6s %9" PRId64 " %9" PRId64 " %3" PRId64
		       " %3" PRId64 "  %s\n",
		       jint(n, "nodeid"), jstr(n, "name"), jstr(n, "state"),
		       jbool(n, "member") ? "yes" : "no", jint(n, "free_mib"),
		       jint(n, "reserve_mib"), jint(n, "outgoing"), jint(n, "incoming"),
		       jstr(n, "reason"));
	}
}

static void print_guests(json_object *a)
{
	json_object *list;

	printf("%-20s %-16s %-10s %8s  %s\n", "NAME", "OWNER", "STATE", "MEM_MIB", "NOTE");
	if (!json_object_object_get_ex(a, "guests", &list))
		return;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *g = json_object_array_get_idx(list, i);
		char note[256];

		if (jstr(g, "moving_to")[0])
			snprintf(note, sizeof(note), "-> %s", jstr(g, "moving_to"));
		else if (jstr(g, "plan")[0])
			snprintf(note, sizeof(note), "%s: %s", jstr(g, "plan"), jstr(g, "note"));
		else
			note[0] = '\0';
		printf("%-20s %-16s %-10s %8" PRId64 "  %s\n", jstr(g, "name"), jstr(g, "owner"),
		       jstr(g, "state"), jint(g, "mem_mib"), note);
	}
}

static void print_events(json_object *a)
{
	json_object *list;

	if (!json_object_object_get_ex(a, "events", &list))
		return;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i);

		printf("%6" PRId64 "  %s\n", jint(e, "seq"), jstr(e, "text"));
	}
}

/*
 * Send request (consumed) and parse the answer into *a_r (and its text into *reply_r). Returns
 * 0 for an "ok" answer, 1 after printing why otherwise (no daemon, not root, refused).
 */
static int ctl_call_json(const struct ctl_opts *o, const char *name, json_object *req,
                         json_object **a_r, char **reply_r)
{
	char *reply = NULL;
	json_object *a;
	int rc = ha_ctl_call(o->socket, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN),
	                     &reply, 10000);

	*a_r = NULL;
	*reply_r = NULL;
	json_object_put(req);
	if (rc == ERR_NOTFOUND) {
		fprintf(stderr, "haagent ctl %s: no daemon listening on %s (is haagent running?)\n",
		        name, o->socket);
		return 1;
	}
	if (rc == ERR_PERM) {
		fprintf(stderr, "haagent ctl %s: permission denied on %s: run it as root\n", name,
		        o->socket);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "haagent ctl %s: %s: %s\n", name, o->socket, err_str(rc));
		return 1;
	}
	a = json_tokener_parse(reply);
	if (!a) {
		fprintf(stderr, "haagent ctl %s: the daemon's answer is not JSON\n", name);
		free(reply);
		return 1;
	}
	if (!jbool(a, "ok")) {
		if (o->json)
			printf("%s\n", reply);
		else
			fprintf(stderr, "haagent ctl %s: %s\n", name, jstr(a, "error"));
		json_object_put(a);
		free(reply);
		return 1;
	}
	*a_r = a;
	*reply_r = reply;
	return 0;
}

/* Send request, print the answer with printer (or raw with --json). */
static int ctl_run(const struct ctl_opts *o, const char *name, json_object *req,
                   void (*printer)(json_object *))
{
	char *reply = NULL;
	json_object *a;
	int rc = ctl_call_json(o, name, req, &a, &reply);

	if (rc != 0)
		return rc;
	if (o->json)
		printf("%s\n", reply);
	else if (printer)
		printer(a);
	else
		printf("%s\n", jstr(a, "message"));
	json_object_put(a);
	free(reply);
	return 0;
}

static json_object *request(const char *cmd)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "cmd", json_object_new_string(cmd));
	return r;
}

#define CTL_QUERY(fn, name, printer)                                             \
	static int fn(int argc, char **argv)                                     \
	{                                                                        \
		struct ctl_opts o;                                               \
		int rc = ctl_options(argc, argv, name, 0, 0, false, &o);         \
                                                                                 \
		return rc >= 0 ? rc : ctl_run(&o, name, request(name), printer); \
	}

CTL_QUERY(ctl_status, "status", print_status)
CTL_QUERY(ctl_nodes, "nodes", print_nodes)
CTL_QUERY(ctl_guests, "guests", print_guests)
CTL_QUERY(ctl_events, "events", print_events)

static int ctl_mark_failing(int argc, char **argv)
{
	struct ctl_opts o;
	json_object *r;
	int rc = ctl_options(argc, argv, "mark-failing", 1, 1, true, &o);

	if (rc >= 0)
		return rc;
	r = request("mark-failing");
	json_object_object_add(r, "node", json_object_new_string(argv[optind]));
	if (o.reason)
		json_object_object_add(r, "reason", json_object_new_string(o.reason));
	if (o.cold)
		json_object_object_add(r, "cold", json_object_new_boolean(1));
	return ctl_run(&o, "mark-failing", r, NULL);
}

static int ctl_clear(int argc, char **argv)
{
	struct ctl_opts o;
	json_object *r;
	int rc = ctl_options(argc, argv, "clear", 1, 1, false, &o);

	if (rc >= 0)
		return rc;
	r = request("clear");
	json_object_object_add(r, "node", json_object_new_string(argv[optind]));
	return ctl_run(&o, "clear", r, NULL);
}

static int ctl_migrate(int argc, char **argv)
{
	struct ctl_opts o;
	json_object *r;
	int rc = ctl_options(argc, argv, "migrate", 2, 2, false, &o);

	if (rc >= 0)
		return rc;
	r = request("migrate");
	json_object_object_add(r, "guest", json_object_new_string(argv[optind]));
	json_object_object_add(r, "node", json_object_new_string(argv[optind + 1]));
	return ctl_run(&o, "migrate", r, NULL);
}

/* One line of key=value pairs, "reason" last (it may hold spaces): for scripts. */
static void print_where(json_object *a)
{
	printf("guest=%s owner=%s owner_state=%s state=%s target=%s failures=%" PRId64
	       " quorate=%s reason=%s\n",
	       jstr(a, "guest"), jstr(a, "owner"), jstr(a, "owner_state"), jstr(a, "state"),
	       jstr(a, "target")[0] ? jstr(a, "target") : "-", jint(a, "failures"),
	       jbool(a, "quorate") ? "yes" : "no", jstr(a, "reason"));
}

static int ctl_where(int argc, char **argv)
{
	struct ctl_opts o;
	json_object *r;
	int rc = ctl_options(argc, argv, "where", 1, 1, false, &o);

	if (rc >= 0)
		return rc;
	r = request("where");
	json_object_object_add(r, "guest", json_object_new_string(argv[optind]));
	return ctl_run(&o, "where", r, print_where);
}

static void print_leaving(json_object *a)
{
	printf("node=%s state=%s leaving=%s reason=%s\n", jstr(a, "node"), jstr(a, "state"),
	       jbool(a, "leaving") ? "yes" : "no", jstr(a, "reason"));
}

/* Exit 0 when the node is leaving, 3 when it is not, 1 on error (a predicate for scripts). */
static int ctl_leaving(int argc, char **argv)
{
	struct ctl_opts o;
	json_object *r, *a;
	char *reply = NULL;
	int rc = ctl_options(argc, argv, "leaving", 0, 1, false, &o);

	if (rc >= 0)
		return rc;
	r = request("leaving");
	if (argc - optind == 1)
		json_object_object_add(r, "node", json_object_new_string(argv[optind]));
	rc = ctl_call_json(&o, "leaving", r, &a, &reply);
	if (rc != 0)
		return rc;
	if (o.json)
		printf("%s\n", reply);
	else
		print_leaving(a);
	rc = jbool(a, "leaving") ? 0 : 3;
	json_object_put(a);
	free(reply);
	return rc;
}

static const struct cmd_spec ctl_cmds[] = {
    {"status", ctl_status, "Show the cluster, quorum and this node's state", "[--json]",
     CTL_OPTIONS},
    {"nodes", ctl_nodes, "List nodes with state and free memory", "[--json]", CTL_OPTIONS},
    {"guests", ctl_guests, "List guests with owner and state", "[--json]", CTL_OPTIONS},
    {"mark-failing", ctl_mark_failing,
     "Mark a node failing: evacuate it live (--cold: by stop and cold start)",
     "<node> [--cold] [--reason TEXT]",
     "  --cold              stop each guest (destroy) and cold-boot it on a healthy node\n"
     "                      instead of migrating it live (node state \"stopping\")\n"
     "  --reason TEXT       why (shown in status and events)\n" CTL_OPTIONS},
    {"clear", ctl_clear, "Return a node to service", "<node>", CTL_OPTIONS},
    {"migrate", ctl_migrate, "Live-migrate a guest to a node", "<guest> <node>", CTL_OPTIONS},
    {"events", ctl_events, "Show recent cluster events", "[--json]", CTL_OPTIONS},
    {"where", ctl_where, "Show where a guest runs and which node takes it when its owner leaves",
     "<guest>", CTL_OPTIONS},
    {"leaving", ctl_leaving,
     "Is a node (default: this one) failing, stopping or draining? Exit 0 yes, 3 no, 1 error",
     "[<node>]", CTL_OPTIONS},
};

static const struct cmd_table ctl_table = {
    .prog = "haagent ctl",
    .cmds = ctl_cmds,
    .ncmds = sizeof(ctl_cmds) / sizeof(ctl_cmds[0]),
};

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: haagent [-f] [-c FILE] [-v]    run the HA agent daemon\n"
	        "       haagent ctl <command> [args]   talk to the local daemon\n"
	        "       haagent drill --node NODE ...  a controlled-failure drill (--help)\n"
	        "\n"
	        "Options:\n"
	        "  -f, --foreground     stay in the foreground, log to stderr\n"
	        "  -c, --config FILE    configuration file (default %s)\n"
	        "  -v, --verbose        more messages (repeat for debug)\n"
	        "  -h, --help           this help\n\n",
	        HAAGENT_DEFAULT_CONF);
	cmd_print_list(out, &ctl_table);
}

static int run_daemon(const char *conf, int foreground)
{
	struct ha_config cfg;
	char err[512];
	int rc;

	rc = ha_config_load(conf, &cfg, err, sizeof(err));
	if (rc < 0) {
		log_error("%s", err);
		return 1;
	}
	if (!foreground)
		log_set_sink(log_sink_syslog("haagent", LOG_DAEMON));
	rc = ha_daemon_run(&cfg);
	ha_config_release(&cfg);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"foreground", no_argument, NULL, 'f'},
	    {"config", required_argument, NULL, 'c'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *conf = HAAGENT_DEFAULT_CONF;
	int foreground = 0, opt;

	log_set_sink(log_sink_stderr("haagent"));
	if (argc > 1 && strcmp(argv[1], "drill") == 0)
		return ha_drill_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "ctl") == 0) {
		if (argc < 3 || !strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")) {
			cmd_print_list(argc < 3 ? stderr : stdout, &ctl_table);
			return argc < 3 ? 2 : 0;
		}
		return cmd_dispatch(&ctl_table, argc - 2, argv + 2);
	}
	while ((opt = getopt_long(argc, argv, "fc:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			foreground = 1;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'v':
			log_verbose();
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "haagent: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return run_daemon(conf, foreground);
}
