/*
 * The per-upstream RTO (agent/dns/dns_rto.c) and the decisions it drives
 * (agent/dns/dns_health.c), fed with synthetic latency series instead of a
 * clock: a 10-minute soak of healthy traffic with a realistic spread must
 * never leave "healthy", and a blackhole, a slowdown and a 30% hijack must
 * fail the node over within their goals (0.5 s, 0.5 s, 1 s of simulated
 * time). Deterministic (a fixed-seed generator), so the figures are exact
 * and a change of the estimator or the thresholds shows here first.
 *
 * The simulation follows the agent's tick (agent/dns/dns_failover.c): every
 * 100 ms it reads what the datapath matched in the slot (the log2 histogram
 * and the latency sum), feeds the estimator, counts pending queries older
 * than the RTO as timeouts (their answers then count as late), takes the
 * probe results, and runs the judge and the state machine over the window.
 * Probes go out every 200 ms, are judged at the ticks, and listen on up to
 * the ceiling for a late reply whose round trip is fed too.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_health.h"
#include "dns_rto.h"
#include "tap.h"

#define MS 1000000ULL
#define US 1000ULL
#define S 1000000000ULL
#define SLOT (100 * MS)
#define NEVER UINT64_MAX
#define N_SLOTS 10 /* window_ms 1000 */
#define CEIL_MS 500

static const struct ep_dns_thresholds T = {
	.timeout_bp = 2000,
	.servfail_bp = 2000,
	.hijack_bp = 2000,
	.min_samples = 5,
	.spoof_min = 20,
	.confirm_ns = 250 * MS,
	.failback_ns = 30 * S,
};

/* ---- a fixed-seed generator ------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static double unif(void)
{
	return ((double)(rng() >> 11) + 0.5) / 9007199254740992.0;
}

static double lognormal(double median_ms, double sigma)
{
	double z = sqrt(-2.0 * log(unif())) * cos(2.0 * M_PI * unif());

	return median_ms * exp(sigma * z);
}

/* ---- what the upstream does ----------------------------------------------- */

enum fault { F_NONE, F_BLACKHOLE, F_SLOW, F_HIJACK30, F_SHIFT150 };

struct scenario {
	enum fault fault;
	uint64_t fault_at;
	uint64_t duration;
	double qps;
	uint64_t stall_every; /* 0: no stalls */
	uint64_t stall_len;
};

/*
 * A resolver as seen from an edge node: 85% cache hits (lognormal, median
 * 2 ms, sigma 0.5), 15% recursions (median 30 ms, sigma 1.0: a few hundred
 * ms now and then), 0.5% outliers of 300..1300 ms (a lost packet upstream, a
 * slow authority), and, when the scenario says so, stalls where nothing is
 * answered until the stall ends (a GC pause, a link flap).
 */
static uint64_t healthy_rtt(const struct scenario *sc, uint64_t sent)
{
	double ms;
	uint64_t rtt, done;

	if (unif() < 0.005)
		ms = 300 + 1000 * unif();
	else if (unif() < 0.15)
		ms = lognormal(30, 1.0);
	else
		ms = lognormal(2, 0.5);
	if (ms > 5000)
		ms = 5000;
	rtt = (uint64_t)(ms * MS);
	if (sc->stall_every) {
		uint64_t start = sent + rtt - (sent + rtt) % sc->stall_every;

		done = sent + rtt;
		if (done - start < sc->stall_len && start > 0)
			rtt = start + sc->stall_len - sent;
	}
	return rtt;
}

/* rtt of a query sent at sent, NEVER for no answer; *divergent for a
 * forged answer (the datapath drops it, the query stays pending). */
static uint64_t query_rtt(const struct scenario *sc, uint64_t sent, bool *divergent)
{
	uint64_t rtt = healthy_rtt(sc, sent);

	*divergent = false;
	if (sc->fault == F_NONE || sent < sc->fault_at)
		return rtt;
	switch (sc->fault) {
	case F_BLACKHOLE:
		return NEVER;
	case F_SLOW:
		return rtt + 1000 * MS;
	case F_HIJACK30:
		*divergent = unif() < 0.3;
		return *divergent ? 1 * MS : rtt;
	case F_SHIFT150:
		return rtt + 150 * MS;
	default:
		return rtt;
	}
}

/* ---- the agent's side ---------------------------------------------------- */

struct q {
	uint64_t sent, rtt;
	bool divergent, probe, timed_out, done;
	uint64_t probe_deadline;
};

struct result {
	uint64_t failover_at; /* NEVER: stayed healthy */
	uint64_t left_healthy; /* state changes away from healthy */
	uint64_t timeouts, late, answers, probes_timeout;
	struct ep_dns_rto rto;
	char reason[256];
	uint64_t rto_at_end_us;
};

static void run(const struct scenario *sc, struct result *res)
{
	size_t cap = (size_t)(sc->qps * (double)sc->duration / 1e9) + sc->duration / (200 * MS) + 64;
	struct q *qs = calloc(cap, sizeof(*qs));
	struct ep_dns_window slots[N_SLOTS] = {};
	struct ep_dns_machine m;
	const char *names[] = {"upstream"};
	size_t nq = 0, first_open = 0, cur = 0;
	uint64_t next_query = 0, next_probe = 0, silent_t = 0, silent_s = 0;
	uint64_t interval = (uint64_t)(1e9 / sc->qps);
	bool mode;

	memset(res, 0, sizeof(*res));
	res->failover_at = NEVER;
	ep_dns_rto_init(&res->rto, CEIL_MS);
	ep_dns_machine_init(&m, &T, 0);
	for (uint64_t now = SLOT; now <= sc->duration; now += SLOT) {
		struct ep_dns_window *w = &slots[cur], sum = {};
		uint64_t lat[EP_DNS_LAT_BUCKETS] = {}, lat_sum = 0;
		enum ep_dns_state before = m.state;

		/* Traffic of this slot: the stub's queries, evenly spread with a
		 * little jitter, and a probe every 200 ms. */
		for (; next_query + interval / 2 < now && nq < cap; next_query += interval) {
			struct q *x = &qs[nq++];

			x->sent = next_query + rng() % (interval / 2 + 1);
			x->rtt = query_rtt(sc, x->sent, &x->divergent);
		}
		for (; next_probe < now && nq < cap; next_probe += 200 * MS) {
			struct q *x = &qs[nq++];

			x->sent = next_probe;
			x->rtt = query_rtt(sc, x->sent, &x->divergent);
			x->probe = true;
			x->probe_deadline = x->sent + ep_dns_rto_ns(&res->rto);
		}
		/* The datapath: answers matched in this slot (ep_dns_answer). */
		for (size_t i = first_open; i < nq; i++) {
			struct q *x = &qs[i];
			uint64_t at = x->rtt == NEVER ? NEVER : x->sent + x->rtt;

			if (x->done || at > now || x->divergent)
				continue;
			if (x->timed_out) {
				res->late++;
			} else {
				uint64_t us = x->rtt / US;
				int b = 0;

				while ((1ULL << (b + 1)) <= us && b < EP_DNS_LAT_BUCKETS - 1)
					b++;
				lat[b]++;
				lat_sum += us;
				w->answers++;
				res->answers++;
			}
			if (!x->probe)
				x->done = true;
		}
		for (size_t i = first_open; i < nq; i++)
			if (qs[i].divergent && !qs[i].done && qs[i].sent + qs[i].rtt <= now &&
			    !qs[i].timed_out && qs[i].sent + qs[i].rtt > now - SLOT)
				w->divergent++;
		ep_dns_rto_from_histogram(&res->rto, lat, lat_sum);
		/* The probes: judged at the tick (a reply already there is ok), a
		 * late reply within the ceiling gives a sample. */
		for (size_t i = first_open; i < nq; i++) {
			struct q *x = &qs[i];
			uint64_t at = x->rtt == NEVER ? NEVER : x->sent + x->rtt;

			if (!x->probe || x->done)
				continue;
			if (x->probe_deadline) {
				if (at <= now) {
					if (x->divergent)
						w->probe_wrong++;
					else
						w->probe_ok++;
					w->probes++;
					x->done = true;
				} else if (now >= x->probe_deadline) {
					w->probe_timeout++;
					w->probes++;
					res->probes_timeout++;
					x->probe_deadline = 0; /* listening for the late reply */
				}
			} else if (at <= now && !x->divergent) {
				ep_dns_rto_sample(&res->rto, (now - x->sent) / US);
				x->done = true;
			} else if (now >= x->sent + (uint64_t)CEIL_MS * MS) {
				x->done = true;
			}
		}
		/* The pending scan (ep_dnsf_scan_pending). */
		for (size_t i = first_open; i < nq; i++) {
			struct q *x = &qs[i];

			if (x->done || x->timed_out || now - x->sent <= ep_dns_rto_ns(&res->rto))
				continue;
			if (x->rtt != NEVER && !x->divergent && x->sent + x->rtt <= now)
				continue;
			x->timed_out = true;
			w->timeouts++;
			res->timeouts++;
		}
		while (first_open < nq && (qs[first_open].done || now - qs[first_open].sent > 12 * S))
			first_open++;
		/* evaluate() */
		for (size_t s = 0; s < N_SLOTS; s++) {
			const uint64_t *src = (const uint64_t *)&slots[s];
			uint64_t *dst = (uint64_t *)&sum;

			for (size_t k = 0; k < sizeof(sum) / sizeof(uint64_t); k++)
				dst[k] += src[k];
		}
		ep_dns_silence_track(&silent_t, &silent_s, w);
		ep_dns_window_recent(&sum, slots, N_SLOTS, cur);
		sum.silent_timeouts = silent_t;
		sum.silent_slots = silent_s;
		ep_dns_machine_step(&m, &sum, names, 1, now, &mode);
		if (before == EP_DNS_HEALTHY && m.state != EP_DNS_HEALTHY) {
			res->left_healthy++;
			if (res->left_healthy == 1)
				snprintf(res->reason, sizeof(res->reason), "%s", m.reason);
		}
		if (m.cache_mode && res->failover_at == NEVER)
			res->failover_at = now;
		cur = (cur + 1) % N_SLOTS;
		memset(&slots[cur], 0, sizeof(slots[cur]));
	}
	res->rto_at_end_us = res->rto.rto_us;
	free(qs);
}

/* ---- the estimator alone -------------------------------------------------- */

static void test_estimator(void)
{
	struct ep_dns_rto r;
	uint64_t lat[EP_DNS_LAT_BUCKETS] = {};

	ep_dns_rto_init(&r, 500);
	tap_ok(r.rto_us == 500000, "before any sample the timeout is the ceiling (%llu us)",
	       (unsigned long long)r.rto_us);
	ep_dns_rto_sample(&r, 20000);
	tap_ok(r.srtt_us == 20000 && r.rttvar_us == 10000 && r.rto_us == 60000,
	       "first sample R: srtt R, rttvar R/2, rto srtt + 4 rttvar (RFC 6298 2.2)");
	ep_dns_rto_sample(&r, 28000);
	tap_ok(r.rttvar_us == (3 * 10000 + 8000) / 4 && r.srtt_us == (7 * 20000 + 28000) / 8,
	       "next sample: rttvar from the old srtt, then srtt (RFC 6298 2.3)");
	for (int i = 0; i < 200; i++)
		ep_dns_rto_sample(&r, 300);
	tap_ok(r.rto_us == EP_DNS_RTO_FLOOR_MS * 1000ULL, "a fast upstream's timeout stops at the floor (%llu us)",
	       (unsigned long long)r.rto_us);
	for (int i = 0; i < 50; i++)
		ep_dns_rto_sample(&r, 900000);
	tap_ok(r.rto_us == 500000, "a slow one's stops at the ceiling (timeout_ms)");
	ep_dns_rto_set_ceiling(&r, 2000);
	tap_ok(r.rto_us > 900000 && r.samples == 252, "a new ceiling keeps the estimate (rto %llu us)",
	       (unsigned long long)r.rto_us);

	ep_dns_rto_init(&r, 500);
	lat[11] = 30; /* 2048..4095 us */
	lat[14] = 10; /* 16..32 ms */
	tap_ok(ep_dns_rto_from_histogram(&r, lat, 30 * 3000 + 10 * 20000) == EP_DNS_RTO_SLOT_SAMPLES,
	       "a slot of 40 answers gives %d samples", EP_DNS_RTO_SLOT_SAMPLES);
	tap_ok(r.srtt_us > 3000 && r.srtt_us < 20000 && r.rttvar_us > 2000,
	       "from a histogram: srtt between the modes (%llu us), the spread in rttvar (%llu us)",
	       (unsigned long long)r.srtt_us, (unsigned long long)r.rttvar_us);
	memset(lat, 0, sizeof(lat));
	tap_ok(ep_dns_rto_from_histogram(&r, lat, 0) == 0, "an empty slot feeds nothing");
	ep_dns_rto_init(&r, 30);
	tap_ok(r.rto_us == 30000 && r.floor_us == 30000, "a ceiling under the floor wins (timeout_ms 30)");
}

/* ---- the scenarios -------------------------------------------------------- */

static void test_soak(double qps, uint64_t seed)
{
	struct scenario sc = {.fault = F_NONE, .duration = 600 * S, .qps = qps,
			      .stall_every = 20 * S, .stall_len = 150 * MS};
	struct result r;

	rng_state = seed;
	run(&sc, &r);
	tap_diag("soak %.0f q/s: %llu answers, %llu timeouts (%.2f%%), %llu late, %llu probe timeouts, "
		 "srtt %.1f ms rttvar %.1f ms rto %.1f ms",
		 qps, (unsigned long long)r.answers, (unsigned long long)r.timeouts,
		 100.0 * (double)r.timeouts / (double)(r.answers + r.timeouts + 1),
		 (unsigned long long)r.late, (unsigned long long)r.probes_timeout, r.rto.srtt_us / 1000.0,
		 r.rto.rttvar_us / 1000.0, r.rto.rto_us / 1000.0);
	tap_ok(r.timeouts > 0, "soak %.0f q/s: the spread does produce timeouts (%llu), so the test can fail",
	       qps, (unsigned long long)r.timeouts);
	tap_ok(r.left_healthy == 0 && r.failover_at == NEVER,
	       "soak %.0f q/s: 10 minutes of healthy traffic with spread, outliers and 150 ms stalls every "
	       "20 s: never left healthy%s%s",
	       qps, r.left_healthy ? ": " : "", r.reason);
}

static void test_fault(enum fault f, const char *what, uint64_t goal, double qps)
{
	struct scenario sc = {.fault = f, .fault_at = 60 * S + 37 * MS, .duration = 63 * S, .qps = qps,
			      .stall_every = 20 * S, .stall_len = 150 * MS};
	struct result r;

	rng_state = 0x9e3779b97f4a7c15ULL;
	run(&sc, &r);
	if (r.failover_at == NEVER) {
		tap_ok(0, "%s at %.0f q/s: failed over (never did)", what, qps);
		return;
	}
	tap_diag("%s at %.0f q/s: onset -> failover %.0f ms (%s)", what, qps,
		 (double)(r.failover_at - sc.fault_at) / 1e6, r.reason);
	tap_ok(r.failover_at > sc.fault_at && r.failover_at - sc.fault_at <= goal,
	       "%s at %.0f q/s: failed over %.0f ms after the onset (goal %.0f ms), not before it", what,
	       qps, (double)(r.failover_at - sc.fault_at) / 1e6, (double)goal / 1e6);
}

/* An upstream that becomes 150 ms slower for good: the node fails over (a
 * slowdown), and the late probe replies raise the timeout to what the
 * upstream now needs, so the probes pass again and it can fail back. */
static void test_shift(void)
{
	struct scenario sc = {.fault = F_SHIFT150, .fault_at = 30 * S, .duration = 40 * S, .qps = 60};
	struct result r;

	rng_state = 42;
	run(&sc, &r);
	tap_ok(r.failover_at != NEVER, "150 ms slower for good: recognised as a slowdown");
	tap_ok(r.rto_at_end_us > 150000 && r.rto_at_end_us <= 500000,
	       "the late probe replies raised the timeout to fit (%llu us)",
	       (unsigned long long)r.rto_at_end_us);
}

int main(void)
{
	test_estimator();
	test_soak(60, 1);
	test_soak(60, 7);
	test_soak(500, 3);
	test_fault(F_BLACKHOLE, "blackhole", 500 * MS, 60);
	test_fault(F_BLACKHOLE, "blackhole", 500 * MS, 500);
	test_fault(F_SLOW, "slow (+1000 ms)", 500 * MS, 60);
	test_fault(F_HIJACK30, "30% hijack", 1000 * MS, 60);
	test_fault(F_HIJACK30, "30% hijack", 1000 * MS, 500);
	test_shift();
	return tap_done();
}
