/*
 * worker.h - what haagent's executor runs in a child process, one per job (as OpenBSD vmd
 * gives each VM its own process): the blocking migration library calls, domain creation and
 * destruction, and the fence command. Each function opens its own hypervisor handle and
 * returns the child's exit status (enum ha_worker_status).
 */
#ifndef XLEXT_HAAGENT_WORKER_H
#define XLEXT_HAAGENT_WORKER_H

#include <stdbool.h>

#include "haagent/conf.h"
#include "xl-ext/core/hv.h"

enum ha_worker_status {
	HA_WORKER_OK = 0,
	HA_WORKER_FAILED = 1,    /* nothing changed: the guest is where it was */
	HA_WORKER_UNDEFINED = 2, /* migration broke after the point of no return */
	HA_WORKER_LOST = 3,      /* post-copy broke after the guest ran on the target: paused on
	                            both hosts for good, never resumed here */
};

/*
 * In a fresh child: close every descriptor above stderr but keep_fd (-1: none), unblock the
 * signals the daemon routes through its signalfd, restore default handlers.
 */
void ha_worker_child_init(int keep_fd);

/*
 * Live-migrate guest to the agent listening at addr ("host:port") through the one migration
 * orchestrator (mig_run over the TCP transport, authenticated with cfg's migration_key, with
 * cfg's pre-copy policy): the disk check, LUN identity and the reservation hand-over run as
 * for "xl-ext migrate". After a failure past the point of no return the local copy stays
 * paused as <guest>--migratedaway and HA_WORKER_UNDEFINED is returned: the executor drops it
 * once the target reports the guest running, or resumes it when the target does not.
 * On success the figures of the migration's report ("downtime 6.4 ms, total 812.3 ms") are
 * written to report_fd (if >= 0): the executor puts them in the cluster's MIG_DONE, so every
 * node's events say what the move cost.
 */
int ha_worker_send(const struct hv_ops *ops, const char *guest, const char *addr,
                   const struct ha_config *cfg, int report_fd);

/* Authenticate the sender on conn and receive one domain (mig_serve, with the hand-over). */
int ha_worker_receive(const struct hv_ops *ops, int conn, const char *key_file);

/*
 * Create guest from its configuration file (a cold restart from shared storage). On success
 * "start 95.3 ms" (the backend's create) is written to report_fd (if >= 0), for the
 * cluster's GUEST_RESTARTED.
 */
int ha_worker_create(const struct hv_ops *ops, const char *config_path, const char *guest,
                     int report_fd);

/*
 * Destroy guest here (the cold-restart fallback shuts it down before it starts elsewhere; a
 * stale copy after a fence). A guest that does not run here counts as destroyed. On success
 * "stop 12.0 ms" is written to report_fd (if >= 0), for the cluster's GUEST_STOPPED.
 */
int ha_worker_destroy(const struct hv_ops *ops, const char *guest, int report_fd);

/*
 * The domains of this host, through a hypervisor connection of the caller's own (a worker
 * child must not use the daemon's: libxl's is unusable after the fork). As hv_ops.list.
 */
int ha_worker_list(const struct hv_ops *ops, struct hv_domain_info **doms_r, size_t *n_r);

/*
 * The owner's half of a cold restart: destroy guest here (ha_worker_destroy) only if it can
 * be started again from config_path - set, and read and converted by the backend as the
 * target's create will (hv_ops.config_file_json; readable at least where the backend cannot
 * convert). Otherwise the guest keeps running here and the error names the guest and the
 * file: a guest is never shut down for a restart that cannot happen.
 */
int ha_worker_stop_for_restart(const struct hv_ops *ops, const char *guest, const char *config_path,
                               int report_fd);

/*
 * Settle guest's copy paused here as <guest>--migratedaway after a migration broke past the
 * point of no return: destroy it, or with resume, rename it back and unpause it.
 */
int ha_worker_settle_away(const struct hv_ops *ops, const char *guest, bool resume);

/*
 * Run "command node_name" through /bin/sh in a process group of its own; OK only when it
 * exits 0 within timeout_s. A command still running then is killed (with what it started)
 * and the node counts as not fenced.
 */
int ha_worker_fence(const char *command, const char *node_name, int timeout_s);

#endif
