/*
 * xen_backend.c - the Xen hypervisor backend (struct hv_ops "xen"): context and lifecycle.
 *
 * With its siblings in xl-ext/xen/, the only code that includes libxl, libxenctrl and
 * libxenstore headers. It opens a libxl context whose logger forwards to the project's log
 * module, registers libxl's osevent hooks on the project's loop when the caller has one, and
 * refuses cleanly, in one line, on a host without Xen. libxl errors are translated here
 * (xen_err) so nothing above the backend sees them.
 *
 * Every libxl call is made synchronously (ao_how NULL): xl-ext runs one operation at a time
 * and libxl then runs its own poll loop inside the call, whether or not hooks are registered;
 * the hooks let a caller that owns a loop (haagent) see libxl's fds and timeouts in it.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/core/hv.h"
#include "xl-ext/xen/xen.h"

/* --- logger: libxl / libxc messages into common/log ------------------------------------- */

static void xen_log_vmessage(xentoollog_logger *logger, xentoollog_level level, int errnoval,
                             const char *context, const char *format, va_list al)
    __attribute__((format(printf, 5, 0)));
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

static void xen_log_progress(xentoollog_logger *logger, const char *context, const char *doing_what,
                             int percent, unsigned long done, unsigned long total)
{
	(void)logger;
	log_msg(LOGL_DEBUG, context ? context : "libxl", "%s: %d%% (%lu/%lu)", doing_what, percent,
	        done, total);
}

static void xen_log_destroy(xentoollog_logger *logger)
{
	(void)logger;
}

/* --- libxl's osevent hooks on the project's loop ----------------------------------------- */

struct xen_fd_reg {
	struct hv *hv;
	struct loop_fd *watch;
	void *for_libxl;
	short events;
};

struct xen_timeout_reg {
	struct hv *hv;
	struct loop_timer *timer;
	void *for_libxl;
};

static void xen_fd_ready(struct loop *loop, struct loop_fd *watch, int fd, short revents, void *arg)
{
	struct xen_fd_reg *reg = arg;

	(void)loop;
	(void)watch;
	libxl_osevent_occurred_fd(reg->hv->ctx, reg->for_libxl, fd, reg->events, revents);
}

static int xen_fd_register(void *user, int fd, void **for_app_r, short events, void *for_libxl)
{
	struct hv *hv = user;
	struct xen_fd_reg *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return ERROR_NOMEM;
	reg->hv = hv;
	reg->for_libxl = for_libxl;
	reg->events = events;
	reg->watch = loop_fd_add(hv->loop, fd, events, xen_fd_ready, reg);
	if (!reg->watch) {
		free(reg);
		return ERROR_NOMEM;
	}
	*for_app_r = reg;
	return 0;
}

static int xen_fd_modify(void *user, int fd, void **for_app, short events)
{
	struct xen_fd_reg *reg = *for_app;

	(void)user;
	(void)fd;
	reg->events = events;
	loop_fd_modify(reg->watch, events);
	return 0;
}

static void xen_fd_deregister(void *user, int fd, void *for_app)
{
	struct xen_fd_reg *reg = for_app;

	(void)user;
	(void)fd;
	loop_fd_remove(reg->watch);
	free(reg);
}

static void xen_timeout_fired(struct loop *loop, struct loop_timer *timer, void *arg)
{
	struct xen_timeout_reg *reg = arg;
	libxl_ctx *ctx = reg->hv->ctx;
	void *for_libxl = reg->for_libxl;

	(void)loop;
	/* the registration ends when it fires: libxl never deregisters a timeout */
	loop_timer_remove(timer);
	free(reg);
	libxl_osevent_occurred_timeout(ctx, for_libxl);
}

/* libxl's absolute times are wall-clock (gettimeofday); the loop's are monotonic. */
static int64_t xen_due_ms(struct timeval abs)
{
	struct timeval now;
	int64_t delta_ms;

	if (!abs.tv_sec && !abs.tv_usec)
		return loop_now_ms();
	gettimeofday(&now, NULL);
	delta_ms = ((int64_t)abs.tv_sec - now.tv_sec) * 1000 + (abs.tv_usec - now.tv_usec) / 1000;
	return loop_now_ms() + (delta_ms > 0 ? delta_ms : 0);
}

static int xen_timeout_register(void *user, void **for_app_r, struct timeval abs, void *for_libxl)
{
	struct hv *hv = user;
	struct xen_timeout_reg *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return ERROR_NOMEM;
	reg->hv = hv;
	reg->for_libxl = for_libxl;
	reg->timer = loop_timer_add(hv->loop, xen_due_ms(abs), xen_timeout_fired, reg);
	if (!reg->timer) {
		free(reg);
		return ERROR_NOMEM;
	}
	*for_app_r = reg;
	return 0;
}

static int xen_timeout_modify(void *user, void **for_app, struct timeval abs)
{
	struct xen_timeout_reg *reg = *for_app;

	(void)user;
	loop_timer_modify(reg->timer, xen_due_ms(abs));
	return 0;
}

static void xen_timeout_deregister(void *user, void *for_app)
{
	struct xen_timeout_reg *reg = for_app;

	(void)user;
	loop_timer_remove(reg->timer);
	free(reg);
}

static const libxl_osevent_hooks xen_osevent_hooks = {
    .fd_register = xen_fd_register,
    .fd_modify = xen_fd_modify,
    .fd_deregister = xen_fd_deregister,
    .timeout_register = xen_timeout_register,
    .timeout_modify = xen_timeout_modify,
    .timeout_deregister = xen_timeout_deregister,
};

/* --- helpers shared by the backend's files ----------------------------------------------- */

int xen_err(int libxl_rc)
{
	switch (libxl_rc) {
	case 0:
		return 0;
	case ERROR_NOMEM:
		return ERR_NOMEM;
	case ERROR_INVAL:
		return ERR_INVAL;
	case ERROR_DOMAIN_NOTFOUND:
		return ERR_NOTFOUND;
	case ERROR_GUEST_TIMEDOUT:
	case ERROR_TIMEDOUT:
		return ERR_TIMEOUT;
	case ERROR_NOT_READY:
		return ERR_BUSY;
	case ERROR_ABORTED:
		return ERR_CANCELLED;
	case ERROR_NI:
	case ERROR_NOPARAVIRT:
		return ERR_NOTSUP;
	default:
		return ERR_IO;
	}
}

xc_interface *xen_xc(struct hv *hv)
{
	if (!hv->xch) {
		hv->xch = xc_interface_open(&hv->logger.vtable, &hv->logger.vtable, 0);
		if (!hv->xch)
			log_error(
			    "cannot open libxenctrl (/dev/xen/privcmd): are you root in dom0?");
	}
	return hv->xch;
}

struct xs_handle *xen_xs(struct hv *hv)
{
	if (!hv->xsh) {
		hv->xsh = xs_open(0);
		if (!hv->xsh)
			log_error_errno(errno, "cannot connect to xenstore: is xenstored running?");
	}
	return hv->xsh;
}

char *xen_domain_name(struct hv *hv, uint32_t domid)
{
	return libxl_domid_to_name(hv->ctx, domid);
}

/* --- open / close ------------------------------------------------------------------------ */

/* Why this host cannot run the xen backend, or NULL when it looks like a Xen dom0. */
static const char *xen_absent_reason(void)
{
	if (access("/dev/xen/privcmd", F_OK) != 0 && access("/proc/xen/privcmd", F_OK) != 0)
		return "no Xen hypervisor on this host (no /dev/xen/privcmd)";
	if (access("/run/xenstored.pid", F_OK) != 0 &&
	    access("/var/run/xenstored/socket", F_OK) != 0 &&
	    access("/run/xenstored/socket", F_OK) != 0 && access("/dev/xen/xenbus", F_OK) != 0)
		return "xenstored is not running on this host";
	return NULL;
}

/*
 * xl-ext forks children of its own (the migration transport, the pre-flight query). In libxl's
 * default mode its SIGCHLD handler reaps every child of the process, so on real Xen it took
 * ours ("unknown child [pid] unexpectedly exited") and our waitpid lost their exit status:
 * libxl must reap only the children it forked itself, as its documentation asks of an
 * application with children.
 */
static const libxl_childproc_hooks xen_childproc_hooks = {
    .chldowner = libxl_sigchld_owner_libxl_always_selective_reap,
};

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
		log_error("cannot open a libxl context (libxl error %d): is xencommons running?",
		          rc);
		free(hv);
		return ERR_NOXEN;
	}
	/* the event hooks first: libxl wants them before anything registers an fd, and the
	 * child-process mode (selective reap) registers its SIGCHLD self-pipe at once */
	if (loop)
		libxl_osevent_register_hooks(hv->ctx, &xen_osevent_hooks, hv);
	libxl_childproc_setmode(hv->ctx, &xen_childproc_hooks, NULL);
	*hv_r = hv;
	return 0;
}

/* libxl's contexts are not fork-safe: a child that goes on using libxl says so first. */
static void xen_postfork_child(struct hv *hv)
{
	if (hv && hv->ctx)
		libxl_postfork_child_noexec(hv->ctx);
}

static void xen_close(struct hv *hv)
{
	if (!hv)
		return;
	if (hv->xsh)
		xs_close(hv->xsh);
	if (hv->xch)
		xc_interface_close(hv->xch);
	libxl_ctx_free(hv->ctx);
	free(hv);
}

/* --- host and domain information --------------------------------------------------------- */

static int xen_host_info(struct hv *hv, struct hv_host_info *info)
{
	libxl_physinfo pi;
	const libxl_version_info *vi;
	int rc;

	libxl_physinfo_init(&pi);
	rc = libxl_get_physinfo(hv->ctx, &pi);
	if (rc) {
		log_error("libxl_get_physinfo failed (libxl error %d)", rc);
		rc = xen_err(rc);
		goto out;
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
out:
	libxl_physinfo_dispose(&pi);
	return rc;
}

static void fill_info(struct hv *hv, const libxl_dominfo *di, struct hv_domain_info *info)
{
	char *name = xen_domain_name(hv, di->domid);

	memset(info, 0, sizeof(*info));
	info->domid = di->domid;
	snprintf(info->name, sizeof(info->name), "%s", name ? name : "");
	free(name);
	switch (di->domain_type) {
	case LIBXL_DOMAIN_TYPE_HVM:
		info->type = HV_TYPE_HVM;
		break;
	case LIBXL_DOMAIN_TYPE_PVH:
		info->type = HV_TYPE_PVH;
		break;
	default:
		info->type = HV_TYPE_PV;
		break;
	}
	info->memory_kib = di->current_memkb;
	info->vcpus = di->vcpu_online;
	info->running = di->running;
	info->paused = di->paused;
	info->dying = di->dying;
	info->suspended = di->shutdown && di->shutdown_reason == LIBXL_SHUTDOWN_REASON_SUSPEND;
	info->cpu_time_s = (double)di->cpu_time / 1e9;
}

static int xen_list(struct hv *hv, struct hv_domain_info **doms_r, size_t *n_r)
{
	struct hv_domain_info *doms = NULL;
	libxl_dominfo *list;
	int nb = 0, rc = 0;
	size_t n = 0;

	list = libxl_list_domain(hv->ctx, &nb);
	if (!list) {
		log_error("libxl_list_domain failed");
		return ERR_IO;
	}
	doms = calloc(nb > 0 ? (size_t)nb : 1, sizeof(*doms));
	if (!doms) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (int i = 0; i < nb; i++) {
		if (list[i].domid == 0)
			continue;
		fill_info(hv, &list[i], &doms[n++]);
	}
	*doms_r = doms;
	*n_r = n;
	doms = NULL;
out:
	free(doms);
	libxl_dominfo_list_free(list, nb);
	return rc;
}

static int xen_info(struct hv *hv, uint32_t domid, struct hv_domain_info *info)
{
	libxl_dominfo di;
	int rc;

	libxl_dominfo_init(&di);
	rc = libxl_domain_info(hv->ctx, &di, domid);
	if (rc) {
		rc = xen_err(rc) == ERR_INVAL ? ERR_NOTFOUND : xen_err(rc);
		goto out;
	}
	fill_info(hv, &di, info);
out:
	libxl_dominfo_dispose(&di);
	return rc;
}

static int xen_lookup(struct hv *hv, const char *name_or_id, uint32_t *domid_r)
{
	struct hv_domain_info info;
	uint32_t domid;
	char *end;
	unsigned long id = strtoul(name_or_id, &end, 10);

	if (name_or_id[0] && !*end && id < HV_INVALID_DOMID) {
		if (xen_info(hv, (uint32_t)id, &info))
			return ERR_NOTFOUND;
		*domid_r = (uint32_t)id;
		return 0;
	}
	if (libxl_name_to_domid(hv->ctx, name_or_id, &domid))
		return ERR_NOTFOUND;
	*domid_r = domid;
	return 0;
}

/* --- lifecycle --------------------------------------------------------------------------- */

/* The largest libxl JSON configuration xen_create reads (one is a few KiB). */
#define XEN_CONFIG_JSON_MAX (1024 * 1024)

/* path's configuration into cfg: libxl JSON if its first character is '{', else xl.cfg. */
static int read_config(struct hv *hv, const char *path, libxl_domain_config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	const char *start;
	int rc;

	rc = file_read_all(path, XEN_CONFIG_JSON_MAX, &text, &len);
	if (rc) {
		log_error("%s: cannot read it: %s", path, err_str(rc));
		return rc;
	}
	start = text + strspn(text, " \t\r\n");
	if (*start == '{') {
		rc = libxl_domain_config_from_json(hv->ctx, cfg, start);
		if (rc) {
			log_error("%s: not a libxl domain configuration (libxl error %d); give the "
			          "JSON 'xl-ext -b xen' keeps of a domain, or an xl.cfg file",
			          path, rc);
			rc = ERR_INVAL;
		}
	} else {
		rc = xen_xlcfg_parse(path, cfg);
	}
	free(text);
	return rc;
}

int xen_create(struct hv *hv, const char *config_path, const struct hv_create_args *args,
               uint32_t *domid_r)
{
	libxl_domain_config cfg;
	uint32_t domid = (uint32_t)INVALID_DOMID, other;
	uint64_t made = 0; /* iSCSI sessions made for this domain */
	const char *name;
	int rc;

	libxl_domain_config_init(&cfg);
	rc = read_config(hv, config_path, &cfg);
	if (!rc && args && args->name)
		rc = xen_config_set_name(&cfg, args->name);
	if (rc)
		goto out;
	name = cfg.c_info.name;
	if (!name || !name[0]) {
		log_error("%s: the configuration names no domain (name = \"...\")", config_path);
		rc = ERR_INVAL;
		goto out;
	}
	/* never a second copy of a domain this host runs */
	if (libxl_name_to_domid(hv->ctx, name, &other) == 0) {
		log_error("domain %s already exists here (domid %u): not created again from %s",
		          name, other, config_path);
		rc = ERR_EXISTS;
		goto out;
	}
	rc = xen_login_iscsi_disks(&cfg, name, &made);
	if (rc)
		goto out;
	/* synchronous (no ao_how); libxl leaves the new domain paused, as xl create does */
	rc = libxl_domain_create_new(hv->ctx, &cfg, &domid, NULL, NULL);
	if (rc) {
		log_error("domain %s: libxl_domain_create_new from %s failed (libxl error %d)",
		          name, config_path, rc);
		if (domid != (uint32_t)INVALID_DOMID && domid != 0)
			libxl_domain_destroy(hv->ctx, domid, NULL);
		xen_logout_iscsi_disks(&cfg, made);
		rc = xen_err(rc);
		goto out;
	}
	/* the LUNs are taken before the guest first runs; one held elsewhere: never started */
	rc = xen_take_iscsi_disks(&cfg, name);
	if (rc) {
		log_error("domain %s (domid %u): destroyed before it ran; nothing else changed",
		          name, domid);
		libxl_domain_destroy(hv->ctx, domid, NULL);
		xen_logout_iscsi_disks(&cfg, made);
		goto out;
	}
	if (!(args && args->paused)) {
		rc = libxl_domain_unpause(hv->ctx, domid, NULL);
		if (rc) {
			log_error("domain %s (domid %u): libxl_domain_unpause failed (libxl error "
			          "%d); destroyed, so that no paused copy is left",
			          name, domid, rc);
			libxl_domain_destroy(hv->ctx, domid, NULL);
			rc = xen_err(rc);
			goto out;
		}
	}
	*domid_r = domid;
out:
	libxl_domain_config_dispose(&cfg);
	return rc;
}

static int xen_destroy(struct hv *hv, uint32_t domid)
{
	int rc = libxl_domain_destroy(hv->ctx, domid, NULL);

	if (rc)
		log_error("domain %u: libxl_domain_destroy failed (libxl error %d)", domid, rc);
	return xen_err(rc);
}

static int xen_pause(struct hv *hv, uint32_t domid)
{
	int rc = libxl_domain_pause(hv->ctx, domid, NULL);

	if (rc)
		log_error("domain %u: libxl_domain_pause failed (libxl error %d)", domid, rc);
	return xen_err(rc);
}

static int xen_unpause(struct hv *hv, uint32_t domid)
{
	int rc = libxl_domain_unpause(hv->ctx, domid, NULL);

	if (rc)
		log_error("domain %u: libxl_domain_unpause failed (libxl error %d)", domid, rc);
	return xen_err(rc);
}

static int xen_rename(struct hv *hv, uint32_t domid, const char *old_name, const char *new_name)
{
	uint32_t other;
	int rc;

	/* libxl says ERROR_INVAL for a taken name; tell the caller which case it is */
	if (!libxl_name_to_domid(hv->ctx, new_name, &other) && other != domid) {
		log_error("cannot rename domain %u to %s: domain %u already has that name", domid,
		          new_name, other);
		return ERR_EXISTS;
	}
	rc = libxl_domain_rename(hv->ctx, domid, old_name, new_name);
	if (rc)
		log_error("domain %u: libxl_domain_rename %s -> %s failed (libxl error %d)", domid,
		          old_name ? old_name : "*", new_name, rc);
	return xen_err(rc);
}

static int xen_config_json(struct hv *hv, uint32_t domid, char **json_r)
{
	libxl_domain_config cfg;
	char *json = NULL;
	int rc;

	libxl_domain_config_init(&cfg);
	rc = libxl_retrieve_domain_configuration(hv->ctx, domid, &cfg, NULL);
	if (rc) {
		log_error("domain %u: libxl_retrieve_domain_configuration failed (libxl error %d)",
		          domid, rc);
		rc = xen_err(rc);
		goto out;
	}
	json = libxl_domain_config_to_json(hv->ctx, &cfg);
	if (!json) {
		log_error("domain %u: cannot encode its configuration as JSON", domid);
		rc = ERR_NOMEM;
		goto out;
	}
	*json_r = json;
out:
	libxl_domain_config_dispose(&cfg);
	return rc;
}

static int xen_config_file_json(struct hv *hv, const char *path, const char *name, char **json_r)
{
	return xen_xlcfg_to_json(hv->ctx, path, name, json_r);
}

const struct hv_ops xen_hv_ops = {
    .name = "xen",
    .open = xen_open,
    .close = xen_close,
    .postfork_child = xen_postfork_child,
    .host_info = xen_host_info,
    .list = xen_list,
    .lookup = xen_lookup,
    .info = xen_info,
    .create = xen_create,
    .destroy = xen_destroy,
    .pause = xen_pause,
    .unpause = xen_unpause,
    .rename = xen_rename,
    .config_json = xen_config_json,
    .config_file_json = xen_config_file_json,
    .send_stream = xen_send_stream,
    .resume = xen_resume,
    .receive_stream = xen_receive_stream,
    .cpu_featureset = xen_cpu_featureset,
    .cpu_feature_name = xen_cpu_feature_name,
    .disk_backends = xen_disk_backends,
    .disk_specs = xen_disk_specs,
    .sample_dirty = xen_sample_dirty,
    .kernel_initiator = true,
    .native_precopy = "xen (libxenguest)",
    .fallback_tool = "xl",
};
