/*
 * The VXLAN devices of mirror targets, created and removed over rtnetlink.
 *
 * Mirroring to a collector clones sampled packets to a VXLAN device the
 * agent owns (`ip link add epmx... type vxlan id VNI remote ADDR dstport
 * PORT`), and the kernel does the encapsulation: outer IP and UDP to the
 * collector, the VXLAN header with the VNI, the original Ethernet frame
 * inside, as AWS traffic mirroring sends. Building the headers in BPF
 * instead (bpf_skb_adjust_room on a clone) would mean routing, neighbour
 * resolution, source address choice, UDP checksum and GSO segmentation of
 * our own; the kernel's driver already does all of it (docs/grayscale.md).
 *
 * Device names encode VNI and port (epmx<vni:6 hex><port:4 hex>), the pair
 * the kernel allows once per network namespace, so an agent finds the
 * devices of its predecessor by name.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "mirror_int.h"

struct nlreq {
	struct nlmsghdr nh;
	struct ifinfomsg ifi;
	char attrs[512];
};

static struct rtattr *attr_put(struct nlreq *r, unsigned short type, const void *data,
			       size_t len)
{
	struct rtattr *rta = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(rta), data, len);
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
	return rta;
}

static void attr_end(struct nlreq *r, struct rtattr *nest)
{
	nest->rta_len = (unsigned short)((char *)r + r->nh.nlmsg_len - (char *)nest);
}

/* Sends one request and waits for its acknowledgement: 0 or -errno. */
static int nl_talk(struct nlreq *r)
{
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	struct timeval tv = {.tv_sec = 2};
	char buf[4096];
	int fd, rc = 0;
	ssize_t n;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(fd, r, r->nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		rc = -errno;
	} else if ((n = recv(fd, buf, sizeof(buf), 0)) < 0) {
		rc = -errno;
	} else {
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (NLMSG_OK(h, (unsigned)n) && h->nlmsg_type == NLMSG_ERROR)
			rc = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	}
	close(fd);
	return rc;
}

void ep_mirror_vxlan_name(uint32_t vni, uint16_t port, char name[IFNAMSIZ])
{
	snprintf(name, IFNAMSIZ, EP_MIRROR_VXLAN_PREFIX "%06x%04x", vni & 0xffffffu, port);
}

int ep_mirror_vxlan_del(const char *name)
{
	struct nlreq r = {};

	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifi));
	r.nh.nlmsg_type = RTM_DELLINK;
	r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	r.ifi.ifi_family = AF_UNSPEC;
	attr_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
	return nl_talk(&r);
}

/* RTM_NEWLINK for the device: create it (change = false) or update the
 * existing one in place (change = true). The kernel refuses to change a
 * VXLAN device's port, even to the same value, so a change leaves it out;
 * the name encodes it. */
static int vxlan_request(const char *name, const struct ep_ip *remote, uint32_t vni,
			 uint16_t port, bool change)
{
	struct nlreq r = {};
	struct rtattr *info, *data;
	uint16_t port_be = htons(port);
	uint8_t off = 0;

	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifi));
	r.nh.nlmsg_type = RTM_NEWLINK;
	r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (change ? 0 : NLM_F_CREATE | NLM_F_EXCL);
	r.ifi.ifi_family = AF_UNSPEC;
	r.ifi.ifi_flags = IFF_UP;
	r.ifi.ifi_change = IFF_UP;
	attr_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
	info = attr_put(&r, IFLA_LINKINFO, NULL, 0);
	attr_put(&r, IFLA_INFO_KIND, "vxlan", 6);
	data = attr_put(&r, IFLA_INFO_DATA, NULL, 0);
	attr_put(&r, IFLA_VXLAN_ID, &vni, sizeof(vni));
	if (remote->family == EP_FAMILY_V4)
		attr_put(&r, IFLA_VXLAN_GROUP, remote->addr, 4);
	else
		attr_put(&r, IFLA_VXLAN_GROUP6, remote->addr, 16);
	if (!change)
		attr_put(&r, IFLA_VXLAN_PORT, &port_be, sizeof(port_be));
	/* A mirror only sends: nothing to learn from what comes back. */
	attr_put(&r, IFLA_VXLAN_LEARNING, &off, sizeof(off));
	attr_end(&r, data);
	attr_end(&r, info);
	return nl_talk(&r);
}

int ep_mirror_vxlan_add(const char *name, const struct ep_ip *remote, uint32_t vni,
			uint16_t port)
{
	int rc = vxlan_request(name, remote, vni, port, false);

	/* A predecessor's device of this VNI and port: keep it (its ifindex,
	 * which the datapath holds, stays valid: mirroring goes on across an
	 * agent restart) and set its remote, which may have changed. */
	if (rc == -EEXIST)
		rc = vxlan_request(name, remote, vni, port, true);
	return rc;
}
