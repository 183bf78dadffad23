/*
 * engine_rate.c - what the migration engine itself moves on this host (engine_rate.h): a stream
 * of pc_send from a memory file of pages that do not compress, into pc_receive on a thread, over
 * a TCP connection on loopback (a socket pair where loopback is down).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/precopy/engine_rate.h"
#include "xl-ext/precopy/precopy.h"

struct er_source {
	uint64_t *bitmap; /* never a page dirty: nothing writes this memory */
};

static int er_enable(void *arg, const uint64_t **bitmap_r, char *method, size_t len)
{
	struct er_source *s = arg;

	*bitmap_r = s->bitmap;
	snprintf(method, len, "none");
	return 0;
}

static int er_fetch(void *arg, uint64_t *ndirty_r)
{
	(void)arg;
	*ndirty_r = 0;
	return 0;
}

static int er_throttle(void *arg, unsigned pct)
{
	(void)arg;
	(void)pct;
	return 0;
}

/* One vCPU of a few bytes: the state a stream must carry. */
static int er_suspend(void *arg, struct pc_cpu_state *st)
{
	(void)arg;
	memset(st, 0, sizeof(*st));
	st->nr_vcpus = 1;
	st->vcpu_len = 64;
	st->vcpus = calloc(1, 64);
	return st->vcpus ? 0 : ERR_NOMEM;
}

static const struct pc_source_ops er_ops = {
    .logdirty_enable = er_enable,
    .logdirty_fetch = er_fetch,
    .throttle = er_throttle,
    .suspend = er_suspend,
};

struct er_receiver {
	int fd, mem_fd;
	uint64_t nr_pages;
	int rc;
};

static void *er_receive(void *arg)
{
	struct er_receiver *r = arg;
	struct pc_cpu_state st = {0};
	struct mig_report rep;

	memset(&rep, 0, sizeof(rep));
	r->rc = pc_receive(r->fd, r->mem_fd, r->nr_pages, HV_TYPE_PVH, 1, NULL, &st, &rep);
	pc_cpu_state_free(&st);
	return NULL;
}

/* A connected pair: TCP on 127.0.0.1 (the kernel's TCP costs, as a migration's), or AF_UNIX. */
static int er_connect(int fds[2])
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	fds[0] = fds[1] = -1;
	if (l >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 &&
	    getsockname(l, (struct sockaddr *)&a, &alen) == 0) {
		fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[0] >= 0 && connect(fds[0], (struct sockaddr *)&a, sizeof(a)) == 0)
			fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (fds[1] >= 0)
			setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (l >= 0)
		close(l);
	if (fds[0] >= 0 && fds[1] >= 0)
		return 0;
	if (fds[0] >= 0)
		close(fds[0]);
	log_debug("engine rate: no TCP on loopback (%s); a socket pair instead", strerror(errno));
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 ? 0
	                                                                    : err_from_errno(errno);
}

/* A memory file of n pages of a xorshift generator's words: nothing to compress, no zero page. */
static int er_memory(uint64_t n, int *fd_r)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;
	uint8_t *buf = malloc(1 << 20);
	int fd = memfd_create("xl-ext-engine-rate", MFD_CLOEXEC), rc = 0;

	if (!buf || fd < 0) {
		rc = buf ? err_from_errno(errno) : ERR_NOMEM;
		goto out;
	}
	for (uint64_t off = 0; off < n * 4096 && !rc; off += 1 << 20) {
		size_t len = n * 4096 - off < (1u << 20) ? (size_t)(n * 4096 - off) : (1u << 20);

		for (size_t i = 0; i < len; i += 8) {
			s ^= s << 13, s ^= s >> 7, s ^= s << 17;
			memcpy(buf + i, &s, 8);
		}
		if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
			rc = err_from_errno(errno ? errno : EIO);
	}
out:
	free(buf);
	if (rc && fd >= 0)
		close(fd);
	else
		*fd_r = fd;
	return rc;
}

int pc_engine_rate(uint64_t bytes, double *Bps_r)
{
	uint64_t n = (bytes + 4095) / 4096;
	struct er_source es = {.bitmap = NULL};
	struct pc_source src = {.ops = &er_ops,
	                        .arg = &es,
	                        .mem_fd = -1,
	                        .nr_pages = n,
	                        .type = HV_TYPE_PVH,
	                        .nr_vcpus = 1};
	struct er_receiver r = {.fd = -1, .mem_fd = -1, .nr_pages = n};
	struct mig_params params;
	struct mig_report rep;
	pthread_t t;
	int fds[2] = {-1, -1}, rc;
	int64_t t0;

	if (n < 256 || n > (1ull << 20))
		return ERR_INVAL;
	memset(&params, 0, sizeof(params));
	memset(&rep, 0, sizeof(rep));
	params.policy.kind = PC_POLICY_ADAPTIVE;
	params.stall_timeout_ms = 30000;
	es.bitmap = calloc((n + 63) / 64, sizeof(uint64_t));
	rc = es.bitmap ? er_memory(n, &src.mem_fd) : ERR_NOMEM;
	if (!rc) {
		r.mem_fd = memfd_create("xl-ext-engine-rate-in", MFD_CLOEXEC);
		if (r.mem_fd < 0 || ftruncate(r.mem_fd, (off_t)(n * 4096)) < 0)
			rc = err_from_errno(errno);
	}
	if (!rc)
		rc = er_connect(fds);
	if (rc)
		goto out;
	r.fd = fds[1];
	if (pthread_create(&t, NULL, er_receive, &r)) {
		rc = ERR_NOMEM;
		goto out;
	}
	t0 = loop_now_us();
	rc = pc_send(&src, fds[0], &params, &rep);
	shutdown(fds[0], SHUT_WR);
	pthread_join(t, NULL);
	if (!rc)
		rc = r.rc;
	if (!rc)
		*Bps_r = (double)rep.total_bytes * 1e6 /
		         (double)(loop_now_us() - t0 > 0 ? loop_now_us() - t0 : 1);
	pc_receive_release();
	pc_send_release();
out:
	if (rc)
		log_error("engine rate: a %llu MiB stream through the migration engine failed: %s",
		          (unsigned long long)(bytes >> 20), err_str(rc));
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (src.mem_fd >= 0)
		close(src.mem_fd);
	if (r.mem_fd >= 0)
		close(r.mem_fd);
	free(es.bitmap);
	return rc;
}
