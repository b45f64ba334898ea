/*
 * Canary control (agent/canary/canary.c) on the real maps, with time in the
 * test's hands: xdp_lb and tc_health loaded unpinned and sharing their maps,
 * flows opened by XDP and answered (or not) through the tap, then
 * ep_canary_tick() called with chosen clocks. Checks the rollback (one map
 * update, figures, metric, Event callback), that stable's failures never
 * roll back, ramps step by step, the operator's set/pause/resume/promote,
 * and that a restarted agent keeps every share while a changed canary config
 * starts over.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "bpf_run.h"
#include "canary.h"
#include "config.h"
#include "datapath.h"
#include "frames.h"
#include "log.h"
#include "services.h"
#include "strbuf.h"
#include "svc_cfg.h"
#include "tap.h"
#include "tc_health.skel.h"
#include "util.h"
#include "xdp_lb.skel.h"

#define S (1000000000ULL)

static struct xdp_lb *xs;
static struct tc_health *hs;
static struct ep_map_fds fds;
static struct ep_dp_health_fds hf;
static struct ep_services svcs;
static struct ep_config cfg;
static struct ep_canary *can;
static sd_event *ev;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int xfd, ffd, rfd, events;
static char last_event[512];
static uint16_t next_port = 20000;

static void on_event(void *arg, const char *svc, const char *msg)
{
	(void)arg;
	events++;
	snprintf(last_event, sizeof(last_event), "%s: %s", svc, msg);
}

static void build(uint32_t web_bp)
{
	struct ep_cfg_service *s;
	const struct ep_cfg_canary_rollback rb = {.enabled = true, .window_ms = 50, .min_samples = 4,
						  .max_failure_bp = 2000, .margin_bp = 1000};

	svc_cfg_reset(&cfg, 251);
	s = svc_cfg_add(&cfg, "web", "10.0.0.100", 80, P_TCP);
	for (int i = 1; i <= 4; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.1.0.%d", 10 + i);
		svc_cfg_add_be(s, a, 8080, 1);
	}
	s->backends[3].canary = true;
	s->canary = (struct ep_cfg_canary){.percent_bp = web_bp, .sticky_flow = true,
					   .step_interval_s = 60, .rollback = rb, .present = true};
	s = svc_cfg_add(&cfg, "cut", "10.0.0.102", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.31", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.32", 8080, 1);
	s->backends[1].canary = true;
	s->canary = (struct ep_cfg_canary){.percent_bp = 5000, .sticky_flow = true,
					   .step_interval_s = 60, .rollback = rb, .present = true,
					   .on_rollback = EP_CANARY_RESET};
	s = svc_cfg_add(&cfg, "ramp", "10.0.0.101", 80, P_TCP);
	svc_cfg_add_be(s, "10.1.0.21", 8080, 1);
	svc_cfg_add_be(s, "10.1.0.22", 8080, 1);
	s->backends[1].canary = true;
	s->canary = (struct ep_cfg_canary){.sticky_flow = true, .step_interval_s = 1, .rollback = rb,
					   .present = true, .n_steps = 3,
					   .steps_bp = {1000, 5000, 10000}};
}

static int start_agent(void)
{
	char err[256] = "";
	struct ep_canary_deps d = {.svcs = &svcs, .fds = hf, .ct = &fds.ct, .ev = ev,
				   .lock = &lock, .event = on_event};

	if (ep_services_init(&svcs, &fds) || ep_services_recover(&svcs))
		return -1;
	if (ep_canary_start(&can, &d))
		return -1;
	ep_canary_prepare(can, &cfg);
	if (ep_services_apply(&svcs, &cfg, err, sizeof(err)) || ep_canary_apply(can, &cfg, err, sizeof(err))) {
		tap_diag("apply: %s", err);
		return -1;
	}
	return 0;
}

static void stop_agent(void)
{
	ep_canary_stop(can);
	can = NULL;
	ep_services_free(&svcs);
}

/* The share the datapath applies now (ep_services). */
static double dp_share(const char *name)
{
	const struct ep_svc_state *st = ep_services_find(&svcs, name);
	struct ep_service v;

	if (!st || bpf_map_lookup_elem(fds.services, &st->key, &v))
		return -1;
	return v.canary_bp / 100.0;
}

static bool status_is(const char *name, const char *key)
{
	char err[128];
	json_t *a = ep_canary_status(can, name, err, sizeof(err));
	bool v = a && json_is_true(json_object_get(json_array_get(a, 0), key));

	json_decref(a);
	return v;
}

static long long status_int(const char *name, const char *key)
{
	char err[128];
	json_t *a = ep_canary_status(can, name, err, sizeof(err));
	long long v = a ? json_integer_value(json_object_get(json_array_get(a, 0), key)) : -1;

	json_decref(a);
	return v;
}

static bool be_canary(uint32_t bid)
{
	struct ep_backend b;

	return !bpf_map_lookup_elem(fds.backends, &bid, &b) && (b.flags & EP_BE_F_CANARY);
}

/* n new connections to vip; the canary's answered per canary_ok, stable's
 * per stable_ok (true: SYN-ACK, then the client's ACK, which creates the
 * conntrack entry; false: RST). Returns canary flows made. */
static int traffic(const char *vip, int n, bool canary_ok, bool stable_ok)
{
	int made = 0;

	for (int i = 0; i < n; i++) {
		struct flow f = mkflow("192.0.2.1", next_port++, vip, 80, P_TCP);
		struct parsed out;
		uint8_t p[FRAME_MAX];
		struct bpf_run r;
		size_t len = flow_pkt(p, &f, 0, false, 0);
		uint32_t bid;
		bool c, ok;

		/* The SYN: balanced, no entry yet; the backend from XDP's output. */
		bpf_run(xfd, p, len, &r);
		parse_frame(r.out, r.outlen, &out);
		if (r.err || r.verdict != XDP_PASS || !out.ok ||
		    !backend_id_of(fds.backends, &out.dst, out.dport, &bid))
			continue;
		c = be_canary(bid);
		made += c;
		ok = c ? canary_ok : stable_ok;
		len = pkt_between(p, &f.client, f.cport, &out.dst, out.dport, P_TCP, TCP_SYN, 0, false, 0);
		bpf_run(ffd, p, len, &r);
		len = pkt_between(p, &out.dst, out.dport, &f.client, f.cport, P_TCP,
				  ok ? (TCP_SYN | TCP_ACK) : (TCP_RST | TCP_ACK), 0, false, 0);
		bpf_run(rfd, p, len, &r);
		if (ok) {
			len = flow_ack_pkt(p, &f);
			bpf_run(xfd, p, len, &r);
		}
	}
	return made;
}

static uint64_t T; /* the test's clock */

static void tick(void)
{
	T += 60 * 1000000ULL;
	ep_canary_tick(can, T);
}

static void test_rollback(void)
{
	struct ep_strbuf b = {0};
	int c;

	tap_ok(dp_share("web") == 10.0, "web starts at its configured 10%%");
	tick();
	c = traffic("10.0.0.100", 200, true, true);
	tick();
	tap_ok(c > 0 && !status_is("web", "rolled_back") && dp_share("web") == 10.0,
	       "a healthy canary (%d flows) is not rolled back", c);
	c = traffic("10.0.0.100", 100, false, true);
	tick();
	tap_ok(c >= 4 && status_is("web", "rolled_back") && dp_share("web") == 0.0,
	       "the canary refusing %d connections: rolled back, share 0 in the datapath", c);
	tap_ok(events == 1 && strstr(last_event, "web: rollback: canary ") &&
		       strstr(last_event, "-> 0"),
	       "the Event callback got the figures: %s", last_event);
	ep_canary_metrics(can, &b);
	tap_ok(b.s && strstr(b.s, "edgeplane_canary_rollbacks_total{service=\"web\"} 1\n") &&
		       strstr(b.s, "reason=\"refused\"} "),
	       "metrics: canary_rollbacks_total and refused flows");
	free(b.s);
	traffic("10.0.0.100", 100, true, true);
	tick();
	tick();
	tap_ok(dp_share("web") == 0.0 && status_is("web", "rolled_back"),
	       "held at 0 while the canary is healthy again");
}

static void test_stable_failing(void)
{
	char err[256];
	int c;

	tap_ok(ep_canary_set(can, "web", "10", err, sizeof(err)) == 0 && dp_share("web") == 10.0 &&
		       !status_is("web", "rolled_back"),
	       "operator: set web 10 lifts the rollback");
	tick();
	c = traffic("10.0.0.100", 300, true, false);
	tick();
	tick();
	tap_ok(c > 0 && !status_is("web", "rolled_back") && dp_share("web") == 10.0,
	       "every stable backend refusing, canary clean: no rollback");
}

static void test_ramp(void)
{
	char err[256];

	tap_ok(dp_share("ramp") == 10.0 && status_int("ramp", "step") == 1, "ramp starts at step 1 (10%%)");
	T += 2 * S;
	tick();
	tap_ok(dp_share("ramp") == 10.0, "no step without a healthy verdict in it");
	traffic("10.0.0.101", 100, true, true);
	tick();
	tap_ok(dp_share("ramp") == 50.0 && status_int("ramp", "step") == 2,
	       "healthy and step_interval_s passed: step 2 (50%%)");
	traffic("10.0.0.101", 40, true, true);
	tick();
	tap_ok(dp_share("ramp") == 50.0, "not before step_interval_s");
	T += 2 * S;
	traffic("10.0.0.101", 40, true, true);
	tick();
	tap_ok(dp_share("ramp") == 100.0 && status_int("ramp", "step") == 3, "step 3: 100%%");
	tap_ok(ep_canary_set(can, "ramp", "10", err, sizeof(err)) == 0 && dp_share("ramp") == 10.0 &&
		       status_is("ramp", "paused"),
	       "operator: a share by hand pauses the ramp");
	T += 2 * S;
	traffic("10.0.0.101", 100, true, true);
	tick();
	tap_ok(dp_share("ramp") == 10.0, "paused: no step");
	tap_ok(ep_canary_set(can, "ramp", "resume", err, sizeof(err)) == 0 &&
		       status_int("ramp", "step") == 1 && !status_is("ramp", "paused"),
	       "resume: back on the ramp at the first step not below the share");
	T += 2 * S;
	traffic("10.0.0.101", 100, true, true);
	tick();
	tap_ok(dp_share("ramp") == 50.0, "resumed ramp goes on (50%%)");
	traffic("10.0.0.101", 100, false, true);
	tick();
	tap_ok(dp_share("ramp") == 0.0 && status_is("ramp", "rolled_back") &&
		       strstr(last_event, "at ramp step 2 of 3"),
	       "a fault at step 2: rollback at that step (%s)", last_event);
	T += 2 * S;
	tick();
	tap_ok(dp_share("ramp") == 0.0, "a rolled-back ramp does not advance");
	tap_ok(ep_canary_set(can, "ramp", "resume", err, sizeof(err)) == 0 && dp_share("ramp") == 50.0,
	       "resume after a rollback: the step it rolled back at");
	tap_ok(ep_canary_set(can, "ramp", "promote", err, sizeof(err)) == 0 &&
		       dp_share("ramp") == 100.0 && status_is("ramp", "promoted"),
	       "promote: 100%%");
	tap_ok(ep_canary_set(can, "ramp", "pause", err, sizeof(err)) == 0 && status_is("ramp", "paused"),
	       "pause");
}

/* Flows of the canary at the moment of the rollback, and whether conntrack
 * still has them. */
static int canary_flows_in_ct(const char *vip, uint16_t from, uint16_t to)
{
	int n = 0;

	for (uint16_t p = from; p < to; p++) {
		struct flow f = mkflow("192.0.2.1", p, vip, 80, P_TCP);
		struct ep_flow_key k = flow_key(&f);
		struct ep_ct_entry ct;

		if (!ep_ct_get(&fds.ct, &k, &ct) && be_canary(ct.backend_id))
			n++;
	}
	return n;
}

static void test_on_rollback(void)
{
	uint16_t cut0 = next_port, web0;
	int before, after, wb, wa;

	traffic("10.0.0.102", 40, true, true); /* established flows on both sides */
	web0 = next_port;
	traffic("10.0.0.100", 60, true, true);
	before = canary_flows_in_ct("10.0.0.102", cut0, web0);
	wb = canary_flows_in_ct("10.0.0.100", web0, next_port);
	traffic("10.0.0.102", 40, false, true);
	traffic("10.0.0.100", 80, false, true);
	tick();
	after = canary_flows_in_ct("10.0.0.102", cut0, web0);
	wa = canary_flows_in_ct("10.0.0.100", web0, web0 + 60);
	tap_ok(status_is("cut", "rolled_back") && before > 0 && after == 0,
	       "on_rollback: reset: the canary's %d established flows are gone from conntrack", before);
	tap_ok(status_is("web", "rolled_back") && wb > 0 && wa == wb,
	       "on_rollback: keep: the canary's %d established flows stay", wb);
	ep_canary_set(can, "web", "10", NULL, 0);
}

static void test_bad_set(void)
{
	char err[256] = "";

	tap_ok(ep_canary_set(can, "nope", "10", err, sizeof(err)) == -ENOENT && strstr(err, "nope"),
	       "set on an unknown service: %s", err);
	tap_ok(ep_canary_set(can, "web", "101", err, sizeof(err)) == -EINVAL, "set 101: refused");
	tap_ok(ep_canary_set(can, "web", "2.555", err, sizeof(err)) == -EINVAL,
	       "set 2.555: refused (2 decimals)");
	tap_ok(ep_canary_set(can, "web", "fast", err, sizeof(err)) == -EINVAL && strstr(err, "promote"),
	       "set fast: refused, naming what is allowed");
	tap_ok(ep_canary_set(can, "web", "pause", err, sizeof(err)) == -EINVAL,
	       "pause without a ramp: refused");
	tap_ok(dp_share("web") == 10.0, "refused sets change nothing");
	ep_canary_set(can, "cut", "50", err, sizeof(err));
}

static void test_restart(void)
{
	char err[256];

	/* web: rolled back by a fault; ramp: paused at 100 (promoted). */
	traffic("10.0.0.100", 150, false, true);
	tick();
	tap_ok(dp_share("web") == 0.0, "web rolled back before the restart");
	stop_agent();
	tap_ok(start_agent() == 0, "agent restarted on the same maps and config");
	tap_ok(dp_share("web") == 0.0 && status_is("web", "rolled_back"),
	       "restart: web stays rolled back at 0 (config says 10)");
	tap_ok(dp_share("ramp") == 100.0 && status_is("ramp", "promoted") && status_int("ramp", "rollbacks") == 1,
	       "restart: ramp keeps 100%%, promoted, its rollback count");
	stop_agent();
	build(2000);
	tap_ok(start_agent() == 0 && dp_share("web") == 20.0 && !status_is("web", "rolled_back"),
	       "a changed canary.percent is the operator's word: 20%%");
	tap_ok(status_int("web", "rollbacks") == 3, "the rollback count survives the change");
	(void)err;
}

int main(void)
{
	int rc;

	ep_log_setup(0, EP_LOG_ERROR);
	if (geteuid() != 0)
		return tap_skip_all("needs root (BPF)");
	xs = xdp_lb__open_and_load();
	hs = xs ? tc_health__open() : NULL;
	rc = hs ? bpf_run_share_maps(hs->obj, xs->obj) : -1;
	if (!tap_ok(rc > 0 && !tc_health__load(hs), "xdp_lb and tc_health loaded, maps shared"))
		return tap_done();
	ep_map_fds_from_obj(xs->obj, &fds);
	hf = (struct ep_dp_health_fds){.svc = bpf_map__fd(hs->maps.ep_health_svc),
				       .stats = bpf_map__fd(hs->maps.ep_health_stats),
				       .pend = bpf_map__fd(hs->maps.ep_health_pend),
				       .state = bpf_map__fd(hs->maps.ep_canary_state),
				       .cfg = bpf_map__fd(hs->maps.ep_health_cfg)};
	xfd = bpf_program__fd(xs->progs.ep_xdp_lb);
	ffd = bpf_program__fd(hs->progs.ep_tc_health_fwd);
	rfd = bpf_program__fd(hs->progs.ep_tc_health_rev);
	sd_event_new(&ev);
	build(1000);
	if (!tap_ok(start_agent() == 0, "canary control started"))
		return tap_done();
	T = ep_now_ns();
	test_rollback();
	test_stable_failing();
	test_ramp();
	test_on_rollback();
	test_bad_set();
	test_restart();
	stop_agent();
	sd_event_unref(ev);
	tc_health__destroy(hs);
	xdp_lb__destroy(xs);
	return tap_done();
}
