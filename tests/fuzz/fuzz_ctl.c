/*
 * fuzz_ctl.c - haagent's control-socket requests (haagent/ctl.h), answered by a node's state.
 */
#include "config.h"

#include <stdlib.h>

#include "haagent/ctl.h"
#include "haagent/state.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ha_state *st = NULL;
	char *reply = NULL, *req;

	fuzz_quiet();
	req = fuzz_string(data, size);
	if (!req || ha_state_new(&st, 1, NULL)) {
		free(req);
		return 0;
	}
	if (ha_ctl_handle(st, req, size, &reply) == 0)
		free(reply);
	ha_state_free(st);
	free(req);
	return 0;
}
