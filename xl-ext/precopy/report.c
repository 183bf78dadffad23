/*
 * report.c - the migration report as JSON (migrate --json).
 */
#include "config.h"

#include <json-c/json.h>

#include "xl-ext/precopy/precopy.h"

static double span_ms(int64_t from, int64_t to)
{
	return from && to >= from ? (double)(to - from) / 1000.0 : -1;
}

/* Where the downtime went: each phase from the previous mark, -1 for a phase not reached. */
static json_object *downtime_phases(const struct mig_report *r)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "suspend",
	                       json_object_new_double(span_ms(r->t_pause_us, r->t_suspended_us)));
	json_object_object_add(
	    p, "final_copy",
	    json_object_new_double(span_ms(r->t_suspended_us, r->t_stream_end_us)));
	json_object_object_add(p, "target_ready",
	                       json_object_new_double(span_ms(r->t_stream_end_us, r->t_ready_us)));
	json_object_object_add(p, "rename_and_go",
	                       json_object_new_double(span_ms(r->t_ready_us, r->t_go_us)));
	json_object_object_add(p, "target_start",
	                       json_object_new_double(span_ms(r->t_go_us, r->t_end_us)));
	return p;
}

/* Allocated guest memory in MiB, -1 when the sender could not tell (not a sim source). */
static json_object *ram_mib(const struct mig_report *r, uint64_t bytes)
{
	return json_object_new_double(r->source_ram_sampled ? (double)bytes / 1048576.0 : -1);
}

struct json_object *mig_report_json(const struct mig_report *r)
{
	json_object *o = json_object_new_object(), *rounds = json_object_new_array();
	double page = 4096.0;
	int64_t downtime = r->t_end_us && r->t_pause_us ? r->t_end_us - r->t_pause_us : -1;

	json_object_object_add(o, "memory_bytes",
	                       json_object_new_int64((int64_t)(r->nr_pages * 4096)));
	json_object_object_add(
	    o, "total_time_ms",
	    json_object_new_double(r->t_end_us ? (double)(r->t_end_us - r->t_start_us) / 1000.0
	                                       : -1));
	json_object_object_add(
	    o, "downtime_ms",
	    json_object_new_double(downtime >= 0 ? (double)downtime / 1000.0 : -1));
	json_object_object_add(
	    o, "stop_and_copy_ms",
	    json_object_new_double(r->t_stream_end_us && r->t_pause_us
	                               ? (double)(r->t_stream_end_us - r->t_pause_us) / 1000.0
	                               : -1));
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
		                       json_object_new_double((double)rr->duration_us / 1000.0));
		json_object_object_add(j, "dirty_after",
		                       json_object_new_int64((int64_t)rr->dirty_after));
		json_object_object_add(
		    j, "dirty_rate_mibps",
		    json_object_new_double(rr->dirty_rate_pps * page / 1048576.0));
		json_object_object_add(j, "bandwidth_mbps",
		                       json_object_new_double(rr->bandwidth_Bps * 8 / 1e6));
		json_object_object_add(j, "throttle_pct",
		                       json_object_new_int((int)rr->throttle_pct));
		json_object_array_add(rounds, j);
	}
	json_object_object_add(o, "rounds", rounds);
	json_object_object_add(o, "final_pages", json_object_new_int64((int64_t)r->final_pages));
	json_object_object_add(o, "final_bytes", json_object_new_int64((int64_t)r->final_bytes));
	json_object_object_add(o, "bytes_total", json_object_new_int64((int64_t)r->total_bytes));
	json_object_object_add(o, "bytes_per_memory",
	                       json_object_new_double(r->nr_pages ? (double)r->total_bytes /
	                                                                ((double)r->nr_pages * page)
	                                                          : 0));
	json_object_object_add(o, "pages_total", json_object_new_int64((int64_t)r->total_pages));
	json_object_object_add(o, "switchover_reason",
	                       json_object_new_string(r->reason ? r->reason : ""));
	json_object_object_add(o, "max_throttle_pct", json_object_new_int((int)r->max_throttle));
	json_object_object_add(o, "dirtylog", json_object_new_string(r->dirtylog_method));
	json_object_object_add(o, "source_ram_before_mib", ram_mib(r, r->source_ram_before));
	json_object_object_add(o, "source_ram_max_mib", ram_mib(r, r->source_ram_max));
	json_object_object_add(o, "source_ram_after_mib", ram_mib(r, r->source_ram_after));
	json_object_object_add(o, "verified", json_object_new_boolean(r->verified));
	json_object_object_add(o, "verify_mismatches",
	                       json_object_new_int64((int64_t)r->verify_mismatches));
	return o;
}
