/*
 * error.c - descriptions and translations of the project's error codes.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>

#include "common/error.h"

struct err_desc {
	int code;
	const char *name;
	const char *text;
};

static const struct err_desc err_table[] = {
    {ERR_OK, "ERR_OK", "success"},
    {ERR_NOMEM, "ERR_NOMEM", "out of memory"},
    {ERR_INVAL, "ERR_INVAL", "invalid argument"},
    {ERR_IO, "ERR_IO", "input/output error"},
    {ERR_NOTFOUND, "ERR_NOTFOUND", "not found"},
    {ERR_EXISTS, "ERR_EXISTS", "already exists"},
    {ERR_PROTO, "ERR_PROTO", "protocol error"},
    {ERR_TIMEOUT, "ERR_TIMEOUT", "timed out"},
    {ERR_CANCELLED, "ERR_CANCELLED", "cancelled"},
    {ERR_NOTSUP, "ERR_NOTSUP", "not supported"},
    {ERR_NOXEN, "ERR_NOXEN", "no Xen hypervisor on this host"},
    {ERR_PERM, "ERR_PERM", "permission denied"},
    {ERR_BUSY, "ERR_BUSY", "busy or in the wrong state"},
    {ERR_NOSPACE, "ERR_NOSPACE", "not enough capacity"},
    {ERR_AUTH, "ERR_AUTH", "authentication failed"},
    {ERR_CHECKSUM, "ERR_CHECKSUM", "checksum mismatch"},
    {ERR_REMOTE, "ERR_REMOTE", "remote side reported failure"},
    {ERR_NOQUORUM, "ERR_NOQUORUM", "cluster partition is not quorate"},
    {ERR_CONFLICT, "ERR_CONFLICT", "reservation conflict"},
    {ERR_NOTCONV, "ERR_NOTCONV", "pre-copy did not converge"},
    {ERR_INTERNAL, "ERR_INTERNAL", "internal error"},
    {ERR_MISMATCH, "ERR_MISMATCH", "identity or consistency mismatch"},
};

static const struct err_desc *err_lookup(int code)
{
	for (unsigned i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].code == code)
			return &err_table[i];
	return NULL;
}

const char *err_str(int code)
{
	const struct err_desc *d = err_lookup(code);

	return d ? d->text : "unknown error";
}

const char *err_name(int code)
{
	const struct err_desc *d = err_lookup(code);

	return d ? d->name : "ERR_UNKNOWN";
}

int err_from_errno(int errnum)
{
	switch (errnum) {
	case 0:
		return ERR_OK;
	case ENOMEM:
		return ERR_NOMEM;
	case EINVAL:
	case ERANGE:
	case E2BIG:
		return ERR_INVAL;
	case ENOENT:
	case ESRCH:
	case ENODEV:
	case ENXIO:
		return ERR_NOTFOUND;
	case EEXIST:
		return ERR_EXISTS;
	case ETIMEDOUT:
		return ERR_TIMEOUT;
	case EINTR:
	case ECANCELED:
		return ERR_CANCELLED;
	case ENOSYS:
	case EOPNOTSUPP:
		return ERR_NOTSUP;
	case EPERM:
	case EACCES:
		return ERR_PERM;
	case EBUSY:
	case EAGAIN:
		return ERR_BUSY;
	case ENOSPC:
		return ERR_NOSPACE;
	case EPROTO:
	case EBADMSG:
		return ERR_PROTO;
	default:
		return ERR_IO;
	}
}

int err_exit_status(int code)
{
	return code == ERR_OK ? 0 : 1;
}

int err_is_transport(int code)
{
	return code == ERR_IO || code == ERR_TIMEOUT;
}
