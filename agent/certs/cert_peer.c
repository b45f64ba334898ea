/*
 * The verify step of a reload: connect to the consumer's TLS listener and
 * read the serial of the certificate it serves. The handshake presents the
 * newly installed set as client certificate, so an mTLS listener that
 * requires one still gets as far as sending its own. The server's
 * certificate is not verified here (the agent just validated it); only its
 * serial matters.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "certs.h"

static int dial(const char *hostport, int timeout_ms, char *err, size_t errlen)
{
	char host[128], *colon;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	int fd = -1, rc;

	snprintf(host, sizeof(host), "%s", hostport);
	colon = strrchr(host, ':');
	if (!colon) {
		snprintf(err, errlen, "%s: not HOST:PORT", hostport);
		return -EINVAL;
	}
	*colon = '\0';
	if (host[0] == '[' && colon[-1] == ']') {
		colon[-1] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	/* Numeric only: a name lookup would block the loop on a resolver. */
	hints.ai_flags |= AI_NUMERICHOST;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc || !res) {
		snprintf(err, errlen, "%s: %s", hostport, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, res->ai_addr, res->ai_addrlen)) {
		rc = -errno;
		close(fd);
		fd = -1;
		goto out;
	}
	rc = 0;
out:
	if (rc)
		snprintf(err, errlen, "connecting to %s: %s", hostport, strerror(-rc));
	freeaddrinfo(res);
	return fd >= 0 ? fd : rc;
}

int ep_cert_peer_serial(const char *hostport, const char *cert_file, const char *key_file,
			int timeout_ms, char *serial, size_t serlen, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	X509 *peer = NULL;
	int fd = -1, rc = -EIO;

	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (cert_file && key_file &&
	    (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1))
		ERR_clear_error(); /* no client certificate then; the server decides */
	fd = dial(hostport, timeout_ms, err, errlen);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* A failed handshake (an mTLS listener refusing the client) has still
	 * shown the server's certificate. */
	SSL_connect(ssl);
	peer = SSL_get1_peer_certificate(ssl);
	if (!peer) {
		snprintf(err, errlen, "TLS handshake with %s showed no certificate", hostport);
		goto out;
	}
	{
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), NULL);
		char *h = bn ? BN_bn2hex(bn) : NULL;

		snprintf(serial, serlen, "%s", h ? h : "?");
		OPENSSL_free(h);
		BN_free(bn);
	}
	rc = 0;
out:
	ERR_clear_error();
	X509_free(peer);
	if (ssl) {
		SSL_set_quiet_shutdown(ssl, 1);
		SSL_free(ssl);
	}
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	return rc;
}
