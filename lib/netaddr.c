#include "netaddr.h"

#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool ep_addr_is_local(const struct ep_ip *ip)
{
	struct ifaddrs *all, *a;
	bool found = false;

	if (getifaddrs(&all))
		return false;
	for (a = all; a && !found; a = a->ifa_next) {
		if (!a->ifa_addr)
			continue;
		if (ip->family == EP_FAMILY_V4 && a->ifa_addr->sa_family == AF_INET)
			found = !memcmp(&((struct sockaddr_in *)a->ifa_addr)->sin_addr, ip->addr, 4);
		else if (ip->family == EP_FAMILY_V6 && a->ifa_addr->sa_family == AF_INET6)
			found = !memcmp(&((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr, ip->addr, 16);
	}
	freeifaddrs(all);
	return found;
}

/* One RTM_NEWADDR / RTM_DELADDR request on lo, acknowledged. */
static int addr_request(int type, int flags, const struct ep_ip *ip)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
		char attrs[64];
	} req = {};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	int alen = ip->family == EP_FAMILY_V4 ? 4 : 16, fd, rc = 0;
	struct rtattr *rta;
	char buf[4096];

	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifa));
	req.nh.nlmsg_type = (unsigned short)type;
	req.nh.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | NLM_F_ACK | flags);
	req.nh.nlmsg_seq = 1;
	req.ifa.ifa_family = ip->family == EP_FAMILY_V4 ? AF_INET : AF_INET6;
	req.ifa.ifa_prefixlen = (unsigned char)(alen * 8);
	/* Host scope, like 127.0.0.1: only for this node's own use. */
	req.ifa.ifa_scope = RT_SCOPE_HOST;
	req.ifa.ifa_index = if_nametoindex("lo");
	if (!req.ifa.ifa_index)
		return -ENODEV;
	for (int attr = 0; attr < 2; attr++) {
		rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
		rta->rta_type = attr ? IFA_ADDRESS : IFA_LOCAL;
		rta->rta_len = (unsigned short)RTA_LENGTH(alen);
		memcpy(RTA_DATA(rta), ip->addr, (size_t)alen);
		req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
	}
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		rc = -errno;
	} else {
		struct timeval tv = {.tv_sec = 2};
		ssize_t n;

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			rc = -errno;
		} else {
			struct nlmsghdr *h = (struct nlmsghdr *)buf;

			if (NLMSG_OK(h, (unsigned)n) && h->nlmsg_type == NLMSG_ERROR)
				rc = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
		}
	}
	close(fd);
	return rc;
}

int ep_addr_add_lo(const struct ep_ip *ip, char *err, size_t errlen)
{
	int rc = addr_request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ip);
	char a[EP_IP_STRLEN];

	if (rc == -EEXIST)
		return 0;
	if (rc)
		snprintf(err, errlen, "cannot add %s to lo: %s", ep_ip_str(ip, a, sizeof(a)),
			 strerror(-rc));
	return rc;
}

int ep_addr_del_lo(const struct ep_ip *ip)
{
	return addr_request(RTM_DELADDR, 0, ip);
}
