/*
 * pagecache.h - the sender's copies of pages it sent, for the delta of a page sent again
 * (codec.h): what the destination holds of those pages, as long as every page sent goes
 * through it (put after sending it whole or as a delta, drop after sending it as zeros).
 *
 * Direct-mapped by pfn with a bounded size, as QEMU's XBZRLE cache: a page evicts the page of
 * its slot. The slots are an anonymous mapping, so memory is taken only by slots in use.
 */
#ifndef XLEXT_PAGECACHE_H
#define XLEXT_PAGECACHE_H

#include <stddef.h>
#include <stdint.h>

struct pagecache {
	uint64_t nslots;
	uint64_t *tag;  /* pfn + 1 of the page in each slot, 0: empty */
	uint8_t *pages; /* nslots pages */
	size_t map_len;
	uint64_t hits, misses;
};

/* A cache of about bytes (at least one page, at most one slot per page of nr_pages). */
int pagecache_init(struct pagecache *c, uint64_t bytes, uint64_t nr_pages);
void pagecache_free(struct pagecache *c);
/*
 * Keep it to free with pagecache_release (at once when it cannot be kept): giving back a cache
 * of hundreds of MiB takes the kernel about 10 ms of a CPU, which must not fall inside a
 * downtime (on a thread of its own it competes there for the CPUs). Not thread-safe.
 */
void pagecache_free_later(struct pagecache *c);
void pagecache_release(void);
/* The copy of pfn, or NULL (counted as a hit or a miss). */
uint8_t *pagecache_get(struct pagecache *c, uint64_t pfn);
/* Keep page (4 KiB) as pfn's copy, evicting what held its slot. */
void pagecache_put(struct pagecache *c, uint64_t pfn, const void *page);
/* Forget pfn's copy (it was sent in a way the cache does not follow). */
void pagecache_drop(struct pagecache *c, uint64_t pfn);

#endif
