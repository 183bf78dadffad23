/*
 * drill_httperf.c - the drill's HTTP load by httperf (--httperf), the tool of the published
 * experiment, instead of the built-in client.
 *
 * One httperf per guest and phase: started when the phase starts (--rate R, one request per
 * connection, --timeout), ended by SIGINT when it ends (httperf then prints its statistics
 * for what it did so far). Its output is kept in the output directory and parsed: requests,
 * replies, errors by kind, the connection time's median and max, and the p99 from its
 * connection lifetime histogram (-v -v). httperf 0.9 spins a whole CPU per process whatever
 * the rate: run it from a client machine with a core per guest, or its load distorts the
 * figures of the cluster it measures.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "haagent/drill.h"

static const char *phase_file[PH_COUNT] = {"before", "during", "after"};

static void out_path(const struct drill *d, size_t run, int ph, size_t g, char *buf, size_t len)
{
	snprintf(buf, len, "%s/httperf-%s-%s-%s.txt", d->out_dir,
	         drill_mode_name(d->runs[run].mode), phase_file[ph], d->guests[g].name);
}

bool drill_httperf_available(void)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t n = strcspn(p, ":");

		snprintf(buf, sizeof(buf), "%.*s/httperf", (int)n, p);
		if (access(buf, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

int drill_httperf_start(struct drill *d, size_t run, int ph)
{
	char rate[32], timeout[32], path[PATH_MAX];

	snprintf(rate, sizeof(rate), "--rate=%g", d->http_rate);
	snprintf(timeout, sizeof(timeout), "--timeout=%g", d->http_timeout_ms / 1000.0);
	for (size_t g = 0; g < d->nguests; g++) {
		char server[64];
		pid_t pid;
		int fd;

		out_path(d, run, ph, g, path, sizeof(path));
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		snprintf(server, sizeof(server), "--server=%s", d->guests[g].addr_text);
		pid = fork();
		if (pid == 0) {
			int null = open("/dev/null", O_RDONLY);
			sigset_t none;

			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			signal(SIGINT, SIG_DFL); /* httperf installs its own handler */
			if (null >= 0)
				dup2(null, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			execlp("httperf", "httperf", "-v", "-v", server, "--port=80", "--uri=/",
			       rate, "--num-conns=100000000", "--num-calls=1", timeout,
			       (char *)NULL);
			_exit(127);
		}
		close(fd);
		if (pid < 0)
			return -errno;
		d->httperf_pid[g] = pid;
	}
	return 0;
}

void drill_httperf_parse(const char *path, struct drill_httperf *r)
{
	FILE *f = fopen(path, "r");
	char line[512];
	bool hist = false;
	double bins[4096];
	unsigned counts[4096], nb = 0, total = 0;

	memset(r, 0, sizeof(*r));
	r->p50_ms = r->p99_ms = r->max_ms = NAN;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned a, b, c, e, x;
		double t, v1, v2, v3, v4;

		if (!strncmp(line, "Connection lifetime histogram", 29)) {
			hist = true;
			continue;
		}
		if (hist) {
			if (sscanf(line, " %lf %u", &t, &a) == 2 && nb < 4096) {
				bins[nb] = t;
				counts[nb++] = a;
				total += a;
			} else if (line[0] == '\n') {
				hist = false;
			}
			continue;
		}
		if (sscanf(line, "Total: connections %u requests %u replies %u test-duration %lf",
		           &a, &b, &c, &t) == 4) {
			r->have = true;
			r->requests = b;
			r->replies = c;
			r->duration_s = t;
		} else if (sscanf(line,
		                  "Connection time [ms]: min %lf avg %lf max %lf median %lf stddev",
		                  &v1, &v2, &v3, &v4) == 4) {
			r->max_ms = v3;
			r->p50_ms = v4;
		} else if (sscanf(line,
		                  "Errors: total %u client-timo %u socket-timo %u connrefused %u "
		                  "connreset %u",
		                  &a, &b, &c, &e, &x) == 5) {
			r->errors = a;
			r->timeouts = b + c;
			r->refused = e;
			r->reset = x;
		}
	}
	fclose(f);
	/* p99: the bin where the cumulated count reaches 99 % (1 ms bins, upper edge) */
	for (unsigned i = 0, cum = 0; i < nb && total; i++) {
		cum += counts[i];
		if ((double)cum >= 0.99 * total) {
			r->p99_ms = bins[i] + 0.5;
			break;
		}
	}
	if (isfinite(r->p99_ms) && isfinite(r->max_ms) && r->p99_ms > r->max_ms)
		r->p99_ms = r->max_ms;
}

void drill_httperf_stop(struct drill *d, size_t run, int ph)
{
	char path[PATH_MAX];

	for (size_t g = 0; g < d->nguests; g++) {
		if (d->httperf_pid[g] > 0) {
			kill(d->httperf_pid[g], SIGINT);
			while (waitpid(d->httperf_pid[g], NULL, 0) < 0 && errno == EINTR)
				;
		}
		d->httperf_pid[g] = 0;
		if (ph >= 0) {
			out_path(d, run, ph, g, path, sizeof(path));
			drill_httperf_parse(path, &d->httperf[run][g][ph]);
		}
	}
}
