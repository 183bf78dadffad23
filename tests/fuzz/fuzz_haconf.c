/*
 * fuzz_haconf.c - haagent.conf (haagent/conf.h): the parser behind the configuration whose
 * fence and health commands run as root.
 */
#include "config.h"

#include <stdlib.h>

#include "haagent/conf.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ha_config c;
	char err[512], *text = fuzz_string(data, size);

	fuzz_quiet();
	if (!text)
		return 0;
	ha_config_defaults(&c);
	ha_config_parse(text, size, "fuzz.conf", &c, err, sizeof(err));
	ha_config_release(&c);
	free(text);
	return 0;
}
