/*
 * disks.h - the disks of a domain about to migrate: gathered from the backend, classified
 * (storage/disk.h), refused when local and writable, reported in migrate --json.
 */
#ifndef XLEXT_MIGRATION_DISKS_H
#define XLEXT_MIGRATION_DISKS_H

#include <stdint.h>

#include <json-c/json.h>

#include "xl-ext/core/hv.h"
#include "xl-ext/storage/disk.h"

/* identity_verified of one disk */
enum mig_disk_verdict {
	MIG_DISK_UNCHECKED = -1, /* local, or the destination was not asked / did not answer */
	MIG_DISK_MISMATCH = 0,   /* the destination saw another LUN, or none */
	MIG_DISK_VERIFIED = 1,   /* the destination read the same LUN identity */
};

struct mig_disks {
	unsigned n;
	struct disk_info *info;         /* n classified disks */
	enum mig_disk_verdict *verdict; /* n verdicts, MIG_DISK_UNCHECKED until verified */
};

/*
 * The disks of domid, classified into *disks_r: those of config_file (the -C FILE to send,
 * whose disks the destination attaches) when not NULL, otherwise ops->disk_specs; a backend
 * without it yields no disks (logged at debug level). Returns 0, ERR_INVAL after
 * logging which spec of which domain is malformed, ERR_NOMEM or the backend's error.
 * Free with mig_disks_dispose.
 */
int mig_disks_collect(const struct hv_ops *ops, struct hv *hv, uint32_t domid, const char *name,
                      const char *config_file, struct mig_disks *disks_r);

/*
 * Refuse (ERR_NOTSUP, logged naming the domain and the disk) a local writable disk; with
 * allow_local, warn that it is not moved and return 0.
 */
int mig_disks_check(const char *name, const struct mig_disks *disks, int allow_local);

/* The "disks" array of the --json report: spec, vdev, kind, readonly; portal, iqn, lun and
 * identity_verified for iSCSI disks. */
json_object *mig_disks_json(const struct mig_disks *disks);

/*
 * Destination verification, carried by the pre-flight exchange (preflight_exchange.c).
 *
 * Sender: read each iSCSI disk's LUN identity on this host and return the request for the
 * destination's pre-flight, one JSON line {"luns":[{"spec","identity"}]} in *json_r (caller
 * frees), NULL when there is no iSCSI disk. An identity this host cannot read is an error
 * (logged naming the disk): the destination's view could not be compared with it.
 */
int mig_disks_identity_request(const struct mig_disks *disks, char **json_r);

/*
 * Destination: open each requested LUN by its spec, compare its identity with the sender's and
 * add "luns":[{"spec","verified":true|false|null,"why"}] to the answer object. null: this
 * build cannot read LUNs (no libiscsi). Returns 0, or ERR_PROTO for a malformed request.
 */
int mig_disks_verify_request(const char *request, json_object *answer);

/*
 * Sender: take the destination's verdicts from its pre-flight answer (one JSON line) into
 * disks->verdict. Returns ERR_MISMATCH, logged naming the domain, the destination and the
 * disk, when the destination saw another LUN or none; a disk it did not verify is a warning.
 */
int mig_disks_apply_answer(const char *name, const char *host, struct mig_disks *disks,
                           const char *answer);

void mig_disks_dispose(struct mig_disks *disks);

#endif
