/* Tests of the LUN identity (xl-ext/storage/lunid.c): normalise, compare, JSON round trip. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/lunid.h"

static void add(struct lunid_desig *d, unsigned *n, uint8_t assoc, uint8_t type, uint8_t cs,
                const void *data, uint8_t len)
{
	struct lunid_desig *x = &d[(*n)++];

	memset(x, 0, sizeof(*x));
	x->association = assoc;
	x->type = type;
	x->code_set = cs;
	x->len = len;
	memcpy(x->data, data, len);
}

/* What tgt reports for LUN 1 of target 1, plus a target-port designator. */
static void tgt_lun(struct lunid *id, int lun)
{
	char t10[] = "IET     00010001";
	uint8_t naa[8] = {0x30, 0, 0, 1, 0, 0, 0, 1};
	uint8_t port[4] = {0, 0, 0, 1};

	memset(id, 0, sizeof(*id));
	t10[15] = (char)('0' + lun);
	naa[7] = (uint8_t)lun;
	add(id->desig, &id->ndesig, 0, 3, 1, naa, sizeof(naa));
	add(id->desig, &id->ndesig, 0, 1, 2, t10, 16);
	add(id->port, &id->nport, 1, 4, 1, port, sizeof(port));
	id->nblocks = 32768;
	id->block_size = 512;
}

static void test_order_does_not_matter(void **state)
{
	struct lunid a, b;
	char why[256];

	(void)state;
	tgt_lun(&a, 1);
	tgt_lun(&b, 1);
	struct lunid_desig tmp = b.desig[0];
	b.desig[0] = b.desig[1];
	b.desig[1] = tmp;
	lunid_normalise(&a);
	lunid_normalise(&b);
	assert_int_equal(lunid_compare(&a, &b, why, sizeof(why)), 0);
	/* the path may differ: target-port designators are not compared */
	b.port[0].data[3] = 2;
	assert_int_equal(lunid_compare(&a, &b, why, sizeof(why)), 0);
}

static void test_mismatches(void **state)
{
	struct lunid a, b;
	char why[256];

	(void)state;
	tgt_lun(&a, 1);
	lunid_normalise(&a);
	tgt_lun(&b, 2);
	lunid_normalise(&b);
	assert_int_equal(lunid_compare(&a, &b, why, sizeof(why)), ERR_MISMATCH);
	assert_non_null(
	    strstr(why, "t10-vendor-id IET     00010001 against t10-vendor-id IET     00010002"));
	b = a;
	b.nblocks++;
	assert_int_equal(lunid_compare(&a, &b, why, sizeof(why)), ERR_MISMATCH);
	assert_string_equal(why, "32768 blocks against 32769");
	b = a;
	b.block_size = 4096;
	assert_int_equal(lunid_compare(&a, &b, why, sizeof(why)), ERR_MISMATCH);
	assert_string_equal(why, "block size 512 against 4096");
	b = a;
	b.ndesig = 1;
	assert_int_equal(lunid_compare(&a, &b, why, sizeof(why)), ERR_MISMATCH);
	assert_string_equal(why, "2 logical-unit designators against 1");
	b = a;
	b.desig[0].code_set = 3; /* same bytes, UTF-8 instead of ASCII */
	assert_int_equal(lunid_compare(&a, &b, why, sizeof(why)), ERR_MISMATCH);
}

static void test_json_round_trip(void **state)
{
	struct lunid a, b;
	char *json = NULL, why[256];

	(void)state;
	tgt_lun(&a, 1);
	a.desig[1].data[3] = 0x7f; /* not printable: "value" shows '?', "hex" keeps it */
	lunid_normalise(&a);
	assert_int_equal(lunid_to_json(&a, &json), 0);
	assert_non_null(strstr(json, "\"size_bytes\":16777216"));
	assert_non_null(strstr(json, "\"type\":\"naa\""));
	assert_non_null(strstr(json, "\"hex\":\"3000000100000001\""));
	assert_int_equal(lunid_from_json(json, &b), 0);
	assert_int_equal(lunid_compare(&a, &b, why, sizeof(why)), 0);
	assert_int_equal(b.nport, 1);
	assert_memory_equal(&a.desig, &b.desig, sizeof(a.desig));
	free(json);
}

static void test_json_rejects(void **state)
{
	static const char *const bad[] = {
	    NULL,
	    "",
	    "[]",
	    "{}",
	    "{\"block_size\":512,\"blocks\":1,\"designators\":[],\"port_designators\":[]}",
	    "{\"block_size\":0,\"blocks\":1,\"designators\":[{\"association\":\"logical-unit\","
	    "\"type\":\"naa\",\"code_set\":\"binary\",\"hex\":\"30\"}],\"port_designators\":[]}",
	    "{\"block_size\":512,\"blocks\":1,\"designators\":[{\"association\":\"logical-unit\","
	    "\"type\":\"naa\",\"code_set\":\"binary\",\"hex\":\"3\"}],\"port_designators\":[]}",
	    "{\"block_size\":512,\"blocks\":1,\"designators\":[{\"association\":\"logical-unit\","
	    "\"type\":\"nope\",\"code_set\":\"binary\",\"hex\":\"30\"}],\"port_designators\":[]}",
	    "{\"block_size\":512,\"blocks\":1,\"designators\":[{\"association\":\"logical-unit\","
	    "\"type\":\"naa\",\"code_set\":\"binary\",\"hex\":\"zz\"}],\"port_designators\":[]}",
	    "{\"block_size\":512,\"blocks\":1,\"designators\":[{\"association\":\"logical-unit\","
	    "\"type\":\"naa\",\"code_set\":\"ebcdic\",\"hex\":\"30\"}],\"port_designators\":[]}",
	    "{\"block_size\":512,\"blocks\":1,\"designators\":[{\"association\":\"logical-unit\","
	    "\"type\":\"naa\",\"code_set\":\"binary\",\"hex\":\"30\"}]}",
	};
	struct log_sink *cap = log_sink_capture();
	struct log_sink *old = log_set_sink(cap);
	struct lunid id;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (lunid_from_json(bad[i], &id) != ERR_INVAL)
			fail_msg("case %zu accepted: %s", i, bad[i] ? bad[i] : "NULL");
	assert_true(log_capture_contains(cap, "not a valid identity"));
	log_set_sink(old);
	cap->destroy(cap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_does_not_matter),
	    cmocka_unit_test(test_mismatches),
	    cmocka_unit_test(test_json_round_trip),
	    cmocka_unit_test(test_json_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
