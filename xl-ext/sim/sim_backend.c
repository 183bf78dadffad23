/*
 * sim_backend.c - the simulated Xen host backend (struct hv_ops "sim").
 *
 * A simulated host is a state directory ($XLEXT_SIM_ROOT); its memory is this machine's.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/hv.h"

struct hv {
	char root[256];
};

static int sim_open(struct hv **hv_r, struct loop *loop)
{
	const char *root = getenv("XLEXT_SIM_ROOT");
	struct hv *hv;

	(void)loop;
	hv = calloc(1, sizeof(*hv));
	if (!hv)
		return ERR_NOMEM;
	snprintf(hv->root, sizeof(hv->root), "%s", root && root[0] ? root : "/run/xl-ext/sim");
	if (mkdir(hv->root, 0700) < 0 && errno != EEXIST) {
		log_error_errno(errno, "sim: cannot create state directory %s", hv->root);
		free(hv);
		return err_from_errno(errno);
	}
	*hv_r = hv;
	return 0;
}

static void sim_close(struct hv *hv)
{
	free(hv);
}

/* Host memory as the simulated hypervisor reports it: this machine's /proc/meminfo. */
static int sim_host_info(struct hv *hv, struct hv_host_info *info)
{
	char line[256];
	FILE *f;

	(void)hv;
	memset(info, 0, sizeof(*info));
	snprintf(info->hypervisor, sizeof(info->hypervisor), "sim");
	snprintf(info->version, sizeof(info->version), "%s", PACKAGE_VERSION);
	info->nr_cpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	f = fopen("/proc/meminfo", "r");
	if (!f) {
		log_error_errno(errno, "sim: cannot read /proc/meminfo");
		return err_from_errno(errno);
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kib;

		if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
			info->total_kib = kib;
		else if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			info->free_kib = kib;
	}
	fclose(f);
	return 0;
}

const struct hv_ops sim_hv_ops = {
	.name = "sim",
	.open = sim_open,
	.close = sim_close,
	.host_info = sim_host_info,
};
