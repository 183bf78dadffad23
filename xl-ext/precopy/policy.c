/*
 * policy.c - the pre-copy policies (pure: no I/O, no clock).
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "xl-ext/precopy/policy.h"

/* A round "made progress" when the dirty set shrank below this fraction of the last one. */
#define PC_PROGRESS_RATIO 0.90
/* Stalled after this many rounds in a row without progress. */
#define PC_STALL_ROUNDS 2
/* Throttle aims at a dirty rate of this fraction of the link, so rounds halve. */
#define PC_THROTTLE_TARGET 0.5
/*
 * Once the dirty set fits the target, at most this many more live rounds, each only when it
 * leaves at most 1/PC_POLISH_SHRINK of the set and takes at least PC_POLISH_MIN_SAVE_US off
 * the downtime.
 */
#define PC_POLISH_ROUNDS      2
#define PC_POLISH_SHRINK      4.0
#define PC_POLISH_MIN_SAVE_US 1000.0

void pc_init(struct pc_state *st, const struct pc_params *params)
{
	memset(st, 0, sizeof(*st));
	st->p = *params;
	if (!st->p.max_iters)
		st->p.max_iters =
		    st->p.kind == PC_POLICY_XEN ? PC_XEN_MAX_ITERS : PC_DEFAULT_MAX_ITERS;
	if (!st->p.downtime_ms)
		st->p.downtime_ms = PC_DEFAULT_DOWNTIME_MS;
	if (!st->p.page_wire_bytes)
		st->p.page_wire_bytes = 4096 + 8;
	if (!st->p.fixed_downtime_us)
		st->p.fixed_downtime_us = PC_DEFAULT_FIXED_DOWNTIME_US;
	if (!st->p.max_total_bytes)
		st->p.max_total_bytes =
		    PC_DEFAULT_BYTE_FACTOR * st->p.nr_pages * (uint64_t)st->p.page_wire_bytes;
	st->prev_dirty = UINT64_MAX;
}

static uint64_t est_downtime_us(const struct pc_state *st, const struct pc_round *r)
{
	double bytes = (double)r->dirty_pages * st->p.page_wire_bytes;

	if (r->bandwidth_Bps <= 0)
		return UINT64_MAX / 2;
	return (uint64_t)(bytes / r->bandwidth_Bps * 1e6) + st->p.fixed_downtime_us;
}

static struct pc_verdict verdict(enum pc_decision d, const char *reason, unsigned throttle,
                                 uint64_t est)
{
	struct pc_verdict v = {
	    .decision = d, .reason = reason, .throttle_pct = throttle, .est_downtime_us = est};
	return v;
}

static struct pc_verdict decide_xen(struct pc_state *st, const struct pc_round *r)
{
	uint64_t est = est_downtime_us(st, r);

	if (r->dirty_pages < PC_XEN_DIRTY_TARGET)
		return verdict(PC_STOP_AND_COPY, "fewer than 50 dirty pages", 0, est);
	if (r->round + 1 >= st->p.max_iters)
		return verdict(PC_STOP_AND_COPY, "iteration limit reached", 0, est);
	return verdict(PC_CONTINUE, "pre-copy continues", 0, est);
}

/* Throttle that brings the dirty rate down to PC_THROTTLE_TARGET of the link. */
static unsigned throttle_needed(const struct pc_state *st, const struct pc_round *r)
{
	double link_pps = r->bandwidth_Bps / st->p.page_wire_bytes;
	/* the rate the guest would have without the current throttle */
	double raw = r->dirty_rate_pps / (1.0 - st->throttle_pct / 100.0);
	double pct;

	if (raw <= 0)
		return st->throttle_pct;
	pct = 100.0 * (1.0 - PC_THROTTLE_TARGET * link_pps / raw);
	/*
	 * Always tighten when stalled, at least halving what is left of the guest's speed: a hot
	 * set dirtied entirely within a round hides the true write rate (the measured one is
	 * capped by the set's size), so the computed throttle alone comes too late.
	 */
	if (pct < st->throttle_pct + (100.0 - st->throttle_pct) / 2)
		pct = st->throttle_pct + (100.0 - st->throttle_pct) / 2;
	if (pct < PC_THROTTLE_MIN)
		pct = PC_THROTTLE_MIN;
	if (pct > PC_THROTTLE_MAX)
		pct = PC_THROTTLE_MAX;
	return (unsigned)pct;
}

static struct pc_verdict on_stall(struct pc_state *st, const struct pc_round *r,
                                  const char *why_abort, const char *why_force, bool hard_limit)
{
	uint64_t est = est_downtime_us(st, r);

	switch (st->p.on_stall) {
	case PC_STALL_ABORT:
		return verdict(PC_ABORT, why_abort, st->throttle_pct, est);
	case PC_STALL_FORCE:
		return verdict(PC_STOP_AND_COPY, why_force, st->throttle_pct, est);
	case PC_STALL_THROTTLE:
		/* Byte cap or iteration limit: no more rounds are allowed, switch over now. */
		if (hard_limit || st->throttle_pct >= PC_THROTTLE_MAX)
			return verdict(PC_STOP_AND_COPY, why_force, st->throttle_pct, est);
		st->throttle_pct = throttle_needed(st, r);
		st->no_progress = 0;
		return verdict(PC_CONTINUE, "not converging: guest throttled", st->throttle_pct,
		               est);
	}
	return verdict(PC_ABORT, "internal error: unknown stall mode", 0, est);
}

/* Wire bytes of the stop-and-copy that would follow one more live round. */
static uint64_t final_after_next(const struct pc_state *st, const struct pc_round *r)
{
	double next_s, pages;

	if (r->bandwidth_Bps <= 0)
		return r->dirty_pages * (uint64_t)st->p.page_wire_bytes;
	next_s = (double)r->dirty_pages * st->p.page_wire_bytes / r->bandwidth_Bps;
	pages = r->dirty_rate_pps * next_s;
	if (pages > (double)r->dirty_pages)
		pages = (double)r->dirty_pages; /* at most what is dirty now: the same set again */
	return (uint64_t)pages * (uint64_t)st->p.page_wire_bytes;
}

void pc_set_page_cost(struct pc_state *st, uint32_t wire_bytes)
{
	if (wire_bytes)
		st->p.page_wire_bytes = wire_bytes;
}

/*
 * The dirty set fits the downtime target; whether one more live round still pays: it takes
 * about what the set's stop-and-copy would, while the guest runs, and leaves what the guest
 * dirties meanwhile. Cheap rounds (pages sent again as deltas cost a few bytes) shrink a set
 * that already fits to almost nothing.
 */
static bool polish_pays(const struct pc_state *st, const struct pc_round *r)
{
	double page_s, round_s, next;

	if (st->polished >= PC_POLISH_ROUNDS || r->bandwidth_Bps <= 0 || !r->dirty_pages)
		return false;
	page_s = st->p.page_wire_bytes / r->bandwidth_Bps;
	round_s = (double)r->dirty_pages * page_s;
	next = r->dirty_rate_pps * round_s;
	if (next > (double)r->dirty_pages)
		next = (double)r->dirty_pages;
	return next * PC_POLISH_SHRINK <= (double)r->dirty_pages &&
	       ((double)r->dirty_pages - next) * page_s * 1e6 >= PC_POLISH_MIN_SAVE_US;
}

static struct pc_verdict decide_adaptive(struct pc_state *st, const struct pc_round *r)
{
	uint64_t est = est_downtime_us(st, r);
	uint64_t next_round_bytes = r->dirty_pages * (uint64_t)st->p.page_wire_bytes;

	if (r->dirty_pages == 0 || est <= (uint64_t)st->p.downtime_ms * 1000) {
		if (r->round + 1 < st->p.max_iters && polish_pays(st, r)) {
			st->polished++;
			return verdict(PC_CONTINUE,
			               "dirty set fits; one more round shrinks the downtime",
			               st->throttle_pct, est);
		}
		return verdict(PC_STOP_AND_COPY, "dirty set fits the downtime target",
		               st->throttle_pct, est);
	}
	/*
	 * Another live round, and the stop-and-copy after it (what the guest dirties meanwhile at
	 * its present rate), would push the total past the cap: switch over now, so the cap holds
	 * for the whole migration.
	 */
	if (r->total_bytes + next_round_bytes + final_after_next(st, r) > st->p.max_total_bytes)
		return on_stall(st, r, "byte limit reached (not converging)",
		                "byte limit reached: switch-over forced", true);
	if (r->round + 1 >= st->p.max_iters)
		return on_stall(st, r, "iteration limit reached (not converging)",
		                "iteration limit reached: switch-over forced", true);
	if (r->round >= 1 && st->prev_dirty != UINT64_MAX &&
	    (double)r->dirty_pages >= PC_PROGRESS_RATIO * (double)st->prev_dirty)
		st->no_progress++;
	else
		st->no_progress = 0;
	st->prev_dirty = r->dirty_pages;
	/*
	 * With throttling allowed, start as soon as the guest dirties memory nearly as fast as the
	 * link carries it (as auto-converge does): waiting for stalled rounds costs a hot set per
	 * round against the byte cap.
	 */
	if (st->p.on_stall == PC_STALL_THROTTLE && r->round >= 1 && r->bandwidth_Bps > 0 &&
	    r->dirty_rate_pps * st->p.page_wire_bytes >= PC_THROTTLE_EARLY * r->bandwidth_Bps &&
	    st->throttle_pct < PC_THROTTLE_MAX)
		st->no_progress = PC_STALL_ROUNDS;
	if (st->no_progress >= PC_STALL_ROUNDS)
		return on_stall(st, r, "dirty set is not shrinking (not converging)",
		                "not converging: switch-over forced", false);
	return verdict(PC_CONTINUE, "pre-copy continues", st->throttle_pct, est);
}

struct pc_verdict pc_decide(struct pc_state *st, const struct pc_round *r)
{
	if (st->p.kind == PC_POLICY_XEN)
		return decide_xen(st, r);
	return decide_adaptive(st, r);
}

const char *pc_policy_name(enum pc_policy_kind kind)
{
	return kind == PC_POLICY_XEN ? "xen" : "adaptive";
}

int pc_policy_parse(const char *s, enum pc_policy_kind *kind_r)
{
	if (!strcmp(s, "xen"))
		*kind_r = PC_POLICY_XEN;
	else if (!strcmp(s, "adaptive") || !strcmp(s, "default"))
		*kind_r = PC_POLICY_ADAPTIVE;
	else
		return ERR_INVAL;
	return 0;
}

const char *pc_on_stall_name(enum pc_on_stall mode)
{
	switch (mode) {
	case PC_STALL_ABORT:
		return "abort";
	case PC_STALL_FORCE:
		return "force";
	case PC_STALL_THROTTLE:
		return "throttle";
	}
	return "?";
}

int pc_on_stall_parse(const char *s, enum pc_on_stall *mode_r)
{
	if (!strcmp(s, "abort"))
		*mode_r = PC_STALL_ABORT;
	else if (!strcmp(s, "force"))
		*mode_r = PC_STALL_FORCE;
	else if (!strcmp(s, "throttle"))
		*mode_r = PC_STALL_THROTTLE;
	else
		return ERR_INVAL;
	return 0;
}

const char *pc_decision_name(enum pc_decision d)
{
	switch (d) {
	case PC_CONTINUE:
		return "continue";
	case PC_STOP_AND_COPY:
		return "stop-and-copy";
	case PC_ABORT:
		return "abort";
	}
	return "?";
}

uint64_t pc_rate_parse(const char *s)
{
	static const struct {
		const char *unit;
		double factor;
	} units[] = {
	    {"bit", 1.0 / 8},  {"kbit", 1e3 / 8}, {"Kbit", 1e3 / 8},  {"Mbit", 1e6 / 8},
	    {"Gbit", 1e9 / 8}, {"B", 1},          {"KB", 1e3},        {"MB", 1e6},
	    {"GB", 1e9},       {"KiB", 1024.0},   {"MiB", 1048576.0}, {"GiB", 1073741824.0},
	};
	char *end;
	double v = strtod(s, &end);

	if (end == s || v <= 0)
		return 0;
	if (!strncmp(end, "/s", 2))
		end += 2;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t l = strlen(units[i].unit);

		if (!strncmp(end, units[i].unit, l) &&
		    (!end[l] || !strcmp(end + l, "/s") || !strcmp(end + l, "ps")))
			return (uint64_t)(v * units[i].factor);
	}
	return 0;
}
