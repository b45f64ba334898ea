#include "policy_responder.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fallback.h"

#define SOA_MNAME "edgeplane-cache.invalid."
#define SOA_RNAME "hostmaster.edgeplane-cache.invalid."
#define MAX_TCP_CONNS 64
#define TCP_BUF 4096
/* A connection without a byte from its peer for this long is closed.
 * dnsmasq gives an upstream TCP connection 5 s to connect and twice that for
 * the answer (TCP_TIMEOUT in its config.h), so it never waits on a
 * connection quiet for longer; RFC 7766 6.2.3 asks servers for "a few
 * seconds". */
#define TCP_IDLE_MS_DEFAULT 10000

/* A reply built from the header alone, for queries ldns cannot parse. */
static enum ep_policy_kind header_reply(const uint8_t *q, uint8_t rcode, uint8_t **out,
					size_t *outlen)
{
	uint8_t *r = calloc(1, 12);

	if (!r)
		return EP_POLICY_DROPPED;
	memcpy(r, q, 2);		       /* id */
	r[2] = (uint8_t)(0x80 | (q[2] & 0x79)); /* QR, opcode, RD kept */
	r[3] = (uint8_t)(0x80 | rcode);	       /* RA, rcode */
	*out = r;
	*outlen = 12;
	return EP_POLICY_FORMERR;
}

static ldns_rr *soa_for(const ldns_rdf *owner, uint32_t ttl)
{
	ldns_rr *soa = ldns_rr_new();
	ldns_rdf *mname = ldns_dname_new_frm_str(SOA_MNAME), *rname = ldns_dname_new_frm_str(SOA_RNAME);
	static const uint32_t times[] = {1, 3600, 600, 86400};

	if (!soa || !mname || !rname) {
		ldns_rr_free(soa);
		ldns_rdf_deep_free(mname);
		ldns_rdf_deep_free(rname);
		return NULL;
	}
	ldns_rr_set_owner(soa, ldns_rdf_clone(owner));
	ldns_rr_set_type(soa, LDNS_RR_TYPE_SOA);
	ldns_rr_set_class(soa, LDNS_RR_CLASS_IN);
	ldns_rr_set_ttl(soa, ttl);
	ldns_rr_push_rdf(soa, mname);
	ldns_rr_push_rdf(soa, rname);
	for (size_t i = 0; i < 4; i++)
		ldns_rr_push_rdf(soa, ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, times[i]));
	/* The minimum field is the negative-caching TTL (RFC 2308). */
	ldns_rr_push_rdf(soa, ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, ttl));
	return soa;
}

enum ep_policy_kind ep_policy_answer(const uint8_t *q, size_t qlen, const struct ep_nameset *names,
				     uint32_t ttl, uint8_t **out, size_t *outlen)
{
	enum ep_policy_kind kind = EP_POLICY_DROPPED;
	ldns_pkt *qp = NULL, *r = NULL;
	ldns_rr *qrr;
	char *name = NULL, norm[EP_DNS_NAME_BUF];

	*out = NULL;
	*outlen = 0;
	if (qlen < 12 || (q[2] & 0x80))
		return EP_POLICY_DROPPED; /* too short for a header, or a response */
	if (ldns_wire2pkt(&qp, q, qlen) != LDNS_STATUS_OK)
		return header_reply(q, LDNS_RCODE_FORMERR, out, outlen);
	if (ldns_pkt_get_opcode(qp) != LDNS_PACKET_QUERY || ldns_pkt_qdcount(qp) != 1 ||
	    !(qrr = ldns_rr_list_rr(ldns_pkt_question(qp), 0))) {
		ldns_pkt_free(qp);
		return header_reply(q, LDNS_RCODE_FORMERR, out, outlen);
	}
	name = ldns_rdf2str(ldns_rr_owner(qrr));
	r = ldns_pkt_new();
	if (!name || !r)
		goto out;
	/* The set holds names as the domains file loader normalised them; a
	 * name that does not normalise cannot be in it. */
	if (ep_dns_name_normalize(name, strlen(name), norm, NULL))
		norm[0] = '\0';
	ldns_pkt_set_id(r, ldns_pkt_id(qp));
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_opcode(r, LDNS_PACKET_QUERY);
	ldns_pkt_set_rd(r, ldns_pkt_rd(qp));
	ldns_pkt_set_ra(r, true);
	ldns_pkt_set_cd(r, ldns_pkt_cd(qp));
	if (ldns_pkt_edns(qp))
		ldns_pkt_set_edns_udp_size(r, 1232);
	ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, ldns_rr_clone(qrr));
	if (ldns_rr_get_class(qrr) == LDNS_RR_CLASS_IN && norm[0] && ep_nameset_has(names, norm)) {
		ldns_rr *soa = soa_for(ldns_rr_owner(qrr), ttl);

		if (!soa)
			goto out;
		ldns_pkt_set_rcode(r, LDNS_RCODE_NOERROR);
		ldns_pkt_set_aa(r, true);
		ldns_pkt_push_rr(r, LDNS_SECTION_AUTHORITY, soa);
		kind = EP_POLICY_NODATA;
	} else {
		ldns_pkt_set_rcode(r, LDNS_RCODE_SERVFAIL);
		kind = EP_POLICY_SERVFAIL;
	}
	if (ldns_pkt2wire(out, r, outlen) != LDNS_STATUS_OK) {
		*out = NULL;
		*outlen = 0;
		kind = EP_POLICY_DROPPED;
	}
out:
	free(name);
	ldns_pkt_free(r);
	ldns_pkt_free(qp);
	return kind;
}

/* ---- the server thread -------------------------------------------------- */

struct tcp_conn {
	int fd;
	uint64_t gen; /* which connection this slot holds (fallback replies) */
	uint64_t active_ns; /* accepted, or last byte from the peer (CLOCK_MONOTONIC) */
	uint8_t buf[TCP_BUF];
	size_t len;
};

struct ep_policy_responder {
	pthread_t thread;
	pthread_mutex_t lock; /* names, ttl, stats */
	struct ep_nameset names;
	uint32_t ttl;
	struct ep_policy_stats stats;
	int udp, tcp, stopfd, epfd;
	/* The slots belong to the thread alone; tcp_idle_ms is set by others
	 * (tests), read with __atomic. */
	struct tcp_conn *conns[MAX_TCP_CONNS];
	unsigned tcp_idle_ms;
	uint64_t tcp_gen;
	/* dns.cache.fallback: the thread's alone; NULL when none is set */
	struct ep_fallback *fb;
};

#define TAG_FALLBACK4 1000
#define TAG_FALLBACK6 1001

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void count(struct ep_policy_responder *r, enum ep_policy_kind k)
{
	switch (k) {
	case EP_POLICY_NODATA:
		r->stats.nodata++;
		break;
	case EP_POLICY_SERVFAIL:
		r->stats.servfail++;
		break;
	case EP_POLICY_FORMERR:
		r->stats.formerr++;
		break;
	case EP_POLICY_DROPPED:
		r->stats.dropped++;
		break;
	}
}

/*
 * The answer to q, or nothing when q went to the fallback resolvers (a name
 * outside the snapshot, with dns.cache.fallback set): their answer, or
 * SERVFAIL when none comes in time, follows through fallback_deliver.
 */
static enum ep_policy_kind answer_locked(struct ep_policy_responder *r, const uint8_t *q, size_t len,
					 const struct ep_fallback_client *client, uint8_t **out,
					 size_t *outlen)
{
	enum ep_policy_kind k;

	pthread_mutex_lock(&r->lock);
	k = ep_policy_answer(q, len, &r->names, r->ttl, out, outlen);
	pthread_mutex_unlock(&r->lock);
	if (k == EP_POLICY_SERVFAIL && r->fb && ep_fallback_submit(r->fb, q, len, client, mono_ns()) == 0) {
		free(*out);
		*out = NULL;
		*outlen = 0;
		return EP_POLICY_DROPPED; /* nothing to send now */
	}
	pthread_mutex_lock(&r->lock);
	count(r, k);
	pthread_mutex_unlock(&r->lock);
	return k;
}

static int tcp_send(struct tcp_conn *c, const uint8_t *m, size_t len)
{
	uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};

	/* Replies are small; a peer that does not read them loses them. */
	if (send(c->fd, hdr, 2, MSG_NOSIGNAL | MSG_DONTWAIT) != 2 ||
	    send(c->fd, m, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len)
		return -1;
	return 0;
}

static void tcp_close(struct ep_policy_responder *r, int slot);

/* A fallback resolver's answer (ans), or SERVFAIL when none came (ans NULL). */
static void fallback_deliver(void *arg, const struct ep_fallback_client *c, const uint8_t *q,
			     size_t qlen, const uint8_t *ans, size_t anslen, enum ep_fallback_result res)
{
	struct ep_policy_responder *r = arg;
	uint8_t *servfail = NULL;
	size_t sflen = 0;

	pthread_mutex_lock(&r->lock);
	if (ans) {
		r->stats.fallback_answered++;
	} else {
		if (res == EP_FALLBACK_BOGUS)
			r->stats.fallback_bogus++;
		else
			r->stats.fallback_failed++;
		count(r, ep_policy_answer(q, qlen, &r->names, r->ttl, &servfail, &sflen));
		ans = servfail;
		anslen = sflen;
	}
	pthread_mutex_unlock(&r->lock);
	if (!ans)
		return;
	if (!c->tcp) {
		sendto(r->udp, ans, anslen, MSG_DONTWAIT, (const struct sockaddr *)&c->addr, c->alen);
	} else if (r->conns[c->slot] && r->conns[c->slot]->gen == c->gen) {
		if (anslen > 0xffff || tcp_send(r->conns[c->slot], ans, anslen))
			tcp_close(r, c->slot);
	}
	free(servfail);
}

static void serve_udp(struct ep_policy_responder *r)
{
	uint8_t buf[4096];

	for (;;) {
		struct ep_fallback_client from = {.tcp = false};
		ssize_t n;
		uint8_t *out;
		size_t outlen;

		from.alen = sizeof(from.addr);
		n = recvfrom(r->udp, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from.addr,
			     &from.alen);
		if (n < 0)
			return;
		if (answer_locked(r, buf, (size_t)n, &from, &out, &outlen) != EP_POLICY_DROPPED && out)
			sendto(r->udp, out, outlen, MSG_DONTWAIT, (struct sockaddr *)&from.addr, from.alen);
		free(out);
	}
}

/* Stats of the TCP slots (tcp_idle_closed, tcp_evicted) go under the lock
 * like the others. */
static void count_tcp(struct ep_policy_responder *r, uint64_t *counter)
{
	pthread_mutex_lock(&r->lock);
	(*counter)++;
	pthread_mutex_unlock(&r->lock);
}

static void tcp_close(struct ep_policy_responder *r, int slot)
{
	epoll_ctl(r->epfd, EPOLL_CTL_DEL, r->conns[slot]->fd, NULL);
	close(r->conns[slot]->fd);
	free(r->conns[slot]);
	r->conns[slot] = NULL;
}

static void serve_tcp_conn(struct ep_policy_responder *r, int slot)
{
	struct tcp_conn *c = r->conns[slot];

	for (;;) {
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			tcp_close(r, slot);
			return;
		}
		if (n < 0)
			break;
		c->active_ns = mono_ns();
		c->len += (size_t)n;
		/* RFC 7766 framing: 2-byte length, then the message. */
		while (c->len >= 2) {
			size_t mlen = (size_t)c->buf[0] << 8 | c->buf[1];
			uint8_t *out = NULL;
			size_t outlen;
			struct ep_fallback_client from = {.tcp = true, .slot = slot, .gen = c->gen};

			if (mlen + 2 > sizeof(c->buf)) {
				tcp_close(r, slot);
				return;
			}
			if (c->len < mlen + 2)
				break;
			if (answer_locked(r, c->buf + 2, mlen, &from, &out, &outlen) !=
				    EP_POLICY_DROPPED &&
			    out && tcp_send(c, out, outlen)) {
				free(out);
				tcp_close(r, slot);
				return;
			}
			free(out);
			memmove(c->buf, c->buf + mlen + 2, c->len - mlen - 2);
			c->len -= mlen + 2;
		}
	}
}

/*
 * A free slot, or the one whose peer has been quiet the longest, closed to
 * make room: 64 connections that connect and then say nothing (a local user
 * can open them) must not lock dnsmasq's TCP queries out until they time
 * out. A busy peer that loses its slot reconnects, as after a timeout.
 */
static int free_slot(struct ep_policy_responder *r)
{
	int oldest = 0;

	for (int i = 0; i < MAX_TCP_CONNS; i++) {
		if (!r->conns[i])
			return i;
		if (r->conns[i]->active_ns < r->conns[oldest]->active_ns)
			oldest = i;
	}
	tcp_close(r, oldest);
	count_tcp(r, &r->stats.tcp_evicted);
	return oldest;
}

/* Closes connections idle for tcp_idle_ms; returns ms until the next one
 * falls due, or -1 when there is none. */
static int expire_idle(struct ep_policy_responder *r)
{
	uint64_t idle = (uint64_t)__atomic_load_n(&r->tcp_idle_ms, __ATOMIC_RELAXED) * 1000000ULL;
	uint64_t now = mono_ns(), next = UINT64_MAX;

	for (int i = 0; i < MAX_TCP_CONNS; i++) {
		uint64_t due;

		if (!r->conns[i])
			continue;
		due = r->conns[i]->active_ns + idle;
		if (due <= now) {
			tcp_close(r, i);
			count_tcp(r, &r->stats.tcp_idle_closed);
		} else if (due < next) {
			next = due;
		}
	}
	if (next == UINT64_MAX)
		return -1;
	/* Rounded up: waking a little late is fine, spinning early is not. */
	return (int)((next - now + 999999ULL) / 1000000ULL);
}

static void accept_tcp(struct ep_policy_responder *r)
{
	for (;;) {
		int fd = accept4(r->tcp, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct tcp_conn *c;
		int slot;

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		slot = free_slot(r);
		c->fd = fd;
		c->gen = ++r->tcp_gen;
		c->active_ns = mono_ns();
		r->conns[slot] = c;
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(3 + slot)};

		if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev))
			tcp_close(r, slot);
	}
}

static void *serve(void *arg)
{
	struct ep_policy_responder *r = arg;

	for (;;) {
		struct epoll_event evs[16];
		int timeout = expire_idle(r), n;

		if (r->fb) {
			int fb = ep_fallback_expire(r->fb, mono_ns());

			if (fb >= 0 && (timeout < 0 || fb < timeout))
				timeout = fb;
		}
		n = epoll_wait(r->epfd, evs, 16, timeout);
		for (int i = 0; i < n; i++) {
			uint32_t tag = evs[i].data.u32;

			if (tag == 0)
				return NULL; /* stop */
			if (tag == 1)
				serve_udp(r);
			else if (tag == 2)
				accept_tcp(r);
			else if (tag == TAG_FALLBACK4 || tag == TAG_FALLBACK6)
				ep_fallback_read(r->fb, ep_fallback_fd(r->fb, tag == TAG_FALLBACK4 ? AF_INET : AF_INET6));
			else if (tag - 3 < MAX_TCP_CONNS && r->conns[tag - 3])
				serve_tcp_conn(r, (int)(tag - 3));
		}
		if (n < 0 && errno != EINTR)
			return NULL;
	}
}

static int open_sock(int type, const struct sockaddr_in *sa, char *err, size_t errlen)
{
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/*
	 * Who else may bind addr:port while we hold it (checked on Linux 6.x,
	 * see docs/dns-cache.md): a UDP socket with SO_REUSEADDR lets a second
	 * socket that also sets it bind the same address and port, and the
	 * newest one then gets the unicast datagrams - dnsmasq's forwarded
	 * queries. So UDP goes without it: every other bind of the port gets
	 * EADDRINUSE. A TCP listener blocks every overlapping bind whatever
	 * either side sets; there SO_REUSEADDR only lets a restarted agent bind
	 * over connections of the previous one left in TIME_WAIT (we close idle
	 * ones first), which it would otherwise fail to for a minute. The port
	 * itself is below 1024, so unprivileged users cannot bind it at all.
	 */
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) ||
	    (type == SOCK_STREAM && listen(fd, 64))) {
		snprintf(err, errlen, "cannot listen on %s:%u/%s for the cache's policy responder: %s",
			 inet_ntoa(sa->sin_addr), ntohs(sa->sin_port),
			 type == SOCK_STREAM ? "tcp" : "udp", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int ep_policy_start(struct ep_policy_responder **out, const char *addr, uint16_t port,
		    uint32_t ttl, char *err, size_t errlen)
{
	return ep_policy_start_fallback(out, addr, port, ttl, NULL, 0, 0, NULL, err, errlen);
}

int ep_policy_start_fallback(struct ep_policy_responder **out, const char *addr, uint16_t port,
			     uint32_t ttl, const char *const *fallback, int n_fallback,
			     unsigned fallback_timeout_ms, struct ep_dnssec_anchor *anchor, char *err,
			     size_t errlen)
{
	struct ep_policy_responder *r = calloc(1, sizeof(*r));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct epoll_event ev = {.events = EPOLLIN};

	*out = NULL;
	if (!r) {
		ep_dnssec_anchor_free(anchor);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->udp = r->tcp = r->stopfd = r->epfd = -1;
	r->tcp_idle_ms = TCP_IDLE_MS_DEFAULT;
	pthread_mutex_init(&r->lock, NULL);
	ep_nameset_init(&r->names);
	r->ttl = ttl;
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "bad policy responder address %s", addr);
		goto fail;
	}
	r->udp = open_sock(SOCK_DGRAM, &sa, err, errlen);
	if (r->udp < 0)
		goto fail;
	r->tcp = open_sock(SOCK_STREAM, &sa, err, errlen);
	if (r->tcp < 0)
		goto fail;
	r->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->stopfd < 0 || r->epfd < 0) {
		snprintf(err, errlen, "eventfd/epoll: %s", strerror(errno));
		goto fail;
	}
	ev.data.u32 = 0;
	epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->stopfd, &ev);
	ev.data.u32 = 1;
	epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->udp, &ev);
	ev.data.u32 = 2;
	epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->tcp, &ev);
	if (n_fallback > 0) {
		if (ep_fallback_new(&r->fb, fallback, n_fallback, fallback_timeout_ms, fallback_deliver, r,
				    err, errlen))
			goto fail;
		ep_fallback_set_anchor(r->fb, anchor);
		anchor = NULL;
		for (int fam = 0; fam < 2; fam++) {
			int fd = ep_fallback_fd(r->fb, fam ? AF_INET6 : AF_INET);

			ev.data.u32 = fam ? TAG_FALLBACK6 : TAG_FALLBACK4;
			if (fd >= 0 && epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev)) {
				snprintf(err, errlen, "epoll: %s", strerror(errno));
				goto fail;
			}
		}
	}
	if (pthread_create(&r->thread, NULL, serve, r)) {
		snprintf(err, errlen, "cannot start the policy responder thread");
		goto fail;
	}
	*out = r;
	return 0;
fail:
	ep_dnssec_anchor_free(anchor);
	ep_fallback_free(r->fb);
	if (r->udp >= 0)
		close(r->udp);
	if (r->tcp >= 0)
		close(r->tcp);
	if (r->stopfd >= 0)
		close(r->stopfd);
	if (r->epfd >= 0)
		close(r->epfd);
	ep_nameset_free(&r->names);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return -EINVAL;
}

void ep_policy_set_names(struct ep_policy_responder *r, struct ep_nameset *names)
{
	struct ep_nameset old;

	pthread_mutex_lock(&r->lock);
	old = r->names;
	r->names = *names;
	pthread_mutex_unlock(&r->lock);
	ep_nameset_free(&old);
	ep_nameset_init(names);
}

void ep_policy_set_ttl(struct ep_policy_responder *r, uint32_t ttl)
{
	pthread_mutex_lock(&r->lock);
	r->ttl = ttl;
	pthread_mutex_unlock(&r->lock);
}

void ep_policy_set_tcp_idle_ms(struct ep_policy_responder *r, unsigned ms)
{
	/* Read by the thread at its next wake-up (an event, or the current
	 * wait's deadline). */
	__atomic_store_n(&r->tcp_idle_ms, ms ? ms : 1, __ATOMIC_RELAXED);
}

void ep_policy_get_stats(struct ep_policy_responder *r, struct ep_policy_stats *st)
{
	pthread_mutex_lock(&r->lock);
	*st = r->stats;
	pthread_mutex_unlock(&r->lock);
}

void ep_policy_stop(struct ep_policy_responder *r)
{
	uint64_t one = 1;

	if (!r)
		return;
	if (write(r->stopfd, &one, sizeof(one)) == sizeof(one))
		pthread_join(r->thread, NULL);
	for (int i = 0; i < MAX_TCP_CONNS; i++)
		if (r->conns[i]) {
			close(r->conns[i]->fd);
			free(r->conns[i]);
		}
	close(r->udp);
	close(r->tcp);
	close(r->stopfd);
	close(r->epfd);
	ep_fallback_free(r->fb);
	ep_nameset_free(&r->names);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
