/*
 * precopy_int.h - what the pre-copy sender (precopy.c) and receiver (receive.c) share.
 */
#ifndef XLEXT_PRECOPY_INT_H
#define XLEXT_PRECOPY_INT_H

#include "xl-ext/precopy/stream.h"

#define PAGE STREAM_PAGE_SIZE

/*
 * At most this many bytes per read, write or send system call. The kernel these hosts run
 * does not preempt a task inside one (PREEMPT_NONE), and a 4 MiB send through the host's
 * TCP and veth path held a CPU for 13 ms, during which a guest thread woken there (its probe
 * service, at real-time priority) waited: a stall of the guest that was the migration's own.
 * 256 KiB bounds that to well under a millisecond and costs a few more calls.
 */
#define PC_IO_MAX_BYTES (256u * 1024)

#endif
