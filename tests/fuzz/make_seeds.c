/*
 * make_seeds.c - write the binary seed inputs of the fuzz harnesses (tests/fuzz/corpus/),
 * made with the project's own encoders so that they are valid messages to mutate from:
 *
 *   make_seeds DIR     (make fuzz-seeds: DIR is tests/fuzz/corpus of the source tree)
 *
 * The text seeds (JSON, haagent.conf, xl.cfg, disk specs) are written by hand in the tree.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haagent/msg.h"
#include "xl-ext/migration/xlproto.h"
#include "xl-ext/precopy/codec.h"
#include "xl-ext/precopy/stream.h"

static const char *dir;

static void save(const char *harness, const char *name, const void *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, harness, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* fuzz_stream's structured form: [mode][type][vcpus] then [u8 type][u16 len][body]... */
static size_t tlv(uint8_t *out, size_t off, uint8_t type, const void *body, uint16_t len)
{
	out[off] = type;
	out[off + 1] = (uint8_t)len;
	out[off + 2] = (uint8_t)(len >> 8);
	memcpy(out + off + 3, body, len);
	return off + 3 + len;
}

/* A version 2 stream: a page, its delta, and a page record compressed with lz4 and zstd. */
static void compressed_stream_seed(void)
{
	static uint8_t out[4 * 4096 + 1024], body[4200], page[4096], page2[4096], z[8192];
	uint8_t delta[DELTA_MAX_LEN];
	struct codec_ctx *c = codec_ctx_new();
	uint64_t pfn = 3;
	uint32_t u32[2] = {1, 0};
	uint16_t len16;
	size_t off = 0, dlen, zlen;

	out[off++] = 3; /* structured, version 2 */
	out[off++] = 0;
	out[off++] = 0;
	memset(page, 0xa5, sizeof(page));
	memcpy(body, u32, 8); /* PAGE_DATA: page 3 */
	memcpy(body + 8, &pfn, 8);
	memcpy(body + 16, page, 4096);
	off = tlv(out, off, STREAM_REC_PAGE_DATA, body, 16 + 4096);
	memcpy(page2, page, sizeof(page2)); /* PAGE_DELTA: page 3 again, two words changed */
	memset(page2 + 800, 0x5a, 16);
	dlen = delta_encode(page, page2, delta, sizeof(delta));
	len16 = (uint16_t)dlen;
	memcpy(body, u32, 8);
	memcpy(body + 8, &pfn, 8);
	memset(body + 16, 0, 8);
	memcpy(body + 16, &len16, 2);
	memcpy(body + 24, delta, dlen);
	off = tlv(out, off, STREAM_REC_PAGE_DELTA, body, (uint16_t)(24 + dlen));
	/* the PAGE_DATA body compressed, once with each codec */
	memcpy(body, u32, 8);
	memcpy(body + 8, &pfn, 8);
	memcpy(body + 16, page2, 4096);
	for (enum codec_id id = CODEC_LZ4; c && id <= CODEC_MAX; id++) {
		zlen = codec_compress(c, id, body, 16 + 4096, z + 16, sizeof(z) - 16);
		stream_encode_compressed_head(z, id, STREAM_REC_PAGE_DATA, 16 + 4096);
		off = tlv(out, off, STREAM_REC_COMPRESSED, z, (uint16_t)(16 + zlen));
	}
	codec_ctx_free(c);
	save("fuzz_stream", "v2-delta-compressed", out, off);
}

static void stream_seeds(void)
{
	static uint8_t out[3 * 4096 + 1024], body[4200];
	uint64_t pfns[2] = {3, 5 | (1ull << 63)};
	uint32_t u32[2];
	size_t off = 0;

	out[off++] = 1; /* structured */
	out[off++] = 0; /* PV */
	out[off++] = 0; /* one vCPU */
	u32[0] = 2;     /* PAGE_DATA: two pages, one of them zero */
	u32[1] = 0;
	memcpy(body, u32, 8);
	memcpy(body + 8, pfns, 16);
	memset(body + 24, 0xa5, 4096);
	off = tlv(out, off, STREAM_REC_PAGE_DATA, body, 24 + 4096);
	u32[0] = 0; /* ROUND_END: round 0, 2 pages */
	u32[1] = 0;
	memcpy(body, u32, 8);
	pfns[0] = 2;
	memcpy(body + 8, pfns, 8);
	off = tlv(out, off, STREAM_REC_ROUND_END, body, 16);
	u32[0] = 0; /* VCPU_STATE of vCPU 0: 16 bytes */
	u32[1] = 16;
	memcpy(body, u32, 8);
	memset(body + 8, 0x11, 16);
	off = tlv(out, off, STREAM_REC_VCPU_STATE, body, 24);
	off = tlv(out, off, STREAM_REC_END, body, 0);
	save("fuzz_stream", "pages-vcpu-end", out, off);
	compressed_stream_seed();
}

static void handshake_seeds(void)
{
	static const char config[] = "{\"name\":\"vm1\",\"type\":\"pv\",\"memory\":32,\"vcpus\":1}";
	static const char request[] =
	    "{\"source_host\":\"h1\",\"source_key\":\"0x0000000000001234\",\"luns\":[{\"url\":"
	    "\"iscsi://127.0.0.1:1/iqn.2026-11.org.example:t1/1\",\"spec\":\"vdev=xvda,script="
	    "block-iscsi,target=iqn=iqn.2026-11.org.example:t1,portal=127.0.0.1:1,lun=1\","
	    "\"readonly\":false,\"holder\":\"0x0000000000001234\"}]}";
	static uint8_t out[4096];
	uint8_t *hdr;
	size_t hlen, off;
	uint32_t len;

	for (int ext = 0; ext < 2; ext++) {
		if (xlp_encode_header_flags(config, ext ? XLP_OPT_XLEXT : 0, &hdr, &hlen))
			exit(1);
		memcpy(out, hdr, hlen);
		off = hlen;
		free(hdr);
		if (ext) {
			len = (uint32_t)strlen(request);
			memcpy(out + off, &len, 4);
			memcpy(out + off + 4, request, len);
			off += 4 + len;
		}
		len = 8; /* the fake backend's stream */
		memcpy(out + off, &len, 4);
		memcpy(out + off + 4, "XLXSTRM\n", 8);
		off += 12;
		memcpy(out + off, xlp_permission_to_go, xlp_permission_to_go_len());
		off += xlp_permission_to_go_len();
		save("fuzz_xlhandshake", ext ? "xlext-handover" : "stock-xl", out, off);
	}
}

static void psk_seeds(void)
{
	uint8_t out[1 + 16 + 32 + 4 + 32 + 33];

	/* first byte even: this end receives, the rest is the sender's proof */
	memset(out, 0, sizeof(out));
	memcpy(out + 1, "xl-ext auth 1\n\0\0", 16);
	memset(out + 17, 0x42, 32);
	out[17 + 32 + 3] = 1; /* the paused flag */
	save("fuzz_psk", "sender-proof", out, 1 + 16 + 32 + 4 + 32);
	/* odd: this end sends, the rest is the receiver's nonce, then its status and proof */
	out[0] = 1;
	memset(out + 17 + 32, 0, 1 + 32);
	save("fuzz_psk", "receiver-nonce-and-proof", out, 1 + 16 + 32 + 1 + 32);
}

static void hamsg_seeds(void)
{
	struct ha_guest_info g = {.mem_mib = 256, .owner = 2};
	struct ha_msg m = {.type = HA_MSG_HELLO, .flags = HA_HELLO_SYNCED | HA_HELLO_QUORATE};
	uint8_t *buf;
	size_t len;

	snprintf(g.name, sizeof(g.name), "vm1");
	snprintf(m.text, sizeof(m.text), "h2");
	m.free_mib = 4096;
	m.guests = &g;
	m.nguests = 1;
	if (ha_msg_encode(&m, &buf, &len))
		exit(1);
	save("fuzz_hamsg", "hello", buf, len);
	free(buf);
	memset(&m, 0, sizeof(m));
	m.type = HA_MSG_MIG_START;
	m.from = 2;
	m.to = 3;
	snprintf(m.guest, sizeof(m.guest), "vm1");
	snprintf(m.text, sizeof(m.text), "node h2 failing");
	if (ha_msg_encode(&m, &buf, &len))
		exit(1);
	save("fuzz_hamsg", "mig-start", buf, len);
	free(buf);
	memset(&m, 0, sizeof(m));
	m.type = HA_MSG_SET_STATE;
	m.node = 1;
	m.state = HA_NODE_STOPPING; /* the highest state: mark-failing --cold */
	snprintf(m.text, sizeof(m.text), "cold evacuation");
	if (ha_msg_encode(&m, &buf, &len))
		exit(1);
	save("fuzz_hamsg", "set-state-stopping", buf, len);
	free(buf);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
		return 2;
	}
	dir = argv[1];
	stream_seeds();
	handshake_seeds();
	psk_seeds();
	hamsg_seeds();
	return 0;
}
