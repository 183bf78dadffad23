/*
 * tcpblast - the raw TCP reference for the migration benchmark: one stream of bytes over the
 * same path and the same socket set-up as "migrate --tcp" (xl-ext/transport.c), measured at
 * the receiving end from the first byte to the last.
 *
 *   tcpblast sink ADDR:PORT [memfd]  accept one connection, read to EOF, print the rate; with
 *                                    memfd, write what it reads into a new memory file too
 *                                    (the memory a migration's destination must fill)
 *   tcpblast send ADDR:PORT MIB [MBIT]
 *                                    send MIB mebibytes (non-zero data) and close; with MBIT,
 *                                    paced by the kernel at MBIT Mbit/s (SO_MAX_PACING_RATE)
 *
 * The sink prints "bytes=N seconds=S mbps=R" on stdout and "listening" on stderr once ready.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/migration/transport.h"

#define CHUNK (1 << 20)

static int sink(const char *addr, bool to_memory)
{
	static char buf[CHUNK];
	char peer[96];
	int64_t t0 = 0, t1;
	uint64_t total = 0;
	int lfd, fd, mfd = -1;

	if (to_memory && (mfd = memfd_create("tcpblast-sink", MFD_CLOEXEC)) < 0) {
		perror("tcpblast: memfd_create");
		return 1;
	}
	lfd = tr_listen(addr);
	if (lfd < 0)
		return 1;
	fprintf(stderr, "listening\n");
	fd = tr_accept(lfd, 60000, peer, sizeof(peer));
	close(lfd);
	if (fd < 0) {
		fprintf(stderr, "tcpblast: no sender within 60 s\n");
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		if (!t0)
			t0 = loop_now_us();
		if (mfd >= 0 && pwrite(mfd, buf, (size_t)n, (off_t)total) != n) {
			perror("tcpblast: pwrite");
			return 1;
		}
		total += (uint64_t)n;
	}
	t1 = loop_now_us();
	close(fd);
	if (mfd >= 0)
		close(mfd);
	if (!t0 || t1 <= t0)
		return 1;
	printf("bytes=%llu seconds=%.4f mbps=%.1f\n", (unsigned long long)total,
	       (double)(t1 - t0) / 1e6, (double)total * 8 / (double)(t1 - t0));
	return 0;
}

static int send_bytes(const char *addr, unsigned long mib, unsigned long mbit)
{
	static char buf[CHUNK];
	int fd;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 131 + 7);
	fd = tr_connect(addr, 10000);
	if (fd < 0)
		return 1;
	if (mbit) {
		unsigned long rate = mbit * 1000000 / 8; /* bytes per second */

		if (setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, sizeof(rate)) < 0) {
			perror("tcpblast: SO_MAX_PACING_RATE");
			close(fd);
			return 1;
		}
	}
	for (unsigned long i = 0; i < mib; i++) {
		if (fd_write_exact(fd, buf, sizeof(buf))) {
			fprintf(stderr, "tcpblast: write to %s failed\n", addr);
			close(fd);
			return 1;
		}
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	log_set_sink(log_sink_stderr("tcpblast"));
	if ((argc == 3 || (argc == 4 && !strcmp(argv[3], "memfd"))) && !strcmp(argv[1], "sink"))
		return sink(argv[2], argc == 4);
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "send"))
		return send_bytes(argv[2], strtoul(argv[3], NULL, 10),
		                  argc == 5 ? strtoul(argv[4], NULL, 10) : 0);
	fprintf(stderr,
	        "usage: tcpblast sink ADDR:PORT [memfd] | tcpblast send ADDR:PORT MIB [MBIT]\n");
	return 2;
}
