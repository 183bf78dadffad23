/* Unit tests of common/loop.c: fds, timers, removal from callbacks, signals. */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/loop.h"

struct ctx {
	int reads;
	char last;
	int timer_order[4];
	int ntimers;
	struct loop_fd *other;
	int signals;
};

static void on_read(struct loop *loop, struct loop_fd *w, int fd, short revents, void *arg)
{
	struct ctx *c = arg;
	char ch;

	(void)loop;
	(void)w;
	assert_true(revents & POLLIN);
	assert_int_equal(read(fd, &ch, 1), 1);
	c->last = ch;
	c->reads++;
}

static void test_fd_readable(void **state)
{
	struct loop *loop;
	struct ctx c = {0};
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(loop_new(&loop), 0);
	assert_non_null(loop_fd_add(loop, p[0], POLLIN, on_read, &c));
	assert_int_equal(loop_run_once(loop, 0), 0); /* nothing ready */
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_run_once(loop, 1000), 1);
	assert_int_equal(c.reads, 1);
	assert_int_equal(c.last, 'x');
	loop_free(loop);
	close(p[0]);
	close(p[1]);
}

static void on_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct ctx *c = arg;

	(void)t;
	c->timer_order[c->ntimers++] = (int)(loop_now_ms() & 0x7fffffff);
	if (c->ntimers == 2)
		loop_quit(loop, 7);
}

static void test_timers_fire_in_time(void **state)
{
	struct loop *loop;
	struct ctx c = {0};
	int64_t start = loop_now_ms();

	(void)state;
	assert_int_equal(loop_new(&loop), 0);
	assert_non_null(loop_timer_add(loop, start + 30, on_timer, &c));
	assert_non_null(loop_timer_add(loop, start + 10, on_timer, &c));
	assert_int_equal(loop_run(loop), 7);
	assert_int_equal(c.ntimers, 2);
	/* never early: the loop must not fire a timer before it is due */
	assert_true(loop_now_ms() - start >= 30);
	loop_free(loop);
}

static void on_read_remove_other(struct loop *loop, struct loop_fd *w, int fd, short revents,
                                 void *arg)
{
	struct ctx *c = arg;

	on_read(loop, w, fd, revents, arg);
	loop_fd_remove(c->other);
	loop_fd_remove(w);
}

static void test_remove_from_callback(void **state)
{
	struct loop *loop;
	struct ctx c = {0};
	int p[2], q[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	assert_int_equal(loop_new(&loop), 0);
	/* the later-added watch is dispatched first; it removes the other and itself */
	c.other = loop_fd_add(loop, p[0], POLLIN, on_read, &c);
	assert_non_null(loop_fd_add(loop, q[0], POLLIN, on_read_remove_other, &c));
	assert_int_equal(write(p[1], "a", 1), 1);
	assert_int_equal(write(q[1], "b", 1), 1);
	assert_int_equal(loop_run_once(loop, 1000), 1);
	assert_int_equal(c.reads, 1);
	assert_int_equal(c.last, 'b');
	/* both are gone: nothing left to wait for */
	assert_int_equal(loop_run_once(loop, -1), ERR_INVAL);
	loop_free(loop);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

static void on_timer_rearm(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct ctx *c = arg;

	c->ntimers++;
	if (c->ntimers < 3)
		loop_timer_modify(t, loop_now_ms() + 1);
	else
		loop_quit(loop, 0);
}

static void test_timer_rearm_and_remove(void **state)
{
	struct loop *loop;
	struct ctx c = {0};
	struct loop_timer *gone;

	(void)state;
	assert_int_equal(loop_new(&loop), 0);
	assert_non_null(loop_timer_add(loop, loop_now_ms(), on_timer_rearm, &c));
	gone = loop_timer_add(loop, loop_now_ms(), on_timer, &c);
	loop_timer_remove(gone);
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(c.ntimers, 3);
	loop_free(loop);
}

static void on_signal(struct loop *loop, int signo, void *arg)
{
	struct ctx *c = arg;

	assert_int_equal(signo, SIGUSR1);
	c->signals++;
	loop_quit(loop, 0);
}

static void test_signal(void **state)
{
	struct loop *loop;
	struct ctx c = {0};

	(void)state;
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(loop_signal_add(loop, SIGUSR1, on_signal, &c), 0);
	assert_int_equal(loop_signal_add(loop, SIGUSR1, on_signal, &c), ERR_EXISTS);
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(c.signals, 1);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fd_readable),
	    cmocka_unit_test(test_timers_fire_in_time),
	    cmocka_unit_test(test_remove_from_callback),
	    cmocka_unit_test(test_timer_rearm_and_remove),
	    cmocka_unit_test(test_signal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
