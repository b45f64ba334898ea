/* DNS message checks: which replies are believed, and what they say. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ldns/ldns.h>

#include "dns_query.h"
#include "dnsmsg.h"
#include "tap.h"

static void add(ldns_pkt *p, const char *rr_text)
{
	ldns_rr *rr = NULL;

	if (ldns_rr_new_frm_str(&rr, rr_text, 300, NULL, NULL) != LDNS_STATUS_OK) {
		tap_diag("bad test record %s", rr_text);
		return;
	}
	ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
}

/* www.example.com -> c1 -> ... -> cN (N CNAMEs), cN A 192.0.2.9. */
static void add_cname_chain(ldns_pkt *p, int n)
{
	char rr[128];

	add(p, "www.example.com. 300 IN CNAME c1.example.");
	for (int i = 1; i < n; i++) {
		snprintf(rr, sizeof(rr), "c%d.example. 300 IN CNAME c%d.example.", i, i + 1);
		add(p, rr);
	}
	snprintf(rr, sizeof(rr), "c%d.example. 300 IN A 192.0.2.9", n);
	add(p, rr);
}

static uint8_t *wire(ldns_pkt *p, size_t *len)
{
	uint8_t *w = NULL;

	ldns_pkt2wire(&w, p, len);
	ldns_pkt_free(p);
	return w;
}

static enum ep_dnsq_verdict verdict(ldns_pkt *p, const char *qname, uint16_t qtype, uint16_t id)
{
	size_t len;
	uint8_t *w = wire(p, &len);
	ldns_pkt *out = NULL;
	enum ep_dnsq_verdict v = ep_dnsq_parse_reply(w, len, qname, qtype, id, &out);

	ldns_pkt_free(out);
	free(w);
	return v;
}

/* Parses and classifies a reply to (qname, qtype) with the given chain. */
static int classify(ldns_pkt *p, const char *qname, uint16_t qtype, struct ep_dnsq_chain *chain,
		    struct ep_dnsq_answer *a)
{
	size_t len;
	uint16_t id = ldns_pkt_id(p);
	uint8_t *w = wire(p, &len);
	ldns_pkt *out = NULL;
	int ret = -1;

	memset(a, 0, sizeof(*a));
	if (ep_dnsq_parse_reply(w, len, qname, qtype, id, &out) == EP_DNSQ_OK)
		ret = ep_dnsq_classify(out, qname, qtype, chain, a);
	ldns_pkt_free(out);
	free(w);
	return ret;
}

static int has_addr(const struct ep_dnsq_answer *a, const char *text)
{
	char buf[64];
	size_t i;

	for (i = 0; i < a->n_addrs; i++)
		if (inet_ntop(a->addrs[i].family, a->addrs[i].a, buf, sizeof(buf)) && !strcmp(buf, text))
			return 1;
	return 0;
}

static void test_build(void)
{
	uint8_t *w = NULL;
	size_t len = 0;
	ldns_pkt *p = NULL;

	tap_ok(ep_dnsq_build("www.example.com", LDNS_RR_TYPE_AAAA, 0xbeef, &w, &len) == 0, "query built");
	tap_ok(w && ldns_wire2pkt(&p, w, len) == LDNS_STATUS_OK, "query parses");
	if (p) {
		ldns_rr *q = ldns_rr_list_rr(ldns_pkt_question(p), 0);
		char *owner = ldns_rdf2str(ldns_rr_owner(q));

		tap_ok(ldns_pkt_id(p) == 0xbeef && ldns_pkt_rd(p) && !ldns_pkt_qr(p), "id, RD set, QR clear");
		tap_ok(ldns_rr_get_type(q) == LDNS_RR_TYPE_AAAA && !strcmp(owner, "www.example.com."),
		       "question www.example.com AAAA");
		tap_ok(ldns_pkt_edns(p) && ldns_pkt_edns_udp_size(p) == EP_DNSQ_EDNS_SIZE, "EDNS0 with 1232 bytes");
		free(owner);
		ldns_pkt_free(p);
	}
	free(w);
	tap_ok(ep_dnsq_peek_id((const uint8_t *)"\x12\x34", 2) == -1, "peek_id: short buffer");
}

static void test_validation(void)
{
	const char *n = "www.example.com";
	ldns_pkt *p;
	size_t len;
	uint8_t *w;
	ldns_pkt *out;

	tap_ok(verdict(dnsmsg_reply(7, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR), n, LDNS_RR_TYPE_A, 7) == EP_DNSQ_OK,
	       "matching reply accepted");
	tap_ok(verdict(dnsmsg_reply(8, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR), n, LDNS_RR_TYPE_A, 7) == EP_DNSQ_BAD_ID,
	       "wrong id rejected");
	tap_ok(verdict(dnsmsg_reply(7, "www.example.org", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR), n, LDNS_RR_TYPE_A, 7) ==
		       EP_DNSQ_BAD_QUESTION,
	       "wrong question name rejected");
	tap_ok(verdict(dnsmsg_reply(7, n, LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR), n, LDNS_RR_TYPE_A, 7) ==
		       EP_DNSQ_BAD_QUESTION,
	       "wrong question type rejected");
	tap_ok(verdict(dnsmsg_reply(7, "WWW.Example.COM", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR), n, LDNS_RR_TYPE_A, 7) ==
		       EP_DNSQ_OK,
	       "question name compared case-insensitively");
	p = dnsmsg_reply(7, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	ldns_rr_set_class(ldns_rr_list_rr(ldns_pkt_question(p), 0), LDNS_RR_CLASS_CH);
	tap_ok(verdict(p, n, LDNS_RR_TYPE_A, 7) == EP_DNSQ_BAD_QUESTION, "wrong question class rejected");
	p = dnsmsg_reply(7, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	ldns_pkt_set_qr(p, false);
	tap_ok(verdict(p, n, LDNS_RR_TYPE_A, 7) == EP_DNSQ_NOT_RESPONSE, "QR clear (a query) rejected");
	p = dnsmsg_reply(7, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	ldns_pkt_set_opcode(p, LDNS_PACKET_NOTIFY);
	tap_ok(verdict(p, n, LDNS_RR_TYPE_A, 7) == EP_DNSQ_NOT_RESPONSE, "opcode NOTIFY rejected");
	p = dnsmsg_reply(7, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	{
		ldns_rr *q2 = ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(p), 0));

		ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, q2);
	}
	tap_ok(verdict(p, n, LDNS_RR_TYPE_A, 7) == EP_DNSQ_BAD_QUESTION, "two questions rejected");

	p = dnsmsg_reply(7, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, "www.example.com. 300 IN A 192.0.2.1");
	w = wire(p, &len);
	out = NULL;
	tap_ok(ep_dnsq_parse_reply(w, len - 3, n, LDNS_RR_TYPE_A, 7, &out) == EP_DNSQ_MALFORMED && !out,
	       "truncated message rejected as malformed");
	tap_ok(ep_dnsq_parse_reply(w, 11, n, LDNS_RR_TYPE_A, 7, &out) == EP_DNSQ_MALFORMED,
	       "shorter than a header: malformed");
	free(w);
}

static void test_classify(void)
{
	const char *n = "www.example.com";
	struct ep_dnsq_chain ch;
	struct ep_dnsq_answer a;
	ldns_pkt *p;

	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, "www.example.com. 300 IN A 192.0.2.1");
	add(p, "www.example.com. 300 IN A 192.0.2.2");
	add(p, "other.example.com. 300 IN A 192.0.2.99");
	add(p, "www.example.com. 300 IN AAAA 2001:db8::1");
	tap_ok(classify(p, n, LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_ADDRS && a.n_addrs == 2 &&
		       has_addr(&a, "192.0.2.1") && has_addr(&a, "192.0.2.2"),
	       "A records of the name taken; other owners and types ignored");
	ep_dnsq_answer_free(&a);

	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR);
	add(p, "www.example.com. 300 IN CNAME a.cdn.example.");
	add(p, "a.cdn.example. 300 IN CNAME B.CDN.example.");
	add(p, "b.cdn.example. 300 IN AAAA 2001:db8::5");
	tap_ok(classify(p, n, LDNS_RR_TYPE_AAAA, &ch, &a) == 0 && a.outcome == EP_DNSQ_ADDRS && a.n_addrs == 1 &&
		       has_addr(&a, "2001:db8::5") && ch.hops == 2,
	       "CNAME chain of 2 followed inside the answer (case-insensitive)");
	ep_dnsq_answer_free(&a);

	/* Records in a shuffled order still chain. */
	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, "c.example. 300 IN A 192.0.2.7");
	add(p, "b.example. 300 IN CNAME c.example.");
	add(p, "www.example.com. 300 IN CNAME b.example.");
	tap_ok(classify(p, n, LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_ADDRS && has_addr(&a, "192.0.2.7"),
	       "chain in any record order");
	ep_dnsq_answer_free(&a);

	/* The answer stops at a CNAME: ask for the target, chain kept. */
	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, "www.example.com. 300 IN CNAME edge.cdn.example.");
	tap_ok(classify(p, n, LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_FOLLOW &&
		       !strcmp(a.next, "edge.cdn.example"),
	       "answer ending at a CNAME: follow the target");
	ep_dnsq_answer_free(&a);
	/* The follow-up's answer goes back to the original name: a loop. */
	p = dnsmsg_reply(2, "edge.cdn.example", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, "edge.cdn.example. 300 IN CNAME www.example.com.");
	tap_ok(classify(p, "edge.cdn.example", LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_CHAIN_LOOP,
	       "a loop across two queries is detected");
	ep_dnsq_answer_free(&a);

	/* Follow-up answer with the address. */
	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, "www.example.com. 300 IN CNAME edge.cdn.example.");
	classify(p, n, LDNS_RR_TYPE_A, &ch, &a);
	ep_dnsq_answer_free(&a);
	p = dnsmsg_reply(2, "edge.cdn.example", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, "edge.cdn.example. 300 IN A 192.0.2.8");
	tap_ok(classify(p, "edge.cdn.example", LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_ADDRS &&
		       has_addr(&a, "192.0.2.8"),
	       "the follow-up query's answer resolves the chain");
	ep_dnsq_answer_free(&a);

	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add(p, "www.example.com. 300 IN CNAME a.example.");
	add(p, "a.example. 300 IN CNAME www.example.com.");
	tap_ok(classify(p, n, LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_CHAIN_LOOP,
	       "CNAME loop inside one answer detected");
	ep_dnsq_answer_free(&a);

	/* 9 hops: one more than the bound. */
	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add_cname_chain(p, 9);
	tap_ok(classify(p, n, LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_CHAIN_LOOP,
	       "a chain of 9 CNAMEs exceeds the bound of %d", EP_DNSQ_MAX_CHAIN);
	ep_dnsq_answer_free(&a);
	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	add_cname_chain(p, 8);
	tap_ok(classify(p, n, LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_ADDRS,
	       "a chain of exactly 8 CNAMEs is followed");
	ep_dnsq_answer_free(&a);

	/* rcodes */
	ep_dnsq_chain_init(&ch, n);
	tap_ok(classify(dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR), n, LDNS_RR_TYPE_A, &ch, &a) == 0 &&
		       a.outcome == EP_DNSQ_NODATA,
	       "NOERROR without records: nodata");
	ep_dnsq_chain_init(&ch, n);
	tap_ok(classify(dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN), n, LDNS_RR_TYPE_A, &ch, &a) == 0 &&
		       a.outcome == EP_DNSQ_NXDOMAIN,
	       "NXDOMAIN");
	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN);
	add(p, "www.example.com. 300 IN CNAME gone.example.");
	tap_ok(classify(p, n, LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_NXDOMAIN,
	       "NXDOMAIN at the end of a chain: nxdomain");
	ep_dnsq_chain_init(&ch, n);
	tap_ok(classify(dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_SERVFAIL), n, LDNS_RR_TYPE_A, &ch, &a) == 0 &&
		       a.outcome == EP_DNSQ_SERVFAIL,
	       "SERVFAIL");
	ep_dnsq_chain_init(&ch, n);
	tap_ok(classify(dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_REFUSED), n, LDNS_RR_TYPE_A, &ch, &a) == 0 &&
		       a.outcome == EP_DNSQ_REFUSED,
	       "REFUSED");
	ep_dnsq_chain_init(&ch, n);
	tap_ok(classify(dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_FORMERR), n, LDNS_RR_TYPE_A, &ch, &a) == 0 &&
		       a.outcome == EP_DNSQ_SERVFAIL && a.rcode == LDNS_RCODE_FORMERR,
	       "FORMERR counts as servfail, rcode kept");
	ep_dnsq_chain_init(&ch, n);
	p = dnsmsg_reply(1, n, LDNS_RR_TYPE_A, LDNS_RCODE_SERVFAIL);
	add(p, "www.example.com. 300 IN A 192.0.2.66");
	tap_ok(classify(p, n, LDNS_RR_TYPE_A, &ch, &a) == 0 && a.outcome == EP_DNSQ_SERVFAIL && a.n_addrs == 0,
	       "addresses in a SERVFAIL reply are not believed");
}

int main(void)
{
	test_build();
	test_validation();
	test_classify();
	return tap_done();
}
