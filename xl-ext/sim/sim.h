/*
 * sim.h - what the sim backend offers beyond struct hv_ops (used by sim-only commands and
 * tests), and the encoding of a domain's saved vCPU/device state on its control channel.
 */
#ifndef XLEXT_SIM_SIM_H
#define XLEXT_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "xl-ext/core/hv.h"

struct pc_cpu_state;

extern const struct hv_ops sim_hv_ops;

/* struct hv_ops capabilities (sim_config_ops.c). */
int sim_disk_specs(struct hv *hv, uint32_t domid, struct hv_disk_specs *specs);
int sim_config_file_json(struct hv *hv, const char *path, const char *name, char **json_r);
int sim_domain_check(struct hv *hv, uint32_t domid, bool status_only, char *out, size_t len);

/* Destroy a domain and wait for its process to exit (SIGKILL after a timeout). */
int sim_destroy_domain(struct hv *hv, uint32_t domid);

/* Verify a paused domain's memory image (guestmem.h); JSON result in out. */
int sim_check_domain(struct hv *hv, uint32_t domid, char *out, size_t cap);

/* The domain's live status (counter, boot id, state) as JSON in out. */
int sim_query_domain(struct hv *hv, uint32_t domid, char *out, size_t cap);

/* State blob: u32 nr_vcpus, u32 vcpu_len, u32 dm_len, vcpu states, device model. */
int sim_state_decode(const uint8_t *buf, size_t len, struct pc_cpu_state *st);
int sim_state_encode(const struct pc_cpu_state *st, uint8_t **buf_r, size_t *len_r);

/*
 * True while pid runs; a zombie (exited, not yet reaped by init) counts as gone. For the
 * sim's liveness of a domain process, and for the tests' checkers that read its files.
 */
bool sim_pid_running(pid_t pid);

#endif
