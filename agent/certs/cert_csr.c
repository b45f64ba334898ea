/* The CertificateSigningRequest source: issuance and renewal in a thread (cert_csr.h). */
#include "cert_csr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "k8s_curl.h"
#include "log.h"
#include "util.h"

#define POLL_MS 200
#define BODY_MAX (1 << 20)
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 300000

struct ep_csr {
	pthread_t th;
	struct ep_k8s_settings k;
	struct ep_cfg_cert cfg;
	char node[256];
	int efd;
	int stop; /* atomic */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* the verdict came */
	/* guarded by mu */
	bool have;		/* a valid certificate is installed */
	time_t nb, na;
	double renew_at;	/* wall time */
	struct ep_cert_set issued; /* taken by the loop, waiting for its verdict */
	bool issued_ready, verdict, verdict_ok;
	char verdict_why[512];
	uint64_t at_ns;
	char name[254];
	char state[600];
	uint64_t requests, issued_n, denied, failed;
	uint64_t said, said_taken; /* denials and failures, and how many the loop reported */
	/* the thread's own */
	CURL *curl;
	char *body;
	size_t body_len;
};

static bool stopping(struct ep_csr *w)
{
	return __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE);
}

static void nap(struct ep_csr *w, unsigned ms)
{
	for (unsigned t = 0; t < ms && !stopping(w); t += 50)
		usleep(50 * 1000);
}

static void wake(struct ep_csr *w)
{
	uint64_t one = 1;

	if (write(w->efd, &one, sizeof(one)) < 0)
		log_warn("certs %s: cannot wake the loop: %s", w->cfg.name, strerror(errno));
}

static void set_state(struct ep_csr *w, bool news, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_state(struct ep_csr *w, bool news, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&w->mu);
	va_start(ap, fmt);
	vsnprintf(w->state, sizeof(w->state), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&w->mu);
	if (news)
		wake(w);
}

/* The kubelet's rule: renew somewhere in [renew_at, renew_at + jitter] of
 * the lifetime, drawn once per certificate. fresh: just issued; the
 * lifetime then counts from now, not from a NotBefore the signer backdated
 * (Kubernetes' signer: 5 minutes), or a small renew_at on a short
 * certificate would make it due at once, and again, in a loop. */
static void plan(struct ep_csr *w, bool fresh)
{
	uint32_t r = 0;
	double share;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)ep_now_ns();
	share = (w->cfg.source.csr.renew_at_bp +
		 w->cfg.source.csr.renew_jitter_bp * ((double)r / 4294967296.0)) / 10000.0;
	time_t from = w->nb;

	if (fresh && time(NULL) > from)
		from = time(NULL);
	w->renew_at = w->have && w->na > from ? (double)from + (double)(w->na - from) * share
		      : w->have ? (double)w->na : 0;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct ep_csr *w = ud;
	size_t len = sz * n;
	char *nb;

	if (w->body_len + len + 1 > BODY_MAX)
		return 0;
	nb = realloc(w->body, w->body_len + len + 1);
	if (!nb)
		return 0;
	w->body = nb;
	memcpy(w->body + w->body_len, p, len);
	w->body_len += len;
	w->body[w->body_len] = '\0';
	return len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	return stopping(ud) ? 1 : 0;
}

/* One request; the answer in w->body. The HTTP status, or 0 with err. */
static long request(struct ep_csr *w, const char *method, const char *path, const char *body,
		    char *err, size_t errlen)
{
	char url[1024], ebuf[CURL_ERROR_SIZE] = "";
	struct ep_k8s_curl_req req = {
		.url = url, .user_agent = "edgeplane-agent/certs", .json_body = body != NULL,
		.on_body = on_body, .on_progress = on_progress, .ud = w, .errbuf = ebuf,
	};
	struct curl_slist *h;
	long code = 0;
	CURLcode rc;

	snprintf(url, sizeof(url), "%s%s", w->k.api_server, path);
	h = ep_k8s_curl_prepare(w->curl, &w->k, &req, err, errlen);
	if (!h)
		return 0;
	w->body_len = 0;
	if (w->body)
		w->body[0] = '\0';
	pthread_mutex_lock(&w->mu);
	w->requests++;
	pthread_mutex_unlock(&w->mu);
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, (long)w->k.timeout_ms * 2);
	curl_easy_setopt(w->curl, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
	rc = ep_k8s_curl_perform(w->curl, h, &code);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
		return 0;
	}
	if (code < 200 || code > 299) {
		json_t *st = json_loads(w->body ? w->body : "", 0, NULL);
		const char *msg = json_string_value(json_object_get(st, "message"));

		snprintf(err, errlen, "HTTP %ld: %.300s", code, msg ? msg : "");
		json_decref(st);
	}
	return code;
}

/* ---- the key and the request -------------------------------------------- */

static char *bio_string(BIO *b, size_t *len)
{
	char *p, *out;
	long n = BIO_get_mem_data(b, &p);

	if (n <= 0 || !(out = malloc((size_t)n + 1)))
		return NULL;
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
	if (len)
		*len = (size_t)n;
	return out;
}

/* The pending key: read back after a restart, or made and written (0600,
 * whole or not at all) before anything is sent. */
static EVP_PKEY *pending_key(struct ep_csr *w, bool *resumed, char *err, size_t errlen)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 40];
	EVP_PKEY *pk = NULL;
	FILE *f;
	BIO *b;
	char *pem;
	size_t len;
	int fd;

	snprintf(path, sizeof(path), "%.4000s/%s", w->cfg.target, EP_CSR_PENDING_KEY);
	f = fopen(path, "re");
	if (f) {
		pk = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
		fclose(f);
		if (pk) {
			*resumed = true;
			return pk;
		}
		log_warn("certs %s: %s is not a key; making a new one", w->cfg.name, path);
	}
	*resumed = false;
	if (mkdir(w->cfg.target, 0755) && errno != EEXIST) {
		snprintf(err, errlen, "%.300s: %s", w->cfg.target, strerror(errno));
		return NULL;
	}
	pk = EVP_EC_gen("P-256");
	b = BIO_new(BIO_s_mem());
	if (!pk || !b || !PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL) ||
	    !(pem = bio_string(b, &len))) {
		snprintf(err, errlen, "cannot make an EC P-256 key");
		BIO_free(b);
		EVP_PKEY_free(pk);
		return NULL;
	}
	BIO_free(b);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) || write(fd, pem, len) != (ssize_t)len || fsync(fd) ||
	    close(fd) || rename(tmp, path)) {
		snprintf(err, errlen, "cannot write %.300s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		OPENSSL_cleanse(pem, len);
		free(pem);
		EVP_PKEY_free(pk);
		return NULL;
	}
	OPENSSL_cleanse(pem, len);
	free(pem);
	return pk;
}

static void drop_pending(struct ep_csr *w)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%.4000s/%s", w->cfg.target, EP_CSR_PENDING_KEY);
	unlink(path);
}

/* The CSR's name: the node, the set and the key's fingerprint, so the same
 * key always finds the same object (a restart resumes it). */
static void csr_name(struct ep_csr *w, EVP_PKEY *pk)
{
	unsigned char *der = NULL, md[32];
	unsigned mdlen = 0;
	int n = i2d_PUBKEY(pk, &der);
	char hex[17];

	if (n > 0)
		EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", mdlen ? md[i] : 0);
	pthread_mutex_lock(&w->mu);
	snprintf(w->name, sizeof(w->name), "edgeplane-%.180s-%.40s-%s", w->node, w->cfg.name, hex);
	for (char *p = w->name; *p; p++)
		if (*p == '_')
			*p = '-';
	pthread_mutex_unlock(&w->mu);
}

/* PEM of a PKCS#10 request: CN, the expected SANs, signed with the key. */
static char *make_request(struct ep_csr *w, EVP_PKEY *pk, char *err, size_t errlen)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = NULL;
	const char *cn = w->cfg.source.csr.common_name[0] ? w->cfg.source.csr.common_name : w->node;
	char san[EP_CFG_MAX_CERT_SAN * 270] = "";
	size_t o = 0;
	BIO *b = NULL;
	char *pem = NULL;

	for (size_t i = 0; i < w->cfg.expect.n_san; i++) {
		const char *v = w->cfg.expect.san[i];
		unsigned char buf[16];
		const char *kind = strstr(v, "://")			  ? "URI"
				   : inet_pton(AF_INET, v, buf) == 1 ||
					     inet_pton(AF_INET6, v, buf) == 1 ? "IP"
									      : "DNS";

		o += (size_t)snprintf(san + o, sizeof(san) - o, "%s%s:%s", o ? "," : "", kind, v);
	}
	if (!req || !X509_REQ_set_version(req, 0) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, pk))
		goto fail;
	if (san[0]) {
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);

		exts = sk_X509_EXTENSION_new_null();
		if (!ext || !exts || !sk_X509_EXTENSION_push(exts, ext)) {
			X509_EXTENSION_free(ext);
			goto fail;
		}
		if (!X509_REQ_add_extensions(req, exts))
			goto fail;
	}
	if (!X509_REQ_sign(req, pk, EVP_sha256()))
		goto fail;
	b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_X509_REQ(b, req))
		goto fail;
	pem = bio_string(b, NULL);
fail:
	if (!pem)
		snprintf(err, errlen, "cannot make the certificate request (SANs: %.300s)", san);
	BIO_free(b);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return pem;
}

static char *b64enc(const char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
	return out;
}

static char *b64dec(const char *in, size_t *len)
{
	size_t n = strlen(in), pad = 0;
	unsigned char *buf;
	int r;

	if (!n || n % 4 || !(buf = malloc(n / 4 * 3 + 1)))
		return NULL;
	r = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
	if (r < 0) {
		free(buf);
		return NULL;
	}
	while (pad < 2 && n > pad && in[n - 1 - pad] == '=')
		pad++;
	*len = (size_t)r - pad;
	buf[*len] = '\0';
	return (char *)buf;
}

/* POST the CSR; an AlreadyExists is our own from before a restart. */
static int create(struct ep_csr *w, const char *req_pem, char *err, size_t errlen)
{
	const struct ep_cfg_cert_csr *c = &w->cfg.source.csr;
	char *req = b64enc(req_pem, strlen(req_pem)), *body;
	json_t *o, *usages;
	long code;

	if (!req)
		return -1;
	usages = json_pack("[s, s]", "digital signature", "client auth");
	if (c->server_auth)
		json_array_append_new(usages, json_string("server auth"));
	o = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s, s:s, s:o}}", "apiVersion",
		      "certificates.k8s.io/v1", "kind", "CertificateSigningRequest", "metadata",
		      "name", w->name, "labels", "app.kubernetes.io/managed-by", "edgeplane",
		      "spec", "request", req, "signerName", c->signer_name, "usages", usages);
	free(req);
	if (o && c->expiration_seconds)
		json_object_set_new(json_object_get(o, "spec"), "expirationSeconds",
				    json_integer(c->expiration_seconds));
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -1;
	code = request(w, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", body,
		       err, errlen);
	free(body);
	return code == 201 || code == 200 || code == 409 ? 0 : -1;
}

int ep_csr_parse(const char *json, size_t len, const char *name, const char *signer, char **crt,
		 size_t *crt_len, int *outcome, char *err, size_t errlen)
{
	json_t *o = json_loadb(json, len, 0, NULL), *cond, *status;
	const char *cert;
	size_t i;
	int rc = 0;

	*crt = NULL;
	*crt_len = 0;
	*outcome = 0;
	if (!json_is_object(o)) {
		snprintf(err, errlen, "CSR %.200s: the answer is not a JSON object", name);
		json_decref(o);
		return -2;
	}
	status = json_object_get(o, "status");
	json_array_foreach(json_object_get(status, "conditions"), i, cond) {
		const char *t = json_string_value(json_object_get(cond, "type"));
		const char *reason = json_string_value(json_object_get(cond, "reason"));
		const char *msg = json_string_value(json_object_get(cond, "message"));

		if (!t || (strcmp(t, "Denied") && strcmp(t, "Failed")))
			continue;
		snprintf(err, errlen, "CSR %.200s for %.200s %s: %.100s: %.300s", name, signer,
			 !strcmp(t, "Denied") ? "denied" : "failed", reason ? reason : "no reason",
			 msg ? msg : "");
		*outcome = !strcmp(t, "Denied") ? 1 : 2;
		rc = -1;
		break;
	}
	cert = json_string_value(json_object_get(status, "certificate"));
	if (!rc && cert && cert[0]) {
		*crt = b64dec(cert, crt_len);
		if (*crt) {
			rc = 1;
		} else {
			snprintf(err, errlen, "CSR %.200s: status.certificate is not base64", name);
			rc = -1;
		}
	}
	json_decref(o);
	return rc;
}

/* 1: issued (*crt), 0: still pending, -1: denied or failed or gone (err
 * says), -2: the request failed (err). */
static int poll_once(struct ep_csr *w, char *err, size_t errlen, char **crt, size_t *crt_len)
{
	char path[400];
	long code;
	int rc, outcome;

	snprintf(path, sizeof(path), "/apis/certificates.k8s.io/v1/certificatesigningrequests/%s",
		 w->name);
	code = request(w, "GET", path, NULL, err, errlen);
	if (code == 404) {
		snprintf(err, errlen, "CSR %s is gone (deleted before it was issued)", w->name);
		return -1;
	}
	if (code != 200)
		return -2;
	rc = ep_csr_parse(w->body ? w->body : "", w->body_len, w->name,
			  w->cfg.source.csr.signer_name, crt, crt_len, &outcome, err, errlen);
	if (outcome) {
		pthread_mutex_lock(&w->mu);
		if (outcome == 1)
			w->denied++;
		else
			w->failed++;
		pthread_mutex_unlock(&w->mu);
	}
	return rc;
}

/* Waits for the loop's verdict on an issued set. */
static bool await_verdict(struct ep_csr *w, char *why, size_t whylen)
{
	bool ok;

	pthread_mutex_lock(&w->mu);
	while (!w->verdict && !stopping(w)) {
		struct timespec ts;

		/* Woken by the verdict; the timeout only to notice a stop. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	}
	ok = w->verdict && w->verdict_ok;
	snprintf(why, whylen, "%s", w->verdict_why);
	pthread_mutex_unlock(&w->mu);
	return ok;
}

/* One issuance: 0 installed, -1 failed (state says why). */
static int issue(struct ep_csr *w)
{
	char err[600] = "", *req = NULL, *crt = NULL, *keypem = NULL, why[512];
	bool resumed = false;
	uint64_t t0 = ep_now_ns(), t_created, t_issued;
	EVP_PKEY *pk = pending_key(w, &resumed, err, sizeof(err));
	size_t crt_len = 0, key_len = 0;
	BIO *b = NULL;
	int rc;

	if (!pk) {
		set_state(w, true, "cannot make the key: %s", err);
		return -1;
	}
	csr_name(w, pk);
	req = make_request(w, pk, err, sizeof(err));
	if (!req) {
		set_state(w, true, "%s", err);
		EVP_PKEY_free(pk);
		drop_pending(w);
		return -1;
	}
	if (resumed)
		log_info("certs %s: resuming CSR %s (its key was waiting in the target)", w->cfg.name,
			 w->name);
	if (create(w, req, err, sizeof(err))) {
		set_state(w, true, "cannot create CSR %s: %s; retrying", w->name, err);
		log_warn("certs %s: cannot create CSR %s: %s", w->cfg.name, w->name, err);
		free(req);
		EVP_PKEY_free(pk);
		return -2; /* keep the key: the same CSR is created on the next try */
	}
	free(req);
	t_created = ep_now_ns();
	set_state(w, false, "CSR %s created, waiting for %s to issue it", w->name,
		  w->cfg.source.csr.signer_name);
	log_info("certs %s: CSR %s created for signer %s", w->cfg.name, w->name,
		 w->cfg.source.csr.signer_name);
	rc = 0;
	while (!stopping(w) && !(rc = poll_once(w, err, sizeof(err), &crt, &crt_len))) {
		nap(w, POLL_MS);
	}
	while (rc == -2 && !stopping(w)) {
		set_state(w, false, "waiting for CSR %s: %s", w->name, err);
		nap(w, 1000);
		rc = 0;
		while (!stopping(w) && !(rc = poll_once(w, err, sizeof(err), &crt, &crt_len)))
			nap(w, POLL_MS);
	}
	if (stopping(w)) {
		free(crt);
		EVP_PKEY_free(pk);
		return -1;
	}
	if (rc < 0) {
		pthread_mutex_lock(&w->mu);
		w->said++;
		pthread_mutex_unlock(&w->mu);
		set_state(w, true, "%s", err);
		log_warn("certs %s: %s; the installed set stays", w->cfg.name, err);
		EVP_PKEY_free(pk);
		drop_pending(w);
		return -1;
	}
	t_issued = ep_now_ns();
	b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL) ||
	    !(keypem = bio_string(b, &key_len))) {
		BIO_free(b);
		free(crt);
		EVP_PKEY_free(pk);
		set_state(w, true, "out of memory");
		return -2;
	}
	BIO_free(b);
	EVP_PKEY_free(pk);
	pthread_mutex_lock(&w->mu);
	ep_cert_set_free(&w->issued);
	w->issued.data[EP_CERT_CRT] = crt;
	w->issued.len[EP_CERT_CRT] = crt_len;
	w->issued.data[EP_CERT_KEY] = keypem;
	w->issued.len[EP_CERT_KEY] = key_len;
	w->issued_ready = true;
	w->verdict = false;
	w->issued_n++;
	w->at_ns = ep_now_ns();
	snprintf(w->state, sizeof(w->state), "CSR %s issued; validating", w->name);
	pthread_mutex_unlock(&w->mu);
	wake(w);
	if (!await_verdict(w, why, sizeof(why))) {
		if (!stopping(w)) {
			set_state(w, true, "certificate issued for CSR %s refused: %s", w->name, why);
			drop_pending(w);
		}
		return -1;
	}
	drop_pending(w);
	set_state(w, false, "CSR %s issued and installed", w->name);
	{
		uint64_t t1 = ep_now_ns();

		/* What `make bench` reports: a renewal from the key to installed. */
		log_info("certs %s: CSR %s issued and installed in %.1f ms (key and request "
			 "%.1f ms, created -> issued %.1f ms, issued -> installed %.1f ms)%s",
			 w->cfg.name, w->name, (double)(t1 - t0) / 1e6,
			 (double)(t_created - t0) / 1e6, (double)(t_issued - t_created) / 1e6,
			 (double)(t1 - t_issued) / 1e6, resumed ? " (resumed)" : "");
	}
	return 0;
}

static void *run(void *arg)
{
	struct ep_csr *w = arg;
	unsigned backoff = BACKOFF_MIN_MS;

	while (!stopping(w)) {
		char path[PATH_MAX + 32];
		bool due, pending;
		double at;
		int rc;

		snprintf(path, sizeof(path), "%.4000s/%s", w->cfg.target, EP_CSR_PENDING_KEY);
		pending = access(path, F_OK) == 0;
		pthread_mutex_lock(&w->mu);
		at = w->renew_at;
		due = !w->have || ep_wall_seconds() >= at;
		pthread_mutex_unlock(&w->mu);
		if (!due && !pending) {
			nap(w, 200);
			continue;
		}
		rc = issue(w);
		if (rc == 0) {
			backoff = BACKOFF_MIN_MS;
			continue;
		}
		nap(w, backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

struct ep_csr *ep_csr_start(const struct ep_k8s_settings *k, const struct ep_cfg_cert *cfg,
			    const char *node, bool have, time_t nb, time_t na, int efd)
{
	struct ep_csr *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->k = *k;
	w->cfg = *cfg;
	snprintf(w->node, sizeof(w->node), "%s", node);
	w->efd = efd;
	w->have = have;
	w->nb = nb;
	w->na = na;
	plan(w, false);
	pthread_mutex_init(&w->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&w->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	snprintf(w->state, sizeof(w->state), "starting");
	w->curl = curl_easy_init();
	if (!w->curl || pthread_create(&w->th, NULL, run, w)) {
		log_error("certs %s: cannot start the CSR thread", cfg->name);
		if (w->curl)
			curl_easy_cleanup(w->curl);
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return NULL;
	}
	return w;
}

void ep_csr_stop(struct ep_csr *w)
{
	if (!w)
		return;
	__atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
	pthread_join(w->th, NULL);
	curl_easy_cleanup(w->curl);
	ep_cert_set_free(&w->issued);
	free(w->body);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int ep_csr_take(struct ep_csr *w, struct ep_cert_set *set, uint64_t *at_ns, char *err,
		size_t errlen)
{
	int rc = 1;

	memset(set, 0, sizeof(*set));
	pthread_mutex_lock(&w->mu);
	if (!w->issued_ready) {
		snprintf(err, errlen, "%s", w->state);
		rc = w->said != w->said_taken ? 2 : 0;
		w->said_taken = w->said;
	}
	for (int i = 0; rc == 1 && i < EP_CERT_NFILES; i++) {
		if (!w->issued.data[i])
			continue;
		set->data[i] = malloc(w->issued.len[i] + 1);
		if (!set->data[i]) {
			rc = -ENOMEM;
			break;
		}
		memcpy(set->data[i], w->issued.data[i], w->issued.len[i] + 1);
		set->len[i] = w->issued.len[i];
	}
	*at_ns = w->at_ns;
	pthread_mutex_unlock(&w->mu);
	if (rc < 0)
		ep_cert_set_free(set);
	return rc;
}

void ep_csr_verdict(struct ep_csr *w, bool installed, time_t nb, time_t na, const char *why)
{
	pthread_mutex_lock(&w->mu);
	if (w->issued_ready) {
		w->issued_ready = false;
		ep_cert_set_free(&w->issued);
		w->verdict = true;
		w->verdict_ok = installed;
		snprintf(w->verdict_why, sizeof(w->verdict_why), "%s", why ? why : "");
		pthread_cond_signal(&w->cv);
	}
	if (installed) {
		w->have = true;
		w->nb = nb;
		w->na = na;
		plan(w, true);
	}
	pthread_mutex_unlock(&w->mu);
}

double ep_csr_next_renewal(struct ep_csr *w)
{
	double t;

	pthread_mutex_lock(&w->mu);
	t = w->have ? w->renew_at : 0;
	pthread_mutex_unlock(&w->mu);
	return t;
}

json_t *ep_csr_status(struct ep_csr *w)
{
	json_t *o;

	pthread_mutex_lock(&w->mu);
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "name", w->name, "signer_name",
		      w->cfg.source.csr.signer_name, "state", w->state, "requests",
		      (json_int_t)w->requests, "issued", (json_int_t)w->issued_n, "denied",
		      (json_int_t)w->denied, "failed", (json_int_t)w->failed);
	pthread_mutex_unlock(&w->mu);
	return o;
}
