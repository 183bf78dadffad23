/*
 * fuzz_util.c - helpers of the fuzz harnesses (fuzz.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "common/log.h"
#include "tests/fuzz/fuzz.h"

static void quiet_emit(struct log_sink *sink, enum log_level level, const char *func,
                       const char *msg)
{
	(void)sink;
	(void)level;
	(void)func;
	(void)msg;
}

void fuzz_quiet(void)
{
	static struct log_sink quiet = {.emit = quiet_emit};
	static int done;

	if (!done && !getenv("FUZZ_VERBOSE")) {
		log_set_sink(&quiet);
		done = 1;
	}
}

int fuzz_reader(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-input", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if ((size && fd_write_exact(fd, data, size)) || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int fuzz_socket(const uint8_t *data, size_t size, int *near, int *far)
{
	int sp[2], buf = (int)size + 65536;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sp[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if ((size && fd_write_exact(sp[1], data, size)) || shutdown(sp[1], SHUT_WR) < 0) {
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	*near = sp[0];
	*far = sp[1];
	return 0;
}

char *fuzz_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return NULL;
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}
