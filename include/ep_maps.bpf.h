/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Map definitions shared by every edgeplane BPF object. Each object declares
 * its own copy; the agent pins them by name under <bpffs>/maps and every later
 * load reuses the pins, so XDP and TC programs see the same maps and the maps
 * survive agent restarts.
 */
#ifndef EP_MAPS_BPF_H
#define EP_MAPS_BPF_H

#include "edgeplane_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EP_MAX_VIPS);
	__type(key, struct ep_vip_key);
	__type(value, __u32);
} ep_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_VIP_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} ep_vip_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EP_MAX_SERVICES);
	__type(key, struct ep_endpoint);
	__type(value, struct ep_service);
} ep_services SEC(".maps");

/* Inner Maglev rings are built by the agent off to the side and swapped in
 * with one update of the outer slot. BPF_F_INNER_MAP lets rings differ in
 * size, so the table size can change without recreating the outer map.
 * Slots are packed in chunks (struct ep_ring_chunk). (Builds before the
 * packing kept one slot per element in a map named ep_maglev; an agent
 * that finds that pin removes it, see ep_dp_remove_obsolete_pins.) */
struct ep_ring {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_RING_CHUNKS(EP_MAGLEV_DEFAULT_SIZE));
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(key_size, sizeof(__u32));
	/* a size, not a BTF type: clang emits only a forward declaration of
	 * a struct named nowhere but in an inner map's template */
	__uint(value_size, sizeof(struct ep_ring_chunk));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, EP_MAX_SERVICES *EP_RINGS_PER_SVC);
	__type(key, __u32);
	__array(values, struct ep_ring);
} ep_rings SEC(".maps");

/* The backend id in a ring's slot, or NULL. */
static __always_inline __u32 *ep_ring_slot(void *ring, __u32 slot)
{
	__u32 chunk = slot / EP_RING_CHUNK_SLOTS;
	struct ep_ring_chunk *c = bpf_map_lookup_elem(ring, &chunk);

	return c ? &c->backend_id[slot % EP_RING_CHUNK_SLOTS] : NULL;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ep_backend);
} ep_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EP_MAX_BACKENDS);
	__type(key, struct ep_endpoint);
	__type(value, struct ep_backend_rev);
} ep_backend_rev SEC(".maps");

/* Conntrack, one map per family (see ep_flow_key4) and per protocol: TCP
 * in ep_ct4/ep_ct6, UDP in ep_ctu4/ep_ctu6. A UDP flow is pinned on its
 * first datagram, so a spoofed UDP flood fills conntrack; in maps of its
 * own it can only evict UDP flows, never established TCP connections.
 * Sizes set by the agent from datapath.conntrack_size before load (each
 * map). Per-CPU LRU lists: inserting a new flow takes no global lock
 * (lookups still see every CPU's entries). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EP_CT_DEFAULT_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct ep_flow_key4);
	__type(value, struct ep_ct_entry);
} ep_ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EP_CT_DEFAULT_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct ep_flow_key);
	__type(value, struct ep_ct_entry);
} ep_ct6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EP_CT_DEFAULT_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct ep_flow_key4);
	__type(value, struct ep_ct_entry);
} ep_ctu4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EP_CT_DEFAULT_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct ep_flow_key);
	__type(value, struct ep_ct_entry);
} ep_ctu6 SEC(".maps");

/* The conntrack map and key of a flow. `family` and `proto` must be
 * constants at the call site (they are, after inlining), so each call site
 * names one map and the verifier can inline the hash lookup; a map chosen
 * at run time would turn every lookup into an indirect helper call. The
 * _p variants take the protocol as that constant (the fast path); the
 * others branch on k->proto first. */
#define EP_CT_KEY4(k)                                                                              \
	{                                                                                          \
		.src = (k)->src[0], .dst = (k)->dst[0], .sport = (k)->sport, .dport = (k)->dport,  \
	}

static __always_inline struct ep_ct_entry *ep_ct_lookup_p(const struct ep_flow_key *k,
							   const __u8 family, const __u8 proto)
{
	if (family == EP_FAMILY_V4) {
		struct ep_flow_key4 k4 = EP_CT_KEY4(k);

		return bpf_map_lookup_elem(proto == IPPROTO_UDP ? (void *)&ep_ctu4 : (void *)&ep_ct4,
					   &k4);
	}
	return bpf_map_lookup_elem(proto == IPPROTO_UDP ? (void *)&ep_ctu6 : (void *)&ep_ct6, k);
}

static __always_inline long ep_ct_update_p(const struct ep_flow_key *k,
					   const struct ep_ct_entry *v, const __u8 family,
					   const __u8 proto)
{
	if (family == EP_FAMILY_V4) {
		struct ep_flow_key4 k4 = EP_CT_KEY4(k);

		return bpf_map_update_elem(proto == IPPROTO_UDP ? (void *)&ep_ctu4 : (void *)&ep_ct4,
					   &k4, v, BPF_ANY);
	}
	return bpf_map_update_elem(proto == IPPROTO_UDP ? (void *)&ep_ctu6 : (void *)&ep_ct6, k, v,
				   BPF_ANY);
}

static __always_inline long ep_ct_delete_p(const struct ep_flow_key *k, const __u8 family,
					   const __u8 proto)
{
	if (family == EP_FAMILY_V4) {
		struct ep_flow_key4 k4 = EP_CT_KEY4(k);

		return bpf_map_delete_elem(proto == IPPROTO_UDP ? (void *)&ep_ctu4 : (void *)&ep_ct4,
					   &k4);
	}
	return bpf_map_delete_elem(proto == IPPROTO_UDP ? (void *)&ep_ctu6 : (void *)&ep_ct6, k);
}

static __always_inline struct ep_ct_entry *ep_ct_lookup(const struct ep_flow_key *k,
							 const __u8 family)
{
	if (k->proto == IPPROTO_UDP)
		return ep_ct_lookup_p(k, family, IPPROTO_UDP);
	return ep_ct_lookup_p(k, family, IPPROTO_TCP);
}

static __always_inline long ep_ct_delete(const struct ep_flow_key *k, const __u8 family)
{
	if (k->proto == IPPROTO_UDP)
		return ep_ct_delete_p(k, family, IPPROTO_UDP);
	return ep_ct_delete_p(k, family, IPPROTO_TCP);
}

/* Half-open handshakes (see struct ep_syn): shared by XDP (writes on a SYN,
 * reads on the ACK) and TC (reads on the SYN-ACK), so not per-CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_SYN_SLOTS);
	__type(key, __u32);
	__type(value, struct ep_syn);
} ep_syn SEC(".maps");

static __always_inline struct ep_syn *ep_syn_slot(__u32 flow_hash)
{
	__u32 idx = flow_hash & (EP_SYN_SLOTS - 1);

	return bpf_map_lookup_elem(&ep_syn, &idx);
}

/* Orphan records (see EP_SYN_F_ORPHAN): written by XDP, read and freed by
 * reverse NAT, so not per-CPU either. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_ORPHAN_BUCKETS);
	__type(key, __u32);
	__type(value, struct ep_orphan_bucket);
} ep_orphans SEC(".maps");

static __always_inline struct ep_orphan_bucket *ep_orphan_bucket(__u32 flow_hash)
{
	__u32 idx = flow_hash & (EP_ORPHAN_BUCKETS - 1);

	return bpf_map_lookup_elem(&ep_orphans, &idx);
}

/* The flow's record in its bucket, or NULL. */
static __always_inline struct ep_syn *ep_orphan_find(struct ep_orphan_bucket *b, __u32 sig)
{
#pragma unroll
	for (int w = 0; w < EP_ORPHAN_WAYS; w++)
		if (b->way[w].sig == sig)
			return &b->way[w];
	return NULL;
}

/* Where a new orphan record goes: the flow's own way, else a free one,
 * else the one written longest ago. */
static __always_inline struct ep_syn *ep_orphan_way(__u32 flow_hash, __u32 sig)
{
	struct ep_orphan_bucket *b = ep_orphan_bucket(flow_hash);
	struct ep_syn *pick;
	__u64 best = ~0ULL;

	if (!b)
		return NULL;
	pick = &b->way[0];
#pragma unroll
	for (int w = 0; w < EP_ORPHAN_WAYS; w++) {
		/* free ways first (0), then by age */
		__u64 score = b->way[w].sig ? (__u64)b->way[w].last_seen_s + 1 : 0;

		if (b->way[w].sig == sig)
			return &b->way[w];
		if (score < best) {
			best = score;
			pick = &b->way[w];
		}
	}
	return pick;
}

/* The backend a record names (its id in *bid), if the record is of this
 * kind (0: a handshake's, EP_SYN_F_ORPHAN: an orphan's), not older than
 * EP_SYN_MAX_AGE_S, and the backend is still in service. (An id is only
 * reused once conntrack no longer names it, so a record outliving its
 * backend's removal points nowhere, not elsewhere, except in the rare case
 * the id was reused within EP_SYN_MAX_AGE_S.) XDP records a handshake's
 * ACK with it, reverse NAT an orphan's answer. */
static __always_inline struct ep_backend *ep_syn_backend(const struct ep_syn *rec, __u32 kind,
							 __u32 now_s, __u32 *bid)
{
	struct ep_backend *be;

	if ((rec->backend_id & EP_SYN_F_ORPHAN) != kind ||
	    now_s - rec->last_seen_s > EP_SYN_MAX_AGE_S)
		return NULL;
	*bid = rec->backend_id & ~EP_SYN_F_ORPHAN;
	be = bpf_map_lookup_elem(&ep_backends, bid);
	return be && (be->flags & EP_BE_F_VALID) ? be : NULL;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EP_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ep_backend_stats);
} ep_backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EP_DROP_MAX);
	__type(key, __u32);
	__type(value, struct ep_drop_stats);
} ep_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ep_dp_config);
} ep_config SEC(".maps");

/* Interfaces XDP may redirect to (redirect forwarding mode). */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} ep_tx_ports SEC(".maps");

#endif /* EP_MAPS_BPF_H */
