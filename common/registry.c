/*
 * registry.c - lookup of backends by name.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/registry.h"

void registry_list(const struct registry *reg, char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < reg->nentries; i++) {
		int n;

		if (!reg->entries[i].ops)
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
		             reg->entries[i].name);
		if (n < 0 || (size_t)n >= len - used)
			return;
		used += (size_t)n;
	}
}

int registry_lookup(const struct registry *reg, const char *name, const void **ops_r, char *why,
                    size_t why_len)
{
	char names[256];

	if (!name || !name[0])
		name = reg->default_name;
	for (size_t i = 0; i < reg->nentries; i++) {
		const struct registry_entry *e = &reg->entries[i];

		if (strcmp(e->name, name) != 0)
			continue;
		if (!e->ops) {
			if (why)
				snprintf(why, why_len, "%s '%s' is not built in: %s", reg->kind,
				         name, e->why_absent ? e->why_absent : "disabled");
			return ERR_NOTSUP;
		}
		*ops_r = e->ops;
		return 0;
	}
	registry_list(reg, names, sizeof(names));
	if (why)
		snprintf(why, why_len, "unknown %s '%s' (available: %s)", reg->kind, name, names);
	return ERR_NOTFOUND;
}
