/*
 * lun.h - one way in to one LUN, whichever the path: a libiscsi session of our own
 * (iscsi.h: the sim backend, the tests, admin tools) or the kernel initiator's block device
 * through SG_IO (sgio.h: the xen backend, where blkback writes the guest's disk through the
 * kernel's session, and a persistent-reservation registration belongs to that I_T nexus).
 *
 * Both paths speak the same struct own_cmd / own_view / lunid, so owner.c's state machine and
 * handover.c run unchanged on either. The target string chooses:
 *   "iscsi://host[:port]/iqn/lun"   libiscsi (ERR_NOTSUP when built without it)
 *   "/dev/..." (any absolute path)  the kernel block device, which must be one
 */
#ifndef XLEXT_STORAGE_LUN_H
#define XLEXT_STORAGE_LUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/iscsiadm.h"
#include "xl-ext/storage/lunid.h"
#include "xl-ext/storage/owner.h"

#define LUN_TARGET_MAX 600

struct lun;

enum lun_path {
	LUN_PATH_LIBISCSI = 0, /* a session of our own */
	LUN_PATH_KERNEL = 1,   /* the kernel initiator's block device, SG_IO */
};

/*
 * Open target (see above). initiator is the iSCSI initiator name for libiscsi (ignored for a
 * device); every step is bounded by timeout_s. Returns 0 and *lun_r, or the error of
 * iscsi_lun_open / sgio_open (logged, naming the target); ERR_NOTSUP for a URL without
 * libiscsi (not logged: the caller says what it does without), ERR_INVAL for anything that is
 * neither a URL nor an absolute path.
 */
int lun_open(const char *target, const char *initiator, int timeout_s, struct lun **lun_r);

/* Whether this build opens iscsi:// URLs (libiscsi); without it only kernel devices open. */
bool lun_have_libiscsi(void);

/* Close (log out) and free; NULL is fine. */
void lun_close(struct lun *lun);

enum lun_path lun_path(const struct lun *lun);
const char *lun_path_name(enum lun_path path); /* "libiscsi", "kernel" */
const char *lun_name(const struct lun *lun);   /* for messages */
uint64_t lun_nblocks(const struct lun *lun);
uint32_t lun_block_size(const struct lun *lun);

int lun_identity(struct lun *lun, struct lunid *id_r);
int lun_pr_read(struct lun *lun, struct own_view *view_r);
int lun_pr_out(struct lun *lun, const struct own_cmd *cmd);
/* own_exec_fn with a struct lun * as ctx. */
int lun_pr_execute(void *lun, const struct own_cmd *cmd, struct own_view *view_r);
int lun_read(struct lun *lun, uint64_t lba, void *buf, size_t len);
int lun_write(struct lun *lun, uint64_t lba, const void *buf, size_t len);

/* How lun_choose finds and makes the kernel device (iscsiadm.h); NULL: the real system. */
struct lun_choice_env {
	const struct iscsiadm_ops *iscsiadm;
	int login_timeout_s;
};

/*
 * The target to open for the iSCSI disk d on this host, into target (LUN_TARGET_MAX), and
 * which path it is (*path_r). With kernel 0 (sim backend): always the iscsi:// URL. With
 * kernel 1 (xen backend, where the guest's writes go through the kernel initiator):
 *   - by-path disks: the device as the spec names it; with login 1 (a migration's receiver,
 *     before it registers), iscsiadm_ensure_login first makes the session and waits for the
 *     device - its failure is returned;
 *   - block-iscsi disks: the by-path device of d if it exists (the script has logged in:
 *     the domain runs here); otherwise the URL, logged as a warning naming the disk, since
 *     such a registration does not cover the session the script will make.
 * Returns 0, or ERR_INVAL for a local disk.
 */
int lun_choose(const struct disk_info *d, int kernel, int login, const struct lun_choice_env *env,
               char *target, enum lun_path *path_r);

/*
 * Before domain starts on this host (a create, a cold restart): take its writable iSCSI disk
 * d with this host's key (hostid.h), as a simulated guest does at boot - register, reserve
 * WRITE EXCLUSIVE - REGISTRANTS ONLY, verify this key alone holds it (owner.h's acquire flow) -
 * on the session the guest writes through (lun_choose with kernel as the backend has it, and
 * a login). Already held by this host's key (its fencer's or another session's): this session
 * is registered too. Returns 0; ERR_CONFLICT when another key holds the LUN (that host may run
 * the guest); another error when the LUN cannot be reached. Every failure is logged naming
 * domain, disk, LUN and what to do; nothing is left registered by a failed acquire.
 */
int lun_acquire_for_start(const struct disk_info *d, const char *domain, int kernel,
                          const struct lun_choice_env *env);

#endif
