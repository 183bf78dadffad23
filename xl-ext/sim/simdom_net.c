/*
 * simdom_net.c - a simulated domU's network: its vif address on the host, announced when it
 * runs, and the guest probe service (xl-ext/core/guestproto.h) on it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/core/guestproto.h"
#include "xl-ext/sim/guestmem.h"
#include "xl-ext/sim/simdom_int.h"

#define SIMDOM_ANSWER_WAIT_MS 1000
#define HTTP_REQUEST_MAX      4096 /* a longer request head is answered 431 */
#define HTTP_IO_MS            2000 /* a client that sends nothing for this long is dropped */

/* --- probe service ---------------------------------------------------------------------- */

static void *udp_main(void *arg)
{
	struct simdom *d = arg;
	struct gm_superblock *sb = gm_sb(d->mem);

	simdom_guest_thread(d, "service", 0);
	for (;;) {
		struct pollfd p = {.fd = d->udp_fd, .events = POLLIN};
		struct guest_probe_reply rep;
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		char req[64];
		ssize_t n;

		if (__atomic_load_n(&d->quit, __ATOMIC_RELAXED))
			break;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recvfrom(d->udp_fd, req, sizeof(req), 0, (struct sockaddr *)&from, &flen);
		if (n < 8 || memcmp(req, GUEST_PROBE_MAGIC, 4) != 0)
			continue;
		/* a paused guest does not answer; the flag, not the domain's lock, which a
		 * control command may hold */
		if (!atomic_load(&d->running))
			continue;
		memset(&rep, 0, sizeof(rep));
		memcpy(rep.magic, GUEST_PROBE_REPLY_MAGIC, 4);
		memcpy(&rep.seq, req + 4, 4);
		rep.boot_id = sb->boot_id;
		rep.counter = __atomic_load_n(&sb->counter, __ATOMIC_RELAXED);
		rep.domid = d->domid;
		snprintf(rep.host, sizeof(rep.host), "%s", d->host);
		sendto(d->udp_fd, &rep, sizeof(rep), 0, (struct sockaddr *)&from, flen);
	}
	return NULL;
}

/* --- HTTP service ----------------------------------------------------------------------- */

/*
 * The fixed computation of a request: the product of two 5x5 integer matrices made from
 * seed, summed (the load of the drill's model experiment: a small CPU cost per request).
 */
static uint64_t matrix_work(uint64_t seed)
{
	int64_t a[5][5], b[5][5], sum = 0;
	uint64_t x = seed | 1;

	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 5; j++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			a[i][j] = (int64_t)(x >> 40) % 100;
			b[j][i] = (int64_t)(x >> 20) % 100;
		}
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 5; j++)
			for (int k = 0; k < 5; k++)
				sum += a[i][k] * b[k][j];
	return (uint64_t)sum;
}

static void http_send(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		ssize_t n;

		if (poll(&p, 1, HTTP_IO_MS) <= 0)
			return;
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void http_answer(int fd, int status, const char *reason, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.0 %d %s\r\nServer: xl-ext-simdom\r\nContent-Type: text/plain\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                 status, reason, strlen(body));

	http_send(fd, head, (size_t)n);
	http_send(fd, body, strlen(body));
}

/* Read one request head from fd, bounded in size and time; answer it once the guest runs. */
static void http_serve(struct simdom *d, int fd)
{
	struct gm_superblock *sb = gm_sb(d->mem);
	int64_t deadline = simdom_now_ns() + (int64_t)HTTP_IO_MS * 1000000;
	char req[HTTP_REQUEST_MAX + 1], body[160];
	size_t len = 0;
	bool whole = false;
	uint64_t counter;
	int zero = 0;

	/* a connection made while the listener was gated inherits the gate (simdom_net_gate) */
	setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof(zero));
	while (!whole && len < HTTP_REQUEST_MAX) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (__atomic_load_n(&d->quit, __ATOMIC_RELAXED) || simdom_now_ns() > deadline)
			return;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, req + len, HTTP_REQUEST_MAX - len, 0);
		if (n <= 0)
			return;
		len += (size_t)n;
		req[len] = '\0';
		whole = strstr(req, "\r\n\r\n") || strstr(req, "\n\n");
	}
	if (!whole) {
		http_answer(fd, 431, "Request Header Fields Too Large", "request head too long\n");
		return;
	}
	/* a paused guest computes nothing: the request waits, as in a paused domU */
	while (!atomic_load(&d->running)) {
		if (__atomic_load_n(&d->quit, __ATOMIC_RELAXED))
			return;
		usleep(1000);
	}
	if (strncmp(req, "GET ", 4) != 0) {
		http_answer(fd, 405, "Method Not Allowed", "only GET is served\n");
		return;
	}
	counter = __atomic_load_n(&sb->counter, __ATOMIC_RELAXED);
	snprintf(body, sizeof(body), "host=%s domain=%s boot=%016llx counter=%llu work=%llu\n",
	         d->host, d->name, (unsigned long long)sb->boot_id, (unsigned long long)counter,
	         (unsigned long long)matrix_work(counter));
	http_answer(fd, 200, "OK", body);
}

static void *http_main(void *arg)
{
	struct simdom *d = arg;

	simdom_guest_thread(d, "http", 0);
	while (!__atomic_load_n(&d->quit, __ATOMIC_RELAXED)) {
		struct pollfd p = {.fd = d->http_fd, .events = POLLIN};
		int fd;

		/* paused: the connections the kernel completed wait in the backlog */
		if (!atomic_load(&d->running)) {
			usleep(2000);
			continue;
		}
		if (poll(&p, 1, 100) <= 0)
			continue;
		fd = accept4(d->http_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		http_serve(d, fd);
		close(fd);
	}
	return NULL;
}

/*
 * Gate the HTTP listener by the guest's state: while it does not run, its listener drops
 * every segment, so a client's SYN goes unanswered and is sent again, as to a paused domU,
 * instead of being accepted by this host's kernel and reset when the guest leaves.
 */
void simdom_net_gate(struct simdom *d, bool running)
{
	static struct sock_filter drop[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
	struct sock_fprog prog = {.len = 1, .filter = drop};
	int zero = 0; /* the kernel wants an int for SO_DETACH_FILTER, whose value it ignores */

	if (d->http_fd < 0)
		return;
	if (running)
		setsockopt(d->http_fd, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof(zero));
	else if (setsockopt(d->http_fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		log_warn_errno(errno, "domain %s: cannot gate the HTTP listener while paused",
		               d->name);
}

static int http_prepare(struct simdom *d, const struct in_addr *addr)
{
	struct sockaddr_in sin = {
	    .sin_family = AF_INET, .sin_port = htons(GUEST_HTTP_PORT), .sin_addr = *addr};
	int one = 1;

	d->http_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->http_fd < 0)
		return err_from_errno(errno);
	setsockopt(d->http_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(d->http_fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	if (bind(d->http_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(d->http_fd, 128) < 0) {
		int rc = err_from_errno(errno);

		log_error_errno(errno, "domain %s: cannot start the HTTP service on %s:%d", d->name,
		                d->cfg.ip, GUEST_HTTP_PORT);
		close(d->http_fd);
		d->http_fd = -1;
		return rc;
	}
	simdom_net_gate(d, atomic_load(&d->running));
	if (pthread_create(&d->http_thread, NULL, http_main, d)) {
		close(d->http_fd);
		d->http_fd = -1;
		return ERR_NOMEM;
	}
	d->http_started = true;
	return 0;
}

/* Stop the services (after quit is set) and close their sockets. */
void simdom_net_stop(struct simdom *d)
{
	if (d->udp_started)
		pthread_join(d->udp_thread, NULL);
	if (d->udp_fd >= 0)
		close(d->udp_fd);
	if (d->http_started)
		pthread_join(d->http_thread, NULL);
	if (d->http_fd >= 0)
		close(d->http_fd);
	d->udp_started = d->http_started = false;
	d->udp_fd = d->http_fd = -1;
}

/* --- address ---------------------------------------------------------------------------- */

/*
 * After the first announcement (simnet_attach), repeat it at growing intervals, as QEMU's
 * self-announce does: a peer that updated its ARP entry for the address less than its
 * locktime ago ignores a single announcement and would keep sending to the old host.
 */
static void *announce_main(void *arg)
{
	struct simdom *d = arg;
	static const int delays_ms[] = {50, 100, 200, 400, 800};

	simdom_guest_thread(d, "announce", 0);
	for (size_t i = 0; i < sizeof(delays_ms) / sizeof(delays_ms[0]); i++) {
		usleep((useconds_t)delays_ms[i] * 1000);
		if (__atomic_load_n(&d->quit, __ATOMIC_RELAXED))
			break;
		simnet_announce(&d->net);
	}
	return NULL;
}

/*
 * Prepare the guest's vif when the domain is created (booted or incoming): interface, sockets
 * and the probe service, bound ahead of the address (IP_FREEBIND). What is left for unpause
 * is adding the address and announcing it: a real vif backend, too, exists before the guest
 * runs. A failure here is not fatal: the guest runs without network, as a warning says.
 */
int simdom_net_prepare(struct simdom *d)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(GUEST_PROBE_PORT)};
	int one = 1, rc;

	if (!d->cfg.ip[0])
		return 0;
	rc = simnet_open(&d->net, d->cfg.ip);
	if (rc)
		return rc;
	d->net_open = true;
	inet_pton(AF_INET, d->cfg.ip, &sin.sin_addr);
	d->udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (d->udp_fd < 0)
		return err_from_errno(errno);
	setsockopt(d->udp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(d->udp_fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	if (bind(d->udp_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		rc = err_from_errno(errno);
		log_error_errno(errno, "domain %s: cannot bind the probe service to %s:%d", d->name,
		                d->cfg.ip, GUEST_PROBE_PORT);
		close(d->udp_fd);
		d->udp_fd = -1;
		return rc;
	}
	if (pthread_create(&d->udp_thread, NULL, udp_main, d)) {
		close(d->udp_fd);
		d->udp_fd = -1;
		return ERR_NOMEM;
	}
	d->udp_started = true;
	/* the probe service is what a guest's network is judged by; HTTP is the drills' load */
	if (http_prepare(d, &sin.sin_addr))
		log_warn("domain %s: running without its HTTP service", d->name);
	return 0;
}

/*
 * Wait, at most SIMDOM_ANSWER_WAIT_MS, until the guest answers a probe on its own address:
 * the address is on this host and the probe service runs and sees the guest running. The
 * unpause that ends a migration returns only then, so the downtime a migration reports ends
 * when a client can be answered, as the client sees it, not when the address was added.
 * Returns 0, or ERR_TIMEOUT (the guest runs; its service may answer later).
 */
static int await_answer(struct simdom *d)
{
	struct sockaddr_in to = {
	    .sin_family = AF_INET, .sin_port = htons(GUEST_PROBE_PORT), .sin_addr = d->net.addr};
	int64_t deadline = simdom_now_ns() + (int64_t)SIMDOM_ANSWER_WAIT_MS * 1000000;
	uint32_t seq = 0xfffffffe; /* out of any client's range, for the log */
	char req[8];
	int fd, rc = ERR_TIMEOUT;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
		rc = err_from_errno(errno);
		goto out;
	}
	memcpy(req, GUEST_PROBE_MAGIC, 4);
	memcpy(req + 4, &seq, 4);
	if (send(fd, req, sizeof(req), 0) < 0) {
		rc = err_from_errno(errno);
		goto out;
	}
	for (int64_t left; (left = deadline - simdom_now_ns()) > 0;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		struct guest_probe_reply rep;

		if (poll(&p, 1, (int)(left / 1000000) + 1) <= 0)
			continue;
		if (recv(fd, &rep, sizeof(rep), 0) == (ssize_t)sizeof(rep) &&
		    !memcmp(rep.magic, GUEST_PROBE_REPLY_MAGIC, 4) && rep.seq == seq) {
			rc = 0;
			break;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/*
 * Bring the guest's vif up on this host: its address, then gratuitous ARPs; return once the
 * guest answers there (await_answer).
 */
int simdom_net_attach(struct simdom *d)
{
	int rc;

	if (!d->udp_started || d->net.attached)
		return 0;
	rc = simnet_attach(&d->net);
	if (rc)
		return rc;
	if (!d->announcing && pthread_create(&d->announce_thread, NULL, announce_main, d) == 0)
		d->announcing = true;
	rc = await_answer(d);
	if (rc)
		log_warn("domain %s: its probe service did not answer on %s within %d ms: %s",
		         d->name, d->cfg.ip, SIMDOM_ANSWER_WAIT_MS, err_str(rc));
	return 0;
}
