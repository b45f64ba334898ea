/*
 * The config loader against the contract in docs/config.md:
 * values and defaults of a good file, and for every key a wrong type and a
 * wrong value, each checked for the exact key path and line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dns_name.h"
#include "tap.h"

static struct ep_config cfg;
static struct ep_cfg_errors errs;

static void dump_errors(void)
{
	size_t i;

	for (i = 0; i < errs.n; i++)
		tap_diag("  line %d key '%s': %s", errs.v[i].line, errs.v[i].key, errs.v[i].msg);
}

static int parse(const char *yaml)
{
	ep_config_free(&cfg);
	ep_cfg_errors_free(&errs);
	return ep_config_parse(yaml, strlen(yaml), &cfg, &errs);
}

static const struct ep_cfg_error *find_error(const char *key, int line, const char *want)
{
	size_t i;

	for (i = 0; i < errs.n; i++)
		if (!strcmp(errs.v[i].key, key) && errs.v[i].line == line &&
		    strstr(errs.v[i].msg, want))
			return &errs.v[i];
	return NULL;
}

/* One assertion: YAML is rejected with an error at KEY:LINE mentioning WANT. */
static void expect_error(const char *name, const char *yaml, const char *key, int line,
			 const char *want)
{
	int rc = parse(yaml);

	if (!tap_ok(rc == -EINVAL && find_error(key, line, want) && cfg.services == NULL,
		    "%s: '%s' line %d: %s", name, key, line, want))
		dump_errors();
}

static void expect_ok(const char *name, const char *yaml)
{
	if (!tap_ok(parse(yaml) == 0 && errs.n == 0, "%s: accepted", name))
		dump_errors();
}

static bool ip_is(const struct ep_ip *ip, const char *s)
{
	struct ep_ip want;

	return !ep_ip_parse(s, &want) && ep_ip_eq(ip, &want);
}

/* Lines 1-5; a case appends service keys from line 6. */
#define SVC                                                                                        \
	"interfaces: [{name: eth0, role: uplink}]\n"                                               \
	"services:\n"                                                                              \
	"  - name: web\n"                                                                          \
	"    vip: 10.0.0.1\n"                                                                      \
	"    port: 80\n"
/* Lines 1-8; a case appends keys of backends[0] from line 9. */
#define BE                                                                                         \
	SVC "    backends:\n"                                                                      \
	    "      - address: 10.1.0.1\n"                                                          \
	    "        port: 8080\n"

static const char full_config[] = "node:\n"					/* 1 */
				  "  name: edge-01\n"				/* 2 */
				  "datapath:\n"					/* 3 */
				  "  bpffs: /sys/fs/bpf/ep-test\n"		/* 4 */
				  "  xdp_mode: skb\n"				/* 5 */
				  "  forwarding: redirect\n"			/* 6 */
				  "  conntrack_size: 65536\n"			/* 7 */
				  "  maglev_table_size: 65537\n"		/* 8 */
				  "  conntrack_timeout_tcp_s: 7200\n"		/* 9 */
				  "  conntrack_timeout_udp_s: 30\n"		/* 10 */
				  "interfaces:\n"				/* 11 */
				  "  - {name: eth0, role: uplink}\n"		/* 12 */
				  "  - name: veth-pods\n"			/* 13 */
				  "    role: pods\n"				/* 14 */
				  "services:\n"					/* 15 */
				  "  - name: web\n"				/* 16 */
				  "    vip: 10.0.0.100\n"			/* 17 */
				  "    port: 80\n"				/* 18 */
				  "    protocol: tcp\n"				/* 19 */
				  "    backends:\n"				/* 20 */
				  "      - {address: 10.1.0.11, port: 8080, weight: 1}\n" /* 21 */
				  "      - address: 10.1.0.12\n"		/* 22 */
				  "        port: 8081\n"			/* 23 */
				  "        weight: 300\n"			/* 24 */
				  "        canary: true\n"			/* 25 */
				  "    canary:\n"				/* 26 */
				  "      percent: 2.5\n"			/* 27 */
				  "      sticky: flow\n"			/* 28 */
				  "  - name: dns6\n"				/* 29 */
				  "    vip: \"fd00::53\"\n"			/* 30 */
				  "    port: 53\n"				/* 31 */
				  "    protocol: udp\n"				/* 32 */
				  "    backends:\n"				/* 33 */
				  "      - {address: 'fd00:1::1', port: 5353, weight: 0, canary: false}\n"
				  "metrics:\n"					/* 35 */
				  "  listen: \"[::1]:9464\"\n"			/* 36 */
				  "control:\n"					/* 37 */
				  "  socket: /run/ep-test/agent.sock\n";	/* 38 */

static void test_full(void)
{
	const struct ep_cfg_service *web, *dns;

	expect_ok("full config", full_config);
	tap_ok(!strcmp(cfg.node_name, "edge-01"), "node.name");
	tap_ok(!strcmp(cfg.datapath.bpffs, "/sys/fs/bpf/ep-test"), "datapath.bpffs");
	tap_ok(cfg.datapath.xdp_mode == EP_XDP_SKB, "datapath.xdp_mode skb");
	tap_ok(cfg.datapath.forwarding == EP_FWD_REDIRECT, "datapath.forwarding redirect");
	tap_ok(cfg.datapath.conntrack_size == 65536, "datapath.conntrack_size");
	tap_ok(cfg.datapath.maglev_table_size == 65537, "datapath.maglev_table_size");
	tap_ok(cfg.datapath.ct_timeout_tcp_s == 7200, "datapath.conntrack_timeout_tcp_s");
	tap_ok(cfg.datapath.ct_timeout_udp_s == 30, "datapath.conntrack_timeout_udp_s");
	tap_ok(cfg.n_ifaces == 2 && !strcmp(cfg.ifaces[0].name, "eth0") &&
		       cfg.ifaces[0].role == EP_ROLE_UPLINK && cfg.ifaces[0].line == 12,
	       "interfaces[0] eth0 uplink at line 12");
	tap_ok(cfg.n_ifaces == 2 && !strcmp(cfg.ifaces[1].name, "veth-pods") &&
		       cfg.ifaces[1].role == EP_ROLE_PODS && cfg.ifaces[1].line == 13,
	       "interfaces[1] veth-pods pods at line 13");
	tap_ok(cfg.n_services == 2, "two services");
	web = ep_config_find_service(&cfg, "web");
	dns = ep_config_find_service(&cfg, "dns6");
	tap_ok(web == &cfg.services[0] && dns == &cfg.services[1], "find_service");
	tap_ok(ep_config_find_service(&cfg, "nope") == NULL, "find_service of an unknown name");
	if (!web || !dns)
		return;
	tap_ok(ip_is(&web->vip, "10.0.0.100") && web->port == 80 && web->proto == IPPROTO_TCP &&
		       web->line == 16,
	       "services[0] vip, port, protocol, line");
	tap_ok(web->n_backends == 2 && ip_is(&web->backends[0].addr, "10.1.0.11") &&
		       web->backends[0].port == 8080 && web->backends[0].weight == 1 &&
		       !web->backends[0].canary && web->backends[0].line == 21,
	       "services[0].backends[0]");
	tap_ok(web->n_backends == 2 && ip_is(&web->backends[1].addr, "10.1.0.12") &&
		       web->backends[1].port == 8081 && web->backends[1].weight == 300 &&
		       web->backends[1].canary && web->backends[1].line == 22,
	       "services[0].backends[1] canary, weight 300");
	tap_ok(web->canary.percent_bp == 250 && web->canary.sticky_flow, "canary 2.5%% sticky flow");
	tap_ok(ip_is(&dns->vip, "fd00::53") && dns->port == 53 && dns->proto == IPPROTO_UDP,
	       "services[1] IPv6 udp");
	tap_ok(dns->n_backends == 1 && ip_is(&dns->backends[0].addr, "fd00:1::1") &&
		       dns->backends[0].weight == 0 && !dns->backends[0].canary,
	       "services[1].backends[0] weight 0");
	tap_ok(!strcmp(cfg.metrics_listen, "[::1]:9464"), "metrics.listen");
	tap_ok(!strcmp(cfg.control_socket, "/run/ep-test/agent.sock"), "control.socket");
}

static const char dns_config[] = "dns:\n"				/* 1 */
				 "  upstreams: [10.2.0.53, \"fd00::53\"]\n"	/* 2 */
				 "  cache:\n"					/* 3 */
				 "    listen: 169.254.20.11\n"			/* 4 */
				 "    listen6: \"fd00::ca:53\"\n"			/* 5 */
				 "    preload: /var/lib/ep/p.hosts\n"		/* 6 */
				 "    ttl: 20\n"				/* 7 */
				 "    domains: /etc/ep/domains.txt\n"		/* 8 */
				 "    refresh_s: 0\n"				/* 9 */
				 "    max_loss_percent: 25\n"			/* 10 */
				 "    cache_size: 0\n"				/* 11 */
				 "    dnsmasq: /usr/sbin/dnsmasq\n"		/* 12 */
				 "  health:\n"					/* 13 */
				 "    probe_interval_ms: 250\n"		/* 14 */
				 "    timeout_ms: 400\n"			/* 15 */
				 "    canaries:\n"				/* 16 */
				 "      - {name: probe.edge.example, expect: [192.0.2.10, \"2001:db8::10\"]}\n"
				 "    trust_anchor: /tmp/ep-anchor-XXXXXX\n"	/* 18 */
				 "    hijack_ratio: 0.05\n"			/* 19 */
				 "  failover:\n"				/* 20 */
				 "    timeout_ratio: 0.2\n"			/* 21 */
				 "    servfail_ratio: 1\n"			/* 22 */
				 "    window_ms: 2000\n"			/* 23 */
				 "    min_samples: 7\n"			/* 24 */
				 "    failback_after_s: 45\n"			/* 25 */
				 "    drop_divergent: suspected\n"		/* 26 */
				 "kubernetes:\n"				/* 27 */
				 "  enabled: true\n"				/* 28 */
				 "  api_server: https://10.0.0.1:6443\n"	/* 29 */
				 "  token_file: /var/run/tok\n"		/* 30 */
				 "  ca_file: /var/run/ca.crt\n"		/* 31 */
				 "  dns_unhealthy_label: example.com/dns-down\n" /* 32 */
				 "  event_namespace: kube-system\n";		/* 33 */

/* A DS record is enough for the loader: it checks syntax, algorithm, digest
 * type and length, not that a key exists. */
static const char anchor_ds[] =
	"; test anchor\n"
	"probe.edge.example. 3600 IN DS 12345 13 2 "
	"3490A6806D47F17A34C29E2CE80E8A999FFBE4BE2F4B3A1F5F5C9D6F0D1E2C3B\n";

static void test_dns_kubernetes(void)
{
	const struct ep_cfg_dns *d = &cfg.dns;
	char anchor[] = "/tmp/ep-anchor-XXXXXX", garbage[] = "/tmp/ep-anchor-XXXXXX";
	char *yaml = strdup(dns_config), *at;
	int fd = mkstemp(anchor), gd = mkstemp(garbage);

	if (fd < 0 || gd < 0 || !yaml || write(fd, anchor_ds, strlen(anchor_ds)) < 0 ||
	    write(gd, "not a DNS record\n", 17) < 0)
		tap_diag("cannot write the test anchors");
	close(fd);
	close(gd);
	at = strstr(yaml, "/tmp/ep-anchor-XXXXXX");
	memcpy(at, anchor, strlen(anchor));
	expect_ok("dns and kubernetes config", yaml);
	tap_ok(d->configured && d->n_upstreams == 2 && ip_is(&d->upstreams[0], "10.2.0.53") &&
		       ip_is(&d->upstreams[1], "fd00::53"),
	       "dns.upstreams (IPv4 and IPv6)");
	tap_ok(d->cache.enabled && ip_is(&d->cache.listen, "169.254.20.11") &&
		       ip_is(&d->cache.listen6, "fd00::ca:53") &&
		       !strcmp(d->cache.preload, "/var/lib/ep/p.hosts") && d->cache.ttl == 20 &&
		       !strcmp(d->cache.domains, "/etc/ep/domains.txt") && d->cache.refresh_s == 0 &&
		       d->cache.max_loss_percent == 25 && d->cache.cache_size == 0 &&
		       !strcmp(d->cache.dnsmasq, "/usr/sbin/dnsmasq"),
	       "dns.cache keys");
	tap_ok(d->health.probe_interval_ms == 250 && d->health.timeout_ms == 400 &&
		       d->health.n_canaries == 1 && d->health.canaries[0].line == 17 &&
		       !strcmp(d->health.canaries[0].name, "probe.edge.example") &&
		       d->health.canaries[0].n_expect == 2 &&
		       ip_is(&d->health.canaries[0].expect[1], "2001:db8::10") &&
		       !strcmp(d->health.trust_anchor, anchor) &&
		       d->health.hijack_ratio_bp == 500,
	       "dns.health keys, canary at line 17, hijack_ratio 0.05 = 500 bp");
	tap_ok(d->failover.timeout_ratio_bp == 2000 && d->failover.servfail_ratio_bp == 10000 &&
		       d->failover.window_ms == 2000 && d->failover.min_samples == 7 &&
		       d->failover.failback_after_s == 45 &&
		       d->failover.drop_divergent == EP_DROP_DIV_SUSPECTED,
	       "dns.failover keys (ratios as basis points)");
	tap_ok(cfg.kubernetes.enabled == EP_K8S_ON &&
		       !strcmp(cfg.kubernetes.api_server, "https://10.0.0.1:6443") &&
		       !strcmp(cfg.kubernetes.token_file, "/var/run/tok") &&
		       !strcmp(cfg.kubernetes.ca_file, "/var/run/ca.crt") &&
		       !strcmp(cfg.kubernetes.dns_unhealthy_label, "example.com/dns-down") &&
		       !strcmp(cfg.kubernetes.event_namespace, "kube-system"),
	       "kubernetes keys");

	memcpy(at, garbage, strlen(garbage));
	expect_error("garbage trust anchor", yaml, "dns.health.trust_anchor", 18, garbage);
	unlink(garbage);
	expect_error("missing trust anchor", yaml, "dns.health.trust_anchor", 18, garbage);
	unlink(anchor);
	free(yaml);

	expect_ok("dns defaults", "dns:\n  upstreams: [10.2.0.53]\n  cache: {}\n");
	tap_ok(d->cache.enabled && ip_is(&d->cache.listen, "169.254.20.10") && d->cache.ttl == 30 &&
		       !strcmp(d->cache.preload, "/var/lib/edgeplane/preload.hosts") &&
		       d->cache.refresh_s == 300 && d->cache.max_loss_percent == 10 &&
		       d->cache.max_change_percent == 25,
	       "dns.cache defaults: 169.254.20.10, TTL 30, refresh 300 s, loss guard 10%%, change guard 25%%");
	expect_ok("dns.cache.max_change_percent", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    max_change_percent: 60\n");
	tap_ok(d->cache.max_change_percent == 60, "dns.cache.max_change_percent: 60");
	tap_ok(d->cache.n_fallback == 0, "dns.cache.fallback: none by default");
	expect_ok("dns.cache.fallback",
		  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    fallback: [192.0.2.1, \"2001:db8::1\"]\n");
	tap_ok(d->cache.n_fallback == 2 && ip_is(&d->cache.fallback[0], "192.0.2.1") &&
		       ip_is(&d->cache.fallback[1], "2001:db8::1"),
	       "dns.cache.fallback: two resolvers, in order");
	tap_ok(d->failover.timeout_ratio_bp == 2000 && d->failover.window_ms == 1000 &&
		       d->failover.failback_after_s == 30 && d->health.probe_interval_ms == 200 &&
		       d->failover.drop_divergent == EP_DROP_DIV_ALWAYS && !d->cache.listen6.family &&
		       d->health.timeout_ms == 500,
	       "dns health/failover defaults as docs/config.md gives them");
	expect_ok("no dns section", "node: {name: a}\n");
	tap_ok(!cfg.dns.configured && !cfg.dns.cache.enabled && cfg.kubernetes.enabled == EP_K8S_AUTO &&
		       !strcmp(cfg.kubernetes.dns_unhealthy_label, "edgeplane.io/dns-unhealthy"),
	       "no dns section: DNS off; kubernetes auto with the default label");
	expect_ok("label name with capitals (allowed by the API server)",
		  "kubernetes:\n  dns_unhealthy_label: example.com/DNS-Down\n");
	expect_ok("dns without cache", "dns:\n  upstreams: [10.2.0.53]\n");
	tap_ok(cfg.dns.configured && !cfg.dns.cache.enabled, "dns without a cache section: no cache");
}

/*
 * One label-key rule for the config and the Kubernetes client: a key that
 * --check-config accepts must not be refused when the client starts
 * (edgeplane.io./dns-unhealthy once was). Kubernetes' own definition: an
 * optional lower-case RFC 1123 subdomain without a trailing dot, '/', then a
 * name of 1-63 [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?.
 */
static void test_label_keys(void)
{
	static const struct {
		const char *key;
		bool ok;
	} cases[] = {
		{ "dns-unhealthy", true },
		{ "edgeplane.io/dns-unhealthy", true },
		{ "edgeplane.io/DNS_down.v1", true },
		{ "a-b.example.com/x", true },
		{ "edgeplane.io/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", true },
		{ "edgeplane.io./dns-unhealthy", false },
		{ ".edgeplane.io/x", false },
		{ "edgeplane..io/x", false },
		{ "edgeplane.io-/x", false },
		{ "Edgeplane.io/x", false },
		{ "edge_plane.io/x", false },
		{ "/x", false },
		{ "edgeplane.io/", false },
		{ "edgeplane.io/-x", false },
		{ "edgeplane.io/x.", false },
		{ "a/b/c", false },
		{ "edgeplane.io/x y", false },
		{ "edgeplane.io/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", false },
	};
	char yaml[256], path[] = "/tmp/ep-test-label-XXXXXX", *buf = NULL;
	size_t i, len = 0;
	FILE *f;
	int fd;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(yaml, sizeof(yaml), "kubernetes:\n  dns_unhealthy_label: \"%s\"\n",
			 cases[i].key);
		if (cases[i].ok)
			expect_ok(cases[i].key, yaml);
		else
			expect_error(cases[i].key, yaml, "kubernetes.dns_unhealthy_label", 2,
				     "expected a Kubernetes label key");
		tap_ok(ep_label_key_ok(cases[i].key) == cases[i].ok,
		       "the Kubernetes client agrees on '%s'", cases[i].key);
	}
	expect_error("namespace with capitals", "kubernetes:\n  event_namespace: Default\n",
		     "kubernetes.event_namespace", 2, "expected a namespace name");

	/* What --check-config prints for the defect: file, line, key. */
	fd = mkstemp(path);
	if (!tap_ok(fd >= 0, "temporary file"))
		return;
	snprintf(yaml, sizeof(yaml), "node: {name: a}\nkubernetes:\n"
				     "  dns_unhealthy_label: edgeplane.io./dns-unhealthy\n");
	if (write(fd, yaml, strlen(yaml)) != (ssize_t)strlen(yaml))
		tap_diag("short write");
	close(fd);
	ep_config_free(&cfg);
	ep_cfg_errors_free(&errs);
	tap_ok(ep_config_load(path, &cfg, &errs, NULL) == -EINVAL && errs.n == 1,
	       "trailing dot in the label prefix: the load fails");
	f = open_memstream(&buf, &len);
	if (f) {
		ep_cfg_errors_print(&errs, path, f);
		fclose(f);
	}
	snprintf(yaml, sizeof(yaml), "%s:3: kubernetes.dns_unhealthy_label: expected", path);
	tap_ok(buf && !strncmp(buf, yaml, strlen(yaml)), "printed with file, line 3 and key");
	free(buf);
	ep_cfg_errors_free(&errs);
	unlink(path);
}

static void test_defaults(void)
{
	char host[256] = "";

	setenv("NODE_NAME", "from-env", 1);
	expect_ok("empty mapping", "{}\n");
	tap_ok(!strcmp(cfg.node_name, "from-env"), "node.name defaults to $NODE_NAME");
	tap_ok(!strcmp(cfg.datapath.bpffs, "/sys/fs/bpf/edgeplane"), "default bpffs");
	tap_ok(cfg.datapath.cgroup_root[0] == '\0', "default cgroup_root: none (auto)");
	tap_ok(cfg.datapath.xdp_mode == EP_XDP_NATIVE && cfg.datapath.forwarding == EP_FWD_STACK,
	       "default xdp_mode native, forwarding stack");
	tap_ok(cfg.datapath.conntrack_size == EP_CT_DEFAULT_SIZE &&
		       cfg.datapath.maglev_table_size == EP_MAGLEV_DEFAULT_SIZE,
	       "default conntrack and maglev sizes");
	tap_ok(cfg.datapath.ct_timeout_tcp_s == 3600 && cfg.datapath.ct_timeout_udp_s == 60,
	       "default conntrack timeouts");
	tap_ok(!strcmp(cfg.metrics_listen, "127.0.0.1:9464"), "default metrics.listen");
	tap_ok(!strcmp(cfg.control_socket, "/run/edgeplane/agent.sock"), "default control.socket");
	tap_ok(cfg.n_ifaces == 0 && cfg.n_services == 0, "no interfaces, no services");

	unsetenv("NODE_NAME");
	gethostname(host, sizeof(host) - 1);
	expect_ok("empty sections", "node:\ndatapath:\ninterfaces:\nservices:\nmetrics:\ncontrol:\n");
	tap_ok(host[0] && !strcmp(cfg.node_name, host), "node.name defaults to the hostname");

	expect_ok("service defaults", SVC "    backends:\n      - {address: 10.1.0.1, port: 8080}\n"
					  "    canary: {percent: 5}\n");
	tap_ok(cfg.n_services == 1 && cfg.services[0].proto == IPPROTO_TCP,
	       "protocol defaults to tcp");
	tap_ok(cfg.n_services == 1 && cfg.services[0].n_backends == 1 &&
		       cfg.services[0].backends[0].weight == 1 && !cfg.services[0].backends[0].canary,
	       "weight defaults to 1, canary to false");
	tap_ok(cfg.n_services == 1 && cfg.services[0].canary.percent_bp == 500 &&
		       !cfg.services[0].canary.sticky_flow,
	       "canary 5%% = 500 bp, sticky defaults to client");
	tap_ok(cfg.n_services == 1 && cfg.services[0].canary.present &&
		       !cfg.services[0].canary.http && cfg.services[0].canary.n_steps == 0 &&
		       cfg.services[0].canary.step_interval_s == 60 &&
		       cfg.services[0].canary.on_rollback == EP_CANARY_KEEP,
	       "canary defaults: http false, no ramp, step_interval_s 60, on_rollback keep");
	tap_ok(cfg.services[0].canary.rollback.enabled &&
		       cfg.services[0].canary.rollback.window_ms == 100 &&
		       cfg.services[0].canary.rollback.min_samples == 20 &&
		       cfg.services[0].canary.rollback.max_failure_bp == 500 &&
		       cfg.services[0].canary.rollback.margin_bp == 200,
	       "rollback defaults: enabled, 100 ms, 20 samples, ratio 0.05, margin 0.02");
	expect_ok("canary ramp and rollback",
		  SVC "    canary:\n      http: true\n      steps: [1, 5, 25, 50, 100]\n"
		      "      step_interval_s: 5\n      on_rollback: reset\n"
		      "      rollback: {enabled: false, window_ms: 250, min_samples: 7, "
		      "max_failure_ratio: 0.1, margin: 0.05}\n");
	tap_ok(cfg.services[0].canary.http && cfg.services[0].canary.n_steps == 5 &&
		       cfg.services[0].canary.steps_bp[0] == 100 &&
		       cfg.services[0].canary.steps_bp[4] == 10000 &&
		       cfg.services[0].canary.step_interval_s == 5 &&
		       cfg.services[0].canary.on_rollback == EP_CANARY_RESET,
	       "canary http, steps [1..100] in bp, step_interval_s, on_rollback reset");
	tap_ok(!cfg.services[0].canary.rollback.enabled &&
		       cfg.services[0].canary.rollback.window_ms == 250 &&
		       cfg.services[0].canary.rollback.min_samples == 7 &&
		       cfg.services[0].canary.rollback.max_failure_bp == 1000 &&
		       cfg.services[0].canary.rollback.margin_bp == 500,
	       "canary.rollback keys read");
	expect_ok("service without backends", SVC);
	tap_ok(!cfg.services[0].canary.present, "no canary section: not present");
	tap_ok(cfg.n_services == 1 && cfg.services[0].n_backends == 0 &&
		       cfg.services[0].canary.percent_bp == 0,
	       "no backends, no canary share");
	expect_ok("metrics disabled", "metrics: {listen: \"\"}\n");
	tap_ok(cfg.metrics_listen[0] == '\0', "metrics.listen \"\" disables");
	expect_ok("metrics on all addresses", "metrics: {listen: \":9100\"}\n");
	tap_ok(!strcmp(cfg.metrics_listen, ":9100"), "metrics.listen :9100");
}

static void test_values(void)
{
	static const struct {
		const char *percent;
		uint32_t bp;
	} pc[] = { { "0", 0 }, { "0.25", 25 }, { "5", 500 }, { "33.3", 3330 }, { "100", 10000 },
		   { "100.00", 10000 } };
	char y[512];
	size_t i;

	for (i = 0; i < sizeof(pc) / sizeof(pc[0]); i++) {
		snprintf(y, sizeof(y), SVC "    canary: {percent: %s}\n", pc[i].percent);
		tap_ok(parse(y) == 0 && cfg.services[0].canary.percent_bp == pc[i].bp,
		       "canary.percent %s = %u bp", pc[i].percent, pc[i].bp);
	}
	expect_ok("IPv6 VIP and backends", "interfaces: [{name: eth0, role: uplink}]\n"
					   "services:\n"
					   "  - {name: v6, vip: 'fd00::1', port: 443, backends: "
					   "[{address: 'fd00:1::2', port: 8443}]}\n");
	expect_ok("interface names", "interfaces:\n  - {name: eth0.100, role: uplink}\n"
				     "  - {name: veth_a@b-c, role: pods}\n"
				     "  - {name: abcdefghijklmno, role: pods}\n");
	expect_ok("service names", SVC "  - {name: a, vip: 10.0.0.2, port: 80}\n"
				       "  - {name: a.b_c-9, vip: 10.0.0.3, port: 80}\n");
	expect_ok("same VIP:port on udp and tcp", SVC "  - {name: web-udp, vip: 10.0.0.1, port: 80, "
						  "protocol: udp}\n");
	expect_ok("maglev size bounds", "datapath: {maglev_table_size: 251}\n");
	expect_ok("maglev size max", "datapath: {maglev_table_size: 1000003}\n");
	expect_ok("quoted strings", "node: {name: \"edge 01\"}\ncontrol: {socket: '/run/x.sock'}\n");
	expect_ok("anchors and aliases used sanely",
		  "interfaces: [{name: eth0, role: uplink}]\n"
		  "services:\n"
		  "  - {name: a, vip: 10.0.0.1, port: 80, backends: &be [{address: 10.1.0.1, port: 1}]}\n"
		  "  - {name: b, vip: 10.0.0.2, port: 80, backends: *be}\n");
	tap_ok(cfg.n_services == 2 && cfg.services[1].n_backends == 1 &&
		       cfg.services[1].backends != cfg.services[0].backends,
	       "an aliased list is copied per service");
}

struct bad_case {
	const char *name, *yaml, *key;
	int line;
	const char *want;
};

static const struct bad_case bad_cases[] = {
	/* node */
	{ "node type", "node: [a]\n", "node", 1, "expected a mapping (name), got a list" },
	{ "node.name type", "node:\n  name: [x]\n", "node.name", 2, "got a list" },
	{ "node.name mapping", "node:\n  name: {a: 1}\n", "node.name", 2, "got a mapping" },
	{ "node.name empty", "node:\n  name: \"\"\n", "node.name", 2, "expected a node name" },
	{ "node.name null", "node:\n  name:\n", "node.name", 2, "got null" },
	/* datapath */
	{ "datapath type", "datapath: 5\n", "datapath", 1, "expected a mapping" },
	{ "bpffs type", "datapath:\n  bpffs: [a]\n", "datapath.bpffs", 2, "got a list" },
	{ "cgroup_root relative", "datapath:\n  cgroup_root: sys/fs/cgroup\n", "datapath.cgroup_root", 2,
	  "expected an absolute path" },
	{ "bpffs relative", "datapath:\n  bpffs: sys/fs/bpf\n", "datapath.bpffs", 2,
	  "expected an absolute path, got \"sys/fs/bpf\"" },
	{ "xdp_mode type", "datapath:\n  xdp_mode: {a: 1}\n", "datapath.xdp_mode", 2, "got a mapping" },
	{ "xdp_mode value", "datapath:\n  xdp_mode: generic\n", "datapath.xdp_mode", 2,
	  "expected one of native, skb, got \"generic\"" },
	{ "forwarding type", "datapath:\n  forwarding: []\n", "datapath.forwarding", 2, "got a list" },
	{ "forwarding value", "datapath:\n  forwarding: fast\n", "datapath.forwarding", 2,
	  "expected one of stack, redirect, got \"fast\"" },
	{ "conntrack_size type", "datapath:\n  conntrack_size: big\n", "datapath.conntrack_size", 2,
	  "expected an integer 1024-16777216, got \"big\"" },
	{ "conntrack_size low", "datapath:\n  conntrack_size: 1023\n", "datapath.conntrack_size",
	  2, "expected an integer 1024-16777216, got \"1023\"" },
	{ "conntrack_size high", "datapath:\n  conntrack_size: 16777217\n",
	  "datapath.conntrack_size", 2, "got \"16777217\"" },
	{ "conntrack_size float", "datapath:\n  conntrack_size: 2048.0\n",
	  "datapath.conntrack_size", 2, "got \"2048.0\"" },
	{ "conntrack_size overflow", "datapath:\n  conntrack_size: 99999999999999999999999\n",
	  "datapath.conntrack_size", 2, "expected an integer" },
	{ "maglev type", "datapath:\n  maglev_table_size: [1]\n", "datapath.maglev_table_size", 2,
	  "expected a prime number 251-1000003, got a list" },
	{ "maglev not prime", "datapath:\n  maglev_table_size: 1000\n",
	  "datapath.maglev_table_size", 2, "not prime; nearest primes are 997 and 1009" },
	{ "maglev small", "datapath:\n  maglev_table_size: 241\n", "datapath.maglev_table_size", 2,
	  "expected a prime number 251-1000003, got \"241\"" },
	{ "maglev large", "datapath:\n  maglev_table_size: 1000033\n",
	  "datapath.maglev_table_size", 2, "got \"1000033\"" },
	{ "tcp timeout type", "datapath:\n  conntrack_timeout_tcp_s: [1]\n",
	  "datapath.conntrack_timeout_tcp_s", 2, "got a list" },
	{ "tcp timeout zero", "datapath:\n  conntrack_timeout_tcp_s: 0\n",
	  "datapath.conntrack_timeout_tcp_s", 2, "expected an integer 1-604800, got \"0\"" },
	{ "tcp timeout high", "datapath:\n  conntrack_timeout_tcp_s: 604801\n",
	  "datapath.conntrack_timeout_tcp_s", 2, "expected an integer 1-604800" },
	{ "udp timeout type", "datapath:\n  conntrack_timeout_udp_s: true\n",
	  "datapath.conntrack_timeout_udp_s", 2, "got \"true\"" },
	{ "udp timeout high", "datapath:\n  conntrack_timeout_udp_s: 86401\n",
	  "datapath.conntrack_timeout_udp_s", 2, "expected an integer 1-86400, got \"86401\"" },
	{ "udp timeout negative", "datapath:\n  conntrack_timeout_udp_s: -5\n",
	  "datapath.conntrack_timeout_udp_s", 2, "got \"-5\"" },
	/* interfaces */
	{ "interfaces type", "interfaces: eth0\n", "interfaces", 1, "expected a list, got \"eth0\"" },
	{ "interface item type", "interfaces:\n  - eth0\n", "interfaces[0]", 2,
	  "expected an interface mapping (name, role), got \"eth0\"" },
	{ "interface name type", "interfaces:\n  - name: [eth0]\n    role: uplink\n",
	  "interfaces[0].name", 2, "got a list" },
	{ "interface name too long", "interfaces:\n  - {name: abcdefghijklmnop, role: uplink}\n",
	  "interfaces[0].name", 2, "expected an interface name (1-15 characters" },
	{ "interface name chars", "interfaces:\n  - {name: eth0, role: uplink}\n"
				  "  - {name: \"eth 1\", role: pods}\n",
	  "interfaces[1].name", 3, "got \"eth 1\"" },
	{ "interface name dot", "interfaces:\n  - {name: ., role: uplink}\n", "interfaces[0].name",
	  2, "expected an interface name" },
	{ "interface role type", "interfaces:\n  - name: eth0\n    role: [uplink]\n",
	  "interfaces[0].role", 3, "got a list" },
	{ "interface role value", "interfaces:\n  - name: eth0\n    role: backend\n",
	  "interfaces[0].role", 3, "expected one of uplink, pods, got \"backend\"" },
	{ "interface name missing", "interfaces:\n  - role: uplink\n", "interfaces[0].name", 2,
	  "missing required key" },
	{ "interface role missing", "interfaces:\n  - {name: eth0}\n", "interfaces[0].role", 2,
	  "missing required key" },
	{ "interface duplicate", "interfaces:\n  - {name: eth0, role: uplink}\n"
				 "  - {name: eth0, role: pods}\n",
	  "interfaces[1].name", 3, "duplicate interface 'eth0' (also interfaces[0], line 2)" },
	{ "interface unknown key", "interfaces:\n  - {name: eth0, role: uplink, mtu: 1500}\n",
	  "interfaces[0].mtu", 2, "unknown key 'mtu' (allowed: name, role)" },
	{ "no uplink", "interfaces:\n  - {name: veth0, role: pods}\nservices:\n"
		       "  - {name: web, vip: 10.0.0.1, port: 80}\n",
	  "interfaces", 2, "at least one interface with role uplink" },
	{ "no interfaces", "services:\n  - {name: web, vip: 10.0.0.1, port: 80}\n", "interfaces", 2,
	  "at least one interface with role uplink" },
	/* services */
	{ "services type", "services: {web: 1}\n", "services", 1, "expected a list, got a mapping" },
	{ "service item type", "services:\n  - web\n", "services[0]", 2,
	  "expected a service mapping" },
	{ "service name type", SVC "  - name: [x]\n    vip: 10.0.0.2\n    port: 80\n",
	  "services[1].name", 6, "got a list" },
	{ "service name upper", SVC "  - {name: Web, vip: 10.0.0.2, port: 80}\n", "services[1].name",
	  6, "expected a service name ([a-z0-9]([-a-z0-9_.]*[a-z0-9])?, at most 63 characters), "
	     "got \"Web\"" },
	{ "service name dash", SVC "  - {name: web-, vip: 10.0.0.2, port: 80}\n",
	  "services[1].name", 6, "got \"web-\"" },
	{ "service name long", SVC "  - {name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,"
				   " vip: 10.0.0.2, port: 80}\n",
	  "services[1].name", 6, "at most 63 characters" },
	{ "service name duplicate", SVC "  - {name: web, vip: 10.0.0.2, port: 80}\n",
	  "services[1].name", 6, "duplicate service name 'web' (also services[0], line 3)" },
	{ "vip type", SVC "    canary: {}\n  - name: api\n    vip: {a: 1}\n    port: 80\n",
	  "services[1].vip", 8, "expected an IPv4 or IPv6 address, got a mapping" },
	{ "vip value", SVC "  - {name: api, vip: 10.0.0.256, port: 80}\n", "services[1].vip", 6,
	  "expected an IPv4 or IPv6 address, got \"10.0.0.256\"" },
	{ "vip hostname", SVC "  - {name: api, vip: api.example, port: 80}\n", "services[1].vip",
	  6, "got \"api.example\"" },
	{ "port type", SVC "  - name: api\n    vip: 10.0.0.2\n    port: http\n", "services[1].port",
	  8, "expected an integer 1-65535, got \"http\"" },
	{ "port list", SVC "  - name: api\n    vip: 10.0.0.2\n    port: [80]\n", "services[1].port",
	  8, "expected an integer 1-65535, got a list" },
	{ "port zero", SVC "  - {name: api, vip: 10.0.0.2, port: 0}\n", "services[1].port", 6,
	  "got \"0\"" },
	{ "port high", SVC "  - {name: api, vip: 10.0.0.2, port: 65536}\n", "services[1].port", 6,
	  "expected an integer 1-65535, got \"65536\"" },
	{ "port quoted", SVC "  - {name: api, vip: 10.0.0.2, port: \"80\"}\n", "services[1].port", 6,
	  "remove the quotes" },
	{ "port octal", SVC "  - {name: api, vip: 10.0.0.2, port: 0443}\n", "services[1].port", 6,
	  "leading zeros are not allowed" },
	{ "port hex", SVC "  - {name: api, vip: 10.0.0.2, port: 0x50}\n", "services[1].port", 6,
	  "only decimal integers" },
	{ "protocol type", SVC "    protocol: [tcp]\n", "services[0].protocol", 6, "got a list" },
	{ "protocol value", SVC "    protocol: sctp\n", "services[0].protocol", 6,
	  "expected one of tcp, udp, got \"sctp\"" },
	{ "name missing", "interfaces: [{name: eth0, role: uplink}]\nservices:\n"
			  "  - vip: 10.0.0.1\n    port: 80\n",
	  "services[0].name", 3, "missing required key" },
	{ "vip missing", "interfaces: [{name: eth0, role: uplink}]\nservices:\n"
			 "  - name: web\n    port: 80\n",
	  "services[0].vip", 3, "missing required key" },
	{ "port missing", "interfaces: [{name: eth0, role: uplink}]\nservices:\n"
			  "  - name: web\n    vip: 10.0.0.1\n",
	  "services[0].port", 3, "missing required key" },
	{ "service unknown key", SVC "    timeout: 5\n", "services[0].timeout", 6,
	  "unknown key 'timeout' (allowed: name, vip, port, protocol, backends, canary, mirror)" },
	{ "duplicate VIP:port", SVC "  - name: api\n    vip: 10.0.0.1\n    port: 80\n",
	  "services[1].vip", 7, "10.0.0.1:80/tcp is already used by service 'web' (services[0], line 3)" },
	{ "duplicate IPv6 VIP:port", "interfaces: [{name: eth0, role: uplink}]\nservices:\n"
				     "  - {name: a, vip: 'fd00::1', port: 53, protocol: udp}\n"
				     "  - {name: b, vip: 'fd00:0::1', port: 53, protocol: udp}\n",
	  "services[1].vip", 4, "[fd00::1]:53/udp is already used by service 'a'" },
	/* backends */
	{ "backends type", SVC "    backends: 10.1.0.1\n", "services[0].backends", 6,
	  "expected a list, got \"10.1.0.1\"" },
	{ "backend item type", SVC "    backends:\n      - 10.1.0.1:8080\n",
	  "services[0].backends[0]", 7, "expected a backend mapping" },
	{ "backend address type", SVC "    backends:\n      - address: [10.1.0.1]\n        port: 1\n",
	  "services[0].backends[0].address", 7, "got a list" },
	{ "backend address value", SVC "    backends:\n      - {address: 10.1.0, port: 8080}\n",
	  "services[0].backends[0].address", 7, "expected an IPv4 or IPv6 address, got \"10.1.0\"" },
	{ "backend port type", BE "        weight: 1\n      - address: 10.1.0.2\n        port: x\n",
	  "services[0].backends[1].port", 11, "expected an integer 1-65535, got \"x\"" },
	{ "backend port zero", SVC "    backends:\n      - {address: 10.1.0.1, port: 0}\n",
	  "services[0].backends[0].port", 7, "got \"0\"" },
	{ "weight type", BE "        weight: heavy\n", "services[0].backends[0].weight", 9,
	  "expected an integer 0-65535, got \"heavy\"" },
	{ "weight high", BE "        weight: 65536\n", "services[0].backends[0].weight", 9,
	  "got \"65536\"" },
	{ "weight negative", BE "        weight: -1\n", "services[0].backends[0].weight", 9,
	  "got \"-1\"" },
	{ "canary flag type", BE "        canary: [true]\n", "services[0].backends[0].canary", 9,
	  "expected true or false, got a list" },
	{ "canary flag yes", BE "        canary: yes\n", "services[0].backends[0].canary", 9,
	  "YAML 1.1 spellings such as yes/no/on/off are not accepted" },
	{ "canary flag True", BE "        canary: True\n", "services[0].backends[0].canary", 9,
	  "only lowercase true/false" },
	{ "canary flag quoted", BE "        canary: \"true\"\n", "services[0].backends[0].canary", 9,
	  "remove the quotes" },
	{ "canary flag number", BE "        canary: 1\n", "services[0].backends[0].canary", 9,
	  "expected true or false, got \"1\"" },
	{ "backend address missing", SVC "    backends:\n      - {port: 8080}\n",
	  "services[0].backends[0].address", 7, "missing required key" },
	{ "backend port missing", SVC "    backends:\n      - {address: 10.1.0.1}\n",
	  "services[0].backends[0].port", 7, "missing required key" },
	{ "backend unknown key", BE "        zone: a\n", "services[0].backends[0].zone", 9,
	  "unknown key 'zone' (allowed: address, port, weight, canary)" },
	{ "backend IPv6 for IPv4 VIP", SVC "    backends:\n      - {address: 10.1.0.1, port: 1}\n"
					   "      - {address: 'fd00::1', port: 1}\n",
	  "services[0].backends[1].address", 8,
	  "IPv6 backend for the IPv4 VIP 10.0.0.1: a backend must have the VIP's address family" },
	{ "backend IPv4 for IPv6 VIP", "interfaces: [{name: eth0, role: uplink}]\nservices:\n"
				       "  - name: v6\n    vip: 'fd00::1'\n    port: 80\n"
				       "    backends: [{address: 10.1.0.1, port: 1}]\n",
	  "services[0].backends[0].address", 6, "IPv4 backend for the IPv6 VIP fd00::1" },
	{ "backend is the VIP", SVC "    backends:\n      - {address: 10.0.0.1, port: 8080}\n",
	  "services[0].backends[0].address", 7, "the backend is the service's own VIP" },
	{ "duplicate backend", BE "      - {address: 10.1.0.2, port: 8080}\n"
				  "      - {address: 10.1.0.1, port: 8080, weight: 5}\n",
	  "services[0].backends[2]", 10, "duplicate backend 10.1.0.1:8080 (also backends[0], line 7)" },
	/* canary */
	{ "canary type", SVC "    canary: 5\n", "services[0].canary", 6,
	  "expected a mapping (percent, sticky, http, steps, step_interval_s, rollback, on_rollback), got \"5\"" },
	{ "percent type", SVC "    canary:\n      percent: [5]\n", "services[0].canary.percent", 7,
	  "expected a number 0-100 with at most 2 decimals, got a list" },
	{ "percent high", SVC "    canary:\n      percent: 100.01\n", "services[0].canary.percent", 7,
	  "got \"100.01\"" },
	{ "percent decimals", SVC "    canary:\n      percent: 2.555\n", "services[0].canary.percent",
	  7, "with at most 2 decimals, got \"2.555\"" },
	{ "percent sign", SVC "    canary:\n      percent: 5%\n", "services[0].canary.percent", 7,
	  "without '%'" },
	{ "percent negative", SVC "    canary:\n      percent: -1\n", "services[0].canary.percent", 7,
	  "got \"-1\"" },
	{ "sticky type", SVC "    canary:\n      sticky: [client]\n", "services[0].canary.sticky", 7,
	  "got a list" },
	{ "sticky value", SVC "    canary:\n      sticky: session\n", "services[0].canary.sticky", 7,
	  "expected one of client, flow, got \"session\"" },
	{ "canary rollback unknown key", SVC "    canary:\n      percent: 5\n      rollback: {window: 5}\n",
	  "services[0].canary.rollback.window", 8, "unknown key" },
	{ "canary rollback window too short", SVC "    canary:\n      rollback: {window_ms: 5}\n",
	  "services[0].canary.rollback.window_ms", 7, "20-60000" },
	{ "canary rollback ratio above 1", SVC "    canary:\n      rollback: {max_failure_ratio: 1.5}\n",
	  "services[0].canary.rollback.max_failure_ratio", 7, "expected a ratio" },
	{ "canary steps not rising", SVC "    canary:\n      steps: [1, 5, 5, 50]\n",
	  "services[0].canary.steps[2]", 7, "above the step before it" },
	{ "canary steps zero", SVC "    canary:\n      steps: [0, 5]\n",
	  "services[0].canary.steps[0]", 7, "above 0" },
	{ "canary steps type", SVC "    canary:\n      steps: 5\n",
	  "services[0].canary.steps", 7, "expected a list of rising percents" },
	{ "canary steps above 100", SVC "    canary:\n      steps: [5, 101]\n",
	  "services[0].canary.steps[1]", 7, "0-100" },
	{ "canary steps and percent", SVC "    canary:\n      percent: 5\n      steps: [1, 5]\n",
	  "services[0].canary.percent", 7, "either percent or steps" },
	{ "canary on_rollback value", SVC "    canary:\n      on_rollback: drop\n",
	  "services[0].canary.on_rollback", 7, "one of keep, reset" },
	{ "canary http on udp", "services:\n  - name: d\n    vip: 10.0.0.1\n    port: 53\n"
	  "    protocol: udp\n    canary:\n      http: true\n",
	  "services[0].canary.http", 7, "TCP services only" },
	{ "canary step_interval_s zero", SVC "    canary:\n      step_interval_s: 0\n",
	  "services[0].canary.step_interval_s", 7, "1-86400" },
	{ "canary unknown key", SVC "    canary: {percent: 5, stickiness: flow}\n",
	  "services[0].canary.stickiness", 6, "unknown key 'stickiness' (allowed: percent, sticky, http, steps, step_interval_s, rollback, on_rollback)" },
	/* metrics */
	{ "metrics type", "metrics: 9464\n", "metrics", 1, "expected a mapping (listen), got \"9464\"" },
	{ "listen type", "metrics:\n  listen: [a]\n", "metrics.listen", 2, "got a list" },
	{ "listen no port", "metrics:\n  listen: 127.0.0.1\n", "metrics.listen", 2,
	  "expected host:port with an IP address" },
	{ "listen hostname", "metrics:\n  listen: localhost:9464\n", "metrics.listen", 2,
	  "got \"localhost:9464\"" },
	{ "listen port range", "metrics:\n  listen: \"127.0.0.1:99999\"\n", "metrics.listen", 2,
	  "got \"127.0.0.1:99999\"" },
	{ "listen bare IPv6", "metrics:\n  listen: \"::1:9464\"\n", "metrics.listen", 2,
	  "got \"::1:9464\"" },
	{ "listen bracketed IPv4", "metrics:\n  listen: \"[10.0.0.1]:80\"\n", "metrics.listen", 2,
	  "got \"[10.0.0.1]:80\"" },
	{ "listen null", "metrics:\n  listen:\n", "metrics.listen", 2, "or \"\" to disable, got null" },
	{ "metrics unknown key", "metrics:\n  path: /metrics\n", "metrics.path", 2,
	  "unknown key 'path' (allowed: listen)" },
	/* control */
	{ "control type", "control: []\n", "control", 1, "expected a mapping (socket), got a list" },
	{ "socket type", "control:\n  socket: {}\n", "control.socket", 2, "got a mapping" },
	{ "socket relative", "control:\n  socket: agent.sock\n", "control.socket", 2,
	  "expected an absolute path of at most 107 bytes" },
	{ "socket too long", "control:\n  socket: /run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
	  "control.socket", 2, "at most 107 bytes" },
	{ "control unknown key", "control:\n  mode: 0600\n", "control.mode", 2,
	  "unknown key 'mode' (allowed: socket)" },
	/* top level */
	{ "unknown top key", "node: {name: a}\nfoo: 1\n", "foo", 2,
	  "unknown key 'foo' (allowed: node, datapath, interfaces, services, metrics, control, dns, "
	  "kubernetes, certs)" },
	{ "unknown datapath key", "datapath:\n  mtu: 1500\n", "datapath.mtu", 2,
	  "unknown key 'mtu' (allowed: bpffs, xdp_mode, forwarding, conntrack_size, "
	  "maglev_table_size, conntrack_timeout_tcp_s, conntrack_timeout_udp_s, cgroup_root)" },
	{ "unknown node key", "node:\n  zone: a\n", "node.zone", 2, "unknown key 'zone' (allowed: name)" },
	/* dns */
	{ "dns type", "dns: [1]\n", "dns", 1, "expected a mapping (upstreams, cache, health, failover)" },
	{ "dns without upstreams", "node: {name: a}\ndns:\n  cache: {ttl: 30}\n", "dns.upstreams", 3,
	  "at least one upstream resolver is required" },
	{ "dns upstreams type", "dns:\n  upstreams: 10.2.0.53\n", "dns.upstreams", 2,
	  "expected a list of IPv4 or IPv6 addresses, got \"10.2.0.53\"" },
	{ "dns upstream bad", "dns:\n  upstreams: [10.2.0.53, dns.example]\n", "dns.upstreams[1]", 2,
	  "expected an IPv4 or IPv6 address, got \"dns.example\"" },
	{ "dns upstream duplicate", "dns:\n  upstreams: [10.2.0.53, 10.2.0.53]\n", "dns.upstreams[1]",
	  2, "duplicate address (also [0])" },
	{ "dns too many upstreams",
	  "dns:\n  upstreams: [10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5, 10.0.0.6, 10.0.0.7, "
	  "10.0.0.8, 10.0.0.9]\n",
	  "dns.upstreams", 2, "expected 1 to 8 addresses, got 9" },
	{ "cache listen bad", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    listen: localhost\n",
	  "dns.cache.listen", 4, "expected an IPv4 or IPv6 address" },
	{ "cache listen6 not IPv6",
	  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    listen6: 169.254.20.12\n", "dns.cache.listen6", 4,
	  "must be an IPv6 address" },
	{ "IPv6 upstream without an IPv6 cache address",
	  "dns:\n  upstreams: [10.2.0.53, \"fd00::53\"]\n  cache: {ttl: 30}\n", "dns.upstreams", 2,
	  "fd00::53 is an IPv6 upstream but the cache has no IPv6 address to stand in for it: set "
	  "dns.cache.listen6" },
	{ "drop_divergent bad",
	  "dns:\n  upstreams: [10.2.0.53]\n  failover:\n    drop_divergent: sometimes\n",
	  "dns.failover.drop_divergent", 4, "always" },
	{ "cache listen is upstream",
	  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    listen: 10.2.0.53\n", "dns.cache.listen", 4,
	  "10.2.0.53 is also an upstream" },
	{ "cache fallback is upstream",
	  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    fallback: [192.0.2.1, 10.2.0.53]\n",
	  "dns.cache.fallback[1]", 4, "10.2.0.53 is also an upstream: a fallback must be another resolver" },
	{ "cache fallback is the cache",
	  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    fallback: [169.254.20.10]\n",
	  "dns.cache.fallback[0]", 4, "169.254.20.10 is the cache's own address" },
	{ "cache fallback name", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    fallback: [dns.google]\n",
	  "dns.cache.fallback[0]", 4, "expected an IPv4 or IPv6 address, got \"dns.google\"" },
	{ "cache fallback too many",
	  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    fallback: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.5]\n",
	  "dns.cache.fallback", 4, "expected 0 to 4 addresses, got 5" },
	{ "cache ttl zero", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    ttl: 0\n", "dns.cache.ttl",
	  4, "expected an integer 1-86400, got \"0\"" },
	{ "cache preload relative",
	  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    preload: preload.hosts\n",
	  "dns.cache.preload", 4, "expected an absolute path" },
	{ "cache refresh type", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    refresh_s: soon\n",
	  "dns.cache.refresh_s", 4, "expected an integer 0-604800" },
	{ "cache max loss", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    max_loss_percent: 101\n",
	  "dns.cache.max_loss_percent", 4, "expected an integer 0-100" },
	{ "cache max change", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    max_change_percent: 101\n",
	  "dns.cache.max_change_percent", 4, "expected an integer 0-100" },
	{ "cache unknown key", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    port: 53\n",
	  "dns.cache.port", 4, "unknown key 'port'" },
	/* Paths dnsmasq reads from dnsmasq.conf: what it would read differently. */
	{ "preload ' #' (dnsmasq: a comment)", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    preload: \"/var/lib/a #b\"\n",
	  "dns.cache.preload", 4, "expected an absolute path that dnsmasq reads as written" },
	{ "preload '#'", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    preload: /var/lib/a#b\n", "dns.cache.preload", 4, "expected an absolute path that dnsmasq reads as written" },
	{ "preload trailing space (dnsmasq strips it)", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    preload: \"/var/lib/a \"\n", "dns.cache.preload", 4, "expected an absolute path that dnsmasq reads as written" },
	{ "preload double quote (dnsmasq removes it)", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    preload: '/var/lib/\"a\"'\n", "dns.cache.preload", 4, "expected an absolute path that dnsmasq reads as written" },
	{ "preload backslash", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    preload: '/var/lib/a\\b'\n", "dns.cache.preload", 4, "expected an absolute path that dnsmasq reads as written" },
	{ "preload newline", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    preload: \"/var/lib/a\\nb\"\n", "dns.cache.preload", 4, "expected an absolute path that dnsmasq reads as written" },
	{ "preload tab (dnsmasq: a space)", "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    preload: \"/var/lib/a\\tb\"\n", "dns.cache.preload", 4, "expected an absolute path that dnsmasq reads as written" },
	{ "dnsmasq binary with a newline",
	  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    dnsmasq: \"/usr/sbin/dns\\nmasq\"\n",
	  "dns.cache.dnsmasq", 4, "expected a program name or path (no control characters)" },
	{ "runtime directory (control.socket's) with ' #', with a cache",
	  "control:\n  socket: \"/run/edge #plane/agent.sock\"\ndns:\n  upstreams: [10.2.0.53]\n  cache: {}\n",
	  "control.socket", 2, "its directory \"/run/edge #plane\" holds dnsmasq's files" },
	{ "health interval", "dns:\n  upstreams: [10.2.0.53]\n  health:\n    probe_interval_ms: 10\n",
	  "dns.health.probe_interval_ms", 4, "expected an integer 50-60000" },
	{ "health timeout vs window",
	  "dns:\n  upstreams: [10.2.0.53]\n  health:\n    timeout_ms: 1500\n", "dns.health.timeout_ms",
	  4, "must be shorter than dns.failover.window_ms" },
	{ "canary name", "dns:\n  upstreams: [10.2.0.53]\n  health:\n    canaries:\n"
			 "      - {name: \"a b\", expect: [192.0.2.1]}\n",
	  "dns.health.canaries[0].name", 5, "expected a DNS name, got \"a b\"" },
	{ "canary expect missing", "dns:\n  upstreams: [10.2.0.53]\n  health:\n    canaries:\n"
				   "      - {name: probe.example}\n",
	  "dns.health.canaries[0].expect", 5, "missing required key" },
	{ "canary expect bad", "dns:\n  upstreams: [10.2.0.53]\n  health:\n    canaries:\n"
			       "      - {name: probe.example, expect: [nope]}\n",
	  "dns.health.canaries[0].expect[0]", 5, "expected an IPv4 or IPv6 address" },
	{ "hijack ratio", "dns:\n  upstreams: [10.2.0.53]\n  health:\n    hijack_ratio: 20%\n",
	  "dns.health.hijack_ratio", 4, "expected a ratio above 0 and at most 1, with at most 4 decimals" },
	{ "timeout ratio zero", "dns:\n  upstreams: [10.2.0.53]\n  failover:\n    timeout_ratio: 0\n",
	  "dns.failover.timeout_ratio", 4, "got \"0\" (0 would call every window bad)" },
	{ "timeout ratio too big", "dns:\n  upstreams: [10.2.0.53]\n  failover:\n    timeout_ratio: 1.2\n",
	  "dns.failover.timeout_ratio", 4, "got \"1.2\"" },
	{ "timeout ratio decimals",
	  "dns:\n  upstreams: [10.2.0.53]\n  failover:\n    timeout_ratio: 0.123456\n",
	  "dns.failover.timeout_ratio", 4, "at most 4 decimals" },
	{ "window too small", "dns:\n  upstreams: [10.2.0.53]\n  failover:\n    window_ms: 10\n",
	  "dns.failover.window_ms", 4, "expected an integer 100-600000" },
	{ "failback type", "dns:\n  upstreams: [10.2.0.53]\n  failover:\n    failback_after_s: true\n",
	  "dns.failover.failback_after_s", 4, "expected an integer 0-86400" },
	/* kubernetes */
	{ "kubernetes type", "kubernetes: yes\n", "kubernetes", 1,
	  "expected a mapping (enabled, api_server" },
	{ "kubernetes enabled", "kubernetes:\n  enabled: maybe\n", "kubernetes.enabled", 2,
	  "expected one of auto, true, false, got \"maybe\"" },
	{ "kubernetes api http", "kubernetes:\n  api_server: http://10.0.0.1:6443\n",
	  "kubernetes.api_server", 2, "expected an https:// URL" },
	{ "kubernetes token relative", "kubernetes:\n  token_file: token\n", "kubernetes.token_file", 2,
	  "expected an absolute path" },
	{ "kubernetes label", "kubernetes:\n  dns_unhealthy_label: -bad\n",
	  "kubernetes.dns_unhealthy_label", 2, "expected a Kubernetes label key" },
	{ "kubernetes label prefix upper case", "kubernetes:\n  dns_unhealthy_label: Example.com/dns\n",
	  "kubernetes.dns_unhealthy_label", 2, "expected a Kubernetes label key" },
	{ "kubernetes label prefix", "kubernetes:\n  dns_unhealthy_label: \"bad_prefix.io/x\"\n",
	  "kubernetes.dns_unhealthy_label", 2, "expected a Kubernetes label key" },
	{ "kubernetes namespace", "kubernetes:\n  event_namespace: Kube.System\n",
	  "kubernetes.event_namespace", 2, "expected a namespace name" },
	/* certs */
	{ "certs type", "certs: {name: a}\n", "certs", 1, "expected a list" },
	{ "certs no source", "certs:\n  - {name: a, target: /t}\n", "certs[0]", 2,
	  "exactly one of source and bundle is required" },
	{ "certs both sources", "certs:\n  - {name: a, target: /t, source: {dir: /s}, bundle: {dir: /b}}\n",
	  "certs[0]", 2, "exactly one of source and bundle is required" },
	{ "certs csr no signer", "certs:\n  - {name: a, target: /t, trust: /ca, source: {csr: {}}}\n",
	  "certs[0].source.csr.signer_name", 2, "required" },
	{ "certs csr bad signer", "certs:\n  - {name: a, target: /t, trust: /ca, "
	  "source: {csr: {signer_name: x}}}\n", "certs[0].source.csr.signer_name", 2,
	  "expected a signer name" },
	{ "certs csr renew_at", "certs:\n  - name: a\n    target: /t\n    trust: /ca\n"
	  "    source:\n      csr:\n        signer_name: example.com/x\n        renew_at: 1.5\n",
	  "certs[0].source.csr.renew_at", 8, "expected a ratio above 0 and at most 1" },
	{ "certs csr renew_at zero", "certs:\n  - name: a\n    target: /t\n    trust: /ca\n"
	  "    source:\n      csr: {signer_name: example.com/x, renew_at: 0}\n",
	  "certs[0].source.csr.renew_at", 6, "expected a ratio above 0" },
	{ "certs csr renew too late", "certs:\n  - name: a\n    target: /t\n    trust: /ca\n"
	  "    source:\n      csr: {signer_name: example.com/x, renew_at: 0.9}\n",
	  "certs[0].source.csr.renew_at", 6, "renew_at + renew_jitter must be at most 0.95" },
	{ "certs csr expiration", "certs:\n  - {name: a, target: /t, trust: /ca, "
	  "source: {csr: {signer_name: example.com/x, expiration_seconds: 60}}}\n",
	  "certs[0].source.csr.expiration_seconds", 2, "600" },
	{ "certs csr no trust", "certs:\n  - {name: a, target: /t, "
	  "source: {csr: {signer_name: example.com/x}}}\n", "certs[0].trust", 2,
	  "a csr source needs trust" },
	{ "certs csr bundle", "certs:\n  - {name: a, target: /t, trust: /ca, "
	  "bundle: {csr: {signer_name: example.com/x}}}\n", "certs[0].bundle.csr", 2,
	  "a bundle comes from dir or secret" },
	{ "certs csr and dir", "certs:\n  - {name: a, target: /t, trust: /ca, "
	  "source: {dir: /s, csr: {signer_name: example.com/x}}}\n", "certs[0].source", 2,
	  "exactly one of dir, secret and csr is required" },
	{ "certs csr unknown key", "certs:\n  - {name: a, target: /t, trust: /ca, "
	  "source: {csr: {signer_name: example.com/x, renew: 0.5}}}\n",
	  "certs[0].source.csr.renew", 2, "unknown key" },
	{ "certs secret ref", "certs:\n  - {name: a, target: /t, source: {secret: nons}}\n",
	  "certs[0].source.secret", 2, "expected NAMESPACE/NAME of a Secret" },
	{ "certs secret ref upper", "certs:\n  - {name: a, target: /t, source: {secret: Edge/x}}\n",
	  "certs[0].source.secret", 2, "expected NAMESPACE/NAME of a Secret" },
	{ "certs dir and secret", "certs:\n  - {name: a, target: /t, source: {secret: ns/x, dir: /s}}\n",
	  "certs[0].source", 2, "exactly one of dir, secret and csr is required" },
	{ "certs relative dir", "certs:\n  - {name: a, target: /t, source: {dir: s}}\n",
	  "certs[0].source.dir", 2, "expected an absolute path" },
	{ "certs name", "certs:\n  - {name: Pay, target: /t, source: {dir: /s}}\n",
	  "certs[0].name", 2, "expected a name" },
	{ "certs target in source", "certs:\n  - {name: a, target: /s/t, source: {dir: /s}}\n",
	  "certs[0].target", 2, "must not contain each other" },
	{ "certs duplicate", "certs:\n  - {name: a, target: /t, source: {dir: /s}}\n"
	  "  - {name: a, target: /u, source: {dir: /s}}\n", "certs[1].name", 3, "duplicate name 'a'" },
	{ "certs same target", "certs:\n  - {name: a, target: /t, source: {dir: /s}}\n"
	  "  - {name: b, target: /t/x, source: {dir: /s}}\n", "certs[1].target", 3,
	  "overlaps the target of certs[0]" },
	{ "certs reload both", "certs:\n  - {name: a, target: /t, source: {dir: /s}, "
	  "reload: {pidfile: /p, command: x}}\n", "certs[0].reload", 2, "not both" },
	{ "certs reload empty", "certs:\n  - {name: a, target: /t, source: {dir: /s}, "
	  "reload: {timeout_ms: 100}}\n", "certs[0].reload", 2, "is required" },
	{ "certs signal", "certs:\n  - {name: a, target: /t, source: {dir: /s}, "
	  "reload: {pidfile: /p, signal: KILL}}\n", "certs[0].reload.signal", 2,
	  "expected one of HUP, USR1" },
	{ "certs san type", "certs:\n  - {name: a, target: /t, source: {dir: /s}, expect: {san: x}}\n",
	  "certs[0].expect.san", 2, "expected a list of DNS names" },
	{ "certs san empty item", "certs:\n  - {name: a, target: /t, source: {dir: /s}, expect: {san: [\"\"]}}\n",
	  "certs[0].expect.san[0]", 2, "expected" },
	{ "certs verify", "certs:\n  - {name: a, target: /t, source: {dir: /s}, "
	  "reload: {command: x, verify: nope}}\n", "certs[0].reload.verify", 2, "expected HOST:PORT" },
	{ "certs bundle expect", "certs:\n  - {name: a, target: /t, bundle: {dir: /s}, expect: {san: [a]}}\n",
	  "certs[0].expect", 2, "a bundle holds CA certificates only" },
	{ "merge key", "datapath:\n  <<: {xdp_mode: skb}\n", "datapath.<<", 2,
	  "merge keys ('<<') are not supported" },
	{ "list as key", "? [a, b]\n: 1\n", "", 1, "keys must be plain strings, got a list" },
	/* duplicate keys */
	{ "duplicate top key", "node: {name: a}\ndatapath: {}\nnode: {name: b}\n", "node", 3,
	  "duplicate key (first at line 1)" },
	{ "duplicate service key", SVC "    port: 81\n", "services[0].port", 6,
	  "duplicate key (first at line 5)" },
	{ "duplicate backend key", SVC "    backends:\n      - {address: 10.1.0.1, port: 1, port: 2}\n",
	  "services[0].backends[0].port", 7, "duplicate key (first at line 7)" },
	{ "duplicate datapath key", "datapath:\n  xdp_mode: skb\n  bpffs: /a\n  xdp_mode: native\n",
	  "datapath.xdp_mode", 4, "duplicate key (first at line 2)" },
	/* document shape */
	{ "empty file", "", "", 0, "configuration is empty" },
	{ "only comments", "# nothing here\n\n# still nothing\n", "", 0, "configuration is empty" },
	{ "empty document", "---\n", "", 0, "configuration is empty" },
	{ "null document", "~\n", "", 0, "configuration is empty" },
	{ "list root", "- node\n- datapath\n", "", 1,
	  "expected a mapping of sections (node, datapath, interfaces, services, metrics, control, "
	  "dns, kubernetes, certs) at the top, got a list" },
	{ "scalar root", "\n\nhello\n", "", 3, "at the top, got \"hello\"" },
	{ "two documents", "node: {name: a}\n---\nnode: {name: b}\n", "", 2,
	  "more than one YAML document" },
	/* syntax */
	{ "syntax: mapping values", "node:\n  name: edge\ndatapath:\n  bpffs: /a\n  xdp_mode: a: b\n",
	  "", 5, "syntax error: mapping values are not allowed in this context" },
	{ "syntax: tab", "node:\n\tname: a\n", "", 2,
	  "syntax error: found character that cannot start any token" },
	{ "syntax: unclosed flow", "node: {name: a}\ninterfaces: [{name: eth0, role: uplink}\n", "",
	  3, "syntax error: did not find expected ',' or ']'" },
	{ "syntax: undefined alias", "node:\n  name: *nope\n", "", 2,
	  "syntax error: found undefined alias" },
	{ "syntax: second document", "node: {name: a}\n---\n[\n", "", 4, "syntax error" },
	{ "syntax: bad indentation", "services:\n  - name: a\n   vip: 10.0.0.1\n", "", 3,
	  "syntax error" },
	{ "syntax: invalid UTF-8", "node: {name: \"\xff\xfe\"}\n", "", 1, "syntax error" },
};

/* The csr source: keys and defaults as the certs module gets them. */
static void test_certs_csr(void)
{
	const struct ep_cfg_cert_csr *r;

	expect_ok("certs csr source", "certs:\n  - name: node-id\n    target: /etc/ep/id\n"
		  "    trust: /etc/ep/ca.crt\n    source:\n      csr:\n"
		  "        signer_name: example.com/edge-mtls\n        common_name: edge-01\n"
		  "        expiration_seconds: 86400\n        renew_at: 0.6\n"
		  "        renew_jitter: 0.1\n        server_auth: true\n"
		  "  - name: other\n    target: /etc/ep/other\n    trust: /etc/ep/ca.crt\n"
		  "    source: {csr: {signer_name: example.com/edge-mtls}}\n");
	r = &cfg.certs[0].source.csr;
	tap_ok(cfg.n_certs == 2 && r->present && !strcmp(r->signer_name, "example.com/edge-mtls") &&
		       !strcmp(r->common_name, "edge-01") && r->expiration_seconds == 86400 &&
		       r->renew_at_bp == 6000 && r->renew_jitter_bp == 1000 && r->server_auth,
	       "certs[].source.csr keys");
	r = &cfg.certs[1].source.csr;
	tap_ok(r->present && !r->common_name[0] && !r->expiration_seconds && r->renew_at_bp == 7000 &&
		       r->renew_jitter_bp == 2000 && !r->server_auth &&
		       !cfg.certs[1].source.dir[0] && !cfg.certs[1].source.secret[0],
	       "certs[].source.csr defaults: renew at 70-90 %% of the lifetime, the signer's "
	       "duration, client auth only");
}

static void test_bad(void)
{
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		expect_error(bad_cases[i].name, bad_cases[i].yaml, bad_cases[i].key, bad_cases[i].line,
			     bad_cases[i].want);
}

/* Built at run time: too long to spell out. */
static void test_generated(void)
{
	char *y = malloc(256 * 1024);
	size_t o, i;

	if (!y)
		return;

	o = (size_t)snprintf(y, 1024, "node:\n  name: ");
	memset(y + o, 'a', 254);
	strcpy(y + o + 254, "\n");
	expect_error("node.name too long", y, "node.name", 2, "expected a node name (1-253 characters)");
	y[o + 253] = '\n';
	y[o + 254] = '\0';
	expect_ok("node.name of 253 characters", y);

	/* A backend may serve at most EP_MAX_SVCS_PER_BACKEND services. */
	o = (size_t)sprintf(y, "interfaces: [{name: eth0, role: uplink}]\nservices:\n");
	for (i = 0; i < EP_MAX_SVCS_PER_BACKEND + 1; i++)
		o += (size_t)sprintf(y + o,
				     "  - {name: s%zu, vip: 10.0.1.%zu, port: 80, backends: "
				     "[{address: 10.1.0.1, port: 8080}]}\n",
				     i, i + 1);
	expect_error("backend in 9 services", y, "services[8].backends[0]", 11,
		     "backend 10.1.0.1:8080/tcp is used by more than 8 services ('s8' is number 9; "
		     "first is 's0')");
	/* ...counted per protocol: make the last one udp. */
	strcpy(strrchr(y, '}') - 1, "], protocol: udp}\n");
	expect_ok("backend in 8 tcp services and 1 udp service", y);

	/* Maglev needs a table at least 10x the backend count of any service. */
	o = (size_t)sprintf(y, "datapath: {maglev_table_size: 251}\n"
			       "interfaces: [{name: eth0, role: uplink}]\n"
			       "services:\n"
			       "  - {name: small, vip: 10.0.0.2, port: 80, backends: [{address: 10.2.0.1, port: 1}]}\n"
			       "  - name: big\n"
			       "    vip: 10.0.0.1\n"
			       "    port: 80\n"
			       "    backends:\n");
	for (i = 0; i < 25; i++)
		o += (size_t)sprintf(y + o, "      - {address: 10.1.0.%zu, port: 8080}\n", i + 1);
	expect_ok("25 backends fit a table of 251", y);
	sprintf(y + o, "      - {address: 10.1.1.1, port: 8080}\n");
	expect_error("26 backends need more than 251", y, "services[1].backends", 9,
		     "service 'big' has 26 backends; datapath.maglev_table_size (251) must be at "
		     "least 10 times that (a prime >= 260, e.g. 263)");

	/* The per-service backend limit. */
	o = (size_t)sprintf(y, SVC "    backends:\n");
	for (i = 0; i < EP_CFG_MAX_BACKENDS_PER_SVC + 1; i++)
		o += (size_t)sprintf(y + o, "      - {address: 10.%zu.%zu.1, port: 1}\n",
				     1 + i / 250, i % 250);
	expect_error("too many backends", y, "services[0].backends", 7,
		     "at most 4096 entries are allowed, got 4097");

	/* Every error is collected, not just the first. */
	expect_error("several errors (first)",
		     "datapath:\n  xdp_mode: x\n  forwarding: y\nmetrics: {listen: z}\n",
		     "datapath.xdp_mode", 2, "got \"x\"");
	tap_ok(errs.n == 3 && find_error("datapath.forwarding", 3, "got \"y\"") &&
		       find_error("metrics.listen", 4, "got \"z\""),
	       "all three errors are reported, in line order");

	/* Too many errors end in a note instead of unbounded output. */
	o = (size_t)sprintf(y, "datapath:\n");
	for (i = 0; i < 500; i++)
		o += (size_t)sprintf(y + o, "  k%zu: 1\n", i);
	tap_ok(parse(y) == -EINVAL && errs.n == 200 &&
		       strstr(errs.v[errs.n - 1].msg, "too many errors"),
	       "500 unknown keys stop at 200 errors with a note");
	free(y);
}

/* Aliases are references: an alias bomb must cost bounded time and memory. */
static void test_alias_bomb(void)
{
	size_t cap = 64 * 1024, o, i;
	char *y = malloc(cap);
	clock_t t0;
	int rc;

	if (!y)
		return;
	o = (size_t)sprintf(y, "interfaces: [{name: eth0, role: uplink}]\n"
			       "services:\n"
			       "  - &s\n"
			       "    name: a\n"
			       "    vip: 10.0.0.1\n"
			       "    port: 80\n"
			       "    backends: [&e {address: 10.1.0.1, port: 8080}");
	for (i = 0; i < 4000; i++)
		o += (size_t)sprintf(y + o, ", *e");
	o += (size_t)sprintf(y + o, "]\n");
	for (i = 0; i < 4000; i++)
		o += (size_t)sprintf(y + o, "  - *s\n");
	t0 = clock();
	rc = parse(y);
	tap_ok(rc == -EINVAL && find_error("", 7, "aliases expand to more than 100000 nodes"),
	       "alias bomb (4000 x 4000 backends) is refused");
	tap_ok((clock() - t0) < 2 * CLOCKS_PER_SEC, "...quickly");

	/* libyaml is quadratic in flow nesting: 4 MiB of '[' must still be quick. */
	free(y);
	y = malloc(4u << 20);
	if (!y)
		return;
	memcpy(y, "services: ", 10);
	memset(y + 10, '[', (4u << 20) - 11);
	y[(4u << 20) - 1] = '\0';
	t0 = clock();
	expect_error("4 MiB of nesting", y, "", 1, "nesting is deeper than 64 levels");
	tap_ok((clock() - t0) < 2 * CLOCKS_PER_SEC, "...quickly");
	o = (size_t)sprintf(y, "interfaces:\n");
	for (i = 0; i < 63; i++)
		o += (size_t)sprintf(y + o, "%*s- \n", (int)(2 * i), "");
	expect_error("64 levels are allowed", y, "interfaces[0]", 3, "got a list");
	o += (size_t)sprintf(y + o, "%*s- x\n", (int)(2 * i), "");
	expect_error("65 levels are not", y, "", 65, "nesting is deeper than 64 levels");

	/* The classic billion laughs, under an unknown key. */
	o = (size_t)sprintf(y, "a: &a [x, x, x, x, x, x, x, x, x, x]\n");
	for (i = 1; i < 10; i++)
		o += (size_t)sprintf(y + o, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n",
				     'a' + (int)i, 'a' + (int)i, 'a' + (int)i - 1, 'a' + (int)i - 1,
				     'a' + (int)i - 1, 'a' + (int)i - 1, 'a' + (int)i - 1,
				     'a' + (int)i - 1, 'a' + (int)i - 1, 'a' + (int)i - 1,
				     'a' + (int)i - 1, 'a' + (int)i - 1);
	rc = parse(y);
	tap_ok(rc == -EINVAL && errs.n == 10 && find_error("j", 10, "unknown key 'j'"),
	       "billion laughs is not expanded");
	/* A list that contains itself. */
	expect_error("recursive alias", "services: &s [*s]\n", "services[0]", 1,
		     "expected a service mapping (name, vip, port, protocol, backends, canary, mirror), got a list");
	free(y);
}

static void test_print_and_load(void)
{
	char path[] = "/tmp/ep-test-config-XXXXXX";
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int fd;

	parse("node: {name: a}\nfoo: 1\n");
	f = open_memstream(&buf, &len);
	if (f) {
		ep_cfg_errors_print(&errs, "edge.yaml", f);
		fclose(f);
	}
	if (!tap_ok(buf && !strcmp(buf, "edge.yaml:2: foo: unknown key 'foo' (allowed: node, "
					"datapath, interfaces, services, metrics, control, dns, "
					"kubernetes, certs)\n"),
		    "print: PATH:LINE: KEY: MESSAGE") && buf)
		tap_diag("%s", buf);
	free(buf);
	buf = NULL;
	parse("");
	f = open_memstream(&buf, &len);
	if (f) {
		ep_cfg_errors_print(&errs, "edge.yaml", f);
		fclose(f);
	}
	tap_ok(buf && !strcmp(buf, "edge.yaml: configuration is empty\n"),
	       "print: no line, no key");
	free(buf);

	ep_config_free(&cfg);
	ep_cfg_errors_free(&errs);
	tap_ok(ep_config_load("/nonexistent/edgeplane.yaml", &cfg, &errs, NULL) < 0 && errs.n == 1 &&
		       errs.v[0].line == 0 && !errs.v[0].key[0] &&
		       strstr(errs.v[0].msg, strerror(ENOENT)),
	       "missing file: line 0 and the strerror text");
	ep_cfg_errors_free(&errs);
	tap_ok(ep_config_load("/tmp", &cfg, &errs, NULL) < 0 && errs.n == 1 &&
		       strstr(errs.v[0].msg, strerror(EISDIR)),
	       "a directory is not a config file");
	ep_cfg_errors_free(&errs);

	fd = mkstemp(path);
	if (!tap_ok(fd >= 0, "temporary file"))
		return;
	if (write(fd, full_config, strlen(full_config)) != (ssize_t)strlen(full_config))
		tap_diag("short write");
	tap_ok(ep_config_load(path, &cfg, &errs, NULL) == 0 && errs.n == 0 && cfg.n_services == 2,
	       "load a file");
	ep_config_free(&cfg);
	ep_cfg_errors_free(&errs);
	/* Past 4 MiB: a comment-only tail keeps it valid YAML. */
	if (ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
		static char chunk[64 * 1024];
		int i;

		memset(chunk, '#', sizeof(chunk));
		chunk[sizeof(chunk) - 1] = '\n';
		for (i = 0; i < 65; i++)
			if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
				break;
	}
	tap_ok(ep_config_load(path, &cfg, &errs, NULL) < 0 && errs.n == 1 &&
		       strstr(errs.v[0].msg, "larger than 4 MiB"),
	       "a file over 4 MiB is refused");
	ep_cfg_errors_free(&errs);
	close(fd);
	unlink(path);
}

static void test_no_leftovers(void)
{
	/* A failed parse leaves *out zeroed even after partial work. */
	parse(SVC "    backends: [{address: 10.1.0.1, port: 1}]\nfoo: 1\n");
	tap_ok(cfg.services == NULL && cfg.n_services == 0 && cfg.ifaces == NULL &&
		       cfg.node_name[0] == '\0',
	       "failed parse leaves the config zeroed");
	/* NUL bytes in the input do not truncate or confuse it. */
	{
		static const char nul[] = "node: {name: \"a\\0b\"}\n";

		ep_config_free(&cfg);
		ep_cfg_errors_free(&errs);
		tap_ok(ep_config_parse(nul, sizeof(nul) - 1, &cfg, &errs) == -EINVAL &&
			       find_error("node.name", 1, "contains a NUL character"),
		       "escaped NUL in a string is refused");
	}
	ep_config_free(&cfg);
	ep_cfg_errors_free(&errs);
}

/* What dnsmasq reads as written stays allowed. */
static void test_dnsmasq_paths(void)
{
	expect_ok("preload with ',' and inner spaces (dnsmasq keeps them)",
		  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    preload: \"/var/lib/edge plane/a,b.hosts\"\n");
	tap_ok(!strcmp(cfg.dns.cache.preload, "/var/lib/edge plane/a,b.hosts"), "... kept as written");
	expect_ok("control.socket in a directory with '#' and no cache",
		  "control:\n  socket: /run/edge#plane/agent.sock\ndns:\n  upstreams: [10.2.0.53]\n");
	expect_ok("domains with '#' (read by the agent only, never by dnsmasq)",
		  "dns:\n  upstreams: [10.2.0.53]\n  cache:\n    domains: /etc/edge#plane/domains.txt\n");
}

int main(void)
{
	test_full();
	test_dns_kubernetes();
	test_label_keys();
	test_defaults();
	test_values();
	test_certs_csr();
	test_bad();
	test_dnsmasq_paths();
	test_generated();
	test_alias_bomb();
	test_print_and_load();
	test_no_leftovers();
	return tap_done();
}
