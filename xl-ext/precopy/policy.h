/*
 * policy.h - pre-copy policy: after each live round, continue, stop-and-copy, or abort.
 *
 * Pure logic: fed the statistics of the round that just finished, it returns a decision and
 * a reason, and (with --on-stall throttle) how much to slow the guest's vCPUs. Two policies:
 *   xen       Xen's stock libxenguest policy: stop after 5 iterations or when fewer than 50
 *             pages are dirty.
 *   adaptive  the project's: stop when the remaining dirty set can be sent within the
 *             downtime target at the measured bandwidth (after up to two more rounds while
 *             each cuts that set at least fourfold and the downtime by 1 ms or more); cap the
 *             bytes sent at 3x memory; when
 *             the dirty set stops shrinking, abort, force the switch-over, or throttle the
 *             guest (auto-converge) as --on-stall says.
 */
#ifndef XLEXT_POLICY_H
#define XLEXT_POLICY_H

#include <stdint.h>

enum pc_policy_kind {
	PC_POLICY_ADAPTIVE = 0,
	PC_POLICY_XEN = 1,
};

enum pc_on_stall {
	PC_STALL_THROTTLE = 0,
	PC_STALL_ABORT = 1,
	PC_STALL_FORCE = 2,
};

enum pc_decision {
	PC_CONTINUE = 0,
	PC_STOP_AND_COPY = 1,
	PC_ABORT = 2,
};

#define PC_XEN_MAX_ITERS       5
#define PC_XEN_DIRTY_TARGET    50
#define PC_DEFAULT_MAX_ITERS   30
#define PC_DEFAULT_DOWNTIME_MS 20
#define PC_DEFAULT_BYTE_FACTOR 3
/*
 * What a switch-over costs besides the last pages, when the caller has no measurement: pausing
 * the vCPUs and saving their state, the handshake's round trips, the renames, and starting the
 * guest on the destination (2-3, 1-2 and 3-4 ms on the sim backend, see downtime_phases_ms).
 */
#define PC_DEFAULT_FIXED_DOWNTIME_US 8000
#define PC_THROTTLE_MIN              20
#define PC_THROTTLE_MAX              99
/* throttle at once when the dirty rate reaches this share of the link (--on-stall throttle) */
#define PC_THROTTLE_EARLY 0.8

struct pc_params {
	enum pc_policy_kind kind;
	unsigned max_iters;       /* 0: the policy's default */
	uint32_t downtime_ms;     /* 0: PC_DEFAULT_DOWNTIME_MS */
	uint64_t max_total_bytes; /* 0: PC_DEFAULT_BYTE_FACTOR x memory */
	enum pc_on_stall on_stall;
	uint64_t nr_pages;        /* guest memory, in pages */
	uint32_t page_wire_bytes; /* bytes one dirty page costs on the wire (4096 + overhead) */
	/* measured cost of the switch-over besides pages (state, rtt) */
	uint32_t fixed_downtime_us;
};

/* What happened in the live round that just ended. */
struct pc_round {
	unsigned round; /* 0-based: round 0 sends every non-zero page */
	uint64_t pages_sent;
	uint64_t bytes_sent;   /* on the wire, this round */
	uint64_t duration_us;  /* this round */
	uint64_t dirty_pages;  /* dirty now: what the next round (or stop-and-copy) must send */
	uint64_t total_bytes;  /* since the migration started */
	double bandwidth_Bps;  /* measured bytes per second (this round, or the cap) */
	double dirty_rate_pps; /* pages dirtied per second during this round */
};

struct pc_verdict {
	enum pc_decision decision;
	const char *reason;       /* static text, for reports and logs */
	unsigned throttle_pct;    /* vCPU throttle to apply for the next round (0: none) */
	uint64_t est_downtime_us; /* predicted cost of stopping now */
};

struct pc_state {
	struct pc_params p;
	uint64_t prev_dirty;
	unsigned no_progress; /* consecutive rounds whose dirty set did not shrink enough */
	unsigned throttle_pct;
	unsigned polished; /* rounds run after the dirty set already fitted the target */
};

/* Fill defaults and reset the state. */
void pc_init(struct pc_state *st, const struct pc_params *params);

/*
 * What a dirty page costs on the wire from now on (migrate --compress: a page sent again as a
 * delta costs a few dozen bytes, not a page): the estimates of the downtime, of the next round
 * and of the link's rate in pages use it; the byte cap stays as pc_init set it.
 */
void pc_set_page_cost(struct pc_state *st, uint32_t wire_bytes);

/* Decide after a round. */
struct pc_verdict pc_decide(struct pc_state *st, const struct pc_round *r);

const char *pc_policy_name(enum pc_policy_kind kind);
int pc_policy_parse(const char *s, enum pc_policy_kind *kind_r);
const char *pc_on_stall_name(enum pc_on_stall mode);
int pc_on_stall_parse(const char *s, enum pc_on_stall *mode_r);

/*
 * A rate as operators write it: "1Gbit", "800Mbit", "100MB" (bytes), "64MiB", optionally with
 * "/s" or "ps": bytes per second, 0 when it is not a rate.
 */
uint64_t pc_rate_parse(const char *s);
const char *pc_decision_name(enum pc_decision d);

#endif
