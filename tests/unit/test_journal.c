/* Tests of the on-LUN journal (xl-ext/storage/journal.c) on an in-memory LUN image. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "xl-ext/storage/journal.h"

#define BS      512
#define NBLOCKS 256
#define BASE    16
#define RING    64
#define GUEST   42
#define KA      0xaaaa000000000001ull
#define KB      0xbbbb000000000002ull

struct image {
	uint8_t data[NBLOCKS * BS];
	uint64_t deny_key; /* writes by this writer fail with ERR_CONFLICT (fenced) */
	uint64_t cur_key;
	int fail_reads;
};

static int img_read(void *ctx, uint64_t lba, void *buf, size_t len)
{
	struct image *im = ctx;

	if (im->fail_reads)
		return ERR_IO;
	if (lba * BS + len > sizeof(im->data))
		return ERR_INVAL;
	memcpy(buf, im->data + lba * BS, len);
	return 0;
}

static int img_write(void *ctx, uint64_t lba, const void *buf, size_t len)
{
	struct image *im = ctx;

	if (im->deny_key && im->deny_key == im->cur_key)
		return ERR_CONFLICT;
	if (lba * BS + len > sizeof(im->data))
		return ERR_INVAL;
	memcpy(im->data + lba * BS, buf, len);
	return 0;
}

static struct image *img;
static struct journal_dev dev;

static int setup(void **state)
{
	(void)state;
	img = calloc(1, sizeof(*img));
	dev = (struct journal_dev){img_read, img_write, img, BS, NBLOCKS};
	return img ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(img);
	return 0;
}

/* Append n records as key through a fresh writer (continuing the journal); returns acked. */
static uint64_t write_as(uint64_t key, unsigned n)
{
	struct journal_writer w;

	img->cur_key = key;
	assert_int_equal(journal_writer_open(&w, &dev, GUEST, key, BASE, RING), 0);
	for (unsigned i = 0; i < n; i++) {
		char p[32];
		uint64_t seq;
		int len = snprintf(p, sizeof(p), "w%u", i);

		assert_int_equal(journal_append(&w, p, (size_t)len, &seq), 0);
		assert_int_equal(seq, w.acked);
	}
	return w.acked;
}

static int check(uint64_t acked, const struct journal_epoch *e, unsigned ne,
                 struct journal_report *r)
{
	return journal_check(&dev, GUEST, BASE, RING, acked, e, ne, r);
}

static void test_codec_roundtrip(void **state)
{
	struct journal_record rec = {.guest_id = 7,
	                             .writer_key = KA,
	                             .seq = 9,
	                             .prev_csum = 0x1234,
	                             .time_ns = 99,
	                             .payload_len = 5};
	struct journal_record out;
	uint8_t buf[JOURNAL_RECORD_SIZE];

	(void)state;
	memcpy(rec.payload, "hello", 5);
	assert_int_equal(journal_encode(&rec, buf), 0);
	assert_memory_equal(buf, "XJR1", 4);
	assert_int_equal(journal_decode(buf, &out), 0);
	assert_int_equal(out.guest_id, 7);
	assert_int_equal(out.writer_key, KA);
	assert_int_equal(out.seq, 9);
	assert_int_equal(out.prev_csum, 0x1234);
	assert_int_equal(out.payload_len, 5);
	assert_memory_equal(out.payload, "hello", 5);
	assert_int_equal(out.csum, rec.csum);
	buf[100] ^= 1;
	assert_int_equal(journal_decode(buf, &out), ERR_CHECKSUM);
	buf[0] = 'Y';
	assert_int_equal(journal_decode(buf, &out), ERR_PROTO);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(journal_decode(buf, &out), ERR_NOTFOUND);
	buf[300] = 1;
	assert_int_equal(journal_decode(buf, &out), ERR_PROTO);
	rec.payload_len = JOURNAL_PAYLOAD_MAX + 1;
	assert_int_equal(journal_encode(&rec, buf), ERR_INVAL);
}

static void test_geometry(void **state)
{
	struct journal_writer w;
	struct journal_dev bad = dev;

	(void)state;
	assert_int_equal(journal_writer_open(&w, &dev, GUEST, KA, NBLOCKS - 10, RING), ERR_INVAL);
	assert_int_equal(journal_writer_open(&w, &dev, GUEST, KA, BASE, 0), ERR_INVAL);
	bad.block_size = 520;
	assert_int_equal(journal_writer_open(&w, &bad, GUEST, KA, BASE, RING), ERR_NOTSUP);
}

static void test_single_writer_clean(void **state)
{
	struct journal_epoch e[] = {{KA, 1}};
	struct journal_report r;

	(void)state;
	assert_int_equal(write_as(KA, 10), 10);
	assert_int_equal(check(10, e, 1, &r), 0);
	assert_int_equal(r.records, 10);
	assert_int_equal(r.lo, 1);
	assert_int_equal(r.hi, 10);
	assert_string_equal(r.first, "");
}

static void test_handover_clean_and_wraps(void **state)
{
	struct journal_epoch e[] = {{KA, 1}, {KB, 51}};
	struct journal_report r;

	(void)state;
	assert_int_equal(write_as(KA, 50), 50);
	/* the new owner continues after the last record on the LUN, across the ring's end */
	assert_int_equal(write_as(KB, 100), 150);
	assert_int_equal(check(150, e, 2, &r), 0);
	assert_int_equal(r.lo, 150 - RING + 1);
	assert_int_equal(r.hi, 150);
	assert_int_equal(r.records, RING);
}

static void test_loss_detected(void **state)
{
	struct journal_epoch e[] = {{KA, 1}};
	struct journal_report r;

	(void)state;
	write_as(KA, 20);
	memset(img->data + (BASE + 7) * BS, 0, BS); /* acknowledged write 7 vanished */
	assert_int_equal(check(20, e, 1, &r), ERR_MISMATCH);
	assert_int_equal(r.lost, 1);
	assert_non_null(strstr(r.first, "acknowledged sequence 7 is lost"));
	/* the writer acknowledged 25 but the LUN holds only 20: 21-25 lost */
	memset(img->data, 0, sizeof(img->data));
	write_as(KA, 20);
	assert_int_equal(check(25, e, 1, &r), ERR_MISMATCH);
	assert_int_equal(r.lost, 5);
}

static void test_duplicate_detected(void **state)
{
	struct journal_epoch e[] = {{KA, 1}};
	struct journal_report r;
	struct journal_record rec;
	uint8_t buf[JOURNAL_RECORD_SIZE];

	(void)state;
	write_as(KA, 12);
	/* write 8 replayed: a copy of record 7's content re-numbered 8, chain broken */
	assert_int_equal(journal_decode(img->data + (BASE + 7) * BS, &rec), 0);
	rec.seq = 8;
	journal_encode(&rec, buf);
	memcpy(img->data + (BASE + 8) * BS, buf, BS);
	assert_int_equal(check(12, e, 1, &r), ERR_MISMATCH);
	assert_true(r.duplicate >= 1);
	assert_non_null(strstr(r.first, "duplicated or replayed"));
}

static void test_misplaced_detected(void **state)
{
	struct journal_epoch e[] = {{KA, 1}};
	struct journal_report r;

	(void)state;
	write_as(KA, 12);
	/* record 3 copied into block 5's place: 5 lost, 3 appears twice */
	memcpy(img->data + (BASE + 5) * BS, img->data + (BASE + 3) * BS, BS);
	assert_int_equal(check(12, e, 1, &r), ERR_MISMATCH);
	assert_int_equal(r.misplaced, 1);
	assert_int_equal(r.lost, 1);
}

static void test_foreign_writer_detected(void **state)
{
	struct journal_epoch e[] = {{KA, 1}, {KB, 31}};
	struct journal_report r;

	(void)state;
	write_as(KA, 30);
	write_as(KB, 10); /* 31-40 by B, rightful */
	write_as(KA, 1);  /* 41 by A after the hand-over: not fenced here */
	assert_int_equal(check(41, e, 2, &r), ERR_MISMATCH);
	assert_int_equal(r.foreign, 1);
	assert_non_null(strstr(r.first, "sequence 41 written by key 0xaaaa000000000001"));
	assert_non_null(strstr(r.first, "owner from sequence 31: 0xbbbb000000000002"));
}

static void test_fenced_writer_rejected(void **state)
{
	struct journal_epoch e[] = {{KA, 1}, {KB, 31}};
	struct journal_report r;
	struct journal_writer wa;
	uint64_t seq = 0;

	(void)state;
	write_as(KA, 30);
	img->cur_key = KA;
	assert_int_equal(journal_writer_open(&wa, &dev, GUEST, KA, BASE, RING), 0);
	write_as(KB, 10);
	img->deny_key = KA; /* A was preempted */
	img->cur_key = KA;
	assert_int_equal(journal_append(&wa, "late", 4, &seq), ERR_CONFLICT);
	assert_int_equal(seq, 0);
	assert_int_equal(wa.acked, 30); /* nothing acknowledged */
	assert_int_equal(check(40, e, 2, &r), 0);
}

static void test_bad_checksum_detected(void **state)
{
	struct journal_epoch e[] = {{KA, 1}};
	struct journal_report r;

	(void)state;
	write_as(KA, 12);
	img->data[(BASE + 4) * BS + 60] ^= 0x40;
	assert_int_equal(check(12, e, 1, &r), ERR_MISMATCH);
	assert_int_equal(r.bad_checksum, 1);
	assert_int_equal(r.lost, 1);
	assert_non_null(strstr(r.first, "checksum mismatch"));
}

static void test_other_guest_and_io_error(void **state)
{
	struct journal_epoch e[] = {{KA, 1}};
	struct journal_report r;
	struct journal_record rec = {.guest_id = GUEST + 1, .writer_key = KA, .seq = 2};
	uint8_t buf[JOURNAL_RECORD_SIZE];

	(void)state;
	write_as(KA, 3);
	journal_encode(&rec, buf);
	memcpy(img->data + (BASE + 2) * BS, buf, BS);
	assert_int_equal(check(3, e, 1, &r), ERR_MISMATCH);
	assert_int_equal(r.other_guest, 1);
	img->fail_reads = 1;
	assert_int_equal(check(3, e, 1, &r), ERR_IO);
}

static void test_unacked_tail_is_fine(void **state)
{
	struct journal_epoch e[] = {{KA, 1}};
	struct journal_report r;

	(void)state;
	write_as(KA, 10);
	/* the writer crashed before it saw the ack of 9 and 10 */
	assert_int_equal(check(8, e, 1, &r), 0);
	assert_int_equal(r.unacked, 2);
}

/* A fresh boot on a used LUN continues the most recently written guest's journal. */
static void test_find_latest(void **state)
{
	struct journal_record rec = {
	    .guest_id = GUEST + 7, .writer_key = KB, .seq = 1, .time_ns = 1};
	uint8_t buf[JOURNAL_RECORD_SIZE];
	uint64_t id = 0;

	(void)state;
	assert_int_equal(journal_find_latest(&dev, BASE, RING, &id), ERR_NOTFOUND);
	/* an old record of another guest (time 1), then GUEST writes now */
	journal_encode(&rec, buf);
	memcpy(img->data + (BASE + 1) * BS, buf, BS);
	assert_int_equal(journal_find_latest(&dev, BASE, RING, &id), 0);
	assert_int_equal(id, GUEST + 7);
	write_as(KA, 5);
	assert_int_equal(journal_find_latest(&dev, BASE, RING, &id), 0);
	assert_int_equal(id, GUEST);
	img->fail_reads = 1;
	assert_int_equal(journal_find_latest(&dev, BASE, RING, &id), ERR_IO);
}

static void test_epochs_parse(void **state)
{
	struct journal_epoch e[4];
	unsigned n = 0;

	(void)state;
	assert_int_equal(journal_epochs_parse("aaaa000000000001:1,0xbbbb000000000002:51", e, 4, &n),
	                 0);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].key, KA);
	assert_int_equal(e[1].key, KB);
	assert_int_equal(e[1].from_seq, 51);
	assert_int_equal(journal_epochs_parse("", e, 4, &n), ERR_INVAL);
	assert_int_equal(journal_epochs_parse("a:0", e, 4, &n), ERR_INVAL);
	assert_int_equal(journal_epochs_parse("0:1", e, 4, &n), ERR_INVAL);
	assert_int_equal(journal_epochs_parse("a:1;b:2", e, 4, &n), ERR_INVAL);
	assert_int_equal(journal_epochs_parse("a:1,b:2,c:3,d:4,e:5", e, 4, &n), ERR_INVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_codec_roundtrip),
	    T(test_geometry),
	    T(test_single_writer_clean),
	    T(test_handover_clean_and_wraps),
	    T(test_loss_detected),
	    T(test_duplicate_detected),
	    T(test_misplaced_detected),
	    T(test_foreign_writer_detected),
	    T(test_fenced_writer_rejected),
	    T(test_bad_checksum_detected),
	    T(test_other_guest_and_io_error),
	    T(test_unacked_tail_is_fine),
	    T(test_epochs_parse),
	    T(test_find_latest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
