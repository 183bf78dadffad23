/*
 * test_sgio.c - SCSI through SG_IO (storage/sgio.h) without kernel SCSI: byte-exact CDBs and
 * parameter lists against the SPC-4 / SBC-3 layouts, parsers on handwritten target responses
 * (cut and oversized lengths included, in buffers of exactly their size so that an overread
 * is a sanitizer error), sense in both formats, the status mapping, the runner against a
 * scripted ioctl, and the choice between the kernel device and libiscsi (storage/lun.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <scsi/sg.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/disk.h"
#include "xl-ext/storage/lun.h"
#include "xl-ext/storage/sgio.h"

#define KEY_A 0x1122334455667788ULL
#define KEY_B 0xa1b2c3d4e5f60718ULL

static struct log_sink *cap;

static void expect_message(const char *needle)
{
	if (!log_capture_contains(cap, needle))
		fail_msg("no message containing '%s' (got '%s')", needle,
		         log_capture_count(cap) ? log_capture_get(cap, log_capture_count(cap) - 1)
		                                : "nothing");
}

/* A copy of n bytes in a buffer of exactly n bytes (overreads hit the sanitizer). */
static uint8_t *exact(const uint8_t *bytes, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	assert_non_null(p);
	memcpy(p, bytes, n);
	return p;
}

/* --- builders ----------------------------------------------------------------------------- */

static void check_pr_out(enum own_op op, uint64_t key, uint64_t sa_key, const uint8_t want_cdb[10],
                         const uint8_t want_param[24])
{
	struct own_cmd cmd = {.op = op, .key = key, .sa_key = sa_key, .type = OWN_PR_TYPE_WERO};
	uint8_t cdb[10], param[24];

	assert_int_equal(sgio_build_pr_out(&cmd, cdb, param), 10);
	assert_memory_equal(cdb, want_cdb, 10);
	assert_memory_equal(param, want_param, 24);
}

static void test_pr_out_cdbs(void **state)
{
	/* SPC-4 6.16.1: 5Fh, service action, scope|type, reserved x2, parameter list length
	 * (4 bytes, 24 = 18h), control; 6.16.2: reservation key, service action reservation key,
	 * obsolete, flags (SPEC_I_PT, ALL_TG_PT, APTPL = 0), reserved, obsolete */
	static const uint8_t reg_cdb[10] = {0x5f, 0x06, 0x00, 0, 0, 0, 0, 0, 0x18, 0};
	static const uint8_t reg_param[24] = {0,    0,    0,    0,    0,    0,    0,    0,
	                                      0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
	static const uint8_t unreg_param[24] = {0};
	static const uint8_t res_cdb[10] = {0x5f, 0x01, 0x05, 0, 0, 0, 0, 0, 0x18, 0};
	static const uint8_t rel_cdb[10] = {0x5f, 0x02, 0x05, 0, 0, 0, 0, 0, 0x18, 0};
	static const uint8_t key_param[24] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
	static const uint8_t clear_cdb[10] = {0x5f, 0x03, 0x00, 0, 0, 0, 0, 0, 0x18, 0};
	static const uint8_t pre_cdb[10] = {0x5f, 0x04, 0x05, 0, 0, 0, 0, 0, 0x18, 0};
	static const uint8_t pre_param[24] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
	                                      0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18};
	struct own_cmd verify = {.op = OWN_OP_VERIFY, .key = KEY_A};
	struct own_cmd none = {.op = OWN_OP_NONE, .key = KEY_A};
	uint8_t cdb[10], param[24];

	(void)state;
	/* REGISTER AND IGNORE EXISTING KEY: reservation key ignored (0), new key = own key */
	check_pr_out(OWN_OP_REGISTER, KEY_A, KEY_A, reg_cdb, reg_param);
	check_pr_out(OWN_OP_UNREGISTER, KEY_A, 0, reg_cdb, unreg_param);
	check_pr_out(OWN_OP_RESERVE, KEY_A, 0, res_cdb, key_param);
	check_pr_out(OWN_OP_RELEASE, KEY_A, 0, rel_cdb, key_param);
	/* CLEAR: no type, the key of the registrant clearing */
	check_pr_out(OWN_OP_CLEAR, KEY_A, 0, clear_cdb, key_param);
	check_pr_out(OWN_OP_PREEMPT, KEY_A, KEY_B, pre_cdb, pre_param);
	assert_int_equal(sgio_build_pr_out(&verify, cdb, param), ERR_INVAL);
	assert_int_equal(sgio_build_pr_out(&none, cdb, param), ERR_INVAL);
}

static void test_other_cdbs(void **state)
{
	static const uint8_t keys[10] = {0x5e, 0x00, 0, 0, 0, 0, 0, 0x10, 0x00, 0};
	static const uint8_t resv[10] = {0x5e, 0x01, 0, 0, 0, 0, 0, 0x00, 0x40, 0};
	static const uint8_t inq[6] = {0x12, 0x01, 0x83, 0x04, 0x00, 0};
	static const uint8_t rc16[16] = {0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0};
	static const uint8_t rd16[16] = {0x88, 0,    0, 0, 0, 0x01, 0x02, 0x03,
	                                 0x04, 0x05, 0, 0, 0, 0x08, 0,    0};
	static const uint8_t wr16[16] = {0x8a, 0,    0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa,
	                                 0x99, 0x88, 0x00, 0x01, 0x00, 0x00, 0,    0};
	uint8_t cdb[16];

	(void)state;
	assert_int_equal(sgio_build_pr_in(SGIO_PRIN_READ_KEYS, 4096, cdb), 10);
	assert_memory_equal(cdb, keys, 10);
	assert_int_equal(sgio_build_pr_in(SGIO_PRIN_READ_RESERVATION, 64, cdb), 10);
	assert_memory_equal(cdb, resv, 10);
	assert_int_equal(sgio_build_inquiry_vpd(0x83, 1024, cdb), 6);
	assert_memory_equal(cdb, inq, 6);
	assert_int_equal(sgio_build_read_capacity16(32, cdb), 16);
	assert_memory_equal(cdb, rc16, 16);
	assert_int_equal(sgio_build_rw16(0, 0x0102030405ULL, 8, cdb), 16);
	assert_memory_equal(cdb, rd16, 16);
	assert_int_equal(sgio_build_rw16(1, 0xffeeddccbbaa9988ULL, 0x10000, cdb), 16);
	assert_memory_equal(cdb, wr16, 16);
}

/* --- parsers ------------------------------------------------------------------------------ */

static void test_read_keys(void **state)
{
	static const uint8_t two[] = {0,    0,    0,    7,    0,    0,    0,    16,
	                              0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
	                              0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18};
	/* the target has 8 keys (64 bytes) but the buffer holds 2 and a half */
	static const uint8_t cut[] = {0,    0,    0,    7,    0,    0,    0,    64,   0x11, 0x22,
	                              0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0xa1, 0xb2, 0xc3, 0xd4,
	                              0xe5, 0xf6, 0x07, 0x18, 1,    2,    3,    4};
	static const uint8_t none[] = {0, 0, 0, 1, 0, 0, 0, 0};
	static const uint8_t odd[] = {0, 0, 0, 1, 0, 0, 0, 12, 1,  2,
	                              3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	static const uint8_t huge[] = {0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf8, 1, 2, 3, 4, 5, 6, 7, 8};
	struct own_view v;
	size_t needed;
	uint8_t *b;

	(void)state;
	memset(&v, 0xa5, sizeof(v));
	b = exact(two, sizeof(two));
	assert_int_equal(sgio_parse_read_keys(b, sizeof(two), &v, &needed), 0);
	assert_int_equal(v.nkeys, 2);
	assert_int_equal(v.keys[0], KEY_A);
	assert_int_equal(v.keys[1], KEY_B);
	assert_int_equal(needed, 24);
	free(b);

	b = exact(cut, sizeof(cut));
	assert_int_equal(sgio_parse_read_keys(b, sizeof(cut), &v, &needed), 0);
	assert_int_equal(v.nkeys, 2); /* whole keys only */
	assert_int_equal(needed, 72); /* the caller reads again with this */
	free(b);

	b = exact(none, sizeof(none));
	assert_int_equal(sgio_parse_read_keys(b, sizeof(none), &v, &needed), 0);
	assert_int_equal(v.nkeys, 0);
	free(b);

	b = exact(none, 7);
	assert_int_equal(sgio_parse_read_keys(b, 7, &v, NULL), ERR_PROTO);
	free(b);
	b = exact(odd, sizeof(odd));
	assert_int_equal(sgio_parse_read_keys(b, sizeof(odd), &v, NULL), ERR_PROTO);
	free(b);
	/* an absurd ADDITIONAL LENGTH: no overread, refused as more keys than we manage */
	b = exact(huge, sizeof(huge));
	assert_int_equal(sgio_parse_read_keys(b, sizeof(huge), &v, &needed), ERR_NOSPACE);
	assert_int_equal(needed, 8 + 0xfffffff8ULL);
	free(b);
}

static void test_read_keys_too_many(void **state)
{
	uint8_t buf[8 + 8 * (OWN_MAX_KEYS + 1)] = {0};
	struct own_view v;

	(void)state;
	buf[6] = (uint8_t)((8 * (OWN_MAX_KEYS + 1)) >> 8);
	buf[7] = (uint8_t)(8 * (OWN_MAX_KEYS + 1));
	for (unsigned i = 0; i <= OWN_MAX_KEYS; i++)
		buf[8 + 8 * i + 7] = (uint8_t)(i + 1);
	assert_int_equal(sgio_parse_read_keys(buf, sizeof(buf), &v, NULL), ERR_NOSPACE);
	buf[6] = (uint8_t)((8 * OWN_MAX_KEYS) >> 8);
	buf[7] = (uint8_t)(8 * OWN_MAX_KEYS);
	assert_int_equal(sgio_parse_read_keys(buf, sizeof(buf), &v, NULL), 0);
	assert_int_equal(v.nkeys, OWN_MAX_KEYS);
	assert_int_equal(v.keys[OWN_MAX_KEYS - 1], OWN_MAX_KEYS);
}

static void test_read_reservation(void **state)
{
	/* SPC-4 6.15.3: generation, additional length 10h, key, obsolete, reserved,
	 * scope|type, obsolete */
	static const uint8_t held[] = {0,    0,    0,    9,    0,    0,    0,    0x10,
	                               0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18,
	                               0,    0,    0,    0,    0,    0x05, 0,    0};
	static const uint8_t free_[] = {0, 0, 0, 9, 0, 0, 0, 0};
	struct own_view v = {0};
	uint8_t *b;

	(void)state;
	b = exact(held, sizeof(held));
	assert_int_equal(sgio_parse_read_reservation(b, sizeof(held), &v), 0);
	assert_true(v.reserved);
	assert_int_equal(v.holder, KEY_B);
	assert_int_equal(v.type, OWN_PR_TYPE_WERO);
	/* announced but cut: not trusted */
	assert_int_equal(sgio_parse_read_reservation(b, 20, &v), ERR_PROTO);
	free(b);
	b = exact(free_, sizeof(free_));
	assert_int_equal(sgio_parse_read_reservation(b, sizeof(free_), &v), 0);
	assert_false(v.reserved);
	assert_int_equal(v.holder, 0);
	assert_int_equal(sgio_parse_read_reservation(b, 4, &v), ERR_PROTO);
	free(b);
}

/* A device identification page as tgt answers it: NAA and T10 vendor id of the LU, relative
 * target port and target port group. */
static const uint8_t vpd83[] = {
    0x00,
    0x83,
    0x00,
    0x2e,
    /* T10 vendor id, ASCII, LU: "IET     " + "beaf11" */
    0x02,
    0x01,
    0x00,
    0x0e,
    'I',
    'E',
    'T',
    ' ',
    ' ',
    ' ',
    ' ',
    ' ',
    'b',
    'e',
    'a',
    'f',
    '1',
    '1',
    /* NAA, binary, LU */
    0x01,
    0x03,
    0x00,
    0x08,
    0x60,
    0x00,
    0x00,
    0x00,
    0x12,
    0x34,
    0x56,
    0x78,
    /* relative target port, binary, association target port (PIV set, iSCSI protocol) */
    0x51,
    0x94,
    0x00,
    0x04,
    0x00,
    0x00,
    0x00,
    0x01,
    /* target port group */
    0x51,
    0x95,
    0x00,
    0x04,
    0x00,
    0x00,
    0x00,
    0x01,
};

static void test_vpd83(void **state)
{
	struct lunid *id = calloc(1, sizeof(*id));
	uint8_t *b = exact(vpd83, sizeof(vpd83));

	(void)state;
	assert_int_equal(sgio_parse_vpd83(b, sizeof(vpd83), id), 0);
	assert_int_equal(id->ndesig, 2);
	assert_int_equal(id->nport, 2);
	/* normalised: by type */
	assert_int_equal(id->desig[0].type, 1);
	assert_int_equal(id->desig[0].code_set, 2);
	assert_int_equal(id->desig[0].association, 0);
	assert_int_equal(id->desig[0].len, 14);
	assert_memory_equal(id->desig[0].data, "IET     beaf11", 14);
	assert_int_equal(id->desig[1].type, 3);
	assert_int_equal(id->desig[1].code_set, 1);
	assert_int_equal(id->desig[1].len, 8);
	assert_int_equal(id->desig[1].data[0], 0x60);
	assert_int_equal(id->port[0].association, 1);
	assert_int_equal(id->port[0].type, 4);
	assert_int_equal(id->port[1].type, 5);

	/* the page length claims more than the buffer: the cut designator is left out */
	b[3] = 0xff;
	assert_int_equal(sgio_parse_vpd83(b, 4 + 18 + 6, id), 0);
	assert_int_equal(id->ndesig, 1);
	assert_int_equal(id->nport, 0);
	/* a designator longer than the page: ignored, nothing past the page read */
	b[3] = 0x2e;
	b[4 + 3] = 0xf0;
	assert_int_equal(sgio_parse_vpd83(b, sizeof(vpd83), id), ERR_NOTSUP);
	b[4 + 3] = 0x0e;
	b[1] = 0x80;
	assert_int_equal(sgio_parse_vpd83(b, sizeof(vpd83), id), ERR_PROTO);
	assert_int_equal(sgio_parse_vpd83(b, 3, id), ERR_PROTO);
	free(b);
	free(id);
}

static void test_vpd83_many_and_port_only(void **state)
{
	uint8_t page[4 + 20 * 6] = {0x00, 0x83, 0x00, 20 * 6};
	struct lunid *id = calloc(1, sizeof(*id));

	(void)state;
	for (unsigned i = 0; i < 20; i++) {
		uint8_t *d = page + 4 + 6 * i;

		d[0] = 0x01;
		d[1] = 0x03;
		d[3] = 2;
		d[4] = (uint8_t)i;
		d[5] = 0xaa;
	}
	assert_int_equal(sgio_parse_vpd83(page, sizeof(page), id), 0);
	assert_int_equal(id->ndesig, LUNID_MAX_DESIG);
	/* only target-port designators: no identity */
	for (unsigned i = 0; i < 20; i++)
		page[4 + 6 * i + 1] = 0x14;
	assert_int_equal(sgio_parse_vpd83(page, sizeof(page), id), ERR_NOTSUP);
	free(id);
}

static void test_read_capacity16(void **state)
{
	static const uint8_t data[32] = {0, 0, 0, 0, 0, 0x01, 0xff, 0xff, 0, 0, 0x02, 0x00};
	uint64_t n = 0;
	uint32_t bs = 0;
	uint8_t *b = exact(data, sizeof(data));

	(void)state;
	assert_int_equal(sgio_parse_read_capacity16(b, sizeof(data), &n, &bs), 0);
	assert_int_equal(n, 0x20000);
	assert_int_equal(bs, 512);
	assert_int_equal(sgio_parse_read_capacity16(b, 11, &n, &bs), ERR_PROTO);
	b[10] = 0;
	assert_int_equal(sgio_parse_read_capacity16(b, sizeof(data), &n, &bs), ERR_PROTO);
	free(b);
}

static void test_sense(void **state)
{
	/* fixed, current: UNIT ATTENTION, RESERVATIONS PREEMPTED */
	static const uint8_t fixed[18] = {0x70, 0, 0x06, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x2a, 0x03};
	/* fixed, deferred, additional length too short to reach the ASC */
	static const uint8_t fixed_short[8] = {0xf1, 0, 0x03, 0, 0, 0, 0, 0x00};
	/* descriptor: ILLEGAL REQUEST, INVALID FIELD IN CDB */
	static const uint8_t desc[8] = {0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0};
	static const uint8_t junk[4] = {0x12, 0x34, 0x56, 0x78};
	struct sgio_sense s;
	uint8_t *b;

	(void)state;
	b = exact(fixed, sizeof(fixed));
	sgio_parse_sense(b, sizeof(fixed), &s);
	assert_true(s.valid);
	assert_false(s.descriptor);
	assert_int_equal(s.key, SGIO_SENSE_UNIT_ATTENTION);
	assert_int_equal(s.asc, 0x2a);
	assert_int_equal(s.ascq, 0x03);
	assert_string_equal(sgio_asc_name(s.asc, s.ascq), "RESERVATIONS PREEMPTED");
	/* cut before the ASC */
	sgio_parse_sense(b, 13, &s);
	assert_true(s.valid);
	assert_int_equal(s.asc, 0);
	free(b);
	b = exact(fixed_short, sizeof(fixed_short));
	sgio_parse_sense(b, sizeof(fixed_short), &s);
	assert_true(s.valid);
	assert_int_equal(s.key, SGIO_SENSE_MEDIUM_ERROR);
	assert_int_equal(s.asc, 0);
	free(b);
	b = exact(desc, sizeof(desc));
	sgio_parse_sense(b, sizeof(desc), &s);
	assert_true(s.valid);
	assert_true(s.descriptor);
	assert_int_equal(s.key, SGIO_SENSE_ILLEGAL_REQUEST);
	assert_int_equal(s.asc, 0x24);
	assert_int_equal(s.ascq, 0x00);
	sgio_parse_sense(b, 2, &s); /* cut: what is missing reads as 0 */
	assert_true(s.valid);
	assert_int_equal(s.asc, 0);
	free(b);
	b = exact(junk, sizeof(junk));
	sgio_parse_sense(b, sizeof(junk), &s);
	assert_false(s.valid);
	free(b);
	sgio_parse_sense(NULL, 0, &s);
	assert_false(s.valid);
	assert_string_equal(sgio_sense_key_name(SGIO_SENSE_DATA_PROTECT), "DATA PROTECT");
	assert_null(sgio_asc_name(0x7f, 0x7f));
}

static void test_outcome_rc(void **state)
{
	struct sgio_outcome o = {0};

	(void)state;
	log_capture_clear(cap);
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "READ(16)"), 0);
	o.status = SGIO_STATUS_RESERVATION_CONFLICT;
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "WRITE(16)"), ERR_CONFLICT);
	o.status = SGIO_STATUS_BUSY;
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "WRITE(16)"), ERR_BUSY);
	o.status = SGIO_STATUS_TASK_SET_FULL;
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "WRITE(16)"), ERR_BUSY);
	o.status = SGIO_STATUS_CHECK_CONDITION;
	o.sense = (struct sgio_sense){1, 0, SGIO_SENSE_UNIT_ATTENTION, 0x2a, 0x05};
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "PR IN"), SGIO_RETRY);
	o.sense = (struct sgio_sense){1, 1, SGIO_SENSE_ILLEGAL_REQUEST, 0x24, 0x00};
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "PERSISTENT RESERVE OUT"), ERR_NOTSUP);
	expect_message("/dev/x: PERSISTENT RESERVE OUT failed: ILLEGAL REQUEST, ASC/ASCQ "
	               "0x24/0x00 INVALID FIELD IN CDB");
	o.sense = (struct sgio_sense){1, 0, SGIO_SENSE_ILLEGAL_REQUEST, 0x25, 0x00};
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "INQUIRY"), ERR_NOTFOUND);
	o.sense = (struct sgio_sense){1, 0, SGIO_SENSE_NOT_READY, 0x04, 0x0a};
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "READ(16)"), ERR_IO);
	expect_message("NOT READY, ASC/ASCQ 0x04/0x0a LOGICAL UNIT NOT ACCESSIBLE");
	o.sense = (struct sgio_sense){0};
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "READ(16)"), ERR_IO);
	o.status = 0x40; /* TASK ABORTED */
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "READ(16)"), ERR_IO);
	o.status = 0;
	o.host_status = 0x03; /* DID_TIME_OUT */
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "READ(16)"), ERR_TIMEOUT);
	o.host_status = 0x01; /* DID_NO_CONNECT */
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "READ(16)"), ERR_IO);
	expect_message("transport error (host status 0x1)");
	o.host_status = 0;
	o.driver_status = 0x06; /* DRIVER_TIMEOUT */
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "READ(16)"), ERR_TIMEOUT);
	/* a conflict beats DRIVER_SENSE-style driver bits that are not a timeout */
	o.driver_status = 0x08;
	o.status = SGIO_STATUS_RESERVATION_CONFLICT;
	assert_int_equal(sgio_outcome_rc(&o, "/dev/x", "WRITE(16)"), ERR_CONFLICT);
}

/* --- runner against a scripted ioctl ----------------------------------------------------- */

#define MAX_STEPS 8

struct step {
	int err; /* ioctl fails with this errno */
	uint8_t status;
	uint8_t sense[18];
	uint8_t sense_len;
	uint8_t data[128];
	unsigned data_len; /* bytes the target returns (resid = dxfer_len - this) */
};

struct target {
	struct step steps[MAX_STEPS];
	unsigned nsteps, calls;
	uint8_t cdb[MAX_STEPS][16];
	unsigned cdb_len[MAX_STEPS], dxfer_len[MAX_STEPS], timeout[MAX_STEPS];
	int dir[MAX_STEPS];
	uint8_t out[MAX_STEPS][24]; /* data sent to the device */
};

static struct target tgt;

static int fake_ioctl(int fd, unsigned long request, void *arg)
{
	struct sg_io_hdr *h = arg;
	unsigned i = tgt.calls++;
	struct step *s;

	(void)fd;
	assert_int_equal(request, SG_IO);
	assert_int_equal(h->interface_id, 'S');
	assert_true(i < tgt.nsteps);
	s = &tgt.steps[i];
	memcpy(tgt.cdb[i], h->cmdp, h->cmd_len);
	tgt.cdb_len[i] = h->cmd_len;
	tgt.dxfer_len[i] = h->dxfer_len;
	tgt.timeout[i] = h->timeout;
	tgt.dir[i] = h->dxfer_direction;
	if (h->dxfer_direction == SG_DXFER_TO_DEV)
		memcpy(tgt.out[i], h->dxferp, h->dxfer_len < 24 ? h->dxfer_len : 24);
	if (s->err) {
		errno = s->err;
		return -1;
	}
	if (h->dxfer_direction == SG_DXFER_FROM_DEV) {
		unsigned n = s->data_len < h->dxfer_len ? s->data_len : h->dxfer_len;

		memcpy(h->dxferp, s->data, n);
		h->resid = (int)(h->dxfer_len - n);
	}
	h->status = s->status;
	h->masked_status = (unsigned char)(s->status >> 1);
	h->sb_len_wr = s->sense_len < h->mx_sb_len ? s->sense_len : h->mx_sb_len;
	memcpy(h->sbp, s->sense, h->sb_len_wr);
	h->driver_status = s->sense_len ? 0x08 : 0;
	return 0;
}

static struct step good_capacity(void)
{
	struct step s = {.data = {0, 0, 0, 0, 0, 0, 0x0f, 0xff, 0, 0, 0x10, 0x00}, .data_len = 32};

	return s;
}

static struct step unit_attention(void)
{
	struct step s = {.status = SGIO_STATUS_CHECK_CONDITION,
	                 .sense = {0x70, 0, 0x06, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x29, 0x00},
	                 .sense_len = 18};

	return s;
}

/* A device on /dev/null (any fd will do: the ioctl is ours) after its READ CAPACITY(16). */
static struct sgio_dev *attach(void)
{
	struct sgio_dev *dev = NULL;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(sgio_attach(fd, "/dev/disk/by-path/test-lun-0", 3, fake_ioctl, &dev), 0);
	return dev;
}

static void setup_target(void)
{
	memset(&tgt, 0, sizeof(tgt));
	tgt.steps[0] = good_capacity();
	tgt.nsteps = 1;
	log_capture_clear(cap);
}

static void test_runner_attach(void **state)
{
	static const uint8_t rc16[16] = {0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0};
	struct sgio_dev *dev;

	(void)state;
	setup_target();
	dev = attach();
	assert_int_equal(tgt.calls, 1);
	assert_int_equal(tgt.cdb_len[0], 16);
	assert_memory_equal(tgt.cdb[0], rc16, 16);
	assert_int_equal(tgt.dir[0], SG_DXFER_FROM_DEV);
	assert_int_equal(tgt.timeout[0], 3000);
	assert_int_equal(sgio_nblocks(dev), 0x1000);
	assert_int_equal(sgio_block_size(dev), 4096);
	assert_string_equal(sgio_name(dev), "/dev/disk/by-path/test-lun-0");
	sgio_close(dev);
}

static void test_runner_pr_read(void **state)
{
	struct step keys = {.data = {0,    0,    0,    3,    0,    0,    0,    16,
	                             0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
	                             0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18},
	                    .data_len = 24};
	struct step resv = {.data = {0,    0,    0,    3,    0, 0, 0, 0x10, 0x11, 0x22, 0x33, 0x44,
	                             0x55, 0x66, 0x77, 0x88, 0, 0, 0, 0,    0,    0x05, 0,    0},
	                    .data_len = 24};
	struct own_cmd verify = {.op = OWN_OP_VERIFY, .key = KEY_A};
	struct sgio_dev *dev;
	struct own_view v;
	char why[160];

	(void)state;
	setup_target();
	tgt.steps[1] = unit_attention(); /* "power on, reset": retried */
	tgt.steps[2] = keys;
	tgt.steps[3] = resv;
	tgt.nsteps = 4;
	dev = attach();
	assert_int_equal(sgio_pr_execute(dev, &verify, &v), 0);
	assert_int_equal(tgt.calls, 4);
	assert_int_equal(tgt.cdb[1][0], 0x5e);
	assert_memory_equal(tgt.cdb[1], tgt.cdb[2], 10);
	assert_int_equal(tgt.cdb[3][1], SGIO_PRIN_READ_RESERVATION);
	assert_int_equal(v.nkeys, 2);
	assert_int_equal(v.keys[0], KEY_A);
	assert_int_equal(v.keys[1], KEY_B);
	assert_true(v.reserved);
	assert_int_equal(v.holder, KEY_A);
	assert_int_equal(v.type, OWN_PR_TYPE_WERO);
	assert_int_equal(own_check_sole_owner(&v, KEY_A, why, sizeof(why)), ERR_MISMATCH);
	sgio_close(dev);
}

static void test_runner_read_keys_again(void **state)
{
	/* the first answer is cut by the allocation length: read again with what it asked */
	struct step first = {.data = {0, 0, 0, 3, 0, 0, 0x10, 0x08}, .data_len = 8};
	struct step second = {
	    .data = {0, 0, 0, 3, 0, 0, 0, 8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88},
	    .data_len = 16};
	struct step resv = {.data = {0, 0, 0, 3, 0, 0, 0, 0}, .data_len = 8};
	struct sgio_dev *dev;
	struct own_view v;

	(void)state;
	setup_target();
	tgt.steps[1] = first;
	tgt.steps[2] = second;
	tgt.steps[3] = resv;
	tgt.nsteps = 4;
	dev = attach();
	/* 0x1008 bytes = 513 keys: more than a LUN we manage has */
	assert_int_equal(sgio_pr_read(dev, &v), ERR_NOSPACE);
	expect_message("more than 32 registrations");
	sgio_close(dev);

	setup_target();
	first.data[6] = 0;
	first.data[7] = 8;
	first.data_len = 8; /* claims one key, returns none of it: read again for 16 bytes */
	tgt.steps[1] = first;
	tgt.steps[2] = second;
	tgt.steps[3] = resv;
	tgt.nsteps = 4;
	dev = attach();
	assert_int_equal(sgio_pr_read(dev, &v), 0);
	assert_int_equal(tgt.calls, 4);
	assert_int_equal(tgt.cdb[2][7] << 8 | tgt.cdb[2][8], 16);
	assert_int_equal(v.nkeys, 1);
	assert_false(v.reserved);
	sgio_close(dev);
}

static void test_runner_pr_out_conflict(void **state)
{
	struct own_cmd preempt = {
	    .op = OWN_OP_PREEMPT, .key = KEY_A, .sa_key = KEY_B, .type = OWN_PR_TYPE_WERO};
	struct step conflict = {.status = SGIO_STATUS_RESERVATION_CONFLICT};
	struct sgio_dev *dev;
	uint8_t cdb[10], param[24];

	(void)state;
	setup_target();
	tgt.steps[1] = (struct step){0};
	tgt.steps[2] = conflict;
	tgt.nsteps = 3;
	dev = attach();
	assert_int_equal(sgio_pr_execute(dev, &preempt, NULL), 0);
	sgio_build_pr_out(&preempt, cdb, param);
	assert_int_equal(tgt.dir[1], SG_DXFER_TO_DEV);
	assert_int_equal(tgt.dxfer_len[1], 24);
	assert_memory_equal(tgt.cdb[1], cdb, 10);
	assert_memory_equal(tgt.out[1], param, 24);
	/* the same error the libiscsi path returns */
	assert_int_equal(sgio_pr_out(dev, &preempt), ERR_CONFLICT);
	sgio_close(dev);
}

static void test_runner_io(void **state)
{
	struct step conflict = {.status = SGIO_STATUS_RESERVATION_CONFLICT};
	struct step block = {.data = "hello", .data_len = 128};
	struct sgio_dev *dev;
	uint8_t buf[4096] = {0};

	(void)state;
	setup_target();
	tgt.steps[1] = conflict;
	tgt.steps[2] = block;
	tgt.nsteps = 3;
	dev = attach();
	assert_int_equal(sgio_write(dev, 7, buf, sizeof(buf)), ERR_CONFLICT);
	assert_int_equal(tgt.cdb[1][0], SGIO_OP_WRITE16);
	assert_int_equal(tgt.cdb[1][9], 7);
	assert_int_equal(tgt.cdb[1][13], 1);
	/* the target returned 128 of 4096 bytes: short read */
	assert_int_equal(sgio_read(dev, 0, buf, sizeof(buf)), ERR_IO);
	assert_int_equal(sgio_read(dev, 0, buf, 100), ERR_INVAL);
	assert_int_equal(tgt.calls, 3);
	sgio_close(dev);
}

static void test_runner_unit_attention_forever(void **state)
{
	struct sgio_dev *dev;
	struct own_cmd reg = {.op = OWN_OP_REGISTER, .key = KEY_A, .sa_key = KEY_A};

	(void)state;
	setup_target();
	for (unsigned i = 1; i < MAX_STEPS; i++)
		tgt.steps[i] = unit_attention();
	tgt.nsteps = MAX_STEPS;
	dev = attach();
	assert_int_equal(sgio_pr_out(dev, &reg), ERR_IO);
	assert_int_equal(tgt.calls, 1 + 5);
	expect_message("unit attention after 4 retries");
	sgio_close(dev);
}

static void test_runner_ioctl_errors(void **state)
{
	struct sgio_dev *dev = NULL;
	struct own_cmd reg = {.op = OWN_OP_REGISTER, .key = KEY_A, .sa_key = KEY_A};
	int fd;

	(void)state;
	setup_target();
	tgt.steps[0].err = ENOTTY; /* a block device that is not SCSI (loop, nbd...) */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(sgio_attach(fd, "/dev/loop0", 3, fake_ioctl, &dev), ERR_NOTSUP);
	assert_null(dev);
	expect_message("/dev/loop0: READ CAPACITY(16): the device does not take SCSI commands");

	setup_target();
	tgt.steps[1].err = EPERM;
	tgt.nsteps = 2;
	dev = attach();
	assert_int_equal(sgio_pr_out(dev, &reg), ERR_PERM);
	expect_message("CAP_SYS_RAWIO");
	sgio_close(dev);
}

static void test_runner_identity(void **state)
{
	struct step vpd = {.data_len = sizeof(vpd83)};
	struct lunid *id = calloc(1, sizeof(*id));
	struct sgio_dev *dev;

	(void)state;
	memcpy(vpd.data, vpd83, sizeof(vpd83));
	setup_target();
	tgt.steps[1] = vpd;
	tgt.steps[2] = good_capacity();
	tgt.nsteps = 3;
	dev = attach();
	assert_int_equal(sgio_identity(dev, id), 0);
	assert_int_equal(tgt.cdb_len[1], 6);
	assert_int_equal(tgt.cdb[1][0], SGIO_OP_INQUIRY);
	assert_int_equal(tgt.cdb[1][2], 0x83);
	assert_int_equal(id->ndesig, 2);
	assert_int_equal(id->nblocks, 0x1000);
	assert_int_equal(id->block_size, 4096);
	sgio_close(dev);
	free(id);
}

static void test_open_not_block_device(void **state)
{
	struct sgio_dev *dev = NULL;
	struct lun *lun = NULL;
	char file[] = "/tmp/test_sgio.XXXXXX";
	int fd;

	(void)state;
	log_capture_clear(cap);
	assert_int_equal(sgio_open("/dev/null", 2, &dev), ERR_INVAL);
	assert_null(dev);
	expect_message("/dev/null: not a block device");
	fd = mkstemp(file);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sgio_open(file, 2, &dev), ERR_INVAL);
	expect_message(file);
	unlink(file);
	assert_int_equal(
	    sgio_open("/dev/disk/by-path/ip-192.0.2.1:3260-iscsi-iqn.x-lun-0", 2, &dev),
	    ERR_NOTFOUND);
	expect_message("/dev/disk/by-path/ip-192.0.2.1:3260-iscsi-iqn.x-lun-0: cannot open");
	/* through lun_open: a path is a device, anything else neither URL nor path is refused */
	assert_int_equal(lun_open("/dev/null", "iqn.x", 2, &lun), ERR_INVAL);
	assert_null(lun);
	assert_int_equal(lun_open("sdb", "iqn.x", 2, &lun), ERR_INVAL);
	expect_message("'sdb': neither an iscsi://");
}

/* --- lun_choose --------------------------------------------------------------------------- */

struct fake_host {
	int device_exists;
	unsigned runs;
};

static int fh_run(void *ctx, char *const argv[], int timeout_s, char *out, size_t cap_)
{
	struct fake_host *h = ctx;

	(void)argv;
	(void)timeout_s;
	h->runs++;
	h->device_exists = 1; /* discovery + login make it */
	snprintf(out, cap_, "%s", "");
	return 0;
}

static int fh_exists(void *ctx, const char *path)
{
	struct fake_host *h = ctx;

	assert_non_null(strstr(path, "/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-"));
	return h->device_exists;
}

static void fh_sleep(void *ctx, int ms)
{
	(void)ctx;
	(void)ms;
}

#define BYPATH                                                                                   \
	"phy:/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2024-01.org.example:store-lun-3,xvda," \
	"w"
#define SCRIPT                                                                                   \
	"vdev=xvdb,script=block-iscsi,target=iqn=iqn.2024-01.org.example:store,portal=10.0.0.5," \
	"lun=3"

static void test_choose(void **state)
{
	struct fake_host h = {0};
	struct iscsiadm_ops ops = {fh_run, fh_exists, fh_sleep, &h};
	struct lun_choice_env env = {&ops, 2};
	struct disk_info *d = calloc(1, sizeof(*d));
	char target[LUN_TARGET_MAX];
	enum lun_path path;

	(void)state;
	assert_int_equal(disk_classify(BYPATH, d), 0);
	/* sim backend: libiscsi, nothing run */
	assert_int_equal(lun_choose(d, 0, 1, &env, target, &path), 0);
	assert_int_equal(path, LUN_PATH_LIBISCSI);
	assert_string_equal(target, "iscsi://10.0.0.5:3260/iqn.2024-01.org.example:store/3");
	assert_int_equal(h.runs, 0);
	/* xen, receiver: login first, then the device */
	assert_int_equal(lun_choose(d, 1, 1, &env, target, &path), 0);
	assert_int_equal(path, LUN_PATH_KERNEL);
	assert_string_equal(
	    target, "/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2024-01.org.example:store-lun-3");
	assert_int_equal(h.runs, 2);
	/* xen, sender: no login */
	h = (struct fake_host){0};
	assert_int_equal(lun_choose(d, 1, 0, &env, target, &path), 0);
	assert_int_equal(path, LUN_PATH_KERNEL);
	assert_int_equal(h.runs, 0);

	/* block-iscsi: the device once the script logged in, else libiscsi (warned) */
	assert_int_equal(disk_classify(SCRIPT, d), 0);
	h = (struct fake_host){0};
	log_capture_clear(cap);
	assert_int_equal(lun_choose(d, 1, 1, &env, target, &path), 0);
	assert_int_equal(path, LUN_PATH_LIBISCSI);
	assert_string_equal(target, "iscsi://10.0.0.5:3260/iqn.2024-01.org.example:store/3");
	assert_int_equal(h.runs, 0); /* never log in for the script: it fails on a session */
	expect_message("no kernel session yet");
	h.device_exists = 1;
	assert_int_equal(lun_choose(d, 1, 1, &env, target, &path), 0);
	assert_int_equal(path, LUN_PATH_KERNEL);
	assert_string_equal(
	    target, "/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2024-01.org.example:store-lun-3");

	assert_int_equal(disk_classify("/var/lib/xen/images/a.img,raw,xvda,w", d), 0);
	assert_int_equal(lun_choose(d, 1, 1, &env, target, &path), ERR_INVAL);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pr_out_cdbs),
	    cmocka_unit_test(test_other_cdbs),
	    cmocka_unit_test(test_read_keys),
	    cmocka_unit_test(test_read_keys_too_many),
	    cmocka_unit_test(test_read_reservation),
	    cmocka_unit_test(test_vpd83),
	    cmocka_unit_test(test_vpd83_many_and_port_only),
	    cmocka_unit_test(test_read_capacity16),
	    cmocka_unit_test(test_sense),
	    cmocka_unit_test(test_outcome_rc),
	    cmocka_unit_test(test_runner_attach),
	    cmocka_unit_test(test_runner_pr_read),
	    cmocka_unit_test(test_runner_read_keys_again),
	    cmocka_unit_test(test_runner_pr_out_conflict),
	    cmocka_unit_test(test_runner_io),
	    cmocka_unit_test(test_runner_unit_attention_forever),
	    cmocka_unit_test(test_runner_ioctl_errors),
	    cmocka_unit_test(test_runner_identity),
	    cmocka_unit_test(test_open_not_block_device),
	    cmocka_unit_test(test_choose),
	};

	cap = log_sink_capture();
	log_set_sink(cap);
	log_set_level(LOGL_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
