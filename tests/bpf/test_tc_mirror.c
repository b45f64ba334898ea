/*
 * Traffic mirroring (tc/tc_mirror.bpf.c) through BPF_PROG_TEST_RUN.
 *
 * xdp_lb and tc_mirror share every map; the services are programmed by the
 * agent code and flows are opened by running XDP on client packets. Then
 * the client's packet as XDP left it (client -> backend) and the backend's
 * reply (backend -> client) go through ep_tc_mirror, whose clone target is
 * the loopback device of a private network namespace. Checked: the sampled
 * set of flows is exactly what ep_mirror_hash predicts, both directions of
 * a flow agree, the share is near the configured one, packets of no flow
 * are ignored, the token bucket passes its burst and counts the rest as
 * rate_limit drops, a missing target counts clone_failed, and the packet
 * itself always leaves unchanged with TC_ACT_UNSPEC.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "bpf_run.h"
#include "config.h"
#include "datapath.h"
#include "edgeplane_abi.h"
#include "ep_mirror.h"
#include "frames.h"
#include "log.h"
#include "services.h"
#include "svc_cfg.h"
#include "tap.h"
#include "tc_mirror.skel.h"
#include "xdp_lb.skel.h"

static struct xdp_lb *xskel;
static struct tc_mirror *mskel;
static struct ep_map_fds fds;
static struct ep_services svcs;
static int xdp_fd, mirror_fd, cfg_fd, tb_fd, stats_fd;
static struct bpf_run R;
static struct ep_config cfg;

static struct ep_mirror_stats stats_of(uint32_t id)
{
	struct ep_mirror_stats s;

	bpf_run_percpu_sum(stats_fd, &id, &s, sizeof(s));
	return s;
}

static uint32_t svc_id(const char *name)
{
	const struct ep_svc_state *st = ep_services_find(&svcs, name);

	return st ? st->id : 0;
}

static void set_mirror(uint32_t id, uint32_t ifindex, uint16_t bp, uint64_t rate, uint64_t burst)
{
	struct ep_mirror_cfg v = {.ifindex = ifindex, .percent_bp = bp, .rate_bps = rate,
				  .burst_bytes = burst};
	struct ep_mirror_tb tb = {.tokens = burst};

	bpf_map_update_elem(cfg_fd, &id, &v, BPF_ANY);
	/* A full bucket: at a low rate only the burst counts. */
	bpf_map_update_elem(tb_fd, &id, &tb, BPF_ANY);
}

/* Runs ep_tc_mirror; true when it left the frame alone and handed it on. */
static bool run_mirror(const uint8_t *in, size_t len)
{
	bpf_run(mirror_fd, in, len, &R);
	return R.err == 0 && R.verdict == TC_ACT_UNSPEC && R.outlen == len && !memcmp(R.out, in, len);
}

/* The client's packet after XDP (client -> backend), into out. */
static size_t forward_frame(const struct flow *f, uint8_t *out, struct ep_ip *bip, uint16_t *bport)
{
	uint8_t in[FRAME_MAX];
	size_t n = flow_pkt(in, f, 0, false, 32);
	struct parsed p;

	bpf_run(xdp_fd, in, n, &R);
	if (R.err || R.verdict != XDP_PASS)
		return 0;
	memcpy(out, R.out, R.outlen);
	parse_frame(out, R.outlen, &p);
	*bip = p.dst;
	*bport = p.dport;
	return R.outlen;
}

static int lo_up(void)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	if (!rc)
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	close(fd);
	return rc ? -errno : 0;
}

/* 2,000 flows of one client address at half share: exactly the predicted
 * ones are cloned, in both directions. */
static void test_sampling(const char *svc, const char *client, const char *vip, uint16_t vport,
			  uint8_t proto)
{
	uint32_t id = svc_id(svc);
	unsigned n = 2000, predicted = 0, agree = 0, both = 0, untouched = 0;

	set_mirror(id, 1, 5000, EP_MIRROR_MAX_RATE, 1ULL << 40);
	for (unsigned i = 0; i < n; i++) {
		struct flow f = mkflow(client, (uint16_t)(20000 + i), vip, vport, proto);
		struct ep_flow_key k = flow_key(&f);
		bool want = ep_mirror_sampled(ep_mirror_hash(&k), 5000);
		uint8_t fwd[FRAME_MAX], rep[FRAME_MAX];
		struct ep_mirror_stats s0, s1, s2;
		struct ep_ip bip;
		uint16_t bport;
		size_t fn = forward_frame(&f, fwd, &bip, &bport), rn;

		if (!fn)
			continue;
		rn = pkt_between(rep, &bip, bport, &f.client, f.cport, proto, TCP_SYN | TCP_ACK, 0,
				 false, 32);
		s0 = stats_of(id);
		untouched += run_mirror(fwd, fn);
		s1 = stats_of(id);
		untouched += run_mirror(rep, rn);
		s2 = stats_of(id);
		predicted += want;
		agree += (s1.packets - s0.packets == (uint64_t)want);
		both += (s2.packets - s1.packets == s1.packets - s0.packets);
	}
	tap_ok(agree == n, "%s: the cloned flows are exactly those ep_mirror_hash samples (%u/%u)",
	       svc, agree, n);
	tap_ok(both == n, "%s: a flow's reply is cloned iff its request was (%u/%u)", svc, both, n);
	tap_ok(predicted > n * 45 / 100 && predicted < n * 55 / 100,
	       "%s: 50%% share sampled %u of %u flows (45..55%%)", svc, predicted, n);
	tap_ok(untouched == 2 * n, "%s: every packet left unchanged with TC_ACT_UNSPEC (%u/%u)", svc,
	       untouched, 2 * n);
	set_mirror(id, 0, 0, 0, 0);
}

static void test_not_a_flow(void)
{
	uint32_t id = svc_id("web4");
	struct ep_ip c = IP("10.9.9.9"), be = IP("10.1.0.11"), other = IP("10.3.3.3");
	uint8_t fr[FRAME_MAX];
	struct ep_mirror_stats s0, s1;
	size_t n;
	bool ok = true;

	set_mirror(id, 1, 10000, EP_MIRROR_MAX_RATE, 1ULL << 40);
	s0 = stats_of(id);
	/* A direct connection to a backend, never through the VIP. */
	n = pkt_between(fr, &c, 33333, &be, 8080, P_TCP, TCP_SYN, 0, false, 0);
	ok &= run_mirror(fr, n);
	n = pkt_between(fr, &be, 8080, &c, 33333, P_TCP, TCP_SYN | TCP_ACK, 0, false, 0);
	ok &= run_mirror(fr, n);
	/* Neither end a backend. */
	n = pkt_between(fr, &c, 33333, &other, 80, P_UDP, 0, 0, false, 10);
	ok &= run_mirror(fr, n);
	s1 = stats_of(id);
	tap_ok(ok, "packets of no balanced flow: unchanged, TC_ACT_UNSPEC");
	tap_ok(s1.packets == s0.packets && s1.drops[0] == s0.drops[0],
	       "packets of no balanced flow: nothing cloned or counted at 100%% share");
	set_mirror(id, 0, 0, 0, 0);
}

static void test_bucket(void)
{
	uint32_t id = svc_id("web4");
	struct flow f = mkflow("10.9.0.1", 40000, "10.0.0.100", 80, P_TCP);
	uint8_t fwd[FRAME_MAX];
	struct ep_mirror_stats s0, s1;
	struct ep_ip bip;
	uint16_t bport;
	size_t n = forward_frame(&f, fwd, &bip, &bport);
	bool ok = n > 0;

	/* 1 byte/s: within the test nothing refills; the burst is 5 frames. */
	set_mirror(id, 1, 10000, 1, 5 * n);
	s0 = stats_of(id);
	for (int i = 0; i < 20; i++)
		ok &= run_mirror(fwd, n);
	s1 = stats_of(id);
	tap_ok(ok, "token bucket: all 20 packets unchanged, TC_ACT_UNSPEC");
	if (!tap_ok(s1.packets - s0.packets == 5 &&
			    s1.drops[EP_MIRROR_DROP_RATE_LIMIT] - s0.drops[EP_MIRROR_DROP_RATE_LIMIT] == 15,
		    "token bucket: a burst of 5 frames cloned, 15 counted as rate_limit"))
		tap_diag("  cloned %llu, rate_limit %llu", (unsigned long long)(s1.packets - s0.packets),
			 (unsigned long long)(s1.drops[0] - s0.drops[0]));
	tap_ok(s1.bytes - s0.bytes == 5 * n && s1.drop_bytes - s0.drop_bytes == 15 * n,
	       "token bucket: bytes counted (%zu per frame)", n);

	/* A target that does not exist. */
	set_mirror(id, 999999, 10000, EP_MIRROR_MAX_RATE, 1ULL << 40);
	s0 = stats_of(id);
	ok = run_mirror(fwd, n);
	s1 = stats_of(id);
	tap_ok(ok && s1.drops[EP_MIRROR_DROP_CLONE] - s0.drops[EP_MIRROR_DROP_CLONE] == 1 &&
		       s1.packets == s0.packets,
	       "missing target: counted clone_failed, packet unchanged");
	set_mirror(id, 0, 0, 0, 0);
}

/* The bucket's arithmetic in user space (the same inline function). */
static void test_bucket_math(void)
{
	__u64 tok = 0, last = 0, s = EP_NS_PER_S;
	int ok;

	ok = ep_mirror_tb_take(&tok, &last, 100 * s, 1000, 3000, 2000);
	tap_ok(ok && tok == 1000, "bucket: idle for long, filled to the burst, 2000 taken");
	ok = ep_mirror_tb_take(&tok, &last, 100 * s, 1000, 3000, 2000);
	tap_ok(!ok && tok == 1000, "bucket: 2000 more refused, the credit kept");
	ok = ep_mirror_tb_take(&tok, &last, 101 * s, 1000, 3000, 2000);
	tap_ok(ok && tok == 0, "bucket: one second refills 1000 bytes");
	/* 100 packets 1 ms apart at 1000 B/s: 1 byte per ms must add up. */
	for (int i = 1; i <= 100; i++)
		ep_mirror_tb_take(&tok, &last, 101 * s + (__u64)i * 1000000, 1000, 3000, 0);
	tap_ok(tok == 100, "bucket: refills in steps smaller than a byte add up (%llu of 100)",
	       (unsigned long long)tok);
	tok = 0;
	last = 0;
	ep_mirror_tb_take(&tok, &last, ~0ULL / 2, EP_MIRROR_MAX_RATE, ~0ULL, 0);
	tap_ok(tok == 60 * EP_MIRROR_MAX_RATE, "bucket: at the maximum rate an idle minute credits "
						"without overflow");
}

int main(void)
{
	char err[512] = "";
	struct ep_cfg_service *s;
	int rc;

	ep_log_setup(0, EP_LOG_WARN);
	test_bucket_math();
	if (geteuid() != 0) {
		tap_skip("needs root", "the BPF checks (ep_tc_mirror under BPF_PROG_TEST_RUN)");
		return tap_done();
	}
	if (unshare(CLONE_NEWNET))
		tap_diag("unshare(CLONE_NEWNET) failed: %s", strerror(errno));
	if (!tap_ok(lo_up() == 0, "loopback of a private namespace up (the clone target)"))
		return tap_done();

	xskel = xdp_lb__open_and_load();
	if (!tap_ok(xskel != NULL, "xdp_lb loaded"))
		return tap_done();
	mskel = tc_mirror__open();
	rc = mskel ? bpf_run_share_maps(mskel->obj, xskel->obj) : -ENOENT;
	if (rc > 0)
		rc = tc_mirror__load(mskel);
	if (!tap_ok(rc == 0, "tc_mirror loaded (the verifier accepts it) sharing xdp_lb's maps (%d)",
		    rc))
		goto out;
	xdp_fd = bpf_program__fd(xskel->progs.ep_xdp_lb);
	mirror_fd = bpf_program__fd(mskel->progs.ep_tc_mirror);
	cfg_fd = bpf_map__fd(mskel->maps.ep_mirror_cfg);
	tb_fd = bpf_map__fd(mskel->maps.ep_mirror_tb);
	stats_fd = bpf_map__fd(mskel->maps.ep_mirror_stats);
	ep_map_fds_from_obj(xskel->obj, &fds);
	tap_ok(ep_services_init(&svcs, &fds) == 0, "ep_services_init");
	svc_cfg_reset(&cfg, 251);
	svc_cfg_add_web_dns(&cfg);
	s = svc_cfg_add(&cfg, "shared", "10.0.0.101", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.11", 8080, 1);
	rc = ep_services_apply(&svcs, &cfg, err, sizeof(err));
	if (!tap_ok(rc == 0, "services applied (%s)", err))
		goto out;

	test_sampling("web4", "10.9.0.1", "10.0.0.100", 80, P_TCP);
	test_sampling("dns4", "10.9.0.2", "10.0.0.100", 53, P_UDP);
	test_sampling("web6", "fd09::1", "fd00::100", 80, P_TCP);
	test_sampling("dns6", "fd09::2", "fd00::100", 53, P_UDP);
	test_not_a_flow();
	test_bucket();
	ep_services_free(&svcs);
out:
	tc_mirror__destroy(mskel);
	xdp_lb__destroy(xskel);
	return tap_done();
}
