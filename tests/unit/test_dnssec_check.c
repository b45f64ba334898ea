/*
 * DNSSEC validation of probe answers (agent/dns/dnssec_check.c): anchors read
 * from files, the zone's DNSKEY RRset checked against them, answers checked
 * with the validated keys. Keys are made in memory with ldns (ECDSA P-256,
 * a KSK and a ZSK as ldns-keygen would) and RRsets signed with
 * ldns_sign_public, so every case is built from scratch at test time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dnsmsg.h"
#include "dnssec_check.h"
#include "dnssec_keys.h"
#include "tap.h"

#define ZONE "edge.test."
#define DAY (24 * 3600)

static char tmpdir[] = "/tmp/ep-dnssec-test.XXXXXX";
static time_t now;

/* ---- building blocks ------------------------------------------------------ */

/* Appends deep copies of LIST to the answer section; frees LIST. */
static void answer_add(ldns_pkt *p, ldns_rr_list *list)
{
	for (size_t i = 0; list && i < ldns_rr_list_rr_count(list); i++)
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, ldns_rr_clone(ldns_rr_list_rr(list, i)));
	ldns_rr_list_deep_free(list);
}

static ldns_rr_list *list_of(ldns_rr *a, ldns_rr *b)
{
	ldns_rr_list *l = ldns_rr_list_new();

	if (a)
		ldns_rr_list_push_rr(l, a);
	if (b)
		ldns_rr_list_push_rr(l, b);
	return l;
}

/* A DNSKEY reply with KSK and ZSK, signed by SIGNER. */
static ldns_pkt *dnskey_reply(struct test_key *ksk, struct test_key *zsk, struct test_key *signer,
			      uint32_t inception, uint32_t expiration)
{
	ldns_pkt *p = dnsmsg_reply(4242, ZONE, LDNS_RR_TYPE_DNSKEY, LDNS_RCODE_NOERROR);
	ldns_rr_list *set = list_of(ldns_rr_clone(ksk->rr), ldns_rr_clone(zsk->rr));

	if (signer)
		answer_add(p, test_key_sign(signer, set, now, inception, expiration));
	answer_add(p, set);
	return p;
}

static char *write_file(const char *name, const char *text)
{
	static char path[4][256];
	static int n;
	char *pth = path[n++ % 4];
	FILE *f;

	snprintf(pth, 256, "%s/%s", tmpdir, name);
	f = fopen(pth, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	return pth;
}

static char *rr_text(const ldns_rr *r)
{
	return ldns_rr2str(r);
}

/* Loads an anchor written from TEXT; the error text in err. */
static int load_text(const char *text, struct ep_dnssec_anchor **a, char *err, size_t len)
{
	return ep_dnssec_anchor_load(write_file("anchor", text), a, err, len);
}

static struct ep_dnssec_anchor *anchor_ds(const struct test_key *ksk, ldns_hash h)
{
	ldns_rr *ds = ldns_key_rr2ds(ksk->rr, h);
	char *t = rr_text(ds), err[512];
	struct ep_dnssec_anchor *a = NULL;

	if (load_text(t, &a, err, sizeof(err)))
		tap_diag("anchor: %s", err);
	free(t);
	ldns_rr_free(ds);
	return a;
}

static struct ep_dnssec_anchor *anchor_key(const struct test_key *ksk)
{
	char *t = rr_text(ksk->rr), err[512];
	struct ep_dnssec_anchor *a = NULL;

	if (load_text(t, &a, err, sizeof(err)))
		tap_diag("anchor: %s", err);
	free(t);
	return a;
}

/* ---- the anchor file ------------------------------------------------------ */

static void test_anchor_files(struct test_key *ksk)
{
	struct ep_dnssec_anchor *a = NULL;
	ldns_rr *ds = ldns_key_rr2ds(ksk->rr, LDNS_SHA256), *ds1 = ldns_key_rr2ds(ksk->rr, LDNS_SHA1);
	char *dst = rr_text(ds), *ds1t = rr_text(ds1), *kt = rr_text(ksk->rr), err[512], text[4096];
	int rc;

	snprintf(text, sizeof(text),
		 "; written by ldns-key2ds, then commented\n\n$TTL 3600\n%s;; second digest\n%s",
		 dst, ds1t);
	rc = load_text(text, &a, err, sizeof(err));
	tap_ok(rc == 0 && a && !strcmp(ep_dnssec_anchor_zone(a), ZONE) &&
		       ep_dnssec_anchor_count(a) == 2,
	       "a DS anchor file (comments, blank line, $TTL, SHA-256 and SHA-1 digests) loads: zone %s",
	       a ? ep_dnssec_anchor_zone(a) : err);
	ep_dnssec_anchor_free(a);
	a = NULL;

	/* unbound's auto-trust-anchor-file style: comments after the record. */
	kt[strcspn(kt, "\n")] = '\0';
	snprintf(text, sizeof(text), ";;id: edge.test. 1\n;;last_queried: 0 ;;Thu Jan  1 00:00:00 1970\n"
				     "%s ;{id = 1 (ksk), size = 256b} ;;state=2 [  VALID  ]\n",
		 kt);
	rc = load_text(text, &a, err, sizeof(err));
	tap_ok(rc == 0 && a && ep_dnssec_anchor_count(a) == 1,
	       "a DNSKEY anchor (unbound auto-trust-anchor-file line with comments) loads%s%s",
	       rc ? ": " : "", rc ? err : "");
	ep_dnssec_anchor_free(a);
	a = NULL;

	/* RFC 5011: a revoked key stays in the file for a while; skipped. */
	snprintf(text, sizeof(text),
		 "edge.test. 3600 IN DNSKEY 385 3 13 "
		 "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== "
		 ";;state=4 [ REVOKED ]\n%s ;;state=2 [ VALID ]\n",
		 kt);
	rc = load_text(text, &a, err, sizeof(err));
	tap_ok(rc == 0 && a && ep_dnssec_anchor_count(a) == 1,
	       "a revoked DNSKEY next to a valid one is skipped (%zu anchor(s))%s%s",
	       a ? ep_dnssec_anchor_count(a) : 0, rc ? ": " : "", rc ? err : "");
	ep_dnssec_anchor_free(a);
	a = NULL;

	/* $ORIGIN and relative owners, as in a zone file. */
	snprintf(text, sizeof(text), "$ORIGIN edge.test.\n@ 3600 IN DS %u 13 2 %s\n",
		 ldns_calc_keytag(ksk->rr), strrchr(dst, ' ') + 1);
	rc = load_text(text, &a, err, sizeof(err));
	tap_ok(rc == 0 && a && !strcmp(ep_dnssec_anchor_zone(a), ZONE),
	       "$ORIGIN with a relative owner (@) loads%s%s", rc ? ": " : "", rc ? err : "");
	if (a) {
		tap_ok(ep_dnssec_in_zone(a, "edge.test") && ep_dnssec_in_zone(a, "N1.Edge.Test.") &&
			       ep_dnssec_in_zone(a, "a.b.edge.test") && !ep_dnssec_in_zone(a, "test") &&
			       !ep_dnssec_in_zone(a, "xedge.test") && !ep_dnssec_in_zone(a, "edge.test.org"),
		       "in-zone: the apex and names below it (any case); not xedge.test, test, edge.test.org");
	}
	ep_dnssec_anchor_free(a);
	a = NULL;

	static const struct {
		const char *what, *text, *expect;
	} bad[] = {
		{"an empty file", "", "no usable DS or DNSKEY record"},
		{"only comments and blank lines", "; nothing\n\n   \n;; here\n", "no usable DS or DNSKEY record"},
		{"garbage text", "this is not a trust anchor\n", "anchor:1: not a DS or DNSKEY record"},
		{"binary garbage", "\x01\x02\xff\xfe garbage \x7f\n\x03\n", "not a DS or DNSKEY record"},
		{"a truncated DS record", "edge.test. IN DS 12345 13 2\n", "not a DS or DNSKEY record"},
		{"a DS with a bad digest", "edge.test. IN DS 12345 13 2 ZZZZ\n", "not a DS or DNSKEY record"},
		{"an A record", "edge.test. 300 IN A 192.0.2.1\n", "a A record; a trust anchor file holds"},
		{"a GOST digest (type 3)",
		 "edge.test. IN DS 12345 13 3 "
		 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
		 "digest type 3"},
		{"a DS digest of the wrong length", "edge.test. IN DS 12345 13 2 0123456789abcdef\n",
		 "wrong length"},
		{"a DS for an unknown algorithm",
		 "edge.test. IN DS 12345 99 2 "
		 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
		 "algorithm 99"},
		{"only a revoked DNSKEY", "edge.test. IN DNSKEY 385 3 13 "
					  "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n",
		 "no usable DS or DNSKEY record"},
		{"a DNSKEY without the zone bit", "edge.test. IN DNSKEY 1 3 13 "
						  "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n",
		 "not a zone key"},
		{"$INCLUDE", "$INCLUDE /etc/passwd\n", "$INCLUDE is not supported"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		rc = load_text(bad[i].text, &a, err, sizeof(err));
		tap_ok(rc < 0 && !a && strstr(err, "/anchor") && strstr(err, bad[i].expect),
		       "refused: %s (%s)", bad[i].what, err);
		ep_dnssec_anchor_free(a);
		a = NULL;
	}

	snprintf(text, sizeof(text), "%sother.test. IN DS %u 13 2 %s\n", dst, ldns_calc_keytag(ksk->rr),
		 strrchr(dst, ' ') + 1);
	rc = load_text(text, &a, err, sizeof(err));
	tap_ok(rc < 0 && !a && strstr(err, "anchor:2:") && strstr(err, "one zone"),
	       "refused: records for two zones (%s)", err);

	snprintf(text, sizeof(text), "%s/does-not-exist", tmpdir);
	rc = ep_dnssec_anchor_load(text, &a, err, sizeof(err));
	tap_ok(rc == -ENOENT && !a && strstr(err, text) && strstr(err, "No such file"),
	       "refused: a missing file (%s)", err);
	rc = ep_dnssec_anchor_load(tmpdir, &a, err, sizeof(err));
	tap_ok(rc < 0 && !a && strstr(err, "not a regular file"), "refused: a directory (%s)", err);

	free(dst);
	free(ds1t);
	free(kt);
	ldns_rr_free(ds);
	ldns_rr_free(ds1);
}

/* ---- the DNSKEY RRset ----------------------------------------------------- */

static enum ep_dnssec_verdict check_keys(struct ep_dnssec_anchor *a, ldns_pkt *p, time_t t,
					 struct ep_dnssec_keys *k, char *why, size_t len)
{
	enum ep_dnssec_verdict v = ep_dnssec_check_dnskey(a, p, t, k, why, len);

	ldns_pkt_free(p);
	return v;
}

static void test_dnskey(struct test_key *ksk, struct test_key *zsk, struct test_key *other)
{
	struct ep_dnssec_anchor *by_ds = anchor_ds(ksk, LDNS_SHA256), *by_key = anchor_key(ksk);
	struct ep_dnssec_anchor *by_sha384 = anchor_ds(ksk, LDNS_SHA384);
	struct ep_dnssec_anchor *wrong = anchor_ds(other, LDNS_SHA256);
	struct ep_dnssec_keys k;
	enum ep_dnssec_verdict v;
	char why[300];

	v = check_keys(by_ds, dnskey_reply(ksk, zsk, ksk, 0, 0), now, &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_SECURE && k.keys && ldns_rr_list_rr_count(k.keys) == 2,
	       "DS-anchored: the DNSKEY RRset signed by the KSK validates, both keys kept (%s)", why);
	tap_ok(k.refresh_s == 3600 && k.expire_s > 20 * DAY && k.expire_s <= 28 * DAY + 5,
	       "keys fetched again after their TTL (3600 s; got %u), usable until the signature expires "
	       "(%u s)",
	       k.refresh_s, k.expire_s);
	ep_dnssec_keys_free(&k);

	v = check_keys(by_key, dnskey_reply(ksk, zsk, ksk, 0, 0), now, &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_SECURE && k.keys, "DNSKEY-anchored: validates (%s)", why);
	ep_dnssec_keys_free(&k);

	v = check_keys(by_sha384, dnskey_reply(ksk, zsk, ksk, 0, 0), now, &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_SECURE, "DS with a SHA-384 digest: validates (%s)", why);
	ep_dnssec_keys_free(&k);

	v = check_keys(wrong, dnskey_reply(ksk, zsk, ksk, 0, 0), now, &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && !k.keys && strstr(why, "matches the trust anchor"),
	       "wrong anchor (DS of another key): bogus (%s)", why);

	v = check_keys(by_ds, dnskey_reply(ksk, zsk, zsk, 0, 0), now, &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && !k.keys,
	       "DNSKEY RRset signed only by the ZSK, anchor on the KSK: bogus (%s)", why);

	v = check_keys(by_ds, dnskey_reply(ksk, zsk, NULL, 0, 0), now, &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "no RRSIG"), "DNSKEY RRset without RRSIG: bogus (%s)",
	       why);

	v = check_keys(by_ds, dnskey_reply(ksk, zsk, ksk, (uint32_t)(now - 30 * DAY), (uint32_t)(now - DAY)),
		       now, &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "expired"),
	       "DNSKEY RRset with an expired signature: bogus (%s)", why);

	v = check_keys(by_ds, dnskey_reply(ksk, zsk, ksk, (uint32_t)(now + DAY), (uint32_t)(now + 30 * DAY)),
		       now, &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "incepted"),
	       "DNSKEY RRset with a signature not valid yet: bogus (%s)", why);

	v = check_keys(by_ds, dnskey_reply(ksk, zsk, ksk, (uint32_t)(now + 120), (uint32_t)(now + DAY)), now,
		       &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_SECURE, "a signature incepted 2 minutes in our future (clock skew): accepted (%s)",
	       why);
	ep_dnssec_keys_free(&k);
	v = check_keys(by_ds, dnskey_reply(ksk, zsk, ksk, (uint32_t)(now - DAY), (uint32_t)(now - 1)), now,
		       &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "expired"),
	       "a signature that expired a second ago: bogus (no skew on expiration) (%s)", why);
	v = check_keys(by_ds, dnskey_reply(ksk, zsk, ksk, 0, 0), now + 60 * DAY, &k, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS, "the same good reply judged 60 days later: bogus (%s)", why);

	{
		/* Signatures that expire in 10 minutes bound the cache. */
		ldns_pkt *p = dnskey_reply(ksk, zsk, ksk, (uint32_t)(now - DAY), (uint32_t)(now + 600));

		v = check_keys(by_ds, p, now, &k, why, sizeof(why));
		tap_ok(v == EP_DNSSEC_SECURE && k.refresh_s == 600 && k.expire_s == 600,
		       "keys cached no longer than their signature lives (refresh %u s, expire %u s)",
		       k.refresh_s, k.expire_s);
		ep_dnssec_keys_free(&k);
	}
	{
		/* TTL 5 s: not fetched every probe (floor), TTL 1 day: at most an hour. */
		ldns_pkt *p = dnsmsg_reply(4242, ZONE, LDNS_RR_TYPE_DNSKEY, LDNS_RCODE_NOERROR);
		ldns_rr_list *set = list_of(ldns_rr_clone(ksk->rr), ldns_rr_clone(zsk->rr));

		for (size_t i = 0; i < 2; i++)
			ldns_rr_set_ttl(ldns_rr_list_rr(set, i), 5);
		answer_add(p, test_key_sign(ksk, set, now, 0, 0));
		answer_add(p, set);
		v = check_keys(by_ds, p, now, &k, why, sizeof(why));
		tap_ok(v == EP_DNSSEC_SECURE && k.refresh_s == EP_DNSSEC_KEYS_MIN_S,
		       "DNSKEY TTL 5 s: fetched again after %u s (the floor)", k.refresh_s);
		ep_dnssec_keys_free(&k);

		p = dnsmsg_reply(4242, ZONE, LDNS_RR_TYPE_DNSKEY, LDNS_RCODE_NOERROR);
		set = list_of(ldns_rr_clone(ksk->rr), ldns_rr_clone(zsk->rr));
		for (size_t i = 0; i < 2; i++)
			ldns_rr_set_ttl(ldns_rr_list_rr(set, i), DAY);
		answer_add(p, test_key_sign(ksk, set, now, 0, 0));
		answer_add(p, set);
		v = check_keys(by_ds, p, now, &k, why, sizeof(why));
		tap_ok(v == EP_DNSSEC_SECURE && k.refresh_s == EP_DNSSEC_KEYS_MAX_S,
		       "DNSKEY TTL 1 day: fetched again after %u s (the 1 h bound)", k.refresh_s);
		ep_dnssec_keys_free(&k);
	}
	{
		/* A key slipped into the signed RRset breaks the signature. */
		ldns_pkt *p = dnsmsg_reply(4242, ZONE, LDNS_RR_TYPE_DNSKEY, LDNS_RCODE_NOERROR);
		ldns_rr_list *set = list_of(ldns_rr_clone(ksk->rr), ldns_rr_clone(zsk->rr));
		ldns_rr *evil = ldns_rr_clone(other->rr);

		answer_add(p, test_key_sign(ksk, set, now, 0, 0));
		answer_add(p, set);
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, evil);
		v = check_keys(by_ds, p, now, &k, why, sizeof(why));
		tap_ok(v == EP_DNSSEC_BOGUS && !k.keys, "an extra (attacker's) key added to the signed DNSKEY RRset: bogus (%s)",
		       why);
	}
	v = check_keys(by_ds, dnsmsg_reply(4242, ZONE, LDNS_RR_TYPE_DNSKEY, LDNS_RCODE_NOERROR), now, &k, why,
		       sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "no DNSKEY"), "no DNSKEY records at all: bogus (%s)", why);
	v = check_keys(by_ds, dnsmsg_reply(4242, ZONE, LDNS_RR_TYPE_DNSKEY, LDNS_RCODE_NXDOMAIN), now, &k, why,
		       sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS, "NXDOMAIN for the anchored zone: bogus (%s)", why);

	ep_dnssec_anchor_free(by_ds);
	ep_dnssec_anchor_free(by_key);
	ep_dnssec_anchor_free(by_sha384);
	ep_dnssec_anchor_free(wrong);
}

/* ---- answers -------------------------------------------------------------- */

static enum ep_dnssec_verdict check_ans(struct ep_dnssec_anchor *a, const ldns_rr_list *keys,
					ldns_pkt *p, const char *qname, uint16_t qtype, time_t t,
					char *why, size_t len)
{
	enum ep_dnssec_verdict v = ep_dnssec_check_answer(a, keys, p, qname, qtype, t, why, len);

	ldns_pkt_free(p);
	return v;
}

/* A reply for QNAME A with RECORDS (text, ";"-separated), each RRset signed
 * by SIGNER unless it is NULL. */
static ldns_pkt *answer(const char *qname, const char *records, struct test_key *signer,
			uint32_t inception, uint32_t expiration)
{
	ldns_pkt *p = dnsmsg_reply(4242, qname, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	char buf[1024], *save = NULL, *tok;
	ldns_rr_list *all = ldns_rr_list_new(), *set;

	snprintf(buf, sizeof(buf), "%s", records);
	for (tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
		ldns_rr_list_push_rr(all, test_rr(tok));
	/* One RRset at a time (ldns_rr_list_pop_rrset takes the last one). */
	while ((set = ldns_rr_list_pop_rrset(all))) {
		if (signer)
			answer_add(p, test_key_sign(signer, set, now, inception, expiration));
		answer_add(p, set);
	}
	ldns_rr_list_free(all);
	return p;
}

static void test_answers(struct test_key *ksk, struct test_key *zsk, struct test_key *other)
{
	struct ep_dnssec_anchor *a = anchor_ds(ksk, LDNS_SHA256), *ka = anchor_key(ksk);
	struct ep_dnssec_keys k, kk;
	enum ep_dnssec_verdict v;
	char why[300];
	ldns_pkt *p;

	v = check_keys(a, dnskey_reply(ksk, zsk, ksk, 0, 0), now, &k, why, sizeof(why));
	if (!tap_ok(v == EP_DNSSEC_SECURE, "keys for the answer tests validated (%s)", why))
		return;
	v = check_keys(ka, dnskey_reply(ksk, zsk, ksk, 0, 0), now, &kk, why, sizeof(why));

	v = check_ans(a, k.keys, answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1", zsk, 0, 0),
		      "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_SECURE, "DS-anchored: an A RRset signed by the ZSK validates (%s)", why);
	v = check_ans(ka, kk.keys, answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1", zsk, 0, 0),
		      "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_SECURE, "DNSKEY-anchored: the same answer validates (%s)", why);
	v = check_ans(a, k.keys,
		      answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1;n1.edge.test. 300 IN A 198.18.0.2",
			     ksk, 0, 0),
		      "N1.EDGE.TEST.", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_SECURE,
	       "two addresses signed by the KSK (any validated key), name asked in upper case: validates (%s)",
	       why);

	/* Tampering: the address changed after signing. */
	p = answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1", zsk, 0, 0);
	for (size_t i = 0; i < ldns_rr_list_rr_count(ldns_pkt_answer(p)); i++) {
		ldns_rr *r = ldns_rr_list_rr(ldns_pkt_answer(p), i);

		if (ldns_rr_get_type(r) == LDNS_RR_TYPE_A) {
			ldns_rdf *addr = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, "203.0.113.66");

			ldns_rdf_deep_free(ldns_rr_set_rdf(r, addr, 0));
		}
	}
	v = check_ans(a, k.keys, p, "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "n1.edge.test."),
	       "tampered address (signature of the original): bogus (%s)", why);

	/* An extra forged address next to the signed one. */
	p = answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1", zsk, 0, 0);
	ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, test_rr("n1.edge.test. 300 IN A 203.0.113.66"));
	v = check_ans(a, k.keys, p, "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS, "a forged address added to a signed RRset: bogus (%s)", why);

	v = check_ans(a, k.keys, answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1", NULL, 0, 0),
		      "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "no RRSIG"), "missing RRSIG (stripped): bogus (%s)", why);

	v = check_ans(a, k.keys,
		      answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1", zsk, (uint32_t)(now - 30 * DAY),
			     (uint32_t)(now - DAY)),
		      "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "expired"), "expired signature: bogus (%s)", why);

	v = check_ans(a, k.keys, answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1", other, 0, 0),
		      "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS, "signed by a key that is not in the validated DNSKEY RRset: bogus (%s)",
	       why);

	v = check_ans(a, NULL, answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1", zsk, 0, 0),
		      "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS, "no validated keys: bogus (%s)", why);

	{
		/* The right key material but a key of another zone (signer name). */
		struct test_key imp = test_key_new("evil.test.", 256);
		ldns_rr_list *keys = ldns_rr_list_clone(k.keys);

		ldns_rr_list_push_rr(keys, ldns_rr_clone(imp.rr));
		v = check_ans(a, keys, answer("n1.edge.test.", "n1.edge.test. 300 IN A 198.18.0.1", &imp, 0, 0),
			      "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
		tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "not by the anchored zone"),
		       "signed by another zone's key: bogus (%s)", why);
		ldns_rr_list_deep_free(keys);
		test_key_free(&imp);
	}

	/* CNAME chains inside the zone. */
	v = check_ans(a, k.keys,
		      answer("n13.edge.test.",
			     "n13.edge.test. 300 IN CNAME c13-1.edge.test.;c13-1.edge.test. 300 IN A 198.18.0.13",
			     zsk, 0, 0),
		      "n13.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_SECURE, "CNAME then A, both signed: validates (%s)", why);
	p = answer("n13.edge.test.", "c13-1.edge.test. 300 IN A 198.18.0.13", zsk, 0, 0);
	ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, test_rr("n13.edge.test. 300 IN CNAME c13-1.edge.test."));
	v = check_ans(a, k.keys, p, "n13.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS && strstr(why, "CNAME"), "an unsigned CNAME in front of a signed A: bogus (%s)",
	       why);
	p = answer("n13.edge.test.", "n13.edge.test. 300 IN CNAME c13-1.edge.test.", zsk, 0, 0);
	ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, test_rr("c13-1.edge.test. 300 IN A 203.0.113.66"));
	v = check_ans(a, k.keys, p, "n13.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_BOGUS, "a signed CNAME to an unsigned A: bogus (%s)", why);
	v = check_ans(a, k.keys,
		      answer("n18.edge.test.", "n18.edge.test. 300 IN CNAME e18.elsewhere.example.", zsk, 0, 0),
		      "n18.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_INSECURE && strstr(why, "leaves"),
	       "a signed CNAME leaving the zone: the rest is not validated (%s)", why);

	/* Not validated / nothing to validate. */
	v = check_ans(a, k.keys, answer("www.example.org.", "www.example.org. 300 IN A 192.0.2.1", NULL, 0, 0),
		      "www.example.org", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_INSECURE, "a name outside the anchored zone: not validated (%s)", why);
	v = check_ans(a, k.keys, dnsmsg_reply(4242, "nx1.edge.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN),
		      "nx1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_NO_DATA, "NXDOMAIN: left to the caller (no denial proofs) (%s)", why);
	v = check_ans(a, k.keys, dnsmsg_reply(4242, "n1.edge.test.", LDNS_RR_TYPE_A, LDNS_RCODE_SERVFAIL),
		      "n1.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_NO_DATA, "SERVFAIL: left to the caller (%s)", why);
	v = check_ans(a, k.keys, dnsmsg_reply(4242, "n16.edge.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR),
		      "n16.edge.test", LDNS_RR_TYPE_A, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_NO_DATA, "NODATA: left to the caller (%s)", why);

	/* AAAA works the same way. */
	p = dnsmsg_reply(4242, "n10.edge.test.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR);
	{
		ldns_rr_list *set = list_of(test_rr("n10.edge.test. 300 IN AAAA 2001:db8:1:b::1"), NULL);

		answer_add(p, test_key_sign(zsk, set, now, 0, 0));
		answer_add(p, set);
	}
	v = check_ans(a, k.keys, p, "n10.edge.test", LDNS_RR_TYPE_AAAA, now, why, sizeof(why));
	tap_ok(v == EP_DNSSEC_SECURE, "an AAAA RRset signed by the ZSK validates (%s)", why);

	ep_dnssec_keys_free(&k);
	ep_dnssec_keys_free(&kk);
	ep_dnssec_anchor_free(a);
	ep_dnssec_anchor_free(ka);
}

int main(void)
{
	struct test_key ksk, zsk, other;
	char cmd[300];

	now = time(NULL);
	if (!mkdtemp(tmpdir)) {
		tap_ok(0, "mkdtemp: %s", strerror(errno));
		return tap_done();
	}
	ksk = test_key_new(ZONE, 257);
	zsk = test_key_new(ZONE, 256);
	other = test_key_new(ZONE, 257);
	if (!tap_ok(ksk.rr && zsk.rr && other.rr, "ECDSA P-256 keys generated with ldns (KSK %u, ZSK %u)",
		    ksk.rr ? ldns_calc_keytag(ksk.rr) : 0, zsk.rr ? ldns_calc_keytag(zsk.rr) : 0))
		return tap_done();

	test_anchor_files(&ksk);
	test_dnskey(&ksk, &zsk, &other);
	test_answers(&ksk, &zsk, &other);

	test_key_free(&ksk);
	test_key_free(&zsk);
	test_key_free(&other);
	snprintf(cmd, sizeof(cmd), "%s/anchor", tmpdir);
	unlink(cmd);
	rmdir(tmpdir);
	return tap_done();
}
