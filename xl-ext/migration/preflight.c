/*
 * preflight.c - pre-flight checks of a migration: the decision and its wire format.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/error.h"
#include "xl-ext/migration/preflight.h"

uint64_t pf_required_kib(uint64_t memory_kib)
{
	/* page tables, p2m, shadow/HAP pool and the device model: ~1.5% plus 4 MiB */
	return memory_kib + memory_kib / 64 + 4096;
}

const char *pf_check_name(enum pf_check_id id)
{
	static const char *const names[PF_NR_CHECKS] = {
	    [PF_CHECK_HYPERVISOR] = "hypervisor",
	    [PF_CHECK_VERSION] = "version",
	    [PF_CHECK_MEMORY] = "memory",
	    [PF_CHECK_NAME] = "name",
	    [PF_CHECK_CPU] = "cpu",
	};

	return (unsigned)id < PF_NR_CHECKS ? names[id] : "?";
}

static int version_parse(const char *s, unsigned *major, unsigned *minor)
{
	return sscanf(s, "%u.%u", major, minor) == 2 ? 0 : ERR_INVAL;
}

int pf_version_cmp(const char *a, const char *b)
{
	unsigned amaj, amin, bmaj, bmin;

	if (version_parse(a, &amaj, &amin) || version_parse(b, &bmaj, &bmin))
		return 0;
	if (amaj != bmaj)
		return amaj < bmaj ? -1 : 1;
	return amin < bmin ? -1 : amin > bmin;
}

static void set(struct pf_result *res, enum pf_check_id id, enum pf_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set(struct pf_result *res, enum pf_check_id id, enum pf_status st, const char *fmt, ...)
{
	va_list ap;

	res->status[id] = st;
	va_start(ap, fmt);
	vsnprintf(res->message[id], sizeof(res->message[id]), fmt, ap);
	va_end(ap);
}

/* The guest's features the destination cannot offer, named, into buf; their count. */
static unsigned missing_features(const struct pf_source *src, const struct hv_featureset *max,
                                 char *buf, size_t len)
{
	unsigned count = 0;
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned w = 0; w < src->features.nr_words; w++) {
		uint32_t have = w < max->nr_words ? max->words[w] : 0;
		uint32_t miss = src->features.words[w] & ~have;

		for (unsigned b = 0; b < 32; b++) {
			const char *name;
			int n;

			if (!(miss & (1u << b)))
				continue;
			name = src->feature_name ? src->feature_name(w * 32 + b) : NULL;
			if (name)
				n = snprintf(buf + used, len - used, "%s%s", count ? " " : "",
				             name);
			else
				n = snprintf(buf + used, len - used, "%sbit %u (word %u bit %u)",
				             count ? " " : "", w * 32 + b, w, b);
			count++;
			if (n > 0 && (size_t)n < len - used)
				used += (size_t)n;
			else
				used = len - 1;
		}
	}
	return count;
}

static void check_cpu(const struct pf_source *src, const struct pf_dest *dst, struct pf_result *res)
{
	const struct hv_featureset *max = src->type == HV_TYPE_PV ? &dst->pv_max : &dst->hvm_max;
	char missing[300];
	unsigned n;

	if (!src->features.nr_words || !max->nr_words) {
		set(res, PF_CHECK_CPU, PF_SKIPPED, "CPU features not known on %s; not checked",
		    src->features.nr_words ? "the destination" : "this host");
		return;
	}
	n = missing_features(src, max, missing, sizeof(missing));
	if (n)
		set(res, PF_CHECK_CPU, PF_FAIL,
		    "the destination CPU lacks %u feature%s %s sees: %s (a %s guest there may only "
		    "have what %s_max allows)",
		    n, n > 1 ? "s" : "", src->name, missing, hv_type_name(src->type),
		    src->type == HV_TYPE_PV ? "pv" : "hvm");
}

int pf_check(const struct pf_source *src, const struct pf_dest *dst, struct pf_result *res)
{
	static const int codes[PF_NR_CHECKS] = {
	    [PF_CHECK_HYPERVISOR] = ERR_NOTSUP, [PF_CHECK_VERSION] = ERR_NOTSUP,
	    [PF_CHECK_MEMORY] = ERR_NOSPACE,    [PF_CHECK_NAME] = ERR_EXISTS,
	    [PF_CHECK_CPU] = ERR_NOTSUP,
	};
	uint64_t need;

	memset(res, 0, sizeof(*res));
	if (!dst->answered) {
		for (int id = 0; id < PF_NR_CHECKS; id++)
			set(res, id, PF_SKIPPED,
			    "the destination did not answer the pre-flight "
			    "query (stock xl there?); %s not checked",
			    pf_check_name(id));
		return 0;
	}
	if (strcmp(src->hypervisor, dst->hypervisor))
		set(res, PF_CHECK_HYPERVISOR, PF_FAIL, "the destination runs '%s', this host '%s'",
		    dst->hypervisor, src->hypervisor);

	if (!strcmp(src->hypervisor, "xen") && !strcmp(dst->hypervisor, "xen")) {
		unsigned maj, min;

		if (version_parse(src->version, &maj, &min) ||
		    version_parse(dst->version, &maj, &min))
			set(res, PF_CHECK_VERSION, PF_SKIPPED,
			    "Xen version unknown ('%s' here, '%s' "
			    "there); not checked",
			    src->version, dst->version);
		else if (pf_version_cmp(dst->version, src->version) < 0)
			set(res, PF_CHECK_VERSION, PF_FAIL,
			    "the destination runs Xen %s, older than "
			    "this host's %s: Xen does not migrate to older versions",
			    dst->version, src->version);
	}

	need = pf_required_kib(src->memory_kib);
	if (dst->free_kib < need)
		set(res, PF_CHECK_MEMORY, PF_FAIL,
		    "the destination has %" PRIu64 " MiB free, %s "
		    "needs %" PRIu64 " MiB (%" PRIu64 " MiB of memory and overhead)",
		    dst->free_kib / 1024, src->name, (need + 1023) / 1024, src->memory_kib / 1024);

	for (size_t i = 0; i < dst->n_names; i++) {
		char incoming[HV_NAME_MAX + 16];

		snprintf(incoming, sizeof(incoming), "%s--incoming", src->name);
		if (!strcmp(dst->names[i], src->name) || !strcmp(dst->names[i], incoming)) {
			set(res, PF_CHECK_NAME, PF_FAIL,
			    "a domain named '%s' already exists on the "
			    "destination",
			    dst->names[i]);
			break;
		}
	}
	check_cpu(src, dst, res);

	for (int id = 0; id < PF_NR_CHECKS; id++)
		if (res->status[id] == PF_FAIL)
			return codes[id];
	return 0;
}

/* --- wire format ------------------------------------------------------------------------- */

static json_object *featureset_json(const struct hv_featureset *fs)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < fs->nr_words; i++)
		json_object_array_add(a, json_object_new_int64(fs->words[i]));
	return a;
}

int pf_dest_to_json(const struct pf_dest *dst, char **json_r)
{
	json_object *o = json_object_new_object(), *names = json_object_new_array();
	int rc = 0;

	json_object_object_add(o, PF_JSON_MAGIC, json_object_new_int(PF_JSON_VERSION));
	json_object_object_add(o, "hypervisor", json_object_new_string(dst->hypervisor));
	json_object_object_add(o, "version", json_object_new_string(dst->version));
	json_object_object_add(o, "free_kib", json_object_new_int64((int64_t)dst->free_kib));
	for (size_t i = 0; i < dst->n_names; i++)
		json_object_array_add(names, json_object_new_string(dst->names[i]));
	json_object_object_add(o, "domains", names);
	json_object_object_add(o, "featureset_pv_max", featureset_json(&dst->pv_max));
	json_object_object_add(o, "featureset_hvm_max", featureset_json(&dst->hvm_max));
	*json_r = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	if (!*json_r)
		rc = ERR_NOMEM;
	json_object_put(o);
	return rc;
}

static int featureset_from(json_object *o, const char *key, struct hv_featureset *fs)
{
	json_object *a;
	size_t n;

	memset(fs, 0, sizeof(*fs));
	if (!json_object_object_get_ex(o, key, &a))
		return 0; /* absent: unknown, the check is skipped */
	if (!json_object_is_type(a, json_type_array))
		return ERR_PROTO;
	n = json_object_array_length(a);
	if (n > HV_FEATURESET_MAX)
		n = HV_FEATURESET_MAX;
	for (size_t i = 0; i < n; i++)
		fs->words[i] = (uint32_t)json_object_get_int64(json_object_array_get_idx(a, i));
	fs->nr_words = (unsigned)n;
	return 0;
}

static void copy_str(json_object *o, const char *key, char *buf, size_t len)
{
	json_object *v;

	buf[0] = '\0';
	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		snprintf(buf, len, "%s", json_object_get_string(v));
}

int pf_dest_from_json(const char *text, struct pf_dest *dst)
{
	json_object *o, *v, *names;
	int rc = ERR_PROTO;

	memset(dst, 0, sizeof(*dst));
	o = json_tokener_parse(text);
	if (!o)
		return ERR_PROTO;
	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, PF_JSON_MAGIC, &v) ||
	    json_object_get_int(v) != PF_JSON_VERSION)
		goto out;
	copy_str(o, "hypervisor", dst->hypervisor, sizeof(dst->hypervisor));
	copy_str(o, "version", dst->version, sizeof(dst->version));
	if (!json_object_object_get_ex(o, "free_kib", &v) || json_object_get_int64(v) < 0)
		goto out;
	dst->free_kib = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "domains", &names) &&
	    json_object_is_type(names, json_type_array)) {
		size_t n = json_object_array_length(names);

		dst->names = calloc(n ? n : 1, sizeof(*dst->names));
		if (!dst->names) {
			rc = ERR_NOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			const char *s = json_object_get_string(json_object_array_get_idx(names, i));

			dst->names[i] = strdup(s ? s : "");
			if (!dst->names[i]) {
				rc = ERR_NOMEM;
				goto out;
			}
			dst->n_names++;
		}
	}
	if (featureset_from(o, "featureset_pv_max", &dst->pv_max) ||
	    featureset_from(o, "featureset_hvm_max", &dst->hvm_max))
		goto out;
	dst->answered = true;
	rc = 0;
out:
	json_object_put(o);
	if (rc)
		pf_dest_dispose(dst);
	return rc;
}

void pf_dest_dispose(struct pf_dest *dst)
{
	for (size_t i = 0; i < dst->n_names; i++)
		free(dst->names[i]);
	free(dst->names);
	dst->names = NULL;
	dst->n_names = 0;
	dst->answered = false;
}
