/*
 * report.c - the migration report as JSON (migrate --json).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "xl-ext/precopy/codec.h"
#include "xl-ext/precopy/precopy.h"

json_object *mig_json_number(double v, int decimals)
{
	char buf[64];

	if (v < 0) /* not reached, not measured */
		return NULL;
	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	return json_object_new_double_s(v, buf);
}

/* A span in ms (3 decimals, i.e. to the microsecond), null for one not reached. */
static json_object *span_ms(int64_t from, int64_t to)
{
	return mig_json_number(from && to >= from ? (double)(to - from) / 1000.0 : -1, 3);
}

/* Where the downtime went: each phase from the previous mark, null for a phase not reached. */
static json_object *downtime_phases(const struct mig_report *r)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "suspend", span_ms(r->t_pause_us, r->t_suspended_us));
	json_object_object_add(p, "final_copy", span_ms(r->t_suspended_us, r->t_stream_end_us));
	json_object_object_add(p, "target_ready", span_ms(r->t_stream_end_us, r->t_ready_us));
	json_object_object_add(p, "rename_and_go", span_ms(r->t_ready_us, r->t_go_us));
	json_object_object_add(p, "target_start", span_ms(r->t_go_us, r->t_end_us));
	return p;
}

/* Allocated guest memory in MiB, null when the sender could not tell (not a sim source). */
static json_object *ram_mib(const struct mig_report *r, uint64_t bytes)
{
	return mig_json_number(r->source_ram_sampled ? (double)bytes / 1048576.0 : -1, 3);
}

/* --compress: the mode asked for and what each method did. */
static json_object *compression_json(const struct mig_report *r)
{
	json_object *c = json_object_new_object();
	char mode[32];

	json_object_object_add(
	    c, "mode", json_object_new_string(compress_name(r->compress, mode, sizeof(mode))));
	json_object_object_add(c, "cache_mib",
	                       mig_json_number((double)r->cache_bytes / 1048576.0, 1));
	json_object_object_add(c, "cache_hits", json_object_new_int64((int64_t)r->cache_hits));
	json_object_object_add(c, "cache_misses", json_object_new_int64((int64_t)r->cache_misses));
	json_object_object_add(c, "delta_pages", json_object_new_int64((int64_t)r->delta_pages));
	json_object_object_add(c, "delta_bytes", json_object_new_int64((int64_t)r->delta_bytes));
	json_object_object_add(c, "records_lz4", json_object_new_int64((int64_t)r->records_lz4));
	json_object_object_add(c, "records_zstd", json_object_new_int64((int64_t)r->records_zstd));
	json_object_object_add(c, "compressed_in_bytes",
	                       json_object_new_int64((int64_t)r->compress_in));
	json_object_object_add(c, "compressed_out_bytes",
	                       json_object_new_int64((int64_t)r->compress_out));
	json_object_object_add(c, "page_bytes_uncompressed",
	                       json_object_new_int64((int64_t)r->page_bytes_plain));
	json_object_object_add(c, "encode_ms", mig_json_number((double)r->encode_us / 1000.0, 3));
	return c;
}

const char *mig_mode_name(enum mig_mode m)
{
	return m == MIG_MODE_POSTCOPY ? "postcopy"
	       : m == MIG_MODE_HYBRID ? "hybrid"
	       : m == MIG_MODE_AUTO   ? "auto"
	                              : "precopy";
}

int mig_mode_parse(const char *s, enum mig_mode *m_r)
{
	for (int m = MIG_MODE_PRECOPY; m <= MIG_MODE_AUTO; m++)
		if (!strcmp(s, mig_mode_name((enum mig_mode)m))) {
			*m_r = (enum mig_mode)m;
			return 0;
		}
	return -1;
}

/* --mode postcopy|hybrid: what the phase after the switch-over did. */
static json_object *postcopy_json(const struct mig_report *r)
{
	const struct mig_postcopy_report *p = &r->postcopy;
	json_object *o = json_object_new_object();

	json_object_object_add(o, "failed", json_object_new_boolean(p->failed));
	json_object_object_add(o, "pages_needed", json_object_new_int64((int64_t)p->needed));
	json_object_object_add(o, "pages_pulled", json_object_new_int64((int64_t)p->pulled));
	json_object_object_add(o, "pages_prepaged", json_object_new_int64((int64_t)p->prepaged));
	json_object_object_add(o, "pages_pushed", json_object_new_int64((int64_t)p->pushed));
	json_object_object_add(o, "pages_zero", json_object_new_int64((int64_t)p->zero));
	json_object_object_add(o, "faults", json_object_new_int64((int64_t)p->faults));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)p->bytes));
	json_object_object_add(o, "fault_p50_ms", mig_json_number(p->fault_p50_us / 1000.0, 3));
	json_object_object_add(o, "fault_p99_ms", mig_json_number(p->fault_p99_us / 1000.0, 3));
	json_object_object_add(o, "fault_max_ms", mig_json_number(p->fault_max_us / 1000.0, 3));
	json_object_object_add(o, "last_page_ms", span_ms(r->t_start_us, p->t_end_us));
	return o;
}

struct json_object *mig_report_json(const struct mig_report *r)
{
	json_object *o = json_object_new_object(), *rounds = json_object_new_array();
	double page = 4096.0;
	/* post-copy: the migration ends with its last page, after the guest started */
	int64_t t_end =
	    r->postcopy.t_end_us > r->t_end_us && r->t_end_us ? r->postcopy.t_end_us : r->t_end_us;

	json_object_object_add(o, "memory_bytes",
	                       json_object_new_int64((int64_t)(r->nr_pages * 4096)));
	json_object_object_add(
	    o, "total_time_ms",
	    mig_json_number(t_end ? (double)(t_end - r->t_start_us) / 1000.0 : -1, 3));
	json_object_object_add(o, "downtime_ms", span_ms(r->t_pause_us, r->t_end_us));
	json_object_object_add(o, "stop_and_copy_ms", span_ms(r->t_pause_us, r->t_stream_end_us));
	json_object_object_add(o, "downtime_phases_ms", downtime_phases(r));
	for (unsigned i = 0; i < r->nrounds; i++) {
		const struct mig_round_report *rr = &r->rounds[i];
		json_object *j = json_object_new_object();

		json_object_object_add(j, "round", json_object_new_int((int)rr->round));
		json_object_object_add(j, "pages", json_object_new_int64((int64_t)rr->pages));
		json_object_object_add(j, "zero_pages",
		                       json_object_new_int64((int64_t)rr->zero_pages));
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)rr->bytes));
		json_object_object_add(j, "duration_ms",
		                       mig_json_number((double)rr->duration_us / 1000.0, 3));
		json_object_object_add(j, "skipped", json_object_new_int64((int64_t)rr->skipped));
		json_object_object_add(j, "peeks", json_object_new_int((int)rr->peeks));
		json_object_object_add(j, "peek_ms",
		                       mig_json_number((double)rr->peek_us / 1000.0, 3));
		json_object_object_add(j, "dirty_after",
		                       json_object_new_int64((int64_t)rr->dirty_after));
		json_object_object_add(j, "dirty_rate_mibps",
		                       mig_json_number(rr->dirty_rate_pps * page / 1048576.0, 3));
		json_object_object_add(j, "bandwidth_mbps",
		                       mig_json_number(rr->bandwidth_Bps * 8 / 1e6, 3));
		json_object_object_add(j, "throttle_pct",
		                       json_object_new_int((int)rr->throttle_pct));
		json_object_array_add(rounds, j);
	}
	json_object_object_add(o, "rounds", rounds);
	json_object_object_add(o, "final_pages", json_object_new_int64((int64_t)r->final_pages));
	json_object_object_add(o, "final_bytes", json_object_new_int64((int64_t)r->final_bytes));
	json_object_object_add(o, "bytes_total", json_object_new_int64((int64_t)r->total_bytes));
	json_object_object_add(
	    o, "bytes_per_memory",
	    mig_json_number(r->nr_pages ? (double)r->total_bytes / ((double)r->nr_pages * page) : 0,
	                    4));
	json_object_object_add(o, "pages_total", json_object_new_int64((int64_t)r->total_pages));
	json_object_object_add(o, "switchover_reason",
	                       json_object_new_string(r->reason ? r->reason : ""));
	json_object_object_add(o, "max_throttle_pct", json_object_new_int((int)r->max_throttle));
	json_object_object_add(o, "dirtylog", json_object_new_string(r->dirtylog_method));
	json_object_object_add(o, "source_ram_before_mib", ram_mib(r, r->source_ram_before));
	json_object_object_add(o, "source_ram_max_mib", ram_mib(r, r->source_ram_max));
	json_object_object_add(o, "source_ram_after_mib", ram_mib(r, r->source_ram_after));
	if (r->compress)
		json_object_object_add(o, "compression", compression_json(r));
	json_object_object_add(o, "streams", json_object_new_int(r->streams ? (int)r->streams : 1));
	json_object_object_add(o, "mode", json_object_new_string(mig_mode_name(r->mode)));
	if (r->postcopy.used)
		json_object_object_add(o, "postcopy", postcopy_json(r));
	json_object_object_add(o, "verified", json_object_new_boolean(r->verified));
	json_object_object_add(o, "verify_mismatches",
	                       json_object_new_int64((int64_t)r->verify_mismatches));
	return o;
}
