/*
 * The agent's Kubernetes client: tells the cluster when node DNS fails over
 * to the local cache and back (docs/dns-failover.md).
 *
 * What it writes, for the node the agent runs on:
 *   - a label <label_key>="true" while DNS is failed over (removed after);
 *   - a Node condition <condition_type> ("EdgeplaneDNSHealthy"), "False"
 *     while failed over, "True" otherwise, other conditions untouched;
 *   - an Event on each transition: DNSFailover (Warning) / DNSFailback (Normal);
 *   - Events others ask for (ep_k8s_post_event): CanaryRollback (Warning).
 *
 * Everything runs in one background thread. Callers only record the state
 * they want (ep_k8s_set_dns_state never blocks on the network); the worker
 * reconciles the cluster to the latest wanted state, retrying with backoff.
 *
 * RBAC the service account needs (core API group, cluster scope for nodes):
 *   nodes: get, patch    nodes/status: patch    events: create
 */
#ifndef EP_K8S_H
#define EP_K8S_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define EP_K8S_DEFAULT_TIMEOUT_MS 5000
#define EP_K8S_DEFAULT_FORBIDDEN_RETRY_MS 60000
#define EP_K8S_DEFAULT_BACKOFF_MAX_MS 30000
#define EP_K8S_CONDITION_TYPE "EdgeplaneDNSHealthy"

/* Resolved from struct ep_cfg_kubernetes + the node name. */
struct ep_k8s_settings {
	char api_server[256];	   /* https://host:port, no trailing slash */
	char token_file[PATH_MAX]; /* re-read on every request: projected tokens rotate */
	char ca_file[PATH_MAX];	   /* verifies the API server's certificate */
	char node_name[256];
	char label_key[256];	   /* e.g. edgeplane.io/dns-unhealthy */
	char event_namespace[64];  /* "default": see ep_k8s_resolve */
	char condition_type[64];   /* EP_K8S_CONDITION_TYPE */
	unsigned timeout_ms;	   /* per request (connect + transfer), default 5000 */
	/* Retry pacing; defaults above. Tests shorten them. */
	unsigned forbidden_retry_ms; /* after a 403 (missing RBAC) or a rejected request */
	unsigned backoff_max_ms;     /* cap of the exponential backoff */
};

/*
 * Decides whether and how to talk to the API server.
 *   enabled: false -> 0.
 *   enabled: auto  -> in a cluster when an API server is known (api_server
 *                     from the config, else KUBERNETES_SERVICE_HOST/PORT) and
 *                     the token file exists; otherwise 0.
 *   enabled: true  -> like auto, but what is missing is an error (-1).
 * Returns 1 = use the API (*out filled), 0 = not in a cluster (caller logs
 * one line and skips; err says why), -1 = configured but unusable (err says
 * why, e.g. enabled: true without a token). Events about a Node (cluster
 * scoped) can only live in namespace "default" - the API server refuses any
 * other for them - so another event_namespace is replaced, with a warning.
 */
int ep_k8s_resolve(const struct ep_cfg_kubernetes *cfg, const char *node_name,
		   struct ep_k8s_settings *out, char *err, size_t errlen);

struct ep_k8s;

/* Starts the worker thread. NULL on failure (logged). Nothing is sent
 * until the first ep_k8s_set_dns_state. */
struct ep_k8s *ep_k8s_start(const struct ep_k8s_settings *s);

/*
 * Non-blocking, callable from any thread: records the wanted DNS state and
 * wakes the worker, which makes the cluster match it. Only the latest call
 * matters (states are coalesced). reason: a CamelCase word for the
 * condition (default "DNSFailover" / "DNSHealthy"); message: free text.
 * Either may be NULL.
 */
void ep_k8s_set_dns_state(struct ep_k8s *k, bool unhealthy, const char *reason,
			  const char *message);

/* Non-blocking, any thread: queues an Event about the node (type Normal or
 * Warning, reason CamelCase) for the worker to post, e.g. a canary rollback
 * (agent/canary). */
void ep_k8s_post_event(struct ep_k8s *k, const char *type, const char *reason,
		       const char *message);

struct ep_k8s_status {
	bool desired_set;	/* ep_k8s_set_dns_state was called */
	bool desired_unhealthy;
	bool in_sync;		/* label, condition and Events all match the wanted state */
	uint64_t requests;	/* HTTP requests sent */
	uint64_t failures;	/* requests that failed (any reason) */
	uint64_t retries;	/* requests sent to retry a failed step */
	uint64_t events_posted;
	char last_error[256];	/* "" if none since the last success */
	double last_success_at; /* wall clock seconds, 0 = never */
};

void ep_k8s_get_status(struct ep_k8s *k, struct ep_k8s_status *st);

/* Stops the worker (aborting a request in flight), joins it and frees
 * everything. Returns within about 100 ms whatever the server does. */
void ep_k8s_stop(struct ep_k8s *k);

#endif
