/*
 * cmd.h - xl-style command tables for the command-line tools.
 *
 * Each tool keeps one table of commands (name, handler, summary, usage, option help); the
 * top-level help and each command's help are generated from it, and unambiguous prefixes of a
 * command name are accepted, as in xl. CMD_FOREACH_OPT parses a command's options, adds
 * -h/--help and checks the number of positional arguments, like xl's SWITCH_FOREACH_OPT.
 */
#ifndef XLEXT_COMMON_CMD_H
#define XLEXT_COMMON_CMD_H

#include <getopt.h>
#include <stdio.h>

struct cmd_spec {
	const char *name;
	/* Returns the exit status: 0 success, 1 failure, 2 usage error. */
	int (*handler)(int argc, char **argv);
	const char *summary; /* one line for the command list */
	const char *usage;   /* "[options] <domain> <host>" */
	const char *options; /* option lines, already indented, may be NULL */
};

struct cmd_table {
	const char *prog;
	const struct cmd_spec *cmds;
	unsigned ncmds;
};

#define CMD_HELP  (-2)
#define CMD_USAGE (-3)

/* Terminator for long option arrays: adds --help. */
#define CMD_LONGOPTS_END                  \
	{"help", no_argument, NULL, 'h'}, \
	{                                 \
		NULL, 0, NULL, 0          \
	}

/*
 * Find a command by exact name or unambiguous prefix. Returns NULL when there is none; sets
 * *ambiguous_r to 1 when the prefix matched several commands.
 */
const struct cmd_spec *cmd_find(const struct cmd_table *table, const char *name, int *ambiguous_r);

/* The command list, as printed by "<prog> help". */
void cmd_print_list(FILE *out, const struct cmd_table *table);

/* Usage and option help of one command. */
void cmd_print_usage(FILE *out, const struct cmd_table *table, const struct cmd_spec *cmd);

/*
 * getopt_long with -h/--help added and a check of the positional count once options end.
 * Returns the next option character; -1 when options are done and at least min_args
 * positional arguments remain; CMD_HELP after printing help; CMD_USAGE after printing what was
 * wrong and the usage. optstring need not contain 'h'.
 */
int cmd_getopt(int argc, char **argv, const char *optstring, const struct option *longopts,
               const struct cmd_table *table, const struct cmd_spec *cmd, int min_args);

/* Dispatch argv[0] through the table (prefixes allowed); prints errors and returns 2 if unknown. */
int cmd_dispatch(const struct cmd_table *table, int argc, char **argv);

/* Handler for commands whose implementation has not landed yet: says so, exits 1. */
int cmd_not_implemented(const char *prog, const char *name);

/* Handler body for a command not built yet: honours -h/--help, else cmd_not_implemented. */
int cmd_stub(const struct cmd_table *table, int argc, char **argv);

#define CMD_FOREACH_OPT(opt, argc, argv, optstring, longopts, table, cmd, min_args)         \
	while (((opt) = cmd_getopt((argc), (argv), (optstring), (longopts), (table), (cmd), \
	                           (min_args))) != -1)                                      \
		if ((opt) == CMD_HELP)                                                      \
			return 0;                                                           \
		else if ((opt) == CMD_USAGE)                                                \
			return 2;                                                           \
		else                                                                        \
			switch (opt)

#endif
