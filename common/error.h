/*
 * error.h - the project's error codes.
 *
 * Every function that can fail returns 0 on success or one of these negative codes. Library
 * errors (libxl, corosync, libiscsi, errno) are translated into them at the boundary, by the
 * backend that called the library, so nothing above a backend sees foreign error types.
 * Only main() and command handlers turn them into exit codes.
 */
#ifndef XLEXT_COMMON_ERROR_H
#define XLEXT_COMMON_ERROR_H

enum err_code {
	ERR_OK = 0,
	ERR_NOMEM = -1,     /* out of memory */
	ERR_INVAL = -2,     /* invalid argument or input */
	ERR_IO = -3,        /* read/write/connection error */
	ERR_NOTFOUND = -4,  /* no such domain, node, file, backend */
	ERR_EXISTS = -5,    /* already exists (name clash) */
	ERR_PROTO = -6,     /* peer violated the protocol or stream format */
	ERR_TIMEOUT = -7,   /* operation timed out */
	ERR_CANCELLED = -8, /* cancelled by the user (signal, cancel command) */
	ERR_NOTSUP = -9,    /* not supported by this backend or build */
	ERR_NOXEN = -10,    /* no Xen hypervisor on this host */
	ERR_PERM = -11,     /* permission denied */
	ERR_BUSY = -12,     /* resource busy or in the wrong state */
	ERR_NOSPACE = -13,  /* not enough memory / capacity on a host */
	ERR_AUTH = -14,     /* peer authentication failed */
	ERR_CHECKSUM = -15, /* data failed its checksum */
	ERR_REMOTE = -16,   /* the remote side reported a failure */
	ERR_NOQUORUM = -17, /* the cluster partition is not quorate */
	ERR_CONFLICT = -18, /* reservation conflict (storage ownership) */
	ERR_NOTCONV = -19,  /* pre-copy did not converge */
	ERR_INTERNAL = -20, /* a bug: an invariant did not hold */
	ERR_MISMATCH = -21, /* two views of one object differ (LUN identity, journal check) */
	ERR_CODE_MIN = -21,
};

/* Short human description of an error code ("no such object"); never NULL. */
const char *err_str(int code);

/* Symbolic name of an error code ("ERR_NOTFOUND"); never NULL. */
const char *err_name(int code);

/* Translate an errno value into the closest project error code. */
int err_from_errno(int errnum);

/* Exit status for a command handler: 0 for ERR_OK, 1 for any failure. */
int err_exit_status(int code);

/*
 * Did a command fail on its connection (ERR_IO, ERR_TIMEOUT: a session that may be gone, a
 * peer restarted) rather than with the peer's answer? Then it is worth a new session.
 */
int err_is_transport(int code);

#endif
