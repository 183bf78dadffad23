/*
 * stream.h - the sim backend's migration stream: versioned, checksummed records.
 *
 * It plays the part of libxl's v2 stream for simulated domUs and follows after xl's save-file
 * header in the migration handshake. Every record is
 *
 *     u32 type | u32 length | u64 checksum (XXH3-64 of type, length and body) | body | pad to 8
 *
 * little-endian. The first record is STREAM_REC_HEADER (magic, version, geometry), the last
 * STREAM_REC_END. A receiver bounds-checks every record before it touches guest memory; a
 * malformed, truncated or foreign stream is rejected with ERR_PROTO or ERR_CHECKSUM.
 *
 * The codec functions work on memory buffers and do no I/O; stream_writer/stream_reader
 * move records over a file descriptor.
 */
#ifndef XLEXT_STREAM_H
#define XLEXT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STREAM_MAGIC   "XLXSTRM\n"
#define STREAM_VERSION 1
#define STREAM_VERSION_MAX                                    \
	4 /* 2: PAGE_DELTA and COMPRESSED records may follow; \
	     3: the header names extra streams (JOIN);        \
	     4: the header's flags: post-copy (POSTCOPY_*) */
#define STREAM_PAGE_SIZE    4096u
#define STREAM_REC_HDR_SIZE 16u
#define STREAM_MAX_BATCH    1024u      /* pages per PAGE_DATA record */
#define STREAM_MAX_BLOB     (1u << 20) /* vCPU or device-model state */
#define STREAM_MAX_BODY     (8u + STREAM_MAX_BATCH * 8u + STREAM_MAX_BATCH * STREAM_PAGE_SIZE)
#define STREAM_MAX_VCPUS    128u
#define STREAM_MAX_PAGES    (1ull << 26) /* 256 GiB of guest memory */
#define STREAM_PFN_ZERO     (1ull << 63) /* in a PAGE_DATA pfn entry: page is all zeros, no data */
#define STREAM_PFN_MASK     ((1ull << 52) - 1)
#define STREAM_MAX_STREAMS  16u  /* connections of one migration, the first included */
#define STREAM_TOKEN_LEN    16u  /* ties an extra stream to its migration */
#define STREAM_CHUNK_PAGES  512u /* 2 MiB of guest memory: what goes down one stream */

enum stream_rec_type {
	STREAM_REC_HEADER = 1,    /* struct stream_header */
	STREAM_REC_PAGE_DATA = 2, /* u32 count, u32 flags, u64 pfn[count], data of non-zero pages */
	STREAM_REC_ROUND_END = 3, /* u32 round, u32 flags, u64 pages in the round */
	STREAM_REC_VCPU_STATE = 4,   /* u32 vcpu, u32 length, blob */
	STREAM_REC_DEVICE_MODEL = 5, /* u32 length, u32 reserved, blob (HVM device model) */
	STREAM_REC_VERIFY = 6,       /* PAGE_DATA records that follow are compared, not applied */
	STREAM_REC_END = 7,          /* the domain is complete */
	STREAM_REC_PAGE_DELTA = 8,   /* u32 count, u32 flags, u64 pfn[count], u16 len[count] padded
	                                to 8, the deltas (codec.h) one after another */
	STREAM_REC_COMPRESSED = 9,   /* u32 codec, u32 inner type, u32 raw length, u32 reserved,
	                                a PAGE_DATA or PAGE_DELTA body compressed */
	STREAM_REC_JOIN = 10,        /* first record of an extra stream (version 3): token[16],
	                                u32 index (1..streams-1), u32 reserved */
	/* version 4, migrate --mode postcopy|hybrid (postcopy.h) */
	STREAM_REC_POSTCOPY_NEED = 11,    /* u64 first pfn (a multiple of 64), u32 words, u32
	                                     prepage (neighbours to ask for with each fault, at
	                                     most STREAM_MAX_BATCH - 1), u64 bitmap[words]: pages
	                                     the destination must still get from the source */
	STREAM_REC_PAGE_REQ = 12,         /* destination -> source on the post-copy channel: u32
	                                     count, u32 reserved, u64 pfn[count] */
	STREAM_REC_POSTCOPY_READY = 13,   /* destination -> source, first on the post-copy
	                                     channel: u32 status (0: ready), u32 length, text */
	STREAM_REC_POSTCOPY_DONE = 14,    /* destination -> source: what it saw (stream_done) */
	STREAM_REC_POSTCOPY_STALE = 15,   /* hybrid, before the switch-over: as POSTCOPY_NEED, pages
	                                     whose copy the destination holds is stale; it drops them
	                                     while the guest still runs at the source, answering each
	                                     such record with POSTCOPY_DROPPED on the channel */
	STREAM_REC_POSTCOPY_DROPPED = 16, /* destination -> source: u64 pages dropped */
	STREAM_REC_TYPE_MAX = 16,
};

/* PAGE_DATA flags */
#define STREAM_PAGES_VERIFY 1u
#define STREAM_PAGES_DEMAND 2u /* post-copy: pages the destination asked for (PAGE_REQ) */

/* stream_header.flags (version 4) */
#define STREAM_HDR_POSTCOPY                                                                        \
	1u                          /* the rest of memory follows the switch-over, on a channel of \
	                               its own: JOIN with index == streams */
#define STREAM_MAX_NEED_WORDS 4096u /* u64 words of one POSTCOPY_NEED record (16 GiB) */
#define STREAM_MAX_READY_TEXT 256u

struct stream_header {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
	uint64_t nr_pages;
	uint32_t domain_type; /* enum hv_domain_type */
	uint32_t nr_vcpus;
	/* version 3: the migration's streams (2..STREAM_MAX_STREAMS; earlier versions: 1). Page
	 * records of chunk k (STREAM_CHUNK_PAGES pages) go down stream k % streams, every record
	 * else down the first; each extra stream starts with JOIN and ends with END. */
	uint32_t streams;
	uint32_t flags; /* version 4: STREAM_HDR_* (version 3: 0) */
	uint8_t token[STREAM_TOKEN_LEN];
};

struct stream_rec {
	uint32_t type;
	uint32_t length;
	const uint8_t *body;
};

/* A decoded PAGE_DATA record: pfns[i] & STREAM_PFN_ZERO marks a zero page without data. */
struct stream_pages {
	uint32_t count;
	uint32_t flags;
	const uint8_t *pfns; /* count little-endian u64 entries (may be unaligned) */
	const uint8_t *data; /* the non-zero pages, in pfn order */
	uint32_t nr_data;
};

const char *stream_rec_name(uint32_t type);

/* Bytes a record with a body of body_len occupies on the wire (header + padded body). */
size_t stream_rec_wire_size(uint32_t body_len);

/*
 * Finish a record in buf: the body (body_len bytes) is already at buf + STREAM_REC_HDR_SIZE;
 * writes the header, the padding and the checksum. Returns the wire size.
 */
size_t stream_rec_seal(uint8_t *buf, uint32_t type, uint32_t body_len);

/* Parse a record header; ERR_PROTO if the type is unknown or the length out of bounds. */
int stream_rec_parse_header(const uint8_t *hdr, uint32_t *type_r, uint32_t *length_r,
                            uint64_t *checksum_r);

/* Check a record's checksum; ERR_CHECKSUM on mismatch. */
int stream_rec_check(uint32_t type, uint32_t length, uint64_t checksum, const uint8_t *body);

/* Typed bodies: encode into out (capacity cap), return body length or a negative error. */
int stream_encode_header(uint8_t *out, size_t cap, const struct stream_header *h);
int stream_decode_header(const struct stream_rec *rec, struct stream_header *h);
/* The stream (0..streams-1) that carries page pfn. */
unsigned stream_of_pfn(uint64_t pfn, unsigned streams);
/* index: 1..streams-1 for a stream of pages, streams for the post-copy channel */
int stream_encode_join(uint8_t *out, size_t cap, const uint8_t *token, uint32_t index);
int stream_decode_join(const struct stream_rec *rec, uint8_t *token, uint32_t *index_r);

/* POSTCOPY_NEED (and POSTCOPY_STALE, the same body): words u64 of bitmap from first_pfn on
 * (pages below nr_pages only). */
int stream_encode_need(uint8_t *out, size_t cap, uint64_t first_pfn, const uint64_t *words,
                       uint32_t nwords, uint32_t prepage);
int stream_decode_need(const struct stream_rec *rec, uint64_t nr_pages, uint64_t *first_pfn_r,
                       const uint8_t **words_r, uint32_t *nwords_r, uint32_t *prepage_r);
/* PAGE_REQ: 1..STREAM_MAX_BATCH pfns, each below nr_pages (decode). */
int stream_encode_req(uint8_t *out, size_t cap, const uint64_t *pfns, uint32_t count);
int stream_decode_req(const struct stream_rec *rec, uint64_t nr_pages, const uint8_t **pfns_r,
                      uint32_t *count_r);
/* POSTCOPY_READY: status 0 or an error, and what a refusal says (printable, bounded). */
int stream_encode_ready(uint8_t *out, size_t cap, uint32_t status, const char *text);
int stream_decode_ready(const struct stream_rec *rec, uint32_t *status_r, char *text, size_t len);
int stream_encode_dropped(uint8_t *out, size_t cap, uint64_t pages);
int stream_decode_dropped(const struct stream_rec *rec, uint64_t *pages_r);

/* POSTCOPY_DONE: the destination holds every page; its figures of the phase. */
struct stream_done {
	uint64_t pages;                                    /* installed */
	uint64_t faults;                                   /* the guest's faults on missing pages */
	uint64_t prepaged;                                 /* asked for as a fault's neighbours */
	uint64_t zero;                                     /* installed as zero pages */
	uint32_t fault_p50_us, fault_p99_us, fault_max_us; /* a fault's wait for its page */
};
int stream_encode_done(uint8_t *out, size_t cap, const struct stream_done *d);
int stream_decode_done(const struct stream_rec *rec, struct stream_done *d);
int stream_encode_round_end(uint8_t *out, size_t cap, uint32_t round, uint64_t pages);
int stream_decode_round_end(const struct stream_rec *rec, uint32_t *round_r, uint64_t *pages_r);
int stream_encode_blob(uint8_t *out, size_t cap, uint32_t id, const void *blob, uint32_t len);
int stream_decode_blob(const struct stream_rec *rec, uint32_t *id_r, const uint8_t **blob_r,
                       uint32_t *len_r);

/*
 * Validate a PAGE_DATA record against a guest of nr_pages pages: count within
 * STREAM_MAX_BATCH, every pfn below nr_pages, reserved bits clear, data length exactly the
 * non-zero pages.
 */
int stream_decode_pages(const struct stream_rec *rec, uint64_t nr_pages, struct stream_pages *p);
uint64_t stream_pages_pfn(const struct stream_pages *p, uint32_t i);

/*
 * Page-batch builder for the sender. Page contents are copied into the batch when added, so
 * the record is a consistent snapshot even while the guest keeps writing (a torn page is
 * simply dirty again and resent). Sealing needs no further copy: the record goes out as two
 * pieces, the prefix (header, count, pfns) and the data.
 */
struct stream_batch {
	uint8_t *prefix; /* STREAM_REC_HDR_SIZE + 8 + 8 * STREAM_MAX_BATCH */
	uint8_t *data;   /* STREAM_MAX_BATCH * STREAM_PAGE_SIZE */
	uint32_t count;
	uint32_t nr_data;
	uint32_t flags;
};
int stream_batch_init(struct stream_batch *b);
void stream_batch_free(struct stream_batch *b);
void stream_batch_reset(struct stream_batch *b, uint32_t flags);
bool stream_batch_full(const struct stream_batch *b);
bool stream_batch_empty(const struct stream_batch *b);
/* Add pfn; page is its 4 KiB content (copied), or NULL for a zero page. */
void stream_batch_add(struct stream_batch *b, uint64_t pfn, const void *page);
/* How many more pages the batch takes (each one entry and at most one page of data). */
uint32_t stream_batch_room(const struct stream_batch *b);
/*
 * Where the next page's data goes: a sender may read up to stream_batch_room(b) consecutive
 * pages there itself (pread into the record, no copy) and then add them with
 * stream_batch_add_read.
 */
uint8_t *stream_batch_tail(struct stream_batch *b);
/*
 * Add the n pages pfn, pfn + 1, ... whose contents were read to stream_batch_tail(b)
 * (n <= stream_batch_room(b)). A page of all zeros becomes an entry without data, or is left
 * out when skip_zero; the data of the pages after it moves down. Returns how many were zero.
 */
uint32_t stream_batch_add_read(struct stream_batch *b, uint64_t pfn, uint32_t n, bool skip_zero);
/*
 * Seal into a PAGE_DATA record: fills iov[0] (prefix) and iov[1] (data, may be empty) and
 * returns the wire size.
 */
struct iovec;
size_t stream_batch_seal(struct stream_batch *b, struct iovec *iov);

/* A decoded PAGE_DELTA record. */
struct stream_deltas {
	uint32_t count;
	const uint8_t *pfns; /* count little-endian u64 */
	const uint8_t *lens; /* count little-endian u16, each 1..DELTA_MAX_LEN */
	const uint8_t *data; /* the deltas, one after another */
};
/*
 * Validate a PAGE_DELTA record against a guest of nr_pages pages: count within
 * STREAM_MAX_BATCH, flags 0, pfns below nr_pages, every length within bounds and the deltas
 * exactly the rest of the body (each delta's runs are checked when applied: codec.h).
 */
int stream_decode_deltas(const struct stream_rec *rec, uint64_t nr_pages, struct stream_deltas *d);
uint64_t stream_deltas_pfn(const struct stream_deltas *d, uint32_t i);
uint32_t stream_deltas_len(const struct stream_deltas *d, uint32_t i);

/* The most delta bytes one PAGE_DELTA record carries (its body stays within STREAM_MAX_BODY). */
#define STREAM_DELTA_MAX_DATA (STREAM_MAX_BATCH * STREAM_PAGE_SIZE - 2u * STREAM_MAX_BATCH)

/* Builder of PAGE_DELTA records: deltas are copied in as they are coded. */
struct stream_delta_batch {
	uint8_t *prefix; /* header, count, flags, pfns, lengths, padding */
	uint8_t *data;   /* STREAM_DELTA_MAX_DATA */
	uint16_t lens[STREAM_MAX_BATCH];
	uint64_t pfns[STREAM_MAX_BATCH];
	uint32_t count;
	uint32_t data_len;
};
int stream_delta_batch_init(struct stream_delta_batch *b);
void stream_delta_batch_free(struct stream_delta_batch *b);
/* Whether a delta of len bytes still fits. */
bool stream_delta_batch_fits(const struct stream_delta_batch *b, size_t len);
void stream_delta_batch_add(struct stream_delta_batch *b, uint64_t pfn, const uint8_t *delta,
                            size_t len);
/* Seal into a PAGE_DELTA record: iov[0] prefix, iov[1] deltas, iov[2] padding; the wire size.
 * The batch is empty again after it. */
size_t stream_delta_batch_seal(struct stream_delta_batch *b, struct iovec *iov);

/* A decoded COMPRESSED record. */
struct stream_compressed {
	uint32_t codec;      /* enum codec_id, not CODEC_NONE */
	uint32_t inner_type; /* STREAM_REC_PAGE_DATA or STREAM_REC_PAGE_DELTA */
	uint32_t raw_len;    /* the inner body's length, at most STREAM_MAX_BODY */
	const uint8_t *data;
	uint32_t len;
};
int stream_decode_compressed(const struct stream_rec *rec, struct stream_compressed *z);
/* The 16 bytes before the compressed data of a COMPRESSED body. */
void stream_encode_compressed_head(uint8_t *out, uint32_t codec, uint32_t inner_type,
                                   uint32_t raw_len);

/*
 * Add the page read at read (inside the batch's data, at or after stream_batch_tail) as pfn's
 * data: it moves down to the tail when pages before it were left out or sent another way.
 */
void stream_batch_take(struct stream_batch *b, uint64_t pfn, const uint8_t *read);

/* True if the 4 KiB page is all zeros. */
bool stream_page_is_zero(const void *page);

#endif
