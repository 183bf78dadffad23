/*
 * simctl.h - the control channel between the sim backend and a simulated domU process.
 *
 * A root-only unix SOCK_SEQPACKET socket in the domain's state directory. A request is a
 * NUL-terminated command line, optionally followed by binary data; a reply is a header
 * (i32 rc, u32 length) and a payload (text for errors and queries, binary for state), with at
 * most one file descriptor attached (guest memory, dirty bitmap). Bounded: messages larger
 * than SIMCTL_MAX_MSG are refused.
 */
#ifndef XLEXT_SIM_SIMCTL_H
#define XLEXT_SIM_SIMCTL_H

#include <stddef.h>
#include <stdint.h>

#define SIMCTL_MAX_MSG    (64u * 1024)
#define SIMCTL_TIMEOUT_MS 10000

struct simctl_hdr {
	int32_t rc;
	uint32_t len;
};

/* Connect to a domain's control socket. */
int simctl_connect(const char *path, int *fd_r);

/*
 * Send request (+ optional data) and wait for the reply. The payload is copied into out
 * (capacity cap, NUL-terminated when there is room); *len_r gets its length; *fd_r (if not
 * NULL) a passed descriptor or -1. Returns the domain's rc (0 or negative); transport errors
 * are ERR_IO / ERR_TIMEOUT.
 */
int simctl_call(int fd, const char *request, const void *data, size_t data_len, void *out,
                size_t cap, size_t *len_r, int *fd_r);

/* Server side: receive one request into buf; returns its length (0 on EOF) or an error. */
int simctl_recv(int fd, void *buf, size_t cap, size_t *len_r);
/* Server side: send a reply with optional payload and descriptor (-1 for none). */
int simctl_reply(int fd, int rc, const void *payload, size_t len, int pass_fd);

#endif
