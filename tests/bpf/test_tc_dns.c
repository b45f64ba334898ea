/*
 * DNS observation and failover redirect in TC (tc/tc_dns.bpf.c) through
 * BPF_PROG_TEST_RUN.
 *
 * The skeleton is loaded unpinned and its maps are filled here as the agent
 * would: upstreams, config (mode, cache addresses, sampling), snapshot
 * entries. Crafted Ethernet frames go through ep_tc_dns_ingress and
 * ep_tc_dns_egress; verdicts, output bytes (checksums verified from
 * scratch), ep_dns_pending / ep_dns_redir entries, per-CPU ep_dns_stats and
 * the samples in the ep_dns_samples ring buffer are checked. Ends with 20000
 * random, mutated and truncated frames through both programs.
 *
 * No routes or devices are involved, so no network namespace is needed.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edgeplane_abi.h"
#include "bpf_run.h"
#include "csum.h"
#include "ep_hash.h"
#include "tap.h"
#include "tc_dns.skel.h"

#define P_TCP 6
#define P_UDP 17

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_PSH 0x08
#define TCP_ACK 0x10

#define FRAME_MAX 4096

#define T_A 1
#define T_CNAME 5
#define T_AAAA 28

/* ==== addresses =========================================================== */

struct addr {
	int family; /* EP_FAMILY_V4 / EP_FAMILY_V6 */
	uint8_t a[16];
};

static struct addr A(const char *s)
{
	struct addr x;

	memset(&x, 0, sizeof(x));
	if (inet_pton(AF_INET, s, x.a) == 1) {
		x.family = EP_FAMILY_V4;
		return x;
	}
	if (inet_pton(AF_INET6, s, x.a) == 1) {
		x.family = EP_FAMILY_V6;
		return x;
	}
	fprintf(stderr, "bad address in test: %s\n", s);
	exit(2);
}

static size_t alen(int family)
{
	return family == EP_FAMILY_V4 ? 4 : 16;
}

static void key_addr(__u32 out[4], const struct addr *x)
{
	memset(out, 0, 16);
	memcpy(out, x->a, alen(x->family));
}

static const char *astr(const struct addr *x)
{
	static char bufs[8][INET6_ADDRSTRLEN];
	static int n;
	char *b = bufs[n++ % 8];

	inet_ntop(x->family == EP_FAMILY_V4 ? AF_INET : AF_INET6, x->a, b, INET6_ADDRSTRLEN);
	return b;
}

static bool addr_is(const uint8_t *raw, const struct addr *x)
{
	return !memcmp(raw, x->a, alen(x->family));
}

/* ==== DNS messages ======================================================== */

struct dnsb {
	uint8_t b[2048];
	size_t n;
};

static void db_u8(struct dnsb *d, uint8_t v)
{
	d->b[d->n++] = v;
}

static void db_u16(struct dnsb *d, uint16_t v)
{
	put16(d->b + d->n, v);
	d->n += 2;
}

static void db_u32(struct dnsb *d, uint32_t v)
{
	put32(d->b + d->n, v);
	d->n += 4;
}

static void db_bytes(struct dnsb *d, const void *p, size_t n)
{
	memcpy(d->b + d->n, p, n);
	d->n += n;
}

/* Text name -> wire labels, case kept. */
static void db_name(struct dnsb *d, const char *name)
{
	const char *p = name;

	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (!l)
			break;
		db_u8(d, (uint8_t)l);
		db_bytes(d, p, l);
		p += l;
		if (*p == '.')
			p++;
	}
	db_u8(d, 0);
}

static void db_hdr(struct dnsb *d, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
		   uint16_t ns, uint16_t ar)
{
	d->n = 0;
	db_u16(d, id);
	db_u16(d, flags);
	db_u16(d, qd);
	db_u16(d, an);
	db_u16(d, ns);
	db_u16(d, ar);
}

static size_t mk_query(uint8_t *o, uint16_t id, const char *name, uint16_t qtype)
{
	struct dnsb d;

	db_hdr(&d, id, 0x0100 /* RD */, 1, 0, 0, 0);
	db_name(&d, name);
	db_u16(&d, qtype);
	db_u16(&d, 1);
	memcpy(o, d.b, d.n);
	return d.n;
}

struct rr {
	uint16_t type;
	const char *data; /* A/AAAA: address; CNAME: target name */
	const char *owner; /* NULL: the question name */
};

/* An answer to `qname`: compressed owner names point at the question. */
static size_t mk_answer(uint8_t *o, uint16_t id, uint8_t rcode, const char *qname, uint16_t qtype,
			const struct rr *rrs, int n, bool compress)
{
	struct dnsb d;

	db_hdr(&d, id, (uint16_t)(0x8180 | rcode), 1, (uint16_t)n, 0, 0);
	db_name(&d, qname);
	db_u16(&d, qtype);
	db_u16(&d, 1);
	for (int i = 0; i < n; i++) {
		if (compress && !rrs[i].owner)
			db_u16(&d, 0xc00c);
		else
			db_name(&d, rrs[i].owner ? rrs[i].owner : qname);
		db_u16(&d, rrs[i].type);
		db_u16(&d, 1);
		db_u32(&d, 30);
		if (rrs[i].type == T_A || rrs[i].type == T_AAAA) {
			struct addr x = A(rrs[i].data);

			db_u16(&d, (uint16_t)alen(x.family));
			db_bytes(&d, x.a, alen(x.family));
		} else {
			size_t at = d.n;

			db_u16(&d, 0);
			db_name(&d, rrs[i].data);
			put16(d.b + at, (uint32_t)(d.n - at - 2));
		}
	}
	memcpy(o, d.b, d.n);
	return d.n;
}

/* ==== frames ============================================================== */

static const uint8_t MAC_DST[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t MAC_SRC[6] = {0x02, 0, 0, 0, 0, 0x02};

struct pkt {
	struct addr src, dst;
	uint16_t sport, dport;
	uint8_t proto;
	uint8_t tcp_flags;    /* TCP: 0 means PSH|ACK */
	const uint8_t *dns;   /* DNS message (TCP: the length prefix is added) */
	size_t dns_len;
	bool udp_nocsum;      /* IPv4 UDP without checksum */
	bool no_tcp_prefix;   /* TCP payload without the length prefix */
};

static size_t mk_frame(uint8_t *o, const struct pkt *p)
{
	uint8_t l4[FRAME_MAX];
	size_t n4 = 0, hl = p->src.family == EP_FAMILY_V4 ? 20 : 40, off = 14;
	int csum_off;
	uint32_t s;

	memset(l4, 0, sizeof(l4));
	put16(l4, p->sport);
	put16(l4 + 2, p->dport);
	if (p->proto == P_UDP) {
		n4 = 8 + p->dns_len;
		put16(l4 + 4, (uint32_t)n4);
		memcpy(l4 + 8, p->dns, p->dns_len);
		csum_off = 6;
	} else {
		size_t pl = 0;

		put32(l4 + 4, 0x10000000);
		put32(l4 + 8, (p->tcp_flags & TCP_ACK) || !p->tcp_flags ? 0x20000000 : 0);
		l4[12] = 5 << 4;
		l4[13] = p->tcp_flags ? p->tcp_flags : (TCP_PSH | TCP_ACK);
		put16(l4 + 14, 65535);
		if (p->dns_len) {
			if (!p->no_tcp_prefix) {
				put16(l4 + 20, (uint32_t)p->dns_len);
				pl = 2;
			}
			memcpy(l4 + 20 + pl, p->dns, p->dns_len);
			pl += p->dns_len;
		}
		n4 = 20 + pl;
		csum_off = 16;
	}
	memcpy(o, MAC_DST, 6);
	memcpy(o + 6, MAC_SRC, 6);
	put16(o + 12, p->src.family == EP_FAMILY_V4 ? 0x0800 : 0x86dd);
	if (p->src.family == EP_FAMILY_V4) {
		uint8_t *ip = o + off;

		memset(ip, 0, 20);
		ip[0] = 0x45;
		put16(ip + 2, (uint32_t)(20 + n4));
		put16(ip + 4, 0x4242);
		put16(ip + 6, 0x4000);
		ip[8] = 64;
		ip[9] = p->proto;
		memcpy(ip + 12, p->src.a, 4);
		memcpy(ip + 16, p->dst.a, 4);
		put16(ip + 10, fold(sum16(0, ip, 20)));
	} else {
		uint8_t *ip = o + off;

		memset(ip, 0, 40);
		ip[0] = 0x60;
		put16(ip + 4, (uint32_t)n4);
		ip[6] = p->proto;
		ip[7] = 64;
		memcpy(ip + 8, p->src.a, 16);
		memcpy(ip + 24, p->dst.a, 16);
	}
	if (!(p->proto == P_UDP && p->udp_nocsum && p->src.family == EP_FAMILY_V4)) {
		uint16_t c;

		s = pseudo_sum(p->src.family, p->src.a, p->dst.a, p->proto, (uint32_t)n4);
		c = fold(sum16(s, l4, n4));
		if (p->proto == P_UDP && c == 0)
			c = 0xffff;
		put16(l4 + csum_off, c);
	}
	memcpy(o + off + hl, l4, n4);
	return off + hl + n4;
}

/* What an untagged frame holds, checksums verified from scratch. */
struct parsed {
	bool ok;
	int family;
	uint8_t proto;
	const uint8_t *src, *dst; /* raw addresses inside R.out */
	uint16_t sport, dport;
	size_t l4off, l4len;
	bool ip_csum_ok, l4_csum_ok, udp_nocsum;
};

static void parse_frame(const uint8_t *f, size_t len, struct parsed *p)
{
	const uint8_t *ip = f + 14, *l4;
	uint32_t s;

	memset(p, 0, sizeof(*p));
	if (len < 14 + 20)
		return;
	if (get16(f + 12) == 0x0800) {
		size_t hl = (size_t)(ip[0] & 15) * 4, tot = get16(ip + 2);

		if (hl < 20 || tot < hl || 14 + tot > len)
			return;
		p->family = EP_FAMILY_V4;
		p->proto = ip[9];
		p->src = ip + 12;
		p->dst = ip + 16;
		p->ip_csum_ok = fold(sum16(0, ip, hl)) == 0;
		p->l4off = 14 + hl;
		p->l4len = tot - hl;
	} else if (get16(f + 12) == 0x86dd) {
		size_t plen;

		if (len < 14 + 40)
			return;
		plen = get16(ip + 4);
		if (14 + 40 + plen > len)
			return;
		p->family = EP_FAMILY_V6;
		p->proto = ip[6];
		p->src = ip + 8;
		p->dst = ip + 24;
		p->ip_csum_ok = true;
		p->l4off = 14 + 40;
		p->l4len = plen;
	} else {
		return;
	}
	l4 = f + p->l4off;
	if ((p->proto == P_TCP && p->l4len >= 20) || (p->proto == P_UDP && p->l4len >= 8)) {
		p->sport = get16(l4);
		p->dport = get16(l4 + 2);
		s = pseudo_sum(p->family, p->src, p->dst, p->proto, (uint32_t)p->l4len);
		p->l4_csum_ok = fold(sum16(s, l4, p->l4len)) == 0;
		if (p->proto == P_UDP && p->family == EP_FAMILY_V4 && get16(l4 + 6) == 0) {
			p->udp_nocsum = true;
			p->l4_csum_ok = true;
		}
		p->ok = true;
	}
}

/* ==== the programs ======================================================== */

static struct tc_dns *skel;
static int in_fd, eg_fd;
static int m_up, m_pend, m_stats, m_cfg, m_redir, m_snap;
static struct ring_buffer *rb;

static struct bpf_run R; /* the last run */
static struct parsed Rp; /* R.out parsed */

static int prog_run(int fd, const uint8_t *in, size_t len)
{
	bpf_run(fd, in, len, &R);
	parse_frame(R.out, R.outlen, &Rp);
	return R.err;
}

static const char *tc_str(int v)
{
	return bpf_run_tc_str(v);
}

static bool unchanged(const uint8_t *in, size_t len)
{
	return R.outlen == len && !memcmp(R.out, in, len);
}

/* Runs and expects "not ours": UNSPEC, bytes untouched. */
static bool run_untouched(int fd, const uint8_t *in, size_t len)
{
	prog_run(fd, in, len);
	return R.err == 0 && R.verdict == TC_ACT_UNSPEC && unchanged(in, len);
}

/* ==== maps ================================================================ */

static struct ep_dns_stats stats(uint32_t idx)
{
	struct ep_dns_stats sum;

	bpf_run_percpu_sum(m_stats, &idx, &sum, sizeof(sum));
	return sum;
}

static void add_upstream(const char *a, uint32_t idx, uint32_t flags)
{
	struct ep_dns_upstream_key k;
	struct ep_dns_upstream v = {.idx = idx, .flags = flags};
	struct addr x = A(a);

	memset(&k, 0, sizeof(k));
	key_addr(k.addr, &x);
	k.family = (__u32)x.family;
	if (bpf_map_update_elem(m_up, &k, &v, BPF_ANY))
		tap_diag("add_upstream %s: %s", a, strerror(errno));
}

static const char *CACHE4 = "169.254.20.10", *CACHE6 = "fd00:ca::10";

static void set_cfg(uint32_t mode, uint32_t sample_every)
{
	struct ep_dns_config c;
	struct addr c4 = A(CACHE4), c6 = A(CACHE6);
	uint32_t zero = 0;

	memset(&c, 0, sizeof(c));
	c.mode = mode;
	c.cache_family4 = 1;
	memcpy(&c.cache_addr4, c4.a, 4);
	c.cache_family6 = 1;
	memcpy(c.cache_addr6, c6.a, 16);
	c.sample_every = sample_every;
	if (bpf_map_update_elem(m_cfg, &zero, &c, BPF_ANY))
		tap_diag("set_cfg: %s", strerror(errno));
}

static struct ep_dns_pending_key pend_key(const struct addr *client, uint16_t cport,
					  const struct addr *up, uint16_t txid, uint8_t proto)
{
	struct ep_dns_pending_key k;

	memset(&k, 0, sizeof(k));
	key_addr(k.client, client);
	key_addr(k.upstream, up);
	k.cport = htons(cport);
	k.txid = htons(txid);
	k.family = (__u8)client->family;
	k.proto = proto;
	return k;
}

static bool pending_get(const struct ep_dns_pending_key *k, struct ep_dns_pending *v)
{
	return bpf_map_lookup_elem(m_pend, k, v) == 0;
}

static uint32_t map_count(int fd, size_t keysz)
{
	uint8_t k[64], nk[64];
	uint32_t n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, nk) == 0) {
		n++;
		memcpy(k, nk, keysz);
		prev = k;
	}
	return n;
}

static void map_clear(int fd, size_t keysz)
{
	uint8_t k[64];

	while (bpf_map_get_next_key(fd, NULL, k) == 0)
		if (bpf_map_delete_elem(fd, k))
			break;
}

static struct ep_dns_redir_key redir_key(const struct addr *client, uint16_t cport, uint8_t proto)
{
	struct ep_dns_redir_key k;

	memset(&k, 0, sizeof(k));
	key_addr(k.client, client);
	k.cport = htons(cport);
	k.proto = proto;
	k.family = (__u8)client->family;
	return k;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ==== samples ============================================================= */

#define MAX_SAMPLES 64
static struct ep_dns_sample samples[MAX_SAMPLES];
static int nsamples, nsamples_total;

static int on_sample(void *ctx, void *data, size_t len)
{
	(void)ctx;
	nsamples_total++;
	if (len >= sizeof(struct ep_dns_sample) && nsamples < MAX_SAMPLES)
		memcpy(&samples[nsamples++], data, sizeof(struct ep_dns_sample));
	return 0;
}

static void samples_reset(void)
{
	ring_buffer__consume(rb);
	nsamples = 0;
}

static int samples_take(void)
{
	ring_buffer__consume(rb);
	return nsamples;
}

/* ==== the test data ======================================================= */

/* idx 0: IPv4 upstream, idx 1: IPv6 upstream, idx 2: a second IPv4 one whose
 * divergent answers are dropped. */
static const char *UP4 = "10.77.53.53", *UP6 = "2001:db8:53::53", *UPX = "10.77.53.54";
static const char *POD4 = "10.244.1.7", *POD6 = "fd00:244::7", *NODE4 = "192.0.2.1";
static const char *OTHER4 = "10.77.99.99";

static struct pkt query_pkt(const char *client, uint16_t cport, const char *up, uint8_t proto,
			    const uint8_t *dns, size_t n)
{
	struct pkt p;

	memset(&p, 0, sizeof(p));
	p.src = A(client);
	p.dst = A(up);
	p.sport = cport;
	p.dport = 53;
	p.proto = proto;
	p.dns = dns;
	p.dns_len = n;
	return p;
}

static struct pkt answer_pkt(const char *up, const char *client, uint16_t cport, uint8_t proto,
			     const uint8_t *dns, size_t n)
{
	struct pkt p;

	memset(&p, 0, sizeof(p));
	p.src = A(up);
	p.dst = A(client);
	p.sport = 53;
	p.dport = cport;
	p.proto = proto;
	p.dns = dns;
	p.dns_len = n;
	return p;
}

/* ==== cases =============================================================== */

static void test_name_hash(void)
{
	static const struct {
		const char *text;
		const char *wire_from;
	} cases[] = {
		{"www.example.com", "www.example.com"},
		{"WwW.ExAmPlE.CoM", "www.example.com"},
		{"www.example.com.", "WWW.EXAMPLE.COM"},
		{"a.b.c.d.e.f.g", "A.b.C.d.E.f.G"},
		{"xn--bcher-kva.example", "XN--BCHER-KVA.EXAMPLE"},
		{"", ""},
	};
	bool all = true;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dnsb d;
		__u64 h = EP_FNV64_OFFSET;

		d.n = 0;
		db_name(&d, cases[i].wire_from);
		for (size_t j = 0; j < d.n; j++)
			h = ep_fnv64_byte(h, d.b[j]);
		if (h != ep_dns_name_hash_text(cases[i].text)) {
			all = false;
			tap_diag("  %s: wire %016llx text %016llx", cases[i].text, (unsigned long long)h,
				 (unsigned long long)ep_dns_name_hash_text(cases[i].text));
		}
	}
	tap_ok(all, "name hash: ep_fnv64_byte over wire labels (mixed case, trailing dot, root) "
		    "equals ep_dns_name_hash_text");
	tap_ok(ep_dns_name_hash_text("www.example.com") != ep_dns_name_hash_text("www.example.org"),
	       "name hash: different names hash differently");
}

static void check_query_recorded(const char *what, int fd, const char *client, uint16_t cport,
				 const char *up, uint32_t idx, uint8_t proto, uint16_t txid)
{
	uint8_t dns[512], in[FRAME_MAX];
	struct pkt p;
	struct ep_dns_pending_key k;
	struct ep_dns_pending v;
	struct ep_dns_stats b, a;
	size_t n, dn;
	uint64_t t0 = mono_ns();
	struct addr c = A(client), u = A(up);

	dn = mk_query(dns, txid, "www.example.com", T_A);
	p = query_pkt(client, cport, up, proto, dns, dn);
	n = mk_frame(in, &p);
	b = stats(idx);
	prog_run(fd, in, n);
	a = stats(idx);
	k = pend_key(&c, cport, &u, txid, proto);
	if (!tap_ok(R.err == 0 && R.verdict == TC_ACT_UNSPEC && unchanged(in, n),
		    "%s: verdict UNSPEC, bytes unchanged", what))
		tap_diag("  err %d verdict %s", R.err, tc_str(R.verdict));
	tap_ok(pending_get(&k, &v) && v.upstream_idx == idx && v.sent_ns >= t0 &&
		       v.sent_ns <= mono_ns(),
	       "%s: pending entry with the exact key (client %s:%u, upstream %s, txid 0x%04x), "
	       "upstream_idx %u, sent_ns now",
	       what, astr(&c), cport, astr(&u), txid, idx);
	tap_ok(a.queries == b.queries + 1 && a.malformed == b.malformed, "%s: queries +1", what);
	/* the same query seen again (a retransmission, or re-routed out of a
	 * second interface) */
	prog_run(fd, in, n);
	a = stats(idx);
	tap_ok(R.verdict == TC_ACT_UNSPEC && a.queries == b.queries + 1,
	       "%s: the same query seen twice counts once", what);
}

static void test_queries(void)
{
	check_query_recorded("IPv4 UDP query at egress", eg_fd, NODE4, 40001, UP4, 0, P_UDP, 0x1111);
	check_query_recorded("IPv6 UDP query at egress", eg_fd, POD6, 40002, UP6, 1, P_UDP, 0x2222);
	check_query_recorded("IPv4 UDP pod query at egress (left the node)", eg_fd, POD4, 40003,
			     UP4, 0, P_UDP, 0x3333);
	check_query_recorded("IPv4 TCP query (first data segment) at egress", eg_fd, NODE4, 40004,
			     UP4, 0, P_TCP, 0x4444);
	check_query_recorded("IPv6 TCP query at egress", eg_fd, POD6, 40005, UP6, 1, P_TCP, 0x5555);

	/* Only a query that leaves the node counts as sent: one seen at pods
	 * ingress may still die on the node (IP TTL 1, a firewall, no route)
	 * and could never be answered. */
	{
		uint8_t dns[512], in[FRAME_MAX];
		struct addr c = A(POD4), u = A(UP4);
		struct ep_dns_pending_key k = pend_key(&c, 40008, &u, 0x8888, P_UDP);
		struct ep_dns_pending v;
		struct ep_dns_stats b = stats(0), a;
		struct pkt p;
		size_t n;
		bool ok;

		p = query_pkt(POD4, 40008, UP4, P_UDP, dns, mk_query(dns, 0x8888, "ttl1.example", T_A));
		n = mk_frame(in, &p);
		in[14 + 8] = 1; /* IP TTL 1: the node's forwarding drops it */
		put16(in + 14 + 10, 0);
		put16(in + 14 + 10, fold(sum16(0, in + 14, 20)));
		ok = run_untouched(in_fd, in, n);
		a = stats(0);
		tap_ok(ok && a.queries == b.queries && !pending_get(&k, &v),
		       "a pod's query (IP TTL 1) at pods ingress: untouched, not counted, not "
		       "pending: it cannot time out unless it leaves the node");
		p.proto = P_TCP;
		n = mk_frame(in, &p);
		ok = run_untouched(in_fd, in, n);
		a = stats(0);
		tap_ok(ok && a.queries == b.queries,
		       "a pod's TCP query at pods ingress: not counted either");
	}
	/* seen at pods ingress, then (not NATed) at uplink egress: one query */
	{
		uint8_t dns[512], in[FRAME_MAX];
		struct pkt p;
		size_t n;
		struct ep_dns_stats b = stats(0), a;

		p = query_pkt(POD4, 40006, UP4, P_UDP, dns, mk_query(dns, 0x6666, "a.example", T_A));
		n = mk_frame(in, &p);
		prog_run(in_fd, in, n);
		prog_run(eg_fd, in, n);
		a = stats(0);
		tap_ok(a.queries == b.queries + 1,
		       "a pod's query seen at pods ingress and uplink egress counts once");
	}
	/* TCP SYN and pure ACK to the upstream carry no DNS: nothing counted */
	{
		uint8_t in[FRAME_MAX];
		struct pkt p = query_pkt(NODE4, 40007, UP4, P_TCP, NULL, 0);
		struct ep_dns_stats b = stats(0), a;
		size_t n;
		bool ok;

		p.tcp_flags = TCP_SYN;
		n = mk_frame(in, &p);
		ok = run_untouched(eg_fd, in, n);
		p.tcp_flags = TCP_ACK;
		n = mk_frame(in, &p);
		ok = ok && run_untouched(eg_fd, in, n);
		a = stats(0);
		tap_ok(ok && !memcmp(&a, &b, sizeof(a)),
		       "TCP SYN / pure ACK to the upstream: UNSPEC, untouched, nothing counted");
	}
}

/* Sends a query through egress, ages its pending entry by `age_us`, then
 * answers it at `fd`. */
static void check_answer_matched(const char *what, int fd, const char *client, uint16_t cport,
				 const char *up, uint32_t idx, uint8_t proto, uint16_t txid,
				 uint8_t rcode, uint64_t age_us)
{
	uint8_t dns[512], in[FRAME_MAX];
	struct pkt p;
	struct ep_dns_pending_key k;
	struct ep_dns_pending v;
	struct ep_dns_stats b, a;
	struct addr c = A(client), u = A(up);
	struct rr rr4[] = {{T_A, "192.0.2.80", NULL}};
	struct rr rr6[] = {{T_AAAA, "2001:db8::80", NULL}};
	size_t n, dn;
	uint32_t bucket = 0, want;
	uint64_t lat;

	dn = mk_query(dns, txid, "m.example.net", T_A);
	p = query_pkt(client, cport, up, proto, dns, dn);
	n = mk_frame(in, &p);
	prog_run(eg_fd, in, n);
	k = pend_key(&c, cport, &u, txid, proto);
	if (!tap_ok(pending_get(&k, &v), "%s: query pending", what))
		return;
	v.sent_ns = mono_ns() - age_us * 1000;
	bpf_map_update_elem(m_pend, &k, &v, BPF_EXIST);

	dn = mk_answer(dns, txid, rcode, "m.example.net", T_A, c.family == 4 ? rr4 : rr6, 1, true);
	p = answer_pkt(up, client, cport, proto, dns, dn);
	n = mk_frame(in, &p);
	b = stats(idx);
	prog_run(fd, in, n);
	a = stats(idx);
	tap_ok(R.err == 0 && R.verdict == TC_ACT_UNSPEC && unchanged(in, n),
	       "%s: verdict UNSPEC, bytes unchanged", what);
	tap_ok(a.answers == b.answers + 1 && a.unmatched == b.unmatched &&
		       a.rcode[rcode] == b.rcode[rcode] + 1,
	       "%s: answers +1, rcode[%u] +1, not unmatched", what, rcode);
	for (int i = 0; i < EP_DNS_LAT_BUCKETS; i++)
		if (a.lat[i] != b.lat[i])
			bucket = (uint32_t)i;
	/* the bucket of the latency BPF measured (at least the age; the run
	 * itself adds a few microseconds), clamped into the last one */
	lat = a.lat_sum_us - b.lat_sum_us;
	want = 0;
	while (want + 1 < EP_DNS_LAT_BUCKETS && (lat >> (want + 1)))
		want++;
	if (!tap_ok(bucket == want && lat >= age_us && lat < age_us + 1000000,
		    "%s: latency %llu us (age %llu us) counted in bucket %u", what,
		    (unsigned long long)lat, (unsigned long long)age_us, bucket))
		tap_diag("  want bucket %u", want);
	tap_ok(!pending_get(&k, &v), "%s: pending entry deleted", what);
}

static void test_answers(void)
{
	check_answer_matched("IPv4 UDP answer at ingress", in_fd, NODE4, 41001, UP4, 0, P_UDP,
			     0xa001, 0, 3000);
	check_answer_matched("IPv6 UDP NXDOMAIN answer at ingress", in_fd, POD6, 41002, UP6, 1,
			     P_UDP, 0xa002, 3, 250000);
	check_answer_matched("IPv4 TCP answer (first data segment) at ingress", in_fd, NODE4, 41003,
			     UP4, 0, P_TCP, 0xa003, 2, 40);
	check_answer_matched("IPv6 TCP answer at ingress", in_fd, POD6, 41004, UP6, 1, P_TCP, 0xa004,
			     0, 0);
	/* 2^24 us is 16.8 s: 20 s lands in the last bucket */
	check_answer_matched("latency beyond the last bucket is clamped into it", in_fd, NODE4,
			     41005, UP4, 0, P_UDP, 0xa005, 0, 20ull * 1000 * 1000);
	/* an answer still pending when it leaves towards the client (it came
	 * in by an interface without the ingress program) is matched there */
	check_answer_matched("IPv4 UDP answer at egress (pods side, after de-NAT)", eg_fd, POD4,
			     41006, UP4, 0, P_UDP, 0xa006, 0, 700);
}

static void test_unmatched_and_sampling(void)
{
	uint8_t dns[512], in[FRAME_MAX];
	struct rr rr[] = {{T_A, "192.0.2.99", NULL}};
	struct ep_dns_stats b, a;
	struct pkt p;
	size_t n, dn;
	struct addr c = A(NODE4), u = A(UP4);

	samples_reset();
	dn = mk_answer(dns, 0xbeef, 0, "spoof.example", T_A, rr, 1, true);
	p = answer_pkt(UP4, NODE4, 42001, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	b = stats(0);
	prog_run(in_fd, in, n);
	a = stats(0);
	tap_ok(R.verdict == TC_ACT_UNSPEC && unchanged(in, n),
	       "unmatched answer: verdict UNSPEC, bytes unchanged");
	tap_ok(a.unmatched == b.unmatched + 1 && a.answers == b.answers,
	       "unmatched answer: unmatched +1, answers unchanged");
	samples_take();
	if (tap_ok(nsamples == 1, "unmatched answer: one sample in ep_dns_samples (%d)", nsamples)) {
		struct ep_dns_sample *s = &samples[0];

		tap_ok(s->flags == EP_DNS_SAMPLE_F_UNMATCHED && s->upstream_idx == 0 &&
			       s->family == EP_FAMILY_V4 && s->len == dn &&
			       !memcmp(s->data, dns, dn) && addr_is((uint8_t *)s->client, &c) &&
			       addr_is((uint8_t *)s->upstream, &u) && s->ts_ns > 0,
		       "unmatched answer: sample has flag UNMATCHED, idx, family, client, upstream "
		       "and the DNS message (%u bytes)",
		       s->len);
	}
	/* unmatched at egress is not counted (it was seen at ingress) */
	b = stats(0);
	prog_run(eg_fd, in, n);
	a = stats(0);
	tap_ok(R.verdict == TC_ACT_UNSPEC && a.unmatched == b.unmatched && samples_take() == 1,
	       "unmatched answer at egress: neither counted nor sampled again");
	/* unmatched TCP answers are not spoofing signs (continuations) */
	p.proto = P_TCP;
	n = mk_frame(in, &p);
	b = stats(0);
	prog_run(in_fd, in, n);
	a = stats(0);
	tap_ok(R.verdict == TC_ACT_UNSPEC && a.unmatched == b.unmatched && a.malformed == b.malformed,
	       "TCP answer without a query: not counted as unmatched (retransmission/continuation)");

	/* 1 in N sampling of matched answers */
	set_cfg(EP_DNS_MODE_UPSTREAM, 2);
	samples_reset();
	for (int i = 0; i < 4; i++) {
		uint8_t q[512];
		struct pkt pq = query_pkt(NODE4, (uint16_t)(42010 + i), UP4, P_UDP, q,
					   mk_query(q, 0x7000, "s.example", T_A));

		n = mk_frame(in, &pq);
		prog_run(eg_fd, in, n);
		dn = mk_answer(dns, 0x7000, 0, "s.example", T_A, rr, 1, true);
		p = answer_pkt(UP4, NODE4, (uint16_t)(42010 + i), P_UDP, dns, dn);
		n = mk_frame(in, &p);
		prog_run(in_fd, in, n);
	}
	samples_take();
	tap_ok(nsamples == 2 && samples[0].flags == 0 && samples[1].flags == 0,
	       "sample_every 2: 4 matched answers give 2 samples without flags (%d)", nsamples);
	set_cfg(EP_DNS_MODE_UPSTREAM, 0);
	samples_reset();
	for (int i = 0; i < 3; i++) {
		uint8_t q[512];
		struct pkt pq = query_pkt(NODE4, (uint16_t)(42020 + i), UP4, P_UDP, q,
					   mk_query(q, 0x7001, "s.example", T_A));

		n = mk_frame(in, &pq);
		prog_run(eg_fd, in, n);
		dn = mk_answer(dns, 0x7001, 0, "s.example", T_A, rr, 1, true);
		p = answer_pkt(UP4, NODE4, (uint16_t)(42020 + i), P_UDP, dns, dn);
		n = mk_frame(in, &p);
		prog_run(in_fd, in, n);
	}
	tap_ok(samples_take() == 0, "sample_every 0: matched answers are not sampled");

	/* the per-CPU token bucket bounds a flood of unmatched answers */
	{
		int before, got;

		samples_reset();
		before = nsamples_total;
		dn = mk_answer(dns, 0x0bad, 0, "flood.example", T_A, rr, 1, true);
		p = answer_pkt(UP4, NODE4, 42100, P_UDP, dns, dn);
		n = mk_frame(in, &p);
		{
			LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (__u32)n,
				    .repeat = 6000);

			bpf_prog_test_run_opts(in_fd, &o);
		}
		samples_take();
		got = nsamples_total - before;
		tap_ok(got >= 1000 && got <= 2000 + 200,
		       "6000 unmatched answers in a burst: samples capped by the token bucket (%d, "
		       "burst 2000)",
		       got);
		samples_reset();
		/* let the bucket refill (2000/s) for the tests that follow */
		sleep(1);
	}
}

/* Answers to queries the agent already counted as timeouts are late (not
 * answers, not unmatched); unmatched answers are dropped in cache mode and for
 * an upstream flagged DROP_UNMATCHED (a spoofing flood), never otherwise. */
static void test_late_and_unmatched_drop(void)
{
	uint8_t dns[512], q[512], in[FRAME_MAX];
	struct rr rr[] = {{T_A, "192.0.2.77", NULL}};
	struct addr c = A(NODE4), u = A(UP4);
	struct ep_dns_pending_key k = pend_key(&c, 43001, &u, 0x4242, P_UDP);
	struct ep_dns_pending v;
	struct ep_dns_stats b, a;
	struct pkt p;
	size_t n, dn;

	p = query_pkt(NODE4, 43001, UP4, P_UDP, q, mk_query(q, 0x4242, "late.example", T_A));
	n = mk_frame(in, &p);
	prog_run(eg_fd, in, n);
	if (tap_ok(pending_get(&k, &v), "late: query recorded")) {
		v.flags |= EP_DNS_PENDING_F_TIMED_OUT;
		bpf_map_update_elem(m_pend, &k, &v, BPF_EXIST);
	}
	dn = mk_answer(dns, 0x4242, 0, "late.example", T_A, rr, 1, true);
	p = answer_pkt(UP4, NODE4, 43001, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	b = stats(0);
	samples_reset();
	prog_run(in_fd, in, n);
	a = stats(0);
	tap_ok(R.verdict == TC_ACT_UNSPEC && unchanged(in, n) && a.late == b.late + 1 &&
		       a.answers == b.answers && a.unmatched == b.unmatched && !pending_get(&k, &v),
	       "answer to a timed-out query: passes, late +1, not an answer, not unmatched, "
	       "pending entry gone");
	samples_take();

	/* Cache mode: an answer nobody asked for is forged; drop it. */
	set_cfg(EP_DNS_MODE_CACHE, 0);
	dn = mk_answer(dns, 0x5151, 0, "forged.example", T_A, rr, 1, true);
	p = answer_pkt(UP4, NODE4, 43002, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	b = stats(0);
	samples_reset();
	prog_run(in_fd, in, n);
	a = stats(0);
	tap_ok(R.verdict == TC_ACT_SHOT && a.unmatched == b.unmatched + 1 &&
		       a.unmatched_dropped == b.unmatched_dropped + 1,
	       "cache mode: unmatched answer dropped (unmatched +1, unmatched_dropped +1)");
	samples_take();
	tap_ok(nsamples == 1 &&
		       samples[0].flags == (EP_DNS_SAMPLE_F_UNMATCHED | EP_DNS_SAMPLE_F_DROPPED),
	       "cache mode: the dropped answer is sampled with UNMATCHED|DROPPED");
	/* ...but an answer to a query still pending (the agent's probe, or one
	 * in flight at the switch) goes through. */
	p = query_pkt(NODE4, 43003, UP4, P_UDP, q, mk_query(q, 0x6161, "probe.example", T_A));
	n = mk_frame(in, &p);
	prog_run(eg_fd, in, n);
	dn = mk_answer(dns, 0x6161, 0, "probe.example", T_A, rr, 1, true);
	p = answer_pkt(UP4, NODE4, 43003, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	b = stats(0);
	prog_run(in_fd, in, n);
	a = stats(0);
	tap_ok(R.verdict == TC_ACT_UNSPEC && unchanged(in, n) && a.answers == b.answers + 1 &&
		       a.unmatched_dropped == b.unmatched_dropped,
	       "cache mode: a matched answer passes untouched");
	set_cfg(EP_DNS_MODE_UPSTREAM, 0);

	/* Upstream mode with DROP_UNMATCHED (the agent saw a flood). */
	add_upstream(UP4, 0, EP_DNS_UP_F_DROP_UNMATCHED);
	dn = mk_answer(dns, 0x7171, 0, "forged.example", T_A, rr, 1, true);
	p = answer_pkt(UP4, NODE4, 43004, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	b = stats(0);
	prog_run(in_fd, in, n);
	a = stats(0);
	tap_ok(R.verdict == TC_ACT_SHOT && a.unmatched_dropped == b.unmatched_dropped + 1,
	       "upstream mode, DROP_UNMATCHED: unmatched answer dropped");
	/* TCP is never treated as unmatched, so never dropped as such. */
	p.proto = P_TCP;
	n = mk_frame(in, &p);
	prog_run(in_fd, in, n);
	tap_ok(R.verdict == TC_ACT_UNSPEC && unchanged(in, n),
	       "upstream mode, DROP_UNMATCHED: a TCP answer without a query still passes");
	add_upstream(UP4, 0, 0);
	p.proto = P_UDP;
	n = mk_frame(in, &p);
	b = stats(0);
	prog_run(in_fd, in, n);
	a = stats(0);
	tap_ok(R.verdict == TC_ACT_UNSPEC && unchanged(in, n) &&
		       a.unmatched_dropped == b.unmatched_dropped && a.unmatched == b.unmatched + 1,
	       "upstream mode without the flag: unmatched answer counted and passed");
	samples_reset();
}

/* ==== malformed DNS: one table ============================================= */
/* Single-packet cases, as Katran's fixtures (katran/lib/testing/): each row
 * says what the frame is, builds it, names the program it goes through and
 * the counter deltas it must cause in ep_dns_stats[0] (upstream UP4). One
 * loop (test_malformed) runs each row as one check: TC_ACT_UNSPEC, the bytes
 * unchanged, and every counter of the upstream +0 except the ones named. */

static uint8_t fx_dns[512];

/* A message from the upstream to NODE4 / from NODE4 to the upstream. */
static size_t fx_answer(uint8_t *in, uint16_t cport, size_t dn)
{
	struct pkt p = answer_pkt(UP4, NODE4, cport, P_UDP, fx_dns, dn);

	return mk_frame(in, &p);
}
static size_t fx_query(uint8_t *in, uint16_t cport, size_t dn)
{
	struct pkt p = query_pkt(NODE4, cport, UP4, P_UDP, fx_dns, dn);

	return mk_frame(in, &p);
}

static size_t b_answer_short_header(uint8_t *in)
{
	memset(fx_dns, 0x81, 8);
	return fx_answer(in, 43001, 8);
}
static size_t b_answer_qr0(uint8_t *in)
{
	struct rr rr[] = {{T_A, "192.0.2.1", NULL}};
	size_t dn = mk_answer(fx_dns, 0x1234, 0, "q.example", T_A, rr, 1, true);

	fx_dns[2] &= 0x7f;
	return fx_answer(in, 43002, dn);
}
static size_t b_query_qr1(uint8_t *in)
{
	size_t dn = mk_query(fx_dns, 0x4321, "q.example", T_A);

	fx_dns[2] |= 0x80;
	return fx_query(in, 43010, dn);
}
static size_t b_query_status(uint8_t *in)
{
	size_t dn = mk_query(fx_dns, 0x4321, "q.example", T_A);

	fx_dns[2] |= 0x10; /* opcode 2 */
	return fx_query(in, 43011, dn);
}
static size_t b_query_qd0(uint8_t *in)
{
	size_t dn = mk_query(fx_dns, 0x4321, "q.example", T_A);

	put16(fx_dns + 4, 0);
	return fx_query(in, 43012, dn);
}
static size_t b_query_empty(uint8_t *in)
{
	return fx_query(in, 43020, 0);
}
static size_t b_tcp_bogus_prefix(uint8_t *in)
{
	size_t dn = mk_query(fx_dns, 0x4321, "q.example", T_A);
	struct pkt p = query_pkt(NODE4, 43021, UP4, P_TCP, fx_dns, dn);

	p.no_tcp_prefix = true; /* the first two bytes (txid 0x4321) read as the length */
	return mk_frame(in, &p);
}

static const struct dns_fixture {
	const char *desc;
	size_t (*build)(uint8_t *in);
	bool egress;	    /* through ep_tc_dns_egress (queries), else ingress (answers) */
	uint64_t malformed; /* ep_dns_stats.malformed delta; every other counter +0 */
} dns_fixtures[] = {
	{"truncated DNS header from the upstream", b_answer_short_header, false, 1},
	{"answer with QR 0 from the upstream", b_answer_qr0, false, 1},
	{"query with QR 1", b_query_qr1, true, 1},
	{"query with opcode STATUS", b_query_status, true, 1},
	{"query with qdcount 0", b_query_qd0, true, 1},
	{"empty UDP datagram to the upstream", b_query_empty, true, 1},
	/* TCP segments never count as malformed: they may be continuations */
	{"TCP segment with a bogus length prefix", b_tcp_bogus_prefix, true, 0},
};

#define F(x) {offsetof(struct ep_dns_stats, x), #x}
static const struct {
	size_t off;
	const char *name;
} stats_fields[] = {F(queries),	  F(answers),	 F(unmatched), F(malformed),
		    F(redirected),	  F(divergent),	 F(divergent_dropped),
		    F(lat_sum_us),	  F(late),	 F(unmatched_dropped)};
#undef F

static const char *stats_field_name(size_t off)
{
	for (size_t i = 0; i < sizeof(stats_fields) / sizeof(stats_fields[0]); i++)
		if (stats_fields[i].off == off)
			return stats_fields[i].name;
	return "?";
}

/* Names the counters of ep_dns_stats that differ from want; true if none. */
static bool stats_equal(const struct ep_dns_stats *got, const struct ep_dns_stats *want, char *why,
			size_t wl)
{
	const uint64_t *g = (const void *)got, *w = (const void *)want;
	size_t n = sizeof(*got) / sizeof(uint64_t), at = 0;
	bool ok = true;

	why[0] = 0;
	for (size_t i = 0; i < n; i++) {
		size_t off = i * sizeof(uint64_t);
		char name[32];

		if (g[i] == w[i])
			continue;
		ok = false;
		if (off >= offsetof(struct ep_dns_stats, rcode) &&
		    off < offsetof(struct ep_dns_stats, rcode) + sizeof(got->rcode))
			snprintf(name, sizeof(name), "rcode[%zu]",
				 (off - offsetof(struct ep_dns_stats, rcode)) / 8);
		else if (off >= offsetof(struct ep_dns_stats, lat) &&
			 off < offsetof(struct ep_dns_stats, lat) + sizeof(got->lat))
			snprintf(name, sizeof(name), "lat[%zu]",
				 (off - offsetof(struct ep_dns_stats, lat)) / 8);
		else
			snprintf(name, sizeof(name), "%s", stats_field_name(off));
		at += (size_t)snprintf(why + at, at < wl ? wl - at : 0, "%s %llu (want %llu) ", name,
				       (unsigned long long)g[i], (unsigned long long)w[i]);
	}
	return ok;
}

static void test_malformed(void)
{
	uint8_t in[FRAME_MAX];

	for (size_t i = 0; i < sizeof(dns_fixtures) / sizeof(dns_fixtures[0]); i++) {
		const struct dns_fixture *x = &dns_fixtures[i];
		struct ep_dns_stats want = stats(0), got;
		char why[512];
		size_t n;
		bool ok;

		memset(in, 0, sizeof(in));
		n = x->build(in);
		ok = run_untouched(x->egress ? eg_fd : in_fd, in, n);
		got = stats(0);
		want.malformed += x->malformed;
		ok = stats_equal(&got, &want, why, sizeof(why)) && ok;
		if (!tap_ok(ok, "%s (%s): TC_ACT_UNSPEC, untouched, malformed +%llu, nothing else counted",
			    x->desc, x->egress ? "egress" : "ingress",
			    (unsigned long long)x->malformed))
			tap_diag("  err %d verdict %s outlen %zu/%zu; %s", R.err, tc_str(R.verdict),
				 R.outlen, n, why);
	}
}

static void test_not_ours(void)
{
	uint8_t dns[512], in[FRAME_MAX];
	struct pkt p;
	struct ep_dns_stats b0 = stats(0), b1 = stats(1);
	uint32_t pend_before = map_count(m_pend, sizeof(struct ep_dns_pending_key));
	size_t n, dn = mk_query(dns, 0x5151, "n.example", T_A);

	p = query_pkt(NODE4, 44001, OTHER4, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	tap_ok(run_untouched(eg_fd, in, n) && run_untouched(in_fd, in, n),
	       "DNS query to a non-upstream: untouched by both programs");
	p = query_pkt(NODE4, 44002, UP4, P_UDP, dns, dn);
	p.dport = 5353;
	n = mk_frame(in, &p);
	tap_ok(run_untouched(eg_fd, in, n) && run_untouched(in_fd, in, n),
	       "UDP to the upstream's port 5353: untouched");
	p = query_pkt(NODE4, 44003, UP4, P_TCP, dns, dn);
	p.dport = 80;
	n = mk_frame(in, &p);
	tap_ok(run_untouched(eg_fd, in, n) && run_untouched(in_fd, in, n),
	       "TCP to the upstream's port 80: untouched");
	p = answer_pkt(OTHER4, NODE4, 44004, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	tap_ok(run_untouched(in_fd, in, n), "answer from a non-upstream: untouched");
	p = query_pkt(NODE4, 44005, UP4, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	{
		uint8_t f[FRAME_MAX];

		/* VLAN tag in the frame */
		memcpy(f, in, 12);
		put16(f + 12, 0x8100);
		put16(f + 14, 100);
		memcpy(f + 16, in + 12, n - 12);
		tap_ok(run_untouched(eg_fd, f, n + 4), "802.1Q-tagged query: untouched");

		/* truncated: the IP header claims more than the frame holds */
		p = query_pkt(NODE4, 44007, UP4, P_UDP, dns, dn);
		n = mk_frame(in, &p);
		tap_ok(run_untouched(eg_fd, in, n - 5), "frame shorter than its IPv4 total length: untouched");
		/* ARP */
		memset(f, 0, 60);
		memcpy(f, MAC_DST, 6);
		put16(f + 12, 0x0806);
		tap_ok(run_untouched(eg_fd, f, 60) && run_untouched(in_fd, f, 60), "ARP: untouched");
		/* ICMP echo to the upstream */
		memcpy(f, in, 34);
		f[14 + 9] = 1;
		put16(f + 24, 0);
		put16(f + 24, fold(sum16(0, f + 14, 20)));
		memset(f + 34, 0, 16);
		f[34] = 8;
		tap_ok(run_untouched(eg_fd, f, 50), "ICMP echo to the upstream: untouched");
	}
	tap_ok(stats(0).queries == b0.queries &&
		       stats(0).malformed == b0.malformed && stats(1).queries == b1.queries &&
		       stats(1).malformed == b1.malformed &&
		       map_count(m_pend, sizeof(struct ep_dns_pending_key)) == pend_before,
	       "none of them counted or recorded");
}

/* Checks a redirected query: destination = cache, the rest as before,
 * checksums valid from scratch. */
static bool check_rewritten(const char *what, const uint8_t *in, size_t n, const struct pkt *p,
			    bool dst_side, const struct addr *to)
{
	const struct addr *keep = dst_side ? &p->src : &p->dst;
	bool ok = R.err == 0 && R.verdict == TC_ACT_OK && R.outlen == n && Rp.ok &&
		  addr_is(dst_side ? Rp.dst : Rp.src, to) &&
		  addr_is(dst_side ? Rp.src : Rp.dst, keep) && Rp.sport == p->sport &&
		  Rp.dport == p->dport && Rp.ip_csum_ok && Rp.l4_csum_ok;

	/* the payload is untouched */
	if (ok && Rp.l4off + (p->proto == P_UDP ? 8 : 20) <= n) {
		size_t h = Rp.l4off + (p->proto == P_UDP ? 8 : 20);

		ok = !memcmp(R.out + h, in + h, n - h);
	}
	if (!tap_ok(ok, "%s: TC_ACT_OK, %s now %s, IP%s and %s checksums valid", what,
		    dst_side ? "destination" : "source", astr(to),
		    p->src.family == EP_FAMILY_V4 ? "v4 header" : "v6", p->proto == P_UDP ? "UDP" : "TCP"))
		tap_diag("  err %d verdict %s len %zu/%zu parsed %d ipcsum %d l4csum %d", R.err,
			 tc_str(R.verdict), R.outlen, n, Rp.ok, Rp.ip_csum_ok, Rp.l4_csum_ok);
	return ok;
}

static void test_redirect_udp(int family)
{
	const char *pod = family == 4 ? POD4 : POD6, *up = family == 4 ? UP4 : UP6;
	struct addr cache = A(family == 4 ? CACHE4 : CACHE6), u = A(up), c = A(pod);
	uint32_t idx = family == 4 ? 0 : 1;
	uint8_t dns[512], in[FRAME_MAX];
	struct ep_dns_redir_key rk = redir_key(&c, 45001, P_UDP);
	struct ep_dns_redir rv;
	struct ep_dns_stats b, a;
	struct pkt p;
	size_t n, dn;
	char what[96];
	struct rr rr[] = {{T_A, "192.0.2.55", NULL}};
	uint32_t pend_before;

	snprintf(what, sizeof(what), "cache mode, IPv%d UDP pod query at ingress", family);
	set_cfg(EP_DNS_MODE_CACHE, 0);
	dn = mk_query(dns, 0xc001, "r.example", T_A);
	p = query_pkt(pod, 45001, up, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	b = stats(idx);
	pend_before = map_count(m_pend, sizeof(struct ep_dns_pending_key));
	prog_run(in_fd, in, n);
	a = stats(idx);
	check_rewritten(what, in, n, &p, true, &cache);
	tap_ok(bpf_map_lookup_elem(m_redir, &rk, &rv) == 0 && addr_is((uint8_t *)rv.upstream, &u),
	       "%s: ep_dns_redir entry client %s:45001/udp -> upstream %s", what, astr(&c), astr(&u));
	tap_ok(a.redirected == b.redirected + 1 && a.queries == b.queries &&
		       map_count(m_pend, sizeof(struct ep_dns_pending_key)) == pend_before,
	       "%s: redirected +1, not recorded as pending (the upstream never sees it)", what);

	/* the cache answers, pods egress translates */
	snprintf(what, sizeof(what), "cache mode, IPv%d UDP reply of the cache at egress", family);
	dn = mk_answer(dns, 0xc001, 0, "r.example", T_A, rr, 1, true);
	p = answer_pkt(family == 4 ? CACHE4 : CACHE6, pod, 45001, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	b = stats(idx);
	prog_run(eg_fd, in, n);
	a = stats(idx);
	check_rewritten(what, in, n, &p, false, &u);
	tap_ok(a.answers == b.answers && a.unmatched == b.unmatched,
	       "%s: not counted as an upstream answer", what);
	/* a reply of the cache to a client that was never redirected */
	p.dport = 45999;
	n = mk_frame(in, &p);
	tap_ok(run_untouched(eg_fd, in, n),
	       "cache mode, IPv%d reply of the cache to a client it did not redirect: untouched", family);
	if (family == 4) {
		/* IPv4 UDP without checksum stays without */
		uint8_t q[512];
		struct pkt pq = query_pkt(pod, 45002, up, P_UDP, q, mk_query(q, 0xc002, "z.example", T_A));

		pq.udp_nocsum = true;
		n = mk_frame(in, &pq);
		prog_run(in_fd, in, n);
		tap_ok(R.verdict == TC_ACT_OK && Rp.ok && addr_is(Rp.dst, &cache) && Rp.ip_csum_ok &&
			       Rp.udp_nocsum,
		       "cache mode, IPv4 UDP query without checksum: redirected, checksum stays 0");
	}
	/* upstream mode: no redirect; the query counts once it leaves (egress) */
	set_cfg(EP_DNS_MODE_UPSTREAM, 0);
	dn = mk_query(dns, 0xc003, "r.example", T_A);
	p = query_pkt(pod, 45003, up, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	b = stats(idx);
	tap_ok(run_untouched(in_fd, in, n), "upstream mode, IPv%d UDP pod query: untouched", family);
	a = stats(idx);
	rk = redir_key(&c, 45003, P_UDP);
	tap_ok(a.queries == b.queries && a.redirected == b.redirected &&
		       bpf_map_lookup_elem(m_redir, &rk, &rv) != 0,
	       "upstream mode, IPv%d: not recorded at ingress, no redirect entry", family);
	prog_run(eg_fd, in, n);
	a = stats(idx);
	tap_ok(R.verdict == TC_ACT_UNSPEC && a.queries == b.queries + 1,
	       "upstream mode, IPv%d: recorded as a query when it leaves (egress)", family);
}

static void test_redirect_tcp(int family)
{
	const char *pod = family == 4 ? POD4 : POD6, *up = family == 4 ? UP4 : UP6;
	const char *cache_s = family == 4 ? CACHE4 : CACHE6;
	struct addr cache = A(cache_s), u = A(up), c = A(pod);
	uint32_t idx = family == 4 ? 0 : 1;
	uint8_t dns[512], in[FRAME_MAX];
	struct ep_dns_redir_key rk = redir_key(&c, 46001, P_TCP);
	struct ep_dns_redir rv;
	struct ep_dns_stats b, a;
	struct pkt p;
	size_t n, dn;
	char what[96];
	struct rr rr[] = {{T_A, "192.0.2.56", NULL}};

	set_cfg(EP_DNS_MODE_CACHE, 0);
	snprintf(what, sizeof(what), "cache mode, IPv%d TCP SYN to the upstream", family);
	p = query_pkt(pod, 46001, up, P_TCP, NULL, 0);
	p.tcp_flags = TCP_SYN;
	n = mk_frame(in, &p);
	prog_run(in_fd, in, n);
	check_rewritten(what, in, n, &p, true, &cache);
	tap_ok(bpf_map_lookup_elem(m_redir, &rk, &rv) == 0 && addr_is((uint8_t *)rv.upstream, &u),
	       "%s: redirect entry created", what);

	snprintf(what, sizeof(what), "cache mode, IPv%d TCP query segment", family);
	dn = mk_query(dns, 0xd001, "t.example", T_A);
	p = query_pkt(pod, 46001, up, P_TCP, dns, dn);
	n = mk_frame(in, &p);
	b = stats(idx);
	prog_run(in_fd, in, n);
	a = stats(idx);
	check_rewritten(what, in, n, &p, true, &cache);
	tap_ok(a.redirected == b.redirected + 1 && a.queries == b.queries, "%s: redirected +1", what);

	snprintf(what, sizeof(what), "cache mode, IPv%d TCP SYN-ACK of the cache", family);
	p = answer_pkt(cache_s, pod, 46001, P_TCP, NULL, 0);
	p.tcp_flags = TCP_SYN | TCP_ACK;
	n = mk_frame(in, &p);
	prog_run(eg_fd, in, n);
	check_rewritten(what, in, n, &p, false, &u);
	snprintf(what, sizeof(what), "cache mode, IPv%d TCP answer segment of the cache", family);
	dn = mk_answer(dns, 0xd001, 0, "t.example", T_A, rr, 1, true);
	p = answer_pkt(cache_s, pod, 46001, P_TCP, dns, dn);
	n = mk_frame(in, &p);
	prog_run(eg_fd, in, n);
	check_rewritten(what, in, n, &p, false, &u);

	/* failback: the redirected connection stays on the cache ... */
	set_cfg(EP_DNS_MODE_UPSTREAM, 0);
	snprintf(what, sizeof(what), "after failback, IPv%d TCP FIN of the redirected connection",
		 family);
	p = query_pkt(pod, 46001, up, P_TCP, NULL, 0);
	p.tcp_flags = TCP_FIN | TCP_ACK;
	n = mk_frame(in, &p);
	prog_run(in_fd, in, n);
	check_rewritten(what, in, n, &p, true, &cache);
	/* ... a new connection goes to the upstream */
	p.tcp_flags = TCP_SYN;
	n = mk_frame(in, &p);
	tap_ok(run_untouched(in_fd, in, n) && bpf_map_lookup_elem(m_redir, &rk, &rv) != 0,
	       "after failback, IPv%d TCP SYN reusing the port: untouched, old redirect entry removed",
	       family);
	/* a connection opened before the failover stays with the upstream */
	set_cfg(EP_DNS_MODE_CACHE, 0);
	dn = mk_query(dns, 0xd002, "t.example", T_A);
	p = query_pkt(pod, 46002, up, P_TCP, dns, dn);
	n = mk_frame(in, &p);
	tap_ok(run_untouched(in_fd, in, n),
	       "cache mode, IPv%d TCP data of a connection opened before the failover: untouched",
	       family);
	set_cfg(EP_DNS_MODE_UPSTREAM, 0);
}

/* Answer at ingress for qname with the given RRs; returns the verdict. */
static int divergence_run(const char *up, uint16_t txid, const char *qname, const struct rr *rrs,
			  int nrr, bool compress, struct ep_dns_stats *delta)
{
	uint8_t dns[1500], in[FRAME_MAX];
	struct pkt p;
	uint32_t idx = strcmp(up, UPX) == 0 ? 2 : (strchr(up, ':') ? 1 : 0);
	struct ep_dns_stats b = stats(idx), a;
	size_t n, dn;
	uint16_t qt = strchr(up, ':') ? T_AAAA : T_A;

	/* The hijack signal is about answers to real queries: ask first. */
	{
		uint8_t q[512];
		struct pkt pq = query_pkt(strchr(up, ':') ? POD6 : NODE4, 47000, up, P_UDP, q,
					   mk_query(q, txid, qname, qt));

		n = mk_frame(in, &pq);
		prog_run(eg_fd, in, n);
	}
	dn = mk_answer(dns, txid, 0, qname, qt, rrs, nrr, compress);
	p = answer_pkt(up, strchr(up, ':') ? POD6 : NODE4, 47000, P_UDP, dns, dn);
	n = mk_frame(in, &p);
	prog_run(in_fd, in, n);
	a = stats(idx);
	memset(delta, 0, sizeof(*delta));
	delta->divergent = a.divergent - b.divergent;
	delta->divergent_dropped = a.divergent_dropped - b.divergent_dropped;
	delta->unmatched = a.unmatched - b.unmatched;
	if (R.verdict != TC_ACT_SHOT && !unchanged(in, n))
		return 99;
	return R.verdict;
}

static void snap_put(const char *name, const char *const *a4, int n4, const char *const *a6,
		     int n6)
{
	struct ep_dns_snap_entry e;
	__u64 h = ep_dns_name_hash_text(name);

	memset(&e, 0, sizeof(e));
	e.n4 = (uint32_t)n4;
	for (int i = 0; i < n4 && i < EP_DNS_SNAP_ADDRS; i++) {
		struct addr x = A(a4[i]);

		memcpy(&e.a4[i], x.a, 4);
	}
	e.n6 = (uint32_t)n6;
	for (int i = 0; i < n6 && i < 4; i++) {
		struct addr x = A(a6[i]);

		memcpy(e.a6[i], x.a, 16);
	}
	if (bpf_map_update_elem(m_snap, &h, &e, BPF_ANY))
		tap_diag("snap_put %s: %s", name, strerror(errno));
}

static void test_divergence(void)
{
	static const char *const good4[] = {"192.0.2.10", "192.0.2.11"};
	static const char *const good6[] = {"2001:db8:10::10"};
	struct ep_dns_stats d;
	int v, nsamp;

	snap_put("www.example.com", good4, 2, good6, 1);
	samples_reset();

	{
		struct rr rr[] = {{T_A, "203.0.113.66", NULL}};

		v = divergence_run(UP4, 0x9001, "www.example.com", rr, 1, true, &d);
		nsamp = samples_take();
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 1 && d.divergent_dropped == 0,
		       "divergence: A 203.0.113.66 for www.example.com (snapshot 192.0.2.10/11): "
		       "divergent +1, passed (UNSPEC, untouched)");
		tap_ok(nsamp == 1 && samples[0].flags == EP_DNS_SAMPLE_F_DIVERGENT,
		       "divergence: sampled with flag DIVERGENT (%d samples, flags 0x%x)", nsamp,
		       nsamp ? samples[0].flags : 0);
	}
	{
		/* The same answer matching no query: a spoofing sign, not a
		 * hijack sign (divergent counts real answers only), sampled
		 * with both flags. */
		uint8_t dns[512], in[FRAME_MAX];
		struct rr rr[] = {{T_A, "203.0.113.66", NULL}};
		struct ep_dns_stats b = stats(0), a;
		size_t dn = mk_answer(dns, 0x9f01, 0, "www.example.com", T_A, rr, 1, true);
		struct pkt p = answer_pkt(UP4, NODE4, 47001, P_UDP, dns, dn);
		size_t n = mk_frame(in, &p);

		samples_reset();
		prog_run(in_fd, in, n);
		a = stats(0);
		nsamp = samples_take();
		tap_ok(R.verdict == TC_ACT_UNSPEC && a.divergent == b.divergent &&
			       a.unmatched == b.unmatched + 1 && nsamp == 1 &&
			       samples[0].flags == (EP_DNS_SAMPLE_F_DIVERGENT | EP_DNS_SAMPLE_F_UNMATCHED),
		       "divergence: an unmatched divergent answer counts as unmatched, not divergent, "
		       "sampled with DIVERGENT|UNMATCHED");
	}
	{
		/* matched answer: divergent too */
		uint8_t q[512], in[FRAME_MAX];
		struct pkt pq = query_pkt(NODE4, 47000, UP4, P_UDP, q,
					   mk_query(q, 0x9002, "www.example.com", T_A));
		struct rr rr[] = {{T_A, "203.0.113.67", NULL}, {T_A, "203.0.113.68", NULL}};
		size_t n = mk_frame(in, &pq);

		prog_run(eg_fd, in, n);
		samples_reset();
		v = divergence_run(UP4, 0x9002, "www.example.com", rr, 2, true, &d);
		nsamp = samples_take();
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 1 && d.unmatched == 0 && nsamp == 1 &&
			       samples[0].flags == EP_DNS_SAMPLE_F_DIVERGENT,
		       "divergence: matched answer with two foreign A records: divergent +1, sampled "
		       "with DIVERGENT");
	}
	{
		/* A forgery that guessed the id of a pending query, on an upstream
		 * whose divergent answers are dropped: dropped, and the query stays
		 * pending so the real answer racing it still matches. */
		uint8_t q[512], in[FRAME_MAX];
		struct addr cl = A(NODE4), ux = A(UPX);
		struct pkt pq = query_pkt(NODE4, 47000, UPX, P_UDP, q,
					   mk_query(q, 0x9102, "www.example.com", T_A));
		struct rr bad[] = {{T_A, "203.0.113.67", NULL}};
		struct rr good[] = {{T_A, "192.0.2.10", NULL}};
		struct ep_dns_pending_key k = pend_key(&cl, 47000, &ux, 0x9102, P_UDP);
		struct ep_dns_pending pv;
		struct ep_dns_stats b2, a2;
		size_t n = mk_frame(in, &pq);

		prog_run(eg_fd, in, n);
		b2 = stats(2);
		v = divergence_run(UPX, 0x9102, "www.example.com", bad, 1, true, &d);
		a2 = stats(2);
		tap_ok(v == TC_ACT_SHOT && d.divergent_dropped == 1 && a2.answers == b2.answers &&
			       pending_get(&k, &pv),
		       "divergence: a matched forgery on a DROP_DIVERGENT upstream is dropped, not "
		       "counted as the answer, and the query stays pending");
		v = divergence_run(UPX, 0x9102, "www.example.com", good, 1, true, &d);
		a2 = stats(2);
		tap_ok(v == TC_ACT_UNSPEC && a2.answers == b2.answers + 1 && !pending_get(&k, &pv),
		       "divergence: ...and the real answer after it matches and passes");
		samples_reset();
	}
	{
		struct rr rr[] = {{T_A, "203.0.113.66", NULL}, {T_A, "192.0.2.11", NULL}};

		v = divergence_run(UP4, 0x9003, "www.example.com", rr, 2, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0,
		       "divergence: an answer sharing one address (192.0.2.11) is not divergent");
		v = divergence_run(UP4, 0x9004, "www.example.com", rr, 2, false, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0,
		       "divergence: same with uncompressed owner names: not divergent");
	}
	{
		struct rr rr[] = {{T_A, "203.0.113.66", NULL}, {T_A, "203.0.113.70", NULL}};

		v = divergence_run(UP4, 0x9005, "www.example.com", rr, 2, false, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 1,
		       "divergence: foreign addresses behind uncompressed owner names: divergent");
	}
	{
		struct rr rr[] = {{T_CNAME, "edge.cdn.example.net", NULL}};

		v = divergence_run(UP4, 0x9006, "www.example.com", rr, 1, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0,
		       "divergence: CNAME-only answer is not divergent");
	}
	{
		struct rr rr[] = {{T_CNAME, "edge.cdn.example.net", NULL},
				  {T_A, "192.0.2.10", "edge.cdn.example.net"}};

		v = divergence_run(UP4, 0x9007, "www.example.com", rr, 2, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0,
		       "divergence: CNAME + A of the snapshot behind an uncompressed target name: "
		       "not divergent");
	}
	{
		struct rr rr[] = {{T_CNAME, "edge.cdn.example.net", NULL},
				  {T_A, "198.51.100.1", "edge.cdn.example.net"}};

		v = divergence_run(UP4, 0x9008, "WWW.Example.COM", rr, 2, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 1,
		       "divergence: mixed-case question WWW.Example.COM finds the snapshot entry of "
		       "www.example.com (same hash in BPF and user space); CNAME + foreign A: "
		       "divergent");
	}
	{
		struct rr rr[] = {{T_A, "203.0.113.66", NULL}};

		v = divergence_run(UP4, 0x9009, "www.example.org", rr, 1, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0,
		       "divergence: a name outside the snapshot is never divergent");
	}
	{
		/* NODATA: NOERROR, no answers */
		v = divergence_run(UP4, 0x900a, "www.example.com", NULL, 0, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0, "divergence: NODATA is not divergent");
	}
	{
		struct rr rr6a[] = {{T_AAAA, "2001:db8:66::1", NULL}};
		struct rr rr6b[] = {{T_AAAA, "2001:db8:66::1", NULL}, {T_AAAA, "2001:db8:10::10", NULL}};

		v = divergence_run(UP6, 0x900b, "www.example.com", rr6a, 1, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 1,
		       "divergence: IPv6 upstream, foreign AAAA: divergent");
		v = divergence_run(UP6, 0x900c, "www.example.com", rr6b, 2, false, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0,
		       "divergence: IPv6 upstream, AAAA set sharing one address: not divergent");
	}
	{
		/* an RR set longer than EP_DNS_MAX_RRS: decided on the first 8 */
		struct rr rr[10];

		for (int i = 0; i < 10; i++) {
			rr[i].type = T_A;
			rr[i].owner = NULL;
			rr[i].data = i == 9 ? "192.0.2.10" : "203.0.113.80";
		}
		v = divergence_run(UP4, 0x900d, "www.example.com", rr, 10, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 1,
		       "divergence: 10 A records, the known one 10th: only the first 8 are walked");
		rr[3].data = "192.0.2.11";
		v = divergence_run(UP4, 0x900e, "www.example.com", rr, 10, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0,
		       "divergence: 10 A records, a known one 4th: not divergent");
	}
	{
		/* the snapshot shows fewer IPv6 addresses than it has: cannot tell */
		static const char *const many6[] = {"2001:db8:a::1", "2001:db8:a::2", "2001:db8:a::3",
						    "2001:db8:a::4", "2001:db8:a::5"};
		struct rr rr6[] = {{T_AAAA, "2001:db8:66::1", NULL}};

		snap_put("big.example.com", NULL, 0, many6, 5);
		v = divergence_run(UP6, 0x900f, "big.example.com", rr6, 1, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0,
		       "divergence: snapshot with n6 = 5 (only 4 stored): an unknown AAAA is not "
		       "called divergent");
	}
	{
		/* drop: upstream flagged EP_DNS_UP_F_DROP_DIVERGENT */
		struct rr bad[] = {{T_A, "203.0.113.66", NULL}};
		struct rr ok[] = {{T_A, "192.0.2.10", NULL}};

		samples_reset();
		v = divergence_run(UPX, 0x9010, "www.example.com", bad, 1, true, &d);
		nsamp = samples_take();
		tap_ok(v == TC_ACT_SHOT && d.divergent == 1 && d.divergent_dropped == 1,
		       "divergence: upstream with DROP_DIVERGENT: TC_ACT_SHOT, divergent +1, "
		       "divergent_dropped +1 (verdict %s)",
		       tc_str(v));
		tap_ok(nsamp == 1 && (samples[0].flags & EP_DNS_SAMPLE_F_DROPPED) &&
			       (samples[0].flags & EP_DNS_SAMPLE_F_DIVERGENT) && samples[0].upstream_idx == 2,
		       "divergence: the dropped answer is sampled with DIVERGENT|DROPPED");
		v = divergence_run(UPX, 0x9011, "www.example.com", ok, 1, true, &d);
		tap_ok(v == TC_ACT_UNSPEC && d.divergent == 0 && d.divergent_dropped == 0,
		       "divergence: the same upstream's consistent answer passes");
		/* NXDOMAIN with a foreign A is not checked (NOERROR only) */
		{
			uint8_t dns[512], in[FRAME_MAX];
			struct pkt p;
			size_t n, dn = mk_answer(dns, 0x9012, 3, "www.example.com", T_A, bad, 1, true);
			struct ep_dns_stats b = stats(2);

			p = answer_pkt(UPX, NODE4, 47001, P_UDP, dns, dn);
			n = mk_frame(in, &p);
			tap_ok(run_untouched(in_fd, in, n) && stats(2).divergent == b.divergent,
			       "divergence: NXDOMAIN answers are not checked");
		}
	}
}

/* ==== fragments, IPv4 options, IPv6 extension headers: one table ========== */
/* DNS to or from an upstream is parsed behind IPv4 options and IPv6
 * extension headers as if they were not there; a first fragment is parsed as
 * far as it goes; a later fragment carries no DNS header and is counted. The
 * fragment rule: wherever the node drops forged answers (DROP_DIVERGENT or
 * DROP_UNMATCHED on the upstream, or failed over) a fragmented answer is
 * dropped, since its records cannot be checked (or may be replaced by a
 * forged later fragment in reassembly). Each row: the frame, the program,
 * the verdict, and the counter deltas (every other counter +0). */

static struct ep_dns_hdr_stats hstats(uint32_t idx)
{
	struct ep_dns_hdr_stats sum;
	int fd = bpf_map__fd(skel->maps.ep_dns_hstats);

	bpf_run_percpu_sum(fd, &idx, &sum, sizeof(sum));
	return sum;
}

static void v4_csum(uint8_t *f)
{
	size_t hl = (size_t)(f[14] & 15) * 4;

	put16(f + 24, 0);
	put16(f + 24, fold(sum16(0, f + 14, hl)));
}

/* The IPv4 frame in[0..n) with optlen bytes of options (NOPs, then EOL). */
static size_t v4_options(uint8_t *o, const uint8_t *in, size_t n, size_t optlen)
{
	memcpy(o, in, 34);
	memset(o + 34, 1, optlen);
	o[34 + optlen - 1] = 0;
	memcpy(o + 34 + optlen, in + 34, n - 34);
	o[14] = (uint8_t)(0x40 | (20 + optlen) / 4);
	put16(o + 16, (uint32_t)(get16(in + 16) + optlen));
	v4_csum(o);
	return n + optlen;
}

/* A fragment of the IPv4 frame in[0..n): the first `bytes` of its payload
 * (MF set), or the rest (offset bytes/8, the last). */
static size_t v4_frag(uint8_t *o, const uint8_t *in, size_t n, size_t bytes, bool first)
{
	size_t pl = n - 34;

	memcpy(o, in, 34);
	if (first) {
		memcpy(o + 34, in + 34, bytes);
		put16(o + 16, (uint32_t)(20 + bytes));
		put16(o + 20, 0x2000);
		v4_csum(o);
		return 34 + bytes;
	}
	memcpy(o + 34, in + 34 + bytes, pl - bytes);
	put16(o + 16, (uint32_t)(20 + pl - bytes));
	put16(o + 20, (uint32_t)(bytes / 8));
	v4_csum(o);
	return 34 + pl - bytes;
}

/* The IPv6 frame in[0..n) with cnt 8-byte extension headers of the given
 * types (options headers hold a PadN; a fragment header says `fo`) before the
 * upper layer, whose bytes [from, from + len) follow. */
static size_t v6_ext(uint8_t *o, const uint8_t *in, size_t n, const uint8_t *types, int cnt,
		     uint16_t fo, size_t from, size_t len)
{
	uint8_t up = in[20];
	size_t off = 54;

	memcpy(o, in, 54);
	if (!len)
		len = n - 54 - from;
	o[20] = types[0];
	for (int i = 0; i < cnt; i++, off += 8) {
		memset(o + off, 0, 8);
		o[off] = i + 1 < cnt ? types[i + 1] : up;
		if (types[i] == 44) {
			put16(o + off + 2, fo);
			put32(o + off + 4, 0x12345678);
		} else {
			o[off + 2] = 1; /* PadN */
			o[off + 3] = 4;
		}
	}
	memcpy(o + off, in + 54 + from, len);
	put16(o + 18, (uint32_t)(off - 54 + len));
	return off + len;
}

enum { HX_V4OPT, HX_V4OPT40, HX_V4FIRST, HX_V4LATER, HX_V6HBH, HX_V6HBHDST, HX_V6FIRST,
       HX_V6LATER, HX_V6LONG, HX_V4OPTSHORT, HX_V4FIRST16 };

/* The frame of a row: the message of m (query or answer) under transform t. */
static size_t hx_frame(uint8_t *o, int t, const struct pkt *m)
{
	uint8_t in[FRAME_MAX];
	size_t n = mk_frame(in, m);
	static const uint8_t hbh[] = {0}, hbhdst[] = {0, 60}, frag[] = {44};
	static const uint8_t longc[] = {60, 60, 60, 60, 60, 60, 60, 60, 60};

	switch (t) {
	case HX_V4OPT:
		return v4_options(o, in, n, 8);
	case HX_V4OPT40:
		return v4_options(o, in, n, 40);
	case HX_V4OPTSHORT:
		n = v4_options(o, in, n, 8);
		put16(o + 16, 24); /* total length shorter than the header */
		v4_csum(o);
		return n;
	case HX_V4FIRST:
		return v4_frag(o, in, n, 32, true);
	case HX_V4LATER:
		return v4_frag(o, in, n, 32, false);
	case HX_V4FIRST16: /* UDP header + 8 bytes: no whole DNS header */
		return v4_frag(o, in, n, 16, true);
	case HX_V6HBH:
		return v6_ext(o, in, n, hbh, 1, 0, 0, 0);
	case HX_V6HBHDST:
		return v6_ext(o, in, n, hbhdst, 2, 0, 0, 0);
	case HX_V6FIRST:
		return v6_ext(o, in, n, frag, 1, 1, 0, 32);
	case HX_V6LATER:
		return v6_ext(o, in, n, frag, 1, 32, 32, 0);
	case HX_V6LONG:
		return v6_ext(o, in, n, longc, 9, 0, 0, 0);
	}
	return 0;
}

struct hx_row {
	const char *desc;
	int t;
	const char *up;	 /* the upstream of the row */
	uint32_t idx;
	bool query;	 /* a query to the upstream, else an answer from it */
	bool pend;	 /* answers: a query pending for it (sent through egress first) */
	bool divergent;	 /* answers: addresses foreign to the snapshot of www.example.com */
	bool cache_mode;
	bool egress;	 /* through ep_tc_dns_egress, else ingress */
	int verdict;
	/* deltas */
	uint64_t queries, answers, divergent_n, divergent_dropped;
	uint64_t frag_first, frag_later, frag_dropped, ip_options, ipv6_exthdr, unparsed,
		unparsed_dropped;
	int pending_after; /* -1 don't care, 0 gone, 1 there, 2 there and flagged FRAG_DROPPED */
};

static const struct hx_row hx_rows[] = {
	{"IPv4 options (8 bytes), query: recorded as if without", HX_V4OPT, "10.77.53.53", 0, true,
	 false, false, false, true, TC_ACT_UNSPEC, .queries = 1, .ip_options = 1, .pending_after = 1},
	{"IPv4 options (40 bytes, IHL 15), query: recorded", HX_V4OPT40, "10.77.53.53", 0, true,
	 false, false, false, true, TC_ACT_UNSPEC, .queries = 1, .ip_options = 1, .pending_after = 1},
	{"IPv4 options, answer: matched as if without", HX_V4OPT, "10.77.53.53", 0, false, true,
	 false, false, false, TC_ACT_UNSPEC, .answers = 1, .ip_options = 1, .pending_after = 0},
	{"IPv4 options, matched divergent answer (DROP_DIVERGENT upstream): checked and dropped",
	 HX_V4OPT, "10.77.53.54", 2, false, true, true, false, false, TC_ACT_SHOT, .divergent_n = 1,
	 .divergent_dropped = 1, .ip_options = 1, .pending_after = 1},
	{"IPv4 options, divergent answer (no drop flag): counted divergent", HX_V4OPT, "10.77.53.53",
	 0, false, true, true, false, false, TC_ACT_UNSPEC, .answers = 1, .divergent_n = 1,
	 .ip_options = 1, .pending_after = 0},
	{"IPv4 total length shorter than its options: not looked at", HX_V4OPTSHORT, "10.77.53.53", 0,
	 true, false, false, false, true, TC_ACT_UNSPEC, .pending_after = 0},
	{"IPv6 hop-by-hop header, query: recorded", HX_V6HBH, "2001:db8:53::53", 1, true, false,
	 false, false, true, TC_ACT_UNSPEC, .queries = 1, .ipv6_exthdr = 1, .pending_after = 1},
	{"IPv6 hop-by-hop + destination options, answer: matched", HX_V6HBHDST, "2001:db8:53::53", 1,
	 false, true, false, false, false, TC_ACT_UNSPEC, .answers = 1, .ipv6_exthdr = 1,
	 .pending_after = 0},
	{"IPv6 hop-by-hop + destination options, divergent answer: counted divergent", HX_V6HBHDST,
	 "2001:db8:53::53", 1, false, true, true, false, false, TC_ACT_UNSPEC, .answers = 1,
	 .divergent_n = 1, .ipv6_exthdr = 1, .pending_after = 0},
	{"IPv6 9 destination options headers from the upstream: unparsed, passed (upstream mode)",
	 HX_V6LONG, "2001:db8:53::53", 1, false, false, false, false, false, TC_ACT_UNSPEC,
	 .unparsed = 1, .pending_after = -1},
	{"IPv6 9 destination options headers from the upstream, failed over: dropped", HX_V6LONG,
	 "2001:db8:53::53", 1, false, false, false, true, false, TC_ACT_SHOT, .unparsed = 1,
	 .unparsed_dropped = 1, .pending_after = -1},
	/* fragments */
	{"IPv4 first fragment of a forged divergent answer (DROP_DIVERGENT upstream): dropped",
	 HX_V4FIRST, "10.77.53.54", 2, false, false, true, false, false, TC_ACT_SHOT,
	 .frag_first = 1, .frag_dropped = 1, .pending_after = -1},
	{"IPv4 first fragment of a matched answer (DROP_DIVERGENT upstream): dropped, query "
	 "flagged (no timeout), kept",
	 HX_V4FIRST, "10.77.53.54", 2, false, true, false, false, false, TC_ACT_SHOT, .frag_first = 1,
	 .frag_dropped = 1, .pending_after = 2},
	{"IPv4 first fragment of an answer, failed over: dropped", HX_V4FIRST, "10.77.53.53", 0, false,
	 true, false, true, false, TC_ACT_SHOT, .frag_first = 1, .frag_dropped = 1,
	 .pending_after = 2},
	{"IPv4 first fragment of an answer, no drop policy: parsed and matched", HX_V4FIRST,
	 "10.77.53.53", 0, false, true, false, false, false, TC_ACT_UNSPEC, .answers = 1,
	 .frag_first = 1, .pending_after = 0},
	{"IPv4 first fragment with half a DNS header, no drop policy: counted, not malformed, passed",
	 HX_V4FIRST16, "10.77.53.53", 0, false, true, false, false, false, TC_ACT_UNSPEC,
	 .frag_first = 1, .pending_after = 1},
	{"IPv4 first fragment with half a DNS header, failed over: dropped", HX_V4FIRST16,
	 "10.77.53.53", 0, false, true, false, true, false, TC_ACT_SHOT, .frag_first = 1,
	 .frag_dropped = 1, .pending_after = 1},
	{"IPv4 later fragment from the upstream: counted, passed", HX_V4LATER, "10.77.53.53", 0, false,
	 false, false, false, false, TC_ACT_UNSPEC, .frag_later = 1, .pending_after = -1},
	{"IPv4 later fragment from a DROP_DIVERGENT upstream: counted, passed (its first is dropped)",
	 HX_V4LATER, "10.77.53.54", 2, false, false, true, false, false, TC_ACT_UNSPEC,
	 .frag_later = 1, .pending_after = -1},
	{"IPv4 first fragment of a query leaving the node: recorded", HX_V4FIRST, "10.77.53.53", 0,
	 true, false, false, false, true, TC_ACT_UNSPEC, .queries = 1, .frag_first = 1,
	 .pending_after = 1},
	{"IPv4 first fragment of a pod's query, failed over: not redirected (half a datagram)",
	 HX_V4FIRST, "10.77.53.53", 0, true, false, false, true, false, TC_ACT_UNSPEC,
	 .pending_after = 0},
	{"IPv4 later fragment of a query leaving the node: counted", HX_V4LATER, "10.77.53.53", 0, true,
	 false, false, false, true, TC_ACT_UNSPEC, .frag_later = 1, .pending_after = 0},
	{"IPv6 first fragment of an answer, failed over: dropped", HX_V6FIRST, "2001:db8:53::53", 1,
	 false, true, false, true, false, TC_ACT_SHOT, .frag_first = 1, .frag_dropped = 1,
	 .ipv6_exthdr = 1, .pending_after = 2},
	{"IPv6 first fragment of an answer, no drop policy: parsed and matched", HX_V6FIRST,
	 "2001:db8:53::53", 1, false, true, false, false, false, TC_ACT_UNSPEC, .answers = 1,
	 .frag_first = 1, .ipv6_exthdr = 1, .pending_after = 0},
	{"IPv6 later fragment from the upstream: counted, passed", HX_V6LATER, "2001:db8:53::53", 1,
	 false, false, false, false, false, TC_ACT_UNSPEC, .frag_later = 1, .pending_after = -1},
};

static void test_headers(void)
{
	static const char *const good4[] = {"192.0.2.10", "192.0.2.11"};
	static const char *const good6[] = {"2001:db8:10::10"};

	snap_put("www.example.com", good4, 2, good6, 1);
	for (size_t i = 0; i < sizeof(hx_rows) / sizeof(hx_rows[0]); i++) {
		const struct hx_row *x = &hx_rows[i];
		bool v6 = strchr(x->up, ':') != NULL;
		const char *client = v6 ? POD6 : NODE4;
		uint16_t cport = (uint16_t)(48000 + i), txid = (uint16_t)(0xd000 + i);
		struct addr c = A(client), u = A(x->up);
		struct ep_dns_pending_key k = pend_key(&c, cport, &u, txid, P_UDP);
		struct ep_dns_pending pv;
		struct rr good[] = {{v6 ? T_AAAA : T_A, v6 ? "2001:db8:10::10" : "192.0.2.10", NULL}};
		struct rr bad[] = {{v6 ? T_AAAA : T_A, v6 ? "2001:db8:66::1" : "203.0.113.66", NULL}};
		uint8_t dns[512], q[512], in[FRAME_MAX], f[FRAME_MAX];
		struct ep_dns_stats b, a, want;
		struct ep_dns_hdr_stats hb, ha;
		struct pkt m;
		size_t n, dn;
		char why[512];
		bool ok;
		int pend_state;

		set_cfg(EP_DNS_MODE_UPSTREAM, 0);
		if (x->pend) {
			m = query_pkt(client, cport, x->up, P_UDP, q,
				      mk_query(q, txid, "www.example.com", v6 ? T_AAAA : T_A));
			n = mk_frame(in, &m);
			prog_run(eg_fd, in, n);
		}
		if (x->query) {
			dn = mk_query(dns, txid, "www.example.com", v6 ? T_AAAA : T_A);
			m = query_pkt(client, cport, x->up, P_UDP, dns, dn);
		} else {
			/* padded with a TXT-like tail so a first fragment of 32 bytes
			 * leaves a later one */
			dn = mk_answer(dns, txid, 0, "www.example.com", v6 ? T_AAAA : T_A,
				       x->divergent ? bad : good, 1, true);
			memset(dns + dn, 0, 64);
			dn += 64;
			m = answer_pkt(x->up, client, cport, P_UDP, dns, dn);
		}
		set_cfg(x->cache_mode ? EP_DNS_MODE_CACHE : EP_DNS_MODE_UPSTREAM, 0);
		n = hx_frame(f, x->t, &m);
		b = stats(x->idx);
		hb = hstats(x->idx);
		prog_run(x->egress ? eg_fd : in_fd, f, n);
		a = stats(x->idx);
		ha = hstats(x->idx);
		want = b;
		want.queries += x->queries;
		want.answers += x->answers;
		want.rcode[0] += x->answers;
		want.divergent += x->divergent_n;
		want.divergent_dropped += x->divergent_dropped;
		/* latency: whatever bucket, one answer */
		memcpy(want.lat, a.lat, sizeof(a.lat));
		want.lat_sum_us = a.lat_sum_us;
		ok = stats_equal(&a, &want, why, sizeof(why));
		ok = ok && R.err == 0 && R.verdict == x->verdict;
		ok = ok && (x->verdict != TC_ACT_UNSPEC || unchanged(f, n));
		ok = ok && ha.frag_first == hb.frag_first + x->frag_first &&
		     ha.frag_later == hb.frag_later + x->frag_later &&
		     ha.frag_dropped == hb.frag_dropped + x->frag_dropped &&
		     ha.ip_options == hb.ip_options + x->ip_options &&
		     ha.ipv6_exthdr == hb.ipv6_exthdr + x->ipv6_exthdr &&
		     ha.unparsed == hb.unparsed + x->unparsed &&
		     ha.unparsed_dropped == hb.unparsed_dropped + x->unparsed_dropped;
		pend_state = !pending_get(&k, &pv) ? 0 : (pv.flags & EP_DNS_PENDING_F_FRAG_DROPPED) ? 2 : 1;
		ok = ok && (x->pending_after < 0 || pend_state == x->pending_after);
		if (!tap_ok(ok, "headers: %s (%s, %s)", x->desc, x->egress ? "egress" : "ingress",
			    tc_str(x->verdict)))
			tap_diag("  err %d verdict %s; stats: %s; hstats first %llu later %llu dropped %llu "
				 "opt %llu ext %llu unparsed %llu/%llu (before %llu %llu %llu %llu %llu "
				 "%llu/%llu); pending %d",
				 R.err, tc_str(R.verdict), why, (unsigned long long)ha.frag_first,
				 (unsigned long long)ha.frag_later, (unsigned long long)ha.frag_dropped,
				 (unsigned long long)ha.ip_options, (unsigned long long)ha.ipv6_exthdr,
				 (unsigned long long)ha.unparsed, (unsigned long long)ha.unparsed_dropped,
				 (unsigned long long)hb.frag_first, (unsigned long long)hb.frag_later,
				 (unsigned long long)hb.frag_dropped, (unsigned long long)hb.ip_options,
				 (unsigned long long)hb.ipv6_exthdr, (unsigned long long)hb.unparsed,
				 (unsigned long long)hb.unparsed_dropped, pend_state);
		bpf_map_delete_elem(m_pend, &k);
	}
	set_cfg(EP_DNS_MODE_UPSTREAM, 0);
	samples_reset();
}

/* ==== robustness ========================================================== */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

static void test_robustness(void)
{
	static const char *const ups[] = {"10.77.53.53", "2001:db8:53::53", "10.77.53.54"};
	static const char *const clients[] = {"10.244.1.7", "fd00:244::7", "192.0.2.1"};
	static const char *const names[] = {"www.example.com", "WWW.EXAMPLE.COM", "a.b", "x"};
	uint8_t in[FRAME_MAX], dns[1500];
	int bad_err = 0, bad_verdict = 0, bad_untouched = 0, runs = 0, oks = 0, shots = 0;
	int refused = 0, bad_shot = 0, bad_csum = 0, cache_mode = 0;
	struct addr upx = A(UPX), up4 = A(UP4), up6 = A(UP6);
	char first[160] = "";
	uint64_t seed = (uint64_t)time(NULL);

	rng_state ^= seed;
	tap_diag("robustness seed %llu", (unsigned long long)seed);
	for (int i = 0; i < 20000; i++) {
		size_t n = 0;
		int kind = (int)(rnd() % 6);
		struct pkt p;

		if (i % 1000 == 0) {
			cache_mode = rnd() % 2;
			set_cfg(cache_mode ? EP_DNS_MODE_CACHE : EP_DNS_MODE_UPSTREAM, rnd() % 3);
		}
		if (kind == 0) {
			/* garbage of any length, random ethertype among the interesting */
			n = 14 + rnd() % 300;
			for (size_t j = 0; j < n; j++)
				in[j] = (uint8_t)rnd();
			put16(in + 12, (rnd() % 2) ? 0x0800 : 0x86dd);
		} else {
			/* a DNS frame to/from an upstream (or the cache), then mutated */
			int f6 = (int)(rnd() % 2);
			const char *up = f6 ? ups[1] : ups[rnd() % 2 ? 0 : 2];
			const char *cl = f6 ? clients[1] : clients[rnd() % 2 ? 0 : 2];
			size_t dn;

			if (kind == 1) {
				dn = mk_query(dns, (uint16_t)rnd(), names[rnd() % 4], T_A);
				p = query_pkt(cl, (uint16_t)(1024 + rnd() % 64), up,
					      rnd() % 4 ? P_UDP : P_TCP, dns, dn);
			} else {
				struct rr rr[6];
				int nrr = (int)(rnd() % 7);

				for (int j = 0; j < nrr; j++) {
					rr[j].type = (uint16_t)(rnd() % 3 == 0 ? T_CNAME : (f6 ? T_AAAA : T_A));
					rr[j].owner = rnd() % 2 ? NULL : "www.example.com";
					rr[j].data = rr[j].type == T_CNAME ? "c.example"
						     : rr[j].type == T_A ? (rnd() % 2 ? "192.0.2.10" : "203.0.113.1")
						     : "2001:db8::1";
				}
				dn = mk_answer(dns, (uint16_t)rnd(), (uint8_t)(rnd() % 4 ? 0 : rnd() % 16),
					       names[rnd() % 4], f6 ? T_AAAA : T_A, rr, nrr, rnd() % 2);
				if (kind == 5) {
					/* random DNS body behind a valid header */
					for (size_t j = 12; j < dn; j++)
						if (rnd() % 4 == 0)
							dns[j] = (uint8_t)rnd();
					/* sometimes extra random bytes */
					if (rnd() % 2) {
						size_t extra = rnd() % 600;

						for (size_t j = 0; j < extra && dn < sizeof(dns); j++)
							dns[dn++] = (uint8_t)rnd();
					}
				}
				p = answer_pkt(kind == 4 ? (f6 ? CACHE6 : CACHE4) : up, cl,
					       (uint16_t)(1024 + rnd() % 64), rnd() % 4 ? P_UDP : P_TCP,
					       dns, dn);
			}
			if (p.proto == P_TCP && rnd() % 4 == 0)
				p.tcp_flags = (uint8_t)rnd();
			n = mk_frame(in, &p);
			/* IPv4 options, IPv6 extension headers, fragments */
			if (rnd() % 4 == 0) {
				uint8_t t[FRAME_MAX];
				size_t pl = n - (f6 ? 54 : 34);
				size_t cut = pl > 16 ? 8 * (1 + rnd() % ((pl - 8) / 8)) : 0;
				static const uint8_t frag6[] = {44}, hbh6[] = {0, 60},
						     long6[] = {60, 60, 60, 60, 60, 60, 60, 60, 60};

				switch (rnd() % 3) {
				case 0:
					n = f6 ? v6_ext(t, in, n, hbh6, 2, 0, 0, 0)
					       : v4_options(t, in, n, 4 * (1 + rnd() % 10));
					break;
				case 1:
					if (!cut) {
						memcpy(t, in, n);
						break;
					}
					n = f6 ? v6_ext(t, in, n, frag6, 1, rnd() % 2 ? 1 : (uint16_t)cut,
							rnd() % 2 ? 0 : cut, 0)
					       : v4_frag(t, in, n, cut, rnd() % 2);
					break;
				default:
					n = f6 ? v6_ext(t, in, n, long6, 9, 0, 0, 0)
					       : v4_options(t, in, n, 40);
					break;
				}
				memcpy(in, t, n);
			}
			/* mutations: flip bytes, truncate */
			switch (rnd() % 4) {
			case 0:
				break;
			case 1:
				for (int j = (int)(rnd() % 4); j >= 0; j--)
					in[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
				break;
			case 2:
				n = 14 + rnd() % (n - 13);
				break;
			case 3:
				in[14 + rnd() % (n - 14)] = (uint8_t)rnd();
				break;
			}
		}
		for (int prog = 0; prog < 2; prog++) {
			prog_run(prog ? eg_fd : in_fd, in, n);
			runs++;
			/* BPF_PROG_TEST_RUN itself refuses IPv4/IPv6 frames too short
			 * for the fixed IP header; the program never sees them */
			if (R.err == -EINVAL && ((get16(in + 12) == 0x0800 && n < 14 + 20) ||
						 (get16(in + 12) == 0x86dd && n < 14 + 40))) {
				refused++;
				continue;
			}
			if (R.err) {
				if (!bad_err++)
					snprintf(first, sizeof(first), "run %d: err %d", i, R.err);
				continue;
			}
			if (R.verdict != TC_ACT_UNSPEC && R.verdict != TC_ACT_OK &&
			    R.verdict != TC_ACT_SHOT) {
				if (!bad_verdict++)
					snprintf(first, sizeof(first), "run %d: verdict %d", i, R.verdict);
			}
			if (R.verdict == TC_ACT_UNSPEC && !unchanged(in, n)) {
				if (!bad_untouched++)
					snprintf(first, sizeof(first), "run %d kind %d: UNSPEC but modified", i,
						 kind);
			}
			oks += R.verdict == TC_ACT_OK;
			shots += R.verdict == TC_ACT_SHOT;
			/* Only answers of the DROP_DIVERGENT upstream are dropped
			 * (divergent, fragmented, behind headers not walked), and in
			 * cache mode answers from an upstream seen at ingress
			 * (unmatched: nothing here asks the upstream; or fragmented).
			 * A failed rewrite would drop too: it must not happen. */
			if (R.verdict == TC_ACT_SHOT &&
			    !(n >= 14 + 20 && get16(in + 12) == 0x0800 && addr_is(in + 26, &upx)) &&
			    !(cache_mode && prog == 0 &&
			      ((n >= 14 + 20 && get16(in + 12) == 0x0800 &&
				(addr_is(in + 26, &up4) || addr_is(in + 26, &upx))) ||
			       (n >= 14 + 40 && get16(in + 12) == 0x86dd &&
				addr_is(in + 22, &up6)))))
				bad_shot++;
			/* a rewrite keeps valid checksums valid */
			if (R.verdict == TC_ACT_OK) {
				struct parsed pin;

				parse_frame(in, n, &pin);
				if (pin.ok && pin.ip_csum_ok && pin.l4_csum_ok &&
				    !(Rp.ok && Rp.ip_csum_ok && Rp.l4_csum_ok))
					bad_csum++;
			}
		}
		if (i % 256 == 0)
			ring_buffer__consume(rb);
	}
	ring_buffer__consume(rb);
	set_cfg(EP_DNS_MODE_UPSTREAM, 0);
	tap_diag("robustness: %d runs, %d rewritten (OK), %d dropped (SHOT), %d too short for "
		 "BPF_PROG_TEST_RUN",
		 runs, oks, shots, refused);
	if (first[0])
		tap_diag("  first problem: %s", first);
	tap_ok(bad_err == 0, "robustness: 20000 random/mutated/truncated frames through both programs "
			     "run without error (%d errors)",
	       bad_err);
	tap_ok(bad_verdict == 0, "robustness: verdicts only UNSPEC / OK / SHOT (%d others)", bad_verdict);
	tap_ok(bad_untouched == 0, "robustness: every UNSPEC frame left byte for byte unchanged (%d)",
	       bad_untouched);
	tap_ok(oks > 0 && bad_csum == 0,
	       "robustness: every rewritten (OK) frame with valid checksums still has valid ones "
	       "(%d of %d broken)",
	       bad_csum, oks);
	tap_ok(bad_shot == 0,
	       "robustness: SHOT only for answers of the DROP_DIVERGENT upstream and, in cache mode, answers from an upstream at ingress (%d others)",
	       bad_shot);
}

/* The verifier's view: programs loaded, instruction counts. */
static void report_progs(void)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);

		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0)
			tap_diag("%s: %u xlated insns, %u bytes JITed", bpf_program__name(prog),
				 info.xlated_prog_len / 8, info.jited_prog_len);
	}
}

int main(void)
{
	int rc = 0;

	if (geteuid() != 0) {
		return tap_skip_all("needs root (BPF)");
	}
	test_name_hash();

	skel = tc_dns__open_and_load();
	if (!tap_ok(skel != NULL, "tc_dns loaded: both programs pass the verifier (maps not pinned)"))
		return tap_done();
	report_progs();
	in_fd = bpf_program__fd(skel->progs.ep_tc_dns_ingress);
	eg_fd = bpf_program__fd(skel->progs.ep_tc_dns_egress);
	m_up = bpf_map__fd(skel->maps.ep_dns_upstreams);
	m_pend = bpf_map__fd(skel->maps.ep_dns_pending);
	m_stats = bpf_map__fd(skel->maps.ep_dns_stats);
	m_cfg = bpf_map__fd(skel->maps.ep_dns_config);
	m_redir = bpf_map__fd(skel->maps.ep_dns_redir);
	m_snap = bpf_map__fd(skel->maps.ep_dns_snap);
	rb = ring_buffer__new(bpf_map__fd(skel->maps.ep_dns_samples), on_sample, NULL, NULL);
	if (!tap_ok(rb != NULL, "ring buffer consumer on ep_dns_samples")) {
		rc = 1;
		goto out;
	}

	add_upstream(UP4, 0, 0);
	add_upstream(UP6, 1, 0);
	add_upstream(UPX, 2, EP_DNS_UP_F_DROP_DIVERGENT);
	set_cfg(EP_DNS_MODE_UPSTREAM, 0);

	test_queries();
	test_answers();
	test_unmatched_and_sampling();
	test_late_and_unmatched_drop();
	test_malformed();
	test_not_ours();
	test_redirect_udp(4);
	test_redirect_udp(6);
	test_redirect_tcp(4);
	test_redirect_tcp(6);
	test_divergence();
	test_headers();
	map_clear(m_pend, sizeof(struct ep_dns_pending_key));
	test_robustness();

out:
	ring_buffer__free(rb);
	tc_dns__destroy(skel);
	(void)rc;
	return tap_done();
}
