// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * edgeplane traffic mirroring: TC ingress of every configured interface.
 *
 * Every packet of a balanced flow enters the node exactly once: the client's
 * packets on the uplink (after the XDP load balancer rewrote VIP:port to
 * backend:port, since XDP runs before TC), the backend's replies on its
 * pods interface (or on the uplink for a remote backend), before reverse NAT
 * rewrites them to come from the VIP. So the ingress hooks see each packet
 * once, and all of them in the backend's view of the flow:
 * client:port <-> backend:port, both directions. That is what the collector
 * receives (docs/grayscale.md#mirroring).
 *
 * A packet belongs to a service's flow when one end is a backend
 * (ep_backend_rev) and conntrack holds the flow through one of that
 * backend's VIPs to exactly that backend, the test reverse NAT makes. The
 * sampling decision hashes the conntrack key (client -> VIP), which both
 * directions rebuild, so a flow is mirrored whole or not at all
 * (include/ep_mirror.h).
 *
 * The original is never touched: the program only reads (bpf_skb_load_bytes,
 * no pull), clones with bpf_clone_redirect and always hands the packet on
 * unchanged (TC_ACT_UNSPEC: DNS observation and reverse NAT, later on the
 * same hook, still see it). A clone the token bucket refuses or the kernel
 * fails to make is counted, never retried.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ep_bpf.h"
#define EP_CT_OUT_OF_LINE
#include "ep_maps.bpf.h"
#include "ep_mirror.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ep_mirror_cfg);
} ep_mirror_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ep_mirror_tb);
} ep_mirror_tb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EP_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ep_mirror_stats);
} ep_mirror_stats SEC(".maps");

struct ep_tuple {
	__u32 saddr[4], daddr[4];
	__u16 sport, dport; /* network order */
	__u8 proto, family;
	__u8 tcp_flags;
	__u32 tcp_seq, tcp_ack; /* network order */
};

static __always_inline int ep_mirror_parse(struct __sk_buff *skb, struct ep_tuple *t)
{
	__u32 l3 = sizeof(struct ethhdr), l4;
	__u16 ports[2];

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr iph;

		if (bpf_skb_load_bytes(skb, l3, &iph, sizeof(iph)) < 0)
			return -1;
		/* What the load balancer would drop is no flow of a service. */
		if (iph.ihl != 5 || (iph.frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return -1;
		t->family = EP_FAMILY_V4;
		t->saddr[0] = iph.saddr;
		t->daddr[0] = iph.daddr;
		t->proto = iph.protocol;
		l4 = l3 + sizeof(iph);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6h;

		if (bpf_skb_load_bytes(skb, l3, &ip6h, sizeof(ip6h)) < 0)
			return -1;
		t->family = EP_FAMILY_V6;
		ep_addr_copy(t->saddr, ip6h.saddr.in6_u.u6_addr32, 4);
		ep_addr_copy(t->daddr, ip6h.daddr.in6_u.u6_addr32, 4);
		t->proto = ip6h.nexthdr;
		l4 = l3 + sizeof(ip6h);
	} else {
		return -1;
	}
	if (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP)
		return -1;
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
		return -1;
	t->sport = ports[0];
	t->dport = ports[1];
	if (t->proto == IPPROTO_TCP) {
		__u32 sa[2];

		if (bpf_skb_load_bytes(skb, l4 + 4, sa, sizeof(sa)) < 0 ||
		    bpf_skb_load_bytes(skb, l4 + 13, &t->tcp_flags, 1) < 0)
			return -1;
		t->tcp_seq = sa[0];
		t->tcp_ack = sa[1];
	}
	return 0;
}

#ifdef EP_SYN_SLOTS
/*
 * Where the load balancer balances SYNs without a conntrack entry (the
 * entry comes with the handshake's ACK; struct ep_syn), the SYN and the
 * SYN-ACK of a flow are known only by its half-open record: the record of
 * this flow's key, naming this backend, for this ISN - the test reverse
 * NAT makes on the SYN-ACK.
 */
static __always_inline int ep_mirror_half_open(const struct ep_flow_key *k, const __u32 *backend,
					       __u16 bport, const struct ep_tuple *t, int reply)
{
	__u32 hash = ep_flow_hash(k), bid;
	struct ep_backend *be;
	struct ep_syn *rec;

	if (!(t->tcp_flags & EP_TCP_SYN))
		return -1;
	rec = ep_syn_find(hash, ep_syn_sig(k, hash));
	if (!rec)
		return -1;
	if (reply ? t->tcp_ack != bpf_htonl(bpf_ntohl(rec->isn) + 1) : t->tcp_seq != rec->isn)
		return -1;
	bid = rec->backend_id;
	be = bpf_map_lookup_elem(&ep_backends, &bid);
	if (!be || be->port != bport || !ep_addr_eq(be->addr, backend))
		return -1;
	return 0;
}
#endif

/*
 * Is backend:bport (a backend, per ep_backend_rev) in a balanced flow with
 * client:cport? Fills k with the flow's conntrack key and vip with the VIP
 * it went through.
 */
static __always_inline int ep_mirror_flow(const __u32 *backend, __u16 bport, const __u32 *client,
					  __u16 cport, __u8 proto, const __u8 family,
					  const struct ep_tuple *t, int reply, struct ep_flow_key *k,
					  struct ep_rev_vip *vip)
{
	struct ep_endpoint be = {};
	struct ep_backend_rev *rev;

	ep_addr_copy(be.addr, backend, 4);
	be.port = bport;
	be.proto = proto;
	be.family = family;
	rev = bpf_map_lookup_elem(&ep_backend_rev, &be);
	if (!rev)
		return -1;
	ep_addr_copy(k->src, client, 4);
	k->sport = cport;
	k->proto = proto;
	k->family = family;
	for (int i = 0; i < EP_MAX_SVCS_PER_BACKEND; i++) {
		struct ep_ct_entry entry, *ct;

		if (i >= rev->count)
			break;
		ep_addr_copy(k->dst, rev->vips[i].addr, 4);
		k->dport = rev->vips[i].port;
		ct = ep_ct_read(k, &entry) == 0 ? &entry : NULL;
		if (!ct || ct->bport != bport || !ep_addr_eq(ct->baddr, be.addr)) {
#ifdef EP_SYN_SLOTS
			if (proto == IPPROTO_TCP && !ep_mirror_half_open(k, be.addr, bport, t, reply)) {
				*vip = rev->vips[i];
				return 0;
			}
#endif
			continue;
		}
		*vip = rev->vips[i];
		return 0;
	}
	return -1;
}

static __always_inline void ep_mirror_count(__u32 id, int reason, __u32 len)
{
	struct ep_mirror_stats *st = bpf_map_lookup_elem(&ep_mirror_stats, &id);

	if (!st)
		return;
	if (reason < 0) {
		st->packets++;
		st->bytes += len;
	} else if (reason < EP_MIRROR_DROP_MAX) {
		st->drops[reason]++;
		st->drop_bytes += len;
	}
}

static __always_inline int ep_mirror(struct __sk_buff *skb, const struct ep_tuple *t,
				     const __u8 family)
{
	struct ep_flow_key k = {};
	struct ep_endpoint sk = {};
	struct ep_mirror_cfg *mc;
	struct ep_mirror_tb *tb;
	struct ep_service *svc;
	struct ep_rev_vip vip;
	__u32 id, len = skb->len;
	__u64 now;
	int ok;

	/* Client to backend (after DNAT), else backend to client (before
	 * reverse NAT). */
	if (ep_mirror_flow(t->daddr, t->dport, t->saddr, t->sport, t->proto, family, t, 0, &k,
			   &vip) &&
	    ep_mirror_flow(t->saddr, t->sport, t->daddr, t->dport, t->proto, family, t, 1, &k,
			   &vip))
		return TC_ACT_UNSPEC;
	ep_addr_copy(sk.addr, vip.addr, 4);
	sk.port = vip.port;
	sk.proto = t->proto;
	sk.family = family;
	svc = bpf_map_lookup_elem(&ep_services, &sk);
	if (!svc)
		return TC_ACT_UNSPEC;
	id = svc->id;
	mc = bpf_map_lookup_elem(&ep_mirror_cfg, &id);
	if (!mc || !mc->ifindex || !ep_mirror_sampled(ep_mirror_hash(&k), mc->percent_bp))
		return TC_ACT_UNSPEC;

	tb = bpf_map_lookup_elem(&ep_mirror_tb, &id);
	if (!tb)
		return TC_ACT_UNSPEC;
	now = bpf_ktime_get_ns();
	bpf_spin_lock(&tb->lock);
	ok = ep_mirror_tb_take(&tb->tokens, &tb->last_ns, now, mc->rate_bps, mc->burst_bytes, len);
	bpf_spin_unlock(&tb->lock);
	if (!ok) {
		ep_mirror_count(id, EP_MIRROR_DROP_RATE_LIMIT, len);
		return TC_ACT_UNSPEC;
	}
	if (bpf_clone_redirect(skb, mc->ifindex, 0) < 0)
		ep_mirror_count(id, EP_MIRROR_DROP_CLONE, len);
	else
		ep_mirror_count(id, -1, len);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int ep_tc_mirror(struct __sk_buff *skb)
{
	struct ep_tuple t = {};

	if (ep_mirror_parse(skb, &t))
		return TC_ACT_UNSPEC;
	if (t.family == EP_FAMILY_V4)
		return ep_mirror(skb, &t, EP_FAMILY_V4);
	return ep_mirror(skb, &t, EP_FAMILY_V6);
}
