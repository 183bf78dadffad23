/*
 * xlproto.c - constants and codecs of xl's migration handshake.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "xl-ext/migration/xlproto.h"

const char xlp_magic[XLP_MAGIC_LEN] = "Xen saved domain, xl format\n \0 \r";
const char xlp_banner[] = "xl migration receiver ready, send binary domain data.\n";
const char xlp_receiver_ready[] = "domain received, ready to unpause";
const char xlp_permission_to_go[] = "domain is yours, you are cleared to unpause";
const char xlp_report[] = "my copy unpause results are as follows";

size_t xlp_banner_len(void)
{
	return sizeof(xlp_banner) - 1;
}

size_t xlp_receiver_ready_len(void)
{
	return sizeof(xlp_receiver_ready);
}

size_t xlp_permission_to_go_len(void)
{
	return sizeof(xlp_permission_to_go);
}

size_t xlp_report_len(void)
{
	return sizeof(xlp_report);
}

/* xl writes its u32 fields in the host's byte order, and so do we (x86: little-endian). */
static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

int xlp_encode_header(const char *config_json, uint8_t **out_r, size_t *len_r)
{
	return xlp_encode_header_flags(config_json, 0, out_r, len_r);
}

uint32_t xlp_header_optional(const uint8_t *hdr)
{
	return get_u32(hdr + 40);
}

int xlp_encode_header_flags(const char *config_json, uint32_t optional, uint8_t **out_r,
                            size_t *len_r)
{
	size_t config_len = strlen(config_json) + 1;
	size_t len = XLP_HEADER_LEN + 4 + config_len;
	uint8_t *out;

	if (config_len > XLP_MAX_CONFIG)
		return ERR_INVAL;
	out = calloc(1, len);
	if (!out)
		return ERR_NOMEM;
	memcpy(out, xlp_magic, XLP_MAGIC_LEN);
	put_u32(out + 32, XLP_BYTEORDER);
	put_u32(out + 36, XLP_FLAG_STREAMV2 | XLP_FLAG_JSON);
	put_u32(out + 40, optional);
	put_u32(out + 44, (uint32_t)(4 + config_len));
	put_u32(out + 48, (uint32_t)config_len);
	memcpy(out + 52, config_json, config_len);
	*out_r = out;
	*len_r = len;
	return 0;
}

int xlp_decode_header(const uint8_t *hdr, uint32_t *mandatory_r, uint32_t *optlen_r)
{
	uint32_t mandatory, optlen;

	if (memcmp(hdr, xlp_magic, XLP_MAGIC_LEN) != 0)
		return ERR_PROTO;
	if (get_u32(hdr + 32) != XLP_BYTEORDER)
		return ERR_PROTO;
	mandatory = get_u32(hdr + 36);
	if (mandatory & ~(XLP_FLAG_JSON | XLP_FLAG_STREAMV2))
		return ERR_PROTO; /* a flag we do not know: xl rejects the restore too */
	if (!(mandatory & XLP_FLAG_STREAMV2))
		return ERR_PROTO;
	optlen = get_u32(hdr + 44);
	if (optlen > XLP_MAX_CONFIG + 4)
		return ERR_PROTO;
	*mandatory_r = mandatory;
	*optlen_r = optlen;
	return 0;
}

int xlp_decode_config(const uint8_t *optdata, uint32_t optlen, uint32_t mandatory,
                      const char **json_r)
{
	uint32_t config_len;

	if (!(mandatory & XLP_FLAG_JSON))
		return ERR_PROTO; /* we need the configuration to create the domain */
	if (optlen < 4)
		return ERR_PROTO;
	config_len = get_u32(optdata);
	if (config_len == 0 || config_len > optlen - 4)
		return ERR_PROTO;
	if (optdata[4 + config_len - 1] != '\0')
		return ERR_PROTO;
	if (strlen((const char *)optdata + 4) != config_len - 1)
		return ERR_PROTO; /* an embedded NUL */
	*json_r = (const char *)optdata + 4;
	return 0;
}

char *xlp_rune(const char *ssh_command, const char *host, const char *prog, int tty, int no_daemon,
               int debug, int paused, const char *extra)
{
	char *rune = NULL;
	int n;

	if (!ssh_command[0])
		return strdup(host);
	n = asprintf(&rune, "exec %s %s %s%s migrate-receive%s%s%s%s%s", ssh_command, host, prog,
	             tty ? " -t" : "", no_daemon ? " -e" : "", debug ? " -d" : "",
	             paused ? " -p" : "", extra && extra[0] ? " " : "", extra ? extra : "");
	return n < 0 ? NULL : rune;
}
