/* The DNS health verdicts and the failover state machine (agent/dns/dns_health.c). */
#include <stdio.h>
#include <string.h>

#include "dns_health.h"
#include "tap.h"

#define MS 1000000ULL
#define S 1000000000ULL

static const struct ep_dns_thresholds T = {
	.timeout_bp = 2000,
	.servfail_bp = 2000,
	.hijack_bp = 2000,
	.min_samples = 5,
	.spoof_min = 20,
	.confirm_ns = 250 * MS,
	.failback_ns = 30 * S,
};

static const char *const NAMES[] = {"10.0.0.53", "10.0.1.53"};

static struct ep_dns_window healthy(void)
{
	struct ep_dns_window w = {.queries = 50, .answers = 50, .probes = 5, .probe_ok = 5};

	return w;
}

static struct ep_dns_window blackholed(void)
{
	struct ep_dns_window w = {.queries = 40, .timeouts = 40, .probes = 5, .probe_timeout = 5};

	return w;
}

static void test_judge(void)
{
	struct ep_dns_window w;
	char why[256];

	w = healthy();
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == 0, "a healthy window is fine");
	w = (struct ep_dns_window){.queries = 2, .answers = 2};
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == EP_DNS_UNKNOWN,
	       "fewer than min_samples: not judged");
	w = blackholed();
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) & EP_DNS_BAD_TIMEOUTS, "all timeouts: bad");
	tap_ok(strstr(why, "45 of 45 queries timed out") != NULL, "reason names the figures (%s)", why);
	w = (struct ep_dns_window){.answers = 90, .timeouts = 10, .probes = 5, .probe_ok = 5};
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == 0, "10%% timeouts under a 20%% bound: fine");
	w = (struct ep_dns_window){.answers = 70, .timeouts = 30};
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == EP_DNS_BAD_TIMEOUTS, "30%% timeouts: bad");
	w = (struct ep_dns_window){.answers = 50, .servfail = 40, .probes = 5, .probe_servfail = 5};
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == EP_DNS_BAD_SERVFAIL, "SERVFAIL storm: bad");
	w = healthy();
	w.probe_wrong = 1;
	w.probe_ok = 4;
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) & EP_DNS_BAD_HIJACK,
	       "one wrong canary answer is hijacking, no statistics needed");
	w = (struct ep_dns_window){.answers = 100, .divergent = 30};
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) & EP_DNS_BAD_HIJACK,
	       "30%% of answers diverging from the snapshot (bound 20%%): hijack");
	w = (struct ep_dns_window){.answers = 100, .divergent = 5};
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == 0,
	       "5%% divergence (rotating records) stays under the bound");
	w = (struct ep_dns_window){.answers = 30, .unmatched = 500};
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) & EP_DNS_BAD_SPOOFING,
	       "a flood of unmatched answers is spoofing");
	w = (struct ep_dns_window){.answers = 300, .unmatched = 25};
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == 0,
	       "a few stray answers among many real ones are not");
	w = (struct ep_dns_window){.answers = 40, .late = 40, .timeouts = 40};
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) & EP_DNS_BAD_TIMEOUTS,
	       "late answers (slow upstream) are timeouts, not spoofing");
}

static void test_failover_and_back(void)
{
	struct ep_dns_machine m;
	struct ep_dns_window w[2];
	bool mode = false, changed;
	uint64_t t = 1000 * S;

	ep_dns_machine_init(&m, &T, t);
	w[0] = healthy();
	w[1] = healthy();
	changed = ep_dns_machine_step(&m, w, NAMES, 2, t, &mode);
	tap_ok(!changed && m.state == EP_DNS_HEALTHY && !m.cache_mode, "healthy stays healthy");

	/* One of two upstreams dead: stubs use the other, no failover. */
	w[0] = blackholed();
	ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_HEALTHY, "one dead upstream of two: still healthy");

	w[1] = blackholed();
	ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_SUSPECT && !m.cache_mode, "both dead: suspect, not failed over yet");
	ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_SUSPECT, "still within confirm time");
	ep_dns_machine_step(&m, w, NAMES, 2, t += 200 * MS, &mode);
	tap_ok(m.state == EP_DNS_FAILED_OVER && m.cache_mode && mode,
	       "bad for the confirm time: failed over, cache mode on");
	tap_ok(m.failovers == 1 && strstr(m.reason, "timed out"), "failover counted, reason: %s",
	       m.reason);

	w[0] = healthy();
	ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_RECOVERING && m.cache_mode && !mode,
	       "one upstream clean again: recovering, still on the cache");
	w[0] = blackholed();
	ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_FAILED_OVER && m.cache_mode, "relapse during recovery: failed over");
	w[0] = healthy();
	w[1] = healthy();
	ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_RECOVERING, "clean again: recovering");
	ep_dns_machine_step(&m, w, NAMES, 2, t += 29 * S, &mode);
	tap_ok(m.state == EP_DNS_RECOVERING && m.cache_mode, "29 s clean: hysteresis holds");
	ep_dns_machine_step(&m, w, NAMES, 2, t += 1 * S + MS, &mode);
	tap_ok(m.state == EP_DNS_HEALTHY && !m.cache_mode && mode,
	       "30 s clean (failback_after_s): healthy, back to upstream");
	tap_ok(m.transitions[EP_DNS_HEALTHY][EP_DNS_SUSPECT] == 1 &&
		       m.transitions[EP_DNS_SUSPECT][EP_DNS_FAILED_OVER] == 1 &&
		       m.transitions[EP_DNS_RECOVERING][EP_DNS_FAILED_OVER] == 1 &&
		       m.transitions[EP_DNS_RECOVERING][EP_DNS_HEALTHY] == 1,
	       "every transition counted");
}

static void test_hijack_is_immediate(void)
{
	struct ep_dns_machine m;
	struct ep_dns_window w[2];
	bool mode = false;
	uint64_t t = 5 * S;

	ep_dns_machine_init(&m, &T, t);
	w[0] = healthy();
	w[1] = healthy();
	w[1].probe_wrong = 1;
	ep_dns_machine_step(&m, w, NAMES, 2, t, &mode);
	tap_ok(m.state == EP_DNS_FAILED_OVER && m.cache_mode,
	       "one hijacked upstream of two: failed over at once (forged answers reach clients)");
	tap_ok(strstr(m.reason, "10.0.1.53") && strstr(m.reason, "wrong canary"),
	       "the reason names the upstream and the signal: %s", m.reason);
}

/* A run of timeouts with nothing answered is confirmed by itself (the RTO
 * made it a few round trips); the same run while answers still arrive, or
 * one silent slot, waits for confirm_ns like any ratio. */
static void test_silence(void)
{
	struct ep_dns_machine m;
	struct ep_dns_window w, ring[10] = {};
	uint64_t st = 0, ss = 0;
	bool mode = false;
	uint64_t t = 7 * S;
	char why[256];

	w = healthy();
	w.silent_timeouts = 5;
	w.silent_slots = 1;
	tap_ok(!(ep_dns_judge(&T, &w, why, sizeof(why)) & EP_DNS_BAD_SILENT),
	       "one slot without answers is not silence yet");
	w.silent_slots = 2;
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == (EP_DNS_BAD_TIMEOUTS | EP_DNS_BAD_SILENT),
	       "two slots, min_samples timeouts in a row: silent (%s)", why);
	w.silent_timeouts = 4;
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == 0, "fewer timeouts than min_samples: not silent");

	ep_dns_machine_init(&m, &T, t);
	w = healthy();
	w.silent_timeouts = 6;
	w.silent_slots = 2;
	ep_dns_machine_step(&m, &w, NAMES, 1, t, &mode);
	tap_ok(m.state == EP_DNS_FAILED_OVER && mode, "a silent upstream fails the node over at once: %s",
	       m.reason);
	ep_dns_machine_init(&m, &T, t);
	{
		struct ep_dns_window two[2] = {w, healthy()};

		ep_dns_machine_step(&m, two, NAMES, 2, t, &mode);
		tap_ok(m.state == EP_DNS_HEALTHY, "one silent upstream of two: the stub moves on, no failover");
	}

	/* The run itself: answers end it, a slot with none adds its timeouts. */
	ring[0] = (struct ep_dns_window){.answers = 3, .timeouts = 2};
	ep_dns_silence_track(&st, &ss, &ring[0]);
	tap_ok(st == 0 && ss == 0, "a slot with answers and timeouts counts as answered");
	ring[1] = (struct ep_dns_window){.timeouts = 3, .probes = 1, .probe_timeout = 1};
	ep_dns_silence_track(&st, &ss, &ring[1]);
	ep_dns_silence_track(&st, &ss, &ring[1]);
	tap_ok(st == 8 && ss == 2, "two silent slots: their query and probe timeouts add up (%llu, %llu)",
	       (unsigned long long)st, (unsigned long long)ss);
	ring[2] = (struct ep_dns_window){.divergent = 1};
	ep_dns_silence_track(&st, &ss, &ring[2]);
	tap_ok(st == 0 && ss == 0, "a divergent (dropped) answer to a real query is an answer too");
}

/* Divergent answers over the short horizon (the last 300 ms): a 30% hijack
 * shows before the 1 s window's ratio moves; a stale snapshot name asked now
 * and then does not. */
static void test_recent_divergence(void)
{
	struct ep_dns_window ring[10] = {}, w = {};
	char why[256];

	for (int k = 0; k < 10; k++)
		ring[k] = (struct ep_dns_window){.answers = 6, .probes = 1, .probe_ok = 1};
	ring[8].divergent = 3;
	ring[9].divergent = 3;
	w = healthy();
	ep_dns_window_recent(&w, ring, 10, 9);
	tap_ok(w.recent_divergent == 6 && w.recent_answered == 27,
	       "the short horizon sums the last 3 slots (%llu of %llu)",
	       (unsigned long long)w.recent_divergent, (unsigned long long)w.recent_answered);
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == EP_DNS_BAD_HIJACK,
	       "6 of 27 recent answers divergent (>= 20%%): hijack although the window's ratio is low (%s)",
	       why);
	ep_dns_window_recent(&w, ring, 10, 1); /* slots 1, 0, 9 */
	tap_ok(w.recent_divergent == 3,
	       "the horizon wraps around the ring (%llu divergent)", (unsigned long long)w.recent_divergent);
	ring[9].divergent = 2;
	ep_dns_window_recent(&w, ring, 10, 1);
	tap_ok(w.recent_divergent == 2 && ep_dns_judge(&T, &w, why, sizeof(why)) == 0,
	       "two divergent answers: under the minimum of %d, no verdict", EP_DNS_HIJACK_FAST_MIN);
	w = healthy();
	w.recent_answered = 200;
	w.recent_divergent = 10;
	tap_ok(ep_dns_judge(&T, &w, why, sizeof(why)) == 0,
	       "10 of 200 recent answers (a stale snapshot name): no verdict");
}

/* The cache gate: never to a dead or empty cache; a cache that dies while
 * failed over gets EP_DNS_CACHE_DOWN_LIFT_NS, then traffic goes back. */
static void test_cache_gate(void)
{
	struct ep_dns_gate g = {};
	uint64_t t = 10 * S;

	tap_ok(!ep_dns_gate_step(&g, false, false, false, t) && !g.applied,
	       "no failover wanted: nothing to gate");
	tap_ok(!ep_dns_gate_step(&g, true, false, false, t += 100 * MS) && !g.applied &&
		       g.why == EP_GATE_REFUSED && g.refusals == 1,
	       "failover wanted, cache not usable: refused (%s)", ep_dns_gate_why_name(g.why));
	ep_dns_gate_step(&g, true, false, false, t += 100 * MS);
	tap_ok(g.refusals == 1, "one refusal per episode");
	tap_ok(ep_dns_gate_step(&g, true, false, true, t += 100 * MS) && g.applied && g.why == EP_GATE_OPEN,
	       "the cache answers again: the failover is applied");
	tap_ok(!ep_dns_gate_step(&g, true, false, false, t += 100 * MS) && g.applied && g.why == EP_GATE_GRACE,
	       "the cache dies while failed over: still redirected for now");
	ep_dns_gate_step(&g, true, false, false, t += EP_DNS_CACHE_DOWN_LIFT_NS - 200 * MS);
	tap_ok(g.applied, "still within the bound: redirected");
	tap_ok(ep_dns_gate_step(&g, true, false, false, t += 200 * MS) && !g.applied && g.why == EP_GATE_LIFTED &&
		       g.lifts == 1,
	       "down for %llu ms: redirect lifted, back to the upstream",
	       (unsigned long long)(EP_DNS_CACHE_DOWN_LIFT_NS / MS));
	ep_dns_gate_step(&g, true, false, false, t += S);
	tap_ok(!g.applied && g.why == EP_GATE_LIFTED && g.refusals == 1, "stays lifted, not counted as a refusal");
	tap_ok(ep_dns_gate_step(&g, true, false, true, t += 100 * MS) && g.applied,
	       "the cache is back while still failed over: redirected again");
	ep_dns_gate_step(&g, true, false, false, t += 100 * MS);
	tap_ok(!ep_dns_gate_step(&g, true, false, true, t += 100 * MS) && g.applied && g.why == EP_GATE_OPEN,
	       "a blip shorter than the bound changes nothing");
	tap_ok(ep_dns_gate_step(&g, false, false, false, t += 100 * MS) && !g.applied,
	       "failback: upstream whatever the cache does");
	tap_ok(ep_dns_gate_step(&g, true, true, false, t += 100 * MS) && g.applied,
	       "edgeplane dns failover is the operator's word: not gated");
}

/* Spoofed answers are the datapath's business (it drops them); on their own
 * they never move the node: a failover would hand an off-path sender the
 * node's DNS (names outside the snapshot fail from the cache). */
static void test_spoofing_alone_does_not_fail_over(void)
{
	struct ep_dns_machine m;
	struct ep_dns_window w[2];
	bool mode = false;
	uint64_t t = 3000 * S;
	char why[256];

	ep_dns_machine_init(&m, &T, t);
	w[0] = healthy();
	w[0].unmatched = 5000; /* a flood at 50 real answers */
	w[1] = healthy();
	tap_ok(ep_dns_judge(&T, &w[0], why, sizeof(why)) & EP_DNS_BAD_SPOOFING,
	       "spoofing: the verdict still says spoofing (it sets the datapath's defence)");
	for (int i = 0; i < 20; i++)
		ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_HEALTHY && !m.cache_mode && m.failovers == 0,
	       "spoofing: a flood of unmatched answers alone for 2 s: healthy, no failover");
	/* every upstream flooded, with few real answers */
	w[0] = (struct ep_dns_window){.queries = 10, .answers = 10, .probes = 5, .probe_ok = 5,
				      .unmatched = 3000};
	w[1] = w[0];
	for (int i = 0; i < 20; i++)
		ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_HEALTHY && !m.cache_mode,
	       "spoofing: both upstreams flooded, their real answers fine: healthy");
	/* a forgery that matched a pending query and diverges is a hijack */
	w[0].divergent = 5;
	ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_FAILED_OVER && m.cache_mode,
	       "spoofing + matched answers diverging from the snapshot: hijack, failed over at once");
	/* failed over for a real problem, a flood does not hold back failback */
	w[0] = healthy();
	w[0].unmatched = 5000;
	w[1] = healthy();
	ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_RECOVERING,
	       "spoofing: failed over (hijack healed), a flood does not keep it from recovering");
	/* spoofing with too few samples to judge the upstream: unknown, not clean */
	ep_dns_machine_init(&m, &T, t);
	w[0] = (struct ep_dns_window){.queries = 1, .answers = 1, .unmatched = 3000};
	w[1] = w[0];
	ep_dns_machine_step(&m, w, NAMES, 2, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_HEALTHY && !m.cache_mode,
	       "spoofing with too few real samples: no judgement, no failover");
}

static void test_flap_suppressed(void)
{
	struct ep_dns_machine m;
	struct ep_dns_window w = blackholed(), ok = healthy();
	bool mode = false;
	uint64_t t = 5 * S;

	ep_dns_machine_init(&m, &T, t);
	ep_dns_machine_step(&m, &w, NAMES, 1, t, &mode);
	ep_dns_machine_step(&m, &ok, NAMES, 1, t += 100 * MS, &mode);
	tap_ok(m.state == EP_DNS_HEALTHY && !m.cache_mode && m.failovers == 0,
	       "a blip shorter than the confirm time does not fail over");
}

static void test_override(void)
{
	struct ep_dns_machine m;
	struct ep_dns_window ok = healthy(), bad = blackholed();
	bool mode = false;
	uint64_t t = 5 * S;

	ep_dns_machine_init(&m, &T, t);
	tap_ok(ep_dns_machine_override(&m, EP_DNS_FORCE_CACHE, t) && m.cache_mode,
	       "dns failover: cache mode while healthy");
	ep_dns_machine_step(&m, &ok, NAMES, 1, t += 100 * MS, &mode);
	tap_ok(m.cache_mode && !mode, "the machine does not undo a forced failover");
	tap_ok(ep_dns_machine_override(&m, EP_DNS_AUTO, t) && !m.cache_mode,
	       "dns auto: back to what the health says (upstream)");
	ep_dns_machine_step(&m, &bad, NAMES, 1, t += 100 * MS, &mode);
	ep_dns_machine_step(&m, &bad, NAMES, 1, t += 300 * MS, &mode);
	tap_ok(m.cache_mode, "auto: failed over on its own");
	tap_ok(ep_dns_machine_override(&m, EP_DNS_FORCE_UPSTREAM, t) && !m.cache_mode,
	       "dns failback: upstream although failed over");
	tap_ok(m.state == EP_DNS_FAILED_OVER, "the state still says what the health is");
}

int main(void)
{
	test_judge();
	test_failover_and_back();
	test_hijack_is_immediate();
	test_silence();
	test_recent_divergence();
	test_cache_gate();
	test_spoofing_alone_does_not_fail_over();
	test_flap_suppressed();
	test_override();
	return tap_done();
}
