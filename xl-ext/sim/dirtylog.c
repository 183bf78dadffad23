/*
 * dirtylog.c - fetch-and-clear dirty-page logging over a memfd mapping (see dirtylog.h).
 *
 * Two implementations behind a small vtable: userfaultfd asynchronous write-protection read
 * back with PAGEMAP_SCAN (the kernel does all the work, atomically), and a portable fallback
 * that write-protects the range with mprotect and logs write faults in a SIGSEGV handler.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/sim/dirtylog.h"

/*
 * Kernel interfaces newer than Debian 12's headers (userfaultfd WP_ASYNC and PAGEMAP_SCAN are
 * Linux 6.7). The values are uapi, so they are stable; the kernel says at run time whether it
 * has them.
 */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
struct page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

struct pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif
#ifndef PAGE_IS_WRITTEN
#define PAGE_IS_WRITTEN (1 << 1)
#endif
#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING (1 << 0)
#endif
#ifndef PM_SCAN_CHECK_WPASYNC
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif

#define PAGE_SIZE_BYTES ((uintptr_t)DIRTYLOG_PAGE_SIZE)
#define WORD_BITS       64u

/* Features the uffd method needs: async WP, on shmem, including never-touched pages. */
#define UFFD_WANTED_FEATURES                                                  \
	((uint64_t)(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | \
	            UFFD_FEATURE_WP_UNPOPULATED))

/*
 * page_region entries per PAGEMAP_SCAN call; a fetch loops until the range is covered. At most
 * 512: the kernel fills its own buffer of 512 regions (PAGEMAP_WALK_SIZE / PAGE_SIZE), and when
 * one call needs several of those and then finishes the walk, it returns the walk_end of the
 * first early stop instead of end (seen on 6.18; walk_end is only defaulted to end when no
 * stop happened). Restarting there is safe but scans part of the range twice.
 */
#define UFFD_SCAN_REGIONS 512

/* On a VMA-count failure the mprotect fault handler unprotects this many pages at once. */
#define MP_WIDE_PAGES 512

struct mp_slot;

struct dirtylog_ops {
	int (*init)(struct dirtylog *dl);
	int (*enable)(struct dirtylog *dl);
	/* Set the dirty pages' bits in bitmap (already zeroed) and count them; on failure the
	 * caller marks every page dirty. */
	int (*fetch)(struct dirtylog *dl, uint64_t *bitmap, size_t *ndirty_r);
	int (*disable)(struct dirtylog *dl);
	void (*fini)(struct dirtylog *dl);
};

struct dirtylog {
	const struct dirtylog_ops *ops;
	enum dirtylog_method method;
	uintptr_t base;
	size_t npages;
	bool enabled;
	pthread_mutex_t lock; /* serialises the control calls */

	/* uffd method */
	int uffd;
	int pagemap_fd;
	struct page_region *regions;

	/* mprotect method */
	struct mp_slot *slot;
};

static size_t words_for(size_t nbits)
{
	return (nbits + WORD_BITS - 1) / WORD_BITS;
}

/* Set bits [first, first + count) of a plain bitmap. */
static void bitmap_set_range(uint64_t *bitmap, size_t first, size_t count)
{
	size_t end = first + count;

	while (first < end && first % WORD_BITS != 0) {
		bitmap[first / WORD_BITS] |= UINT64_C(1) << (first % WORD_BITS);
		first++;
	}
	while (first + WORD_BITS <= end) {
		bitmap[first / WORD_BITS] = ~UINT64_C(0);
		first += WORD_BITS;
	}
	while (first < end) {
		bitmap[first / WORD_BITS] |= UINT64_C(1) << (first % WORD_BITS);
		first++;
	}
}

static size_t range_bytes(const struct dirtylog *dl)
{
	return dl->npages * PAGE_SIZE_BYTES;
}

/* ---------------------------------------------------------------------------------------- */
/* userfaultfd + PAGEMAP_SCAN                                                               */
/* ---------------------------------------------------------------------------------------- */

/* A userfaultfd with the async write-protect features negotiated, or a negative error. */
static int uffd_create(int *fd_r)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_WANTED_FEATURES};
	int fd;
	int rc;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM)
		/* vm.unprivileged_userfaultfd=0: user-mode faults are all we need (async WP
		 * resolves kernel-mode writes before the user-mode-only check anyway). */
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		rc = errno == ENOSYS ? ERR_NOTSUP : err_from_errno(errno);
		log_debug("userfaultfd: %s", strerror(errno));
		return rc;
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		/* EINVAL: a requested feature is unknown to this kernel. */
		rc = errno == EINVAL ? ERR_NOTSUP : err_from_errno(errno);
		log_debug("UFFDIO_API(WP_ASYNC|WP_HUGETLBFS_SHMEM|WP_UNPOPULATED): %s",
		          strerror(errno));
		close(fd);
		return rc;
	}
	if ((api.features & UFFD_WANTED_FEATURES) != UFFD_WANTED_FEATURES) {
		log_debug("userfaultfd lacks features 0x%llx",
		          (unsigned long long)(UFFD_WANTED_FEATURES & ~api.features));
		close(fd);
		return ERR_NOTSUP;
	}
	*fd_r = fd;
	return 0;
}

static int uffd_register(int uffd, uintptr_t base, size_t len)
{
	struct uffdio_register reg = {
	    .range = {.start = base, .len = len},
	    .mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		return errno == EINVAL ? ERR_NOTSUP : err_from_errno(errno);
	return 0;
}

/* Write-protect (wp = true) or unprotect the whole range; markers cover unpopulated pages. */
static int uffd_writeprotect(int uffd, uintptr_t base, size_t len, bool wp)
{
	struct uffdio_writeprotect arg = {
	    .range = {.start = base, .len = len},
	    .mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	int tries = 0;

	/* EAGAIN: the address space is changing under us (fork, mremap); try again. */
	while (ioctl(uffd, UFFDIO_WRITEPROTECT, &arg) < 0) {
		if (errno != EAGAIN || ++tries > 100)
			return err_from_errno(errno);
		sched_yield();
	}
	return 0;
}

/*
 * One fetch-and-clear pass over [base, base + npages pages): every page written since it was
 * last write-protected is reported in bitmap and write-protected again, atomically per page
 * under the page-table lock, so a concurrent write lands either before (reported now) or after
 * (faults, reported next time). The walk may stop early when regions fills up: walk_end tells
 * where, and the next call resumes there.
 */
static int uffd_scan(int pagemap_fd, struct page_region *regions, uintptr_t base, size_t npages,
                     uint64_t *bitmap, size_t *ndirty_r)
{
	uintptr_t end = base + npages * PAGE_SIZE_BYTES;
	uintptr_t start = base;
	size_t ndirty = 0;

	while (start < end) {
		struct pm_scan_arg arg = {
		    .size = sizeof(arg),
		    .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		    .start = start,
		    .end = end,
		    .vec = (uintptr_t)regions,
		    .vec_len = UFFD_SCAN_REGIONS,
		    .category_mask = PAGE_IS_WRITTEN,
		    .return_mask = PAGE_IS_WRITTEN,
		};
		uintptr_t next = 0;
		long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);

		if (n < 0)
			return errno == ENOTTY || errno == EINVAL ? ERR_NOTSUP
			                                          : err_from_errno(errno);
		for (long i = 0; i < n; i++) {
			uintptr_t rs = regions[i].start, re = regions[i].end;

			if (rs < start)
				rs = start;
			if (re > end)
				re = end;
			if (re <= rs)
				continue; /* empty region: nothing to report */
			bitmap_set_range(bitmap, (rs - base) / PAGE_SIZE_BYTES,
			                 (re - rs) / PAGE_SIZE_BYTES);
			if (re > next)
				next = re;
		}
		/* Everything before walk_end, and before any region reported, was scanned. */
		if (arg.walk_end > next)
			next = arg.walk_end;
		if (next <= start || next > end)
			return ERR_INTERNAL; /* no progress: never loop forever */
		start = next;
	}
	/* Counted at the end: a page written again during the scan may be reported twice. */
	for (size_t w = 0; w < words_for(npages); w++)
		ndirty += (size_t)__builtin_popcountll(bitmap[w]);
	*ndirty_r = ndirty;
	return 0;
}

static int uffd_init(struct dirtylog *dl)
{
	int rc;

	dl->regions = calloc(UFFD_SCAN_REGIONS, sizeof(*dl->regions));
	if (!dl->regions)
		return ERR_NOMEM;
	rc = uffd_create(&dl->uffd);
	if (rc < 0) {
		log_error("dirty log at %p (%zu pages): userfaultfd with async write-protect is "
		          "not available (needs Linux >= 6.7): %s",
		          (void *)dl->base, dl->npages, err_str(rc));
		return rc;
	}
	dl->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (dl->pagemap_fd < 0) {
		rc = err_from_errno(errno);
		log_error_errno(errno, "dirty log at %p: cannot open /proc/self/pagemap",
		                (void *)dl->base);
		return rc;
	}
	/* Registration stays until close; it alone changes nothing until enable protects. */
	rc = uffd_register(dl->uffd, dl->base, range_bytes(dl));
	if (rc < 0) {
		log_error("dirty log at %p (%zu pages): cannot register the range for "
		          "write-protect tracking (%s); is it a MAP_SHARED memfd or anonymous "
		          "mapping not already tracked by another dirty log?",
		          (void *)dl->base, dl->npages, err_str(rc));
		return rc;
	}
	return 0;
}

static int uffd_enable(struct dirtylog *dl)
{
	int rc = uffd_writeprotect(dl->uffd, dl->base, range_bytes(dl), true);

	if (rc < 0)
		log_error("dirty log at %p (%zu pages): UFFDIO_WRITEPROTECT failed: %s",
		          (void *)dl->base, dl->npages, err_str(rc));
	return rc;
}

static int uffd_fetch(struct dirtylog *dl, uint64_t *bitmap, size_t *ndirty_r)
{
	int rc = uffd_scan(dl->pagemap_fd, dl->regions, dl->base, dl->npages, bitmap, ndirty_r);

	if (rc < 0)
		log_error("dirty log at %p (%zu pages): PAGEMAP_SCAN failed: %s", (void *)dl->base,
		          dl->npages, err_str(rc));
	return rc;
}

static int uffd_disable(struct dirtylog *dl)
{
	/* Unprotecting also drops the markers on unpopulated pages: no fault happens after. */
	int rc = uffd_writeprotect(dl->uffd, dl->base, range_bytes(dl), false);

	if (rc < 0)
		log_error("dirty log at %p (%zu pages): cannot unprotect the range: %s",
		          (void *)dl->base, dl->npages, err_str(rc));
	return rc;
}

static void uffd_fini(struct dirtylog *dl)
{
	if (dl->uffd >= 0) {
		/* Unregistering (or closing) drops any write protection left in the range. */
		struct uffdio_range range = {.start = dl->base, .len = range_bytes(dl)};

		(void)ioctl(dl->uffd, UFFDIO_UNREGISTER, &range);
		close(dl->uffd);
	}
	if (dl->pagemap_fd >= 0)
		close(dl->pagemap_fd);
	free(dl->regions);
}

static const struct dirtylog_ops uffd_ops = {
    .init = uffd_init,
    .enable = uffd_enable,
    .fetch = uffd_fetch,
    .disable = uffd_disable,
    .fini = uffd_fini,
};

/*
 * Track a two-page memfd end to end: page 0 populated before enable, page 1 never touched.
 * Writing page 1 must be reported exactly, then nothing on the next scan.
 */
static int uffd_probe_once(void)
{
	const size_t npages = 2;
	struct page_region regions[4];
	uint64_t bitmap[1];
	size_t ndirty = 0;
	char *mem = MAP_FAILED;
	int memfd = -1, uffd = -1, pagemap_fd = -1;
	int rc;

	rc = uffd_create(&uffd);
	if (rc < 0)
		goto out;
	memfd = memfd_create("xlext-dirtylog-probe", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, (off_t)(npages * PAGE_SIZE_BYTES)) < 0) {
		rc = err_from_errno(errno);
		goto out;
	}
	mem = mmap(NULL, npages * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED) {
		rc = err_from_errno(errno);
		goto out;
	}
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pagemap_fd < 0) {
		rc = err_from_errno(errno);
		goto out;
	}
	mem[0] = 1;
	rc = uffd_register(uffd, (uintptr_t)mem, npages * PAGE_SIZE_BYTES);
	if (rc < 0)
		goto out;
	rc = uffd_writeprotect(uffd, (uintptr_t)mem, npages * PAGE_SIZE_BYTES, true);
	if (rc < 0)
		goto out;
	*(volatile char *)&mem[PAGE_SIZE_BYTES] = 2;
	bitmap[0] = 0;
	rc = uffd_scan(pagemap_fd, regions, (uintptr_t)mem, npages, bitmap, &ndirty);
	if (rc < 0)
		goto out;
	if (bitmap[0] != 2 || ndirty != 1) {
		log_debug("uffd probe: expected page 1 dirty, got bitmap 0x%llx",
		          (unsigned long long)bitmap[0]);
		rc = ERR_NOTSUP;
		goto out;
	}
	bitmap[0] = 0;
	rc = uffd_scan(pagemap_fd, regions, (uintptr_t)mem, npages, bitmap, &ndirty);
	if (rc == 0 && (bitmap[0] != 0 || ndirty != 0)) {
		log_debug("uffd probe: scan did not clear, got bitmap 0x%llx",
		          (unsigned long long)bitmap[0]);
		rc = ERR_NOTSUP;
	}
out:
	if (pagemap_fd >= 0)
		close(pagemap_fd);
	if (uffd >= 0)
		close(uffd);
	if (mem != MAP_FAILED)
		munmap(mem, npages * PAGE_SIZE_BYTES);
	if (memfd >= 0)
		close(memfd);
	return rc;
}

static pthread_once_t uffd_probe_once_ctl = PTHREAD_ONCE_INIT;
static int uffd_probe_result;

static void uffd_probe_run(void)
{
	uffd_probe_result = uffd_probe_once();
	log_debug("userfaultfd async write-protect with PAGEMAP_SCAN: %s",
	          uffd_probe_result == 0 ? "usable" : err_str(uffd_probe_result));
}

/* ---------------------------------------------------------------------------------------- */
/* mprotect + SIGSEGV                                                                       */
/* ---------------------------------------------------------------------------------------- */

/*
 * The SIGSEGV handler finds the dirtylog of a faulting address in this fixed registry: it can
 * neither take locks nor allocate. A slot's fields are written while it is SLOT_FREE and
 * published by the store of its state; `users` counts handlers looking at the slot, so that
 * close can wait for them before the bitmap is freed.
 *
 * Why a fetch loses no write. A fetch (and enable) does:
 *     seq++ (odd); swap every bitmap word with 0, giving the fetched set S; mprotect the whole
 *     range read-only; seq++ (even)
 * and the handler, for a write fault on page P:
 *     s1 = seq; set bit P; mprotect P writable; s2 = seq; if (s1 != s2 || s1 odd) set bit P again
 * Invariant: whenever P is writable, either bit P is set, or P is in the set S of a fetch that has
 * not yet made P read-only. Enable establishes it (all read-only). The handler keeps it: P
 * becomes writable only after bit P was set; if a fetch swapped that bit out before the handler's
 * mprotect, either that fetch's mprotect comes later (P is read-only again, the write faults
 * anew) or it came earlier, and then the fetch's first seq++ preceded the handler's second read
 * of seq, so the handler sets bit P again, now for the next round. A fetch keeps it: between its
 * swap and its mprotect, the pages it cleared are in its S.
 * Now take a write W to page P. If W lands after the fetch's mprotect reached P, P was
 * read-only then, so P became writable again through the handler: bit P was set after the swap,
 * and a later fetch reports P. If W lands before, P was writable: bit P was set (swapped into S,
 * or set after the swap and so left for the next fetch), or P was already in S. When P is in S
 * the caller reads P after the fetch returned, hence after W. Either way W is not lost.
 */
enum mp_slot_state {
	SLOT_FREE = 0,
	SLOT_OPEN = 1,    /* registered, logging disabled, range writable */
	SLOT_ENABLED = 2, /* logging */
};

struct mp_slot {
	atomic_int state;
	atomic_uint users;
	atomic_ulong seq;
	uintptr_t base;
	uintptr_t end;
	size_t npages;
	_Atomic uint64_t *bits;
};

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2 &&
                   ATOMIC_LONG_LOCK_FREE == 2,
               "the SIGSEGV handler needs lock-free atomics");

static struct mp_slot mp_slots[DIRTYLOG_MPROTECT_MAX];
static pthread_mutex_t mp_registry_lock = PTHREAD_MUTEX_INITIALIZER;
/* The SIGSEGV disposition our handler last replaced: faults that are not ours go there. */
static struct sigaction mp_previous_action;

static void mp_set_bits(struct mp_slot *slot, size_t first, size_t count)
{
	for (size_t i = first; i < first + count; i++)
		atomic_fetch_or(&slot->bits[i / WORD_BITS], UINT64_C(1) << (i % WORD_BITS));
}

/*
 * Make pages [*first_r, *first_r + *count_r) writable, starting with the one faulting page. If
 * the kernel refuses (each writable island costs a VMA and vm.max_map_count is finite), widen to
 * an aligned block, then to the whole range; the extra pages are logged dirty first, which is
 * safe (they are merely sent again). Returns false when nothing could be unprotected.
 */
static bool mp_unprotect(struct mp_slot *slot, size_t *first_r, size_t *count_r)
{
	size_t page = *first_r;
	size_t first = page - page % MP_WIDE_PAGES;
	size_t count = MP_WIDE_PAGES;

	if (mprotect((void *)(slot->base + page * PAGE_SIZE_BYTES), PAGE_SIZE_BYTES,
	             PROT_READ | PROT_WRITE) == 0)
		return true;
	if (first + count > slot->npages)
		count = slot->npages - first;
	mp_set_bits(slot, first, count);
	if (mprotect((void *)(slot->base + first * PAGE_SIZE_BYTES), count * PAGE_SIZE_BYTES,
	             PROT_READ | PROT_WRITE) == 0) {
		*first_r = first;
		*count_r = count;
		return true;
	}
	mp_set_bits(slot, 0, slot->npages);
	if (mprotect((void *)slot->base, slot->npages * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE) ==
	    0) {
		*first_r = 0;
		*count_r = slot->npages;
		return true;
	}
	return false;
}

/* Handle a write fault inside a registered range; false if it cannot be resolved. */
static bool mp_handle_fault(struct mp_slot *slot, int state, uintptr_t addr)
{
	uintptr_t page_start = addr & ~(PAGE_SIZE_BYTES - 1);
	size_t first = (page_start - slot->base) / PAGE_SIZE_BYTES;
	size_t count = 1;
	unsigned long s1, s2;

	if (state != SLOT_ENABLED)
		/* A write that faulted just before disable made the range writable: let it
		 * retry. The range's protection is ours while the dirtylog is open. */
		return mprotect((void *)page_start, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE) == 0;

	s1 = atomic_load(&slot->seq);
	mp_set_bits(slot, first, 1);
	if (!mp_unprotect(slot, &first, &count))
		return false;
	s2 = atomic_load(&slot->seq);
	if (s1 != s2 || (s1 & 1))
		mp_set_bits(slot, first, count); /* a fetch may have taken the bit: see above */
	return true;
}

/* Pass a fault that is not ours to whoever handled SIGSEGV before us, or to the default. */
static void mp_chain(int sig, siginfo_t *info, void *ucontext)
{
	const struct sigaction *prev = &mp_previous_action;
	struct sigaction dfl;

	if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
		prev->sa_sigaction(sig, info, ucontext);
		return;
	}
	if (!(prev->sa_flags & SA_SIGINFO) && prev->sa_handler != SIG_DFL &&
	    prev->sa_handler != SIG_IGN) {
		prev->sa_handler(sig);
		return;
	}
	/* Default action (an ignored SIGSEGV from a fault kills too). A real fault recurs when
	 * the instruction restarts and then kills the process with the genuine siginfo; a
	 * SIGSEGV sent with kill() does not recur, so send it again. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGSEGV, &dfl, NULL);
	if (info->si_code <= 0)
		raise(sig);
}

static void mp_sigsegv_handler(int sig, siginfo_t *info, void *ucontext)
{
	int saved_errno = errno;
	uintptr_t addr = (uintptr_t)info->si_addr;

	/* Only a write to a present, read-only page can be ours; SEGV_MAPERR never is. */
	if (info->si_code == SEGV_ACCERR) {
		for (size_t i = 0; i < DIRTYLOG_MPROTECT_MAX; i++) {
			struct mp_slot *slot = &mp_slots[i];
			int state;
			bool handled = false, mine = false;

			atomic_fetch_add(&slot->users, 1);
			state = atomic_load(&slot->state);
			if (state != SLOT_FREE && addr >= slot->base && addr < slot->end) {
				mine = true;
				handled = mp_handle_fault(slot, state, addr);
			}
			atomic_fetch_sub(&slot->users, 1);
			if (handled) {
				errno = saved_errno;
				return;
			}
			if (mine)
				break;
		}
	}
	errno = saved_errno;
	mp_chain(sig, info, ucontext);
}

/*
 * Make sure our handler is the installed one, keeping whatever was there to pass other faults
 * on to. Checked at open and at every enable: something else (a test harness, a runtime) may
 * have replaced it meanwhile, and a handler that is not ours would take tracked write faults
 * for crashes. Never uninstalled: it passes on every fault that is not ours.
 */
static int mp_ensure_handler_locked(void)
{
	struct sigaction current, ours;

	if (sigaction(SIGSEGV, NULL, &current) < 0)
		return err_from_errno(errno);
	if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == mp_sigsegv_handler)
		return 0;
	mp_previous_action = current;
	memset(&ours, 0, sizeof(ours));
	ours.sa_sigaction = mp_sigsegv_handler;
	ours.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&ours.sa_mask);
	if (sigaction(SIGSEGV, &ours, NULL) < 0)
		return err_from_errno(errno);
	return 0;
}

static int mp_init(struct dirtylog *dl)
{
	uintptr_t end = dl->base + range_bytes(dl);
	struct mp_slot *slot = NULL;
	_Atomic uint64_t *bits;
	int rc;

	bits = calloc(words_for(dl->npages), sizeof(*bits));
	if (!bits)
		return ERR_NOMEM;

	pthread_mutex_lock(&mp_registry_lock);
	for (size_t i = 0; i < DIRTYLOG_MPROTECT_MAX; i++) {
		struct mp_slot *s = &mp_slots[i];

		if (atomic_load(&s->state) == SLOT_FREE) {
			if (!slot)
				slot = s;
			continue;
		}
		if (dl->base < s->end && s->base < end) {
			log_error("dirty log at %p (%zu pages) overlaps the one at %p (%zu pages)",
			          (void *)dl->base, dl->npages, (void *)s->base, s->npages);
			rc = ERR_EXISTS;
			goto out_unlock;
		}
	}
	if (!slot) {
		log_error("dirty log at %p: all %d mprotect dirty-log slots are in use; close one "
		          "or use the uffd method",
		          (void *)dl->base, DIRTYLOG_MPROTECT_MAX);
		rc = ERR_NOSPACE;
		goto out_unlock;
	}
	rc = mp_ensure_handler_locked();
	if (rc < 0) {
		log_error("dirty log at %p: cannot install the SIGSEGV handler: %s",
		          (void *)dl->base, err_str(rc));
		goto out_unlock;
	}
	/* Handlers may still be reading the slot's old fields: wait until none is. */
	while (atomic_load(&slot->users) != 0)
		sched_yield();
	slot->base = dl->base;
	slot->end = end;
	slot->npages = dl->npages;
	slot->bits = bits;
	atomic_store(&slot->seq, 0);
	atomic_store(&slot->state, SLOT_OPEN);
	dl->slot = slot;
	bits = NULL;
	rc = 0;
out_unlock:
	pthread_mutex_unlock(&mp_registry_lock);
	free(bits);
	return rc;
}

/* Swap the bitmap out (into out, when given) and write-protect the range: see the argument. */
static int mp_swap_and_protect(struct dirtylog *dl, uint64_t *out, size_t *ndirty_r)
{
	struct mp_slot *slot = dl->slot;
	size_t nwords = words_for(dl->npages);
	size_t ndirty = 0;

	atomic_fetch_add(&slot->seq, 1);
	for (size_t w = 0; w < nwords; w++) {
		uint64_t word = atomic_exchange(&slot->bits[w], 0);

		if (out)
			out[w] = word;
		ndirty += (size_t)__builtin_popcountll(word);
	}
	if (mprotect((void *)dl->base, range_bytes(dl), PROT_READ) < 0) {
		int err = errno;

		/* Some pages may still be writable with their bits gone: log them all. */
		mp_set_bits(slot, 0, dl->npages);
		atomic_fetch_add(&slot->seq, 1);
		log_error_errno(err, "dirty log at %p (%zu pages): cannot write-protect the range",
		                (void *)dl->base, dl->npages);
		return err_from_errno(err);
	}
	atomic_fetch_add(&slot->seq, 1);
	if (ndirty_r)
		*ndirty_r = ndirty;
	return 0;
}

static int mp_enable(struct dirtylog *dl)
{
	int rc;

	pthread_mutex_lock(&mp_registry_lock);
	rc = mp_ensure_handler_locked();
	pthread_mutex_unlock(&mp_registry_lock);
	if (rc < 0) {
		log_error("dirty log at %p: cannot install the SIGSEGV handler: %s",
		          (void *)dl->base, err_str(rc));
		return rc;
	}
	/* Enabled before protecting: a write faulting in between must be logged, not waved
	 * through (that would leave its page writable and untracked). */
	atomic_store(&dl->slot->state, SLOT_ENABLED);
	return mp_swap_and_protect(dl, NULL, NULL);
}

static int mp_fetch(struct dirtylog *dl, uint64_t *bitmap, size_t *ndirty_r)
{
	return mp_swap_and_protect(dl, bitmap, ndirty_r);
}

static int mp_disable(struct dirtylog *dl)
{
	if (mprotect((void *)dl->base, range_bytes(dl), PROT_READ | PROT_WRITE) < 0) {
		int err = errno;

		log_error_errno(err, "dirty log at %p (%zu pages): cannot unprotect the range",
		                (void *)dl->base, dl->npages);
		return err_from_errno(err);
	}
	atomic_store(&dl->slot->state, SLOT_OPEN);
	return 0;
}

static void mp_fini(struct dirtylog *dl)
{
	struct mp_slot *slot = dl->slot;
	_Atomic uint64_t *bits;

	if (!slot)
		return;
	pthread_mutex_lock(&mp_registry_lock);
	atomic_store(&slot->state, SLOT_FREE);
	while (atomic_load(&slot->users) != 0)
		sched_yield();
	bits = slot->bits;
	slot->bits = NULL;
	slot->base = slot->end = 0;
	slot->npages = 0;
	pthread_mutex_unlock(&mp_registry_lock);
	free(bits);
	dl->slot = NULL;
}

static const struct dirtylog_ops mp_ops = {
    .init = mp_init,
    .enable = mp_enable,
    .fetch = mp_fetch,
    .disable = mp_disable,
    .fini = mp_fini,
};

/* ---------------------------------------------------------------------------------------- */
/* Public API                                                                               */
/* ---------------------------------------------------------------------------------------- */

const char *dirtylog_method_name(enum dirtylog_method m)
{
	switch (m) {
	case DIRTYLOG_AUTO:
		return "auto";
	case DIRTYLOG_UFFD:
		return "uffd";
	case DIRTYLOG_MPROTECT:
		return "mprotect";
	}
	return "unknown";
}

int dirtylog_probe(enum dirtylog_method m)
{
	if (sysconf(_SC_PAGESIZE) != (long)DIRTYLOG_PAGE_SIZE && m != DIRTYLOG_AUTO)
		return ERR_NOTSUP;
	switch (m) {
	case DIRTYLOG_AUTO:
	case DIRTYLOG_MPROTECT:
		return 0;
	case DIRTYLOG_UFFD:
		pthread_once(&uffd_probe_once_ctl, uffd_probe_run);
		return uffd_probe_result;
	}
	return ERR_INVAL;
}

/* Resolve DIRTYLOG_AUTO: the environment first, then what the kernel supports. */
static int dirtylog_choose(enum dirtylog_method *method_r)
{
	const char *env = getenv("XLEXT_DIRTYLOG");

	if (*method_r != DIRTYLOG_AUTO)
		return 0;
	if (env && strcmp(env, "uffd") == 0) {
		*method_r = DIRTYLOG_UFFD;
		return 0;
	}
	if (env && strcmp(env, "mprotect") == 0) {
		*method_r = DIRTYLOG_MPROTECT;
		return 0;
	}
	if (env && *env && strcmp(env, "auto") != 0) {
		log_error("XLEXT_DIRTYLOG=%s: unknown dirty-log method (use uffd, mprotect or "
		          "auto)",
		          env);
		return ERR_INVAL;
	}
	*method_r = dirtylog_probe(DIRTYLOG_UFFD) == 0 ? DIRTYLOG_UFFD : DIRTYLOG_MPROTECT;
	return 0;
}

int dirtylog_open(struct dirtylog **dl_r, void *base, size_t npages, enum dirtylog_method method)
{
	struct dirtylog *dl = NULL;
	int rc;

	if (!dl_r || !base || npages == 0 || (uintptr_t)base % PAGE_SIZE_BYTES != 0 ||
	    npages > (UINTPTR_MAX - (uintptr_t)base) / PAGE_SIZE_BYTES ||
	    (method != DIRTYLOG_AUTO && method != DIRTYLOG_UFFD && method != DIRTYLOG_MPROTECT)) {
		log_error("dirty log at %p (%zu pages): need a page-aligned, non-empty range and a "
		          "known method",
		          base, npages);
		return ERR_INVAL;
	}
	if (sysconf(_SC_PAGESIZE) != (long)DIRTYLOG_PAGE_SIZE) {
		log_error("dirty log at %p: only %u-byte pages are supported", base,
		          DIRTYLOG_PAGE_SIZE);
		return ERR_NOTSUP;
	}
	rc = dirtylog_choose(&method);
	if (rc < 0)
		return rc;
	/* The range must be mapped throughout and writable (the kernel would accept holes for
	 * uffd and silently track nothing there). Its protection is ours from now on. */
	if (mprotect(base, npages * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE) < 0) {
		log_error_errno(errno, "dirty log at %p (%zu pages): the range is not %s", base,
		                npages, errno == ENOMEM ? "entirely mapped" : "a writable mapping");
		return errno == ENOMEM ? ERR_INVAL : err_from_errno(errno);
	}

	dl = calloc(1, sizeof(*dl));
	if (!dl)
		return ERR_NOMEM;
	dl->method = method;
	dl->ops = method == DIRTYLOG_UFFD ? &uffd_ops : &mp_ops;
	dl->base = (uintptr_t)base;
	dl->npages = npages;
	dl->uffd = -1;
	dl->pagemap_fd = -1;
	pthread_mutex_init(&dl->lock, NULL);

	rc = dl->ops->init(dl);
	if (rc < 0)
		goto out;
	log_debug("dirty log at %p (%zu pages) uses %s", base, npages,
	          dirtylog_method_name(method));
	*dl_r = dl;
	dl = NULL;
out:
	if (dl) {
		dl->ops->fini(dl);
		pthread_mutex_destroy(&dl->lock);
		free(dl);
	}
	return rc;
}

int dirtylog_enable(struct dirtylog *dl)
{
	int rc;

	if (!dl)
		return ERR_INVAL;
	pthread_mutex_lock(&dl->lock);
	rc = dl->ops->enable(dl);
	if (rc == 0)
		dl->enabled = true;
	else
		(void)dl->ops->disable(dl); /* back to a writable, untracked range */
	pthread_mutex_unlock(&dl->lock);
	return rc;
}

int dirtylog_fetch_and_clear(struct dirtylog *dl, uint64_t *bitmap, size_t nbits, size_t *ndirty_r)
{
	size_t ndirty = 0;
	int rc;

	if (!dl || !bitmap || nbits < dl->npages)
		return ERR_INVAL;
	memset(bitmap, 0, words_for(nbits) * sizeof(*bitmap));
	pthread_mutex_lock(&dl->lock);
	if (!dl->enabled) {
		rc = ERR_BUSY;
	} else {
		rc = dl->ops->fetch(dl, bitmap, &ndirty);
		if (rc < 0) {
			/* What was cleared cannot be told apart: call everything dirty. */
			memset(bitmap, 0, words_for(nbits) * sizeof(*bitmap));
			bitmap_set_range(bitmap, 0, dl->npages);
			ndirty = dl->npages;
		}
	}
	pthread_mutex_unlock(&dl->lock);
	if (rc == ERR_BUSY)
		log_error("dirty log at %p: fetch while logging is disabled", (void *)dl->base);
	if (ndirty_r)
		*ndirty_r = ndirty;
	return rc;
}

int dirtylog_disable(struct dirtylog *dl)
{
	int rc = 0;

	if (!dl)
		return ERR_INVAL;
	pthread_mutex_lock(&dl->lock);
	if (dl->enabled) {
		rc = dl->ops->disable(dl);
		if (rc == 0)
			dl->enabled = false;
	}
	pthread_mutex_unlock(&dl->lock);
	return rc;
}

void dirtylog_close(struct dirtylog *dl)
{
	if (!dl)
		return;
	(void)dirtylog_disable(dl);
	dl->ops->fini(dl);
	pthread_mutex_destroy(&dl->lock);
	free(dl);
}

enum dirtylog_method dirtylog_get_method(const struct dirtylog *dl)
{
	return dl->method;
}
