/*
 * Tests of the post-copy phase (xl-ext/precopy/postcopy.c) in one process: a source memory
 * file with data and holes, a destination memory file mapped and armed with userfaultfd as the
 * sim's incoming domain arms it, the two ends of the phase over a socket pair, and a "guest"
 * thread that reads pages through the destination's mapping while the rest is pushed. Every
 * page must arrive exactly as the source holds it, a hole must read as zeros without being
 * asked for, and a phase whose source goes away must fail with the missing pages still missing
 * (never filled with zeros).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "xl-ext/precopy/postcopy.h"
#include "xl-ext/precopy/precopy.h"

#define NPAGES 2048u
#define PG     4096u

struct rig {
	int src_fd, dst_fd, uffd, chan[2];
	uint8_t *dst;
	uint64_t *need;
	struct mig_report srep, rrep;
};

/* Source page pfn: data when pfn % 5 != 3 (a hole otherwise), stamped with its pfn. */
static bool has_data(uint64_t pfn)
{
	return pfn % 5 != 3;
}

static void fill(uint8_t *page, uint64_t pfn)
{
	for (unsigned i = 0; i < PG / 8; i++) {
		uint64_t w = pfn * 0x9e3779b97f4a7c15ull + i;

		memcpy(page + i * 8, &w, 8);
	}
}

static int setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	uint8_t page[PG];
	char why[256];

	if (!pc_postcopy_supported(why, sizeof(why))) {
		print_message("skipping: %s\n", why);
		free(r);
		*state = NULL;
		return 0;
	}
	r->src_fd = memfd_create("test-src", MFD_CLOEXEC);
	r->dst_fd = memfd_create("test-dst", MFD_CLOEXEC);
	assert_int_equal(ftruncate(r->src_fd, (off_t)NPAGES * PG), 0);
	assert_int_equal(ftruncate(r->dst_fd, (off_t)NPAGES * PG), 0);
	r->need = calloc(NPAGES / 64, 8);
	for (uint64_t pfn = 0; pfn < NPAGES; pfn++) {
		if (!has_data(pfn))
			continue;
		fill(page, pfn);
		assert_int_equal(pwrite(r->src_fd, page, PG, (off_t)(pfn * PG)), PG);
		if (pfn) /* page 0 goes with the state */
			r->need[pfn / 64] |= 1ull << (pfn % 64);
	}
	fill(page, 0);
	assert_int_equal(pwrite(r->dst_fd, page, PG, 0), PG);
	r->dst = mmap(NULL, (size_t)NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, r->dst_fd, 0);
	assert_true(r->dst != MAP_FAILED);
	{
		struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM};
		struct uffdio_register reg = {
		    .range = {.start = (uint64_t)(uintptr_t)r->dst, .len = (uint64_t)NPAGES * PG},
		    .mode = UFFDIO_REGISTER_MODE_MISSING};

		r->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		assert_true(r->uffd >= 0);
		assert_int_equal(ioctl(r->uffd, UFFDIO_API, &api), 0);
		assert_int_equal(ioctl(r->uffd, UFFDIO_REGISTER, &reg), 0);
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->chan), 0);
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct rig *r = *state;

	if (!r)
		return 0;
	pc_postcopy_cancel(&r->srep);
	pc_postcopy_cancel(&r->rrep);
	munmap(r->dst, (size_t)NPAGES * PG);
	close(r->src_fd);
	close(r->dst_fd);
	free(r);
	return 0;
}

/* Start both ends: the sender at bandwidth (0: unlimited), the receiver with prepage. */
static void start(struct rig *r, uint64_t bandwidth, unsigned prepage)
{
	uint64_t *need2 = malloc(NPAGES / 8);

	memcpy(need2, r->need, NPAGES / 8);
	assert_int_equal(
	    pc_postcopy_serve(&r->srep, r->chan[0], r->src_fd, NPAGES, r->need, NULL, bandwidth),
	    0);
	r->need = NULL;
	assert_int_equal(pc_postcopy_expect(&r->rrep, r->chan[1], NPAGES, need2, prepage), 0);
	assert_int_equal(pc_postcopy_attach(&r->rrep, r->uffd, (uint64_t)(uintptr_t)r->dst, -1), 0);
}

struct guest {
	const uint8_t *mem;
	unsigned bad;
	unsigned seed;
};

/* The guest reads pages in a scattered order through the armed mapping: faults. */
static void *guest_main(void *arg)
{
	struct guest *g = arg;
	uint8_t want[PG];

	for (unsigned k = 0; k < 300; k++) {
		uint64_t pfn = (k * 769u + g->seed) % NPAGES;

		if (has_data(pfn))
			fill(want, pfn);
		else
			memset(want, 0, PG);
		if (memcmp(g->mem + pfn * PG, want, PG))
			g->bad++;
	}
	return NULL;
}

static void test_every_page_arrives(void **state)
{
	struct rig *r = *state;
	struct guest g;
	pthread_t t;
	uint8_t want[PG];
	uint64_t expected = 0;

	if (!r)
		skip();
	for (uint64_t pfn = 1; pfn < NPAGES; pfn++)
		expected += has_data(pfn);
	g = (struct guest){.mem = r->dst, .seed = 11};
	start(r, 20u << 20, 4); /* slow enough that the guest faults before the push */
	assert_int_equal(pthread_create(&t, NULL, guest_main, &g), 0);
	pthread_join(t, NULL);
	assert_int_equal(pc_postcopy_wait(&r->rrep), 0);
	/* every page is in, the range still armed: a hole touched now is zero-filled, not left
	 * waiting (the receiver serves faults until the phase is finished) */
	for (uint64_t pfn = NPAGES - 1; pfn > 0; pfn--) {
		bool touched = false;

		for (unsigned k = 0; k < 300 && !touched; k++)
			touched = (k * 769u + g.seed) % NPAGES == pfn;
		if (has_data(pfn) || touched)
			continue;
		memset(want, 0, PG);
		assert_memory_equal(r->dst + pfn * PG, want, PG);
		break;
	}
	assert_int_equal(pc_postcopy_finish(&r->rrep), 0);
	assert_int_equal(pc_postcopy_finish(&r->srep), 0);
	assert_int_equal(g.bad, 0);
	for (uint64_t pfn = 0; pfn < NPAGES; pfn++) {
		if (has_data(pfn))
			fill(want, pfn);
		else
			memset(want, 0, PG);
		assert_memory_equal(r->dst + pfn * PG, want, PG);
	}
	/* what each end counted agrees */
	assert_false(r->rrep.postcopy.failed);
	assert_int_equal(r->rrep.postcopy.needed, expected);
	assert_int_equal(r->rrep.postcopy.pulled + r->rrep.postcopy.pushed, expected);
	assert_int_equal(r->srep.postcopy.pulled + r->srep.postcopy.pushed, expected);
	assert_int_equal(r->srep.postcopy.pulled, r->rrep.postcopy.pulled);
	assert_true(r->rrep.postcopy.faults > 0);
	assert_true(r->rrep.postcopy.pulled > 0);
	assert_true(r->rrep.postcopy.prepaged > 0);
	assert_true(r->rrep.postcopy.prepaged <= r->rrep.postcopy.pulled);
	/* the source learned the guest's figures from DONE */
	assert_int_equal(r->srep.postcopy.faults, r->rrep.postcopy.faults);
	assert_true(r->srep.postcopy.fault_p99_us >= r->srep.postcopy.fault_p50_us);
	assert_true(r->rrep.postcopy.t_end_us >= r->rrep.postcopy.t_start_us);
}

/* A hole is zeros on first touch and is never asked for. */
static void test_hole_is_zero_without_request(void **state)
{
	struct rig *r = *state;
	uint8_t zero[PG] = {0};

	if (!r)
		skip();
	start(r, 1u << 20, 0);                             /* 1 MB/s: the push takes seconds */
	assert_memory_equal(r->dst + 3 * PG, zero, PG);    /* pfn 3: a hole */
	assert_memory_equal(r->dst + 1003 * PG, zero, PG); /* and 1003 */
	pc_postcopy_cancel(&r->srep);
	assert_int_not_equal(pc_postcopy_finish(&r->rrep), 0);
	assert_int_equal(r->rrep.postcopy.pulled, 0);
	assert_true(r->rrep.postcopy.faults >= 2);
}

/* The source goes away: the phase fails and what did not come is still missing. */
static void test_source_gone_leaves_pages_missing(void **state)
{
	struct rig *r = *state;
	uint64_t missing = 0;

	if (!r)
		skip();
	start(r, 256u << 10, 0); /* 256 KB/s: most pages are still at the source below */
	pc_postcopy_cancel(&r->srep);
	assert_int_not_equal(pc_postcopy_finish(&r->rrep), 0);
	assert_true(r->rrep.postcopy.failed);
	/* read the file, not the mapping: a page never delivered is a hole, not zeros written */
	for (uint64_t pfn = 1; pfn < NPAGES; pfn++) {
		off_t at = lseek(r->dst_fd, (off_t)(pfn * PG), SEEK_DATA);

		if (has_data(pfn) && (at < 0 || (uint64_t)at != pfn * PG))
			missing++;
	}
	assert_int_equal(missing, r->rrep.postcopy.needed - r->rrep.postcopy.pushed -
	                              r->rrep.postcopy.pulled);
	assert_true(missing > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_every_page_arrives, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hole_is_zero_without_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_source_gone_leaves_pages_missing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
