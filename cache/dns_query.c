#include "dns_query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int ep_dnsq_build_flags(const char *qname, uint16_t qtype, uint16_t id, unsigned flags,
			uint8_t **wire, size_t *len)
{
	ldns_rdf *name = ldns_dname_new_frm_str(qname);
	ldns_pkt *p;
	ldns_status st;

	*wire = NULL;
	*len = 0;
	if (!name)
		return -EINVAL;
	p = ldns_pkt_query_new(name, (ldns_rr_type)qtype, LDNS_RR_CLASS_IN, LDNS_RD);
	if (!p)
		return -ENOMEM; /* ldns_pkt_query_new frees name on failure */
	ldns_pkt_set_id(p, id);
	/* EDNS0 so a name with a dozen addresses still fits in one datagram. */
	ldns_pkt_set_edns_udp_size(p, EP_DNSQ_EDNS_SIZE);
	if (flags & EP_DNSQ_F_DO)
		ldns_pkt_set_edns_do(p, true);
	st = ldns_pkt2wire(wire, p, len);
	ldns_pkt_free(p);
	if (st != LDNS_STATUS_OK) {
		free(*wire);
		*wire = NULL;
		return st == LDNS_STATUS_MEM_ERR ? -ENOMEM : -EINVAL;
	}
	return 0;
}

int ep_dnsq_build(const char *qname, uint16_t qtype, uint16_t id, uint8_t **wire, size_t *len)
{
	return ep_dnsq_build_flags(qname, qtype, id, 0, wire, len);
}

const char *ep_dnsq_outcome_str(enum ep_dnsq_outcome o)
{
	switch (o) {
	case EP_DNSQ_ADDRS: return "addresses";
	case EP_DNSQ_NODATA: return "nodata";
	case EP_DNSQ_NXDOMAIN: return "nxdomain";
	case EP_DNSQ_SERVFAIL: return "servfail";
	case EP_DNSQ_REFUSED: return "refused";
	case EP_DNSQ_FOLLOW: return "follow";
	case EP_DNSQ_CHAIN_LOOP: return "cname-chain";
	}
	return "?";
}

int ep_dnsq_peek_id(const uint8_t *buf, size_t len)
{
	if (len < 12) /* a DNS header is 12 bytes */
		return -1;
	return (buf[0] << 8) | buf[1];
}

enum ep_dnsq_verdict ep_dnsq_parse_reply(const uint8_t *buf, size_t len, const char *qname,
					 uint16_t qtype, uint16_t id, ldns_pkt **out)
{
	enum ep_dnsq_verdict v = EP_DNSQ_OK;
	ldns_pkt *p = NULL;
	ldns_rdf *want = NULL;
	ldns_rr_list *q;
	ldns_rr *rr;
	int pid = ep_dnsq_peek_id(buf, len);

	*out = NULL;
	if (pid < 0)
		return EP_DNSQ_MALFORMED;
	/* Check the id before parsing: spoofed floods then cost almost nothing. */
	if (pid != id)
		return EP_DNSQ_BAD_ID;
	if (ldns_wire2pkt(&p, buf, len) != LDNS_STATUS_OK || !p)
		return EP_DNSQ_MALFORMED;
	if (!ldns_pkt_qr(p) || ldns_pkt_get_opcode(p) != LDNS_PACKET_QUERY) {
		v = EP_DNSQ_NOT_RESPONSE;
		goto out;
	}
	q = ldns_pkt_question(p);
	if (!q || ldns_rr_list_rr_count(q) != 1) {
		v = EP_DNSQ_BAD_QUESTION;
		goto out;
	}
	rr = ldns_rr_list_rr(q, 0);
	want = ldns_dname_new_frm_str(qname);
	if (!want || ldns_rr_get_type(rr) != qtype || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN ||
	    !ldns_rr_owner(rr) || ldns_dname_compare(ldns_rr_owner(rr), want) != 0) {
		v = EP_DNSQ_BAD_QUESTION;
		goto out;
	}
out:
	ldns_rdf_deep_free(want);
	if (v == EP_DNSQ_OK)
		*out = p;
	else
		ldns_pkt_free(p);
	return v;
}

void ep_dnsq_chain_init(struct ep_dnsq_chain *c, const char *name)
{
	c->hops = 0;
	snprintf(c->names[0], sizeof(c->names[0]), "%s", name);
}

void ep_dnsq_answer_free(struct ep_dnsq_answer *a)
{
	free(a->addrs);
	a->addrs = NULL;
	a->n_addrs = 0;
}

static bool chain_seen(const struct ep_dnsq_chain *c, const char *name)
{
	unsigned i;

	for (i = 0; i <= c->hops; i++)
		if (!strcmp(c->names[i], name))
			return true;
	return false;
}

/* Appends the CNAME target to the chain; false on a loop, an overlong chain or
 * a target that is not a name we could query. */
static bool chain_push(struct ep_dnsq_chain *c, const ldns_rdf *target)
{
	char *s, norm[EP_DNS_NAME_BUF];
	bool ok;

	if (c->hops >= EP_DNSQ_MAX_CHAIN)
		return false;
	s = ldns_rdf2str(target);
	if (!s)
		return false;
	ok = ep_dns_name_normalize(s, strlen(s), norm, NULL) == 0 && !chain_seen(c, norm);
	free(s);
	if (!ok)
		return false;
	c->hops++;
	memcpy(c->names[c->hops], norm, sizeof(norm));
	return true;
}

static int add_addr(struct ep_dnsq_answer *a, size_t *cap, int family, const uint8_t *data)
{
	struct ep_dns_addr *x;

	if (a->n_addrs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		struct ep_dns_addr *na = realloc(a->addrs, ncap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		a->addrs = na;
		*cap = ncap;
	}
	x = &a->addrs[a->n_addrs++];
	memset(x, 0, sizeof(*x));
	x->family = (uint8_t)family;
	memcpy(x->a, data, family == AF_INET ? 4 : 16);
	return 0;
}

int ep_dnsq_classify(const ldns_pkt *p, const char *qname, uint16_t qtype,
		     struct ep_dnsq_chain *chain, struct ep_dnsq_answer *a)
{
	ldns_rr_list *ans = ldns_pkt_answer(p);
	size_t n = ans ? ldns_rr_list_rr_count(ans) : 0, i, cap = 0, steps;
	ldns_rdf *start = ldns_dname_new_frm_str(qname);
	const ldns_rdf *cur = start;
	bool followed = false;

	memset(a, 0, sizeof(*a));
	a->rcode = ldns_pkt_get_rcode(p);
	if (!start)
		return -ENOMEM;
	/* Records in an error reply are not an answer. */
	if (a->rcode != LDNS_RCODE_NOERROR)
		goto rcode;

	/* Walk the chain inside this answer: records of qtype owned by the current
	 * name win; otherwise its CNAME moves us on. Each step consumes a hop, so
	 * a crafted answer cannot make this loop longer than the chain bound. */
	for (steps = 0; steps <= EP_DNSQ_MAX_CHAIN; steps++) {
		const ldns_rdf *cname = NULL;

		for (i = 0; i < n; i++) {
			ldns_rr *rr = ldns_rr_list_rr(ans, i);
			ldns_rdf *rd;
			size_t want;

			if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !ldns_rr_owner(rr) ||
			    ldns_dname_compare(ldns_rr_owner(rr), cur) != 0)
				continue;
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME) {
				if (!cname && ldns_rr_rd_count(rr) == 1)
					cname = ldns_rr_rdf(rr, 0);
				continue;
			}
			if (ldns_rr_get_type(rr) != qtype || ldns_rr_rd_count(rr) != 1)
				continue;
			rd = ldns_rr_rdf(rr, 0);
			want = qtype == LDNS_RR_TYPE_A ? 4 : 16;
			if (!rd || ldns_rdf_size(rd) != want)
				continue;
			if (add_addr(a, &cap, want == 4 ? AF_INET : AF_INET6, ldns_rdf_data(rd))) {
				ldns_rdf_deep_free(start);
				ep_dnsq_answer_free(a);
				return -ENOMEM;
			}
		}
		if (a->n_addrs) {
			a->outcome = EP_DNSQ_ADDRS;
			goto out;
		}
		if (!cname || ldns_rdf_get_type(cname) != LDNS_RDF_TYPE_DNAME)
			break;
		if (!chain_push(chain, cname)) {
			a->outcome = EP_DNSQ_CHAIN_LOOP;
			goto out;
		}
		cur = cname;
		followed = true;
	}

rcode:
	switch (a->rcode) {
	case LDNS_RCODE_NOERROR:
		/* A chain that stops at a CNAME target without its records: an
		 * authoritative server does not chase out of its zone, so ask. */
		if (followed) {
			a->outcome = EP_DNSQ_FOLLOW;
			memcpy(a->next, chain->names[chain->hops], sizeof(a->next));
		} else {
			a->outcome = EP_DNSQ_NODATA;
		}
		break;
	case LDNS_RCODE_NXDOMAIN:
		/* With a chain, NXDOMAIN speaks for its last target (RFC 6604). */
		a->outcome = EP_DNSQ_NXDOMAIN;
		break;
	case LDNS_RCODE_REFUSED:
		a->outcome = EP_DNSQ_REFUSED;
		break;
	default:
		a->outcome = EP_DNSQ_SERVFAIL;
		break;
	}
out:
	ldns_rdf_deep_free(start);
	return 0;
}
