/*
 * fuzz_handover.c - the JSON messages of the reservation hand-over (migration/handover.h)
 * and of the pre-flight (migration/preflight.h, disks.h), as each end receives them from its
 * peer. The first byte chooses the message:
 *   0  the receiver's request (answered by prepare, then aborted)
 *   1  the sender's view of the receiver's answer (ready) and its --json report
 *   2  the sender's view of the receiver's final message (final) and its --json report
 *   3  a destination's pre-flight answer: its facts (pf_dest_from_json, then the checks) and
 *      its verdicts on the LUN identities (mig_disks_apply_answer)
 *   4  the destination's side of the pre-flight: a sender's LUN identity request
 * Run it without a network (make fuzz does): requests name LUNs an end tries to log in to.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "xl-ext/migration/disks.h"
#include "xl-ext/migration/handover_int.h"
#include "xl-ext/migration/preflight.h"

static const char *const specs[] = {
    "vdev=xvda,script=block-iscsi,target=iqn=iqn.2026-11.org.example:t1,portal=127.0.0.1:1,lun=1",
    ("vdev=xvdb,access=ro,script=block-iscsi,target=iqn=iqn.2026-11.org.example:t1,"
     "portal=127.0.0.1:1,lun=2"),
    "vdev=xvdc,access=rw,target=/dev/vg0/local",
};

/* A sender state as ho_sender_new would leave it, without reading any LUN. */
static void sender_state(struct ho_sender *s, struct mig_disks *disks)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->domain, sizeof(s->domain), "vm1");
	snprintf(s->dest, sizeof(s->dest), "h2");
	snprintf(s->host, sizeof(s->host), "h1");
	s->key = 0x1234;
	s->disks = disks;
}

static void sender_side(const char *msg, int final)
{
	struct disk_info info[3];
	enum mig_disk_verdict verdict[3];
	struct mig_disks disks = {.n = 0, .info = info, .verdict = verdict};
	struct ho_sender s;
	json_object *report = json_object_new_object(), *dj;

	for (unsigned i = 0; i < 3; i++)
		if (disk_classify(specs[i], &info[disks.n]) == 0)
			verdict[disks.n++] = MIG_DISK_UNCHECKED;
	sender_state(&s, &disks);
	if (final)
		ho_ext_ops.final(&s, msg);
	else
		ho_ext_ops.ready(&s, msg);
	dj = mig_disks_json(&disks);
	ho_sender_report(&s, dj, report);
	json_object_put(dj);
	json_object_put(report);
	json_object_put(s.answer);
	json_object_put(s.final);
	free(s.request);
}

static void preflight_answer(const char *msg)
{
	struct disk_info info[3];
	enum mig_disk_verdict verdict[3];
	struct mig_disks disks = {.n = 0, .info = info, .verdict = verdict};
	struct pf_source src = {.name = "vm1", .type = HV_TYPE_PVH, .memory_kib = 1 << 20};
	struct pf_result res;
	struct pf_dest dst;

	snprintf(src.hypervisor, sizeof(src.hypervisor), "sim");
	snprintf(src.version, sizeof(src.version), "4.17");
	if (pf_dest_from_json(msg, &dst) == 0) {
		pf_check(&src, &dst, &res);
		pf_dest_dispose(&dst);
	}
	for (unsigned i = 0; i < 3; i++)
		if (disk_classify(specs[i], &info[disks.n]) == 0)
			verdict[disks.n++] = MIG_DISK_UNCHECKED;
	mig_disks_apply_answer("vm1", "h2", &disks, msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ho_receiver *r = NULL;
	char *msg, *answer = NULL;
	json_object *o;

	fuzz_quiet();
	if (size < 1)
		return 0;
	msg = fuzz_string(data + 1, size - 1);
	if (!msg)
		return 0;
	switch (data[0] % 5) {
	case 0:
		if (ho_receiver_new(0, &r) == 0) {
			ho_ext_ops.prepare(r, msg, &answer);
			ho_ext_ops.abort(r);
			ho_receiver_free(r);
		}
		free(answer);
		break;
	case 1:
	case 2:
		sender_side(msg, data[0] % 5 == 2);
		break;
	case 3:
		preflight_answer(msg);
		break;
	default:
		o = json_object_new_object();
		mig_disks_verify_request(msg, o);
		json_object_put(o);
		break;
	}
	free(msg);
	return 0;
}
