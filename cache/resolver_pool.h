/*
 * The query engine of the preload builder: many DNS queries in flight over
 * non-blocking sockets in one epoll loop, spread over several resolvers.
 *
 * Why not ldns_resolver_send: it checks neither the transaction id nor the
 * reply's source, and it marks a server dead for good after one failure. Here
 * every attempt gets a fresh socket (so a fresh kernel-chosen random source
 * port) and a fresh random id; a reply is believed only if it comes from the
 * address:port that was asked and carries the id and question that were sent
 * (RFC 5452). Everything else is counted and dropped. A truncated reply is
 * asked again over TCP in the same loop. A resolver that keeps timing out is
 * asked less (but still probed) while others answer, and a retry always goes
 * to a different resolver when there is one.
 */
#ifndef EP_RESOLVER_POOL_H
#define EP_RESOLVER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ldns/ldns.h>

#include "dns_exempt.h"

#define EP_RESOLVER_LABEL 64

struct ep_resolver {
	struct sockaddr_storage sa;
	socklen_t salen;
	char label[EP_RESOLVER_LABEL]; /* "192.0.2.1:53", "[2001:db8::1]:53" */
	/* Timeouts since the last reply it sent; a high count makes it "suspect". */
	unsigned strikes;
	unsigned skipped;
	uint64_t sent, replies, timeouts;
};

/* "ADDR", "ADDR:PORT", "[V6]:PORT" or a bare IPv6 address; port 53 by default. */
int ep_resolver_parse(const char *s, struct ep_resolver *r);
/* Same address family, address and port. */
bool ep_sockaddr_same(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b,
		      socklen_t blen);

struct ep_pool_opts {
	unsigned concurrency; /* queries in flight at most */
	unsigned timeout_ms;  /* per attempt */
	unsigned retries;     /* further attempts after the first */
	/* The agent's refresh: every socket is exempted from the DNS failover
	 * redirect before its first send (lib/dns_exempt.h), so it asks the
	 * real resolvers, not the cache it is refreshing. NULL: not exempted
	 * (the CLI). Must outlive the pool. */
	const struct ep_dns_exempt_map *exempt;
};

struct ep_pool_stats {
	uint64_t queries;      /* submitted */
	uint64_t attempts;     /* UDP datagrams and TCP exchanges started */
	uint64_t replies;      /* accepted */
	uint64_t retries;
	uint64_t timeouts;     /* attempts that timed out */
	uint64_t send_errors;
	uint64_t bad_source;   /* datagrams from somewhere else than the resolver asked */
	uint64_t bad_id;
	uint64_t bad_question;
	uint64_t not_response;
	uint64_t malformed;
	uint64_t late;         /* replies to attempts that were already over */
	uint64_t truncated;    /* TC replies, each followed by a TCP attempt */
	uint64_t tcp_errors;
	uint64_t rcode_retries; /* SERVFAIL/REFUSED asked again elsewhere */
};

/*
 * Called once per submitted query, with the accepted reply or NULL when every
 * attempt failed. The reply is freed by the pool after the call; the callback
 * may submit new queries.
 */
typedef void (*ep_pool_done_fn)(void *ctx, void *user, const char *qname, uint16_t qtype,
				ldns_pkt *reply, int resolver);

struct ep_pool;

/* Resolvers are copied. Returns NULL with errno set. */
struct ep_pool *ep_pool_new(const struct ep_resolver *res, size_t n, const struct ep_pool_opts *o,
			    ep_pool_done_fn done, void *ctx);
void ep_pool_free(struct ep_pool *p);
/* Starts a query; -EBUSY when concurrency queries are already in flight. */
int ep_pool_submit(struct ep_pool *p, const char *qname, uint16_t qtype, void *user);
unsigned ep_pool_inflight(const struct ep_pool *p);
unsigned ep_pool_capacity(const struct ep_pool *p);
/*
 * Waits at most max_wait_ms for replies and timeouts and handles them (calling
 * done()). Returns the number of queries completed, or a negative errno.
 */
int ep_pool_poll(struct ep_pool *p, int max_wait_ms);
/* Ends every query in flight: done() is called with NULL for each. */
void ep_pool_cancel(struct ep_pool *p);
const struct ep_pool_stats *ep_pool_get_stats(const struct ep_pool *p);

#endif
