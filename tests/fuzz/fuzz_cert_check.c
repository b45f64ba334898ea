/*
 * libFuzzer target: the certificate validation path of certificate sync
 * (agent/certs/cert_check.c). The input is up to three parts separated by
 * a 0x01 byte (which PEM text never holds): tls.crt, tls.key and the CA
 * bundle, validated as a set; the whole input is also validated as a trust
 * bundle and as a PEM for its serial. Seeds in tests/fuzz/corpus/cert_check/
 * are a valid set (leaf, key, CA) and variations of it, so mutations start
 * from inputs that reach the chain and name checks.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cert_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *part[3] = {NULL, NULL, NULL};
	size_t len[3] = {0, 0, 0}, n = 0, start = 0;
	struct ep_cert_policy p = {.now = 1796187723, /* within the seeds' validity */ .skew_s = 60, .max_bytes = 64 << 10,
				   .san = {"payments.edge.example", "spiffe://edge.example/x"},
				   .n_san = 1};
	struct ep_cert_info info;
	char err[512], serial[EP_CERT_SERIAL_MAX];

	if (size > (192 << 10))
		return 0;
	for (size_t i = 0; i <= size && n < 3; i++) {
		if (i == size || data[i] == 0x01) {
			part[n] = data + start;
			len[n] = i - start;
			n++;
			start = i + 1;
		}
	}
	if (size && (data[0] & 0x80))
		p.n_san = 2;
	ep_cert_check(part[0], len[0], part[1], len[1], part[2], len[2], &p, &info, err,
		      sizeof(err));
	ep_cert_check_bundle(data, size, &p, &info, err, sizeof(err));
	ep_cert_pem_serial(data, size, serial, sizeof(serial));
	return 0;
}
