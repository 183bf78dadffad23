/*
 * daemon.h - the haagent daemon's main loop (daemon.c).
 */
#ifndef XLEXT_HAAGENT_DAEMON_H
#define XLEXT_HAAGENT_DAEMON_H

#include "haagent/conf.h"

/*
 * Run the daemon with cfg until SIGTERM/SIGINT (after draining this node's guests).
 * Returns 0 after a clean stop, 1 when the drain timed out or a second signal cut it short,
 * or a negative error code when it could not start (unknown backend, socket).
 */
int ha_daemon_run(const struct ha_config *cfg);

#endif
