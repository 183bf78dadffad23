/*
 * simdom_net.c - a simulated domU's network: its vif address on the host, announced when it
 * runs, and the guest probe service (xl-ext/core/guestproto.h) on it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
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
