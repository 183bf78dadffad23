/*
 * guestproto.h - the guest probe protocol: a small UDP service every test guest answers.
 *
 * A client (tests/integration/probe.c, an operator's monitoring, the drills) sends a probe
 * of 8 bytes, GUEST_PROBE_MAGIC then a u32 sequence number, to GUEST_PROBE_PORT of the
 * guest's address; a running guest answers with struct guest_probe_reply. A client sees the
 * counter continue and the answering host change when the guest moves, and the boot id
 * change when it restarts. The simulated domU (xl-ext/sim/) and the real-Xen test guest's
 * agent (tests/xen/guest/agent.c) serve it; neither's internals are part of it.
 *
 * The simulated domU also serves HTTP/1.0 on GUEST_HTTP_PORT of the same address, the load a
 * drill drives with httperf: every GET does a small fixed computation (a 5x5 integer matrix
 * product) and answers 200 with a short text body naming the host, boot id and counter, and
 * closes the connection. Its TCP connections live in the host, not in guest memory: one
 * accepted but unanswered when the guest leaves the host is reset.
 */
#ifndef XLEXT_CORE_GUESTPROTO_H
#define XLEXT_CORE_GUESTPROTO_H

#include <stdint.h>

#define GUEST_PROBE_PORT        7777
#define GUEST_HTTP_PORT         80
#define GUEST_PROBE_MAGIC       "XLXP"
#define GUEST_PROBE_REPLY_MAGIC "XLXR"

/* What the service answers, in host byte order (both ends run on the same kind of host). */
struct guest_probe_reply {
	char magic[4]; /* GUEST_PROBE_REPLY_MAGIC */
	uint32_t seq;  /* the probe's sequence number */
	uint64_t boot_id;
	uint64_t counter; /* grows while the guest runs; never goes back across a migration */
	uint32_t domid;
	char host[28]; /* the host the guest runs on */
};

#endif
