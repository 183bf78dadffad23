/*
 * dirtylog_uffd.c - the userfaultfd method of the dirty log (see dirtylog.h): asynchronous
 * write-protection read back and re-armed with PAGEMAP_SCAN; the kernel does all the work,
 * atomically per page.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/sim/dirtylog_int.h"

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

/*
 * Write-protect (wp = true) or unprotect the range; markers cover unpopulated pages. In
 * chunks of DIRTYLOG_CHUNK_PAGES: each call walks its page tables under the address space's
 * lock and ends in a TLB flush, so the writers' faults wait at most one chunk.
 */
static int uffd_writeprotect(int uffd, uintptr_t base, size_t len, bool wp)
{
	const size_t chunk = (size_t)DIRTYLOG_CHUNK_PAGES * PAGE_SIZE_BYTES;

	for (size_t off = 0; off < len; off += chunk) {
		struct uffdio_writeprotect arg = {
		    .range = {.start = base + off, .len = len - off < chunk ? len - off : chunk},
		    .mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
		};
		int tries = 0;

		/* EAGAIN: the address space is changing under us (fork, mremap); try again. */
		while (ioctl(uffd, UFFDIO_WRITEPROTECT, &arg) < 0) {
			if (errno != EAGAIN || ++tries > 100)
				return err_from_errno(errno);
			sched_yield();
		}
	}
	return 0;
}

/*
 * One fetch-and-clear pass over [base, base + npages pages): every page written since it was
 * last write-protected is reported in bitmap and write-protected again, atomically per page
 * under the page-table lock, so a concurrent write lands either before (reported now) or after
 * (faults, reported next time). Each call walks at most DIRTYLOG_CHUNK_PAGES (bounding how long
 * the writers' faults wait), and may stop earlier when regions fills up: walk_end tells where,
 * and the next call resumes there.
 */
static int uffd_scan(int pagemap_fd, struct page_region *regions, uintptr_t base, size_t npages,
                     bool clear, uint64_t *bitmap, size_t *ndirty_r)
{
	uintptr_t end = base + npages * PAGE_SIZE_BYTES;
	uintptr_t start = base;
	size_t ndirty = 0;

	while (start < end) {
		uintptr_t stop = end - start > (uintptr_t)DIRTYLOG_CHUNK_PAGES * PAGE_SIZE_BYTES
		                     ? start + (uintptr_t)DIRTYLOG_CHUNK_PAGES * PAGE_SIZE_BYTES
		                     : end;
		struct pm_scan_arg arg = {
		    .size = sizeof(arg),
		    .flags = (clear ? PM_SCAN_WP_MATCHING : 0) | PM_SCAN_CHECK_WPASYNC,
		    .start = start,
		    .end = stop,
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
			if (re > stop)
				re = stop;
			if (re <= rs)
				continue; /* empty region: nothing to report */
			dirtylog_set_bits(bitmap, (rs - base) / PAGE_SIZE_BYTES,
			                  (re - rs) / PAGE_SIZE_BYTES);
			if (re > next)
				next = re;
		}
		/* Everything before walk_end, and before any region reported, was scanned. */
		if (arg.walk_end > next)
			next = arg.walk_end;
		if (next <= start || next > stop)
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
	int rc =
	    uffd_scan(dl->pagemap_fd, dl->regions, dl->base, dl->npages, true, bitmap, ndirty_r);

	if (rc < 0)
		log_error("dirty log at %p (%zu pages): PAGEMAP_SCAN failed: %s", (void *)dl->base,
		          dl->npages, err_str(rc));
	return rc;
}

/* The same walk without write-protecting: written pages stay written for the next fetch. */
static int uffd_peek(struct dirtylog *dl, uint64_t *bitmap, size_t *ndirty_r)
{
	int rc =
	    uffd_scan(dl->pagemap_fd, dl->regions, dl->base, dl->npages, false, bitmap, ndirty_r);

	if (rc < 0)
		log_error("dirty log at %p (%zu pages): PAGEMAP_SCAN (peek) failed: %s",
		          (void *)dl->base, dl->npages, err_str(rc));
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

const struct dirtylog_ops dirtylog_uffd_ops = {
    .init = uffd_init,
    .enable = uffd_enable,
    .fetch = uffd_fetch,
    .peek = uffd_peek,
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
	rc = uffd_scan(pagemap_fd, regions, (uintptr_t)mem, npages, true, bitmap, &ndirty);
	if (rc < 0)
		goto out;
	if (bitmap[0] != 2 || ndirty != 1) {
		log_debug("uffd probe: expected page 1 dirty, got bitmap 0x%llx",
		          (unsigned long long)bitmap[0]);
		rc = ERR_NOTSUP;
		goto out;
	}
	bitmap[0] = 0;
	rc = uffd_scan(pagemap_fd, regions, (uintptr_t)mem, npages, true, bitmap, &ndirty);
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

int dirtylog_uffd_probe(void)
{
	pthread_once(&uffd_probe_once_ctl, uffd_probe_run);
	return uffd_probe_result;
}
