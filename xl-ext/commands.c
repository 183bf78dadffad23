/*
 * commands.c - xl-ext's command table; help is generated from it.
 *
 * Commands whose implementation has not landed yet say so and exit 1.
 */
#include "config.h"

#include "common/cmd.h"
#include "xl-ext/xlext.h"

#define NOT_YET(fn, name)                                                                      \
	int fn(int argc, char **argv)                                                          \
	{                                                                                      \
		return cmd_stub(&xlext_table, argc, argv);                                     \
	}

NOT_YET(main_list, "list")
NOT_YET(main_create, "create")
NOT_YET(main_destroy, "destroy")
NOT_YET(main_pause, "pause")
NOT_YET(main_unpause, "unpause")
NOT_YET(main_domid, "domid")
NOT_YET(main_domname, "domname")
NOT_YET(main_rename, "rename")
NOT_YET(main_migrate, "migrate")
NOT_YET(main_migrate_receive, "migrate-receive")

static const struct cmd_spec xlext_cmds[] = {
	{"create", main_create, "Create a domain from a config file", "[options] <ConfigFile>",
	 "  -p           leave the domain paused after it is created\n"},
	{"list", main_list, "List information about all or some domains", "[options] [Domain]",
	 "  -l, --long   output all VM details\n"},
	{"destroy", main_destroy, "Terminate a domain immediately", "<Domain>", NULL},
	{"pause", main_pause, "Pause execution of a domain", "<Domain>", NULL},
	{"unpause", main_unpause, "Unpause a paused domain", "<Domain>", NULL},
	{"domid", main_domid, "Convert a domain name to domain id", "<DomainName>", NULL},
	{"domname", main_domname, "Convert a domain id to domain name", "<DomainId>", NULL},
	{"rename", main_rename, "Rename a domain", "<Domain> <NewDomainName>", NULL},
	{"info", main_info, "Get information about the host", "", NULL},
	{"migrate", main_migrate, "Migrate a domain to another host", "[options] <Domain> <host>",
	 NULL},
	{"migrate-receive", main_migrate_receive, "Receive a migrating domain (run by migrate)",
	 "[options]", NULL},
	{"help", main_help, "Show the command list or one command's usage", "[command]", NULL},
	{"version", main_version, "Show xl-ext's version and backends", "", NULL},
};

const struct cmd_table xlext_table = {
	.prog = "xl-ext",
	.cmds = xlext_cmds,
	.ncmds = sizeof(xlext_cmds) / sizeof(xlext_cmds[0]),
};
