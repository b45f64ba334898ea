/* See frames.h. */
#include "frames.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ep_hash.h"

int l4_csum_off(uint8_t proto)
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
void l4_csum_fill(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto, uint8_t *l4,
		  size_t len)
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

void ip4_recsum(uint8_t *ip)
{
	size_t hl = (size_t)(ip[0] & 15) * 4;

	if (hl < 20)
		hl = 20;
	put16(ip + 10, 0);
	put16(ip + 10, fold(sum16(0, ip, hl)));
}

void fill_payload(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + 1);
}

size_t mk_tcp(uint8_t *o, uint16_t sport, uint16_t dport, uint8_t flags, size_t payload)
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

size_t mk_udp(uint8_t *o, uint16_t sport, uint16_t dport, size_t payload)
{
	put16(o, sport);
	put16(o + 2, dport);
	put16(o + 4, (uint32_t)(8 + payload));
	put16(o + 6, 0);
	fill_payload(o + 8, payload);
	return 8 + payload;
}

size_t mk_icmp_echo(uint8_t *o, int family, size_t payload)
{
	o[0] = family == EP_FAMILY_V4 ? 8 : 128;
	o[1] = 0;
	put16(o + 2, 0);
	put16(o + 4, 0x1234);
	put16(o + 6, 1);
	fill_payload(o + 8, payload);
	return 8 + payload;
}

size_t mk_icmp_err(uint8_t *o, uint8_t type, uint8_t code, uint32_t word, const uint8_t *quoted,
		   size_t qlen)
{
	o[0] = type;
	o[1] = code;
	put16(o + 2, 0);
	put32(o + 4, word);
	memcpy(o + 8, quoted, qlen);
	return 8 + qlen;
}

/* IP header + l4 bytes; the L4 checksum is computed over what is given. */
size_t mk_ip(uint8_t *o, const struct ep_ip *src, const struct ep_ip *dst, uint8_t proto,
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

const uint8_t MAC_DST[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
const uint8_t MAC_SRC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

/* Ethernet (+ nvlan tags; qinq: the outer of two is 802.1ad) around l3. */
size_t mk_eth(uint8_t *o, int nvlan, bool qinq, uint16_t ethertype, const uint8_t *l3, size_t l3len)
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
uint16_t udp_zero_csum_word(const struct ep_ip *src, uint16_t sport, const struct ep_ip *dst,
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

uint16_t ethertype_of(int family)
{
	return family == EP_FAMILY_V4 ? 0x0800 : 0x86dd;
}

struct ep_ip IP(const char *s) {
	struct ep_ip ip;

	if (ep_ip_parse(s, &ip)) {
		fprintf(stderr, "bad address in test: %s\n", s);
		exit(2);
	}
	return ip;
}

const char *
ipstr(const struct ep_ip *ip)
{
	static char bufs[8][EP_IP_STRLEN];
	static int n;
	char *b = bufs[n++ % 8];

	return ep_ip_str(ip, b, EP_IP_STRLEN);
}

bool ip_eq_raw(const struct ep_ip *a, const __u32 *addr, int family)
{
	return a->family == family && !memcmp(a->addr, addr, family == EP_FAMILY_V4 ? 4 : 16);
}

struct flow mkflow(const char *client, uint16_t cport, const char *vip, uint16_t vport,
		   uint8_t proto)
{
	struct flow f = {
	    .client = IP(client), .vip = IP(vip), .cport = cport, .vport = vport, .proto = proto};
	return f;
}

/* client -> server packet: TCP SYN or UDP datagram with `payload` bytes. */
size_t pkt_between(uint8_t *frame, const struct ep_ip *src, uint16_t sport, const struct ep_ip *dst,
		   uint16_t dport, uint8_t proto, uint8_t tcp_flags, int nvlan, bool qinq,
		   size_t payload)
{
	uint8_t l4[FRAME_MAX], l3[FRAME_MAX];
	struct ipopt o = {.frag_off = 0x4000 /* DF */};
	size_t n4, n3;

	n4 = proto == P_TCP ? mk_tcp(l4, sport, dport, tcp_flags, payload)
			    : mk_udp(l4, sport, dport, payload);
	n3 = mk_ip(l3, src, dst, proto, l4, n4, &o);
	return mk_eth(frame, nvlan, qinq, ethertype_of(src->family), l3, n3);
}

size_t flow_pkt(uint8_t *frame, const struct flow *f, int nvlan, bool qinq, size_t payload)
{
	return pkt_between(frame, &f->client, f->cport, &f->vip, f->vport, f->proto, TCP_SYN, nvlan,
			   qinq, payload);
}

struct ep_flow_key flow_key(const struct flow *f)
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

void parse_frame(const uint8_t *f, size_t len, struct parsed *p)
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
			s = p->family == EP_FAMILY_V4 ? pseudo_sum(p->family, ip + 12, ip + 16,
								   p->proto, (uint32_t)p->l4len)
						      : pseudo_sum(p->family, ip + 8, ip + 24,
								   p->proto, (uint32_t)p->l4len);
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
void mask_csums(uint8_t *f, size_t len)
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

bool same_but_csums(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
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

void l4_recsum_frame(uint8_t *frame, size_t n)
{
	uint8_t *ip = frame + 14;

	if ((ip[0] >> 4) == 4)
		l4_csum_fill(EP_FAMILY_V4, ip + 12, ip + 16, ip[9], ip + 20, n - 14 - 20);
	else
		l4_csum_fill(EP_FAMILY_V6, ip + 8, ip + 24, ip[6], ip + 40, n - 14 - 40);
}

void tcp_set_seq(uint8_t *frame, size_t n, uint32_t seq)
{
	uint8_t *ip = frame + 14;

	put32(ip + ((ip[0] >> 4) == 4 ? 20 : 40) + 4, seq);
	l4_recsum_frame(frame, n);
}

size_t flow_ack_pkt(uint8_t *frame, const struct flow *f)
{
	size_t n = pkt_between(frame, &f->client, f->cport, &f->vip, f->vport, f->proto, TCP_ACK, 0,
			       false, 0);

	tcp_set_seq(frame, n, FRAME_ISN + 1);
	return n;
}
