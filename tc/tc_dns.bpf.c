// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * edgeplane DNS observation and failover redirect (TC, IPv4 and IPv6, DNS over
 * UDP and the first data segment of DNS over TCP).
 *
 * ep_tc_dns_ingress (ingress of uplinks and pods interfaces):
 *   - answers from an upstream (source in ep_dns_upstreams, port 53) are
 *     matched to their query in ep_dns_pending: latency histogram, rcode,
 *     answers / unmatched; answers for names of the trusted snapshot are
 *     checked against it (divergent, optionally dropped); a share of answers,
 *     every unmatched and every divergent one is sampled to ep_dns_samples;
 *   - queries to an upstream (from pods) pass, or, in failed-over mode
 *     (ep_dns_config.mode == EP_DNS_MODE_CACHE), are rewritten to the local
 *     cache address, the stack then delivers them locally. They are not
 *     recorded here: a query that dies on the node (IP TTL 1, a firewall, no
 *     route) was never sent and must not become the upstream's timeout.
 * ep_tc_dns_egress (egress of uplinks and pods interfaces):
 *   - queries to an upstream leaving the node are recorded: only here does a
 *     query count as sent (pods' and node processes' alike);
 *   - replies of the cache to a redirected client get the upstream's address
 *     back as their source, so the client's stub accepts them;
 *   - answers from an upstream that still match a pending query are
 *     accounted (an answer that reached the node by an interface without
 *     this program; at ingress answers are matched and deleted first).
 *
 * Verdicts: TC_ACT_UNSPEC for every packet that is not rewritten or dropped,
 * so the next filter on the hook (reverse NAT) still runs; TC_ACT_OK after a
 * rewrite; TC_ACT_SHOT for a dropped answer (divergent from the snapshot
 * with EP_DNS_UP_F_DROP_DIVERGENT; matching no query in cache mode or with
 * EP_DNS_UP_F_DROP_UNMATCHED) or a rewrite that failed half-way (never let a
 * half-rewritten packet out). Answers to queries the agent already counted
 * as timed out count as late, not as answers.
 *
 * IPv4 options and IPv6 extension headers (up to 8) are stepped over; a
 * first fragment is parsed as far as it goes, a later one (no ports) only
 * counted. Fragmented answers cannot be checked, so where forged answers are
 * dropped (DROP_DIVERGENT, DROP_UNMATCHED, cache mode) their first fragment
 * is dropped too (ep_dns_frag_rule); counts in ep_dns_hstats.
 *
 * Everything after the fixed headers is read with bpf_skb_load_bytes, so
 * non-linear skbs need no pull. Fixed headers are read the same way, in one
 * call, into a stack buffer. Rewrites go through the checksum helpers, which
 * are correct for CHECKSUM_PARTIAL skbs (pods' veths) and complete ones.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ep_bpf.h"
#include "ep_dns_maps.bpf.h"
#include "ep_dns_wire.bpf.h"
#include "ep_skb_hdrs.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EP_L3_OFF 14 /* Ethernet; frames with VLAN tags in the data are ignored */

/* A redirected client's entry translates the cache's replies only this long
 * after its last query (a pod that later talks to the cache address itself
 * from the same port must not see its replies rewritten). */
#define EP_DNS_REDIR_IDLE_NS (60ULL * 1000000000ULL)

/* Samples per second and CPU, and the burst: a flood of spoofed answers
 * must not swamp the ring buffer or the agent. */
#define EP_DNS_SAMPLE_RATE 2000
#define EP_DNS_SAMPLE_BURST 2000
#define EP_DNS_TOKEN_NS (1000000000ULL / EP_DNS_SAMPLE_RATE)

/* ep_dns_reply_back: "not a reply of the cache to a redirected client". */
#define EP_DNS_NOT_OURS (-2)

/* The DNS wire walker's per-CPU parse buffer (ep_dns_wire.bpf.h). Only
 * answers at ingress use it (BH disabled: nothing nests on the CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ep_dns_scratch);
} dns_scratch SEC(".maps");

/* Per-CPU sampling state: token bucket and the 1-in-N countdown. */
struct ep_dns_rl {
	__u64 last_ns;
	__u64 tokens;
	__u32 count;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ep_dns_rl);
} dns_rl SEC(".maps");

/* What the fixed headers say. Ports in network order. */
struct ep_dns_pkt {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 frag;	/* EP_FRAG_*: LATER carries no ports (both 0) */
	__u8 hdrx;	/* EP_DNS_HDRX_*: what stood between the IP and L4 headers */
	__u8 pad[3];
	__u32 csum_off; /* L4 checksum */
	__u32 dns_off;	/* first byte of the DNS message (TCP: after the length prefix) */
	__u32 dns_len;	/* bytes of the message in this packet; 0 when there is none */
};

#define EP_DNS_HDRX_OPTIONS 1 /* IPv4 options */
#define EP_DNS_HDRX_EXTHDR 2  /* IPv6 extension headers */

/* ep_dns_parse: an IPv6 header chain it did not walk; addresses are set. */
#define EP_DNS_UNPARSED (-2)

/* Ethertype + the longest IP header + the longest L4 header read here. The
 * IP header starts 4-aligned (stack reads must be aligned). */
struct ep_hdr_buf {
	__u16 align;
	__be16 ethertype;
	__u8 l3[40 + 20];
};

/* The L4 header at off into dst (20 bytes, or what the frame has, at least
 * 8), for headers not at the fixed offset the first read assumed. Returns
 * the bytes read, or -1. */
static __always_inline int ep_dns_load_l4(struct __sk_buff *skb, __u32 off, __u8 *dst)
{
	__u64 want;

	if (off + 8 > skb->len)
		return -1;
	want = skb->len - off;
	if (want > 20)
		want = 20;
	EP_BARRIER_VAR(want);
	if (want < 8 || want > 20)
		return -1;
	if (bpf_skb_load_bytes(skb, off, dst, want) < 0)
		return -1;
	return (int)want;
}

/* Fills p from the fixed headers. IPv4 options and IPv6 extension headers
 * are stepped over (the common case, neither, costs nothing more); a first
 * fragment is parsed as far as it goes (p->frag EP_FRAG_FIRST, dns_len the
 * bytes in this fragment); a later fragment returns 0 with p->frag
 * EP_FRAG_LATER, the protocol and addresses, and no ports. -1: not IPv4/IPv6
 * UDP/TCP we look at (truncated, VLAN tags in the frame, lengths that do not
 * add up); EP_DNS_UNPARSED: an IPv6 header chain not walked (addresses set,
 * for the caller to count). */
static __always_inline int ep_dns_parse(struct __sk_buff *skb, struct ep_dns_pkt *p)
{
	struct ep_hdr_buf h = {};
	__u32 len = skb->len, ip_len, l4_off, l4_len;
	__u64 want; /* 64-bit: no zero-extended copy for clang to test instead */
	const __u8 *l4;

	if (len < 12 + 2 + 20 + 8)
		return -1;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		const __u8 *ip = h.l3;
		__u32 hl = 20;
		__u16 fo;

		want = len - 12;
		if (want > 2 + 20 + 20)
			want = 2 + 20 + 20;
		EP_BARRIER_VAR(want);
		if (want < 2 + 20 + 8 || want > 2 + 20 + 20)
			return -1;
		if (bpf_skb_load_bytes(skb, 12, &h.ethertype, want) < 0)
			return -1;
		if (h.ethertype != skb->protocol)
			return -1;
		if (ip[0] != 0x45) { /* not version 4 without options */
			if ((ip[0] >> 4) != 4 || (ip[0] & 0xf) < 5)
				return -1;
			hl = (__u32)(ip[0] & 0xf) * 4;
			p->hdrx = EP_DNS_HDRX_OPTIONS;
		}
		ip_len = ep_get16(ip + 2);
		if (ip_len < hl || ip_len > len - EP_L3_OFF)
			return -1;
		p->family = EP_FAMILY_V4;
		p->proto = ip[9];
		__builtin_memcpy(&p->saddr[0], ip + 12, 4);
		__builtin_memcpy(&p->daddr[0], ip + 16, 4);
		fo = ep_get16(ip + 6);
		if (fo & (IP_MF | IP_OFFSET)) {
			if (p->proto != IPPROTO_UDP && p->proto != IPPROTO_TCP)
				return -1;
			if (fo & IP_OFFSET) {
				p->frag = EP_FRAG_LATER;
				return 0;
			}
			p->frag = EP_FRAG_FIRST;
		}
		l4_off = EP_L3_OFF + hl;
		l4_len = ip_len - hl;
		l4 = ip + 20;
		if (hl == 20) {
			want -= 2 + 20;
		} else {
			int got = ep_dns_load_l4(skb, l4_off, h.l3 + 20);

			if (got < 0)
				return -1;
			want = got;
		}
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		const __u8 *ip = h.l3;

		if (len < 12 + 2 + 40 + 8)
			return -1;
		want = len - 12;
		if (want > 2 + 40 + 20)
			want = 2 + 40 + 20;
		EP_BARRIER_VAR(want);
		if (want < 2 + 40 + 8 || want > 2 + 40 + 20)
			return -1;
		if (bpf_skb_load_bytes(skb, 12, &h.ethertype, want) < 0)
			return -1;
		if (h.ethertype != skb->protocol)
			return -1;
		if ((ip[0] >> 4) != 6)
			return -1;
		p->proto = ip[6];
		ip_len = ep_get16(ip + 4);
		if (ip_len == 0 || ip_len > len - EP_L3_OFF - 40)
			return -1;
		p->family = EP_FAMILY_V6;
		__builtin_memcpy(p->saddr, ip + 8, 16);
		__builtin_memcpy(p->daddr, ip + 24, 16);
		l4_off = EP_L3_OFF + 40;
		l4_len = ip_len;
		l4 = ip + 40;
		want -= 2 + 40;
		if (ep_is_ipv6_exthdr(p->proto) || p->proto == NEXTHDR_FRAGMENT) {
			__u32 end = l4_off + ip_len;
			int got;

			p->hdrx = EP_DNS_HDRX_EXTHDR;
			if (ep_skb_ipv6_exthdrs(skb, &l4_off, &p->proto, end, &p->frag) < 0)
				return EP_DNS_UNPARSED;
			if (p->proto != IPPROTO_UDP && p->proto != IPPROTO_TCP)
				return -1;
			if (p->frag == EP_FRAG_LATER)
				return 0;
			if (l4_off > end)
				return -1;
			l4_len = end - l4_off;
			got = ep_dns_load_l4(skb, l4_off, h.l3 + 40);
			if (got < 0)
				return -1;
			want = got;
		}
	} else {
		return -1;
	}

	if (p->proto == IPPROTO_UDP) {
		__u32 ulen;

		if (l4_len < 8)
			return -1;
		ulen = ep_get16(l4 + 4);
		if (ulen < 8)
			return -1;
		if (p->frag == EP_FRAG_FIRST) {
			/* the length is the datagram's; this fragment holds less */
			if (ulen < l4_len)
				return -1;
			ulen = l4_len;
		} else if (ulen > l4_len) {
			return -1;
		}
		p->sport = *(__u16 *)l4;
		p->dport = *(__u16 *)(l4 + 2);
		p->csum_off = l4_off + 6;
		p->dns_off = l4_off + 8;
		p->dns_len = ulen - 8;
		return 0;
	}
	if (p->proto == IPPROTO_TCP) {
		__u32 doff;

		if (l4_len < 20 || want < 20)
			return -1;
		doff = (__u32)(l4[12] >> 4) * 4;
		if (doff < 20 || doff > l4_len)
			return -1;
		p->sport = *(__u16 *)l4;
		p->dport = *(__u16 *)(l4 + 2);
		p->tcp_flags = l4[13];
		p->csum_off = l4_off + 16;
		/* DNS over TCP: a 2-byte length, then the message. Only a
		 * segment that starts with them is looked at (ep_dns_tcp_msg). */
		if (l4_len - doff >= 2 + EP_DNS_HDR_LEN) {
			p->dns_off = l4_off + doff + 2;
			p->dns_len = l4_len - doff - 2;
		}
		return 0;
	}
	return -1;
}

/* TCP: bound the message by its length prefix. -1 when the segment carries
 * no message start (no payload, or a prefix shorter than a header). */
static __always_inline int ep_dns_tcp_msg(struct __sk_buff *skb, struct ep_dns_pkt *p)
{
	__be16 l;
	__u32 mlen;

	if (p->proto != IPPROTO_TCP)
		return 0;
	if (!p->dns_len || bpf_skb_load_bytes(skb, p->dns_off - 2, &l, 2) < 0)
		return -1;
	mlen = bpf_ntohs(l);
	if (mlen < EP_DNS_HDR_LEN)
		return -1;
	if (mlen < p->dns_len)
		p->dns_len = mlen;
	return 0;
}

/* The DNS header. -1: no DNS message here (TCP segment without one),
 * -2: too short to be DNS. */
static __always_inline int ep_dns_read_hdr(struct __sk_buff *skb, struct ep_dns_pkt *p,
					   struct ep_dns_hdr *h)
{
	if (ep_dns_tcp_msg(skb, p) < 0)
		return -1;
	if (p->dns_len < EP_DNS_HDR_LEN)
		return -2;
	if (bpf_skb_load_bytes(skb, p->dns_off, h, EP_DNS_HDR_LEN) < 0)
		return -2;
	return 0;
}

static __always_inline struct ep_dns_stats *ep_dns_stats_of(__u32 idx)
{
	return bpf_map_lookup_elem(&ep_dns_stats, &idx);
}

static __always_inline struct ep_dns_config *ep_dns_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ep_dns_config, &zero);
}

/* ==== fragments, IPv4 options, IPv6 extension headers ==================== */

static __always_inline struct ep_dns_hdr_stats *ep_dns_hstats_of(__u32 idx)
{
	return bpf_map_lookup_elem(&ep_dns_hstats, &idx);
}

/* The fragment rule (docs/dns-failover.md): a fragmented answer cannot be
 * checked (the records may sit in a later fragment, or a forged later
 * fragment may replace them in reassembly), so wherever the node would drop
 * a forged answer it drops fragmented ones too: divergent answers dropped
 * (dns.failover.drop_divergent), a spoofing flood, or failed over. Dropping
 * the first fragment is enough: without it the datagram never reassembles. */
static __always_inline int ep_dns_frag_rule(const struct ep_dns_upstream *up,
					    const struct ep_dns_config *cfg)
{
	return (up->flags & (EP_DNS_UP_F_DROP_DIVERGENT | EP_DNS_UP_F_DROP_UNMATCHED)) ||
	       (cfg && cfg->mode == EP_DNS_MODE_CACHE);
}

/* DNS to/from upstream idx behind options or extension headers, or a first
 * fragment: counted once (answers at ingress, queries at egress). */
static __always_inline void ep_dns_count_hdrs(const struct ep_dns_pkt *p, __u32 idx)
{
	struct ep_dns_hdr_stats *hs;

	if (!p->hdrx && !p->frag)
		return;
	hs = ep_dns_hstats_of(idx);
	if (!hs)
		return;
	if (p->hdrx == EP_DNS_HDRX_OPTIONS)
		hs->ip_options++;
	else if (p->hdrx == EP_DNS_HDRX_EXTHDR)
		hs->ipv6_exthdr++;
	if (p->frag == EP_FRAG_FIRST)
		hs->frag_first++;
}

/* A later fragment from (ingress) or to (egress) an upstream: no ports, so
 * not known to be DNS, and nothing in it to check. Counted and passed: the
 * rule drops its first fragment, and without that it never reassembles. */
static __always_inline int ep_dns_frag_later(const struct ep_dns_pkt *p, const int ingress)
{
	struct ep_dns_upstream *up = ep_dns_upstream_of(ingress ? p->saddr : p->daddr, p->family);
	struct ep_dns_hdr_stats *hs;

	if (up && (hs = ep_dns_hstats_of(up->idx)))
		hs->frag_later++;
	return TC_ACT_UNSPEC;
}

/* An IPv6 header chain not walked (longer than EP_IPV6_MAX_EXTHDRS, or
 * running past the payload): from an upstream, whatever it carries cannot
 * be checked, so the fragment rule drops it too. */
static __always_inline int ep_dns_unparsed(const struct ep_dns_pkt *p, const int ingress)
{
	struct ep_dns_upstream *up = ep_dns_upstream_of(ingress ? p->saddr : p->daddr, p->family);
	struct ep_dns_hdr_stats *hs;

	if (!up || !(hs = ep_dns_hstats_of(up->idx)))
		return TC_ACT_UNSPEC;
	hs->unparsed++;
	if (ingress && ep_dns_frag_rule(up, ep_dns_cfg())) {
		hs->unparsed_dropped++;
		return TC_ACT_SHOT;
	}
	return TC_ACT_UNSPEC;
}

/* The cache's address of a family, 0 when it has none. */
static __always_inline int ep_dns_cache_addr(const struct ep_dns_config *c, __u8 family,
					     __u32 *out)
{
	if (family == EP_FAMILY_V4) {
		if (!c->cache_family4 || !c->cache_addr4)
			return 0;
		out[0] = c->cache_addr4;
		out[1] = out[2] = out[3] = 0;
		return 1;
	}
	if (!c->cache_family6)
		return 0;
	ep_addr_copy(out, c->cache_addr6, 4);
	return 1;
}

/* Rewrites the source (dst == 0) or destination address to `to`, with the
 * IPv4 header checksum and the L4 checksum (pseudo header) fixed up. UDP over
 * IPv4 without a checksum keeps 0; a result of 0 is sent as 0xffff. skb->csum
 * of CHECKSUM_COMPLETE skbs stays the sum of the bytes (IPv4: the address and
 * header checksum changes cancel out, the helper accounts for the L4 one). */
static __always_inline int ep_dns_set_addr(struct __sk_buff *skb, const struct ep_dns_pkt *p,
					   const int dst, const __u32 *to)
{
	__u64 l4_flags = BPF_F_PSEUDO_HDR | (p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);

	if (p->family == EP_FAMILY_V4) {
		__u32 off = EP_L3_OFF + (dst ? offsetof(struct iphdr, daddr)
					     : offsetof(struct iphdr, saddr));
		__u32 from = dst ? p->daddr[0] : p->saddr[0], new = to[0];

		if (bpf_l3_csum_replace(skb, EP_L3_OFF + offsetof(struct iphdr, check), from, new,
					4) < 0)
			return -1;
		if (bpf_l4_csum_replace(skb, p->csum_off, from, new, l4_flags | 4) < 0)
			return -1;
		return bpf_skb_store_bytes(skb, off, &new, 4, 0);
	} else {
		__u32 off = EP_L3_OFF + (dst ? offsetof(struct ipv6hdr, daddr)
					     : offsetof(struct ipv6hdr, saddr));
		__u32 from[4], new[4];
		__s64 diff;

		ep_addr_copy(from, dst ? p->daddr : p->saddr, 4);
		ep_addr_copy(new, to, 4);
		diff = bpf_csum_diff(from, 16, new, 16, 0);
		if (bpf_l4_csum_replace(skb, p->csum_off, 0, diff, l4_flags) < 0)
			return -1;
		/* CHECKSUM_COMPLETE (uplink ingress): the helper above took the
		 * diff out of skb->csum, as if a header checksum had absorbed
		 * it; IPv6 has none, so the address bytes must put it back. */
		return bpf_skb_store_bytes(skb, off, new, 16, BPF_F_RECOMPUTE_CSUM);
	}
}

/* ==== queries ============================================================ */

/* The pending key of a query from client:cport to upstream with id txid. */
static __always_inline void ep_dns_pkey(struct ep_dns_pending_key *k, const struct ep_dns_pkt *p,
					const __u32 *client, const __u32 *upstream, __u16 cport,
					__u16 txid)
{
	ep_addr_copy(k->client, client, 4);
	ep_addr_copy(k->upstream, upstream, 4);
	k->cport = cport;
	k->txid = txid;
	k->family = p->family;
	k->proto = p->proto;
}

/* A query leaving the node: remember it for its answer. NOEXIST counts a
 * retransmitted or re-routed copy once. */
static __always_inline void ep_dns_record_query(const struct ep_dns_pkt *p,
						const struct ep_dns_upstream *up,
						const struct ep_dns_hdr *h, struct ep_dns_stats *st)
{
	struct ep_dns_pending_key k = {};
	struct ep_dns_pending v = {};

	ep_dns_pkey(&k, p, p->saddr, p->daddr, p->sport, h->id);
	v.sent_ns = bpf_ktime_get_ns();
	v.upstream_idx = up->idx;
	if (bpf_map_update_elem(&ep_dns_pending, &k, &v, BPF_NOEXIST) == 0)
		st->queries++;
}

/* A query to an upstream leaving the node (egress): this is where it counts
 * as sent. Not at ingress: a query from a pod may still die on the node
 * (IP TTL 1, a firewall, no route), and one that never left can never be
 * answered; counted there, it would be a timeout the upstream did not cause.
 * Malformed DNS counts for UDP only: a TCP segment may be the middle of a
 * long message. */
static __always_inline int ep_dns_query_out(struct __sk_buff *skb, struct ep_dns_pkt *p,
					    const struct ep_dns_upstream *up)
{
	struct ep_dns_stats *st = ep_dns_stats_of(up->idx);
	struct ep_dns_hdr h;
	int rc;

	if (!st)
		return TC_ACT_UNSPEC;
	ep_dns_count_hdrs(p, up->idx);
	rc = ep_dns_read_hdr(skb, p, &h);
	if (rc == -1)
		return TC_ACT_UNSPEC;
	if (rc < 0 || !ep_dns_is_query(&h)) {
		/* a first fragment may stop inside the header: not malformed */
		if (p->proto == IPPROTO_UDP && !(rc == -2 && p->frag))
			st->malformed++;
		return TC_ACT_UNSPEC;
	}
	ep_dns_record_query(p, up, &h, st);
	return TC_ACT_UNSPEC;
}

/* Ingress: a query to an upstream that is not redirected passes without
 * being recorded; it counts as sent when it leaves the node
 * (ep_dns_query_out, egress). */
static __always_inline int ep_dns_observe_query(struct __sk_buff *skb, struct ep_dns_pkt *p,
						const struct ep_dns_upstream *up)
{
	return TC_ACT_UNSPEC;
}

/* Failed-over mode: the query goes to the cache. Counted as redirected, not
 * recorded as pending: the upstream will never answer it, and the agent
 * would count it as a timeout. */
static __always_inline int ep_dns_redirect(struct __sk_buff *skb, struct ep_dns_pkt *p,
					   const struct ep_dns_upstream *up, const __u32 *cache,
					   struct ep_dns_redir *r, const struct ep_dns_redir_key *rk)
{
	struct ep_dns_stats *st = ep_dns_stats_of(up->idx);
	struct ep_dns_hdr h;
	int rc;

	if (r) {
		r->ts_ns = bpf_ktime_get_ns();
	} else {
		struct ep_dns_redir v = {};

		ep_addr_copy(v.upstream, p->daddr, 4);
		v.ts_ns = bpf_ktime_get_ns();
		if (bpf_map_update_elem(&ep_dns_redir, rk, &v, BPF_ANY) < 0)
			return TC_ACT_UNSPEC; /* cannot translate the reply: leave it be */
	}
	if (st) {
		rc = ep_dns_read_hdr(skb, p, &h);
		if (rc == 0 && ep_dns_is_query(&h))
			st->redirected++;
		else if (rc == -2 && p->proto == IPPROTO_UDP)
			st->malformed++;
	}
	if (ep_dns_set_addr(skb, p, 1, cache) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

/* Ingress: a query to an upstream, from a pod (or any client routed
 * through the node). */
static __always_inline int ep_dns_query_in(struct __sk_buff *skb, struct ep_dns_pkt *p,
					   const struct ep_dns_upstream *up)
{
	struct ep_dns_config *cfg = ep_dns_cfg();
	struct ep_dns_redir_key rk = {};
	struct ep_dns_redir *r;
	__u32 cache[4];
	int failed_over;

	failed_over = cfg && cfg->mode == EP_DNS_MODE_CACHE &&
		      ep_dns_cache_addr(cfg, p->family, cache);
	if (p->proto == IPPROTO_UDP) {
		/* Every datagram stands alone: the mode decides. */
		if (!failed_over)
			return ep_dns_observe_query(skb, p, up);
		ep_addr_copy(rk.client, p->saddr, 4);
		rk.cport = p->sport;
		rk.proto = p->proto;
		rk.family = p->family;
		return ep_dns_redirect(skb, p, up, cache, NULL, &rk);
	}

	/* TCP: a connection stays where its SYN went. A SYN in failed-over
	 * mode is redirected (and creates the entry); any later segment of a
	 * redirected connection follows it, even after failback; connections
	 * opened before the failover stay with the upstream. */
	ep_addr_copy(rk.client, p->saddr, 4);
	rk.cport = p->sport;
	rk.proto = p->proto;
	rk.family = p->family;
	r = bpf_map_lookup_elem(&ep_dns_redir, &rk);
	if ((p->tcp_flags & (EP_TCP_SYN | EP_TCP_ACK)) == EP_TCP_SYN) {
		if (failed_over)
			return ep_dns_redirect(skb, p, up, cache, NULL, &rk);
		if (r)
			bpf_map_delete_elem(&ep_dns_redir, &rk); /* an old connection's */
		return ep_dns_observe_query(skb, p, up);
	}
	if (r && ep_addr_eq(r->upstream, p->daddr)) {
		struct ep_dns_config *c = cfg;

		/* The cache address of the connection's family, even after the
		 * agent cleared it: the connection must stay on one side. */
		if (!c || !ep_dns_cache_addr(c, p->family, cache))
			return ep_dns_observe_query(skb, p, up);
		return ep_dns_redirect(skb, p, up, cache, r, &rk);
	}
	return ep_dns_observe_query(skb, p, up);
}

/* Egress: the cache answers a redirected client; give the answer the
 * source address the client asked. EP_DNS_NOT_OURS when this packet is not
 * such a reply. */
static __always_inline int ep_dns_reply_back(struct __sk_buff *skb, const struct ep_dns_pkt *p,
					     const struct ep_dns_config *cfg)
{
	struct ep_dns_redir_key rk = {};
	struct ep_dns_redir *r;
	__u32 cache[4], upstream[4];
	__u64 now;

	if (!ep_dns_cache_addr(cfg, p->family, cache) || !ep_addr_eq(cache, p->saddr))
		return EP_DNS_NOT_OURS;
	ep_addr_copy(rk.client, p->daddr, 4);
	rk.cport = p->dport;
	rk.proto = p->proto;
	rk.family = p->family;
	r = bpf_map_lookup_elem(&ep_dns_redir, &rk);
	if (!r)
		return EP_DNS_NOT_OURS;
	now = bpf_ktime_get_ns();
	if (now > r->ts_ns + EP_DNS_REDIR_IDLE_NS)
		return EP_DNS_NOT_OURS;
	ep_addr_copy(upstream, r->upstream, 4);
	if (ep_dns_set_addr(skb, p, 0, upstream) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

/* ==== answers ============================================================ */

static __always_inline __u32 ep_log2(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

static __always_inline void ep_dns_account(struct ep_dns_stats *st, __u64 sent_ns, __u32 rcode)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 us = now > sent_ns ? (now - sent_ns) / 1000 : 0;
	__u32 b = ep_log2(us);

	if (b >= EP_DNS_LAT_BUCKETS)
		b = EP_DNS_LAT_BUCKETS - 1;
	st->lat[b]++;
	st->lat_sum_us += us;
	st->rcode[rcode & 15]++;
	st->answers++;
}

/* Token bucket: may this CPU emit a sample now? */
static __always_inline int ep_dns_take_token(struct ep_dns_rl *rl, __u64 now)
{
	__u64 elapsed = now - rl->last_ns;

	if (now < rl->last_ns) {
		rl->last_ns = now;
	} else if (elapsed >= EP_DNS_TOKEN_NS) {
		__u64 add = elapsed / EP_DNS_TOKEN_NS;

		if (add >= EP_DNS_SAMPLE_BURST || rl->tokens + add >= EP_DNS_SAMPLE_BURST) {
			rl->tokens = EP_DNS_SAMPLE_BURST;
			rl->last_ns = now;
		} else {
			rl->tokens += add;
			rl->last_ns += add * EP_DNS_TOKEN_NS;
		}
	}
	if (!rl->tokens)
		return 0;
	rl->tokens--;
	return 1;
}

/* Divergence check and sampling of an answer seen at ingress. verdict is
 * what the caller decided so far (SHOT for an unmatched answer it drops);
 * returns the final verdict. */
static __always_inline int ep_dns_inspect(struct __sk_buff *skb, const struct ep_dns_pkt *p,
					  const struct ep_dns_upstream *up, struct ep_dns_stats *st,
					  const struct ep_dns_config *cfg, const struct ep_dns_hdr *h,
					  __u32 rcode, __u8 flags, int sample, int verdict)
{
	struct ep_dns_scratch *sc;
	struct ep_dns_rl *rl;
	__u32 zero = 0;
	__u64 n; /* 64-bit: no zero-extended copy for clang to test instead */
	int check;

	rl = bpf_map_lookup_elem(&dns_rl, &zero);
	if (!rl)
		return verdict;
	if (cfg && cfg->sample_every) {
		if (++rl->count >= cfg->sample_every) {
			rl->count = 0;
			sample = 1;
		}
	}
	/* A dropped answer needs no divergence verdict. */
	check = rcode == 0 && h->ancount != 0 && verdict != TC_ACT_SHOT;
	if (!sample && !check)
		return verdict;

	sc = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!sc)
		return verdict;
	n = p->dns_len;
	if (n > EP_DNS_SAMPLE_MAX)
		n = EP_DNS_SAMPLE_MAX;
	if (n < EP_DNS_HDR_LEN)
		return verdict;
	if (bpf_skb_load_bytes(skb, p->dns_off, sc->s.data, n) < 0)
		return verdict;

	if (check && ep_dns_divergent(sc, n, h)) {
		/* The hijack signal is a share of real answers; a forged,
		 * unmatched one is the spoofing signal's business. */
		if (!(flags & EP_DNS_SAMPLE_F_UNMATCHED))
			st->divergent++;
		flags |= EP_DNS_SAMPLE_F_DIVERGENT;
		sample = 1;
		if (up->flags & EP_DNS_UP_F_DROP_DIVERGENT) {
			/* the stub retries; failed over, the retry lands on the cache */
			st->divergent_dropped++;
			flags |= EP_DNS_SAMPLE_F_DROPPED;
			verdict = TC_ACT_SHOT;
		}
	}
	if (sample) {
		__u64 now = bpf_ktime_get_ns();

		if (ep_dns_take_token(rl, now)) {
			sc->s.ts_ns = now;
			sc->s.upstream_idx = up->idx;
			sc->s.len = n;
			sc->s.family = p->family;
			sc->s.flags = flags;
			ep_addr_copy(sc->s.client, p->daddr, 4);
			ep_addr_copy(sc->s.upstream, p->saddr, 4);
			bpf_ringbuf_output(&ep_dns_samples, &sc->s, sizeof(sc->s), 0);
		}
	}
	return verdict;
}

/* The first fragment of an answer, dropped by the fragment rule. If it
 * answers a pending query, the upstream did answer: the query is flagged so
 * the agent does not call it a timeout, and stays for an unfragmented answer
 * (a retry) to match. h: the DNS header, NULL when the fragment holds none. */
static __always_inline int ep_dns_frag_drop(const struct ep_dns_pkt *p,
					    const struct ep_dns_upstream *up,
					    const struct ep_dns_hdr *h)
{
	struct ep_dns_hdr_stats *hs = ep_dns_hstats_of(up->idx);
	struct ep_dns_pending_key k = {};
	struct ep_dns_pending *pend;

	if (hs)
		hs->frag_dropped++;
	if (!h || !(bpf_ntohs(h->flags) & EP_DNS_F_QR))
		return TC_ACT_SHOT;
	ep_dns_pkey(&k, p, p->daddr, p->saddr, p->dport, h->id);
	pend = bpf_map_lookup_elem(&ep_dns_pending, &k);
	if (pend)
		pend->flags |= EP_DNS_PENDING_F_FRAG_DROPPED;
	return TC_ACT_SHOT;
}

/* An answer from an upstream. At ingress: match, check, sample, maybe drop,
 * account. At egress: account only answers that still match a query (see
 * the top of the file); everything else was seen at ingress. */
static __always_inline int ep_dns_answer(struct __sk_buff *skb, struct ep_dns_pkt *p,
					 const struct ep_dns_upstream *up, const int ingress)
{
	struct ep_dns_stats *st = ep_dns_stats_of(up->idx);
	struct ep_dns_pending_key k = {};
	struct ep_dns_pending *pend;
	struct ep_dns_config *cfg;
	struct ep_dns_hdr h;
	__u64 sent_ns = 0;
	__u32 rcode;
	__u8 flags = 0;
	int verdict = TC_ACT_UNSPEC, sample = 0, matched = 0, timed_out = 0, rc;

	if (!st)
		return TC_ACT_UNSPEC;
	rc = ep_dns_read_hdr(skb, p, &h);
	if (ingress) {
		ep_dns_count_hdrs(p, up->idx);
		if (p->frag && ep_dns_frag_rule(up, ep_dns_cfg()))
			return ep_dns_frag_drop(p, up, rc == 0 ? &h : NULL);
	}
	if (rc == -1)
		return TC_ACT_UNSPEC;
	if (rc < 0 || !(bpf_ntohs(h.flags) & EP_DNS_F_QR)) {
		/* TCP: maybe the middle of a long message, not an error; a
		 * first fragment may stop inside the header */
		if (ingress && p->proto == IPPROTO_UDP && !(rc == -2 && p->frag))
			st->malformed++;
		return TC_ACT_UNSPEC;
	}
	rcode = bpf_ntohs(h.flags) & 0xf;

	ep_dns_pkey(&k, p, p->daddr, p->saddr, p->dport, h.id);
	cfg = ep_dns_cfg();
	pend = bpf_map_lookup_elem(&ep_dns_pending, &k);
	if (pend) {
		matched = 1;
		sent_ns = pend->sent_ns;
		timed_out = !!(pend->flags & EP_DNS_PENDING_F_TIMED_OUT);
	} else if (!ingress || p->proto == IPPROTO_TCP) {
		/* egress: matched at ingress already. TCP: a retransmitted or
		 * continued answer is no spoofing sign (and TCP cannot be
		 * spoofed without the handshake). */
		return TC_ACT_UNSPEC;
	} else {
		st->unmatched++;
		flags |= EP_DNS_SAMPLE_F_UNMATCHED;
		sample = 1;
		/* Failed over, nobody here asked the upstream anything over UDP
		 * that is still pending (pods and node processes go to the cache,
		 * the agent's probes are recorded at egress), so an unmatched
		 * answer can only be forged. Under a flood the agent asks for the
		 * same in upstream mode: the stub's port is open and the guess
		 * that matches its id must not land. */
		if ((cfg && cfg->mode == EP_DNS_MODE_CACHE) ||
		    (up->flags & EP_DNS_UP_F_DROP_UNMATCHED)) {
			st->unmatched_dropped++;
			flags |= EP_DNS_SAMPLE_F_DROPPED;
			verdict = TC_ACT_SHOT;
		}
	}
	if (ingress)
		verdict = ep_dns_inspect(skb, p, up, st, cfg, &h, rcode, flags, sample, verdict);
	if (!matched)
		return verdict;
	/* A dropped answer that matched (a forgery that guessed the id) leaves
	 * the query pending, so the real answer racing it still matches. */
	if (verdict == TC_ACT_SHOT)
		return verdict;
	/* Already counted as a timeout by the agent: late, not spoofed, and not
	 * a second verdict on the same query. */
	if (timed_out)
		st->late++;
	else
		ep_dns_account(st, sent_ns, rcode);
	bpf_map_delete_elem(&ep_dns_pending, &k);
	return verdict;
}

/* ==== programs =========================================================== */

SEC("tc")
int ep_tc_dns_ingress(struct __sk_buff *skb)
{
	struct ep_dns_pkt p = {};
	struct ep_dns_upstream *up;
	int rc = ep_dns_parse(skb, &p);

	if (rc < 0)
		return rc == EP_DNS_UNPARSED ? ep_dns_unparsed(&p, 1) : TC_ACT_UNSPEC;
	if (p.frag == EP_FRAG_LATER)
		return ep_dns_frag_later(&p, 1);
	if (p.sport == bpf_htons(EP_DNS_PORT)) {
		up = ep_dns_upstream_of(p.saddr, p.family);
		if (up)
			return ep_dns_answer(skb, &p, up, 1);
	}
	if (p.dport == bpf_htons(EP_DNS_PORT)) {
		up = ep_dns_upstream_of(p.daddr, p.family);
		/* A fragmented query is not redirected (the cache would get its
		 * first fragment, the upstream the rest); counted at egress. */
		if (up && !p.frag)
			return ep_dns_query_in(skb, &p, up);
	}
	return TC_ACT_UNSPEC;
}

SEC("tc")
int ep_tc_dns_egress(struct __sk_buff *skb)
{
	struct ep_dns_pkt p = {};
	struct ep_dns_upstream *up;
	int rc = ep_dns_parse(skb, &p);

	if (rc < 0)
		return rc == EP_DNS_UNPARSED ? ep_dns_unparsed(&p, 0) : TC_ACT_UNSPEC;
	if (p.frag == EP_FRAG_LATER)
		return ep_dns_frag_later(&p, 0);
	if (p.sport == bpf_htons(EP_DNS_PORT)) {
		struct ep_dns_config *cfg = ep_dns_cfg();

		/* a fragment's source cannot be rewritten alone (see ingress) */
		if (cfg && !p.frag) {
			int rc = ep_dns_reply_back(skb, &p, cfg);

			if (rc != EP_DNS_NOT_OURS)
				return rc;
		}
		up = ep_dns_upstream_of(p.saddr, p.family);
		if (up)
			return ep_dns_answer(skb, &p, up, 0);
	}
	if (p.dport == bpf_htons(EP_DNS_PORT)) {
		up = ep_dns_upstream_of(p.daddr, p.family);
		if (up)
			return ep_dns_query_out(skb, &p, up);
	}
	return TC_ACT_UNSPEC;
}
