/* Tests of the migration stream codec: round trips and every malformed case. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "common/error.h"
#include "xl-ext/precopy/stream.h"

static uint8_t buf[STREAM_REC_HDR_SIZE + STREAM_MAX_BODY + 8];

/* Parse a sealed record in buf back into a stream_rec, checking header and checksum. */
static int reparse(const uint8_t *wire, struct stream_rec *rec)
{
	uint64_t csum;
	int rc = stream_rec_parse_header(wire, &rec->type, &rec->length, &csum);

	if (rc)
		return rc;
	rec->body = wire + STREAM_REC_HDR_SIZE;
	return stream_rec_check(rec->type, rec->length, csum, rec->body);
}

static size_t make_header(uint64_t nr_pages, uint32_t vcpus)
{
	struct stream_header h = {.version = STREAM_VERSION,
	                          .page_size = 4096,
	                          .nr_pages = nr_pages,
	                          .domain_type = 2,
	                          .nr_vcpus = vcpus};
	int len = stream_encode_header(buf + STREAM_REC_HDR_SIZE, STREAM_MAX_BODY, &h);

	assert_true(len > 0);
	return stream_rec_seal(buf, STREAM_REC_HEADER, (uint32_t)len);
}

static void test_header_round_trip(void **state)
{
	struct stream_rec rec;
	struct stream_header h;
	size_t wire = make_header(65536, 2);

	(void)state;
	assert_int_equal(wire, 16 + 32);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_header(&rec, &h), 0);
	assert_memory_equal(h.magic, STREAM_MAGIC, 8);
	assert_int_equal(h.nr_pages, 65536);
	assert_int_equal(h.nr_vcpus, 2);
	assert_int_equal(h.domain_type, 2);
}

static void test_header_rejects_foreign(void **state)
{
	struct stream_rec rec;
	struct stream_header h;
	static const struct {
		size_t off;
		uint8_t val;
	} pokes[] = {
	    {0, 'Y'},                    /* magic */
	    {8, STREAM_VERSION_MAX + 1}, /* a version newer than this end reads */
	    {8, 0},                      /* version 0 */
	    {13, 0x20},                  /* page size 8192 */
	    {24, 7},                     /* domain type */
	    {28, 0},                     /* zero vcpus */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
		uint8_t *body = buf + STREAM_REC_HDR_SIZE;

		make_header(65536, 2);
		body[pokes[i].off] = pokes[i].val;
		stream_rec_seal(buf, STREAM_REC_HEADER, 32); /* valid checksum, bad content */
		assert_int_equal(reparse(buf, &rec), 0);
		assert_int_equal(stream_decode_header(&rec, &h), ERR_PROTO);
	}
	/* zero pages, too many pages */
	make_header(0, 1);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_header(&rec, &h), ERR_PROTO);
	make_header(STREAM_MAX_PAGES + 1, 1);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_header(&rec, &h), ERR_PROTO);
}

/* Version 3 names the extra streams and their token; each extra stream starts with JOIN. */
static void test_streams_header_and_join(void **state)
{
	struct stream_header h = {.version = 3,
	                          .page_size = 4096,
	                          .nr_pages = 4096,
	                          .domain_type = 1,
	                          .nr_vcpus = 2,
	                          .streams = 4},
	                     back;
	uint8_t *body = buf + STREAM_REC_HDR_SIZE, token[STREAM_TOKEN_LEN];
	struct stream_rec rec;
	uint32_t idx;
	int len;

	(void)state;
	memset(h.token, 0xa5, sizeof(h.token));
	len = stream_encode_header(body, STREAM_MAX_BODY, &h);
	assert_int_equal(len, 56);
	stream_rec_seal(buf, STREAM_REC_HEADER, (uint32_t)len);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_header(&rec, &back), 0);
	assert_int_equal(back.streams, 4);
	assert_memory_equal(back.token, h.token, STREAM_TOKEN_LEN);
	/* a count of 1, 0 or over the bound; a reserved word set; a version 2 header of 56 bytes */
	for (int k = 0; k < 5; k++) {
		stream_encode_header(body, STREAM_MAX_BODY, &h);
		if (k < 3)
			body[32] = (uint8_t[]){1, 0, STREAM_MAX_STREAMS + 1}[k];
		else if (k == 3)
			body[36] = 1;
		else
			body[8] = 2;
		stream_rec_seal(buf, STREAM_REC_HEADER, 56);
		assert_int_equal(reparse(buf, &rec), 0);
		assert_int_equal(stream_decode_header(&rec, &back), ERR_PROTO);
	}
	/* version 3 in 32 bytes */
	stream_encode_header(body, STREAM_MAX_BODY, &h);
	stream_rec_seal(buf, STREAM_REC_HEADER, 32);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_header(&rec, &back), ERR_PROTO);

	len = stream_encode_join(body, STREAM_MAX_BODY, h.token, 3);
	assert_int_equal(len, STREAM_TOKEN_LEN + 8);
	stream_rec_seal(buf, STREAM_REC_JOIN, (uint32_t)len);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_join(&rec, token, &idx), 0);
	assert_int_equal(idx, 3);
	assert_memory_equal(token, h.token, STREAM_TOKEN_LEN);
	for (uint32_t bad = 0; bad < 3; bad++) { /* index 0, index over the bound, reserved set */
		stream_encode_join(body, STREAM_MAX_BODY, h.token,
		                   bad == 1 ? STREAM_MAX_STREAMS + 1 : 0);
		if (bad == 2) {
			stream_encode_join(body, STREAM_MAX_BODY, h.token, 1);
			body[STREAM_TOKEN_LEN + 4] = 1;
		}
		stream_rec_seal(buf, STREAM_REC_JOIN, (uint32_t)len);
		assert_int_equal(reparse(buf, &rec), 0);
		assert_int_equal(stream_decode_join(&rec, token, &idx), ERR_PROTO);
	}
	stream_rec_seal(buf, STREAM_REC_JOIN, (uint32_t)len - 8); /* short */
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_join(&rec, token, &idx), ERR_PROTO);
	/* the chunks go round the streams */
	assert_int_equal(stream_of_pfn(0, 1), 0);
	assert_int_equal(stream_of_pfn(STREAM_CHUNK_PAGES * 5 + 7, 1), 0);
	assert_int_equal(stream_of_pfn(STREAM_CHUNK_PAGES - 1, 3), 0);
	assert_int_equal(stream_of_pfn(STREAM_CHUNK_PAGES, 3), 1);
	assert_int_equal(stream_of_pfn(STREAM_CHUNK_PAGES * 5 + 7, 3), 2);
}

static void test_every_flipped_bit_is_caught(void **state)
{
	struct stream_rec rec;
	size_t wire = make_header(1024, 1);

	(void)state;
	for (size_t byte = 0; byte < wire; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[byte] ^= (uint8_t)(1u << bit);
			assert_int_not_equal(reparse(buf, &rec), 0);
			buf[byte] ^= (uint8_t)(1u << bit);
		}
	}
	assert_int_equal(reparse(buf, &rec), 0);
}

static void test_unknown_type_and_oversized_length(void **state)
{
	uint32_t type, len;
	uint64_t csum;
	uint8_t hdr[16] = {0};

	(void)state;
	hdr[0] = 0; /* type 0 */
	assert_int_equal(stream_rec_parse_header(hdr, &type, &len, &csum), ERR_PROTO);
	hdr[0] = STREAM_REC_TYPE_MAX + 1;
	assert_int_equal(stream_rec_parse_header(hdr, &type, &len, &csum), ERR_PROTO);
	hdr[0] = STREAM_REC_PAGE_DATA;
	hdr[4] = 0xff;
	hdr[5] = 0xff;
	hdr[6] = 0xff; /* 16 MiB */
	assert_int_equal(stream_rec_parse_header(hdr, &type, &len, &csum), ERR_PROTO);
	hdr[6] = 0;
	assert_int_equal(stream_rec_parse_header(hdr, &type, &len, &csum), 0);
	assert_int_equal(len, 0xffff);
}

/* Gather a sealed batch into buf as the receiver would read it. */
static size_t flatten(struct stream_batch *b)
{
	struct iovec iov[2];
	size_t wire = stream_batch_seal(b, iov);

	memcpy(buf, iov[0].iov_base, iov[0].iov_len);
	memcpy(buf + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	assert_int_equal(wire, iov[0].iov_len + iov[1].iov_len);
	return wire;
}

static void test_pages_round_trip(void **state)
{
	struct stream_batch b;
	struct stream_rec rec;
	struct stream_pages p;
	uint8_t page[4096];

	(void)state;
	assert_int_equal(stream_batch_init(&b), 0);
	stream_batch_reset(&b, 0);
	assert_true(stream_batch_empty(&b));
	for (uint64_t pfn = 0; pfn < 10; pfn++) {
		memset(page, (int)pfn, sizeof(page));
		stream_batch_add(&b, pfn * 3, pfn % 2 ? page : NULL);
	}
	flatten(&b);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_pages(&rec, 100, &p), 0);
	assert_int_equal(p.count, 10);
	assert_int_equal(p.nr_data, 5);
	for (uint32_t i = 0, d = 0; i < p.count; i++) {
		uint64_t e = stream_pages_pfn(&p, i);

		assert_int_equal(e & STREAM_PFN_MASK, i * 3);
		if (i % 2) {
			assert_false(e & STREAM_PFN_ZERO);
			assert_int_equal(p.data[(size_t)d * 4096], i);
			assert_int_equal(p.data[(size_t)d * 4096 + 4095], i);
			d++;
		} else {
			assert_true(e & STREAM_PFN_ZERO);
		}
	}
	/* the guest is smaller than a pfn in the batch */
	assert_int_equal(stream_decode_pages(&rec, 27, &p), ERR_PROTO);
	stream_batch_free(&b);
}

static void test_pages_full_batch(void **state)
{
	struct stream_batch b;
	struct stream_rec rec;
	struct stream_pages p;
	static uint8_t page[4096];

	(void)state;
	assert_int_equal(stream_batch_init(&b), 0);
	stream_batch_reset(&b, STREAM_PAGES_VERIFY);
	while (!stream_batch_full(&b))
		stream_batch_add(&b, b.count, page);
	assert_int_equal(flatten(&b), 16 + 8 + 8 * 1024 + 1024 * 4096);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_pages(&rec, 1024, &p), 0);
	assert_int_equal(p.flags, STREAM_PAGES_VERIFY);
	stream_batch_free(&b);
}

/*
 * Pages read straight into the batch (stream_batch_tail / stream_batch_add_read): zero pages
 * become entries without data, or are left out, and the data behind them moves down.
 */
static void add_read(struct stream_batch *b, uint64_t pfn, const int *fill, uint32_t n,
                     bool skip_zero, uint32_t want_zero)
{
	uint8_t *tail = stream_batch_tail(b);

	assert_true(n <= stream_batch_room(b));
	for (uint32_t i = 0; i < n; i++)
		memset(tail + (size_t)i * 4096, fill[i], 4096);
	assert_int_equal(stream_batch_add_read(b, pfn, n, skip_zero), want_zero);
}

static void test_pages_read_in_place(void **state)
{
	static const int fill[] = {0, 7, 0, 0, 9, 11, 0};
	struct stream_batch b;
	struct stream_rec rec;
	struct stream_pages p;

	(void)state;
	assert_int_equal(stream_batch_init(&b), 0);
	stream_batch_reset(&b, 0);
	assert_int_equal(stream_batch_room(&b), 1024);
	/* round 0: zeros left out */
	add_read(&b, 100, fill, 7, true, 4);
	assert_int_equal(b.count, 3);
	assert_int_equal(stream_batch_room(&b), 1021);
	/* a later round: zeros are entries */
	add_read(&b, 200, fill, 7, false, 4);
	assert_int_equal(b.count, 10);
	flatten(&b);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_pages(&rec, 1000, &p), 0);
	assert_int_equal(p.nr_data, 6);
	{
		static const uint64_t want[] = {101, 104, 105, 200, 201, 202, 203, 204, 205, 206};
		static const int data[] = {7, 9, 11, 7, 9, 11};
		uint32_t d = 0;

		for (uint32_t i = 0; i < p.count; i++) {
			uint64_t e = stream_pages_pfn(&p, i);

			assert_int_equal(e & STREAM_PFN_MASK, want[i]);
			if (e & STREAM_PFN_ZERO) {
				assert_true(i >= 3 && fill[i - 3] == 0);
				continue;
			}
			assert_int_equal(p.data[(size_t)d * 4096], data[d]);
			assert_int_equal(p.data[(size_t)d * 4096 + 4095], data[d]);
			d++;
		}
		assert_int_equal(d, 6);
	}
	/* filled to the brim by reads */
	stream_batch_reset(&b, 0);
	while (stream_batch_room(&b)) {
		static const int one[] = {1};

		add_read(&b, b.count, one, 1, false, 0);
	}
	assert_true(stream_batch_full(&b));
	stream_batch_free(&b);
}

/* Hand-built malformed PAGE_DATA bodies, each sealed with a valid checksum. */
static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static int decode_body(uint32_t len)
{
	struct stream_rec rec;
	struct stream_pages p;

	stream_rec_seal(buf, STREAM_REC_PAGE_DATA, len);
	assert_int_equal(reparse(buf, &rec), 0);
	return stream_decode_pages(&rec, 64, &p);
}

static void test_pages_malformed(void **state)
{
	uint8_t *body = buf + STREAM_REC_HDR_SIZE;

	(void)state;
	/* count 0 */
	put_u32(body, 0);
	put_u32(body + 4, 0);
	assert_int_equal(decode_body(8), ERR_PROTO);
	/* body shorter than 8 */
	assert_int_equal(decode_body(4), ERR_PROTO);
	/* count over the limit */
	put_u32(body, STREAM_MAX_BATCH + 1);
	assert_int_equal(decode_body(8 + 8 * (STREAM_MAX_BATCH + 1)), ERR_PROTO);
	/* unknown flag */
	put_u32(body, 1);
	put_u32(body + 4, 0x80);
	put_u64(body + 8, 1 | STREAM_PFN_ZERO);
	assert_int_equal(decode_body(16), ERR_PROTO);
	/* reserved pfn bits */
	put_u32(body + 4, 0);
	put_u64(body + 8, (1ull << 55) | STREAM_PFN_ZERO);
	assert_int_equal(decode_body(16), ERR_PROTO);
	/* count says 2, pfns for 1 */
	put_u32(body, 2);
	put_u64(body + 8, 1 | STREAM_PFN_ZERO);
	assert_int_equal(decode_body(16), ERR_PROTO);
	/* data page missing */
	put_u32(body, 1);
	put_u64(body + 8, 5);
	assert_int_equal(decode_body(16), ERR_PROTO);
	/* data page present but extra bytes */
	assert_int_equal(decode_body(16 + 4096 + 8), ERR_PROTO);
	/* exact */
	assert_int_equal(decode_body(16 + 4096), 0);
	/* zero page carrying data */
	put_u64(body + 8, 5 | STREAM_PFN_ZERO);
	assert_int_equal(decode_body(16 + 4096), ERR_PROTO);
	/* pfn out of the guest */
	put_u64(body + 8, 64 | STREAM_PFN_ZERO);
	assert_int_equal(decode_body(16), ERR_PROTO);
}

static void test_blobs_and_round_end(void **state)
{
	struct stream_rec rec;
	const uint8_t *blob;
	uint32_t id, len, round;
	uint64_t pages;
	int n;

	(void)state;
	n = stream_encode_blob(buf + 16, STREAM_MAX_BODY, 3, "registers", 9);
	assert_int_equal(n, 17);
	assert_int_equal(stream_rec_seal(buf, STREAM_REC_VCPU_STATE, (uint32_t)n), 16 + 24);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_blob(&rec, &id, &blob, &len), 0);
	assert_int_equal(id, 3);
	assert_int_equal(len, 9);
	assert_memory_equal(blob, "registers", 9);
	/* inner length disagreeing with the record */
	buf[16 + 4] = 10;
	stream_rec_seal(buf, STREAM_REC_VCPU_STATE, (uint32_t)n);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_blob(&rec, &id, &blob, &len), ERR_PROTO);
	/* too large */
	assert_int_equal(stream_encode_blob(buf, sizeof(buf), 0, buf, STREAM_MAX_BLOB + 1),
	                 ERR_INVAL);
	/* round end */
	n = stream_encode_round_end(buf + 16, 64, 4, 123456);
	stream_rec_seal(buf, STREAM_REC_ROUND_END, (uint32_t)n);
	assert_int_equal(reparse(buf, &rec), 0);
	assert_int_equal(stream_decode_round_end(&rec, &round, &pages), 0);
	assert_int_equal(round, 4);
	assert_int_equal(pages, 123456);
	/* wrong type for the decoder */
	assert_int_equal(stream_decode_blob(&rec, &id, &blob, &len), ERR_PROTO);
	assert_int_equal(stream_decode_pages(&rec, 10, &(struct stream_pages){0}), ERR_PROTO);
}

static void test_zero_page_detection(void **state)
{
	static uint8_t page[4096];

	(void)state;
	memset(page, 0, sizeof(page));
	assert_true(stream_page_is_zero(page));
	page[4095] = 1;
	assert_false(stream_page_is_zero(page));
	page[4095] = 0;
	page[0] = 1;
	assert_false(stream_page_is_zero(page));
	page[0] = 0;
	page[2048 + 7] = 0x80;
	assert_false(stream_page_is_zero(page));
	assert_string_equal(stream_rec_name(STREAM_REC_END), "END");
	assert_string_equal(stream_rec_name(99), "UNKNOWN");
}

/* Seal body_len bytes of body as type and parse it back. */
static struct stream_rec resealed(uint32_t type, int body_len)
{
	struct stream_rec rec;

	assert_true(body_len >= 0);
	stream_rec_seal(buf, type, (uint32_t)body_len);
	assert_int_equal(reparse(buf, &rec), 0);
	return rec;
}

/* Version 4: the post-copy flag, with one stream or several; what else is refused. */
static void test_postcopy_header(void **state)
{
	struct stream_header h = {.version = 4,
	                          .page_size = 4096,
	                          .nr_pages = 4096,
	                          .domain_type = 1,
	                          .nr_vcpus = 2,
	                          .streams = 1,
	                          .flags = STREAM_HDR_POSTCOPY},
	                     back;
	uint8_t *body = buf + STREAM_REC_HDR_SIZE;
	struct stream_rec rec;

	(void)state;
	rec = resealed(STREAM_REC_HEADER, stream_encode_header(body, STREAM_MAX_BODY, &h));
	assert_int_equal(stream_decode_header(&rec, &back), 0);
	assert_int_equal(back.flags, STREAM_HDR_POSTCOPY);
	assert_int_equal(back.streams, 1);
	/* an unknown flag; no stream at all; version 3 with a flag or one stream */
	for (int k = 0; k < 4; k++) {
		struct stream_header b = h;

		b.flags = k == 0 ? 2 : STREAM_HDR_POSTCOPY;
		b.streams = k == 1 ? 0 : 1;
		if (k >= 2) {
			b.version = 3;
			b.streams = k == 2 ? 2 : 1;
		}
		rec = resealed(STREAM_REC_HEADER, stream_encode_header(body, STREAM_MAX_BODY, &b));
		if (k == 2) /* the encoder writes no flags into version 3: set them by hand */
			body[36] = STREAM_HDR_POSTCOPY, rec = resealed(STREAM_REC_HEADER, 56);
		assert_int_equal(stream_decode_header(&rec, &back), ERR_PROTO);
	}
}

static void test_postcopy_need(void **state)
{
	uint64_t words[3] = {0xffull, 0, 1ull << 63}, first;
	uint8_t *body = buf + STREAM_REC_HDR_SIZE;
	const uint8_t *w;
	struct stream_rec rec;
	uint32_t n, prepage;

	(void)state;
	rec = resealed(STREAM_REC_POSTCOPY_NEED,
	               stream_encode_need(body, STREAM_MAX_BODY, 64, words, 3, 16));
	assert_int_equal(stream_decode_need(&rec, 256, &first, &w, &n, &prepage), 0);
	assert_int_equal(first, 64);
	assert_int_equal(n, 3);
	assert_int_equal(prepage, 16);
	assert_int_equal(w[0], 0xff);
	assert_int_equal(w[1], 0);
	/* POSTCOPY_STALE has the same body */
	rec.type = STREAM_REC_POSTCOPY_STALE;
	assert_int_equal(stream_decode_need(&rec, 256, &first, &w, &n, &prepage), 0);
	rec.type = STREAM_REC_POSTCOPY_NEED;
	/* the last bit names page 255: a guest of 255 pages has none such */
	assert_int_equal(stream_decode_need(&rec, 255, &first, &w, &n, &prepage), ERR_PROTO);
	assert_int_equal(stream_decode_need(&rec, 64, &first, &w, &n, &prepage), ERR_PROTO);
	/* the encoder refuses what the decoder would */
	assert_true(stream_encode_need(body, STREAM_MAX_BODY, 1, words, 1, 0) < 0);
	assert_true(stream_encode_need(body, STREAM_MAX_BODY, 0, words, 0, 0) < 0);
	assert_true(stream_encode_need(body, STREAM_MAX_BODY, 0, words, 1, STREAM_MAX_BATCH) < 0);
	assert_true(stream_encode_need(body, 20, 0, words, 3, 0) < 0);
	/* malformed on the wire: unaligned first, prepage over, words over the bound, length */
	for (int k = 0; k < 5; k++) {
		int len = stream_encode_need(body, STREAM_MAX_BODY, 0, words, 2, 0);

		if (k == 0)
			body[0] = 3;
		else if (k == 1)
			body[13] = 0x10; /* prepage 4096 */
		else if (k == 2)
			body[10] = 1; /* words 65538 */
		else if (k == 3)
			len -= 8;
		else
			len = 16;
		rec = resealed(STREAM_REC_POSTCOPY_NEED, len);
		assert_int_equal(stream_decode_need(&rec, 4096, &first, &w, &n, &prepage),
		                 ERR_PROTO);
	}
}

static void test_postcopy_requests(void **state)
{
	uint64_t pfns[3] = {5, 6, 4095};
	uint8_t *body = buf + STREAM_REC_HDR_SIZE;
	const uint8_t *p;
	struct stream_rec rec;
	uint32_t n;

	(void)state;
	rec = resealed(STREAM_REC_PAGE_REQ, stream_encode_req(body, STREAM_MAX_BODY, pfns, 3));
	assert_int_equal(stream_decode_req(&rec, 4096, &p, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(p[16], 0xff);
	assert_int_equal(stream_decode_req(&rec, 4095, &p, &n), ERR_PROTO); /* beyond the guest */
	assert_true(stream_encode_req(body, STREAM_MAX_BODY, pfns, 0) < 0);
	assert_true(stream_encode_req(body, STREAM_MAX_BODY, pfns, STREAM_MAX_BATCH + 1) < 0);
	for (int k = 0; k < 4; k++) { /* count 0, count over, reserved set, length */
		int len = stream_encode_req(body, STREAM_MAX_BODY, pfns, 2);

		if (k == 0)
			memset(body, 0, 4);
		else if (k == 1)
			body[2] = 1; /* 65538 */
		else if (k == 2)
			body[4] = 1;
		else
			len += 8;
		rec = resealed(STREAM_REC_PAGE_REQ, len);
		assert_int_equal(stream_decode_req(&rec, 4096, &p, &n), ERR_PROTO);
	}
}

static void test_postcopy_ready_and_done(void **state)
{
	struct stream_done d = {.pages = 100,
	                        .faults = 7,
	                        .prepaged = 50,
	                        .zero = 3,
	                        .fault_p50_us = 10,
	                        .fault_p99_us = 20,
	                        .fault_max_us = 30},
	                   back;
	uint8_t *body = buf + STREAM_REC_HDR_SIZE;
	struct stream_rec rec;
	char text[16];
	uint32_t status;

	(void)state;
	rec = resealed(STREAM_REC_POSTCOPY_READY,
	               stream_encode_ready(body, STREAM_MAX_BODY, 95, "no uffd\there!"));
	assert_int_equal(stream_decode_ready(&rec, &status, text, sizeof(text)), 0);
	assert_int_equal(status, 95);
	assert_string_equal(text, "no uffd?here!"); /* a control character never reaches a log */
	rec = resealed(STREAM_REC_POSTCOPY_READY,
	               stream_encode_ready(body, STREAM_MAX_BODY, 0, NULL));
	assert_int_equal(stream_decode_ready(&rec, &status, text, sizeof(text)), 0);
	assert_int_equal(status, 0);
	assert_string_equal(text, "");
	body[4] = (uint8_t)(STREAM_MAX_READY_TEXT + 1); /* a text over the bound */
	body[5] = 1;
	rec = resealed(STREAM_REC_POSTCOPY_READY, 8 + STREAM_MAX_READY_TEXT + 257);
	assert_int_equal(stream_decode_ready(&rec, &status, text, sizeof(text)), ERR_PROTO);
	memset(body, 0, 8);
	body[4] = 4; /* says 4 bytes, has 3 */
	rec = resealed(STREAM_REC_POSTCOPY_READY, 11);
	assert_int_equal(stream_decode_ready(&rec, &status, text, sizeof(text)), ERR_PROTO);

	rec = resealed(STREAM_REC_POSTCOPY_DONE, stream_encode_done(body, STREAM_MAX_BODY, &d));
	assert_int_equal(stream_decode_done(&rec, &back), 0);
	assert_int_equal(back.pages, 100);
	assert_int_equal(back.faults, 7);
	assert_int_equal(back.prepaged, 50);
	assert_int_equal(back.zero, 3);
	assert_int_equal(back.fault_p50_us, 10);
	assert_int_equal(back.fault_p99_us, 20);
	assert_int_equal(back.fault_max_us, 30);
	for (int k = 0; k < 4; k++) { /* prepaged > pages, p50 > p99, reserved set, length */
		int len = stream_encode_done(body, STREAM_MAX_BODY, &d);

		if (k == 0)
			body[16] = 200;
		else if (k == 1)
			body[32] = 50;
		else if (k == 2)
			body[44] = 1;
		else
			len = 40;
		rec = resealed(STREAM_REC_POSTCOPY_DONE, len);
		assert_int_equal(stream_decode_done(&rec, &back), ERR_PROTO);
	}
	assert_string_equal(stream_rec_name(STREAM_REC_POSTCOPY_DONE), "POSTCOPY_DONE");
	assert_string_equal(stream_rec_name(STREAM_REC_POSTCOPY_DROPPED), "POSTCOPY_DROPPED");

	{
		uint64_t pages = 0;

		rec = resealed(STREAM_REC_POSTCOPY_DROPPED,
		               stream_encode_dropped(body, STREAM_MAX_BODY, 31787));
		assert_int_equal(stream_decode_dropped(&rec, &pages), 0);
		assert_int_equal(pages, 31787);
		rec = resealed(STREAM_REC_POSTCOPY_DROPPED, 16);
		assert_int_equal(stream_decode_dropped(&rec, &pages), ERR_PROTO);
		rec = resealed(STREAM_REC_POSTCOPY_DONE, 8);
		assert_int_equal(stream_decode_dropped(&rec, &pages), ERR_PROTO);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_postcopy_header),
	    cmocka_unit_test(test_postcopy_need),
	    cmocka_unit_test(test_postcopy_requests),
	    cmocka_unit_test(test_postcopy_ready_and_done),
	    cmocka_unit_test(test_header_round_trip),
	    cmocka_unit_test(test_header_rejects_foreign),
	    cmocka_unit_test(test_every_flipped_bit_is_caught),
	    cmocka_unit_test(test_streams_header_and_join),
	    cmocka_unit_test(test_unknown_type_and_oversized_length),
	    cmocka_unit_test(test_pages_round_trip),
	    cmocka_unit_test(test_pages_full_batch),
	    cmocka_unit_test(test_pages_read_in_place),
	    cmocka_unit_test(test_pages_malformed),
	    cmocka_unit_test(test_blobs_and_round_end),
	    cmocka_unit_test(test_zero_page_detection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
