/*
 * guestmem.c - stamping and verifying simulated guest memory.
 */
#include "config.h"

#include <string.h>

#include "xl-ext/sim/guestmem.h"

/* splitmix64 finaliser: a cheap, well-mixed 64-bit hash */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

uint64_t gm_digest(uint64_t pfn, uint64_t gen)
{
	return gen ? mix64(pfn * 0x9e3779b97f4a7c15ull ^ mix64(gen)) : 0;
}

static uint64_t fill_word(uint64_t pfn, uint64_t gen, unsigned i)
{
	return (gen * 0x9e3779b97f4a7c15ull) ^ (pfn << 20) ^ ((uint64_t)i * 0xd6e8feb86659fd93ull);
}

void gm_format(void *mem, uint64_t nr_pages, unsigned nr_vcpus, uint64_t boot_id)
{
	struct gm_superblock *sb = gm_sb(mem);

	memset(mem, 0, GM_PAGE_SIZE);
	sb->boot_id = boot_id;
	sb->nr_pages = nr_pages;
	sb->nr_vcpus = nr_vcpus;
	sb->counter = 0;
	sb->xor_acc = 0;
	__atomic_store_n(&sb->magic, GM_SB_MAGIC, __ATOMIC_RELEASE);
}

uint64_t gm_write_page(void *mem, uint64_t pfn)
{
	struct gm_superblock *sb = gm_sb(mem);
	uint64_t *w = (uint64_t *)((char *)mem + pfn * GM_PAGE_SIZE);
	uint64_t old = w[0] == GM_PAGE_MAGIC ? w[2] : 0;
	uint64_t gen = __atomic_add_fetch(&sb->counter, 1, __ATOMIC_RELAXED);

	w[0] = GM_PAGE_MAGIC;
	w[1] = pfn;
	w[2] = gen;
	for (unsigned i = 3; i < GM_PAGE_SIZE / 8; i++)
		w[i] = fill_word(pfn, gen, i);
	__atomic_fetch_xor(&sb->xor_acc, gm_digest(pfn, old) ^ gm_digest(pfn, gen),
	                   __ATOMIC_RELAXED);
	return gen;
}

static int page_is_zero(const uint64_t *w)
{
	for (unsigned i = 0; i < GM_PAGE_SIZE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

void gm_verify(const void *mem, uint64_t nr_pages, const uint64_t *present, struct gm_check *out)
{
	const struct gm_superblock *sb = (const struct gm_superblock *)mem;
	uint64_t acc = 0;

	memset(out, 0, sizeof(*out));
	out->first_bad_pfn = UINT64_MAX;
	out->sb_ok = sb->magic == GM_SB_MAGIC && sb->nr_pages == nr_pages;
	out->counter = sb->counter;
	for (uint64_t pfn = 1; pfn < nr_pages; pfn++) {
		const uint64_t *w = (const uint64_t *)((const char *)mem + pfn * GM_PAGE_SIZE);
		int ok = 1;

		if (present && !(present[pfn / 64] & (1ull << (pfn % 64)))) {
			out->pages_zero++;
			continue;
		}
		if (w[0] != GM_PAGE_MAGIC) {
			if (page_is_zero(w)) {
				out->pages_zero++;
				continue;
			}
			ok = 0;
		} else if (w[1] != pfn || w[2] == 0 || w[2] > sb->counter) {
			ok = 0;
		} else {
			for (unsigned i = 3; i < GM_PAGE_SIZE / 8 && ok; i++)
				ok = w[i] == fill_word(pfn, w[2], i);
		}
		if (!ok) {
			if (!out->bad_pages)
				out->first_bad_pfn = pfn;
			out->bad_pages++;
			continue;
		}
		out->pages_written++;
		if (w[2] > out->max_gen)
			out->max_gen = w[2];
		acc ^= gm_digest(pfn, w[2]);
	}
	out->xor_ok = out->sb_ok && acc == sb->xor_acc;
}
