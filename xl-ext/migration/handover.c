/*
 * handover.c - LUN identity and reservation hand-over inside the migration handshake
 * (handover.h): the helpers both ends use and the extension's vtable. The sender's half is
 * handover_send.c, the receiver's handover_recv.c.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/migration/handover_int.h"
#include "xl-ext/storage/iscsi.h"

const char *ho_key_str(uint64_t key, char buf[20])
{
	snprintf(buf, 20, "0x%016" PRIx64, key);
	return buf;
}

uint64_t ho_key_parse(json_object *o, const char *field)
{
	json_object *v;
	uint64_t key = 0;

	if (o && json_object_object_get_ex(o, field, &v) &&
	    json_object_is_type(v, json_type_string))
		own_host_key(NULL, json_object_get_string(v), &key);
	return key;
}

const char *ho_jstr(json_object *o, const char *field)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, field, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

json_object *ho_keys_json(const struct own_view *v)
{
	json_object *a = json_object_new_array();
	char kb[20];

	for (unsigned i = 0; i < v->nkeys; i++)
		json_object_array_add(a, json_object_new_string(ho_key_str(v->keys[i], kb)));
	return a;
}

/* target: an iscsi:// URL (a session as initiator iqn...:host) or a kernel block device. */
int ho_open_lun(const char *target, const char *host, struct lun **lun_r)
{
	char initiator[ISCSI_INITIATOR_MAX];
	int rc = iscsi_initiator_name(host, initiator, sizeof(initiator));

	return rc ? rc : lun_open(target, initiator, HO_TIMEOUT_S, lun_r);
}

/* REGISTER (sa_key = key) or UNREGISTER (sa_key 0) key on lun, for a WERO reservation. */
int ho_pr_register(struct lun *lun, enum own_op op, uint64_t key)
{
	struct own_cmd cmd = {.op = op,
	                      .key = key,
	                      .sa_key = op == OWN_OP_REGISTER ? key : 0,
	                      .type = OWN_PR_TYPE_WERO};

	return lun_pr_out(lun, &cmd);
}

const struct mig_ext_ops ho_ext_ops = {
    .ready = ho_sender_ready,
    .final = ho_sender_final,
    .prepare = ho_receiver_prepare,
    .received = ho_receiver_received,
    .go = ho_receiver_go,
    .abort = ho_receiver_abort,
};
