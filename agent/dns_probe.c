#include "dns_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define MAX_INFLIGHT 4
#define MAX_EXPECT 8

const char *const ep_probe_result_names[EP_PROBE_RESULTS] = {"ok",    "timeout", "servfail",
							      "wrong", "bogus",   "divergent"};

enum probe_kind { PK_CANARY, PK_SNAPSHOT, PK_LIVENESS };

struct probe {
	bool busy;
	int fd;
	uint16_t id, qtype;
	enum probe_kind kind;
	char qname[256];
	uint64_t deadline_ns;
	struct ep_dns_addr expect[MAX_EXPECT];
	size_t n_expect;
};

struct upstream {
	struct ep_ip addr;
	uint64_t next_ns;
	size_t rotate;
	struct probe inflight[MAX_INFLIGHT];
	uint64_t counts[EP_PROBE_RESULTS]; /* since the last take */
	uint64_t totals[EP_PROBE_RESULTS];
	char last[400];
};

struct ep_dns_prober {
	struct upstream up[EP_CFG_MAX_UPSTREAMS];
	size_t n;
	uint64_t interval_ns, timeout_ns;
	const struct ep_cfg_dns_canary *canaries; /* owned by the config */
	size_t n_canaries;
	ep_probe_pick_fn pick;
	void *pick_arg;
};

struct ep_dns_prober *ep_dns_prober_new(const struct ep_cfg_dns *cfg, ep_probe_pick_fn pick,
					void *pick_arg)
{
	struct ep_dns_prober *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->n = cfg->n_upstreams;
	p->interval_ns = (uint64_t)cfg->health.probe_interval_ms * 1000000ULL;
	p->timeout_ns = (uint64_t)cfg->health.timeout_ms * 1000000ULL;
	p->canaries = cfg->health.canaries;
	p->n_canaries = cfg->health.n_canaries;
	p->pick = pick;
	p->pick_arg = pick_arg;
	for (size_t i = 0; i < p->n; i++) {
		p->up[i].addr = cfg->upstreams[i];
		for (size_t k = 0; k < MAX_INFLIGHT; k++)
			p->up[i].inflight[k].fd = -1;
		snprintf(p->up[i].last, sizeof(p->up[i].last), "no probe yet");
	}
	return p;
}

static uint16_t rand16(void)
{
	uint16_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint16_t)rand();
	return v;
}

static void finish(struct upstream *u, struct probe *pr, enum ep_probe_result r, const char *detail)
{
	u->counts[r]++;
	u->totals[r]++;
	snprintf(u->last, sizeof(u->last), "%s %s: %s%s%s", pr->qname,
		 pr->qtype == LDNS_RR_TYPE_AAAA ? "AAAA" : "A", ep_probe_result_names[r],
		 detail ? " - " : "", detail ? detail : "");
	if (pr->fd >= 0)
		close(pr->fd);
	pr->fd = -1;
	pr->busy = false;
}

/* Fills the probe's name, type and expectations. */
static void choose(struct ep_dns_prober *p, struct upstream *u, struct probe *pr)
{
	size_t n = 0;

	if (p->n_canaries) {
		const struct ep_cfg_dns_canary *c = &p->canaries[u->rotate++ % p->n_canaries];
		bool v4 = false;

		snprintf(pr->qname, sizeof(pr->qname), "%s", c->name);
		for (size_t i = 0; i < c->n_expect && n < MAX_EXPECT; i++) {
			pr->expect[n].family = c->expect[i].family == EP_FAMILY_V4 ? AF_INET : AF_INET6;
			memcpy(pr->expect[n].a, c->expect[i].addr, 16);
			v4 |= c->expect[i].family == EP_FAMILY_V4;
			n++;
		}
		pr->qtype = v4 ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA;
		pr->kind = PK_CANARY;
		pr->n_expect = n;
		return;
	}
	if (p->pick && p->pick(p->pick_arg, pr->qname, sizeof(pr->qname), pr->expect, &n, MAX_EXPECT) &&
	    n) {
		pr->qtype = pr->expect[0].family == AF_INET ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA;
		pr->kind = PK_SNAPSHOT;
		pr->n_expect = n;
		return;
	}
	/* Nothing trusted to compare with: a name that cannot exist. A resolver
	 * must say NXDOMAIN; one that answers with addresses is forging. */
	snprintf(pr->qname, sizeof(pr->qname), "edgeplane-probe-%04x%04x.invalid", rand16(), rand16());
	pr->qtype = LDNS_RR_TYPE_A;
	pr->kind = PK_LIVENESS;
	pr->n_expect = 0;
}

static void start_probe(struct ep_dns_prober *p, struct upstream *u, uint64_t now)
{
	struct sockaddr_storage ss = {};
	struct probe *pr = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;
	socklen_t sl;

	for (size_t k = 0; k < MAX_INFLIGHT && !pr; k++)
		if (!u->inflight[k].busy)
			pr = &u->inflight[k];
	if (!pr)
		return; /* everything still in flight: the timeouts will say so */
	choose(p, u, pr);
	pr->id = rand16();
	if (ep_dnsq_build(pr->qname, pr->qtype, pr->id, &wire, &len))
		return;
	if (u->addr.family == EP_FAMILY_V6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(53);
		memcpy(&s6->sin6_addr, u->addr.addr, 16);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(53);
		memcpy(&s4->sin_addr, u->addr.addr, 4);
		sl = sizeof(*s4);
	}
	/* A fresh socket per probe: a random source port each time. Connected,
	 * so the kernel hands us datagrams from the upstream's address:53 only. */
	pr->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pr->fd < 0 || connect(pr->fd, (struct sockaddr *)&ss, sl) ||
	    send(pr->fd, wire, len, 0) != (ssize_t)len) {
		pr->busy = true;
		finish(u, pr, EP_PROBE_TIMEOUT, strerror(errno));
		free(wire);
		return;
	}
	free(wire);
	pr->busy = true;
	pr->deadline_ns = now + p->timeout_ns;
}

static bool overlaps(const struct ep_dns_addr *a, size_t na, const struct ep_dns_addr *b, size_t nb)
{
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (a[i].family == b[j].family &&
			    !memcmp(a[i].a, b[j].a, a[i].family == AF_INET ? 4 : 16))
				return true;
	return false;
}

static void judge_reply(struct upstream *u, struct probe *pr, const ldns_pkt *pkt)
{
	struct ep_dnsq_chain chain;
	struct ep_dnsq_answer ans = {};
	char detail[96];

	ep_dnsq_chain_init(&chain, pr->qname);
	if (ep_dnsq_classify(pkt, pr->qname, pr->qtype, &chain, &ans)) {
		finish(u, pr, EP_PROBE_SERVFAIL, "cannot classify the answer");
		return;
	}
	switch (ans.outcome) {
	case EP_DNSQ_SERVFAIL:
	case EP_DNSQ_REFUSED:
		finish(u, pr, EP_PROBE_SERVFAIL, ep_dnsq_outcome_str(ans.outcome));
		break;
	case EP_DNSQ_NXDOMAIN:
		if (pr->kind == PK_LIVENESS)
			finish(u, pr, EP_PROBE_OK, NULL);
		else
			finish(u, pr, pr->kind == PK_CANARY ? EP_PROBE_WRONG : EP_PROBE_DIVERGENT,
			       "NXDOMAIN for a name that exists");
		break;
	case EP_DNSQ_ADDRS:
		if (pr->kind == PK_LIVENESS) {
			finish(u, pr, EP_PROBE_WRONG, "addresses for a name that cannot exist");
		} else if (overlaps(ans.addrs, ans.n_addrs, pr->expect, pr->n_expect)) {
			finish(u, pr, EP_PROBE_OK, NULL);
		} else {
			char got[48] = "?";

			if (ans.n_addrs)
				inet_ntop(ans.addrs[0].family, ans.addrs[0].a, got, sizeof(got));
			snprintf(detail, sizeof(detail), "answered %s, expected something else", got);
			finish(u, pr, pr->kind == PK_CANARY ? EP_PROBE_WRONG : EP_PROBE_DIVERGENT,
			       detail);
		}
		break;
	default:
		/* NODATA, a broken chain: the name should have had addresses. */
		if (pr->kind == PK_LIVENESS)
			finish(u, pr, EP_PROBE_OK, NULL);
		else
			finish(u, pr, pr->kind == PK_CANARY ? EP_PROBE_WRONG : EP_PROBE_DIVERGENT,
			       ep_dnsq_outcome_str(ans.outcome));
		break;
	}
	ep_dnsq_answer_free(&ans);
}

static void poll_probe(struct upstream *u, struct probe *pr, uint64_t now)
{
	uint8_t buf[4096];
	ssize_t n;

	while ((n = recv(pr->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		ldns_pkt *pkt = NULL;

		/* Wrong id or question: someone else's answer, or a forgery.
		 * Keep waiting for the real one. */
		if (ep_dnsq_parse_reply(buf, (size_t)n, pr->qname, pr->qtype, pr->id, &pkt) != EP_DNSQ_OK)
			continue;
		judge_reply(u, pr, pkt);
		ldns_pkt_free(pkt);
		return;
	}
	if (n < 0 && errno == ECONNREFUSED) {
		finish(u, pr, EP_PROBE_TIMEOUT, "port unreachable");
		return;
	}
	if (now >= pr->deadline_ns)
		finish(u, pr, EP_PROBE_TIMEOUT, "no answer in time");
}

void ep_dns_prober_tick(struct ep_dns_prober *p, uint64_t now)
{
	for (size_t i = 0; i < p->n; i++) {
		struct upstream *u = &p->up[i];

		for (size_t k = 0; k < MAX_INFLIGHT; k++)
			if (u->inflight[k].busy)
				poll_probe(u, &u->inflight[k], now);
		if (now >= u->next_ns) {
			/* Catch up without bursts after a stall. */
			u->next_ns = u->next_ns + p->interval_ns > now ? u->next_ns + p->interval_ns
								       : now + p->interval_ns;
			start_probe(p, u, now);
		}
	}
}

void ep_dns_prober_take(struct ep_dns_prober *p, size_t i, struct ep_dns_window *w)
{
	uint64_t *c = p->up[i].counts;

	w->probe_ok += c[EP_PROBE_OK];
	w->probe_timeout += c[EP_PROBE_TIMEOUT];
	w->probe_servfail += c[EP_PROBE_SERVFAIL];
	w->probe_wrong += c[EP_PROBE_WRONG];
	w->probe_bogus += c[EP_PROBE_BOGUS];
	w->probe_divergent += c[EP_PROBE_DIVERGENT];
	for (int r = 0; r < EP_PROBE_RESULTS; r++) {
		w->probes += c[r];
		c[r] = 0;
	}
}

const char *ep_dns_prober_last(const struct ep_dns_prober *p, size_t i)
{
	return p->up[i].last;
}

uint64_t ep_dns_prober_total(const struct ep_dns_prober *p, size_t i, int result)
{
	return p->up[i].totals[result];
}

void ep_dns_prober_free(struct ep_dns_prober *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		for (size_t k = 0; k < MAX_INFLIGHT; k++)
			if (p->up[i].inflight[k].fd >= 0)
				close(p->up[i].inflight[k].fd);
	free(p);
}
