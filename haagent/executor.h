/*
 * executor.h - carries out this node's part of the plan.
 *
 * Every node computes the same plan; the executor acts only on the actions that name this
 * node as executor, and only in two steps: it first multicasts a claim (migration-started,
 * restart-started), then starts the job once the claim was applied in agreed order, so no
 * two nodes ever act on one guest. Jobs run in child processes (worker.h); their outcome is
 * multicast (migration-done/-failed, guest-restarted, guest-stopped, fenced).
 *
 * ha_exec_reconcile() is idempotent: it compares the view with the jobs it knows and starts
 * what is missing, so it is simply called after every change (delivery, membership, quorum,
 * a job's end, a timer tick). A migration whose source left is reported by its target from
 * what its hypervisor shows once no receiver is running any more.
 */
#ifndef XLEXT_HAAGENT_EXECUTOR_H
#define XLEXT_HAAGENT_EXECUTOR_H

#include <stdint.h>

#include "common/loop.h"
#include "haagent/conf.h"
#include "haagent/state.h"
#include "xl-ext/core/hv.h"

struct ha_executor;

struct ha_exec_env {
	struct loop *loop;
	const struct ha_config *cfg;
	const struct hv_ops *hv_ops; /* NULL: no hypervisor, nothing is executed */
	struct hv *hv;
	struct ha_state *st;
	void (*pump)(void *arg); /* send what was submitted to st */
	void *arg;
	/*
	 * Tests: what a job's child process runs instead of the worker (worker.h), called with
	 * arg; its return value is the child's exit status (enum ha_worker_status). kind is
	 * "send", "receive", "create", "stop", "fence", "stale", "drop-away", "resume-away" or
	 * "self-fence"; from and to are the move's nodes (the node to fence in from); report_fd
	 * is where a fence job writes its one-line report (-1 for the others). NULL: the
	 * workers of worker.h.
	 */
	int (*worker)(void *arg, const char *kind, const char *guest, uint32_t from, uint32_t to,
	              int report_fd);
};

/*
 * Set up the executor; listens for incoming migrations on cfg->migration_port when a
 * migration_key is configured. Returns 0 or a negative error (logged).
 */
int ha_exec_new(struct ha_executor **ex_r, const struct ha_exec_env *env);

/* Stop listening and forget the jobs (running children finish on their own). */
void ha_exec_free(struct ha_executor *ex);

/* Where node nodeid's agent listens for migrations (its cluster address). */
void ha_exec_set_node_addr(struct ha_executor *ex, uint32_t nodeid, const char *addr);

/* Compare the view with the jobs and start what is missing (see above). */
void ha_exec_reconcile(struct ha_executor *ex);

/* Jobs running now (tests, drain). */
unsigned ha_exec_running(const struct ha_executor *ex);

#endif
