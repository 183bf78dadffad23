/* Table-driven tests of the disk-spec classifier (xl-ext/storage/disk.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/migration/disks.h"
#include "xl-ext/storage/disk.h"

#define IQN "iqn.2024-01.org.example:storage.lun-set1"

struct accept_case {
	const char *spec;
	enum disk_kind kind;
	enum disk_form form;
	const char *host;
	unsigned port, lun;
	const char *iqn;
	int readonly;
	const char *vdev;
	const char *url;
};

static const struct accept_case accepted[] = {
    /* block-iscsi script form, as Xen documents it */
    {"vdev=xvda,script=block-iscsi,target=iqn=" IQN ",portal=10.0.0.1", DISK_ISCSI,
     DISK_FORM_SCRIPT, "10.0.0.1", 3260, 0, IQN, 0, "xvda", "iscsi://10.0.0.1:3260/" IQN "/0"},
    {"vdev=xvdb,access=rw,script=block-iscsi,target=portal=192.168.7.3:3261,iqn=" IQN ",lun=4",
     DISK_ISCSI, DISK_FORM_SCRIPT, "192.168.7.3", 3261, 4, IQN, 0, "xvdb",
     "iscsi://192.168.7.3:3261/" IQN "/4"},
    {"vdev=xvdc,access=ro,script=/etc/xen/scripts/block-iscsi,target=iqn=" IQN
     ",portal=10.0.0.1:3260,multipath=n",
     DISK_ISCSI, DISK_FORM_SCRIPT, "10.0.0.1", 3260, 0, IQN, 1, "xvdc",
     "iscsi://10.0.0.1:3260/" IQN "/0"},
    {"vdev=xvdd,script=block-iscsi,target=iqn=eui.02004567A425678D,portal=[fd00::5]:3262,lun=16383",
     DISK_ISCSI, DISK_FORM_SCRIPT, "fd00::5", 3262, 16383, "eui.02004567A425678D", 0, "xvdd",
     "iscsi://[fd00::5]:3262/eui.02004567A425678D/16383"},
    {"vdev=xvde,script=block-iscsi,target=iqn=naa.52004567ba64678d,portal=10.0.0.9", DISK_ISCSI,
     DISK_FORM_SCRIPT, "10.0.0.9", 3260, 0, "naa.52004567ba64678d", 0, "xvde",
     "iscsi://10.0.0.9:3260/naa.52004567ba64678d/0"},
    {"vdev=xvdf,script=block-iscsi,target=iqn=naa.52004567ba64678d52004567ba64678d,portal=10.0.0.9",
     DISK_ISCSI, DISK_FORM_SCRIPT, "10.0.0.9", 3260, 0, "naa.52004567ba64678d52004567ba64678d", 0,
     "xvdf", "iscsi://10.0.0.9:3260/naa.52004567ba64678d52004567ba64678d/0"},
    {"vdev=xvdg,script=block-iscsi,target=iqn=iqn.2001-04.com.example,portal=10.0.0.1", DISK_ISCSI,
     DISK_FORM_SCRIPT, "10.0.0.1", 3260, 0, "iqn.2001-04.com.example", 0, "xvdg",
     "iscsi://10.0.0.1:3260/iqn.2001-04.com.example/0"},
    /* kernel initiator by-path, positional and keyword forms */
    {"phy:/dev/disk/by-path/ip-10.77.0.250:3260-iscsi-" IQN "-lun-1,xvda,w", DISK_ISCSI,
     DISK_FORM_BYPATH, "10.77.0.250", 3260, 1, IQN, 0, "xvda",
     "iscsi://10.77.0.250:3260/" IQN "/1"},
    {"format=raw,vdev=hda,access=r,target=/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-"
     "iqn.2010-10.org.openstack:volume-lun-7-lun-12",
     DISK_ISCSI, DISK_FORM_BYPATH, "10.0.0.1", 3260, 12, "iqn.2010-10.org.openstack:volume-lun-7",
     1, "hda", "iscsi://10.0.0.1:3260/iqn.2010-10.org.openstack:volume-lun-7/12"},
    {"/dev/disk/by-path/ip-10.0.0.1-iscsi-" IQN "-lun-0,raw,xvdb,rw", DISK_ISCSI, DISK_FORM_BYPATH,
     "10.0.0.1", 3260, 0, IQN, 0, "xvdb", "iscsi://10.0.0.1:3260/" IQN "/0"},
    /* local disks */
    {"file:/var/lib/xen/images/vm1.img,xvda,w", DISK_LOCAL, DISK_FORM_OTHER, "", 0, 0, "", 0,
     "xvda", NULL},
    {"phy:/dev/vg0/vm1,xvda,w", DISK_LOCAL, DISK_FORM_OTHER, "", 0, 0, "", 0, "xvda", NULL},
    {"format=qcow2,vdev=xvdb,access=rw,backendtype=qdisk,target=/srv/vm1.qcow2", DISK_LOCAL,
     DISK_FORM_OTHER, "", 0, 0, "", 0, "xvdb", NULL},
    {"/srv/iso/debian.iso,raw,hdc,r,devtype=cdrom", DISK_LOCAL, DISK_FORM_OTHER, "", 0, 0, "", 1,
     "hdc", NULL},
    {"phy:/dev/disk/by-path/pci-0000:00:1f.2-ata-1,xvdc,w", DISK_LOCAL, DISK_FORM_OTHER, "", 0, 0,
     "", 0, "xvdc", NULL},
    {"vdev=xvdh,script=block-drbd,target=drbd-r0", DISK_LOCAL, DISK_FORM_OTHER, "", 0, 0, "", 0,
     "xvdh", NULL},
};

static void test_accepted(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
		const struct accept_case *c = &accepted[i];
		struct disk_info d;
		char url[DISK_URL_MAX];
		int rc = disk_classify(c->spec, &d);

		if (rc)
			fail_msg("case %zu '%s': rejected: %s", i, c->spec, err_name(rc));
		assert_int_equal(d.kind, c->kind);
		assert_int_equal(d.form, c->form);
		assert_string_equal(d.vdev, c->vdev);
		assert_int_equal(d.readonly, c->readonly);
		assert_string_equal(d.spec, c->spec);
		if (c->kind == DISK_LOCAL) {
			assert_int_equal(disk_iscsi_url(&d, url, sizeof(url)), ERR_INVAL);
			continue;
		}
		assert_string_equal(d.host, c->host);
		assert_int_equal(d.port, c->port);
		assert_int_equal(d.lun, c->lun);
		assert_string_equal(d.iqn, c->iqn);
		assert_int_equal(disk_iscsi_url(&d, url, sizeof(url)), 0);
		assert_string_equal(url, c->url);
	}
}

struct reject_case {
	const char *spec;
	const char *message; /* part of the logged error */
};

#define S(target) "vdev=xvda,script=block-iscsi,target=" target

static const struct reject_case rejected[] = {
    {"", "empty"},
    {"vdev=xvda,format=bogus,target=/x", "not a valid xl disk spec"},
    {"xvda,w", "not a valid xl disk spec"},
    {"vdev=xvda,script=block-iscsi", "no target specified"},
    {S("portal=10.0.0.1"), "iqn= and portal= are required"},
    {S("iqn=" IQN), "iqn= and portal= are required"},
    {S("iqn=" IQN ",portal=10.0.0.1,lnu=1"), "unknown block-iscsi target parameter"},
    {S("iqn=" IQN ",portal=10.0.0.1,iqn=" IQN), "given twice"},
    {S("iqn=" IQN ",portal"), "without '='"},
    {S("iqn=" IQN ",portal=10.0.0.1,multipath=yes"), "multipath must be y or n"},
    {S("iqn=" IQN ",portal=10.0.0.1,lun=16384"), "LUN out of range"},
    {S("iqn=" IQN ",portal=10.0.0.1,lun=-1"), "LUN must be a decimal number"},
    {S("iqn=" IQN ",portal=10.0.0.1,lun="), "LUN must be a decimal number"},
    {S("iqn=" IQN ",portal=10.0.0.1,lun=0x1"), "LUN must be a decimal number"},
    {S("iqn=" IQN ",portal=10.0.0.1:0"), "port out of range"},
    {S("iqn=" IQN ",portal=10.0.0.1:65536"), "port out of range"},
    {S("iqn=" IQN ",portal=10.0.0.1:"), "port must be"},
    {S("iqn=" IQN ",portal=10.0.0.1:32a"), "port must be"},
    {S("iqn=" IQN ",portal=storage.example.com"), "not an IPv4 address"},
    {S("iqn=" IQN ",portal=10.0.0.256"), "not an IPv4 address"},
    {S("iqn=" IQN ",portal=fd00::5"), "in brackets"},
    {S("iqn=" IQN ",portal=[fd00::5"), "missing ']'"},
    {S("iqn=" IQN ",portal=[zz::1]:3260"), "not an IPv6 address"},
    {S("iqn=" IQN ",portal="), "empty portal"},
    {S("iqn=,portal=10.0.0.1"), "empty iSCSI name"},
    {S("iqn=org.example:x,portal=10.0.0.1"), "must start with iqn., eui. or naa."},
    {S("iqn=iqn.24-01.org.example,portal=10.0.0.1"), "date yyyy-mm"},
    {S("iqn=iqn.2024-13.org.example,portal=10.0.0.1"), "date yyyy-mm"},
    {S("iqn=iqn.2024-1.org.example,portal=10.0.0.1"), "date yyyy-mm"},
    {S("iqn=iqn.2024-01.,portal=10.0.0.1"), "no naming authority"},
    {S("iqn=iqn.2024-01.org.:x,portal=10.0.0.1"), "empty label"},
    {S("iqn=iqn.2024-01:x,portal=10.0.0.1"), "date yyyy-mm"},
    {S("iqn=iqn.2024-01.org..example,portal=10.0.0.1"), "empty label"},
    {S("iqn=iqn.2024-01.Org.example,portal=10.0.0.1"), "lower case"},
    {S("iqn=iqn.2024-01.org.example:Disk1,portal=10.0.0.1"), "lower case"},
    {S("iqn=iqn.2024-01.org.example:disk_1,portal=10.0.0.1"), "invalid character after ':'"},
    {S("iqn=iqn.2024-01.org.ex@mple,portal=10.0.0.1"), "invalid character in the reversed"},
    {S("iqn=iqn.2024-01.org.example:,portal=10.0.0.1"), "nothing after ':'"},
    {S("iqn=eui.0200456,portal=10.0.0.1"), "exactly 16 hex digits"},
    {S("iqn=eui.02004567A425678G,portal=10.0.0.1"), "exactly 16 hex digits"},
    {S("iqn=naa.52004567ba64678d5,portal=10.0.0.1"), "16 or 32 hex digits"},
    {"phy:/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-" IQN ",xvda,w", "no '-lun-<n>'"},
    {"phy:/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-" IQN "-lun-1-part1,xvda,w", "partition"},
    {"phy:/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-" IQN "-lun-x,xvda,w", "LUN must be"},
    {"phy:/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-" IQN "-lun-99999,xvda,w", "LUN out of range"},
    {"phy:/dev/disk/by-path/ip-10.0.0.1:99999-iscsi-" IQN "-lun-1,xvda,w", "port out of range"},
    {"phy:/dev/disk/by-path/ip--iscsi-" IQN "-lun-1,xvda,w", "missing or too long portal"},
    {"phy:/dev/disk/by-path/ip-10.0.0.1:3260-iscsi--lun-1,xvda,w", "missing or too long IQN"},
    {"phy:/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-IQN.2024-01.x-lun-1,xvda,w",
     "must start with iqn."},
    {"phy:/dev/disk/by-path/ip-host.example:3260-iscsi-" IQN "-lun-1,xvda,w",
     "not an IPv4 address"},
    /* libxlutil's lexer exits the process on this one (found by fuzz_storage) */
    {"vde@=\nN", "control character 0x0a at offset 5"},
    {"vdev=xvda,target=/dev/x\r", "control character 0x0d"},
    {"vdev=xvda,target=/dev/\x7f", "control character 0x7f"},
};

static void test_rejected(void **state)
{
	struct log_sink *cap = log_sink_capture();
	struct log_sink *old = log_set_sink(cap);

	(void)state;
	for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
		const struct reject_case *c = &rejected[i];
		struct disk_info d;
		int rc;

		log_capture_clear(cap);
		rc = disk_classify(c->spec, &d);
		if (rc != ERR_INVAL)
			fail_msg("case %zu '%s': got %s, want ERR_INVAL", i, c->spec, err_name(rc));
		if (!log_capture_contains(cap, c->message))
			fail_msg("case %zu '%s': no message containing '%s' (got '%s')", i, c->spec,
			         c->message,
			         log_capture_get(cap, 0) ? log_capture_get(cap, 0) : "nothing");
		/* the message names the spec */
		if (c->spec[0] && !log_capture_contains(cap, "disk spec '"))
			fail_msg("case %zu: message does not name the spec", i);
	}
	log_set_sink(old);
	cap->destroy(cap);
}

static void test_too_long(void **state)
{
	char spec[DISK_SPEC_MAX + 16];
	struct disk_info d;
	struct log_sink *cap = log_sink_capture();
	struct log_sink *old = log_set_sink(cap);

	(void)state;
	memset(spec, 'a', sizeof(spec) - 1);
	spec[sizeof(spec) - 1] = '\0';
	assert_int_equal(disk_classify(spec, &d), ERR_INVAL);
	assert_true(log_capture_contains(cap, "longer than"));
	assert_int_equal(disk_classify(NULL, &d), ERR_INVAL);
	log_set_sink(old);
	cap->destroy(cap);
}

static void test_iqn_length(void **state)
{
	char iqn[300];
	const char *why = NULL;

	(void)state;
	snprintf(iqn, sizeof(iqn), "iqn.2024-01.org.example:");
	while (strlen(iqn) < 223)
		strcat(iqn, "a");
	assert_int_equal(strlen(iqn), 223);
	assert_true(disk_iqn_valid(iqn, &why));
	strcat(iqn, "a");
	assert_false(disk_iqn_valid(iqn, &why));
	assert_string_equal(why, "iSCSI name longer than 223 bytes");
}

static void test_migratable(void **state)
{
	struct disk_info d[3];
	struct log_sink *cap = log_sink_capture();
	struct log_sink *old = log_set_sink(cap);

	(void)state;
	assert_int_equal(disk_classify(S("iqn=" IQN ",portal=10.0.0.1"), &d[0]), 0);
	assert_int_equal(disk_classify("/srv/iso/debian.iso,raw,hdc,r,devtype=cdrom", &d[1]), 0);
	assert_int_equal(disk_classify("file:/srv/vm1-scratch.img,xvdb,w", &d[2]), 0);
	assert_int_equal(disk_check_migratable("vm1", d, 2, 0), 0);
	assert_int_equal(log_capture_count(cap), 0);
	assert_int_equal(disk_check_migratable("vm1", d, 3, 0), ERR_NOTSUP);
	assert_true(log_capture_contains(cap, "error: "));
	assert_true(log_capture_contains(cap, "domain vm1: disk xvdb ('file:/srv/vm1-scratch.img"));
	assert_true(log_capture_contains(cap, "--allow-local-disks"));
	log_capture_clear(cap);
	assert_int_equal(disk_check_migratable("vm1", d, 3, 1), 0);
	assert_true(log_capture_contains(cap, "warning: "));
	assert_true(log_capture_contains(cap, "is not moved"));
	log_set_sink(old);
	cap->destroy(cap);
}

/* --- disks rebuilt from their backends (hv_disk_spec_from_backend, migration/disks.c) ------- */

static struct hv_disk fake_backends[2];

/* A backend whose disks are what xenstore's backends say, as the xen backend rebuilds them. */
static int fake_disk_specs(struct hv *hv, uint32_t domid, struct hv_disk_specs *specs)
{
	char spec[512];

	(void)hv;
	assert_int_equal(domid, 5);
	memset(specs, 0, sizeof(*specs));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(hv_disk_spec_from_backend(&fake_backends[i], spec, sizeof(spec)),
		                 0);
		assert_int_equal(hv_disk_specs_add(specs, spec), 0);
	}
	return 0;
}

/* A local device whose backend is in mode "r" is read-only, so it does not block a migration. */
static void test_backends_readonly(void **state)
{
	static const struct hv_ops ops = {.name = "fake", .disk_specs = fake_disk_specs};
	struct mig_disks disks;

	(void)state;
	memset(fake_backends, 0, sizeof(fake_backends));
	snprintf(fake_backends[0].vdev, sizeof(fake_backends[0].vdev), "51712");
	snprintf(fake_backends[0].params, sizeof(fake_backends[0].params),
	         "iqn=" IQN ",portal=192.0.2.10:3260");
	snprintf(fake_backends[0].script, sizeof(fake_backends[0].script), "block-iscsi");
	snprintf(fake_backends[1].vdev, sizeof(fake_backends[1].vdev), "51728");
	snprintf(fake_backends[1].params, sizeof(fake_backends[1].params), "/dev/vg0/data");
	fake_backends[1].readonly = true;
	assert_int_equal(mig_disks_collect(&ops, NULL, 5, "vm1", NULL, &disks), 0);
	assert_int_equal(disks.n, 2);
	assert_int_equal(disks.info[0].kind, DISK_ISCSI);
	assert_false(disks.info[0].readonly);
	assert_int_equal(disks.info[1].kind, DISK_LOCAL);
	assert_true(disks.info[1].readonly);
	assert_int_equal(mig_disks_check("vm1", &disks, 0), 0);
	mig_disks_dispose(&disks);
	/* the same device writable: refused */
	fake_backends[1].readonly = false;
	assert_int_equal(mig_disks_collect(&ops, NULL, 5, "vm1", NULL, &disks), 0);
	assert_false(disks.info[1].readonly);
	assert_int_equal(mig_disks_check("vm1", &disks, 0), ERR_NOTSUP);
	mig_disks_dispose(&disks);
}

/* With -C FILE the disks checked are the file's, which the destination attaches. */
static void test_config_file_disks(void **state)
{
	static const struct hv_ops ops = {.name = "fake", .disk_specs = fake_disk_specs};
	char path[] = "/tmp/test_disk.XXXXXX";
	struct mig_disks disks;
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "name = \"vm1\"\nmemory = 64\n"
	           "disk = [ \"vdev=xvda,access=rw,target=/dev/vg0/root\",\n"
	           "         \"vdev=xvdb,script=block-iscsi,target=iqn=" IQN
	           ",portal=192.0.2.10:3260\" ]\n");
	fclose(f);
	assert_int_equal(mig_disks_collect(&ops, NULL, 5, "vm1", path, &disks), 0);
	assert_int_equal(disks.n, 2);
	assert_int_equal(disks.info[0].kind, DISK_LOCAL);
	assert_int_equal(disks.info[1].kind, DISK_ISCSI);
	assert_int_equal(mig_disks_check("vm1", &disks, 0), ERR_NOTSUP);
	mig_disks_dispose(&disks);
	/* a file that is not there: an error naming it, nothing collected */
	unlink(path);
	assert_int_not_equal(mig_disks_collect(&ops, NULL, 5, "vm1", path, &disks), 0);
	assert_int_equal(disks.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepted),          cmocka_unit_test(test_rejected),
	    cmocka_unit_test(test_too_long),          cmocka_unit_test(test_iqn_length),
	    cmocka_unit_test(test_migratable),        cmocka_unit_test(test_backends_readonly),
	    cmocka_unit_test(test_config_file_disks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
