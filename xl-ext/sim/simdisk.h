/*
 * simdisk.h - a simulated guest's shared disk: one long-lived libiscsi session per domain
 * process to the LUN of its first writable iSCSI disk, and a workload that appends journal
 * records (storage/journal.h) to it.
 *
 * The writer's position (guest id, next sequence number, checksum of the last record, last
 * acknowledged number) lives in guest memory, page 0 at SIMDISK_MEM_OFFSET, so it migrates
 * with the guest's memory like a real guest's block-layer state: the destination continues
 * the journal where the source stopped. What the host saw (conflicts, errors, the first
 * sequence number written here) lives in the process.
 *
 * Ownership: a freshly booted guest acquires the LUN with this host's key (REGISTER, RESERVE
 * WRITE EXCLUSIVE - REGISTRANTS ONLY, VERIFY, owner.h); an incoming guest registers its own
 * session with this host's key when it first runs here (the migration's hand-over moves the
 * reservation, migrate_ext.h). It never registers again after a RESERVATION CONFLICT: a
 * preempted host must not take the LUN back by itself. A session that fails (the target
 * restarted, the path broke) is logged in again, at most every 200 ms, and a host that had
 * registered restores its ownership on it (owner.h, own_plan_rejoin): it registers the new
 * session while its key is registered, takes the LUN again when the target lost every
 * registration and the reservation, and counts a conflict when another key reserved it.
 *
 * The caller (simdom.c) serialises every call and quiesces the writer before a pause returns.
 */
#ifndef XLEXT_SIM_SIMDISK_H
#define XLEXT_SIM_SIMDISK_H

#include <stddef.h>
#include <stdint.h>

#include "xl-ext/sim/simcfg.h"

#define SIMDISK_MEM_OFFSET 2048u                 /* in guest page 0, after the superblock */
#define SIMDISK_MEM_MAGIC  0x4b53494458534d53ull /* "SMSXDISK" */

/* The writer's state in guest memory. */
struct simdisk_mem {
	uint64_t magic;
	uint64_t guest_id;
	uint64_t next_seq;
	uint64_t prev_csum;
	uint64_t acked;
	uint64_t base;
	uint64_t ring;
};

struct simdisk;

/*
 * Open the disk of a guest configured with disk_write_hz > 0. mem is guest page 0. Fresh boot
 * (incoming = 0): log in, acquire the LUN, start a new journal for guest_id and record the
 * writer's state in mem. Incoming: log in only; the state arrives with the memory. Returns 0,
 * ERR_NOTFOUND when the configuration has no writable iSCSI disk, ERR_NOTSUP without
 * libiscsi, or the error of the step that failed (logged naming domain, LUN and host).
 */
int simdisk_open(struct simdisk **sd_r, const struct sim_config *cfg, const char *domain, void *mem,
                 uint64_t guest_id, int incoming);

/*
 * Append one record. 0 when it was acknowledged; ERR_CONFLICT when the target refused it with
 * RESERVATION CONFLICT (reported once per state change: domain, LUN, key); another error for
 * other failures. A refused record is not acknowledged: its number is written again next.
 */
int simdisk_write(struct simdisk *sd);

/* The disk's state as a JSON object body fragment (",\"disk\":{...}") for the info reply. */
void simdisk_info(const struct simdisk *sd, char *buf, size_t cap);

/*
 * The guest stops for good on this host (destroyed or shut down, not migrated away: domain is
 * its current name, and a name ending in "--migratedaway" means its new host owns the LUN):
 * give the LUN back. Its session first preempts this host's own key, which makes it the
 * reservation holder even when another, closed session of this host took the reservation in
 * a hand-over, and removes those stale registrations; then RELEASE and unregister. Nothing
 * is done after a reservation conflict (the LUN is not this host's) or before the guest
 * registered. Returns 0 or the error (logged, naming domain, LUN and key).
 */
int simdisk_release(struct simdisk *sd, const char *domain);

void simdisk_close(struct simdisk *sd);

#endif
