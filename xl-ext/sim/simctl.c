/*
 * simctl.c - framing of the sim control channel over unix SOCK_SEQPACKET sockets.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "xl-ext/sim/simctl.h"

int simctl_connect(const char *path, int *fd_r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return ERR_INVAL;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_from_errno(errno);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		return e == ECONNREFUSED ? ERR_NOTFOUND : err_from_errno(e);
	}
	*fd_r = fd;
	return 0;
}

int simctl_call(int fd, const char *request, const void *data, size_t data_len, void *out,
                size_t cap, size_t *len_r, int *fd_r)
{
	size_t rlen = strlen(request) + 1;
	struct iovec iov[2] = {{(void *)request, rlen}, {(void *)data, data_len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = data_len ? 2 : 1};
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct simctl_hdr hdr;
	struct iovec riov[2];
	struct cmsghdr *c;
	char *scratch = NULL;
	ssize_t n;
	int rc;

	if (fd_r)
		*fd_r = -1;
	if (len_r)
		*len_r = 0;
	if (rlen + data_len > SIMCTL_MAX_MSG)
		return ERR_INVAL;
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		return ERR_IO;
	rc = fd_wait_readable(fd, SIMCTL_TIMEOUT_MS);
	if (rc)
		return rc;
	if (!out || !cap) {
		scratch = malloc(SIMCTL_MAX_MSG);
		if (!scratch)
			return ERR_NOMEM;
		out = scratch;
		cap = SIMCTL_MAX_MSG;
	}
	riov[0].iov_base = &hdr;
	riov[0].iov_len = sizeof(hdr);
	riov[1].iov_base = out;
	riov[1].iov_len = cap;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = riov;
	mh.msg_iovlen = 2;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < (ssize_t)sizeof(hdr)) {
		rc = n < 0 ? err_from_errno(errno) : ERR_IO;
		goto out;
	}
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int passed;

			memcpy(&passed, CMSG_DATA(c), sizeof(int));
			if (fd_r)
				*fd_r = passed;
			else
				close(passed);
		}
	}
	if ((mh.msg_flags & MSG_TRUNC) || hdr.len != (size_t)n - sizeof(hdr) || hdr.rc > 0 ||
	    hdr.rc < ERR_CODE_MIN) {
		rc = ERR_PROTO;
		goto out;
	}
	if (hdr.len < cap)
		((char *)out)[hdr.len] = '\0';
	if (len_r)
		*len_r = hdr.len;
	rc = hdr.rc;
	if (rc && scratch && hdr.len)
		log_error("%s", scratch);
out:
	free(scratch);
	return rc;
}

int simctl_recv(int fd, void *buf, size_t cap, size_t *len_r)
{
	struct iovec iov = {buf, cap};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

	if (n < 0)
		return err_from_errno(errno);
	if (mh.msg_flags & MSG_TRUNC)
		return ERR_PROTO;
	*len_r = (size_t)n;
	return 0;
}

int simctl_reply(int fd, int rc, const void *payload, size_t len, int pass_fd)
{
	struct simctl_hdr hdr = {.rc = rc, .len = (uint32_t)len};
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)payload, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	char cbuf[CMSG_SPACE(sizeof(int))];

	if (len > SIMCTL_MAX_MSG)
		return ERR_INVAL;
	if (pass_fd >= 0) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		return err_from_errno(errno);
	return 0;
}
