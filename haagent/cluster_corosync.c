/*
 * cluster_corosync.c - the corosync 3 cluster backend: CPG for the group and agreed-order
 * delivery, votequorum for quorum, cmap for the configured node list.
 *
 * The only file that includes corosync headers; cs_error_t stops here (note CS_OK == 1).
 * CS_ERR_TRY_AGAIN (corosync busy or syncing) is retried with a short exponential backoff;
 * a dispatch that finds the connection gone reports it once through the lost callback, and
 * the agent then closes this handle and opens a new one (re-initialise, re-join, re-sync).
 * After every CPG membership change the quorum is read back from votequorum and reported,
 * because the two services notify independently and the state machine waits for a quorum
 * report after nodes leave.
 */
#include "config.h"

#include <corosync/cmap.h>
#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/votequorum.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "haagent/cluster.h"

#define CS_RETRY_MAX   10 /* 1 ms doubling: about 1 s in all */
#define CS_MAX_MEMBERS 64

struct cluster {
	cpg_handle_t cpg;
	votequorum_handle_t vq;
	bool cpg_open, vq_open, joined, lost;
	struct cpg_name group;
	struct cluster_callbacks cb;
	void *arg;
	int cpg_fd, vq_fd;
};

static int cs_err(cs_error_t e)
{
	switch (e) {
	case CS_OK:
		return 0;
	case CS_ERR_TRY_AGAIN:
		return ERR_BUSY;
	case CS_ERR_ACCESS:
		return ERR_PERM;
	case CS_ERR_NO_MEMORY:
		return ERR_NOMEM;
	case CS_ERR_NOT_EXIST:
		return ERR_NOTFOUND;
	case CS_ERR_TIMEOUT:
		return ERR_TIMEOUT;
	case CS_ERR_INVALID_PARAM:
	case CS_ERR_TOO_BIG:
	case CS_ERR_MESSAGE_ERROR:
		return ERR_INVAL;
	default:
		return ERR_IO;
	}
}

static void backoff(int attempt)
{
	struct timespec ts = {0, (long)(1000000L << (attempt < 9 ? attempt : 9))};

	nanosleep(&ts, NULL);
}

/* Call expr until it stops answering CS_ERR_TRY_AGAIN (bounded). */
#define CS_RETRY(rc_var, expr)                                                        \
	do {                                                                          \
		for (int attempt_ = 0;; attempt_++) {                                 \
			(rc_var) = (expr);                                            \
			if ((rc_var) != CS_ERR_TRY_AGAIN || attempt_ >= CS_RETRY_MAX) \
				break;                                                \
			backoff(attempt_);                                            \
		}                                                                     \
	} while (0)

static size_t unique_nodeids(const struct cpg_address *list, size_t n, uint32_t *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k < CS_MAX_MEMBERS; i++) {
		bool seen = false;

		for (size_t j = 0; j < k && !seen; j++)
			seen = out[j] == list[i].nodeid;
		if (!seen)
			out[k++] = list[i].nodeid;
	}
	return k;
}

static void report_quorum(struct cluster *cl)
{
	struct votequorum_info info;
	cs_error_t e;

	if (!cl->vq_open || !cl->cb.quorum)
		return;
	memset(&info, 0, sizeof(info));
	CS_RETRY(e, votequorum_getinfo(cl->vq, 0, &info));
	if (e != CS_OK) {
		log_warn("votequorum_getinfo failed: %s", err_str(cs_err(e)));
		return;
	}
	cl->cb.quorum(cl->arg, (info.flags & VOTEQUORUM_INFO_QUORATE) != 0);
}

static void on_deliver(cpg_handle_t handle, const struct cpg_name *group, uint32_t nodeid,
                       uint32_t pid, void *msg, size_t len)
{
	struct cluster *cl = NULL;

	(void)group;
	(void)pid;
	if (cpg_context_get(handle, (void **)&cl) != CS_OK || !cl)
		return;
	if (cl->cb.deliver)
		cl->cb.deliver(cl->arg, nodeid, msg, len);
}

static void on_confchg(cpg_handle_t handle, const struct cpg_name *group,
                       const struct cpg_address *members, size_t nmembers,
                       const struct cpg_address *left, size_t nleft,
                       const struct cpg_address *joined, size_t njoined)
{
	struct cluster *cl = NULL;
	uint32_t m[CS_MAX_MEMBERS], l[CS_MAX_MEMBERS], j[CS_MAX_MEMBERS];
	size_t nm, nl, nj;

	(void)group;
	if (cpg_context_get(handle, (void **)&cl) != CS_OK || !cl)
		return;
	nm = unique_nodeids(members, nmembers, m);
	nl = unique_nodeids(left, nleft, l);
	nj = unique_nodeids(joined, njoined, j);
	for (size_t i = 0; i < nleft; i++)
		log_info("cpg: node %" PRIu32 " left group %s (reason %" PRIu32 ")", left[i].nodeid,
		         cl->group.value, left[i].reason);
	if (cl->cb.membership)
		cl->cb.membership(cl->arg, m, nm, l, nl, j, nj);
	report_quorum(cl);
}

static void on_quorum(votequorum_handle_t handle, uint64_t context, uint32_t quorate,
                      uint32_t nnodes, votequorum_node_t nodes[])
{
	struct cluster *cl = NULL;

	(void)context;
	(void)nnodes;
	(void)nodes;
	if (votequorum_context_get(handle, (void **)&cl) != CS_OK || !cl)
		return;
	if (cl->cb.quorum)
		cl->cb.quorum(cl->arg, quorate != 0);
}

static void coro_close(struct cluster *cl)
{
	if (!cl)
		return;
	if (cl->joined && !cl->lost)
		cpg_leave(cl->cpg, &cl->group);
	if (cl->cpg_open)
		cpg_finalize(cl->cpg);
	if (cl->vq_open)
		votequorum_finalize(cl->vq);
	free(cl);
}

static int open_quorum(struct cluster *cl)
{
	votequorum_callbacks_t vcb = {.votequorum_quorum_notify_fn = on_quorum};
	cs_error_t e;

	CS_RETRY(e, votequorum_initialize(&cl->vq, &vcb));
	if (e != CS_OK) {
		log_error("votequorum_initialize failed: %s (is corosync running with "
		          "votequorum?)",
		          err_str(cs_err(e)));
		return cs_err(e);
	}
	cl->vq_open = true;
	votequorum_context_set(cl->vq, cl);
	CS_RETRY(e, votequorum_trackstart(cl->vq, 0, CS_TRACK_CHANGES));
	if (e == CS_OK)
		CS_RETRY(e, votequorum_fd_get(cl->vq, &cl->vq_fd));
	if (e != CS_OK)
		log_error("votequorum tracking failed: %s", err_str(cs_err(e)));
	return cs_err(e);
}

static int coro_open(struct cluster **cl_r, const char *group, const struct cluster_callbacks *cb,
                     void *arg)
{
	cpg_model_v1_data_t v1 = {
	    .model = CPG_MODEL_V1, .cpg_deliver_fn = on_deliver, .cpg_confchg_fn = on_confchg};
	struct cluster *cl;
	cs_error_t e;
	int rc;

	*cl_r = NULL;
	if (!group || strlen(group) >= CPG_MAX_NAME_LENGTH)
		return ERR_INVAL;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return ERR_NOMEM;
	cl->cb = *cb;
	cl->arg = arg;
	cl->cpg_fd = cl->vq_fd = -1;
	cl->group.length = (uint32_t)strlen(group);
	memcpy(cl->group.value, group, cl->group.length);
	CS_RETRY(e, cpg_model_initialize(&cl->cpg, CPG_MODEL_V1, (cpg_model_data_t *)&v1, cl));
	if (e != CS_OK) {
		log_error("cpg_initialize failed: %s (is corosync running?)", err_str(cs_err(e)));
		rc = cs_err(e);
		goto out;
	}
	cl->cpg_open = true;
	rc = open_quorum(cl);
	if (rc < 0)
		goto out;
	CS_RETRY(e, cpg_fd_get(cl->cpg, &cl->cpg_fd));
	if (e == CS_OK)
		CS_RETRY(e, cpg_join(cl->cpg, &cl->group));
	if (e != CS_OK) {
		log_error("cpg_join of group %s failed: %s", group, err_str(cs_err(e)));
		rc = cs_err(e);
		goto out;
	}
	cl->joined = true;
	*cl_r = cl;
	cl = NULL;
	rc = 0;
out:
	coro_close(cl);
	return rc;
}

static int coro_fds(struct cluster *cl, int *fds, size_t max, size_t *n_r)
{
	if (max < 2)
		return ERR_INVAL;
	fds[0] = cl->cpg_fd;
	fds[1] = cl->vq_fd;
	*n_r = 2;
	return 0;
}

static int coro_dispatch(struct cluster *cl, int fd)
{
	cs_error_t e;

	if (cl->lost)
		return ERR_IO;
	if (fd == cl->cpg_fd)
		e = cpg_dispatch(cl->cpg, CS_DISPATCH_ALL);
	else if (fd == cl->vq_fd)
		e = votequorum_dispatch(cl->vq, CS_DISPATCH_ALL);
	else
		return ERR_INVAL;
	if (e == CS_OK || e == CS_ERR_TRY_AGAIN)
		return 0;
	cl->lost = true;
	log_error("connection to corosync lost (%s dispatch: %s)",
	          fd == cl->cpg_fd ? "cpg" : "votequorum", err_str(cs_err(e)));
	if (cl->cb.lost)
		cl->cb.lost(cl->arg, ERR_IO);
	return ERR_IO;
}

static int coro_send(struct cluster *cl, const void *msg, size_t len)
{
	struct iovec iov = {(void *)msg, len};
	cs_error_t e;

	if (cl->lost)
		return ERR_IO;
	CS_RETRY(e, cpg_mcast_joined(cl->cpg, CPG_TYPE_AGREED, &iov, 1));
	if (e != CS_OK)
		log_warn("cpg_mcast_joined of %zu bytes failed: %s", len, err_str(cs_err(e)));
	return cs_err(e);
}

static int coro_local_nodeid(struct cluster *cl, uint32_t *nodeid_r)
{
	unsigned int id = 0;
	cs_error_t e;

	CS_RETRY(e, cpg_local_get(cl->cpg, &id));
	*nodeid_r = id;
	return cs_err(e);
}

/* nodelist.node.<i>.{nodeid,name,ring0_addr} from cmap. */
static int coro_nodes(struct cluster *cl, struct cluster_node **nodes_r, size_t *n_r)
{
	struct cluster_node *nodes = NULL;
	cmap_handle_t cmap;
	size_t n = 0;
	cs_error_t e;
	int rc;

	(void)cl;
	*nodes_r = NULL;
	*n_r = 0;
	CS_RETRY(e, cmap_initialize(&cmap));
	if (e != CS_OK)
		return cs_err(e);
	for (unsigned i = 0;; i++) {
		char key[CMAP_KEYNAME_MAXLEN], *str = NULL;
		struct cluster_node *nb;
		uint32_t id;

		snprintf(key, sizeof(key), "nodelist.node.%u.nodeid", i);
		if (cmap_get_uint32(cmap, key, &id) != CS_OK)
			break;
		nb = realloc(nodes, (n + 1) * sizeof(*nodes));
		if (!nb) {
			rc = ERR_NOMEM;
			goto out;
		}
		nodes = nb;
		memset(&nodes[n], 0, sizeof(nodes[n]));
		nodes[n].nodeid = id;
		snprintf(key, sizeof(key), "nodelist.node.%u.ring0_addr", i);
		if (cmap_get_string(cmap, key, &str) == CS_OK) {
			snprintf(nodes[n].addr, sizeof(nodes[n].addr), "%s", str);
			free(str);
			str = NULL;
		}
		snprintf(key, sizeof(key), "nodelist.node.%u.name", i);
		if (cmap_get_string(cmap, key, &str) == CS_OK) {
			snprintf(nodes[n].name, sizeof(nodes[n].name), "%s", str);
			free(str);
		} else {
			snprintf(nodes[n].name, sizeof(nodes[n].name), "%s", nodes[n].addr);
		}
		n++;
	}
	*nodes_r = nodes;
	*n_r = n;
	nodes = NULL;
	rc = 0;
out:
	free(nodes);
	cmap_finalize(cmap);
	return rc;
}

const struct cluster_ops cl_corosync_ops = {
    .name = "corosync",
    .open = coro_open,
    .close = coro_close,
    .fds = coro_fds,
    .dispatch = coro_dispatch,
    .send = coro_send,
    .local_nodeid = coro_local_nodeid,
    .nodes = coro_nodes,
};
