/*
 * Tests of the direct transport's key files, addresses and mutual challenge-response
 * (xl-ext/transport.c): both roles run for real, in two threads over a socketpair, and a
 * scripted peer plays every way of getting it wrong.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "xl-ext/migration/transport.h"

static struct tr_key key_a, key_b;
static struct log_sink *capture;

static void make_key(struct tr_key *k, uint8_t fill)
{
	memset(k, 0, sizeof(*k));
	k->len = 32;
	memset(k->bytes, fill, k->len);
}

struct receiver_run {
	int fd;
	const struct tr_key *key;
	uint32_t flags;
	int rc;
};

static void *receiver_thread(void *arg)
{
	struct receiver_run *r = arg;

	r->rc = tr_auth_receiver(r->fd, r->key, "sender", &r->flags);
	return NULL;
}

/* Run both sides; returns the sender's result, the receiver's in *recv_rc. */
static int run_pair(const struct tr_key *sk, const struct tr_key *rk, uint32_t flags, int *recv_rc,
                    uint32_t *recv_flags)
{
	struct receiver_run r = {.key = rk};
	pthread_t t;
	int sv[2], rc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, receiver_thread, &r), 0);
	rc = tr_auth_sender(sv[0], sk, "receiver", flags);
	if (rc)
		close(sv[0]); /* a rejected sender hangs up, as migrate does */
	pthread_join(t, NULL);
	if (!rc)
		close(sv[0]);
	close(sv[1]);
	*recv_rc = r.rc;
	if (recv_flags)
		*recv_flags = r.flags;
	return rc;
}

static void test_same_key_both_sides_agree(void **state)
{
	uint32_t flags = 0;
	int rrc;

	(void)state;
	assert_int_equal(run_pair(&key_a, &key_a, TR_FLAG_PAUSED | TR_FLAG_DEBUG, &rrc, &flags), 0);
	assert_int_equal(rrc, 0);
	assert_int_equal(flags, TR_FLAG_PAUSED | TR_FLAG_DEBUG);
}

static void test_wrong_key_rejected_by_receiver(void **state)
{
	int rrc;

	(void)state;
	log_capture_clear(capture);
	assert_int_equal(run_pair(&key_b, &key_a, 0, &rrc, NULL), ERR_AUTH);
	assert_int_equal(rrc, ERR_AUTH);
	/* both ends say what happened */
	assert_true(log_capture_contains(capture, "rejected migration sender sender: wrong key"));
	assert_true(log_capture_contains(capture, "receiver rejected our key"));
}

static void test_prefix_of_key_is_another_key(void **state)
{
	struct tr_key shorter = key_a;
	int rrc;

	(void)state;
	shorter.len = 31;
	assert_int_equal(run_pair(&shorter, &key_a, 0, &rrc, NULL), ERR_AUTH);
	assert_int_equal(rrc, ERR_AUTH);
}

/* A scripted receiver: sends magic + nonce, reads the 84-byte proof, answers reply. */
struct fake_receiver {
	int fd;
	const uint8_t *magic;
	const uint8_t *reply;
	size_t reply_len;
	uint8_t proof[16 + 32 + 4 + 32];
	int got;
};

static void *fake_receiver_thread(void *arg)
{
	struct fake_receiver *f = arg;
	uint8_t hello[48];

	memcpy(hello, f->magic, 16);
	memset(hello + 16, 0x5a, 32);
	fd_write_exact(f->fd, hello, sizeof(hello));
	f->got = fd_read_exact(f->fd, f->proof, sizeof(f->proof)) == 0;
	if (f->reply_len)
		fd_write_exact(f->fd, f->reply, f->reply_len);
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

static int run_fake_receiver(struct fake_receiver *f)
{
	pthread_t t;
	int sv[2], rc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, fake_receiver_thread, f), 0);
	rc = tr_auth_sender(sv[0], &key_a, "fake", TR_FLAG_PAUSED);
	close(sv[0]);
	pthread_join(t, NULL);
	close(sv[1]);
	return rc;
}

static const uint8_t good_magic[16] = "xl-ext auth 1\n\0";

static void test_receiver_without_key_cannot_fake_acceptance(void **state)
{
	uint8_t reply[33] = {0}; /* "accepted" with an all-zero proof */
	struct fake_receiver f = {.magic = good_magic, .reply = reply, .reply_len = sizeof(reply)};

	(void)state;
	assert_int_equal(run_fake_receiver(&f), ERR_AUTH);
	assert_true(f.got);
	/* the proof carries the flags in clear, big-endian, inside the MAC */
	assert_memory_equal(f.proof, good_magic, 16);
	assert_int_equal(f.proof[48 + 3], TR_FLAG_PAUSED);
}

static void test_foreign_peer_is_protocol_error(void **state)
{
	static const uint8_t other[16] = "SSH-2.0-OpenSSH_";
	struct fake_receiver f = {.magic = other};

	(void)state;
	assert_int_equal(run_fake_receiver(&f), ERR_PROTO);
	assert_false(f.got); /* nothing was sent to it */
}

/* Another version of the transport: refused before anything is sent, both versions named. */
static void test_other_version_is_named(void **state)
{
	static const uint8_t v2[16] = "xl-ext auth 2\n\0";
	static const uint8_t v12[16] = "xl-ext auth 12\n";
	static const uint8_t garbled[16] = "xl-ext auth \xff\xff\xff\xff";
	struct fake_receiver f = {.magic = v2};

	(void)state;
	log_capture_clear(capture);
	assert_int_equal(run_fake_receiver(&f), ERR_PROTO);
	assert_false(f.got);
	assert_true(log_capture_contains(capture,
	                                 "migration receiver fake speaks version 2 of "
	                                 "xl-ext's authenticated migration transport; "
	                                 "this xl-ext (" PACKAGE_VERSION ") speaks version 1"));
	f = (struct fake_receiver){.magic = v12};
	assert_int_equal(run_fake_receiver(&f), ERR_PROTO);
	assert_true(log_capture_contains(capture, "speaks version 12 of"));
	f = (struct fake_receiver){.magic = garbled};
	assert_int_equal(run_fake_receiver(&f), ERR_PROTO);
	assert_true(log_capture_contains(capture, "speaks version (unreadable) of"));
	/* the receiver names a sender of another version the same way */
	{
		struct receiver_run r = {.key = &key_a};
		uint8_t hello[48], proof[84];
		pthread_t t;
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		r.fd = sv[1];
		assert_int_equal(pthread_create(&t, NULL, receiver_thread, &r), 0);
		assert_int_equal(fd_read_exact(sv[0], hello, sizeof(hello)), 0);
		memcpy(proof, v2, 16);
		memset(proof + 16, 0x11, sizeof(proof) - 16);
		assert_int_equal(fd_write_exact(sv[0], proof, sizeof(proof)), 0);
		pthread_join(t, NULL);
		assert_int_equal(r.rc, ERR_PROTO);
		assert_true(
		    log_capture_contains(capture, "migration sender sender speaks version 2"));
		close(sv[0]);
		close(sv[1]);
	}
}

static void test_rejection_and_hangup(void **state)
{
	uint8_t no = 1;
	struct fake_receiver rejecting = {.magic = good_magic, .reply = &no, .reply_len = 1};
	struct fake_receiver hanging_up = {.magic = good_magic};

	(void)state;
	assert_int_equal(run_fake_receiver(&rejecting), ERR_AUTH);
	assert_int_equal(run_fake_receiver(&hanging_up), ERR_IO);
}

/* A scripted sender against the real receiver: a proof of random bytes. */
static void test_receiver_refuses_garbage_proof(void **state)
{
	struct receiver_run r = {.key = &key_a};
	uint8_t hello[48], proof[84], verdict;
	pthread_t t;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, receiver_thread, &r), 0);
	assert_int_equal(fd_read_exact(sv[0], hello, sizeof(hello)), 0);
	assert_memory_equal(hello, good_magic, 16);
	memcpy(proof, good_magic, 16);
	memset(proof + 16, 0x11, sizeof(proof) - 16);
	assert_int_equal(fd_write_exact(sv[0], proof, sizeof(proof)), 0);
	assert_int_equal(fd_read_exact(sv[0], &verdict, 1), 0);
	assert_int_equal(verdict, 1);
	pthread_join(t, NULL);
	assert_int_equal(r.rc, ERR_AUTH);
	close(sv[0]);
	close(sv[1]);
}

/* A relay between a real sender and a real receiver that sets the "paused" flag in transit. */
struct relay {
	int to_sender, to_receiver;
};

static void *relay_thread(void *arg)
{
	struct relay *r = arg;
	uint8_t hello[48], proof[84], verdict;

	if (fd_read_exact(r->to_receiver, hello, sizeof(hello)) ||
	    fd_write_exact(r->to_sender, hello, sizeof(hello)) ||
	    fd_read_exact(r->to_sender, proof, sizeof(proof)))
		return NULL;
	proof[48 + 3] ^= TR_FLAG_PAUSED;
	if (fd_write_exact(r->to_receiver, proof, sizeof(proof)) ||
	    fd_read_exact(r->to_receiver, &verdict, 1))
		return NULL;
	fd_write_exact(r->to_sender, &verdict, 1);
	shutdown(r->to_sender, SHUT_WR);
	return NULL;
}

static void test_flags_changed_in_transit_are_refused(void **state)
{
	struct receiver_run rr = {.key = &key_a};
	struct relay relay;
	pthread_t tr, tl;
	int a[2], b[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	relay.to_sender = a[1];
	relay.to_receiver = b[0];
	rr.fd = b[1];
	assert_int_equal(pthread_create(&tr, NULL, receiver_thread, &rr), 0);
	assert_int_equal(pthread_create(&tl, NULL, relay_thread, &relay), 0);
	assert_int_equal(tr_auth_sender(a[0], &key_a, "relay", 0), ERR_AUTH);
	pthread_join(tl, NULL);
	pthread_join(tr, NULL);
	assert_int_equal(rr.rc, ERR_AUTH);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
}

static char tmpdir[] = "/tmp/test_transport.XXXXXX";

static const char *write_key_file(const char *name, size_t len, unsigned mode)
{
	static char path[256];
	uint8_t buf[8192];

	memset(buf, 0x42, sizeof(buf));
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	assert_int_equal(file_write_atomic_volatile(path, buf, len, mode), 0);
	chmod(path, mode);
	return path;
}

static void test_key_file_rules(void **state)
{
	struct tr_key k;

	(void)state;
	assert_int_equal(tr_key_load(write_key_file("ok", 32, 0600), &k), 0);
	assert_int_equal(k.len, 32);
	assert_int_equal(tr_key_load(write_key_file("ro", 16, 0400), &k), 0);
	assert_int_equal(tr_key_load(write_key_file("max", TR_KEY_MAX, 0600), &k), 0);
	assert_int_equal(tr_key_load(write_key_file("group", 32, 0640), &k), ERR_PERM);
	assert_int_equal(tr_key_load(write_key_file("world", 32, 0604), &k), ERR_PERM);
	assert_int_equal(tr_key_load(write_key_file("short", 15, 0600), &k), ERR_INVAL);
	assert_int_equal(k.len, 0);
	assert_int_equal(tr_key_load(write_key_file("long", TR_KEY_MAX + 1, 0600), &k), ERR_INVAL);
	assert_int_equal(tr_key_load(write_key_file("empty", 0, 0600), &k), ERR_INVAL);
	assert_int_equal(tr_key_load(tmpdir, &k), ERR_INVAL); /* a directory */
	assert_int_not_equal(tr_key_load("/nonexistent/key", &k), 0);
	if (geteuid() == 0) { /* a key another user owns is not ours to trust */
		const char *p = write_key_file("other", 32, 0600);

		assert_int_equal(chown(p, 4242, 0), 0);
		assert_int_equal(tr_key_load(p, &k), ERR_PERM);
	}
}

static void test_addresses(void **state)
{
	static const char *good[] = {"127.0.0.1:8002", "[::1]:1", "10.77.0.2:65535",
	                             "localhost:22"};
	static const char *bad[] = {"127.0.0.1",       "127.0.0.1:",    ":8002",    "127.0.0.1:0",
	                            "127.0.0.1:65536", "127.0.0.1:80x", "::1:8002", "[::1]8002",
	                            "[::1:8002",       "1.2.3.4:-1",    ""};
	struct sockaddr_storage ss;
	socklen_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(tr_parse_addr(good[i], &ss, &len), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (tr_parse_addr(bad[i], &ss, &len) != ERR_INVAL)
			fail_msg("'%s' was accepted", bad[i]);
	}
}

static void test_listen_connect_loopback(void **state)
{
	char peer[96];
	int l, c, a;

	(void)state;
	c = tr_connect("127.0.0.1:1", 2000);
	assert_true(c < 0); /* nothing listens on port 1 */
	l = tr_listen("127.0.0.1:47911");
	if (l < 0)
		skip();
	c = tr_connect("127.0.0.1:47911", 2000);
	assert_true(c >= 0);
	a = tr_accept(l, 2000, peer, sizeof(peer));
	assert_true(a >= 0);
	assert_true(!strncmp(peer, "127.0.0.1:", 10));
	assert_int_equal(tr_accept(l, 50, peer, sizeof(peer)), ERR_TIMEOUT);
	close(a);
	close(c);
	close(l);
}

struct listen_run {
	const char *key_file;
	int main_fd, stream_fd;
};

static void *listen_thread(void *arg)
{
	struct listen_run *r = arg;
	struct tr_listener l = {.fd = -1};
	uint32_t flags = 0;

	r->main_fd = tr_accept_authenticated("127.0.0.1:47912", r->key_file, 10, &flags, &l);
	r->stream_fd = r->main_fd >= 0 ? tr_accept_stream(&l, 10000) : -1;
	tr_listener_close(&l);
	return NULL;
}

/*
 * migrate-receive --listen keeps its listener for the extra streams of its migration: an extra
 * stream before the migration and a new migration while it waits for streams are dropped.
 */
static void test_listener_keeps_streams(void **state)
{
	struct listen_run r = {.key_file = write_key_file("streams", 32, 0600)};
	pthread_t t;
	int early, c, other, s;
	char b = 0;

	(void)state;
	if ((c = tr_listen("127.0.0.1:47912")) < 0)
		skip();
	close(c);
	log_capture_clear(capture);
	assert_int_equal(pthread_create(&t, NULL, listen_thread, &r), 0);
	early = ERR_IO;
	for (int i = 0; i < 100 && early < 0; i++) /* until the thread listens */
		if ((early = tr_open_authenticated("127.0.0.1:47912", r.key_file, TR_FLAG_STREAM,
		                                   2000)) < 0)
			usleep(20000);
	assert_true(early >= 0);
	c = tr_open_authenticated("127.0.0.1:47912", r.key_file, 0, 2000);
	assert_true(c >= 0);
	other = tr_open_authenticated("127.0.0.1:47912", r.key_file, 0, 2000);
	s = tr_open_authenticated("127.0.0.1:47912", r.key_file, TR_FLAG_STREAM, 2000);
	assert_true(s >= 0);
	pthread_join(t, NULL);
	assert_true(r.main_fd >= 0 && r.stream_fd >= 0);
	assert_int_equal(read(early, &b, 1), 0); /* dropped */
	if (other >= 0)
		assert_int_equal(read(other, &b, 1), 0);
	assert_int_equal(write(c, "m", 1), 1);
	assert_int_equal(read(r.main_fd, &b, 1), 1);
	assert_int_equal(b, 'm');
	assert_int_equal(write(s, "s", 1), 1);
	assert_int_equal(read(r.stream_fd, &b, 1), 1);
	assert_int_equal(b, 's');
	assert_true(log_capture_contains(capture, "an extra stream of a migration not begun"));
	assert_true(log_capture_contains(capture, "a new migration while waiting"));
	close(early);
	close(c);
	if (other >= 0)
		close(other);
	close(s);
	close(r.main_fd);
	close(r.stream_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_key_both_sides_agree),
	    cmocka_unit_test(test_wrong_key_rejected_by_receiver),
	    cmocka_unit_test(test_prefix_of_key_is_another_key),
	    cmocka_unit_test(test_receiver_without_key_cannot_fake_acceptance),
	    cmocka_unit_test(test_foreign_peer_is_protocol_error),
	    cmocka_unit_test(test_other_version_is_named),
	    cmocka_unit_test(test_rejection_and_hangup),
	    cmocka_unit_test(test_receiver_refuses_garbage_proof),
	    cmocka_unit_test(test_flags_changed_in_transit_are_refused),
	    cmocka_unit_test(test_key_file_rules),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_listen_connect_loopback),
	    cmocka_unit_test(test_listener_keeps_streams),
	};
	char cmd[64];
	int rc;

	capture = log_sink_capture();
	log_set_sink(capture);
	make_key(&key_a, 0xa5);
	make_key(&key_b, 0x5a);
	if (!mkdtemp(tmpdir))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	return rc;
}
