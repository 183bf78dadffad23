/*
 * simdom_int.h - the simulated domU process's own state, shared by its parts: the life cycle
 * (simdom.c), memory (simdom_mem.c), vCPUs and their workloads (simdom_vcpu.c), network
 * (simdom_net.c) and control socket (simdom_ctl.c). Nothing outside them includes it.
 *
 * Locking: lock guards state, pause_req, quit, parked, disk_busy and the info file; cond
 * wakes vCPUs, the disk writer and pausers. The control commands run on the main thread.
 */
#ifndef XLEXT_SIM_SIMDOM_INT_H
#define XLEXT_SIM_SIMDOM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xl-ext/sim/simcfg.h"
#include "xl-ext/sim/simdom.h"
#include "xl-ext/sim/simnet.h"

#define VCPU_REGS_MAGIC 0x5843505552454753ull /* "XCPUREGS" */
#define DM_MAGIC        0x58444d5354415445ull /* "XDMSTATE" */

enum dom_state { ST_INCOMING, ST_PAUSED, ST_RUNNING };

struct dm_header {
	uint64_t magic;
	uint64_t counter; /* the guest's counter when the device model was saved */
	uint64_t checksum;
	uint64_t len;
};

struct simdom {
	char dir[256];
	char host[28];
	uint32_t domid;
	struct sim_config cfg;
	char name[HV_NAME_MAX];
	int memfd;
	uint8_t *mem;
	uint64_t nr_pages;
	int bmfd;
	uint64_t *bitmap;
	size_t bm_bytes;
	struct dirtylog *dl;
	atomic_bool logging; /* dirty logging enabled (a migration's pre-copy runs): "info" says */
	int pc_uffd;         /* post-copy: missing-page faults on mem go to the receiver (-1) */
	bool pc_lost;        /* post-copy failed: pages stayed with the source; never runs again */
	int pc_arm_fd;       /* the control connection that armed post-copy: its receiver's */
	int ctl_client;      /* the control connection of the command being run */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum dom_state state;
	bool pause_req;
	atomic_bool running; /* state running, no pause requested: the probe service answers */
	bool quit;
	unsigned parked;
	unsigned nvcpus;
	bool vcpus_started;
	pthread_t *vcpu_threads;
	struct simdom_vcpu_regs *regs;
	atomic_uint throttle;
	uint8_t dm[SIMDOM_DM_SIZE] __attribute__((aligned(8)));

	struct simnet net;
	bool net_open;
	bool udp_started;
	bool announcing;
	pthread_t announce_thread;
	int udp_fd;
	pthread_t udp_thread;
	int http_fd; /* the HTTP service's listener (GUEST_HTTP_PORT) */
	bool http_started;
	pthread_t http_thread;
	struct loop *loop;
	int listen_fd;

	struct simdisk *disk; /* the shared disk the workload writes (disk_write_hz > 0) */
	bool disk_started;
	bool disk_busy; /* a write is in flight: a pause waits for it, as blkback drains */
	pthread_t disk_thread;
};

/* simdom.c */
int64_t simdom_now_ns(void);
uint64_t simdom_xorshift(uint64_t *s);
const char *simdom_state_name(enum dom_state s);
/* info.json: what "list" shows without talking to the process. Called with lock held. */
void simdom_write_info(struct simdom *d);

/* simdom_mem.c */
int simdom_mem_setup(struct simdom *d);
/*
 * A bitmap (nr_pages bits, caller frees) of the pages that hold data, from SEEK_DATA: to look
 * at guest memory without reading holes through the mapping, which would allocate them.
 */
int simdom_mem_data_pages(const struct simdom *d, uint64_t **bitmap_r);

/* simdom_vcpu.c */
/* Name the calling guest thread (role, index) and run it ahead of dom0 (simdom_vcpu.c). */
void simdom_guest_thread(struct simdom *d, const char *role, unsigned index);
int simdom_start_vcpus(struct simdom *d);
/* Park every vCPU between two page writes and wait for the disk writer. Lock held. */
void simdom_pause_locked(struct simdom *d);
/* Open the shared disk (booted: acquire it and start the journal) and start its writer. */
int simdom_disk_start(struct simdom *d, int incoming);
void simdom_dm_init(struct simdom *d);
uint64_t simdom_dm_checksum(const uint8_t *dm);

/* simdom_net.c */
int simdom_net_prepare(struct simdom *d);
int simdom_net_attach(struct simdom *d);
void simdom_net_gate(struct simdom *d, bool running);
void simdom_net_stop(struct simdom *d);

/* simdom_ctl.c */
/* Post-copy's userfaultfd off the guest's memory: threads waiting for a page go on (teardown,
 * or every page is here). */
void simdom_postcopy_disarm(struct simdom *d);
/* The control socket in the domain's directory, served by d->loop (created here). */
int simdom_ctl_start(struct simdom *d);

#endif
