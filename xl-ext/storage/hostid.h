/*
 * hostid.h - who "this host" is for shared storage: its name (initiator name, messages) and
 * its persistent-reservation key.
 *
 * The name is $XLEXT_HOST, else $XLEXT_SIM_HOST (a simulated host's name), else the system
 * host name. The key is $XLEXT_PR_KEY (hex, non-zero) when set, else derived from the name
 * (own_host_key). A simulated host therefore gets its key from its name unless its
 * environment sets XLEXT_PR_KEY; "xl-ext pr -H NAME key" prints the key of host NAME.
 */
#ifndef XLEXT_STORAGE_HOSTID_H
#define XLEXT_STORAGE_HOSTID_H

#include <stddef.h>
#include <stdint.h>

/*
 * Fill name (len bytes) and *key_r for this host. Returns 0, or ERR_INVAL after logging that
 * XLEXT_PR_KEY is malformed (it names the variable and the value).
 */
int hostid_local(char *name, size_t len, uint64_t *key_r);

#endif
