/*
 * sgio.h - SCSI commands on a kernel block device with the SG_IO ioctl (the sg v3 interface,
 * <scsi/sg.h>): persistent reservations, LUN identity and block I/O through the session of
 * the kernel initiator (open-iscsi), the one the guest's writes go through on a real dom0.
 *
 * A persistent-reservation registration belongs to an I_T nexus. On a real dom0 blkback writes
 * the guest's disk through the kernel's iSCSI session (/dev/sdX behind
 * /dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<n>); a key registered from a separate
 * libiscsi session does not let that session write under WRITE EXCLUSIVE - REGISTRANTS ONLY.
 * So on the xen backend the PR commands go through the block device itself.
 *
 * Two layers:
 *   - pure builders and parsers (no I/O): CDBs and the PR OUT parameter list laid out as in
 *     SPC-4 / SBC-3, PR IN, VPD 0x83 and READ CAPACITY(16) data, sense (fixed and descriptor
 *     format), and the mapping of a command's outcome to the project's error codes
 *     (RESERVATION CONFLICT -> ERR_CONFLICT, as iscsi.c does). Every parser is bounded by the
 *     buffer it is given, whatever the lengths inside the data claim.
 *   - a thin runner: one SG_IO ioctl per command on an fd opened O_RDWR | O_NONBLOCK on the
 *     block device, bounded by a timeout, unit attentions retried a few times. The ioctl is a
 *     function pointer so that tests replay targets without kernel SCSI.
 * Linux only; independent of libiscsi. SG_IO with PERSISTENT RESERVE OUT needs
 * CAP_SYS_RAWIO (root), as the kernel filters SCSI commands for other callers.
 */
#ifndef XLEXT_STORAGE_SGIO_H
#define XLEXT_STORAGE_SGIO_H

#include <stddef.h>
#include <stdint.h>

#include "xl-ext/storage/lunid.h"
#include "xl-ext/storage/owner.h"

/* Operation codes (SPC-4, SBC-3). */
#define SGIO_OP_INQUIRY           0x12
#define SGIO_OP_PR_IN             0x5e
#define SGIO_OP_PR_OUT            0x5f
#define SGIO_OP_READ16            0x88
#define SGIO_OP_WRITE16           0x8a
#define SGIO_OP_SERVICE_ACTION_IN 0x9e
#define SGIO_SA_READ_CAPACITY16   0x10

/* PERSISTENT RESERVE IN / OUT service actions (SPC-4 6.15, 6.16). */
#define SGIO_PRIN_READ_KEYS        0x00
#define SGIO_PRIN_READ_RESERVATION 0x01
#define SGIO_PROUT_REGISTER        0x00
#define SGIO_PROUT_RESERVE         0x01
#define SGIO_PROUT_RELEASE         0x02
#define SGIO_PROUT_CLEAR           0x03
#define SGIO_PROUT_PREEMPT         0x04
#define SGIO_PROUT_REGISTER_IGNORE 0x06 /* REGISTER AND IGNORE EXISTING KEY */
#define SGIO_PROUT_PARAM_LEN       24   /* the basic parameter list */

/* SCSI status bytes (SAM-5). */
#define SGIO_STATUS_GOOD                 0x00
#define SGIO_STATUS_CHECK_CONDITION      0x02
#define SGIO_STATUS_BUSY                 0x08
#define SGIO_STATUS_RESERVATION_CONFLICT 0x18
#define SGIO_STATUS_TASK_SET_FULL        0x28

/* Sense keys. */
#define SGIO_SENSE_NOT_READY       0x2
#define SGIO_SENSE_MEDIUM_ERROR    0x3
#define SGIO_SENSE_ILLEGAL_REQUEST 0x5
#define SGIO_SENSE_UNIT_ATTENTION  0x6
#define SGIO_SENSE_DATA_PROTECT    0x7
#define SGIO_SENSE_ABORTED_COMMAND 0xb

#define SGIO_SENSE_MAX 64

/* --- builders: fill cdb (and param), return the CDB length or a negative error --------- */

/*
 * PERSISTENT RESERVE OUT for one state-machine command (owner.h): REGISTER and UNREGISTER
 * are REGISTER AND IGNORE EXISTING KEY with the service action key = key or 0; RESERVE,
 * RELEASE and PREEMPT carry the type; CLEAR none; scope LU. cdb gets 10 bytes, param the
 * 24-byte basic parameter list. ERR_INVAL for OWN_OP_NONE / OWN_OP_VERIFY.
 */
int sgio_build_pr_out(const struct own_cmd *cmd, uint8_t cdb[10],
                      uint8_t param[SGIO_PROUT_PARAM_LEN]);

/* PERSISTENT RESERVE IN (READ KEYS or READ RESERVATION), allocation length alloc. 10. */
int sgio_build_pr_in(uint8_t service_action, uint16_t alloc, uint8_t cdb[10]);

/* INQUIRY with EVPD for page (0x83: device identification). 6. */
int sgio_build_inquiry_vpd(uint8_t page, uint16_t alloc, uint8_t cdb[6]);

/* READ CAPACITY(16) (SERVICE ACTION IN 0x10), allocation length alloc. 16. */
int sgio_build_read_capacity16(uint32_t alloc, uint8_t cdb[16]);

/* READ(16) or WRITE(16) of nblocks from lba. 16. */
int sgio_build_rw16(int write, uint64_t lba, uint32_t nblocks, uint8_t cdb[16]);

/* --- parsers: bounded by len; lengths in the data that exceed it are not trusted ------- */

/*
 * READ KEYS data into view->keys / view->nkeys (other fields untouched). *needed_r (if not
 * NULL) gets the length the target wanted to return (8 + ADDITIONAL LENGTH): more than len
 * means the list was cut by the allocation length and only the whole keys in buf were taken.
 * ERR_PROTO when shorter than the 8-byte header or the additional length is not a multiple
 * of 8; ERR_NOSPACE when more than OWN_MAX_KEYS keys are registered.
 */
int sgio_parse_read_keys(const uint8_t *buf, size_t len, struct own_view *view, size_t *needed_r);

/*
 * READ RESERVATION data into view->reserved / holder / type. ERR_PROTO when shorter than
 * the header, or when a reservation is announced (ADDITIONAL LENGTH >= 16) but its 16 bytes
 * are not all in buf.
 */
int sgio_parse_read_reservation(const uint8_t *buf, size_t len, struct own_view *view);

/*
 * VPD page 0x83 (device identification) into the designators of *id (logical-unit ones in
 * desig, target-port and target-device ones in port, as iscsi.c sorts them; size fields
 * untouched), normalised. Designators beyond the page length or the buffer are ignored, so
 * are those beyond LUNID_MAX_DESIG. ERR_PROTO when not page 0x83 or shorter than its header,
 * ERR_NOTSUP when there is no logical-unit designator.
 */
int sgio_parse_vpd83(const uint8_t *buf, size_t len, struct lunid *id);

/* READ CAPACITY(16) data: block count (last LBA + 1) and block size. ERR_PROTO when shorter
 * than 12 bytes or the block size is 0. */
int sgio_parse_read_capacity16(const uint8_t *buf, size_t len, uint64_t *nblocks_r,
                               uint32_t *block_size_r);

struct sgio_sense {
	int valid;      /* a recognised response code (0x70-0x73) */
	int descriptor; /* descriptor format (0x72, 0x73) */
	uint8_t key;    /* sense key */
	uint8_t asc, ascq;
};

/* Decode sense data (fixed or descriptor format); bytes beyond len are taken as 0. */
void sgio_parse_sense(const uint8_t *sb, size_t len, struct sgio_sense *sense_r);

const char *sgio_sense_key_name(uint8_t key);

/* "RESERVATIONS PREEMPTED" for the ASC/ASCQ pairs we meet, else NULL. */
const char *sgio_asc_name(uint8_t asc, uint8_t ascq);

/* What came back for one command (the parts of struct sg_io_hdr that matter). */
struct sgio_outcome {
	uint8_t status;         /* SCSI status byte */
	uint16_t host_status;   /* transport (DID_*) */
	uint16_t driver_status; /* DRIVER_* */
	struct sgio_sense sense;
};

#define SGIO_RETRY 1 /* sgio_outcome_rc: a unit attention, issue the command again */

/*
 * The project's code for an outcome: 0; ERR_CONFLICT (RESERVATION CONFLICT); SGIO_RETRY (unit
 * attention); ERR_TIMEOUT (host or driver timeout); ERR_BUSY (BUSY, TASK SET FULL);
 * ERR_NOTFOUND (LOGICAL UNIT NOT SUPPORTED); ERR_NOTSUP (other ILLEGAL REQUEST); ERR_IO
 * otherwise. Errors other than ERR_CONFLICT and SGIO_RETRY are logged naming dev and what,
 * check conditions with their sense key and ASC/ASCQ.
 */
int sgio_outcome_rc(const struct sgio_outcome *o, const char *dev, const char *what);

/* --- runner ---------------------------------------------------------------------------- */

/* ioctl(2) as the runner calls it; tests pass their own. */
typedef int (*sgio_ioctl_fn)(int fd, unsigned long request, void *arg);

struct sgio_dev;

/*
 * Open path (O_RDWR | O_NONBLOCK | O_CLOEXEC), which must be a block device (symlinks such as
 * /dev/disk/by-path/... are followed); every command is bounded by timeout_s seconds. Reads
 * the capacity. Returns 0 and *dev_r, or ERR_NOTFOUND (no such path), ERR_INVAL (not a block
 * device), ERR_PERM, ERR_NOTSUP (the device does not take SG_IO: not SCSI), each logged
 * naming path.
 */
int sgio_open(const char *path, int timeout_s, struct sgio_dev **dev_r);

/*
 * As sgio_open, on an fd already open (taken over: closed by sgio_close) and with ioctl_fn
 * instead of ioctl(2); no block-device check. For tests.
 */
int sgio_attach(int fd, const char *name, int timeout_s, sgio_ioctl_fn ioctl_fn,
                struct sgio_dev **dev_r);

/* Close and free; NULL is fine. */
void sgio_close(struct sgio_dev *dev);

/* "/dev/disk/by-path/... (kernel initiator)" for messages. */
const char *sgio_name(const struct sgio_dev *dev);
uint64_t sgio_nblocks(const struct sgio_dev *dev);
uint32_t sgio_block_size(const struct sgio_dev *dev);

/* INQUIRY VPD 0x83 + READ CAPACITY(16). */
int sgio_identity(struct sgio_dev *dev, struct lunid *id_r);

/* PERSISTENT RESERVE IN: READ KEYS and READ RESERVATION into *view_r. */
int sgio_pr_read(struct sgio_dev *dev, struct own_view *view_r);

/* PERSISTENT RESERVE OUT for one state-machine command (not OWN_OP_VERIFY). */
int sgio_pr_out(struct sgio_dev *dev, const struct own_cmd *cmd);

/* Run one command of an own_machine (own_exec_fn shape with dev as ctx). */
int sgio_pr_execute(struct sgio_dev *dev, const struct own_cmd *cmd, struct own_view *view_r);

/* READ(16) / WRITE(16) of whole blocks, at most 1 MiB. ERR_CONFLICT on RESERVATION CONFLICT. */
int sgio_read(struct sgio_dev *dev, uint64_t lba, void *buf, size_t len);
int sgio_write(struct sgio_dev *dev, uint64_t lba, const void *buf, size_t len);

#endif
