/*
 * Maglev table properties (agent/lb/maglev.c), pure user space: prime sizes,
 * full tables without weight-0 backends, shares that follow weights, small
 * disruption when a backend leaves or joins (slots and real flow hashes),
 * independence from input order, and a pinned fingerprint of the table so an
 * accidental change of the algorithm (or of ep_maglev_key) is caught.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeplane_abi.h"
#include "ep_hash.h"
#include "hash.h"
#include "maglev.h"
#include "tap.h"

#define M_BIG 16381u

/* Bounds stated in the TAP lines. */
#define SHARE_TOL 0.01	   /* |share - w/sum(w)|, absolute */
#define DISRUPT_BOUND 0.03 /* share of unrelated slots/flows that change owner */

/* Fingerprint of the table for the fixed input of test_fingerprint(). If
 * maglev.c or ep_maglev_key() changes on purpose, every running flow moves on
 * upgrade: update these only together with a note in the changelog. */
#define GOLDEN_M251 0x0e2684d8bb849996ULL
#define GOLDEN_M16381 0x15aaf6a36daa6440ULL

/* Table fingerprint independent of host byte order. */
static uint64_t table_fp(const uint32_t *t, uint32_t m)
{
	uint64_t h = ep_hash64_init();

	for (uint32_t i = 0; i < m; i++) {
		uint8_t b[4] = {(uint8_t)t[i], (uint8_t)(t[i] >> 8), (uint8_t)(t[i] >> 16),
				(uint8_t)(t[i] >> 24)};

		h = ep_hash64_update(h, b, sizeof(b));
	}
	return h;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, so failures reproduce */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dULL;
}

/* Backend i: id i + 1, identity "10.1.X.Y:8080" as the agent labels them. */
static void mk_backends(struct ep_maglev_backend *be, size_t n, const uint32_t *weights)
{
	for (size_t i = 0; i < n; i++) {
		char label[64];

		snprintf(label, sizeof(label), "10.1.%zu.%zu:8080", (i + 1) / 250, (i + 1) % 250 + 1);
		be[i].id = (uint32_t)(i + 1);
		be[i].weight = weights ? weights[i] : 1;
		be[i].key = ep_maglev_key(label);
	}
}

static uint32_t *build(const struct ep_maglev_backend *be, size_t n, uint32_t m, int *rc)
{
	uint32_t *t = malloc((size_t)m * sizeof(*t));

	if (!t) {
		perror("malloc");
		exit(2);
	}
	*rc = ep_maglev_build(be, n, m, t);
	return t;
}

static void test_prime(void)
{
	static const uint32_t bad[] = {0, 1, 4, 9, 15, 100, 250, 16380, 16383, 65536, 1000001};
	static const uint32_t good[] = {2, 3, 251, 16381, 65537};
	struct ep_maglev_backend be[3];
	bool ok = true;
	char why[256] = "";
	size_t w = 0;

	mk_backends(be, 3, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t m = bad[i] ? bad[i] : 1;
		uint32_t *t = calloc(m, sizeof(*t));
		int rc = ep_maglev_build(be, 3, bad[i], t);

		if (rc != -EINVAL || ep_is_prime(bad[i])) {
			ok = false;
			w += (size_t)snprintf(why + w, sizeof(why) - w, "%u->%d ", bad[i], rc);
		}
		free(t);
	}
	tap_ok(ok, "non-prime sizes (0 1 4 9 15 100 250 16380 16383 65536 1000001) rejected with "
		   "-EINVAL %s",
	       why);
	ok = true;
	w = 0;
	why[0] = 0;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int rc;
		uint32_t *t = build(be, 3, good[i], &rc);

		if (rc != 0 || !ep_is_prime(good[i])) {
			ok = false;
			w += (size_t)snprintf(why + w, sizeof(why) - w, "%u->%d ", good[i], rc);
		}
		free(t);
	}
	tap_ok(ok, "prime sizes (2 3 251 16381 65537) accepted %s", why);
}

static void test_fill(void)
{
	enum { N = 7 };
	static const uint32_t w[N] = {1, 0, 3, 0, 2, 5, 1};
	struct ep_maglev_backend be[N];
	uint32_t m_list[] = {251, M_BIG};
	int rc;

	mk_backends(be, N, w);
	for (size_t mi = 0; mi < 2; mi++) {
		uint32_t m = m_list[mi], empty = 0, zero_w = 0, unknown = 0;
		uint32_t *t = build(be, N, m, &rc);

		for (uint32_t s = 0; s < m; s++) {
			if (!t[s])
				empty++;
			else if (t[s] > N)
				unknown++;
			else if (w[t[s] - 1] == 0)
				zero_w++;
		}
		tap_ok(rc == 0 && empty == 0 && unknown == 0,
		       "M=%u, 7 backends (2 of weight 0): every slot holds a configured backend "
		       "(empty %u, unknown %u)",
		       m, empty, unknown);
		tap_ok(zero_w == 0, "M=%u: no slot holds a weight-0 backend (found %u)", m, zero_w);
		free(t);
	}
	{
		uint32_t *t = malloc(M_BIG * sizeof(*t)), nz = 0;

		memset(t, 0xab, M_BIG * sizeof(*t));
		rc = ep_maglev_build(be, 0, M_BIG, t);
		for (uint32_t s = 0; s < M_BIG; s++)
			nz += t[s] != 0;
		tap_ok(rc == 0 && nz == 0, "empty input: rc 0, every slot 0 (non-zero %u)", nz);
		free(t);
	}
	{
		static const uint32_t zw[3] = {0, 0, 0};
		struct ep_maglev_backend z[3];
		uint32_t *t = malloc(M_BIG * sizeof(*t)), nz = 0;

		mk_backends(z, 3, zw);
		memset(t, 0xab, M_BIG * sizeof(*t));
		rc = ep_maglev_build(z, 3, M_BIG, t);
		for (uint32_t s = 0; s < M_BIG; s++)
			nz += t[s] != 0;
		tap_ok(rc == 0 && nz == 0, "only weight-0 backends: every slot 0 (non-zero %u)", nz);
		free(t);
	}
	{
		struct ep_maglev_backend one[1];
		uint32_t *t, other = 0;

		mk_backends(one, 1, NULL);
		t = build(one, 1, 251, &rc);
		for (uint32_t s = 0; s < 251; s++)
			other += t[s] != 1;
		tap_ok(rc == 0 && other == 0, "a single backend owns every slot");
		free(t);
	}
}

/* Worst absolute deviation of slot shares from weight shares. */
static double share_dev(const struct ep_maglev_backend *be, size_t n, uint32_t m,
			double *worst_rel)
{
	uint32_t *cnt = calloc(n + 1, sizeof(*cnt));
	double sumw = 0, worst = 0;
	int rc;
	uint32_t *t = build(be, n, m, &rc);

	for (size_t i = 0; i < n; i++)
		sumw += be[i].weight;
	for (uint32_t s = 0; s < m; s++)
		if (t[s] && t[s] <= n)
			cnt[t[s]]++;
	*worst_rel = 0;
	for (size_t i = 0; i < n; i++) {
		double want = be[i].weight / sumw, got = (double)cnt[i + 1] / m;
		double d = got > want ? got - want : want - got;

		if (d > worst)
			worst = d;
		if (want > 0 && d / want > *worst_rel)
			*worst_rel = d / want;
	}
	free(cnt);
	free(t);
	return rc ? 1.0 : worst;
}

static void test_shares(void)
{
	static uint32_t w[100];
	struct ep_maglev_backend be[100];
	struct {
		const char *name;
		size_t n;
		uint32_t w[4];
	} sets[] = {
		{"equal weights, N=3", 3, {0}},	  {"equal weights, N=10", 10, {0}},
		{"equal weights, N=100", 100, {0}}, {"weights 1:2:3", 3, {1, 2, 3}},
		{"weights 1:10", 2, {1, 10}},	  {"weights 1:1:1:97", 4, {1, 1, 1, 97}},
	};
	double overall = 0;

	for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
		double rel, d;

		for (size_t i = 0; i < sets[k].n; i++)
			w[i] = sets[k].w[0] ? sets[k].w[i] : 1;
		mk_backends(be, sets[k].n, w);
		d = share_dev(be, sets[k].n, M_BIG, &rel);
		if (d > overall)
			overall = d;
		tap_ok(d < SHARE_TOL,
		       "shares, M=%u, %s: worst |share - weight share| = %.5f (< %.2f absolute; "
		       "worst relative %.2f%%)",
		       M_BIG, sets[k].name, d, SHARE_TOL, rel * 100);
	}
	tap_diag("worst share deviation over all weight sets: %.5f", overall);
}

/* Share of slots whose owner changed among slots that did not belong to
 * `gone` (0 = none) in `before`; total share changed in *total. */
static double slot_moves(const uint32_t *before, const uint32_t *after, uint32_t m, uint32_t gone,
			 double *total)
{
	uint32_t other = 0, moved_other = 0, moved = 0;

	for (uint32_t s = 0; s < m; s++) {
		if (before[s] != after[s])
			moved++;
		if (before[s] == gone)
			continue;
		other++;
		if (before[s] != after[s])
			moved_other++;
	}
	*total = (double)moved / m;
	return other ? (double)moved_other / other : 0;
}

/* Flows: 100000 random IPv4 clients to one VIP, slot = ep_flow_hash % m. */
#define NFLOWS 100000
static uint32_t flow_slot[NFLOWS];

static void make_flows(uint32_t m)
{
	rng = 0x0123456789abcdefULL;
	for (int i = 0; i < NFLOWS; i++) {
		struct ep_flow_key k;
		uint64_t r = rnd();

		memset(&k, 0, sizeof(k));
		k.src[0] = (uint32_t)r;
		k.dst[0] = htonl(0x0a000064); /* 10.0.0.100 */
		k.sport = (uint16_t)(r >> 32);
		k.dport = htons(80);
		k.proto = 6;
		k.family = EP_FAMILY_V4;
		flow_slot[i] = ep_flow_hash(&k) % m;
	}
}

static double flow_moves(const uint32_t *before, const uint32_t *after, uint32_t gone)
{
	uint32_t other = 0, moved = 0;

	for (int i = 0; i < NFLOWS; i++) {
		uint32_t b = before[flow_slot[i]], a = after[flow_slot[i]];

		if (b == gone)
			continue;
		other++;
		moved += a != b;
	}
	return other ? (double)moved / other : 0;
}

static void test_disruption(void)
{
	static const size_t ns[] = {3, 5, 10, 50};
	struct ep_maglev_backend be[51], less[50];

	make_flows(M_BIG);
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		size_t n = ns[k];
		double worst_other = 0, worst_total = 0, worst_flows = 0, total, o, fl;
		uint32_t *full, *t;
		int rc;

		mk_backends(be, n + 1, NULL);
		full = build(be, n, M_BIG, &rc);
		/* remove each backend in turn */
		for (size_t r = 0; r < n; r++) {
			size_t j = 0;

			for (size_t i = 0; i < n; i++)
				if (i != r)
					less[j++] = be[i];
			t = build(less, n - 1, M_BIG, &rc);
			o = slot_moves(full, t, M_BIG, be[r].id, &total);
			fl = flow_moves(full, t, be[r].id);
			if (o > worst_other)
				worst_other = o;
			if (total > worst_total)
				worst_total = total;
			if (fl > worst_flows)
				worst_flows = fl;
			free(t);
		}
		tap_ok(worst_other <= DISRUPT_BOUND,
		       "remove 1 of N=%zu (each in turn): worst share of the other backends' slots "
		       "that change owner %.4f (bound %.2f)",
		       n, worst_other, DISRUPT_BOUND);
		tap_ok(worst_total <= 1.0 / (double)n + DISRUPT_BOUND,
		       "remove 1 of N=%zu: worst share of all slots remapped %.4f (<= 1/N + %.2f = %.4f)",
		       n, worst_total, DISRUPT_BOUND, 1.0 / (double)n + DISRUPT_BOUND);
		tap_ok(worst_flows <= DISRUPT_BOUND,
		       "remove 1 of N=%zu: worst share of %d random flows (ep_flow_hash) not on the "
		       "removed backend that move %.4f (bound %.2f)",
		       n, NFLOWS, worst_flows, DISRUPT_BOUND);

		/* add backend n+1 */
		t = build(be, n + 1, M_BIG, &rc);
		o = slot_moves(full, t, M_BIG, 0, &total);
		{
			uint32_t got = 0, moved_flows = 0;

			for (uint32_t s = 0; s < M_BIG; s++)
				got += t[s] == be[n].id;
			for (int i = 0; i < NFLOWS; i++)
				moved_flows += full[flow_slot[i]] != t[flow_slot[i]];
			tap_ok(total <= 1.0 / (double)(n + 1) + DISRUPT_BOUND &&
				       total >= (double)got / M_BIG,
			       "add a backend to N=%zu: %.4f of slots move (1/(N+1) = %.4f, bound + "
			       "%.2f), the new one gets %.4f",
			       n, total, 1.0 / (double)(n + 1), DISRUPT_BOUND, (double)got / M_BIG);
			tap_ok((double)moved_flows / NFLOWS <= 1.0 / (double)(n + 1) + DISRUPT_BOUND,
			       "add a backend to N=%zu: %.4f of %d random flows move (<= 1/(N+1) + %.2f)",
			       n, (double)moved_flows / NFLOWS, NFLOWS, DISRUPT_BOUND);
		}
		free(t);
		free(full);
	}
}

static void test_order(void)
{
	enum { N = 20 };
	static const uint32_t w[N] = {1, 2, 3, 4, 5, 1, 1, 1, 7, 0, 2, 2, 3, 9, 1, 1, 1, 4, 4, 6};
	struct ep_maglev_backend be[N], rev[N], shuf[N];
	uint32_t *a, *b, *c;
	int rc1, rc2, rc3;

	mk_backends(be, N, w);
	for (int i = 0; i < N; i++)
		rev[i] = be[N - 1 - i];
	memcpy(shuf, be, sizeof(be));
	rng = 42;
	for (int i = N - 1; i > 0; i--) {
		int j = (int)(rnd() % (uint64_t)(i + 1));
		struct ep_maglev_backend x = shuf[i];

		shuf[i] = shuf[j];
		shuf[j] = x;
	}
	a = build(be, N, M_BIG, &rc1);
	b = build(rev, N, M_BIG, &rc2);
	c = build(shuf, N, M_BIG, &rc3);
	tap_ok(!rc1 && !rc2 && !memcmp(a, b, M_BIG * sizeof(*a)),
	       "order independence: reversed input gives the identical table (M=%u, 20 backends, "
	       "mixed weights)",
	       M_BIG);
	tap_ok(!rc1 && !rc3 && !memcmp(a, c, M_BIG * sizeof(*a)),
	       "order independence: shuffled input gives the identical table");
	free(a);
	free(b);
	free(c);
}

static void test_fingerprint(void)
{
	enum { N = 5 };
	static const uint32_t w[N] = {1, 2, 3, 4, 5};
	struct ep_maglev_backend be[N];
	uint32_t *a, *b;
	uint64_t fa, fb, f251;
	int rc;

	mk_backends(be, N, w);
	a = build(be, N, M_BIG, &rc);
	b = build(be, N, M_BIG, &rc);
	fa = table_fp(a, M_BIG);
	fb = table_fp(b, M_BIG);
	free(a);
	free(b);
	a = build(be, N, 251, &rc);
	f251 = table_fp(a, 251);
	free(a);
	tap_diag("fingerprint (FNV-1a 64 of the table, 5 backends \"10.1.0.2..6:8080\" weights "
		 "1..5): M=251 0x%016llx, M=16381 0x%016llx; ep_maglev_key(\"10.1.0.11:8080\") = "
		 "0x%016llx",
		 (unsigned long long)f251, (unsigned long long)fa,
		 (unsigned long long)ep_maglev_key("10.1.0.11:8080"));
	tap_ok(fa == fb, "determinism: two builds of the same input give the same table "
			 "(fingerprint 0x%016llx)",
	       (unsigned long long)fa);
	tap_ok(fa == GOLDEN_M16381 && f251 == GOLDEN_M251,
	       "determinism across versions: fingerprints match the pinned values (M=16381 "
	       "0x%016llx, M=251 0x%016llx)",
	       (unsigned long long)GOLDEN_M16381, (unsigned long long)GOLDEN_M251);
}

int main(void)
{
	test_prime();
	test_fill();
	test_shares();
	test_disruption();
	test_order();
	test_fingerprint();
	return tap_done();
}
