/*
 * Kubernetes client, reporting half: makes the cluster show the node's DNS
 * failover state (label, Node condition, Events). See k8s.h for the
 * contract; requests, their outcomes and retry pacing are k8s_client.c.
 *
 * Design:
 *  - One worker thread owns all network I/O. Callers set the wanted state
 *    under a mutex and signal a condition variable; they never wait for the
 *    API server. Every wanted state gets a generation number; the worker
 *    records which generation the label and the condition last matched, so
 *    states set while it was busy are coalesced into the latest.
 *  - ep_k8s_stop interrupts a request in flight (lib/http) instead of
 *    waiting out its timeout.
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
 *  - A failed step stops the pass when the failure is server-wide; a 403 or
 *    rejection holds back only that step (k8s_failed).
 */
#include "k8s.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "k8s_client.h"
#include "log.h"

#define CONFLICT_RETRIES 5     /* immediate re-GET + retry after a 409 */
#define EVQ_MAX 16
#define REASON_MAX 128
#define MESSAGE_MAX 1024

struct k8s_want {
	bool unhealthy;
	char reason[REASON_MAX];
	char message[MESSAGE_MAX];
};

struct k8s_event {
	bool failover;
	char reason[REASON_MAX]; /* "" = DNSFailover / DNSFailback by failover */
	char type[16];		 /* with reason: Normal or Warning */
	char name[256];
	char message[MESSAGE_MAX];
	char when[32];
};

struct ep_k8s {
	struct ep_k8s_settings s;
	struct k8s_client c;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stopping;

	/* Under lock: the wanted state and how far the cluster matches it. */
	struct k8s_want want;
	uint64_t want_gen; /* 0: nothing wanted yet */
	uint64_t label_gen, cond_gen;
	struct k8s_event evq[EVQ_MAX];
	size_t evq_n;
	uint64_t events_posted;

	/* Worker thread only. */
	json_t *node;		 /* the Node as last seen (GET or PATCH answer) */
	bool baseline;		 /* reported_unhealthy is known */
	bool reported_unhealthy; /* the state the cluster was last told */
};

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
static bool take_node(struct ep_k8s *k, const struct ep_http_resp *r)
{
	json_t *n = ep_http_resp_json(r);

	if (!json_is_object(n) || !json_is_object(json_object_get(n, "metadata"))) {
		json_decref(n);
		return false;
	}
	json_decref(k->node);
	k->node = n;
	return true;
}

static enum k8s_outcome get_node(struct ep_k8s *k, struct ep_http_resp *r)
{
	char path[320];
	enum k8s_outcome o;

	snprintf(path, sizeof(path), "/api/v1/nodes/%s", k->s.node_name);
	o = k8s_call(&k->c, "GET", path, NULL, NULL, r);
	if (o == K8S_OK && !take_node(k, r)) {
		snprintf(r->msg, sizeof(r->msg), "the answer is not a Node object");
		k8s_note_failure(&k->c, "GET", path, r);
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

/* The label: one key in a merge patch, no precondition (see the top). */
static enum k8s_outcome sync_label(struct ep_k8s *k, const struct k8s_want *w,
				   struct ep_http_resp *r)
{
	json_t *labels = json_object_get(json_object_get(k->node, "metadata"), "labels");
	json_t *cur = json_object_get(labels, k->s.label_key);
	const char *v = json_string_value(cur);
	char path[320];
	enum k8s_outcome o;

	if (w->unhealthy ? (v && !strcmp(v, "true")) : !cur)
		return K8S_OK; /* already so */
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", k->s.node_name);
	o = k8s_call_json(&k->c, "PATCH", path, "application/merge-patch+json",
			  json_pack("{s:{s:{s:o}}}", "metadata", "labels", k->s.label_key,
				    w->unhealthy ? json_string("true") : json_null()),
			  r);
	if (o == K8S_OK) {
		take_node(k, r); /* its resourceVersion is the one to use next */
		log_info("kubernetes: node %s: label %s %s", k->s.node_name, k->s.label_key,
			 w->unhealthy ? "set to \"true\"" : "removed");
	}
	return o;
}

/* Appends our condition, as wanted, to list. 0 or -1 (out of memory). */
static int append_condition(struct ep_k8s *k, const struct k8s_want *w, json_t *list,
			    const char *now, const char *transition)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", k->s.condition_type,
			      "status", w->unhealthy ? "False" : "True", "reason", want_reason(w),
			      "message", want_message(w), "lastHeartbeatTime", now,
			      "lastTransitionTime", transition);

	return c && !json_array_append_new(list, c) ? 0 : -1;
}

/*
 * The conditions list to write: the Node's list with our entry replaced (or
 * added). *changed is false when our entry already says what we want.
 */
static json_t *build_conditions(struct ep_k8s *k, const struct k8s_want *w, bool *changed)
{
	json_t *conds = json_object_get(json_object_get(k->node, "status"), "conditions");
	const char *status = w->unhealthy ? "False" : "True";
	json_t *out = json_array(), *c;
	bool mine = false; /* our entry is in out */
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

		mine = true;
		if (st && !strcmp(st, status) && re && !strcmp(re, want_reason(w)) && msg &&
		    !strcmp(msg, want_message(w))) {
			json_array_append(out, c);
			continue;
		}
		/* Same status, new words: the transition time stays. */
		if (st && !strcmp(st, status) && lt)
			snprintf(transition, sizeof(transition), "%s", lt);
		if (append_condition(k, w, out, now, transition)) {
			json_decref(out);
			return NULL;
		}
		*changed = true;
	}
	if (!mine) {
		if (append_condition(k, w, out, now, now)) {
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
				       struct ep_http_resp *r, enum k8s_op *fop)
{
	char path[320];

	snprintf(path, sizeof(path), "/api/v1/nodes/%s/status", k->s.node_name);
	for (int attempt = 0;; attempt++) {
		const char *rv = json_string_value(
			json_object_get(json_object_get(k->node, "metadata"), "resourceVersion"));
		enum k8s_outcome o;
		bool changed;
		json_t *conds = build_conditions(k, w, &changed);

		*fop = OP_PATCH_STATUS;
		if (!conds) {
			snprintf(r->msg, sizeof(r->msg), "out of memory");
			return K8S_UNAVAILABLE;
		}
		if (!changed) {
			json_decref(conds);
			return K8S_OK;
		}
		o = k8s_call_json(&k->c, "PATCH", path, "application/merge-patch+json",
				  json_pack("{s:{s:s*}, s:{s:o}}", "metadata", "resourceVersion",
					    rv, "status", "conditions", conds),
				  r);
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
		ep_http_resp_free(r);
		*fop = OP_GET_NODE;
		o = get_node(k, r);
		if (o != K8S_OK)
			return o;
	}
}

static const char *ev_reason(const struct k8s_event *ev)
{
	return ev->reason[0] ? ev->reason : ev->failover ? "DNSFailover" : "DNSFailback";
}

static enum k8s_outcome post_event(struct ep_k8s *k, const struct k8s_event *ev,
				   struct ep_http_resp *r)
{
	const char *uid = json_string_value(
		json_object_get(json_object_get(k->node, "metadata"), "uid"));
	char path[160];
	enum k8s_outcome o;
	json_t *event;

	event = json_pack(
		"{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s?}, s:s, s:s, s:s,"
		" s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:s%}",
		"apiVersion", "v1", "kind", "Event",
		"metadata", "name", ev->name, "namespace", k->s.event_namespace,
		"involvedObject", "apiVersion", "v1", "kind", "Node", "name", k->s.node_name,
		"uid", uid,
		"reason", ev_reason(ev),
		"message", ev->message,
		"type", ev->reason[0] ? ev->type : ev->failover ? "Warning" : "Normal",
		"source", "component", K8S_COMPONENT, "host", k->s.node_name,
		"firstTimestamp", ev->when, "lastTimestamp", ev->when, "count", 1,
		"reportingComponent", K8S_COMPONENT,
		/* reportingInstance is at most 128 characters */
		"reportingInstance", k->s.node_name, strnlen(k->s.node_name, 128));
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", k->s.event_namespace);
	o = k8s_call_json(&k->c, "POST", path, "application/json", event, r);
	if (o == K8S_OK)
		log_info("kubernetes: Event %s/%s posted (%s)", k->s.event_namespace, ev->name,
			 ev_reason(ev));
	return o;
}

/* ------------------------------------------------------------- worker */

/*
 * Books the outcome of the label or the condition step: on success the
 * cluster matches generation gen for it. Returns true when the pass must
 * stop (a server-wide failure).
 */
static bool step_done(struct ep_k8s *k, enum k8s_op op, enum k8s_outcome o,
		      const struct ep_http_resp *r, uint64_t *synced_gen, uint64_t gen,
		      bool *failed)
{
	if (o == K8S_OK) {
		k8s_succeeded(&k->c, op);
		pthread_mutex_lock(&k->lock);
		*synced_gen = gen;
		pthread_mutex_unlock(&k->lock);
		return false;
	}
	*failed = true;
	return k8s_failed(&k->c, op, o, r);
}

/*
 * One reconcile pass over the latest wanted state: GET the Node, label,
 * condition, then queued Events. Returns after the first server-wide
 * failure; a step-only failure (403, rejection) lets the others go on.
 */
static void k8s_pass(struct ep_k8s *k)
{
	struct ep_http_resp r = { 0 };
	struct k8s_want w;
	enum k8s_outcome o;
	enum k8s_op fop;
	uint64_t gen, now = k8s_now_ms();
	bool do_label, do_cond, failed = false;

	pthread_mutex_lock(&k->lock);
	w = k->want;
	gen = k->want_gen;
	do_label = gen && k->label_gen != gen && k->c.hold_until[OP_PATCH_NODE] <= now;
	do_cond = gen && k->cond_gen != gen && k->c.hold_until[OP_PATCH_STATUS] <= now;
	pthread_mutex_unlock(&k->lock);

	if ((do_label || do_cond) && k->c.hold_until[OP_GET_NODE] <= now) {
		o = get_node(k, &r);
		if (o != K8S_OK) {
			failed = true;
			if (k8s_failed(&k->c, OP_GET_NODE, o, &r))
				goto out;
			do_label = do_cond = false;
		} else {
			k8s_succeeded(&k->c, OP_GET_NODE);
			note_transition(k, &w);
		}
		ep_http_resp_free(&r);
	} else {
		do_label = do_cond = false;
	}

	if (do_label) {
		o = sync_label(k, &w, &r);
		if (step_done(k, OP_PATCH_NODE, o, &r, &k->label_gen, gen, &failed))
			goto out;
		ep_http_resp_free(&r);
	}
	if (do_cond) {
		o = sync_condition(k, &w, &r, &fop);
		/* fop is OP_PATCH_STATUS unless the re-GET after a 409 failed. */
		if (step_done(k, fop, o, &r, &k->cond_gen, gen, &failed))
			goto out;
		ep_http_resp_free(&r);
	}

	/* Events need the Node's uid. DNS transitions come after a GET;
	 * other Events (ep_k8s_post_event) may be the first thing sent. */
	pthread_mutex_lock(&k->lock);
	bool events_waiting = k->evq_n > 0;
	pthread_mutex_unlock(&k->lock);
	if (!k->node && events_waiting && k->c.hold_until[OP_GET_NODE] <= k8s_now_ms()) {
		o = get_node(k, &r);
		if (o != K8S_OK) {
			failed = true;
			k8s_failed(&k->c, OP_GET_NODE, o, &r);
			goto out;
		}
		k8s_succeeded(&k->c, OP_GET_NODE);
		ep_http_resp_free(&r);
	}
	while (k->node && k->c.hold_until[OP_CREATE_EVENT] <= k8s_now_ms()) {
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
			k8s_failed(&k->c, OP_CREATE_EVENT, o, &r);
			break;
		}
		k8s_succeeded(&k->c, OP_CREATE_EVENT);
		pthread_mutex_lock(&k->lock);
		memmove(&k->evq[0], &k->evq[1], sizeof(k->evq[0]) * (k->evq_n - 1));
		k->evq_n--;
		k->events_posted++;
		pthread_mutex_unlock(&k->lock);
		ep_http_resp_free(&r);
	}

out:
	ep_http_resp_free(&r);
	if (!failed) {
		bool in_sync;

		/* A whole pass went through: the server is fine again. */
		pthread_mutex_lock(&k->lock);
		in_sync = k->label_gen == k->want_gen && k->cond_gen == k->want_gen && !k->evq_n;
		pthread_mutex_unlock(&k->lock);
		k8s_pass_ok(&k->c, in_sync);
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
		due = max64(k->c.hold_until[OP_GET_NODE], k->c.hold_until[OP_PATCH_NODE]);
	if (k->want_gen && k->cond_gen != k->want_gen) {
		uint64_t d = max64(k->c.hold_until[OP_GET_NODE], k->c.hold_until[OP_PATCH_STATUS]);

		due = d < due ? d : due;
	}
	if (k->evq_n) {
		/* Without the Node (its uid) an Event waits for the GET too. */
		uint64_t d = k->node ? k->c.hold_until[OP_CREATE_EVENT]
				     : max64(k->c.hold_until[OP_CREATE_EVENT],
					     k->c.hold_until[OP_GET_NODE]);

		due = d < due ? d : due;
	}
	if (due == UINT64_MAX)
		return 0;
	return max64(max64(due, k->c.global_until), 1);
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
		if (due > k8s_now_ms()) {
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
	k8s_client_fini(&k->c);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

struct ep_k8s *ep_k8s_start(const struct ep_k8s_settings *s)
{
	struct ep_k8s *k = calloc(1, sizeof(*k));
	pthread_condattr_t ca;
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
	if (k->s.backoff_max_ms < K8S_BACKOFF_MIN_MS)
		k->s.backoff_max_ms = EP_K8S_DEFAULT_BACKOFF_MAX_MS;
	if (!k->s.condition_type[0])
		snprintf(k->s.condition_type, sizeof(k->s.condition_type), "%s",
			 EP_K8S_CONDITION_TYPE);
	if (!k->s.label_key[0])
		snprintf(k->s.label_key, sizeof(k->s.label_key), "%s", EP_K8S_DEFAULT_LABEL);
	if (!k->s.event_namespace[0])
		snprintf(k->s.event_namespace, sizeof(k->s.event_namespace), "%s",
			 EP_K8S_DEFAULT_EVENT_NS);
	atomic_init(&k->stopping, false);

	pthread_mutex_init(&k->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->cond, &ca);
	pthread_condattr_destroy(&ca);

	if (k8s_client_init(&k->c, &k->s)) {
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

void ep_k8s_post_event(struct ep_k8s *k, const char *type, const char *reason,
		       const char *message)
{
	struct k8s_event *ev;
	struct timespec ts;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	if (k->evq_n == EVQ_MAX) {
		log_warn("kubernetes: %zu Events not yet posted; dropping the oldest", k->evq_n);
		memmove(&k->evq[0], &k->evq[1], sizeof(k->evq[0]) * (EVQ_MAX - 1));
		k->evq_n--;
	}
	ev = &k->evq[k->evq_n++];
	memset(ev, 0, sizeof(*ev));
	copy_text(ev->reason, sizeof(ev->reason), reason, "Edgeplane");
	copy_text(ev->type, sizeof(ev->type), type, "Normal");
	copy_text(ev->message, sizeof(ev->message), message, "");
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(ev->name, sizeof(ev->name), "%.*s.%" PRIx64, 236, k->s.node_name,
		 (uint64_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec));
	rfc3339(ev->when, sizeof(ev->when), ts.tv_sec);
	pthread_cond_signal(&k->cond);
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
	st->events_posted = k->events_posted;
	pthread_mutex_unlock(&k->lock);

	pthread_mutex_lock(&k->c.lock);
	st->requests = k->c.requests;
	st->failures = k->c.failures;
	st->retries = k->c.retries;
	snprintf(st->last_error, sizeof(st->last_error), "%s", k->c.last_error);
	st->last_success_at = k->c.last_success_at;
	pthread_mutex_unlock(&k->c.lock);
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
	/* Interrupts the request in flight: no waiting out a timeout. */
	k8s_client_interrupt(&k->c);
	pthread_join(k->thread, NULL);
	if (!in_sync)
		log_warn("kubernetes: stopping before node %s reflects the DNS state",
			 k->s.node_name);
	k8s_free(k);
}
