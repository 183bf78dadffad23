/*
 * hv.h - the hypervisor backend interface (struct hv_ops).
 *
 * xl-ext's commands and its migration orchestration talk to a hypervisor only through this
 * vtable. Two backends implement it: "xen" (libxl, libxenctrl, libxenstore; built when
 * configure finds them) and "sim" (simulated Xen host: domUs are processes, always built).
 * Only the backend's own files include the hypervisor's headers; they translate its errors to
 * the codes of common/error.h at the boundary.
 */
#ifndef XLEXT_HV_H
#define XLEXT_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/registry.h"

#define HV_NAME_MAX      64
#define HV_INVALID_DOMID UINT32_MAX

struct hv;
struct loop;
struct mig_params;
struct mig_report;

enum hv_domain_type {
	HV_TYPE_PV = 0,
	HV_TYPE_PVH = 1,
	HV_TYPE_HVM = 2,
};

struct hv_domain_info {
	uint32_t domid;
	char name[HV_NAME_MAX];
	enum hv_domain_type type;
	uint64_t memory_kib;
	unsigned vcpus;
	bool running;
	bool paused;
	bool dying;
	bool suspended; /* stopped by a suspend (a migration's), resumable with resume() */
	double cpu_time_s;
};

struct hv_host_info {
	char hypervisor[16]; /* "xen", "sim" */
	char version[32];    /* hypervisor version, "4.17" */
	uint64_t total_kib;
	uint64_t free_kib;
	unsigned nr_cpus;
};

/* CPU featureset words (Xen's XEN_SYSCTL_cpu_featureset_* layout: word w, bit b = 32*w+b). */
#define HV_FEATURESET_MAX 32
struct hv_featureset {
	unsigned nr_words; /* 0: unknown */
	uint32_t words[HV_FEATURESET_MAX];
};

/* Which featureset of a host: what a guest of a type gets by default, or at most. */
enum hv_featureset_kind {
	HV_FEATURES_PV_DEFAULT = 0,
	HV_FEATURES_HVM_DEFAULT = 1,
	HV_FEATURES_PV_MAX = 2,
	HV_FEATURES_HVM_MAX = 3,
};

/* One virtual disk of a domain, as its backend in xenstore describes it. */
struct hv_disk {
	char vdev[32]; /* frontend device id or name ("51712", "xvda") */
	uint32_t backend_domid;
	char type[32];    /* backend "type": phy, file, vbd3... */
	char params[256]; /* backend "params": the device, file or target */
	char script[128]; /* backend "script" ("" when none: plain device) */
	bool readonly;    /* backend "mode" is "r": the guest cannot write it */
};

/* Disk specs in xl's disk-spec syntax (xl-disk-configuration), as a config names them. */
struct hv_disk_specs {
	size_t n;
	char **spec;
};

struct hv_create_args {
	bool paused;      /* leave the new domain paused (xl create -p) */
	const char *name; /* override the config's name, or NULL */
};

#define HV_SAMPLE_MAX_WINDOWS 16
struct hv_dirty_sample {
	uint64_t nr_pages, data_pages, union_pages;
	unsigned windows, window_ms;
	uint64_t dirtied[HV_SAMPLE_MAX_WINDOWS];
	/* the backend's sender sends every page due in a round (libxc's); else it leaves out
	 * those written again before their turn (the sim's pre-copy engine) */
	bool sender_sends_all;
};

struct hv_ops {
	const char *name;

	/* Connect to the hypervisor. ERR_NOXEN (with a logged reason) when it is not there. */
	int (*open)(struct hv **hv_r, struct loop *loop);
	void (*close)(struct hv *hv);
	/*
	 * Optional: in a child forked (without exec) from a process that opened hv, before the
	 * child opens a connection of its own. hv is then invalid in the child: not used, not
	 * closed (libxl_postfork_child_noexec).
	 */
	void (*postfork_child)(struct hv *hv);

	int (*host_info)(struct hv *hv, struct hv_host_info *info);
	/* All domains but dom0, sorted by domid; caller frees *doms_r. */
	int (*list)(struct hv *hv, struct hv_domain_info **doms_r, size_t *n_r);
	/* Name or numeric id -> domid; ERR_NOTFOUND when there is none. */
	int (*lookup)(struct hv *hv, const char *name_or_id, uint32_t *domid_r);
	int (*info)(struct hv *hv, uint32_t domid, struct hv_domain_info *info);

	int (*create)(struct hv *hv, const char *config_path, const struct hv_create_args *args,
	              uint32_t *domid_r);
	int (*destroy)(struct hv *hv, uint32_t domid);
	int (*pause)(struct hv *hv, uint32_t domid);
	int (*unpause)(struct hv *hv, uint32_t domid);
	/* Rename if the current name is old_name (NULL: any); ERR_EXISTS if new_name is taken. */
	int (*rename)(struct hv *hv, uint32_t domid, const char *old_name, const char *new_name);
	/* The domain's configuration as JSON (libxl_domain_config for xen); caller frees. */
	int (*config_json)(struct hv *hv, uint32_t domid, char **json_r);
	/*
	 * Optional (NULL: not supported): a configuration file (xl.cfg) as the JSON config_json
	 * would give, named name (NULL: the file's own); logs the file and key at fault.
	 */
	int (*config_file_json)(struct hv *hv, const char *path, const char *name, char **json_r);

	/*
	 * Migration stream producer: live pre-copy of domid into fd, ending with the domain
	 * suspended on this host. On failure the domain may be suspended: the orchestration calls
	 * resume(). report may be NULL.
	 */
	int (*send_stream)(struct hv *hv, uint32_t domid, int fd, const struct mig_params *params,
	                   struct mig_report *report);
	/* Undo a suspend after a failed migration (libxl_domain_resume with suspend_cancel). */
	int (*resume)(struct hv *hv, uint32_t domid);
	/*
	 * Migration stream consumer: create a paused domain named name from the stream on fd and
	 * the sender's configuration JSON. On failure nothing is left behind.
	 */
	int (*receive_stream)(struct hv *hv, int fd, const char *name, const char *config_json,
	                      const struct mig_params *params, struct mig_report *report,
	                      uint32_t *domid_r);

	/* Optional operations: NULL when the backend does not support them. */

	/* A featureset of this host (see enum hv_featureset_kind). */
	int (*cpu_featureset)(struct hv *hv, enum hv_featureset_kind kind,
	                      struct hv_featureset *fs);
	/* The short name of CPU feature bit ("avx2"), or NULL when unknown. */
	const char *(*cpu_feature_name)(unsigned bit);
	/* The domain's virtual disks and their backends; caller frees *disks_r. */
	int (*disk_backends)(struct hv *hv, uint32_t domid, struct hv_disk **disks_r, size_t *n_r);
	/*
	 * The disk specs of a running domain, as its configuration would name them (the sim's
	 * own configuration; rebuilt from the xenstore backends on xen, see
	 * hv_disk_spec_from_backend). Free with hv_disk_specs_free.
	 */
	int (*disk_specs)(struct hv *hv, uint32_t domid, struct hv_disk_specs *specs);
	/*
	 * Sample the domain's dirtying with its dirty tracking (the sim: the kernel's; xen:
	 * log-dirty mode) for windows windows of
	 * window_ms (at most HV_SAMPLE_MAX_WINDOWS): the distinct pages dirtied in each, in all of
	 * them, and the pages that hold data, which a migration's first round sends. Tracking is
	 * switched off again on every path. NULL: the backend cannot (predict.h's model needs it).
	 */
	int (*sample_dirty)(struct hv *hv, uint32_t domid, unsigned window_ms, unsigned windows,
	                    struct hv_dirty_sample *s);
	/*
	 * Post-copy (migrate --mode postcopy|hybrid), on the destination: wait until the domain
	 * that receive_stream left running with pages still to come holds them all, or the phase
	 * failed (the domain is then paused for good). Fills report->postcopy; 0 when
	 * receive_stream started no such phase. NULL: the backend has no post-copy.
	 */
	int (*postcopy_end)(struct hv *hv, uint32_t domid, struct mig_report *report);
	/*
	 * The backend's own consistency check of a domain, one line of text in out (the sim
	 * verifies its memory image; with status_only it reports the domain's state).
	 */
	int (*domain_check)(struct hv *hv, uint32_t domid, bool status_only, char *out, size_t len);

	/*
	 * Capabilities: what differs between backends is said here, as data; callers never
	 * compare backend names.
	 */
	/* The guests' disks are written through dom0's kernel iSCSI initiator (blkback): a
	 * reservation key counts only on that session, so the hand-over runs on the disks'
	 * kernel block devices (SG_IO), not on iSCSI sessions of our own. */
	bool kernel_initiator;
	/* NULL when pre-copy runs in the project's engine with the requested policy; otherwise
	 * the name of what runs instead ("xen (libxenguest)"), whose policy the caller's
	 * options do not change. */
	const char *native_precopy;
	/* The tool that runs the commands xl-ext does not implement ("xl"), or NULL. */
	const char *fallback_tool;
};

/* The table of hypervisor backends built into this binary. */
extern const struct registry hv_registry;

/* Pick a backend by name (NULL: the default) and open it; logs why on failure. */
int hv_open_by_name(const char *name, struct loop *loop, const struct hv_ops **ops_r,
                    struct hv **hv_r);

/*
 * The registered backend called name (NULL: the default) without opening it, or NULL when it
 * is unknown or not built. For its capabilities.
 */
const struct hv_ops *hv_ops_by_name(const char *name);

/* Append a copy of spec; ERR_NOMEM. */
int hv_disk_specs_add(struct hv_disk_specs *specs, const char *spec);
void hv_disk_specs_free(struct hv_disk_specs *specs);

/*
 * The spec a disk backend stands for: vdev, access (a backend in mode "r" is read-only,
 * every other counts as writable, the safe side), script and target. Returns 0, or
 * ERR_INVAL when it does not fit in len.
 */
int hv_disk_spec_from_backend(const struct hv_disk *d, char *spec, size_t len);

const char *hv_type_name(enum hv_domain_type type);
int hv_type_parse(const char *s, enum hv_domain_type *type_r);

#endif
