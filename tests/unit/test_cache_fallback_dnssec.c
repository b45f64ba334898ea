/*
 * dns.cache.fallback with a trust anchor (cache/fallback.c through
 * cache/policy_responder.c): answers for names of the anchored zone are
 * DNSSEC-validated before they reach the client. Keys (ECDSA P-256 KSK and
 * ZSK) are made and RRsets signed with ldns at test time by
 * tests/lib/dnssec_keys.c, as in test_dnssec_check.c; the fallback resolvers are sockets of this test that
 * answer from those signed records - or forge. Checked: the pure verdict
 * (ep_fallback_validate), then the real server thread in a network namespace
 * of its own (needs root): a signed answer relayed, the DNSKEY RRset fetched
 * once and kept, a forged answer (unsigned, or with a signature over other
 * data) SERVFAIL and counted bogus, the next resolver asked after a bogus
 * one, NXDOMAIN relayed, a name outside the zone relayed unvalidated, and
 * bogus keys making every name of the zone SERVFAIL.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dnsmsg.h"
#include "dnssec_check.h"
#include "dnssec_keys.h"
#include "fallback.h"
#include "nameset.h"
#include "own_netns.h"
#include "policy_responder.h"
#include "tap.h"
#include "udp_lo.h"

#define ZONE "edge.test."
#define PORT 299
#define FB_A 5311
#define FB_B 5312
#define TIMEOUT_MS 400

static char tmpdir[] = "/tmp/ep-fbdnssec-test.XXXXXX";
static time_t now;

/* ---- keys and signed records ---------------------------------------------- */

static struct test_key ksk, zsk, rogue; /* rogue: a key the anchor does not know */

/* SET and its RRSIGs by KEY (valid from an hour ago, ldns's default end)
 * into the answer section of P; frees SET. */
static void add_signed(ldns_pkt *p, ldns_rr_list *set, struct test_key *key)
{
	ldns_rr_list *sigs = key ? test_key_sign(key, set, now, 0, 0) : NULL;

	for (size_t i = 0; i < ldns_rr_list_rr_count(set); i++)
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, ldns_rr_clone(ldns_rr_list_rr(set, i)));
	for (size_t i = 0; sigs && i < ldns_rr_list_rr_count(sigs); i++)
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, ldns_rr_clone(ldns_rr_list_rr(sigs, i)));
	ldns_rr_list_deep_free(set);
	ldns_rr_list_deep_free(sigs);
}

static ldns_rr_list *one(const char *text)
{
	ldns_rr_list *l = ldns_rr_list_new();

	ldns_rr_list_push_rr(l, test_rr(text));
	return l;
}

/* The anchor: the DS of the KSK in a file, loaded. */
static struct ep_dnssec_anchor *anchor_new(void)
{
	ldns_rr *ds = ldns_key_rr2ds(ksk.rr, LDNS_SHA256);
	char *t = ldns_rr2str(ds), path[300], err[512];
	struct ep_dnssec_anchor *a = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/anchor", tmpdir);
	f = fopen(path, "w");
	if (f) {
		fputs(t, f);
		fclose(f);
	}
	if (ep_dnssec_anchor_load(path, &a, err, sizeof(err)))
		tap_diag("anchor: %s", err);
	free(t);
	ldns_rr_free(ds);
	return a;
}

/* ---- the fallback resolvers of the test ----------------------------------- */

enum mode {
	GOOD,	    /* every record signed by the zone's keys */
	FORGE_UNSIGNED, /* answers for the zone without RRSIGs */
	FORGE_RESIGNED, /* another address under the RRSIG of the true one */
	BOGUS_KEYS,	/* a DNSKEY RRset signed by a key the anchor does not know */
};

struct seen {
	int dnskey;	 /* DNSKEY queries */
	int queries;	 /* all queries */
	bool last_do;	 /* the DO bit of the last one */
	char last[300];	 /* its name */
};

/* The reply of a resolver in MODE to the query WIRE. */
static size_t answer(enum mode mode, const uint8_t *wire, size_t len, uint8_t *out, size_t cap,
		     struct seen *seen)
{
	ldns_pkt *q = NULL, *p;
	ldns_rr *question;
	char *name, text[400];
	size_t n;
	ldns_rr_type t;

	if (ldns_wire2pkt(&q, wire, len) != LDNS_STATUS_OK)
		return 0;
	question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	name = ldns_rdf2str(ldns_rr_owner(question));
	t = ldns_rr_get_type(question);
	seen->queries++;
	seen->last_do = ldns_pkt_edns_do(q);
	snprintf(seen->last, sizeof(seen->last), "%s", name);
	if (!strcmp(name, "nx." ZONE)) {
		p = dnsmsg_reply(ldns_pkt_id(q), name, t, LDNS_RCODE_NXDOMAIN);
	} else {
		p = dnsmsg_reply(ldns_pkt_id(q), name, t, LDNS_RCODE_NOERROR);
		if (t == LDNS_RR_TYPE_DNSKEY) {
			ldns_rr_list *set = ldns_rr_list_new();

			seen->dnskey++;
			ldns_rr_list_push_rr(set, ldns_rr_clone(ksk.rr));
			ldns_rr_list_push_rr(set, ldns_rr_clone(zsk.rr));
			if (mode == BOGUS_KEYS)
				ldns_rr_list_push_rr(set, ldns_rr_clone(rogue.rr));
			add_signed(p, set, mode == BOGUS_KEYS ? &rogue : &ksk);
		} else if (!strcmp(name, "outside.example.")) {
			add_signed(p, one("outside.example. 60 IN A 198.18.9.9"), NULL);
		} else {
			const char *addr = !strcmp(name, "www." ZONE) ? "198.18.0.1" : "198.18.0.2";

			snprintf(text, sizeof(text), "%s 60 IN A %s", name,
				 mode == FORGE_UNSIGNED ? "198.18.6.6" : addr);
			if (mode == FORGE_RESIGNED) {
				/* the RRSIG of the true record over a forged one */
				ldns_pkt *tmp = dnsmsg_reply(1, name, t, LDNS_RCODE_NOERROR);
				ldns_rr_list *ans;

				add_signed(tmp, one(text), &zsk);
				ans = ldns_pkt_answer(tmp);
				for (size_t i = 0; i < ldns_rr_list_rr_count(ans); i++) {
					ldns_rr *r = ldns_rr_clone(ldns_rr_list_rr(ans, i));

					if (ldns_rr_get_type(r) == LDNS_RR_TYPE_A) {
						ldns_rr_free(r);
						snprintf(text, sizeof(text), "%s 60 IN A 198.18.6.6", name);
						r = test_rr(text);
					}
					ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, r);
				}
				ldns_pkt_free(tmp);
			} else {
				add_signed(p, one(text), mode == FORGE_UNSIGNED ? NULL : &zsk);
			}
		}
	}
	if (seen->last_do) {
		ldns_pkt_set_edns_udp_size(p, 1232);
		ldns_pkt_set_edns_do(p, true);
	}
	n = dnsmsg_wire(p, out, cap);
	free(name);
	ldns_pkt_free(p);
	ldns_pkt_free(q);
	return n;
}

struct result {
	int rcode; /* -1: no answer */
	uint16_t id;
	char addr[64];
	int rrsigs;
	bool opt;
};

/*
 * Sends a query for NAME from the client and plays resolvers A (mode ma) and
 * B (mode mb) until the client has its answer (or 3 s pass).
 */
static struct result ask(int client, int fa, int fb, enum mode ma, enum mode mb, uint16_t id,
			 const char *name, bool dnssec_ok, struct seen *sa, struct seen *sb)
{
	struct sockaddr_in resp = udp_lo_addr(PORT);
	struct result res = { .rcode = -1 };
	uint8_t q[512], buf[4096], out[4096];
	size_t qlen = dnsmsg_query(q, sizeof(q), id, name, LDNS_RR_TYPE_A, dnssec_ok);
	struct timespec t0, t1;

	sendto(client, q, qlen, 0, (struct sockaddr *)&resp, sizeof(resp));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pf[3] = { { .fd = client, .events = POLLIN },
					{ .fd = fa, .events = POLLIN },
					{ .fd = fb, .events = POLLIN } };
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec > 3 || poll(pf, 3, 200) < 0)
			return res;
		for (int i = 1; i < 3; i++) {
			size_t alen;

			if (!(pf[i].revents & POLLIN))
				continue;
			n = recvfrom(pf[i].fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
			if (n <= 0)
				continue;
			alen = answer(i == 1 ? ma : mb, buf, (size_t)n, out, sizeof(out), i == 1 ? sa : sb);
			if (alen)
				sendto(pf[i].fd, out, alen, 0, (struct sockaddr *)&from, fl);
		}
		if (pf[0].revents & POLLIN) {
			ldns_pkt *p = NULL;

			n = recv(client, buf, sizeof(buf), 0);
			if (n <= 0 || ldns_wire2pkt(&p, buf, (size_t)n) != LDNS_STATUS_OK)
				return res;
			res.rcode = ldns_pkt_get_rcode(p);
			res.id = ldns_pkt_id(p);
			res.opt = ldns_pkt_edns(p);
			for (size_t i = 0; i < ldns_pkt_ancount(p); i++) {
				ldns_rr *r = ldns_rr_list_rr(ldns_pkt_answer(p), i);

				if (ldns_rr_get_type(r) == LDNS_RR_TYPE_RRSIG)
					res.rrsigs++;
				else if (ldns_rr_get_type(r) == LDNS_RR_TYPE_A && !res.addr[0]) {
					char *s = ldns_rdf2str(ldns_rr_rdf(r, 0));

					snprintf(res.addr, sizeof(res.addr), "%s", s ? s : "");
					free(s);
				}
			}
			ldns_pkt_free(p);
			return res;
		}
	}
}

/* ---- the pure verdict ------------------------------------------------------ */

static void test_validate(struct ep_dnssec_anchor *a)
{
	struct ep_dnssec_keys keys;
	struct ep_fallback_question qi;
	struct seen s = {};
	uint8_t q[512], *wire = NULL, *out = NULL, reply[4096];
	size_t qlen, wlen = 0, outlen = 0, n;
	ldns_pkt *kp = NULL, *op = NULL;
	char why[256] = "no reply";
	enum ep_fallback_result r;

	/* the DNSKEY reply validated as the fallback does it */
	qlen = dnsmsg_query(q, sizeof(q), 7, ZONE, LDNS_RR_TYPE_DNSKEY, true);
	n = answer(GOOD, q, qlen, reply, sizeof(reply), &s);
	memset(&keys, 0, sizeof(keys));
	if (n && ldns_wire2pkt(&kp, reply, n) == LDNS_STATUS_OK)
		ep_dnssec_check_dnskey(a, kp, now, &keys, why, sizeof(why));
	ldns_pkt_free(kp);
	tap_ok(keys.keys != NULL, "the zone's keys validate against the anchor (%s)", why);

	qlen = dnsmsg_query(q, sizeof(q), 0x4242, "www." ZONE, LDNS_RR_TYPE_A, false);
	tap_ok(ep_fallback_dnssec_query(q, qlen, &qi, &wire, &wlen) == 0 && !qi.edns && !qi.dnssec_ok &&
		       qi.qtype == LDNS_RR_TYPE_A && !strcmp(qi.qname, "www." ZONE),
	       "the question of a client query without EDNS: %s", qi.qname);
	s = (struct seen){};
	n = wire ? answer(GOOD, wire, wlen, reply, sizeof(reply), &s) : 0;
	tap_ok(s.last_do && wire[0] == 0x42 && wire[1] == 0x42,
	       "the query that goes out has the DO bit (and the client's question and id)");
	free(wire);

	r = ep_fallback_validate(a, keys.keys, reply, n, &qi, now, &out, &outlen, why, sizeof(why));
	tap_ok(r == EP_FALLBACK_ANSWERED && out, "a signed answer passes (%s)", why);
	if (out && ldns_wire2pkt(&op, out, outlen) == LDNS_STATUS_OK) {
		tap_ok(ldns_pkt_ancount(op) == 1 && !ldns_pkt_edns(op),
		       "... relayed without the RRSIG and the OPT record the client did not ask for (%u records)",
		       (unsigned)ldns_pkt_ancount(op));
		ldns_pkt_free(op);
	} else {
		tap_ok(false, "... the stripped answer parses");
	}
	free(out);
	out = NULL;

	n = answer(FORGE_UNSIGNED, q, qlen, reply, sizeof(reply), &s);
	r = ep_fallback_validate(a, keys.keys, reply, n, &qi, now, &out, &outlen, why, sizeof(why));
	tap_ok(r == EP_FALLBACK_BOGUS && !out, "an unsigned answer for a name of the zone is bogus (%s)", why);
	reply[2] |= 0x02; /* TC */
	r = ep_fallback_validate(a, keys.keys, reply, n, &qi, now, &out, &outlen, why, sizeof(why));
	tap_ok(r == EP_FALLBACK_FAILED && !out,
	       "... but a truncated one is no answer, not a forgery (signatures may be what was cut)");
	n = answer(FORGE_RESIGNED, q, qlen, reply, sizeof(reply), &s);
	r = ep_fallback_validate(a, keys.keys, reply, n, &qi, now, &out, &outlen, why, sizeof(why));
	tap_ok(r == EP_FALLBACK_BOGUS, "another address under the true record's RRSIG is bogus (%s)", why);
	r = ep_fallback_validate(a, keys.keys, (const uint8_t *)"\x12\x34\x81\x80", 4, &qi, now, &out,
				 &outlen, why, sizeof(why));
	tap_ok(r == EP_FALLBACK_BOGUS && !out, "a reply that does not parse is bogus (%s)", why);
	ep_dnssec_keys_free(&keys);
}

/* ---- the responder ---------------------------------------------------------- */

static struct ep_policy_responder *start(const char *const *fb, int n)
{
	struct ep_policy_responder *r = NULL;
	struct ep_nameset names;
	char err[256];

	if (ep_policy_start_fallback(&r, "127.0.0.1", PORT, 30, fb, n, TIMEOUT_MS, anchor_new(), err,
				     sizeof(err))) {
		tap_diag("responder: %s", err);
		return NULL;
	}
	ep_nameset_init(&names);
	ep_nameset_add(&names, "in-snapshot.example");
	ep_policy_set_names(r, &names);
	return r;
}

int main(void)
{
	const char *one_fb[] = { "127.0.0.1#5311" }, *two_fb[] = { "127.0.0.1#5311", "127.0.0.1#5312" };
	struct ep_policy_responder *r;
	struct ep_policy_stats st;
	struct seen sa = {}, sb = {};
	struct ep_dnssec_anchor *a;
	struct result res;
	int client, fa, fb;

	now = time(NULL);
	if (!mkdtemp(tmpdir))
		return tap_skip_all("no temporary directory");
	ksk = test_key_new(ZONE, LDNS_KEY_ZONE_KEY | LDNS_KEY_SEP_KEY);
	zsk = test_key_new(ZONE, LDNS_KEY_ZONE_KEY);
	rogue = test_key_new(ZONE, LDNS_KEY_ZONE_KEY | LDNS_KEY_SEP_KEY);
	a = anchor_new();
	tap_ok(ksk.rr && zsk.rr && rogue.rr && a, "keys made, the KSK's DS loaded as the anchor");
	if (!a)
		return tap_done();
	test_validate(a);
	ep_dnssec_anchor_free(a);

	if (ep_test_own_netns()) {
		tap_skip("needs root for a network namespace of its own", "the responder checks");
		goto out;
	}
	fa = udp_lo_bound(FB_A);
	fb = udp_lo_bound(FB_B);
	client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	r = start(one_fb, 1);
	tap_ok(r && fa >= 0 && fb >= 0, "responder with one fallback and the anchor listening");
	if (!r)
		goto out;

	/* 1. a signed answer: keys fetched first, the answer relayed */
	res = ask(client, fa, fb, GOOD, GOOD, 0x1111, "www." ZONE, false, &sa, &sb);
	tap_ok(res.rcode == LDNS_RCODE_NOERROR && res.id == 0x1111 && !strcmp(res.addr, "198.18.0.1"),
	       "a signed answer for a name of the zone reaches the client (rcode %d, %s)", res.rcode, res.addr);
	tap_ok(sa.dnskey == 1 && sa.queries == 2 && sa.last_do,
	       "... after one DNSKEY fetch; the query went out with the DO bit (%d DNSKEY, %d queries)",
	       sa.dnskey, sa.queries);
	tap_ok(res.rrsigs == 0 && !res.opt, "... without RRSIG or OPT for a client that sent no EDNS");
	res = ask(client, fa, fb, GOOD, GOOD, 0x1112, "api." ZONE, true, &sa, &sb);
	tap_ok(res.rcode == LDNS_RCODE_NOERROR && !strcmp(res.addr, "198.18.0.2") && res.rrsigs == 1,
	       "a client with the DO bit gets the RRSIG too (%d)", res.rrsigs);
	tap_ok(sa.dnskey == 1, "the validated keys are kept: no second DNSKEY fetch (%d)", sa.dnskey);

	/* 2. forged answers */
	res = ask(client, fa, fb, FORGE_UNSIGNED, GOOD, 0x2221, "www." ZONE, false, &sa, &sb);
	tap_ok(res.rcode == LDNS_RCODE_SERVFAIL && res.id == 0x2221 && !res.addr[0],
	       "an unsigned (forged) answer for a name of the zone: SERVFAIL (rcode %d %s)", res.rcode, res.addr);
	res = ask(client, fa, fb, FORGE_RESIGNED, GOOD, 0x2222, "api." ZONE, false, &sa, &sb);
	tap_ok(res.rcode == LDNS_RCODE_SERVFAIL && !res.addr[0],
	       "another address under the true RRSIG: SERVFAIL (rcode %d %s)", res.rcode, res.addr);

	/* 3. not validated: NXDOMAIN, and names outside the zone */
	res = ask(client, fa, fb, GOOD, GOOD, 0x3331, "nx." ZONE, false, &sa, &sb);
	tap_ok(res.rcode == LDNS_RCODE_NXDOMAIN, "NXDOMAIN for a name of the zone is relayed as it is (rcode %d)",
	       res.rcode);
	res = ask(client, fa, fb, FORGE_UNSIGNED, GOOD, 0x3332, "outside.example.", false, &sa, &sb);
	tap_ok(res.rcode == LDNS_RCODE_NOERROR && !strcmp(res.addr, "198.18.9.9") && !sa.last_do &&
		       !strcmp(sa.last, "outside.example."),
	       "a name outside the zone is relayed unvalidated, its query sent as the client's (no DO) (%s)",
	       res.addr);

	ep_policy_get_stats(r, &st);
	tap_ok(st.fallback_bogus == 2 && st.fallback_answered == 4 && st.fallback_failed == 0,
	       "counted: 2 bogus, 4 answered, 0 failed (%llu, %llu, %llu)",
	       (unsigned long long)st.fallback_bogus, (unsigned long long)st.fallback_answered,
	       (unsigned long long)st.fallback_failed);
	tap_ok(st.servfail == 2, "... and the 2 SERVFAILs counted as policy answers (%llu)",
	       (unsigned long long)st.servfail);
	ep_policy_stop(r);

	/* 4. two resolvers: a bogus answer from the first makes the second be asked */
	sa = sb = (struct seen){};
	r = start(two_fb, 2);
	res = ask(client, fa, fb, FORGE_UNSIGNED, GOOD, 0x4441, "www." ZONE, false, &sa, &sb);
	tap_ok(res.rcode == LDNS_RCODE_NOERROR && !strcmp(res.addr, "198.18.0.1") && sb.queries == 1,
	       "the first resolver forges, the second is asked and its signed answer relayed (%s)", res.addr);
	if (r) {
		ep_policy_get_stats(r, &st);
		tap_ok(st.fallback_bogus == 0 && st.fallback_answered == 1,
		       "... counted answered, not bogus (%llu, %llu)", (unsigned long long)st.fallback_answered,
		       (unsigned long long)st.fallback_bogus);
	}
	ep_policy_stop(r);

	/* 5. bogus keys: nothing of the zone can be validated */
	sa = sb = (struct seen){};
	r = start(one_fb, 1);
	res = ask(client, fa, fb, BOGUS_KEYS, GOOD, 0x5551, "www." ZONE, false, &sa, &sb);
	tap_ok(res.rcode == LDNS_RCODE_SERVFAIL && sa.dnskey == 1 && sa.queries == 1,
	       "a DNSKEY RRset not signed by the anchored key: SERVFAIL, the query never sent (rcode %d, %d queries)",
	       res.rcode, sa.queries);
	res = ask(client, fa, fb, BOGUS_KEYS, GOOD, 0x5552, "outside.example.", false, &sa, &sb);
	tap_ok(res.rcode == LDNS_RCODE_NOERROR && !strcmp(res.addr, "198.18.9.9"),
	       "... while names outside the zone are still answered");
	if (r) {
		ep_policy_get_stats(r, &st);
		tap_ok(st.fallback_bogus == 1, "... counted bogus (%llu)", (unsigned long long)st.fallback_bogus);
	}
	ep_policy_stop(r);
	close(client);
	close(fa);
	close(fb);
out:
	test_key_free(&ksk);
	test_key_free(&zsk);
	test_key_free(&rogue);
	{
		char path[300];

		snprintf(path, sizeof(path), "%s/anchor", tmpdir);
		unlink(path);
		rmdir(tmpdir);
	}
	return tap_done();
}
