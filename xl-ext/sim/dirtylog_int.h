/*
 * dirtylog_int.h - what the dirty log's chooser (dirtylog.c) and its two methods
 * (dirtylog_uffd.c, dirtylog_mprotect.c) share; nothing outside xl-ext/sim/dirtylog*.c
 * includes it.
 */
#ifndef XLEXT_SIM_DIRTYLOG_INT_H
#define XLEXT_SIM_DIRTYLOG_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xl-ext/sim/dirtylog.h"

#define PAGE_SIZE_BYTES ((uintptr_t)DIRTYLOG_PAGE_SIZE)
#define WORD_BITS       64u

/*
 * Enabling, harvesting and disabling walk the range in chunks of this many pages (64 MiB):
 * each chunk holds the address space's locks only briefly, so the guest's own faults (a
 * vCPU's first write to a page, the probe service's) never wait for the whole of a large
 * guest's memory, as they do not on Xen (whose log-dirty peek-and-clean is preemptible).
 */
#define DIRTYLOG_CHUNK_PAGES 16384u

struct mp_slot;
struct page_region;

struct dirtylog_ops {
	int (*init)(struct dirtylog *dl);
	int (*enable)(struct dirtylog *dl);
	/* Set the dirty pages' bits in bitmap (already zeroed) and count them; on failure the
	 * caller marks every page dirty. */
	int (*fetch)(struct dirtylog *dl, uint64_t *bitmap, size_t *ndirty_r);
	/* Set the bits of the pages written since the last fetch (bitmap already zeroed),
	 * clearing nothing: every one is in the next fetch. */
	int (*peek)(struct dirtylog *dl, uint64_t *bitmap, size_t *ndirty_r);
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

static inline size_t words_for(size_t nbits)
{
	return (nbits + WORD_BITS - 1) / WORD_BITS;
}

static inline size_t range_bytes(const struct dirtylog *dl)
{
	return dl->npages * PAGE_SIZE_BYTES;
}

/* Set bits [first, first + count) of a plain bitmap. */
void dirtylog_set_bits(uint64_t *bitmap, size_t first, size_t count);

/* The methods (dirtylog_uffd.c, dirtylog_mprotect.c). */
extern const struct dirtylog_ops dirtylog_uffd_ops;
extern const struct dirtylog_ops dirtylog_mprotect_ops;

/* Whether the uffd method works here: tried end to end once, the answer cached. */
int dirtylog_uffd_probe(void);

#endif
