/*
 * fuzz_postcopy.c - the post-copy source's server (precopy/postcopy.c) as a destination drives
 * it: what the destination sends on the post-copy channel (PAGE_REQ, POSTCOPY_DONE, anything
 * else) comes from the input, against a 64-page guest every page of which (but page 0) the
 * destination lacks. The source must refuse what is malformed, send each page at most once,
 * and stop at the end of the input.
 *
 * Input: first byte even: the raw channel bytes (framing, checksums). Odd: records to seal with
 * valid checksums, so that the fuzzer reaches every record's body: repeated [u8 type][u16
 * little-endian length][body].
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "xl-ext/precopy/postcopy.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/precopy/stream.h"

#define FUZZ_PAGES 64u

/* Records of data sealed one after another; the length in *len_r (caller frees). */
static uint8_t *build_records(const uint8_t *data, size_t size, size_t *len_r)
{
	size_t cap = 2 * size + 64, off = 0;
	uint8_t *out = malloc(cap);

	if (!out)
		return NULL;
	while (size >= 3) {
		uint32_t type = data[0], len = (uint32_t)data[1] | (uint32_t)data[2] << 8;

		data += 3;
		size -= 3;
		if (len > size)
			len = (uint32_t)size;
		if (stream_rec_wire_size(len) > cap - off)
			break;
		memcpy(out + off + STREAM_REC_HDR_SIZE, data, len);
		off += stream_rec_seal(out + off, type, len);
		data += len;
		size -= len;
	}
	*len_r = off;
	return out;
}

/* The destination's end: take what the source sends until it closes the channel. */
static void *drain(void *arg)
{
	int fd = *(int *)arg;
	uint8_t buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int mem_fd = -1; /* the guest: every page stamped with its number */
	struct mig_report report;
	uint8_t *records = NULL;
	const uint8_t *in = data + 1;
	size_t len = size ? size - 1 : 0;
	uint64_t *need;
	pthread_t t;
	int near, far;

	fuzz_quiet();
	if (!size)
		return 0;
	if (mem_fd < 0) {
		uint8_t page[STREAM_PAGE_SIZE];

		mem_fd = memfd_create("fuzz_postcopy-guest", MFD_CLOEXEC);
		if (mem_fd < 0)
			return 0;
		for (uint32_t pfn = 0; pfn < FUZZ_PAGES; pfn++) {
			memset(page, (int)pfn, sizeof(page));
			if (pwrite(mem_fd, page, sizeof(page), (off_t)pfn * STREAM_PAGE_SIZE) < 0)
				abort();
		}
	}
	if (data[0] & 1) {
		records = build_records(in, len, &len);
		if (!records)
			return 0;
		in = records;
	}
	need = calloc(1, sizeof(uint64_t));
	if (!need || fuzz_socket(in, len, &near, &far)) {
		free(need);
		free(records);
		return 0;
	}
	*need = ~1ull; /* every page but page 0 */
	memset(&report, 0, sizeof(report));
	if (pthread_create(&t, NULL, drain, &far)) {
		free(need);
		close(near);
	} else {
		/* takes near and need over, on every path: closing near ends the drain */
		if (pc_postcopy_serve(&report, near, mem_fd, FUZZ_PAGES, need, NULL, 0) == 0)
			pc_postcopy_finish(&report);
		pthread_join(t, NULL);
		/* no page twice, none the destination did not lack */
		if (report.postcopy.pulled + report.postcopy.pushed > FUZZ_PAGES - 1)
			abort();
	}
	close(far);
	free(records);
	return 0;
}
