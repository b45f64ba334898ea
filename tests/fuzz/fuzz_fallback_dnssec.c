/*
 * libFuzzer target: the DNSSEC side of the cache's fallback
 * (cache/fallback.c with a trust anchor): arbitrary bytes as a fallback
 * resolver's reply for a name of the anchored zone (ep_fallback_validate),
 * and as a client's query to rewrite with the DO bit
 * (ep_fallback_dnssec_query). Beyond "does not crash or read out of bounds"
 * it checks what the responder relies on: a query it rewrites keeps its id
 * and question and asks for DNSSEC records; an answer it relays rewritten
 * parses, and holds no DNSSEC records and no OPT the client did not ask for.
 *
 * The first byte picks the question and the client's EDNS/DO bits; the rest
 * is the reply (and, on its own, the query). The zone is signed with a fixed
 * test key at a fixed time, so the seeds (written by this binary when
 * EP_FUZZ_WRITE_SEEDS names a directory) validate on every run.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dnssec_check.h"
#include "fallback.h"

#define ZONE "edge.test."
#define NOW 1800000000 /* 2027-01-15: the signatures' time, fixed */

/* A test key, nothing else signs with it (ldns-keygen -a ECDSAP256SHA256 -k edge.test). */
static const char key_text[] = "Private-key-format: v1.2\n"
			       "Algorithm: 13 (ECDSAP256SHA256)\n"
			       "PrivateKey: HTFuVItc+Hznp7uiGeYhRFoERsgNFVxDjlcpXv3coSk=\n";

static struct ep_dnssec_anchor *anchor;
static ldns_rr_list *keys;
static ldns_key_list *signer;

static const struct {
	const char *name;
	ldns_rr_type type;
} questions[4] = {
	{ "www." ZONE, LDNS_RR_TYPE_A },
	{ "alias." ZONE, LDNS_RR_TYPE_AAAA },
	{ ZONE, LDNS_RR_TYPE_TXT },
	{ "a.b.c." ZONE, LDNS_RR_TYPE_RRSIG },
};

static ldns_rr *rr(const char *text)
{
	ldns_rr *r = NULL;

	if (ldns_rr_new_frm_str(&r, text, 300, NULL, NULL) != LDNS_STATUS_OK)
		abort();
	return r;
}

static void setup(void)
{
	char path[] = "/tmp/ep-fuzz-anchor.XXXXXX", err[256], *t;
	FILE *f = fmemopen((void *)key_text, sizeof(key_text) - 1, "r");
	ldns_key *k = NULL;
	int fd;

	if (!f || ldns_key_new_frm_fp(&k, f) != LDNS_STATUS_OK)
		abort();
	fclose(f);
	ldns_key_set_pubkey_owner(k, ldns_dname_new_frm_str(ZONE));
	ldns_key_set_flags(k, LDNS_KEY_ZONE_KEY | LDNS_KEY_SEP_KEY);
	keys = ldns_rr_list_new();
	ldns_rr_list_push_rr(keys, ldns_key2rr(k));
	ldns_key_set_keytag(k, ldns_calc_keytag(ldns_rr_list_rr(keys, 0)));
	ldns_key_set_inception(k, NOW - 3600);
	ldns_key_set_expiration(k, NOW + 365 * 86400);
	signer = ldns_key_list_new();
	ldns_key_list_push_key(signer, k);
	/* the anchor: the key itself */
	fd = mkstemp(path);
	t = ldns_rr2str(ldns_rr_list_rr(keys, 0));
	if (fd < 0 || !t || write(fd, t, strlen(t)) != (ssize_t)strlen(t))
		abort();
	close(fd);
	free(t);
	if (ep_dnssec_anchor_load(path, &anchor, err, sizeof(err)))
		abort();
	unlink(path);
}

/* Adds the records of TEXT (one RRset) and, when SIGN, their RRSIG. */
static void add(ldns_pkt *p, const char *const *text, int n, bool sign)
{
	ldns_rr_list *set = ldns_rr_list_new(), *sigs = NULL;

	for (int i = 0; i < n; i++)
		ldns_rr_list_push_rr(set, rr(text[i]));
	if (sign)
		sigs = ldns_sign_public(set, signer);
	for (size_t i = 0; i < ldns_rr_list_rr_count(set); i++)
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, ldns_rr_clone(ldns_rr_list_rr(set, i)));
	for (size_t i = 0; sigs && i < ldns_rr_list_rr_count(sigs); i++)
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, ldns_rr_clone(ldns_rr_list_rr(sigs, i)));
	ldns_rr_list_deep_free(set);
	ldns_rr_list_deep_free(sigs);
}

static void write_seed(const char *dir, const char *name, uint8_t sel, ldns_pkt *p)
{
	char path[512];
	uint8_t *w = NULL;
	size_t n = 0;
	FILE *f;

	ldns_pkt_set_edns_udp_size(p, 1232);
	ldns_pkt_set_edns_do(p, true);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (ldns_pkt2wire(&w, p, &n) != LDNS_STATUS_OK || !(f = fopen(path, "w")))
		abort();
	fputc(sel, f);
	fwrite(w, 1, n, f);
	fclose(f);
	free(w);
	ldns_pkt_free(p);
}

/* ldns has no one-call question constructor taking a type value. */
static ldns_rr *question_rr(const char *name, ldns_rr_type t)
{
	ldns_rr *q = ldns_rr_new();

	ldns_rr_set_owner(q, ldns_dname_new_frm_str(name));
	ldns_rr_set_type(q, t);
	ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
	ldns_rr_set_question(q, true);
	return q;
}

static ldns_pkt *reply(int qi, ldns_pkt_rcode rc)
{
	ldns_pkt *p = ldns_pkt_new();

	ldns_pkt_set_id(p, 0x1234);
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_rd(p, true);
	ldns_pkt_set_ra(p, true);
	ldns_pkt_set_rcode(p, (uint8_t)rc);
	ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION,
			 question_rr(questions[qi].name, questions[qi].type));
	return p;
}

static void write_seeds(const char *dir)
{
	static const char *www[] = { "www.edge.test. 300 IN A 198.18.0.1" };
	static const char *alias[] = { "alias.edge.test. 300 IN CNAME www.edge.test." };
	static const char *www6[] = { "www.edge.test. 300 IN AAAA 2001:db8::1" };
	static const char *txt[] = { "edge.test. 300 IN TXT \"signed\"" };
	ldns_pkt *p;

	p = reply(0, LDNS_RCODE_NOERROR);
	add(p, www, 1, true);
	write_seed(dir, "signed-a", 0x00, p);
	p = reply(0, LDNS_RCODE_NOERROR);
	add(p, www, 1, false);
	write_seed(dir, "unsigned-a", 0x00, p);
	p = reply(1, LDNS_RCODE_NOERROR);
	add(p, alias, 1, true);
	add(p, www6, 1, true);
	write_seed(dir, "signed-cname-no-edns", 0x01 | 0x08, p);
	p = reply(2, LDNS_RCODE_NOERROR);
	add(p, txt, 1, true);
	ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY,
			 rr("edge.test. 300 IN NSEC www.edge.test. TXT RRSIG NSEC"));
	write_seed(dir, "signed-txt-nsec-do", 0x02 | 0x04, p);
	p = reply(0, LDNS_RCODE_NXDOMAIN);
	ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY,
			 rr("edge.test. 300 IN NSEC zzz.edge.test. A RRSIG NSEC"));
	write_seed(dir, "nxdomain-nsec", 0x00, p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("EP_FUZZ_WRITE_SEEDS");

	setup();
	if (dir) {
		write_seeds(dir);
		exit(0);
	}
	return 0;
}

static bool has_dnssec_records(const ldns_pkt *p, ldns_rr_type asked)
{
	const ldns_rr_list *secs[3] = { ldns_pkt_answer(p), ldns_pkt_authority(p),
					ldns_pkt_additional(p) };

	for (int s = 0; s < 3; s++)
		for (size_t i = 0; i < ldns_rr_list_rr_count(secs[s]); i++) {
			ldns_rr_type t = ldns_rr_get_type(ldns_rr_list_rr(secs[s], i));

			if (t != asked && (t == LDNS_RR_TYPE_RRSIG || t == LDNS_RR_TYPE_NSEC ||
					   t == LDNS_RR_TYPE_NSEC3))
				return true;
		}
	return false;
}

/* The bytes as a client's query: rewritten with DO, id and question kept. */
static void fuzz_query(const uint8_t *data, size_t size)
{
	struct ep_fallback_question qi;
	uint8_t *wire = NULL;
	size_t wlen = 0;
	ldns_pkt *in = NULL, *out = NULL;

	if (ep_fallback_dnssec_query(data, size, &qi, &wire, &wlen))
		return;
	if (ldns_wire2pkt(&in, data, size) != LDNS_STATUS_OK || ldns_wire2pkt(&out, wire, wlen) != LDNS_STATUS_OK)
		abort();
	if (ldns_pkt_id(in) != ldns_pkt_id(out) || !ldns_pkt_edns_do(out) ||
	    ldns_pkt_edns_udp_size(out) < 1232 || ldns_pkt_qdcount(out) != 1 ||
	    ldns_rr_compare(ldns_rr_list_rr(ldns_pkt_question(in), 0),
			    ldns_rr_list_rr(ldns_pkt_question(out), 0)) != 0 ||
	    qi.qtype != ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(in), 0)) ||
	    qi.dnssec_ok != ldns_pkt_edns_do(in))
		abort();
	ldns_pkt_free(in);
	ldns_pkt_free(out);
	free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ep_fallback_question qi = {};
	enum ep_fallback_result res;
	uint8_t *out = NULL;
	size_t outlen = 0;
	char why[256];
	int k;

	if (size < 1)
		return 0;
	k = data[0] & 3;
	snprintf(qi.qname, sizeof(qi.qname), "%s", questions[k].name);
	qi.qtype = (uint16_t)questions[k].type;
	qi.dnssec_ok = data[0] & 0x04;
	qi.edns = qi.dnssec_ok || !(data[0] & 0x08);
	res = ep_fallback_validate(anchor, keys, data + 1, size - 1, &qi, NOW, &out, &outlen, why,
				   sizeof(why));
	if (getenv("EP_FUZZ_VERBOSE")) /* to see what a seed reaches */
		fprintf(stderr, "%s %s: %s\n", questions[k].name,
			res == EP_FALLBACK_ANSWERED ? "answered" : res == EP_FALLBACK_BOGUS ? "bogus" : "failed",
			why);
	if (res != EP_FALLBACK_ANSWERED && out)
		abort(); /* nothing to relay but a rewrite */
	if (out) {
		ldns_pkt *p = NULL;

		if (qi.dnssec_ok)
			abort(); /* a client with DO gets the reply as it came */
		if (ldns_wire2pkt(&p, out, outlen) != LDNS_STATUS_OK)
			abort();
		if (has_dnssec_records(p, questions[k].type) || ldns_pkt_edns_do(p) ||
		    (!qi.edns && ldns_pkt_edns(p)))
			abort();
		ldns_pkt_free(p);
		free(out);
	} else if (res == EP_FALLBACK_ANSWERED && !qi.dnssec_ok) {
		abort(); /* a client without DO always gets the rewritten reply */
	}
	fuzz_query(data + 1, size - 1);
	return 0;
}
