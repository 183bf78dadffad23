/*
 * simdom_vcpu.c - a simulated domU's vCPUs, the workload they run, its shared-disk writer, and the
 * HVM device model's state.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/sim/guestmem.h"
#include "xl-ext/sim/simdisk.h"
#include "xl-ext/sim/simdom_int.h"

#define VCPU_CHUNK        64      /* pages between pause points at most */
#define VCPU_MIN_SLEEP_NS 1000000 /* see vcpu_wait_locked */

struct vcpu_arg {
	struct simdom *d;
	unsigned id;
};

/* --- vCPUs ------------------------------------------------------------------------------ */

/*
 * The sim's host shares its cores between the guests and its dom0 work, above all a
 * migration's sender and receiver, which keep both cores of a small test machine busy; a real
 * Xen host gives each vCPU a physical CPU of its own that dom0 does not take. A guest thread
 * that had to wait its turn among them stalled for whole scheduler slices at a time, which a
 * client saw as gaps of tens of ms that no Xen guest has. So every thread that runs guest code
 * (the vCPUs, the probe service, the disk writer, the network announcer) runs ahead of dom0:
 * SCHED_FIFO at the lowest real-time priority, or the highest nice value where real-time is
 * refused (no CAP_SYS_NICE). They do little work each (the workload is rate-limited), and the
 * kernel's real-time throttling bounds them anyway. XLEXT_SIM_GUEST_PRIO=normal leaves them
 * as they are (to see what the sharing costs).
 */
void simdom_guest_thread(struct simdom *d, const char *role, unsigned index)
{
	const char *prio = getenv("XLEXT_SIM_GUEST_PRIO");
	struct sched_param sp = {.sched_priority = 1};
	char name[16];

	snprintf(name, sizeof(name), "%s%u", role, index);
	pthread_setname_np(pthread_self(), name);
	if (prio && !strcmp(prio, "normal"))
		return;
	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0)
		return;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), -20) == 0)
		return;
	log_debug("domain %s: guest thread %s runs at normal priority: %s", d->name, name,
	          strerror(errno));
}

static uint64_t pick_pfn(struct simdom *d, unsigned v, struct simdom_vcpu_regs *r)
{
	uint64_t nown = (d->nr_pages - 1 - v + d->nvcpus - 1) / d->nvcpus;
	uint64_t k;

	if (nown == 0)
		return 0;
	switch (d->cfg.pattern) {
	case SIM_PATTERN_SEQUENTIAL:
		k = r->seq_pos++ % nown;
		break;
	case SIM_PATTERN_HOTSET: {
		uint64_t nhot = d->cfg.hot_mib * 256 / d->nvcpus;

		if (nhot == 0)
			nhot = 1;
		if (nhot > nown)
			nhot = nown;
		k = simdom_xorshift(&r->rng) % nhot;
		break;
	}
	default:
		k = simdom_xorshift(&r->rng) % nown;
		break;
	}
	return 1 + v + k * d->nvcpus;
}

/*
 * Sleep (lock held; a pause wakes us) until the next page is due at rate pages per second
 * (due: pages owed now, < 1), at most 2 ms, and at least VCPU_MIN_SLEEP_NS: pages that fall
 * due meanwhile are written in one burst. Waking for each page of a fast workload (every
 * 20 us at 200 MiB/s) cost more than writing it: a futex and a timer per page, and a vCPU
 * that runs ahead of dom0 has no timer slack to batch them.
 */
static void vcpu_wait_locked(struct simdom *d, double rate, double due)
{
	int64_t wait_ns = 2000000;
	struct timespec ts;

	if (rate > 0) {
		double per = 1e9 / rate;

		if ((1.0 - due) * per < wait_ns)
			wait_ns = (int64_t)((1.0 - due) * per) + 1000;
		if (wait_ns < VCPU_MIN_SLEEP_NS)
			wait_ns = VCPU_MIN_SLEEP_NS;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += wait_ns;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_cond_timedwait(&d->cond, &d->lock, &ts);
}

/*
 * A vCPU whose workload asks for more than this host's CPU can write would run without pause
 * ahead of dom0 (simdom_guest_thread) and starve the host: it goes back to normal priority,
 * once, and says so.
 */
static bool vcpu_demote(struct simdom *d, unsigned v)
{
	struct sched_param sp = {.sched_priority = 0};

	pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
	setpriority(PRIO_PROCESS, (id_t)gettid(), 0);
	log_warn("domain %s: vCPU %u cannot keep up with dirty_mibps=%g on this host; it runs at "
	         "normal priority from now on",
	         d->name, v, d->cfg.dirty_mibps);
	return true;
}

static void *vcpu_main(void *arg)
{
	struct vcpu_arg *va = arg;
	struct simdom *d = va->d;
	unsigned v = va->id;
	struct simdom_vcpu_regs *r = &d->regs[v];
	double rate = d->cfg.dirty_mibps * 256.0 / d->nvcpus; /* pages per second */
	int64_t t0 = simdom_now_ns();
	uint64_t done = 0;
	unsigned last_throttle = 0;
	bool demoted = false;

	free(va);
	simdom_guest_thread(d, "vcpu", v);
	for (;;) {
		unsigned thr;
		double due;
		uint64_t n;

		pthread_mutex_lock(&d->lock);
		if (d->pause_req && !d->quit) {
			d->parked++;
			pthread_cond_broadcast(&d->cond);
			while (d->pause_req && !d->quit)
				pthread_cond_wait(&d->cond, &d->lock);
			d->parked--;
			t0 = simdom_now_ns();
			done = 0;
		}
		if (d->quit) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		thr = atomic_load(&d->throttle);
		if (thr != last_throttle) {
			last_throttle = thr;
			t0 = simdom_now_ns();
			done = 0;
		}
		due = (double)(simdom_now_ns() - t0) / 1e9 * rate * (100 - thr) / 100.0 -
		      (double)done;
		if (rate <= 0 || due < 1.0) {
			vcpu_wait_locked(d, rate * (100 - thr) / 100.0, due);
			pthread_mutex_unlock(&d->lock);
			continue;
		}
		if (due > rate / 2 && !demoted) /* 500 ms behind: this host cannot keep up */
			demoted = vcpu_demote(d, v);
		pthread_mutex_unlock(&d->lock);
		n = due > VCPU_CHUNK ? VCPU_CHUNK : (uint64_t)due;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t pfn = pick_pfn(d, v, r);

			if (pfn)
				gm_write_page(d->mem, pfn);
			r->writes++;
		}
		done += n;
	}
	return NULL;
}

int simdom_start_vcpus(struct simdom *d)
{
	d->vcpu_threads = calloc(d->nvcpus, sizeof(pthread_t));
	if (!d->vcpu_threads)
		return ERR_NOMEM;
	for (unsigned v = 0; v < d->nvcpus; v++) {
		struct vcpu_arg *va = malloc(sizeof(*va));

		if (!va)
			return ERR_NOMEM;
		va->d = d;
		va->id = v;
		if (pthread_create(&d->vcpu_threads[v], NULL, vcpu_main, va)) {
			free(va);
			return ERR_NOMEM;
		}
	}
	d->vcpus_started = true;
	return 0;
}

/* Park every vCPU between two page writes. Called with lock held. */
void simdom_pause_locked(struct simdom *d)
{
	atomic_store(&d->running, false);
	simdom_net_gate(d, false);
	d->pause_req = true;
	pthread_cond_broadcast(&d->cond);
	if (d->vcpus_started)
		while (d->parked < d->nvcpus)
			pthread_cond_wait(&d->cond, &d->lock);
	while (d->disk_busy)
		pthread_cond_wait(&d->cond, &d->lock);
}

/* --- shared disk ------------------------------------------------------------------------ */

/* Wait on the domain's condition until abs_ns (CLOCK_MONOTONIC) at most. Lock held. */
static void wait_until_locked(struct simdom *d, int64_t abs_ns)
{
	int64_t left = abs_ns - simdom_now_ns();
	struct timespec ts;

	if (left <= 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += left % 1000000000;
	ts.tv_sec += left / 1000000000 + ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_cond_timedwait(&d->cond, &d->lock, &ts);
}

/*
 * The disk workload: disk_write_hz journal appends per second while the guest runs. Writes
 * happen outside the lock with disk_busy set, so a pause (simdom_pause_locked) returns only once no
 * write is in flight; a paused guest starts none.
 */
static void *disk_main(void *arg)
{
	struct simdom *d = arg;
	int64_t period = (int64_t)(1e9 / d->cfg.disk_write_hz), next = 0;

	simdom_guest_thread(d, "disk", 0);
	pthread_mutex_lock(&d->lock);
	while (!d->quit) {
		int64_t now;

		if (d->state != ST_RUNNING || d->pause_req) {
			pthread_cond_wait(&d->cond, &d->lock);
			next = 0;
			continue;
		}
		now = simdom_now_ns();
		if (next && now < next) {
			wait_until_locked(d, next);
			continue;
		}
		next = (next && now - next < period) ? next + period : now + period;
		d->disk_busy = true;
		pthread_mutex_unlock(&d->lock);
		simdisk_write(d->disk);
		pthread_mutex_lock(&d->lock);
		d->disk_busy = false;
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* Open the shared disk (booted: acquire it and start the journal) and start its writer. */
int simdom_disk_start(struct simdom *d, int incoming)
{
	int rc;

	if (d->cfg.disk_write_hz <= 0)
		return 0;
	rc = simdisk_open(&d->disk, &d->cfg, d->name, d->mem, gm_sb(d->mem)->boot_id, incoming);
	if (rc)
		return rc;
	if (pthread_create(&d->disk_thread, NULL, disk_main, d))
		return ERR_NOMEM;
	d->disk_started = true;
	return 0;
}

/* --- device model (HVM) ----------------------------------------------------------------- */

void simdom_dm_init(struct simdom *d)
{
	struct dm_header *h = (struct dm_header *)d->dm;
	uint64_t s = d->cfg.seed ^ 0xd3d3d3d3ull;

	for (size_t i = sizeof(*h); i + 8 <= SIMDOM_DM_SIZE; i += 8) {
		uint64_t w = simdom_xorshift(&s);

		memcpy(d->dm + i, &w, 8);
	}
	h->magic = DM_MAGIC;
	h->len = SIMDOM_DM_SIZE;
}

/* dm may be unaligned (inside a received message): fields are read with memcpy. */
uint64_t simdom_dm_checksum(const uint8_t *dm)
{
	XXH64_state_t st;

	XXH64_reset(&st, 0);
	XXH64_update(&st, dm + offsetof(struct dm_header, counter), sizeof(uint64_t));
	XXH64_update(&st, dm + sizeof(struct dm_header), SIMDOM_DM_SIZE - sizeof(struct dm_header));
	return XXH64_digest(&st);
}
