/*
 * preflight.h - the checks run before a migration suspends anything (pure core).
 *
 * The sender describes the domain and its own host (pf_source); the destination describes
 * itself (pf_dest), over the migration rune with "xl-ext migrate-receive --preflight", which
 * prints one JSON object and exits. Stock xl has no such mode: then the checks that need the
 * destination's facts are reported as skipped, never failed, and the xl handshake's banner
 * remains the reachability check. pf_check takes both and decides; it does no I/O.
 */
#ifndef XLEXT_PREFLIGHT_H
#define XLEXT_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xl-ext/core/hv.h"

#define PF_JSON_MAGIC   "xl-ext-preflight"
#define PF_JSON_VERSION 1

struct pf_source {
	const char *name; /* the domain's name */
	enum hv_domain_type type;
	uint64_t memory_kib;           /* the domain's memory */
	char hypervisor[16];           /* "xen", "sim" */
	char version[32];              /* the source's hypervisor version "4.17" */
	struct hv_featureset features; /* what the guest sees (default policy of its type) */
	const char *(*feature_name)(unsigned bit); /* names for messages, may be NULL */
};

struct pf_dest {
	bool answered; /* false: stock xl (or older xl-ext) at the other end */
	char hypervisor[16];
	char version[32];
	uint64_t free_kib;
	char **names; /* domains present there */
	size_t n_names;
	struct hv_featureset pv_max;  /* the most a PV guest may have there */
	struct hv_featureset hvm_max; /* the same for HVM and PVH */
};

enum pf_check_id {
	PF_CHECK_HYPERVISOR = 0, /* same kind of hypervisor */
	PF_CHECK_VERSION,        /* same or newer Xen on the destination */
	PF_CHECK_MEMORY,         /* enough free memory */
	PF_CHECK_NAME,           /* no domain of the same name there */
	PF_CHECK_CPU,            /* the destination CPU can run the guest */
	PF_NR_CHECKS,
};

enum pf_status {
	PF_PASS = 0,
	PF_SKIPPED, /* the facts were not available: a warning */
	PF_FAIL,
};

struct pf_result {
	enum pf_status status[PF_NR_CHECKS];
	char message[PF_NR_CHECKS][384]; /* why it failed or was skipped ("" when passed) */
};

/* Memory the destination must have free beyond the domain's own (libxl's overheads). */
uint64_t pf_required_kib(uint64_t memory_kib);

/* Short name of a check ("memory"). */
const char *pf_check_name(enum pf_check_id id);

/*
 * Run every check. Returns 0 when none failed (some may be skipped), else ERR_NOSPACE for
 * memory, ERR_EXISTS for a name clash, ERR_NOTSUP for the CPU, hypervisor or version: the
 * code of the first failed check. res says which, and why.
 */
int pf_check(const struct pf_source *src, const struct pf_dest *dst, struct pf_result *res);

/* Encode a destination's facts as one line of JSON; caller frees. */
int pf_dest_to_json(const struct pf_dest *dst, char **json_r);

/*
 * Decode what a destination printed. ERR_PROTO when it is not our JSON (stock xl's usage
 * text, for instance): the caller then treats the destination as not answering.
 * On success the caller frees with pf_dest_dispose.
 */
int pf_dest_from_json(const char *text, struct pf_dest *dst);
void pf_dest_dispose(struct pf_dest *dst);

/* Compare "4.17" with "4.16.2": <0, 0, >0 (on major then minor); ERR_INVAL-free, unknown = 0. */
int pf_version_cmp(const char *a, const char *b);

#endif
