/*
 * libFuzzer target: arbitrary bytes as a query to the cache's policy
 * responder (the upstream dnsmasq forwards to during a failover). Anything
 * on the node can send it datagrams, so beyond "does not crash" it checks
 * the promises the responder makes:
 *   - a response (QR set) or a runt is never answered: no reflection loops;
 *   - every answer is a well-formed message ldns parses, with the query's id
 *     and QR set, echoing the one question it was asked;
 *   - NODATA only for names in the set, and it carries an SOA whose minimum
 *     is the configured TTL (the negative-caching time, RFC 2308);
 *   - nothing outside the set ever gets NOERROR (or NXDOMAIN, which would be
 *     a cached lie about a name that may exist).
 *
 * Seeds in tests/fuzz/corpus/dns_policy/ are queries made with ldns (A and
 * AAAA for names in and out of the set, EDNS, a response, a runt, two
 * questions); see tests/fuzz/make_policy_seeds.py.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns_name.h"
#include "policy_responder.h"

#define TTL 300

static struct ep_nameset names;
static int ready;

static void setup(void)
{
	static const char *const in_set[] = { "api.pay.example", "a.b.c.edge.test", "x", "edge.test" };

	ep_nameset_init(&names);
	for (size_t i = 0; i < sizeof(in_set) / sizeof(in_set[0]); i++)
		if (ep_nameset_add(&names, in_set[i]) < 0)
			abort();
	ready = 1;
}

/* The set holds normalised names: lower case, no trailing dot. */
static void lower(char *s)
{
	size_t n = strlen(s);

	if (n > 1 && s[n - 1] == '.')
		s[n - 1] = '\0';
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *out = NULL;
	size_t outlen = 0;
	enum ep_policy_kind k;
	ldns_pkt *r = NULL;

	if (!ready)
		setup();
	k = ep_policy_answer(data, size, &names, TTL, &out, &outlen);

	if (size < 12 || (data[2] & 0x80)) {
		if (k != EP_POLICY_DROPPED || out)
			abort(); /* answered a response or a runt */
		return 0;
	}
	if (k == EP_POLICY_DROPPED) {
		/* Only allowed when ldns could not build the answer (memory). */
		if (out)
			abort();
		return 0;
	}
	if (!out || outlen < 12)
		abort();
	/* Same id, QR set. */
	if (out[0] != data[0] || out[1] != data[1] || !(out[2] & 0x80))
		abort();
	if (ldns_wire2pkt(&r, out, outlen) != LDNS_STATUS_OK)
		abort();
	switch (k) {
	case EP_POLICY_FORMERR:
		if (ldns_pkt_get_rcode(r) != LDNS_RCODE_FORMERR)
			abort();
		break;
	case EP_POLICY_SERVFAIL:
	case EP_POLICY_NODATA: {
		ldns_rr_list *qs = ldns_pkt_question(r);
		ldns_rr *q;
		char *name;

		if (ldns_pkt_qdcount(r) != 1 || !qs || !(q = ldns_rr_list_rr(qs, 0)))
			abort();
		if (ldns_pkt_ancount(r) != 0)
			abort(); /* the responder never makes up addresses */
		name = ldns_rdf2str(ldns_rr_owner(q));
		if (!name)
			abort();
		lower(name);
		if (k == EP_POLICY_NODATA) {
			ldns_rr_list *auth = ldns_pkt_authority(r);
			ldns_rr *soa;

			if (ldns_pkt_get_rcode(r) != LDNS_RCODE_NOERROR || !ep_nameset_has(&names, name))
				abort();
			if (!auth || ldns_rr_list_rr_count(auth) != 1)
				abort();
			soa = ldns_rr_list_rr(auth, 0);
			if (ldns_rr_get_type(soa) != LDNS_RR_TYPE_SOA || ldns_rr_rd_count(soa) != 7 ||
			    ldns_rdf2native_int32(ldns_rr_rdf(soa, 6)) != TTL)
				abort();
		} else if (ldns_pkt_get_rcode(r) != LDNS_RCODE_SERVFAIL) {
			abort();
		}
		free(name);
		break;
	}
	default:
		abort();
	}
	ldns_pkt_free(r);
	free(out);
	return 0;
}
