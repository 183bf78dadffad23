/*
 * pagecache.c - the sender's bounded cache of sent pages (pagecache.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/error.h"
#include "xl-ext/precopy/pagecache.h"
#include "xl-ext/precopy/stream.h"

int pagecache_init(struct pagecache *c, uint64_t bytes, uint64_t nr_pages)
{
	memset(c, 0, sizeof(*c));
	c->nslots = bytes / STREAM_PAGE_SIZE;
	if (c->nslots > nr_pages)
		c->nslots = nr_pages;
	if (c->nslots == 0)
		c->nslots = 1;
	c->tag = calloc(c->nslots, sizeof(*c->tag));
	c->map_len = c->nslots * STREAM_PAGE_SIZE;
	c->pages = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE,
	                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c->pages == MAP_FAILED)
		c->pages = NULL;
	if (!c->tag || !c->pages) {
		pagecache_free(c);
		return ERR_NOMEM;
	}
	return 0;
}

void pagecache_free(struct pagecache *c)
{
	free(c->tag);
	if (c->pages)
		munmap(c->pages, c->map_len);
	memset(c, 0, sizeof(*c));
}

uint8_t *pagecache_get(struct pagecache *c, uint64_t pfn)
{
	uint64_t s = pfn % c->nslots;

	if (c->tag[s] != pfn + 1) {
		c->misses++;
		return NULL;
	}
	c->hits++;
	return c->pages + s * STREAM_PAGE_SIZE;
}

void pagecache_put(struct pagecache *c, uint64_t pfn, const void *page)
{
	uint64_t s = pfn % c->nslots;

	memcpy(c->pages + s * STREAM_PAGE_SIZE, page, STREAM_PAGE_SIZE);
	c->tag[s] = pfn + 1;
}

void pagecache_drop(struct pagecache *c, uint64_t pfn)
{
	uint64_t s = pfn % c->nslots;

	if (c->tag[s] == pfn + 1)
		c->tag[s] = 0;
}

/* Caches pagecache_free_later left, until pagecache_release. */
static struct pagecache *later;
static size_t nlater;

void pagecache_free_later(struct pagecache *c)
{
	struct pagecache *grown = realloc(later, (nlater + 1) * sizeof(*later));

	if (!grown) {
		pagecache_free(c);
		return;
	}
	later = grown;
	later[nlater++] = *c;
	memset(c, 0, sizeof(*c));
}

void pagecache_release(void)
{
	for (size_t i = 0; i < nlater; i++)
		pagecache_free(&later[i]);
	free(later);
	later = NULL;
	nlater = 0;
}
