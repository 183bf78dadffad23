/*
 * codec.c - the delta codec of re-sent pages and the lz4/zstd record compressors (codec.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <zstd.h>

#include "common/error.h"
#include "xl-ext/precopy/codec.h"

/* zstd's fastest level: on a link slow enough for compression to pay, its ratio is the point,
 * and level 1 keeps it near lz4's speed on pages */
#define ZSTD_LEVEL 1

static uint64_t word_at(const void *p, size_t i)
{
	uint64_t w;

	memcpy(&w, (const uint8_t *)p + 8 * i, 8);
	return w;
}

/* Append a run's op (and its long count) at *p, below end; false when there is no room. */
static bool put_op(uint8_t **p, const uint8_t *end, unsigned kind, unsigned n)
{
	if (n <= 63) {
		if (end - *p < 1)
			return false;
		*(*p)++ = (uint8_t)(kind << 6 | (n - 1));
		return true;
	}
	if (end - *p < 3)
		return false;
	(*p)[0] = (uint8_t)(kind << 6 | 63);
	(*p)[1] = (uint8_t)(n & 0xff);
	(*p)[2] = (uint8_t)(n >> 8);
	*p += 3;
	return true;
}

static bool put_words(uint8_t **p, const uint8_t *end, const uint64_t *w, unsigned n)
{
	if ((size_t)(end - *p) < 8 * (size_t)n)
		return false;
	memcpy(*p, w, 8 * (size_t)n);
	*p += 8 * (size_t)n;
	return true;
}

/* Whether a run of at least 3 equal words starts at i (worth a repeat op). */
static bool repeat_at(const uint64_t *x, unsigned i)
{
	return i + 2 < DELTA_WORDS && x[i] == x[i + 1] && x[i] == x[i + 2];
}

size_t delta_encode(const void *old, const void *new_page, uint8_t *out, size_t cap)
{
	uint64_t x[DELTA_WORDS];
	uint8_t *p = out;
	const uint8_t *end = out + cap;
	unsigned i = 0;

	for (unsigned k = 0; k < DELTA_WORDS; k++)
		x[k] = word_at(old, k) ^ word_at(new_page, k);
	while (i < DELTA_WORDS) {
		unsigned j = i + 1;
		bool ok;

		if (x[i] == 0) {
			while (j < DELTA_WORDS && x[j] == 0)
				j++;
			ok = put_op(&p, end, DELTA_ZERO, j - i);
		} else if (repeat_at(x, i)) {
			while (j < DELTA_WORDS && x[j] == x[i])
				j++;
			ok = put_op(&p, end, DELTA_REPEAT, j - i) && put_words(&p, end, &x[i], 1);
		} else {
			while (j < DELTA_WORDS && x[j] != 0 && !repeat_at(x, j))
				j++;
			ok = put_op(&p, end, DELTA_LITERAL, j - i) &&
			     put_words(&p, end, &x[i], j - i);
		}
		if (!ok)
			return 0;
		i = j;
	}
	return (size_t)(p - out);
}

static void xor_word(uint8_t *page, unsigned i, uint64_t v)
{
	uint64_t w;

	memcpy(&w, page + 8 * (size_t)i, 8);
	w ^= v;
	memcpy(page + 8 * (size_t)i, &w, 8);
}

int delta_apply(void *page, const uint8_t *delta, size_t len)
{
	const uint8_t *p = delta, *end = delta + len;
	unsigned w = 0;

	while (p < end) {
		unsigned op = *p++, kind = op >> 6, n = (op & 63) + 1;

		if ((op & 63) == 63) {
			if (end - p < 2)
				return ERR_PROTO;
			n = (unsigned)p[0] | (unsigned)p[1] << 8;
			p += 2;
			if (n < 64) /* a short run has its count in the op */
				return ERR_PROTO;
		}
		if (n > DELTA_WORDS - w)
			return ERR_PROTO;
		switch (kind) {
		case DELTA_ZERO:
			break;
		case DELTA_LITERAL:
			if ((size_t)(end - p) < 8 * (size_t)n)
				return ERR_PROTO;
			for (unsigned k = 0; k < n; k++, p += 8)
				xor_word(page, w + k, word_at(p, 0));
			break;
		case DELTA_REPEAT: {
			uint64_t v;

			if (end - p < 8)
				return ERR_PROTO;
			v = word_at(p, 0);
			p += 8;
			for (unsigned k = 0; k < n; k++)
				xor_word(page, w + k, v);
			break;
		}
		default:
			return ERR_PROTO;
		}
		w += n;
	}
	return w == DELTA_WORDS ? 0 : ERR_PROTO;
}

const char *codec_name(enum codec_id id)
{
	switch (id) {
	case CODEC_NONE:
		return "none";
	case CODEC_LZ4:
		return "lz4";
	case CODEC_ZSTD:
		return "zstd";
	}
	return "?";
}

struct codec_ctx {
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
};

struct codec_ctx *codec_ctx_new(void)
{
	return calloc(1, sizeof(struct codec_ctx));
}

void codec_ctx_free(struct codec_ctx *c)
{
	if (!c)
		return;
	ZSTD_freeCCtx(c->zc);
	ZSTD_freeDCtx(c->zd);
	free(c);
}

size_t codec_bound(enum codec_id id, size_t n)
{
	switch (id) {
	case CODEC_LZ4:
		return (size_t)LZ4_compressBound((int)n);
	case CODEC_ZSTD:
		return ZSTD_compressBound(n);
	case CODEC_NONE:
		break;
	}
	return n;
}

size_t codec_compress(struct codec_ctx *c, enum codec_id id, const void *src, size_t n, void *dst,
                      size_t cap)
{
	if (n > (size_t)LZ4_MAX_INPUT_SIZE || cap > (size_t)LZ4_MAX_INPUT_SIZE)
		return 0;
	if (id == CODEC_LZ4) {
		int r = LZ4_compress_default(src, dst, (int)n, (int)cap);

		return r > 0 ? (size_t)r : 0;
	}
	if (id == CODEC_ZSTD) {
		size_t r;

		if (!c->zc)
			c->zc = ZSTD_createCCtx();
		if (!c->zc)
			return 0;
		r = ZSTD_compressCCtx(c->zc, dst, cap, src, n, ZSTD_LEVEL);
		return ZSTD_isError(r) ? 0 : r;
	}
	return 0;
}

int codec_decompress(struct codec_ctx *c, enum codec_id id, const void *src, size_t n, void *dst,
                     size_t raw_len)
{
	if (n > (size_t)LZ4_MAX_INPUT_SIZE || raw_len > (size_t)LZ4_MAX_INPUT_SIZE)
		return ERR_PROTO;
	if (id == CODEC_LZ4) {
		int r = LZ4_decompress_safe(src, dst, (int)n, (int)raw_len);

		return r >= 0 && (size_t)r == raw_len ? 0 : ERR_PROTO;
	}
	if (id == CODEC_ZSTD) {
		size_t r;

		if (!c->zd)
			c->zd = ZSTD_createDCtx();
		if (!c->zd)
			return ERR_NOMEM;
		r = ZSTD_decompressDCtx(c->zd, dst, raw_len, src, n);
		return !ZSTD_isError(r) && r == raw_len ? 0 : ERR_PROTO;
	}
	return ERR_PROTO;
}

int compress_parse(const char *s, unsigned *mode_r)
{
	static const struct {
		const char *name;
		unsigned mode;
	} modes[] = {
	    {"none", 0},
	    {"auto", COMPRESS_AUTO},
	    {"delta", COMPRESS_DELTA},
	    {"lz4", COMPRESS_LZ4},
	    {"zstd", COMPRESS_ZSTD},
	    {"delta+lz4", COMPRESS_DELTA | COMPRESS_LZ4},
	    {"delta+zstd", COMPRESS_DELTA | COMPRESS_ZSTD},
	};

	for (size_t i = 0; s && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(s, modes[i].name)) {
			*mode_r = modes[i].mode;
			return 0;
		}
	return ERR_INVAL;
}

const char *compress_name(unsigned mode, char *buf, size_t len)
{
	if (mode & COMPRESS_AUTO)
		snprintf(buf, len, "auto");
	else if (!(mode & COMPRESS_ALL))
		snprintf(buf, len, "none");
	else
		snprintf(buf, len, "%s%s%s", mode & COMPRESS_DELTA ? "delta" : "",
		         (mode & COMPRESS_DELTA) && (mode & (COMPRESS_LZ4 | COMPRESS_ZSTD)) ? "+"
		                                                                            : "",
		         mode & COMPRESS_LZ4    ? "lz4"
		         : mode & COMPRESS_ZSTD ? "zstd"
		                                : "");
	return buf;
}
