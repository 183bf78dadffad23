/*
 * sim_host.c - a simulated host: its state directory ($XLEXT_SIM_ROOT, default
 * /run/xl-ext/sim) with one sub-directory per domain (dom/<domid>/ with config.json,
 * info.json, the control socket and a log), a lock serialising name and domid allocation, a
 * domid counter, and its memory capacity ($XLEXT_SIM_HOST_MIB, default: this machine's), less
 * what its domains use.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "xl-ext/sim/sim_int.h"
#include "xl-ext/sim/simctl.h"

/* True while pid runs; a zombie (exited, not yet reaped by init) counts as gone. */
bool sim_pid_running(pid_t pid)
{
	char path[64], buf[256], *p;
	int fd;
	ssize_t n;

	if (kill(pid, 0) < 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

void sim_dom_dir(const struct hv *hv, uint32_t domid, char *buf, size_t len)
{
	snprintf(buf, len, "%s/dom/%u", hv->root, domid);
}

int sim_lock(struct hv *hv)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/lock", hv->root);
	hv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (hv->lock_fd < 0)
		return err_from_errno(errno);
	while (flock(hv->lock_fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return err_from_errno(errno);
	return 0;
}

void sim_unlock(struct hv *hv)
{
	if (hv->lock_fd >= 0)
		close(hv->lock_fd);
	hv->lock_fd = -1;
}

/*
 * The CPU time a domain's process (all its vCPU and service threads) used, in seconds, as
 * Xen's per-domain cpu_time: utime + stime of /proc/<pid>/stat. 0 when it cannot be read.
 */
static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	long tck = sysconf(_SC_CLK_TCK);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || tck <= 0)
		return 0;
	buf[n] = '\0';
	/* the command name may hold spaces and ')': fields restart after the last ')' */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)tck;
}

int sim_read_info(struct hv *hv, uint32_t domid, struct hv_domain_info *info, pid_t *pid_r)
{
	char path[300], *json = NULL;
	json_object *o, *v;
	pid_t pid = 0;
	int rc;

	sim_dom_dir(hv, domid, path, sizeof(path));
	strncat(path, "/info.json", sizeof(path) - strlen(path) - 1);
	rc = file_read_all(path, 65536, &json, NULL);
	if (rc)
		return ERR_NOTFOUND;
	o = json_tokener_parse(json);
	free(json);
	if (!o)
		return ERR_NOTFOUND;
	memset(info, 0, sizeof(*info));
	info->domid = domid;
	if (json_object_object_get_ex(o, "name", &v))
		snprintf(info->name, sizeof(info->name), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(o, "pid", &v))
		pid = json_object_get_int(v);
	if (json_object_object_get_ex(o, "memory", &v))
		info->memory_kib = (uint64_t)json_object_get_int64(v) * 1024;
	if (json_object_object_get_ex(o, "vcpus", &v))
		info->vcpus = (unsigned)json_object_get_int(v);
	if (json_object_object_get_ex(o, "type", &v))
		hv_type_parse(json_object_get_string(v), &info->type);
	if (json_object_object_get_ex(o, "state", &v)) {
		const char *s = json_object_get_string(v);

		info->running = !strcmp(s, "running");
		info->paused = !info->running;
	}
	json_object_put(o);
	if (pid <= 0 || !sim_pid_running(pid))
		return ERR_NOTFOUND; /* the process is gone: no such domain */
	info->cpu_time_s = proc_cpu_s(pid);
	if (pid_r)
		*pid_r = pid;
	return 0;
}

int sim_ctl_open(struct hv *hv, uint32_t domid, int *fd_r)
{
	char path[300];
	int rc;

	sim_dom_dir(hv, domid, path, sizeof(path));
	strncat(path, "/ctl", sizeof(path) - strlen(path) - 1);
	rc = simctl_connect(path, fd_r);
	if (rc)
		log_error("domain %u: cannot reach its control socket %s: %s", domid, path,
		          err_str(rc));
	return rc;
}

/* One request on a fresh connection; the reply text goes to out (may be NULL). */
int sim_ctl_call(struct hv *hv, uint32_t domid, const char *req, char *out, size_t cap)
{
	int fd, rc;

	rc = sim_ctl_open(hv, domid, &fd);
	if (rc)
		return rc;
	rc = simctl_call(fd, req, NULL, 0, out, cap, NULL, NULL);
	close(fd);
	return rc;
}

/* Remove what a dead domain left behind. */
void sim_remove_dom_dir(struct hv *hv, uint32_t domid)
{
	static const char *const files[] = {"ctl", "info.json", "config.json", "log"};
	char dir[300], path[340];

	sim_dom_dir(hv, domid, dir, sizeof(dir));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static int cmp_domid(const void *a, const void *b)
{
	const struct hv_domain_info *x = a, *y = b;

	return x->domid < y->domid ? -1 : x->domid > y->domid;
}

int sim_list(struct hv *hv, struct hv_domain_info **doms_r, size_t *n_r)
{
	char path[300];
	struct hv_domain_info *doms = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/dom", hv->root);
	dir = opendir(path);
	if (!dir) {
		*doms_r = NULL;
		*n_r = 0;
		return errno == ENOENT ? 0 : err_from_errno(errno);
	}
	while ((de = readdir(dir))) {
		char *end;
		unsigned long id = strtoul(de->d_name, &end, 10);
		struct hv_domain_info info;

		if (de->d_name[0] == '.' || *end || id == 0 || id >= HV_INVALID_DOMID)
			continue;
		if (sim_read_info(hv, (uint32_t)id, &info, NULL))
			continue;
		if (n == cap) {
			struct hv_domain_info *nd;

			cap = cap ? cap * 2 : 16;
			nd = realloc(doms, cap * sizeof(*nd));
			if (!nd) {
				free(doms);
				closedir(dir);
				return ERR_NOMEM;
			}
			doms = nd;
		}
		doms[n++] = info;
	}
	closedir(dir);
	if (n > 1)
		qsort(doms, n, sizeof(*doms), cmp_domid);
	*doms_r = doms;
	*n_r = n;
	return 0;
}

int sim_lookup(struct hv *hv, const char *name_or_id, uint32_t *domid_r)
{
	struct hv_domain_info *doms, info;
	size_t n;
	char *end;
	unsigned long id = strtoul(name_or_id, &end, 10);
	int rc;

	if (*name_or_id && !*end) {
		if (id == 0 || id >= HV_INVALID_DOMID ||
		    sim_read_info(hv, (uint32_t)id, &info, NULL))
			return ERR_NOTFOUND;
		*domid_r = (uint32_t)id;
		return 0;
	}
	rc = sim_list(hv, &doms, &n);
	if (rc)
		return rc;
	rc = ERR_NOTFOUND;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(doms[i].name, name_or_id)) {
			*domid_r = doms[i].domid;
			rc = 0;
			break;
		}
	free(doms);
	return rc;
}

int sim_info(struct hv *hv, uint32_t domid, struct hv_domain_info *info)
{
	return sim_read_info(hv, domid, info, NULL);
}

static uint64_t used_mib(struct hv *hv)
{
	struct hv_domain_info *doms;
	uint64_t used = 0;
	size_t n;

	if (sim_list(hv, &doms, &n))
		return 0;
	for (size_t i = 0; i < n; i++)
		used += doms[i].memory_kib / 1024;
	free(doms);
	return used;
}

static uint64_t machine_mib(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz >> 20 : 0;
}

int sim_open(struct hv **hv_r, struct loop *loop)
{
	const char *root = getenv("XLEXT_SIM_ROOT"), *cap = getenv("XLEXT_SIM_HOST_MIB");
	char path[300];
	struct hv *hv;

	(void)loop;
	hv = calloc(1, sizeof(*hv));
	if (!hv)
		return ERR_NOMEM;
	hv->lock_fd = -1;
	snprintf(hv->root, sizeof(hv->root), "%s", root && root[0] ? root : "/run/xl-ext/sim");
	hv->capacity_mib = cap && cap[0] ? strtoull(cap, NULL, 10) : machine_mib();
	/* the parents too: on a fresh machine /run/xl-ext does not exist yet */
	for (char *sl = strchr(hv->root + 1, '/'); sl; sl = strchr(sl + 1, '/')) {
		*sl = '\0';
		if (mkdir(hv->root, 0755) < 0 && errno != EEXIST)
			log_debug("sim: cannot create %s: %s", hv->root, strerror(errno));
		*sl = '/';
	}
	snprintf(path, sizeof(path), "%s/dom", hv->root);
	if ((mkdir(hv->root, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST)) {
		log_error_errno(errno, "sim: cannot create state directory %s", path);
		free(hv);
		return err_from_errno(errno);
	}
	*hv_r = hv;
	return 0;
}

void sim_close(struct hv *hv)
{
	if (!hv)
		return;
	sim_unlock(hv);
	free(hv);
}

int sim_host_info(struct hv *hv, struct hv_host_info *info)
{
	uint64_t used = used_mib(hv);

	memset(info, 0, sizeof(*info));
	snprintf(info->hypervisor, sizeof(info->hypervisor), "sim");
	snprintf(info->version, sizeof(info->version), "%s", PACKAGE_VERSION);
	info->nr_cpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	info->total_kib = hv->capacity_mib * 1024;
	info->free_kib = used < hv->capacity_mib ? (hv->capacity_mib - used) * 1024 : 0;
	return 0;
}

int sim_next_domid(struct hv *hv, uint32_t *domid_r)
{
	char path[300], *s = NULL, buf[32];
	unsigned long id = 1;
	int rc;

	snprintf(path, sizeof(path), "%s/next-domid", hv->root);
	if (!file_read_all(path, 64, &s, NULL)) {
		id = strtoul(s, NULL, 10);
		free(s);
	}
	if (id == 0 || id >= 32000)
		id = 1;
	for (unsigned tries = 0; tries < 32000; tries++, id = id >= 31999 ? 1 : id + 1) {
		char dir[300];
		struct stat st;

		sim_dom_dir(hv, (uint32_t)id, dir, sizeof(dir));
		if (stat(dir, &st) == 0) {
			struct hv_domain_info info;

			if (!sim_read_info(hv, (uint32_t)id, &info, NULL))
				continue;
			sim_remove_dom_dir(hv, (uint32_t)id); /* stale */
		}
		snprintf(buf, sizeof(buf), "%lu\n", id + 1);
		rc = file_write_atomic(path, buf, strlen(buf), 0600);
		if (rc)
			return rc;
		*domid_r = (uint32_t)id;
		return 0;
	}
	return ERR_NOSPACE;
}

int sim_name_taken(struct hv *hv, const char *name)
{
	uint32_t domid;

	return sim_lookup(hv, name, &domid) == 0;
}
