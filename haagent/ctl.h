/*
 * ctl.h - haagent's control socket: a root-only unix socket, one JSON request and one JSON
 * answer per connection.
 *
 * Server: the socket is created 0600 in a 0700 directory, and every client's uid is checked
 * with SO_PEERCRED as well. A request is at most HA_CTL_REQUEST_MAX bytes, ended by the
 * client's shutdown(SHUT_WR); larger, slow (over HA_CTL_TIMEOUT_MS) or malformed requests
 * get an error answer. Clients are served in the daemon's loop, up to HA_CTL_CLIENTS_MAX at
 * once: one that sends nothing delays nobody else.
 *
 * Requests: {"cmd": "status" | "nodes" | "guests" | "events"}
 *           {"cmd": "mark-failing", "node": N, "reason": R, "cold": B}: B true (default
 *               false) evacuates by shutdown and cold start (state stopping), not live
 *           {"cmd": "clear", "node": N}
 *           {"cmd": "migrate", "guest": G, "node": N}
 *           {"cmd": "where", "guest": G}: its owner, state, and the node that takes it when
 *               its owner leaves (where it is moving, else the plan with its owner failing)
 *           {"cmd": "leaving", "node": N}: is N (default this node) failing, stopping or
 *               draining
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
 * outbox. *reply_r (caller frees) is always set when 0 is returned; ERR_NOMEM otherwise. A
 * NULL st (not joined yet) answers every request with an error.
 */
int ha_ctl_handle(struct ha_state *st, const char *request, size_t len, char **reply_r);

/* Clients served at once; more wait in the listen backlog. */
#define HA_CTL_CLIENTS_MAX 8

struct loop;
struct ha_ctl_server;

/* Answers one complete request (as ha_ctl_handle: 0 with *reply_r set, or ERR_NOMEM). */
typedef int ha_ctl_handler(void *arg, const char *request, size_t len, char **reply_r);

/*
 * Serve the clients of listen_fd in loop: each client's uid must be allowed_uid; its request
 * is read as its bytes come (a slow or silent client delays nobody, and gets an error answer
 * after HA_CTL_TIMEOUT_MS), and answered by handler(arg, ...). Free with ha_ctl_server_free
 * (closes the clients, not listen_fd).
 */
int ha_ctl_server_new(struct loop *loop, int listen_fd, uid_t allowed_uid, ha_ctl_handler *handler,
                      void *arg, struct ha_ctl_server **srv_r);
void ha_ctl_server_free(struct ha_ctl_server *srv);

/*
 * Client: send request to the daemon at path and read the answer (*reply_r, caller frees).
 * ERR_NOTFOUND (no daemon), ERR_PERM (not root), ERR_TIMEOUT, ERR_IO, ERR_PROTO.
 */
int ha_ctl_call(const char *path, const char *request, char **reply_r, int timeout_ms);

#endif
