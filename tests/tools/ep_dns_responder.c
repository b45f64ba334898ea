/*
 * ep_dns_responder: a DNS server for tests and drills that answers by rule.
 * It stands in for upstream resolvers that misbehave: one that fails some
 * names (SERVFAIL, REFUSED), a rogue one that answers every name with a wrong
 * address, a spoofer that floods replies with random ids or from the wrong
 * port, a slow one, one that does not chase CNAMEs, one that truncates. Names
 * it does not fail itself it relays to a real upstream (nsd in the lab).
 *
 * Plain UDP and TCP on one address:port, one thread, poll(). Built with only
 * ldns, like the other tools:
 *   gcc -O2 -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE \
 *       tests/tools/ep_dns_responder.c -lldns -o build/tests/tools/ep_dns_responder
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#define MAX_RULES 32
#define MAX_TCP 64
#define PENDING_TTL_MS 3000

enum mode {
	M_FORWARD,	  /* relay to UPSTREAM */
	M_NO_CHASE,	  /* relay, cut the answer after the first CNAME */
	M_RCODE,	  /* answer with an rcode and nothing else */
	M_WRONG_ANSWER,	  /* answer with a fixed address */
	M_DELAY,	  /* relay, answer MS later */
	M_DROP,		  /* never answer */
	M_TRUNCATE,	  /* UDP: TC and no records; TCP: relay */
	M_SPOOF,	  /* N replies with random ids and a wrong address, then relay */
	M_WRONG_PORT,	  /* a right-id wrong answer from another port, then relay */
	M_WRONG_ID,	  /* relay with the id changed */
	M_WRONG_QUESTION, /* relay with the question name changed */
};

struct rule {
	enum mode mode;
	char suffix[256]; /* "" matches every name */
	int rcode;
	unsigned ms, count;
	unsigned share; /* percent of matching queries the rule takes (0: all) */
	double sigma;	/* delay: > 0 draws each delay from a lognormal around ms */
	struct sockaddr_storage up; /* forward / no-chase target (else --upstream) */
	socklen_t uplen;
	char addr[64];		    /* wrong-answer / spoof address */
};

struct pending {
	bool used;
	uint64_t due;	     /* when to give up on the upstream, ms */
	uint16_t client_id;
	struct sockaddr_storage client;
	socklen_t clen;
	const struct rule *rule;
};

struct delayed {
	uint64_t due;
	uint8_t *msg;
	size_t len;
	struct sockaddr_storage to;
	socklen_t tolen;
	struct delayed *next;
};

static struct rule rules[MAX_RULES];
static int n_rules;
static struct sockaddr_storage upstream;
static socklen_t upstream_len;
static int udp_fd = -1, tcp_fd = -1, up_fd = -1;
static struct pending pend[65536];
static struct delayed *dq_head, *dq_tail;
static volatile sig_atomic_t stop;
static bool verbose;
static unsigned long st_queries, st_relayed, st_local;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint16_t rnd16(void)
{
	uint16_t v;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint16_t)rand();
	return v;
}

static int parse_endpoint(const char *s, struct sockaddr_storage *ss, socklen_t *len, int defport)
{
	char host[128];
	const char *port = NULL;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	int p = defport;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *e = strchr(s, ']');

		if (!e || (size_t)(e - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, (size_t)(e - s - 1));
		host[e - s - 1] = '\0';
		if (e[1] == ':')
			port = e + 2;
	} else {
		const char *c = strrchr(s, ':');

		if (c && strchr(s, ':') != c)
			c = NULL; /* bare IPv6 */
		snprintf(host, sizeof(host), "%.*s", c ? (int)(c - s) : (int)strlen(s), s);
		if (c)
			port = c + 1;
	}
	if (port)
		p = atoi(port);
	if (p <= 0 || p > 65535)
		return -1;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ep_dns_responder --listen ADDR:PORT [--upstream ADDR:PORT] [-v]\n"
		"                        --mode MODE [ARG] [--match SUFFIX] [--mode ...]\n"
		"\n"
		"Answers DNS over UDP and TCP on ADDR:PORT by rules, tried in order; the first\n"
		"whose --match SUFFIX covers the query name (the name itself or below it) wins.\n"
		"A --mode without --match covers every name. No rule: REFUSED.\n"
		"--share PERCENT after a --mode: the rule takes only that share of the\n"
		"queries it matches (chosen at random); the rest go on to the next rule.\n"
		"\n"
		"modes:\n"
		"  forward [UPSTREAM]     relay to UPSTREAM (default --upstream)\n"
		"  no-chase [UPSTREAM]    relay, but cut the answer after the first CNAME, as a\n"
		"                         resolver that does not chase CNAMEs would\n"
		"  servfail | refused | nxdomain | formerr   that rcode, no records\n"
		"  wrong-answer ADDR      A (or AAAA, for an IPv6 ADDR) answer ADDR, TTL 30;\n"
		"                         the other type gets NODATA (a rogue resolver)\n"
		"  delay MS [SIGMA]       relay to --upstream, answer MS milliseconds later; with\n"
		"                         SIGMA, each delay is lognormal with median MS\n"
		"  drop                   never answer\n"
		"  truncate               over UDP: TC set, no records; over TCP: relay\n"
		"  spoof N                N replies with random wrong ids answering 192.0.2.66,\n"
		"                         then relay (a spoofer racing the real answer)\n"
		"  wrong-port             a reply with the right id and 192.0.2.66 sent from\n"
		"                         another port, then relay\n"
		"  wrong-id               relay with a different transaction id\n"
		"  wrong-question         relay with a different question name\n"
		"\n"
		"SIGTERM/SIGINT stop it; it prints counters on stderr then.\n");
}

static int add_rule(int argc, char **argv, int *i)
{
	struct rule *r;
	const char *m;

	if (n_rules == MAX_RULES || *i + 1 >= argc)
		return -1;
	r = &rules[n_rules++];
	memset(r, 0, sizeof(*r));
	m = argv[++*i];
#define NEXTARG() (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) ? argv[++*i] : NULL)
	if (!strcmp(m, "forward") || !strcmp(m, "no-chase")) {
		const char *u = NEXTARG();

		r->mode = !strcmp(m, "forward") ? M_FORWARD : M_NO_CHASE;
		if (u && parse_endpoint(u, &r->up, &r->uplen, 53))
			return -1;
	} else if (!strcmp(m, "servfail")) {
		r->mode = M_RCODE;
		r->rcode = LDNS_RCODE_SERVFAIL;
	} else if (!strcmp(m, "refused")) {
		r->mode = M_RCODE;
		r->rcode = LDNS_RCODE_REFUSED;
	} else if (!strcmp(m, "nxdomain")) {
		r->mode = M_RCODE;
		r->rcode = LDNS_RCODE_NXDOMAIN;
	} else if (!strcmp(m, "formerr")) {
		r->mode = M_RCODE;
		r->rcode = LDNS_RCODE_FORMERR;
	} else if (!strcmp(m, "wrong-answer")) {
		const char *a = NEXTARG();
		unsigned char tmp[16];

		r->mode = M_WRONG_ANSWER;
		if (!a || (inet_pton(AF_INET, a, tmp) != 1 && inet_pton(AF_INET6, a, tmp) != 1))
			return -1;
		snprintf(r->addr, sizeof(r->addr), "%s", a);
	} else if (!strcmp(m, "delay")) {
		const char *a = NEXTARG();

		const char *sg;

		r->mode = M_DELAY;
		if (!a || atoi(a) < 0)
			return -1;
		r->ms = (unsigned)atoi(a);
		sg = NEXTARG();
		if (sg && (r->sigma = atof(sg)) <= 0)
			return -1;
	} else if (!strcmp(m, "drop")) {
		r->mode = M_DROP;
	} else if (!strcmp(m, "truncate")) {
		r->mode = M_TRUNCATE;
	} else if (!strcmp(m, "spoof")) {
		const char *a = NEXTARG();

		r->mode = M_SPOOF;
		if (!a || atoi(a) <= 0)
			return -1;
		r->count = (unsigned)atoi(a);
	} else if (!strcmp(m, "wrong-port")) {
		r->mode = M_WRONG_PORT;
	} else if (!strcmp(m, "wrong-id")) {
		r->mode = M_WRONG_ID;
	} else if (!strcmp(m, "wrong-question")) {
		r->mode = M_WRONG_QUESTION;
	} else {
		return -1;
	}
#undef NEXTARG
	if (r->mode == M_SPOOF || r->mode == M_WRONG_PORT)
		snprintf(r->addr, sizeof(r->addr), "192.0.2.66");
	return 0;
}

/* "Www.Example.COM." -> "www.example.com" */
static void rdf_name(const ldns_rdf *rdf, char *out, size_t len)
{
	char *s = ldns_rdf2str(rdf);
	size_t n, i;

	if (!s) {
		out[0] = '\0';
		return;
	}
	n = strlen(s);
	if (n && s[n - 1] == '.')
		n--;
	if (n >= len)
		n = len - 1;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
	free(s);
}

static const struct rule *match(const char *name)
{
	size_t nl = strlen(name);
	int i;

	for (i = 0; i < n_rules; i++) {
		const char *sfx = rules[i].suffix;
		size_t sl = strlen(sfx);

		if (!sl || !strcmp(name, sfx) ||
		    (nl > sl && name[nl - sl - 1] == '.' && !strcmp(name + nl - sl, sfx))) {
			/* A partial fault: the rule takes its share of the
			 * queries, the others fall through to the next rule. */
			if (rules[i].share && rnd16() % 100 >= rules[i].share)
				continue;
			return &rules[i];
		}
	}
	return NULL;
}

static const struct sockaddr_storage *rule_up(const struct rule *r, socklen_t *len)
{
	if (r && r->uplen) {
		*len = r->uplen;
		return &r->up;
	}
	*len = upstream_len;
	return upstream_len ? &upstream : NULL;
}

/* An answer made here: rcode, optional address record, question copied. */
static int local_reply(const ldns_pkt *q, int rcode, const char *addr, bool tc, uint16_t id,
		       uint8_t **wire, size_t *len)
{
	ldns_pkt *p = ldns_pkt_new();
	ldns_rr *qrr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	int ret = -1;

	if (!p)
		return -1;
	ldns_pkt_set_id(p, id);
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_rd(p, ldns_pkt_rd(q));
	ldns_pkt_set_ra(p, true);
	ldns_pkt_set_tc(p, tc);
	ldns_pkt_set_rcode(p, (uint8_t)rcode);
	ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, ldns_rr_clone(qrr));
	if (addr) {
		bool v6 = strchr(addr, ':') != NULL;
		ldns_rr_type want = v6 ? LDNS_RR_TYPE_AAAA : LDNS_RR_TYPE_A;

		if (ldns_rr_get_type(qrr) == want) {
			char *owner = ldns_rdf2str(ldns_rr_owner(qrr)), buf[400];
			ldns_rr *rr = NULL;

			snprintf(buf, sizeof(buf), "%s 30 IN %s %s", owner ? owner : ".", v6 ? "AAAA" : "A",
				 addr);
			free(owner);
			if (ldns_rr_new_frm_str(&rr, buf, 0, NULL, NULL) == LDNS_STATUS_OK)
				ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
		}
	}
	if (ldns_pkt2wire(wire, p, len) == LDNS_STATUS_OK)
		ret = 0;
	ldns_pkt_free(p);
	return ret;
}

static void send_to(int fd, const uint8_t *m, size_t len, const struct sockaddr_storage *to,
		    socklen_t tolen)
{
	if (sendto(fd, m, len, 0, (const struct sockaddr *)to, tolen) < 0 && verbose)
		perror("sendto");
}

static void write_tcp(int fd, const uint8_t *m, size_t len)
{
	uint8_t hdr[2] = { (uint8_t)(len >> 8), (uint8_t)len };
	struct iovec iov[2] = { { hdr, 2 }, { (void *)m, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 && verbose)
		perror("tcp write");
}

/* Post-processing of an upstream reply for the modes that tamper with it. */
static void tamper(const struct rule *r, uint8_t **m, size_t *len)
{
	ldns_pkt *p = NULL;
	uint8_t *out = NULL;
	size_t olen = 0;

	if (!r || (r->mode != M_NO_CHASE && r->mode != M_WRONG_QUESTION))
		return;
	if (ldns_wire2pkt(&p, *m, *len) != LDNS_STATUS_OK)
		return;
	if (r->mode == M_NO_CHASE) {
		ldns_rr_list *ans = ldns_pkt_answer(p), *keep = ldns_rr_list_new();
		size_t i;

		for (i = 0; i < ldns_rr_list_rr_count(ans); i++) {
			ldns_rr *rr = ldns_rr_list_rr(ans, i);

			ldns_rr_list_push_rr(keep, ldns_rr_clone(rr));
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME)
				break;
		}
		ldns_rr_list_deep_free(ans);
		ldns_pkt_set_answer(p, keep);
		ldns_pkt_set_ancount(p, (uint16_t)ldns_rr_list_rr_count(keep));
		/* A chain cut short is a referral to the client, not NXDOMAIN. */
		if (ldns_rr_list_rr_count(keep) &&
		    ldns_rr_get_type(ldns_rr_list_rr(keep, ldns_rr_list_rr_count(keep) - 1)) ==
			    LDNS_RR_TYPE_CNAME)
			ldns_pkt_set_rcode(p, LDNS_RCODE_NOERROR);
	} else {
		ldns_rr *qrr = ldns_rr_list_rr(ldns_pkt_question(p), 0);
		ldns_rdf *other = ldns_dname_new_frm_str("wrong-question.invalid.");

		if (qrr && other) {
			ldns_rdf_deep_free(ldns_rr_owner(qrr));
			ldns_rr_set_owner(qrr, other);
		} else {
			ldns_rdf_deep_free(other);
		}
	}
	if (ldns_pkt2wire(&out, p, &olen) == LDNS_STATUS_OK) {
		free(*m);
		*m = out;
		*len = olen;
	}
	ldns_pkt_free(p);
}

/* A rule's delay; with a sigma, lognormal around ms (Box-Muller). */
static uint64_t delay_ms(const struct rule *r)
{
	double u1, u2, z;

	if (r->sigma <= 0)
		return r->ms;
	u1 = ((double)rnd16() + 0.5) / 65536.0;
	u2 = ((double)rnd16() + 0.5) / 65536.0;
	z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
	return (uint64_t)((double)r->ms * exp(r->sigma * z) + 0.5);
}

static void deliver(const struct rule *r, uint8_t *m, size_t len, const struct sockaddr_storage *to,
		    socklen_t tolen)
{
	if (r && r->mode == M_DELAY && r->ms) {
		struct delayed *d = calloc(1, sizeof(*d));

		if (!d) {
			free(m);
			return;
		}
		d->due = now_ms() + delay_ms(r);
		d->msg = m;
		d->len = len;
		d->to = *to;
		d->tolen = tolen;
		/* Delays of one rule are equal, so appending keeps the list
		 * almost sorted; the timer loop checks every entry anyway. */
		if (dq_tail)
			dq_tail->next = d;
		else
			dq_head = d;
		dq_tail = d;
		return;
	}
	send_to(udp_fd, m, len, to, tolen);
	free(m);
}

/* Relays a query to upstream over UDP; the answer comes back through up_fd. */
static void relay_udp(const struct rule *r, const uint8_t *q, size_t len,
		      const struct sockaddr_storage *from, socklen_t flen)
{
	socklen_t ulen;
	const struct sockaddr_storage *up = rule_up(r, &ulen);
	uint8_t buf[65535];
	uint16_t nid;
	struct pending *pe;
	int tries;

	if (!up || len > sizeof(buf))
		return;
	/* A fresh id towards upstream; skip ids still waiting for their answer. */
	for (tries = 0; tries < 16; tries++) {
		nid = rnd16();
		if (!pend[nid].used || pend[nid].due < now_ms())
			break;
	}
	pe = &pend[nid];
	pe->used = true;
	pe->due = now_ms() + PENDING_TTL_MS;
	pe->client_id = (uint16_t)(q[0] << 8 | q[1]);
	pe->client = *from;
	pe->clen = flen;
	pe->rule = r;
	memcpy(buf, q, len);
	buf[0] = (uint8_t)(nid >> 8);
	buf[1] = (uint8_t)nid;
	send_to(up_fd, buf, len, up, ulen);
	st_relayed++;
}

static void on_upstream(void)
{
	uint8_t buf[65535];

	for (;;) {
		ssize_t n = recv(up_fd, buf, sizeof(buf), MSG_DONTWAIT);
		struct pending *pe;
		uint16_t id, cid;
		uint8_t *m;
		size_t len;

		if (n < 12)
			return;
		id = (uint16_t)(buf[0] << 8 | buf[1]);
		pe = &pend[id];
		if (!pe->used)
			continue;
		pe->used = false;
		cid = pe->client_id;
		if (pe->rule && pe->rule->mode == M_WRONG_ID)
			cid ^= 0x5a5a;
		m = malloc((size_t)n);
		if (!m)
			continue;
		memcpy(m, buf, (size_t)n);
		m[0] = (uint8_t)(cid >> 8);
		m[1] = (uint8_t)cid;
		len = (size_t)n;
		tamper(pe->rule, &m, &len);
		deliver(pe->rule, m, len, &pe->client, pe->clen);
	}
}

/* TCP clients are rare (truncated answers): relay over TCP, blocking, bounded. */
static int relay_tcp_sync(const struct rule *r, const uint8_t *q, size_t len, uint8_t **out,
			  size_t *olen)
{
	socklen_t ulen;
	const struct sockaddr_storage *up = rule_up(r, &ulen);
	struct timeval tv = { .tv_sec = 2 };
	uint8_t hdr[2] = { (uint8_t)(len >> 8), (uint8_t)len }, lenb[2];
	size_t got = 0, want;
	int fd, ret = -1;

	if (!up)
		return -1;
	fd = socket(up->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)up, ulen) || write(fd, hdr, 2) != 2 ||
	    write(fd, q, len) != (ssize_t)len || recv(fd, lenb, 2, MSG_WAITALL) != 2)
		goto out;
	want = (size_t)lenb[0] << 8 | lenb[1];
	*out = malloc(want ? want : 1);
	if (!*out)
		goto out;
	while (got < want) {
		ssize_t n = recv(fd, *out + got, want - got, 0);

		if (n <= 0) {
			free(*out);
			*out = NULL;
			goto out;
		}
		got += (size_t)n;
	}
	*olen = want;
	ret = 0;
out:
	close(fd);
	return ret;
}

/*
 * One query from a client. tcp_client >= 0: it came over that TCP connection
 * and the answer is written there.
 */
static void handle_query(const uint8_t *q, size_t len, const struct sockaddr_storage *from,
			 socklen_t flen, int tcp_client)
{
	ldns_pkt *p = NULL;
	ldns_rr *qrr;
	const struct rule *r;
	char name[256];
	uint8_t *m = NULL;
	size_t mlen = 0;
	uint16_t id;

	if (ldns_wire2pkt(&p, q, len) != LDNS_STATUS_OK)
		return;
	if (ldns_pkt_qr(p) || ldns_rr_list_rr_count(ldns_pkt_question(p)) != 1)
		goto out;
	st_queries++;
	id = ldns_pkt_id(p);
	qrr = ldns_rr_list_rr(ldns_pkt_question(p), 0);
	rdf_name(ldns_rr_owner(qrr), name, sizeof(name));
	r = match(name);
	if (verbose)
		fprintf(stderr, "query %s type %d via %s: rule %d\n", name, ldns_rr_get_type(qrr),
			tcp_client >= 0 ? "tcp" : "udp", r ? (int)(r - rules) : -1);
	if (!r) {
		if (!local_reply(p, LDNS_RCODE_REFUSED, NULL, false, id, &m, &mlen))
			goto answer;
		goto out;
	}
	switch (r->mode) {
	case M_DROP:
		goto out;
	case M_RCODE:
		if (local_reply(p, r->rcode, NULL, false, id, &m, &mlen))
			goto out;
		st_local++;
		goto answer;
	case M_WRONG_ANSWER:
		if (local_reply(p, LDNS_RCODE_NOERROR, r->addr, false, id, &m, &mlen))
			goto out;
		st_local++;
		goto answer;
	case M_TRUNCATE:
		if (tcp_client < 0) {
			if (local_reply(p, LDNS_RCODE_NOERROR, NULL, true, id, &m, &mlen))
				goto out;
			goto answer;
		}
		break;
	case M_SPOOF:
	case M_WRONG_PORT:
		if (tcp_client < 0) {
			unsigned i, n = r->mode == M_SPOOF ? r->count : 1;
			int other = r->mode == M_WRONG_PORT ? socket(from->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0) : -1;

			for (i = 0; i < n; i++) {
				uint16_t fake = id;

				if (r->mode == M_SPOOF)
					while (fake == id)
						fake = rnd16();
				if (local_reply(p, LDNS_RCODE_NOERROR, r->addr, false, fake, &m, &mlen))
					continue;
				send_to(other >= 0 ? other : udp_fd, m, mlen, from, flen);
				free(m);
				m = NULL;
			}
			if (other >= 0)
				close(other);
		}
		break;
	default:
		break;
	}
	/* Relay. */
	if (tcp_client >= 0) {
		uint8_t *reply;
		size_t rlen;

		if (relay_tcp_sync(r, q, len, &reply, &rlen))
			goto out;
		if (r->mode == M_WRONG_ID && rlen >= 2)
			reply[0] ^= 0x5a, reply[1] ^= 0x5a;
		tamper(r, &reply, &rlen);
		write_tcp(tcp_client, reply, rlen);
		free(reply);
		goto out;
	}
	relay_udp(r, q, len, from, flen);
	goto out;
answer:
	if (tcp_client >= 0) {
		write_tcp(tcp_client, m, mlen);
		free(m);
	} else {
		deliver(r, m, mlen, from, flen);
	}
out:
	ldns_pkt_free(p);
}

struct tcp_conn {
	int fd;
	uint8_t buf[65537];
	size_t have;
};

static struct tcp_conn *conns[MAX_TCP];

static void on_tcp_data(int i)
{
	struct tcp_conn *c = conns[i];
	ssize_t n = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);

	if (n <= 0) {
		close(c->fd);
		free(c);
		conns[i] = NULL;
		return;
	}
	c->have += (size_t)n;
	while (c->have >= 2) {
		size_t len = (size_t)c->buf[0] << 8 | c->buf[1];

		if (c->have < len + 2)
			break;
		handle_query(c->buf + 2, len, NULL, 0, c->fd);
		memmove(c->buf, c->buf + 2 + len, c->have - 2 - len);
		c->have -= 2 + len;
	}
}

static void on_sig(int sig)
{
	(void)sig;
	stop = 1;
}

static int bind_listen(const struct sockaddr_storage *ss, socklen_t len)
{
	int one = 1;

	udp_fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	tcp_fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (udp_fd < 0 || tcp_fd < 0)
		return -1;
	setsockopt(tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(udp_fd, (const struct sockaddr *)ss, len) || bind(tcp_fd, (const struct sockaddr *)ss, len) ||
	    listen(tcp_fd, 64))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage listen_ss;
	socklen_t listen_len = 0;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
			if (parse_endpoint(argv[++i], &listen_ss, &listen_len, 53)) {
				fprintf(stderr, "ep_dns_responder: bad --listen %s\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--upstream") && i + 1 < argc) {
			if (parse_endpoint(argv[++i], &upstream, &upstream_len, 53)) {
				fprintf(stderr, "ep_dns_responder: bad --upstream %s\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--mode")) {
			if (add_rule(argc, argv, &i)) {
				fprintf(stderr, "ep_dns_responder: bad --mode near \"%s\"\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--match") && i + 1 < argc) {
			if (!n_rules) {
				fprintf(stderr, "ep_dns_responder: --match must follow a --mode\n");
				return 2;
			}
			snprintf(rules[n_rules - 1].suffix, sizeof(rules[0].suffix), "%s", argv[++i]);
			{
				char *s = rules[n_rules - 1].suffix;
				size_t n = strlen(s);

				if (n && s[n - 1] == '.')
					s[n - 1] = '\0';
				for (; *s; s++)
					*s = (char)tolower((unsigned char)*s);
			}
		} else if (!strcmp(argv[i], "--share") && i + 1 < argc) {
			int pc = atoi(argv[++i]);

			if (!n_rules || pc < 1 || pc > 100) {
				fprintf(stderr, "ep_dns_responder: --share PERCENT (1..100) must follow a --mode\n");
				return 2;
			}
			rules[n_rules - 1].share = (unsigned)pc;
		} else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			verbose = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "ep_dns_responder: unknown argument %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!listen_len || !n_rules) {
		usage(stderr);
		return 2;
	}
	for (i = 0; i < n_rules; i++) {
		socklen_t l;

		if ((rules[i].mode == M_FORWARD || rules[i].mode == M_NO_CHASE || rules[i].mode == M_DELAY ||
		     rules[i].mode == M_TRUNCATE || rules[i].mode == M_SPOOF || rules[i].mode == M_WRONG_PORT ||
		     rules[i].mode == M_WRONG_ID || rules[i].mode == M_WRONG_QUESTION) &&
		    !rule_up(&rules[i], &l)) {
			fprintf(stderr, "ep_dns_responder: rule %d relays but there is no upstream "
					"(forward ADDR or --upstream)\n", i + 1);
			return 2;
		}
	}
	if (bind_listen(&listen_ss, listen_len)) {
		perror("ep_dns_responder: bind");
		return 1;
	}
	up_fd = socket(upstream_len ? upstream.ss_family : listen_ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (up_fd < 0) {
		perror("ep_dns_responder: socket");
		return 1;
	}
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	signal(SIGPIPE, SIG_IGN);
	while (!stop) {
		struct pollfd pfd[3 + MAX_TCP];
		int map[3 + MAX_TCP], n = 0, timeout = -1, k;
		uint64_t now = now_ms();
		struct delayed **pp;

		/* Due delayed answers go out; the next one sets the poll timeout. */
		for (pp = &dq_head; *pp;) {
			struct delayed *d = *pp;

			if (d->due <= now) {
				send_to(udp_fd, d->msg, d->len, &d->to, d->tolen);
				*pp = d->next;
				if (dq_tail == d)
					dq_tail = NULL;
				free(d->msg);
				free(d);
				continue;
			}
			if (timeout < 0 || (int)(d->due - now) < timeout)
				timeout = (int)(d->due - now);
			if (!d->next)
				dq_tail = d;
			pp = &d->next;
		}
		pfd[n] = (struct pollfd){ .fd = udp_fd, .events = POLLIN };
		map[n++] = -1;
		pfd[n] = (struct pollfd){ .fd = up_fd, .events = POLLIN };
		map[n++] = -2;
		pfd[n] = (struct pollfd){ .fd = tcp_fd, .events = POLLIN };
		map[n++] = -3;
		for (k = 0; k < MAX_TCP; k++) {
			if (!conns[k])
				continue;
			pfd[n] = (struct pollfd){ .fd = conns[k]->fd, .events = POLLIN };
			map[n++] = k;
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			break;
		}
		for (k = 0; k < n; k++) {
			if (!pfd[k].revents)
				continue;
			if (map[k] == -1) {
				/* Drain what is queued, bounded so TCP is not starved. */
				int burst;

				for (burst = 0; burst < 256; burst++) {
					uint8_t buf[65535];
					struct sockaddr_storage from;
					socklen_t flen = sizeof(from);
					ssize_t len = recvfrom(udp_fd, buf, sizeof(buf), MSG_DONTWAIT,
							       (struct sockaddr *)&from, &flen);

					if (len < 0)
						break;
					handle_query(buf, (size_t)len, &from, flen, -1);
				}
			} else if (map[k] == -2) {
				on_upstream();
			} else if (map[k] == -3) {
				int fd = accept4(tcp_fd, NULL, NULL, SOCK_CLOEXEC);
				int slot;

				if (fd < 0)
					continue;
				for (slot = 0; slot < MAX_TCP && conns[slot]; slot++)
					;
				if (slot == MAX_TCP || !(conns[slot] = calloc(1, sizeof(struct tcp_conn)))) {
					close(fd);
					continue;
				}
				conns[slot]->fd = fd;
			} else {
				on_tcp_data(map[k]);
			}
		}
	}
	fprintf(stderr, "ep_dns_responder: %lu queries, %lu relayed, %lu answered locally\n",
		st_queries, st_relayed, st_local);
	while (dq_head) {
		struct delayed *d = dq_head;

		dq_head = d->next;
		free(d->msg);
		free(d);
	}
	for (i = 0; i < MAX_TCP; i++) {
		if (conns[i]) {
			close(conns[i]->fd);
			free(conns[i]);
		}
	}
	close(udp_fd);
	close(tcp_fd);
	close(up_fd);
	return 0;
}
