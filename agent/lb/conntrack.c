#include "conntrack.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ep_hash.h"

int ep_ncpus(void)
{
	static int n;

	if (!n) {
		n = libbpf_num_possible_cpus();
		if (n < 1)
			n = 1;
	}
	return n;
}

typedef int (*ct_visit_fn)(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg);

/* An IPv4 key carries no protocol: it is the table's. */
static void key_from4(struct ep_flow_key *k, const struct ep_flow_key4 *k4, __u8 proto)
{
	memset(k, 0, sizeof(*k));
	k->src[0] = k4->src;
	k->dst[0] = k4->dst;
	k->sport = k4->sport;
	k->dport = k4->dport;
	k->proto = proto;
	k->family = EP_FAMILY_V4;
}

/* A conntrack table mapped into this process: the agent is one more writer
 * and follows the slots' protocol (struct ep_ct_slot4 in the ABI header). */
struct ct_table {
	unsigned char *mem;
	size_t len;
	__u32 n_buckets, seed, bucket_size, slot_size;
	int family;
};

/* Mapping a table costs what the table does (the kernel maps every page of
 * it at mmap: 4 ms for the default tables, 60 ms at 4M flows), so each table
 * is mapped once and kept, found again by its map id. A table replaced
 * (a new id) gets a new mapping; the oldest goes when all are taken. The
 * agent calls conntrack from its loop thread only; the lock is for tests
 * and tools that might not. */
#define CT_MAPPINGS 8

static struct {
	__u32 id;
	void *mem;
	size_t len;
} mappings[CT_MAPPINGS];
static unsigned next_mapping;
static pthread_mutex_t mappings_lock = PTHREAD_MUTEX_INITIALIZER;

static void *ct_mmap(int fd, __u32 id, size_t len)
{
	void *mem = NULL;
	unsigned i;

	pthread_mutex_lock(&mappings_lock);
	for (i = 0; i < CT_MAPPINGS; i++)
		if (mappings[i].mem && mappings[i].id == id && mappings[i].len == len) {
			mem = mappings[i].mem;
			goto out;
		}
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		mem = NULL;
		goto out;
	}
	i = next_mapping++ % CT_MAPPINGS;
	if (mappings[i].mem)
		munmap(mappings[i].mem, mappings[i].len);
	mappings[i].id = id;
	mappings[i].mem = mem;
	mappings[i].len = len;
out:
	pthread_mutex_unlock(&mappings_lock);
	return mem;
}

/* A map's values as mmap sees them: whole pages. */
static size_t map_pages(__u32 entries, size_t value_size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return ((size_t)entries * value_size + page - 1) / page * page;
}

/* Sets bucket b's bit in a table's bitmap, as BPF does (ep_ct_mark_used). */
static void used_mark(__u64 *bits, __u32 b)
{
	__atomic_fetch_or(&bits[b / 64], 1ULL << (b % 64), __ATOMIC_SEQ_CST);
}

static int ct_table_map(int fd, int family, struct ct_table *t)
{
	size_t bsz = family == EP_FAMILY_V4 ? sizeof(struct ep_ct_bucket4)
					    : sizeof(struct ep_ct_bucket6);
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);

	memset(t, 0, sizeof(*t));
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return -errno;
	/* A table of another layout (an older build's LRU map) is not ours to
	 * read. */
	if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4 || info.value_size != bsz ||
	    !(info.map_flags & BPF_F_MMAPABLE) || !info.max_entries)
		return -EINVAL;
	t->len = map_pages(info.max_entries, bsz);
	t->mem = ct_mmap(fd, info.id, t->len);
	if (!t->mem)
		return -errno;
	t->n_buckets = info.max_entries;
	t->seed = info.id;
	t->bucket_size = (__u32)bsz;
	t->slot_size = family == EP_FAMILY_V4 ? sizeof(struct ep_ct_slot4) : sizeof(struct ep_ct_slot6);
	t->family = family;
	return 0;
}

static __u64 *slot_seq(unsigned char *slot)
{
	return (__u64 *)slot;
}

static struct ep_ct_entry *slot_entry(const struct ct_table *t, unsigned char *slot)
{
	return t->family == EP_FAMILY_V4 ? &((struct ep_ct_slot4 *)slot)->v
					 : &((struct ep_ct_slot6 *)slot)->v;
}

static bool slot_free(const struct ct_table *t, const unsigned char *slot)
{
	return t->family == EP_FAMILY_V4 ? ((const struct ep_ct_slot4 *)slot)->key.dst == 0
					 : ((const struct ep_ct_slot6 *)slot)->key.family == 0;
}

/* The slot's key in the IPv6 layout. */
static void slot_key(const struct ct_table *t, const unsigned char *slot, __u8 proto,
		     struct ep_flow_key *k)
{
	if (t->family == EP_FAMILY_V4)
		key_from4(k, &((const struct ep_ct_slot4 *)slot)->key, proto);
	else
		memcpy(k, &((const struct ep_ct_slot6 *)slot)->key, sizeof(*k));
}

/* A consistent copy of a slot (key and entry) taken between two reads of
 * an even, unchanged seq; false for a slot being written or free. */
static bool slot_read(const struct ct_table *t, unsigned char *slot, __u8 proto,
		      struct ep_flow_key *k, struct ep_ct_entry *v, __u64 *seq)
{
	__u64 s1 = __atomic_load_n(slot_seq(slot), __ATOMIC_ACQUIRE);

	if (s1 & 1)
		return false;
	bool used = !slot_free(t, slot);

	slot_key(t, slot, proto, k);
	memcpy(v, slot_entry(t, slot), sizeof(*v));
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(slot_seq(slot), __ATOMIC_RELAXED) != s1)
		return false;
	*seq = s1;
	return used;
}

/* Frees a slot if it still holds what was read at seq. */
static bool slot_delete(const struct ct_table *t, unsigned char *slot, __u64 seq)
{
	__u64 want = seq;

	if (!__atomic_compare_exchange_n(slot_seq(slot), &want, seq + 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return false;
	if (t->family == EP_FAMILY_V4)
		memset(&((struct ep_ct_slot4 *)slot)->key, 0, sizeof(struct ep_flow_key4));
	else
		memset(&((struct ep_ct_slot6 *)slot)->key, 0, sizeof(struct ep_flow_key));
	__atomic_store_n(slot_seq(slot), seq + 2, __ATOMIC_RELEASE);
	return true;
}

/* ep_ct_used mapped into this process (NULL words: none, every pass is a
 * full one). */
struct ct_used {
	__u64 *words;
	size_t len;
};

static void ct_used_map(int fd, struct ct_used *u)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);

	memset(u, 0, sizeof(*u));
	if (fd <= 0 || bpf_obj_get_info_by_fd(fd, &info, &ilen) ||
	    info.type != BPF_MAP_TYPE_ARRAY || info.value_size != sizeof(__u64) ||
	    info.max_entries != 4 * EP_CT_USED_WORDS || !(info.map_flags & BPF_F_MMAPABLE))
		return;
	u->len = map_pages(info.max_entries, sizeof(__u64));
	u->words = ct_mmap(fd, info.id, u->len);
}

struct walk {
	ct_visit_fn fn;
	void *arg;
	uint64_t *scanned, *buckets;
	long deleted;
};

/* One bucket: every flow to the callback; returns how many slots still
 * hold a flow or are being written. */
static int walk_bucket(const struct ct_table *t, __u32 b, __u8 proto, struct walk *w)
{
	unsigned char *bucket = t->mem + (size_t)b * t->bucket_size;
	int live = 0;

	if (w->buckets)
		(*w->buckets)++;
	for (int i = 0; i < EP_CT_WAYS; i++) {
		unsigned char *slot = bucket + (size_t)i * t->slot_size;
		struct ep_flow_key k;
		struct ep_ct_entry v;
		__u64 seq;

		if (!slot_read(t, slot, proto, &k, &v, &seq)) {
			/* free, or a writer owns it: then it may be a flow */
			live += !slot_free(t, slot) || (__atomic_load_n(slot_seq(slot), __ATOMIC_RELAXED) & 1);
			continue;
		}
		if (w->scanned)
			(*w->scanned)++;
		if (w->fn(&k, &v, w->arg) && slot_delete(t, slot, seq)) {
			w->deleted++;
			continue;
		}
		live++;
	}
	return live;
}

/* Visits every flow of a table; the callback sees every key in the IPv6
 * layout and says whether to delete it. With a bitmap (u) and !full, only
 * buckets whose bit is set: each bit is cleared before its bucket is read
 * and set again if the bucket still holds a flow, so a flow recorded
 * meanwhile (its writer sets the bit after recording it) is never left
 * without one. A full pass reads every bucket and sets the bits of those
 * that hold flows (what the agent does first at every start). Returns how
 * many flows were deleted, or -errno. */
static long ct_walk(int fd, int family, __u8 proto, const struct ct_used *u, int table_no,
		    bool full, struct walk *w)
{
	__u64 *bits = u && u->words ? u->words + (size_t)table_no * EP_CT_USED_WORDS : NULL;
	struct ct_table t;
	int rc = ct_table_map(fd, family, &t);

	if (rc)
		return rc;
	w->deleted = 0;
	if (!bits || full) {
		for (__u32 b = 0; b < t.n_buckets; b++)
			if (walk_bucket(&t, b, proto, w) && bits && b / 64 < EP_CT_USED_WORDS)
				used_mark(bits, b);
	} else {
		__u32 nw = (t.n_buckets + 63) / 64;

		for (__u32 i = 0; i < nw && i < EP_CT_USED_WORDS; i++) {
			__u64 word = __atomic_load_n(&bits[i], __ATOMIC_RELAXED);

			while (word) {
				int bit = __builtin_ctzll(word);
				__u32 b = i * 64 + (__u32)bit;
				__u64 mask = 1ULL << bit;

				word &= word - 1;
				__atomic_fetch_and(&bits[i], ~mask, __ATOMIC_SEQ_CST);
				if (b < t.n_buckets && walk_bucket(&t, b, proto, w))
					__atomic_fetch_or(&bits[i], mask, __ATOMIC_SEQ_CST);
			}
		}
	}
	return w->deleted;
}

/* A full pass over one table without a bitmap (purges, counting: rare,
 * and right even before the first GC pass has set the bits). */
static long ct_walk_all(int fd, int family, __u8 proto, ct_visit_fn fn, void *arg)
{
	struct walk w = {.fn = fn, .arg = arg};

	return ct_walk(fd, family, proto, NULL, 0, true, &w);
}

static int ct_fd(const struct ep_ct_fds *ct, int family, int proto)
{
	if (proto == IPPROTO_UDP)
		return family == EP_FAMILY_V4 ? ct->u4 : ct->u6;
	return family == EP_FAMILY_V4 ? ct->v4 : ct->v6;
}

/* The slot of k in its table, as BPF finds it (ep_ct_find): k's own, or
 * with `for_insert` where k would go (a free slot, else the least recently
 * seen). */
static unsigned char *ct_slot_of(const struct ct_table *t, const struct ep_flow_key *k,
				 bool for_insert, __u32 *bucket_no)
{
	unsigned char *bucket, *pick = NULL;
	uint64_t best = UINT64_MAX;
	__u32 h;

	h = t->family == EP_FAMILY_V4 ? ep_ct_hash4w(k->src[0], k->dst[0], k->sport, k->dport)
				       : ep_ct_hash6(k);
	*bucket_no = ep_ct_index(h, t->seed, t->n_buckets);
	bucket = t->mem + (size_t)*bucket_no * t->bucket_size;
	for (int w = 0; w < EP_CT_WAYS; w++) {
		unsigned char *slot = bucket + (size_t)w * t->slot_size;
		struct ep_flow_key sk;
		uint64_t score = 0;

		if (!slot_free(t, slot)) {
			slot_key(t, slot, k->proto, &sk);
			if (!memcmp(&sk, k, sizeof(sk)))
				return slot;
			score = (uint64_t)slot_entry(t, slot)->last_seen_s + 1;
		}
		if (score < best) {
			best = score;
			pick = slot;
		}
	}
	return for_insert ? pick : NULL;
}

int ep_ct_get(const struct ep_ct_fds *ct, const struct ep_flow_key *k, struct ep_ct_entry *out)
{
	struct ct_table t;
	int rc = ct_table_map(ct_fd(ct, k->family, k->proto), k->family, &t);
	unsigned char *slot;
	__u32 b;

	if (rc)
		return rc;
	slot = ct_slot_of(&t, k, false, &b);
	rc = -ENOENT;
	/* A slot being written is read again (bounded: a writer holds it for
	 * nanoseconds). */
	for (int tries = 0; slot && tries < 1000; tries++) {
		struct ep_flow_key sk;
		__u64 seq;

		if (slot_read(&t, slot, k->proto, &sk, out, &seq)) {
			rc = memcmp(&sk, k, sizeof(sk)) ? -ENOENT : 0;
			break;
		}
		rc = -EBUSY;
	}
	return rc;
}

int ep_ct_put(const struct ep_ct_fds *ct, const struct ep_flow_key *k,
	      const struct ep_ct_entry *v)
{
	struct ct_table t;
	int rc = ct_table_map(ct_fd(ct, k->family, k->proto), k->family, &t);
	unsigned char *slot;
	struct ct_used used;
	__u64 seq;
	__u32 b;

	if (rc)
		return rc;
	slot = ct_slot_of(&t, k, true, &b);
	seq = __atomic_load_n(slot_seq(slot), __ATOMIC_ACQUIRE);
	rc = -EBUSY;
	if (!(seq & 1) && __atomic_compare_exchange_n(slot_seq(slot), &seq, seq + 1, false,
						      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
		/* the entry before the key, as BPF writes it */
		memcpy(slot_entry(&t, slot), v, sizeof(*v));
		if (t.family == EP_FAMILY_V4) {
			struct ep_flow_key4 k4 = {
				.src = k->src[0], .dst = k->dst[0], .sport = k->sport, .dport = k->dport,
			};

			memcpy(&((struct ep_ct_slot4 *)slot)->key, &k4, sizeof(k4));
		} else {
			memcpy(&((struct ep_ct_slot6 *)slot)->key, k, sizeof(*k));
		}
		__atomic_store_n(slot_seq(slot), seq + 2, __ATOMIC_RELEASE);
		/* the bucket's mark, as BPF sets it (ep_ct_mark_used) */
		ct_used_map(ct->used, &used);
		if (used.words)
			used_mark(used.words + (size_t)EP_CT_TABLE_NO(k->family,
								      k->proto == IPPROTO_UDP) *
						       EP_CT_USED_WORDS,
				  b);
		rc = 0;
	}
	return rc;
}

/* The conntrack maps, each with the family and protocol of its flows. An
 * older object without UDP maps (make bench's baseline) hands the TCP ones
 * twice: they are listed once. */
struct ct_map {
	int fd, family;
	__u8 proto;
	int table_no; /* its bitmap in ep_ct_used */
};

static size_t ct_maps(const struct ep_ct_fds *ct, struct ct_map out[4])
{
	const struct ct_map all[4] = {
		{ct->v4, EP_FAMILY_V4, IPPROTO_TCP, EP_CT_TABLE_CT4},
		{ct->u4, EP_FAMILY_V4, IPPROTO_UDP, EP_CT_TABLE_CTU4},
		{ct->v6, EP_FAMILY_V6, IPPROTO_TCP, EP_CT_TABLE_CT6},
		{ct->u6, EP_FAMILY_V6, IPPROTO_UDP, EP_CT_TABLE_CTU6},
	};
	size_t n = 0;

	for (size_t i = 0; i < 4; i++)
		if (!(i % 2 && all[i].fd == all[i - 1].fd))
			out[n++] = all[i];
	return n;
}

struct gc_arg {
	uint32_t now, tcp_s, udp_s;
	uint8_t *refs;
	uint64_t kept;
};

static int gc_visit(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg)
{
	struct gc_arg *a = arg;
	uint32_t limit = k->proto == IPPROTO_TCP ? a->tcp_s : a->udp_s;

	if (v->flags & EP_CT_F_CLOSING)
		limit = EP_CT_CLOSING_TIMEOUT_S;

	/* Unsigned difference: correct across the (theoretical) wrap. */
	if (a->now - v->last_seen_s > limit && a->now - v->last_seen_s < (1u << 31))
		return 1;
	if (a->refs && v->backend_id < EP_MAX_BACKENDS)
		a->refs[v->backend_id / 8] |= (uint8_t)(1u << (v->backend_id % 8));
	a->kept++;
	return 0;
}

int ep_ct_gc(const struct ep_ct_fds *ct, uint32_t now_s, uint32_t tcp_timeout_s,
	     uint32_t udp_timeout_s, uint8_t *refs, bool full, struct ep_ct_gc_result *res)
{
	struct gc_arg a = {
		.now = now_s,
		.tcp_s = tcp_timeout_s,
		.udp_s = udp_timeout_s,
		.refs = refs,
	};
	struct ct_map maps[4];
	size_t n = ct_maps(ct, maps);
	struct ct_used used;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	ct_used_map(ct->used, &used);
	res->full = full || !used.words;
	for (size_t i = 0; i < n; i++) {
		struct walk w = {.fn = gc_visit, .arg = &a, .scanned = &res->scanned,
				 .buckets = &res->buckets};
		uint64_t kept = a.kept;
		long d;

		d = ct_walk(maps[i].fd, maps[i].family, maps[i].proto, &used, maps[i].table_no, full,
			    &w);
		if (d < 0) {
			rc = (int)d;
			break;
		}
		res->expired += (uint64_t)d;
		if (maps[i].family == EP_FAMILY_V4)
			res->entries4 += a.kept - kept;
		else
			res->entries6 += a.kept - kept;
	}
	res->entries = a.kept;
	return rc;
}

static int purge_visit(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg)
{
	const struct ep_endpoint *svc = arg;

	(void)v;
	return k->family == svc->family && k->proto == svc->proto && k->dport == svc->port &&
	       !memcmp(k->dst, svc->addr, sizeof(k->dst));
}

long ep_ct_purge_service(const struct ep_ct_fds *ct, const struct ep_endpoint *svc)
{
	return ct_walk_all(ct_fd(ct, svc->family, svc->proto), svc->family, svc->proto,
			   purge_visit, (void *)svc);
}

static int purge_be_visit(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg)
{
	const uint8_t *ids = arg;

	(void)k;
	return v->backend_id < EP_MAX_BACKENDS &&
	       (ids[v->backend_id / 8] & (1u << (v->backend_id % 8)));
}

long ep_ct_purge_backends(const struct ep_ct_fds *ct, const uint8_t *ids)
{
	struct ct_map maps[4];
	size_t n = ct_maps(ct, maps);
	long deleted = 0;

	for (size_t i = 0; i < n; i++) {
		long d = ct_walk_all(maps[i].fd, maps[i].family, maps[i].proto, purge_be_visit,
				     (void *)ids);

		if (d < 0)
			return d;
		deleted += d;
	}
	return deleted;
}

static int count_visit(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg)
{
	(void)k;
	(void)v;
	(*(uint64_t *)arg)++;
	return 0;
}

long ep_ct_count(const struct ep_ct_fds *ct, int family, int proto)
{
	struct ct_map maps[4];
	size_t n = ct_maps(ct, maps);
	uint64_t count = 0;

	for (size_t i = 0; i < n; i++) {
		if ((family && maps[i].family != family) || (proto && maps[i].proto != proto))
			continue;
		long rc = ct_walk_all(maps[i].fd, maps[i].family, maps[i].proto, count_visit, &count);

		if (rc < 0)
			return rc;
	}
	return (long)count;
}
