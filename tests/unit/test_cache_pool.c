/*
 * The query engine and the builder's library API against fake resolvers that
 * run in a thread of this test: spoofed replies (wrong source, id, question),
 * truncation to TCP, retries on another resolver, timeouts, and the whole
 * build with its loss guard. Runs in a private network namespace when it can
 * (root), so nothing touches the host's network; 127.0.0.1 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "cache_build.h"
#include "dns_query.h"
#include "resolver_pool.h"
#include "tap.h"

enum fake_mode { FAKE_ANSWER, FAKE_SPOOF, FAKE_SILENT, FAKE_SERVFAIL };

struct fake {
	int udp, tcp, other;
	uint16_t port;
	_Atomic int mode;
	_Atomic int queries;
	_Atomic int stop;
	pthread_t th;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add_rr(ldns_pkt *p, const char *text)
{
	ldns_rr *rr = NULL;

	if (ldns_rr_new_frm_str(&rr, text, 300, NULL, NULL) == LDNS_STATUS_OK)
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
}

/* The fake zone. tcp: the query came over TCP. */
static ldns_pkt *answer(const ldns_pkt *q, bool tcp, int mode)
{
	ldns_rr *qrr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	char *name = ldns_rdf2str(ldns_rr_owner(qrr));
	bool aaaa = ldns_rr_get_type(qrr) == LDNS_RR_TYPE_AAAA;
	ldns_pkt *p = ldns_pkt_new();
	char rr[300];

	ldns_pkt_set_id(p, ldns_pkt_id(q));
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_rd(p, true);
	ldns_pkt_set_ra(p, true);
	ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, ldns_rr_clone(qrr));
	if (mode == FAKE_SERVFAIL || !strncmp(name, "sf.", 3)) {
		ldns_pkt_set_rcode(p, LDNS_RCODE_SERVFAIL);
	} else if (strstr(name, ".nx.test.")) {
		ldns_pkt_set_rcode(p, LDNS_RCODE_NXDOMAIN);
	} else if (!strcmp(name, "tc.test.") && !tcp) {
		ldns_pkt_set_tc(p, true);
	} else if (!strcmp(name, "cn.test.")) {
		/* Ends at the CNAME: the target is in a zone this server does not chase. */
		add_rr(p, "cn.test. 300 IN CNAME target.other.");
	} else if (!strcmp(name, "target.other.")) {
		if (!aaaa)
			add_rr(p, "target.other. 300 IN A 192.0.2.50");
	} else if (!strcmp(name, "v4only.test.")) {
		if (!aaaa)
			add_rr(p, "v4only.test. 300 IN A 192.0.2.4");
	} else {
		snprintf(rr, sizeof(rr), aaaa ? "%s 300 IN AAAA 2001:db8::1" : "%s 300 IN A 192.0.2.1", name);
		add_rr(p, rr);
	}
	free(name);
	return p;
}

static void send_pkt(int fd, ldns_pkt *p, const struct sockaddr_in *to)
{
	uint8_t *w = NULL;
	size_t len;

	if (ldns_pkt2wire(&w, p, &len) == LDNS_STATUS_OK)
		sendto(fd, w, len, 0, (const struct sockaddr *)to, sizeof(*to));
	free(w);
}

static void spoofs(struct fake *f, const ldns_pkt *q, const struct sockaddr_in *to)
{
	ldns_rr *qrr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	char *name = ldns_rdf2str(ldns_rr_owner(qrr));
	char rr[300];
	ldns_pkt *p;

	snprintf(rr, sizeof(rr), "%s 300 IN A 192.0.2.66", name);
	/* Right id and question, wrong source port. */
	p = answer(q, false, FAKE_ANSWER);
	ldns_rr_list_deep_free(ldns_pkt_answer(p));
	ldns_pkt_set_answer(p, ldns_rr_list_new());
	add_rr(p, rr);
	send_pkt(f->other, p, to);
	/* Right source, wrong id. */
	ldns_pkt_set_id(p, (uint16_t)(ldns_pkt_id(q) ^ 0x1234));
	send_pkt(f->udp, p, to);
	ldns_pkt_free(p);
	/* Right source and id, wrong question. */
	p = ldns_pkt_new();
	ldns_pkt_set_id(p, ldns_pkt_id(q));
	ldns_pkt_set_qr(p, true);
	{
		ldns_rr *wq = ldns_rr_clone(qrr);

		ldns_rdf_deep_free(ldns_rr_owner(wq));
		ldns_rr_set_owner(wq, ldns_dname_new_frm_str("evil.example."));
		ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, wq);
	}
	add_rr(p, "evil.example. 300 IN A 192.0.2.66");
	send_pkt(f->udp, p, to);
	ldns_pkt_free(p);
	free(name);
}

static void serve_tcp(struct fake *f)
{
	int c = accept(f->tcp, NULL, NULL);
	uint8_t lenb[2], buf[65535];
	size_t len;
	ldns_pkt *q = NULL, *p;
	uint8_t *w = NULL;
	size_t wlen;
	struct timeval tv = { .tv_sec = 1 };

	if (c < 0)
		return;
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (recv(c, lenb, 2, MSG_WAITALL) != 2)
		goto out;
	len = (size_t)lenb[0] << 8 | lenb[1];
	if (recv(c, buf, len, MSG_WAITALL) != (ssize_t)len || ldns_wire2pkt(&q, buf, len) != LDNS_STATUS_OK)
		goto out;
	f->queries++;
	p = answer(q, true, f->mode);
	if (ldns_pkt2wire(&w, p, &wlen) == LDNS_STATUS_OK) {
		uint8_t hdr[2] = { (uint8_t)(wlen >> 8), (uint8_t)wlen };

		struct iovec iov[2] = { { hdr, 2 }, { w, wlen } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

		if (sendmsg(c, &mh, MSG_NOSIGNAL) < 0)
			perror("fake tcp write");
	}
	free(w);
	ldns_pkt_free(p);
out:
	ldns_pkt_free(q);
	close(c);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	while (!f->stop) {
		struct pollfd pfd[2] = { { .fd = f->udp, .events = POLLIN }, { .fd = f->tcp, .events = POLLIN } };

		if (poll(pfd, 2, 20) <= 0)
			continue;
		if (pfd[1].revents)
			serve_tcp(f);
		while (pfd[0].revents) {
			uint8_t buf[65535];
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(f->udp, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
			ldns_pkt *q = NULL, *p;
			int mode = f->mode;

			if (n < 0)
				break;
			if (ldns_wire2pkt(&q, buf, (size_t)n) != LDNS_STATUS_OK)
				continue;
			f->queries++;
			if (mode != FAKE_SILENT) {
				if (mode == FAKE_SPOOF)
					spoofs(f, q, &from);
				p = answer(q, false, mode);
				send_pkt(f->udp, p, &from);
				ldns_pkt_free(p);
			}
			ldns_pkt_free(q);
		}
	}
	return NULL;
}

static int fake_start(struct fake *f, int mode)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int one = 1;

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->udp = socket(AF_INET, SOCK_DGRAM, 0);
	f->tcp = socket(AF_INET, SOCK_STREAM, 0);
	f->other = socket(AF_INET, SOCK_DGRAM, 0);
	if (f->udp < 0 || f->tcp < 0 || f->other < 0)
		return -1;
	if (bind(f->udp, (struct sockaddr *)&a, sizeof(a)) || getsockname(f->udp, (struct sockaddr *)&a, &al))
		return -1;
	setsockopt(f->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(f->tcp, (struct sockaddr *)&a, sizeof(a)) || listen(f->tcp, 16))
		return -1;
	f->port = ntohs(a.sin_port);
	return pthread_create(&f->th, NULL, fake_main, f);
}

static void fake_stop(struct fake *f)
{
	f->stop = 1;
	pthread_join(f->th, NULL);
	close(f->udp);
	close(f->tcp);
	close(f->other);
}

static void resolver_of(const struct fake *f, struct ep_resolver *r)
{
	char s[64];

	snprintf(s, sizeof(s), "127.0.0.1:%u", f->port);
	ep_resolver_parse(s, r);
}

/* Results of pool queries. */
struct res {
	int done, replies, nulls;
	char last_addr[64];
	int last_rcode;
	int resolver[64];
};

static void on_done(void *ctx, void *user, const char *qname, uint16_t qtype, ldns_pkt *reply, int resolver)
{
	struct res *r = ctx;

	if (r->done < 64)
		r->resolver[r->done] = resolver;
	r->done++;
	if (!reply) {
		r->nulls++;
		return;
	}
	r->replies++;
	r->last_rcode = ldns_pkt_get_rcode(reply);
	r->last_addr[0] = '\0';
	if (ldns_rr_list_rr_count(ldns_pkt_answer(reply))) {
		ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(reply), 0);
		char *s = ldns_rdf2str(ldns_rr_rdf(rr, 0));

		snprintf(r->last_addr, sizeof(r->last_addr), "%s", s ? s : "");
		free(s);
	}
}

static void run(struct ep_pool *p, struct res *r, int want, double max_s)
{
	double t0 = now_s();

	while (r->done < want && now_s() - t0 < max_s)
		ep_pool_poll(p, 50);
}

static void test_parse(void)
{
	struct ep_resolver r;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r.sa;

	tap_ok(!ep_resolver_parse("192.0.2.1", &r) && !strcmp(r.label, "192.0.2.1:53"), "ADDR defaults to port 53");
	tap_ok(!ep_resolver_parse("192.0.2.1:5353", &r) && !strcmp(r.label, "192.0.2.1:5353"), "ADDR:PORT");
	tap_ok(!ep_resolver_parse("[2001:db8::1]:54", &r) && r.sa.ss_family == AF_INET6 && ntohs(s6->sin6_port) == 54,
	       "[V6]:PORT");
	tap_ok(!ep_resolver_parse("2001:db8::1", &r) && ntohs(s6->sin6_port) == 53, "bare IPv6");
	tap_ok(ep_resolver_parse("192.0.2.300", &r) && ep_resolver_parse("192.0.2.1:0", &r) &&
		       ep_resolver_parse("192.0.2.1:65536", &r) && ep_resolver_parse("dns.example", &r) &&
		       ep_resolver_parse("", &r) && ep_resolver_parse("[2001:db8::1", &r) &&
		       ep_resolver_parse("192.0.2.1:x", &r),
	       "bad addresses and ports rejected");
	{
		struct ep_resolver a, b;

		ep_resolver_parse("192.0.2.1:53", &a);
		ep_resolver_parse("192.0.2.1:54", &b);
		tap_ok(ep_sockaddr_same((struct sockaddr *)&a.sa, a.salen, (struct sockaddr *)&a.sa, a.salen) &&
			       !ep_sockaddr_same((struct sockaddr *)&a.sa, a.salen, (struct sockaddr *)&b.sa, b.salen),
		       "source comparison includes the port");
		ep_resolver_parse("192.0.2.2:53", &b);
		tap_ok(!ep_sockaddr_same((struct sockaddr *)&a.sa, a.salen, (struct sockaddr *)&b.sa, b.salen),
		       "source comparison includes the address");
	}
}

static void test_pool(void)
{
	struct fake good, silent, spoof, sfail;
	struct ep_resolver rs[2];
	struct ep_pool_opts o = { .concurrency = 8, .timeout_ms = 200, .retries = 1 };
	const struct ep_pool_stats *st;
	struct ep_pool *p;
	struct res r;
	double t0;
	int i;

	if (fake_start(&good, FAKE_ANSWER) || fake_start(&silent, FAKE_SILENT) || fake_start(&spoof, FAKE_SPOOF) ||
	    fake_start(&sfail, FAKE_SERVFAIL)) {
		tap_ok(0, "fake resolvers start");
		return;
	}

	resolver_of(&good, &rs[0]);
	memset(&r, 0, sizeof(r));
	p = ep_pool_new(rs, 1, &o, on_done, &r);
	tap_ok(p && ep_pool_submit(p, "a.test", LDNS_RR_TYPE_A, NULL) == 0, "query submitted");
	run(p, &r, 1, 2);
	tap_ok(r.replies == 1 && !strcmp(r.last_addr, "192.0.2.1"), "answer accepted (%s)", r.last_addr);
	memset(&r, 0, sizeof(r));
	ep_pool_submit(p, "tc.test", LDNS_RR_TYPE_A, NULL);
	run(p, &r, 1, 2);
	st = ep_pool_get_stats(p);
	tap_ok(r.replies == 1 && st->truncated == 1 && !strcmp(r.last_addr, "192.0.2.1"),
	       "truncated reply asked again over TCP");
	/* Fill past the capacity: the pool says busy, never overruns. */
	memset(&r, 0, sizeof(r));
	for (i = 0; i < 8; i++)
		ep_pool_submit(p, "a.test", LDNS_RR_TYPE_A, NULL);
	tap_ok(ep_pool_submit(p, "a.test", LDNS_RR_TYPE_A, NULL) == -EBUSY && ep_pool_inflight(p) == 8,
	       "full pool answers -EBUSY");
	run(p, &r, 8, 2);
	tap_ok(r.replies == 8 && ep_pool_inflight(p) == 0, "all 8 in flight answered");
	ep_pool_free(p);

	/* RFC 5452: spoofed replies are counted and dropped; the real one wins. */
	resolver_of(&spoof, &rs[0]);
	memset(&r, 0, sizeof(r));
	p = ep_pool_new(rs, 1, &o, on_done, &r);
	for (i = 0; i < 4; i++)
		ep_pool_submit(p, "a.test", LDNS_RR_TYPE_A, NULL);
	run(p, &r, 4, 2);
	st = ep_pool_get_stats(p);
	tap_ok(r.replies == 4 && !strcmp(r.last_addr, "192.0.2.1"), "spoofed answers (192.0.2.66) never accepted");
	tap_ok(st->bad_source == 4, "4 replies from the wrong port counted (%llu)", (unsigned long long)st->bad_source);
	tap_ok(st->bad_id == 4, "4 replies with a wrong id counted (%llu)", (unsigned long long)st->bad_id);
	tap_ok(st->bad_question == 4, "4 replies with a wrong question counted (%llu)",
	       (unsigned long long)st->bad_question);
	ep_pool_free(p);

	/* One of two resolvers silent: first attempts alternate, retries go to
	 * the other one, everything is answered. */
	resolver_of(&silent, &rs[0]);
	resolver_of(&good, &rs[1]);
	memset(&r, 0, sizeof(r));
	good.queries = silent.queries = 0;
	o.concurrency = 32;
	o.timeout_ms = 100;
	p = ep_pool_new(rs, 2, &o, on_done, &r);
	for (i = 0; i < 20; i++)
		ep_pool_submit(p, "a.test", LDNS_RR_TYPE_A, NULL);
	run(p, &r, 20, 3);
	st = ep_pool_get_stats(p);
	tap_ok(r.replies == 20, "one silent resolver of two: all 20 answered");
	tap_ok(silent.queries == 10 && good.queries == 20 && st->timeouts == 10,
	       "first attempts round-robin (10 each), the 10 retries went to the other (silent %d, good %d)",
	       silent.queries, good.queries);
	ep_pool_free(p);

	/* Everything silent: each query ends with NULL after 1 + retries attempts. */
	resolver_of(&silent, &rs[0]);
	memset(&r, 0, sizeof(r));
	o.timeout_ms = 50;
	o.retries = 2;
	p = ep_pool_new(rs, 1, &o, on_done, &r);
	t0 = now_s();
	for (i = 0; i < 5; i++)
		ep_pool_submit(p, "a.test", LDNS_RR_TYPE_A, NULL);
	run(p, &r, 5, 3);
	st = ep_pool_get_stats(p);
	tap_ok(r.nulls == 5 && st->attempts == 15 && st->timeouts == 15, "silent resolver: 5 timeouts after 3 attempts each");
	tap_ok(now_s() - t0 >= 0.14 && now_s() - t0 < 1.0, "gave up after about 3 x 50 ms (%.3f s)", now_s() - t0);
	ep_pool_free(p);

	/* SERVFAIL from one resolver is asked again at another. */
	resolver_of(&sfail, &rs[0]);
	resolver_of(&good, &rs[1]);
	memset(&r, 0, sizeof(r));
	o.retries = 1;
	o.timeout_ms = 200;
	p = ep_pool_new(rs, 2, &o, on_done, &r);
	for (i = 0; i < 4; i++)
		ep_pool_submit(p, "a.test", LDNS_RR_TYPE_A, NULL);
	run(p, &r, 4, 2);
	st = ep_pool_get_stats(p);
	tap_ok(r.replies == 4 && r.last_rcode == LDNS_RCODE_NOERROR && st->rcode_retries == 2,
	       "SERVFAIL from one resolver retried at the other (%llu retries)", (unsigned long long)st->rcode_retries);
	ep_pool_free(p);

	fake_stop(&good);
	fake_stop(&silent);
	fake_stop(&spoof);
	fake_stop(&sfail);
}

static int file_has(const char *path, const char *line)
{
	FILE *f = fopen(path, "r");
	char buf[512];
	int found = 0;

	if (!f)
		return 0;
	while (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		if (!strcmp(buf, line))
			found = 1;
	}
	fclose(f);
	return found;
}

static void test_build_api(void)
{
	char dir[] = "/tmp/ep-test-build.XXXXXX", dom[256], out[300], rep[320], res[64], cmd[1024];
	const char *resolvers[1] = { res };
	struct ep_cache_build_opts o;
	struct ep_cache_build_result r;
	struct fake good, silent;
	FILE *f, *progress;
	int rc;

	if (!mkdtemp(dir) || fake_start(&good, FAKE_ANSWER) || fake_start(&silent, FAKE_SILENT)) {
		tap_ok(0, "build api setup");
		return;
	}
	progress = fopen("/dev/null", "w");
	snprintf(dom, sizeof(dom), "%s/domains.txt", dir);
	snprintf(out, sizeof(out), "%s/preload.hosts", dir);
	snprintf(rep, sizeof(rep), "%s.report", out);
	f = fopen(dom, "w");
	fprintf(f, "# site names\na.test\nb.test\nx.nx.test\ncn.test\nsf.test\nv4only.test\nbad..test\na.test\n");
	fclose(f);
	snprintf(res, sizeof(res), "127.0.0.1:%u", good.port);

	ep_cache_build_opts_init(&o);
	tap_ok(o.concurrency == 256 && o.timeout_ms == 1000 && o.retries == 2 && o.max_loss_pct == 10.0,
	       "defaults: concurrency 256, timeout 1000 ms, 2 retries, max loss 10%%");
	o.domains_path = dom;
	o.out_path = out;
	o.resolvers = resolvers;
	o.n_resolvers = 1;
	o.progress = progress;
	rc = ep_cache_build(&o, &r);
	tap_ok(rc == 0 && r.written, "build: written (rc %d: %s)", rc, r.error);
	tap_ok(r.names == 6 && r.resolved == 4 && r.nxdomain == 1 && r.servfail == 1 && r.bad_lines == 1 &&
		       r.duplicates == 1 && r.timeout == 0,
	       "counts: 6 names, 4 resolved, 1 nxdomain, 1 servfail, 1 bad line, 1 duplicate");
	tap_ok(file_has(out, "192.0.2.1 a.test") && file_has(out, "2001:db8::1 a.test") &&
		       file_has(out, "192.0.2.4 v4only.test") && !file_has(out, "192.0.2.1 x.nx.test"),
	       "hosts file: A and AAAA lines, failed names absent");
	tap_ok(file_has(out, "192.0.2.50 cn.test"), "CNAME ending outside the answer: target asked, address under the original name");
	tap_ok(r.records == 6, "6 address records: a and b 2 each, cn and v4only 1 each (got %u)", r.records);
	tap_ok(file_has(rep, "x.nx.test nxdomain") && file_has(rep, "sf.test servfail"), "report: nxdomain and servfail");

	/* The change guard: the current file says other addresses for 2 of its
	 * 4 names (as if the resolver now answered those differently). */
	tap_ok(o.max_change_pct == 25.0, "default --max-change 25%%");
	snprintf(cmd, sizeof(cmd),
		 "sed -i -e 's/^192.0.2.1 a.test$/198.51.100.1 a.test/' -e 's/^192.0.2.4 v4only.test$/198.51.100.4 v4only.test/' %s && cp %s %s.before",
		 out, out, out);
	if (system(cmd))
		tap_diag("sed failed");
	rc = ep_cache_build(&o, &r);
	snprintf(cmd, sizeof(cmd), "cmp -s %s %s.before", out, out);
	tap_ok(rc == EP_CACHE_BUILD_REFUSED && !r.written && system(cmd) == 0,
	       "change guard: 2 of 4 names changed addresses: refused (3), file untouched (rc %d)", rc);
	tap_ok(r.changed_names == 2 && r.lost_names == 0 &&
		       strstr(r.error, "2 of its 4 names (50.0%) changed their addresses (> --max-change 25%)"),
	       "change guard: numbers in the result and message (%s)", r.error);
	o.max_change_pct = 50;
	rc = ep_cache_build(&o, &r);
	tap_ok(rc == 0 && r.written && r.changed_names == 2 && file_has(out, "192.0.2.1 a.test"),
	       "change guard: --max-change 50 accepts exactly 50%% (rc %d)", rc);
	o.max_change_pct = 25;
	snprintf(cmd, sizeof(cmd), "sed -i -e 's/^192.0.2.1 a.test$/198.51.100.1 a.test/' %s", out);
	if (system(cmd))
		tap_diag("sed failed");
	rc = ep_cache_build(&o, &r);
	tap_ok(rc == 0 && r.written && r.changed_names == 1 && file_has(out, "192.0.2.1 a.test"),
	       "change guard: 1 of 4 (25%%, not more) passes and the new addresses are written (rc %d)", rc);
	snprintf(cmd, sizeof(cmd), "sed -i -e 's/^192.0.2.1 a.test$/198.51.100.1 a.test/' -e 's/^192.0.2.4 v4only.test$/198.51.100.4 v4only.test/' %s", out);
	if (system(cmd))
		tap_diag("sed failed");
	o.force = true;
	rc = ep_cache_build(&o, &r);
	tap_ok(rc == 0 && r.written && file_has(out, "192.0.2.4 v4only.test"), "change guard: --force overrides");
	o.force = false;

	/* The loss guard: a list that lost 4 of the 5 resolved names. */
	f = fopen(dom, "w");
	fprintf(f, "a.test\n");
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cp %s %s.before", out, out);
	if (system(cmd))
		tap_diag("cp failed");
	rc = ep_cache_build(&o, &r);
	snprintf(cmd, sizeof(cmd), "cmp -s %s %s.before", out, out);
	tap_ok(rc == EP_CACHE_BUILD_REFUSED && !r.written && system(cmd) == 0, "loss guard: refused (3), file untouched");
	tap_ok(r.previous_names == 4 && r.lost_names == 3 && strstr(r.error, "lost 3 of its 4 names"),
	       "loss guard: numbers in the result and message (%s)", r.error);
	o.force = true;
	rc = ep_cache_build(&o, &r);
	tap_ok(rc == 0 && r.written && file_has(out, "192.0.2.1 a.test") && !file_has(out, "192.0.2.50 cn.test"),
	       "--force: written");
	o.force = false;

	/* A resolver that never answers: failure, nothing written. */
	snprintf(res, sizeof(res), "127.0.0.1:%u", silent.port);
	snprintf(out, sizeof(out), "%s/never.hosts", dir);
	o.timeout_ms = 100;
	rc = ep_cache_build(&o, &r);
	tap_ok(rc == EP_CACHE_BUILD_FAILED && !r.written && access(out, F_OK) != 0 && strstr(r.error, "no resolver answered"),
	       "silent resolver: rc 1, nothing written (%s)", r.error);

	/* Usage errors. */
	o.domains_path = "/nonexistent/domains.txt";
	tap_ok(ep_cache_build(&o, &r) == EP_CACHE_BUILD_USAGE, "missing domains file: rc 2");
	o.domains_path = dom;
	resolvers[0] = "not-an-address";
	tap_ok(ep_cache_build(&o, &r) == EP_CACHE_BUILD_USAGE && strstr(r.error, "not-an-address"), "bad resolver: rc 2");
	{
		char *argv1[] = { "build", "--concurrency", "0", NULL };
		char *argv2[] = { "build", "--domains", dom, NULL };
		char *argv3[] = { "build", "--max-loss", "101", "--domains", dom, "-r", "127.0.0.1", "-o", out, NULL };
		char *argv4[] = { "build", "--max-change", "-1", "--domains", dom, "-r", "127.0.0.1", "-o", out, NULL };

		tap_ok(ep_cache_build_main(3, argv1) == 2, "CLI: --concurrency 0 is bad usage");
		tap_ok(ep_cache_build_main(3, argv2) == 2, "CLI: missing --resolver/--out is bad usage");
		tap_ok(ep_cache_build_main(9, argv3) == 2, "CLI: --max-loss 101 is bad usage");
		tap_ok(ep_cache_build_main(9, argv4) == 2, "CLI: --max-change -1 is bad usage");
	}

	fclose(progress);
	fake_stop(&good);
	fake_stop(&silent);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		tap_diag("rm failed");
}

/* A private network namespace with its own loopback, when we may. */
static void private_netns(void)
{
	struct ifreq ifr = { 0 };
	int fd;

	if (unshare(CLONE_NEWNET)) {
		tap_diag("no private network namespace (%s): using the host's loopback", strerror(errno));
		return;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (fd >= 0 && !ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP;
		ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	private_netns();
	test_parse();
	test_pool();
	test_build_api();
	return tap_done();
}
