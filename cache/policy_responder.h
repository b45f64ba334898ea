/*
 * The cache's policy responder: dnsmasq's one and only upstream.
 *
 * dnsmasq answers every preloaded name and type from its hosts data. What it
 * cannot answer it forwards here, and without an upstream it would answer
 * REFUSED (and with a dead one, nothing). Two cases reach us:
 *   - a name in the snapshot, asked for a type it does not have (AAAA of an
 *     IPv4-only name): NODATA (NOERROR, empty answer, SOA in authority so the
 *     negative answer is cached for the cache TTL). REFUSED here would make
 *     musl fail the whole lookup, although the name has an A record.
 *   - a name outside the snapshot: SERVFAIL. Never NXDOMAIN: that would be a
 *     cached lie about a name that may well exist. SERVFAIL rather than
 *     REFUSED because it means "cannot answer now" (glibc reports EAI_AGAIN,
 *     a temporary failure applications retry) where REFUSED means "will not"
 *     (EAI_FAIL, permanent). With dns.cache.fallback set, such a query goes
 *     to those resolvers first (fallback.h); SERVFAIL when none answers.
 */
#ifndef EP_POLICY_RESPONDER_H
#define EP_POLICY_RESPONDER_H

#include <stddef.h>
#include <stdint.h>

#include "dns_name.h"

enum ep_policy_kind {
	EP_POLICY_NODATA = 0,
	EP_POLICY_SERVFAIL,
	EP_POLICY_FORMERR, /* a query we could parse the header of, but nothing else */
	EP_POLICY_DROPPED, /* not a query at all: no answer */
};

/*
 * Pure: the answer to one query given the snapshot's names. On success
 * *out is malloc()ed. Never fails on hostile input, only on memory.
 */
enum ep_policy_kind ep_policy_answer(const uint8_t *q, size_t qlen, const struct ep_nameset *names,
				     uint32_t ttl, uint8_t **out, size_t *outlen);

struct ep_policy_responder;

struct ep_policy_stats {
	uint64_t nodata, servfail, formerr, dropped;
	uint64_t tcp_idle_closed; /* TCP connections closed after the idle timeout */
	uint64_t tcp_evicted;	  /* closed to make room: all 64 slots were taken */
	uint64_t fallback_answered; /* names outside the snapshot a fallback resolver answered */
	uint64_t fallback_failed;   /* ... that none answered in time (SERVFAIL, counted there too) */
	uint64_t fallback_bogus;    /* ... whose answers failed DNSSEC validation (SERVFAIL, counted there too) */
};

/* Listens on addr:port (UDP and TCP) from its own thread. Up to 64 TCP
 * connections; one whose peer sends nothing for 10 s is closed, and when all
 * 64 are taken a new one replaces the one quiet the longest. */
int ep_policy_start(struct ep_policy_responder **out, const char *addr, uint16_t port,
		    uint32_t ttl, char *err, size_t errlen);
struct ep_dnssec_anchor;
/* The same, with fallback resolvers ("ADDR" or "ADDR#PORT", tried in order,
 * each given fallback_timeout_ms; 0: the default) for the names outside the
 * snapshot. n_fallback 0: none. anchor (taken, also on failure; NULL: none):
 * the names of its zone are DNSSEC-validated (fallback.h). */
int ep_policy_start_fallback(struct ep_policy_responder **out, const char *addr, uint16_t port,
			     uint32_t ttl, const char *const *fallback, int n_fallback,
			     unsigned fallback_timeout_ms, struct ep_dnssec_anchor *anchor, char *err,
			     size_t errlen);
/* Replaces the name set (takes ownership of names, which is reset). */
void ep_policy_set_names(struct ep_policy_responder *r, struct ep_nameset *names);
void ep_policy_set_ttl(struct ep_policy_responder *r, uint32_t ttl);
/* The TCP idle timeout (default 10000 ms); for tests. */
void ep_policy_set_tcp_idle_ms(struct ep_policy_responder *r, unsigned ms);
void ep_policy_get_stats(struct ep_policy_responder *r, struct ep_policy_stats *st);
void ep_policy_stop(struct ep_policy_responder *r);

#endif
