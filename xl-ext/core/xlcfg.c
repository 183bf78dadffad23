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
