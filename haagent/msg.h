/*
 * msg.h - haagent's cluster messages and their versioned, bounded binary codec.
 *
 * Every message sent through the cluster (CPG, agreed order) is one of these. Wire format,
 * all integers big-endian:
 *
 *   header  u32 magic "HAAG" | u8 version (2) | u8 type | u16 zero | u32 payload length
 *   payload fields in the order of the type (msg.c), strings as u16 length + bytes
 *           (no NUL, no control characters, shorter than their field), counts checked
 *           against the bytes left before anything is allocated
 *
 * A message is at most HA_MSG_MAX bytes; decode rejects a bad magic, an unknown type, a
 * length that does not match, out-of-range enums and trailing bytes, with ERR_PROTO, so any
 * garbage a peer (or a fuzzer) sends is refused without side effects. A well-formed header
 * of another version is refused with ERR_NOTSUP (an agent of another release: version 2
 * added the view generation to HELLO and SYNC, and GENERATION).
 */
#ifndef XLEXT_HAAGENT_MSG_H
#define XLEXT_HAAGENT_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "haagent/planner.h"

#define HA_MSG_MAGIC   0x48414147u /* "HAAG" */
#define HA_MSG_VERSION 2
#define HA_MSG_HEADER  12
#define HA_MSG_MAX     (256 * 1024)
#define HA_MAX_NODES   32
#define HA_MAX_GUESTS  256
#define HA_DISKS_MAX   256

enum ha_msg_type {
	HA_MSG_HELLO = 1,            /* a node's own facts: name, memory, its guests */
	HA_MSG_SET_STATE = 2,        /* mark-failing [--cold], draining, clear (state ok) */
	HA_MSG_MIG_START = 3,        /* source claims a planned live migration */
	HA_MSG_MIG_DONE = 4,         /* guest now runs on the target */
	HA_MSG_MIG_FAILED = 5,       /* guest still runs on the source */
	HA_MSG_FENCED = 6,           /* fence command succeeded on a down node */
	HA_MSG_RESTART_START = 7,    /* target claims a planned cold restart */
	HA_MSG_GUEST_RESTARTED = 8,  /* cold restart done: guest runs on the target */
	HA_MSG_GUEST_STOPPED = 9,    /* owner shut the guest down for a cold restart */
	HA_MSG_SYNC = 10,            /* state transfer to joining nodes */
	HA_MSG_MIGRATE_REQUEST = 11, /* operator: live-migrate guest to a node (ctl migrate) */
	HA_MSG_UPDATE = 12,          /* a node's own facts again, between sync rounds */
	HA_MSG_FENCE_FAILED = 13,    /* fencing a down node failed: an event, the node stays down */
	HA_MSG_GENERATION = 14,      /* a quorate member confirms the view in its membership */
	HA_MSG_TYPE_MAX = 14
};

enum ha_guest_type {
	HA_GUEST_PV = 0,
	HA_GUEST_PVH = 1,
	HA_GUEST_HVM = 2,
};

#define HA_HELLO_SYNCED  0x1 /* the sender holds the replicated state */
#define HA_HELLO_QUORATE 0x2 /* the sender's partition was quorate */
#define HA_HELLO_STALE   0x4 /* kept a view across a lost connection: used if none is synced */

/*
 * UPDATE payload format (a byte of its own, so the report can grow without a new header
 * version): 1 = name, free and reserved memory, then the guests. A guest with stopped = 0
 * runs on the sender; stopped = 1 means "my view says I own it, but it no longer runs here".
 */
#define HA_UPDATE_FORMAT 1

/* A guest as replicated: its configuration and where it runs. */
struct ha_guest_info {
	char name[HA_NAME_MAX];
	uint64_t mem_mib;
	uint32_t dirty_mibps;
	uint8_t type; /* enum ha_guest_type */
	char disks[HA_DISKS_MAX];
	char preferred[HA_MAX_PREFERRED][HA_NAME_MAX];
	char anti_affinity[HA_NAME_MAX];
	uint8_t fallback; /* enum ha_fallback */
	uint32_t owner;
	uint32_t moving_to; /* target of a migration or restart in flight */
	uint8_t stopped;
	uint8_t failures;
	uint32_t requested_to; /* operator asked to move it there (ctl migrate), 0 if not */
	/*
	 * Local, not replicated (not encoded): its owner has reported it running since it became
	 * the owner. Unset by a migration's or restart's end, set by the owner's next report.
	 */
	uint8_t reported;
};

/* A node as replicated. */
struct ha_node_info {
	uint32_t nodeid;
	char name[HA_NAME_MAX];
	uint8_t state; /* enum ha_node_state */
	uint8_t member;
	uint64_t free_mib;
	uint64_t reserve_mib;
	uint8_t outgoing, incoming;
	char reason[HA_REASON_MAX];
};

struct ha_msg {
	enum ha_msg_type type;
	uint32_t node;                  /* SET_STATE, FENCED */
	uint32_t from, to;              /* MIG_*, RESTART_START, GUEST_RESTARTED, GUEST_STOPPED */
	uint8_t state;                  /* SET_STATE */
	int32_t err;                    /* MIG_FAILED */
	uint8_t flags;                  /* HELLO: HA_HELLO_* */
	uint64_t generation;            /* HELLO: the sender's view's; SYNC: the view's;
	                                 * GENERATION: the one to advance from */
	uint64_t free_mib;              /* HELLO, UPDATE */
	uint64_t reserve_mib;           /* HELLO, UPDATE */
	char guest[HA_NAME_MAX];        /* MIG_*, RESTART_*, GUEST_* */
	char text[HA_REASON_MAX];       /* reason; HELLO, UPDATE: the node's name */
	uint32_t members[HA_MAX_NODES]; /* SYNC, GENERATION: the membership it was sent for */
	size_t nmembers;
	struct ha_node_info *nodes; /* SYNC */
	size_t nnodes;
	struct ha_guest_info *guests; /* HELLO, UPDATE (owner = sender), SYNC */
	size_t nguests;
};

/*
 * Encode m into a new buffer (*buf_r, caller frees) of *len_r bytes. ERR_INVAL when a field
 * is out of range or the message would exceed HA_MSG_MAX, ERR_NOMEM.
 */
int ha_msg_encode(const struct ha_msg *m, uint8_t **buf_r, size_t *len_r);

/*
 * Decode exactly len bytes into *m (arrays allocated; release with ha_msg_release()).
 * Returns 0, ERR_PROTO for anything malformed, ERR_NOTSUP for a message of another protocol
 * version (m is then empty), ERR_NOMEM.
 */
int ha_msg_decode(const void *buf, size_t len, struct ha_msg *m);

/* The version byte of a message's header (0 when buf is too short to hold one). */
unsigned ha_msg_version(const void *buf, size_t len);

/* Free the arrays a decoded message owns and zero it. */
void ha_msg_release(struct ha_msg *m);

/* "hello", "set-state", ... */
const char *ha_msg_type_name(enum ha_msg_type type);

#endif
