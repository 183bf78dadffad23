/*
 * fault.c - named fault points (fault.h).
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fault.h"

#define FAULT_SPEC_MAX 512

int fault_lookup(const char *spec, const char *point)
{
	size_t plen = strlen(point);
	const char *p;

	if (!spec)
		spec = getenv("XLEXT_FAULT");
	if (!spec || !*spec)
		return 0;
	if (strlen(spec) > FAULT_SPEC_MAX)
		return -1;
	for (p = spec; *p;) {
		const char *end = strchr(p, ','), *eq;
		size_t len = end ? (size_t)(end - p) : strlen(p), nlen;

		eq = memchr(p, '=', len);
		nlen = eq ? (size_t)(eq - p) : len;
		if (nlen == 0 || !memchr(p, ':', nlen))
			return -1;
		if (nlen == plen && !memcmp(p, point, plen)) {
			size_t alen = eq ? len - nlen - 1 : 0;

			if (!eq || (alen == 4 && !memcmp(eq + 1, "kill", 4)))
				return 'k';
			if (alen == 4 && !memcmp(eq + 1, "stop", 4))
				return 's';
			return -1;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

void fault_point(const char *point)
{
	int action = fault_lookup(NULL, point);
	char line[128];
	int n;

	if (action <= 0)
		return;
	/* one write: the line is whole even when two processes share stderr */
	n = snprintf(line, sizeof(line), "xl-ext[%ld]: fault point %s: %s\n", (long)getpid(), point,
	             action == 'k' ? "killed (XLEXT_FAULT)" : "stopped (XLEXT_FAULT)");
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		n = 0;
	raise(action == 'k' ? SIGKILL : SIGSTOP);
}

void fault_point_n(const char *point, unsigned n)
{
	char name[64];

	if (!getenv("XLEXT_FAULT"))
		return;
	snprintf(name, sizeof(name), "%s-%u", point, n);
	fault_point(name);
}
