/*
 * Kubernetes client: reports the node's DNS failover state to the cluster
 * (label, Node condition, Events). See k8s.h for the contract.
 *
 * Design:
 *  - One worker thread owns all network I/O. Callers set the wanted state
 *    under a mutex and signal a condition variable; they never wait for the
 *    API server. Every wanted state gets a generation number; the worker
 *    records which generation the label and the condition last matched, so
 *    states set while it was busy are coalesced into the latest.
 *  - Requests go through a curl multi handle with one easy handle, so
 *    ep_k8s_stop can interrupt a request in flight (curl_multi_wakeup)
 *    instead of waiting out its timeout. Connections are reused.
 *  - Label: JSON merge patch on the Node, without a resourceVersion. It only
 *    touches our key, so a concurrent writer cannot be overwritten and there
 *    is no reason to risk a conflict.
 *  - Condition: conditions are a list, and a merge patch replaces lists
 *    whole, so we GET the Node, rebuild the list with our entry replaced or
 *    added (the kubelet's entries as they are), and merge-patch /status with
 *    the full list AND metadata.resourceVersion. If the kubelet wrote the
 *    Node in between, the API server answers 409 and we re-GET and rebuild,
 *    so its update is never lost. (A strategic merge patch would merge by
 *    type server-side and needs no precondition; we use the merge patch
 *    because its semantics are RFC 7386, exact and the same everywhere, and
 *    the resourceVersion precondition makes the write safe. We need the GET
 *    anyway: the Node uid for Events, the current condition to keep its
 *    lastTransitionTime and to know whether a transition happened.)
 *  - Events: one per transition of the reported state (DNSFailover,
 *    DNSFailback), queued and posted after label and condition. The name is
 *    fixed when queued (NODE.<hex ns>, as the kubelet names them), so a POST
 *    retried after a lost response gets 409 AlreadyExists instead of a
 *    duplicate.
 *  - Failures: server-wide trouble (transport errors, timeouts, 5xx, 429,
 *    401) pauses all requests (backoff / Retry-After). A 403 or another
 *    rejection pauses only the step that got it, so missing "events create"
 *    never holds back the label.
 */
#include "k8s.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dns_name.h"
#include "log.h"
#include "util.h"

#define COMPONENT "edgeplane-agent"
#define BODY_MAX (16u << 20)   /* a Node is ~10-100 KiB; far more is not an API server */
#define TOKEN_MAX (64u << 10)
#define CONFLICT_RETRIES 5     /* immediate re-GET + retry after a 409 */
#define BACKOFF_MIN_MS 200
#define RETRY_AFTER_MAX_MS 60000
#define EVQ_MAX 16
#define REASON_MAX 128
#define MESSAGE_MAX 1024

enum k8s_op { OP_GET_NODE, OP_PATCH_NODE, OP_PATCH_STATUS, OP_CREATE_EVENT, N_OPS };

/* The RBAC permission each step needs, as "resource verb". */
static const char *const op_rbac[N_OPS] = {
	[OP_GET_NODE] = "nodes get",
	[OP_PATCH_NODE] = "nodes patch",
	[OP_PATCH_STATUS] = "nodes/status patch",
	[OP_CREATE_EVENT] = "events create",
};

enum k8s_outcome {
	K8S_OK,
	K8S_CONFLICT,	   /* 409 Conflict: stale resourceVersion */
	K8S_THROTTLED,	   /* 429 */
	K8S_UNAVAILABLE,   /* transport error, timeout, 5xx, 404, bad response */
	K8S_UNAUTHORIZED,  /* 401 */
	K8S_FORBIDDEN,	   /* 403 */
	K8S_REJECTED,	   /* other 4xx: the request itself is wrong */
	K8S_STOPPED,	   /* ep_k8s_stop interrupted it */
};

struct k8s_resp {
	long code;
	char *body;
	size_t len, cap;
	bool too_big;
	long retry_after_s; /* -1: none */
	char msg[300];	    /* what went wrong, for logs and last_error */
};

struct k8s_want {
	bool unhealthy;
	char reason[REASON_MAX];
	char message[MESSAGE_MAX];
};

struct k8s_event {
	bool failover;
	char name[256];
	char message[MESSAGE_MAX];
	char when[32];
};

struct ep_k8s {
	struct ep_k8s_settings s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stopping;
	CURLM *multi;
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];

	/* Under lock: the wanted state and how far the cluster matches it. */
	struct k8s_want want;
	uint64_t want_gen; /* 0: nothing wanted yet */
	uint64_t label_gen, cond_gen;
	struct k8s_event evq[EVQ_MAX];
	size_t evq_n;
	uint64_t requests, failures, retries, events_posted;
	char last_error[256];
	double last_success_at;

	/* Worker thread only. */
	json_t *node;		 /* the Node as last seen (GET or PATCH answer) */
	bool baseline;		 /* reported_unhealthy is known */
	bool reported_unhealthy; /* the state the cluster was last told */
	uint64_t global_until;	 /* monotonic ms: no request before this */
	uint64_t hold_until[N_OPS];
	unsigned backoff_ms;
	bool retrying;
	bool forbidden_logged[N_OPS];
	bool rejected_logged[N_OPS];
	uint64_t rng;
};

static uint64_t now_ms(void)
{
	return ep_now_ns() / 1000000ULL;
}

static void rfc3339(char *buf, size_t n, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Copies s into dst as printable ASCII: jansson needs valid UTF-8, and a
 * reason or message has no use for control characters. */
static void copy_text(char *dst, size_t n, const char *s, const char *dflt)
{
	size_t i = 0;

	if (!s || !*s)
		s = dflt;
	for (; *s && i + 1 < n; s++)
		dst[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	dst[i] = '\0';
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

/* --------------------------------------------------------------- HTTP */

static size_t on_body(char *p, size_t sz, size_t nmemb, void *arg)
{
	struct k8s_resp *r = arg;
	size_t len = sz * nmemb;

	if (r->len + len > BODY_MAX) {
		r->too_big = true;
		return 0; /* aborts the transfer */
	}
	if (r->len + len + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 16384;
		char *nb;

		while (cap < r->len + len + 1)
			cap *= 2;
		nb = realloc(r->body, cap);
		if (!nb)
			return 0;
		r->body = nb;
		r->cap = cap;
	}
	memcpy(r->body + r->len, p, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

static void resp_free(struct k8s_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* Reads the bearer token: every request, since projected service account
 * tokens are rotated by the kubelet. */
static char *read_token(const struct ep_k8s *k, char *err, size_t errlen)
{
	char *buf, *s, *e;
	size_t len;
	int rc = ep_read_file(k->s.token_file, TOKEN_MAX, &buf, &len);

	if (rc) {
		snprintf(err, errlen, "token file %.200s: %s", k->s.token_file, strerror(-rc));
		return NULL;
	}
	s = buf;
	while (*s && isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	for (const char *c = s; *c; c++) {
		/* Goes into a header line: visible ASCII only. */
		if (*c < 0x21 || *c > 0x7e) {
			s = e;
			break;
		}
	}
	if (s == e) {
		snprintf(err, errlen, "token file %.200s holds no usable token", k->s.token_file);
		explicit_bzero(buf, len);
		free(buf);
		return NULL;
	}
	memmove(buf, s, (size_t)(e - s) + 1);
	return buf;
}

/* Runs the easy handle to completion through the multi handle, so that
 * ep_k8s_stop can wake us (curl_multi_wakeup) and abort. */
static CURLcode k8s_perform(struct ep_k8s *k, bool *stopped)
{
	CURLcode res = CURLE_OK;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left;

	*stopped = false;
	if (curl_multi_add_handle(k->multi, k->easy) != CURLM_OK)
		return CURLE_FAILED_INIT;
	for (;;) {
		mc = curl_multi_perform(k->multi, &running);
		if (mc != CURLM_OK) {
			res = CURLE_FAILED_INIT;
			snprintf(k->errbuf, sizeof(k->errbuf), "curl_multi_perform: %s",
				 curl_multi_strerror(mc));
			break;
		}
		if (!running)
			break;
		if (atomic_load(&k->stopping)) {
			*stopped = true;
			break;
		}
		mc = curl_multi_poll(k->multi, NULL, 0, 1000, NULL);
		if (mc != CURLM_OK) {
			res = CURLE_FAILED_INIT;
			snprintf(k->errbuf, sizeof(k->errbuf), "curl_multi_poll: %s",
				 curl_multi_strerror(mc));
			break;
		}
	}
	if (!running) {
		while ((msg = curl_multi_info_read(k->multi, &left)))
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == k->easy)
				res = msg->data.result;
	}
	curl_multi_remove_handle(k->multi, k->easy);
	return res;
}

static void note_failure(struct ep_k8s *k, const char *method, const char *path,
			 const struct k8s_resp *r)
{
	pthread_mutex_lock(&k->lock);
	k->failures++;
	/* Truncation is fine: the API server's message comes last. */
	if (snprintf(k->last_error, sizeof(k->last_error), "%s %s: %s", method, path, r->msg) >=
	    (int)sizeof(k->last_error))
		strcpy(k->last_error + sizeof(k->last_error) - 4, "...");
	pthread_mutex_unlock(&k->lock);
}

/* Fills r->msg from a Status object: "409 Conflict: Operation cannot..." */
static const char *status_reason(struct k8s_resp *r, char *reason, size_t n)
{
	json_t *st = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *re = st ? json_string_value(json_object_get(st, "reason")) : NULL;
	const char *m = st ? json_string_value(json_object_get(st, "message")) : NULL;

	snprintf(reason, n, "%s", re ? re : "");
	snprintf(r->msg, sizeof(r->msg), "%ld %s: %s", r->code, re ? re : "",
		 m ? m : "(no Status in the response)");
	json_decref(st);
	return reason;
}

/*
 * One request. body/ctype may be NULL. The response is in r (free with
 * resp_free). Counts it, records failures in last_error.
 */
static enum k8s_outcome k8s_call(struct ep_k8s *k, const char *method, const char *path,
				 const char *ctype, const char *body, struct k8s_resp *r)
{
	struct curl_slist *hdrs = NULL, *h;
	char url[sizeof(k->s.api_server) + 768], ctbuf[128], reason[64];
	char *token, *auth = NULL;
	curl_off_t ra = -1;
	bool stopped;
	CURLcode res;

	resp_free(r); /* r may hold the previous answer */
	r->retry_after_s = -1;
	snprintf(url, sizeof(url), "%s%s", k->s.api_server, path);

	token = read_token(k, r->msg, sizeof(r->msg));
	if (!token) {
		note_failure(k, method, path, r);
		return K8S_UNAVAILABLE;
	}
	if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
		auth = NULL;
	explicit_bzero(token, strlen(token));
	free(token);
	if (!auth) {
		snprintf(r->msg, sizeof(r->msg), "out of memory");
		note_failure(k, method, path, r);
		return K8S_UNAVAILABLE;
	}

	h = curl_slist_append(hdrs, auth);
	hdrs = h ? h : hdrs;
	h = h ? curl_slist_append(hdrs, "Accept: application/json") : NULL;
	hdrs = h ? h : hdrs;
	/* No "Expect: 100-continue" round trip for our small bodies. */
	h = h ? curl_slist_append(hdrs, "Expect:") : NULL;
	hdrs = h ? h : hdrs;
	if (h && ctype) {
		snprintf(ctbuf, sizeof(ctbuf), "Content-Type: %s", ctype);
		h = curl_slist_append(hdrs, ctbuf);
		hdrs = h ? h : hdrs;
	}
	if (!h) {
		snprintf(r->msg, sizeof(r->msg), "out of memory");
		explicit_bzero(auth, strlen(auth));
		free(auth);
		curl_slist_free_all(hdrs);
		note_failure(k, method, path, r);
		return K8S_UNAVAILABLE;
	}

	curl_easy_reset(k->easy);
	k->errbuf[0] = '\0';
	curl_easy_setopt(k->easy, CURLOPT_URL, url);
	curl_easy_setopt(k->easy, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(k->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(k->easy, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(k->easy, CURLOPT_USERAGENT, COMPONENT);
	curl_easy_setopt(k->easy, CURLOPT_CAINFO, k->s.ca_file);
	curl_easy_setopt(k->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(k->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(k->easy, CURLOPT_TIMEOUT_MS, (long)k->s.timeout_ms);
	curl_easy_setopt(k->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)k->s.timeout_ms);
	curl_easy_setopt(k->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(k->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(k->easy, CURLOPT_ERRORBUFFER, k->errbuf);
	if (body) {
		curl_easy_setopt(k->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(k->easy, CURLOPT_POSTFIELDS, body);
	}
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(k->easy, CURLOPT_CUSTOMREQUEST, method);

	res = k8s_perform(k, &stopped);

	curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &r->code);
	curl_easy_getinfo(k->easy, CURLINFO_RETRY_AFTER, &ra);
	r->retry_after_s = ra > 0 ? (long)ra : -1;
	/* The header list and token are no longer needed: libcurl copied the
	 * request out; reset() drops its pointer to hdrs before the next use. */
	curl_easy_setopt(k->easy, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	explicit_bzero(auth, strlen(auth));
	free(auth);

	pthread_mutex_lock(&k->lock);
	k->requests++;
	if (k->retrying)
		k->retries++;
	pthread_mutex_unlock(&k->lock);

	if (stopped) {
		snprintf(r->msg, sizeof(r->msg), "stopped");
		return K8S_STOPPED;
	}
	if (res != CURLE_OK) {
		snprintf(r->msg, sizeof(r->msg), "%s",
			 r->too_big ? "response larger than 16 MiB" :
			 k->errbuf[0] ? k->errbuf : curl_easy_strerror(res));
		note_failure(k, method, path, r);
		return K8S_UNAVAILABLE;
	}
	if (r->code >= 200 && r->code < 300) {
		pthread_mutex_lock(&k->lock);
		k->last_success_at = ep_wall_seconds();
		pthread_mutex_unlock(&k->lock);
		return K8S_OK;
	}

	status_reason(r, reason, sizeof(reason));
	if (r->code == 409 && !strcmp(reason, "AlreadyExists"))
		return K8S_OK; /* our own earlier create whose answer was lost */
	note_failure(k, method, path, r);
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

/* ------------------------------------------------------------ policy */

static uint64_t rng_next(struct ep_k8s *k)
{
	/* xorshift64*: jitter only, not security. */
	k->rng ^= k->rng >> 12;
	k->rng ^= k->rng << 25;
	k->rng ^= k->rng >> 27;
	return k->rng * 0x2545F4914F6CDD1DULL;
}

/* Exponential backoff with "equal jitter": half the step fixed, half
 * random, so retries of many agents spread out but still grow. */
static unsigned backoff_next(struct ep_k8s *k)
{
	unsigned b = k->backoff_ms, max = k->s.backoff_max_ms;
	unsigned d = b / 2 + (unsigned)(rng_next(k) % (b / 2 + 1));

	k->backoff_ms = b >= max / 2 ? max : b * 2;
	return d;
}

/*
 * Schedules the retry of a failed step. Returns true when the failure is
 * server-wide (every request waits), false when only this step waits.
 */
static bool k8s_failed(struct ep_k8s *k, enum k8s_op op, enum k8s_outcome o,
		       const struct k8s_resp *r)
{
	uint64_t now = now_ms();
	unsigned ms;

	k->retrying = true;
	switch (o) {
	case K8S_THROTTLED:
		ms = r->retry_after_s > 0 ?
			     (unsigned)(r->retry_after_s * 1000 > RETRY_AFTER_MAX_MS ?
						RETRY_AFTER_MAX_MS : r->retry_after_s * 1000) :
			     backoff_next(k);
		k->global_until = now + ms;
		log_warn("kubernetes: %s: throttled by the API server (429); retrying in %u ms",
			 op_rbac[op], ms);
		return true;
	case K8S_UNAUTHORIZED:
		ms = backoff_next(k);
		k->global_until = now + ms;
		log_warn("kubernetes: %s: token from %s rejected (401 Unauthorized); re-reading "
			 "it and retrying in %u ms", op_rbac[op], k->s.token_file, ms);
		return true;
	case K8S_FORBIDDEN:
		if (!k->forbidden_logged[op])
			log_error("kubernetes: RBAC: the service account may not \"%s\" (%s); "
				  "grant it - the agent needs nodes get, nodes "
				  "patch, nodes/status patch, events create; retrying every %u s",
				  op_rbac[op], r->msg, k->s.forbidden_retry_ms / 1000);
		k->forbidden_logged[op] = true;
		k->hold_until[op] = now + k->s.forbidden_retry_ms;
		return false;
	case K8S_REJECTED:
		if (!k->rejected_logged[op])
			log_error("kubernetes: %s: the API server rejected the request (%s); "
				  "retrying every %u s", op_rbac[op], r->msg,
				  k->s.forbidden_retry_ms / 1000);
		k->rejected_logged[op] = true;
		k->hold_until[op] = now + k->s.forbidden_retry_ms;
		return false;
	case K8S_STOPPED:
		return true;
	default: /* unavailable, or conflicts that did not resolve at once */
		ms = backoff_next(k);
		k->global_until = now + ms;
		log_warn("kubernetes: %s failed: %s; retrying in %u ms", op_rbac[op], r->msg, ms);
		return true;
	}
}

static void k8s_succeeded(struct ep_k8s *k, enum k8s_op op)
{
	if (k->forbidden_logged[op])
		log_info("kubernetes: RBAC now allows \"%s\"", op_rbac[op]);
	k->forbidden_logged[op] = false;
	k->rejected_logged[op] = false;
	k->hold_until[op] = 0;
}

/* --------------------------------------------------------------- steps */

static json_t *node_condition(json_t *node, const char *type)
{
	json_t *conds = json_object_get(json_object_get(node, "status"), "conditions");
	size_t i;
	json_t *c;

	json_array_foreach(conds, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));

		if (t && !strcmp(t, type))
			return c;
	}
	return NULL;
}

/* Keeps a Node from an answer body as the current one (GET/PATCH). */
static bool take_node(struct ep_k8s *k, const struct k8s_resp *r)
{
	json_t *n = json_loadb(r->body ? r->body : "", r->len, 0, NULL);

	if (!json_is_object(n) || !json_is_object(json_object_get(n, "metadata"))) {
		json_decref(n);
		return false;
	}
	json_decref(k->node);
	k->node = n;
	return true;
}

static enum k8s_outcome get_node(struct ep_k8s *k, struct k8s_resp *r)
{
	char path[320];
	enum k8s_outcome o;

	snprintf(path, sizeof(path), "/api/v1/nodes/%s", k->s.node_name);
	o = k8s_call(k, "GET", path, NULL, NULL, r);
	if (o == K8S_OK && !take_node(k, r)) {
		snprintf(r->msg, sizeof(r->msg), "the answer is not a Node object");
		note_failure(k, "GET", path, r);
		o = K8S_UNAVAILABLE;
	}
	return o;
}

static const char *want_reason(const struct k8s_want *w)
{
	return w->reason[0] ? w->reason : w->unhealthy ? "DNSFailover" : "DNSHealthy";
}

static const char *want_message(const struct k8s_want *w)
{
	return w->message[0] ? w->message :
	       w->unhealthy ? "upstream DNS failed; the node's DNS is served from the local cache" :
			      "upstream DNS is healthy";
}

/* After a GET: decides whether the wanted state is a transition the cluster
 * has not been told about, and queues its Event. The first time, what the
 * cluster was told is read from our condition (it survives agent restarts);
 * no condition yet counts as healthy. */
static void note_transition(struct ep_k8s *k, const struct k8s_want *w)
{
	struct k8s_event *ev;
	struct timespec ts;

	if (!k->baseline) {
		json_t *c = node_condition(k->node, k->s.condition_type);
		const char *st = json_string_value(json_object_get(c, "status"));

		k->reported_unhealthy = st && !strcmp(st, "False");
		k->baseline = true;
	}
	if (w->unhealthy == k->reported_unhealthy)
		return;
	k->reported_unhealthy = w->unhealthy;

	pthread_mutex_lock(&k->lock);
	if (k->evq_n == EVQ_MAX) {
		log_warn("kubernetes: %zu Events not yet posted; dropping the oldest", k->evq_n);
		memmove(&k->evq[0], &k->evq[1], sizeof(k->evq[0]) * (EVQ_MAX - 1));
		k->evq_n--;
	}
	ev = &k->evq[k->evq_n++];
	memset(ev, 0, sizeof(*ev));
	ev->failover = w->unhealthy;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* NODE.<hex ns>, as the kubelet names its Events; <= 253 characters. */
	snprintf(ev->name, sizeof(ev->name), "%.*s.%" PRIx64, 236, k->s.node_name,
		 (uint64_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec));
	snprintf(ev->message, sizeof(ev->message), "%s", want_message(w));
	rfc3339(ev->when, sizeof(ev->when), ts.tv_sec);
	pthread_mutex_unlock(&k->lock);
}

static char *dump(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

/* The label: one key in a merge patch, no precondition (see the top). */
static enum k8s_outcome sync_label(struct ep_k8s *k, const struct k8s_want *w,
				   struct k8s_resp *r)
{
	json_t *labels = json_object_get(json_object_get(k->node, "metadata"), "labels");
	json_t *cur = json_object_get(labels, k->s.label_key);
	const char *v = json_string_value(cur);
	char path[320], *body;
	enum k8s_outcome o;

	if (w->unhealthy ? (v && !strcmp(v, "true")) : !cur)
		return K8S_OK; /* already so */
	body = dump(json_pack("{s:{s:{s:o}}}", "metadata", "labels", k->s.label_key,
			      w->unhealthy ? json_string("true") : json_null()));
	if (!body) {
		snprintf(r->msg, sizeof(r->msg), "out of memory");
		return K8S_UNAVAILABLE;
	}
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", k->s.node_name);
	o = k8s_call(k, "PATCH", path, "application/merge-patch+json", body, r);
	free(body);
	if (o == K8S_OK) {
		take_node(k, r); /* its resourceVersion is the one to use next */
		log_info("kubernetes: node %s: label %s %s", k->s.node_name, k->s.label_key,
			 w->unhealthy ? "set to \"true\"" : "removed");
	}
	return o;
}

/*
 * The conditions list to write: the Node's list with our entry replaced (or
 * added). *changed is false when our entry already says what we want.
 */
static json_t *build_conditions(struct ep_k8s *k, const struct k8s_want *w, bool *changed)
{
	json_t *conds = json_object_get(json_object_get(k->node, "status"), "conditions");
	const char *status = w->unhealthy ? "False" : "True";
	json_t *out = json_array(), *mine = NULL, *c;
	char now[32], transition[32];
	size_t i;

	*changed = false;
	if (!out)
		return NULL;
	rfc3339(now, sizeof(now), time(NULL));
	snprintf(transition, sizeof(transition), "%s", now);
	json_array_foreach(conds, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));

		if (!t || strcmp(t, k->s.condition_type)) {
			json_array_append(out, c); /* the kubelet's, untouched */
			continue;
		}
		if (mine) { /* a duplicate of ours: drop it */
			*changed = true;
			continue;
		}
		const char *st = json_string_value(json_object_get(c, "status"));
		const char *re = json_string_value(json_object_get(c, "reason"));
		const char *msg = json_string_value(json_object_get(c, "message"));
		const char *lt = json_string_value(json_object_get(c, "lastTransitionTime"));

		if (st && !strcmp(st, status) && re && !strcmp(re, want_reason(w)) && msg &&
		    !strcmp(msg, want_message(w))) {
			mine = c;
			json_array_append(out, c);
			continue;
		}
		/* Same status, new words: the transition time stays. */
		if (st && !strcmp(st, status) && lt)
			snprintf(transition, sizeof(transition), "%s", lt);
		mine = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", k->s.condition_type,
				 "status", status, "reason", want_reason(w), "message",
				 want_message(w), "lastHeartbeatTime", now, "lastTransitionTime",
				 transition);
		if (!mine || json_array_append_new(out, mine)) {
			json_decref(out);
			return NULL;
		}
		*changed = true;
	}
	if (!mine) {
		mine = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", k->s.condition_type,
				 "status", status, "reason", want_reason(w), "message",
				 want_message(w), "lastHeartbeatTime", now, "lastTransitionTime",
				 now);
		if (!mine || json_array_append_new(out, mine)) {
			json_decref(out);
			return NULL;
		}
		*changed = true;
	}
	return out;
}

/* The condition: full list + resourceVersion precondition; on 409 re-GET
 * and rebuild (bounded). *fop says which step failed. */
static enum k8s_outcome sync_condition(struct ep_k8s *k, const struct k8s_want *w,
				       struct k8s_resp *r, enum k8s_op *fop)
{
	char path[320];

	snprintf(path, sizeof(path), "/api/v1/nodes/%s/status", k->s.node_name);
	for (int attempt = 0;; attempt++) {
		const char *rv = json_string_value(
			json_object_get(json_object_get(k->node, "metadata"), "resourceVersion"));
		enum k8s_outcome o;
		bool changed;
		json_t *conds = build_conditions(k, w, &changed);
		char *body;

		*fop = OP_PATCH_STATUS;
		if (!conds) {
			snprintf(r->msg, sizeof(r->msg), "out of memory");
			return K8S_UNAVAILABLE;
		}
		if (!changed) {
			json_decref(conds);
			return K8S_OK;
		}
		body = dump(json_pack("{s:{s:s*}, s:{s:o}}", "metadata", "resourceVersion", rv,
				      "status", "conditions", conds));
		if (!body) {
			snprintf(r->msg, sizeof(r->msg), "out of memory");
			return K8S_UNAVAILABLE;
		}
		o = k8s_call(k, "PATCH", path, "application/merge-patch+json", body, r);
		free(body);
		if (o == K8S_OK) {
			take_node(k, r);
			log_info("kubernetes: node %s: condition %s=%s (%s)", k->s.node_name,
				 k->s.condition_type, w->unhealthy ? "False" : "True",
				 want_reason(w));
			return K8S_OK;
		}
		if (o != K8S_CONFLICT || attempt == CONFLICT_RETRIES)
			return o;
		/* Someone (the kubelet) wrote the Node since our GET: re-read. */
		log_debug("kubernetes: node %s changed under us (409); re-reading it",
			  k->s.node_name);
		resp_free(r);
		*fop = OP_GET_NODE;
		o = get_node(k, r);
		if (o != K8S_OK)
			return o;
	}
}

static enum k8s_outcome post_event(struct ep_k8s *k, const struct k8s_event *ev,
				   struct k8s_resp *r)
{
	const char *uid = json_string_value(
		json_object_get(json_object_get(k->node, "metadata"), "uid"));
	char path[160], *body;
	enum k8s_outcome o;

	body = dump(json_pack(
		"{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s?}, s:s, s:s, s:s,"
		" s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:s%}",
		"apiVersion", "v1", "kind", "Event",
		"metadata", "name", ev->name, "namespace", k->s.event_namespace,
		"involvedObject", "apiVersion", "v1", "kind", "Node", "name", k->s.node_name,
		"uid", uid,
		"reason", ev->failover ? "DNSFailover" : "DNSFailback",
		"message", ev->message,
		"type", ev->failover ? "Warning" : "Normal",
		"source", "component", COMPONENT, "host", k->s.node_name,
		"firstTimestamp", ev->when, "lastTimestamp", ev->when, "count", 1,
		"reportingComponent", COMPONENT,
		/* reportingInstance is at most 128 characters */
		"reportingInstance", k->s.node_name, strnlen(k->s.node_name, 128)));
	if (!body) {
		snprintf(r->msg, sizeof(r->msg), "out of memory");
		return K8S_UNAVAILABLE;
	}
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", k->s.event_namespace);
	o = k8s_call(k, "POST", path, "application/json", body, r);
	free(body);
	if (o == K8S_OK)
		log_info("kubernetes: Event %s/%s posted (%s)", k->s.event_namespace, ev->name,
			 ev->failover ? "DNSFailover" : "DNSFailback");
	return o;
}

/* ------------------------------------------------------------- worker */

/*
 * One reconcile pass over the latest wanted state: GET the Node, label,
 * condition, then queued Events. Returns after the first server-wide
 * failure; a step-only failure (403, rejection) lets the others go on.
 */
static void k8s_pass(struct ep_k8s *k)
{
	struct k8s_resp r = { 0 };
	struct k8s_want w;
	enum k8s_outcome o;
	enum k8s_op fop;
	uint64_t gen, now = now_ms();
	bool do_label, do_cond, failed = false;

	pthread_mutex_lock(&k->lock);
	w = k->want;
	gen = k->want_gen;
	do_label = gen && k->label_gen != gen && k->hold_until[OP_PATCH_NODE] <= now;
	do_cond = gen && k->cond_gen != gen && k->hold_until[OP_PATCH_STATUS] <= now;
	pthread_mutex_unlock(&k->lock);

	if ((do_label || do_cond) && k->hold_until[OP_GET_NODE] <= now) {
		o = get_node(k, &r);
		if (o != K8S_OK) {
			failed = true;
			if (k8s_failed(k, OP_GET_NODE, o, &r))
				goto out;
			do_label = do_cond = false;
		} else {
			k8s_succeeded(k, OP_GET_NODE);
			note_transition(k, &w);
		}
		resp_free(&r);
	} else {
		do_label = do_cond = false;
	}

	if (do_label) {
		o = sync_label(k, &w, &r);
		if (o == K8S_OK) {
			k8s_succeeded(k, OP_PATCH_NODE);
			pthread_mutex_lock(&k->lock);
			k->label_gen = gen;
			pthread_mutex_unlock(&k->lock);
		} else {
			failed = true;
			if (k8s_failed(k, OP_PATCH_NODE, o, &r))
				goto out;
		}
		resp_free(&r);
	}
	if (do_cond) {
		o = sync_condition(k, &w, &r, &fop);
		if (o == K8S_OK) {
			k8s_succeeded(k, OP_PATCH_STATUS);
			pthread_mutex_lock(&k->lock);
			k->cond_gen = gen;
			pthread_mutex_unlock(&k->lock);
		} else {
			failed = true;
			if (k8s_failed(k, fop, o, &r))
				goto out;
		}
		resp_free(&r);
	}

	/* Events need the Node's uid: k->node is set, since only a GET
	 * (note_transition) queues them. */
	while (k->node && k->hold_until[OP_CREATE_EVENT] <= now_ms()) {
		struct k8s_event ev;

		pthread_mutex_lock(&k->lock);
		if (!k->evq_n) {
			pthread_mutex_unlock(&k->lock);
			break;
		}
		ev = k->evq[0];
		pthread_mutex_unlock(&k->lock);

		o = post_event(k, &ev, &r);
		if (o != K8S_OK) {
			failed = true;
			k8s_failed(k, OP_CREATE_EVENT, o, &r);
			break;
		}
		k8s_succeeded(k, OP_CREATE_EVENT);
		pthread_mutex_lock(&k->lock);
		memmove(&k->evq[0], &k->evq[1], sizeof(k->evq[0]) * (k->evq_n - 1));
		k->evq_n--;
		k->events_posted++;
		pthread_mutex_unlock(&k->lock);
		resp_free(&r);
	}

out:
	resp_free(&r);
	if (!failed) {
		/* A whole pass went through: the server is fine again. */
		k->backoff_ms = BACKOFF_MIN_MS;
		k->retrying = false;
		pthread_mutex_lock(&k->lock);
		if (k->label_gen == k->want_gen && k->cond_gen == k->want_gen && !k->evq_n)
			k->last_error[0] = '\0';
		pthread_mutex_unlock(&k->lock);
	}
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Under lock. When the next pass is due (monotonic ms), 0 = nothing to do. */
static uint64_t k8s_due(const struct ep_k8s *k)
{
	uint64_t due = UINT64_MAX;

	if (k->want_gen && k->label_gen != k->want_gen)
		due = max64(k->hold_until[OP_GET_NODE], k->hold_until[OP_PATCH_NODE]);
	if (k->want_gen && k->cond_gen != k->want_gen) {
		uint64_t d = max64(k->hold_until[OP_GET_NODE], k->hold_until[OP_PATCH_STATUS]);

		due = d < due ? d : due;
	}
	if (k->evq_n && k->hold_until[OP_CREATE_EVENT] < due)
		due = k->hold_until[OP_CREATE_EVENT];
	if (due == UINT64_MAX)
		return 0;
	return max64(max64(due, k->global_until), 1);
}

static void wait_until(struct ep_k8s *k, uint64_t when_ms)
{
	struct timespec ts = {
		.tv_sec = (time_t)(when_ms / 1000),
		.tv_nsec = (long)(when_ms % 1000) * 1000000L,
	};

	pthread_cond_timedwait(&k->cond, &k->lock, &ts);
}

static void *k8s_worker(void *arg)
{
	struct ep_k8s *k = arg;

	pthread_mutex_lock(&k->lock);
	while (!atomic_load(&k->stopping)) {
		uint64_t due = k8s_due(k);

		if (!due) {
			pthread_cond_wait(&k->cond, &k->lock);
			continue;
		}
		if (due > now_ms()) {
			/* Woken early by a new state or stop: recomputed above. */
			wait_until(k, due);
			continue;
		}
		pthread_mutex_unlock(&k->lock);
		k8s_pass(k);
		pthread_mutex_lock(&k->lock);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

/* ------------------------------------------------------------- public */

static void k8s_free(struct ep_k8s *k)
{
	json_decref(k->node);
	if (k->easy)
		curl_easy_cleanup(k->easy);
	if (k->multi)
		curl_multi_cleanup(k->multi);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	/* libcurl counts init/cleanup pairs; this undoes ours only. */
	curl_global_cleanup();
	free(k);
}

struct ep_k8s *ep_k8s_start(const struct ep_k8s_settings *s)
{
	struct ep_k8s *k = calloc(1, sizeof(*k));
	pthread_condattr_t ca;
	CURLcode rc;
	int err;

	if (!k) {
		log_error("kubernetes: out of memory");
		return NULL;
	}
	k->s = *s;
	if (!k->s.timeout_ms)
		k->s.timeout_ms = EP_K8S_DEFAULT_TIMEOUT_MS;
	if (!k->s.forbidden_retry_ms)
		k->s.forbidden_retry_ms = EP_K8S_DEFAULT_FORBIDDEN_RETRY_MS;
	if (k->s.backoff_max_ms < BACKOFF_MIN_MS)
		k->s.backoff_max_ms = EP_K8S_DEFAULT_BACKOFF_MAX_MS;
	if (!k->s.condition_type[0])
		snprintf(k->s.condition_type, sizeof(k->s.condition_type), "%s",
			 EP_K8S_CONDITION_TYPE);
	if (!k->s.label_key[0])
		snprintf(k->s.label_key, sizeof(k->s.label_key), "%s", EP_K8S_DEFAULT_LABEL);
	if (!k->s.event_namespace[0])
		snprintf(k->s.event_namespace, sizeof(k->s.event_namespace), "%s",
			 EP_K8S_DEFAULT_EVENT_NS);
	k->backoff_ms = BACKOFF_MIN_MS;
	k->rng = ep_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)k;
	if (!k->rng)
		k->rng = 1;
	atomic_init(&k->stopping, false);

	pthread_mutex_init(&k->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->cond, &ca);
	pthread_condattr_destroy(&ca);

	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK) {
		log_error("kubernetes: curl_global_init: %s", curl_easy_strerror(rc));
		pthread_cond_destroy(&k->cond);
		pthread_mutex_destroy(&k->lock);
		free(k);
		return NULL;
	}
	k->multi = curl_multi_init();
	k->easy = curl_easy_init();
	if (!k->multi || !k->easy) {
		log_error("kubernetes: cannot create a libcurl handle");
		k8s_free(k);
		return NULL;
	}
	err = pthread_create(&k->thread, NULL, k8s_worker, k);
	if (err) {
		log_error("kubernetes: cannot start the client thread: %s", strerror(err));
		k8s_free(k);
		return NULL;
	}
	log_info("kubernetes: reporting DNS state of node %s to %s (label %s, condition %s, "
		 "Events in %s)", k->s.node_name, k->s.api_server, k->s.label_key,
		 k->s.condition_type, k->s.event_namespace);
	return k;
}

void ep_k8s_set_dns_state(struct ep_k8s *k, bool unhealthy, const char *reason,
			  const char *message)
{
	struct k8s_want w = { .unhealthy = unhealthy };

	if (!k)
		return;
	copy_text(w.reason, sizeof(w.reason), reason, "");
	copy_text(w.message, sizeof(w.message), message, "");
	pthread_mutex_lock(&k->lock);
	/* The same state again changes nothing: no new round of requests. */
	if (!k->want_gen || memcmp(&w, &k->want, sizeof(w))) {
		k->want = w;
		k->want_gen++;
		pthread_cond_signal(&k->cond);
	}
	pthread_mutex_unlock(&k->lock);
}

void ep_k8s_get_status(struct ep_k8s *k, struct ep_k8s_status *st)
{
	memset(st, 0, sizeof(*st));
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	st->desired_set = k->want_gen != 0;
	st->desired_unhealthy = k->want.unhealthy;
	st->in_sync = k->label_gen == k->want_gen && k->cond_gen == k->want_gen && !k->evq_n;
	st->requests = k->requests;
	st->failures = k->failures;
	st->retries = k->retries;
	st->events_posted = k->events_posted;
	snprintf(st->last_error, sizeof(st->last_error), "%s", k->last_error);
	st->last_success_at = k->last_success_at;
	pthread_mutex_unlock(&k->lock);
}

void ep_k8s_stop(struct ep_k8s *k)
{
	bool in_sync;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	atomic_store(&k->stopping, true);
	pthread_cond_broadcast(&k->cond);
	in_sync = k->label_gen == k->want_gen && k->cond_gen == k->want_gen && !k->evq_n;
	pthread_mutex_unlock(&k->lock);
	/* Interrupts curl_multi_poll in the worker: no waiting out a timeout. */
	curl_multi_wakeup(k->multi);
	pthread_join(k->thread, NULL);
	if (!in_sync)
		log_warn("kubernetes: stopping before node %s reflects the DNS state",
			 k->s.node_name);
	k8s_free(k);
}
