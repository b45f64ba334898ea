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
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "config.h"
#include "dns_query.h"
#include "strbuf.h"

/*
 * The policy responder's address: loopback, a port only root (or a holder
 * of CAP_NET_BIND_SERVICE, which the cache needs for dnsmasq anyway) can
 * bind. An unprivileged port would let any local user bind it before the
 * agent does, or next to it, and answer dnsmasq's forwarded queries: every
 * name outside the snapshot while the node is failed over. Below 512, so
 * the reserved-port allocators (rresvport, bindresvport, the kernel's
 * sunrpc client: 512..1023) never take it, and not in /etc/services.
 */
#define EP_POLICY_ADDR "127.0.0.1"
#define EP_POLICY_PORT 299

struct ep_dns_cache;

/* Tells the cache whether the upstream is usable for a refresh (no rebuild
 * from a failing or hijacked upstream); asked before every scheduled one. */
typedef bool (*ep_dns_upstream_gate)(void *arg);

/* Starts everything for cfg->dns.cache. runtime_dir holds dnsmasq's files.
 * exempt_map_fd: the datapath's ep_dns_exempt map (duplicated here), whose
 * mark keeps the refresh's sockets away from the failover redirect; -1: none.
 * Registers its timer on ev: every 100 ms, under *lock (the agent's, which
 * the metrics thread takes too), it supervises dnsmasq (reap, health check,
 * restart, log), watches the preload file and runs the refresh.
 * ep_dns_cache_stop() removes it. */
int ep_dns_cache_start(struct ep_dns_cache **out, const struct ep_config *cfg,
		       const char *runtime_dir, int exempt_map_fd, sd_event *ev,
		       pthread_mutex_t *lock, ep_dns_upstream_gate gate, void *gate_arg, char *err,
		       size_t errlen);
/* A reloaded config (same runtime dir). */
int ep_dns_cache_reconfigure(struct ep_dns_cache *c, const struct ep_config *cfg, char *err,
			     size_t errlen);
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
/* Is the cache fit to take the node's DNS? dnsmasq runs and answered a
 * health check (one a second) within EP_DNS_CACHE_FRESH_NS, and the snapshot
 * has records. */
#define EP_DNS_CACHE_FRESH_NS (2500ULL * 1000000ULL)
struct ep_dns_cache_health {
	bool usable, answering;
	double last_answer_age_s; /* < 0: never answered */
	uint64_t records;
};
void ep_dns_cache_health(struct ep_dns_cache *c, uint64_t now, struct ep_dns_cache_health *h);
void ep_dns_cache_stop(struct ep_dns_cache *c, bool stop_dnsmasq);

#endif
