/* The installed serials as an annotation on the agent's Node (cert_annotate.h). */
#include "cert_annotate.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "log.h"

#define VALUE_MAX 4096
#define EVENTS_MAX 16

struct ep_cert_annotator {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ep_k8s_settings k;
	struct ep_http *http;
	bool stop;
	char want[VALUE_MAX], sent[VALUE_MAX];
	bool have_want, have_sent;
	char last_error[300];
	char *events[EVENTS_MAX]; /* messages waiting to be posted, oldest first */
	size_t n_events;
	uint64_t events_posted;
};

static int post_event(struct ep_cert_annotator *a, const char *message, char *err, size_t errlen)
{
	struct ep_http_resp r = {};
	struct timespec ts;
	struct tm tm;
	char url[600], when[32], name[300];
	char *body;
	enum ep_http_result res;
	int rc = -1;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(name, sizeof(name), "%.200s.certs.%lx%09lx", a->k.node_name, (long)ts.tv_sec,
		 ts.tv_nsec);
	snprintf(url, sizeof(url), "%s/api/v1/namespaces/%s/events", a->k.api_server,
		 a->k.event_namespace);
	body = ep_http_json_body(json_pack(
		"{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:s, s:s, s:s, s:{s:s, s:s},"
		" s:s, s:s, s:i, s:s, s:s%}",
		"apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace",
		a->k.event_namespace, "involvedObject", "apiVersion", "v1", "kind", "Node", "name",
		a->k.node_name, "reason", "CertificateRefused", "message", message, "type", "Warning",
		"source", "component", "edgeplane-agent", "host", a->k.node_name, "firstTimestamp",
		when, "lastTimestamp", when, "count", 1, "reportingComponent", "edgeplane-agent",
		"reportingInstance", a->k.node_name, strnlen(a->k.node_name, 128)));
	if (!body) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	res = ep_http_request(a->http, "POST", url, "application/json", body, &r);
	if (res != EP_HTTP_ANSWERED)
		snprintf(err, errlen, "POST Event: %.200s", r.msg);
	else if (r.code / 100 != 2)
		snprintf(err, errlen, "POST Event: HTTP %ld", r.code);
	else
		rc = 0;
	ep_http_resp_free(&r);
	free(body);
	return rc;
}

static int patch(struct ep_cert_annotator *a, const char *value, char *err, size_t errlen)
{
	struct ep_http_resp r = {};
	char url[600];
	char *body;
	enum ep_http_result res;
	int rc = -1;

	snprintf(url, sizeof(url), "%s/api/v1/nodes/%s", a->k.api_server, a->k.node_name);
	body = ep_http_json_body(json_pack("{s:{s:{s:s}}}", "metadata", "annotations",
					   EP_CERT_ANNOTATION, value));
	if (!body) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	res = ep_http_request(a->http, "PATCH", url, "application/merge-patch+json", body, &r);
	if (res != EP_HTTP_ANSWERED)
		snprintf(err, errlen, "PATCH node %.100s: %.150s", a->k.node_name, r.msg);
	else if (r.code / 100 != 2)
		snprintf(err, errlen, "PATCH node %.100s: HTTP %ld", a->k.node_name, r.code);
	else
		rc = 0;
	ep_http_resp_free(&r);
	free(body);
	return rc;
}

static void *run(void *arg)
{
	struct ep_cert_annotator *a = arg;
	struct ep_backoff bo;
	char value[VALUE_MAX], err[300];

	ep_backoff_init(&bo, 500, 30000);
	pthread_mutex_lock(&a->mu);
	while (!a->stop) {
		if (a->n_events) {
			char *msg = a->events[0];

			pthread_mutex_unlock(&a->mu);
			err[0] = '\0';
			if (!post_event(a, msg, err, sizeof(err))) {
				pthread_mutex_lock(&a->mu);
				/* Still first: only this thread removes, callers append. */
				memmove(a->events, a->events + 1, (a->n_events - 1) * sizeof(char *));
				a->n_events--;
				a->events_posted++;
				free(msg);
				continue;
			}
			pthread_mutex_lock(&a->mu);
			snprintf(a->last_error, sizeof(a->last_error), "%s", err);
			goto wait;
		}
		if (!a->have_want || (a->have_sent && !strcmp(a->want, a->sent))) {
			pthread_cond_wait(&a->cv, &a->mu);
			continue;
		}
		snprintf(value, sizeof(value), "%s", a->want);
		pthread_mutex_unlock(&a->mu);
		err[0] = '\0';
		if (!patch(a, value, err, sizeof(err))) {
			pthread_mutex_lock(&a->mu);
			snprintf(a->sent, sizeof(a->sent), "%s", value);
			a->have_sent = true;
			a->last_error[0] = '\0';
			ep_backoff_reset(&bo);
			continue;
		}
		pthread_mutex_lock(&a->mu);
		if (strcmp(a->last_error, err))
			log_warn("certs: node annotation %s: %s; retrying", EP_CERT_ANNOTATION, err);
		snprintf(a->last_error, sizeof(a->last_error), "%s", err);
wait:
		{
			struct timespec ts;
			unsigned ms = ep_backoff_next(&bo);

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += ms / 1000;
			ts.tv_nsec += (long)(ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (!a->stop)
				pthread_cond_timedwait(&a->cv, &a->mu, &ts);
		}
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

struct ep_cert_annotator *ep_cert_annotator_start(const struct ep_k8s_settings *k)
{
	struct ep_http_opts o = {
		.ca_file = k->ca_file,
		.token_file = k->token_file,
		.user_agent = "edgeplane-agent/certs",
		.protocols = "https",
		.timeout_ms = k->timeout_ms,
		.body_max = 1 << 20,
	};
	struct ep_cert_annotator *a = calloc(1, sizeof(*a));
	char err[256];

	if (!a)
		return NULL;
	a->k = *k;
	a->http = ep_http_new(&o, err, sizeof(err));
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (!a->http || pthread_create(&a->th, NULL, run, a)) {
		log_error("certs: cannot start the node annotation: %s", a->http ? "thread" : err);
		ep_http_free(a->http);
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return NULL;
	}
	return a;
}

void ep_cert_annotator_set(struct ep_cert_annotator *a, const char *value)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	snprintf(a->want, sizeof(a->want), "%s", value);
	a->have_want = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void ep_cert_annotator_event(struct ep_cert_annotator *a, const char *message)
{
	char *m;

	if (!a || !(m = strdup(message)))
		return;
	pthread_mutex_lock(&a->mu);
	/* A full queue means the API has been away a while: keep the newest. */
	if (a->n_events == EVENTS_MAX) {
		free(a->events[EVENTS_MAX - 1]);
		a->n_events--;
	}
	a->events[a->n_events++] = m;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void ep_cert_annotator_stop(struct ep_cert_annotator *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	ep_http_interrupt(a->http);
	pthread_join(a->th, NULL);
	ep_http_free(a->http);
	for (size_t i = 0; i < a->n_events; i++)
		free(a->events[i]);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

json_t *ep_cert_annotator_status(struct ep_cert_annotator *a)
{
	json_t *o;

	pthread_mutex_lock(&a->mu);
	o = json_pack("{s:s, s:s, s:b, s:o, s:I}", "key", EP_CERT_ANNOTATION, "value", a->want,
		      "in_sync", a->have_sent && !strcmp(a->want, a->sent), "last_error",
		      a->last_error[0] ? json_string(a->last_error) : json_null(), "events_posted",
		      (json_int_t)a->events_posted);
	pthread_mutex_unlock(&a->mu);
	return o;
}
