/*
 * cmd_estimate.c - "xl-ext estimate": what migrating a domain to a host would take, before
 * anything moves: the domain's dirtying sampled with the hypervisor's dirty tracking, the link
 * measured by a burst through the migration's own transport (or --bandwidth), and the
 * predicted downtime, total time and bytes of pre-copy, hybrid and post-copy (predict.h), with
 * the mode "migrate --mode auto" would choose.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/cli/xlext.h"
#include "xl-ext/migration/preflight_exchange.h"
#include "xl-ext/precopy/policy.h"
#include "xl-ext/precopy/precopy.h"

enum {
	OPT_BANDWIDTH = 256,
	OPT_BURST,
	OPT_POLICY,
	OPT_MAX_DOWNTIME,
	OPT_MAX_TOTAL,
};

#define BURST_MAX (4ull << 30)

/* A size in MiB or GiB ("64MiB", "1GiB") or bytes; 0 when it is not one. */
static uint64_t burst_parse(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v <= 0)
		return 0;
	if (!strcmp(end, "MiB"))
		v *= 1048576.0;
	else if (!strcmp(end, "GiB"))
		v *= 1073741824.0;
	else if (*end)
		return 0;
	return v > (double)BURST_MAX ? 0 : (uint64_t)v;
}

int main_estimate(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"bandwidth", required_argument, NULL, OPT_BANDWIDTH},
	    {"burst", required_argument, NULL, OPT_BURST},
	    {"policy", required_argument, NULL, OPT_POLICY},
	    {"max-downtime-ms", required_argument, NULL, OPT_MAX_DOWNTIME},
	    {"max-total-s", required_argument, NULL, OPT_MAX_TOTAL},
	    CMD_LONGOPTS_END,
	};
	struct mig_params params = {
	    .policy = {.kind = PC_POLICY_ADAPTIVE, .on_stall = PC_STALL_THROTTLE}};
	struct estimate_args ea = {.params = &params};
	enum mig_mode mode = MIG_MODE_AUTO;
	const struct hv_ops *ops;
	struct hv_domain_info info;
	const char *ssh = "ssh", *host;
	uint64_t burst = PF_BURST_BYTES;
	struct hv *hv;
	uint32_t domid;
	char *end;
	int opt, rc;

	CMD_FOREACH_OPT (opt, argc, argv, "s:", longopts, &xlext_table,
	                 cmd_find(&xlext_table, "estimate", NULL), 1) {
	case 's':
		ssh = optarg;
		break;
	case OPT_BANDWIDTH:
		params.bandwidth_Bps = pc_rate_parse(optarg);
		if (!params.bandwidth_Bps) {
			log_error("--bandwidth: '%s' is not a rate (e.g. 1Gbit, 500Mbit, 100MiB)",
			          optarg);
			return 2;
		}
		break;
	case OPT_BURST:
		burst = burst_parse(optarg);
		if (burst < (1u << 20)) {
			log_error("--burst: '%s' is not a size from 1MiB to 4GiB", optarg);
			return 2;
		}
		break;
	case OPT_POLICY:
		if (pc_policy_parse(optarg, &params.policy.kind)) {
			log_error("--policy: '%s' unknown (adaptive, xen)", optarg);
			return 2;
		}
		break;
	case OPT_MAX_DOWNTIME:
		ea.max_downtime_ms = (uint32_t)strtoul(optarg, &end, 10);
		if (*end || *optarg == '-' || !ea.max_downtime_ms || ea.max_downtime_ms > 600000) {
			log_error("--max-downtime-ms: '%s' is not between 1 and 600000", optarg);
			return 2;
		}
		break;
	case OPT_MAX_TOTAL:
		ea.max_total_s = strtod(optarg, &end);
		if (*end || end == optarg || !(ea.max_total_s > 0) || ea.max_total_s > 86400) {
			log_error("--max-total-s: '%s' is not a number of seconds (0-86400)",
			          optarg);
			return 2;
		}
		break;
	}
	if (argc - optind > 2) {
		log_error("estimate: too many arguments");
		return 2;
	}
	host = argc - optind == 2 ? argv[optind + 1] : NULL;
	if (!host && !params.bandwidth_Bps) {
		log_error("estimate: which host? The link's rate is measured by a burst to it "
		          "(xl-ext estimate <domain> <host>), or give --bandwidth RATE");
		return 2;
	}
	rc = xlext_open(NULL, &ops, &hv);
	if (rc)
		return err_exit_status(rc);
	rc = ops->lookup(hv, argv[optind], &domid);
	if (rc)
		log_error("domain '%s' does not exist", argv[optind]);
	if (!rc)
		rc = ops->info(hv, domid, &info);
	if (!rc && !params.bandwidth_Bps) {
		double Bps = 0;

		rc = preflight_burst(ssh, host, burst, &Bps);
		if (!rc) {
			fprintf(stderr,
			        "estimate: the transport to %s carried %llu MiB at %.0f Mbit/s\n",
			        host, (unsigned long long)(burst >> 20), Bps * 8 / 1e6);
			params.bandwidth_Bps = (uint64_t)Bps;
		}
	}
	if (!rc) {
		ea.postcopy = ea.postcopy_backend = ops->postcopy_end != NULL;
		ea.mode_r = &mode;
		rc = preflight_estimate(ops, hv, domid, info.name, &ea);
	}
	ops->close(hv);
	return err_exit_status(rc);
}
