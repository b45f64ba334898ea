/*
 * DNSSEC keys and signed RRsets made with ldns at test time, for the tests of
 * the validators (test_dnssec_check.c, test_cache_fallback_dnssec.c): one
 * place that knows how a key ldns can sign with is set up, so both test the
 * same kind of key (ECDSA P-256, as ldns-keygen makes it).
 */
#ifndef EP_TEST_DNSSEC_KEYS_H
#define EP_TEST_DNSSEC_KEYS_H

#include <stdint.h>
#include <time.h>

#include <ldns/ldns.h>

struct test_key {
	ldns_key *k;
	ldns_key_list *kl; /* owns k (ldns_key_list_free frees its keys) */
	ldns_rr *rr;	   /* the DNSKEY record */
};

/* A new key of zone OWNER with FLAGS (256 ZSK, 257 KSK); all NULL when ldns
 * could not make one. */
struct test_key test_key_new(const char *owner, uint16_t flags);
void test_key_free(struct test_key *key);

/* RRSIGs over SET by KEY, valid from INCEPTION to EXPIRATION (0: an hour
 * before NOW, as signers backdate, and the ldns default, 4 weeks from now). */
ldns_rr_list *test_key_sign(struct test_key *key, ldns_rr_list *set, time_t now, uint32_t inception,
			    uint32_t expiration);

/* One record from its text (default TTL 300); NULL, said as a TAP
 * diagnostic, when the text is bad. */
ldns_rr *test_rr(const char *text);

#endif
