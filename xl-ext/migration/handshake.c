/*
 * handshake.c - the sender and receiver state machines of xl's migration protocol.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/fault.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/migration/handshake.h"
#include "xl-ext/precopy/postcopy.h"
#include "xl-ext/migration/xlproto.h"
#include "xl-ext/precopy/precopy.h"

#define MIG_BANNER_TIMEOUT_MS 60000
#define MIG_GO_TIMEOUT_MS     PC_RECV_STALL_TIMEOUT_MS /* the same silent sender */

/*
 * Read exactly len bytes and compare them with msg (xl's migrate_read_fixedmessage), waiting
 * at most timeout_ms for them to start arriving (0: no limit).
 */
static int read_fixed(int fd, const void *msg, size_t len, const char *what, const char *peer,
                      int timeout_ms)
{
	int64_t deadline = timeout_ms > 0 ? loop_now_ms() + timeout_ms : 0;
	char buf[128];
	size_t got = 0;

	/* Compare as bytes arrive, so a peer that says something else fails at once. */
	while (got < len) {
		ssize_t n;

		if (deadline) {
			int64_t left = deadline - loop_now_ms();

			if (left <= 0 || fd_wait_readable(fd, (int)left) == ERR_TIMEOUT) {
				log_error("no %s from %s within %d s", what, peer,
				          timeout_ms / 1000);
				return ERR_TIMEOUT;
			}
		}
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("migration stream from %s ended while waiting for the %s", peer,
			          what);
			return ERR_IO;
		}
		if (memcmp(buf + got, (const char *)msg + got, (size_t)n)) {
			log_error(
			    "migration stream from %s contained unexpected data instead of the "
			    "%s",
			    peer, what);
			return ERR_PROTO;
		}
		got += (size_t)n;
	}
	return 0;
}

/* One extension message (xlproto.h): u32 length + JSON. */
static int ext_write(int fd, const char *json)
{
	uint32_t len = (uint32_t)strlen(json);
	int rc = fd_write_exact(fd, &len, sizeof(len));

	return rc ? rc : fd_write_exact(fd, json, len);
}

/* Read one extension message within timeout_ms (0: no limit). Caller frees *json_r. */
static int ext_read(int fd, int timeout_ms, char **json_r)
{
	uint32_t len;
	char *buf;
	int rc;

	*json_r = NULL;
	rc = timeout_ms > 0 ? fd_read_exact_timeout(fd, &len, sizeof(len), timeout_ms)
	                    : fd_read_exact(fd, &len, sizeof(len));
	if (rc)
		return rc;
	if (len == 0 || len > XLP_EXT_MAX)
		return ERR_PROTO;
	buf = malloc(len + 1);
	if (!buf)
		return ERR_NOMEM;
	rc = timeout_ms > 0 ? fd_read_exact_timeout(fd, buf, len, timeout_ms)
	                    : fd_read_exact(fd, buf, len);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[len] = '\0';
	*json_r = buf;
	return 0;
}

/*
 * Sender: the extension exchange before the stream. Nothing is suspended yet: a refusal
 * leaves the domain as it was.
 */
static int send_ext_request(const struct mig_send_args *a)
{
	char *answer = NULL;
	int rc;

	rc = ext_write(a->send_fd, a->ext_request ? a->ext_request : "{}");
	if (!rc)
		rc = ext_read(a->recv_fd, a->reply_timeout_ms, &answer);
	if (rc == ERR_IO)
		log_error("migration of %s failed: the receiver on %s closed the stream before "
		          "answering xl-ext's storage hand-over request (its messages, if any, are "
		          "above); the domain was not touched",
		          a->name, a->peer);
	else if (rc)
		log_error("migration of %s: %s did not answer xl-ext's storage hand-over request "
		          "(%s); the domain was not touched",
		          a->name, a->peer, err_str(rc));
	if (rc)
		return rc;
	rc = a->ext->ready(a->ext_ctx, answer);
	free(answer);
	if (rc)
		log_error("migration of %s to %s refused before anything was suspended (above); "
		          "the domain was not touched and keeps running here",
		          a->name, a->peer);
	return rc;
}

int mig_config_name(const char *json, char *name, size_t len)
{
	json_object *o = json_tokener_parse(json), *v = NULL, *ci;
	int rc = ERR_INVAL;

	if (!o)
		return ERR_INVAL;
	if (json_object_object_get_ex(o, "c_info", &ci))
		json_object_object_get_ex(ci, "name", &v);
	else
		json_object_object_get_ex(o, "name", &v);
	if (v && json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);

		if (s[0] && strlen(s) < len && !strchr(s, '/')) {
			snprintf(name, len, "%s", s);
			rc = 0;
		}
	}
	json_object_put(o);
	return rc;
}

static void resume_source(const struct mig_send_args *a)
{
	int rc = a->ops->resume(a->hv, a->domid);

	if (rc)
		log_error("migration sender: could not resume domain %s here: %s", a->name,
		          err_str(rc));
	else
		log_warn("migration sender: domain %s resumed here and keeps running", a->name);
}

int mig_send(const struct mig_send_args *a, struct mig_report *rep, enum mig_result *result_r)
{
	char away[HV_NAME_MAX + 16];
	uint8_t *hdr = NULL, status;
	size_t hdr_len;
	bool renamed = false;
	int rc;

	*result_r = MIG_REFUSED; /* until the stream starts, nothing is suspended */
	memset(rep, 0, sizeof(*rep));
	rc = read_fixed(a->recv_fd, xlp_banner, xlp_banner_len(), "receiver banner", a->peer,
	                MIG_BANNER_TIMEOUT_MS);
	if (rc) {
		log_error("migration of %s to %s failed before it started: the receiver did not "
		          "answer (is xl-ext or xl installed there?); the domain was not touched",
		          a->name, a->peer);
		return rc;
	}
	fault_point("send:banner");
	rc = xlp_encode_header_flags(a->config_json, a->ext ? XLP_OPT_XLEXT : 0, &hdr, &hdr_len);
	if (!rc)
		rc = fd_write_exact(a->send_fd, hdr, hdr_len);
	free(hdr);
	if (rc) {
		log_error("migration of %s: cannot send the save header to %s", a->name, a->peer);
		return rc;
	}
	fault_point("send:header");
	if (a->ext) {
		rc = send_ext_request(a);
		if (rc)
			return rc;
		fault_point("send:ext");
	}

	*result_r = MIG_FAILED_RESUMED;
	rc = a->ops->send_stream(a->hv, a->domid, a->send_fd, &a->params, rep);
	if (rc) {
		if (rep->stalled) {
			log_error(
			    "migration of %s failed: %s took none of the stream for %d s; the "
			    "domain is resumed here",
			    a->name, a->peer, a->params.stall_timeout_ms / 1000);
			goto failed_resume;
		}
		if (rc == ERR_TIMEOUT) {
			log_error("migration of %s failed: the domain did not suspend in time; it "
			          "is left as it is (not resumed), as xl does",
			          a->name);
			*result_r = MIG_FAILED_NO_RESUME;
			return rc;
		}
		if (rc == ERR_NOTCONV)
			log_error("migration of %s aborted: %s; the domain keeps running here",
			          a->name, rep->reason ? rep->reason : "pre-copy did not converge");
		else if (rc == ERR_CANCELLED)
			log_error("migration of %s cancelled; the domain keeps running here",
			          a->name);
		else if (rc == ERR_IO)
			log_error(
			    "migration of %s failed: the receiver on %s closed the stream (its "
			    "messages, if any, are above)",
			    a->name, a->peer);
		else
			log_error("migration of %s to %s failed while sending memory: %s", a->name,
			          a->peer, err_str(rc));
		goto failed_resume;
	}
	fault_point("send:stream-end");
	rc = read_fixed(a->recv_fd, xlp_receiver_ready, xlp_receiver_ready_len(), "ready message",
	                a->peer, a->reply_timeout_ms);
	if (rc) {
		log_error("migration of %s: %s did not acknowledge the transfer", a->name, a->peer);
		goto failed_resume;
	}
	rep->t_ready_us = loop_now_us();
	fault_point("send:ready");
	if (pc_postcopy_failed(rep)) { /* the guest never ran there: it goes on here */
		log_error(
		    "migration of %s: its post-copy channel to %s failed before the switch-over",
		    a->name, a->peer);
		rc = ERR_IO;
		goto failed_resume;
	}
	/* about to give the target permission to run it: rename it away here first */
	snprintf(away, sizeof(away), "%s--migratedaway", a->name);
	rc = a->ops->rename(a->hv, a->domid, a->name, away);
	if (rc) {
		log_error("migration of %s: cannot rename it to %s", a->name, away);
		goto failed_resume;
	}
	renamed = true;
	fault_point("send:renamed");
	/*
	 * Point of no return, once the whole message is on its way. A write that fails has put
	 * none of its bytes on the way, and a receiver starts the guest only on the whole message
	 * (read_fixed): the receiver cannot run it, so it is resumed here (stock xl gives up
	 * instead and leaves both copies paused).
	 */
	rc = fd_write_exact(a->send_fd, xlp_permission_to_go, xlp_permission_to_go_len());
	if (rc) {
		log_error("migration of %s: cannot send the GO message to %s (%s): the receiver is "
		          "gone and cannot have started it",
		          a->name, a->peer, err_str(rc));
		goto failed_resume;
	}
	rep->t_go_us = loop_now_us();
	fault_point("send:go");
	rc = read_fixed(a->recv_fd, xlp_report, xlp_report_len(), "success/failure report", a->peer,
	                a->reply_timeout_ms);
	if (rc)
		goto failed_badly;
	rc = fd_read_exact(a->recv_fd, &status, 1);
	if (rc)
		goto failed_badly;
	rep->t_end_us = loop_now_us();
	fault_point("send:report");
	if (status) {
		log_error("migration of %s: target %s reports startup failure (status code %d)",
		          a->name, a->peer, status);
		rc = read_fixed(a->recv_fd, xlp_permission_to_go, xlp_permission_to_go_len(),
		                "permission for sender to resume", a->peer, a->reply_timeout_ms);
		if (rc)
			goto failed_badly;
		pc_postcopy_cancel(rep); /* it never ran there */
		a->ops->rename(a->hv, a->domid, away, a->name);
		resume_source(a);
		*result_r = MIG_FAILED_TARGET;
		return ERR_REMOTE;
	}
	if (a->ext) {
		char *final = NULL;

		rc = ext_read(a->recv_fd, a->reply_timeout_ms, &final);
		if (rc)
			log_warn(
			    "migration of %s: %s started it but did not report the reservation "
			    "hand-over (%s); check the LUNs' owner with 'xl-ext pr URL show'",
			    a->name, a->peer, err_str(rc));
		a->ext->final(a->ext_ctx, final);
		free(final);
		fault_point("send:final");
	}
	if (rep->pc) {
		/* post-copy: the guest runs there, and pages it lacks are only here */
		rc = pc_postcopy_finish(rep);
		if (rc) {
			log_error(
			    "migration of %s: post-copy to %s failed after the guest started "
			    "there: %s pauses it for good, and its copy here (paused as %s) is "
			    "older than its disks and must never be resumed. Restart it from "
			    "its disks: destroy both copies, then create it again.",
			    a->name, a->peer, a->peer, away);
			*result_r = MIG_FAILED_POSTCOPY;
			return rc;
		}
	}
	rc = a->ops->destroy(a->hv, a->domid);
	if (rc)
		log_warn("migration of %s succeeded but its old copy (%s) could not be destroyed "
		         "here: %s",
		         a->name, away, err_str(rc));
	*result_r = MIG_OK;
	return 0;

failed_resume:
	pc_postcopy_cancel(rep); /* the guest never ran there */
	if (renamed)
		a->ops->rename(a->hv, a->domid, away, a->name);
	resume_source(a);
	*result_r = MIG_FAILED_RESUMED;
	return rc ? rc : ERR_IO;

failed_badly:
	if (rep->pc && pc_postcopy_finish(rep) != 0) {
		log_error("migration of %s to %s failed after GO, and so did its post-copy: %s may "
		          "have run it, and its copy here (paused as %s) must never be resumed. "
		          "Restart it from its disks: destroy both copies, then create it again.",
		          a->name, a->peer, a->peer, away);
		*result_r = MIG_FAILED_POSTCOPY;
		return rc ? rc : ERR_IO;
	}
	if (rep->postcopy.used)
		log_warn("migration of %s: %s took every page post-copy sends (it runs the guest, "
		         "or has it paused)",
		         a->name, a->peer);
	log_error("migration of %s to %s failed during the final handshake: domain state is now "
	          "undefined. Check BOTH hosts for running instances (here it is renamed %s) and "
	          "resume at most one; two instances would corrupt its disks.",
	          a->name, a->peer, away);
	*result_r = MIG_FAILED_UNDEFINED;
	return rc ? rc : ERR_IO;
}

/* Read the save-file header and configuration from the sender. Caller frees *json_r. */
static int receive_header(int fd, char **json_r, uint32_t *optional_r)
{
	uint8_t hdr[XLP_HEADER_LEN], *opt = NULL;
	uint32_t mandatory, optlen;
	const char *json;
	int rc;

	rc = fd_read_exact(fd, hdr, sizeof(hdr));
	if (rc) {
		log_error(
		    "migration receiver: the sender closed the stream before the save header");
		return ERR_IO;
	}
	rc = xlp_decode_header(hdr, &mandatory, &optlen);
	*optional_r = rc ? 0 : xlp_header_optional(hdr);
	if (rc) {
		log_error(
		    "migration receiver: not an xl migration stream (bad magic, byte order or "
		    "unknown mandatory flags)");
		return rc;
	}
	opt = malloc(optlen ? optlen : 1);
	if (!opt)
		return ERR_NOMEM;
	rc = fd_read_exact(fd, opt, optlen);
	if (!rc)
		rc = xlp_decode_config(opt, optlen, mandatory, &json);
	if (!rc) {
		*json_r = strdup(json);
		if (!*json_r)
			rc = ERR_NOMEM;
	} else {
		log_error("migration receiver: the domain configuration in the save header is "
		          "missing or malformed");
	}
	free(opt);
	return rc;
}

int mig_receive(const struct mig_receive_args *a, struct mig_report *rep, uint32_t *domid_r)
{
	char name[HV_NAME_MAX], incoming[HV_NAME_MAX + 16], *json = NULL;
	struct mig_params params = {
	    .debug = a->debug, .send_back_fd = a->send_fd, .extra = a->streams};
	uint32_t domid = HV_INVALID_DOMID, other, optional = 0;
	bool ext = false;
	uint8_t status;
	int rc, rc2;

	memset(rep, 0, sizeof(*rep));
	rc = fd_write_exact(a->send_fd, xlp_banner, xlp_banner_len());
	if (rc)
		return rc;
	fault_point("recv:banner");
	rc = receive_header(a->recv_fd, &json, &optional);
	if (rc)
		goto out;
	fault_point("recv:header");
	rc = mig_config_name(json, name, sizeof(name));
	if (rc) {
		log_error("migration receiver: the configuration has no usable domain name");
		goto out;
	}
	if (a->ops->lookup(a->hv, name, &other) == 0) {
		log_error("migration receiver: a domain named '%s' already runs on this host "
		          "(domid %u); refusing to receive another",
		          name, other);
		rc = ERR_EXISTS;
		goto out;
	}
	if ((optional & XLP_OPT_XLEXT) && a->ext) {
		char *request = NULL, *answer = NULL;

		rc = ext_read(a->recv_fd, MIG_BANNER_TIMEOUT_MS, &request);
		if (rc) {
			log_error(
			    "migration receiver: no storage hand-over request from the sender "
			    "of %s (%s)",
			    name, err_str(rc));
			goto out;
		}
		rc = a->ext->prepare(a->ext_ctx, request, &answer);
		free(request);
		rc2 = ext_write(a->send_fd, answer ? answer : "{\"ok\":false}");
		free(answer);
		if (!rc && rc2)
			rc = rc2;
		if (rc) {
			log_error(
			    "migration receiver: refusing %s before its stream: this host cannot "
			    "take over its disks (above); the sender keeps it",
			    name);
			a->ext->abort(a->ext_ctx);
			goto out;
		}
		ext = true;
		fault_point("recv:ext");
	} else if (a->ext) {
		log_warn("migration receiver: the sender of %s is not xl-ext (stock xl?): LUN "
		         "identity and the reservation hand-over are skipped",
		         name);
	}
	snprintf(incoming, sizeof(incoming), "%s--incoming", name);
	rc = a->ops->receive_stream(a->hv, a->recv_fd, incoming, json, &params, rep, &domid);
	log_debug("migration target: stream of %s received and applied", name);
	if (rc) {
		log_error("migration receiver: receiving domain %s failed (%s); nothing is left "
		          "here, the sender keeps its copy",
		          name, err_str(rc));
		if (ext)
			a->ext->abort(a->ext_ctx);
		goto out;
	}
	if (ext && a->ext->received) {
		rc = a->ext->received(a->ext_ctx);
		if (rc) {
			log_error("migration receiver: %s cannot write its disks here (above); "
			          "destroying our copy, the sender keeps it",
			          name);
			goto destroy;
		}
	}
	fault_point("recv:received");
	if (pc_postcopy_failed(rep)) {
		log_error("migration receiver: the post-copy channel of %s failed before it ran "
		          "here; destroying our copy, the sender keeps it",
		          name);
		rc = ERR_IO;
		goto destroy;
	}
	log_info("migration target: transfer complete, requesting permission to start %s", name);
	rc = fd_write_exact(a->send_fd, xlp_receiver_ready, xlp_receiver_ready_len());
	if (rc)
		goto destroy;
	fault_point("recv:ready");
	/* bounded: a sender that never says GO (it died, or the path went silent) must not hold
	 * our copy forever; without GO it cannot run anywhere else either */
	rc = read_fixed(a->recv_fd, xlp_permission_to_go, xlp_permission_to_go_len(), "GO message",
	                "the sender", MIG_GO_TIMEOUT_MS);
	if (rc)
		goto report;
	rep->t_go_us = loop_now_us();
	fault_point("recv:go");
	if (pc_postcopy_failed(rep)) { /* not run here: the sender resumes it */
		log_error("migration receiver: the post-copy channel of %s failed before it ran "
		          "here",
		          name);
		rc = ERR_IO;
		goto report;
	}
	rc = a->ops->rename(a->hv, domid, incoming, name);
	if (!rc && !a->paused)
		rc = a->ops->unpause(a->hv, domid);
	rep->t_end_us = loop_now_us();
	if (!rc)
		fault_point("recv:unpause");
	log_debug("migration target: %s renamed and started %.1f ms after GO", name,
	          (double)(rep->t_end_us - rep->t_go_us) / 1000.0);
report:
	rc2 = fd_write_exact(a->send_fd, xlp_report, xlp_report_len());
	status = (uint8_t)(rc ? (rc < 0 ? -rc : 1) : 0);
	if (!rc2)
		rc2 = fd_write_exact(a->send_fd, &status, 1);
	if (rc2 && !rc)
		/* after GO our running copy is the guest (stock xl keeps it too): the sender's
		 * paused copy is the one to go, never this one */
		log_warn("migration target: %s runs here, but the sender could not be told (%s); "
		         "its copy there, paused as %s--migratedaway, must be destroyed, never "
		         "resumed",
		         name, err_str(rc2), name);
	else if (rc2)
		log_error("migration receiver: cannot report to the sender");
	if (!rc) {
		*domid_r = domid;
		fault_point("recv:report");
		if (ext) {
			char *final = NULL;

			a->ext->go(a->ext_ctx, &final);
			fault_point("recv:preempted");
			if (ext_write(a->send_fd, final ? final : "{}"))
				log_warn(
				    "migration target: cannot tell the sender how the reservation "
				    "hand-over of %s went",
				    name);
			free(final);
		}
		if (rep->pc && a->ops->postcopy_end) {
			rc = a->ops->postcopy_end(a->hv, domid, rep);
			if (rc)
				log_error(
				    "migration target: post-copy of %s failed: it is paused here "
				    "for good (pages it needs stayed with the sender); restart it "
				    "from its disks: destroy it here and on the sender, then "
				    "create it again",
				    name);
			else
				log_info("migration target: post-copy of %s complete: %llu pages "
				         "pulled, %llu pushed, %llu faults",
				         name, (unsigned long long)rep->postcopy.pulled,
				         (unsigned long long)rep->postcopy.pushed,
				         (unsigned long long)rep->postcopy.faults);
		}
		goto out;
	}
	log_error("migration target: failure (%s), destroying our copy of %s", err_str(rc), name);
	pc_postcopy_cancel(rep);
	a->ops->destroy(a->hv, domid);
	if (ext)
		a->ext->abort(a->ext_ctx);
	if (!rc2)
		fd_write_exact(a->send_fd, xlp_permission_to_go, xlp_permission_to_go_len());
	goto out;
destroy:
	pc_postcopy_cancel(rep);
	a->ops->destroy(a->hv, domid);
	if (ext)
		a->ext->abort(a->ext_ctx);
out:
	free(json);
	return rc;
}
