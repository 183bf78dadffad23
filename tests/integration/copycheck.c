/*
 * copycheck.c - the never-two-copies checker of the integration tests, without a fork.
 *
 *   copycheck [-a] [-i MS] [-o FILE] [-g PREFIX] HOST=SIMROOT[:SKIPFILE] ...
 *
 * Every MS milliseconds (default 5) it reads each sim host's domain files (SIMROOT/dom/N/
 * info.json, which a sim domain rewrites atomically before it answers a pause, and right
 * after its vCPUs start) and groups the copies of each guest by name, "--incoming" and
 * "--migratedaway" stripped. A guest whose copy runs on two hosts in one pass is read again
 * at once, those hosts in reverse order: a guest that moved between the two reads (paused on
 * A before it runs on B) shows paused on A the second time, so only a real overlap is seen
 * twice. Each overlap is one line on FILE (and stderr). Copies whose process is gone (or a
 * zombie) are not counted; a host whose SKIPFILE exists (a test killed it) is not read. Only
 * guests whose name starts with PREFIX are watched (default all). With -a every copy counts,
 * paused or not (a cold move must destroy the guest before it creates it elsewhere).
 *
 * On SIGTERM or SIGINT it prints one summary line and exits 0 if no guest ever ran twice:
 *   copycheck: samples=N overlaps=K max_running=R max_copies=C paused_beside_running=P
 * (max_copies counts paused copies too: a migration's incoming or migrated-away copy).
 * Exit 1 after an overlap, 2 on bad usage.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xl-ext/sim/sim.h"

#define MAX_HOSTS  8
#define MAX_COPIES 256
#define NAME_MAX_  72

struct host {
	const char *name, *root, *skip;
};

struct copy {
	char guest[NAME_MAX_]; /* name without the migration suffixes */
	char name[NAME_MAX_];
	char state[16];
	char path[600];
	int host;
	long pid;
};

static volatile sig_atomic_t stop;
static struct host hosts[MAX_HOSTS];
static int nhosts;
static const char *prefix = "";
static bool any_state; /* -a */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The string value of "key" in a flat JSON object written by the sim. */
static bool json_str(const char *json, const char *key, char *out, size_t len)
{
	char pat[32];
	const char *p, *end;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(json, pat);
	if (!p)
		return false;
	p += strlen(pat);
	end = strchr(p, '"');
	if (!end || (size_t)(end - p) >= len)
		return false;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

/* Read one info.json into c (name, state, pid). False when it is gone or not whole. */
static bool read_info(const char *path, struct copy *c)
{
	char buf[1024], pid[24] = "";
	const char *p;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	if (!json_str(buf, "name", c->name, sizeof(c->name)) ||
	    !json_str(buf, "state", c->state, sizeof(c->state)))
		return false;
	p = strstr(buf, "\"pid\":");
	if (p)
		snprintf(pid, sizeof(pid), "%s", p + 6);
	c->pid = strtol(pid, NULL, 10);
	return true;
}

/*
 * Is the copy's process alive? A zombie is not (sim_pid_running): a domain killed by a test's
 * fence stays one until its parent reaps it (never, where the sandbox's init does not reap),
 * and its info.json still says what it was doing when it died.
 */
static bool alive(const struct copy *c)
{
	return c->pid > 0 && sim_pid_running((pid_t)c->pid);
}

static bool running(const struct copy *c)
{
	return (any_state || !strcmp(c->state, "running")) && alive(c);
}

static void base_name(const char *name, char *out, size_t len)
{
	static const char *const sfx[] = {"--incoming", "--migratedaway"};
	size_t n = strlen(name);

	snprintf(out, len, "%s", name);
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		size_t s = strlen(sfx[i]);

		if (n > s && !strcmp(name + n - s, sfx[i]))
			out[n - s] = '\0';
	}
}

/* One pass over every host: the copies of watched guests. */
static int scan(struct copy *copies)
{
	int n = 0;

	for (int h = 0; h < nhosts; h++) {
		char dir[300];
		struct dirent *e;
		DIR *d;

		if (hosts[h].skip && access(hosts[h].skip, F_OK) == 0)
			continue;
		snprintf(dir, sizeof(dir), "%s/dom", hosts[h].root);
		d = opendir(dir);
		if (!d)
			continue;
		while ((e = readdir(d)) && n < MAX_COPIES) {
			struct copy *c = &copies[n];

			if (e->d_name[0] == '.')
				continue;
			snprintf(c->path, sizeof(c->path), "%s/%s/info.json", dir, e->d_name);
			if (!read_info(c->path, c))
				continue;
			base_name(c->name, c->guest, sizeof(c->guest));
			if (strncmp(c->guest, prefix, strlen(prefix)))
				continue;
			c->host = h;
			n++;
		}
		closedir(d);
	}
	return n;
}

/*
 * A guest seen running on two hosts in one pass: read both again, the later host first. A
 * guest that moved between the reads is paused on the first host by now.
 */
static bool confirmed(const struct copy *first, const struct copy *second, double t0, FILE *out,
                      unsigned long seen)
{
	struct copy a = *first, b = *second;

	if (!read_info(b.path, &b) || !read_info(a.path, &a) || !running(&b) || !running(&a) ||
	    strcmp(a.name, first->name) || strcmp(b.name, second->name))
		return false;
	if (seen >= 10 && seen % 100)
		return true; /* counted; the first ten and every hundredth are printed */
	fprintf(stderr,
	        "copycheck: %.0f ms: %s runs on %s (as %s, pid %ld) and on %s (as %s, "
	        "pid %ld)\n",
	        now_ms() - t0, first->guest, hosts[a.host].name, a.name, a.pid, hosts[b.host].name,
	        b.name, b.pid);
	if (out) {
		fprintf(out, "%s running on %s and %s at %.0f ms\n", first->guest,
		        hosts[a.host].name, hosts[b.host].name, now_ms() - t0);
		fflush(out);
	}
	return true;
}

int main(int argc, char **argv)
{
	static struct copy copies[MAX_COPIES];
	unsigned long samples = 0, overlaps = 0, paused_beside = 0;
	int interval_ms = 5, max_running = 0, max_copies = 0, opt;
	const char *out_path = NULL;
	FILE *out = NULL;
	double t0;

	while ((opt = getopt(argc, argv, "ai:o:g:")) != -1) {
		switch (opt) {
		case 'a':
			any_state = true;
			break;
		case 'i':
			interval_ms = atoi(optarg);
			break;
		case 'o':
			out_path = optarg;
			break;
		case 'g':
			prefix = optarg;
			break;
		default:
			return 2;
		}
	}
	for (int i = optind; i < argc && nhosts < MAX_HOSTS; i++) {
		char *eq = strchr(argv[i], '='), *colon;

		if (!eq || eq == argv[i] || !eq[1]) {
			fprintf(stderr, "copycheck: '%s' is not HOST=SIMROOT[:SKIPFILE]\n",
			        argv[i]);
			return 2;
		}
		*eq = '\0';
		colon = strchr(eq + 1, ':');
		if (colon)
			*colon = '\0';
		hosts[nhosts++] = (struct host){argv[i], eq + 1, colon ? colon + 1 : NULL};
	}
	if (nhosts < 2 || interval_ms < 1 || interval_ms > 1000) {
		fprintf(stderr, "usage: copycheck [-a] [-i MS] [-o FILE] [-g PREFIX] "
		                "HOST=SIMROOT[:SKIPFILE] HOST=SIMROOT[:SKIPFILE]...\n");
		return 2;
	}
	if (out_path && !(out = fopen(out_path, "a"))) {
		fprintf(stderr, "copycheck: cannot open %s: %s\n", out_path, strerror(errno));
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	t0 = now_ms();
	while (!stop) {
		struct timespec ts = {0, (long)interval_ms * 1000000L};
		int n = scan(copies);

		samples++;
		for (int i = 0; i < n; i++) {
			int nrun = 0, ncopies = 0, npaused = 0, first = -1, second = -1;
			bool seen_before = false;

			for (int j = 0; j < i && !seen_before; j++)
				seen_before = !strcmp(copies[j].guest, copies[i].guest);
			if (seen_before)
				continue;
			for (int j = i; j < n; j++) {
				if (strcmp(copies[j].guest, copies[i].guest) || !alive(&copies[j]))
					continue;
				ncopies++;
				if (running(&copies[j])) {
					nrun++;
					if (first < 0)
						first = j;
					else if (second < 0 && copies[j].host != copies[first].host)
						second = j;
				} else {
					npaused++;
				}
			}
			if (ncopies > max_copies)
				max_copies = ncopies;
			if (nrun && npaused)
				paused_beside++;
			if (second >= 0 &&
			    confirmed(&copies[first], &copies[second], t0, out, overlaps)) {
				overlaps++;
				max_running = 2 > max_running ? 2 : max_running;
			} else if (nrun && max_running < 1) {
				max_running = 1;
			}
		}
		nanosleep(&ts, NULL);
	}
	printf("copycheck: samples=%lu overlaps=%lu max_running=%d max_copies=%d "
	       "paused_beside_running=%lu\n",
	       samples, overlaps, max_running, max_copies, paused_beside);
	if (out)
		fclose(out);
	return overlaps ? 1 : 0;
}
