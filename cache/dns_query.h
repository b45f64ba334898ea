/*
 * DNS messages for the preload builder: queries built and replies parsed with
 * ldns, and the checks a reply must pass before it is believed (RFC 5452: id
 * and question must match the query; the source is checked by the caller,
 * which owns the socket). Nothing here touches the network, so the fuzzer and
 * the unit tests drive it directly.
 */
#ifndef EP_DNS_QUERY_H
#define EP_DNS_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ldns/ldns.h>

#include "dns_name.h"

/* EDNS0 buffer size advertised in queries: the DNS flag day 2020 value, small
 * enough to avoid IP fragmentation on any path. */
#define EP_DNSQ_EDNS_SIZE 1232
/* CNAME hops a name may take in total, over all the queries its chain needs. */
#define EP_DNSQ_MAX_CHAIN 8

struct ep_dns_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t a[16];
};

/*
 * Builds a recursive query (RD set, EDNS0) for qname/qtype/IN with the given
 * id. On success *wire is malloc()ed. Returns 0 or -EINVAL/-ENOMEM.
 */
int ep_dnsq_build(const char *qname, uint16_t qtype, uint16_t id, uint8_t **wire, size_t *len);
/* The same with EP_DNSQ_F_* flags: DO asks for DNSSEC records (RRSIGs). */
#define EP_DNSQ_F_DO (1u << 0)
int ep_dnsq_build_flags(const char *qname, uint16_t qtype, uint16_t id, unsigned flags,
			uint8_t **wire, size_t *len);

enum ep_dnsq_verdict {
	EP_DNSQ_OK = 0,
	EP_DNSQ_MALFORMED,     /* ldns could not parse it */
	EP_DNSQ_NOT_RESPONSE,  /* QR clear or not a standard query */
	EP_DNSQ_BAD_ID,        /* id differs from the query's */
	EP_DNSQ_BAD_QUESTION,  /* question count/name/type/class differs */
};

/* Just the id, for a cheap first filter before a full parse; -1 if too short. */
int ep_dnsq_peek_id(const uint8_t *buf, size_t len);

/*
 * Parses BUF as a reply to the query (qname, qtype, IN, id). On EP_DNSQ_OK
 * *out holds the packet (ldns_pkt_free it); otherwise *out is NULL.
 */
enum ep_dnsq_verdict ep_dnsq_parse_reply(const uint8_t *buf, size_t len, const char *qname,
					 uint16_t qtype, uint16_t id, ldns_pkt **out);

enum ep_dnsq_outcome {
	EP_DNSQ_ADDRS = 0,  /* addresses of qtype found (possibly after CNAMEs) */
	EP_DNSQ_NODATA,     /* NOERROR, the name exists, no record of qtype */
	EP_DNSQ_NXDOMAIN,
	EP_DNSQ_SERVFAIL,   /* SERVFAIL and every rcode not listed here */
	EP_DNSQ_REFUSED,
	EP_DNSQ_FOLLOW,     /* the answer ends at a CNAME: query ->next */
	EP_DNSQ_CHAIN_LOOP, /* CNAME loop or chain longer than EP_DNSQ_MAX_CHAIN */
};

const char *ep_dnsq_outcome_str(enum ep_dnsq_outcome o);

/* The CNAME chain walked so far for one original name and type. */
struct ep_dnsq_chain {
	unsigned hops;
	char names[EP_DNSQ_MAX_CHAIN + 1][EP_DNS_NAME_BUF];
};

struct ep_dnsq_answer {
	enum ep_dnsq_outcome outcome;
	struct ep_dns_addr *addrs; /* malloc()ed, n_addrs of them (EP_DNSQ_ADDRS only) */
	size_t n_addrs;
	char next[EP_DNS_NAME_BUF]; /* EP_DNSQ_FOLLOW: the name to query next */
	int rcode;		    /* the reply's rcode as sent */
};

/*
 * Classifies a validated reply to a query for QNAME/QTYPE (A or AAAA). The
 * chain in the answer section is followed from QNAME; chain records the names
 * visited (initialise it with ep_dnsq_chain_init for the original name and
 * pass the same one to follow-up queries). Returns 0 or -ENOMEM; free the
 * answer with ep_dnsq_answer_free.
 */
void ep_dnsq_chain_init(struct ep_dnsq_chain *c, const char *name);
int ep_dnsq_classify(const ldns_pkt *p, const char *qname, uint16_t qtype,
		     struct ep_dnsq_chain *chain, struct ep_dnsq_answer *a);
void ep_dnsq_answer_free(struct ep_dnsq_answer *a);

#endif
