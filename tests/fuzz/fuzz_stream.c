/*
 * fuzz_stream.c - the sim backend's migration stream decoder (precopy/stream.h) as the
 * receiver runs it: pc_receive over a file descriptor, into a 64-page guest's memory file.
 *
 * Input: first byte even: the raw stream bytes (framing, checksums). Odd: records to seal
 * with valid checksums, after a valid header record (of version 2, which allows PAGE_DELTA
 * and COMPRESSED records, when bit 1 is set too; of version 4 with post-copy, whose channel
 * this harness then provides, when bit 2 is set), so the fuzzer reaches every record type's
 * body: repeated [u8 type][u16 little-endian length][body].
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "xl-ext/precopy/postcopy.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/precopy/stream.h"

#define FUZZ_PAGES 64u

static size_t put_record(uint8_t *buf, size_t cap, uint32_t type, const uint8_t *body, uint32_t len)
{
	if (stream_rec_wire_size(len) > cap)
		return 0;
	memcpy(buf + STREAM_REC_HDR_SIZE, body, len);
	return stream_rec_seal(buf, type, len);
}

/* The structured form of data as a stream; its length in *len_r (caller frees). */
static uint8_t *build_stream(const uint8_t *data, size_t size, uint32_t version,
                             enum hv_domain_type type, unsigned vcpus, size_t *len_r)
{
	size_t cap = 2 * size + 4096, off = 0;
	uint8_t *out = malloc(cap), hdr[64];
	struct stream_header h = {.version = version,
	                          .page_size = STREAM_PAGE_SIZE,
	                          .nr_pages = FUZZ_PAGES,
	                          .domain_type = type,
	                          .nr_vcpus = vcpus,
	                          .streams = 1,
	                          .flags = version >= 4 ? STREAM_HDR_POSTCOPY : 0};
	int n;

	if (!out)
		return NULL;
	memset(h.token, 0x5a, sizeof(h.token));
	memcpy(h.magic, STREAM_MAGIC, sizeof(h.magic));
	n = stream_encode_header(hdr, sizeof(hdr), &h);
	if (n > 0)
		off += put_record(out, cap, STREAM_REC_HEADER, hdr, (uint32_t)n);
	while (size >= 3) {
		uint32_t rtype = data[0], len = (uint32_t)data[1] | (uint32_t)data[2] << 8;

		data += 3;
		size -= 3;
		if (len > size)
			len = (uint32_t)size;
		off += put_record(out + off, cap - off, rtype, data, len);
		data += len;
		size -= len;
	}
	*len_r = off;
	return out;
}

/* The post-copy channel of a version 4 stream: a socket whose far end sent its JOIN. */
static int chan_far = -1;

static int accept_channel(void *arg, int timeout_ms)
{
	uint8_t token[STREAM_TOKEN_LEN], rec[64];
	int near, far, n;

	(void)arg;
	(void)timeout_ms;
	memset(token, 0x5a, sizeof(token));
	n = stream_encode_join(rec + STREAM_REC_HDR_SIZE, sizeof(rec) - STREAM_REC_HDR_SIZE, token,
	                       1);
	if (n < 0 ||
	    fuzz_socket(rec, stream_rec_seal(rec, STREAM_REC_JOIN, (uint32_t)n), &near, &far))
		return -1;
	chan_far = far;
	return near;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct pc_streams channel = {.accept = accept_channel};
	static int mem_fd = -1; /* the guest's memory file, emptied before every input */
	struct pc_cpu_state state = {0};
	struct mig_report report;
	enum hv_domain_type type;
	unsigned vcpus;
	uint8_t *stream = NULL;
	size_t len;
	int fd;

	fuzz_quiet();
	if (size < 3)
		return 0;
	type = (enum hv_domain_type)(data[1] % 3);
	vcpus = 1 + data[2] % 2;
	if (data[0] & 1) {
		stream = build_stream(data + 3, size - 3,
		                      data[0] & 4   ? 4
		                      : data[0] & 2 ? 2
		                                    : STREAM_VERSION,
		                      type, vcpus, &len);
		if (!stream)
			return 0;
		fd = fuzz_reader(stream, len);
	} else {
		fd = fuzz_reader(data + 3, size - 3);
	}
	if (mem_fd < 0)
		mem_fd = memfd_create("fuzz_stream-guest", MFD_CLOEXEC);
	if (fd >= 0 && mem_fd >= 0 && !ftruncate(mem_fd, 0) &&
	    !ftruncate(mem_fd, (off_t)FUZZ_PAGES * STREAM_PAGE_SIZE)) {
		struct stat st;

		memset(&report, 0, sizeof(report));
		pc_receive(fd, mem_fd, FUZZ_PAGES, type, vcpus, &channel, &state, &report);
		pc_postcopy_cancel(
		    &report); /* a post-copy stream that ended well keeps its phase */
		pc_cpu_state_free(&state);
		if (chan_far >= 0)
			close(chan_far);
		chan_far = -1;
		/* a write outside the guest would have grown its file */
		if (fstat(mem_fd, &st) || st.st_size != (off_t)FUZZ_PAGES * STREAM_PAGE_SIZE)
			abort();
	}
	if (fd >= 0)
		close(fd);
	free(stream);
	return 0;
}
