/*
 * drill_load.c - the drill's client: a probe thread per guest and one HTTP thread.
 *
 * Probes: a numbered 8-byte datagram to the guest's UDP probe port every interval; a reply
 * is timed by the kernel's arrival stamp (SO_TIMESTAMPNS) and names the answering host, the
 * guest's boot id and its memory counter. The thread asks for the lowest real-time priority
 * where it may: it stands for a client on another machine, whose view must not include its
 * own wait for a CPU of a busy host.
 *
 * HTTP: open loop, as httperf --rate: every 1/rate s a new connection to each guest sends one
 * GET and reads the answer to its end; a request that has no complete answer within the
 * timeout is an error. A SYN sent while the guest is paused is retransmitted by the kernel
 * and answered on the target: a live migration costs such a request a retransmission, not
 * an error. The thread waits in epoll: it costs next to no CPU, so the load does not eat the
 * cluster's CPUs it measures.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "haagent/drill.h"
#include "xl-ext/core/guestproto.h"

int64_t drill_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------------- probes */

/* Receive one datagram into buf; *at_us is when the kernel received it (or now). */
static ssize_t recv_stamped(int fd, void *buf, size_t len, int64_t *at_us)
{
	char control[CMSG_SPACE(sizeof(struct timespec))];
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = control,
	                     .msg_controllen = sizeof(control)};
	ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);

	*at_us = drill_now_us();
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;

			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			*at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
		}
	}
	return n;
}

static unsigned host_index(struct drill_guest *g, const char *host)
{
	for (unsigned i = 0; i < g->nhosts; i++)
		if (!strcmp(g->hosts[i], host))
			return i;
	if (g->nhosts == DRILL_MAX_HOSTS)
		return DRILL_MAX_HOSTS - 1; /* more hosts than a drill moves a guest to: lumped */
	snprintf(g->hosts[g->nhosts], sizeof(g->hosts[0]), "%s", host);
	return g->nhosts++;
}

static void on_reply(struct drill_guest *g, struct guest_probe_reply *r, int64_t at)
{
	struct drill_probe *p;
	char host[sizeof(r->host) + 1];

	if (memcmp(r->magic, GUEST_PROBE_REPLY_MAGIC, 4) || r->seq >= g->nprobes)
		return;
	p = &g->probes[r->seq];
	if (p->rtt_us >= 0)
		return; /* a duplicate */
	memcpy(host, r->host, sizeof(r->host));
	host[sizeof(r->host)] = '\0';
	p->rtt_us = at > p->sent_us ? (int32_t)(at - p->sent_us) : 0;
	p->host = (uint8_t)host_index(g, host);
	p->boot_id = r->boot_id;
	p->counter = r->counter;
	atomic_store(&g->last_host, p->host);
	atomic_fetch_add(&g->answered, 1);
}

struct probe_arg {
	struct drill *d;
	struct drill_guest *g;
};

static void *probe_main(void *arg)
{
	struct probe_arg *pa = arg;
	struct drill *d = pa->d;
	struct drill_guest *g = pa->g;
	struct sched_param sp = {.sched_priority = 1};
	int64_t next = drill_now_us(), step = (int64_t)d->interval_ms * 1000;

	free(pa);
	pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp); /* best effort: see above */
	while (!atomic_load(&d->stop)) {
		int64_t now = drill_now_us();
		struct pollfd p = {.fd = g->fd, .events = POLLIN};

		if (now >= next) {
			char req[8];
			uint32_t seq = (uint32_t)g->nprobes;

			if (g->nprobes == g->probes_cap) {
				size_t cap = g->probes_cap ? g->probes_cap * 2 : 4096;
				struct drill_probe *np = realloc(g->probes, cap * sizeof(*np));

				if (!np)
					break; /* the report says how far the client got */
				g->probes = np;
				g->probes_cap = cap;
			}
			g->probes[seq] = (struct drill_probe){.sent_us = now, .rtt_us = -1};
			g->nprobes++;
			memcpy(req, GUEST_PROBE_MAGIC, 4);
			memcpy(req + 4, &seq, 4);
			(void)sendto(g->fd, req, sizeof(req), 0, (const struct sockaddr *)&g->addr,
			             sizeof(g->addr));
			atomic_fetch_add(&g->sent, 1);
			next += step;
			if (next < now - step) /* the thread was held up: do not send a burst */
				next = now + step;
			continue;
		}
		if (poll(&p, 1, (int)((next - now + 999) / 1000)) == 1) {
			struct guest_probe_reply r;
			int64_t at;

			while (recv_stamped(g->fd, &r, sizeof(r), &at) == (ssize_t)sizeof(r))
				on_reply(g, &r, at);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------------- HTTP */

#define HTTP_MAX_OPEN   64 /* requests open at once to one guest */
#define HTTP_ANSWER_MAX 4096

struct http_conn {
	int fd;
	unsigned guest;
	int64_t start_us;
	bool sent;
	size_t got, have;
	char buf[64]; /* the answer's first have bytes: enough for the status line */
	struct http_conn *next;
};

struct http_state {
	struct drill *d;
	int ep;
	struct http_conn *open;
	unsigned nopen[DRILL_MAX_GUESTS];
	int64_t next_at[DRILL_MAX_GUESTS];
};

static void http_record(struct drill *d, unsigned gi, int64_t start, int64_t end,
                        enum drill_http_result res)
{
	struct drill_guest *g = &d->guests[gi];

	if (g->nhttp == g->http_cap) {
		size_t cap = g->http_cap ? g->http_cap * 2 : 1024;
		struct drill_http *nh = realloc(g->http, cap * sizeof(*nh));

		if (!nh)
			return;
		g->http = nh;
		g->http_cap = cap;
	}
	g->http[g->nhttp++] = (struct drill_http){
	    .start_us = start, .lat_us = (int32_t)(end - start), .result = (uint8_t)res};
}

static void http_close(struct http_state *h, struct http_conn *c, enum drill_http_result res)
{
	struct http_conn **pp;

	http_record(h->d, c->guest, c->start_us, drill_now_us(), res);
	epoll_ctl(h->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	for (pp = &h->open; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	h->nopen[c->guest]--;
	free(c);
}

static void http_start(struct http_state *h, unsigned gi)
{
	struct drill_guest *g = &h->d->guests[gi];
	struct epoll_event ev = {.events = EPOLLOUT};
	struct sockaddr_in to = g->addr;
	struct http_conn *c;
	int64_t now = drill_now_us();

	if (h->nopen[gi] >= HTTP_MAX_OPEN) {
		http_record(h->d, gi, now, now, DH_OVERLOAD);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->guest = gi;
	c->start_us = now;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	to.sin_port = htons(GUEST_HTTP_PORT);
	if (c->fd >= 0 && h->d->have_source &&
	    bind(c->fd, (const struct sockaddr *)&h->d->source, sizeof(h->d->source)) < 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->fd < 0) {
		http_record(h->d, gi, now, now, DH_OTHER);
		free(c);
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&to, sizeof(to)) < 0 && errno != EINPROGRESS) {
		http_record(h->d, gi, now, drill_now_us(),
		            errno == ECONNREFUSED ? DH_REFUSED : DH_OTHER);
		close(c->fd);
		free(c);
		return;
	}
	ev.data.ptr = c;
	epoll_ctl(h->ep, EPOLL_CTL_ADD, c->fd, &ev);
	c->next = h->open;
	h->open = c;
	h->nopen[gi]++;
}

static void http_event(struct http_state *h, struct http_conn *c, uint32_t events)
{
	struct drill_guest *g = &h->d->guests[c->guest];
	char buf[HTTP_ANSWER_MAX];
	ssize_t n;

	if (!c->sent) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		int err = 0;
		socklen_t len = sizeof(err);
		int m;

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & (EPOLLERR | EPOLLHUP))) {
			http_close(h, c,
			           err == ECONNREFUSED                         ? DH_REFUSED
			           : err == ECONNRESET || err == EPIPE || !err ? DH_RESET
			           : err == ETIMEDOUT                          ? DH_TIMEOUT
			                                                       : DH_OTHER);
			return;
		}
		m = snprintf(buf, sizeof(buf),
		             "GET / HTTP/1.0\r\nHost: %s\r\nUser-Agent: haagent-drill\r\n\r\n",
		             g->addr_text);
		if (send(c->fd, buf, (size_t)m, MSG_NOSIGNAL) != m) {
			http_close(h, c, DH_RESET);
			return;
		}
		c->sent = true;
		epoll_ctl(h->ep, EPOLL_CTL_MOD, c->fd, &ev);
		return;
	}
	n = recv(c->fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		http_close(h, c, DH_RESET);
		return;
	}
	if (n > 0) {
		size_t take = sizeof(c->buf) - 1 - c->have;

		if (take > (size_t)n)
			take = (size_t)n;
		memcpy(c->buf + c->have, buf, take);
		c->have += take;
		c->got += (size_t)n;
		if (c->got > HTTP_ANSWER_MAX)
			http_close(h, c, DH_BADREPLY); /* the guest answers a few hundred bytes */
		return;
	}
	/* the end of the answer (HTTP/1.0: the server closes) */
	c->buf[c->have] = '\0';
	if (!c->got)
		http_close(h, c, DH_RESET);
	else if (!strncmp(c->buf, "HTTP/1.", 7) && !strncmp(c->buf + 8, " 200", 4))
		http_close(h, c, DH_OK);
	else
		http_close(h, c, DH_BADREPLY);
}

static void *http_main(void *arg)
{
	struct http_state *h = arg;
	struct drill *d = h->d;
	int64_t step = (int64_t)(1e6 / d->http_rate), timeout = (int64_t)d->http_timeout_ms * 1000;
	struct epoll_event evs[32];

	for (size_t i = 0; i < d->nguests; i++) /* spread the guests' requests over a step */
		h->next_at[i] = drill_now_us() + step * (int64_t)i / (int64_t)d->nguests;
	while (!atomic_load(&d->stop)) {
		int64_t now = drill_now_us(), wake = now + 100000;
		int n;

		for (unsigned i = 0; i < d->nguests; i++) {
			if (now >= h->next_at[i]) {
				http_start(h, i);
				h->next_at[i] += step;
				if (h->next_at[i] < now - step)
					h->next_at[i] = now + step;
			}
			if (h->next_at[i] < wake)
				wake = h->next_at[i];
		}
		for (struct http_conn *c = h->open, *nx; c; c = nx) {
			nx = c->next;
			if (now - c->start_us >= timeout)
				http_close(h, c, DH_TIMEOUT);
			else if (c->start_us + timeout < wake)
				wake = c->start_us + timeout;
		}
		n = epoll_wait(h->ep, evs, 32, wake > now ? (int)((wake - now + 999) / 1000) : 0);
		for (int i = 0; i < n; i++)
			http_event(h, evs[i].data.ptr, evs[i].events);
	}
	/* requests still open when the drill ends are not counted: they had no time to end */
	while (h->open) {
		struct http_conn *c = h->open;

		h->open = c->next;
		close(c->fd);
		free(c);
	}
	close(h->ep);
	free(h);
	return NULL;
}

/* ------------------------------------------------------------------------- start, stop */

int drill_load_start(struct drill *d)
{
	int one = 1;

	atomic_store(&d->stop, false);
	for (size_t i = 0; i < d->nguests; i++) {
		struct drill_guest *g = &d->guests[i];
		struct probe_arg *pa = malloc(sizeof(*pa));

		atomic_store(&g->last_host, -1);
		g->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (g->fd < 0 || !pa ||
		    (d->have_source &&
		     bind(g->fd, (const struct sockaddr *)&d->source, sizeof(d->source)) < 0)) {
			int e = errno;

			free(pa);
			return -(e ? e : ENOMEM);
		}
		setsockopt(g->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
		pa->d = d;
		pa->g = g;
		if (pthread_create(&g->thread, NULL, probe_main, pa)) {
			free(pa);
			return -EAGAIN;
		}
		g->thread_started = true;
	}
	if (d->http_rate > 0 && !d->use_httperf) {
		struct http_state *h = calloc(1, sizeof(*h));

		if (!h)
			return -ENOMEM;
		h->d = d;
		h->ep = epoll_create1(EPOLL_CLOEXEC);
		if (h->ep < 0 || pthread_create(&d->http_thread, NULL, http_main, h)) {
			if (h->ep >= 0)
				close(h->ep);
			free(h);
			return -EAGAIN;
		}
		d->http_started = true;
	}
	return 0;
}

void drill_load_stop(struct drill *d)
{
	atomic_store(&d->stop, true);
	for (size_t i = 0; i < d->nguests; i++) {
		struct drill_guest *g = &d->guests[i];

		if (g->thread_started)
			pthread_join(g->thread, NULL);
		g->thread_started = false;
		if (g->fd >= 0)
			close(g->fd);
		g->fd = -1;
	}
	if (d->http_started)
		pthread_join(d->http_thread, NULL);
	d->http_started = false;
}
