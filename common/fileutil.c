/*
 * fileutil.c - atomic file writes and exact reads/writes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/loop.h"

static int write_atomic(const char *path, const void *data, size_t len, unsigned mode, int durable)
{
	char tmp[4096];
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return ERR_INVAL;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return err_from_errno(errno);
	rc = fd_write_exact(fd, data, len);
	if (!rc && durable && fsync(fd) < 0)
		rc = err_from_errno(errno);
	if (close(fd) < 0 && !rc)
		rc = err_from_errno(errno);
	if (!rc && rename(tmp, path) < 0)
		rc = err_from_errno(errno);
	if (rc)
		unlink(tmp);
	return rc;
}

int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	return write_atomic(path, data, len, mode, 1);
}

int file_write_atomic_volatile(const char *path, const void *data, size_t len, unsigned mode)
{
	return write_atomic(path, data, len, mode, 0);
}

int file_read_all(const char *path, size_t max, char **data_r, size_t *len_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = 4096;
	char *buf;

	if (fd < 0)
		return err_from_errno(errno);
	buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return ERR_NOMEM;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb;

			if (cap >= max) {
				free(buf);
				close(fd);
				return ERR_NOSPACE;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				close(fd);
				return ERR_NOMEM;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			free(buf);
			close(fd);
			return err_from_errno(e);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > max) {
		free(buf);
		return ERR_NOSPACE;
	}
	buf[len] = '\0';
	*data_r = buf;
	if (len_r)
		*len_r = len;
	return 0;
}

int fd_read_exact(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? ERR_IO : err_from_errno(errno);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fd_write_exact(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EPIPE ? ERR_IO : err_from_errno(errno);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fd_wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int rc;

	do {
		rc = poll(&p, 1, timeout_ms);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return err_from_errno(errno);
	return rc == 0 ? ERR_TIMEOUT : 0;
}

int fd_read_exact_timeout(int fd, void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = loop_now_ms() + timeout_ms;
	char *p = buf;

	while (len) {
		int64_t left = deadline - loop_now_ms();
		ssize_t n;
		int rc;

		rc = left > 0 ? fd_wait_readable(fd, (int)left) : ERR_TIMEOUT;
		if (rc)
			return rc;
		n = read(fd, p, len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return n == 0 ? ERR_IO : err_from_errno(errno);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int str_copy(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);

	if (n == 0)
		return 1;
	if (len >= n) {
		memcpy(dst, src, n - 1);
		dst[n - 1] = '\0';
		return 1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}
