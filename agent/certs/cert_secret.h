/*
 * The `secret` source of certificate sync: one Kubernetes Secret followed
 * through the API instead of a mounted volume, so a change reaches the node
 * in milliseconds rather than on the kubelet's sync period.
 *
 * A background thread per Secret lists it (fieldSelector metadata.name, so
 * RBAC can be limited to the named Secret) and then watches from the list's
 * resourceVersion with bookmarks; a stream that ends is resumed from the
 * last resourceVersion seen (events and bookmarks), a 410 Gone (history
 * compacted) or repeated failures start over with a list. Each new version
 * of the Secret's data is decoded (tls.crt, tls.key, ca.crt) and handed to
 * the loop: the latest is kept here and an eventfd is written, on which the
 * certs module has an io source. Deleting the Secret changes nothing on the
 * node (the installed set stays).
 */
#ifndef EP_CERT_SECRET_H
#define EP_CERT_SECRET_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cert_store.h"
#include "k8s.h"

struct ep_secret_watch;

/* ns/name: the Secret. efd: written (eventfd counter +1) on each new
 * version. NULL on failure (logged). */
struct ep_secret_watch *ep_secret_watch_start(const struct ep_k8s_settings *k, const char *ns,
					      const char *name, int efd);
/* Stops and joins the thread (at most about a second). */
void ep_secret_watch_stop(struct ep_secret_watch *w);

/* Copies the latest version into *set (ep_cert_set_free it) and the
 * monotonic time it arrived into *at_ns. 1: a version is there; 0: none
 * yet, or the Secret does not exist (err says which); -ENOMEM. */
int ep_secret_watch_take(struct ep_secret_watch *w, struct ep_cert_set *set, uint64_t *at_ns,
			 char *err, size_t errlen);

/* {"resource_version", "lists", "watches", "events", "bookmarks",
 * "expired", "state"} for the status. */
json_t *ep_secret_watch_status(struct ep_secret_watch *w);

#endif
