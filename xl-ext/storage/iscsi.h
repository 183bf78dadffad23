/*
 * iscsi.h - one userspace iSCSI session to one LUN (libiscsi, synchronous, bounded by a
 * timeout): LUN identity, persistent reservations, block read/write.
 *
 * Built only with libiscsi (configure: HAVE_ISCSI); lun.h puts it and the kernel's block
 * device (sgio.h) behind one interface. Only iscsi.c includes libiscsi's headers;
 * its status and sense codes are translated here: RESERVATION CONFLICT -> ERR_CONFLICT,
 * unreachable portal -> ERR_IO, unknown target or LUN -> ERR_NOTFOUND, timeout -> ERR_TIMEOUT.
 *
 * A persistent-reservation registration belongs to the I_T nexus (the session) that made it.
 * A host that owns a LUN registers its key again on every new session (REGISTER AND IGNORE
 * EXISTING KEY); one that does not own it must not (see owner.h).
 */
#ifndef XLEXT_STORAGE_ISCSI_H
#define XLEXT_STORAGE_ISCSI_H

#include <stddef.h>
#include <stdint.h>

#include "xl-ext/storage/lunid.h"
#include "xl-ext/storage/owner.h"

#define ISCSI_INITIATOR_MAX 224

struct iscsi_lun;

/*
 * The initiator name of a host: "iqn.2026-11.org.xl-ext:<hostname>", the host name lowered
 * and anything outside [a-z0-9.-] replaced by '-'. ERR_INVAL for an empty host name.
 * (Defined in lun.c, built with or without libiscsi.)
 */
int iscsi_initiator_name(const char *hostname, char *buf, size_t len);

/*
 * Log in to the LUN of url ("iscsi://host[:port]/iqn/lun") as initiator, every step bounded
 * by timeout_s seconds (TCP connect, login, each command). Returns 0 and *lun_r, or ERR_IO
 * (portal unreachable), ERR_TIMEOUT, ERR_NOTFOUND (no such target IQN or LUN), ERR_INVAL (bad
 * URL), each logged naming portal, IQN and LUN.
 */
int iscsi_lun_open(const char *url, const char *initiator, int timeout_s, struct iscsi_lun **lun_r);

/* Log out and free; NULL is fine. */
void iscsi_lun_close(struct iscsi_lun *lun);

/* "portal iqn lun N" for messages. */
const char *iscsi_lun_name(const struct iscsi_lun *lun);

/* Size of the LUN as read at open (READ CAPACITY 16). */
uint64_t iscsi_lun_nblocks(const struct iscsi_lun *lun);
uint32_t iscsi_lun_block_size(const struct iscsi_lun *lun);

/* INQUIRY VPD 0x83 + READ CAPACITY(16). */
int iscsi_lun_identity(struct iscsi_lun *lun, struct lunid *id_r);

/* Read or write whole blocks: len a multiple of the block size. ERR_CONFLICT on a
 * RESERVATION CONFLICT status. */
int iscsi_lun_read(struct iscsi_lun *lun, uint64_t lba, void *buf, size_t len);
int iscsi_lun_write(struct iscsi_lun *lun, uint64_t lba, const void *buf, size_t len);

/* PERSISTENT RESERVE IN: READ KEYS and READ RESERVATION into *view_r. */
int iscsi_pr_read(struct iscsi_lun *lun, struct own_view *view_r);

/* PERSISTENT RESERVE OUT for one state-machine command (not OWN_OP_VERIFY). */
int iscsi_pr_out(struct iscsi_lun *lun, const struct own_cmd *cmd);

/* Run one command of an own_machine: PR OUT, or for OWN_OP_VERIFY a PR IN into *view_r. */
int iscsi_pr_execute(struct iscsi_lun *lun, const struct own_cmd *cmd, struct own_view *view_r);

#endif
