/*
 * Per-packet cost of the XDP load balancer through BPF_PROG_TEST_RUN, next to
 * a minimal XDP program (return XDP_PASS) run the same way in the same
 * process. The kernel reports the time of each run itself, so syscall
 * overhead is not in the numbers, but the test-run harness is, equally for
 * both programs: ratios are what matters.
 *
 * A rewriting program cannot be timed with repeat > 1 (every iteration after
 * the first would see already-rewritten bytes), so every case is timed as many
 * single runs on a fresh copy of the packet, checking each verdict.
 *
 * Usage: xdp_cost [RUNS] [JSON_OUT]
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ep_hash.h"
#include "frames.h"
#include "services.h"
#include "xdp_lb.skel.h"

#define VIP "10.0.0.100"

struct pkt {
	unsigned char b[128];
	size_t len;
};

/* Ethernet + IPv4 + TCP SYN with valid checksums. */
static void build_tcp4(struct pkt *p, const char *src, const char *dst, uint16_t sport, uint16_t dport)
{
	struct ep_ip s = IP(src), d = IP(dst);

	memset(p, 0, sizeof(*p));
	p->len = pkt_between(p->b, &s, sport, &d, dport, P_TCP, TCP_SYN, 0, false, 0);
}

static int trivial_prog(void)
{
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS},
		{.code = BPF_JMP | BPF_EXIT},
	};

	return bpf_prog_load(BPF_PROG_TYPE_XDP, "ep_trivial", "GPL", insns, 2, NULL);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	const char *name;
	double median, mean, p90;
	int bad_verdicts;
};

/* runs single test runs; mutate(i) may change the packet (new flow). */
static struct result time_case(const char *name, int prog, struct pkt *tmpl, int runs, int want,
			       void (*before)(int i, struct pkt *p, void *arg), void *arg)
{
	uint32_t *d = calloc((size_t)runs, sizeof(*d));
	struct result r = {.name = name};
	unsigned char out[256];
	double sum = 0;

	for (int i = 0; i < runs; i++) {
		struct pkt p = *tmpl;
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p.b, .data_size_in = (__u32)p.len,
			    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

		if (before)
			before(i, &p, arg);
		if (bpf_prog_test_run_opts(prog, &o) || (int)o.retval != want)
			r.bad_verdicts++;
		d[i] = o.duration;
		sum += o.duration;
	}
	qsort(d, (size_t)runs, sizeof(*d), cmp_u32);
	r.median = d[runs / 2];
	r.p90 = d[runs * 9 / 10];
	r.mean = sum / runs;
	free(d);
	return r;
}

/* New flow every run: the next unused source port (unique across rounds).
 * The conntrack map has room for every one of them, so this measures a
 * new flow on a table that is not full (no eviction on insert). */
static unsigned int next_port = 1024;

static void new_flow(int i, struct pkt *p, void *arg)
{
	uint16_t sport = (uint16_t)next_port++;
	unsigned char *tcp = p->b + 34;

	(void)i;
	(void)arg;
	/* Port change: adjust the TCP checksum incrementally (RFC 1624). */
	unsigned int old = (unsigned int)(tcp[0] << 8 | tcp[1]);
	unsigned int c = (unsigned int)(tcp[16] << 8 | tcp[17]);
	unsigned int s = (~c & 0xffff) + (~old & 0xffff) + sport;

	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	c = ~s & 0xffff;
	tcp[0] = (unsigned char)(sport >> 8);
	tcp[1] = (unsigned char)sport;
	tcp[16] = (unsigned char)(c >> 8);
	tcp[17] = (unsigned char)c;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 20000;

	if (runs < 10 || runs > 60000) {
		fprintf(stderr, "xdp_cost: RUNS must be 10..60000 (new flows need unique ports)\n");
		return 2;
	}
	const char *json = argc > 2 ? argv[2] : NULL;
	struct ep_cfg_backend bes[3] = {};
	struct ep_cfg_service svc = {};
	struct ep_cfg_iface ifc = {};
	struct ep_config cfg = {};
	struct ep_services svcs;
	struct ep_map_fds fds;
	struct xdp_lb *skel;
	struct pkt hit, nonvip;
	char err[256];
	int lb, triv;

	skel = xdp_lb__open();
	if (skel && getenv("CTSIZE")) {
		bpf_map__set_max_entries(skel->maps.ep_ct4, (unsigned)atoi(getenv("CTSIZE")));
		bpf_map__set_max_entries(skel->maps.ep_ct6, (unsigned)atoi(getenv("CTSIZE")));
	}
	if (skel && xdp_lb__load(skel)) {
		xdp_lb__destroy(skel);
		skel = NULL;
	}
	if (!skel) {
		fprintf(stderr, "xdp_cost: cannot load the XDP object: %s\n", strerror(errno));
		return 1;
	}
	if (ep_map_fds_from_obj(skel->obj, &fds)) {
		fprintf(stderr, "xdp_cost: a load balancer map is missing from the object\n");
		return 1;
	}
	for (int i = 0; i < 3; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.1.0.%d", 11 + i);
		ep_ip_parse(a, &bes[i].addr);
		bes[i].port = 8080;
		bes[i].weight = 1;
	}
	snprintf(svc.name, sizeof(svc.name), "web");
	ep_ip_parse(VIP, &svc.vip);
	svc.port = 80;
	svc.proto = IPPROTO_TCP;
	svc.backends = bes;
	svc.n_backends = 3;
	snprintf(ifc.name, sizeof(ifc.name), "lo");
	cfg.services = &svc;
	cfg.n_services = 1;
	cfg.ifaces = &ifc;
	cfg.n_ifaces = 1;
	cfg.datapath.maglev_table_size = EP_MAGLEV_DEFAULT_SIZE;
	if (ep_services_init(&svcs, &fds) || ep_services_apply(&svcs, &cfg, err, sizeof(err))) {
		fprintf(stderr, "xdp_cost: cannot program the service: %s\n", err);
		return 1;
	}
	lb = bpf_program__fd(skel->progs.ep_xdp_lb);
	triv = trivial_prog();
	if (triv < 0) {
		fprintf(stderr, "xdp_cost: cannot load the trivial program: %s\n", strerror(errno));
		return 1;
	}

	build_tcp4(&hit, "192.0.2.7", VIP, 40000, 80);
	build_tcp4(&nonvip, "192.0.2.7", "10.0.0.200", 40000, 80);
	{ /* create the flow once so "hit" is a conntrack hit */
		unsigned char out[256];
		struct pkt p = hit;
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p.b, .data_size_in = (__u32)p.len,
			    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

		bpf_prog_test_run_opts(lb, &o);
	}

	/* Interleave rounds so drift on a shared machine hits every case alike. */
	struct result base = {0}, rhit = {0}, rnew = {0}, rpass = {0};
	const int rounds = 5;

	for (int round = 0; round < rounds; round++) {
		struct result b = time_case("trivial", triv, &hit, runs / rounds, XDP_PASS, NULL, NULL);
		struct result h = time_case("ct_hit", lb, &hit, runs / rounds, XDP_PASS, NULL, NULL);
		struct result n = time_case("new_flow", lb, &hit, runs / rounds, XDP_PASS, new_flow, NULL);
		struct result p = time_case("non_vip_pass", lb, &nonvip, runs / rounds, XDP_PASS, NULL, NULL);
		struct result *acc[] = {&base, &rhit, &rnew, &rpass}, *cur[] = {&b, &h, &n, &p};

		for (int k = 0; k < 4; k++) {
			acc[k]->name = cur[k]->name;
			acc[k]->median += cur[k]->median / rounds;
			acc[k]->mean += cur[k]->mean / rounds;
			acc[k]->p90 += cur[k]->p90 / rounds;
			acc[k]->bad_verdicts += cur[k]->bad_verdicts;
		}
	}

	struct result *all[] = {&base, &rhit, &rnew, &rpass};

	printf("XDP per-packet cost, BPF_PROG_TEST_RUN, %d single runs per case (fresh packet copy each)\n",
	       runs);
	printf("%-14s %10s %10s %10s %12s %8s\n", "case", "median ns", "mean ns", "p90 ns",
	       "x trivial", "bad");
	for (int k = 0; k < 4; k++)
		printf("%-14s %10.1f %10.1f %10.1f %11.2fx %8d\n", all[k]->name, all[k]->median,
		       all[k]->mean, all[k]->p90, all[k]->median / base.median, all[k]->bad_verdicts);
	if (json) {
		FILE *f = fopen(json, "w");

		if (f) {
			fprintf(f, "{\"benchmark\":\"xdp_cost\",\"runs\":%d,\"cases\":{", runs);
			for (int k = 0; k < 4; k++)
				fprintf(f, "%s\"%s\":{\"median_ns\":%.1f,\"mean_ns\":%.1f,\"p90_ns\":%.1f,\"ratio_median\":%.3f,\"bad_verdicts\":%d}",
					k ? "," : "", all[k]->name, all[k]->median, all[k]->mean, all[k]->p90,
					all[k]->median / base.median, all[k]->bad_verdicts);
			fprintf(f, "}}\n");
			fclose(f);
		}
	}
	ep_services_free(&svcs);
	close(triv);
	xdp_lb__destroy(skel);
	return rhit.bad_verdicts || rnew.bad_verdicts || rpass.bad_verdicts ? 1 : 0;
}
