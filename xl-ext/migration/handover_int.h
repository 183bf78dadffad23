/*
 * handover_int.h - what the sender and receiver halves of the reservation hand-over share
 * (handover.h): its state structures, limits and small JSON and LUN helpers. Included only by
 * handover*.c.
 */
#ifndef XLEXT_MIGRATION_HANDOVER_INT_H
#define XLEXT_MIGRATION_HANDOVER_INT_H

#include <stdint.h>

#include <json-c/json.h>

#include "xl-ext/migration/handover.h"
#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/storage/owner.h"

#define HO_TIMEOUT_S       5
#define HO_MAX_LUNS        16
#define HO_LOGIN_TIMEOUT_S 20 /* a kernel-initiator login and its device (iscsiadm.h) */
/* source_view: the LUN is skipped because this xl-ext has no libiscsi (not an error code) */
#define HO_NO_LIBISCSI 1

struct ho_sender {
	char domain[64];
	char dest[256];
	char host[64];
	uint64_t key;
	int kernel; /* LUNs through the kernel initiator's block devices (xen backend) */
	struct mig_disks *disks;
	char *request;
	json_object *answer; /* the destination's answer, NULL until it came */
	json_object *final;  /* its last message */
};

struct ho_lun {
	char url[600];
	char spec[512];
	int readonly;
	enum own_plan plan;
	struct own_machine m;
	int registered;
	char why[1400];
	struct disk_info disk;       /* the spec, classified here (kind DISK_LOCAL if it did not) */
	char target[LUN_TARGET_MAX]; /* what was opened: the URL or the kernel device */
	struct lun *lun;
	struct lun *klun; /* block-iscsi on xen: the kernel's session, registered after restore */
	int made_session; /* by-path on xen: prepare logged in (no session before): undone by abort
	                   */
};

struct ho_receiver {
	int kernel; /* LUNs through the kernel initiator's block devices (xen backend) */
	const struct iscsiadm_ops *adm; /* how the kernel initiator logs in and out */
	char host[64];
	uint64_t key;
	uint64_t src_key;
	char src_host[64];
	unsigned n;
	struct ho_lun luns[HO_MAX_LUNS];
};

/* "0x%016" PRIx64 of key in buf. */
const char *ho_key_str(uint64_t key, char buf[20]);
/* The key in the string field of o, 0 when there is none. */
uint64_t ho_key_parse(json_object *o, const char *field);
/* The string field of o, or NULL. */
const char *ho_jstr(json_object *o, const char *field);
/* The registered keys of v as a JSON array of strings. */
json_object *ho_keys_json(const struct own_view *v);
/* Open target (an iscsi:// URL or a kernel block device) as host's initiator. */
int ho_open_lun(const char *target, const char *host, struct lun **lun_r);
/* REGISTER (sa_key = key) or UNREGISTER (sa_key 0) key on lun, for a WERO reservation. */
int ho_pr_register(struct lun *lun, enum own_op op, uint64_t key);

/* The ends of mig_ext_ops (handover_send.c, handover_recv.c). */
int ho_sender_ready(void *ctx, const char *answer);
void ho_sender_final(void *ctx, const char *final);
int ho_receiver_prepare(void *ctx, const char *request, char **answer_r);
int ho_receiver_received(void *ctx);
int ho_receiver_go(void *ctx, char **final_r);
void ho_receiver_abort(void *ctx);

#endif
