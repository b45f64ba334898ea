/*
 * DNS failover's reporting: the status JSON (edgeplane status, the control
 * socket) and the Prometheus text for /metrics, both read under the agent
 * lock from the state the tick keeps. Kept apart because the output is a
 * contract (docs/metrics.md) that changes for other reasons than the policy.
 */
#include "dns_failover_int.h"

#include <jansson.h>
#include <stdint.h>

#include "dns_probe.h"
#include "k8s.h"
#include "strbuf.h"
#include "util.h"

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
	/* What the datapath does; the machine's wish goes through the cache gate. */
	json_object_set_new(o, "mode", json_string(f->gate.applied ? "cache" : "upstream"));
	json_object_set_new(
		o, "cache_gate",
		json_pack("{s:b, s:b, s:o, s:I, s:b, s:s, s:I, s:I, s:I}", "cache_usable",
			  f->cache_health.usable, "cache_answering", f->cache_health.answering,
			  "last_answer_age_seconds",
			  f->cache_health.last_answer_age_s < 0 ? json_null()
								 : json_real(f->cache_health.last_answer_age_s),
			  "snapshot_records", (json_int_t)f->cache_health.records, "redirect_wanted",
			  f->mach.cache_mode, "gate", ep_dns_gate_why_name(f->gate.why), "lift_after_ms",
			  (json_int_t)(EP_DNS_CACHE_DOWN_LIFT_NS / 1000000ULL), "refusals",
			  (json_int_t)f->gate.refusals, "lifts", (json_int_t)f->gate.lifts));
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
		/* The timeout in force for this upstream and what it comes from
		 * (dns_rto.h); null figures before the first answer. */
		json_object_set_new(
			j, "rtt",
			json_pack("{s:o, s:o, s:f, s:f, s:f, s:I, s:I, s:I}", "srtt_ms",
				  u->rto.samples ? json_real((double)u->rto.srtt_us / 1000.0) : json_null(),
				  "rttvar_ms",
				  u->rto.samples ? json_real((double)u->rto.rttvar_us / 1000.0) : json_null(),
				  "rto_ms", (double)u->rto.rto_us / 1000.0, "floor_ms",
				  (double)u->rto.floor_us / 1000.0, "ceiling_ms",
				  (double)u->rto.ceil_us / 1000.0, "samples", (json_int_t)u->rto.samples,
				  "silent_timeouts", (json_int_t)u->silent_timeouts, "silent_ms",
				  (json_int_t)(u->silent_slots * 100)));
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
	ep_sb_printf(b, "# HELP edgeplane_dns_rto_seconds Current timeout per upstream, from its observed latency (srtt + 4 rttvar, floor and ceiling).\n"
			"# TYPE edgeplane_dns_rto_seconds gauge\n");
	for (size_t i = 0; i < f->n; i++)
		ep_sb_printf(b, "edgeplane_dns_rto_seconds{upstream=\"%s\"} %.6f\n", f->up[i].name,
			     (double)f->up[i].rto.rto_us / 1e6);
	ep_sb_printf(b, "# HELP edgeplane_dns_mode 0: queries go to the upstreams; 1: the local cache answers them.\n"
			"# TYPE edgeplane_dns_mode gauge\nedgeplane_dns_mode %d\n",
		     f->gate.applied ? 1 : 0);
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
