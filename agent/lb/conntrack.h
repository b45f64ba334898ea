/* Conntrack housekeeping from user space: counting, idle expiry, purging a
 * removed service, and which backend ids flows still reference. A full
 * bucket evicts its oldest slot on its own (struct ep_ct_slot4); this keeps
 * the count honest and lets removed backends be released once their last
 * flow is gone. The agent maps the tables and takes part in the slots'
 * protocol as one more writer, so it never stops traffic. */
#ifndef EP_CONNTRACK_H
#define EP_CONNTRACK_H

#include <stdbool.h>
#include <stdint.h>

#include "edgeplane_abi.h"

/* The conntrack maps: TCP (and anything not UDP) in ep_ct4/ep_ct6, UDP in
 * ep_ctu4/ep_ctu6 (include/ep_maps.bpf.h says why). */
struct ep_ct_fds {
	int v4, v6;
	int u4, u6;
	int used; /* ep_ct_used, or <= 0: none (every pass a full one) */
};

struct ep_ct_gc_result {
	uint64_t entries;  /* live entries after the pass (both families) */
	uint64_t entries4, entries6;
	uint64_t expired;  /* deleted for idleness */
	uint64_t scanned;
	uint64_t buckets;  /* buckets read */
	bool full;	   /* every bucket read, not only those marked used */
};

int ep_ncpus(void);

/* One pass over conntrack: deletes entries idle longer than their protocol's
 * timeout and sets bit `backend_id` in refs (EP_MAX_BACKENDS bits) for every
 * entry kept. now_s is the clock the agent publishes to the datapath
 * (ep_datapath_publish_clock). A pass reads only the buckets ep_ct_used
 * marks, unless `full` (the first pass after a start: it also sets the marks
 * of every bucket holding a flow, whoever wrote the tables before). */
int ep_ct_gc(const struct ep_ct_fds *ct, uint32_t now_s, uint32_t tcp_timeout_s,
	     uint32_t udp_timeout_s, uint8_t *refs, bool full, struct ep_ct_gc_result *res);

/* Looks a flow up in the map of its family and protocol. 0 or -errno. */
int ep_ct_get(const struct ep_ct_fds *ct, const struct ep_flow_key *k, struct ep_ct_entry *out);

/* Records a flow (or replaces its entry) where the datapath would: tests
 * and tools. -EBUSY if the datapath is writing that slot. 0 or -errno. */
int ep_ct_put(const struct ep_ct_fds *ct, const struct ep_flow_key *k,
	      const struct ep_ct_entry *v);

/* Flows in the tables of this family and protocol (0: any), or -errno. */
long ep_ct_count(const struct ep_ct_fds *ct, int family, int proto);

/* Deletes every flow of one service (VIP:port/proto). Returns how many. */
long ep_ct_purge_service(const struct ep_ct_fds *ct, const struct ep_endpoint *svc);

/* Deletes every flow whose backend id has its bit set in ids
 * (EP_MAX_BACKENDS bits). Returns how many. */
long ep_ct_purge_backends(const struct ep_ct_fds *ct, const uint8_t *ids);

#endif
