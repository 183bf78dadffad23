/*
 * simdom_ctl.c - a simulated domU's control socket: the commands the sim backend sends it
 * (simctl.h), run one at a time on the domain's main thread.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/sim/dirtylog.h"
#include "xl-ext/sim/guestmem.h"
#include "xl-ext/sim/simctl.h"
#include "xl-ext/sim/simdisk.h"
#include "xl-ext/sim/simdom_int.h"

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
	    "\"dirtylog\":\"%s\",\"postcopy\":\"%s\"%s}",
	    d->domid, d->name, simdom_state_name(d->state), getpid(),
	    (unsigned long long)d->cfg.memory_mib, d->cfg.vcpus, hv_type_name(d->cfg.type),
	    (unsigned long long)__atomic_load_n(&sb->counter, __ATOMIC_RELAXED),
	    (unsigned long long)sb->boot_id, atomic_load(&d->throttle),
	    atomic_load(&d->logging) ? dirtylog_method_name(dirtylog_get_method(d->dl)) : "off",
	    d->pc_lost        ? "failed"
	    : d->pc_uffd >= 0 ? "active"
	                      : "off",
	    disk);
}

static void cmd_unpause(struct simdom *d, struct reply *r)
{
	int rc;

	if (d->pc_lost) {
		say(r, ERR_BUSY,
		    "domain %s lost the pages its post-copy source still held; it must not run "
		    "again: destroy it",
		    d->name);
		return;
	}
	if (d->state == ST_INCOMING) {
		say(r, ERR_BUSY, "domain %s is still receiving its migration stream", d->name);
		return;
	}
	d->pause_req = false;
	d->state = ST_RUNNING;
	atomic_store(&d->running, true);
	simdom_net_gate(d, true);
	pthread_cond_broadcast(&d->cond);
	/* the guest runs from here: its network comes up before the state file is written */
	pthread_mutex_unlock(&d->lock);
	rc = simdom_net_attach(d);
	pthread_mutex_lock(&d->lock);
	simdom_write_info(d);
	if (rc)
		log_warn("domain %s: running without network: %s", d->name, err_str(rc));
	say(r, 0, "running");
}

/*
 * Post-copy (incoming domain): the guest's missing pages fault into a userfaultfd that the
 * receiver serves (postcopy.h). The reply gives it the descriptor and where guest memory is
 * mapped here. This process keeps a copy: if the receiver dies, a vCPU on a missing page stays
 * blocked rather than read zeros.
 */
static void cmd_postcopy_arm(struct simdom *d, struct reply *r)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM};
	struct uffdio_register reg = {
	    .range = {.start = (uint64_t)(uintptr_t)d->mem, .len = d->nr_pages * GM_PAGE_SIZE},
	    .mode = UFFDIO_REGISTER_MODE_MISSING};
	int fd;

	if (d->state != ST_INCOMING || d->pc_uffd >= 0 || atomic_load(&d->logging)) {
		say(r, ERR_BUSY, "domain %s is not an incoming domain waiting for post-copy",
		    d->name);
		return;
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		say(r, err_from_errno(errno),
		    "domain %s: cannot catch missing pages of its memory (userfaultfd): %s",
		    d->name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	d->pc_uffd = fd;
	d->pc_arm_fd = d->ctl_client;
	say(r, 0, "%llx", (unsigned long long)(uintptr_t)d->mem);
	r->fd = fd;
}

void simdom_postcopy_disarm(struct simdom *d)
{
	struct uffdio_range range = {.start = (uint64_t)(uintptr_t)d->mem,
	                             .len = d->nr_pages * GM_PAGE_SIZE};

	if (d->pc_uffd < 0)
		return;
	/* wakes a thread waiting for a page: it faults again, without userfaultfd */
	if (ioctl(d->pc_uffd, UFFDIO_UNREGISTER, &range) < 0)
		log_warn("domain %s: cannot disarm post-copy's userfaultfd: %s", d->name,
		         strerror(errno));
	close(d->pc_uffd);
	d->pc_uffd = -1;
}

/* Post-copy ended: every page is here (done), or some never will be (failed). */
static void cmd_postcopy_end(struct simdom *d, bool failed, struct reply *r)
{
	if (d->pc_uffd < 0) {
		say(r, ERR_BUSY, "domain %s has no post-copy phase", d->name);
		return;
	}
	d->pc_arm_fd = -1;
	if (failed) {
		/* a vCPU blocked on a missing page never parks: stop the others, keep the fault
		 * handler's descriptor so that it stays blocked, and never run again */
		d->pc_lost = true;
		atomic_store(&d->running, false);
		simdom_net_gate(d, false);
		d->pause_req = true;
		pthread_cond_broadcast(&d->cond);
		d->state = ST_PAUSED;
		simdom_write_info(d);
		log_error("domain %s: post-copy failed; paused for good (pages stayed with the "
		          "source)",
		          d->name);
		say(r, 0, "paused");
		return;
	}
	simdom_postcopy_disarm(d); /* every page is here: a hole is a zero page again */
	say(r, 0, "done");
}

static void cmd_logdirty_enable(struct simdom *d, struct reply *r)
{
	int rc;

	if (d->pc_uffd >= 0) {
		say(r, ERR_BUSY,
		    "domain %s still receives its memory by post-copy; migrate it once that ended",
		    d->name);
		return;
	}
	if (!d->dl) {
		rc = dirtylog_open(&d->dl, d->mem, d->nr_pages, DIRTYLOG_AUTO);
		if (rc) {
			say(r, rc, "domain %s: cannot set up dirty logging: %s", d->name,
			    err_str(rc));
			return;
		}
	}
	if (d->bmfd < 0) {
		/* Two bitmaps: what the last fetch took, then what the last peek saw. */
		d->bm_bytes = ((d->nr_pages + 63) / 64) * 8;
		d->bmfd = memfd_create("xl-ext-sim-dirty-bitmap", MFD_CLOEXEC);
		if (d->bmfd < 0 || ftruncate(d->bmfd, (off_t)(2 * d->bm_bytes)) < 0) {
			say(r, err_from_errno(errno), "domain %s: cannot allocate the dirty bitmap",
			    d->name);
			return;
		}
		d->bitmap =
		    mmap(NULL, 2 * d->bm_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, d->bmfd, 0);
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
	atomic_store(&d->logging, true);
	say(r, 0, "%s", dirtylog_method_name(dirtylog_get_method(d->dl)));
	r->fd = d->bmfd;
}

/*
 * logdirty-fetch (clean): the pages written since the last fetch into the first bitmap, and a
 * new round. logdirty-peek: the same into the second bitmap, cleaning nothing; the migration
 * leaves those pages to the next round (each is in the next fetch), and a failed peek leaves
 * that bitmap clear. A fetch forgets the last peek first: it named pages the fetch cleans.
 */
static void cmd_logdirty_harvest(struct simdom *d, struct reply *r, bool clean)
{
	uint64_t *peek_bm = d->bitmap ? d->bitmap + d->bm_bytes / 8 : NULL;
	size_t ndirty = 0;
	int rc;

	if (!d->dl || !d->bitmap) {
		say(r, ERR_BUSY, "domain %s: dirty logging is not enabled", d->name);
		return;
	}
	if (clean)
		memset(peek_bm, 0, d->bm_bytes);
	rc = clean ? dirtylog_fetch_and_clear(d->dl, d->bitmap, d->nr_pages, &ndirty)
	           : dirtylog_peek(d->dl, peek_bm, d->nr_pages, &ndirty);
	if (rc) {
		say(r, rc, "domain %s: %s the dirty bitmap failed: %s", d->name,
		    clean ? "fetching" : "peeking at", err_str(rc));
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

	simdom_pause_locked(d);
	if (d->state == ST_RUNNING)
		d->state = ST_PAUSED;
	simdom_write_info(d);
	memcpy(buf, hdr, sizeof(hdr));
	memcpy(buf + off, d->regs, d->nvcpus * sizeof(*d->regs));
	off += d->nvcpus * sizeof(*d->regs);
	if (hdr[2]) {
		struct dm_header *h = (struct dm_header *)d->dm;

		h->counter = gm_sb(d->mem)->counter;
		h->checksum = simdom_dm_checksum(d->dm);
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
		if (h.magic != DM_MAGIC || h.checksum != simdom_dm_checksum(dm)) {
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
	rc = simdom_start_vcpus(d);
	if (rc) {
		say(r, rc, "domain %s: cannot start vCPUs", d->name);
		return;
	}
	d->state = ST_PAUSED;
	simdom_write_info(d);
	say(r, 0, "paused");
}

static void cmd_check(struct simdom *d, struct reply *r)
{
	uint64_t *present = NULL;
	struct gm_check c;
	int rc;

	if (d->state == ST_RUNNING) {
		say(r, ERR_BUSY, "domain %s must be paused to check its memory", d->name);
		return;
	}
	rc = simdom_mem_data_pages(d, &present);
	if (rc) {
		say(r, rc, "domain %s: cannot tell which pages hold data: %s", d->name,
		    err_str(rc));
		return;
	}
	gm_verify(d->mem, d->nr_pages, present, &c);
	free(present);
	say(r, (c.xor_ok && !c.bad_pages) ? 0 : ERR_CHECKSUM,
	    "{\"counter\":%llu,\"pages_written\":%llu,\"pages_zero\":%llu,\"bad_pages\":%llu,"
	    "\"first_bad_pfn\":%lld,\"max_gen\":%llu,\"superblock_ok\":%s,\"xor_ok\":%s}",
	    (unsigned long long)c.counter, (unsigned long long)c.pages_written,
	    (unsigned long long)c.pages_zero, (unsigned long long)c.bad_pages,
	    c.bad_pages ? (long long)c.first_bad_pfn : -1LL, (unsigned long long)c.max_gen,
	    c.sb_ok ? "true" : "false", c.xor_ok ? "true" : "false");
}

/* Stop dirty logging (info says "off" again); reply to r when given. */
static void logdirty_off(struct simdom *d, struct reply *r)
{
	int rc = d->dl ? dirtylog_disable(d->dl) : 0;

	if (!rc)
		atomic_store(&d->logging, false);
	if (r)
		say(r, rc, "off");
}

/*
 * The dirty-log commands, run without the domain's lock: the dirty log has its own, and d->dl
 * and the bitmap are this thread's alone. Enabling or harvesting the log of a large guest
 * takes milliseconds, during which the vCPUs and the probe service, which take the domain's
 * lock, must keep running as they do on Xen. Returns false for any other command.
 */
static bool dispatch_logdirty(struct simdom *d, const char *cmd, struct reply *r)
{
	if (!strcmp(cmd, "logdirty-enable"))
		cmd_logdirty_enable(d, r);
	else if (!strcmp(cmd, "logdirty-fetch") || !strcmp(cmd, "logdirty-peek"))
		cmd_logdirty_harvest(d, r, !strcmp(cmd, "logdirty-fetch"));
	else if (!strcmp(cmd, "logdirty-disable"))
		logdirty_off(d, r);
	else
		return false;
	return true;
}

static void dispatch(struct simdom *d, const char *cmd, const uint8_t *data, size_t len,
                     struct reply *r)
{
	char arg[HV_NAME_MAX + 8];

	if (dispatch_logdirty(d, cmd, r))
		return;
	if (!strcmp(cmd, "resume") && d->dl)
		logdirty_off(d, NULL); /* outside the lock, as above */
	pthread_mutex_lock(&d->lock);
	if (!strcmp(cmd, "info")) {
		cmd_info(d, r);
	} else if (d->pc_lost &&
	           (!strcmp(cmd, "pause") || !strcmp(cmd, "suspend") || !strcmp(cmd, "check"))) {
		/* a vCPU waits for a page that will never come: nothing may wait for them */
		if (!strcmp(cmd, "pause"))
			say(r, 0, "paused");
		else
			say(r, ERR_BUSY,
			    "domain %s lost the pages its post-copy source held: its memory is "
			    "incomplete; destroy it",
			    d->name);
	} else if (!strcmp(cmd, "pause")) {
		if (d->state == ST_INCOMING) {
			say(r, ERR_BUSY, "domain %s is still receiving its migration stream",
			    d->name);
		} else {
			simdom_pause_locked(d);
			d->state = ST_PAUSED;
			simdom_write_info(d);
			say(r, 0, "paused");
		}
	} else if (!strcmp(cmd, "unpause")) {
		cmd_unpause(d, r);
	} else if (sscanf(cmd, "rename %70s", arg) == 1) {
		str_copy(d->name, sizeof(d->name), arg);
		simdom_write_info(d);
		say(r, 0, "%s", d->name);
	} else if (!strcmp(cmd, "memfd")) {
		say(r, 0, "%llu", (unsigned long long)d->nr_pages);
		r->fd = d->memfd;
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
		atomic_store(&d->throttle, 0);
		cmd_unpause(d, r);
	} else if (!strcmp(cmd, "restore-state")) {
		cmd_restore_state(d, data, len, r);
	} else if (!strcmp(cmd, "postcopy-arm")) {
		cmd_postcopy_arm(d, r);
	} else if (!strcmp(cmd, "postcopy-done") || !strcmp(cmd, "postcopy-failed")) {
		cmd_postcopy_end(d, !strcmp(cmd, "postcopy-failed"), r);
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
		if (fd == d->pc_arm_fd) { /* the receiver serving post-copy is gone */
			struct reply lost = {.fd = -1};

			log_error("domain %s: the receiver serving its post-copy went away",
			          d->name);
			pthread_mutex_lock(&d->lock);
			cmd_postcopy_end(d, true, &lost);
			pthread_mutex_unlock(&d->lock);
		}
		loop_fd_remove(w);
		close(fd);
		return;
	}
	d->ctl_client = fd;
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

int simdom_ctl_start(struct simdom *d)
{
	int rc = setup_socket(d);

	if (rc) {
		log_error("domain %s: cannot create the control socket in %s: %s", d->name, d->dir,
		          err_str(rc));
		return rc;
	}
	rc = loop_new(&d->loop);
	if (rc)
		return rc;
	if (!loop_fd_add(d->loop, d->listen_fd, POLLIN, on_accept, d))
		return ERR_NOMEM;
	loop_signal_add(d->loop, SIGTERM, on_signal, d);
	loop_signal_add(d->loop, SIGINT, on_signal, d);
	return 0;
}
