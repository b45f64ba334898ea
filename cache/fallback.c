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

#include "dns_query.h"
#include "log.h"
#include "util.h"

struct pending {
	bool used;
	uint16_t id;	   /* ours, on the wire to the resolver */
	int server;	   /* index of the resolver asked now */
	uint64_t deadline_ns;
	struct ep_fallback_client client;
	uint8_t *q;	   /* the client's query, its id */
	size_t qlen, qend; /* qend: end of the question section */
	uint8_t *wire;	   /* what goes out: q, or q with the DO bit; our id */
	size_t wlen;
	/* a name of the anchored zone: validated */
	bool dnssec;
	bool waiting_keys; /* not sent yet: the zone's keys are being fetched */
	bool bogus;	   /* a resolver's answer failed validation */
	struct ep_fallback_question qi;
};

/* The fetch of the anchored zone's DNSKEY RRset: one at a time, through the
 * resolvers in order like a query. */
struct keyfetch {
	bool active, bogus;
	uint16_t id;
	int server;
	uint64_t deadline_ns;
	uint8_t *q;
	size_t qlen;
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
	/* DNSSEC: NULL when no anchor is set */
	struct ep_dnssec_anchor *anchor;
	struct ep_dnssec_keys keys; /* validated; keys.keys NULL: none */
	uint64_t keys_refresh_ns, keys_expire_ns;
	/* After a failed fetch the next waits a little: a resolver that serves
	 * bogus keys would otherwise be asked for them with every query. */
	uint64_t keys_retry_ns;
	bool keys_bogus; /* what the last failed fetch got */
	struct keyfetch kf;
	uint64_t bogus_logged_ns;
};

#define KEYS_RETRY_NS (1000ULL * 1000000ULL)
/* A bogus answer is worth a line in the log, not one per query. */
#define BOGUS_LOG_NS (10ULL * 1000000000ULL)

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
		bool taken;

		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (uint16_t)rand();
		taken = f->kf.active && f->kf.id == id;
		for (int i = 0; i < EP_FALLBACK_MAX_PENDING && !taken; i++)
			taken = f->p[i].used && !f->p[i].waiting_keys && f->p[i].id == id;
		if (!taken)
			return id;
	}
}

/* Sends wire (our id written into it) to resolver server. */
static int send_wire(struct ep_fallback *f, int server, uint8_t *wire, size_t len, uint16_t *id,
		     uint64_t *deadline_ns, uint64_t now_ns)
{
	const struct sockaddr_storage *ss = &f->servers[server];
	int fd = ss->ss_family == AF_INET ? f->fd4 : f->fd6;

	*id = fresh_id(f);
	wire[0] = (uint8_t)(*id >> 8);
	wire[1] = (uint8_t)*id;
	*deadline_ns = now_ns + f->timeout_ns;
	if (sendto(fd, wire, len, MSG_DONTWAIT, (const struct sockaddr *)ss, f->slen[server]) !=
	    (ssize_t)len)
		return -errno;
	return 0;
}

static void finish(struct ep_fallback *f, struct pending *p, const uint8_t *ans, size_t anslen)
{
	enum ep_fallback_result res = ans ? EP_FALLBACK_ANSWERED
				      : p->bogus ? EP_FALLBACK_BOGUS : EP_FALLBACK_FAILED;

	if (res == EP_FALLBACK_ANSWERED)
		f->st.answered++;
	else if (res == EP_FALLBACK_BOGUS)
		f->st.bogus++;
	else
		f->st.failed++;
	f->deliver(f->arg, &p->client, p->q, p->qlen, ans, anslen, res);
	free(p->q);
	free(p->wire);
	memset(p, 0, sizeof(*p));
}

/* The next resolver, or the end: a failed send counts as a timeout. */
static void advance(struct ep_fallback *f, struct pending *p, uint64_t now_ns)
{
	while (++p->server < f->n)
		if (send_wire(f, p->server, p->wire, p->wlen, &p->id, &p->deadline_ns, now_ns) == 0)
			return;
	finish(f, p, NULL, 0);
}

/* ---- DNSSEC --------------------------------------------------------------- */

int ep_fallback_dnssec_query(const uint8_t *q, size_t qlen, struct ep_fallback_question *qi,
			     uint8_t **wire, size_t *wlen)
{
	ldns_pkt *p = NULL;
	ldns_rr *question;
	char *name;
	int rc = 0;

	*wire = NULL;
	*wlen = 0;
	memset(qi, 0, sizeof(*qi));
	if (ldns_wire2pkt(&p, q, qlen) != LDNS_STATUS_OK)
		return -EINVAL;
	if (ldns_pkt_qdcount(p) != 1 || !(question = ldns_rr_list_rr(ldns_pkt_question(p), 0))) {
		rc = -EINVAL;
		goto out;
	}
	name = ldns_rdf2str(ldns_rr_owner(question));
	if (!name || strlen(name) >= sizeof(qi->qname)) {
		free(name);
		rc = name ? -EINVAL : -ENOMEM;
		goto out;
	}
	snprintf(qi->qname, sizeof(qi->qname), "%s", name);
	free(name);
	qi->qtype = (uint16_t)ldns_rr_get_type(question);
	qi->edns = ldns_pkt_edns(p);
	qi->dnssec_ok = ldns_pkt_edns_do(p);
	ldns_pkt_set_edns_do(p, true);
	if (ldns_pkt_edns_udp_size(p) < EP_DNSQ_EDNS_SIZE)
		ldns_pkt_set_edns_udp_size(p, EP_DNSQ_EDNS_SIZE);
	if (ldns_pkt2wire(wire, p, wlen) != LDNS_STATUS_OK) {
		*wire = NULL;
		rc = -ENOMEM;
	}
out:
	ldns_pkt_free(p);
	return rc;
}

static bool dnssec_type(ldns_rr_type t)
{
	return t == LDNS_RR_TYPE_RRSIG || t == LDNS_RR_TYPE_NSEC || t == LDNS_RR_TYPE_NSEC3;
}

/* A section without the DNSSEC records a client that did not set DO gets
 * none of (RFC 4035 3.2.1), unless it asked for that type. */
static ldns_rr_list *strip_list(const ldns_rr_list *l, uint16_t qtype)
{
	ldns_rr_list *out = ldns_rr_list_new();

	for (size_t i = 0; out && i < ldns_rr_list_rr_count(l); i++) {
		ldns_rr *r = ldns_rr_list_rr(l, i), *c;

		if (dnssec_type(ldns_rr_get_type(r)) && ldns_rr_get_type(r) != qtype)
			continue;
		c = ldns_rr_clone(r);
		if (!c || !ldns_rr_list_push_rr(out, c)) {
			ldns_rr_free(c);
			ldns_rr_list_deep_free(out);
			return NULL;
		}
	}
	return out;
}

/* The reply as the client asked for it: without what DO brought. */
static int strip_dnssec(ldns_pkt *pkt, const struct ep_fallback_question *qi, uint8_t **out,
			size_t *outlen)
{
	ldns_rr_list *lists[3] = {};
	int rc = 0;

	for (int i = 0; i < 3; i++) {
		ldns_rr_list *cur = i == 0 ? ldns_pkt_answer(pkt)
				    : i == 1 ? ldns_pkt_authority(pkt) : ldns_pkt_additional(pkt);

		lists[i] = strip_list(cur, qi->qtype);
		if (!lists[i]) {
			rc = -ENOMEM;
			goto out;
		}
	}
	ldns_rr_list_deep_free(ldns_pkt_answer(pkt));
	ldns_pkt_set_answer(pkt, lists[0]);
	ldns_rr_list_deep_free(ldns_pkt_authority(pkt));
	ldns_pkt_set_authority(pkt, lists[1]);
	ldns_rr_list_deep_free(ldns_pkt_additional(pkt));
	ldns_pkt_set_additional(pkt, lists[2]);
	ldns_pkt_set_ancount(pkt, (uint16_t)ldns_rr_list_rr_count(lists[0]));
	ldns_pkt_set_nscount(pkt, (uint16_t)ldns_rr_list_rr_count(lists[1]));
	ldns_pkt_set_arcount(pkt, (uint16_t)ldns_rr_list_rr_count(lists[2]));
	memset(lists, 0, sizeof(lists));
	ldns_pkt_set_edns_do(pkt, false);
	if (!qi->edns) {
		/* no OPT record to a client that sent none (RFC 6891 7) */
		ldns_pkt_set_edns_udp_size(pkt, 0);
		ldns_pkt_set_edns_extended_rcode(pkt, 0);
		ldns_pkt_set_edns_version(pkt, 0);
		ldns_pkt_set_edns_z(pkt, 0);
		ldns_rdf_deep_free(ldns_pkt_edns_data(pkt));
		ldns_pkt_set_edns_data(pkt, NULL);
		pkt->_edns_present = 0; /* ldns 1.8 has no setter; it writes an OPT while set */
	}
	if (ldns_pkt2wire(out, pkt, outlen) != LDNS_STATUS_OK) {
		*out = NULL;
		rc = -ENOMEM;
	}
out:
	for (int i = 0; i < 3; i++)
		ldns_rr_list_deep_free(lists[i]);
	return rc;
}

enum ep_fallback_result ep_fallback_validate(const struct ep_dnssec_anchor *anchor,
					     const ldns_rr_list *keys, const uint8_t *reply, size_t n,
					     const struct ep_fallback_question *qi, time_t now,
					     uint8_t **out, size_t *outlen, char *why, size_t whylen)
{
	enum ep_fallback_result res = EP_FALLBACK_ANSWERED;
	enum ep_dnssec_verdict v;
	ldns_pkt *pkt = NULL;

	*out = NULL;
	*outlen = 0;
	snprintf(why, whylen, "%s", "");
	if (ldns_wire2pkt(&pkt, reply, n) != LDNS_STATUS_OK) {
		snprintf(why, whylen, "%s: a reply that does not parse", qi->qname);
		return EP_FALLBACK_BOGUS;
	}
	v = ep_dnssec_check_answer(anchor, keys, pkt, qi->qname, qi->qtype, now, why, whylen);
	switch (v) {
	case EP_DNSSEC_SECURE:
	case EP_DNSSEC_INSECURE: /* a CNAME chain that leaves the zone: the in-zone part validated */
	case EP_DNSSEC_NO_DATA:	 /* NXDOMAIN, NODATA: relayed as they are (no denial proofs) */
		break;
	case EP_DNSSEC_BOGUS:
		/* Over UDP a truncated reply may just have lost its RRSIGs: no
		 * answer from this resolver, not a forgery. */
		res = ldns_pkt_tc(pkt) ? EP_FALLBACK_FAILED : EP_FALLBACK_BOGUS;
		break;
	case EP_DNSSEC_ERROR:
		res = EP_FALLBACK_FAILED;
		break;
	}
	if (res == EP_FALLBACK_ANSWERED && !qi->dnssec_ok && strip_dnssec(pkt, qi, out, outlen))
		res = EP_FALLBACK_FAILED;
	ldns_pkt_free(pkt);
	return res;
}

void ep_fallback_set_anchor(struct ep_fallback *f, struct ep_dnssec_anchor *anchor)
{
	ep_dnssec_anchor_free(f->anchor);
	f->anchor = anchor;
}

/* The queries that waited for keys go out now, or fail with the fetch. */
static void release_waiting(struct ep_fallback *f, bool have_keys, uint64_t now_ns)
{
	for (int i = 0; i < EP_FALLBACK_MAX_PENDING; i++) {
		struct pending *p = &f->p[i];

		if (!p->used || !p->waiting_keys)
			continue;
		p->waiting_keys = false;
		if (have_keys) {
			p->server = -1;
			advance(f, p, now_ns);
		} else {
			p->bogus = f->kf.bogus;
			finish(f, p, NULL, 0);
		}
	}
}

static void keyfetch_end(struct ep_fallback *f, bool ok, uint64_t now_ns)
{
	if (!ok) {
		f->st.key_failures++;
		f->keys_retry_ns = now_ns + KEYS_RETRY_NS;
		f->keys_bogus = f->kf.bogus;
		log_warn("cache fallback: no resolver gave a valid DNSKEY RRset for %s%s%s",
			 ep_dnssec_anchor_zone(f->anchor), f->kf.bogus ? " (bogus keys)" : " in time",
			 f->keys.keys ? "; the keys validated before serve until they expire"
				      : "; its names get SERVFAIL");
	}
	free(f->kf.q);
	f->kf.q = NULL;
	f->kf.active = false;
	release_waiting(f, f->keys.keys != NULL, now_ns);
	f->kf.bogus = false;
}

/* The key fetch to its next resolver, or its end. */
static void keyfetch_advance(struct ep_fallback *f, uint64_t now_ns)
{
	while (++f->kf.server < f->n)
		if (send_wire(f, f->kf.server, f->kf.q, f->kf.qlen, &f->kf.id, &f->kf.deadline_ns,
			      now_ns) == 0)
			return;
	keyfetch_end(f, false, now_ns);
}

static void keyfetch_start(struct ep_fallback *f, uint64_t now_ns)
{
	if (ep_dnsq_build_flags(ep_dnssec_anchor_zone(f->anchor), LDNS_RR_TYPE_DNSKEY, 0, EP_DNSQ_F_DO,
				&f->kf.q, &f->kf.qlen)) {
		f->kf.q = NULL;
		return; /* out of memory: the waiting queries time out */
	}
	f->kf.active = true;
	f->kf.bogus = false;
	f->kf.server = -1;
	f->st.key_fetches++;
	keyfetch_advance(f, now_ns);
}

static void keyfetch_reply(struct ep_fallback *f, const uint8_t *buf, size_t n, uint64_t now_ns)
{
	struct ep_dnssec_keys k;
	enum ep_dnssec_verdict v = EP_DNSSEC_BOGUS;
	ldns_pkt *pkt = NULL;
	char why[240] = "a DNSKEY reply that does not parse";

	if (ldns_wire2pkt(&pkt, buf, n) == LDNS_STATUS_OK) {
		if (ldns_pkt_tc(pkt) || (ldns_pkt_get_rcode(pkt) != LDNS_RCODE_NOERROR &&
					 ldns_pkt_get_rcode(pkt) != LDNS_RCODE_NXDOMAIN)) {
			/* truncated, SERVFAIL, REFUSED: no answer, not a forgery */
			ldns_pkt_free(pkt);
			keyfetch_advance(f, now_ns);
			return;
		}
		v = ep_dnssec_check_dnskey(f->anchor, pkt, time(NULL), &k, why, sizeof(why));
		ldns_pkt_free(pkt);
	}
	if (v == EP_DNSSEC_SECURE) {
		ep_dnssec_keys_free(&f->keys);
		f->keys = k;
		f->keys_refresh_ns = now_ns + (uint64_t)k.refresh_s * 1000000000ULL;
		f->keys_expire_ns = now_ns + (uint64_t)k.expire_s * 1000000000ULL;
		log_debug("cache fallback: %s", why);
		keyfetch_end(f, true, now_ns);
		return;
	}
	if (v == EP_DNSSEC_BOGUS) {
		f->kf.bogus = true;
		log_warn("cache fallback: resolver %d of dns.cache.fallback: %s", f->kf.server + 1, why);
	}
	keyfetch_advance(f, now_ns);
}

/* For a query of the anchored zone: usable keys now (true), or it waits for
 * the fetch (false). Keys due for refresh serve on while it runs. */
static bool keys_ready(struct ep_fallback *f, uint64_t now_ns)
{
	if (f->keys.keys && now_ns >= f->keys_expire_ns) {
		ep_dnssec_keys_free(&f->keys);
		f->keys_refresh_ns = f->keys_expire_ns = 0;
	}
	if (!f->kf.active && (!f->keys.keys || now_ns >= f->keys_refresh_ns) &&
	    now_ns >= f->keys_retry_ns)
		keyfetch_start(f, now_ns);
	return f->keys.keys != NULL;
}

/* A reply to an anchored query: relayed when it validates; a bogus one makes
 * the next resolver be asked. */
static void dnssec_reply(struct ep_fallback *f, struct pending *p, uint8_t *buf, size_t n,
			 uint64_t now_ns)
{
	uint8_t *out = NULL;
	size_t outlen = 0;
	char why[240];
	enum ep_fallback_result res;

	if (!f->keys.keys) { /* expired while this query was out: ask again */
		advance(f, p, now_ns);
		return;
	}
	res = ep_fallback_validate(f->anchor, f->keys.keys, buf, n, &p->qi, time(NULL), &out, &outlen,
				   why, sizeof(why));
	if (res == EP_FALLBACK_ANSWERED) {
		uint8_t *m = out ? out : buf;
		size_t ml = out ? outlen : n;

		f->st.validated++;
		m[0] = p->q[0];
		m[1] = p->q[1];
		finish(f, p, m, ml);
		free(out);
		return;
	}
	if (res == EP_FALLBACK_BOGUS) {
		p->bogus = true;
		f->st.bogus_replies++;
		if (!f->bogus_logged_ns || now_ns - f->bogus_logged_ns >= BOGUS_LOG_NS) {
			log_warn("cache fallback: resolver %d of dns.cache.fallback: DNSSEC validation failed: %s",
				 p->server + 1, why);
			f->bogus_logged_ns = now_ns;
		}
	}
	advance(f, p, now_ns);
}

/* ---- queries -------------------------------------------------------------- */

int ep_fallback_submit(struct ep_fallback *f, const uint8_t *q, size_t qlen,
		       const struct ep_fallback_client *c, uint64_t now_ns)
{
	struct pending *p = NULL;
	size_t qend = question_end(q, qlen);
	struct ep_fallback_question qi;
	uint8_t *wire = NULL;
	size_t wlen = 0;
	bool dnssec = false;

	if (!qend || (q[2] & 0x80))
		return -EINVAL;
	for (int i = 0; i < EP_FALLBACK_MAX_PENDING && !p; i++)
		if (!f->p[i].used)
			p = &f->p[i];
	if (!p) {
		f->st.busy++;
		return -EAGAIN;
	}
	if (f->anchor) {
		int rc = ep_fallback_dnssec_query(q, qlen, &qi, &wire, &wlen);

		if (rc)
			return rc;
		dnssec = ep_dnssec_in_zone(f->anchor, qi.qname);
		if (!dnssec) {
			free(wire);
			wire = NULL;
		} else if (!question_end(wire, wlen)) {
			free(wire);
			return -EINVAL;
		}
	}
	if (!wire) {
		wire = malloc(qlen);
		if (!wire)
			return -ENOMEM;
		memcpy(wire, q, qlen);
		wlen = qlen;
	}
	p->q = malloc(qlen);
	if (!p->q) {
		free(wire);
		return -ENOMEM;
	}
	memcpy(p->q, q, qlen);
	p->used = true;
	p->qlen = qlen;
	p->qend = qend;
	p->wire = wire;
	p->wlen = wlen;
	p->client = *c;
	p->server = -1;
	p->dnssec = dnssec;
	if (dnssec)
		p->qi = qi;
	f->st.forwarded++;
	if (dnssec && !keys_ready(f, now_ns)) {
		if (f->kf.active) {
			p->waiting_keys = true;
			return 0;
		}
		/* the last fetch failed moments ago (or memory ran out): SERVFAIL */
		p->bogus = f->keys_bogus;
		finish(f, p, NULL, 0);
		return 0;
	}
	advance(f, p, now_ns);
	return 0;
}

static bool from_server(const struct ep_fallback *f, int server, const struct sockaddr_storage *from,
			socklen_t fl)
{
	return server >= 0 && server < f->n && fl == f->slen[server] &&
	       memcmp(from, &f->servers[server], fl) == 0;
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
		if (f->kf.active && f->kf.id == id && from_server(f, f->kf.server, &from, fl) &&
		    ep_fallback_reply_matches(buf, (size_t)n, f->kf.q, f->kf.qlen)) {
			keyfetch_reply(f, buf, (size_t)n, ep_now_ns());
			continue;
		}
		for (int i = 0; i < EP_FALLBACK_MAX_PENDING && !match; i++) {
			struct pending *p = &f->p[i];

			if (!p->used || p->waiting_keys || p->id != id ||
			    !from_server(f, p->server, &from, fl))
				continue;
			if (ep_fallback_reply_matches(buf, (size_t)n, p->wire, p->wlen))
				match = p;
		}
		if (!match) {
			f->st.ignored++;
			continue;
		}
		if (match->dnssec) {
			dnssec_reply(f, match, buf, (size_t)n, ep_now_ns());
			continue;
		}
		buf[0] = match->q[0];
		buf[1] = match->q[1];
		finish(f, match, buf, (size_t)n);
	}
}

int ep_fallback_expire(struct ep_fallback *f, uint64_t now_ns)
{
	uint64_t next = UINT64_MAX;

	if (f->kf.active && now_ns >= f->kf.deadline_ns)
		keyfetch_advance(f, now_ns);
	if (f->kf.active)
		next = f->kf.deadline_ns;
	for (int i = 0; i < EP_FALLBACK_MAX_PENDING; i++) {
		struct pending *p = &f->p[i];

		if (!p->used || p->waiting_keys)
			continue; /* the key fetch's deadline is theirs */
		if (now_ns >= p->deadline_ns)
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
	for (int i = 0; i < EP_FALLBACK_MAX_PENDING; i++) {
		free(f->p[i].q);
		free(f->p[i].wire);
	}
	free(f->kf.q);
	ep_dnssec_keys_free(&f->keys);
	ep_dnssec_anchor_free(f->anchor);
	if (f->fd4 >= 0)
		close(f->fd4);
	if (f->fd6 >= 0)
		close(f->fd6);
	free(f);
}
