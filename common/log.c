/*
 * log.c - levelled logging with stderr, syslog and capture sinks.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "common/log.h"

#define LOG_LINE_MAX 2048

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level log_threshold = LOGL_WARN;
static struct log_sink *log_current;

const char *log_level_name(enum log_level level)
{
	switch (level) {
	case LOGL_ERROR:
		return "error";
	case LOGL_WARN:
		return "warning";
	case LOGL_INFO:
		return "info";
	case LOGL_DEBUG:
		return "debug";
	}
	return "unknown";
}

/* --- stderr sink ------------------------------------------------------------------------ */

struct stderr_sink {
	struct log_sink sink;
	char prog[64];
};

static void stderr_emit(struct log_sink *sink, enum log_level level, const char *func,
                        const char *msg)
{
	struct stderr_sink *s = (struct stderr_sink *)sink;

	if (log_threshold >= LOGL_DEBUG)
		fprintf(stderr, "%s: %s: %s: %s\n", s->prog, log_level_name(level), func, msg);
	else if (level == LOGL_WARN)
		fprintf(stderr, "%s: warning: %s\n", s->prog, msg);
	else if (level == LOGL_ERROR)
		fprintf(stderr, "%s: %s\n", s->prog, msg);
	else
		fprintf(stderr, "%s: %s\n", s->prog, msg);
}

static struct stderr_sink stderr_sink_instance = {
    .sink = {.emit = stderr_emit, .destroy = NULL},
    .prog = "xl-ext",
};

struct log_sink *log_sink_stderr(const char *prog)
{
	if (prog) {
		const char *slash = strrchr(prog, '/');

		snprintf(stderr_sink_instance.prog, sizeof(stderr_sink_instance.prog), "%s",
		         slash ? slash + 1 : prog);
	}
	return &stderr_sink_instance.sink;
}

/* --- syslog sink ------------------------------------------------------------------------ */

struct syslog_sink {
	struct log_sink sink;
	char ident[64];
};

static void syslog_emit(struct log_sink *sink, enum log_level level, const char *func,
                        const char *msg)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

	(void)sink;
	if (level == LOGL_DEBUG)
		syslog(prio[level], "%s: %s", func, msg);
	else
		syslog(prio[level], "%s", msg);
}

static void syslog_destroy(struct log_sink *sink)
{
	closelog();
	free(sink);
}

struct log_sink *log_sink_syslog(const char *ident, int facility)
{
	struct syslog_sink *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->sink.emit = syslog_emit;
	s->sink.destroy = syslog_destroy;
	/* openlog keeps the pointer: it must outlive the sink, so it lives inside it. */
	snprintf(s->ident, sizeof(s->ident), "%s", ident);
	openlog(s->ident, LOG_PID | LOG_NDELAY, facility);
	return &s->sink;
}

/* --- capture sink ----------------------------------------------------------------------- */

struct capture_sink {
	struct log_sink sink;
	char **lines;
	size_t n, cap;
};

static void capture_emit(struct log_sink *sink, enum log_level level, const char *func,
                         const char *msg)
{
	struct capture_sink *c = (struct capture_sink *)sink;
	char *line;

	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 16;
		char **nl = realloc(c->lines, ncap * sizeof(*nl));

		if (!nl)
			return;
		c->lines = nl;
		c->cap = ncap;
	}
	if (asprintf(&line, "%s: %s: %s", log_level_name(level), func, msg) < 0)
		return;
	c->lines[c->n++] = line;
}

void log_capture_clear(struct log_sink *capture)
{
	struct capture_sink *c = (struct capture_sink *)capture;

	for (size_t i = 0; i < c->n; i++)
		free(c->lines[i]);
	c->n = 0;
}

static void capture_destroy(struct log_sink *sink)
{
	struct capture_sink *c = (struct capture_sink *)sink;

	log_capture_clear(sink);
	free(c->lines);
	free(c);
}

struct log_sink *log_sink_capture(void)
{
	struct capture_sink *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->sink.emit = capture_emit;
	c->sink.destroy = capture_destroy;
	return &c->sink;
}

size_t log_capture_count(struct log_sink *capture)
{
	return ((struct capture_sink *)capture)->n;
}

const char *log_capture_get(struct log_sink *capture, size_t i)
{
	struct capture_sink *c = (struct capture_sink *)capture;

	return i < c->n ? c->lines[i] : NULL;
}

int log_capture_contains(struct log_sink *capture, const char *needle)
{
	struct capture_sink *c = (struct capture_sink *)capture;

	for (size_t i = 0; i < c->n; i++)
		if (strstr(c->lines[i], needle))
			return 1;
	return 0;
}

/* --- core ------------------------------------------------------------------------------- */

struct log_sink *log_set_sink(struct log_sink *sink)
{
	struct log_sink *old;

	pthread_mutex_lock(&log_lock);
	old = log_current;
	log_current = sink;
	pthread_mutex_unlock(&log_lock);
	return old ? old : log_sink_stderr(NULL);
}

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

enum log_level log_get_level(void)
{
	return log_threshold;
}

void log_verbose(void)
{
	if (log_threshold < LOGL_DEBUG)
		log_threshold++;
}

void log_vmsg(enum log_level level, const char *func, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_MAX];
	int saved_errno = errno;
	struct log_sink *sink;

	if (level > log_threshold)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	pthread_mutex_lock(&log_lock);
	sink = log_current ? log_current : &stderr_sink_instance.sink;
	sink->emit(sink, level, func ? func : "?", buf);
	pthread_mutex_unlock(&log_lock);
	errno = saved_errno;
}

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, func, fmt, ap);
	va_end(ap);
}

void log_msg_errno(enum log_level level, const char *func, int errnum, const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(level, func, "%s: %s", buf, strerror(errnum));
}
