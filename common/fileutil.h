/*
 * fileutil.h - small file helpers: atomic writes, whole-file reads.
 */
#ifndef XLEXT_COMMON_FILEUTIL_H
#define XLEXT_COMMON_FILEUTIL_H

#include <stddef.h>

/*
 * Write data to path atomically: a temporary file in the same directory, fsync, rename.
 * Readers see the old or the new content, never a mix. mode is the new file's mode.
 */
int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode);

/*
 * The same without fsync: still atomic for readers, but not durable across a crash. For
 * run-time state (under /run) that a reboot discards anyway.
 */
int file_write_atomic_volatile(const char *path, const void *data, size_t len, unsigned mode);

/* Read a whole file (at most max bytes) into a NUL-terminated buffer; caller frees. */
int file_read_all(const char *path, size_t max, char **data_r, size_t *len_r);

/* Read or write exactly len bytes, retrying on EINTR and short transfers. ERR_IO at EOF. */
int fd_read_exact(int fd, void *buf, size_t len);
int fd_write_exact(int fd, const void *buf, size_t len);

/* Wait until fd is readable, at most timeout_ms (-1: no limit); ERR_TIMEOUT when it is not. */
int fd_wait_readable(int fd, int timeout_ms);

/* fd_read_exact, but all of it within timeout_ms: ERR_TIMEOUT when the bytes do not come. */
int fd_read_exact_timeout(int fd, void *buf, size_t len, int timeout_ms);

/* Copy src into dst (size n), truncating; always NUL-terminates. Returns 1 if truncated. */
int str_copy(char *dst, size_t n, const char *src);

#endif
