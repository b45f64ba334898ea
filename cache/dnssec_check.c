#include "dnssec_check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dns_query.h"

struct ep_dnssec_anchor {
	ldns_rdf *zone;	   /* owner of every anchor record */
	char zone_str[300];
	ldns_rr_list *rrs; /* the DS and DNSKEY anchor records */
};

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

static void name_str(const ldns_rdf *d, char *out, size_t len)
{
	char *s = d ? ldns_rdf2str(d) : NULL;

	snprintf(out, len, "%s", s ? s : "?");
	free(s);
}

static const char *type_str(uint16_t t, char *buf, size_t len)
{
	switch (t) {
	case LDNS_RR_TYPE_A: return "A";
	case LDNS_RR_TYPE_AAAA: return "AAAA";
	case LDNS_RR_TYPE_CNAME: return "CNAME";
	case LDNS_RR_TYPE_DNSKEY: return "DNSKEY";
	case LDNS_RR_TYPE_DS: return "DS";
	}
	snprintf(buf, len, "TYPE%u", t);
	return buf;
}

/* Algorithms ldns verifies (RFC 8624 "MUST"/"RECOMMENDED" ones and RSASHA1). */
static bool algo_known(uint8_t alg)
{
	switch (alg) {
	case LDNS_RSASHA1:
	case LDNS_RSASHA1_NSEC3:
	case LDNS_RSASHA256:
	case LDNS_RSASHA512:
	case LDNS_ECDSAP256SHA256:
	case LDNS_ECDSAP384SHA384:
	case LDNS_ED25519:
	case LDNS_ED448:
		return true;
	}
	return false;
}

static size_t digest_len(uint8_t type)
{
	switch (type) {
	case LDNS_SHA1: return 20;
	case LDNS_SHA256: return 32;
	case LDNS_SHA384: return 48;
	}
	return 0; /* GOST and unknown digests: not supported */
}

static bool same_name(const ldns_rdf *a, const ldns_rdf *b)
{
	return a && b && ldns_rdf_get_type(a) == LDNS_RDF_TYPE_DNAME &&
	       ldns_rdf_get_type(b) == LDNS_RDF_TYPE_DNAME && ldns_dname_compare(a, b) == 0;
}

static bool under(const ldns_rdf *name, const ldns_rdf *zone)
{
	return same_name(name, zone) ||
	       (name && ldns_rdf_get_type(name) == LDNS_RDF_TYPE_DNAME &&
		ldns_dname_is_subdomain(name, zone));
}

static uint16_t key_flags(const ldns_rr *k)
{
	return ldns_rr_rd_count(k) >= 4 ? ldns_rdf2native_int16(ldns_rr_rdf(k, 0)) : 0;
}

/* A DNSKEY that may sign the zone: zone flag, protocol 3, not revoked. */
static bool zone_key(const ldns_rr *k)
{
	uint16_t f;

	if (ldns_rr_get_type(k) != LDNS_RR_TYPE_DNSKEY || ldns_rr_rd_count(k) != 4)
		return false;
	f = key_flags(k);
	return (f & LDNS_KEY_ZONE_KEY) && !(f & LDNS_KEY_REVOKE_KEY) &&
	       ldns_rdf2native_int8(ldns_rr_rdf(k, 1)) == 3;
}

/* ---- the anchor file ------------------------------------------------------ */

/* 0: an anchor; 1: a revoked key, skipped (RFC 5011 files keep them for a
 * while); -EINVAL: not usable, *what says why. */
static int check_anchor_rr(const ldns_rr *rr, char *what, size_t len)
{
	char tb[16];

	if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) {
		snprintf(what, len, "a record of class %u; anchors are class IN",
			 (unsigned)ldns_rr_get_class(rr));
		return -EINVAL;
	}
	switch (ldns_rr_get_type(rr)) {
	case LDNS_RR_TYPE_DS:
		if (ldns_rr_rd_count(rr) != 4) {
			snprintf(what, len, "a DS record without its 4 fields");
			return -EINVAL;
		}
		if (!algo_known(ldns_rdf2native_int8(ldns_rr_rdf(rr, 1)))) {
			snprintf(what, len, "a DS record for key algorithm %u, which cannot be validated",
				 ldns_rdf2native_int8(ldns_rr_rdf(rr, 1)));
			return -EINVAL;
		}
		if (!digest_len(ldns_rdf2native_int8(ldns_rr_rdf(rr, 2)))) {
			snprintf(what, len,
				 "a DS record with digest type %u; supported: 1 (SHA-1), 2 (SHA-256), 4 (SHA-384)",
				 ldns_rdf2native_int8(ldns_rr_rdf(rr, 2)));
			return -EINVAL;
		}
		if (ldns_rdf_size(ldns_rr_rdf(rr, 3)) != digest_len(ldns_rdf2native_int8(ldns_rr_rdf(rr, 2)))) {
			snprintf(what, len, "a DS record whose digest has the wrong length");
			return -EINVAL;
		}
		return 0;
	case LDNS_RR_TYPE_DNSKEY:
		if (ldns_rr_rd_count(rr) == 4 && (key_flags(rr) & LDNS_KEY_REVOKE_KEY))
			return 1;
		if (!zone_key(rr)) {
			snprintf(what, len,
				 "a DNSKEY record that is not a zone key (flags %u: the zone bit 256 must be "
				 "set, protocol 3)", key_flags(rr));
			return -EINVAL;
		}
		if (!algo_known(ldns_rdf2native_int8(ldns_rr_rdf(rr, 2)))) {
			snprintf(what, len, "a DNSKEY record of algorithm %u, which cannot be validated",
				 ldns_rdf2native_int8(ldns_rr_rdf(rr, 2)));
			return -EINVAL;
		}
		return 0;
	default:
		snprintf(what, len, "a %s record; a trust anchor file holds DS or DNSKEY records",
			 type_str(ldns_rr_get_type(rr), tb, sizeof(tb)));
		return -EINVAL;
	}
}

int ep_dnssec_anchor_load(const char *path, struct ep_dnssec_anchor **out, char *err,
			  size_t errlen)
{
	struct ep_dnssec_anchor *a = NULL;
	ldns_rdf *origin = NULL, *prev = NULL;
	uint32_t ttl = 3600;
	int line = 0, rc = 0;
	struct stat st;
	char what[200];
	FILE *fp;

	*out = NULL;
	fp = fopen(path, "re");
	if (!fp) {
		rc = -errno;
		say(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) {
		say(err, errlen, "%s: not a regular file", path);
		fclose(fp);
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a || !(a->rrs = ldns_rr_list_new())) {
		say(err, errlen, "%s: out of memory", path);
		rc = -ENOMEM;
		goto fail;
	}
	while (!feof(fp) && !ferror(fp)) {
		/* ldns counts the newlines it consumed, which may include blank
		 * lines after the record: the record starts on the next line. */
		int at = line + 1;
		ldns_rr *rr = NULL;
		ldns_status s = ldns_rr_new_frm_fp_l(&rr, fp, &ttl, &origin, &prev, &line);

		if (s == LDNS_STATUS_SYNTAX_EMPTY || s == LDNS_STATUS_SYNTAX_TTL ||
		    s == LDNS_STATUS_SYNTAX_ORIGIN)
			continue;
		if (s == LDNS_STATUS_SYNTAX_INCLUDE) {
			say(err, errlen, "%s:%d: $INCLUDE is not supported", path, at);
			rc = -EINVAL;
			goto fail;
		}
		if (s != LDNS_STATUS_OK) {
			say(err, errlen, "%s:%d: not a DS or DNSKEY record (%s)", path, at,
			    ldns_get_errorstr_by_id(s));
			rc = -EINVAL;
			goto fail;
		}
		rc = check_anchor_rr(rr, what, sizeof(what));
		if (rc > 0) {
			ldns_rr_free(rr);
			rc = 0;
			continue;
		}
		if (rc) {
			say(err, errlen, "%s:%d: %s", path, at, what);
			ldns_rr_free(rr);
			goto fail;
		}
		if (!a->zone) {
			a->zone = ldns_rdf_clone(ldns_rr_owner(rr));
			if (!a->zone) {
				ldns_rr_free(rr);
				rc = -ENOMEM;
				say(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			ldns_dname2canonical(a->zone);
		} else if (!same_name(a->zone, ldns_rr_owner(rr))) {
			char z2[300];

			name_str(a->zone, a->zone_str, sizeof(a->zone_str));
			name_str(ldns_rr_owner(rr), z2, sizeof(z2));
			say(err, errlen,
			    "%s:%d: records for %s and %s; one zone per anchor file is supported",
			    path, at, a->zone_str, z2);
			ldns_rr_free(rr);
			rc = -EINVAL;
			goto fail;
		}
		if (ldns_rr_list_rr_count(a->rrs) >= EP_DNSSEC_MAX_ANCHORS) {
			say(err, errlen, "%s:%d: more than %d records", path, at,
			    EP_DNSSEC_MAX_ANCHORS);
			ldns_rr_free(rr);
			rc = -EINVAL;
			goto fail;
		}
		if (!ldns_rr_list_push_rr(a->rrs, rr)) {
			ldns_rr_free(rr);
			say(err, errlen, "%s: out of memory", path);
			rc = -ENOMEM;
			goto fail;
		}
	}
	if (ferror(fp)) {
		say(err, errlen, "%s: read error", path);
		rc = -EIO;
		goto fail;
	}
	if (!ldns_rr_list_rr_count(a->rrs)) {
		say(err, errlen, "%s: no usable DS or DNSKEY record in the file", path);
		rc = -EINVAL;
		goto fail;
	}
	name_str(a->zone, a->zone_str, sizeof(a->zone_str));
	ldns_rdf_deep_free(origin);
	ldns_rdf_deep_free(prev);
	fclose(fp);
	*out = a;
	return 0;
fail:
	ldns_rdf_deep_free(origin);
	ldns_rdf_deep_free(prev);
	fclose(fp);
	ep_dnssec_anchor_free(a);
	return rc;
}

void ep_dnssec_anchor_free(struct ep_dnssec_anchor *a)
{
	if (!a)
		return;
	ldns_rr_list_deep_free(a->rrs);
	ldns_rdf_deep_free(a->zone);
	free(a);
}

const char *ep_dnssec_anchor_zone(const struct ep_dnssec_anchor *a)
{
	return a->zone_str;
}

size_t ep_dnssec_anchor_count(const struct ep_dnssec_anchor *a)
{
	return ldns_rr_list_rr_count(a->rrs);
}

bool ep_dnssec_in_zone(const struct ep_dnssec_anchor *a, const char *name)
{
	ldns_rdf *d = ldns_dname_new_frm_str(name);
	bool in = d && under(d, a->zone);

	ldns_rdf_deep_free(d);
	return in;
}

/* ---- matching keys to the anchor ------------------------------------------ */

static bool ds_matches(const ldns_rr *key, const ldns_rr *ds)
{
	uint8_t dt = ldns_rdf2native_int8(ldns_rr_rdf(ds, 2));
	ldns_rr *c, *mine;
	bool eq = false;

	if (!digest_len(dt) || ldns_rdf2native_int16(ldns_rr_rdf(ds, 0)) != ldns_calc_keytag(key) ||
	    ldns_rdf2native_int8(ldns_rr_rdf(ds, 1)) != ldns_rdf2native_int8(ldns_rr_rdf(key, 2)))
		return false;
	/* The digest covers the canonical (lower case) owner name. */
	c = ldns_rr_clone(key);
	if (!c)
		return false;
	ldns_rr2canonical(c);
	mine = ldns_key_rr2ds(c, (ldns_hash)dt);
	if (mine && ldns_rr_rd_count(mine) == 4)
		eq = ldns_rdf_compare(ldns_rr_rdf(mine, 3), ldns_rr_rdf(ds, 3)) == 0;
	ldns_rr_free(mine);
	ldns_rr_free(c);
	return eq;
}

static bool dnskey_equal(const ldns_rr *key, const ldns_rr *anchor)
{
	if (ldns_rr_rd_count(key) != ldns_rr_rd_count(anchor))
		return false;
	for (size_t i = 0; i < ldns_rr_rd_count(key); i++)
		if (ldns_rdf_compare(ldns_rr_rdf(key, i), ldns_rr_rdf(anchor, i)) != 0)
			return false;
	return true;
}

static bool anchored(const struct ep_dnssec_anchor *a, const ldns_rr *key)
{
	for (size_t i = 0; i < ldns_rr_list_rr_count(a->rrs); i++) {
		const ldns_rr *t = ldns_rr_list_rr(a->rrs, i);

		if (ldns_rr_get_type(t) == LDNS_RR_TYPE_DS ? ds_matches(key, t) : dnskey_equal(key, t))
			return true;
	}
	return false;
}

/* ---- RRsets and their signatures ------------------------------------------ */

/* Shallow lists of the answer's records of OWNER/TYPE/IN and of the RRSIGs
 * covering them. */
static int collect(const ldns_rr_list *ans, const ldns_rdf *owner, uint16_t type,
		   ldns_rr_list **set, ldns_rr_list **sigs)
{
	*set = ldns_rr_list_new();
	*sigs = ldns_rr_list_new();
	if (!*set || !*sigs)
		goto nomem;
	for (size_t i = 0; ans && i < ldns_rr_list_rr_count(ans); i++) {
		ldns_rr *rr = ldns_rr_list_rr(ans, i);
		ldns_rr_type t = ldns_rr_get_type(rr);

		if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !same_name(ldns_rr_owner(rr), owner))
			continue;
		if (t == type) {
			if (!ldns_rr_list_push_rr(*set, rr))
				goto nomem;
		} else if (t == LDNS_RR_TYPE_RRSIG && ldns_rr_rd_count(rr) == 9 &&
			   ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(rr)) == type) {
			if (!ldns_rr_list_push_rr(*sigs, rr))
				goto nomem;
		}
	}
	return 0;
nomem:
	ldns_rr_list_free(*set);
	ldns_rr_list_free(*sigs);
	*set = *sigs = NULL;
	return -ENOMEM;
}

/* Checks ldns leaves to the caller: the signer is the anchored zone and the
 * label count fits the owner (RFC 4035 5.3.1). */
static bool sig_usable(const struct ep_dnssec_anchor *a, const ldns_rr *sig, const ldns_rdf *owner,
		       char *why, size_t len)
{
	char s[300];

	if (!same_name(ldns_rr_rrsig_signame(sig), a->zone)) {
		name_str(ldns_rr_rrsig_signame(sig), s, sizeof(s));
		say(why, len, "signed by %s, not by the anchored zone %s", s, a->zone_str);
		return false;
	}
	if (ldns_rdf2native_int8(ldns_rr_rrsig_labels(sig)) > ldns_dname_label_count(owner)) {
		say(why, len, "RRSIG label count larger than the owner's");
		return false;
	}
	return true;
}

static uint32_t sig_expiration(const ldns_rr *sig)
{
	return ldns_rdf2native_int32(ldns_rr_rrsig_expiration(sig));
}

/* The validity window, in serial number arithmetic (RFC 4034 3.1.5) like
 * ldns. A signature incepted up to EP_DNSSEC_SKEW_S in our future is
 * accepted: signers stamp fresh signatures with their own "now". */
static ldns_status sig_times(const ldns_rr *sig, time_t now)
{
	int32_t inception = (int32_t)ldns_rdf2native_int32(ldns_rr_rrsig_inception(sig));
	int32_t expiration = (int32_t)sig_expiration(sig);
	int32_t t = (int32_t)(uint32_t)now;

	if (expiration - inception < 0)
		return LDNS_STATUS_CRYPTO_EXPIRATION_BEFORE_INCEPTION;
	if ((int32_t)((uint32_t)t + EP_DNSSEC_SKEW_S) - inception < 0)
		return LDNS_STATUS_CRYPTO_SIG_NOT_INCEPTED;
	if (expiration - t < 0)
		return LDNS_STATUS_CRYPTO_SIG_EXPIRED;
	return LDNS_STATUS_OK;
}

/* Verifies SET with one of SIGS by one of KEYS at NOW. On success *best_exp is
 * the expiration of the earliest-expiring good signature. */
static enum ep_dnssec_verdict verify_set(const struct ep_dnssec_anchor *a, const ldns_rr_list *set,
					 const ldns_rr_list *sigs, const ldns_rr_list *keys,
					 time_t now, uint32_t *best_exp, uint32_t *sig_ttl,
					 char *why, size_t len)
{
	const ldns_rdf *owner = ldns_rr_owner(ldns_rr_list_rr(set, 0));
	bool good = false;

	say(why, len, "no RRSIG");
	for (size_t i = 0; i < ldns_rr_list_rr_count(sigs); i++) {
		const ldns_rr *sig = ldns_rr_list_rr(sigs, i);
		ldns_status st;

		if (!sig_usable(a, sig, owner, why, len))
			continue;
		st = ldns_verify_rrsig_keylist_notime(set, sig, keys, NULL);
		if (st == LDNS_STATUS_OK)
			st = sig_times(sig, now);
		if (st != LDNS_STATUS_OK) {
			say(why, len, "%s (RRSIG key tag %u)", ldns_get_errorstr_by_id(st),
			    ldns_rdf2native_int16(ldns_rr_rrsig_keytag(sig)));
			continue;
		}
		/* Serial arithmetic, as ldns checks it: the earliest of the good ones. */
		if (!good || (int32_t)(sig_expiration(sig) - *best_exp) < 0) {
			*best_exp = sig_expiration(sig);
			if (sig_ttl)
				*sig_ttl = ldns_rdf2native_int32(ldns_rr_rrsig_origttl(sig));
		}
		good = true;
	}
	return good ? EP_DNSSEC_SECURE : EP_DNSSEC_BOGUS;
}

/* ---- the zone's keys ------------------------------------------------------ */

static void keytags(const ldns_rr_list *l, bool (*want)(const ldns_rr *), char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; l && i < ldns_rr_list_rr_count(l) && n + 8 < len; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(l, i);
		int w;

		if (want && !want(rr))
			continue;
		w = snprintf(out + n, len - n, "%s%u", n ? " " : "",
			     ldns_rr_get_type(rr) == LDNS_RR_TYPE_DS
				     ? ldns_rdf2native_int16(ldns_rr_rdf(rr, 0))
				     : ldns_calc_keytag(rr));
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
	if (!n)
		snprintf(out, len, "none");
}

enum ep_dnssec_verdict ep_dnssec_check_dnskey(const struct ep_dnssec_anchor *a,
					      const ldns_pkt *reply, time_t now,
					      struct ep_dnssec_keys *out, char *why, size_t whylen)
{
	ldns_rr_list *set = NULL, *sigs = NULL, *trusted = NULL;
	enum ep_dnssec_verdict v = EP_DNSSEC_BOGUS;
	uint32_t exp = 0, sig_ttl = 0, ttl = UINT32_MAX;
	char e[200];

	memset(out, 0, sizeof(*out));
	if (ldns_pkt_get_rcode(reply) != LDNS_RCODE_NOERROR) {
		say(why, whylen, "rcode %d for %s DNSKEY", (int)ldns_pkt_get_rcode(reply), a->zone_str);
		return EP_DNSSEC_BOGUS;
	}
	if (collect(ldns_pkt_answer(reply), a->zone, LDNS_RR_TYPE_DNSKEY, &set, &sigs) ||
	    !(trusted = ldns_rr_list_new())) {
		v = EP_DNSSEC_ERROR;
		say(why, whylen, "out of memory");
		goto out;
	}
	if (!ldns_rr_list_rr_count(set)) {
		say(why, whylen, "no DNSKEY records for %s in the answer", a->zone_str);
		goto out;
	}
	for (size_t i = 0; i < ldns_rr_list_rr_count(set); i++) {
		ldns_rr *k = ldns_rr_list_rr(set, i);

		ttl = ldns_rr_ttl(k) < ttl ? ldns_rr_ttl(k) : ttl;
		if (zone_key(k) && anchored(a, k) && !ldns_rr_list_push_rr(trusted, k)) {
			v = EP_DNSSEC_ERROR;
			say(why, whylen, "out of memory");
			goto out;
		}
	}
	if (!ldns_rr_list_rr_count(trusted)) {
		char got[120], want[120];

		keytags(set, NULL, got, sizeof(got));
		keytags(a->rrs, NULL, want, sizeof(want));
		say(why, whylen, "no DNSKEY of %s matches the trust anchor (key tags served: %s; anchored: %s)",
		    a->zone_str, got, want);
		goto out;
	}
	if (!ldns_rr_list_rr_count(sigs)) {
		say(why, whylen, "the DNSKEY RRset of %s has no RRSIG", a->zone_str);
		goto out;
	}
	v = verify_set(a, set, sigs, trusted, now, &exp, &sig_ttl, e, sizeof(e));
	if (v != EP_DNSSEC_SECURE) {
		say(why, whylen, "DNSKEY RRset of %s not signed by an anchored key: %s", a->zone_str, e);
		goto out;
	}
	/* Every zone key of the validated RRset may sign the zone's data. */
	out->keys = ldns_rr_list_new();
	for (size_t i = 0; out->keys && i < ldns_rr_list_rr_count(set); i++) {
		ldns_rr *k = ldns_rr_list_rr(set, i), *c;

		if (!zone_key(k))
			continue;
		c = ldns_rr_clone(k);
		if (!c || !ldns_rr_list_push_rr(out->keys, c)) {
			ldns_rr_free(c);
			ep_dnssec_keys_free(out);
			break;
		}
	}
	if (!out->keys) {
		v = EP_DNSSEC_ERROR;
		say(why, whylen, "out of memory");
		goto out;
	}
	{
		int64_t left = (int32_t)(exp - (uint32_t)now); /* >= 0: sig_times checked it */
		uint64_t r = ttl < sig_ttl ? ttl : sig_ttl;

		if (left < 1)
			left = 1;
		if (r > EP_DNSSEC_KEYS_MAX_S)
			r = EP_DNSSEC_KEYS_MAX_S;
		if (r < EP_DNSSEC_KEYS_MIN_S)
			r = EP_DNSSEC_KEYS_MIN_S;
		if (r > (uint64_t)left)
			r = (uint64_t)left;
		out->refresh_s = (uint32_t)r;
		out->expire_s = (uint32_t)left;
	}
	say(why, whylen, "%zu key(s) of %s validated", ldns_rr_list_rr_count(out->keys), a->zone_str);
out:
	ldns_rr_list_free(set);
	ldns_rr_list_free(sigs);
	ldns_rr_list_free(trusted);
	return v;
}

void ep_dnssec_keys_free(struct ep_dnssec_keys *k)
{
	ldns_rr_list_deep_free(k->keys);
	memset(k, 0, sizeof(*k));
}

/* ---- answers -------------------------------------------------------------- */

static enum ep_dnssec_verdict check_set(const struct ep_dnssec_anchor *a, const ldns_rr_list *keys,
					const ldns_rr_list *set, const ldns_rr_list *sigs,
					const ldns_rdf *owner, uint16_t type, time_t now, char *why,
					size_t whylen)
{
	enum ep_dnssec_verdict v;
	char o[300], tb[16], e[200];
	uint32_t exp = 0;

	name_str(owner, o, sizeof(o));
	if (!ldns_rr_list_rr_count(sigs)) {
		say(why, whylen, "%s %s has no RRSIG (signatures stripped?)", o,
		    type_str(type, tb, sizeof(tb)));
		return EP_DNSSEC_BOGUS;
	}
	v = verify_set(a, set, sigs, keys, now, &exp, NULL, e, sizeof(e));
	if (v != EP_DNSSEC_SECURE)
		say(why, whylen, "%s %s: %s", o, type_str(type, tb, sizeof(tb)), e);
	return v;
}

enum ep_dnssec_verdict ep_dnssec_check_answer(const struct ep_dnssec_anchor *a,
					      const ldns_rr_list *keys, const ldns_pkt *reply,
					      const char *qname, uint16_t qtype, time_t now,
					      char *why, size_t whylen)
{
	const ldns_rr_list *ans = ldns_pkt_answer(reply);
	enum ep_dnssec_verdict v = EP_DNSSEC_NO_DATA;
	ldns_rdf *start = ldns_dname_new_frm_str(qname);
	const ldns_rdf *cur = start;
	char tb[16];

	if (!start) {
		say(why, whylen, "not a name: %s", qname);
		return EP_DNSSEC_ERROR;
	}
	if (!under(start, a->zone)) {
		say(why, whylen, "%s is outside the anchored zone %s", qname, a->zone_str);
		v = EP_DNSSEC_INSECURE;
		goto out;
	}
	if (ldns_pkt_get_rcode(reply) != LDNS_RCODE_NOERROR) {
		say(why, whylen, "rcode %d: nothing to validate", (int)ldns_pkt_get_rcode(reply));
		goto out;
	}
	if (!keys || !ldns_rr_list_rr_count(keys)) {
		say(why, whylen, "no validated DNSKEY of %s", a->zone_str);
		v = EP_DNSSEC_BOGUS;
		goto out;
	}
	for (unsigned steps = 0; steps <= EP_DNSQ_MAX_CHAIN; steps++) {
		ldns_rr_list *set, *sigs;
		const ldns_rdf *next = NULL;

		if (!under(cur, a->zone)) {
			char c[300];

			name_str(cur, c, sizeof(c));
			say(why, whylen, "CNAME chain leaves %s at %s: the rest is not validated",
			    a->zone_str, c);
			v = EP_DNSSEC_INSECURE;
			goto out;
		}
		if (collect(ans, cur, qtype, &set, &sigs)) {
			v = EP_DNSSEC_ERROR;
			goto out;
		}
		if (ldns_rr_list_rr_count(set)) {
			v = check_set(a, keys, set, sigs, cur, qtype, now, why, whylen);
			ldns_rr_list_free(set);
			ldns_rr_list_free(sigs);
			goto out;
		}
		ldns_rr_list_free(set);
		ldns_rr_list_free(sigs);
		if (collect(ans, cur, LDNS_RR_TYPE_CNAME, &set, &sigs)) {
			v = EP_DNSSEC_ERROR;
			goto out;
		}
		if (ldns_rr_list_rr_count(set)) {
			v = check_set(a, keys, set, sigs, cur, LDNS_RR_TYPE_CNAME, now, why, whylen);
			if (v == EP_DNSSEC_SECURE && ldns_rr_rd_count(ldns_rr_list_rr(set, 0)) == 1)
				next = ldns_rr_rdf(ldns_rr_list_rr(set, 0), 0);
		}
		ldns_rr_list_free(set);
		ldns_rr_list_free(sigs);
		if (v != EP_DNSSEC_NO_DATA && v != EP_DNSSEC_SECURE)
			goto out; /* a bad CNAME */
		if (!next || ldns_rdf_get_type(next) != LDNS_RDF_TYPE_DNAME) {
			/* No records of the type at the end of the chain: the
			 * caller judges NODATA on its own (no denial proof). */
			say(why, whylen, "no %s records to validate", type_str(qtype, tb, sizeof(tb)));
			v = EP_DNSSEC_NO_DATA;
			goto out;
		}
		/* The records the target owns live in the same answer; they
		 * are what the next step validates. */
		cur = next;
		v = EP_DNSSEC_NO_DATA;
	}
	say(why, whylen, "CNAME chain longer than %d", EP_DNSQ_MAX_CHAIN);
	v = EP_DNSSEC_NO_DATA;
out:
	ldns_rdf_deep_free(start);
	return v;
}
