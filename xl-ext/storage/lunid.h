/*
 * lunid.h - the identity of a LUN, as the source and the destination of a migration each
 * read it: the logical-unit designators of VPD page 0x83 and the capacity.
 *
 * Pure (no I/O, no libiscsi): iscsi.c fills a struct lunid; the migration handshake carries it
 * as JSON (lunid_to_json / lunid_from_json) and the destination compares it with its own
 * (lunid_compare). Target-port designators are kept apart and never compared: they name the
 * path (portal, target port group), which may differ between hosts for the same disk.
 */
#ifndef XLEXT_STORAGE_LUNID_H
#define XLEXT_STORAGE_LUNID_H

#include <stddef.h>
#include <stdint.h>

#define LUNID_MAX_DESIG 16

struct lunid_desig {
	uint8_t association; /* 0 logical unit, 1 target port, 2 target device */
	uint8_t type;        /* 1 T10 vendor id, 2 EUI-64, 3 NAA, 8 SCSI name string... */
	uint8_t code_set;    /* 1 binary, 2 ASCII, 3 UTF-8 */
	uint8_t len;
	uint8_t data[255];
};

struct lunid {
	unsigned ndesig; /* logical-unit designators, sorted by lunid_normalise */
	struct lunid_desig desig[LUNID_MAX_DESIG];
	unsigned nport; /* target-port designators: path dependent, not compared */
	struct lunid_desig port[LUNID_MAX_DESIG];
	uint64_t nblocks;
	uint32_t block_size;
};

/* Sort the designators so that two reads of one LUN compare equal whatever their order. */
void lunid_normalise(struct lunid *id);

/*
 * Compare field by field: number of logical-unit designators, each designator (type, code
 * set, value), block size, block count. 0 if equal, else ERR_MISMATCH and why describes the
 * first difference.
 */
int lunid_compare(const struct lunid *a, const struct lunid *b, char *why, size_t whylen);

/*
 * As a JSON object: {"block_size","blocks","size_bytes","designators":[{"association","type",
 * "code_set","value","hex"}],"port_designators":[...]} ("value" readable, "hex" exact).
 * *json_r is malloc'ed, the caller frees it.
 */
int lunid_to_json(const struct lunid *id, char **json_r);

/* Parse what lunid_to_json produced (normalised). ERR_INVAL (logged) on anything else. */
int lunid_from_json(const char *json, struct lunid *id_r);

#endif
