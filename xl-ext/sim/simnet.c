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

static int rtnl_addr(int cmd, struct in_addr addr, unsigned ifindex)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
		char attrs[64];
	} req;
	struct rtattr *rta;
	char reply[512];
	int fd, rc = 0;
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	req.nh.nlmsg_type = (unsigned short)cmd;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (cmd == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_REPLACE : 0);
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

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return err_from_errno(errno);
	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
		rc = err_from_errno(errno);
		goto out;
	}
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
out:
	close(fd);
	return rc;
}

/* Broadcast an ARP request for our own address, so peers and bridges learn where it is. */
static void send_garp(struct in_addr addr, const char *ifname)
{
	struct sockaddr_ll sll;
	struct ifreq ifr;
	struct ether_arp arp;
	int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));

	if (fd < 0) {
		log_warn_errno(errno, "cannot open a packet socket for gratuitous ARP on %s", ifname);
		return;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		log_warn_errno(errno, "cannot read the MAC address of %s", ifname);
		close(fd);
		return;
	}
	memset(&arp, 0, sizeof(arp));
	arp.arp_hrd = htons(ARPHRD_ETHER);
	arp.arp_pro = htons(ETH_P_IP);
	arp.arp_hln = ETH_ALEN;
	arp.arp_pln = 4;
	arp.arp_op = htons(ARPOP_REQUEST);
	memcpy(arp.arp_sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	memcpy(arp.arp_spa, &addr, 4);
	memcpy(arp.arp_tpa, &addr, 4);
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ARP);
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	sll.sll_halen = ETH_ALEN;
	memset(sll.sll_addr, 0xff, ETH_ALEN);
	for (int i = 0; i < 2; i++)
		if (sendto(fd, &arp, sizeof(arp), 0, (struct sockaddr *)&sll, sizeof(sll)) < 0)
			log_warn_errno(errno, "gratuitous ARP on %s failed", ifname);
	close(fd);
}

int simnet_attach(const char *ip, char *ifname_r, unsigned ifname_len)
{
	struct in_addr addr;
	unsigned idx;
	int rc;

	if (inet_pton(AF_INET, ip, &addr) != 1) {
		log_error("vif ip '%s' is not an IPv4 address", ip);
		return ERR_INVAL;
	}
	rc = find_ifname(addr, ifname_r, ifname_len);
	if (rc) {
		log_error("no interface on this host has a subnet containing vif ip %s", ip);
		return rc;
	}
	idx = if_nametoindex(ifname_r);
	rc = rtnl_addr(RTM_NEWADDR, addr, idx);
	if (rc) {
		log_error("cannot add %s/32 to %s: %s", ip, ifname_r, err_str(rc));
		return rc;
	}
	send_garp(addr, ifname_r);
	return 0;
}

void simnet_announce(const char *ip, const char *ifname)
{
	struct in_addr addr;

	if (inet_pton(AF_INET, ip, &addr) == 1)
		send_garp(addr, ifname);
}

int simnet_detach(const char *ip, const char *ifname)
{
	struct in_addr addr;
	unsigned idx = if_nametoindex(ifname);
	int rc;

	if (inet_pton(AF_INET, ip, &addr) != 1 || !idx)
		return ERR_INVAL;
	rc = rtnl_addr(RTM_DELADDR, addr, idx);
	if (rc == ERR_NOTFOUND)
		rc = 0;
	return rc;
}
