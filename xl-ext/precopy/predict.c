/*
 * predict.c - the pre-copy prediction model (predict.h): pure, no I/O, no clock.
 */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common/error.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/precopy/predict.h"

/*
 * What a switch-over costs besides its pages on the sim backend: suspend, the ready and GO
 * messages, the renames and the destination's start, about 1 + 1 + 0.6 + 1 ms in make bench's
 * downtime_phases_ms.
 */
#define PC_PREDICT_SWITCH_US 4000.0
/*
 * How old the peek a skip decision uses is, on average: one every 20 ms at most (precopy.c's
 * PC_PEEK_MIN_US), the first 20 ms into the round.
 */
#define PC_PREDICT_PEEK_LAG_S 0.015
/* steps of a round's integration */
#define PC_PREDICT_STEPS 256

/* Distinct pages of a working set of w pages that d random writes a second dirty in t s. */
static double dirtied(double d, double w, double t)
{
	return w > 0 ? w * -expm1(-d * t / w) : 0;
}

/*
 * A live round at pps pages a second: cold pages outside the working set first, none left out,
 * then hot pages of it, each left out when written again before its turn. The pages sent and
 * the round's duration.
 */
static void round_with_skip(const struct pc_workload *w, double d, double cold, double hot,
                            double pps, double *sent_r, double *t_r)
{
	double t = cold / pps, sent = cold, wws = (double)w->wws_pages,
	       step = hot / PC_PREDICT_STEPS;

	for (unsigned k = 0; k < PC_PREDICT_STEPS; k++) {
		double te = t - PC_PREDICT_PEEK_LAG_S;
		double skip = te > 0 && wws > 0 && d > 0 ? step * -expm1(-d * te / wws) : 0;

		sent += step - skip;
		t += (step - skip) / pps;
	}
	*sent_r = sent;
	*t_r = t;
}

int pc_fit_workload(const uint64_t *dirtied_w, unsigned windows, double window_s,
                    uint64_t union_pages, uint64_t nr_pages, struct pc_workload *w)
{
	double n = 0, ratio, lo = 1e-9, hi = 60, x;

	if (!windows || window_s <= 0 || !nr_pages)
		return ERR_INVAL;
	for (unsigned i = 0; i < windows; i++)
		n += (double)dirtied_w[i];
	n /= windows;
	w->nr_pages = nr_pages;
	if (n <= 0 || union_pages == 0) { /* nothing dirtied */
		w->dirty_pps = 0;
		w->wws_pages = 0;
		return 0;
	}
	/* U/n = (1 - e^-kx) / (1 - e^-x) falls from k (x -> 0) to 1 (x -> inf), x = D tau / W */
	ratio = (double)union_pages / n;
	if (windows == 1 || ratio >= windows * 0.999) {
		w->dirty_pps = n / window_s; /* no page written twice: as large as memory */
		w->wws_pages = nr_pages;
		return 0;
	}
	if (ratio <= 1.0) {
		w->wws_pages = union_pages; /* the same pages each window, written often */
		w->dirty_pps = (double)union_pages * hi / window_s;
		return 0;
	}
	for (int i = 0; i < 200; i++) {
		x = (lo + hi) / 2;
		if (-expm1(-(double)windows * x) / -expm1(-x) > ratio)
			lo = x;
		else
			hi = x;
	}
	x = (lo + hi) / 2;
	w->wws_pages = (uint64_t)(n / -expm1(-x) + 0.5);
	if (w->wws_pages > nr_pages)
		w->wws_pages = nr_pages;
	w->dirty_pps = x * (double)w->wws_pages / window_s;
	return 0;
}

/*
 * The rounds of pre-copy; with postcopy_rest (hybrid), what the policy would leave to
 * stop-and-copy, to throttling or to an abort is post-copied instead, after a switch-over of
 * fixed cost.
 */
static void play(const struct pc_params *p, const struct pc_workload *w, double link_Bps,
                 bool postcopy_rest, struct pc_prediction *out)
{
	struct pc_params pp = *p;
	struct pc_state st;
	double pw = 4096 + 8, pps, d = w->dirty_pps, send = (double)w->data_pages, t_total = 0,
	       bytes = 0;

	memset(out, 0, sizeof(*out));
	pp.nr_pages = w->nr_pages;
	pp.page_wire_bytes = (uint32_t)pw;
	if (postcopy_rest)
		pp.on_stall = PC_STALL_ABORT;
	pc_init(&st, &pp);
	pps = link_Bps / pw;
	out->decision = PC_ABORT;
	out->reason = "the link sends nothing";
	if (pps <= 0)
		return;
	for (unsigned round = 0; round < MIG_MAX_ROUNDS; round++) {
		double sent, t, left;

		double hot =
		    round == 0 && (double)w->wws_pages < send ? (double)w->wws_pages : send;

		if (w->sends_all) {
			sent = send;
			t = send / pps;
		} else {
			round_with_skip(w, d, send - hot, hot, pps, &sent, &t);
		}
		left = dirtied(d, (double)w->wws_pages, t);
		struct pc_round r = {
		    .round = round,
		    .pages_sent = (uint64_t)sent,
		    .bytes_sent = (uint64_t)(sent * pw),
		    .duration_us = (uint64_t)(t * 1e6),
		    .dirty_pages = (uint64_t)(left + 0.5),
		    .bandwidth_Bps = link_Bps,
		    .dirty_rate_pps = t > 0 ? left / t : 0,
		};
		struct pc_verdict v;

		bytes += sent * pw;
		t_total += t;
		r.total_bytes = (uint64_t)bytes;
		v = pc_decide(&st, &r);
		out->rounds = round + 1;
		out->decision = v.decision;
		out->reason = v.reason;
		/* hybrid switches too once a round no longer halves the dirty set, or the next
		 * would not (its duration at this round's rate: precopy.c) */
		if (postcopy_rest && (v.decision != PC_CONTINUE || v.throttle_pct ||
		                      (round >= 1 && left * 2 >= send) ||
		                      dirtied(d, (double)w->wws_pages, left / pps) * 2 >= left)) {
			out->decision = PC_STOP_AND_COPY;
			out->reason = "post-copy of the rest";
			out->final_pages = r.dirty_pages; /* after the switch-over */
			out->downtime_ms = PC_PREDICT_SWITCH_US / 1000.0;
			bytes += (double)r.dirty_pages * pw;
			t_total += (double)r.dirty_pages / pps + PC_PREDICT_SWITCH_US / 1e6;
			break;
		}
		if (v.throttle_pct > out->max_throttle)
			out->max_throttle = v.throttle_pct;
		if (v.decision == PC_ABORT)
			break;
		if (v.decision == PC_STOP_AND_COPY) {
			out->final_pages = r.dirty_pages;
			out->downtime_ms =
			    ((double)r.dirty_pages * pw / link_Bps * 1e6 + PC_PREDICT_SWITCH_US) /
			    1000;
			bytes += (double)r.dirty_pages * pw;
			t_total += out->downtime_ms / 1000;
			break;
		}
		d = w->dirty_pps * (1.0 - v.throttle_pct / 100.0);
		send = left;
	}
	out->total_s = t_total;
	out->bytes = (uint64_t)bytes;
}

void pc_predict(const struct pc_params *p, const struct pc_workload *w, double link_Bps,
                struct pc_prediction *out)
{
	play(p, w, link_Bps, false, out);
}

void pc_predict_hybrid(const struct pc_params *p, const struct pc_workload *w, double link_Bps,
                       struct pc_prediction *out)
{
	play(p, w, link_Bps, true, out);
}

void pc_predict_postcopy(const struct pc_workload *w, double link_Bps, struct pc_prediction *out)
{
	double pw = 4096 + 8;

	memset(out, 0, sizeof(*out));
	out->decision = PC_ABORT;
	out->reason = "the link sends nothing";
	if (link_Bps <= 0)
		return;
	out->decision = PC_STOP_AND_COPY;
	out->reason = "post-copy";
	out->final_pages = w->data_pages;
	out->downtime_ms = PC_PREDICT_SWITCH_US / 1000.0;
	out->bytes = (uint64_t)((double)w->data_pages * pw);
	out->total_s = (double)w->data_pages * pw / link_Bps + PC_PREDICT_SWITCH_US / 1e6;
}
