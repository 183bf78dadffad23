/*
 * delayrelay.c - a TCP relay that delays (and can stall) a link, for the integration tests.
 *
 *   delayrelay [-1] [-d MS] [-j JITTER_MS] [-b BYTES] [-s AFTER_BYTES:SECONDS]
 *              LISTEN_ADDR:PORT TARGET_ADDR:PORT
 *
 * This kernel has no netem, so a delayed link is made in user space: each connection accepted
 * on LISTEN_ADDR:PORT is relayed to a new connection to TARGET_ADDR:PORT, both directions, and
 * every chunk of bytes read from one side is written to the other MS milliseconds (default 0)
 * after it was read, plus a uniform random jitter of +-JITTER_MS (never before an earlier
 * chunk of the same direction: order is kept). A side's end of stream (its shutdown(SHUT_WR))
 * is passed on in order, after the bytes before it; a reset or error on either side resets the
 * other. Each direction's queue holds up to BYTES (default 4 MiB; one read of 64 KiB may pass
 * it): while it is full the relay reads no more from that side, so a fast sender meets
 * back-pressure, as on a link. Only the bytes are delayed: the connection is accepted and made
 * at once.
 *
 * With -s, once AFTER_BYTES bytes (both directions together) have been forwarded the link
 * stalls, once, for SECONDS: nothing is read or written in either direction, then the queued
 * bytes flow again. With -1 it serves one connection and exits when that connection ends.
 *
 * On standard error: "delayrelay: listening on ..." once it accepts connections, a line per
 * connection closed and per stall, and at exit one summary line:
 *   delayrelay: connections=N up=BYTES down=BYTES max_queued=BYTES stalls=K failed=F
 * (up: from the connecting side to the target; max_queued: the fullest queue seen).
 * SIGTERM or SIGINT ends it. Exit 0 when no connection failed, 1 when one did (the target
 * could not be reached, or a side reset or errored), 2 on bad usage or setup.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SESSIONS  16
#define READ_CHUNK    (64 * 1024)
#define DEFAULT_BOUND (4u << 20)
#define NS_PER_MS     1000000LL

/* Bytes read from one side at one time, due on the other side at due_ns. len 0: end of stream. */
struct chunk {
	struct chunk *next;
	int64_t due_ns;
	size_t len, off;
	char data[];
};

/* One direction of a relayed connection: from one socket to the other, through a queue. */
struct direction {
	const char *from_name, *to_name;
	int from, to; /* the session's sockets, not owned here */
	struct chunk *head, *tail;
	size_t queued;       /* bytes in the queue */
	int64_t last_due_ns; /* due time of the last chunk queued: order is kept */
	uint64_t bytes;      /* written to the other side */
	bool eof;            /* end of stream read from the source */
	bool shut;           /* and passed on: shutdown(to, SHUT_WR) done */
};

struct session {
	unsigned id;
	int client, target;
	bool connecting; /* the connection to the target is not made yet */
	char peer[80];
	struct direction up, down; /* client -> target, target -> client */
};

struct relay {
	const char *listen_spec, *target_spec;
	struct sockaddr_storage target;
	socklen_t target_len;
	int listen_fd;
	int64_t delay_ns, jitter_ns;
	size_t bound, max_queued;
	uint64_t stall_after, forwarded, up, down;
	int64_t stall_ns, stall_until_ns; /* stall_until_ns: a stall is going on until then */
	bool stall_done, one;
	unsigned accepted, failed, stalls;
	struct session *sessions[MAX_SESSIONS];
};

static volatile sig_atomic_t relay_stop;

static void on_signal(int sig)
{
	(void)sig;
	relay_stop = 1;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* "ADDR:PORT" or "[ADDR6]:PORT" into ss. False, with a message, when it is not one. */
static bool parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len_r)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hlen;
	int rc;

	if (!colon || colon == spec || !colon[1] || (size_t)(colon - spec) >= sizeof(host)) {
		fprintf(stderr, "delayrelay: '%s' is not ADDR:PORT\n", spec);
		return false;
	}
	hlen = (size_t)(colon - spec);
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
		memmove(host, host + 1, hlen - 2);
		host[hlen - 2] = '\0';
	}
	rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc) {
		fprintf(stderr, "delayrelay: cannot resolve '%s': %s\n", spec, gai_strerror(rc));
		return false;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len_r = ai->ai_addrlen;
	freeaddrinfo(ai);
	return true;
}

static void peer_name(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t size)
{
	char host[64], port[8];

	if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), port, sizeof(port),
	                NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(out, size, "?");
	else
		snprintf(out, size, "%s:%s", host, port);
}

/* Small writes go out at once, as they would on the link being imitated. */
static void tune_socket(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int open_listener(struct relay *r)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (!parse_addr(r->listen_spec, &ss, &len))
		return -1;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "delayrelay: socket: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 8) < 0) {
		fprintf(stderr, "delayrelay: cannot listen on %s: %s\n", r->listen_spec,
		        strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void direction_init(struct direction *d, const char *from_name, int from,
                           const char *to_name, int to)
{
	*d = (struct direction){.from_name = from_name, .from = from, .to_name = to_name, .to = to};
}

static void direction_free(struct direction *d)
{
	while (d->head) {
		struct chunk *c = d->head;

		d->head = c->next;
		free(c);
	}
	d->tail = NULL;
	d->queued = 0;
}

/* Accept one connection and start connecting to the target for it. */
static void session_accept(struct relay *r)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct session *s;
	int slot = 0, fd;

	while (slot < MAX_SESSIONS && r->sessions[slot])
		slot++;
	fd = accept4(r->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			fprintf(stderr, "delayrelay: accept on %s: %s\n", r->listen_spec,
			        strerror(errno));
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s || slot == MAX_SESSIONS) {
		fprintf(stderr, "delayrelay: connection refused: %s\n",
		        s ? "too many connections" : "out of memory");
		free(s);
		close(fd);
		return;
	}
	s->id = ++r->accepted;
	s->client = fd;
	peer_name(&ss, len, s->peer, sizeof(s->peer));
	tune_socket(fd);
	s->target = socket(r->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->target < 0 ||
	    (connect(s->target, (struct sockaddr *)&r->target, r->target_len) < 0 &&
	     errno != EINPROGRESS)) {
		fprintf(stderr, "delayrelay: connection %u from %s: cannot connect to %s: %s\n",
		        s->id, s->peer, r->target_spec, strerror(errno));
		if (s->target >= 0)
			close(s->target);
		close(fd);
		free(s);
		r->failed++;
		return;
	}
	s->connecting = true;
	tune_socket(s->target);
	direction_init(&s->up, "the client", s->client, "the target", s->target);
	direction_init(&s->down, "the target", s->target, "the client", s->client);
	r->sessions[slot] = s;
	if (r->one) {
		close(r->listen_fd);
		r->listen_fd = -1;
	}
}

/* Both sockets closed; reset (RST) instead of an orderly close when the session failed. */
static void session_close(struct relay *r, int slot, bool reset)
{
	struct session *s = r->sessions[slot];
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	if (reset) {
		setsockopt(s->client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		setsockopt(s->target, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		r->failed++;
	} else {
		fprintf(stderr,
		        "delayrelay: connection %u from %s closed: %llu bytes to the target, %llu "
		        "back\n",
		        s->id, s->peer, (unsigned long long)s->up.bytes,
		        (unsigned long long)s->down.bytes);
	}
	r->up += s->up.bytes;
	r->down += s->down.bytes;
	close(s->client);
	close(s->target);
	direction_free(&s->up);
	direction_free(&s->down);
	free(s);
	r->sessions[slot] = NULL;
}

/* A session that meets an error: say what failed, then reset both sides. */
static void session_fail(struct relay *r, int slot, const char *what, const char *side, int err)
{
	struct session *s = r->sessions[slot];

	fprintf(stderr,
	        "delayrelay: connection %u from %s: %s %s: %s; both sides reset (%llu bytes to "
	        "the target, %llu back)\n",
	        s->id, s->peer, what, side, err ? strerror(err) : "connection closed",
	        (unsigned long long)s->up.bytes, (unsigned long long)s->down.bytes);
	session_close(r, slot, true);
}

/* The delay of the next chunk: MS +- JITTER, not before the previous chunk's. */
static int64_t due_time(const struct relay *r, struct direction *d, int64_t now)
{
	int64_t delay = r->delay_ns, due;

	if (r->jitter_ns)
		delay +=
		    (int64_t)(((double)random() / RAND_MAX * 2.0 - 1.0) * (double)r->jitter_ns);
	due = now + (delay > 0 ? delay : 0);
	if (due < d->last_due_ns)
		due = d->last_due_ns;
	d->last_due_ns = due;
	return due;
}

/* Queue what the source has (len 0: its end of stream). False on an allocation failure. */
static bool enqueue(struct relay *r, struct direction *d, const char *buf, size_t len, int64_t now)
{
	struct chunk *c = malloc(sizeof(*c) + len);

	if (!c)
		return false;
	c->next = NULL;
	c->due_ns = due_time(r, d, now);
	c->len = len;
	c->off = 0;
	memcpy(c->data, buf, len);
	if (d->tail)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	d->queued += len;
	if (d->queued > r->max_queued)
		r->max_queued = d->queued;
	return true;
}

/* Read once from the direction's source. Returns 0, or the errno of a failed read (-1: memory). */
static int direction_read(struct relay *r, struct direction *d, int64_t now)
{
	static char buf[READ_CHUNK];
	ssize_t n = recv(d->from, buf, sizeof(buf), 0);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : errno;
	if (n == 0)
		d->eof = true;
	return enqueue(r, d, buf, (size_t)n, now) ? 0 : -1;
}

static bool stalled(const struct relay *r)
{
	return r->stall_until_ns != 0;
}

static void count_forwarded(struct relay *r, size_t n, int64_t now)
{
	r->forwarded += n;
	if (r->stall_after && !r->stall_done && r->forwarded >= r->stall_after) {
		r->stall_done = true;
		r->stalls++;
		r->stall_until_ns = now + r->stall_ns;
		fprintf(stderr, "delayrelay: link stalled for %.3f s after %llu bytes forwarded\n",
		        (double)r->stall_ns / 1e9, (unsigned long long)r->forwarded);
	}
}

/* Write the due chunks to the other side, the end of stream as shutdown(SHUT_WR). */
static int direction_write(struct relay *r, struct direction *d, int64_t now)
{
	while (d->head && d->head->due_ns <= now && !stalled(r)) {
		struct chunk *c = d->head;
		ssize_t n;

		if (c->len == 0) {
			if (shutdown(d->to, SHUT_WR) < 0 && errno != ENOTCONN)
				return errno;
			d->shut = true;
		} else {
			n = send(d->to, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
			if (n < 0)
				return errno == EAGAIN || errno == EINTR ? 0 : errno;
			c->off += (size_t)n;
			d->queued -= (size_t)n;
			d->bytes += (uint64_t)n;
			count_forwarded(r, (size_t)n, now);
			if (c->off < c->len)
				return 0;
		}
		d->head = c->next;
		if (!d->head)
			d->tail = NULL;
		free(c);
	}
	return 0;
}

static bool wants_read(const struct relay *r, const struct session *s, const struct direction *d)
{
	return !s->connecting && !d->eof && d->queued < r->bound && !stalled(r);
}

static bool wants_write(const struct relay *r, const struct direction *d, int64_t now)
{
	return d->head && d->head->due_ns <= now && !stalled(r);
}

/* The connection to the target is made (or failed). */
static void session_connected(struct relay *r, int slot)
{
	struct session *s = r->sessions[slot];
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(s->target, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		fprintf(stderr, "delayrelay: connection %u from %s: cannot connect to %s: %s\n",
		        s->id, s->peer, r->target_spec, strerror(err));
		session_close(r, slot, true);
		return;
	}
	s->connecting = false;
}

/* One session's work after a poll: reads where poll saw something, then due writes. */
static void session_run(struct relay *r, int slot, const struct pollfd *pc, const struct pollfd *pt,
                        int64_t now)
{
	struct session *s = r->sessions[slot];
	struct direction *dirs[2] = {&s->up, &s->down};
	const struct pollfd *from[2] = {pc, pt};
	int err;

	if (s->connecting) {
		if (pt->revents)
			session_connected(r, slot);
		return;
	}
	for (int i = 0; i < 2; i++) {
		if (!(from[i]->revents & (POLLIN | POLLHUP | POLLERR)) ||
		    !wants_read(r, s, dirs[i]))
			continue;
		err = direction_read(r, dirs[i], now);
		if (err) {
			session_fail(r, slot, "read from", dirs[i]->from_name,
			             err < 0 ? ENOMEM : err);
			return;
		}
	}
	for (int i = 0; i < 2; i++) {
		err = direction_write(r, dirs[i], now);
		if (err) {
			session_fail(r, slot, "write to", dirs[i]->to_name, err);
			return;
		}
	}
	if (s->up.shut && s->down.shut)
		session_close(r, slot, false);
}

/* The poll set: the listener, then two sockets per session. Returns the poll timeout. */
static int64_t poll_set(struct relay *r, struct pollfd *fds, int64_t now)
{
	int64_t timeout = -1;

	fds[0] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
	for (int i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = r->sessions[i];
		struct pollfd *pc = &fds[1 + 2 * i], *pt = pc + 1;

		*pc = (struct pollfd){.fd = -1};
		*pt = (struct pollfd){.fd = -1};
		if (!s)
			continue;
		if (s->connecting) {
			*pt = (struct pollfd){.fd = s->target, .events = POLLOUT};
			continue;
		}
		pc->events = (short)((wants_read(r, s, &s->up) ? POLLIN : 0) |
		                     (wants_write(r, &s->down, now) ? POLLOUT : 0));
		pt->events = (short)((wants_read(r, s, &s->down) ? POLLIN : 0) |
		                     (wants_write(r, &s->up, now) ? POLLOUT : 0));
		/* a socket with nothing to wait for is left out: its POLLHUP would wake us */
		pc->fd = pc->events ? s->client : -1;
		pt->fd = pt->events ? s->target : -1;
		for (int k = 0; k < 2 && !stalled(r); k++) {
			const struct chunk *c = k ? s->down.head : s->up.head;

			if (c && c->due_ns > now && (timeout < 0 || c->due_ns - now < timeout))
				timeout = c->due_ns - now;
		}
	}
	if (stalled(r))
		timeout = r->stall_until_ns > now ? r->stall_until_ns - now : 0;
	return timeout;
}

static int sessions_open(const struct relay *r)
{
	int n = 0;

	for (int i = 0; i < MAX_SESSIONS; i++)
		n += r->sessions[i] != NULL;
	return n;
}

/* Relay until a signal, or (with -1) until the one connection ends. */
static int run(struct relay *r, const sigset_t *unblocked)
{
	struct pollfd fds[1 + 2 * MAX_SESSIONS];

	while (!relay_stop && (!r->one || r->listen_fd >= 0 || sessions_open(r))) {
		int64_t now = now_ns(), timeout = poll_set(r, fds, now);
		struct timespec ts = {(time_t)(timeout / 1000000000LL),
		                      (long)(timeout % 1000000000LL)};

		if (ppoll(fds, 1 + 2 * MAX_SESSIONS, timeout < 0 ? NULL : &ts, unblocked) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "delayrelay: poll: %s\n", strerror(errno));
			return 1;
		}
		now = now_ns();
		if (stalled(r) && now >= r->stall_until_ns) {
			r->stall_until_ns = 0;
			fprintf(stderr, "delayrelay: link flows again\n");
		}
		if (r->listen_fd >= 0 && (fds[0].revents & POLLIN))
			session_accept(r);
		for (int i = 0; i < MAX_SESSIONS; i++) {
			if (r->sessions[i])
				session_run(r, i, &fds[1 + 2 * i], &fds[2 + 2 * i], now);
		}
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: delayrelay [-1] [-d MS] [-j JITTER_MS] [-b BYTES] "
	                "[-s AFTER_BYTES:SECONDS] LISTEN_ADDR:PORT TARGET_ADDR:PORT\n");
}

/* A whole number in [min, max] from text, or false. */
static bool parse_num(const char *text, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* -s AFTER_BYTES:SECONDS (seconds may have a fraction, up to an hour). */
static bool parse_stall(const char *text, struct relay *r)
{
	char bytes[32], *end;
	const char *colon = strchr(text, ':');
	long long after;
	double secs;

	if (!colon || (size_t)(colon - text) >= sizeof(bytes))
		return false;
	memcpy(bytes, text, (size_t)(colon - text));
	bytes[colon - text] = '\0';
	secs = strtod(colon + 1, &end);
	if (!parse_num(bytes, 1, INT64_MAX, &after) || end == colon + 1 || *end || secs <= 0 ||
	    secs > 3600)
		return false;
	r->stall_after = (uint64_t)after;
	r->stall_ns = (int64_t)(secs * 1e9);
	return true;
}

static bool parse_options(int argc, char **argv, struct relay *r)
{
	long long v;
	int opt;

	while ((opt = getopt(argc, argv, "1d:j:b:s:")) != -1) {
		switch (opt) {
		case '1':
			r->one = true;
			break;
		case 'd':
		case 'j':
			if (!parse_num(optarg, 0, 600000, &v)) {
				fprintf(stderr, "delayrelay: -%c takes milliseconds, 0 to 600000\n",
				        opt);
				return false;
			}
			*(opt == 'd' ? &r->delay_ns : &r->jitter_ns) = v * NS_PER_MS;
			break;
		case 'b':
			if (!parse_num(optarg, READ_CHUNK, 1LL << 30, &v)) {
				fprintf(stderr, "delayrelay: -b takes bytes, %d to %lld\n",
				        READ_CHUNK, 1LL << 30);
				return false;
			}
			r->bound = (size_t)v;
			break;
		case 's':
			if (!parse_stall(optarg, r)) {
				fprintf(stderr,
				        "delayrelay: -s takes AFTER_BYTES:SECONDS (bytes >= 1, "
				        "0 < seconds <= 3600)\n");
				return false;
			}
			break;
		default:
			return false;
		}
	}
	if (argc - optind != 2)
		return false;
	r->listen_spec = argv[optind];
	r->target_spec = argv[optind + 1];
	return true;
}

int main(int argc, char **argv)
{
	static struct relay r = {.bound = DEFAULT_BOUND, .listen_fd = -1};
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: ppoll returns */
	sigset_t block, unblocked;
	int rc;

	if (!parse_options(argc, argv, &r)) {
		usage();
		return 2;
	}
	if (!parse_addr(r.target_spec, &r.target, &r.target_len))
		return 2;
	/* SIGTERM and SIGINT are taken only inside ppoll, so none is lost before it waits */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &unblocked);
	sigdelset(&unblocked, SIGTERM);
	sigdelset(&unblocked, SIGINT);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	srandom((unsigned)(now_ns() ^ getpid()));
	r.listen_fd = open_listener(&r);
	if (r.listen_fd < 0)
		return 2;
	fprintf(stderr,
	        "delayrelay: listening on %s, forwarding to %s: delay %lld ms, jitter %lld ms, "
	        "queue bound %zu bytes\n",
	        r.listen_spec, r.target_spec, (long long)(r.delay_ns / NS_PER_MS),
	        (long long)(r.jitter_ns / NS_PER_MS), r.bound);
	rc = run(&r, &unblocked);
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (r.sessions[i])
			session_close(&r, i, false);
	if (r.listen_fd >= 0)
		close(r.listen_fd);
	fprintf(stderr,
	        "delayrelay: connections=%u up=%llu down=%llu max_queued=%zu stalls=%u "
	        "failed=%u\n",
	        r.accepted, (unsigned long long)r.up, (unsigned long long)r.down, r.max_queued,
	        r.stalls, r.failed);
	return rc ? 1 : r.failed ? 1 : 0;
}
