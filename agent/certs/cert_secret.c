/* The Kubernetes Secret source: list + watch in a thread (cert_secret.h). */
#include "cert_secret.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "k8s_curl.h"
#include "log.h"
#include "util.h"

#define WATCH_TIMEOUT_S 300  /* the server ends a watch after this; we resume it */
#define LINE_MAX_BYTES (4 << 20)
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define FAILS_BEFORE_RELIST 3

struct ep_secret_watch {
	pthread_t th;
	struct ep_k8s_settings k;
	char ns[64], name[254];
	int efd;
	int stop; /* atomic */
	pthread_mutex_t mu;
	/* guarded by mu */
	struct ep_cert_set set;
	bool have, absent;
	uint64_t at_ns;
	char rv[64];
	char state[300];
	uint64_t lists, watches, events, bookmarks, expired;
	/* the thread's own */
	CURL *curl;
	char *line;
	size_t line_len, line_cap;
	bool got_410;
	bool collect; /* a list: the whole body, newlines and all */
};

static bool stopping(struct ep_secret_watch *w)
{
	return __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE);
}

static void nap(struct ep_secret_watch *w, unsigned ms)
{
	for (unsigned t = 0; t < ms && !stopping(w); t += 50)
		usleep(50 * 1000);
}

static void set_state(struct ep_secret_watch *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_state(struct ep_secret_watch *w, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&w->mu);
	va_start(ap, fmt);
	vsnprintf(w->state, sizeof(w->state), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&w->mu);
}

static int b64(const char *in, char **out, size_t *len)
{
	size_t n = strlen(in), pad = 0;
	unsigned char *buf;
	int r;

	if (n % 4)
		return -EINVAL;
	buf = malloc(n / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	r = n ? EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n) : 0;
	if (r < 0) {
		free(buf);
		return -EINVAL;
	}
	while (pad < 2 && n > pad && in[n - 1 - pad] == '=')
		pad++;
	*len = (size_t)r - pad;
	buf[*len] = '\0';
	*out = (char *)buf;
	return 0;
}

/* A Secret object (or NULL: it does not exist) becomes the latest version. */
static void publish(struct ep_secret_watch *w, json_t *secret)
{
	struct ep_cert_set set = {};
	json_t *data = json_object_get(secret, "data");
	uint64_t one = 1;

	for (int i = 0; secret && i < EP_CERT_NFILES; i++) {
		const char *v = json_string_value(json_object_get(data, ep_cert_file_names[i]));

		if (v && b64(v, &set.data[i], &set.len[i]))
			set.data[i] = NULL; /* not base64: as if absent; validation says so */
	}
	pthread_mutex_lock(&w->mu);
	ep_cert_set_free(&w->set);
	w->set = set;
	w->have = secret != NULL;
	w->absent = secret == NULL;
	w->at_ns = ep_now_ns();
	pthread_mutex_unlock(&w->mu);
	if (write(w->efd, &one, sizeof(one)) < 0)
		log_warn("certs secret %s/%s: cannot wake the loop: %s", w->ns, w->name,
			 strerror(errno));
}

static void set_rv(struct ep_secret_watch *w, json_t *obj)
{
	const char *rv = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

	if (!rv || strlen(rv) >= sizeof(w->rv))
		return;
	pthread_mutex_lock(&w->mu);
	snprintf(w->rv, sizeof(w->rv), "%s", rv);
	pthread_mutex_unlock(&w->mu);
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	return stopping(ud) ? 1 : 0;
}

static void handle_event(struct ep_secret_watch *w, const char *line, size_t len)
{
	json_t *ev = json_loadb(line, len, 0, NULL), *obj;
	const char *type;

	if (!ev)
		return;
	type = json_string_value(json_object_get(ev, "type"));
	obj = json_object_get(ev, "object");
	if (!type) {
		json_decref(ev);
		return;
	}
	if (!strcmp(type, "ERROR")) {
		if (json_integer_value(json_object_get(obj, "code")) == 410)
			w->got_410 = true;
		else
			set_state(w, "watch error: %s",
				  json_string_value(json_object_get(obj, "message")) ?: "?");
	} else if (!strcmp(type, "BOOKMARK")) {
		pthread_mutex_lock(&w->mu);
		w->bookmarks++;
		pthread_mutex_unlock(&w->mu);
		set_rv(w, obj);
	} else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED") || !strcmp(type, "DELETED")) {
		const char *n = json_string_value(
			json_object_get(json_object_get(obj, "metadata"), "name"));

		if (n && !strcmp(n, w->name)) {
			pthread_mutex_lock(&w->mu);
			w->events++;
			pthread_mutex_unlock(&w->mu);
			publish(w, strcmp(type, "DELETED") ? obj : NULL);
		}
		set_rv(w, obj);
	}
	json_decref(ev);
}

static size_t on_stream(char *p, size_t sz, size_t n, void *ud)
{
	struct ep_secret_watch *w = ud;
	size_t len = sz * n;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n') {
			handle_event(w, w->line, w->line_len);
			w->line_len = 0;
			continue;
		}
		if (w->line_len + 1 >= w->line_cap) {
			size_t cap = w->line_cap ? w->line_cap * 2 : 16384;
			char *nl;

			if (cap > LINE_MAX_BYTES)
				return 0; /* abort: no Secret is that large */
			nl = realloc(w->line, cap);
			if (!nl)
				return 0;
			w->line = nl;
			w->line_cap = cap;
		}
		w->line[w->line_len++] = p[i];
	}
	return len;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct ep_secret_watch *w = ud;
	size_t len = sz * n;

	if (!w->collect)
		return on_stream(p, sz, n, ud);
	if (w->line_len + len + 1 > w->line_cap) {
		size_t cap = w->line_cap ? w->line_cap : 16384;
		char *nl;

		while (cap < w->line_len + len + 1)
			cap *= 2;
		if (cap > LINE_MAX_BYTES)
			return 0;
		nl = realloc(w->line, cap);
		if (!nl)
			return 0;
		w->line = nl;
		w->line_cap = cap;
	}
	memcpy(w->line + w->line_len, p, len);
	w->line_len += len;
	return len;
}

/* One GET; the body goes through on_stream line by line (a list is one
 * line when the server sends it compact; collected whole otherwise). */
static long get(struct ep_secret_watch *w, const char *url, long timeout_s, char *err,
		size_t errlen)
{
	char ebuf[CURL_ERROR_SIZE] = "";
	struct ep_k8s_curl_req req = {
		.url = url, .user_agent = "edgeplane-agent/certs",
		.on_body = on_body, .on_progress = on_progress, .ud = w, .errbuf = ebuf,
	};
	struct curl_slist *h;
	long code = 0;
	CURLcode rc;

	h = ep_k8s_curl_prepare(w->curl, &w->k, &req, err, errlen);
	if (!h)
		return 0;
	w->line_len = 0;
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, timeout_s);
	/* A watch that goes silent (no event, no bookmark) for this long is
	 * a dead connection. */
	curl_easy_setopt(w->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(w->curl, CURLOPT_LOW_SPEED_TIME, 120L);
	rc = ep_k8s_curl_perform(w->curl, h, &code);
	if (rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT)
		snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
	else if (code != 200)
		snprintf(err, errlen, "HTTP %ld%s%.200s", code, w->line_len ? ": " : "",
			 w->line_len ? w->line : "");
	return rc == CURLE_OK || rc == CURLE_OPERATION_TIMEDOUT ? code : 0;
}

static int do_list(struct ep_secret_watch *w, char *err, size_t errlen)
{
	char url[1024];
	json_t *list, *item;
	long code;

	snprintf(url, sizeof(url), "%s/api/v1/namespaces/%s/secrets?fieldSelector=metadata.name%%3D%s",
		 w->k.api_server, w->ns, w->name);
	pthread_mutex_lock(&w->mu);
	w->lists++;
	pthread_mutex_unlock(&w->mu);
	w->collect = true;
	code = get(w, url, 30, err, errlen);
	w->collect = false;
	if (code != 200)
		return -1;
	list = json_loadb(w->line, w->line_len, 0, NULL);
	if (!list) {
		snprintf(err, errlen, "list: not JSON");
		return -1;
	}
	item = json_array_get(json_object_get(list, "items"), 0);
	set_rv(w, list);
	publish(w, item);
	json_decref(list);
	return 0;
}

/* 1: resume, 0: relist (410), -1: failed. */
static int do_watch(struct ep_secret_watch *w, char *err, size_t errlen)
{
	char url[1024], rv[64];
	long code;

	pthread_mutex_lock(&w->mu);
	snprintf(rv, sizeof(rv), "%s", w->rv);
	w->watches++;
	pthread_mutex_unlock(&w->mu);
	snprintf(url, sizeof(url),
		 "%s/api/v1/namespaces/%s/secrets?fieldSelector=metadata.name%%3D%s&watch=1"
		 "&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d",
		 w->k.api_server, w->ns, w->name, rv, WATCH_TIMEOUT_S);
	w->got_410 = false;
	set_state(w, "watching from resourceVersion %s", rv);
	code = get(w, url, WATCH_TIMEOUT_S + 30, err, errlen);
	if (w->got_410) {
		pthread_mutex_lock(&w->mu);
		w->expired++;
		pthread_mutex_unlock(&w->mu);
		return 0;
	}
	return code == 200 ? 1 : -1;
}

static void *run(void *arg)
{
	struct ep_secret_watch *w = arg;
	unsigned backoff = BACKOFF_MIN_MS, fails = 0;
	char err[512];

	while (!stopping(w)) {
		err[0] = '\0';
		if (do_list(w, err, sizeof(err))) {
			set_state(w, "list failed: %s; retrying in %u ms", err, backoff);
			log_warn("certs secret %s/%s: list failed: %s", w->ns, w->name, err);
			nap(w, backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		backoff = BACKOFF_MIN_MS;
		fails = 0;
		while (!stopping(w)) {
			int r;

			err[0] = '\0';
			r = do_watch(w, err, sizeof(err));
			if (r == 0) {
				log_info("certs secret %s/%s: watch expired (410 Gone): listing again",
					 w->ns, w->name);
				break;
			}
			if (r > 0) {
				fails = 0;
				continue;
			}
			if (stopping(w))
				break;
			set_state(w, "watch failed: %s", err);
			if (++fails >= FAILS_BEFORE_RELIST)
				break;
			nap(w, backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		}
	}
	return NULL;
}

struct ep_secret_watch *ep_secret_watch_start(const struct ep_k8s_settings *k, const char *ns,
					      const char *name, int efd)
{
	struct ep_secret_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->k = *k;
	snprintf(w->ns, sizeof(w->ns), "%s", ns);
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->efd = efd;
	pthread_mutex_init(&w->mu, NULL);
	snprintf(w->state, sizeof(w->state), "starting");
	w->curl = curl_easy_init();
	if (!w->curl || pthread_create(&w->th, NULL, run, w)) {
		log_error("certs secret %s/%s: cannot start the watch", ns, name);
		if (w->curl)
			curl_easy_cleanup(w->curl);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return NULL;
	}
	return w;
}

void ep_secret_watch_stop(struct ep_secret_watch *w)
{
	if (!w)
		return;
	__atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
	pthread_join(w->th, NULL);
	curl_easy_cleanup(w->curl);
	ep_cert_set_free(&w->set);
	free(w->line);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int ep_secret_watch_take(struct ep_secret_watch *w, struct ep_cert_set *set, uint64_t *at_ns,
			 char *err, size_t errlen)
{
	int rc = 1;

	memset(set, 0, sizeof(*set));
	pthread_mutex_lock(&w->mu);
	if (!w->have) {
		snprintf(err, errlen, w->absent ? "Secret %s/%s does not exist"
						: "waiting for Secret %s/%s (%s)",
			 w->ns, w->name, w->state);
		rc = 0;
	}
	for (int i = 0; rc == 1 && i < EP_CERT_NFILES; i++) {
		if (!w->set.data[i])
			continue;
		set->data[i] = malloc(w->set.len[i] + 1);
		if (!set->data[i]) {
			rc = -ENOMEM;
			break;
		}
		memcpy(set->data[i], w->set.data[i], w->set.len[i] + 1);
		set->len[i] = w->set.len[i];
	}
	*at_ns = w->at_ns;
	pthread_mutex_unlock(&w->mu);
	if (rc < 0)
		ep_cert_set_free(set);
	return rc;
}

json_t *ep_secret_watch_status(struct ep_secret_watch *w)
{
	json_t *o;

	pthread_mutex_lock(&w->mu);
	o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "resource_version", w->rv, "lists",
		      (json_int_t)w->lists, "watches", (json_int_t)w->watches, "events",
		      (json_int_t)w->events, "bookmarks", (json_int_t)w->bookmarks, "expired",
		      (json_int_t)w->expired, "state", w->state);
	pthread_mutex_unlock(&w->mu);
	return o;
}
