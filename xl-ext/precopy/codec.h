/*
 * codec.h - the migration stream's page codecs: the delta of a re-sent page against the copy
 * the destination already holds, and lz4/zstd compression of whole page records.
 *
 * Delta. A page sent again is sent as the XOR of its new and its previous content, coded as
 * runs of 8-byte words: a run of zero words (unchanged), a run of literal words, or a run of one
 * word repeated (a page rewritten with the same change everywhere). Each run begins with an op
 * byte, kind in bits 7-6 (DELTA_ZERO, DELTA_LITERAL, DELTA_REPEAT) and the word count less one
 * in bits 5-0; a count field of 63 means the count (64-512) follows as u16 little-endian. A
 * literal run's words follow its op, a repeat run's one word follows it. The runs of a delta
 * cover the page's 512 words exactly. Like QEMU's XBZRLE, and unlike a general compressor,
 * this knows the previous content: a page whose guest changed 8 bytes costs 10 bytes.
 *
 * Record compression (lz4, zstd) is a whole PAGE_DATA or PAGE_DELTA record body compressed
 * into a COMPRESSED record (stream.h), for links slower than the compressor.
 *
 * Every decoder is bounded: it writes exactly the page (or raw length) it was given room for
 * and refuses with ERR_PROTO anything malformed, truncated, or longer than it says.
 */
#ifndef XLEXT_CODEC_H
#define XLEXT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DELTA_ZERO    0u
#define DELTA_LITERAL 1u
#define DELTA_REPEAT  2u
#define DELTA_WORDS   512u /* 8-byte words in a 4 KiB page */
/* The longest delta: a literal run over the whole page (op, u16 count, the page). */
#define DELTA_MAX_LEN (3u + 4096u)

/*
 * Code the delta from old to new (4 KiB each) into out (cap bytes). Returns its length (3 for
 * equal pages), or 0 when it does not fit in cap: the page is better sent whole.
 */
size_t delta_encode(const void *old, const void *new_page, uint8_t *out, size_t cap);

/* Apply a delta of len bytes to page (4 KiB) in place. ERR_PROTO if malformed. */
int delta_apply(void *page, const uint8_t *delta, size_t len);

/* Record compressors (the COMPRESSED record's codec field). */
enum codec_id {
	CODEC_NONE = 0,
	CODEC_LZ4 = 1,
	CODEC_ZSTD = 2,
	CODEC_MAX = 2,
};

const char *codec_name(enum codec_id id);

/* A compressor's or decompressor's state, reused across records. */
struct codec_ctx;
struct codec_ctx *codec_ctx_new(void);
void codec_ctx_free(struct codec_ctx *c);

/* The largest output compressing n bytes can take. */
size_t codec_bound(enum codec_id id, size_t n);

/*
 * Compress n bytes of src into dst (cap bytes): the compressed length, or 0 when it does not
 * fit (the record is sent as it is).
 */
size_t codec_compress(struct codec_ctx *c, enum codec_id id, const void *src, size_t n, void *dst,
                      size_t cap);

/* Decompress n bytes of src into exactly raw_len bytes of dst. ERR_PROTO if it is not that. */
int codec_decompress(struct codec_ctx *c, enum codec_id id, const void *src, size_t n, void *dst,
                     size_t raw_len);

/*
 * What migrate --compress asks for: a set of methods. "auto" lets the sender choose, batch by
 * batch, from what it measures (the link's rate, each codec's cost and ratio).
 */
#define COMPRESS_DELTA 1u
#define COMPRESS_LZ4   2u
#define COMPRESS_ZSTD  4u
#define COMPRESS_AUTO  8u
#define COMPRESS_ALL   (COMPRESS_DELTA | COMPRESS_LZ4 | COMPRESS_ZSTD)

/*
 * Parse "none", "auto", "delta", "lz4", "zstd", "delta+lz4", "delta+zstd" into *mode_r.
 * ERR_INVAL (nothing set) for anything else, lz4 and zstd together included.
 */
int compress_parse(const char *s, unsigned *mode_r);
/* The mode's name as compress_parse takes it ("none", "delta+zstd", "auto"). */
const char *compress_name(unsigned mode, char *buf, size_t len);

#endif
