/*
 * DNS failover's datapath side: everything that touches the pinned maps and
 * the sample ring. It programs ep_dns_upstreams and ep_dns_config, reads the
 * per-CPU counters, finds timeouts in the pending-query map, keeps ep_dns_snap
 * in step with the cache's trusted snapshot and decodes sampled suspicious
 * answers. Kept apart so the map layouts (edgeplane_abi.h) and libbpf calls
 * sit in one place and dns_failover.c reads as the policy; the map write left
 * there is the mode switch, next to the decision it applies.
 */
#include "dns_failover_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conntrack.h"
#include "dns_cache.h"
#include "ep_hash.h"
#include "log.h"
#include "map_prune.h"
#include "snapshot.h"
#include "stats.h"
#include "util.h"

/* How long after its timeout a query is remembered, so its answer still
 * reads as late rather than as spoofed. */
#define PENDING_LATE_NS (10ULL * 1000000000ULL)
#define SAMPLE_EVERY 16
#define SO_NETNS_COOKIE_ 71

/* ---- datapath plumbing ------------------------------------------------ */

static void upstream_key(struct ep_dns_upstream_key *k, const struct ep_ip *ip)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->addr, ip->addr, sizeof(k->addr));
	k->family = ip->family;
}

static bool upstream_keep(const void *key, void *arg)
{
	const struct ep_dns_failover *f = arg;
	struct ep_dns_upstream_key k;

	for (size_t i = 0; i < f->n; i++) {
		upstream_key(&k, &f->up[i].addr);
		if (!memcmp(&k, key, sizeof(k)))
			return true;
	}
	return false;
}

int ep_dnsf_write_upstreams(struct ep_dns_failover *f)
{
	struct ep_dns_upstream_key k;

	for (size_t i = 0; i < f->n; i++) {
		struct ep_dns_upstream v = {.idx = (__u32)i, .flags = f->up[i].flags};

		upstream_key(&k, &f->up[i].addr);
		if (bpf_map_update_elem(f->m.upstreams, &k, &v, BPF_ANY))
			return -errno;
	}
	/* Upstreams that left the config stop being observed. */
	ep_map_prune(f->m.upstreams, sizeof(k), upstream_keep, f);
	return 0;
}

static uint64_t netns_cookie(void)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd >= 0) {
		if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE_, &cookie, &len))
			cookie = 0;
		close(fd);
	}
	return cookie;
}

int ep_dnsf_write_config(struct ep_dns_failover *f, bool keep_mode)
{
	struct ep_dns_config c = {};
	__u32 zero = 0;

	if (keep_mode)
		bpf_map_lookup_elem(f->m.config, &zero, &c);
	c.mode = f->gate.applied ? EP_DNS_MODE_CACHE : EP_DNS_MODE_UPSTREAM;
	c.cache_family4 = c.cache_family6 = 0;
	for (int k = 0; f->cfg.cache.enabled && k < 2; k++) {
		const struct ep_ip *l = k ? &f->cfg.cache.listen6 : &f->cfg.cache.listen;

		if (l->family == EP_FAMILY_V4) {
			c.cache_family4 = 1;
			c.cache_addr4 = l->addr[0];
		} else if (l->family == EP_FAMILY_V6) {
			c.cache_family6 = 1;
			memcpy(c.cache_addr6, l->addr, 16);
		}
	}
	c.sample_every = SAMPLE_EVERY;
	/* An older agent kept its pid here; nothing reads it any more. */
	c.reserved0 = 0;
	c.netns_cookie = netns_cookie();
	return bpf_map_update_elem(f->m.config, &zero, &c, BPF_ANY) ? -errno : 0;
}

bool ep_dnsf_datapath_in_cache_mode(struct ep_dns_failover *f)
{
	struct ep_dns_config c = {};
	__u32 zero = 0;

	return bpf_map_lookup_elem(f->m.config, &zero, &c) == 0 && c.mode == EP_DNS_MODE_CACHE;
}

/* Does the (pinned) upstream map say slot idx belongs to addr? */
bool ep_dnsf_pinned_slot_is(struct ep_dns_failover *f, uint32_t idx, const struct ep_ip *addr)
{
	struct ep_dns_upstream_key k, next, *prev = NULL, want;
	struct ep_dns_upstream v;

	upstream_key(&want, addr);
	while (bpf_map_get_next_key(f->m.upstreams, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (!bpf_map_lookup_elem(f->m.upstreams, &k, &v) && v.idx == idx)
			return !memcmp(&k, &want, sizeof(k));
	}
	return false;
}

void ep_dnsf_zero_datapath_stats(struct ep_dns_failover *f, uint32_t idx)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ep_dns_stats *zero;

	if (ncpu <= 0 || !(zero = calloc((size_t)ncpu, sizeof(*zero))))
		return;
	if (bpf_map_update_elem(f->m.stats, &idx, zero, BPF_ANY))
		log_warn("DNS: cannot reset the counters of upstream slot %u: %s", idx, strerror(errno));
	free(zero);
	{
		struct ep_dns_hdr_stats *hz = calloc((size_t)ncpu, sizeof(*hz));

		if (hz && f->m.hstats > 0)
			bpf_map_update_elem(f->m.hstats, &idx, hz, BPF_ANY);
		free(hz);
	}
}

/* Datapath counters since the last read, into the current slot. */
void ep_dnsf_read_datapath(struct ep_dns_failover *f)
{
	for (size_t i = 0; i < f->n; i++) {
		struct upstream_state *u = &f->up[i];
		struct ep_dns_window *w = &u->slots[f->cur];
		struct ep_dns_stats s;
		__u32 idx = (__u32)i;

		ep_stats_percpu_sum(f->m.stats, &idx, &s, sizeof(s));
		if (u->have_last) {
			w->queries += s.queries - u->last.queries;
			w->answers += s.answers - u->last.answers;
			w->unmatched += s.unmatched - u->last.unmatched;
			w->divergent += s.divergent - u->last.divergent;
			w->servfail += s.rcode[2] - u->last.rcode[2];
			w->refused += s.rcode[5] - u->last.rcode[5];
			w->late += s.late - u->last.late;
			{
				uint64_t lat[EP_DNS_LAT_BUCKETS];

				for (int b = 0; b < EP_DNS_LAT_BUCKETS; b++)
					lat[b] = s.lat[b] - u->last.lat[b];
				ep_dns_rto_from_histogram(&u->rto, lat, s.lat_sum_us - u->last.lat_sum_us);
			}
		}
		u->last = s;
		u->have_last = true;
		ep_stats_percpu_sum(f->m.hstats, &idx, &u->hlast, sizeof(u->hlast));
	}
}

/* Queries the datapath saw leave the node (recorded at TC egress only, so a
 * query that died on the node never gets here) but no answer matched within
 * their upstream's RTO (dns_rto.h; at most timeout_ms):
 * counted once (flagged, so a late answer reads as late, not spoofed) and
 * forgotten after a while. */
void ep_dnsf_scan_pending(struct ep_dns_failover *f, uint64_t now)
{
	enum { BATCH = 4096 };
	struct ep_dns_pending_key *keys = calloc(BATCH, sizeof(*keys));
	struct ep_dns_pending *vals = calloc(BATCH, sizeof(*vals));
	uint64_t ceiling_ns = (uint64_t)f->cfg.health.timeout_ms * 1000000ULL;
	struct ep_dns_pending_key cursor;
	void *in = NULL;

	if (!keys || !vals)
		goto out;
	for (;;) {
		__u32 count = BATCH;
		int rc = bpf_map_lookup_batch(f->m.pending, in, &cursor, keys, vals, &count, NULL);

		if (rc && errno != ENOENT)
			break;
		for (__u32 i = 0; i < count; i++) {
			struct ep_dns_pending *v = &vals[i];
			uint64_t age = now > v->sent_ns ? now - v->sent_ns : 0;
			uint64_t timeout_ns = v->upstream_idx < f->n ? ep_dns_rto_ns(&f->up[v->upstream_idx].rto)
								     : ceiling_ns;

			if (age > ceiling_ns + PENDING_LATE_NS) {
				bpf_map_delete_elem(f->m.pending, &keys[i]);
				continue;
			}
			/* Answered, but fragmented and dropped by the datapath's
			 * fragment rule: the upstream answered, no timeout. */
			if ((v->flags & (EP_DNS_PENDING_F_TIMED_OUT | EP_DNS_PENDING_F_FRAG_DROPPED)) ||
			    age <= timeout_ns)
				continue;
			v->flags |= EP_DNS_PENDING_F_TIMED_OUT;
			/* BPF_EXIST: if the answer arrived meanwhile the entry is
			 * gone and this is no timeout. */
			if (bpf_map_update_elem(f->m.pending, &keys[i], v, BPF_EXIST) == 0 &&
			    v->upstream_idx < f->n) {
				f->up[v->upstream_idx].slots[f->cur].timeouts++;
				f->up[v->upstream_idx].timeouts_total++;
			}
		}
		if (rc)
			break;
		in = &cursor;
	}
out:
	free(keys);
	free(vals);
}

/* ---- trusted snapshot into the datapath -------------------------------- */

struct snap_sync {
	int fd;
	uint64_t *keys;
	size_t n, cap;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void snap_fill(const struct ep_snapshot *s, void *arg)
{
	struct snap_sync *ss = arg;

	for (size_t i = 0; i < s->n_slots; i++) {
		const struct ep_snapshot_entry *e = &s->slots[i];
		struct ep_dns_snap_entry v = {};
		uint64_t key;

		if (!e->name)
			continue;
		for (uint32_t j = 0; j < e->count; j++) {
			const struct ep_dns_addr *a = &s->addrs[e->first + j];

			if (a->family == AF_INET && v.n4 < EP_DNS_SNAP_ADDRS)
				memcpy(&v.a4[v.n4++], a->a, 4);
			else if (a->family == AF_INET6 && v.n6 < 4)
				memcpy(v.a6[v.n6++], a->a, 16);
		}
		key = ep_dns_name_hash_text(e->name);
		if (bpf_map_update_elem(ss->fd, &key, &v, BPF_ANY))
			continue; /* map full: the name is just not checked */
		if (ss->n == ss->cap) {
			size_t nc = ss->cap ? ss->cap * 2 : 4096;
			uint64_t *nk = realloc(ss->keys, nc * sizeof(*nk));

			if (!nk)
				continue;
			ss->keys = nk;
			ss->cap = nc;
		}
		ss->keys[ss->n++] = key;
	}
}

static bool snap_keep(const void *key, void *arg)
{
	const struct snap_sync *ss = arg;

	return bsearch(key, ss->keys, ss->n, sizeof(*ss->keys), cmp_u64) != NULL;
}

/* New names first, then stale ones out: a name never goes unchecked. */
void ep_dnsf_sync_snapshot(struct ep_dns_failover *f)
{
	struct snap_sync ss = {.fd = f->m.snap};
	long removed;

	ep_dns_cache_with_snapshot(f->cache, snap_fill, &ss);
	qsort(ss.keys, ss.n, sizeof(*ss.keys), cmp_u64);
	removed = ep_map_prune(f->m.snap, sizeof(uint64_t), snap_keep, &ss);
	log_info("DNS: trusted snapshot in the datapath: %zu names (%ld removed)", ss.n,
		 removed > 0 ? removed : 0);
	free(ss.keys);
}

/* ---- samples ------------------------------------------------------------ */

int ep_dnsf_on_sample(void *ctx, void *data, size_t len)
{
	struct ep_dns_failover *f = ctx;
	const struct ep_dns_sample *s = data;
	struct recent_sample *r;
	ldns_pkt *pkt = NULL;
	uint64_t now = ep_now_ns();

	f->samples_seen++;
	if (len < offsetof(struct ep_dns_sample, data) || !(s->flags & (EP_DNS_SAMPLE_F_UNMATCHED |
									   EP_DNS_SAMPLE_F_DIVERGENT)))
		return 0;
	r = &f->recent[f->recent_next++ % RECENT_SAMPLES];
	memset(r, 0, sizeof(*r));
	r->at = ep_wall_seconds();
	if (s->upstream_idx < f->n)
		memcpy(r->upstream, f->up[s->upstream_idx].name, sizeof(r->upstream));
	snprintf(r->what, sizeof(r->what), "%s%s",
		 s->flags & EP_DNS_SAMPLE_F_DIVERGENT ? "divergent" : "unmatched",
		 s->flags & EP_DNS_SAMPLE_F_DROPPED ? ", dropped" : "");
	if (s->len <= EP_DNS_SAMPLE_MAX &&
	    ldns_wire2pkt(&pkt, s->data, s->len) == LDNS_STATUS_OK && pkt) {
		ldns_rr_list *q = ldns_pkt_question(pkt), *an = ldns_pkt_answer(pkt);

		if (q && ldns_rr_list_rr_count(q)) {
			char *n = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(q, 0)));

			if (n)
				snprintf(r->name, sizeof(r->name), "%s", n);
			free(n);
		}
		for (size_t i = 0; an && i < ldns_rr_list_rr_count(an); i++) {
			ldns_rr *rr = ldns_rr_list_rr(an, i);

			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_A || ldns_rr_get_type(rr) == LDNS_RR_TYPE_AAAA) {
				char *a = ldns_rdf2str(ldns_rr_rdf(rr, 0));

				if (a)
					snprintf(r->answer, sizeof(r->answer), "%s", a);
				free(a);
				break;
			}
		}
	} else {
		snprintf(r->name, sizeof(r->name), "(unparseable)");
	}
	ldns_pkt_free(pkt);
	/* At most one line a second: a flood must not flood the log too. */
	if (now - f->last_sample_log_ns > 1000000000ULL) {
		f->last_sample_log_ns = now;
		log_warn("DNS: %s answer from %s for %s (%s)", r->what, r->upstream, r->name,
			 r->answer[0] ? r->answer : "no address");
	}
	return 0;
}
