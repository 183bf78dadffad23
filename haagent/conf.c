/*
 * conf.c - parse /etc/haagent.conf: a table of keys per section drives the parser.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "haagent/conf.h"
#include "haagent/msg.h"

enum key_kind { KEY_STR, KEY_U32, KEY_U64, KEY_ENUM, KEY_NAMES };

struct key_spec {
	const char *name;
	enum key_kind kind;
	size_t offset;
	size_t size;              /* KEY_STR: buffer size */
	uint64_t min, max;        /* numbers */
	const char *const *words; /* KEY_ENUM: accepted words, index = value */
};

static const char *const fallback_words[] = {"stay", "cold-restart", NULL};
static const char *const type_words[] = {"pv", "pvh", "hvm", NULL};
static const char *const fence_mode_words[] = {"auto", "command", "reservation", "both", NULL};
/* in the order of enum pc_policy_kind and enum pc_on_stall (precopy/policy.h) */
static const char *const policy_words[] = {"adaptive", "xen", NULL};
static const char *const on_stall_words[] = {"throttle", "abort", "force", NULL};

#define G(f) offsetof(struct ha_config, f)
#define S(f) offsetof(struct ha_guest_conf, f)

static const struct key_spec global_keys[] = {
    {"cluster", KEY_STR, G(cluster), sizeof(((struct ha_config *)0)->cluster), 0, 0, NULL},
    {"group", KEY_STR, G(group), sizeof(((struct ha_config *)0)->group), 0, 0, NULL},
    {"hypervisor", KEY_STR, G(hypervisor), sizeof(((struct ha_config *)0)->hypervisor), 0, 0, NULL},
    {"node_name", KEY_STR, G(node_name), HA_NAME_MAX, 0, 0, NULL},
    {"dom0_reserve_mib", KEY_U64, G(dom0_reserve_mib), 0, 0, 1u << 30, NULL},
    {"max_outgoing", KEY_U32, G(max_outgoing), 0, 1, 64, NULL},
    {"max_incoming", KEY_U32, G(max_incoming), 0, 1, 64, NULL},
    {"max_attempts", KEY_U32, G(max_attempts), 0, 1, 100, NULL},
    {"bandwidth_mibps", KEY_U32, G(bandwidth_mibps), 0, 1, 1000000, NULL},
    {"fence_command", KEY_STR, G(fence_command), HA_PATH_MAX, 0, 0, NULL},
    {"fence_mode", KEY_ENUM, G(fence_mode), 0, 0, 0, fence_mode_words},
    {"fence_timeout_s", KEY_U32, G(fence_timeout_s), 0, 1, 3600, NULL},
    {"self_fence_s", KEY_U32, G(self_fence_s), 0, 0, 3600, NULL},
    {"node_keys", KEY_STR, G(node_keys), HA_PATH_MAX, 0, 0, NULL},
    {"health_command", KEY_STR, G(health_command), HA_PATH_MAX, 0, 0, NULL},
    {"health_interval_s", KEY_U32, G(health_interval_s), 0, 1, 86400, NULL},
    {"health_timeout_s", KEY_U32, G(health_timeout_s), 0, 1, 86400, NULL},
    {"health_failures", KEY_U32, G(health_failures), 0, 1, 1000, NULL},
    {"drain_timeout_s", KEY_U32, G(drain_timeout_s), 0, 1, 86400, NULL},
    {"announce_interval_s", KEY_U32, G(announce_interval_s), 0, 1, 3600, NULL},
    {"announce_heartbeat_s", KEY_U32, G(announce_heartbeat_s), 0, 1, 86400, NULL},
    {"migration_port", KEY_U32, G(migration_port), 0, 1, 65535, NULL},
    {"migration_key", KEY_STR, G(migration_key), HA_PATH_MAX, 0, 0, NULL},
    {"migration_listen", KEY_STR, G(migration_listen),
     sizeof(((struct ha_config *)0)->migration_listen), 0, 0, NULL},
    {"migration_policy", KEY_ENUM, G(migration_policy), 0, 0, 0, policy_words},
    {"migration_on_stall", KEY_ENUM, G(migration_on_stall), 0, 0, 0, on_stall_words},
    {"migration_downtime_ms", KEY_U32, G(migration_downtime_ms), 0, 1, 600000, NULL},
    {"migration_max_iters", KEY_U32, G(migration_max_iters), 0, 1, 64, NULL},
    {"migration_bandwidth_mibps", KEY_U32, G(migration_bandwidth_mibps), 0, 0, 1000000, NULL},
    {"socket", KEY_STR, G(socket_path), sizeof(((struct ha_config *)0)->socket_path), 0, 0, NULL},
    {"state_file", KEY_STR, G(state_file), HA_PATH_MAX, 0, 0, NULL},
    {NULL, KEY_STR, 0, 0, 0, 0, NULL},
};

static const struct key_spec guest_keys[] = {
    {"config", KEY_STR, S(config), HA_PATH_MAX, 0, 0, NULL},
    {"memory_mib", KEY_U64, S(memory_mib), 0, 1, 1ull << 32, NULL},
    {"dirty_mibps", KEY_U32, S(dirty_mibps), 0, 0, 1000000, NULL},
    {"type", KEY_ENUM, S(type), 0, 0, 0, type_words},
    {"disks", KEY_STR, S(disks), HA_DISKS_MAX, 0, 0, NULL},
    {"preferred", KEY_NAMES, S(preferred), 0, 0, 0, NULL},
    {"anti_affinity", KEY_STR, S(anti_affinity), HA_NAME_MAX, 0, 0, NULL},
    {"fallback", KEY_ENUM, S(fallback), 0, 0, 0, fallback_words},
    {NULL, KEY_STR, 0, 0, 0, 0, NULL},
};

void ha_config_defaults(struct ha_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->cluster, sizeof(c->cluster), "corosync");
	snprintf(c->group, sizeof(c->group), "haagent");
	c->dom0_reserve_mib = 1024;
	c->max_outgoing = PLAN_DEFAULT_MAX_OUTGOING;
	c->max_incoming = PLAN_DEFAULT_MAX_INCOMING;
	c->max_attempts = PLAN_DEFAULT_MAX_ATTEMPTS;
	c->bandwidth_mibps = PLAN_DEFAULT_BANDWIDTH_MIBPS;
	c->fence_timeout_s = 60;
	c->self_fence_s = 5;
	c->health_interval_s = 5;
	c->health_timeout_s = 10;
	c->health_failures = 3;
	c->drain_timeout_s = 600;
	c->announce_interval_s = 5;
	c->announce_heartbeat_s = 60;
	c->migration_port = 8002;
	snprintf(c->socket_path, sizeof(c->socket_path), "%s", RUNSTATEDIR "/haagent/haagent.sock");
	snprintf(c->state_file, sizeof(c->state_file), "%s",
	         LOCALSTATEDIR "/lib/haagent/state.json");
}

void ha_config_release(struct ha_config *c)
{
	free(c->guests);
	c->guests = NULL;
	c->nguests = 0;
}

struct parse {
	const char *fname;
	unsigned line;
	char *err;
	size_t err_len;
};

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse *p, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->err && p->err_len)
		snprintf(p->err, p->err_len, "%s:%u: %s", p->fname, p->line, msg);
	return ERR_INVAL;
}

/* A name: letters, digits, '-', '_', '.'; non-empty and shorter than HA_NAME_MAX. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= HA_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
			return false;
	return true;
}

static int set_number(struct parse *p, const struct key_spec *k, void *base, const char *v)
{
	unsigned long long x;
	char *end;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (!isdigit((unsigned char)v[0]) || *end || errno || x < k->min || x > k->max)
		return fail(p, "key '%s': '%s' is not a number in %llu..%llu", k->name, v,
		            (unsigned long long)k->min, (unsigned long long)k->max);
	if (k->kind == KEY_U32)
		*(uint32_t *)((char *)base + k->offset) = (uint32_t)x;
	else
		*(uint64_t *)((char *)base + k->offset) = x;
	return 0;
}

static int set_names(struct parse *p, const struct key_spec *k, void *base, const char *v)
{
	char(*names)[HA_NAME_MAX] = (char(*)[HA_NAME_MAX])((char *)base + k->offset);
	char copy[512], *save = NULL, *tok;
	int n = 0;

	memset(names, 0, HA_MAX_PREFERRED * HA_NAME_MAX);
	snprintf(copy, sizeof(copy), "%s", v);
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if (n == HA_MAX_PREFERRED)
			return fail(p, "key '%s': more than %d nodes", k->name, HA_MAX_PREFERRED);
		if (!valid_name(tok))
			return fail(p, "key '%s': '%s' is not a node name", k->name, tok);
		snprintf(names[n++], HA_NAME_MAX, "%s", tok);
	}
	return 0;
}

static int set_key(struct parse *p, const struct key_spec *keys, void *base, const char *key,
                   const char *v, const char *section)
{
	const struct key_spec *k = keys;

	while (k->name && strcmp(k->name, key) != 0)
		k++;
	if (!k->name)
		return fail(p, "unknown key '%s'%s%s", key, section ? " in " : "",
		            section ? section : "");
	switch (k->kind) {
	case KEY_STR:
		if (strlen(v) >= k->size)
			return fail(p, "key '%s': value longer than %zu characters", key,
			            k->size - 1);
		if (k->size == HA_NAME_MAX && v[0] && !valid_name(v))
			return fail(p, "key '%s': '%s' is not a valid name (letters, digits, -_.)",
			            key, v);
		snprintf((char *)base + k->offset, k->size, "%s", v);
		return 0;
	case KEY_U32:
	case KEY_U64:
		return set_number(p, k, base, v);
	case KEY_ENUM:
		for (uint32_t i = 0; k->words[i]; i++) {
			if (strcmp(k->words[i], v) == 0) {
				*(uint32_t *)((char *)base + k->offset) = i;
				return 0;
			}
		}
		{
			char words[128] = "";

			for (uint32_t i = 0; k->words[i]; i++)
				snprintf(words + strlen(words), sizeof(words) - strlen(words),
				         "%s%s", i ? ", " : "", k->words[i]);
			return fail(p, "key '%s': '%s' is not one of %s", key, v, words);
		}
	case KEY_NAMES:
		return set_names(p, k, base, v);
	}
	return ERR_INTERNAL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int open_section(struct parse *p, struct ha_config *c, char *s,
                        struct ha_guest_conf **guest_r)
{
	char *end = strchr(s, ']'), *name;
	struct ha_guest_conf *ng;

	if (!end || trim(end + 1)[0])
		return fail(p, "section header '%s' must be [guest NAME]", s);
	*end = '\0';
	name = trim(s + 1);
	if (strncmp(name, "guest", 5) != 0 || !isspace((unsigned char)name[5]))
		return fail(p, "unknown section '[%s]': only [guest NAME] exists", name);
	name = trim(name + 5);
	if (!valid_name(name))
		return fail(p, "section [guest %s]: not a valid guest name", name);
	for (size_t i = 0; i < c->nguests; i++)
		if (strcmp(c->guests[i].name, name) == 0)
			return fail(p, "section [guest %s] appears twice", name);
	if (c->nguests == HA_MAX_GUESTS)
		return fail(p, "more than %d guests", HA_MAX_GUESTS);
	ng = realloc(c->guests, (c->nguests + 1) * sizeof(*ng));
	if (!ng)
		return ERR_NOMEM;
	c->guests = ng;
	*guest_r = &c->guests[c->nguests++];
	memset(*guest_r, 0, sizeof(**guest_r));
	snprintf((*guest_r)->name, sizeof((*guest_r)->name), "%s", name);
	(*guest_r)->type = HA_GUEST_PVH;
	return 0;
}

int ha_config_parse(const char *text, size_t len, const char *fname, struct ha_config *c, char *err,
                    size_t err_len)
{
	struct parse p = {fname ? fname : "haagent.conf", 0, err, err_len};
	struct ha_guest_conf *guest = NULL;
	size_t off = 0;
	int rc = 0;

	if (err && err_len)
		err[0] = '\0';
	while (off < len && rc == 0) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		char line[1024], *s, *eq, *hash, section[HA_NAME_MAX + 16];

		p.line++;
		if (n >= sizeof(line)) {
			rc = fail(&p, "line longer than %zu characters", sizeof(line) - 1);
			break;
		}
		memcpy(line, text + off, n);
		line[n] = '\0';
		off += n + 1;
		if (memchr(line, '\0', n)) {
			rc = fail(&p, "NUL byte in the file");
			break;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		s = trim(line);
		if (!s[0])
			continue;
		if (s[0] == '[') {
			rc = open_section(&p, c, s, &guest);
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			rc = fail(&p, "expected 'key = value', got '%.60s'", s);
			break;
		}
		*eq = '\0';
		s = trim(s);
		if (!s[0]) {
			rc = fail(&p, "missing key before '='");
			break;
		}
		if (guest) {
			snprintf(section, sizeof(section), "[guest %s]", guest->name);
			rc = set_key(&p, guest_keys, guest, s, trim(eq + 1), section);
		} else {
			rc = set_key(&p, global_keys, c, s, trim(eq + 1), NULL);
		}
	}
	return rc;
}

/*
 * haagent.conf names commands haagent runs as root (fence_command, health_command): refuse a
 * file another user owns or may write, as sshd refuses such keys.
 */
static int check_owner(const char *path, char *err, size_t err_len)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return 0; /* reading it says what is wrong */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(err, err_len,
		         "%s: owned by uid %u, not root: the commands it names run as root; "
		         "chown root %s",
		         path, (unsigned)st.st_uid, path);
		return ERR_PERM;
	}
	if (st.st_mode & 022) {
		snprintf(
		    err, err_len,
		    "%s: writable by group or others (mode %03o): the commands it names run as "
		    "root; chmod go-w %s",
		    path, (unsigned)(st.st_mode & 0777), path);
		return ERR_PERM;
	}
	return 0;
}

int ha_config_load(const char *path, struct ha_config *c, char *err, size_t err_len)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	ha_config_defaults(c);
	rc = check_owner(path, err, err_len);
	if (rc < 0)
		return rc;
	rc = file_read_all(path, HA_CONF_MAX_BYTES, &text, &len);
	if (rc < 0) {
		snprintf(err, err_len, "%s: cannot read: %s", path, err_str(rc));
		return rc;
	}
	rc = ha_config_parse(text, len, path, c, err, err_len);
	free(text);
	if (rc < 0)
		ha_config_release(c);
	return rc;
}
