/*
 * simdom_helper.c - xl-ext-simdom, the program a simulated domU runs as: one process per
 * guest, started by the sim backend (sim_spawn.c) from $(pkglibexecdir), or from
 * $XLEXT_SIMDOM in the build tree and the tests.
 *
 *   xl-ext-simdom DIR boot|incoming NOTIFY_FD
 *
 * DIR is the domain's state directory (config.json there); NOTIFY_FD, inherited from the
 * backend, receives one byte once the domain is ready (0) or has failed (1). Not a command
 * for people: it exits 2 on any other use.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "xl-ext/sim/simdom.h"

int main(int argc, char **argv)
{
	char *end = NULL;
	long notify_fd;

	log_set_sink(log_sink_stderr("xl-ext-simdom"));
	log_set_level(LOGL_INFO);
	if (argc == 4)
		notify_fd = strtol(argv[3], &end, 10);
	if (argc != 4 || (strcmp(argv[2], "boot") && strcmp(argv[2], "incoming")) || !end || *end ||
	    notify_fd < -1) {
		fprintf(stderr, "usage: xl-ext-simdom DIR boot|incoming NOTIFY_FD\n"
		                "(started by xl-ext's sim backend for each simulated domain)\n");
		return 2;
	}
	return simdom_run(argv[1], !strcmp(argv[2], "incoming"), (int)notify_fd);
}
