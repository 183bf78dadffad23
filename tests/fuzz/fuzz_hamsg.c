/*
 * fuzz_hamsg.c - haagent's cluster messages (haagent/msg.h) as a node receives them over CPG:
 * decoded, then delivered to a node's replicated state from another node.
 */
#include "config.h"

#include "haagent/msg.h"
#include "haagent/state.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ha_state *st = NULL;
	struct ha_msg m;

	fuzz_quiet();
	if (ha_msg_decode(data, size, &m) == 0)
		ha_msg_release(&m);
	if (ha_state_new(&st, 1, NULL) == 0) {
		ha_state_deliver(st, 2, data, size);
		ha_state_free(st);
	}
	return 0;
}
