/*
 * ctl.c - the control socket: server (listen; clients served in the daemon's loop) and client
 * call.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "haagent/ctl.h"

/* {"ok": false, "error": "..."} */
static int answer_error(char **reply_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int answer_error(char **reply_r, const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	*reply_r = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return *reply_r ? 0 : ERR_NOMEM;
}

static int answer(json_object *o, char **reply_r)
{
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	*reply_r = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return *reply_r ? 0 : ERR_NOMEM;
}

static const char *str_field(json_object *req, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* A boolean field: 1 true, 0 false or absent, -1 present but not a boolean. */
static int bool_field(json_object *req, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return -1;
	return json_object_get_boolean(v) ? 1 : 0;
}

/* Find a node by name or nodeid; on failure write the list of known nodes to known. */
static const struct ha_node_info *resolve_node(const struct ha_state *st, const char *name,
                                               char *known, size_t len)
{
	const struct ha_node_info *nodes;
	size_t n = ha_state_nodes(st, &nodes), off = 0;
	char *end;
	unsigned long id = strtoul(name, &end, 10);

	for (size_t i = 0; i < n; i++)
		if (strcmp(nodes[i].name, name) == 0 || (*name && !*end && nodes[i].nodeid == id))
			return &nodes[i];
	known[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++)
		off +=
		    (size_t)snprintf(known + off, len - off, "%s%s", i ? ", " : "", nodes[i].name);
	return NULL;
}

static json_object *node_json(const struct ha_node_info *n)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "nodeid", json_object_new_int64(n->nodeid));
	json_object_object_add(o, "name", json_object_new_string(n->name));
	json_object_object_add(o, "state", json_object_new_string(ha_node_state_name(n->state)));
	json_object_object_add(o, "member", json_object_new_boolean(n->member));
	json_object_object_add(o, "free_mib", json_object_new_int64((int64_t)n->free_mib));
	json_object_object_add(o, "reserve_mib", json_object_new_int64((int64_t)n->reserve_mib));
	json_object_object_add(o, "outgoing", json_object_new_int(n->outgoing));
	json_object_object_add(o, "incoming", json_object_new_int(n->incoming));
	json_object_object_add(o, "reason", json_object_new_string(n->reason));
	return o;
}

static json_object *guest_json(const struct ha_state *st, const struct ha_guest_info *g,
                               const struct plan_action *a, size_t na)
{
	json_object *o = json_object_new_object();
	const struct ha_node_info *owner = ha_state_node(st, g->owner);
	const char *state = g->moving_to ? (g->stopped ? "restarting" : "migrating")
	                    : g->stopped ? "stopped"
	                                 : "running";

	json_object_object_add(o, "name", json_object_new_string(g->name));
	json_object_object_add(o, "owner", json_object_new_string(owner ? owner->name : "?"));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "mem_mib", json_object_new_int64((int64_t)g->mem_mib));
	json_object_object_add(o, "failures", json_object_new_int(g->failures));
	if (g->moving_to) {
		const struct ha_node_info *to = ha_state_node(st, g->moving_to);

		json_object_object_add(o, "moving_to", json_object_new_string(to ? to->name : "?"));
	}
	for (size_t i = 0; i < na; i++) {
		if (strcmp(a[i].guest, g->name) != 0)
			continue;
		json_object_object_add(o, "plan",
		                       json_object_new_string(plan_kind_name(a[i].kind)));
		json_object_object_add(o, "note", json_object_new_string(a[i].reason));
	}
	return o;
}

static int cmd_status(struct ha_state *st, bool with_lists, char **reply_r)
{
	json_object *o = json_object_new_object(), *nodes = json_object_new_array(),
	            *guests = json_object_new_array(), *plan = json_object_new_array();
	const struct ha_node_info *self = ha_state_node(st, ha_state_self(st)), *nv;
	const struct ha_guest_info *gv;
	size_t nn = ha_state_nodes(st, &nv), ng = ha_state_guests(st, &gv), na = 0;
	struct plan_action *a = NULL;
	int prc = ha_state_plan(st, &a, &na);
	double cpu_guests, cpu_agent;
	int64_t cpu_at;

	json_object_object_add(o, "nodeid", json_object_new_int64(ha_state_self(st)));
	json_object_object_add(o, "node", json_object_new_string(self ? self->name : "?"));
	json_object_object_add(
	    o, "state", json_object_new_string(self ? ha_node_state_name(self->state) : "?"));
	json_object_object_add(o, "quorate", json_object_new_boolean(ha_state_quorate(st)));
	json_object_object_add(o, "synced", json_object_new_boolean(ha_state_synced(st)));
	json_object_object_add(o, "frozen", json_object_new_boolean(prc == ERR_NOQUORUM));
	json_object_object_add(o, "generation",
	                       json_object_new_int64((int64_t)ha_state_generation(st)));
	json_object_object_add(o, "acting", json_object_new_boolean(ha_state_may_act(st)));
	if (ha_state_cpu(st, &cpu_guests, &cpu_agent, &cpu_at)) {
		json_object *cpu = json_object_new_object();

		json_object_object_add(cpu, "guests_s", json_object_new_double(cpu_guests));
		json_object_object_add(cpu, "agent_s", json_object_new_double(cpu_agent));
		json_object_object_add(cpu, "at_ms", json_object_new_int64(cpu_at));
		json_object_object_add(o, "cpu", cpu);
	}
	for (size_t i = 0; i < nn; i++)
		json_object_array_add(nodes, node_json(&nv[i]));
	for (size_t i = 0; i < ng; i++)
		json_object_array_add(guests, guest_json(st, &gv[i], a, na));
	for (size_t i = 0; i < na; i++) {
		char line[HA_NAME_MAX + HA_REASON_MAX + 32];

		snprintf(line, sizeof(line), "%s %s: %s", plan_kind_name(a[i].kind),
		         a[i].guest[0] ? a[i].guest : "node", a[i].reason);
		json_object_array_add(plan, json_object_new_string(line));
	}
	free(a);
	if (with_lists) {
		json_object_object_add(o, "nodes", nodes);
		json_object_object_add(o, "guests", guests);
	} else {
		json_object_object_add(o, "nodes", json_object_new_int((int)nn));
		json_object_object_add(o, "guests", json_object_new_int((int)ng));
		json_object_put(nodes);
		json_object_put(guests);
	}
	json_object_object_add(o, "plan", plan);
	return answer(o, reply_r);
}

static int cmd_events(struct ha_state *st, char **reply_r)
{
	json_object *o = json_object_new_object(), *list = json_object_new_array();
	const struct ha_event *ev;
	size_t n = ha_state_events(st, &ev);

	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_new_object();

		json_object_object_add(e, "seq", json_object_new_int64((int64_t)ev[i].seq));
		json_object_object_add(e, "text", json_object_new_string(ev[i].text));
		json_object_array_add(list, e);
	}
	json_object_object_add(o, "events", list);
	return answer(o, reply_r);
}

static int cmd_set_state(struct ha_state *st, json_object *req, enum ha_node_state state,
                         char **reply_r)
{
	const char *name = str_field(req, "node"), *reason = str_field(req, "reason");
	struct ha_msg m = {.type = HA_MSG_SET_STATE, .state = (uint8_t)state};
	const struct ha_node_info *n;
	char known[512];
	int rc;

	if (!name)
		return answer_error(reply_r, "missing \"node\"");
	/* a holder of the view may request inside a sync round: applied once it ends */
	if (!ha_state_holds_view(st))
		return answer_error(reply_r,
		                    "this agent is not in sync with the cluster yet (it is "
		                    "joining and holds no view); retry in a few seconds: "
		                    "'haagent ctl status' says when it is in sync");
	n = resolve_node(st, name, known, sizeof(known));
	if (!n)
		return answer_error(reply_r, "unknown node '%s' (known: %s)", name,
		                    known[0] ? known : "none yet");
	if (!ha_state_quorate(st))
		return answer_error(reply_r,
		                    "no quorum: this partition takes no action; nothing done");
	if (state != HA_NODE_OK && (n->state == HA_NODE_DOWN || n->state == HA_NODE_FENCED))
		return answer_error(reply_r, "node %s is %s: it cannot be evacuated %s", n->name,
		                    ha_node_state_name(n->state),
		                    state == HA_NODE_STOPPING ? "(its guests restart once it is "
		                                                "fenced)"
		                                              : "live");
	if (reason && strlen(reason) >= sizeof(m.text))
		return answer_error(reply_r, "reason longer than %zu characters",
		                    sizeof(m.text) - 1);
	for (const char *p = reason; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return answer_error(reply_r, "reason contains control characters");
	m.node = n->nodeid;
	snprintf(m.text, sizeof(m.text), "%s", reason ? reason : "operator request");
	rc = ha_state_submit(st, &m);
	if (rc < 0)
		return answer_error(reply_r, "cannot submit the request: %s", err_str(rc));
	json_object *o = json_object_new_object();
	char msg[256];

	snprintf(msg, sizeof(msg), "node %s: %s requested%s", n->name, ha_node_state_name(state),
	         ha_state_in_round(st) ? " (a sync round is open: applied when it ends)" : "");
	json_object_object_add(o, "message", json_object_new_string(msg));
	return answer(o, reply_r);
}

static int cmd_migrate(struct ha_state *st, json_object *req, char **reply_r)
{
	const char *guest = str_field(req, "guest"), *node = str_field(req, "node");
	struct ha_msg m = {.type = HA_MSG_MIGRATE_REQUEST};
	const struct ha_guest_info *g;
	const struct ha_node_info *n, *owner;
	char known[512], msg[256];
	json_object *o;
	int rc;

	if (!guest || !node)
		return answer_error(reply_r, "migrate needs \"guest\" and \"node\"");
	g = ha_state_guest(st, guest);
	if (!g)
		return answer_error(reply_r, "unknown guest '%s'", guest);
	n = resolve_node(st, node, known, sizeof(known));
	if (!n)
		return answer_error(reply_r, "unknown node '%s' (known: %s)", node, known);
	owner = ha_state_node(st, g->owner);
	if (!ha_state_synced(st) || !ha_state_quorate(st))
		return answer_error(reply_r, "no quorum or not in sync: nothing done");
	if (g->owner == n->nodeid)
		return answer_error(reply_r, "guest %s already runs on %s", g->name, n->name);
	if (g->moving_to || g->stopped)
		return answer_error(reply_r, "guest %s is %s: retry later", g->name,
		                    g->moving_to ? "being moved" : "stopped");
	if (!n->member || n->state != HA_NODE_OK)
		return answer_error(reply_r, "node %s is %s: it takes no guest", n->name,
		                    n->member ? ha_node_state_name(n->state) : "not a member");
	if ((int64_t)n->free_mib - (int64_t)n->reserve_mib < (int64_t)g->mem_mib)
		return answer_error(
		    reply_r,
		    "node %s has %" PRId64 " MiB free above its reserve, %s needs %" PRIu64 " MiB",
		    n->name, (int64_t)n->free_mib - (int64_t)n->reserve_mib, g->name, g->mem_mib);
	snprintf(m.guest, sizeof(m.guest), "%s", g->name);
	m.from = g->owner;
	m.to = n->nodeid;
	snprintf(m.text, sizeof(m.text), "operator request");
	rc = ha_state_submit(st, &m);
	if (rc < 0)
		return answer_error(reply_r, "cannot submit the request: %s", err_str(rc));
	o = json_object_new_object();
	snprintf(msg, sizeof(msg), "migration of %s from %s to %s requested", g->name,
	         owner ? owner->name : "?", n->name);
	json_object_object_add(o, "message", json_object_new_string(msg));
	return answer(o, reply_r);
}

/*
 * The plan for the view with node leaving (marked failing, unless it is already failing,
 * stopping or draining): where its guests would go if it left now. Concurrency limits are lifted,
 * so a guest is never deferred: the question is "where", not "when".
 */
static int plan_if_leaving(const struct ha_state *st, uint32_t leaving, struct plan_action **a_r,
                           size_t *na_r)
{
	const struct ha_node_info *nv;
	const struct ha_guest_info *gv;
	size_t nn = ha_state_nodes(st, &nv), ng = ha_state_guests(st, &gv);
	struct plan_node *nodes = calloc(nn + 1, sizeof(*nodes));
	struct plan_guest *guests = calloc(ng + 1, sizeof(*guests));
	struct plan_input in = {.nodes = nodes,
	                        .nnodes = nn,
	                        .guests = guests,
	                        .nguests = ng,
	                        .max_outgoing = 1000,
	                        .max_incoming = 1000};
	int rc = ERR_NOMEM;

	*a_r = NULL;
	*na_r = 0;
	if (!nodes || !guests)
		goto out;
	for (size_t i = 0; i < nn; i++) {
		struct plan_node *p = &nodes[i];

		p->nodeid = nv[i].nodeid;
		memcpy(p->name, nv[i].name, sizeof(p->name));
		p->state = (enum ha_node_state)nv[i].state;
		if (p->nodeid == leaving && p->state == HA_NODE_OK)
			p->state = HA_NODE_FAILING;
		p->free_mib = nv[i].free_mib;
		p->reserve_mib = nv[i].reserve_mib;
		p->outgoing = nv[i].outgoing;
		p->incoming = nv[i].incoming;
		p->member = nv[i].member;
	}
	for (size_t i = 0; i < ng; i++) {
		struct plan_guest *p = &guests[i];

		memcpy(p->name, gv[i].name, sizeof(p->name));
		p->owner = gv[i].owner;
		p->mem_mib = gv[i].mem_mib;
		p->dirty_mibps = gv[i].dirty_mibps;
		memcpy(p->preferred, gv[i].preferred, sizeof(p->preferred));
		memcpy(p->anti_affinity, gv[i].anti_affinity, sizeof(p->anti_affinity));
		p->fallback = (enum ha_fallback)gv[i].fallback;
		p->moving_to = gv[i].moving_to;
		p->stopped = gv[i].stopped;
		p->failures = gv[i].failures;
		p->requested_to = gv[i].requested_to;
	}
	rc = plan_compute(&in, a_r, na_r);
out:
	free(nodes);
	free(guests);
	return rc;
}

/*
 * {"cmd": "where", "guest": G}: who owns G, whether it is moving, and the node that takes it
 * when its owner leaves: the node it is moving to, else the planner's target with its owner
 * marked failing ("" with the planner's reason when no node can take it).
 */
static int cmd_where(struct ha_state *st, json_object *req, char **reply_r)
{
	const char *name = str_field(req, "guest");
	const struct ha_guest_info *g;
	const struct ha_node_info *owner, *to = NULL;
	struct plan_action *a = NULL;
	size_t na = 0;
	char reason[HA_REASON_MAX + HA_NAME_MAX + 64] = "";
	json_object *o;
	int rc;

	if (!name)
		return answer_error(reply_r, "missing \"guest\"");
	if (!ha_state_synced(st))
		return answer_error(reply_r,
		                    "this agent is not in sync with the cluster yet; retry");
	g = ha_state_guest(st, name);
	if (!g)
		return answer_error(reply_r, "unknown guest '%s' (no node reports it)", name);
	owner = ha_state_node(st, g->owner);
	if (g->moving_to) {
		to = ha_state_node(st, g->moving_to);
		snprintf(reason, sizeof(reason), "%s to %s in progress",
		         g->stopped ? "cold restart" : "live migration", to ? to->name : "?");
	} else {
		/* the plan as it would be if the owner left (unless it is leaving already) */
		bool hypothetical = owner && owner->state == HA_NODE_OK;
		const char *owner_name = owner ? owner->name : "?";

		rc = plan_if_leaving(st, g->owner, &a, &na);
		if (rc < 0)
			return answer_error(reply_r, "cannot plan: %s", err_str(rc));
		for (size_t i = 0; i < na; i++) {
			if (strcmp(a[i].guest, g->name) != 0)
				continue;
			if (a[i].to)
				to = ha_state_node(st, a[i].to);
			snprintf(reason, sizeof(reason), "%s%s%s%s: %s", hypothetical ? "if " : "",
			         hypothetical ? owner_name : "", hypothetical ? " left: " : "",
			         plan_kind_name(a[i].kind), a[i].reason);
		}
		free(a);
		if (!reason[0])
			snprintf(reason, sizeof(reason), "no action planned");
	}
	o = json_object_new_object();
	json_object_object_add(o, "guest", json_object_new_string(g->name));
	json_object_object_add(o, "owner", json_object_new_string(owner ? owner->name : "?"));
	json_object_object_add(
	    o, "owner_state",
	    json_object_new_string(
	        owner ? (owner->member ? ha_node_state_name(owner->state) : "not-member") : "?"));
	json_object_object_add(
	    o, "state",
	    json_object_new_string(g->moving_to ? (g->stopped ? "restarting" : "migrating")
	                           : g->stopped ? "stopped"
	                                        : "running"));
	json_object_object_add(o, "moving", json_object_new_boolean(g->moving_to != 0));
	json_object_object_add(o, "target", json_object_new_string(to ? to->name : ""));
	json_object_object_add(o, "failures", json_object_new_int(g->failures));
	json_object_object_add(o, "quorate", json_object_new_boolean(ha_state_quorate(st)));
	json_object_object_add(o, "reason", json_object_new_string(reason));
	return answer(o, reply_r);
}

/*
 * {"cmd": "leaving", "node": N}: whether N (default: this node) is leaving the cluster, that
 * is marked failing, stopping or draining (its guests are being, or will be, evacuated).
 */
static int cmd_leaving(struct ha_state *st, json_object *req, char **reply_r)
{
	const char *name = str_field(req, "node");
	const struct ha_node_info *n;
	char known[512];
	json_object *o;

	if (!ha_state_synced(st))
		return answer_error(reply_r,
		                    "this agent is not in sync with the cluster yet; retry");
	if (name) {
		n = resolve_node(st, name, known, sizeof(known));
		if (!n)
			return answer_error(reply_r, "unknown node '%s' (known: %s)", name,
			                    known[0] ? known : "none yet");
	} else {
		n = ha_state_node(st, ha_state_self(st));
		if (!n)
			return answer_error(reply_r, "this node is not in the view yet; retry");
	}
	o = json_object_new_object();
	json_object_object_add(o, "node", json_object_new_string(n->name));
	json_object_object_add(o, "state", json_object_new_string(ha_node_state_name(n->state)));
	json_object_object_add(o, "leaving",
	                       json_object_new_boolean(n->state == HA_NODE_FAILING ||
	                                               n->state == HA_NODE_DRAINING ||
	                                               n->state == HA_NODE_STOPPING));
	json_object_object_add(o, "reason", json_object_new_string(n->reason));
	return answer(o, reply_r);
}

int ha_ctl_handle(struct ha_state *st, const char *request, size_t len, char **reply_r)
{
	json_tokener *tok;
	json_object *req = NULL;
	const char *cmd;
	int rc;

	*reply_r = NULL;
	if (!st)
		return answer_error(reply_r,
		                    "this agent has not joined its cluster yet (is corosync "
		                    "running?); try again");
	if (len == 0)
		return answer_error(reply_r, "empty request");
	if (len > HA_CTL_REQUEST_MAX)
		return answer_error(reply_r, "request larger than %d bytes refused",
		                    HA_CTL_REQUEST_MAX);
	if (memchr(request, '\0', len))
		return answer_error(reply_r, "request is not JSON (NUL byte)");
	tok = json_tokener_new();
	if (!tok)
		return ERR_NOMEM;
	req = json_tokener_parse_ex(tok, request, (int)len);
	if (!req || json_tokener_get_error(tok) != json_tokener_success ||
	    (size_t)json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(req, json_type_object)) {
		json_tokener_free(tok);
		json_object_put(req);
		return answer_error(reply_r, "request is not a JSON object");
	}
	json_tokener_free(tok);
	cmd = str_field(req, "cmd");
	if (!cmd)
		rc = answer_error(reply_r, "missing \"cmd\"");
	else if (!strcmp(cmd, "status"))
		rc = cmd_status(st, false, reply_r);
	else if (!strcmp(cmd, "nodes") || !strcmp(cmd, "guests"))
		rc = cmd_status(st, true, reply_r);
	else if (!strcmp(cmd, "events"))
		rc = cmd_events(st, reply_r);
	else if (!strcmp(cmd, "mark-failing") && bool_field(req, "cold") < 0)
		rc = answer_error(reply_r, "\"cold\" must be true or false");
	else if (!strcmp(cmd, "mark-failing"))
		rc = cmd_set_state(
		    st, req, bool_field(req, "cold") ? HA_NODE_STOPPING : HA_NODE_FAILING, reply_r);
	else if (!strcmp(cmd, "clear"))
		rc = cmd_set_state(st, req, HA_NODE_OK, reply_r);
	else if (!strcmp(cmd, "migrate"))
		rc = cmd_migrate(st, req, reply_r);
	else if (!strcmp(cmd, "where"))
		rc = cmd_where(st, req, reply_r);
	else if (!strcmp(cmd, "leaving"))
		rc = cmd_leaving(st, req, reply_r);
	else
		rc = answer_error(reply_r, "unknown command '%.40s'", cmd);
	json_object_put(req);
	return rc;
}

int ha_ctl_listen(const char *path, int *fd_r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)], *slash;
	struct stat sb;
	mode_t old;
	int fd = -1, rc;

	*fd_r = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return ERR_INVAL;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			rc = err_from_errno(errno);
			log_error_errno(errno, "cannot create the control directory %s", dir);
			goto out;
		}
		if (stat(dir, &sb) == 0 && (sb.st_mode & 022))
			log_warn("control directory %s is writable by others", dir);
	}
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = err_from_errno(errno);
		goto out;
	}
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		rc = err_from_errno(errno);
		log_error_errno(errno, "cannot listen on %s", path);
		goto out;
	}
	*fd_r = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Read until EOF, at most max bytes (ERR_NOSPACE beyond), within timeout_ms in all. */
static int read_bounded(int fd, size_t max, int timeout_ms, char **buf_r, size_t *len_r)
{
	int64_t deadline = loop_now_ms() + timeout_ms;
	char *buf = malloc(max + 1);
	size_t len = 0;
	int rc;

	if (!buf)
		return ERR_NOMEM;
	for (;;) {
		int64_t left = deadline - loop_now_ms();
		ssize_t n;

		rc = left > 0 ? fd_wait_readable(fd, (int)left) : ERR_TIMEOUT;
		if (rc < 0)
			goto out;
		n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err_from_errno(errno);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			rc = ERR_NOSPACE;
			goto out;
		}
	}
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* --- the server: every client read and answered as its bytes come, in the daemon's loop --- */

enum ctl_phase { CTL_FREE, CTL_READING, CTL_WRITING, CTL_DRAINING };

struct ctl_client {
	struct ha_ctl_server *srv;
	enum ctl_phase phase;
	int fd;
	struct loop_fd *watch;
	struct loop_timer *timer;
	char *buf; /* the request so far (HA_CTL_REQUEST_MAX + 1 bytes) */
	size_t len;
	char *reply; /* the answer, written from reply_off */
	size_t reply_len, reply_off, drained;
};

struct ha_ctl_server {
	struct loop_fd *watch;
	bool accepting;
	uid_t allowed_uid;
	ha_ctl_handler *handler;
	void *arg;
	struct ctl_client clients[HA_CTL_CLIENTS_MAX];
};

static void client_close(struct ctl_client *c)
{
	struct ha_ctl_server *srv = c->srv;

	if (c->watch)
		loop_fd_remove(c->watch);
	if (c->timer)
		loop_timer_remove(c->timer);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c->reply);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->phase = CTL_FREE;
	if (!srv->accepting) { /* a slot is free again: take the clients waiting in the backlog */
		srv->accepting = true;
		loop_fd_modify(srv->watch, POLLIN);
	}
}

/* Answer (reply, owned from now on; NULL: out of memory, the client is dropped). */
static void client_answer(struct ctl_client *c, char *reply)
{
	if (!reply) {
		client_close(c);
		return;
	}
	if (strncmp(reply, "{\"ok\":false", 11) == 0)
		log_warn("control socket: request refused: %s", reply);
	c->reply = reply;
	c->reply_len = strlen(reply);
	c->reply_off = 0;
	c->phase = CTL_WRITING;
	loop_fd_modify(c->watch, POLLOUT);
}

static void client_error(struct ctl_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_error(struct ctl_client *c, const char *fmt, ...)
{
	char msg[512], *reply = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	answer_error(&reply, "%s", msg);
	client_answer(c, reply);
}

static void client_request(struct ctl_client *c)
{
	char *reply = NULL;

	c->buf[c->len] = '\0';
	if (c->srv->handler(c->srv->arg, c->buf, c->len, &reply) < 0) {
		free(reply);
		reply = NULL;
	}
	client_answer(c, reply);
}

/*
 * After answering, read and drop what a client is still sending (an oversized request),
 * boundedly: closing with unread input would reset the connection and lose the answer.
 */
static void client_drain(struct ctl_client *c)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(c->fd, buf, sizeof(buf))) > 0 && c->drained < 1024 * 1024)
		c->drained += (size_t)n;
	if (n < 0 && (errno == EAGAIN || errno == EINTR) && c->drained < 1024 * 1024)
		return; /* more may come: wait (the timer bounds it) */
	client_close(c);
}

static void on_client(struct loop *loop, struct loop_fd *w, int fd, short revents, void *arg)
{
	struct ctl_client *c = arg;
	ssize_t n;

	(void)loop;
	(void)w;
	(void)revents;
	switch (c->phase) {
	case CTL_READING:
		n = read(fd, c->buf + c->len, HA_CTL_REQUEST_MAX + 1 - c->len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			client_error(c, "cannot read the request: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			client_request(c);
			return;
		}
		c->len += (size_t)n;
		if (c->len > HA_CTL_REQUEST_MAX)
			client_error(c, "request larger than %d bytes refused", HA_CTL_REQUEST_MAX);
		return;
	case CTL_WRITING:
		n = write(fd, c->reply + c->reply_off, c->reply_len - c->reply_off);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			log_warn("control socket: client went away before its answer");
			client_close(c);
			return;
		}
		c->reply_off += (size_t)n;
		if (c->reply_off < c->reply_len)
			return;
		shutdown(fd, SHUT_WR);
		c->phase = CTL_DRAINING;
		loop_fd_modify(c->watch, POLLIN);
		loop_timer_modify(c->timer, loop_now_ms() + 500);
		client_drain(c);
		return;
	case CTL_DRAINING:
		client_drain(c);
		return;
	case CTL_FREE:
		return;
	}
}

static void on_client_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct ctl_client *c = arg;

	(void)loop;
	(void)t;
	if (c->phase == CTL_READING) {
		loop_timer_modify(c->timer, loop_now_ms() + HA_CTL_TIMEOUT_MS); /* for the answer */
		client_error(c, "request not complete within %d ms", HA_CTL_TIMEOUT_MS);
		return;
	}
	if (c->phase == CTL_WRITING)
		log_warn("control socket: a client did not read its answer within %d ms: dropped",
		         HA_CTL_TIMEOUT_MS);
	client_close(c);
}

static struct ctl_client *free_slot(struct ha_ctl_server *srv)
{
	for (size_t i = 0; i < HA_CTL_CLIENTS_MAX; i++)
		if (srv->clients[i].phase == CTL_FREE)
			return &srv->clients[i];
	return NULL;
}

static void on_listen(struct loop *loop, struct loop_fd *w, int lfd, short revents, void *arg)
{
	struct ha_ctl_server *srv = arg;
	struct ctl_client *c;
	struct ucred cred;
	socklen_t clen;
	int fd;

	(void)w;
	(void)revents;
	while ((c = free_slot(srv)) != NULL) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn_errno(errno, "control socket: accept");
			return;
		}
		memset(c, 0, sizeof(*c));
		c->srv = srv;
		c->fd = fd;
		c->phase = CTL_READING;
		c->buf = malloc(HA_CTL_REQUEST_MAX + 1);
		c->watch = loop_fd_add(loop, fd, POLLIN, on_client, c);
		c->timer =
		    loop_timer_add(loop, loop_now_ms() + HA_CTL_TIMEOUT_MS, on_client_timer, c);
		if (!c->buf || !c->watch || !c->timer) {
			log_error("control socket: out of memory for a client");
			client_close(c);
			continue;
		}
		clen = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
		    cred.uid != srv->allowed_uid) {
			log_warn("control socket: client uid %d pid %d refused (root only)",
			         clen == sizeof(cred) ? (int)cred.uid : -1, (int)cred.pid);
			client_error(c, "permission denied: only root may use the haagent control "
			                "socket");
		}
	}
	/* every slot busy: leave the rest in the backlog until one is free */
	srv->accepting = false;
	loop_fd_modify(srv->watch, 0);
}

int ha_ctl_server_new(struct loop *loop, int listen_fd, uid_t allowed_uid, ha_ctl_handler *handler,
                      void *arg, struct ha_ctl_server **srv_r)
{
	struct ha_ctl_server *srv = calloc(1, sizeof(*srv));

	*srv_r = NULL;
	if (!srv)
		return ERR_NOMEM;
	srv->allowed_uid = allowed_uid;
	srv->handler = handler;
	srv->arg = arg;
	for (size_t i = 0; i < HA_CTL_CLIENTS_MAX; i++)
		srv->clients[i].fd = -1;
	srv->accepting = true;
	srv->watch = loop_fd_add(loop, listen_fd, POLLIN, on_listen, srv);
	if (!srv->watch) {
		free(srv);
		return ERR_NOMEM;
	}
	*srv_r = srv;
	return 0;
}

void ha_ctl_server_free(struct ha_ctl_server *srv)
{
	if (!srv)
		return;
	srv->accepting = true; /* no re-arming while closing */
	for (size_t i = 0; i < HA_CTL_CLIENTS_MAX; i++)
		if (srv->clients[i].phase != CTL_FREE)
			client_close(&srv->clients[i]);
	loop_fd_remove(srv->watch);
	free(srv);
}

int ha_ctl_call(const char *path, const char *request, char **reply_r, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = 0;
	int fd, rc;

	*reply_r = NULL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return ERR_INVAL;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_from_errno(errno);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc =
		    errno == ENOENT || errno == ECONNREFUSED ? ERR_NOTFOUND : err_from_errno(errno);
		goto out;
	}
	rc = fd_write_exact(fd, request, strlen(request));
	if (rc < 0)
		goto out;
	shutdown(fd, SHUT_WR);
	rc = read_bounded(fd, HA_CTL_REPLY_MAX, timeout_ms, reply_r, &len);
	if (rc == 0 && len == 0) {
		free(*reply_r);
		*reply_r = NULL;
		rc = ERR_PROTO;
	}
out:
	close(fd);
	return rc;
}
