/*
 * fuzz_xlhandshake.c - the receiving end of xl's migration handshake (migration/handshake.h)
 * fed by a sender under the fuzzer's control: the save-file header, the domain configuration
 * JSON, xl-ext's hand-over request (handover.h, answered by the real receiver), the stream
 * and the GO message.
 *
 * The backend is a fake: no domain exists, and its "stream" is a u32 length (at most 64 KiB)
 * then that many bytes, after which the incoming domain exists. Run it without a network
 * (make fuzz does, in a network namespace of its own): the hand-over request names LUNs the
 * receiver tries to log in to.
 */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "tests/fuzz/fuzz.h"
#include "xl-ext/migration/handover.h"
#include "xl-ext/migration/handshake.h"

static int fake_lookup(struct hv *hv, const char *name, uint32_t *domid_r)
{
	(void)hv;
	(void)name;
	(void)domid_r;
	return ERR_NOTFOUND;
}

static int fake_receive(struct hv *hv, int fd, const char *name, const char *config_json,
                        const struct mig_params *params, struct mig_report *report,
                        uint32_t *domid_r)
{
	static uint8_t buf[65536];
	uint32_t len;

	(void)hv;
	(void)name;
	(void)config_json;
	(void)params;
	(void)report;
	if (fd_read_exact(fd, &len, sizeof(len)) || len > sizeof(buf) ||
	    fd_read_exact(fd, buf, len))
		return ERR_PROTO;
	*domid_r = 7;
	return 0;
}

static int fake_ok(struct hv *hv, uint32_t domid)
{
	(void)hv;
	(void)domid;
	return 0;
}

static int fake_rename(struct hv *hv, uint32_t domid, const char *old_name, const char *new_name)
{
	(void)hv;
	(void)domid;
	(void)old_name;
	(void)new_name;
	return 0;
}

static const struct hv_ops fake_ops = {
    .name = "fuzz",
    .lookup = fake_lookup,
    .receive_stream = fake_receive,
    .rename = fake_rename,
    .unpause = fake_ok,
    .destroy = fake_ok,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_receive_args a = {.ops = &fake_ops, .ext = &ho_ext_ops};
	struct ho_receiver *ho = NULL;
	struct mig_report rep;
	uint32_t domid;
	int near, far;

	fuzz_quiet();
	if (ho_receiver_new(0, &ho))
		return 0;
	if (fuzz_socket(data, size, &near, &far) == 0) {
		a.send_fd = a.recv_fd = near;
		a.ext_ctx = ho;
		mig_receive(&a, &rep, &domid);
		close(near);
		close(far);
	}
	ho_receiver_free(ho);
	return 0;
}
