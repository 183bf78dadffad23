/*
 * main.c - the xl-ext command: global options, then one command from the table.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/cli/xlext.h"

struct xlext_globals xlext_globals;

static void usage_global(FILE *out)
{
	cmd_print_list(out, &xlext_table);
	fprintf(out,
	        "\nGlobal options:\n"
	        "  -v, --verbose        more messages (repeat for debug)\n"
	        "  -b, --backend NAME   hypervisor backend (default: $XLEXT_BACKEND or %s)\n"
	        "  -h, --help           this help\n",
	        hv_registry.default_name);
}

int xlext_open(struct loop *loop, const struct hv_ops **ops_r, struct hv **hv_r)
{
	return hv_open_by_name(xlext_globals.backend, loop, ops_r, hv_r);
}

int main_help(int argc, char **argv)
{
	const struct cmd_spec *cmd;
	int ambiguous;

	if (argc < 2) {
		usage_global(stdout);
		return 0;
	}
	cmd = cmd_find(&xlext_table, argv[1], &ambiguous);
	if (!cmd) {
		fprintf(stderr, "xl-ext: %s command '%s'\n", ambiguous ? "ambiguous" : "unknown",
		        argv[1]);
		return 2;
	}
	cmd_print_usage(stdout, &xlext_table, cmd);
	return 0;
}

int main_version(int argc, char **argv)
{
	char names[128];

	(void)argc;
	(void)argv;
	registry_list(&hv_registry, names, sizeof(names));
	printf("xl-ext %s (hypervisor backends: %s)\n", PACKAGE_VERSION, names);
	return 0;
}

/*
 * A command xl-ext does not implement goes to the backend's own tool unchanged (xl, with the
 * xen backend); with a backend that has none (sim) it stays a usage error.
 */
static const char *xlext_fallback_tool(const char *cmd)
{
	const struct hv_ops *ops = hv_ops_by_name(xlext_globals.backend);
	int ambiguous = 0;

	if (!ops || !ops->fallback_tool || cmd_find(&xlext_table, cmd, &ambiguous) || ambiguous)
		return NULL;
	return ops->fallback_tool;
}

/* exec "<tool> <same arguments>" (xl's -v first); returns only if the tool cannot be run. */
static int xlext_exec_tool(const char *tool, int argc, char **argv)
{
	char **xl_argv = calloc((size_t)argc + (size_t)xlext_globals.verbose + 2, sizeof(*xl_argv));
	int n = 0;

	if (!xl_argv)
		return 1;
	xl_argv[n++] = (char *)tool;
	for (int i = 0; i < xlext_globals.verbose; i++)
		xl_argv[n++] = (char *)"-v"; /* xl's own -v, given before the command */
	for (int i = 0; i < argc; i++)
		xl_argv[n++] = argv[i];
	fflush(NULL);
	execvp(tool, xl_argv);
	if (errno == ENOENT) {
		/* nothing to hand it to: the same usage error as with the sim backend */
		log_error("unknown command '%s' (not an xl-ext command, and %s is not installed "
		          "to run it); see 'xl-ext help'",
		          argv[0], tool);
		free(xl_argv);
		return 2;
	}
	log_error_errno(errno, "'%s' is not an xl-ext command and %s cannot be run", argv[0], tool);
	free(xl_argv);
	return 127;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"verbose", no_argument, NULL, 'v'},
	    {"backend", required_argument, NULL, 'b'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *tool;
	int opt;

	log_set_sink(log_sink_stderr("xl-ext"));
	xlext_globals.backend = getenv("XLEXT_BACKEND");
	while ((opt = getopt_long(argc, argv, "+vb:htT", longopts, NULL)) != -1) {
		switch (opt) {
		case 'v':
			xlext_globals.verbose++;
			log_verbose();
			break;
		case 'b':
			xlext_globals.backend = optarg;
			break;
		case 'h':
			usage_global(stdout);
			return 0;
		case 't':
		case 'T':
			break; /* xl's tty and timestamp flags, passed by the migration rune */
		default:
			usage_global(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage_global(stderr);
		return 2;
	}
	tool = xlext_fallback_tool(argv[optind]);
	if (tool)
		return xlext_exec_tool(tool, argc - optind, argv + optind);
	return cmd_dispatch(&xlext_table, argc - optind, argv + optind);
}
