/*
 * agent.c - the test guest's agent: PID 1 of the small PVH guest of the real-Xen harness.
 *
 *   agent                                  as /init: mounts, network, probe service, journal
 *   agent [OPTIONS] [xlext.KEY=VALUE...]   on a host, for the tests
 *     --cmdline FILE    read parameters from FILE instead of /proc/cmdline
 *     --no-mount        do not mount /proc, /sys, /dev nor load the modules
 *     --no-net          do not configure lo and the guest's interface
 *     --no-init         both of the above
 *     --selftest FILE N append N records to FILE (as xlext.disk) and exit
 *
 * Parameters (kernel command line, then the arguments): xlext.ip=A.B.C.D/NN, xlext.name=NAME,
 * xlext.disk=/dev/xvda, xlext.hz=10, xlext.guest=1, xlext.key=0x1, xlext.base=2048,
 * xlext.ring=1024, xlext.if=eth0.
 *
 * The guest serves the simulated guests' UDP probe protocol (xl-ext/core/guestproto.h), so
 * tests/integration/probe.c watches it unchanged: its counter is the highest journal sequence
 * number whose write reached the disk (O_DIRECT|O_DSYNC), so a counter that never goes back
 * means the journal continued. The journal is xl-ext/storage/journal.c's on-LUN format,
 * checked afterwards from a host with "xl-ext pr ... journal-check ACKED KEY:FROM".
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/core/guestproto.h"
#include "xl-ext/storage/journal.h"

#define AGENT_NAME        "xlext-agent"
#define DISK_RETRY_MS     1000
#define DISK_REOPEN_AFTER 5  /* consecutive failed writes before the disk is opened again */
#define DISK_OPEN_REPEAT  30 /* failed opens between two reports of the same error */
#define IF_WAIT_MS        20000
#define MODULE_LIST       "/etc/xlext-modules" /* written by build-guest.sh */

struct agent_params {
	char ip[32];   /* "A.B.C.D/NN", "" for none */
	char name[28]; /* what the probe reply calls the host */
	char disk[256];
	char ifname[IFNAMSIZ];
	unsigned hz; /* journal records per second, 0: as fast as possible */
	uint64_t guest_id;
	uint64_t key;
	uint64_t base;
	uint64_t ring;
};

struct agent_disk {
	const char *path;
	int fd;
	int last_errno; /* errno of the last failed read or write */
	uint32_t block_size;
	uint64_t nblocks;
	void *bounce; /* JOURNAL_MAX_BLOCK bytes, aligned for O_DIRECT */
};

static uint64_t agent_acked; /* the probe counter, atomic */
static uint64_t agent_boot_id;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* --- parameters -------------------------------------------------------------------------- */

static void params_default(struct agent_params *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "guest");
	snprintf(p->disk, sizeof(p->disk), "/dev/xvda");
	snprintf(p->ifname, sizeof(p->ifname), "eth0");
	p->hz = 10;
	p->guest_id = 1;
	p->key = 0x1;
	p->base = JOURNAL_DEFAULT_BASE;
	p->ring = JOURNAL_DEFAULT_RING;
}

static int parse_u64(const char *s, int base, uint64_t *v_r)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || end == s || *end)
		return ERR_INVAL;
	*v_r = v;
	return 0;
}

/* Apply one "xlext.KEY=VALUE" word; other words (the kernel's own) are ignored. */
static int params_apply(struct agent_params *p, const char *word)
{
	const char *eq = strchr(word, '=');
	const char *v = eq ? eq + 1 : "";
	size_t klen = eq ? (size_t)(eq - word) : strlen(word);
	uint64_t n;
	int rc = 0;

#define KEY_IS(k) (klen == strlen(k) && !strncmp(word, k, klen))
	if (strncmp(word, "xlext.", 6) || !eq)
		return 0;
	if (KEY_IS("xlext.ip"))
		snprintf(p->ip, sizeof(p->ip), "%s", v);
	else if (KEY_IS("xlext.name"))
		snprintf(p->name, sizeof(p->name), "%s", v);
	else if (KEY_IS("xlext.disk"))
		snprintf(p->disk, sizeof(p->disk), "%s", v);
	else if (KEY_IS("xlext.if"))
		snprintf(p->ifname, sizeof(p->ifname), "%s", v);
	else if (KEY_IS("xlext.hz")) {
		rc = parse_u64(v, 10, &n);
		if (!rc && n > 10000)
			rc = ERR_INVAL;
		if (!rc)
			p->hz = (unsigned)n;
	} else if (KEY_IS("xlext.guest"))
		rc = parse_u64(v, 0, &p->guest_id);
	else if (KEY_IS("xlext.key"))
		rc = parse_u64(v, 16, &p->key);
	else if (KEY_IS("xlext.base"))
		rc = parse_u64(v, 0, &p->base);
	else if (KEY_IS("xlext.ring")) {
		rc = parse_u64(v, 0, &p->ring);
		if (!rc && !p->ring)
			rc = ERR_INVAL;
	} else
		log_warn("unknown parameter '%s' ignored", word);
#undef KEY_IS
	if (rc)
		log_error("bad parameter '%s': keeping the default", word);
	return rc;
}

/* Apply every xlext.* word of a command-line file (/proc/cmdline). */
static int params_from_file(struct agent_params *p, const char *path)
{
	char buf[4096];
	char *save = NULL;
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		log_error_errno(errno, "cannot read parameters from %s", path);
		return ERR_NOTFOUND;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (char *w = strtok_r(buf, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save))
		params_apply(p, w);
	return 0;
}

/* --- init: mounts and network ------------------------------------------------------------- */

static void mount_one(const char *src, const char *dir, const char *type)
{
	if (mkdir(dir, 0755) && errno != EEXIST)
		log_error_errno(errno, "mkdir %s", dir);
	if (mount(src, dir, type, 0, NULL) && errno != EBUSY)
		log_error_errno(errno, "mount %s on %s", type, dir);
	else
		log_info("mounted %s on %s", type, dir);
}

/* The kernel may start init without a console (no /dev/console in the initramfs). */
static void console_open(void)
{
	int fd;

	if (fcntl(2, F_GETFD) == 0)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

/*
 * Load the kernel modules listed in MODULE_LIST, one path a line: Debian's kernel has the Xen
 * block and network frontends as modules. A module that is built in or already loaded is fine.
 */
static void init_modules(void)
{
	char line[512];
	struct utsname u;
	FILE *f = fopen(MODULE_LIST, "r");

	if (!f) {
		log_warn("no %s: no kernel modules loaded", MODULE_LIST);
		return;
	}
	if (uname(&u) == 0)
		log_info("kernel %s", u.release);
	while (fgets(line, sizeof(line), f)) {
		int fd;

		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			log_error_errno(errno, "module %s: cannot open", line);
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) && errno != EEXIST)
			log_error_errno(errno, "module %s: cannot load%s", line,
			                errno == ENOEXEC ? " (built for another kernel?)" : "");
		else
			log_info("module %s loaded", line);
		close(fd);
	}
	fclose(f);
}

static void init_mounts(void)
{
	mount_one("devtmpfs", "/dev", "devtmpfs");
	console_open();
	mount_one("proc", "/proc", "proc");
	mount_one("sysfs", "/sys", "sysfs");
	init_modules();
}

static int if_set_flags_up(int sock, const char *ifname)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr)) {
		log_error_errno(errno, "%s: cannot read interface flags", ifname);
		return ERR_NOTFOUND;
	}
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(sock, SIOCSIFFLAGS, &ifr)) {
		log_error_errno(errno, "%s: cannot bring the interface up", ifname);
		return ERR_IO;
	}
	return 0;
}

static int if_set_addr(int sock, const char *ifname, unsigned long req, struct in_addr a,
                       const char *what)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	sin->sin_family = AF_INET;
	sin->sin_addr = a;
	if (ioctl(sock, req, &ifr)) {
		log_error_errno(errno, "%s: cannot set the %s %s", ifname, what, inet_ntoa(a));
		return ERR_IO;
	}
	return 0;
}

/* Bring lo up, then wait for the guest's interface and give it xlext.ip. */
static int init_net(const struct agent_params *p)
{
	char addr[32];
	char *slash;
	struct in_addr a, mask;
	unsigned long prefix = 24;
	uint64_t deadline = now_ms() + IF_WAIT_MS;
	int sock = -1;
	int rc;

	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		log_error_errno(errno, "network setup: socket");
		return ERR_IO;
	}
	rc = if_set_flags_up(sock, "lo");
	if (!rc)
		log_info("lo up");
	if (!p->ip[0]) {
		log_warn("no xlext.ip= on the command line: %s left unconfigured", p->ifname);
		rc = ERR_INVAL;
		goto out;
	}
	snprintf(addr, sizeof(addr), "%s", p->ip);
	slash = strchr(addr, '/');
	if (slash) {
		*slash = '\0';
		prefix = strtoul(slash + 1, NULL, 10);
	}
	if (inet_pton(AF_INET, addr, &a) != 1 || prefix > 32) {
		log_error("bad xlext.ip=%s (want A.B.C.D/NN)", p->ip);
		rc = ERR_INVAL;
		goto out;
	}
	mask.s_addr = htonl(prefix ? 0xffffffffu << (32 - prefix) : 0);
	while (if_nametoindex(p->ifname) == 0) {
		if (now_ms() > deadline) {
			log_error("%s did not appear within %d s", p->ifname, IF_WAIT_MS / 1000);
			rc = ERR_NOTFOUND;
			goto out;
		}
		sleep_ms(100);
	}
	rc = if_set_addr(sock, p->ifname, SIOCSIFADDR, a, "address");
	if (!rc)
		rc = if_set_addr(sock, p->ifname, SIOCSIFNETMASK, mask, "netmask");
	if (!rc)
		rc = if_set_flags_up(sock, p->ifname);
	if (!rc)
		log_info("%s up with %s/%lu", p->ifname, addr, prefix);
out:
	close(sock);
	return rc;
}

/* --- the disk under the journal ---------------------------------------------------------- */

static int disk_read(void *ctx, uint64_t lba, void *buf, size_t len)
{
	struct agent_disk *d = ctx;
	ssize_t n = pread(d->fd, d->bounce, len, (off_t)(lba * d->block_size));

	if (n != (ssize_t)len) {
		d->last_errno = n < 0 ? errno : EIO;
		return err_from_errno(d->last_errno);
	}
	memcpy(buf, d->bounce, len);
	return 0;
}

static int disk_write(void *ctx, uint64_t lba, const void *buf, size_t len)
{
	struct agent_disk *d = ctx;
	ssize_t n;

	memcpy(d->bounce, buf, len);
	n = pwrite(d->fd, d->bounce, len, (off_t)(lba * d->block_size));
	if (n != (ssize_t)len) {
		d->last_errno = n < 0 ? errno : EIO;
		return err_from_errno(d->last_errno);
	}
	return 0;
}

static void disk_close(struct agent_disk *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/*
 * Open the disk for synchronous direct writes and learn its geometry. O_DIRECT is dropped
 * (with a warning) only where the file system refuses it, as tmpfs does for a test file.
 */
static int disk_open(struct agent_disk *d)
{
	struct stat st;
	uint64_t bytes = 0;
	int bs = 512;

	d->fd = open(d->path, O_RDWR | O_DIRECT | O_DSYNC | O_CLOEXEC);
	if (d->fd < 0 && errno == EINVAL) {
		d->fd = open(d->path, O_RDWR | O_DSYNC | O_CLOEXEC);
		if (d->fd >= 0)
			log_warn("%s: O_DIRECT refused, writing with O_DSYNC only", d->path);
	}
	if (d->fd < 0) {
		d->last_errno = errno;
		return err_from_errno(errno);
	}
	if (fstat(d->fd, &st))
		goto fail;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(d->fd, BLKSSZGET, &bs) || ioctl(d->fd, BLKGETSIZE64, &bytes))
			goto fail;
	} else {
		bytes = (uint64_t)st.st_size;
	}
	d->block_size = (uint32_t)bs;
	d->nblocks = bytes / (uint64_t)bs;
	return 0;
fail:
	d->last_errno = errno;
	disk_close(d);
	return err_from_errno(d->last_errno);
}

/* --- journal writer ------------------------------------------------------------------------ */

struct journal_job {
	const struct agent_params *p;
	uint64_t count; /* records to append, 0: for ever */
	int rc;         /* of a counted run */
};

/*
 * Open the disk and continue its journal; logs what failed. A disk that stays missing is
 * reported when the error changes and every DISK_OPEN_REPEAT attempts, not every second.
 */
static int journal_start(const struct agent_params *p, struct agent_disk *d,
                         struct journal_dev *dev, struct journal_writer *w)
{
	static int last_errno;
	static unsigned attempts;
	int rc = disk_open(d);

	if (rc) {
		attempts++;
		if (d->last_errno != last_errno || attempts % DISK_OPEN_REPEAT == 0)
			log_error("%s: cannot open the journal disk: %s (errno %d)%s", d->path,
			          strerror(d->last_errno), d->last_errno,
			          attempts > 1 ? " (still retrying)" : "");
		last_errno = d->last_errno;
		return rc;
	}
	last_errno = 0;
	attempts = 0;
	*dev = (struct journal_dev){disk_read, disk_write, d, d->block_size, d->nblocks};
	rc = journal_writer_open(w, dev, p->guest_id, p->key, p->base, p->ring);
	if (rc) {
		log_error("%s: cannot open the journal of guest %" PRIu64 ": %s%s%s", d->path,
		          p->guest_id, err_str(rc), d->last_errno ? ": " : "",
		          d->last_errno ? strerror(d->last_errno) : "");
		disk_close(d);
		return rc;
	}
	__atomic_store_n(&agent_acked, w->acked, __ATOMIC_RELAXED);
	log_info("%s: journal of guest %" PRIu64 " key 0x%" PRIx64 " (blocks %" PRIu64 "+%" PRIu64
	         " of %u bytes) continues at %" PRIu64,
	         d->path, p->guest_id, p->key, p->base, p->ring, d->block_size, w->next_seq);
	return 0;
}

/* Append records for ever (or job->count of them), retrying whatever fails. */
static void *journal_main(void *arg)
{
	struct journal_job *job = arg;
	const struct agent_params *p = job->p;
	struct agent_disk d = {.path = p->disk, .fd = -1};
	struct journal_dev dev;
	struct journal_writer w;
	uint64_t period_ms = p->hz ? 1000 / p->hz : 0, next = now_ms(), done = 0;
	unsigned failures = 0;

	d.bounce = aligned_alloc(JOURNAL_MAX_BLOCK, JOURNAL_MAX_BLOCK);
	if (!d.bounce) {
		log_error("journal: out of memory");
		job->rc = ERR_NOMEM;
		return NULL;
	}
	while (!job->count || done < job->count) {
		char payload[128];
		uint64_t seq, now = now_ms();
		int n, rc;

		if (now < next)
			sleep_ms(next - now);
		next += period_ms;
		if (d.fd < 0 && journal_start(p, &d, &dev, &w)) {
			if (job->count) {
				job->rc = ERR_IO;
				break;
			}
			next = now_ms() + DISK_RETRY_MS;
			continue;
		}
		n = snprintf(payload, sizeof(payload), "%s boot %016" PRIx64 " write %" PRIu64,
		             p->name, agent_boot_id, w.next_seq);
		d.last_errno = 0;
		rc = journal_append(&w, payload, (size_t)n, &seq);
		if (rc) {
			log_error("%s: write of journal sequence %" PRIu64 " failed: %s (errno %d)",
			          p->disk, w.next_seq, strerror(d.last_errno), d.last_errno);
			if (job->count) {
				job->rc = rc;
				break;
			}
			if (++failures >= DISK_REOPEN_AFTER) {
				log_info("%s: opening the disk again after %u failed writes",
				         p->disk, failures);
				disk_close(&d);
				failures = 0;
			}
			next = now_ms() + DISK_RETRY_MS;
			continue;
		}
		if (failures)
			log_info("%s: journal writes resumed at sequence %" PRIu64, p->disk, seq);
		failures = 0;
		done++;
		__atomic_store_n(&agent_acked, seq, __ATOMIC_RELAXED);
	}
	disk_close(&d);
	free(d.bounce);
	return NULL;
}

/* --- probe service -------------------------------------------------------------------------- */

/* Answer probes for ever (the simulated guests' udp_main, with the journal as counter). */
static int probe_serve(const struct agent_params *p)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(GUEST_PROBE_PORT)};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		log_error_errno(errno, "probe service: cannot bind UDP port %d", GUEST_PROBE_PORT);
		if (fd >= 0)
			close(fd);
		return ERR_IO;
	}
	log_info("probe service on UDP port %d as '%s', boot id %016" PRIx64, GUEST_PROBE_PORT,
	         p->name, agent_boot_id);
	for (;;) {
		struct guest_probe_reply rep;
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		char req[64];
		ssize_t n = recvfrom(fd, req, sizeof(req), 0, (struct sockaddr *)&from, &flen);

		if (n < 8 || memcmp(req, GUEST_PROBE_MAGIC, 4) != 0)
			continue;
		memset(&rep, 0, sizeof(rep));
		memcpy(rep.magic, GUEST_PROBE_REPLY_MAGIC, 4);
		memcpy(&rep.seq, req + 4, 4);
		rep.boot_id = agent_boot_id;
		rep.counter = __atomic_load_n(&agent_acked, __ATOMIC_RELAXED);
		rep.domid = 0;
		snprintf(rep.host, sizeof(rep.host), "%s", p->name);
		sendto(fd, &rep, sizeof(rep), 0, (struct sockaddr *)&from, flen);
	}
	return 0;
}

/* --- main ------------------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

/*
 * A boot id that differs between two starts. Early in a guest's boot the kernel's random pool
 * may not be ready (getrandom would block): then the kernel's boot id (random per boot) and
 * the clocks are mixed instead. Call after /proc is mounted.
 */
static uint64_t random_boot_id(void)
{
	uint64_t v = 0, h = 0;
	struct timespec ts;
	char kernel_boot_id[64] = "";
	FILE *f;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v) && v)
		return v;
	f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (f) {
		if (!fgets(kernel_boot_id, sizeof(kernel_boot_id), f))
			kernel_boot_id[0] = '\0';
		fclose(f);
	}
	for (const char *c = kernel_boot_id; *c; c++)
		h = mix64(h, (uint8_t)*c);
	clock_gettime(CLOCK_REALTIME, &ts);
	h = mix64(h, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	h = mix64(h, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	h = mix64(h, (uint64_t)getpid());
	return h ? h : 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: agent [--cmdline FILE] [--no-mount] [--no-net] [--no-init] "
	                "[xlext.KEY=VALUE...]\n"
	                "       agent --selftest FILE N [xlext.KEY=VALUE...]\n");
	return 2;
}

static int selftest(struct agent_params *p, const char *file, const char *count_s)
{
	struct journal_job job = {.p = p};
	uint64_t first;

	if (parse_u64(count_s, 10, &job.count) || !job.count)
		return usage();
	snprintf(p->disk, sizeof(p->disk), "%s", file);
	journal_main(&job);
	first = 0;
	if (!job.rc)
		first = agent_acked - job.count + 1;
	printf("selftest: %s guest %" PRIu64 " key 0x%" PRIx64 " appended %" PRIu64 "-%" PRIu64
	       " acked %" PRIu64 "%s%s\n",
	       file, p->guest_id, p->key, first, agent_acked, agent_acked,
	       job.rc ? " failed: " : "", job.rc ? err_str(job.rc) : "");
	return job.rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct agent_params p;
	struct journal_job job = {.p = &p};
	const char *cmdline = "/proc/cmdline";
	bool as_init = getpid() == 1, do_mount = true, do_net = true, own_cmdline = false;
	pthread_t journal_thread;
	int i = 1;

	log_set_sink(log_sink_stderr(AGENT_NAME));
	log_set_level(LOGL_INFO);
	params_default(&p);
	/* The kernel hands init its unknown words: as init, parameters come from cmdline only. */
	if (as_init)
		argc = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--cmdline") && i + 1 < argc) {
			cmdline = argv[++i];
			own_cmdline = true;
		} else if (!strcmp(argv[i], "--no-mount")) {
			do_mount = false;
		} else if (!strcmp(argv[i], "--no-net")) {
			do_net = false;
		} else if (!strcmp(argv[i], "--no-init")) {
			do_mount = do_net = false;
		} else if (!strcmp(argv[i], "--selftest") && i + 2 < argc) {
			p.hz = 0; /* as fast as possible unless xlext.hz= says otherwise */
			for (int j = i + 3; j < argc; j++)
				params_apply(&p, argv[j]);
			agent_boot_id = random_boot_id();
			return selftest(&p, argv[i + 1], argv[i + 2]);
		} else {
			return usage();
		}
	}
	if (!as_init && !own_cmdline)
		cmdline = NULL; /* on a host, /proc/cmdline is the host's */
	log_info("starting (pid %d)", (int)getpid());
	if (do_mount)
		init_mounts();
	agent_boot_id = random_boot_id();
	if (cmdline)
		params_from_file(&p, cmdline);
	for (; i < argc; i++)
		if (params_apply(&p, argv[i]) || strncmp(argv[i], "xlext.", 6))
			return usage();
	log_info("guest '%s' id %" PRIu64 ": journal on %s at %u/s, key 0x%" PRIx64, p.name,
	         p.guest_id, p.disk, p.hz, p.key);
	signal(SIGPIPE, SIG_IGN);
	/* The journal does not wait for the network, nor the network for the disk. */
	if (pthread_create(&journal_thread, NULL, journal_main, &job))
		log_error("cannot start the journal thread: serving probes only");
	if (do_net)
		init_net(&p);
	probe_serve(&p);
	/* PID 1 must not exit: the kernel would panic and the harness would see a crash. */
	log_error("probe service stopped; idling");
	for (;;)
		pause();
}
