/*
 * simnet.c - rtnetlink address management and gratuitous ARP for simulated guests.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "xl-ext/sim/simnet.h"

/* The interface (not lo) with an IPv4 subnet containing addr. */
static int find_ifname(struct in_addr addr, char *ifname, unsigned len)
{
	struct ifaddrs *ifa, *i;
	int rc = ERR_NOTFOUND;

	if (getifaddrs(&ifa) < 0)
		return err_from_errno(errno);
	for (i = ifa; i; i = i->ifa_next) {
		struct sockaddr_in *a = (struct sockaddr_in *)i->ifa_addr;
		struct sockaddr_in *m = (struct sockaddr_in *)i->ifa_netmask;

		if (!a || !m || a->sin_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (m->sin_addr.s_addr == 0xffffffff)
			continue; /* another guest's /32 */
		if ((a->sin_addr.s_addr & m->sin_addr.s_addr) ==
		    (addr.s_addr & m->sin_addr.s_addr)) {
			snprintf(ifname, len, "%s", i->ifa_name);
			rc = 0;
			break;
		}
	}
	freeifaddrs(ifa);
	return rc;
}

static int rtnl_addr(int fd, int cmd, struct in_addr addr, unsigned ifindex)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
		char attrs[64];
	} req;
	struct rtattr *rta;
	char reply[512];
	int rc = 0;
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	req.nh.nlmsg_type = (unsigned short)cmd;
	req.nh.nlmsg_flags =
	    NLM_F_REQUEST | NLM_F_ACK | (cmd == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	req.ifa.ifa_family = AF_INET;
	req.ifa.ifa_prefixlen = 32;
	req.ifa.ifa_index = ifindex;
	req.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
	rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
	rta->rta_type = IFA_LOCAL;
	rta->rta_len = RTA_LENGTH(4);
	memcpy(RTA_DATA(rta), &addr, 4);
	req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
	rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
	rta->rta_type = IFA_ADDRESS;
	rta->rta_len = RTA_LENGTH(4);
	memcpy(RTA_DATA(rta), &addr, 4);
	req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);

	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0)
		return err_from_errno(errno);
	n = recv(fd, reply, sizeof(reply), 0);
	if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
		struct nlmsghdr *nh = (struct nlmsghdr *)reply;

		if (nh->nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr *e = NLMSG_DATA(nh);

			if (e->error)
				rc = err_from_errno(-e->error);
		}
	} else if (n < 0) {
		rc = err_from_errno(errno);
	}
	return rc;
}

/* An ARP request for our own address (gratuitous), so peers and bridges learn where it is. */
static int build_garp(struct simnet *n)
{
	struct ether_arp arp;
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", n->ifname);
	if (ioctl(n->pkt_fd, SIOCGIFHWADDR, &ifr) < 0) {
		log_warn_errno(errno, "cannot read the MAC address of %s", n->ifname);
		return err_from_errno(errno);
	}
	memset(&arp, 0, sizeof(arp));
	arp.arp_hrd = htons(ARPHRD_ETHER);
	arp.arp_pro = htons(ETH_P_IP);
	arp.arp_hln = ETH_ALEN;
	arp.arp_pln = 4;
	arp.arp_op = htons(ARPOP_REQUEST);
	memcpy(arp.arp_sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	memcpy(arp.arp_spa, &n->addr, 4);
	memcpy(arp.arp_tpa, &n->addr, 4);
	memcpy(n->arp, &arp, sizeof(n->arp));
	return 0;
}

int simnet_open(struct simnet *n, const char *ip)
{
	int rc;

	memset(n, 0, sizeof(*n));
	n->nl_fd = n->pkt_fd = -1;
	if (inet_pton(AF_INET, ip, &n->addr) != 1) {
		log_error("vif ip '%s' is not an IPv4 address", ip);
		return ERR_INVAL;
	}
	rc = find_ifname(n->addr, n->ifname, sizeof(n->ifname));
	if (rc) {
		log_error("no interface on this host has a subnet containing vif ip %s", ip);
		return rc;
	}
	n->ifindex = if_nametoindex(n->ifname);
	n->nl_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	n->pkt_fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
	if (n->nl_fd < 0 || n->pkt_fd < 0) {
		rc = err_from_errno(errno);
		log_error_errno(errno, "cannot open the sockets to manage vif ip %s on %s", ip,
		                n->ifname);
		simnet_close(n);
		return rc;
	}
	if (build_garp(n))
		log_warn("vif ip %s: arrivals on %s will not be announced", ip, n->ifname);
	return 0;
}

void simnet_announce(const struct simnet *n)
{
	struct sockaddr_ll sll;

	if (n->pkt_fd < 0 || (!n->arp[0] && !n->arp[1]))
		return;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ARP);
	sll.sll_ifindex = (int)n->ifindex;
	sll.sll_halen = ETH_ALEN;
	memset(sll.sll_addr, 0xff, ETH_ALEN);
	for (int i = 0; i < 2; i++)
		if (sendto(n->pkt_fd, n->arp, sizeof(n->arp), 0, (struct sockaddr *)&sll,
		           sizeof(sll)) < 0)
			log_warn_errno(errno, "gratuitous ARP on %s failed", n->ifname);
}

int simnet_attach(struct simnet *n)
{
	char ip[INET_ADDRSTRLEN];
	int rc;

	rc = rtnl_addr(n->nl_fd, RTM_NEWADDR, n->addr, n->ifindex);
	if (rc) {
		inet_ntop(AF_INET, &n->addr, ip, sizeof(ip));
		log_error("cannot add %s/32 to %s: %s", ip, n->ifname, err_str(rc));
		return rc;
	}
	n->attached = true;
	simnet_announce(n);
	return 0;
}

int simnet_detach(struct simnet *n)
{
	int rc;

	if (n->nl_fd < 0 || !n->attached)
		return 0;
	rc = rtnl_addr(n->nl_fd, RTM_DELADDR, n->addr, n->ifindex);
	n->attached = false;
	if (rc == ERR_NOTFOUND || rc == ERR_INVAL)
		rc = 0;
	return rc;
}

void simnet_close(struct simnet *n)
{
	simnet_detach(n);
	if (n->nl_fd >= 0)
		close(n->nl_fd);
	if (n->pkt_fd >= 0)
		close(n->pkt_fd);
	n->nl_fd = n->pkt_fd = -1;
}
