/*
 * xlcfg.c - reading an xl.cfg file with libxlutil (xlcfg.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/core/xlcfg.h"

int xlcfg_read_file(const char *path, XLU_Config **xc_r)
{
	XLU_Config *xc;
	int rc;

	xc = xlu_cfg_init(stderr, path);
	if (!xc)
		return ERR_NOMEM;
	rc = xlu_cfg_readfile(xc, path);
	if (rc) {
		if (rc == ENOENT || rc == EACCES || rc == EISDIR) {
			log_error("%s: cannot read the configuration file: %s", path, strerror(rc));
			rc = err_from_errno(rc);
		} else {
			log_error("%s: syntax error in the configuration (see above)", path);
			rc = ERR_INVAL;
		}
		xlu_cfg_destroy(xc);
		return rc;
	}
	*xc_r = xc;
	return 0;
}

int xlcfg_disk_specs(const char *path, struct hv_disk_specs *specs)
{
	XLU_ConfigList *list;
	XLU_Config *xc = NULL;
	int n = 0, rc;

	memset(specs, 0, sizeof(*specs));
	rc = xlcfg_read_file(path, &xc);
	if (rc)
		return rc;
	if (xlu_cfg_get_list(xc, "disk", &list, &n, 0))
		n = 0; /* no disks */
	for (int i = 0; i < n && !rc; i++) {
		const char *spec = xlu_cfg_get_listitem(list, i);

		if (!spec) {
			log_error("%s: disk: entry %d is not a string", path, i);
			rc = ERR_INVAL;
		} else {
			rc = hv_disk_specs_add(specs, spec);
		}
	}
	if (rc)
		hv_disk_specs_free(specs);
	xlu_cfg_destroy(xc);
	return rc;
}
