/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The DNS wire format as the BPF programs read it: the message header, the
 * question name hash and the walk over answer records that tells whether an
 * answer diverges from the trusted snapshot (docs/dns-failover.md).
 *
 * Why a header of its own: the walk is the part of the DNS program the
 * verifier finds hardest (bounded loops over attacker-controlled bytes), and
 * the part anything else that reads DNS in BPF would need. Kept apart from
 * the TC plumbing, it can be read, reviewed and changed on its own, and a
 * second user includes it instead of copying it.
 *
 * Everything works on a copy of the message in a per-CPU parse buffer
 * (struct ep_dns_scratch), never on packet pointers: offsets are masked with
 * EP_DNS_MSG_MASK so each read is in bounds by construction, and the loops
 * are global (__noinline) functions the verifier checks once, on their own.
 * The includer owns the buffer's map; the snapshot is ep_dns_snap
 * (ep_dns_maps.bpf.h). The global functions are defined here, so one
 * translation unit per BPF object includes this header.
 */
#ifndef EP_DNS_WIRE_BPF_H
#define EP_DNS_WIRE_BPF_H

#include "ep_consts.bpf.h"
#include "ep_dns_maps.bpf.h"
#include "ep_hash.h"

#define EP_DNS_HDR_LEN 12
#define EP_DNS_F_QR 0x8000
#define EP_DNS_TYPE_A 1
#define EP_DNS_TYPE_AAAA 28
#define EP_DNS_CLASS_IN 1
/* The parse buffer holds the first EP_DNS_SAMPLE_MAX bytes of a message;
 * offsets into it are masked so the verifier sees them in bounds. */
#define EP_DNS_MSG_MASK (EP_DNS_SAMPLE_MAX - 1)
_Static_assert((EP_DNS_SAMPLE_MAX & EP_DNS_MSG_MASK) == 0, "EP_DNS_SAMPLE_MAX: power of 2");
#define EP_DNS_NAME_MAX 255 /* wire-format name, RFC 1035 */
#define EP_DNS_MAX_RRS 8    /* answer RRs looked at for the divergence check */
/* Loop steps for walking the answer RRs: one per label of an owner name
 * (usually a single compression pointer) plus one per RR. Running out means
 * "cannot tell", never "divergent". */
#define EP_DNS_WALK_STEPS 128

/* Per-CPU parse buffer: the sample to emit, whose data[] receives the DNS
 * message. The slack keeps reads at (pos & mask) + 15 inside the value. */
struct ep_dns_scratch {
	struct ep_dns_sample s;
	__u8 slack[32];
	__u64 qhash; /* ep_dns_qname's result */
};

struct ep_dns_hdr {
	__be16 id;
	__be16 flags;
	__be16 qdcount;
	__be16 ancount;
	__be16 nscount;
	__be16 arcount;
};

/* Keeps clang from testing a copy of v and then using v itself: the
 * verifier must see the bound on the register that is used. */
#define EP_BARRIER_VAR(v) asm volatile("" : "+r"(v))

static __always_inline __u16 ep_get16(const __u8 *p)
{
	return (__u16)p[0] << 8 | p[1];
}

static __always_inline int ep_dns_is_query(const struct ep_dns_hdr *h)
{
	__u16 fl = bpf_ntohs(h->flags);

	/* QR 0, opcode 0 (QUERY), at least one question */
	return !(fl & EP_DNS_F_QR) && ((fl >> 11) & 0xf) == 0 && h->qdcount != 0;
}

/* The name hash and the RR walk are global functions: the verifier checks
 * each once, on its own, and their callers see one unknown result instead
 * of one state per loop exit (inlined, they take the program past the
 * verifier's 1M instruction budget). */

/* FNV-1a of the question name of the message in sc->s.data[0..len), exactly
 * as ep_dns_name_hash_text computes it for the text form, into sc->qhash.
 * Returns the offset just past QTYPE/QCLASS, or -1 for names it does not
 * hash (compression pointers in the question, truncated). */
__noinline int ep_dns_qname(struct ep_dns_scratch *sc, __u32 len)
{
	__u64 h = EP_FNV64_OFFSET;
	__u32 pos = EP_DNS_HDR_LEN, lab = 0;

	if (!sc || len > EP_DNS_SAMPLE_MAX)
		return -1;
#pragma clang loop unroll(disable)
	for (int i = 0; i < EP_DNS_NAME_MAX + 1; i++) {
		__u8 c;

		if (pos >= len)
			return -1;
		c = sc->s.data[pos & EP_DNS_MSG_MASK];
		pos++;
		h = ep_fnv64_byte(h, c);
		if (lab) {
			lab--;
			continue;
		}
		if (c == 0) {
			sc->qhash = h;
			pos += 4; /* QTYPE, QCLASS */
			return pos <= len ? (int)pos : -1;
		}
		if (c > 63)
			return -1;
		lab = c;
	}
	return -1;
}

/* 1: in the snapshot, 0: not, -1: the snapshot holds more than it can show. */
static __always_inline int ep_dns_a_known(const struct ep_dns_snap_entry *e, __u32 a)
{
	__u32 n = e->n4;

#pragma unroll
	for (int i = 0; i < EP_DNS_SNAP_ADDRS; i++)
		if (i < n && e->a4[i] == a)
			return 1;
	return n > EP_DNS_SNAP_ADDRS ? -1 : 0;
}

static __always_inline int ep_dns_aaaa_known(const struct ep_dns_snap_entry *e, const __u32 *a)
{
	__u32 n = e->n6;

#pragma unroll
	for (int i = 0; i < 4; i++)
		if (i < n && e->a6[i][0] == a[0] && e->a6[i][1] == a[1] && e->a6[i][2] == a[2] &&
		    e->a6[i][3] == a[3])
			return 1;
	return n > 4 ? -1 : 0;
}

/* Reads of the parse buffer for the walk below. As global functions they
 * hide the offset from the verifier's precision tracking: the walk's
 * offsets stay "imprecise", so its paths prune instead of multiplying. */
__noinline int ep_dns_rd8(struct ep_dns_scratch *sc, __u32 pos)
{
	if (!sc)
		return 0;
	return sc->s.data[pos & EP_DNS_MSG_MASK];
}

/* Returns v, as a value the verifier knows nothing about. The walk's RR
 * budget must not be a constant on some paths: checks of the RR counter
 * against it would then mark the counter precise, and every count would be
 * a state of its own at every step. */
__noinline int ep_dns_opaque(__u32 v)
{
	EP_BARRIER_VAR(v); /* or clang sees through it and uses v directly */
	return v;
}

/* One resource record's fixed part and rdata at pos (its owner name
 * already skipped), checked against the snapshot entry. Returns the offset
 * of the next RR, plus EP_DNS_RR_ADDR when it is an A/AAAA record the entry
 * does not hold; -1 when the walk must stop without a verdict (truncated,
 * or an address the entry holds or may hold). */
#define EP_DNS_RR_ADDR 0x10000
__noinline int ep_dns_rr(struct ep_dns_scratch *sc, __u32 len, __u32 pos,
			 const struct ep_dns_snap_entry *e)
{
	__u32 type, class, rdlen;
	const __u8 *q;
	int ret;

	if (!sc || !e || len > EP_DNS_SAMPLE_MAX || pos + 10 > len)
		return -1;
	q = sc->s.data + (pos & EP_DNS_MSG_MASK);
	type = ep_get16(q);
	class = ep_get16(q + 2);
	rdlen = ep_get16(q + 8);
	pos += 10;
	if (pos + rdlen > len)
		return -1;
	ret = pos + rdlen;
	q = sc->s.data + (pos & EP_DNS_MSG_MASK);
	if (class == EP_DNS_CLASS_IN && type == EP_DNS_TYPE_A && rdlen == 4) {
		__u32 a;

		__builtin_memcpy(&a, q, 4);
		if (ep_dns_a_known(e, a))
			return -1; /* shares an address, or cannot tell */
		ret |= EP_DNS_RR_ADDR;
	} else if (class == EP_DNS_CLASS_IN && type == EP_DNS_TYPE_AAAA && rdlen == 16) {
		__u32 a[4];

		__builtin_memcpy(a, q, 16);
		if (ep_dns_aaaa_known(e, a))
			return -1;
		ret |= EP_DNS_RR_ADDR;
	}
	return ret;
}

/* Walks up to EP_DNS_MAX_RRS answer RRs of the message in sc->s.data[0..len)
 * from pos, against the snapshot entry of sc->qhash. 1 when the answer has an
 * A or AAAA record and none of them is in the entry. Anything it cannot fully
 * see (an RR beyond the parse buffer, garbage, an address the snapshot may
 * hold but does not show) is "not divergent": a wrong "yes" can drop good
 * answers, a wrong "no" leaves it to the agent's checks. 0 also when the name
 * is not in the snapshot. */
__noinline int ep_dns_walk(struct ep_dns_scratch *sc, __u32 len, __u32 pos, __u32 an)
{
	const struct ep_dns_snap_entry *e;
	__u32 left, in_name = 1, seen = 0;

	if (!sc || len > EP_DNS_SAMPLE_MAX || pos >= len)
		return 0;
	e = bpf_map_lookup_elem(&ep_dns_snap, &sc->qhash);
	if (!e)
		return 0;
	left = ep_dns_opaque(an < EP_DNS_MAX_RRS ? an : EP_DNS_MAX_RRS); /* RRs to walk */
#pragma clang loop unroll(disable)
	for (int i = 0; i < EP_DNS_WALK_STEPS; i++) {
		if (!left)
			break;
		if (in_name) {
			__u32 c = ep_dns_rd8(sc, pos);

			if (c == 0) {
				pos += 1;
				in_name = 0;
			} else if ((c & 0xc0) == 0xc0) {
				pos += 2; /* compression pointer: the name ends here */
				in_name = 0;
			} else if (c & 0xc0) {
				return 0; /* extended label types: not DNS we know */
			} else {
				pos += c + 1;
			}
		} else {
			int r = ep_dns_rr(sc, len, pos, e);

			if (r < 0)
				return 0;
			seen |= r & EP_DNS_RR_ADDR;
			pos = r & (EP_DNS_RR_ADDR - 1);
			in_name = 1;
			if (!--left)
				break;
		}
		if (pos >= len)
			return 0; /* RRs left, no bytes left */
	}
	if (left)
		return 0; /* ran out of steps */
	return seen != 0;
}

/* Divergence check of a NOERROR answer held in sc->s.data[0..len). */
static __always_inline int ep_dns_divergent(struct ep_dns_scratch *sc, __u32 len,
					    const struct ep_dns_hdr *h)
{
	int pos;

	if (h->qdcount != bpf_htons(1) || !h->ancount)
		return 0;
	pos = ep_dns_qname(sc, len);
	if (pos < 0)
		return 0;
	return ep_dns_walk(sc, len, pos, bpf_ntohs(h->ancount)) == 1;
}

#endif /* EP_DNS_WIRE_BPF_H */
