/*
 * Certificate sync: for every certs[] entry, follow the source, validate a
 * new set (cert_check.h), install it atomically (cert_store.h), tell the
 * consumer, and report. One module on the agent's loop; each set owns its
 * sources: an inotify watch on the source directory, a settle timer (the
 * debounce, and the retry of a set still being written), a 2 s poll
 * (missed events, a source directory that appears later, the expiry
 * warning) and, while a consumer reloads, a pidfd io source of the reload
 * command and a verify timer.
 *
 * A set that fails validation is read again after a pause; only when the
 * same bytes fail twice is it refused (logged once, counted once): a writer
 * still at work is waited out, a bad set is refused, and neither ever
 * replaces the installed one.
 *
 * Everything but start/stop/reconfigure runs on the loop thread; the report
 * calls are made with the agent lock held, and the loop callbacks take the
 * same lock while they change what the report reads.
 */
#ifndef EP_CERTS_H
#define EP_CERTS_H

#include <pthread.h>
#include <stddef.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "strbuf.h"

struct ep_certs;

/* Starts syncing every set of cfg (none: *out stays NULL, 0). lock: the
 * agent's, taken by loop callbacks while they change the report. */
int ep_certs_start(struct ep_certs **out, const struct ep_config *cfg, sd_event *ev,
		   pthread_mutex_t *lock, char *err, size_t errlen);
/* Sets whose entry is unchanged keep their state; others restart. */
int ep_certs_reconfigure(struct ep_certs *c, const struct ep_config *cfg, char *err,
			 size_t errlen);
void ep_certs_stop(struct ep_certs *c);

/* `edgeplane certs`: {"sets": [...]} (NULL c: no sets). */
json_t *ep_certs_status(struct ep_certs *c);
/* For `edgeplane status`: {"sets": N, "installed": N, "refused": N, "expiring": N}. */
json_t *ep_certs_summary(struct ep_certs *c);
/* cert_expiry_timestamp_seconds, cert_rotations_total, cert_sync_seconds. */
void ep_certs_metrics(struct ep_certs *c, struct ep_strbuf *b);

/* TLS handshake to host:port presenting cert_file/key_file (may be NULL)
 * as the client certificate; the serial (hex) the server shows.
 * 0 or -errno with err. Blocking, bounded by timeout_ms. */
int ep_cert_peer_serial(const char *hostport, const char *cert_file, const char *key_file,
			int timeout_ms, char *serial, size_t serlen, char *err, size_t errlen);

#endif
