/*
 * postcopy.c - the post-copy phase (postcopy.h): the source's server of page requests and
 * background pushes, the destination's userfaultfd fault service, and the channel between.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fault.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/precopy/postcopy.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/precopy/precopy_int.h"

#define PC_PUSH_PAGES 16u /* pages per pushed record: a fault waits behind one (64 KiB) */
/*
 * A push waits while this much of the channel has not left this host (SIOCOUTQ: unsent, and
 * sent but not acknowledged, which includes what waits in a shaped link's queue), so that a
 * page asked for waits behind at most that much; checked every PC_PUSH_POLL_US meanwhile.
 * TCP_NOTSENT_LOWAT bounds only the unsent part: a 1 Gbit/s link's queue then held a megabyte,
 * and a fault waited 3 ms for its page.
 */
#define PC_PUSH_QUEUE   (128u * 1024)
#define PC_PUSH_POLL_US 200
#define PC_MAX_WAITING  256u /* faults whose wait is timed at once */
#define PC_SMALL_RECORD (STREAM_REC_HDR_SIZE + 8 + STREAM_MAX_BATCH * 8 + 8)

struct pc_waiting {
	uint64_t pfn;
	int64_t t0_us;
};

struct pc_postcopy {
	bool sender;
	int fd;        /* the post-copy channel */
	int mem_fd;    /* sender: the guest's memory file */
	int uffd;      /* receiver: the guest's missing-page faults */
	uint64_t base; /* receiver: guest memory in the guest's process */
	uint64_t nr_pages;
	uint64_t *need;  /* the pages the destination does not hold yet */
	uint64_t *hot;   /* sender: to push first */
	uint64_t *asked; /* receiver: asked for, not arrived */
	uint64_t left;   /* bits set in need */
	unsigned prepage;
	uint64_t bandwidth_Bps;
	pthread_t thread;
	bool started, joined;
	/* settled: the phase succeeded or failed (rc, and final: its figures then); a receiver's
	 * thread lingers after success, zero-filling holes the guest touches, until stop_fd */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool settled;
	struct mig_postcopy_report final;
	int stop_fd;
	int keep_fd;   /* receiver: the backend's connection held for the phase (-1) */
	bool got_done; /* sender: the destination's figures came with DONE */
	volatile int stop;
	int rc;
	struct mig_postcopy_report st;
	struct pc_waiting waiting[PC_MAX_WAITING];
	unsigned nwaiting;
	uint32_t *lat_us;
	size_t nlat, caplat;
};

bool pc_postcopy_supported(char *why, size_t len)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM};
	const char *no = getenv("XLEXT_NO_USERFAULTFD");
	int fd;

	if (no && !strcmp(no, "1")) {
		snprintf(why, len, "userfaultfd is switched off here (XLEXT_NO_USERFAULTFD=1)");
		return false;
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(why, len,
		         "userfaultfd(2) failed: %s (a kernel without it, or "
		         "vm.unprivileged_userfaultfd=0 for a non-root receiver)",
		         strerror(errno));
		return false;
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0 || !(api.features & UFFD_FEATURE_MISSING_SHMEM)) {
		snprintf(why, len,
		         "this kernel's userfaultfd cannot catch missing pages of "
		         "shared memory (UFFD_FEATURE_MISSING_SHMEM)");
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

/* --- the channel --------------------------------------------------------------------------- */

/*
 * Write on the channel: non-blocking once the phase runs (chan_nonblock), so that a peer that
 * stops reading fails the phase after PC_POSTCOPY_STALL_MS instead of holding this end.
 */
static int chan_send(int fd, const void *buf, size_t len)
{
	int64_t deadline = loop_now_ms() + PC_POSTCOPY_STALL_MS;
	const char *p = buf;

	while (len) {
		/* MSG_NOSIGNAL: a peer gone is an error here, not a SIGPIPE for the process */
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int64_t left = deadline - loop_now_ms();

			if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
				return ERR_TIMEOUT;
			continue;
		}
		if (n < 0)
			return errno == EPIPE || errno == ECONNRESET ? ERR_IO
			                                             : err_from_errno(errno);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void chan_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int chan_write(int fd, uint8_t *buf, uint32_t type, int body_len)
{
	if (body_len < 0)
		return body_len;
	return chan_send(fd, buf, stream_rec_seal(buf, type, (uint32_t)body_len));
}

/* One record of at most cap bytes (body and padding) from fd within timeout_ms. */
static int chan_read(int fd, uint8_t *body, size_t cap, int timeout_ms, struct stream_rec *rec)
{
	uint8_t hdr[STREAM_REC_HDR_SIZE];
	uint64_t csum;
	uint32_t padded;
	int rc = fd_read_exact_timeout(fd, hdr, sizeof(hdr), timeout_ms);

	if (rc)
		return rc == ERR_TIMEOUT ? rc : ERR_IO;
	rc = stream_rec_parse_header(hdr, &rec->type, &rec->length, &csum);
	if (rc)
		return rc;
	padded = (rec->length + 7u) & ~7u;
	if (padded > cap)
		return ERR_PROTO;
	for (uint32_t done = 0; !rc && done < padded; done += PC_IO_MAX_BYTES)
		rc = fd_read_exact_timeout(
		    fd, body + done,
		    padded - done < PC_IO_MAX_BYTES ? padded - done : PC_IO_MAX_BYTES, timeout_ms);
	if (rc)
		return rc == ERR_TIMEOUT ? rc : ERR_IO;
	rc = stream_rec_check(rec->type, rec->length, csum, body);
	rec->body = body;
	return rc;
}

static uint64_t count_bits(const uint64_t *bm, uint64_t nr_pages)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < (nr_pages + 63) / 64; w++)
		n += (uint64_t)__builtin_popcountll(bm[w]);
	return n;
}

static bool test_bit(const uint64_t *bm, uint64_t pfn)
{
	return (bm[pfn / 64] >> (pfn % 64)) & 1;
}

static void clear_bit(uint64_t *bm, uint64_t pfn)
{
	bm[pfn / 64] &= ~(1ull << (pfn % 64));
}

/* The first set bit of bm at or after i, or n. */
static uint64_t next_set(const uint64_t *bm, uint64_t n, uint64_t i)
{
	while (i < n) {
		uint64_t w = bm[i / 64] & (~0ull << (i % 64));

		if (w) {
			i = (i & ~63ull) + (uint64_t)__builtin_ctzll(w);
			return i < n ? i : n;
		}
		i = (i & ~63ull) + 64;
	}
	return n;
}

/* The phase has its outcome: rc, and its figures as they are now. */
static void settle(struct pc_postcopy *p, int rc)
{
	pthread_mutex_lock(&p->lock);
	p->rc = rc;
	p->final = p->st;
	p->settled = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static struct pc_postcopy *phase_new(bool sender, int fd, uint64_t nr_pages, uint64_t *need)
{
	struct pc_postcopy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->sender = sender;
	p->fd = fd;
	p->mem_fd = -1;
	p->uffd = -1;
	p->keep_fd = -1;
	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->nr_pages = nr_pages;
	p->need = need;
	p->left = count_bits(need, nr_pages);
	p->st.used = true;
	p->st.needed = p->left;
	return p;
}

static void phase_free(struct pc_postcopy *p)
{
	if (p->fd >= 0)
		close(p->fd);
	if (p->mem_fd >= 0)
		close(p->mem_fd);
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->keep_fd >= 0)
		close(p->keep_fd);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->need);
	free(p->hot);
	free(p->asked);
	free(p->lat_us);
	free(p);
}

/* --- the sender ---------------------------------------------------------------------------- */

int pc_postcopy_connect(const struct mig_params *params, const uint8_t *token, uint32_t index)
{
	uint8_t buf[PC_SMALL_RECORD];
	char text[STREAM_MAX_READY_TEXT + 1];
	struct stream_rec rec;
	uint32_t status = 0;
	int fd, rc;

	if (!params->extra || !params->extra->open) {
		log_error("migration: post-copy needs a connection of its own to the destination "
		          "(the direct transport, --tcp)");
		return ERR_INVAL;
	}
	fd = params->extra->open(params->extra->arg);
	if (fd < 0) {
		log_error("migration: cannot open the post-copy channel to the destination");
		return fd;
	}
	rc = chan_write(fd, buf, STREAM_REC_JOIN,
	                stream_encode_join(buf + STREAM_REC_HDR_SIZE,
	                                   sizeof(buf) - STREAM_REC_HDR_SIZE, token, index));
	if (!rc)
		rc = chan_read(fd, buf, sizeof(buf), PC_POSTCOPY_READY_MS, &rec);
	if (!rc)
		rc = stream_decode_ready(&rec, &status, text, sizeof(text));
	if (rc) {
		log_error("migration: the destination did not take the post-copy channel (%s); "
		          "its log says why",
		          err_str(rc));
	} else if (status) {
		log_error("migration: the destination cannot receive post-copy: %s", text);
		rc = ERR_NOTSUP;
	}
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int pc_postcopy_await_dropped(int fd, int timeout_ms)
{
	uint8_t buf[PC_SMALL_RECORD];
	struct stream_rec rec;
	uint64_t pages;
	int rc = chan_read(fd, buf, sizeof(buf), timeout_ms, &rec);

	if (!rc)
		rc = stream_decode_dropped(&rec, &pages);
	if (rc)
		log_error("migration: the destination did not drop its stale pages before the "
		          "switch-over (%s)",
		          err_str(rc));
	return rc;
}

int pc_postcopy_say_dropped(int fd, uint64_t pages)
{
	uint8_t buf[STREAM_REC_HDR_SIZE + 8];

	return chan_write(fd, buf, STREAM_REC_POSTCOPY_DROPPED,
	                  stream_encode_dropped(buf + STREAM_REC_HDR_SIZE, 8, pages));
}

/* Wait out the cap for n more bytes: the ms to wait before pushing, 0 to push now. */
static int bucket_wait_ms(struct pc_postcopy *p, double *tokens, int64_t *last_us)
{
	int64_t now = loop_now_us();
	double burst = (double)p->bandwidth_Bps / 100.0;

	if (!p->bandwidth_Bps)
		return 0;
	*tokens += (double)(now - *last_us) * (double)p->bandwidth_Bps / 1e6;
	if (*tokens > burst)
		*tokens = burst;
	*last_us = now;
	if (*tokens >= 0)
		return 0;
	return (int)(-*tokens * 1000.0 / (double)p->bandwidth_Bps) + 1;
}

static bool queue_full(int fd)
{
	int unsent = 0;

	return ioctl(fd, SIOCOUTQ, &unsent) == 0 && unsent > (int)PC_PUSH_QUEUE;
}

/* Write the batch as one PAGE_DATA record. */
static int send_batch(struct pc_postcopy *p, struct stream_batch *b)
{
	struct iovec iov[2];
	size_t len;

	if (stream_batch_empty(b))
		return 0;
	len = stream_batch_seal(b, iov);
	p->st.bytes += len;
	for (int i = 0; i < 2; i++) {
		int rc = iov[i].iov_len ? chan_send(p->fd, iov[i].iov_base, iov[i].iov_len) : 0;

		if (rc)
			return rc;
	}
	return 0;
}

/* Add the needed pages of [pfn, pfn + n) to the batch (read from guest memory), clearing them. */
static int add_run(struct pc_postcopy *p, struct stream_batch *b, uint64_t pfn, uint32_t n,
                   uint64_t *added)
{
	uint8_t *tail = stream_batch_tail(b);
	size_t len = (size_t)n * PAGE, done = 0;

	while (done < len) {
		ssize_t r = pread(p->mem_fd, tail + done, len - done, (off_t)(pfn * PAGE + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			log_error_errno(errno, "post-copy: cannot read guest page %llu",
			                (unsigned long long)pfn);
			return r < 0 ? err_from_errno(errno) : ERR_IO;
		}
		done += (size_t)r;
	}
	stream_batch_add_read(b, pfn, n, false);
	for (uint32_t i = 0; i < n; i++)
		clear_bit(p->need, pfn + i);
	p->left -= n;
	*added += n;
	return 0;
}

/* Answer a PAGE_REQ: the pages asked for that the destination still lacks, at once. */
static int serve_request(struct pc_postcopy *p, struct stream_batch *b,
                         const struct stream_rec *rec, uint64_t *cursor)
{
	const uint8_t *pfns;
	uint32_t count;
	bool sent_first = false;
	int rc = stream_decode_req(rec, p->nr_pages, &pfns, &count);

	if (rc) {
		log_error("post-copy: a malformed page request from the destination");
		return rc;
	}
	stream_batch_reset(b, STREAM_PAGES_DEMAND);
	for (uint32_t i = 0; i < count && !rc; i++) {
		uint64_t pfn;

		memcpy(&pfn, pfns + (size_t)i * 8, 8);
		pfn = le64toh(pfn);
		if (!test_bit(p->need, pfn))
			continue; /* on its way already */
		/* the first page (a vCPU waits for it) goes alone, the rest by PC_PUSH_PAGES */
		if ((b->count == 1 && !sent_first) || b->count >= PC_PUSH_PAGES ||
		    !stream_batch_room(b)) {
			sent_first = true;
			rc = send_batch(p, b);
			stream_batch_reset(b, STREAM_PAGES_DEMAND);
		}
		if (!rc)
			rc = add_run(p, b, pfn, 1, &p->st.pulled);
		*cursor = pfn + 1; /* the push goes on where the guest works */
	}
	if (!rc)
		rc = send_batch(p, b);
	stream_batch_reset(b, 0);
	return rc;
}

/* Push up to PC_PUSH_PAGES of what the destination lacks: hot pages first, then onward. */
static int push_some(struct pc_postcopy *p, struct stream_batch *b, uint64_t *cursor)
{
	uint64_t n = p->nr_pages, pushed = 0;
	int rc = 0;

	stream_batch_reset(b, 0);
	while (pushed < PC_PUSH_PAGES && p->left && !rc) {
		uint64_t pfn = n, end;

		while (p->hot) {
			pfn = next_set(p->hot, n, 0);
			if (pfn >= n) {
				free(p->hot);
				p->hot = NULL;
				break;
			}
			clear_bit(p->hot, pfn);
			if (test_bit(p->need, pfn))
				break;
			pfn = n;
		}
		if (pfn >= n) {
			pfn = next_set(p->need, n, *cursor < n ? *cursor : 0);
			if (pfn >= n)
				pfn = next_set(p->need, n, 0);
			if (pfn >= n)
				break;
		}
		for (end = pfn + 1; end < n && end - pfn < PC_PUSH_PAGES - pushed &&
		                    end - pfn < stream_batch_room(b) && test_bit(p->need, end) &&
		                    !(p->hot && test_bit(p->hot, end));
		     end++)
			;
		rc = add_run(p, b, pfn, (uint32_t)(end - pfn), &pushed);
		if (!p->hot)
			*cursor = end;
	}
	p->st.pushed += pushed;
	if (!rc)
		rc = send_batch(p, b);
	return rc;
}

static void *serve_main(void *arg)
{
	struct pc_postcopy *p = arg;
	uint8_t *body = malloc(PC_SMALL_RECORD);
	struct stream_batch b;
	int64_t last_heard = loop_now_ms(), last_us = loop_now_us();
	double tokens = 0;
	uint64_t cursor = 0;
	int rc = stream_batch_init(&b);

	if (!body && !rc)
		rc = ERR_NOMEM;
	while (!rc && !p->stop) {
		struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
		int wait_ms = PC_POSTCOPY_STALL_MS, n;
		bool push = false;

		struct timespec ts;

		if (p->left) {
			wait_ms = bucket_wait_ms(p, &tokens, &last_us);
			push = !wait_ms && !queue_full(p->fd);
		}
		ts.tv_sec = push ? 0 : wait_ms / 1000;
		ts.tv_nsec = push ? 0 : (long)(wait_ms % 1000) * 1000000;
		if (!push && p->left && !wait_ms) /* the queue is full: look again soon */
			ts.tv_nsec = PC_PUSH_POLL_US * 1000;
		n = ppoll(&pfd, 1, &ts, NULL);
		if (n < 0 && errno != EINTR) {
			rc = err_from_errno(errno);
			break;
		}
		if (n > 0) {
			struct stream_rec rec;
			struct stream_done done;

			rc = chan_read(p->fd, body, PC_SMALL_RECORD, PC_POSTCOPY_STALL_MS, &rec);
			if (rc) {
				log_error("post-copy: the destination's channel %s with %llu pages "
				          "not sent yet",
				          rc == ERR_IO ? "closed" : "failed",
				          (unsigned long long)p->left);
				break;
			}
			last_heard = loop_now_ms();
			p->st.bytes += stream_rec_wire_size(rec.length);
			if (rec.type == STREAM_REC_PAGE_REQ) {
				rc = serve_request(p, &b, &rec, &cursor);
			} else if (rec.type == STREAM_REC_POSTCOPY_DONE &&
			           !stream_decode_done(&rec, &done)) {
				/* what the guest saw is the destination's to say */
				p->st.faults = done.faults;
				p->st.prepaged = done.prepaged;
				p->st.zero = done.zero;
				p->st.fault_p50_us = done.fault_p50_us;
				p->st.fault_p99_us = done.fault_p99_us;
				p->st.fault_max_us = done.fault_max_us;
				p->got_done = true;
				p->st.t_end_us = loop_now_us();
				if (p->left) {
					log_error("post-copy: the destination says it holds every "
					          "page, but %llu were never sent",
					          (unsigned long long)p->left);
					rc = ERR_PROTO;
				}
				break;
			} else {
				log_error("post-copy: unexpected %s record from the destination",
				          stream_rec_name(rec.type));
				rc = ERR_PROTO;
			}
			continue;
		}
		if (push) {
			uint64_t before = p->st.bytes;

			rc = push_some(p, &b, &cursor);
			tokens -= (double)(p->st.bytes - before);
			if (!p->left)
				p->st.t_end_us = loop_now_us();
			fault_point("send:postcopy-push");
		} else if (!p->left &&
		           loop_now_us() - p->st.t_end_us > PC_POSTCOPY_STALL_MS * 1000ll &&
		           loop_now_ms() - last_heard > PC_POSTCOPY_STALL_MS) {
			log_error("post-copy: the destination has every page but did not say so "
			          "within %d s",
			          PC_POSTCOPY_STALL_MS / 1000);
			rc = ERR_TIMEOUT;
		}
	}
	if (p->stop && !rc)
		rc = ERR_CANCELLED;
	stream_batch_free(&b);
	free(body);
	settle(p, rc);
	return NULL;
}

int pc_postcopy_serve(struct mig_report *report, int fd, int mem_fd, uint64_t nr_pages,
                      uint64_t *need, const uint64_t *hot, uint64_t bandwidth_Bps)
{
	struct pc_postcopy *p = phase_new(true, fd, nr_pages, need);
	size_t bytes = (nr_pages + 63) / 64 * 8;

	if (!p) {
		free(need);
		close(fd);
		return ERR_NOMEM;
	}
	p->bandwidth_Bps = bandwidth_Bps;
	chan_nonblock(fd);
	p->mem_fd = fcntl(mem_fd, F_DUPFD_CLOEXEC, 0);
	if (hot && (p->hot = malloc(bytes)))
		memcpy(p->hot, hot, bytes);
	p->st.t_start_us = loop_now_us();
	report->pc = p;
	if (p->mem_fd < 0 || pthread_create(&p->thread, NULL, serve_main, p)) {
		report->pc = NULL;
		phase_free(p);
		return ERR_NOMEM;
	}
	p->started = true;
	return 0;
}

/* --- the receiver -------------------------------------------------------------------------- */

int pc_postcopy_expect(struct mig_report *report, int fd, uint64_t nr_pages, uint64_t *need,
                       unsigned prepage)
{
	struct pc_postcopy *p = phase_new(false, fd, nr_pages, need);

	if (!p) {
		free(need);
		close(fd);
		return ERR_NOMEM;
	}
	p->prepage = prepage;
	p->asked = calloc((nr_pages + 63) / 64, 8);
	if (!p->asked) {
		phase_free(p);
		return ERR_NOMEM;
	}
	report->pc = p;
	return 0;
}

const uint64_t *pc_postcopy_need(const struct mig_report *report)
{
	return report->pc ? report->pc->need : NULL;
}

static void note_latency(struct pc_postcopy *p, uint64_t pfn, int64_t now)
{
	for (unsigned i = 0; i < p->nwaiting; i++) {
		if (p->waiting[i].pfn != pfn)
			continue;
		if (p->nlat == p->caplat) {
			size_t cap = p->caplat ? p->caplat * 2 : 1024;
			uint32_t *n = realloc(p->lat_us, cap * sizeof(*n));

			if (!n)
				return;
			p->lat_us = n;
			p->caplat = cap;
		}
		p->lat_us[p->nlat++] = (uint32_t)(now - p->waiting[i].t0_us);
		p->waiting[i--] = p->waiting[--p->nwaiting];
	}
}

/* Install n pages at pfn (data: their contents, NULL: zeros); a page already there is left. */
static int install(struct pc_postcopy *p, uint64_t pfn, uint32_t n, const uint8_t *data)
{
	for (uint32_t i = 0; i < n;) {
		int r;

		if (data) {
			struct uffdio_copy c = {.dst = p->base + (pfn + i) * PAGE,
			                        .src =
			                            (uint64_t)(uintptr_t)(data + (size_t)i * PAGE),
			                        .len = (uint64_t)(n - i) * PAGE};

			r = ioctl(p->uffd, UFFDIO_COPY, &c);
			if (r < 0 && errno == EEXIST && c.copy <= 0)
				c.copy = PAGE; /* that page is there: wake its waiters, go on */
			if (r < 0 && errno != EEXIST && errno != EAGAIN && c.copy <= 0)
				return err_from_errno(errno);
			if (c.copy <= 0)
				continue; /* EAGAIN: the guest's map changed, again */
			if (r < 0) {
				struct uffdio_range w = {.start = p->base + (pfn + i) * PAGE,
				                         .len = PAGE};

				ioctl(p->uffd, UFFDIO_WAKE, &w);
			}
			i += (uint32_t)((uint64_t)c.copy / PAGE);
		} else {
			struct uffdio_zeropage z = {
			    .range = {.start = p->base + (pfn + i) * PAGE, .len = PAGE}};

			r = ioctl(p->uffd, UFFDIO_ZEROPAGE, &z);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r < 0 && errno == EEXIST)
				ioctl(p->uffd, UFFDIO_WAKE, &z.range);
			else if (r < 0)
				return err_from_errno(errno);
			i++;
		}
	}
	return 0;
}

/* A PAGE_DATA record on the channel: each page the guest still lacks is installed. */
static int take_pages(struct pc_postcopy *p, const struct stream_rec *rec)
{
	struct stream_pages sp;
	const uint8_t *data;
	int64_t now;
	int rc = stream_decode_pages(rec, p->nr_pages, &sp);

	if (rc || (sp.flags & STREAM_PAGES_VERIFY)) {
		log_error("post-copy: a malformed page record from the source");
		return rc ? rc : ERR_PROTO;
	}
	data = sp.data;
	/* a run of pages with data, consecutive and all still missing, is one UFFDIO_COPY */
	uint64_t run_pfn = 0;
	const uint8_t *run_data = NULL;
	uint32_t run = 0;

	for (uint32_t i = 0; i < sp.count && !rc; i++) {
		uint64_t e, pfn;
		bool zero;

		memcpy(&e, sp.pfns + (size_t)i * 8, 8);
		e = le64toh(e);
		zero = e & STREAM_PFN_ZERO;
		pfn = e & STREAM_PFN_MASK;
		if (run && (zero || pfn != run_pfn + run || !test_bit(p->need, pfn))) {
			rc = install(p, run_pfn, run, run_data);
			run = 0;
		}
		if (!rc && test_bit(p->need, pfn)) {
			if (zero) {
				rc = install(p, pfn, 1, NULL);
			} else if (!run++) {
				run_pfn = pfn;
				run_data = data;
			}
			clear_bit(p->need, pfn);
			clear_bit(p->asked, pfn);
			p->left--;
			if (sp.flags & STREAM_PAGES_DEMAND)
				p->st.pulled++;
			else
				p->st.pushed++;
			if (zero)
				p->st.zero++;
		}
		if (!zero)
			data += PAGE;
	}
	if (run && !rc)
		rc = install(p, run_pfn, run, run_data);
	now = loop_now_us();
	for (uint32_t i = 0; i < sp.count && p->nwaiting; i++) {
		uint64_t e;

		memcpy(&e, sp.pfns + (size_t)i * 8, 8);
		note_latency(p, le64toh(e) & STREAM_PFN_MASK, now);
	}
	return rc;
}

/* Ask for the faulting pages req[0..nreq) (their vCPUs wait) and then their neighbours. */
static int send_request(struct pc_postcopy *p, uint64_t *req, uint32_t *nreq, const uint64_t *near,
                        uint32_t *nnear)
{
	uint8_t *buf;
	int rc;

	if (!*nreq && !*nnear)
		return 0;
	buf = malloc(PC_SMALL_RECORD);
	if (!buf)
		return ERR_NOMEM;
	memcpy(req + *nreq, near, *nnear * sizeof(*near));
	*nreq += *nnear;
	rc = chan_write(p->fd, buf, STREAM_REC_PAGE_REQ,
	                stream_encode_req(buf + STREAM_REC_HDR_SIZE,
	                                  PC_SMALL_RECORD - STREAM_REC_HDR_SIZE, req, *nreq));
	p->st.bytes += stream_rec_wire_size(8 + *nreq * 8);
	*nreq = *nnear = 0;
	free(buf);
	return rc;
}

/* The guest's faults so far: missing pages asked for (with neighbours), holes zero-filled. */
static int take_faults(struct pc_postcopy *p)
{
	uint64_t req[STREAM_MAX_BATCH], near[STREAM_MAX_BATCH];
	uint32_t nreq = 0, nnear = 0;
	int rc = 0;

	for (;;) {
		struct uffd_msg msg[16];
		ssize_t r = read(p->uffd, msg, sizeof(msg));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			return r < 0 ? err_from_errno(errno) : ERR_IO;
		for (size_t k = 0; k < (size_t)r / sizeof(msg[0]) && !rc; k++) {
			uint64_t addr = msg[k].arg.pagefault.address & ~(uint64_t)(PAGE - 1), pfn;

			if (msg[k].event != UFFD_EVENT_PAGEFAULT || addr < p->base)
				continue;
			pfn = (addr - p->base) / PAGE;
			if (pfn >= p->nr_pages)
				continue;
			p->st.faults++;
			if (!test_bit(p->need, pfn)) { /* a hole at the source, or just arrived */
				rc = install(p, pfn, 1, NULL);
				continue;
			}
			if (p->nwaiting < PC_MAX_WAITING)
				p->waiting[p->nwaiting++] =
				    (struct pc_waiting){.pfn = pfn, .t0_us = loop_now_us()};
			if (test_bit(p->asked, pfn))
				continue;
			if (nreq + nnear + 1 + p->prepage > STREAM_MAX_BATCH)
				rc = send_request(p, req, &nreq, near, &nnear);
			p->asked[pfn / 64] |= 1ull << (pfn % 64);
			req[nreq++] = pfn;
			for (uint64_t q = pfn + 1; q < p->nr_pages && q <= pfn + p->prepage; q++) {
				if (!test_bit(p->need, q) || test_bit(p->asked, q))
					continue;
				p->asked[q / 64] |= 1ull << (q % 64);
				near[nnear++] = q;
				p->st.prepaged++;
			}
		}
	}
	if (!rc)
		rc = send_request(p, req, &nreq, near, &nnear);
	return rc;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The faults' waits: p50, p99 and the longest. */
static void latencies(struct pc_postcopy *p)
{
	if (!p->nlat)
		return;
	qsort(p->lat_us, p->nlat, sizeof(*p->lat_us), cmp_u32);
	p->st.fault_p50_us = p->lat_us[p->nlat / 2];
	p->st.fault_p99_us = p->lat_us[(p->nlat * 99) / 100];
	p->st.fault_max_us = p->lat_us[p->nlat - 1];
}

static void *fault_main(void *arg)
{
	struct pc_postcopy *p = arg;
	uint8_t *body = malloc(STREAM_MAX_BODY + 8);
	int64_t last_data = loop_now_ms();
	int rc = body ? 0 : ERR_NOMEM;

	while (!rc && p->left && !p->stop) {
		struct pollfd pfd[2] = {{.fd = p->uffd, .events = POLLIN},
		                        {.fd = p->fd, .events = POLLIN}};
		int n = poll(pfd, 2, 1000);

		if (n < 0 && errno != EINTR) {
			rc = err_from_errno(errno);
			break;
		}
		if (n > 0 && pfd[0].revents)
			rc = take_faults(p);
		if (!rc && n > 0 && pfd[1].revents) {
			struct stream_rec rec;

			rc =
			    chan_read(p->fd, body, STREAM_MAX_BODY + 8, PC_POSTCOPY_STALL_MS, &rec);
			if (!rc && rec.type == STREAM_REC_PAGE_DATA) {
				rc = take_pages(p, &rec);
			} else if (!rc) {
				log_error("post-copy: unexpected %s record from the source",
				          stream_rec_name(rec.type));
				rc = ERR_PROTO;
			}
			p->st.bytes += rc ? 0 : stream_rec_wire_size(rec.length);
			last_data = loop_now_ms();
		}
		if (!rc && loop_now_ms() - last_data > PC_POSTCOPY_STALL_MS) {
			log_error("post-copy: no page from the source for %d s",
			          PC_POSTCOPY_STALL_MS / 1000);
			rc = ERR_TIMEOUT;
		}
	}
	if (!rc && p->stop)
		rc = ERR_CANCELLED;
	if (rc && rc != ERR_CANCELLED)
		log_error("post-copy: the source's channel %s with %llu pages still there "
		          "(%s)",
		          rc == ERR_IO ? "closed" : "failed", (unsigned long long)p->left,
		          err_str(rc));
	if (!rc) {
		uint8_t buf[STREAM_REC_HDR_SIZE + 48];
		struct stream_done done;

		p->st.t_end_us = loop_now_us();
		latencies(p);
		done = (struct stream_done){.pages = p->st.needed,
		                            .faults = p->st.faults,
		                            .prepaged = p->st.prepaged,
		                            .zero = p->st.zero,
		                            .fault_p50_us = (uint32_t)p->st.fault_p50_us,
		                            .fault_p99_us = (uint32_t)p->st.fault_p99_us,
		                            .fault_max_us = (uint32_t)p->st.fault_max_us};
		rc = chan_write(p->fd, buf, STREAM_REC_POSTCOPY_DONE,
		                stream_encode_done(buf + STREAM_REC_HDR_SIZE, 48, &done));
		if (rc) /* every page is here: the guest is whole whatever the source heard */
			log_warn(
			    "post-copy: every page arrived but the source could not be told so "
			    "(%s); its paused copy must be destroyed, never resumed",
			    err_str(rc));
		rc = 0;
	}
	free(body);
	settle(p, rc);
	/* every page is here, but the range stays armed until the domain is told: a hole the
	 * guest touches meanwhile is zero-filled here, not left blocked */
	while (!rc && !p->stop) {
		struct pollfd pfd[2] = {{.fd = p->uffd, .events = POLLIN},
		                        {.fd = p->stop_fd, .events = POLLIN}};

		if (poll(pfd, 2, 1000) > 0 && pfd[0].revents && take_faults(p))
			break;
	}
	return NULL;
}

int pc_postcopy_attach(struct mig_report *report, int uffd, uint64_t base, int keep_fd)
{
	struct pc_postcopy *p = report->pc;

	if (!p || p->sender) {
		close(uffd);
		if (keep_fd >= 0)
			close(keep_fd);
		return ERR_INVAL;
	}
	p->uffd = uffd;
	p->keep_fd = keep_fd;
	chan_nonblock(p->fd);
	p->base = base;
	p->st.t_start_us = loop_now_us();
	if (pthread_create(&p->thread, NULL, fault_main, p))
		return ERR_NOMEM;
	p->started = true;
	return 0;
}

/* --- either end ----------------------------------------------------------------------------- */

int pc_postcopy_keep_fd(const struct mig_report *report)
{
	return report->pc ? report->pc->keep_fd : -1;
}

bool pc_postcopy_failed(const struct mig_report *report)
{
	struct pc_postcopy *p = report->pc;
	bool failed;

	if (!p || !p->started)
		return false;
	pthread_mutex_lock(&p->lock);
	failed = p->settled && p->rc;
	pthread_mutex_unlock(&p->lock);
	return failed;
}

int pc_postcopy_wait(struct mig_report *report)
{
	struct pc_postcopy *p = report->pc;

	if (!p)
		return 0;
	if (!p->started)
		return ERR_INVAL;
	pthread_mutex_lock(&p->lock);
	while (!p->settled)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	if (!p->joined && !report->postcopy.used) { /* once */
		report->postcopy = p->final;
		report->postcopy.failed = p->rc != 0;
		report->total_bytes += p->final.bytes;
	}
	return p->rc;
}

/* Stop the phase's thread (it may linger, serving holes) and free it; cancelled: say so. */
static void phase_stop(struct mig_report *report, bool cancelled)
{
	struct pc_postcopy *p = report->pc;

	p->stop = 1;
	if (p->stop_fd >= 0 && write(p->stop_fd, &(uint64_t){1}, 8) < 0)
		log_debug("post-copy: cannot wake its thread: %s", strerror(errno));
	shutdown(p->fd, SHUT_RDWR);
	if (p->started && !p->joined)
		pthread_join(p->thread, NULL);
	p->joined = true;
	if (cancelled) {
		report->postcopy = p->st;
		report->postcopy.failed = true;
	}
	phase_free(p);
	report->pc = NULL;
}

int pc_postcopy_finish(struct mig_report *report)
{
	int rc = pc_postcopy_wait(report);

	if (report->pc)
		phase_stop(report, false);
	return rc;
}

void pc_postcopy_cancel(struct mig_report *report)
{
	struct pc_postcopy *p = report->pc;

	if (!p)
		return;
	phase_stop(report, true);
}
