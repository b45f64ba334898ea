/*
 * Kubernetes client, transport half (k8s_client.h): finds the API server
 * (in-cluster environment or the config, token, CA), sends requests with
 * the service account's token through lib/http, and turns answers into
 * outcomes and retry pacing.
 *
 *  - The token is re-read on every request: projected service account
 *    tokens are rotated by the kubelet.
 *  - Failures: server-wide trouble (transport errors, timeouts, 5xx, 429,
 *    401) pauses all requests (backoff / Retry-After). A 403 or another
 *    rejection pauses only the step that got it, so missing "events create"
 *    never holds back the label.
 */
#include "k8s_client.h"
#include "k8s_curl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns_name.h"
#include "log.h"
#include "util.h"

#define BODY_MAX (16u << 20)   /* a Node is ~10-100 KiB; far more is not an API server */
#define RETRY_AFTER_MAX_MS 60000

/* The RBAC permission each step needs, as "resource verb". */
static const char *const op_rbac[N_OPS] = {
	[OP_GET_NODE] = "nodes get",
	[OP_PATCH_NODE] = "nodes patch",
	[OP_PATCH_STATUS] = "nodes/status patch",
	[OP_CREATE_EVENT] = "events create",
};

uint64_t k8s_now_ms(void)
{
	return ep_now_ns() / 1000000ULL;
}

/* -------------------------------------------------------------- resolve */

int ep_k8s_resolve(const struct ep_cfg_kubernetes *cfg, const char *node_name,
		   struct ep_k8s_settings *out, char *err, size_t errlen)
{
	const char *token = cfg->token_file[0] ? cfg->token_file : EP_K8S_DEFAULT_TOKEN_FILE;
	const char *ca = cfg->ca_file[0] ? cfg->ca_file : EP_K8S_DEFAULT_CA_FILE;
	const char *ns = cfg->event_namespace[0] ? cfg->event_namespace : EP_K8S_DEFAULT_EVENT_NS;
	const char *label = cfg->dns_unhealthy_label[0] ? cfg->dns_unhealthy_label : EP_K8S_DEFAULT_LABEL;
	bool must = cfg->enabled == EP_K8S_ON;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	if (cfg->enabled == EP_K8S_OFF) {
		snprintf(err, errlen, "kubernetes.enabled is false");
		return 0;
	}

	if (cfg->api_server[0]) {
		snprintf(out->api_server, sizeof(out->api_server), "%s", cfg->api_server);
	} else {
		const char *host = getenv("KUBERNETES_SERVICE_HOST");
		const char *port = getenv("KUBERNETES_SERVICE_PORT");
		char *end;
		long p;

		if (!host || !*host || !port || !*port) {
			snprintf(err, errlen,
				 "not in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT "
				 "are not set and kubernetes.api_server is empty%s",
				 must ? " (kubernetes.enabled is true)" : "");
			return must ? -1 : 0;
		}
		errno = 0;
		p = strtol(port, &end, 10);
		if (errno || *end || p < 1 || p > 65535 || strpbrk(host, "/?#@ []")) {
			snprintf(err, errlen,
				 "KUBERNETES_SERVICE_HOST=%.64s KUBERNETES_SERVICE_PORT=%.16s do not "
				 "make an API server address", host, port);
			return -1;
		}
		/* An IPv6 service address needs brackets in a URL. */
		snprintf(out->api_server, sizeof(out->api_server),
			 strchr(host, ':') ? "https://[%s]:%ld" : "https://%s:%ld", host, p);
	}
	n = strlen(out->api_server);
	while (n && out->api_server[n - 1] == '/')
		out->api_server[--n] = '\0';
	if (strncmp(out->api_server, "https://", 8) || n <= 8) {
		/* The bearer token must never travel in clear text. */
		snprintf(err, errlen, "kubernetes.api_server \"%s\" is not an https:// URL",
			 out->api_server);
		return -1;
	}

	if (access(token, R_OK)) {
		snprintf(err, errlen, "no service account token: %s: %s%s", token, strerror(errno),
			 must ? " (kubernetes.enabled is true)" :
			 cfg->api_server[0] ? " (kubernetes.api_server is set)" : "");
		/* auto, and nothing but the environment says "cluster": we are
		 * not in a pod with a service account. */
		return (must || cfg->api_server[0]) ? -1 : 0;
	}
	if (access(ca, R_OK)) {
		snprintf(err, errlen, "CA certificate for the API server: %s: %s", ca,
			 strerror(errno));
		return -1;
	}
	if (!node_name || !ep_dns_subdomain_ok(node_name, strlen(node_name))) {
		snprintf(err, errlen,
			 "node name \"%s\" is not a valid Kubernetes node name (lowercase RFC 1123 "
			 "subdomain); set node.name or $NODE_NAME", node_name ? node_name : "");
		return -1;
	}
	if (strlen(label) >= sizeof(out->label_key) || !ep_label_key_ok(label)) {
		snprintf(err, errlen, "kubernetes.dns_unhealthy_label \"%s\" is not a label key",
			 label);
		return -1;
	}
	if (!ep_dns_label_ok(ns, strlen(ns))) {
		snprintf(err, errlen, "kubernetes.event_namespace \"%s\" is not a namespace name",
			 ns);
		return -1;
	}
	if (strcmp(ns, "default")) {
		/* The API server only accepts Events about cluster-scoped
		 * objects (a Node) in "default" (core/v1 Event validation). */
		log_warn("kubernetes: event_namespace \"%s\" ignored: Events about a Node must be "
			 "in namespace \"default\" (the API server rejects others)", ns);
		ns = "default";
	}

	snprintf(out->token_file, sizeof(out->token_file), "%s", token);
	snprintf(out->ca_file, sizeof(out->ca_file), "%s", ca);
	snprintf(out->node_name, sizeof(out->node_name), "%s", node_name);
	snprintf(out->label_key, sizeof(out->label_key), "%s", label);
	snprintf(out->event_namespace, sizeof(out->event_namespace), "%s", ns);
	snprintf(out->condition_type, sizeof(out->condition_type), "%s", EP_K8S_CONDITION_TYPE);
	out->timeout_ms = EP_K8S_DEFAULT_TIMEOUT_MS;
	out->forbidden_retry_ms = EP_K8S_DEFAULT_FORBIDDEN_RETRY_MS;
	out->backoff_max_ms = EP_K8S_DEFAULT_BACKOFF_MAX_MS;
	return 1;
}


/* ------------------------------------------------------------ transport */

int k8s_client_init(struct k8s_client *c, const struct ep_k8s_settings *s)
{
	struct ep_http_opts o = {
		.ca_file = s->ca_file,
		.token_file = s->token_file,
		.user_agent = K8S_COMPONENT,
		.protocols = "https", /* the bearer token never travels in clear text */
		.timeout_ms = s->timeout_ms,
		.body_max = BODY_MAX,
	};
	char err[256];

	memset(c, 0, sizeof(*c));
	c->s = s;
	c->http = ep_http_new(&o, err, sizeof(err));
	if (!c->http) {
		log_error("kubernetes: %s", err);
		return -1;
	}
	pthread_mutex_init(&c->lock, NULL);
	ep_backoff_init(&c->backoff, K8S_BACKOFF_MIN_MS, s->backoff_max_ms);
	return 0;
}

void k8s_client_fini(struct k8s_client *c)
{
	if (!c->http)
		return;
	ep_http_free(c->http);
	c->http = NULL;
	pthread_mutex_destroy(&c->lock);
}

void k8s_client_interrupt(struct k8s_client *c)
{
	ep_http_interrupt(c->http);
}

void k8s_note_failure(struct k8s_client *c, const char *method, const char *path,
		      const struct ep_http_resp *r)
{
	pthread_mutex_lock(&c->lock);
	c->failures++;
	/* Truncation is fine: the API server's message comes last. */
	if (snprintf(c->last_error, sizeof(c->last_error), "%s %s: %s", method, path, r->msg) >=
	    (int)sizeof(c->last_error))
		strcpy(c->last_error + sizeof(c->last_error) - 4, "...");
	pthread_mutex_unlock(&c->lock);
}

/* Fills r->msg from a Status object: "409 Conflict: Operation cannot..." */
static const char *status_reason(struct ep_http_resp *r, char *reason, size_t n)
{
	json_t *st = ep_http_resp_json(r);
	const char *re = st ? json_string_value(json_object_get(st, "reason")) : NULL;
	const char *m = st ? json_string_value(json_object_get(st, "message")) : NULL;

	snprintf(reason, n, "%s", re ? re : "");
	snprintf(r->msg, sizeof(r->msg), "%ld %s: %s", r->code, re ? re : "",
		 m ? m : "(no Status in the response)");
	json_decref(st);
	return reason;
}

enum k8s_outcome k8s_call(struct k8s_client *c, const char *method, const char *path,
			  const char *ctype, const char *body, struct ep_http_resp *r)
{
	char url[sizeof(c->s->api_server) + 768], reason[64];
	enum ep_http_result res;

	snprintf(url, sizeof(url), "%s%s", c->s->api_server, path);
	res = ep_http_request(c->http, method, url, ctype, body, r);
	if (res == EP_HTTP_NOT_SENT) {
		k8s_note_failure(c, method, path, r);
		return K8S_UNAVAILABLE;
	}

	pthread_mutex_lock(&c->lock);
	c->requests++;
	if (c->retrying)
		c->retries++;
	pthread_mutex_unlock(&c->lock);

	if (res == EP_HTTP_STOPPED)
		return K8S_STOPPED;
	if (res != EP_HTTP_ANSWERED) {
		k8s_note_failure(c, method, path, r);
		return K8S_UNAVAILABLE;
	}
	if (r->code >= 200 && r->code < 300) {
		pthread_mutex_lock(&c->lock);
		c->last_success_at = ep_wall_seconds();
		pthread_mutex_unlock(&c->lock);
		return K8S_OK;
	}

	status_reason(r, reason, sizeof(reason));
	if (r->code == 409 && !strcmp(reason, "AlreadyExists"))
		return K8S_OK; /* our own earlier create whose answer was lost */
	k8s_note_failure(c, method, path, r);
	switch (r->code) {
	case 401:
		return K8S_UNAUTHORIZED;
	case 403:
		return K8S_FORBIDDEN;
	case 404: /* Node not registered (yet): may come; retry with backoff */
		return K8S_UNAVAILABLE;
	case 409:
		return K8S_CONFLICT;
	case 429:
		return K8S_THROTTLED;
	default:
		return r->code >= 500 ? K8S_UNAVAILABLE : K8S_REJECTED;
	}
}

enum k8s_outcome k8s_call_json(struct k8s_client *c, const char *method, const char *path,
			       const char *ctype, json_t *o, struct ep_http_resp *r)
{
	char *body = ep_http_json_body(o);
	enum k8s_outcome res;

	if (!body) {
		snprintf(r->msg, sizeof(r->msg), "out of memory");
		return K8S_UNAVAILABLE;
	}
	res = k8s_call(c, method, path, ctype, body, r);
	free(body);
	return res;
}

/* ------------------------------------------------------------ policy */

bool k8s_failed(struct k8s_client *c, enum k8s_op op, enum k8s_outcome o,
		const struct ep_http_resp *r)
{
	uint64_t now = k8s_now_ms();
	unsigned ms;

	c->retrying = true;
	switch (o) {
	case K8S_THROTTLED:
		ms = r->retry_after_s > 0 ?
			     (unsigned)(r->retry_after_s * 1000 > RETRY_AFTER_MAX_MS ?
						RETRY_AFTER_MAX_MS : r->retry_after_s * 1000) :
			     ep_backoff_next(&c->backoff);
		c->global_until = now + ms;
		log_warn("kubernetes: %s: throttled by the API server (429); retrying in %u ms",
			 op_rbac[op], ms);
		return true;
	case K8S_UNAUTHORIZED:
		ms = ep_backoff_next(&c->backoff);
		c->global_until = now + ms;
		log_warn("kubernetes: %s: token from %s rejected (401 Unauthorized); re-reading "
			 "it and retrying in %u ms", op_rbac[op], c->s->token_file, ms);
		return true;
	case K8S_FORBIDDEN:
		if (!c->forbidden_logged[op])
			log_error("kubernetes: RBAC: the service account may not \"%s\" (%s); "
				  "grant it - the agent needs nodes get, nodes "
				  "patch, nodes/status patch, events create; retrying every %u s",
				  op_rbac[op], r->msg, c->s->forbidden_retry_ms / 1000);
		c->forbidden_logged[op] = true;
		c->hold_until[op] = now + c->s->forbidden_retry_ms;
		return false;
	case K8S_REJECTED:
		if (!c->rejected_logged[op])
			log_error("kubernetes: %s: the API server rejected the request (%s); "
				  "retrying every %u s", op_rbac[op], r->msg,
				  c->s->forbidden_retry_ms / 1000);
		c->rejected_logged[op] = true;
		c->hold_until[op] = now + c->s->forbidden_retry_ms;
		return false;
	case K8S_STOPPED:
		return true;
	default: /* unavailable, or conflicts that did not resolve at once */
		ms = ep_backoff_next(&c->backoff);
		c->global_until = now + ms;
		log_warn("kubernetes: %s failed: %s; retrying in %u ms", op_rbac[op], r->msg, ms);
		return true;
	}
}

void k8s_succeeded(struct k8s_client *c, enum k8s_op op)
{
	if (c->forbidden_logged[op])
		log_info("kubernetes: RBAC now allows \"%s\"", op_rbac[op]);
	c->forbidden_logged[op] = false;
	c->rejected_logged[op] = false;
	c->hold_until[op] = 0;
}

void k8s_pass_ok(struct k8s_client *c, bool in_sync)
{
	ep_backoff_reset(&c->backoff);
	c->retrying = false;
	if (in_sync) {
		pthread_mutex_lock(&c->lock);
		c->last_error[0] = '\0';
		pthread_mutex_unlock(&c->lock);
	}
}

/* ----------------------------------------------- callers' own libcurl */

struct curl_slist *ep_k8s_curl_prepare(CURL *curl, const struct ep_k8s_settings *k,
				       const struct ep_k8s_curl_req *r, char *err, size_t errlen)
{
	char tok[8192], hdr[8300];
	struct curl_slist *h = NULL;
	FILE *f;
	size_t n = 0;

	f = fopen(k->token_file, "re");
	if (f) {
		n = fread(tok, 1, sizeof(tok) - 1, f);
		fclose(f);
	}
	while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
		n--;
	tok[n] = '\0';
	if (!n) {
		snprintf(err, errlen, "no token in %.400s", k->token_file);
		return NULL;
	}
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
	h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "Accept: application/json");
	if (r->json_body)
		h = curl_slist_append(h, "Content-Type: application/json");
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, r->url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, r->user_agent);
	curl_easy_setopt(curl, CURLOPT_CAINFO, k->ca_file);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)k->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, r->on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r->ud);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, r->on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, r->ud);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, r->errbuf);
	return h;
}

CURLcode ep_k8s_curl_perform(CURL *curl, struct curl_slist *hdrs, long *code)
{
	CURLcode rc = curl_easy_perform(curl);

	*code = 0;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
	curl_slist_free_all(hdrs);
	/* The list is gone: the handle must not point at it for the next use. */
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	return rc;
}
