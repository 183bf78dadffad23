/*
 * Tests of the ownership state machine (xl-ext/storage/owner.c) against a small model of a
 * LUN's persistent-reservation state that follows SPC-4 (and tgt) for WRITE EXCLUSIVE -
 * REGISTRANTS ONLY: one registration per host key here, the holder's unregistration releases
 * the reservation, PREEMPT of the holder's key moves the reservation to the preempter.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "xl-ext/storage/owner.h"

#define KS 0x5555000000000001ull /* source */
#define KD 0xdddd000000000002ull /* destination */
#define KX 0x7777000000000003ull /* a third host */

struct lun_model {
	uint64_t keys[8];
	unsigned nkeys;
	int reserved;
	uint64_t holder;
	int type;
	int fail_next;        /* inject: the next command returns this error */
	int holder_elsewhere; /* the holder's key holds it on another session (I_T nexus) */
};

static int reg_index(const struct lun_model *l, uint64_t k)
{
	for (unsigned i = 0; i < l->nkeys; i++)
		if (l->keys[i] == k)
			return (int)i;
	return -1;
}

static void unreg(struct lun_model *l, uint64_t k)
{
	int i = reg_index(l, k);

	if (i < 0)
		return;
	l->keys[i] = l->keys[--l->nkeys];
	if (l->reserved && l->holder == k)
		l->reserved = 0; /* WERO: the holder leaves, the reservation goes */
}

/* Execute cmd as host cmd->key would, SPC-4 style. */
static int model_exec(struct lun_model *l, const struct own_cmd *c, struct own_view *v)
{
	int rc;

	if (l->fail_next) {
		rc = l->fail_next;
		l->fail_next = 0;
		return rc;
	}
	switch (c->op) {
	case OWN_OP_REGISTER:
		if (reg_index(l, c->sa_key) < 0)
			l->keys[l->nkeys++] = c->sa_key;
		return 0;
	case OWN_OP_UNREGISTER:
		unreg(l, c->key);
		return 0;
	case OWN_OP_RESERVE:
		if (reg_index(l, c->key) < 0)
			return ERR_CONFLICT;
		if (l->reserved && (l->holder != c->key || l->holder_elsewhere))
			return ERR_CONFLICT;
		l->reserved = 1;
		l->holder = c->key;
		l->type = c->type;
		return 0;
	case OWN_OP_RELEASE:
		if (l->reserved && l->holder == c->key)
			l->reserved = 0;
		return 0;
	case OWN_OP_PREEMPT:
		if (reg_index(l, c->key) < 0 || reg_index(l, c->sa_key) < 0)
			return ERR_CONFLICT;
		if (l->reserved && l->holder == c->sa_key) {
			l->holder = c->key;
			l->type = c->type;
		}
		{
			int i = reg_index(l, c->sa_key);

			l->keys[i] = l->keys[--l->nkeys];
		}
		return 0;
	case OWN_OP_VERIFY:
		memset(v, 0, sizeof(*v));
		v->nkeys = l->nkeys;
		memcpy(v->keys, l->keys, l->nkeys * sizeof(uint64_t));
		v->reserved = l->reserved;
		v->holder = l->reserved ? l->holder : 0;
		v->type = l->reserved ? l->type : 0;
		return 0;
	default:
		return ERR_INVAL;
	}
}

/* Drive m until it needs GO or finishes; returns the last own_result rc; records ops. */
static int drive(struct own_machine *m, struct lun_model *l, enum own_op *ops, unsigned *nops)
{
	int rc = 0;

	for (unsigned guard = 0; guard < 20; guard++) {
		struct own_cmd c = own_next(m);
		struct own_view v;

		if (c.op == OWN_OP_NONE)
			return rc;
		assert_int_equal(c.key, m->self);
		if (ops)
			ops[(*nops)++] = c.op;
		rc = own_result(m, model_exec(l, &c, &v), &v);
		if (rc && m->go)
			return rc;
	}
	fail_msg("state machine did not settle");
	return ERR_INTERNAL;
}

static void owned_by(struct lun_model *l, uint64_t k)
{
	memset(l, 0, sizeof(*l));
	l->keys[0] = k;
	l->nkeys = 1;
	l->reserved = 1;
	l->holder = k;
	l->type = OWN_PR_TYPE_WERO;
}

static void assert_sole_owner(struct lun_model *l, uint64_t k)
{
	struct own_view v;
	struct own_cmd c = {.op = OWN_OP_VERIFY};
	char why[160];

	model_exec(l, &c, &v);
	if (own_check_sole_owner(&v, k, why, sizeof(why)))
		fail_msg("not owned by %llx only: %s", (unsigned long long)k, why);
}

static void test_init_rejects(void **state)
{
	struct own_machine m;

	(void)state;
	assert_int_equal(own_init(&m, OWN_FLOW_ACQUIRE, 0, 0), ERR_INVAL);
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, 0), ERR_INVAL);
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KD), ERR_INVAL);
	assert_int_equal(own_init(&m, OWN_FLOW_FENCE, KD, 0), ERR_INVAL);
	assert_int_equal(own_init(&m, OWN_FLOW_ACQUIRE, KD, 0), 0);
}

static void test_acquire(void **state)
{
	struct own_machine m;
	struct lun_model l = {0};
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	assert_int_equal(own_init(&m, OWN_FLOW_ACQUIRE, KS, 0), 0);
	assert_int_equal(drive(&m, &l, ops, &n), 0);
	assert_int_equal(m.state, OWN_ST_DONE);
	assert_int_equal(n, 3);
	assert_int_equal(ops[0], OWN_OP_REGISTER);
	assert_int_equal(ops[1], OWN_OP_RESERVE);
	assert_int_equal(ops[2], OWN_OP_VERIFY);
	assert_sole_owner(&l, KS);
}

static void test_acquire_conflict_undone(void **state)
{
	struct own_machine m;
	struct lun_model l;
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	owned_by(&l, KX);
	assert_int_equal(own_init(&m, OWN_FLOW_ACQUIRE, KS, 0), 0);
	drive(&m, &l, ops, &n);
	assert_int_equal(m.state, OWN_ST_ABORTED);
	assert_int_equal(m.error, ERR_CONFLICT);
	assert_non_null(strstr(m.why, "another host holds"));
	assert_int_equal(ops[n - 1], OWN_OP_UNREGISTER);
	assert_sole_owner(&l, KX); /* untouched */
}

/* haagent fenced with this host's key on its own session: the guest's session registers,
 * its RESERVE conflicts, the verify finds the key alone holding WERO: acquired. */
static void test_acquire_own_key_holds_elsewhere(void **state)
{
	struct own_machine m;
	struct lun_model l;
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	owned_by(&l, KS);
	l.holder_elsewhere = 1;
	assert_int_equal(own_init(&m, OWN_FLOW_ACQUIRE, KS, 0), 0);
	assert_int_equal(drive(&m, &l, ops, &n), 0);
	assert_int_equal(m.state, OWN_ST_DONE);
	assert_int_equal(m.error, 0);
	assert_int_equal(n, 3);
	assert_int_equal(ops[1], OWN_OP_RESERVE);
	assert_int_equal(ops[2], OWN_OP_VERIFY);
	assert_sole_owner(&l, KS);
}

static void test_handover(void **state)
{
	struct own_machine m;
	struct lun_model l;
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	owned_by(&l, KS);
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	assert_int_equal(own_go(&m), ERR_BUSY); /* not registered yet */
	assert_int_equal(drive(&m, &l, ops, &n), 0);
	assert_int_equal(m.state, OWN_ST_READY);
	assert_int_equal(n, 2);
	assert_int_equal(ops[0], OWN_OP_REGISTER);
	assert_int_equal(ops[1], OWN_OP_VERIFY);
	/* before GO both may write, the source still holds the reservation */
	assert_int_equal(l.nkeys, 2);
	assert_int_equal(l.holder, KS);
	assert_int_equal(own_next(&m).op, OWN_OP_NONE);
	assert_int_equal(own_go(&m), 0);
	assert_int_equal(own_abort(&m), ERR_BUSY); /* past the point of no return */
	{
		struct own_cmd c = own_next(&m);

		assert_int_equal(c.op, OWN_OP_PREEMPT);
		assert_int_equal(c.sa_key, KS);
		assert_int_equal(c.type, OWN_PR_TYPE_WERO);
	}
	assert_int_equal(drive(&m, &l, ops, &n), 0);
	assert_int_equal(m.state, OWN_ST_DONE);
	assert_true(own_finished(&m));
	assert_sole_owner(&l, KD);
}

static void test_handover_source_not_holder(void **state)
{
	struct own_machine m;
	struct lun_model l = {0};
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	l.keys[0] = KS; /* registered, but no reservation: unsafe */
	l.nkeys = 1;
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	drive(&m, &l, ops, &n);
	assert_int_equal(m.state, OWN_ST_ABORTED);
	assert_int_equal(m.error, ERR_MISMATCH);
	assert_non_null(strstr(m.why, "does not hold"));
	assert_int_equal(ops[n - 1], OWN_OP_UNREGISTER);
	assert_int_equal(reg_index(&l, KD), -1); /* undone */
}

static void test_handover_register_fails(void **state)
{
	struct own_machine m;
	struct lun_model l;

	(void)state;
	owned_by(&l, KS);
	l.fail_next = ERR_IO;
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	drive(&m, &l, NULL, NULL);
	assert_int_equal(m.state, OWN_ST_ABORTED); /* nothing to undo */
	assert_int_equal(m.error, ERR_IO);
	assert_non_null(strstr(m.why, "register"));
	assert_sole_owner(&l, KS);
}

static void test_handover_abort_before_go(void **state)
{
	struct own_machine m;
	struct lun_model l;
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	owned_by(&l, KS);
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	drive(&m, &l, ops, &n);
	assert_int_equal(m.state, OWN_ST_READY);
	assert_int_equal(own_abort(&m), 0); /* e.g. the stream failed */
	assert_int_equal(own_next(&m).op, OWN_OP_UNREGISTER);
	drive(&m, &l, ops, &n);
	assert_int_equal(m.state, OWN_ST_ABORTED);
	assert_int_equal(m.error, ERR_CANCELLED);
	assert_sole_owner(&l, KS);
}

static void test_handover_undo_fails(void **state)
{
	struct own_machine m;
	struct lun_model l;

	(void)state;
	owned_by(&l, KS);
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	drive(&m, &l, NULL, NULL);
	own_abort(&m);
	l.fail_next = ERR_TIMEOUT;
	drive(&m, &l, NULL, NULL);
	assert_int_equal(m.state, OWN_ST_FAILED);
}

static void test_handover_preempt_retried_after_go(void **state)
{
	struct own_machine m;
	struct lun_model l;

	(void)state;
	owned_by(&l, KS);
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	drive(&m, &l, NULL, NULL);
	assert_int_equal(own_go(&m), 0);
	l.fail_next = ERR_TIMEOUT;
	assert_int_equal(drive(&m, &l, NULL, NULL), ERR_TIMEOUT);
	assert_int_equal(m.state, OWN_ST_PREEMPT); /* no undo after GO: same step again */
	assert_int_equal(own_next(&m).op, OWN_OP_PREEMPT);
	assert_int_equal(drive(&m, &l, NULL, NULL), 0);
	assert_int_equal(m.state, OWN_ST_DONE);
	assert_sole_owner(&l, KD);
}

static void test_handover_source_reregisters(void **state)
{
	struct own_machine m;
	struct lun_model l;
	struct own_cmd c;
	struct own_view v;

	(void)state;
	owned_by(&l, KS);
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	drive(&m, &l, NULL, NULL);
	own_go(&m);
	c = own_next(&m);
	assert_int_equal(own_result(&m, model_exec(&l, &c, &v), &v), 0); /* preempt */
	l.keys[l.nkeys++] = KS; /* a misbehaving source registers again */
	c = own_next(&m);
	assert_int_equal(c.op, OWN_OP_VERIFY);
	assert_int_equal(own_result(&m, model_exec(&l, &c, &v), &v), ERR_MISMATCH);
	assert_non_null(strstr(m.why, "still registered"));
	assert_int_equal(own_next(&m).op, OWN_OP_PREEMPT); /* preempt it again */
	assert_int_equal(drive(&m, &l, NULL, NULL), 0);
	assert_sole_owner(&l, KD);
}

static void test_fence_holder(void **state)
{
	struct own_machine m;
	struct lun_model l;
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	owned_by(&l, KS);
	assert_int_equal(own_init(&m, OWN_FLOW_FENCE, KX, KS), 0);
	assert_int_equal(drive(&m, &l, ops, &n), 0);
	assert_int_equal(m.state, OWN_ST_DONE);
	assert_int_equal(n, 3);
	assert_int_equal(ops[0], OWN_OP_REGISTER);
	assert_int_equal(ops[1], OWN_OP_PREEMPT);
	assert_int_equal(ops[2], OWN_OP_VERIFY);
	assert_sole_owner(&l, KX);
}

static void test_fence_registrant_without_reservation(void **state)
{
	struct own_machine m;
	struct lun_model l = {0};
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	l.keys[0] = KS;
	l.nkeys = 1;
	assert_int_equal(own_init(&m, OWN_FLOW_FENCE, KX, KS), 0);
	assert_int_equal(drive(&m, &l, ops, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(ops[3], OWN_OP_RESERVE);
	assert_int_equal(ops[4], OWN_OP_VERIFY);
	assert_sole_owner(&l, KX);
}

static void test_fence_victim_already_gone(void **state)
{
	struct own_machine m;
	struct lun_model l;

	(void)state;
	owned_by(&l, KD);
	/* preempting an unregistered key is a conflict: the verify shows it is gone */
	assert_int_equal(own_init(&m, OWN_FLOW_FENCE, KX, KS), 0);
	assert_int_equal(drive(&m, &l, NULL, NULL), 0);
	assert_int_equal(m.state, OWN_ST_DONE);
	assert_sole_owner(&l, KD); /* the owner keeps it, the fencer did not stay registered */
}

/*
 * A dead migration target is evicted, never fenced into a reservation: on a LUN nobody
 * reserved, its key goes and so does the evicter's (the running guest's session, registered
 * or not, keeps writing); on one the source holds, the source keeps it alone.
 */
static void test_evict(void **state)
{
	struct own_machine m;
	struct lun_model l = {0};
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	l.keys[0] = KD;
	l.nkeys = 1;
	assert_int_equal(own_init(&m, OWN_FLOW_EVICT, KX, KD), 0);
	assert_int_equal(drive(&m, &l, ops, &n), 0);
	assert_int_equal(m.state, OWN_ST_DONE);
	assert_int_equal(n, 4);
	assert_int_equal(ops[0], OWN_OP_REGISTER);
	assert_int_equal(ops[1], OWN_OP_PREEMPT);
	assert_int_equal(ops[2], OWN_OP_VERIFY);
	assert_int_equal(ops[3], OWN_OP_UNREGISTER);
	assert_int_equal(l.reserved, 0);
	assert_int_equal(l.nkeys, 0);
	/* the source holds it, the target registered for the hand-over and died */
	owned_by(&l, KS);
	l.keys[l.nkeys++] = KD;
	assert_int_equal(own_init(&m, OWN_FLOW_EVICT, KX, KD), 0);
	assert_int_equal(drive(&m, &l, NULL, NULL), 0);
	assert_sole_owner(&l, KS);
	/* the evicter is the source itself: it keeps its reservation and its key */
	owned_by(&l, KS);
	l.keys[l.nkeys++] = KD;
	assert_int_equal(own_init(&m, OWN_FLOW_EVICT, KS, KD), 0);
	assert_int_equal(drive(&m, &l, NULL, NULL), 0);
	assert_sole_owner(&l, KS);
	/* the victim's key cannot be removed (a model that ignores the preempt): undone */
	memset(&l, 0, sizeof(l));
	l.keys[0] = KD;
	l.nkeys = 1;
	assert_int_equal(own_init(&m, OWN_FLOW_EVICT, KX, KD), 0);
	assert_int_equal(
	    own_result(&m,
	               model_exec(&l,
	                          &(struct own_cmd){.op = OWN_OP_REGISTER, .key = KX, .sa_key = KX},
	                          NULL),
	               NULL),
	    0);
	assert_int_equal(own_result(&m, 0, NULL), 0); /* the preempt "succeeded" */
	{
		struct own_view v;
		struct own_cmd c = {.op = OWN_OP_VERIFY};

		model_exec(&l, &c, &v);
		assert_int_equal(own_result(&m, 0, &v), ERR_MISMATCH);
	}
	assert_int_equal(m.state, OWN_ST_UNDO);
	assert_int_equal(own_init(&m, OWN_FLOW_EVICT, KX, 0), ERR_INVAL);
	assert_string_equal(own_flow_name(OWN_FLOW_EVICT), "evict");
}

static void test_release(void **state)
{
	struct own_machine m;
	struct lun_model l;
	enum own_op ops[8];
	unsigned n = 0;

	(void)state;
	owned_by(&l, KS);
	assert_int_equal(own_init(&m, OWN_FLOW_RELEASE, KS, 0), 0);
	assert_int_equal(drive(&m, &l, ops, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ops[0], OWN_OP_RELEASE);
	assert_int_equal(ops[1], OWN_OP_UNREGISTER);
	assert_int_equal(l.nkeys, 0);
	assert_false(l.reserved);
}

static void test_sole_owner_check(void **state)
{
	struct own_view v = {
	    .nkeys = 2, .keys = {KD, KD}, .reserved = 1, .holder = KD, .type = OWN_PR_TYPE_WERO};
	char why[160];

	(void)state;
	/* several sessions of one host: still one owner */
	assert_int_equal(own_check_sole_owner(&v, KD, why, sizeof(why)), 0);
	v.type = 1;
	assert_int_equal(own_check_sole_owner(&v, KD, why, sizeof(why)), ERR_MISMATCH);
	v.type = OWN_PR_TYPE_WERO;
	v.keys[1] = KS;
	assert_int_equal(own_check_sole_owner(&v, KD, why, sizeof(why)), ERR_MISMATCH);
	assert_non_null(strstr(why, "5555000000000001 is still registered"));
	v.nkeys = 0;
	assert_int_equal(own_check_sole_owner(&v, KD, why, sizeof(why)), ERR_MISMATCH);
}

static void test_host_key(void **state)
{
	uint64_t a, b, c;

	(void)state;
	assert_int_equal(own_host_key("dom0-a", NULL, &a), 0);
	assert_int_equal(own_host_key("dom0-a", "", &b), 0);
	assert_int_equal(own_host_key("dom0-b", NULL, &c), 0);
	assert_true(a == b && a != c && a != 0);
	assert_int_equal(own_host_key("dom0-a", "0x00ff", &a), 0);
	assert_int_equal(a, 0xff);
	assert_int_equal(own_host_key("x", "0", &a), ERR_INVAL);
	assert_int_equal(own_host_key("x", "12345678901234567", &a), ERR_INVAL);
	assert_int_equal(own_host_key("x", "zz", &a), ERR_INVAL);
	assert_int_equal(own_host_key("x", "-1", &a), ERR_INVAL);
	assert_int_equal(own_host_key("", NULL, &a), ERR_INVAL);
}

static int model_exec_cb(void *ctx, const struct own_cmd *c, struct own_view *v)
{
	return model_exec(ctx, c, v);
}

/* own_drive: runs a hand-over to READY, then after GO to DONE; undoes on a failure */
static void test_drive(void **state)
{
	struct lun_model l = {
	    .keys = {KS}, .nkeys = 1, .reserved = 1, .holder = KS, .type = OWN_PR_TYPE_WERO};
	struct own_machine m;

	(void)state;
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	assert_int_equal(own_drive(&m, model_exec_cb, &l), 0);
	assert_int_equal(m.state, OWN_ST_READY);
	assert_int_equal(l.nkeys, 2);
	assert_int_equal(own_go(&m), 0);
	assert_int_equal(own_drive(&m, model_exec_cb, &l), 0);
	assert_int_equal(m.state, OWN_ST_DONE);
	assert_int_equal(l.nkeys, 1);
	assert_int_equal(l.keys[0], KD);
	assert_int_equal(l.holder, KD);

	/* the source does not hold it: VERIFY fails, the registration is undone */
	l = (struct lun_model){
	    .keys = {KX}, .nkeys = 1, .reserved = 1, .holder = KX, .type = OWN_PR_TYPE_WERO};
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	assert_int_equal(own_drive(&m, model_exec_cb, &l), ERR_MISMATCH);
	assert_int_equal(m.state, OWN_ST_ABORTED);
	assert_int_equal(l.nkeys, 1);
	assert_int_equal(l.keys[0], KX);

	/* after GO a failed PREEMPT is returned at once and retried by the next drive */
	l = (struct lun_model){
	    .keys = {KS}, .nkeys = 1, .reserved = 1, .holder = KS, .type = OWN_PR_TYPE_WERO};
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	assert_int_equal(own_drive(&m, model_exec_cb, &l), 0);
	assert_int_equal(own_go(&m), 0);
	l.fail_next = ERR_TIMEOUT;
	assert_int_equal(own_drive(&m, model_exec_cb, &l), ERR_TIMEOUT);
	assert_int_equal(own_drive(&m, model_exec_cb, &l), 0);
	assert_int_equal(m.state, OWN_ST_DONE);
	assert_int_equal(l.holder, KD);
}

/* own_plan_handover: the destination's decision from the PR state it finds */
static void test_plan_handover(void **state)
{
	struct own_view v = {
	    .nkeys = 1, .keys = {KS}, .reserved = 1, .holder = KS, .type = OWN_PR_TYPE_WERO};
	char why[256] = "";

	(void)state;
	assert_int_equal(own_plan_handover(&v, KS, KD, why, sizeof(why)), OWN_PLAN_HANDOVER);
	v.reserved = 0;
	assert_int_equal(own_plan_handover(&v, KS, KD, why, sizeof(why)), OWN_PLAN_REGISTER);
	v = (struct own_view){
	    .nkeys = 1, .keys = {KX}, .reserved = 1, .holder = KX, .type = OWN_PR_TYPE_WERO};
	assert_int_equal(own_plan_handover(&v, KS, KD, why, sizeof(why)), OWN_PLAN_REFUSE);
	assert_non_null(strstr(why, "0x7777000000000003 holds the reservation, not the source's "
	                            "0x5555000000000001"));
	v.holder = KD;
	assert_int_equal(own_plan_handover(&v, KS, KD, why, sizeof(why)), OWN_PLAN_REFUSE);
	assert_non_null(strstr(why, "this host's own key 0xdddd000000000002 already holds"));
	v.holder = KS;
	v.type = 1; /* write exclusive: only the holder may write */
	assert_int_equal(own_plan_handover(&v, KS, KD, why, sizeof(why)), OWN_PLAN_REFUSE);
	assert_non_null(strstr(why, "type 1"));
}

/* own_plan_rejoin: what a host whose session to its LUN was lost does once logged in again */
static void test_plan_rejoin(void **state)
{
	struct own_view v = {
	    .nkeys = 2, .keys = {KD, KS}, .reserved = 1, .holder = KS, .type = OWN_PR_TYPE_WERO};

	(void)state;
	assert_int_equal(own_plan_rejoin(&v, KD), OWN_REJOIN_JOIN); /* a registrant, still */
	v.holder = KD;
	assert_int_equal(own_plan_rejoin(&v, KD), OWN_REJOIN_JOIN);
	v = (struct own_view){
	    .nkeys = 1, .keys = {KX}, .reserved = 1, .holder = KX, .type = OWN_PR_TYPE_WERO};
	assert_int_equal(own_plan_rejoin(&v, KD), OWN_REJOIN_CONFLICT); /* fenced meanwhile */
	/* reserved by the source's key, this host's gone: the source (or whoever holds its key)
	 * preempted it, maybe to fence it: a receiver must not register again (handover_recv) */
	v = (struct own_view){
	    .nkeys = 1, .keys = {KS}, .reserved = 1, .holder = KS, .type = OWN_PR_TYPE_WERO};
	assert_int_equal(own_plan_rejoin(&v, KD), OWN_REJOIN_CONFLICT);
	v = (struct own_view){0}; /* a target restarted without persistence: nothing left */
	assert_int_equal(own_plan_rejoin(&v, KD), OWN_REJOIN_ACQUIRE);
	v.nkeys = 1;
	v.keys[0] = KD; /* only its own key (another session of this host) */
	assert_int_equal(own_plan_rejoin(&v, KD), OWN_REJOIN_ACQUIRE);
	v.keys[0] = KX; /* another host registered since, without reserving: not taken */
	assert_int_equal(own_plan_rejoin(&v, KD), OWN_REJOIN_WAIT);
}

/*
 * The target restarts without persistence between the destination's registration and its
 * preempt after GO: the preempt is refused (nobody is registered), and the fence flow the
 * destination runs instead takes the LUN (register, preempt refused, reserve): it ends owned
 * by the destination, which runs the guest. A third host that reserved it meanwhile keeps it.
 */
static void test_handover_target_lost_state_after_go(void **state)
{
	struct own_machine m, f;
	struct lun_model l;

	(void)state;
	owned_by(&l, KS);
	assert_int_equal(own_init(&m, OWN_FLOW_HANDOVER, KD, KS), 0);
	drive(&m, &l, NULL, NULL);
	assert_int_equal(m.state, OWN_ST_READY);
	memset(&l, 0, sizeof(l)); /* restarted: no registration, no reservation */
	assert_int_equal(own_go(&m), 0);
	assert_int_equal(drive(&m, &l, NULL, NULL), ERR_CONFLICT);
	assert_int_equal(own_init(&f, OWN_FLOW_FENCE, KD, KS), 0);
	assert_int_equal(drive(&f, &l, NULL, NULL), 0);
	assert_int_equal(f.state, OWN_ST_DONE);
	assert_sole_owner(&l, KD);

	owned_by(&l, KX); /* restarted, then reserved by a third host before our fence */
	assert_int_equal(own_init(&f, OWN_FLOW_FENCE, KD, KS), 0);
	drive(&f, &l, NULL, NULL);
	assert_sole_owner(&l, KX);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(own_op_name(OWN_OP_PREEMPT), "preempt");
	assert_string_equal(own_state_name(OWN_ST_READY), "ready");
	assert_string_equal(own_flow_name(OWN_FLOW_FENCE), "fence");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_rejects),
	    cmocka_unit_test(test_acquire),
	    cmocka_unit_test(test_acquire_conflict_undone),
	    cmocka_unit_test(test_acquire_own_key_holds_elsewhere),
	    cmocka_unit_test(test_handover),
	    cmocka_unit_test(test_handover_source_not_holder),
	    cmocka_unit_test(test_handover_register_fails),
	    cmocka_unit_test(test_handover_abort_before_go),
	    cmocka_unit_test(test_handover_undo_fails),
	    cmocka_unit_test(test_handover_preempt_retried_after_go),
	    cmocka_unit_test(test_handover_source_reregisters),
	    cmocka_unit_test(test_fence_holder),
	    cmocka_unit_test(test_fence_registrant_without_reservation),
	    cmocka_unit_test(test_fence_victim_already_gone),
	    cmocka_unit_test(test_evict),
	    cmocka_unit_test(test_release),
	    cmocka_unit_test(test_sole_owner_check),
	    cmocka_unit_test(test_host_key),
	    cmocka_unit_test(test_drive),
	    cmocka_unit_test(test_plan_handover),
	    cmocka_unit_test(test_plan_rejoin),
	    cmocka_unit_test(test_handover_target_lost_state_after_go),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
