/*
 * sim_migrate.c - the sim backend's migration streams: the source end drives the pre-copy
 * engine (precopy.h) over the domain's control socket and memory, the destination end
 * creates an incoming domain and receives into it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/precopy/postcopy.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/sim/sim_int.h"
#include "xl-ext/sim/simcfg.h"
#include "xl-ext/sim/simctl.h"

/* --- the source side ------------------------------------------------------------------- */

struct sim_source {
	struct hv *hv;
	uint32_t domid;
	int ctl;
	uint64_t *bitmap;
	size_t bm_bytes;
};

static int src_logdirty_enable(void *arg, const uint64_t **bitmap_r, char *method, size_t len)
{
	struct sim_source *s = arg;
	int fd = -1, rc;

	rc = simctl_call(s->ctl, "logdirty-enable", NULL, 0, method, len, NULL, &fd);
	if (rc)
		return rc;
	if (fd < 0)
		return ERR_PROTO;
	if (!s->bitmap) {
		s->bitmap = mmap(NULL, 2 * s->bm_bytes, PROT_READ, MAP_SHARED, fd, 0);
		if (s->bitmap == MAP_FAILED) {
			s->bitmap = NULL;
			rc = err_from_errno(errno);
		}
	}
	close(fd);
	*bitmap_r = s->bitmap;
	return rc;
}

static int src_logdirty_fetch(void *arg, uint64_t *ndirty_r)
{
	struct sim_source *s = arg;
	char buf[64];
	int rc = simctl_call(s->ctl, "logdirty-fetch", NULL, 0, buf, sizeof(buf), NULL, NULL);

	if (!rc)
		*ndirty_r = strtoull(buf, NULL, 10);
	return rc;
}

/* The pages written since the last fetch: the second half of the domain's bitmap memfd. */
static int src_logdirty_peek(void *arg, const uint64_t **bitmap_r, uint64_t *ndirty_r)
{
	struct sim_source *s = arg;
	char buf[64];
	int rc;

	if (!s->bitmap)
		return ERR_BUSY;
	rc = simctl_call(s->ctl, "logdirty-peek", NULL, 0, buf, sizeof(buf), NULL, NULL);
	if (rc)
		return rc;
	*ndirty_r = strtoull(buf, NULL, 10);
	*bitmap_r = s->bitmap + s->bm_bytes / 8;
	return 0;
}

static int src_throttle(void *arg, unsigned pct)
{
	struct sim_source *s = arg;
	char req[32];

	snprintf(req, sizeof(req), "throttle %u", pct);
	return simctl_call(s->ctl, req, NULL, 0, NULL, 0, NULL, NULL);
}

static int src_suspend(void *arg, struct pc_cpu_state *st)
{
	struct sim_source *s = arg;
	static uint8_t buf[SIMCTL_MAX_MSG];
	size_t len = 0;
	int rc;

	rc = simctl_call(s->ctl, "suspend", NULL, 0, buf, sizeof(buf), &len, NULL);
	if (rc)
		return rc;
	return sim_state_decode(buf, len, st);
}

static const struct pc_source_ops sim_source_ops = {
    .logdirty_enable = src_logdirty_enable,
    .logdirty_fetch = src_logdirty_fetch,
    .logdirty_peek = src_logdirty_peek,
    .throttle = src_throttle,
    .suspend = src_suspend,
};

/*
 * A domain's memory file (its RAM memfd) and size in pages. The migration reads and writes
 * it with pread/pwrite, never through a mapping: see the memory model in simdom_mem.c.
 */
static int memory_file(int ctl, int *fd_r, uint64_t *nr_pages_r)
{
	char buf[64];
	int fd = -1, rc;

	rc = simctl_call(ctl, "memfd", NULL, 0, buf, sizeof(buf), NULL, &fd);
	if (rc)
		return rc;
	if (fd < 0)
		return ERR_PROTO;
	*nr_pages_r = strtoull(buf, NULL, 10);
	*fd_r = fd;
	return 0;
}

int sim_sample_dirty(struct hv *hv, uint32_t domid, unsigned window_ms, unsigned windows,
                     struct hv_dirty_sample *out)
{
	struct sim_source s = {.hv = hv, .domid = domid, .ctl = -1};
	const uint64_t *bitmap = NULL;
	uint64_t *all = NULL, n;
	char method[16];
	struct stat st;
	int mem_fd = -1, rc;

	memset(out, 0, sizeof(*out));
	if (!windows || windows > HV_SAMPLE_MAX_WINDOWS || !window_ms)
		return ERR_INVAL;
	rc = sim_ctl_open(hv, domid, &s.ctl);
	if (rc)
		return rc;
	rc = memory_file(s.ctl, &mem_fd, &out->nr_pages);
	if (rc)
		goto out;
	if (fstat(mem_fd, &st) == 0)
		out->data_pages = (uint64_t)st.st_blocks * 512 / 4096;
	s.bm_bytes = ((out->nr_pages + 63) / 64) * 8;
	all = calloc(1, s.bm_bytes);
	if (!all) {
		rc = ERR_NOMEM;
		goto out;
	}
	rc = src_logdirty_enable(&s, &bitmap, method, sizeof(method));
	if (!rc)
		rc = src_logdirty_fetch(&s, &n); /* what enabling left: from now on */
	for (unsigned w = 0; w < windows && !rc; w++) {
		struct timespec ts = {.tv_sec = window_ms / 1000,
		                      .tv_nsec = (long)(window_ms % 1000) * 1000000};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		rc = src_logdirty_fetch(&s, &out->dirtied[w]);
		for (size_t i = 0; !rc && i < s.bm_bytes / 8; i++)
			all[i] |= bitmap[i];
	}
	if (bitmap) /* tracking off again, on every path */
		simctl_call(s.ctl, "logdirty-disable", NULL, 0, NULL, 0, NULL, NULL);
	for (size_t i = 0; !rc && i < s.bm_bytes / 8; i++)
		out->union_pages += (uint64_t)__builtin_popcountll(all[i]);
	out->windows = windows;
	out->window_ms = window_ms;
out:
	free(all);
	if (mem_fd >= 0)
		close(mem_fd);
	if (s.bitmap)
		munmap(s.bitmap, 2 * s.bm_bytes);
	close(s.ctl);
	return rc;
}

int sim_send_stream(struct hv *hv, uint32_t domid, int fd, const struct mig_params *params,
                    struct mig_report *report)
{
	struct sim_source s = {.hv = hv, .domid = domid, .ctl = -1};
	struct pc_source src = {.ops = &sim_source_ops, .arg = &s, .mem_fd = -1};
	struct mig_report scratch;
	struct hv_domain_info info;
	int rc;

	rc = sim_read_info(hv, domid, &info, NULL);
	if (rc)
		return rc;
	rc = sim_ctl_open(hv, domid, &s.ctl);
	if (rc)
		return rc;
	rc = memory_file(s.ctl, &src.mem_fd, &src.nr_pages);
	if (rc)
		goto out;
	s.bm_bytes = ((src.nr_pages + 63) / 64) * 8;
	src.type = info.type;
	src.nr_vcpus = info.vcpus;
	rc = pc_send(&src, fd, params, report ? report : &scratch);
out:
	if (src.mem_fd >= 0)
		close(src.mem_fd);
	if (s.bitmap)
		munmap(s.bitmap, 2 * s.bm_bytes);
	close(s.ctl);
	return rc;
}

/* --- the destination side -------------------------------------------------------------- */

/*
 * Post-copy: the pages still to come must fault. A page a pre-copy round wrote here and the
 * guest dirtied since (hybrid) is a stale copy: punched out, it reads as missing again. Then
 * the domain's memory is armed (userfaultfd) and the receiver serves its faults.
 */
static int postcopy_arm(struct hv *hv, uint32_t domid, int mem_fd, uint64_t nr_pages,
                        struct mig_report *report, const char *name)
{
	const uint64_t *need = pc_postcopy_need(report);
	char buf[160] = "";
	uint64_t pfn = 0;
	int uffd = -1, kfd = -1, rc;

	while (pfn < nr_pages) {
		uint64_t end;

		while (pfn < nr_pages && !((need[pfn / 64] >> (pfn % 64)) & 1))
			pfn++;
		for (end = pfn; end < nr_pages && ((need[end / 64] >> (end % 64)) & 1); end++)
			;
		if (end > pfn && fallocate(mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		                           (off_t)(pfn * 4096), (off_t)((end - pfn) * 4096)) < 0) {
			log_error_errno(
			    errno, "domain %s: cannot drop stale pages before post-copy", name);
			return err_from_errno(errno);
		}
		pfn = end;
	}
	/* armed over a connection of its own, held until the phase ends: the domain pauses
	 * itself for good when it closes first (this receiver died) */
	rc = sim_ctl_open(hv, domid, &kfd);
	if (!rc)
		rc = simctl_call(kfd, "postcopy-arm", NULL, 0, buf, sizeof(buf), NULL, &uffd);
	if (rc) {
		log_error("domain %s: %s", name, buf);
		if (kfd >= 0)
			close(kfd);
		return rc;
	}
	if (uffd < 0) {
		close(kfd);
		return ERR_PROTO;
	}
	return pc_postcopy_attach(report, uffd, strtoull(buf, NULL, 16), kfd);
}

int sim_postcopy_end(struct hv *hv, uint32_t domid, struct mig_report *report)
{
	int kfd = pc_postcopy_keep_fd(report), rc = pc_postcopy_wait(report), rc2;

	if (!report->postcopy.used)
		return pc_postcopy_finish(report);
	/* on the connection that armed it, before it closes */
	rc2 = kfd >= 0 ? simctl_call(kfd, rc ? "postcopy-failed" : "postcopy-done", NULL, 0, NULL,
	                             0, NULL, NULL)
	               : ERR_INVAL;
	if (rc2)
		log_error("domain %u: could not tell it that post-copy %s: %s", domid,
		          rc ? "failed" : "ended", err_str(rc2));
	pc_postcopy_finish(report);
	return rc ? rc : rc2;
}

int sim_receive_stream(struct hv *hv, int fd, const char *name, const char *config_json,
                       const struct mig_params *params, struct mig_report *report,
                       uint32_t *domid_r)
{
	struct sim_config cfg;
	struct pc_cpu_state st = {0};
	struct mig_report scratch = {0};
	uint32_t domid = HV_INVALID_DOMID;
	uint8_t *blob = NULL;
	uint64_t nr_pages = 0;
	size_t blob_len = 0;
	int64_t t_end = 0;
	int ctl = -1, mem_fd = -1, rc;

	if (!report)
		report = &scratch;
	rc = simcfg_from_json(config_json, &cfg);
	if (rc)
		return rc;
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	rc = sim_create_from_config(hv, &cfg, 1, &domid);
	if (rc)
		return rc;
	rc = sim_ctl_open(hv, domid, &ctl);
	if (rc)
		goto out;
	rc = memory_file(ctl, &mem_fd, &nr_pages);
	if (rc)
		goto out;
	rc = pc_receive(fd, mem_fd, nr_pages, cfg.type, cfg.vcpus, params ? params->extra : NULL,
	                &st, report);
	if (!rc && report->pc)
		rc = postcopy_arm(hv, domid, mem_fd, nr_pages, report, name);
	if (rc)
		goto out;
	t_end = loop_now_us();
	rc = sim_state_encode(&st, &blob, &blob_len);
	if (rc)
		goto out;
	rc = simctl_call(ctl, "restore-state", blob, blob_len, NULL, 0, NULL, NULL);
	if (rc)
		log_error("domain %s: the received vCPU/device state was refused", name);
	log_debug("domain %s: state restored %.1f ms after the stream ended", name,
	          (double)(loop_now_us() - t_end) / 1000.0);
out:
	free(blob);
	pc_cpu_state_free(&st);
	if (mem_fd >= 0)
		close(mem_fd);
	if (ctl >= 0)
		close(ctl);
	if (rc)
		pc_postcopy_cancel(report);
	if (rc && domid != HV_INVALID_DOMID)
		sim_destroy_domain(hv, domid);
	else if (!rc)
		*domid_r = domid;
	return rc;
}
