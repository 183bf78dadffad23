/*
 * cmd_info.c - "xl-ext info": the host as the selected backend sees it.
 */
#include "config.h"

#include <stdio.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/cli/xlext.h"

int main_info(int argc, char **argv)
{
	static const struct option longopts[] = {CMD_LONGOPTS_END};
	const struct hv_ops *ops = NULL;
	struct hv *hv = NULL;
	struct hv_host_info info;
	int opt, rc;

	CMD_FOREACH_OPT (opt, argc, argv, "", longopts, &xlext_table,
	                 cmd_find(&xlext_table, "info", NULL), 0) {
	default:
		break;
	}
	rc = xlext_open(NULL, &ops, &hv);
	if (rc)
		goto out;
	rc = ops->host_info(hv, &info);
	if (rc) {
		log_error("cannot read host information from the %s backend: %s", ops->name,
		          err_str(rc));
		goto out;
	}
	printf("hypervisor             : %s\n", info.hypervisor);
	printf("hypervisor_version     : %s\n", info.version);
	printf("nr_cpus                : %u\n", info.nr_cpus);
	printf("total_memory           : %llu\n", (unsigned long long)(info.total_kib / 1024));
	printf("free_memory            : %llu\n", (unsigned long long)(info.free_kib / 1024));
out:
	if (hv)
		ops->close(hv);
	return err_exit_status(rc);
}
