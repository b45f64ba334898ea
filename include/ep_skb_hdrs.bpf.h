/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Header walking for TC programs that read packets with bpf_skb_load_bytes
 * (no packet pointers, so non-linear skbs need no pull): the IPv6 extension
 * header chain, with fragments told apart.
 *
 * XDP's load balancer drops what these walk over (docs/datapath.md: it must
 * rewrite and forward); observers such as tc/tc_dns.bpf.c must see through
 * them instead, or a forged answer could hide behind a destination options
 * header.
 */
#ifndef EP_SKB_HDRS_BPF_H
#define EP_SKB_HDRS_BPF_H

#include "ep_bpf.h"

/* Extension headers followed before giving up: real chains are 0..2 long
 * (hop-by-hop, fragment, destination options); RFC 8200 sets no limit, so
 * a longer chain is "not walked" and its callers count it. */
#define EP_IPV6_MAX_EXTHDRS 8

/* Where a packet sits in its datagram. */
#define EP_FRAG_NONE 0
#define EP_FRAG_FIRST 1 /* offset 0, more fragments: the L4 header is here */
#define EP_FRAG_LATER 2 /* offset > 0: no L4 header */

/*
 * Walks the IPv6 extension headers from *off (the first byte after the fixed
 * header) whose first type is *nh, up to end (the end of the IPv6 payload).
 * On return 0, *nh is the upper-layer protocol, *off its offset, *frag what
 * the Fragment header said (EP_FRAG_LATER: *nh is the fragmentable part's
 * first header and *off is just past the Fragment header). An atomic fragment
 * (offset 0, no more fragments; RFC 6946) is a whole datagram. ESP and
 * anything unknown end the walk like an upper-layer protocol would.
 * -1: the chain is longer than EP_IPV6_MAX_EXTHDRS or runs past end.
 *
 * Routing headers are stepped over: with segments left the node they are
 * addressed to processes them, and the final receiver only accepts the
 * packet once segments left is 0, when the destination address is its own.
 */
static __always_inline int ep_skb_ipv6_exthdrs(struct __sk_buff *skb, __u32 *off, __u8 *nh,
					       __u32 end, __u8 *frag)
{
#pragma clang loop unroll(disable)
	for (int i = 0; i < EP_IPV6_MAX_EXTHDRS; i++) {
		__u8 h[4];

		if (*nh == NEXTHDR_FRAGMENT) {
			__u16 fo;

			if (*off + 8 > end || bpf_skb_load_bytes(skb, *off, h, 4) < 0)
				return -1;
			fo = (__u16)h[2] << 8 | h[3];
			*nh = h[0];
			*off += 8;
			if (fo & 0xfff8) {
				*frag = EP_FRAG_LATER;
				return 0;
			}
			if (fo & 1)
				*frag = EP_FRAG_FIRST;
			continue;
		}
		if (!ep_is_ipv6_exthdr(*nh))
			return 0;
		if (*off + 8 > end || bpf_skb_load_bytes(skb, *off, h, 2) < 0)
			return -1;
		/* AH counts 4-byte words minus 2, the others 8-byte units minus 1 */
		*off += *nh == NEXTHDR_AUTH ? ((__u32)h[1] + 2) * 4 : ((__u32)h[1] + 1) * 8;
		*nh = h[0];
		if (*off > end)
			return -1;
	}
	return ep_is_ipv6_exthdr(*nh) || *nh == NEXTHDR_FRAGMENT ? -1 : 0;
}

#endif /* EP_SKB_HDRS_BPF_H */
