/*
 * lun.c - a LUN through libiscsi or through the kernel's block device (lun.h).
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/storage/iscsi.h"
#include "xl-ext/storage/sgio.h"

/* One path's operations on its own handle. */
struct lun_ops {
	enum lun_path path;
	void (*close)(void *h);
	const char *(*name)(const void *h);
	uint64_t (*nblocks)(const void *h);
	uint32_t (*block_size)(const void *h);
	int (*identity)(void *h, struct lunid *id);
	int (*pr_read)(void *h, struct own_view *view);
	int (*pr_out)(void *h, const struct own_cmd *cmd);
	int (*read)(void *h, uint64_t lba, void *buf, size_t len);
	int (*write)(void *h, uint64_t lba, const void *buf, size_t len);
};

struct lun {
	const struct lun_ops *ops;
	void *h;
};

/* clang-format off */
static void k_close(void *h) { sgio_close(h); }
static const char *k_name(const void *h) { return sgio_name(h); }
static uint64_t k_nblocks(const void *h) { return sgio_nblocks(h); }
static uint32_t k_block_size(const void *h) { return sgio_block_size(h); }
static int k_identity(void *h, struct lunid *id) { return sgio_identity(h, id); }
static int k_pr_read(void *h, struct own_view *v) { return sgio_pr_read(h, v); }
static int k_pr_out(void *h, const struct own_cmd *c) { return sgio_pr_out(h, c); }
static int k_read(void *h, uint64_t lba, void *b, size_t l) { return sgio_read(h, lba, b, l); }
static int k_write(void *h, uint64_t lba, const void *b, size_t l) { return sgio_write(h, lba, b, l); }
/* clang-format on */

static const struct lun_ops kernel_ops = {
    LUN_PATH_KERNEL, k_close,   k_name,   k_nblocks, k_block_size,
    k_identity,      k_pr_read, k_pr_out, k_read,    k_write,
};

#ifdef XLEXT_HAVE_ISCSI
/* clang-format off */
static void i_close(void *h) { iscsi_lun_close(h); }
static const char *i_name(const void *h) { return iscsi_lun_name(h); }
static uint64_t i_nblocks(const void *h) { return iscsi_lun_nblocks(h); }
static uint32_t i_block_size(const void *h) { return iscsi_lun_block_size(h); }
static int i_identity(void *h, struct lunid *id) { return iscsi_lun_identity(h, id); }
static int i_pr_read(void *h, struct own_view *v) { return iscsi_pr_read(h, v); }
static int i_pr_out(void *h, const struct own_cmd *c) { return iscsi_pr_out(h, c); }
static int i_read(void *h, uint64_t lba, void *b, size_t l) { return iscsi_lun_read(h, lba, b, l); }
static int i_write(void *h, uint64_t lba, const void *b, size_t l) { return iscsi_lun_write(h, lba, b, l); }
/* clang-format on */

static const struct lun_ops iscsi_ops = {
    LUN_PATH_LIBISCSI, i_close,   i_name,   i_nblocks, i_block_size,
    i_identity,        i_pr_read, i_pr_out, i_read,    i_write,
};

static int open_url(const char *url, const char *initiator, int timeout_s, void **h_r,
                    const struct lun_ops **ops_r)
{
	struct iscsi_lun *l = NULL;
	int rc = iscsi_lun_open(url, initiator, timeout_s, &l);

	*h_r = l;
	*ops_r = &iscsi_ops;
	return rc;
}
#else
static int open_url(const char *url, const char *initiator, int timeout_s, void **h_r,
                    const struct lun_ops **ops_r)
{
	(void)initiator;
	(void)timeout_s;
	(void)h_r;
	(void)ops_r;
	(void)url;
	return ERR_NOTSUP; /* the caller says what it skips */
}
#endif

bool lun_have_libiscsi(void)
{
#ifdef XLEXT_HAVE_ISCSI
	return true;
#else
	return false;
#endif
}

/* Declared in iscsi.h; defined here, which is built without libiscsi too. */
int iscsi_initiator_name(const char *hostname, char *buf, size_t len)
{
	static const char prefix[] = "iqn.2026-11.org.xl-ext:";
	size_t n = sizeof(prefix) - 1, i;

	if (!hostname || !*hostname || len < n + 2)
		return ERR_INVAL;
	memcpy(buf, prefix, n);
	for (i = 0; hostname[i] && n + 1 < len && n < ISCSI_INITIATOR_MAX - 1; i++) {
		unsigned char c = (unsigned char)tolower((unsigned char)hostname[i]);

		buf[n++] = (char)(isalnum(c) || c == '.' || c == '-' ? c : '-');
	}
	buf[n] = '\0';
	return 0;
}

int lun_open(const char *target, const char *initiator, int timeout_s, struct lun **lun_r)
{
	struct lun *lun;
	int rc;

	*lun_r = NULL;
	lun = calloc(1, sizeof(*lun));
	if (!lun)
		return ERR_NOMEM;
	if (!strncmp(target, "iscsi://", 8)) {
		rc = open_url(target, initiator, timeout_s, &lun->h, &lun->ops);
	} else if (target[0] == '/') {
		struct sgio_dev *dev = NULL;

		rc = sgio_open(target, timeout_s, &dev);
		lun->h = dev;
		lun->ops = &kernel_ops;
	} else {
		log_error(
		    "'%s': neither an iscsi://host[:port]/iqn/lun URL nor a block device path",
		    target);
		rc = ERR_INVAL;
	}
	if (rc) {
		free(lun);
		return rc;
	}
	*lun_r = lun;
	return 0;
}

void lun_close(struct lun *lun)
{
	if (!lun)
		return;
	lun->ops->close(lun->h);
	free(lun);
}

enum lun_path lun_path(const struct lun *lun)
{
	return lun->ops->path;
}

const char *lun_path_name(enum lun_path path)
{
	return path == LUN_PATH_KERNEL ? "kernel" : "libiscsi";
}

const char *lun_name(const struct lun *lun)
{
	return lun->ops->name(lun->h);
}

uint64_t lun_nblocks(const struct lun *lun)
{
	return lun->ops->nblocks(lun->h);
}

uint32_t lun_block_size(const struct lun *lun)
{
	return lun->ops->block_size(lun->h);
}

int lun_identity(struct lun *lun, struct lunid *id_r)
{
	return lun->ops->identity(lun->h, id_r);
}

int lun_pr_read(struct lun *lun, struct own_view *view_r)
{
	return lun->ops->pr_read(lun->h, view_r);
}

int lun_pr_out(struct lun *lun, const struct own_cmd *cmd)
{
	return lun->ops->pr_out(lun->h, cmd);
}

int lun_pr_execute(void *ctx, const struct own_cmd *cmd, struct own_view *view_r)
{
	struct lun *lun = ctx;

	if (cmd->op == OWN_OP_VERIFY)
		return lun_pr_read(lun, view_r);
	return lun_pr_out(lun, cmd);
}

int lun_read(struct lun *lun, uint64_t lba, void *buf, size_t len)
{
	return lun->ops->read(lun->h, lba, buf, len);
}

int lun_write(struct lun *lun, uint64_t lba, const void *buf, size_t len)
{
	return lun->ops->write(lun->h, lba, buf, len);
}

int lun_choose(const struct disk_info *d, int kernel, int login, const struct lun_choice_env *env,
               char *target, enum lun_path *path_r)
{
	const struct iscsiadm_ops *adm = env && env->iscsiadm ? env->iscsiadm : &iscsiadm_system;
	int timeout_s = env && env->login_timeout_s > 0 ? env->login_timeout_s : 20;
	char dev[LUN_TARGET_MAX];
	int rc;

	if (d->kind != DISK_ISCSI)
		return ERR_INVAL;
	*path_r = LUN_PATH_LIBISCSI;
	if (!kernel)
		return disk_iscsi_url(d, target, LUN_TARGET_MAX);
	if (d->form == DISK_FORM_BYPATH && !strncmp(d->target, "/dev/", 5) &&
	    strlen(d->target) < sizeof(dev))
		memcpy(dev, d->target, strlen(d->target) + 1);
	else if (iscsiadm_device_path(d, dev, sizeof(dev)))
		return ERR_INVAL;
	if (d->form == DISK_FORM_BYPATH && login) {
		rc = iscsiadm_ensure_login(adm, d, timeout_s, NULL);
		if (rc)
			return rc;
	}
	if (d->form == DISK_FORM_BYPATH || adm->exists(adm->ctx, dev)) {
		snprintf(target, LUN_TARGET_MAX, "%s", dev);
		*path_r = LUN_PATH_KERNEL;
		return 0;
	}
	log_warn("disk %s ('%s'): no kernel session yet (%s is missing; block-iscsi logs in when "
	         "the domain's disk is attached): using a libiscsi session of our own, whose "
	         "registration does not cover the guest's",
	         d->vdev, d->spec, dev);
	return disk_iscsi_url(d, target, LUN_TARGET_MAX);
}
