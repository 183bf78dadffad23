/*
 * disk.h - classify a domain's disks: shared iSCSI LUN or local.
 *
 * A disk spec (xl.cfg "disk" entry, xl-disk-configuration(5)) is parsed with libxlutil's own
 * parser into a libxl_device_disk, then classified:
 *   - shared iSCSI, Xen's block-iscsi script form:
 *       vdev=xvda,script=block-iscsi,target=iqn=<iqn>,portal=<ip>[:<port>][,lun=<n>]
 *     (block-iscsi itself always uses LUN 0; lun= is our extension; multipath=y|n is accepted)
 *   - shared iSCSI, kernel-initiator by-path form:
 *       phy:/dev/disk/by-path/ip-<ip>:<port>-iscsi-<iqn>-lun-<n>,xvda,w
 *   - anything else is local (file, phy on a local device, qdisk, ...).
 * Pure: no I/O beyond libxlutil's in-memory parser. Always built.
 */
#ifndef XLEXT_STORAGE_DISK_H
#define XLEXT_STORAGE_DISK_H

#include <stddef.h>

#define DISK_SPEC_MAX   1024
#define DISK_HOST_MAX   64  /* an IPv4 or IPv6 literal, without brackets */
#define DISK_IQN_MAX    224 /* RFC 3720: at most 223 bytes */
#define DISK_VDEV_MAX   32
#define DISK_URL_MAX    (16 + DISK_HOST_MAX + 8 + DISK_IQN_MAX + 8)
#define DISK_LUN_MAX    16383 /* SAM flat addressing */
#define DISK_ISCSI_PORT 3260

enum disk_kind {
	DISK_LOCAL = 0,
	DISK_ISCSI = 1,
};

enum disk_form {
	DISK_FORM_OTHER = 0,  /* local disks */
	DISK_FORM_SCRIPT = 1, /* script=block-iscsi,target=iqn=...,portal=... */
	DISK_FORM_BYPATH = 2, /* /dev/disk/by-path/ip-...-iscsi-...-lun-N */
};

struct disk_info {
	enum disk_kind kind;
	enum disk_form form;
	char spec[DISK_SPEC_MAX]; /* the spec as given */
	char vdev[DISK_VDEV_MAX];
	char target[DISK_SPEC_MAX]; /* libxl's pdev_path: file, device or script target */
	int readonly;               /* 1 for mode r / cdrom */
	int cdrom;
	/* DISK_ISCSI only */
	char host[DISK_HOST_MAX]; /* portal address, IPv6 without brackets */
	unsigned port;            /* default 3260 */
	char iqn[DISK_IQN_MAX];
	unsigned lun;
	int multipath; /* block-iscsi multipath=y */
};

/*
 * Parse one disk spec with libxlutil and classify it into *info_r. Returns 0, or ERR_INVAL
 * after logging an error that names the spec and what is wrong (syntax, IQN, portal, port or
 * LUN out of range, unknown block-iscsi parameter), ERR_NOMEM.
 */
int disk_classify(const char *spec, struct disk_info *info_r);

/* "iscsi://host:port/iqn/lun" (IPv6 hosts in brackets) for libiscsi; ERR_INVAL if local. */
int disk_iscsi_url(const struct disk_info *info, char *buf, size_t len);

/*
 * Check an iSCSI name (RFC 3720 3.2.6.3): "iqn.yyyy-mm.reversed.domain[:anything]" in lower
 * case, "eui." + 16 hex digits, "naa." + 16 or 32 hex digits, at most 223 bytes. Returns 1 if
 * valid; else 0 and *why_r (if not NULL) says what is wrong.
 */
int disk_iqn_valid(const char *iqn, const char **why_r);

/*
 * Parse a portal "ip[:port]" or "[ipv6][:port]" into host (no brackets) and port (default
 * 3260). Returns 0 or ERR_INVAL with *why_r set.
 */
int disk_portal_parse(const char *portal, char *host, size_t hostlen, unsigned *port_r,
                      const char **why_r);

/*
 * Migration pre-flight: among n classified disks, find the first local writable one. Returns
 * 0 when every writable disk is a shared iSCSI LUN. Otherwise, with allow_local 0 it logs an
 * error naming the disk and returns ERR_NOTSUP; with allow_local 1 it logs a warning per local
 * writable disk (it is not moved) and returns 0.
 */
int disk_check_migratable(const char *domain, const struct disk_info *disks, unsigned n,
                          int allow_local);

const char *disk_kind_name(enum disk_kind kind);

#endif
