/*
 * Validation of a certificate set with OpenSSL before anything is touched:
 * what a new set must pass before it replaces the installed one. Pure: bytes
 * in, a verdict and the facts (serial, NotAfter) out; no files, no clock
 * except the caller's "now", so the fuzzer (tests/fuzz/fuzz_cert_check.c)
 * and the unit tests drive exactly the path the agent runs.
 *
 * A set is tls.crt (leaf first, then intermediates), tls.key and a CA
 * bundle the chain must verify to. A bundle set is CA certificates only.
 * Every refusal names the file and the reason in one line.
 */
#ifndef EP_CERT_CHECK_H
#define EP_CERT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define EP_CERT_SERIAL_MAX 130 /* 64 bytes in hex, with a NUL */
#define EP_CERT_MAX_SAN 8
#define EP_CERT_MAX_PEM_BLOCKS 64
#define EP_CERT_MIN_RSA_BITS 2048

struct ep_cert_policy {
	time_t now;
	uint32_t skew_s;		     /* tolerated clock skew for NotBefore */
	size_t max_bytes;		     /* per file */
	const char *san[EP_CERT_MAX_SAN]; /* each must be in the leaf: DNS name, IP or URI */
	size_t n_san;
};

struct ep_cert_info {
	char serial[EP_CERT_SERIAL_MAX]; /* hex, of the leaf (bundle: of the first CA) */
	char subject[256];
	time_t not_before, not_after;	 /* of the leaf (bundle: the earliest NotAfter) */
	unsigned n_certs;		 /* certificates in tls.crt (bundle: in ca.crt) */
};

/* 0: the set may be installed, info filled. -EINVAL: refused, err says why
 * ("tls.key does not match the certificate in tls.crt"). */
int ep_cert_check(const void *crt, size_t crt_len, const void *key, size_t key_len, const void *ca,
		  size_t ca_len, const struct ep_cert_policy *p, struct ep_cert_info *info,
		  char *err, size_t errlen);

/* A trust bundle: one or more CA certificates, nothing else, each within its
 * validity. Same return convention. */
int ep_cert_check_bundle(const void *ca, size_t ca_len, const struct ep_cert_policy *p,
			 struct ep_cert_info *info, char *err, size_t errlen);

/* The serial (hex) of the first certificate of a PEM buffer; for the verify
 * step and tests. 0 or -EINVAL. */
int ep_cert_pem_serial(const void *pem, size_t len, char *serial, size_t serlen);

#endif
