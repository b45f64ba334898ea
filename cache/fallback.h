/*
 * The cache's fallback: trusted resolvers (dns.cache.fallback) that answer
 * the names outside the snapshot while the node is failed over, instead of
 * SERVFAIL. The policy responder hands such queries here; they go out over
 * UDP, one resolver at a time in the configured order, each given a bounded
 * wait; the answer goes back to the client with its own transaction id.
 *
 * A reply is taken only from the resolver the query went to (address and
 * port), with the id we chose (random) and the question we sent: the same
 * checks a stub resolver makes, so an off-path spoofer has 16 bits of id
 * and the source port to guess.
 *
 * With a trust anchor (dns.health.trust_anchor, dnssec_check.h) the names in
 * the anchored zone are DNSSEC-validated: such a query goes out with the DO
 * bit, the zone's DNSKEY RRset is fetched from the fallback resolvers and
 * validated against the anchor (kept until its refresh time, like the
 * probes' keys), and the answer is relayed only when its RRsets carry valid
 * signatures by those keys; a bogus one makes the next resolver be asked,
 * and SERVFAIL (counted "bogus") when none gives a valid answer. Queries
 * that need keys wait in the table, without blocking anything, while the
 * DNSKEY RRset is fetched (each resolver its timeout). NXDOMAIN and NODATA
 * are relayed as they are: NSEC/NSEC3 denial proofs are not checked, the
 * limit the probes have. Names outside the zone are relayed unvalidated.
 * See docs/dns-cache.md.
 *
 * Single-threaded: the responder's thread calls everything.
 */
#ifndef EP_CACHE_FALLBACK_H
#define EP_CACHE_FALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <ldns/ldns.h>

#include "dnssec_check.h"

#define EP_FALLBACK_MAX_SERVERS 4
#define EP_FALLBACK_MAX_PENDING 256
#define EP_FALLBACK_TIMEOUT_MS_DEFAULT 800

/* Who asked: a UDP client's address, or a TCP connection (slot and the
 * generation it had, so a reply never goes to a later connection there). */
struct ep_fallback_client {
	bool tcp;
	int slot;
	uint64_t gen;
	struct sockaddr_storage addr;
	socklen_t alen;
};

struct ep_fallback_stats {
	uint64_t forwarded; /* queries handed to the fallback */
	uint64_t answered;  /* relayed back with a resolver's answer */
	uint64_t failed;    /* no resolver answered in time: SERVFAIL */
	uint64_t busy;	    /* table full: SERVFAIL at once */
	uint64_t ignored;   /* replies that matched no query we sent */
	/* with a trust anchor */
	uint64_t bogus;	    /* SERVFAIL: no resolver's answer passed validation */
	uint64_t validated; /* answered with RRsets whose signatures were checked */
	uint64_t bogus_replies; /* replies that failed validation (another resolver asked next) */
	uint64_t key_fetches, key_failures; /* DNSKEY RRset fetches; those no resolver answered validly */
};

enum ep_fallback_result {
	EP_FALLBACK_ANSWERED = 0, /* ans: a resolver's answer */
	EP_FALLBACK_FAILED,	  /* nobody answered in time: SERVFAIL */
	EP_FALLBACK_BOGUS,	  /* answers came, none passed DNSSEC validation: SERVFAIL */
};

/* ans NULL (FAILED, BOGUS): the caller sends SERVFAIL. ans carries the
 * client's own id already. q is the client's query. */
typedef void (*ep_fallback_deliver_fn)(void *arg, const struct ep_fallback_client *c,
				       const uint8_t *q, size_t qlen, const uint8_t *ans,
				       size_t anslen, enum ep_fallback_result res);

struct ep_fallback;

/* servers: "ADDR" or "ADDR#PORT" (IPv4 or IPv6), tried in this order. */
int ep_fallback_new(struct ep_fallback **out, const char *const *servers, int n,
		    unsigned timeout_ms, ep_fallback_deliver_fn deliver, void *arg, char *err,
		    size_t errlen);
/* Validates the names of anchor's zone from now on (takes the anchor; NULL:
 * none). Call before the first submit. */
void ep_fallback_set_anchor(struct ep_fallback *f, struct ep_dnssec_anchor *anchor);
/* A socket per address family in use; -1 where none. Readable: call _read. */
int ep_fallback_fd(const struct ep_fallback *f, int family);
/* 0, or -EAGAIN (table full), -EINVAL (not a query), -errno (send). */
int ep_fallback_submit(struct ep_fallback *f, const uint8_t *q, size_t qlen,
		       const struct ep_fallback_client *c, uint64_t now_ns);
void ep_fallback_read(struct ep_fallback *f, int fd);
/* Moves timed-out queries to the next resolver, or fails them. Returns the
 * milliseconds until the next deadline, -1 when nothing waits. */
int ep_fallback_expire(struct ep_fallback *f, uint64_t now_ns);
void ep_fallback_get_stats(const struct ep_fallback *f, struct ep_fallback_stats *st);
void ep_fallback_free(struct ep_fallback *f);

/* Pure, for the fuzzer: is reply (n bytes, from the resolver asked) the
 * answer to sent, the query as it went out (our id)? A response with that
 * id and exactly that one question (case aside). */
bool ep_fallback_reply_matches(const uint8_t *reply, size_t n, const uint8_t *sent, size_t sent_len);

/* What a client's query asked, as the validation needs it. */
struct ep_fallback_question {
	char qname[300]; /* text, final dot */
	uint16_t qtype;
	bool edns, dnssec_ok; /* the client sent an OPT record; with the DO bit */
};

/*
 * Pure: the query that goes to a resolver for a name of the anchored zone:
 * the client's query q with EDNS0, the DO bit and a 1232-byte buffer (at
 * least), and what it asked in *qi. *wire is malloc()ed. 0 or -EINVAL/-ENOMEM.
 */
int ep_fallback_dnssec_query(const uint8_t *q, size_t qlen, struct ep_fallback_question *qi,
			     uint8_t **wire, size_t *wlen);
/*
 * Pure, for the fuzzer and the tests: the verdict on reply (n bytes, already
 * matched to its query) to the question qi for a name of anchor's zone, with
 * the zone's validated keys at wall-clock time now. ANSWERED: relay it; *out
 * then holds the bytes to relay when they differ from reply (malloc()ed: the
 * DNSSEC records the client did not ask for removed) or NULL. BOGUS: SERVFAIL
 * (why says why). FAILED: no usable answer from this resolver (truncated, or
 * out of memory), not a validation failure.
 */
enum ep_fallback_result ep_fallback_validate(const struct ep_dnssec_anchor *anchor,
					     const ldns_rr_list *keys, const uint8_t *reply, size_t n,
					     const struct ep_fallback_question *qi, time_t now,
					     uint8_t **out, size_t *outlen, char *why, size_t whylen);

/* "ADDR" or "ADDR#PORT" -> sockaddr (port 53 by default). 0 or -EINVAL. */
int ep_fallback_parse_server(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
