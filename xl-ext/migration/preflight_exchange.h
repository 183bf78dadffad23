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
/* migrate --estimate: what the estimate needs and may refuse on. */
struct estimate_args {
	const struct mig_params
	    *params;              /* the policy, and the --bandwidth cap as the link's rate */
	uint32_t max_downtime_ms; /* refuse when the prediction is over (0: no limit) */
	double max_total_s;
	bool postcopy;         /* post-copy and hybrid are possible (backend and transport) */
	bool postcopy_backend; /* the backend has them: their predictions are printed */
	enum mig_mode *mode_r; /* the mode to check the limits on; auto: set to the one chosen */
};

/*
 * Sample the domain's dirtying and, where the backend samples its working set too
 * (hv_ops.sample_dirty), predict the migration (predict.h) and print it; a prediction over a
 * limit refuses the migration before anything moved (ERR_NOTCONV, logged).
 */
int preflight_estimate(const struct hv_ops *ops, struct hv *hv, uint32_t domid, const char *name,
                       const struct estimate_args *ea);

/*
 * The link's rate as a migration would find it: send bytes of data that does not compress
 * through the migration's own transport (ssh: "<ssh> host xl-ext migrate-receive --sink"; ssh
 * "" : "host --sink"), which writes them into new memory as a receiver writes guest memory,
 * counts them and answers; *Bps_r from the first byte to the answer. Logs and returns an error when
 * the destination does not answer as xl-ext.
 */
int preflight_burst(const char *ssh, const char *host, uint64_t bytes, double *Bps_r);
#define PF_BURST_BYTES (64ull << 20) /* the burst's default */

/* "migrate-receive --sink": take stdin to its end into new memory (the first GiB; the rest
 * counted only), then say how much on stdout. */
int preflight_sink(void);

#endif
