/*
 * handover.h - shared storage in the migration handshake (the XLP_OPT_XLEXT extension,
 * handshake.h): the destination verifies every iSCSI LUN's identity and takes over its
 * persistent reservation, on both transports, only when both ends are xl-ext.
 *
 *   sender   -> receiver  request: source host and key; per LUN (iSCSI disks, one entry per
 *                         URL): spec(s), URL, read-only, identity (VPD 0x83 + size) and the
 *                         reservation holder as the source reads them
 *   receiver              per LUN: log in as this host, compare identity; writable LUNs: plan
 *                         (own_plan_handover); HANDOVER: REGISTER this host's key and VERIFY
 *                         (owner.h, state READY); REGISTER: register only; REFUSE: refuse
 *   receiver -> sender    answer: ok, destination host and key, per LUN verified/registered/why
 *   sender                refuses before suspending unless ok (the domain keeps running)
 *   ... stream, GO, the guest runs on the destination, report ...
 *   receiver              GO given: PREEMPT the source's key, VERIFY the destination alone
 *                         owns the LUN; REGISTER-only LUNs: unregister (found unreserved, left so)
 *   receiver -> sender    final: per LUN preempted key, holder and keys after, time taken
 *
 * On the xen backend every step above runs on the kernel initiator's block device with SG_IO
 * (sgio.h) instead of a session of our own (lun.h), see ho_receiver_new.
 * The receiver's sessions stay open from prepare to go/abort; a registration belongs to its
 * session (tgt keeps a logged-out session's registration and reservation, but only that
 * session could use it), and the guest's own session registers the same key when it runs.
 * Without libiscsi the request carries no LUN and every step reports "not checked".
 */
#ifndef XLEXT_HANDOVER_H
#define XLEXT_HANDOVER_H

#include <json-c/json.h>

#include "xl-ext/migration/disks.h"
#include "xl-ext/migration/handshake.h"
#include "xl-ext/storage/iscsiadm.h"

extern const struct mig_ext_ops ho_ext_ops;

struct ho_sender;
struct ho_receiver;

/*
 * Sender: read this host's view of every iSCSI disk of disks (identity, reservation holder)
 * and build the request. kernel 1 (xen backend): read it through the kernel initiator's block
 * device of each disk (lun_choose in lun.h), 0 (sim): through a libiscsi session. disks must
 * outlive the sender state (verdicts are written there). Returns 0 or the error (logged,
 * naming domain, disk and LUN).
 */
int ho_sender_new(const char *domain, const char *dest, struct mig_disks *disks, int kernel,
                  struct ho_sender **s_r);
const char *ho_sender_request(const struct ho_sender *s);

/*
 * Sender, when the destination is not xl-ext (stock xl, or the pre-flight query got no
 * answer): nothing will hand the reservations over, and under WRITE EXCLUSIVE - REGISTRANTS
 * ONLY the guest could not write there. ERR_CONFLICT (logged, naming the disk, the LUN and the
 * way out) if this host's key holds the reservation of a writable iSCSI disk of disks; a LUN
 * it cannot read is warned about and passes. kernel as for ho_sender_new.
 */
int ho_check_not_stranded(const char *domain, const char *dest, const struct mig_disks *disks,
                          int kernel);

/* Add the hand-over to the --json report: "ownership" in each iSCSI disk of disks_json
 * (mig_disks_json's array) and a "handover" object in report. */
void ho_sender_report(const struct ho_sender *s, json_object *disks_json, json_object *report);
void ho_sender_free(struct ho_sender *s);

/*
 * Receiver state for mig_receive_args.ext_ctx. kernel 1 (xen backend): every LUN is verified
 * and registered through the kernel initiator's block device - the session blkback writes
 * the guest's disk through, since a registration belongs to its I_T nexus. A by-path disk
 * gets its iscsiadm login first; a block-iscsi disk, whose script logs in only when the
 * domain's disk is attached, is prepared through libiscsi (lun_choose) and registered on the
 * kernel's session once the stream is applied (mig_ext_ops.received), before the receiver
 * says it is ready - or the migration is refused. kernel 0 (sim): libiscsi sessions of our
 * own.
 *
 * A target that restarts without persistent reservations during the migration forgets every
 * registration and reservation, and drops the sessions: once the stream is applied the
 * receiver registers again where its key is no longer listed (on a new session), and after
 * GO, when the preempt fails, it takes the LUN as a fence of the source's key does (register,
 * preempt, reserve when nobody holds it), so the host that runs the guest ends up owning it.
 */
int ho_receiver_new(int kernel, struct ho_receiver **r_r);
/*
 * How a kernel receiver logs in to a by-path disk's target, and out again when it made the
 * session itself and the migration is then refused or fails (abort): NULL for the system's
 * iscsiadm (the default); tests pass a scripted one.
 */
void ho_receiver_set_iscsiadm(struct ho_receiver *r, const struct iscsiadm_ops *adm);
void ho_receiver_free(struct ho_receiver *r);

#endif
