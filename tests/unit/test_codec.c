/*
 * Tests of migrate --compress's codecs: the page delta, lz4 and zstd record compression, the
 * PAGE_DELTA and COMPRESSED records, the sender's page cache and the mode's parser. Round
 * trips, and every malformed input refused.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "common/error.h"
#include "xl-ext/precopy/codec.h"
#include "xl-ext/precopy/pagecache.h"
#include "xl-ext/precopy/stream.h"

#define PG 4096u

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = next_rand();

		memcpy(p + i, &v, 8);
	}
}

/* Encode old -> new, check the length bound, apply to a copy of old, expect new. */
static size_t round_trip(const uint8_t *old, const uint8_t *new_page)
{
	static uint8_t enc[DELTA_MAX_LEN], page[PG];
	size_t len = delta_encode(old, new_page, enc, sizeof(enc));

	assert_true(len > 0 && len <= DELTA_MAX_LEN);
	memcpy(page, old, PG);
	assert_int_equal(delta_apply(page, enc, len), 0);
	assert_memory_equal(page, new_page, PG);
	return len;
}

static void test_delta_round_trips(void **state)
{
	static uint8_t old[PG], new_page[PG];
	uint64_t w;

	(void)state;
	fill_random(old, PG);
	memcpy(new_page, old, PG);
	assert_int_equal(round_trip(old, new_page), 3); /* equal: one zero run of 512 */

	/* one word changed (a counter): a literal word between two zero runs over 63 words long */
	w = 0x1122334455667788ull;
	memcpy(new_page + 8 * 100, &w, 8);
	assert_int_equal(round_trip(old, new_page), 3 + 9 + 3);
	new_page[PG - 1] ^= 1; /* and the last byte */
	assert_int_equal(round_trip(old, new_page), 3 + 9 + 3 + 9);
	new_page[PG - 1] ^= 1;
	memcpy(new_page + 8 * 100, old + 8 * 100, 8);
	memcpy(new_page + 8 * 10, &w, 8); /* a short zero run before it */
	assert_int_equal(round_trip(old, new_page), 1 + 9 + 3);

	/* the whole page rewritten with one change everywhere (a new generation): repeat runs */
	for (unsigned i = 0; i < PG / 8; i++) {
		memcpy(&w, old + 8 * i, 8);
		w ^= 0xdeadbeefcafef00dull;
		memcpy(new_page + 8 * i, &w, 8);
	}
	assert_int_equal(round_trip(old, new_page), 3 + 8);

	/* nothing alike: a literal run of the whole page, the longest delta */
	fill_random(new_page, PG);
	assert_int_equal(round_trip(old, new_page), DELTA_MAX_LEN);

	/* runs of every kind and length, at every boundary of the short/long count */
	for (unsigned t = 0; t < 200; t++) {
		memcpy(new_page, old, PG);
		for (unsigned i = 0; i < PG / 8;) {
			unsigned n = 1 + (unsigned)(next_rand() % 80), kind = next_rand() % 3;
			uint64_t v = next_rand() | 1;

			for (unsigned k = 0; k < n && i < PG / 8; k++, i++) {
				uint64_t o;

				if (kind == 0)
					continue;
				memcpy(&o, old + 8 * i, 8);
				o ^= kind == 1 ? (next_rand() | 1) : v;
				memcpy(new_page + 8 * i, &o, 8);
			}
		}
		round_trip(old, new_page);
	}
}

static void test_delta_too_long(void **state)
{
	static uint8_t old[PG], new_page[PG], enc[DELTA_MAX_LEN];

	(void)state;
	fill_random(old, PG);
	fill_random(new_page, PG);
	/* the caller's bound: a delta that does not fit is not made */
	assert_int_equal(delta_encode(old, new_page, enc, PG * 3 / 4), 0);
	assert_int_equal(delta_encode(old, new_page, enc, 2), 0);
	memcpy(new_page, old, PG);
	assert_int_equal(delta_encode(old, new_page, enc, 2), 0);
	assert_int_equal(delta_encode(old, new_page, enc, 3), 3);
}

static void test_delta_malformed(void **state)
{
	static uint8_t page[PG];
	uint8_t d[64] = {0};

	(void)state;
	/* empty: covers no word */
	assert_int_equal(delta_apply(page, d, 0), ERR_PROTO);
	/* a zero run of 511 words: one short */
	d[0] = 0 << 6 | 63;
	d[1] = 511 & 0xff;
	d[2] = 511 >> 8;
	assert_int_equal(delta_apply(page, d, 3), ERR_PROTO);
	/* 512 then one more word */
	d[1] = 0;
	d[2] = 2;
	d[3] = 0;
	assert_int_equal(delta_apply(page, d, 3), 0);
	assert_int_equal(delta_apply(page, d, 4), ERR_PROTO);
	/* a long count past the page */
	d[1] = 1;
	d[2] = 2; /* 513 */
	assert_int_equal(delta_apply(page, d, 3), ERR_PROTO);
	/* a long count that should have been short */
	d[1] = 10;
	d[2] = 0;
	assert_int_equal(delta_apply(page, d, 3), ERR_PROTO);
	/* the long count cut off */
	assert_int_equal(delta_apply(page, d, 2), ERR_PROTO);
	/* kind 3 */
	d[0] = 3 << 6 | 0;
	assert_int_equal(delta_apply(page, d, 1), ERR_PROTO);
	/* a literal run whose words are cut off */
	d[0] = DELTA_LITERAL << 6 | 1; /* 2 words: 16 bytes needed */
	assert_int_equal(delta_apply(page, d, 1 + 15), ERR_PROTO);
	/* a repeat run without its word */
	d[0] = DELTA_REPEAT << 6 | 63;
	d[1] = 0;
	d[2] = 2;
	assert_int_equal(delta_apply(page, d, 3 + 7), ERR_PROTO);
	memset(d + 3, 0x11, 8);
	assert_int_equal(delta_apply(page, d, 3 + 8), 0);
	for (unsigned i = 0; i < PG; i++)
		assert_int_equal(page[i], 0x11);
}

static void test_compress_round_trip(void **state)
{
	struct codec_ctx *c = codec_ctx_new();
	size_t n = 64 * PG, cap = codec_bound(CODEC_ZSTD, n) + codec_bound(CODEC_LZ4, n);
	uint8_t *src = malloc(n), *z = malloc(cap), *back = malloc(n);

	(void)state;
	assert_non_null(c);
	/* half compressible (repeated), half not */
	for (size_t i = 0; i < n / 2; i++)
		src[i] = (uint8_t)(i % 61);
	fill_random(src + n / 2, n / 2);
	for (enum codec_id id = CODEC_LZ4; id <= CODEC_MAX; id++) {
		size_t zl = codec_compress(c, id, src, n, z, cap);

		assert_true(zl > 0 && zl < n * 3 / 4);
		memset(back, 0, n);
		assert_int_equal(codec_decompress(c, id, z, zl, back, n), 0);
		assert_memory_equal(back, src, n);
		/* a raw length that is not the record's */
		assert_int_equal(codec_decompress(c, id, z, zl, back, n - 1), ERR_PROTO);
		/* the data cut short, or damaged */
		assert_int_equal(codec_decompress(c, id, z, zl / 2, back, n), ERR_PROTO);
		z[zl / 3] ^= 0xff;
		z[zl / 3 + 1] ^= 0x55;
		if (codec_decompress(c, id, z, zl, back, n) == 0) /* decoded: then to other bytes */
			assert_memory_not_equal(back, src, n);
		/* no room: not compressed */
		assert_int_equal(codec_compress(c, id, src, n, z, 16), 0);
	}
	/* garbage in */
	fill_random(z, 4096);
	for (enum codec_id id = CODEC_LZ4; id <= CODEC_MAX; id++)
		assert_int_equal(codec_decompress(c, id, z, 4096, back, n), ERR_PROTO);
	assert_int_equal(codec_decompress(c, CODEC_NONE, z, 16, back, 16), ERR_PROTO);
	assert_int_equal(codec_decompress(c, (enum codec_id)7, z, 16, back, 16), ERR_PROTO);
	codec_ctx_free(c);
	free(src);
	free(z);
	free(back);
}

static void test_compress_parse(void **state)
{
	static const char *const good[] = {"none", "auto",      "delta",     "lz4",
	                                   "zstd", "delta+lz4", "delta+zstd"};
	static const char *const bad[] = {"",      "lz4+zstd", "Delta",      "delta+",
	                                  "+zstd", "gzip",     "zstd+delta", "none+delta"};
	unsigned mode = 99;
	char name[32];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(compress_parse(good[i], &mode), 0);
		assert_string_equal(compress_name(mode, name, sizeof(name)), good[i]);
	}
	mode = 99;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(compress_parse(bad[i], &mode), ERR_INVAL);
	assert_int_equal(compress_parse(NULL, &mode), ERR_INVAL);
	assert_int_equal(mode, 99);
}

/* Gather a sealed record's iovecs into wire and parse it back. */
static void gather(const struct iovec *iov, int n, uint8_t *wire, struct stream_rec *rec)
{
	size_t off = 0;
	uint64_t csum;

	for (int i = 0; i < n; i++) {
		memcpy(wire + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	assert_int_equal(off % 8, 0);
	assert_int_equal(stream_rec_parse_header(wire, &rec->type, &rec->length, &csum), 0);
	rec->body = wire + STREAM_REC_HDR_SIZE;
	assert_int_equal(stream_rec_check(rec->type, rec->length, csum, rec->body), 0);
}

static void test_delta_record(void **state)
{
	static uint8_t wire[STREAM_REC_HDR_SIZE + STREAM_MAX_BODY + 8];
	struct stream_delta_batch b;
	struct stream_deltas d;
	struct stream_rec rec;
	struct iovec iov[3];
	uint8_t delta[40];
	uint32_t n = 0;

	(void)state;
	assert_int_equal(stream_delta_batch_init(&b), 0);
	memset(delta, 7, sizeof(delta));
	for (uint32_t i = 0; i < 5; i++)
		stream_delta_batch_add(&b, 10 + i, delta, 3 + i); /* odd lengths: padding */
	assert_true(stream_delta_batch_seal(&b, iov) > 0);
	assert_int_equal(b.count, 0);
	gather(iov, 3, wire, &rec);
	assert_int_equal(rec.type, STREAM_REC_PAGE_DELTA);
	assert_int_equal(stream_decode_deltas(&rec, 64, &d), 0);
	assert_int_equal(d.count, 5);
	for (uint32_t i = 0; i < 5; i++) {
		assert_int_equal(stream_deltas_pfn(&d, i), 10 + i);
		assert_int_equal(stream_deltas_len(&d, i), 3 + i);
	}
	/* a pfn beyond the guest */
	assert_int_equal(stream_decode_deltas(&rec, 14, &d), ERR_PROTO);
	/* the body one byte short or long of what the lengths say */
	rec.length--;
	assert_int_equal(stream_decode_deltas(&rec, 64, &d), ERR_PROTO);
	rec.length += 2;
	assert_int_equal(stream_decode_deltas(&rec, 64, &d), ERR_PROTO);
	rec.length--;
	/* flags, count, a zero length, padding */
	wire[STREAM_REC_HDR_SIZE + 4] = 1;
	assert_int_equal(stream_decode_deltas(&rec, 64, &d), ERR_PROTO);
	wire[STREAM_REC_HDR_SIZE + 4] = 0;
	wire[STREAM_REC_HDR_SIZE] = 0;
	assert_int_equal(stream_decode_deltas(&rec, 64, &d), ERR_PROTO);
	wire[STREAM_REC_HDR_SIZE] = 5;
	wire[STREAM_REC_HDR_SIZE + 8 + 40] = 0; /* the first length (3) */
	assert_int_equal(stream_decode_deltas(&rec, 64, &d), ERR_PROTO);
	wire[STREAM_REC_HDR_SIZE + 8 + 40] = 3;
	wire[STREAM_REC_HDR_SIZE + 8 + 40 + 10] = 1; /* padding after the 5 lengths */
	assert_int_equal(stream_decode_deltas(&rec, 64, &d), ERR_PROTO);
	wire[STREAM_REC_HDR_SIZE + 8 + 40 + 10] = 0;
	assert_int_equal(stream_decode_deltas(&rec, 64, &d), 0);
	/* a batch fills up: by count and by bytes */
	while (stream_delta_batch_fits(&b, DELTA_MAX_LEN)) {
		static uint8_t big[DELTA_MAX_LEN];

		stream_delta_batch_add(&b, n++, big, DELTA_MAX_LEN);
	}
	assert_true(n > 0 && n < STREAM_MAX_BATCH);
	assert_true(stream_delta_batch_seal(&b, iov) <= STREAM_REC_HDR_SIZE + STREAM_MAX_BODY);
	gather(iov, 3, wire, &rec);
	assert_int_equal(stream_decode_deltas(&rec, STREAM_MAX_BATCH, &d), 0);
	for (n = 0; stream_delta_batch_fits(&b, 1); n++)
		stream_delta_batch_add(&b, n, delta, 1);
	assert_int_equal(n, STREAM_MAX_BATCH);
	stream_delta_batch_free(&b);
}

static void test_compressed_record(void **state)
{
	uint8_t body[64];
	struct stream_rec rec = {.type = STREAM_REC_COMPRESSED, .length = 20, .body = body};
	struct stream_compressed z;

	(void)state;
	memset(body, 0, sizeof(body));
	stream_encode_compressed_head(body, CODEC_ZSTD, STREAM_REC_PAGE_DELTA, 4096);
	assert_int_equal(stream_decode_compressed(&rec, &z), 0);
	assert_int_equal(z.codec, CODEC_ZSTD);
	assert_int_equal(z.inner_type, STREAM_REC_PAGE_DELTA);
	assert_int_equal(z.raw_len, 4096);
	assert_int_equal(z.len, 4);
	assert_ptr_equal(z.data, body + 16);
	rec.length = 16; /* no data */
	assert_int_equal(stream_decode_compressed(&rec, &z), ERR_PROTO);
	rec.length = 20;
	stream_encode_compressed_head(body, CODEC_NONE, STREAM_REC_PAGE_DATA, 4096);
	assert_int_equal(stream_decode_compressed(&rec, &z), ERR_PROTO);
	stream_encode_compressed_head(body, CODEC_MAX + 1, STREAM_REC_PAGE_DATA, 4096);
	assert_int_equal(stream_decode_compressed(&rec, &z), ERR_PROTO);
	/* only page records go compressed: not a compressed record in a compressed one */
	stream_encode_compressed_head(body, CODEC_LZ4, STREAM_REC_COMPRESSED, 4096);
	assert_int_equal(stream_decode_compressed(&rec, &z), ERR_PROTO);
	stream_encode_compressed_head(body, CODEC_LZ4, STREAM_REC_VCPU_STATE, 4096);
	assert_int_equal(stream_decode_compressed(&rec, &z), ERR_PROTO);
	stream_encode_compressed_head(body, CODEC_LZ4, STREAM_REC_PAGE_DATA, STREAM_MAX_BODY + 1);
	assert_int_equal(stream_decode_compressed(&rec, &z), ERR_PROTO);
	stream_encode_compressed_head(body, CODEC_LZ4, STREAM_REC_PAGE_DATA, 7);
	assert_int_equal(stream_decode_compressed(&rec, &z), ERR_PROTO);
	stream_encode_compressed_head(body, CODEC_LZ4, STREAM_REC_PAGE_DATA, 4096);
	body[12] = 1; /* reserved */
	assert_int_equal(stream_decode_compressed(&rec, &z), ERR_PROTO);
}

static void test_pagecache(void **state)
{
	static uint8_t a[PG], b[PG];
	struct pagecache c;
	uint8_t *p;

	(void)state;
	memset(a, 1, PG);
	memset(b, 2, PG);
	assert_int_equal(pagecache_init(&c, 4 * PG, 1000), 0);
	assert_int_equal(c.nslots, 4);
	assert_null(pagecache_get(&c, 3));
	pagecache_put(&c, 3, a);
	p = pagecache_get(&c, 3);
	assert_non_null(p);
	assert_memory_equal(p, a, PG);
	pagecache_put(&c, 7, b); /* same slot: evicts 3 */
	assert_null(pagecache_get(&c, 3));
	assert_memory_equal(pagecache_get(&c, 7), b, PG);
	pagecache_drop(&c, 3); /* not there: 7 stays */
	assert_non_null(pagecache_get(&c, 7));
	pagecache_drop(&c, 7);
	assert_null(pagecache_get(&c, 7));
	assert_int_equal(c.hits, 3);
	assert_int_equal(c.misses, 3);
	pagecache_free(&c);
	/* given back later: the caller's copy is emptied at once, the memory when released */
	assert_int_equal(pagecache_init(&c, 4 * PG, 1000), 0);
	pagecache_put(&c, 1, a);
	pagecache_free_later(&c);
	assert_int_equal(c.nslots, 0);
	assert_null(c.pages);
	assert_int_equal(pagecache_init(&c, 4 * PG, 1000), 0);
	pagecache_free_later(&c);
	pagecache_release();
	pagecache_release(); /* nothing left: nothing done */
	/* never more slots than the guest has pages, never none */
	assert_int_equal(pagecache_init(&c, 1ull << 30, 10), 0);
	assert_int_equal(c.nslots, 10);
	pagecache_free(&c);
	assert_int_equal(pagecache_init(&c, 100, 10), 0);
	assert_int_equal(c.nslots, 1);
	pagecache_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_delta_round_trips), cmocka_unit_test(test_delta_too_long),
	    cmocka_unit_test(test_delta_malformed),   cmocka_unit_test(test_compress_round_trip),
	    cmocka_unit_test(test_compress_parse),    cmocka_unit_test(test_delta_record),
	    cmocka_unit_test(test_compressed_record), cmocka_unit_test(test_pagecache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
