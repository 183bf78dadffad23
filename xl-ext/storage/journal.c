/*
 * journal.c - journal record codec, writer and checker.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/journal.h"

#define OFF_CSUM    (JOURNAL_RECORD_SIZE - 8)
#define OFF_PAYLOAD 56

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int journal_encode(struct journal_record *rec, uint8_t out[JOURNAL_RECORD_SIZE])
{
	if (rec->payload_len > JOURNAL_PAYLOAD_MAX)
		return ERR_INVAL;
	memset(out, 0, JOURNAL_RECORD_SIZE);
	put32(out, JOURNAL_MAGIC);
	put16(out + 4, JOURNAL_VERSION);
	put16(out + 6, JOURNAL_RECORD_SIZE);
	put64(out + 8, rec->guest_id);
	put64(out + 16, rec->writer_key);
	put64(out + 24, rec->seq);
	put64(out + 32, rec->prev_csum);
	put64(out + 40, rec->time_ns);
	put32(out + 48, rec->payload_len);
	memcpy(out + OFF_PAYLOAD, rec->payload, rec->payload_len);
	rec->csum = XXH3_64bits(out, OFF_CSUM);
	put64(out + OFF_CSUM, rec->csum);
	return 0;
}

int journal_decode(const uint8_t in[JOURNAL_RECORD_SIZE], struct journal_record *rec_r)
{
	uint32_t magic = get32(in);
	uint64_t want;

	memset(rec_r, 0, sizeof(*rec_r));
	if (magic == 0) {
		for (size_t i = 0; i < JOURNAL_RECORD_SIZE; i++)
			if (in[i])
				return ERR_PROTO;
		return ERR_NOTFOUND;
	}
	if (magic != JOURNAL_MAGIC || get16(in + 4) != JOURNAL_VERSION ||
	    get16(in + 6) != JOURNAL_RECORD_SIZE || get32(in + 48) > JOURNAL_PAYLOAD_MAX)
		return ERR_PROTO;
	rec_r->guest_id = get64(in + 8);
	rec_r->writer_key = get64(in + 16);
	rec_r->seq = get64(in + 24);
	rec_r->prev_csum = get64(in + 32);
	rec_r->time_ns = get64(in + 40);
	rec_r->payload_len = get32(in + 48);
	memcpy(rec_r->payload, in + OFF_PAYLOAD, rec_r->payload_len);
	rec_r->csum = get64(in + OFF_CSUM);
	want = XXH3_64bits(in, OFF_CSUM);
	return want == rec_r->csum ? 0 : ERR_CHECKSUM;
}

int journal_geometry_check(const struct journal_dev *dev, uint64_t base, uint64_t ring)
{
	if (dev->block_size < JOURNAL_RECORD_SIZE || dev->block_size > JOURNAL_MAX_BLOCK ||
	    dev->block_size % JOURNAL_RECORD_SIZE) {
		log_error("journal: block size %u not supported (512..4096, multiple of 512)",
		          dev->block_size);
		return ERR_NOTSUP;
	}
	if (ring == 0 || base + ring < base || base + ring > dev->nblocks) {
		log_error("journal: ring of %" PRIu64 " blocks at %" PRIu64
		          " does not fit a LUN of %" PRIu64 " blocks",
		          ring, base, dev->nblocks);
		return ERR_INVAL;
	}
	return 0;
}

static int read_slot(const struct journal_dev *dev, uint64_t lba, uint8_t *blk,
                     struct journal_record *rec)
{
	int rc = dev->read(dev->ctx, lba, blk, dev->block_size);

	if (rc)
		return rc;
	return journal_decode(blk, rec);
}

int journal_writer_open(struct journal_writer *w, const struct journal_dev *dev, uint64_t guest_id,
                        uint64_t key, uint64_t base, uint64_t ring)
{
	uint8_t blk[JOURNAL_MAX_BLOCK];
	struct journal_record rec;
	int rc;

	memset(w, 0, sizeof(*w));
	rc = journal_geometry_check(dev, base, ring);
	if (rc)
		return rc;
	w->dev = dev;
	w->guest_id = guest_id;
	w->key = key;
	w->base = base;
	w->ring = ring;
	w->next_seq = 1;
	for (uint64_t i = 0; i < ring; i++) {
		rc = read_slot(dev, base + i, blk, &rec);
		if (rc == ERR_NOTFOUND || rc == ERR_PROTO || rc == ERR_CHECKSUM)
			continue;
		if (rc)
			return rc;
		if (rec.guest_id != guest_id || rec.seq % ring != i)
			continue;
		if (rec.seq >= w->next_seq) {
			w->next_seq = rec.seq + 1;
			w->prev_csum = rec.csum;
		}
	}
	w->acked = w->next_seq - 1;
	return 0;
}

int journal_find_latest(const struct journal_dev *dev, uint64_t base, uint64_t ring,
                        uint64_t *guest_id_r)
{
	uint8_t blk[JOURNAL_MAX_BLOCK];
	struct journal_record rec;
	uint64_t best_time = 0;
	int rc, found = 0;

	rc = journal_geometry_check(dev, base, ring);
	if (rc)
		return rc;
	for (uint64_t i = 0; i < ring; i++) {
		rc = read_slot(dev, base + i, blk, &rec);
		if (rc == ERR_NOTFOUND || rc == ERR_PROTO || rc == ERR_CHECKSUM)
			continue;
		if (rc)
			return rc;
		if (rec.seq % ring != i || (found && rec.time_ns < best_time))
			continue;
		found = 1;
		best_time = rec.time_ns;
		*guest_id_r = rec.guest_id;
	}
	return found ? 0 : ERR_NOTFOUND;
}

int journal_append(struct journal_writer *w, const void *payload, size_t len, uint64_t *seq_r)
{
	uint8_t blk[JOURNAL_MAX_BLOCK];
	struct journal_record rec;
	struct timespec ts;
	int rc;

	if (len > JOURNAL_PAYLOAD_MAX)
		return ERR_INVAL;
	memset(&rec, 0, sizeof(rec));
	clock_gettime(CLOCK_REALTIME, &ts);
	rec.guest_id = w->guest_id;
	rec.writer_key = w->key;
	rec.seq = w->next_seq;
	rec.prev_csum = w->prev_csum;
	rec.time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	rec.payload_len = (uint32_t)len;
	if (len)
		memcpy(rec.payload, payload, len);
	memset(blk, 0, w->dev->block_size);
	rc = journal_encode(&rec, blk);
	if (rc)
		return rc;
	rc = w->dev->write(w->dev->ctx, w->base + rec.seq % w->ring, blk, w->dev->block_size);
	if (rc)
		return rc;
	w->acked = rec.seq;
	w->next_seq = rec.seq + 1;
	w->prev_csum = rec.csum;
	if (seq_r)
		*seq_r = rec.seq;
	return 0;
}

static uint64_t owner_at(const struct journal_epoch *epochs, unsigned n, uint64_t seq,
                         uint64_t *from_r)
{
	uint64_t key = 0;

	*from_r = 0;
	for (unsigned i = 0; i < n; i++)
		if (epochs[i].from_seq <= seq && epochs[i].from_seq >= *from_r) {
			key = epochs[i].key;
			*from_r = epochs[i].from_seq;
		}
	return key;
}

#define NOTE(r, ...)                                                           \
	do {                                                                   \
		if (!(r)->first[0])                                            \
			snprintf((r)->first, sizeof((r)->first), __VA_ARGS__); \
	} while (0)

struct slot {
	uint64_t seq; /* 0: no valid record of this guest */
	uint64_t key;
	uint64_t prev_csum;
	uint64_t csum;
};

static int scan_ring(const struct journal_dev *dev, uint64_t guest_id, uint64_t base, uint64_t ring,
                     struct slot *slots, struct journal_report *r)
{
	uint8_t blk[JOURNAL_MAX_BLOCK];
	struct journal_record rec;

	for (uint64_t i = 0; i < ring; i++) {
		int rc = read_slot(dev, base + i, blk, &rec);

		if (rc == ERR_NOTFOUND)
			continue;
		if (rc == ERR_CHECKSUM || rc == ERR_PROTO) {
			r->bad_checksum++;
			NOTE(r, "block %" PRIu64 ": %s", base + i,
			     rc == ERR_CHECKSUM ? "checksum mismatch" : "not a journal record");
			continue;
		}
		if (rc)
			return rc;
		if (rec.guest_id != guest_id) {
			r->other_guest++;
			NOTE(r, "block %" PRIu64 ": record of guest %" PRIu64 ", not %" PRIu64,
			     base + i, rec.guest_id, guest_id);
			continue;
		}
		if (rec.seq == 0 || rec.seq % ring != i) {
			r->misplaced++;
			NOTE(r, "block %" PRIu64 ": sequence %" PRIu64 " belongs in block %" PRIu64,
			     base + i, rec.seq, base + rec.seq % ring);
			continue;
		}
		slots[i].seq = rec.seq;
		slots[i].key = rec.writer_key;
		slots[i].prev_csum = rec.prev_csum;
		slots[i].csum = rec.csum;
		r->records++;
		if (rec.seq > r->hi)
			r->hi = rec.seq;
	}
	return 0;
}

int journal_check(const struct journal_dev *dev, uint64_t guest_id, uint64_t base, uint64_t ring,
                  uint64_t last_acked, const struct journal_epoch *epochs, unsigned nepochs,
                  struct journal_report *report_r)
{
	struct journal_report *r = report_r;
	struct slot *slots = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = journal_geometry_check(dev, base, ring);
	if (rc)
		return rc;
	slots = calloc(ring, sizeof(*slots));
	if (!slots)
		return ERR_NOMEM;
	rc = scan_ring(dev, guest_id, base, ring, slots, r);
	if (rc)
		goto out;
	if (r->hi < last_acked)
		r->hi = last_acked;
	r->lo = r->hi >= ring ? r->hi - ring + 1 : 1;
	for (uint64_t s = r->lo; s <= r->hi && s > 0; s++) {
		const struct slot *sl = &slots[s % ring];
		const struct slot *prev = s > r->lo ? &slots[(s - 1) % ring] : NULL;
		uint64_t from, owner;

		if (sl->seq != s) {
			if (s <= last_acked) {
				r->lost++;
				NOTE(r,
				     "acknowledged sequence %" PRIu64 " is lost (block %" PRIu64
				     " holds %s%" PRIu64 ")",
				     s, base + s % ring, sl->seq ? "sequence " : "nothing ",
				     sl->seq);
			}
			continue;
		}
		if (s > last_acked)
			r->unacked++;
		if (prev && prev->seq == s - 1 && sl->prev_csum != prev->csum) {
			r->duplicate++;
			NOTE(r,
			     "sequence %" PRIu64 " does not follow sequence %" PRIu64
			     " (duplicated or replayed write)",
			     s, s - 1);
		}
		if (s == 1 && sl->prev_csum != 0) {
			r->duplicate++;
			NOTE(r, "sequence 1 claims a predecessor");
		}
		owner = owner_at(epochs, nepochs, s, &from);
		if (nepochs && sl->key != owner) {
			r->foreign++;
			NOTE(r,
			     "sequence %" PRIu64 " written by key 0x%016" PRIx64
			     ", which did not own the guest (owner from sequence %" PRIu64
			     ": 0x%016" PRIx64 ")",
			     s, sl->key, from, owner);
		}
	}
	if (r->lost || r->duplicate || r->foreign || r->bad_checksum || r->misplaced ||
	    r->other_guest)
		rc = ERR_MISMATCH;
out:
	free(slots);
	return rc;
}

int journal_epochs_parse(const char *s, struct journal_epoch *epochs, unsigned max, unsigned *n_r)
{
	unsigned n = 0;
	const char *p = s;

	while (*p) {
		char *end;
		unsigned long long key, from;

		if (n == max)
			return ERR_INVAL;
		if (!strncmp(p, "0x", 2))
			p += 2;
		key = strtoull(p, &end, 16);
		if (end == p || *end != ':' || key == 0)
			return ERR_INVAL;
		p = end + 1;
		from = strtoull(p, &end, 10);
		if (end == p || from == 0 || (*end && *end != ','))
			return ERR_INVAL;
		epochs[n].key = key;
		epochs[n].from_seq = from;
		n++;
		p = *end ? end + 1 : end;
	}
	if (n == 0)
		return ERR_INVAL;
	*n_r = n;
	return 0;
}
