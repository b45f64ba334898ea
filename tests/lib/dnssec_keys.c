/* See dnssec_keys.h. */
#include "dnssec_keys.h"
#include "tap.h"

struct test_key test_key_new(const char *owner, uint16_t flags)
{
	struct test_key x = {};

	x.k = ldns_key_new_frm_algorithm(LDNS_SIGN_ECDSAP256SHA256, 256);
	if (!x.k)
		return x;
	ldns_key_set_pubkey_owner(x.k, ldns_dname_new_frm_str(owner));
	ldns_key_set_flags(x.k, flags);
	x.rr = ldns_key2rr(x.k);
	ldns_rr_set_ttl(x.rr, 3600);
	ldns_key_set_keytag(x.k, ldns_calc_keytag(x.rr));
	x.kl = ldns_key_list_new();
	ldns_key_list_push_key(x.kl, x.k);
	return x;
}

void test_key_free(struct test_key *key)
{
	ldns_key_list_free(key->kl);
	ldns_rr_free(key->rr);
}

ldns_rr_list *test_key_sign(struct test_key *key, ldns_rr_list *set, time_t now, uint32_t inception,
			    uint32_t expiration)
{
	ldns_rr_list *sigs;

	ldns_key_set_inception(key->k, inception ? inception : (uint32_t)(now - 3600));
	ldns_key_set_expiration(key->k, expiration);
	sigs = ldns_sign_public(set, key->kl);
	/* the key is reused: the next signature must not inherit this validity */
	ldns_key_set_inception(key->k, 0);
	ldns_key_set_expiration(key->k, 0);
	return sigs;
}

ldns_rr *test_rr(const char *text)
{
	ldns_rr *r = NULL;

	if (ldns_rr_new_frm_str(&r, text, 300, NULL, NULL) != LDNS_STATUS_OK)
		tap_diag("bad test record: %s", text);
	return r;
}
