/*
 * lunid.c - LUN identity: normalise, compare, JSON both ways.
 */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/lunid.h"

static const char *const type_names[] = {"vendor-specific",
                                         "t10-vendor-id",
                                         "eui-64",
                                         "naa",
                                         "relative-target-port",
                                         "target-port-group",
                                         "logical-unit-group",
                                         "md5-logical-unit-id",
                                         "scsi-name-string"};
static const char *const assoc_names[] = {"logical-unit", "target-port", "target-device"};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

static int desig_cmp(const void *a, const void *b)
{
	const struct lunid_desig *x = a, *y = b;

	if (x->type != y->type)
		return x->type - y->type;
	if (x->code_set != y->code_set)
		return x->code_set - y->code_set;
	if (x->len != y->len)
		return x->len - y->len;
	return memcmp(x->data, y->data, x->len);
}

void lunid_normalise(struct lunid *id)
{
	if (id->ndesig > 1)
		qsort(id->desig, id->ndesig, sizeof(id->desig[0]), desig_cmp);
	if (id->nport > 1)
		qsort(id->port, id->nport, sizeof(id->port[0]), desig_cmp);
}

static const char *type_name(unsigned type)
{
	return type < NTYPES ? type_names[type] : "reserved";
}

/* ASCII/UTF-8 designators as text, binary ones in hex. */
static void desig_value(const struct lunid_desig *d, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	if (d->code_set == 2 || d->code_set == 3) {
		for (unsigned i = 0; i < d->len && n + 1 < len && d->data[i]; i++)
			buf[n++] = isprint(d->data[i]) ? (char)d->data[i] : '?';
		buf[n] = '\0';
		return;
	}
	for (unsigned i = 0; i < d->len && n + 3 < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%02x", d->data[i]);
}

int lunid_compare(const struct lunid *a, const struct lunid *b, char *why, size_t whylen)
{
	char va[520], vb[520];

	if (a->ndesig != b->ndesig) {
		snprintf(why, whylen, "%u logical-unit designators against %u", a->ndesig,
		         b->ndesig);
		return ERR_MISMATCH;
	}
	for (unsigned i = 0; i < a->ndesig; i++) {
		if (!desig_cmp(&a->desig[i], &b->desig[i]))
			continue;
		desig_value(&a->desig[i], va, sizeof(va));
		desig_value(&b->desig[i], vb, sizeof(vb));
		snprintf(why, whylen, "designator %u differs: %s %s against %s %s", i,
		         type_name(a->desig[i].type), va, type_name(b->desig[i].type), vb);
		return ERR_MISMATCH;
	}
	if (a->block_size != b->block_size) {
		snprintf(why, whylen, "block size %u against %u", a->block_size, b->block_size);
		return ERR_MISMATCH;
	}
	if (a->nblocks != b->nblocks) {
		snprintf(why, whylen, "%" PRIu64 " blocks against %" PRIu64, a->nblocks,
		         b->nblocks);
		return ERR_MISMATCH;
	}
	return 0;
}

static json_object *desig_json(const struct lunid_desig *d)
{
	json_object *o = json_object_new_object();
	char v[520], hex[520];

	if (!o)
		return NULL;
	desig_value(d, v, sizeof(v));
	hex[0] = '\0';
	for (unsigned i = 0; i < d->len; i++)
		snprintf(hex + 2 * i, sizeof(hex) - 2 * i, "%02x", d->data[i]);
	json_object_object_add(
	    o, "association",
	    json_object_new_string(d->association < 3 ? assoc_names[d->association] : "reserved"));
	json_object_object_add(o, "type", json_object_new_string(type_name(d->type)));
	json_object_object_add(o, "code_set",
	                       json_object_new_string(d->code_set == 1   ? "binary"
	                                              : d->code_set == 3 ? "utf-8"
	                                                                 : "ascii"));
	json_object_object_add(o, "value", json_object_new_string(v));
	json_object_object_add(o, "hex", json_object_new_string(hex));
	return o;
}

int lunid_to_json(const struct lunid *id, char **json_r)
{
	json_object *o = json_object_new_object();
	json_object *lu = json_object_new_array(), *port = json_object_new_array();
	int rc = 0;

	*json_r = NULL;
	if (!o || !lu || !port) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (unsigned i = 0; i < id->ndesig; i++)
		json_object_array_add(lu, desig_json(&id->desig[i]));
	for (unsigned i = 0; i < id->nport; i++)
		json_object_array_add(port, desig_json(&id->port[i]));
	json_object_object_add(o, "block_size", json_object_new_int64(id->block_size));
	json_object_object_add(o, "blocks", json_object_new_int64((int64_t)id->nblocks));
	json_object_object_add(o, "size_bytes",
	                       json_object_new_int64((int64_t)(id->nblocks * id->block_size)));
	json_object_object_add(o, "designators", lu);
	json_object_object_add(o, "port_designators", port);
	lu = port = NULL;
	*json_r = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	if (!*json_r)
		rc = ERR_NOMEM;
out:
	json_object_put(lu);
	json_object_put(port);
	json_object_put(o);
	return rc;
}

static int lookup(const char *s, const char *const *names, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return (int)i;
	return -1;
}

static const char *get_string(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int desig_from_json(json_object *o, struct lunid_desig *d)
{
	const char *assoc = get_string(o, "association"), *type = get_string(o, "type");
	const char *cs = get_string(o, "code_set"), *hex = get_string(o, "hex");
	int a, t;
	size_t n;

	if (!assoc || !type || !cs || !hex)
		return ERR_INVAL;
	a = lookup(assoc, assoc_names, 3);
	t = lookup(type, type_names, NTYPES);
	n = strlen(hex);
	if (a < 0 || t < 0 || n % 2 || n / 2 > sizeof(d->data))
		return ERR_INVAL;
	memset(d, 0, sizeof(*d));
	d->association = (uint8_t)a;
	d->type = (uint8_t)t;
	d->code_set = !strcmp(cs, "binary")  ? 1
	              : !strcmp(cs, "utf-8") ? 3
	              : !strcmp(cs, "ascii") ? 2
	                                     : 0;
	if (!d->code_set)
		return ERR_INVAL;
	d->len = (uint8_t)(n / 2);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (!isxdigit((unsigned char)hex[2 * i]) ||
		    !isxdigit((unsigned char)hex[2 * i + 1]) || sscanf(hex + 2 * i, "%2x", &v) != 1)
			return ERR_INVAL;
		d->data[i] = (uint8_t)v;
	}
	return 0;
}

static int desigs_from_json(json_object *o, const char *key, struct lunid_desig *out, unsigned *n_r)
{
	json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(o, key, &arr) || !json_object_is_type(arr, json_type_array))
		return ERR_INVAL;
	n = json_object_array_length(arr);
	if (n > LUNID_MAX_DESIG)
		return ERR_INVAL;
	for (size_t i = 0; i < n; i++)
		if (desig_from_json(json_object_array_get_idx(arr, i), &out[i]))
			return ERR_INVAL;
	*n_r = (unsigned)n;
	return 0;
}

int lunid_from_json(const char *json, struct lunid *id_r)
{
	json_object *o = json ? json_tokener_parse(json) : NULL, *v;
	int64_t bs, blocks;
	int rc = ERR_INVAL;

	memset(id_r, 0, sizeof(*id_r));
	if (!o || !json_object_is_type(o, json_type_object))
		goto out;
	if (!json_object_object_get_ex(o, "block_size", &v) ||
	    !json_object_is_type(v, json_type_int))
		goto out;
	bs = json_object_get_int64(v);
	if (!json_object_object_get_ex(o, "blocks", &v) || !json_object_is_type(v, json_type_int))
		goto out;
	blocks = json_object_get_int64(v);
	if (bs <= 0 || bs > UINT32_MAX || blocks < 0)
		goto out;
	id_r->block_size = (uint32_t)bs;
	id_r->nblocks = (uint64_t)blocks;
	if (desigs_from_json(o, "designators", id_r->desig, &id_r->ndesig) ||
	    desigs_from_json(o, "port_designators", id_r->port, &id_r->nport) || id_r->ndesig == 0)
		goto out;
	lunid_normalise(id_r);
	rc = 0;
out:
	if (rc)
		log_error("LUN identity: not a valid identity JSON object");
	json_object_put(o);
	return rc;
}
