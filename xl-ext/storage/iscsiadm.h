/*
 * iscsiadm.h - make a shared iSCSI disk's block device exist on a real dom0: log in with the
 * kernel initiator (open-iscsi's iscsiadm) when /dev/disk/by-path/... is missing.
 *
 * Xen's block-iscsi script only handles LUN 0 and fails when a session is already open; a
 * by-path disk needs a session made beforehand. For any LUN:
 *   1. /dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<n> exists: nothing to do
 *   2. iscsiadm -m discovery -t st -p <portal>
 *   3. iscsiadm -m node -T <iqn> -p <portal> --login   (exit 15, session exists, is fine)
 *   4. wait (bounded) for udev to create the device
 * Every command is run by execv with its arguments as given, never through a shell. The
 * runner is a small vtable so that tests replay transcripts without open-iscsi.
 */
#ifndef XLEXT_STORAGE_ISCSIADM_H
#define XLEXT_STORAGE_ISCSIADM_H

#include <stddef.h>

#include "xl-ext/storage/disk.h"

#define ISCSIADM_ERR_SESS_EXISTS 15 /* open-iscsi's ISCSI_ERR_SESS_EXISTS */

struct iscsiadm_ops {
	/* Run argv (argv[0] "iscsiadm"), at most timeout_s; its output (stdout and stderr) into
	 * out. Returns the exit status (>= 0) or a negative error (not found, timeout). */
	int (*run)(void *ctx, char *const argv[], int timeout_s, char *out, size_t cap);
	int (*exists)(void *ctx, const char *path); /* 1 if path exists */
	void (*sleep_ms)(void *ctx, int ms);
	void *ctx;
};

/* The real thing: fork + execv of iscsiadm found in PATH (or /usr/sbin, /sbin), stat(2). */
extern const struct iscsiadm_ops iscsiadm_system;

/* /dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<n> of an iSCSI disk (IPv6 in brackets). */
int iscsiadm_device_path(const struct disk_info *d, char *buf, size_t len);

/*
 * Steps 1-4 above for disk d, each bounded by timeout_s. Returns 0 when the device exists;
 * ERR_INVAL for a disk that is not iSCSI; ERR_IO when discovery or login fails; ERR_NOTFOUND
 * when logged in but the LUN's device does not appear - each logged naming the portal, the
 * IQN, the LUN and what to check. *made_r (if not NULL) is 1 when this call made a new
 * session to the target (no session existed: nothing else on this host used it), whatever it
 * returns: the caller logs it out again (iscsiadm_logout) if what it was for fails.
 */
int iscsiadm_ensure_login(const struct iscsiadm_ops *ops, const struct disk_info *d, int timeout_s,
                          int *made_r);

/*
 * Log out of the session to d's target (iscsiadm -m node -T <iqn> -p <portal> --logout): for
 * a session iscsiadm_ensure_login made for something that then failed (a refused migration).
 * Every LUN of the target loses its device. Returns 0 or ERR_IO (logged, naming the target).
 */
int iscsiadm_logout(const struct iscsiadm_ops *ops, const struct disk_info *d, int timeout_s);

#endif
