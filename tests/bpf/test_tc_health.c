/*
 * Canary flow health (tc/tc_health.bpf.c) and the canary split
 * (xdp/xdp_lb.bpf.c) through BPF_PROG_TEST_RUN.
 *
 * xdp_lb and tc_health share every map; flows are opened by running XDP on a
 * client's SYN (conntrack then names the backend), after which the client's
 * packets as they leave for the backend go through ep_tc_health_fwd and the
 * backend's answers through ep_tc_health_rev. Counters are read with the
 * agent's own code (agent/canary/health.c), and unanswered SYNs and UDP
 * requests are aged out by its sweep, as the agent does every window.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "bpf_run.h"
#include "config.h"
#include "datapath.h"
#include "edgeplane_abi.h"
#include "frames.h"
#include "health.h"
#include "log.h"
#include "services.h"
#include "svc_cfg.h"
#include "tap.h"
#include "tc_health.skel.h"
#include "xdp_lb.skel.h"

static struct xdp_lb *xskel;
static struct tc_health *hskel;
static struct ep_map_fds fds;
static struct ep_health_fds hfds;
static struct ep_services svcs;
static struct ep_config cfg;
static int xdp_fd, fwd_fd, rev_fd;
static struct bpf_run R;

/* Services: tcp "web" (3 stable + 1 canary), "http" (HTTP status lines
 * read), udp "dns", and "quiet" which the tap does not watch. */
static void build_config(void)
{
	struct ep_cfg_service *s;

	svc_cfg_reset(&cfg, 251);
	s = svc_cfg_add(&cfg, "web", "10.0.0.100", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.11", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.12", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.13", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.14", 8080, 1);
	s->backends[3].canary = true;
	s->canary.percent_bp = 1000;
	s = svc_cfg_add(&cfg, "http", "10.0.0.101", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.21", 8080, 1);
	s = svc_cfg_add(&cfg, "dns", "10.0.0.100", 53, P_UDP);
	svc_cfg_add_be(s, "10.1.0.31", 5353, 1);
	s = svc_cfg_add(&cfg, "quiet", "10.0.0.102", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.41", 8080, 1);
	s = svc_cfg_add(&cfg, "web6", "fd00::100", 80, P_TCP);
	svc_cfg_add_be(s, "fd00:1::11", 8080, 1);
	s = svc_cfg_add(&cfg, "split", "10.0.0.103", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.51", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.52", 8080, 1);
	s->backends[1].canary = true;
	s->canary.percent_bp = 1000;
	s = svc_cfg_add(&cfg, "splitflow", "10.0.0.104", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.61", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.62", 8080, 1);
	s->backends[1].canary = true;
	s->canary.percent_bp = 2500;
	s->canary.sticky_flow = true;
}

static uint32_t svc_id(const char *name)
{
	const struct ep_svc_state *st = ep_services_find(&svcs, name);

	return st ? st->id : 0;
}

/* A flow of the test, with the backend XDP picked for it. */
struct tflow {
	struct flow f;
	struct ep_ip be;
	uint16_t bport;
	uint32_t bid;
};

/*
 * The client's first packet through XDP. A TCP SYN creates no conntrack
 * entry, only its half-open record, which is all the tap has to go on until
 * the handshake's ACK (establish()): the backend comes from XDP's output.
 */
static bool open_flow(struct tflow *t, const char *client, uint16_t cport, const char *vip,
		      uint16_t vport, uint8_t proto)
{
	uint8_t in[FRAME_MAX];
	struct ep_ct_entry ct;
	struct ep_flow_key k;
	struct parsed out;
	size_t n;

	t->f = mkflow(client, cport, vip, vport, proto);
	n = flow_pkt(in, &t->f, 0, false, proto == P_UDP ? 20 : 0);
	k = flow_key(&t->f);
	bpf_run(xdp_fd, in, n, &R);
	if (R.err || R.verdict != XDP_PASS)
		return false;
	if (proto == P_TCP) {
		parse_frame(R.out, R.outlen, &out);
		if (!out.ok || !ep_ct_get(&fds.ct, &k, &ct))
			return false; /* no DNAT, or an entry from a SYN */
		t->be = out.dst;
		t->bport = out.dport;
		return backend_id_of(fds.backends, &t->be, t->bport, &t->bid);
	}
	if (ep_ct_get(&fds.ct, &k, &ct))
		return false;
	memset(&t->be, 0, sizeof(t->be));
	t->be.family = t->f.client.family;
	memcpy(t->be.addr, ct.baddr, sizeof(t->be.addr));
	t->bport = ntohs(ct.bport);
	t->bid = ct.backend_id;
	return true;
}

/* The handshake's ACK through XDP: the flow's conntrack entry. */
static bool establish(const struct tflow *t)
{
	uint8_t in[FRAME_MAX];
	struct ep_ct_entry ct;
	struct ep_flow_key k = flow_key(&t->f);
	size_t n = flow_ack_pkt(in, &t->f);

	bpf_run(xdp_fd, in, n, &R);
	return !R.err && R.verdict == XDP_PASS && !ep_ct_get(&fds.ct, &k, &ct) &&
	       ct.backend_id == t->bid;
}

/* The client's packet as it leaves for the backend (after DNAT). */
static int fwd(const struct tflow *t, uint8_t flags, const char *payload, size_t plen)
{
	uint8_t in[FRAME_MAX];
	size_t n = pkt_between(in, &t->f.client, t->f.cport, &t->be, t->bport, t->f.proto, flags,
			       0, false, plen);

	if (payload)
		memcpy(in + n - plen, payload, plen);
	bpf_run(fwd_fd, in, n, &R);
	return R.err ? R.err : R.verdict;
}

/* The backend's packet to the client (before reverse NAT). */
static int rev(const struct tflow *t, uint8_t flags, const char *payload, size_t plen)
{
	uint8_t in[FRAME_MAX];
	size_t n = pkt_between(in, &t->be, t->bport, &t->f.client, t->f.cport, t->f.proto, flags,
			       0, false, plen);

	if (payload)
		memcpy(in + n - plen, payload, plen);
	bpf_run(rev_fd, in, n, &R);
	return R.err ? R.err : R.verdict;
}

/* Unanswered per backend id, as the agent's sweep reports them. */
static uint64_t unans_syn[64], unans_udp[64];

static void on_unanswered(uint32_t bid, bool udp, void *arg)
{
	(void)arg;
	if (bid < 64)
		(udp ? unans_udp : unans_syn)[bid]++;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Everything sent so far is older than a zero window. */
static int sweep(void)
{
	return ep_health_sweep(&hfds, now_ns() + 1, 0, 3600ULL * 1000000000ULL, on_unanswered,
			       NULL);
}

static struct ep_health_stats hs(uint32_t bid)
{
	struct ep_health_counts c = {};

	ep_health_read(&hfds, bid, &c);
	return c.k;
}

static bool pend_state(const struct tflow *t, uint8_t *state)
{
	struct ep_flow_key k = {};
	struct ep_health_pend pe;

	memcpy(k.src, t->f.client.addr, sizeof(k.src));
	memcpy(k.dst, t->be.addr, sizeof(k.dst));
	k.sport = htons(t->f.cport);
	k.dport = htons(t->bport);
	k.proto = t->f.proto;
	k.family = t->f.client.family;
	if (bpf_map_lookup_elem(hfds.pend, &k, &pe))
		return false;
	*state = pe.state;
	return true;
}

static uint64_t rtt_total(const struct ep_health_stats *s)
{
	uint64_t n = 0;

	for (int i = 0; i < EP_HEALTH_RTT_BUCKETS; i++)
		n += s->rtt[i];
	return n;
}

#define DELTA(field) (b.field - a.field)

static void test_handshakes(void)
{
	struct ep_health_stats a, b;
	struct tflow t;
	uint8_t st;
	int v;

	/* SYN answered by SYN-ACK */
	if (!tap_ok(open_flow(&t, "192.0.2.1", 40001, "10.0.0.100", 80, P_TCP), "XDP opens a web flow"))
		return;
	a = hs(t.bid);
	v = fwd(&t, TCP_SYN, NULL, 0);
	tap_ok(v == TC_ACT_UNSPEC, "ep_tc_health_fwd hands the SYN on (verdict %s)", bpf_run_tc_str(v));
	tap_ok(pend_state(&t, &st) && st == EP_HEALTH_S_SYN_SENT, "the SYN waits for its answer");
	v = rev(&t, TCP_SYN | TCP_ACK, NULL, 0);
	tap_ok(v == TC_ACT_UNSPEC, "ep_tc_health_rev hands the SYN-ACK on to reverse NAT (%s)",
	       bpf_run_tc_str(v));
	b = hs(t.bid);
	tap_ok(DELTA(syn) == 1 && DELTA(synack) == 1 && DELTA(refused) == 0,
	       "SYN/SYN-ACK: one attempt, one answered (syn +%llu synack +%llu)",
	       (unsigned long long)DELTA(syn), (unsigned long long)DELTA(synack));
	tap_ok(rtt_total(&b) - rtt_total(&a) == 1, "SYN/SYN-ACK: one handshake RTT in the histogram");
	tap_ok(!pend_state(&t, &st), "SYN/SYN-ACK: nothing left to wait for (non-HTTP service)");

	/* RST from the backend on the established flow */
	tap_ok(establish(&t), "the handshake's ACK through XDP: the flow's conntrack entry");
	a = b;
	rev(&t, TCP_RST | TCP_ACK, NULL, 0);
	b = hs(t.bid);
	tap_ok(DELTA(rst) == 1 && DELTA(refused) == 0, "RST mid-flow counts as rst, not refused");

	/* SYN answered by RST */
	if (!open_flow(&t, "192.0.2.2", 40002, "10.0.0.100", 80, P_TCP))
		return;
	a = hs(t.bid);
	fwd(&t, TCP_SYN, NULL, 0);
	rev(&t, TCP_RST | TCP_ACK, NULL, 0);
	b = hs(t.bid);
	tap_ok(DELTA(syn) == 1 && DELTA(refused) == 1 && DELTA(rst) == 0 && DELTA(synack) == 0,
	       "SYN/RST: one attempt, refused (refused +%llu rst +%llu)",
	       (unsigned long long)DELTA(refused), (unsigned long long)DELTA(rst));

	/* unanswered SYN, retransmitted: one attempt, one unanswered */
	if (!open_flow(&t, "192.0.2.3", 40003, "10.0.0.100", 80, P_TCP))
		return;
	a = hs(t.bid);
	memset(unans_syn, 0, sizeof(unans_syn));
	fwd(&t, TCP_SYN, NULL, 0);
	fwd(&t, TCP_SYN, NULL, 0);
	b = hs(t.bid);
	tap_ok(DELTA(syn) == 1 && DELTA(syn_retrans) == 1,
	       "retransmitted SYN: one attempt, one retransmission (syn +%llu retrans +%llu)",
	       (unsigned long long)DELTA(syn), (unsigned long long)DELTA(syn_retrans));
	tap_ok(ep_health_sweep(&hfds, now_ns(), 10ULL * 1000000000ULL, 3600ULL * 1000000000ULL,
			       on_unanswered, NULL) == 0,
	       "a SYN younger than the window is not yet unanswered");
	v = sweep();
	tap_ok(v >= 1 && unans_syn[t.bid] == 1, "unanswered SYN: the sweep counts it once (%llu)",
	       (unsigned long long)unans_syn[t.bid]);
	fwd(&t, TCP_SYN, NULL, 0);
	sweep();
	tap_ok(unans_syn[t.bid] == 1 && pend_state(&t, &st) && st == EP_HEALTH_S_SYN_TIMED_OUT,
	       "a SYN retransmitted after the window is not a second unanswered attempt");
	a = hs(t.bid);
	rev(&t, TCP_SYN | TCP_ACK, NULL, 0);
	b = hs(t.bid);
	tap_ok(DELTA(late) == 1 && DELTA(synack) == 0, "the SYN-ACK after the window counts as late");
}

static void test_udp(void)
{
	struct ep_health_stats a, b;
	struct tflow t;

	if (!tap_ok(open_flow(&t, "192.0.2.10", 50001, "10.0.0.100", 53, P_UDP), "XDP opens a UDP flow"))
		return;
	a = hs(t.bid);
	memset(unans_udp, 0, sizeof(unans_udp));
	fwd(&t, 0, NULL, 20);
	fwd(&t, 0, NULL, 20);
	rev(&t, 0, NULL, 40);
	b = hs(t.bid);
	tap_ok(DELTA(udp_req) == 1 && DELTA(udp_reply) == 1,
	       "UDP request and reply: one request, answered (req +%llu reply +%llu)",
	       (unsigned long long)DELTA(udp_req), (unsigned long long)DELTA(udp_reply));
	fwd(&t, 0, NULL, 20);
	sweep();
	tap_ok(unans_udp[t.bid] == 1, "UDP request without reply: counted unanswered by the sweep");
	a = hs(t.bid);
	fwd(&t, 0, NULL, 20);
	b = hs(t.bid);
	tap_ok(DELTA(udp_req) == 1, "the next request after a timed-out one is a new request");
}

static void http_exchange(struct tflow *t, const char *resp1, const char *resp2)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	fwd(t, TCP_ACK, req, sizeof(req) - 1);
	rev(t, TCP_ACK, resp1, strlen(resp1));
	if (resp2)
		rev(t, TCP_ACK, resp2, strlen(resp2));
}

static void test_http(void)
{
	struct ep_health_stats a, b;
	struct tflow t;
	uint8_t st;

	if (!tap_ok(open_flow(&t, "192.0.2.20", 40020, "10.0.0.101", 80, P_TCP),
		    "XDP opens a flow of the HTTP service"))
		return;
	fwd(&t, TCP_SYN, NULL, 0);
	rev(&t, TCP_SYN | TCP_ACK, NULL, 0);
	tap_ok(pend_state(&t, &st) && st == EP_HEALTH_S_ESTABLISHED,
	       "HTTP service: the flow stays tracked after the handshake");
	tap_ok(establish(&t), "HTTP service: the handshake's ACK through XDP creates the entry");
	a = hs(t.bid);
	http_exchange(&t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL);
	b = hs(t.bid);
	tap_ok(DELTA(http_resp) == 1 && DELTA(http_5xx) == 0, "HTTP 200 first segment: a response, no failure");
	/* The rest of a response is not a status line. */
	a = b;
	rev(&t, TCP_ACK, "HTTP/1.1 500 but only body bytes", 33);
	b = hs(t.bid);
	tap_ok(DELTA(http_resp) == 0 && DELTA(http_5xx) == 0,
	       "a later backend segment without a request in between is not read");
	a = b;
	http_exchange(&t, "HTTP/1.1 503 Service Unavailable\r\n\r\n", NULL);
	b = hs(t.bid);
	tap_ok(DELTA(http_resp) == 1 && DELTA(http_5xx) == 1, "HTTP 503 first segment: a 5xx failure");
	a = b;
	http_exchange(&t, "HTTP/1.1 5", "03 Oops\r\n\r\n");
	b = hs(t.bid);
	tap_ok(DELTA(http_split) == 1 && DELTA(http_resp) == 1 && DELTA(http_5xx) == 1,
	       "status line cut after 10 bytes: reassembled, 503 counted (split +%llu 5xx +%llu)",
	       (unsigned long long)DELTA(http_split), (unsigned long long)DELTA(http_5xx));
	a = b;
	http_exchange(&t, "HTTP/", "1.0 204 No Content\r\n\r\n");
	b = hs(t.bid);
	tap_ok(DELTA(http_split) == 1 && DELTA(http_resp) == 1 && DELTA(http_5xx) == 0,
	       "status line cut after 5 bytes: reassembled, 204 is no failure");
	a = b;
	http_exchange(&t, "SSH-2.0-OpenSSH_9.2\r\n", NULL);
	b = hs(t.bid);
	tap_ok(DELTA(http_unparsed) == 1 && DELTA(http_resp) == 0,
	       "a first segment that is no HTTP/1.x status line is counted unparsed");
	a = b;
	fwd(&t, TCP_FIN | TCP_ACK, NULL, 0);
	tap_ok(!pend_state(&t, &st), "FIN: the flow is forgotten");
}

static void test_not_watched(void)
{
	struct ep_health_stats a, b;
	struct tflow t;
	uint8_t st;

	if (!open_flow(&t, "192.0.2.30", 40030, "10.0.0.102", 80, P_TCP))
		return;
	a = hs(t.bid);
	fwd(&t, TCP_SYN, NULL, 0);
	rev(&t, TCP_RST | TCP_ACK, NULL, 0);
	b = hs(t.bid);
	tap_ok(!pend_state(&t, &st) && DELTA(syn) == 0 && DELTA(refused) == 0,
	       "a service the tap does not watch leaves no trace");
	/* A backend's packets of a flow conntrack does not know (a direct
	 * connection): not balanced, not counted. */
	if (!open_flow(&t, "192.0.2.31", 40031, "10.0.0.100", 80, P_TCP))
		return;
	t.f.cport = 40999;
	a = hs(t.bid);
	fwd(&t, TCP_SYN, NULL, 0);
	b = hs(t.bid);
	tap_ok(DELTA(syn) == 0 && !pend_state(&t, &st), "a flow conntrack does not know is not counted");
}

/* forwarding: redirect: the SYN passes TC egress by; the answers are
 * recognised by the ISN conntrack holds. */
static void test_fwd_unseen(void)
{
	struct ep_health_stats a, b;
	struct tflow t;

	ep_health_set_svc(&hfds, svc_id("web"), EP_HEALTH_F_ON | EP_HEALTH_F_FWD_UNSEEN);
	if (!open_flow(&t, "192.0.2.50", 40050, "10.0.0.100", 80, P_TCP))
		return;
	a = hs(t.bid);
	rev(&t, TCP_SYN | TCP_ACK, NULL, 0);
	b = hs(t.bid);
	tap_ok(DELTA(synack_unseen) == 1 && DELTA(synack) == 0,
	       "redirect mode: a SYN-ACK to an unseen SYN counts as answered (no RTT)");
	if (!open_flow(&t, "192.0.2.51", 40051, "10.0.0.100", 80, P_TCP))
		return;
	a = hs(t.bid);
	rev(&t, TCP_RST | TCP_ACK, NULL, 0);
	b = hs(t.bid);
	tap_ok(DELTA(refused) == 1 && DELTA(rst) == 0,
	       "redirect mode: a RST acknowledging the ISN counts as refused");
	ep_health_set_svc(&hfds, svc_id("web"), EP_HEALTH_F_ON);
	if (!open_flow(&t, "192.0.2.52", 40052, "10.0.0.100", 80, P_TCP))
		return;
	a = hs(t.bid);
	rev(&t, TCP_SYN | TCP_ACK, NULL, 0);
	rev(&t, TCP_RST | TCP_ACK, NULL, 0);
	b = hs(t.bid);
	tap_ok(DELTA(synack_unseen) == 0 && DELTA(rst) == 1 && DELTA(refused) == 0,
	       "stack mode: answers to a SYN the tap never saw are not guessed");
}

static void test_ipv6(void)
{
	struct ep_health_stats a, b;
	struct tflow t;

	if (!tap_ok(open_flow(&t, "2001:db8::1", 40040, "fd00::100", 80, P_TCP), "XDP opens an IPv6 flow"))
		return;
	a = hs(t.bid);
	fwd(&t, TCP_SYN, NULL, 0);
	rev(&t, TCP_RST | TCP_ACK, NULL, 0);
	b = hs(t.bid);
	tap_ok(DELTA(syn) == 1 && DELTA(refused) == 1, "IPv6 SYN/RST: one attempt, refused");
}

/* The canary split itself: 10k client addresses, share and stickiness. */
static bool backend_is_canary(uint32_t bid)
{
	struct ep_backend be;

	return !bpf_map_lookup_elem(fds.backends, &bid, &be) && (be.flags & EP_BE_F_CANARY);
}

static void test_split(void)
{
	const int N = 10000;
	int canary = 0, moved = 0, fails = 0;
	bool *was = calloc((size_t)N, sizeof(bool));
	char ip[32];
	struct tflow t;

	if (!was)
		return;
	for (int i = 0; i < N; i++) {
		snprintf(ip, sizeof(ip), "198.18.%d.%d", i / 250, i % 250 + 1);
		if (!open_flow(&t, ip, 30000, "10.0.0.103", 80, P_TCP)) {
			fails++;
			continue;
		}
		was[i] = backend_is_canary(t.bid);
		canary += was[i];
	}
	tap_ok(fails == 0, "10k clients: every SYN balanced (%d failed)", fails);
	tap_ok(canary >= 900 && canary <= 1100,
	       "10k clients at 10%%: %d went to the canary (9%%..11%% expected)", canary);
	for (int i = 0; i < N; i += 5) {
		snprintf(ip, sizeof(ip), "198.18.%d.%d", i / 250, i % 250 + 1);
		if (open_flow(&t, ip, 31000 + (uint16_t)(i % 1000), "10.0.0.103", 80, P_TCP) &&
		    backend_is_canary(t.bid) != was[i])
			moved++;
	}
	tap_ok(moved == 0, "sticky client: 2000 clients' new flows keep their side (%d moved)", moved);

	/* sticky: flow - the share holds per flow, one client spreads. */
	canary = 0;
	for (int i = 0; i < 4000; i++)
		if (open_flow(&t, "198.19.0.1", (uint16_t)(20000 + i), "10.0.0.104", 80, P_TCP))
			canary += backend_is_canary(t.bid);
	tap_ok(canary >= 850 && canary <= 1150,
	       "sticky flow at 25%%: %d of one client's 4000 flows went to the canary", canary);
	free(was);
}

int main(void)
{
	char err[512] = "";
	int rc;

	ep_log_setup(0, EP_LOG_WARN);
	if (geteuid() != 0)
		return tap_skip_all("needs root (BPF)");
	xskel = xdp_lb__open();
	if (xskel)
		bpf_map__set_max_entries(xskel->maps.ep_ct4, 65536);
	if (!tap_ok(xskel && !xdp_lb__load(xskel), "xdp_lb loaded (maps not pinned)"))
		return tap_done();
	hskel = tc_health__open();
	rc = hskel ? bpf_run_share_maps(hskel->obj, xskel->obj) : -ENOENT;
	if (rc > 0)
		rc = tc_health__load(hskel);
	else if (rc == 0)
		rc = -ENOENT;
	if (!tap_ok(rc == 0, "tc_health loaded sharing the load balancer's maps (rc %d)", rc))
		goto out;
	xdp_fd = bpf_program__fd(xskel->progs.ep_xdp_lb);
	fwd_fd = bpf_program__fd(hskel->progs.ep_tc_health_fwd);
	rev_fd = bpf_program__fd(hskel->progs.ep_tc_health_rev);
	hfds = (struct ep_health_fds){
		.svc = bpf_map__fd(hskel->maps.ep_health_svc),
		.stats = bpf_map__fd(hskel->maps.ep_health_stats),
		.pend = bpf_map__fd(hskel->maps.ep_health_pend),
		.cfg = bpf_map__fd(hskel->maps.ep_health_cfg),
	};
	if (ep_map_fds_from_obj(xskel->obj, &fds))
		tap_diag("a load balancer map is missing from the object");
	tap_ok(ep_services_init(&svcs, &fds) == 0, "ep_services_init");
	build_config();
	rc = ep_services_apply(&svcs, &cfg, err, sizeof(err));
	if (!tap_ok(rc == 0, "ep_services_apply: %zu services (%s)", cfg.n_services, err))
		goto out;
	{
		struct tflow t;
		struct ep_health_stats a, b;

		ep_health_set_svc(&hfds, svc_id("web"), EP_HEALTH_F_ON);
		if (open_flow(&t, "192.0.2.99", 40099, "10.0.0.100", 80, P_TCP)) {
			a = hs(t.bid);
			fwd(&t, TCP_SYN, NULL, 0);
			b = hs(t.bid);
			tap_ok(DELTA(syn) == 0, "no service counted as watched (ep_health_cfg 0): the tap looks at nothing");
		}
		ep_health_set_watched(&hfds, 4);
	}
	ep_health_set_svc(&hfds, svc_id("http"), EP_HEALTH_F_ON | EP_HEALTH_F_HTTP);
	ep_health_set_svc(&hfds, svc_id("dns"), EP_HEALTH_F_ON);
	ep_health_set_svc(&hfds, svc_id("web6"), EP_HEALTH_F_ON);

	test_handshakes();
	test_udp();
	test_http();
	test_not_watched();
	test_ipv6();
	test_fwd_unseen();
	test_split();
	ep_services_free(&svcs);
out:
	tc_health__destroy(hskel);
	xdp_lb__destroy(xskel);
	return tap_done();
}
