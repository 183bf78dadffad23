/*
 * drill.h - "haagent drill": a controlled-failure drill on a running cluster.
 *
 * The drill empties one node the way a failure would (haagent's live evacuation, or the
 * classic stop/start of Heartbeat's init.d scripts) while a client probes every guest of the
 * node at a fixed rate (the UDP probe service of xl-ext/core/guestproto.h) and sends it HTTP
 * requests at a fixed rate (each one a new connection, as httperf does), and samples every
 * node's CPU through its agent's "status". It reports what the client saw per guest and
 * phase (before the mark, while the node empties, after), next to what the migrations cost.
 *
 * drill.c runs the drill (options, the agents, the phases, the progress line); drill_load.c
 * is the client (a probe thread per guest, one HTTP thread; drill_httperf.c runs httperf
 * instead of the HTTP thread with --httperf); drill_report.c turns the samples
 * into the report (text table, JSON, raw logs, gnuplot PNG and SVG).
 */
#ifndef XLEXT_HAAGENT_DRILL_H
#define XLEXT_HAAGENT_DRILL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DRILL_MAX_GUESTS 32
#define DRILL_MAX_HOSTS  16 /* hosts one guest may answer from in a drill */
#define DRILL_MAX_NODES  32
#define DRILL_MAX_MODES  2
#define DRILL_NAME_MAX   64

enum drill_mode { DRILL_MIGRATE = 0, DRILL_STOPSTART = 1 };
enum drill_phase { PH_BEFORE = 0, PH_DURING = 1, PH_AFTER = 2, PH_COUNT = 3 };

/* One probe: when it was sent, its round trip (-1: never answered), who answered. */
struct drill_probe {
	int64_t sent_us; /* CLOCK_REALTIME */
	int32_t rtt_us;
	uint8_t host; /* index in the guest's hosts[] */
	uint64_t boot_id;
	uint64_t counter;
};

/* How an HTTP request ended. */
enum drill_http_result {
	DH_OK = 0,
	DH_TIMEOUT,  /* no complete answer within the timeout */
	DH_REFUSED,  /* connection refused */
	DH_RESET,    /* reset, or closed before an answer */
	DH_BADREPLY, /* an answer, but not "200" */
	DH_OVERLOAD, /* the client had too many requests open to this guest */
	DH_OTHER,
	DH_RESULT_COUNT
};

struct drill_http {
	int64_t start_us; /* CLOCK_REALTIME */
	int32_t lat_us;   /* connect to the answer's end; the time waited for a failure */
	uint8_t result;   /* enum drill_http_result */
};

struct drill_guest {
	char name[DRILL_NAME_MAX];
	char addr_text[48];
	struct sockaddr_in addr;

	/* written by the guest's probe thread; read by others only after it ended */
	pthread_t thread;
	bool thread_started;
	int fd;
	struct drill_probe *probes;
	size_t nprobes, probes_cap;
	char hosts[DRILL_MAX_HOSTS][32];
	unsigned nhosts;
	atomic_uint sent, answered; /* for the progress line */
	atomic_int last_host;       /* index of the host that answered last, -1 before */

	/* written by the HTTP thread */
	struct drill_http *http;
	size_t nhttp, http_cap;
};

/* One sample of a node's CPU time, through its agent's status. */
struct drill_cpu {
	unsigned node; /* index in drill.nodes */
	int64_t t_us;  /* the drill's CLOCK_REALTIME when sampled */
	int64_t at_ms; /* the agent's clock */
	double guests_s, agent_s;
};

/* What one httperf reported for one guest and phase (--httperf). */
struct drill_httperf {
	bool have;
	unsigned requests, replies, errors, timeouts, refused, reset;
	double duration_s, p50_ms, p99_ms, max_ms; /* connection time */
};

/* What one guest did in one mode. */
struct drill_move {
	char from[DRILL_NAME_MAX], to[DRILL_NAME_MAX];
	char how[16];       /* "migrated", "restarted", "" (not moved) */
	double downtime_ms; /* from the migration's report; < 0 when not known */
	double total_ms;
	double stop_ms, start_ms; /* a cold move: the owner's stop, the target's create */
};

struct drill_run {
	enum drill_mode mode;
	bool ran, complete;
	int64_t t_start_us, t_mark_us, t_empty_us, t_end_us; /* CLOCK_REALTIME */
	struct drill_move moves[DRILL_MAX_GUESTS];
};

struct drill {
	/* options */
	const char *node;
	const char *sockets[DRILL_MAX_NODES]; /* [0] commands; every one is sampled */
	size_t nsockets;
	enum drill_mode modes[DRILL_MAX_MODES];
	size_t nmodes;
	unsigned rate_hz, interval_ms;
	double http_rate;
	unsigned http_timeout_ms;
	unsigned before_s, after_s, timeout_s;
	const char *out_dir;
	bool have_source; /* --source: the client's probes and connections leave from it */
	struct sockaddr_in source;
	bool json, check;
	bool use_httperf; /* the HTTP load by httperf processes, not the built-in client */

	struct drill_guest guests[DRILL_MAX_GUESTS];
	size_t nguests;

	char nodes[DRILL_MAX_NODES][DRILL_NAME_MAX]; /* sampled agents' node names */
	size_t nnodes;
	struct drill_cpu *cpu;
	size_t ncpu, cpu_cap;

	struct drill_run runs[DRILL_MAX_MODES];

	bool marked; /* the node is marked by the drill and not cleared yet */

	/* the client */
	pid_t httperf_pid[DRILL_MAX_GUESTS];
	struct drill_httperf httperf[DRILL_MAX_MODES][DRILL_MAX_GUESTS][PH_COUNT];
	atomic_bool stop;
	pthread_t http_thread;
	bool http_started;
};

int64_t drill_now_us(void);

/* "haagent drill ARGS": argv[0] is "drill". Returns the exit status. */
int ha_drill_main(int argc, char **argv);

/* drill_load.c: start the probe threads and the HTTP thread (-errno when one cannot start);
 * stop them (drill.stop) and join. */
int drill_load_start(struct drill *d);
void drill_load_stop(struct drill *d);

/* drill_httperf.c: one httperf per guest for phase ph of run; stop them (SIGINT) and parse
 * their statistics (ph < 0: only stop). */
bool drill_httperf_available(void);
int drill_httperf_start(struct drill *d, size_t run, int ph);
void drill_httperf_stop(struct drill *d, size_t run, int ph);
/* Parse the statistics httperf printed (-v -v) into r (r->have false when there are none):
 * the connection time's median and max, its p99 from the lifetime histogram (1 ms bins). */
void drill_httperf_parse(const char *path, struct drill_httperf *r);

/* drill_report.c */
const char *drill_mode_name(enum drill_mode m);
/* Write the raw logs, report.json, report.txt and the plots into d->out_dir; print the table
 * (or the JSON with --json). Returns the number of failed checks (--check), < 0 on an error
 * writing the report. */
int drill_report(struct drill *d);

#endif
