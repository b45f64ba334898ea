/*
 * The TC reverse NAT (tc/tc_rnat.bpf.c) through BPF_PROG_TEST_RUN.
 *
 * xdp_lb and tc_rnat are loaded unpinned and share every map
 * (bpf_map__reuse_fd), the services are programmed by the agent code, flows are
 * opened by running XDP on client packets, and then replies from the backends
 * go through ep_tc_rnat_egress and ep_tc_rnat (ingress, which also tries to
 * route with bpf_fib_lookup: in a fresh network namespace there is no route,
 * so it must hand the rewritten packet to the stack with TC_ACT_OK).
 * Checksums of every output are verified from scratch.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "datapath.h"
#include "edgeplane_abi.h"
#include "ep_hash.h"
#include "log.h"
#include "services.h"
#include "tap.h"
#include "tc_rnat.skel.h"
#include "xdp_lb.skel.h"

/* ==== packet crafting (same as in test_xdp_lb.c) ================== */

#define P_ICMP 1
#define P_TCP 6
#define P_UDP 17
#define P_ICMP6 58

#define TCP_SYN 0x02
#define TCP_ACK 0x10
#define TCP_FIN 0x01
#define TCP_RST 0x04

#define FRAME_MAX 2048

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* One's-complement sum of big-endian 16-bit words (not folded). */
static uint32_t sum16(uint32_t s, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		s += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		s += (uint32_t)p[0] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint32_t pseudo_sum(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
			   uint32_t len)
{
	size_t alen = family == EP_FAMILY_V4 ? 4 : 16;
	uint32_t s = 0;

	s = sum16(s, src, alen);
	s = sum16(s, dst, alen);
	s += proto;
	s += len >> 16;
	s += len & 0xffff;
	return s;
}

static int l4_csum_off(uint8_t proto)
{
	switch (proto) {
	case P_TCP:
		return 16;
	case P_UDP:
		return 6;
	case P_ICMP:
	case P_ICMP6:
		return 2;
	}
	return -1;
}

/* Computes the L4 checksum of l4[0..len) from scratch (ICMPv4: no pseudo header). */
static void l4_csum_fill(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
			 uint8_t *l4, size_t len)
{
	int off = l4_csum_off(proto);
	uint32_t s = 0;
	uint16_t c;

	if (off < 0 || (size_t)off + 2 > len)
		return;
	put16(l4 + off, 0);
	if (proto != P_ICMP)
		s = pseudo_sum(family, src, dst, proto, (uint32_t)len);
	c = fold(sum16(s, l4, len));
	if (proto == P_UDP && c == 0)
		c = 0xffff;
	put16(l4 + off, c);
}

static void ip4_recsum(uint8_t *ip)
{
	size_t hl = (size_t)(ip[0] & 15) * 4;

	if (hl < 20)
		hl = 20;
	put16(ip + 10, 0);
	put16(ip + 10, fold(sum16(0, ip, hl)));
}

static void fill_payload(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + 1);
}

static size_t mk_tcp(uint8_t *o, uint16_t sport, uint16_t dport, uint8_t flags, size_t payload)
{
	memset(o, 0, 20);
	put16(o, sport);
	put16(o + 2, dport);
	put32(o + 4, 0x01020304);
	/* Every client packet carries ISN 0x01020304, so a reply acknowledges
	 * 0x01020305, as the backend's SYN-ACK to that SYN would. */
	put32(o + 8, (flags & TCP_ACK) ? 0x01020305 : 0);
	o[12] = 5 << 4;
	o[13] = flags;
	put16(o + 14, 65535);
	fill_payload(o + 20, payload);
	return 20 + payload;
}

static size_t mk_udp(uint8_t *o, uint16_t sport, uint16_t dport, size_t payload)
{
	put16(o, sport);
	put16(o + 2, dport);
	put16(o + 4, (uint32_t)(8 + payload));
	put16(o + 6, 0);
	fill_payload(o + 8, payload);
	return 8 + payload;
}

static size_t mk_icmp_echo(uint8_t *o, int family, size_t payload)
{
	o[0] = family == EP_FAMILY_V4 ? 8 : 128;
	o[1] = 0;
	put16(o + 2, 0);
	put16(o + 4, 0x1234);
	put16(o + 6, 1);
	fill_payload(o + 8, payload);
	return 8 + payload;
}

static size_t mk_icmp_err(uint8_t *o, uint8_t type, uint8_t code, uint32_t word,
			  const uint8_t *quoted, size_t qlen)
{
	o[0] = type;
	o[1] = code;
	put16(o + 2, 0);
	put32(o + 4, word);
	memcpy(o + 8, quoted, qlen);
	return 8 + qlen;
}

struct ipopt {
	uint8_t ttl;		/* 0: 64 */
	uint16_t frag_off;	/* IPv4 flags + fragment offset field */
	size_t v4_optlen;	/* bytes of IPv4 options (multiple of 4) */
	const uint8_t *ext;	/* IPv6 extension headers, already chained */
	size_t ext_len;
	uint8_t ext_first;	/* IPv6 next header of the fixed header when ext_len > 0 */
	bool no_l4_csum;	/* leave the L4 checksum field as it is */
};

/* IP header + l4 bytes; the L4 checksum is computed over what is given. */
static size_t mk_ip(uint8_t *o, const struct ep_ip *src, const struct ep_ip *dst, uint8_t proto,
		    const uint8_t *l4, size_t l4len, const struct ipopt *opt)
{
	static const struct ipopt none;
	uint8_t ttl;

	if (!opt)
		opt = &none;
	ttl = opt->ttl ? opt->ttl : 64;
	if (src->family == EP_FAMILY_V4) {
		size_t hl = 20 + opt->v4_optlen;

		memset(o, 0, hl);
		o[0] = (uint8_t)(0x40 | (hl / 4));
		put16(o + 2, (uint32_t)(hl + l4len));
		put16(o + 4, 0x1234);
		put16(o + 6, opt->frag_off);
		o[8] = ttl;
		o[9] = proto;
		memcpy(o + 12, src->addr, 4);
		memcpy(o + 16, dst->addr, 4);
		for (size_t i = 20; i < hl; i++)
			o[i] = i == hl - 1 ? 0 /* EOL */ : 1 /* NOP */;
		ip4_recsum(o);
		memcpy(o + hl, l4, l4len);
		if (!opt->no_l4_csum)
			l4_csum_fill(EP_FAMILY_V4, o + 12, o + 16, proto, o + hl, l4len);
		return hl + l4len;
	}
	memset(o, 0, 40);
	o[0] = 0x60;
	put16(o + 4, (uint32_t)(opt->ext_len + l4len));
	o[6] = opt->ext_len ? opt->ext_first : proto;
	o[7] = ttl;
	memcpy(o + 8, src->addr, 16);
	memcpy(o + 24, dst->addr, 16);
	if (opt->ext_len)
		memcpy(o + 40, opt->ext, opt->ext_len);
	memcpy(o + 40 + opt->ext_len, l4, l4len);
	if (!opt->no_l4_csum)
		l4_csum_fill(EP_FAMILY_V6, o + 8, o + 24, proto, o + 40 + opt->ext_len, l4len);
	return 40 + opt->ext_len + l4len;
}

static const uint8_t MAC_DST[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static const uint8_t MAC_SRC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

/* Ethernet (+ nvlan tags; qinq: the outer of two is 802.1ad) around l3. */
static size_t mk_eth(uint8_t *o, int nvlan, bool qinq, uint16_t ethertype, const uint8_t *l3,
		     size_t l3len)
{
	size_t off = 12;

	memcpy(o, MAC_DST, 6);
	memcpy(o + 6, MAC_SRC, 6);
	for (int i = 0; i < nvlan; i++) {
		put16(o + off, (i == 0 && qinq && nvlan == 2) ? 0x88a8 : 0x8100);
		put16(o + off + 2, (uint32_t)(0x2000 | (100 + 100 * (nvlan - 1 - i))));
		off += 4;
	}
	put16(o + off, ethertype);
	off += 2;
	memcpy(o + off, l3, l3len);
	return off + l3len;
}

/* Two payload bytes that make the UDP checksum of src:sport -> dst:dport
 * (payload starting with those two bytes, the rest as fill_payload writes it)
 * compute to 0, which RFC 768 sends as 0xffff. */
static uint16_t udp_zero_csum_word(const struct ep_ip *src, uint16_t sport, const struct ep_ip *dst,
				   uint16_t dport, size_t payload)
{
	uint8_t l4[FRAME_MAX];
	size_t n = mk_udp(l4, sport, dport, payload);
	uint32_t s;

	l4[8] = l4[9] = 0;
	s = pseudo_sum(src->family, (const uint8_t *)src->addr, (const uint8_t *)dst->addr, P_UDP,
		       (uint32_t)n);
	s = sum16(s, l4, n);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)(0xffff - s);
}

static uint16_t ethertype_of(int family)
{
	return family == EP_FAMILY_V4 ? 0x0800 : 0x86dd;
}

static struct ep_ip IP(const char *s)
{
	struct ep_ip ip;

	if (ep_ip_parse(s, &ip)) {
		fprintf(stderr, "bad address in test: %s\n", s);
		exit(2);
	}
	return ip;
}

static const char *ipstr(const struct ep_ip *ip)
{
	static char bufs[8][EP_IP_STRLEN];
	static int n;
	char *b = bufs[n++ % 8];

	return ep_ip_str(ip, b, EP_IP_STRLEN);
}

static bool ip_eq_raw(const struct ep_ip *a, const __u32 *addr, int family)
{
	return a->family == family && !memcmp(a->addr, addr, family == EP_FAMILY_V4 ? 4 : 16);
}

/* A flow as the client sees it. */
struct flow {
	struct ep_ip client, vip;
	uint16_t cport, vport;
	uint8_t proto;
};

static struct flow mkflow(const char *client, uint16_t cport, const char *vip, uint16_t vport,
			  uint8_t proto)
{
	struct flow f = {.client = IP(client), .vip = IP(vip), .cport = cport, .vport = vport,
			 .proto = proto};
	return f;
}

/* client -> server packet: TCP SYN or UDP datagram with `payload` bytes. */
static size_t pkt_between(uint8_t *frame, const struct ep_ip *src, uint16_t sport,
			  const struct ep_ip *dst, uint16_t dport, uint8_t proto, uint8_t tcp_flags,
			  int nvlan, bool qinq, size_t payload)
{
	uint8_t l4[FRAME_MAX], l3[FRAME_MAX];
	struct ipopt o = {.frag_off = 0x4000 /* DF */};
	size_t n4, n3;

	n4 = proto == P_TCP ? mk_tcp(l4, sport, dport, tcp_flags, payload)
			    : mk_udp(l4, sport, dport, payload);
	n3 = mk_ip(l3, src, dst, proto, l4, n4, &o);
	return mk_eth(frame, nvlan, qinq, ethertype_of(src->family), l3, n3);
}

static size_t flow_pkt(uint8_t *frame, const struct flow *f, int nvlan, bool qinq, size_t payload)
{
	return pkt_between(frame, &f->client, f->cport, &f->vip, f->vport, f->proto, TCP_SYN, nvlan,
			   qinq, payload);
}

static struct ep_flow_key flow_key(const struct flow *f)
{
	struct ep_flow_key k;

	memset(&k, 0, sizeof(k));
	memcpy(k.src, f->client.addr, sizeof(k.src));
	memcpy(k.dst, f->vip.addr, sizeof(k.dst));
	k.sport = htons(f->cport);
	k.dport = htons(f->vport);
	k.proto = f->proto;
	k.family = f->client.family;
	return k;
}

/* What a frame holds, with every checksum verified from scratch. */
struct parsed {
	bool ok;
	int nvlan;
	size_t l3off, l4off, l4len;
	int family;
	struct ep_ip src, dst;
	uint8_t proto, ttl;
	uint16_t sport, dport;
	bool ip_csum_ok;  /* IPv4 header checksum (true for IPv6) */
	bool l4_csum_ok;  /* full L4 checksum incl. pseudo header (ICMPv4: message only) */
	bool udp_nocsum;  /* IPv4 UDP without checksum */
	bool icmp_err;
	struct ep_ip qsrc, qdst;
	uint8_t qproto;
	uint16_t qsport, qdport;
	bool q_ip_csum_ok;
};

static void parse_frame(const uint8_t *f, size_t len, struct parsed *p)
{
	size_t off = 12;
	uint16_t et;
	const uint8_t *l4;
	int co;

	memset(p, 0, sizeof(*p));
	if (len < 14)
		return;
	et = get16(f + 12);
	while ((et == 0x8100 || et == 0x88a8) && off + 6 <= len) {
		off += 4;
		et = get16(f + off);
		p->nvlan++;
	}
	off += 2;
	p->l3off = off;
	if (et == 0x0800) {
		const uint8_t *ip = f + off;
		size_t hl, tot;

		if (off + 20 > len)
			return;
		hl = (size_t)(ip[0] & 15) * 4;
		tot = get16(ip + 2);
		if ((ip[0] >> 4) != 4 || hl < 20 || tot < hl || off + tot > len)
			return;
		p->family = EP_FAMILY_V4;
		p->src.family = p->dst.family = EP_FAMILY_V4;
		memcpy(p->src.addr, ip + 12, 4);
		memcpy(p->dst.addr, ip + 16, 4);
		p->proto = ip[9];
		p->ttl = ip[8];
		p->ip_csum_ok = fold(sum16(0, ip, hl)) == 0;
		p->l4off = off + hl;
		p->l4len = tot - hl;
	} else if (et == 0x86dd) {
		const uint8_t *ip = f + off;
		size_t plen;

		if (off + 40 > len)
			return;
		plen = get16(ip + 4);
		if (off + 40 + plen > len)
			return;
		p->family = EP_FAMILY_V6;
		p->src.family = p->dst.family = EP_FAMILY_V6;
		memcpy(p->src.addr, ip + 8, 16);
		memcpy(p->dst.addr, ip + 24, 16);
		p->proto = ip[6];
		p->ttl = ip[7];
		p->ip_csum_ok = true;
		p->l4off = off + 40;
		p->l4len = plen;
	} else {
		return;
	}
	l4 = f + p->l4off;
	co = l4_csum_off(p->proto);
	if (co >= 0 && p->l4len >= (size_t)co + 2) {
		uint32_t s = 0;
		const uint8_t *ip = f + p->l3off;

		if (p->proto != P_ICMP)
			s = p->family == EP_FAMILY_V4
				    ? pseudo_sum(p->family, ip + 12, ip + 16, p->proto, (uint32_t)p->l4len)
				    : pseudo_sum(p->family, ip + 8, ip + 24, p->proto, (uint32_t)p->l4len);
		p->l4_csum_ok = fold(sum16(s, l4, p->l4len)) == 0;
		if (p->proto == P_UDP && p->family == EP_FAMILY_V4 && get16(l4 + 6) == 0) {
			p->udp_nocsum = true;
			p->l4_csum_ok = true;
		}
	}
	if ((p->proto == P_TCP || p->proto == P_UDP) && p->l4len >= 4) {
		p->sport = get16(l4);
		p->dport = get16(l4 + 2);
	}
	if ((p->family == EP_FAMILY_V4 && p->proto == P_ICMP && p->l4len >= 8 + 20 + 4 &&
	     (l4[0] == 3 || l4[0] == 11 || l4[0] == 12))) {
		const uint8_t *q = l4 + 8;

		p->icmp_err = true;
		p->qsrc.family = p->qdst.family = EP_FAMILY_V4;
		memcpy(p->qsrc.addr, q + 12, 4);
		memcpy(p->qdst.addr, q + 16, 4);
		p->qproto = q[9];
		p->q_ip_csum_ok = fold(sum16(0, q, 20)) == 0;
		p->qsport = get16(q + 20);
		p->qdport = get16(q + 22);
	}
	if (p->family == EP_FAMILY_V6 && p->proto == P_ICMP6 && p->l4len >= 8 + 40 + 4 &&
	    l4[0] >= 1 && l4[0] <= 4) {
		const uint8_t *q = l4 + 8;

		p->icmp_err = true;
		p->qsrc.family = p->qdst.family = EP_FAMILY_V6;
		memcpy(p->qsrc.addr, q + 8, 16);
		memcpy(p->qdst.addr, q + 24, 16);
		p->qproto = q[6];
		p->q_ip_csum_ok = true;
		p->qsport = get16(q + 40);
		p->qdport = get16(q + 42);
	}
	p->ok = true;
}

/* Zeroes every checksum field so frames can be compared apart from them
 * (checksums are verified separately, from scratch). */
static void mask_csums(uint8_t *f, size_t len)
{
	struct parsed p;
	int co;

	parse_frame(f, len, &p);
	if (!p.ok)
		return;
	if (p.family == EP_FAMILY_V4)
		put16(f + p.l3off + 10, 0);
	co = l4_csum_off(p.proto);
	if (co >= 0 && p.l4len >= (size_t)co + 2)
		put16(f + p.l4off + co, 0);
	if (p.icmp_err) {
		/* quoted header checksum, and the quoted L4 checksum when quoted */
		size_t q = p.l4off + 8, qhl = p.family == EP_FAMILY_V4 ? 20 : 40;
		int qco = l4_csum_off(p.qproto);

		if (p.family == EP_FAMILY_V4)
			put16(f + q + 10, 0);
		if (qco >= 0 && 8 + qhl + (size_t)qco + 2 <= p.l4len)
			put16(f + q + qhl + qco, 0);
	}
}

static bool same_but_csums(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	uint8_t x[FRAME_MAX], y[FRAME_MAX];

	if (alen != blen || alen > FRAME_MAX)
		return false;
	memcpy(x, a, alen);
	memcpy(y, b, blen);
	mask_csums(x, alen);
	mask_csums(y, blen);
	return !memcmp(x, y, alen);
}

/* ==== the datapath under test ============================================ */

static struct xdp_lb *xskel;
static struct tc_rnat *tskel;
static struct ep_map_fds fds;
static struct ep_services svcs;
static int xdp_fd, rnat_in_fd, rnat_eg_fd, ncpu;

struct run {
	int err;
	uint32_t verdict;
	uint8_t out[4096];
	size_t outlen;
	struct parsed p;
};

static struct run R;

static int prog_run(int fd, const uint8_t *in, size_t len)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (__u32)len,
		    .data_out = R.out, .data_size_out = sizeof(R.out), .repeat = 1);

	memset(&R, 0, sizeof(R));
	R.err = bpf_prog_test_run_opts(fd, &o);
	if (R.err)
		R.err = -errno;
	R.verdict = o.retval;
	R.outlen = o.data_size_out;
	parse_frame(R.out, R.outlen, &R.p);
	return R.err;
}

static const char *tc_str(uint32_t v)
{
	switch (v) {
	case TC_ACT_OK:
		return "TC_ACT_OK";
	case TC_ACT_SHOT:
		return "TC_ACT_SHOT";
	case TC_ACT_REDIRECT:
		return "TC_ACT_REDIRECT";
	}
	return "?";
}

static struct ep_backend_stats read_bstats(uint32_t id)
{
	struct ep_backend_stats v[ncpu], sum = {0};

	if (bpf_map_lookup_elem(fds.backend_stats, &id, v) == 0) {
		for (int c = 0; c < ncpu; c++) {
			sum.packets += v[c].packets;
			sum.bytes += v[c].bytes;
			sum.flows += v[c].flows;
			sum.rnat_packets += v[c].rnat_packets;
		}
	}
	return sum;
}

/* ==== config ============================================================= */

#define MAX_SVC 16
#define MAX_BE 8

static struct ep_cfg_service cfg_svcs[MAX_SVC];
static struct ep_cfg_backend cfg_bes[MAX_SVC][MAX_BE];
static struct ep_config cfg;

static struct ep_cfg_service *add_svc(const char *name, const char *vip, uint16_t port,
				      uint8_t proto)
{
	struct ep_cfg_service *s = &cfg_svcs[cfg.n_services];

	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->vip = IP(vip);
	s->port = port;
	s->proto = proto;
	s->backends = cfg_bes[cfg.n_services];
	cfg.n_services++;
	return s;
}

static void add_be(struct ep_cfg_service *s, const char *addr, uint16_t port, uint32_t weight)
{
	struct ep_cfg_backend *b = &s->backends[s->n_backends++];

	memset(b, 0, sizeof(*b));
	b->addr = IP(addr);
	b->port = port;
	b->weight = weight;
}

static void build_config(void)
{
	struct ep_cfg_service *s;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.node_name, sizeof(cfg.node_name), "test");
	cfg.datapath.maglev_table_size = 251;
	cfg.datapath.conntrack_size = EP_CT_DEFAULT_SIZE;
	cfg.services = cfg_svcs;

	s = add_svc("web4", "10.0.0.100", 80, P_TCP);
	add_be(s, "10.1.0.11", 8080, 1);
	add_be(s, "10.1.0.12", 8080, 1);
	add_be(s, "10.1.0.13", 8080, 1);
	s = add_svc("dns4", "10.0.0.100", 53, P_UDP);
	add_be(s, "10.1.0.11", 8080, 1);
	add_be(s, "10.1.0.12", 8080, 1);
	add_be(s, "10.1.0.13", 8080, 1);
	s = add_svc("web6", "fd00::100", 80, P_TCP);
	add_be(s, "fd00:1::11", 8080, 1);
	add_be(s, "fd00:1::12", 8080, 1);
	add_be(s, "fd00:1::13", 8080, 1);
	s = add_svc("dns6", "fd00::100", 53, P_UDP);
	add_be(s, "fd00:1::11", 8080, 1);
	add_be(s, "fd00:1::12", 8080, 1);
	add_be(s, "fd00:1::13", 8080, 1);
	/* one backend address:port behind two VIP:ports */
	s = add_svc("shared-a", "10.0.0.101", 80, P_TCP);
	add_be(s, "10.1.0.21", 8080, 1);
	s = add_svc("shared-b", "10.0.0.102", 443, P_TCP);
	add_be(s, "10.1.0.21", 8080, 1);
	s = add_svc("shared6-a", "fd00::101", 80, P_TCP);
	add_be(s, "fd00:1::21", 8080, 1);
	s = add_svc("shared6-b", "fd00::102", 443, P_TCP);
	add_be(s, "fd00:1::21", 8080, 1);
}

/* ==== helpers ============================================================ */

/* Runs XDP on the client's first packet; returns the backend it chose. */
static bool open_flow(const struct flow *f, struct ep_ct_entry *ct, struct ep_ip *bip,
		      uint16_t *bport)
{
	uint8_t in[FRAME_MAX];
	size_t n = flow_pkt(in, f, 0, false, 0);
	struct ep_flow_key k = flow_key(f);

	prog_run(xdp_fd, in, n);
	if (R.err || R.verdict != XDP_PASS || ep_ct_get(&fds.ct, &k, ct))
		return false;
	memset(bip, 0, sizeof(*bip));
	bip->family = f->client.family;
	memcpy(bip->addr, ct->baddr, sizeof(bip->addr));
	*bport = ntohs(ct->bport);
	return R.p.ok && ip_eq_raw(bip, R.p.dst.addr, R.p.family) && R.p.dport == *bport;
}

/* Backend -> client reply (TCP SYN-ACK or UDP). */
static size_t reply_pkt(uint8_t *frame, const struct ep_ip *from, uint16_t fport,
			const struct flow *f, size_t payload)
{
	return pkt_between(frame, from, fport, &f->client, f->cport, f->proto, TCP_SYN | TCP_ACK, 0,
			   false, payload);
}

/* Runs one rnat program on a reply and checks it became VIP:vport -> client. */
static void check_reply(const char *name, int fd, bool ingress, const struct flow *f,
			const struct ep_ip *bip, uint16_t bport, uint32_t stats_id,
			const struct ep_ip *want_vip, uint16_t want_vport)
{
	uint8_t in[FRAME_MAX], exp[FRAME_MAX];
	size_t n = reply_pkt(in, bip, bport, f, 24);
	size_t en = reply_pkt(exp, want_vip, want_vport, f, 24);
	struct ep_backend_stats b0 = read_bstats(stats_id), b1;
	bool ok;

	prog_run(fd, in, n);
	b1 = read_bstats(stats_id);
	ok = R.err == 0 && R.verdict == TC_ACT_OK && R.p.ok &&
	     ip_eq_raw(want_vip, R.p.src.addr, R.p.family) && R.p.sport == want_vport &&
	     ip_eq_raw(&f->client, R.p.dst.addr, R.p.family) && R.p.dport == f->cport;
	if (!tap_ok(ok, "%s: %s, source %s:%u rewritten to %s:%u, destination untouched", name,
		    ingress ? "ep_tc_rnat (ingress)" : "ep_tc_rnat_egress", ipstr(bip), bport,
		    ipstr(want_vip), want_vport))
		tap_diag("  err %d verdict %s src %s:%u dst %s:%u", R.err, tc_str(R.verdict),
			 ipstr(&R.p.src), R.p.sport, ipstr(&R.p.dst), R.p.dport);
	ok = R.p.ok && R.p.ip_csum_ok && R.p.l4_csum_ok && !R.p.udp_nocsum;
	if (!tap_ok(ok, "%s: IPv4 header (if any) + full L4 checksum (pseudo header) valid", name))
		tap_diag("  ip %d l4 %d", R.p.ip_csum_ok, R.p.l4_csum_ok);
	ok = same_but_csums(R.out, R.outlen, exp, en) && R.p.ttl == 64;
	if (!tap_ok(ok, "%s: nothing else changed (TTL/hop limit 64 kept, MACs kept)", name))
		tap_diag("  outlen %zu expected %zu ttl %u", R.outlen, en, R.p.ttl);
	if (stats_id)
		tap_ok(b1.rnat_packets - b0.rnat_packets == 1,
		       "%s: ep_backend_stats[%u].rnat_packets +1 (got +%llu)", name, stats_id,
		       (unsigned long long)(b1.rnat_packets - b0.rnat_packets));
}

static void expect_untouched(const char *name, int fd, const uint8_t *in, size_t len)
{
	prog_run(fd, in, len);
	if (!tap_ok(R.err == 0 && R.verdict == TC_ACT_OK && R.outlen == len &&
			    !memcmp(R.out, in, len),
		    "%s: TC_ACT_OK, bytes unchanged", name))
		tap_diag("  err %d verdict %s outlen %zu/%zu", R.err, tc_str(R.verdict), R.outlen,
			 len);
}

/* ICMP port unreachable from the backend about a datagram client -> backend. */
static size_t icmp_unreach_frame(uint8_t *frame, const struct ep_ip *from, const struct ep_ip *to,
				 const struct ep_ip *qsrc, uint16_t qsport,
				 const struct ep_ip *qdst, uint16_t qdport, uint8_t qproto)
{
	uint8_t ql4[64], q[128], icmp[256], l3[512];
	struct ipopt io = {.frag_off = 0x4000};
	bool v4 = from->family == EP_FAMILY_V4;
	size_t n4, nq, ni, n3;

	n4 = qproto == P_TCP ? mk_tcp(ql4, qsport, qdport, TCP_ACK, 0) : mk_udp(ql4, qsport, qdport, 16);
	nq = mk_ip(q, qsrc, qdst, qproto, ql4, n4, &io);
	if (v4)
		ni = mk_icmp_err(icmp, 3, 3, 0, q, nq);
	else
		ni = mk_icmp_err(icmp, 1, 4, 0, q, nq);
	n3 = mk_ip(l3, from, to, v4 ? P_ICMP : P_ICMP6, icmp, ni, NULL);
	return mk_eth(frame, 0, false, ethertype_of(from->family), l3, n3);
}

static void check_icmp(const char *name, int fd, const struct flow *f, const struct ep_ip *bip,
		       uint16_t bport, uint32_t stats_id)
{
	uint8_t in[FRAME_MAX], exp[FRAME_MAX];
	size_t n = icmp_unreach_frame(in, bip, &f->client, &f->client, f->cport, bip, bport,
				      f->proto);
	size_t en = icmp_unreach_frame(exp, &f->vip, &f->client, &f->client, f->cport, &f->vip,
				       f->vport, f->proto);
	struct ep_backend_stats b0 = read_bstats(stats_id), b1;
	bool v4 = f->vip.family == EP_FAMILY_V4, ok;

	prog_run(fd, in, n);
	b1 = read_bstats(stats_id);
	ok = R.err == 0 && R.verdict == TC_ACT_OK && R.p.ok && R.p.icmp_err &&
	     ip_eq_raw(&f->vip, R.p.src.addr, R.p.family) &&
	     ip_eq_raw(&f->client, R.p.dst.addr, R.p.family);
	if (!tap_ok(ok, "%s: TC_ACT_OK, outer source %s -> VIP %s, outer destination untouched", name,
		    ipstr(bip), ipstr(&f->vip)))
		tap_diag("  err %d verdict %s src %s dst %s", R.err, tc_str(R.verdict),
			 ipstr(&R.p.src), ipstr(&R.p.dst));
	ok = R.p.icmp_err && ip_eq_raw(&f->vip, R.p.qdst.addr, R.p.family) &&
	     R.p.qdport == f->vport && ip_eq_raw(&f->client, R.p.qsrc.addr, R.p.family) &&
	     R.p.qsport == f->cport;
	if (!tap_ok(ok, "%s: quoted destination -> %s:%u, quoted source (client) untouched", name,
		    ipstr(&f->vip), f->vport))
		tap_diag("  quoted %s:%u -> %s:%u", ipstr(&R.p.qsrc), R.p.qsport, ipstr(&R.p.qdst),
			 R.p.qdport);
	if (v4) {
		tap_ok(R.p.ip_csum_ok, "%s: outer IPv4 header checksum valid", name);
		tap_ok(R.p.q_ip_csum_ok, "%s: quoted IPv4 header checksum valid", name);
		if (!tap_ok(R.p.l4_csum_ok, "%s: ICMP checksum (message only, no pseudo header) valid",
			    name)) {
			uint8_t fixed[FRAME_MAX];
			struct parsed p;

			memcpy(fixed, R.out, R.outlen);
			parse_frame(fixed, R.outlen, &p);
			l4_csum_fill(EP_FAMILY_V4, NULL, NULL, P_ICMP, fixed + p.l4off, p.l4len);
			tap_diag("  ICMP checksum in packet 0x%04x, correct 0x%04x",
				 get16(R.out + p.l4off + 2), get16(fixed + p.l4off + 2));
		}
	} else {
		tap_ok(R.p.l4_csum_ok, "%s: ICMPv6 checksum (pseudo header + message) valid", name);
	}
	if (!tap_ok(same_but_csums(R.out, R.outlen, exp, en), "%s: nothing else changed", name))
		tap_diag("  outlen %zu expected %zu", R.outlen, en);
	tap_ok(b1.rnat_packets - b0.rnat_packets == 1,
	       "%s: ep_backend_stats[%u].rnat_packets +1 (got +%llu)", name, stats_id,
	       (unsigned long long)(b1.rnat_packets - b0.rnat_packets));
}

/* ==== tests ============================================================== */

static void test_replies(void)
{
	struct {
		const char *name;
		struct flow f;
	} cases[] = {
		{"IPv4 TCP reply", mkflow("198.51.100.10", 40000, "10.0.0.100", 80, P_TCP)},
		{"IPv4 UDP reply", mkflow("198.51.100.10", 40001, "10.0.0.100", 53, P_UDP)},
		{"IPv6 TCP reply", mkflow("2001:db8::10", 40002, "fd00::100", 80, P_TCP)},
		{"IPv6 UDP reply", mkflow("2001:db8::10", 40003, "fd00::100", 53, P_UDP)},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct flow *f = &cases[i].f;
		struct ep_ct_entry ct = {0};
		struct ep_ip bip = {0};
		uint16_t bport = 0;
		char nm[96];
		bool opened = open_flow(f, &ct, &bip, &bport);

		if (!tap_ok(opened, "%s: flow opened through XDP (to %s:%u)", cases[i].name,
			    ipstr(&bip), bport))
			continue;
		snprintf(nm, sizeof(nm), "%s, egress", cases[i].name);
		check_reply(nm, rnat_eg_fd, false, f, &bip, bport, ct.backend_id, &f->vip, f->vport);
		snprintf(nm, sizeof(nm), "%s, ingress", cases[i].name);
		check_reply(nm, rnat_in_fd, true, f, &bip, bport, ct.backend_id, &f->vip, f->vport);
	}
}

/* UDP checksum corner cases: none (IPv4) stays none; a translated checksum
 * that computes to 0 is sent as 0xffff. */
static void test_udp_csum_corners(void)
{
	struct flow f = mkflow("198.51.100.15", 40100, "10.0.0.100", 53, P_UDP);
	struct ep_ct_entry ct;
	struct ep_ip bip;
	uint16_t bport;
	uint8_t l4[64], l3[128], in[FRAME_MAX];
	size_t n4, n3, n;

	if (!tap_ok(open_flow(&f, &ct, &bip, &bport), "UDP corners: IPv4 flow opened through XDP"))
		return;
	{
		struct ipopt io = {.no_l4_csum = true};

		n4 = mk_udp(l4, bport, f.cport, 16);
		n3 = mk_ip(l3, &bip, &f.client, P_UDP, l4, n4, &io);
		n = mk_eth(in, 0, false, 0x0800, l3, n3);
		prog_run(rnat_eg_fd, in, n);
		if (!tap_ok(R.verdict == TC_ACT_OK && R.p.ok &&
				    ip_eq_raw(&f.vip, R.p.src.addr, R.p.family) &&
				    R.p.sport == f.vport && R.p.ip_csum_ok && R.p.udp_nocsum,
			    "IPv4 UDP reply without checksum: translated, IPv4 checksum valid, UDP "
			    "checksum stays 0"))
			tap_diag("  verdict %s src %s:%u ip %d csum 0x%04x", tc_str(R.verdict),
				 ipstr(&R.p.src), R.p.sport, R.p.ip_csum_ok,
				 R.p.ok ? get16(R.out + R.p.l4off + 6) : 0);
	}
	for (int v6 = 0; v6 < 2; v6++) {
		struct flow g = v6 ? mkflow("2001:db8::15", 40101, "fd00::100", 53, P_UDP)
				   : mkflow("198.51.100.15", 40101, "10.0.0.100", 53, P_UDP);
		uint16_t x;

		if (!open_flow(&g, &ct, &bip, &bport)) {
			tap_ok(0, "UDP corners: flow opened");
			continue;
		}
		/* payload chosen so that VIP:53 -> client sums to zero */
		x = udp_zero_csum_word(&g.vip, g.vport, &g.client, g.cport, 16);
		n4 = mk_udp(l4, bport, g.cport, 16);
		put16(l4 + 8, x);
		n3 = mk_ip(l3, &bip, &g.client, P_UDP, l4, n4, NULL);
		n = mk_eth(in, 0, false, ethertype_of(g.vip.family), l3, n3);
		prog_run(rnat_eg_fd, in, n);
		if (!tap_ok(R.verdict == TC_ACT_OK && R.p.ok &&
				    ip_eq_raw(&g.vip, R.p.src.addr, R.p.family) && R.p.l4_csum_ok &&
				    R.p.ip_csum_ok && get16(R.out + R.p.l4off + 6) == 0xffff,
			    "%s UDP reply whose translated checksum computes to 0: sent as 0xffff",
			    v6 ? "IPv6" : "IPv4"))
			tap_diag("  verdict %s csum field 0x%04x", tc_str(R.verdict),
				 R.p.ok ? get16(R.out + R.p.l4off + 6) : 0);
	}
}

static void test_not_ours(void)
{
	struct flow f = mkflow("198.51.100.20", 41000, "10.0.0.100", 80, P_TCP);
	struct flow f6 = mkflow("2001:db8::20", 41000, "fd00::100", 80, P_TCP);
	struct ep_ip other = IP("10.1.0.99"), be = IP("10.1.0.11"), other6 = IP("fd00:1::99");
	uint8_t in[FRAME_MAX];
	size_t n;

	n = reply_pkt(in, &other, 8080, &f, 24);
	expect_untouched("reply from a non-backend 10.1.0.99:8080 (egress)", rnat_eg_fd, in, n);
	expect_untouched("reply from a non-backend 10.1.0.99:8080 (ingress)", rnat_in_fd, in, n);
	n = reply_pkt(in, &be, 9090, &f, 24);
	expect_untouched("reply from a backend address, other port 10.1.0.11:9090", rnat_eg_fd, in,
			 n);
	n = reply_pkt(in, &other6, 8080, &f6, 24);
	expect_untouched("IPv6 reply from a non-backend [fd00:1::99]:8080", rnat_eg_fd, in, n);
	/* UDP from a backend that serves that address:port only over TCP */
	{
		struct flow fu = mkflow("198.51.100.20", 41001, "10.0.0.101", 80, P_UDP);
		struct ep_ip shared = IP("10.1.0.21");

		n = reply_pkt(in, &shared, 8080, &fu, 24);
		expect_untouched("UDP from 10.1.0.21:8080 (a TCP-only backend)", rnat_eg_fd, in, n);
	}
	/* ICMP echo reply from a backend: not an error, nothing to translate */
	{
		uint8_t l4[64], l3[128];
		struct ep_ip client = IP("198.51.100.20");
		size_t n4 = mk_icmp_echo(l4, EP_FAMILY_V4, 16), n3;

		l4[0] = 0; /* echo reply */
		n3 = mk_ip(l3, &be, &client, P_ICMP, l4, n4, NULL);
		n = mk_eth(in, 0, false, 0x0800, l3, n3);
		expect_untouched("ICMP echo reply from a backend", rnat_eg_fd, in, n);
	}
	/* ARP */
	{
		uint8_t arp[28] = {0, 1, 8, 0, 6, 4, 0, 2};

		n = mk_eth(in, 0, false, 0x0806, arp, sizeof(arp));
		memset(in + n, 0, 60 - n);
		expect_untouched("ARP reply", rnat_eg_fd, in, 60);
	}
}

static void test_conntrack_miss(void)
{
	/* Documented in tc_rnat.bpf.c: a reply conntrack knows no flow for is
	 * left alone, even when the backend serves a single VIP:port: it may
	 * belong to a connection made to the backend directly. */
	struct flow f = mkflow("198.51.100.30", 42000, "10.0.0.100", 80, P_TCP);
	struct flow fs = mkflow("198.51.100.30", 42001, "10.0.0.101", 80, P_TCP);
	struct ep_ip be = IP("10.1.0.11"), shared = IP("10.1.0.21");
	uint8_t in[FRAME_MAX];
	size_t n;

	n = reply_pkt(in, &be, 8080, &f, 24);
	expect_untouched("unknown flow, backend with a single VIP:port (direct connection)",
			 rnat_eg_fd, in, n);
	n = reply_pkt(in, &shared, 8080, &fs, 24);
	expect_untouched("unknown flow, backend behind two VIP:ports", rnat_eg_fd, in, n);
}

/* Recomputes the L4 checksum of an untagged frame after a test edited it. */
static void l4_recsum_frame(uint8_t *frame, size_t n)
{
	uint8_t *ip = frame + 14;

	if ((ip[0] >> 4) == 4)
		l4_csum_fill(EP_FAMILY_V4, ip + 12, ip + 16, ip[9], ip + 20, n - 14 - 20);
	else
		l4_csum_fill(EP_FAMILY_V6, ip + 8, ip + 24, ip[6], ip + 40, n - 14 - 40);
}

/* TCP conntrack state: a SYN-ACK that does not acknowledge the client's ISN
 * reveals a stale entry (a direct connection reusing an old VIP flow's
 * 4-tuple); FIN/RST mark a flow closing; a new SYN on a closing flow is
 * balanced afresh. */
static void test_tcp_state(void)
{
	struct flow f = mkflow("198.51.100.77", 43000, "10.0.0.100", 80, P_TCP);
	struct ep_flow_key k = flow_key(&f);
	struct ep_ct_entry ct, ct2;
	uint8_t in[FRAME_MAX];
	struct ep_ip bip;
	uint16_t bport;
	size_t n;

	tap_ok(open_flow(&f, &ct, &bip, &bport), "tcp state: flow opened through XDP");
	tap_ok(ct.isn == htonl(0x01020304), "tcp state: conntrack recorded the client's ISN (0x%08x)",
	       ntohl(ct.isn));
	/* A SYN-ACK acknowledging another ISN: not this flow. */
	n = pkt_between(in, &bip, bport, &f.client, f.cport, P_TCP, TCP_SYN | TCP_ACK, 0, false, 0);
	put32(in + 14 + (f.client.family == EP_FAMILY_V4 ? 20 : 40) + 8, 0x77777777);
	l4_recsum_frame(in, n);
	expect_untouched("tcp state: SYN-ACK with a foreign acknowledgement", rnat_eg_fd, in, n);
	tap_ok(ep_ct_get(&fds.ct, &k, &ct2) != 0,
	       "tcp state: the stale conntrack entry was removed");

	/* Reopen; a FIN from the client marks the flow closing. */
	tap_ok(open_flow(&f, &ct, &bip, &bport), "tcp state: flow reopened");
	n = pkt_between(in, &f.client, f.cport, &f.vip, f.vport, P_TCP, TCP_FIN | TCP_ACK, 0, false, 0);
	prog_run(xdp_fd, in, n);
	tap_ok(R.verdict == XDP_PASS && ep_ct_get(&fds.ct, &k, &ct2) == 0 &&
		       (ct2.flags & EP_CT_F_CLOSING),
	       "tcp state: client FIN through XDP marks the flow closing");
	/* A SYN retransmission on a live flow keeps the backend; on a closing
	 * flow it is a new connection and is balanced again (the entry is
	 * replaced, flags cleared). */
	n = flow_pkt(in, &f, 0, false, 0);
	prog_run(xdp_fd, in, n);
	tap_ok(R.verdict == XDP_PASS && ep_ct_get(&fds.ct, &k, &ct2) == 0 &&
		       !(ct2.flags & EP_CT_F_CLOSING),
	       "tcp state: a new SYN on a closing flow starts a fresh entry");
	/* A RST from the backend marks it closing too (and is translated). */
	n = pkt_between(in, &bip, bport, &f.client, f.cport, P_TCP, TCP_RST | TCP_ACK, 0, false, 0);
	prog_run(rnat_eg_fd, in, n);
	tap_ok(R.verdict == TC_ACT_OK && R.p.ok && R.p.sport == f.vport &&
		       ep_ct_get(&fds.ct, &k, &ct2) == 0 && (ct2.flags & EP_CT_F_CLOSING),
	       "tcp state: backend RST translated and marks the flow closing");
}

static void test_shared_backend(void)
{
	struct {
		const char *name;
		struct flow f;
	} cases[] = {
		{"shared backend, client A via 10.0.0.101:80",
		 mkflow("198.51.100.40", 43000, "10.0.0.101", 80, P_TCP)},
		{"shared backend, client B via 10.0.0.102:443",
		 mkflow("198.51.100.41", 43000, "10.0.0.102", 443, P_TCP)},
		{"shared backend, client A (other port) via 10.0.0.102:443",
		 mkflow("198.51.100.40", 43001, "10.0.0.102", 443, P_TCP)},
		{"shared IPv6 backend, client A via [fd00::101]:80",
		 mkflow("2001:db8::40", 43000, "fd00::101", 80, P_TCP)},
		{"shared IPv6 backend, client B via [fd00::102]:443",
		 mkflow("2001:db8::41", 43000, "fd00::102", 443, P_TCP)},
	};
	struct ep_ct_entry ct[5] = {0};
	struct ep_ip bip[5] = {0};
	uint16_t bport[5] = {0};
	bool opened[5] = {0};

	/* open every flow first, then answer them all */
	for (size_t i = 0; i < 5; i++) {
		opened[i] = open_flow(&cases[i].f, &ct[i], &bip[i], &bport[i]);
		tap_ok(opened[i] && bport[i] == 8080 &&
			       (bip[i].family == EP_FAMILY_V4 ? ip_eq_raw(&bip[i], IP("10.1.0.21").addr, 4)
							     : ip_eq_raw(&bip[i], IP("fd00:1::21").addr, 6)),
		       "%s: flow opened through XDP to the shared backend %s:%u", cases[i].name,
		       ipstr(&bip[i]), bport[i]);
	}
	for (size_t i = 0; i < 5; i++) {
		if (!opened[i])
			continue;
		check_reply(cases[i].name, rnat_eg_fd, false, &cases[i].f, &bip[i], bport[i],
			    ct[i].backend_id, &cases[i].f.vip, cases[i].f.vport);
	}
}

static void test_icmp(void)
{
	struct flow f4 = mkflow("198.51.100.50", 44000, "10.0.0.100", 53, P_UDP);
	struct flow f6 = mkflow("2001:db8::50", 44000, "fd00::100", 53, P_UDP);
	struct ep_ct_entry ct = {0};
	struct ep_ip bip = {0};
	uint16_t bport = 0;

	if (tap_ok(open_flow(&f4, &ct, &bip, &bport), "ICMP: IPv4 UDP flow opened through XDP"))
		check_icmp("ICMP port unreachable from the backend (IPv4, egress)", rnat_eg_fd, &f4,
			   &bip, bport, ct.backend_id);
	if (tap_ok(open_flow(&f6, &ct, &bip, &bport), "ICMPv6: IPv6 UDP flow opened through XDP"))
		check_icmp("ICMPv6 port unreachable from the backend (IPv6, egress)", rnat_eg_fd,
			   &f6, &bip, bport, ct.backend_id);
	/* about a TCP flow to VIP:80 */
	{
		struct flow t4 = mkflow("198.51.100.51", 44010, "10.0.0.100", 80, P_TCP);
		struct flow t6 = mkflow("2001:db8::51", 44010, "fd00::100", 80, P_TCP);

		if (tap_ok(open_flow(&t4, &ct, &bip, &bport), "ICMP: IPv4 TCP flow opened through XDP"))
			check_icmp("ICMP port unreachable about a TCP flow (quoted client -> "
				   "backend:8080, IPv4, egress)",
				   rnat_eg_fd, &t4, &bip, bport, ct.backend_id);
		if (tap_ok(open_flow(&t6, &ct, &bip, &bport), "ICMPv6: IPv6 TCP flow opened through XDP"))
			check_icmp("ICMPv6 port unreachable about a TCP flow (IPv6, egress)", rnat_eg_fd,
				   &t6, &bip, bport, ct.backend_id);
	}
	/* the ingress program does the same rewrite */
	f4.cport = 44001;
	if (open_flow(&f4, &ct, &bip, &bport))
		check_icmp("ICMP port unreachable from the backend (IPv4, ingress)", rnat_in_fd, &f4,
			   &bip, bport, ct.backend_id);
	f6.cport = 44001;
	if (open_flow(&f6, &ct, &bip, &bport))
		check_icmp("ICMPv6 port unreachable from the backend (IPv6, ingress)", rnat_in_fd,
			   &f6, &bip, bport, ct.backend_id);
}

/* Every map of tc_rnat reuses xdp_lb's map of the same name. */
static int share_maps(void)
{
	struct bpf_map *m;
	int rc = 0, n = 0;

	bpf_object__for_each_map(m, tskel->obj) {
		const char *name = bpf_map__name(m);
		struct bpf_map *x = bpf_object__find_map_by_name(xskel->obj, name);
		int e;

		if (!x || bpf_map__is_internal(m))
			continue; /* .rodata / .bss and friends are per object */
		e = bpf_map__reuse_fd(m, bpf_map__fd(x));
		if (e) {
			tap_diag("bpf_map__reuse_fd(%s): %d", name, e);
			rc = e;
		}
		n++;
	}
	tap_diag("tc_rnat reuses %d maps of xdp_lb", n);
	return rc;
}

int main(void)
{
	char err[512] = "";
	int rc = 0;

	ep_log_setup(0, EP_LOG_WARN);
	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root (BPF)\n");
		return 0;
	}
	/* No routes: bpf_fib_lookup() in ep_tc_rnat must fail in test_run. */
	if (unshare(CLONE_NEWNET))
		tap_diag("unshare(CLONE_NEWNET) failed (%s): fib lookups see the host's routes",
			 strerror(errno));
	ncpu = libbpf_num_possible_cpus();
	if (ncpu < 1)
		ncpu = 1;

	xskel = xdp_lb__open_and_load();
	if (!tap_ok(xskel != NULL, "xdp_lb loaded (maps not pinned)"))
		return tap_done();
	tskel = tc_rnat__open();
	if (!tap_ok(tskel != NULL, "tc_rnat opened")) {
		xdp_lb__destroy(xskel);
		return tap_done();
	}
	rc = share_maps();
	if (!rc)
		rc = tc_rnat__load(tskel);
	if (!tap_ok(rc == 0, "tc_rnat loaded sharing every map with xdp_lb (rc %d)", rc))
		goto out;
	{
		struct bpf_map_info a = {0}, b = {0};
		__u32 la = sizeof(a), lb = sizeof(b);

		bpf_obj_get_info_by_fd(bpf_map__fd(xskel->maps.ep_ct4), &a, &la);
		bpf_obj_get_info_by_fd(bpf_map__fd(tskel->maps.ep_ct4), &b, &lb);
		tap_ok(a.id && a.id == b.id, "ep_ct4 is one map for both objects (id %u / %u)", a.id,
		       b.id);
	}
	xdp_fd = bpf_program__fd(xskel->progs.ep_xdp_lb);
	rnat_in_fd = bpf_program__fd(tskel->progs.ep_tc_rnat);
	rnat_eg_fd = bpf_program__fd(tskel->progs.ep_tc_rnat_egress);
	fds.vips = bpf_map__fd(xskel->maps.ep_vips);
	fds.vip_filter = bpf_map__fd(xskel->maps.ep_vip_filter);
	fds.services = bpf_map__fd(xskel->maps.ep_services);
	fds.maglev = bpf_map__fd(xskel->maps.ep_maglev);
	fds.backends = bpf_map__fd(xskel->maps.ep_backends);
	fds.backend_rev = bpf_map__fd(xskel->maps.ep_backend_rev);
	fds.ct.v4 = bpf_map__fd(xskel->maps.ep_ct4);
	fds.ct.v6 = bpf_map__fd(xskel->maps.ep_ct6);
	fds.backend_stats = bpf_map__fd(xskel->maps.ep_backend_stats);
	fds.drops = bpf_map__fd(xskel->maps.ep_drops);
	fds.config = bpf_map__fd(xskel->maps.ep_config);
	fds.tx_ports = bpf_map__fd(xskel->maps.ep_tx_ports);

	tap_ok(ep_services_init(&svcs, &fds) == 0, "ep_services_init");
	build_config();
	rc = ep_services_apply(&svcs, &cfg, err, sizeof(err));
	if (!tap_ok(rc == 0, "ep_services_apply: %zu services (%s)", cfg.n_services, err))
		goto out;

	test_replies();
	test_udp_csum_corners();
	test_not_ours();
	test_conntrack_miss();
	test_tcp_state();
	test_shared_backend();
	test_icmp();

	ep_services_free(&svcs);
out:
	tc_rnat__destroy(tskel);
	xdp_lb__destroy(xskel);
	return tap_done();
}
