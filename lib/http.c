/*
 * The HTTPS client of http.h, lifted out of the Kubernetes client so that
 * certificate sync can use the same one.
 *
 * A request runs its easy handle through a private multi handle rather
 * than curl_easy_perform: then ep_http_interrupt() can wake the wait
 * (curl_multi_wakeup) and the caller's stop takes milliseconds instead of
 * waiting out a timeout. The easy handle is kept between requests, so the
 * connection to the server is reused.
 */
#include "http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define BODY_MAX_DEFAULT (16u << 20)
#define TOKEN_MAX (64u << 10)

struct ep_http {
	CURLM *multi;
	CURL *easy;
	atomic_bool stopping;
	char errbuf[CURL_ERROR_SIZE];
	char *ca_file, *token_file, *user_agent, *protocols;
	unsigned timeout_ms;
	size_t body_max;
};

/* What the write callback needs: the answer and its cap. */
struct body_sink {
	struct ep_http_resp *r;
	size_t max;
};

static size_t on_body(char *p, size_t sz, size_t nmemb, void *arg)
{
	struct body_sink *k = arg;
	struct ep_http_resp *r = k->r;
	size_t len = sz * nmemb;

	if (r->len + len > k->max) {
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

void ep_http_resp_free(struct ep_http_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* The bearer token, trimmed; NULL (and err) when there is none usable. */
static char *read_token(const char *path, char *err, size_t errlen)
{
	char *buf, *s, *e;
	size_t len;
	int rc = ep_read_file(path, TOKEN_MAX, &buf, &len);

	if (rc) {
		snprintf(err, errlen, "token file %.200s: %s", path, strerror(-rc));
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
		snprintf(err, errlen, "token file %.200s holds no usable token", path);
		explicit_bzero(buf, len);
		free(buf);
		return NULL;
	}
	memmove(buf, s, (size_t)(e - s) + 1);
	return buf;
}

/* Runs the easy handle to completion through the multi handle, watching
 * for ep_http_interrupt. */
static CURLcode perform(struct ep_http *h, bool *stopped)
{
	CURLcode res = CURLE_OK;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left;

	*stopped = false;
	if (curl_multi_add_handle(h->multi, h->easy) != CURLM_OK)
		return CURLE_FAILED_INIT;
	for (;;) {
		mc = curl_multi_perform(h->multi, &running);
		if (mc != CURLM_OK) {
			res = CURLE_FAILED_INIT;
			snprintf(h->errbuf, sizeof(h->errbuf), "curl_multi_perform: %s",
				 curl_multi_strerror(mc));
			break;
		}
		if (!running)
			break;
		if (atomic_load(&h->stopping)) {
			*stopped = true;
			break;
		}
		mc = curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
		if (mc != CURLM_OK) {
			res = CURLE_FAILED_INIT;
			snprintf(h->errbuf, sizeof(h->errbuf), "curl_multi_poll: %s",
				 curl_multi_strerror(mc));
			break;
		}
	}
	if (!running) {
		while ((msg = curl_multi_info_read(h->multi, &left)))
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == h->easy)
				res = msg->data.result;
	}
	curl_multi_remove_handle(h->multi, h->easy);
	return res;
}

/* The request's header lines; NULL when out of memory. */
static struct curl_slist *build_headers(const char *auth, const char *ctype)
{
	struct curl_slist *hdrs = NULL, *n;
	char ctbuf[128];
	const char *lines[4];
	size_t nl = 0;

	if (auth)
		lines[nl++] = auth;
	lines[nl++] = "Accept: application/json";
	/* No "Expect: 100-continue" round trip for our small bodies. */
	lines[nl++] = "Expect:";
	if (ctype) {
		snprintf(ctbuf, sizeof(ctbuf), "Content-Type: %s", ctype);
		lines[nl++] = ctbuf;
	}
	for (size_t i = 0; i < nl; i++) {
		n = curl_slist_append(hdrs, lines[i]);
		if (!n) {
			curl_slist_free_all(hdrs);
			return NULL;
		}
		hdrs = n;
	}
	return hdrs;
}

static void free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

enum ep_http_result ep_http_request(struct ep_http *h, const char *method, const char *url,
				    const char *ctype, const char *body, struct ep_http_resp *r)
{
	struct body_sink sink = { .r = r, .max = h->body_max };
	struct curl_slist *hdrs;
	char *token, *auth = NULL;
	curl_off_t ra = -1;
	bool stopped;
	CURLcode res;

	ep_http_resp_free(r); /* r may hold the previous answer */
	r->retry_after_s = -1;

	if (h->token_file) {
		token = read_token(h->token_file, r->msg, sizeof(r->msg));
		if (!token)
			return EP_HTTP_NOT_SENT;
		if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
			auth = NULL;
		free_secret(token);
		if (!auth) {
			snprintf(r->msg, sizeof(r->msg), "out of memory");
			return EP_HTTP_NOT_SENT;
		}
	}
	hdrs = build_headers(auth, ctype);
	if (!hdrs) {
		snprintf(r->msg, sizeof(r->msg), "out of memory");
		free_secret(auth);
		return EP_HTTP_NOT_SENT;
	}

	curl_easy_reset(h->easy);
	h->errbuf[0] = '\0';
	curl_easy_setopt(h->easy, CURLOPT_URL, url);
	curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, h->protocols);
	curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, hdrs);
	if (h->user_agent)
		curl_easy_setopt(h->easy, CURLOPT_USERAGENT, h->user_agent);
	if (h->ca_file)
		curl_easy_setopt(h->easy, CURLOPT_CAINFO, h->ca_file);
	curl_easy_setopt(h->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
	curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)h->timeout_ms);
	curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf);
	if (body) {
		curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, body);
	}
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, method);

	res = perform(h, &stopped);

	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &r->code);
	curl_easy_getinfo(h->easy, CURLINFO_RETRY_AFTER, &ra);
	r->retry_after_s = ra > 0 ? (long)ra : -1;
	/* The header list and token are no longer needed: libcurl copied the
	 * request out; reset() drops its pointer to hdrs before the next use.
	 * The sink lives on this stack: unhook it too. */
	curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, NULL);
	curl_slist_free_all(hdrs);
	free_secret(auth);

	if (stopped) {
		snprintf(r->msg, sizeof(r->msg), "stopped");
		return EP_HTTP_STOPPED;
	}
	if (res != CURLE_OK) {
		if (r->too_big)
			snprintf(r->msg, sizeof(r->msg), "response larger than %zu MiB",
				 h->body_max >> 20);
		else
			snprintf(r->msg, sizeof(r->msg), "%s",
				 h->errbuf[0] ? h->errbuf : curl_easy_strerror(res));
		return EP_HTTP_FAILED;
	}
	return EP_HTTP_ANSWERED;
}

json_t *ep_http_resp_json(const struct ep_http_resp *r)
{
	return r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
}

char *ep_http_json_body(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

void ep_http_interrupt(struct ep_http *h)
{
	if (!h)
		return;
	atomic_store(&h->stopping, true);
	/* Wakes curl_multi_poll now, or the next one if none is waiting. */
	curl_multi_wakeup(h->multi);
}

static char *dup_opt(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

void ep_http_free(struct ep_http *h)
{
	if (!h)
		return;
	if (h->easy)
		curl_easy_cleanup(h->easy);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	free(h->ca_file);
	free(h->token_file);
	free(h->user_agent);
	free(h->protocols);
	/* libcurl counts init/cleanup pairs; this undoes ours only. */
	curl_global_cleanup();
	free(h);
}

struct ep_http *ep_http_new(const struct ep_http_opts *o, char *err, size_t errlen)
{
	struct ep_http *h = calloc(1, sizeof(*h));
	bool oom = false;
	CURLcode rc;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(rc));
		free(h);
		return NULL;
	}
	atomic_init(&h->stopping, false);
	h->timeout_ms = o->timeout_ms;
	h->body_max = o->body_max ? o->body_max : BODY_MAX_DEFAULT;
	h->ca_file = dup_opt(o->ca_file, &oom);
	h->token_file = dup_opt(o->token_file, &oom);
	h->user_agent = dup_opt(o->user_agent, &oom);
	h->protocols = dup_opt(o->protocols ? o->protocols : "https", &oom);
	if (oom) {
		snprintf(err, errlen, "out of memory");
		ep_http_free(h);
		return NULL;
	}
	h->multi = curl_multi_init();
	h->easy = curl_easy_init();
	if (!h->multi || !h->easy) {
		snprintf(err, errlen, "cannot create a libcurl handle");
		ep_http_free(h);
		return NULL;
	}
	return h;
}

/* ------------------------------------------------------------ backoff */

static uint64_t rng_next(struct ep_backoff *b)
{
	/* xorshift64*: jitter only, not security. */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 0x2545F4914F6CDD1DULL;
}

void ep_backoff_init(struct ep_backoff *b, unsigned min_ms, unsigned max_ms)
{
	b->min_ms = min_ms;
	b->max_ms = max_ms;
	b->cur_ms = min_ms;
	/* Different per process and per user, so agents do not march in step. */
	b->rng = ep_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)b;
	if (!b->rng)
		b->rng = 1;
}

unsigned ep_backoff_next(struct ep_backoff *b)
{
	unsigned cur = b->cur_ms, max = b->max_ms;
	unsigned d = cur / 2 + (unsigned)(rng_next(b) % (cur / 2 + 1));

	b->cur_ms = cur >= max / 2 ? max : cur * 2;
	return d;
}

void ep_backoff_reset(struct ep_backoff *b)
{
	b->cur_ms = b->min_ms;
}
