#include "services.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conntrack.h"
#include "ep_hash.h"
#include "log.h"
#include "map_prune.h"
#include "maglev.h"
#include "util.h"

#define BIT_GET(bm, i) ((bm)[(i) / 8] & (1u << ((i) % 8)))
#define BIT_SET(bm, i) ((bm)[(i) / 8] |= (uint8_t)(1u << ((i) % 8)))
#define BIT_CLR(bm, i) ((bm)[(i) / 8] &= (uint8_t) ~(1u << ((i) % 8)))

static uint32_t alloc_id(uint8_t *bm, uint32_t max, uint32_t first)
{
	for (uint32_t i = first; i < max; i++) {
		if (!BIT_GET(bm, i)) {
			BIT_SET(bm, i);
			return i;
		}
	}
	return UINT32_MAX;
}

static void endpoint_key(struct ep_endpoint *k, const struct ep_ip *ip, uint16_t port,
			 uint8_t proto)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->addr, ip->addr, sizeof(k->addr));
	k->port = htons(port);
	k->proto = proto;
	k->family = ip->family;
}

int ep_services_init(struct ep_services *s, const struct ep_map_fds *maps)
{
	memset(s, 0, sizeof(*s));
	/* A zero fd is stdin, never a map: catches a caller that forgot one. */
	if (maps->vips <= 0 || maps->vip_filter <= 0 || maps->services <= 0 || maps->maglev <= 0 ||
	    maps->backends <= 0 || maps->backend_rev <= 0 || maps->ct.v4 <= 0 || maps->ct.v6 <= 0 ||
	    maps->ct.u4 <= 0 || maps->ct.u6 <= 0 ||
	    maps->backend_stats <= 0)
		return -EBADF;
	s->maps = maps;
	s->svc_ids = calloc(EP_MAX_SERVICES / 8, 1);
	s->be_ids = calloc(EP_MAX_BACKENDS / 8, 1);
	if (!s->svc_ids || !s->be_ids) {
		free(s->svc_ids);
		free(s->be_ids);
		return -ENOMEM;
	}
	BIT_SET(s->be_ids, 0); /* 0 marks an empty Maglev slot */
	return 0;
}

static void be_label(struct ep_be_state *b)
{
	ep_endpoint_str(&b->addr, b->port, b->label, sizeof(b->label));
}

static struct ep_be_state *push_be(struct ep_be_state **arr, size_t *n)
{
	struct ep_be_state *na = realloc(*arr, (*n + 1) * sizeof(**arr));

	if (!na)
		return NULL;
	*arr = na;
	memset(&na[*n], 0, sizeof(na[*n]));
	return &na[(*n)++];
}

static struct ep_svc_state *push_svc(struct ep_services *s)
{
	struct ep_svc_state *na = realloc(s->svcs, (s->n_svcs + 1) * sizeof(*na));

	if (!na)
		return NULL;
	s->svcs = na;
	memset(&na[s->n_svcs], 0, sizeof(na[s->n_svcs]));
	return &na[s->n_svcs++];
}

static struct ep_svc_state *find_by_key(struct ep_services *s, const struct ep_endpoint *k)
{
	for (size_t i = 0; i < s->n_svcs; i++)
		if (!memcmp(&s->svcs[i].key, k, sizeof(*k)))
			return &s->svcs[i];
	return NULL;
}

static struct ep_svc_state *find_by_id(struct ep_services *s, uint32_t id)
{
	for (size_t i = 0; i < s->n_svcs; i++)
		if (s->svcs[i].id == id)
			return &s->svcs[i];
	return NULL;
}

const struct ep_svc_state *ep_services_find(const struct ep_services *s, const char *name)
{
	for (size_t i = 0; i < s->n_svcs; i++)
		if (!strcmp(s->svcs[i].name, name))
			return &s->svcs[i];
	return NULL;
}

static int clear_backend(struct ep_services *s, uint32_t id);

/* ---- recovery from pinned maps ------------------------------------------ */

int ep_services_recover(struct ep_services *s)
{
	struct ep_endpoint key, *prev = NULL;
	struct ep_service val;
	size_t n_be = 0;

	while (bpf_map_get_next_key(s->maps->services, prev, &key) == 0) {
		struct ep_svc_state *st;

		prev = &key;
		if (bpf_map_lookup_elem(s->maps->services, &key, &val) || val.id >= EP_MAX_SERVICES)
			continue;
		st = push_svc(s);
		if (!st)
			return -ENOMEM;
		st->key = key;
		st->id = val.id;
		st->vip.family = key.family;
		memcpy(st->vip.addr, key.addr, sizeof(key.addr));
		st->port = ntohs(key.port);
		st->proto = key.proto;
		st->canary_bp = val.canary_bp;
		st->sticky_flow = val.flags & EP_SVC_F_STICKY_FLOW;
		/* Names are not in the maps; the config names them on apply. */
		snprintf(st->name, sizeof(st->name), "svc-%u", val.id);
		BIT_SET(s->svc_ids, val.id);
	}

	for (uint32_t id = 1; id < EP_MAX_BACKENDS; id++) {
		struct ep_backend be;
		struct ep_svc_state *st;
		struct ep_be_state *b;

		if (bpf_map_lookup_elem(s->maps->backends, &id, &be) || !(be.flags & EP_BE_F_VALID))
			continue;
		st = find_by_id(s, be.svc_id);
		if (!st) {
			/* Its service is gone (removed while we were down): so are its flows. */
			clear_backend(s, id);
			continue;
		}
		b = push_be(&st->bes, &st->n_bes);
		if (!b)
			return -ENOMEM;
		b->addr.family = be.family;
		memcpy(b->addr.addr, be.addr, sizeof(be.addr));
		b->port = ntohs(be.port);
		b->id = id;
		b->canary = be.flags & EP_BE_F_CANARY;
		b->drained = be.flags & EP_BE_F_DRAIN;
		b->removed = be.flags & EP_BE_F_REMOVED;
		b->weight = 0; /* the config says; until then nothing new goes there */
		be_label(b);
		BIT_SET(s->be_ids, id);
		n_be++;
	}
	if (s->n_svcs || n_be)
		log_info("recovered %zu services and %zu backends from the pinned datapath", s->n_svcs,
			 n_be);
	return 0;
}

/* ---- map writers -------------------------------------------------------- */

static int write_backend(struct ep_services *s, const struct ep_svc_state *st,
			 const struct ep_be_state *b)
{
	struct ep_backend v = {};

	memcpy(v.addr, b->addr.addr, sizeof(v.addr));
	v.port = htons(b->port);
	v.family = b->addr.family;
	v.svc_id = st->id;
	v.flags = EP_BE_F_VALID | (b->drained ? EP_BE_F_DRAIN : 0) |
		  (b->canary ? EP_BE_F_CANARY : 0) | (b->removed ? EP_BE_F_REMOVED : 0);
	return bpf_map_update_elem(s->maps->backends, &b->id, &v, BPF_ANY) ? -errno : 0;
}

static int clear_backend(struct ep_services *s, uint32_t id)
{
	struct ep_backend v = {};
	struct ep_backend_stats *zero;
	int ncpu = ep_ncpus();

	bpf_map_update_elem(s->maps->backends, &id, &v, BPF_ANY);
	/* A recycled id must start its counters at zero. */
	zero = calloc((size_t)ncpu, sizeof(*zero));
	if (zero) {
		bpf_map_update_elem(s->maps->backend_stats, &id, zero, BPF_ANY);
		free(zero);
	}
	return 0;
}

static bool in_ring(const struct ep_be_state *b, int ring)
{
	return !b->removed && !b->drained && b->weight > 0 &&
	       b->canary == (ring == EP_RING_CANARY);
}

/* The slots of table, packed EP_RING_CHUNK_SLOTS to an element (the tail of
 * the last chunk stays 0: no slot maps there). One batch update; one update
 * per chunk on kernels without batch support. */
static int fill_ring(int fd, const uint32_t *table, uint32_t slots)
{
	uint32_t n = EP_RING_CHUNKS(slots), count = n;
	struct ep_ring_chunk *chunks = calloc(n, sizeof(*chunks));
	__u32 *keys = malloc(n * sizeof(*keys));
	int rc = 0;

	if (!chunks || !keys) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < slots; i++)
		chunks[i / EP_RING_CHUNK_SLOTS].backend_id[i % EP_RING_CHUNK_SLOTS] = table[i];
	for (uint32_t i = 0; i < n; i++)
		keys[i] = i;
	if (bpf_map_update_batch(fd, keys, chunks, &count, NULL)) {
		for (uint32_t i = 0; i < n && !rc; i++)
			if (bpf_map_update_elem(fd, &keys[i], &chunks[i], BPF_ANY))
				rc = -errno;
	}
out:
	free(keys);
	free(chunks);
	return rc;
}

/* Builds a ring off to the side and swaps it in with one map update, so the
 * datapath sees either the old ring or the new one, never a half-built one. */
static int install_ring(struct ep_services *s, struct ep_svc_state *st, int ring, char *err,
			size_t errlen)
{
	struct ep_maglev_backend *mb;
	uint32_t idx = st->id * EP_RINGS_PER_SVC + (uint32_t)ring, *table, members = 0;
	uint64_t sig = 0x9e3779b97f4a7c15ULL ^ s->table_size;
	int inner = -1, rc = 0;

	mb = calloc(st->n_bes ? st->n_bes : 1, sizeof(*mb));
	if (!mb)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_bes; i++) {
		const struct ep_be_state *b = &st->bes[i];

		if (!in_ring(b, ring))
			continue;
		mb[members].id = b->id;
		mb[members].weight = b->weight;
		mb[members].key = ep_maglev_key(b->label);
		/* Order-independent signature of (identity, id, weight). */
		sig += ep_hash64(&mb[members], sizeof(mb[members])) * EP_FNV64_PRIME;
		members++;
	}
	if (members == 0) {
		free(mb);
		if (st->ring_members[ring] || st->ring_sig[ring])
			bpf_map_delete_elem(s->maps->maglev, &idx);
		st->ring_sig[ring] = 0;
		st->ring_members[ring] = 0;
		st->ring_size[ring] = 0;
		return 0;
	}
	if (sig == st->ring_sig[ring] && st->ring_size[ring] == s->table_size) {
		free(mb);
		return 0;
	}
	table = calloc(s->table_size, sizeof(*table));
	if (!table) {
		free(mb);
		return -ENOMEM;
	}
	rc = ep_maglev_build(mb, members, s->table_size, table);
	if (rc) {
		snprintf(err, errlen, "service %s: cannot build the Maglev table: %s", st->name,
			 strerror(-rc));
		goto out;
	}
	LIBBPF_OPTS(bpf_map_create_opts, mopts, .map_flags = BPF_F_INNER_MAP);
	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ep_ring", sizeof(__u32),
			       sizeof(struct ep_ring_chunk), EP_RING_CHUNKS(s->table_size), &mopts);
	if (inner < 0) {
		rc = -errno;
		snprintf(err, errlen, "service %s: cannot create a Maglev ring of %u slots: %s",
			 st->name, s->table_size, strerror(errno));
		goto out;
	}
	rc = fill_ring(inner, table, s->table_size);
	if (rc) {
		snprintf(err, errlen, "service %s: cannot fill the Maglev ring: %s", st->name,
			 strerror(-rc));
		goto out;
	}
	if (bpf_map_update_elem(s->maps->maglev, &idx, &inner, BPF_ANY)) {
		rc = -errno;
		snprintf(err, errlen, "service %s: cannot install the Maglev ring: %s", st->name,
			 strerror(errno));
		goto out;
	}
	st->ring_sig[ring] = sig;
	st->ring_size[ring] = s->table_size;
	st->ring_members[ring] = members;
out:
	if (inner >= 0)
		close(inner); /* the outer map holds its own reference */
	free(table);
	free(mb);
	return rc;
}

static int write_service(struct ep_services *s, const struct ep_svc_state *st)
{
	struct ep_service v = {
		.id = st->id,
		.table_size = s->table_size,
		.flags = st->sticky_flow ? EP_SVC_F_STICKY_FLOW : 0,
		.canary_bp = (__u16)ep_services_canary_share(st),
	};

	return bpf_map_update_elem(s->maps->services, &st->key, &v, BPF_ANY) ? -errno : 0;
}

uint32_t ep_services_canary_share(const struct ep_svc_state *st)
{
	/* No canary backend: no canary share, whatever the config says. */
	if (!st->ring_members[EP_RING_CANARY])
		return 0;
	return st->canary_override ? st->canary_override_bp : st->canary_bp;
}

int ep_services_set_canary(struct ep_services *s, const char *name, bool override, uint32_t bp)
{
	struct ep_svc_state *st = (struct ep_svc_state *)ep_services_find(s, name);

	if (!st)
		return -ENOENT;
	if (bp > EP_BP_MAX)
		return -EINVAL;
	st->canary_override = override;
	st->canary_override_bp = override ? bp : 0;
	return write_service(s, st);
}

/* The pre-filter's bits for the current VIPs. New bits are set before stale
 * ones are cleared (each word is one atomic update), so a VIP that stays is
 * never filtered out, not even for a moment. */
static void sync_vip_filter(struct ep_services *s)
{
	uint64_t want[EP_VIP_FILTER_WORDS] = {0};

	for (size_t i = 0; i < s->n_svcs; i++) {
		__u32 slot = ep_vip_filter_slot(s->svcs[i].vip.addr, s->svcs[i].vip.family);

		want[slot / 64] |= 1ULL << (slot % 64);
	}
	for (int pass = 0; pass < 2; pass++) {
		for (__u32 w = 0; w < EP_VIP_FILTER_WORDS; w++) {
			uint64_t cur = 0, next;

			if (bpf_map_lookup_elem(s->maps->vip_filter, &w, &cur))
				continue;
			next = pass == 0 ? (cur | want[w]) : want[w];
			if (next != cur)
				bpf_map_update_elem(s->maps->vip_filter, &w, &next, BPF_ANY);
		}
	}
}

static bool vip_keep(const void *key, void *arg)
{
	const struct ep_vip_key *k = key;
	const struct ep_services *s = arg;

	for (size_t i = 0; i < s->n_svcs; i++)
		if (s->svcs[i].vip.family == k->family &&
		    !memcmp(s->svcs[i].vip.addr, k->addr, sizeof(k->addr)))
			return true;
	return false;
}

/* VIP addresses: exactly the set of VIPs of current services. */
static void sync_vips(struct ep_services *s)
{
	struct ep_vip_key k;
	__u32 one = 1;

	ep_map_prune(s->maps->vips, sizeof(k), vip_keep, s);
	for (size_t i = 0; i < s->n_svcs; i++) {
		memset(&k, 0, sizeof(k));
		memcpy(k.addr, s->svcs[i].vip.addr, sizeof(k.addr));
		k.family = s->svcs[i].vip.family;
		bpf_map_update_elem(s->maps->vips, &k, &one, BPF_ANY);
	}
	sync_vip_filter(s);
}

/* Reverse NAT index: for every backend endpoint still known (removed ones
 * too: their flows still need replies translated), the VIP:ports it serves.
 * Built by sorting (endpoint, service) pairs, so 64k backends cost
 * n log n, not n^2; within an endpoint the VIPs keep service order. */
struct rev_pair {
	struct ep_endpoint key;
	size_t svc, be;
};

struct rev_ent {
	struct ep_endpoint key;
	struct ep_backend_rev rev;
};

struct rev_set {
	const struct rev_ent *ents;
	size_t n;
};

static int cmp_rev_pair(const void *a, const void *b)
{
	const struct rev_pair *x = a, *y = b;
	int c = memcmp(&x->key, &y->key, sizeof(x->key));

	if (c)
		return c;
	if (x->svc != y->svc)
		return x->svc < y->svc ? -1 : 1;
	return (x->be > y->be) - (x->be < y->be);
}

static int cmp_rev_ent(const void *key, const void *ent)
{
	return memcmp(key, &((const struct rev_ent *)ent)->key, sizeof(struct ep_endpoint));
}

static bool rev_keep(const void *key, void *arg)
{
	const struct rev_set *rs = arg;

	return bsearch(key, rs->ents, rs->n, sizeof(*rs->ents), cmp_rev_ent) != NULL;
}

static void sync_backend_rev(struct ep_services *s)
{
	size_t total = 0, np = 0, n = 0;
	struct rev_pair *pairs;
	struct rev_ent *ents;

	for (size_t i = 0; i < s->n_svcs; i++)
		total += s->svcs[i].n_bes;
	pairs = calloc(total ? total : 1, sizeof(*pairs));
	ents = calloc(total ? total : 1, sizeof(*ents));
	if (!pairs || !ents) {
		log_error("out of memory building the reverse NAT index");
		free(pairs);
		free(ents);
		return;
	}
	for (size_t i = 0; i < s->n_svcs; i++)
		for (size_t j = 0; j < s->svcs[i].n_bes; j++, np++) {
			endpoint_key(&pairs[np].key, &s->svcs[i].bes[j].addr, s->svcs[i].bes[j].port,
				     s->svcs[i].proto);
			pairs[np].svc = i;
			pairs[np].be = j;
		}
	qsort(pairs, np, sizeof(*pairs), cmp_rev_pair);
	for (size_t p = 0; p < np; p++) {
		const struct ep_svc_state *st = &s->svcs[pairs[p].svc];
		struct ep_backend_rev *r;
		bool dup = false;

		if (!n || memcmp(&ents[n - 1].key, &pairs[p].key, sizeof(pairs[p].key))) {
			ents[n].key = pairs[p].key;
			n++;
		}
		r = &ents[n - 1].rev;
		for (uint32_t v = 0; v < r->count; v++)
			dup |= !memcmp(r->vips[v].addr, st->key.addr, sizeof(st->key.addr)) &&
			       r->vips[v].port == st->key.port;
		if (dup)
			continue;
		if (r->count >= EP_MAX_SVCS_PER_BACKEND) {
			log_warn("backend %s serves more than %d VIP:ports; replies via %s are not translated",
				 st->bes[pairs[p].be].label, EP_MAX_SVCS_PER_BACKEND, st->name);
			continue;
		}
		memcpy(r->vips[r->count].addr, st->key.addr, sizeof(st->key.addr));
		r->vips[r->count].port = st->key.port;
		r->count++;
	}
	for (size_t e = 0; e < n; e++)
		bpf_map_update_elem(s->maps->backend_rev, &ents[e].key, &ents[e].rev, BPF_ANY);
	ep_map_prune(s->maps->backend_rev, sizeof(struct ep_endpoint), rev_keep,
		     &(struct rev_set){ents, n});
	free(pairs);
	free(ents);
}

/* ---- apply -------------------------------------------------------------- */

static int reconcile_backends(struct ep_services *s, struct ep_svc_state *st,
			      const struct ep_cfg_service *cs, char *err, size_t errlen)
{
	for (size_t j = 0; j < st->n_bes; j++)
		st->bes[j].removed = true;
	for (size_t i = 0; i < cs->n_backends; i++) {
		const struct ep_cfg_backend *cb = &cs->backends[i];
		struct ep_be_state *b = NULL;

		for (size_t j = 0; j < st->n_bes; j++)
			if (ep_ip_eq(&st->bes[j].addr, &cb->addr) && st->bes[j].port == cb->port)
				b = &st->bes[j];
		if (!b) {
			uint32_t id = alloc_id(s->be_ids, EP_MAX_BACKENDS, 1);

			if (id == UINT32_MAX) {
				snprintf(err, errlen, "service %s: no free backend id (limit %d)", cs->name,
					 EP_MAX_BACKENDS - 1);
				return -ENOSPC;
			}
			b = push_be(&st->bes, &st->n_bes);
			if (!b) {
				BIT_CLR(s->be_ids, id);
				return -ENOMEM;
			}
			b->addr = cb->addr;
			b->port = cb->port;
			b->id = id;
			be_label(b);
		}
		b->removed = false;
		b->weight = cb->weight;
		b->canary = cb->canary;
	}
	for (size_t j = 0; j < st->n_bes; j++) {
		int rc = write_backend(s, st, &st->bes[j]);

		if (rc) {
			snprintf(err, errlen, "service %s: cannot write backend %s: %s", st->name,
				 st->bes[j].label, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static void remove_service(struct ep_services *s, size_t idx)
{
	struct ep_svc_state *st = &s->svcs[idx];

	bpf_map_delete_elem(s->maps->services, &st->key);
	for (uint32_t r = 0; r < EP_RINGS_PER_SVC; r++) {
		uint32_t k = st->id * EP_RINGS_PER_SVC + r;

		bpf_map_delete_elem(s->maps->maglev, &k);
	}
	/* A removed service stops: its tracked flows go with it, and so its
	 * backends have nothing left to serve. */
	ep_ct_purge_service(&s->maps->ct, &st->key);
	for (size_t j = 0; j < st->n_bes; j++) {
		clear_backend(s, st->bes[j].id);
		BIT_CLR(s->be_ids, st->bes[j].id);
	}
	log_info("service %s removed; its tracked flows were dropped", st->name);
	BIT_CLR(s->svc_ids, st->id);
	free(st->bes);
	memmove(&s->svcs[idx], &s->svcs[idx + 1], (s->n_svcs - idx - 1) * sizeof(*st));
	s->n_svcs--;
}

int ep_services_apply(struct ep_services *s, const struct ep_config *cfg, char *err, size_t errlen)
{
	int rc = 0;

	s->table_size = cfg->datapath.maglev_table_size;
	for (size_t i = 0; i < s->n_svcs; i++)
		s->svcs[i].seen = false;

	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct ep_cfg_service *cs = &cfg->services[i];
		struct ep_endpoint key;
		struct ep_svc_state *st;
		bool fresh = false;

		endpoint_key(&key, &cs->vip, cs->port, cs->proto);
		st = find_by_key(s, &key);
		if (!st) {
			uint32_t id = alloc_id(s->svc_ids, EP_MAX_SERVICES, 0);

			if (id == UINT32_MAX) {
				snprintf(err, errlen, "services[%zu]: no free service id (limit %d)", i,
					 EP_MAX_SERVICES);
				return -ENOSPC;
			}
			st = push_svc(s);
			if (!st) {
				BIT_CLR(s->svc_ids, id);
				return -ENOMEM;
			}
			st->key = key;
			st->id = id;
			st->vip = cs->vip;
			st->port = cs->port;
			st->proto = cs->proto;
			fresh = true;
		}
		snprintf(st->name, sizeof(st->name), "%s", cs->name);
		st->canary_bp = cs->canary.percent_bp;
		st->sticky_flow = cs->canary.sticky_flow;
		st->seen = true;

		rc = reconcile_backends(s, st, cs, err, errlen);
		for (int r = 0; !rc && r < EP_RINGS_PER_SVC; r++)
			rc = install_ring(s, st, r, err, errlen);
		if (!rc && (rc = write_service(s, st)))
			snprintf(err, errlen, "service %s: cannot write the service entry: %s", st->name,
				 strerror(-rc));
		if (rc)
			return rc;
		if (fresh)
			log_info("service %s added: %zu backends", st->name, cs->n_backends);
	}
	for (size_t i = s->n_svcs; i-- > 0;)
		if (!s->svcs[i].seen)
			remove_service(s, i);
	sync_vips(s);
	sync_backend_rev(s);
	return 0;
}

int ep_services_drain(struct ep_services *s, const char *svc, const char *backend, bool drain,
		      char *err, size_t errlen)
{
	struct ep_svc_state *st = (struct ep_svc_state *)ep_services_find(s, svc);
	struct ep_ip ip;
	uint16_t port;

	if (!st) {
		snprintf(err, errlen, "no service named '%s'", svc);
		return -ENOENT;
	}
	if (ep_endpoint_parse(backend, &ip, &port)) {
		snprintf(err, errlen, "'%s' is not ADDR:PORT (IPv6 as [ADDR]:PORT)", backend);
		return -EINVAL;
	}
	for (size_t j = 0; j < st->n_bes; j++) {
		struct ep_be_state *b = &st->bes[j];
		int rc;

		if (b->removed || !ep_ip_eq(&b->addr, &ip) || b->port != port)
			continue;
		b->drained = drain;
		rc = write_backend(s, st, b);
		for (int r = 0; !rc && r < EP_RINGS_PER_SVC; r++)
			rc = install_ring(s, st, r, err, errlen);
		if (!rc)
			rc = write_service(s, st);
		if (!rc)
			log_info("backend %s of service %s %s", b->label, st->name,
				 drain ? "drained: no new flows, existing flows continue" : "undrained");
		return rc;
	}
	snprintf(err, errlen, "service '%s' has no backend %s", svc, backend);
	return -ENOENT;
}

void ep_services_release_unreferenced(struct ep_services *s, const uint8_t *ref_bitmap)
{
	bool changed = false;

	for (size_t i = 0; i < s->n_svcs; i++) {
		struct ep_svc_state *st = &s->svcs[i];
		size_t w = 0;

		for (size_t j = 0; j < st->n_bes; j++) {
			struct ep_be_state *b = &st->bes[j];

			if (b->removed && !BIT_GET(ref_bitmap, b->id)) {
				log_info("backend %s of service %s has no flows left: released", b->label,
					 st->name);
				clear_backend(s, b->id);
				BIT_CLR(s->be_ids, b->id);
				changed = true;
				continue;
			}
			st->bes[w++] = *b;
		}
		st->n_bes = w;
	}
	if (changed)
		sync_backend_rev(s);
}

void ep_services_free(struct ep_services *s)
{
	for (size_t i = 0; i < s->n_svcs; i++)
		free(s->svcs[i].bes);
	free(s->svcs);
	free(s->svc_ids);
	free(s->be_ids);
	memset(s, 0, sizeof(*s));
}
