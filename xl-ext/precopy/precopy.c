/*
 * precopy.c - the pre-copy sender of the sim backend's stream (the receiver: receive.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fault.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/precopy/precopy_int.h"
#include "xl-ext/precopy/stream.h"

void pc_cpu_state_free(struct pc_cpu_state *s)
{
	free(s->vcpus);
	free(s->dm);
	memset(s, 0, sizeof(*s));
}

/* --- sender: output with a token bucket -------------------------------------------------- */

struct pc_out {
	int fd;
	uint64_t rate_Bps; /* 0: unlimited */
	bool limited;
	double tokens;
	int64_t last_us;
	uint64_t bytes;
	volatile sig_atomic_t *cancel; /* checked before every write: Ctrl-C acts within a batch */
	int stall_ms; /* > 0: fd is non-blocking, and the receiver must take data this often */
	bool stalled;
};

/* Wait until fd takes data again, at most o->stall_ms. */
static int out_wait(struct pc_out *o)
{
	struct pollfd p = {.fd = o->fd, .events = POLLOUT};
	int rc = poll(&p, 1, o->stall_ms);

	if (rc < 0 && errno == EINTR)
		return o->cancel && *o->cancel ? ERR_CANCELLED : 0;
	if (rc < 0)
		return err_from_errno(errno);
	if (rc == 0) {
		o->stalled = true;
		log_error("migration stream: the receiver took no data for %d s (stopped, or the "
		          "path to it went silent)",
		          o->stall_ms / 1000);
		return ERR_TIMEOUT;
	}
	return 0;
}

static void bucket_take(struct pc_out *o, size_t n)
{
	int64_t now = loop_now_us();
	double burst = (double)o->rate_Bps / 100.0; /* 10 ms worth */

	o->tokens += (double)(now - o->last_us) * (double)o->rate_Bps / 1e6;
	if (o->tokens > burst)
		o->tokens = burst;
	o->last_us = now;
	o->tokens -= (double)n;
	if (o->tokens < 0) {
		double wait_us = -o->tokens * 1e6 / (double)o->rate_Bps;
		struct timespec ts = {
		    .tv_sec = (time_t)(wait_us / 1e6),
		    .tv_nsec = (long)((wait_us - (double)(time_t)(wait_us / 1e6) * 1e6) * 1000)};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

/* The first at most PC_IO_MAX_BYTES of iov (iovcnt entries) as up to max entries in part. */
static int io_slice(const struct iovec *iov, int iovcnt, struct iovec *part, int max)
{
	size_t left = PC_IO_MAX_BYTES;
	int n = 0;

	for (int i = 0; i < iovcnt && n < max && left; i++) {
		part[n] = iov[i];
		if (part[n].iov_len > left)
			part[n].iov_len = left;
		left -= part[n].iov_len;
		n++;
	}
	return n;
}

static int out_writev(struct pc_out *o, struct iovec *iov, int iovcnt)
{
	size_t total = 0;

	if (o->cancel && *o->cancel)
		return ERR_CANCELLED;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (o->limited && o->rate_Bps)
		bucket_take(o, total);
	o->bytes += total;
	while (iovcnt > 0) {
		struct iovec part[4];
		int nparts = io_slice(iov, iovcnt, part, 4);
		ssize_t n = writev(o->fd, part, nparts);

		if (n < 0 && errno == EINTR && o->cancel && *o->cancel)
			return ERR_CANCELLED;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && o->stall_ms > 0) {
			int rc = out_wait(o);

			if (rc)
				return rc;
			continue;
		}
		if (n < 0)
			return ERR_IO;
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Encode and write a small record whose body the encoder puts in buf. */
static int out_record(struct pc_out *o, uint8_t *buf, uint32_t type, int body_len)
{
	struct iovec iov;

	if (body_len < 0)
		return body_len;
	iov.iov_base = buf;
	iov.iov_len = stream_rec_seal(buf, type, (uint32_t)body_len);
	return out_writev(o, &iov, 1);
}

static int flush_batch(struct pc_out *o, struct stream_batch *b)
{
	struct iovec iov[2];
	int rc;

	if (stream_batch_empty(b))
		return 0;
	stream_batch_seal(b, iov);
	rc = out_writev(o, iov, 2);
	stream_batch_reset(b, b->flags);
	return rc;
}

struct pc_send_ctx {
	const struct pc_source *src;
	const struct mig_params *params;
	struct mig_report *rep;
	struct pc_out out;
	struct stream_batch batch;
	const uint64_t *bitmap; /* the source's, overwritten by every fetch */
	uint64_t *pending;      /* what the next round (or stop-and-copy) must send */
	unsigned throttle_applied;
	size_t bm_words;
};

/* Take the fetched dirty set: replace (after a live round) or add to (stop-and-copy) pending. */
static void take_dirty(struct pc_send_ctx *c, bool merge)
{
	for (size_t w = 0; w < c->bm_words; w++)
		c->pending[w] = merge ? c->pending[w] | c->bitmap[w] : c->bitmap[w];
}

static uint64_t count_pending(const struct pc_send_ctx *c)
{
	uint64_t n = 0;

	for (size_t w = 0; w < c->bm_words; w++)
		n += (uint64_t)__builtin_popcountll(c->pending[w]);
	return n;
}

/*
 * Note how much memory the guest's file has allocated (st_blocks): before, at most during and
 * after the migration. Sending must not add to it; only the guest's own writes may.
 */
static void sample_ram(struct pc_send_ctx *c)
{
	struct mig_report *r = c->rep;
	struct stat st;
	uint64_t bytes;

	if (fstat(c->src->mem_fd, &st) < 0)
		return;
	bytes = (uint64_t)st.st_blocks * 512;
	if (!r->source_ram_sampled)
		r->source_ram_before = bytes;
	r->source_ram_sampled = true;
	if (bytes > r->source_ram_max)
		r->source_ram_max = bytes;
	r->source_ram_after = bytes;
}

static bool cancelled(const struct pc_send_ctx *c)
{
	return c->params->cancel && *c->params->cancel;
}

/*
 * Read n pages from pfn on out of the guest's memory file into buf. A hole reads as zeros and
 * is not allocated by reading (a read of a never-written page through a mapping would be), so
 * sending never grows the guest's memory.
 */
static int read_pages(const struct pc_send_ctx *c, uint8_t *buf, uint64_t pfn, size_t n)
{
	size_t len = n * PAGE, done = 0;

	while (done < len) {
		size_t want = len - done < PC_IO_MAX_BYTES ? len - done : PC_IO_MAX_BYTES;
		ssize_t r = pread(c->src->mem_fd, buf + done, want, (off_t)(pfn * PAGE + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			log_error_errno(errno, "migration: cannot read guest pages %llu-%llu",
			                (unsigned long long)pfn, (unsigned long long)(pfn + n - 1));
			return err_from_errno(errno);
		}
		if (r == 0) {
			memset(buf + done, 0, len - done); /* past the end of the file: zeros */
			break;
		}
		done += (size_t)r;
	}
	return 0;
}

/*
 * Send the n pages from pfn on, read straight into the batch. In round 0 (skip_zero) a zero
 * page is left out, later it is sent as an entry without data. *zero_r counts zero pages seen.
 */
static int send_run(struct pc_send_ctx *c, uint64_t pfn, uint64_t n, bool skip_zero,
                    uint64_t *sent_r, uint64_t *zero_r)
{
	int rc = 0;

	while (n && !rc) {
		uint32_t k = stream_batch_room(&c->batch), z;

		if (k > n)
			k = (uint32_t)n;
		rc = read_pages(c, stream_batch_tail(&c->batch), pfn, k);
		if (rc)
			return rc;
		z = stream_batch_add_read(&c->batch, pfn, k, skip_zero);
		*zero_r += z;
		*sent_r += skip_zero ? k - z : k;
		if (stream_batch_full(&c->batch))
			rc = flush_batch(&c->out, &c->batch);
		pfn += k;
		n -= k;
	}
	return rc;
}

/*
 * The first page at or after pfn that holds data (SEEK_DATA), or nr_pages when only holes
 * follow; *end_r is where that data ends (SEEK_HOLE). Files without holes are all data.
 */
static int next_data(const struct pc_send_ctx *c, uint64_t pfn, uint64_t *start_r, uint64_t *end_r)
{
	uint64_t n = c->src->nr_pages;
	off_t data, hole = -1;

	data = lseek(c->src->mem_fd, (off_t)(pfn * PAGE), SEEK_DATA);
	if (data < 0 && errno == ENXIO) {
		*start_r = *end_r = n;
		return 0;
	}
	if (data >= 0)
		hole = lseek(c->src->mem_fd, data, SEEK_HOLE);
	if (data < 0 || hole < 0) {
		log_error_errno(errno, "migration: cannot find the written pages of guest memory");
		return err_from_errno(errno);
	}
	*start_r = (uint64_t)data / PAGE;
	*end_r = ((uint64_t)hole + PAGE - 1) / PAGE;
	if (*start_r > n)
		*start_r = n;
	if (*end_r > n)
		*end_r = n;
	return 0;
}

/*
 * Send every page: the data the kernel says the guest's memory holds, holes skipped (round 0)
 * or sent as zero entries (holes_as_zero, the verification pass) without being read.
 */
static int send_all(struct pc_send_ctx *c, bool holes_as_zero, uint64_t *sent_r, uint64_t *zero_r)
{
	uint64_t n = c->src->nr_pages, pfn = 0;
	int rc = 0;

	while (pfn < n && !rc) {
		uint64_t start = n, end = n;

		rc = next_data(c, pfn, &start, &end);
		if (rc)
			break;
		*zero_r += start - pfn;
		for (; holes_as_zero && pfn < start && !rc; pfn++) {
			stream_batch_add(&c->batch, pfn, NULL);
			(*sent_r)++;
			if (stream_batch_full(&c->batch))
				rc = flush_batch(&c->out, &c->batch);
		}
		if (!rc && start < end)
			rc = send_run(c, start, end - start, !holes_as_zero, sent_r, zero_r);
		pfn = end > start ? end : n;
		if (!rc && cancelled(c))
			rc = ERR_CANCELLED;
	}
	return rc;
}

/* The first set (want = 1) or clear (want = 0) bit of bitmap at or after i, or n. */
static uint64_t next_bit(const uint64_t *bitmap, uint64_t n, uint64_t i, int want)
{
	while (i < n) {
		uint64_t w = bitmap[i / 64];

		if (!want)
			w = ~w;
		w &= ~0ull << (i % 64);
		if (w) {
			i = (i & ~63ull) + (uint64_t)__builtin_ctzll(w);
			return i < n ? i : n;
		}
		i = (i & ~63ull) + 64;
	}
	return n;
}

/* Send the pending pages, a run of consecutive ones at a time. */
static int send_dirty(struct pc_send_ctx *c, uint64_t *sent_r, uint64_t *zero_r)
{
	uint64_t n = c->src->nr_pages, pfn = 0;
	int rc = 0;

	while (!rc && (pfn = next_bit(c->pending, n, pfn, 1)) < n) {
		uint64_t end = next_bit(c->pending, n, pfn, 0);

		rc = send_run(c, pfn, end - pfn, false, sent_r, zero_r);
		pfn = end;
		if (!rc && cancelled(c))
			rc = ERR_CANCELLED;
	}
	return rc;
}

/* Send round 0 (full: every page of the guest) or the pending pages. */
static int send_pages(struct pc_send_ctx *c, bool full, uint64_t *sent_r, uint64_t *zero_r)
{
	int rc;

	*sent_r = 0;
	*zero_r = 0;
	rc = full ? send_all(c, false, sent_r, zero_r) : send_dirty(c, sent_r, zero_r);
	if (!rc)
		rc = flush_batch(&c->out, &c->batch);
	return rc;
}

static void progress_line(const struct mig_round_report *rr, uint64_t nr_pages)
{
	fprintf(stderr,
	        "migration: round %u: %llu pages (%.1f MiB) in %.0f ms, %.0f MB/s, dirtied %.1f "
	        "MiB/s, %llu dirty (%.1f%% of memory)%s\n",
	        rr->round, (unsigned long long)rr->pages, (double)rr->bytes / (1 << 20),
	        (double)rr->duration_us / 1000, rr->bandwidth_Bps / 1e6,
	        rr->dirty_rate_pps * PAGE / (1 << 20), (unsigned long long)rr->dirty_after,
	        100.0 * (double)rr->dirty_after / (double)nr_pages,
	        rr->throttle_pct ? " [throttled]" : "");
}

static int send_header(struct pc_send_ctx *c)
{
	static uint8_t buf[STREAM_REC_HDR_SIZE + 64];
	struct stream_header h = {.version = STREAM_VERSION,
	                          .page_size = PAGE,
	                          .nr_pages = c->src->nr_pages,
	                          .domain_type = c->src->type,
	                          .nr_vcpus = c->src->nr_vcpus};

	return out_record(&c->out, buf, STREAM_REC_HEADER,
	                  stream_encode_header(buf + STREAM_REC_HDR_SIZE, 64, &h));
}

static int send_round_end(struct pc_send_ctx *c, uint32_t round, uint64_t pages)
{
	static uint8_t buf[STREAM_REC_HDR_SIZE + 32];

	return out_record(&c->out, buf, STREAM_REC_ROUND_END,
	                  stream_encode_round_end(buf + STREAM_REC_HDR_SIZE, 32, round, pages));
}

static int send_state(struct pc_send_ctx *c, const struct pc_cpu_state *st)
{
	size_t cap = STREAM_REC_HDR_SIZE + 16 + STREAM_MAX_BLOB;
	uint8_t *buf = malloc(cap);
	int rc = 0;

	if (!buf)
		return ERR_NOMEM;
	for (unsigned v = 0; v < st->nr_vcpus && !rc; v++)
		rc = out_record(
		    &c->out, buf, STREAM_REC_VCPU_STATE,
		    stream_encode_blob(buf + STREAM_REC_HDR_SIZE, cap - STREAM_REC_HDR_SIZE, v,
		                       st->vcpus + (size_t)v * st->vcpu_len, st->vcpu_len));
	if (!rc && st->dm_len)
		rc = out_record(&c->out, buf, STREAM_REC_DEVICE_MODEL,
		                stream_encode_blob(buf + STREAM_REC_HDR_SIZE,
		                                   cap - STREAM_REC_HDR_SIZE, 0, st->dm,
		                                   st->dm_len));
	free(buf);
	return rc;
}

/* --debug: every page again, flagged for comparison (libxenguest's verify mode). */
static int send_verify(struct pc_send_ctx *c)
{
	static uint8_t buf[STREAM_REC_HDR_SIZE + 8];
	uint64_t sent = 0, zero = 0;
	int rc;

	rc = out_record(&c->out, buf, STREAM_REC_VERIFY, 0);
	if (rc)
		return rc;
	stream_batch_reset(&c->batch, STREAM_PAGES_VERIFY);
	rc = send_all(c, true, &sent, &zero);
	if (!rc)
		rc = flush_batch(&c->out, &c->batch);
	stream_batch_reset(&c->batch, 0);
	return rc;
}

/*
 * Wait until what the round wrote has left this host (a socket's unsent and unacknowledged
 * bytes, SIOCOUTQ), at most PC_DRAIN_MAX_MS. Otherwise megabytes queued in socket buffers and
 * on a slow link would still be in flight when the guest pauses, and be paid for as downtime;
 * the round's bandwidth would also be overestimated. Pipes (ssh) cannot tell: no wait.
 */
#define PC_DRAIN_MAX_MS 5000
#define PC_DRAIN_SLACK  65536

static void wait_drained(struct pc_send_ctx *c)
{
	int64_t deadline = loop_now_ms() + PC_DRAIN_MAX_MS;
	int queued;

	while (ioctl(c->out.fd, SIOCOUTQ, &queued) == 0 && queued > PC_DRAIN_SLACK &&
	       loop_now_ms() < deadline && !cancelled(c)) {
		struct timespec ts = {.tv_nsec = 500000};

		nanosleep(&ts, NULL);
	}
}

static int live_rounds(struct pc_send_ctx *c, struct pc_state *pol)
{
	struct mig_report *rep = c->rep;
	int rc;

	for (unsigned round = 0;; round++) {
		struct mig_round_report *rr =
		    &rep->rounds[rep->nrounds < MIG_MAX_ROUNDS ? rep->nrounds : MIG_MAX_ROUNDS - 1];
		int64_t t0 = loop_now_us();
		uint64_t bytes0 = c->out.bytes, ndirty = 0;
		struct pc_round pr;
		struct pc_verdict v;

		memset(rr, 0, sizeof(*rr));
		rr->round = round;
		rc = send_pages(c, round == 0, &rr->pages, &rr->zero_pages);
		if (!rc)
			rc = send_round_end(c, round, rr->pages);
		if (rc)
			return rc;
		fault_point_n("send:round", round);
		wait_drained(c);
		rc = c->src->ops->logdirty_fetch(c->src->arg, &ndirty);
		if (rc)
			return rc;
		take_dirty(c, false);
		rr->duration_us = (uint64_t)(loop_now_us() - t0);
		sample_ram(c);
		rr->bytes = c->out.bytes - bytes0;
		rr->dirty_after = ndirty;
		rr->bandwidth_Bps =
		    rr->duration_us ? (double)rr->bytes * 1e6 / (double)rr->duration_us : 0;
		rr->dirty_rate_pps =
		    rr->duration_us ? (double)ndirty * 1e6 / (double)rr->duration_us : 0;
		if (rep->nrounds < MIG_MAX_ROUNDS)
			rep->nrounds++;
		rep->total_pages += rr->pages;
		memset(&pr, 0, sizeof(pr));
		pr.round = round;
		pr.pages_sent = rr->pages;
		pr.bytes_sent = rr->bytes;
		pr.duration_us = rr->duration_us;
		pr.dirty_pages = ndirty;
		pr.total_bytes = c->out.bytes;
		/* with a cap, plan with the cap: stop-and-copy is faster than that */
		pr.bandwidth_Bps = rr->bandwidth_Bps;
		if (c->out.rate_Bps &&
		    (pr.bandwidth_Bps <= 0 || pr.bandwidth_Bps > (double)c->out.rate_Bps))
			pr.bandwidth_Bps = (double)c->out.rate_Bps;
		pr.dirty_rate_pps = rr->dirty_rate_pps;
		v = pc_decide(pol, &pr);
		rr->throttle_pct = v.throttle_pct;
		if (c->params->progress)
			progress_line(rr, c->src->nr_pages);
		log_debug("round %u: %s (%s), estimated downtime %llu us", round,
		          pc_decision_name(v.decision), v.reason,
		          (unsigned long long)v.est_downtime_us);
		rep->decision = v.decision;
		rep->reason = v.reason;
		if (v.throttle_pct > rep->max_throttle)
			rep->max_throttle = v.throttle_pct;
		if (v.decision == PC_ABORT)
			return ERR_NOTCONV;
		if (v.decision == PC_STOP_AND_COPY)
			return 0;
		if (v.throttle_pct != c->throttle_applied) {
			rc = c->src->ops->throttle(c->src->arg, v.throttle_pct);
			if (rc)
				return rc;
			c->throttle_applied = v.throttle_pct;
		}
		if (cancelled(c))
			return ERR_CANCELLED;
	}
}

/*
 * Stop-and-copy: pause the guest, send what is still dirty at full link speed, its vCPU and
 * device state, the --debug verification pass and the END record.
 */
static int stop_and_copy(struct pc_send_ctx *c, struct pc_cpu_state *st)
{
	struct mig_report *report = c->rep;
	uint64_t sent = 0, zero = 0, ndirty, bytes0;
	int rc;

	report->t_pause_us = loop_now_us();
	c->out.limited = false;
	rc = c->src->ops->suspend(c->src->arg, st);
	if (rc)
		return rc;
	report->t_suspended_us = loop_now_us();
	fault_point("send:suspend");
	rc = c->src->ops->logdirty_fetch(c->src->arg, &ndirty);
	if (rc)
		return rc;
	take_dirty(c, true);
	log_debug("stop-and-copy: %llu pages dirty", (unsigned long long)count_pending(c));
	bytes0 = c->out.bytes;
	rc = send_pages(c, false, &sent, &zero);
	if (!rc)
		rc = send_state(c, st);
	report->final_pages = sent;
	report->final_bytes = c->out.bytes - bytes0;
	report->total_pages += sent;
	if (!rc && c->params->debug) {
		rc = send_verify(c);
		report->verified = !rc;
	}
	if (!rc) {
		static uint8_t buf[STREAM_REC_HDR_SIZE + 8];

		rc = out_record(&c->out, buf, STREAM_REC_END, 0);
	}
	report->t_stream_end_us = loop_now_us();
	return rc;
}

int pc_send(const struct pc_source *src, int fd, const struct mig_params *params,
            struct mig_report *report)
{
	struct pc_send_ctx c = {.src = src, .params = params, .rep = report};
	struct pc_cpu_state st = {0};
	struct pc_params pp = params->policy;
	struct pc_state pol;
	int rc, fd_flags;

	memset(report, 0, sizeof(*report));
	report->t_start_us = loop_now_us();
	report->nr_pages = src->nr_pages;
	c.out.fd = fd;
	c.out.rate_Bps = params->bandwidth_Bps;
	c.out.limited = params->bandwidth_Bps != 0;
	c.out.last_us = loop_now_us();
	c.out.cancel = params->cancel;
	rc = stream_batch_init(&c.batch);
	if (rc)
		return rc;
	/* bounded writes: non-blocking for the stream's time (the descriptor is this
	 * migration's own: the rune's pipe or the socket) */
	fd_flags = fcntl(fd, F_GETFL);
	if (params->stall_timeout_ms > 0 && fd_flags >= 0 &&
	    fcntl(fd, F_SETFL, fd_flags | O_NONBLOCK) == 0)
		c.out.stall_ms = params->stall_timeout_ms;
	c.bm_words = (src->nr_pages + 63) / 64;
	c.pending = calloc(c.bm_words, sizeof(uint64_t));
	if (!c.pending) {
		stream_batch_free(&c.batch);
		return ERR_NOMEM;
	}
	pp.nr_pages = src->nr_pages;
	pp.page_wire_bytes = PAGE + 8;
	pc_init(&pol, &pp);
	sample_ram(&c);
	rc = src->ops->logdirty_enable(src->arg, &c.bitmap, report->dirtylog_method,
	                               sizeof(report->dirtylog_method));
	if (rc)
		goto out;
	rc = send_header(&c);
	if (rc)
		goto out;
	rc = live_rounds(&c, &pol);
	if (rc)
		goto out;
	rc = stop_and_copy(&c, &st);
out:
	if (c.out.stall_ms > 0)
		fcntl(fd, F_SETFL, fd_flags);
	report->stalled = c.out.stalled;
	sample_ram(&c);
	report->total_bytes = c.out.bytes;
	pc_cpu_state_free(&st);
	stream_batch_free(&c.batch);
	free(c.pending);
	return rc;
}
