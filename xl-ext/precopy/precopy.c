/*
 * precopy.c - the pre-copy sender of the sim backend's stream (the receiver: receive.c).
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fault.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/precopy/codec.h"
#include "xl-ext/precopy/pagecache.h"
#include "xl-ext/precopy/postcopy.h"
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

/* The cap's token bucket, one for all the streams of a migration. */
struct pc_bucket {
	pthread_mutex_t lock;
	double tokens;
	int64_t last_us;
};

struct pc_out {
	int fd;
	uint64_t rate_Bps; /* 0: unlimited; the whole migration's, shared by its streams */
	bool limited;
	struct pc_bucket *bucket;
	uint64_t bytes;
	volatile int *abort; /* set when one stream failed: the others stop at their next write */
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
	struct pc_bucket *b = o->bucket;
	int64_t now;
	double burst = (double)o->rate_Bps / 100.0, wait_us = 0; /* 10 ms worth */

	pthread_mutex_lock(&b->lock);
	now = loop_now_us();
	b->tokens += (double)(now - b->last_us) * (double)o->rate_Bps / 1e6;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last_us = now;
	b->tokens -= (double)n;
	if (b->tokens < 0)
		wait_us = -b->tokens * 1e6 / (double)o->rate_Bps;
	pthread_mutex_unlock(&b->lock);
	if (wait_us > 0) {
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
	if (o->abort && __atomic_load_n(o->abort, __ATOMIC_RELAXED))
		return ERR_IO; /* another stream failed, and said why */
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

/* What --compress has measured of a record compressor: its cost and its ratio. */
struct pc_codec_stat {
	double ns_per_byte; /* time to compress a byte of record body */
	double ratio;       /* compressed / raw */
	unsigned samples;
};

/*
 * --compress: the sender's state. In auto mode every choice is made from figures measured in
 * this migration: the link's rate (the cap, the last round's rate, or round 0's so far), each
 * compressor's time per byte and ratio on these pages, and the time a delta and a cache copy
 * take; a method is used where it saves more link time than it costs CPU time.
 */
struct pc_compress {
	unsigned mode; /* COMPRESS_*, 0: none */
	struct pagecache cache;
	struct stream_delta_batch deltas;
	struct codec_ctx *codec;
	uint8_t *raw;  /* a record body gathered for the compressor */
	uint8_t *zbuf; /* the COMPRESSED record: header, head, compressed body */
	size_t zcap;
	bool delta_on, fill_on, off; /* this batch: deltas, cache copies; off: verification */
	struct pc_codec_stat stat[CODEC_MAX + 1];
	/* what a cache copy (with the first touch of the cache's memory) and a delta cost here:
	 * measured once, at the start, over PC_MEASURE_PAGES pages; samples taken during the
	 * migration would also time the sender's waits for a CPU it shares with the guest and
	 * the receiver */
	double delta_ns, fill_ns;
	uint64_t records;
	/* the link's rate: the cap, or the fastest round's, or round 0's so far (per stream) */
	double last_round_Bps;
	int64_t round_t0;
	uint64_t round_bytes0;
	unsigned round;
};

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
	struct pc_compress z;
	unsigned idx, nstreams; /* --streams: which this context sends, of how many */
	enum mig_mode mode;     /* --mode: precopy, postcopy, hybrid */
	int pc_fd;              /* the post-copy channel (postcopy.h), -1 */
	uint8_t token[STREAM_TOKEN_LEN];
	struct pc_workers *ws; /* the first stream's: the threads of the others */
	struct pc_skip *skip;  /* live rounds: what a peek says was written again (shared) */
	uint64_t skipped;      /* pages this context left to the next round in its last job */
};

/* A delta longer than this is not worth its cost at the receiver: the page goes whole. */
#define PC_DELTA_MAX (PAGE * 3 / 4)
/*
 * auto: a page's cache copy must cost under 1/PC_FILL_WORTH of its time on the link (while the
 * link is what limits the sender, the copy only fills its wait; the margin leaves the CPU to the
 * receiver and the guest), and a compressor is tried again every PC_EXPLORE records to follow
 * what the pages are like
 */
#define PC_FILL_WORTH 2.0
#define PC_EXPLORE    64
/* round 0 without a cap: the link's rate is taken from this much sent */
#define PC_RATE_SAMPLE (32ull << 20)
/* a round of fewer pages says too little of what a page costs the policy */
#define PC_COST_MIN_PAGES 64
/* pages copied into the cache at the start to measure what a copy costs */
#define PC_MEASURE_PAGES 256

static double ewma(double old, double v, unsigned samples)
{
	return samples ? 0.8 * old + 0.2 * v : v;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The link's rate in bytes/s as far as it is known, 0 when not yet. */
static double link_Bps(const struct pc_send_ctx *c)
{
	const struct pc_compress *z = &c->z;
	uint64_t sent = c->out.bytes - z->round_bytes0;
	int64_t us = loop_now_us() - z->round_t0;

	if (c->out.rate_Bps)
		return (double)c->out.rate_Bps / c->nstreams; /* this stream's share of the cap */
	if (z->last_round_Bps > 0)
		return z->last_round_Bps;
	return sent >= PC_RATE_SAMPLE && us > 0 ? (double)sent * 1e6 / (double)us : 0;
}

/* auto: whether deltas and cache copies pay on this link (decided before every batch). */
static void plan_deltas(struct pc_send_ctx *c)
{
	struct pc_compress *z = &c->z;
	double bps, page_ns;
	bool fill, delta;

	if (z->off || !(z->mode & (COMPRESS_DELTA | COMPRESS_AUTO))) {
		z->delta_on = z->fill_on = false;
		return;
	}
	if (!(z->mode & COMPRESS_AUTO)) {
		z->delta_on = z->fill_on = true;
		return;
	}
	bps = link_Bps(c);
	page_ns = bps > 0 ? (double)(PAGE + 8) * 1e9 / bps : 0;
	/* round 0 before the link's rate is known: copies, so that the pages sent first can go
	 * as deltas later should the link prove slow (there is no delta in round 0) */
	fill = bps > 0 ? page_ns > PC_FILL_WORTH * z->fill_ns : true;
	delta = page_ns > 2.0 * z->delta_ns;
	if (fill != z->fill_on || delta != z->delta_on)
		log_debug("--compress auto, round %u: cache copies %s, deltas %s (link %.0f MB/s: "
		          "%.1f us a page; a copy %.2f us, a delta %.2f us)",
		          z->round, fill ? "on" : "off", delta ? "on" : "off", bps / 1e6,
		          page_ns / 1000, z->fill_ns / 1000, z->delta_ns / 1000);
	z->fill_on = fill;
	z->delta_on = delta;
}

/* Which compressor a record of raw bytes goes through (CODEC_NONE: none). */
static enum codec_id pick_codec(const struct pc_send_ctx *c, size_t raw)
{
	const struct pc_compress *z = &c->z;
	enum codec_id best = CODEC_NONE;
	double bps, wire_ns, best_ns;

	if (z->off)
		return CODEC_NONE;
	if (z->mode & COMPRESS_LZ4)
		return CODEC_LZ4;
	if (z->mode & COMPRESS_ZSTD)
		return CODEC_ZSTD;
	if (!(z->mode & COMPRESS_AUTO) || (bps = link_Bps(c)) <= 0)
		return CODEC_NONE;
	wire_ns = 1e9 / bps;
	best_ns = (double)raw * wire_ns;
	for (enum codec_id id = CODEC_LZ4; id <= CODEC_MAX; id++) {
		const struct pc_codec_stat *st = &z->stat[id];
		double ns = (double)raw * (st->ns_per_byte + st->ratio * wire_ns);

		if (st->samples < 2 || (z->records % PC_EXPLORE) == (uint64_t)id)
			return id; /* measure it (again) */
		if (ns < best_ns) {
			best_ns = ns;
			best = id;
		}
	}
	return best;
}

/*
 * Write a page record (iov: its header and body). When a compressor is chosen and it saves
 * bytes, the body goes compressed, in a COMPRESSED record.
 */
static int out_page_record(struct pc_send_ctx *c, struct iovec *iov, int n, uint32_t type)
{
	struct pc_compress *z = &c->z;
	size_t raw = 0, zlen;
	uint32_t body_len;
	enum codec_id id;
	int64_t t0;
	struct iovec ziov;

	for (int i = 0; i < n; i++)
		raw += iov[i].iov_len;
	raw -= STREAM_REC_HDR_SIZE; /* the body, with its padding */
	id = pick_codec(c, raw);
	if (id == CODEC_NONE)
		return out_writev(&c->out, iov, n);
	t0 = mono_ns();
	raw = 0; /* gather the body, padding included, after the record's header */
	for (int i = 0; i < n; i++) {
		size_t skip = i == 0 ? STREAM_REC_HDR_SIZE : 0;

		memcpy(z->raw + raw, (const uint8_t *)iov[i].iov_base + skip,
		       iov[i].iov_len - skip);
		raw += iov[i].iov_len - skip;
	}
	memcpy(&body_len, (const uint8_t *)iov[0].iov_base + 4, 4);
	raw = le32toh(body_len); /* the body without its padding */
	zlen = codec_compress(z->codec, id, z->raw, raw, z->zbuf + STREAM_REC_HDR_SIZE + 16,
	                      z->zcap - STREAM_REC_HDR_SIZE - 16 - 8);
	z->stat[id].ns_per_byte = ewma(z->stat[id].ns_per_byte,
	                               (double)(mono_ns() - t0) / (double)raw, z->stat[id].samples);
	z->stat[id].ratio =
	    ewma(z->stat[id].ratio, zlen ? (double)zlen / (double)raw : 1.0, z->stat[id].samples);
	z->stat[id].samples++;
	z->records++;
	c->rep->encode_us += (uint64_t)(mono_ns() - t0) / 1000;
	if (!zlen || zlen + 16 + 8 >= raw)
		return out_writev(&c->out, iov, n); /* no gain: as it is */
	stream_encode_compressed_head(z->zbuf + STREAM_REC_HDR_SIZE, id, type, (uint32_t)raw);
	ziov.iov_base = z->zbuf;
	ziov.iov_len = stream_rec_seal(z->zbuf, STREAM_REC_COMPRESSED, (uint32_t)(16 + zlen));
	if (id == CODEC_LZ4)
		c->rep->records_lz4++;
	else
		c->rep->records_zstd++;
	c->rep->compress_in += raw;
	c->rep->compress_out += zlen;
	return out_writev(&c->out, &ziov, 1);
}

static int flush_batch(struct pc_send_ctx *c)
{
	struct iovec iov[2];
	int rc;

	if (stream_batch_empty(&c->batch))
		return 0;
	stream_batch_seal(&c->batch, iov);
	rc = c->z.mode ? out_page_record(c, iov, 2, STREAM_REC_PAGE_DATA)
	               : out_writev(&c->out, iov, 2);
	stream_batch_reset(&c->batch, c->batch.flags);
	return rc;
}

static int flush_deltas(struct pc_send_ctx *c)
{
	struct iovec iov[3];

	if (!c->z.deltas.count)
		return 0;
	stream_delta_batch_seal(&c->z.deltas, iov);
	return out_page_record(c, iov, 3, STREAM_REC_PAGE_DELTA);
}

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
 * The cache's key of page pfn: with several streams, its index among the pages of this stream's
 * chunks, so that each stream's direct-mapped cache uses all its slots (by pfn, a stream whose
 * chunks recur every N chunks would only ever use 1/N of them).
 */
static uint64_t cache_key(const struct pc_send_ctx *c, uint64_t pfn)
{
	uint64_t span = (uint64_t)STREAM_CHUNK_PAGES * c->nstreams;

	return c->nstreams > 1 ? pfn / span * STREAM_CHUNK_PAGES + pfn % STREAM_CHUNK_PAGES : pfn;
}

/*
 * --compress: add the k pages pfn.. read to the batch's tail one by one: a zero page as an
 * entry without data (or left out when skip_zero), a page the cache holds as its delta when
 * that is short enough, any other whole (and copied to the cache when that pays). Every page
 * sent leaves the cache holding what the destination holds, or nothing. Returns the zero
 * pages.
 */
static uint32_t add_read_coded(struct pc_send_ctx *c, uint64_t pfn, uint32_t k, bool skip_zero,
                               int *rc_r)
{
	struct pc_compress *z = &c->z;
	const uint8_t *read = stream_batch_tail(&c->batch);
	uint8_t enc[PC_DELTA_MAX];
	uint32_t zero = 0;
	int64_t fill_ns = 0, delta_ns = 0;

	plan_deltas(c);
	for (uint32_t i = 0; i < k && !*rc_r; i++, read += PAGE) {
		uint64_t p = pfn + i, key = cache_key(c, p);
		uint8_t *old, *dst;

		c->rep->page_bytes_plain += PAGE + 8;
		if (stream_page_is_zero(read)) {
			zero++;
			if (z->cache.nslots)
				pagecache_drop(&z->cache, key);
			c->rep->page_bytes_plain -= skip_zero ? PAGE + 8 : PAGE;
			if (!skip_zero)
				stream_batch_add(&c->batch, p, NULL);
			continue;
		}
		if (z->delta_on && (old = pagecache_get(&z->cache, key))) {
			int64_t t0 = mono_ns();
			size_t len = delta_encode(old, read, enc, sizeof(enc));

			if (len) {
				memcpy(old, read, PAGE);
				delta_ns += mono_ns() - t0; /* the coding, not the sending */
				if (!stream_delta_batch_fits(&z->deltas, len))
					*rc_r = flush_deltas(c);
				stream_delta_batch_add(&z->deltas, p, enc, len);
				c->rep->delta_pages++;
				c->rep->delta_bytes += len;
				continue;
			}
		}
		dst = stream_batch_tail(&c->batch);
		stream_batch_take(&c->batch, p, read);
		if (!z->cache.nslots)
			continue;
		if (z->fill_on) {
			int64_t t0 = mono_ns();

			pagecache_put(&z->cache, key, dst);
			fill_ns += mono_ns() - t0;
		} else {
			pagecache_drop(&z->cache, key);
		}
	}
	c->rep->encode_us += (uint64_t)(fill_ns + delta_ns) / 1000;
	return zero;
}

/*
 * Send the n pages from pfn on, read straight into the batch. In round 0 (skip_zero) a zero
 * page is left out, later it is sent as an entry without data. *zero_r counts zero pages seen.
 */
static int send_run_one(struct pc_send_ctx *c, uint64_t pfn, uint64_t n, bool skip_zero,
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
		if (c->z.mode)
			z = add_read_coded(c, pfn, k, skip_zero, &rc);
		else
			z = stream_batch_add_read(&c->batch, pfn, k, skip_zero);
		*zero_r += z;
		*sent_r += skip_zero ? k - z : k;
		if (!rc && stream_batch_full(&c->batch))
			rc = flush_batch(c);
		pfn += k;
		n -= k;
	}
	return rc;
}

/* Where the piece of pfn's chunk (STREAM_CHUNK_PAGES) that ends at most at end ends. */
static uint64_t piece_end(uint64_t pfn, uint64_t end)
{
	uint64_t e = (pfn / STREAM_CHUNK_PAGES + 1) * STREAM_CHUNK_PAGES;

	return e < end ? e : end;
}

/* How many of the n pages from pfn on this context sends (all, with one stream). */
static uint64_t own_pages(const struct pc_send_ctx *c, uint64_t pfn, uint64_t n)
{
	uint64_t own = 0;

	if (c->nstreams <= 1)
		return n;
	for (uint64_t p = pfn, e; p < pfn + n; p = e) {
		e = piece_end(p, pfn + n);
		if (stream_of_pfn(p, c->nstreams) == c->idx)
			own += e - p;
	}
	return own;
}

/* send_run_one over the pages of pfn..pfn+n-1 this context sends. */
static int send_run(struct pc_send_ctx *c, uint64_t pfn, uint64_t n, bool skip_zero,
                    uint64_t *sent_r, uint64_t *zero_r)
{
	int rc = 0;

	if (c->nstreams <= 1)
		return send_run_one(c, pfn, n, skip_zero, sent_r, zero_r);
	for (uint64_t p = pfn, e; p < pfn + n && !rc; p = e) {
		e = piece_end(p, pfn + n);
		if (stream_of_pfn(p, c->nstreams) == c->idx)
			rc = send_run_one(c, p, e - p, skip_zero, sent_r, zero_r);
	}
	return rc;
}

/*
 * Pre-copy's skip (the Xen sender's "to_skip" of old, over XEN_DOMCTL_SHADOW_OP_PEEK): during
 * a live round a thread of its own peeks at the dirty log now and then, and every stream leaves
 * out a due page that the guest wrote again since the round's fetch: the next fetch reports it
 * anyway, so sending it now would only send it twice. The peeks also tell how fast the dirty
 * set grows within a round, which is how hybrid tells beforehand that a round would not halve
 * it. The peeker holds the lock while it peeks (the source's control socket is one): switching
 * it off (skip_end) before a fetch, a throttle or the suspend waits for a peek under way. Off in
 * stop-and-copy and the verification pass: the guest is paused. XLEXT_PRECOPY_SKIP=0 turns it
 * off, to compare.
 */
#define PC_PEEK_MIN_US  20000 /* at most one peek every 20 ms */
#define PC_PEEK_COST_X  20    /* and at most 1/20 of the time in peeks (the CPU's) */
#define PC_PEEK_POLL_US 20000 /* the peeker looks at the clock at least this often */
#define PC_SKIP_PIECE   256   /* round 0 puts off memory by the MiB */
#define PC_PEEK_SAMPLES 512

struct pc_skip {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, quit;
	const struct pc_source *src;
	bool active;                     /* a live round runs */
	const uint64_t *bm;              /* the source's peek bitmap (set by the first peek) */
	int64_t round_t0;                /* the fetch that began this round */
	int64_t next_us;                 /* the next peek is due */
	unsigned npeeks;                 /* this round's peeks */
	int64_t peek_us;                 /* and their time */
	unsigned nsamples;               /* this round's peeks that worked: */
	int64_t at_us[PC_PEEK_SAMPLES];  /* time since round_t0 */
	uint64_t dirty[PC_PEEK_SAMPLES]; /* pages written by then */
};

/*
 * The first set (want = 1) or clear (want = 0) bit of bitmap at or after i, or n. Each word is
 * read once, atomically: the source's peek bitmap changes under us (another process writes
 * it).
 */
static uint64_t next_bit(const uint64_t *bitmap, uint64_t n, uint64_t i, int want)
{
	while (i < n) {
		uint64_t w = __atomic_load_n(&bitmap[i / 64], __ATOMIC_RELAXED);

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

/* One peek, lock held. */
static void peek_locked(struct pc_skip *k)
{
	const uint64_t *bm = NULL;
	int64_t t0 = loop_now_us(), cost;
	uint64_t n = 0;
	int rc = k->src->ops->logdirty_peek(k->src->arg, &bm, &n);

	cost = loop_now_us() - t0;
	k->npeeks++;
	k->peek_us += cost;
	k->next_us = loop_now_us() + (cost * PC_PEEK_COST_X > PC_PEEK_MIN_US ? cost * PC_PEEK_COST_X
	                                                                     : PC_PEEK_MIN_US);
	if (rc) {
		log_debug("migration: a peek at the dirty log failed (%s): nothing skipped",
		          err_str(rc));
		return;
	}
	if (!k->bm)
		__atomic_store_n(&k->bm, bm, __ATOMIC_RELEASE);
	if (k->nsamples < PC_PEEK_SAMPLES) {
		k->at_us[k->nsamples] = t0 - k->round_t0;
		k->dirty[k->nsamples++] = n;
	}
}

static void *peeker_main(void *arg)
{
	struct pc_skip *k = arg;

	pthread_mutex_lock(&k->lock);
	while (!k->quit) {
		int64_t now = loop_now_us(), wait = k->next_us - now;
		struct timespec until;

		if (k->active && wait <= 0) {
			peek_locked(k);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		if (!k->active || wait > PC_PEEK_POLL_US)
			wait = PC_PEEK_POLL_US;
		until.tv_nsec += (long)wait * 1000;
		until.tv_sec += until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&k->cond, &k->lock, &until);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

/*
 * Set up the skip for the rounds of src, whose dirty log just began round 0 (no peeker when the
 * source cannot peek or XLEXT_PRECOPY_SKIP=0: every round then sends all it is due).
 */
static struct pc_skip *skip_new(const struct pc_source *src)
{
	struct pc_skip *k = calloc(1, sizeof(*k));
	const char *env = getenv("XLEXT_PRECOPY_SKIP");

	if (!k)
		return NULL;
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->cond, NULL);
	k->src = src;
	k->round_t0 = loop_now_us();
	k->next_us = k->round_t0 + PC_PEEK_MIN_US;
	if (src->ops->logdirty_peek && !(env && !strcmp(env, "0")))
		k->started = pthread_create(&k->thread, NULL, peeker_main, k) == 0;
	return k;
}

/* No peek from now on, ever: the peeker ends (the skip stays, switched off). */
static void skip_stop(struct pc_skip *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->quit = true;
	__atomic_store_n(&k->active, false, __ATOMIC_RELAXED);
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	if (k->started)
		pthread_join(k->thread, NULL);
	k->started = false;
}

static void skip_free(struct pc_skip *k)
{
	if (!k)
		return;
	skip_stop(k);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* A live round begins sending: peek from now on. */
static void skip_begin(struct pc_skip *k)
{
	pthread_mutex_lock(&k->lock);
	__atomic_store_n(&k->active, !k->quit, __ATOMIC_RELAXED);
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

/* The round sent all it will: no peek from now on (one under way ends first). */
static void skip_end(struct pc_skip *k)
{
	pthread_mutex_lock(&k->lock);
	__atomic_store_n(&k->active, false, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&k->lock);
}

/* A fetch at t_us began the next round: no peek of it yet. */
static void skip_next_round(struct pc_skip *k, int64_t t_us)
{
	pthread_mutex_lock(&k->lock);
	k->round_t0 = t_us;
	k->next_us = t_us + PC_PEEK_MIN_US;
	k->nsamples = 0;
	k->npeeks = 0;
	k->peek_us = 0;
	pthread_mutex_unlock(&k->lock);
}

/* send_run over pfn..pfn+n-1, leaving out (and counting) the pages a peek says are dirty. */
static int send_live(struct pc_send_ctx *c, uint64_t pfn, uint64_t n, bool skip_zero,
                     uint64_t *sent_r, uint64_t *zero_r)
{
	struct pc_skip *k = c->skip;
	int rc = 0;

	if (!k || !__atomic_load_n(&k->active, __ATOMIC_RELAXED))
		return send_run(c, pfn, n, skip_zero, sent_r, zero_r);
	while (n && !rc) {
		uint64_t len = n < PC_SKIP_PIECE ? n : PC_SKIP_PIECE, end = pfn + len, p = pfn;
		const uint64_t *bm = __atomic_load_n(&k->bm, __ATOMIC_ACQUIRE);

		while (p < end && !rc) {
			uint64_t q = bm ? next_bit(bm, end, p, 0) : p; /* skip [p, q) */

			c->skipped += own_pages(c, p, q - p);
			p = q;
			q = bm ? next_bit(bm, end, p, 1) : end; /* send [p, q) */
			if (q > p)
				rc = send_run(c, p, q - p, skip_zero, sent_r, zero_r);
			p = q;
		}
		pfn = end;
		n -= len;
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
		*zero_r += own_pages(c, pfn, start - pfn);
		for (; holes_as_zero && pfn < start && !rc; pfn++) {
			if (stream_of_pfn(pfn, c->nstreams) != c->idx)
				continue;
			stream_batch_add(&c->batch, pfn, NULL);
			(*sent_r)++;
			if (stream_batch_full(&c->batch))
				rc = flush_batch(c);
		}
		if (!rc && start < end)
			rc = send_live(c, start, end - start, !holes_as_zero, sent_r, zero_r);
		pfn = end > start ? end : n;
		if (!rc && cancelled(c))
			rc = ERR_CANCELLED;
	}
	return rc;
}

/*
 * Round 0 of a live migration: every page that holds data, but each piece (PC_SKIP_PIECE
 * pages) in which a peek saw the guest write is put off to a second pass over the put-off
 * pieces at the round's end, which leaves out what was written by then (send_live). So the
 * memory the guest leaves alone goes first, and a hot page is sent once, by a later round,
 * instead of now and again then; the round sends no page twice and none it would not have.
 */
struct pc_ranges {
	struct {
		uint64_t start, end;
	} * r;
	size_t n, cap;
};

/* Add [start, end) to a list of ranges in ascending order, joining it to the last one. */
static int ranges_add(struct pc_ranges *l, uint64_t start, uint64_t end)
{
	if (l->n && l->r[l->n - 1].end == start) {
		l->r[l->n - 1].end = end;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *r = realloc(l->r, cap * sizeof(*l->r));

		if (!r)
			return ERR_NOMEM;
		l->r = r;
		l->cap = cap;
	}
	l->r[l->n].start = start;
	l->r[l->n++].end = end;
	return 0;
}

static int send_round0(struct pc_send_ctx *c, uint64_t *sent_r, uint64_t *zero_r)
{
	uint64_t n = c->src->nr_pages, pfn = 0, npieces = (n + PC_SKIP_PIECE - 1) / PC_SKIP_PIECE;
	uint64_t *later = calloc((npieces + 63) / 64, sizeof(uint64_t));
	struct pc_ranges put_off = {0}; /* the data of the pieces put off (no seek again: a
	                                 * SEEK_HOLE in a large file of data walks it all) */
	int rc = 0;

	if (!later)
		return send_all(c, false, sent_r, zero_r);
	while (pfn < n && !rc) { /* pass 1: the data, but for pieces a peek saw written */
		uint64_t start = n, end = n;

		rc = next_data(c, pfn, &start, &end);
		if (rc)
			break;
		*zero_r += own_pages(c, pfn, start - pfn);
		for (uint64_t p = start, e; p < end && !rc; p = e) {
			uint64_t k = p / PC_SKIP_PIECE,
			         kend = (k + 1) * PC_SKIP_PIECE < n ? (k + 1) * PC_SKIP_PIECE : n;
			const uint64_t *bm;

			e = kend < end ? kend : end;
			if (c->nstreams > 1 && stream_of_pfn(p, c->nstreams) != c->idx)
				continue;
			if (!(later[k / 64] >> (k % 64) & 1)) {
				bm = __atomic_load_n(&c->skip->bm, __ATOMIC_ACQUIRE);
				if (bm && next_bit(bm, kend, k * PC_SKIP_PIECE, 1) < kend)
					later[k / 64] |= 1ull << (k % 64);
			}
			if (later[k / 64] >> (k % 64) & 1)
				rc = ranges_add(&put_off, p, e);
			else
				rc = send_run(c, p, e - p, true, sent_r, zero_r);
		}
		pfn = end > start ? end : n;
		if (!rc && cancelled(c))
			rc = ERR_CANCELLED;
	}
	/* pass 2: the data put off, less what was written since */
	for (size_t i = 0; i < put_off.n && !rc; i++) {
		rc = send_live(c, put_off.r[i].start, put_off.r[i].end - put_off.r[i].start, true,
		               sent_r, zero_r);
		if (!rc && cancelled(c))
			rc = ERR_CANCELLED;
	}
	free(put_off.r);
	free(later);
	return rc;
}

/* Send the pending pages, a run of consecutive ones at a time. */
static int send_dirty(struct pc_send_ctx *c, uint64_t *sent_r, uint64_t *zero_r)
{
	uint64_t n = c->src->nr_pages, pfn = 0;
	int rc = 0;

	while (!rc && (pfn = next_bit(c->pending, n, pfn, 1)) < n) {
		uint64_t end = next_bit(c->pending, n, pfn, 0);

		rc = send_live(c, pfn, end - pfn, false, sent_r, zero_r);
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
	c->skipped = 0;
	if (full)
		rc = c->skip && __atomic_load_n(&c->skip->active, __ATOMIC_RELAXED)
		         ? send_round0(c, sent_r, zero_r)
		         : send_all(c, false, sent_r, zero_r);
	else
		rc = send_dirty(c, sent_r, zero_r);
	if (!rc)
		rc = flush_batch(c);
	if (!rc)
		rc = flush_deltas(c);
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
	struct stream_header h = {.version = c->mode           ? 4
	                                     : c->nstreams > 1 ? 3
	                                     : c->z.mode       ? 2
	                                                       : STREAM_VERSION,
	                          .page_size = PAGE,
	                          .nr_pages = c->src->nr_pages,
	                          .domain_type = c->src->type,
	                          .nr_vcpus = c->src->nr_vcpus,
	                          .streams = c->nstreams,
	                          .flags = c->mode ? STREAM_HDR_POSTCOPY : 0};

	if ((c->nstreams > 1 || c->mode) &&
	    getrandom(h.token, sizeof(h.token), 0) != sizeof(h.token))
		return err_from_errno(errno);
	memcpy(c->token, h.token, sizeof(h.token));
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
	uint8_t buf[STREAM_REC_HDR_SIZE + 8]; /* each stream's thread has its own */
	uint64_t sent = 0, zero = 0;
	int rc;

	rc = out_record(&c->out, buf, STREAM_REC_VERIFY, 0);
	if (rc)
		return rc;
	stream_batch_reset(&c->batch, STREAM_PAGES_VERIFY);
	c->z.off = true; /* the pages as they are, to compare */
	rc = send_all(c, true, &sent, &zero);
	if (!rc)
		rc = flush_batch(c);
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

static void wait_drained_fd(const struct pc_send_ctx *c, int fd, int64_t deadline)
{
	int queued;

	while (ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > PC_DRAIN_SLACK &&
	       loop_now_ms() < deadline && !cancelled(c)) {
		struct timespec ts = {.tv_nsec = 500000};

		nanosleep(&ts, NULL);
	}
}

/* --- --streams: a thread per extra stream, each sending the pages of its chunks --------- */

enum pc_job { PC_JOB_ROUND0 = 1, PC_JOB_DIRTY, PC_JOB_VERIFY, PC_JOB_END, PC_JOB_QUIT };

struct pc_workers;

struct pc_worker {
	struct pc_workers *ws;
	struct pc_send_ctx c;  /* its own connection, batch and --compress state */
	struct mig_report rep; /* what it counted of what it sent */
	pthread_t thread;
	bool started;
	uint64_t sent, zero; /* its part of the last job */
	int rc;
};

struct pc_workers {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned gen, done, n; /* n: extra streams started */
	enum pc_job job;
	bool limited;    /* the cap governs this job */
	double link_Bps; /* a stream's share of the fastest round */
	unsigned round;
	int main_fd;
	struct pc_worker w[STREAM_MAX_STREAMS - 1];
};

/*
 * A stream failed: every other stops at its next write, and a write blocked on a receiver that
 * takes nothing fails at once (the migration is over; the caller resumes the guest).
 */
static void abort_streams(struct pc_workers *ws, volatile int *abort)
{
	__atomic_store_n(abort, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < ws->n; i++)
		shutdown(ws->w[i].c.out.fd, SHUT_RDWR);
	shutdown(ws->main_fd, SHUT_RDWR);
}

/* One stream's part of a job. */
static int run_job(struct pc_send_ctx *c, enum pc_job job, uint64_t *sent_r, uint64_t *zero_r)
{
	uint8_t buf[STREAM_REC_HDR_SIZE + 8];

	*sent_r = *zero_r = 0;
	switch (job) {
	case PC_JOB_ROUND0:
	case PC_JOB_DIRTY:
		return send_pages(c, job == PC_JOB_ROUND0, sent_r, zero_r);
	case PC_JOB_VERIFY:
		return send_verify(c);
	case PC_JOB_END:
		return out_record(&c->out, buf, STREAM_REC_END, 0);
	default:
		return 0;
	}
}

static void *worker_main(void *arg)
{
	struct pc_worker *w = arg;
	struct pc_workers *ws = w->ws;
	unsigned seen = 0;

	for (;;) {
		enum pc_job job;

		pthread_mutex_lock(&ws->lock);
		while (ws->gen == seen)
			pthread_cond_wait(&ws->cond, &ws->lock);
		seen = ws->gen;
		job = ws->job;
		w->c.out.limited = ws->limited;
		if (ws->link_Bps > w->c.z.last_round_Bps)
			w->c.z.last_round_Bps = ws->link_Bps;
		w->c.z.round = ws->round;
		pthread_mutex_unlock(&ws->lock);
		if (job == PC_JOB_QUIT)
			return NULL;
		w->c.z.round_t0 = loop_now_us();
		w->c.z.round_bytes0 = w->c.out.bytes;
		w->rc = run_job(&w->c, job, &w->sent, &w->zero);
		if (w->rc)
			abort_streams(ws, w->c.out.abort);
		pthread_mutex_lock(&ws->lock);
		ws->done++;
		pthread_cond_broadcast(&ws->cond);
		pthread_mutex_unlock(&ws->lock);
	}
}

/*
 * Run a job on every stream: the extra streams' threads and this one (the first) at once;
 * back when all are done, with the pages they sent and the first error.
 */
static int run_all(struct pc_send_ctx *c, enum pc_job job, uint64_t *sent_r, uint64_t *zero_r)
{
	struct pc_workers *ws = c->ws;
	int rc;

	if (!ws || !ws->n)
		return run_job(c, job, sent_r, zero_r);
	pthread_mutex_lock(&ws->lock);
	ws->job = job;
	ws->limited = c->out.limited;
	ws->round = c->z.round;
	ws->done = 0;
	ws->gen++;
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	rc = run_job(c, job, sent_r, zero_r);
	if (rc) /* the migration failed: the others' writes fail too, at once */
		abort_streams(ws, c->out.abort);
	pthread_mutex_lock(&ws->lock);
	while (ws->done < ws->n) {
		struct timespec until;

		/* a Ctrl-C while the others still send (one may wait on a receiver that takes
		 * nothing): stop them now, not at their stall timeout */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 50000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&ws->cond, &ws->lock, &until);
		if (cancelled(c) && !rc) {
			rc = ERR_CANCELLED;
			abort_streams(ws, c->out.abort);
		}
	}
	pthread_mutex_unlock(&ws->lock);
	if (rc == ERR_CANCELLED || cancelled(c))
		return ERR_CANCELLED;
	for (unsigned i = 0; i < ws->n; i++) {
		*sent_r += ws->w[i].sent;
		*zero_r += ws->w[i].zero;
		if (!rc && ws->w[i].rc) {
			rc = ws->w[i].rc;
			log_error("migration: stream %u of %u failed (%s)", i + 2, ws->n + 1,
			          err_str(rc));
		}
	}
	return rc;
}

/* Bytes written to every stream so far (the threads' between jobs). */
static uint64_t sent_bytes(const struct pc_send_ctx *c)
{
	uint64_t bytes = c->out.bytes;

	for (unsigned i = 0; c->ws && i < c->ws->n; i++)
		bytes += c->ws->w[i].c.out.bytes;
	return bytes;
}

static void wait_drained(struct pc_send_ctx *c)
{
	int64_t deadline = loop_now_ms() + PC_DRAIN_MAX_MS;

	wait_drained_fd(c, c->out.fd, deadline);
	for (unsigned i = 0; c->ws && i < c->ws->n; i++)
		wait_drained_fd(c, c->ws->w[i].c.out.fd, deadline);
}

/*
 * How many pages the guest had written at_us into the round just ended (end_us long, end_dirty
 * at its fetch), from its peeks: the next round, if it lasts at_us, finds about as many dirty.
 */
static uint64_t dirty_at(const struct pc_skip *k, int64_t at_us, int64_t end_us, uint64_t end_dirty)
{
	int64_t t0 = 0;
	uint64_t d0 = 0;

	for (unsigned i = 0; i <= k->nsamples; i++) {
		int64_t t1 = i < k->nsamples ? k->at_us[i] : end_us;
		uint64_t d1 = i < k->nsamples ? k->dirty[i] : end_dirty;

		if (at_us <= t1 && t1 > t0)
			return d0 + (uint64_t)((double)(d1 > d0 ? d1 - d0 : 0) *
			                       (double)(at_us - t0) / (double)(t1 - t0));
		if (t1 >= t0) {
			t0 = t1;
			d0 = d1;
		}
	}
	return end_dirty;
}

static int live_rounds(struct pc_send_ctx *c, struct pc_state *pol)
{
	struct mig_report *rep = c->rep;
	int rc;

	for (unsigned round = 0;; round++) {
		struct mig_round_report *rr =
		    &rep->rounds[rep->nrounds < MIG_MAX_ROUNDS ? rep->nrounds : MIG_MAX_ROUNDS - 1];
		int64_t t0 = loop_now_us();
		uint64_t bytes0 = sent_bytes(c), ndirty = 0;
		int64_t round_us, t_fetch;
		struct pc_round pr;
		struct pc_verdict v;

		memset(rr, 0, sizeof(*rr));
		rr->round = round;
		skip_begin(c->skip);
		c->z.round = round;
		c->z.round_t0 = t0;
		c->z.round_bytes0 = c->out.bytes; /* this stream's own, as link_Bps counts */
		rc = run_all(c, round == 0 ? PC_JOB_ROUND0 : PC_JOB_DIRTY, &rr->pages,
		             &rr->zero_pages);
		skip_end(c->skip);
		rr->skipped = c->skipped;
		for (unsigned i = 0; c->ws && i < c->ws->n; i++)
			rr->skipped += c->ws->w[i].c.skipped;
		rr->peeks = c->skip->npeeks;
		rr->peek_us = (uint64_t)c->skip->peek_us;
		if (!rc)
			rc = send_round_end(c, round, rr->pages);
		if (rc)
			return rc;
		fault_point_n("send:round", round);
		wait_drained(c);
		t_fetch = loop_now_us();
		round_us = t_fetch - c->skip->round_t0;
		rc = c->src->ops->logdirty_fetch(c->src->arg, &ndirty);
		if (rc)
			return rc;
		take_dirty(c, false);
		rr->duration_us = (uint64_t)(loop_now_us() - t0);
		sample_ram(c);
		rr->bytes = sent_bytes(c) - bytes0;
		rr->dirty_after = ndirty;
		rr->bandwidth_Bps =
		    rr->duration_us ? (double)rr->bytes * 1e6 / (double)rr->duration_us : 0;
		rr->dirty_rate_pps =
		    rr->duration_us ? (double)ndirty * 1e6 / (double)rr->duration_us : 0;
		/* --compress auto: a stream's share of the fastest round (a round of deltas
		 * is slower for the CPU it takes, not for the link) */
		if (rr->bandwidth_Bps / c->nstreams > c->z.last_round_Bps)
			c->z.last_round_Bps = rr->bandwidth_Bps / c->nstreams;
		if (c->ws)
			c->ws->link_Bps = c->z.last_round_Bps;
		if (rep->nrounds < MIG_MAX_ROUNDS)
			rep->nrounds++;
		rep->total_pages += rr->pages;
		memset(&pr, 0, sizeof(pr));
		pr.round = round;
		pr.pages_sent = rr->pages;
		pr.bytes_sent = rr->bytes;
		pr.duration_us = rr->duration_us;
		pr.dirty_pages = ndirty;
		pr.total_bytes = sent_bytes(c);
		/* with a cap, plan with the cap: stop-and-copy is faster than that */
		pr.bandwidth_Bps = rr->bandwidth_Bps;
		if (c->params->bandwidth_Bps &&
		    (pr.bandwidth_Bps <= 0 || pr.bandwidth_Bps > (double)c->params->bandwidth_Bps))
			pr.bandwidth_Bps = (double)c->params->bandwidth_Bps;
		pr.dirty_rate_pps = rr->dirty_rate_pps;
		/* --compress: what a page sent again cost this round (deltas are a few dozen
		 * bytes), so that the policy weighs the next rounds at that cost */
		if (c->z.mode && round > 0 && rr->pages >= PC_COST_MIN_PAGES)
			pc_set_page_cost(
			    pol,
			    (uint32_t)(rr->bytes / rr->pages > 16 ? rr->bytes / rr->pages : 16));
		v = pc_decide(pol, &pr);
		/* hybrid: once a round no longer halves the dirty set, more rounds only resend the
		 * guest's hot pages; post-copy sends each of them once. The round's peeks tell
		 * beforehand: the next round, sending ndirty pages at this round's rate, finds
		 * about as many dirty as this one had at that time. */
		if (c->mode == MIG_MODE_HYBRID && v.decision == PC_CONTINUE) {
			double pps =
			    rr->duration_us ? (double)rr->pages * 1e6 / (double)rr->duration_us : 0;
			int64_t next_us = pps > 0 ? (int64_t)((double)ndirty / pps * 1e6) : 0;

			if (round >= 1 && ndirty * 2 >= rr->pages + rr->skipped) {
				v.decision = PC_ABORT;
				v.reason = "a round no longer halves the dirty set";
			} else if (rr->pages >= PC_COST_MIN_PAGES && pps > 0 &&
			           dirty_at(c->skip, next_us, round_us, ndirty) * 2 >= ndirty) {
				v.decision = PC_ABORT;
				v.reason = "the next round would not halve the dirty set";
			}
			if (v.decision == PC_ABORT)
				v.throttle_pct = 0;
		}
		skip_next_round(c->skip, t_fetch);
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
 * The switch-over's start: pause the guest (the rest of the stream goes at full speed), take
 * its state, and what it dirtied since the last fetch into pending (merge: added to it).
 */
static int suspend_guest(struct pc_send_ctx *c, struct pc_cpu_state *st, bool merge)
{
	struct mig_report *report = c->rep;
	uint64_t ndirty;
	int rc;

	report->t_pause_us = loop_now_us();
	c->out.limited = false;
	rc = c->src->ops->suspend(c->src->arg, st);
	if (rc)
		return rc;
	report->t_suspended_us = loop_now_us();
	fault_point("send:suspend");
	rc = c->src->ops->logdirty_fetch(c->src->arg, &ndirty);
	if (!rc)
		take_dirty(c, merge);
	return rc;
}

/*
 * Stop-and-copy: pause the guest, send what is still dirty at full link speed, its vCPU and
 * device state, the --debug verification pass and the END record.
 */
static int stop_and_copy(struct pc_send_ctx *c, struct pc_cpu_state *st)
{
	struct mig_report *report = c->rep;
	uint64_t sent = 0, zero = 0, bytes0;
	int rc;

	rc = suspend_guest(c, st, true);
	if (rc)
		return rc;
	log_debug("stop-and-copy: %llu pages dirty", (unsigned long long)count_pending(c));
	bytes0 = sent_bytes(c);
	rc = run_all(c, PC_JOB_DIRTY, &sent, &zero);
	if (!rc)
		rc = send_state(c, st);
	report->final_pages = sent;
	report->final_bytes = sent_bytes(c) - bytes0;
	report->total_pages += sent;
	if (!rc && c->params->debug) {
		rc = run_all(c, PC_JOB_VERIFY, &sent, &zero);
		report->verified = !rc;
	}
	if (!rc)
		rc = run_all(c, PC_JOB_END, &sent, &zero);
	report->t_stream_end_us = loop_now_us();
	return rc;
}

/*
 * The pages the destination lacks at a post-copy switch-over: for a guest that had pre-copy
 * rounds (hybrid), what they left dirty; otherwise every page that holds data. Page 0 goes
 * with the state.
 */
static int postcopy_need(struct pc_send_ctx *c, uint64_t **need_r)
{
	uint64_t n = c->src->nr_pages, pfn = 0, *need = calloc(c->bm_words, sizeof(uint64_t));
	int rc = 0;

	if (!need)
		return ERR_NOMEM;
	if (c->mode == MIG_MODE_HYBRID && c->rep->nrounds) {
		memcpy(need, c->pending, c->bm_words * sizeof(uint64_t));
	} else {
		while (pfn < n && !rc) {
			uint64_t start = n, end = n;

			rc = next_data(c, pfn, &start, &end);
			for (uint64_t q = start; !rc && q < end; q++)
				need[q / 64] |= 1ull << (q % 64);
			pfn = end > start ? end : n;
		}
	}
	need[0] &= ~1ull;
	if (rc)
		free(need);
	else
		*need_r = need;
	return rc;
}

/*
 * The bitmap need as POSTCOPY_NEED (type) or POSTCOPY_STALE records (a record covers 1 GiB of
 * guest memory; how many went in *nrec_r, may be NULL).
 */
static int send_need(struct pc_send_ctx *c, const uint64_t *need, uint32_t type, unsigned *nrec_r)
{
	size_t cap = STREAM_REC_HDR_SIZE + 16 + STREAM_MAX_NEED_WORDS * 8;
	uint8_t *buf = malloc(cap);
	unsigned nrec = 0;
	int rc = 0;

	if (!buf)
		return ERR_NOMEM;
	for (size_t w = 0; w < c->bm_words && !rc; w += STREAM_MAX_NEED_WORDS) {
		uint32_t nw =
		    (uint32_t)(c->bm_words - w < STREAM_MAX_NEED_WORDS ? c->bm_words - w
		                                                       : STREAM_MAX_NEED_WORDS);

		rc = out_record(&c->out, buf, type,
		                stream_encode_need(buf + STREAM_REC_HDR_SIZE,
		                                   cap - STREAM_REC_HDR_SIZE, (uint64_t)w * 64,
		                                   need + w, nw, c->params->prepage));
		nrec += !rc;
	}
	free(buf);
	if (nrec_r)
		*nrec_r = nrec;
	return rc;
}

/*
 * The post-copy switch-over: pause the guest, send its state and page 0, name the pages the
 * destination lacks (POSTCOPY_NEED) and end the stream; the rest goes on the post-copy channel
 * from a thread (postcopy.h) that outlives this call. The dirty pages of the last moments go
 * first: the guest works on them.
 */
static int postcopy_switch(struct pc_send_ctx *c, struct pc_cpu_state *st)
{
	struct mig_report *report = c->rep;
	uint64_t sent = 0, zero = 0, *need = NULL, bytes0;
	int rc;

	rc = suspend_guest(c, st, c->mode == MIG_MODE_HYBRID && report->nrounds);
	if (!rc)
		rc = postcopy_need(c, &need);
	if (rc)
		return rc;
	bytes0 = sent_bytes(c);
	rc = send_run(c, 0, 1, false, &sent, &zero);
	if (!rc)
		rc = flush_batch(c);
	if (!rc)
		rc = flush_deltas(c);
	if (!rc)
		rc = send_state(c, st);
	if (!rc)
		rc = send_need(c, need, STREAM_REC_POSTCOPY_NEED, NULL);
	report->final_pages = sent;
	report->final_bytes = sent_bytes(c) - bytes0;
	report->total_pages += sent;
	if (!rc && c->params->debug)
		log_warn("migration: --debug's verification pass needs the whole memory at the "
		         "switch-over; post-copy skips it (check the guest with its backend's "
		         "check instead)");
	if (!rc)
		rc = run_all(c, PC_JOB_END, &sent, &zero);
	report->t_stream_end_us = loop_now_us();
	if (rc) {
		free(need);
		return rc;
	}
	log_debug("post-copy: %llu pages follow the switch-over",
	          (unsigned long long)count_pending(c));
	rc = pc_postcopy_serve(report, c->pc_fd, c->src->mem_fd, c->src->nr_pages, need, c->pending,
	                       c->params->bandwidth_Bps);
	c->pc_fd = -1; /* the phase's, even on failure */
	return rc;
}

/* --compress: the cache, the delta batch and the compressor's buffers; auto's first figures. */
static int compress_init(struct pc_send_ctx *c)
{
	struct pc_compress *z = &c->z;
	uint64_t cache = c->params->compress_cache_bytes;
	size_t bound = codec_bound(CODEC_ZSTD, STREAM_MAX_BODY);
	int64_t t0;
	int rc;

	z->mode = c->params->compress;
	c->rep->compress = z->mode;
	if (!z->mode)
		return 0;
	if (!cache) {
		cache = c->src->nr_pages * PAGE / 4;
		if (cache > PC_CACHE_DEFAULT_MAX)
			cache = PC_CACHE_DEFAULT_MAX;
	}
	cache /= c->nstreams; /* each stream caches the pages it sends */
	if (codec_bound(CODEC_LZ4, STREAM_MAX_BODY) > bound)
		bound = codec_bound(CODEC_LZ4, STREAM_MAX_BODY);
	z->zcap = STREAM_REC_HDR_SIZE + 16 + bound + 8;
	z->zbuf = malloc(z->zcap);
	z->raw = malloc(STREAM_MAX_BODY + 8);
	z->codec = codec_ctx_new();
	if (!z->zbuf || !z->raw || !z->codec)
		return ERR_NOMEM;
	rc = stream_delta_batch_init(&z->deltas);
	if (!rc && (z->mode & (COMPRESS_DELTA | COMPRESS_AUTO)))
		rc = pagecache_init(&z->cache, cache,
		                    c->nstreams > 1
		                        ? c->src->nr_pages / c->nstreams + STREAM_CHUNK_PAGES
		                        : c->src->nr_pages);
	if (rc || !z->cache.nslots)
		return rc;
	c->rep->cache_bytes = z->cache.nslots * PAGE;
	/* what a cache copy (the first touch of cache memory included) and a delta cost on this
	 * machine, before the first is made; a delta also copies the page into the cache */
	memset(c->batch.data, 0x5a, 2 * PAGE);
	t0 = mono_ns();
	for (uint64_t i = 0; i < PC_MEASURE_PAGES; i++)
		pagecache_put(&z->cache, i, c->batch.data);
	z->fill_ns = (double)(mono_ns() - t0) / PC_MEASURE_PAGES;
	t0 = mono_ns();
	for (uint64_t i = 0; i < PC_MEASURE_PAGES; i++) {
		uint8_t *old = pagecache_get(&z->cache, i);

		delta_encode(old, c->batch.data + PAGE, z->raw, PC_DELTA_MAX);
		memcpy(old, c->batch.data + PAGE, PAGE);
	}
	z->delta_ns = (double)(mono_ns() - t0) / PC_MEASURE_PAGES;
	z->cache.hits = 0;
	for (uint64_t i = 0; i < PC_MEASURE_PAGES; i++)
		pagecache_drop(&z->cache, i);
	return 0;
}

static void compress_free(struct pc_compress *z)
{
	if (z->cache.nslots) /* the guest is paused: after the switch-over (pc_send_release) */
		pagecache_free_later(&z->cache);
	stream_delta_batch_free(&z->deltas);
	codec_ctx_free(z->codec);
	free(z->raw);
	free(z->zbuf);
}

void pc_send_release(void)
{
	pagecache_release();
}

/* Set a stream's descriptor non-blocking for the stream's time when writes have a bound. */
static void out_bound(struct pc_out *o, const struct mig_params *params, int *fd_flags_r)
{
	*fd_flags_r = fcntl(o->fd, F_GETFL);
	if (params->stall_timeout_ms > 0 && *fd_flags_r >= 0 &&
	    fcntl(o->fd, F_SETFL, *fd_flags_r | O_NONBLOCK) == 0)
		o->stall_ms = params->stall_timeout_ms;
}

/*
 * --streams: open the extra connections (the header that names them went first, so a receiver
 * that cannot take them refuses the stream before), tag each with JOIN, and start a thread per
 * connection.
 */
static int start_streams(struct pc_send_ctx *c)
{
	const struct pc_streams *x = c->params->extra;
	struct pc_workers *ws = c->ws;
	int rc = 0;

	for (unsigned i = 0; i + 1 < c->nstreams && !rc; i++) {
		struct pc_worker *w = &ws->w[i];
		uint8_t buf[STREAM_REC_HDR_SIZE + STREAM_TOKEN_LEN + 8];
		int fd = x->open(x->arg), flags;

		if (fd < 0) {
			log_error("migration: cannot open stream %u of %u to the receiver", i + 2,
			          c->nstreams);
			return fd;
		}
		w->ws = ws;
		w->c.src = c->src;
		w->c.params = c->params;
		w->c.rep = &w->rep;
		w->c.pending = c->pending;
		w->c.skip = c->skip;
		w->c.bm_words = c->bm_words;
		w->c.idx = i + 1;
		w->c.nstreams = c->nstreams;
		w->c.out.fd = fd;
		w->c.out.rate_Bps = c->out.rate_Bps;
		w->c.out.bucket = c->out.bucket;
		w->c.out.abort = c->out.abort;
		w->c.out.limited = c->out.limited;
		w->c.out.cancel = c->params->cancel;
		ws->n++; /* closed and freed by stop_streams from here on */
		rc = out_record(&w->c.out, buf, STREAM_REC_JOIN,
		                stream_encode_join(buf + STREAM_REC_HDR_SIZE,
		                                   sizeof(buf) - STREAM_REC_HDR_SIZE, c->token,
		                                   i + 1));
		if (!rc)
			rc = stream_batch_init(&w->c.batch);
		if (!rc)
			rc = compress_init(&w->c);
		if (rc)
			break;
		out_bound(&w->c.out, c->params, &flags);
		rc = pthread_create(&w->thread, NULL, worker_main, w) ? ERR_NOMEM : 0;
		w->started = !rc;
	}
	return rc;
}

/* Stop the threads, close the extra streams, and add what they counted to the report. */
static void stop_streams(struct pc_send_ctx *c)
{
	struct pc_workers *ws = c->ws;
	struct mig_report *r = c->rep;

	if (!ws)
		return;
	pthread_mutex_lock(&ws->lock);
	ws->job = PC_JOB_QUIT;
	ws->gen++;
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	for (unsigned i = 0; i < ws->n; i++) {
		struct pc_worker *w = &ws->w[i];
		const struct mig_report *wr = &w->rep;

		if (w->started)
			pthread_join(w->thread, NULL);
		close(w->c.out.fd);
		r->page_bytes_plain += wr->page_bytes_plain;
		r->delta_pages += wr->delta_pages;
		r->delta_bytes += wr->delta_bytes;
		r->encode_us += wr->encode_us;
		r->records_lz4 += wr->records_lz4;
		r->records_zstd += wr->records_zstd;
		r->compress_in += wr->compress_in;
		r->compress_out += wr->compress_out;
		r->cache_bytes += wr->cache_bytes;
		r->cache_hits += w->c.z.cache.hits;
		r->cache_misses += w->c.z.cache.misses;
		r->stalled |= w->c.out.stalled;
		stream_batch_free(&w->c.batch);
		compress_free(&w->c.z);
	}
	pthread_mutex_destroy(&ws->lock);
	pthread_cond_destroy(&ws->cond);
	free(ws);
	c->ws = NULL;
}

int pc_send(const struct pc_source *src, int fd, const struct mig_params *params,
            struct mig_report *report)
{
	struct pc_send_ctx c = {.src = src, .params = params, .rep = report};
	struct pc_bucket bucket = {.lock = PTHREAD_MUTEX_INITIALIZER};
	volatile int aborted = 0;
	struct pc_cpu_state st = {0};
	struct pc_params pp = params->policy;
	struct pc_state pol;
	int rc, fd_flags;

	pc_send_release(); /* a previous migration's, if its caller did not */
	memset(report, 0, sizeof(*report));
	report->t_start_us = loop_now_us();
	report->nr_pages = src->nr_pages;
	c.nstreams = params->streams > 1 && params->extra ? params->streams : 1;
	c.mode = params->mode;
	c.pc_fd = -1;
	report->mode = c.mode;
	if (c.nstreams > STREAM_MAX_STREAMS) {
		log_error("migration: at most %u streams", STREAM_MAX_STREAMS);
		return ERR_INVAL;
	}
	report->streams = c.nstreams;
	c.out.fd = fd;
	c.out.rate_Bps = params->bandwidth_Bps;
	c.out.bucket = &bucket;
	c.out.abort = &aborted;
	bucket.last_us = loop_now_us();
	c.out.limited = params->bandwidth_Bps != 0;
	c.out.cancel = params->cancel;
	rc = stream_batch_init(&c.batch);
	if (rc)
		return rc;
	/* bounded writes: non-blocking for the stream's time (the descriptor is this
	 * migration's own: the rune's pipe or the socket) */
	out_bound(&c.out, params, &fd_flags);
	c.bm_words = (src->nr_pages + 63) / 64;
	c.pending = calloc(c.bm_words, sizeof(uint64_t));
	if (!c.pending) {
		stream_batch_free(&c.batch);
		return ERR_NOMEM;
	}
	pp.nr_pages = src->nr_pages;
	pp.page_wire_bytes = PAGE + 8;
	if (c.mode == MIG_MODE_HYBRID)
		pp.on_stall = PC_STALL_ABORT; /* post-copy instead of slowing the guest */
	pc_init(&pol, &pp);
	sample_ram(&c);
	rc = compress_init(&c);
	if (rc) {
		log_error("migration: cannot allocate --compress's buffers and its %llu MiB page "
		          "cache (try a smaller --compress-cache)",
		          (unsigned long long)(params->compress_cache_bytes >> 20));
		goto out;
	}
	rc = src->ops->logdirty_enable(src->arg, &c.bitmap, report->dirtylog_method,
	                               sizeof(report->dirtylog_method));
	if (rc)
		goto out;
	c.skip = skip_new(src); /* round 0's dirty log began at the enable */
	if (!c.skip) {
		rc = ERR_NOMEM;
		goto out;
	}
	rc = send_header(&c);
	if (rc)
		goto out;
	if (c.nstreams > 1) {
		c.ws = calloc(1, sizeof(*c.ws));
		if (!c.ws) {
			rc = ERR_NOMEM;
			goto out;
		}
		pthread_mutex_init(&c.ws->lock, NULL);
		pthread_cond_init(&c.ws->cond, NULL);
		c.ws->main_fd = fd;
		rc = start_streams(&c);
		if (rc)
			goto out;
	}
	if (c.mode) { /* a destination that cannot take it refuses before anything moved */
		c.pc_fd = pc_postcopy_connect(params, c.token, c.nstreams);
		if (c.pc_fd < 0) {
			rc = c.pc_fd;
			goto out;
		}
	}
	rc = c.mode == MIG_MODE_POSTCOPY ? 0 : live_rounds(&c, &pol);
	skip_stop(c.skip); /* no peek past the rounds: the source's socket is the suspend's */
	if (rc == ERR_NOTCONV && c.mode == MIG_MODE_HYBRID) {
		log_info("migration: pre-copy does not converge (%s); post-copy for the rest",
		         report->reason ? report->reason : "policy");
		rc = 0;
	}
	if (!rc && c.mode == MIG_MODE_HYBRID && report->nrounds) {
		/* the destination drops its stale copies of what the rounds left dirty while the
		 * guest still runs here, not in the downtime (page 0 stays: it goes with the state,
		 * maybe as a delta against that copy) */
		uint64_t w0 = c.pending[0];
		unsigned nrec = 0;

		c.pending[0] &= ~1ull;
		rc = send_need(&c, c.pending, STREAM_REC_POSTCOPY_STALE, &nrec);
		c.pending[0] = w0;
		/* a DROPPED for each STALE record, once the destination got to it past the
		 * round's pages: as long as it may take the stream */
		for (unsigned i = 0; i < nrec && !rc; i++)
			rc = pc_postcopy_await_dropped(c.pc_fd, params->stall_timeout_ms > 0
			                                            ? params->stall_timeout_ms
			                                            : PC_RECV_STALL_TIMEOUT_MS);
	}
	if (rc)
		goto out;
	rc = c.mode ? postcopy_switch(&c, &st) : stop_and_copy(&c, &st);
out:
	if (c.pc_fd >= 0)
		close(c.pc_fd);
	if (c.out.stall_ms > 0)
		fcntl(fd, F_SETFL, fd_flags);
	report->stalled = c.out.stalled;
	report->cache_hits = c.z.cache.hits;
	report->cache_misses = c.z.cache.misses;
	sample_ram(&c);
	report->total_bytes = sent_bytes(&c);
	stop_streams(&c);
	pc_cpu_state_free(&st);
	stream_batch_free(&c.batch);
	compress_free(&c.z);
	free(c.pending);
	skip_free(c.skip);
	return rc;
}
