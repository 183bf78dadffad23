/*
 * journal.h - the on-LUN write journal of a simulated guest, and its checker.
 *
 * A ring of fixed 512-byte records, one per logical block (zero-padded when the LUN's block
 * is larger), record n at block base + n mod ring. Little-endian layout:
 *    0 u32 magic "XJR1"        4 u16 version (1)    6 u16 record size (512)
 *    8 u64 guest id           16 u64 writer's reservation key
 *   24 u64 sequence number (from 1)                 32 u64 checksum of record n-1 (0 for 1)
 *   40 u64 time (ns, informational)                 48 u32 payload length   52 u32 reserved
 *   56 payload (up to 448 bytes)                   504 u64 XXH3-64 of bytes 0..503
 * The checksum chain (offset 32) makes a duplicated, replayed or reordered write visible even
 * where the ring has no room to show two copies of one sequence number.
 *
 * The codec and the checker are pure; I/O goes through struct journal_dev (a libiscsi LUN, or
 * memory in the unit tests).
 */
#ifndef XLEXT_STORAGE_JOURNAL_H
#define XLEXT_STORAGE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_MAGIC        0x31524a58u /* "XJR1" little-endian */
#define JOURNAL_VERSION      1
#define JOURNAL_RECORD_SIZE  512
#define JOURNAL_PAYLOAD_MAX  448
#define JOURNAL_MAX_BLOCK    4096
#define JOURNAL_DEFAULT_BASE 2048 /* 1 MiB into a 512-byte-block LUN */
#define JOURNAL_DEFAULT_RING 1024
#define JOURNAL_MAX_EPOCHS   64

struct journal_record {
	uint64_t guest_id;
	uint64_t writer_key;
	uint64_t seq;
	uint64_t prev_csum;
	uint64_t time_ns;
	uint32_t payload_len;
	uint8_t payload[JOURNAL_PAYLOAD_MAX];
	uint64_t csum; /* filled by encode and decode */
};

/* Block device seen by the journal: both return 0 or a negative error (ERR_CONFLICT...). */
struct journal_dev {
	int (*read)(void *ctx, uint64_t lba, void *buf, size_t len);
	int (*write)(void *ctx, uint64_t lba, const void *buf, size_t len);
	void *ctx;
	uint32_t block_size; /* 512..4096 */
	uint64_t nblocks;
};

struct journal_writer {
	const struct journal_dev *dev;
	uint64_t guest_id;
	uint64_t key;
	uint64_t base;
	uint64_t ring;
	uint64_t next_seq;  /* sequence number of the next append */
	uint64_t prev_csum; /* checksum of record next_seq - 1 */
	uint64_t acked;     /* highest sequence number whose write completed */
};

/* Who owned the guest from a sequence number on (epochs sorted by from_seq, first from 1). */
struct journal_epoch {
	uint64_t key;
	uint64_t from_seq;
};

struct journal_report {
	uint64_t lo, hi;       /* window of sequence numbers the ring still holds */
	uint64_t records;      /* valid records of this guest found */
	uint64_t unacked;      /* records beyond last_acked (written, ack not seen) */
	unsigned lost;         /* acknowledged numbers missing from their block */
	unsigned duplicate;    /* checksum chain broken: a replayed or duplicated write */
	unsigned foreign;      /* written by a key that did not own the guest then */
	unsigned bad_checksum; /* unreadable records in the ring */
	unsigned misplaced;    /* a number in the wrong block */
	unsigned other_guest;  /* another guest's record in this ring */
	char first[256];       /* the first problem found, "" if none */
};

/* Encode rec into a 512-byte buffer (sets rec->csum). ERR_INVAL on a too long payload. */
int journal_encode(struct journal_record *rec, uint8_t out[JOURNAL_RECORD_SIZE]);

/*
 * Decode a 512-byte buffer. Returns 0; ERR_NOTFOUND for an empty (never written) block;
 * ERR_PROTO for a wrong magic, version or length; ERR_CHECKSUM on a checksum mismatch.
 */
int journal_decode(const uint8_t in[JOURNAL_RECORD_SIZE], struct journal_record *rec_r);

/* Check that base/ring fit the device. */
int journal_geometry_check(const struct journal_dev *dev, uint64_t base, uint64_t ring);

/*
 * Prepare a writer for guest_id with this host's key. It continues the journal: it scans the
 * ring for the highest valid sequence number of guest_id and appends after it (new journal:
 * from 1). ERR_CONFLICT etc. from the device are returned as they are.
 */
int journal_writer_open(struct journal_writer *w, const struct journal_dev *dev, uint64_t guest_id,
                        uint64_t key, uint64_t base, uint64_t ring);

/*
 * The guest id of the most recently written valid record in the ring (by its time), into
 * *guest_id_r: whose journal a fresh boot on this LUN continues. ERR_NOTFOUND for a ring
 * without a valid record, or a device error.
 */
int journal_find_latest(const struct journal_dev *dev, uint64_t base, uint64_t ring,
                        uint64_t *guest_id_r);

/*
 * Append one record; on success *seq_r (may be NULL) is its sequence number, now
 * acknowledged. On failure nothing is acknowledged and the same number is used again by the
 * next append; ERR_CONFLICT means this host no longer owns the LUN.
 */
int journal_append(struct journal_writer *w, const void *payload, size_t len, uint64_t *seq_r);

/*
 * Read the whole ring and check the journal of guest_id: no acknowledged write lost (every
 * number of the window up to last_acked present at its block), none duplicated (a number in
 * two blocks, or the checksum chain broken), each record written by the key that owned the
 * guest at that number per epochs, every checksum valid. Returns 0 when consistent,
 * ERR_MISMATCH when not (report says why), or a device error.
 */
int journal_check(const struct journal_dev *dev, uint64_t guest_id, uint64_t base, uint64_t ring,
                  uint64_t last_acked, const struct journal_epoch *epochs, unsigned nepochs,
                  struct journal_report *report_r);

/* Parse "KEY:FROM[,KEY:FROM...]" (hex keys, decimal from) into epochs. */
int journal_epochs_parse(const char *s, struct journal_epoch *epochs, unsigned max, unsigned *n_r);

#endif
