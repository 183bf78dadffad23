/*
 * simdom.c - the simulated domU process: memory, vCPUs, probe service, control socket.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/core/guestproto.h"
#include "xl-ext/sim/dirtylog.h"
#include "xl-ext/sim/guestmem.h"
#include "xl-ext/sim/simcfg.h"
#include "xl-ext/sim/simctl.h"
#include "xl-ext/sim/simdisk.h"
#include "xl-ext/sim/simdom.h"
#include "xl-ext/sim/simnet.h"

#define VCPU_REGS_MAGIC 0x5843505552454753ull /* "XCPUREGS" */
#define DM_MAGIC        0x58444d5354415445ull /* "XDMSTATE" */
#define VCPU_CHUNK      64                    /* pages between pause points at most */

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

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum dom_state state;
	bool pause_req;
	bool quit;
	unsigned parked;
	unsigned nvcpus;
	bool vcpus_started;
	pthread_t *vcpu_threads;
	struct simdom_vcpu_regs *regs;
	atomic_uint throttle;
	uint8_t dm[SIMDOM_DM_SIZE] __attribute__((aligned(8)));

	pthread_t populate_thread;
	bool populating;
	struct simnet net;
	bool net_open;
	bool udp_started;
	bool announcing;
	pthread_t announce_thread;
	int udp_fd;
	pthread_t udp_thread;
	struct loop *loop;
	int listen_fd;

	struct simdisk *disk; /* the shared disk the workload writes (disk_write_hz > 0) */
	bool disk_started;
	bool disk_busy; /* a write is in flight: a pause waits for it, as blkback drains */
	pthread_t disk_thread;
};

struct vcpu_arg {
	struct simdom *d;
	unsigned id;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x2545f4914f6cdd1dull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* --- state file ------------------------------------------------------------------------- */

static const char *state_name(enum dom_state s)
{
	return s == ST_RUNNING ? "running" : s == ST_PAUSED ? "paused" : "incoming";
}

/* info.json: what "list" shows without talking to the process. Called with lock held. */
static void write_info(struct simdom *d)
{
	json_object *o = json_object_new_object();
	char path[300];
	const char *s;

	json_object_object_add(o, "domid", json_object_new_int64(d->domid));
	json_object_object_add(o, "name", json_object_new_string(d->name));
	json_object_object_add(o, "state", json_object_new_string(state_name(d->state)));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "type", json_object_new_string(hv_type_name(d->cfg.type)));
	json_object_object_add(o, "memory", json_object_new_int64((int64_t)d->cfg.memory_mib));
	json_object_object_add(o, "vcpus", json_object_new_int((int)d->cfg.vcpus));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	snprintf(path, sizeof(path), "%s/info.json", d->dir);
	if (file_write_atomic_volatile(path, s, strlen(s), 0600))
		log_error("domain %s: cannot write %s", d->name, path);
	json_object_put(o);
}

/* --- vCPUs ------------------------------------------------------------------------------ */

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
		k = xorshift(&r->rng) % nhot;
		break;
	}
	default:
		k = xorshift(&r->rng) % nown;
		break;
	}
	return 1 + v + k * d->nvcpus;
}

static void *vcpu_main(void *arg)
{
	struct vcpu_arg *va = arg;
	struct simdom *d = va->d;
	unsigned v = va->id;
	struct simdom_vcpu_regs *r = &d->regs[v];
	double rate = d->cfg.dirty_mibps * 256.0 / d->nvcpus; /* pages per second */
	int64_t t0 = now_ns();
	uint64_t done = 0;
	unsigned last_throttle = 0;

	free(va);
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
			t0 = now_ns();
			done = 0;
		}
		if (d->quit) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		thr = atomic_load(&d->throttle);
		if (thr != last_throttle) {
			last_throttle = thr;
			t0 = now_ns();
			done = 0;
		}
		due = (double)(now_ns() - t0) / 1e9 * rate * (100 - thr) / 100.0 - (double)done;
		if (rate <= 0 || due < 1.0) {
			/* sleep until the next page is due, at most 2 ms; pause wakes us */
			struct timespec ts;
			int64_t wait_ns = 2000000;

			if (rate > 0 && thr < 100) {
				double per = 1e9 / (rate * (100 - thr) / 100.0);

				if ((1.0 - due) * per < wait_ns)
					wait_ns = (int64_t)((1.0 - due) * per) + 1000;
			}
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += wait_ns;
			ts.tv_sec += ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&d->cond, &d->lock, &ts);
			pthread_mutex_unlock(&d->lock);
			continue;
		}
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

static int start_vcpus(struct simdom *d)
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
static void pause_locked(struct simdom *d)
{
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
	int64_t left = abs_ns - now_ns();
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
 * happen outside the lock with disk_busy set, so a pause (pause_locked) returns only once no
 * write is in flight; a paused guest starts none.
 */
static void *disk_main(void *arg)
{
	struct simdom *d = arg;
	int64_t period = (int64_t)(1e9 / d->cfg.disk_write_hz), next = 0;

	pthread_mutex_lock(&d->lock);
	while (!d->quit) {
		int64_t now;

		if (d->state != ST_RUNNING || d->pause_req) {
			pthread_cond_wait(&d->cond, &d->lock);
			next = 0;
			continue;
		}
		now = now_ns();
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
static int disk_start(struct simdom *d, int incoming)
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

/* --- probe service ---------------------------------------------------------------------- */

static void *udp_main(void *arg)
{
	struct simdom *d = arg;
	struct gm_superblock *sb = gm_sb(d->mem);

	for (;;) {
		struct pollfd p = {.fd = d->udp_fd, .events = POLLIN};
		struct guest_probe_reply rep;
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		char req[64];
		ssize_t n;
		bool running;

		if (__atomic_load_n(&d->quit, __ATOMIC_RELAXED))
			break;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recvfrom(d->udp_fd, req, sizeof(req), 0, (struct sockaddr *)&from, &flen);
		if (n < 8 || memcmp(req, GUEST_PROBE_MAGIC, 4) != 0)
			continue;
		pthread_mutex_lock(&d->lock);
		running = d->state == ST_RUNNING && !d->pause_req;
		pthread_mutex_unlock(&d->lock);
		if (!running)
			continue; /* a paused guest does not answer */
		memset(&rep, 0, sizeof(rep));
		memcpy(rep.magic, GUEST_PROBE_REPLY_MAGIC, 4);
		memcpy(&rep.seq, req + 4, 4);
		rep.boot_id = sb->boot_id;
		rep.counter = __atomic_load_n(&sb->counter, __ATOMIC_RELAXED);
		rep.domid = d->domid;
		snprintf(rep.host, sizeof(rep.host), "%s", d->host);
		sendto(d->udp_fd, &rep, sizeof(rep), 0, (struct sockaddr *)&from, flen);
	}
	return NULL;
}

/*
 * After the first announcement (simnet_attach), repeat it at growing intervals, as QEMU's
 * self-announce does: a peer that updated its ARP entry for the address less than its
 * locktime ago ignores a single announcement and would keep sending to the old host.
 */
static void *announce_main(void *arg)
{
	struct simdom *d = arg;
	static const int delays_ms[] = {50, 100, 200, 400, 800};

	for (size_t i = 0; i < sizeof(delays_ms) / sizeof(delays_ms[0]); i++) {
		usleep((useconds_t)delays_ms[i] * 1000);
		if (__atomic_load_n(&d->quit, __ATOMIC_RELAXED))
			break;
		simnet_announce(&d->net);
	}
	return NULL;
}

/*
 * Prepare the guest's vif when the domain is created (booted or incoming): interface, sockets
 * and the probe service, bound ahead of the address (IP_FREEBIND). What is left for unpause
 * is adding the address and announcing it: a real vif backend, too, exists before the guest
 * runs. A failure here is not fatal: the guest runs without network, as a warning says.
 */
static int net_prepare(struct simdom *d)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(GUEST_PROBE_PORT)};
	int one = 1, rc;

	if (!d->cfg.ip[0])
		return 0;
	rc = simnet_open(&d->net, d->cfg.ip);
	if (rc)
		return rc;
	d->net_open = true;
	inet_pton(AF_INET, d->cfg.ip, &sin.sin_addr);
	d->udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (d->udp_fd < 0)
		return err_from_errno(errno);
	setsockopt(d->udp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(d->udp_fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	if (bind(d->udp_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		rc = err_from_errno(errno);
		log_error_errno(errno, "domain %s: cannot bind the probe service to %s:%d", d->name,
		                d->cfg.ip, GUEST_PROBE_PORT);
		close(d->udp_fd);
		d->udp_fd = -1;
		return rc;
	}
	if (pthread_create(&d->udp_thread, NULL, udp_main, d)) {
		close(d->udp_fd);
		d->udp_fd = -1;
		return ERR_NOMEM;
	}
	d->udp_started = true;
	return 0;
}

/* Bring the guest's vif up on this host: its address, then gratuitous ARPs. */
static int net_attach(struct simdom *d)
{
	int rc;

	if (!d->udp_started || d->net.attached)
		return 0;
	rc = simnet_attach(&d->net);
	if (rc)
		return rc;
	if (!d->announcing && pthread_create(&d->announce_thread, NULL, announce_main, d) == 0)
		d->announcing = true;
	return 0;
}

/* --- device model (HVM) ----------------------------------------------------------------- */

static void dm_init(struct simdom *d)
{
	struct dm_header *h = (struct dm_header *)d->dm;
	uint64_t s = d->cfg.seed ^ 0xd3d3d3d3ull;

	for (size_t i = sizeof(*h); i + 8 <= SIMDOM_DM_SIZE; i += 8) {
		uint64_t w = xorshift(&s);

		memcpy(d->dm + i, &w, 8);
	}
	h->magic = DM_MAGIC;
	h->len = SIMDOM_DM_SIZE;
}

/* dm may be unaligned (inside a received message): fields are read with memcpy. */
static uint64_t dm_checksum(const uint8_t *dm)
{
	XXH64_state_t st;

	XXH64_reset(&st, 0);
	XXH64_update(&st, dm + offsetof(struct dm_header, counter), sizeof(uint64_t));
	XXH64_update(&st, dm + sizeof(struct dm_header), SIMDOM_DM_SIZE - sizeof(struct dm_header));
	return XXH64_digest(&st);
}

/* --- control commands ------------------------------------------------------------------- */

struct reply {
	int rc;
	char text[2048];
	void *bin;
	size_t bin_len;
	int fd;
};

static void say(struct reply *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(struct reply *r, int rc, const char *fmt, ...)
{
	va_list ap;

	r->rc = rc;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

static void cmd_info(struct simdom *d, struct reply *r)
{
	struct gm_superblock *sb = gm_sb(d->mem);
	char disk[1200] = "";

	if (d->disk)
		simdisk_info(d->disk, disk, sizeof(disk));
	say(r, 0,
	    "{\"domid\":%u,\"name\":\"%s\",\"state\":\"%s\",\"pid\":%d,\"memory\":%llu,"
	    "\"vcpus\":%u,\"type\":\"%s\",\"counter\":%llu,\"boot_id\":%llu,\"throttle\":%u,"
	    "\"dirtylog\":\"%s\"%s}",
	    d->domid, d->name, state_name(d->state), getpid(),
	    (unsigned long long)d->cfg.memory_mib, d->cfg.vcpus, hv_type_name(d->cfg.type),
	    (unsigned long long)__atomic_load_n(&sb->counter, __ATOMIC_RELAXED),
	    (unsigned long long)sb->boot_id, atomic_load(&d->throttle),
	    d->dl ? dirtylog_method_name(dirtylog_get_method(d->dl)) : "off", disk);
}

static void cmd_unpause(struct simdom *d, struct reply *r)
{
	int rc;

	if (d->state == ST_INCOMING) {
		say(r, ERR_BUSY, "domain %s is still receiving its migration stream", d->name);
		return;
	}
	d->pause_req = false;
	d->state = ST_RUNNING;
	pthread_cond_broadcast(&d->cond);
	write_info(d);
	pthread_mutex_unlock(&d->lock);
	rc = net_attach(d);
	pthread_mutex_lock(&d->lock);
	if (rc)
		log_warn("domain %s: running without network: %s", d->name, err_str(rc));
	say(r, 0, "running");
}

static void cmd_logdirty_enable(struct simdom *d, struct reply *r)
{
	int rc;

	if (!d->dl) {
		rc = dirtylog_open(&d->dl, d->mem, d->nr_pages, DIRTYLOG_AUTO);
		if (rc) {
			say(r, rc, "domain %s: cannot set up dirty logging: %s", d->name,
			    err_str(rc));
			return;
		}
	}
	if (d->bmfd < 0) {
		d->bm_bytes = ((d->nr_pages + 63) / 64) * 8;
		d->bmfd = memfd_create("xl-ext-sim-dirty-bitmap", MFD_CLOEXEC);
		if (d->bmfd < 0 || ftruncate(d->bmfd, (off_t)d->bm_bytes) < 0) {
			say(r, err_from_errno(errno), "domain %s: cannot allocate the dirty bitmap",
			    d->name);
			return;
		}
		d->bitmap = mmap(NULL, d->bm_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, d->bmfd, 0);
		if (d->bitmap == MAP_FAILED) {
			d->bitmap = NULL;
			say(r, err_from_errno(errno), "domain %s: cannot map the dirty bitmap",
			    d->name);
			return;
		}
	}
	rc = dirtylog_enable(d->dl);
	if (rc) {
		say(r, rc, "domain %s: cannot enable dirty logging: %s", d->name, err_str(rc));
		return;
	}
	say(r, 0, "%s", dirtylog_method_name(dirtylog_get_method(d->dl)));
	r->fd = d->bmfd;
}

static void cmd_logdirty_fetch(struct simdom *d, struct reply *r)
{
	size_t ndirty = 0;
	int rc;

	if (!d->dl || !d->bitmap) {
		say(r, ERR_BUSY, "domain %s: dirty logging is not enabled", d->name);
		return;
	}
	rc = dirtylog_fetch_and_clear(d->dl, d->bitmap, d->nr_pages, &ndirty);
	if (rc) {
		say(r, rc, "domain %s: fetching the dirty bitmap failed: %s", d->name, err_str(rc));
		return;
	}
	say(r, 0, "%zu", ndirty);
}

/* Suspend payload: u32 nvcpus, u32 regs size, u32 dm length, regs[], dm */
static void cmd_suspend(struct simdom *d, struct reply *r)
{
	static uint8_t
	    buf[12 + SIMCFG_MAX_VCPUS * sizeof(struct simdom_vcpu_regs) + SIMDOM_DM_SIZE];
	uint32_t hdr[3] = {d->nvcpus, sizeof(struct simdom_vcpu_regs),
	                   d->cfg.type == HV_TYPE_HVM ? SIMDOM_DM_SIZE : 0};
	size_t off = sizeof(hdr);

	pause_locked(d);
	if (d->state == ST_RUNNING)
		d->state = ST_PAUSED;
	write_info(d);
	memcpy(buf, hdr, sizeof(hdr));
	memcpy(buf + off, d->regs, d->nvcpus * sizeof(*d->regs));
	off += d->nvcpus * sizeof(*d->regs);
	if (hdr[2]) {
		struct dm_header *h = (struct dm_header *)d->dm;

		h->counter = gm_sb(d->mem)->counter;
		h->checksum = dm_checksum(d->dm);
		memcpy(buf + off, d->dm, SIMDOM_DM_SIZE);
		off += SIMDOM_DM_SIZE;
	}
	r->bin = buf;
	r->bin_len = off;
}

static void cmd_restore_state(struct simdom *d, const uint8_t *data, size_t len, struct reply *r)
{
	uint32_t hdr[3];
	size_t need;
	int rc;

	if (d->state != ST_INCOMING) {
		say(r, ERR_BUSY, "domain %s is not an incoming domain", d->name);
		return;
	}
	if (len < sizeof(hdr)) {
		say(r, ERR_PROTO, "domain %s: state blob too short", d->name);
		return;
	}
	memcpy(hdr, data, sizeof(hdr));
	need = sizeof(hdr) + (size_t)hdr[0] * hdr[1] + hdr[2];
	if (hdr[0] != d->nvcpus || hdr[1] != sizeof(struct simdom_vcpu_regs) || len != need ||
	    hdr[2] != (d->cfg.type == HV_TYPE_HVM ? SIMDOM_DM_SIZE : 0)) {
		say(r, ERR_PROTO,
		    "domain %s: vCPU/device state does not match the configuration "
		    "(%u vCPUs, %u-byte device model)",
		    d->name, hdr[0], hdr[2]);
		return;
	}
	memcpy(d->regs, data + sizeof(hdr), (size_t)hdr[0] * hdr[1]); /* regs: aligned copy */
	for (unsigned v = 0; v < d->nvcpus; v++)
		if (d->regs[v].magic != VCPU_REGS_MAGIC) {
			say(r, ERR_PROTO, "domain %s: vCPU %u state is corrupt", d->name, v);
			return;
		}
	if (hdr[2]) {
		const uint8_t *dm = data + sizeof(hdr) + (size_t)hdr[0] * hdr[1];
		struct dm_header h;

		memcpy(&h, dm, sizeof(h));
		if (h.magic != DM_MAGIC || h.checksum != dm_checksum(dm)) {
			say(r, ERR_CHECKSUM, "domain %s: device model state is corrupt", d->name);
			return;
		}
		if (h.counter != gm_sb(d->mem)->counter) {
			say(r, ERR_PROTO,
			    "domain %s: device model state (counter %llu) does not "
			    "match memory (counter %llu)",
			    d->name, (unsigned long long)h.counter,
			    (unsigned long long)gm_sb(d->mem)->counter);
			return;
		}
		memcpy(d->dm, dm, SIMDOM_DM_SIZE);
	}
	d->pause_req = true;
	rc = start_vcpus(d);
	if (rc) {
		say(r, rc, "domain %s: cannot start vCPUs", d->name);
		return;
	}
	d->state = ST_PAUSED;
	write_info(d);
	say(r, 0, "paused");
}

static void cmd_check(struct simdom *d, struct reply *r)
{
	struct gm_check c;

	if (d->state == ST_RUNNING) {
		say(r, ERR_BUSY, "domain %s must be paused to check its memory", d->name);
		return;
	}
	gm_verify(d->mem, d->nr_pages, &c);
	say(r, (c.xor_ok && !c.bad_pages) ? 0 : ERR_CHECKSUM,
	    "{\"counter\":%llu,\"pages_written\":%llu,\"pages_zero\":%llu,\"bad_pages\":%llu,"
	    "\"first_bad_pfn\":%lld,\"max_gen\":%llu,\"superblock_ok\":%s,\"xor_ok\":%s}",
	    (unsigned long long)c.counter, (unsigned long long)c.pages_written,
	    (unsigned long long)c.pages_zero, (unsigned long long)c.bad_pages,
	    c.bad_pages ? (long long)c.first_bad_pfn : -1LL, (unsigned long long)c.max_gen,
	    c.sb_ok ? "true" : "false", c.xor_ok ? "true" : "false");
}

static void dispatch(struct simdom *d, const char *cmd, const uint8_t *data, size_t len,
                     struct reply *r)
{
	char arg[HV_NAME_MAX + 8];

	pthread_mutex_lock(&d->lock);
	if (!strcmp(cmd, "info")) {
		cmd_info(d, r);
	} else if (!strcmp(cmd, "pause")) {
		if (d->state == ST_INCOMING) {
			say(r, ERR_BUSY, "domain %s is still receiving its migration stream",
			    d->name);
		} else {
			pause_locked(d);
			d->state = ST_PAUSED;
			write_info(d);
			say(r, 0, "paused");
		}
	} else if (!strcmp(cmd, "unpause")) {
		cmd_unpause(d, r);
	} else if (sscanf(cmd, "rename %70s", arg) == 1) {
		str_copy(d->name, sizeof(d->name), arg);
		write_info(d);
		say(r, 0, "%s", d->name);
	} else if (!strcmp(cmd, "memfd")) {
		say(r, 0, "%llu", (unsigned long long)d->nr_pages);
		r->fd = d->memfd;
	} else if (!strcmp(cmd, "logdirty-enable")) {
		cmd_logdirty_enable(d, r);
	} else if (!strcmp(cmd, "logdirty-fetch")) {
		cmd_logdirty_fetch(d, r);
	} else if (!strcmp(cmd, "logdirty-disable")) {
		say(r, d->dl ? dirtylog_disable(d->dl) : 0, "off");
	} else if (sscanf(cmd, "throttle %8s", arg) == 1) {
		unsigned pct = (unsigned)atoi(arg);

		if (pct > 99) {
			say(r, ERR_INVAL, "throttle %u%% out of range (0-99)", pct);
		} else {
			atomic_store(&d->throttle, pct);
			say(r, 0, "%u", pct);
		}
	} else if (!strcmp(cmd, "suspend")) {
		cmd_suspend(d, r);
	} else if (!strcmp(cmd, "resume")) {
		if (d->dl)
			dirtylog_disable(d->dl);
		atomic_store(&d->throttle, 0);
		cmd_unpause(d, r);
	} else if (!strcmp(cmd, "restore-state")) {
		cmd_restore_state(d, data, len, r);
	} else if (!strcmp(cmd, "check")) {
		cmd_check(d, r);
	} else if (!strcmp(cmd, "destroy")) {
		d->quit = true;
		pthread_cond_broadcast(&d->cond);
		say(r, 0, "destroyed");
	} else {
		say(r, ERR_INVAL, "unknown control command '%.40s'", cmd);
	}
	pthread_mutex_unlock(&d->lock);
}

static void on_client(struct loop *loop, struct loop_fd *w, int fd, short revents, void *arg)
{
	struct simdom *d = arg;
	static uint8_t buf[SIMCTL_MAX_MSG];
	struct reply r = {.fd = -1};
	size_t len, cmdlen;
	int rc;

	rc = simctl_recv(fd, buf, sizeof(buf) - 1, &len);
	if (rc || len == 0) {
		loop_fd_remove(w);
		close(fd);
		return;
	}
	buf[len] = '\0';
	cmdlen = strnlen((char *)buf, len);
	dispatch(d, (char *)buf, buf + cmdlen + 1, cmdlen < len ? len - cmdlen - 1 : 0, &r);
	if (r.bin)
		simctl_reply(fd, r.rc, r.bin, r.bin_len, r.fd);
	else
		simctl_reply(fd, r.rc, r.text, strlen(r.text), r.fd);
	if (d->quit)
		loop_quit(loop, 0);
}

static void on_accept(struct loop *loop, struct loop_fd *w, int fd, short revents, void *arg)
{
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

	(void)w;
	if (c >= 0 && !loop_fd_add(loop, c, POLLIN, on_client, arg))
		close(c);
}

static void on_signal(struct loop *loop, int signo, void *arg)
{
	struct simdom *d = arg;

	log_info("domain %s: signal %d, shutting down", d->name, signo);
	pthread_mutex_lock(&d->lock);
	d->quit = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	loop_quit(loop, 0);
}

/* --- life cycle ------------------------------------------------------------------------- */

static int setup_memory(struct simdom *d)
{
	size_t bytes = d->cfg.memory_mib << 20;

	d->nr_pages = bytes / GM_PAGE_SIZE;
	d->memfd = memfd_create("xl-ext-sim-ram", MFD_CLOEXEC);
	if (d->memfd < 0 || ftruncate(d->memfd, (off_t)bytes) < 0)
		return err_from_errno(errno);
	d->mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
	if (d->mem == MAP_FAILED) {
		d->mem = NULL;
		return err_from_errno(errno);
	}
	return 0;
}

/*
 * An incoming domain's memory is allocated (and zeroed by the kernel) in the background while
 * the stream arrives, as Xen populates a restoring domain's physmap: the receiver then writes
 * into pages that exist instead of faulting each one in on its critical path.
 */
static void *populate_main(void *arg)
{
	struct simdom *d = arg;
	size_t bytes = d->nr_pages * GM_PAGE_SIZE, chunk = 16u << 20;

	for (size_t off = 0; off < bytes && !__atomic_load_n(&d->quit, __ATOMIC_RELAXED);
	     off += chunk) {
		if (madvise(d->mem + off, off + chunk > bytes ? bytes - off : chunk,
		            MADV_POPULATE_WRITE) < 0)
			break; /* older kernel: pages are faulted in as they arrive */
	}
	return NULL;
}

static int setup_socket(struct simdom *d)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/ctl", d->dir);

	if (n < 0 || (size_t)n >= sizeof(sun.sun_path))
		return ERR_INVAL;
	unlink(sun.sun_path);
	d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0)
		return err_from_errno(errno);
	umask(077); /* the control socket is root-only */
	if (bind(d->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(d->listen_fd, 8) < 0)
		return err_from_errno(errno);
	return 0;
}

static int load_config(struct simdom *d)
{
	char path[300], *json = NULL, *end;
	const char *slash;
	int rc;

	snprintf(path, sizeof(path), "%s/config.json", d->dir);
	rc = file_read_all(path, 1 << 20, &json, NULL);
	if (rc) {
		log_error("cannot read %s: %s", path, err_str(rc));
		return rc;
	}
	rc = simcfg_from_json(json, &d->cfg);
	free(json);
	if (rc)
		return rc;
	slash = strrchr(d->dir, '/');
	d->domid = (uint32_t)strtoul(slash ? slash + 1 : d->dir, &end, 10);
	snprintf(d->name, sizeof(d->name), "%s", d->cfg.name);
	d->nvcpus = d->cfg.vcpus;
	return 0;
}

static void teardown(struct simdom *d)
{
	char path[300];

	pthread_mutex_lock(&d->lock);
	d->quit = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (d->vcpus_started)
		for (unsigned v = 0; v < d->nvcpus; v++)
			pthread_join(d->vcpu_threads[v], NULL);
	if (d->announcing)
		pthread_join(d->announce_thread, NULL);
	if (d->populating)
		pthread_join(d->populate_thread, NULL);
	if (d->disk_started)
		pthread_join(d->disk_thread, NULL);
	simdisk_release(d->disk, d->name);
	simdisk_close(d->disk);
	if (d->udp_started)
		pthread_join(d->udp_thread, NULL);
	if (d->udp_fd >= 0)
		close(d->udp_fd);
	if (d->net_open)
		simnet_close(&d->net);
	dirtylog_close(d->dl);
	snprintf(path, sizeof(path), "%s/ctl", d->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/info.json", d->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/config.json", d->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/log", d->dir);
	unlink(path);
	rmdir(d->dir);
}

int simdom_main(const char *dir, int incoming, int notify_fd)
{
	static struct simdom dom;
	struct simdom *d = &dom;
	const char *host = getenv("XLEXT_SIM_HOST");
	char status = 1;
	int rc;

	memset(d, 0, sizeof(*d));
	d->memfd = d->bmfd = d->udp_fd = d->listen_fd = -1;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	snprintf(d->dir, sizeof(d->dir), "%s", dir);
	if (!host || !host[0]) {
		static char hn[64];

		gethostname(hn, sizeof(hn));
		host = hn;
	}
	str_copy(d->host, sizeof(d->host), host);
	rc = load_config(d);
	if (rc)
		goto out;
	rc = setup_memory(d);
	if (rc) {
		log_error("domain %s: cannot allocate %llu MiB of guest memory: %s", d->name,
		          (unsigned long long)d->cfg.memory_mib, err_str(rc));
		goto out;
	}
	d->regs = calloc(d->nvcpus, sizeof(*d->regs));
	if (!d->regs) {
		rc = ERR_NOMEM;
		goto out;
	}
	if (incoming) {
		d->state = ST_INCOMING;
		if (pthread_create(&d->populate_thread, NULL, populate_main, d) == 0)
			d->populating = true;
	} else {
		uint64_t boot_id;

		if (getrandom(&boot_id, sizeof(boot_id), 0) != sizeof(boot_id))
			boot_id = (uint64_t)now_ns();
		gm_format(d->mem, d->nr_pages, d->nvcpus, boot_id);
		gm_sb(d->mem)->boot_time_ns = (uint64_t)now_ns();
		for (unsigned v = 0; v < d->nvcpus; v++) {
			d->regs[v].magic = VCPU_REGS_MAGIC;
			d->regs[v].rng = d->cfg.seed * 0x9e3779b97f4a7c15ull + v + 1;
		}
		if (d->cfg.type == HV_TYPE_HVM)
			dm_init(d);
		/* memory in use from the start, as a guest that has been up for a while */
		for (uint64_t pfn = 1; pfn < d->nr_pages && pfn <= d->cfg.fill_mib * 256; pfn++)
			gm_write_page(d->mem, pfn);
		d->pause_req = true;
		rc = start_vcpus(d);
		if (rc)
			goto out;
		d->state = ST_PAUSED;
	}
	rc = disk_start(d, incoming);
	if (rc)
		goto out;
	if (net_prepare(d))
		log_warn("domain %s: the network of vif ip %s could not be prepared; the guest "
		         "will run without it",
		         d->name, d->cfg.ip);
	rc = setup_socket(d);
	if (rc) {
		log_error("domain %s: cannot create the control socket in %s: %s", d->name, d->dir,
		          err_str(rc));
		goto out;
	}
	rc = loop_new(&d->loop);
	if (rc)
		goto out;
	if (!loop_fd_add(d->loop, d->listen_fd, POLLIN, on_accept, d)) {
		rc = ERR_NOMEM;
		goto out;
	}
	loop_signal_add(d->loop, SIGTERM, on_signal, d);
	loop_signal_add(d->loop, SIGINT, on_signal, d);
	pthread_mutex_lock(&d->lock);
	write_info(d);
	pthread_mutex_unlock(&d->lock);
	status = 0;
	if (notify_fd >= 0) {
		if (write(notify_fd, &status, 1) != 1)
			log_warn("domain %s: creator went away", d->name);
		close(notify_fd);
		notify_fd = -1;
	}
	log_info("domain %s (%u): %s, %llu MiB, %u vCPUs", d->name, d->domid,
	         incoming ? "incoming" : "booted", (unsigned long long)d->cfg.memory_mib,
	         d->nvcpus);
	rc = loop_run(d->loop);
out:
	if (notify_fd >= 0) {
		if (write(notify_fd, &status, 1) < 0)
			log_warn("domain: creator went away");
		close(notify_fd);
	}
	teardown(d);
	loop_free(d->loop);
	return rc ? 1 : 0;
}
