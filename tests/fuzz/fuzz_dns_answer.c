/*
 * libFuzzer target: arbitrary bytes as the reply to a known query, through
 * everything the preload builder does with a datagram from a resolver: the
 * RFC 5452 checks (id, question), the ldns parse, the answer walk with its
 * CNAME chain bound and loop detection, and a follow-up on the same chain.
 *
 * Input: byte 0 picks the query from the table below (all with id 0x1234),
 * the rest is the reply. Seeds in tests/fuzz/corpus/dns_answer/ are real nsd
 * replies from the lab zone (dns_zone_generate ... edge.test) to these
 * queries, captured over UDP (and over TCP for n7, whose answer is truncated
 * over UDP), each prefixed with its table index.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns_query.h"
#include "hosts_file.h"

static const struct {
	const char *name;
	uint16_t type;
} queries[] = {
	{ "n1.edge.test", LDNS_RR_TYPE_A },	      /* A */
	{ "n6.edge.test", LDNS_RR_TYPE_AAAA },	      /* A + AAAA, ask AAAA */
	{ "n13.edge.test", LDNS_RR_TYPE_A },	      /* CNAME chain of 2 */
	{ "n14.edge.test", LDNS_RR_TYPE_A },	      /* chain ending without A */
	{ "n17.edge.test", LDNS_RR_TYPE_A },	      /* CNAME to a missing name */
	{ "n16.edge.test", LDNS_RR_TYPE_A },	      /* NODATA */
	{ "n7.edge.test", LDNS_RR_TYPE_A },	      /* 100 A records */
	{ "nx1.nowhere.edge.test", LDNS_RR_TYPE_A }, /* NXDOMAIN */
	{ "n18.edge.test", LDNS_RR_TYPE_AAAA },      /* chain into another zone */
	{ "n15.edge.test", LDNS_RR_TYPE_A },	      /* several A */
};

#define QID 0x1234

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *qname;
	uint16_t qtype;
	struct ep_dnsq_chain chain;
	struct ep_dnsq_answer a;
	ldns_pkt *p = NULL;
	char buf[64];
	size_t i;

	if (size < 1)
		return 0;
	qname = queries[data[0] % (sizeof(queries) / sizeof(queries[0]))].name;
	qtype = queries[data[0] % (sizeof(queries) / sizeof(queries[0]))].type;
	data++;
	size--;

	ep_dnsq_peek_id(data, size);
	if (ep_dnsq_parse_reply(data, size, qname, qtype, QID, &p) != EP_DNSQ_OK)
		return 0;
	ep_dnsq_chain_init(&chain, qname);
	if (ep_dnsq_classify(p, qname, qtype, &chain, &a) == 0) {
		for (i = 0; i < a.n_addrs; i++)
			ep_dns_addr_str(&a.addrs[i], buf, sizeof(buf));
		a.n_addrs = ep_dns_addr_sort_unique(a.addrs, a.n_addrs);
		/* As if the same bytes answered the follow-up for the CNAME target:
		 * the chain carries over, so loops across queries are exercised. */
		if (a.outcome == EP_DNSQ_FOLLOW) {
			char next[EP_DNS_NAME_BUF];
			struct ep_dnsq_answer b;

			memcpy(next, a.next, sizeof(next));
			if (ep_dnsq_classify(p, next, qtype, &chain, &b) == 0)
				ep_dnsq_answer_free(&b);
		}
		ep_dnsq_answer_free(&a);
	}
	ldns_pkt_free(p);
	return 0;
}
