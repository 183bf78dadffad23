/*
 * xen_host.c - what the xen backend asks libxenctrl and libxenstore: CPU featuresets (for the
 * pre-flight compatibility check), a short log-dirty sample (the estimate's) and the
 * domain's disk backends (so the storage layer can tell which disks are on iSCSI).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/core/hv.h"
#include "xl-ext/xen/xen.h"

#include <xenguest.h> /* after xenctrl.h, which it needs */

/* --- CPU featuresets --------------------------------------------------------------------- */

static const struct {
	unsigned bit;
	const char *name;
} feature_names[] = {
#define XEN_CPUFEATURE(name, value) {value, #name},
#include <xen/arch-x86/cpufeatureset.h>
#undef XEN_CPUFEATURE
};

/* Xen's name of a featureset bit ("AVX2"), or NULL when this libxenctrl does not know it. */
const char *xen_cpu_feature_name(unsigned bit)
{
	for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++)
		if (feature_names[i].bit == bit)
			return feature_names[i].name;
	return NULL;
}

/* One of the host's featuresets (XEN_SYSCTL_cpu_featureset_{pv,hvm}[_max]). */
int xen_cpu_featureset(struct hv *hv, enum hv_featureset_kind kind, struct hv_featureset *fs)
{
	static const uint32_t index[] = {
	    [HV_FEATURES_PV_DEFAULT] = XEN_SYSCTL_cpu_featureset_pv,
	    [HV_FEATURES_HVM_DEFAULT] = XEN_SYSCTL_cpu_featureset_hvm,
	    [HV_FEATURES_PV_MAX] = XEN_SYSCTL_cpu_featureset_pv_max,
	    [HV_FEATURES_HVM_MAX] = XEN_SYSCTL_cpu_featureset_hvm_max,
	};
	xc_interface *xch = xen_xc(hv);
	uint32_t nr = HV_FEATURESET_MAX;

	if (!xch)
		return ERR_NOXEN;
	memset(fs, 0, sizeof(*fs));
	if (xc_get_cpu_featureset(xch, index[kind], &nr, fs->words) < 0) {
		log_error_errno(errno, "xc_get_cpu_featureset(%u) failed", index[kind]);
		memset(fs, 0, sizeof(*fs));
		return err_from_errno(errno);
	}
	fs->nr_words = nr < HV_FEATURESET_MAX ? nr : HV_FEATURESET_MAX;
	return 0;
}

/* --- dirty-rate estimate ----------------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Turn log-dirty on for windows of window_ms and take the bitmap of the pages the guest dirtied
 * in each (the distinct pages, their union), as the sim backend's sample: what the model
 * (predict.h) fits its write rate and working set to. Termination signals are held back while
 * it is on, so log-dirty is switched off on every path; it counts what the hypervisor sees
 * (guest CPU writes), not the device model's DMA into an HVM guest.
 */
int xen_sample_dirty(struct hv *hv, uint32_t domid, unsigned window_ms, unsigned windows,
                     struct hv_dirty_sample *out)
{
	xc_interface *xch = xen_xc(hv);
	DECLARE_HYPERCALL_BUFFER(unsigned long, bitmap);
	xc_shadow_op_stats_t stats;
	xc_domaininfo_t info;
	xen_pfn_t maxpfn = 0;
	uint64_t *all = NULL, npfns;
	size_t nwords = 0;
	sigset_t block, old;
	bool enabled = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!xch)
		return ERR_NOXEN;
	if (!windows || windows > HV_SAMPLE_MAX_WINDOWS || !window_ms)
		return ERR_INVAL;
	if (xc_domain_maximum_gpfn(xch, domid, &maxpfn) < 0 ||
	    xc_domain_getinfolist(xch, domid, 1, &info) != 1 || info.domain != domid) {
		rc = err_from_errno(errno ? errno : ESRCH);
		log_error_errno(errno, "domain %u: cannot read its memory's size", domid);
		return rc;
	}
	/* the bitmap spans the pfns up to the highest (a PVH guest's reach past its MMIO hole);
	 * the guest's memory is what it may hold, the data what it holds: libxc's round 0 */
	npfns = (uint64_t)maxpfn + 1;
	out->nr_pages = info.max_pages ? info.max_pages : info.tot_pages;
	out->data_pages = info.tot_pages;
	out->sender_sends_all = true; /* libxc's rounds send every page due */
	nwords = (npfns + 63) / 64;
	bitmap = xc_hypercall_buffer_alloc(xch, bitmap, nwords * 8);
	all = calloc(nwords, 8);
	if (!bitmap || !all) {
		rc = ERR_NOMEM;
		goto done;
	}
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	if (xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) < 0) {
		rc = errno == EBUSY ? ERR_BUSY : err_from_errno(errno);
		log_error_errno(errno, "domain %u: cannot enable log-dirty mode%s", domid,
		                rc == ERR_BUSY ? " (already on: is it being migrated or saved?)"
		                               : "");
		goto out;
	}
	enabled = true;
	memset(&stats, 0, sizeof(stats));
	/* the first clean empties what enabling marked */
	if (xc_logdirty_control(xch, domid, XEN_DOMCTL_SHADOW_OP_CLEAN, NULL, 0, 0, &stats) < 0)
		goto failed_clean;
	for (unsigned w = 0; w < windows; w++) {
		sleep_ms(window_ms);
		memset(bitmap, 0, nwords * 8);
		memset(&stats, 0, sizeof(stats));
		if (xc_logdirty_control(xch, domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
		                        HYPERCALL_BUFFER(bitmap), npfns, 0, &stats) < 0)
			goto failed_clean;
		for (size_t i = 0; i < nwords; i++) {
			uint64_t word = ((const uint64_t *)bitmap)[i];

			if (i == nwords - 1 && npfns % 64)
				word &= (1ull << (npfns % 64)) - 1;
			out->dirtied[w] += (uint64_t)__builtin_popcountll(word);
			all[i] |= word;
		}
	}
	for (size_t i = 0; i < nwords; i++)
		out->union_pages += (uint64_t)__builtin_popcountll(all[i]);
	out->windows = windows;
	out->window_ms = window_ms;
	rc = 0;
	goto out;
failed_clean:
	rc = err_from_errno(errno);
	log_error_errno(errno, "domain %u: cannot read the log-dirty bitmap", domid);
out:
	if (enabled && xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) < 0) {
		log_error_errno(errno,
		                "domain %u: cannot switch log-dirty mode off again; run "
		                "'xl-ext migrate --estimate' again or migrate it to clear it",
		                domid);
		if (!rc)
			rc = err_from_errno(errno);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
done:
	if (bitmap)
		xc_hypercall_buffer_free(xch, bitmap);
	free(all);
	return rc;
}

/* --- disk backends (xenstore) ------------------------------------------------------------ */

/* Read path into buf (empty when absent); 0, or ERR_NOTFOUND when absent. */
static int xs_read_str(struct xs_handle *xsh, const char *path, char *buf, size_t len)
{
	unsigned int n = 0;
	char *v = xs_read(xsh, XBT_NULL, path, &n);

	buf[0] = '\0';
	if (!v)
		return ERR_NOTFOUND;
	snprintf(buf, len, "%s", v);
	free(v);
	return 0;
}

/*
 * The domain's vbd devices, from its frontend entries (/local/domain/<domid>/device/vbd/<id>:
 * backend, backend-id) to their backends' params, type, script and mode ("r": read-only).
 * A frontend without a backend node is being torn down and is skipped; a domain without a vbd
 * directory has no disks. ERR_NOTFOUND (logged) when a backend has no params (attaching or
 * detaching), ERR_NOXEN when xenstore cannot be reached. Caller frees *disks_r.
 */
int xen_disk_backends(struct hv *hv, uint32_t domid, struct hv_disk **disks_r, size_t *n_r)
{
	struct xs_handle *xsh = xen_xs(hv);
	struct hv_disk *disks = NULL;
	char path[256], be[256], id[16], mode[8];
	char **ents = NULL;
	unsigned int num = 0;
	size_t n = 0;
	int rc = 0;

	if (!xsh)
		return ERR_NOXEN;
	snprintf(path, sizeof(path), "/local/domain/%u/device/vbd", domid);
	ents = xs_directory(xsh, XBT_NULL, path, &num);
	if (!ents)
		num = 0; /* no vbd directory: no disks */
	disks = calloc(num ? num : 1, sizeof(*disks));
	if (!disks) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < num; i++) {
		struct hv_disk *d = &disks[n];
		char key[512];

		snprintf(key, sizeof(key), "%s/%s/backend", path, ents[i]);
		if (xs_read_str(xsh, key, be, sizeof(be)))
			continue; /* a frontend being torn down */
		snprintf(d->vdev, sizeof(d->vdev), "%s", ents[i]);
		snprintf(key, sizeof(key), "%s/%s/backend-id", path, ents[i]);
		if (!xs_read_str(xsh, key, id, sizeof(id)))
			d->backend_domid = (uint32_t)strtoul(id, NULL, 10);
		snprintf(key, sizeof(key), "%s/params", be);
		if (xs_read_str(xsh, key, d->params, sizeof(d->params))) {
			/* skipping it would let a local disk pass the migration disk check */
			log_error("domain %u: disk %s: its backend %s has no params node; is the "
			          "disk being attached or detached? retry when it settles",
			          domid, ents[i], be);
			rc = ERR_NOTFOUND;
			goto out;
		}
		snprintf(key, sizeof(key), "%s/type", be);
		xs_read_str(xsh, key, d->type, sizeof(d->type));
		snprintf(key, sizeof(key), "%s/script", be);
		xs_read_str(xsh, key, d->script, sizeof(d->script));
		snprintf(key, sizeof(key), "%s/mode", be);
		if (!xs_read_str(xsh, key, mode, sizeof(mode)))
			d->readonly = mode[0] == 'r' && !strchr(mode, 'w');
		n++;
	}
	*disks_r = disks;
	*n_r = n;
	disks = NULL;
out:
	free(disks);
	free(ents);
	return rc;
}

int xen_disk_specs(struct hv *hv, uint32_t domid, struct hv_disk_specs *specs)
{
	struct hv_disk *bk = NULL;
	char spec[512];
	size_t n = 0;
	int rc;

	specs->n = 0;
	specs->spec = NULL;
	rc = xen_disk_backends(hv, domid, &bk, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		rc = hv_disk_spec_from_backend(&bk[i], spec, sizeof(spec));
		if (!rc)
			rc = hv_disk_specs_add(specs, spec);
	}
	if (rc)
		hv_disk_specs_free(specs);
	free(bk);
	return rc;
}
