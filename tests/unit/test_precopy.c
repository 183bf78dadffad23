/*
 * Tests of the pre-copy engine (xl-ext/precopy/precopy.c): pc_send from a fake source (a
 * malloc'd memory, a dirty bitmap the test fills between rounds, fake throttle and suspend)
 * into pc_receive, and pc_receive alone against truncated, corrupted and foreign streams.
 *
 * Time is the test's: loop_now_us, writev and nanosleep are wrapped (the engine is linked in
 * from its sources for that), so a write of n bytes takes n / LINK_BPS seconds and a sleep
 * takes exactly what it asks, without sleeping. Measured bandwidths and dirty rates, hence
 * every decision of the adaptive policy, are the same on any machine.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "xl-ext/precopy/codec.h"
#include "xl-ext/precopy/engine_rate.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/precopy/stream.h"

#define PAGE         STREAM_PAGE_SIZE
#define NR_PAGES     2048        /* four of the streams' 2 MiB chunks */
#define LINK_BPS     100000000.0 /* the fake link: 100 MB/s */
#define VCPU_LEN     40
#define DM_LEN       100
#define JOIN_LIMIT_S 60

/* --- the test's clock -------------------------------------------------------------------- */

static struct log_sink *capture;
static int64_t fake_now_us = 1000000;
static unsigned long nr_sleeps;

int64_t __wrap_loop_now_us(void);
int __wrap_nanosleep(const struct timespec *req, struct timespec *rem);
ssize_t __wrap_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t __real_writev(int fd, const struct iovec *iov, int iovcnt);

int64_t __wrap_loop_now_us(void)
{
	return __atomic_load_n(&fake_now_us, __ATOMIC_SEQ_CST);
}

/*
 * A sleep ends at the time it began plus its length, or at once when another thread's sleep or
 * writes (the streams of --streams) took the clock there already: sleeps of concurrent threads
 * overlap, as they do in real time, rather than add up.
 */
int __wrap_nanosleep(const struct timespec *req, struct timespec *rem)
{
	int64_t now = __atomic_load_n(&fake_now_us, __ATOMIC_SEQ_CST);
	int64_t until = now + (int64_t)req->tv_sec * 1000000 + req->tv_nsec / 1000;

	(void)rem;
	while (now < until && !__atomic_compare_exchange_n(&fake_now_us, &now, until, false,
	                                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
	__atomic_add_fetch(&nr_sleeps, 1, __ATOMIC_SEQ_CST);
	return 0;
}

/* the fake link's rate: LINK_BPS unless a test says otherwise */
static double link_Bps = LINK_BPS;

/*
 * A test whose guest writes at a peek (peek_dirty) holds the sender at its first write past
 * 20 ms of the fake clock until the peeker thread (which looks at that clock, not at the real
 * one, every 20 ms of real time at most) has peeked: what it sees is then known.
 */
static struct fsrc *hold_for_peek;
static int64_t hold_after_us;
static unsigned fsrc_peeks(const struct fsrc *s);

ssize_t __wrap_writev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t n;

	if (hold_for_peek && __atomic_load_n(&fake_now_us, __ATOMIC_SEQ_CST) > hold_after_us) {
		for (int i = 0; i < 5000 && !fsrc_peeks(hold_for_peek); i++)
			usleep(1000);
		hold_for_peek = NULL;
	}
	n = __real_writev(fd, iov, iovcnt);

	if (n > 0)
		__atomic_add_fetch(&fake_now_us, (int64_t)((double)n * 1e6 / link_Bps),
		                   __ATOMIC_SEQ_CST);
	return n;
}

/* --- the fake source ----------------------------------------------------------------------- */

struct fsrc;
typedef void dirty_fn(struct fsrc *s, unsigned fetch);

struct fsrc {
	struct pc_source src;
	uint8_t *mem;
	uint64_t *bitmap;
	unsigned version[NR_PAGES];
	dirty_fn *dirty; /* what the guest writes before fetch number n (0: after round 0) */
	unsigned fetches;
	unsigned suspends, throttles, last_throttle;
	unsigned long sleeps_at_suspend;
	int64_t suspend_at_us;
	bool enabled;
	enum hv_domain_type type;
	volatile sig_atomic_t *cancel_at_fetch1; /* set during the first fetch */
	bool miss_final;                         /* the final fetch misses a page it dirtied */
	int fail_suspend;
	/* peeks (NULL: the source cannot): what the guest writes before peek number n; those
	 * writes go to later_log, which the peek reports and the next fetch takes */
	dirty_fn *peek_dirty;
	unsigned peeks;
	uint64_t *later_log, *peek_bm;
};

/* Page content: a function of pfn and version, never all zero. */
static void fill_page(uint8_t *p, uint64_t pfn, unsigned version)
{
	for (size_t i = 0; i < PAGE; i++)
		p[i] = (uint8_t)(0x80 | ((pfn * 7 + version * 13 + i) & 0x7f));
}

/* The guest writes page pfn (zero: clears it); the dirty log sees it. */
static void touch(struct fsrc *s, uint64_t pfn, bool zero)
{
	uint8_t *p = s->mem + pfn * PAGE;

	s->version[pfn]++;
	if (zero)
		memset(p, 0, PAGE);
	else
		fill_page(p, pfn, s->version[pfn]);
	s->bitmap[pfn / 64] |= 1ull << (pfn % 64);
}

/* The guest writes page pfn while a round runs: a peek sees it, the next fetch takes it. */
static void touch_later(struct fsrc *s, uint64_t pfn)
{
	s->version[pfn]++;
	fill_page(s->mem + pfn * PAGE, pfn, s->version[pfn]);
	s->later_log[pfn / 64] |= 1ull << (pfn % 64);
}

static int f_peek(void *arg, const uint64_t **bitmap_r, uint64_t *ndirty_r)
{
	struct fsrc *s = arg;
	uint64_t n = 0;

	if (!s->peek_dirty)
		return ERR_NOTSUP;
	s->peek_dirty(s, s->peeks);
	__atomic_add_fetch(&s->peeks, 1, __ATOMIC_SEQ_CST);
	for (size_t w = 0; w < NR_PAGES / 64; w++) {
		__atomic_store_n(&s->peek_bm[w], s->later_log[w], __ATOMIC_RELAXED);
		n += (uint64_t)__builtin_popcountll(s->later_log[w]);
	}
	*bitmap_r = s->peek_bm;
	*ndirty_r = n;
	return 0;
}

static unsigned fsrc_peeks(const struct fsrc *s)
{
	return __atomic_load_n(&s->peeks, __ATOMIC_SEQ_CST);
}

static int f_enable(void *arg, const uint64_t **bitmap_r, char *method, size_t len)
{
	struct fsrc *s = arg;

	s->enabled = true;
	*bitmap_r = s->bitmap;
	snprintf(method, len, "fake");
	return 0;
}

static int f_fetch(void *arg, uint64_t *ndirty_r)
{
	struct fsrc *s = arg;
	uint64_t n = 0;

	memset(s->bitmap, 0, NR_PAGES / 8);
	if (s->dirty)
		s->dirty(s, s->fetches);
	for (size_t w = 0; w < NR_PAGES / 64; w++) { /* what peeks saw: now this fetch's */
		s->bitmap[w] |= s->later_log[w];
		s->later_log[w] = 0;
		__atomic_store_n(&s->peek_bm[w], 0, __ATOMIC_RELAXED);
	}
	if (s->fetches == 1 && s->cancel_at_fetch1)
		*s->cancel_at_fetch1 = 1;
	if (s->suspends && s->miss_final) {
		/* a page written before the pause that the log does not report */
		fill_page(s->mem + 5 * PAGE, 5, 99);
	}
	s->fetches++;
	for (size_t w = 0; w < NR_PAGES / 64; w++)
		n += (uint64_t)__builtin_popcountll(s->bitmap[w]);
	*ndirty_r = n;
	return 0;
}

static int f_throttle(void *arg, unsigned pct)
{
	struct fsrc *s = arg;

	s->throttles++;
	s->last_throttle = pct;
	return 0;
}

static int f_suspend(void *arg, struct pc_cpu_state *st)
{
	struct fsrc *s = arg;

	if (s->fail_suspend)
		return s->fail_suspend;
	s->suspends++;
	s->sleeps_at_suspend = __atomic_load_n(&nr_sleeps, __ATOMIC_SEQ_CST);
	s->suspend_at_us = __wrap_loop_now_us();
	memset(st, 0, sizeof(*st));
	st->nr_vcpus = s->src.nr_vcpus;
	st->vcpu_len = VCPU_LEN;
	st->vcpus = malloc((size_t)st->nr_vcpus * VCPU_LEN);
	assert_non_null(st->vcpus);
	for (size_t i = 0; i < (size_t)st->nr_vcpus * VCPU_LEN; i++)
		st->vcpus[i] = (uint8_t)(i * 3 + 1);
	if (s->type == HV_TYPE_HVM) {
		st->dm_len = DM_LEN;
		st->dm = malloc(DM_LEN);
		assert_non_null(st->dm);
		memset(st->dm, 0xd5, DM_LEN);
	}
	return 0;
}

static const struct pc_source_ops fake_ops = {
    .logdirty_enable = f_enable,
    .logdirty_fetch = f_fetch,
    .logdirty_peek = f_peek,
    .throttle = f_throttle,
    .suspend = f_suspend,
};

/* A guest of NR_PAGES pages: every fourth page zero, the others written once. */
static struct fsrc *fsrc_new(enum hv_domain_type type, unsigned vcpus)
{
	struct fsrc *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->src.mem_fd = memfd_create("test_precopy-src", MFD_CLOEXEC);
	assert_true(s->src.mem_fd >= 0);
	assert_int_equal(ftruncate(s->src.mem_fd, (off_t)NR_PAGES * PAGE), 0);
	s->mem = mmap(NULL, (size_t)NR_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
	              s->src.mem_fd, 0);
	assert_true(s->mem != MAP_FAILED);
	s->bitmap = calloc(NR_PAGES / 64, sizeof(uint64_t));
	s->later_log = calloc(NR_PAGES / 64, sizeof(uint64_t));
	s->peek_bm = calloc(NR_PAGES / 64, sizeof(uint64_t));
	assert_non_null(s->mem);
	assert_non_null(s->bitmap);
	assert_non_null(s->later_log);
	assert_non_null(s->peek_bm);
	for (uint64_t pfn = 0; pfn < NR_PAGES; pfn++)
		if (pfn % 4)
			fill_page(s->mem + pfn * PAGE, pfn, 0);
	s->type = type;
	s->src.ops = &fake_ops;
	s->src.arg = s;
	s->src.nr_pages = NR_PAGES;
	s->src.type = type;
	s->src.nr_vcpus = vcpus;
	return s;
}

static void fsrc_free(struct fsrc *s)
{
	munmap(s->mem, (size_t)NR_PAGES * PAGE);
	close(s->src.mem_fd);
	free(s->bitmap);
	free(s->later_log);
	free(s->peek_bm);
	free(s);
}

/* --- destination memory: a memory file of nr_pages holes, mapped to read it back; a write
 * out of bounds would grow the file, which guarded_free checks -------------------------------- */

struct guarded {
	int fd;
	uint8_t *mem;
	size_t len;
};

static void guarded_new(struct guarded *g, uint64_t nr_pages)
{
	g->len = nr_pages * PAGE;
	g->fd = memfd_create("test_precopy-dst", MFD_CLOEXEC);
	assert_true(g->fd >= 0);
	assert_int_equal(ftruncate(g->fd, (off_t)g->len), 0);
	g->mem = mmap(NULL, g->len ? g->len : PAGE, PROT_READ, MAP_SHARED, g->fd, 0);
	assert_true(g->mem != MAP_FAILED);
}

static void guarded_free(struct guarded *g)
{
	struct stat st;

	assert_int_equal(fstat(g->fd, &st), 0);
	if ((size_t)st.st_size != g->len)
		fail_msg("the receiver wrote outside the guest's memory: its file is %lld bytes, "
		         "not %zu",
		         (long long)st.st_size, g->len);
	munmap(g->mem, g->len ? g->len : PAGE);
	close(g->fd);
}

/* --- a migration: pc_send here, pc_receive in a thread, over a pipe ------------------------- */

/*
 * --streams over pipes, as the first stream: the sender's open makes one and queues its
 * reading end, the receiver's accept takes it from the queue (or, with bad_join, a connection
 * of another migration: a JOIN with a foreign token). A pipe, unlike a socket, does not say
 * what it holds (SIOCOUTQ), so the sender's drain wait, which would spend the test's clock
 * while a receiver thread starved of a CPU catches up, does not run.
 */
struct squeue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fds[STREAM_MAX_STREAMS];
	unsigned n, taken;
	bool fail_open, bad_join, closed;
};

static int sq_open(void *arg)
{
	struct squeue *q = arg;
	int sv[2];

	if (q->fail_open)
		return ERR_IO;
	assert_int_equal(pipe2(sv, O_CLOEXEC), 0);
	pthread_mutex_lock(&q->lock);
	if (q->closed) { /* the receiver is gone: refused */
		pthread_mutex_unlock(&q->lock);
		close(sv[0]);
		close(sv[1]);
		return ERR_IO;
	}
	assert_true(q->n < STREAM_MAX_STREAMS);
	q->fds[q->n++] = sv[0];
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return sv[1];
}

static int sq_accept(void *arg, int timeout_ms)
{
	struct squeue *q = arg;
	struct timespec until;
	int fd = ERR_TIMEOUT;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000 + 1;
	pthread_mutex_lock(&q->lock);
	while (q->taken == q->n && pthread_cond_timedwait(&q->cond, &q->lock, &until) == 0)
		;
	if (q->taken < q->n)
		fd = q->fds[q->taken++];
	pthread_mutex_unlock(&q->lock);
	if (fd >= 0 && q->bad_join) {
		uint8_t rec[STREAM_REC_HDR_SIZE + STREAM_TOKEN_LEN + 8], token[STREAM_TOKEN_LEN];
		int sv[2];

		memset(token, 0x77, sizeof(token));
		assert_int_equal(pipe2(sv, O_CLOEXEC), 0);
		stream_encode_join(rec + STREAM_REC_HDR_SIZE, sizeof(rec), token, 1);
		assert_int_equal(
		    fd_write_exact(sv[1], rec,
		                   stream_rec_seal(rec, STREAM_REC_JOIN, STREAM_TOKEN_LEN + 8)),
		    0);
		close(sv[1]);
		close(fd); /* the sender's own: it sees the receiver gone */
		fd = sv[0];
	}
	return fd;
}

/* The receiver is done: the ends it did not take go, as a receiver's exit closes them. */
static void sq_close_rest(struct squeue *q)
{
	pthread_mutex_lock(&q->lock);
	for (; q->taken < q->n; q->taken++)
		close(q->fds[q->taken]);
	q->closed = true;
	pthread_mutex_unlock(&q->lock);
}

struct recv_run {
	int fd;
	int mem_fd;
	uint64_t nr_pages;
	enum hv_domain_type type;
	unsigned vcpus;
	size_t close_after; /* > 0: read this many bytes, then close (a peer going away) */
	const struct pc_streams *extra;
	struct squeue *sq;
	struct pc_cpu_state state;
	struct mig_report report;
	int rc;
};

static void *receiver_thread(void *arg)
{
	struct recv_run *r = arg;

	if (r->close_after) {
		uint8_t *buf = malloc(r->close_after);

		r->rc = buf ? fd_read_exact(r->fd, buf, r->close_after) : ERR_NOMEM;
		free(buf);
	} else {
		r->rc = pc_receive(r->fd, r->mem_fd, r->nr_pages, r->type, r->vcpus, r->extra,
		                   &r->state, &r->report);
	}
	close(r->fd);
	if (r->sq)
		sq_close_rest(r->sq);
	return NULL;
}

struct mig {
	struct fsrc *s;
	struct squeue sq; /* params.streams > 1: the extra streams */
	struct pc_streams extra;
	bool recv_single; /* a receiver that takes no extra stream */
	struct mig_params params;
	struct mig_report report;
	struct guarded dst;
	struct recv_run recv;
	int rc;
};

static void run_migration(struct mig *m)
{
	struct timespec limit;
	pthread_t t;
	int p[2];

	assert_int_equal(pipe(p), 0);
	guarded_new(&m->dst, m->s->src.nr_pages);
	m->recv.fd = p[0];
	m->recv.mem_fd = m->dst.fd;
	m->recv.nr_pages = m->s->src.nr_pages;
	m->recv.type = m->s->src.type;
	m->recv.vcpus = m->s->src.nr_vcpus;
	if (m->params.streams > 1) {
		pthread_mutex_init(&m->sq.lock, NULL);
		pthread_cond_init(&m->sq.cond, NULL);
		m->extra = (struct pc_streams){.open = sq_open, .accept = sq_accept, .arg = &m->sq};
		m->params.extra = &m->extra;
		m->recv.extra = m->recv_single ? NULL : &m->extra;
		m->recv.sq = &m->sq;
	}
	assert_int_equal(pthread_create(&t, NULL, receiver_thread, &m->recv), 0);
	m->rc = pc_send(&m->s->src, p[1], &m->params, &m->report);
	close(p[1]);
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += JOIN_LIMIT_S;
	if (pthread_timedjoin_np(t, NULL, &limit) != 0)
		fail_msg("the receiver did not finish within %d s", JOIN_LIMIT_S);
	print_message(
	    "  send %s, receive %s: %u live rounds, %llu bytes, %s (%s)\n", err_name(m->rc),
	    err_name(m->recv.rc), m->report.nrounds, (unsigned long long)m->report.total_bytes,
	    pc_decision_name(m->report.decision), m->report.reason ? m->report.reason : "-");
}

static void mig_done(struct mig *m)
{
	if (m->params.streams > 1) {
		pthread_mutex_destroy(&m->sq.lock);
		pthread_cond_destroy(&m->sq.cond);
	}
	pc_cpu_state_free(&m->recv.state);
	guarded_free(&m->dst);
	fsrc_free(m->s);
}

/* The destination holds exactly the source's memory and vCPU state. */
static void assert_arrived(struct mig *m)
{
	assert_int_equal(m->rc, 0);
	assert_int_equal(m->recv.rc, 0);
	assert_int_equal(m->s->suspends, 1);
	for (uint64_t pfn = 0; pfn < NR_PAGES; pfn++)
		if (memcmp(m->dst.mem + pfn * PAGE, m->s->mem + pfn * PAGE, PAGE) != 0)
			fail_msg("page %llu differs on the destination", (unsigned long long)pfn);
	assert_int_equal(m->recv.state.nr_vcpus, m->s->src.nr_vcpus);
	assert_int_equal(m->recv.state.vcpu_len, VCPU_LEN);
	for (size_t i = 0; i < (size_t)m->recv.state.nr_vcpus * VCPU_LEN; i++)
		assert_int_equal(m->recv.state.vcpus[i], (uint8_t)(i * 3 + 1));
	/* both ends count the same pages (the receiver those of a verification pass too) */
	assert_int_equal(m->recv.report.total_pages,
	                 m->report.total_pages + (m->params.debug ? NR_PAGES : 0));
	assert_int_equal(m->recv.report.nrounds, m->report.nrounds);
}

/* Wire bytes of a PAGE_DATA record of count entries, data of them with content. */
static uint64_t batch_bytes(uint64_t count, uint64_t data)
{
	return STREAM_REC_HDR_SIZE + 8 + 8 * count + PAGE * data;
}

#define ROUND_END_BYTES 32
#define HEADER_BYTES    48
#define END_BYTES       16

static uint64_t vcpu_bytes(unsigned vcpus)
{
	return (uint64_t)vcpus * stream_rec_wire_size(8 + VCPU_LEN);
}

/* --- dirtying scripts ---------------------------------------------------------------------- */

/*
 * After round 0: 600 pages (599 written, page 701 cleared to zero), then 300, 100, and 5
 * more before the pause (within the 100).
 */
#define ZEROED_PFN 701
static void dirty_shrinking(struct fsrc *s, unsigned fetch)
{
	static const unsigned n[] = {599, 300, 100, 5};

	if (fetch < 4)
		for (uint64_t pfn = 0; pfn < n[fetch]; pfn++)
			touch(s, pfn + 1, false);
	if (fetch == 0)
		touch(s, ZEROED_PFN, true);
}

/*
 * As dirty_shrinking, but every write but the clearing changes 8 bytes of its page (a
 * counter), as QEMU's benchmark dirtier does: what a page delta is for.
 */
static void dirty_shrinking_words(struct fsrc *s, unsigned fetch)
{
	static const unsigned n[] = {599, 300, 100, 5};

	if (fetch < 4)
		for (uint64_t pfn = 1; pfn <= n[fetch]; pfn++) {
			uint64_t w;

			memcpy(&w, s->mem + pfn * PAGE + 64, 8);
			w += 0x0101010101010101ull;
			memcpy(s->mem + pfn * PAGE + 64, &w, 8);
			s->version[pfn]++;
			s->bitmap[pfn / 64] |= 1ull << (pfn % 64);
		}
	if (fetch == 0)
		touch(s, ZEROED_PFN, true);
	if (fetch == 1) {
		/* the cleared page written back as it was but for 8 bytes: a cache that still
		 * held its old copy would send a short delta against what the destination no
		 * longer has */
		fill_page(s->mem + ZEROED_PFN * PAGE, ZEROED_PFN, 0);
		s->mem[ZEROED_PFN * PAGE + 64] ^= 0xff;
		s->bitmap[ZEROED_PFN / 64] |= 1ull << (ZEROED_PFN % 64);
	}
}

/* The same 100 pages every round, forever. */
static void dirty_hundred(struct fsrc *s, unsigned fetch)
{
	(void)fetch;
	for (uint64_t pfn = 0; pfn < 100; pfn++)
		touch(s, 100 + pfn, false);
}

/* 10 pages only. */
static void dirty_ten(struct fsrc *s, unsigned fetch)
{
	(void)fetch;
	for (uint64_t pfn = 0; pfn < 10; pfn++)
		touch(s, 900 + pfn, false);
}

/* 600 pages every round: a guest that writes as fast as the link can carry it. */
static void dirty_hot(struct fsrc *s, unsigned fetch)
{
	unsigned n = 600;

	(void)fetch;
	/* a throttled guest writes less */
	if (s->last_throttle)
		n = n * (100 - s->last_throttle) / 100;
	for (uint64_t pfn = 0; pfn < n; pfn++)
		touch(s, 1 + pfn, false);
}

/* --- sender tests -------------------------------------------------------------------------- */

static void test_memory_arrives_identical(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PVH, 2)};
	const struct mig_round_report *r0 = &m.report.rounds[0], *r1 = &m.report.rounds[1];
	uint64_t live = 0;

	(void)state;
	m.s->dirty = dirty_shrinking;
	run_migration(&m);
	assert_arrived(&m);
	/* round 0: every non-zero page as data, the 256 zero pages not at all */
	assert_int_equal(r0->zero_pages, NR_PAGES / 4);
	assert_int_equal(r0->pages, NR_PAGES - NR_PAGES / 4);
	assert_int_equal(r0->bytes,
	                 batch_bytes(1024, 1024) + batch_bytes(512, 512) + ROUND_END_BYTES);
	/* round 1: a page that became zero: an entry without data, zero on the destination */
	assert_int_equal(r1->pages, 600);
	assert_int_equal(r1->zero_pages, 1);
	assert_int_equal(r1->bytes, batch_bytes(600, 599) + ROUND_END_BYTES);
	for (size_t i = 0; i < PAGE; i++)
		assert_int_equal(m.dst.mem[ZEROED_PFN * PAGE + i], 0);
	/* every byte accounted for */
	for (unsigned i = 0; i < m.report.nrounds; i++)
		live += m.report.rounds[i].bytes;
	/* the 100 left dirty by the last live round, with the 5 written before the pause */
	assert_int_equal(m.report.final_pages, 100);
	assert_int_equal(m.report.final_bytes, batch_bytes(100, 100) + vcpu_bytes(2));
	assert_int_equal(m.report.total_bytes,
	                 HEADER_BYTES + live + m.report.final_bytes + END_BYTES);
	assert_int_equal(m.recv.report.total_bytes, m.report.total_bytes - END_BYTES);
	assert_int_equal(m.report.nr_pages, NR_PAGES);
	assert_string_equal(m.report.dirtylog_method, "fake");
	mig_done(&m);
}

/* At round 0's first peek, a hundred pages ahead of it and page 10, sent already. */
static void peek_ahead(struct fsrc *s, unsigned peek)
{
	if (peek)
		return;
	for (uint64_t pfn = 1900; pfn < 2000; pfn++)
		touch_later(s, pfn);
	touch_later(s, 10);
}

/*
 * Pre-copy's skip: the first peek, past 20 ms into round 0 (the fake link's clock, which its
 * first record of 1024 pages takes to 42 ms; the sender waits for it there), sees pages
 * 1900-1999 written ahead of the round;
 * their piece (1792-2047) goes last and without them: they go once, in round 1, with page 10,
 * which the round had sent before. (With --streams, the first stream peeks when the clock it
 * shares with the others says: migrate-streams.test runs them under a real guest.)
 */
static void test_skip_rewritten_pages(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PVH, 1)};
	const struct mig_round_report *r0 = &m.report.rounds[0], *r1 = &m.report.rounds[1];

	(void)state;
	m.s->peek_dirty = peek_ahead;
	hold_for_peek = m.s;
	hold_after_us = __wrap_loop_now_us() + 20000;
	run_migration(&m);
	assert_arrived(&m);
	assert_true(m.s->peeks >= 1);
	/* of the 100, 75 held data before (every fourth page was a zero page) */
	assert_int_equal(r0->skipped, 100);
	assert_int_equal(r0->pages, NR_PAGES - NR_PAGES / 4 - 75);
	assert_int_equal(r1->pages, 101);
	assert_int_equal(r1->skipped, 0);
	assert_int_equal(m.report.total_pages, r0->pages + r1->pages);
	mig_done(&m);

	/* a source whose peek fails: nothing skipped, the pages go twice */
	m = (struct mig){.s = fsrc_new(HV_TYPE_PVH, 1)};
	m.s->dirty = dirty_ten;
	run_migration(&m);
	assert_arrived(&m);
	assert_int_equal(m.report.rounds[0].skipped, 0);
	assert_int_equal(m.report.rounds[0].pages, NR_PAGES - NR_PAGES / 4);
	mig_done(&m);
}

/*
 * The engine's own rate (engine_rate.h): a stream through pc_send and pc_receive here, timed by
 * this test's clock, which the fake link moves at LINK_BPS: the rate is at most the link's (the
 * sender's drain wait on the TCP socket sleeps too, more on a loaded machine, which the clock
 * counts). Bad sizes refused.
 */
static void test_engine_rate(void **state)
{
	double Bps = 0;

	(void)state;
	assert_int_equal(pc_engine_rate(8u << 20, &Bps), 0);
	print_message("  engine rate over the fake link: %.0f B/s (link %.0f)\n", Bps, LINK_BPS);
	assert_true(Bps > 0 && Bps < LINK_BPS * 1.01);
	assert_int_equal(pc_engine_rate(4096, &Bps), ERR_INVAL);
	assert_int_equal(pc_engine_rate(8ull << 30, &Bps), ERR_INVAL);
}

/* xen's stock policy: five iterations when more than 50 pages stay dirty. */
static void test_xen_policy_iterations(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};

	(void)state;
	m.params.policy.kind = PC_POLICY_XEN;
	m.s->dirty = dirty_hundred;
	run_migration(&m);
	assert_arrived(&m);
	assert_int_equal(m.report.nrounds, PC_XEN_MAX_ITERS);
	assert_int_equal(m.report.decision, PC_STOP_AND_COPY);
	assert_string_equal(m.report.reason, "iteration limit reached");
	for (unsigned i = 1; i < m.report.nrounds; i++)
		assert_int_equal(m.report.rounds[i].pages, 100);
	assert_int_equal(m.report.final_pages, 100);
	assert_int_equal(m.s->throttles, 0);
	mig_done(&m);
}

/* xen's stock policy: fewer than 50 dirty pages after round 0 stop it at once. */
static void test_xen_policy_few_dirty(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};

	(void)state;
	m.params.policy.kind = PC_POLICY_XEN;
	m.s->dirty = dirty_ten;
	run_migration(&m);
	assert_arrived(&m);
	assert_int_equal(m.report.nrounds, 1);
	assert_string_equal(m.report.reason, "fewer than 50 dirty pages");
	assert_int_equal(m.report.final_pages, 10);
	mig_done(&m);
}

/*
 * The adaptive policy at 100 MB/s with a 20 ms target: 600 and 300 dirty pages do not fit
 * (24.6 and 12.3 ms plus the 8 ms fixed cost), 100 pages do: three live rounds.
 */
static void test_adaptive_converges(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_HVM, 1)};

	(void)state;
	m.s->dirty = dirty_shrinking;
	run_migration(&m);
	assert_arrived(&m);
	assert_int_equal(m.report.nrounds, 3);
	assert_int_equal(m.report.rounds[0].dirty_after, 600);
	assert_int_equal(m.report.rounds[1].dirty_after, 300);
	assert_int_equal(m.report.rounds[2].dirty_after, 100);
	assert_int_equal(m.report.decision, PC_STOP_AND_COPY);
	assert_string_equal(m.report.reason, "dirty set fits the downtime target");
	/* the link's speed, as the test's clock measures it */
	for (unsigned i = 0; i < m.report.nrounds; i++) {
		double bw = m.report.rounds[i].bandwidth_Bps;

		if (bw < LINK_BPS * 0.99 || bw > LINK_BPS * 1.01)
			fail_msg("round %u measured %.0f B/s on a %.0f B/s link", i, bw, LINK_BPS);
	}
	assert_int_equal(m.report.final_pages, 100); /* pages 1..5 are within 1..100 */
	assert_int_equal(m.s->throttles, 0);
	/* the HVM device model came along */
	assert_int_equal(m.recv.state.dm_len, DM_LEN);
	assert_int_equal(m.recv.state.dm[0], 0xd5);
	mig_done(&m);
}

/* A dirty set that does not shrink, with --on-stall abort: ERR_NOTCONV, never suspended. */
static void test_not_converging_aborts(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PVH, 1)};

	(void)state;
	m.params.policy.on_stall = PC_STALL_ABORT;
	m.s->dirty = dirty_hot;
	run_migration(&m);
	assert_int_equal(m.rc, ERR_NOTCONV);
	assert_int_equal(m.report.decision, PC_ABORT);
	assert_non_null(strstr(m.report.reason, "not converging"));
	assert_int_equal(m.s->suspends, 0);
	assert_int_equal(m.s->throttles, 0);
	/* the receiver saw the stream end before END */
	assert_int_equal(m.recv.rc, ERR_IO);
	mig_done(&m);
}

/* The same guest with --on-stall throttle: slowed down until it converges. */
static void test_not_converging_throttled(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PVH, 1)};

	(void)state;
	m.params.policy.on_stall = PC_STALL_THROTTLE;
	m.s->dirty = dirty_hot;
	run_migration(&m);
	assert_arrived(&m);
	assert_true(m.s->throttles >= 1);
	assert_true(m.s->last_throttle >= PC_THROTTLE_MIN);
	assert_int_equal(m.report.max_throttle, m.s->last_throttle);
	assert_int_equal(m.report.decision, PC_STOP_AND_COPY);
	mig_done(&m);
}

/*
 * A bandwidth cap of 10 MB/s on a 100 MB/s link: the live rounds never send more bytes than
 * the cap allows in the (test clock's) time they took, plus one 10 ms burst; stop-and-copy,
 * the guest paused, runs at the link's speed without a single pause.
 */
static void test_bandwidth_cap(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};
	const uint64_t cap = 10000000;
	uint64_t live = 0, elapsed_us, end_us;

	(void)state;
	m.params.policy.kind = PC_POLICY_XEN;
	m.params.bandwidth_Bps = cap;
	m.s->dirty = dirty_hundred;
	run_migration(&m);
	end_us = (uint64_t)__wrap_loop_now_us();
	assert_arrived(&m);
	for (unsigned i = 0; i < m.report.nrounds; i++)
		live += m.report.rounds[i].bytes;
	live += HEADER_BYTES;
	elapsed_us = (uint64_t)(m.s->suspend_at_us - m.report.t_start_us);
	print_message("  live: %llu bytes in %llu us (cap allows %llu)\n", (unsigned long long)live,
	              (unsigned long long)elapsed_us,
	              (unsigned long long)(cap * elapsed_us / 1000000));
	if (live > cap * elapsed_us / 1000000 + cap / 100)
		fail_msg("%llu bytes sent in %llu us: more than %llu B/s allow",
		         (unsigned long long)live, (unsigned long long)elapsed_us,
		         (unsigned long long)cap);
	/*
	 * and used: a write larger than the 10 ms burst loses the credit of its own time on the
	 * link, so a little less than the cap (95% here), but not much less
	 */
	if (live < cap * elapsed_us / 1000000 * 90 / 100)
		fail_msg("%llu bytes sent in %llu us: far below the %llu B/s cap",
		         (unsigned long long)live, (unsigned long long)elapsed_us,
		         (unsigned long long)cap);
	/* each round too, within one burst */
	for (unsigned i = 0; i < m.report.nrounds; i++) {
		const struct mig_round_report *rr = &m.report.rounds[i];

		if (rr->bytes > cap * rr->duration_us / 1000000 + cap / 100)
			fail_msg("round %u: %llu bytes in %llu us, more than %llu B/s allow", i,
			         (unsigned long long)rr->bytes, (unsigned long long)rr->duration_us,
			         (unsigned long long)cap);
	}
	/* stop-and-copy: no sleep after the suspend, at the link's speed */
	assert_int_equal(nr_sleeps, m.s->sleeps_at_suspend);
	assert_true(end_us - (uint64_t)m.s->suspend_at_us <=
	            (uint64_t)((double)(m.report.final_bytes + END_BYTES) * 1e6 / LINK_BPS) + 2);
	mig_done(&m);
}

/* Ctrl-C during the live rounds: ERR_CANCELLED, the guest never paused (one stream or three). */
static void test_cancel_before_stop_and_copy(void **state)
{
	(void)state;
	for (unsigned streams = 1; streams <= 3; streams += 2) {
		struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};
		volatile sig_atomic_t cancel = 0;

		m.params.policy.kind = PC_POLICY_XEN;
		m.params.cancel = &cancel;
		m.params.streams = streams;
		m.s->dirty = dirty_hundred;
		m.s->cancel_at_fetch1 = &cancel;
		run_migration(&m);
		assert_int_equal(m.rc, ERR_CANCELLED);
		assert_int_equal(m.s->suspends, 0);
		assert_int_equal(m.report.nrounds, 2);
		assert_int_equal(m.recv.rc, ERR_IO);
		mig_done(&m);
	}
}

/* Cancelled before it starts: nothing but nothing is sent. */
static void test_cancel_at_once(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};
	volatile sig_atomic_t cancel = 1;

	(void)state;
	m.params.cancel = &cancel;
	run_migration(&m);
	assert_int_equal(m.rc, ERR_CANCELLED);
	assert_int_equal(m.s->suspends, 0);
	assert_int_equal(m.report.total_bytes, 0);
	assert_int_equal(m.recv.rc, ERR_IO);
	mig_done(&m);
}

/* The receiver goes away after 64 KiB: the sender's next write fails, ERR_IO. */
static void test_peer_closes_mid_stream(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};

	(void)state;
	m.recv.close_after = 65536;
	m.s->dirty = dirty_hundred;
	run_migration(&m);
	assert_int_equal(m.rc, ERR_IO);
	assert_int_equal(m.s->suspends, 0);
	assert_int_equal(m.recv.rc, 0);
	mig_done(&m);
}

/* The suspend fails: its error, after the live rounds. */
static void test_suspend_fails(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};

	(void)state;
	m.s->fail_suspend = ERR_TIMEOUT;
	m.s->dirty = dirty_ten;
	run_migration(&m);
	assert_int_equal(m.rc, ERR_TIMEOUT);
	assert_int_equal(m.recv.rc, ERR_IO);
	mig_done(&m);
}

/* --debug resends every page after stop-and-copy; the receiver compares. */
static void test_debug_verification(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};

	(void)state;
	m.params.debug = true;
	m.s->dirty = dirty_ten;
	run_migration(&m);
	assert_arrived(&m);
	assert_true(m.report.verified);
	assert_true(m.recv.report.verified);
	assert_int_equal(m.recv.report.verify_mismatches, 0);
	mig_done(&m);
}

/* --debug catches a page the dirty log missed before the pause: ERR_CHECKSUM there. */
static void test_debug_catches_missed_page(void **state)
{
	struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};

	(void)state;
	m.params.debug = true;
	m.s->dirty = dirty_ten;
	m.s->miss_final = true;
	run_migration(&m);
	assert_int_equal(m.rc, 0);
	assert_int_equal(m.recv.rc, ERR_CHECKSUM);
	assert_int_equal(m.recv.report.verify_mismatches, 1);
	mig_done(&m);
}

/*
 * --compress, every mode: the destination's memory equals the source's, the --debug pass
 * finds no page different, and both ends count the same deltas and compressed records. The
 * dirtying scripts re-send pages round after round and clear one page sent before (the
 * cache must forget it); a cache of half the guest makes pages evict each other. The even cases
 * change 8 bytes of a page per write, the odd ones rewrite it shifted (no delta is short enough:
 * the pages go whole, which an explicit "delta" must also get right).
 */
static void test_compress_modes(void **state)
{
	static const struct {
		const char *mode;
		uint64_t cache, cap;
		double link; /* the fake link's rate (0: LINK_BPS) */
	} cases[] = {
	    {"delta", NR_PAGES * PAGE, 0, 0},      {"lz4", 0, 0, 0},
	    {"delta", 512 * PAGE, 0, 0},           {"zstd", 0, 0, 0},
	    {"delta+lz4", NR_PAGES * PAGE, 0, 0},  {"delta+zstd", 0, 0, 0},
	    {"auto", NR_PAGES * PAGE, 4000000, 0}, {"auto", 0, 0, 1e13},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};
		unsigned mode = 0;

		print_message("  --compress %s, cache %llu, cap %llu B/s\n", cases[i].mode,
		              (unsigned long long)cases[i].cache, (unsigned long long)cases[i].cap);
		assert_int_equal(compress_parse(cases[i].mode, &mode), 0);
		m.params.compress = mode;
		m.params.compress_cache_bytes = cases[i].cache;
		m.params.bandwidth_Bps = cases[i].cap;
		link_Bps = cases[i].link ? cases[i].link : LINK_BPS;
		m.params.debug = true;
		m.s->dirty = i % 2 ? dirty_shrinking : dirty_shrinking_words;
		run_migration(&m);
		assert_arrived(&m);
		assert_true(m.recv.report.verified);
		assert_int_equal(m.recv.report.verify_mismatches, 0);
		assert_int_equal(m.recv.report.delta_pages, m.report.delta_pages);
		assert_int_equal(m.recv.report.records_lz4, m.report.records_lz4);
		assert_int_equal(m.recv.report.records_zstd, m.report.records_zstd);
		if (i % 2) /* cleared, and not written again */
			for (size_t k = 0; k < PAGE; k++)
				assert_int_equal(m.dst.mem[ZEROED_PFN * PAGE + k], 0);
		if ((mode & COMPRESS_DELTA) && i % 2 == 0) {
			assert_true(m.report.delta_pages > 0);
			/* a page is a delta only when the cache holds it */
			assert_true(m.report.delta_pages <= m.report.cache_hits);
			if (cases[i].cache)
				assert_true(m.report.cache_misses > 0);
		}
		if (mode & COMPRESS_LZ4)
			assert_true(m.report.records_lz4 > 0 && m.report.records_zstd == 0);
		if (mode & COMPRESS_ZSTD)
			assert_true(m.report.records_zstd > 0 && m.report.records_lz4 == 0);
		if (mode & (COMPRESS_LZ4 | COMPRESS_ZSTD))
			assert_true(m.report.compress_out < m.report.compress_in);
		/* auto on a 4 MB/s link: deltas and a compressor pay; unshaped (the fake clock:
		 * no link rate known) nothing is used */
		if (mode == COMPRESS_AUTO && cases[i].cap) {
			assert_true(i % 2 || m.report.delta_pages > 0);
			assert_true(m.report.records_lz4 + m.report.records_zstd > 0);
		} else if (mode == COMPRESS_AUTO) {
			assert_int_equal(
			    m.report.delta_pages + m.report.records_lz4 + m.report.records_zstd, 0);
		}
		mig_done(&m);
	}
}

/*
 * --streams: 2 and 3 streams (the guest's four 2 MiB chunks spread over them), plain and with
 * each kind of --compress, with the bandwidth cap split between them: the destination verifies
 * every page (a chunk whose stream sent nothing would differ), and both ends count the same
 * deltas and compressed records.
 */
static void test_streams(void **state)
{
	static const struct {
		unsigned streams;
		const char *mode;
		uint64_t cap;
	} cases[] = {
	    {2, "none", 0}, {3, "none", 0},       {2, "delta", 0},       {3, "delta+zstd", 0},
	    {2, "lz4", 0},  {3, "auto", 4000000}, {4, "none", 50000000},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mig m = {.s = fsrc_new(HV_TYPE_HVM, 2)};
		unsigned mode = 0;

		print_message("  --streams %u --compress %s, cap %llu B/s\n", cases[i].streams,
		              cases[i].mode, (unsigned long long)cases[i].cap);
		assert_int_equal(compress_parse(cases[i].mode, &mode), 0);
		m.params.streams = cases[i].streams;
		m.params.compress = mode;
		m.params.compress_cache_bytes = NR_PAGES * PAGE;
		m.params.bandwidth_Bps = cases[i].cap;
		m.params.debug = true;
		m.s->dirty = i % 2 ? dirty_shrinking : dirty_shrinking_words;
		run_migration(&m);
		assert_arrived(&m);
		assert_int_equal(m.report.streams, cases[i].streams);
		assert_int_equal(m.recv.report.streams, cases[i].streams);
		assert_int_equal(m.sq.n, cases[i].streams - 1);
		assert_true(m.recv.report.verified);
		assert_int_equal(m.recv.report.verify_mismatches, 0);
		assert_int_equal(m.recv.report.delta_pages, m.report.delta_pages);
		assert_int_equal(m.recv.report.records_lz4, m.report.records_lz4);
		assert_int_equal(m.recv.report.records_zstd, m.report.records_zstd);
		if ((mode & COMPRESS_DELTA) && i % 2 == 0)
			assert_true(m.report.delta_pages > 0);
		if (mode & (COMPRESS_LZ4 | COMPRESS_ZSTD))
			assert_true(m.report.records_lz4 + m.report.records_zstd > 0);
		mig_done(&m);
	}
}

/*
 * --streams under a --bandwidth cap: the streams share it (one bucket), and the policy plans
 * with the whole cap, as with one stream: the same rounds, round 0 near the cap. The guest
 * rewrites the same 100 pages (410 KB) every round: at the 20 MB/s cap they fit a 40 ms
 * downtime; at a quarter of it they would not, and the migration would throttle the guest.
 */
static void test_streams_share_the_cap(void **state)
{
	struct mig one = {.s = fsrc_new(HV_TYPE_PV, 1)}, four = {.s = fsrc_new(HV_TYPE_PV, 1)};
	double cap = 20000000, bw1, bw4;

	(void)state;
	one.params.bandwidth_Bps = four.params.bandwidth_Bps = (uint64_t)cap;
	one.params.policy.downtime_ms = four.params.policy.downtime_ms = 40;
	four.params.streams = 4;
	one.s->dirty = four.s->dirty = dirty_hundred;
	run_migration(&one);
	run_migration(&four);
	assert_arrived(&one);
	assert_arrived(&four);
	bw1 = one.report.rounds[0].bandwidth_Bps;
	bw4 = four.report.rounds[0].bandwidth_Bps;
	print_message("  round 0: %.0f B/s with one stream, %.0f B/s with four (cap %.0f)\n", bw1,
	              bw4, cap);
	assert_true(bw4 > 0.8 * cap && bw4 < 1.1 * cap);
	assert_true(bw1 > 0.8 * cap && bw1 < 1.1 * cap);
	assert_int_equal(four.report.nrounds, one.report.nrounds);
	assert_int_equal(four.report.max_throttle, 0);
	assert_int_equal(one.report.max_throttle, 0);
	mig_done(&one);
	mig_done(&four);
}

/*
 * --streams refused: a receiver that takes no extra stream, a sender that cannot open one, and
 * an extra connection of another migration. Each fails with its reason, before the guest stops.
 */
static void test_streams_refused(void **state)
{
	(void)state;
	for (int k = 0; k < 3; k++) {
		struct mig m = {.s = fsrc_new(HV_TYPE_PV, 1)};

		m.params.streams = 2;
		m.recv_single = k == 0;
		m.sq.fail_open = k == 1;
		m.sq.bad_join = k == 2;
		log_capture_clear(capture);
		run_migration(&m);
		assert_int_not_equal(m.rc, 0);
		assert_int_not_equal(m.recv.rc, 0);
		assert_int_equal(m.s->suspend_at_us, 0); /* the guest never paused */
		if (k == 0)
			assert_true(log_capture_contains(capture, "this receiver has the one"));
		else if (k == 1)
			assert_true(log_capture_contains(capture, "cannot open stream 2 of 2"));
		else
			assert_true(
			    log_capture_contains(capture, "not a stream of this migration"));
		mig_done(&m);
	}
}

/* --- receiver tests ------------------------------------------------------------------------ */

struct wire {
	uint8_t *buf;
	size_t len, cap;
};

static void wire_put(struct wire *w, const void *p, size_t n)
{
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2;
		w->buf = realloc(w->buf, w->cap);
		assert_non_null(w->buf);
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

/* Append a sealed record of type with body (len bytes). */
static void wire_rec(struct wire *w, uint32_t type, const void *body, uint32_t len)
{
	size_t size = stream_rec_wire_size(len);
	uint8_t *rec = calloc(1, size);

	assert_non_null(rec);
	if (len)
		memcpy(rec + STREAM_REC_HDR_SIZE, body, len);
	assert_int_equal(stream_rec_seal(rec, type, len), size);
	wire_put(w, rec, size);
	free(rec);
}

static void wire_header(struct wire *w, uint64_t nr_pages, uint32_t type, uint32_t vcpus)
{
	struct stream_header h = {.version = STREAM_VERSION,
	                          .page_size = PAGE,
	                          .nr_pages = nr_pages,
	                          .domain_type = type,
	                          .nr_vcpus = vcpus};
	uint8_t body[32];

	assert_int_equal(stream_encode_header(body, sizeof(body), &h), 32);
	wire_rec(w, STREAM_REC_HEADER, body, 32);
}

static void wire_vcpu(struct wire *w, uint32_t id)
{
	uint8_t blob[VCPU_LEN], body[8 + VCPU_LEN];

	memset(blob, (int)id + 1, sizeof(blob));
	assert_int_equal(stream_encode_blob(body, sizeof(body), id, blob, VCPU_LEN),
	                 (int)sizeof(body));
	wire_rec(w, STREAM_REC_VCPU_STATE, body, sizeof(body));
}

/* One PAGE_DATA record with raw pfn entries (any value) and one data page per non-zero one. */
static void wire_pages(struct wire *w, const uint64_t *pfns, uint32_t count, uint32_t flags)
{
	size_t len = 8 + 8 * (size_t)count;
	uint8_t *body;
	size_t off;

	for (uint32_t i = 0; i < count; i++)
		len += (pfns[i] & STREAM_PFN_ZERO) ? 0 : PAGE;
	body = calloc(1, len);
	assert_non_null(body);
	memcpy(body, &count, 4); /* little-endian hosts only, as the codec's tests */
	memcpy(body + 4, &flags, 4);
	off = 8;
	for (uint32_t i = 0; i < count; i++, off += 8)
		memcpy(body + off, &pfns[i], 8);
	for (uint32_t i = 0; i < count; i++)
		if (!(pfns[i] & STREAM_PFN_ZERO)) {
			fill_page(body + off, pfns[i] & STREAM_PFN_MASK, 1);
			off += PAGE;
		}
	wire_rec(w, STREAM_REC_PAGE_DATA, body, (uint32_t)len);
	free(body);
}

static void wire_round_end(struct wire *w, uint32_t round, uint64_t pages)
{
	uint8_t body[16];

	assert_int_equal(stream_encode_round_end(body, sizeof(body), round, pages), 16);
	wire_rec(w, STREAM_REC_ROUND_END, body, 16);
}

/* A complete, valid stream for a PV guest of 8 pages and 2 vCPUs. */
#define SMALL_PAGES 8
static void wire_valid(struct wire *w)
{
	static const uint64_t pfns[] = {7, 3 | STREAM_PFN_ZERO};

	wire_header(w, SMALL_PAGES, HV_TYPE_PV, 2);
	wire_pages(w, pfns, 2, 0);
	wire_round_end(w, 0, 2);
	wire_vcpu(w, 0);
	wire_vcpu(w, 1);
	wire_rec(w, STREAM_REC_END, NULL, 0);
}

/* Receive bytes into a guarded memory of nr_pages; returns pc_receive's result. */
static int receive_bytes(const uint8_t *bytes, size_t len, uint64_t nr_pages,
                         enum hv_domain_type type, unsigned vcpus, struct guarded *g)
{
	struct pc_cpu_state st;
	struct mig_report rep;
	char path[] = "/tmp/test_precopy_XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	unlink(path);
	if (len)
		assert_int_equal(fd_write_exact(fd, bytes, len), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	guarded_new(g, nr_pages);
	rc = pc_receive(fd, g->fd, nr_pages, type, vcpus, NULL, &st, &rep);
	close(fd);
	if (rc) {
		/* nothing is handed back on failure */
		assert_null(st.vcpus);
		assert_null(st.dm);
	}
	pc_cpu_state_free(&st);
	return rc;
}

static int receive_small(const struct wire *w, struct guarded *g)
{
	return receive_bytes(w->buf, w->len, SMALL_PAGES, HV_TYPE_PV, 2, g);
}

static void test_receive_valid_small(void **state)
{
	struct wire w = {0};
	struct guarded g;
	uint8_t want[PAGE];

	(void)state;
	wire_valid(&w);
	assert_int_equal(receive_small(&w, &g), 0);
	fill_page(want, 7, 1);
	assert_memory_equal(g.mem + 7 * PAGE, want, PAGE);
	memset(want, 0, PAGE);
	for (uint64_t pfn = 0; pfn < 7; pfn++)
		assert_memory_equal(g.mem + pfn * PAGE, want, PAGE);
	guarded_free(&g);
	free(w.buf);
}

/* A header for another guest: pages, type, vCPUs. */
static void test_receive_header_mismatch(void **state)
{
	static const struct {
		uint64_t pages;
		uint32_t type, vcpus;
	} foreign[] = {{SMALL_PAGES + 1, HV_TYPE_PV, 2},
	               {SMALL_PAGES, HV_TYPE_HVM, 2},
	               {SMALL_PAGES, HV_TYPE_PV, 1}};

	(void)state;
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		struct wire w = {0};
		struct guarded g;

		wire_header(&w, foreign[i].pages, foreign[i].type, foreign[i].vcpus);
		wire_rec(&w, STREAM_REC_END, NULL, 0);
		assert_int_equal(receive_small(&w, &g), ERR_PROTO);
		guarded_free(&g);
		free(w.buf);
	}
}

/* The offsets tried: every byte of the records' headers and small bodies, a sample of the page. */
static bool sampled(size_t off, size_t len)
{
	return off < 256 || off + 256 >= len || off % 61 == 0;
}

/* Every truncation of a valid stream: ERR_IO, never a crash or a success. */
static void test_receive_truncated(void **state)
{
	struct wire w = {0};

	(void)state;
	wire_valid(&w);
	for (size_t len = 0; len < w.len; len++) {
		struct guarded g;
		int rc;

		if (!sampled(len, w.len))
			continue;
		rc = receive_small(&(struct wire){.buf = w.buf, .len = len}, &g);

		if (rc != ERR_IO)
			fail_msg("stream cut at %zu of %zu bytes: %s, not ERR_IO", len, w.len,
			         err_name(rc));
		guarded_free(&g);
	}
	free(w.buf);
}

/* Every single flipped bit: refused (checksum, or header bounds), never applied silently. */
static void test_receive_corrupted(void **state)
{
	struct wire w = {0};
	unsigned checksum = 0, proto = 0, io = 0;

	(void)state;
	wire_valid(&w);
	for (size_t off = 0; off < w.len; off++) {
		struct guarded g;
		int rc;

		if (!sampled(off, w.len))
			continue;
		w.buf[off] ^= 0x10;
		rc = receive_small(&w, &g);
		w.buf[off] ^= 0x10;
		guarded_free(&g);
		checksum += rc == ERR_CHECKSUM;
		proto += rc == ERR_PROTO;
		io += rc == ERR_IO; /* a length grown past the end of the stream */
		if (rc != ERR_CHECKSUM && rc != ERR_PROTO && rc != ERR_IO)
			fail_msg("bit flipped at byte %zu of %zu: %s", off, w.len, err_name(rc));
	}
	print_message("  corruptions: %u checksum, %u protocol, %u truncated\n", checksum, proto,
	              io);
	assert_true(checksum > 0);
	assert_true(proto > 0);
	free(w.buf);
}

/* Well-formed records (valid checksums) with contents a receiver must refuse. */
static void test_receive_bad_records(void **state)
{
	static const uint64_t out_of_range[] = {SMALL_PAGES};
	static const uint64_t huge[] = {STREAM_PFN_MASK};
	static const uint64_t reserved[] = {1ull << 60};
	enum {
		BAD_PFN,
		BAD_PFN_HUGE,
		BAD_RESERVED_BITS,
		BAD_VCPU_ID,
		BAD_VCPU_TWICE,
		BAD_VCPU_MISSING,
		BAD_ROUND_ORDER,
		BAD_VERIFY_PAGES,
		BAD_SECOND_HEADER,
		BAD_NO_HEADER,
		BAD_COUNT
	};

	(void)state;
	for (int bad = 0; bad < BAD_COUNT; bad++) {
		struct wire w = {0};
		struct guarded g;
		int rc;

		if (bad != BAD_NO_HEADER)
			wire_header(&w, SMALL_PAGES, HV_TYPE_PV, 2);
		switch (bad) {
		case BAD_PFN:
			wire_pages(&w, out_of_range, 1, 0);
			break;
		case BAD_PFN_HUGE:
			wire_pages(&w, huge, 1, 0);
			break;
		case BAD_RESERVED_BITS:
			wire_pages(&w, reserved, 1, 0);
			break;
		case BAD_VCPU_ID:
			wire_vcpu(&w, 2);
			break;
		case BAD_VCPU_TWICE:
			wire_vcpu(&w, 1);
			wire_vcpu(&w, 1);
			break;
		case BAD_VCPU_MISSING:
			wire_vcpu(&w, 0);
			wire_rec(&w, STREAM_REC_END, NULL, 0);
			break;
		case BAD_ROUND_ORDER:
			wire_round_end(&w, 1, 0);
			break;
		case BAD_VERIFY_PAGES:
			wire_pages(&w, (const uint64_t[]){1}, 1, STREAM_PAGES_VERIFY);
			break;
		case BAD_SECOND_HEADER:
			wire_header(&w, SMALL_PAGES, HV_TYPE_PV, 2);
			break;
		case BAD_NO_HEADER:
			wire_vcpu(&w, 0);
			break;
		}
		if (bad != BAD_VCPU_MISSING) {
			wire_vcpu(&w, 0);
			wire_vcpu(&w, 1);
			wire_rec(&w, STREAM_REC_END, NULL, 0);
		}
		rc = receive_small(&w, &g);
		if (rc != ERR_PROTO)
			fail_msg("bad record case %d: %s, not ERR_PROTO", bad, err_name(rc));
		guarded_free(&g);
		free(w.buf);
	}
}

/* An HVM stream without its device model; a record length past every bound. */
static void test_receive_hvm_without_dm_and_huge_length(void **state)
{
	struct wire w = {0};
	struct guarded g;
	uint8_t hdr[STREAM_REC_HDR_SIZE] = {0};
	uint32_t type = STREAM_REC_PAGE_DATA, length = STREAM_MAX_BODY + 8;
	char want[128];

	(void)state;
	wire_header(&w, SMALL_PAGES, HV_TYPE_HVM, 1);
	wire_vcpu(&w, 0);
	wire_rec(&w, STREAM_REC_END, NULL, 0);
	assert_int_equal(receive_bytes(w.buf, w.len, SMALL_PAGES, HV_TYPE_HVM, 1, &g), ERR_PROTO);
	guarded_free(&g);
	free(w.buf);

	memset(&w, 0, sizeof(w));
	wire_header(&w, SMALL_PAGES, HV_TYPE_PV, 2);
	memcpy(hdr, &type, 4);
	memcpy(hdr + 4, &length, 4);
	wire_put(&w, hdr, sizeof(hdr));
	log_capture_clear(capture);
	assert_int_equal(receive_small(&w, &g), ERR_PROTO);
	/* the message names the record as it came */
	snprintf(want, sizeof(want), "malformed record header (type 2, length %u)", length);
	if (!log_capture_contains(capture, want))
		fail_msg("no '%s' in the log: '%s'", want,
		         log_capture_count(capture) ? log_capture_get(capture, 0) : "");
	guarded_free(&g);
	free(w.buf);
}

/* What pc_send writes is what pc_receive accepts, and its first record is the header. */
static void test_stream_to_file_round_trip(void **state)
{
	struct fsrc *s = fsrc_new(HV_TYPE_PV, 1);
	struct mig_params params = {.policy.kind = PC_POLICY_XEN};
	struct mig_report rep;
	struct guarded g;
	char path[] = "/tmp/test_precopy_XXXXXX";
	int fd = mkstemp(path);
	uint8_t *bytes;
	off_t len;

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	s->dirty = dirty_ten;
	assert_int_equal(pc_send(&s->src, fd, &params, &rep), 0);
	len = lseek(fd, 0, SEEK_CUR);
	assert_int_equal((uint64_t)len, rep.total_bytes);
	bytes = malloc((size_t)len);
	assert_non_null(bytes);
	assert_int_equal(pread(fd, bytes, (size_t)len, 0), len);
	close(fd);
	assert_int_equal(bytes[0], STREAM_REC_HEADER);
	assert_int_equal(receive_bytes(bytes, (size_t)len, NR_PAGES, HV_TYPE_PV, 1, &g), 0);
	assert_memory_equal(g.mem, s->mem, (size_t)NR_PAGES * PAGE);
	guarded_free(&g);
	/* a receiver configured with more vCPUs refuses the same stream */
	assert_int_equal(receive_bytes(bytes, (size_t)len, NR_PAGES, HV_TYPE_PV, 2, &g), ERR_PROTO);
	guarded_free(&g);
	free(bytes);
	fsrc_free(s);
}

static int reset_clock(void **state)
{
	(void)state;
	__atomic_store_n(&nr_sleeps, 0, __ATOMIC_SEQ_CST);
	link_Bps = LINK_BPS;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_memory_arrives_identical, reset_clock),
	    cmocka_unit_test_setup(test_skip_rewritten_pages, reset_clock),
	    cmocka_unit_test_setup(test_engine_rate, reset_clock),
	    cmocka_unit_test_setup(test_xen_policy_iterations, reset_clock),
	    cmocka_unit_test_setup(test_xen_policy_few_dirty, reset_clock),
	    cmocka_unit_test_setup(test_adaptive_converges, reset_clock),
	    cmocka_unit_test_setup(test_not_converging_aborts, reset_clock),
	    cmocka_unit_test_setup(test_not_converging_throttled, reset_clock),
	    cmocka_unit_test_setup(test_bandwidth_cap, reset_clock),
	    cmocka_unit_test_setup(test_cancel_before_stop_and_copy, reset_clock),
	    cmocka_unit_test_setup(test_cancel_at_once, reset_clock),
	    cmocka_unit_test_setup(test_peer_closes_mid_stream, reset_clock),
	    cmocka_unit_test_setup(test_suspend_fails, reset_clock),
	    cmocka_unit_test_setup(test_debug_verification, reset_clock),
	    cmocka_unit_test_setup(test_debug_catches_missed_page, reset_clock),
	    cmocka_unit_test_setup(test_compress_modes, reset_clock),
	    cmocka_unit_test_setup(test_streams, reset_clock),
	    cmocka_unit_test_setup(test_streams_refused, reset_clock),
	    cmocka_unit_test_setup(test_streams_share_the_cap, reset_clock),
	    cmocka_unit_test(test_receive_valid_small),
	    cmocka_unit_test(test_receive_header_mismatch),
	    cmocka_unit_test(test_receive_truncated),
	    cmocka_unit_test(test_receive_corrupted),
	    cmocka_unit_test(test_receive_bad_records),
	    cmocka_unit_test(test_receive_hvm_without_dm_and_huge_length),
	    cmocka_unit_test(test_stream_to_file_round_trip),
	};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	capture = log_sink_capture();
	log_set_sink(capture);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_set_sink(NULL);
	capture->destroy(capture);
	return rc;
}
