/*
 * cmd_storage.c - "xl-ext disk-check" and "xl-ext pr": shared-storage checks for admins and
 * tests. disk-check classifies a disk spec and, for an iSCSI LUN, prints its identity as
 * JSON; pr runs persistent-reservation, block and journal verbs on one iSCSI session (a
 * registration belongs to the session that made it, so verbs that depend on each other must
 * run in one invocation). Both take a block device too (/dev/disk/by-path/...): then the
 * commands go through the kernel initiator's session with SG_IO (lun.h, sgio.h).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/iscsi.h"
#include "xl-ext/storage/journal.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/storage/owner.h"
#include "xl-ext/cli/xlext.h"

#define SPEC(name) cmd_find(&xlext_table, name, NULL)

#define STORAGE_COMMON_HELP                                                                   \
	"  -H, --host NAME    host name for the reservation key and the initiator name\n"     \
	"                     (default: $XLEXT_HOST, else $XLEXT_SIM_HOST, else the system\n" \
	"                     host name)\n"                                                   \
	"  -I, --initiator IQN  initiator name (default iqn.2026-11.org.xl-ext:<host>)\n"     \
	"  -t, --timeout S    bound every network step or SCSI command to S seconds\n"        \
	"                     (default 5)\n"
#define STORAGE_DEVICE_NOTE                                                                 \
	"A block device (/dev/disk/by-path/ip-...-iscsi-...-lun-N; root) is used through\n" \
	"the kernel initiator's session with SG_IO, as xl-ext migrate does on the xen\n"    \
	"backend (-I is then unused); an iscsi:// URL or a disk spec opens a libiscsi\n"    \
	"session of its own.\n"
#define STORAGE_DISK_CHECK_HELP                                                                \
	STORAGE_COMMON_HELP                                                                    \
	"  -n, --no-connect   classify only, do not log in\n"                                  \
	"  -c, --compare DISK fail unless DISK (spec, iscsi:// URL or block device) has the\n" \
	"                     same identity\n"                                                 \
	"  -e, --expect JSON  fail unless the identity equals JSON (printed by another "       \
	"host)\n" STORAGE_DEVICE_NOTE
#define STORAGE_PR_HELP                                                                    \
	STORAGE_COMMON_HELP                                                                \
	"  -k, --key HEX      this host's reservation key (default: $XLEXT_PR_KEY, else\n" \
	"                     derived from the host name)\n"                               \
	"  -g, --guest ID     journal: guest id (default 1)\n"                             \
	"  -B, --base LBA     journal: first block of the ring (default 2048)\n"           \
	"  -R, --ring N       journal: ring size in blocks (default 1024)\n"               \
	"verbs, run in order on one session (a registration belongs to its session:\n"     \
	"on a block device, the kernel's session, shared with the guest's writes):\n"      \
	"  show | key | register | unregister | reserve | release | clear | preempt KEY\n" \
	"  acquire | handover SOURCE-KEY | fence KEY | giveup   (ownership flows)\n"       \
	"  write LBA | read LBA | wait (read a line from stdin)\n"                         \
	"  journal-append N | journal-check ACKED KEY:FROM[,KEY:FROM...]\n" STORAGE_DEVICE_NOTE

const char storage_disk_check_help[] = STORAGE_DISK_CHECK_HELP;
const char storage_pr_help[] = STORAGE_PR_HELP;

struct storage_opts {
	const char *host; /* host name for the key and the initiator name */
	const char *key;  /* explicit key (hex) */
	const char *initiator;
	int timeout_s;
	int connect;         /* disk-check: read the identity */
	const char *compare; /* disk-check: compare with this disk */
	const char *expect;  /* disk-check: compare with this identity JSON */
	uint64_t guest;
	uint64_t base, ring;
};

static const char *opts_host(const struct storage_opts *o, char *buf, size_t len)
{
	if (o->host)
		return o->host;
	if (getenv("XLEXT_HOST") && *getenv("XLEXT_HOST"))
		return getenv("XLEXT_HOST");
	if (getenv("XLEXT_SIM_HOST") && *getenv("XLEXT_SIM_HOST"))
		return getenv("XLEXT_SIM_HOST"); /* a simulated host: as hostid_local() */
	if (gethostname(buf, len) || !buf[0])
		snprintf(buf, len, "localhost");
	buf[len - 1] = '\0';
	return buf;
}

static int opts_key(const struct storage_opts *o, uint64_t *key_r)
{
	char hbuf[256];
	const char *env = o->key ? o->key : getenv("XLEXT_PR_KEY");
	int rc = own_host_key(opts_host(o, hbuf, sizeof(hbuf)), env, key_r);

	if (rc)
		log_error("reservation key '%s': must be 1-16 hex digits, not 0", env ? env : "");
	return rc;
}

/*
 * What to open for arg: an iscsi:// URL or a block device path (/dev/disk/by-path/..., the
 * kernel initiator's session) as is, or a disk spec that must classify as iSCSI (its URL).
 */
static int resolve_url(const char *arg, char *url, size_t len, struct disk_info *info)
{
	int rc;

	if (!strncmp(arg, "iscsi://", 8) || arg[0] == '/') {
		snprintf(url, len, "%s", arg);
		return 0;
	}
	rc = disk_classify(arg, info);
	if (rc)
		return rc;
	if (info->kind != DISK_ISCSI) {
		log_error("disk spec '%s': a local disk, not a shared iSCSI LUN", arg);
		return ERR_INVAL;
	}
	return disk_iscsi_url(info, url, len);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void print_disk_json(const struct disk_info *d, const char *url, const char *device,
                            const char *identity)
{
	printf("{\"spec\":\"");
	for (const char *p = d->spec; *p; p++)
		printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
	printf("\",\"kind\":\"%s\",\"vdev\":\"%s\",\"readonly\":%s", disk_kind_name(d->kind),
	       d->vdev, d->readonly ? "true" : "false");
	if (d->kind == DISK_ISCSI)
		printf(",\"form\":\"%s\",\"portal\":\"%s\",\"port\":%u,\"iqn\":\"%s\",\"lun\":%u,"
		       "\"url\":\"%s\"",
		       d->form == DISK_FORM_SCRIPT ? "block-iscsi" : "by-path", d->host, d->port,
		       d->iqn, d->lun, url);
	if (device)
		printf(",\"device\":\"%s\",\"access\":\"kernel\"", device);
	if (identity)
		printf(",\"identity\":%s", identity);
	printf("}\n");
}

/* url: an iscsi:// URL (libiscsi, as initiator) or a block device (SG_IO). */
static int open_lun(const struct storage_opts *o, const char *url, struct lun **lun_r)
{
	char hbuf[256], initiator[ISCSI_INITIATOR_MAX];
	int rc;

	if (o->initiator) {
		snprintf(initiator, sizeof(initiator), "%s", o->initiator);
	} else {
		rc = iscsi_initiator_name(opts_host(o, hbuf, sizeof(hbuf)), initiator,
		                          sizeof(initiator));
		if (rc)
			return rc;
	}
	rc = lun_open(url, initiator, o->timeout_s, lun_r);
	if (rc == ERR_NOTSUP && url[0] != '/')
		log_error("%s: this xl-ext is built without libiscsi; give the LUN's kernel block "
		          "device (/dev/disk/by-path/ip-...-lun-N) instead",
		          url);
	return rc;
}

static int read_identity(const struct storage_opts *o, const char *url, struct lunid *id)
{
	struct lun *lun = NULL;
	int rc;

	rc = open_lun(o, url, &lun);
	if (rc)
		goto out;
	rc = lun_identity(lun, id);
out:
	lun_close(lun);
	return rc;
}

static int disk_check(const struct storage_opts *o, const char *spec)
{
	struct disk_info d;
	char url[DISK_URL_MAX] = "", target[LUN_TARGET_MAX] = "";
	char *json = NULL;
	int rc;

	if (spec[0] == '/') {
		/* a block device: classified as the phy: disk it would be (iSCSI when its name is
		 * /dev/disk/by-path/ip-...-iscsi-...-lun-N), read through the kernel initiator */
		char phy[DISK_SPEC_MAX];

		snprintf(phy, sizeof(phy), "phy:%.1000s,xvda,w", spec);
		rc = disk_classify(phy, &d);
		if (rc)
			goto out;
		snprintf(d.spec, sizeof(d.spec), "%s", spec);
		d.vdev[0] = '\0';
		snprintf(target, sizeof(target), "%s", spec);
	} else {
		rc = disk_classify(spec, &d);
		if (rc)
			goto out;
	}
	if (d.kind == DISK_ISCSI) {
		rc = disk_iscsi_url(&d, url, sizeof(url));
		if (rc)
			goto out;
	}
	if (!target[0])
		snprintf(target, sizeof(target), "%s", url);
	if ((d.kind == DISK_ISCSI || target[0] == '/') && o->connect) {
		struct lunid id, other;

		rc = read_identity(o, target, &id);
		if (rc)
			goto out;
		rc = lunid_to_json(&id, &json);
		if (rc)
			goto out;
		if (o->expect) {
			char why[600];

			rc = lunid_from_json(o->expect, &other);
			if (rc)
				goto out;
			rc = lunid_compare(&other, &id, why, sizeof(why));
			if (rc) {
				log_error("LUN identity mismatch: %s is not the expected disk: %s",
				          target, why);
				goto out;
			}
		}
		if (o->compare) {
			struct disk_info d2;
			char url2[DISK_URL_MAX], why[600];

			rc = resolve_url(o->compare, url2, sizeof(url2), &d2);
			if (!rc)
				rc = read_identity(o, url2, &other);
			if (rc)
				goto out;
			rc = lunid_compare(&id, &other, why, sizeof(why));
			if (rc) {
				log_error(
				    "LUN identity mismatch: %s is not the same disk as %s: %s",
				    target, url2, why);
				goto out;
			}
		}
	}
	print_disk_json(&d, url, target[0] == '/' ? target : NULL, json);
out:
	free(json);
	return rc;
}

int main_disk_check(int argc, char **argv)
{
	static const struct option longopts[] = {{"no-connect", no_argument, NULL, 'n'},
	                                         {"host", required_argument, NULL, 'H'},
	                                         {"initiator", required_argument, NULL, 'I'},
	                                         {"timeout", required_argument, NULL, 't'},
	                                         {"compare", required_argument, NULL, 'c'},
	                                         {"expect", required_argument, NULL, 'e'},
	                                         CMD_LONGOPTS_END};
	struct storage_opts o = {.timeout_s = 5, .connect = 1};
	int opt, rc;

	CMD_FOREACH_OPT (opt, argc, argv, "nH:I:t:c:e:", longopts, &xlext_table, SPEC("disk-check"),
	                 1) {
	case 'n':
		o.connect = 0;
		break;
	case 'H':
		o.host = optarg;
		break;
	case 'I':
		o.initiator = optarg;
		break;
	case 't':
		o.timeout_s = atoi(optarg);
		break;
	case 'c':
		o.compare = optarg;
		break;
	case 'e':
		o.expect = optarg;
		break;
	}
	if (o.timeout_s < 1 || o.timeout_s > 600) {
		log_error("--timeout: 1 to 600 seconds");
		return 2;
	}
	rc = disk_check(&o, argv[optind]);
	return err_exit_status(rc);
}

static int parse_key_arg(const char *s, uint64_t *key_r)
{
	int rc = own_host_key(NULL, s, key_r);

	if (rc)
		log_error("'%s': a reservation key is 1-16 hex digits, not 0", s);
	return rc;
}

static void print_view(const struct own_view *v, uint64_t self)
{
	printf("keys:");
	for (unsigned i = 0; i < v->nkeys; i++)
		printf(" 0x%016" PRIx64 "%s", v->keys[i], v->keys[i] == self ? "(self)" : "");
	printf("%s\n", v->nkeys ? "" : " none");
	if (v->reserved)
		printf("reservation: holder 0x%016" PRIx64 "%s type %d%s\n", v->holder,
		       v->holder == self ? "(self)" : "", v->type,
		       v->type == OWN_PR_TYPE_WERO ? " (write exclusive - registrants only)" : "");
	else
		printf("reservation: none\n");
}

/* One PR command, timed: "pr: <op> ... ok (1.2 ms)". */
static int timed_cmd(struct lun *lun, const struct own_cmd *cmd, struct own_view *view,
                     const char *label)
{
	double t0 = now_ms();
	int rc = lun_pr_execute(lun, cmd, view);

	printf("pr: %-10s key 0x%016" PRIx64, label ? label : own_op_name(cmd->op), cmd->key);
	if (cmd->op == OWN_OP_PREEMPT)
		printf(" victim 0x%016" PRIx64, cmd->sa_key);
	printf(" %s (%.1f ms)\n", rc ? err_name(rc) : "ok", now_ms() - t0);
	fflush(stdout);
	return rc;
}

static int run_flow(struct lun *lun, enum own_flow flow, uint64_t self, uint64_t peer)
{
	struct own_machine m;
	double t0 = now_ms();
	int rc, first_rc = 0;

	rc = own_init(&m, flow, self, peer);
	if (rc) {
		log_error("%s: invalid keys (own 0x%016" PRIx64 ", peer 0x%016" PRIx64 ")",
		          own_flow_name(flow), self, peer);
		return rc;
	}
	for (unsigned steps = 0; steps < 16; steps++) {
		struct own_cmd cmd = own_next(&m);
		struct own_view view;

		if (cmd.op == OWN_OP_NONE) {
			if (m.state == OWN_ST_READY) {
				/* a standalone hand-over: GO is now */
				printf("pr: go         (guest runs on the destination)\n");
				own_go(&m);
				continue;
			}
			break;
		}
		rc = timed_cmd(lun, &cmd, &view, m.state == OWN_ST_UNDO ? "undo" : NULL);
		rc = own_result(&m, rc, &view);
		if (rc && !first_rc)
			first_rc = rc;
		if (rc && m.go)
			break; /* after GO: leave the retry to the caller */
	}
	if (m.state != OWN_ST_DONE) {
		log_error("%s: %s (state %s): %s", lun_name(lun), own_flow_name(flow),
		          own_state_name(m.state), m.why[0] ? m.why : err_str(first_rc));
		return m.error ? m.error : (first_rc ? first_rc : ERR_INTERNAL);
	}
	printf("pr: %s done (%.1f ms)\n", own_flow_name(flow), now_ms() - t0);
	return 0;
}

static int lun_dev_read(void *ctx, uint64_t lba, void *buf, size_t len)
{
	return lun_read(ctx, lba, buf, len);
}

static int lun_dev_write(void *ctx, uint64_t lba, const void *buf, size_t len)
{
	return lun_write(ctx, lba, buf, len);
}

static int journal_append_n(struct lun *lun, const struct storage_opts *o, uint64_t key,
                            unsigned long count, unsigned long interval_ms)
{
	struct journal_dev dev = {lun_dev_read, lun_dev_write, lun, lun_block_size(lun),
	                          lun_nblocks(lun)};
	struct journal_writer w;
	uint64_t first;
	int rc;

	rc = journal_writer_open(&w, &dev, o->guest, key, o->base, o->ring);
	if (rc)
		return rc;
	first = w.next_seq;
	for (unsigned long i = 0; i < count; i++) {
		char payload[64];
		int n =
		    snprintf(payload, sizeof(payload), "guest %" PRIu64 " write %lu", o->guest, i);

		rc = journal_append(&w, payload, (size_t)n, NULL);
		if (rc)
			break;
		if (interval_ms)
			usleep((useconds_t)interval_ms * 1000);
	}
	printf("journal: guest %" PRIu64 " key 0x%016" PRIx64 " appended %" PRIu64 "-%" PRIu64
	       " acked %" PRIu64 "%s%s\n",
	       o->guest, key, first, w.acked, w.acked, rc ? " stopped: " : "",
	       rc ? err_str(rc) : "");
	fflush(stdout);
	if (rc == ERR_CONFLICT)
		log_error("%s: write of journal sequence %" PRIu64 " refused: reservation "
		          "conflict (key 0x%016" PRIx64 " does not own the LUN)",
		          lun_name(lun), w.next_seq, key);
	return rc;
}

static int journal_check_cmd(struct lun *lun, const struct storage_opts *o, const char *acked_s,
                             const char *epochs_s)
{
	struct journal_dev dev = {lun_dev_read, lun_dev_write, lun, lun_block_size(lun),
	                          lun_nblocks(lun)};
	struct journal_epoch epochs[JOURNAL_MAX_EPOCHS];
	struct journal_report r;
	unsigned nepochs = 0;
	char *end;
	unsigned long long acked = strtoull(acked_s, &end, 10);
	int rc;

	if (*end || journal_epochs_parse(epochs_s, epochs, JOURNAL_MAX_EPOCHS, &nepochs)) {
		log_error("journal-check ACKED KEY:FROM[,KEY:FROM...]: bad '%s %s'", acked_s,
		          epochs_s);
		return ERR_INVAL;
	}
	rc = journal_check(&dev, o->guest, o->base, o->ring, acked, epochs, nepochs, &r);
	printf("journal-check: guest %" PRIu64 " window %" PRIu64 "-%" PRIu64 " records %" PRIu64
	       " unacked %" PRIu64 " lost %u duplicate %u foreign %u bad %u misplaced %u: %s\n",
	       o->guest, r.lo, r.hi, r.records, r.unacked, r.lost, r.duplicate, r.foreign,
	       r.bad_checksum + r.other_guest, r.misplaced, rc ? r.first : "consistent");
	return rc;
}

static int block_io(struct lun *lun, const char *verb, const char *arg, uint64_t key)
{
	uint8_t buf[JOURNAL_MAX_BLOCK];
	uint32_t bs = lun_block_size(lun);
	char *end;
	unsigned long long lba = strtoull(arg, &end, 10);
	double t0 = now_ms();
	int rc;

	if (*end || !*arg || bs > sizeof(buf) || lba >= lun_nblocks(lun)) {
		log_error("%s LBA: '%s' is not a block of this LUN", verb, arg);
		return ERR_INVAL;
	}
	if (!strcmp(verb, "write")) {
		memset(buf, 0, bs);
		snprintf((char *)buf, bs, "xl-ext test block %llu by key 0x%016" PRIx64, lba, key);
		rc = lun_write(lun, lba, buf, bs);
	} else {
		rc = lun_read(lun, lba, buf, bs);
	}
	printf("io: %-5s lba %llu %s (%.1f ms)%s%s\n", verb, lba, rc ? err_name(rc) : "ok",
	       now_ms() - t0, !rc && verb[0] == 'r' ? ": " : "",
	       !rc && verb[0] == 'r' ? (char *)buf : "");
	fflush(stdout);
	if (rc == ERR_CONFLICT)
		log_error("%s: %s of block %llu refused: reservation conflict (key 0x%016" PRIx64
		          " is not a registrant)",
		          lun_name(lun), verb, lba, key);
	return rc;
}

/* Run the verbs argv[0..argc) on lun; stops at the first failure. */
static int run_verbs(struct lun *lun, const struct storage_opts *o, uint64_t self, int argc,
                     char **argv)
{
	static const struct {
		const char *name;
		enum own_op op;
	} simple[] = {
	    {"register", OWN_OP_REGISTER}, {"unregister", OWN_OP_UNREGISTER},
	    {"reserve", OWN_OP_RESERVE},   {"release", OWN_OP_RELEASE},
	    {"clear", OWN_OP_CLEAR},
	};
	int i = 0, rc = 0;

	while (i < argc && !rc) {
		const char *verb = argv[i++];
		const char *a1 = i < argc ? argv[i] : NULL, *a2 = i + 1 < argc ? argv[i + 1] : NULL;
		struct own_cmd cmd = {.key = self, .type = OWN_PR_TYPE_WERO};
		struct own_view view;
		uint64_t peer;
		unsigned s;

		for (s = 0; s < sizeof(simple) / sizeof(simple[0]); s++)
			if (!strcmp(verb, simple[s].name))
				break;
		if (s < sizeof(simple) / sizeof(simple[0])) {
			cmd.op = simple[s].op;
			rc = timed_cmd(lun, &cmd, &view, NULL);
		} else if (!strcmp(verb, "show")) {
			rc = lun_pr_read(lun, &view);
			if (!rc)
				print_view(&view, self);
		} else if (!strcmp(verb, "key")) {
			printf("key: 0x%016" PRIx64 "\n", self);
		} else if (!strcmp(verb, "preempt") || !strcmp(verb, "handover") ||
		           !strcmp(verb, "fence")) {
			if (!a1 || (rc = parse_key_arg(a1, &peer)))
				goto usage;
			i++;
			if (verb[0] == 'p') {
				cmd.op = OWN_OP_PREEMPT;
				cmd.sa_key = peer;
				rc = timed_cmd(lun, &cmd, &view, NULL);
			} else {
				rc = run_flow(lun,
				              verb[0] == 'h' ? OWN_FLOW_HANDOVER : OWN_FLOW_FENCE,
				              self, peer);
			}
		} else if (!strcmp(verb, "acquire") || !strcmp(verb, "giveup")) {
			rc = run_flow(lun, verb[0] == 'a' ? OWN_FLOW_ACQUIRE : OWN_FLOW_RELEASE,
			              self, 0);
		} else if (!strcmp(verb, "write") || !strcmp(verb, "read")) {
			if (!a1)
				goto usage;
			i++;
			rc = block_io(lun, verb, a1, self);
		} else if (!strcmp(verb, "wait")) {
			char line[64];

			printf("wait: reading a line from stdin\n");
			fflush(stdout);
			if (!fgets(line, sizeof(line), stdin))
				printf("wait: end of input\n");
		} else if (!strcmp(verb, "journal-append")) {
			unsigned long count, interval = 0;
			char *end;

			if (!a1)
				goto usage;
			count = strtoul(a1, &end, 10);
			if (*end || !count)
				goto usage;
			i++;
			rc = journal_append_n(lun, o, self, count, interval);
		} else if (!strcmp(verb, "journal-check")) {
			if (!a1 || !a2)
				goto usage;
			i += 2;
			rc = journal_check_cmd(lun, o, a1, a2);
		} else {
			log_error("unknown verb '%s' (see xl-ext help pr)", verb);
			return ERR_INVAL;
		}
	}
	return rc;
usage:
	log_error("verb '%s': missing or bad argument (see xl-ext help pr)", argv[i - 1]);
	return ERR_INVAL;
}

int main_pr(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"host", required_argument, NULL, 'H'},      {"key", required_argument, NULL, 'k'},
	    {"initiator", required_argument, NULL, 'I'}, {"timeout", required_argument, NULL, 't'},
	    {"guest", required_argument, NULL, 'g'},     {"base", required_argument, NULL, 'B'},
	    {"ring", required_argument, NULL, 'R'},      CMD_LONGOPTS_END};
	struct storage_opts o = {.timeout_s = 5, .guest = 1, .base = 2048, .ring = 1024};
	int opt, rc;

	CMD_FOREACH_OPT (opt, argc, argv, "H:k:I:t:g:B:R:", longopts, &xlext_table, SPEC("pr"), 2) {
	case 'H':
		o.host = optarg;
		break;
	case 'k':
		o.key = optarg;
		break;
	case 'I':
		o.initiator = optarg;
		break;
	case 't':
		o.timeout_s = atoi(optarg);
		break;
	case 'g':
		o.guest = strtoull(optarg, NULL, 0);
		break;
	case 'B':
		o.base = strtoull(optarg, NULL, 0);
		break;
	case 'R':
		o.ring = strtoull(optarg, NULL, 0);
		break;
	}
	{
		struct lun *lun = NULL;
		struct disk_info d;
		char url[DISK_URL_MAX];
		uint64_t self;

		if (o.timeout_s < 1 || o.timeout_s > 600) {
			log_error("--timeout: 1 to 600 seconds");
			return 2;
		}
		rc = opts_key(&o, &self);
		if (!rc)
			rc = resolve_url(argv[optind], url, sizeof(url), &d);
		if (!rc)
			rc = open_lun(&o, url, &lun);
		if (!rc)
			rc = run_verbs(lun, &o, self, argc - optind - 1, argv + optind + 1);
		lun_close(lun);
	}
	return err_exit_status(rc);
}
