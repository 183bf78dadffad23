/*
 * simdom.h - a simulated domU: one process per guest.
 *
 * Its RAM is a memfd; vCPU threads run the configured workload, dirtying pages at the
 * configured rate and pattern and keeping verifiable state in guest memory (guestmem.h);
 * dirty pages are tracked by the kernel (dirtylog.h); it answers the guest probe protocol
 * (xl-ext/core/guestproto.h) on its vif IP; an HVM guest carries a device-model state blob.
 * The sim backend drives it through its control socket (simctl.h).
 */
#ifndef XLEXT_SIM_SIMDOM_H
#define XLEXT_SIM_SIMDOM_H

#include <stdint.h>

#define SIMDOM_DM_SIZE (16u * 1024)

/* vCPU "registers": what moves in VCPU_STATE records. */
struct simdom_vcpu_regs {
	uint64_t magic;
	uint64_t rng;
	uint64_t seq_pos;
	uint64_t writes;
};

/*
 * Run the domain process (xl-ext-simdom's main): dir is its state directory (config.json
 * there), incoming selects a paused, empty domain that waits for a migration stream.
 * notify_fd receives one byte (0 ready, 1 failed) once it is ready or has failed.
 * Returns the exit status.
 */
int simdom_run(const char *dir, int incoming, int notify_fd);

#endif
