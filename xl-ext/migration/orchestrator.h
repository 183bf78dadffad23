/*
 * orchestrator.h - one live migration, from a request to an outcome: the single entry point
 * that "xl-ext migrate", haagent's executor, the resource-agent hooks and the drills call, so
 * that every caller gets the same checks, hand-over and report.
 *
 * mig_run (the sender) takes these steps in order; each of the first ones can refuse, and a
 * refusal leaves the domain untouched, running here:
 *   1. find the domain;
 *   2. collect and classify its disks (the -C file's, or the running domain's) and refuse a
 *      local writable disk;
 *   3. ask the destination: the pre-flight over the rune (memory, name, CPU, version, LUN
 *      identities); over --tcp the receiver checks in the handshake instead;
 *   4. the dirty-rate estimate, when asked;
 *   5. the configuration to send;
 *   6. shared storage: between two xl-ext ends the LUN identity check and the reservation
 *      hand-over ride on the handshake (handover.h); towards stock xl, a LUN this host holds
 *      is refused (the guest could not write there);
 *   7. the transport (xl's rune with its child process, or the authenticated TCP transport);
 *   8. xl's handshake around the backend's stream (handshake.h), cancellable until the
 *      point of no return through req->params.cancel;
 *   9. the outcome: which branch was taken, the report, the hand-over's result.
 * mig_serve is the receiving end: xl's handshake with the hand-over extension.
 */
#ifndef XLEXT_MIGRATION_ORCHESTRATOR_H
#define XLEXT_MIGRATION_ORCHESTRATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "xl-ext/core/hv.h"
#include "xl-ext/migration/disks.h"
#include "xl-ext/migration/handshake.h"

struct ho_sender;

struct mig_request {
	const struct hv_ops *ops;
	struct hv *hv;
	const char *domain; /* name or numeric id on this host */
	/* Transport: xl's rune "<ssh> <host> xl-ext migrate-receive ..." (ssh "" runs host as
	 * the whole command), or with tcp_addr the direct transport authenticated by key_file. */
	const char *host;
	const char *ssh;      /* NULL: "ssh" */
	const char *tcp_addr; /* ADDR:PORT of a listening receiver, or NULL */
	const char *key_file; /* with tcp_addr */
	/* >= 0: a channel to an xl-ext receiver (mig_serve) the caller connected itself, used
	 * instead of host or tcp_addr (both directions; not closed by mig_run). Over it the
	 * receiver's own mig_serve_request decides -p and --debug. */
	int channel_fd;
	const char *config_file;  /* -C: the configuration to send instead of the domain's */
	bool no_daemon;           /* -e, passed on in the rune */
	bool paused;              /* -p: the destination leaves the domain paused */
	bool dry_run;             /* run the checks only; nothing moves */
	bool estimate;            /* sample the dirty rate before sending */
	uint32_t max_downtime_ms; /* refuse when the estimate predicts more (implies estimate) */
	double max_total_s;
	bool allow_local_disks;   /* migrate with a local writable disk left behind (warned) */
	bool no_preflight;        /* do not ask the destination before the stream (rune only) */
	int reply_timeout_ms;     /* limit on each reply after the stream; 0: the default */
	struct mig_params params; /* pre-copy policy, bandwidth, debug, progress, cancel */
};

struct mig_outcome {
	int rc;                 /* 0 or the error that ended it */
	enum mig_result result; /* which branch was taken */
	char name[HV_NAME_MAX]; /* the domain's name */
	const char *where;      /* the destination, for messages: host, rune or address */
	struct mig_report report;
	/* what the report says of storage, owned by the outcome */
	struct mig_disks disks;
	struct ho_sender *handover; /* NULL when the destination was not xl-ext */
	const char *policy;         /* the pre-copy policy that really ran */
	enum mig_mode mode;         /* the mode that ran (--mode auto: the one chosen) */
};

/* Spawn "sh -c rune" with pipes to its stdin and from its stdout (xl's migration child). */
pid_t mig_spawn_rune(const char *rune, int *send_fd, int *recv_fd);
/* Reap the transport child, waiting at most ~2 s (as xl does). */
void mig_reap_child(pid_t pid);

/* Defaults a caller starts from: adaptive policy, throttle on stall, 120 s reply timeout. */
void mig_request_init(struct mig_request *req);

/*
 * Migrate req->domain. Returns out->rc: 0 when the domain runs on the destination.
 * Everything is logged as it happens; out says which branch was taken (mig_outcome_line,
 * mig_outcome_json). Free with mig_outcome_dispose, on every path.
 */
int mig_run(const struct mig_request *req, struct mig_outcome *out);

/* One line for the operator: "Migration of vm1 to h2 successful (downtime 12.3 ms, ...)." */
void mig_outcome_line(const struct mig_outcome *out, char *buf, size_t len);

/* The migrate --json report; caller puts it. */
json_object *mig_outcome_json(const struct mig_request *req, const struct mig_outcome *out);

void mig_outcome_dispose(struct mig_outcome *out);

/* The text of a result ("failed; domain resumed on the source"). */
const char *mig_result_text(enum mig_result result);

struct mig_serve_request {
	const struct hv_ops *ops;
	struct hv *hv;
	int send_fd; /* to the sender */
	int recv_fd; /* from the sender */
	bool paused; /* leave the received domain paused */
	bool debug;
	const struct pc_streams *streams; /* accepts the sender's extra streams (--listen) */
};

/*
 * Receive one domain: xl's handshake, with the LUN identity check and the reservation
 * hand-over when the sender is xl-ext (on the kernel initiator's devices when the backend
 * says so). Returns 0 with *domid_r once it runs here.
 */
int mig_serve(const struct mig_serve_request *req, struct mig_report *report, uint32_t *domid_r);

#endif
