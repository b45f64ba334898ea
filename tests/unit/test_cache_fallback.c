/*
 * dns.cache.fallback (cache/fallback.c through cache/policy_responder.c):
 * names outside the snapshot go to the fallback resolvers in order, each
 * given its timeout; the answer reaches the client with the client's id;
 * replies from anywhere but the resolver asked, with another id or another
 * question are ignored; SERVFAIL when nobody answers; snapshot names never
 * leave the node. The resolvers are sockets of this test, so it decides what
 * each one answers and when. Runs the real server thread in a network
 * namespace of its own (needs root).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dnsmsg.h"
#include "fallback.h"
#include "nameset.h"
#include "own_netns.h"
#include "policy_responder.h"
#include "tap.h"
#include "udp_lo.h"

#define PORT 299
#define FB_A 5301
#define FB_B 5302
#define TIMEOUT_MS 300

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A resolver's reply to q: same id and question, one A record ADDR. */
static size_t reply(const uint8_t *q, size_t qlen, const char *name, const char *addr, uint8_t *out,
		    size_t cap)
{
	ldns_pkt *qp = NULL, *r;
	ldns_rr *rr = NULL;
	size_t len;
	char rrs[300];

	if (ldns_wire2pkt(&qp, q, qlen) != LDNS_STATUS_OK)
		return 0;
	r = ldns_pkt_new();
	ldns_pkt_set_id(r, ldns_pkt_id(qp));
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_rd(r, true);
	ldns_pkt_set_ra(r, true);
	ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(qp), 0)));
	snprintf(rrs, sizeof(rrs), "%s 60 IN A %s", name, addr);
	if (ldns_rr_new_frm_str(&rr, rrs, 0, NULL, NULL) == LDNS_STATUS_OK)
		ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr);
	len = dnsmsg_wire(r, out, cap);
	ldns_pkt_free(r);
	ldns_pkt_free(qp);
	return len;
}

/* Waits up to ms for a datagram on fd; its length (from: its sender) or 0. */
static size_t recv_wait(int fd, uint8_t *buf, size_t cap, int ms, struct sockaddr_in *from)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	socklen_t fl = sizeof(*from);
	ssize_t n;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	n = recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)from, &fl);
	return n > 0 ? (size_t)n : 0;
}

/* rcode and first A address of an answer, "" when none. */
static int parse_answer(const uint8_t *m, size_t len, uint16_t *id, char *addr, size_t alen)
{
	ldns_pkt *p = NULL;
	int rc;

	addr[0] = '\0';
	if (ldns_wire2pkt(&p, m, len) != LDNS_STATUS_OK)
		return -1;
	*id = ldns_pkt_id(p);
	rc = ldns_pkt_get_rcode(p);
	if (ldns_pkt_ancount(p) > 0) {
		char *s = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(p), 0), 0));

		snprintf(addr, alen, "%s", s ? s : "");
		free(s);
	}
	ldns_pkt_free(p);
	return rc;
}

static void send_to(int fd, const void *m, size_t len, const struct sockaddr_in *to)
{
	sendto(fd, m, len, 0, (const struct sockaddr *)to, sizeof(*to));
}

int main(void)
{
	const char *fallback[] = { "127.0.0.1#5301", "127.0.0.1#5302" };
	struct ep_policy_responder *r = NULL;
	struct ep_policy_stats st;
	struct sockaddr_in resp = udp_lo_addr(PORT), from;
	struct ep_nameset names;
	uint8_t q[512], fq[512], a[512], got[2048];
	size_t qlen, flen, alen, n;
	char err[256], addr[64] = "";
	uint16_t id = 0;
	int client, fa, fb, spoof, rc;
	double t0;

	if (ep_test_own_netns())
		return tap_skip_all("needs root for a network namespace of its own");
	struct sockaddr_storage ss;
	socklen_t sl;

	tap_ok(ep_fallback_parse_server("192.0.2.1", &ss, &sl) == 0 && ((struct sockaddr_in *)&ss)->sin_port == htons(53),
	   "a fallback without a port is port 53");
	tap_ok(ep_fallback_parse_server("2001:db8::1#5353", &ss, &sl) == 0 && ss.ss_family == AF_INET6 &&
		   ((struct sockaddr_in6 *)&ss)->sin6_port == htons(5353),
	   "ADDR#PORT, IPv6");
	tap_ok(ep_fallback_parse_server("resolver.example", &ss, &sl) && ep_fallback_parse_server("192.0.2.1#", &ss, &sl) &&
		   ep_fallback_parse_server("192.0.2.1#70000", &ss, &sl) && ep_fallback_parse_server("", &ss, &sl),
	   "names, an empty or out-of-range port and nothing at all are refused");

	fa = udp_lo_bound(FB_A);
	fb = udp_lo_bound(FB_B);
	spoof = udp_lo_bound(5399);
	client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	rc = ep_policy_start_fallback(&r, "127.0.0.1", PORT, 30, fallback, 2, TIMEOUT_MS, NULL, err, sizeof(err));
	tap_ok(rc == 0 && fa >= 0 && fb >= 0 && spoof >= 0, "responder with two fallbacks listening (%s)", rc ? err : "ok");
	if (rc)
		return tap_done();
	ep_nameset_init(&names);
	ep_nameset_add(&names, "in-snapshot.example");
	ep_policy_set_names(r, &names);

	/* 1. outside the snapshot: the first fallback is asked and answers */
	qlen = dnsmsg_query(q, sizeof(q), 0x1234, "outside.example", LDNS_RR_TYPE_A, false);
	send_to(client, q, qlen, &resp);
	flen = recv_wait(fa, fq, sizeof(fq), 1000, &from);
	tap_ok(flen == qlen && !memcmp(fq + 12, q + 12, qlen - 12),
	   "a name outside the snapshot goes to the first fallback with the same question");
	/* a spoofer that saw the query answers from another port first */
	alen = reply(fq, flen, "outside.example", "192.0.2.66", a, sizeof(a));
	send_to(spoof, a, alen, &resp);
	/* the right resolver, the right id, another question */
	{
		uint8_t other[512];
		size_t olen = dnsmsg_query(other, sizeof(other), (uint16_t)(fq[0] << 8 | fq[1]), "other.example",
					   LDNS_RR_TYPE_A, false);
		uint8_t oa[512];
		size_t oalen = reply(other, olen, "other.example", "192.0.2.67", oa, sizeof(oa));

		send_to(fa, oa, oalen, &from);
	}
	alen = reply(fq, flen, "outside.example", "192.0.2.7", a, sizeof(a));
	send_to(fa, a, alen, &from);
	n = recv_wait(client, got, sizeof(got), 1000, &from);
	rc = n ? parse_answer(got, n, &id, addr, sizeof(addr)) : -1;
	tap_ok(rc == LDNS_RCODE_NOERROR && id == 0x1234 && !strcmp(addr, "192.0.2.7"),
	   "the client gets the fallback's answer with its own id (rcode %d, id %#x, %s)", rc, id, addr);
	tap_ok(recv_wait(client, got, sizeof(got), 200, &from) == 0,
	   "and nothing else: the reply from another port and the one with another question were ignored");

	/* 2. the first fallback is silent: the second one is asked after its timeout */
	qlen = dnsmsg_query(q, sizeof(q), 0x2222, "slow.example", LDNS_RR_TYPE_A, false);
	t0 = now_s();
	send_to(client, q, qlen, &resp);
	tap_ok(recv_wait(fa, fq, sizeof(fq), 1000, &from) > 0, "the first fallback is asked first");
	flen = recv_wait(fb, fq, sizeof(fq), 2000, &from);
	tap_ok(flen > 0 && now_s() - t0 >= TIMEOUT_MS / 1000.0 * 0.9,
	   "... and the second once the first's %d ms are up (after %.0f ms)", TIMEOUT_MS, (now_s() - t0) * 1000);
	alen = reply(fq, flen, "slow.example", "192.0.2.8", a, sizeof(a));
	send_to(fb, a, alen, &from);
	n = recv_wait(client, got, sizeof(got), 1000, &from);
	rc = n ? parse_answer(got, n, &id, addr, sizeof(addr)) : -1;
	tap_ok(rc == LDNS_RCODE_NOERROR && id == 0x2222 && !strcmp(addr, "192.0.2.8"), "the second fallback's answer reaches the client");

	/* 3. nobody answers: SERVFAIL, promptly */
	qlen = dnsmsg_query(q, sizeof(q), 0x3333, "nobody.example", LDNS_RR_TYPE_A, false);
	t0 = now_s();
	send_to(client, q, qlen, &resp);
	n = recv_wait(client, got, sizeof(got), 3000, &from);
	rc = n ? parse_answer(got, n, &id, addr, sizeof(addr)) : -1;
	tap_ok(rc == LDNS_RCODE_SERVFAIL && id == 0x3333, "no fallback answers: SERVFAIL (rcode %d)", rc);
	tap_ok(now_s() - t0 < 2 * TIMEOUT_MS / 1000.0 + 0.5, "... after both timeouts (%.0f ms)", (now_s() - t0) * 1000);
	while (recv_wait(fa, fq, sizeof(fq), 0, &from) || recv_wait(fb, fq, sizeof(fq), 0, &from))
		;

	/* 4. a name in the snapshot never leaves the node */
	qlen = dnsmsg_query(q, sizeof(q), 0x4444, "in-snapshot.example", LDNS_RR_TYPE_A, false);
	send_to(client, q, qlen, &resp);
	n = recv_wait(client, got, sizeof(got), 1000, &from);
	rc = n ? parse_answer(got, n, &id, addr, sizeof(addr)) : -1;
	tap_ok(rc == LDNS_RCODE_NOERROR && !addr[0], "a snapshot name's missing type: NODATA from the responder itself");
	tap_ok(recv_wait(fa, fq, sizeof(fq), 200, &from) == 0 && recv_wait(fb, fq, sizeof(fq), 0, &from) == 0,
	   "... and no fallback was asked");

	/* 5. over TCP: forwarded the same way, answered framed */
	{
		int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		uint8_t framed[514];
		size_t got_len = 0;
		struct pollfd p = { .fd = t, .events = POLLIN };

		qlen = dnsmsg_query(framed + 2, sizeof(framed) - 2, 0x5555, "tcp.example", LDNS_RR_TYPE_A, false);
		framed[0] = (uint8_t)(qlen >> 8);
		framed[1] = (uint8_t)qlen;
		tap_ok(t >= 0 && connect(t, (struct sockaddr *)&resp, sizeof(resp)) == 0 &&
			   send(t, framed, qlen + 2, MSG_NOSIGNAL) == (ssize_t)(qlen + 2),
		   "a TCP client asks for a name outside the snapshot");
		flen = recv_wait(fa, fq, sizeof(fq), 1000, &from);
		alen = flen ? reply(fq, flen, "tcp.example", "192.0.2.9", a, sizeof(a)) : 0;
		if (alen)
			send_to(fa, a, alen, &from);
		while (poll(&p, 1, 1000) > 0) {
			ssize_t k = recv(t, got + got_len, sizeof(got) - got_len, 0);

			if (k <= 0)
				break;
			got_len += (size_t)k;
			if (got_len >= 2 && got_len >= 2 + ((size_t)got[0] << 8 | got[1]))
				break;
		}
		rc = got_len > 2 ? parse_answer(got + 2, got_len - 2, &id, addr, sizeof(addr)) : -1;
		tap_ok(rc == LDNS_RCODE_NOERROR && id == 0x5555 && !strcmp(addr, "192.0.2.9"),
		   "... and gets the fallback's answer framed on its connection (%s)", addr);
		close(t);
	}

	ep_policy_get_stats(r, &st);
	tap_ok(st.fallback_answered == 3, "counted: 3 answered by a fallback (%llu)", (unsigned long long)st.fallback_answered);
	tap_ok(st.fallback_failed == 1 && st.servfail == 1, "counted: 1 unanswered, which is the one SERVFAIL (%llu, %llu)",
	   (unsigned long long)st.fallback_failed, (unsigned long long)st.servfail);
	tap_ok(st.nodata == 1, "counted: 1 NODATA (%llu)", (unsigned long long)st.nodata);
	ep_policy_stop(r);
	close(client);
	close(fa);
	close(fb);
	close(spoof);
	return tap_done();
}
