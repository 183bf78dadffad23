/*
 * xen.h - what the files of the xen backend share (never included outside xl-ext/xen/).
 *
 * xen_backend.c: context, logger, event hooks, domain lifecycle, the hv_ops table.
 * xen_migrate.c: the migration stream (libxl_domain_suspend / _create_restore) and resume.
 * xen_host.c:    libxenctrl (featuresets, log-dirty sampling) and libxenstore (disk backends).
 * xen_xlcfg.c:   an xl.cfg file to libxl_domain_config / its JSON (migrate -C).
 */
#ifndef XLEXT_XEN_XEN_H
#define XLEXT_XEN_XEN_H

#include <libxl.h>
#include <libxl_utils.h>
#include <xenctrl.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "xl-ext/core/hv.h"

struct xen_logger {
	xentoollog_logger vtable;
};

struct hv {
	libxl_ctx *ctx;
	xc_interface *xch;     /* opened on first use */
	struct xs_handle *xsh; /* opened on first use */
	struct xen_logger logger;
	struct loop *loop; /* libxl's osevent hooks live here when not NULL */
};

/* Translate a libxl error (ERROR_*) into a project error code. */
int xen_err(int libxl_rc);

/* The libxenctrl / libxenstore handles, opened on first use; NULL (logged) on failure. */
xc_interface *xen_xc(struct hv *hv);
struct xs_handle *xen_xs(struct hv *hv);

/* The domain's name (caller frees) or NULL. */
char *xen_domain_name(struct hv *hv, uint32_t domid);

int xen_send_stream(struct hv *hv, uint32_t domid, int fd, const struct mig_params *params,
                    struct mig_report *report);
int xen_resume(struct hv *hv, uint32_t domid);
int xen_receive_stream(struct hv *hv, int fd, const char *name, const char *config_json,
                       const struct mig_params *params, struct mig_report *report,
                       uint32_t *domid_r);

int xen_cpu_featureset(struct hv *hv, enum hv_featureset_kind kind, struct hv_featureset *fs);
const char *xen_cpu_feature_name(unsigned bit);
int xen_disk_backends(struct hv *hv, uint32_t domid, struct hv_disk **disks_r, size_t *n_r);
/* The disks' specs rebuilt from their backends (hv_disk_spec_from_backend). */
int xen_disk_specs(struct hv *hv, uint32_t domid, struct hv_disk_specs *specs);
int xen_sample_dirty(struct hv *hv, uint32_t domid, unsigned window_ms, unsigned windows,
                     struct hv_dirty_sample *out);

/* Replace the configuration's name with name. 0 or ERR_NOMEM. */
int xen_config_set_name(libxl_domain_config *cfg, const char *name);
/*
 * Before libxl attaches the disks: a by-path iSCSI disk whose device is missing here gets a
 * kernel-initiator session (iscsiadm.h); block-iscsi disks are left to Xen's script, which
 * logs in by itself. Returns 0 or the error (logged, naming domain, disk and portal).
 */
int xen_login_iscsi_disks(const libxl_domain_config *cfg, const char *name, uint64_t *made_r);
/* *made_r of xen_login_iscsi_disks gets bit i for disk i whose session the call made (none
 * existed); a failed login logs those out again itself. xen_logout_iscsi_disks logs out the
 * sessions of made, for a domain that was then not created. */
void xen_logout_iscsi_disks(const libxl_domain_config *cfg, uint64_t made);
/*
 * Once libxl attached the disks of a new domain (created, still paused), before it first
 * runs: each writable iSCSI disk's LUN is taken with this host's key on the kernel
 * initiator's session blkback writes through (lun_acquire_for_start), as a simulated guest
 * takes its LUN at boot. Returns 0, or the first failure (logged): ERR_CONFLICT when another
 * host's key holds a LUN.
 */
int xen_take_iscsi_disks(const libxl_domain_config *cfg, const char *name);
/*
 * hv_ops.create: a domain from path, either libxl_domain_config JSON (what config_json
 * gives: the configuration kept when the domain was last seen) or an xl.cfg file
 * (xen_xlcfg_parse), through libxl_domain_create_new. Refuses a name already running
 * (ERR_EXISTS). A domain libxl half-created is destroyed.
 */
int xen_create(struct hv *hv, const char *config_path, const struct hv_create_args *args,
               uint32_t *domid_r);

/*
 * Parse the xl.cfg file path into cfg (initialised by the caller, disposed by the caller on
 * every path). Returns 0; ERR_INVAL after logging the file and the key at fault; the errno
 * code of an unreadable file; ERR_NOMEM. Keys it does not convert are logged at debug level.
 */
int xen_xlcfg_parse(const char *path, libxl_domain_config *cfg);
/*
 * path as the libxl_domain_config JSON a migration sends, named name (NULL: the file's).
 * ctx may be NULL (no hypervisor needed). Caller frees *json_r. Errors as xen_xlcfg_parse.
 */
int xen_xlcfg_to_json(libxl_ctx *ctx, const char *path, const char *name, char **json_r);

#endif
