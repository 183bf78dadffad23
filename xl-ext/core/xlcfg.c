/*
 * xlcfg.c - reading an xl.cfg file with libxlutil (xlcfg.h).
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/core/xlcfg.h"

int xlcfg_read_data(const char *source, const char *data, size_t len, XLU_Config **xc_r)
{
	const char *nul = memchr(data, '\0', len);
	XLU_Config *xc;
	int rc;

	/* libxlutil's lexer aborts on a NUL inside a quoted string: refuse such input here */
	if (nul) {
		log_error("%s: byte %zu is a NUL: not an xl.cfg text file", source,
		          (size_t)(nul - data));
		return ERR_INVAL;
	}
	if (len > XLCFG_MAX_BYTES) {
		log_error("%s: larger than %d bytes: not an xl.cfg file", source, XLCFG_MAX_BYTES);
		return ERR_INVAL;
	}
	xc = xlu_cfg_init(stderr, source);
	if (!xc)
		return ERR_NOMEM;
	rc = xlu_cfg_readdata(xc, data, (int)len);
	if (rc) {
		log_error("%s: syntax error in the configuration (see above)", source);
		xlu_cfg_destroy(xc);
		return ERR_INVAL;
	}
	*xc_r = xc;
	return 0;
}

int xlcfg_read_file(const char *path, XLU_Config **xc_r)
{
	char *data = malloc(XLCFG_MAX_BYTES + 1);
	size_t len = 0;
	FILE *f;
	int rc;

	if (!data)
		return ERR_NOMEM;
	f = fopen(path, "r");
	if (!f) {
		rc = errno;
		log_error("%s: cannot read the configuration file: %s", path, strerror(rc));
		free(data);
		return err_from_errno(rc);
	}
	len = fread(data, 1, XLCFG_MAX_BYTES + 1, f);
	rc = ferror(f) ? errno : 0;
	fclose(f);
	if (rc) {
		log_error("%s: cannot read the configuration file: %s", path, strerror(rc));
		free(data);
		return err_from_errno(rc);
	}
	rc = xlcfg_read_data(path, data, len, xc_r);
	free(data);
	return rc;
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

int xlcfg_disk_parse(XLU_Config *xc, const char *source, const char *spec, libxl_device_disk *disk)
{
	for (const unsigned char *c = (const unsigned char *)spec; *c; c++) {
		ptrdiff_t at = (const char *)c - spec;

		if ((*c < 0x20 && *c != '\t') || *c == 0x7f) {
			log_error(
			    "%s: disk spec '%.*s...': control character 0x%02x at offset %td; a "
			    "disk spec is one line of printable characters: correct it",
			    source, (int)at, spec, *c, at);
			return ERR_INVAL;
		}
	}
	return xlu_disk_parse(xc, 1, &spec, disk) ? 1 : 0;
}
