/*
 * xen_backend.c - the Xen hypervisor backend (struct hv_ops "xen").
 *
 * The only file (with its siblings in xl-ext/xen/) that includes libxl, libxenctrl and
 * libxenstore headers. It opens a libxl context whose logger forwards to the project's log
 * module, and refuses cleanly, in one line, on a host without Xen.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxl.h>
#include <xentoollog.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/hv.h"

struct xen_logger {
	xentoollog_logger vtable;
};

struct hv {
	libxl_ctx *ctx;
	struct xen_logger logger;
	struct loop *loop;
};

static void xen_log_vmessage(xentoollog_logger *logger, xentoollog_level level, int errnoval,
			     const char *context, const char *format, va_list al)
{
	enum log_level lvl;
	char buf[1024];

	(void)logger;
	if (level >= XTL_ERROR)
		lvl = LOGL_ERROR;
	else if (level >= XTL_WARN)
		lvl = LOGL_WARN;
	else if (level >= XTL_INFO)
		lvl = LOGL_INFO;
	else
		lvl = LOGL_DEBUG;
	vsnprintf(buf, sizeof(buf), format, al);
	if (errnoval >= 0)
		log_msg(lvl, context ? context : "libxl", "%s: %s", buf, strerror(errnoval));
	else
		log_msg(lvl, context ? context : "libxl", "%s", buf);
}

static void xen_log_progress(xentoollog_logger *logger, const char *context,
			     const char *doing_what, int percent, unsigned long done,
			     unsigned long total)
{
	(void)logger;
	log_msg(LOGL_DEBUG, context ? context : "libxl", "%s: %d%% (%lu/%lu)", doing_what,
		percent, done, total);
}

static void xen_log_destroy(xentoollog_logger *logger)
{
	(void)logger;
}

/* Why this host cannot run the xen backend, or NULL when it looks like a Xen dom0. */
static const char *xen_absent_reason(void)
{
	if (access("/dev/xen/privcmd", F_OK) != 0 && access("/proc/xen/privcmd", F_OK) != 0)
		return "no Xen hypervisor on this host (no /dev/xen/privcmd)";
	if (access("/run/xenstored.pid", F_OK) != 0 && access("/var/run/xenstored/socket", F_OK) != 0 &&
	    access("/run/xenstored/socket", F_OK) != 0 && access("/dev/xen/xenbus", F_OK) != 0)
		return "xenstored is not running on this host";
	return NULL;
}

static int xen_open(struct hv **hv_r, struct loop *loop)
{
	const char *why = xen_absent_reason();
	struct hv *hv = NULL;
	int rc;

	if (why) {
		log_error("%s: use --backend sim, or run on a Xen dom0", why);
		return ERR_NOXEN;
	}
	hv = calloc(1, sizeof(*hv));
	if (!hv)
		return ERR_NOMEM;
	hv->loop = loop;
	hv->logger.vtable.vmessage = xen_log_vmessage;
	hv->logger.vtable.progress = xen_log_progress;
	hv->logger.vtable.destroy = xen_log_destroy;
	rc = libxl_ctx_alloc(&hv->ctx, LIBXL_VERSION, 0, &hv->logger.vtable);
	if (rc) {
		log_error("cannot open a libxl context (libxl error %d): is xencommons running?", rc);
		free(hv);
		return ERR_NOXEN;
	}
	*hv_r = hv;
	return 0;
}

static void xen_close(struct hv *hv)
{
	if (!hv)
		return;
	libxl_ctx_free(hv->ctx);
	free(hv);
}

static int xen_host_info(struct hv *hv, struct hv_host_info *info)
{
	libxl_physinfo pi;
	const libxl_version_info *vi;
	int rc;

	libxl_physinfo_init(&pi);
	rc = libxl_get_physinfo(hv->ctx, &pi);
	if (rc) {
		log_error("libxl_get_physinfo failed (libxl error %d)", rc);
		libxl_physinfo_dispose(&pi);
		return ERR_IO;
	}
	memset(info, 0, sizeof(*info));
	snprintf(info->hypervisor, sizeof(info->hypervisor), "xen");
	vi = libxl_get_version_info(hv->ctx);
	if (vi)
		snprintf(info->version, sizeof(info->version), "%d.%d", vi->xen_version_major,
			 vi->xen_version_minor);
	info->total_kib = (uint64_t)pi.total_pages * 4;
	info->free_kib = (uint64_t)pi.free_pages * 4;
	info->nr_cpus = pi.nr_cpus;
	libxl_physinfo_dispose(&pi);
	return 0;
}

const struct hv_ops xen_hv_ops = {
	.name = "xen",
	.open = xen_open,
	.close = xen_close,
	.host_info = xen_host_info,
};
