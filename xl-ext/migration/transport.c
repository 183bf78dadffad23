/*
 * transport.c - direct TCP transport and its pre-shared-key challenge-response (transport.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/loop.h"
#include "xl-ext/migration/transport.h"

static const uint8_t tr_magic[TR_MAGIC_LEN] = "xl-ext auth 1\n\0";
#define TR_MAGIC_PREFIX "xl-ext auth " /* then the version, "\n", NULs */

/*
 * Is the peer's magic (TR_MAGIC_LEN bytes from the network) ours? 0 if so. Another version of
 * the transport is named as such (bounded: digits only, within the magic); anything else is a
 * peer that does not speak it. what: how the peer is described in the message.
 */
static int check_magic(const uint8_t *in, const char *peer, const char *what)
{
	size_t plen = sizeof(TR_MAGIC_PREFIX) - 1, n = 0;
	char version[TR_MAGIC_LEN];

	if (!memcmp(in, tr_magic, TR_MAGIC_LEN))
		return 0;
	if (!memcmp(in, TR_MAGIC_PREFIX, plen)) {
		while (plen + n < TR_MAGIC_LEN && in[plen + n] >= '0' && in[plen + n] <= '9')
			n++;
		memcpy(version, in + plen, n);
		version[n] = '\0';
		log_error("%s %s speaks version %s of xl-ext's authenticated migration transport; "
		          "this xl-ext (%s) speaks version 1: install the same xl-ext release on "
		          "both hosts",
		          what, peer, n ? version : "(unreadable)", PACKAGE_VERSION);
		return ERR_PROTO;
	}
	return ERR_NOTFOUND;
}

int tr_key_load(const char *path, struct tr_key *key)
{
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	memset(key, 0, sizeof(*key));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		log_error_errno(errno, "cannot open the migration key file %s", path);
		return err_from_errno(errno);
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error("migration key %s is not a regular file", path);
		rc = ERR_INVAL;
		goto out;
	}
	if (st.st_mode & 077) {
		log_error("migration key %s is accessible by others (mode %03o): run chmod 600 %s",
		          path, (unsigned)(st.st_mode & 0777), path);
		rc = ERR_PERM;
		goto out;
	}
	if (st.st_uid != geteuid()) {
		log_error("migration key %s is owned by uid %u, not by this user (uid %u): run "
		          "chown %u %s",
		          path, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(),
		          path);
		rc = ERR_PERM;
		goto out;
	}
	if (st.st_size < TR_KEY_MIN || st.st_size > TR_KEY_MAX) {
		log_error("migration key %s has %lld bytes; it needs %d to %d (for example: "
		          "head -c 32 /dev/urandom > %s)",
		          path, (long long)st.st_size, TR_KEY_MIN, TR_KEY_MAX, path);
		rc = ERR_INVAL;
		goto out;
	}
	n = read(fd, key->bytes, (size_t)st.st_size);
	if (n != st.st_size) {
		log_error("cannot read the migration key file %s", path);
		rc = ERR_IO;
		goto out;
	}
	key->len = (size_t)n;
out:
	close(fd);
	if (rc)
		tr_key_clear(key);
	return rc;
}

void tr_key_clear(struct tr_key *key)
{
	OPENSSL_cleanse(key, sizeof(*key));
}

int tr_parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len_r)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char host[256];
	const char *port, *colon;
	char *end;
	unsigned long p;
	int rc;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof(host))
			goto malformed;
		memcpy(host, spec + 1, (size_t)(close - spec - 1));
		host[close - spec - 1] = '\0';
		port = close + 2;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host) ||
		    memchr(spec, ':', (size_t)(colon - spec)))
			goto malformed;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
		port = colon + 1;
	}
	errno = 0;
	p = strtoul(port, &end, 10);
	if (!*port || *end || errno || p == 0 || p > 65535)
		goto malformed;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc || !res) {
		log_error("migration address %s: cannot resolve '%s': %s", spec, host,
		          gai_strerror(rc));
		return ERR_INVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len_r = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
malformed:
	log_error("migration address '%s' is not ADDR:PORT (or [IPv6]:PORT) with a port from 1 "
	          "to 65535",
	          spec);
	return ERR_INVAL;
}

void tr_tune_socket(int fd)
{
	int one = 1, buf = 4 << 20, idle = TR_KEEPALIVE_IDLE_S, intvl = TR_KEEPALIVE_INTERVAL_S,
	    cnt = TR_KEEPALIVE_COUNT;
	unsigned user_timeout = TR_USER_TIMEOUT_MS;

	/* the handshake's small messages after the stream decide the downtime: no Nagle */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	/* a peer that vanishes without a RST (a partition, a power cut) ends the migration
	 * within about half a minute instead of hanging it: keepalive probes while we wait to
	 * read, and a bound on data left unacknowledged while we write */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

int tr_connect(const char *spec, int timeout_ms)
{
	struct sockaddr_storage ss;
	struct pollfd p;
	socklen_t len, elen = sizeof(int);
	int fd, rc, err = 0;

	rc = tr_parse_addr(spec, &ss, &len);
	if (rc)
		return rc;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		log_error_errno(errno, "cannot create a socket to %s", spec);
		return err_from_errno(errno);
	}
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto failed;
		}
		p = (struct pollfd){.fd = fd, .events = POLLOUT};
		do {
			rc = poll(&p, 1, timeout_ms);
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			log_error(
			    "cannot connect to the migration receiver at %s: no answer within "
			    "%d s (is 'xl-ext migrate-receive --listen' running there?)",
			    spec, timeout_ms / 1000);
			close(fd);
			return ERR_TIMEOUT;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
		if (err)
			goto failed;
	}
	/* back to blocking: the engine writes with plain writev */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	tr_tune_socket(fd);
	return fd;
failed:
	log_error("cannot connect to the migration receiver at %s: %s (is 'xl-ext migrate-receive "
	          "--listen' running there?)",
	          spec, strerror(err));
	close(fd);
	return err_from_errno(err);
}

int tr_listen(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, rc;

	rc = tr_parse_addr(spec, &ss, &len);
	if (rc)
		return rc;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error_errno(errno, "cannot create a socket to listen on %s", spec);
		return err_from_errno(errno);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4) < 0) {
		rc = err_from_errno(errno);
		log_error_errno(errno, "cannot listen on %s", spec);
		close(fd);
		return rc;
	}
	return fd;
}

static void addr_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN + 2] = "?", port[8] = "?";

	getnameinfo((const struct sockaddr *)ss, sizeof(*ss), host, sizeof(host), port,
	            sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

int tr_accept(int lfd, int timeout_ms, char *peer_r, size_t peer_len)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd, rc;

	rc = fd_wait_readable(lfd, timeout_ms > 0 ? timeout_ms : -1);
	if (rc)
		return rc;
	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0)
		return err_from_errno(errno);
	addr_name(&ss, peer_r, peer_len);
	tr_tune_socket(fd);
	return fd;
}

/* HMAC-SHA256(key, label | a | b [| flags, 4 bytes big-endian, when given]) */
static int auth_mac(const struct tr_key *key, const char *label, const uint8_t *a, const uint8_t *b,
                    const uint8_t *flags, uint8_t out[TR_MAC_LEN])
{
	uint8_t msg[16 + 2 * TR_NONCE_LEN + 4];
	size_t l = strlen(label), mlen = l + 2 * TR_NONCE_LEN;
	unsigned int outlen = 0;

	memcpy(msg, label, l);
	memcpy(msg + l, a, TR_NONCE_LEN);
	memcpy(msg + l + TR_NONCE_LEN, b, TR_NONCE_LEN);
	if (flags) {
		memcpy(msg + mlen, flags, 4);
		mlen += 4;
	}
	if (!HMAC(EVP_sha256(), key->bytes, (int)key->len, msg, mlen, out, &outlen) ||
	    outlen != TR_MAC_LEN)
		return ERR_INTERNAL;
	return 0;
}

static int auth_read(int fd, void *buf, size_t len, const char *peer, const char *what)
{
	int rc = fd_read_exact_timeout(fd, buf, len, TR_AUTH_TIMEOUT_MS);

	if (rc == ERR_TIMEOUT)
		log_error("authentication with %s: no %s within %d s", peer, what,
		          TR_AUTH_TIMEOUT_MS / 1000);
	else if (rc)
		log_error("authentication with %s: connection closed while waiting for the %s",
		          peer, what);
	return rc;
}

int tr_auth_sender(int fd, const struct tr_key *key, const char *peer, uint32_t flags)
{
	uint8_t in[TR_MAGIC_LEN + TR_NONCE_LEN], out[TR_MAGIC_LEN + TR_NONCE_LEN + 4 + TR_MAC_LEN];
	uint8_t fl[4] = {(uint8_t)(flags >> 24), (uint8_t)(flags >> 16), (uint8_t)(flags >> 8),
	                 (uint8_t)flags};
	uint8_t ns[TR_NONCE_LEN], mac[TR_MAC_LEN], theirs[TR_MAC_LEN], status;
	int rc;

	rc = auth_read(fd, in, sizeof(in), peer, "challenge");
	if (rc)
		return rc;
	rc = check_magic(in, peer, "migration receiver");
	if (rc == ERR_NOTFOUND)
		log_error("%s does not speak xl-ext's authenticated transport (is it 'xl-ext "
		          "migrate-receive --listen'?)",
		          peer);
	if (rc)
		return ERR_PROTO;
	if (RAND_bytes(ns, sizeof(ns)) != 1)
		return ERR_INTERNAL;
	rc = auth_mac(key, "sender", in + TR_MAGIC_LEN, ns, fl, mac);
	if (rc)
		return rc;
	memcpy(out, tr_magic, TR_MAGIC_LEN);
	memcpy(out + TR_MAGIC_LEN, ns, TR_NONCE_LEN);
	memcpy(out + TR_MAGIC_LEN + TR_NONCE_LEN, fl, 4);
	memcpy(out + TR_MAGIC_LEN + TR_NONCE_LEN + 4, mac, TR_MAC_LEN);
	rc = fd_write_exact(fd, out, sizeof(out));
	if (rc) {
		log_error("authentication with %s: cannot send our proof", peer);
		return rc;
	}
	rc = auth_read(fd, &status, 1, peer, "verdict on our key");
	if (rc == ERR_IO)
		log_error("%s closed the connection: it probably rejected our key", peer);
	if (rc)
		return rc;
	if (status != 0) {
		log_error("%s rejected our key: the key files on the two hosts differ", peer);
		return ERR_AUTH;
	}
	rc = auth_read(fd, theirs, sizeof(theirs), peer, "receiver's proof");
	if (rc)
		return rc;
	rc = auth_mac(key, "receiver", ns, in + TR_MAGIC_LEN, NULL, mac);
	if (rc)
		return rc;
	if (CRYPTO_memcmp(mac, theirs, TR_MAC_LEN)) {
		log_error("%s accepted us but could not prove it holds the key: not sending the "
		          "domain to it",
		          peer);
		return ERR_AUTH;
	}
	return 0;
}

int tr_auth_receiver(int fd, const struct tr_key *key, const char *peer, uint32_t *flags_r)
{
	uint8_t out[TR_MAGIC_LEN + TR_NONCE_LEN], in[TR_MAGIC_LEN + TR_NONCE_LEN + 4 + TR_MAC_LEN];
	const uint8_t *fl = in + TR_MAGIC_LEN + TR_NONCE_LEN;
	uint32_t flags;
	uint8_t nr[TR_NONCE_LEN], mac[TR_MAC_LEN], reply[1 + TR_MAC_LEN];
	int rc;

	if (RAND_bytes(nr, sizeof(nr)) != 1)
		return ERR_INTERNAL;
	memcpy(out, tr_magic, TR_MAGIC_LEN);
	memcpy(out + TR_MAGIC_LEN, nr, TR_NONCE_LEN);
	rc = fd_write_exact(fd, out, sizeof(out));
	if (rc)
		return rc;
	rc = auth_read(fd, in, sizeof(in), peer, "sender's proof");
	if (rc)
		return rc;
	rc = check_magic(in, peer, "migration sender");
	if (rc == ERR_NOTFOUND)
		log_error("connection from %s is not an xl-ext migration sender", peer);
	if (rc)
		return ERR_PROTO;
	rc = auth_mac(key, "sender", nr, in + TR_MAGIC_LEN, fl, mac);
	if (rc)
		return rc;
	if (CRYPTO_memcmp(mac, fl + 4, TR_MAC_LEN)) {
		log_error("rejected migration sender %s: wrong key", peer);
		reply[0] = 1;
		fd_write_exact(fd, reply, 1);
		return ERR_AUTH;
	}
	flags = (uint32_t)fl[0] << 24 | (uint32_t)fl[1] << 16 | (uint32_t)fl[2] << 8 | fl[3];
	if (flags & ~TR_FLAGS_KNOWN) {
		log_error("migration sender %s asks for options this receiver does not know "
		          "(flags 0x%x): upgrade xl-ext here",
		          peer, flags);
		reply[0] = 1;
		fd_write_exact(fd, reply, 1);
		return ERR_PROTO;
	}
	reply[0] = 0;
	rc = auth_mac(key, "receiver", in + TR_MAGIC_LEN, nr, NULL, reply + 1);
	if (!rc)
		rc = fd_write_exact(fd, reply, sizeof(reply));
	if (!rc)
		*flags_r = flags;
	return rc;
}

int tr_open_authenticated(const char *addr, const char *key_file, uint32_t flags, int timeout_ms)
{
	struct tr_key key;
	int fd, rc;

	rc = tr_key_load(key_file, &key);
	if (rc)
		return rc;
	fd = tr_connect(addr, timeout_ms);
	if (fd >= 0) {
		rc = tr_auth_sender(fd, &key, addr, flags);
		if (rc) {
			close(fd);
			fd = rc;
		} else {
			tr_tune_socket(fd);
		}
	}
	tr_key_clear(&key);
	return fd;
}

/*
 * Accept on lfd until a sender proves it holds key and its flags ask for an extra stream or
 * not (stream), by deadline_ms (0: none). The tuned socket, ERR_TIMEOUT or another error.
 */
static int accept_auth(int lfd, const struct tr_key *key, const char *addr, bool stream,
                       int64_t deadline_ms, uint32_t *flags_r)
{
	char peer[96];
	int fd, rc;

	for (;;) {
		int left = deadline_ms ? (int)(deadline_ms - loop_now_ms()) : 0;

		if (deadline_ms && left <= 0)
			return ERR_TIMEOUT;
		fd = tr_accept(lfd, left, peer, sizeof(peer));
		if (fd == ERR_TIMEOUT || (fd < 0 && fd != ERR_IO))
			return fd;
		if (fd < 0)
			continue;
		rc = tr_auth_receiver(fd, key, peer, flags_r);
		if (!rc && !!(*flags_r & TR_FLAG_STREAM) != stream) {
			log_error("migration receiver on %s: %s from %s dropped", addr,
			          stream ? "a new migration while waiting for the streams of one"
			                 : "an extra stream of a migration not begun",
			          peer);
			rc = ERR_PROTO;
		}
		if (!rc) {
			log_info("migration receiver: sender %s authenticated%s", peer,
			         stream ? " (extra stream)" : "");
			tr_tune_socket(fd);
			return fd;
		}
		close(fd);
	}
}

int tr_accept_authenticated(const char *addr, const char *key_file, int timeout_s,
                            uint32_t *flags_r, struct tr_listener *keep)
{
	int64_t deadline = timeout_s ? loop_now_ms() + (int64_t)timeout_s * 1000 : 0;
	struct tr_key key;
	int lfd, fd, rc;

	rc = tr_key_load(key_file, &key);
	if (rc)
		return rc;
	lfd = tr_listen(addr);
	if (lfd < 0) {
		tr_key_clear(&key);
		return lfd;
	}
	log_info("migration receiver: listening on %s", addr);
	fd = accept_auth(lfd, &key, addr, false, deadline, flags_r);
	if (fd == ERR_TIMEOUT)
		log_error("migration receiver: no authenticated sender on %s within %d s", addr,
		          timeout_s);
	if (keep && fd >= 0) {
		keep->fd = lfd;
		snprintf(keep->addr, sizeof(keep->addr), "%s", addr);
		keep->key = key;
	} else {
		close(lfd);
	}
	tr_key_clear(&key);
	return fd;
}

int tr_accept_stream(struct tr_listener *l, int timeout_ms)
{
	uint32_t flags;
	int fd;

	if (l->fd < 0)
		return ERR_INVAL;
	fd = accept_auth(l->fd, &l->key, l->addr, true, loop_now_ms() + timeout_ms, &flags);
	if (fd == ERR_TIMEOUT)
		log_error("migration receiver: no extra stream on %s within %d ms", l->addr,
		          timeout_ms);
	return fd;
}

void tr_listener_close(struct tr_listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	tr_key_clear(&l->key);
}
