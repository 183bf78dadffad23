/*
 * iscsi.c - libiscsi session to one LUN: identity, persistent reservations, block I/O.
 *
 * The only file that includes libiscsi; it translates SCSI status and sense into the
 * project's error codes (see iscsi.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/iscsi.h"

#define UA_RETRIES 4 /* unit attentions (reset, reservations preempted...) to skip */
#define PR_IN_LEN  4096

struct iscsi_lun {
	struct iscsi_context *ctx;
	struct iscsi_url *url;
	int lun;
	int logged_in;
	uint64_t nblocks;
	uint32_t block_size;
	char name[600];
};

const char *iscsi_lun_name(const struct iscsi_lun *lun)
{
	return lun->name;
}

uint64_t iscsi_lun_nblocks(const struct iscsi_lun *lun)
{
	return lun->nblocks;
}

uint32_t iscsi_lun_block_size(const struct iscsi_lun *lun)
{
	return lun->block_size;
}

/* Bounded TCP reachability check: libiscsi's own connect waits for the kernel's SYN retries. */
static int portal_probe(const char *portal, int timeout_s, const char *name)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
	struct addrinfo *ai = NULL;
	char host[128], port[8] = "3260";
	const char *colon, *h = portal;
	struct pollfd pfd = {.fd = -1, .events = POLLOUT};
	int rc, err = 0;
	socklen_t elen = sizeof(err);
	size_t hlen;

	if (*h == '[') {
		const char *end = strchr(h, ']');

		if (!end)
			return ERR_INVAL;
		hlen = (size_t)(end - h - 1);
		h++;
		colon = end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = strrchr(h, ':');
		hlen = colon ? (size_t)(colon - h) : strlen(h);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return ERR_INVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (colon)
		snprintf(port, sizeof(port), "%s", colon + 1);
	if (getaddrinfo(host, port, &hints, &ai) || !ai) {
		log_error("%s: portal address '%s' is not numeric", name, portal);
		rc = ERR_INVAL;
		goto out;
	}
	pfd.fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pfd.fd < 0) {
		rc = err_from_errno(errno);
		goto out;
	}
	if (connect(pfd.fd, ai->ai_addr, ai->ai_addrlen) == 0) {
		rc = 0;
		goto out;
	}
	if (errno != EINPROGRESS) {
		err = errno;
	} else {
		rc = poll(&pfd, 1, timeout_s * 1000);
		if (rc == 0) {
			log_error("%s: portal unreachable: no answer within %d s", name, timeout_s);
			rc = ERR_TIMEOUT;
			goto out;
		}
		if (rc < 0 || getsockopt(pfd.fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
	}
	rc = 0;
	if (err) {
		log_error("%s: portal unreachable: %s", name, strerror(err));
		rc = ERR_IO;
	}
out:
	if (pfd.fd >= 0)
		close(pfd.fd);
	if (ai)
		freeaddrinfo(ai);
	return rc;
}

/*
 * Status of a finished task: 0, ERR_CONFLICT, ... or 1 for a unit attention (retry).
 * what names the command for messages.
 */
static int task_rc(struct iscsi_lun *l, struct scsi_task *task, const char *what)
{
	if (!task) {
		log_error("%s: %s: %s", l->name, what, iscsi_get_error(l->ctx));
		return strstr(iscsi_get_error(l->ctx), "imeout") ? ERR_TIMEOUT : ERR_IO;
	}
	switch (task->status) {
	case SCSI_STATUS_GOOD:
		return 0;
	case SCSI_STATUS_RESERVATION_CONFLICT:
		log_debug("%s: %s: reservation conflict", l->name, what);
		return ERR_CONFLICT;
	case SCSI_STATUS_CHECK_CONDITION:
		if (task->sense.key == SCSI_SENSE_UNIT_ATTENTION) {
			log_debug("%s: %s: unit attention %s", l->name, what,
			          scsi_sense_ascq_str(task->sense.ascq));
			return 1;
		}
		if (task->sense.key == SCSI_SENSE_ILLEGAL_REQUEST &&
		    task->sense.ascq == SCSI_SENSE_ASCQ_LOGICAL_UNIT_NOT_SUPPORTED) {
			log_error("%s: no such LUN on this target", l->name);
			return ERR_NOTFOUND;
		}
		log_error("%s: %s failed: %s/%s", l->name, what,
		          scsi_sense_key_str(task->sense.key),
		          scsi_sense_ascq_str(task->sense.ascq));
		return task->sense.key == SCSI_SENSE_ILLEGAL_REQUEST ? ERR_NOTSUP : ERR_IO;
	case SCSI_STATUS_TIMEOUT:
		log_error("%s: %s timed out", l->name, what);
		return ERR_TIMEOUT;
	case SCSI_STATUS_BUSY:
	case SCSI_STATUS_TASK_SET_FULL:
		log_error("%s: %s: target busy", l->name, what);
		return ERR_BUSY;
	default:
		log_error("%s: %s: status 0x%x: %s", l->name, what, (unsigned)task->status,
		          iscsi_get_error(l->ctx));
		return ERR_IO;
	}
}

/* Issue expr (a *_sync call yielding a task) again while it reports a unit attention. */
#define RUN_TASK(l, task, rc, what, expr)                    \
	do {                                                 \
		for (int attempt_ = 0;; attempt_++) {        \
			(task) = (expr);                     \
			(rc) = task_rc((l), (task), (what)); \
			if ((rc) != 1)                       \
				break;                       \
			scsi_free_scsi_task(task);           \
			(task) = NULL;                       \
			if (attempt_ == UA_RETRIES) {        \
				(rc) = ERR_IO;               \
				break;                       \
			}                                    \
		}                                            \
	} while (0)

static int read_capacity(struct iscsi_lun *l)
{
	struct scsi_task *task = NULL;
	struct scsi_readcapacity16 *rc16;
	int rc;

	RUN_TASK(l, task, rc, "READ CAPACITY(16)", iscsi_readcapacity16_sync(l->ctx, l->lun));
	if (rc)
		goto out;
	rc16 = scsi_datain_unmarshall(task);
	if (!rc16 || rc16->block_length == 0) {
		log_error("%s: cannot decode READ CAPACITY(16) data", l->name);
		rc = ERR_PROTO;
		goto out;
	}
	l->nblocks = rc16->returned_lba + 1;
	l->block_size = rc16->block_length;
out:
	if (task)
		scsi_free_scsi_task(task);
	return rc;
}

static int login_error(struct iscsi_lun *l)
{
	const char *e = iscsi_get_error(l->ctx);

	if (strstr(e, "Target not found") || strstr(e, "(515)") || strstr(e, "not found")) {
		log_error("%s: login failed: no target with this IQN at the portal (%s)", l->name,
		          e);
		return ERR_NOTFOUND;
	}
	if (strstr(e, "LOGICAL_UNIT_NOT_SUPPORTED") || strstr(e, "LOGICAL UNIT NOT SUPPORTED")) {
		log_error("%s: no such LUN on this target (%s)", l->name, e);
		return ERR_NOTFOUND;
	}
	if (strstr(e, "uthentication") || strstr(e, "(513)") || strstr(e, "(514)")) {
		log_error("%s: login refused: %s", l->name, e);
		return ERR_AUTH;
	}
	log_error("%s: login failed: %s", l->name, e);
	return strstr(e, "imeout") || strstr(e, "imed out") ? ERR_TIMEOUT : ERR_IO;
}

int iscsi_lun_open(const char *url, const char *initiator, int timeout_s, struct iscsi_lun **lun_r)
{
	struct iscsi_lun *l;
	int rc;

	*lun_r = NULL;
	if (timeout_s <= 0)
		timeout_s = 10;
	l = calloc(1, sizeof(*l));
	if (!l)
		return ERR_NOMEM;
	snprintf(l->name, sizeof(l->name), "%s", url);
	l->ctx = iscsi_create_context(initiator);
	if (!l->ctx) {
		log_error("%s: cannot create an iSCSI context for initiator '%s'", url, initiator);
		rc = ERR_NOMEM;
		goto out;
	}
	l->url = iscsi_parse_full_url(l->ctx, url);
	if (!l->url) {
		log_error("'%s': not an iSCSI URL iscsi://<host>[:<port>]/<iqn>/<lun>: %s", url,
		          iscsi_get_error(l->ctx));
		rc = ERR_INVAL;
		goto out;
	}
	l->lun = l->url->lun;
	snprintf(l->name, sizeof(l->name), "portal %s iqn %s lun %d", l->url->portal,
	         l->url->target, l->lun);
	rc = portal_probe(l->url->portal, timeout_s, l->name);
	if (rc)
		goto out;
	if (iscsi_set_targetname(l->ctx, l->url->target) ||
	    iscsi_set_session_type(l->ctx, ISCSI_SESSION_NORMAL) ||
	    iscsi_set_header_digest(l->ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C)) {
		log_error("%s: %s", l->name, iscsi_get_error(l->ctx));
		rc = ERR_INVAL;
		goto out;
	}
	iscsi_set_timeout(l->ctx, timeout_s);
	iscsi_set_noautoreconnect(l->ctx, 1);
	iscsi_set_tcp_user_timeout(l->ctx, timeout_s * 1000);
	iscsi_set_tcp_syncnt(l->ctx, 2);
	if (iscsi_full_connect_sync(l->ctx, l->url->portal, l->lun)) {
		rc = login_error(l);
		goto out;
	}
	l->logged_in = 1;
	rc = read_capacity(l);
	if (rc)
		goto out;
	log_debug("%s: logged in as %s, %" PRIu64 " blocks of %u bytes", l->name, initiator,
	          l->nblocks, l->block_size);
	*lun_r = l;
	l = NULL;
out:
	iscsi_lun_close(l);
	return rc;
}

void iscsi_lun_close(struct iscsi_lun *lun)
{
	if (!lun)
		return;
	if (lun->logged_in)
		iscsi_logout_sync(lun->ctx);
	if (lun->url)
		iscsi_destroy_url(lun->url);
	if (lun->ctx)
		iscsi_destroy_context(lun->ctx);
	free(lun);
}

int iscsi_lun_identity(struct iscsi_lun *lun, struct lunid *id_r)
{
	struct scsi_inquiry_device_identification *inq;
	struct scsi_inquiry_device_designator *d;
	struct scsi_task *task = NULL;
	int rc;

	memset(id_r, 0, sizeof(*id_r));
	RUN_TASK(lun, task, rc, "INQUIRY VPD 0x83",
	         iscsi_inquiry_sync(lun->ctx, lun->lun, 1,
	                            SCSI_INQUIRY_PAGECODE_DEVICE_IDENTIFICATION, 1024));
	if (rc)
		goto out;
	inq = scsi_datain_unmarshall(task);
	if (!inq) {
		log_error("%s: cannot decode the device identification page", lun->name);
		rc = ERR_PROTO;
		goto out;
	}
	for (d = inq->designators; d; d = d->next) {
		int lu = d->association == SCSI_ASSOCIATION_LOGICAL_UNIT;
		unsigned *n = lu ? &id_r->ndesig : &id_r->nport;
		struct lunid_desig *out = lu ? &id_r->desig[*n] : &id_r->port[*n];

		if (*n == LUNID_MAX_DESIG || d->designator_length < 0 ||
		    d->designator_length > 255) {
			log_warn("%s: designator ignored (too many or too long)", lun->name);
			continue;
		}
		out->association = (uint8_t)d->association;
		out->type = (uint8_t)d->designator_type;
		out->code_set = (uint8_t)d->code_set;
		out->len = (uint8_t)d->designator_length;
		memcpy(out->data, d->designator, (size_t)d->designator_length);
		(*n)++;
	}
	if (id_r->ndesig == 0) {
		log_error("%s: the device identification page has no logical-unit designator",
		          lun->name);
		rc = ERR_NOTSUP;
		goto out;
	}
	lunid_normalise(id_r);
	rc = read_capacity(lun);
	if (rc)
		goto out;
	id_r->nblocks = lun->nblocks;
	id_r->block_size = lun->block_size;
out:
	if (task)
		scsi_free_scsi_task(task);
	return rc;
}

static int check_io(struct iscsi_lun *lun, size_t len)
{
	if (!lun->block_size || len == 0 || len % lun->block_size || len > 1024 * 1024) {
		log_error("%s: I/O of %zu bytes is not a whole number of %u-byte blocks", lun->name,
		          len, lun->block_size);
		return ERR_INVAL;
	}
	return 0;
}

int iscsi_lun_read(struct iscsi_lun *lun, uint64_t lba, void *buf, size_t len)
{
	struct scsi_task *task = NULL;
	int rc;

	rc = check_io(lun, len);
	if (rc)
		return rc;
	RUN_TASK(lun, task, rc, "READ(16)",
	         iscsi_read16_sync(lun->ctx, lun->lun, lba, (uint32_t)len, (int)lun->block_size, 0,
	                           0, 0, 0, 0));
	if (rc)
		goto out;
	if (!task->datain.data || (size_t)task->datain.size < len) {
		log_error("%s: READ(16) at %" PRIu64 " returned %d bytes, not %zu", lun->name, lba,
		          task->datain.size, len);
		rc = ERR_IO;
		goto out;
	}
	memcpy(buf, task->datain.data, len);
out:
	if (task)
		scsi_free_scsi_task(task);
	return rc;
}

int iscsi_lun_write(struct iscsi_lun *lun, uint64_t lba, const void *buf, size_t len)
{
	struct scsi_task *task = NULL;
	int rc;

	rc = check_io(lun, len);
	if (rc)
		return rc;
	RUN_TASK(lun, task, rc, "WRITE(16)",
	         iscsi_write16_sync(lun->ctx, lun->lun, lba, (unsigned char *)buf, (uint32_t)len,
	                            (int)lun->block_size, 0, 0, 0, 0, 0));
	if (task)
		scsi_free_scsi_task(task);
	return rc;
}

int iscsi_pr_read(struct iscsi_lun *lun, struct own_view *view_r)
{
	struct scsi_persistent_reserve_in_read_keys *keys;
	struct scsi_persistent_reserve_in_read_reservation *res;
	struct scsi_task *task = NULL;
	int rc;

	memset(view_r, 0, sizeof(*view_r));
	RUN_TASK(lun, task, rc, "PERSISTENT RESERVE IN (READ KEYS)",
	         iscsi_persistent_reserve_in_sync(lun->ctx, lun->lun,
	                                          SCSI_PERSISTENT_RESERVE_READ_KEYS, PR_IN_LEN));
	if (rc)
		goto out;
	keys = scsi_datain_unmarshall(task);
	if (!keys) {
		rc = ERR_PROTO;
		goto out;
	}
	for (int i = 0; i < keys->num_keys && view_r->nkeys < OWN_MAX_KEYS; i++)
		view_r->keys[view_r->nkeys++] = keys->keys[i];
	scsi_free_scsi_task(task);
	RUN_TASK(lun, task, rc, "PERSISTENT RESERVE IN (READ RESERVATION)",
	         iscsi_persistent_reserve_in_sync(
	             lun->ctx, lun->lun, SCSI_PERSISTENT_RESERVE_READ_RESERVATION, PR_IN_LEN));
	if (rc)
		goto out;
	res = scsi_datain_unmarshall(task);
	if (!res) {
		rc = ERR_PROTO;
		goto out;
	}
	view_r->reserved = res->reserved != 0;
	if (view_r->reserved) {
		view_r->holder = res->reservation_key;
		view_r->type = res->pr_type;
	}
out:
	if (rc == ERR_PROTO)
		log_error("%s: cannot decode PERSISTENT RESERVE IN data", lun->name);
	if (task)
		scsi_free_scsi_task(task);
	return rc;
}

int iscsi_pr_out(struct iscsi_lun *lun, const struct own_cmd *cmd)
{
	struct scsi_persistent_reserve_out_basic params = {0};
	struct scsi_task *task = NULL;
	char what[96];
	int sa, type = 0, rc;

	switch (cmd->op) {
	case OWN_OP_REGISTER:
	case OWN_OP_UNREGISTER:
		sa = SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY;
		params.service_action_reservation_key = cmd->op == OWN_OP_REGISTER ? cmd->key : 0;
		break;
	case OWN_OP_RESERVE:
		sa = SCSI_PERSISTENT_RESERVE_RESERVE;
		break;
	case OWN_OP_RELEASE:
		sa = SCSI_PERSISTENT_RESERVE_RELEASE;
		break;
	case OWN_OP_PREEMPT:
		sa = SCSI_PERSISTENT_RESERVE_PREEMPT;
		params.service_action_reservation_key = cmd->sa_key;
		break;
	case OWN_OP_CLEAR:
		sa = SCSI_PERSISTENT_RESERVE_CLEAR;
		break;
	default:
		return ERR_INVAL;
	}
	if (sa != SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY)
		params.reservation_key = cmd->key;
	if (sa == SCSI_PERSISTENT_RESERVE_RESERVE || sa == SCSI_PERSISTENT_RESERVE_RELEASE ||
	    sa == SCSI_PERSISTENT_RESERVE_PREEMPT)
		type = cmd->type;
	snprintf(what, sizeof(what), "PERSISTENT RESERVE OUT (%s key 0x%016" PRIx64 ")",
	         own_op_name(cmd->op), cmd->key);
	RUN_TASK(lun, task, rc, what,
	         iscsi_persistent_reserve_out_sync(
	             lun->ctx, lun->lun, sa, SCSI_PERSISTENT_RESERVE_SCOPE_LU, type, &params));
	if (task)
		scsi_free_scsi_task(task);
	return rc;
}

int iscsi_pr_execute(struct iscsi_lun *lun, const struct own_cmd *cmd, struct own_view *view_r)
{
	if (cmd->op == OWN_OP_VERIFY)
		return iscsi_pr_read(lun, view_r);
	return iscsi_pr_out(lun, cmd);
}
