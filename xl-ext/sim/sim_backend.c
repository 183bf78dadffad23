/*
 * sim_backend.c - the simulated Xen host backend (struct hv_ops "sim").
 *
 * A simulated host is a state directory ($XLEXT_SIM_ROOT, default /run/xl-ext/sim): one
 * sub-directory per domain (dom/<domid>/ with config.json, info.json, the control socket and
 * a log), a lock serialising name and domid allocation, and a domid counter. Each domain is a
 * process (simdom.c) driven over its control socket. The host's memory capacity is
 * $XLEXT_SIM_HOST_MIB (default: this machine's), less what its domains use.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/core/hv.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/sim/sim.h"
#include "xl-ext/sim/simcfg.h"
#include "xl-ext/sim/simctl.h"

#define SIM_SPAWN_TIMEOUT_MS   15000
#define SIM_DESTROY_TIMEOUT_MS 5000

#define SIM_DEFERRED_MAPS 4

struct hv {
	char root[256];
	uint64_t capacity_mib;
	int lock_fd;
	/*
	 * Guest memory mappings of a migration, unmapped at close: tearing down the page tables
	 * of a large mapping takes milliseconds, which must not fall inside the downtime.
	 */
	struct {
		void *addr;
		size_t len;
	} deferred[SIM_DEFERRED_MAPS];
};

/* Unmap at close, or now if the table is full. */
static void unmap_later(struct hv *hv, void *addr, size_t len)
{
	for (size_t i = 0; i < SIM_DEFERRED_MAPS; i++) {
		if (!hv->deferred[i].addr) {
			hv->deferred[i].addr = addr;
			hv->deferred[i].len = len;
			return;
		}
	}
	munmap(addr, len);
}

/* True while pid runs; a zombie (exited, not yet reaped by init) counts as gone. */
static bool pid_running(pid_t pid)
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

/* --- paths, lock, domain records --------------------------------------------------------- */

static void dom_dir(const struct hv *hv, uint32_t domid, char *buf, size_t len)
{
	snprintf(buf, len, "%s/dom/%u", hv->root, domid);
}

static int sim_lock(struct hv *hv)
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

static void sim_unlock(struct hv *hv)
{
	if (hv->lock_fd >= 0)
		close(hv->lock_fd);
	hv->lock_fd = -1;
}

static int read_info(struct hv *hv, uint32_t domid, struct hv_domain_info *info, pid_t *pid_r)
{
	char path[300], *json = NULL;
	json_object *o, *v;
	pid_t pid = 0;
	int rc;

	dom_dir(hv, domid, path, sizeof(path));
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
	if (pid <= 0 || !pid_running(pid))
		return ERR_NOTFOUND; /* the process is gone: no such domain */
	if (pid_r)
		*pid_r = pid;
	return 0;
}

static int ctl_open(struct hv *hv, uint32_t domid, int *fd_r)
{
	char path[300];
	int rc;

	dom_dir(hv, domid, path, sizeof(path));
	strncat(path, "/ctl", sizeof(path) - strlen(path) - 1);
	rc = simctl_connect(path, fd_r);
	if (rc)
		log_error("domain %u: cannot reach its control socket %s: %s", domid, path,
		          err_str(rc));
	return rc;
}

/* One request on a fresh connection; the reply text goes to out (may be NULL). */
static int ctl_call(struct hv *hv, uint32_t domid, const char *req, char *out, size_t cap)
{
	int fd, rc;

	rc = ctl_open(hv, domid, &fd);
	if (rc)
		return rc;
	rc = simctl_call(fd, req, NULL, 0, out, cap, NULL, NULL);
	close(fd);
	return rc;
}

/* Remove what a dead domain left behind. */
static void remove_dom_dir(struct hv *hv, uint32_t domid)
{
	static const char *const files[] = {"ctl", "info.json", "config.json", "log"};
	char dir[300], path[340];

	dom_dir(hv, domid, dir, sizeof(dir));
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

static int sim_list(struct hv *hv, struct hv_domain_info **doms_r, size_t *n_r)
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
		if (read_info(hv, (uint32_t)id, &info, NULL))
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

static int sim_lookup(struct hv *hv, const char *name_or_id, uint32_t *domid_r)
{
	struct hv_domain_info *doms, info;
	size_t n;
	char *end;
	unsigned long id = strtoul(name_or_id, &end, 10);
	int rc;

	if (*name_or_id && !*end) {
		if (id == 0 || id >= HV_INVALID_DOMID || read_info(hv, (uint32_t)id, &info, NULL))
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

static int sim_info(struct hv *hv, uint32_t domid, struct hv_domain_info *info)
{
	return read_info(hv, domid, info, NULL);
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

/* --- open / host ------------------------------------------------------------------------- */

static uint64_t machine_mib(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz >> 20 : 0;
}

static int sim_open(struct hv **hv_r, struct loop *loop)
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

static void sim_close(struct hv *hv)
{
	if (!hv)
		return;
	for (size_t i = 0; i < SIM_DEFERRED_MAPS; i++)
		if (hv->deferred[i].addr)
			munmap(hv->deferred[i].addr, hv->deferred[i].len);
	sim_unlock(hv);
	free(hv);
}

static int sim_host_info(struct hv *hv, struct hv_host_info *info)
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

/* --- creating domains -------------------------------------------------------------------- */

static int next_domid(struct hv *hv, uint32_t *domid_r)
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

		dom_dir(hv, (uint32_t)id, dir, sizeof(dir));
		if (stat(dir, &st) == 0) {
			struct hv_domain_info info;

			if (!read_info(hv, (uint32_t)id, &info, NULL))
				continue;
			remove_dom_dir(hv, (uint32_t)id); /* stale */
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

/*
 * Start a domain process for dir (config.json written) and wait until it is ready. The
 * process is re-parented to init (double fork) and logs to dir/log.
 */
static int spawn_domain(const char *dir, int incoming)
{
	char fdstr[16], logpath[320];
	int pipefd[2], status;
	char ready = 1;
	pid_t child;
	struct pollfd p;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return err_from_errno(errno);
	child = fork();
	if (child < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return err_from_errno(errno);
	}
	if (child == 0) {
		int devnull, logfd;

		setsid();
		if (fork() != 0)
			_exit(0);
		devnull = open("/dev/null", O_RDONLY);
		snprintf(logpath, sizeof(logpath), "%s/log", dir);
		logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (devnull >= 0)
			dup2(devnull, 0);
		if (logfd >= 0) {
			dup2(logfd, 1);
			dup2(logfd, 2);
		}
		/* the notify pipe must survive exec */
		fcntl(pipefd[1], F_SETFD, 0);
		snprintf(fdstr, sizeof(fdstr), "%d", pipefd[1]);
		execl("/proc/self/exe", "xl-ext", "__sim-domain", dir,
		      incoming ? "incoming" : "boot", fdstr, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	p.fd = pipefd[0];
	p.events = POLLIN;
	if (poll(&p, 1, SIM_SPAWN_TIMEOUT_MS) != 1 || read(pipefd[0], &ready, 1) != 1)
		ready = 1;
	close(pipefd[0]);
	if (ready != 0) {
		char *text = NULL;

		snprintf(logpath, sizeof(logpath), "%s/log", dir);
		if (!file_read_all(logpath, 1 << 16, &text, NULL) && text[0]) {
			size_t len = strlen(text);

			while (len && text[len - 1] == '\n')
				text[--len] = '\0';
			log_error("the domain process failed to start: %s",
			          len > 600 ? text + len - 600 : text);
		} else {
			log_error("the domain process failed to start (no message)");
		}
		free(text);
		return ERR_IO;
	}
	return 0;
}

static int name_taken(struct hv *hv, const char *name)
{
	uint32_t domid;

	return sim_lookup(hv, name, &domid) == 0;
}

/* Create the record and process of a domain; with incoming, an empty paused domain. */
static int create_from_config(struct hv *hv, const struct sim_config *cfg, int incoming,
                              uint32_t *domid_r)
{
	char dir[300], path[340], *json = NULL;
	struct hv_host_info hi;
	uint32_t domid = HV_INVALID_DOMID;
	int rc;

	rc = sim_lock(hv);
	if (rc)
		goto out;
	if (name_taken(hv, cfg->name)) {
		log_error("a domain named '%s' already exists on this host", cfg->name);
		rc = ERR_EXISTS;
		goto out;
	}
	sim_host_info(hv, &hi);
	if (cfg->memory_mib * 1024 > hi.free_kib) {
		log_error("not enough free memory on this host for domain '%s': %llu MiB needed, "
		          "%llu MiB free",
		          cfg->name, (unsigned long long)cfg->memory_mib,
		          (unsigned long long)(hi.free_kib / 1024));
		rc = ERR_NOSPACE;
		goto out;
	}
	rc = next_domid(hv, &domid);
	if (rc)
		goto out;
	dom_dir(hv, domid, dir, sizeof(dir));
	if (mkdir(dir, 0700) < 0) {
		rc = err_from_errno(errno);
		log_error_errno(errno, "cannot create %s", dir);
		goto out;
	}
	rc = simcfg_to_json(cfg, &json);
	if (rc)
		goto out;
	snprintf(path, sizeof(path), "%s/config.json", dir);
	rc = file_write_atomic(path, json, strlen(json), 0600);
	if (rc)
		goto out;
	rc = spawn_domain(dir, incoming);
	if (rc)
		goto out;
	*domid_r = domid;
out:
	if (rc && domid != HV_INVALID_DOMID)
		remove_dom_dir(hv, domid);
	free(json);
	sim_unlock(hv);
	return rc;
}

static int sim_create(struct hv *hv, const char *config_path, const struct hv_create_args *args,
                      uint32_t *domid_r)
{
	struct sim_config cfg;
	int rc;

	rc = simcfg_parse_file(config_path, &cfg);
	if (rc)
		return rc;
	if (args && args->name)
		snprintf(cfg.name, sizeof(cfg.name), "%s", args->name);
	rc = create_from_config(hv, &cfg, 0, domid_r);
	if (rc)
		return rc;
	if (!args || !args->paused) {
		rc = ctl_call(hv, *domid_r, "unpause", NULL, 0);
		if (rc) {
			log_error("domain %s (%u) was created but could not be started: %s",
			          cfg.name, *domid_r, err_str(rc));
			sim_destroy_domain(hv, *domid_r);
		}
	}
	return rc;
}

/*
 * Wait at most timeout_ms for a domain process (not our child: it was double-forked) to exit.
 * A pidfd becomes readable the moment it exits, whenever init gets round to reaping it.
 * Returns 0 when it is gone, ERR_TIMEOUT otherwise.
 */
static int wait_exit(pid_t pid, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (pfd >= 0) {
		int rc = fd_wait_readable(pfd, timeout_ms);

		close(pfd);
		return rc == ERR_TIMEOUT ? ERR_TIMEOUT : 0;
	}
	if (errno == ESRCH)
		return 0;
	for (int waited = 0; waited < timeout_ms; waited += 5) {
		if (!pid_running(pid))
			return 0;
		usleep(5000);
	}
	return pid_running(pid) ? ERR_TIMEOUT : 0;
}

int sim_destroy_domain(struct hv *hv, uint32_t domid)
{
	struct hv_domain_info info;
	pid_t pid = 0;

	if (read_info(hv, domid, &info, &pid))
		return ERR_NOTFOUND;
	/* ask politely; whether or not it answers, the process is waited for, then killed */
	ctl_call(hv, domid, "destroy", NULL, 0);
	if (wait_exit(pid, SIM_DESTROY_TIMEOUT_MS)) {
		log_warn("domain %s (%u): process %d did not exit, killing it", info.name, domid,
		         (int)pid);
		kill(pid, SIGKILL);
		wait_exit(pid, SIM_DESTROY_TIMEOUT_MS);
	}
	remove_dom_dir(hv, domid);
	return 0;
}

static int sim_destroy(struct hv *hv, uint32_t domid)
{
	return sim_destroy_domain(hv, domid);
}

static int sim_pause(struct hv *hv, uint32_t domid)
{
	return ctl_call(hv, domid, "pause", NULL, 0);
}

static int sim_unpause(struct hv *hv, uint32_t domid)
{
	return ctl_call(hv, domid, "unpause", NULL, 0);
}

static int sim_rename(struct hv *hv, uint32_t domid, const char *old_name, const char *new_name)
{
	struct hv_domain_info info;
	char req[HV_NAME_MAX + 16];
	int rc;

	if (!new_name[0] || strlen(new_name) >= HV_NAME_MAX || strchr(new_name, '/') ||
	    strchr(new_name, ' ')) {
		log_error("'%s' is not a valid domain name", new_name);
		return ERR_INVAL;
	}
	rc = sim_lock(hv);
	if (rc)
		return rc;
	rc = read_info(hv, domid, &info, NULL);
	if (rc)
		goto out;
	if (old_name && strcmp(info.name, old_name)) {
		log_error("domain %u is named '%s', not '%s'", domid, info.name, old_name);
		rc = ERR_BUSY;
		goto out;
	}
	if (strcmp(info.name, new_name) && name_taken(hv, new_name)) {
		log_error("a domain named '%s' already exists on this host", new_name);
		rc = ERR_EXISTS;
		goto out;
	}
	snprintf(req, sizeof(req), "rename %s", new_name);
	rc = ctl_call(hv, domid, req, NULL, 0);
out:
	sim_unlock(hv);
	return rc;
}

static int load_config(struct hv *hv, uint32_t domid, struct sim_config *cfg)
{
	char path[340], *json = NULL;
	int rc;

	dom_dir(hv, domid, path, sizeof(path));
	strncat(path, "/config.json", sizeof(path) - strlen(path) - 1);
	rc = file_read_all(path, 1 << 20, &json, NULL);
	if (rc)
		return rc == ERR_NOTFOUND ? rc : ERR_IO;
	rc = simcfg_from_json(json, cfg);
	free(json);
	return rc;
}

static int sim_config_json(struct hv *hv, uint32_t domid, char **json_r)
{
	struct hv_domain_info info;
	struct sim_config cfg;
	int rc;

	rc = read_info(hv, domid, &info, NULL);
	if (!rc)
		rc = load_config(hv, domid, &cfg);
	if (rc)
		return rc;
	snprintf(cfg.name, sizeof(cfg.name), "%s", info.name);
	return simcfg_to_json(&cfg, json_r);
}

/* --- migration: the source side ---------------------------------------------------------- */

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
		s->bitmap = mmap(NULL, s->bm_bytes, PROT_READ, MAP_SHARED, fd, 0);
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
    .throttle = src_throttle,
    .suspend = src_suspend,
};

/* Map a domain's memory (read-only for a source, writable for an incoming domain). */
static int map_memory(int ctl, int writable, uint8_t **mem_r, uint64_t *nr_pages_r)
{
	char buf[64];
	int fd = -1, rc;
	void *mem;

	rc = simctl_call(ctl, "memfd", NULL, 0, buf, sizeof(buf), NULL, &fd);
	if (rc)
		return rc;
	if (fd < 0)
		return ERR_PROTO;
	*nr_pages_r = strtoull(buf, NULL, 10);
	mem = mmap(NULL, *nr_pages_r * 4096, writable ? PROT_READ | PROT_WRITE : PROT_READ,
	           MAP_SHARED, fd, 0);
	close(fd);
	if (mem == MAP_FAILED)
		return err_from_errno(errno);
	*mem_r = mem;
	return 0;
}

static int sim_send_stream(struct hv *hv, uint32_t domid, int fd, const struct mig_params *params,
                           struct mig_report *report)
{
	struct sim_source s = {.hv = hv, .domid = domid, .ctl = -1};
	struct pc_source src = {.ops = &sim_source_ops, .arg = &s};
	struct mig_report scratch;
	struct hv_domain_info info;
	uint8_t *mem = NULL;
	int rc;

	rc = read_info(hv, domid, &info, NULL);
	if (rc)
		return rc;
	rc = ctl_open(hv, domid, &s.ctl);
	if (rc)
		return rc;
	rc = map_memory(s.ctl, 0, &mem, &src.nr_pages);
	if (rc)
		goto out;
	s.bm_bytes = ((src.nr_pages + 63) / 64) * 8;
	src.mem = mem;
	src.type = info.type;
	src.nr_vcpus = info.vcpus;
	rc = pc_send(&src, fd, params, report ? report : &scratch);
out:
	if (mem)
		unmap_later(hv, mem, src.nr_pages * 4096);
	if (s.bitmap)
		munmap(s.bitmap, s.bm_bytes);
	close(s.ctl);
	return rc;
}

static int sim_resume(struct hv *hv, uint32_t domid)
{
	return ctl_call(hv, domid, "resume", NULL, 0);
}

/* --- migration: the destination side ----------------------------------------------------- */

static int sim_receive_stream(struct hv *hv, int fd, const char *name, const char *config_json,
                              const struct mig_params *params, struct mig_report *report,
                              uint32_t *domid_r)
{
	struct sim_config cfg;
	struct pc_cpu_state st = {0};
	struct mig_report scratch;
	uint32_t domid = HV_INVALID_DOMID;
	uint8_t *mem = NULL, *blob = NULL;
	uint64_t nr_pages = 0;
	size_t blob_len = 0;
	int64_t t_end = 0;
	int ctl = -1, rc;

	(void)params;
	rc = simcfg_from_json(config_json, &cfg);
	if (rc)
		return rc;
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	rc = create_from_config(hv, &cfg, 1, &domid);
	if (rc)
		return rc;
	rc = ctl_open(hv, domid, &ctl);
	if (rc)
		goto out;
	rc = map_memory(ctl, 1, &mem, &nr_pages);
	if (rc)
		goto out;
	rc = pc_receive(fd, mem, nr_pages, cfg.type, cfg.vcpus, &st, report ? report : &scratch);
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
	if (mem && !rc)
		unmap_later(hv, mem, nr_pages * 4096);
	else if (mem)
		munmap(mem, nr_pages * 4096);
	if (ctl >= 0)
		close(ctl);
	if (rc && domid != HV_INVALID_DOMID)
		sim_destroy_domain(hv, domid);
	else if (!rc)
		*domid_r = domid;
	return rc;
}

/* --- sim-only operations ----------------------------------------------------------------- */

int sim_check_domain(struct hv *hv, uint32_t domid, char *out, size_t cap)
{
	return ctl_call(hv, domid, "check", out, cap);
}

int sim_query_domain(struct hv *hv, uint32_t domid, char *out, size_t cap)
{
	return ctl_call(hv, domid, "info", out, cap);
}

const struct hv_ops sim_hv_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .host_info = sim_host_info,
    .list = sim_list,
    .lookup = sim_lookup,
    .info = sim_info,
    .create = sim_create,
    .destroy = sim_destroy,
    .pause = sim_pause,
    .unpause = sim_unpause,
    .rename = sim_rename,
    .config_json = sim_config_json,
    .send_stream = sim_send_stream,
    .resume = sim_resume,
    .receive_stream = sim_receive_stream,
    .disk_specs = sim_disk_specs,
    .config_file_json = sim_config_file_json,
    .domain_check = sim_domain_check,
};
