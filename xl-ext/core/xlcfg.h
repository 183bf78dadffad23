/*
 * xlcfg.h - reading an xl.cfg file with libxlutil, shared by the sim backend's parser
 * (sim/simcfg.c) and the xen backend's converter (xen/xen_xlcfg.c).
 */
#ifndef XLEXT_XLCFG_H
#define XLEXT_XLCFG_H

#include <libxlutil.h>

/*
 * Parse the file at path into a new libxlutil configuration (*xc_r, freed by the caller with
 * xlu_cfg_destroy). An unreadable file or a syntax error is logged with the path and gives
 * the errno's code or ERR_INVAL; nothing is left to free then.
 */
int xlcfg_read_file(const char *path, XLU_Config **xc_r);

#endif
