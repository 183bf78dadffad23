/*
 * simcfg.h - the configuration of a simulated domU.
 *
 * Parsed from an xl.cfg file with libxlutil (name, type, memory, vcpus, vif, disk), plus the
 * simulation's own key:
 *
 *   workload = "dirty_mibps=32,pattern=uniform|sequential|hotset,hot_mib=128,seed=1,
 *               fill_mib=0,disk_write_hz=0"
 *
 * disk_write_hz > 0 makes the guest append that many journal records per second to its first
 * writable iSCSI disk (simdisk.h); 0, the default, leaves its disks alone.
 *
 * The parsed configuration travels as JSON: in the migration stream's save-file header and in
 * the domain's state directory.
 */
#ifndef XLEXT_SIM_SIMCFG_H
#define XLEXT_SIM_SIMCFG_H

#include <stdbool.h>
#include <stdint.h>

#include "xl-ext/core/hv.h"

#define SIMCFG_MAX_DISKS         8
#define SIMCFG_MAX_MEMORY_MIB    (64u * 1024)
#define SIMCFG_MAX_VCPUS         32
#define SIMCFG_MAX_DISK_WRITE_HZ 1000

enum sim_pattern {
	SIM_PATTERN_UNIFORM = 0,
	SIM_PATTERN_SEQUENTIAL = 1,
	SIM_PATTERN_HOTSET = 2,
};

struct sim_disk {
	char spec[512];   /* as written in the config */
	char target[400]; /* the backing device or file (pdev_path) */
	char vdev[32];
	char script[64];
	bool readwrite;
};

struct sim_config {
	char name[HV_NAME_MAX];
	enum hv_domain_type type;
	uint64_t memory_mib;
	unsigned vcpus;
	char ip[64]; /* from the first vif's ip=, may be empty */
	char mac[32];
	double dirty_mibps;
	enum sim_pattern pattern;
	uint64_t hot_mib;
	uint64_t seed;
	uint64_t fill_mib;    /* memory the guest has in use at boot (written once, stamped) */
	double disk_write_hz; /* journal records per second on the first writable iSCSI disk */
	unsigned ndisks;
	struct sim_disk disks[SIMCFG_MAX_DISKS];
};

/*
 * Parse an xl.cfg file. On error logs what is wrong and where (file, key) and returns
 * ERR_INVAL (bad value), ERR_NOTFOUND (no such file) or ERR_NOMEM.
 */
int simcfg_parse_file(const char *path, struct sim_config *cfg);
/* Same, from memory; source names the data in messages. */
int simcfg_parse_data(const char *source, const char *data, size_t len, struct sim_config *cfg);

/* To and from JSON (caller frees the string). */
int simcfg_to_json(const struct sim_config *cfg, char **json_r);
int simcfg_from_json(const char *json, struct sim_config *cfg);

const char *sim_pattern_name(enum sim_pattern p);

#endif
