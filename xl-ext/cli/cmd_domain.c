/*
 * cmd_domain.c - domain life-cycle commands with xl's output and exit codes: create, list,
 * destroy, pause, unpause, domid, domname, rename; and sim-check for simulated guests.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/cli/xlext.h"

static const struct option no_longopts[] = {CMD_LONGOPTS_END};

#define SPEC(name) cmd_find(&xlext_table, name, NULL)

/* Open the backend and resolve argv domain; logs and returns an error when it can't. */
static int open_domain(const char *dom, const struct hv_ops **ops, struct hv **hv, uint32_t *domid)
{
	int rc = xlext_open(NULL, ops, hv);

	if (rc)
		return rc;
	rc = (*ops)->lookup(*hv, dom, domid);
	if (rc)
		log_error("domain '%s' does not exist", dom);
	return rc;
}

int main_create(int argc, char **argv)
{
	const struct hv_ops *ops = NULL;
	struct hv *hv = NULL;
	struct hv_create_args args = {0};
	uint32_t domid;
	int opt, rc;

	CMD_FOREACH_OPT (opt, argc, argv, "p", no_longopts, &xlext_table, SPEC("create"), 1) {
	case 'p':
		args.paused = true;
		break;
	}
	rc = xlext_open(NULL, &ops, &hv);
	if (rc)
		goto out;
	rc = ops->create(hv, argv[optind], &args, &domid);
	if (rc) {
		log_error("cannot create a domain from %s: %s", argv[optind], err_str(rc));
		goto out;
	}
	fprintf(stderr, "Started domain %u from %s%s\n", domid, argv[optind],
	        args.paused ? " (paused)" : "");
out:
	if (hv)
		ops->close(hv);
	return err_exit_status(rc);
}

static void print_domain(const struct hv_domain_info *d, int verbose)
{
	printf("%-40s %5u %5llu %5u     %c%c%c%c%c%c  %8.1f", d->name, d->domid,
	       (unsigned long long)(d->memory_kib / 1024), d->vcpus, d->running ? 'r' : '-', '-',
	       d->paused ? 'p' : '-', '-', '-', d->dying ? 'd' : '-', d->cpu_time_s);
	if (verbose)
		printf(" %s", hv_type_name(d->type));
	printf("\n");
}

int main_list(int argc, char **argv)
{
	static const struct option longopts[] = {{"long", no_argument, NULL, 'l'},
	                                         {"verbose", no_argument, NULL, 'v'},
	                                         CMD_LONGOPTS_END};
	const struct hv_ops *ops = NULL;
	struct hv *hv = NULL;
	struct hv_domain_info *doms = NULL;
	size_t n = 0;
	int opt, rc, verbose = 0, found = 0;

	CMD_FOREACH_OPT (opt, argc, argv, "lv", longopts, &xlext_table, SPEC("list"), 0) {
	case 'l':
	case 'v':
		verbose = 1;
		break;
	}
	rc = xlext_open(NULL, &ops, &hv);
	if (rc)
		goto out;
	rc = ops->list(hv, &doms, &n);
	if (rc) {
		log_error("cannot list domains: %s", err_str(rc));
		goto out;
	}
	printf("Name                                        ID   Mem VCPUs\tState\tTime(s)%s\n",
	       verbose ? " Type" : "");
	for (size_t i = 0; i < n; i++) {
		char id[16];

		snprintf(id, sizeof(id), "%u", doms[i].domid);
		if (optind < argc && strcmp(argv[optind], doms[i].name) && strcmp(argv[optind], id))
			continue;
		print_domain(&doms[i], verbose);
		found++;
	}
	if (optind < argc && !found) {
		log_error("domain '%s' does not exist", argv[optind]);
		rc = ERR_NOTFOUND;
	}
out:
	free(doms);
	if (hv)
		ops->close(hv);
	return err_exit_status(rc);
}

/* destroy, pause, unpause: one domain, one operation */
static int simple_op(int argc, char **argv, const char *name,
                     int (*op)(const struct hv_ops *, struct hv *, uint32_t))
{
	const struct hv_ops *ops = NULL;
	struct hv *hv = NULL;
	uint32_t domid;
	int opt, rc;

	CMD_FOREACH_OPT (opt, argc, argv, "", no_longopts, &xlext_table, SPEC(name), 1) {
	default:
		break;
	}
	rc = open_domain(argv[optind], &ops, &hv, &domid);
	if (!rc) {
		rc = op(ops, hv, domid);
		if (rc)
			log_error("%s of domain '%s' failed: %s", name, argv[optind], err_str(rc));
	}
	if (hv)
		ops->close(hv);
	return err_exit_status(rc);
}

static int op_destroy(const struct hv_ops *ops, struct hv *hv, uint32_t domid)
{
	return ops->destroy(hv, domid);
}

static int op_pause(const struct hv_ops *ops, struct hv *hv, uint32_t domid)
{
	return ops->pause(hv, domid);
}

static int op_unpause(const struct hv_ops *ops, struct hv *hv, uint32_t domid)
{
	return ops->unpause(hv, domid);
}

int main_destroy(int argc, char **argv)
{
	return simple_op(argc, argv, "destroy", op_destroy);
}

int main_pause(int argc, char **argv)
{
	return simple_op(argc, argv, "pause", op_pause);
}

int main_unpause(int argc, char **argv)
{
	return simple_op(argc, argv, "unpause", op_unpause);
}

int main_domid(int argc, char **argv)
{
	const struct hv_ops *ops = NULL;
	struct hv *hv = NULL;
	uint32_t domid;
	int opt, rc;

	CMD_FOREACH_OPT (opt, argc, argv, "", no_longopts, &xlext_table, SPEC("domid"), 1) {
	default:
		break;
	}
	rc = xlext_open(NULL, &ops, &hv);
	if (!rc) {
		rc = ops->lookup(hv, argv[optind], &domid);
		if (rc)
			log_error("can't get domid of domain name '%s', maybe this domain does not "
			          "exist",
			          argv[optind]);
		else
			printf("%u\n", domid);
	}
	if (hv)
		ops->close(hv);
	return err_exit_status(rc);
}

int main_domname(int argc, char **argv)
{
	const struct hv_ops *ops = NULL;
	struct hv *hv = NULL;
	struct hv_domain_info info;
	char *end;
	unsigned long id;
	int opt, rc;

	CMD_FOREACH_OPT (opt, argc, argv, "", no_longopts, &xlext_table, SPEC("domname"), 1) {
	default:
		break;
	}
	id = strtoul(argv[optind], &end, 10);
	if (!argv[optind][0] || *end) {
		log_error("invalid domain identifier '%s'", argv[optind]);
		return 2;
	}
	rc = xlext_open(NULL, &ops, &hv);
	if (!rc) {
		rc = ops->info(hv, (uint32_t)id, &info);
		if (rc)
			log_error(
			    "can't get domain name of domain id '%lu', maybe this domain does "
			    "not exist",
			    id);
		else
			printf("%s\n", info.name);
	}
	if (hv)
		ops->close(hv);
	return err_exit_status(rc);
}

int main_rename(int argc, char **argv)
{
	const struct hv_ops *ops = NULL;
	struct hv *hv = NULL;
	uint32_t domid;
	int opt, rc;

	CMD_FOREACH_OPT (opt, argc, argv, "", no_longopts, &xlext_table, SPEC("rename"), 2) {
	default:
		break;
	}
	rc = open_domain(argv[optind], &ops, &hv, &domid);
	if (!rc) {
		rc = ops->rename(hv, domid, NULL, argv[optind + 1]);
		if (rc)
			log_error("cannot rename domain '%s' to '%s': %s", argv[optind],
			          argv[optind + 1], err_str(rc));
	}
	if (hv)
		ops->close(hv);
	return err_exit_status(rc);
}

int main_sim_check(int argc, char **argv)
{
	static const struct option longopts[] = {{"status", no_argument, NULL, 's'},
	                                         CMD_LONGOPTS_END};
	const struct hv_ops *ops = NULL;
	struct hv *hv = NULL;
	char out[4096];
	uint32_t domid;
	int opt, rc, status_only = 0;

	CMD_FOREACH_OPT (opt, argc, argv, "s", longopts, &xlext_table, SPEC("sim-check"), 1) {
	case 's':
		status_only = 1;
		break;
	}
	rc = open_domain(argv[optind], &ops, &hv, &domid);
	if (!rc && !ops->domain_check) {
		log_error("sim-check works on simulated domains only (backend is %s)", ops->name);
		rc = ERR_NOTSUP;
	}
	if (!rc) {
		out[0] = '\0';
		rc = ops->domain_check(hv, domid, status_only, out, sizeof(out));
		if (out[0])
			printf("%s\n", out);
		if (rc && !status_only)
			log_error("domain '%s': memory image check failed", argv[optind]);
	}
	if (hv)
		ops->close(hv);
	return err_exit_status(rc);
}
