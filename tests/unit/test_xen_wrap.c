/*
 * The xen backend at the library boundary: libxl, libxenctrl and libxenstore calls are
 * replaced with -Wl,--wrap wrappers that record each call (name and arguments, in order) and
 * return scripted values. Covers the backend's operations and, through handshake.c, the
 * sender's and receiver's failure branches with the real xen hv_ops.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/migration/handshake.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/xen/xen.h"
#include "xl-ext/migration/xlproto.h"

extern const struct hv_ops xen_hv_ops;

static char calls[2048];
static int info_running;
static int rc_suspend, rc_resume, rc_rename, rc_unpause, rc_destroy, rc_restore, rc_from_json,
    rc_retrieve, rc_name_to_domid, rc_shadow_enable, rc_clean, rc_create;
static unsigned long cleans; /* CLEANs with a bitmap so far */
static int restore_sets_domid;
static int rc_acquire; /* lun_acquire_for_start's answer */
static uint32_t name_to_domid_result;
static struct log_sink *capture;
static int fake_ctx_storage, fake_xc_storage;

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
	va_list ap;
	size_t l = strlen(calls);

	va_start(ap, fmt);
	vsnprintf(calls + l, sizeof(calls) - l, fmt, ap);
	va_end(ap);
}

/* --- wrappers (prototypes silence -Wmissing-prototypes) ----------------------------------- */

int __wrap_access(const char *path, int mode);
int __wrap_access(const char *path, int mode)
{
	(void)path;
	(void)mode;
	return 0; /* a dom0 */
}

int __wrap_libxl_ctx_alloc(libxl_ctx **pctx, int version, unsigned flags, xentoollog_logger *lg);
int __wrap_libxl_ctx_alloc(libxl_ctx **pctx, int version, unsigned flags, xentoollog_logger *lg)
{
	(void)version;
	(void)flags;
	record("ctx_alloc(logger=%s) ", lg ? "yes" : "no");
	*pctx = (libxl_ctx *)&fake_ctx_storage;
	return 0;
}

void __wrap_libxl_childproc_setmode(libxl_ctx *ctx, const libxl_childproc_hooks *hooks, void *user);
void __wrap_libxl_childproc_setmode(libxl_ctx *ctx, const libxl_childproc_hooks *hooks, void *user)
{
	(void)user;
	assert_ptr_equal(ctx, &fake_ctx_storage);
	record("childproc(%s) ",
	       hooks && hooks->chldowner == libxl_sigchld_owner_libxl_always_selective_reap
	           ? "selective_reap"
	           : "other");
}

void __wrap_libxl_osevent_register_hooks(libxl_ctx *ctx, const libxl_osevent_hooks *hooks,
                                         void *user);
void __wrap_libxl_osevent_register_hooks(libxl_ctx *ctx, const libxl_osevent_hooks *hooks,
                                         void *user)
{
	(void)user;
	assert_ptr_equal(ctx, &fake_ctx_storage);
	record("osevent_hooks(%s) ", hooks && hooks->fd_register && hooks->timeout_register
	                                 ? "fd+timeout"
	                                 : "incomplete");
}

void __wrap_libxl_postfork_child_noexec(libxl_ctx *ctx);
void __wrap_libxl_postfork_child_noexec(libxl_ctx *ctx)
{
	assert_ptr_equal(ctx, &fake_ctx_storage);
	record("postfork_child ");
}

int __wrap_libxl_ctx_free(libxl_ctx *ctx);
int __wrap_libxl_ctx_free(libxl_ctx *ctx)
{
	assert_ptr_equal(ctx, &fake_ctx_storage);
	record("ctx_free ");
	return 0;
}

/*
 * The suspend watcher's calls come from its own thread: they record nothing in calls (the
 * order would not be deterministic) and count in atomics instead. A test can make the
 * fake suspend mark the domain suspended (suspend_marks) or wait for an abort (suspend_waits).
 */
static atomic_int fake_suspended, suspend_seen, ao_aborts, suspend_marks, suspend_waits;

int __wrap_xc_domain_getinfo(xc_interface *xch, uint32_t first, unsigned max, xc_dominfo_t *info);
int __wrap_xc_domain_getinfo(xc_interface *xch, uint32_t first, unsigned max, xc_dominfo_t *info)
{
	(void)xch;
	(void)max;
	memset(info, 0, sizeof(*info));
	info->domid = first;
	info->shutdown = atomic_load(&fake_suspended) != 0;
	if (info->shutdown)
		atomic_store(&suspend_seen, 1);
	info->shutdown_reason = info->shutdown ? LIBXL_SHUTDOWN_REASON_SUSPEND : 0;
	return 1;
}

int __wrap_libxl_ao_abort(libxl_ctx *ctx, const libxl_asyncop_how *how);
int __wrap_libxl_ao_abort(libxl_ctx *ctx, const libxl_asyncop_how *how)
{
	(void)ctx;
	(void)how;
	atomic_fetch_add(&ao_aborts, 1);
	return 0;
}

/* Wait (at most 5 s) until cond holds; 1 when it did. */
static int wait_atomic(atomic_int *v, int at_least)
{
	for (int i = 0; i < 5000; i++) {
		if (atomic_load(v) >= at_least)
			return 1;
		usleep(1000);
	}
	return 0;
}

int __wrap_libxl_domain_suspend(libxl_ctx *ctx, uint32_t domid, int fd, int flags,
                                const libxl_asyncop_how *how);
int __wrap_libxl_domain_suspend(libxl_ctx *ctx, uint32_t domid, int fd, int flags,
                                const libxl_asyncop_how *how)
{
	(void)ctx;
	(void)fd;
	record("suspend(%u,flags=%s%s,how=%s) ", domid, flags & LIBXL_SUSPEND_LIVE ? "LIVE" : "",
	       flags & LIBXL_SUSPEND_DEBUG ? "|DEBUG" : "", how ? "async" : "sync");
	if (atomic_load(&suspend_waits)) /* the live rounds run until the watcher aborts them */
		return wait_atomic(&ao_aborts, 1) ? ERROR_ABORTED : ERROR_FAIL;
	if (atomic_load(&suspend_marks)) {
		/* the guest stops, the watcher sees it, then the final copy takes a while */
		atomic_store(&fake_suspended, 1);
		assert_true(wait_atomic(&suspend_seen, 1));
		usleep(20000);
	}
	if (!rc_suspend)
		assert_int_equal(write(fd, "V2", 2), 2);
	return rc_suspend;
}

int __wrap_libxl_domain_resume(libxl_ctx *ctx, uint32_t domid, int suspend_cancel,
                               const libxl_asyncop_how *how);
int __wrap_libxl_domain_resume(libxl_ctx *ctx, uint32_t domid, int suspend_cancel,
                               const libxl_asyncop_how *how)
{
	(void)ctx;
	(void)how;
	record("resume(%u,cancel=%d) ", domid, suspend_cancel);
	return rc_resume;
}

int __wrap_libxl_domain_info(libxl_ctx *ctx, libxl_dominfo *info, uint32_t domid);
int __wrap_libxl_domain_info(libxl_ctx *ctx, libxl_dominfo *info, uint32_t domid)
{
	(void)ctx;
	record("info(%u) ", domid);
	info->domid = domid;
	info->current_memkb = 1024 * 1024;
	/* a failed suspend leaves the domain suspended unless a test says it never got there */
	info->shutdown = !info_running;
	info->shutdown_reason =
	    info_running ? LIBXL_SHUTDOWN_REASON_UNKNOWN : LIBXL_SHUTDOWN_REASON_SUSPEND;
	return 0;
}

char *__wrap_libxl_domid_to_name(libxl_ctx *ctx, uint32_t domid);
char *__wrap_libxl_domid_to_name(libxl_ctx *ctx, uint32_t domid)
{
	(void)ctx;
	(void)domid;
	return strdup("vm1");
}

int __wrap_libxl_name_to_domid(libxl_ctx *ctx, const char *name, uint32_t *domid);
int __wrap_libxl_name_to_domid(libxl_ctx *ctx, const char *name, uint32_t *domid)
{
	(void)ctx;
	record("name_to_domid(%s) ", name);
	*domid = name_to_domid_result;
	return rc_name_to_domid;
}

int __wrap_libxl_domain_rename(libxl_ctx *ctx, uint32_t domid, const char *o, const char *n);
int __wrap_libxl_domain_rename(libxl_ctx *ctx, uint32_t domid, const char *o, const char *n)
{
	(void)ctx;
	record("rename(%u,%s,%s) ", domid, o ? o : "*", n);
	return rc_rename;
}

int __wrap_libxl_domain_unpause(libxl_ctx *ctx, uint32_t domid, const libxl_asyncop_how *how);
int __wrap_libxl_domain_unpause(libxl_ctx *ctx, uint32_t domid, const libxl_asyncop_how *how)
{
	(void)ctx;
	(void)how;
	record("unpause(%u) ", domid);
	return rc_unpause;
}

int __wrap_libxl_domain_destroy(libxl_ctx *ctx, uint32_t domid, const libxl_asyncop_how *how);
int __wrap_libxl_domain_destroy(libxl_ctx *ctx, uint32_t domid, const libxl_asyncop_how *how)
{
	(void)ctx;
	(void)how;
	record("destroy(%u) ", domid);
	return rc_destroy;
}

int __wrap_libxl_retrieve_domain_configuration(libxl_ctx *ctx, uint32_t domid,
                                               libxl_domain_config *cfg,
                                               const libxl_asyncop_how *how);
int __wrap_libxl_retrieve_domain_configuration(libxl_ctx *ctx, uint32_t domid,
                                               libxl_domain_config *cfg,
                                               const libxl_asyncop_how *how)
{
	(void)ctx;
	(void)how;
	record("retrieve_config(%u) ", domid);
	if (!rc_retrieve)
		cfg->c_info.name = strdup("vm1");
	return rc_retrieve;
}

char *__wrap_libxl_domain_config_to_json(libxl_ctx *ctx, libxl_domain_config *cfg);
char *__wrap_libxl_domain_config_to_json(libxl_ctx *ctx, libxl_domain_config *cfg)
{
	char *s = NULL;

	(void)ctx;
	record("to_json ");
	assert_int_not_equal(asprintf(&s, "{\"c_info\":{\"name\":\"%s\"}}", cfg->c_info.name), -1);
	return s;
}

int __wrap_libxl_domain_config_from_json(libxl_ctx *ctx, libxl_domain_config *cfg, const char *s);
int __wrap_libxl_domain_config_from_json(libxl_ctx *ctx, libxl_domain_config *cfg, const char *s)
{
	(void)ctx;
	record("from_json(%s) ", s);
	if (!rc_from_json)
		cfg->c_info.name = strdup("vm1");
	return rc_from_json;
}

int __wrap_libxl_domain_create_restore(libxl_ctx *ctx, libxl_domain_config *cfg, uint32_t *domid,
                                       int restore_fd, int send_back_fd,
                                       const libxl_domain_restore_params *p,
                                       const libxl_asyncop_how *how,
                                       const libxl_asyncprogress_how *console_how);
int __wrap_libxl_domain_create_restore(libxl_ctx *ctx, libxl_domain_config *cfg, uint32_t *domid,
                                       int restore_fd, int send_back_fd,
                                       const libxl_domain_restore_params *p,
                                       const libxl_asyncop_how *how,
                                       const libxl_asyncprogress_how *console_how)
{
	char buf[2];

	(void)ctx;
	(void)how;
	(void)console_how;
	record("create_restore(name=%s,send_back=%d,stream_version=%u,checkpointed=%d) ",
	       cfg->c_info.name, send_back_fd, p->stream_version, p->checkpointed_stream);
	if (restore_sets_domid)
		*domid = 12;
	if (rc_restore)
		return rc_restore;
	assert_int_equal(read(restore_fd, buf, 2), 2);
	assert_memory_equal(buf, "V2", 2);
	return 0;
}

int __wrap_libxl_domain_create_new(libxl_ctx *ctx, libxl_domain_config *cfg, uint32_t *domid,
                                   const libxl_asyncop_how *how,
                                   const libxl_asyncprogress_how *console_how);
int __wrap_libxl_domain_create_new(libxl_ctx *ctx, libxl_domain_config *cfg, uint32_t *domid,
                                   const libxl_asyncop_how *how,
                                   const libxl_asyncprogress_how *console_how)
{
	(void)ctx;
	record("create_new(name=%s,type=%d,disks=%d,on_reboot=%d,sync=%d) ", cfg->c_info.name,
	       cfg->c_info.type, cfg->num_disks, cfg->on_reboot, !how && !console_how);
	if (restore_sets_domid)
		*domid = 14;
	return rc_create;
}

/*
 * The storage side of taking a LUN before a created domain first runs (lun_acquire.c, with
 * its own tests in the real-Xen and sim runs): this test checks which disks the xen backend
 * hands it, and what a refusal does to the new domain.
 */
int lun_acquire_for_start(const struct disk_info *d, const char *domain, int kernel,
                          const struct lun_choice_env *env)
{
	(void)env;
	record("acquire(%s,%s,%s,kernel=%d) ", domain, d->vdev,
	       d->form == DISK_FORM_SCRIPT ? "script" : "by-path", kernel);
	return rc_acquire;
}

xc_interface *__wrap_xc_interface_open(xentoollog_logger *l, xentoollog_logger *d, unsigned f);
xc_interface *__wrap_xc_interface_open(xentoollog_logger *l, xentoollog_logger *d, unsigned f)
{
	(void)l;
	(void)d;
	(void)f;
	record("xc_open ");
	return (xc_interface *)&fake_xc_storage;
}

int __wrap_xc_interface_close(xc_interface *xch);
int __wrap_xc_interface_close(xc_interface *xch)
{
	assert_ptr_equal(xch, &fake_xc_storage);
	record("xc_close ");
	return 0;
}

int __wrap_xc_shadow_control(xc_interface *xch, uint32_t domid, unsigned int sop, unsigned int *mb,
                             unsigned int mode);
int __wrap_xc_shadow_control(xc_interface *xch, uint32_t domid, unsigned int sop, unsigned int *mb,
                             unsigned int mode)
{
	(void)xch;
	(void)mb;
	(void)mode;
	record("shadow(%u,%s) ", domid,
	       sop == XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY ? "ENABLE_LOGDIRTY"
	       : sop == XEN_DOMCTL_SHADOW_OP_OFF           ? "OFF"
	                                                   : "?");
	if (sop == XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY && rc_shadow_enable) {
		errno = rc_shadow_enable;
		return -1;
	}
	return 0;
}

long long __wrap_xc_logdirty_control(xc_interface *xch, uint32_t domid, unsigned int sop,
                                     xc_hypercall_buffer_t *bitmap, unsigned long pages,
                                     unsigned int mode, xc_shadow_op_stats_t *stats);
long long __wrap_xc_logdirty_control(xc_interface *xch, uint32_t domid, unsigned int sop,
                                     xc_hypercall_buffer_t *bitmap, unsigned long pages,
                                     unsigned int mode, xc_shadow_op_stats_t *stats)
{
	(void)xch;
	(void)mode;
	record("logdirty(%u,%s,bitmap=%s,pages=%lu) ", domid,
	       sop == XEN_DOMCTL_SHADOW_OP_CLEAN ? "CLEAN" : "?", bitmap ? "yes" : "NULL", pages);
	if (rc_clean) {
		errno = rc_clean;
		return -1;
	}
	stats->dirty_count = 500;
	if (bitmap) {
		/* window w: a hot set, pages 10-109, and 200 pages from 1000 + 200 w */
		uint64_t *bm = bitmap->hbuf;

		for (unsigned long pfn = 0; pfn < pages; pfn++)
			if ((pfn >= 10 && pfn < 110) ||
			    (pfn >= 1000 + 200 * cleans && pfn < 1200 + 200 * cleans))
				bm[pfn / 64] |= 1ull << (pfn % 64);
		cleans++;
	}
	return 0;
}

int __wrap_xc_domain_maximum_gpfn(xc_interface *xch, uint32_t domid, xen_pfn_t *gpfns);
int __wrap_xc_domain_maximum_gpfn(xc_interface *xch, uint32_t domid, xen_pfn_t *gpfns)
{
	(void)xch;
	(void)domid;
	*gpfns = 4095;
	return 0;
}

int __wrap_xc_domain_getinfolist(xc_interface *xch, uint32_t first, unsigned int max,
                                 xc_domaininfo_t *info);
int __wrap_xc_domain_getinfolist(xc_interface *xch, uint32_t first, unsigned int max,
                                 xc_domaininfo_t *info)
{
	(void)xch;
	(void)max;
	memset(info, 0, sizeof(*info));
	info->domain = (domid_t)first;
	info->tot_pages = 3000;
	info->max_pages = 3072;
	return 1;
}

void *__wrap_xc__hypercall_buffer_alloc(xc_interface *xch, xc_hypercall_buffer_t *b, size_t size);
void *__wrap_xc__hypercall_buffer_alloc(xc_interface *xch, xc_hypercall_buffer_t *b, size_t size)
{
	(void)xch;
	b->hbuf = calloc(1, size);
	return b->hbuf;
}

void __wrap_xc__hypercall_buffer_free(xc_interface *xch, xc_hypercall_buffer_t *b);
void __wrap_xc__hypercall_buffer_free(xc_interface *xch, xc_hypercall_buffer_t *b)
{
	(void)xch;
	free(b->hbuf);
	b->hbuf = NULL;
}

/* --- a scripted xenstore: a flat list of (path, value) nodes ------------------------------ */

struct xs_node {
	const char *path;
	const char *value;
};

static const struct xs_node *xs_tree; /* NULL-terminated, or NULL: an empty store */
static int xs_open_fails, fake_xs_storage;

struct xs_handle *__wrap_xs_open(unsigned long flags);
struct xs_handle *__wrap_xs_open(unsigned long flags)
{
	(void)flags;
	record("xs_open ");
	if (xs_open_fails) {
		errno = ECONNREFUSED;
		return NULL;
	}
	return (struct xs_handle *)&fake_xs_storage;
}

void __wrap_xs_close(struct xs_handle *xsh);
void __wrap_xs_close(struct xs_handle *xsh)
{
	assert_ptr_equal(xsh, &fake_xs_storage);
	record("xs_close ");
}

/* The children of path, in tree order, as libxenstore returns them: one malloc'd block. */
char **__wrap_xs_directory(struct xs_handle *xsh, xs_transaction_t t, const char *path,
                           unsigned int *num);
char **__wrap_xs_directory(struct xs_handle *xsh, xs_transaction_t t, const char *path,
                           unsigned int *num)
{
	const char *names[16];
	size_t plen = strlen(path), bytes = 0;
	unsigned int n = 0;
	char **out, *p;

	assert_ptr_equal(xsh, &fake_xs_storage);
	assert_int_equal(t, XBT_NULL);
	record("dir(%s) ", path);
	for (const struct xs_node *x = xs_tree; x && x->path; x++) {
		const char *rest = x->path + plen;
		size_t len;
		bool seen = false;

		if (strncmp(x->path, path, plen) || rest[0] != '/')
			continue;
		rest++;
		len = strcspn(rest, "/");
		for (unsigned int i = 0; i < n; i++)
			seen = seen ||
			       (strcspn(names[i], "/") == len && !strncmp(names[i], rest, len));
		if (seen || n == 16)
			continue;
		names[n++] = rest;
		bytes += sizeof(char *) + len + 1;
	}
	if (!n) {
		errno = ENOENT;
		return NULL;
	}
	out = malloc(bytes);
	assert_non_null(out);
	p = (char *)(out + n);
	for (unsigned int i = 0; i < n; i++) {
		size_t len = strcspn(names[i], "/");

		out[i] = p;
		memcpy(p, names[i], len);
		p[len] = '\0';
		p += len + 1;
	}
	*num = n;
	return out;
}

void *__wrap_xs_read(struct xs_handle *xsh, xs_transaction_t t, const char *path,
                     unsigned int *len);
void *__wrap_xs_read(struct xs_handle *xsh, xs_transaction_t t, const char *path, unsigned int *len)
{
	assert_ptr_equal(xsh, &fake_xs_storage);
	assert_int_equal(t, XBT_NULL);
	record("read(%s) ", path);
	for (const struct xs_node *x = xs_tree; x && x->path; x++)
		if (!strcmp(x->path, path) && x->value) {
			*len = (unsigned int)strlen(x->value);
			return strdup(x->value);
		}
	errno = ENOENT;
	return NULL;
}

/* --- fixtures ------------------------------------------------------------------------------ */

static struct hv *hv;

static int setup(void **state)
{
	(void)state;
	calls[0] = '\0';
	rc_suspend = rc_resume = rc_rename = rc_unpause = rc_destroy = rc_restore = rc_create = 0;
	info_running = 0;
	rc_from_json = rc_retrieve = rc_shadow_enable = rc_clean = 0;
	rc_name_to_domid = ERROR_INVAL; /* no such name */
	restore_sets_domid = 1;
	xs_tree = NULL;
	xs_open_fails = 0;
	atomic_store(&fake_suspended, 0);
	atomic_store(&suspend_seen, 0);
	atomic_store(&ao_aborts, 0);
	atomic_store(&suspend_marks, 0);
	atomic_store(&suspend_waits, 0);
	log_capture_clear(capture);
	assert_int_equal(xen_hv_ops.open(&hv, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	xen_hv_ops.close(hv);
	return 0;
}

static void reset_calls(void)
{
	calls[0] = '\0';
}

/* --- the backend's operations ------------------------------------------------------------ */

static void test_open_close(void **state)
{
	(void)state;
	assert_string_equal(calls, "ctx_alloc(logger=yes) childproc(selective_reap) ");
	xen_hv_ops.close(hv);
	assert_string_equal(calls, "ctx_alloc(logger=yes) childproc(selective_reap) ctx_free ");
	assert_int_equal(xen_hv_ops.open(&hv, NULL), 0); /* for teardown */
}

/*
 * With an event loop (haagent's): libxl's event hooks are registered before the child-process
 * mode, whose SIGCHLD self-pipe is an fd libxl registers at once (libxl asserts no fd is
 * registered when the hooks come: haagent aborted on its first xen open).
 */
static void test_open_with_loop(void **state)
{
	struct loop *loop = NULL;
	struct hv *h = NULL;

	(void)state;
	assert_int_equal(loop_new(&loop), 0);
	reset_calls();
	assert_int_equal(xen_hv_ops.open(&h, loop), 0);
	assert_string_equal(
	    calls, "ctx_alloc(logger=yes) osevent_hooks(fd+timeout) childproc(selective_reap) ");
	xen_hv_ops.close(h);
	loop_free(loop);
}

/* A forked worker hands the daemon's context back to libxl (it is not fork-safe). */
static void test_postfork_child(void **state)
{
	(void)state;
	reset_calls();
	assert_non_null(xen_hv_ops.postfork_child);
	xen_hv_ops.postfork_child(hv);
	assert_string_equal(calls, "postfork_child ");
}

/* A domain shut down for a suspend (a migration's) is listed suspended, not paused. */
static void test_info_suspended(void **state)
{
	struct hv_domain_info info;

	(void)state;
	info_running = 0; /* the fake lists it shut down for a suspend */
	assert_int_equal(xen_hv_ops.info(hv, 5, &info), 0);
	assert_true(info.suspended);
	assert_false(info.paused);
	info_running = 1;
	assert_int_equal(xen_hv_ops.info(hv, 5, &info), 0);
	assert_false(info.suspended);
}

static void test_send_stream_flags(void **state)
{
	struct mig_params p = {.debug = false};
	struct mig_report rep;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	reset_calls();
	assert_int_equal(xen_hv_ops.send_stream(hv, 5, sp[0], &p, &rep), 0);
	assert_string_equal(calls, "xc_open info(5) suspend(5,flags=LIVE,how=sync) ");
	reset_calls();
	p.debug = true;
	assert_int_equal(xen_hv_ops.send_stream(hv, 5, sp[0], &p, &rep), 0);
	assert_string_equal(calls, "info(5) suspend(5,flags=LIVE|DEBUG,how=sync) ");
	close(sp[0]);
	close(sp[1]);
}

static void test_send_stream_policy_warning(void **state)
{
	struct mig_params p = {.bandwidth_Bps = 1000, .policy = {.downtime_ms = 10}};
	struct mig_report rep;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(xen_hv_ops.send_stream(hv, 5, sp[0], &p, &rep), 0);
	assert_true(log_capture_contains(capture, "ignoring --downtime-ms --bandwidth"));
	close(sp[0]);
	close(sp[1]);
}

/* The downtime starts when the hypervisor reports the guest suspended, not at the end of the
 * stream: the final copy after it is part of the downtime. */
static void test_send_stream_suspend_time(void **state)
{
	struct mig_params p = {.debug = false};
	struct mig_report rep;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	atomic_store(&suspend_marks, 1);
	assert_int_equal(xen_hv_ops.send_stream(hv, 5, sp[0], &p, &rep), 0);
	assert_true(rep.t_pause_us > rep.t_start_us);
	assert_true(rep.t_stream_end_us - rep.t_pause_us >= 15000); /* the fake final copy */
	assert_int_equal(rep.t_suspended_us, rep.t_pause_us);
	assert_int_equal(atomic_load(&ao_aborts), 0);
	close(sp[0]);
	close(sp[1]);
}

/* Ctrl-C during libxenguest's rounds: libxl aborts the suspend, the caller resumes. */
static void test_send_stream_cancel(void **state)
{
	volatile sig_atomic_t cancel = 1;
	struct mig_params p = {.cancel = &cancel};
	struct mig_report rep;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	atomic_store(&suspend_waits, 1);
	assert_int_equal(xen_hv_ops.send_stream(hv, 5, sp[0], &p, &rep), ERR_CANCELLED);
	assert_int_equal(atomic_load(&ao_aborts), 1);
	assert_true(log_capture_contains(capture, "migration cancelled"));
	/* without a cancel the watcher never aborts */
	cancel = 0;
	atomic_store(&suspend_waits, 0);
	assert_int_equal(xen_hv_ops.send_stream(hv, 5, sp[0], &p, &rep), 0);
	assert_int_equal(atomic_load(&ao_aborts), 1);
	close(sp[0]);
	close(sp[1]);
}

static void test_suspend_errors(void **state)
{
	struct mig_params p = {.debug = false};
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	rc_suspend = ERROR_GUEST_TIMEDOUT;
	assert_int_equal(xen_hv_ops.send_stream(hv, 5, sp[0], &p, NULL), ERR_TIMEOUT);
	rc_suspend = ERROR_FAIL;
	assert_int_equal(xen_hv_ops.send_stream(hv, 5, sp[0], &p, NULL), ERR_IO);
	reset_calls();
	assert_int_equal(xen_hv_ops.resume(hv, 5), 0);
	assert_string_equal(calls, "info(5) resume(5,cancel=1) ");
	/* the stream broke before the suspend: the domain runs, nothing to resume */
	reset_calls();
	info_running = 1;
	assert_int_equal(xen_hv_ops.resume(hv, 5), 0);
	assert_string_equal(calls, "info(5) ");
	close(sp[0]);
	close(sp[1]);
}

static void test_rename(void **state)
{
	(void)state;
	reset_calls();
	assert_int_equal(xen_hv_ops.rename(hv, 5, "vm1", "vm1--migratedaway"), 0);
	assert_string_equal(calls,
	                    "name_to_domid(vm1--migratedaway) rename(5,vm1,vm1--migratedaway) ");
	/* the new name belongs to another domain */
	reset_calls();
	rc_name_to_domid = 0;
	name_to_domid_result = 8;
	assert_int_equal(xen_hv_ops.rename(hv, 5, "vm1", "web"), ERR_EXISTS);
	assert_string_equal(calls, "name_to_domid(web) ");
	/* libxl refuses */
	reset_calls();
	rc_name_to_domid = ERROR_INVAL;
	rc_rename = ERROR_FAIL;
	assert_int_equal(xen_hv_ops.rename(hv, 5, "vm1", "x"), ERR_IO);
}

static void test_config_json(void **state)
{
	char *json = NULL;

	(void)state;
	reset_calls();
	assert_int_equal(xen_hv_ops.config_json(hv, 5, &json), 0);
	assert_string_equal(json, "{\"c_info\":{\"name\":\"vm1\"}}");
	assert_string_equal(calls, "retrieve_config(5) to_json ");
	free(json);
	reset_calls();
	rc_retrieve = ERROR_FAIL;
	assert_int_equal(xen_hv_ops.config_json(hv, 5, &json), ERR_IO);
	assert_string_equal(calls, "retrieve_config(5) ");
}

static void test_receive_stream(void **state)
{
	struct mig_params p = {.debug = false};
	uint32_t domid = 0;
	char expect[160];
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	p.send_back_fd = sp[1]; /* as mig_receive passes its channel to the sender */
	snprintf(expect, sizeof(expect),
	         "from_json({json}) create_restore(name=vm1--incoming,"
	         "send_back=%d,stream_version=2,checkpointed=0) ",
	         sp[1]);
	assert_int_equal(write(sp[1], "V2", 2), 2);
	reset_calls();
	assert_int_equal(
	    xen_hv_ops.receive_stream(hv, sp[0], "vm1--incoming", "{json}", &p, NULL, &domid), 0);
	assert_int_equal(domid, 12);
	/* paused (libxl does not unpause), named <name>--incoming, stream v2, no COLO */
	assert_string_equal(calls, expect);
	/* create_restore fails after the domain exists: it is destroyed here */
	reset_calls();
	rc_restore = ERROR_FAIL;
	assert_int_equal(
	    xen_hv_ops.receive_stream(hv, sp[0], "vm1--incoming", "{json}", &p, NULL, &domid),
	    ERR_IO);
	strcat(expect, "destroy(12) ");
	assert_string_equal(calls, expect);
	/* ... or before: nothing to destroy */
	reset_calls();
	restore_sets_domid = 0;
	assert_int_equal(
	    xen_hv_ops.receive_stream(hv, sp[0], "vm1--incoming", "{json}", &p, NULL, &domid),
	    ERR_IO);
	assert_null(strstr(calls, "destroy"));
	/* a configuration libxl cannot parse: no domain is created */
	reset_calls();
	rc_from_json = ERROR_INVAL;
	assert_int_equal(
	    xen_hv_ops.receive_stream(hv, sp[0], "vm1--incoming", "{bad}", &p, NULL, &domid),
	    ERR_PROTO);
	assert_string_equal(calls, "from_json({bad}) ");
	close(sp[0]);
	close(sp[1]);
}

/* create_config path text: write text to path (a mkstemp template the first time). */
static void create_config(char *path, const char *text)
{
	size_t n = strlen(path);
	int fd = n > 6 && !strcmp(path + n - 6, "XXXXXX") ? mkstemp(path)
	                                                  : open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/*
 * hv_ops.create on xen: the libxl JSON kept of a domain, or an xl.cfg file, through
 * libxl_domain_create_new (synchronous), unpaused unless asked; never a name that runs; a
 * domain libxl half-created, or that cannot be unpaused, is destroyed.
 */
static void test_create(void **state)
{
	char json[] = "/tmp/xlext-create-json.XXXXXX", xlcfg[] = "/tmp/xlext-create-cfg.XXXXXX";
	struct hv_create_args args = {0};
	uint32_t domid = 0;

	(void)state;
	create_config(json, "  \n{\"c_info\":{\"name\":\"vm1\",\"type\":\"pvh\"}}\n");
	create_config(xlcfg, "name = \"web1\"\ntype = \"pvh\"\nmemory = 96\n"
	                     "kernel = \"/boot/vmlinuz\"\n"
	                     "disk = [ 'phy:/dev/vg0/web1,xvda,w' ]\n"
	                     "on_reboot = \"destroy\"\n");
	/* the JSON, unpaused */
	reset_calls();
	assert_int_equal(xen_hv_ops.create(hv, json, &args, &domid), 0);
	assert_int_equal(domid, 14);
	assert_string_equal(calls, "from_json({\"c_info\":{\"name\":\"vm1\",\"type\":\"pvh\"}}\n) "
	                           "name_to_domid(vm1) create_new(name=vm1,type=-1,disks=0,"
	                           "on_reboot=1,sync=1) unpause(14) ");
	/* the xl.cfg, paused and renamed */
	reset_calls();
	args.paused = true;
	args.name = "web1-b";
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), 0);
	assert_string_equal(calls, "name_to_domid(web1-b) create_new(name=web1-b,type=3,disks=1,"
	                           "on_reboot=1,sync=1) ");
	/* never a second copy */
	reset_calls();
	rc_name_to_domid = 0;
	name_to_domid_result = 9;
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), ERR_EXISTS);
	assert_string_equal(calls, "name_to_domid(web1-b) ");
	assert_true(log_capture_contains(capture, "domain web1-b already exists here (domid 9)"));
	rc_name_to_domid = ERROR_INVAL;
	/* libxl fails after the domain exists: destroyed */
	reset_calls();
	rc_create = ERROR_FAIL;
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), ERR_IO);
	assert_string_equal(calls, "name_to_domid(web1-b) create_new(name=web1-b,type=3,disks=1,"
	                           "on_reboot=1,sync=1) destroy(14) ");
	assert_true(log_capture_contains(capture, "domain web1-b: libxl_domain_create_new from"));
	/* ... or before: nothing to destroy */
	reset_calls();
	restore_sets_domid = 0;
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), ERR_IO);
	assert_null(strstr(calls, "destroy"));
	restore_sets_domid = 1;
	rc_create = 0;
	/* created, but the unpause fails: no paused copy is left */
	reset_calls();
	args.paused = false;
	rc_unpause = ERROR_FAIL;
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), ERR_IO);
	assert_non_null(strstr(calls, "unpause(14) destroy(14) "));
	rc_unpause = 0;
	/* JSON libxl cannot parse, a bad xl.cfg, a missing file: nothing is created */
	reset_calls();
	rc_from_json = ERROR_INVAL;
	assert_int_equal(xen_hv_ops.create(hv, json, &args, &domid), ERR_INVAL);
	assert_null(strstr(calls, "create_new"));
	assert_true(log_capture_contains(capture, "not a libxl domain configuration"));
	rc_from_json = 0;
	create_config(xlcfg, "name = \"web1\"\n");
	reset_calls();
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), ERR_INVAL);
	assert_null(strstr(calls, "create_new"));
	unlink(xlcfg);
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), ERR_NOTFOUND);
	assert_null(strstr(calls, "create_new"));
	unlink(json);
}

/*
 * Shared iSCSI disks: once libxl attached them, before the domain first runs, each writable
 * one's LUN is taken with this host's key (read-only and local disks are not); a LUN another
 * host holds: the paused domain is destroyed, never run.
 */
static void test_create_takes_luns(void **state)
{
	char xlcfg[] = "/tmp/xlext-create-luns.XXXXXX";
	struct hv_create_args args = {0};
	uint32_t domid = 0;

	(void)state;
	create_config(xlcfg, "name = \"db1\"\ntype = \"pvh\"\nmemory = 96\n"
	                     "kernel = \"/boot/vmlinuz\"\n"
	                     "disk = [ 'phy:/dev/vg0/db1,xvda,w',\n"
	                     "  'vdev=xvdb,access=rw,script=block-iscsi,target=iqn=iqn.2026-01.org"
	                     ".example:db,portal=10.0.0.9:3260',\n"
	                     "  'vdev=xvdc,access=ro,script=block-iscsi,target=iqn=iqn.2026-01.org"
	                     ".example:iso,portal=10.0.0.9:3260' ]\n");
	reset_calls();
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), 0);
	assert_string_equal(calls, "name_to_domid(db1) create_new(name=db1,type=3,disks=3,"
	                           "on_reboot=2,sync=1) acquire(db1,xvdb,script,kernel=1) "
	                           "unpause(14) ");
	/* another host holds it: destroyed before it ran, the refusal returned */
	reset_calls();
	rc_acquire = ERR_CONFLICT;
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), ERR_CONFLICT);
	assert_string_equal(calls, "name_to_domid(db1) create_new(name=db1,type=3,disks=3,"
	                           "on_reboot=2,sync=1) acquire(db1,xvdb,script,kernel=1) "
	                           "destroy(14) ");
	assert_true(
	    log_capture_contains(capture, "domain db1 (domid 14): destroyed before it ran"));
	/* -p too: the LUN is taken when the domain is created, not when it is unpaused */
	reset_calls();
	rc_acquire = 0;
	args.paused = true;
	assert_int_equal(xen_hv_ops.create(hv, xlcfg, &args, &domid), 0);
	assert_non_null(strstr(calls, "acquire(db1,xvdb,script,kernel=1) "));
	assert_null(strstr(calls, "unpause"));
	unlink(xlcfg);
}

/*
 * The estimate's sample on xen: log-dirty on, a clean to empty it, then a bitmap per window
 * up to the highest pfn (the distinct pages, their union), log-dirty off on every path; the
 * memory is what the domain may hold, the data what it holds.
 */
static void test_sample_dirty(void **state)
{
	struct hv_dirty_sample smp;

	(void)state;
	reset_calls();
	cleans = 0;
	assert_int_equal(xen_hv_ops.sample_dirty(hv, 5, 10, 4, &smp), 0);
	assert_string_equal(calls, "xc_open shadow(5,ENABLE_LOGDIRTY) "
	                           "logdirty(5,CLEAN,bitmap=NULL,pages=0) "
	                           "logdirty(5,CLEAN,bitmap=yes,pages=4096) "
	                           "logdirty(5,CLEAN,bitmap=yes,pages=4096) "
	                           "logdirty(5,CLEAN,bitmap=yes,pages=4096) "
	                           "logdirty(5,CLEAN,bitmap=yes,pages=4096) shadow(5,OFF) ");
	assert_int_equal(smp.nr_pages, 3072); /* the guest's memory, not its highest pfn */
	assert_int_equal(smp.data_pages, 3000);
	assert_int_equal(smp.windows, 4);
	assert_int_equal(smp.window_ms, 10);
	for (unsigned w = 0; w < 4; w++)
		assert_int_equal(smp.dirtied[w], 300);
	assert_int_equal(smp.union_pages, 100 + 4 * 200);
	assert_true(smp.sender_sends_all);
	/* reading fails: log-dirty is still switched off */
	reset_calls();
	rc_clean = EIO;
	assert_int_not_equal(xen_hv_ops.sample_dirty(hv, 5, 1, 4, &smp), 0);
	assert_string_equal(calls, "shadow(5,ENABLE_LOGDIRTY) logdirty(5,CLEAN,bitmap=NULL,"
	                           "pages=0) shadow(5,OFF) ");
	/* already on (a migration runs): refused, and not switched off under its feet */
	reset_calls();
	rc_clean = 0;
	rc_shadow_enable = EBUSY;
	assert_int_equal(xen_hv_ops.sample_dirty(hv, 5, 1, 4, &smp), ERR_BUSY);
	assert_string_equal(calls, "shadow(5,ENABLE_LOGDIRTY) ");
	assert_true(log_capture_contains(capture, "already on"));
	rc_shadow_enable = 0;
	/* bad windows */
	assert_int_equal(xen_hv_ops.sample_dirty(hv, 5, 1, 0, &smp), ERR_INVAL);
	assert_int_equal(xen_hv_ops.sample_dirty(hv, 5, 0, 4, &smp), ERR_INVAL);
}

/* --- disk backends from xenstore ---------------------------------------------------------- */

#define FE           "/local/domain/5/device/vbd"
#define BE           "/local/domain/0/backend/vbd/5"
#define ISCSI_PARAMS "iqn=iqn.2026-01.org.example:store,portal=192.0.2.10:3260"

/* A PV domain 5: xvda on iSCSI (block-iscsi, writable), xvdb a local device read-only. */
static const struct xs_node pv_two_disks[] = {
    {FE "/51712/backend", BE "/51712"},
    {FE "/51712/backend-id", "0"},
    {FE "/51712/state", "4"},
    {FE "/51728/backend", BE "/51728"},
    {FE "/51728/backend-id", "0"},
    {FE "/51728/state", "4"},
    {BE "/51712/params", ISCSI_PARAMS},
    {BE "/51712/type", "phy"},
    {BE "/51712/script", "block-iscsi"},
    {BE "/51712/mode", "w"},
    {BE "/51728/params", "/dev/vg0/data"},
    {BE "/51728/type", "phy"},
    {BE "/51728/mode", "r"},
    {NULL, NULL},
};

static void test_disk_backends_pv(void **state)
{
	struct hv_disk *disks = NULL;
	size_t n = 0;

	(void)state;
	xs_tree = pv_two_disks;
	reset_calls();
	assert_int_equal(xen_hv_ops.disk_backends(hv, 5, &disks, &n), 0);
	assert_string_equal(calls, "xs_open dir(" FE ") "
	                           "read(" FE "/51712/backend) read(" FE "/51712/backend-id) "
	                           "read(" BE "/51712/params) read(" BE "/51712/type) "
	                           "read(" BE "/51712/script) read(" BE "/51712/mode) "
	                           "read(" FE "/51728/backend) read(" FE "/51728/backend-id) "
	                           "read(" BE "/51728/params) read(" BE "/51728/type) "
	                           "read(" BE "/51728/script) read(" BE "/51728/mode) ");
	assert_int_equal(n, 2);
	assert_string_equal(disks[0].vdev, "51712");
	assert_int_equal(disks[0].backend_domid, 0);
	assert_string_equal(disks[0].type, "phy");
	assert_string_equal(disks[0].params, ISCSI_PARAMS);
	assert_string_equal(disks[0].script, "block-iscsi");
	assert_false(disks[0].readonly);
	assert_string_equal(disks[1].vdev, "51728");
	assert_string_equal(disks[1].type, "phy");
	assert_string_equal(disks[1].params, "/dev/vg0/data");
	assert_string_equal(disks[1].script, "");
	assert_true(disks[1].readonly);
	free(disks);
	/* the handle is kept for the next call and closed with the backend */
	reset_calls();
	xen_hv_ops.close(hv);
	assert_string_equal(calls, "xs_close ctx_free ");
	assert_int_equal(xen_hv_ops.open(&hv, NULL), 0); /* for teardown */
}

static void test_disk_backends_xs_open_fails(void **state)
{
	struct hv_disk *disks = NULL;
	size_t n = 0;

	(void)state;
	xs_open_fails = 1;
	reset_calls();
	assert_int_equal(xen_hv_ops.disk_backends(hv, 5, &disks, &n), ERR_NOXEN);
	assert_string_equal(calls, "xs_open ");
	assert_null(disks);
	assert_true(log_capture_contains(capture, "cannot connect to xenstore"));
	assert_true(log_capture_contains(capture, "is xenstored running?"));
	reset_calls();
	xen_hv_ops.close(hv); /* nothing to close on the xenstore side */
	assert_string_equal(calls, "ctx_free ");
	assert_int_equal(xen_hv_ops.open(&hv, NULL), 0);
}

/* A frontend without its backend node (being torn down) is skipped. */
static void test_disk_backends_frontend_without_backend(void **state)
{
	static const struct xs_node tree[] = {
	    {FE "/51712/state", "6"},
	    {FE "/51728/backend", BE "/51728"},
	    {FE "/51728/backend-id", "0"},
	    {BE "/51728/params", "/dev/vg0/data"},
	    {BE "/51728/type", "phy"},
	    {BE "/51728/mode", "w"},
	    {NULL, NULL},
	};
	struct hv_disk *disks = NULL;
	size_t n = 0;

	(void)state;
	xs_tree = tree;
	reset_calls();
	assert_int_equal(xen_hv_ops.disk_backends(hv, 5, &disks, &n), 0);
	assert_string_equal(calls, "xs_open dir(" FE ") read(" FE "/51712/backend) "
	                           "read(" FE "/51728/backend) read(" FE "/51728/backend-id) "
	                           "read(" BE "/51728/params) read(" BE "/51728/type) "
	                           "read(" BE "/51728/script) read(" BE "/51728/mode) ");
	assert_int_equal(n, 1);
	assert_string_equal(disks[0].vdev, "51728");
	assert_false(disks[0].readonly);
	free(disks);
}

/* The backend path the frontend names is not there: an error, not a disk left unchecked. */
static void test_disk_backends_backend_missing(void **state)
{
	static const struct xs_node tree[] = {
	    {FE "/51712/backend", BE "/51712"},
	    {FE "/51712/backend-id", "0"},
	    {NULL, NULL},
	};
	struct hv_disk *disks = NULL;
	size_t n = 0;

	(void)state;
	xs_tree = tree;
	reset_calls();
	assert_int_equal(xen_hv_ops.disk_backends(hv, 5, &disks, &n), ERR_NOTFOUND);
	assert_string_equal(calls, "xs_open dir(" FE ") read(" FE "/51712/backend) "
	                           "read(" FE "/51712/backend-id) read(" BE "/51712/params) ");
	assert_null(disks);
	assert_true(log_capture_contains(capture, "domain 5: disk 51712: its backend " BE
	                                          "/51712 has no params node"));
}

static void test_disk_backends_no_disks(void **state)
{
	struct hv_disk *disks = NULL;
	size_t n = 7;

	(void)state;
	xs_tree = pv_two_disks; /* domain 9 has nothing in it */
	reset_calls();
	assert_int_equal(xen_hv_ops.disk_backends(hv, 9, &disks, &n), 0);
	assert_string_equal(calls, "xs_open dir(/local/domain/9/device/vbd) ");
	assert_int_equal(n, 0);
	assert_non_null(disks);
	free(disks);
}

/* --- through handshake.c, with the real xen hv_ops ------------------------------------------ */

#define BANNER "xl migration receiver ready, send binary domain data.\n"
#define READY  "domain received, ready to unpause"
#define GO     "domain is yours, you are cleared to unpause"
#define REPORT "my copy unpause results are as follows"

static int sender(int fd, enum mig_result *result)
{
	struct mig_send_args a = {
	    .ops = &xen_hv_ops,
	    .hv = hv,
	    .domid = 5,
	    .name = "vm1",
	    .config_json = "{}",
	    .send_fd = fd,
	    .recv_fd = fd,
	    .peer = "node2",
	    .reply_timeout_ms = 2000,
	};
	struct mig_report rep;

	return mig_send(&a, &rep, result);
}

static void test_mig_send_suspend_fails_resumes(void **state)
{
	enum mig_result r;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(write(sp[1], BANNER, strlen(BANNER)), (ssize_t)strlen(BANNER));
	reset_calls();
	rc_suspend = ERROR_FAIL;
	assert_int_equal(sender(sp[0], &r), ERR_IO);
	assert_int_equal(r, MIG_FAILED_RESUMED);
	assert_string_equal(
	    calls, "xc_open info(5) suspend(5,flags=LIVE,how=sync) info(5) resume(5,cancel=1) ");
	close(sp[0]);
	close(sp[1]);
}

static void test_mig_send_suspend_timeout_no_resume(void **state)
{
	enum mig_result r;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(write(sp[1], BANNER, strlen(BANNER)), (ssize_t)strlen(BANNER));
	reset_calls();
	rc_suspend = ERROR_GUEST_TIMEDOUT;
	assert_int_equal(sender(sp[0], &r), ERR_TIMEOUT);
	assert_int_equal(r, MIG_FAILED_NO_RESUME);
	assert_string_equal(calls, "xc_open info(5) suspend(5,flags=LIVE,how=sync) ");
	close(sp[0]);
	close(sp[1]);
}

static void test_mig_send_rename_fails(void **state)
{
	enum mig_result r;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(write(sp[1], BANNER, strlen(BANNER)), (ssize_t)strlen(BANNER));
	assert_int_equal(write(sp[1], READY, sizeof(READY)), (ssize_t)sizeof(READY));
	reset_calls();
	rc_rename = ERROR_FAIL;
	assert_int_not_equal(sender(sp[0], &r), 0);
	assert_int_equal(r, MIG_FAILED_RESUMED);
	assert_string_equal(calls,
	                    "xc_open info(5) suspend(5,flags=LIVE,how=sync) "
	                    "name_to_domid(vm1--migratedaway) rename(5,vm1,vm1--migratedaway) "
	                    "info(5) resume(5,cancel=1) ");
	close(sp[0]);
	close(sp[1]);
}

static void test_mig_send_ok_destroys_source(void **state)
{
	enum mig_result r;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(write(sp[1], BANNER, strlen(BANNER)), (ssize_t)strlen(BANNER));
	assert_int_equal(write(sp[1], READY, sizeof(READY)), (ssize_t)sizeof(READY));
	assert_int_equal(write(sp[1], REPORT, sizeof(REPORT)), (ssize_t)sizeof(REPORT));
	assert_int_equal(write(sp[1], "", 1), 1);
	reset_calls();
	assert_int_equal(sender(sp[0], &r), 0);
	assert_int_equal(r, MIG_OK);
	assert_string_equal(calls,
	                    "xc_open info(5) suspend(5,flags=LIVE,how=sync) "
	                    "name_to_domid(vm1--migratedaway) rename(5,vm1,vm1--migratedaway) "
	                    "destroy(5) ");
	close(sp[0]);
	close(sp[1]);
}

static int receiver(int fd)
{
	struct mig_receive_args a = {.ops = &xen_hv_ops, .hv = hv, .send_fd = fd, .recv_fd = fd};
	struct mig_report rep;
	uint32_t domid;

	return mig_receive(&a, &rep, &domid);
}

static void put_header(int fd)
{
	uint8_t *hdr;
	size_t len;

	assert_int_equal(xlp_encode_header("{\"c_info\":{\"name\":\"vm1\"}}", &hdr, &len), 0);
	assert_int_equal(write(fd, hdr, len), (ssize_t)len);
	free(hdr);
}

static void test_mig_receive_ok(void **state)
{
	char expect[320];
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	put_header(sp[1]);
	assert_int_equal(write(sp[1], "V2", 2), 2);
	assert_int_equal(write(sp[1], GO, sizeof(GO)), (ssize_t)sizeof(GO));
	reset_calls();
	assert_int_equal(receiver(sp[0]), 0);
	/* libxl gets the channel back to the sender, as from xl's migrate-receive */
	snprintf(expect, sizeof(expect),
	         "name_to_domid(vm1) from_json({\"c_info\":{\"name\":\"vm1\"}}) "
	         "create_restore(name=vm1--incoming,send_back=%d,stream_version=2,"
	         "checkpointed=0) name_to_domid(vm1) rename(12,vm1--incoming,vm1) unpause(12) ",
	         sp[0]);
	assert_string_equal(calls, expect);
	close(sp[0]);
	close(sp[1]);
}

static void test_mig_receive_restore_fails(void **state)
{
	char buf[256], expect[320];
	ssize_t n;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	put_header(sp[1]);
	reset_calls();
	rc_restore = ERROR_FAIL;
	assert_int_equal(receiver(sp[0]), ERR_IO);
	snprintf(expect, sizeof(expect),
	         "name_to_domid(vm1) from_json({\"c_info\":{\"name\":\"vm1\"}}) "
	         "create_restore(name=vm1--incoming,send_back=%d,stream_version=2,"
	         "checkpointed=0) destroy(12) ",
	         sp[0]);
	assert_string_equal(calls, expect);
	shutdown(sp[0], SHUT_WR);
	n = read(sp[1], buf, sizeof(buf));
	assert_int_equal(n, (ssize_t)strlen(BANNER)); /* banner, then silence: the sender resumes */
	close(sp[0]);
	close(sp[1]);
}

static void test_mig_receive_unpause_fails(void **state)
{
	char buf[256];
	size_t got = 0;
	ssize_t n;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	put_header(sp[1]);
	assert_int_equal(write(sp[1], "V2", 2), 2);
	assert_int_equal(write(sp[1], GO, sizeof(GO)), (ssize_t)sizeof(GO));
	reset_calls();
	rc_unpause = ERROR_FAIL;
	assert_int_equal(receiver(sp[0]), ERR_IO);
	assert_non_null(strstr(calls, "unpause(12) destroy(12) "));
	shutdown(sp[0], SHUT_WR);
	while ((n = read(sp[1], buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	/* banner, ready, report, non-zero status, then GO back to the sender */
	assert_int_equal(got, strlen(BANNER) + sizeof(READY) + sizeof(REPORT) + 1 + sizeof(GO));
	assert_int_not_equal(buf[strlen(BANNER) + sizeof(READY) + sizeof(REPORT)], 0);
	assert_memory_equal(buf + got - sizeof(GO), GO, sizeof(GO));
	close(sp[0]);
	close(sp[1]);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_open_close),
	    T(test_open_with_loop),
	    T(test_postfork_child),
	    T(test_info_suspended),
	    T(test_send_stream_flags),
	    T(test_send_stream_policy_warning),
	    T(test_send_stream_suspend_time),
	    T(test_send_stream_cancel),
	    T(test_suspend_errors),
	    T(test_rename),
	    T(test_config_json),
	    T(test_receive_stream),
	    T(test_create),
	    T(test_create_takes_luns),
	    T(test_sample_dirty),
	    T(test_disk_backends_pv),
	    T(test_disk_backends_xs_open_fails),
	    T(test_disk_backends_frontend_without_backend),
	    T(test_disk_backends_backend_missing),
	    T(test_disk_backends_no_disks),
	    T(test_mig_send_suspend_fails_resumes),
	    T(test_mig_send_suspend_timeout_no_resume),
	    T(test_mig_send_rename_fails),
	    T(test_mig_send_ok_destroys_source),
	    T(test_mig_receive_ok),
	    T(test_mig_receive_restore_fails),
	    T(test_mig_receive_unpause_fails),
	};
	int rc;

	capture = log_sink_capture();
	log_set_sink(capture);
	log_set_level(LOGL_DEBUG);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_set_sink(NULL);
	if (capture->destroy)
		capture->destroy(capture);
	return rc;
}
