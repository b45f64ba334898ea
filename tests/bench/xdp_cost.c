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
 * Cases: a conntrack hit (an ACK of an established flow), a new flow (a TCP
 * SYN from a new source port), the ACK completing a new flow's handshake
 * (where the conntrack entry is created; its SYN runs first, untimed), an
 * orphan ACK (a packet of a connection the balancer has no entry for: an
 * evicted flow, or a spoofed ACK of a flood) and a packet to an address that
 * is no VIP.
 *
 * Then the program alone, without the harness (see steady_ns): a conntrack
 * hit and a non-VIP packet, each run with repeat > 1.
 *
 * With XDP_COST_BASELINE=path/to/xdp_lb.bpf.o (tests/bench/run.sh builds the
 * previous commit's object there), that object is timed in the same rounds,
 * interleaved, and both are reported side by side.
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
#include "conntrack.h"
#include "ep_hash.h"
#include "frames.h"
#include "services.h"
#include "xdp_lb.skel.h"

#define VIP "10.0.0.100"

struct pkt {
	unsigned char b[128];
	size_t len;
};

/* Ethernet + IPv4 + TCP with valid checksums. An ACK is the client's
 * handshake ACK (seq = ISN + 1); the checksum is recomputed. */
static void build_tcp4(struct pkt *p, const char *src, const char *dst, uint16_t sport,
		       uint16_t dport, uint8_t flags)
{
	struct ep_ip s = IP(src), d = IP(dst);

	memset(p, 0, sizeof(*p));
	p->len = pkt_between(p->b, &s, sport, &d, dport, P_TCP, flags, 0, false, 0);
	if (flags & TCP_ACK)
		tcp_set_seq(p->b, p->len, FRAME_ISN + 1);
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

/* A new flow every run: the next unused source address:port (unique across
 * rounds and objects). The conntrack map has room for every one of them, so
 * this measures a new flow on a table that is not full (no eviction). */
static unsigned int next_flow;

static void fresh_flow(struct pkt *p, uint8_t flags)
{
	unsigned int n = next_flow++;
	char src[32];

	snprintf(src, sizeof(src), "172.%u.%u.%u", 16 + n / 16000000 % 16, n / 64000 % 250,
		 1 + n / 250 % 250);
	build_tcp4(p, src, VIP, (uint16_t)(1024 + n % 250 * 200 + n / 62500 % 200), 80, flags);
}

/* new_flow: the SYN of a new connection. */
static void new_syn(int i, struct pkt *p, void *arg)
{
	(void)i;
	(void)arg;
	fresh_flow(p, TCP_SYN);
}

/* orphan_ack: an ACK of a connection never seen (a new source port). */
static void orphan_ack(int i, struct pkt *p, void *arg)
{
	(void)i;
	(void)arg;
	fresh_flow(p, TCP_ACK);
}

/* handshake_ack: the ACK completing a new connection; its SYN runs first
 * (untimed), as it would have on the wire. */
static void new_ack(int i, struct pkt *p, void *arg)
{
	unsigned int n = next_flow;
	unsigned char out[256];
	struct pkt syn;
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

	(void)i;
	fresh_flow(&syn, TCP_SYN);
	next_flow = n;
	fresh_flow(p, TCP_ACK);
	o.data_in = syn.b;
	o.data_size_in = (__u32)syn.len;
	bpf_prog_test_run_opts(*(int *)arg, &o);
}

/* One load balancer object, programmed with the same service. */
struct lb {
	const char *label;
	struct bpf_object *obj;
	struct xdp_lb *skel;
	struct ep_services svcs;
	int prog;
};

/* A baseline from before the rings were packed: the service is programmed
 * through a stand-in ep_rings, and each ring copied into the object's
 * ep_maglev one slot per element, as that build's agent wrote it. */
static int unpack_rings(int packed, int unpacked, uint32_t slots)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
	struct ep_ring_chunk chunk;
	int rc = 0;

	for (__u32 idx = 0; idx < EP_MAX_SERVICES * EP_RINGS_PER_SVC && !rc; idx++) {
		__u32 id;
		int in, out;

		if (bpf_map_lookup_elem(packed, &idx, &id))
			continue;
		in = bpf_map_get_fd_by_id(id);
		out = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ep_ring", 4, 4, slots, &opts);
		if (in < 0 || out < 0)
			rc = -1;
		for (__u32 s = 0; s < slots && !rc; s++) {
			__u32 c = s / EP_RING_CHUNK_SLOTS;

			if (bpf_map_lookup_elem(in, &c, &chunk) ||
			    bpf_map_update_elem(out, &s, &chunk.backend_id[s % EP_RING_CHUNK_SLOTS], BPF_ANY))
				rc = -1;
		}
		if (!rc && bpf_map_update_elem(unpacked, &idx, &out, BPF_ANY))
			rc = -1;
		if (in >= 0)
			close(in);
		if (out >= 0)
			close(out);
	}
	return rc;
}

static int lb_program(struct lb *l, struct ep_config *cfg)
{
	struct ep_map_fds fds;
	char err[256] = "";
	int standin = -1, rc = 0;

	if (ep_map_fds_from_obj(l->obj, &fds)) {
		fprintf(stderr, "xdp_cost: %s: a load balancer map is missing from the object\n",
			l->label);
		return -1;
	}
	if (fds.maglev < 0) {
		LIBBPF_OPTS(bpf_map_create_opts, t, .map_flags = BPF_F_INNER_MAP);
		int tmpl = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ep_ring", 4, sizeof(struct ep_ring_chunk),
					  1, &t);
		LIBBPF_OPTS(bpf_map_create_opts, o, .inner_map_fd = tmpl);

		standin = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "ep_rings", 4, 4,
					 EP_MAX_SERVICES * EP_RINGS_PER_SVC, &o);
		if (tmpl >= 0)
			close(tmpl);
		fds.maglev = standin;
	}
	if (ep_services_init(&l->svcs, &fds) || ep_services_apply(&l->svcs, cfg, err, sizeof(err))) {
		fprintf(stderr, "xdp_cost: %s: cannot program the service: %s\n", l->label, err);
		rc = -1;
	} else if (standin >= 0 &&
		   unpack_rings(standin, fds.maglev_unpacked, cfg->datapath.maglev_table_size)) {
		fprintf(stderr, "xdp_cost: %s: cannot copy the rings into ep_maglev\n", l->label);
		rc = -1;
	}
	if (standin >= 0)
		close(standin);
	return rc;
}

static void set_ct_size(struct bpf_object *obj)
{
	const char *sz = getenv("CTSIZE");

	if (!sz)
		return;
	for (const char **n = (const char *[]){"ep_ct4", "ep_ct6", "ep_ctu4", "ep_ctu6", NULL}; *n; n++) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, *n);

		/* a table of buckets (this build) or an LRU map of entries */
		if (m)
			bpf_map__set_max_entries(m, bpf_map__type(m) == BPF_MAP_TYPE_ARRAY
							    ? ep_ct_buckets((unsigned)atoi(sz))
							    : (unsigned)atoi(sz));
	}
}

static int lb_open_current(struct lb *l)
{
	l->label = "this build";
	l->skel = xdp_lb__open();
	if (!l->skel)
		return -1;
	set_ct_size(l->skel->obj);
	if (xdp_lb__load(l->skel)) {
		xdp_lb__destroy(l->skel);
		l->skel = NULL;
		return -1;
	}
	l->obj = l->skel->obj;
	l->prog = bpf_program__fd(l->skel->progs.ep_xdp_lb);
	return 0;
}

static int lb_open_file(struct lb *l, const char *path)
{
	struct bpf_program *prog;

	l->label = "baseline";
	l->obj = bpf_object__open_file(path, NULL);
	if (!l->obj)
		return -1;
	set_ct_size(l->obj);
	if (bpf_object__load(l->obj)) {
		bpf_object__close(l->obj);
		l->obj = NULL;
		return -1;
	}
	prog = bpf_object__find_program_by_name(l->obj, "ep_xdp_lb");
	l->prog = prog ? bpf_program__fd(prog) : -1;
	return l->prog < 0 ? -1 : 0;
}

#define NCASES 6

/*
 * The program alone, without the test-run harness: a single run's duration
 * includes two clock reads, and on some machines the clock moves in 10 ns
 * steps (the trivial program then reads 30 or 40 ns, a conntrack hit 60),
 * so medians of single runs jump between steps. A conntrack hit can be run
 * with repeat > 1 when its rewrite changes nothing: the known flow's entry
 * is pointed at the VIP itself (VIP:80 -> VIP:80, checksums unchanged), so
 * every repeat is the same hit on a warm cache. Median of STEADY_ROUNDS.
 */
#define STEADY_REPEAT 100000
#define STEADY_ROUNDS 15

static double steady_run(int prog, struct pkt *p, int want)
{
	unsigned char out[256];
	struct pkt c = *p;
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = c.b, .data_size_in = (__u32)c.len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = STEADY_REPEAT);

	if (bpf_prog_test_run_opts(prog, &o) || (int)o.retval != want)
		return -1;
	return o.duration;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double steady_median(double *d)
{
	qsort(d, STEADY_ROUNDS, sizeof(*d), cmp_double);
	return d[0] < 0 ? -1 : d[STEADY_ROUNDS / 2];
}

/* Points the known flow's conntrack entry at the VIP itself. */
static int hit_in_place(struct bpf_object *obj, const char *src, uint16_t sport)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, "ep_ct4");
	struct ep_flow_key4 k = {.sport = htons(sport), .dport = htons(80)};
	unsigned char key[16] = {0};
	struct ep_ct_entry v;
	int fd = m ? bpf_map__fd(m) : -1;

	inet_pton(AF_INET, src, &k.src);
	inet_pton(AF_INET, VIP, &k.dst);
	if (fd >= 0 && bpf_map__type(m) == BPF_MAP_TYPE_ARRAY) {
		/* this build's table of buckets */
		struct ep_ct_fds fds = {.v4 = fd, .u4 = fd};
		struct ep_flow_key fk = {.src = {k.src}, .dst = {k.dst}, .sport = k.sport,
					 .dport = k.dport, .proto = IPPROTO_TCP, .family = EP_FAMILY_V4};

		if (ep_ct_get(&fds, &fk, &v))
			return -1;
		memset(v.baddr, 0, sizeof(v.baddr));
		v.baddr[0] = k.dst;
		v.bport = k.dport;
		return ep_ct_put(&fds, &fk, &v);
	}
	if (fd < 0 || bpf_map__key_size(m) > sizeof(key))
		return -1;
	memcpy(key, &k, sizeof(k));
	/* A baseline built before the 12-byte key has the protocol next. */
	if (bpf_map__key_size(m) == 16)
		key[12] = IPPROTO_TCP;
	/* A baseline may not have recorded the flow (another conntrack rule):
	 * then the entry is made here, naming the first backend. */
	if (bpf_map_lookup_elem(fd, key, &v)) {
		memset(&v, 0, sizeof(v));
		v.backend_id = 1;
	}
	memset(v.baddr, 0, sizeof(v.baddr));
	v.baddr[0] = k.dst;
	v.bport = k.dport;
	return bpf_map_update_elem(fd, key, &v, BPF_ANY);
}

static void steady_row(const char *name, double ns, double triv, const char *label)
{
	if (ns < 0 || triv < 0)
		printf("%-14s %10s %14s %14s\n", name, "n/a", "(not timed)", label);
	else
		printf("%-14s %10.2f %14.2f %14s\n", name, ns, ns - triv, label);
}

static void accumulate(struct result *acc, const struct result *cur, int rounds)
{
	acc->name = cur->name;
	acc->median += cur->median / rounds;
	acc->mean += cur->mean / rounds;
	acc->p90 += cur->p90 / rounds;
	acc->bad_verdicts += cur->bad_verdicts;
}

static void print_table(const char *label, struct result *r, double base)
{
	printf("%s\n", label);
	printf("%-14s %10s %10s %10s %12s %8s\n", "case", "median ns", "mean ns", "p90 ns",
	       "x trivial", "bad");
	for (int k = 0; k < NCASES; k++)
		printf("%-14s %10.1f %10.1f %10.1f %11.2fx %8d\n", r[k].name, r[k].median, r[k].mean,
		       r[k].p90, r[k].median / base, r[k].bad_verdicts);
}

static void json_cases(FILE *f, struct result *r, double base)
{
	for (int k = 0; k < NCASES; k++)
		fprintf(f, "%s\"%s\":{\"median_ns\":%.1f,\"mean_ns\":%.1f,\"p90_ns\":%.1f,\"ratio_median\":%.3f,\"bad_verdicts\":%d}",
			k ? "," : "", r[k].name, r[k].median, r[k].mean, r[k].p90, r[k].median / base,
			r[k].bad_verdicts);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 20000;

	if (runs < 10 || runs > 1000000) {
		fprintf(stderr, "xdp_cost: RUNS must be 10..1000000\n");
		return 2;
	}
	const char *json = argc > 2 ? argv[2] : NULL;
	const char *base_obj = getenv("XDP_COST_BASELINE");
	struct ep_cfg_backend bes[3] = {};
	struct ep_cfg_service svc = {};
	struct ep_cfg_iface ifc = {};
	struct ep_config cfg = {};
	struct lb lbs[2] = {0};
	int nlb = 1, triv, bad = 0;
	struct pkt hit, hit_syn, nonvip;

	if (lb_open_current(&lbs[0])) {
		fprintf(stderr, "xdp_cost: cannot load the XDP object: %s\n", strerror(errno));
		return 1;
	}
	if (base_obj && *base_obj) {
		/* A baseline from another ABI may not load or take this build's
		 * service layout: then this build alone, said so. */
		if (lb_open_file(&lbs[1], base_obj))
			fprintf(stderr, "xdp_cost: cannot load the baseline object %s (%s): this build only\n",
				base_obj, strerror(errno));
		else
			nlb = 2;
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
	if (lb_program(&lbs[0], &cfg))
		return 1;
	if (nlb == 2 && lb_program(&lbs[1], &cfg)) {
		fprintf(stderr, "xdp_cost: the baseline object cannot be programmed: this build only\n");
		bpf_object__close(lbs[1].obj);
		nlb = 1;
	}
	triv = trivial_prog();
	if (triv < 0) {
		fprintf(stderr, "xdp_cost: cannot load the trivial program: %s\n", strerror(errno));
		return 1;
	}

	/* The known flow: its handshake (SYN, then ACK) ran once, so its
	 * packets (ACKs) are conntrack hits, with either object's rules. */
	build_tcp4(&hit_syn, "192.0.2.7", VIP, 40000, 80, TCP_SYN);
	build_tcp4(&hit, "192.0.2.7", VIP, 40000, 80, TCP_ACK);
	build_tcp4(&nonvip, "192.0.2.7", "10.0.0.200", 40000, 80, TCP_ACK);
	for (int l = 0; l < nlb; l++) {
		struct pkt *hs[2] = {&hit_syn, &hit};

		for (int k = 0; k < 2; k++) {
			unsigned char out[256];
			struct pkt p = *hs[k];
			LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p.b, .data_size_in = (__u32)p.len,
				    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

			bpf_prog_test_run_opts(lbs[l].prog, &o);
		}
	}

	/* Interleave rounds so drift on a shared machine hits every case and
	 * object alike. */
	struct result base = {0}, res[2][NCASES];
	const int rounds = 10;

	memset(res, 0, sizeof(res));
	for (int round = 0; round < rounds; round++) {
		struct result b = time_case("trivial", triv, &hit, runs / rounds, XDP_PASS, NULL, NULL);

		accumulate(&base, &b, rounds);
		/* Whichever object runs first in a round was measured cheaper
		 * (the same object timed against itself: 1.63-1.75x first,
		 * 1.70-1.94x second), so the order alternates. */
		for (int j = 0; j < nlb; j++) {
			int l = round % 2 ? nlb - 1 - j : j;
			int fd = lbs[l].prog;
			struct result cur[NCASES] = {
				b,
				time_case("ct_hit", fd, &hit, runs / rounds, XDP_PASS, NULL, NULL),
				time_case("new_flow", fd, &hit, runs / rounds, XDP_PASS, new_syn, NULL),
				time_case("handshake_ack", fd, &hit, runs / rounds, XDP_PASS, new_ack, &fd),
				time_case("orphan_ack", fd, &hit, runs / rounds, XDP_PASS, orphan_ack, NULL),
				time_case("non_vip_pass", fd, &nonvip, runs / rounds, XDP_PASS, NULL, NULL),
			};

			for (int k = 1; k < NCASES; k++)
				accumulate(&res[l][k], &cur[k], rounds);
		}
	}
	for (int l = 0; l < nlb; l++) {
		res[l][0] = base;
		for (int k = 1; k < NCASES; k++)
			bad += res[l][k].bad_verdicts;
	}

	/* After the rounds: the entry rewritten here is no longer a real
	 * backend's. */
	double st_triv, st_hit[2] = {-1, -1}, st_nonvip[2] = {-1, -1};
	double d_triv[STEADY_ROUNDS], d_hit[2][STEADY_ROUNDS], d_nonvip[2][STEADY_ROUNDS];
	int in_place[2];

	for (int l = 0; l < nlb; l++)
		in_place[l] = hit_in_place(lbs[l].obj, "192.0.2.7", 40000) == 0;
	for (int r = 0; r < STEADY_ROUNDS; r++) {
		d_triv[r] = steady_run(triv, &hit, XDP_PASS);
		for (int j = 0; j < nlb; j++) {
			int l = r % 2 ? nlb - 1 - j : j;

			d_hit[l][r] = in_place[l] ? steady_run(lbs[l].prog, &hit, XDP_PASS) : -1;
			d_nonvip[l][r] = steady_run(lbs[l].prog, &nonvip, XDP_PASS);
		}
	}
	st_triv = steady_median(d_triv);
	for (int l = 0; l < nlb; l++) {
		st_hit[l] = steady_median(d_hit[l]);
		st_nonvip[l] = steady_median(d_nonvip[l]);
	}

	printf("XDP per-packet cost, BPF_PROG_TEST_RUN, %d single runs per case (fresh packet copy each)\n",
	       runs);
	print_table(nlb > 1 ? "== this build" : "", res[0], base.median);
	if (nlb > 1) {
		print_table("== baseline (XDP_COST_BASELINE)", res[1], base.median);
		printf("\n%-14s %14s %14s\n", "x trivial", "this build", "baseline");
		for (int k = 1; k < NCASES; k++)
			printf("%-14s %13.2fx %13.2fx\n", res[0][k].name, res[0][k].median / base.median,
			       res[1][k].median / base.median);
	}
	printf("\nthe program alone (repeat %d, median of %d; no harness, warm cache):\n",
	       STEADY_REPEAT, STEADY_ROUNDS);
	printf("%-14s %10s %14s %14s\n", "", "ns", "ns - trivial", "");
	printf("%-14s %10.2f\n", "trivial", st_triv);
	for (int l = 0; l < nlb; l++) {
		steady_row("ct_hit", st_hit[l], st_triv, lbs[l].label);
		steady_row("non_vip_pass", st_nonvip[l], st_triv, lbs[l].label);
	}
	if (json) {
		FILE *f = fopen(json, "w");

		if (f) {
			fprintf(f, "{\"benchmark\":\"xdp_cost\",\"runs\":%d,\"cases\":{", runs);
			json_cases(f, res[0], base.median);
			fprintf(f, "},\"steady_ns\":{\"repeat\":%d,\"trivial\":%.2f,\"ct_hit\":%.2f,\"non_vip_pass\":%.2f}",
				STEADY_REPEAT, st_triv, st_hit[0], st_nonvip[0]);
			if (nlb > 1) {
				fprintf(f, ",\"baseline\":{\"object\":\"%s\",\"cases\":{", base_obj);
				json_cases(f, res[1], base.median);
				fprintf(f, "},\"steady_ns\":{\"ct_hit\":%.2f,\"non_vip_pass\":%.2f}}",
					st_hit[1], st_nonvip[1]);
			}
			fprintf(f, "}\n");
			fclose(f);
		}
	}
	for (int l = 0; l < nlb; l++) {
		ep_services_free(&lbs[l].svcs);
		if (lbs[l].skel)
			xdp_lb__destroy(lbs[l].skel);
		else
			bpf_object__close(lbs[l].obj);
	}
	close(triv);
	return bad ? 1 : 0;
}
