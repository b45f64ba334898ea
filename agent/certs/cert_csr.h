/*
 * The `csr` source of certificate sync: the node's own identity, issued and
 * renewed through the Kubernetes CertificateSigningRequest API
 * (certificates.k8s.io/v1), the way the kubelet's certificate manager
 * renews its client certificate.
 *
 * A thread per set decides when to renew (at renew_at of the installed
 * certificate's lifetime plus a random share up to renew_jitter, so a fleet
 * issued together does not renew together; at once when nothing valid is
 * installed), generates an EC P-256 key on the node, creates a CSR with
 * spec.signerName and the usages, and polls that one object until the
 * signer has issued a certificate or the CSR is Denied/Failed. The key is
 * written only into the target (TARGET/.csr-pending.key, mode 0600) while
 * the request is pending, so an agent restarted mid-wait resumes the same
 * CSR (its name is derived from the key) instead of losing the issuance;
 * it is never sent anywhere. An issued certificate goes with its key to the
 * loop like a secret's new version (eventfd), through the same validation,
 * install and reload; the loop's verdict (installed or refused) comes back
 * through ep_csr_verdict and ends the pending request.
 */
#ifndef EP_CERT_CSR_H
#define EP_CERT_CSR_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "cert_store.h"
#include "config.h"
#include "k8s.h"

struct ep_csr;

#define EP_CSR_PENDING_KEY ".csr-pending.key"

/* cfg: the set (source.csr, target, expect.san); node: the node name
 * (default common name, part of the CSR's name). have/nb/na: the valid
 * installed certificate, if any. efd: written on each issued certificate or
 * news (a denial). NULL on failure (logged). */
struct ep_csr *ep_csr_start(const struct ep_k8s_settings *k, const struct ep_cfg_cert *cfg,
			    const char *node, bool have, time_t nb, time_t na, int efd);
void ep_csr_stop(struct ep_csr *w);

/* 1: an issued set (tls.crt, tls.key) waits for its verdict, copied into
 * *set; 0: none, err says what the source is doing; 2: the same, and it is
 * a denial or failure of a CSR not reported before (an Event); -ENOMEM. */
int ep_csr_take(struct ep_csr *w, struct ep_cert_set *set, uint64_t *at_ns, char *err,
		size_t errlen);
/* The loop's verdict on the set last taken: installed (its validity) or
 * refused (why). */
void ep_csr_verdict(struct ep_csr *w, bool installed, time_t nb, time_t na, const char *why);

/* What a CertificateSigningRequest object (JSON, as the API returns it)
 * says; pure, for the thread and the fuzzer (tests/fuzz/fuzz_csr_status.c).
 * 1: issued, *crt (malloc'd, NUL-terminated) the decoded status.certificate;
 * 0: pending; -1: Denied (*outcome 1) or Failed (*outcome 2), or a
 * certificate that is not base64, err says which; -2: not a JSON object. */
int ep_csr_parse(const char *json, size_t len, const char *name, const char *signer, char **crt,
		 size_t *crt_len, int *outcome, char *err, size_t errlen);

/* Wall time of the next renewal (0: now, nothing valid installed). */
double ep_csr_next_renewal(struct ep_csr *w);
/* {"name", "state", "requests", "issued", "denied", "failed", "next_renewal"}. */
json_t *ep_csr_status(struct ep_csr *w);

#endif
