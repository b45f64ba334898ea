/*
 * Certificate set validation (cert_check.h). The order of the checks is the
 * order a reader of a refusal wants: does it parse at all, then is it the
 * right pair, then does it chain, then is it in time, then is it for us.
 * PEM is parsed block by block and every "-----BEGIN" must become a
 * certificate (or the one key), so a truncated, concatenated or padded file
 * is named as such instead of silently yielding its first good block.
 * Time is checked by hand (with the skew margin) and chain verification
 * runs with X509_V_FLAG_NO_CHECK_TIME: OpenSSL's own time check knows no
 * margin and would report "certificate is not yet valid" for a certificate
 * minted a second ago on a host whose clock is behind.
 */
#include "cert_check.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define BEGIN_MARK "-----BEGIN "

/* Encrypted keys are refused, never prompted for on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static unsigned count_blocks(const char *p, size_t len)
{
	unsigned n = 0;
	size_t ml = strlen(BEGIN_MARK);

	for (size_t i = 0; i + ml <= len; i++)
		if (p[i] == '-' && !memcmp(p + i, BEGIN_MARK, ml)) {
			n++;
			i += ml - 1;
		}
	return n;
}

static bool has_nul(const void *p, size_t len)
{
	return memchr(p, '\0', len) != NULL;
}

/* Every certificate of a PEM buffer, or NULL with err set. */
static STACK_OF(X509) *read_certs(const char *file, const void *buf, size_t len, size_t max,
				  char *err, size_t errlen)
{
	STACK_OF(X509) *sk;
	unsigned blocks;
	BIO *bio;
	X509 *x;

	if (!len) {
		snprintf(err, errlen, "%s is empty", file);
		return NULL;
	}
	if (len > max) {
		snprintf(err, errlen, "%s is %zu bytes, more than the limit of %zu", file, len, max);
		return NULL;
	}
	if (has_nul(buf, len)) {
		snprintf(err, errlen, "%s is not PEM text (it contains NUL bytes)", file);
		return NULL;
	}
	blocks = count_blocks(buf, len);
	if (!blocks) {
		snprintf(err, errlen, "%s holds no PEM block (not a certificate file)", file);
		return NULL;
	}
	if (blocks > EP_CERT_MAX_PEM_BLOCKS) {
		snprintf(err, errlen, "%s holds %u PEM blocks, more than the limit of %d", file,
			 blocks, EP_CERT_MAX_PEM_BLOCKS);
		return NULL;
	}
	sk = sk_X509_new_null();
	bio = BIO_new_mem_buf(buf, (int)len);
	if (!sk || !bio) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, no_password, NULL))) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	ERR_clear_error();
	if ((unsigned)sk_X509_num(sk) != blocks) {
		snprintf(err, errlen,
			 "%s: PEM block %d of %u is not a whole certificate (truncated, corrupt or "
			 "not a CERTIFICATE block)",
			 file, sk_X509_num(sk) + 1, blocks);
		goto fail;
	}
	BIO_free(bio);
	return sk;
fail:
	BIO_free(bio);
	sk_X509_pop_free(sk, X509_free);
	return NULL;
}

static EVP_PKEY *read_key(const void *buf, size_t len, size_t max, char *err, size_t errlen)
{
	EVP_PKEY *k;
	BIO *bio;

	if (!len) {
		snprintf(err, errlen, "tls.key is empty");
		return NULL;
	}
	if (len > max) {
		snprintf(err, errlen, "tls.key is %zu bytes, more than the limit of %zu", len, max);
		return NULL;
	}
	if (has_nul(buf, len) || count_blocks(buf, len) != 1) {
		snprintf(err, errlen, "tls.key must hold exactly one PEM private key block");
		return NULL;
	}
	bio = BIO_new_mem_buf(buf, (int)len);
	if (!bio) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	k = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (!k)
		snprintf(err, errlen,
			 "tls.key is not a readable private key (truncated, corrupt, encrypted "
			 "or not a key)");
	return k;
}

static void fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int asn1_to_time(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;

	if (!a || !ASN1_TIME_to_tm(a, &tm))
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* Validity window of one certificate: NotBefore <= now + skew < ... and now < NotAfter. */
static int check_time(X509 *x, const char *what, const struct ep_cert_policy *p, time_t *nb,
		      time_t *na, char *err, size_t errlen)
{
	char b1[32], b2[32];

	if (asn1_to_time(X509_get0_notBefore(x), nb) || asn1_to_time(X509_get0_notAfter(x), na)) {
		snprintf(err, errlen, "%s has an unreadable validity period", what);
		return -1;
	}
	if (*nb > p->now + (time_t)p->skew_s) {
		fmt_time(*nb, b1, sizeof(b1));
		fmt_time(p->now, b2, sizeof(b2));
		snprintf(err, errlen, "%s is not yet valid: NotBefore %s is after now (%s) + %us skew",
			 what, b1, b2, p->skew_s);
		return -1;
	}
	if (p->now >= *na) {
		fmt_time(*na, b1, sizeof(b1));
		snprintf(err, errlen, "%s has expired: NotAfter %s", what, b1);
		return -1;
	}
	return 0;
}

static void serial_hex(X509 *x, char *buf, size_t len)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *h = bn ? BN_bn2hex(bn) : NULL;

	snprintf(buf, len, "%s", h ? h : "?");
	OPENSSL_free(h);
	BN_free(bn);
}

static void subject_of(X509 *x, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	buf[0] = '\0';
	if (!b)
		return;
	X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
	n = BIO_get_mem_data(b, &p);
	snprintf(buf, len, "%.*s", (int)(n < (long)len ? n : (long)len - 1), p);
	BIO_free(b);
}

static bool has_uri(X509 *x, const char *uri)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	bool found = false;

	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && !found; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *s;

		if (g->type != GEN_URI)
			continue;
		s = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		found = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier) == strlen(uri) &&
			!memcmp(s, uri, strlen(uri));
	}
	GENERAL_NAMES_free(gens);
	return found;
}

static bool has_name(X509 *x, const char *name)
{
	if (strstr(name, "://"))
		return has_uri(x, name);
	if (X509_check_ip_asc(x, name, 0) == 1)
		return true;
	return X509_check_host(x, name, strlen(name), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
			       NULL) == 1;
}

/* A leaf for TLS: not a CA, and where the usage extensions exist, they
 * allow signing the handshake and TLS server or client authentication. */
static int check_usage(X509 *leaf, char *err, size_t errlen)
{
	uint32_t ku, xku;

	if (X509_check_ca(leaf)) {
		snprintf(err, errlen, "tls.crt: the first certificate is a CA certificate, not a leaf");
		return -1;
	}
	ku = X509_get_key_usage(leaf);
	if (ku != UINT32_MAX && !(ku & (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT))) {
		snprintf(err, errlen,
			 "tls.crt: key usage allows neither digitalSignature nor keyEncipherment");
		return -1;
	}
	xku = X509_get_extended_key_usage(leaf);
	if (xku != UINT32_MAX && !(xku & (XKU_SSL_SERVER | XKU_SSL_CLIENT))) {
		snprintf(err, errlen,
			 "tls.crt: extended key usage allows neither serverAuth nor clientAuth");
		return -1;
	}
	return 0;
}

static int check_key_strength(EVP_PKEY *k, char *err, size_t errlen)
{
	if (EVP_PKEY_base_id(k) == EVP_PKEY_RSA && EVP_PKEY_bits(k) < EP_CERT_MIN_RSA_BITS) {
		snprintf(err, errlen, "tls.key: RSA key of %d bits, fewer than %d", EVP_PKEY_bits(k),
			 EP_CERT_MIN_RSA_BITS);
		return -1;
	}
	return 0;
}

static int verify_chain(X509 *leaf, STACK_OF(X509) *untrusted, STACK_OF(X509) *cas,
			const struct ep_cert_policy *p, char *err, size_t errlen)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *chain;
	time_t nb, na;
	int rc = -1;

	if (!store || !ctx) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(cas); i++)
		X509_STORE_add_cert(store, sk_X509_value(cas, i));
	X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_X509_STRICT);
	if (!X509_STORE_CTX_init(ctx, store, leaf, untrusted)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		int e = X509_STORE_CTX_get_error(ctx);

		snprintf(err, errlen, "tls.crt does not verify to the CA bundle: %s (depth %d)",
			 X509_verify_cert_error_string(e), X509_STORE_CTX_get_error_depth(ctx));
		goto out;
	}
	/* The issuers' windows, with the same margin as the leaf's. */
	chain = X509_STORE_CTX_get0_chain(ctx);
	for (int i = 1; i < sk_X509_num(chain); i++) {
		char what[64];

		snprintf(what, sizeof(what), "the issuer at chain depth %d", i);
		if (check_time(sk_X509_value(chain, i), what, p, &nb, &na, err, errlen))
			goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

int ep_cert_check(const void *crt, size_t crt_len, const void *key, size_t key_len, const void *ca,
		  size_t ca_len, const struct ep_cert_policy *p, struct ep_cert_info *info,
		  char *err, size_t errlen)
{
	STACK_OF(X509) *certs = NULL, *cas = NULL, *untrusted = NULL;
	EVP_PKEY *k = NULL;
	X509 *leaf;
	int rc = -EINVAL;

	memset(info, 0, sizeof(*info));
	if (!crt) {
		snprintf(err, errlen, "tls.crt is missing");
		return -EINVAL;
	}
	if (!key) {
		snprintf(err, errlen, "tls.key is missing");
		return -EINVAL;
	}
	if (!ca) {
		snprintf(err, errlen, "no CA bundle to verify against (ca.crt in the source, or trust:)");
		return -EINVAL;
	}
	certs = read_certs("tls.crt", crt, crt_len, p->max_bytes, err, errlen);
	if (!certs)
		goto out;
	k = read_key(key, key_len, p->max_bytes, err, errlen);
	if (!k)
		goto out;
	cas = read_certs("the CA bundle", ca, ca_len, p->max_bytes, err, errlen);
	if (!cas)
		goto out;
	leaf = sk_X509_value(certs, 0);
	info->n_certs = (unsigned)sk_X509_num(certs);
	serial_hex(leaf, info->serial, sizeof(info->serial));
	subject_of(leaf, info->subject, sizeof(info->subject));
	if (X509_check_private_key(leaf, k) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "tls.key does not match the certificate in tls.crt (serial %s)",
			 info->serial);
		goto out;
	}
	if (check_key_strength(k, err, errlen))
		goto out;
	untrusted = sk_X509_new_null();
	if (!untrusted) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 1; i < sk_X509_num(certs); i++)
		sk_X509_push(untrusted, sk_X509_value(certs, i));
	if (verify_chain(leaf, untrusted, cas, p, err, errlen))
		goto out;
	if (check_time(leaf, "tls.crt", p, &info->not_before, &info->not_after, err, errlen))
		goto out;
	for (size_t i = 0; i < p->n_san; i++)
		if (!has_name(leaf, p->san[i])) {
			snprintf(err, errlen, "tls.crt is not for %s (expect.san); subject %s",
				 p->san[i], info->subject);
			goto out;
		}
	if (check_usage(leaf, err, errlen))
		goto out;
	rc = 0;
out:
	ERR_clear_error();
	sk_X509_free(untrusted);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(cas, X509_free);
	EVP_PKEY_free(k);
	return rc;
}

int ep_cert_check_bundle(const void *ca, size_t ca_len, const struct ep_cert_policy *p,
			 struct ep_cert_info *info, char *err, size_t errlen)
{
	STACK_OF(X509) *cas;
	int rc = -EINVAL;

	memset(info, 0, sizeof(*info));
	if (!ca) {
		snprintf(err, errlen, "ca.crt is missing");
		return -EINVAL;
	}
	cas = read_certs("ca.crt", ca, ca_len, p->max_bytes, err, errlen);
	if (!cas)
		return -EINVAL;
	info->n_certs = (unsigned)sk_X509_num(cas);
	for (int i = 0; i < sk_X509_num(cas); i++) {
		X509 *x = sk_X509_value(cas, i);
		char what[64];
		time_t nb, na;

		snprintf(what, sizeof(what), "ca.crt: certificate %d", i + 1);
		if (X509_check_ca(x) < 1) {
			snprintf(err, errlen, "%s is not a CA certificate (bundles hold CAs only)", what);
			goto out;
		}
		if (check_time(x, what, p, &nb, &na, err, errlen))
			goto out;
		if (!i) {
			serial_hex(x, info->serial, sizeof(info->serial));
			subject_of(x, info->subject, sizeof(info->subject));
		}
		if (!info->not_after || na < info->not_after) {
			info->not_after = na;
			info->not_before = nb;
		}
	}
	rc = 0;
out:
	ERR_clear_error();
	sk_X509_pop_free(cas, X509_free);
	return rc;
}

int ep_cert_pem_serial(const void *pem, size_t len, char *serial, size_t serlen)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, no_password, NULL) : NULL;

	BIO_free(bio);
	ERR_clear_error();
	if (!x)
		return -EINVAL;
	serial_hex(x, serial, serlen);
	X509_free(x);
	return 0;
}
