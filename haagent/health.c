/*
 * health.c - the health-check hook (see health.h).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "haagent/health.h"

extern char **environ;

void ha_health_init(struct ha_health_check *h, const char *command, int64_t interval_ms,
                    int64_t timeout_ms, unsigned threshold)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->command, sizeof(h->command), "%s", command ? command : "");
	h->interval_ms = interval_ms;
	h->timeout_ms = timeout_ms;
	h->threshold = threshold ? threshold : 1;
}

bool ha_health_record(struct ha_health_check *h, bool ok, const char *what)
{
	if (ok) {
		if (h->failures)
			log_info("health check '%s' passes again after %u failure(s)", h->command,
			         h->failures);
		h->failures = 0;
		h->tripped = false;
		return false;
	}
	h->failures++;
	snprintf(h->last, sizeof(h->last), "%s", what ? what : "failed");
	log_warn("health check '%s' failed (%u of %u): %s", h->command, h->failures, h->threshold,
	         h->last);
	if (h->failures < h->threshold || h->tripped)
		return false;
	h->tripped = true;
	return true;
}

static int start(struct ha_health_check *h, int64_t now_ms)
{
	char *argv[] = {"/bin/sh", "-c", h->command, NULL};
	posix_spawnattr_t attr;
	int rc;

	sigset_t none;

	sigemptyset(&none);
	posix_spawnattr_init(&attr);
	/* Its own process group, so a timeout kills what it started too; none of the signals
	 * the daemon blocks for its signalfd stay blocked in it. */
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	rc = posix_spawn(&h->pid, "/bin/sh", NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		h->pid = 0;
		return err_from_errno(rc);
	}
	h->started_ms = now_ms;
	return 0;
}

void ha_health_stop(struct ha_health_check *h)
{
	if (h->pid <= 0)
		return;
	kill(-h->pid, SIGKILL);
	while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
		;
	h->pid = 0;
}

/* Reap or time out the running check; *done_r when a result was recorded. */
static bool finish(struct ha_health_check *h, int64_t now_ms, bool *done_r)
{
	char what[96];
	int status;
	pid_t r;

	*done_r = false;
	r = waitpid(h->pid, &status, WNOHANG);
	if (r == 0 && now_ms - h->started_ms < h->timeout_ms)
		return false;
	if (r == 0) {
		ha_health_stop(h);
		snprintf(what, sizeof(what), "timed out after %lld ms", (long long)h->timeout_ms);
	} else if (r < 0) {
		h->pid = 0;
		snprintf(what, sizeof(what), "lost track of the check: %s", strerror(errno));
	} else {
		h->pid = 0;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			what[0] = '\0';
		else if (WIFEXITED(status))
			snprintf(what, sizeof(what), "exit status %d", WEXITSTATUS(status));
		else
			snprintf(what, sizeof(what), "killed by signal %d", WTERMSIG(status));
	}
	*done_r = true;
	return ha_health_record(h, what[0] == '\0', what);
}

int ha_health_poll(struct ha_health_check *h, int64_t now_ms, char *why, size_t why_len)
{
	bool done, trip = false;
	int rc;

	if (!h->command[0])
		return 0;
	if (h->pid > 0) {
		trip = finish(h, now_ms, &done);
		if (done)
			h->next_ms = now_ms + h->interval_ms;
	} else if (now_ms >= h->next_ms) {
		rc = start(h, now_ms);
		if (rc < 0) {
			h->next_ms = now_ms + h->interval_ms;
			trip = ha_health_record(h, false, "cannot start /bin/sh");
			if (!trip)
				return rc;
		}
	}
	if (!trip)
		return 0;
	snprintf(why, why_len, "health check '%.60s' failed %u times in a row, last: %s",
	         h->command, h->failures, h->last);
	return 1;
}
