/*
 * journalcheck.c - the journal checker of "xl-ext pr ... journal-check" on a plain file.
 *
 *   journalcheck FILE ACKED KEY:FROM[,KEY:FROM...] [GUEST [BASE [RING]]]
 *
 * Runs xl-ext/storage/journal.c's journal_check on FILE seen as a LUN of 512-byte blocks and
 * prints the same line as xl-ext's journal-check verb. Exit 0 consistent, 1 not, 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/journal.h"

#define BLOCK 512

static int file_read(void *ctx, uint64_t lba, void *buf, size_t len)
{
	FILE *f = ctx;

	if (fseeko(f, (off_t)(lba * BLOCK), SEEK_SET) || fread(buf, 1, len, f) != len)
		return ERR_IO;
	return 0;
}

static int file_write(void *ctx, uint64_t lba, const void *buf, size_t len)
{
	return ERR_PERM; /* the checker only reads */
}

static int parse_u64(const char *s, uint64_t *v_r)
{
	char *end;

	errno = 0;
	*v_r = strtoull(s, &end, 0);
	return errno || end == s || *end ? ERR_INVAL : 0;
}

int main(int argc, char **argv)
{
	struct journal_epoch epochs[JOURNAL_MAX_EPOCHS];
	struct journal_report r;
	struct journal_dev dev = {file_read, file_write, NULL, BLOCK, 0};
	uint64_t acked, guest = 1, base = JOURNAL_DEFAULT_BASE, ring = JOURNAL_DEFAULT_RING;
	unsigned nepochs = 0;
	struct stat st;
	FILE *f;
	int rc;

	log_set_sink(log_sink_stderr("journalcheck"));
	if (argc < 4 || argc > 7 || parse_u64(argv[2], &acked) ||
	    journal_epochs_parse(argv[3], epochs, JOURNAL_MAX_EPOCHS, &nepochs) ||
	    (argc > 4 && parse_u64(argv[4], &guest)) || (argc > 5 && parse_u64(argv[5], &base)) ||
	    (argc > 6 && parse_u64(argv[6], &ring))) {
		fprintf(stderr, "usage: journalcheck FILE ACKED KEY:FROM[,KEY:FROM...] "
		                "[GUEST [BASE [RING]]]\n");
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (!f || fstat(fileno(f), &st)) {
		fprintf(stderr, "journalcheck: cannot open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	dev.ctx = f;
	dev.nblocks = (uint64_t)st.st_size / BLOCK;
	rc = journal_check(&dev, guest, base, ring, acked, epochs, nepochs, &r);
	printf("journal-check: guest %" PRIu64 " window %" PRIu64 "-%" PRIu64 " records %" PRIu64
	       " unacked %" PRIu64 " lost %u duplicate %u foreign %u bad %u misplaced %u: %s\n",
	       guest, r.lo, r.hi, r.records, r.unacked, r.lost, r.duplicate, r.foreign,
	       r.bad_checksum + r.other_guest, r.misplaced, rc ? r.first : "consistent");
	fclose(f);
	return rc ? 1 : 0;
}
