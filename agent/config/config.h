/*
 * The agent's configuration: the YAML schema of docs/config.md, parsed with libyaml
 * and validated in one pass. Every error names the key path and line; all
 * errors are collected, not just the first. Each section's keys, defaults and
 * rules live next to the code that uses them (config_schema.h, sections.c).
 */
#ifndef EP_CONFIG_H
#define EP_CONFIG_H

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define EP_NAME_MAX 64
#define EP_CFG_MAX_BACKENDS_PER_SVC 4096

enum ep_iface_role {
	EP_ROLE_UPLINK = 0, /* XDP load balancer (+ TC reverse NAT for backends behind it) */
	EP_ROLE_PODS,	    /* TC reverse NAT */
};

enum ep_xdp_mode {
	EP_XDP_NATIVE = 0,
	EP_XDP_SKB,
};

/* How a balanced packet leaves XDP (docs/datapath.md explains the choice). */
enum ep_forwarding {
	EP_FWD_STACK = 0, /* XDP_PASS after the rewrite; the kernel routes it */
	EP_FWD_REDIRECT,  /* bpf_fib_lookup + XDP_REDIRECT, stack as fallback */
};

struct ep_cfg_iface {
	char name[IFNAMSIZ];
	enum ep_iface_role role;
	int line;
};

struct ep_cfg_backend {
	struct ep_ip addr;
	uint16_t port;
	uint32_t weight; /* 0..65535; 0 = no new flows */
	bool canary;
	int line;
};

#define EP_CFG_MAX_CANARY_STEPS 16

enum ep_canary_on_rollback {
	EP_CANARY_KEEP = 0, /* established canary flows continue (default) */
	EP_CANARY_RESET,    /* established canary flows are cut */
};

struct ep_cfg_canary_rollback {
	bool enabled;		    /* default true */
	uint32_t window_ms;	    /* default 100 */
	uint32_t min_samples;	    /* per side and window, default 20 */
	uint32_t max_failure_bp;    /* max_failure_ratio in basis points, default 500 */
	uint32_t margin_bp;	    /* margin over stable in basis points, default 200 */
};

struct ep_cfg_canary {
	uint32_t percent_bp; /* percent * 100 (basis points), 0..10000 */
	bool sticky_flow;    /* sticky: flow (false = client, the default) */
	bool http;	     /* plain HTTP/1.x: 5xx responses count as failures */
	uint32_t steps_bp[EP_CFG_MAX_CANARY_STEPS]; /* ramp, rising; n_steps == 0: none */
	size_t n_steps;
	uint32_t step_interval_s; /* default 60 */
	struct ep_cfg_canary_rollback rollback;
	enum ep_canary_on_rollback on_rollback;
	bool present; /* the service has a canary section */
};

/* services[].mirror (agent/canary/mirror_config.c) */
struct ep_cfg_mirror {
	bool configured;     /* the mirror section is present */
	uint32_t percent_bp; /* share of the service's flows, basis points */
	struct {
		char interface[IFNAMSIZ]; /* clone to this local interface, or */
		struct {
			bool present;
			struct ep_ip remote; /* ...VXLAN-encapsulate to this collector */
			uint32_t vni;
			uint16_t port; /* default 4789 */
		} vxlan;
	} to;
	uint32_t max_bytes_per_s; /* token bucket rate, default 10000000 */
	int line;
};

struct ep_cfg_service {
	char name[EP_NAME_MAX];
	struct ep_ip vip;
	uint16_t port;
	uint8_t proto; /* IPPROTO_TCP / IPPROTO_UDP */
	struct ep_cfg_backend *backends;
	size_t n_backends;
	struct ep_cfg_canary canary;
	struct ep_cfg_mirror mirror;
	int line;
};

struct ep_cfg_datapath {
	char bpffs[PATH_MAX];		/* default /sys/fs/bpf/edgeplane */
	enum ep_xdp_mode xdp_mode;	/* default native */
	enum ep_forwarding forwarding; /* default stack */
	uint32_t conntrack_size;	/* default EP_CT_DEFAULT_SIZE; 1024..16M */
	uint32_t maglev_table_size;	/* default EP_MAGLEV_DEFAULT_SIZE; prime, 251..EP_MAGLEV_MAX_SIZE */
	uint32_t ct_timeout_tcp_s;	/* idle TCP flows are forgotten after this; default 3600 */
	uint32_t ct_timeout_udp_s;	/* default 60 */
	/* cgroup v2 directory the socket hooks (DNS failover for node processes)
	 * attach to; "" = the root of the hierarchy mounted in the agent's mount
	 * namespace. In a container, the host's cgroup2 root mounted in. */
	char cgroup_root[PATH_MAX];
};

/* dns: the upstream resolvers, the local cache, health and failover. */
#define EP_CFG_MAX_UPSTREAMS 8
#define EP_CFG_MAX_FALLBACK 4
#define EP_CFG_MAX_CANARIES 16
#define EP_CFG_MAX_EXPECT 8

struct ep_cfg_dns_canary {
	char name[254];
	struct ep_ip expect[EP_CFG_MAX_EXPECT]; /* a right answer contains one of these */
	size_t n_expect;
	int line;
};

/* When answers that contradict the trusted snapshot are dropped in the
 * datapath: always (no forged answer for a snapshot name reaches a client,
 * but a record that legitimately moved entirely fails until the next
 * refresh), once the upstream is suspected of hijacking, or never. */
enum ep_drop_divergent { EP_DROP_DIV_ALWAYS = 0, EP_DROP_DIV_SUSPECTED, EP_DROP_DIV_NEVER };

struct ep_cfg_dns {
	bool configured; /* the dns section is present */
	struct ep_ip upstreams[EP_CFG_MAX_UPSTREAMS];
	size_t n_upstreams;
	struct {
		bool enabled;		   /* the cache section is present */
		struct ep_ip listen;	   /* dnsmasq answers here, port 53 (default 169.254.20.10) */
		struct ep_ip listen6;	   /* optional IPv6 address too (family 0: none); needed to
					    * redirect queries to IPv6 upstreams */
		char preload[PATH_MAX];	   /* hosts file from `edgeplane cache build` */
		uint32_t ttl;		   /* TTL of preloaded answers, default 30 */
		char domains[PATH_MAX];	   /* names the refresh rebuilds; "" = no refresh */
		uint32_t refresh_s;	   /* default 300; 0 disables the refresh */
		uint32_t max_loss_percent; /* refresh loss guard, default 10 */
		uint32_t max_change_percent; /* ... and change guard (addresses), default 25 */
		uint32_t cache_size;	   /* dnsmasq cache-size, default 0 (see config.c) */
		char dnsmasq[PATH_MAX];	   /* binary, default "dnsmasq" (searched on PATH) */
		/* trusted resolvers for names outside the snapshot while failed
		 * over (port 53, tried in order); none by default */
		struct ep_ip fallback[EP_CFG_MAX_FALLBACK];
		size_t n_fallback;
	} cache;
	struct {
		uint32_t probe_interval_ms; /* default 200 */
		uint32_t timeout_ms;	    /* default 500 */
		struct ep_cfg_dns_canary *canaries;
		size_t n_canaries;
		char trust_anchor[PATH_MAX]; /* DNSSEC trust anchor file; "" = no validation */
		uint32_t hijack_ratio_bp;    /* divergent sampled answers marking hijack, default 2000 */
	} health;
	struct {
		uint32_t timeout_ratio_bp;  /* default 2000 (0.2) */
		uint32_t servfail_ratio_bp; /* default 2000 */
		uint32_t window_ms;	    /* default 1000 */
		uint32_t min_samples;	    /* default 5 */
		uint32_t failback_after_s;  /* default 30 */
		enum ep_drop_divergent drop_divergent; /* default always */
	} failover;
};

enum ep_k8s_enabled { EP_K8S_AUTO = 0, EP_K8S_ON, EP_K8S_OFF };

/* Where a pod finds its service account, and what the node label is called:
 * the config's defaults and the Kubernetes client's fallbacks. */
#define EP_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define EP_K8S_DEFAULT_TOKEN_FILE EP_K8S_SA_DIR "/token"
#define EP_K8S_DEFAULT_CA_FILE EP_K8S_SA_DIR "/ca.crt"
#define EP_K8S_DEFAULT_LABEL "edgeplane.io/dns-unhealthy"
#define EP_K8S_DEFAULT_EVENT_NS "default"

struct ep_cfg_kubernetes {
	enum ep_k8s_enabled enabled; /* auto: in-cluster when a service account exists */
	char api_server[256];	     /* https://host:port; "" = in-cluster env */
	char token_file[PATH_MAX];   /* default /var/run/secrets/kubernetes.io/serviceaccount/token */
	char ca_file[PATH_MAX];	     /* default .../serviceaccount/ca.crt */
	char dns_unhealthy_label[256]; /* default edgeplane.io/dns-unhealthy */
	char event_namespace[64];    /* default "default" */
};

/* certs: certificate sets the agent keeps in step with their source
 * (agent/certs/, docs/certs.md). */
#define EP_CFG_MAX_CERTS 32
#define EP_CFG_MAX_CERT_SAN 8

struct ep_cfg_cert_source {
	bool present;
	char dir[PATH_MAX]; /* a directory with tls.crt, tls.key, ca.crt (bundle: ca.crt) */
	char secret[320];   /* or a Kubernetes Secret "namespace/name", watched through the API */
	struct ep_cfg_cert_csr {
		bool present;	  /* or the node's own identity through a CertificateSigningRequest */
		char signer_name[254]; /* spec.signerName, e.g. example.com/edge-mtls */
		char common_name[64];  /* default: the node name */
		uint32_t expiration_seconds; /* spec.expirationSeconds; 0: the signer's default */
		uint32_t renew_at_bp;	  /* renew at this share of the lifetime, default 7000 */
		uint32_t renew_jitter_bp; /* plus a random share up to this, default 2000 */
		bool server_auth;	  /* ask for "server auth" besides "client auth" */
	} csr;
};

struct ep_cfg_cert_reload {
	bool present;
	int signal;		/* with pidfile; default SIGHUP */
	char pidfile[PATH_MAX];
	char command[1024];	/* run through /bin/sh -c by the spawner */
	uint32_t timeout_ms;	/* default 5000 */
	char verify[128];	/* host:port: TLS handshake must show the new serial */
};

struct ep_cfg_cert {
	char name[EP_NAME_MAX];
	struct ep_cfg_cert_source source; /* a leaf certificate with its key */
	struct ep_cfg_cert_source bundle; /* or: CA certificates only */
	char target[PATH_MAX];
	char trust[PATH_MAX]; /* CA bundle the chain must verify to; "" = ca.crt of the source */
	struct {
		char san[EP_CFG_MAX_CERT_SAN][256];
		size_t n_san;
	} expect;
	struct ep_cfg_cert_reload reload;
	uint32_t skew_s;	/* NotBefore tolerance, default 60 */
	uint32_t warn_before_s; /* expiry warning threshold, default 7 days */
	uint32_t max_bytes;	/* per file, default 256 KiB */
	uint32_t settle_ms;	/* quiet time after a change before reading, default 5 */
	int line;
};

struct ep_config {
	char node_name[256]; /* default: $NODE_NAME, then the hostname */
	struct ep_cfg_datapath datapath;
	struct ep_cfg_iface *ifaces;
	size_t n_ifaces;
	struct ep_cfg_service *services;
	size_t n_services;
	char metrics_listen[128]; /* default 127.0.0.1:9464; "" disables */
	char control_socket[PATH_MAX]; /* default /run/edgeplane/agent.sock */
	struct ep_cfg_dns dns;
	struct ep_cfg_kubernetes kubernetes;
	struct ep_cfg_cert *certs;
	size_t n_certs;
};

/* One validation problem. */
struct ep_cfg_error {
	int line;	 /* 1-based, 0 when unknown */
	char key[160];	 /* e.g. "services[0].backends[1].port" */
	char msg[256];
};

struct ep_cfg_errors {
	struct ep_cfg_error *v;
	size_t n;
};

/*
 * Parses and validates YAML text. On success returns 0 and fills *out (free
 * with ep_config_free). On failure returns -EINVAL and fills errs (free with
 * ep_cfg_errors_free); *out is left zeroed.
 */
int ep_config_parse(const char *text, size_t len, struct ep_config *out, struct ep_cfg_errors *errs);
/*
 * Reads FILE and parses it: what --check-config and every (re)load run. A read
 * error is reported as an error with line 0. When hash is not NULL it gets a
 * hash of the bytes read (also on a parse error), to tell a change of content.
 */
int ep_config_load(const char *path, struct ep_config *out, struct ep_cfg_errors *errs,
		   uint64_t *hash);
void ep_config_free(struct ep_config *cfg);
void ep_cfg_errors_free(struct ep_cfg_errors *errs);
/* "FILE:LINE: KEY: MESSAGE" lines, one per error, into stream. */
void ep_cfg_errors_print(const struct ep_cfg_errors *errs, const char *path, void *stream);

/* The kubernetes section's defaults, for callers that build one by hand. */
void ep_cfg_kubernetes_defaults(struct ep_cfg_kubernetes *k);

const struct ep_cfg_service *ep_config_find_service(const struct ep_config *cfg, const char *name);

#endif
