/* Byte-level tests of xl's migration handshake constants and codecs (xl-ext/xlproto.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "xl-ext/migration/xlproto.h"

static void test_messages_exact(void **state)
{
	(void)state;
	/* the banner goes without its NUL, the three others with it */
	assert_int_equal(xlp_banner_len(), 54);
	assert_memory_equal(xlp_banner, "xl migration receiver ready, send binary domain data.\n",
	                    54);
	assert_int_equal(xlp_receiver_ready_len(), 34);
	assert_memory_equal(xlp_receiver_ready, "domain received, ready to unpause\0", 34);
	assert_int_equal(xlp_permission_to_go_len(), 44);
	assert_memory_equal(xlp_permission_to_go, "domain is yours, you are cleared to unpause\0",
	                    44);
	assert_int_equal(xlp_report_len(), 39);
	assert_memory_equal(xlp_report, "my copy unpause results are as follows\0", 39);
	assert_memory_equal(xlp_magic, "Xen saved domain, xl format\n \0 \r", 32);
}

static uint32_t u32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void test_header_layout(void **state)
{
	const char *json = "{\"c_info\":{\"name\":\"vm1\"}}";
	uint8_t *buf;
	size_t len;
	uint32_t mandatory, optlen;
	const char *out;

	(void)state;
	assert_int_equal(xlp_encode_header(json, &buf, &len), 0);
	assert_int_equal(len, 48 + 4 + strlen(json) + 1);
	assert_memory_equal(buf, xlp_magic, 32);
	assert_int_equal(u32_at(buf + 32), 0x01020304);
	assert_int_equal(u32_at(buf + 36), 3); /* JSON | STREAMv2 */
	assert_int_equal(u32_at(buf + 40), 0);
	assert_int_equal(u32_at(buf + 44), 4 + strlen(json) + 1);
	assert_int_equal(u32_at(buf + 48), strlen(json) + 1);
	assert_memory_equal(buf + 52, json, strlen(json) + 1);
	assert_int_equal(xlp_decode_header(buf, &mandatory, &optlen), 0);
	assert_int_equal(mandatory, 3);
	assert_int_equal(optlen, 4 + strlen(json) + 1);
	assert_int_equal(xlp_decode_config(buf + 48, optlen, mandatory, &out), 0);
	assert_string_equal(out, json);
	assert_int_equal(xlp_header_optional(buf), 0);
	free(buf);

	/* xl-ext's optional flag: word 40, everything else as before; decoders accept it */
	assert_int_equal(xlp_encode_header_flags(json, XLP_OPT_XLEXT, &buf, &len), 0);
	assert_int_equal(len, 48 + 4 + strlen(json) + 1);
	assert_int_equal(u32_at(buf + 36), 3);
	assert_int_equal(u32_at(buf + 40), 1u << 16);
	assert_int_equal(xlp_header_optional(buf), XLP_OPT_XLEXT);
	assert_int_equal(xlp_decode_header(buf, &mandatory, &optlen), 0);
	assert_int_equal(xlp_decode_config(buf + 48, optlen, mandatory, &out), 0);
	assert_string_equal(out, json);
	free(buf);
}

static void test_header_rejects(void **state)
{
	uint8_t *buf;
	size_t len;
	uint32_t m, o;
	uint32_t v;

	(void)state;
	assert_int_equal(xlp_encode_header("{}", &buf, &len), 0);
	buf[0] ^= 1; /* magic */
	assert_int_equal(xlp_decode_header(buf, &m, &o), ERR_PROTO);
	buf[0] ^= 1;
	v = 0x04030201; /* the other byte order */
	memcpy(buf + 32, &v, 4);
	assert_int_equal(xlp_decode_header(buf, &m, &o), ERR_PROTO);
	v = 0x01020304;
	memcpy(buf + 32, &v, 4);
	v = 3 | 4; /* an unknown mandatory flag */
	memcpy(buf + 36, &v, 4);
	assert_int_equal(xlp_decode_header(buf, &m, &o), ERR_PROTO);
	v = 1; /* JSON without STREAMv2: a legacy stream */
	memcpy(buf + 36, &v, 4);
	assert_int_equal(xlp_decode_header(buf, &m, &o), ERR_PROTO);
	v = 3;
	memcpy(buf + 36, &v, 4);
	v = XLP_MAX_CONFIG + 5; /* oversized optional data */
	memcpy(buf + 44, &v, 4);
	assert_int_equal(xlp_decode_header(buf, &m, &o), ERR_PROTO);
	free(buf);
}

static void test_config_rejects(void **state)
{
	uint8_t opt[32];
	const char *json;
	uint32_t v;

	(void)state;
	v = 3;
	memcpy(opt, &v, 4);
	memcpy(opt + 4, "{}", 3);
	assert_int_equal(xlp_decode_config(opt, 7, 3, &json), 0);
	assert_int_equal(xlp_decode_config(opt, 7, 2, &json), ERR_PROTO); /* no JSON flag */
	assert_int_equal(xlp_decode_config(opt, 3, 3, &json), ERR_PROTO); /* shorter than u32 */
	assert_int_equal(xlp_decode_config(opt, 6, 3, &json), ERR_PROTO); /* length past the data */
	opt[6] = 'x';                                                     /* no NUL */
	assert_int_equal(xlp_decode_config(opt, 7, 3, &json), ERR_PROTO);
	memcpy(opt + 4, "{\0}", 3); /* embedded NUL */
	assert_int_equal(xlp_decode_config(opt, 7, 3, &json), ERR_PROTO);
	v = 0;
	memcpy(opt, &v, 4);
	assert_int_equal(xlp_decode_config(opt, 7, 3, &json), ERR_PROTO);
}

static void test_rune(void **state)
{
	char *r;

	(void)state;
	r = xlp_rune("ssh", "node2", "xl-ext", 0, 0, 0, 0, NULL);
	assert_string_equal(r, "exec ssh node2 xl-ext migrate-receive");
	free(r);
	r = xlp_rune("ssh -p 2222", "node2", "xl-ext", 1, 1, 1, 1, NULL);
	assert_string_equal(r, "exec ssh -p 2222 node2 xl-ext -t migrate-receive -e -d -p");
	free(r);
	r = xlp_rune("", "ip netns exec h2 xl-ext migrate-receive", "xl-ext", 1, 1, 1, 1, NULL);
	assert_string_equal(r, "ip netns exec h2 xl-ext migrate-receive");
	free(r);
	r = xlp_rune("ssh", "node2", "xl", 0, 0, 0, 1, NULL);
	assert_string_equal(r, "exec ssh node2 xl migrate-receive -p");
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_messages_exact), cmocka_unit_test(test_header_layout),
	    cmocka_unit_test(test_header_rejects), cmocka_unit_test(test_config_rejects),
	    cmocka_unit_test(test_rune),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
