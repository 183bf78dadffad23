/*
 * cluster_sim.c - a simulated cluster backend (struct cluster_ops) for unit tests: N nodes
 * in one process, one total order, partitions, delays, crashes (see cluster_sim.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "haagent/cluster_sim.h"

enum sim_event_kind { SIM_MSG, SIM_CONFCHG, SIM_QUORUM, SIM_LOST };

struct sim_event {
	struct sim_event *next;
	enum sim_event_kind kind;
	uint64_t due;
	uint32_t from;
	uint8_t *data;
	size_t len;
	bool quorate;
	uint32_t members[CL_SIM_MAX_NODES], left[CL_SIM_MAX_NODES], joined[CL_SIM_MAX_NODES];
	size_t nmembers, nleft, njoined;
};

struct cluster {
	struct cl_sim_world *world;
	uint32_t nodeid;
	struct cluster_callbacks cb;
	void *arg;
	int efd;
};

struct sim_node {
	uint32_t nodeid;
	bool up;                            /* corosync running */
	int part;                           /* partition */
	struct cluster *handle;             /* joined agent, NULL if none */
	bool lost;                          /* corosync restarted: only the lost callback is left */
	struct sim_event *head, *tail;      /* the node's delivery queue, in total order */
	uint32_t members[CL_SIM_MAX_NODES]; /* group membership as last told to it */
	size_t nmembers;
	bool quorate;
	bool quorum_first; /* votequorum's report overtakes the membership change */
};

struct cl_sim_world {
	struct sim_node nodes[CL_SIM_MAX_NODES];
	size_t nnodes;
	uint64_t now;
	unsigned delay;
	uint32_t next_nodeid;
	bool two_node; /* the quorum is one vote (votequorum's two_node) */
};

static struct cl_sim_world *open_world; /* set by cl_sim_world_next_node() */

int cl_sim_world_new(struct cl_sim_world **world_r, size_t nnodes)
{
	struct cl_sim_world *w;

	*world_r = NULL;
	if (nnodes == 0 || nnodes > CL_SIM_MAX_NODES)
		return ERR_INVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return ERR_NOMEM;
	w->nnodes = nnodes;
	for (size_t i = 0; i < nnodes; i++) {
		w->nodes[i].nodeid = (uint32_t)i + 1;
		w->nodes[i].up = true;
	}
	*world_r = w;
	return 0;
}

static void free_queue(struct sim_node *n)
{
	while (n->head) {
		struct sim_event *e = n->head;

		n->head = e->next;
		free(e->data);
		free(e);
	}
	n->tail = NULL;
}

void cl_sim_world_free(struct cl_sim_world *world)
{
	if (!world)
		return;
	for (size_t i = 0; i < world->nnodes; i++)
		free_queue(&world->nodes[i]);
	if (open_world == world)
		open_world = NULL;
	free(world);
}

void cl_sim_world_next_node(struct cl_sim_world *world, uint32_t nodeid)
{
	open_world = world;
	world->next_nodeid = nodeid;
}

void cl_sim_set_delay(struct cl_sim_world *world, unsigned delay_ms)
{
	world->delay = delay_ms;
}

uint64_t cl_sim_now(const struct cl_sim_world *world)
{
	return world->now;
}

static struct sim_node *sim_node(struct cl_sim_world *w, uint32_t nodeid)
{
	return nodeid >= 1 && nodeid <= w->nnodes ? &w->nodes[nodeid - 1] : NULL;
}

/* Append e to n's queue; never due before what is already queued (no reordering). */
static void enqueue(struct sim_node *n, struct sim_event *e)
{
	if (n->tail && n->tail->due > e->due)
		e->due = n->tail->due;
	e->next = NULL;
	if (n->tail)
		n->tail->next = e;
	else
		n->head = e;
	n->tail = e;
	if (n->handle) {
		uint64_t one = 1;

		if (write(n->handle->efd, &one, sizeof(one)) < 0)
			log_debug("eventfd write failed for node %u", n->nodeid);
	}
}

static struct sim_event *new_event(struct cl_sim_world *w, enum sim_event_kind kind)
{
	struct sim_event *e = calloc(1, sizeof(*e));

	if (e) {
		e->kind = kind;
		e->due = w->now + (kind == SIM_MSG ? w->delay : 0);
	}
	return e;
}

/* Recompute membership and quorum of every partition and tell what changed. */
static void recompute(struct cl_sim_world *w)
{
	for (size_t i = 0; i < w->nnodes; i++) {
		struct sim_node *n = &w->nodes[i];
		uint32_t members[CL_SIM_MAX_NODES];
		size_t nm = 0, up = 0;
		struct sim_event *e;
		bool quorate, changed;

		if (!n->handle || n->lost)
			continue;
		for (size_t k = 0; k < w->nnodes; k++) {
			struct sim_node *o = &w->nodes[k];

			if (!o->up || o->part != n->part)
				continue;
			up++;
			if (o->handle && !o->lost)
				members[nm++] = o->nodeid;
		}
		quorate = up * 2 > w->nnodes || (w->two_node && up > 0);
		changed =
		    nm != n->nmembers || memcmp(members, n->members, nm * sizeof(members[0])) != 0;
		if (changed && n->quorum_first && quorate != n->quorate) {
			e = new_event(w, SIM_QUORUM);
			if (!e)
				continue;
			e->quorate = quorate;
			enqueue(n, e);
		}
		if (changed) {
			e = new_event(w, SIM_CONFCHG);
			if (!e)
				continue;
			for (size_t a = 0; a < nm; a++) {
				bool was = false;

				for (size_t b = 0; b < n->nmembers; b++)
					was = was || n->members[b] == members[a];
				if (!was)
					e->joined[e->njoined++] = members[a];
			}
			for (size_t b = 0; b < n->nmembers; b++) {
				bool is = false;

				for (size_t a = 0; a < nm; a++)
					is = is || n->members[b] == members[a];
				if (!is)
					e->left[e->nleft++] = n->members[b];
			}
			memcpy(e->members, members, nm * sizeof(members[0]));
			e->nmembers = nm;
			memcpy(n->members, members, nm * sizeof(members[0]));
			n->nmembers = nm;
			enqueue(n, e);
		}
		/* votequorum reports after every membership change, changed or not */
		if (quorate != n->quorate || changed) {
			e = new_event(w, SIM_QUORUM);
			if (!e)
				continue;
			e->quorate = quorate;
			n->quorate = quorate;
			enqueue(n, e);
		}
	}
}

void cl_sim_set_quorum_first(struct cl_sim_world *world, uint32_t nodeid, bool on)
{
	struct sim_node *n = sim_node(world, nodeid);

	if (n)
		n->quorum_first = on;
}

void cl_sim_set_two_node(struct cl_sim_world *world, bool on)
{
	world->two_node = on;
	recompute(world);
}

void cl_sim_partition(struct cl_sim_world *world, const int *part)
{
	for (size_t i = 0; i < world->nnodes; i++)
		world->nodes[i].part = part[i];
	recompute(world);
}

/* The node's agent is gone: drop what it would have received. */
static void detach(struct sim_node *n)
{
	free_queue(n);
	n->handle = NULL;
	n->lost = false;
	n->nmembers = 0;
	n->quorate = false;
}

void cl_sim_crash(struct cl_sim_world *world, uint32_t nodeid)
{
	struct sim_node *n = sim_node(world, nodeid);

	if (!n)
		return;
	n->up = false;
	if (n->handle)
		n->handle->world = NULL; /* the agent died with it; close() just frees */
	detach(n);
	recompute(world);
}

void cl_sim_restart_corosync(struct cl_sim_world *world, uint32_t nodeid)
{
	struct sim_node *n = sim_node(world, nodeid);
	struct cluster *h;
	struct sim_event *e;

	if (!n || !n->handle)
		return;
	h = n->handle;
	free_queue(n);
	n->nmembers = 0;
	n->quorate = false;
	n->lost = true;
	recompute(world); /* the others see it leave */
	e = new_event(world, SIM_LOST);
	if (e)
		enqueue(n, e);
	else
		detach(n);
	(void)h;
}

void cl_sim_revive(struct cl_sim_world *world, uint32_t nodeid)
{
	struct sim_node *n = sim_node(world, nodeid);

	if (n && !n->up) {
		n->up = true;
		recompute(world);
	}
}

static void deliver(struct sim_node *n, struct sim_event *e)
{
	struct cluster *h = n->handle;

	switch (e->kind) {
	case SIM_MSG:
		if (h->cb.deliver)
			h->cb.deliver(h->arg, e->from, e->data, e->len);
		break;
	case SIM_CONFCHG:
		if (h->cb.membership)
			h->cb.membership(h->arg, e->members, e->nmembers, e->left, e->nleft,
			                 e->joined, e->njoined);
		break;
	case SIM_QUORUM:
		if (h->cb.quorum)
			h->cb.quorum(h->arg, e->quorate);
		break;
	case SIM_LOST:
		n->handle = NULL; /* the agent must close and reopen */
		n->lost = false;
		if (h->cb.lost)
			h->cb.lost(h->arg, ERR_IO);
		break;
	}
}

/* Deliver n's head event if it is due; returns 1 if one ran. */
static size_t step(struct cl_sim_world *w, struct sim_node *n)
{
	struct sim_event *e = n->head;

	if (!e || !n->handle || e->due > w->now)
		return 0;
	n->head = e->next;
	if (!n->head)
		n->tail = NULL;
	deliver(n, e);
	free(e->data);
	free(e);
	return 1;
}

size_t cl_sim_step_node(struct cl_sim_world *world, uint32_t nodeid)
{
	struct sim_node *n = sim_node(world, nodeid);

	return n ? step(world, n) : 0;
}

size_t cl_sim_pending(const struct cl_sim_world *world)
{
	size_t count = 0;

	for (size_t i = 0; i < world->nnodes; i++)
		for (const struct sim_event *e = world->nodes[i].head; e; e = e->next)
			count++;
	return count;
}

size_t cl_sim_run(struct cl_sim_world *world, size_t max_events)
{
	size_t ran = 0;

	while (ran < max_events) {
		uint64_t next = UINT64_MAX;
		size_t progress = 0;

		/* One event per node per pass interleaves the nodes like real schedulers. */
		for (size_t i = 0; i < world->nnodes && ran < max_events; i++)
			progress += step(world, &world->nodes[i]);
		ran += progress;
		if (progress)
			continue;
		for (size_t i = 0; i < world->nnodes; i++)
			if (world->nodes[i].head && world->nodes[i].handle &&
			    world->nodes[i].head->due < next)
				next = world->nodes[i].head->due;
		if (next == UINT64_MAX)
			break;
		world->now = next;
	}
	return ran;
}

static int sim_open(struct cluster **cl_r, const char *group, const struct cluster_callbacks *cb,
                    void *arg)
{
	struct cl_sim_world *w = open_world;
	struct sim_node *n;
	struct cluster *h;

	(void)group;
	*cl_r = NULL;
	if (!w)
		return ERR_NOTSUP; /* no world: the sim backend only runs under tests */
	n = sim_node(w, w->next_nodeid);
	if (!n || !n->up || n->handle)
		return ERR_BUSY;
	h = calloc(1, sizeof(*h));
	if (!h)
		return ERR_NOMEM;
	h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->efd < 0) {
		free(h);
		return ERR_IO;
	}
	h->world = w;
	h->nodeid = n->nodeid;
	h->cb = *cb;
	h->arg = arg;
	n->handle = h;
	recompute(w);
	*cl_r = h;
	return 0;
}

static void sim_close(struct cluster *cl)
{
	if (!cl)
		return;
	if (cl->world) {
		struct sim_node *n = sim_node(cl->world, cl->nodeid);

		if (n->handle == cl) {
			detach(n);
			recompute(cl->world);
		}
	}
	close(cl->efd);
	free(cl);
}

static int sim_fds(struct cluster *cl, int *fds, size_t max, size_t *n_r)
{
	if (max < 1)
		return ERR_INVAL;
	fds[0] = cl->efd;
	*n_r = 1;
	return 0;
}

static int sim_dispatch(struct cluster *cl, int fd)
{
	uint64_t v;
	struct sim_node *n;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* nothing signalled: fine, deliver what is due anyway */
	}
	if (!cl->world)
		return ERR_IO;
	n = sim_node(cl->world, cl->nodeid);
	while (n->handle == cl && step(cl->world, n))
		;
	return 0;
}

static int sim_send(struct cluster *cl, const void *msg, size_t len)
{
	struct cl_sim_world *w = cl->world;
	struct sim_node *self;

	if (!w)
		return ERR_IO;
	self = sim_node(w, cl->nodeid);
	if (self->handle != cl || !self->up || self->lost)
		return ERR_IO;
	for (size_t i = 0; i < self->nmembers; i++) {
		struct sim_node *n = sim_node(w, self->members[i]);
		struct sim_event *e;

		if (!n->handle || n->part != self->part)
			continue;
		e = new_event(w, SIM_MSG);
		if (!e)
			return ERR_NOMEM;
		e->data = malloc(len ? len : 1);
		if (!e->data) {
			free(e);
			return ERR_NOMEM;
		}
		memcpy(e->data, msg, len);
		e->len = len;
		e->from = cl->nodeid;
		enqueue(n, e);
	}
	return 0;
}

static int sim_local_nodeid(struct cluster *cl, uint32_t *nodeid_r)
{
	*nodeid_r = cl->nodeid;
	return 0;
}

static int sim_nodes(struct cluster *cl, struct cluster_node **nodes_r, size_t *n_r)
{
	struct cl_sim_world *w = cl->world;
	struct cluster_node *nodes;

	if (!w)
		return ERR_IO;
	nodes = calloc(w->nnodes, sizeof(*nodes));
	if (!nodes)
		return ERR_NOMEM;
	for (size_t i = 0; i < w->nnodes; i++) {
		nodes[i].nodeid = w->nodes[i].nodeid;
		snprintf(nodes[i].name, sizeof(nodes[i].name), "node%u", w->nodes[i].nodeid);
		snprintf(nodes[i].addr, sizeof(nodes[i].addr), "sim:%u", w->nodes[i].nodeid);
	}
	*nodes_r = nodes;
	*n_r = w->nnodes;
	return 0;
}

const struct cluster_ops cl_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .fds = sim_fds,
    .dispatch = sim_dispatch,
    .send = sim_send,
    .local_nodeid = sim_local_nodeid,
    .nodes = sim_nodes,
};
