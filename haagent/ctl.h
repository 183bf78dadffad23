/*
 * ctl.h - haagent's control socket: a root-only unix socket, one JSON request and one JSON
 * answer per connection.
 *
 * Server: the socket is created 0600 in a 0700 directory, and every client's uid is checked
 * with SO_PEERCRED as well. A request is at most HA_CTL_REQUEST_MAX bytes, ended by the
 * client's shutdown(SHUT_WR); larger, slow (over HA_CTL_TIMEOUT_MS) or malformed requests
 * get an error answer and the daemon carries on.
 *
 * Requests: {"cmd": "status" | "nodes" | "guests" | "events"}
 *           {"cmd": "mark-failing", "node": N, "reason": R}   {"cmd": "clear", "node": N}
 *           {"cmd": "migrate", "guest": G, "node": N}
 *           {"cmd": "where", "guest": G}: its owner, state, and the node that takes it when
 *               its owner leaves (where it is moving, else the plan with its owner failing)
 *           {"cmd": "leaving", "node": N}: is N (default this node) failing or draining
 * Answers:  {"ok": true, ...} or {"ok": false, "error": "what failed and why"}
 */
#ifndef XLEXT_HAAGENT_CTL_H
#define XLEXT_HAAGENT_CTL_H

#include <stddef.h>
#include <sys/types.h>

#include "haagent/state.h"

#define HA_CTL_REQUEST_MAX 4096
#define HA_CTL_REPLY_MAX   (4 * 1024 * 1024)
#define HA_CTL_TIMEOUT_MS  2000

/*
 * Create the listening socket at path (its directory made 0700 if missing, a stale socket
 * replaced). *fd_r is non-blocking. ERR_PERM, ERR_IO, ERR_INVAL (path too long).
 */
int ha_ctl_listen(const char *path, int *fd_r);

/*
 * Answer one request (pure: no I/O). Commands that change the cluster are submitted to st's
 * outbox. *reply_r (caller frees) is always set when 0 is returned; ERR_NOMEM otherwise.
 */
int ha_ctl_handle(struct ha_state *st, const char *request, size_t len, char **reply_r);

/*
 * Accept one client on listen_fd and serve it: check its uid is allowed_uid, read the
 * bounded request, answer with ha_ctl_handle(). Returns 0 when a client was served (even
 * with an error answer), ERR_BUSY when none was waiting.
 */
int ha_ctl_serve_one(int listen_fd, uid_t allowed_uid, struct ha_state *st);

/*
 * Client: send request to the daemon at path and read the answer (*reply_r, caller frees).
 * ERR_NOTFOUND (no daemon), ERR_PERM (not root), ERR_TIMEOUT, ERR_IO, ERR_PROTO.
 */
int ha_ctl_call(const char *path, const char *request, char **reply_r, int timeout_ms);

#endif
