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
#include "bpf_run.h"
#include "config.h"
#include "datapath.h"
#include "edgeplane_abi.h"
#include "ep_hash.h"
#include "frames.h"
#include "log.h"
#include "services.h"
#include "stats.h"
#include "svc_cfg.h"
#include "tap.h"
#include "tc_rnat.skel.h"
#include "xdp_lb.skel.h"

/* ==== the datapath under test ============================================ */

static struct xdp_lb *xskel;
static struct tc_rnat *tskel;
static struct ep_map_fds fds;
static struct ep_services svcs;
static int xdp_fd, rnat_in_fd, rnat_eg_fd, ncpu;

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

/* ==== config ============================================================= */

static struct ep_config cfg;

static void build_config(void)
{
	struct ep_cfg_service *s;

	svc_cfg_reset(&cfg, 251);

	svc_cfg_add_web_dns(&cfg);
	/* one backend address:port behind two VIP:ports */
	s = svc_cfg_add(&cfg, "shared-a", "10.0.0.101", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.21", 8080, 1);
	s = svc_cfg_add(&cfg, "shared-b", "10.0.0.102", 443, P_TCP);
	svc_cfg_add_be(s, "10.1.0.21", 8080, 1);
	s = svc_cfg_add(&cfg, "shared6-a", "fd00::101", 80, P_TCP);
	svc_cfg_add_be(s, "fd00:1::21", 8080, 1);
	s = svc_cfg_add(&cfg, "shared6-b", "fd00::102", 443, P_TCP);
	svc_cfg_add_be(s, "fd00:1::21", 8080, 1);
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
	if (R.err || R.verdict != XDP_PASS)
		return false;
	if (f->proto == P_TCP) { /* the handshake's ACK creates the entry */
		uint8_t ack[FRAME_MAX];
		size_t an = flow_ack_pkt(ack, f);

		prog_run(xdp_fd, ack, an);
	}
	if (R.err || R.verdict != XDP_PASS || ep_ct_get(&fds.ct, &k, ct))
		return false;
	memset(bip, 0, sizeof(*bip));
	bip->family = f->client.family;
	memcpy(bip->addr, ct->baddr, sizeof(bip->addr));
	*bport = ntohs(ct->bport);
	return Rp.ok && ip_eq_raw(bip, Rp.dst.addr, Rp.family) && Rp.dport == *bport;
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
	struct ep_backend_stats b0 = backend_stats_read(fds.backend_stats, stats_id, ncpu), b1;
	bool ok;

	prog_run(fd, in, n);
	b1 = backend_stats_read(fds.backend_stats, stats_id, ncpu);
	ok = R.err == 0 && R.verdict == TC_ACT_OK && Rp.ok &&
	     ip_eq_raw(want_vip, Rp.src.addr, Rp.family) && Rp.sport == want_vport &&
	     ip_eq_raw(&f->client, Rp.dst.addr, Rp.family) && Rp.dport == f->cport;
	if (!tap_ok(ok, "%s: %s, source %s:%u rewritten to %s:%u, destination untouched", name,
		    ingress ? "ep_tc_rnat (ingress)" : "ep_tc_rnat_egress", ipstr(bip), bport,
		    ipstr(want_vip), want_vport))
		tap_diag("  err %d verdict %s src %s:%u dst %s:%u", R.err, tc_str(R.verdict),
			 ipstr(&Rp.src), Rp.sport, ipstr(&Rp.dst), Rp.dport);
	ok = Rp.ok && Rp.ip_csum_ok && Rp.l4_csum_ok && !Rp.udp_nocsum;
	if (!tap_ok(ok, "%s: IPv4 header (if any) + full L4 checksum (pseudo header) valid", name))
		tap_diag("  ip %d l4 %d", Rp.ip_csum_ok, Rp.l4_csum_ok);
	ok = same_but_csums(R.out, R.outlen, exp, en) && Rp.ttl == 64;
	if (!tap_ok(ok, "%s: nothing else changed (TTL/hop limit 64 kept, MACs kept)", name))
		tap_diag("  outlen %zu expected %zu ttl %u", R.outlen, en, Rp.ttl);
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
	struct ep_backend_stats b0 = backend_stats_read(fds.backend_stats, stats_id, ncpu), b1;
	bool v4 = f->vip.family == EP_FAMILY_V4, ok;

	prog_run(fd, in, n);
	b1 = backend_stats_read(fds.backend_stats, stats_id, ncpu);
	ok = R.err == 0 && R.verdict == TC_ACT_OK && Rp.ok && Rp.icmp_err &&
	     ip_eq_raw(&f->vip, Rp.src.addr, Rp.family) &&
	     ip_eq_raw(&f->client, Rp.dst.addr, Rp.family);
	if (!tap_ok(ok, "%s: TC_ACT_OK, outer source %s -> VIP %s, outer destination untouched", name,
		    ipstr(bip), ipstr(&f->vip)))
		tap_diag("  err %d verdict %s src %s dst %s", R.err, tc_str(R.verdict),
			 ipstr(&Rp.src), ipstr(&Rp.dst));
	ok = Rp.icmp_err && ip_eq_raw(&f->vip, Rp.qdst.addr, Rp.family) &&
	     Rp.qdport == f->vport && ip_eq_raw(&f->client, Rp.qsrc.addr, Rp.family) &&
	     Rp.qsport == f->cport;
	if (!tap_ok(ok, "%s: quoted destination -> %s:%u, quoted source (client) untouched", name,
		    ipstr(&f->vip), f->vport))
		tap_diag("  quoted %s:%u -> %s:%u", ipstr(&Rp.qsrc), Rp.qsport, ipstr(&Rp.qdst),
			 Rp.qdport);
	if (v4) {
		tap_ok(Rp.ip_csum_ok, "%s: outer IPv4 header checksum valid", name);
		tap_ok(Rp.q_ip_csum_ok, "%s: quoted IPv4 header checksum valid", name);
		if (!tap_ok(Rp.l4_csum_ok, "%s: ICMP checksum (message only, no pseudo header) valid",
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
		tap_ok(Rp.l4_csum_ok, "%s: ICMPv6 checksum (pseudo header + message) valid", name);
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
		if (!tap_ok(R.verdict == TC_ACT_OK && Rp.ok &&
				    ip_eq_raw(&f.vip, Rp.src.addr, Rp.family) &&
				    Rp.sport == f.vport && Rp.ip_csum_ok && Rp.udp_nocsum,
			    "IPv4 UDP reply without checksum: translated, IPv4 checksum valid, UDP "
			    "checksum stays 0"))
			tap_diag("  verdict %s src %s:%u ip %d csum 0x%04x", tc_str(R.verdict),
				 ipstr(&Rp.src), Rp.sport, Rp.ip_csum_ok,
				 Rp.ok ? get16(R.out + Rp.l4off + 6) : 0);
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
		if (!tap_ok(R.verdict == TC_ACT_OK && Rp.ok &&
				    ip_eq_raw(&g.vip, Rp.src.addr, Rp.family) && Rp.l4_csum_ok &&
				    Rp.ip_csum_ok && get16(R.out + Rp.l4off + 6) == 0xffff,
			    "%s UDP reply whose translated checksum computes to 0: sent as 0xffff",
			    v6 ? "IPv6" : "IPv4"))
			tap_diag("  verdict %s csum field 0x%04x", tc_str(R.verdict),
				 Rp.ok ? get16(R.out + Rp.l4off + 6) : 0);
	}
}

/* ==== replies that are not ours: one table ================================= */
/* Single-packet cases, as Katran's fixtures (katran/lib/testing/): each row
 * says what the frame is, builds it and names the program; one loop
 * (test_not_ours) runs each as one check: TC_ACT_OK and the bytes unchanged.
 * tc_rnat has no drop counters; a frame it must not translate is simply left
 * alone. Conntrack misses are here too (documented in tc_rnat.bpf.c: a reply
 * conntrack knows no flow for is left alone, even when the backend serves a
 * single VIP:port: it may belong to a connection made to the backend directly). */

static size_t fx_reply(uint8_t *in, const char *from, uint16_t fport, const char *client,
		       uint16_t cport, const char *vip, uint16_t vport, uint8_t proto)
{
	struct flow f = mkflow(client, cport, vip, vport, proto);
	struct ep_ip src = IP(from);

	return reply_pkt(in, &src, fport, &f, 24);
}

static size_t b_non_backend(uint8_t *in)
{
	return fx_reply(in, "10.1.0.99", 8080, "198.51.100.20", 41000, "10.0.0.100", 80, P_TCP);
}
static size_t b_backend_other_port(uint8_t *in)
{
	return fx_reply(in, "10.1.0.11", 9090, "198.51.100.20", 41000, "10.0.0.100", 80, P_TCP);
}
static size_t b_non_backend6(uint8_t *in)
{
	return fx_reply(in, "fd00:1::99", 8080, "2001:db8::20", 41000, "fd00::100", 80, P_TCP);
}
static size_t b_udp_from_tcp_backend(uint8_t *in)
{
	return fx_reply(in, "10.1.0.21", 8080, "198.51.100.20", 41001, "10.0.0.101", 80, P_UDP);
}
static size_t b_echo_reply(uint8_t *in)
{
	uint8_t l4[64], l3[128];
	struct ep_ip be = IP("10.1.0.11"), client = IP("198.51.100.20");
	size_t n4 = mk_icmp_echo(l4, EP_FAMILY_V4, 16), n3;

	l4[0] = 0; /* echo reply */
	n3 = mk_ip(l3, &be, &client, P_ICMP, l4, n4, NULL);
	return mk_eth(in, 0, false, 0x0800, l3, n3);
}
static size_t b_arp(uint8_t *in)
{
	uint8_t arp[28] = {0, 1, 8, 0, 6, 4, 0, 2};
	size_t n = mk_eth(in, 0, false, 0x0806, arp, sizeof(arp));

	memset(in + n, 0, 60 - n);
	return 60;
}
static size_t b_ct_miss_single(uint8_t *in)
{
	return fx_reply(in, "10.1.0.11", 8080, "198.51.100.30", 42000, "10.0.0.100", 80, P_TCP);
}
static size_t b_ct_miss_shared(uint8_t *in)
{
	return fx_reply(in, "10.1.0.21", 8080, "198.51.100.30", 42001, "10.0.0.101", 80, P_TCP);
}

static const struct rnat_fixture {
	const char *desc;
	size_t (*build)(uint8_t *in);
	bool ingress; /* through ep_tc_rnat (ingress), else ep_tc_rnat_egress */
} rnat_fixtures[] = {
	{"reply from a non-backend 10.1.0.99:8080 (egress)", b_non_backend, false},
	{"reply from a non-backend 10.1.0.99:8080 (ingress)", b_non_backend, true},
	{"reply from a backend address, other port 10.1.0.11:9090", b_backend_other_port, false},
	{"IPv6 reply from a non-backend [fd00:1::99]:8080", b_non_backend6, false},
	{"UDP from 10.1.0.21:8080 (a TCP-only backend)", b_udp_from_tcp_backend, false},
	{"ICMP echo reply from a backend", b_echo_reply, false},
	{"ARP reply", b_arp, false},
	{"unknown flow, backend with a single VIP:port (direct connection)", b_ct_miss_single, false},
	{"unknown flow, backend behind two VIP:ports", b_ct_miss_shared, false},
};

static void test_not_ours(void)
{
	uint8_t in[FRAME_MAX];

	for (size_t i = 0; i < sizeof(rnat_fixtures) / sizeof(rnat_fixtures[0]); i++) {
		const struct rnat_fixture *x = &rnat_fixtures[i];
		size_t n;

		memset(in, 0, sizeof(in));
		n = x->build(in);
		expect_untouched(x->desc, x->ingress ? rnat_in_fd : rnat_eg_fd, in, n);
	}
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

	/* Before the handshake's ACK there is no entry: the SYN-ACK that
	 * answers the SYN's ISN is translated through the half-open record,
	 * one with another acknowledgement is not, and neither creates one. */
	{
		struct flow g = mkflow("198.51.100.78", 43000, "10.0.0.100", 80, P_TCP);
		struct ep_flow_key kg = flow_key(&g);
		struct ep_ip gb;

		n = flow_pkt(in, &g, 0, false, 0);
		prog_run(xdp_fd, in, n);
		memset(&gb, 0, sizeof(gb));
		gb = Rp.dst;
		bport = Rp.dport;
		tap_ok(R.verdict == XDP_PASS && Rp.ok && ep_ct_get(&fds.ct, &kg, &ct2) != 0,
		       "tcp state: a SYN through XDP creates no conntrack entry");
		n = reply_pkt(in, &gb, bport, &g, 0);
		put32(in + 14 + 20 + 8, 0x77777777);
		l4_recsum_frame(in, n);
		expect_untouched("tcp state: half-open, SYN-ACK with a foreign acknowledgement",
				 rnat_eg_fd, in, n);
		n = reply_pkt(in, &gb, bport, &g, 0);
		prog_run(rnat_eg_fd, in, n);
		tap_ok(R.verdict == TC_ACT_OK && Rp.ok && Rp.sport == g.vport &&
			       ip_eq_raw(&g.vip, Rp.src.addr, Rp.family) &&
			       ep_ct_get(&fds.ct, &kg, &ct2) != 0,
		       "tcp state: half-open, the SYN-ACK answering the SYN is translated to the "
		       "VIP, still no entry");
		/* A retransmission (here with another ISN, as after a ring change
		 * it could have gone elsewhere) replaces the record: only its
		 * SYN-ACK is translated from then on. */
		n = flow_pkt(in, &g, 0, false, 0);
		tcp_set_seq(in, n, 0x0a0b0c0d);
		prog_run(xdp_fd, in, n);
		n = reply_pkt(in, &gb, bport, &g, 0);
		expect_untouched("tcp state: half-open, the first SYN's late SYN-ACK after a "
				 "retransmission replaced the record",
				 rnat_eg_fd, in, n);
		put32(in + 14 + 20 + 8, 0x0a0b0c0e);
		l4_recsum_frame(in, n);
		prog_run(rnat_eg_fd, in, n);
		tap_ok(R.verdict == TC_ACT_OK && Rp.ok && Rp.sport == g.vport,
		       "tcp state: half-open, the retransmission's SYN-ACK is translated");
		/* A backend that refuses answers RST+ACK of ISN+1: translated
		 * like the SYN-ACK (the client gets ECONNREFUSED at once); one
		 * acknowledging anything else is not. */
		n = reply_pkt(in, &gb, bport, &g, 0);
		in[14 + 20 + 13] = TCP_RST | TCP_ACK;
		put32(in + 14 + 20 + 8, 0x0a0b0c0e);
		l4_recsum_frame(in, n);
		prog_run(rnat_eg_fd, in, n);
		tap_ok(R.verdict == TC_ACT_OK && Rp.ok && Rp.sport == g.vport &&
			       ip_eq_raw(&g.vip, Rp.src.addr, Rp.family) &&
			       ep_ct_get(&fds.ct, &kg, &ct2) != 0,
		       "tcp state: half-open, the backend's refusal (RST+ACK of the ISN) is "
		       "translated to the VIP, no entry");
		put32(in + 14 + 20 + 8, 0x77777777);
		n = reply_pkt(in, &gb, bport, &g, 0);
		in[14 + 20 + 13] = TCP_RST | TCP_ACK;
		put32(in + 14 + 20 + 8, 0x77777777);
		l4_recsum_frame(in, n);
		expect_untouched("tcp state: half-open, a RST acknowledging a foreign ISN", rnat_eg_fd, in, n);
	}
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
	/* A SYN on a closing flow is a new connection: balanced afresh without
	 * touching conntrack; the backend's SYN-ACK (translated through the
	 * half-open record) drops the old entry, the client's ACK creates the
	 * new one, flags cleared. */
	n = flow_pkt(in, &f, 0, false, 0);
	prog_run(xdp_fd, in, n);
	tap_ok(R.verdict == XDP_PASS && ep_ct_get(&fds.ct, &k, &ct2) == 0 &&
		       (ct2.flags & EP_CT_F_CLOSING),
	       "tcp state: a new SYN on a closing flow leaves conntrack alone");
	n = reply_pkt(in, &bip, bport, &f, 0);
	prog_run(rnat_eg_fd, in, n);
	tap_ok(R.verdict == TC_ACT_OK && Rp.ok && Rp.sport == f.vport &&
		       ep_ct_get(&fds.ct, &k, &ct2) != 0,
	       "tcp state: its SYN-ACK is translated and the old closing entry dropped");
	n = flow_ack_pkt(in, &f);
	prog_run(xdp_fd, in, n);
	tap_ok(R.verdict == XDP_PASS && ep_ct_get(&fds.ct, &k, &ct2) == 0 &&
		       !(ct2.flags & EP_CT_F_CLOSING) && ct2.isn == htonl(FRAME_ISN),
	       "tcp state: the client's ACK starts a fresh entry");
	/* A RST from the backend marks it closing too (and is translated). */
	n = pkt_between(in, &bip, bport, &f.client, f.cport, P_TCP, TCP_RST | TCP_ACK, 0, false, 0);
	prog_run(rnat_eg_fd, in, n);
	tap_ok(R.verdict == TC_ACT_OK && Rp.ok && Rp.sport == f.vport &&
		       ep_ct_get(&fds.ct, &k, &ct2) == 0 && (ct2.flags & EP_CT_F_CLOSING),
	       "tcp state: backend RST translated and marks the flow closing");
}

/* Flows counted for the backend at addr:port (host order; any service). */
static uint64_t backend_flows(const struct ep_ip *addr, uint16_t port)
{
	uint64_t flows = 0;

	for (uint32_t id = 1; id < 4096; id++) {
		struct ep_backend be;
		struct ep_backend_stats st;

		if (bpf_map_lookup_elem(fds.backends, &id, &be) || !(be.flags & EP_BE_F_VALID) ||
		    be.port != htons(port) || !ip_eq_raw(addr, be.addr, be.family))
			continue;
		if (ep_stats_backend(fds.backend_stats, id, &st) == 0)
			flows += st.flows;
	}
	return flows;
}

/* Orphans (struct ep_syn): a client's ACK with no entry and no handshake
 * record - an evicted flow, or a spoofed ACK - is balanced by Maglev and
 * creates no entry. The backend's answer decides: a RST (what a backend
 * answers a spoofed ACK with) is translated and creates none; anything else
 * means the backend has the connection, and creates it. A backend that is
 * not the one the orphan went to is not answering it. */
static void test_orphans(void)
{
	const char *clients[2] = {"198.51.100.79", "2001:db8::79"};
	const char *vips[2] = {"10.0.0.100", "fd00::100"};
	const char *others[2][3] = {{"10.1.0.11", "10.1.0.12", "10.1.0.13"},
				    {"fd00:1::11", "fd00:1::12", "fd00:1::13"}};

	for (int v = 0; v < 2; v++) {
		struct flow f = mkflow(clients[v], 43100, vips[v], 80, P_TCP);
		struct ep_flow_key k = flow_key(&f);
		const char *fam = v ? "IPv6" : "IPv4";
		struct ep_ct_entry ct;
		uint8_t in[FRAME_MAX];
		struct ep_ip gb, other;
		uint16_t bport;
		size_t n;
		int flows0;

		n = pkt_between(in, &f.client, f.cport, &f.vip, f.vport, P_TCP, TCP_ACK, 0, false, 10);
		tcp_set_seq(in, n, 0x31323334);
		prog_run(xdp_fd, in, n);
		gb = Rp.dst;
		bport = Rp.dport;
		tap_ok(R.verdict == XDP_PASS && Rp.ok && ep_ct_get(&fds.ct, &k, &ct) != 0,
		       "orphans (%s): an ACK without entry or record is balanced, creates no entry", fam);
		for (int b = 0; b < 3; b++) {
			ep_ip_parse(others[v][b], &other);
			if (!ip_eq_raw(&gb, other.addr, other.family))
				break;
		}
		n = pkt_between(in, &other, bport, &f.client, f.cport, P_TCP, TCP_ACK, 0, false, 0);
		expect_untouched(v ? "orphans (IPv6): an answer from another backend"
				   : "orphans (IPv4): an answer from another backend",
				 rnat_eg_fd, in, n);
		n = pkt_between(in, &gb, bport, &f.client, f.cport, P_TCP, TCP_RST, 0, false, 0);
		prog_run(rnat_eg_fd, in, n);
		tap_ok(R.verdict == TC_ACT_OK && Rp.ok && Rp.sport == f.vport &&
			       ip_eq_raw(&f.vip, Rp.src.addr, Rp.family) &&
			       ep_ct_get(&fds.ct, &k, &ct) != 0,
		       "orphans (%s): the backend's RST is translated to the VIP, creates no entry",
		       fam);
		flows0 = (int)backend_flows(&gb, bport);
		n = pkt_between(in, &gb, bport, &f.client, f.cport, P_TCP, TCP_ACK, 0, false, 20);
		prog_run(rnat_eg_fd, in, n);
		tap_ok(R.verdict == TC_ACT_OK && Rp.ok && Rp.sport == f.vport &&
			       ip_eq_raw(&f.vip, Rp.src.addr, Rp.family) &&
			       ep_ct_get(&fds.ct, &k, &ct) == 0 && ct.isn == htonl(0x31323333) &&
			       ct.bport == htons(bport) && ip_eq_raw(&gb, ct.baddr, gb.family),
		       "orphans (%s): the backend's data is translated and creates the entry, on "
		       "this backend, with the orphan's sequence number - 1 as the ISN",
		       fam);
		tap_ok((int)backend_flows(&gb, bport) == flows0 + 1,
		       "orphans (%s): the backend's flow counter counts it", fam);
		n = pkt_between(in, &f.client, f.cport, &f.vip, f.vport, P_TCP, TCP_ACK, 0, false, 10);
		prog_run(xdp_fd, in, n);
		tap_ok(R.verdict == XDP_PASS && Rp.ok && ip_eq_raw(&gb, Rp.dst.addr, Rp.family) &&
			       Rp.dport == bport,
		       "orphans (%s): the client's next packet follows the entry", fam);
	}
}

/* An orphan sent through XDP, and where Maglev sent it. */
struct orphan {
	struct flow f;
	struct ep_ip backend;
	uint16_t bport;
};

static bool orphan_send(struct orphan *o, uint32_t seq)
{
	uint8_t in[FRAME_MAX];
	size_t n = pkt_between(in, &o->f.client, o->f.cport, &o->f.vip, o->f.vport, P_TCP, TCP_ACK,
			       0, false, 10);

	tcp_set_seq(in, n, seq);
	prog_run(xdp_fd, in, n);
	o->backend = Rp.dst;
	o->bport = Rp.dport;
	return R.verdict == XDP_PASS && Rp.ok;
}

/* The backend answers with data: translated, and the flow recorded? */
static bool orphan_answered(const struct orphan *o)
{
	struct ep_flow_key k = flow_key(&o->f);
	struct ep_ct_entry ct;
	uint8_t in[FRAME_MAX];
	size_t n = pkt_between(in, &o->backend, o->bport, &o->f.client, o->f.cport, P_TCP, TCP_ACK,
			       0, false, 20);

	prog_run(rnat_eg_fd, in, n);
	return R.verdict == TC_ACT_OK && Rp.ok && Rp.sport == o->f.vport &&
	       ip_eq_raw(&o->f.vip, Rp.src.addr, Rp.family) && ep_ct_get(&fds.ct, &k, &ct) == 0 &&
	       ct.bport == htons(o->bport);
}

/* What a conntrack replaced at an upgrade looks like: every live flow is an
 * orphan at once, while new connections keep coming. A burst of SYNs must
 * not overwrite an orphan's record before its backend answers (the answer
 * would pass untranslated, and the client reset the connection), nor may
 * orphans sharing a bucket push each other out. */
static void test_orphan_records(void)
{
	struct orphan o = {.f = mkflow("198.51.100.81", 43200, "10.0.0.100", 80, P_TCP)};
	struct orphan same[EP_ORPHAN_WAYS];
	struct ep_ip vip;
	uint8_t in[FRAME_MAX];
	int syns = 0, found = 0, adopted = 0;
	uint32_t want = 0;

	ep_ip_parse("10.0.0.100", &vip);
	orphan_send(&o, 0x41424344);
	for (int i = 0; i < 50000; i++) {
		char src[32];
		struct ep_ip c;
		size_t n;

		snprintf(src, sizeof(src), "100.%d.%d.%d", 64 + i / 62500, i / 250 % 250, 1 + i % 250);
		ep_ip_parse(src, &c);
		n = pkt_between(in, &c, (uint16_t)(2000 + i % 60000), &vip, 80, P_TCP, TCP_SYN, 0, false, 0);
		prog_run(xdp_fd, in, n);
		syns += R.verdict == XDP_PASS;
	}
	tap_ok(syns == 50000 && orphan_answered(&o),
	       "orphan records: an orphan's record outlives 50000 SYNs of new connections (%d "
	       "balanced): the backend's answer is translated and records the flow", syns);

	/* EP_ORPHAN_WAYS flows of one bucket, all orphans before any answer. */
	for (uint16_t port = 1024; port < 65535 && found < EP_ORPHAN_WAYS; port++) {
		struct flow g = mkflow("198.51.100.82", port, "10.0.0.100", 80, P_TCP);
		struct ep_flow_key k = flow_key(&g);
		uint32_t b = ep_flow_hash(&k) & (EP_ORPHAN_BUCKETS - 1);

		if (found == 0)
			want = b;
		if (b == want)
			same[found++].f = g;
	}
	for (int i = 0; i < found; i++)
		orphan_send(&same[i], 0x51525354 + (uint32_t)i);
	for (int i = 0; i < found; i++)
		adopted += orphan_answered(&same[i]);
	tap_ok(found == EP_ORPHAN_WAYS && adopted == EP_ORPHAN_WAYS,
	       "orphan records: %d orphans of one bucket, all answered after the last: %d "
	       "recorded", found, adopted);
	{
		struct ep_orphan_bucket b = {0};
		int used = 0;

		bpf_map_lookup_elem(bpf_map__fd(xskel->maps.ep_orphans), &want, &b);
		for (int w = 0; w < EP_ORPHAN_WAYS; w++)
			used += b.way[w].sig != 0;
		tap_ok(used == 0, "orphan records: once recorded, their ways are free (%d in use)",
		       used);
	}
}

/* Half-open records (struct ep_syn): every SYN writes two copies. Flows
 * sharing the slot of a direct-mapped table no longer lose each other's
 * records: a SYN-ACK is translated while either copy of its record is
 * intact, and the handshake's ACK finds it there too. */
static struct ep_syn syn_slot_get(uint32_t slot)
{
	struct ep_syn r = {0};

	bpf_map_lookup_elem(bpf_map__fd(xskel->maps.ep_syn), &slot, &r);
	return r;
}

static void syn_slot_clear(uint32_t slot)
{
	struct ep_syn none = {0};

	bpf_map_update_elem(bpf_map__fd(xskel->maps.ep_syn), &slot, &none, BPF_ANY);
}

struct handshake {
	struct flow f;
	struct ep_ip bip;
	uint16_t bport;
	uint32_t slot, slot2, sig;
};

static void hs_init(struct handshake *h, const struct flow *f)
{
	struct ep_flow_key k = flow_key(f);
	uint32_t hash = ep_flow_hash(&k);

	h->f = *f;
	h->slot = hash & (EP_SYN_SLOTS - 1);
	h->slot2 = (hash >> 16) & (EP_SYN_SLOTS - 1);
	h->sig = ep_syn_sig(&k, hash);
}

static bool hs_syn(struct handshake *h)
{
	uint8_t in[FRAME_MAX];
	size_t n = flow_pkt(in, &h->f, 0, false, 0);

	prog_run(xdp_fd, in, n);
	memset(&h->bip, 0, sizeof(h->bip));
	h->bip = Rp.dst;
	h->bport = Rp.dport;
	return R.verdict == XDP_PASS && Rp.ok;
}

/* Is the backend's SYN-ACK translated to the VIP? */
static bool hs_synack_translated(const struct handshake *h)
{
	uint8_t in[FRAME_MAX];
	size_t n = reply_pkt(in, &h->bip, h->bport, &h->f, 0);

	prog_run(rnat_eg_fd, in, n);
	return R.verdict == TC_ACT_OK && Rp.ok && Rp.sport == h->f.vport &&
	       ip_eq_raw(&h->f.vip, Rp.src.addr, Rp.family);
}

static void test_handshake_records(void)
{
	/* Four handshakes in progress on one slot (what lost records). */
	enum { HS = 4 };
	struct handshake h[HS], z;
	struct ep_ct_entry ct;
	int found = 0, ok = 0;
	bool have_z = false;

	for (int a = 1; a < 250 && found < HS; a++) {
		char src[32];

		snprintf(src, sizeof(src), "198.51.101.%d", a);
		for (uint32_t port = 1024; port < 65536 && found < HS; port++) {
			struct flow g = mkflow(src, (uint16_t)port, "10.0.0.100", 80, P_TCP);
			struct handshake c;

			hs_init(&c, &g);
			if (found == 0 || (c.slot == h[0].slot && c.slot2 != h[0].slot &&
					   c.slot2 != h[found - 1].slot2))
				h[found++] = c;
		}
	}
	/* ... and a flow whose first slot is h[0]'s second. */
	for (uint32_t port = 1024; port < 65536 && !have_z && found == HS; port++) {
		struct flow g = mkflow("198.51.102.1", (uint16_t)port, "10.0.0.100", 80, P_TCP);

		hs_init(&z, &g);
		have_z = z.slot == h[0].slot2 && z.slot2 != h[0].slot;
	}
	if (found < HS || !have_z) {
		tap_ok(false, "handshake records: flows sharing a slot found (%d, %d)", found, have_z);
		return;
	}
	/* Earlier tests' handshakes may have left records there. */
	syn_slot_clear(h[0].slot);
	for (int i = 0; i < HS; i++)
		syn_slot_clear(h[i].slot2);
	hs_syn(&h[0]);
	tap_ok(syn_slot_get(h[0].slot).sig == h[0].sig && syn_slot_get(h[0].slot2).sig == h[0].sig,
	       "handshake records: a SYN writes its record to both its slots, the first "
	       "being the slot older builds use (they find each other's during an upgrade)");
	for (int i = 1; i < HS; i++)
		hs_syn(&h[i]);
	for (int i = HS - 1; i >= 0; i--)
		ok += hs_synack_translated(&h[i]);
	tap_ok(ok == HS,
	       "handshake records: %d SYNs sharing a slot, then their SYN-ACKs: %d translated "
	       "(one copy per SYN: each overwrote the record of the one before)", HS, ok);
	/* The handshake's ACK finds the record's second copy. */
	{
		uint8_t in[FRAME_MAX];
		struct ep_flow_key k1 = flow_key(&h[1].f);
		size_t n = flow_ack_pkt(in, &h[1].f);
		struct ep_syn rec = syn_slot_get(h[1].slot2);

		prog_run(xdp_fd, in, n);
		tap_ok(syn_slot_get(h[1].slot).sig != h[1].sig && rec.sig == h[1].sig &&
			       ep_ct_get(&fds.ct, &k1, &ct) == 0 && ct.backend_id == rec.backend_id &&
			       ct.isn == rec.isn,
		       "handshake records: an ACK whose first copy was overwritten completes its "
		       "handshake from the second (entry created with the record's backend)");
	}
	/* What is still lost: a record whose two copies were both overwritten
	 * before the SYN-ACK. */
	hs_syn(&z);
	tap_ok(!hs_synack_translated(&h[0]) && hs_synack_translated(&z),
	       "handshake records: a record whose two copies were both overwritten is lost "
	       "(its SYN-ACK goes out untranslated, the client retries the SYN)");
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


int main(void)
{
	char err[512] = "";
	int rc = 0;

	ep_log_setup(0, EP_LOG_WARN);
	if (geteuid() != 0) {
		return tap_skip_all("needs root (BPF)");
	}
	/* No routes: bpf_fib_lookup() in ep_tc_rnat must fail in test_run. */
	if (unshare(CLONE_NEWNET))
		tap_diag("unshare(CLONE_NEWNET) failed (%s): fib lookups see the host's routes",
			 strerror(errno));
	ncpu = bpf_run_ncpu();

	xskel = xdp_lb__open_and_load();
	if (!tap_ok(xskel != NULL, "xdp_lb loaded (maps not pinned)"))
		return tap_done();
	tskel = tc_rnat__open();
	if (!tap_ok(tskel != NULL, "tc_rnat opened")) {
		xdp_lb__destroy(xskel);
		return tap_done();
	}
	/* Every map of tc_rnat reuses xdp_lb's map of the same name. */
	rc = bpf_run_share_maps(tskel->obj, xskel->obj);
	tap_diag("tc_rnat reuses %d maps of xdp_lb", rc);
	if (rc > 0)
		rc = tc_rnat__load(tskel);
	else if (rc == 0)
		rc = -ENOENT; /* nothing shared: the objects have drifted apart */
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
	if (ep_map_fds_from_obj(xskel->obj, &fds))
		tap_diag("a load balancer map is missing from the object");

	tap_ok(ep_services_init(&svcs, &fds) == 0, "ep_services_init");
	build_config();
	rc = ep_services_apply(&svcs, &cfg, err, sizeof(err));
	if (!tap_ok(rc == 0, "ep_services_apply: %zu services (%s)", cfg.n_services, err))
		goto out;

	test_replies();
	test_udp_csum_corners();
	test_not_ours();
	test_tcp_state();
	test_orphans();
	test_orphan_records();
	test_handshake_records();
	test_shared_backend();
	test_icmp();

	ep_services_free(&svcs);
out:
	tc_rnat__destroy(tskel);
	xdp_lb__destroy(xskel);
	return tap_done();
}
