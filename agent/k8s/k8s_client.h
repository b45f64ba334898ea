/*
 * Inside agent/k8s: the transport half of the Kubernetes client. It knows
 * how to reach the API server (ep_k8s_resolve, in k8s.h), how to send one
 * request with the service account's token, what each answer means, and
 * how long to wait before the next try. It knows nothing of nodes, labels
 * or Events: that is k8s_node.c, the reporting half, which owns the worker
 * thread and is the only caller.
 */
#ifndef EP_K8S_CLIENT_H
#define EP_K8S_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "k8s.h"

#define K8S_COMPONENT "edgeplane-agent"
#define K8S_BACKOFF_MIN_MS 200

/* The API calls the agent makes; each can be held back on its own. */
enum k8s_op { OP_GET_NODE, OP_PATCH_NODE, OP_PATCH_STATUS, OP_CREATE_EVENT, N_OPS };

enum k8s_outcome {
	K8S_OK,
	K8S_CONFLICT,	   /* 409 Conflict: stale resourceVersion */
	K8S_THROTTLED,	   /* 429 */
	K8S_UNAVAILABLE,   /* transport error, timeout, 5xx, 404, bad response */
	K8S_UNAUTHORIZED,  /* 401 */
	K8S_FORBIDDEN,	   /* 403 */
	K8S_REJECTED,	   /* other 4xx: the request itself is wrong */
	K8S_STOPPED,	   /* k8s_client_interrupt cut it short */
};

struct k8s_client {
	const struct ep_k8s_settings *s;
	struct ep_http *http;

	/* Under lock: read by ep_k8s_get_status from any thread. */
	pthread_mutex_t lock;
	uint64_t requests, failures, retries;
	char last_error[256];
	double last_success_at;

	/* The worker thread's only. */
	uint64_t global_until;	/* monotonic ms: no request before this */
	uint64_t hold_until[N_OPS];
	struct ep_backoff backoff;
	bool retrying;
	bool forbidden_logged[N_OPS];
	bool rejected_logged[N_OPS];
};

/* s must outlive c. 0 or -1 (logged). */
int k8s_client_init(struct k8s_client *c, const struct ep_k8s_settings *s);
void k8s_client_fini(struct k8s_client *c);
/* Any thread: aborts the request in flight (and all later ones). */
void k8s_client_interrupt(struct k8s_client *c);

/*
 * One request to path on the API server. body/ctype may be NULL. The
 * response is in r (free with ep_http_resp_free). Counts it and records a
 * failure in last_error; a 409 AlreadyExists counts as success (our own
 * earlier create whose answer was lost).
 */
enum k8s_outcome k8s_call(struct k8s_client *c, const char *method, const char *path,
			  const char *ctype, const char *body, struct ep_http_resp *r);
/* The same with a JSON body: serialises o and drops the reference to it
 * (json_pack(...) goes straight in; NULL from it is out of memory). */
enum k8s_outcome k8s_call_json(struct k8s_client *c, const char *method, const char *path,
			       const char *ctype, json_t *o, struct ep_http_resp *r);
/* Records a failure found in an answer that came back 2xx. */
void k8s_note_failure(struct k8s_client *c, const char *method, const char *path,
		      const struct ep_http_resp *r);

/*
 * Schedules the retry of a failed step. Returns true when the failure is
 * server-wide (every request waits), false when only this step waits.
 */
bool k8s_failed(struct k8s_client *c, enum k8s_op op, enum k8s_outcome o,
		const struct ep_http_resp *r);
void k8s_succeeded(struct k8s_client *c, enum k8s_op op);
/* A whole pass went through: the server is fine again. Clears last_error
 * too when the cluster is in sync. */
void k8s_pass_ok(struct k8s_client *c, bool in_sync);

uint64_t k8s_now_ms(void);

#endif
