/*
 * A small HTTPS client for talking to control planes (the Kubernetes API
 * server today, certificate sources next): libcurl underneath, TLS verified
 * against a CA file, an optional bearer token re-read from a file on every
 * request (projected service account tokens rotate), per-request timeouts,
 * bodies capped in size, JSON in and out, and the pacing of retries.
 *
 * One struct ep_http is one connection-reusing handle for one thread: a
 * request blocks that thread until it completes, times out, or another
 * thread calls ep_http_interrupt(). What a status code means is the
 * caller's business; this layer only says whether an answer came.
 */
#ifndef EP_LIB_HTTP_H
#define EP_LIB_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ep_http_opts {
	const char *ca_file;	/* verifies the server; NULL: the system store */
	const char *token_file; /* "Authorization: Bearer <token>"; NULL: none */
	const char *user_agent;
	const char *protocols;	/* libcurl CURLOPT_PROTOCOLS_STR; NULL: "https" */
	unsigned timeout_ms;	/* per request, connect and transfer each */
	size_t body_max;	/* larger answers fail; 0: 16 MiB */
};

struct ep_http_resp {
	long code;	    /* HTTP status, 0 when no answer came */
	char *body;	    /* NUL-terminated, NULL when empty */
	size_t len, cap;
	bool too_big;
	long retry_after_s; /* Retry-After in seconds, -1: none */
	char msg[300];	    /* what went wrong, for logs and status */
};

enum ep_http_result {
	EP_HTTP_ANSWERED,  /* a response came: see code (any status) */
	EP_HTTP_NOT_SENT,  /* nothing went out (token unreadable, out of memory) */
	EP_HTTP_FAILED,	   /* sent, no answer: transport error, timeout, body too big */
	EP_HTTP_STOPPED,   /* ep_http_interrupt() cut it short */
};

struct ep_http;

/* Copies what it needs from o. NULL on failure (err says why). */
struct ep_http *ep_http_new(const struct ep_http_opts *o, char *err, size_t errlen);
void ep_http_free(struct ep_http *h);

/* Any thread: aborts the request in flight and every later one. */
void ep_http_interrupt(struct ep_http *h);

/*
 * One request to url. ctype/body may be NULL; methods other than GET and
 * POST are sent as they are. r is reset first (it may hold an earlier
 * answer) and holds the response after; free it with ep_http_resp_free.
 */
enum ep_http_result ep_http_request(struct ep_http *h, const char *method, const char *url,
				    const char *ctype, const char *body, struct ep_http_resp *r);
void ep_http_resp_free(struct ep_http_resp *r);

/* The answer body as JSON, NULL if it is none (or empty). */
json_t *ep_http_resp_json(const struct ep_http_resp *r);
/* Serialises a request body compactly and drops the reference to o (NULL
 * in, NULL out), so json_pack(...) can be passed straight in. */
char *ep_http_json_body(json_t *o);

/*
 * Exponential backoff with "equal jitter": half the step fixed, half
 * random, so the retries of many agents spread out but still grow.
 */
struct ep_backoff {
	unsigned min_ms, max_ms, cur_ms;
	uint64_t rng;
};

void ep_backoff_init(struct ep_backoff *b, unsigned min_ms, unsigned max_ms);
unsigned ep_backoff_next(struct ep_backoff *b);
void ep_backoff_reset(struct ep_backoff *b);

#endif
