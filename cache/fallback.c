#include "fallback.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

struct pending {
	bool used;
	uint16_t id;	   /* ours, on the wire to the resolver */
	uint16_t client_id;
	int server;	   /* index of the resolver asked now */
	uint64_t deadline_ns;
	struct ep_fallback_client client;
	uint8_t *q; /* the client's query (its id) */
	size_t qlen, qend; /* qend: end of the question section */
};

struct ep_fallback {
	struct sockaddr_storage servers[EP_FALLBACK_MAX_SERVERS];
	socklen_t slen[EP_FALLBACK_MAX_SERVERS];
	int n;
	int fd4, fd6;
	uint64_t timeout_ns;
	ep_fallback_deliver_fn deliver;
	void *arg;
	struct pending p[EP_FALLBACK_MAX_PENDING];
	struct ep_fallback_stats st;
};

int ep_fallback_parse_server(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *hash = strchr(s, '#');
	long port = 53;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	size_t hl = hash ? (size_t)(hash - s) : strlen(s);

	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (hash) {
		char *end;

		port = strtol(hash + 1, &end, 10);
		if (!hash[1] || *end || port <= 0 || port > 65535)
			return -EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return 0;
	}
	return -EINVAL;
}

/* The end of the question section of a one-question message, or 0. */
static size_t question_end(const uint8_t *m, size_t len)
{
	size_t o = 12;

	if (len < 12 || m[4] != 0 || m[5] != 1)
		return 0;
	while (o < len && m[o]) {
		if (m[o] & 0xc0)
			return 0; /* no compression in a question we sent */
		o += 1u + m[o];
	}
	if (o + 5 > len)
		return 0;
	return o + 5;
}

static bool same_question(const uint8_t *a, const uint8_t *b, size_t end)
{
	for (size_t i = 12; i < end; i++)
		if (tolower(a[i]) != tolower(b[i]))
			return false;
	return true;
}

bool ep_fallback_reply_matches(const uint8_t *reply, size_t n, const uint8_t *sent, size_t sent_len)
{
	size_t qend = question_end(sent, sent_len);

	return qend && n >= qend && n >= 12 && (reply[2] & 0x80) && reply[0] == sent[0] &&
	       reply[1] == sent[1] && reply[4] == 0 && reply[5] == 1 && same_question(reply, sent, qend);
}

static int open_fd(int family)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (family == AF_INET6) {
		int one = 1;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	return fd;
}

int ep_fallback_new(struct ep_fallback **out, const char *const *servers, int n,
		    unsigned timeout_ms, ep_fallback_deliver_fn deliver, void *arg, char *err,
		    size_t errlen)
{
	struct ep_fallback *f;

	*out = NULL;
	if (n <= 0 || n > EP_FALLBACK_MAX_SERVERS) {
		snprintf(err, errlen, "between 1 and %d fallback resolvers", EP_FALLBACK_MAX_SERVERS);
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	f->fd4 = f->fd6 = -1;
	for (int i = 0; i < n; i++) {
		if (ep_fallback_parse_server(servers[i], &f->servers[i], &f->slen[i])) {
			snprintf(err, errlen, "fallback resolver '%s': not ADDR or ADDR#PORT", servers[i]);
			ep_fallback_free(f);
			return -EINVAL;
		}
		int fam = f->servers[i].ss_family, *fd = fam == AF_INET ? &f->fd4 : &f->fd6;

		if (*fd < 0 && (*fd = open_fd(fam)) < 0) {
			snprintf(err, errlen, "fallback socket: %s", strerror(errno));
			ep_fallback_free(f);
			return -errno;
		}
	}
	f->n = n;
	f->timeout_ns = (uint64_t)(timeout_ms ? timeout_ms : EP_FALLBACK_TIMEOUT_MS_DEFAULT) * 1000000ULL;
	f->deliver = deliver;
	f->arg = arg;
	*out = f;
	return 0;
}

int ep_fallback_fd(const struct ep_fallback *f, int family)
{
	return family == AF_INET ? f->fd4 : f->fd6;
}

static uint16_t fresh_id(const struct ep_fallback *f)
{
	for (;;) {
		uint16_t id;
		bool taken = false;

		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (uint16_t)rand();
		for (int i = 0; i < EP_FALLBACK_MAX_PENDING && !taken; i++)
			taken = f->p[i].used && f->p[i].id == id;
		if (!taken)
			return id;
	}
}

/* Sends p's query to its current resolver. */
static int send_to_server(struct ep_fallback *f, struct pending *p, uint64_t now_ns)
{
	const struct sockaddr_storage *ss = &f->servers[p->server];
	int fd = ss->ss_family == AF_INET ? f->fd4 : f->fd6;

	p->id = fresh_id(f);
	p->q[0] = (uint8_t)(p->id >> 8);
	p->q[1] = (uint8_t)p->id;
	p->deadline_ns = now_ns + f->timeout_ns;
	if (sendto(fd, p->q, p->qlen, MSG_DONTWAIT, (const struct sockaddr *)ss, f->slen[p->server]) !=
	    (ssize_t)p->qlen)
		return -errno;
	return 0;
}

static void finish(struct ep_fallback *f, struct pending *p, const uint8_t *ans, size_t anslen)
{
	p->q[0] = (uint8_t)(p->client_id >> 8);
	p->q[1] = (uint8_t)p->client_id;
	if (ans)
		f->st.answered++;
	else
		f->st.failed++;
	f->deliver(f->arg, &p->client, p->q, p->qlen, ans, anslen);
	free(p->q);
	memset(p, 0, sizeof(*p));
}

/* The next resolver, or the end: a failed send counts as a timeout. */
static void advance(struct ep_fallback *f, struct pending *p, uint64_t now_ns)
{
	while (++p->server < f->n)
		if (send_to_server(f, p, now_ns) == 0)
			return;
	finish(f, p, NULL, 0);
}

int ep_fallback_submit(struct ep_fallback *f, const uint8_t *q, size_t qlen,
		       const struct ep_fallback_client *c, uint64_t now_ns)
{
	struct pending *p = NULL;
	size_t qend = question_end(q, qlen);

	if (!qend || (q[2] & 0x80))
		return -EINVAL;
	for (int i = 0; i < EP_FALLBACK_MAX_PENDING && !p; i++)
		if (!f->p[i].used)
			p = &f->p[i];
	if (!p) {
		f->st.busy++;
		return -EAGAIN;
	}
	p->q = malloc(qlen);
	if (!p->q)
		return -ENOMEM;
	memcpy(p->q, q, qlen);
	p->used = true;
	p->qlen = qlen;
	p->qend = qend;
	p->client = *c;
	p->client_id = (uint16_t)(q[0] << 8 | q[1]);
	p->server = -1;
	f->st.forwarded++;
	advance(f, p, now_ns);
	return 0;
}

void ep_fallback_read(struct ep_fallback *f, int fd)
{
	uint8_t buf[65535];

	for (;;) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		struct pending *match = NULL;
		uint16_t id;

		if (n < 0)
			return;
		if (n < 12 || !(buf[2] & 0x80)) {
			f->st.ignored++;
			continue;
		}
		id = (uint16_t)(buf[0] << 8 | buf[1]);
		for (int i = 0; i < EP_FALLBACK_MAX_PENDING && !match; i++) {
			struct pending *p = &f->p[i];

			if (!p->used || p->id != id || fl != f->slen[p->server] ||
			    memcmp(&from, &f->servers[p->server], fl) != 0)
				continue;
			/* p->q carries our id while it waits */
			if (ep_fallback_reply_matches(buf, (size_t)n, p->q, p->qlen))
				match = p;
		}
		if (!match) {
			f->st.ignored++;
			continue;
		}
		buf[0] = (uint8_t)(match->client_id >> 8);
		buf[1] = (uint8_t)match->client_id;
		finish(f, match, buf, (size_t)n);
	}
}

int ep_fallback_expire(struct ep_fallback *f, uint64_t now_ns)
{
	uint64_t next = UINT64_MAX;

	for (int i = 0; i < EP_FALLBACK_MAX_PENDING; i++) {
		struct pending *p = &f->p[i];

		if (p->used && now_ns >= p->deadline_ns)
			advance(f, p, now_ns);
		if (p->used && p->deadline_ns < next)
			next = p->deadline_ns;
	}
	if (next == UINT64_MAX)
		return -1;
	return (int)((next - now_ns + 999999ULL) / 1000000ULL);
}

void ep_fallback_get_stats(const struct ep_fallback *f, struct ep_fallback_stats *st)
{
	*st = f->st;
}

void ep_fallback_free(struct ep_fallback *f)
{
	if (!f)
		return;
	for (int i = 0; i < EP_FALLBACK_MAX_PENDING; i++)
		free(f->p[i].q);
	if (f->fd4 >= 0)
		close(f->fd4);
	if (f->fd6 >= 0)
		close(f->fd6);
	free(f);
}
