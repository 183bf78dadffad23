/*
 * transport.h - the direct TCP migration transport with pre-shared-key authentication.
 *
 * "xl-ext migrate --tcp ADDR:PORT --key FILE" connects straight to
 * "xl-ext migrate-receive --listen ADDR:PORT --key FILE" instead of going through ssh. Before a
 * single byte of xl's handshake flows, both ends prove they hold the same key with a mutual
 * HMAC-SHA256 challenge-response over fresh random nonces:
 *
 *   receiver -> sender    "xl-ext auth 1\n\0\0" (16 bytes) + Nr (32 random bytes)
 *   sender   -> receiver  "xl-ext auth 1\n\0\0" + Ns (32) + F (u32, big-endian)
 *                         + HMAC(K, "sender" | Nr | Ns | F)
 *   receiver -> sender    status byte: 0 and HMAC(K, "receiver" | Ns | Nr), or 1 (rejected)
 *
 * F carries what xl passes on the receiver's command line (-p, -d), which a listening receiver
 * cannot get otherwise; it is inside the MAC, so nobody in between can change it.
 *
 * The sender proves itself first and the receiver's proof binds the sender's nonce, so neither
 * a replayed nor a reflected proof is accepted, and a sender never streams guest memory to a
 * receiver that did not prove it holds the key. The stream itself is not encrypted: use the
 * transport on the storage/migration network, or ssh (the default) elsewhere.
 */
#ifndef XLEXT_TRANSPORT_H
#define XLEXT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TR_KEY_MIN         16
#define TR_KEY_MAX         4096
#define TR_NONCE_LEN       32
#define TR_MAC_LEN         32
#define TR_MAGIC_LEN       16
#define TR_AUTH_TIMEOUT_MS 10000

/* Request flags the sender passes to a listening receiver (migrate-receive -p, -d). */
#define TR_FLAG_PAUSED 0x1u
#define TR_FLAG_DEBUG  0x2u
#define TR_FLAG_STREAM 0x4u /* an extra stream of a migration already begun (migrate --streams) */
#define TR_FLAGS_KNOWN (TR_FLAG_PAUSED | TR_FLAG_DEBUG | TR_FLAG_STREAM)

struct tr_key {
	size_t len;
	uint8_t bytes[TR_KEY_MAX];
};

/*
 * Load a pre-shared key: a regular file of TR_KEY_MIN..TR_KEY_MAX bytes, used as is, that no
 * one but its owner may read or write (mode 0600 or stricter, as ssh demands of its keys).
 * Logs what is wrong with the file; returns 0, ERR_INVAL, ERR_PERM or an I/O error.
 */
int tr_key_load(const char *path, struct tr_key *key);

/* Wipe a loaded key. */
void tr_key_clear(struct tr_key *key);

/*
 * Parse "ADDR:PORT" ("[v6addr]:port" for IPv6; ADDR may be a name) into a socket address.
 * Logs and returns ERR_INVAL on a malformed string or unknown name.
 */
int tr_parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len_r);

/* Connect to spec within timeout_ms; returns the socket fd or a negative error (logged). */
int tr_connect(const char *spec, int timeout_ms);

/* Listen on spec; returns the listening socket or a negative error (logged). */
int tr_listen(const char *spec);

/*
 * Accept one connection on lfd within timeout_ms (0: wait forever); *peer_r names the peer
 * ("10.0.0.1:40312"). Returns the fd, ERR_TIMEOUT or another negative error.
 */
int tr_accept(int lfd, int timeout_ms, char *peer_r, size_t peer_len);

/*
 * Run the sender's (connecting) side of the authentication on fd. Returns 0 when the receiver
 * proved it holds key, ERR_AUTH when it rejected ours or its proof is wrong, ERR_PROTO when it
 * does not speak this protocol, ERR_TIMEOUT/ERR_IO otherwise. Each failure is logged.
 */
int tr_auth_sender(int fd, const struct tr_key *key, const char *peer, uint32_t flags);

/*
 * The receiver's (listening) side: 0 when the sender proved it holds key, with its request
 * flags in *flags_r (unknown flags are refused with ERR_PROTO); else as above.
 */
int tr_auth_receiver(int fd, const struct tr_key *key, const char *peer, uint32_t *flags_r);

/* A silent peer (no RST) is given up after about this long (tr_tune_socket). */
#define TR_KEEPALIVE_IDLE_S     10
#define TR_KEEPALIVE_INTERVAL_S 5
#define TR_KEEPALIVE_COUNT      3
#define TR_USER_TIMEOUT_MS      30000

/*
 * Tune a connected migration socket: no Nagle delay on the handshake, large buffers, and a
 * bound on a silent peer (keepalive and TCP_USER_TIMEOUT, above).
 */
void tr_tune_socket(int fd);

/*
 * Sender: load the key in key_file, connect to addr within timeout_ms and authenticate
 * (tr_auth_sender with flags); the tuned socket, or a negative error (logged).
 */
int tr_open_authenticated(const char *addr, const char *key_file, uint32_t flags, int timeout_ms);

/* A receiver's listening socket and key, kept for the extra streams of its migration. */
struct tr_listener {
	int fd; /* -1: none */
	char addr[128];
	struct tr_key key;
};

/*
 * Receiver (migrate-receive --listen): listen on addr and accept connections until one sender
 * proves it holds the key in key_file (the others, and extra streams, are logged and dropped),
 * within timeout_s (0: no limit). Its request flags in *flags_r; the tuned socket or a negative
 * error. With keep, the listener and the key stay open there for tr_accept_stream (close with
 * tr_listener_close); without, they are closed.
 */
int tr_accept_authenticated(const char *addr, const char *key_file, int timeout_s,
                            uint32_t *flags_r, struct tr_listener *keep);

/*
 * The next connection on l whose sender proves it holds the key and asks for an extra stream
 * (TR_FLAG_STREAM), within timeout_ms; others are logged and dropped. The tuned socket or a
 * negative error.
 */
int tr_accept_stream(struct tr_listener *l, int timeout_ms);

void tr_listener_close(struct tr_listener *l);

#endif
