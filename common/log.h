/*
 * log.h - levelled logging with pluggable sinks.
 *
 * A sink is a tiny vtable (like libxl's xentoollog logger): stderr for command-line tools
 * (verbosity raised with -v), syslog for daemons, and a capture sink that keeps messages in
 * memory for tests. Messages carry the calling function; callers name the domain, node or
 * disk concerned in the text. Thread-safe: emission is serialised.
 */
#ifndef XLEXT_COMMON_LOG_H
#define XLEXT_COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOGL_ERROR = 0,
	LOGL_WARN = 1,
	LOGL_INFO = 2,
	LOGL_DEBUG = 3,
};

struct log_sink {
	/* Emit one formatted message (no trailing newline). */
	void (*emit)(struct log_sink *sink, enum log_level level, const char *func,
	             const char *msg);
	/* Release the sink; may be NULL for static sinks. */
	void (*destroy)(struct log_sink *sink);
};

/* Install a sink (NULL restores the default stderr sink); returns the previous one. */
struct log_sink *log_set_sink(struct log_sink *sink);

/* Messages above this level are dropped (default LOGL_WARN). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Raise verbosity by one level per -v. */
void log_verbose(void);

/* Core entry point; prefer the macros below. */
void log_msg(enum log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *func, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Like log_msg, with ": <strerror(errnum)>" appended (OpenBSD's log_warn). */
void log_msg_errno(enum log_level level, const char *func, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_error(...)          log_msg(LOGL_ERROR, __func__, __VA_ARGS__)
#define log_warn(...)           log_msg(LOGL_WARN, __func__, __VA_ARGS__)
#define log_info(...)           log_msg(LOGL_INFO, __func__, __VA_ARGS__)
#define log_debug(...)          log_msg(LOGL_DEBUG, __func__, __VA_ARGS__)
#define log_error_errno(e, ...) log_msg_errno(LOGL_ERROR, __func__, (e), __VA_ARGS__)
#define log_warn_errno(e, ...)  log_msg_errno(LOGL_WARN, __func__, (e), __VA_ARGS__)

/* Name of a level ("error", "warning", "info", "debug"). */
const char *log_level_name(enum log_level level);

/*
 * stderr sink: "<prog>: <message>" for errors and warnings; at debug level the function name
 * is shown too. The returned sink is static.
 */
struct log_sink *log_sink_stderr(const char *prog);

/* syslog sink: openlog(ident, LOG_PID, facility); the sink owns the openlog. */
struct log_sink *log_sink_syslog(const char *ident, int facility);

/* Capture sink for tests: keeps every message (level, function, text) in memory. */
struct log_sink *log_sink_capture(void);
size_t log_capture_count(struct log_sink *capture);
/* Message i ("<level>: <func>: <text>") or NULL when out of range. */
const char *log_capture_get(struct log_sink *capture, size_t i);
/* 1 if some captured message contains needle. */
int log_capture_contains(struct log_sink *capture, const char *needle);
void log_capture_clear(struct log_sink *capture);

#endif
