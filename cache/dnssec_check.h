/*
 * DNSSEC validation of the agent's probe answers against a configured trust
 * anchor (dns.health.trust_anchor). Pure logic on ldns packets, no sockets
 * and no clock of its own, so the unit tests drive it directly.
 *
 * One signed zone is supported: the zone the anchor is for. Its DNSKEY RRset
 * is validated against the anchor (a DS whose digest matches a key, or a key
 * equal to an anchor DNSKEY, that signed the RRset), and answers for names in
 * that zone must carry a valid RRSIG by one of the validated keys. Names
 * outside the zone are not validated; denial of existence (NSEC/NSEC3) is
 * not checked. See docs/dnssec-probes.md.
 */
#ifndef EP_DNSSEC_CHECK_H
#define EP_DNSSEC_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <ldns/ldns.h>

/* Validated keys are fetched again after at most this long. */
#define EP_DNSSEC_KEYS_MAX_S 3600
/* ... and not more often than this (a DNSKEY TTL of 0 would otherwise cost
 * every other probe), unless their signatures expire sooner. */
#define EP_DNSSEC_KEYS_MIN_S 60
/* A signature whose inception is up to this far in our future is accepted
 * (clock skew between the signer and this node); expiration is strict. */
#define EP_DNSSEC_SKEW_S 300
/* Anchor records a file may hold. */
#define EP_DNSSEC_MAX_ANCHORS 64

struct ep_dnssec_anchor;

/*
 * Reads a trust anchor file: zone-file text (comments, blank lines, $TTL and
 * $ORIGIN allowed) holding DS and/or DNSKEY records of one zone, class IN -
 * what ldns-key2ds / ldns-keygen write, the DS or DNSKEY lines of an unbound
 * auto-trust-anchor-file (revoked keys are skipped). Returns 0 and *out, or
 * a negative errno and a message naming the file (and line) in err; nothing
 * is allocated then.
 */
int ep_dnssec_anchor_load(const char *path, struct ep_dnssec_anchor **out, char *err,
			  size_t errlen);
void ep_dnssec_anchor_free(struct ep_dnssec_anchor *a);
/* The zone the anchor is for, as text with the final dot ("edge.test."). */
const char *ep_dnssec_anchor_zone(const struct ep_dnssec_anchor *a);
size_t ep_dnssec_anchor_count(const struct ep_dnssec_anchor *a);
/* NAME (text) is the zone or below it. */
bool ep_dnssec_in_zone(const struct ep_dnssec_anchor *a, const char *name);

enum ep_dnssec_verdict {
	EP_DNSSEC_SECURE = 0, /* signatures checked and good */
	EP_DNSSEC_BOGUS,      /* should have been signed and is not, or not validly */
	EP_DNSSEC_INSECURE,   /* not validated: the name (or its CNAME target) is outside the zone */
	EP_DNSSEC_NO_DATA,    /* not an error reply with records to check (NXDOMAIN, NODATA, ...) */
	EP_DNSSEC_ERROR,      /* out of memory */
};

/* The zone's keys as validated from a DNSKEY reply. */
struct ep_dnssec_keys {
	ldns_rr_list *keys;  /* deep copies of the zone keys of the validated RRset */
	uint32_t refresh_s;  /* fetch them again after this long */
	uint32_t expire_s;   /* unusable after this long (earliest RRSIG expiration) */
};

/*
 * Validates REPLY, an answer to "ZONE DNSKEY" (already matched to its query),
 * at wall-clock time NOW. SECURE fills *out (ep_dnssec_keys_free it);
 * anything else leaves it empty and says why in WHY.
 */
enum ep_dnssec_verdict ep_dnssec_check_dnskey(const struct ep_dnssec_anchor *a,
					      const ldns_pkt *reply, time_t now,
					      struct ep_dnssec_keys *out, char *why, size_t whylen);
void ep_dnssec_keys_free(struct ep_dnssec_keys *k);

/*
 * Validates the answer in REPLY to QNAME/QTYPE: the RRset of QTYPE at the end
 * of the CNAME chain that starts at QNAME, and every CNAME on the way, must
 * each carry a valid RRSIG by one of KEYS (from ep_dnssec_check_dnskey) made
 * by the anchored zone, valid at NOW (see EP_DNSSEC_SKEW_S). INSECURE when QNAME is outside the zone
 * or the chain leaves it; NO_DATA when the reply is not NOERROR or has no
 * records for the chain (the caller judges such replies on their own).
 */
enum ep_dnssec_verdict ep_dnssec_check_answer(const struct ep_dnssec_anchor *a,
					      const ldns_rr_list *keys, const ldns_pkt *reply,
					      const char *qname, uint16_t qtype, time_t now,
					      char *why, size_t whylen);

#endif
