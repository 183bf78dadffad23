/*
 * handshake.h - xl's handshake around a backend's stream.
 *
 * One code path for both hypervisor backends: the sender and receiver state machines of
 * Xen 4.17's "xl migrate" / "xl migrate-receive" (xlproto.h), with the renames, the point of
 * no return and every failure branch; the backend only produces and consumes the stream.
 */
#ifndef XLEXT_MIGRATION_HANDSHAKE_H
#define XLEXT_MIGRATION_HANDSHAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "xl-ext/core/hv.h"
#include "xl-ext/precopy/precopy.h"

enum mig_result {
	MIG_OK = 0,
	MIG_FAILED_RESUMED,   /* failed before the point of no return; the guest runs here */
	MIG_FAILED_TARGET,    /* the target failed to start it; resumed here */
	MIG_FAILED_UNDEFINED, /* I/O failed after GO: state undefined, check both ends */
	MIG_FAILED_NO_RESUME, /* suspend timed out: not resumed (as xl) */
	MIG_REFUSED,          /* refused before anything was suspended: the guest untouched */
	MIG_FAILED_POSTCOPY,  /* post-copy failed after the guest ran on the target: paused there
	                         for good, its old copy here never resumed; restart it from its
	                         disks */
};

/*
 * xl-ext's extension of the handshake (XLP_OPT_XLEXT, xlproto.h): shared-storage checks and
 * the reservation hand-over (handover.h), run only when both ends are xl-ext.
 *
 * Sender: ext_request is sent after the header; ready() judges the receiver's answer before
 * anything is suspended (non-zero: the migration is refused, the domain untouched); final()
 * gets the receiver's last message (NULL when it did not come) after a successful start.
 * Receiver: prepare() answers the request (*answer_r always set when it returns; non-zero:
 * refused, nothing received); received() (optional) runs once the stream is applied and the
 * domain exists here, paused, with its disks attached, before the receiver says it is ready
 * (non-zero: the copy is destroyed, the sender keeps the domain); go() runs once the domain
 * runs here, after the report, and produces the last message; abort() undoes prepare() and
 * received() when the migration fails before that.
 */
struct mig_ext_ops {
	int (*ready)(void *ctx, const char *answer);
	void (*final)(void *ctx, const char *final);
	int (*prepare)(void *ctx, const char *request, char **answer_r);
	int (*received)(void *ctx);
	int (*go)(void *ctx, char **final_r);
	void (*abort)(void *ctx);
};

struct mig_send_args {
	const struct hv_ops *ops;
	struct hv *hv;
	uint32_t domid;
	const char *name;        /* the domain's current name */
	const char *config_json; /* what goes in the save-file header */
	int send_fd;             /* to the receiver */
	int recv_fd;             /* from the receiver */
	const char *peer;        /* for messages: host or rune */
	int reply_timeout_ms;    /* limit on each reply after the stream (0: none) */
	struct mig_params params;
	const struct mig_ext_ops *ext; /* NULL: the receiver is not known to be xl-ext */
	void *ext_ctx;
	const char *ext_request;
};

/* Run the sender. Returns 0 on success; out_result tells which failure branch was taken. */
int mig_send(const struct mig_send_args *a, struct mig_report *report, enum mig_result *result_r);

struct mig_receive_args {
	const struct hv_ops *ops;
	struct hv *hv;
	int send_fd; /* to the sender (stdout for migrate-receive) */
	int recv_fd; /* from the sender (stdin) */
	bool paused; /* -p: leave the domain paused */
	bool debug;
	const struct mig_ext_ops *ext; /* used when the sender asks for the extension */
	void *ext_ctx;
	const struct pc_streams *streams; /* accepts a sender's extra streams; NULL: none */
};

int mig_receive(const struct mig_receive_args *a, struct mig_report *report, uint32_t *domid_r);

/* The domain name inside a configuration JSON (sim's "name", libxl's c_info.name). */
int mig_config_name(const char *json, char *name, size_t len);

#endif
