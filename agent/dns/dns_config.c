/*
 * Config section of DNS failover: the upstream resolvers, the local cache
 * (dnsmasq), health probing and the failover thresholds. The rules across
 * keys guard what the datapath cannot fix at run time: the cache must have an
 * address of each upstream's family to stand in for it, a probe timeout must
 * fit in a window, and a trust anchor must load now rather than when the
 * prober starts.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "config_schema.h"
#include "dns_name.h"
#include "dnssec_check.h"

/*
 * Paths that dnsmasq reads from its config file must reach it as written:
 * dns.cache.preload (addn-hosts=) and the runtime directory, the directory
 * of control.socket (log-facility=). Measured with dnsmasq 2.90, by what it
 * opens (strace) for addn-hosts=VALUE:
 *   "/a #b" -> "/a"        '#' after a space starts a comment
 *   " /a", "/a " -> "/a"   surrounding spaces are dropped
 *   "/a<TAB>b" -> "/a b"   a tab becomes a space
 *   "/\"q\"" -> "/q"       double quotes are removed; inside them
 *                          backslash escapes apply
 *   "/a#b", "/a,b", "/a  b", "/a\b" (outside quotes)   kept as written
 * addn-hosts and log-facility take one file name and do not split on ','.
 * Refused: control characters, '#' anywhere (that only a '#' after a space
 * starts a comment is a detail of the parser, not a promise), '"', '\', and
 * a leading or trailing space. The command line (--conf-file=DIR/...) is
 * taken verbatim (measured too), so these rules cover it as well.
 * domains and trust_anchor are read by the agent and the binary is exec()ed:
 * dnsmasq's parser never sees them.
 */
#define DNSMASQ_PATH_RULE "no '#', '\"', '\\', control characters or surrounding spaces"

static bool dnsmasq_reads_as_written(const char *s)
{
	size_t n = strlen(s);

	if (!ep_cfg_valid_text(s) || strpbrk(s, "#\"\\"))
		return false;
	return !n || (s[0] != ' ' && s[n - 1] != ' ');
}

static bool valid_dnsmasq_abspath(const char *s)
{
	return ep_cfg_valid_abspath(s) && dnsmasq_reads_as_written(s);
}

static const struct ep_cfg_field dns_cache_fields[] = {
	{ .key = "listen", .kind = EP_CFG_IP, EP_CFG_MEMBER(struct ep_cfg_dns, cache.listen) },
	{ .key = "listen6", .kind = EP_CFG_IP, EP_CFG_MEMBER(struct ep_cfg_dns, cache.listen6) },
	{ .key = "preload", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_dns, cache.preload),
	  .min = 1, .max = PATH_MAX - 1,
	  .expect = "an absolute path that dnsmasq reads as written (" DNSMASQ_PATH_RULE ")",
	  .valid_str = valid_dnsmasq_abspath },
	{ .key = "ttl", .kind = EP_CFG_INT, EP_CFG_MEMBER(struct ep_cfg_dns, cache.ttl), .min = 1,
	  .max = 86400 },
	{ .key = "domains", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_dns, cache.domains),
	  .min = 1, .max = PATH_MAX - 1, .expect = "an absolute path",
	  .valid_str = ep_cfg_valid_abspath },
	{ .key = "refresh_s", .kind = EP_CFG_INT, EP_CFG_MEMBER(struct ep_cfg_dns, cache.refresh_s),
	  .min = 0, .max = 604800 },
	{ .key = "max_loss_percent", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_dns, cache.max_loss_percent), .min = 0, .max = 100 },
	{ .key = "max_change_percent", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_dns, cache.max_change_percent), .min = 0, .max = 100 },
	{ .key = "cache_size", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_dns, cache.cache_size), .min = 0, .max = 1000000 },
	/* exec()ed as it is, never parsed by dnsmasq: only no control characters. */
	{ .key = "fallback", .kind = EP_CFG_IP_LIST, EP_CFG_MEMBER(struct ep_cfg_dns, cache.fallback),
	  .min = 0, .max = EP_CFG_MAX_FALLBACK,
	  .count_off = offsetof(struct ep_cfg_dns, cache.n_fallback) },
	{ .key = "dnsmasq", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_dns, cache.dnsmasq),
	  .min = 1, .max = PATH_MAX - 1, .expect = "a program name or path (no control characters)",
	  .valid_str = ep_cfg_valid_text },
};

static const struct ep_cfg_schema dns_cache_schema = {
	.what = "a mapping (listen, preload, ttl, domains, refresh_s, ...)",
	.fields = dns_cache_fields,
	.n_fields = EP_CFG_ARRAY_LEN(dns_cache_fields),
};

static const struct ep_cfg_field canary_probe_fields[] = {
	{ .key = "name", .kind = EP_CFG_STR, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_dns_canary, name), .min = 1, .max = 253,
	  .expect = "a DNS name", .valid_str = ep_dns_name_ok },
	{ .key = "expect", .kind = EP_CFG_IP_LIST, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_dns_canary, expect), .min = 1, .max = EP_CFG_MAX_EXPECT,
	  .count_off = offsetof(struct ep_cfg_dns_canary, n_expect) },
};

static const struct ep_cfg_schema canary_probe_schema = {
	.what = "a mapping (name, expect)",
	.fields = canary_probe_fields,
	.n_fields = EP_CFG_ARRAY_LEN(canary_probe_fields),
	.item_size = sizeof(struct ep_cfg_dns_canary),
	.line_off = offsetof(struct ep_cfg_dns_canary, line),
	.max_items = EP_CFG_MAX_CANARIES,
};

static const struct ep_cfg_field dns_health_fields[] = {
	{ .key = "probe_interval_ms", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_dns, health.probe_interval_ms), .min = 50, .max = 60000 },
	{ .key = "timeout_ms", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_dns, health.timeout_ms), .min = 50, .max = 30000 },
	{ .key = "canaries", .kind = EP_CFG_SEQ, EP_CFG_MEMBER(struct ep_cfg_dns, health.canaries),
	  .count_off = offsetof(struct ep_cfg_dns, health.n_canaries),
	  .sub = &canary_probe_schema },
	{ .key = "trust_anchor", .kind = EP_CFG_STR,
	  EP_CFG_MEMBER(struct ep_cfg_dns, health.trust_anchor), .min = 1, .max = PATH_MAX - 1,
	  .expect = "an absolute path", .valid_str = ep_cfg_valid_abspath },
	{ .key = "hijack_ratio", .kind = EP_CFG_RATIO,
	  EP_CFG_MEMBER(struct ep_cfg_dns, health.hijack_ratio_bp) },
};

static const struct ep_cfg_schema dns_health_schema = {
	.what = "a mapping (probe_interval_ms, timeout_ms, canaries, ...)",
	.fields = dns_health_fields,
	.n_fields = EP_CFG_ARRAY_LEN(dns_health_fields),
};

static const struct ep_cfg_enum drop_divergent_modes[] = {
	{ "always", EP_DROP_DIV_ALWAYS },
	{ "suspected", EP_DROP_DIV_SUSPECTED },
	{ "never", EP_DROP_DIV_NEVER },
	{ NULL, 0 },
};

static const struct ep_cfg_field dns_failover_fields[] = {
	{ .key = "timeout_ratio", .kind = EP_CFG_RATIO,
	  EP_CFG_MEMBER(struct ep_cfg_dns, failover.timeout_ratio_bp) },
	{ .key = "servfail_ratio", .kind = EP_CFG_RATIO,
	  EP_CFG_MEMBER(struct ep_cfg_dns, failover.servfail_ratio_bp) },
	{ .key = "window_ms", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_dns, failover.window_ms), .min = 100, .max = 600000 },
	{ .key = "min_samples", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_dns, failover.min_samples), .min = 1, .max = 1000000 },
	{ .key = "failback_after_s", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_dns, failover.failback_after_s), .min = 0, .max = 86400 },
	{ .key = "drop_divergent", .kind = EP_CFG_ENUM,
	  EP_CFG_MEMBER(struct ep_cfg_dns, failover.drop_divergent),
	  .enums = drop_divergent_modes },
};

static const struct ep_cfg_schema dns_failover_schema = {
	.what = "a mapping (timeout_ratio, servfail_ratio, window_ms, ...)",
	.fields = dns_failover_fields,
	.n_fields = EP_CFG_ARRAY_LEN(dns_failover_fields),
};

static const struct ep_cfg_field dns_fields[] = {
	{ .key = "upstreams", .kind = EP_CFG_IP_LIST, EP_CFG_MEMBER(struct ep_cfg_dns, upstreams),
	  .min = 1, .max = EP_CFG_MAX_UPSTREAMS,
	  .count_off = offsetof(struct ep_cfg_dns, n_upstreams) },
	{ .key = "cache", .kind = EP_CFG_MAP, .off = 0, .sub = &dns_cache_schema,
	  .has_present = true, .present_off = offsetof(struct ep_cfg_dns, cache.enabled) },
	{ .key = "health", .kind = EP_CFG_MAP, .off = 0, .sub = &dns_health_schema },
	{ .key = "failover", .kind = EP_CFG_MAP, .off = 0, .sub = &dns_failover_schema },
};

static const struct ep_cfg_schema dns_schema = {
	.what = "a mapping (upstreams, cache, health, failover)",
	.fields = dns_fields,
	.n_fields = EP_CFG_ARRAY_LEN(dns_fields),
};

static void dns_defaults(struct ep_config *cfg)
{
	struct ep_cfg_dns *d = &cfg->dns;

	/* NodeLocal DNSCache's link-local address; TTL 30 s (docs/dns-cache.md). */
	ep_ip_parse("169.254.20.10", &d->cache.listen);
	snprintf(d->cache.preload, sizeof(d->cache.preload), "%s",
		 "/var/lib/edgeplane/preload.hosts");
	snprintf(d->cache.dnsmasq, sizeof(d->cache.dnsmasq), "%s", "dnsmasq");
	d->cache.ttl = 30;
	d->cache.refresh_s = 300;
	d->cache.max_loss_percent = 10;
	d->cache.max_change_percent = 25;
	/* 0: dnsmasq sizes its hash table from cache-size, and loading a big
	 * hosts file into a table sized for 10000 takes seconds (4.5 s for 128k
	 * names, 0.36 s with 0; tests/bench/cache_serve.sh). Its only upstream
	 * is the cache's local policy responder: caching that gains nothing. */
	d->cache.cache_size = 0;
	d->health.probe_interval_ms = 200;
	d->health.timeout_ms = 500;
	d->health.hijack_ratio_bp = 2000;
	d->failover.timeout_ratio_bp = 2000;
	d->failover.servfail_ratio_bp = 2000;
	d->failover.window_ms = 1000;
	d->failover.min_samples = 5;
	d->failover.failback_after_s = 30;
}

static void dns_check(struct ep_cfg_ctx *c, struct ep_config *cfg)
{
	const struct ep_cfg_dns *d = &cfg->dns;
	char a[EP_IP_STRLEN];

	if (!d->configured)
		return;
	if (!d->n_upstreams && !ep_cfg_has_error(c, "dns.upstreams"))
		ep_cfg_err(c, ep_cfg_line(c, "dns", 0), "dns.upstreams",
			   "at least one upstream resolver is required in a dns section");
	/* A fallback is reached directly: were it an upstream, the datapath
	 * would send its queries back to the cache while failed over; were it
	 * the cache, they would go round in circles. */
	for (size_t i = 0; d->cache.enabled && i < d->cache.n_fallback; i++) {
		char key[48];
		const struct ep_ip *fb = &d->cache.fallback[i];

		snprintf(key, sizeof(key), "dns.cache.fallback[%zu]", i);
		for (size_t j = 0; j < d->n_upstreams; j++)
			if (ep_ip_eq(fb, &d->upstreams[j]))
				ep_cfg_err(c, ep_cfg_line(c, key, 0), key,
					   "%s is also an upstream: a fallback must be another resolver",
					   ep_ip_str(fb, a, sizeof(a)));
		if (ep_ip_eq(fb, &d->cache.listen) ||
		    (d->cache.listen6.family && ep_ip_eq(fb, &d->cache.listen6)))
			ep_cfg_err(c, ep_cfg_line(c, key, 0), key,
				   "%s is the cache's own address", ep_ip_str(fb, a, sizeof(a)));
	}
	for (size_t i = 0; d->cache.enabled && i < d->n_upstreams; i++) {
		if (ep_ip_eq(&d->upstreams[i], &d->cache.listen))
			ep_cfg_err(c, ep_cfg_line(c, "dns.cache.listen", 0), "dns.cache.listen",
				   "%s is also an upstream: the cache must listen on its own address",
				   ep_ip_str(&d->cache.listen, a, sizeof(a)));
		if (d->cache.listen6.family && ep_ip_eq(&d->upstreams[i], &d->cache.listen6))
			ep_cfg_err(c, ep_cfg_line(c, "dns.cache.listen6", 0), "dns.cache.listen6",
				   "%s is also an upstream: the cache must listen on its own address",
				   ep_ip_str(&d->cache.listen6, a, sizeof(a)));
	}
	if (d->cache.enabled && d->cache.listen6.family && !ep_cfg_has_error(c, "dns.cache.listen6")) {
		if (d->cache.listen6.family != EP_FAMILY_V6)
			ep_cfg_err(c, ep_cfg_line(c, "dns.cache.listen6", 0), "dns.cache.listen6",
				   "must be an IPv6 address (dns.cache.listen takes the IPv4 one)");
		else if (d->cache.listen.family == EP_FAMILY_V6)
			ep_cfg_err(c, ep_cfg_line(c, "dns.cache.listen6", 0), "dns.cache.listen6",
				   "dns.cache.listen is already IPv6; listen6 is for an IPv6 address next to "
				   "an IPv4 listen");
	}
	/* Failed over, a query can only be redirected to a cache address of its
	 * own family: an upstream the cache cannot stand in for would keep
	 * failing, silently. */
	for (size_t i = 0; d->cache.enabled && i < d->n_upstreams; i++) {
		int fam = d->upstreams[i].family;

		if (d->cache.listen.family != fam && d->cache.listen6.family != fam) {
			ep_cfg_err(c, ep_cfg_line(c, "dns.upstreams", 0), "dns.upstreams",
				   "%s is an IPv%c upstream but the cache has no IPv%c address to stand in "
				   "for it: set dns.cache.%s",
				   ep_ip_str(&d->upstreams[i], a, sizeof(a)), fam == EP_FAMILY_V6 ? '6' : '4',
				   fam == EP_FAMILY_V6 ? '6' : '4', fam == EP_FAMILY_V6 ? "listen6" : "listen");
			break;
		}
	}
	/* dnsmasq's config names files in the runtime directory, the directory
	 * of control.socket (log-facility=), and its command line the config. */
	if (d->cache.enabled && !ep_cfg_has_error(c, "control.socket")) {
		char dir[sizeof(cfg->control_socket)];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", cfg->control_socket);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		if (!dnsmasq_reads_as_written(dir))
			ep_cfg_err(c, ep_cfg_line(c, "control.socket", ep_cfg_line(c, "dns.cache", 0)),
				   "control.socket",
				   "its directory \"%s\" holds dnsmasq's files and is written into "
				   "dnsmasq.conf: it must be read as written (" DNSMASQ_PATH_RULE ")",
				   dir);
	}
	/* A bad trust anchor is a config error like any other: caught by
	 * --check-config and on reload, not only when the prober starts. */
	if (d->health.trust_anchor[0] && !ep_cfg_has_error(c, "dns.health.trust_anchor")) {
		struct ep_dnssec_anchor *an = NULL;
		char why[512] = "";

		if (ep_dnssec_anchor_load(d->health.trust_anchor, &an, why, sizeof(why)))
			ep_cfg_err(c, ep_cfg_line(c, "dns.health.trust_anchor", 0),
				   "dns.health.trust_anchor", "%s", why);
		ep_dnssec_anchor_free(an);
	}
	if (d->health.timeout_ms >= d->failover.window_ms && !ep_cfg_has_error(c, "dns.health.timeout_ms"))
		ep_cfg_err(c, ep_cfg_line(c, "dns.health.timeout_ms", 0), "dns.health.timeout_ms",
			   "must be shorter than dns.failover.window_ms (%u ms), or no timeout could be "
			   "counted within a window",
			   d->failover.window_ms);
}

const struct ep_cfg_section ep_cfg_dns_section = {
	.field = { .key = "dns", .kind = EP_CFG_MAP, EP_CFG_MEMBER(struct ep_config, dns),
		   .sub = &dns_schema, .has_present = true,
		   .present_off = offsetof(struct ep_cfg_dns, configured) },
	.defaults = dns_defaults,
	.check = dns_check,
};
