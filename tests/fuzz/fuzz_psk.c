/*
 * fuzz_psk.c - the direct transport's pre-shared-key handshake (migration/transport.h), both
 * roles: first byte even, this end is the receiver and the input is what a sender says; odd,
 * this end is the sender and the input is what a receiver says.
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "xl-ext/migration/transport.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tr_key key = {.len = 32};
	uint32_t flags = 0;
	int near, far;

	fuzz_quiet();
	if (size < 1)
		return 0;
	memset(key.bytes, 0x5a, key.len);
	if (fuzz_socket(data + 1, size - 1, &near, &far))
		return 0;
	if (data[0] & 1)
		tr_auth_sender(near, &key, "fuzz", TR_FLAG_PAUSED);
	else
		tr_auth_receiver(near, &key, "fuzz", &flags);
	close(near);
	close(far);
	return 0;
}
