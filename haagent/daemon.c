/*
 * daemon.c - the haagent daemon: one event loop around the cluster backend, the replicated
 * state machine and the control socket.
 *
 * What it does today: joins the group (re-joins after corosync restarts, every 2 s until it
 * succeeds), reports this node's guests and free memory from the hypervisor backend, keeps
 * the replicated view, answers "haagent ctl", writes the view atomically to state_file, and
 * on SIGTERM marks itself draining (a node marked failing --cold stays stopping) and waits (up
 * to drain_timeout_s) until it owns no guest.
 * It runs the health-check hook and marks this node failing when it trips, and its
 * executor (executor.c) carries out this node's part of the plan: live migrations through
 * xl-ext's migration library over the authenticated TCP transport, cold restarts, fencing.
 */
#include "config.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "haagent/cluster.h"
#include "haagent/conf.h"
#include "haagent/ctl.h"
#include "haagent/daemon.h"
#include "haagent/executor.h"
#include "haagent/health.h"
#include "haagent/state.h"
#include "xl-ext/core/hv.h"

#define REOPEN_MS 2000
#define TICK_MS   1000

struct daemon {
	const struct ha_config *cfg;
	struct loop *loop;
	const struct cluster_ops *ops;
	struct cluster *cl;
	struct loop_fd *cl_watch[4];
	size_t ncl;
	bool lost;
	struct ha_state *st;
	int ctl_fd;
	struct ha_ctl_server *ctl;
	const struct hv_ops *hv_ops;
	struct hv *hv;
	unsigned ticks;
	int64_t heartbeat_at; /* next UPDATE even without a change */
	bool draining;
	int64_t drain_deadline;
	uint64_t persisted_digest;
	int64_t cpu_sampled_ms;
	struct {
		uint32_t domid;
		double cpu_s;
	} cpu_seen[HA_MAX_GUESTS * 2]; /* the domains of the last CPU sample */
	size_t cpu_nseen;
	double cpu_gone_s; /* CPU time of the domains gone since the agent started */
	struct ha_health_check health;
	struct ha_executor *ex;
	char name[HA_NAME_MAX];
};

/* Send what the state machine queued. */
static void pump(struct daemon *d)
{
	uint8_t *buf;
	size_t len;

	while (d->st && ha_state_next_outgoing(d->st, &buf, &len) == 0) {
		if (d->cl && !d->lost) {
			int rc = d->ops->send(d->cl, buf, len);

			if (rc < 0)
				log_warn("node %s: multicast of %zu bytes failed: %s", d->name, len,
				         err_str(rc));
		}
		free(buf);
	}
}

/* Write the view to state_file when it changed (atomically: readers never see half). */
static void pump_cb(void *arg)
{
	pump(arg);
}

static void persist(struct daemon *d)
{
	char *json = NULL;
	uint64_t digest;

	if (!d->st || !ha_state_synced(d->st) || !d->cfg->state_file[0])
		return;
	digest = ha_state_digest(d->st);
	if (digest == d->persisted_digest)
		return;
	if (ha_ctl_handle(d->st, "{\"cmd\":\"guests\"}", 16, &json) < 0)
		return;
	if (file_write_atomic(d->cfg->state_file, json, strlen(json), 0600) == 0)
		d->persisted_digest = digest;
	else
		log_warn("cannot write the state file %s", d->cfg->state_file);
	free(json);
}

/* This node's guests and free memory, from the hypervisor backend. */
static void refresh_local(struct daemon *d)
{
	struct ha_guest_info *guests = NULL;
	struct hv_domain_info *doms = NULL;
	struct hv_host_info host;
	size_t ndoms = 0, ng = 0;
	uint64_t free_mib = 0;

	memset(&host, 0, sizeof(host));
	if (d->hv && d->hv_ops->host_info(d->hv, &host) == 0)
		free_mib = host.free_kib / 1024;
	if (d->hv && d->hv_ops->list(d->hv, &doms, &ndoms) == 0 && ndoms)
		guests = calloc(ndoms, sizeof(*guests));
	for (size_t i = 0; guests && i < ndoms && ng < HA_MAX_GUESTS; i++) {
		struct ha_guest_info *g = &guests[ng];

		if (doms[i].domid == 0 || strstr(doms[i].name, "--incoming") ||
		    strstr(doms[i].name, "--migratedaway") || doms[i].dying)
			continue;
		snprintf(g->name, sizeof(g->name), "%s", doms[i].name);
		g->mem_mib = doms[i].memory_kib / 1024;
		g->type = (uint8_t)doms[i].type;
		for (size_t k = 0; k < d->cfg->nguests; k++) {
			const struct ha_guest_conf *c = &d->cfg->guests[k];

			if (strcmp(c->name, g->name) != 0)
				continue;
			if (c->memory_mib)
				g->mem_mib = c->memory_mib;
			g->dirty_mibps = c->dirty_mibps;
			snprintf(g->disks, sizeof(g->disks), "%s", c->disks);
			memcpy(g->preferred, c->preferred, sizeof(g->preferred));
			memcpy(g->anti_affinity, c->anti_affinity, sizeof(g->anti_affinity));
			g->fallback = (uint8_t)c->fallback;
		}
		ng++;
	}
	if (d->st)
		ha_state_set_local(d->st, d->name, free_mib, d->cfg->dom0_reserve_mib, guests, ng);
	free(guests);
	free(doms);
}

/*
 * Sample the hypervisor and multicast an UPDATE when this node's facts changed (or the
 * heartbeat is due), so guests started or destroyed here and free memory reach the view
 * between membership changes.
 */
static void announce(struct daemon *d)
{
	int64_t now = loop_now_ms();
	bool heartbeat = now >= d->heartbeat_at;
	int rc;

	if (!d->st || !d->cl || d->lost)
		return;
	refresh_local(d);
	rc = ha_state_announce(d->st, heartbeat);
	if (rc < 0)
		log_warn("node %s: cannot announce its guests: %s", d->name, err_str(rc));
	if (rc == 1)
		d->heartbeat_at = now + (int64_t)d->cfg->announce_heartbeat_s * 1000;
	pump(d); /* an UPDATE, or a GENERATION asked again */
}

static void on_deliver(void *arg, uint32_t from, const void *msg, size_t len)
{
	struct daemon *d = arg;

	ha_state_deliver(d->st, from, msg, len);
}

static void on_membership(void *arg, const uint32_t *m, size_t nm, const uint32_t *l, size_t nl,
                          const uint32_t *j, size_t nj)
{
	struct daemon *d = arg;

	refresh_local(d);
	ha_state_membership(d->st, m, nm, l, nl, j, nj);
}

static void on_quorum(void *arg, bool quorate)
{
	struct daemon *d = arg;

	if (!quorate && ha_state_quorate(d->st))
		log_warn("node %s: quorum lost: frozen, no action is taken until it returns",
		         d->name);
	ha_state_quorum(d->st, quorate);
}

static void on_lost(void *arg, int err)
{
	struct daemon *d = arg;

	log_error("node %s: connection to the cluster lost (%s): re-joining", d->name,
	          err_str(err));
	d->lost = true;
}

static const struct cluster_callbacks callbacks = {on_deliver, on_membership, on_quorum, on_lost};

static void cluster_open(struct daemon *d);

static void reopen_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
	loop_timer_remove(t); /* one per attempt */
	(void)loop;
	cluster_open(arg);
}

static void cluster_close(struct daemon *d)
{
	for (size_t i = 0; i < d->ncl; i++)
		loop_fd_remove(d->cl_watch[i]);
	d->ncl = 0;
	if (d->cl)
		d->ops->close(d->cl);
	d->cl = NULL;
}

static void on_cluster_fd(struct loop *loop, struct loop_fd *w, int fd, short revents, void *arg)
{
	struct daemon *d = arg;

	(void)w;
	(void)revents;
	d->ops->dispatch(d->cl, fd);
	if (d->lost) {
		ha_state_lost(d->st);
		cluster_close(d);
		loop_timer_add(loop, loop_now_ms() + REOPEN_MS, reopen_timer, d);
		return;
	}
	pump(d);
	ha_exec_reconcile(d->ex);
	persist(d);
}

/* This node's name (unless configured) and every node's address for migrations. */
static void learn_nodes(struct daemon *d, uint32_t self)
{
	struct cluster_node *nodes = NULL;
	size_t n = 0;

	if (d->ops->nodes(d->cl, &nodes, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (nodes[i].nodeid == self && nodes[i].name[0] && !d->name[0])
				snprintf(d->name, sizeof(d->name), "%s", nodes[i].name);
			if (d->ex && nodes[i].addr[0])
				ha_exec_set_node_addr(d->ex, nodes[i].nodeid, nodes[i].addr);
		}
	}
	free(nodes);
	if (!d->name[0] && gethostname(d->name, sizeof(d->name) - 1) < 0)
		snprintf(d->name, sizeof(d->name), "node%" PRIu32, self);
}

static void cluster_open(struct daemon *d)
{
	struct ha_state_config scfg = {d->cfg->max_outgoing, d->cfg->max_incoming,
	                               d->cfg->max_attempts, d->cfg->bandwidth_mibps};
	int fds[4];
	size_t nfds = 0;
	uint32_t self = 0;
	int rc;

	d->lost = false;
	rc = d->ops->open(&d->cl, d->cfg->group, &callbacks, d);
	if (rc == 0)
		rc = d->ops->local_nodeid(d->cl, &self);
	if (rc == 0 && d->st && ha_state_self(d->st) != self)
		rc = ERR_INTERNAL; /* the nodeid of a host does not change under us */
	if (rc == 0 && !d->st)
		rc = ha_state_new(&d->st, self, &scfg);
	if (rc == 0)
		rc = d->ops->fds(d->cl, fds, 4, &nfds);
	if (rc < 0) {
		log_warn("cannot join cluster group %s through %s: %s; retrying every %d s",
		         d->cfg->group, d->ops->name, err_str(rc), REOPEN_MS / 1000);
		if (d->cl)
			d->ops->close(d->cl);
		d->cl = NULL;
		loop_timer_add(d->loop, loop_now_ms() + REOPEN_MS, reopen_timer, d);
		return;
	}
	if (!d->ex) {
		struct ha_exec_env env = {
		    d->loop, d->cfg, d->hv ? d->hv_ops : NULL, d->hv, d->st, pump_cb, d, NULL};

		rc = ha_exec_new(&d->ex, &env);
		if (rc < 0)
			log_error("node %" PRIu32 ": the executor could not start (%s): this node "
			          "carries out no action",
			          self, err_str(rc));
	}
	learn_nodes(d, self);
	refresh_local(d);
	for (size_t i = 0; i < nfds; i++)
		d->cl_watch[d->ncl++] = loop_fd_add(d->loop, fds[i], POLLIN, on_cluster_fd, d);
	log_info("node %s (nodeid %" PRIu32 ") joined cluster group %s", d->name, self,
	         d->cfg->group);
}

/* A control request: answered from the view; what it submitted is sent at once. */
/*
 * This node's CPU time for "status": its domains' (the backend's per-domain figure: Xen's
 * cpu_time, a sim domain's process) and the agent's with its reaped jobs'. At most every
 * CPU_SAMPLE_MS, so a client polling status costs a directory scan now and then. A domain
 * that is gone (migrated away, shut down) keeps counting with the time it had when last
 * seen: the figure never goes back.
 */
#define CPU_SAMPLE_MS 100
static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void sample_cpu(struct daemon *d)
{
	struct hv_domain_info *doms = NULL;
	struct rusage self, kids;
	size_t ndoms = 0, nseen = 0;
	double guests = 0;
	int64_t now = loop_now_ms();

	if (!d->st || !d->hv || now - d->cpu_sampled_ms < CPU_SAMPLE_MS)
		return;
	if (d->hv_ops->list(d->hv, &doms, &ndoms) != 0)
		return;
	for (size_t k = 0; k < d->cpu_nseen; k++) {
		size_t i;

		for (i = 0; i < ndoms && doms[i].domid != d->cpu_seen[k].domid; i++)
			;
		if (i == ndoms)
			d->cpu_gone_s += d->cpu_seen[k].cpu_s;
	}
	for (size_t i = 0; i < ndoms; i++) {
		if (doms[i].domid == 0)
			continue;
		guests += doms[i].cpu_time_s;
		if (nseen < HA_MAX_GUESTS * 2) {
			d->cpu_seen[nseen].domid = doms[i].domid;
			d->cpu_seen[nseen++].cpu_s = doms[i].cpu_time_s;
		}
	}
	d->cpu_nseen = nseen;
	guests += d->cpu_gone_s;
	free(doms);
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	ha_state_set_cpu(d->st, guests,
	                 tv_s(self.ru_utime) + tv_s(self.ru_stime) + tv_s(kids.ru_utime) +
	                     tv_s(kids.ru_stime),
	                 now);
	d->cpu_sampled_ms = now;
}

static int on_ctl_request(void *arg, const char *request, size_t len, char **reply_r)
{
	struct daemon *d = arg;
	int rc;

	sample_cpu(d);
	rc = ha_ctl_handle(d->st, request, len, reply_r);

	if (d->st) {
		pump(d);
		ha_exec_reconcile(d->ex);
	}
	return rc;
}

/*
 * Guests this node still owns: running, being sent away, or shut down here for a cold restart
 * in flight or planned (the agent must not leave before: a node that left owning a guest is
 * fenced before the guest is started anywhere).
 */
static size_t owned_guests(const struct daemon *d)
{
	const struct ha_guest_info *g;
	size_t n = ha_state_guests(d->st, &g), count = 0, na = 0;
	struct plan_action *a = NULL;

	if (ha_state_plan(d->st, &a, &na) < 0)
		na = 0;
	for (size_t i = 0; i < n; i++) {
		bool restarting = g[i].moving_to != 0;

		if (g[i].owner != ha_state_self(d->st))
			continue;
		for (size_t k = 0; g[i].stopped && !restarting && k < na; k++)
			restarting =
			    a[k].kind == PLAN_COLD_RESTART && !strcmp(a[k].guest, g[i].name);
		count += !g[i].stopped || restarting;
	}
	free(a);
	return count;
}

/* Run the health-check hook; mark this node failing when it trips. */
static void check_health(struct daemon *d)
{
	struct ha_msg m = {.type = HA_MSG_SET_STATE, .state = HA_NODE_FAILING};
	const struct ha_node_info *self;

	if (ha_health_poll(&d->health, loop_now_ms(), m.text, sizeof(m.text)) != 1)
		return;
	if (!d->st || !ha_state_synced(d->st) || !ha_state_quorate(d->st)) {
		log_error("node %s: %s; not marked failing: no quorum or not in sync", d->name,
		          m.text);
		return;
	}
	self = ha_state_node(d->st, ha_state_self(d->st));
	if (!self || self->state != HA_NODE_OK)
		return;
	log_error("node %s: %s: marking this node failing", d->name, m.text);
	m.node = ha_state_self(d->st);
	if (ha_state_submit(d->st, &m) == 0)
		pump(d);
}

static void on_tick(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct daemon *d = arg;

	if (++d->ticks % (d->cfg->announce_interval_s ? d->cfg->announce_interval_s : 5) == 0)
		announce(d);
	check_health(d);
	ha_exec_reconcile(d->ex);
	if (d->draining) {
		size_t left = owned_guests(d);

		if (left == 0) {
			log_info("node %s: evacuated, the agent stops", d->name);
			loop_quit(loop, 0);
			return;
		}
		if (loop_now_ms() >= d->drain_deadline) {
			log_error(
			    "node %s: drain timed out after %u s with %zu guest(s) still here",
			    d->name, d->cfg->drain_timeout_s, left);
			loop_quit(loop, 1);
			return;
		}
	}
	persist(d);
	loop_timer_modify(t, loop_now_ms() + TICK_MS);
}

static void on_stop(struct loop *loop, int signo, void *arg)
{
	struct daemon *d = arg;
	struct ha_msg m = {.type = HA_MSG_SET_STATE, .state = HA_NODE_DRAINING};
	const struct ha_node_info *self;

	if (d->draining) {
		log_warn("node %s: second signal %d: stopping without waiting for the drain",
		         d->name, signo);
		loop_quit(loop, 1);
		return;
	}
	if (!d->st || !ha_state_synced(d->st) || !ha_state_quorate(d->st) || !owned_guests(d)) {
		log_info("node %s: signal %d: nothing to evacuate (or no quorum): stopping",
		         d->name, signo);
		loop_quit(loop, 0);
		return;
	}
	m.node = ha_state_self(d->st);
	self = ha_state_node(d->st, m.node);
	snprintf(m.text, sizeof(m.text), "agent stopping (signal %d)", signo);
	/* a node marked failing --cold goes on with its cold evacuation: not made live */
	if ((!self || self->state != HA_NODE_STOPPING) && ha_state_submit(d->st, &m) < 0) {
		loop_quit(loop, 1);
		return;
	}
	pump(d);
	d->draining = true;
	d->drain_deadline = loop_now_ms() + (int64_t)d->cfg->drain_timeout_s * 1000;
	log_info("node %s: signal %d: draining %zu guest(s) before stopping (at most %u s)",
	         d->name, signo, owned_guests(d), d->cfg->drain_timeout_s);
}

static void open_hypervisor(struct daemon *d)
{
	const void *ops = NULL;
	char why[256];
	int rc = registry_lookup(&hv_registry, d->cfg->hypervisor, &ops, why, sizeof(why));

	if (rc == 0) {
		d->hv_ops = ops;
		rc = d->hv_ops->open(&d->hv, d->loop);
		if (rc < 0)
			snprintf(why, sizeof(why), "%s", err_str(rc));
	}
	if (rc < 0) {
		d->hv = NULL;
		log_warn(
		    "no hypervisor backend (%s): this node reports no guests and no free memory",
		    why);
	}
}

int ha_daemon_run(const struct ha_config *cfg)
{
	struct daemon d = {.cfg = cfg, .ctl_fd = -1};
	const void *ops = NULL;
	char why[256];
	int rc;

	signal(SIGPIPE, SIG_IGN);
	rc = registry_lookup(&cluster_registry, cfg->cluster, &ops, why, sizeof(why));
	if (rc < 0) {
		log_error("cluster backend: %s", why);
		return rc;
	}
	d.ops = ops;
	snprintf(d.name, sizeof(d.name), "%s", cfg->node_name);
	rc = loop_new(&d.loop);
	if (rc < 0)
		goto out;
	rc = ha_ctl_listen(cfg->socket_path, &d.ctl_fd);
	if (rc < 0) {
		log_error("cannot create the control socket %s: %s", cfg->socket_path, err_str(rc));
		goto out;
	}
	rc = ha_ctl_server_new(d.loop, d.ctl_fd, 0, on_ctl_request, &d, &d.ctl);
	if (rc < 0)
		goto out;
	loop_signal_add(d.loop, SIGTERM, on_stop, &d);
	loop_signal_add(d.loop, SIGINT, on_stop, &d);
	ha_health_init(&d.health, cfg->health_command, (int64_t)cfg->health_interval_s * 1000,
	               (int64_t)cfg->health_timeout_s * 1000, cfg->health_failures);
	open_hypervisor(&d);
	cluster_open(&d);
	loop_timer_add(d.loop, loop_now_ms() + TICK_MS, on_tick, &d);
	rc = loop_run(d.loop);
out:
	ha_health_stop(&d.health);
	ha_ctl_server_free(d.ctl);
	ha_exec_free(d.ex);
	cluster_close(&d);
	if (d.hv)
		d.hv_ops->close(d.hv);
	if (d.ctl_fd >= 0) {
		close(d.ctl_fd);
		unlink(cfg->socket_path);
	}
	ha_state_free(d.st);
	if (d.loop)
		loop_free(d.loop);
	return rc;
}
