/*
 * Per-packet cost of the canary flow health tap (tc/tc_health.bpf.c) through
 * BPF_PROG_TEST_RUN, next to a trivial TC program run the same way. The tap
 * never rewrites a packet, so each case is one test run with a repeat count;
 * the kernel reports the mean time per run.
 *
 * Cases: a packet of no balanced flow (most of a node's traffic), packets of
 * an established flow of a service the tap does not watch, and of a watched
 * one in both directions, and a retransmitted SYN (the pending-entry path).
 *
 * Usage: health_cost [REPEAT] [JSON_OUT]
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpf_run.h"
#include "config.h"
#include "datapath.h"
#include "frames.h"
#include "health.h"
#include "log.h"
#include "services.h"
#include "svc_cfg.h"
#include "tc_health.skel.h"
#include "xdp_lb.skel.h"

static int trivial_tc(void)
{
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = TC_ACT_UNSPEC},
		{.code = BPF_JMP | BPF_EXIT},
	};

	return bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "ep_trivial_tc", "GPL", insns, 2, NULL);
}

static double ns_per_run(int fd, const uint8_t *pkt, size_t len, int repeat)
{
	uint8_t out[256];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = repeat);

	if (bpf_prog_test_run_opts(fd, &o))
		return -1;
	return (double)o.duration;
}

int main(int argc, char **argv)
{
	int repeat = argc > 1 ? atoi(argv[1]) : 200000;
	const char *json = argc > 2 ? argv[2] : NULL;
	struct xdp_lb *x = NULL;
	struct tc_health *h = NULL;
	struct ep_map_fds fds;
	struct ep_services svcs;
	struct ep_config cfg;
	struct ep_cfg_service *s;
	char err[256] = "";
	int rc = 1, triv;

	ep_log_setup(0, EP_LOG_WARN);
	x = xdp_lb__open_and_load();
	h = x ? tc_health__open() : NULL;
	if (!h || bpf_run_share_maps(h->obj, x->obj) <= 0 || tc_health__load(h)) {
		fprintf(stderr, "health_cost: cannot load the programs (root needed)\n");
		goto out;
	}
	ep_map_fds_from_obj(x->obj, &fds);
	ep_services_init(&svcs, &fds);
	svc_cfg_reset(&cfg, 251);
	s = svc_cfg_add(&cfg, "watched", "10.0.0.100", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.11", 8080, 1);
	s = svc_cfg_add(&cfg, "quiet", "10.0.0.101", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.21", 8080, 1);
	if (ep_services_apply(&svcs, &cfg, err, sizeof(err))) {
		fprintf(stderr, "health_cost: %s\n", err);
		goto out;
	}
	struct ep_health_fds hf = {.svc = bpf_map__fd(h->maps.ep_health_svc),
				   .stats = bpf_map__fd(h->maps.ep_health_stats),
				   .pend = bpf_map__fd(h->maps.ep_health_pend),
				   .cfg = bpf_map__fd(h->maps.ep_health_cfg)};
	ep_health_set_svc(&hf, ep_services_find(&svcs, "watched")->id, EP_HEALTH_F_ON);

	struct ep_ip cl = IP("192.0.2.1"), vip = IP("10.0.0.100"), vipq = IP("10.0.0.101");
	struct ep_ip be = IP("10.1.0.11"), beq = IP("10.1.0.21"), other = IP("198.51.100.7");
	uint8_t p[FRAME_MAX];
	size_t n;
	struct bpf_run r;
	int xfd = bpf_program__fd(x->progs.ep_xdp_lb);
	int fwd = bpf_program__fd(h->progs.ep_tc_health_fwd);
	int rev = bpf_program__fd(h->progs.ep_tc_health_rev);

	/* conntrack entries for both flows, as XDP makes them */
	n = pkt_between(p, &cl, 40000, &vip, 80, P_TCP, TCP_SYN, 0, false, 0);
	bpf_run(xfd, p, n, &r);
	n = pkt_between(p, &cl, 40001, &vipq, 80, P_TCP, TCP_SYN, 0, false, 0);
	bpf_run(xfd, p, n, &r);
	triv = trivial_tc();

	struct {
		const char *name;
		int fd;
		const struct ep_ip *src, *dst;
		uint16_t sport, dport;
		uint8_t flags;
		size_t payload;
	} cases[] = {
		{"trivial TC program (baseline)", -1, &cl, &be, 40000, 8080, TCP_ACK, 100},
		{"fwd: packet of no balanced flow", 0, &cl, &other, 40000, 443, TCP_ACK, 100},
		{"rev: packet of no balanced flow", 1, &other, &cl, 443, 40000, TCP_ACK, 100},
		{"fwd: data, service not watched", 0, &cl, &beq, 40001, 8080, TCP_ACK, 100},
		{"fwd: data, watched service", 0, &cl, &be, 40000, 8080, TCP_ACK, 100},
		{"rev: data, watched service", 1, &be, &cl, 8080, 40000, TCP_ACK, 100},
		{"fwd: SYN retransmission, watched", 0, &cl, &be, 40000, 8080, TCP_SYN, 0},
	};
	FILE *jf = json ? fopen(json, "w") : NULL;
	double base = 0;

	if (jf)
		fprintf(jf, "{\"repeat\": %d, \"cases\": [", repeat);
	printf("%-36s %10s %10s\n", "case", "ns/packet", "over base");
	{
		double t0, t1;

		n = pkt_between(p, &cl, 40000, &be, 8080, P_TCP, TCP_ACK, 0, false, 100);
		t0 = ns_per_run(triv, p, n, repeat);
		t1 = ns_per_run(fwd, p, n, repeat);
		printf("%-36s %10.1f %10.1f\n", "no watched service on the node", t1, t1 - t0);
		if (jf)
			fprintf(jf, "{\"case\": \"no watched service on the node\", \"ns\": %.1f, "
				    "\"over_baseline_ns\": %.1f}, ", t1, t1 - t0);
		ep_health_set_watched(&hf, 1);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = cases[i].fd < 0 ? triv : cases[i].fd ? rev : fwd;
		double ns;

		n = pkt_between(p, cases[i].src, cases[i].sport, cases[i].dst, cases[i].dport, P_TCP,
				cases[i].flags, 0, false, cases[i].payload);
		ns = ns_per_run(fd, p, n, repeat);
		if (i == 0)
			base = ns;
		printf("%-36s %10.1f %10.1f\n", cases[i].name, ns, ns - base);
		if (jf)
			fprintf(jf, "%s{\"case\": \"%s\", \"ns\": %.1f, \"over_baseline_ns\": %.1f}",
				i ? ", " : "", cases[i].name, ns, ns - base);
	}
	if (jf) {
		fprintf(jf, "]}\n");
		fclose(jf);
	}
	ep_services_free(&svcs);
	if (triv >= 0)
		close(triv);
	rc = 0;
out:
	tc_health__destroy(h);
	xdp_lb__destroy(x);
	return rc;
}
