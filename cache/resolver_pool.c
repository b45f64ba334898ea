#include "resolver_pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "dns_query.h"
#include "util.h"

/* Timeouts in a row after which a resolver only gets probes while others answer. */
#define SUSPECT_STRIKES 8
/* A suspect resolver still gets one query in this many, to notice recovery. */
#define SUSPECT_PROBE_EVERY 32
#define EVENTS_BATCH 256
/* Attempts a UDP socket carries before it is closed and a new one (with a new
 * random port) takes over. */
#define SOCKET_USES 16
#define TAG_TCP 0x80000000u
#define RAND_POOL 4096
#define MAX_DGRAM 65535

enum slot_state {
	SLOT_FREE = 0,
	SLOT_UDP,
	SLOT_TCP_CONNECT, /* waiting for the connect and for our write to drain */
	SLOT_TCP_READ,
};

struct slot {
	enum slot_state st;
	/* One UDP socket per slot and family, kept for SOCKET_USES attempts and
	 * then replaced: every socket gets a fresh random port from the kernel,
	 * at a fraction of the cost of a socket per attempt. */
	int ufd[2];
	unsigned uses[2];
	int tfd;	/* TCP, one connection per attempt */
	int fam;	/* index into ufd[] of the current attempt */
	uint32_t gen;	/* tags TCP events so a stale one never hits a later attempt */
	uint16_t qtype;
	uint16_t id;
	unsigned attempt;
	int resolver;
	uint64_t deadline;
	struct slot *prev, *next; /* deadline list: all attempts share one timeout, so FIFO */
	void *user;
	uint8_t *wire; /* the query, with 2 spare bytes in front for the TCP length */
	size_t wire_len;
	size_t io_off;	/* TCP: bytes written, then bytes read */
	uint8_t *rbuf;	/* TCP: the reply being read */
	size_t rlen;	/* TCP: reply length from its prefix, 0 while unknown */
	char qname[EP_DNS_NAME_BUF];
};

struct ep_pool {
	struct ep_resolver *res;
	size_t n_res;
	size_t rr_next;
	struct ep_pool_opts o;
	ep_pool_done_fn done;
	void *ctx;
	int epfd;
	struct slot *slots;
	unsigned *free_idx; /* stack of free slot indexes */
	unsigned n_free;
	struct slot *head, *tail;
	struct ep_pool_stats st;
	uint8_t rnd[RAND_POOL];
	size_t rnd_off;
	uint8_t *buf; /* MAX_DGRAM */
};

int ep_resolver_parse(const char *s, struct ep_resolver *r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_s = NULL;
	uint16_t port = 53;
	size_t hlen;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&r->sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->sa;

	memset(r, 0, sizeof(*r));
	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return -EINVAL;
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (close[1] == ':')
			port_s = close + 2;
		else if (close[1])
			return -EINVAL;
	} else {
		const char *colon = strchr(s, ':');

		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* a bare IPv6 address */
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		if (hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (colon)
			port_s = colon + 1;
	}
	if (port_s && ep_port_parse(port_s, &port))
		return -EINVAL;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		r->salen = sizeof(*s4);
		snprintf(r->label, sizeof(r->label), "%s:%u", host, port);
		return 0;
	}
	memset(&r->sa, 0, sizeof(r->sa));
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		r->salen = sizeof(*s6);
		snprintf(r->label, sizeof(r->label), "[%s]:%u", host, port);
		return 0;
	}
	return -EINVAL;
}

bool ep_sockaddr_same(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b,
		      socklen_t blen)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return alen >= sizeof(*x) && blen >= sizeof(*y) && x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return alen >= sizeof(*x) && blen >= sizeof(*y) && x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	return false;
}

static int rand16(struct ep_pool *p, uint16_t *out)
{
	if (p->rnd_off + 2 > sizeof(p->rnd)) {
		size_t got = 0;

		while (got < sizeof(p->rnd)) {
			ssize_t n = getrandom(p->rnd + got, sizeof(p->rnd) - got, 0);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			got += (size_t)n;
		}
		p->rnd_off = 0;
	}
	*out = (uint16_t)(p->rnd[p->rnd_off] << 8 | p->rnd[p->rnd_off + 1]);
	p->rnd_off += 2;
	return 0;
}

struct ep_pool *ep_pool_new(const struct ep_resolver *res, size_t n, const struct ep_pool_opts *o,
			    ep_pool_done_fn done, void *ctx)
{
	struct ep_pool *p;
	unsigned i;

	if (!n || !o->concurrency) {
		errno = EINVAL;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->epfd = -1;
	p->o = *o;
	p->done = done;
	p->ctx = ctx;
	p->n_res = n;
	p->rnd_off = sizeof(p->rnd);
	p->res = calloc(n, sizeof(*p->res));
	p->slots = calloc(o->concurrency, sizeof(*p->slots));
	if (p->slots)
		for (i = 0; i < o->concurrency; i++)
			p->slots[i].tfd = p->slots[i].ufd[0] = p->slots[i].ufd[1] = -1;
	p->free_idx = calloc(o->concurrency, sizeof(*p->free_idx));
	p->buf = malloc(MAX_DGRAM);
	if (!p->res || !p->slots || !p->free_idx || !p->buf)
		goto fail;
	for (i = 0; i < o->concurrency; i++)
		p->free_idx[i] = o->concurrency - 1 - i;
	memcpy(p->res, res, n * sizeof(*res));
	for (i = 0; i < n; i++) {
		p->res[i].strikes = p->res[i].skipped = 0;
		p->res[i].sent = p->res[i].replies = p->res[i].timeouts = 0;
	}
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		goto fail;
	p->n_free = o->concurrency;
	return p;
fail:
	ep_pool_free(p);
	errno = ENOMEM;
	return NULL;
}

static void list_del(struct ep_pool *p, struct slot *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else if (p->head == s)
		p->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else if (p->tail == s)
		p->tail = s->prev;
	s->prev = s->next = NULL;
}

static void list_append(struct ep_pool *p, struct slot *s)
{
	s->prev = p->tail;
	s->next = NULL;
	if (p->tail)
		p->tail->next = s;
	else
		p->head = s;
	p->tail = s;
}

/* Ends the current attempt's TCP connection, if any. The UDP sockets stay. */
static void slot_end_attempt(struct slot *s)
{
	if (s->tfd >= 0) {
		close(s->tfd); /* also removes it from the epoll set */
		s->tfd = -1;
	}
	free(s->rbuf);
	s->rbuf = NULL;
	s->rlen = s->io_off = 0;
	s->gen++;
}

static void slot_close_udp(struct slot *s, int fi)
{
	if (s->ufd[fi] >= 0)
		close(s->ufd[fi]);
	s->ufd[fi] = -1;
	s->uses[fi] = 0;
}

static unsigned slot_idx(const struct ep_pool *p, const struct slot *s)
{
	return (unsigned)(s - p->slots);
}

static int watch(struct ep_pool *p, struct slot *s, int fd, bool tcp, uint32_t events, int op)
{
	struct epoll_event ev = {
		.events = events,
		.data.u64 = (uint64_t)s->gen << 32 | slot_idx(p, s) | (tcp ? TAG_TCP : 0),
	};

	return epoll_ctl(p->epfd, op, fd, &ev) ? -errno : 0;
}

static bool res_suspect(const struct ep_resolver *r)
{
	return r->strikes >= SUSPECT_STRIKES;
}

/* Round-robin over resolvers, avoiding the one the previous attempt used and,
 * while any other answers, the ones that keep timing out. */
static int pick_resolver(struct ep_pool *p, int avoid)
{
	size_t k, best = 0;
	unsigned best_strikes = ~0u;

	if (p->n_res == 1)
		return 0;
	for (k = 0; k < p->n_res; k++) {
		size_t i = p->rr_next++ % p->n_res;
		struct ep_resolver *r = &p->res[i];

		if ((int)i == avoid)
			continue;
		if (!res_suspect(r))
			return (int)i;
		if (++r->skipped >= SUSPECT_PROBE_EVERY) {
			r->skipped = 0;
			return (int)i;
		}
	}
	/* Everything else is suspect: take the one with the fewest strikes. */
	for (k = 0; k < p->n_res; k++) {
		if ((int)k == avoid)
			continue;
		if (p->res[k].strikes < best_strikes) {
			best_strikes = p->res[k].strikes;
			best = k;
		}
	}
	return (int)best;
}

static void complete(struct ep_pool *p, struct slot *s, ldns_pkt *reply)
{
	char qname[EP_DNS_NAME_BUF];
	uint16_t qtype = s->qtype;
	void *user = s->user;
	int resolver = s->resolver;

	memcpy(qname, s->qname, sizeof(qname));
	list_del(p, s);
	slot_end_attempt(s);
	free(s->wire);
	s->wire = NULL;
	s->st = SLOT_FREE;
	p->free_idx[p->n_free++] = slot_idx(p, s);
	/* The slot is free before the callback so it can submit a follow-up. */
	p->done(p->ctx, user, qname, qtype, reply, resolver);
	ldns_pkt_free(reply);
}

static int start_attempt(struct ep_pool *p, struct slot *s, bool tcp);

/* The attempt failed (timeout, error, or an rcode worth asking elsewhere):
 * retry on another resolver, or give up. */
static void next_attempt(struct ep_pool *p, struct slot *s)
{
	slot_end_attempt(s);
	list_del(p, s);
	while (s->attempt < p->o.retries) {
		s->attempt++;
		p->st.retries++;
		s->resolver = pick_resolver(p, s->resolver);
		if (start_attempt(p, s, false) == 0)
			return;
	}
	complete(p, s, NULL);
}

static int udp_socket(struct ep_pool *p, struct slot *s, int fi, int family)
{
	int fd, ret;

	if (s->ufd[fi] >= 0 && s->uses[fi] < SOCKET_USES)
		return s->ufd[fi];
	slot_close_udp(s, fi);
	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = ep_dns_exempt_socket(p->o.exempt, fd);
	if (ret) {
		close(fd);
		return ret;
	}
	/* UDP events carry no generation: whatever arrives is checked against
	 * the query in flight on this slot at that moment. */
	ret = watch(p, s, fd, false, EPOLLIN, EPOLL_CTL_ADD);
	if (ret) {
		close(fd);
		return ret;
	}
	s->ufd[fi] = fd;
	return fd;
}

static int start_attempt(struct ep_pool *p, struct slot *s, bool tcp)
{
	struct ep_resolver *r = &p->res[s->resolver];
	int fd, ret;

	ret = rand16(p, &s->id);
	if (ret)
		return ret;
	/* The query was built once; each attempt only gets a new id. */
	s->wire[2] = (uint8_t)(s->id >> 8);
	s->wire[3] = (uint8_t)s->id;
	s->fam = r->sa.ss_family == AF_INET6;
	p->st.attempts++;
	r->sent++;
	if (tcp) {
		fd = socket(r->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			ret = -errno;
			goto fail;
		}
		s->tfd = fd;
		s->gen++;
		ret = ep_dns_exempt_socket(p->o.exempt, fd);
		if (ret)
			goto fail;
		if (connect(fd, (struct sockaddr *)&r->sa, r->salen) && errno != EINPROGRESS) {
			ret = -errno;
			goto fail;
		}
		s->st = SLOT_TCP_CONNECT;
		s->io_off = 0;
		ret = watch(p, s, fd, true, EPOLLOUT, EPOLL_CTL_ADD);
		if (ret)
			goto fail;
	} else {
		/* The kernel binds a new UDP socket to a random ephemeral port on
		 * its first send. */
		fd = udp_socket(p, s, s->fam, r->sa.ss_family);
		if (fd < 0) {
			ret = fd;
			goto fail;
		}
		s->uses[s->fam]++;
		if (sendto(fd, s->wire + 2, s->wire_len, 0, (struct sockaddr *)&r->sa, r->salen) < 0) {
			ret = -errno;
			slot_close_udp(s, s->fam);
			goto fail;
		}
		s->st = SLOT_UDP;
	}
	s->deadline = ep_now_ns() + (uint64_t)p->o.timeout_ms * 1000000ULL;
	list_append(p, s);
	return 0;
fail:
	p->st.send_errors++;
	slot_end_attempt(s);
	return ret;
}

int ep_pool_submit(struct ep_pool *p, const char *qname, uint16_t qtype, void *user)
{
	struct slot *s;
	uint8_t *wire;
	size_t len;
	int ret;

	if (!p->n_free)
		return -EBUSY;
	ret = ep_dnsq_build(qname, qtype, 0, &wire, &len);
	if (ret)
		return ret;
	s = &p->slots[p->free_idx[p->n_free - 1]];
	/* Two bytes in front hold the TCP length prefix, so TCP sends one buffer. */
	s->wire = malloc(len + 2);
	if (!s->wire) {
		free(wire);
		return -ENOMEM;
	}
	s->wire[0] = (uint8_t)(len >> 8);
	s->wire[1] = (uint8_t)len;
	memcpy(s->wire + 2, wire, len);
	free(wire);
	p->n_free--;
	s->wire_len = len;
	snprintf(s->qname, sizeof(s->qname), "%s", qname);
	s->qtype = qtype;
	s->user = user;
	s->attempt = 0;
	s->prev = s->next = NULL;
	p->st.queries++;
	s->resolver = pick_resolver(p, -1);
	ret = start_attempt(p, s, false);
	if (ret)
		next_attempt(p, s); /* completes (with NULL) if no attempt can start */
	return 0;
}

/* An accepted reply: TC goes to TCP, an error rcode may be asked elsewhere. */
static void handle_reply(struct ep_pool *p, struct slot *s, ldns_pkt *reply, bool via_tcp)
{
	struct ep_resolver *r = &p->res[s->resolver];
	ldns_pkt_rcode rc = ldns_pkt_get_rcode(reply);

	p->st.replies++;
	r->replies++;
	r->strikes = 0;
	if (ldns_pkt_tc(reply) && !via_tcp) {
		ldns_pkt_free(reply);
		p->st.truncated++;
		slot_end_attempt(s);
		list_del(p, s);
		/* The same resolver: it has the full answer, it only could not fit it. */
		if (start_attempt(p, s, true))
			next_attempt(p, s);
		return;
	}
	/* SERVFAIL/REFUSED can be one resolver's problem (a broken forwarder, an
	 * ACL): when there is another, ask it before believing the error. */
	if ((rc == LDNS_RCODE_SERVFAIL || rc == LDNS_RCODE_REFUSED) && p->n_res > 1 &&
	    s->attempt < p->o.retries) {
		ldns_pkt_free(reply);
		p->st.rcode_retries++;
		next_attempt(p, s);
		return;
	}
	complete(p, s, reply);
}

static void count_verdict(struct ep_pool *p, enum ep_dnsq_verdict v)
{
	switch (v) {
	case EP_DNSQ_MALFORMED: p->st.malformed++; break;
	case EP_DNSQ_NOT_RESPONSE: p->st.not_response++; break;
	case EP_DNSQ_BAD_ID: p->st.bad_id++; break;
	case EP_DNSQ_BAD_QUESTION: p->st.bad_question++; break;
	case EP_DNSQ_OK: break;
	}
}

static void on_udp(struct ep_pool *p, struct slot *s, int fi)
{
	struct ep_resolver *r = &p->res[s->resolver];

	for (;;) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		enum ep_dnsq_verdict v;
		ldns_pkt *reply;
		ssize_t n;

		n = recvfrom(s->ufd[fi], p->buf, MAX_DGRAM, 0, (struct sockaddr *)&from, &flen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* EAGAIN: wait for more. Anything else (an ICMP error) is
			 * left to the timeout, which retries elsewhere. */
			return;
		}
		/* A reply to an attempt that is over (it timed out, or the slot
		 * moved on to another query): too late to matter. */
		if (s->st != SLOT_UDP || s->fam != fi) {
			p->st.late++;
			continue;
		}
		if (!ep_sockaddr_same((struct sockaddr *)&from, flen, (struct sockaddr *)&r->sa,
				      r->salen)) {
			p->st.bad_source++;
			continue;
		}
		v = ep_dnsq_parse_reply(p->buf, (size_t)n, s->qname, s->qtype, s->id, &reply);
		if (v != EP_DNSQ_OK) {
			count_verdict(p, v);
			continue;
		}
		handle_reply(p, s, reply, false);
		return;
	}
}

static void tcp_fail(struct ep_pool *p, struct slot *s)
{
	p->st.tcp_errors++;
	next_attempt(p, s);
}

static void on_tcp(struct ep_pool *p, struct slot *s, uint32_t events)
{
	if (s->st == SLOT_TCP_CONNECT) {
		size_t total = s->wire_len + 2;
		ssize_t n;
		int err = 0;
		socklen_t elen = sizeof(err);

		if (getsockopt(s->tfd, SOL_SOCKET, SO_ERROR, &err, &elen) || err) {
			tcp_fail(p, s);
			return;
		}
		n = send(s->tfd, s->wire + s->io_off, total - s->io_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				tcp_fail(p, s);
			return;
		}
		s->io_off += (size_t)n;
		if (s->io_off < total)
			return;
		s->st = SLOT_TCP_READ;
		s->io_off = 0;
		s->rlen = 0;
		s->rbuf = malloc(2);
		if (!s->rbuf || watch(p, s, s->tfd, true, EPOLLIN, EPOLL_CTL_MOD))
			tcp_fail(p, s);
		return;
	}
	for (;;) {
		/* rbuf holds the 2-byte length prefix first, then the message. */
		size_t want = s->rlen ? s->rlen : 2;
		uint8_t *dst = s->rbuf + s->io_off;
		ssize_t n;

		n = recv(s->tfd, dst, want - s->io_off, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			tcp_fail(p, s);
			return;
		}
		if (n == 0) {
			tcp_fail(p, s);
			return;
		}
		s->io_off += (size_t)n;
		if (s->io_off < want)
			continue;
		if (!s->rlen) {
			size_t len = (size_t)s->rbuf[0] << 8 | s->rbuf[1];
			uint8_t *nb;

			if (len < 12) {
				tcp_fail(p, s);
				return;
			}
			nb = realloc(s->rbuf, len);
			if (!nb) {
				tcp_fail(p, s);
				return;
			}
			s->rbuf = nb;
			s->rlen = len;
			s->io_off = 0;
			continue;
		}
		{
			ldns_pkt *reply;
			enum ep_dnsq_verdict v = ep_dnsq_parse_reply(s->rbuf, s->rlen, s->qname, s->qtype,
								     s->id, &reply);

			if (v != EP_DNSQ_OK) {
				/* One connection, one question: a wrong reply ends it. */
				count_verdict(p, v);
				tcp_fail(p, s);
				return;
			}
			handle_reply(p, s, reply, true);
			return;
		}
	}
	(void)events;
}

static int expire(struct ep_pool *p, uint64_t now)
{
	int n = 0;

	while (p->head && p->head->deadline <= now) {
		struct slot *s = p->head;
		struct ep_resolver *r = &p->res[s->resolver];

		p->st.timeouts++;
		r->timeouts++;
		r->strikes++;
		if (s->st != SLOT_UDP)
			p->st.tcp_errors++;
		if (s->attempt >= p->o.retries)
			n++;
		next_attempt(p, s);
	}
	return n;
}

int ep_pool_poll(struct ep_pool *p, int max_wait_ms)
{
	struct epoll_event ev[EVENTS_BATCH];
	unsigned before = p->n_free;
	int wait = max_wait_ms, n, i;
	uint64_t now = ep_now_ns();

	if (p->head) {
		uint64_t left = p->head->deadline > now ? p->head->deadline - now : 0;
		int left_ms = (int)((left + 999999) / 1000000);

		if (wait < 0 || left_ms < wait)
			wait = left_ms;
	}
	n = epoll_wait(p->epfd, ev, EVENTS_BATCH, wait);
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	for (i = 0; i < n; i++) {
		uint32_t tag = (uint32_t)ev[i].data.u64;
		uint32_t gen = (uint32_t)(ev[i].data.u64 >> 32);
		unsigned idx = tag & ~TAG_TCP;
		struct slot *s;
		int fi;

		if (idx >= p->o.concurrency)
			continue;
		s = &p->slots[idx];
		if (tag & TAG_TCP) {
			/* A stale event of a connection that is already closed. */
			if (s->gen != gen || s->tfd < 0)
				continue;
			if (s->st == SLOT_TCP_CONNECT || s->st == SLOT_TCP_READ)
				on_tcp(p, s, ev[i].events);
			continue;
		}
		for (fi = 0; fi < 2; fi++)
			if (s->ufd[fi] >= 0)
				on_udp(p, s, fi);
	}
	expire(p, ep_now_ns());
	/* Completions free slots, follow-ups taken in callbacks use them again:
	 * report the net change, never negative. */
	return p->n_free > before ? (int)(p->n_free - before) : 0;
}

void ep_pool_cancel(struct ep_pool *p)
{
	while (p->head)
		complete(p, p->head, NULL);
}

unsigned ep_pool_inflight(const struct ep_pool *p)
{
	return p->o.concurrency - p->n_free;
}

unsigned ep_pool_capacity(const struct ep_pool *p)
{
	return p->o.concurrency;
}

const struct ep_pool_stats *ep_pool_get_stats(const struct ep_pool *p)
{
	return &p->st;
}

void ep_pool_free(struct ep_pool *p)
{
	unsigned i;

	if (!p)
		return;
	if (p->slots) {
		for (i = 0; i < p->o.concurrency; i++) {
			slot_end_attempt(&p->slots[i]);
			slot_close_udp(&p->slots[i], 0);
			slot_close_udp(&p->slots[i], 1);
			free(p->slots[i].wire);
		}
	}
	if (p->epfd >= 0)
		close(p->epfd);
	free(p->slots);
	free(p->free_idx);
	free(p->res);
	free(p->buf);
	free(p);
}
