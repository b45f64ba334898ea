// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * edgeplane reverse NAT: TC ingress on pods interfaces, TC egress on uplinks.
 *
 * A reply from a backend (source = backend:port) is matched to its flow and
 * its source rewritten to the VIP:port the client talked to. The backend's
 * reverse index names the candidate VIP:ports; conntrack decides which one
 * this client used. Without a conntrack entry nothing is rewritten: the
 * packet may belong to a connection made to the backend directly, and
 * guessing a VIP would break it. The exceptions are the flows XDP balanced
 * without an entry, known by their records (struct ep_syn): a SYN-ACK that
 * acknowledges the ISN of a recorded SYN (its entry comes with the client's
 * ACK), and an answer to an orphan, which creates the entry here (unless it
 * is a RST). (So conntrack must be sized for the flows: docs/datapath.md.)
 *
 * Translated replies are forwarded here with bpf_fib_lookup + bpf_redirect
 * rather than handed to the stack: the stack would see a VIP source arriving
 * on a pod interface, which strict rp_filter drops and netfilter conntrack
 * cannot match to the original direction.
 *
 * Rewrites go through the skb checksum helpers, which are correct for
 * CHECKSUM_PARTIAL skbs (pods' veths offload checksums) as well as complete
 * ones.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ep_bpf.h"
#define EP_CT_OUT_OF_LINE
#include "ep_maps.bpf.h"
#include "ep_hash.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EP_IP4_CSUM_OFF offsetof(struct iphdr, check)
#define EP_IP4_SADDR_OFF offsetof(struct iphdr, saddr)
#define EP_IP4_TTL_OFF offsetof(struct iphdr, ttl)
#define EP_IP6_SADDR_OFF offsetof(struct ipv6hdr, saddr)
#define EP_IP6_HOPLIMIT_OFF offsetof(struct ipv6hdr, hop_limit)
/* Ethernet + IPv6 + ICMPv6 + quoted IPv6 + quoted ports. */
#define EP_RNAT_PULL_LEN (14 + 40 + 8 + 40 + 8)

/* Offsets (from the start of the frame) of everything the rewrite touches. */
struct ep_reply {
	struct ep_endpoint backend; /* source of the reply */
	__u32 client[4];
	__u16 cport;
	__u8 family;
	__u8 icmp_error;
	__u32 l3_off;
	__u32 saddr_off;     /* outer source address */
	__u32 sport_off;     /* port to rewrite: L4 source, or quoted destination */
	__u32 csum_off;	     /* L4 (or ICMP) checksum, 0 when absent */
	__u32 inner_addr_off; /* ICMP error: quoted destination address */
	__u32 inner_csum_off; /* ICMP error: quoted IPv4 header checksum */
	__u8 l4_is_udp;
	__u8 pseudo; /* does the L4 checksum cover the outer addresses? */
	__u8 tcp_flags;
	__u32 tcp_ack;
	__u8 inner_seq_ok; /* ICMP error about TCP: the quoted sequence number is in */
	__u32 inner_seq;
};

static __always_inline int ep_parse_reply_l4(void *data, void *end, __u32 l4_off, __u8 proto,
					     struct ep_reply *r)
{

	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = data + l4_off;

		if ((void *)(th + 1) > end)
			return -1;
		r->backend.port = th->source;
		r->cport = th->dest;
		r->sport_off = l4_off + offsetof(struct tcphdr, source);
		r->csum_off = l4_off + offsetof(struct tcphdr, check);
		r->pseudo = 1;
		r->tcp_flags = ((__u8 *)th)[13];
		r->tcp_ack = th->ack_seq;
		return 0;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = data + l4_off;

		if ((void *)(uh + 1) > end)
			return -1;
		r->backend.port = uh->source;
		r->cport = uh->dest;
		r->sport_off = l4_off + offsetof(struct udphdr, source);
		r->csum_off = l4_off + offsetof(struct udphdr, check);
		r->l4_is_udp = 1;
		r->pseudo = 1;
		return 0;
	}
	return -1;
}

/* ICMP error sent by a backend about a packet of a flow (e.g. port
 * unreachable): the quoted packet is client -> backend:port. */
static __always_inline int ep_parse_reply_icmp(void *data, void *end, __u32 l4_off, __u8 family,
					       struct ep_reply *r)
{
	__u32 in_off = l4_off + 8;
	__u16 *ports;

	if (family == EP_FAMILY_V4) {
		struct icmphdr *ic = data + l4_off;
		struct iphdr *in = data + in_off;

		if ((void *)(in + 1) + 4 > end)
			return -1;
		if (ic->type != ICMP_DEST_UNREACH && ic->type != ICMP_TIME_EXCEEDED &&
		    ic->type != ICMP_PARAMETERPROB)
			return -1;
		if (in->ihl != 5 || in->daddr != r->backend.addr[0] ||
		    (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP))
			return -1;
		ports = (void *)(in + 1);
		r->backend.proto = in->protocol;
		r->client[0] = in->saddr;
		r->inner_addr_off = in_off + offsetof(struct iphdr, daddr);
		r->inner_csum_off = in_off + offsetof(struct iphdr, check);
		r->csum_off = l4_off + offsetof(struct icmphdr, checksum);
		r->pseudo = 0;
		r->sport_off = in_off + sizeof(struct iphdr) + 2;
	} else {
		struct icmp6hdr *ic = data + l4_off;
		struct ipv6hdr *in = data + in_off;

		if ((void *)(in + 1) + 4 > end)
			return -1;
		if (ic->icmp6_type != ICMPV6_DEST_UNREACH && ic->icmp6_type != ICMPV6_PKT_TOOBIG &&
		    ic->icmp6_type != ICMPV6_TIME_EXCEED && ic->icmp6_type != ICMPV6_PARAMPROB)
			return -1;
		if (!ep_addr_eq(in->daddr.in6_u.u6_addr32, r->backend.addr) ||
		    (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP))
			return -1;
		ports = (void *)(in + 1);
		r->backend.proto = in->nexthdr;
		ep_addr_copy(r->client, in->saddr.in6_u.u6_addr32, 4);
		r->inner_addr_off = in_off + offsetof(struct ipv6hdr, daddr);
		r->inner_csum_off = 0;
		r->csum_off = l4_off + offsetof(struct icmp6hdr, icmp6_cksum);
		r->pseudo = 1;
		r->sport_off = in_off + sizeof(struct ipv6hdr) + 2;
	}
	/* Quoted packet: source = client:cport, destination = backend:port. */
	r->cport = ports[0];
	r->backend.port = ports[1];
	r->icmp_error = 1;
	/* About a SYN of a half-open flow, only its sequence number (the
	 * client's ISN) tells which handshake it answers. */
	if (r->backend.proto == IPPROTO_TCP && (void *)ports + 8 <= end) {
		r->inner_seq = *(__u32 *)((void *)ports + 4);
		r->inner_seq_ok = 1;
	}
	return 0;
}

static __always_inline int ep_parse_reply(struct __sk_buff *skb, void *data, void *end,
					  struct ep_reply *r)
{
	__u32 l3_off = sizeof(struct ethhdr);
	__u8 proto;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + l3_off;

		if ((void *)(iph + 1) > end || iph->ihl != 5)
			return -1;
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return -1;
		r->family = EP_FAMILY_V4;
		r->backend.addr[0] = iph->saddr;
		r->client[0] = iph->daddr;
		r->saddr_off = l3_off + EP_IP4_SADDR_OFF;
		proto = iph->protocol;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = data + l3_off;

		if ((void *)(ip6h + 1) > end)
			return -1;
		r->family = EP_FAMILY_V6;
		ep_addr_copy(r->backend.addr, ip6h->saddr.in6_u.u6_addr32, 4);
		ep_addr_copy(r->client, ip6h->daddr.in6_u.u6_addr32, 4);
		r->saddr_off = l3_off + EP_IP6_SADDR_OFF;
		proto = ip6h->nexthdr;
	} else {
		return -1;
	}
	r->l3_off = l3_off;
	r->backend.family = r->family;
	r->backend.proto = proto;
	__u32 l4_off = l3_off + (r->family == EP_FAMILY_V4 ? sizeof(struct iphdr)
							     : sizeof(struct ipv6hdr));
	if ((r->family == EP_FAMILY_V4 && proto == IPPROTO_ICMP) ||
	    (r->family == EP_FAMILY_V6 && proto == IPPROTO_ICMPV6))
		return ep_parse_reply_icmp(data, end, l4_off, r->family, r);
	return ep_parse_reply_l4(data, end, l4_off, proto, r);
}

/*
 * A reply on a flow with no entry but an orphan record naming this backend
 * (struct ep_syn): the backend has the connection, so its entry is created
 * now - unless the answer is a RST, which ends it (and is what a backend
 * answers a spoofed ACK with). Either way the reply is translated.
 */
static __always_inline int ep_orphan_adopt(const struct ep_reply *r, const struct ep_flow_key *k,
					   __u32 *backend_id)
{
	__u32 hash = ep_flow_hash(k), bid, zero = 0;
	struct ep_dp_config *cfg = bpf_map_lookup_elem(&ep_config, &zero);
	struct ep_orphan_bucket *b = ep_orphan_bucket(hash);
	struct ep_backend_stats *st;
	struct ep_ct_entry e = {};
	struct ep_backend *be;
	struct ep_syn *rec;

	if (!cfg || !b)
		return -1;
	rec = ep_orphan_find(b, ep_syn_sig(k, hash));
	if (!rec)
		return -1;
	be = ep_syn_backend(rec, EP_SYN_F_ORPHAN, cfg->now_s, &bid);
	if (!be || be->port != r->backend.port || !ep_addr_eq(be->addr, r->backend.addr))
		return -1;
	*backend_id = bid;
	if (r->tcp_flags & EP_TCP_RST)
		return 0;
	/* Recorded: the way is free for the next orphan of its bucket. */
	rec->sig = 0;
	ep_addr_copy(e.baddr, be->addr, 4);
	e.bport = be->port;
	e.backend_id = bid;
	e.isn = rec->isn;
	e.last_seen_s = cfg->now_s;
	if (r->tcp_flags & EP_TCP_FIN)
		e.flags = EP_CT_F_CLOSING;
	ep_ct_write(k, &e);
	st = bpf_map_lookup_elem(&ep_backend_stats, &bid);
	if (st)
		st->flows++;
	return 0;
}

/* Which VIP:port did this client reach the backend through? */
static __always_inline int ep_find_vip(const struct ep_reply *r, struct ep_rev_vip *vip,
				       __u32 *backend_id)
{
	struct ep_backend_rev *rev;
	struct ep_flow_key k = {};

	int synack = r->backend.proto == IPPROTO_TCP && !r->icmp_error &&
		     (r->tcp_flags & (EP_TCP_SYN | EP_TCP_ACK)) == (EP_TCP_SYN | EP_TCP_ACK);
	/* A backend that refuses answers the SYN with RST+ACK of ISN+1: the
	 * client must get it as from the VIP (ECONNREFUSED at once), or it
	 * waits out its SYN retransmissions. */
	int refusal = r->backend.proto == IPPROTO_TCP && !r->icmp_error &&
		      (r->tcp_flags & (EP_TCP_SYN | EP_TCP_RST | EP_TCP_ACK)) == (EP_TCP_RST | EP_TCP_ACK);
	/* ... or with an ICMP error about the SYN (a firewall's reject). */
	int icmp_syn = r->backend.proto == IPPROTO_TCP && r->icmp_error && r->inner_seq_ok;

	rev = bpf_map_lookup_elem(&ep_backend_rev, &r->backend);
	if (!rev || rev->count == 0)
		return -1;
	ep_addr_copy(k.src, r->client, 4);
	k.sport = r->cport;
	k.proto = r->backend.proto;
	k.family = r->family;
	for (int i = 0; i < EP_MAX_SVCS_PER_BACKEND; i++) {
		struct ep_ct_entry entry, *ct;

		if (i >= rev->count)
			break;
		ep_addr_copy(k.dst, rev->vips[i].addr, 4);
		k.dport = rev->vips[i].port;
		ct = ep_ct_read(&k, &entry) == 0 ? &entry : NULL;
		if (synack || ((refusal || icmp_syn) && !(ct && ct->bport == r->backend.port &&
							  ep_addr_eq(ct->baddr, r->backend.addr)))) {
			/* A handshake in progress has no entry yet, only its
			 * half-open record: translate the SYN-ACK (or the
			 * refusal) if it answers exactly that SYN, from the
			 * backend that got it. An entry of an older connection
			 * on the same 4-tuple goes. */
			__u32 hash = ep_flow_hash(&k);
			struct ep_syn *rec = ep_syn_find(hash, ep_syn_sig(&k, hash));
			struct ep_backend *be = NULL;
			__u32 bid = 0;

			if (rec &&
			    (icmp_syn ? r->inner_seq == rec->isn
				      : r->tcp_ack == bpf_htonl(bpf_ntohl(rec->isn) + 1))) {
				bid = rec->backend_id;
				be = bpf_map_lookup_elem(&ep_backends, &bid);
			}
			if (be && (be->flags & EP_BE_F_VALID) && be->port == r->backend.port &&
			    ep_addr_eq(be->addr, r->backend.addr)) {
				if (ct && (ct->isn != rec->isn || ct->backend_id != bid ||
					   (ct->flags & EP_CT_F_CLOSING))) {
					ep_ct_remove(&k);
				}
				*vip = rev->vips[i];
				*backend_id = bid;
				return 0;
			}
		}
		if (!ct && r->backend.proto == IPPROTO_TCP && !r->icmp_error &&
		    ep_orphan_adopt(r, &k, backend_id) == 0) {
			*vip = rev->vips[i];
			return 0;
		}
		if (!ct || ct->bport != r->backend.port || !ep_addr_eq(ct->baddr, r->backend.addr))
			continue;
		if ((r->tcp_flags & (EP_TCP_SYN | EP_TCP_ACK)) == (EP_TCP_SYN | EP_TCP_ACK) &&
		    r->tcp_ack != bpf_htonl(bpf_ntohl(ct->isn) + 1)) {
			/* The backend answers a SYN that never came through the
			 * VIP (a direct connection reusing an old flow's
			 * 4-tuple): the entry is stale. Forget it, leave the
			 * packet alone. */
			ep_ct_remove(&k);
			return -1;
		}
		if ((r->tcp_flags & (EP_TCP_FIN | EP_TCP_RST)) && !(ct->flags & EP_CT_F_CLOSING))
			ep_ct_close(&k);
		*vip = rev->vips[i];
		*backend_id = ct->backend_id;
		return 0;
	}
	/* No flow: not ours. Replies of connections made to the backend
	 * directly (health checks, pod to pod, another proxy) pass untouched. */
	return -1;
}

static __always_inline int ep_store_addr(struct __sk_buff *skb, const struct ep_reply *r,
					 __u32 off, const __u32 *vip, __u32 l3_csum_off,
					 __u32 l4_csum_off, int l4_pseudo)
{
	__u32 old[4] = {}, words = r->family == EP_FAMILY_V4 ? 1 : 4;
	__u64 l4_flags = (l4_pseudo ? BPF_F_PSEUDO_HDR : 0) | (r->l4_is_udp ? BPF_F_MARK_MANGLED_0 : 0);
	__s64 diff;

	if (bpf_skb_load_bytes(skb, off, old, words * 4) < 0)
		return -1;
	diff = bpf_csum_diff(old, words * 4, (__u32 *)vip, words * 4, 0);
	if (l3_csum_off && bpf_l3_csum_replace(skb, l3_csum_off, 0, diff, 0) < 0)
		return -1;
	if (l4_csum_off && bpf_l4_csum_replace(skb, l4_csum_off, 0, diff, l4_flags) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, vip, words * 4, 0);
}

static __always_inline int ep_rewrite(struct __sk_buff *skb, const struct ep_reply *r,
				      const struct ep_rev_vip *vip)
{
	__u32 l3_csum = r->family == EP_FAMILY_V4 ? r->l3_off + EP_IP4_CSUM_OFF : 0;
	__u64 port_flags = 2 | (r->l4_is_udp ? BPF_F_MARK_MANGLED_0 : 0);
	__u16 old_port = r->backend.port;
	__u16 new_port = vip->port;

	/* Outer source: IPv4 header checksum, and the L4 checksum when it
	 * covers the pseudo header (TCP, UDP, ICMPv6). */
	if (ep_store_addr(skb, r, r->saddr_off, vip->addr, l3_csum, r->pseudo ? r->csum_off : 0,
			  r->pseudo))
		return -1;
	if (r->icmp_error) {
		/* Quoted destination: its own IPv4 header checksum, and the ICMP
		 * checksum, which covers the quoted bytes as payload. */
		__u16 old_qcsum = 0, new_qcsum = 0;

		if (r->inner_csum_off &&
		    bpf_skb_load_bytes(skb, r->inner_csum_off, &old_qcsum, 2) < 0)
			return -1;
		if (ep_store_addr(skb, r, r->inner_addr_off, vip->addr, r->inner_csum_off,
				  r->csum_off, 0))
			return -1;
		if (r->inner_csum_off) {
			if (bpf_skb_load_bytes(skb, r->inner_csum_off, &new_qcsum, 2) < 0)
				return -1;
			if (bpf_l4_csum_replace(skb, r->csum_off, old_qcsum, new_qcsum, 2) < 0)
				return -1;
		}
		port_flags = 2;
	}
	if (r->csum_off && bpf_l4_csum_replace(skb, r->csum_off, old_port, new_port, port_flags) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, r->sport_off, &new_port, 2, 0);
}

/* Route the translated reply ourselves; the stack would reject it. */
static __always_inline int ep_forward_reply(struct __sk_buff *skb, const struct ep_reply *r,
					    const struct ep_rev_vip *vip)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.ifindex = skb->ingress_ifindex;
	fib.l4_protocol = r->backend.proto;
	fib.tot_len = skb->len - r->l3_off;
	if (r->family == EP_FAMILY_V4) {
		__u8 ttl;

		fib.family = AF_INET;
		fib.ipv4_src = vip->addr[0];
		fib.ipv4_dst = r->client[0];
		if (bpf_skb_load_bytes(skb, r->l3_off + EP_IP4_TTL_OFF, &ttl, 1) < 0 || ttl <= 1)
			return TC_ACT_OK;
	} else {
		__u8 hl;

		fib.family = AF_INET6;
		ep_addr_copy(fib.ipv6_src, vip->addr, 4);
		ep_addr_copy(fib.ipv6_dst, r->client, 4);
		if (bpf_skb_load_bytes(skb, r->l3_off + EP_IP6_HOPLIMIT_OFF, &hl, 1) < 0 || hl <= 1)
			return TC_ACT_OK;
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;

	/* We route, so we decrement the TTL / hop limit. */
	if (r->family == EP_FAMILY_V4) {
		__u16 old, new;

		if (bpf_skb_load_bytes(skb, r->l3_off + EP_IP4_TTL_OFF, &old, 2) < 0)
			return TC_ACT_OK;
		new = old;
		((__u8 *)&new)[0]--;
		bpf_l3_csum_replace(skb, r->l3_off + EP_IP4_CSUM_OFF, old, new, 2);
		bpf_skb_store_bytes(skb, r->l3_off + EP_IP4_TTL_OFF, &new, 2, 0);
	} else {
		__u8 hl;

		if (bpf_skb_load_bytes(skb, r->l3_off + EP_IP6_HOPLIMIT_OFF, &hl, 1) < 0)
			return TC_ACT_OK;
		hl--;
		bpf_skb_store_bytes(skb, r->l3_off + EP_IP6_HOPLIMIT_OFF, &hl, 1, 0);
	}

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = {};

		if (r->family == EP_FAMILY_V4) {
			nh.nh_family = AF_INET;
			nh.ipv4_nh = fib.ipv4_dst;
		} else {
			nh.nh_family = AF_INET6;
			ep_addr_copy((__u32 *)nh.ipv6_nh, fib.ipv6_dst, 4);
		}
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0) < 0)
		return TC_ACT_OK;
	return bpf_redirect(fib.ifindex, 0);
}

static __always_inline int ep_rnat(struct __sk_buff *skb, const int forward)
{
	struct ep_reply r = {};
	struct ep_rev_vip vip;
	__u32 backend_id;
	__u32 want = EP_RNAT_PULL_LEN;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	/* Headers of locally built skbs are linear; pull only when they are not. */
	if (data + want > end && skb->len > (__u32)(end - data)) {
		if (want > skb->len)
			want = skb->len;
		bpf_skb_pull_data(skb, want);
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}
	if (ep_parse_reply(skb, data, end, &r))
		return TC_ACT_OK;
	if (ep_find_vip(&r, &vip, &backend_id))
		return TC_ACT_OK;
	if (ep_rewrite(skb, &r, &vip))
		return TC_ACT_SHOT; /* half-rewritten: never let it out */
	if (backend_id) {
		struct ep_backend_stats *st = bpf_map_lookup_elem(&ep_backend_stats, &backend_id);

		if (st)
			st->rnat_packets++;
	}
	return forward ? ep_forward_reply(skb, &r, &vip) : TC_ACT_OK;
}

/* Ingress of pod (and uplink) interfaces: translate and route the reply. */
SEC("tc")
int ep_tc_rnat(struct __sk_buff *skb)
{
	return ep_rnat(skb, 1);
}

/* Egress of uplinks: catches replies of backends that are not behind a pods
 * interface (remote hosts); the stack has already routed them. */
SEC("tc")
int ep_tc_rnat_egress(struct __sk_buff *skb)
{
	return ep_rnat(skb, 0);
}
