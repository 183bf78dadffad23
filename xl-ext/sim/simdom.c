/*
 * simdom.c - the simulated domU process's life cycle: configuration, boot or incoming
 * start, the main loop, teardown. Its parts: simdom_mem.c, simdom_vcpu.c, simdom_net.c,
 * simdom_ctl.c.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/sim/dirtylog.h"
#include "xl-ext/sim/guestmem.h"
#include "xl-ext/sim/simdisk.h"
#include "xl-ext/sim/simdom_int.h"

int64_t simdom_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t simdom_xorshift(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x2545f4914f6cdd1dull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* --- state file ------------------------------------------------------------------------- */

const char *simdom_state_name(enum dom_state s)
{
	return s == ST_RUNNING ? "running" : s == ST_PAUSED ? "paused" : "incoming";
}

/* info.json: what "list" shows without talking to the process. Called with lock held. */
void simdom_write_info(struct simdom *d)
{
	json_object *o = json_object_new_object();
	char path[300];
	const char *s;

	json_object_object_add(o, "domid", json_object_new_int64(d->domid));
	json_object_object_add(o, "name", json_object_new_string(d->name));
	json_object_object_add(o, "state", json_object_new_string(simdom_state_name(d->state)));
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
	simdom_postcopy_disarm(d); /* a vCPU waiting for a page that will not come goes on */
	if (d->vcpus_started)
		for (unsigned v = 0; v < d->nvcpus; v++)
			pthread_join(d->vcpu_threads[v], NULL);
	if (d->announcing)
		pthread_join(d->announce_thread, NULL);
	if (d->disk_started)
		pthread_join(d->disk_thread, NULL);
	simdisk_release(d->disk, d->name);
	simdisk_close(d->disk);
	simdom_net_stop(d);
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

/*
 * The domain's lock inherits priority: the guest threads that take it run ahead of dom0
 * (simdom_guest_thread), the control thread that also takes it does not, and on a busy host a
 * control thread preempted while holding it (writing the state file) kept the vCPUs waiting
 * for scheduler slices.
 */
static void init_lock(struct simdom *d)
{
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	if (pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT) != 0 ||
	    pthread_mutex_init(&d->lock, &attr) != 0)
		pthread_mutex_init(&d->lock, NULL);
	pthread_mutexattr_destroy(&attr);
}

/* A freshly booted guest: formatted memory, part of it in use, vCPUs parked until unpause. */
static int boot(struct simdom *d)
{
	uint64_t boot_id;
	int rc;

	if (getrandom(&boot_id, sizeof(boot_id), 0) != sizeof(boot_id))
		boot_id = (uint64_t)simdom_now_ns();
	gm_format(d->mem, d->nr_pages, d->nvcpus, boot_id);
	gm_sb(d->mem)->boot_time_ns = (uint64_t)simdom_now_ns();
	for (unsigned v = 0; v < d->nvcpus; v++) {
		d->regs[v].magic = VCPU_REGS_MAGIC;
		d->regs[v].rng = d->cfg.seed * 0x9e3779b97f4a7c15ull + v + 1;
	}
	if (d->cfg.type == HV_TYPE_HVM)
		simdom_dm_init(d);
	/* memory in use from the start, as a guest that has been up for a while */
	for (uint64_t pfn = 1; pfn < d->nr_pages && pfn <= d->cfg.fill_mib * 256; pfn++)
		gm_write_page(d->mem, pfn);
	d->pause_req = true;
	rc = simdom_start_vcpus(d);
	if (rc)
		return rc;
	d->state = ST_PAUSED;
	return 0;
}

int simdom_run(const char *dir, int incoming, int notify_fd)
{
	static struct simdom dom;
	struct simdom *d = &dom;
	const char *host = getenv("XLEXT_SIM_HOST");
	char status = 1;
	int rc;

	memset(d, 0, sizeof(*d));
	d->memfd = d->bmfd = d->pc_uffd = d->pc_arm_fd = d->ctl_client = d->udp_fd = d->http_fd =
	    d->listen_fd = -1;
	init_lock(d);
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
	rc = simdom_mem_setup(d);
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
	} else {
		rc = boot(d);
		if (rc)
			goto out;
	}
	rc = simdom_disk_start(d, incoming);
	if (rc)
		goto out;
	if (simdom_net_prepare(d))
		log_warn("domain %s: the network of vif ip %s could not be prepared; the guest "
		         "will run without it",
		         d->name, d->cfg.ip);
	rc = simdom_ctl_start(d);
	if (rc)
		goto out;
	pthread_mutex_lock(&d->lock);
	simdom_write_info(d);
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
