/* DNS messages built with ldns for the unit tests. */
#ifndef EP_TEST_DNSMSG_H
#define EP_TEST_DNSMSG_H

#include <stdint.h>

#include <ldns/ldns.h>

/* A response (QR, RD, RA) with rcode rc and the one question qname/qtype,
 * no records yet. */
ldns_pkt *dnsmsg_reply(uint16_t id, const char *qname, ldns_rr_type qtype, ldns_pkt_rcode rc);

#endif
