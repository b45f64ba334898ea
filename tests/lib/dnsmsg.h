/* DNS messages built with ldns for the unit tests. */
#ifndef EP_TEST_DNSMSG_H
#define EP_TEST_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ldns/ldns.h>

/* A response (QR, RD, RA) with rcode rc and the one question qname/qtype,
 * no records yet. */
ldns_pkt *dnsmsg_reply(uint16_t id, const char *qname, ldns_rr_type qtype, ldns_pkt_rcode rc);

/* P in wire format into OUT; its length, 0 when it does not fit in CAP
 * (tests hand fixed buffers to sockets). P stays the caller's. */
size_t dnsmsg_wire(const ldns_pkt *p, uint8_t *out, size_t cap);

/* A client query (RD) for NAME/TYPE in wire format into OUT: with EDNS and
 * the DO bit when DNSSEC_OK, else without EDNS at all; its length or 0. */
size_t dnsmsg_query(uint8_t *out, size_t cap, uint16_t id, const char *name, ldns_rr_type type,
		    bool dnssec_ok);

#endif
