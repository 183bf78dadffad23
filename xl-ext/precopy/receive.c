/*
 * receive.c - the receiving end of the sim backend's pre-copy stream (the sender: precopy.c):
 * records are read and checked, pages written into the new guest's memory file.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fault.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/precopy/codec.h"
#include "xl-ext/precopy/postcopy.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/precopy/precopy_int.h"

/* Read len bytes of the stream, giving up on a sender silent for PC_RECV_STALL_TIMEOUT_MS. */
static int read_stream(int fd, void *buf, size_t len)
{
	int rc = fd_read_exact_timeout(fd, buf, len, PC_RECV_STALL_TIMEOUT_MS);

	if (rc == ERR_TIMEOUT)
		log_error(
		    "migration stream: nothing from the sender for %d s (stopped, or the path "
		    "went silent)",
		    PC_RECV_STALL_TIMEOUT_MS / 1000);
	return rc;
}

static int read_record(int fd, uint8_t *body, struct stream_rec *rec)
{
	uint8_t hdr[STREAM_REC_HDR_SIZE];
	uint64_t csum;
	uint32_t padded;
	int rc;

	rc = read_stream(fd, hdr, sizeof(hdr));
	if (rc == ERR_TIMEOUT)
		return rc;
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
	for (uint32_t done = 0; !rc && done < padded; done += PC_IO_MAX_BYTES)
		rc = read_stream(fd, body + done,
		                 padded - done < PC_IO_MAX_BYTES ? padded - done : PC_IO_MAX_BYTES);
	if (rc) {
		if (rc != ERR_TIMEOUT) /* a stall is said above */
			log_error("migration stream ended inside a %s record",
			          stream_rec_name(rec->type));
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

/* The receiving end: the new guest's memory file and a buffer to compare pages in --debug. */
struct pc_recv_ctx {
	int mem_fd;
	uint64_t nr_pages;
	enum hv_domain_type type;
	unsigned nr_vcpus;
	uint8_t seen[PC_MAX_VCPUS]; /* vCPU states received */
	bool verify_mode;
	uint8_t *scratch; /* STREAM_MAX_BATCH pages: the verification pass, deltas */
	uint32_t version; /* the stream's (its header's) */
	uint8_t *map;     /* the guest's memory, mapped for deltas (NULL: not yet; MAP_FAILED) */
	struct codec_ctx *codec;
	uint8_t *unz; /* a COMPRESSED record's body, decompressed */
	struct mig_report *report;
	unsigned stream_idx, nstreams; /* --streams: which this is, of how many */
	uint64_t *need; /* post-copy: the pages that follow the switch-over (POSTCOPY_NEED) */
	uint32_t prepage;
	int pc_fd; /* post-copy: the channel (POSTCOPY_DROPPED goes there), -1 */
};

/*
 * With several streams each page comes down the stream of its chunk, which keeps the copies of
 * a page in order; a page on another stream is a broken sender.
 */
static int check_streams(const struct pc_recv_ctx *r, uint64_t pfn)
{
	if (r->nstreams <= 1 || stream_of_pfn(pfn, r->nstreams) == r->stream_idx)
		return 0;
	log_error("migration stream %u of %u: page %llu belongs to stream %u", r->stream_idx + 1,
	          r->nstreams, (unsigned long long)pfn, stream_of_pfn(pfn, r->nstreams) + 1);
	return ERR_PROTO;
}

static int need_scratch(struct pc_recv_ctx *r)
{
	if (!r->scratch)
		r->scratch = malloc((size_t)STREAM_MAX_BATCH * PAGE);
	return r->scratch ? 0 : ERR_NOMEM;
}

/*
 * Write n pages of data at pfn into the guest's memory file. pwrite allocates a page and
 * copies into it without a page fault and without clearing it first: no fault per page on the
 * receiver's critical path, and only pages with data are allocated, as on the source.
 */
static int write_pages(const struct pc_recv_ctx *r, uint64_t pfn, const uint8_t *data, size_t n)
{
	size_t len = n * PAGE, done = 0;

	while (done < len) {
		size_t want = len - done < PC_IO_MAX_BYTES ? len - done : PC_IO_MAX_BYTES;
		ssize_t w = pwrite(r->mem_fd, data + done, want, (off_t)(pfn * PAGE + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_error_errno(w < 0 ? errno : EIO,
			                "migration: cannot write guest pages %llu-%llu",
			                (unsigned long long)pfn, (unsigned long long)(pfn + n - 1));
			return w < 0 ? err_from_errno(errno) : ERR_IO;
		}
		done += (size_t)w;
	}
	return 0;
}

/* n pages that became zero on the source: give them back (a hole reads as zeros). */
static int zero_pages(const struct pc_recv_ctx *r, uint64_t pfn, size_t n)
{
	static const uint8_t zero[PAGE];

	if (fallocate(r->mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(pfn * PAGE),
	              (off_t)(n * PAGE)) == 0)
		return 0;
	for (size_t i = 0; i < n; i++) { /* a file that cannot punch holes: write zeros */
		int rc = write_pages(r, pfn + i, zero, 1);

		if (rc)
			return rc;
	}
	return 0;
}

/* Read n pages at pfn into buf (a hole reads as zeros). */
static int read_guest(const struct pc_recv_ctx *r, uint8_t *buf, uint64_t pfn, size_t n)
{
	size_t len = n * PAGE, done = 0;

	while (done < len) {
		size_t want = len - done < PC_IO_MAX_BYTES ? len - done : PC_IO_MAX_BYTES;
		ssize_t got = pread(r->mem_fd, buf + done, want, (off_t)(pfn * PAGE + done));

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			log_error_errno(errno, "migration: cannot read guest pages %llu-%llu",
			                (unsigned long long)pfn, (unsigned long long)(pfn + n - 1));
			return err_from_errno(errno);
		}
		if (got == 0) {
			memset(buf + done, 0, len - done);
			break;
		}
		done += (size_t)got;
	}
	return 0;
}

/* --debug: compare n pages at pfn with data (NULL: they must be zero); count mismatches. */
static int verify_pages(const struct pc_recv_ctx *r, uint64_t pfn, const uint8_t *data, size_t n)
{
	int rc = read_guest(r, r->scratch, pfn, n);

	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *have = r->scratch + i * PAGE;
		bool same = data ? !memcmp(have, data + i * PAGE, PAGE) : stream_page_is_zero(have);

		if (same)
			continue;
		if (!r->report->verify_mismatches)
			log_error("verification: page %llu differs from the source",
			          (unsigned long long)(pfn + i));
		r->report->verify_mismatches++;
	}
	return 0;
}

/*
 * Apply a PAGE_DATA record: runs of consecutive pfns of the same kind (data, whose pages are
 * consecutive in the record too, or zero) are written, given back or compared at once.
 */
static int apply_pages(const struct stream_rec *rec, struct pc_recv_ctx *r)
{
	struct stream_pages p;
	uint32_t d = 0;
	int rc = stream_decode_pages(rec, r->nr_pages, &p);

	if (rc) {
		log_error("migration stream: malformed PAGE_DATA record");
		return rc;
	}
	if (!!(p.flags & STREAM_PAGES_VERIFY) != r->verify_mode) {
		log_error("migration stream: verification pages outside the verification pass");
		return ERR_PROTO;
	}
	for (uint32_t i = 0; r->nstreams > 1 && i < p.count && !rc; i++)
		rc = check_streams(r, stream_pages_pfn(&p, i) & STREAM_PFN_MASK);
	for (uint32_t i = 0, n; i < p.count && !rc; i += n) {
		uint64_t e = stream_pages_pfn(&p, i), pfn = e & STREAM_PFN_MASK;
		bool zero = e & STREAM_PFN_ZERO;
		const uint8_t *data = zero ? NULL : p.data + (size_t)d * PAGE;

		for (n = 1; i + n < p.count; n++) {
			uint64_t next = stream_pages_pfn(&p, i + n);

			if ((next & STREAM_PFN_MASK) != pfn + n ||
			    !!(next & STREAM_PFN_ZERO) != zero)
				break;
		}
		if (r->verify_mode)
			rc = verify_pages(r, pfn, data, n);
		else
			rc = zero ? zero_pages(r, pfn, n) : write_pages(r, pfn, data, n);
		if (!zero)
			d += n;
	}
	r->report->total_pages += p.count;
	return rc;
}

/* The last stream's mapping of guest memory, unmapped by pc_receive_release. */
static void *kept_map;
static size_t kept_len;

void pc_receive_release(void)
{
	if (kept_map)
		munmap(kept_map, kept_len);
	kept_map = NULL;
	kept_len = 0;
}

/*
 * The guest's memory mapped, for deltas: a delta changes a few bytes of a page this end already
 * holds, which through a mapping costs neither a system call nor a copy of the page (reading
 * and writing it cost two of each: about 5 us a page here, 10 ms for the 2000 pages of a hot
 * set's final copy). Only pages the sender sent before get deltas, so the mapping touches no
 * hole: the memory stays as sparse as the source's. NULL if it cannot be mapped.
 */
static uint8_t *guest_map(struct pc_recv_ctx *r)
{
	if (!r->map) {
		r->map = mmap(NULL, r->nr_pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		              r->mem_fd, 0);
		if (r->map == MAP_FAILED)
			log_debug(
			    "migration stream: guest memory cannot be mapped (%s): deltas are "
			    "read and written",
			    strerror(errno));
	}
	return r->map == MAP_FAILED ? NULL : r->map;
}

/*
 * Apply a PAGE_DELTA record: each page is its copy here changed by its delta, in place through
 * the mapping, or else read and written (runs of consecutive pfns at once).
 */
static int apply_deltas(const struct stream_rec *rec, struct pc_recv_ctx *r)
{
	struct stream_deltas d;
	const uint8_t *data;
	uint8_t *map;
	int rc = stream_decode_deltas(rec, r->nr_pages, &d);

	if (rc) {
		log_error("migration stream: malformed PAGE_DELTA record");
		return rc;
	}
	if (r->verify_mode) {
		log_error("migration stream: page deltas inside the verification pass");
		return ERR_PROTO;
	}
	for (uint32_t i = 0; r->nstreams > 1 && i < d.count && !rc; i++)
		rc = check_streams(r, stream_deltas_pfn(&d, i));
	if (rc)
		return rc;
	data = d.data;
	map = guest_map(r);
	for (uint32_t i = 0; map && i < d.count && !rc; i++) {
		uint64_t pfn = stream_deltas_pfn(&d, i);
		uint32_t len = stream_deltas_len(&d, i);

		rc = delta_apply(map + pfn * PAGE, data, len);
		if (rc)
			log_error("migration stream: malformed delta of page %llu",
			          (unsigned long long)pfn);
		data += len;
	}
	if (map) {
		r->report->delta_pages += d.count;
		r->report->total_pages += d.count;
		return rc;
	}
	rc = need_scratch(r);
	for (uint32_t i = 0, n; i < d.count && !rc; i += n) {
		uint64_t pfn = stream_deltas_pfn(&d, i);

		for (n = 1; i + n < d.count && stream_deltas_pfn(&d, i + n) == pfn + n; n++)
			;
		rc = read_guest(r, r->scratch, pfn, n);
		for (uint32_t k = 0; k < n && !rc; k++) {
			uint32_t len = stream_deltas_len(&d, i + k);

			rc = delta_apply(r->scratch + (size_t)k * PAGE, data, len);
			if (rc)
				log_error("migration stream: malformed delta of page %llu",
				          (unsigned long long)(pfn + k));
			data += len;
		}
		if (!rc)
			rc = write_pages(r, pfn, r->scratch, n);
	}
	r->report->delta_pages += d.count;
	r->report->total_pages += d.count;
	return rc;
}

/* A COMPRESSED record: its body decompressed, then applied as the record it holds. */
static int apply_compressed(const struct stream_rec *rec, struct pc_recv_ctx *r)
{
	struct stream_compressed z;
	struct stream_rec inner;
	int rc = stream_decode_compressed(rec, &z);

	if (rc) {
		log_error("migration stream: malformed COMPRESSED record");
		return rc;
	}
	if (!r->codec)
		r->codec = codec_ctx_new();
	if (!r->unz)
		r->unz = malloc(STREAM_MAX_BODY + 8);
	if (!r->codec || !r->unz)
		return ERR_NOMEM;
	rc = codec_decompress(r->codec, z.codec, z.data, z.len, r->unz, z.raw_len);
	if (rc) {
		log_error("migration stream: a %s record does not decompress to its %u bytes",
		          codec_name(z.codec), z.raw_len);
		return rc;
	}
	if (z.codec == CODEC_LZ4)
		r->report->records_lz4++;
	else
		r->report->records_zstd++;
	inner.type = z.inner_type;
	inner.length = z.raw_len;
	inner.body = r->unz;
	return inner.type == STREAM_REC_PAGE_DATA ? apply_pages(&inner, r)
	                                          : apply_deltas(&inner, r);
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

/* The header must describe the guest this end created from its configuration. */
static int check_header(const struct stream_rec *rec, uint64_t nr_pages, enum hv_domain_type type,
                        unsigned nr_vcpus, struct stream_header *hdr_r)
{
	struct stream_header h;

	if (rec->type != STREAM_REC_HEADER || stream_decode_header(rec, &h)) {
		uint32_t version;

		if (rec->type == STREAM_REC_HEADER && rec->length >= 12 &&
		    !memcmp(rec->body, STREAM_MAGIC, 8) &&
		    (memcpy(&version, rec->body + 8, 4), le32toh(version) > STREAM_VERSION_MAX)) {
			log_error("migration stream: version %u, newer than this xl-ext reads (up "
			          "to %u): "
			          "update xl-ext on this host",
			          le32toh(version), STREAM_VERSION_MAX);
			return ERR_PROTO;
		}
		log_error("migration stream: not an xl-ext sim stream (bad or missing header)");
		return ERR_PROTO;
	}
	if (h.nr_pages != nr_pages || h.domain_type != (uint32_t)type || h.nr_vcpus != nr_vcpus) {
		log_error(
		    "migration stream describes a guest (%llu pages, %u vCPUs, %s) other than "
		    "its configuration (%llu pages, %u vCPUs, %s)",
		    (unsigned long long)h.nr_pages, h.nr_vcpus,
		    hv_type_name((enum hv_domain_type)h.domain_type), (unsigned long long)nr_pages,
		    nr_vcpus, hv_type_name(type));
		return ERR_PROTO;
	}
	*hdr_r = h;
	return 0;
}

/* The END record: the domain must be complete, and equal to the source when verified. */
static int check_end(const struct pc_recv_ctx *r, const struct pc_cpu_state *state)
{
	for (unsigned v = 0; v < r->nr_vcpus; v++)
		if (!r->seen[v]) {
			log_error("migration stream ended without vCPU %u's state", v);
			return ERR_PROTO;
		}
	if (r->type == HV_TYPE_HVM && !state->dm) {
		log_error("migration stream ended without the HVM device model state");
		return ERR_PROTO;
	}
	if (r->report->verify_mismatches) {
		log_error("verification failed: %llu pages differ from the source",
		          (unsigned long long)r->report->verify_mismatches);
		return ERR_CHECKSUM;
	}
	return 0;
}

/* POSTCOPY_NEED: pages that follow the switch-over on the post-copy channel. */
static int take_need(const struct stream_rec *rec, struct pc_recv_ctx *r)
{
	const uint8_t *words;
	uint64_t first;
	uint32_t n;

	if (!r->need || stream_decode_need(rec, r->nr_pages, &first, &words, &n, &r->prepage)) {
		log_error("migration stream: %s POSTCOPY_NEED record",
		          r->need ? "a malformed" : "a post-copy record in a pre-copy stream:");
		return ERR_PROTO;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t w;

		memcpy(&w, words + (size_t)i * 8, 8);
		r->need[first / 64 + i] |= le64toh(w);
	}
	return 0;
}

/*
 * POSTCOPY_STALE (hybrid, the guest still running at the source): drop the copies of the pages
 * the rounds left dirty, so that they fault once the guest runs here, and say so. Done now,
 * freeing them is not part of the downtime; sim_migrate.c drops the final set (a page an extra
 * stream wrote since included) again at the switch-over, which costs little for holes.
 */
static int take_stale(const struct stream_rec *rec, struct pc_recv_ctx *r)
{
	const uint8_t *words;
	uint64_t first, dropped = 0;
	uint32_t n, prepage;

	if (!r->need || r->pc_fd < 0 ||
	    stream_decode_need(rec, r->nr_pages, &first, &words, &n, &prepage)) {
		log_error("migration stream: %s POSTCOPY_STALE record",
		          r->need ? "a malformed" : "a post-copy record in a pre-copy stream:");
		return ERR_PROTO;
	}
	for (uint64_t pfn = first; pfn < first + (uint64_t)n * 64 && pfn < r->nr_pages;) {
		uint64_t w, end;

		memcpy(&w, words + (pfn - first) / 64 * 8, 8);
		if (!((le64toh(w) >> (pfn % 64)) & 1)) {
			pfn++;
			continue;
		}
		for (end = pfn + 1; end < first + (uint64_t)n * 64 && end < r->nr_pages; end++) {
			memcpy(&w, words + (end - first) / 64 * 8, 8);
			if (!((le64toh(w) >> (end % 64)) & 1))
				break;
		}
		if (fallocate(r->mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		              (off_t)(pfn * PAGE), (off_t)((end - pfn) * PAGE)) < 0) {
			log_error_errno(errno, "migration: cannot drop stale guest pages");
			return err_from_errno(errno);
		}
		dropped += end - pfn;
		pfn = end;
	}
	return pc_postcopy_say_dropped(r->pc_fd, dropped);
}

/* Apply one record after the header. Returns 0, 1 after END (complete), or an error. */
static int apply_record(const struct stream_rec *rec, struct pc_recv_ctx *r,
                        struct pc_cpu_state *state)
{
	struct mig_report *report = r->report;
	uint32_t round;
	uint64_t pages;
	int rc;

	switch (rec->type) {
	case STREAM_REC_PAGE_DATA:
		return apply_pages(rec, r);
	case STREAM_REC_PAGE_DELTA:
	case STREAM_REC_COMPRESSED:
		if (r->version < 2) {
			log_error("migration stream: a version %u stream holds a %s record",
			          r->version, stream_rec_name(rec->type));
			return ERR_PROTO;
		}
		return rec->type == STREAM_REC_PAGE_DELTA ? apply_deltas(rec, r)
		                                          : apply_compressed(rec, r);
	case STREAM_REC_ROUND_END:
		rc = stream_decode_round_end(rec, &round, &pages);
		if (!rc && round != report->nrounds) {
			log_error("migration stream: round %u out of order", round);
			rc = ERR_PROTO;
		}
		if (!rc) {
			report->nrounds++;
			fault_point_n("recv:round", round);
		}
		return rc;
	case STREAM_REC_VCPU_STATE:
	case STREAM_REC_DEVICE_MODEL:
		return take_blob(rec, state, r->nr_vcpus, r->seen);
	case STREAM_REC_VERIFY:
		if (need_scratch(r))
			return ERR_NOMEM;
		r->verify_mode = true;
		report->verified = true;
		return 0;
	case STREAM_REC_END:
		return 1; /* checked once the extra streams ended too (pc_receive) */
	case STREAM_REC_POSTCOPY_NEED:
		return take_need(rec, r);
	case STREAM_REC_POSTCOPY_STALE:
		return take_stale(rec, r);
	default:
		log_error("migration stream: unexpected %s record", stream_rec_name(rec->type));
		return ERR_PROTO;
	}
}

/* --- extra streams (--streams): a thread each, applying the pages of its chunks ---------- */

struct pc_aux {
	int fd;
	struct pc_recv_ctx r;
	struct mig_report rep;
	uint8_t *body;
	pthread_t thread;
	bool started;
	int rc;
	int main_fd; /* shut for reading when this stream fails, so that the first stops too */
	unsigned idx;
};

/* An extra stream carries pages, its verification pass and END; nothing else. */
static void *aux_main(void *arg)
{
	struct pc_aux *a = arg;
	struct stream_rec rec;
	int rc = 0;

	while (!rc) {
		rc = read_record(a->fd, a->body, &rec);
		if (rc)
			break;
		a->rep.total_bytes += stream_rec_wire_size(rec.length);
		switch (rec.type) {
		case STREAM_REC_PAGE_DATA:
		case STREAM_REC_PAGE_DELTA:
		case STREAM_REC_COMPRESSED:
		case STREAM_REC_VERIFY:
		case STREAM_REC_END:
			rc = apply_record(&rec, &a->r, NULL);
			break;
		default:
			log_error("migration stream %u: unexpected %s record", a->idx + 1,
			          stream_rec_name(rec.type));
			rc = ERR_PROTO;
		}
	}
	a->rc = rc == 1 ? 0 : rc;
	if (a->rc) { /* the sender stops too, and this end's first stream */
		shutdown(a->fd, SHUT_RDWR);
		shutdown(a->main_fd, SHUT_RD);
	}
	return NULL;
}

/*
 * Accept the extra streams the header named and start a thread on each; body (a record's worth)
 * takes their JOIN records.
 */
static int start_aux(int fd, const struct stream_header *h, const struct pc_streams *extra,
                     struct pc_recv_ctx *r, struct pc_aux *aux, uint8_t *body)
{
	if (!extra || !extra->accept) {
		log_error(
		    "migration stream: the sender sends over %u connections and this receiver "
		    "has the one (use migrate --tcp and migrate-receive --listen, or leave "
		    "--streams out)",
		    h->streams);
		return ERR_PROTO;
	}
	guest_map(r); /* before the threads: they share it */
	r->nstreams = h->streams;
	for (unsigned n = 1; n < h->streams; n++) {
		uint8_t token[STREAM_TOKEN_LEN];
		struct stream_rec rec;
		uint32_t idx;
		int afd = extra->accept(extra->arg, PC_STREAM_ACCEPT_MS), rc;

		if (afd < 0) {
			log_error("migration stream: %u of the %u streams the sender named came", n,
			          h->streams);
			return afd;
		}
		rc = read_record(afd, body, &rec);
		if (!rc && (stream_decode_join(&rec, token, &idx) || idx >= h->streams ||
		            aux[idx - 1].fd >= 0 || memcmp(token, h->token, STREAM_TOKEN_LEN))) {
			log_error("migration stream: an extra connection is not a stream of this "
			          "migration (bad or repeated JOIN)");
			rc = ERR_PROTO;
		}
		if (rc) {
			close(afd);
			return rc;
		}
		aux[idx - 1].fd = afd;
	}
	for (unsigned i = 0; i + 1 < h->streams; i++) {
		struct pc_aux *a = &aux[i];

		a->idx = i + 1;
		a->main_fd = fd;
		a->r = *r;
		a->r.scratch = NULL;
		a->r.codec = NULL;
		a->r.unz = NULL;
		a->r.report = &a->rep;
		a->r.stream_idx = i + 1;
		a->body = malloc(STREAM_MAX_BODY + 8);
		if (!a->body)
			return ERR_NOMEM;
		if (pthread_create(&a->thread, NULL, aux_main, a))
			return ERR_NOMEM;
		a->started = true;
	}
	return 0;
}

/*
 * A post-copy stream (header flag): take its channel, tagged JOIN with index streams, and say
 * whether this host can receive it (POSTCOPY_READY); a host that cannot refuses the migration
 * before the sender pauses anything. The channel's fd in *fd_r.
 */
static int accept_postcopy(const struct stream_header *h, const struct pc_streams *extra,
                           uint8_t *body, int *fd_r)
{
	uint8_t token[STREAM_TOKEN_LEN], buf[STREAM_REC_HDR_SIZE + 8 + STREAM_MAX_READY_TEXT];
	char why[STREAM_MAX_READY_TEXT] = "";
	struct stream_rec rec;
	uint32_t idx;
	bool ok;
	int fd, rc;

	if (!extra || !extra->accept) {
		log_error("migration stream: the sender asks for post-copy, which needs a "
		          "connection of its own (use migrate --tcp and migrate-receive --listen)");
		return ERR_PROTO;
	}
	fd = extra->accept(extra->arg, PC_STREAM_ACCEPT_MS);
	if (fd < 0) {
		log_error("migration stream: the sender's post-copy channel did not come");
		return fd;
	}
	rc = read_record(fd, body, &rec);
	if (!rc && (stream_decode_join(&rec, token, &idx) || idx != h->streams ||
	            memcmp(token, h->token, STREAM_TOKEN_LEN))) {
		log_error("migration stream: a connection that is not this migration's post-copy "
		          "channel (bad JOIN)");
		rc = ERR_PROTO;
	}
	ok = !rc && pc_postcopy_supported(why, sizeof(why));
	if (!rc) {
		size_t len = STREAM_REC_HDR_SIZE +
		             (size_t)stream_encode_ready(
		                 buf + STREAM_REC_HDR_SIZE, sizeof(buf) - STREAM_REC_HDR_SIZE,
		                 ok ? 0 : (uint32_t)-ERR_NOTSUP, ok ? NULL : why);

		rc = fd_write_exact(fd, buf,
		                    stream_rec_seal(buf, STREAM_REC_POSTCOPY_READY,
		                                    (uint32_t)(len - STREAM_REC_HDR_SIZE)));
	}
	if (!rc && !ok) {
		log_error("migration receiver: refusing a post-copy migration: %s", why);
		rc = ERR_NOTSUP;
	}
	if (rc) {
		close(fd);
		return rc;
	}
	*fd_r = fd;
	return 0;
}

/*
 * Wait for the extra streams (stopping them first when failed) and add what they received to
 * the report; their first error when rc is 0.
 */
static int stop_aux(struct pc_aux *aux, unsigned n, int rc, struct mig_report *report)
{
	for (unsigned i = 0; i < n; i++)
		if (rc && aux[i].fd >= 0)
			shutdown(aux[i].fd, SHUT_RDWR);
	for (unsigned i = 0; i < n; i++) {
		struct pc_aux *a = &aux[i];

		if (a->started) {
			pthread_join(a->thread, NULL);
			if (!rc && a->rc) {
				log_error("migration stream %u of %u failed", i + 2, n + 1);
				rc = a->rc;
			}
			report->total_pages += a->rep.total_pages;
			report->total_bytes += a->rep.total_bytes;
			report->delta_pages += a->rep.delta_pages;
			report->records_lz4 += a->rep.records_lz4;
			report->records_zstd += a->rep.records_zstd;
			report->verify_mismatches += a->rep.verify_mismatches;
		}
		if (a->fd >= 0)
			close(a->fd);
		free(a->r.scratch);
		free(a->r.unz);
		codec_ctx_free(a->r.codec);
		free(a->body);
	}
	return rc;
}

int pc_receive(int fd, int mem_fd, uint64_t nr_pages, enum hv_domain_type type, unsigned nr_vcpus,
               const struct pc_streams *extra, struct pc_cpu_state *state,
               struct mig_report *report)
{
	uint8_t *body = malloc(STREAM_MAX_BODY + 8);
	struct pc_recv_ctx r = {.mem_fd = mem_fd,
	                        .pc_fd = -1,
	                        .nr_pages = nr_pages,
	                        .type = type,
	                        .nr_vcpus = nr_vcpus,
	                        .report = report};
	struct pc_aux aux[STREAM_MAX_STREAMS - 1];
	struct stream_header h = {.streams = 1};
	struct stream_rec rec;
	int rc, pc_fd = -1;

	for (unsigned i = 0; i < STREAM_MAX_STREAMS - 1; i++)
		aux[i] = (struct pc_aux){.fd = -1};
	pc_receive_release(); /* a previous stream's, if its caller did not */
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
	if (!rc)
		rc = check_header(&rec, nr_pages, type, nr_vcpus, &h);
	r.version = h.version;
	report->streams = h.streams;
	if (!rc && h.streams > 1)
		rc = start_aux(fd, &h, extra, &r, aux, body);
	if (!rc && (h.flags & STREAM_HDR_POSTCOPY)) {
		r.need = calloc((nr_pages + 63) / 64, sizeof(uint64_t));
		rc = r.need ? accept_postcopy(&h, extra, body, &pc_fd) : ERR_NOMEM;
		r.pc_fd = pc_fd;
	}
	if (extra && extra->done && (h.streams > 1 || (h.flags & STREAM_HDR_POSTCOPY)))
		extra->done(extra->arg);
	while (!rc) {
		report->total_bytes += stream_rec_wire_size(rec.length);
		rc = read_record(fd, body, &rec);
		if (!rc)
			rc = apply_record(&rec, &r, state);
	}
	if (rc == 1)
		rc = 0;
	rc = stop_aux(aux, h.streams - 1, rc, report);
	if (!rc)
		rc = check_end(&r, state);
	if (!rc && r.need) {
		report->mode = report->nrounds ? MIG_MODE_HYBRID : MIG_MODE_POSTCOPY;
		rc = pc_postcopy_expect(report, pc_fd, nr_pages, r.need, r.prepage);
		r.need = NULL;
		pc_fd = -1; /* the phase's now */
	}
out:
	free(r.need);
	if (pc_fd >= 0)
		close(pc_fd);
	report->t_end_us = loop_now_us();
	if (rc)
		pc_cpu_state_free(state);
	if (r.map && r.map != MAP_FAILED) { /* unmapped after the switch-over */
		kept_map = r.map;
		kept_len = nr_pages * PAGE;
	}
	free(r.scratch);
	free(r.unz);
	codec_ctx_free(r.codec);
	free(body);
	return rc;
}
