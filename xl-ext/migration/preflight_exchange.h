/*
 * preflight_exchange.h - pre-flight checks and the dirty-rate estimate for "xl-ext migrate", and
 * the destination's side ("xl-ext migrate-receive --preflight").
 */
#ifndef XLEXT_MIGRATION_PREFLIGHT_EXCHANGE_H
#define XLEXT_MIGRATION_PREFLIGHT_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "xl-ext/core/hv.h"

struct mig_disks;

struct preflight_args {
	const struct hv_ops *ops;
	struct hv *hv;
	const struct hv_domain_info *info; /* the domain to migrate */
	const char *ssh;                   /* -s, "" for none */
	const char *host;
	bool dry_run;            /* print every verdict; probe stock xl's banner */
	struct mig_disks *disks; /* iSCSI LUN identities to verify (verdicts set), or NULL */
	bool *xlext_r;           /* set when the destination answered as xl-ext, or NULL */
};

/*
 * "xl-ext migrate-receive --preflight": print this host's facts (and the verdicts on the LUN
 * identities the sender wrote on stdin) as one line of JSON on stdout. Returns 0 or the
 * error (logged).
 */
int preflight_serve(const struct hv_ops *ops, struct hv *hv);
int preflight_run(const struct preflight_args *a);
int preflight_estimate(const struct hv_ops *ops, struct hv *hv, uint32_t domid, const char *name);

#endif
