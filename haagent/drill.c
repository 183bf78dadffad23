/*
 * drill.c - "haagent drill": empty a node the way a failure would, and measure what every
 * guest's clients saw (see drill.h).
 *
 * A mode runs in three phases: "before" (the cluster at rest, --before s), "during" (from
 * the mark until the agents' view has every guest of the node running elsewhere) and
 * "after" (--after s). Then the node is cleared and its guests are live-migrated back, so
 * the next mode (--mode both) starts from the same place and the drill leaves the cluster
 * as it found it. The client runs through the whole drill; each mode's figures are the
 * samples inside its phases.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "haagent/ctl.h"
#include "haagent/drill.h"

#define DEFAULT_SOCKET RUNSTATEDIR "/haagent/haagent.sock"
#define POLL_MS        100 /* how often the agents' view is read while waiting */
#define CPU_EVERY_MS   250 /* how often every agent's CPU figure is sampled */
#define ANSWER_WAIT_S  15  /* how long each guest has to answer the client's first probe */
#define CALL_TIMEOUT   10000

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: haagent drill --node NODE --guest NAME=ADDR [--guest ...] [options]\n"
	    "\n"
	    "Empty NODE the way a failure would, while a client probes each of its guests and\n"
	    "sends it HTTP requests, and report what the client saw before, during and after.\n"
	    "\n"
	    "  --node NODE          the node to fail (it must be in service and run guests)\n"
	    "  --guest NAME=ADDR    a guest of NODE and the address of its probe and HTTP\n"
	    "                       services; every guest NODE runs must be given\n"
	    "  --mode MODE          migrate (haagent's live evacuation), stopstart (shutdown on\n"
	    "                       NODE, cold boot elsewhere, as Heartbeat's init.d scripts) or\n"
	    "                       both, one after the other (default migrate)\n"
	    "  --rate HZ            probes per second per guest (default 100)\n"
	    "  --http-rate R        HTTP connections per second per guest, 0 for none\n"
	    "                       (default 5)\n"
	    "  --http-timeout MS    a request unanswered this long is an error (default 3000)\n"
	    "  --source ADDR        send the probes and HTTP requests from this local address\n"
	    "  --httperf            send the HTTP load with httperf (one process per guest and\n"
	    "                       phase) instead of the built-in client; httperf spins a\n"
	    "                       CPU per process: give the client a core per guest\n"
	    "  --before S           seconds measured before the mark (default 5)\n"
	    "  --after S            seconds measured after the node is empty (default 5)\n"
	    "  --timeout S          give up when the node is not empty after S (default 300)\n"
	    "  --out DIR            where the report, raw logs and plots go (default\n"
	    "                       ./drill-YYYYmmdd-HHMMSS)\n"
	    "  --json               print the report as JSON instead of the table\n"
	    "  --check              exit 1 when a guest missed its mode's bound: rebooted, ran\n"
	    "                       twice, or (migrate) lost more probes than its downtime "
	    "explains\n"
	    "  -s, --socket PATH    an agent's control socket; the first is commanded, every\n"
	    "                       one given is sampled for its node's CPU (default %s)\n"
	    "  -h, --help           this help\n"
	    "\n"
	    "Exit status: 0 the drill ran (and with --check, every guest met its bound), 1 it\n"
	    "failed or a check failed, 2 bad usage, 130 interrupted.\n",
	    DEFAULT_SOCKET);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs("haagent drill: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ------------------------------------------------------------------------- the agents */

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static bool jbool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static json_object *jarr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_array)
	           ? v
	           : NULL;
}

/*
 * One request to the agent at socket; the answer when it says ok, else NULL with the reason
 * in err (quiet: the caller decides whether it matters).
 */
static json_object *agent_call(const char *socket, json_object *req, char *err, size_t errlen)
{
	char *reply = NULL;
	json_object *a = NULL;
	int rc = ha_ctl_call(socket, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN),
	                     &reply, CALL_TIMEOUT);

	json_object_put(req);
	if (rc == ERR_NOTFOUND)
		snprintf(err, errlen, "no agent listening on %s (is haagent running?)", socket);
	else if (rc == ERR_PERM)
		snprintf(err, errlen, "permission denied on %s: run the drill as root", socket);
	else if (rc < 0)
		snprintf(err, errlen, "%s: %s", socket, err_str(rc));
	else if (!(a = json_tokener_parse(reply)))
		snprintf(err, errlen, "the agent at %s answered something not JSON", socket);
	else if (!jbool(a, "ok")) {
		snprintf(err, errlen, "%s", jstr(a, "error"));
		json_object_put(a);
		a = NULL;
	}
	free(reply);
	return a;
}

static json_object *request(const char *cmd, const char *k1, const char *v1, const char *k2,
                            const char *v2)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "cmd", json_object_new_string(cmd));
	if (k1)
		json_object_object_add(r, k1, json_object_new_string(v1));
	if (k2)
		json_object_object_add(r, k2, json_object_new_string(v2));
	return r;
}

/* The commanded agent's "guests" answer (nodes and guests), or NULL with a message said. */
static json_object *view(struct drill *d, bool quiet)
{
	char err[512];
	json_object *a =
	    agent_call(d->sockets[0], request("guests", NULL, NULL, NULL, NULL), err, sizeof(err));

	if (!a && !quiet)
		fail("%s", err);
	return a;
}

static json_object *find_named(json_object *list, const char *name)
{
	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i);

		if (!strcmp(jstr(e, "name"), name))
			return e;
	}
	return NULL;
}

/* Sample every agent's CPU figure (at most every CPU_EVERY_MS). */
static void sample_cpu(struct drill *d)
{
	static int64_t last;
	int64_t now = drill_now_us();

	if (now - last < CPU_EVERY_MS * 1000)
		return;
	last = now;
	for (size_t i = 0; i < d->nsockets; i++) {
		char err[256];
		json_object *a = agent_call(
		    d->sockets[i], request("status", NULL, NULL, NULL, NULL), err, sizeof(err));
		json_object *cpu, *v;
		struct drill_cpu *c;
		size_t n;

		if (!a)
			continue;
		if (!json_object_object_get_ex(a, "cpu", &cpu)) {
			json_object_put(a);
			continue;
		}
		for (n = 0; n < d->nnodes && strcmp(d->nodes[n], jstr(a, "node")); n++)
			;
		if (n == d->nnodes && d->nnodes < DRILL_MAX_NODES)
			snprintf(d->nodes[d->nnodes++], DRILL_NAME_MAX, "%s", jstr(a, "node"));
		if (n < d->nnodes && d->ncpu == d->cpu_cap) {
			size_t cap = d->cpu_cap ? d->cpu_cap * 2 : 256;
			struct drill_cpu *nc = realloc(d->cpu, cap * sizeof(*nc));

			if (nc) {
				d->cpu = nc;
				d->cpu_cap = cap;
			}
		}
		if (n < d->nnodes && d->ncpu < d->cpu_cap) {
			c = &d->cpu[d->ncpu++];
			c->node = (unsigned)n;
			c->t_us = now;
			c->guests_s = json_object_object_get_ex(cpu, "guests_s", &v)
			                  ? json_object_get_double(v)
			                  : 0;
			c->agent_s = json_object_object_get_ex(cpu, "agent_s", &v)
			                 ? json_object_get_double(v)
			                 : 0;
			c->at_ms = json_object_object_get_ex(cpu, "at_ms", &v)
			               ? json_object_get_int64(v)
			               : 0;
		}
		json_object_put(a);
	}
}

/* ------------------------------------------------------------------------- progress */

static unsigned lost_so_far(struct drill *d)
{
	unsigned lost = 0;

	for (size_t i = 0; i < d->nguests; i++) {
		unsigned s = atomic_load(&d->guests[i].sent),
		         a = atomic_load(&d->guests[i].answered);

		/* the probes of the last 200 ms may still be in flight */
		unsigned inflight = 200 / d->interval_ms + 1;

		lost += s > a + inflight ? s - a - inflight : 0;
	}
	return lost;
}

/* A line on stderr: rewritten in place on a terminal, else printed when it says more. */
static void progress(struct drill *d, const char *mode, const char *phase, int moved,
                     int64_t since_us)
{
	static char last[256];
	char line[256];
	bool tty = isatty(2);

	if (d->json && !tty)
		return;
	snprintf(line, sizeof(line), "drill %s: %s", mode, phase);
	if (moved >= 0)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), ", %d/%zu guests moved",
		         moved, d->nguests);
	if (tty) {
		fprintf(stderr, "\r%s, %u probes lost, %.1f s   ", line, lost_so_far(d),
		        (double)(drill_now_us() - since_us) / 1e6);
		fflush(stderr);
	} else if (strcmp(line, last)) {
		fprintf(stderr, "%s\n", line);
	}
	snprintf(last, sizeof(last), "%s", line);
}

static void progress_end(void)
{
	if (isatty(2))
		fputc('\n', stderr);
}

/* Wait s seconds, sampling and showing progress. false when interrupted. */
static bool measure_for(struct drill *d, unsigned s, const char *mode, const char *phase, int moved)
{
	int64_t t0 = drill_now_us(), end = t0 + (int64_t)s * 1000000;

	while (drill_now_us() < end) {
		struct timespec ts = {0, POLL_MS * 1000000L};

		if (interrupted)
			return false;
		sample_cpu(d);
		progress(d, mode, phase, moved, t0);
		nanosleep(&ts, NULL);
	}
	return true;
}

/* ------------------------------------------------------------------------- a mode */

/* How many of the drill's guests run on node (or are moving), in view a. */
static int count_on(struct drill *d, json_object *a, const char *node, bool *all_running)
{
	json_object *list = jarr(a, "guests");
	int on = 0;

	*all_running = true;
	for (size_t i = 0; i < d->nguests; i++) {
		json_object *g = find_named(list, d->guests[i].name);

		if (!g) {
			*all_running = false;
			continue;
		}
		if (!strcmp(jstr(g, "owner"), node))
			on++;
		if (strcmp(jstr(g, "state"), "running"))
			*all_running = false;
	}
	return on;
}

/* The newest event's sequence number. */
static int64_t last_event(struct drill *d)
{
	char err[256];
	json_object *a =
	    agent_call(d->sockets[0], request("events", NULL, NULL, NULL, NULL), err, sizeof(err));
	json_object *list = a ? jarr(a, "events") : NULL, *v;
	int64_t seq = 0;

	for (size_t i = 0; list && i < json_object_array_length(list); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(list, i), "seq", &v) &&
		    json_object_get_int64(v) > seq)
			seq = json_object_get_int64(v);
	json_object_put(a);
	return seq;
}

/*
 * What the cluster's events say of each guest's move since event after: "guest G now runs
 * on T (migrated from S, downtime D ms, total T ms)" or "(restarted from S)".
 */
static void read_moves(struct drill *d, struct drill_run *r, int64_t after)
{
	char err[256];
	json_object *a =
	    agent_call(d->sockets[0], request("events", NULL, NULL, NULL, NULL), err, sizeof(err));
	json_object *list = a ? jarr(a, "events") : NULL, *v;

	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i);
		char g[DRILL_NAME_MAX], to[DRILL_NAME_MAX], how[16], from[DRILL_NAME_MAX];
		const char *text = jstr(e, "text"), *p;

		if (!json_object_object_get_ex(e, "seq", &v) || json_object_get_int64(v) <= after)
			continue;
		if (sscanf(text, "guest %63s shut down on %63s for a cold restart", g, from) == 2 &&
		    (p = strstr(text, "(stop "))) {
			for (size_t k = 0; k < d->nguests; k++)
				if (!strcmp(d->guests[k].name, g))
					r->moves[k].stop_ms = strtod(p + 6, NULL);
			continue;
		}
		if (sscanf(text, "guest %63s now runs on %63s (%15s from %63[^,)]", g, to, how,
		           from) != 4)
			continue;
		for (size_t k = 0; k < d->nguests; k++) {
			struct drill_move *m = &r->moves[k];

			if (strcmp(d->guests[k].name, g))
				continue;
			snprintf(m->to, sizeof(m->to), "%s", to);
			snprintf(m->how, sizeof(m->how), "%s", how);
			snprintf(m->from, sizeof(m->from), "%s", from);
			m->downtime_ms = (p = strstr(text, "downtime ")) ? strtod(p + 9, NULL) : -1;
			m->total_ms = (p = strstr(text, "total ")) ? strtod(p + 6, NULL) : -1;
			m->start_ms = (p = strstr(text, ", start ")) ? strtod(p + 8, NULL) : -1;
		}
	}
	json_object_put(a);
}

/* Clear the node; false (said) when the agent refused. */
static bool clear_node(struct drill *d)
{
	char err[512];
	json_object *a = agent_call(d->sockets[0], request("clear", "node", d->node, NULL, NULL),
	                            err, sizeof(err));

	if (!a) {
		fail("cannot clear node %s: %s; clear it with: haagent ctl clear %s", d->node, err,
		     d->node);
		return false;
	}
	json_object_put(a);
	return true;
}

/* Live-migrate every guest of the drill back to the node, and wait until they run there. */
static bool bring_back(struct drill *d, const char *mode)
{
	int64_t t0 = drill_now_us(), end = t0 + (int64_t)d->timeout_s * 1000000;
	bool asked[DRILL_MAX_GUESTS] = {false};

	while (drill_now_us() < end && !interrupted) {
		json_object *a = view(d, true), *list = a ? jarr(a, "guests") : NULL;
		struct timespec ts = {0, POLL_MS * 1000000L};
		bool all_running;
		int on = a ? count_on(d, a, d->node, &all_running) : 0;

		if (a && on == (int)d->nguests && all_running) {
			json_object_put(a);
			return true;
		}
		for (size_t i = 0; list && i < d->nguests; i++) {
			json_object *g = find_named(list, d->guests[i].name);
			char err[512];
			json_object *r;

			if (asked[i] || !g || !strcmp(jstr(g, "owner"), d->node) ||
			    strcmp(jstr(g, "state"), "running"))
				continue;
			r = agent_call(
			    d->sockets[0],
			    request("migrate", "guest", d->guests[i].name, "node", d->node), err,
			    sizeof(err));
			if (r)
				asked[i] =
				    true; /* asked once: a failed move is the agents' to retry */
			json_object_put(r);
		}
		json_object_put(a);
		sample_cpu(d);
		progress(d, mode, "guests going back", -1, t0);
		nanosleep(&ts, NULL);
	}
	progress_end();
	if (!interrupted)
		fail("the guests are not all back on %s after %u s: see haagent ctl guests",
		     d->node, d->timeout_s);
	return false;
}

/*
 * With --httperf: end the httperf runs of phase from (from < 0: none) and start those of
 * phase to (to < 0: none). false (said) when they cannot start.
 */
static bool httperf_phase(struct drill *d, struct drill_run *r, int from, int to)
{
	size_t run = (size_t)(r - d->runs);
	int rc;

	if (!d->use_httperf)
		return true;
	if (from >= 0)
		drill_httperf_stop(d, run, from);
	if (to < 0)
		return true;
	rc = drill_httperf_start(d, run, to);
	if (rc < 0) {
		progress_end();
		fail("cannot start httperf: %s", strerror(-rc));
		drill_httperf_stop(d, run, -1);
		return false;
	}
	return true;
}

/* Run one mode; false when it could not finish (said). */
static bool run_mode(struct drill *d, struct drill_run *r)
{
	const char *mode = drill_mode_name(r->mode);
	int64_t seq0, end;
	json_object *req, *a;
	char err[512], reason[128];
	bool all_running = false;
	int on = (int)d->nguests;

	r->ran = true;
	for (size_t i = 0; i < d->nguests; i++)
		r->moves[i].downtime_ms = r->moves[i].total_ms = r->moves[i].stop_ms =
		    r->moves[i].start_ms = -1;
	r->t_start_us = drill_now_us();
	if (!httperf_phase(d, r, -1, PH_BEFORE) || !measure_for(d, d->before_s, mode, "before", -1))
		return false;
	seq0 = last_event(d);
	snprintf(reason, sizeof(reason), "drill: %s", mode);
	req = request("mark-failing", "node", d->node, "reason", reason);
	if (r->mode == DRILL_STOPSTART)
		json_object_object_add(req, "cold", json_object_new_boolean(1));
	if (!httperf_phase(d, r, PH_BEFORE, PH_DURING)) {
		json_object_put(req);
		return false;
	}
	r->t_mark_us = drill_now_us();
	a = agent_call(d->sockets[0], req, err, sizeof(err));
	if (!a) {
		progress_end();
		fail("cannot mark node %s failing: %s", d->node, err);
		return false;
	}
	json_object_put(a);
	d->marked = true;
	end = r->t_mark_us + (int64_t)d->timeout_s * 1000000;
	while (drill_now_us() < end && !interrupted) {
		struct timespec ts = {0, POLL_MS * 1000000L};

		a = view(d, true);
		if (a)
			on = count_on(d, a, d->node, &all_running);
		json_object_put(a);
		if (a && on == 0 && all_running)
			break;
		sample_cpu(d);
		progress(d, mode, "during", (int)d->nguests - on, r->t_mark_us);
		nanosleep(&ts, NULL);
	}
	if (interrupted)
		return false;
	if (on || !all_running) {
		progress_end();
		fail("node %s is not empty %u s after the mark (%d guests left): see haagent ctl "
		     "guests and events",
		     d->node, d->timeout_s, on);
		return false;
	}
	if (!httperf_phase(d, r, PH_DURING, PH_AFTER))
		return false;
	r->t_empty_us = drill_now_us();
	if (!measure_for(d, d->after_s, mode, "after", (int)d->nguests))
		return false;
	r->t_end_us = drill_now_us();
	httperf_phase(d, r, PH_AFTER, -1);
	progress_end();
	read_moves(d, r, seq0);
	r->complete = true;
	if (!clear_node(d))
		return false;
	d->marked = false;
	return bring_back(d, mode);
}

/* ------------------------------------------------------------------------- set-up */

/* Before anything changes: the cluster is quorate, the node is in service and runs guests,
 * every one of them is given and another node can take them. */
static bool preflight(struct drill *d)
{
	json_object *a = view(d, false), *nodes, *guests;
	json_object *n;
	size_t others = 0, on = 0;
	char known[1024] = "";

	if (!a)
		return false;
	if (!jbool(a, "quorate") || !jbool(a, "synced")) {
		fail("the cluster has no quorum or this agent is not in sync (haagent ctl status): "
		     "a "
		     "drill needs a quorate cluster");
		json_object_put(a);
		return false;
	}
	nodes = jarr(a, "nodes");
	guests = jarr(a, "guests");
	n = find_named(nodes, d->node);
	for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
		json_object *e = json_object_array_get_idx(nodes, i);

		snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
		         i ? ", " : "", jstr(e, "name"));
		if (e != n && jbool(e, "member") && !strcmp(jstr(e, "state"), "ok"))
			others++;
	}
	if (!n) {
		fail("no node %s in the cluster (nodes: %s)", d->node, known);
		json_object_put(a);
		return false;
	}
	if (!jbool(n, "member") || strcmp(jstr(n, "state"), "ok")) {
		fail("node %s is %s: a drill fails a node in service (haagent ctl clear %s first)",
		     d->node, jbool(n, "member") ? jstr(n, "state") : "not a member", d->node);
		json_object_put(a);
		return false;
	}
	if (!others) {
		fail("no other node in service can take the guests of %s", d->node);
		json_object_put(a);
		return false;
	}
	for (size_t i = 0; guests && i < json_object_array_length(guests); i++) {
		json_object *g = json_object_array_get_idx(guests, i);
		size_t k;

		if (strcmp(jstr(g, "owner"), d->node))
			continue;
		on++;
		for (k = 0; k < d->nguests && strcmp(d->guests[k].name, jstr(g, "name")); k++)
			;
		if (k == d->nguests) {
			fail("guest %s runs on %s but has no --guest %s=ADDR: the drill probes "
			     "every "
			     "guest it moves",
			     jstr(g, "name"), d->node, jstr(g, "name"));
			json_object_put(a);
			return false;
		}
	}
	if (!on) {
		fail("node %s runs no guest: nothing to drill", d->node);
		json_object_put(a);
		return false;
	}
	for (size_t k = 0; k < d->nguests; k++) {
		json_object *g = find_named(guests, d->guests[k].name);

		if (!g || strcmp(jstr(g, "owner"), d->node)) {
			fail("guest %s does not run on %s (%s): give only the guests of the node",
			     d->guests[k].name, d->node,
			     g ? jstr(g, "owner") : "not in the cluster");
			json_object_put(a);
			return false;
		}
	}
	json_object_put(a);
	return true;
}

/* Create the output directory (and check it takes files). */
static bool prepare_out(struct drill *d, char *buf, size_t len)
{
	char probe[PATH_MAX];
	FILE *f;

	if (!d->out_dir) {
		time_t t = time(NULL);
		struct tm tm;

		localtime_r(&t, &tm);
		strftime(buf, len, "drill-%Y%m%d-%H%M%S", &tm);
		d->out_dir = buf;
	}
	snprintf(probe, sizeof(probe), "%s", d->out_dir); /* its parents first, as mkdir -p */
	for (char *sl = strchr(probe + 1, '/'); sl; sl = strchr(sl + 1, '/')) {
		*sl = '\0';
		(void)mkdir(probe, 0755); /* a parent that cannot be made fails below */
		*sl = '/';
	}
	if (mkdir(d->out_dir, 0755) < 0 && errno != EEXIST) {
		fail("cannot create the output directory %s: %s", d->out_dir, strerror(errno));
		return false;
	}
	snprintf(probe, sizeof(probe), "%s/.drill-write-test", d->out_dir);
	f = fopen(probe, "w");
	if (!f) {
		fail("cannot write in the output directory %s: %s", d->out_dir, strerror(errno));
		return false;
	}
	fclose(f);
	unlink(probe);
	return true;
}

/* Wait until every guest answered the client. */
static bool guests_answer(struct drill *d)
{
	int64_t end = drill_now_us() + (int64_t)ANSWER_WAIT_S * 1000000;

	for (size_t i = 0; i < d->nguests; i++) {
		while (!atomic_load(&d->guests[i].answered) && drill_now_us() < end &&
		       !interrupted) {
			struct timespec ts = {0, 20 * 1000000L};

			nanosleep(&ts, NULL);
		}
		if (interrupted)
			return false;
		if (!atomic_load(&d->guests[i].answered)) {
			fail("guest %s at %s does not answer the probe (UDP port 7777) within %d "
			     "s: is "
			     "this client on the guests' network, and the address right?",
			     d->guests[i].name, d->guests[i].addr_text, ANSWER_WAIT_S);
			return false;
		}
	}
	return true;
}

static bool parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v < lo || v > hi)
		return false;
	*out = (unsigned)v;
	return true;
}

static bool add_guest(struct drill *d, const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct drill_guest *g;

	if (!eq || eq == arg || (size_t)(eq - arg) >= DRILL_NAME_MAX) {
		fail("bad --guest '%s': give NAME=ADDR (an IPv4 address)", arg);
		return false;
	}
	if (d->nguests == DRILL_MAX_GUESTS) {
		fail("at most %d guests in one drill", DRILL_MAX_GUESTS);
		return false;
	}
	g = &d->guests[d->nguests];
	memset(g, 0, sizeof(*g));
	g->fd = -1;
	snprintf(g->name, sizeof(g->name), "%.*s", (int)(eq - arg), arg);
	snprintf(g->addr_text, sizeof(g->addr_text), "%s", eq + 1);
	g->addr.sin_family = AF_INET;
	g->addr.sin_port = htons(7777);
	if (inet_pton(AF_INET, eq + 1, &g->addr.sin_addr) != 1) {
		fail("bad address in --guest '%s': give an IPv4 address", arg);
		return false;
	}
	for (size_t i = 0; i < d->nguests; i++) {
		if (!strcmp(d->guests[i].name, g->name)) {
			fail("guest %s is given twice", g->name);
			return false;
		}
	}
	d->nguests++;
	return true;
}

static int parse_options(struct drill *d, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"node", required_argument, NULL, 'n'},
	    {"guest", required_argument, NULL, 'g'},
	    {"mode", required_argument, NULL, 'm'},
	    {"rate", required_argument, NULL, 'r'},
	    {"http-rate", required_argument, NULL, 'H'},
	    {"http-timeout", required_argument, NULL, 'T'},
	    {"before", required_argument, NULL, 'b'},
	    {"after", required_argument, NULL, 'a'},
	    {"timeout", required_argument, NULL, 't'},
	    {"out", required_argument, NULL, 'o'},
	    {"json", no_argument, NULL, 'j'},
	    {"check", no_argument, NULL, 'c'},
	    {"httperf", no_argument, NULL, 'P'},
	    {"source", required_argument, NULL, 'S'},
	    {"socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	char *end;

	d->nmodes = 1;
	d->modes[0] = DRILL_MIGRATE;
	d->rate_hz = 100;
	d->http_rate = 5;
	d->http_timeout_ms = 3000;
	d->before_s = d->after_s = 5;
	d->timeout_s = 300;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			d->node = optarg;
			break;
		case 'g':
			if (!add_guest(d, optarg))
				return 2;
			break;
		case 'm':
			if (!strcmp(optarg, "migrate")) {
				d->modes[0] = DRILL_MIGRATE;
			} else if (!strcmp(optarg, "stopstart")) {
				d->modes[0] = DRILL_STOPSTART;
			} else if (!strcmp(optarg, "both")) {
				d->modes[0] = DRILL_MIGRATE;
				d->modes[1] = DRILL_STOPSTART;
				d->nmodes = 2;
				break;
			} else {
				fail("bad --mode '%s': migrate, stopstart or both", optarg);
				return 2;
			}
			d->nmodes = 1;
			break;
		case 'r':
			if (!parse_uint(optarg, 1, 1000, &d->rate_hz)) {
				fail("bad --rate '%s': 1 to 1000 probes per second", optarg);
				return 2;
			}
			break;
		case 'H':
			d->http_rate = strtod(optarg, &end);
			if (*end || end == optarg || !(d->http_rate >= 0 && d->http_rate <= 1000)) {
				fail("bad --http-rate '%s': 0 to 1000 connections per second",
				     optarg);
				return 2;
			}
			break;
		case 'T':
			if (!parse_uint(optarg, 10, 600000, &d->http_timeout_ms)) {
				fail("bad --http-timeout '%s': 10 to 600000 ms", optarg);
				return 2;
			}
			break;
		case 'b':
		case 'a':
			if (!parse_uint(optarg, 0, 3600, opt == 'b' ? &d->before_s : &d->after_s)) {
				fail("bad --%s '%s': 0 to 3600 s", opt == 'b' ? "before" : "after",
				     optarg);
				return 2;
			}
			break;
		case 't':
			if (!parse_uint(optarg, 1, 86400, &d->timeout_s)) {
				fail("bad --timeout '%s': 1 to 86400 s", optarg);
				return 2;
			}
			break;
		case 'o':
			d->out_dir = optarg;
			break;
		case 'j':
			d->json = true;
			break;
		case 'c':
			d->check = true;
			break;
		case 'P':
			d->use_httperf = true;
			break;
		case 'S':
			d->source.sin_family = AF_INET;
			if (inet_pton(AF_INET, optarg, &d->source.sin_addr) != 1) {
				fail("bad --source '%s': give a local IPv4 address", optarg);
				return 2;
			}
			d->have_source = true;
			break;
		case 's':
			if (d->nsockets == DRILL_MAX_NODES) {
				fail("at most %d --socket", DRILL_MAX_NODES);
				return 2;
			}
			d->sockets[d->nsockets++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fail("unexpected argument '%s' (see haagent drill --help)", argv[optind]);
		return 2;
	}
	if (!d->node || !d->nguests) {
		fail("give the node to fail (--node) and its guests (--guest NAME=ADDR); see "
		     "haagent "
		     "drill --help");
		return 2;
	}
	if (d->use_httperf && d->have_source) {
		fail("--source and --httperf do not go together: httperf cannot choose its source "
		     "address (route the guests' network through the address instead)");
		return 2;
	}
	if (d->use_httperf && d->http_rate <= 0) {
		fail("--httperf needs an --http-rate above 0");
		return 2;
	}
	if (d->use_httperf && !drill_httperf_available()) {
		fail("httperf not found on PATH: install Debian's httperf, or drop --httperf (the "
		     "built-in client sends the same load)");
		return 1;
	}
	if (!d->nsockets)
		d->sockets[d->nsockets++] =
		    getenv("HAAGENT_SOCKET") ? getenv("HAAGENT_SOCKET") : DEFAULT_SOCKET;
	d->interval_ms = 1000 / d->rate_hz ? 1000 / d->rate_hz : 1;
	return -1;
}

static void free_drill(struct drill *d)
{
	for (size_t i = 0; i < d->nguests; i++) {
		free(d->guests[i].probes);
		free(d->guests[i].http);
	}
	free(d->cpu);
	free(d);
}

int ha_drill_main(int argc, char **argv)
{
	struct drill *d = calloc(1, sizeof(*d));
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: sleeps end */
	char outbuf[64];
	bool ok = true, check;
	int rc;

	if (!d) {
		fail("out of memory");
		return 1;
	}
	rc = parse_options(d, argc, argv);
	if (rc >= 0) {
		free_drill(d);
		return rc;
	}
	if (!prepare_out(d, outbuf, sizeof(outbuf)) || !preflight(d)) {
		free_drill(d);
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = drill_load_start(d);
	if (rc < 0) {
		char addr[INET_ADDRSTRLEN] = "?";

		if (d->have_source)
			inet_ntop(AF_INET, &d->source.sin_addr, addr, sizeof(addr));
		fail("cannot start the client%s%s: %s", d->have_source ? " from " : "",
		     d->have_source ? addr : "", strerror(-rc));
		drill_load_stop(d);
		free_drill(d);
		return 1;
	}
	ok = guests_answer(d);
	for (size_t m = 0; ok && m < d->nmodes && !interrupted; m++) {
		d->runs[m].mode = d->modes[m];
		ok = run_mode(d, &d->runs[m]);
	}
	progress_end();
	drill_load_stop(d);
	if (d->use_httperf)
		drill_httperf_stop(d, 0, -1); /* those of a mode that did not finish */
	if (interrupted) {
		/* leave the cluster in service: the guests stay where they run now */
		bool was_marked = d->marked;

		if (was_marked)
			clear_node(d);
		fail("interrupted; node %s %s, its guests left where they run (haagent ctl guests)",
		     d->node, was_marked ? "cleared" : "untouched");
		free_drill(d);
		return 130;
	}
	if (d->marked)
		clear_node(d);
	rc = d->runs[0].complete ? drill_report(d) : 0;
	check = d->check;
	free_drill(d);
	if (rc < 0)
		return 1;
	return !ok || (check && rc > 0) ? 1 : 0;
}
