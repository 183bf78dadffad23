/*
 * fuzz_xlcfg.c - an xl.cfg through the project's layer: libxlutil's parser and the sim's
 * reading of its keys (simcfg), then each disk spec of it through the classifier
 * (storage/disk.h) and the configuration back and forth as JSON.
 */
#include "config.h"

#include <stdlib.h>

#include "tests/fuzz/fuzz.h"
#include "xl-ext/sim/simcfg.h"
#include "xl-ext/storage/disk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sim_config *cfg = calloc(1, sizeof(*cfg)), *back = calloc(1, sizeof(*back));
	struct disk_info *d = calloc(1, sizeof(*d));
	char *json = NULL;

	fuzz_quiet();
	if (cfg && back && d && simcfg_parse_data("fuzz.cfg", (const char *)data, size, cfg) == 0) {
		for (unsigned i = 0; i < cfg->ndisks; i++)
			disk_classify(cfg->disks[i].spec, d);
		if (simcfg_to_json(cfg, &json) == 0)
			simcfg_from_json(json, back);
	}
	free(json);
	free(d);
	free(back);
	free(cfg);
	return 0;
}
