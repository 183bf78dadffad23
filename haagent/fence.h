/*
 * fence.h - how haagent fences a node before its guests are restarted elsewhere.
 *
 * Two methods (haagent.conf(5) fence_mode):
 *  - command:     the configured fence_command (power off, STONITH agent), exit 0 = fenced;
 *  - reservation: on every shared iSCSI LUN of the node's guests, this (surviving) node
 *                 registers its own key and PREEMPTs the dead node's key, taking the
 *                 WRITE EXCLUSIVE - REGISTRANTS ONLY reservation (owner.h's fence flow, run
 *                 over lun.h): from then on the target refuses the dead node's writes with
 *                 RESERVATION CONFLICT, even if that node is still alive and writing.
 * The node counts as fenced only when every method chosen succeeded, on every LUN; otherwise
 * nothing is restarted and the failure is an event naming node, guest, LUN and the remedy.
 *
 * The decision (ha_fence_methods) and the key lookup (ha_fence_node_key) are pure; the run
 * (ha_fence_run) does the I/O and is called in the executor's child process.
 */
#ifndef XLEXT_HAAGENT_FENCE_H
#define XLEXT_HAAGENT_FENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xl-ext/core/hv.h"

enum ha_fence_mode {
	HA_FENCE_AUTO = 0,        /* command if fence_command is set, else reservation */
	HA_FENCE_COMMAND = 1,     /* fence_command only */
	HA_FENCE_RESERVATION = 2, /* reservation preempt only */
	HA_FENCE_BOTH = 3,        /* reservation preempt, then the command: both must succeed */
};

#define HA_FENCE_BY_COMMAND     1u
#define HA_FENCE_BY_RESERVATION 2u
#define HA_FENCE_WHY_MAX        256

/* "auto", "command", "reservation", "both" (or "?"). */
const char *ha_fence_mode_name(enum ha_fence_mode mode);

/*
 * Which methods fence a node (HA_FENCE_BY_* bits into *methods_r), given the mode, whether a
 * fence_command is configured and how many shared iSCSI LUNs the node's guests have
 * (nluns). Returns 0, or ERR_INVAL with why (HA_FENCE_WHY_MAX) saying what is missing and
 * what to configure: no method applies (the node then stays unfenced and its guests down).
 */
int ha_fence_methods(enum ha_fence_mode mode, bool have_command, size_t nluns, unsigned *methods_r,
                     char *why, size_t why_len);

/*
 * The reservation key of node name: from node_keys ("NAME=KEY[,NAME=KEY...]", hex keys,
 * spaces allowed; the haagent.conf key of the same name) when it names the node, otherwise
 * derived from the name as xl-ext derives a host's key (own_host_key, hostid.h). Returns 0,
 * or ERR_INVAL for a malformed node_keys (why says which entry).
 */
int ha_fence_node_key(const char *node_keys, const char *name, uint64_t *key_r, char *why,
                      size_t why_len);

/* One guest of the node to fence: its name, its xl.cfg and its disks (";"-separated specs,
 * "" to read them from config). incoming: the node was only the target of its migration (it
 * may have registered on the LUNs, the source still owns them): its key is removed there,
 * but this node does not take the reservation. */
struct ha_fence_guest {
	const char *name;
	const char *config;
	const char *disks;
	bool incoming;
};

struct ha_fence_args {
	enum ha_fence_mode mode;
	const char *command;   /* fence_command, "" for none */
	const char *node_keys; /* haagent.conf node_keys */
	const char *victim;    /* name of the node to fence */
	const struct ha_fence_guest *guests;
	size_t nguests;
	int timeout_s;         /* per LUN step */
	int command_timeout_s; /* the fence command's bound (fence_timeout_s) */
};

/*
 * Fence args->victim (blocking; run in a child). Returns HA_WORKER_OK when fenced. On failure
 * writes one line for the cluster's event list into report (report_len), naming node, guest,
 * LUN and what to do, and logs the details.
 */
int ha_fence_run(const struct ha_fence_args *args, char *report, size_t report_len);

/*
 * Before a cold restart on this node (blocking; in the restart job's child): on every shared
 * LUN of a->guests[0] whose reservation is held by the key of another live cluster member
 * (member_keys: the node that fenced the guest's old owner by reservation), preempt that key
 * with this node's own (owner.h's fence flow), so the guest's own session can acquire the LUN.
 * A LUN held by anyone else, or by nobody, is left alone (the guest's acquire decides). Returns
 * 0, or the error that stopped it (logged naming the guest and the LUN).
 */
int ha_fence_adopt(const struct ha_fence_args *a, const uint64_t *member_keys, size_t nkeys);

/*
 * Self-fence check (blocking; in a child) of a->guests[0], run by a node without quorum on a
 * guest it runs: has the cluster fenced this node (self_name) by reservation on one of the
 * guest's shared LUNs, i.e. is the LUN reserved and this node's key (ha_fence_node_key of
 * a->node_keys) no longer registered? Then this copy cannot write its disk any more and the
 * guest is restarted elsewhere: 1, with the LUN's URL in lun_r. 0 when every LUN still has
 * the key (or the guest has no shared LUN); < 0 when a LUN could not be read (nothing can be
 * concluded: the caller keeps the guest).
 */
int ha_fence_self_check(const struct ha_fence_args *a, const char *self_name, char *lun_r,
                        size_t lun_len);

#endif
