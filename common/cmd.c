/*
 * cmd.c - command tables, generated help and option parsing for the CLIs.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/cmd.h"

const struct cmd_spec *cmd_find(const struct cmd_table *table, const char *name, int *ambiguous_r)
{
	const struct cmd_spec *found = NULL;
	size_t len = strlen(name);
	int matches = 0;

	if (ambiguous_r)
		*ambiguous_r = 0;
	if (len == 0)
		return NULL;
	for (unsigned i = 0; i < table->ncmds; i++) {
		const struct cmd_spec *c = &table->cmds[i];

		if (strcmp(c->name, name) == 0)
			return c;
		if (strncmp(c->name, name, len) == 0) {
			found = c;
			matches++;
		}
	}
	if (matches > 1) {
		if (ambiguous_r)
			*ambiguous_r = 1;
		return NULL;
	}
	return found;
}

void cmd_print_list(FILE *out, const struct cmd_table *table)
{
	size_t width = 0;

	for (unsigned i = 0; i < table->ncmds; i++) {
		size_t l = strlen(table->cmds[i].name);

		if (l > width)
			width = l;
	}
	fprintf(out, "Usage: %s [-v] [-h] <command> [args]\n\nCommands:\n", table->prog);
	for (unsigned i = 0; i < table->ncmds; i++)
		fprintf(out, "  %-*s  %s\n", (int)width, table->cmds[i].name,
		        table->cmds[i].summary);
	fprintf(out,
	        "\nRun '%s help <command>' or '%s <command> --help' for a command's options.\n",
	        table->prog, table->prog);
}

void cmd_print_usage(FILE *out, const struct cmd_table *table, const struct cmd_spec *cmd)
{
	fprintf(out, "Usage: %s %s %s\n\n%s.\n", table->prog, cmd->name,
	        cmd->usage ? cmd->usage : "", cmd->summary);
	if (cmd->options && cmd->options[0])
		fprintf(out, "\nOptions:\n%s", cmd->options);
	fprintf(out, "\n");
}

int cmd_getopt(int argc, char **argv, const char *optstring, const struct option *longopts,
               const struct cmd_table *table, const struct cmd_spec *cmd, int min_args)
{
	char opts[128];
	int opt;

	/* '+' stops at the first positional argument, as xl does; ':' reports missing values. */
	snprintf(opts, sizeof(opts), "+:h%s", optstring);
	opt = getopt_long(argc, argv, opts, longopts, NULL);
	switch (opt) {
	case 'h':
		cmd_print_usage(stdout, table, cmd);
		return CMD_HELP;
	case '?':
		if (optopt)
			fprintf(stderr, "%s %s: unknown option '-%c'\n", table->prog, cmd->name,
			        optopt);
		else
			fprintf(stderr, "%s %s: unknown option '%s'\n", table->prog, cmd->name,
			        argv[optind - 1]);
		cmd_print_usage(stderr, table, cmd);
		return CMD_USAGE;
	case ':':
		fprintf(stderr, "%s %s: option '%s' needs a value\n", table->prog, cmd->name,
		        argv[optind - 1]);
		cmd_print_usage(stderr, table, cmd);
		return CMD_USAGE;
	case -1:
		if (argc - optind < min_args) {
			fprintf(stderr, "%s %s: %s\n", table->prog, cmd->name, "missing arguments");
			cmd_print_usage(stderr, table, cmd);
			return CMD_USAGE;
		}
		return -1;
	default:
		return opt;
	}
}

int cmd_dispatch(const struct cmd_table *table, int argc, char **argv)
{
	const struct cmd_spec *cmd;
	int ambiguous;

	if (argc < 1) {
		cmd_print_list(stderr, table);
		return 2;
	}
	cmd = cmd_find(table, argv[0], &ambiguous);
	if (!cmd) {
		fprintf(stderr, "%s: %s command '%s'; run '%s help' for the list\n", table->prog,
		        ambiguous ? "ambiguous" : "unknown", argv[0], table->prog);
		return 2;
	}
	/* Each command parses its own options from a fresh getopt state. */
	optind = 0; /* glibc: 0 forces a full re-initialisation */
	opterr = 0;
	return cmd->handler(argc, argv);
}

int cmd_not_implemented(const char *prog, const char *name)
{
	fprintf(stderr, "%s: command '%s' is not implemented in this version\n", prog, name);
	return 1;
}

int cmd_stub(const struct cmd_table *table, int argc, char **argv)
{
	const struct cmd_spec *cmd = cmd_find(table, argv[0], NULL);

	for (int i = 1; i < argc && cmd; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			cmd_print_usage(stdout, table, cmd);
			return 0;
		}
	}
	return cmd_not_implemented(table->prog, cmd ? cmd->name : argv[0]);
}
