/*
 * dirtylog.h - kernel-backed dirty-page logging for a simulated guest's RAM.
 *
 * The sim backend keeps a domU's RAM in a memfd mapped MAP_SHARED into the guest process, whose
 * vCPU threads write it. A dirtylog gives that process Xen's log-dirty semantics over the mapping:
 * enable, then repeatedly fetch-and-clear a bitmap of the pages written since the previous fetch.
 * The pre-copy engine relies on one guarantee: a page written at any time after enable is in the
 * bitmap of the first fetch that returns after the write, or of a later one, and the caller reads
 * the page contents only after that fetch returned. So reading the pages of each bitmap after it
 * is fetched never loses a write.
 *
 * Two methods:
 * - DIRTYLOG_UFFD: a userfaultfd registered in asynchronous write-protect mode
 *   (UFFD_FEATURE_WP_ASYNC, kernel >= 6.7) plus the PAGEMAP_SCAN ioctl on /proc/self/pagemap,
 *   which reports written pages and write-protects them again in one atomic walk. Writers never
 *   see a signal; writes made by the kernel (read(2) into guest RAM) are tracked too.
 * - DIRTYLOG_MPROTECT: the range is made read-only and a SIGSEGV handler logs the first write to
 *   each page and makes it writable. Works on any kernel; costs a signal per dirtied page per
 *   round. The kernel cannot write into the range while it is read-only (read(2) into it fails
 *   with EFAULT), so use it only for memory written by user-space instructions. The handler is
 *   process-wide, installed (again, if something replaced it) by dirtylog_open and
 *   dirtylog_enable, and passes every fault that is not a tracked write to the handler it
 *   replaced, or to the default action, so real crashes still crash. Writer threads must not
 *   block SIGSEGV. Under valgrind, run with --vex-iropt-register-updates=allregs-at-mem-access
 *   (the faulting instruction is restarted after the handler).
 *
 * Only writes through this mapping, in this process, are seen: a write through another mapping of
 * the memfd (or write(2) on the memfd) is not.
 *
 * Threads: any number of threads may write the range at any time. The control calls (enable,
 * fetch_and_clear, disable, close) are serialised internally but are meant to be made by one
 * controlling thread. While a dirtylog is open it owns the protection of its range: do not
 * mprotect or munmap the range until dirtylog_close returned. For the mprotect method, no thread
 * may be writing the range while dirtylog_close runs (stop or pause the writers first).
 */
#ifndef XLEXT_SIM_DIRTYLOG_H
#define XLEXT_SIM_DIRTYLOG_H

#include <stddef.h>
#include <stdint.h>

/* Tracking granularity: the dirtylog always works in 4 KiB pages. */
#define DIRTYLOG_PAGE_SIZE 4096u

/* How many mprotect dirtylogs may be open at once in one process (uffd ones are unlimited). */
#define DIRTYLOG_MPROTECT_MAX 8

enum dirtylog_method {
	DIRTYLOG_AUTO = 0,     /* uffd if the kernel supports it, else mprotect */
	DIRTYLOG_UFFD = 1,     /* userfaultfd async write-protect + PAGEMAP_SCAN */
	DIRTYLOG_MPROTECT = 2, /* write-fault logging with a SIGSEGV handler */
};

struct dirtylog;

/*
 * Create a dirtylog over npages pages at base (page aligned, npages > 0), a MAP_SHARED
 * PROT_READ|PROT_WRITE mapping of a memfd. Logging is not started: call dirtylog_enable.
 * DIRTYLOG_AUTO picks uffd when dirtylog_probe(DIRTYLOG_UFFD) succeeds, else mprotect; the
 * environment variable XLEXT_DIRTYLOG=uffd|mprotect overrides AUTO (and an explicit method is
 * never overridden). Returns 0 and stores the new dirtylog in *dl_r, which the caller frees with
 * dirtylog_close; ERR_INVAL for bad arguments, ERR_NOTSUP if the method cannot work on this
 * kernel, ERR_NOSPACE when DIRTYLOG_MPROTECT_MAX mprotect dirtylogs are open, ERR_EXISTS if the
 * range overlaps another open mprotect dirtylog, ERR_BUSY if another userfaultfd already tracks
 * it, or another error code.
 */
int dirtylog_open(struct dirtylog **dl_r, void *base, size_t npages, enum dirtylog_method method);

/*
 * Start logging: from now on every page counts as clean until written. Enabling a dirtylog that
 * is already enabled cleans it again (the pages written meanwhile are forgotten).
 * Returns 0 or a negative error code.
 */
int dirtylog_enable(struct dirtylog *dl);

/*
 * Fetch the pages written since dirtylog_enable or the previous fetch, and start a new round in
 * which they count as clean again. The first (nbits + 63) / 64 words of bitmap are overwritten
 * (not OR-ed): bit i (word i / 64, bit i % 64) is set when page i was written; bits at and beyond
 * npages are zero. nbits must be at least the dirtylog's npages. If ndirty_r is not NULL the
 * number of set bits is stored there. Read the dirty pages only after this returns.
 * Returns 0, ERR_INVAL for a bad argument, ERR_BUSY when logging is not enabled, or another
 * error code (the bitmap is then unspecified and the caller should treat every page as dirty).
 */
int dirtylog_fetch_and_clear(struct dirtylog *dl, uint64_t *bitmap, size_t nbits, size_t *ndirty_r);

/*
 * Peek: the pages written since dirtylog_enable or the previous fetch, as fetch would report
 * them, without starting a new round (Xen's XEN_DOMCTL_SHADOW_OP_PEEK). Every page peek reports
 * is in the next fetch's bitmap, so a reader may leave a page peek reported for that fetch. A
 * page written while the peek runs may or may not be in it. bitmap, nbits and ndirty_r as for
 * fetch; the result is overwritten, not OR-ed. Returns 0, ERR_INVAL, ERR_BUSY when logging is
 * not enabled, or another error code (the bitmap is then all clear: nothing to leave).
 */
int dirtylog_peek(struct dirtylog *dl, uint64_t *bitmap, size_t nbits, size_t *ndirty_r);

/*
 * Stop logging: the range is left writable and writes no longer fault or cost anything.
 * Disabling a dirtylog that is not enabled does nothing. Returns 0 or a negative error code.
 */
int dirtylog_disable(struct dirtylog *dl);

/* Disable (if needed) and free a dirtylog. NULL is allowed. The mapping stays the caller's. */
void dirtylog_close(struct dirtylog *dl);

/* The method a dirtylog actually uses (never DIRTYLOG_AUTO). */
enum dirtylog_method dirtylog_get_method(const struct dirtylog *dl);

/* "auto", "uffd", "mprotect" or "unknown"; never NULL. */
const char *dirtylog_method_name(enum dirtylog_method m);

/*
 * Check that a method works on this kernel and in this process: 0 if usable, ERR_NOTSUP (or
 * ERR_PERM) otherwise. DIRTYLOG_UFFD is checked by tracking a one-page memfd end to end, once;
 * the answer is cached. DIRTYLOG_AUTO is always usable.
 */
int dirtylog_probe(enum dirtylog_method m);

#endif
