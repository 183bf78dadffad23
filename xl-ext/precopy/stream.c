/*
 * stream.c - encoding and bounds-checked decoding of migration stream records.
 */
#include "config.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#ifdef HAVE_XXH_DISPATCH
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxh_x86dispatch.h>    /* XXH3 in the library's widest vector code this CPU runs */
#else
#define XXH_INLINE_ALL
#include <xxhash.h>
#endif

#include "common/error.h"
#include "xl-ext/precopy/codec.h"
#include "xl-ext/precopy/stream.h"

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

const char *stream_rec_name(uint32_t type)
{
	static const char *const names[] = {
	    "?",
	    "HEADER",
	    "PAGE_DATA",
	    "ROUND_END",
	    "VCPU_STATE",
	    "DEVICE_MODEL",
	    "VERIFY",
	    "END",
	    "PAGE_DELTA",
	    "COMPRESSED",
	    "JOIN",
	    "POSTCOPY_NEED",
	    "PAGE_REQ",
	    "POSTCOPY_READY",
	    "POSTCOPY_DONE",
	    "POSTCOPY_STALE",
	    "POSTCOPY_DROPPED",
	};

	return type <= STREAM_REC_TYPE_MAX ? names[type] : "UNKNOWN";
}

static uint32_t pad8(uint32_t n)
{
	return (n + 7u) & ~7u;
}

size_t stream_rec_wire_size(uint32_t body_len)
{
	return STREAM_REC_HDR_SIZE + pad8(body_len);
}

/* The checksum covers type and length too, so a flipped header bit is caught. */
static void csum_begin(XXH3_state_t *st, uint32_t type, uint32_t length)
{
	uint8_t tl[8];

	put32(tl, type);
	put32(tl + 4, length);
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, tl, sizeof(tl));
}

size_t stream_rec_seal(uint8_t *buf, uint32_t type, uint32_t body_len)
{
	XXH3_state_t st;
	uint32_t padded = pad8(body_len);

	memset(buf + STREAM_REC_HDR_SIZE + body_len, 0, padded - body_len);
	csum_begin(&st, type, body_len);
	XXH3_64bits_update(&st, buf + STREAM_REC_HDR_SIZE, body_len);
	put32(buf, type);
	put32(buf + 4, body_len);
	put64(buf + 8, XXH3_64bits_digest(&st));
	return STREAM_REC_HDR_SIZE + padded;
}

int stream_rec_parse_header(const uint8_t *hdr, uint32_t *type_r, uint32_t *length_r,
                            uint64_t *checksum_r)
{
	uint32_t type = get32(hdr), length = get32(hdr + 4);

	if (type == 0 || type > STREAM_REC_TYPE_MAX)
		return ERR_PROTO;
	if (length > STREAM_MAX_BODY)
		return ERR_PROTO;
	*type_r = type;
	*length_r = length;
	*checksum_r = get64(hdr + 8);
	return 0;
}

int stream_rec_check(uint32_t type, uint32_t length, uint64_t checksum, const uint8_t *body)
{
	XXH3_state_t st;

	csum_begin(&st, type, length);
	XXH3_64bits_update(&st, body, length);
	return XXH3_64bits_digest(&st) == checksum ? 0 : ERR_CHECKSUM;
}

int stream_encode_header(uint8_t *out, size_t cap, const struct stream_header *h)
{
	size_t len = h->version >= 3 ? 56 : 32;

	if (cap < len)
		return ERR_NOSPACE;
	memcpy(out, STREAM_MAGIC, 8);
	put32(out + 8, h->version);
	put32(out + 12, h->page_size);
	put64(out + 16, h->nr_pages);
	put32(out + 24, h->domain_type);
	put32(out + 28, h->nr_vcpus);
	if (h->version >= 3) {
		put32(out + 32, h->streams);
		put32(out + 36, h->version >= 4 ? h->flags : 0);
		memcpy(out + 40, h->token, STREAM_TOKEN_LEN);
	}
	return (int)len;
}

int stream_decode_header(const struct stream_rec *rec, struct stream_header *h)
{
	if (rec->type != STREAM_REC_HEADER || (rec->length != 32 && rec->length != 56))
		return ERR_PROTO;
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, rec->body, 8);
	if (memcmp(h->magic, STREAM_MAGIC, 8) != 0)
		return ERR_PROTO;
	h->version = get32(rec->body + 8);
	h->page_size = get32(rec->body + 12);
	h->nr_pages = get64(rec->body + 16);
	h->domain_type = get32(rec->body + 24);
	h->nr_vcpus = get32(rec->body + 28);
	if (h->version < STREAM_VERSION || h->version > STREAM_VERSION_MAX ||
	    h->page_size != STREAM_PAGE_SIZE)
		return ERR_PROTO;
	if (h->nr_pages == 0 || h->nr_pages > STREAM_MAX_PAGES)
		return ERR_PROTO;
	if (h->nr_vcpus == 0 || h->nr_vcpus > STREAM_MAX_VCPUS || h->domain_type > 2)
		return ERR_PROTO;
	if ((h->version >= 3) != (rec->length == 56))
		return ERR_PROTO;
	h->streams = 1;
	if (h->version >= 3) {
		h->streams = get32(rec->body + 32);
		h->flags = get32(rec->body + 36);
		/* version 3 names extra streams; 4 may name none, for its flags */
		if (h->streams < (h->version >= 4 ? 1u : 2u) || h->streams > STREAM_MAX_STREAMS)
			return ERR_PROTO;
		if (h->flags & ~(h->version >= 4 ? STREAM_HDR_POSTCOPY : 0u))
			return ERR_PROTO;
		memcpy(h->token, rec->body + 40, STREAM_TOKEN_LEN);
	}
	return 0;
}

unsigned stream_of_pfn(uint64_t pfn, unsigned streams)
{
	return streams > 1 ? (unsigned)((pfn / STREAM_CHUNK_PAGES) % streams) : 0;
}

int stream_encode_join(uint8_t *out, size_t cap, const uint8_t *token, uint32_t index)
{
	if (cap < STREAM_TOKEN_LEN + 8)
		return ERR_NOSPACE;
	memcpy(out, token, STREAM_TOKEN_LEN);
	put32(out + STREAM_TOKEN_LEN, index);
	put32(out + STREAM_TOKEN_LEN + 4, 0);
	return STREAM_TOKEN_LEN + 8;
}

int stream_decode_join(const struct stream_rec *rec, uint8_t *token, uint32_t *index_r)
{
	if (rec->type != STREAM_REC_JOIN || rec->length != STREAM_TOKEN_LEN + 8 ||
	    get32(rec->body + STREAM_TOKEN_LEN + 4))
		return ERR_PROTO;
	memcpy(token, rec->body, STREAM_TOKEN_LEN);
	*index_r = get32(rec->body + STREAM_TOKEN_LEN);
	if (*index_r == 0 || *index_r > STREAM_MAX_STREAMS)
		return ERR_PROTO;
	return 0;
}

int stream_encode_need(uint8_t *out, size_t cap, uint64_t first_pfn, const uint64_t *words,
                       uint32_t nwords, uint32_t prepage)
{
	if (first_pfn % 64 || !nwords || nwords > STREAM_MAX_NEED_WORDS ||
	    prepage >= STREAM_MAX_BATCH)
		return ERR_INVAL;
	if (cap < 16 + (size_t)nwords * 8)
		return ERR_NOSPACE;
	put64(out, first_pfn);
	put32(out + 8, nwords);
	put32(out + 12, prepage);
	for (uint32_t i = 0; i < nwords; i++)
		put64(out + 16 + (size_t)i * 8, words[i]);
	return (int)(16 + nwords * 8);
}

int stream_decode_need(const struct stream_rec *rec, uint64_t nr_pages, uint64_t *first_pfn_r,
                       const uint8_t **words_r, uint32_t *nwords_r, uint32_t *prepage_r)
{
	uint64_t first, last_bit;
	uint32_t n;

	if ((rec->type != STREAM_REC_POSTCOPY_NEED && rec->type != STREAM_REC_POSTCOPY_STALE) ||
	    rec->length < 24)
		return ERR_PROTO;
	first = get64(rec->body);
	n = get32(rec->body + 8);
	if (get32(rec->body + 12) >= STREAM_MAX_BATCH || !n || n > STREAM_MAX_NEED_WORDS ||
	    rec->length != 16 + n * 8u || first % 64 || first >= nr_pages)
		return ERR_PROTO;
	/* no page at or beyond nr_pages may be named */
	last_bit = first + (uint64_t)n * 64;
	if (last_bit > nr_pages) {
		uint64_t over = last_bit - nr_pages;
		uint64_t w;

		if (over >= 64)
			return ERR_PROTO;
		w = get64(rec->body + 16 + (size_t)(n - 1) * 8);
		if (w >> (64 - over))
			return ERR_PROTO;
	}
	*first_pfn_r = first;
	*prepage_r = get32(rec->body + 12);
	*words_r = rec->body + 16;
	*nwords_r = n;
	return 0;
}

int stream_encode_req(uint8_t *out, size_t cap, const uint64_t *pfns, uint32_t count)
{
	if (!count || count > STREAM_MAX_BATCH)
		return ERR_INVAL;
	if (cap < 8 + (size_t)count * 8)
		return ERR_NOSPACE;
	put32(out, count);
	put32(out + 4, 0);
	for (uint32_t i = 0; i < count; i++)
		put64(out + 8 + (size_t)i * 8, pfns[i]);
	return (int)(8 + count * 8);
}

int stream_decode_req(const struct stream_rec *rec, uint64_t nr_pages, const uint8_t **pfns_r,
                      uint32_t *count_r)
{
	uint32_t n;

	if (rec->type != STREAM_REC_PAGE_REQ || rec->length < 16)
		return ERR_PROTO;
	n = get32(rec->body);
	if (get32(rec->body + 4) || !n || n > STREAM_MAX_BATCH || rec->length != 8 + n * 8u)
		return ERR_PROTO;
	for (uint32_t i = 0; i < n; i++)
		if (get64(rec->body + 8 + (size_t)i * 8) >= nr_pages)
			return ERR_PROTO;
	*pfns_r = rec->body + 8;
	*count_r = n;
	return 0;
}

int stream_encode_ready(uint8_t *out, size_t cap, uint32_t status, const char *text)
{
	size_t len = text ? strnlen(text, STREAM_MAX_READY_TEXT) : 0;

	if (cap < 8 + len)
		return ERR_NOSPACE;
	put32(out, status);
	put32(out + 4, (uint32_t)len);
	if (len)
		memcpy(out + 8, text, len);
	return (int)(8 + len);
}

int stream_decode_ready(const struct stream_rec *rec, uint32_t *status_r, char *text, size_t len)
{
	uint32_t n;

	if (rec->type != STREAM_REC_POSTCOPY_READY || rec->length < 8)
		return ERR_PROTO;
	n = get32(rec->body + 4);
	if (n > STREAM_MAX_READY_TEXT || rec->length != 8 + n)
		return ERR_PROTO;
	*status_r = get32(rec->body);
	if (len) { /* printable only: it goes into a log line */
		size_t k = 0;

		for (uint32_t i = 0; i < n && k + 1 < len; i++) {
			char ch = (char)rec->body[8 + i];

			text[k++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
		}
		text[k] = '\0';
	}
	return 0;
}

int stream_encode_dropped(uint8_t *out, size_t cap, uint64_t pages)
{
	if (cap < 8)
		return ERR_NOSPACE;
	put64(out, pages);
	return 8;
}

int stream_decode_dropped(const struct stream_rec *rec, uint64_t *pages_r)
{
	if (rec->type != STREAM_REC_POSTCOPY_DROPPED || rec->length != 8)
		return ERR_PROTO;
	*pages_r = get64(rec->body);
	return 0;
}

int stream_encode_done(uint8_t *out, size_t cap, const struct stream_done *d)
{
	if (cap < 48)
		return ERR_NOSPACE;
	put64(out, d->pages);
	put64(out + 8, d->faults);
	put64(out + 16, d->prepaged);
	put64(out + 24, d->zero);
	put32(out + 32, d->fault_p50_us);
	put32(out + 36, d->fault_p99_us);
	put32(out + 40, d->fault_max_us);
	put32(out + 44, 0);
	return 48;
}

int stream_decode_done(const struct stream_rec *rec, struct stream_done *d)
{
	if (rec->type != STREAM_REC_POSTCOPY_DONE || rec->length != 48 || get32(rec->body + 44))
		return ERR_PROTO;
	d->pages = get64(rec->body);
	d->faults = get64(rec->body + 8);
	d->prepaged = get64(rec->body + 16);
	d->zero = get64(rec->body + 24);
	d->fault_p50_us = get32(rec->body + 32);
	d->fault_p99_us = get32(rec->body + 36);
	d->fault_max_us = get32(rec->body + 40);
	if (d->prepaged > d->pages || d->zero > d->pages || d->fault_p50_us > d->fault_p99_us ||
	    d->fault_p99_us > d->fault_max_us)
		return ERR_PROTO;
	return 0;
}

int stream_encode_round_end(uint8_t *out, size_t cap, uint32_t round, uint64_t pages)
{
	if (cap < 16)
		return ERR_NOSPACE;
	put32(out, round);
	put32(out + 4, 0);
	put64(out + 8, pages);
	return 16;
}

int stream_decode_round_end(const struct stream_rec *rec, uint32_t *round_r, uint64_t *pages_r)
{
	if (rec->type != STREAM_REC_ROUND_END || rec->length != 16 || get32(rec->body + 4) != 0)
		return ERR_PROTO;
	*round_r = get32(rec->body);
	*pages_r = get64(rec->body + 8);
	return 0;
}

int stream_encode_blob(uint8_t *out, size_t cap, uint32_t id, const void *blob, uint32_t len)
{
	if (len > STREAM_MAX_BLOB)
		return ERR_INVAL;
	if (cap < 8 + (size_t)len)
		return ERR_NOSPACE;
	put32(out, id);
	put32(out + 4, len);
	if (len)
		memcpy(out + 8, blob, len);
	return (int)(8 + len);
}

int stream_decode_blob(const struct stream_rec *rec, uint32_t *id_r, const uint8_t **blob_r,
                       uint32_t *len_r)
{
	uint32_t len;

	if (rec->type != STREAM_REC_VCPU_STATE && rec->type != STREAM_REC_DEVICE_MODEL)
		return ERR_PROTO;
	if (rec->length < 8)
		return ERR_PROTO;
	len = get32(rec->body + 4);
	if (len > STREAM_MAX_BLOB || len != rec->length - 8)
		return ERR_PROTO;
	*id_r = get32(rec->body);
	*blob_r = rec->body + 8;
	*len_r = len;
	return 0;
}

int stream_decode_pages(const struct stream_rec *rec, uint64_t nr_pages, struct stream_pages *p)
{
	uint64_t expect;
	uint32_t nr_data = 0;

	if (rec->type != STREAM_REC_PAGE_DATA || rec->length < 8)
		return ERR_PROTO;
	p->count = get32(rec->body);
	p->flags = get32(rec->body + 4);
	if (p->count == 0 || p->count > STREAM_MAX_BATCH ||
	    (p->flags & ~(STREAM_PAGES_VERIFY | STREAM_PAGES_DEMAND)))
		return ERR_PROTO;
	if (rec->length < 8 + (uint64_t)p->count * 8)
		return ERR_PROTO;
	p->pfns = rec->body + 8;
	for (uint32_t i = 0; i < p->count; i++) {
		uint64_t e = get64(p->pfns + 8 * (size_t)i);

		if ((e & ~(STREAM_PFN_MASK | STREAM_PFN_ZERO)) || (e & STREAM_PFN_MASK) >= nr_pages)
			return ERR_PROTO;
		if (!(e & STREAM_PFN_ZERO))
			nr_data++;
	}
	expect = 8 + (uint64_t)p->count * 8 + (uint64_t)nr_data * STREAM_PAGE_SIZE;
	if (rec->length != expect)
		return ERR_PROTO;
	p->data = p->pfns + 8 * (size_t)p->count;
	p->nr_data = nr_data;
	return 0;
}

uint64_t stream_pages_pfn(const struct stream_pages *p, uint32_t i)
{
	return get64(p->pfns + 8 * (size_t)i);
}

int stream_batch_init(struct stream_batch *b)
{
	memset(b, 0, sizeof(*b));
	b->prefix = malloc(STREAM_REC_HDR_SIZE + 8 + 8 * STREAM_MAX_BATCH);
	b->data = aligned_alloc(STREAM_PAGE_SIZE, (size_t)STREAM_MAX_BATCH * STREAM_PAGE_SIZE);
	if (!b->prefix || !b->data) {
		stream_batch_free(b);
		return ERR_NOMEM;
	}
	return 0;
}

void stream_batch_free(struct stream_batch *b)
{
	free(b->prefix);
	free(b->data);
	b->prefix = NULL;
	b->data = NULL;
}

void stream_batch_reset(struct stream_batch *b, uint32_t flags)
{
	b->count = 0;
	b->nr_data = 0;
	b->flags = flags;
}

bool stream_batch_full(const struct stream_batch *b)
{
	return b->count == STREAM_MAX_BATCH;
}

bool stream_batch_empty(const struct stream_batch *b)
{
	return b->count == 0;
}

void stream_batch_add(struct stream_batch *b, uint64_t pfn, const void *page)
{
	uint8_t *slot = b->prefix + STREAM_REC_HDR_SIZE + 8 + 8 * (size_t)b->count;

	if (page) {
		memcpy(b->data + (size_t)b->nr_data * STREAM_PAGE_SIZE, page, STREAM_PAGE_SIZE);
		b->nr_data++;
		put64(slot, pfn & STREAM_PFN_MASK);
	} else {
		put64(slot, (pfn & STREAM_PFN_MASK) | STREAM_PFN_ZERO);
	}
	b->count++;
}

uint32_t stream_batch_room(const struct stream_batch *b)
{
	return STREAM_MAX_BATCH - b->count;
}

uint8_t *stream_batch_tail(struct stream_batch *b)
{
	return b->data + (size_t)b->nr_data * STREAM_PAGE_SIZE;
}

uint32_t stream_batch_add_read(struct stream_batch *b, uint64_t pfn, uint32_t n, bool skip_zero)
{
	const uint8_t *read = stream_batch_tail(b);
	uint32_t zero = 0;

	for (uint32_t i = 0; i < n; i++, read += STREAM_PAGE_SIZE) {
		uint8_t *slot = b->prefix + STREAM_REC_HDR_SIZE + 8 + 8 * (size_t)b->count;
		uint8_t *tail = stream_batch_tail(b);

		if (stream_page_is_zero(read)) {
			zero++;
			if (skip_zero)
				continue;
			put64(slot, ((pfn + i) & STREAM_PFN_MASK) | STREAM_PFN_ZERO);
		} else {
			/* behind a zero page the data moves down over it (rare: guests seldom
			 * write whole pages of zeros) */
			if (tail != read)
				memmove(tail, read, STREAM_PAGE_SIZE);
			b->nr_data++;
			put64(slot, (pfn + i) & STREAM_PFN_MASK);
		}
		b->count++;
	}
	return zero;
}

size_t stream_batch_seal(struct stream_batch *b, struct iovec *iov)
{
	size_t prefix_body = 8 + 8 * (size_t)b->count;
	size_t data_len = (size_t)b->nr_data * STREAM_PAGE_SIZE;
	uint32_t body_len = (uint32_t)(prefix_body + data_len); /* a multiple of 8: no padding */
	XXH3_state_t st;

	put32(b->prefix + STREAM_REC_HDR_SIZE, b->count);
	put32(b->prefix + STREAM_REC_HDR_SIZE + 4, b->flags);
	csum_begin(&st, STREAM_REC_PAGE_DATA, body_len);
	XXH3_64bits_update(&st, b->prefix + STREAM_REC_HDR_SIZE, prefix_body);
	XXH3_64bits_update(&st, b->data, data_len);
	put32(b->prefix, STREAM_REC_PAGE_DATA);
	put32(b->prefix + 4, body_len);
	put64(b->prefix + 8, XXH3_64bits_digest(&st));
	iov[0].iov_base = b->prefix;
	iov[0].iov_len = STREAM_REC_HDR_SIZE + prefix_body;
	iov[1].iov_base = b->data;
	iov[1].iov_len = data_len;
	return STREAM_REC_HDR_SIZE + body_len;
}

bool stream_page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < STREAM_PAGE_SIZE / 8; i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

void stream_batch_take(struct stream_batch *b, uint64_t pfn, const uint8_t *read)
{
	uint8_t *slot = b->prefix + STREAM_REC_HDR_SIZE + 8 + 8 * (size_t)b->count;
	uint8_t *tail = stream_batch_tail(b);

	if (tail != read)
		memmove(tail, read, STREAM_PAGE_SIZE);
	put64(slot, pfn & STREAM_PFN_MASK);
	b->nr_data++;
	b->count++;
}

/* PAGE_DELTA: the body's fixed part before the deltas, for count entries. */
static size_t delta_prefix_len(uint32_t count)
{
	return 8 + 8 * (size_t)count + pad8(2 * count);
}

int stream_decode_deltas(const struct stream_rec *rec, uint64_t nr_pages, struct stream_deltas *d)
{
	uint64_t total = 0;
	size_t prefix;

	if (rec->type != STREAM_REC_PAGE_DELTA || rec->length < 8)
		return ERR_PROTO;
	d->count = get32(rec->body);
	if (d->count == 0 || d->count > STREAM_MAX_BATCH || get32(rec->body + 4) != 0)
		return ERR_PROTO;
	prefix = delta_prefix_len(d->count);
	if (rec->length < prefix)
		return ERR_PROTO;
	d->pfns = rec->body + 8;
	d->lens = d->pfns + 8 * (size_t)d->count;
	for (uint32_t i = 0; i < d->count; i++) {
		uint32_t len = stream_deltas_len(d, i);

		if (get64(d->pfns + 8 * (size_t)i) >= nr_pages || len == 0 || len > DELTA_MAX_LEN)
			return ERR_PROTO;
		total += len;
	}
	for (size_t i = 8 + 10 * (size_t)d->count; i < prefix; i++)
		if (rec->body[i]) /* the padding after the lengths */
			return ERR_PROTO;
	if (rec->length != prefix + total)
		return ERR_PROTO;
	d->data = rec->body + prefix;
	return 0;
}

uint64_t stream_deltas_pfn(const struct stream_deltas *d, uint32_t i)
{
	return get64(d->pfns + 8 * (size_t)i);
}

uint32_t stream_deltas_len(const struct stream_deltas *d, uint32_t i)
{
	uint16_t v;

	memcpy(&v, d->lens + 2 * (size_t)i, 2);
	return le16toh(v);
}

int stream_delta_batch_init(struct stream_delta_batch *b)
{
	memset(b, 0, sizeof(*b));
	b->prefix = malloc(STREAM_REC_HDR_SIZE + delta_prefix_len(STREAM_MAX_BATCH));
	b->data = malloc(STREAM_DELTA_MAX_DATA + 8);
	if (!b->prefix || !b->data) {
		stream_delta_batch_free(b);
		return ERR_NOMEM;
	}
	return 0;
}

void stream_delta_batch_free(struct stream_delta_batch *b)
{
	free(b->prefix);
	free(b->data);
	b->prefix = NULL;
	b->data = NULL;
}

bool stream_delta_batch_fits(const struct stream_delta_batch *b, size_t len)
{
	return b->count < STREAM_MAX_BATCH && b->data_len + len <= STREAM_DELTA_MAX_DATA;
}

void stream_delta_batch_add(struct stream_delta_batch *b, uint64_t pfn, const uint8_t *delta,
                            size_t len)
{
	memcpy(b->data + b->data_len, delta, len);
	b->data_len += (uint32_t)len;
	b->pfns[b->count] = pfn;
	b->lens[b->count] = (uint16_t)len;
	b->count++;
}

size_t stream_delta_batch_seal(struct stream_delta_batch *b, struct iovec *iov)
{
	static const uint8_t zeros[8];
	uint8_t *body = b->prefix + STREAM_REC_HDR_SIZE;
	size_t prefix = delta_prefix_len(b->count);
	uint32_t body_len = (uint32_t)(prefix + b->data_len);
	XXH3_state_t st;

	put32(body, b->count);
	put32(body + 4, 0);
	for (uint32_t i = 0; i < b->count; i++) {
		uint16_t len = htole16(b->lens[i]);

		put64(body + 8 + 8 * (size_t)i, b->pfns[i]);
		memcpy(body + 8 + 8 * (size_t)b->count + 2 * (size_t)i, &len, 2);
	}
	memset(body + 8 + 10 * (size_t)b->count, 0, prefix - (8 + 10 * (size_t)b->count));
	csum_begin(&st, STREAM_REC_PAGE_DELTA, body_len);
	XXH3_64bits_update(&st, body, prefix);
	XXH3_64bits_update(&st, b->data, b->data_len);
	put32(b->prefix, STREAM_REC_PAGE_DELTA);
	put32(b->prefix + 4, body_len);
	put64(b->prefix + 8, XXH3_64bits_digest(&st));
	iov[0].iov_base = b->prefix;
	iov[0].iov_len = STREAM_REC_HDR_SIZE + prefix;
	iov[1].iov_base = b->data;
	iov[1].iov_len = b->data_len;
	iov[2].iov_base = (void *)zeros;
	iov[2].iov_len = pad8(body_len) - body_len;
	b->count = 0;
	b->data_len = 0;
	return STREAM_REC_HDR_SIZE + pad8(body_len);
}

int stream_decode_compressed(const struct stream_rec *rec, struct stream_compressed *z)
{
	if (rec->type != STREAM_REC_COMPRESSED || rec->length < 17)
		return ERR_PROTO;
	z->codec = get32(rec->body);
	z->inner_type = get32(rec->body + 4);
	z->raw_len = get32(rec->body + 8);
	if (z->codec == CODEC_NONE || z->codec > CODEC_MAX || get32(rec->body + 12) != 0)
		return ERR_PROTO;
	if (z->inner_type != STREAM_REC_PAGE_DATA && z->inner_type != STREAM_REC_PAGE_DELTA)
		return ERR_PROTO;
	if (z->raw_len < 8 || z->raw_len > STREAM_MAX_BODY)
		return ERR_PROTO;
	z->data = rec->body + 16;
	z->len = rec->length - 16;
	return 0;
}

void stream_encode_compressed_head(uint8_t *out, uint32_t codec, uint32_t inner_type,
                                   uint32_t raw_len)
{
	put32(out, codec);
	put32(out + 4, inner_type);
	put32(out + 8, raw_len);
	put32(out + 12, 0);
}
