/*
 * cpgcheck - join a cluster group through haagent's cluster backend and record the agreed
 * order, for tests/integration/cluster-corosync.test.
 *
 *   cpgcheck BACKEND GROUP NODES COUNT OUTFILE TIMEOUT_S
 *
 * Waits until the group has NODES members, multicasts COUNT messages, and writes every
 * delivered message as "<from> <payload>" to OUTFILE. Exits 0 once NODES * COUNT messages
 * were delivered, 1 on timeout or error. Every member must write the same file.
 */
#include "config.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "haagent/cluster.h"

struct check {
	FILE *out;
	size_t members, delivered;
	bool lost;
};

static void on_deliver(void *arg, uint32_t from, const void *msg, size_t len)
{
	struct check *c = arg;

	fprintf(c->out, "%u %.*s\n", from, (int)len, (const char *)msg);
	c->delivered++;
}

static void on_membership(void *arg, const uint32_t *members, size_t n, const uint32_t *left,
                          size_t nleft, const uint32_t *joined, size_t njoined)
{
	struct check *c = arg;

	(void)members;
	(void)left;
	(void)nleft;
	(void)joined;
	(void)njoined;
	c->members = n;
}

static void on_quorum(void *arg, bool quorate)
{
	(void)arg;
	(void)quorate;
}

static void on_lost(void *arg, int err)
{
	struct check *c = arg;

	(void)err;
	c->lost = true;
}

int main(int argc, char **argv)
{
	static const struct cluster_callbacks cb = {on_deliver, on_membership, on_quorum, on_lost};
	const struct cluster_ops *ops = NULL;
	struct cluster *cl = NULL;
	struct check c = {0};
	size_t want, count, sent = 0;
	uint32_t self = 0;
	time_t deadline;
	char why[256];
	int rc, status = 1;

	if (argc != 7) {
		fprintf(stderr, "usage: cpgcheck BACKEND GROUP NODES COUNT OUTFILE TIMEOUT_S\n");
		return 2;
	}
	log_set_sink(log_sink_stderr("cpgcheck"));
	want = strtoul(argv[3], NULL, 10);
	count = strtoul(argv[4], NULL, 10);
	deadline = time(NULL) + strtol(argv[6], NULL, 10);
	rc = registry_lookup(&cluster_registry, argv[1], (const void **)&ops, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "cpgcheck: %s\n", why);
		return 1;
	}
	c.out = fopen(argv[5], "w");
	if (!c.out) {
		perror(argv[5]);
		return 1;
	}
	rc = ops->open(&cl, argv[2], &cb, &c);
	if (rc < 0) {
		fprintf(stderr, "cpgcheck: open: %s\n", err_str(rc));
		goto out;
	}
	ops->local_nodeid(cl, &self);
	while (time(NULL) < deadline && !c.lost && c.delivered < want * count) {
		struct pollfd pfd[4];
		size_t nfd = 0;

		if (c.members >= want && sent < count) {
			char msg[64];
			int len = snprintf(msg, sizeof(msg), "node%u-msg%zu", self, sent);

			if (ops->send(cl, msg, (size_t)len) == 0)
				sent++;
		}
		{
			int fds[4];

			ops->fds(cl, fds, 4, &nfd);
			for (size_t i = 0; i < nfd; i++)
				pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		}
		if (poll(pfd, nfd, 100) < 0)
			break;
		for (size_t i = 0; i < nfd; i++)
			if (pfd[i].revents & POLLIN)
				ops->dispatch(cl, pfd[i].fd);
	}
	if (c.delivered == want * count) {
		status = 0;
	} else {
		fprintf(stderr, "cpgcheck: node %u: %zu of %zu messages delivered, %zu members%s\n",
		        self, c.delivered, want * count, c.members,
		        c.lost ? ", connection lost" : "");
	}
out:
	if (cl)
		ops->close(cl);
	fclose(c.out);
	return status;
}
