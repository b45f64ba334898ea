/*
 * CPU cost of DNSSEC validation in the cache's fallback (cache/fallback.c):
 * per answer, on the responder's one thread. A zone signed at start with
 * ldns (ECDSA P-256 KSK and ZSK, as dns_zone_sign makes them); each case is
 * run REPEAT times and the mean printed:
 *   - the rewrite of a client query with the DO bit (every anchored query),
 *   - a signed A answer relayed to a client with DO (validation only),
 *   - ... to a client without DO (validation + the RRSIG stripped: dnsmasq),
 *   - an unsigned (forged) answer: bogus,
 *   - the zone's DNSKEY RRset validated against the anchor (once a refresh).
 *
 * Usage: fallback_dnssec_cost [REPEAT] [JSON_OUT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dnsmsg.h"
#include "dnssec_check.h"
#include "fallback.h"

#define ZONE "edge.test."

static time_t now;

struct key {
	ldns_key *k;
	ldns_key_list *kl;
	ldns_rr *rr;
};

static struct key key_new(uint16_t flags)
{
	struct key x = {};

	x.k = ldns_key_new_frm_algorithm(LDNS_SIGN_ECDSAP256SHA256, 256);
	ldns_key_set_pubkey_owner(x.k, ldns_dname_new_frm_str(ZONE));
	ldns_key_set_flags(x.k, flags);
	x.rr = ldns_key2rr(x.k);
	ldns_rr_set_ttl(x.rr, 3600);
	ldns_key_set_keytag(x.k, ldns_calc_keytag(x.rr));
	ldns_key_set_inception(x.k, (uint32_t)(now - 3600));
	x.kl = ldns_key_list_new();
	ldns_key_list_push_key(x.kl, x.k);
	return x;
}

static void add(ldns_pkt *p, ldns_rr_list *set, struct key *signer)
{
	ldns_rr_list *sigs = signer ? ldns_sign_public(set, signer->kl) : NULL;

	for (size_t i = 0; i < ldns_rr_list_rr_count(set); i++)
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, ldns_rr_clone(ldns_rr_list_rr(set, i)));
	for (size_t i = 0; sigs && i < ldns_rr_list_rr_count(sigs); i++)
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, ldns_rr_clone(ldns_rr_list_rr(sigs, i)));
	ldns_rr_list_deep_free(sigs);
}

static uint8_t *wire_of(ldns_pkt *p, size_t *len)
{
	uint8_t *w = NULL;

	ldns_pkt_set_edns_udp_size(p, 1232);
	ldns_pkt_set_edns_do(p, true);
	if (ldns_pkt2wire(&w, p, len) != LDNS_STATUS_OK)
		exit(1);
	ldns_pkt_free(p);
	return w;
}

static double ns_since(const struct timespec *t0, int repeat)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return ((double)(t1.tv_sec - t0->tv_sec) * 1e9 + (double)(t1.tv_nsec - t0->tv_nsec)) / repeat;
}

int main(int argc, char **argv)
{
	int repeat = argc > 1 ? atoi(argv[1]) : 20000;
	const char *json = argc > 2 ? argv[2] : NULL;
	char path[] = "/tmp/ep-bench-anchor.XXXXXX", err[256], why[256], *t;
	struct ep_dnssec_anchor *a = NULL;
	struct ep_dnssec_keys keys;
	struct ep_fallback_question qi_do = {}, qi_plain = {};
	struct key ksk, zsk;
	ldns_rr_list *set;
	ldns_rr *r = NULL;
	ldns_pkt *p, *kp = NULL;
	uint8_t *signed_a, *unsigned_a, *dnskey, *query = NULL;
	size_t signed_len, unsigned_len, dnskey_len, qlen = 0;
	struct {
		const char *name;
		double ns;
	} res[5];
	struct timespec t0;
	FILE *jf;
	int fd, n = 0;

	now = time(NULL);
	if (repeat <= 0)
		repeat = 20000;
	ksk = key_new(LDNS_KEY_ZONE_KEY | LDNS_KEY_SEP_KEY);
	zsk = key_new(LDNS_KEY_ZONE_KEY);
	/* the anchor: the KSK's DS */
	fd = mkstemp(path);
	{
		ldns_rr *ds = ldns_key_rr2ds(ksk.rr, LDNS_SHA256);

		t = ldns_rr2str(ds);
		ldns_rr_free(ds);
	}
	if (fd < 0 || write(fd, t, strlen(t)) != (ssize_t)strlen(t))
		return 1;
	close(fd);
	free(t);
	if (ep_dnssec_anchor_load(path, &a, err, sizeof(err))) {
		fprintf(stderr, "fallback_dnssec_cost: %s\n", err);
		return 1;
	}
	unlink(path);

	p = dnsmsg_reply(1, ZONE, LDNS_RR_TYPE_DNSKEY, LDNS_RCODE_NOERROR);
	set = ldns_rr_list_new();
	ldns_rr_list_push_rr(set, ldns_rr_clone(ksk.rr));
	ldns_rr_list_push_rr(set, ldns_rr_clone(zsk.rr));
	add(p, set, &ksk);
	ldns_rr_list_deep_free(set);
	dnskey = wire_of(p, &dnskey_len);
	if (ldns_wire2pkt(&kp, dnskey, dnskey_len) != LDNS_STATUS_OK ||
	    ep_dnssec_check_dnskey(a, kp, now, &keys, why, sizeof(why)) != EP_DNSSEC_SECURE) {
		fprintf(stderr, "fallback_dnssec_cost: keys: %s\n", why);
		return 1;
	}

	ldns_rr_new_frm_str(&r, "www.edge.test. 300 IN A 198.18.0.1", 300, NULL, NULL);
	set = ldns_rr_list_new();
	ldns_rr_list_push_rr(set, r);
	p = dnsmsg_reply(1, "www." ZONE, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, set, &zsk);
	signed_a = wire_of(p, &signed_len);
	p = dnsmsg_reply(1, "www." ZONE, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, set, NULL);
	unsigned_a = wire_of(p, &unsigned_len);
	ldns_rr_list_deep_free(set);

	p = NULL;
	ldns_pkt_query_new_frm_str(&p, "www." ZONE, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD);
	ldns_pkt_set_edns_udp_size(p, 1232);
	ldns_pkt2wire(&query, p, &qlen);
	ldns_pkt_free(p);
	snprintf(qi_do.qname, sizeof(qi_do.qname), "www." ZONE);
	qi_do.qtype = LDNS_RR_TYPE_A;
	qi_do.edns = qi_do.dnssec_ok = true;
	qi_plain = qi_do;
	qi_plain.dnssec_ok = false;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < repeat; i++) {
		struct ep_fallback_question q;
		uint8_t *w;
		size_t wl;

		if (ep_fallback_dnssec_query(query, qlen, &q, &w, &wl))
			return 1;
		free(w);
	}
	res[n].name = "query rewritten with DO";
	res[n++].ns = ns_since(&t0, repeat);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < repeat; i++) {
		uint8_t *out;
		size_t ol;

		if (ep_fallback_validate(a, keys.keys, signed_a, signed_len, &qi_do, now, &out, &ol, why,
					 sizeof(why)) != EP_FALLBACK_ANSWERED)
			return 1;
		free(out);
	}
	res[n].name = "signed A, client with DO";
	res[n++].ns = ns_since(&t0, repeat);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < repeat; i++) {
		uint8_t *out;
		size_t ol;

		if (ep_fallback_validate(a, keys.keys, signed_a, signed_len, &qi_plain, now, &out, &ol,
					 why, sizeof(why)) != EP_FALLBACK_ANSWERED || !out)
			return 1;
		free(out);
	}
	res[n].name = "signed A, client without DO (strip)";
	res[n++].ns = ns_since(&t0, repeat);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < repeat; i++) {
		uint8_t *out;
		size_t ol;

		if (ep_fallback_validate(a, keys.keys, unsigned_a, unsigned_len, &qi_plain, now, &out, &ol,
					 why, sizeof(why)) != EP_FALLBACK_BOGUS)
			return 1;
	}
	res[n].name = "unsigned A (bogus)";
	res[n++].ns = ns_since(&t0, repeat);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < repeat; i++) {
		struct ep_dnssec_keys k;

		if (ep_dnssec_check_dnskey(a, kp, now, &k, why, sizeof(why)) != EP_DNSSEC_SECURE)
			return 1;
		ep_dnssec_keys_free(&k);
	}
	res[n].name = "DNSKEY RRset against the anchor";
	res[n++].ns = ns_since(&t0, repeat);

	printf("%-40s %12s %14s\n", "case", "us/answer", "answers/s");
	for (int i = 0; i < n; i++)
		printf("%-40s %12.1f %14.0f\n", res[i].name, res[i].ns / 1000, 1e9 / res[i].ns);
	jf = json ? fopen(json, "w") : NULL;
	if (jf) {
		fprintf(jf, "{\"repeat\": %d, \"cases\": [", repeat);
		for (int i = 0; i < n; i++)
			fprintf(jf, "%s{\"case\": \"%s\", \"ns\": %.0f}", i ? ", " : "", res[i].name, res[i].ns);
		fprintf(jf, "]}\n");
		fclose(jf);
	}
	ldns_pkt_free(kp);
	ep_dnssec_keys_free(&keys);
	ep_dnssec_anchor_free(a);
	free(signed_a);
	free(unsigned_a);
	free(dnskey);
	free(query);
	ldns_key_list_free(ksk.kl);
	ldns_key_list_free(zsk.kl);
	ldns_rr_free(ksk.rr);
	ldns_rr_free(zsk.rr);
	return 0;
}
