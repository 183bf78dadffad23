/*
 * xlcfg.h - reading an xl.cfg file with libxlutil, shared by the sim backend's parser
 * (sim/simcfg.c) and the xen backend's converter (xen/xen_xlcfg.c).
 */
#ifndef XLEXT_XLCFG_H
#define XLEXT_XLCFG_H

#include <libxlutil.h>

#include "xl-ext/core/hv.h"

/*
 * Parse the file at path into a new libxlutil configuration (*xc_r, freed by the caller with
 * xlu_cfg_destroy). An unreadable file or a syntax error is logged with the path and gives
 * the errno's code or ERR_INVAL; nothing is left to free then.
 */
int xlcfg_read_file(const char *path, XLU_Config **xc_r);

/* An xl.cfg larger than this is refused (a configuration is a few hundred bytes). */
#define XLCFG_MAX_BYTES (1 << 20)

/*
 * The same from memory: data (len bytes, not NUL-terminated), named source in messages. Input
 * with a NUL byte, or larger than XLCFG_MAX_BYTES, is refused (ERR_INVAL, logged) before
 * libxlutil sees it: its lexer aborts on a NUL inside a quoted string.
 */
int xlcfg_read_data(const char *source, const char *data, size_t len, XLU_Config **xc_r);

/*
 * The disk specs the "disk" list of the xl.cfg at path names, as written (no hypervisor
 * needed: haagent reads the disks of a dead node's guest this way). A file without disks
 * gives none. Errors as xlcfg_read_file, or ERR_INVAL for an entry that is not a string.
 * Free with hv_disk_specs_free.
 */
int xlcfg_disk_specs(const char *path, struct hv_disk_specs *specs);

/*
 * Parse one disk spec (xl-disk-configuration(5)) into disk with libxlutil's xlu_disk_parse.
 * A spec is one line: one with a control character is refused first (ERR_INVAL, logged with
 * source and the offset), since libxlutil's lexer ends the whole process with exit(2) on a
 * line break in some places ("flex scanner jammed"). A syntax error gives 1: libxlutil has
 * written it to xc's report stream and the caller logs its context.
 */
int xlcfg_disk_parse(XLU_Config *xc, const char *source, const char *spec, libxl_device_disk *disk);

#endif
