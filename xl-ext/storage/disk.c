/*
 * disk.c - disk spec classifier: libxlutil parses, we recognise shared iSCSI LUNs.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxl.h>
#include <libxlutil.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/core/xlcfg.h"
#include "xl-ext/storage/disk.h"

#define BYPATH_DIR "/dev/disk/by-path/"

const char *disk_kind_name(enum disk_kind kind)
{
	return kind == DISK_ISCSI ? "iscsi" : "local";
}

/* Strict unsigned decimal of at most maxdigits digits, no sign, no spaces. */
static int parse_uint(const char *s, size_t len, unsigned maxdigits, unsigned long *v_r)
{
	unsigned long v = 0;

	if (len == 0 || len > maxdigits)
		return ERR_INVAL;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return ERR_INVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*v_r = v;
	return 0;
}

static int all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static int iqn_domain_valid(const char *s, size_t len, const char **why)
{
	size_t label = 0;

	if (len == 0) {
		*why = "no naming authority (reversed domain name) after the date";
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0) {
				*why = "empty label in the reversed domain name";
				return 0;
			}
			label = 0;
		} else if (islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-') {
			label++;
		} else if (isupper((unsigned char)c)) {
			*why = "iqn names are lower case (RFC 3720 normalises them)";
			return 0;
		} else {
			*why = "invalid character in the reversed domain name";
			return 0;
		}
	}
	if (label == 0) {
		*why = "empty label in the reversed domain name";
		return 0;
	}
	return 1;
}

int disk_iqn_valid(const char *iqn, const char **why_r)
{
	const char *dummy = NULL, **why = why_r ? why_r : &dummy;
	size_t len = strlen(iqn);

	if (len == 0) {
		*why = "empty iSCSI name";
		return 0;
	}
	if (len >= DISK_IQN_MAX) {
		*why = "iSCSI name longer than 223 bytes";
		return 0;
	}
	if (!strncmp(iqn, "eui.", 4)) {
		if (len != 4 + 16 || !all_hex(iqn + 4, 16)) {
			*why = "eui. must be followed by exactly 16 hex digits";
			return 0;
		}
		return 1;
	}
	if (!strncmp(iqn, "naa.", 4)) {
		if ((len != 4 + 16 && len != 4 + 32) || !all_hex(iqn + 4, len - 4)) {
			*why = "naa. must be followed by 16 or 32 hex digits";
			return 0;
		}
		return 1;
	}
	if (strncmp(iqn, "iqn.", 4)) {
		*why = "must start with iqn., eui. or naa.";
		return 0;
	}
	/* iqn.yyyy-mm.reversed.domain[:unique] */
	const char *p = iqn + 4;
	unsigned long year, month;

	if (len < 4 + 8 || parse_uint(p, 4, 4, &year) || p[4] != '-' ||
	    parse_uint(p + 5, 2, 2, &month) || month < 1 || month > 12 || p[7] != '.') {
		*why = "iqn. must be followed by a date yyyy-mm and a dot";
		return 0;
	}
	p += 8;
	const char *colon = strchr(p, ':');
	size_t dlen = colon ? (size_t)(colon - p) : strlen(p);

	if (!iqn_domain_valid(p, dlen, why))
		return 0;
	if (colon) {
		const char *q = colon + 1;

		if (!*q) {
			*why = "nothing after ':'";
			return 0;
		}
		for (; *q; q++) {
			if (isupper((unsigned char)*q)) {
				*why = "iqn names are lower case (RFC 3720 normalises them)";
				return 0;
			}
			if (!islower((unsigned char)*q) && !isdigit((unsigned char)*q) &&
			    *q != '.' && *q != '-' && *q != ':') {
				*why = "invalid character after ':' (allowed: a-z 0-9 . - :)";
				return 0;
			}
		}
	}
	return 1;
}

int disk_portal_parse(const char *portal, char *host, size_t hostlen, unsigned *port_r,
                      const char **why_r)
{
	const char *dummy = NULL, **why = why_r ? why_r : &dummy;
	unsigned char addr[16];
	const char *hend, *rest;
	char buf[DISK_HOST_MAX];
	int family;
	size_t hlen;

	if (!*portal) {
		*why = "empty portal";
		return ERR_INVAL;
	}
	if (portal[0] == '[') {
		hend = strchr(portal, ']');
		if (!hend) {
			*why = "portal: missing ']' after the IPv6 address";
			return ERR_INVAL;
		}
		portal++;
		rest = hend + 1;
		family = AF_INET6;
	} else {
		hend = strchr(portal, ':');
		if (hend && strchr(hend + 1, ':')) {
			*why = "portal: IPv6 addresses must be written in brackets, [addr]:port";
			return ERR_INVAL;
		}
		if (!hend)
			hend = portal + strlen(portal);
		rest = hend;
		family = AF_INET;
	}
	hlen = (size_t)(hend - portal);
	if (hlen == 0 || hlen >= sizeof(buf) || hlen >= hostlen) {
		*why = "portal: missing or too long address";
		return ERR_INVAL;
	}
	memcpy(buf, portal, hlen);
	buf[hlen] = '\0';
	if (inet_pton(family, buf, addr) != 1) {
		*why = family == AF_INET ? "portal: not an IPv4 address (block-iscsi needs an IP)"
		                         : "portal: not an IPv6 address";
		return ERR_INVAL;
	}
	*port_r = DISK_ISCSI_PORT;
	if (*rest) {
		unsigned long port;

		if (*rest != ':' || parse_uint(rest + 1, strlen(rest + 1), 5, &port)) {
			*why = "portal: port must be ':' and a decimal number";
			return ERR_INVAL;
		}
		if (port < 1 || port > 65535) {
			*why = "portal: port out of range 1-65535";
			return ERR_INVAL;
		}
		*port_r = (unsigned)port;
	}
	memcpy(host, buf, hlen + 1);
	return 0;
}

static int lun_parse(const char *s, size_t len, unsigned *lun_r, const char **why)
{
	unsigned long v;

	if (parse_uint(s, len, 5, &v)) {
		*why = "LUN must be a decimal number";
		return ERR_INVAL;
	}
	if (v > DISK_LUN_MAX) {
		*why = "LUN out of range 0-16383";
		return ERR_INVAL;
	}
	*lun_r = (unsigned)v;
	return 0;
}

/* block-iscsi's target: comma-separated iqn=, portal=, multipath=y|n, and our lun=. */
static int parse_script_target(struct disk_info *d, const char **why)
{
	char buf[DISK_SPEC_MAX];
	char *save = NULL, *tok;
	int have_iqn = 0, have_portal = 0, have_lun = 0, have_mp = 0;

	snprintf(buf, sizeof(buf), "%s", d->target);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		const char *val = eq ? eq + 1 : "";
		int *seen;

		if (eq)
			*eq = '\0';
		if (!strcmp(tok, "iqn"))
			seen = &have_iqn;
		else if (!strcmp(tok, "portal"))
			seen = &have_portal;
		else if (!strcmp(tok, "lun"))
			seen = &have_lun;
		else if (!strcmp(tok, "multipath"))
			seen = &have_mp;
		else {
			*why = "unknown block-iscsi target parameter (known: iqn, portal, lun, "
			       "multipath)";
			return ERR_INVAL;
		}
		if (!eq) {
			*why = "block-iscsi target parameter without '='";
			return ERR_INVAL;
		}
		if (*seen) {
			*why = "block-iscsi target parameter given twice";
			return ERR_INVAL;
		}
		*seen = 1;
		if (seen == &have_iqn) {
			if (!disk_iqn_valid(val, why))
				return ERR_INVAL;
			snprintf(d->iqn, sizeof(d->iqn), "%s", val);
		} else if (seen == &have_portal) {
			if (disk_portal_parse(val, d->host, sizeof(d->host), &d->port, why))
				return ERR_INVAL;
		} else if (seen == &have_lun) {
			if (lun_parse(val, strlen(val), &d->lun, why))
				return ERR_INVAL;
		} else {
			if (strcmp(val, "y") && strcmp(val, "n")) {
				*why = "multipath must be y or n";
				return ERR_INVAL;
			}
			d->multipath = val[0] == 'y';
		}
	}
	if (!have_iqn || !have_portal) {
		*why = "iqn= and portal= are required block-iscsi target parameters";
		return ERR_INVAL;
	}
	return 0;
}

/* /dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<n>; 1 if recognised as iSCSI, 0 local. */
static int parse_bypath(struct disk_info *d, const char **why)
{
	const char *name = d->target + strlen(BYPATH_DIR);
	const char *isc, *lunp, *iqn;
	char portal[DISK_HOST_MAX + 8];
	size_t plen, qlen;

	if (strncmp(name, "ip-", 3))
		return 0;
	isc = strstr(name, "-iscsi-");
	if (!isc)
		return 0; /* another network transport: not ours */
	plen = (size_t)(isc - name) - 3;
	if (plen == 0 || plen >= sizeof(portal)) {
		*why = "by-path name: missing or too long portal after 'ip-'";
		return ERR_INVAL;
	}
	memcpy(portal, name + 3, plen);
	portal[plen] = '\0';
	if (disk_portal_parse(portal, d->host, sizeof(d->host), &d->port, why))
		return ERR_INVAL;
	iqn = isc + 7;
	lunp = NULL;
	for (const char *p = strstr(iqn, "-lun-"); p; p = strstr(p + 1, "-lun-"))
		lunp = p;
	if (!lunp) {
		*why = "by-path name: no '-lun-<n>' after the IQN";
		return ERR_INVAL;
	}
	qlen = (size_t)(lunp - iqn);
	if (qlen == 0 || qlen >= sizeof(d->iqn)) {
		*why = "by-path name: missing or too long IQN";
		return ERR_INVAL;
	}
	memcpy(d->iqn, iqn, qlen);
	d->iqn[qlen] = '\0';
	if (!disk_iqn_valid(d->iqn, why))
		return ERR_INVAL;
	if (strstr(lunp + 5, "-part")) {
		*why = "by-path name: a partition of a LUN is not supported, give the whole LUN";
		return ERR_INVAL;
	}
	if (lun_parse(lunp + 5, strlen(lunp + 5), &d->lun, why))
		return ERR_INVAL;
	return 1;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/*
 * libxlutil reports syntax errors on a FILE: capture them to quote them in our message. Gives
 * 1 for a syntax error (msg says what), or an error code already logged.
 */
static int xlu_parse(const char *spec, libxl_device_disk *disk, char *msg, size_t msglen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *report;
	XLU_Config *xc;
	int rc;

	msg[0] = '\0';
	report = open_memstream(&buf, &len);
	if (!report)
		return ERR_NOMEM;
	xc = xlu_cfg_init(report, "disk spec");
	if (!xc) {
		rc = ERR_NOMEM;
		goto out;
	}
	rc = xlcfg_disk_parse(xc, "disk spec", spec, disk); /* 1: syntax error, in report */
out:
	if (xc)
		xlu_cfg_destroy(xc);
	fclose(report);
	if (buf) {
		size_t n = strlen(buf);

		while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
			buf[--n] = '\0';
		snprintf(msg, msglen, "%s", buf);
	}
	free(buf);
	return rc;
}

int disk_classify(const char *spec, struct disk_info *info_r)
{
	libxl_device_disk disk;
	struct disk_info *d = info_r;
	const char *why = NULL;
	char xmsg[512];
	int rc;

	memset(d, 0, sizeof(*d));
	libxl_device_disk_init(&disk);
	if (!spec || !*spec) {
		log_error("disk spec '': empty");
		rc = ERR_INVAL;
		goto out;
	}
	if (strlen(spec) >= sizeof(d->spec)) {
		log_error("disk spec '%.40s...': longer than %d characters", spec,
		          DISK_SPEC_MAX - 1);
		rc = ERR_INVAL;
		goto out;
	}
	snprintf(d->spec, sizeof(d->spec), "%s", spec);
	rc = xlu_parse(spec, &disk, xmsg, sizeof(xmsg));
	if (rc == 1) {
		log_error("disk spec '%s': not a valid xl disk spec%s%s", spec, xmsg[0] ? ": " : "",
		          xmsg);
		rc = ERR_INVAL;
	}
	if (rc)
		goto out;
	snprintf(d->vdev, sizeof(d->vdev), "%s", disk.vdev ? disk.vdev : "");
	snprintf(d->target, sizeof(d->target), "%s", disk.pdev_path ? disk.pdev_path : "");
	d->cdrom = disk.is_cdrom != 0;
	d->readonly = !disk.readwrite;
	d->kind = DISK_LOCAL;
	d->form = DISK_FORM_OTHER;
	if (disk.script && !strcmp(base_name(disk.script), "block-iscsi")) {
		if (!d->target[0]) {
			why = "script=block-iscsi needs target=iqn=<iqn>,portal=<ip>[:<port>]";
			rc = ERR_INVAL;
			goto out;
		}
		rc = parse_script_target(d, &why);
		if (rc)
			goto out;
		d->kind = DISK_ISCSI;
		d->form = DISK_FORM_SCRIPT;
	} else if (!strncmp(d->target, BYPATH_DIR, strlen(BYPATH_DIR))) {
		rc = parse_bypath(d, &why);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			d->kind = DISK_ISCSI;
			d->form = DISK_FORM_BYPATH;
		}
		rc = 0;
	}
out:
	if (rc && why)
		log_error("disk spec '%s': %s", spec, why);
	libxl_device_disk_dispose(&disk);
	return rc;
}

int disk_iscsi_url(const struct disk_info *info, char *buf, size_t len)
{
	int v6 = strchr(info->host, ':') != NULL;
	int n;

	if (info->kind != DISK_ISCSI)
		return ERR_INVAL;
	n = snprintf(buf, len, "iscsi://%s%s%s:%u/%s/%u", v6 ? "[" : "", info->host, v6 ? "]" : "",
	             info->port, info->iqn, info->lun);
	return n < 0 || (size_t)n >= len ? ERR_NOSPACE : 0;
}

int disk_check_migratable(const char *domain, const struct disk_info *disks, unsigned n,
                          int allow_local)
{
	int rc = 0;

	for (unsigned i = 0; i < n; i++) {
		const struct disk_info *d = &disks[i];

		if (d->kind == DISK_ISCSI || d->readonly)
			continue;
		if (allow_local) {
			log_warn("domain %s: local writable disk %s ('%s') is not moved: the "
			         "destination must provide its own copy (--allow-local-disks)",
			         domain, d->vdev, d->spec);
			continue;
		}
		log_error("domain %s: disk %s ('%s') is local and writable: only shared iSCSI "
		          "disks are migrated safely; use --allow-local-disks to migrate anyway "
		          "(the disk is not moved)",
		          domain, d->vdev, d->spec);
		if (!rc)
			rc = ERR_NOTSUP;
	}
	return rc;
}
