/*
 * hv_disks.c - disk specs as struct hv_ops hands them over (hv.h), kept apart from the
 * backend registry so that a backend's own tests can link them alone.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "xl-ext/core/hv.h"

int hv_disk_specs_add(struct hv_disk_specs *specs, const char *spec)
{
	char **grown = realloc(specs->spec, (specs->n + 1) * sizeof(*grown));

	if (!grown)
		return ERR_NOMEM;
	specs->spec = grown;
	specs->spec[specs->n] = strdup(spec);
	if (!specs->spec[specs->n])
		return ERR_NOMEM;
	specs->n++;
	return 0;
}

void hv_disk_specs_free(struct hv_disk_specs *specs)
{
	for (size_t i = 0; i < specs->n; i++)
		free(specs->spec[i]);
	free(specs->spec);
	specs->spec = NULL;
	specs->n = 0;
}

int hv_disk_spec_from_backend(const struct hv_disk *d, char *spec, size_t len)
{
	const char *access = d->readonly ? "ro" : "rw";
	int n;

	if (d->script[0])
		n = snprintf(spec, len, "vdev=%s,access=%s,script=%s,target=%s", d->vdev, access,
		             d->script, d->params);
	else
		n = snprintf(spec, len, "vdev=%s,access=%s,target=%s", d->vdev, access, d->params);
	return n < 0 || (size_t)n >= len ? ERR_INVAL : 0;
}
