/*
 * fence.c - fencing a node by command and/or by reservation preempt (see fence.h).
 */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "haagent/fence.h"
#include "haagent/worker.h"
#include "xl-ext/core/xlcfg.h"
#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/hostid.h"
#include "xl-ext/storage/iscsi.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/storage/owner.h"

#define FENCE_MAX_LUNS 64

const char *ha_fence_mode_name(enum ha_fence_mode mode)
{
	static const char *const names[] = {"auto", "command", "reservation", "both"};

	return (unsigned)mode < 4 ? names[mode] : "?";
}

int ha_fence_methods(enum ha_fence_mode mode, bool have_command, size_t nluns, unsigned *methods_r,
                     char *why, size_t why_len)
{
	*methods_r = 0;
	switch (mode) {
	case HA_FENCE_AUTO:
		if (have_command)
			*methods_r = HA_FENCE_BY_COMMAND;
		else if (nluns)
			*methods_r = HA_FENCE_BY_RESERVATION;
		else
			snprintf(
			    why, why_len,
			    "no fence_command is configured and its guests have no shared iSCSI "
			    "LUN to preempt: configure fence_command");
		break;
	case HA_FENCE_COMMAND:
		if (have_command)
			*methods_r = HA_FENCE_BY_COMMAND;
		else
			snprintf(why, why_len,
			         "fence_mode = command but no fence_command is configured");
		break;
	case HA_FENCE_RESERVATION:
	case HA_FENCE_BOTH:
		if (!nluns) {
			snprintf(
			    why, why_len,
			    "fence_mode = %s but its guests have no shared iSCSI LUN to preempt: "
			    "list them in the guests' 'disks' or use fence_mode = command",
			    ha_fence_mode_name(mode));
			break;
		}
		if (mode == HA_FENCE_BOTH && !have_command) {
			snprintf(why, why_len,
			         "fence_mode = both but no fence_command is configured");
			break;
		}
		*methods_r =
		    HA_FENCE_BY_RESERVATION | (mode == HA_FENCE_BOTH ? HA_FENCE_BY_COMMAND : 0);
		break;
	default:
		snprintf(why, why_len, "unknown fence_mode %d", (int)mode);
		break;
	}
	return *methods_r ? 0 : ERR_INVAL;
}

int ha_fence_node_key(const char *node_keys, const char *name, uint64_t *key_r, char *why,
                      size_t why_len)
{
	const char *p = node_keys ? node_keys : "";

	while (*p) {
		char entry[HA_FENCE_WHY_MAX], *eq, *k;
		size_t len;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		len = strcspn(p, ", \t");
		snprintf(entry, sizeof(entry), "%.*s", (int)len, p);
		p += len;
		eq = strchr(entry, '=');
		if (!eq || eq == entry || !eq[1]) {
			snprintf(why, why_len, "node_keys entry '%s': expected NAME=KEY", entry);
			return ERR_INVAL;
		}
		*eq = '\0';
		k = eq + 1;
		if (own_host_key(entry, k, key_r) < 0) {
			snprintf(why, why_len,
			         "node_keys entry '%s=%s': the key must be non-zero hex", entry, k);
			return ERR_INVAL;
		}
		if (strcmp(entry, name) == 0)
			return 0;
	}
	return own_host_key(name, NULL, key_r);
}

/* Append the LUN of spec to urls when it is a writable iSCSI disk (of guest owner). */
static int add_lun(const char *spec, const struct ha_fence_guest *owner,
                   char (*urls)[LUN_TARGET_MAX], const struct ha_fence_guest **owners, size_t *n)
{
	struct disk_info *di = calloc(1, sizeof(*di));
	int rc;

	if (!di)
		return ERR_NOMEM;
	while (isspace((unsigned char)*spec))
		spec++;
	rc = *spec ? disk_classify(spec, di) : 0;
	if (rc || !*spec || di->kind != DISK_ISCSI || di->readonly)
		goto out;
	if (*n == FENCE_MAX_LUNS)
		rc = ERR_NOSPACE;
	else if (!(rc = disk_iscsi_url(di, urls[*n], LUN_TARGET_MAX)))
		owners[(*n)++] = owner;
out:
	free(di);
	return rc;
}

/* The shared, writable iSCSI LUNs of g as URLs appended to urls: from its 'disks' (specs
 * separated by ';'), else from its xl.cfg's disk list (no hypervisor needed: the guest's
 * owner is dead). */
static int guest_luns(const struct ha_fence_args *a, const struct ha_fence_guest *g,
                      char (*urls)[LUN_TARGET_MAX], const struct ha_fence_guest **owners, size_t *n)
{
	struct hv_disk_specs cfg;
	char *specs, *save = NULL;
	int rc = 0;

	if (g->disks && g->disks[0]) {
		specs = strdup(g->disks);
		if (!specs)
			return ERR_NOMEM;
		for (char *s = strtok_r(specs, ";", &save); s && !rc;
		     s = strtok_r(NULL, ";", &save))
			rc = add_lun(s, g, urls, owners, n);
		free(specs);
		return rc;
	}
	if (!g->config || !g->config[0]) {
		log_error("fence: cannot tell the disks of guest %s: list them in its 'disks' in "
		          "haagent.conf, or give its 'config'",
		          g->name);
		return ERR_NOTFOUND;
	}
	rc = xlcfg_disk_specs(g->config, &cfg);
	if (rc) {
		log_error("fence: cannot read the disks of guest %s from %s", g->name, g->config);
		return rc;
	}
	for (size_t i = 0; !rc && i < cfg.n; i++)
		rc = add_lun(cfg.spec[i], g, urls, owners, n);
	hv_disk_specs_free(&cfg);
	return rc;
}

/* Preempt victim on one LUN with self's key; 0 or the error (why says what happened). */
/* must_own: the victim owned the guest, so this node must end up owning the LUN alone;
 * otherwise (the victim was only a migration's target) the victim's key must be gone. */
static int fence_lun(const char *url, const char *initiator, uint64_t self, uint64_t victim,
                     bool must_own, int timeout_s, char *why, size_t why_len)
{
	struct own_machine m;
	struct own_view v;
	struct lun *lun = NULL;
	int rc;

	rc = lun_open(url, initiator, timeout_s, &lun);
	if (rc) {
		snprintf(why, why_len, "login failed (%s)", err_str(rc));
		return rc;
	}
	/* a dead target only registered: its key goes, and no reservation is made */
	rc = own_init(&m, must_own ? OWN_FLOW_FENCE : OWN_FLOW_EVICT, self, victim);
	if (!rc)
		rc = own_drive(&m, lun_pr_execute, lun);
	if (rc) {
		snprintf(why, why_len, "%s", m.why[0] ? m.why : err_str(rc));
		goto out;
	}
	/* The fence flow also ends DONE when a third key holds the LUN (the victim was only
	 * registered, or its key is not the one we derived): for haagent that is no fence. */
	rc = lun_pr_read(lun, &v);
	if (!rc && !must_own) {
		if (own_view_has_key(&v, victim)) {
			rc = ERR_MISMATCH;
			snprintf(why, why_len, "key 0x%016" PRIx64 " is still registered", victim);
		}
	} else if (!rc && own_check_sole_owner(&v, self, m.why, sizeof(m.why))) {
		snprintf(why, why_len,
		         "after the preempt of 0x%016" PRIx64
		         " this node does not own it (%.80s%s): "
		         "is that the node's key? (node_keys)",
		         victim, m.why, v.reserved ? "" : ", no reservation");
		rc = ERR_MISMATCH;
	} else if (rc) {
		snprintf(why, why_len, "reading the reservation after the preempt: %s",
		         err_str(rc));
	}
out:
	lun_close(lun);
	return rc;
}

int ha_fence_run(const struct ha_fence_args *a, char *report, size_t report_len)
{
	static char urls[FENCE_MAX_LUNS][LUN_TARGET_MAX];
	const struct ha_fence_guest *owners[FENCE_MAX_LUNS];
	char why[HA_FENCE_WHY_MAX] = "", self_name[HA_FENCE_WHY_MAX / 2];
	char initiator[ISCSI_INITIATOR_MAX];
	uint64_t self = 0, victim = 0;
	unsigned methods = 0;
	size_t nluns = 0;
	int64_t t0 = loop_now_ms();
	bool command_only;
	int rc = 0;

	report[0] = '\0';
	/* the command alone needs no disks: an unreadable guest config must not block it */
	command_only = a->mode == HA_FENCE_COMMAND ||
	               (a->mode == HA_FENCE_AUTO && a->command && a->command[0]);

	for (size_t i = 0; i < a->nguests && rc == 0 && !command_only; i++)
		rc = guest_luns(a, &a->guests[i], urls, owners, &nluns);
	if (rc) {
		snprintf(report, report_len,
		         "the shared disks of its guests cannot be read (%s); its guests stay "
		         "down: fix their 'disks'/'config'",
		         err_str(rc));
		goto out;
	}
	rc = ha_fence_methods(a->mode, a->command && a->command[0], nluns, &methods, why,
	                      sizeof(why));
	if (rc) {
		snprintf(report, report_len, "%s; its guests stay down", why);
		goto out;
	}
	if (methods & HA_FENCE_BY_RESERVATION) {
		rc = hostid_local(self_name, sizeof(self_name), &self);
		if (!rc)
			rc = ha_fence_node_key(a->node_keys, a->victim, &victim, why, sizeof(why));
		if (!rc && self == victim) {
			snprintf(why, sizeof(why), "this node's key equals node %s's", a->victim);
			rc = ERR_INVAL;
		}
		if (!rc)
			rc = iscsi_initiator_name(self_name, initiator, sizeof(initiator));
		if (rc) {
			snprintf(report, report_len, "reservation keys: %s",
			         why[0] ? why : err_str(rc));
			goto out;
		}
		for (size_t i = 0; i < nluns; i++) {
			bool dup = false;

			for (size_t k = 0; k < i; k++)
				dup = dup || strcmp(urls[k], urls[i]) == 0;
			if (dup)
				continue;
			rc = fence_lun(urls[i], initiator, self, victim, !owners[i]->incoming,
			               a->timeout_s, why, sizeof(why));
			if (rc) {
				log_error(
				    "fence: node %s (key 0x%016" PRIx64 ") NOT fenced on LUN %s "
				    "of guest %s: %s; its guests stay down: make the target "
				    "reachable and admit %s, or fence the node by hand and run "
				    "'xl-ext pr %s register preempt 0x%016" PRIx64 "'",
				    a->victim, victim, urls[i], owners[i]->name, why, initiator,
				    urls[i], victim);
				snprintf(report, report_len, "guest %s LUN %s: %s; see the log",
				         owners[i]->name, urls[i], why);
				goto out;
			}
			log_info("fence: node %s's key 0x%016" PRIx64 " preempted on LUN %s (guest "
			         "%s) by %s's key 0x%016" PRIx64 ", which now holds the WERO "
			         "reservation (%" PRId64 " ms so far)",
			         a->victim, victim, urls[i], owners[i]->name, self_name, self,
			         loop_now_ms() - t0);
		}
	}
	if ((methods & HA_FENCE_BY_COMMAND) &&
	    ha_worker_fence(a->command, a->victim, a->command_timeout_s) != HA_WORKER_OK) {
		rc = ERR_REMOTE;
		snprintf(report, report_len,
		         "fence command '%s' failed or did not finish within %d s; its guests "
		         "stay down",
		         a->command, a->command_timeout_s);
		goto out;
	}
	snprintf(report, report_len, "%s%s%s in %" PRId64 " ms",
	         (methods & HA_FENCE_BY_RESERVATION) ? "reservation preempted on " : "",
	         (methods & HA_FENCE_BY_RESERVATION) ? "every shared LUN" : "",
	         (methods & HA_FENCE_BY_COMMAND)
	             ? ((methods & HA_FENCE_BY_RESERVATION) ? " and fence command succeeded"
	                                                    : "fence command succeeded")
	             : "",
	         loop_now_ms() - t0);
	if (methods & HA_FENCE_BY_RESERVATION)
		log_info("fence: node %s fenced: %zu LUN(s), %s", a->victim, nluns, report);
out:
	if (rc)
		log_error("fence: node %s NOT fenced: %s", a->victim, report);
	return rc ? HA_WORKER_FAILED : HA_WORKER_OK;
}

/*
 * What a check of one guest's LUNs from this host needs (ha_fence_self_check, ha_fence_adopt):
 * the shared LUNs of a->guests[0] (urls, owners, *nluns), this host's name, key and iSCSI
 * initiator name. 0 with *nluns = 0 when the guest has no known shared LUN.
 */
static int guest_check_setup(const struct ha_fence_args *a, char (*urls)[LUN_TARGET_MAX],
                             const struct ha_fence_guest **owners, size_t *nluns, char *host,
                             size_t host_len, uint64_t *self_r, char *initiator)
{
	int rc;

	*nluns = 0;
	if (a->nguests != 1)
		return ERR_INVAL;
	rc = guest_luns(a, &a->guests[0], urls, owners, nluns);
	if (rc || !*nluns) {
		*nluns = 0;
		return rc == ERR_NOTFOUND ? 0 : rc;
	}
	rc = hostid_local(host, host_len, self_r);
	if (!rc)
		rc = iscsi_initiator_name(host, initiator, ISCSI_INITIATOR_MAX);
	return rc;
}

/* The reservation view of LUN url, on a session of its own. */
static int read_view(const char *url, const char *initiator, int timeout_s, struct own_view *v)
{
	struct lun *lun = NULL;
	int rc = lun_open(url, initiator, timeout_s, &lun);

	if (!rc)
		rc = lun_pr_read(lun, v);
	lun_close(lun);
	return rc;
}

int ha_fence_self_check(const struct ha_fence_args *a, const char *self_name, char *lun_r,
                        size_t lun_len)
{
	static char urls[FENCE_MAX_LUNS][LUN_TARGET_MAX];
	const struct ha_fence_guest *owners[FENCE_MAX_LUNS];
	char why[HA_FENCE_WHY_MAX], host[HA_FENCE_WHY_MAX / 2];
	char initiator[ISCSI_INITIATOR_MAX];
	uint64_t self = 0, local = 0;
	size_t nluns = 0;
	int rc = guest_check_setup(a, urls, owners, &nluns, host, sizeof(host), &local, initiator);

	if (rc || !nluns)
		return rc;
	/* the key the cluster's reservation fence preempts for this node (node_keys) */
	rc = ha_fence_node_key(a->node_keys, self_name, &self, why, sizeof(why));
	if (rc)
		log_warn("self-fence check of %s: %s", a->guests[0].name, why);
	for (size_t i = 0; !rc && i < nluns; i++) {
		struct own_view v;

		rc = read_view(urls[i], initiator, a->timeout_s, &v);
		if (rc) {
			log_warn(
			    "self-fence check of %s: cannot read the reservation of LUN %s: %s "
			    "(the guest is kept)",
			    a->guests[0].name, urls[i], err_str(rc));
			break;
		}
		if (v.reserved && !own_view_has_key(&v, self)) {
			char keys[OWN_MAX_KEYS * 20 + 1] = "";

			for (unsigned k = 0; k < v.nkeys && k < OWN_MAX_KEYS; k++)
				snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys),
				         " 0x%016" PRIx64, v.keys[k]);
			log_info("self-fence check of %s: LUN %s is reserved by 0x%016" PRIx64
			         ", registered:%s; this node's key 0x%016" PRIx64 " is not",
			         a->guests[0].name, urls[i], v.holder, keys[0] ? keys : " none",
			         self);
			snprintf(lun_r, lun_len, "%s", urls[i]);
			return 1;
		}
	}
	return rc;
}

int ha_fence_adopt(const struct ha_fence_args *a, const uint64_t *member_keys, size_t nkeys)
{
	static char urls[FENCE_MAX_LUNS][LUN_TARGET_MAX];
	const struct ha_fence_guest *owners[FENCE_MAX_LUNS];
	char why[HA_FENCE_WHY_MAX], self_name[HA_FENCE_WHY_MAX / 2];
	char initiator[ISCSI_INITIATOR_MAX];
	uint64_t self = 0;
	size_t nluns = 0;
	/* no known shared disk: nothing to adopt */
	int rc = guest_check_setup(a, urls, owners, &nluns, self_name, sizeof(self_name), &self,
	                           initiator);

	for (size_t i = 0; !rc && i < nluns; i++) {
		struct own_view v;
		bool member = false;

		rc = read_view(urls[i], initiator, a->timeout_s, &v);
		if (rc == ERR_NOTSUP) { /* built without libiscsi: the guest's own start decides */
			log_warn("cold restart of %s: LUN %s not checked for a fencing member's "
			         "reservation (haagent built without libiscsi)",
			         owners[i]->name, urls[i]);
			rc = 0;
			continue;
		}
		if (rc) {
			log_error("cold restart of %s: cannot read the reservation of LUN %s: %s",
			          owners[i]->name, urls[i], err_str(rc));
			break;
		}
		for (size_t k = 0; k < nkeys; k++)
			member = member || (v.reserved && v.holder == member_keys[k]);
		if (!member || v.holder == self)
			continue;
		rc = fence_lun(urls[i], initiator, self, v.holder, true, a->timeout_s, why,
		               sizeof(why));
		if (rc)
			log_error("cold restart of %s: cannot take LUN %s over from member key "
			          "0x%016" PRIx64 ": %s",
			          owners[i]->name, urls[i], v.holder, why);
		else
			log_info(
			    "cold restart of %s: LUN %s taken over from the fencing node's key "
			    "0x%016" PRIx64 " with %s's key 0x%016" PRIx64,
			    owners[i]->name, urls[i], v.holder, self_name, self);
	}
	return rc;
}
