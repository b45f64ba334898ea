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
#include "ep_hash.h"

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

/* Conntrack, one table per family (see ep_flow_key4) and per protocol:
 * TCP in ep_ct4/ep_ct6, UDP in ep_ctu4/ep_ctu6. A UDP flow is pinned on its
 * first datagram, so a spoofed UDP flood fills conntrack; in tables of its
 * own it can only evict UDP flows, never established TCP connections.
 * Buckets of slots (struct ep_ct_bucket4, its protocol in the ABI header);
 * the agent sets max_entries to ep_ct_buckets(datapath.conntrack_size)
 * before load, and reads and deletes through the mmapped table. */
#define EP_CT_TABLE(name, bucket)                                                                  \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                  \
		__uint(max_entries, (EP_CT_DEFAULT_SIZE * EP_CT_SLOTS_PER_FLOW) / EP_CT_WAYS);     \
		__uint(map_flags, BPF_F_MMAPABLE);                                                 \
		__type(key, __u32);                                                                \
		__type(value, bucket);                                                             \
	} name SEC(".maps")

EP_CT_TABLE(ep_ct4, struct ep_ct_bucket4);
EP_CT_TABLE(ep_ctu4, struct ep_ct_bucket4);
EP_CT_TABLE(ep_ct6, struct ep_ct_bucket6);
EP_CT_TABLE(ep_ctu6, struct ep_ct_bucket6);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4 * EP_CT_USED_WORDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} ep_ct_used SEC(".maps");

/* The bucket of a key (its index in *idx). The table's size and seed are
 * read from the map itself (struct bpf_map, one cache line), so every
 * program and the agent agree on them without a word of configuration. */
static __always_inline void *ep_ct_bucket(void *table, __u32 h, __u32 *idx)
{
	const struct bpf_map *m = table;

	*idx = ep_ct_index(h, m->id, m->max_entries);
	return bpf_map_lookup_elem(table, idx);
}

/* After a flow is recorded: its bucket's bit in ep_ct_used (ABI header).
 * Read first: the bit is usually set already, and a plain load keeps the
 * line shared. */
static __always_inline void ep_ct_mark_used(__u32 table_no, __u32 bucket)
{
	__u32 w = table_no * EP_CT_USED_WORDS + bucket / 64;
	__u64 bit = 1ULL << (bucket % 64), *word = bpf_map_lookup_elem(&ep_ct_used, &w);

	if (word && !(*word & bit))
		__sync_fetch_and_or(word, bit);
}

#define EP_CT_KEY4(k)                                                                              \
	{                                                                                          \
		.src = (k)->src[0], .dst = (k)->dst[0], .sport = (k)->sport, .dport = (k)->dport,  \
	}

static __always_inline int ep_ct_key4_eq(const struct ep_flow_key4 *a, const struct ep_flow_key *b)
{
	return a->src == b->src[0] && a->dst == b->dst[0] &&
	       *(const __u32 *)&a->sport == *(const __u32 *)&b->sport;
}

static __always_inline int ep_ct_key6_eq(const struct ep_flow_key *a, const struct ep_flow_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 d = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*a) / 4); i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* The table of a family and protocol. Both must be constants at the call
 * site (they are, after inlining), so each call site names one map and the
 * verifier inlines the array lookup. */
#define EP_CT_TABLE_OF(family, proto)                                                              \
	((family) == EP_FAMILY_V4 ? ((proto) == IPPROTO_UDP ? (void *)&ep_ctu4 : (void *)&ep_ct4)  \
				  : ((proto) == IPPROTO_UDP ? (void *)&ep_ctu6 : (void *)&ep_ct6))

/* The slot holding k, or with `want_free` the one to write k into when k
 * has none (a free one, else the least recently seen); NULL when neither. */
static __always_inline void *ep_ct_find(const struct ep_flow_key *k, const __u8 family,
					const __u8 proto, int want_free, __u32 *bucket)
{
	void *table = EP_CT_TABLE_OF(family, proto);
	__u64 best = ~0ULL;
	void *pick = NULL;

	if (family == EP_FAMILY_V4) {
		struct ep_ct_bucket4 *b =
			ep_ct_bucket(table, ep_ct_hash4w(k->src[0], k->dst[0], k->sport, k->dport),
				     bucket);

		if (!b)
			return NULL;
#pragma unroll
		for (int w = 0; w < EP_CT_WAYS; w++) {
			struct ep_ct_slot4 *s = &b->way[w];
			__u64 score;

			if (ep_ct_key4_eq(&s->key, k))
				return s;
			if (!want_free)
				continue;
			/* free slots first (0), then by age */
			score = s->key.dst ? (__u64)s->v.last_seen_s + 1 : 0;
			if (score < best) {
				best = score;
				pick = s;
			}
		}
		return pick;
	}
	struct ep_ct_bucket6 *b = ep_ct_bucket(table, ep_ct_hash6(k), bucket);

	if (!b)
		return NULL;
	/* Not unrolled: four copies of a 40-byte compare cost reverse NAT and
	 * health more stack than they have. */
#pragma clang loop unroll(disable)
	for (int w = 0; w < EP_CT_WAYS; w++) {
		struct ep_ct_slot6 *s = &b->way[w];
		__u64 score;

		/* k's ten words are read again for each way rather than held
		 * across the loop: held, they spill, and the stack is short. */
		asm volatile("" ::: "memory");
		if (ep_ct_key6_eq(&s->key, k))
			return s;
		if (!want_free)
			continue;
		score = s->key.family ? (__u64)s->v.last_seen_s + 1 : 0;
		if (score < best) {
			best = score;
			pick = s;
		}
	}
	return pick;
}

/* Both slot layouts begin with seq; the entry's offset differs. */
#define EP_CT_SLOT_SEQ(s) ((__u64 *)(s))
#define EP_CT_SLOT_ENTRY(s, family)                                                                \
	((family) == EP_FAMILY_V4 ? &((struct ep_ct_slot4 *)(s))->v : &((struct ep_ct_slot6 *)(s))->v)

static __always_inline struct ep_ct_entry *ep_ct_lookup_p(const struct ep_flow_key *k,
							   const __u8 family, const __u8 proto)
{
	__u32 bucket;
	void *s = ep_ct_find(k, family, proto, 0, &bucket);

	/* An odd seq: a writer owns the slot right now; not an entry yet. */
	if (!s || (*EP_CT_SLOT_SEQ(s) & 1))
		return NULL;
	return EP_CT_SLOT_ENTRY(s, family);
}

/* Owns the slot (seq even -> odd) or fails; returns the even seq it had. */
static __always_inline int ep_ct_claim(void *s, __u64 *was)
{
	__u64 seq = *EP_CT_SLOT_SEQ(s);

	if (seq & 1)
		return -1;
	if (__sync_val_compare_and_swap(EP_CT_SLOT_SEQ(s), seq, seq + 1) != seq)
		return -1;
	*was = seq;
	return 0;
}

/* Releases a claimed slot. A compare-and-swap rather than a store: it is a
 * full barrier on every architecture, so the entry and key are visible
 * before the even seq is. */
static __always_inline void ep_ct_release(void *s, __u64 was)
{
	__sync_val_compare_and_swap(EP_CT_SLOT_SEQ(s), was + 1, was + 2);
}

/* Insert or replace (BPF_ANY); 0, or -1 when another writer owns the slot:
 * the flow goes on without an entry, as an orphan would. */
static __always_inline long ep_ct_update_inl(const struct ep_flow_key *k,
					     const struct ep_ct_entry *v, const __u8 family,
					     const __u8 proto)
{
	__u32 bucket;
	void *s = ep_ct_find(k, family, proto, 1, &bucket);
	__u64 was;

	if (!s)
		return -1;
	if (ep_ct_claim(s, &was))
		return -1;
	/* A reader that matches the key while seq is odd sees a miss; the key
	 * goes last so that one matching it after release sees this entry. */
	if (family == EP_FAMILY_V4) {
		struct ep_ct_slot4 *s4 = s;
		struct ep_flow_key4 k4 = EP_CT_KEY4(k);

		s4->v = *v;
		s4->key = k4;
	} else {
		struct ep_ct_slot6 *s6 = s;

		s6->v = *v;
		s6->key = *k;
	}
	ep_ct_release(s, was);
	ep_ct_mark_used(EP_CT_TABLE_NO(family, proto == IPPROTO_UDP), bucket);
	return 0;
}

/* Inserts are out of line, one function per table: inlined, the slot
 * choice took registers from the whole program and slowed paths that never
 * insert (a SYN's, measured in docs/benchmarks.md). */
static __noinline long ep_ct_update_tcp4(const struct ep_flow_key *k, const struct ep_ct_entry *v)
{
	return ep_ct_update_inl(k, v, EP_FAMILY_V4, IPPROTO_TCP);
}

static __noinline long ep_ct_update_udp4(const struct ep_flow_key *k, const struct ep_ct_entry *v)
{
	return ep_ct_update_inl(k, v, EP_FAMILY_V4, IPPROTO_UDP);
}

static __noinline long ep_ct_update_tcp6(const struct ep_flow_key *k, const struct ep_ct_entry *v)
{
	return ep_ct_update_inl(k, v, EP_FAMILY_V6, IPPROTO_TCP);
}

static __noinline long ep_ct_update_udp6(const struct ep_flow_key *k, const struct ep_ct_entry *v)
{
	return ep_ct_update_inl(k, v, EP_FAMILY_V6, IPPROTO_UDP);
}

static __always_inline long ep_ct_update_p(const struct ep_flow_key *k,
					   const struct ep_ct_entry *v, const __u8 family,
					   const __u8 proto)
{
	if (family == EP_FAMILY_V4)
		return proto == IPPROTO_UDP ? ep_ct_update_udp4(k, v) : ep_ct_update_tcp4(k, v);
	return proto == IPPROTO_UDP ? ep_ct_update_udp6(k, v) : ep_ct_update_tcp6(k, v);
}

static __always_inline long ep_ct_delete_p(const struct ep_flow_key *k, const __u8 family,
					   const __u8 proto)
{
	__u32 bucket;
	void *s = ep_ct_find(k, family, proto, 0, &bucket);
	__u64 was;

	if (!s)
		return -1;
	if (ep_ct_claim(s, &was))
		return -1;
	/* The bucket's bit stays: the agent's pass clears it once it finds
	 * the bucket empty. */
	if (family == EP_FAMILY_V4)
		__builtin_memset(&((struct ep_ct_slot4 *)s)->key, 0, sizeof(struct ep_flow_key4));
	else
		__builtin_memset(&((struct ep_ct_slot6 *)s)->key, 0, sizeof(struct ep_flow_key));
	ep_ct_release(s, was);
	return 0;
}

/*
 * Conntrack for the TC programs (reverse NAT, health, mirroring): global
 * functions, each verified once on its own. Inlined, a lookup's four ways
 * are four pointers the verifier tracks apart, and a loop over a backend's
 * services multiplied them past the verifier's limit. The family and
 * protocol are k's. The entry is copied out between two reads of the
 * slot's seq, so TC never reads one half-written. 0, or -1: no entry.
 */
#define EP_CT_DISPATCH(call)                                                                       \
	do {                                                                                       \
		if (k->family == EP_FAMILY_V4)                                                     \
			return k->proto == IPPROTO_UDP ? call(EP_FAMILY_V4, IPPROTO_UDP)           \
						       : call(EP_FAMILY_V4, IPPROTO_TCP);          \
		return k->proto == IPPROTO_UDP ? call(EP_FAMILY_V6, IPPROTO_UDP)                   \
					       : call(EP_FAMILY_V6, IPPROTO_TCP);                  \
	} while (0)

static __always_inline int ep_ct_read_p(const struct ep_flow_key *k, struct ep_ct_entry *out,
					const __u8 family, const __u8 proto)
{
	__u32 bucket;
	void *s = ep_ct_find(k, family, proto, 0, &bucket);
	__u64 seq;
	int same;

	if (!s)
		return -1;
	seq = *EP_CT_SLOT_SEQ(s);
	if (seq & 1)
		return -1;
	/* The key again, now that seq is read: the slot may have changed
	 * hands between the search and that read. */
	if (family == EP_FAMILY_V4)
		same = ep_ct_key4_eq(&((struct ep_ct_slot4 *)s)->key, k);
	else
		same = ep_ct_key6_eq(&((struct ep_ct_slot6 *)s)->key, k);
	*out = *EP_CT_SLOT_ENTRY(s, family);
	return same && *EP_CT_SLOT_SEQ(s) == seq ? 0 : -1;
}

static __always_inline int ep_ct_close_p(const struct ep_flow_key *k, const __u8 family,
					 const __u8 proto)
{
	__u32 bucket;
	void *s = ep_ct_find(k, family, proto, 0, &bucket);
	struct ep_ct_entry *e;

	if (!s || (*EP_CT_SLOT_SEQ(s) & 1))
		return -1;
	e = EP_CT_SLOT_ENTRY(s, family);
	if (!(e->flags & EP_CT_F_CLOSING))
		e->flags |= EP_CT_F_CLOSING;
	return 0;
}

#ifdef EP_CT_OUT_OF_LINE
__noinline int ep_ct_read(const struct ep_flow_key *k, struct ep_ct_entry *out)
{
	if (!k || !out)
		return -1;
#define EP_CT_READ(f, p) ep_ct_read_p(k, out, f, p)
	EP_CT_DISPATCH(EP_CT_READ);
#undef EP_CT_READ
}

/* Marks the flow closing (a FIN or RST seen). */
__noinline int ep_ct_close(const struct ep_flow_key *k)
{
	if (!k)
		return -1;
#define EP_CT_CLOSE(f, p) ep_ct_close_p(k, f, p)
	EP_CT_DISPATCH(EP_CT_CLOSE);
#undef EP_CT_CLOSE
}

__noinline int ep_ct_remove(const struct ep_flow_key *k)
{
	if (!k)
		return -1;
#define EP_CT_REMOVE(f, p) (int)ep_ct_delete_p(k, f, p)
	EP_CT_DISPATCH(EP_CT_REMOVE);
#undef EP_CT_REMOVE
}

__noinline int ep_ct_write(const struct ep_flow_key *k, const struct ep_ct_entry *v)
{
	if (!k || !v)
		return -1;
#define EP_CT_WRITE(f, p) (int)ep_ct_update_inl(k, v, f, p)
	EP_CT_DISPATCH(EP_CT_WRITE);
#undef EP_CT_WRITE
}
#endif

/* Half-open handshakes (see struct ep_syn): shared by XDP (writes on a SYN,
 * reads on the ACK) and TC (reads on the SYN-ACK), so not per-CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_SYN_SLOTS);
	__type(key, __u32);
	__type(value, struct ep_syn);
} ep_syn SEC(".maps");

/* The two slots of a flow's record: the low bits of its hash, and bits
 * 16 and up (independent of them in a jhash). */
static __always_inline struct ep_syn *ep_syn_slot(__u32 flow_hash)
{
	__u32 idx = flow_hash & (EP_SYN_SLOTS - 1);

	return bpf_map_lookup_elem(&ep_syn, &idx);
}

static __always_inline struct ep_syn *ep_syn_slot2(__u32 flow_hash)
{
	__u32 idx = (flow_hash >> 16) & (EP_SYN_SLOTS - 1);

	return bpf_map_lookup_elem(&ep_syn, &idx);
}

/* Writes a record field by field: stores only, never a load of its line
 * (a struct copy would read it back). */
static __always_inline void ep_syn_put(struct ep_syn *r, __u32 sig, __u32 backend_id, __u32 isn,
				       __u32 now_s)
{
	r->sig = sig;
	r->backend_id = backend_id;
	r->isn = isn;
	r->last_seen_s = now_s;
}

/* The flow's handshake record: a copy with its signature, or NULL. Every
 * SYN writes both copies, so either is the latest. */
static __always_inline struct ep_syn *ep_syn_find(__u32 flow_hash, __u32 sig)
{
	struct ep_syn *r = ep_syn_slot(flow_hash);

	if (r && r->sig == sig)
		return r;
	r = ep_syn_slot2(flow_hash);
	return r && r->sig == sig ? r : NULL;
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
