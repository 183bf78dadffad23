/*
 * sim_spawn.c - the processes of a simulated host's domains: each domain is a process
 * (simdom.c) started for its state directory and driven over its control socket; creating
 * one waits until it is ready, destroying one until it is gone.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "xl-ext/sim/sim_int.h"
#include "xl-ext/sim/simcfg.h"

/*
 * The program a domain runs as: $XLEXT_SIMDOM when set; else the one installed beside
 * xl-ext's other private files; else one found from the running program's own place (an
 * installation moved with `make install prefix=DIR`: DIR/bin/../libexec/xl-ext; the build
 * tree: xl-ext/ or haagent/../xl-ext/). Where none is found, the installed path is named.
 */
static const char *simdom_helper(void)
{
	static const char *const rel[] = {"/../libexec/xl-ext/xl-ext-simdom", "/xl-ext-simdom",
	                                  "/../xl-ext/xl-ext-simdom"};
	static char found[PATH_MAX];
	const char *env = getenv("XLEXT_SIMDOM");
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (env && env[0])
		return env;
	if (access(PKGLIBEXECDIR "/xl-ext-simdom", X_OK) == 0)
		return PKGLIBEXECDIR "/xl-ext-simdom";
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			if ((size_t)snprintf(found, sizeof(found), "%s%s", self, rel[i]) <
			        sizeof(found) &&
			    access(found, X_OK) == 0)
				return found;
		}
	}
	return PKGLIBEXECDIR "/xl-ext-simdom";
}

/*
 * Start a domain process for dir (config.json written) and wait until it is ready. The
 * process is re-parented to init (double fork) and logs to dir/log.
 */
static int spawn_domain(const char *dir, int incoming)
{
	const char *helper = simdom_helper();
	char fdstr[16], logpath[320], exec_failed[PATH_MAX + 64];
	int pipefd[2], status;
	char ready = 1;
	pid_t child;
	struct pollfd p;

	if (access(helper, X_OK) < 0) {
		log_error_errno(errno,
		                "cannot run the sim domain program %s (is xl-ext installed? "
		                "XLEXT_SIMDOM names another)",
		                helper);
		return ERR_NOTFOUND;
	}
	/* written by the child if exec fails: no formatting after fork */
	snprintf(exec_failed, sizeof(exec_failed), "cannot execute the sim domain program %s\n",
	         helper);
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
		ssize_t ignored;

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
		execl(helper, "xl-ext-simdom", dir, incoming ? "incoming" : "boot", fdstr,
		      (char *)NULL);
		ignored = write(2, exec_failed, strlen(exec_failed));
		(void)ignored;
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

/* Create the record and process of a domain; with incoming, an empty paused domain. */
int sim_create_from_config(struct hv *hv, const struct sim_config *cfg, int incoming,
                           uint32_t *domid_r)
{
	char dir[300], path[340], *json = NULL;
	struct hv_host_info hi;
	uint32_t domid = HV_INVALID_DOMID;
	int rc;

	rc = sim_lock(hv);
	if (rc)
		goto out;
	if (sim_name_taken(hv, cfg->name)) {
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
	rc = sim_next_domid(hv, &domid);
	if (rc)
		goto out;
	sim_dom_dir(hv, domid, dir, sizeof(dir));
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
		sim_remove_dom_dir(hv, domid);
	free(json);
	sim_unlock(hv);
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
		if (!sim_pid_running(pid))
			return 0;
		usleep(5000);
	}
	return sim_pid_running(pid) ? ERR_TIMEOUT : 0;
}

int sim_destroy_domain(struct hv *hv, uint32_t domid)
{
	struct hv_domain_info info;
	pid_t pid = 0;

	if (sim_read_info(hv, domid, &info, &pid))
		return ERR_NOTFOUND;
	/* ask politely; whether or not it answers, the process is waited for, then killed */
	sim_ctl_call(hv, domid, "destroy", NULL, 0);
	if (wait_exit(pid, SIM_DESTROY_TIMEOUT_MS)) {
		log_warn("domain %s (%u): process %d did not exit, killing it", info.name, domid,
		         (int)pid);
		kill(pid, SIGKILL);
		wait_exit(pid, SIM_DESTROY_TIMEOUT_MS);
	}
	sim_remove_dom_dir(hv, domid);
	return 0;
}
