/*
 * The XDP load balancer (xdp/xdp_lb.bpf.c) through BPF_PROG_TEST_RUN.
 *
 * The skeleton is loaded without pinning and programmed by the real agent code
 * (ep_services_init / ep_services_apply / ep_services_drain) from a config
 * built by hand. Packets are crafted here with correct checksums; every
 * rewritten packet is checked by recomputing the IPv4 header checksum and the
 * full L4 checksum (pseudo header included) over the output, and the backend
 * it went to is predicted independently: ep_flow_hash() -> slot -> the
 * installed Maglev ring -> ep_backends.
 *
 * The test runs in a fresh network namespace so that bpf_fib_lookup() never
 * finds a route (redirect mode must then fall back to the stack).
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
#include "svc_cfg.h"
#include "tap.h"
#include "xdp_lb.skel.h"

/* ==== the datapath under test ============================================ */

static struct xdp_lb *skel;
static struct ep_map_fds fds;
static struct ep_services svcs;
static int prog_fd, ncpu;

static const char *drop_names[] = EP_DROP_NAMES;

static struct bpf_run R; /* the last run */
static struct parsed Rp; /* R.out parsed */

static int xdp_run(const uint8_t *in, size_t len)
{
	bpf_run(prog_fd, in, len, &R);
	parse_frame(R.out, R.outlen, &Rp);
	return R.err;
}

static const char *verdict_str(int v)
{
	return bpf_run_xdp_str(v);
}

static void read_drops(uint64_t out[EP_DROP_MAX])
{
	for (uint32_t r = 0; r < EP_DROP_MAX; r++) {
		struct ep_drop_stats v;

		bpf_run_percpu_sum(fds.drops, &r, &v, sizeof(v));
		out[r] = v.packets;
	}
}

static uint64_t drops_snap[EP_DROP_MAX];

static void drops_mark(void)
{
	read_drops(drops_snap);
}

/* Did exactly drops[reason] grow by n (reason < 0: nothing grew)? */
static bool drops_delta_only(int reason, uint64_t n, char *why, size_t wl)
{
	uint64_t now[EP_DROP_MAX];
	bool ok = true;
	size_t w = 0;

	read_drops(now);
	why[0] = 0;
	for (int r = 0; r < EP_DROP_MAX; r++) {
		uint64_t want = r == reason ? n : 0, got = now[r] - drops_snap[r];

		if (got != want) {
			ok = false;
			w += (size_t)snprintf(why + w, w < wl ? wl - w : 0, "drops[%s] +%llu (want +%llu) ",
					      drop_names[r], (unsigned long long)got,
					      (unsigned long long)want);
		}
	}
	return ok;
}

static bool ct_get(const struct ep_flow_key *k, struct ep_ct_entry *ct)
{
	return ep_ct_get(&fds.ct, k, ct) == 0;
}

/* The backend the Maglev ring installed for this flow's service names. */
struct pred {
	bool ok;
	uint32_t svc_id, table_size, slot, bid;
	struct ep_backend be;
	char why[128];
};

static struct pred predict(const struct ep_flow_key *k)
{
	struct pred p;
	struct ep_endpoint sk;
	struct ep_service svc;
	uint32_t idx, inner_id;
	int inner;

	memset(&p, 0, sizeof(p));
	memset(&sk, 0, sizeof(sk));
	memcpy(sk.addr, k->dst, sizeof(sk.addr));
	sk.port = k->dport;
	sk.proto = k->proto;
	sk.family = k->family;
	if (bpf_map_lookup_elem(fds.services, &sk, &svc)) {
		snprintf(p.why, sizeof(p.why), "no ep_services entry");
		return p;
	}
	p.svc_id = svc.id;
	p.table_size = svc.table_size;
	if (!svc.table_size) {
		snprintf(p.why, sizeof(p.why), "table_size 0");
		return p;
	}
	p.slot = ep_flow_hash(k) % svc.table_size;
	idx = svc.id * EP_RINGS_PER_SVC + EP_RING_STABLE;
	if (bpf_map_lookup_elem(fds.maglev, &idx, &inner_id)) {
		snprintf(p.why, sizeof(p.why), "no ring at ep_rings[%u]", idx);
		return p;
	}
	inner = bpf_map_get_fd_by_id(inner_id);
	if (inner < 0) {
		snprintf(p.why, sizeof(p.why), "ring map id %u: %s", inner_id, strerror(errno));
		return p;
	}
	{
		struct ep_ring_chunk chunk;
		__u32 c = p.slot / EP_RING_CHUNK_SLOTS;

		if (bpf_map_lookup_elem(inner, &c, &chunk) ||
		    !(p.bid = chunk.backend_id[p.slot % EP_RING_CHUNK_SLOTS])) {
			snprintf(p.why, sizeof(p.why), "ring slot %u empty", p.slot);
			close(inner);
			return p;
		}
	}
	close(inner);
	if (bpf_map_lookup_elem(fds.backends, &p.bid, &p.be) || !(p.be.flags & EP_BE_F_VALID)) {
		snprintf(p.why, sizeof(p.why), "backend %u not valid", p.bid);
		return p;
	}
	p.ok = true;
	return p;
}

static struct ep_ip be_ip(const struct ep_backend *be)
{
	struct ep_ip ip;

	memset(&ip, 0, sizeof(ip));
	ip.family = be->family;
	memcpy(ip.addr, be->addr, sizeof(ip.addr));
	return ip;
}

/* Outcome of sending one client packet of a flow. */
struct outcome {
	int err;
	uint32_t verdict;
	struct pred pred;	/* Maglev prediction (before the packet) */
	bool rewritten_ok;	/* output == the same packet sent to where it went (only dst
				 * address, dst port and checksums differ) */
	bool csum_ok;		/* IPv4 header + full L4 checksum valid */
	bool src_ok;		/* source address and port untouched */
	struct ep_ip went;	/* destination after the rewrite */
	uint16_t went_port;
	uint8_t out[FRAME_MAX]; /* the first packet as XDP left it */
	size_t outlen;
	bool ct_after_first; /* a conntrack entry right after the first packet */
	bool ct_found;	     /* ... after the handshake's ACK too (TCP) */
	struct ep_ct_entry ct;
	uint8_t ttl;
};

static bool went_to(const struct outcome *o, const struct ep_backend *be)
{
	return ip_eq_raw(&o->went, be->addr, be->family) && o->went_port == ntohs(be->port);
}

static bool ct_matches(const struct outcome *o)
{
	return o->ct_found && ip_eq_raw(&o->went, o->ct.baddr, o->went.family) &&
	       ntohs(o->ct.bport) == o->went_port;
}

/* The next packet of f: a SYN (TCP) or the first datagram (UDP) when the
 * flow does not exist yet and then, for TCP when handshake is set, the
 * client's ACK completing the handshake, which creates the entry; an ACK
 * (TCP) when it exists (a SYN would be a new connection). */
static struct outcome send_flow_hs(const struct flow *f, int nvlan, bool qinq, size_t payload,
				   bool handshake)
{
	uint8_t in[FRAME_MAX], exp[FRAME_MAX];
	struct ep_flow_key k = flow_key(f);
	struct ep_ct_entry ct0;
	uint8_t flags = TCP_SYN;
	struct outcome o;
	size_t n, en;

	memset(&o, 0, sizeof(o));
	if (f->proto == P_TCP && ct_get(&k, &ct0)) {
		flags = TCP_ACK;
		handshake = false;
	}
	n = pkt_between(in, &f->client, f->cport, &f->vip, f->vport, f->proto, flags, nvlan, qinq,
			payload);
	o.pred = predict(&k);
	o.err = xdp_run(in, n);
	o.verdict = R.verdict;
	o.outlen = R.outlen < sizeof(o.out) ? R.outlen : sizeof(o.out);
	memcpy(o.out, R.out, o.outlen);
	if (o.err || !Rp.ok)
		return o;
	o.went = Rp.dst;
	o.went_port = Rp.dport;
	o.ttl = Rp.ttl;
	o.csum_ok = Rp.ip_csum_ok && Rp.l4_csum_ok;
	o.src_ok = ip_eq_raw(&f->client, Rp.src.addr, Rp.family) && Rp.sport == f->cport;
	en = pkt_between(exp, &f->client, f->cport, &o.went, o.went_port, f->proto, flags, nvlan,
			 qinq, payload);
	o.rewritten_ok = same_but_csums(R.out, R.outlen, exp, en);
	o.ct_after_first = ct_get(&k, &o.ct);
	if (f->proto == P_TCP && handshake) {
		n = flow_ack_pkt(in, f);
		xdp_run(in, n);
		if (R.verdict != XDP_PASS || !Rp.ok || !ip_eq_raw(&o.went, Rp.dst.addr, Rp.family) ||
		    Rp.dport != o.went_port)
			tap_diag("  handshake ACK: verdict %d, not sent where the SYN went", R.verdict);
	}
	o.ct_found = ct_get(&k, &o.ct);
	return o;
}

static struct outcome send_flow(const struct flow *f, int nvlan, bool qinq, size_t payload)
{
	return send_flow_hs(f, nvlan, qinq, payload, true);
}

static void diag_outcome(const struct flow *f, const struct outcome *o)
{
	tap_diag("  flow %s:%u -> %s:%u/%u: err %d verdict %s went %s:%u ttl %u", ipstr(&f->client),
		 f->cport, ipstr(&f->vip), f->vport, f->proto, o->err, verdict_str(o->verdict),
		 ipstr(&o->went), o->went_port, o->ttl);
	if (o->pred.ok) {
		struct ep_ip pb = be_ip(&o->pred.be);

		tap_diag("  predicted: svc %u slot %u/%u backend %u = %s:%u", o->pred.svc_id,
			 o->pred.slot, o->pred.table_size, o->pred.bid, ipstr(&pb),
			 ntohs(o->pred.be.port));
	} else {
		tap_diag("  prediction failed: %s", o->pred.why);
	}
	tap_diag("  rewritten_ok %d csum_ok %d src_ok %d ct_found %d ct.backend_id %u",
		 o->rewritten_ok, o->csum_ok, o->src_ok, o->ct_found, o->ct.backend_id);
}

/* ==== config ============================================================= */

/* A table's seed and bucket count, as BPF reads them off the map. */
static void ct_table_params(int fd, uint32_t *seed, uint32_t *n)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	bpf_obj_get_info_by_fd(fd, &info, &len);
	*seed = info.id;
	*n = info.max_entries;
}

static uint32_t ct_bucket4(int fd, const struct ep_flow_key *k)
{
	struct ep_flow_key4 k4 = {.src = k->src[0], .dst = k->dst[0], .sport = k->sport,
				  .dport = k->dport};
	uint32_t seed, n;

	ct_table_params(fd, &seed, &n);
	return ep_ct_index(ep_ct_hash4(&k4), seed, n);
}

/*
 * The conntrack table's rules as XDP applies them: a key in a slot that a
 * writer owns (odd seq) is a miss, not an entry; a flow recorded into a full
 * bucket takes the least recently seen slot, and the others keep theirs.
 */
static void test_ct_table(void)
{
	struct flow f = mkflow("198.51.100.150", 45000, "10.0.0.100", 80, P_TCP);
	struct ep_flow_key k = flow_key(&f);
	struct outcome o = send_flow(&f, 0, false, 0);
	struct ep_ct_entry ct = o.ct, e;
	struct ep_ip far = IP("192.0.2.250");
	uint8_t in[FRAME_MAX];
	uint32_t seed, nb, b;
	struct ep_ct_bucket4 *t;
	struct ep_ct_slot4 *slot = NULL;
	size_t len, n;

	if (!tap_ok(o.ct_found, "ct table: a TCP flow recorded by its handshake"))
		return;
	/* The entry, pointed elsewhere, tells a hit from Maglev's choice. */
	ct.baddr[0] = far.addr[0];
	ct.bport = htons(9999);
	ep_ct_put(&fds.ct, &k, &ct);
	n = flow_ack_pkt(in, &f);
	xdp_run(in, n);
	tap_ok(R.verdict == XDP_PASS && Rp.ok && ip_eq_raw(&far, Rp.dst.addr, Rp.family) && Rp.dport == 9999,
	       "ct table: the client's next packet follows the entry");
	ct_table_params(fds.ct.v4, &seed, &nb);
	len = (size_t)nb * sizeof(*t);
	t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds.ct.v4, 0);
	if (!tap_ok(t != MAP_FAILED, "ct table: the IPv4 TCP table maps into the test"))
		return;
	b = ct_bucket4(fds.ct.v4, &k);
	for (int w = 0; w < EP_CT_WAYS; w++)
		if (t[b].way[w].key.src == k.src[0] && t[b].way[w].key.sport == k.sport)
			slot = &t[b].way[w];
	if (tap_ok(slot != NULL, "ct table: the flow's slot is in the bucket its hash names")) {
		slot->seq++;
		n = flow_ack_pkt(in, &f);
		xdp_run(in, n);
		tap_ok(R.verdict == XDP_PASS && Rp.ok && ip_eq_raw(&o.went, Rp.dst.addr, Rp.family) &&
			       Rp.dport == o.went_port,
		       "ct table: while a writer owns the slot (odd seq) the entry is not read: the "
		       "packet goes where Maglev says");
		slot->seq++;
		n = flow_ack_pkt(in, &f);
		xdp_run(in, n);
		tap_ok(R.verdict == XDP_PASS && Rp.ok && ip_eq_raw(&far, Rp.dst.addr, Rp.family),
		       "ct table: released, the entry is followed again");
	}
	munmap(t, len);
	ep_ct_put(&fds.ct, &k, &o.ct);

	/* Five UDP flows to 10.0.0.100:53 sharing one bucket: four recorded
	 * with ages, the fifth's first datagram through XDP. */
	struct ep_dp_config c = {0};
	struct flow uf[5];
	struct ep_flow_key uk[5];
	const uint32_t idle[4] = {5, 30, 1, 12};
	uint32_t want = 0, zero = 0;
	int got = 0, kept = 0;

	bpf_map_lookup_elem(fds.config, &zero, &c);
	for (uint32_t i = 0; i < 256 * 60000 && got < 5; i++) {
		char src[32];

		snprintf(src, sizeof(src), "198.18.1.%u", i % 256);
		uf[got] = mkflow(src, (uint16_t)(2000 + i / 256), "10.0.0.100", 53, P_UDP);
		uk[got] = flow_key(&uf[got]);
		b = ct_bucket4(fds.ct.u4, &uk[got]);
		if (!got)
			want = b;
		if (b == want)
			got++;
	}
	if (!tap_ok(got == 5, "ct table: five UDP flows sharing a bucket"))
		return;
	for (int i = 0; i < 4; i++) {
		struct ep_ct_entry v = o.ct;

		v.backend_id = o.ct.backend_id;
		v.last_seen_s = c.now_s - idle[i];
		v.isn = (uint32_t)i;
		ep_ct_put(&fds.ct, &uk[i], &v);
	}
	n = flow_pkt(in, &uf[4], 0, false, 8);
	xdp_run(in, n);
	tap_ok(R.verdict == XDP_PASS && ct_get(&uk[4], &e),
	       "ct table: a first datagram into a full bucket is recorded");
	tap_ok(!ct_get(&uk[1], &e), "ct table: ... in the least recently seen slot (idle 30 s)");
	for (int i = 0; i < 4; i++)
		kept += i != 1 && ct_get(&uk[i], &e) && e.isn == (uint32_t)i;
	tap_ok(kept == 3, "ct table: the other three flows keep their entries (%d)", kept);

	/* XDP marks the bucket it recorded a flow in (ep_ct_used), the mark
	 * the agent's GC pass goes by. */
	{
		struct flow mf = mkflow("198.18.2.1", 3000, "10.0.0.100", 53, P_UDP);
		struct ep_flow_key mk = flow_key(&mf);
		uint32_t mb = ct_bucket4(fds.ct.u4, &mk);
		uint32_t w = EP_CT_TABLE_CTU4 * EP_CT_USED_WORDS + mb / 64;
		__u64 word = 0, zero64 = 0;

		bpf_map_update_elem(fds.ct.used, &w, &zero64, BPF_ANY);
		n = flow_pkt(in, &mf, 0, false, 8);
		xdp_run(in, n);
		bpf_map_lookup_elem(fds.ct.used, &w, &word);
		tap_ok(R.verdict == XDP_PASS && ct_get(&mk, &e) && (word & (1ULL << (mb % 64))),
		       "ct table: recording a flow marks its bucket in ep_ct_used (word 0x%llx, bit %u)",
		       (unsigned long long)word, mb % 64);
	}
}

static struct ep_config cfg;

static int apply(void)
{
	char err[512] = "";
	int rc = ep_services_apply(&svcs, &cfg, err, sizeof(err));

	if (rc)
		tap_diag("ep_services_apply: %d: %s", rc, err);
	return rc;
}

static int drain(const char *svc, const char *be, bool on)
{
	char err[512] = "";
	int rc = ep_services_drain(&svcs, svc, be, on, err, sizeof(err));

	if (rc)
		tap_diag("ep_services_drain(%s, %s, %d): %d: %s", svc, be, on, rc, err);
	return rc;
}

/* Backend id of service `svc` at addr:port, from the agent's state. */
static uint32_t be_id(const char *svc, const char *addr, uint16_t port)
{
	const struct ep_svc_state *st = ep_services_find(&svcs, svc);
	struct ep_ip ip = IP(addr);

	for (size_t j = 0; st && j < st->n_bes; j++)
		if (ep_ip_eq(&st->bes[j].addr, &ip) && st->bes[j].port == port)
			return st->bes[j].id;
	return 0;
}

static void build_config(void)
{
	struct ep_cfg_service *s;

	svc_cfg_reset(&cfg, 16381);

	svc_cfg_add_web_dns(&cfg);
	s = svc_cfg_add(&cfg, "weight0", "10.0.0.100", 81, P_TCP);
	svc_cfg_add_be(s, "10.1.0.31", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.32", 8080, 0);
	s = svc_cfg_add(&cfg, "allzero", "10.0.0.100", 82, P_TCP);
	svc_cfg_add_be(s, "10.1.0.33", 8080, 0);
	svc_cfg_add_be(s, "10.1.0.34", 8080, 0);
	s = svc_cfg_add(&cfg, "drainall", "10.0.0.100", 83, P_TCP);
	svc_cfg_add_be(s, "10.1.0.35", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.36", 8080, 1);
	s = svc_cfg_add(&cfg, "drain", "10.0.0.100", 84, P_TCP);
	svc_cfg_add_be(s, "10.1.0.41", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.42", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.43", 8080, 1);
	s = svc_cfg_add(&cfg, "spread", "10.0.0.100", 85, P_TCP);
	svc_cfg_add_be(s, "10.1.0.51", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.52", 8080, 2);
	svc_cfg_add_be(s, "10.1.0.53", 8080, 3);
}

/* ==== assertion helpers ================================================== */

static void expect_drop(const char *name, const uint8_t *in, size_t len, int reason)
{
	char why[512];
	bool ok;

	drops_mark();
	xdp_run(in, len);
	ok = R.err == 0 && R.verdict == XDP_DROP;
	ok = drops_delta_only(reason, 1, why, sizeof(why)) && ok;
	if (!tap_ok(ok, "%s: XDP_DROP, ep_drops[%s] +1 (and no other reason)", name,
		    drop_names[reason]))
		tap_diag("  err %d verdict %s; %s", R.err, verdict_str(R.verdict), why);
}

static void expect_pass_unchanged(const char *name, const uint8_t *in, size_t len)
{
	char why[512];
	bool ok;

	drops_mark();
	xdp_run(in, len);
	ok = R.err == 0 && R.verdict == XDP_PASS && R.outlen == len && !memcmp(R.out, in, len);
	ok = drops_delta_only(-1, 0, why, sizeof(why)) && ok;
	if (!tap_ok(ok, "%s: XDP_PASS, bytes unchanged, nothing counted as dropped", name))
		tap_diag("  err %d verdict %s outlen %zu/%zu %s", R.err, verdict_str(R.verdict),
			 R.outlen, len, why);
}

/* The full first-packet check of one flow: rewrite, checksums, conntrack, stats. */
static void check_new_flow(const char *name, const struct flow *f, int nvlan, bool qinq,
			   size_t payload)
{
	uint8_t in[FRAME_MAX];
	size_t n = flow_pkt(in, f, nvlan, qinq, payload);
	struct ep_flow_key k = flow_key(f);
	struct pred p = predict(&k);
	struct ep_backend_stats before = {0}, after;
	struct ep_ip pb = be_ip(&p.be);
	struct outcome o;
	bool ok;

	if (p.ok)
		before = backend_stats_read(fds.backend_stats, p.bid, ncpu);
	o = send_flow_hs(f, nvlan, qinq, payload, false);
	ok = o.err == 0 && o.verdict == XDP_PASS && p.ok && went_to(&o, &p.be) && o.rewritten_ok &&
	     o.src_ok && o.csum_ok;
	if (!tap_ok(ok, "%s: XDP_PASS, dst rewritten to the predicted backend %s:%u (slot %u of %u), "
			"src untouched, IPv4 header (if any) + full L4 checksums valid",
		    name, p.ok ? ipstr(&pb) : "?", ntohs(p.be.port), p.slot, p.table_size))
		diag_outcome(f, &o);
	after = backend_stats_read(fds.backend_stats, p.bid, ncpu);
	/* A SYN is balanced without a conntrack entry; the handshake's ACK
	 * creates it. A UDP flow's first datagram creates it at once. */
	if (f->proto == P_TCP) {
		uint8_t ack[FRAME_MAX];
		size_t an = flow_ack_pkt(ack, f);

		tap_ok(o.ct_after_first == false && after.packets - before.packets == 1 &&
			       after.bytes - before.bytes == n && after.flows == before.flows,
		       "%s: the SYN leaves no conntrack entry; ep_backend_stats[%u] +1 packet, +%zu "
		       "bytes, no flow yet",
		       name, p.bid, n);
		before = after;
		xdp_run(ack, an);
		o.ct_found = ct_get(&k, &o.ct);
		n = an;
		after = backend_stats_read(fds.backend_stats, p.bid, ncpu);
	}
	ok = o.ct_found && o.ct.backend_id == p.bid && ct_matches(&o);
	if (!tap_ok(ok, "%s: conntrack entry -> backend id %u (%s:%u)%s", name, p.bid,
		    ipstr(&o.went), o.went_port, f->proto == P_TCP ? ", created by the handshake's ACK" : ""))
		diag_outcome(f, &o);
	ok = after.packets - before.packets == 1 && after.bytes - before.bytes == n &&
	     after.flows - before.flows == 1;
	if (!tap_ok(ok, "%s: ep_backend_stats[%u] (sum over %d CPUs) +1 packet, +%zu bytes, +1 flow",
		    name, p.bid, ncpu, n))
		tap_diag("  delta packets %llu bytes %llu flows %llu",
			 (unsigned long long)(after.packets - before.packets),
			 (unsigned long long)(after.bytes - before.bytes),
			 (unsigned long long)(after.flows - before.flows));
}

/* ==== test groups ======================================================== */

static size_t icmp_err_frame(uint8_t *frame, const struct ep_ip *router, const struct ep_ip *to,
			     const struct ep_ip *qsrc, uint16_t qsport, const struct ep_ip *qdst,
			     uint16_t qdport, uint8_t qproto);

/* A UDP datagram whose checksum after the rewrite computes to 0 must carry
 * 0xffff (RFC 768; for IPv6 a 0 would even make the packet invalid). */
static void check_udp_zero_result(const char *name, const char *client, const char *vip)
{
	struct flow f = mkflow(client, 40020, vip, 53, P_UDP);
	struct ep_flow_key k = flow_key(&f);
	struct pred p = predict(&k);
	uint8_t l4[64], l3[128], in[FRAME_MAX];
	struct ep_ip bip = be_ip(&p.be);
	uint16_t x;
	size_t n4, n3, n;
	bool ok;

	if (!p.ok) {
		tap_ok(0, "%s: prediction failed: %s", name, p.why);
		return;
	}
	x = udp_zero_csum_word(&f.client, f.cport, &bip, ntohs(p.be.port), 16);
	n4 = mk_udp(l4, f.cport, f.vport, 16);
	put16(l4 + 8, x);
	n3 = mk_ip(l3, &f.client, &f.vip, P_UDP, l4, n4, NULL);
	n = mk_eth(in, 0, false, ethertype_of(f.vip.family), l3, n3);
	xdp_run(in, n);
	ok = R.verdict == XDP_PASS && Rp.ok && ip_eq_raw(&bip, Rp.dst.addr, Rp.family) &&
	     Rp.l4_csum_ok && Rp.ip_csum_ok && get16(R.out + Rp.l4off + 6) == 0xffff;
	if (!tap_ok(ok, "%s: balanced, UDP checksum computing to 0 is sent as 0xffff", name))
		tap_diag("  verdict %s csum field 0x%04x l4 ok %d", verdict_str(R.verdict),
			 Rp.ok ? get16(R.out + Rp.l4off + 6) : 0, Rp.l4_csum_ok);
}

static void test_basic(void)
{
	struct flow f4t = mkflow("198.51.100.10", 40000, "10.0.0.100", 80, P_TCP);
	struct flow f4u = mkflow("198.51.100.10", 40001, "10.0.0.100", 53, P_UDP);
	struct flow f6t = mkflow("2001:db8::10", 40002, "fd00::100", 80, P_TCP);
	struct flow f6u = mkflow("2001:db8::10", 40003, "fd00::100", 53, P_UDP);

	check_new_flow("IPv4 TCP SYN", &f4t, 0, false, 0);
	check_new_flow("IPv4 UDP", &f4u, 0, false, 32);
	check_new_flow("IPv6 TCP SYN", &f6t, 0, false, 0);
	check_new_flow("IPv6 UDP", &f6u, 0, false, 32);

	/* The checker itself: a flipped bit anywhere must be caught. */
	{
		uint8_t in[FRAME_MAX];
		size_t n = flow_pkt(in, &f4t, 0, false, 16);
		struct parsed p0, p1, p2, p3;

		parse_frame(in, n, &p0);
		in[n - 3] ^= 0x10; /* payload */
		parse_frame(in, n, &p1);
		in[n - 3] ^= 0x10;
		in[14 + 16] ^= 0x01; /* IPv4 destination: both checksums break */
		parse_frame(in, n, &p2);
		in[14 + 16] ^= 0x01;
		n = flow_pkt(in, &f6u, 0, false, 16);
		in[14 + 8] ^= 0x80; /* IPv6 source: pseudo header */
		parse_frame(in, n, &p3);
		tap_ok(p0.ok && p0.ip_csum_ok && p0.l4_csum_ok && !p1.l4_csum_ok && p1.ip_csum_ok &&
			       !p2.ip_csum_ok && !p2.l4_csum_ok && p3.ok && !p3.l4_csum_ok,
		       "checksum checker self-test: crafted frames verify, a flipped bit in payload, "
		       "IPv4 address or IPv6 address is caught");
	}

	/* A second packet of an established flow: conntrack hit, no new flow. */
	{
		struct ep_flow_key k = flow_key(&f4t);
		struct ep_ct_entry ct;
		struct ep_backend_stats b0, b1;
		struct outcome o;
		bool ok = ct_get(&k, &ct);

		b0 = backend_stats_read(fds.backend_stats, ct.backend_id, ncpu);
		o = send_flow(&f4t, 0, false, 100);
		b1 = backend_stats_read(fds.backend_stats, ct.backend_id, ncpu);
		ok = ok && o.verdict == XDP_PASS && o.ct.backend_id == ct.backend_id &&
		     ct_matches(&o) && o.rewritten_ok && o.csum_ok && b1.packets - b0.packets == 1 &&
		     b1.flows == b0.flows;
		if (!tap_ok(ok, "IPv4 TCP second packet (100 B payload): same backend, checksums valid, "
				"+1 packet, flows unchanged"))
			diag_outcome(&f4t, &o);
	}

	/* Odd payload length (checksum of a trailing byte) and an Ethernet pad
	 * after the IP packet (frames shorter than 60 bytes are padded). */
	{
		struct flow f = mkflow("198.51.100.11", 40010, "10.0.0.100", 53, P_UDP);
		struct outcome o = send_flow(&f, 0, false, 13);
		struct ep_flow_key k = flow_key(&f);
		struct pred p = predict(&k);

		if (!tap_ok(o.verdict == XDP_PASS && o.csum_ok && o.rewritten_ok && o.ct_found &&
				    o.ct.backend_id == o.pred.bid && (p.ok && went_to(&o, &p.be)),
			    "IPv4 UDP with odd payload length (13 B): balanced, checksums valid"))
			diag_outcome(&f, &o);
	}
	{
		struct flow f = mkflow("198.51.100.12", 40011, "10.0.0.100", 53, P_UDP);
		uint8_t in[FRAME_MAX];
		size_t n = flow_pkt(in, &f, 0, false, 2); /* 14 + 20 + 8 + 2 = 44 B */
		struct ep_flow_key k = flow_key(&f);
		struct pred p = predict(&k);
		bool ok;

		memset(in + n, 0xee, 60 - n);
		xdp_run(in, 60);
		ok = R.verdict == XDP_PASS && R.outlen == 60 && Rp.ok && p.ok &&
		     ip_eq_raw(&Rp.dst, p.be.addr, p.be.family) && Rp.dport == ntohs(p.be.port) &&
		     Rp.ip_csum_ok && Rp.l4_csum_ok && R.out[59] == 0xee && R.out[n] == 0xee;
		if (!tap_ok(ok, "IPv4 UDP in a frame padded to 60 bytes: balanced, checksums valid, "
				"padding preserved"))
			tap_diag("  verdict %s outlen %zu ip %d l4 %d", verdict_str(R.verdict),
				 R.outlen, Rp.ip_csum_ok, Rp.l4_csum_ok);
	}
	check_udp_zero_result("IPv4 UDP, rewritten checksum 0", "198.51.100.14", "10.0.0.100");
	check_udp_zero_result("IPv6 UDP, rewritten checksum 0", "2001:db8::14", "fd00::100");
	/* IPv4 UDP without checksum (allowed by RFC 768): stays without one. */
	{
		struct flow f = mkflow("198.51.100.13", 40012, "10.0.0.100", 53, P_UDP);
		uint8_t l4[64], l3[128], in[FRAME_MAX];
		struct ipopt io = {.no_l4_csum = true};
		size_t n4 = mk_udp(l4, f.cport, f.vport, 16), n3, n;
		struct ep_flow_key k = flow_key(&f);
		struct pred p = predict(&k);
		bool ok;

		n3 = mk_ip(l3, &f.client, &f.vip, P_UDP, l4, n4, &io);
		n = mk_eth(in, 0, false, 0x0800, l3, n3);
		xdp_run(in, n);
		ok = R.verdict == XDP_PASS && Rp.ok && p.ok &&
		     ip_eq_raw(&Rp.dst, p.be.addr, p.be.family) && Rp.dport == ntohs(p.be.port) &&
		     Rp.ip_csum_ok && Rp.udp_nocsum;
		if (!tap_ok(ok, "IPv4 UDP with checksum 0 (none): balanced, IPv4 checksum valid, UDP "
				"checksum stays 0"))
			tap_diag("  verdict %s ip %d udp_nocsum %d", verdict_str(R.verdict),
				 Rp.ip_csum_ok, Rp.udp_nocsum);
	}
}

static void test_conntrack_wins(void)
{
	struct flow f = mkflow("198.51.100.20", 41000, "10.0.0.100", 80, P_TCP);
	struct ep_cfg_service *s = svc_cfg_find(&cfg, "web4");
	struct outcome o1, o2;
	struct ep_backend be;
	uint32_t bid, hits = 0, bad = 0, mispred = 0;
	size_t bi = 0;
	char label[64];

	o1 = send_flow(&f, 0, false, 0);
	bid = o1.ct.backend_id;
	if (!tap_ok(o1.verdict == XDP_PASS && o1.ct_found && bid && o1.pred.ok && o1.pred.bid == bid,
		    "conntrack: first packet of the flow balanced to backend %u (as predicted)", bid))
		diag_outcome(&f, &o1);
	bpf_map_lookup_elem(fds.backends, &bid, &be);
	for (bi = 0; bi < s->n_backends; bi++)
		if (ip_eq_raw(&s->backends[bi].addr, be.addr, be.family))
			break;
	if (bi == s->n_backends) {
		tap_ok(0, "conntrack: backend of the flow not found in the config");
		return;
	}
	snprintf(label, sizeof(label), "%s:8080", ipstr(&s->backends[bi].addr));

	/* (a) its weight goes to 0 */
	s->backends[bi].weight = 0;
	tap_ok(apply() == 0, "conntrack: config re-applied with %s weight 0", label);
	o2 = send_flow(&f, 0, false, 10);
	if (!tap_ok(o2.verdict == XDP_PASS && went_to(&o2, &be) && o2.rewritten_ok && o2.csum_ok,
		    "conntrack wins over the new ring: same flow still goes to %s (weight 0 now)",
		    label))
		diag_outcome(&f, &o2);
	for (int i = 0; i < 500; i++) {
		struct flow g = mkflow("198.51.100.21", (uint16_t)(20000 + i), "10.0.0.100", 80, P_TCP);
		struct outcome o = send_flow(&g, 0, false, 0);

		if (o.verdict != XDP_PASS || !o.rewritten_ok)
			bad++;
		if (went_to(&o, &be))
			hits++;
		if (!o.pred.ok || !went_to(&o, &o.pred.be))
			mispred++;
	}
	if (!tap_ok(hits == 0 && bad == 0 && mispred == 0,
		    "weight 0: 500 new flows never reach %s (all balanced as predicted)", label))
		tap_diag("  to weight-0 backend %u, bad %u, mispredicted %u", hits, bad, mispred);

	/* (b) it leaves the config altogether */
	s->backends[bi].weight = 1;
	{
		struct ep_cfg_backend saved = s->backends[bi];

		s->backends[bi] = s->backends[s->n_backends - 1];
		s->n_backends--;
		tap_ok(apply() == 0, "conntrack: config re-applied without %s", label);
		o2 = send_flow(&f, 0, false, 10);
		if (!tap_ok(o2.verdict == XDP_PASS && went_to(&o2, &be) && o2.rewritten_ok &&
				    o2.csum_ok,
			    "conntrack wins after removal: the flow still goes to removed %s", label))
			diag_outcome(&f, &o2);
		hits = bad = mispred = 0;
		for (int i = 0; i < 500; i++) {
			struct flow g = mkflow("198.51.100.22", (uint16_t)(20000 + i), "10.0.0.100",
					       80, P_TCP);
			struct outcome o = send_flow(&g, 0, false, 0);

			if (o.verdict != XDP_PASS || !o.rewritten_ok)
				bad++;
			if (went_to(&o, &be))
				hits++;
			if (!o.pred.ok || !went_to(&o, &o.pred.be))
				mispred++;
		}
		if (!tap_ok(hits == 0 && bad == 0 && mispred == 0,
			    "removed backend: 500 new flows never reach %s", label))
			tap_diag("  to removed backend %u, bad %u, mispredicted %u", hits, bad,
				 mispred);
		/* restore the original order */
		s->backends[s->n_backends] = s->backends[bi];
		s->backends[bi] = saved;
		s->n_backends++;
		tap_ok(apply() == 0 && be_id("web4", ipstr(&saved.addr), 8080) == bid,
		       "conntrack: backend re-added to the config keeps its id %u", bid);
	}
}

static void test_not_ours(void)
{
	uint8_t in[FRAME_MAX], l4[256], l3[512];
	size_t n, n4, n3;
	struct ep_flow_key k;
	struct ep_ct_entry ct;

	/* Not a VIP at all. */
	{
		struct flow f = mkflow("198.51.100.30", 42000, "10.0.0.99", 80, P_TCP);

		n = flow_pkt(in, &f, 0, false, 0);
		expect_pass_unchanged("non-VIP IPv4 destination 10.0.0.99:80", in, n);
		f = mkflow("2001:db8::30", 42000, "fd00::99", 80, P_TCP);
		n = flow_pkt(in, &f, 0, false, 0);
		expect_pass_unchanged("non-VIP IPv6 destination [fd00::99]:80", in, n);
		/* a backend address is no VIP either */
		f = mkflow("198.51.100.30", 42000, "10.1.0.11", 8080, P_TCP);
		n = flow_pkt(in, &f, 0, false, 0);
		expect_pass_unchanged("packet to a backend address 10.1.0.11:8080", in, n);
	}
	/* VIP address, another port / protocol. */
	{
		struct flow f = mkflow("198.51.100.31", 42001, "10.0.0.100", 8443, P_TCP);

		n = flow_pkt(in, &f, 0, false, 0);
		expect_pass_unchanged("VIP 10.0.0.100, TCP port 8443 (no service)", in, n);
		k = flow_key(&f);
		tap_ok(!ct_get(&k, &ct), "VIP, unknown port: no conntrack entry created");

		f = mkflow("198.51.100.31", 42002, "10.0.0.100", 80, P_UDP);
		n = flow_pkt(in, &f, 0, false, 8);
		expect_pass_unchanged("VIP 10.0.0.100, UDP to TCP-only port 80", in, n);
		k = flow_key(&f);
		tap_ok(!ct_get(&k, &ct), "VIP, UDP to TCP-only port: no conntrack entry created");

		f = mkflow("2001:db8::31", 42003, "fd00::100", 8443, P_TCP);
		n = flow_pkt(in, &f, 0, false, 0);
		expect_pass_unchanged("VIP fd00::100, TCP port 8443 (no service)", in, n);

		f = mkflow("198.51.100.31", 42004, "10.0.0.100", 53, P_TCP);
		n = flow_pkt(in, &f, 0, false, 0);
		expect_pass_unchanged("VIP 10.0.0.100, TCP to UDP-only port 53", in, n);
	}
	{
		struct ep_ip c = IP("198.51.100.32"), v = IP("10.0.0.100");
		struct ep_ip c6 = IP("2001:db8::32"), v6 = IP("fd00::100");

		n4 = mk_icmp_echo(l4, EP_FAMILY_V4, 32);
		n3 = mk_ip(l3, &c, &v, P_ICMP, l4, n4, NULL);
		n = mk_eth(in, 0, false, 0x0800, l3, n3);
		expect_pass_unchanged("ICMP echo request to the VIP", in, n);

		n4 = mk_icmp_echo(l4, EP_FAMILY_V6, 32);
		n3 = mk_ip(l3, &c6, &v6, P_ICMP6, l4, n4, NULL);
		n = mk_eth(in, 0, false, 0x86dd, l3, n3);
		expect_pass_unchanged("ICMPv6 echo request to the IPv6 VIP", in, n);

		/* another L4 protocol (GRE) to the VIP */
		memset(l4, 0, 16);
		n3 = mk_ip(l3, &c, &v, 47, l4, 16, NULL);
		n = mk_eth(in, 0, false, 0x0800, l3, n3);
		expect_pass_unchanged("GRE (protocol 47) to the VIP", in, n);
	}
	/* ARP who-has for the VIP. */
	{
		uint8_t arp[28] = {0, 1, 8, 0, 6, 4, 0, 1};

		memcpy(arp + 8, MAC_SRC, 6);
		arp[14] = 198, arp[15] = 51, arp[16] = 100, arp[17] = 1;
		arp[24] = 10, arp[25] = 0, arp[26] = 0, arp[27] = 100;
		n = mk_eth(in, 0, false, 0x0806, arp, sizeof(arp));
		memset(in, 0xff, 6);
		memset(in + n, 0, 60 - n);
		expect_pass_unchanged("ARP request for the VIP", in, 60);
	}
}

/* Addresses that share a VIP's pre-filter slot (ep_vip_filter says "maybe")
 * but are no VIP: nothing addressed to them may be balanced or dropped. */
static void test_filter_collisions(void)
{
	struct ep_ip vip4 = IP("10.0.0.100"), vip6 = IP("fd00::100"), c4 = {0}, c6;
	uint32_t want4 = ep_vip_filter_slot(vip4.addr, EP_FAMILY_V4);
	uint8_t in[FRAME_MAX], l4[256], l3[512];
	struct ep_ct_entry ct;
	struct ep_flow_key k;
	bool found = false;
	size_t n, n4, n3;
	char name[160];

	for (uint32_t i = 1; i < (1u << 24) && !found; i++) {
		c4.family = EP_FAMILY_V4;
		c4.addr[0] = htonl(0x0a000000u | i); /* 10.0.0.0/8 */
		found = c4.addr[0] != vip4.addr[0] &&
			ep_vip_filter_slot(c4.addr, EP_FAMILY_V4) == want4;
	}
	c6 = IP("fd00:0:0:1:0:1:0:100"); /* words 1 and 2 cancel in the filter's xor */
	if (!tap_ok(found && ep_vip_filter_slot(c6.addr, EP_FAMILY_V6) ==
				     ep_vip_filter_slot(vip6.addr, EP_FAMILY_V6),
		    "pre-filter collisions: %s shares 10.0.0.100's slot, %s shares fd00::100's",
		    ipstr(&c4), ipstr(&c6)))
		return;
	{
		struct flow f = {.client = IP("198.51.100.35"), .vip = c4, .cport = 42100,
				 .vport = 80, .proto = P_TCP};

		n = flow_pkt(in, &f, 0, false, 0);
		snprintf(name, sizeof(name), "TCP SYN to %s:80 (filter collision, no VIP)",
			 ipstr(&c4));
		expect_pass_unchanged(name, in, n);
		k = flow_key(&f);
		tap_ok(!ct_get(&k, &ct), "filter collision: no conntrack entry created");

		put16(in + 14 + 2, get16(in + 14 + 2) + 40);
		ip4_recsum(in + 14);
		snprintf(name, sizeof(name), "truncated IPv4 to %s (filter collision)", ipstr(&c4));
		expect_pass_unchanged(name, in, n);

		n4 = mk_udp(l4, 42101, 53, 32);
		{
			struct ipopt io = {.frag_off = 0x2000};

			n3 = mk_ip(l3, &f.client, &c4, P_UDP, l4, n4, &io);
		}
		n = mk_eth(in, 0, false, 0x0800, l3, n3);
		snprintf(name, sizeof(name), "IPv4 fragment to %s (filter collision)", ipstr(&c4));
		expect_pass_unchanged(name, in, n);

		n = icmp_err_frame(in, &(struct ep_ip){.family = EP_FAMILY_V4,
						       .addr = {htonl(0xc0000201)}},
				   &c4, &c4, 80, &f.client, 42100, P_TCP);
		snprintf(name, sizeof(name), "ICMP error to %s (filter collision)", ipstr(&c4));
		expect_pass_unchanged(name, in, n);
	}
	{
		static const uint8_t hbh[8] = {P_TCP, 0, 1, 4, 0, 0, 0, 0};
		struct ipopt io = {.ext = hbh, .ext_len = 8, .ext_first = 0};
		struct ep_ip cl6 = IP("2001:db8::35");

		n4 = mk_tcp(l4, 42102, 80, TCP_SYN, 0);
		n3 = mk_ip(l3, &cl6, &c6, P_TCP, l4, n4, &io);
		n = mk_eth(in, 0, false, 0x86dd, l3, n3);
		snprintf(name, sizeof(name), "IPv6 hop-by-hop to %s (filter collision)", ipstr(&c6));
		expect_pass_unchanged(name, in, n);
		n3 = mk_ip(l3, &cl6, &c6, P_TCP, l4, n4, NULL);
		n = mk_eth(in, 0, false, 0x86dd, l3, n3);
		snprintf(name, sizeof(name), "IPv6 TCP SYN to %s (filter collision)", ipstr(&c6));
		expect_pass_unchanged(name, in, n);
	}
}

/* ==== single-packet cases: one table ====================================== */
/* Malformed, truncated and refused frames to a VIP, as Katran's fixtures
 * (katran/lib/testing/): each row says what the frame is, builds it, and
 * gives the verdict and the drop counter the program must produce. One loop
 * (test_fixtures) runs every row as one check:
 *   drop_reason EP_DROP_*: XDP_DROP, ep_drops[reason] +1 and no other reason;
 *   drop_reason -1:        XDP_PASS, the bytes unchanged, nothing counted.
 * A row's builder writes the frame and returns its length; .cut runs only
 * its first bytes. Adding a case is one row (and a builder if none fits). */

static uint8_t fx_l4[256], fx_l3[512];

/* The flows the rows use: TCP and UDP to the IPv4 VIP, TCP and UDP to the IPv6 VIP. */
static struct flow fx_tcp4(void) { return mkflow("198.51.100.40", 43000, "10.0.0.100", 80, P_TCP); }
static struct flow fx_udp4(void) { return mkflow("198.51.100.40", 43001, "10.0.0.100", 53, P_UDP); }
static struct flow fx_tcp6(void) { return mkflow("2001:db8::40", 43002, "fd00::100", 80, P_TCP); }
static struct flow fx_udp6(void) { return mkflow("2001:db8::50", 44002, "fd00::100", 53, P_UDP); }

/* A TCP SYN (l4len bytes of it) or a UDP datagram to f's VIP, with IP options. */
static size_t fx_frame(uint8_t *in, const struct flow *f, size_t l4len, const struct ipopt *io)
{
	size_t n3 = mk_ip(fx_l3, &f->client, &f->vip, f->proto, fx_l4, l4len, io);

	return mk_eth(in, 0, false, f->client.family == EP_FAMILY_V4 ? 0x0800 : 0x86dd, fx_l3, n3);
}

/* doff: 0 leaves the header's own (5) */
static size_t fx_syn(uint8_t *in, struct flow f, size_t l4len, uint8_t doff, const struct ipopt *io)
{
	mk_tcp(fx_l4, f.cport, f.vport, TCP_SYN, 0);
	if (doff)
		fx_l4[12] = (uint8_t)(doff << 4);
	return fx_frame(in, &f, l4len, io);
}

/* udp_len: -1 leaves the header's own */
static size_t fx_udp(uint8_t *in, struct flow f, size_t payload, int udp_len, size_t l4len,
		     const struct ipopt *io)
{
	mk_udp(fx_l4, f.cport, f.vport, payload);
	if (udp_len >= 0)
		put16(fx_l4 + 4, (uint16_t)udp_len);
	return fx_frame(in, &f, l4len, io);
}

/* A well-formed first packet of f (untagged), for the rows to cut or edit. */
static size_t fx_pkt(uint8_t *in, struct flow f)
{
	return flow_pkt(in, &f, 0, false, 0);
}

/* -- truncated (rows with .cut run only the first bytes of these) */
static size_t b_tcp4(uint8_t *in) { return fx_pkt(in, fx_tcp4()); }
static size_t b_tcp6(uint8_t *in) { return fx_pkt(in, fx_tcp6()); }
static size_t b_tcp4_vlan(uint8_t *in)
{
	struct flow f = fx_tcp4();

	return flow_pkt(in, &f, 1, false, 0);
}
static size_t b_ip4_totlen_beyond(uint8_t *in)
{
	size_t n = fx_pkt(in, fx_tcp4());

	put16(in + 14 + 2, get16(in + 14 + 2) + 40);
	ip4_recsum(in + 14);
	return n;
}
static size_t b_ip6_plen_beyond(uint8_t *in)
{
	size_t n = fx_pkt(in, fx_tcp6());

	put16(in + 14 + 4, get16(in + 14 + 4) + 40);
	return n;
}
static size_t b_tcp4_cut(uint8_t *in) { return fx_syn(in, fx_tcp4(), 10, 0, NULL); }
static size_t b_tcp4_doff15(uint8_t *in) { return fx_syn(in, fx_tcp4(), 20, 15, NULL); }
static size_t b_tcp6_cut(uint8_t *in) { return fx_syn(in, fx_tcp6(), 12, 0, NULL); }
static size_t b_udp4_cut(uint8_t *in) { return fx_udp(in, fx_udp4(), 0, -1, 4, NULL); }
static size_t b_udp4_len_beyond(uint8_t *in) { return fx_udp(in, fx_udp4(), 8, 40, 16, NULL); }

/* -- malformed */
static size_t b_ip4_ihl4(uint8_t *in)
{
	size_t n = fx_pkt(in, fx_tcp4());

	in[14] = 0x44;
	ip4_recsum(in + 14);
	return n;
}
static size_t b_ip4_totlen16(uint8_t *in)
{
	size_t n = fx_pkt(in, fx_tcp4());

	put16(in + 14 + 2, 16);
	ip4_recsum(in + 14);
	return n;
}
static size_t b_tcp4_doff4(uint8_t *in) { return fx_syn(in, fx_tcp4(), 20, 4, NULL); }
static size_t b_udp4_len7(uint8_t *in) { return fx_udp(in, fx_udp4(), 8, 7, 16, NULL); }
static size_t b_udp6_csum0(uint8_t *in)
{
	struct ipopt io = {.no_l4_csum = true}; /* checksum field left 0 */

	return fx_udp(in, fx_udp6(), 8, -1, 16, &io);
}

/* -- IPv4 options, IPv6 extension headers, fragments */
static size_t b_ip4_options(uint8_t *in)
{
	struct ipopt io = {.v4_optlen = 4, .frag_off = 0x4000};

	return fx_syn(in, fx_tcp4(), 20, 0, &io);
}
static size_t fx_syn6_ext(uint8_t *in, const uint8_t ext[8], uint8_t first)
{
	struct ipopt io = {.ext = ext, .ext_len = 8, .ext_first = first};

	return fx_syn(in, fx_tcp6(), 20, 0, &io);
}
static const uint8_t fx_hbh[8] = {P_TCP, 0, 1, 4, 0, 0, 0, 0};	/* PadN */
static const uint8_t fx_rh[8] = {P_TCP, 0, 0, 0, 0, 0, 0, 0};	/* type 0, segleft 0 */
static const uint8_t fx_dh[8] = {P_TCP, 0, 1, 4, 0, 0, 0, 0};	/* PadN */
static const uint8_t fx_fh[8] = {P_TCP, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef}; /* offset 0, M */
static size_t b_ip6_hbh(uint8_t *in) { return fx_syn6_ext(in, fx_hbh, 0); }
static size_t b_ip6_rthdr(uint8_t *in) { return fx_syn6_ext(in, fx_rh, 43); }
static size_t b_ip6_dstopts(uint8_t *in) { return fx_syn6_ext(in, fx_dh, 60); }
static size_t b_ip6_frag(uint8_t *in) { return fx_syn6_ext(in, fx_fh, 44); }
static size_t fx_frag4(uint8_t *in, uint16_t frag_off)
{
	struct ipopt io = {.frag_off = frag_off};

	return fx_udp(in, fx_udp4(), 64, -1, 8 + 64, &io);
}
static size_t b_frag4_first(uint8_t *in) { return fx_frag4(in, 0x2000); }	   /* MF, offset 0 */
static size_t b_frag4_last(uint8_t *in) { return fx_frag4(in, 185); }		   /* offset 1480 */
static size_t b_frag4_middle(uint8_t *in) { return fx_frag4(in, 0x2000 | 185); } /* MF, 1480 */

#define PASS -1 /* drop_reason of a row that must pass unchanged */

static const struct fixture {
	const char *desc;
	size_t (*build)(uint8_t *in);
	int drop_reason; /* EP_DROP_*: XDP_DROP counted there; PASS: XDP_PASS unchanged */
	size_t cut;	 /* run only the first cut bytes of the frame (0: all of it) */
} fixtures[] = {
	/* truncated before the VIP is known: not ours to drop */
	{"14-byte frame (Ethernet header only, type IPv4)", b_tcp4, PASS, .cut = 14},
	{"802.1Q frame cut inside the tag (16 bytes)", b_tcp4_vlan, PASS, .cut = 16},
	{"Ethernet + 12 bytes of IPv4 to the VIP (no destination address)", b_tcp4, PASS,
	 .cut = 14 + 12},
	{"Ethernet + 30 bytes of IPv6 to the VIP (no destination address)", b_tcp6, PASS,
	 .cut = 14 + 30},
	/* truncated to the VIP */
	{"IPv4 tot_len 40 bytes beyond the frame", b_ip4_totlen_beyond, EP_DROP_TRUNCATED, 0},
	{"IPv4 TCP header cut short (10 of 20 bytes)", b_tcp4_cut, EP_DROP_TRUNCATED, 0},
	{"IPv4 TCP doff 15 with a 20-byte segment", b_tcp4_doff15, EP_DROP_TRUNCATED, 0},
	{"IPv4 UDP header cut short (4 of 8 bytes)", b_udp4_cut, EP_DROP_TRUNCATED, 0},
	{"IPv4 UDP length 40 with 16 bytes of IP payload", b_udp4_len_beyond, EP_DROP_TRUNCATED, 0},
	{"IPv6 payload_len 40 bytes beyond the frame", b_ip6_plen_beyond, EP_DROP_TRUNCATED, 0},
	{"IPv6 TCP header cut short (12 of 20 bytes)", b_tcp6_cut, EP_DROP_TRUNCATED, 0},
	/* malformed */
	{"IPv4 ihl 4 to the VIP", b_ip4_ihl4, EP_DROP_MALFORMED, 0},
	{"IPv4 tot_len 16 (< header) to the VIP", b_ip4_totlen16, EP_DROP_MALFORMED, 0},
	{"TCP doff 4", b_tcp4_doff4, EP_DROP_MALFORMED, 0},
	{"UDP length 7", b_udp4_len7, EP_DROP_MALFORMED, 0},
	{"IPv6 UDP with checksum 0", b_udp6_csum0, EP_DROP_MALFORMED, 0},
	/* what the fast path refuses */
	{"IPv4 with options (ihl 6) to the VIP", b_ip4_options, EP_DROP_IP_OPTIONS, 0},
	{"IPv6 hop-by-hop header to the VIP", b_ip6_hbh, EP_DROP_IPV6_EXTHDR, 0},
	{"IPv6 routing header to the VIP", b_ip6_rthdr, EP_DROP_IPV6_EXTHDR, 0},
	{"IPv6 destination options header to the VIP", b_ip6_dstopts, EP_DROP_IPV6_EXTHDR, 0},
	{"IPv4 first fragment (MF, offset 0)", b_frag4_first, EP_DROP_FRAGMENT, 0},
	{"IPv4 non-first fragment (offset 1480)", b_frag4_last, EP_DROP_FRAGMENT, 0},
	{"IPv4 middle fragment (MF, offset 1480)", b_frag4_middle, EP_DROP_FRAGMENT, 0},
	{"IPv6 with a Fragment header (offset 0, M)", b_ip6_frag, EP_DROP_FRAGMENT, 0},
};

static void test_fixtures(void)
{
	uint8_t in[FRAME_MAX];

	/* A frame shorter than an Ethernet header: BPF_PROG_TEST_RUN refuses it
	 * (EINVAL) on the kernels we run, so the program cannot be tried on it. */
	{
		struct flow f = fx_tcp4();

		flow_pkt(in, &f, 0, false, 0);
		drops_mark();
		if (xdp_run(in, 10) == -EINVAL) {
			tap_skip("BPF_PROG_TEST_RUN rejects frames < 14 bytes (EINVAL)",
				 "10-byte frame");
		} else {
			char why[256];
			bool ok = R.verdict == XDP_PASS && R.outlen == 10 && !memcmp(R.out, in, 10);

			ok = drops_delta_only(-1, 0, why, sizeof(why)) && ok;
			tap_ok(ok, "10-byte frame: XDP_PASS unchanged");
		}
	}
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		const struct fixture *x = &fixtures[i];
		size_t n;

		memset(in, 0, sizeof(in));
		n = x->build(in);
		if (x->cut && x->cut < n)
			n = x->cut;
		if (x->drop_reason == PASS)
			expect_pass_unchanged(x->desc, in, n);
		else
			expect_drop(x->desc, in, n, x->drop_reason);
	}
}

/* DF alone is not a fragment: balanced like any first packet. */
static void test_df_not_fragment(void)
{
	struct flow g = mkflow("198.51.100.61", 45003, "10.0.0.100", 80, P_TCP);
	struct outcome o = send_flow(&g, 0, false, 0); /* flow_pkt sets DF */

	if (!tap_ok(o.verdict == XDP_PASS && o.rewritten_ok && o.csum_ok && o.pred.ok &&
			    went_to(&o, &o.pred.be),
		    "IPv4 with DF set (not a fragment): balanced"))
		diag_outcome(&g, &o);
}

static void test_vlan(void)
{
	struct flow f1 = mkflow("198.51.100.70", 46000, "10.0.0.100", 80, P_TCP);
	struct flow f2 = mkflow("198.51.100.70", 46001, "10.0.0.100", 80, P_TCP);
	struct flow f3 = mkflow("2001:db8::70", 46002, "fd00::100", 53, P_UDP);
	struct {
		const char *name;
		struct flow *f;
		int nvlan;
		bool qinq;
	} cases[] = {
		{"802.1Q tag (VLAN 100), IPv4 TCP", &f1, 1, false},
		{"QinQ (802.1ad 200 + 802.1Q 100), IPv4 TCP", &f2, 2, true},
		{"QinQ (802.1ad 200 + 802.1Q 100), IPv6 UDP", &f3, 2, true},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t in[FRAME_MAX];
		size_t n = flow_pkt(in, cases[i].f, cases[i].nvlan, cases[i].qinq, 20);
		struct outcome o = send_flow(cases[i].f, cases[i].nvlan, cases[i].qinq, 20);
		bool tags = o.outlen == n && !memcmp(o.out, in, 12 + 4 * (size_t)cases[i].nvlan + 2);

		if (!tap_ok(o.verdict == XDP_PASS && tags && o.rewritten_ok && o.csum_ok && o.pred.ok &&
				    went_to(&o, &o.pred.be) && o.ct_found,
			    "%s: balanced to the predicted backend, tags preserved, inner packet "
			    "rewritten, checksums valid",
			    cases[i].name))
			diag_outcome(cases[i].f, &o);
	}
}

/* ICMP error from a router about a packet VIP:vport -> client:cport. */
static size_t icmp_err_frame(uint8_t *frame, const struct ep_ip *router, const struct ep_ip *to,
			     const struct ep_ip *qsrc, uint16_t qsport, const struct ep_ip *qdst,
			     uint16_t qdport, uint8_t qproto)
{
	uint8_t ql4[32], q[128], icmp[256], l3[512];
	size_t nq, ni, n3;
	bool v4 = router->family == EP_FAMILY_V4;

	/* First 8 bytes of the quoted L4 header (ports + seq / len + csum). */
	if (qproto == P_TCP)
		mk_tcp(ql4, qsport, qdport, TCP_SYN | TCP_ACK, 0);
	else {
		mk_udp(ql4, qsport, qdport, 0);
		put16(ql4 + 4, 1400 - 20); /* the original datagram's length */
		put16(ql4 + 6, 0xabcd);	   /* its checksum (not recomputable from a quote) */
	}
	{
		struct ipopt io = {.frag_off = 0x4000, .no_l4_csum = true};

		nq = mk_ip(q, qsrc, qdst, qproto, ql4, 8, &io);
	}
	/* The quoted header describes the original (large) packet. */
	if (v4) {
		put16(q + 2, 1500);
		ip4_recsum(q);
		ni = mk_icmp_err(icmp, 3, 4, 1400, q, nq); /* frag needed, next-hop MTU 1400 */
	} else {
		put16(q + 4, 1440);
		ni = mk_icmp_err(icmp, 2, 0, 1280, q, nq); /* packet too big, MTU 1280 */
	}
	n3 = mk_ip(l3, router, to, v4 ? P_ICMP : P_ICMP6, icmp, ni, NULL);
	return mk_eth(frame, 0, false, ethertype_of(router->family), l3, n3);
}

static void check_icmp_error(const char *name, const struct flow *f, const char *router_s)
{
	struct ep_ip router = IP(router_s);
	struct outcome o = send_flow(f, 0, false, 0);
	uint8_t in[FRAME_MAX], exp[FRAME_MAX];
	size_t n, en;
	struct ep_ip bip;
	struct ep_backend_stats b0, b1;
	bool ok;

	if (!tap_ok(o.verdict == XDP_PASS && o.ct_found, "%s: the flow exists (first packet balanced)",
		    name)) {
		diag_outcome(f, &o);
		return;
	}
	bip = o.went;
	n = icmp_err_frame(in, &router, &f->vip, &f->vip, f->vport, &f->client, f->cport, f->proto);
	en = icmp_err_frame(exp, &router, &bip, &bip, o.went_port, &f->client, f->cport, f->proto);
	b0 = backend_stats_read(fds.backend_stats, o.ct.backend_id, ncpu);
	xdp_run(in, n);
	b1 = backend_stats_read(fds.backend_stats, o.ct.backend_id, ncpu);
	ok = R.err == 0 && R.verdict == XDP_PASS && Rp.ok && Rp.icmp_err;
	ok = ok && ip_eq_raw(&router, Rp.src.addr, Rp.family) &&
	     ip_eq_raw(&bip, Rp.dst.addr, Rp.family);
	if (!tap_ok(ok, "%s: XDP_PASS, outer destination rewritten to the flow's backend %s, outer "
			"source untouched",
		    name, ipstr(&bip)))
		tap_diag("  err %d verdict %s dst %s", R.err, verdict_str(R.verdict),
			 ipstr(&Rp.dst));
	ok = Rp.icmp_err && ip_eq_raw(&bip, Rp.qsrc.addr, Rp.family) &&
	     Rp.qsport == o.went_port && ip_eq_raw(&f->client, Rp.qdst.addr, Rp.family) &&
	     Rp.qdport == f->cport && Rp.qproto == f->proto;
	if (!tap_ok(ok, "%s: quoted source rewritten to the backend %s:%u, quoted destination "
			"(client) untouched",
		    name, ipstr(&bip), o.went_port))
		tap_diag("  quoted %s:%u -> %s:%u", ipstr(&Rp.qsrc), Rp.qsport, ipstr(&Rp.qdst),
			 Rp.qdport);
	ok = Rp.ip_csum_ok && Rp.l4_csum_ok && Rp.q_ip_csum_ok;
	if (!tap_ok(ok, "%s: %s checksums valid", name,
		    f->vip.family == EP_FAMILY_V4
			    ? "outer IPv4 header, quoted IPv4 header and ICMP (message only)"
			    : "ICMPv6 (pseudo header + message)"))
		tap_diag("  outer ip %d icmp %d quoted ip %d", Rp.ip_csum_ok, Rp.l4_csum_ok,
			 Rp.q_ip_csum_ok);
	if (!tap_ok(same_but_csums(R.out, R.outlen, exp, en),
		    "%s: nothing else in the packet changed", name))
		tap_diag("  outlen %zu expected %zu", R.outlen, en);
	tap_ok(b1.packets - b0.packets == 1 && b1.flows == b0.flows,
	       "%s: counted as a packet of the flow's backend, no new flow", name);
}

static void test_icmp_errors(void)
{
	struct flow f4 = mkflow("198.51.100.80", 47000, "10.0.0.100", 80, P_TCP);
	struct flow f4u = mkflow("198.51.100.80", 47001, "10.0.0.100", 53, P_UDP);
	struct flow f6 = mkflow("2001:db8::80", 47002, "fd00::100", 80, P_TCP);
	struct ep_ip router = IP("192.0.2.1"), router6 = IP("2001:db8:ffff::1");
	uint8_t in[FRAME_MAX];
	size_t n;

	check_icmp_error("ICMP frag-needed (3/4) about an IPv4 TCP flow", &f4, "192.0.2.1");
	check_icmp_error("ICMP frag-needed (3/4) about an IPv4 UDP flow", &f4u, "192.0.2.1");
	check_icmp_error("ICMPv6 packet-too-big about an IPv6 TCP flow", &f6, "2001:db8:ffff::1");

	/* Unknown flows */
	{
		struct flow g = mkflow("198.51.100.81", 47100, "10.0.0.100", 80, P_TCP);

		n = icmp_err_frame(in, &router, &g.vip, &g.vip, 80, &g.client, g.cport, P_TCP);
		expect_drop("ICMP frag-needed quoting an unknown flow", in, n, EP_DROP_ICMP_NO_FLOW);
		g = mkflow("2001:db8::81", 47101, "fd00::100", 80, P_TCP);
		n = icmp_err_frame(in, &router6, &g.vip, &g.vip, 80, &g.client, g.cport, P_TCP);
		expect_drop("ICMPv6 packet-too-big quoting an unknown flow", in, n,
			    EP_DROP_ICMP_NO_FLOW);
		/* The quote ends inside the quoted IP header (tot_len), the frame
		 * goes on with bytes that look like the ports of a live flow. */
		{
			uint8_t l4[128], l3[256], q[64];
			struct ipopt io = {.frag_off = 0x4000, .no_l4_csum = true};
			size_t nq, ni, n3;

			nq = mk_ip(q, &f4.vip, &f4.client, P_TCP, q + 40 /* unused */, 0, &io);
			put16(q + 2, 1500);
			ip4_recsum(q);
			ni = mk_icmp_err(l4, 3, 4, 1400, q, nq); /* 8 + 20: no ports */
			n3 = mk_ip(l3, &router, &f4.vip, P_ICMP, l4, ni, NULL);
			n = mk_eth(in, 0, false, 0x0800, l3, n3);
			put16(in + n, f4.vport); /* "ports" after the end of the IP packet */
			put16(in + n + 2, f4.cport);
			memset(in + n + 4, 0, 8);
			expect_drop("ICMP error whose quote ends before the ports (Ethernet trailer "
				    "holds a live flow's ports)",
				    in, n + 12, EP_DROP_TRUNCATED);
			if (R.verdict == XDP_PASS && Rp.ok)
				tap_diag("  passed: outer dst %s, trailer bytes %s (now %u/%u), ICMP "
					 "checksum %s",
					 ipstr(&Rp.dst),
					 memcmp(R.out + n, in + n, 4) ? "REWRITTEN" : "unchanged",
					 get16(R.out + n), get16(R.out + n + 2),
					 Rp.l4_csum_ok ? "valid" : "INVALID");
		}
		/* The same for ICMPv6: the quote is just the IPv6 header. */
		{
			uint8_t l4[128], l3[256], q[64];
			struct ipopt io = {.no_l4_csum = true};
			size_t nq, ni, n3;

			nq = mk_ip(q, &f6.vip, &f6.client, P_TCP, q + 60 /* unused */, 0, &io);
			put16(q + 4, 1440);
			ni = mk_icmp_err(l4, 2, 0, 1280, q, nq); /* 8 + 40: no ports */
			n3 = mk_ip(l3, &router6, &f6.vip, P_ICMP6, l4, ni, NULL);
			n = mk_eth(in, 0, false, 0x86dd, l3, n3);
			put16(in + n, f6.vport);
			put16(in + n + 2, f6.cport);
			memset(in + n + 4, 0, 8);
			expect_drop("ICMPv6 error whose quote ends before the ports (Ethernet trailer "
				    "holds a live flow's ports)",
				    in, n + 12, EP_DROP_TRUNCATED);
			if (R.verdict == XDP_PASS && Rp.ok)
				tap_diag("  passed: outer dst %s, trailer bytes %s (now %u/%u), ICMPv6 "
					 "checksum %s",
					 ipstr(&Rp.dst),
					 memcmp(R.out + n, in + n, 4) ? "REWRITTEN" : "unchanged",
					 get16(R.out + n), get16(R.out + n + 2),
					 Rp.l4_csum_ok ? "valid" : "INVALID");
		}
		/* quoted source is not the VIP the error was sent to */
		{
			struct ep_ip other = IP("10.9.9.9");

			n = icmp_err_frame(in, &router, &f4.vip, &other, 80, &f4.client, f4.cport,
					   P_TCP);
			expect_drop("ICMP error to the VIP quoting another source address", in, n,
				    EP_DROP_ICMP_NO_FLOW);
		}
	}
}

static void test_weights(void)
{
	uint32_t id_a = be_id("weight0", "10.1.0.31", 8080), id_b = be_id("weight0", "10.1.0.32", 8080);
	struct ep_backend a, b;
	uint32_t to_a = 0, to_b = 0, other = 0, mispred = 0;
	uint8_t in[FRAME_MAX];
	size_t n;

	bpf_map_lookup_elem(fds.backends, &id_a, &a);
	bpf_map_lookup_elem(fds.backends, &id_b, &b);
	for (int i = 0; i < 1000; i++) {
		struct flow f = mkflow("198.51.100.90", (uint16_t)(10000 + i), "10.0.0.100", 81, P_TCP);
		struct outcome o = send_flow(&f, 0, false, 0);

		if (o.verdict == XDP_PASS && went_to(&o, &a))
			to_a++;
		else if (o.verdict == XDP_PASS && went_to(&o, &b))
			to_b++;
		else
			other++;
		if (!o.pred.ok || !went_to(&o, &o.pred.be))
			mispred++;
	}
	if (!tap_ok(to_a == 1000 && to_b == 0 && mispred == 0,
		    "weight 1 (A) / weight 0 (B): 1000 new flows, all to A, none to B"))
		tap_diag("  A %u B %u other %u mispredicted %u", to_a, to_b, other, mispred);

	{
		struct flow f = mkflow("198.51.100.91", 10000, "10.0.0.100", 82, P_TCP);

		n = flow_pkt(in, &f, 0, false, 0);
		expect_drop("all backends weight 0: new flow", in, n, EP_DROP_NO_BACKEND);
	}
	/* all drained */
	{
		struct flow f = mkflow("198.51.100.92", 10000, "10.0.0.100", 83, P_TCP);
		struct outcome o;
		int rc = drain("drainall", "10.1.0.35:8080", true) |
			 drain("drainall", "10.1.0.36:8080", true);

		tap_ok(rc == 0, "ep_services_drain of both backends of 'drainall'");
		n = flow_pkt(in, &f, 0, false, 0);
		expect_drop("all backends drained: new flow", in, n, EP_DROP_NO_BACKEND);
		rc = drain("drainall", "10.1.0.36:8080", false);
		o = send_flow(&f, 0, false, 0);
		if (!tap_ok(rc == 0 && o.verdict == XDP_PASS && o.ct_found &&
				    o.ct.backend_id == be_id("drainall", "10.1.0.36", 8080) &&
				    o.rewritten_ok && o.csum_ok,
			    "one backend undrained: the flow is balanced to it"))
			diag_outcome(&f, &o);
	}
}

static void test_drain(void)
{
	enum { NF = 300, NNEW = 1000 };
	static uint32_t first[NF];
	uint32_t idx = be_id("drain", "10.1.0.42", 8080), moved = 0, to_x = 0, existing_x = 0,
		 mispred = 0, bad = 0;
	struct ep_backend x;

	bpf_map_lookup_elem(fds.backends, &idx, &x);
	for (int i = 0; i < NF; i++) {
		struct flow f = mkflow("198.51.100.100", (uint16_t)(30000 + i), "10.0.0.100", 84, P_TCP);
		struct outcome o = send_flow(&f, 0, false, 0);

		first[i] = o.ct_found ? o.ct.backend_id : 0;
		if (first[i] == idx)
			existing_x++;
		if (!o.pred.ok || !went_to(&o, &o.pred.be))
			mispred++;
	}
	tap_ok(existing_x > 0 && mispred == 0,
	       "drain: %d flows established, %u of them on 10.1.0.42:8080, all as predicted", NF,
	       existing_x);
	tap_ok(drain("drain", "10.1.0.42:8080", true) == 0, "drain: ep_services_drain(10.1.0.42:8080)");
	for (int i = 0; i < NF; i++) {
		struct flow f = mkflow("198.51.100.100", (uint16_t)(30000 + i), "10.0.0.100", 84, P_TCP);
		struct outcome o = send_flow(&f, 0, false, 10);

		if (o.verdict != XDP_PASS || !o.ct_found || o.ct.backend_id != first[i] ||
		    !ct_matches(&o) || !o.rewritten_ok || !o.csum_ok)
			moved++;
	}
	tap_ok(moved == 0, "drain: all %d existing flows keep their backend (the %u on the drained "
			   "one included)",
	       NF, existing_x);
	if (moved)
		tap_diag("  %u flows moved or failed", moved);
	mispred = 0;
	for (int i = 0; i < NNEW; i++) {
		struct flow f = mkflow("198.51.100.101", (uint16_t)(30000 + i), "10.0.0.100", 84, P_TCP);
		struct outcome o = send_flow(&f, 0, false, 0);

		if (o.verdict != XDP_PASS || !o.rewritten_ok)
			bad++;
		if (went_to(&o, &x))
			to_x++;
		if (!o.pred.ok || !went_to(&o, &o.pred.be))
			mispred++;
	}
	if (!tap_ok(to_x == 0 && bad == 0 && mispred == 0,
		    "drain: %d new flows never reach the drained backend", NNEW))
		tap_diag("  to drained %u bad %u mispredicted %u", to_x, bad, mispred);
	tap_ok(drain("drain", "10.1.0.42:8080", false) == 0, "drain: undrain 10.1.0.42:8080");
	to_x = mispred = bad = 0;
	for (int i = 0; i < NNEW; i++) {
		struct flow f = mkflow("198.51.100.102", (uint16_t)(30000 + i), "10.0.0.100", 84, P_TCP);
		struct outcome o = send_flow(&f, 0, false, 0);

		if (o.verdict != XDP_PASS || !o.rewritten_ok)
			bad++;
		if (went_to(&o, &x))
			to_x++;
		if (!o.pred.ok || !went_to(&o, &o.pred.be))
			mispred++;
	}
	if (!tap_ok(to_x > NNEW / 6 && bad == 0 && mispred == 0,
		    "undrain: new flows reach 10.1.0.42:8080 again (%u of %d, want > 1/6)", to_x,
		    NNEW))
		tap_diag("  bad %u mispredicted %u", bad, mispred);
	/* The ring after undrain is the ring before the drain: flows established
	 * before the drain hash to their original backend again. */
	moved = 0;
	for (int i = 0; i < NF; i++) {
		struct flow f = mkflow("198.51.100.100", (uint16_t)(30000 + i), "10.0.0.100", 84, P_TCP);
		struct ep_flow_key k = flow_key(&f);
		struct pred p = predict(&k);

		if (!p.ok || p.bid != first[i])
			moved++;
	}
	tap_ok(moved == 0, "undrain restores the original ring (all %d first flows map to their "
			   "original backend)",
	       NF);
}

/* IPv4 TCP flows in conntrack. */
static size_t ct4_count(void)
{
	long n = ep_ct_count(&fds.ct, EP_FAMILY_V4, IPPROTO_TCP);

	return n < 0 ? (size_t)-1 : (size_t)n;
}

/* Sends a TCP packet of f with these flags and sequence number; returns the
 * backend id it was rewritten to (0: not rewritten / not XDP_PASS). */
static uint32_t send_tcp(const struct flow *f, uint8_t flags, uint32_t seq)
{
	uint8_t in[FRAME_MAX];
	size_t n = pkt_between(in, &f->client, f->cport, &f->vip, f->vport, P_TCP, flags, 0, false, 0);

	tcp_set_seq(in, n, seq);
	if (xdp_run(in, n) || R.verdict != XDP_PASS || !Rp.ok)
		return 0;
	for (uint32_t id = 1; id < 64; id++) {
		struct ep_backend be;

		if (bpf_map_lookup_elem(fds.backends, &id, &be) == 0 && (be.flags & EP_BE_F_VALID) &&
		    ip_eq_raw(&Rp.dst, be.addr, be.family) && Rp.dport == ntohs(be.port))
			return id;
	}
	return 0;
}

/*
 * The conntrack rules of a SYN: balanced by Maglev, no conntrack entry (a
 * spoofed flood cannot evict anything); the handshake's ACK follows the
 * SYN's backend even when the ring changed in between; a retransmitted SYN
 * is balanced like a new one and replaces the record; a RST without an
 * entry creates none.
 */
static void test_syn_rules(void)
{
	enum { NSYN = 5000 };
	uint32_t x = be_id("drain", "10.1.0.42", 8080), wrong = 0, passed = 0;
	struct flow est = mkflow("198.51.100.120", 31000, "10.0.0.100", 84, P_TCP);
	struct flow h[2];
	struct ep_ct_entry ct, ct_est;
	struct outcome o = send_flow(&est, 0, false, 0);
	size_t before;
	int nh = 0;

	tap_ok(o.ct_found, "syn rules: an established flow has its entry");
	before = ct4_count();
	for (int i = 0; i < NSYN; i++) {
		char src[32];
		struct flow f;
		struct ep_flow_key k;
		struct pred p;
		uint32_t got;

		snprintf(src, sizeof(src), "203.0.%d.%d", 113 + i / 250 % 8, 1 + i % 250);
		f = mkflow(src, (uint16_t)(1024 + i), "10.0.0.100", 84, P_TCP);
		k = flow_key(&f);
		p = predict(&k);
		got = send_tcp(&f, TCP_SYN, 0x1000 + (uint32_t)i);
		if (got)
			passed++;
		if (!p.ok || got != p.bid)
			wrong++;
	}
	tap_ok(passed == NSYN && wrong == 0 && ct4_count() == before &&
		       ct_get(&(struct ep_flow_key){0}, &ct) == false,
	       "syn rules: %d spoofed SYNs all balanced to their Maglev backend (%u), conntrack "
	       "unchanged (%zu entries before, %zu after)",
	       NSYN, passed, before, ct4_count());
	{
		struct ep_flow_key k = flow_key(&est);

		tap_ok(ct_get(&k, &ct_est) && ct_est.backend_id == o.ct.backend_id,
		       "syn rules: the established flow's entry survived the SYNs");
	}

	/* Two handshakes whose SYNs land on x, then x is drained (the ring moves). */
	for (int port = 20000; port < 40000 && nh < 2; port++) {
		struct flow f = mkflow("198.51.100.121", (uint16_t)port, "10.0.0.100", 84, P_TCP);
		struct ep_flow_key k = flow_key(&f);

		if (predict(&k).bid == x)
			h[nh++] = f;
	}
	if (!tap_ok(nh == 2, "syn rules: two flows that Maglev sends to 10.1.0.42:8080"))
		return;
	tap_ok(send_tcp(&h[0], TCP_SYN, 0x5000) == x && send_tcp(&h[1], TCP_SYN, 0x6000) == x,
	       "syn rules: both SYNs went to 10.1.0.42:8080");
	if (!tap_ok(drain("drain", "10.1.0.42:8080", true) == 0, "syn rules: drained 10.1.0.42:8080"))
		return;
	{
		struct ep_flow_key k0 = flow_key(&h[0]), k1 = flow_key(&h[1]);
		uint32_t now0 = predict(&k0).bid, now1 = predict(&k1).bid;
		uint32_t r = send_tcp(&h[0], TCP_ACK, 0x5001);

		tap_ok(now0 != x && r == x && ct_get(&k0, &ct) && ct.backend_id == x &&
			       ct.isn == htonl(0x5000),
		       "syn rules: the handshake's ACK after a ring change creates the entry on the "
		       "SYN's backend (%u; the ring now says %u)",
		       r, now0);
		r = send_tcp(&h[1], TCP_SYN, 0x6000);
		tap_ok(r == now1 && r != x && !ct_get(&k1, &ct),
		       "syn rules: a retransmitted SYN is balanced like a new one: current ring (%u), "
		       "no entry",
		       r);
		r = send_tcp(&h[1], TCP_ACK, 0x6001);
		tap_ok(r == now1 && ct_get(&k1, &ct) && ct.backend_id == now1,
		       "syn rules: its ACK pins the handshake to the retransmission's backend");
	}
	drain("drain", "10.1.0.42:8080", false);
	{
		/* UDP pins on the first datagram, in conntrack maps of its own:
		 * a spoofed UDP flood fills those, not the TCP ones. */
		size_t tcp0 = ct4_count();
		struct ep_flow_key ke = flow_key(&est);
		uint32_t pinned = 0;

		for (int i = 0; i < 2000; i++) {
			char src[32];
			struct flow f;
			struct ep_flow_key k;
			uint8_t in[FRAME_MAX];
			size_t n;

			snprintf(src, sizeof(src), "203.0.%d.%d", 121 + i / 250, 1 + i % 250);
			f = mkflow(src, (uint16_t)(2048 + i), "10.0.0.100", 53, P_UDP);
			k = flow_key(&f);
			n = flow_pkt(in, &f, 0, false, 8);
			if (xdp_run(in, n) == 0 && R.verdict == XDP_PASS && ct_get(&k, &ct))
				pinned++;
		}
		tap_ok(pinned == 2000 && ct4_count() == tcp0 && ct_get(&ke, &ct_est),
		       "syn rules: 2000 UDP flows pinned on their first datagram (%u), in the UDP "
		       "maps: the TCP conntrack still holds %zu entries, the established flow's among them",
		       pinned, ct4_count());
	}
	{
		struct flow f = mkflow("198.51.100.122", 40001, "10.0.0.100", 84, P_TCP);
		struct ep_flow_key k = flow_key(&f);
		uint32_t r = send_tcp(&f, TCP_RST | TCP_ACK, 0x9000);

		tap_ok(r != 0 && !ct_get(&k, &ct),
		       "syn rules: a RST without an entry is forwarded, creates none");
		r = send_tcp(&f, TCP_ACK, 0x9000);
		{
			uint32_t hash = ep_flow_hash(&k), sig = ep_syn_sig(&k, hash);
			uint32_t bucket = hash & (EP_ORPHAN_BUCKETS - 1);
			uint32_t slot = hash & (EP_SYN_SLOTS - 1);
			struct ep_orphan_bucket b = {0};
			struct ep_syn rec = {0}, syn = {0};

			bpf_map_lookup_elem(bpf_map__fd(skel->maps.ep_orphans), &bucket, &b);
			for (int w = 0; w < EP_ORPHAN_WAYS; w++)
				if (b.way[w].sig == sig)
					rec = b.way[w];
			bpf_map_lookup_elem(bpf_map__fd(skel->maps.ep_syn), &slot, &syn);
			tap_ok(r == predict(&k).bid && !ct_get(&k, &ct) &&
				       rec.backend_id == (r | EP_SYN_F_ORPHAN) &&
				       rec.isn == htonl(0x9000 - 1) && syn.sig != sig,
			       "syn rules: an ACK without an entry or record (an evicted flow, or a "
			       "spoofed ACK) goes where Maglev says, creates no entry, and leaves an "
			       "orphan record for reverse NAT in ep_orphans, not among the handshakes "
			       "(test_tc_rnat)");
		}
	}
}

static void test_spread(void)
{
	enum { NFLOWS = 10000 };
	const char *addrs[3] = {"10.1.0.51", "10.1.0.52", "10.1.0.53"};
	const double want[3] = {1.0 / 6, 2.0 / 6, 3.0 / 6};
	struct ep_backend be[3];
	uint32_t cnt[3] = {0}, other = 0, mispred = 0;
	double worst = 0;

	for (int b = 0; b < 3; b++) {
		uint32_t id = be_id("spread", addrs[b], 8080);

		bpf_map_lookup_elem(fds.backends, &id, &be[b]);
	}
	for (int i = 0; i < NFLOWS; i++) {
		char client[32];
		struct flow f;
		struct outcome o;
		int b;

		snprintf(client, sizeof(client), "198.51.%d.%d", 110 + i / 5000, 1 + (i % 5000) / 25);
		f = mkflow(client, (uint16_t)(1024 + i * 6), "10.0.0.100", 85, P_TCP);
		o = send_flow(&f, 0, false, 0);
		for (b = 0; b < 3; b++)
			if (o.verdict == XDP_PASS && went_to(&o, &be[b]))
				break;
		if (b < 3)
			cnt[b]++;
		else
			other++;
		if (!o.pred.ok || !went_to(&o, &o.pred.be))
			mispred++;
	}
	for (int b = 0; b < 3; b++) {
		double share = (double)cnt[b] / NFLOWS, d = share - want[b];

		if (d < 0)
			d = -d;
		if (d > worst)
			worst = d;
		tap_diag("spread: %s weight %d: %u flows, share %.4f (want %.4f)", addrs[b], b + 1,
			 cnt[b], share, want[b]);
	}
	tap_ok(worst <= 0.02 && other == 0,
	       "spread: %d new flows over weights 1:2:3, every share within +-0.02 absolute of "
	       "1/6, 2/6, 3/6 (worst %.4f)",
	       NFLOWS, worst);
	tap_ok(mispred == 0, "spread: all %d flows went to the predicted backend (mispredicted %u)",
	       NFLOWS, mispred);
}

static void test_redirect_mode(void)
{
	struct ep_dp_config c = {0}, saved = {0};
	uint32_t zero = 0;
	struct flow f4 = mkflow("198.51.100.120", 48000, "10.0.0.100", 80, P_TCP);
	struct flow f6 = mkflow("2001:db8::120", 48001, "fd00::100", 53, P_UDP);
	struct outcome o;

	bpf_map_lookup_elem(fds.config, &zero, &saved);
	c = saved;
	c.flags |= EP_CFG_F_XDP_REDIRECT;
	tap_ok(bpf_map_update_elem(fds.config, &zero, &c, BPF_ANY) == 0,
	       "redirect mode: ep_config[0].flags |= EP_CFG_F_XDP_REDIRECT");
	o = send_flow(&f4, 0, false, 0);
	if (!tap_ok(o.verdict == XDP_PASS && o.rewritten_ok && o.csum_ok && o.ttl == 64 &&
			    o.pred.ok && went_to(&o, &o.pred.be) && o.ct_found,
		    "redirect mode, no route (fib lookup fails): IPv4 TCP falls back to XDP_PASS, "
		    "rewritten to the predicted backend, TTL 64 unchanged, MACs unchanged"))
		diag_outcome(&f4, &o);
	o = send_flow(&f6, 0, false, 16);
	if (!tap_ok(o.verdict == XDP_PASS && o.rewritten_ok && o.csum_ok && o.ttl == 64 &&
			    o.pred.ok && went_to(&o, &o.pred.be) && o.ct_found,
		    "redirect mode, no route: IPv6 UDP falls back to XDP_PASS, rewritten, hop limit "
		    "unchanged"))
		diag_outcome(&f6, &o);
	o = send_flow(&f4, 1, false, 0);
	if (!tap_ok(o.verdict == XDP_PASS && o.rewritten_ok && o.csum_ok && o.ttl == 64,
		    "redirect mode, VLAN-tagged: XDP_PASS, rewritten, TTL unchanged"))
		diag_outcome(&f4, &o);
	bpf_map_update_elem(fds.config, &zero, &saved, BPF_ANY);
}

static void test_table_resize(void)
{
	struct flow old = mkflow("198.51.100.10", 40000, "10.0.0.100", 80, P_TCP); /* test_basic's */
	struct ep_flow_key k = flow_key(&old);
	struct ep_ct_entry ct0;
	struct ep_service svc;
	struct ep_endpoint sk = {0};
	uint32_t mispred = 0, bad = 0;
	struct outcome o;
	bool had = ct_get(&k, &ct0);
	int rc;

	cfg.datapath.maglev_table_size = 251;
	tap_ok(apply() == 0, "table size 16381 -> 251: config re-applied");
	memcpy(sk.addr, k.dst, sizeof(sk.addr));
	sk.port = k.dport;
	sk.proto = k.proto;
	sk.family = k.family;
	memset(&svc, 0, sizeof(svc));
	rc = bpf_map_lookup_elem(fds.services, &sk, &svc);
	tap_ok(rc == 0 && svc.table_size == 251, "table size 251 recorded in ep_services (got %u)",
	       svc.table_size);
	for (int i = 0; i < 300; i++) {
		struct flow f = mkflow("198.51.100.130", (uint16_t)(5000 + i), "10.0.0.100", 80, P_TCP);

		o = send_flow(&f, 0, false, 0);
		if (o.verdict != XDP_PASS || !o.rewritten_ok || !o.csum_ok)
			bad++;
		if (!o.pred.ok || o.pred.table_size != 251 || !went_to(&o, &o.pred.be))
			mispred++;
	}
	if (!tap_ok(bad == 0 && mispred == 0,
		    "table size 251: 300 new flows follow the new ring (hash %% 251)"))
		tap_diag("  bad %u mispredicted %u", bad, mispred);
	o = send_flow(&old, 0, false, 10);
	if (!tap_ok(had && o.verdict == XDP_PASS && o.ct_found && o.ct.backend_id == ct0.backend_id &&
			    ct_matches(&o),
		    "table size 251: an established flow keeps its backend"))
		diag_outcome(&old, &o);
}

int main(void)
{
	int rc;

	ep_log_setup(0, EP_LOG_WARN);
	if (geteuid() != 0) {
		return tap_skip_all("needs root (BPF)");
	}
	/* No routes and no neighbours: bpf_fib_lookup() must fail in test_run. */
	if (unshare(CLONE_NEWNET))
		tap_diag("unshare(CLONE_NEWNET) failed (%s): fib lookups see the host's routes",
			 strerror(errno));
	ncpu = bpf_run_ncpu();

	skel = xdp_lb__open();
	if (!tap_ok(skel != NULL, "xdp_lb skeleton opened"))
		return tap_done();
	rc = xdp_lb__load(skel);
	if (!tap_ok(rc == 0, "xdp_lb loaded (maps not pinned) rc=%d", rc)) {
		xdp_lb__destroy(skel);
		return tap_done();
	}
	prog_fd = bpf_program__fd(skel->progs.ep_xdp_lb);
	if (ep_map_fds_from_obj(skel->obj, &fds))
		tap_diag("a load balancer map is missing from the object");

	tap_ok(ep_services_init(&svcs, &fds) == 0, "ep_services_init");
	build_config();
	if (!tap_ok(apply() == 0, "ep_services_apply: %zu services, Maglev table %u",
		    cfg.n_services, cfg.datapath.maglev_table_size)) {
		xdp_lb__destroy(skel);
		return tap_done();
	}

	test_basic();
	test_conntrack_wins();
	test_not_ours();
	test_filter_collisions();
	test_fixtures();
	test_df_not_fragment();
	test_vlan();
	test_icmp_errors();
	test_syn_rules();
	test_ct_table();
	test_weights();
	test_drain();
	test_spread();
	test_redirect_mode();
	test_table_resize();

	ep_services_free(&svcs);
	xdp_lb__destroy(skel);
	return tap_done();
}
