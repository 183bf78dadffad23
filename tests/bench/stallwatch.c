/*
 * stallwatch.c - notice when a CPU of this machine stops running anything for a while.
 *
 *   stallwatch <duration_ms> [threshold_ms]
 *
 * One thread per online CPU, pinned to it at a real-time priority above the simulated guests'
 * (which run at the lowest), sleeps 1 ms at a time. A wake-up later than threshold_ms (default
 * 10) means nothing could run there meanwhile: the hypervisor under this virtual machine took
 * the CPU away (every timer of that CPU then fires at once), or a task sat that long inside
 * the kernel (these kernels do not preempt there). Each is printed on stdout as
 *
 *   stall cpu<N> <ms> ms ending at <CLOCK_REALTIME s>
 *
 * so that a benchmark can tell the gaps a client sees that the sim caused from those the
 * machine did. SIGTERM or SIGINT ends it early.
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static int64_t threshold_ns = 10000000;
static int64_t end_ns;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void *watch(void *arg)
{
	long cpu = (long)arg;
	struct sched_param sp = {.sched_priority = 2};
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp); /* best effort */
	while (!stop && now_ns(CLOCK_MONOTONIC) < end_ns) {
		struct timespec nap = {.tv_nsec = 1000000};
		int64_t t0 = now_ns(CLOCK_MONOTONIC), late;

		clock_nanosleep(CLOCK_MONOTONIC, 0, &nap, NULL);
		late = now_ns(CLOCK_MONOTONIC) - t0 - 1000000;
		if (late < threshold_ns)
			continue;
		pthread_mutex_lock(&out_lock);
		printf("stall cpu%ld %.1f ms ending at %.3f\n", cpu, (double)late / 1e6,
		       (double)now_ns(CLOCK_REALTIME) / 1e9);
		fflush(stdout);
		pthread_mutex_unlock(&out_lock);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct sigaction sa = {.sa_handler = on_stop};
	pthread_t *threads;

	if (argc < 2 || atoi(argv[1]) < 1 || ncpu < 1) {
		fprintf(stderr, "usage: stallwatch <duration_ms> [threshold_ms]\n");
		return 2;
	}
	if (argc > 2)
		threshold_ns = (int64_t)atoi(argv[2]) * 1000000;
	end_ns = now_ns(CLOCK_MONOTONIC) + (int64_t)atoi(argv[1]) * 1000000;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	threads = calloc((size_t)ncpu, sizeof(*threads));
	if (!threads)
		return 1;
	for (long c = 0; c < ncpu; c++)
		if (pthread_create(&threads[c], NULL, watch, (void *)c))
			return 1;
	for (long c = 0; c < ncpu; c++)
		pthread_join(threads[c], NULL);
	free(threads);
	return 0;
}
