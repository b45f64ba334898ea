/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Flow hashing shared by the XDP program and user space. User space needs the
 * exact same function to predict which Maglev slot a flow lands in (tests,
 * `edgeplane` diagnostics), so it lives here and nowhere else.
 *
 * Bob Jenkins' lookup3 final mix (the kernel's jhash), as Katran uses.
 */
#ifndef EP_HASH_H
#define EP_HASH_H

#include "edgeplane_abi.h"

#ifndef EP_INLINE
#ifdef __VMLINUX_H__
#define EP_INLINE static __always_inline
#else
#define EP_INLINE static inline
#endif
#endif

#define EP_JHASH_INITVAL 0xdeadbeef
#define EP_HASH_SEED_FLOW 0x5eed0001u
#define EP_HASH_SEED_CLIENT 0x5eed0002u
#define EP_HASH_SEED_SYN 0x5eed0003u

EP_INLINE __u32 ep_rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

#define EP_JHASH_MIX(a, b, c)                                                                      \
	do {                                                                                       \
		a -= c;                                                                            \
		a ^= ep_rol32(c, 4);                                                               \
		c += b;                                                                            \
		b -= a;                                                                            \
		b ^= ep_rol32(a, 6);                                                               \
		a += c;                                                                            \
		c -= b;                                                                            \
		c ^= ep_rol32(b, 8);                                                               \
		b += a;                                                                            \
		a -= c;                                                                            \
		a ^= ep_rol32(c, 16);                                                              \
		c += b;                                                                            \
		b -= a;                                                                            \
		b ^= ep_rol32(a, 19);                                                              \
		a += c;                                                                            \
		c -= b;                                                                            \
		c ^= ep_rol32(b, 4);                                                               \
		b += a;                                                                            \
	} while (0)

#define EP_JHASH_FINAL(a, b, c)                                                                    \
	do {                                                                                       \
		c ^= b;                                                                            \
		c -= ep_rol32(b, 14);                                                              \
		a ^= c;                                                                            \
		a -= ep_rol32(c, 11);                                                              \
		b ^= a;                                                                            \
		b -= ep_rol32(a, 25);                                                              \
		c ^= b;                                                                            \
		c -= ep_rol32(b, 16);                                                              \
		a ^= c;                                                                            \
		a -= ep_rol32(c, 4);                                                               \
		b ^= a;                                                                            \
		b -= ep_rol32(a, 14);                                                              \
		c ^= b;                                                                            \
		c -= ep_rol32(b, 24);                                                              \
	} while (0)

EP_INLINE __u32 ep_jhash_3words(__u32 a, __u32 b, __u32 c, __u32 initval)
{
	a += EP_JHASH_INITVAL + initval;
	b += EP_JHASH_INITVAL + initval;
	c += EP_JHASH_INITVAL + initval;
	EP_JHASH_FINAL(a, b, c);
	return c;
}

/* Five words: one mix round then the final round, as jhash2() does for length 5. */
EP_INLINE __u32 ep_jhash_5words(__u32 w0, __u32 w1, __u32 w2, __u32 w3, __u32 w4, __u32 initval)
{
	__u32 a, b, c;

	a = b = c = EP_JHASH_INITVAL + (5u << 2) + initval;
	a += w0;
	b += w1;
	c += w2;
	EP_JHASH_MIX(a, b, c);
	a += w3;
	b += w4;
	EP_JHASH_FINAL(a, b, c);
	return c;
}

/* Hash of the client side of a flow (source address and both ports). The
 * destination is implied by the service the ring belongs to. */
EP_INLINE __u32 ep_flow_hash(const struct ep_flow_key *k)
{
	__u32 ports = ((__u32)k->sport << 16) | k->dport;

	if (k->family == EP_FAMILY_V4)
		return ep_jhash_3words(k->src[0], ports, k->proto, EP_HASH_SEED_FLOW);
	return ep_jhash_5words(k->src[0], k->src[1], k->src[2], k->src[3], ports ^ k->proto,
			       EP_HASH_SEED_FLOW);
}

/* Signature of a flow in the half-open table (struct ep_syn), given its
 * flow hash: adds what the flow hash leaves out (the VIP and its port). */
EP_INLINE __u32 ep_syn_sig(const struct ep_flow_key *k, __u32 flow_hash)
{
	return ep_jhash_3words(flow_hash, k->dst[0] ^ k->dst[1] ^ k->dst[2] ^ k->dst[3],
			       ((__u32)k->dport << 16) | k->family, EP_HASH_SEED_SYN);
}

/* Hash of the client address alone: keeps a client on one side of a canary split. */
EP_INLINE __u32 ep_client_hash(const struct ep_flow_key *k)
{
	if (k->family == EP_FAMILY_V4)
		return ep_jhash_3words(k->src[0], 0, 0, EP_HASH_SEED_CLIENT);
	return ep_jhash_5words(k->src[0], k->src[1], k->src[2], k->src[3], 0, EP_HASH_SEED_CLIENT);
}

/* Conntrack (struct ep_ct_bucket4/6): the hash of a key, and its bucket
 * in a table of n buckets with seed `seed` (the table's map id: the same
 * for every program and the agent while the table lives, another for a new
 * table). Multiply-add-shift: each 32-bit word times its own odd 64-bit
 * constant, summed, the high 32 bits kept; every bit of every word reaches
 * them through the carries. (Products combined by xor and kept at 32 bits
 * put a client's source ports in 16 bits of the hash: 100,000 flows of two
 * clients shared 60,000 buckets.) The bucket is taken from the top bits
 * (multiply by n, keep the high word: no division, any n). jhash, as the
 * kernel's hash map uses, was most of a conntrack hit's cost
 * (docs/benchmarks.md). */
#define EP_CT_M0 0x9E3779B97F4A7C15ULL
#define EP_CT_M1 0xC2B2AE3D27D4EB4FULL
#define EP_CT_M2 0x165667B19E3779F9ULL
#define EP_CT_M3 0x85EBCA77C2B2AE63ULL
#define EP_CT_M4 0x27D4EB2F165667C5ULL
#define EP_CT_M5 0xD6E8FEB86659FD93ULL
#define EP_CT_M6 0xFF51AFD7ED558CCDULL
#define EP_CT_M7 0xC4CEB9FE1A85EC53ULL
#define EP_CT_M8 0x94D049BB133111EBULL
#define EP_CT_K6 0xFD7046C5u

EP_INLINE __u32 ep_ct_hash4w(__u32 src, __u32 dst, __u16 sport, __u16 dport)
{
	__u64 ports = ((__u32)sport << 16) | dport;

	return (__u32)((src * EP_CT_M0 + dst * EP_CT_M1 + ports * EP_CT_M2) >> 32);
}

EP_INLINE __u32 ep_ct_hash4(const struct ep_flow_key4 *k)
{
	return ep_ct_hash4w(k->src, k->dst, k->sport, k->dport);
}

EP_INLINE __u32 ep_ct_hash6(const struct ep_flow_key *k)
{
	__u64 ports = (((__u32)k->sport << 16) | k->dport) ^ ((__u32)k->proto << 8);

	return (__u32)((k->src[0] * EP_CT_M0 + k->src[1] * EP_CT_M1 + k->src[2] * EP_CT_M2 +
			k->src[3] * EP_CT_M3 + k->dst[0] * EP_CT_M4 + k->dst[1] * EP_CT_M5 +
			k->dst[2] * EP_CT_M6 + k->dst[3] * EP_CT_M7 + ports * EP_CT_M8) >>
		       32);
}

EP_INLINE __u32 ep_ct_index(__u32 hash, __u32 seed, __u32 n)
{
	return (__u32)(((__u64)(hash ^ (seed * EP_CT_K6)) * n) >> 32);
}

/* Slot of a destination address in the VIP pre-filter (multiplicative hash:
 * one multiply, good enough to spread a handful of VIPs). */
EP_INLINE __u32 ep_vip_filter_slot(const __u32 *addr, __u8 family)
{
	__u32 x = addr[0];

	if (family == EP_FAMILY_V6)
		x ^= addr[1] ^ addr[2] ^ addr[3];
	return (x * 0x9E3779B1u) >> (32 - EP_VIP_FILTER_BITS);
}

/* FNV-1a over a DNS name in wire format (length-prefixed labels, no
 * compression), ASCII letters folded to lower case, the terminating zero
 * included. BPF walks the question name with it; user space hashes the
 * snapshot's names the same way (ep_dns_name_hash_text). */
#define EP_FNV64_OFFSET 0xcbf29ce484222325ULL
#define EP_FNV64_PRIME 0x100000001b3ULL

EP_INLINE __u64 ep_fnv64_byte(__u64 h, __u8 c)
{
	if (c >= 'A' && c <= 'Z')
		c = (__u8)(c + 32);
	return (h ^ c) * EP_FNV64_PRIME;
}

#ifndef __VMLINUX_H__
/* "www.Example.com" / "www.example.com." -> the hash of its wire form. */
static inline __u64 ep_dns_name_hash_text(const char *name)
{
	__u64 h = EP_FNV64_OFFSET;
	const char *p = name;

	while (*p) {
		const char *dot = p;
		__u8 len = 0;

		while (*dot && *dot != '.') {
			dot++;
			len++;
		}
		if (!len)
			break;
		h = ep_fnv64_byte(h, len);
		for (const char *q = p; q < dot; q++)
			h = ep_fnv64_byte(h, (__u8)*q);
		p = *dot ? dot + 1 : dot;
	}
	return ep_fnv64_byte(h, 0);
}
#endif

#endif /* EP_HASH_H */
