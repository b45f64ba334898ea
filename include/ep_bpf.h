/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Helpers shared by edgeplane BPF programs: one's-complement checksum
 * arithmetic and address helpers. The constants they and the programs use
 * come from ep_consts.bpf.h.
 */
#ifndef EP_BPF_H
#define EP_BPF_H

#include "edgeplane_abi.h"
#include "ep_consts.bpf.h"

/* Fold a 32-bit one's-complement accumulator and complement it. */
static __always_inline __u16 ep_csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). ep_csum_delta4 is ~m + m' for a
 * 32-bit field change, unfolded: deltas of several fields add up (a 16-byte
 * address and a port stay far below 2^32) and are applied with one
 * ep_csum_add. The sum is byte-order neutral, so fields are used exactly as
 * they sit in the packet. */
static __always_inline __u32 ep_csum_delta4(__u32 from, __u32 to)
{
	return (~from & 0xffff) + (~from >> 16) + (to & 0xffff) + (to >> 16);
}

static __always_inline void ep_csum_add(__u16 *sum, __u32 delta)
{
	*sum = ep_csum_fold((__u16)~*sum + delta);
}

static __always_inline void ep_csum_replace4(__u16 *sum, __u32 from, __u32 to)
{
	ep_csum_add(sum, ep_csum_delta4(from, to));
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
