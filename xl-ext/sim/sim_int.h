/*
 * sim_int.h - what the sim backend's files share: the host (struct hv) and its domain
 * records (sim_host.c), domain processes (sim_spawn.c), migration streams (sim_migrate.c) and
 * the struct hv_ops table (sim_backend.c). Nothing outside xl-ext/sim/ includes it.
 */
#ifndef XLEXT_SIM_SIM_INT_H
#define XLEXT_SIM_SIM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "xl-ext/core/hv.h"
#include "xl-ext/sim/sim.h"

struct sim_config;

#define SIM_SPAWN_TIMEOUT_MS   15000
#define SIM_DESTROY_TIMEOUT_MS 5000

struct hv {
	char root[256];
	uint64_t capacity_mib;
	int lock_fd;
};

/* sim_host.c: the host's state directory, its lock and its domain records */
int sim_open(struct hv **hv_r, struct loop *loop);
void sim_close(struct hv *hv);
int sim_host_info(struct hv *hv, struct hv_host_info *info);
int sim_list(struct hv *hv, struct hv_domain_info **doms_r, size_t *n_r);
int sim_lookup(struct hv *hv, const char *name_or_id, uint32_t *domid_r);
int sim_info(struct hv *hv, uint32_t domid, struct hv_domain_info *info);
void sim_dom_dir(const struct hv *hv, uint32_t domid, char *buf, size_t len);
int sim_lock(struct hv *hv);
void sim_unlock(struct hv *hv);
/* A domain's info.json, and the pid of its process; ERR_NOTFOUND when it does not run. */
int sim_read_info(struct hv *hv, uint32_t domid, struct hv_domain_info *info, pid_t *pid_r);
int sim_ctl_open(struct hv *hv, uint32_t domid, int *fd_r);
/* One request on a fresh connection; the reply text goes to out (may be NULL). */
int sim_ctl_call(struct hv *hv, uint32_t domid, const char *req, char *out, size_t cap);
/* Remove what a dead domain left behind. */
void sim_remove_dom_dir(struct hv *hv, uint32_t domid);
int sim_name_taken(struct hv *hv, const char *name);
int sim_next_domid(struct hv *hv, uint32_t *domid_r);

/* sim_spawn.c: domain processes */
/* Create the record and process of a domain; with incoming, an empty paused domain. */
int sim_create_from_config(struct hv *hv, const struct sim_config *cfg, int incoming,
                           uint32_t *domid_r);

/* sim_migrate.c: the two ends of a migration stream */
int sim_sample_dirty(struct hv *hv, uint32_t domid, unsigned window_ms, unsigned windows,
                     struct hv_dirty_sample *s);
int sim_send_stream(struct hv *hv, uint32_t domid, int fd, const struct mig_params *params,
                    struct mig_report *report);
int sim_receive_stream(struct hv *hv, int fd, const char *name, const char *config_json,
                       const struct mig_params *params, struct mig_report *report,
                       uint32_t *domid_r);
int sim_postcopy_end(struct hv *hv, uint32_t domid, struct mig_report *report);

#endif
