/*
 * The xen backend at the library boundary: libxl, libxenctrl and libxenstore calls are
 * replaced with -Wl,--wrap wrappers that record each call (name and arguments, in order) and
 * return scripted values. Covers the backend's operations and, through migrate.c, the
 * sender's and receiver's failure branches with the real xen hv_ops.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
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
#include "xl-ext/migrate.h"
#include "xl-ext/xen/xen.h"
#include "xl-ext/xlproto.h"

extern const struct hv_ops xen_hv_ops;

static char calls[2048];
static int rc_suspend, rc_resume, rc_rename, rc_unpause, rc_destroy, rc_restore, rc_from_json,
	rc_retrieve, rc_name_to_domid, rc_shadow_enable, rc_clean;
static int restore_sets_domid;
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

int __wrap_libxl_ctx_free(libxl_ctx *ctx);
int __wrap_libxl_ctx_free(libxl_ctx *ctx)
{
	assert_ptr_equal(ctx, &fake_ctx_storage);
	record("ctx_free ");
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

int __wrap_libxl_domain_config_from_json(libxl_ctx *ctx, libxl_domain_config *cfg,
					 const char *s);
int __wrap_libxl_domain_config_from_json(libxl_ctx *ctx, libxl_domain_config *cfg,
					 const char *s)
{
	(void)ctx;
	record("from_json(%s) ", s);
	if (!rc_from_json)
		cfg->c_info.name = strdup("vm1");
	return rc_from_json;
}

int __wrap_libxl_domain_create_restore(libxl_ctx *ctx, libxl_domain_config *cfg,
				       uint32_t *domid, int restore_fd, int send_back_fd,
				       const libxl_domain_restore_params *p,
				       const libxl_asyncop_how *how,
				       const libxl_asyncprogress_how *console_how);
int __wrap_libxl_domain_create_restore(libxl_ctx *ctx, libxl_domain_config *cfg,
				       uint32_t *domid, int restore_fd, int send_back_fd,
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

int __wrap_xc_shadow_control(xc_interface *xch, uint32_t domid, unsigned int sop,
			     unsigned int *mb, unsigned int mode);
int __wrap_xc_shadow_control(xc_interface *xch, uint32_t domid, unsigned int sop,
			     unsigned int *mb, unsigned int mode)
{
	(void)xch;
	(void)mb;
	(void)mode;
	record("shadow(%u,%s) ", domid,
	       sop == XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY ? "ENABLE_LOGDIRTY"
	       : sop == XEN_DOMCTL_SHADOW_OP_OFF        ? "OFF"
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
	return 0;
}

/* --- fixtures ------------------------------------------------------------------------------ */

static struct hv *hv;

static int setup(void **state)
{
	(void)state;
	calls[0] = '\0';
	rc_suspend = rc_resume = rc_rename = rc_unpause = rc_destroy = rc_restore = 0;
	rc_from_json = rc_retrieve = rc_shadow_enable = rc_clean = 0;
	rc_name_to_domid = ERROR_INVAL; /* no such name */
	restore_sets_domid = 1;
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
	assert_string_equal(calls, "ctx_alloc(logger=yes) ");
	xen_hv_ops.close(hv);
	assert_string_equal(calls, "ctx_alloc(logger=yes) ctx_free ");
	assert_int_equal(xen_hv_ops.open(&hv, NULL), 0); /* for teardown */
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
	assert_string_equal(calls, "info(5) suspend(5,flags=LIVE,how=sync) ");
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
	assert_string_equal(calls, "resume(5,cancel=1) ");
	close(sp[0]);
	close(sp[1]);
}

static void test_rename(void **state)
{
	(void)state;
	reset_calls();
	assert_int_equal(xen_hv_ops.rename(hv, 5, "vm1", "vm1--migratedaway"), 0);
	assert_string_equal(calls, "name_to_domid(vm1--migratedaway) rename(5,vm1,vm1--migratedaway) ");
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
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	assert_int_equal(write(sp[1], "V2", 2), 2);
	reset_calls();
	assert_int_equal(xen_hv_ops.receive_stream(hv, sp[0], "vm1--incoming", "{json}", &p, NULL,
						   &domid), 0);
	assert_int_equal(domid, 12);
	/* paused (libxl does not unpause), named <name>--incoming, stream v2, no COLO */
	assert_string_equal(calls, "from_json({json}) create_restore(name=vm1--incoming,"
				   "send_back=-1,stream_version=2,checkpointed=0) ");
	/* create_restore fails after the domain exists: it is destroyed here */
	reset_calls();
	rc_restore = ERROR_FAIL;
	assert_int_equal(xen_hv_ops.receive_stream(hv, sp[0], "vm1--incoming", "{json}", &p, NULL,
						   &domid), ERR_IO);
	assert_string_equal(calls, "from_json({json}) create_restore(name=vm1--incoming,"
				   "send_back=-1,stream_version=2,checkpointed=0) destroy(12) ");
	/* ... or before: nothing to destroy */
	reset_calls();
	restore_sets_domid = 0;
	assert_int_equal(xen_hv_ops.receive_stream(hv, sp[0], "vm1--incoming", "{json}", &p, NULL,
						   &domid), ERR_IO);
	assert_null(strstr(calls, "destroy"));
	/* a configuration libxl cannot parse: no domain is created */
	reset_calls();
	rc_from_json = ERROR_INVAL;
	assert_int_equal(xen_hv_ops.receive_stream(hv, sp[0], "vm1--incoming", "{bad}", &p, NULL,
						   &domid), ERR_PROTO);
	assert_string_equal(calls, "from_json({bad}) ");
	close(sp[0]);
	close(sp[1]);
}

static void test_estimate(void **state)
{
	double pps = 0;

	(void)state;
	reset_calls();
	assert_int_equal(xen_hv_ops.estimate_dirty_rate(hv, 5, 20, &pps), 0);
	assert_true(pps > 0);
	assert_string_equal(calls, "xc_open shadow(5,ENABLE_LOGDIRTY) "
				   "logdirty(5,CLEAN,bitmap=NULL,pages=0) "
				   "logdirty(5,CLEAN,bitmap=NULL,pages=0) shadow(5,OFF) ");
	/* reading fails: log-dirty is still switched off */
	reset_calls();
	rc_clean = EIO;
	assert_int_not_equal(xen_hv_ops.estimate_dirty_rate(hv, 5, 1, &pps), 0);
	assert_string_equal(calls, "shadow(5,ENABLE_LOGDIRTY) logdirty(5,CLEAN,bitmap=NULL,"
				   "pages=0) shadow(5,OFF) ");
	/* already on (a migration runs): refused, and not switched off under its feet */
	reset_calls();
	rc_clean = 0;
	rc_shadow_enable = EBUSY;
	assert_int_equal(xen_hv_ops.estimate_dirty_rate(hv, 5, 1, &pps), ERR_BUSY);
	assert_string_equal(calls, "shadow(5,ENABLE_LOGDIRTY) ");
	assert_true(log_capture_contains(capture, "already on"));
}

/* --- through migrate.c, with the real xen hv_ops ------------------------------------------ */

#define BANNER "xl migration receiver ready, send binary domain data.\n"
#define READY "domain received, ready to unpause"
#define GO "domain is yours, you are cleared to unpause"
#define REPORT "my copy unpause results are as follows"

static int sender(int fd, enum mig_result *result)
{
	struct mig_send_args a = {
		.ops = &xen_hv_ops, .hv = hv, .domid = 5, .name = "vm1", .config_json = "{}",
		.send_fd = fd, .recv_fd = fd, .peer = "node2", .reply_timeout_ms = 2000,
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
	assert_string_equal(calls, "info(5) suspend(5,flags=LIVE,how=sync) resume(5,cancel=1) ");
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
	assert_string_equal(calls, "info(5) suspend(5,flags=LIVE,how=sync) ");
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
	assert_string_equal(calls, "info(5) suspend(5,flags=LIVE,how=sync) "
				   "name_to_domid(vm1--migratedaway) rename(5,vm1,vm1--migratedaway) "
				   "resume(5,cancel=1) ");
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
	assert_string_equal(calls, "info(5) suspend(5,flags=LIVE,how=sync) "
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
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	put_header(sp[1]);
	assert_int_equal(write(sp[1], "V2", 2), 2);
	assert_int_equal(write(sp[1], GO, sizeof(GO)), (ssize_t)sizeof(GO));
	reset_calls();
	assert_int_equal(receiver(sp[0]), 0);
	assert_string_equal(calls, "name_to_domid(vm1) from_json({\"c_info\":{\"name\":\"vm1\"}}) "
				   "create_restore(name=vm1--incoming,send_back=-1,stream_version=2,"
				   "checkpointed=0) name_to_domid(vm1) rename(12,vm1--incoming,vm1) "
				   "unpause(12) ");
	close(sp[0]);
	close(sp[1]);
}

static void test_mig_receive_restore_fails(void **state)
{
	char buf[256];
	ssize_t n;
	int sp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	put_header(sp[1]);
	reset_calls();
	rc_restore = ERROR_FAIL;
	assert_int_equal(receiver(sp[0]), ERR_IO);
	assert_string_equal(calls, "name_to_domid(vm1) from_json({\"c_info\":{\"name\":\"vm1\"}}) "
				   "create_restore(name=vm1--incoming,send_back=-1,stream_version=2,"
				   "checkpointed=0) destroy(12) ");
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
		T(test_send_stream_flags),
		T(test_send_stream_policy_warning),
		T(test_suspend_errors),
		T(test_rename),
		T(test_config_json),
		T(test_receive_stream),
		T(test_estimate),
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
