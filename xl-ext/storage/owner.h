/*
 * owner.h - who may write a guest's LUNs: SCSI-3 persistent reservations as a pure state
 * machine (no I/O).
 *
 * Every host has a 64-bit reservation key (never 0). The host running a guest owns its LUNs:
 * its key is registered and it holds a WRITE EXCLUSIVE - REGISTRANTS ONLY (WERO, type 5)
 * reservation. Under WERO every registered I_T nexus may write and everyone else gets
 * RESERVATION CONFLICT; the reservation holder is the one registration that made (or preempted
 * into) it, and - unlike the ALL REGISTRANTS types - when the holder unregisters the
 * reservation is released (SPC-4 5.13.11, tgt does the same) and the LUN is open to anyone.
 * So the source must never simply unregister during a hand-over; instead the destination
 * PREEMPTs the source's key, which in one command moves the reservation to the destination
 * and removes every registration of the source's key (including those left by old sessions).
 *
 * "Owned by host K only" means: READ KEYS lists only K (one or more times: one registration
 * per I_T nexus), and READ RESERVATION reports holder key K with type WERO.
 *
 * Flows (each step is one command the executor runs on the LUN, in this order):
 *   acquire (start a guest on self):  REGISTER(self), RESERVE(WERO), VERIFY(self only holder)
 *       on RESERVE conflict: VERIFY; if self's key alone is registered and holds WERO (another
 *       session of this host holds it: haagent's fencer, a receiver) the flow is DONE (under
 *       WERO every registrant writes); else (someone else holds it) undo UNREGISTER(self),
 *       fail ERR_CONFLICT
 *   handover (run by the destination; peer = source):
 *       before GO: REGISTER(dst), VERIFY(holder = src, WERO, src and dst registered) -> READY
 *       after the guest runs on the destination (own_go): PREEMPT(dst, src, WERO),
 *       VERIFY(only dst registered, holder dst, WERO) -> DONE
 *       failure or own_abort before GO: undo UNREGISTER(dst), the source keeps owning.
 *       failure after GO: no undo (the guest runs on the destination); the step is retried.
 *   fence (self fences a dead peer): REGISTER(self), PREEMPT(self, peer, WERO),
 *       VERIFY(peer gone); if no reservation remains: RESERVE(WERO), VERIFY(self holder);
 *       if a third host holds it (the victim was only registered): UNREGISTER(self)
 *   evict (self removes a dead migration target's key; the source still owns the guest):
 *       REGISTER(self), PREEMPT(self, peer, WERO), VERIFY(peer gone); then UNREGISTER(self)
 *       unless self held the reservation before. Never RESERVEs: a LUN nobody reserved
 *       stays unreserved, so a running guest writing through an unregistered session keeps
 *       its disk
 *   release (guest stopped on self): RELEASE(self, WERO), UNREGISTER(self)
 * REGISTER is REGISTER AND IGNORE EXISTING KEY with the service action key = own key, so it is
 * idempotent and valid on a fresh session. A host registers only for a guest it is being
 * given (acquire, incoming migration, failover): a fenced host must never re-register by
 * itself - SCSI cannot stop a host that does, the protocol does.
 */
#ifndef XLEXT_STORAGE_OWNER_H
#define XLEXT_STORAGE_OWNER_H

#include <stdint.h>

#define OWN_PR_TYPE_WERO 5 /* WRITE EXCLUSIVE - REGISTRANTS ONLY */
#define OWN_MAX_KEYS     32

enum own_flow {
	OWN_FLOW_ACQUIRE,
	OWN_FLOW_HANDOVER,
	OWN_FLOW_FENCE,
	OWN_FLOW_RELEASE,
	OWN_FLOW_EVICT, /* remove peer's key (a dead migration target's), never reserving:
	                   register, preempt, verify it gone, unregister unless this key
	                   held the reservation already */
};

/* One persistent-reservation command, issued by this host on its session to the LUN. */
enum own_op {
	OWN_OP_NONE = 0,   /* nothing to do now: done, failed, or waiting for GO */
	OWN_OP_REGISTER,   /* PR OUT REGISTER AND IGNORE EXISTING KEY, sa_key = key */
	OWN_OP_UNREGISTER, /* PR OUT REGISTER AND IGNORE EXISTING KEY, sa_key = 0 */
	OWN_OP_RESERVE,    /* PR OUT RESERVE key, type */
	OWN_OP_RELEASE,    /* PR OUT RELEASE key, type */
	OWN_OP_PREEMPT,    /* PR OUT PREEMPT key, sa_key = victim, type */
	OWN_OP_CLEAR,      /* PR OUT CLEAR key (not used by the flows; admin) */
	OWN_OP_VERIFY,     /* PR IN READ KEYS + READ RESERVATION, then own_verify() */
};

enum own_state {
	OWN_ST_REGISTER,
	OWN_ST_RESERVE,
	OWN_ST_VERIFY,
	OWN_ST_READY, /* handover: registered and verified, waiting for GO */
	OWN_ST_PREEMPT,
	OWN_ST_VERIFY_FINAL,
	OWN_ST_RELEASE,
	OWN_ST_UNREGISTER,
	OWN_ST_UNDO, /* unregistering self after a failure before GO */
	OWN_ST_DONE,
	OWN_ST_ABORTED, /* undone: ownership as before the flow */
	OWN_ST_FAILED,  /* failed and could not be undone cleanly */
};

struct own_cmd {
	enum own_op op;
	uint64_t key;    /* this host's key */
	uint64_t sa_key; /* service action key (REGISTER: new key, PREEMPT: victim) */
	int type;        /* reservation type (WERO) */
};

/* What the LUN reported for a VERIFY step. */
struct own_view {
	unsigned nkeys;
	uint64_t keys[OWN_MAX_KEYS];
	int reserved;    /* a persistent reservation exists */
	uint64_t holder; /* its key */
	int type;        /* its type */
};

struct own_machine {
	enum own_flow flow;
	enum own_state state;
	uint64_t self; /* this host's key */
	uint64_t peer; /* handover: source's key; fence: victim's key */
	int go;        /* handover: GO passed (no undo any more) */
	int error;     /* first error that stopped or undid the flow */
	char why[160]; /* its explanation */
};

/* Start a flow. peer is the source (handover) or victim (fence), 0 otherwise. ERR_INVAL on
 * a 0 key, a peer equal to self, or a missing peer. */
int own_init(struct own_machine *m, enum own_flow flow, uint64_t self, uint64_t peer);

/* The next command to run; OWN_OP_NONE when done, failed, aborted or waiting for GO. */
struct own_cmd own_next(const struct own_machine *m);

/*
 * Feed the result of the command own_next returned (rc 0 or a negative error; view is
 * required for OWN_OP_VERIFY, ignored otherwise). Returns 0 when the flow advanced, or the
 * error that stopped it: the machine then is in OWN_ST_UNDO (run the undo steps own_next
 * gives), OWN_ST_FAILED, or - after GO - still at the failed step, to be retried.
 */
int own_result(struct own_machine *m, int rc, const struct own_view *view);

/* Handover: GO has been given (the guest is about to run on the destination). ERR_BUSY if
 * the machine is not READY. */
int own_go(struct own_machine *m);

/* Abandon a flow before GO: the next commands undo what was done. ERR_BUSY after GO. */
int own_abort(struct own_machine *m);

/* 1 when no command is left (DONE, ABORTED or FAILED). */
int own_finished(const struct own_machine *m);

/* 1 if key is among the view's registered keys. */
int own_view_has_key(const struct own_view *v, uint64_t key);

/*
 * Check a view for "owned by key only": every registration is key's, and key holds a WERO
 * reservation. Returns 0, or ERR_MISMATCH with *why_r describing the difference.
 */
int own_check_sole_owner(const struct own_view *v, uint64_t key, char *why, unsigned whylen);

/*
 * This host's reservation key: the value of env (hex, "0x" optional, non-zero) if set,
 * otherwise derived from the host name by XXH3 (never 0). ERR_INVAL on a bad env value.
 */
int own_host_key(const char *hostname, const char *env_value, uint64_t *key_r);

/* Runs one command on the LUN: 0 or a negative error; fills *view for OWN_OP_VERIFY. */
typedef int (*own_exec_fn)(void *ctx, const struct own_cmd *cmd, struct own_view *view);

/*
 * Drive m with exec until no command is left or the machine waits for GO (READY). Bounded to
 * 16 steps. Returns 0 when the machine is READY or DONE; otherwise the error that stopped it
 * (m->why explains it), after running the undo steps it asked for. After GO a failed step
 * stops the drive at once and is returned (the caller may drive again to retry).
 */
int own_drive(struct own_machine *m, own_exec_fn exec, void *ctx);

/* What a migration's destination does with one LUN, from the PR state before GO. */
enum own_plan {
	OWN_PLAN_HANDOVER, /* the source's key holds the reservation: register, then preempt it */
	OWN_PLAN_REGISTER, /* no reservation: register (proves access), nothing to preempt */
	OWN_PLAN_REFUSE,   /* another key holds it: the source does not own the LUN */
};

/*
 * Decide from view (READ KEYS + READ RESERVATION before the destination registers) what the
 * destination dst does when the source src hands a guest over. why (whylen bytes) explains a
 * refusal. Pure.
 */
enum own_plan own_plan_handover(const struct own_view *view, uint64_t src, uint64_t dst, char *why,
                                unsigned whylen);

/* What a host that owned a LUN does once its session to it, lost, is logged in again. */
enum own_rejoin {
	OWN_REJOIN_JOIN,     /* reserved, its key still registered: register the new session */
	OWN_REJOIN_ACQUIRE,  /* no reservation, no key registered: the target lost its PR state */
	OWN_REJOIN_CONFLICT, /* reserved, its key gone: preempted (fenced), never register again */
	OWN_REJOIN_WAIT,     /* no reservation but another key registered: not its to take now */
};

/*
 * Decide from view (READ KEYS + READ RESERVATION on the new session) what self, whose guest
 * runs here and whose session to the LUN was lost (a target restart, a path failure), does.
 * A target restarted without persistence (APTPL) forgets every registration and the
 * reservation: the running copy's host then takes the LUN again (acquire); a fence always
 * leaves a reservation behind, so a fenced host gets OWN_REJOIN_CONFLICT. Pure.
 */
enum own_rejoin own_plan_rejoin(const struct own_view *view, uint64_t self);

const char *own_op_name(enum own_op op);
const char *own_state_name(enum own_state st);
const char *own_flow_name(enum own_flow flow);

#endif
