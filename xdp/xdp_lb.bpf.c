// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * edgeplane XDP service load balancer (uplink interfaces).
 *
 * A packet to a VIP:port/proto is looked up in conntrack; on a miss a backend
 * is picked from the service's Maglev ring (canary ring first when the
 * service has a canary share), and the destination is rewritten with
 * incremental checksums. A flow is recorded in conntrack once it exists: a
 * TCP handshake's ACK, a backend's answer to a TCP flow XDP had no entry
 * for, a UDP flow's first datagram (rules at ep_balance). The packet then goes on through the
 * kernel stack (XDP_PASS) or, in redirect mode, straight to the backend's
 * interface via bpf_fib_lookup.
 *
 * Anything not addressed to a VIP passes untouched. Packets addressed to a VIP
 * that cannot be balanced safely are dropped and counted by reason; see
 * docs/datapath.md for the exact rules.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ep_bpf.h"
#include "ep_maps.bpf.h"
#include "ep_hash.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Parse verdicts; values >= 0 are enum ep_drop_reason. */
#define EP_V_PASS (-1)
#define EP_V_BALANCE (-2)
#define EP_V_ICMP_ERROR (-3)

struct ep_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* What parsing found, as pointers into the packet so the rewrite touches
 * exactly the fields that were bounds-checked. */
struct ep_pkt {
	struct ep_flow_key key; /* client -> VIP, as conntrack sees it */
	struct ethhdr *eth;
	void *l3;
	__u32 *daddr;	      /* outer destination address */
	__u16 *l3_csum;	      /* IPv4 header checksum, NULL for IPv6 */
	__u16 *pseudo_csum;   /* L4 checksum covering the pseudo header, or NULL */
	__u16 *l4_csum;	      /* L4 checksum covering the port, or NULL */
	__u16 *port;	      /* the VIP port field to rewrite */
	__u32 *inner_saddr;   /* ICMP error: quoted source address (the VIP) */
	__u16 *inner_l3_csum; /* ICMP error: quoted IPv4 header checksum */
	__u8 icmp_error;
	__u8 has_vlan;
	__u8 tcp_flags; /* 0 for UDP and ICMP */
	__u32 tcp_seq;
};

static __always_inline int ep_count_drop(struct xdp_md *ctx, int reason)
{
	__u32 key = reason;
	struct ep_drop_stats *d = bpf_map_lookup_elem(&ep_drops, &key);

	if (d) {
		d->packets++;
		d->bytes += ctx->data_end - ctx->data;
	}
	return XDP_DROP;
}

/* Cheap "maybe a VIP" test: one array load and a bit test. */
static __always_inline int ep_maybe_vip(const __u32 *addr, const __u8 family)
{
	__u32 slot = ep_vip_filter_slot(addr, family);
	__u32 word = slot / 64;
	__u64 *bits = bpf_map_lookup_elem(&ep_vip_filter, &word);

	return bits && (*bits & (1ULL << (slot % 64)));
}

/* Exact answer, for the rare paths that would drop or divert a packet. */
static __always_inline int ep_is_vip(const __u32 *addr, __u8 family)
{
	struct ep_vip_key vk = {};

	ep_addr_copy(vk.addr, addr, ep_addr_words(family));
	vk.family = family;
	return bpf_map_lookup_elem(&ep_vips, &vk) != NULL;
}

/* TCP or UDP header of the flow itself. */
static __always_inline int ep_parse_ports(void *l4, void *end, __u32 l4_len, struct ep_pkt *pkt)
{
	if (pkt->key.proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > end || l4_len < sizeof(*th))
			return EP_DROP_TRUNCATED;
		if (th->doff < 5)
			return EP_DROP_MALFORMED;
		if (th->doff * 4 > l4_len)
			return EP_DROP_TRUNCATED;
		pkt->key.sport = th->source;
		pkt->key.dport = th->dest;
		pkt->port = &th->dest;
		pkt->l4_csum = &th->check;
		pkt->pseudo_csum = &th->check;
		pkt->tcp_flags = ((__u8 *)th)[13];
		pkt->tcp_seq = th->seq;
		return EP_V_BALANCE;
	}

	struct udphdr *uh = l4;
	__u32 ulen;

	if ((void *)(uh + 1) > end || l4_len < sizeof(*uh))
		return EP_DROP_TRUNCATED;
	ulen = bpf_ntohs(uh->len);
	if (ulen < sizeof(*uh))
		return EP_DROP_MALFORMED;
	if (ulen > l4_len)
		return EP_DROP_TRUNCATED;
	pkt->key.sport = uh->source;
	pkt->key.dport = uh->dest;
	pkt->port = &uh->dest;
	if (uh->check == 0) {
		/* IPv4 may omit the UDP checksum; IPv6 may not (RFC 8200 8.1). */
		if (pkt->key.family == EP_FAMILY_V6)
			return EP_DROP_MALFORMED;
		return EP_V_BALANCE;
	}
	pkt->l4_csum = &uh->check;
	pkt->pseudo_csum = &uh->check;
	return EP_V_BALANCE;
}

/*
 * An ICMP error addressed to a VIP quotes a packet the VIP sent (a reply of a
 * balanced flow): inner source = VIP:port, inner destination = client. It is
 * translated like the flow and sent to the flow's backend, so path MTU
 * discovery and unreachable errors reach the backend's TCP stack.
 */
static __always_inline int ep_parse_icmp4(void *l4, void *end, __u32 l4_len, struct ep_pkt *pkt)
{
	struct icmphdr *ic = l4;
	struct iphdr *in;
	__u16 *ports;

	if ((void *)(ic + 1) > end || l4_len < sizeof(*ic))
		return EP_DROP_TRUNCATED;
	if (ic->type != ICMP_DEST_UNREACH && ic->type != ICMP_TIME_EXCEEDED &&
	    ic->type != ICMP_PARAMETERPROB)
		return EP_V_PASS; /* echo and friends are not ours */
	in = (void *)(ic + 1);
	ports = (void *)(in + 1);
	/* The quoted ports must lie inside the IP packet, not in frame padding. */
	if ((void *)(ports + 2) > end || l4_len < sizeof(*ic) + sizeof(*in) + 4)
		return EP_DROP_TRUNCATED;
	if (in->version != 4 || in->ihl != 5 || in->saddr != pkt->key.dst[0] ||
	    (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP))
		return EP_DROP_ICMP_NO_FLOW;
	pkt->key.src[0] = in->daddr;
	pkt->key.sport = ports[1];
	pkt->key.dport = ports[0];
	pkt->key.proto = in->protocol;
	pkt->port = &ports[0];
	pkt->l4_csum = &ic->checksum;
	pkt->pseudo_csum = NULL; /* ICMPv4 has no pseudo header */
	pkt->inner_saddr = &in->saddr;
	pkt->inner_l3_csum = &in->check;
	pkt->icmp_error = 1;
	return EP_V_ICMP_ERROR;
}

static __always_inline int ep_parse_icmp6(void *l4, void *end, __u32 l4_len, struct ep_pkt *pkt)
{
	struct icmp6hdr *ic = l4;
	struct ipv6hdr *in;
	__u16 *ports;

	if ((void *)(ic + 1) > end || l4_len < sizeof(*ic))
		return EP_DROP_TRUNCATED;
	if (ic->icmp6_type != ICMPV6_DEST_UNREACH && ic->icmp6_type != ICMPV6_PKT_TOOBIG &&
	    ic->icmp6_type != ICMPV6_TIME_EXCEED && ic->icmp6_type != ICMPV6_PARAMPROB)
		return EP_V_PASS;
	in = (void *)(ic + 1);
	ports = (void *)(in + 1);
	if ((void *)(ports + 2) > end || l4_len < sizeof(*ic) + sizeof(*in) + 4)
		return EP_DROP_TRUNCATED;
	if (!ep_addr_eq(in->saddr.in6_u.u6_addr32, pkt->key.dst) ||
	    (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP))
		return EP_DROP_ICMP_NO_FLOW;
	ep_addr_copy(pkt->key.src, in->daddr.in6_u.u6_addr32, 4);
	pkt->key.sport = ports[1];
	pkt->key.dport = ports[0];
	pkt->key.proto = in->nexthdr;
	pkt->port = &ports[0];
	pkt->l4_csum = &ic->icmp6_cksum;
	pkt->pseudo_csum = &ic->icmp6_cksum;
	pkt->inner_saddr = in->saddr.in6_u.u6_addr32;
	pkt->inner_l3_csum = NULL;
	pkt->icmp_error = 1;
	return EP_V_ICMP_ERROR;
}

static __always_inline int ep_parse_l4(void *l4, void *end, __u32 l4_len, struct ep_pkt *pkt)
{
	switch (pkt->key.proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		return ep_parse_ports(l4, end, l4_len, pkt);
	case IPPROTO_ICMP:
		if (pkt->key.family == EP_FAMILY_V4)
			return ep_parse_icmp4(l4, end, l4_len, pkt);
		return EP_V_PASS;
	case IPPROTO_ICMPV6:
		if (pkt->key.family == EP_FAMILY_V6)
			return ep_parse_icmp6(l4, end, l4_len, pkt);
		return EP_V_PASS;
	}
	return EP_V_PASS; /* another protocol to a VIP address: not a service */
}

static __always_inline int ep_parse_v4(void *l3, void *end, struct ep_pkt *pkt)
{
	struct iphdr *iph = l3;
	__u32 tot;

	/* Without a whole header there is no trustworthy destination: not ours. */
	if ((void *)(iph + 1) > end)
		return EP_V_PASS;
	pkt->key.dst[0] = iph->daddr;
	if (iph->version != 4 || iph->ihl < 5)
		return EP_DROP_MALFORMED;
	if (iph->ihl != 5)
		return EP_DROP_IP_OPTIONS;
	tot = bpf_ntohs(iph->tot_len);
	if (tot < sizeof(*iph))
		return EP_DROP_MALFORMED;
	if (l3 + tot > end)
		return EP_DROP_TRUNCATED;
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return EP_DROP_FRAGMENT;
	pkt->key.family = EP_FAMILY_V4;
	pkt->key.src[0] = iph->saddr;
	pkt->key.proto = iph->protocol;
	pkt->l3 = iph;
	pkt->daddr = &iph->daddr;
	pkt->l3_csum = &iph->check;
	return ep_parse_l4(iph + 1, end, tot - sizeof(*iph), pkt);
}

static __always_inline int ep_parse_v6(void *l3, void *end, struct ep_pkt *pkt)
{
	struct ipv6hdr *ip6h = l3;
	__u32 plen;

	if ((void *)(ip6h + 1) > end)
		return EP_V_PASS;
	ep_addr_copy(pkt->key.dst, ip6h->daddr.in6_u.u6_addr32, 4);
	if (ip6h->version != 6)
		return EP_DROP_MALFORMED;
	plen = bpf_ntohs(ip6h->payload_len);
	if ((void *)(ip6h + 1) + plen > end)
		return EP_DROP_TRUNCATED;
	if (ip6h->nexthdr == NEXTHDR_FRAGMENT)
		return EP_DROP_FRAGMENT;
	if (ep_is_ipv6_exthdr(ip6h->nexthdr))
		return EP_DROP_IPV6_EXTHDR;
	pkt->key.family = EP_FAMILY_V6;
	ep_addr_copy(pkt->key.src, ip6h->saddr.in6_u.u6_addr32, 4);
	pkt->key.proto = ip6h->nexthdr;
	pkt->l3 = ip6h;
	pkt->daddr = ip6h->daddr.in6_u.u6_addr32;
	pkt->l3_csum = NULL;
	return ep_parse_l4(ip6h + 1, end, plen, pkt);
}

/* Writes `words` address words; returns the checksum delta of the change
 * (ep_csum_delta4, unfolded) for the checksums that cover the address. */
static __always_inline __u32 ep_set_addr(__u32 *field, const __u32 *to, int words)
{
	__u32 delta = 0;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (i < words) {
			delta += ep_csum_delta4(field[i], to[i]);
			field[i] = to[i];
		}
	}
	return delta;
}

/* Rewrite VIP:port -> backend:port everywhere the packet carries it.
 * `family` is a compile-time constant at each call site, so the verifier sees
 * 4-byte rewrites on the IPv4 path and 16-byte ones on the IPv6 path. */
static __always_inline void ep_dnat(struct ep_pkt *pkt, const struct ep_ct_entry *ct,
				    const __u8 family)
{
	int words = ep_addr_words(family);
	__u32 delta;

	/* The NULL checks cost nothing and spare the verifier from proving that
	 * parsing filled every pointer on every path. */
	if (!pkt->daddr || !pkt->port)
		return;
	delta = ep_set_addr(pkt->daddr, ct->baddr, words);
	if (pkt->l3_csum)
		ep_csum_add(pkt->l3_csum, delta);
	if (!pkt->icmp_error) {
		/* A flow's own packet: the address change and the port's applied
		 * to the L4 checksum with one fold (3 ns of a 27 ns conntrack
		 * hit, docs/benchmarks.md). */
		if (pkt->l4_csum) {
			ep_csum_add(pkt->l4_csum, delta + (__u16)~*pkt->port + ct->bport);
			/* A UDP checksum that computes to 0 is sent as 0xffff (RFC 768). */
			if (pkt->key.proto == IPPROTO_UDP && *pkt->l4_csum == 0)
				*pkt->l4_csum = 0xffff;
		}
		*pkt->port = ct->bport;
		return;
	}
	/* An ICMP error: ICMPv6's checksum covers the outer destination too;
	 * the quoted packet's source changes with its IPv4 header checksum,
	 * both covered by the ICMP checksum. */
	if (pkt->pseudo_csum)
		ep_csum_add(pkt->pseudo_csum, delta);
	if (pkt->inner_saddr) {
		__u16 old_csum = pkt->inner_l3_csum ? *pkt->inner_l3_csum : 0;

		delta = ep_set_addr(pkt->inner_saddr, ct->baddr, words);
		if (pkt->inner_l3_csum)
			ep_csum_add(pkt->inner_l3_csum, delta);
		if (pkt->l4_csum)
			ep_csum_add(pkt->l4_csum, delta);
		if (pkt->inner_l3_csum && pkt->l4_csum)
			ep_csum_replace2(pkt->l4_csum, old_csum, *pkt->inner_l3_csum);
	}
	if (pkt->l4_csum)
		ep_csum_replace2(pkt->l4_csum, *pkt->port, ct->bport);
	*pkt->port = ct->bport;
}

static __always_inline int ep_pick_backend(struct ep_pkt *pkt, const struct ep_service *svc,
					   __u32 hash, struct ep_ct_entry *out)
{
	__u32 idx = svc->id * EP_RINGS_PER_SVC + EP_RING_STABLE;
	struct ep_backend *be;
	__u32 *bid = NULL;
	void *ring;
	__u32 slot;

	if (!svc->table_size)
		return -1;
	slot = hash % svc->table_size;
	if (svc->canary_bp) {
		__u32 split = (svc->flags & EP_SVC_F_STICKY_FLOW) ? hash : ep_client_hash(&pkt->key);

		if (split % EP_BP_MAX < svc->canary_bp) {
			__u32 cidx = idx + EP_RING_CANARY;

			ring = bpf_map_lookup_elem(&ep_rings, &cidx);
			if (ring)
				bid = ep_ring_slot(ring, slot);
		}
	}
	/* No canary share, or an empty canary ring: the stable ring decides. */
	if (!bid || !*bid) {
		ring = bpf_map_lookup_elem(&ep_rings, &idx);
		if (!ring)
			return -1;
		bid = ep_ring_slot(ring, slot);
		if (!bid || !*bid)
			return -1;
	}
	be = bpf_map_lookup_elem(&ep_backends, bid);
	if (!be || !(be->flags & EP_BE_F_VALID))
		return -1;
	ep_addr_copy(out->baddr, be->addr, 4);
	out->bport = be->port;
	out->flags = 0;
	out->backend_id = *bid;
	return 0;
}

static __always_inline int ep_forward(struct xdp_md *ctx, struct ep_pkt *pkt,
				      const struct ep_dp_config *cfg, const __u8 family)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	/* (port is never NULL here; the test spares the verifier proving it) */
	if (!(cfg->flags & EP_CFG_F_XDP_REDIRECT) || pkt->has_vlan || !pkt->port)
		return XDP_PASS;

	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = pkt->key.proto;
	fib.sport = pkt->key.sport;
	fib.dport = *pkt->port;
	if (family == EP_FAMILY_V4) {
		struct iphdr *iph = pkt->l3;

		fib.family = AF_INET;
		fib.tos = iph->tos;
		fib.tot_len = bpf_ntohs(iph->tot_len);
		fib.ipv4_src = iph->saddr;
		fib.ipv4_dst = iph->daddr;
	} else {
		struct ipv6hdr *ip6h = pkt->l3;

		fib.family = AF_INET6;
		fib.tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
		ep_addr_copy(fib.ipv6_src, ip6h->saddr.in6_u.u6_addr32, 4);
		ep_addr_copy(fib.ipv6_dst, ip6h->daddr.in6_u.u6_addr32, 4);
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	/* No route, no neighbour entry yet, local delivery: the stack knows best. */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;

	if (family == EP_FAMILY_V4) {
		struct iphdr *iph = pkt->l3;
		__u8 ttl = iph->ttl, proto = iph->protocol;

		if (ttl <= 1)
			return XDP_PASS; /* the stack sends the time-exceeded error */
		/* TTL and protocol share one 16-bit checksum word. Computed from
		 * values, not through a __u16 pointer into the header: with CO-RE
		 * field accesses clang may not see that pointer alias the TTL
		 * store, and then checksums the old TTL. */
		iph->ttl = ttl - 1;
		ep_csum_replace2(&iph->check, bpf_htons((__u16)(ttl << 8 | proto)),
				 bpf_htons((__u16)((ttl - 1) << 8 | proto)));
	} else {
		struct ipv6hdr *ip6h = pkt->l3;

		if (ip6h->hop_limit <= 1)
			return XDP_PASS;
		ip6h->hop_limit--;
	}
	__builtin_memcpy(pkt->eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(pkt->eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect_map(&ep_tx_ports, fib.ifindex, XDP_PASS);
}

/* The entry a handshake's record stands for (ep_syn_backend's rules). */
static __always_inline int ep_syn_entry(const struct ep_syn *rec, __u32 now_s,
					struct ep_ct_entry *out)
{
	__u32 bid;
	struct ep_backend *be = ep_syn_backend(rec, 0, now_s, &bid);

	if (!be)
		return -1;
	ep_addr_copy(out->baddr, be->addr, 4);
	out->bport = be->port;
	out->flags = 0;
	out->backend_id = bid;
	out->isn = rec->isn;
	return 0;
}

/*
 * Conntrack rules (docs/datapath.md, "Conntrack"):
 * - a packet of a known flow follows its entry;
 * - a TCP SYN is balanced statelessly (Maglev) without looking at
 *   conntrack and leaves only a half-open record (ep_syn), never a
 *   conntrack entry: a spoofed SYN flood cannot evict established flows. A
 *   retransmitted SYN is balanced the same way and replaces the record, so
 *   after a ring change the handshake moves to the new backend as a whole
 *   (reverse NAT translates only the SYN-ACK the record names);
 * - the client's ACK completing the handshake (seq = ISN + 1) creates the
 *   entry with the record's backend, so a Maglev change between SYN and ACK
 *   does not move the handshake. Any other TCP packet without an entry (a
 *   flow whose entry was evicted or forgotten, or a spoofed ACK) is an
 *   orphan: balanced by Maglev, it leaves an orphan record and no entry;
 *   reverse NAT creates the entry when the backend answers with anything
 *   but a RST (struct ep_syn). A RST leaves nothing;
 * - UDP: the first datagram creates the entry (a flow is pinned on its first
 *   packet).
 */
static __always_inline int ep_balance(struct xdp_md *ctx, struct ep_pkt *pkt, const __u8 family,
				      const __u8 proto)
{
	struct ep_backend_stats *st;
	struct ep_ct_entry fresh, *ct;
	struct ep_dp_config *cfg;
	struct ep_syn *syn_rec = NULL, *syn_rec2 = NULL;
	__u32 syn_sig = 0, orphan = 0;
	__u32 bid, zero = 0;
	int syn = (pkt->tcp_flags & (EP_TCP_SYN | EP_TCP_ACK)) == EP_TCP_SYN;

	cfg = bpf_map_lookup_elem(&ep_config, &zero);
	if (!cfg)
		return XDP_PASS;
	/* A SYN starts a connection: it never follows an entry (an entry on
	 * its 4-tuple belongs to an older connection; reverse NAT drops it
	 * when the backend answers this SYN), and skipping the lookup keeps a
	 * SYN flood away from conntrack altogether. */
	ct = syn ? NULL : ep_ct_lookup_p(&pkt->key, family, proto);
	if (ct && (pkt->tcp_flags & (EP_TCP_FIN | EP_TCP_RST)) && !(ct->flags & EP_CT_F_CLOSING))
		ct->flags |= EP_CT_F_CLOSING;
	if (ct) {
		/* Written once a second at most: the cache line stays shared. */
		if (ct->last_seen_s != cfg->now_s)
			ct->last_seen_s = cfg->now_s;
	} else {
		struct ep_endpoint sk = {};
		struct ep_service *svc;
		struct ep_syn *rec = NULL;
		__u32 hash, sig = 0;
		int half = 0;

		/* An ICMP error can only follow a flow that exists. */
		if (pkt->icmp_error)
			return ep_is_vip(pkt->key.dst, family) ? ep_count_drop(ctx, EP_DROP_ICMP_NO_FLOW)
							       : XDP_PASS;
		ep_addr_copy(sk.addr, pkt->key.dst, 4);
		sk.port = pkt->key.dport;
		sk.proto = pkt->key.proto;
		sk.family = pkt->key.family;
		svc = bpf_map_lookup_elem(&ep_services, &sk);
		if (!svc)
			return XDP_PASS; /* VIP address, but another port or protocol */
		hash = ep_flow_hash(&pkt->key);
		if (pkt->key.proto == IPPROTO_TCP) {
			sig = ep_syn_sig(&pkt->key, hash);
			/* The SYN only writes its record (last, below): it
			 * never loads the cold lines. The ACK of the same
			 * handshake acknowledges ISN + 1. */
			rec = syn ? NULL : ep_syn_find(hash, sig);
			half = rec && rec->isn == bpf_htonl(bpf_ntohl(pkt->tcp_seq) - 1) &&
			       ep_syn_entry(rec, cfg->now_s, &fresh) == 0;
		}
		if (!half) {
			if (ep_pick_backend(pkt, svc, hash, &fresh))
				return ep_count_drop(ctx, EP_DROP_NO_BACKEND);
			fresh.isn = pkt->tcp_seq;
			if (!syn && pkt->tcp_flags)
				fresh.isn = bpf_htonl(bpf_ntohl(pkt->tcp_seq) - 1);
		}
		fresh.last_seen_s = cfg->now_s;
		if (syn || (proto == IPPROTO_TCP && !half && !(pkt->tcp_flags & EP_TCP_RST))) {
			/* A SYN, or an orphan (struct ep_syn): a record, no
			 * entry. The backend's answer decides about the entry. */
			syn_rec = syn ? ep_syn_slot(hash) : ep_orphan_way(hash, sig);
			if (syn)
				syn_rec2 = ep_syn_slot2(hash);
			syn_sig = sig;
			if (!syn)
				orphan = EP_SYN_F_ORPHAN;
		} else if (!(pkt->tcp_flags & EP_TCP_RST)) {
			/* A RST ends a flow: there is nothing to pin. */
			ep_ct_update_p(&pkt->key, &fresh, family, proto);
			bid = fresh.backend_id;
			st = bpf_map_lookup_elem(&ep_backend_stats, &bid);
			if (st)
				st->flows++;
		}
		ct = &fresh;
	}
	bid = ct->backend_id;
	ep_dnat(pkt, ct, family);
	st = bpf_map_lookup_elem(&ep_backend_stats, &bid);
	if (st) {
		st->packets++;
		st->bytes += ctx->data_end - ctx->data;
	}
	/* The SYN's record, written last: its line is almost always cold
	 * (a random slot of 256 KiB), and x86 commits stores in order, so
	 * every store after a missing one waits behind it (measured in
	 * docs/benchmarks.md). */
	if (syn_rec)
		ep_syn_put(syn_rec, syn_sig, bid | orphan, ct->isn, cfg->now_s);
	if (syn_rec2)
		ep_syn_put(syn_rec2, syn_sig, bid, ct->isn, cfg->now_s);
	return ep_forward(ctx, pkt, cfg, family);
}

static __always_inline int ep_verdict(struct xdp_md *ctx, struct ep_pkt *pkt, int v,
				      const __u8 family)
{
	if (v == EP_V_PASS)
		return XDP_PASS;
	/* The pre-filter may say "maybe" for an address that is no VIP: only a
	 * real VIP's packets are diverted (an ICMP error) or dropped. One copy
	 * of the balancing code per conntrack protocol (see ep_ct_lookup_p). */
	if (v == EP_V_BALANCE || v == EP_V_ICMP_ERROR) {
		if (v == EP_V_ICMP_ERROR && !ep_is_vip(pkt->key.dst, family))
			return XDP_PASS;
		if (pkt->key.proto == IPPROTO_UDP)
			return ep_balance(ctx, pkt, family, IPPROTO_UDP);
		return ep_balance(ctx, pkt, family, IPPROTO_TCP);
	}
	if (!ep_is_vip(pkt->key.dst, family))
		return XDP_PASS;
	return ep_count_drop(ctx, v);
}

SEC("xdp")
int ep_xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ep_pkt pkt;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u8 has_vlan = 0;
	__u16 proto;
	int v;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct ep_vlan_hdr *vh;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = data + off;
		if ((void *)(vh + 1) > end)
			return XDP_PASS;
		proto = vh->proto;
		off += sizeof(*vh);
		has_vlan = 1;
	}
	/* Not a VIP (the common case): passed before anything else is done,
	 * the packet state below included (docs/benchmarks.md). */
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + off;

		if ((void *)(iph + 1) > end || !ep_maybe_vip(&iph->daddr, EP_FAMILY_V4))
			return XDP_PASS;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = data + off;

		if ((void *)(ip6h + 1) > end ||
		    !ep_maybe_vip(ip6h->daddr.in6_u.u6_addr32, EP_FAMILY_V6))
			return XDP_PASS;
	} else {
		return XDP_PASS;
	}
	/* Only what every path reads is initialised here (the key must be all
	 * zero padding for hashing); parsing sets the rest before it is used. */
	__builtin_memset(&pkt.key, 0, sizeof(pkt.key));
	pkt.l3_csum = pkt.pseudo_csum = pkt.l4_csum = pkt.inner_l3_csum = NULL;
	pkt.daddr = pkt.inner_saddr = NULL;
	pkt.port = NULL;
	pkt.icmp_error = pkt.tcp_flags = 0;
	pkt.has_vlan = has_vlan;
	pkt.tcp_seq = 0;
	pkt.eth = eth;
	if (proto == bpf_htons(ETH_P_IP)) {
		v = ep_parse_v4(data + off, end, &pkt);
		return ep_verdict(ctx, &pkt, v, EP_FAMILY_V4);
	}
	v = ep_parse_v6(data + off, end, &pkt);
	return ep_verdict(ctx, &pkt, v, EP_FAMILY_V6);
}
