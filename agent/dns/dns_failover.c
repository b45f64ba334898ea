/*
 * DNS failover, the module: owns the state (dns_failover_int.h), registers
 * the 100 ms tick, closes one health slot per tick, runs the state machine
 * (dns_health.h) and applies its decision (the mode switch, the defences, the
 * Kubernetes report). Map access lives in dns_failover_datapath.c and status
 * and metrics in dns_failover_report.c, so this file reads as the policy.
 */
#include "dns_failover_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_cache.h"
#include "dns_probe.h"
#include "evloop.h"
#include "k8s.h"
#include "log.h"
#include "util.h"

#define SLOT_NS (100ULL * 1000000ULL)
/* How often the probes and the sample ring are polled (and slots checked). */
#define TICK_NS (100ULL * 1000000ULL)

/* ---- the state machine ------------------------------------------------- */

/* The one switch between upstream and cache, for pods and host processes:
 * the machine's decision through the cache gate. The node's label and
 * events follow the machine (the upstream's health), not the gate: a node
 * whose upstream failed and whose cache is down is unhealthy all the more. */
static void apply_mode(struct ep_dns_failover *f)
{
	struct ep_dns_config c = {};
	enum ep_dns_gate_why was = f->gate.why;
	uint64_t now = ep_now_ns();
	__u32 zero = 0;
	bool on;

	if (f->cache)
		ep_dns_cache_health(f->cache, now, &f->cache_health);
	else
		f->cache_health = (struct ep_dns_cache_health){.usable = true, .answering = true,
							       .last_answer_age_s = -1};
	if (ep_dns_gate_step(&f->gate, f->mach.cache_mode, f->mach.override == EP_DNS_FORCE_CACHE,
			     f->cache_health.usable, now)) {
		on = f->gate.applied;
		bpf_map_lookup_elem(f->m.config, &zero, &c);
		c.mode = on ? EP_DNS_MODE_CACHE : EP_DNS_MODE_UPSTREAM;
		if (bpf_map_update_elem(f->m.config, &zero, &c, BPF_ANY))
			log_error("DNS: cannot switch the datapath to %s: %s",
				  on ? "the local cache" : "upstream", strerror(errno));
		f->mode_changed_at = ep_wall_seconds();
		f->mode_changes++;
		if (f->gate.why == EP_GATE_LIFTED)
			log_warn("DNS: the cache has not answered for %.1f s: redirect lifted, the upstreams "
				 "get their queries (%s)",
				 (double)(now - f->gate.down_since_ns) / 1e9, f->mach.reason);
		else
			log_warn("DNS: %s (%s)",
				 on ? "queries to the upstreams now answered by the local cache"
				    : "queries go to the upstreams again",
				 f->mach.reason);
	} else if (f->gate.why != was && f->gate.why == EP_GATE_REFUSED) {
		log_warn("DNS: failover refused: the cache is %s (snapshot records %llu, last answer %s); "
			 "queries stay with the upstreams (%s)",
			 f->cache_health.answering ? "answering but empty" : "not answering",
			 (unsigned long long)f->cache_health.records,
			 f->cache_health.last_answer_age_s < 0 ? "never" : "too long ago", f->mach.reason);
	} else if (f->gate.why != was && f->gate.why == EP_GATE_GRACE &&
		   f->cache_health.last_answer_age_s >= 0) {
		/* (An agent that just started has not checked the cache yet.) */
		log_warn("DNS: the cache stopped answering while failed over; the redirect is lifted "
			 "unless it is back within %llu ms",
			 (unsigned long long)(EP_DNS_CACHE_DOWN_LIFT_NS / 1000000ULL));
	}
	if (f->k8s && f->k8s_reported != f->mach.cache_mode)
		ep_k8s_set_dns_state(f->k8s, f->mach.cache_mode,
				     f->mach.cache_mode ? "DNSFailover" : "DNSHealthy", f->mach.reason);
	f->k8s_reported = f->mach.cache_mode;
}

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
		ep_dnsf_write_upstreams(f);
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
		ep_dns_silence_track(&u->silent_timeouts, &u->silent_slots, &u->slots[f->cur]);
		ep_dns_window_recent(&w[i], u->slots, f->n_slots, f->cur);
		w[i].silent_timeouts = u->silent_timeouts;
		w[i].silent_slots = u->silent_slots;
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
	(void)mode_changed; /* the tick applies the mode through the gate every time */
}

static void rotate(struct ep_dns_failover *f)
{
	f->cur = (f->cur + 1) % f->n_slots;
	for (size_t i = 0; i < f->n; i++)
		memset(&f->up[i].slots[f->cur], 0, sizeof(struct ep_dns_window));
}

/* ---- lifecycle ------------------------------------------------------------ */

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
			ep_dns_rto_init(&u->rto, cfg->dns.health.timeout_ms);
			/* The datapath counts by position: a new upstream in this
			 * slot starts from zero, not from its predecessor's totals.
			 * The same upstream in the same slot (an agent restart)
			 * keeps counting. */
			if (!ep_dnsf_pinned_slot_is(f, (uint32_t)i, &u->addr))
				ep_dnsf_zero_datapath_stats(f, (uint32_t)i);
		}
		/* A reload keeps what was learnt about the same upstream. */
		ep_dns_rto_set_ceiling(&u->rto, cfg->dns.health.timeout_ms);
		u->silent_timeouts = u->silent_slots = 0;
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
	f->k8s_reported = f->mach.cache_mode;
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
	if (ep_dnsf_datapath_in_cache_mode(f)) {
		f->mach.state = EP_DNS_FAILED_OVER;
		f->mach.cache_mode = true;
		f->gate.applied = true;
		snprintf(f->mach.reason, sizeof(f->mach.reason),
			 "the datapath was already answering from the cache when the agent started");
		log_warn("DNS: %s", f->mach.reason);
	}
	if (ep_dnsf_write_config(f, true) || ep_dnsf_write_upstreams(f)) {
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
	f->rb = ring_buffer__new(f->m.samples, ep_dnsf_on_sample, f, NULL);
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
	if (ep_dnsf_write_config(f, true) || ep_dnsf_write_upstreams(f)) {
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
			ep_dnsf_sync_snapshot(f);
		}
	}
	if (now < f->slot_ends_ns) {
		apply_mode(f);
		return;
	}
	f->slot_ends_ns = now + SLOT_NS;
	ep_dnsf_read_datapath(f);
	for (size_t i = 0; i < f->n; i++) {
		uint64_t late[8];
		size_t nl = ep_dns_prober_late_rtts(f->prober, i, late, 8);

		for (size_t k = 0; k < nl; k++)
			ep_dns_rto_sample(&f->up[i].rto, late[k]);
		ep_dns_prober_set_timeout(f->prober, i, ep_dns_rto_ns(&f->up[i].rto));
	}
	ep_dnsf_scan_pending(f, now);
	for (size_t i = 0; i < f->n; i++)
		ep_dns_prober_take(f->prober, i, &f->up[i].slots[f->cur]);
	evaluate(f, now);
	apply_mode(f);
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
	if (ep_dns_machine_override(&f->mach, o, ep_now_ns()))
		snprintf(f->mach.reason, sizeof(f->mach.reason), "manual override: edgeplane dns %s",
			 ep_dns_override_name(o));
	apply_mode(f);
	log_info("DNS: override set to %s", ep_dns_override_name(o));
	return 0;
}

bool ep_dns_failover_upstream_healthy(const struct ep_dns_failover *f)
{
	return f->mach.state == EP_DNS_HEALTHY && !f->mach.cache_mode;
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
