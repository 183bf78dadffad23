/*
 * sgio.c - SCSI persistent reservations, identity and block I/O on a kernel block device
 * through SG_IO (sgio.h). Builders and parsers are pure; the runner is one ioctl per command.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <scsi/sg.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/sgio.h"

#define UA_RETRIES      4 /* unit attentions (reset, reservations preempted...) to skip */
#define PR_IN_LEN       4096
#define PR_IN_LEN_MAX   65535 /* PR IN's allocation length is 16 bits */
#define VPD_LEN         1024
#define RC16_LEN        32
#define IO_MAX          (1024 * 1024)
#define HOST_TIME_OUT   0x03 /* DID_TIME_OUT */
#define DRIVER_MASK     0x0f
#define DRIVER_TIMEOUT_ 0x06 /* DRIVER_TIMEOUT */

struct sgio_dev {
	int fd;
	int timeout_ms;
	sgio_ioctl_fn ioctl_fn;
	uint64_t nblocks;
	uint32_t block_size;
	char name[600];
};

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* --- builders ----------------------------------------------------------------------------- */

int sgio_build_pr_out(const struct own_cmd *cmd, uint8_t cdb[10],
                      uint8_t param[SGIO_PROUT_PARAM_LEN])
{
	uint8_t sa, type = 0;
	uint64_t key = cmd->key, sa_key = 0;

	switch (cmd->op) {
	case OWN_OP_REGISTER:
	case OWN_OP_UNREGISTER:
		sa = SGIO_PROUT_REGISTER_IGNORE;
		key = 0; /* ignored by the target: whatever this nexus had is replaced */
		sa_key = cmd->op == OWN_OP_REGISTER ? cmd->key : 0;
		break;
	case OWN_OP_RESERVE:
		sa = SGIO_PROUT_RESERVE;
		type = (uint8_t)cmd->type;
		break;
	case OWN_OP_RELEASE:
		sa = SGIO_PROUT_RELEASE;
		type = (uint8_t)cmd->type;
		break;
	case OWN_OP_PREEMPT:
		sa = SGIO_PROUT_PREEMPT;
		type = (uint8_t)cmd->type;
		sa_key = cmd->sa_key;
		break;
	case OWN_OP_CLEAR:
		sa = SGIO_PROUT_CLEAR;
		break;
	default:
		return ERR_INVAL;
	}
	memset(cdb, 0, 10);
	cdb[0] = SGIO_OP_PR_OUT;
	cdb[1] = sa;
	cdb[2] = (uint8_t)(type & 0x0f); /* scope 0: logical unit */
	put_be32(cdb + 5, SGIO_PROUT_PARAM_LEN);
	memset(param, 0, SGIO_PROUT_PARAM_LEN);
	put_be64(param, key);
	put_be64(param + 8, sa_key);
	/* byte 20: SPEC_I_PT, ALL_TG_PT, APTPL all 0: this nexus only, not persistent through
	 * power loss (tgt and LIO keep registrations in memory the same way) */
	return 10;
}

int sgio_build_pr_in(uint8_t service_action, uint16_t alloc, uint8_t cdb[10])
{
	memset(cdb, 0, 10);
	cdb[0] = SGIO_OP_PR_IN;
	cdb[1] = service_action & 0x1f;
	put_be16(cdb + 7, alloc);
	return 10;
}

int sgio_build_inquiry_vpd(uint8_t page, uint16_t alloc, uint8_t cdb[6])
{
	memset(cdb, 0, 6);
	cdb[0] = SGIO_OP_INQUIRY;
	cdb[1] = 0x01; /* EVPD */
	cdb[2] = page;
	put_be16(cdb + 3, alloc);
	return 6;
}

int sgio_build_read_capacity16(uint32_t alloc, uint8_t cdb[16])
{
	memset(cdb, 0, 16);
	cdb[0] = SGIO_OP_SERVICE_ACTION_IN;
	cdb[1] = SGIO_SA_READ_CAPACITY16;
	put_be32(cdb + 10, alloc);
	return 16;
}

int sgio_build_rw16(int write, uint64_t lba, uint32_t nblocks, uint8_t cdb[16])
{
	memset(cdb, 0, 16);
	cdb[0] = write ? SGIO_OP_WRITE16 : SGIO_OP_READ16;
	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, nblocks);
	return 16;
}

/* --- parsers ------------------------------------------------------------------------------ */

int sgio_parse_read_keys(const uint8_t *buf, size_t len, struct own_view *view, size_t *needed_r)
{
	uint32_t addl;
	size_t avail, n;

	if (needed_r)
		*needed_r = 0;
	if (len < 8)
		return ERR_PROTO;
	addl = get_be32(buf + 4);
	if (needed_r)
		*needed_r = 8 + (size_t)addl;
	if (addl % 8)
		return ERR_PROTO;
	avail = len - 8 < addl ? len - 8 : addl;
	n = avail / 8;
	if (n > OWN_MAX_KEYS || addl / 8 > OWN_MAX_KEYS)
		return ERR_NOSPACE;
	view->nkeys = (unsigned)n;
	for (size_t i = 0; i < n; i++)
		view->keys[i] = get_be64(buf + 8 + 8 * i);
	return 0;
}

int sgio_parse_read_reservation(const uint8_t *buf, size_t len, struct own_view *view)
{
	uint32_t addl;

	if (len < 8)
		return ERR_PROTO;
	addl = get_be32(buf + 4);
	view->reserved = 0;
	view->holder = 0;
	view->type = 0;
	if (addl == 0)
		return 0;
	if (addl < 16 || len < 24)
		return ERR_PROTO;
	view->reserved = 1;
	view->holder = get_be64(buf + 8);
	view->type = buf[21] & 0x0f;
	return 0;
}

int sgio_parse_vpd83(const uint8_t *buf, size_t len, struct lunid *id)
{
	size_t end, off;

	if (len < 4 || buf[1] != 0x83)
		return ERR_PROTO;
	end = 4 + (size_t)(buf[2] << 8 | buf[3]);
	if (end > len)
		end = len;
	id->ndesig = 0;
	id->nport = 0;
	for (off = 4; off + 4 <= end;) {
		size_t dlen = buf[off + 3];
		unsigned assoc = (buf[off + 1] >> 4) & 0x3;
		int lu = assoc == 0;
		unsigned *n = lu ? &id->ndesig : &id->nport;
		struct lunid_desig *d = lu ? &id->desig[*n] : &id->port[*n];

		if (off + 4 + dlen > end)
			break; /* cut by the page length or the buffer */
		if (*n < LUNID_MAX_DESIG) {
			d->association = (uint8_t)assoc;
			d->type = buf[off + 1] & 0x0f;
			d->code_set = buf[off] & 0x0f;
			d->len = (uint8_t)dlen;
			memcpy(d->data, buf + off + 4, dlen);
			(*n)++;
		}
		off += 4 + dlen;
	}
	if (id->ndesig == 0)
		return ERR_NOTSUP;
	lunid_normalise(id);
	return 0;
}

int sgio_parse_read_capacity16(const uint8_t *buf, size_t len, uint64_t *nblocks_r,
                               uint32_t *block_size_r)
{
	uint32_t bs;

	if (len < 12)
		return ERR_PROTO;
	bs = get_be32(buf + 8);
	if (bs == 0)
		return ERR_PROTO;
	*nblocks_r = get_be64(buf) + 1;
	*block_size_r = bs;
	return 0;
}

void sgio_parse_sense(const uint8_t *sb, size_t len, struct sgio_sense *s)
{
	uint8_t b[14] = {0};

	memset(s, 0, sizeof(*s));
	if (sb && len)
		memcpy(b, sb, len < sizeof(b) ? len : sizeof(b));
	switch (b[0] & 0x7f) {
	case 0x70:
	case 0x71:
		s->valid = 1;
		s->key = b[2] & 0x0f;
		/* ASC and ASCQ are there only if the additional length reaches them */
		if (len >= 14 && b[7] >= 6) {
			s->asc = b[12];
			s->ascq = b[13];
		}
		break;
	case 0x72:
	case 0x73:
		s->valid = 1;
		s->descriptor = 1;
		s->key = b[1] & 0x0f;
		s->asc = b[2];
		s->ascq = b[3];
		break;
	default:
		break;
	}
}

const char *sgio_sense_key_name(uint8_t key)
{
	static const char *const names[16] = {
	    "NO SENSE",       "RECOVERED ERROR", "NOT READY",      "MEDIUM ERROR",
	    "HARDWARE ERROR", "ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT",
	    "BLANK CHECK",    "VENDOR SPECIFIC", "COPY ABORTED",   "ABORTED COMMAND",
	    "RESERVED (0xc)", "VOLUME OVERFLOW", "MISCOMPARE",     "COMPLETED",
	};

	return names[key & 0x0f];
}

const char *sgio_asc_name(uint8_t asc, uint8_t ascq)
{
	static const struct {
		uint8_t asc, ascq;
		const char *name;
	} t[] = {
	    {0x04, 0x00, "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE"},
	    {0x04, 0x0a, "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION"},
	    {0x20, 0x00, "INVALID COMMAND OPERATION CODE"},
	    {0x21, 0x00, "LOGICAL BLOCK ADDRESS OUT OF RANGE"},
	    {0x24, 0x00, "INVALID FIELD IN CDB"},
	    {0x25, 0x00, "LOGICAL UNIT NOT SUPPORTED"},
	    {0x26, 0x00, "INVALID FIELD IN PARAMETER LIST"},
	    {0x27, 0x00, "WRITE PROTECTED"},
	    {0x28, 0x00, "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED"},
	    {0x29, 0x00, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"},
	    {0x29, 0x07, "I_T NEXUS LOSS OCCURRED"},
	    {0x2a, 0x03, "RESERVATIONS PREEMPTED"},
	    {0x2a, 0x04, "RESERVATIONS RELEASED"},
	    {0x2a, 0x05, "REGISTRATIONS PREEMPTED"},
	    {0x2a, 0x09, "CAPACITY DATA HAS CHANGED"},
	    {0x3f, 0x0e, "REPORTED LUNS DATA HAS CHANGED"},
	    {0x55, 0x04, "INSUFFICIENT REGISTRATION RESOURCES"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].asc == asc && t[i].ascq == ascq)
			return t[i].name;
	return NULL;
}

int sgio_outcome_rc(const struct sgio_outcome *o, const char *dev, const char *what)
{
	const struct sgio_sense *s = &o->sense;
	const char *asc;

	if (o->host_status == HOST_TIME_OUT ||
	    (o->driver_status & DRIVER_MASK) == DRIVER_TIMEOUT_) {
		log_error("%s: %s timed out", dev, what);
		return ERR_TIMEOUT;
	}
	if (o->host_status) {
		log_error("%s: %s: transport error (host status 0x%x): is the iSCSI session up? "
		          "(iscsiadm -m session)",
		          dev, what, (unsigned)o->host_status);
		return ERR_IO;
	}
	switch (o->status) {
	case SGIO_STATUS_GOOD:
		return 0;
	case SGIO_STATUS_RESERVATION_CONFLICT:
		log_debug("%s: %s: reservation conflict", dev, what);
		return ERR_CONFLICT;
	case SGIO_STATUS_BUSY:
	case SGIO_STATUS_TASK_SET_FULL:
		log_error("%s: %s: target busy (status 0x%02x)", dev, what, (unsigned)o->status);
		return ERR_BUSY;
	case SGIO_STATUS_CHECK_CONDITION:
		break;
	default:
		log_error("%s: %s: SCSI status 0x%02x", dev, what, (unsigned)o->status);
		return ERR_IO;
	}
	asc = sgio_asc_name(s->asc, s->ascq);
	if (s->valid && s->key == SGIO_SENSE_UNIT_ATTENTION) {
		log_debug("%s: %s: unit attention %s", dev, what, asc ? asc : "");
		return SGIO_RETRY;
	}
	if (!s->valid) {
		log_error("%s: %s failed: check condition without usable sense data", dev, what);
		return ERR_IO;
	}
	log_error("%s: %s failed: %s, ASC/ASCQ 0x%02x/0x%02x%s%s", dev, what,
	          sgio_sense_key_name(s->key), (unsigned)s->asc, (unsigned)s->ascq, asc ? " " : "",
	          asc ? asc : "");
	if (s->key == SGIO_SENSE_ILLEGAL_REQUEST && s->asc == 0x25)
		return ERR_NOTFOUND;
	return s->key == SGIO_SENSE_ILLEGAL_REQUEST ? ERR_NOTSUP : ERR_IO;
}

/* --- runner ------------------------------------------------------------------------------- */

static int sys_ioctl(int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg);
}

/*
 * One command: dir SG_DXFER_{NONE,TO_DEV,FROM_DEV}; *got_r (if not NULL) the bytes actually
 * transferred. Unit attentions are retried. Returns sgio_outcome_rc's code or an ioctl error.
 */
static int run(struct sgio_dev *dev, int dir, const uint8_t *cdb, int cdb_len, void *buf,
               size_t len, size_t *got_r, const char *what)
{
	for (int attempt = 0;; attempt++) {
		uint8_t sense[SGIO_SENSE_MAX] = {0};
		struct sg_io_hdr h;
		struct sgio_outcome o = {0};
		int rc;

		memset(&h, 0, sizeof(h));
		h.interface_id = 'S';
		h.dxfer_direction = dir;
		h.cmd_len = (unsigned char)cdb_len;
		h.cmdp = (unsigned char *)cdb;
		h.dxfer_len = (unsigned)len;
		h.dxferp = len ? buf : NULL;
		h.mx_sb_len = sizeof(sense);
		h.sbp = sense;
		h.timeout = (unsigned)dev->timeout_ms;
		if (dev->ioctl_fn(dev->fd, SG_IO, &h) < 0) {
			int e = errno;

			if (e == ENOTTY || e == EINVAL) {
				log_error(
				    "%s: %s: the device does not take SCSI commands (SG_IO: %s); "
				    "is it an iSCSI disk?",
				    dev->name, what, strerror(e));
				return ERR_NOTSUP;
			}
			if (e == EPERM || e == EACCES) {
				log_error(
				    "%s: %s: %s; persistent-reservation commands through SG_IO "
				    "need root (CAP_SYS_RAWIO)",
				    dev->name, what, strerror(e));
				return ERR_PERM;
			}
			log_error("%s: %s: SG_IO: %s", dev->name, what, strerror(e));
			return err_from_errno(e);
		}
		o.status = h.status;
		o.host_status = h.host_status;
		o.driver_status = h.driver_status;
		sgio_parse_sense(sense, h.sb_len_wr < sizeof(sense) ? h.sb_len_wr : sizeof(sense),
		                 &o.sense);
		rc = sgio_outcome_rc(&o, dev->name, what);
		if (rc == SGIO_RETRY && attempt < UA_RETRIES)
			continue;
		if (rc == SGIO_RETRY) {
			log_error("%s: %s: unit attention after %d retries", dev->name, what,
			          UA_RETRIES);
			return ERR_IO;
		}
		if (got_r)
			*got_r =
			    h.resid > 0 && (size_t)h.resid <= len ? len - (size_t)h.resid : len;
		return rc;
	}
}

static int read_capacity(struct sgio_dev *dev)
{
	uint8_t cdb[16], data[RC16_LEN] = {0};
	size_t got = 0;
	int rc;

	sgio_build_read_capacity16(sizeof(data), cdb);
	rc = run(dev, SG_DXFER_FROM_DEV, cdb, 16, data, sizeof(data), &got, "READ CAPACITY(16)");
	if (rc)
		return rc;
	rc = sgio_parse_read_capacity16(data, got, &dev->nblocks, &dev->block_size);
	if (rc)
		log_error("%s: cannot decode READ CAPACITY(16) data (%zu bytes)", dev->name, got);
	return rc;
}

int sgio_attach(int fd, const char *name, int timeout_s, sgio_ioctl_fn ioctl_fn,
                struct sgio_dev **dev_r)
{
	struct sgio_dev *dev;
	int rc;

	*dev_r = NULL;
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		close(fd);
		return ERR_NOMEM;
	}
	dev->fd = fd;
	dev->timeout_ms = (timeout_s > 0 ? timeout_s : 10) * 1000;
	dev->ioctl_fn = ioctl_fn ? ioctl_fn : sys_ioctl;
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	rc = read_capacity(dev);
	if (rc) {
		sgio_close(dev);
		return rc;
	}
	log_debug("%s: %" PRIu64 " blocks of %u bytes", dev->name, dev->nblocks, dev->block_size);
	*dev_r = dev;
	return 0;
}

int sgio_open(const char *path, int timeout_s, struct sgio_dev **dev_r)
{
	struct stat st;
	int fd, rc;

	*dev_r = NULL;
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = err_from_errno(errno);
		log_error("%s: cannot open the disk's block device: %s%s", path, strerror(errno),
		          errno == ENOENT ? " (no iSCSI session for it? iscsiadm -m session)" : "");
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode)) {
		log_error("%s: not a block device; give the LUN's /dev/disk/by-path/ip-...-lun-N "
		          "device or an iscsi:// URL",
		          path);
		close(fd);
		return ERR_INVAL;
	}
	return sgio_attach(fd, path, timeout_s, NULL, dev_r);
}

void sgio_close(struct sgio_dev *dev)
{
	if (!dev)
		return;
	if (dev->fd >= 0)
		close(dev->fd);
	free(dev);
}

const char *sgio_name(const struct sgio_dev *dev)
{
	return dev->name;
}

uint64_t sgio_nblocks(const struct sgio_dev *dev)
{
	return dev->nblocks;
}

uint32_t sgio_block_size(const struct sgio_dev *dev)
{
	return dev->block_size;
}

int sgio_identity(struct sgio_dev *dev, struct lunid *id_r)
{
	uint8_t cdb[6], *page = calloc(1, VPD_LEN);
	size_t got = 0;
	int rc;

	memset(id_r, 0, sizeof(*id_r));
	if (!page)
		return ERR_NOMEM;
	sgio_build_inquiry_vpd(0x83, VPD_LEN, cdb);
	rc = run(dev, SG_DXFER_FROM_DEV, cdb, 6, page, VPD_LEN, &got, "INQUIRY VPD 0x83");
	if (rc)
		goto out;
	rc = sgio_parse_vpd83(page, got, id_r);
	if (rc == ERR_NOTSUP)
		log_error("%s: the device identification page has no logical-unit designator",
		          dev->name);
	else if (rc)
		log_error("%s: cannot decode the device identification page", dev->name);
	if (rc)
		goto out;
	rc = read_capacity(dev);
	if (rc)
		goto out;
	id_r->nblocks = dev->nblocks;
	id_r->block_size = dev->block_size;
out:
	free(page);
	return rc;
}

/* READ KEYS, once more with the length the target asked for if the first read was cut. */
static int read_keys(struct sgio_dev *dev, struct own_view *view)
{
	size_t alloc = PR_IN_LEN, got = 0, needed = 0;
	uint8_t cdb[10], *data = NULL;
	int rc = 0;

	for (int pass = 0; pass < 2; pass++) {
		free(data);
		data = calloc(1, alloc);
		if (!data)
			return ERR_NOMEM;
		sgio_build_pr_in(SGIO_PRIN_READ_KEYS, (uint16_t)alloc, cdb);
		rc = run(dev, SG_DXFER_FROM_DEV, cdb, 10, data, alloc, &got,
		         "PERSISTENT RESERVE IN (READ KEYS)");
		if (rc)
			break;
		rc = sgio_parse_read_keys(data, got, view, &needed);
		if (rc || needed <= got)
			break;
		if (pass == 1 || needed > PR_IN_LEN_MAX) {
			rc = ERR_PROTO;
			break;
		}
		alloc = needed;
	}
	if (rc == ERR_NOSPACE)
		log_error("%s: more than %d registrations: not a LUN this tool manages", dev->name,
		          OWN_MAX_KEYS);
	else if (rc == ERR_PROTO)
		log_error("%s: cannot decode PERSISTENT RESERVE IN (READ KEYS) data", dev->name);
	free(data);
	return rc;
}

int sgio_pr_read(struct sgio_dev *dev, struct own_view *view_r)
{
	uint8_t cdb[10], data[64] = {0};
	size_t got = 0;
	int rc;

	memset(view_r, 0, sizeof(*view_r));
	rc = read_keys(dev, view_r);
	if (rc)
		return rc;
	sgio_build_pr_in(SGIO_PRIN_READ_RESERVATION, sizeof(data), cdb);
	rc = run(dev, SG_DXFER_FROM_DEV, cdb, 10, data, sizeof(data), &got,
	         "PERSISTENT RESERVE IN (READ RESERVATION)");
	if (rc)
		return rc;
	rc = sgio_parse_read_reservation(data, got, view_r);
	if (rc)
		log_error("%s: cannot decode PERSISTENT RESERVE IN (READ RESERVATION) data",
		          dev->name);
	return rc;
}

int sgio_pr_out(struct sgio_dev *dev, const struct own_cmd *cmd)
{
	uint8_t cdb[10], param[SGIO_PROUT_PARAM_LEN];
	char what[96];
	int rc;

	rc = sgio_build_pr_out(cmd, cdb, param);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof(what), "PERSISTENT RESERVE OUT (%s key 0x%016" PRIx64 ")",
	         own_op_name(cmd->op), cmd->key);
	return run(dev, SG_DXFER_TO_DEV, cdb, 10, param, sizeof(param), NULL, what);
}

int sgio_pr_execute(struct sgio_dev *dev, const struct own_cmd *cmd, struct own_view *view_r)
{
	if (cmd->op == OWN_OP_VERIFY)
		return sgio_pr_read(dev, view_r);
	return sgio_pr_out(dev, cmd);
}

static int check_io(struct sgio_dev *dev, size_t len)
{
	if (!dev->block_size || len == 0 || len % dev->block_size || len > IO_MAX) {
		log_error("%s: I/O of %zu bytes is not a whole number of %u-byte blocks", dev->name,
		          len, dev->block_size);
		return ERR_INVAL;
	}
	return 0;
}

int sgio_read(struct sgio_dev *dev, uint64_t lba, void *buf, size_t len)
{
	uint8_t cdb[16];
	size_t got = 0;
	int rc = check_io(dev, len);

	if (rc)
		return rc;
	sgio_build_rw16(0, lba, (uint32_t)(len / dev->block_size), cdb);
	rc = run(dev, SG_DXFER_FROM_DEV, cdb, 16, buf, len, &got, "READ(16)");
	if (!rc && got < len) {
		log_error("%s: READ(16) at %" PRIu64 " returned %zu bytes, not %zu", dev->name, lba,
		          got, len);
		rc = ERR_IO;
	}
	return rc;
}

int sgio_write(struct sgio_dev *dev, uint64_t lba, const void *buf, size_t len)
{
	uint8_t cdb[16];
	int rc = check_io(dev, len);

	if (rc)
		return rc;
	sgio_build_rw16(1, lba, (uint32_t)(len / dev->block_size), cdb);
	return run(dev, SG_DXFER_TO_DEV, cdb, 16, (void *)buf, len, NULL, "WRITE(16)");
}
