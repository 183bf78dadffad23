/*
 * main.c - haagent: the HA agent daemon, and "haagent ctl" to talk to it.
 *
 *   haagent [-f] [-c FILE] [-v]      run the daemon (foreground with -f)
 *   haagent ctl [--json] <command>   query or command the local daemon
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/cmd.h"
#include "common/error.h"
#include "common/log.h"
#include "haagent/cluster.h"

#define HAAGENT_DEFAULT_CONF SYSCONFDIR "/haagent.conf"

static const struct cmd_table ctl_table;

#define NOT_YET(fn, name)                                                                      \
	static int fn(int argc, char **argv)                                                   \
	{                                                                                      \
		return cmd_stub(&ctl_table, argc, argv);                                       \
	}

NOT_YET(ctl_status, "status")
NOT_YET(ctl_nodes, "nodes")
NOT_YET(ctl_guests, "guests")
NOT_YET(ctl_mark_failing, "mark-failing")
NOT_YET(ctl_clear, "clear")
NOT_YET(ctl_migrate, "migrate")
NOT_YET(ctl_events, "events")

static const struct cmd_spec ctl_cmds[] = {
	{"status", ctl_status, "Show the cluster, quorum and this node's state", "[--json]", NULL},
	{"nodes", ctl_nodes, "List nodes with state and free memory", "[--json]", NULL},
	{"guests", ctl_guests, "List guests with owner and state", "[--json]", NULL},
	{"mark-failing", ctl_mark_failing, "Mark a node failing: evacuate it by live migration",
	 "<node> [--reason TEXT]", NULL},
	{"clear", ctl_clear, "Return a node to service", "<node>", NULL},
	{"migrate", ctl_migrate, "Live-migrate a guest to a node", "<guest> <node>", NULL},
	{"events", ctl_events, "Show recent cluster events", "[--json]", NULL},
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
	(void)conf;
	(void)foreground;
	log_error("the haagent daemon is not implemented in this version");
	return 1;
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
