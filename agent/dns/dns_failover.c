#include "dns_failover.h"

#include <arpa/inet.h>
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
#include "dns_probe.h"
#include "ep_hash.h"
#include "evloop.h"
#include "k8s.h"
#include "log.h"
#include "map_prune.h"
#include "snapshot.h"
#include "util.h"

#define SLOT_NS (100ULL * 1000000ULL)
/* How often the probes and the sample ring are polled (and slots checked). */
#define TICK_NS (100ULL * 1000000ULL)
/* How long after its timeout a query is remembered, so its answer still
 * reads as late rather than as spoofed. */
#define PENDING_LATE_NS (10ULL * 1000000000ULL)
#define SAMPLE_EVERY 16
#define RECENT_SAMPLES 8
#define SO_NETNS_COOKIE_ 71

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
};

struct ep_dns_failover {
	struct ep_cfg_dns cfg; /* canaries: pointer into the agent's config (prober) */
	struct ep_dns_map_fds m;
	struct upstream_state up[EP_DNS_MAX_UPSTREAMS];
	size_t n;
	size_t n_slots, cur;
	uint64_t slot_ends_ns;
	struct ep_dns_machine mach;
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

static int write_upstreams(struct ep_dns_failover *f)
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

static int write_config(struct ep_dns_failover *f, bool keep_mode)
{
	struct ep_dns_config c = {};
	__u32 zero = 0;

	if (keep_mode)
		bpf_map_lookup_elem(f->m.config, &zero, &c);
	c.mode = f->mach.cache_mode ? EP_DNS_MODE_CACHE : EP_DNS_MODE_UPSTREAM;
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

static bool datapath_in_cache_mode(struct ep_dns_failover *f)
{
	struct ep_dns_config c = {};
	__u32 zero = 0;

	return bpf_map_lookup_elem(f->m.config, &zero, &c) == 0 && c.mode == EP_DNS_MODE_CACHE;
}

/* The one switch between upstream and cache, for pods and host processes. */
static void apply_mode(struct ep_dns_failover *f)
{
	struct ep_dns_config c = {};
	__u32 zero = 0;

	bpf_map_lookup_elem(f->m.config, &zero, &c);
	c.mode = f->mach.cache_mode ? EP_DNS_MODE_CACHE : EP_DNS_MODE_UPSTREAM;
	if (bpf_map_update_elem(f->m.config, &zero, &c, BPF_ANY))
		log_error("DNS: cannot switch the datapath to %s: %s",
			  f->mach.cache_mode ? "the local cache" : "upstream", strerror(errno));
	f->mode_changed_at = ep_wall_seconds();
	f->mode_changes++;
	log_warn("DNS: %s (%s)",
		 f->mach.cache_mode ? "queries to the upstreams now answered by the local cache"
				    : "queries go to the upstreams again",
		 f->mach.reason);
	if (f->k8s)
		ep_k8s_set_dns_state(f->k8s, f->mach.cache_mode,
				     f->mach.cache_mode ? "DNSFailover" : "DNSHealthy", f->mach.reason);
}

/* A per-CPU value of __u64 counters (size bytes) summed over the CPUs. */
static void sum_percpu(int fd, __u32 idx, void *out, size_t size)
{
	int n = ep_ncpus();
	char *v = calloc((size_t)n, size);

	memset(out, 0, size);
	if (!v)
		return;
	if (bpf_map_lookup_elem(fd, &idx, v) == 0) {
		for (int c = 0; c < n; c++) {
			const __u64 *src = (const __u64 *)(v + (size_t)c * size);
			__u64 *dst = out;

			for (size_t k = 0; k < size / sizeof(__u64); k++)
				dst[k] += src[k];
		}
	}
	free(v);
}

static void sum_stats(int fd, __u32 idx, struct ep_dns_stats *out)
{
	sum_percpu(fd, idx, out, sizeof(*out));
}

/* Datapath counters since the last read, into the current slot. */
static void read_datapath(struct ep_dns_failover *f)
{
	for (size_t i = 0; i < f->n; i++) {
		struct upstream_state *u = &f->up[i];
		struct ep_dns_window *w = &u->slots[f->cur];
		struct ep_dns_stats s;

		sum_stats(f->m.stats, (__u32)i, &s);
		if (u->have_last) {
			w->queries += s.queries - u->last.queries;
			w->answers += s.answers - u->last.answers;
			w->unmatched += s.unmatched - u->last.unmatched;
			w->divergent += s.divergent - u->last.divergent;
			w->servfail += s.rcode[2] - u->last.rcode[2];
			w->refused += s.rcode[5] - u->last.rcode[5];
			w->late += s.late - u->last.late;
		}
		u->last = s;
		u->have_last = true;
		sum_percpu(f->m.hstats, (__u32)i, &u->hlast, sizeof(u->hlast));
	}
}

/* Queries the datapath saw leave the node (recorded at TC egress only, so a
 * query that died on the node never gets here) but no answer matched within timeout_ms:
 * counted once (flagged, so a late answer reads as late, not spoofed) and
 * forgotten after a while. */
static void scan_pending(struct ep_dns_failover *f, uint64_t now)
{
	enum { BATCH = 4096 };
	struct ep_dns_pending_key *keys = calloc(BATCH, sizeof(*keys));
	struct ep_dns_pending *vals = calloc(BATCH, sizeof(*vals));
	uint64_t timeout_ns = (uint64_t)f->cfg.health.timeout_ms * 1000000ULL;
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

			if (age > timeout_ns + PENDING_LATE_NS) {
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
static void sync_snapshot(struct ep_dns_failover *f)
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

static int on_sample(void *ctx, void *data, size_t len)
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

/* ---- the state machine ------------------------------------------------- */

static void thresholds_from(const struct ep_cfg_dns *d, struct ep_dns_thresholds *t)
{
	memset(t, 0, sizeof(*t));
	t->timeout_bp = d->failover.timeout_ratio_bp;
	t->servfail_bp = d->failover.servfail_ratio_bp;
	t->hijack_bp = d->health.hijack_ratio_bp;
	t->min_samples = d->failover.min_samples;
	t->spoof_min = d->failover.min_samples * 4 > 20 ? d->failover.min_samples * 4 : 20;
	/* A timeout problem must last a quarter of the window: one lost probe
	 * does not move a whole node's DNS. */
	t->confirm_ns = (uint64_t)d->failover.window_ms * 1000000ULL / 4;
	t->failback_ns = (uint64_t)d->failover.failback_after_s * 1000000000ULL;
}

/* Defenses per upstream follow its verdict: a hijacking upstream's answers
 * that contradict the snapshot are dropped, a spoofed one's unmatched
 * answers too. */
static void apply_defenses(struct ep_dns_failover *f)
{
	bool changed = false;

	for (size_t i = 0; i < f->n; i++) {
		struct upstream_state *u = &f->up[i];
		uint32_t want = 0;

		if (f->cfg.failover.drop_divergent == EP_DROP_DIV_ALWAYS ||
		    (f->cfg.failover.drop_divergent == EP_DROP_DIV_SUSPECTED && (u->verdict & EP_DNS_BAD_HIJACK)))
			want |= EP_DNS_UP_F_DROP_DIVERGENT;
		if (u->verdict & EP_DNS_BAD_SPOOFING)
			want |= EP_DNS_UP_F_DROP_UNMATCHED;
		/* Once suspected, keep the defense until the node is healthy again. */
		if (f->mach.state != EP_DNS_HEALTHY)
			want |= u->flags;
		if (f->cfg.failover.drop_divergent == EP_DROP_DIV_NEVER)
			want &= ~EP_DNS_UP_F_DROP_DIVERGENT;
		if (want != u->flags) {
			u->flags = want;
			changed = true;
		}
	}
	if (changed)
		write_upstreams(f);
}

static void evaluate(struct ep_dns_failover *f, uint64_t now)
{
	struct ep_dns_window w[EP_DNS_MAX_UPSTREAMS] = {};
	const char *names[EP_DNS_MAX_UPSTREAMS];
	enum ep_dns_state before = f->mach.state;
	bool mode_changed = false;

	for (size_t i = 0; i < f->n; i++) {
		struct upstream_state *u = &f->up[i];
		unsigned prev = u->verdict;

		for (size_t s = 0; s < f->n_slots; s++) {
			const uint64_t *src = (const uint64_t *)&u->slots[s];
			uint64_t *dst = (uint64_t *)&w[i];

			for (size_t k = 0; k < sizeof(w[i]) / sizeof(uint64_t); k++)
				dst[k] += src[k];
		}
		names[i] = u->name;
		u->verdict = ep_dns_judge(&f->mach.t, &w[i], u->why, sizeof(u->why));
		if ((u->verdict & (EP_DNS_BAD_HIJACK | EP_DNS_BAD_SPOOFING)) &&
		    !(prev & (EP_DNS_BAD_HIJACK | EP_DNS_BAD_SPOOFING)))
			u->hijack_suspected_total++;
	}
	if (ep_dns_machine_step(&f->mach, w, names, f->n, now, &mode_changed))
		log_warn("DNS state: %s -> %s: %s", ep_dns_state_name(before),
			 ep_dns_state_name(f->mach.state), f->mach.reason);
	apply_defenses(f);
	if (mode_changed)
		apply_mode(f);
}

static void rotate(struct ep_dns_failover *f)
{
	f->cur = (f->cur + 1) % f->n_slots;
	for (size_t i = 0; i < f->n; i++)
		memset(&f->up[i].slots[f->cur], 0, sizeof(struct ep_dns_window));
}

/* ---- lifecycle ------------------------------------------------------------ */

/* Does the (pinned) upstream map say slot idx belongs to addr? */
static bool pinned_slot_is(struct ep_dns_failover *f, uint32_t idx, const struct ep_ip *addr)
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

static void zero_datapath_stats(struct ep_dns_failover *f, uint32_t idx)
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

static int setup_upstreams(struct ep_dns_failover *f, const struct ep_config *cfg)
{
	size_t n_slots = cfg->dns.failover.window_ms / 100;

	if (n_slots < 1)
		n_slots = 1;
	for (size_t i = 0; i < EP_DNS_MAX_UPSTREAMS; i++) {
		free(f->up[i].slots);
		f->up[i].slots = NULL;
	}
	f->n = cfg->dns.n_upstreams;
	f->n_slots = n_slots;
	f->cur = 0;
	for (size_t i = 0; i < f->n; i++) {
		struct upstream_state *u = &f->up[i];

		if (!ep_ip_eq(&u->addr, &cfg->dns.upstreams[i])) {
			memset(u, 0, sizeof(*u));
			u->addr = cfg->dns.upstreams[i];
			/* The datapath counts by position: a new upstream in this
			 * slot starts from zero, not from its predecessor's totals.
			 * The same upstream in the same slot (an agent restart)
			 * keeps counting. */
			if (!pinned_slot_is(f, (uint32_t)i, &u->addr))
				zero_datapath_stats(f, (uint32_t)i);
		}
		ep_ip_str(&u->addr, u->name, sizeof(u->name));
		u->slots = calloc(n_slots, sizeof(*u->slots));
		if (!u->slots)
			return -ENOMEM;
	}
	return 0;
}

static void start_k8s(struct ep_dns_failover *f, const struct ep_config *cfg)
{
	struct ep_k8s_settings s;
	char err[256] = "";

	f->k8s_cfg = cfg->kubernetes;
	snprintf(f->k8s_node, sizeof(f->k8s_node), "%s", cfg->node_name);
	f->k8s_mode = ep_k8s_resolve(&cfg->kubernetes, cfg->node_name, &s, err, sizeof(err));
	snprintf(f->k8s_note, sizeof(f->k8s_note), "%s", err);
	if (f->k8s_mode == 0) {
		log_info("Kubernetes: not in a cluster, node labels and events skipped (%s)", err);
		return;
	}
	if (f->k8s_mode < 0) {
		log_error("Kubernetes: configured but unusable: %s; DNS failover works without it", err);
		return;
	}
	f->k8s = ep_k8s_start(&s);
	if (!f->k8s) {
		f->k8s_mode = -1;
		snprintf(f->k8s_note, sizeof(f->k8s_note), "the client did not start");
		return;
	}
	log_info("Kubernetes: reporting DNS state of node %s to %s", s.node_name, s.api_server);
	/* Make the cluster match the state we start in (a restart may find
	 * the node failed over). */
	ep_k8s_set_dns_state(f->k8s, f->mach.cache_mode, f->mach.cache_mode ? "DNSFailover" : "DNSHealthy",
			     f->mach.reason);
}

static void on_tick(void *userdata, uint64_t now);

int ep_dns_failover_start(struct ep_dns_failover **out, const struct ep_config *cfg,
			  const struct ep_dns_map_fds *maps, struct ep_dns_cache *cache,
			  sd_event *ev, pthread_mutex_t *lock, char *err, size_t errlen)
{
	int rc;

	struct ep_dns_failover *f = calloc(1, sizeof(*f));
	struct ep_dns_thresholds t;
	uint64_t now = ep_now_ns();

	*out = NULL;
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	f->cfg = cfg->dns;
	f->m = *maps;
	f->cache = cache;
	if (setup_upstreams(f, cfg)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	thresholds_from(&cfg->dns, &t);
	ep_dns_machine_init(&f->mach, &t, now);
	/* The datapath remembers a failover across agent restarts: resume it
	 * instead of flapping back to the upstream. */
	if (datapath_in_cache_mode(f)) {
		f->mach.state = EP_DNS_FAILED_OVER;
		f->mach.cache_mode = true;
		snprintf(f->mach.reason, sizeof(f->mach.reason),
			 "the datapath was already answering from the cache when the agent started");
		log_warn("DNS: %s", f->mach.reason);
	}
	if (write_config(f, true) || write_upstreams(f)) {
		snprintf(err, errlen, "cannot program the DNS maps: %s", strerror(errno));
		goto fail;
	}
	apply_defenses(f);
	f->exempt = ep_dns_exempt_map_new(f->m.exempt, EP_DNS_EXEMPT_PROBE);
	if (!f->exempt) {
		snprintf(err, errlen, "cannot open the DNS exemption map: %s", strerror(errno));
		goto fail;
	}
	f->prober = ep_dns_prober_new(&cfg->dns, cache ? ep_dns_cache_pick : NULL, cache, f->exempt,
				      err, errlen);
	if (!f->prober)
		goto fail; /* err says why (e.g. an unusable dns.health.trust_anchor) */
	f->rb = ring_buffer__new(f->m.samples, on_sample, f, NULL);
	if (!f->prober || !f->rb) {
		snprintf(err, errlen, "cannot start the DNS prober or sample reader");
		goto fail;
	}
	f->slot_ends_ns = now + SLOT_NS;
	f->lock = lock;
	rc = ep_timer_repeat(ev, &f->timer, TICK_NS, false, on_tick, f, "dns-failover");
	if (rc) {
		snprintf(err, errlen, "cannot add the DNS failover timer: %s", strerror(-rc));
		goto fail;
	}
	start_k8s(f, cfg);
	*out = f;
	return 0;
fail:
	ep_dns_failover_stop(f);
	return -EINVAL;
}

int ep_dns_failover_reconfigure(struct ep_dns_failover *f, const struct ep_config *cfg,
				struct ep_dns_cache *cache, char *err, size_t errlen)
{
	struct ep_dns_thresholds t;
	struct ep_dns_prober *p;

	/* The part that can fail on bad input first: a rejected config (an
	 * unusable trust anchor) leaves everything running as it was. */
	p = ep_dns_prober_new(&cfg->dns, cache ? ep_dns_cache_pick : NULL, cache, f->exempt, err,
			      errlen);
	if (!p)
		return -EINVAL;
	f->cfg = cfg->dns;
	f->cache = cache;
	f->snap_gen = 0;
	if (setup_upstreams(f, cfg)) {
		ep_dns_prober_free(p);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	thresholds_from(&cfg->dns, &t);
	f->mach.t = t;
	ep_dns_prober_free(f->prober);
	f->prober = p;
	if (write_config(f, true) || write_upstreams(f)) {
		snprintf(err, errlen, "cannot reprogram DNS failover");
		return -EINVAL;
	}
	apply_defenses(f);
	/* A changed kubernetes section (or node name) takes effect now: a new
	 * client reports the current state; the old one is stopped first. */
	if (memcmp(&f->k8s_cfg, &cfg->kubernetes, sizeof(f->k8s_cfg)) ||
	    strcmp(f->k8s_node, cfg->node_name)) {
		log_info("Kubernetes: settings changed, restarting the client");
		if (f->k8s)
			ep_k8s_stop(f->k8s);
		f->k8s = NULL;
		start_k8s(f, cfg);
	}
	return 0;
}

static void tick(struct ep_dns_failover *f, uint64_t now)
{
	ep_dns_prober_tick(f->prober, now);
	ring_buffer__poll(f->rb, 0);
	if (f->cache) {
		uint64_t g = ep_dns_cache_generation(f->cache);

		if (g != f->snap_gen) {
			f->snap_gen = g;
			sync_snapshot(f);
		}
	}
	if (now < f->slot_ends_ns)
		return;
	f->slot_ends_ns = now + SLOT_NS;
	read_datapath(f);
	scan_pending(f, now);
	for (size_t i = 0; i < f->n; i++)
		ep_dns_prober_take(f->prober, i, &f->up[i].slots[f->cur]);
	evaluate(f, now);
	rotate(f);
}

static void on_tick(void *userdata, uint64_t now)
{
	struct ep_dns_failover *f = userdata;

	pthread_mutex_lock(f->lock);
	tick(f, now);
	pthread_mutex_unlock(f->lock);
}

int ep_dns_failover_override(struct ep_dns_failover *f, enum ep_dns_override o)
{
	if (ep_dns_machine_override(&f->mach, o, ep_now_ns())) {
		snprintf(f->mach.reason, sizeof(f->mach.reason), "manual override: edgeplane dns %s",
			 ep_dns_override_name(o));
		apply_mode(f);
	}
	log_info("DNS: override set to %s", ep_dns_override_name(o));
	return 0;
}

bool ep_dns_failover_upstream_healthy(const struct ep_dns_failover *f)
{
	return f->mach.state == EP_DNS_HEALTHY && !f->mach.cache_mode;
}

/* ---- reporting ------------------------------------------------------------ */

static double lat_quantile(const struct ep_dns_stats *s, double q)
{
	uint64_t total = 0, acc = 0;

	for (int i = 0; i < EP_DNS_LAT_BUCKETS; i++)
		total += s->lat[i];
	if (!total)
		return 0;
	for (int i = 0; i < EP_DNS_LAT_BUCKETS; i++) {
		acc += s->lat[i];
		if ((double)acc >= q * (double)total)
			return (double)(1ULL << (i + 1)) / 1e6; /* bucket upper bound, seconds */
	}
	return (double)(1ULL << EP_DNS_LAT_BUCKETS) / 1e6;
}

json_t *ep_dns_failover_status(struct ep_dns_failover *f)
{
	json_t *o = json_object(), *ups = json_array(), *rec = json_array();

	json_object_set_new(o, "state", json_string(ep_dns_state_name(f->mach.state)));
	json_object_set_new(o, "mode", json_string(f->mach.cache_mode ? "cache" : "upstream"));
	json_object_set_new(o, "override", json_string(ep_dns_override_name(f->mach.override)));
	json_object_set_new(o, "reason", json_string(f->mach.reason));
	json_object_set_new(o, "state_since_seconds",
			    json_real((double)(ep_now_ns() - f->mach.state_since_ns) / 1e9));
	json_object_set_new(o, "failovers", json_integer((json_int_t)f->mach.failovers));
	json_object_set_new(o, "mode_changed_at", json_real(f->mode_changed_at));
	for (size_t i = 0; i < f->n; i++) {
		struct upstream_state *u = &f->up[i];
		json_t *j = json_object(), *rc = json_object();
		static const char *const rnames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
						     "NOTIMP", "REFUSED"};

		for (int r = 0; r < 6; r++)
			json_object_set_new(rc, rnames[r], json_integer((json_int_t)u->last.rcode[r]));
		json_object_set_new(j, "address", json_string(u->name));
		json_object_set_new(j, "verdict",
				    json_string(u->verdict == EP_DNS_UNKNOWN ? "not enough samples"
						: u->verdict ? u->why
							     : "ok"));
		json_object_set_new(j, "queries", json_integer((json_int_t)u->last.queries));
		json_object_set_new(j, "answers", json_integer((json_int_t)u->last.answers));
		json_object_set_new(j, "timeouts", json_integer((json_int_t)u->timeouts_total));
		json_object_set_new(j, "late_answers", json_integer((json_int_t)u->last.late));
		json_object_set_new(j, "unmatched_answers", json_integer((json_int_t)u->last.unmatched));
		json_object_set_new(j, "unmatched_dropped",
				    json_integer((json_int_t)u->last.unmatched_dropped));
		json_object_set_new(j, "divergent_answers", json_integer((json_int_t)u->last.divergent));
		json_object_set_new(j, "divergent_dropped",
				    json_integer((json_int_t)u->last.divergent_dropped));
		json_object_set_new(j, "redirected_to_cache", json_integer((json_int_t)u->last.redirected));
		json_object_set_new(j, "malformed", json_integer((json_int_t)u->last.malformed));
		json_object_set_new(
			j, "headers",
			json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "fragments_first",
				  (json_int_t)u->hlast.frag_first, "fragments_later",
				  (json_int_t)u->hlast.frag_later, "fragments_dropped",
				  (json_int_t)u->hlast.frag_dropped, "ip_options",
				  (json_int_t)u->hlast.ip_options, "ipv6_exthdr",
				  (json_int_t)u->hlast.ipv6_exthdr, "unparsed",
				  (json_int_t)u->hlast.unparsed, "unparsed_dropped",
				  (json_int_t)u->hlast.unparsed_dropped));
		json_object_set_new(j, "rcodes", rc);
		json_object_set_new(j, "latency_p50_seconds", json_real(lat_quantile(&u->last, 0.5)));
		json_object_set_new(j, "latency_p99_seconds", json_real(lat_quantile(&u->last, 0.99)));
		json_object_set_new(j, "last_probe", json_string(ep_dns_prober_last(f->prober, i)));
		{
			json_t *pr = json_object();
			char buf[256];

			for (int r = 0; r < EP_PROBE_RESULTS; r++)
				json_object_set_new(pr, ep_probe_result_names[r],
						    json_integer((json_int_t)ep_dns_prober_total(
							    f->prober, i, r)));
			json_object_set_new(j, "probes", pr);
			json_object_set_new(j, "dnssec", json_string(ep_dns_prober_dnssec(
								 f->prober, i, buf, sizeof(buf))));
		}
		json_object_set_new(j, "defenses",
				    json_pack("{s:b, s:b}", "drop_divergent",
					      !!(u->flags & EP_DNS_UP_F_DROP_DIVERGENT), "drop_unmatched",
					      !!(u->flags & EP_DNS_UP_F_DROP_UNMATCHED)));
		json_array_append_new(ups, j);
	}
	json_object_set_new(o, "upstream_health", ups);
	for (size_t k = 0; k < RECENT_SAMPLES; k++) {
		const struct recent_sample *r = &f->recent[(f->recent_next + k) % RECENT_SAMPLES];

		if (!r->at)
			continue;
		json_array_append_new(rec, json_pack("{s:f, s:s, s:s, s:s, s:s}", "at", r->at, "upstream",
						     r->upstream, "name", r->name, "answer", r->answer,
						     "what", r->what));
	}
	json_object_set_new(o, "suspicious_answers", rec);
	if (f->k8s) {
		struct ep_k8s_status ks;

		ep_k8s_get_status(f->k8s, &ks);
		json_object_set_new(o, "kubernetes",
				    json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:s}", "state", "in use", "in_sync",
					      ks.in_sync, "node_unhealthy", ks.desired_unhealthy, "requests",
					      (json_int_t)ks.requests, "failures", (json_int_t)ks.failures,
					      "events_posted", (json_int_t)ks.events_posted, "last_error",
					      ks.last_error));
	} else {
		json_object_set_new(o, "kubernetes",
				    json_pack("{s:s, s:s}", "state",
					      f->k8s_mode < 0 ? "unusable" : "not in a cluster", "why",
					      f->k8s_note));
	}
	return o;
}

/* One counter family with a series per upstream. */
static void per_upstream_counter(const struct ep_dns_failover *f, struct ep_strbuf *b,
				 const char *name, const char *help,
				 uint64_t (*get)(const struct upstream_state *u))
{
	ep_sb_printf(b, "# HELP edgeplane_%s %s\n# TYPE edgeplane_%s counter\n", name, help, name);
	for (size_t i = 0; i < f->n; i++)
		ep_sb_printf(b, "edgeplane_%s{upstream=\"%s\"} %llu\n", name, f->up[i].name,
			     (unsigned long long)get(&f->up[i]));
}

#define UPSTREAM_GETTER(fn, expr)                                                                  \
	static uint64_t fn(const struct upstream_state *u)                                         \
	{                                                                                          \
		return (expr);                                                                     \
	}
UPSTREAM_GETTER(get_queries, u->last.queries)
UPSTREAM_GETTER(get_answers, u->last.answers)
UPSTREAM_GETTER(get_unmatched, u->last.unmatched)
UPSTREAM_GETTER(get_divergent, u->last.divergent)
/* Every defence: divergent answers, unmatched ones, and what the fragment
 * rule dropped. */
UPSTREAM_GETTER(get_dropped, u->last.divergent_dropped + u->last.unmatched_dropped +
				     u->hlast.frag_dropped + u->hlast.unparsed_dropped)
UPSTREAM_GETTER(get_redirected, u->last.redirected)
UPSTREAM_GETTER(get_malformed, u->last.malformed)
UPSTREAM_GETTER(get_timeouts, u->timeouts_total)
UPSTREAM_GETTER(get_hijack_suspected, u->hijack_suspected_total)
#undef UPSTREAM_GETTER

/* Fragments, IPv4 options, IPv6 extension headers (ep_dns_hstats): two
 * families with a series per upstream and kind. */
static void hdr_counters(const struct ep_dns_failover *f, struct ep_strbuf *b)
{
	static const struct {
		const char *family, *help;
	} fam[] = {
		{"dns_fragments_total",
		 "Fragmented DNS from/to the upstream: first fragments (parsed), later ones (no DNS "
		 "header), fragmented answers dropped."},
		{"dns_header_extensions_total",
		 "DNS from/to the upstream behind IPv4 options or IPv6 extension headers (parsed), or "
		 "behind a chain not walked."},
	};
	static const struct {
		int fam;
		const char *kind;
		size_t off;
	} series[] = {
		{0, "first", offsetof(struct ep_dns_hdr_stats, frag_first)},
		{0, "later", offsetof(struct ep_dns_hdr_stats, frag_later)},
		{0, "dropped", offsetof(struct ep_dns_hdr_stats, frag_dropped)},
		{1, "ip_options", offsetof(struct ep_dns_hdr_stats, ip_options)},
		{1, "ipv6_exthdr", offsetof(struct ep_dns_hdr_stats, ipv6_exthdr)},
		{1, "unparsed", offsetof(struct ep_dns_hdr_stats, unparsed)},
		{1, "unparsed_dropped", offsetof(struct ep_dns_hdr_stats, unparsed_dropped)},
	};

	for (size_t m = 0; m < EP_ARRAY_SIZE(fam); m++) {
		ep_sb_printf(b, "# HELP edgeplane_%s %s\n# TYPE edgeplane_%s counter\n", fam[m].family,
			     fam[m].help, fam[m].family);
		for (size_t i = 0; i < f->n; i++)
			for (size_t k = 0; k < EP_ARRAY_SIZE(series); k++) {
				__u64 v;

				if (series[k].fam != (int)m)
					continue;
				memcpy(&v, (const char *)&f->up[i].hlast + series[k].off, sizeof(v));
				ep_sb_printf(b, "edgeplane_%s{upstream=\"%s\",kind=\"%s\"} %llu\n",
					     fam[m].family, f->up[i].name, series[k].kind,
					     (unsigned long long)v);
			}
	}
}

void ep_dns_failover_metrics(struct ep_dns_failover *f, struct ep_strbuf *b)
{
	static const char *const rnames[16] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
					      "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
					      "NOTZONE", "11", "12", "13", "14", "15"};
	static const struct {
		const char *name, *help;
		uint64_t (*get)(const struct upstream_state *u);
	} per[] = {
		{"dns_queries_total", "DNS queries to the upstream seen by the datapath.", get_queries},
		{"dns_answers_total", "Upstream answers matched to a query.", get_answers},
		{"dns_unmatched_answers_total",
		 "Answers from the upstream matching no query (spoofing sign).", get_unmatched},
		{"dns_divergent_answers_total", "Answers contradicting the trusted snapshot.",
		 get_divergent},
		{"dns_dropped_answers_total", "Forged-looking answers dropped by the datapath.",
		 get_dropped},
		{"dns_redirected_total", "Queries to the upstream answered by the local cache instead.",
		 get_redirected},
		{"dns_malformed_total", "DNS messages to/from the upstream that did not parse.",
		 get_malformed},
		{"dns_timeouts_total",
		 "Queries to the upstream that got no answer within dns.health.timeout_ms.",
		 get_timeouts},
	};

	for (size_t m = 0; m < EP_ARRAY_SIZE(per); m++)
		per_upstream_counter(f, b, per[m].name, per[m].help, per[m].get);
	ep_sb_printf(b, "# HELP edgeplane_dns_rcode_total Upstream answers by rcode.\n"
			"# TYPE edgeplane_dns_rcode_total counter\n");
	for (size_t i = 0; i < f->n; i++)
		for (int r = 0; r < 16; r++)
			if (f->up[i].last.rcode[r] || r == 0 || r == 2 || r == 3 || r == 5)
				ep_sb_printf(b, "edgeplane_dns_rcode_total{upstream=\"%s\",rcode=\"%s\"} %llu\n",
					     f->up[i].name, rnames[r],
					     (unsigned long long)f->up[i].last.rcode[r]);
	ep_sb_printf(b, "# HELP edgeplane_dns_latency_seconds Time from a query to its answer, per upstream.\n"
			"# TYPE edgeplane_dns_latency_seconds histogram\n");
	for (size_t i = 0; i < f->n; i++) {
		const struct ep_dns_stats *s = &f->up[i].last;
		uint64_t acc = 0;

		/* Bucket k holds [2^k, 2^(k+1)) us; the datapath clamps anything
		 * slower into the last one, so that one is only +Inf. */
		for (int k = 0; k < EP_DNS_LAT_BUCKETS; k++) {
			acc += s->lat[k];
			if (k == EP_DNS_LAT_BUCKETS - 1)
				break;
			ep_sb_printf(b, "edgeplane_dns_latency_seconds_bucket{upstream=\"%s\",le=\"%g\"} %llu\n",
				     f->up[i].name, (double)(1ULL << (k + 1)) / 1e6,
				     (unsigned long long)acc);
		}
		ep_sb_printf(b, "edgeplane_dns_latency_seconds_bucket{upstream=\"%s\",le=\"+Inf\"} %llu\n",
			     f->up[i].name, (unsigned long long)acc);
		ep_sb_printf(b, "edgeplane_dns_latency_seconds_sum{upstream=\"%s\"} %.6f\n", f->up[i].name,
			     (double)s->lat_sum_us / 1e6);
		ep_sb_printf(b, "edgeplane_dns_latency_seconds_count{upstream=\"%s\"} %llu\n", f->up[i].name,
			     (unsigned long long)acc);
	}
	hdr_counters(f, b);
	per_upstream_counter(f, b, "dns_hijack_suspected_total",
			     "Times an upstream was judged hijacked or spoofed.", get_hijack_suspected);
	ep_sb_printf(b, "# HELP edgeplane_dns_probes_total Active probes by result.\n"
			"# TYPE edgeplane_dns_probes_total counter\n");
	for (size_t i = 0; i < f->n; i++)
		for (int r = 0; r < EP_PROBE_RESULTS; r++)
			ep_sb_printf(b, "edgeplane_dns_probes_total{upstream=\"%s\",result=\"%s\"} %llu\n",
				     f->up[i].name, ep_probe_result_names[r],
				     (unsigned long long)ep_dns_prober_total(f->prober, i, r));
	ep_sb_printf(b, "# HELP edgeplane_dns_mode 0: queries go to the upstreams; 1: the local cache answers them.\n"
			"# TYPE edgeplane_dns_mode gauge\nedgeplane_dns_mode %d\n",
		     f->mach.cache_mode ? 1 : 0);
	ep_sb_printf(b, "# HELP edgeplane_dns_failovers_total Automatic failovers to the local cache.\n"
			"# TYPE edgeplane_dns_failovers_total counter\nedgeplane_dns_failovers_total %llu\n",
		     (unsigned long long)f->mach.failovers);
	ep_sb_printf(b, "# HELP edgeplane_dns_state_transitions_total DNS health state changes.\n"
			"# TYPE edgeplane_dns_state_transitions_total counter\n");
	for (int a = 0; a < EP_DNS_STATES; a++)
		for (int z = 0; z < EP_DNS_STATES; z++)
			if (f->mach.transitions[a][z])
				ep_sb_printf(b, "edgeplane_dns_state_transitions_total{from=\"%s\",to=\"%s\"} %llu\n",
					     ep_dns_state_name((enum ep_dns_state)a),
					     ep_dns_state_name((enum ep_dns_state)z),
					     (unsigned long long)f->mach.transitions[a][z]);
	ep_sb_printf(b, "# HELP edgeplane_dns_state 1 for the current DNS health state.\n"
			"# TYPE edgeplane_dns_state gauge\n");
	for (int a = 0; a < EP_DNS_STATES; a++)
		ep_sb_printf(b, "edgeplane_dns_state{state=\"%s\"} %d\n",
			     ep_dns_state_name((enum ep_dns_state)a), f->mach.state == (enum ep_dns_state)a);
}

void ep_dns_failover_stop(struct ep_dns_failover *f)
{
	if (!f)
		return;
	ep_source_free(&f->timer);
	if (f->k8s)
		ep_k8s_stop(f->k8s);
	ring_buffer__free(f->rb);
	ep_dns_prober_free(f->prober);
	ep_dns_exempt_map_free(f->exempt);
	for (size_t i = 0; i < EP_DNS_MAX_UPSTREAMS; i++)
		free(f->up[i].slots);
	free(f);
}
