/*
 * predict.h - what a pre-copy migration will take, before it starts: its rounds, downtime,
 * total time and bytes, from the guest's measured dirtying and the link's rate.
 *
 * Pure logic. The guest is modelled as writing D pages a second at random within a writable
 * working set of W pages: in t seconds it dirties W (1 - exp(-D t / W)) distinct pages. Two
 * figures of a short sample give D and W (pc_fit_workload): the distinct pages dirtied in each
 * window of tau seconds, n = W (1 - exp(-D tau / W)), and in all k windows together,
 * U = W (1 - exp(-k D tau / W)). The rounds are then played through the project's own policy
 * (policy.h): round 0 sends the pages that hold data, each later round what the one before left
 * dirty, until the policy stops, aborts or throttles (a throttle of p % cuts D by p %), and
 * stop-and-copy sends the rest with the guest paused, plus the switch-over's fixed cost.
 *
 * Each live round leaves out the due pages the guest wrote again before their turn (precopy.c's
 * skip, from a peek about PC_PREDICT_PEEK_LAG_S old): a page of the working set reached t
 * seconds into a round was written again with probability 1 - exp(-D (t - lag) / W). Round 0
 * sends the memory outside the working set first (it puts off the parts a peek saw written),
 * then the working set; later rounds send only pages of the working set.
 */
#ifndef XLEXT_PREDICT_H
#define XLEXT_PREDICT_H

#include <stdbool.h>
#include <stdint.h>

#include "xl-ext/precopy/policy.h"

struct pc_workload {
	uint64_t nr_pages;   /* the guest's memory */
	uint64_t data_pages; /* pages holding data: what round 0 sends */
	double dirty_pps;    /* D: page writes a second, at random within the working set */
	uint64_t wws_pages;  /* W: the writable working set */
	bool sends_all;      /* the sender sends every page due (libxc's), no skip */
};

/*
 * D and W from a sample: dirtied[i] distinct pages in window i (windows of window_s seconds),
 * union_pages in all of them. A guest whose windows do not overlap at all has a working set
 * as large as its memory (nr_pages). Returns 0, or ERR_INVAL for an empty sample.
 */
int pc_fit_workload(const uint64_t *dirtied, unsigned windows, double window_s,
                    uint64_t union_pages, uint64_t nr_pages, struct pc_workload *w);

struct pc_prediction {
	unsigned rounds; /* live rounds */
	enum pc_decision decision;
	const char *reason;
	unsigned max_throttle;
	uint64_t final_pages;
	double downtime_ms;
	double total_s;
	uint64_t bytes;
};

/*
 * Play the migration of w over a link of link_Bps through the policy p (its nr_pages and
 * page_wire_bytes are set from w and the stream's page cost).
 */
void pc_predict(const struct pc_params *p, const struct pc_workload *w, double link_Bps,
                struct pc_prediction *out);

/*
 * migrate --mode hybrid: the same rounds until the policy would switch over, throttle or give
 * up, or a round no longer halves the dirty set, then the pages still dirty after a switch-over
 * of fixed cost (post-copy): rounds, the
 * switch-over's downtime, the pages post-copied (final_pages), total time and bytes.
 */
void pc_predict_hybrid(const struct pc_params *p, const struct pc_workload *w, double link_Bps,
                       struct pc_prediction *out);

/*
 * migrate --mode postcopy: a switch-over of fixed cost, then every page that holds data, once
 * (pulled or pushed, each at the link's rate). The faults' waits slow the guest, not the
 * migration.
 */
void pc_predict_postcopy(const struct pc_workload *w, double link_Bps, struct pc_prediction *out);

#endif
