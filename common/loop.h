/*
 * loop.h - the project's poll(2)-based event loop.
 *
 * One loop per process (or per thread that owns one). It watches file descriptors, runs
 * timers on the monotonic clock and delivers signals through a signalfd. It is built to host
 * libxl's osevent hooks (fd register/modify/deregister, absolute timeouts) and corosync's
 * dispatch fds (cpg_fd_get, votequorum_fd_get), so the daemon and the CLI never run a second
 * loop. Callbacks may add or remove any watch, including their own.
 */
#ifndef XLEXT_COMMON_LOOP_H
#define XLEXT_COMMON_LOOP_H

#include <poll.h>
#include <stdint.h>

struct loop;
struct loop_fd;
struct loop_timer;

typedef void loop_fd_cb(struct loop *loop, struct loop_fd *watch, int fd, short revents, void *arg);
typedef void loop_timer_cb(struct loop *loop, struct loop_timer *timer, void *arg);
typedef void loop_signal_cb(struct loop *loop, int signo, void *arg);

/* Monotonic time in milliseconds / microseconds. */
int64_t loop_now_ms(void);
int64_t loop_now_us(void);

int loop_new(struct loop **loop_r);
/* Frees the loop and every watch still registered; restores blocked signals. */
void loop_free(struct loop *loop);

/* Watch fd for events (POLLIN, POLLOUT...). Returns NULL on allocation failure. */
struct loop_fd *loop_fd_add(struct loop *loop, int fd, short events, loop_fd_cb *cb, void *arg);
void loop_fd_modify(struct loop_fd *watch, short events);
void loop_fd_remove(struct loop_fd *watch);

/* One-shot timer due at the absolute monotonic time due_ms. */
struct loop_timer *loop_timer_add(struct loop *loop, int64_t due_ms, loop_timer_cb *cb, void *arg);
void loop_timer_modify(struct loop_timer *timer, int64_t due_ms);
void loop_timer_remove(struct loop_timer *timer);

/* Deliver signo through the loop (blocks it and reads a signalfd). One handler per signal. */
int loop_signal_add(struct loop *loop, int signo, loop_signal_cb *cb, void *arg);

/*
 * Wait at most timeout_ms (-1: until something happens) and run what is ready.
 * Returns the number of callbacks run, or a negative error code.
 */
int loop_run_once(struct loop *loop, int timeout_ms);

/* Run until loop_quit(); returns the value passed to loop_quit. */
int loop_run(struct loop *loop);
void loop_quit(struct loop *loop, int rc);

#endif
