/*
 * fuzz_storage.c - the storage layer's parsers of foreign input: a disk spec (from a
 * configuration or a peer's request), a journal record read from a shared LUN, a LUN identity
 * as JSON from a peer, and journal-check's epoch list. The first byte chooses which.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/journal.h"
#include "xl-ext/storage/lunid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct journal_epoch epochs[16];
	struct journal_record rec;
	uint8_t block[JOURNAL_RECORD_SIZE];
	struct disk_info *d;
	struct lunid *id;
	char *s, url[DISK_URL_MAX];
	unsigned n;

	fuzz_quiet();
	if (size < 1)
		return 0;
	s = fuzz_string(data + 1, size - 1);
	if (!s)
		return 0;
	switch (data[0] % 4) {
	case 0:
		d = calloc(1, sizeof(*d));
		if (d && disk_classify(s, d) == 0 && d->kind == DISK_ISCSI)
			disk_iscsi_url(d, url, sizeof(url));
		free(d);
		break;
	case 1:
		memset(block, 0, sizeof(block));
		memcpy(block, data + 1, size - 1 < sizeof(block) ? size - 1 : sizeof(block));
		journal_decode(block, &rec);
		break;
	case 2:
		id = calloc(1, sizeof(*id));
		if (id && lunid_from_json(s, id) == 0)
			lunid_normalise(id);
		free(id);
		break;
	default:
		journal_epochs_parse(s, epochs, 16, &n);
		break;
	}
	free(s);
	return 0;
}
