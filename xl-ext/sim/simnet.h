/*
 * simnet.h - a simulated guest's network presence on its host: its vif IP as a /32 on the
 * host interface whose subnet holds it, announced by gratuitous ARP when the guest starts or
 * arrives (as netfront does after a migration), and withdrawn when it is destroyed.
 */
#ifndef XLEXT_SIM_SIMNET_H
#define XLEXT_SIM_SIMNET_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Everything slow is done by simnet_open, when the domain is created (an incoming one too):
 * finding the interface, opening the rtnetlink and packet sockets, building the ARP frame.
 * (Closing a packet socket waits for an RCU grace period, ~10 ms: never on the unpause path.)
 * simnet_attach, at unpause, is then one netlink round trip and one frame.
 */
struct simnet {
	struct in_addr addr;
	char ifname[IF_NAMESIZE];
	unsigned ifindex;
	int nl_fd;
	int pkt_fd;
	bool attached;
	uint8_t arp[28];
};

/* Prepare ip's presence on this host; ERR_NOTFOUND if no interface's subnet holds ip. */
int simnet_open(struct simnet *n, const char *ip);
/* Add ip/32 to the interface and announce it (gratuitous ARP). */
int simnet_attach(struct simnet *n);
/* Announce the address again. */
void simnet_announce(const struct simnet *n);
/* Remove ip/32 (quietly if already gone). */
int simnet_detach(struct simnet *n);
/* Detach if attached and close the sockets. */
void simnet_close(struct simnet *n);

#endif
