/* See dnsmsg.h. */
#include <stdlib.h>
#include <string.h>

#include "dnsmsg.h"

ldns_pkt *dnsmsg_reply(uint16_t id, const char *qname, ldns_rr_type qtype, ldns_pkt_rcode rc)
{
	ldns_pkt *p = ldns_pkt_new();
	ldns_rr *q = ldns_rr_new();

	ldns_pkt_set_id(p, id);
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_rd(p, true);
	ldns_pkt_set_ra(p, true);
	ldns_pkt_set_rcode(p, rc);
	ldns_rr_set_owner(q, ldns_dname_new_frm_str(qname));
	ldns_rr_set_type(q, qtype);
	ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
	ldns_rr_set_question(q, true);
	ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, q);
	return p;
}

size_t dnsmsg_wire(const ldns_pkt *p, uint8_t *out, size_t cap)
{
	uint8_t *w = NULL;
	size_t n = 0;

	if (ldns_pkt2wire(&w, p, &n) != LDNS_STATUS_OK || n > cap)
		n = 0;
	if (n)
		memcpy(out, w, n);
	free(w);
	return n;
}

size_t dnsmsg_query(uint8_t *out, size_t cap, uint16_t id, const char *name, ldns_rr_type type,
		    bool dnssec_ok)
{
	ldns_pkt *p = NULL;
	size_t len;

	if (ldns_pkt_query_new_frm_str(&p, name, type, LDNS_RR_CLASS_IN, LDNS_RD) != LDNS_STATUS_OK)
		return 0;
	ldns_pkt_set_id(p, id);
	if (dnssec_ok) {
		ldns_pkt_set_edns_udp_size(p, 4096);
		ldns_pkt_set_edns_do(p, true);
	}
	len = dnsmsg_wire(p, out, cap);
	ldns_pkt_free(p);
	return len;
}
