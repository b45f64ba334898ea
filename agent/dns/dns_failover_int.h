/*
 * What the pieces of DNS failover share, and nothing outside agent/dns/
 * includes. dns_failover.c runs the module (start, reconfigure, stop, the
 * tick, evaluation, overrides, the mode switch); dns_failover_datapath.c
 * reads and writes the pinned maps and the sample ring;
 * dns_failover_report.c renders status and metrics. This header is the
 * seam: the module's state and the datapath calls the lifecycle makes.
 */
#ifndef EP_DNS_FAILOVER_INT_H
#define EP_DNS_FAILOVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns_cache.h"
#include "dns_failover.h"
#include "dns_rto.h"

#define RECENT_SAMPLES 8

struct recent_sample {
	double at;
	char upstream[EP_IP_STRLEN];
	char name[256];
	char answer[160];
	char what[32];
};

struct upstream_state {
	struct ep_ip addr;
	char name[EP_IP_STRLEN];
	struct ep_dns_stats last; /* datapath totals at the last read */
	struct ep_dns_hdr_stats hlast; /* fragments, options, extension headers */
	bool have_last;
	struct ep_dns_window *slots;
	unsigned verdict;
	char why[256];
	uint64_t timeouts_total, late_total, hijack_suspected_total;
	uint32_t flags; /* EP_DNS_UP_F_* currently applied */
	struct ep_dns_rto rto; /* what counts as a timeout for this upstream */
	uint64_t silent_timeouts, silent_slots; /* since the last answer (dns_health.h) */
};

struct ep_dns_failover {
	struct ep_cfg_dns cfg; /* canaries: pointer into the agent's config (prober) */
	struct ep_dns_map_fds m;
	struct upstream_state up[EP_DNS_MAX_UPSTREAMS];
	size_t n;
	size_t n_slots, cur;
	uint64_t slot_ends_ns;
	struct ep_dns_machine mach;
	/* Whether the datapath may follow the machine to the cache (dns_health.h),
	 * and the cache's state it last judged by. */
	struct ep_dns_gate gate;
	struct ep_dns_cache_health cache_health;
	bool k8s_reported; /* the machine's cache_mode last told to Kubernetes */
	struct ep_dns_prober *prober;
	struct ep_dns_exempt_map *exempt; /* the probes' sockets, never redirected */
	struct ep_dns_cache *cache;
	uint64_t snap_gen;
	struct ring_buffer *rb;
	struct ep_k8s *k8s;
	int k8s_mode; /* 1 in use, 0 not in a cluster, -1 unusable */
	struct ep_cfg_kubernetes k8s_cfg; /* what the client was started with */
	char k8s_node[256];
	char k8s_note[256];
	double mode_changed_at;
	uint64_t mode_changes;
	struct recent_sample recent[RECENT_SAMPLES];
	size_t recent_next;
	uint64_t samples_seen;
	uint64_t last_sample_log_ns;
	sd_event_source *timer; /* TICK_NS: probes, samples, health slots */
	pthread_mutex_t *lock;
};

/* dns_failover_datapath.c */
/* ep_dns_upstreams from f->up (index and defence flags); prunes the rest. */
int ep_dnsf_write_upstreams(struct ep_dns_failover *f);
/* ep_dns_config: mode, cache addresses, sampling, netns cookie. */
int ep_dnsf_write_config(struct ep_dns_failover *f, bool keep_mode);
bool ep_dnsf_datapath_in_cache_mode(struct ep_dns_failover *f);
/* Does the (pinned) upstream map say slot idx belongs to addr? */
bool ep_dnsf_pinned_slot_is(struct ep_dns_failover *f, uint32_t idx, const struct ep_ip *addr);
void ep_dnsf_zero_datapath_stats(struct ep_dns_failover *f, uint32_t idx);
/* Datapath counters since the last read, into the current slot. */
void ep_dnsf_read_datapath(struct ep_dns_failover *f);
/* Timeouts from the pending-query map, into the current slot. */
void ep_dnsf_scan_pending(struct ep_dns_failover *f, uint64_t now);
/* The cache's trusted snapshot into ep_dns_snap. */
void ep_dnsf_sync_snapshot(struct ep_dns_failover *f);
/* ring_buffer callback for ep_dns_samples (ctx: the ep_dns_failover). */
int ep_dnsf_on_sample(void *ctx, void *data, size_t len);

#endif
