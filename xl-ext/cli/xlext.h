/*
 * xlext.h - what the xl-ext command handlers share: the command table, the global options
 * and the opened hypervisor backend.
 */
#ifndef XLEXT_XLEXT_H
#define XLEXT_XLEXT_H

#include "common/cmd.h"
#include "xl-ext/core/hv.h"

struct xlext_globals {
	const char *backend; /* --backend / XLEXT_BACKEND, NULL: default */
	int verbose;
};

extern struct xlext_globals xlext_globals;
extern const struct cmd_table xlext_table;

/* Open the selected backend for a command; logs the reason and returns an error if it can't. */
int xlext_open(struct loop *loop, const struct hv_ops **ops_r, struct hv **hv_r);

int main_list(int argc, char **argv);
int main_create(int argc, char **argv);
int main_destroy(int argc, char **argv);
int main_pause(int argc, char **argv);
int main_unpause(int argc, char **argv);
int main_domid(int argc, char **argv);
int main_domname(int argc, char **argv);
int main_rename(int argc, char **argv);
int main_info(int argc, char **argv);
int main_migrate(int argc, char **argv);
int main_migrate_receive(int argc, char **argv);
int main_estimate(int argc, char **argv);
int main_sim_check(int argc, char **argv);
int main_disk_check(int argc, char **argv);
int main_pr(int argc, char **argv);
int main_help(int argc, char **argv);
int main_version(int argc, char **argv);

/* Option help of the storage commands, kept with their handlers in cmd_storage.c. */
extern const char storage_disk_check_help[];
extern const char storage_pr_help[];

#endif
