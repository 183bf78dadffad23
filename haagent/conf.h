/*
 * conf.h - /etc/haagent.conf (format and keys in haagent.conf(5)).
 *
 * "key = value" lines, '#' comments, [guest NAME] sections. The parser is pure (text in,
 * struct out) so good and malformed files are unit-tested; every error names the file, the
 * line and the key, and says what is expected.
 */
#ifndef XLEXT_HAAGENT_CONF_H
#define XLEXT_HAAGENT_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "haagent/planner.h"

#define HA_PATH_MAX       256
#define HA_CONF_MAX_BYTES (1024 * 1024)

struct ha_guest_conf {
	char name[HA_NAME_MAX];
	char config[HA_PATH_MAX];
	uint64_t memory_mib;
	uint32_t dirty_mibps;
	uint32_t type; /* enum ha_guest_type */
	char disks[256];
	char preferred[HA_MAX_PREFERRED][HA_NAME_MAX];
	char anti_affinity[HA_NAME_MAX];
	uint32_t fallback; /* enum ha_fallback */
};

struct ha_config {
	char cluster[32];    /* cluster backend */
	char group[64];      /* CPG group */
	char hypervisor[32]; /* hv backend, "" for the default */
	char node_name[HA_NAME_MAX];
	uint64_t dom0_reserve_mib;
	uint32_t max_outgoing, max_incoming, max_attempts, bandwidth_mibps;
	char fence_command[HA_PATH_MAX];
	uint32_t fence_mode;         /* enum ha_fence_mode (fence.h) */
	uint32_t fence_timeout_s;    /* the fence command is killed after this long */
	uint32_t self_fence_s;       /* without quorum this long: check the guests' LUNs (0: off) */
	char node_keys[HA_PATH_MAX]; /* "NAME=KEY,...": reservation keys not derived from names */
	char health_command[HA_PATH_MAX];
	uint32_t health_interval_s, health_timeout_s, health_failures;
	uint32_t drain_timeout_s;
	uint32_t announce_interval_s;    /* sample the hypervisor, report changes */
	uint32_t announce_heartbeat_s;   /* report even without a change */
	uint32_t migration_port;         /* live migrations: TCP port on every node */
	char migration_key[HA_PATH_MAX]; /* pre-shared key file; "" disables live migration */
	char migration_listen[64];       /* address to receive on; "" = this node's ring0 */
	/* the pre-copy policy its migrations run with (xl-ext migrate's options) */
	uint32_t migration_policy;          /* enum pc_policy_kind, default adaptive */
	uint32_t migration_on_stall;        /* enum pc_on_stall, default throttle */
	uint32_t migration_downtime_ms;     /* 0: the policy's default */
	uint32_t migration_max_iters;       /* 0: the policy's default */
	uint32_t migration_bandwidth_mibps; /* live-round cap, 0: none */
	char socket_path[108];
	char state_file[HA_PATH_MAX];
	struct ha_guest_conf *guests;
	size_t nguests;
};

/* Fill c with the defaults (documented in haagent.conf(5)). */
void ha_config_defaults(struct ha_config *c);

/*
 * Parse text (len bytes) over the values already in c. fname names the file in errors.
 * Returns 0, or ERR_INVAL with "<fname>:<line>: key '<key>': <what is wrong>" in err,
 * or ERR_NOMEM.
 */
int ha_config_parse(const char *text, size_t len, const char *fname, struct ha_config *c, char *err,
                    size_t err_len);

/* Defaults, then the file at path (ERR_NOTFOUND/ERR_IO/ERR_PERM when unreadable). */
int ha_config_load(const char *path, struct ha_config *c, char *err, size_t err_len);

/* Free what c owns. */
void ha_config_release(struct ha_config *c);

#endif
