/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Helpers shared by edgeplane BPF programs: protocol constants that vmlinux.h
 * lacks (they are macros in the uapi headers), one's-complement checksum
 * arithmetic and address helpers.
 */
#ifndef EP_BPF_H
#define EP_BPF_H

#include "edgeplane_abi.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_ALEN 6

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define NEXTHDR_MOBILITY 135
#define NEXTHDR_HIP 139
#define NEXTHDR_SHIM6 140
#define NEXTHDR_EXP1 253
#define NEXTHDR_EXP2 254

#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
#define ICMPV6_PARAMPROB 4

#define IPPROTO_ICMPV6 58

#define AF_INET 2
#define AF_INET6 10

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* Fold a 32-bit one's-complement accumulator and complement it. */
static __always_inline __u16 ep_csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a 32-bit field change. The
 * sum is byte-order neutral, so fields are used exactly as they sit in the
 * packet. */
static __always_inline void ep_csum_replace4(__u16 *sum, __u32 from, __u32 to)
{
	__u32 s = (__u16)~*sum;

	s += (~from & 0xffff) + (~from >> 16) + (to & 0xffff) + (to >> 16);
	*sum = ep_csum_fold(s);
}

static __always_inline void ep_csum_replace2(__u16 *sum, __u16 from, __u16 to)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~from + to;
	*sum = ep_csum_fold(s);
}

/* Address change of `words` 32-bit words applied to one checksum. */
static __always_inline void ep_csum_replace_addr(__u16 *sum, const __u32 *from, const __u32 *to,
						 int words)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		if (i < words)
			ep_csum_replace4(sum, from[i], to[i]);
}

static __always_inline int ep_addr_words(__u8 family)
{
	return family == EP_FAMILY_V4 ? 1 : 4;
}

static __always_inline void ep_addr_copy(__u32 *dst, const __u32 *src, int words)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		dst[i] = i < words ? src[i] : 0;
}

static __always_inline int ep_addr_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int ep_is_ipv6_exthdr(__u8 nh)
{
	switch (nh) {
	case NEXTHDR_HOP:
	case NEXTHDR_ROUTING:
	case NEXTHDR_AUTH:
	case NEXTHDR_DEST:
	case NEXTHDR_MOBILITY:
	case NEXTHDR_HIP:
	case NEXTHDR_SHIM6:
	case NEXTHDR_EXP1:
	case NEXTHDR_EXP2:
		return 1;
	}
	return 0;
}

#endif /* EP_BPF_H */
