/*
 * simnet.h - a simulated guest's network presence on its host: its vif IP as a /32 on the
 * host interface whose subnet holds it, announced by gratuitous ARP when the guest starts or
 * arrives (as netfront does after a migration), and withdrawn when it is destroyed.
 */
#ifndef XLEXT_SIM_SIMNET_H
#define XLEXT_SIM_SIMNET_H

/* Add ip/32 to the matching interface and announce it; ERR_NOTFOUND if no subnet holds it. */
int simnet_attach(const char *ip, char *ifname_r, unsigned ifname_len);
/* Announce ip on ifname again (gratuitous ARP). */
void simnet_announce(const char *ip, const char *ifname);

/* Remove ip/32 from ifname (quietly if already gone). */
int simnet_detach(const char *ip, const char *ifname);

#endif
