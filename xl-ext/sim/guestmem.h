/*
 * guestmem.h - what a simulated guest keeps in its memory, and how to verify it.
 *
 * Page 0 is the guest's "superblock": boot id, a monotonic counter of page writes and an XOR
 * accumulator of every data page's (pfn, generation) digest. Every other page is either all
 * zeros (never written) or stamped: magic, pfn, generation (the counter value of its write)
 * and a fill derived from (pfn, generation). A vCPU updates counter, page and accumulator
 * between two pause points, so a paused guest's memory is self-consistent; a copy of it is
 * proven equal to the original at the instant of pause when every page is well formed and
 * their digests XOR to the accumulator: a missing or stale page changes the XOR.
 * Page 0 from byte 2048 on holds the shared-disk writer's position (simdisk.h), which is not
 * part of this check.
 */
#ifndef XLEXT_SIM_GUESTMEM_H
#define XLEXT_SIM_GUESTMEM_H

#include <stdint.h>

#define GM_PAGE_SIZE  4096u
#define GM_SB_MAGIC   0x58454c58534d5342ull /* "XELXSMSB" */
#define GM_PAGE_MAGIC 0x58454c5850414745ull /* "XELXPAGE" */

struct gm_superblock {
	uint64_t magic;
	uint64_t boot_id; /* random at first boot; a restarted guest has another */
	uint64_t nr_pages;
	uint64_t nr_vcpus;
	uint64_t counter; /* page writes so far (atomic) */
	uint64_t xor_acc; /* XOR of gm_digest(pfn, gen) of every written page (atomic) */
	uint64_t boot_time_ns;
};

struct gm_check {
	uint64_t pages_written; /* stamped pages */
	uint64_t pages_zero;
	uint64_t bad_pages; /* malformed: torn, wrong pfn, generation beyond the counter */
	uint64_t first_bad_pfn;
	uint64_t counter;
	uint64_t max_gen;
	int xor_ok; /* the accumulator matches the pages */
	int sb_ok;
};

static inline struct gm_superblock *gm_sb(void *mem)
{
	return (struct gm_superblock *)mem;
}

/* Format page 0 of a freshly booted guest. */
void gm_format(void *mem, uint64_t nr_pages, unsigned nr_vcpus, uint64_t boot_id);

/* Digest of a page's identity at a generation (0 for a never-written page). */
uint64_t gm_digest(uint64_t pfn, uint64_t gen);

/*
 * Write page pfn (>= 1) as a vCPU does: takes the next counter value, stamps the page and
 * updates the accumulator. Returns the generation written.
 */
uint64_t gm_write_page(void *mem, uint64_t pfn);

/*
 * Verify the whole image (the guest must be paused). present, when not NULL, is a bitmap of
 * the pages that hold data: the others are zero pages, not read (a read through a mapping
 * would allocate them).
 */
void gm_verify(const void *mem, uint64_t nr_pages, const uint64_t *present, struct gm_check *out);

#endif
