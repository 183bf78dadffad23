/*
 * iscsiadm.c - kernel-initiator login for a shared disk's LUN (iscsiadm.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/iscsiadm.h"

static void portal_of(const struct disk_info *d, char *buf, size_t len)
{
	if (strchr(d->host, ':'))
		snprintf(buf, len, "[%s]:%u", d->host, d->port);
	else
		snprintf(buf, len, "%s:%u", d->host, d->port);
}

int iscsiadm_device_path(const struct disk_info *d, char *buf, size_t len)
{
	char portal[DISK_HOST_MAX + 16];
	int n;

	if (d->kind != DISK_ISCSI)
		return ERR_INVAL;
	portal_of(d, portal, sizeof(portal));
	n = snprintf(buf, len, "/dev/disk/by-path/ip-%s-iscsi-%s-lun-%u", portal, d->iqn, d->lun);
	return n < 0 || (size_t)n >= len ? ERR_INVAL : 0;
}

/* The first line of a command's output, for messages. */
static const char *first_line(char *out)
{
	char *nl = strchr(out, '\n');

	if (nl)
		*nl = '\0';
	return out[0] ? out : "no output";
}

int iscsiadm_ensure_login(const struct iscsiadm_ops *ops, const struct disk_info *d, int timeout_s,
                          int *made_r)
{
	char path[DISK_SPEC_MAX + 64], portal[DISK_HOST_MAX + 16], iqn[DISK_IQN_MAX], out[512];
	char m[] = "-m", discovery[] = "discovery", t[] = "-t", st[] = "st", p[] = "-p";
	char node[] = "node", tt[] = "-T", login[] = "--login", prog[] = "iscsiadm";
	char *disc_argv[] = {prog, m, discovery, t, st, p, portal, NULL};
	char *login_argv[] = {prog, m, node, tt, iqn, p, portal, login, NULL};
	int rc;

	if (made_r)
		*made_r = 0;
	rc = iscsiadm_device_path(d, path, sizeof(path));
	if (rc) {
		log_error("disk '%s' is not an iSCSI LUN: no kernel-initiator login for it",
		          d->spec);
		return rc;
	}
	if (ops->exists(ops->ctx, path))
		return 0;
	portal_of(d, portal, sizeof(portal));
	snprintf(iqn, sizeof(iqn), "%s", d->iqn);
	log_info("disk %s: %s missing, logging in to %s at %s", d->vdev, path, iqn, portal);
	out[0] = '\0';
	rc = ops->run(ops->ctx, disc_argv, timeout_s, out, sizeof(out));
	if (rc != 0) {
		log_error("disk %s: iSCSI discovery at portal %s failed (%s): %s; check that the "
		          "portal is reachable from this host and open-iscsi is installed",
		          d->vdev, portal, rc < 0 ? err_str(rc) : "iscsiadm exit status",
		          first_line(out));
		return ERR_IO;
	}
	out[0] = '\0';
	rc = ops->run(ops->ctx, login_argv, timeout_s, out, sizeof(out));
	if (rc != 0 && rc != ISCSIADM_ERR_SESS_EXISTS) {
		log_error(
		    "disk %s: iSCSI login to %s at portal %s failed (%s %d): %s; check the "
		    "target's ACL for this host's initiator name (/etc/iscsi/initiatorname.iscsi)",
		    d->vdev, iqn, portal, rc < 0 ? "error" : "exit status", rc, first_line(out));
		return ERR_IO;
	}
	if (rc == 0 && made_r)
		*made_r = 1;
	for (int waited = 0; waited <= timeout_s * 1000; waited += 100) {
		if (ops->exists(ops->ctx, path))
			return 0;
		ops->sleep_ms(ops->ctx, 100);
	}
	log_error("disk %s: logged in to %s at %s, but LUN %u has no device %s after %d s: does "
	          "the target export LUN %u, and does udev run?",
	          d->vdev, iqn, portal, d->lun, path, timeout_s, d->lun);
	return ERR_NOTFOUND;
}

int iscsiadm_logout(const struct iscsiadm_ops *ops, const struct disk_info *d, int timeout_s)
{
	char portal[DISK_HOST_MAX + 16], iqn[DISK_IQN_MAX], out[512];
	char m[] = "-m", node[] = "node", tt[] = "-T", p[] = "-p", logout[] = "--logout";
	char prog[] = "iscsiadm";
	char *argv[] = {prog, m, node, tt, iqn, p, portal, logout, NULL};
	int rc;

	if (d->kind != DISK_ISCSI)
		return ERR_INVAL;
	portal_of(d, portal, sizeof(portal));
	snprintf(iqn, sizeof(iqn), "%s", d->iqn);
	out[0] = '\0';
	rc = ops->run(ops->ctx, argv, timeout_s, out, sizeof(out));
	if (rc != 0) {
		log_error("disk %s: logging out of %s at %s failed (%s %d): %s; 'iscsiadm -m "
		          "session' shows the session this host made for nothing",
		          d->vdev, iqn, portal, rc < 0 ? "error" : "exit status", rc,
		          first_line(out));
		return ERR_IO;
	}
	log_info("disk %s: logged out of %s at %s again (the session was made for a migration "
	         "that did not happen)",
	         d->vdev, iqn, portal);
	return 0;
}

/* --- the system runner ------------------------------------------------------------------ */

static int find_program(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096];

	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin", path ? path : "");
	for (char *save = NULL, *dir = strtok_r(dirs, ":", &save); dir;
	     dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/%s", dir, name);
		if (access(buf, X_OK) == 0)
			return 0;
	}
	return ERR_NOTFOUND;
}

static int sys_run(void *ctx, char *const argv[], int timeout_s, char *out, size_t cap)
{
	struct timespec t0, now;
	char prog[4096];
	size_t got = 0;
	int pfd[2], status;
	pid_t pid;

	(void)ctx;
	if (find_program(argv[0], prog, sizeof(prog)))
		return ERR_NOTFOUND;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return err_from_errno(errno);
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execv(prog, argv);
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return err_from_errno(errno);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		char buf[256];
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > timeout_s) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pfd[0]);
			return ERR_TIMEOUT;
		}
		if (poll(&p, 1, 200) <= 0)
			continue;
		n = read(pfd[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		if (cap && got < cap - 1) {
			size_t k = (size_t)n < cap - 1 - got ? (size_t)n : cap - 1 - got;

			memcpy(out + got, buf, k);
			got += k;
			out[got] = '\0';
		}
	}
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		return err_from_errno(errno);
	return WIFEXITED(status) ? WEXITSTATUS(status) : ERR_IO;
}

static int sys_exists(void *ctx, const char *path)
{
	struct stat st;

	(void)ctx;
	return stat(path, &st) == 0;
}

static void sys_sleep_ms(void *ctx, int ms)
{
	(void)ctx;
	usleep((useconds_t)ms * 1000);
}

const struct iscsiadm_ops iscsiadm_system = {sys_run, sys_exists, sys_sleep_ms, NULL};
