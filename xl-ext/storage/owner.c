/*
 * owner.c - the ownership hand-over state machine (see owner.h for the SPC-4 reasoning).
 */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/owner.h"

const char *own_op_name(enum own_op op)
{
	switch (op) {
	case OWN_OP_NONE:
		return "none";
	case OWN_OP_REGISTER:
		return "register";
	case OWN_OP_UNREGISTER:
		return "unregister";
	case OWN_OP_RESERVE:
		return "reserve";
	case OWN_OP_RELEASE:
		return "release";
	case OWN_OP_PREEMPT:
		return "preempt";
	case OWN_OP_CLEAR:
		return "clear";
	case OWN_OP_VERIFY:
		return "verify";
	}
	return "?";
}

const char *own_state_name(enum own_state st)
{
	static const char *const names[] = {
	    [OWN_ST_REGISTER] = "register", [OWN_ST_RESERVE] = "reserve",
	    [OWN_ST_VERIFY] = "verify",     [OWN_ST_READY] = "ready",
	    [OWN_ST_PREEMPT] = "preempt",   [OWN_ST_VERIFY_FINAL] = "verify-final",
	    [OWN_ST_RELEASE] = "release",   [OWN_ST_UNREGISTER] = "unregister",
	    [OWN_ST_UNDO] = "undo",         [OWN_ST_DONE] = "done",
	    [OWN_ST_ABORTED] = "aborted",   [OWN_ST_FAILED] = "failed",
	};

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

const char *own_flow_name(enum own_flow flow)
{
	switch (flow) {
	case OWN_FLOW_ACQUIRE:
		return "acquire";
	case OWN_FLOW_HANDOVER:
		return "handover";
	case OWN_FLOW_FENCE:
		return "fence";
	case OWN_FLOW_EVICT:
		return "evict";
	case OWN_FLOW_RELEASE:
		return "release";
	}
	return "?";
}

int own_init(struct own_machine *m, enum own_flow flow, uint64_t self, uint64_t peer)
{
	int needs_peer =
	    flow == OWN_FLOW_HANDOVER || flow == OWN_FLOW_FENCE || flow == OWN_FLOW_EVICT;

	memset(m, 0, sizeof(*m));
	if (!self || (needs_peer && !peer) || (needs_peer && peer == self))
		return ERR_INVAL;
	m->flow = flow;
	m->self = self;
	m->peer = needs_peer ? peer : 0;
	m->state = flow == OWN_FLOW_RELEASE ? OWN_ST_RELEASE : OWN_ST_REGISTER;
	return 0;
}

struct own_cmd own_next(const struct own_machine *m)
{
	struct own_cmd c = {.op = OWN_OP_NONE, .key = m->self, .type = OWN_PR_TYPE_WERO};

	switch (m->state) {
	case OWN_ST_REGISTER:
		c.op = OWN_OP_REGISTER;
		c.sa_key = m->self;
		break;
	case OWN_ST_RESERVE:
		c.op = OWN_OP_RESERVE;
		break;
	case OWN_ST_VERIFY:
	case OWN_ST_VERIFY_FINAL:
		c.op = OWN_OP_VERIFY;
		break;
	case OWN_ST_PREEMPT:
		c.op = OWN_OP_PREEMPT;
		c.sa_key = m->peer;
		break;
	case OWN_ST_RELEASE:
		c.op = OWN_OP_RELEASE;
		break;
	case OWN_ST_UNREGISTER:
	case OWN_ST_UNDO:
		c.op = OWN_OP_UNREGISTER;
		c.sa_key = 0;
		break;
	case OWN_ST_READY:
	case OWN_ST_DONE:
	case OWN_ST_ABORTED:
	case OWN_ST_FAILED:
		break;
	}
	return c;
}

int own_finished(const struct own_machine *m)
{
	return m->state == OWN_ST_DONE || m->state == OWN_ST_ABORTED || m->state == OWN_ST_FAILED;
}

int own_view_has_key(const struct own_view *v, uint64_t key)
{
	for (unsigned i = 0; i < v->nkeys && i < OWN_MAX_KEYS; i++)
		if (v->keys[i] == key)
			return 1;
	return 0;
}

int own_check_sole_owner(const struct own_view *v, uint64_t key, char *why, unsigned whylen)
{
	if (!own_view_has_key(v, key)) {
		snprintf(why, whylen, "key 0x%016" PRIx64 " is not registered", key);
		return ERR_MISMATCH;
	}
	for (unsigned i = 0; i < v->nkeys && i < OWN_MAX_KEYS; i++)
		if (v->keys[i] != key) {
			snprintf(why, whylen, "key 0x%016" PRIx64 " is still registered",
			         v->keys[i]);
			return ERR_MISMATCH;
		}
	if (!v->reserved) {
		snprintf(why, whylen, "no reservation is held");
		return ERR_MISMATCH;
	}
	if (v->holder != key || v->type != OWN_PR_TYPE_WERO) {
		snprintf(why, whylen,
		         "reservation held by 0x%016" PRIx64 " type %d, not by 0x%016" PRIx64
		         " type %d (write exclusive - registrants only)",
		         v->holder, v->type, key, OWN_PR_TYPE_WERO);
		return ERR_MISMATCH;
	}
	return 0;
}

/* The handover's pre-GO check: the source holds WERO, both keys are registered. */
static int check_handover_ready(struct own_machine *m, const struct own_view *v)
{
	if (!v->reserved || v->holder != m->peer || v->type != OWN_PR_TYPE_WERO) {
		snprintf(m->why, sizeof(m->why),
		         "the source (key 0x%016" PRIx64 ") does not hold a write exclusive - "
		         "registrants only reservation (%s 0x%016" PRIx64 " type %d)",
		         m->peer, v->reserved ? "holder" : "no reservation; holder", v->holder,
		         v->type);
		return ERR_MISMATCH;
	}
	if (!own_view_has_key(v, m->self)) {
		snprintf(m->why, sizeof(m->why),
		         "the destination's registration (key 0x%016" PRIx64 ") is not listed",
		         m->self);
		return ERR_MISMATCH;
	}
	return 0;
}

/* A failure: undo if something was done and GO has not passed; else stop. */
static int fail(struct own_machine *m, int rc, int registered)
{
	if (!m->error)
		m->error = rc;
	if (m->go) {
		/* past the point of no return: keep the step for a retry */
		return rc;
	}
	m->state = registered ? OWN_ST_UNDO : OWN_ST_ABORTED;
	return rc;
}

/* A release-flow step failed: nothing to undo, the flow stops there (why already set). */
static int give_up(struct own_machine *m, int rc)
{
	m->error = rc;
	m->state = OWN_ST_FAILED;
	return rc;
}

static int verify_result(struct own_machine *m, const struct own_view *v)
{
	int rc;

	switch (m->flow) {
	case OWN_FLOW_ACQUIRE:
		if (m->error == ERR_CONFLICT) {
			/* RESERVE conflicted: fine only if our key alone holds it already */
			if (own_check_sole_owner(v, m->self, NULL, 0))
				return fail(m, ERR_CONFLICT, 1); /* keeps the reserve's why */
			m->error = 0;
			m->why[0] = 0;
			m->state = OWN_ST_DONE;
			return 0;
		}
		rc = own_check_sole_owner(v, m->self, m->why, sizeof(m->why));
		if (rc)
			return fail(m, rc, 1);
		m->state = OWN_ST_DONE;
		return 0;
	case OWN_FLOW_HANDOVER:
		if (m->state == OWN_ST_VERIFY) {
			rc = check_handover_ready(m, v);
			if (rc)
				return fail(m, rc, 1);
			m->state = OWN_ST_READY;
			return 0;
		}
		rc = own_check_sole_owner(v, m->self, m->why, sizeof(m->why));
		if (rc) {
			m->state =
			    OWN_ST_PREEMPT; /* e.g. the source re-registered: preempt again */
			if (!m->error)
				m->error = rc;
			return rc;
		}
		m->state = OWN_ST_DONE;
		return 0;
	case OWN_FLOW_FENCE:
		if (m->state == OWN_ST_VERIFY) {
			if (own_view_has_key(v, m->peer)) {
				snprintf(m->why, sizeof(m->why),
				         "key 0x%016" PRIx64
				         " is still registered after the preempt",
				         m->peer);
				return fail(m, ERR_MISMATCH, 1);
			}
			if (!v->reserved) {
				m->state = OWN_ST_RESERVE; /* the victim held none: take one */
				return 0;
			}
			/* a third host owns the LUN: the fencer must not stay a writer */
			m->state = v->holder == m->self ? OWN_ST_DONE : OWN_ST_UNREGISTER;
			return 0;
		}
		rc = own_check_sole_owner(v, m->self, m->why, sizeof(m->why));
		if (rc)
			return fail(m, rc, 1);
		m->state = OWN_ST_DONE;
		return 0;
	case OWN_FLOW_EVICT:
		if (own_view_has_key(v, m->peer)) {
			snprintf(m->why, sizeof(m->why),
			         "key 0x%016" PRIx64 " is still registered after the preempt",
			         m->peer);
			return fail(m, ERR_MISMATCH, 1);
		}
		/* never a reservation of our own: our key stays only where it held one before */
		m->state = v->reserved && v->holder == m->self ? OWN_ST_DONE : OWN_ST_UNREGISTER;
		return 0;
	case OWN_FLOW_RELEASE:
		break;
	}
	return ERR_INTERNAL;
}

int own_result(struct own_machine *m, int rc, const struct own_view *view)
{
	enum own_op op = own_next(m).op;

	if (op == OWN_OP_NONE)
		return ERR_BUSY;
	if (op == OWN_OP_VERIFY && !rc && !view)
		return ERR_INVAL;
	switch (m->state) {
	case OWN_ST_REGISTER:
		if (rc) {
			snprintf(m->why, sizeof(m->why), "register key 0x%016" PRIx64 ": %s",
			         m->self, err_str(rc));
			return fail(m, rc, 0);
		}
		if (m->flow == OWN_FLOW_ACQUIRE)
			m->state = OWN_ST_RESERVE;
		else if (m->flow == OWN_FLOW_HANDOVER)
			m->state = OWN_ST_VERIFY;
		else
			m->state = OWN_ST_PREEMPT;
		return 0;
	case OWN_ST_RESERVE:
		if (rc) {
			snprintf(m->why, sizeof(m->why), "reserve with key 0x%016" PRIx64 ": %s%s",
			         m->self, err_str(rc),
			         rc == ERR_CONFLICT ? " (another host holds the reservation)" : "");
			if (m->flow == OWN_FLOW_ACQUIRE && rc == ERR_CONFLICT) {
				/* Another session of this very key may hold it (haagent's fencer or
				 * a migration receiver of this host): under WERO our registration
				 * then suffices. The verify decides; a foreign holder fails it. */
				m->error = rc;
				m->state = OWN_ST_VERIFY;
				return 0;
			}
			return fail(m, rc, 1);
		}
		m->state = m->flow == OWN_FLOW_FENCE ? OWN_ST_VERIFY_FINAL : OWN_ST_VERIFY;
		return 0;
	case OWN_ST_PREEMPT:
		if (rc && (m->flow == OWN_FLOW_FENCE || m->flow == OWN_FLOW_EVICT) &&
		    rc == ERR_CONFLICT) {
			/* the victim's key may be gone already: let the verify decide */
			m->state = OWN_ST_VERIFY;
			return 0;
		}
		if (rc) {
			snprintf(m->why, sizeof(m->why), "preempt key 0x%016" PRIx64 ": %s",
			         m->peer, err_str(rc));
			return fail(m, rc, 1);
		}
		m->state = m->flow == OWN_FLOW_HANDOVER ? OWN_ST_VERIFY_FINAL : OWN_ST_VERIFY;
		return 0;
	case OWN_ST_VERIFY:
	case OWN_ST_VERIFY_FINAL:
		if (rc) {
			snprintf(m->why, sizeof(m->why), "reading the reservation state: %s",
			         err_str(rc));
			return fail(m, rc, 1);
		}
		return verify_result(m, view);
	case OWN_ST_RELEASE:
		if (rc) {
			snprintf(m->why, sizeof(m->why), "release with key 0x%016" PRIx64 ": %s",
			         m->self, err_str(rc));
			return give_up(m, rc);
		}
		m->state = OWN_ST_UNREGISTER;
		return 0;
	case OWN_ST_UNREGISTER:
		if (rc) {
			snprintf(m->why, sizeof(m->why), "unregister key 0x%016" PRIx64 ": %s",
			         m->self, err_str(rc));
			return give_up(m, rc);
		}
		m->state = OWN_ST_DONE;
		return 0;
	case OWN_ST_UNDO:
		if (rc) {
			m->state = OWN_ST_FAILED;
			return rc;
		}
		m->state = OWN_ST_ABORTED;
		return 0;
	case OWN_ST_READY:
	case OWN_ST_DONE:
	case OWN_ST_ABORTED:
	case OWN_ST_FAILED:
		break;
	}
	return ERR_BUSY;
}

int own_go(struct own_machine *m)
{
	if (m->flow != OWN_FLOW_HANDOVER || m->state != OWN_ST_READY)
		return ERR_BUSY;
	m->go = 1;
	m->state = OWN_ST_PREEMPT;
	return 0;
}

int own_abort(struct own_machine *m)
{
	if (m->go)
		return ERR_BUSY;
	if (own_finished(m))
		return 0;
	if (!m->error) {
		m->error = ERR_CANCELLED;
		snprintf(m->why, sizeof(m->why), "abandoned before GO");
	}
	if (m->state == OWN_ST_REGISTER || m->state == OWN_ST_RELEASE)
		m->state = OWN_ST_ABORTED;
	else if (m->state != OWN_ST_UNDO)
		m->state = m->flow == OWN_FLOW_RELEASE ? OWN_ST_FAILED : OWN_ST_UNDO;
	return 0;
}

enum own_plan own_plan_handover(const struct own_view *view, uint64_t src, uint64_t dst, char *why,
                                unsigned whylen)
{
	if (!view->reserved)
		return OWN_PLAN_REGISTER;
	if (view->holder == src && view->type == OWN_PR_TYPE_WERO)
		return OWN_PLAN_HANDOVER;
	if (view->holder == src)
		snprintf(why, whylen,
		         "the source's key 0x%016" PRIx64 " holds a reservation of type "
		         "%d, not write exclusive - registrants only (%d)",
		         src, view->type, OWN_PR_TYPE_WERO);
	else if (view->holder == dst)
		snprintf(why, whylen,
		         "this host's own key 0x%016" PRIx64 " already holds the "
		         "reservation, not the source's 0x%016" PRIx64
		         ": the source writes without "
		         "owning the LUN; clear the reservation first (xl-ext pr URL clear)",
		         dst, src);
	else
		snprintf(why, whylen,
		         "key 0x%016" PRIx64 " holds the reservation, not the source's "
		         "0x%016" PRIx64
		         ": another host owns the LUN (fenced source?); find it with "
		         "'xl-ext pr URL show'",
		         view->holder, src);
	return OWN_PLAN_REFUSE;
}

enum own_rejoin own_plan_rejoin(const struct own_view *view, uint64_t self)
{
	if (view->reserved)
		return own_view_has_key(view, self) ? OWN_REJOIN_JOIN : OWN_REJOIN_CONFLICT;
	for (unsigned i = 0; i < view->nkeys && i < OWN_MAX_KEYS; i++)
		if (view->keys[i] != self)
			return OWN_REJOIN_WAIT;
	return OWN_REJOIN_ACQUIRE;
}

int own_drive(struct own_machine *m, own_exec_fn exec, void *ctx)
{
	int first_rc = 0;

	for (unsigned steps = 0; steps < 16; steps++) {
		struct own_cmd cmd = own_next(m);
		struct own_view view;
		int rc;

		if (cmd.op == OWN_OP_NONE)
			break;
		memset(&view, 0, sizeof(view));
		rc = exec(ctx, &cmd, &view);
		rc = own_result(m, rc, &view);
		if (rc && !first_rc)
			first_rc = rc;
		if (rc && m->go)
			return rc;
	}
	if (m->state == OWN_ST_READY || m->state == OWN_ST_DONE)
		return 0;
	if (m->error)
		return m->error;
	return first_rc ? first_rc : ERR_INTERNAL;
}

int own_host_key(const char *hostname, const char *env_value, uint64_t *key_r)
{
	static const char salt[] = "xl-ext persistent reservation key:";
	char buf[sizeof(salt) + 256];
	uint64_t key;

	if (env_value && *env_value) {
		char *end;
		const char *s = env_value;

		if (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2))
			s += 2;
		if (!*s || strlen(s) > 16 || !isxdigit((unsigned char)*s))
			return ERR_INVAL;
		key = strtoull(s, &end, 16);
		if (*end || key == 0)
			return ERR_INVAL;
		*key_r = key;
		return 0;
	}
	if (!hostname || !*hostname || strlen(hostname) > 255)
		return ERR_INVAL;
	snprintf(buf, sizeof(buf), "%s%s", salt, hostname);
	key = XXH3_64bits(buf, strlen(buf));
	*key_r = key ? key : 1;
	return 0;
}
