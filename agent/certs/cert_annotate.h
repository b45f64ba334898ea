/*
 * The node annotation of certificate sync: "edgeplane.io/cert-serials" on
 * the agent's own Node, "name=SERIAL,name=SERIAL" for every set with an
 * installed certificate, so fleet skew shows with
 *   kubectl get nodes -o custom-columns=NODE:.metadata.name,CERTS:.metadata.annotations.edgeplane\.io/cert-serials
 * A thread owns the API calls (a JSON merge patch of the Node's metadata);
 * callers only record the wanted value, the latest wins, failures are
 * retried with backoff. RBAC: nodes patch (the chart's ClusterRole), and
 * the chart's admission policy lists the annotation as one the agent owns.
 *
 * The same thread records a Warning Event "CertificateRefused" about the
 * Node for each refused set (once per change, like the log line); at most
 * 16 wait, older ones are dropped when the API is unreachable. RBAC:
 * events create (namespace "default", as the DNS failover Events).
 */
#ifndef EP_CERT_ANNOTATE_H
#define EP_CERT_ANNOTATE_H

#include <jansson.h>

#include "k8s.h"

#define EP_CERT_ANNOTATION "edgeplane.io/cert-serials"

struct ep_cert_annotator;

struct ep_cert_annotator *ep_cert_annotator_start(const struct ep_k8s_settings *k);
/* Non-blocking: the value the annotation should have. */
void ep_cert_annotator_set(struct ep_cert_annotator *a, const char *value);
/* Non-blocking: a Warning Event about the Node, reason CertificateRefused. */
void ep_cert_annotator_event(struct ep_cert_annotator *a, const char *message);
void ep_cert_annotator_stop(struct ep_cert_annotator *a);
/* {"key", "value", "in_sync", "last_error", "events_posted"} */
json_t *ep_cert_annotator_status(struct ep_cert_annotator *a);

#endif
