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
 * and the source port to guess. Answers are relayed as they are; no DNSSEC
 * validation is done here (docs/dns-cache.md).
 *
 * Single-threaded: the responder's thread calls everything.
 */
#ifndef EP_CACHE_FALLBACK_H
#define EP_CACHE_FALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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
};

/* ans NULL: nobody answered (the caller sends SERVFAIL). ans carries the
 * client's own id already. q is the client's query. */
typedef void (*ep_fallback_deliver_fn)(void *arg, const struct ep_fallback_client *c,
				       const uint8_t *q, size_t qlen, const uint8_t *ans,
				       size_t anslen);

struct ep_fallback;

/* servers: "ADDR" or "ADDR#PORT" (IPv4 or IPv6), tried in this order. */
int ep_fallback_new(struct ep_fallback **out, const char *const *servers, int n,
		    unsigned timeout_ms, ep_fallback_deliver_fn deliver, void *arg, char *err,
		    size_t errlen);
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

/* "ADDR" or "ADDR#PORT" -> sockaddr (port 53 by default). 0 or -EINVAL. */
int ep_fallback_parse_server(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
