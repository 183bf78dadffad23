/*
 * precopy.c - pre-copy sender and receiver for the sim backend's stream.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/precopy/stream.h"

#define PAGE STREAM_PAGE_SIZE

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
};

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
		ssize_t n = writev(o->fd, iov, iovcnt);

		if (n < 0 && errno == EINTR && o->cancel && *o->cancel)
			return ERR_CANCELLED;
		if (n < 0 && errno == EINTR)
			continue;
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

static bool cancelled(const struct pc_send_ctx *c)
{
	return c->params->cancel && *c->params->cancel;
}

/*
 * Send one page; in round 0 (full) zero pages are skipped, later a page that became zero is
 * sent as a zero entry (no data). *zero_r counts zero pages seen.
 */
static int send_page(struct pc_send_ctx *c, uint64_t pfn, bool full, uint64_t *sent_r,
                     uint64_t *zero_r)
{
	const uint8_t *page = c->src->mem + pfn * PAGE;

	if (stream_page_is_zero(page)) {
		(*zero_r)++;
		if (full)
			return 0;
		page = NULL;
	}
	stream_batch_add(&c->batch, pfn, page);
	(*sent_r)++;
	if (stream_batch_full(&c->batch))
		return flush_batch(&c->out, &c->batch);
	return 0;
}

/* Send the pages set in the bitmap (or all, for round 0). */
static int send_pages(struct pc_send_ctx *c, bool full, uint64_t *sent_r, uint64_t *zero_r)
{
	uint64_t n = c->src->nr_pages;
	int rc = 0;

	*sent_r = 0;
	*zero_r = 0;
	for (uint64_t w = 0; w < (n + 63) / 64 && !rc; w++) {
		uint64_t bits = full ? ~0ull : c->pending[w];

		while (bits && !rc) {
			unsigned b = (unsigned)__builtin_ctzll(bits);
			uint64_t pfn = w * 64 + b;

			bits &= bits - 1;
			if (pfn >= n)
				break;
			rc = send_page(c, pfn, full, sent_r, zero_r);
		}
		if ((w & 255) == 0 && cancelled(c))
			return ERR_CANCELLED;
	}
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
	int rc;

	rc = out_record(&c->out, buf, STREAM_REC_VERIFY, 0);
	if (rc)
		return rc;
	stream_batch_reset(&c->batch, STREAM_PAGES_VERIFY);
	for (uint64_t pfn = 0; pfn < c->src->nr_pages && !rc; pfn++) {
		const uint8_t *page = c->src->mem + pfn * PAGE;

		stream_batch_add(&c->batch, pfn, stream_page_is_zero(page) ? NULL : page);
		if (stream_batch_full(&c->batch))
			rc = flush_batch(&c->out, &c->batch);
	}
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
		wait_drained(c);
		rc = c->src->ops->logdirty_fetch(c->src->arg, &ndirty);
		if (rc)
			return rc;
		take_dirty(c, false);
		rr->duration_us = (uint64_t)(loop_now_us() - t0);
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

int pc_send(const struct pc_source *src, int fd, const struct mig_params *params,
            struct mig_report *report)
{
	struct pc_send_ctx c = {.src = src, .params = params, .rep = report};
	struct pc_cpu_state st = {0};
	struct pc_params pp = params->policy;
	struct pc_state pol;
	uint64_t sent, zero, ndirty, bytes0;
	int rc;

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
	c.bm_words = (src->nr_pages + 63) / 64;
	c.pending = calloc(c.bm_words, sizeof(uint64_t));
	if (!c.pending) {
		stream_batch_free(&c.batch);
		return ERR_NOMEM;
	}
	pp.nr_pages = src->nr_pages;
	pp.page_wire_bytes = PAGE + 8;
	pc_init(&pol, &pp);
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

	/* stop-and-copy: the guest is paused from here on; full link speed */
	report->t_pause_us = loop_now_us();
	c.out.limited = false;
	rc = src->ops->suspend(src->arg, &st);
	if (rc)
		goto out;
	report->t_suspended_us = loop_now_us();
	rc = src->ops->logdirty_fetch(src->arg, &ndirty);
	if (rc)
		goto out;
	take_dirty(&c, true);
	log_debug("stop-and-copy: %llu pages dirty", (unsigned long long)count_pending(&c));
	bytes0 = c.out.bytes;
	rc = send_pages(&c, false, &sent, &zero);
	if (!rc)
		rc = send_state(&c, &st);
	report->final_pages = sent;
	report->final_bytes = c.out.bytes - bytes0;
	report->total_pages += sent;
	if (!rc && params->debug) {
		rc = send_verify(&c);
		report->verified = !rc;
	}
	if (!rc) {
		static uint8_t buf[STREAM_REC_HDR_SIZE + 8];

		rc = out_record(&c.out, buf, STREAM_REC_END, 0);
	}
	report->t_stream_end_us = loop_now_us();
out:
	report->total_bytes = c.out.bytes;
	pc_cpu_state_free(&st);
	stream_batch_free(&c.batch);
	free(c.pending);
	return rc;
}

/* --- receiver ---------------------------------------------------------------------------- */

static int read_record(int fd, uint8_t *body, struct stream_rec *rec)
{
	uint8_t hdr[STREAM_REC_HDR_SIZE];
	uint64_t csum;
	uint32_t padded;
	int rc;

	rc = fd_read_exact(fd, hdr, sizeof(hdr));
	if (rc) {
		log_error("migration stream ended early (truncated stream or sender gone)");
		return ERR_IO;
	}
	rc = stream_rec_parse_header(hdr, &rec->type, &rec->length, &csum);
	if (rc) {
		uint32_t type, length; /* as sent: the parser sets nothing when it refuses */

		memcpy(&type, hdr, sizeof(type));
		memcpy(&length, hdr + 4, sizeof(length));
		log_error("migration stream: malformed record header (type %u, length %u)",
		          le32toh(type), le32toh(length));
		return rc;
	}
	padded = (rec->length + 7u) & ~7u;
	rc = fd_read_exact(fd, body, padded);
	if (rc) {
		log_error("migration stream ended inside a %s record", stream_rec_name(rec->type));
		return ERR_IO;
	}
	rc = stream_rec_check(rec->type, rec->length, csum, body);
	if (rc) {
		log_error("migration stream: %s record failed its checksum (corrupted stream)",
		          stream_rec_name(rec->type));
		return rc;
	}
	rec->body = body;
	return 0;
}

static int apply_pages(const struct stream_rec *rec, uint8_t *mem, uint64_t nr_pages,
                       bool verify_mode, struct mig_report *report)
{
	struct stream_pages p;
	uint32_t d = 0;
	int rc = stream_decode_pages(rec, nr_pages, &p);

	if (rc) {
		log_error("migration stream: malformed PAGE_DATA record");
		return rc;
	}
	if (!!(p.flags & STREAM_PAGES_VERIFY) != verify_mode) {
		log_error("migration stream: verification pages outside the verification pass");
		return ERR_PROTO;
	}
	for (uint32_t i = 0; i < p.count; i++) {
		uint64_t e = stream_pages_pfn(&p, i), pfn = e & STREAM_PFN_MASK;
		uint8_t *dst = mem + pfn * PAGE;

		if (verify_mode) {
			bool same = (e & STREAM_PFN_ZERO)
			                ? stream_page_is_zero(dst)
			                : !memcmp(dst, p.data + (size_t)d * PAGE, PAGE);

			if (!same) {
				if (!report->verify_mismatches)
					log_error("verification: page %llu differs from the source",
					          (unsigned long long)pfn);
				report->verify_mismatches++;
			}
		} else if (e & STREAM_PFN_ZERO) {
			memset(dst, 0, PAGE);
		} else {
			memcpy(dst, p.data + (size_t)d * PAGE, PAGE);
		}
		if (!(e & STREAM_PFN_ZERO))
			d++;
	}
	report->total_pages += p.count;
	return 0;
}

static int take_blob(const struct stream_rec *rec, struct pc_cpu_state *st, unsigned nr_vcpus,
                     uint8_t *seen)
{
	const uint8_t *blob;
	uint32_t id, len;
	int rc = stream_decode_blob(rec, &id, &blob, &len);

	if (rc)
		return rc;
	if (rec->type == STREAM_REC_DEVICE_MODEL) {
		if (st->dm) {
			log_error("migration stream: two DEVICE_MODEL records");
			return ERR_PROTO;
		}
		st->dm = malloc(len ? len : 1);
		if (!st->dm)
			return ERR_NOMEM;
		memcpy(st->dm, blob, len);
		st->dm_len = len;
		return 0;
	}
	if (id >= nr_vcpus || seen[id] || (st->vcpus && len != st->vcpu_len) || len == 0) {
		log_error("migration stream: unexpected VCPU_STATE record for vCPU %u", id);
		return ERR_PROTO;
	}
	if (!st->vcpus) {
		st->vcpus = calloc(nr_vcpus, len);
		if (!st->vcpus)
			return ERR_NOMEM;
		st->vcpu_len = len;
		st->nr_vcpus = nr_vcpus;
	}
	memcpy(st->vcpus + (size_t)id * len, blob, len);
	seen[id] = 1;
	return 0;
}

int pc_receive(int fd, uint8_t *mem, uint64_t nr_pages, enum hv_domain_type type, unsigned nr_vcpus,
               struct pc_cpu_state *state, struct mig_report *report)
{
	uint8_t *body = malloc(STREAM_MAX_BODY + 8);
	uint8_t seen[PC_MAX_VCPUS] = {0};
	struct stream_header h;
	struct stream_rec rec;
	bool verify_mode = false;
	int rc;

	memset(state, 0, sizeof(*state));
	memset(report, 0, sizeof(*report));
	report->t_start_us = loop_now_us();
	report->nr_pages = nr_pages;
	if (!body)
		return ERR_NOMEM;
	if (nr_vcpus > PC_MAX_VCPUS) {
		rc = ERR_INVAL;
		goto out;
	}
	rc = read_record(fd, body, &rec);
	if (rc)
		goto out;
	if (rec.type != STREAM_REC_HEADER || stream_decode_header(&rec, &h)) {
		log_error("migration stream: not an xl-ext sim stream (bad or missing header)");
		rc = ERR_PROTO;
		goto out;
	}
	if (h.nr_pages != nr_pages || h.domain_type != (uint32_t)type || h.nr_vcpus != nr_vcpus) {
		log_error(
		    "migration stream describes a guest (%llu pages, %u vCPUs, %s) other than "
		    "its configuration (%llu pages, %u vCPUs, %s)",
		    (unsigned long long)h.nr_pages, h.nr_vcpus,
		    hv_type_name((enum hv_domain_type)h.domain_type), (unsigned long long)nr_pages,
		    nr_vcpus, hv_type_name(type));
		rc = ERR_PROTO;
		goto out;
	}
	for (;;) {
		report->total_bytes += stream_rec_wire_size(rec.length);
		rc = read_record(fd, body, &rec);
		if (rc)
			goto out;
		switch (rec.type) {
		case STREAM_REC_PAGE_DATA:
			rc = apply_pages(&rec, mem, nr_pages, verify_mode, report);
			break;
		case STREAM_REC_ROUND_END: {
			uint32_t round;
			uint64_t pages;

			rc = stream_decode_round_end(&rec, &round, &pages);
			if (!rc && round != report->nrounds) {
				log_error("migration stream: round %u out of order", round);
				rc = ERR_PROTO;
			}
			if (!rc)
				report->nrounds++;
			break;
		}
		case STREAM_REC_VCPU_STATE:
		case STREAM_REC_DEVICE_MODEL:
			rc = take_blob(&rec, state, nr_vcpus, seen);
			break;
		case STREAM_REC_VERIFY:
			verify_mode = true;
			report->verified = true;
			break;
		case STREAM_REC_END:
			for (unsigned v = 0; v < nr_vcpus; v++)
				if (!seen[v]) {
					log_error("migration stream ended without vCPU %u's state",
					          v);
					rc = ERR_PROTO;
					goto out;
				}
			if (type == HV_TYPE_HVM && !state->dm) {
				log_error(
				    "migration stream ended without the HVM device model state");
				rc = ERR_PROTO;
				goto out;
			}
			if (report->verify_mismatches) {
				log_error("verification failed: %llu pages differ from the source",
				          (unsigned long long)report->verify_mismatches);
				rc = ERR_CHECKSUM;
				goto out;
			}
			rc = 0;
			goto out;
		default:
			log_error("migration stream: unexpected %s record",
			          stream_rec_name(rec.type));
			rc = ERR_PROTO;
		}
		if (rc)
			goto out;
	}
out:
	report->t_end_us = loop_now_us();
	if (rc)
		pc_cpu_state_free(state);
	free(body);
	return rc;
}
