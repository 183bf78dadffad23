/*
 * test_dirtylog.c - unit tests of xl-ext/sim/dirtylog.c against the real kernel.
 *
 * Every test runs once per method: mprotect always, uffd unless dirtylog_probe says this kernel
 * cannot (then the test is skipped with the reason printed, or fails if XLEXT_TEST_REQUIRE_UFFD is
 * set). Memory is a fresh memfd per test, mapped MAP_SHARED like the sim backend's guest RAM.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "xl-ext/sim/dirtylog.h"

#define PAGE ((size_t)DIRTYLOG_PAGE_SIZE)

struct guest_ram {
	int memfd;
	uint8_t *mem;
	size_t npages;
};

static enum dirtylog_method method_mprotect = DIRTYLOG_MPROTECT;
static enum dirtylog_method method_uffd = DIRTYLOG_UFFD;

static void ram_create(struct guest_ram *ram, size_t npages)
{
	ram->npages = npages;
	ram->memfd = memfd_create("test-dirtylog", MFD_CLOEXEC);
	assert_true(ram->memfd >= 0);
	assert_int_equal(ftruncate(ram->memfd, (off_t)(npages * PAGE)), 0);
	ram->mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ram->memfd, 0);
	assert_true(ram->mem != MAP_FAILED);
}

static void ram_destroy(struct guest_ram *ram)
{
	munmap(ram->mem, ram->npages * PAGE);
	close(ram->memfd);
}

static void write_page(struct guest_ram *ram, size_t page, uint8_t value)
{
	((volatile uint8_t *)ram->mem)[page * PAGE + (page * 7) % PAGE] = value;
}

static uint8_t read_page(struct guest_ram *ram, size_t page)
{
	return ((volatile uint8_t *)ram->mem)[page * PAGE + 100];
}

static int bit_is_set(const uint64_t *bitmap, size_t i)
{
	return (int)((bitmap[i / 64] >> (i % 64)) & 1);
}

/* The method under test, or skip (with the reason) when this kernel cannot do it. */
static enum dirtylog_method method_or_skip(void **state)
{
	enum dirtylog_method m = *(enum dirtylog_method *)*state;
	int rc = dirtylog_probe(m);

	if (rc < 0) {
		/* Machines known to have Linux >= 6.7 set this so a broken probe cannot hide. */
		if (getenv("XLEXT_TEST_REQUIRE_UFFD") && m == DIRTYLOG_UFFD)
			fail_msg("dirty-log method uffd unusable here: %s", err_name(rc));
		print_message("SKIP: dirty-log method %s unusable here: %s (%s)\n",
		              dirtylog_method_name(m), err_name(rc), err_str(rc));
		skip();
	}
	return m;
}

static struct dirtylog *open_enabled(struct guest_ram *ram, enum dirtylog_method m)
{
	struct dirtylog *dl = NULL;

	assert_int_equal(dirtylog_open(&dl, ram->mem, ram->npages, m), 0);
	assert_non_null(dl);
	assert_int_equal(dirtylog_get_method(dl), m);
	assert_int_equal(dirtylog_enable(dl), 0);
	return dl;
}

/*
 * Fetch and compare with the expected set, bit by bit, beyond npages too (the bitmap is
 * pre-filled with a pattern to prove it is overwritten, not OR-ed).
 */
static void expect_set(struct dirtylog *dl, size_t npages, const size_t *pages, size_t n, bool peek)
{
	size_t nbits = npages + 130;
	size_t nwords = (nbits + 63) / 64;
	uint64_t *bitmap = malloc(nwords * sizeof(*bitmap));
	uint8_t *expected = calloc(nbits, 1);
	size_t ndirty = 12345, nexpected = 0, wrong = 0;

	assert_non_null(bitmap);
	assert_non_null(expected);
	memset(bitmap, 0xa5, nwords * sizeof(*bitmap));
	for (size_t i = 0; i < n; i++) {
		nexpected += !expected[pages[i]];
		expected[pages[i]] = 1;
	}
	assert_int_equal(peek ? dirtylog_peek(dl, bitmap, nbits, &ndirty)
	                      : dirtylog_fetch_and_clear(dl, bitmap, nbits, &ndirty),
	                 0);
	for (size_t i = 0; i < nwords * 64; i++) {
		int want = i < nbits ? expected[i] : 0;

		if (bit_is_set(bitmap, i) != want) {
			if (wrong < 10)
				print_error("page %zu: dirty bit %d, expected %d\n", i,
				            bit_is_set(bitmap, i), want);
			wrong++;
		}
	}
	assert_int_equal(wrong, 0);
	assert_int_equal(ndirty, nexpected);
	free(expected);
	free(bitmap);
}

static void expect_dirty_set(struct dirtylog *dl, size_t npages, const size_t *pages, size_t n)
{
	expect_set(dl, npages, pages, n, false);
}

/* The same by a peek, which cleans nothing. */
static void expect_peek_set(struct dirtylog *dl, size_t npages, const size_t *pages, size_t n)
{
	expect_set(dl, npages, pages, n, true);
}

/* The exact set written is reported: populated and never-touched pages, first and last page,
 * runs of neighbours; pages only read are not. */
static void test_exact_dirty_set(void **state)
{
	enum dirtylog_method m = method_or_skip(state);
	const size_t npages = 1024;
	/* Pages below 512 with even numbers are populated before enable; the rest never. */
	static const size_t written[] = {0, 1, 2, 3, 100, 101, 511, 512, 600, 601, 777, 1022, 1023};
	size_t expected[sizeof(written) / sizeof(written[0]) + 41];
	size_t n = 0;
	struct guest_ram ram;
	struct dirtylog *dl;

	ram_create(&ram, npages);
	for (size_t p = 0; p < 512; p += 2)
		write_page(&ram, p, 0x11);
	dl = open_enabled(&ram, m);

	for (size_t i = 0; i < sizeof(written) / sizeof(written[0]); i++) {
		write_page(&ram, written[i], (uint8_t)(i + 1));
		expected[n++] = written[i];
	}
	for (size_t p = 300; p < 341; p++) { /* a run, half populated half not */
		write_page(&ram, p, 0x22);
		expected[n++] = p;
	}
	/* Reads, of populated and never-touched pages, are not writes. */
	assert_int_equal(read_page(&ram, 4), 0);
	assert_int_equal(read_page(&ram, 5), 0);
	assert_int_equal(read_page(&ram, 900), 0);
	/* Rewriting a dirty page does not matter. */
	write_page(&ram, 0, 0x33);

	expect_dirty_set(dl, npages, expected, n);
	dirtylog_close(dl);
	ram_destroy(&ram);
}

/*
 * A range larger than the chunks enable, fetch and disable work in (64 MiB): writes on both
 * sides of every chunk boundary, in its last chunk (shorter than the others) and after a
 * disable/enable are reported exactly.
 */
static void test_beyond_one_chunk(void **state)
{
	enum dirtylog_method m = method_or_skip(state);
	const size_t npages = 40000; /* 2 chunks of 16384 pages and a short one */
	static const size_t written[] = {0,     16382, 16383, 16384, 16385, 20000,
	                                 32767, 32768, 32769, 39998, 39999};
	struct guest_ram ram;
	struct dirtylog *dl;

	ram_create(&ram, npages);
	for (size_t p = 16000; p < 17000; p++)
		write_page(&ram, p, 1); /* populated across a boundary before enable */
	dl = open_enabled(&ram, m);
	for (size_t i = 0; i < sizeof(written) / sizeof(written[0]); i++)
		write_page(&ram, written[i], 2);
	expect_dirty_set(dl, npages, written, sizeof(written) / sizeof(written[0]));
	expect_dirty_set(dl, npages, NULL, 0);
	assert_int_equal(dirtylog_disable(dl), 0);
	for (size_t p = 0; p < npages; p += 997)
		write_page(&ram, p, 3); /* untracked: every page writable again, no fault */
	assert_int_equal(dirtylog_enable(dl), 0);
	write_page(&ram, 32768, 4);
	expect_dirty_set(dl, npages, (const size_t[]){32768}, 1);
	dirtylog_close(dl);
	ram_destroy(&ram);
}

/* Nothing written: nothing reported, on the first fetch and on later ones. */
static void test_empty_when_nothing_written(void **state)
{
	enum dirtylog_method m = method_or_skip(state);
	struct guest_ram ram;
	struct dirtylog *dl;

	ram_create(&ram, 256);
	for (size_t p = 0; p < 256; p += 3)
		write_page(&ram, p, 1); /* before enable: not reported */
	dl = open_enabled(&ram, m);
	expect_dirty_set(dl, ram.npages, NULL, 0);
	expect_dirty_set(dl, ram.npages, NULL, 0);
	dirtylog_close(dl);
	ram_destroy(&ram);
}

/* A fetch clears: the next one reports only what was written after it. */
static void test_fetch_clears(void **state)
{
	enum dirtylog_method m = method_or_skip(state);
	static const size_t first[] = {0, 5, 6, 7, 200, 255};
	static const size_t second[] = {6, 100, 255};
	struct guest_ram ram;
	struct dirtylog *dl;

	ram_create(&ram, 256);
	dl = open_enabled(&ram, m);
	for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
		write_page(&ram, first[i], 1);
	expect_dirty_set(dl, ram.npages, first, sizeof(first) / sizeof(first[0]));
	expect_dirty_set(dl, ram.npages, NULL, 0);
	for (size_t i = 0; i < sizeof(second) / sizeof(second[0]); i++)
		write_page(&ram, second[i], 2);
	expect_dirty_set(dl, ram.npages, second, sizeof(second) / sizeof(second[0]));
	/* Enabling again cleans too. */
	write_page(&ram, 9, 3);
	assert_int_equal(dirtylog_enable(dl), 0);
	expect_dirty_set(dl, ram.npages, NULL, 0);
	dirtylog_close(dl);
	ram_destroy(&ram);
}

/* Write into the whole range with read(2): only works if the kernel may write every page. */
static void kernel_write_all(struct guest_ram *ram, uint8_t value)
{
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	for (size_t p = 0; p < ram->npages; p++) {
		assert_int_equal(write(fds[1], &value, 1), 1);
		assert_int_equal(read(fds[0], ram->mem + p * PAGE + 1, 1), 1);
	}
	close(fds[0]);
	close(fds[1]);
}

/* After disable: no fetch, the range is fully writable again (by the kernel too), and what
 * was written meanwhile is not reported after a new enable. */
static void test_disable_stops_tracking(void **state)
{
	enum dirtylog_method m = method_or_skip(state);
	static const size_t later[] = {7, 63, 64};
	uint64_t bitmap[2];
	size_t ndirty = 99;
	struct guest_ram ram;
	struct dirtylog *dl;

	ram_create(&ram, 128);
	dl = open_enabled(&ram, m);
	write_page(&ram, 3, 1);
	assert_int_equal(dirtylog_disable(dl), 0);
	assert_int_equal(dirtylog_disable(dl), 0); /* idempotent */
	assert_int_equal(dirtylog_fetch_and_clear(dl, bitmap, 128, &ndirty), ERR_BUSY);

	for (size_t p = 0; p < ram.npages; p++)
		write_page(&ram, p, 2);
	kernel_write_all(&ram, 0x5a);
	for (size_t p = 0; p < ram.npages; p++)
		assert_int_equal(ram.mem[p * PAGE + 1], 0x5a);

	assert_int_equal(dirtylog_enable(dl), 0);
	expect_dirty_set(dl, ram.npages, NULL, 0);
	for (size_t i = 0; i < 3; i++)
		write_page(&ram, later[i], 3);
	expect_dirty_set(dl, ram.npages, later, 3);
	dirtylog_close(dl);
	ram_destroy(&ram);
}

/*
 * Writes made by the kernel on the process's behalf (read(2) into guest RAM): uffd tracks them;
 * with mprotect they fail with EFAULT while logging is on (the documented limitation).
 */
static void test_kernel_writes(void **state)
{
	enum dirtylog_method m = method_or_skip(state);
	static const size_t pages[] = {0, 10, 31};
	struct guest_ram ram;
	struct dirtylog *dl;
	int fds[2];

	ram_create(&ram, 32);
	dl = open_enabled(&ram, m);
	assert_int_equal(pipe(fds), 0);
	for (size_t i = 0; i < 3; i++) {
		ssize_t n;

		assert_int_equal(write(fds[1], "x", 1), 1);
		n = read(fds[0], ram.mem + pages[i] * PAGE + 8, 1);
		if (m == DIRTYLOG_UFFD) {
			assert_int_equal(n, 1);
			assert_int_equal(ram.mem[pages[i] * PAGE + 8], 'x');
		} else {
			assert_int_equal(n, -1);
			assert_int_equal(errno, EFAULT);
			assert_int_equal(read(fds[0], &(char){0}, 1), 1); /* drain */
			assert_int_equal(ram.mem[pages[i] * PAGE + 8], 0);
		}
	}
	close(fds[0]);
	close(fds[1]);
	expect_dirty_set(dl, ram.npages, pages, m == DIRTYLOG_UFFD ? 3 : 0);
	dirtylog_close(dl);
	ram_destroy(&ram);
}

/* Several dirtylogs at once keep their sets apart; overlap and exhaustion are refused. */
static void test_several_dirtylogs(void **state)
{
	enum dirtylog_method m = method_or_skip(state);
	enum { NLOGS = 4 };
	struct guest_ram ram[NLOGS];
	struct dirtylog *dl[NLOGS];
	struct dirtylog *other = NULL;
	int rc;

	for (size_t i = 0; i < NLOGS; i++) {
		ram_create(&ram[i], 64 + i);
		dl[i] = open_enabled(&ram[i], m);
	}
	for (size_t i = 0; i < NLOGS; i++) {
		write_page(&ram[i], i, 1);
		write_page(&ram[i], ram[i].npages - 1, 1);
	}
	for (size_t i = 0; i < NLOGS; i++) {
		size_t expected[] = {i, ram[i].npages - 1};

		expect_dirty_set(dl[i], ram[i].npages, expected, 2);
	}

	/* A range already tracked cannot be tracked twice. */
	rc = dirtylog_open(&other, ram[0].mem + PAGE, 2, m);
	assert_int_equal(rc, m == DIRTYLOG_UFFD ? ERR_BUSY : ERR_EXISTS);
	assert_null(other);

	if (m == DIRTYLOG_MPROTECT) {
		struct guest_ram extra[DIRTYLOG_MPROTECT_MAX];
		struct dirtylog *more[DIRTYLOG_MPROTECT_MAX] = {NULL};

		for (size_t i = 0; i < DIRTYLOG_MPROTECT_MAX; i++) {
			ram_create(&extra[i], 4);
			rc = dirtylog_open(&more[i], extra[i].mem, 4, m);
			assert_int_equal(rc, i < DIRTYLOG_MPROTECT_MAX - NLOGS ? 0 : ERR_NOSPACE);
		}
		for (size_t i = 0; i < DIRTYLOG_MPROTECT_MAX; i++) {
			dirtylog_close(more[i]);
			ram_destroy(&extra[i]);
		}
	}
	for (size_t i = 0; i < NLOGS; i++) {
		dirtylog_close(dl[i]);
		ram_destroy(&ram[i]);
	}
}

/* ------------------------------------------------------------------------------------------ */

struct writer {
	pthread_t thread;
	struct guest_ram *ram;
	atomic_bool *stop;
	uint64_t seed;
	size_t span_pages; /* writes go to pages [0, span_pages) */
	int burst;         /* writes between pauses */
	long pause_ns;     /* 0: never pause */
	atomic_size_t writes;
};

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* A vCPU: random 8-byte values at random places until told to stop. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	size_t nwords = w->span_pages * PAGE / sizeof(uint64_t);
	uint64_t *words = (uint64_t *)w->ram->mem;
	struct timespec pause = {0, w->pause_ns};

	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		for (int i = 0; i < w->burst; i++) {
			uint64_t r = xorshift64(&w->seed);

			__atomic_store_n(&words[r % nwords], xorshift64(&w->seed),
			                 __ATOMIC_RELAXED);
			atomic_fetch_add_explicit(&w->writes, 1, memory_order_relaxed);
		}
		if (w->pause_ns)
			nanosleep(&pause, NULL);
	}
	return NULL;
}

static size_t total_writes(struct writer *writers, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += atomic_load_explicit(&writers[i].writes, memory_order_relaxed);
	return total;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t copy_dirty(const struct guest_ram *ram, uint8_t *shadow, const uint64_t *bitmap)
{
	size_t copied = 0;

	for (size_t p = 0; p < ram->npages; p++) {
		if (bit_is_set(bitmap, p)) {
			memcpy(shadow + p * PAGE, ram->mem + p * PAGE, PAGE);
			copied++;
		}
	}
	return copied;
}

/*
 * The pre-copy invariant: writers run while rounds fetch and copy the dirty pages into a
 * shadow (round 0 copies everything); after the writers stop, a last fetch and copy must make
 * the shadow equal to the memory, byte for byte. A write the tracker dropped breaks it.
 */
static void concurrent_precopy(void **state, bool peek)
{
	enum dirtylog_method m = method_or_skip(state);
	enum { NWRITERS = 2 };
	const size_t npages = 4096;
	const double duration = 0.2, give_up = 60;
	const size_t min_writes = 20000, min_rounds = 5;
	struct writer writers[NWRITERS];
	atomic_bool stop = false;
	struct guest_ram ram;
	struct dirtylog *dl;
	uint64_t *bitmap = calloc(npages / 64, sizeof(uint64_t));
	uint64_t *skip = calloc(npages / 64, sizeof(uint64_t));
	uint8_t *shadow = malloc(npages * PAGE);
	size_t rounds = 0, resent = 0, ndirty = 0, copied = 0, nwrites = 0, bad_pages = 0;
	size_t skipped = 0, npeek = 0;
	int rc = 0;
	double t0;

	assert_non_null(bitmap);
	assert_non_null(shadow);
	ram_create(&ram, npages);
	assert_int_equal(dirtylog_open(&dl, ram.mem, npages, m), 0);
	/* One vCPU hammers a hot set, one touches the whole of RAM now and then. */
	writers[0] = (struct writer){.span_pages = 256, .burst = 64};
	writers[1] = (struct writer){.span_pages = npages, .burst = 4, .pause_ns = 20000};
	for (size_t i = 0; i < NWRITERS; i++) {
		writers[i].ram = &ram;
		writers[i].stop = &stop;
		writers[i].seed = 0x9e3779b97f4a7c15u * (i + 1);
		assert_int_equal(pthread_create(&writers[i].thread, NULL, writer_main, &writers[i]),
		                 0);
	}

	t0 = now_seconds();
	assert_int_equal(dirtylog_enable(dl), 0);
	memcpy(shadow, ram.mem, npages * PAGE); /* round 0 */
	/* ~200 ms, but long enough for some rounds and for the writers to have done something
	 * even where threads are slow to start (valgrind runs one thread at a time). No assertion
	 * while the writers run: a failing one would leave them writing to a dead stack frame. */
	while ((now_seconds() - t0 < duration || rounds < min_rounds ||
	        total_writes(writers, NWRITERS) < min_writes) &&
	       now_seconds() - t0 < give_up) {
		rc = dirtylog_fetch_and_clear(dl, bitmap, npages, &ndirty);
		if (rc < 0)
			break;
		if (peek) {
			/* Leave what was written again since the fetch to the next round. */
			rc = dirtylog_peek(dl, skip, npages, &npeek);
			if (rc < 0)
				break;
			for (size_t w = 0; w < npages / 64; w++) {
				skipped += (size_t)__builtin_popcountll(bitmap[w] & skip[w]);
				ndirty -= (size_t)__builtin_popcountll(bitmap[w] & skip[w]);
				bitmap[w] &= ~skip[w];
			}
		}
		copied = copy_dirty(&ram, shadow, bitmap);
		if (copied != ndirty)
			break;
		resent += ndirty;
		rounds++;
	}

	atomic_store(&stop, true); /* pause the guest */
	for (size_t i = 0; i < NWRITERS; i++) {
		pthread_join(writers[i].thread, NULL);
		nwrites += atomic_load(&writers[i].writes);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(copied, ndirty); /* the count matches the bitmap */
	assert_int_equal(dirtylog_fetch_and_clear(dl, bitmap, npages, &ndirty), 0);
	assert_int_equal(copy_dirty(&ram, shadow, bitmap), ndirty);
	resent += ndirty;

	for (size_t p = 0; p < npages; p++) {
		if (memcmp(shadow + p * PAGE, ram.mem + p * PAGE, PAGE) != 0) {
			if (bad_pages < 10)
				print_error("page %zu differs from its copy: a write was lost\n",
				            p);
			bad_pages++;
		}
	}
	print_message("%s: %zu writes, %zu rounds, %zu pages re-sent, %zu skipped after a peek, "
	              "%zu pages lost\n",
	              dirtylog_method_name(m), nwrites, rounds, resent, skipped, bad_pages);
	assert_int_equal(bad_pages, 0);
	assert_true(nwrites >= min_writes);
	assert_true(rounds >= min_rounds);
	assert_true(resent > 0);

	dirtylog_close(dl);
	ram_destroy(&ram);
	free(shadow);
	free(bitmap);
	free(skip);
}

static void test_concurrent_precopy(void **state)
{
	concurrent_precopy(state, false);
}

/*
 * The same with each round leaving out the pages a peek after its fetch says were written
 * again (pre-copy's skip): they must all be in the next fetch, or the copy misses a write.
 */
static void test_concurrent_precopy_peek(void **state)
{
	concurrent_precopy(state, true);
}

/*
 * A peek reports what a fetch would, across chunk boundaries, and clears nothing: peeking
 * twice gives the same set, later writes add to it, and the fetch after reports them all;
 * after the fetch a peek is empty again.
 */
static void test_peek_clears_nothing(void **state)
{
	enum dirtylog_method m = method_or_skip(state);
	const size_t npages = 40000;
	static const size_t first[] = {0, 7, 16383, 16384, 39999};
	static const size_t all[] = {0, 7, 8, 16383, 16384, 32768, 39999};
	struct guest_ram ram;
	struct dirtylog *dl;

	ram_create(&ram, npages);
	write_page(&ram, 8, 1); /* populated before enable */
	dl = open_enabled(&ram, m);
	expect_peek_set(dl, npages, NULL, 0);
	for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
		write_page(&ram, first[i], 2);
	expect_peek_set(dl, npages, first, sizeof(first) / sizeof(first[0]));
	expect_peek_set(dl, npages, first, sizeof(first) / sizeof(first[0]));
	write_page(&ram, 8, 3);
	write_page(&ram, 32768, 3);
	write_page(&ram, 0, 3);
	expect_peek_set(dl, npages, all, sizeof(all) / sizeof(all[0]));
	expect_dirty_set(dl, npages, all, sizeof(all) / sizeof(all[0]));
	expect_peek_set(dl, npages, NULL, 0);
	write_page(&ram, 7, 4);
	expect_peek_set(dl, npages, (const size_t[]){7}, 1);
	expect_dirty_set(dl, npages, (const size_t[]){7}, 1);
	dirtylog_close(dl);
	ram_destroy(&ram);
}

/* ------------------------------------------------------------------------------------------ */

enum crash_kind {
	CRASH_READONLY_WRITE, /* write to a read-only page outside any tracked range */
	CRASH_UNMAPPED_WRITE, /* write to an address with nothing mapped */
	CRASH_SENT_SIGNAL,    /* SIGSEGV sent with raise() */
	CRASH_CHAINED,        /* a handler installed before the dirtylog gets the fault */
};

#define CHAINED_EXIT 42

static void chained_handler(int sig)
{
	(void)sig;
	_exit(CHAINED_EXIT);
}

/* In a child: track memory, write it, then crash; the child must die of SIGSEGV. */
static void expect_child_crash(enum dirtylog_method m, enum crash_kind kind)
{
	int fds[2], status = 0;
	char reached = 0;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = {0, 0};
		struct guest_ram ram;
		struct dirtylog *dl = NULL;
		volatile uint8_t *readonly, *unmapped;

		setrlimit(RLIMIT_CORE, &no_core);
		close(fds[0]);
		/* What a process that never set SIGSEGV has (cmocka and ASan install their own
		 * handlers, which would report instead of dying), or a handler of its own. */
		signal(SIGSEGV, kind == CRASH_CHAINED ? chained_handler : SIG_DFL);
		ram_create(&ram, 16);
		if (dirtylog_open(&dl, ram.mem, ram.npages, m) < 0 || dirtylog_enable(dl) < 0)
			_exit(3);
		write_page(&ram, 1, 1); /* a tracked write is absorbed */
		readonly = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (readonly == MAP_FAILED)
			_exit(4);
		unmapped = readonly + PAGE;
		munmap((void *)unmapped, PAGE);
		if (write(fds[1], "r", 1) != 1)
			_exit(5);
		switch (kind) {
		case CRASH_READONLY_WRITE:
		case CRASH_CHAINED:
			readonly[0] = 1;
			break;
		case CRASH_UNMAPPED_WRITE:
			unmapped[0] = 1;
			break;
		case CRASH_SENT_SIGNAL:
			raise(SIGSEGV);
			break;
		}
		_exit(0); /* survived: the test fails */
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &reached, 1), 1); /* the child got to the crash */
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (kind == CRASH_CHAINED) {
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), CHAINED_EXIT);
		return;
	}
	if (!WIFSIGNALED(status))
		print_error("child exited with status %d instead of dying\n",
		            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
}

/* A SIGSEGV that is not a tracked write still kills the process, or reaches the handler that
 * was there before. */
static void test_real_segv_still_crashes(void **state)
{
	enum dirtylog_method m = method_or_skip(state);

	expect_child_crash(m, CRASH_READONLY_WRITE);
	expect_child_crash(m, CRASH_UNMAPPED_WRITE);
	expect_child_crash(m, CRASH_SENT_SIGNAL);
	expect_child_crash(m, CRASH_CHAINED);
}

/* ------------------------------------------------------------------------------------------ */

static void test_invalid_arguments(void **state)
{
	struct guest_ram ram;
	struct dirtylog *dl = NULL;
	uint64_t bitmap[2];
	int rc;

	(void)state;
	ram_create(&ram, 64);
	assert_int_equal(dirtylog_open(&dl, ram.mem, 0, DIRTYLOG_MPROTECT), ERR_INVAL);
	assert_int_equal(dirtylog_open(&dl, ram.mem + 1, 1, DIRTYLOG_MPROTECT), ERR_INVAL);
	assert_int_equal(dirtylog_open(&dl, NULL, 1, DIRTYLOG_MPROTECT), ERR_INVAL);
	assert_int_equal(dirtylog_open(&dl, ram.mem, 1, (enum dirtylog_method)7), ERR_INVAL);
	assert_null(dl);

	assert_int_equal(dirtylog_open(&dl, ram.mem, 64, DIRTYLOG_MPROTECT), 0);
	assert_int_equal(dirtylog_fetch_and_clear(dl, bitmap, 128, NULL), ERR_BUSY);
	assert_int_equal(dirtylog_peek(dl, bitmap, 128, NULL), ERR_BUSY);
	assert_int_equal(dirtylog_enable(dl), 0);
	assert_int_equal(dirtylog_fetch_and_clear(dl, bitmap, 63, NULL), ERR_INVAL);
	assert_int_equal(dirtylog_peek(dl, bitmap, 63, NULL), ERR_INVAL);
	assert_int_equal(dirtylog_fetch_and_clear(dl, NULL, 64, NULL), ERR_INVAL);
	assert_int_equal(dirtylog_fetch_and_clear(dl, bitmap, 64, NULL), 0);
	dirtylog_close(dl);
	dirtylog_close(NULL);

	/* An unmapped range is refused. */
	munmap(ram.mem + 32 * PAGE, PAGE);
	dl = NULL;
	rc = dirtylog_open(&dl, ram.mem, 64, DIRTYLOG_MPROTECT);
	assert_true(rc < 0);
	assert_null(dl);
	rc = dirtylog_open(&dl, ram.mem, 64, DIRTYLOG_UFFD);
	assert_true(rc < 0);
	assert_null(dl);
	ram_destroy(&ram);

	assert_string_equal(dirtylog_method_name(DIRTYLOG_AUTO), "auto");
	assert_string_equal(dirtylog_method_name(DIRTYLOG_UFFD), "uffd");
	assert_string_equal(dirtylog_method_name(DIRTYLOG_MPROTECT), "mprotect");
	assert_string_equal(dirtylog_method_name((enum dirtylog_method)9), "unknown");
	assert_int_equal(dirtylog_probe(DIRTYLOG_MPROTECT), 0);
	assert_int_equal(dirtylog_probe(DIRTYLOG_AUTO), 0);
}

/* AUTO follows XLEXT_DIRTYLOG, else prefers uffd when the kernel has it. */
static void test_auto_and_environment(void **state)
{
	const char *saved = getenv("XLEXT_DIRTYLOG");
	char *saved_copy = saved ? strdup(saved) : NULL;
	struct guest_ram ram;
	struct dirtylog *dl = NULL;

	(void)state;
	ram_create(&ram, 8);

	unsetenv("XLEXT_DIRTYLOG");
	assert_int_equal(dirtylog_open(&dl, ram.mem, 8, DIRTYLOG_AUTO), 0);
	assert_int_equal(dirtylog_get_method(dl),
	                 dirtylog_probe(DIRTYLOG_UFFD) == 0 ? DIRTYLOG_UFFD : DIRTYLOG_MPROTECT);
	dirtylog_close(dl);

	setenv("XLEXT_DIRTYLOG", "mprotect", 1);
	assert_int_equal(dirtylog_open(&dl, ram.mem, 8, DIRTYLOG_AUTO), 0);
	assert_int_equal(dirtylog_get_method(dl), DIRTYLOG_MPROTECT);
	dirtylog_close(dl);

	if (dirtylog_probe(DIRTYLOG_UFFD) == 0) {
		setenv("XLEXT_DIRTYLOG", "uffd", 1);
		assert_int_equal(dirtylog_open(&dl, ram.mem, 8, DIRTYLOG_AUTO), 0);
		assert_int_equal(dirtylog_get_method(dl), DIRTYLOG_UFFD);
		dirtylog_close(dl);
		/* An explicit method wins over the environment. */
		setenv("XLEXT_DIRTYLOG", "mprotect", 1);
		assert_int_equal(dirtylog_open(&dl, ram.mem, 8, DIRTYLOG_UFFD), 0);
		assert_int_equal(dirtylog_get_method(dl), DIRTYLOG_UFFD);
		dirtylog_close(dl);
	}

	setenv("XLEXT_DIRTYLOG", "bogus", 1);
	dl = NULL;
	assert_int_equal(dirtylog_open(&dl, ram.mem, 8, DIRTYLOG_AUTO), ERR_INVAL);
	assert_null(dl);

	if (saved_copy)
		setenv("XLEXT_DIRTYLOG", saved_copy, 1);
	else
		unsetenv("XLEXT_DIRTYLOG");
	free(saved_copy);
	ram_destroy(&ram);
}

#define BOTH_METHODS(test)                                        \
	{#test "(mprotect)", test, NULL, NULL, &method_mprotect}, \
	{                                                         \
#test "(uffd)", test, NULL, NULL, &method_uffd    \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH_METHODS(test_exact_dirty_set),
	    BOTH_METHODS(test_empty_when_nothing_written),
	    BOTH_METHODS(test_fetch_clears),
	    BOTH_METHODS(test_disable_stops_tracking),
	    BOTH_METHODS(test_kernel_writes),
	    BOTH_METHODS(test_several_dirtylogs),
	    BOTH_METHODS(test_concurrent_precopy),
	    BOTH_METHODS(test_concurrent_precopy_peek),
	    BOTH_METHODS(test_peek_clears_nothing),
	    BOTH_METHODS(test_real_segv_still_crashes),
	    BOTH_METHODS(test_beyond_one_chunk),
	    cmocka_unit_test(test_invalid_arguments),
	    cmocka_unit_test(test_auto_and_environment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
