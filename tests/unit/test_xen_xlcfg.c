/*
 * xl.cfg -> libxl_domain_config and its JSON (xl-ext/xen/xen_xlcfg.c), with the real libxl and
 * libxlutil and no libxl context: what 'migrate -C FILE' sends with the xen backend. Each case
 * writes its file into a temporary directory; malformed files must fail naming file and key.
 * libxl_domain_config_to_json runs without a context; its from_json does not (it allocates
 * from the context's gc), and libxl_ctx_alloc needs xenstore, so the receiver's parse of this
 * JSON is checked with json-c here, not with libxl.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/xen/xen.h"

static struct log_sink *capture;
static char dir[] = "/tmp/test_xen_xlcfg.XXXXXX";
static char path[sizeof(dir) + 32];

static const char *write_cfg(const char *name, const char *text)
{
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char pv_cfg[] = "# a PV guest on iSCSI with a local read-only disk\n"
                             "name = \"web1\"\n"
                             "type = \"pv\"\n"
                             "memory = 1024\n"
                             "maxmem = 2048\n"
                             "vcpus = 2\n"
                             "maxvcpus = 4\n"
                             "kernel = \"/boot/vmlinuz\"\n"
                             "ramdisk = \"/boot/initrd.img\"\n"
                             "root = \"/dev/xvda1\"\n"
                             "extra = \"console=hvc0\"\n"
                             "on_crash = \"restart\"\n"
                             "disk = [ 'vdev=xvda,access=rw,script=block-iscsi,"
                             "target=iqn=iqn.2026-01.org.example:store,portal=192.0.2.10:3260',\n"
                             "         'phy:/dev/vg0/data,xvdb,r' ]\n"
                             "vif = [ 'mac=00:16:3e:01:02:03,bridge=xenbr0,ip=192.0.2.50',\n"
                             "        'bridge=xenbr1,model=e1000' ]\n";

static void test_pv_disks_vifs(void **state)
{
	libxl_domain_config cfg;
	const libxl_domain_build_info *b = &cfg.b_info;
	static const libxl_mac mac = {0x00, 0x16, 0x3e, 0x01, 0x02, 0x03};

	(void)state;
	libxl_domain_config_init(&cfg);
	assert_int_equal(xen_xlcfg_parse(write_cfg("pv.cfg", pv_cfg), &cfg), 0);
	assert_string_equal(cfg.c_info.name, "web1");
	assert_int_equal(cfg.c_info.type, LIBXL_DOMAIN_TYPE_PV);
	assert_int_equal(b->type, LIBXL_DOMAIN_TYPE_PV);
	assert_int_equal(b->target_memkb, 1024 * 1024);
	assert_int_equal(b->max_memkb, 2048 * 1024);
	assert_int_equal(b->max_vcpus, 4);
	assert_int_equal(libxl_bitmap_count_set(&b->avail_vcpus), 2);
	assert_true(libxl_bitmap_test(&b->avail_vcpus, 1));
	assert_false(libxl_bitmap_test(&b->avail_vcpus, 2));
	assert_string_equal(b->kernel, "/boot/vmlinuz");
	assert_string_equal(b->ramdisk, "/boot/initrd.img");
	assert_string_equal(b->cmdline, "root=/dev/xvda1 console=hvc0");
	assert_null(b->u.pv.bootloader);

	assert_int_equal(cfg.num_disks, 2);
	assert_string_equal(cfg.disks[0].vdev, "xvda");
	assert_string_equal(cfg.disks[0].script, "block-iscsi");
	assert_string_equal(cfg.disks[0].pdev_path,
	                    "iqn=iqn.2026-01.org.example:store,portal=192.0.2.10:3260");
	assert_int_equal(cfg.disks[0].readwrite, 1);
	assert_string_equal(cfg.disks[1].vdev, "xvdb");
	assert_string_equal(cfg.disks[1].pdev_path, "/dev/vg0/data");
	assert_int_equal(cfg.disks[1].format, LIBXL_DISK_FORMAT_RAW);
	assert_int_equal(cfg.disks[1].readwrite, 0);

	assert_int_equal(cfg.num_nics, 2);
	assert_memory_equal(cfg.nics[0].mac, mac, 6);
	assert_string_equal(cfg.nics[0].bridge, "xenbr0");
	assert_string_equal(cfg.nics[0].ip, "192.0.2.50");
	assert_int_equal(cfg.nics[0].devid, 0);
	assert_string_equal(cfg.nics[1].bridge, "xenbr1");
	assert_null(cfg.nics[1].ip);
	assert_int_equal(cfg.nics[1].devid, 1);
	assert_int_equal(cfg.on_crash, LIBXL_ACTION_ON_SHUTDOWN_RESTART);
	assert_int_equal(cfg.on_reboot, LIBXL_ACTION_ON_SHUTDOWN_RESTART); /* xl's default */
	/* what is not converted is said, at debug level */
	assert_false(log_capture_contains(capture, "'on_crash' is not converted"));
	assert_true(log_capture_contains(capture, "'model' is not converted by xl-ext"));
	assert_false(log_capture_contains(capture, "'maxvcpus' is not converted"));
	libxl_domain_config_dispose(&cfg);
}

/* The JSON libxl itself produces, without a context, renamed to the running domain's name. */
static void test_pv_json(void **state)
{
	json_object *o, *c_info, *b_info, *disks, *nics, *v;
	char *json = NULL;

	(void)state;
	assert_int_equal(xen_xlcfg_to_json(NULL, write_cfg("pv.cfg", pv_cfg), "web1-live", &json),
	                 0);
	o = json_tokener_parse(json);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "c_info", &c_info));
	assert_true(json_object_object_get_ex(c_info, "name", &v));
	assert_string_equal(json_object_get_string(v), "web1-live");
	assert_true(json_object_object_get_ex(c_info, "type", &v));
	assert_string_equal(json_object_get_string(v), "pv");
	assert_true(json_object_object_get_ex(o, "b_info", &b_info));
	assert_true(json_object_object_get_ex(b_info, "max_memkb", &v));
	assert_int_equal(json_object_get_int64(v), 2048 * 1024);
	assert_true(json_object_object_get_ex(b_info, "target_memkb", &v));
	assert_int_equal(json_object_get_int64(v), 1024 * 1024);
	assert_true(json_object_object_get_ex(b_info, "kernel", &v));
	assert_string_equal(json_object_get_string(v), "/boot/vmlinuz");
	assert_true(json_object_object_get_ex(o, "disks", &disks));
	assert_int_equal(json_object_array_length(disks), 2);
	assert_true(json_object_object_get_ex(o, "nics", &nics));
	assert_int_equal(json_object_array_length(nics), 2);
	assert_true(json_object_object_get_ex(json_object_array_get_idx(nics, 0), "mac", &v));
	assert_string_equal(json_object_get_string(v), "00:16:3e:01:02:03");
	json_object_put(o);
	free(json);
}

static void test_hvm(void **state)
{
	libxl_domain_config cfg;

	(void)state;
	libxl_domain_config_init(&cfg);
	assert_int_equal(
	    xen_xlcfg_parse(write_cfg("hvm.cfg", "name = \"win1\"\n"
	                                         "builder = \"hvm\"\n"
	                                         "memory = 4096\n"
	                                         "disk = [ 'file:/srv/win1.img,hda,w' ]\n"
	                                         "vif = [ 'mac=00:16:3e:aa:bb:cc' ]\n"
	                                         "on_poweroff = \"destroy\"\n"
	                                         "on_reboot = \"destroy\"\n"
	                                         "on_watchdog = \"coredump-destroy\"\n"),
	                    &cfg),
	    0);
	assert_int_equal(cfg.c_info.type, LIBXL_DOMAIN_TYPE_HVM);
	assert_int_equal(cfg.b_info.type, LIBXL_DOMAIN_TYPE_HVM);
	assert_int_equal(cfg.b_info.max_memkb, 4096 * 1024);
	assert_int_equal(cfg.b_info.max_vcpus, 1);
	assert_int_equal(libxl_bitmap_count_set(&cfg.b_info.avail_vcpus), 1);
	assert_null(cfg.b_info.kernel);
	assert_int_equal(cfg.num_disks, 1);
	assert_string_equal(cfg.disks[0].vdev, "hda");
	assert_int_equal(cfg.num_nics, 1);
	assert_null(cfg.nics[0].bridge);
	assert_int_equal(cfg.on_poweroff, LIBXL_ACTION_ON_SHUTDOWN_DESTROY);
	assert_int_equal(cfg.on_reboot, LIBXL_ACTION_ON_SHUTDOWN_DESTROY);
	assert_int_equal(cfg.on_watchdog, LIBXL_ACTION_ON_SHUTDOWN_COREDUMP_DESTROY);
	libxl_domain_config_dispose(&cfg);
}

struct bad_case {
	const char *text;
	int rc;
	const char *message;
};

static const struct bad_case bad[] = {
    {"name = \"a\"\nvcpus = 1\n", ERR_INVAL, "memory: a size in MiB is required"},
    {"memory = 512\n", ERR_INVAL, "name: the domain's name is required"},
    {"name = \"a\"\nmemory = 512\n"
     "disk = [ 'phy:/dev/sdb,xvda,rw', 'vdev=xvdb,access=maybe,target=/dev/sdc' ]\n",
     ERR_INVAL, "disk: cannot parse entry 2 'vdev=xvdb,access=maybe,target=/dev/sdc'"},
    {"name = \"a\"\nmemory = 512\nvif = [ 'mac=00:16:3e:zz:00:01' ]\n", ERR_INVAL,
     "vif: entry 1: mac '00:16:3e:zz:00:01' is not six hex bytes"},
    {"name = \"a\"\nmemory = 512\ntype = \"pvm\"\n", ERR_INVAL, "type 'pvm': must be pv"},
    {"name = \"a\"\nmemory = 512\nmaxmem = 256\n", ERR_INVAL,
     "maxmem: 256 MiB is less than memory (512 MiB)"},
    {"name = \"a\"\nmemory = 512\nvcpus = 0\n", ERR_INVAL, "vcpus: 0 is not between 1"},
    {"name = \"a\nmemory = 512\n", ERR_INVAL, "syntax error in the configuration"},
    {"name = \"a\"\nmemory = 512\non_crash = \"explode\"\n", ERR_INVAL,
     "on_crash: unknown action 'explode'"},
    /* an escaped line break in a disk spec: libxlutil's disk lexer would exit(2) on it */
    {"name = \"a\"\nmemory = 512\ndisk = [ \"vde@=\\nN\" ]\n", ERR_INVAL,
     "disk spec 'vde@=...': control character 0x0a at offset 5"},
};

static void test_malformed(void **state)
{
	char *json = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char expect[256];
		const char *p = write_cfg("bad.cfg", bad[i].text);

		log_capture_clear(capture);
		if (xen_xlcfg_to_json(NULL, p, NULL, &json) != bad[i].rc)
			fail_msg("case %zu: not refused with %d", i, bad[i].rc);
		assert_null(json);
		snprintf(expect, sizeof(expect), "%s: %s", p, bad[i].message);
		if (!log_capture_contains(capture, expect))
			fail_msg("case %zu: no log line with \"%s\"", i, expect);
	}
}

static void test_missing_file(void **state)
{
	char *json = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/absent.cfg", dir);
	assert_int_equal(xen_xlcfg_to_json(NULL, path, NULL, &json), ERR_NOTFOUND);
	assert_true(
	    log_capture_contains(capture, "absent.cfg: cannot read the configuration file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pv_disks_vifs), cmocka_unit_test(test_pv_json),
	    cmocka_unit_test(test_hvm),           cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_missing_file),
	};
	int rc;

	assert_non_null(mkdtemp(dir));
	capture = log_sink_capture();
	log_set_sink(capture);
	log_set_level(LOGL_DEBUG);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_set_sink(NULL);
	if (capture->destroy)
		capture->destroy(capture);
	unlink(path);
	snprintf(path, sizeof(path), "%s/pv.cfg", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/hvm.cfg", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/bad.cfg", dir);
	unlink(path);
	rmdir(dir);
	return rc;
}
