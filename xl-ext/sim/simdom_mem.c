/*
 * simdom_mem.c - a simulated domU's memory: the memfd that is its RAM.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
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

/*
 * An incoming domain's memory is allocated (and zeroed by the kernel) in the background while
 * the stream arrives, as Xen populates a restoring domain's physmap: the receiver then writes
 * into pages that exist instead of faulting each one in on its critical path.
 */
static void *populate_main(void *arg)
{
	struct simdom *d = arg;
	size_t bytes = d->nr_pages * GM_PAGE_SIZE, chunk = 16u << 20;

	for (size_t off = 0; off < bytes && !__atomic_load_n(&d->quit, __ATOMIC_RELAXED);
	     off += chunk) {
		if (madvise(d->mem + off, off + chunk > bytes ? bytes - off : chunk,
		            MADV_POPULATE_WRITE) < 0)
			break; /* older kernel: pages are faulted in as they arrive */
	}
	return NULL;
}

void simdom_mem_populate_start(struct simdom *d)
{
	if (pthread_create(&d->populate_thread, NULL, populate_main, d) == 0)
		d->populating = true;
}
