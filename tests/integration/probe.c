/*
 * probe.c - a client of a simulated guest's UDP service, as an operator's monitoring would be.
 *
 *   probe <ip> <duration_ms> [interval_ms [gap_log_ms]]
 *
 * Sends a numbered probe every interval (default 10 ms) for duration and prints one summary
 * line of key=value pairs: probes sent and answered, the longest run of unanswered probes and
 * the longest gap between replies, the longest gap across a change of answering host (the
 * switch-over a client sees) and the longest other gap, whether the guest's counter ever went
 * backwards or its boot id changed (a restart), and the sequence of hosts that answered.
 * With gap_log_ms, every gap between replies of at least that many ms is also printed on
 * stderr with the wall-clock time (CLOCK_REALTIME, s) of the reply that ended it, to line it
 * up with other logs, and that reply's round trip (long: the reply was late; short: the probes
 * before it went unanswered). SIGTERM or SIGINT ends the run early, with the same summary (for
 * runs whose length is not known in advance).
 *
 * Replies are timed by the kernel's arrival stamp (SO_TIMESTAMPNS), and the probe asks for the
 * lowest real-time priority where it may: it stands for a client on another machine, whose
 * view must not include its own wait for a CPU of a busy test host.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "xl-ext/core/guestproto.h"

static volatile sig_atomic_t probe_stop;

static void on_stop(int sig)
{
	(void)sig;
	probe_stop = 1;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Receive one datagram into buf; *at_us is when the kernel received it (or now). */
static ssize_t recv_stamped(int fd, void *buf, size_t len, int64_t *at_us)
{
	char control[CMSG_SPACE(sizeof(struct timespec))];
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = control,
	                     .msg_controllen = sizeof(control)};
	ssize_t n = recvmsg(fd, &msg, 0);

	*at_us = now_us();
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;

			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			*at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(GUEST_PROBE_PORT)};
	int64_t start, end, next, last_reply = 0, max_gap = 0, first_reply = 0;
	int64_t switch_gap = 0, other_gap = 0, gap_log_us = 0;
	uint32_t seq = 0, answered = 0, max_lost_run = 0, last_seq_answered = 0;
	uint64_t last_counter = 0, boot_id = 0;
	int fd, backwards = 0, reboots = 0, interval_ms;
	char hosts[512] = "", last_host[28] = "";
	static uint8_t *seen;
	static int64_t *sent_at;

	if (argc < 3) {
		fprintf(stderr, "usage: probe <ip> <duration_ms> [interval_ms]\n");
		return 2;
	}
	if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
		fprintf(stderr, "probe: bad address %s\n", argv[1]);
		return 2;
	}
	interval_ms = argc > 3 ? atoi(argv[3]) : 10;
	gap_log_us = argc > 4 ? (int64_t)atoi(argv[4]) * 1000 : 0;
	if (interval_ms < 1 || atoi(argv[2]) < 1 || atoi(argv[2]) > 3600000) {
		fprintf(stderr, "probe: bad duration or interval\n");
		return 2;
	}
	seen = calloc((size_t)atoi(argv[2]) / (size_t)interval_ms + 2, 1);
	sent_at = calloc((size_t)atoi(argv[2]) / (size_t)interval_ms + 2, sizeof(*sent_at));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || !seen || !sent_at)
		return 1;
	{
		struct sched_param sp = {.sched_priority = 1};
		int one = 1;

		sched_setscheduler(0, SCHED_FIFO, &sp); /* best effort: see above */
		setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	}
	{
		struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: poll returns */

		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	start = now_us();
	end = start + (int64_t)atoi(argv[2]) * 1000;
	next = start;
	while (now_us() < end && !probe_stop) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t now = now_us();
		int wait = next > now ? (int)((next - now) / 1000) : 0;

		if (now >= next) {
			char req[8];

			memcpy(req, GUEST_PROBE_MAGIC, 4);
			memcpy(req + 4, &seq, 4);
			sent_at[seq] = now;
			sendto(fd, req, sizeof(req), 0, (struct sockaddr *)&to, sizeof(to));
			seq++;
			next += (int64_t)interval_ms * 1000;
			continue;
		}
		if (poll(&p, 1, wait) == 1) {
			struct guest_probe_reply r;
			ssize_t n = recv_stamped(fd, &r, sizeof(r), &now);

			if (n != (ssize_t)sizeof(r) ||
			    memcmp(r.magic, GUEST_PROBE_REPLY_MAGIC, 4) || r.seq >= seq ||
			    seen[r.seq])
				continue;
			seen[r.seq] = 1;
			answered++;
			if (!first_reply)
				first_reply = now;
			r.host[sizeof(r.host) - 1] = '\0';
			if (last_reply) {
				int64_t gap = now - last_reply;
				bool moved = last_host[0] && strcmp(r.host, last_host);

				if (gap > max_gap)
					max_gap = gap;
				if (moved && gap > switch_gap)
					switch_gap = gap;
				if (!moved && gap > other_gap)
					other_gap = gap;
				if (gap_log_us && gap >= gap_log_us)
					fprintf(
					    stderr,
					    "probe: gap %.1f ms ending at %.3f, probe %u answered "
					    "after %.1f ms%s%s%s\n",
					    (double)gap / 1000.0, (double)now / 1e6, r.seq,
					    (double)(now - sent_at[r.seq]) / 1000.0,
					    moved ? " (switch-over from " : "",
					    moved ? last_host : "", moved ? ")" : "");
			}
			last_reply = now;
			if (r.seq > last_seq_answered &&
			    r.seq - last_seq_answered - 1 > max_lost_run && answered > 1)
				max_lost_run = r.seq - last_seq_answered - 1;
			if (r.seq > last_seq_answered)
				last_seq_answered = r.seq;
			if (boot_id && r.boot_id != boot_id)
				reboots++;
			boot_id = r.boot_id;
			if (r.counter < last_counter)
				backwards++;
			last_counter = r.counter;
			if (strcmp(r.host, last_host)) {
				snprintf(last_host, sizeof(last_host), "%s", r.host);
				if (strlen(hosts) + strlen(r.host) + 2 < sizeof(hosts)) {
					if (hosts[0])
						strcat(hosts, ",");
					strcat(hosts, r.host);
				}
			}
		}
	}
	printf("sent=%u answered=%u lost=%u max_lost_run=%u max_gap_ms=%.1f switch_gap_ms=%.1f "
	       "max_other_gap_ms=%.1f counter_backwards=%d reboots=%d last_counter=%llu hosts=%s\n",
	       seq, answered, seq - answered, max_lost_run, (double)max_gap / 1000.0,
	       (double)switch_gap / 1000.0, (double)other_gap / 1000.0, backwards, reboots,
	       (unsigned long long)last_counter, hosts[0] ? hosts : "none");
	close(fd);
	free(seen);
	free(sent_at);
	return 0;
}
