/*
 * loop.c - poll(2) event loop with monotonic timers and signalfd signals.
 *
 * Watches live in linked lists and are only unlinked between dispatch passes (a removed watch
 * is marked dead and reaped later), so a callback may remove any watch safely.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/loop.h"

struct loop_fd {
	struct loop_fd *next;
	struct loop *loop;
	int fd;
	short events;
	bool dead;
	loop_fd_cb *cb;
	void *arg;
};

struct loop_timer {
	struct loop_timer *next;
	struct loop *loop;
	int64_t due_ms;
	bool dead;
	bool armed;
	loop_timer_cb *cb;
	void *arg;
};

struct loop_sig {
	int signo;
	loop_signal_cb *cb;
	void *arg;
};

struct loop {
	struct loop_fd *fds;
	struct loop_timer *timers;
	struct pollfd *pfds;
	struct loop_fd **pwatch;
	size_t pcap;
	int sigfd;
	struct loop_fd *sigwatch;
	sigset_t sigmask, oldmask;
	struct loop_sig sigs[16];
	size_t nsigs;
	bool quit;
	int quit_rc;
	bool dispatching;
};

int64_t loop_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t loop_now_ms(void)
{
	return loop_now_us() / 1000;
}

int loop_new(struct loop **loop_r)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return ERR_NOMEM;
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	*loop_r = loop;
	return 0;
}

static void loop_reap(struct loop *loop)
{
	struct loop_fd **fp = &loop->fds;
	struct loop_timer **tp = &loop->timers;

	while (*fp) {
		if ((*fp)->dead) {
			struct loop_fd *dead = *fp;

			*fp = dead->next;
			free(dead);
		} else {
			fp = &(*fp)->next;
		}
	}
	while (*tp) {
		if ((*tp)->dead) {
			struct loop_timer *dead = *tp;

			*tp = dead->next;
			free(dead);
		} else {
			tp = &(*tp)->next;
		}
	}
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	for (struct loop_fd *w = loop->fds; w; w = w->next)
		w->dead = true;
	for (struct loop_timer *t = loop->timers; t; t = t->next)
		t->dead = true;
	loop_reap(loop);
	if (loop->sigfd >= 0) {
		close(loop->sigfd);
		sigprocmask(SIG_SETMASK, &loop->oldmask, NULL);
	}
	free(loop->pfds);
	free(loop->pwatch);
	free(loop);
}

struct loop_fd *loop_fd_add(struct loop *loop, int fd, short events, loop_fd_cb *cb, void *arg)
{
	struct loop_fd *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->loop = loop;
	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->arg = arg;
	w->next = loop->fds;
	loop->fds = w;
	return w;
}

void loop_fd_modify(struct loop_fd *watch, short events)
{
	watch->events = events;
}

void loop_fd_remove(struct loop_fd *watch)
{
	if (watch)
		watch->dead = true;
}

struct loop_timer *loop_timer_add(struct loop *loop, int64_t due_ms, loop_timer_cb *cb, void *arg)
{
	struct loop_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->loop = loop;
	t->due_ms = due_ms;
	t->armed = true;
	t->cb = cb;
	t->arg = arg;
	t->next = loop->timers;
	loop->timers = t;
	return t;
}

void loop_timer_modify(struct loop_timer *timer, int64_t due_ms)
{
	timer->due_ms = due_ms;
	timer->armed = true;
}

void loop_timer_remove(struct loop_timer *timer)
{
	if (timer)
		timer->dead = true;
}

static void loop_signal_ready(struct loop *loop, struct loop_fd *watch, int fd, short revents,
                              void *arg)
{
	struct signalfd_siginfo si;

	(void)watch;
	(void)revents;
	(void)arg;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		for (size_t i = 0; i < loop->nsigs; i++)
			if (loop->sigs[i].signo == (int)si.ssi_signo)
				loop->sigs[i].cb(loop, (int)si.ssi_signo, loop->sigs[i].arg);
	}
}

int loop_signal_add(struct loop *loop, int signo, loop_signal_cb *cb, void *arg)
{
	sigset_t one;
	int fd;

	if (loop->nsigs == sizeof(loop->sigs) / sizeof(loop->sigs[0]))
		return ERR_NOSPACE;
	for (size_t i = 0; i < loop->nsigs; i++)
		if (loop->sigs[i].signo == signo)
			return ERR_EXISTS;
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (loop->sigfd < 0) {
		if (sigprocmask(SIG_BLOCK, &one, &loop->oldmask) < 0)
			return err_from_errno(errno);
	} else if (sigprocmask(SIG_BLOCK, &one, NULL) < 0) {
		return err_from_errno(errno);
	}
	sigaddset(&loop->sigmask, signo);
	fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return err_from_errno(errno);
	if (loop->sigfd < 0) {
		loop->sigfd = fd;
		loop->sigwatch = loop_fd_add(loop, fd, POLLIN, loop_signal_ready, NULL);
		if (!loop->sigwatch)
			return ERR_NOMEM;
	}
	loop->sigs[loop->nsigs].signo = signo;
	loop->sigs[loop->nsigs].cb = cb;
	loop->sigs[loop->nsigs].arg = arg;
	loop->nsigs++;
	return 0;
}

static int loop_next_timeout(struct loop *loop, int timeout_ms, int64_t now)
{
	for (struct loop_timer *t = loop->timers; t; t = t->next) {
		int64_t wait;

		if (t->dead || !t->armed)
			continue;
		wait = t->due_ms - now;
		if (wait < 0)
			wait = 0;
		if (timeout_ms < 0 || wait < timeout_ms)
			timeout_ms = (int)wait;
	}
	return timeout_ms;
}

static int loop_run_timers(struct loop *loop)
{
	int64_t now = loop_now_ms();
	int ran = 0;

	for (struct loop_timer *t = loop->timers; t; t = t->next) {
		if (t->dead || !t->armed || t->due_ms > now)
			continue;
		/* One-shot: disarm before the callback, which may re-arm it. */
		t->armed = false;
		t->cb(loop, t, t->arg);
		ran++;
	}
	return ran;
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
	size_t n = 0;
	int ran, rc;

	loop_reap(loop);
	for (struct loop_fd *w = loop->fds; w; w = w->next)
		n++;
	if (n > loop->pcap) {
		struct pollfd *np = realloc(loop->pfds, n * sizeof(*np));
		struct loop_fd **nw;

		if (!np)
			return ERR_NOMEM;
		loop->pfds = np;
		nw = realloc(loop->pwatch, n * sizeof(*nw));
		if (!nw)
			return ERR_NOMEM;
		loop->pwatch = nw;
		loop->pcap = n;
	}
	n = 0;
	for (struct loop_fd *w = loop->fds; w; w = w->next) {
		loop->pfds[n].fd = w->fd;
		loop->pfds[n].events = w->events;
		loop->pfds[n].revents = 0;
		loop->pwatch[n++] = w;
	}
	timeout_ms = loop_next_timeout(loop, timeout_ms, loop_now_ms());
	if (n == 0 && timeout_ms < 0)
		return ERR_INVAL; /* nothing could ever wake us */
	rc = poll(loop->pfds, n, timeout_ms);
	if (rc < 0) {
		if (errno == EINTR)
			return 0;
		return err_from_errno(errno);
	}
	ran = 0;
	for (size_t i = 0; i < n && rc > 0; i++) {
		struct loop_fd *w = loop->pwatch[i];

		if (!loop->pfds[i].revents)
			continue;
		rc--;
		if (w->dead)
			continue;
		w->cb(loop, w, w->fd, loop->pfds[i].revents, w->arg);
		ran++;
	}
	ran += loop_run_timers(loop);
	return ran;
}

int loop_run(struct loop *loop)
{
	loop->quit = false;
	while (!loop->quit) {
		int rc = loop_run_once(loop, -1);

		if (rc < 0)
			return rc;
	}
	return loop->quit_rc;
}

void loop_quit(struct loop *loop, int rc)
{
	loop->quit = true;
	loop->quit_rc = rc;
}
