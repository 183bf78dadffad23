/*
 * xlproto.h - xl's migration handshake, byte for byte (Xen 4.17's tools/xl).
 *
 *   receiver -> sender   banner (without NUL)
 *   sender   -> receiver save-file header: magic[32], u32 byteorder 0x01020304, u32 mandatory
 *                        flags (JSON | STREAMv2), u32 optional flags, u32 optional-data length;
 *                        optional data = u32 config length + domain config JSON with its NUL
 *   sender   -> receiver the domain stream (libxl v2 stream, or the sim stream)
 *   receiver -> sender   "domain received, ready to unpause\0"
 *   sender: rename to <name>--migratedaway
 *   sender   -> receiver "domain is yours, you are cleared to unpause\0"  (point of no return)
 *   receiver: rename <name>--incoming -> <name>, unpause unless -p
 *   receiver -> sender   "my copy unpause results are as follows\0" + 1 status byte (0 = ok)
 *   on a non-zero status: receiver destroys its copy, then sends the GO message back, and the
 *   sender renames back and resumes.
 *
 * This module holds the constants and the pure encoders/decoders; handshake.c drives them over
 * file descriptors for both hypervisor backends.
 */
#ifndef XLEXT_XLPROTO_H
#define XLEXT_XLPROTO_H

#include <stddef.h>
#include <stdint.h>

#define XLP_MAGIC_LEN     32
#define XLP_HEADER_LEN    (XLP_MAGIC_LEN + 16)
#define XLP_BYTEORDER     0x01020304u
#define XLP_FLAG_JSON     (1u << 0)
#define XLP_FLAG_STREAMV2 (1u << 1)
#define XLP_MAX_CONFIG    (4u << 20) /* bound on the config JSON a receiver accepts */
/*
 * Optional flag: the sender is xl-ext and knows the receiver is too (its pre-flight answered,
 * or the --tcp transport). Then, right after the header, the sender sends one extension
 * message and the receiver answers one before the stream; after its unpause report the
 * receiver sends one more. Stock xl ignores optional flags it does not know, and an xl-ext
 * sender sets it only for an xl-ext receiver, so stock xl never sees these messages.
 * An extension message is a u32 length (host order, as xl's fields) and that many bytes of
 * JSON, at most XLP_EXT_MAX.
 */
#define XLP_OPT_XLEXT (1u << 16)
#define XLP_EXT_MAX   (1u << 20)

extern const char xlp_magic[XLP_MAGIC_LEN];
extern const char xlp_banner[];           /* sent without its NUL */
extern const char xlp_receiver_ready[];   /* sent with its NUL */
extern const char xlp_permission_to_go[]; /* sent with its NUL */
extern const char xlp_report[];           /* sent with its NUL, then one status byte */

/* Lengths on the wire. */
size_t xlp_banner_len(void);
size_t xlp_receiver_ready_len(void);
size_t xlp_permission_to_go_len(void);
size_t xlp_report_len(void);

/*
 * Encode the save-file header and optional data for config_json (a NUL-terminated string)
 * into a newly allocated buffer *out_r of *len_r bytes.
 */
int xlp_encode_header(const char *config_json, uint8_t **out_r, size_t *len_r);
/* Same, with optional flags (XLP_OPT_XLEXT). */
int xlp_encode_header_flags(const char *config_json, uint32_t optional, uint8_t **out_r,
                            size_t *len_r);

/* The optional flags of a decoded 48-byte header. */
uint32_t xlp_header_optional(const uint8_t *hdr);

/*
 * Decode the fixed 48-byte header: checks magic and byte order, rejects unknown mandatory
 * flags, requires STREAMv2. Returns the optional-data length to read next.
 */
int xlp_decode_header(const uint8_t *hdr, uint32_t *mandatory_r, uint32_t *optlen_r);

/*
 * Extract the config JSON from the optional data (JSON flag set): a u32 length and that many
 * bytes ending in a NUL. *json_r points into optdata.
 */
int xlp_decode_config(const uint8_t *optdata, uint32_t optlen, uint32_t mandatory,
                      const char **json_r);

/*
 * The remote command xl runs for a migration: "exec <ssh> <host> <prog>[ -t] migrate-receive
 * [-e][-d][-p]", or host itself when ssh_command is "". Caller frees.
 */
char *xlp_rune(const char *ssh_command, const char *host, const char *prog, int tty, int no_daemon,
               int debug, int paused, const char *extra);

#endif
