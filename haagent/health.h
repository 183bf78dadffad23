/*
 * health.h - the health-check hook: a configured command run periodically with a timeout;
 * after N consecutive failures the node is marked failing (once per streak of failures).
 *
 * The daemon calls ha_health_poll() from a timer; it starts the command through /bin/sh
 * when due, reaps it without blocking, and kills it (the whole process group) when it
 * overruns its timeout. The counting itself (ha_health_record) is pure.
 */
#ifndef XLEXT_HAAGENT_HEALTH_H
#define XLEXT_HAAGENT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ha_health_check {
	char command[256];
	int64_t interval_ms, timeout_ms;
	unsigned threshold;
	pid_t pid;          /* running check, 0 if none */
	int64_t started_ms; /* when it was started */
	int64_t next_ms;    /* when the next one is due */
	unsigned failures;  /* consecutive */
	bool tripped;       /* the node was marked for this streak */
	char last[128];     /* what the last failure was */
};

/* Set up a check (command "" disables it). */
void ha_health_init(struct ha_health_check *h, const char *command, int64_t interval_ms,
                    int64_t timeout_ms, unsigned threshold);

/*
 * Count one result (what: why it failed, ignored when ok). Returns true exactly when this
 * failure reaches the threshold for the first time in the streak; a success ends the streak.
 */
bool ha_health_record(struct ha_health_check *h, bool ok, const char *what);

/*
 * Drive the check at time now_ms. Returns 1 when the node must be marked failing now (why
 * says why: "health check '<cmd>' failed 3 times in a row, last: exit status 1"), 0
 * otherwise, or a negative error code when the command could not be started (counted as a
 * failure too).
 */
int ha_health_poll(struct ha_health_check *h, int64_t now_ms, char *why, size_t why_len);

/* Kill a running check and reap it. */
void ha_health_stop(struct ha_health_check *h);

#endif
