/*
 * msg.c - encode and decode haagent's cluster messages (format in msg.h).
 *
 * One field list per record serves both directions: a struct codec either writes the field
 * or reads and checks it, so the encoder and the decoder cannot drift apart.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "haagent/msg.h"

struct codec {
	bool decoding;
	uint8_t *buf; /* encode: growing buffer; decode: the input (read only) */
	size_t len;   /* bytes used (encode) / available (decode) */
	size_t cap;
	size_t off; /* decode position */
	int err;
};

/* The smallest encoding of one record, to bound counts before allocating. */
#define GUEST_MIN_BYTES (8 + 4 + 1 + 2 * (2 + HA_MAX_PREFERRED) + 1 + 4 + 4 + 1 + 1 + 2 + 4)
#define NODE_MIN_BYTES  (4 + 2 + 1 + 1 + 8 + 8 + 1 + 1 + 2)

const char *ha_msg_type_name(enum ha_msg_type type)
{
	static const char *const names[] = {
	    "?",
	    "hello",
	    "set-state",
	    "migration-started",
	    "migration-done",
	    "migration-failed",
	    "fenced",
	    "restart-started",
	    "guest-restarted",
	    "guest-stopped",
	    "sync",
	    "migrate-request",
	    "update",
	    "fence-failed",
	    "generation",
	};

	return (unsigned)type <= HA_MSG_TYPE_MAX ? names[type] : "?";
}

static void put_bytes(struct codec *c, const void *p, size_t n)
{
	if (c->err)
		return;
	if (c->len + n > HA_MSG_MAX) {
		c->err = ERR_INVAL;
		return;
	}
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		uint8_t *nb;

		while (cap < c->len + n)
			cap *= 2;
		nb = realloc(c->buf, cap);
		if (!nb) {
			c->err = ERR_NOMEM;
			return;
		}
		c->buf = nb;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

static const uint8_t *get_bytes(struct codec *c, size_t n)
{
	const uint8_t *p;

	if (c->err || n > c->len - c->off) {
		c->err = ERR_PROTO;
		return NULL;
	}
	p = c->buf + c->off;
	c->off += n;
	return p;
}

static void cd_uint(struct codec *c, uint64_t *v, size_t width)
{
	uint8_t b[8];

	if (c->decoding) {
		const uint8_t *p = get_bytes(c, width);

		*v = 0;
		for (size_t i = 0; p && i < width; i++)
			*v = (*v << 8) | p[i];
		return;
	}
	for (size_t i = 0; i < width; i++)
		b[i] = (uint8_t)(*v >> (8 * (width - 1 - i)));
	put_bytes(c, b, width);
}

static void cd_u8(struct codec *c, uint8_t *v, uint8_t max)
{
	uint64_t x = *v;

	cd_uint(c, &x, 1);
	if (x > max && !c->err)
		c->err = c->decoding ? ERR_PROTO : ERR_INVAL;
	*v = (uint8_t)x;
}

static void cd_u32(struct codec *c, uint32_t *v)
{
	uint64_t x = *v;

	cd_uint(c, &x, 4);
	*v = (uint32_t)x;
}

static void cd_u64(struct codec *c, uint64_t *v)
{
	cd_uint(c, v, 8);
}

/* A string field of size cap: u16 length, then bytes; printable, shorter than cap. */
static void cd_str(struct codec *c, char *s, size_t cap)
{
	uint64_t n = c->decoding ? 0 : strnlen(s, cap);
	const uint8_t *p;

	cd_uint(c, &n, 2);
	if (c->err)
		return;
	if (n >= cap) {
		c->err = c->decoding ? ERR_PROTO : ERR_INVAL;
		return;
	}
	if (!c->decoding) {
		put_bytes(c, s, n);
		return;
	}
	p = get_bytes(c, n);
	if (!p)
		return;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f) {
			c->err = ERR_PROTO;
			return;
		}
	}
	memcpy(s, p, n);
	s[n] = '\0';
}

static void cd_guest(struct codec *c, struct ha_guest_info *g)
{
	cd_str(c, g->name, sizeof(g->name));
	cd_u64(c, &g->mem_mib);
	cd_u32(c, &g->dirty_mibps);
	cd_u8(c, &g->type, HA_GUEST_HVM);
	cd_str(c, g->disks, sizeof(g->disks));
	for (int i = 0; i < HA_MAX_PREFERRED; i++)
		cd_str(c, g->preferred[i], sizeof(g->preferred[i]));
	cd_str(c, g->anti_affinity, sizeof(g->anti_affinity));
	cd_u8(c, &g->fallback, HA_FALLBACK_COLD_RESTART);
	cd_u32(c, &g->owner);
	cd_u32(c, &g->moving_to);
	cd_u8(c, &g->stopped, 1);
	cd_u8(c, &g->failures, 255);
	cd_u32(c, &g->requested_to);
	if (c->decoding && !c->err && !g->name[0])
		c->err = ERR_PROTO;
}

static void cd_node(struct codec *c, struct ha_node_info *n)
{
	cd_u32(c, &n->nodeid);
	cd_str(c, n->name, sizeof(n->name));
	cd_u8(c, &n->state, HA_NODE_STATE_COUNT - 1);
	cd_u8(c, &n->member, 1);
	cd_u64(c, &n->free_mib);
	cd_u64(c, &n->reserve_mib);
	cd_u8(c, &n->outgoing, 255);
	cd_u8(c, &n->incoming, 255);
	cd_str(c, n->reason, sizeof(n->reason));
	if (c->decoding && !c->err && n->nodeid == 0)
		c->err = ERR_PROTO;
}

/* A counted array: the count, bounded by max and by the bytes left, then the records. */
static void cd_count(struct codec *c, size_t *n, size_t max, size_t min_bytes)
{
	uint64_t x = *n;

	cd_uint(c, &x, 2);
	if (c->err)
		return;
	if (x > max || (c->decoding && x * min_bytes > c->len - c->off)) {
		c->err = c->decoding ? ERR_PROTO : ERR_INVAL;
		return;
	}
	*n = (size_t)x;
}

static void cd_guests(struct codec *c, struct ha_msg *m)
{
	cd_count(c, &m->nguests, HA_MAX_GUESTS, GUEST_MIN_BYTES);
	if (c->err)
		return;
	if (c->decoding && m->nguests) {
		m->guests = calloc(m->nguests, sizeof(*m->guests));
		if (!m->guests) {
			c->err = ERR_NOMEM;
			return;
		}
	}
	for (size_t i = 0; i < m->nguests && !c->err; i++)
		cd_guest(c, &m->guests[i]);
}

static void cd_nodes(struct codec *c, struct ha_msg *m)
{
	cd_count(c, &m->nnodes, HA_MAX_NODES, NODE_MIN_BYTES);
	if (c->err)
		return;
	if (c->decoding && m->nnodes) {
		m->nodes = calloc(m->nnodes, sizeof(*m->nodes));
		if (!m->nodes) {
			c->err = ERR_NOMEM;
			return;
		}
	}
	for (size_t i = 0; i < m->nnodes && !c->err; i++)
		cd_node(c, &m->nodes[i]);
}

/* The membership a SYNC or GENERATION was sent for: a count of at least min, then nodeids. */
static void cd_members(struct codec *c, struct ha_msg *m, size_t min)
{
	cd_count(c, &m->nmembers, HA_MAX_NODES, 4);
	if (!c->err && m->nmembers < min)
		c->err = c->decoding ? ERR_PROTO : ERR_INVAL;
	for (size_t i = 0; i < m->nmembers && !c->err; i++)
		cd_u32(c, &m->members[i]);
}

static void cd_payload(struct codec *c, struct ha_msg *m)
{
	switch (m->type) {
	case HA_MSG_HELLO:
		cd_str(c, m->text, sizeof(m->text));
		cd_u64(c, &m->free_mib);
		cd_u64(c, &m->reserve_mib);
		cd_u8(c, &m->flags, HA_HELLO_SYNCED | HA_HELLO_QUORATE | HA_HELLO_STALE);
		cd_u64(c, &m->generation);
		cd_guests(c, m);
		break;
	case HA_MSG_UPDATE: {
		uint8_t format = HA_UPDATE_FORMAT;

		cd_u8(c, &format, 255);
		if (c->decoding && !c->err && format != HA_UPDATE_FORMAT)
			c->err = ERR_PROTO; /* a report format this node does not know */
		cd_str(c, m->text, sizeof(m->text));
		cd_u64(c, &m->free_mib);
		cd_u64(c, &m->reserve_mib);
		cd_guests(c, m);
		break;
	}
	case HA_MSG_SET_STATE:
		cd_u32(c, &m->node);
		cd_u8(c, &m->state, HA_NODE_STATE_COUNT - 1);
		cd_str(c, m->text, sizeof(m->text));
		break;
	case HA_MSG_FENCED:
	case HA_MSG_FENCE_FAILED:
		cd_u32(c, &m->node);
		cd_str(c, m->text, sizeof(m->text));
		break;
	case HA_MSG_MIG_START:
	case HA_MSG_MIG_DONE:
	case HA_MSG_MIG_FAILED:
	case HA_MSG_RESTART_START:
	case HA_MSG_GUEST_RESTARTED:
	case HA_MSG_GUEST_STOPPED:
	case HA_MSG_MIGRATE_REQUEST: {
		uint32_t err = (uint32_t)m->err;

		cd_str(c, m->guest, sizeof(m->guest));
		cd_u32(c, &m->from);
		cd_u32(c, &m->to);
		cd_u32(c, &err);
		m->err = (int32_t)err;
		cd_str(c, m->text, sizeof(m->text));
		if (c->decoding && !c->err && !m->guest[0])
			c->err = ERR_PROTO;
		break;
	}
	case HA_MSG_SYNC:
		cd_members(c, m, 0);
		cd_u64(c, &m->generation);
		cd_nodes(c, m);
		cd_guests(c, m);
		break;
	case HA_MSG_GENERATION:
		cd_u64(c, &m->generation);
		cd_members(c, m, 1); /* the sender at least */
		break;
	default:
		c->err = c->decoding ? ERR_PROTO : ERR_INVAL;
	}
}

int ha_msg_encode(const struct ha_msg *m, uint8_t **buf_r, size_t *len_r)
{
	struct codec c = {0};
	struct ha_msg copy = *m; /* the codec's field functions take non-const pointers */
	uint64_t magic = HA_MSG_MAGIC, version = HA_MSG_VERSION, type = m->type, zero = 0, len = 0;
	int rc;

	*buf_r = NULL;
	*len_r = 0;
	cd_uint(&c, &magic, 4);
	cd_uint(&c, &version, 1);
	cd_uint(&c, &type, 1);
	cd_uint(&c, &zero, 2);
	cd_uint(&c, &len, 4);
	cd_payload(&c, &copy);
	rc = c.err;
	if (rc < 0)
		goto out;
	len = c.len - HA_MSG_HEADER;
	for (int i = 0; i < 4; i++)
		c.buf[8 + i] = (uint8_t)(len >> (8 * (3 - i)));
	*buf_r = c.buf;
	*len_r = c.len;
	c.buf = NULL;
out:
	free(c.buf);
	return rc;
}

unsigned ha_msg_version(const void *buf, size_t len)
{
	return buf && len >= HA_MSG_HEADER ? ((const uint8_t *)buf)[4] : 0;
}

void ha_msg_release(struct ha_msg *m)
{
	free(m->nodes);
	free(m->guests);
	memset(m, 0, sizeof(*m));
}

int ha_msg_decode(const void *buf, size_t len, struct ha_msg *m)
{
	struct codec c = {.decoding = true, .buf = (uint8_t *)buf, .len = len};
	uint64_t magic = 0, version = 0, type = 0, zero = 0, plen = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	if (!buf || len < HA_MSG_HEADER || len > HA_MSG_MAX)
		return ERR_PROTO;
	cd_uint(&c, &magic, 4);
	cd_uint(&c, &version, 1);
	cd_uint(&c, &type, 1);
	cd_uint(&c, &zero, 2);
	cd_uint(&c, &plen, 4);
	if (magic == HA_MSG_MAGIC && version != HA_MSG_VERSION) {
		rc = ERR_NOTSUP; /* another release's agent: the caller says so */
		goto out;
	}
	if (magic != HA_MSG_MAGIC || type == 0 || type > HA_MSG_TYPE_MAX || zero != 0 ||
	    plen != len - HA_MSG_HEADER) {
		rc = ERR_PROTO;
		goto out;
	}
	m->type = (enum ha_msg_type)type;
	cd_payload(&c, m);
	rc = c.err;
	if (rc == 0 && c.off != len)
		rc = ERR_PROTO; /* trailing bytes */
out:
	if (rc < 0)
		ha_msg_release(m);
	return rc;
}
