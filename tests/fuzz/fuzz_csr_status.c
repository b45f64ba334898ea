/*
 * libFuzzer target: what the csr source of certificate sync reads from the
 * API server, a CertificateSigningRequest object (agent/certs/cert_csr.c,
 * ep_csr_parse): conditions (Denied/Failed with reason and message) and
 * status.certificate (base64 PEM), which then goes to the validation path
 * (its serial is read here as the loop would). Seeds in
 * tests/fuzz/corpus/csr_status/: pending, approved and issued, denied, failed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cert_check.h"
#include "cert_csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[700], serial[EP_CERT_SERIAL_MAX], *crt = NULL;
	size_t len = 0;
	int outcome = 0, rc;

	if (size > (256 << 10))
		return 0;
	rc = ep_csr_parse((const char *)data, size, "edgeplane-n-set-0011223344556677",
			  "example.com/edge-mtls", &crt, &len, &outcome, err, sizeof(err));
	if (rc == 1) {
		if (!crt || strlen(crt) > len)
			abort();
		ep_cert_pem_serial(crt, len, serial, sizeof(serial));
	} else if (crt) {
		abort(); /* only an issued certificate is handed out */
	}
	if (rc == -1 && !outcome && !strstr(err, "base64"))
		abort(); /* a refusal always says which */
	free(crt);
	return 0;
}
