/*
 * simdom_mem.c - a simulated domU's memory: the memfd that is its RAM.
 *
 * The memory model, the same on every host and for every guest: guest RAM is a memfd of the
 * configured size, sparse. A page the guest (or a migration) never wrote is a hole: it reads
 * as zeros and holds no memory. A written page is allocated once and stays allocated until
 * the domain is destroyed (a page the guest zeroes stays allocated; a page that a migration
 * delivers as zero may be a hole on the destination: zero content, no memory). So the memory
 * a simulated host gives a guest is what the guest wrote, and a migration moves exactly that:
 *
 * - the source reads guest memory with pread and finds its data with SEEK_DATA/SEEK_HOLE;
 *   nothing reads it through a mapping (a read fault on a shmem hole allocates and clears a
 *   page: the source's memory used to double during round 0);
 * - the destination writes received pages with pwrite: a page is allocated and filled in one
 *   step, without a page fault and without being cleared first; holes stay holes.
 *
 * Post-copy (migrate --mode postcopy|hybrid) leans on the same model: on the destination a
 * page still at the source is a hole (a stale copy a pre-copy round left is punched out), and
 * the guest's mapping is armed with userfaultfd in missing mode (simdom_ctl.c, postcopy-arm):
 * the first touch of such a page blocks the vCPU until the receiver installs the page
 * (UFFDIO_COPY) or, for a page that is a hole at the source too, zeros. Nothing but the
 * receiver fills a missing page, so a guest whose source is lost stays blocked, never reads
 * zeros where data was.
 *
 * Why not populate every page, as Xen does when it builds a domain? On Xen that cost is paid
 * once, at domain creation, outside any migration. Here a fully populated destination had to
 * be cleared by a background thread racing the receiver for the same pages and the same two
 * cores, and a populated source costs RAM the test machines share. With the sparse model the
 * sim pays for what the guest uses, in the same way on both ends, and no migration figure
 * includes a cost real Xen does not have.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/error.h"
#include "xl-ext/sim/guestmem.h"
#include "xl-ext/sim/simdom_int.h"

int simdom_mem_setup(struct simdom *d)
{
	size_t bytes = d->cfg.memory_mib << 20;

	d->nr_pages = bytes / GM_PAGE_SIZE;
	d->memfd = memfd_create("xl-ext-sim-ram", MFD_CLOEXEC);
	if (d->memfd < 0 || ftruncate(d->memfd, (off_t)bytes) < 0)
		return err_from_errno(errno);
	d->mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
	if (d->mem == MAP_FAILED) {
		d->mem = NULL;
		return err_from_errno(errno);
	}
	return 0;
}

int simdom_mem_data_pages(const struct simdom *d, uint64_t **bitmap_r)
{
	uint64_t *bitmap = calloc((d->nr_pages + 63) / 64, sizeof(uint64_t));
	off_t off = 0, size = (off_t)(d->nr_pages * GM_PAGE_SIZE);

	if (!bitmap)
		return ERR_NOMEM;
	while (off < size) {
		off_t data = lseek(d->memfd, off, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;
		hole = data < 0 ? -1 : lseek(d->memfd, data, SEEK_HOLE);
		if (hole < 0) {
			int rc = err_from_errno(errno);

			free(bitmap);
			return rc;
		}
		for (uint64_t pfn = (uint64_t)data / GM_PAGE_SIZE;
		     pfn < d->nr_pages && pfn * GM_PAGE_SIZE < (uint64_t)hole; pfn++)
			bitmap[pfn / 64] |= 1ull << (pfn % 64);
		off = hole;
	}
	*bitmap_r = bitmap;
	return 0;
}
