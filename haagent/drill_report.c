/*
 * drill_report.c - what a drill measured: per guest and phase, per node, overall.
 *
 * Every figure comes from the samples the client took (drill_load.c) and the agents' CPU
 * samples and events (drill.c). The raw logs written beside the report (probes.csv,
 * http.csv, cpu.csv) hold every sample with the mode and phase it was counted in, so each
 * number of report.json can be recomputed from them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "haagent/drill.h"

static const char *phase_names[PH_COUNT] = {"before", "during", "after"};
static const char *http_result_names[DH_RESULT_COUNT] = {
    "ok", "timeout", "refused", "reset", "bad-reply", "overload", "other"};

const char *drill_mode_name(enum drill_mode m)
{
	return m == DRILL_STOPSTART ? "stopstart" : "migrate";
}

/* Latency figures of a set of samples (ms). */
struct dist {
	size_t n;
	double p50, p99, max;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles of v[0..n) (sorted in place). */
static struct dist dist_of(double *v, size_t n)
{
	struct dist d = {.n = n};

	if (!n)
		return d;
	qsort(v, n, sizeof(*v), cmp_double);
	d.p50 = v[(size_t)ceil(0.50 * (double)n) - 1];
	d.p99 = v[(size_t)ceil(0.99 * (double)n) - 1];
	d.max = v[n - 1];
	return d;
}

/* What one guest's client saw in one phase. */
struct phase_stats {
	unsigned sent, lost;
	struct dist rtt;
	unsigned http_total, http_ok, http_err[DH_RESULT_COUNT];
	double http_rate; /* answered requests per second */
	struct dist http_lat;
};

/* What one guest's client saw in one mode. */
struct guest_stats {
	struct phase_stats ph[PH_COUNT];
	unsigned sent, lost, max_lost_run, reboots, backwards, allowed;
	double max_gap_ms, switch_gap_ms, other_gap_ms;
	bool two_copies, moved, gap_met;
	char hosts[256];
};

struct run_stats {
	struct guest_stats g[DRILL_MAX_GUESTS];
	struct phase_stats all[PH_COUNT];
	double cpu[DRILL_MAX_NODES][PH_COUNT]; /* % of one CPU; NAN when not sampled */
	double empty_s, max_gap_ms;
	unsigned lost, failed_checks, gap_met, http_errors;
	char failures[2048];
};

static int64_t phase_start(const struct drill_run *r, int ph)
{
	return ph == PH_BEFORE ? r->t_start_us : ph == PH_DURING ? r->t_mark_us : r->t_empty_us;
}

static int64_t phase_end(const struct drill_run *r, int ph)
{
	return ph == PH_BEFORE ? r->t_mark_us : ph == PH_DURING ? r->t_empty_us : r->t_end_us;
}

static int phase_of(const struct drill_run *r, int64_t t)
{
	if (!r->complete || t < r->t_start_us || t >= r->t_end_us)
		return -1;
	return t < r->t_mark_us ? PH_BEFORE : t < r->t_empty_us ? PH_DURING : PH_AFTER;
}

/* Which run and phase a sample at t belongs to; -1 when none (between modes). */
static int locate(const struct drill *d, int64_t t, int *ph_r)
{
	for (size_t m = 0; m < d->nmodes; m++) {
		int ph = phase_of(&d->runs[m], t);

		if (ph >= 0) {
			*ph_r = ph;
			return (int)m;
		}
	}
	return -1;
}

static void add_failure(struct run_stats *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_failure(struct run_stats *s, const char *fmt, ...)
{
	size_t len = strlen(s->failures);
	va_list ap;

	s->failed_checks++;
	va_start(ap, fmt);
	vsnprintf(s->failures + len, sizeof(s->failures) - len, fmt, ap);
	va_end(ap);
}

/* Probes of guest g in run r: per phase, and the gaps and runs over the whole mode. */
static void probe_stats(const struct drill *d, const struct drill_run *r,
                        const struct drill_guest *g, struct guest_stats *gs, double **buf)
{
	int64_t last_arrival = 0;
	int last_host = -1;
	uint64_t boot = 0, counter = 0;
	unsigned run = 0;
	bool seen_host[DRILL_MAX_HOSTS] = {false};
	size_t nb[PH_COUNT] = {0};

	for (size_t i = 0; i < g->nprobes; i++) {
		const struct drill_probe *p = &g->probes[i];
		int ph = phase_of(r, p->sent_us);
		int64_t arrival;

		if (ph < 0)
			continue;
		gs->sent++;
		gs->ph[ph].sent++;
		if (p->rtt_us < 0) {
			gs->lost++;
			gs->ph[ph].lost++;
			if (++run > gs->max_lost_run)
				gs->max_lost_run = run;
			continue;
		}
		run = 0;
		buf[ph][nb[ph]++] = (double)p->rtt_us / 1000.0;
		arrival = p->sent_us + p->rtt_us;
		if (last_arrival && arrival > last_arrival) {
			double gap = (double)(arrival - last_arrival) / 1000.0;

			if (gap > gs->max_gap_ms)
				gs->max_gap_ms = gap;
			if (p->host != last_host && gap > gs->switch_gap_ms)
				gs->switch_gap_ms = gap;
			if (p->host == last_host && gap > gs->other_gap_ms)
				gs->other_gap_ms = gap;
		}
		last_arrival = arrival > last_arrival ? arrival : last_arrival;
		if (boot && p->boot_id != boot)
			gs->reboots++;
		else if (boot && p->counter < counter)
			gs->backwards++;
		boot = p->boot_id;
		counter = p->counter;
		if (p->host != last_host) {
			/* a host that answers again after another did: two copies ran */
			if (seen_host[p->host])
				gs->two_copies = true;
			seen_host[p->host] = true;
			if (last_host >= 0)
				snprintf(gs->hosts + strlen(gs->hosts),
				         sizeof(gs->hosts) - strlen(gs->hosts), ",");
			snprintf(gs->hosts + strlen(gs->hosts),
			         sizeof(gs->hosts) - strlen(gs->hosts), "%s", g->hosts[p->host]);
			last_host = p->host;
		}
	}
	for (int ph = 0; ph < PH_COUNT; ph++)
		gs->ph[ph].rtt = dist_of(buf[ph], nb[ph]);
}

static void http_stats(const struct drill_run *r, const struct drill_guest *g,
                       struct guest_stats *gs, double **buf)
{
	size_t nb[PH_COUNT] = {0};

	for (size_t i = 0; i < g->nhttp; i++) {
		const struct drill_http *h = &g->http[i];
		int ph = phase_of(r, h->start_us);

		if (ph < 0)
			continue;
		gs->ph[ph].http_total++;
		if (h->result == DH_OK) {
			gs->ph[ph].http_ok++;
			buf[ph][nb[ph]++] = (double)h->lat_us / 1000.0;
		} else {
			gs->ph[ph].http_err[h->result]++;
		}
	}
	for (int ph = 0; ph < PH_COUNT; ph++) {
		double secs = (double)(phase_end(r, ph) - phase_start(r, ph)) / 1e6;

		gs->ph[ph].http_lat = dist_of(buf[ph], nb[ph]);
		gs->ph[ph].http_rate = secs > 0 ? gs->ph[ph].http_ok / secs : 0;
	}
}

/* The figures of the guest's httperf runs (--httperf): no per-request samples. */
static void httperf_stats(const struct drill *d, size_t m, size_t g, struct guest_stats *gs)
{
	for (int ph = 0; ph < PH_COUNT; ph++) {
		const struct drill_httperf *h = &d->httperf[m][g][ph];
		struct phase_stats *p = &gs->ph[ph];
		unsigned known = h->timeouts + h->refused + h->reset;

		if (!h->have)
			continue;
		p->http_total = h->requests;
		p->http_ok = h->replies;
		p->http_err[DH_TIMEOUT] = h->timeouts;
		p->http_err[DH_REFUSED] = h->refused;
		p->http_err[DH_RESET] = h->reset;
		p->http_err[DH_OTHER] = h->errors > known ? h->errors - known : 0;
		p->http_rate = h->duration_s > 0 ? h->replies / h->duration_s : 0;
		p->http_lat.n = h->replies;
		p->http_lat.p50 = h->p50_ms;
		p->http_lat.p99 = h->p99_ms;
		p->http_lat.max = h->max_ms;
	}
}

static unsigned http_errors(const struct phase_stats *p)
{
	unsigned n = 0;

	for (int k = 1; k < DH_RESULT_COUNT; k++)
		n += p->http_err[k];
	return n;
}

/*
 * A node's CPU use in a phase, in % of one CPU: between the last sample at or before its
 * start and the first at or after its end (a phase shorter than the sampling period still
 * gets a figure, over a little more than the phase). NAN without two samples.
 */
static double cpu_in(const struct drill *d, unsigned node, int64_t from, int64_t to)
{
	const struct drill_cpu *first = NULL, *last = NULL;

	for (size_t i = 0; i < d->ncpu; i++) {
		const struct drill_cpu *c = &d->cpu[i];

		if (c->node != node)
			continue;
		if (c->t_us <= from || !first)
			first = c;
		if (c->t_us >= to && (!last || last->t_us < to))
			last = c;
		else if (!last || last->t_us < to)
			last = c;
	}
	if (!first || !last || last->at_ms <= first->at_ms)
		return NAN;
	return 100.0 * ((last->guests_s + last->agent_s) - (first->guests_s + first->agent_s)) /
	       ((double)(last->at_ms - first->at_ms) / 1000.0);
}

static void compute(const struct drill *d, size_t m, struct run_stats *s)
{
	const struct drill_run *r = &d->runs[m];
	size_t cap = 16;
	double *buf[PH_COUNT], *all[PH_COUNT], *hall[PH_COUNT];
	size_t nall[PH_COUNT] = {0}, nhall[PH_COUNT] = {0};

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < d->nguests; i++)
		cap += d->guests[i].nprobes + d->guests[i].nhttp;
	for (int ph = 0; ph < PH_COUNT; ph++) {
		buf[ph] = calloc(cap, sizeof(double));
		all[ph] = calloc(cap, sizeof(double));
		hall[ph] = calloc(cap, sizeof(double));
	}
	s->empty_s = (double)(r->t_empty_us - r->t_mark_us) / 1e6;
	for (size_t i = 0; i < d->nguests && buf[0] && buf[1] && buf[2] && all[0] && all[1] &&
	                   all[2] && hall[0] && hall[1] && hall[2];
	     i++) {
		const struct drill_guest *g = &d->guests[i];
		const struct drill_move *mv = &r->moves[i];
		struct guest_stats *gs = &s->g[i];

		probe_stats(d, r, g, gs, buf);
		for (int ph = 0; ph < PH_COUNT; ph++) /* the overall distribution: every guest's */
			for (size_t k = 0; k < gs->ph[ph].rtt.n; k++)
				all[ph][nall[ph]++] = buf[ph][k];
		if (d->use_httperf)
			httperf_stats(d, m, i, gs);
		else
			http_stats(r, g, gs, buf);
		for (int ph = 0; ph < PH_COUNT && !d->use_httperf; ph++) /* httperf: no samples */
			for (size_t k = 0; k < gs->ph[ph].http_lat.n; k++)
				hall[ph][nhall[ph]++] = buf[ph][k];
		for (int ph = 0; ph < PH_COUNT; ph++) {
			s->all[ph].sent += gs->ph[ph].sent;
			s->all[ph].lost += gs->ph[ph].lost;
			s->all[ph].http_total += gs->ph[ph].http_total;
			s->all[ph].http_ok += gs->ph[ph].http_ok;
			s->all[ph].http_rate += gs->ph[ph].http_rate;
			for (int k = 0; k < DH_RESULT_COUNT; k++)
				s->all[ph].http_err[k] += gs->ph[ph].http_err[k];
			s->http_errors += http_errors(&gs->ph[ph]);
		}
		s->lost += gs->lost;
		if (gs->max_gap_ms > s->max_gap_ms)
			s->max_gap_ms = gs->max_gap_ms;
		gs->moved = mv->how[0] && strcmp(mv->to, d->node);
		/*
		 * The bound of a live move: the probes its downtime covers, one more in flight,
		 * and the client's own longest stall away from the switch-over (a loaded client
		 * or host), as the test suite allows.
		 */
		if (mv->downtime_ms >= 0) {
			double iv = (double)d->interval_ms;
			double noise = ceil((gs->other_gap_ms - iv) / iv);

			gs->allowed = (unsigned)ceil(mv->downtime_ms / iv) + 1 +
			              (unsigned)(noise > 0 ? noise : 0);
			gs->gap_met = gs->max_gap_ms <= mv->downtime_ms + 2 * iv;
			s->gap_met += gs->gap_met;
		}
		if (!gs->moved)
			add_failure(s, "%s was not moved off the node; ", g->name);
		if (gs->two_copies)
			add_failure(
			    s, "%s answered from a host again after another one (two copies?); ",
			    g->name);
		if (r->mode == DRILL_MIGRATE) {
			if (gs->reboots)
				add_failure(s, "%s was rebooted by its live migration; ", g->name);
			if (gs->backwards)
				add_failure(s, "%s's memory went back (its counter fell); ",
				            g->name);
			if (mv->downtime_ms < 0)
				add_failure(s, "%s: no migration report in the cluster's events; ",
				            g->name);
			else if (gs->max_lost_run > gs->allowed)
				add_failure(s,
				            "%s lost %u probes in a row, its downtime allows %u; ",
				            g->name, gs->max_lost_run, gs->allowed);
		} else if (!gs->reboots) {
			add_failure(s, "%s kept its boot id across a stop/start; ", g->name);
		}
	}
	for (int ph = 0; ph < PH_COUNT; ph++) {
		double secs = (double)(phase_end(r, ph) - phase_start(r, ph)) / 1e6;

		s->all[ph].rtt = dist_of(all[ph], nall[ph]);
		s->all[ph].http_lat = dist_of(hall[ph], nhall[ph]);
		s->all[ph].http_rate = secs > 0 ? s->all[ph].http_ok / secs : 0;
		for (size_t n = 0; n < d->nnodes; n++)
			s->cpu[n][ph] =
			    cpu_in(d, (unsigned)n, phase_start(r, ph), phase_end(r, ph));
		free(buf[ph]);
		free(all[ph]);
		free(hall[ph]);
	}
}

/* ------------------------------------------------------------------------- JSON */

static json_object *jdouble(double v)
{
	char text[32];

	if (!isfinite(v))
		return NULL; /* JSON null */
	snprintf(text, sizeof(text), "%.3f", v);
	return json_object_new_double_s(v, text); /* printed rounded, as the table */
}

static json_object *dist_json(const struct dist *d)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "samples", json_object_new_int64((int64_t)d->n));
	json_object_object_add(o, "p50_ms", d->n ? jdouble(d->p50) : NULL);
	json_object_object_add(o, "p99_ms", d->n ? jdouble(d->p99) : NULL);
	json_object_object_add(o, "max_ms", d->n ? jdouble(d->max) : NULL);
	return o;
}

static json_object *phase_json(const struct phase_stats *p)
{
	json_object *o = json_object_new_object(), *http = json_object_new_object(),
	            *errs = json_object_new_object();

	json_object_object_add(o, "probes_sent", json_object_new_int64(p->sent));
	json_object_object_add(o, "probes_lost", json_object_new_int64(p->lost));
	json_object_object_add(o, "rtt", dist_json(&p->rtt));
	json_object_object_add(http, "requests", json_object_new_int64(p->http_total));
	json_object_object_add(http, "replies", json_object_new_int64(p->http_ok));
	json_object_object_add(http, "replies_per_s", jdouble(p->http_rate));
	json_object_object_add(http, "errors", json_object_new_int64(http_errors(p)));
	for (int k = 1; k < DH_RESULT_COUNT; k++)
		json_object_object_add(errs, http_result_names[k],
		                       json_object_new_int64(p->http_err[k]));
	json_object_object_add(http, "errors_by_kind", errs);
	json_object_object_add(http, "latency", dist_json(&p->http_lat));
	json_object_object_add(o, "http", http);
	return o;
}

static json_object *run_json(const struct drill *d, size_t m, const struct run_stats *s)
{
	const struct drill_run *r = &d->runs[m];
	json_object *o = json_object_new_object(), *guests = json_object_new_array(),
	            *overall = json_object_new_object(), *cpu = json_object_new_object();

	json_object_object_add(o, "mode", json_object_new_string(drill_mode_name(r->mode)));
	json_object_object_add(o, "start_s", jdouble((double)r->t_start_us / 1e6));
	json_object_object_add(o, "mark_s", jdouble((double)r->t_mark_us / 1e6));
	json_object_object_add(o, "empty_s", jdouble((double)r->t_empty_us / 1e6));
	json_object_object_add(o, "end_s", jdouble((double)r->t_end_us / 1e6));
	json_object_object_add(o, "mark_to_empty_ms", jdouble(s->empty_s * 1000.0));
	for (size_t i = 0; i < d->nguests; i++) {
		const struct guest_stats *gs = &s->g[i];
		const struct drill_move *mv = &r->moves[i];
		json_object *g = json_object_new_object(), *ph = json_object_new_object();

		json_object_object_add(g, "name", json_object_new_string(d->guests[i].name));
		json_object_object_add(g, "address",
		                       json_object_new_string(d->guests[i].addr_text));
		json_object_object_add(g, "from", json_object_new_string(mv->from));
		json_object_object_add(g, "to", json_object_new_string(mv->to));
		json_object_object_add(g, "how", json_object_new_string(mv->how));
		json_object_object_add(g, "downtime_ms",
		                       mv->downtime_ms >= 0 ? jdouble(mv->downtime_ms) : NULL);
		json_object_object_add(g, "migration_total_ms",
		                       mv->total_ms >= 0 ? jdouble(mv->total_ms) : NULL);
		json_object_object_add(g, "stop_ms",
		                       mv->stop_ms >= 0 ? jdouble(mv->stop_ms) : NULL);
		json_object_object_add(g, "start_ms",
		                       mv->start_ms >= 0 ? jdouble(mv->start_ms) : NULL);
		json_object_object_add(g, "probes_sent", json_object_new_int64(gs->sent));
		json_object_object_add(g, "probes_lost", json_object_new_int64(gs->lost));
		json_object_object_add(g, "max_lost_run", json_object_new_int64(gs->max_lost_run));
		if (r->mode == DRILL_MIGRATE) {
			json_object_object_add(g, "allowed_lost_run",
			                       json_object_new_int64(gs->allowed));
			json_object_object_add(g, "gap_target_met",
			                       json_object_new_boolean(gs->gap_met));
		}
		json_object_object_add(g, "max_gap_ms", jdouble(gs->max_gap_ms));
		json_object_object_add(g, "switch_gap_ms", jdouble(gs->switch_gap_ms));
		json_object_object_add(g, "max_other_gap_ms", jdouble(gs->other_gap_ms));
		json_object_object_add(g, "boot_id_changes", json_object_new_int64(gs->reboots));
		json_object_object_add(g, "counter_backwards",
		                       json_object_new_int64(gs->backwards));
		json_object_object_add(g, "two_copies", json_object_new_boolean(gs->two_copies));
		json_object_object_add(g, "hosts", json_object_new_string(gs->hosts));
		for (int p = 0; p < PH_COUNT; p++)
			json_object_object_add(ph, phase_names[p], phase_json(&gs->ph[p]));
		json_object_object_add(g, "phases", ph);
		json_object_array_add(guests, g);
	}
	json_object_object_add(o, "guests", guests);
	json_object_object_add(overall, "probes_lost", json_object_new_int64(s->lost));
	json_object_object_add(overall, "max_gap_ms", jdouble(s->max_gap_ms));
	json_object_object_add(overall, "http_errors", json_object_new_int64(s->http_errors));
	for (int p = 0; p < PH_COUNT; p++)
		json_object_object_add(overall, phase_names[p], phase_json(&s->all[p]));
	json_object_object_add(o, "overall", overall);
	for (size_t n = 0; n < d->nnodes; n++) {
		json_object *c = json_object_new_object();

		for (int p = 0; p < PH_COUNT; p++)
			json_object_object_add(c, phase_names[p], jdouble(s->cpu[n][p]));
		json_object_object_add(cpu, d->nodes[n], c);
	}
	json_object_object_add(o, "cpu_percent", cpu);
	json_object_object_add(o, "failed_checks", json_object_new_int64(s->failed_checks));
	json_object_object_add(o, "failures", json_object_new_string(s->failures));
	return o;
}

/* ------------------------------------------------------------------------- the table */

static void fmt_dist(char *buf, size_t len, const struct dist *d)
{
	if (!d->n)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2f/%.2f/%.1f", d->p50, d->p99, d->max);
}

static void fmt_ms(char *buf, size_t len, double v)
{
	if (v < 0 || !isfinite(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f ms", v);
}

static void print_run(FILE *f, const struct drill *d, size_t m, const struct run_stats *s)
{
	const struct drill_run *r = &d->runs[m];
	bool mig = r->mode == DRILL_MIGRATE;

	fprintf(f, "== %s: node %s empty %.2f s after the mark (%s)\n", drill_mode_name(r->mode),
	        d->node, s->empty_s,
	        mig ? "haagent's live evacuation" : "stopped on the node, cold-booted elsewhere");
	fprintf(f, "   %-8s %-12s %-10s %-10s %-10s %-15s %-9s %s\n", "guest", "moved", "how",
	        mig ? "downtime" : "stop+start", "client gap", "lost (in a row)", "boot id",
	        "RTT ms p50/p99/max: before | during | after");
	for (size_t i = 0; i < d->nguests; i++) {
		const struct guest_stats *gs = &s->g[i];
		const struct drill_move *mv = &r->moves[i];
		char moved[2 * DRILL_NAME_MAX + 8], down[32], gap[32], lost[32], rtt[3][48];

		snprintf(moved, sizeof(moved), "%s -> %s", mv->from[0] ? mv->from : d->node,
		         mv->to[0] ? mv->to : "?");
		if (mig)
			fmt_ms(down, sizeof(down), mv->downtime_ms);
		else if (mv->stop_ms >= 0 && mv->start_ms >= 0)
			snprintf(down, sizeof(down), "%.0f+%.0f ms", mv->stop_ms, mv->start_ms);
		else
			snprintf(down, sizeof(down), "-");
		fmt_ms(gap, sizeof(gap), gs->max_gap_ms);
		if (mig)
			snprintf(lost, sizeof(lost), "%u (%u, max %u)", gs->lost, gs->max_lost_run,
			         gs->allowed);
		else
			snprintf(lost, sizeof(lost), "%u (%u)", gs->lost, gs->max_lost_run);
		for (int p = 0; p < PH_COUNT; p++)
			fmt_dist(rtt[p], sizeof(rtt[p]), &gs->ph[p].rtt);
		fprintf(f, "   %-8s %-12s %-10s %-10s %-10s %-15s %-9s %s | %s | %s\n",
		        d->guests[i].name, moved, mv->how[0] ? mv->how : "?", down, gap, lost,
		        gs->reboots ? "new" : "unchanged", rtt[0], rtt[1], rtt[2]);
	}
	fprintf(f, "   %-8s %-41s %s\n", "guest", "HTTP replies/s, errors: before | during | after",
	        "latency ms p50/p99/max: before | during | after");
	for (size_t i = 0; i <= d->nguests; i++) {
		const struct phase_stats *ph = i < d->nguests ? s->g[i].ph : s->all;
		char rates[96], lat[3][48];

		snprintf(rates, sizeof(rates), "%.1f, %u | %.1f, %u | %.1f, %u", ph[0].http_rate,
		         http_errors(&ph[0]), ph[1].http_rate, http_errors(&ph[1]), ph[2].http_rate,
		         http_errors(&ph[2]));
		for (int p = 0; p < PH_COUNT; p++)
			fmt_dist(lat[p], sizeof(lat[p]), &ph[p].http_lat);
		fprintf(f, "   %-8s %-41s %s | %s | %s\n",
		        i < d->nguests ? d->guests[i].name : "all", rates, lat[0], lat[1], lat[2]);
	}
	fprintf(f, "   %-8s CPU %% of one core: before | during | after\n", "node");
	for (size_t n = 0; n < d->nnodes; n++) {
		char c[3][16];

		for (int p = 0; p < PH_COUNT; p++)
			snprintf(c[p], sizeof(c[p]), isfinite(s->cpu[n][p]) ? "%.1f" : "-",
			         s->cpu[n][p]);
		fprintf(f, "   %-8s %s | %s | %s\n", d->nodes[n], c[0], c[1], c[2]);
	}
	if (mig)
		fprintf(f,
		        "   target: longest gap <= downtime + 2 probe intervals: %s (%u of %zu "
		        "guests); no HTTP request lost: %s (%u errors)\n",
		        s->gap_met == d->nguests ? "MET" : "MISSED", s->gap_met, d->nguests,
		        s->http_errors ? "MISSED" : "MET", s->http_errors);
	if (s->failed_checks)
		fprintf(f, "   CHECK FAILED: %s\n", s->failures);
}

static void print_overall(FILE *f, const struct drill *d, const struct run_stats *s)
{
	char v[DRILL_MAX_MODES][6][48];

	fprintf(f, "== overall (all guests)   ");
	for (size_t m = 0; m < d->nmodes; m++)
		fprintf(f, "%-24s", drill_mode_name(d->runs[m].mode));
	fputc('\n', f);
	for (size_t m = 0; m < d->nmodes; m++) {
		const struct run_stats *r = &s[m];

		snprintf(v[m][0], sizeof(v[m][0]), "%.1f", r->max_gap_ms);
		snprintf(v[m][1], sizeof(v[m][1]), "%u", r->lost);
		fmt_dist(v[m][2], sizeof(v[m][2]), &r->all[PH_BEFORE].rtt);
		fmt_dist(v[m][3], sizeof(v[m][3]), &r->all[PH_DURING].rtt);
		snprintf(v[m][4], sizeof(v[m][4]), "%u", r->http_errors);
		snprintf(v[m][5], sizeof(v[m][5]), "%.2f", r->empty_s);
	}
	static const char *rows[6] = {
	    "longest gap (ms)",       "probes lost", "RTT before p50/p99/max",
	    "RTT during p50/p99/max", "HTTP errors", "mark to empty (s)"};
	for (int k = 0; k < 6; k++) {
		fprintf(f, "   %-23s", rows[k]);
		for (size_t m = 0; m < d->nmodes; m++)
			fprintf(f, "%-24s", v[m][k]);
		fputc('\n', f);
	}
}

/* ------------------------------------------------------------------------- raw logs, plots */

static FILE *open_out(const struct drill *d, const char *name)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", d->out_dir, name);
	f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "haagent drill: cannot write %s: %s\n", path, strerror(errno));
	return f;
}

static const char *where(const struct drill *d, int64_t t, char *buf, size_t len)
{
	int ph, m = locate(d, t, &ph);

	if (m < 0)
		return "-,-";
	snprintf(buf, len, "%s,%s", drill_mode_name(d->runs[m].mode), phase_names[ph]);
	return buf;
}

static int write_raw(const struct drill *d)
{
	FILE *p = open_out(d, "probes.csv"), *h = open_out(d, "http.csv"),
	     *c = open_out(d, "cpu.csv");
	char w[48];
	int rc = p && h && c ? 0 : -1;

	if (p) {
		fprintf(p, "guest,seq,sent_s,mode,phase,rtt_ms,host,boot_id,counter\n");
		for (size_t i = 0; i < d->nguests; i++) {
			const struct drill_guest *g = &d->guests[i];

			for (size_t k = 0; k < g->nprobes; k++) {
				const struct drill_probe *q = &g->probes[k];

				if (q->rtt_us < 0)
					fprintf(p, "%s,%zu,%.6f,%s,lost,,,\n", g->name, k,
					        (double)q->sent_us / 1e6,
					        where(d, q->sent_us, w, sizeof(w)));
				else
					fprintf(p, "%s,%zu,%.6f,%s,%.3f,%s,%016llx,%llu\n", g->name,
					        k, (double)q->sent_us / 1e6,
					        where(d, q->sent_us, w, sizeof(w)),
					        (double)q->rtt_us / 1000.0, g->hosts[q->host],
					        (unsigned long long)q->boot_id,
					        (unsigned long long)q->counter);
			}
		}
		rc |= fclose(p) ? -1 : 0;
	}
	if (h) {
		fprintf(h, "guest,start_s,mode,phase,result,latency_ms\n");
		for (size_t i = 0; i < d->nguests; i++)
			for (size_t k = 0; k < d->guests[i].nhttp; k++) {
				const struct drill_http *q = &d->guests[i].http[k];

				fprintf(h, "%s,%.6f,%s,%s,%.3f\n", d->guests[i].name,
				        (double)q->start_us / 1e6,
				        where(d, q->start_us, w, sizeof(w)),
				        http_result_names[q->result], (double)q->lat_us / 1000.0);
			}
		rc |= fclose(h) ? -1 : 0;
	}
	if (c) {
		fprintf(c, "node,t_s,agent_clock_ms,guests_cpu_s,agent_cpu_s\n");
		for (size_t i = 0; i < d->ncpu; i++)
			fprintf(c, "%s,%.6f,%lld,%.3f,%.3f\n", d->nodes[d->cpu[i].node],
			        (double)d->cpu[i].t_us / 1e6, (long long)d->cpu[i].at_ms,
			        d->cpu[i].guests_s, d->cpu[i].agent_s);
		rc |= fclose(c) ? -1 : 0;
	}
	return rc;
}

/*
 * The plot: one panel per mode, stacked, RTT over time since the mark for every guest
 * (log scale), the "during" phase shaded, each lost probe an x at the top.
 */
static int write_plot(const struct drill *d)
{
	FILE *f = open_out(d, "drill.gp"), *dat = open_out(d, "plot.dat");
	double ymax = 1;
	int status = 0;
	pid_t pid;

	if (!f || !dat) {
		if (f)
			fclose(f);
		if (dat)
			fclose(dat);
		return -1;
	}
	/* plot.dat: one block per (mode, guest): t since the mark, RTT ms or "lost" marker */
	for (size_t m = 0; m < d->nmodes; m++) {
		const struct drill_run *r = &d->runs[m];

		for (size_t i = 0; i < d->nguests; i++) {
			const struct drill_guest *g = &d->guests[i];

			fprintf(dat, "# mode %s guest %s\n", drill_mode_name(r->mode), g->name);
			for (size_t k = 0; k < g->nprobes; k++) {
				const struct drill_probe *q = &g->probes[k];

				if (phase_of(r, q->sent_us) < 0)
					continue;
				if (q->rtt_us >= 0 && q->rtt_us / 1000.0 > ymax)
					ymax = q->rtt_us / 1000.0;
				fprintf(dat, "%.4f %.3f %d\n",
				        (double)(q->sent_us - r->t_mark_us) / 1e6,
				        q->rtt_us >= 0 ? q->rtt_us / 1000.0 : -1.0, q->rtt_us < 0);
			}
			fprintf(dat, "\n\n");
		}
	}
	fclose(dat);
	fprintf(f,
	        "# gnuplot script of haagent drill: gnuplot drill.gp (in this directory)\n"
	        "set datafile missing '-1.000'\n"
	        "lostmark = %.3f\n"
	        "do for [out in 'png svg'] {\n"
	        "  if (out eq 'png') { set terminal pngcairo size 1200,%d font ',10'; set output "
	        "'drill.png' }\n"
	        "  else { set terminal svg size 1200,%d dynamic font 'sans,10'; set output "
	        "'drill.svg' }\n"
	        "  set multiplot layout %zu,1 title 'haagent drill of node %s: probe RTT per "
	        "guest, lost probes as x'\n",
	        ymax * 1.5, 380 * (int)d->nmodes, 380 * (int)d->nmodes, d->nmodes, d->node);
	for (size_t m = 0; m < d->nmodes; m++) {
		const struct drill_run *r = &d->runs[m];
		double t0 = (double)(r->t_start_us - r->t_mark_us) / 1e6,
		       te = (double)(r->t_empty_us - r->t_mark_us) / 1e6,
		       t1 = (double)(r->t_end_us - r->t_mark_us) / 1e6;

		fprintf(f,
		        "  unset object; set object 1 rect from %.3f, graph 0 to %.3f, graph 1 "
		        "fillcolor rgb '#ffe0b0' fillstyle solid 0.6 noborder behind\n"
		        "  set title '%s: the node marked at 0 s, empty at %.2f s (shaded)'\n"
		        "  set xlabel 'seconds since the mark'; set ylabel 'RTT (ms)'\n"
		        "  set logscale y; set yrange [0.01:lostmark * 2]; set xrange [%.3f:%.3f]\n"
		        "  set key outside right\n"
		        "  plot ",
		        0.0, te, drill_mode_name(r->mode), te, t0, t1);
		for (size_t i = 0; i < d->nguests; i++) {
			size_t idx = m * d->nguests + i;

			fprintf(
			    f,
			    "%s'plot.dat' index %zu using 1:($3 == 0 ? $2 : 1/0) with lines lw 1 "
			    "lc %zu title '%s', 'plot.dat' index %zu using 1:($3 == 1 ? lostmark : "
			    "1/0) with points pt 2 lc %zu notitle",
			    i ? ", " : "", idx, i + 1, d->guests[i].name, idx, i + 1);
		}
		fprintf(f, "\n");
	}
	fprintf(f, "  unset multiplot\n  set output\n}\n");
	fclose(f);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, 0);
		if (chdir(d->out_dir) == 0)
			execlp("gnuplot", "gnuplot", "drill.gp", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		fprintf(stderr,
		        "haagent drill: gnuplot not found: no plot (apt-get install "
		        "gnuplot-nox; then: cd %s && gnuplot drill.gp)\n",
		        d->out_dir);
		return 0;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "haagent drill: gnuplot failed on %s/drill.gp: no plot\n",
		        d->out_dir);
		return -1;
	}
	return 0;
}

int drill_report(struct drill *d)
{
	struct run_stats *s = calloc(DRILL_MAX_MODES, sizeof(*s));
	json_object *o = json_object_new_object(), *runs = json_object_new_array();
	FILE *txt;
	int failed = 0, rc = 0;
	size_t nrun = 0;
	char path[PATH_MAX];

	if (!s)
		return -1;
	for (size_t m = 0; m < d->nmodes && d->runs[m].complete; m++, nrun++) {
		compute(d, m, &s[m]);
		failed += (int)s[m].failed_checks;
		json_object_array_add(runs, run_json(d, m, &s[m]));
	}
	d->nmodes = nrun; /* a mode that could not finish is not reported */
	json_object_object_add(o, "node", json_object_new_string(d->node));
	json_object_object_add(o, "probe_interval_ms", json_object_new_int64(d->interval_ms));
	json_object_object_add(o, "http_rate_per_guest", jdouble(d->http_rate));
	json_object_object_add(o, "http_timeout_ms", json_object_new_int64(d->http_timeout_ms));
	json_object_object_add(o, "runs", runs);
	json_object_object_add(o, "failed_checks", json_object_new_int64(failed));
	snprintf(path, sizeof(path), "%s/report.json", d->out_dir);
	if (json_object_to_file_ext(path, o, JSON_C_TO_STRING_PRETTY) < 0) {
		fprintf(stderr, "haagent drill: cannot write %s\n", path);
		rc = -1;
	}
	if (write_raw(d) < 0)
		rc = -1;
	txt = open_out(d, "report.txt");
	for (size_t m = 0; txt && m < nrun; m++)
		print_run(txt, d, m, &s[m]);
	if (txt) {
		print_overall(txt, d, s);
		if (fclose(txt))
			rc = -1;
	}
	if (write_plot(d) < 0)
		rc = -1;
	if (d->json) {
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	} else {
		for (size_t m = 0; m < nrun; m++)
			print_run(stdout, d, m, &s[m]);
		print_overall(stdout, d, s);
		printf("report, raw logs and plot (drill.png, drill.svg) in %s\n", d->out_dir);
	}
	json_object_put(o);
	free(s);
	return rc < 0 ? rc : failed;
}
