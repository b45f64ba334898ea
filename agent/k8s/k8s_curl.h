/*
 * The Kubernetes client's transport for callers that drive a libcurl handle
 * of their own (certificate sync: a Secret watch that streams, a CSR worker
 * that must stop mid-request). What every request to the API server needs
 * - the service account's token re-read from its file, the headers, TLS
 * verified against the cluster CA, https only - is set here once; the
 * caller adds what is its own (method, body, timeouts) and performs it.
 */
#ifndef EP_K8S_CURL_H
#define EP_K8S_CURL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "k8s.h"

struct ep_k8s_curl_req {
	const char *url;
	const char *user_agent;
	bool json_body;			 /* sends "Content-Type: application/json" */
	curl_write_callback on_body;
	curl_xferinfo_callback on_progress; /* non-zero aborts: the caller's stop */
	void *ud;			 /* for both callbacks */
	char *errbuf;			 /* CURL_ERROR_SIZE bytes */
};

/*
 * Resets curl and prepares it for r as the service account of k, with the
 * connect timeout k->timeout_ms. Returns the header list (pass it to
 * ep_k8s_curl_perform), or NULL with err when there is no token.
 */
struct curl_slist *ep_k8s_curl_prepare(CURL *curl, const struct ep_k8s_settings *k,
				       const struct ep_k8s_curl_req *r, char *err, size_t errlen);
/* Runs the prepared request and frees hdrs. *code: the HTTP status, 0 when
 * none came. */
CURLcode ep_k8s_curl_perform(CURL *curl, struct curl_slist *hdrs, long *code);

#endif
