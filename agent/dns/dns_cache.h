/*
 * The node's local DNS cache (dns.cache): dnsmasq serving the preload
 * snapshot on dns.cache.listen:53, the policy responder behind it, the
 * snapshot watcher (a new preload file is loaded and dnsmasq told to re-read
 * it) and the background refresh that rebuilds the snapshot from the
 * upstreams while they are healthy.
 */
#ifndef EP_DNS_CACHE_H
#define EP_DNS_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dns_query.h"
#include "strbuf.h"

/* The policy responder's address: loopback, a port nothing else uses. */
#define EP_POLICY_ADDR "127.0.0.1"
#define EP_POLICY_PORT 5399

struct ep_dns_cache;

/* Starts everything for cfg->dns.cache. runtime_dir holds dnsmasq's files. */
int ep_dns_cache_start(struct ep_dns_cache **out, const struct ep_config *cfg,
		       const char *runtime_dir, char *err, size_t errlen);
/* A reloaded config (same runtime dir). */
int ep_dns_cache_reconfigure(struct ep_dns_cache *c, const struct ep_config *cfg, char *err,
			     size_t errlen);
/* Every agent tick. upstream_healthy gates the refresh (no rebuild from a
 * failing or hijacked upstream). */
void ep_dns_cache_tick(struct ep_dns_cache *c, uint64_t now_ns, bool upstream_healthy);
/* Rebuild now (edgeplane dns refresh); returns immediately. */
int ep_dns_cache_refresh_now(struct ep_dns_cache *c, char *err, size_t errlen);
json_t *ep_dns_cache_status(struct ep_dns_cache *c);
void ep_dns_cache_metrics(struct ep_dns_cache *c, struct ep_strbuf *b);
/* Bumped every time a new snapshot is loaded. */
uint64_t ep_dns_cache_generation(struct ep_dns_cache *c);
/* Calls fn for every name of the snapshot (under the snapshot lock). */
struct ep_snapshot;
void ep_dns_cache_with_snapshot(struct ep_dns_cache *c,
				void (*fn)(const struct ep_snapshot *s, void *arg), void *arg);
/* A random name of the snapshot and its addresses of one family, for probes. */
bool ep_dns_cache_pick(void *cache, char *name, size_t namelen, struct ep_dns_addr *addrs,
		       size_t *n, size_t max);
void ep_dns_cache_stop(struct ep_dns_cache *c, bool stop_dnsmasq);

#endif
