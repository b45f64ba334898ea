/*
 * Active DNS probes: every upstream is asked, every probe interval, for a
 * canary name with known answers (or, without canaries, a name of the
 * trusted snapshot, or a name that must not exist). Own non-blocking
 * sockets, connected to the upstream so the kernel drops datagrams from
 * any other source; a reply must also carry the query's id and question
 * (RFC 5452) or it is ignored. ldns builds and parses the messages.
 * Every probe socket is exempted from the failover redirect
 * (lib/dns_exempt.h) before it is connected: probes must measure the real
 * upstream while the node answers from its cache, or they decide failback
 * on the cache's health.
 * Optionally the answers are DNSSEC-validated (docs/dnssec-probes.md).
 */
#ifndef EP_DNS_PROBE_H
#define EP_DNS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dns_exempt.h"
#include "dns_health.h"
#include "dns_query.h"

/* What the snapshot says a name resolves to (for probes without canaries). */
typedef bool (*ep_probe_pick_fn)(void *arg, char *name, size_t namelen, struct ep_dns_addr *addrs,
				 size_t *n_addrs, size_t max);

struct ep_dns_prober;

/*
 * With cfg->health.trust_anchor set, the anchor file is read here (see
 * dnssec_check.h) and probe answers are DNSSEC-validated: queries carry the
 * EDNS0 DO bit, each upstream is also asked for the anchored zone's DNSKEY
 * RRset (validated against the anchor, kept until its TTL or its earliest
 * RRSIG expiration, at most an hour), and an answer for a name in that zone
 * without a valid RRSIG by one of those keys is EP_PROBE_BOGUS. Liveness
 * probes (names that must not exist) and names outside the zone are not
 * validated. Returns NULL with a message in err (naming the key and the
 * file) when the anchor cannot be used; nothing is left allocated then.
 * exempt (may be NULL: nothing to exempt from) must outlive the prober.
 */
struct ep_dns_prober *ep_dns_prober_new(const struct ep_cfg_dns *cfg, ep_probe_pick_fn pick,
					void *pick_arg, const struct ep_dns_exempt_map *exempt,
					char *err, size_t errlen);
/* Sends due probes, reads replies, expires unanswered ones. Never blocks.
 * All functions below accept a NULL prober (nothing to do, nothing to say). */
void ep_dns_prober_tick(struct ep_dns_prober *p, uint64_t now_ns);
/* The timeout of upstream i's next probes (its RTO, dns_rto.h); until set,
 * dns.health.timeout_ms. A probe unanswered by then is a timeout, but its
 * socket stays open up to timeout_ms: a late reply's round trip is handed
 * out by ep_dns_prober_late_rtts(). */
void ep_dns_prober_set_timeout(struct ep_dns_prober *p, size_t i, uint64_t timeout_ns);
/* Round trips (us) of probe replies that came after their timeout, since
 * the last call; returns how many were written to us[] (at most max). */
size_t ep_dns_prober_late_rtts(struct ep_dns_prober *p, size_t i, uint64_t *us, size_t max);
/* Adds the results gathered for upstream i since the last call to *w. */
void ep_dns_prober_take(struct ep_dns_prober *p, size_t i, struct ep_dns_window *w);
/* Last probe outcome of upstream i, for status ("ok", "timeout", "wrong answer ..."). */
const char *ep_dns_prober_last(const struct ep_dns_prober *p, size_t i);
uint64_t ep_dns_prober_total(const struct ep_dns_prober *p, size_t i, int result);
/* DNSSEC state of upstream i, one line for status: "off" without a trust
 * anchor, else the zone, the validated keys and when they are fetched again,
 * or why there are none. Returns buf. */
const char *ep_dns_prober_dnssec(const struct ep_dns_prober *p, size_t i, char *buf, size_t len);
void ep_dns_prober_free(struct ep_dns_prober *p);

enum ep_probe_result {
	EP_PROBE_OK = 0,
	EP_PROBE_TIMEOUT,
	EP_PROBE_SERVFAIL,
	EP_PROBE_WRONG,
	EP_PROBE_BOGUS,
	EP_PROBE_DIVERGENT,
	EP_PROBE_RESULTS
};
extern const char *const ep_probe_result_names[EP_PROBE_RESULTS];

#endif
