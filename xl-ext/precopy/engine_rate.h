/*
 * engine_rate.h - the rate at which the pre-copy engine moves pages on this host, both ends of
 * the stream here: on a path faster than that (an unshaped link between namespaces, a fast
 * LAN), what the engine's copies and checksums cost, not the link, bounds a migration, and the
 * model (predict.h) must plan with the lower of the two.
 */
#ifndef XLEXT_ENGINE_RATE_H
#define XLEXT_ENGINE_RATE_H

#include <stdint.h>

/* The engine's default sample: enough for the stream's batches, over in a fraction of a second. */
#define PC_ENGINE_RATE_BYTES (64ull << 20)

/*
 * Move bytes (1 MiB - 4 GiB) of pages that do not compress from a memory file through pc_send
 * into pc_receive on a thread, over TCP on loopback (or a socket pair), and store the stream's
 * bytes per second in *Bps_r. Nothing outside this process is touched. Returns 0, ERR_INVAL, or
 * the stream's error (logged).
 */
int pc_engine_rate(uint64_t bytes, double *Bps_r);

#endif
