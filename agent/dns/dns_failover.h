/*
 * DNS failover, the agent's side: turns what the datapath observes (queries,
 * answers, rcodes, latency, answers matching no query, answers diverging from
 * the trusted snapshot) plus the timeouts it finds in the pending-query map
 * and the active probes into sliding windows per upstream, runs the state
 * machine (dns_health.h) over them, and applies its decision: one update of
 * ep_dns_config.mode, the per-upstream defenses (drop divergent / unmatched
 * answers), and the Node label, condition and Events through the Kubernetes
 * API (never in the way of the datapath switch).
 */
#ifndef EP_DNS_FAILOVER_H
#define EP_DNS_FAILOVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "config.h"
#include "datapath.h"
#include "dns_health.h"
#include "strbuf.h"

struct ep_dns_cache;


struct ep_dns_failover;

/* Registers its timer on ev: every 100 ms (under *lock, which the metrics
 * thread also takes) it polls the probes and the sample ring, and closes one
 * health slot (reads the datapath, scans pending queries, runs the state
 * machine). ep_dns_failover_stop() removes it. */
int ep_dns_failover_start(struct ep_dns_failover **out, const struct ep_config *cfg,
			  const struct ep_dns_map_fds *maps, struct ep_dns_cache *cache,
			  sd_event *ev, pthread_mutex_t *lock, char *err, size_t errlen);
/* A reloaded config: thresholds, upstreams, canaries. The state is kept. */
int ep_dns_failover_reconfigure(struct ep_dns_failover *f, const struct ep_config *cfg,
				struct ep_dns_cache *cache, char *err, size_t errlen);
/* edgeplane dns failover|failback|auto */
int ep_dns_failover_override(struct ep_dns_failover *f, enum ep_dns_override o);
/* Upstream usable for refreshing the cache (not failed over, not suspected). */
bool ep_dns_failover_upstream_healthy(const struct ep_dns_failover *f);
json_t *ep_dns_failover_status(struct ep_dns_failover *f);
void ep_dns_failover_metrics(struct ep_dns_failover *f, struct ep_strbuf *b);
/* Frees everything; the datapath keeps its last mode (like every other map). */
void ep_dns_failover_stop(struct ep_dns_failover *f);

#endif
