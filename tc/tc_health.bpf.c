// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * edgeplane flow health: how each backend's flows fare, seen from both
 * directions on the interfaces that lead to backends (docs/grayscale.md).
 *
 *   egress  (ep_tc_health_fwd): client -> backend, after XDP's DNAT
 *   ingress (ep_tc_health_rev): backend -> client, before reverse NAT
 *
 * A packet belongs to a balanced flow when the backend's reverse index names
 * a VIP:port whose conntrack entry points at this backend, exactly the test
 * reverse NAT makes; before the handshake's ACK a TCP flow has no entry,
 * only its half-open record (struct ep_syn): the SYN and the backend's
 * answer to it (SYN-ACK, or the RST of a refusal) are matched by that
 * record, its ISN and backend, as reverse NAT matches them. Everything else
 * passes unobserved. Only services the
 * agent marks in ep_health_svc are watched.
 *
 * Per-CPU counters per backend record what happened (ep_health_stats).
 * What did not happen - a SYN or UDP request never answered - leaves an
 * entry in ep_health_pend that the agent ages out every window and counts
 * (agent/canary/health.c), marking it so a retransmitted SYN is not a new
 * attempt and a late SYN-ACK is told apart.
 *
 * HTTP (canary.http): after a client segment with payload the flow waits for
 * the backend's first segment, whose status line "HTTP/1.x NNN" is read; a
 * line cut across segments is collected in the entry until its 12 bytes are
 * in. Pipelined requests count one response per request burst.
 *
 * The program never changes a packet and always hands it on (TC_ACT_UNSPEC)
 * to the next filter (reverse NAT on ingress).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ep_bpf.h"
#include "ep_hash.h"
#define EP_CT_OUT_OF_LINE
#include "ep_maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ep_health_svc);
} ep_health_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ep_health_cfg);
} ep_health_cfg SEC(".maps");

/* Per backend id; the agent creates the entries of watched backends. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, EP_HEALTH_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ep_health_stats);
} ep_health_stats SEC(".maps");

/* LRU: a SYN flood pushes out old entries instead of failing inserts. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EP_HEALTH_PEND_SIZE);
	__type(key, struct ep_flow_key);
	__type(value, struct ep_health_pend);
} ep_health_pend SEC(".maps");

/* Not read by the tap: declared here so it is pinned with the tap's maps. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ep_canary_state);
} ep_canary_state SEC(".maps");

/* What one packet says, in the client -> backend orientation. */
struct ep_hpkt {
	struct ep_flow_key key; /* src = client, dst = backend */
	__u8 tcp_flags;
	__u32 seq, ack;
	__u32 payload_off, payload_len;
};

static __always_inline int ep_hparse(struct __sk_buff *skb, struct ep_hpkt *p, const int rev)
{
	__u32 l3 = sizeof(struct ethhdr), l4, iplen;
	__u32 saddr[4] = {}, daddr[4] = {};
	__u8 proto;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr iph;

		if (bpf_skb_load_bytes(skb, l3, &iph, sizeof(iph)) < 0 || iph.ihl != 5)
			return -1;
		if (iph.frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return -1;
		p->key.family = EP_FAMILY_V4;
		saddr[0] = iph.saddr;
		daddr[0] = iph.daddr;
		proto = iph.protocol;
		l4 = l3 + sizeof(iph);
		iplen = bpf_ntohs(iph.tot_len);
		if (iplen < sizeof(iph))
			return -1;
		iplen -= sizeof(iph);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6h;

		if (bpf_skb_load_bytes(skb, l3, &ip6h, sizeof(ip6h)) < 0)
			return -1;
		p->key.family = EP_FAMILY_V6;
		ep_addr_copy(saddr, ip6h.saddr.in6_u.u6_addr32, 4);
		ep_addr_copy(daddr, ip6h.daddr.in6_u.u6_addr32, 4);
		proto = ip6h.nexthdr;
		l4 = l3 + sizeof(ip6h);
		iplen = bpf_ntohs(ip6h.payload_len);
	} else {
		return -1;
	}
	if (rev) {
		ep_addr_copy(p->key.src, daddr, 4);
		ep_addr_copy(p->key.dst, saddr, 4);
	} else {
		ep_addr_copy(p->key.src, saddr, 4);
		ep_addr_copy(p->key.dst, daddr, 4);
	}
	p->key.proto = proto;
	if (proto == IPPROTO_TCP) {
		struct tcphdr th;
		__u32 hl;

		if (bpf_skb_load_bytes(skb, l4, &th, sizeof(th)) < 0)
			return -1;
		hl = th.doff * 4;
		if (hl < sizeof(th) || hl > iplen)
			return -1;
		p->key.sport = rev ? th.dest : th.source;
		p->key.dport = rev ? th.source : th.dest;
		p->tcp_flags = ((__u8 *)&th)[13];
		p->seq = th.seq;
		p->ack = th.ack_seq;
		p->payload_off = l4 + hl;
		p->payload_len = iplen - hl;
		return 0;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr uh;

		if (bpf_skb_load_bytes(skb, l4, &uh, sizeof(uh)) < 0)
			return -1;
		p->key.sport = rev ? uh.dest : uh.source;
		p->key.dport = rev ? uh.source : uh.dest;
		return 0;
	}
	return -1;
}

/*
 * The half-open record of k, when p is its SYN (the client's ISN) or the
 * backend's answer to that SYN (acknowledging ISN + 1) and the record names
 * this backend: its backend id and the ISN.
 */
static __always_inline int ep_hflow_half_open(const struct ep_hpkt *p, const struct ep_flow_key *k,
					      const struct ep_endpoint *be, __u32 *bid, __u32 *isn)
{
	__u32 hash = ep_flow_hash(k), id;
	struct ep_backend *b;
	struct ep_syn *rec;

	if (!(p->tcp_flags & (EP_TCP_SYN | EP_TCP_RST)))
		return -1;
	rec = ep_syn_find(hash, ep_syn_sig(k, hash));
	if (!rec)
		return -1;
	if ((p->tcp_flags & (EP_TCP_SYN | EP_TCP_ACK)) == EP_TCP_SYN ? p->seq != rec->isn
								   : p->ack != bpf_htonl(bpf_ntohl(rec->isn) + 1))
		return -1;
	id = rec->backend_id;
	b = bpf_map_lookup_elem(&ep_backends, &id);
	if (!b || b->port != be->port || !ep_addr_eq(b->addr, be->addr))
		return -1;
	*bid = id;
	*isn = rec->isn;
	return 0;
}

/* The backend id of a balanced flow and whether its service is watched. */
static __always_inline int ep_hflow(const struct ep_hpkt *p, __u32 *bid, __u32 *svc_flags,
				    __u32 *isn)
{
	struct ep_endpoint be = {};
	struct ep_backend_rev *rev;
	struct ep_flow_key k = {};

	ep_addr_copy(be.addr, p->key.dst, 4);
	be.port = p->key.dport;
	be.proto = p->key.proto;
	be.family = p->key.family;
	rev = bpf_map_lookup_elem(&ep_backend_rev, &be);
	if (!rev || rev->count == 0)
		return -1;
	ep_addr_copy(k.src, p->key.src, 4);
	k.sport = p->key.sport;
	k.proto = p->key.proto;
	k.family = p->key.family;
	for (int i = 0; i < EP_MAX_SVCS_PER_BACKEND; i++) {
		struct ep_health_svc *hs;
		struct ep_backend *b;
		struct ep_ct_entry entry, *ct;
		__u32 id;

		if (i >= rev->count)
			break;
		ep_addr_copy(k.dst, rev->vips[i].addr, 4);
		k.dport = rev->vips[i].port;
		ct = ep_ct_read(&k, &entry) == 0 ? &entry : NULL;
		if (ct && ct->bport == be.port && ep_addr_eq(ct->baddr, be.addr)) {
			*bid = ct->backend_id;
			*isn = ct->isn;
		} else if (p->key.proto != IPPROTO_TCP || ep_hflow_half_open(p, &k, &be, bid, isn)) {
			continue;
		}
		id = *bid;
		b = bpf_map_lookup_elem(&ep_backends, &id);
		if (!b)
			return -1;
		id = b->svc_id;
		hs = bpf_map_lookup_elem(&ep_health_svc, &id);
		if (!hs || !(hs->flags & EP_HEALTH_F_ON))
			return -1;
		*svc_flags = hs->flags;
		return 0;
	}
	return -1;
}

static __always_inline struct ep_health_stats *ep_hstats(__u32 bid)
{
	struct ep_health_stats *st = bpf_map_lookup_elem(&ep_health_stats, &bid);

	if (st)
		return st;
	/* The agent creates the entries; this covers a backend added between
	 * its window reads. A full map just loses the counts. */
	struct ep_health_stats zero = {};

	bpf_map_update_elem(&ep_health_stats, &bid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&ep_health_stats, &bid);
}

static __always_inline __u32 ep_log2_us(__u64 us)
{
	__u32 b = 0;

#pragma unroll
	for (int i = 1; i < EP_HEALTH_RTT_BUCKETS; i++)
		if (us >= (1ULL << i))
			b = i;
	return b;
}

/* Client -> backend. */
static __always_inline void ep_health_fwd(struct __sk_buff *skb)
{
	struct ep_health_pend *pe, fresh = {};
	struct ep_health_stats *st;
	struct ep_hpkt p = {};
	__u32 bid, sflags, isn;

	if (ep_hparse(skb, &p, 0) || ep_hflow(&p, &bid, &sflags, &isn))
		return;
	st = ep_hstats(bid);
	if (!st)
		return;
	pe = bpf_map_lookup_elem(&ep_health_pend, &p.key);
	if (p.key.proto == IPPROTO_UDP) {
		if (pe && pe->state == EP_HEALTH_S_UDP_WAIT)
			return; /* one request outstanding per flow is enough to tell */
		fresh.ts_ns = bpf_ktime_get_ns();
		fresh.backend_id = bid;
		fresh.state = EP_HEALTH_S_UDP_WAIT;
		bpf_map_update_elem(&ep_health_pend, &p.key, &fresh, BPF_ANY);
		st->udp_req++;
		return;
	}
	if ((p.tcp_flags & (EP_TCP_SYN | EP_TCP_ACK)) == EP_TCP_SYN) {
		if (pe && pe->isn == p.seq &&
		    (pe->state == EP_HEALTH_S_SYN_SENT || pe->state == EP_HEALTH_S_SYN_TIMED_OUT)) {
			st->syn_retrans++;
			return;
		}
		fresh.ts_ns = bpf_ktime_get_ns();
		fresh.backend_id = bid;
		fresh.isn = p.seq;
		fresh.state = EP_HEALTH_S_SYN_SENT;
		bpf_map_update_elem(&ep_health_pend, &p.key, &fresh, BPF_ANY);
		st->syn++;
		return;
	}
	if (!pe)
		return;
	if (p.tcp_flags & (EP_TCP_FIN | EP_TCP_RST)) {
		bpf_map_delete_elem(&ep_health_pend, &p.key);
		return;
	}
	if (p.payload_len && pe->state == EP_HEALTH_S_ESTABLISHED) {
		pe->state = EP_HEALTH_S_HTTP_WAIT;
		pe->nbytes = 0;
		pe->ts_ns = bpf_ktime_get_ns();
	}
}

/* The status line is complete in pe->partial: count it. */
static __always_inline void ep_http_status(struct ep_health_stats *st, const __u8 *l)
{
	if (l[0] != 'H' || l[1] != 'T' || l[2] != 'T' || l[3] != 'P' || l[4] != '/' ||
	    l[5] != '1' || l[6] != '.' || l[8] != ' ' || l[9] < '1' || l[9] > '5' ||
	    l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9') {
		st->http_unparsed++;
		return;
	}
	st->http_resp++;
	if (l[9] == '5')
		st->http_5xx++;
}

/* A backend segment while a response is awaited: gather the status line. */
static __always_inline void ep_http_segment(struct __sk_buff *skb, const struct ep_hpkt *p,
					    struct ep_health_pend *pe,
					    struct ep_health_stats *st)
{
	__u32 have = pe->nbytes;

	if (have == 0 && p->payload_len >= EP_HEALTH_HTTP_STATUS_LEN) {
		/* The common case: the whole line in the first segment. */
		if (bpf_skb_load_bytes(skb, p->payload_off, pe->partial,
				       EP_HEALTH_HTTP_STATUS_LEN) < 0)
			return;
		ep_http_status(st, pe->partial);
		pe->state = EP_HEALTH_S_ESTABLISHED;
		return;
	}
	if (have == 0)
		st->http_split++;
#pragma unroll
	for (__u32 i = 0; i < EP_HEALTH_HTTP_STATUS_LEN; i++) {
		__u8 c;

		if (i >= p->payload_len || have >= EP_HEALTH_HTTP_STATUS_LEN)
			break;
		if (bpf_skb_load_bytes(skb, p->payload_off + i, &c, 1) < 0)
			return;
		pe->partial[have & 15] = c;
		have++;
	}
	if (have < EP_HEALTH_HTTP_STATUS_LEN) {
		pe->nbytes = have;
		return;
	}
	pe->nbytes = 0;
	ep_http_status(st, pe->partial);
	pe->state = EP_HEALTH_S_ESTABLISHED;
}

/* Backend -> client. */
static __always_inline void ep_health_rev(struct __sk_buff *skb)
{
	struct ep_health_stats *st;
	struct ep_health_pend *pe;
	struct ep_hpkt p = {};
	__u32 bid, sflags, isn;
	int answers_syn;

	if (ep_hparse(skb, &p, 1) || ep_hflow(&p, &bid, &sflags, &isn))
		return;
	/* Conntrack keeps the client's ISN: with forwarding: redirect (SYNs
	 * go past TC egress) an answer acknowledging ISN + 1 answers the SYN.
	 * A RST right after the handshake looks the same; that mode counts it
	 * as refused (docs/grayscale.md). */
	answers_syn = (sflags & EP_HEALTH_F_FWD_UNSEEN) && (p.tcp_flags & EP_TCP_ACK) &&
		      p.ack == bpf_htonl(bpf_ntohl(isn) + 1);
	st = ep_hstats(bid);
	if (!st)
		return;
	pe = bpf_map_lookup_elem(&ep_health_pend, &p.key);
	if (p.key.proto == IPPROTO_UDP) {
		if (!pe)
			return;
		if (pe->state == EP_HEALTH_S_UDP_WAIT)
			st->udp_reply++;
		else if (pe->state == EP_HEALTH_S_UDP_TIMED_OUT)
			st->late++;
		else
			return;
		bpf_map_delete_elem(&ep_health_pend, &p.key);
		return;
	}
	if (p.tcp_flags & EP_TCP_RST) {
		if (pe && pe->state == EP_HEALTH_S_SYN_SENT)
			st->refused++;
		else if (pe && pe->state == EP_HEALTH_S_SYN_TIMED_OUT)
			st->late++;
		else if (!pe && answers_syn && !p.payload_len)
			st->refused++; /* the SYN went by unseen */
		else
			st->rst++;
		if (pe)
			bpf_map_delete_elem(&ep_health_pend, &p.key);
		return;
	}
	if (!pe) {
		/* A handshake whose SYN went by unseen: answered, no RTT. */
		if ((p.tcp_flags & (EP_TCP_SYN | EP_TCP_ACK)) == (EP_TCP_SYN | EP_TCP_ACK) &&
		    answers_syn)
			st->synack_unseen++;
		return;
	}
	if ((p.tcp_flags & (EP_TCP_SYN | EP_TCP_ACK)) == (EP_TCP_SYN | EP_TCP_ACK)) {
		__u64 us;

		if (pe->state != EP_HEALTH_S_SYN_SENT && pe->state != EP_HEALTH_S_SYN_TIMED_OUT)
			return;
		if (p.ack != bpf_htonl(bpf_ntohl(pe->isn) + 1))
			return; /* not the answer to the SYN we saw */
		if (pe->state == EP_HEALTH_S_SYN_TIMED_OUT) {
			st->late++;
		} else {
			us = (bpf_ktime_get_ns() - pe->ts_ns) / 1000;
			st->synack++;
			st->rtt_sum_us += us;
			__u32 b = ep_log2_us(us);

			if (b < EP_HEALTH_RTT_BUCKETS)
				st->rtt[b]++;
		}
		if (sflags & EP_HEALTH_F_HTTP) {
			pe->state = EP_HEALTH_S_ESTABLISHED;
			pe->nbytes = 0;
		} else {
			/* Nothing more to wait for; a later RST finds no entry
			 * and counts as one on an established flow. */
			bpf_map_delete_elem(&ep_health_pend, &p.key);
		}
		return;
	}
	if (p.tcp_flags & EP_TCP_FIN) {
		bpf_map_delete_elem(&ep_health_pend, &p.key);
		return;
	}
	if (p.payload_len && pe->state == EP_HEALTH_S_HTTP_WAIT)
		ep_http_segment(skb, &p, pe, st);
}

static __always_inline int ep_health_active(void)
{
	__u32 zero = 0;
	struct ep_health_cfg *c = bpf_map_lookup_elem(&ep_health_cfg, &zero);

	return c && c->watched;
}

/* Egress of every interface: packets on their way to a backend. */
SEC("tc")
int ep_tc_health_fwd(struct __sk_buff *skb)
{
	if (ep_health_active())
		ep_health_fwd(skb);
	return TC_ACT_UNSPEC;
}

/* Ingress of every interface: the backends' answers, before reverse NAT. */
SEC("tc")
int ep_tc_health_rev(struct __sk_buff *skb)
{
	if (ep_health_active())
		ep_health_rev(skb);
	return TC_ACT_UNSPEC;
}
