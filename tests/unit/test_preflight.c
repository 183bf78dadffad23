/* Table-driven tests of the pre-flight checks and their wire format (xl-ext/preflight.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "xl-ext/migration/preflight.h"

static const char *names_vm2[] = {"vm2", "db"};
static const char *names_clash[] = {"web", "vm1"};
static const char *names_incoming[] = {"vm1--incoming"};

static const char *fake_name(unsigned bit)
{
	return bit == 5 * 32 + 5 ? "AVX2" : NULL;
}

struct pf_case {
	const char *what;
	const char *src_ver, *dst_ver, *src_hv, *dst_hv;
	enum hv_domain_type type;
	uint64_t mem_kib, free_kib;
	const char **names;
	size_t n_names;
	uint32_t src_w5, dst_w5; /* featureset word 5 on each side (0 words when both 0) */
	bool answered;
	int want_rc;
	enum pf_check_id failed; /* meaningful when want_rc != 0 */
	const char *want_text;   /* in the failed (or first skipped) check's message */
};

#define MIB 1024ull
static const struct pf_case cases[] = {
    {"all pass", "4.17", "4.17", "xen", "xen", HV_TYPE_PV, 1024 * MIB, 4096 * MIB, names_vm2, 2,
     0x20, 0x20, true, 0, 0, NULL},
    {"newer Xen there", "4.16", "4.17", "xen", "xen", HV_TYPE_HVM, 1024 * MIB, 4096 * MIB, NULL, 0,
     0x20, 0x21, true, 0, 0, NULL},
    {"older Xen there", "4.17", "4.16", "xen", "xen", HV_TYPE_PV, 1024 * MIB, 4096 * MIB, NULL, 0,
     0, 0, true, ERR_NOTSUP, PF_CHECK_VERSION, "runs Xen 4.16, older than this host's 4.17"},
    {"older minor 4.9 vs 4.17", "4.17", "4.9", "xen", "xen", HV_TYPE_PV, 1, 4096 * MIB, NULL, 0, 0,
     0, true, ERR_NOTSUP, PF_CHECK_VERSION, "4.9"},
    {"not enough memory", "4.17", "4.17", "xen", "xen", HV_TYPE_PV, 4096 * MIB, 4100 * MIB, NULL, 0,
     0, 0, true, ERR_NOSPACE, PF_CHECK_MEMORY, "has 4100 MiB free, vm1 needs 4164 MiB"},
    {"name clash", "4.17", "4.17", "xen", "xen", HV_TYPE_PV, 1024 * MIB, 4096 * MIB, names_clash, 2,
     0, 0, true, ERR_EXISTS, PF_CHECK_NAME, "named 'vm1' already exists"},
    {"leftover incoming copy", "4.17", "4.17", "xen", "xen", HV_TYPE_PV, 1024 * MIB, 4096 * MIB,
     names_incoming, 1, 0, 0, true, ERR_EXISTS, PF_CHECK_NAME, "vm1--incoming"},
    {"CPU lacks AVX2 (named)", "4.17", "4.17", "xen", "xen", HV_TYPE_HVM, 1024 * MIB, 4096 * MIB,
     NULL, 0, 0x20 | 0x1, 0x1, true, ERR_NOTSUP, PF_CHECK_CPU, "lacks 1 feature vm1 sees: AVX2"},
    {"CPU lacks an unnamed bit", "4.17", "4.17", "xen", "xen", HV_TYPE_PV, 1024 * MIB, 4096 * MIB,
     NULL, 0, 0x40, 0x0, true, ERR_NOTSUP, PF_CHECK_CPU, "bit 166 (word 5 bit 6)"},
    {"other hypervisor", "4.17", "0.1.0", "xen", "sim", HV_TYPE_PV, 1024 * MIB, 4096 * MIB, NULL, 0,
     0, 0, true, ERR_NOTSUP, PF_CHECK_HYPERVISOR, "runs 'sim'"},
    {"sim to sim: no Xen version check", "0.1.0", "0.0.9", "sim", "sim", HV_TYPE_PV, 1024 * MIB,
     4096 * MIB, NULL, 0, 0, 0, true, 0, 0, NULL},
    {"stock xl there: all skipped", "4.17", "", "xen", "", HV_TYPE_PV, 1024 * MIB, 0, NULL, 0, 0x20,
     0, false, 0, 0, "did not answer the pre-flight query"},
};

static void fill(const struct pf_case *c, struct pf_source *src, struct pf_dest *dst)
{
	memset(src, 0, sizeof(*src));
	memset(dst, 0, sizeof(*dst));
	src->name = "vm1";
	src->type = c->type;
	src->memory_kib = c->mem_kib;
	snprintf(src->hypervisor, sizeof(src->hypervisor), "%s", c->src_hv);
	snprintf(src->version, sizeof(src->version), "%s", c->src_ver);
	src->feature_name = fake_name;
	dst->answered = c->answered;
	snprintf(dst->hypervisor, sizeof(dst->hypervisor), "%s", c->dst_hv);
	snprintf(dst->version, sizeof(dst->version), "%s", c->dst_ver);
	dst->free_kib = c->free_kib;
	dst->names = (char **)c->names;
	dst->n_names = c->n_names;
	if (c->src_w5 || c->dst_w5) {
		src->features.nr_words = 8;
		src->features.words[5] = c->src_w5;
		src->features.words[0] = 0xffff; /* present on both sides */
		dst->pv_max.nr_words = dst->hvm_max.nr_words = 8;
		dst->pv_max.words[0] = dst->hvm_max.words[0] = 0xffffffff;
		/* only the max featureset of the guest's type matters */
		if (c->type == HV_TYPE_PV)
			dst->pv_max.words[5] = c->dst_w5, dst->hvm_max.words[5] = 0xffffffff;
		else
			dst->hvm_max.words[5] = c->dst_w5, dst->pv_max.words[5] = 0xffffffff;
	}
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pf_case *c = &cases[i];
		struct pf_source src;
		struct pf_dest dst;
		struct pf_result res;
		int rc, nfail = 0;

		fill(c, &src, &dst);
		rc = pf_check(&src, &dst, &res);
		print_message("  case '%s': rc %d\n", c->what, rc);
		assert_int_equal(rc, c->want_rc);
		for (int id = 0; id < PF_NR_CHECKS; id++)
			nfail += res.status[id] == PF_FAIL;
		assert_int_equal(nfail, c->want_rc ? 1 : 0);
		if (c->want_rc) {
			assert_int_equal(res.status[c->failed], PF_FAIL);
			assert_non_null(strstr(res.message[c->failed], c->want_text));
		} else if (!c->answered) {
			for (int id = 0; id < PF_NR_CHECKS; id++)
				assert_int_equal(res.status[id], PF_SKIPPED);
			assert_non_null(strstr(res.message[PF_CHECK_CPU], c->want_text));
		}
	}
}

static void test_cpu_unknown_is_skipped(void **state)
{
	struct pf_source src;
	struct pf_dest dst;
	struct pf_result res;

	(void)state;
	fill(&cases[0], &src, &dst);
	dst.pv_max.nr_words = 0; /* an xl-ext without featuresets there (sim) */
	assert_int_equal(pf_check(&src, &dst, &res), 0);
	assert_int_equal(res.status[PF_CHECK_CPU], PF_SKIPPED);
	assert_non_null(strstr(res.message[PF_CHECK_CPU], "destination"));
}

static void test_two_failures_first_code(void **state)
{
	struct pf_source src;
	struct pf_dest dst;
	struct pf_result res;

	(void)state;
	fill(&cases[5], &src, &dst); /* name clash */
	dst.free_kib = 0;            /* and no memory */
	assert_int_equal(pf_check(&src, &dst, &res), ERR_NOSPACE);
	assert_int_equal(res.status[PF_CHECK_NAME], PF_FAIL);
	assert_int_equal(res.status[PF_CHECK_MEMORY], PF_FAIL);
}

static void test_version_cmp(void **state)
{
	(void)state;
	assert_true(pf_version_cmp("4.17", "4.9") > 0);
	assert_true(pf_version_cmp("4.9", "4.17") < 0);
	assert_int_equal(pf_version_cmp("4.17", "4.17.3"), 0);
	assert_true(pf_version_cmp("5.0", "4.19") > 0);
	assert_int_equal(pf_version_cmp("garbage", "4.17"), 0);
}

static void test_json_round_trip(void **state)
{
	const char *names[] = {"a", "b\"c"};
	struct pf_dest in = {0}, out;
	char *json;

	(void)state;
	snprintf(in.hypervisor, sizeof(in.hypervisor), "xen");
	snprintf(in.version, sizeof(in.version), "4.17");
	in.free_kib = 123456789;
	in.names = (char **)names;
	in.n_names = 2;
	in.pv_max.nr_words = 2;
	in.pv_max.words[0] = 0xdeadbeef;
	in.pv_max.words[1] = 0xffffffff;
	in.hvm_max.nr_words = 1;
	in.hvm_max.words[0] = 7;
	assert_int_equal(pf_dest_to_json(&in, &json), 0);
	assert_null(strchr(json, '\n')); /* one line on the wire */
	assert_int_equal(pf_dest_from_json(json, &out), 0);
	assert_true(out.answered);
	assert_string_equal(out.hypervisor, "xen");
	assert_string_equal(out.version, "4.17");
	assert_int_equal(out.free_kib, 123456789);
	assert_int_equal(out.n_names, 2);
	assert_string_equal(out.names[1], "b\"c");
	assert_int_equal(out.pv_max.nr_words, 2);
	assert_int_equal(out.pv_max.words[0], 0xdeadbeef);
	assert_int_equal(out.pv_max.words[1], 0xffffffff);
	assert_int_equal(out.hvm_max.words[0], 7);
	pf_dest_dispose(&out);
	free(json);
}

static void test_json_rejects_foreign(void **state)
{
	struct pf_dest out;

	(void)state;
	/* what stock xl prints for an unknown option, and other non-answers */
	assert_int_equal(pf_dest_from_json("Usage: xl [-v] migrate-receive [options]\n", &out),
	                 ERR_PROTO);
	assert_false(out.answered);
	assert_int_equal(pf_dest_from_json("", &out), ERR_PROTO);
	assert_int_equal(pf_dest_from_json("{\"free_kib\":1}", &out), ERR_PROTO);
	assert_int_equal(pf_dest_from_json("{\"xl-ext-preflight\":2,\"free_kib\":1}", &out),
	                 ERR_PROTO);
	assert_int_equal(pf_dest_from_json("{\"xl-ext-preflight\":1}", &out), ERR_PROTO);
	assert_int_equal(pf_dest_from_json("{\"xl-ext-preflight\":1,\"free_kib\":1,"
	                                   "\"featureset_pv_max\":3}",
	                                   &out),
	                 ERR_PROTO);
	assert_int_equal(pf_dest_from_json("[1,2]", &out), ERR_PROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_cpu_unknown_is_skipped),
	    cmocka_unit_test(test_two_failures_first_code),
	    cmocka_unit_test(test_version_cmp),
	    cmocka_unit_test(test_json_round_trip),
	    cmocka_unit_test(test_json_rejects_foreign),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
