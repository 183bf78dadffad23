/* Tests of the cluster message codec (haagent/msg.c): round trips and hostile input. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "haagent/msg.h"

static struct ha_guest_info sample_guests[2] = {
    {.name = "web1",
     .mem_mib = 2048,
     .dirty_mibps = 12,
     .type = HA_GUEST_PVH,
     .disks = "iscsi:iqn.2026-11.lab:web1,xvda,w",
     .preferred = {"n2", "n3"},
     .anti_affinity = "web",
     .fallback = HA_FALLBACK_COLD_RESTART,
     .owner = 1},
    {.name = "db",
     .mem_mib = 8192,
     .type = HA_GUEST_HVM,
     .owner = 2,
     .moving_to = 3,
     .requested_to = 1,
     .failures = 2},
};

static struct ha_node_info sample_nodes[2] = {
    {.nodeid = 1,
     .name = "n1",
     .state = HA_NODE_FAILING,
     .member = 1,
     .free_mib = 100,
     .reserve_mib = 1024,
     .outgoing = 1,
     .reason = "disk errors"},
    {.nodeid = 2, .name = "n2", .state = HA_NODE_STOPPING, .member = 1, .free_mib = 30000},
};

/* One message of every type. */
static struct ha_msg sample(enum ha_msg_type type)
{
	struct ha_msg m = {.type = type,
	                   .node = 3,
	                   .from = 1,
	                   .to = 2,
	                   .state = HA_NODE_FAILING,
	                   .err = ERR_TIMEOUT,
	                   .flags = HA_HELLO_SYNCED,
	                   .generation = 0x0102030405060708ull, /* every byte differs */
	                   .free_mib = 12345,
	                   .reserve_mib = 1024,
	                   .guest = "web1",
	                   .text = "operator request"};

	if (type == HA_MSG_HELLO || type == HA_MSG_SYNC || type == HA_MSG_UPDATE) {
		m.guests = sample_guests;
		m.nguests = 2;
	}
	if (type == HA_MSG_SYNC) {
		m.nodes = sample_nodes;
		m.nnodes = 2;
	}
	if (type == HA_MSG_SYNC || type == HA_MSG_GENERATION) {
		m.members[0] = 1;
		m.members[1] = 2;
		m.nmembers = 2;
	}
	return m;
}

static void test_round_trip_every_type(void **state)
{
	(void)state;
	for (int t = 1; t <= HA_MSG_TYPE_MAX; t++) {
		struct ha_msg m = sample((enum ha_msg_type)t), d;
		uint8_t *buf = NULL, *buf2 = NULL;
		size_t len = 0, len2 = 0;

		assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
		assert_int_equal(ha_msg_decode(buf, len, &d), 0);
		assert_int_equal(d.type, t);
		/* Canonical: re-encoding what was decoded gives the same bytes. */
		assert_int_equal(ha_msg_encode(&d, &buf2, &len2), 0);
		assert_int_equal(len, len2);
		assert_memory_equal(buf, buf2, len);
		if (t == HA_MSG_SYNC) {
			assert_int_equal(d.nnodes, 2);
			assert_string_equal(d.nodes[0].reason, "disk errors");
			assert_int_equal(d.nmembers, 2);
		}
		if (t == HA_MSG_UPDATE) {
			assert_string_equal(d.text, "operator request");
			assert_int_equal(d.free_mib, 12345);
			assert_int_equal(d.reserve_mib, 1024);
		}
		if (t == HA_MSG_HELLO || t == HA_MSG_SYNC || t == HA_MSG_UPDATE) {
			assert_int_equal(d.nguests, 2);
			assert_string_equal(d.guests[0].preferred[1], "n3");
			assert_int_equal(d.guests[1].moving_to, 3);
			assert_int_equal(d.guests[1].requested_to, 1);
		}
		if (t == HA_MSG_MIG_FAILED)
			assert_int_equal(d.err, ERR_TIMEOUT);
		if (t == HA_MSG_HELLO || t == HA_MSG_SYNC || t == HA_MSG_GENERATION)
			assert_true(d.generation == 0x0102030405060708ull);
		if (t == HA_MSG_GENERATION) {
			assert_int_equal(d.nmembers, 2);
			assert_int_equal(d.members[1], 2);
		}
		ha_msg_release(&d);
		free(buf);
		free(buf2);
	}
}

/* Every truncation of every message is refused. */
static void test_truncated(void **state)
{
	(void)state;
	for (int t = 1; t <= HA_MSG_TYPE_MAX; t++) {
		struct ha_msg m = sample((enum ha_msg_type)t), d;
		uint8_t *buf = NULL;
		size_t len = 0;

		assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
		for (size_t cut = 0; cut < len; cut++) {
			/* keep the header's length consistent, so the payload parser is hit */
			if (cut >= HA_MSG_HEADER) {
				size_t pl = cut - HA_MSG_HEADER;

				buf[8] = (uint8_t)(pl >> 24);
				buf[9] = (uint8_t)(pl >> 16);
				buf[10] = (uint8_t)(pl >> 8);
				buf[11] = (uint8_t)pl;
			}
			assert_int_equal(ha_msg_decode(buf, cut, &d), ERR_PROTO);
			assert_null(d.guests);
		}
		free(buf);
	}
}

/* Random bit flips and random bytes: refused, or decoded to a canonical message. */
static void test_random_garbage(void **state)
{
	unsigned seed = 6;
	size_t accepted = 0, refused = 0;

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		struct ha_msg m = sample((enum ha_msg_type)(1 + iter % HA_MSG_TYPE_MAX)), d;
		uint8_t *buf = NULL, *buf2 = NULL;
		size_t len = 0, len2 = 0;
		int flips = 1 + (int)(rand_r(&seed) % 4), rc;

		assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
		if (iter % 10 == 0) {
			for (size_t i = HA_MSG_HEADER; i < len; i++)
				buf[i] = (uint8_t)rand_r(&seed);
		} else {
			for (int f = 0; f < flips; f++) {
				size_t at = rand_r(&seed) % len;

				buf[at] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
			}
		}
		rc = ha_msg_decode(buf, len, &d);
		if (rc == 0) {
			accepted++;
			assert_int_equal(ha_msg_encode(&d, &buf2, &len2), 0);
			assert_int_equal(len2, len);
			assert_memory_equal(buf2, buf, len);
			free(buf2);
		} else {
			refused++;
			/* another protocol version is told apart from garbage */
			if (rc == ERR_NOTSUP)
				assert_int_not_equal(buf[4], HA_MSG_VERSION);
			else
				assert_int_equal(rc, ERR_PROTO);
		}
		ha_msg_release(&d);
		free(buf);
	}
	print_message("  garbage: %zu refused, %zu accepted as valid messages\n", refused,
	              accepted);
	assert_true(refused > 10000);
}

static void test_header_checks(void **state)
{
	struct ha_msg m = sample(HA_MSG_SET_STATE), d;
	uint8_t *buf = NULL, *big;
	size_t len = 0;

	(void)state;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
	assert_int_equal(ha_msg_decode(NULL, 0, &d), ERR_PROTO);
	buf[0] ^= 1; /* magic */
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
	buf[0] ^= 1;
	assert_int_equal(ha_msg_version(buf, len), HA_MSG_VERSION);
	assert_int_equal(ha_msg_version(buf, HA_MSG_HEADER - 1), 0);
	buf[4] = HA_MSG_VERSION - 1; /* an agent of the previous release */
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_NOTSUP);
	assert_null(d.guests);
	buf[4] = HA_MSG_VERSION + 1;
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_NOTSUP);
	buf[0] ^= 1; /* ... but a bad magic is garbage whatever the version */
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
	buf[0] ^= 1;
	buf[4] = HA_MSG_VERSION;
	buf[5] = 99; /* type */
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
	buf[5] = HA_MSG_SET_STATE;
	assert_int_equal(ha_msg_decode(buf, len, &d), 0);
	ha_msg_release(&d);
	/* trailing byte, with the header claiming it */
	big = calloc(1, HA_MSG_MAX + 16);
	assert_non_null(big);
	memcpy(big, buf, len);
	big[11]++;
	assert_int_equal(ha_msg_decode(big, len + 1, &d), ERR_PROTO);
	/* oversized */
	assert_int_equal(ha_msg_decode(big, HA_MSG_MAX + 1, &d), ERR_PROTO);
	free(big);
	free(buf);
}

/* A count far beyond the bytes present is refused before any allocation. */
static void test_count_bomb(void **state)
{
	struct ha_msg m = sample(HA_MSG_HELLO), d;
	uint8_t *buf = NULL;
	size_t len = 0, at;

	(void)state;
	m.nguests = 0;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
	at = len - 2; /* the u16 guest count is last */
	buf[at] = 0x00;
	buf[at + 1] = 0xff;
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
	buf[at] = 0xff;
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
	free(buf);
}

/* UPDATE: an unknown payload format, a count bomb and garbage after it are refused. */
static void test_update_format_and_bounds(void **state)
{
	struct ha_msg m = sample(HA_MSG_UPDATE), d;
	uint8_t *buf = NULL, *big = NULL;
	size_t len = 0, at;

	(void)state;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
	assert_int_equal(buf[HA_MSG_HEADER], HA_UPDATE_FORMAT);
	buf[HA_MSG_HEADER] = HA_UPDATE_FORMAT + 1;
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
	assert_null(d.guests);
	buf[HA_MSG_HEADER] = HA_UPDATE_FORMAT;
	assert_int_equal(ha_msg_decode(buf, len, &d), 0);
	ha_msg_release(&d);
	/* one trailing byte (header length kept consistent) */
	big = calloc(1, len + 1);
	assert_non_null(big);
	memcpy(big, buf, len);
	for (int i = 0; i < 4; i++)
		big[8 + i] = (uint8_t)((len + 1 - HA_MSG_HEADER) >> (8 * (3 - i)));
	assert_int_equal(ha_msg_decode(big, len + 1, &d), ERR_PROTO);
	free(big);
	free(buf);
	/* a guest count beyond the bytes present */
	m.nguests = 0;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
	at = len - 2;
	buf[at] = 0x00;
	buf[at + 1] = 0x40;
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
	free(buf);
	/* more guests than HA_MAX_GUESTS cannot even be encoded */
	m.nguests = HA_MAX_GUESTS + 1;
	m.guests = calloc(m.nguests, sizeof(*m.guests));
	assert_non_null(m.guests);
	for (size_t i = 0; i < m.nguests; i++)
		snprintf(m.guests[i].name, sizeof(m.guests[i].name), "g%zu", i);
	assert_int_equal(ha_msg_encode(&m, &buf, &len), ERR_INVAL);
	free(m.guests);
}

static void test_bad_strings_and_enums(void **state)
{
	struct ha_msg m = sample(HA_MSG_SET_STATE), d;
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	snprintf(m.text, sizeof(m.text), "line1\nline2");
	assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO); /* control character */
	free(buf);
	m = sample(HA_MSG_SET_STATE);
	m.state = 9;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), ERR_INVAL);
	assert_null(buf);
	m = sample(HA_MSG_MIG_START);
	m.guest[0] = '\0';
	assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO); /* guest name required */
	free(buf);
	m = sample(HA_MSG_HELLO);
	m.nguests = HA_MAX_GUESTS + 1;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), ERR_INVAL);
	m.type = (enum ha_msg_type)77;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), ERR_INVAL);
}

/*
 * Node states on the wire: every state up to the last (stopping, appended after fenced) goes
 * through SET_STATE and a SYNC's nodes; one past it is refused on both ends.
 */
static void test_node_state_bounds(void **state)
{
	struct ha_node_info nodes[1] = {{.nodeid = 1, .name = "n1", .member = 1}};
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	for (unsigned st = 0; st <= HA_NODE_STATE_COUNT; st++) {
		struct ha_msg m = sample(HA_MSG_SET_STATE), d;
		bool valid = st < HA_NODE_STATE_COUNT;

		m.state = (uint8_t)st;
		assert_int_equal(ha_msg_encode(&m, &buf, &len), valid ? 0 : ERR_INVAL);
		if (!valid)
			break;
		assert_int_equal(ha_msg_decode(buf, len, &d), 0);
		assert_int_equal(d.state, st);
		/* the state byte follows the u32 node: one more is refused */
		buf[HA_MSG_HEADER + 4] = HA_NODE_STATE_COUNT;
		assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
		free(buf);

		m = sample(HA_MSG_SYNC);
		nodes[0].state = (uint8_t)st;
		m.nodes = nodes;
		m.nnodes = 1;
		assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
		assert_int_equal(ha_msg_decode(buf, len, &d), 0);
		assert_int_equal(d.nodes[0].state, st);
		ha_msg_release(&d);
		free(buf);
	}
	assert_int_equal(HA_NODE_STOPPING, HA_NODE_STATE_COUNT - 1);
	nodes[0].state = HA_NODE_STATE_COUNT;
	{
		struct ha_msg m = sample(HA_MSG_SYNC);

		m.nodes = nodes;
		m.nnodes = 1;
		assert_int_equal(ha_msg_encode(&m, &buf, &len), ERR_INVAL);
	}
}

/* GENERATION: at least one member, at most HA_MAX_NODES, counts checked before reading. */
static void test_generation_bounds(void **state)
{
	struct ha_msg m = sample(HA_MSG_GENERATION), d;
	uint8_t *buf = NULL;
	size_t len = 0, at;

	(void)state;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
	/* header, u64 generation, u16 count, two u32 members: nothing else */
	assert_int_equal(len, HA_MSG_HEADER + 8 + 2 + 2 * 4);
	at = HA_MSG_HEADER + 8;
	buf[at + 1] = 3; /* three members announced, two present */
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
	buf[at] = 0xff; /* a count bomb */
	assert_int_equal(ha_msg_decode(buf, len, &d), ERR_PROTO);
	free(buf);
	/* no member at all vouches for nothing: not even encoded, and refused when sent */
	m.nmembers = 0;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), ERR_INVAL);
	m.nmembers = 1;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
	buf[HA_MSG_HEADER + 8 + 1] = 0;
	for (int i = 0; i < 4; i++) /* drop the member, header length kept consistent */
		buf[8 + i] = (uint8_t)((len - 4 - HA_MSG_HEADER) >> (8 * (3 - i)));
	assert_int_equal(ha_msg_decode(buf, len - 4, &d), ERR_PROTO);
	free(buf);
	m.nmembers = HA_MAX_NODES + 1;
	assert_int_equal(ha_msg_encode(&m, &buf, &len), ERR_INVAL);
}

/* The largest legal SYNC (every node, every guest, every field full) fits HA_MSG_MAX. */
static void test_largest_sync_fits(void **state)
{
	struct ha_msg m = {.type = HA_MSG_SYNC, .nmembers = HA_MAX_NODES}, d;
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	m.nodes = calloc(HA_MAX_NODES, sizeof(*m.nodes));
	m.guests = calloc(HA_MAX_GUESTS, sizeof(*m.guests));
	assert_non_null(m.nodes);
	assert_non_null(m.guests);
	m.nnodes = HA_MAX_NODES;
	m.nguests = HA_MAX_GUESTS;
	for (size_t i = 0; i < HA_MAX_NODES; i++) {
		m.members[i] = (uint32_t)i + 1;
		m.nodes[i].nodeid = (uint32_t)i + 1;
		memset(m.nodes[i].name, 'n', HA_NAME_MAX - 1);
		memset(m.nodes[i].reason, 'r', HA_REASON_MAX - 1);
	}
	for (size_t i = 0; i < HA_MAX_GUESTS; i++) {
		memset(m.guests[i].name, 'g', HA_NAME_MAX - 1);
		memset(m.guests[i].disks, 'd', HA_DISKS_MAX - 1);
		for (int p = 0; p < HA_MAX_PREFERRED; p++)
			memset(m.guests[i].preferred[p], 'p', HA_NAME_MAX - 1);
		memset(m.guests[i].anti_affinity, 'a', HA_NAME_MAX - 1);
	}
	assert_int_equal(ha_msg_encode(&m, &buf, &len), 0);
	print_message("  largest sync: %zu bytes (max %d)\n", len, HA_MSG_MAX);
	assert_int_equal(ha_msg_decode(buf, len, &d), 0);
	ha_msg_release(&d);
	free(buf);
	free(m.nodes);
	free(m.guests);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_every_type),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_update_format_and_bounds),
	    cmocka_unit_test(test_random_garbage),
	    cmocka_unit_test(test_header_checks),
	    cmocka_unit_test(test_count_bomb),
	    cmocka_unit_test(test_bad_strings_and_enums),
	    cmocka_unit_test(test_node_state_bounds),
	    cmocka_unit_test(test_generation_bounds),
	    cmocka_unit_test(test_largest_sync_fits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
