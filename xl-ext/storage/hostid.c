/*
 * hostid.c - this host's name and reservation key (see hostid.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/storage/hostid.h"
#include "xl-ext/storage/owner.h"

int hostid_local(char *name, size_t len, uint64_t *key_r)
{
	const char *env = getenv("XLEXT_HOST");
	int rc;

	if (!env || !*env)
		env = getenv("XLEXT_SIM_HOST");
	if (env && *env) {
		snprintf(name, len, "%s", env);
	} else if (gethostname(name, len) || !name[0]) {
		snprintf(name, len, "localhost");
	}
	name[len - 1] = '\0';
	rc = own_host_key(name, getenv("XLEXT_PR_KEY"), key_r);
	if (rc)
		log_error(
		    "host %s: XLEXT_PR_KEY='%s' is not a reservation key (1 to 16 hex digits, "
		    "not 0); fix or unset it",
		    name, getenv("XLEXT_PR_KEY") ? getenv("XLEXT_PR_KEY") : "");
	return rc;
}
