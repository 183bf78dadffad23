/*
 * simstate.c - encoding of a sim domain's saved vCPU and device-model state.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "xl-ext/precopy/precopy.h"
#include "xl-ext/sim/sim.h"
#include "xl-ext/precopy/stream.h"

int sim_state_decode(const uint8_t *buf, size_t len, struct pc_cpu_state *st)
{
	uint32_t hdr[3];
	size_t vbytes;

	memset(st, 0, sizeof(*st));
	if (len < sizeof(hdr))
		return ERR_PROTO;
	memcpy(hdr, buf, sizeof(hdr));
	if (hdr[0] == 0 || hdr[0] > PC_MAX_VCPUS || hdr[1] == 0 || hdr[1] > 4096 ||
	    hdr[2] > STREAM_MAX_BLOB)
		return ERR_PROTO;
	vbytes = (size_t)hdr[0] * hdr[1];
	if (len != sizeof(hdr) + vbytes + hdr[2])
		return ERR_PROTO;
	st->vcpus = malloc(vbytes);
	st->dm = hdr[2] ? malloc(hdr[2]) : NULL;
	if (!st->vcpus || (hdr[2] && !st->dm)) {
		pc_cpu_state_free(st);
		return ERR_NOMEM;
	}
	st->nr_vcpus = hdr[0];
	st->vcpu_len = hdr[1];
	st->dm_len = hdr[2];
	memcpy(st->vcpus, buf + sizeof(hdr), vbytes);
	if (hdr[2])
		memcpy(st->dm, buf + sizeof(hdr) + vbytes, hdr[2]);
	return 0;
}

int sim_state_encode(const struct pc_cpu_state *st, uint8_t **buf_r, size_t *len_r)
{
	uint32_t hdr[3] = {st->nr_vcpus, st->vcpu_len, st->dm_len};
	size_t vbytes = (size_t)st->nr_vcpus * st->vcpu_len;
	size_t len = sizeof(hdr) + vbytes + st->dm_len;
	uint8_t *buf = malloc(len);

	if (!buf)
		return ERR_NOMEM;
	memcpy(buf, hdr, sizeof(hdr));
	if (vbytes)
		memcpy(buf + sizeof(hdr), st->vcpus, vbytes);
	if (st->dm_len)
		memcpy(buf + sizeof(hdr) + vbytes, st->dm, st->dm_len);
	*buf_r = buf;
	*len_r = len;
	return 0;
}
