/*
 * probe.c - a client of a simulated guest's UDP service, as an operator's monitoring would be.
 *
 *   probe <ip> <duration_ms> [interval_ms [gap_log_ms [stop_host [replies]]]]
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
 * With stop_host the run also ends once that many replies (default 50) came from stop_host
 * after another host had answered: a test waits for the guest's move, not for a time window,
 * and duration_ms is only the bound. "probe: first reply" on stderr tells a test that the
 * client is running and sees the guest.
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

/* What a run has seen so far. */
struct probe_run {
	uint32_t seq; /* probes sent */
	uint32_t answered, max_lost_run, last_seq_answered;
	int64_t last_reply, max_gap, switch_gap, other_gap, gap_log_us;
	uint64_t last_counter, boot_id;
	int backwards, reboots;
	char hosts[512], last_host[28];
	const char *stop_host; /* end once stop_replies came from it after another host */
	int stop_replies, moved_replies;
	uint8_t *seen;
	int64_t *sent_at;
};

/* Account for the gap a reply (probe seq from host, received at now) ends. */
static void note_gap(struct probe_run *pr, const char *host, uint32_t seq, int64_t now)
{
	int64_t gap = now - pr->last_reply;
	bool moved = pr->last_host[0] && strcmp(host, pr->last_host);

	if (gap > pr->max_gap)
		pr->max_gap = gap;
	if (moved && gap > pr->switch_gap)
		pr->switch_gap = gap;
	if (!moved && gap > pr->other_gap)
		pr->other_gap = gap;
	if (pr->gap_log_us && gap >= pr->gap_log_us)
		fprintf(
		    stderr,
		    "probe: gap %.1f ms ending at %.3f, probe %u answered after %.1f ms%s%s%s\n",
		    (double)gap / 1000.0, (double)now / 1e6, seq,
		    (double)(now - pr->sent_at[seq]) / 1000.0, moved ? " (switch-over from " : "",
		    moved ? pr->last_host : "", moved ? ")" : "");
}

/* A reply: gaps, lost runs, counter, boot id and answering host. */
static void on_reply(struct probe_run *pr, struct guest_probe_reply *r, int64_t now)
{
	if (memcmp(r->magic, GUEST_PROBE_REPLY_MAGIC, 4) || r->seq >= pr->seq || pr->seen[r->seq])
		return;
	pr->seen[r->seq] = 1;
	if (!pr->answered++) {
		fprintf(stderr, "probe: first reply\n");
		fflush(stderr);
	}
	r->host[sizeof(r->host) - 1] = '\0';
	if (pr->last_reply)
		note_gap(pr, r->host, r->seq, now);
	pr->last_reply = now;
	if (r->seq > pr->last_seq_answered &&
	    r->seq - pr->last_seq_answered - 1 > pr->max_lost_run && pr->answered > 1)
		pr->max_lost_run = r->seq - pr->last_seq_answered - 1;
	if (r->seq > pr->last_seq_answered)
		pr->last_seq_answered = r->seq;
	if (pr->boot_id && r->boot_id != pr->boot_id)
		pr->reboots++;
	pr->boot_id = r->boot_id;
	if (r->counter < pr->last_counter)
		pr->backwards++;
	pr->last_counter = r->counter;
	/* replies from stop_host count once another host answered first */
	if (pr->stop_host && !strcmp(r->host, pr->stop_host) && strchr(pr->hosts, ','))
		pr->moved_replies++;
	if (strcmp(r->host, pr->last_host)) {
		snprintf(pr->last_host, sizeof(pr->last_host), "%s", r->host);
		if (strlen(pr->hosts) + strlen(r->host) + 2 < sizeof(pr->hosts)) {
			if (pr->hosts[0])
				strcat(pr->hosts, ",");
			strcat(pr->hosts, r->host);
		}
	}
}

/* Probe every interval until end or a signal; replies are handled between two sends. */
static void run(struct probe_run *pr, int fd, const struct sockaddr_in *to, int64_t end,
                int interval_ms)
{
	int64_t next = now_us();

	while (now_us() < end && !probe_stop &&
	       !(pr->stop_host && pr->moved_replies >= pr->stop_replies)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t now = now_us();
		int wait = next > now ? (int)((next - now) / 1000) : 0;

		if (now >= next) {
			char req[8];

			memcpy(req, GUEST_PROBE_MAGIC, 4);
			memcpy(req + 4, &pr->seq, 4);
			pr->sent_at[pr->seq] = now;
			sendto(fd, req, sizeof(req), 0, (const struct sockaddr *)to, sizeof(*to));
			pr->seq++;
			next += (int64_t)interval_ms * 1000;
			continue;
		}
		if (poll(&p, 1, wait) == 1) {
			struct guest_probe_reply r;

			if (recv_stamped(fd, &r, sizeof(r), &now) == (ssize_t)sizeof(r))
				on_reply(pr, &r, now);
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(GUEST_PROBE_PORT)};
	static struct probe_run pr;
	struct sched_param sp = {.sched_priority = 1};
	struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: poll returns */
	int fd, interval_ms, one = 1;
	size_t slots;

	if (argc < 3) {
		fprintf(stderr, "usage: probe <ip> <duration_ms> [interval_ms [gap_log_ms "
		                "[stop_host [replies]]]]\n");
		return 2;
	}
	if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
		fprintf(stderr, "probe: bad address %s\n", argv[1]);
		return 2;
	}
	interval_ms = argc > 3 ? atoi(argv[3]) : 10;
	pr.gap_log_us = argc > 4 ? (int64_t)atoi(argv[4]) * 1000 : 0;
	if (argc > 5) {
		pr.stop_host = argv[5];
		pr.stop_replies = argc > 6 ? atoi(argv[6]) : 50;
		if (pr.stop_replies < 1) {
			fprintf(stderr, "probe: bad number of replies to wait for\n");
			return 2;
		}
	}
	if (interval_ms < 1 || atoi(argv[2]) < 1 || atoi(argv[2]) > 3600000) {
		fprintf(stderr, "probe: bad duration or interval\n");
		return 2;
	}
	slots = (size_t)atoi(argv[2]) / (size_t)interval_ms + 2;
	pr.seen = calloc(slots, 1);
	pr.sent_at = calloc(slots, sizeof(*pr.sent_at));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || !pr.seen || !pr.sent_at)
		return 1;
	sched_setscheduler(0, SCHED_FIFO, &sp); /* best effort: see above */
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	run(&pr, fd, &to, now_us() + (int64_t)atoi(argv[2]) * 1000, interval_ms);
	printf("sent=%u answered=%u lost=%u max_lost_run=%u max_gap_ms=%.1f switch_gap_ms=%.1f "
	       "max_other_gap_ms=%.1f counter_backwards=%d reboots=%d last_counter=%llu hosts=%s\n",
	       pr.seq, pr.answered, pr.seq - pr.answered, pr.max_lost_run,
	       (double)pr.max_gap / 1000.0, (double)pr.switch_gap / 1000.0,
	       (double)pr.other_gap / 1000.0, pr.backwards, pr.reboots,
	       (unsigned long long)pr.last_counter, pr.hosts[0] ? pr.hosts : "none");
	close(fd);
	free(pr.seen);
	free(pr.sent_at);
	return 0;
}
