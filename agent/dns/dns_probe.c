#include "dns_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dnssec_check.h"
#include "log.h"
#include "util.h"

#define MAX_INFLIGHT 4
/* Timed-out probes still listening for their late reply, per upstream. */
#define MAX_LATE 4
#define MAX_EXPECT 8
/* A bogus answer is logged at most this often per upstream, and so is a
 * probe socket that could not be exempted. */
#define BOGUS_LOG_NS (30ULL * 1000000000ULL)
#define EXEMPT_LOG_NS BOGUS_LOG_NS

const char *const ep_probe_result_names[EP_PROBE_RESULTS] = {"ok",    "timeout", "servfail",
							      "wrong", "bogus",   "divergent"};

/* PK_DNSKEY: the anchored zone's keys, fetched to validate the others. */
enum probe_kind { PK_CANARY, PK_SNAPSHOT, PK_LIVENESS, PK_DNSKEY };

struct probe {
	bool busy;
	int fd;
	uint16_t id, qtype;
	enum probe_kind kind;
	char qname[256];
	uint64_t sent_ns, deadline_ns;
	struct ep_dns_addr expect[MAX_EXPECT];
	size_t n_expect;
};

/* A timed-out probe's socket, kept until the ceiling for its late reply. */
struct late_probe {
	int fd;
	uint16_t id, qtype;
	char qname[256];
	uint64_t sent_ns, until_ns;
};

struct upstream {
	struct ep_ip addr;
	uint64_t next_ns;
	size_t rotate;
	struct probe inflight[MAX_INFLIGHT];
	uint64_t timeout_ns; /* the upstream's RTO, set by the failover module */
	struct late_probe late[MAX_LATE];
	uint64_t late_rtt_us[MAX_LATE];
	size_t n_late_rtt;
	uint64_t counts[EP_PROBE_RESULTS]; /* since the last take */
	uint64_t totals[EP_PROBE_RESULTS];
	char last[400];
	uint64_t bogus_logged_ns, bogus_unlogged;
	/* DNSSEC (trust anchor set): the zone keys this upstream served and we
	 * validated; keys.keys NULL = none yet. Used until keys_expire_ns,
	 * fetched again from keys_refresh_ns on. */
	struct ep_dnssec_keys keys;
	uint64_t keys_refresh_ns, keys_expire_ns;
	bool keys_fetching;
	char keys_note[240];
};

struct ep_dns_prober {
	struct upstream up[EP_CFG_MAX_UPSTREAMS];
	size_t n;
	uint64_t interval_ns, timeout_ns;
	const struct ep_cfg_dns_canary *canaries; /* owned by the config */
	size_t n_canaries;
	ep_probe_pick_fn pick;
	void *pick_arg;
	struct ep_dnssec_anchor *anchor; /* NULL: no validation */
	const struct ep_dns_exempt_map *exempt; /* owned by the caller */
	uint64_t exempt_failed, exempt_logged_ns;
};

static int load_anchor(struct ep_dns_prober *p, const struct ep_cfg_dns *cfg, char *err,
		       size_t errlen)
{
	char msg[PATH_MAX + 256];
	size_t in_zone = 0;

	if (ep_dnssec_anchor_load(cfg->health.trust_anchor, &p->anchor, msg, sizeof(msg))) {
		if (err && errlen)
			snprintf(err, errlen, "dns.health.trust_anchor: %s", msg);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->health.n_canaries; i++)
		in_zone += ep_dnssec_in_zone(p->anchor, cfg->health.canaries[i].name);
	log_info("DNS probes: DNSSEC validation for zone %s (%zu anchor record(s) from %s)",
		 ep_dnssec_anchor_zone(p->anchor), ep_dnssec_anchor_count(p->anchor),
		 cfg->health.trust_anchor);
	if (!cfg->health.n_canaries)
		log_warn("DNS probes: no canaries: snapshot names in %s are DNSSEC-validated; names "
			 "delegated to an unsigned zone below it would be judged bogus (configure "
			 "canaries in %s)",
			 ep_dnssec_anchor_zone(p->anchor), ep_dnssec_anchor_zone(p->anchor));
	else if (in_zone < cfg->health.n_canaries)
		log_warn("DNS probes: %zu of %zu canaries are outside %s; their answers are not "
			 "DNSSEC-validated",
			 cfg->health.n_canaries - in_zone, cfg->health.n_canaries,
			 ep_dnssec_anchor_zone(p->anchor));
	return 0;
}

struct ep_dns_prober *ep_dns_prober_new(const struct ep_cfg_dns *cfg, ep_probe_pick_fn pick,
					void *pick_arg, const struct ep_dns_exempt_map *exempt,
					char *err, size_t errlen)
{
	struct ep_dns_prober *p = calloc(1, sizeof(*p));

	if (err && errlen)
		err[0] = '\0';
	if (!p) {
		if (err && errlen)
			snprintf(err, errlen, "DNS prober: out of memory");
		return NULL;
	}
	if (cfg->health.trust_anchor[0] && load_anchor(p, cfg, err, errlen)) {
		free(p);
		return NULL;
	}
	p->n = cfg->n_upstreams;
	p->interval_ns = (uint64_t)cfg->health.probe_interval_ms * 1000000ULL;
	p->timeout_ns = (uint64_t)cfg->health.timeout_ms * 1000000ULL;
	p->canaries = cfg->health.canaries;
	p->n_canaries = cfg->health.n_canaries;
	p->pick = pick;
	p->pick_arg = pick_arg;
	p->exempt = exempt;
	for (size_t i = 0; i < p->n; i++) {
		p->up[i].addr = cfg->upstreams[i];
		for (size_t k = 0; k < MAX_INFLIGHT; k++)
			p->up[i].inflight[k].fd = -1;
		for (size_t k = 0; k < MAX_LATE; k++)
			p->up[i].late[k].fd = -1;
		p->up[i].timeout_ns = p->timeout_ns;
		snprintf(p->up[i].last, sizeof(p->up[i].last), "no probe yet");
		snprintf(p->up[i].keys_note, sizeof(p->up[i].keys_note), "not fetched yet");
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

static const char *qtype_str(uint16_t t)
{
	return t == LDNS_RR_TYPE_AAAA ? "AAAA" : t == LDNS_RR_TYPE_DNSKEY ? "DNSKEY" : "A";
}

/* Ends a probe without a result (our own failure, not the upstream's). */
static void abandon(struct upstream *u, struct probe *pr)
{
	if (pr->kind == PK_DNSKEY)
		u->keys_fetching = false;
	if (pr->fd >= 0)
		close(pr->fd);
	pr->fd = -1;
	pr->busy = false;
}

static void finish(struct upstream *u, struct probe *pr, enum ep_probe_result r, const char *detail)
{
	u->counts[r]++;
	u->totals[r]++;
	snprintf(u->last, sizeof(u->last), "%s %s: %s%s%s", pr->qname, qtype_str(pr->qtype),
		 ep_probe_result_names[r], detail ? " - " : "", detail ? detail : "");
	/* Probes run several times a second: the first bogus answer is
	 * logged, then at most one line every 30 s with a count. */
	if (r == EP_PROBE_BOGUS) {
		uint64_t t = ep_now_ns();

		if (!u->bogus_logged_ns || t - u->bogus_logged_ns >= BOGUS_LOG_NS) {
			char a[EP_IP_STRLEN];

			ep_ip_str(&u->addr, a, sizeof(a));
			log_warn("DNS probe of %s: DNSSEC validation failed: %s (%llu more bogus since "
				 "the last such line)",
				 a, u->last, (unsigned long long)u->bogus_unlogged);
			u->bogus_logged_ns = t;
			u->bogus_unlogged = 0;
		} else {
			u->bogus_unlogged++;
		}
	}
	abandon(u, pr);
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

static void drop_keys(struct upstream *u, const char *why)
{
	ep_dnssec_keys_free(&u->keys);
	u->keys_refresh_ns = u->keys_expire_ns = 0;
	snprintf(u->keys_note, sizeof(u->keys_note), "%s", why);
}

/* With a trust anchor: the zone's DNSKEY RRset is fetched first and again
 * when due; the other probes wait for validated keys. False: nothing to send
 * this round. */
static bool choose_dnssec(struct ep_dns_prober *p, struct upstream *u, struct probe *pr,
			  uint64_t now)
{
	if (u->keys.keys && now >= u->keys_expire_ns)
		drop_keys(u, "the validated keys expired before they could be fetched again");
	if (!u->keys_fetching && (!u->keys.keys || now >= u->keys_refresh_ns)) {
		snprintf(pr->qname, sizeof(pr->qname), "%s", ep_dnssec_anchor_zone(p->anchor));
		pr->qtype = LDNS_RR_TYPE_DNSKEY;
		pr->kind = PK_DNSKEY;
		pr->n_expect = 0;
		u->keys_fetching = true;
		return true;
	}
	if (!u->keys.keys)
		return false; /* the key fetch in flight comes first */
	choose(p, u, pr);
	return true;
}

/* With a trust anchor, the DO bit: the upstream then includes the RRSIGs. */
static int build_query(const struct ep_dns_prober *p, const struct probe *pr, uint8_t **wire,
		       size_t *len)
{
	return ep_dnsq_build_flags(pr->qname, pr->qtype, pr->id, p->anchor ? EP_DNSQ_F_DO : 0, wire,
				   len);
}

/* Exempts a probe socket from the failover redirect. Non-zero: the probe is
 * not sent. An unexempted probe would, while failed over, ask our own cache
 * and report the upstream healthy; no result is better than a false one. */
static int exempt_or_skip(struct ep_dns_prober *p, int fd)
{
	int rc = ep_dns_exempt_socket(p->exempt, fd);
	uint64_t t;

	if (!rc)
		return 0;
	p->exempt_failed++;
	t = ep_now_ns();
	if (!p->exempt_logged_ns || t - p->exempt_logged_ns >= EXEMPT_LOG_NS) {
		log_warn("DNS probes: cannot exempt a probe socket from the failover redirect (%s); "
			 "probe not sent (%llu so far)",
			 strerror(-rc), (unsigned long long)p->exempt_failed);
		p->exempt_logged_ns = t;
	}
	return rc;
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
	if (p->anchor) {
		if (!choose_dnssec(p, u, pr, now))
			return;
	} else {
		choose(p, u, pr);
	}
	pr->id = rand16();
	if (build_query(p, pr, &wire, &len)) {
		abandon(u, pr);
		return;
	}
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
	if (pr->fd >= 0 && exempt_or_skip(p, pr->fd)) {
		free(wire);
		abandon(u, pr);
		return;
	}
	if (pr->fd < 0 || connect(pr->fd, (struct sockaddr *)&ss, sl) ||
	    send(pr->fd, wire, len, 0) != (ssize_t)len) {
		pr->busy = true;
		finish(u, pr, EP_PROBE_TIMEOUT, strerror(errno));
		free(wire);
		return;
	}
	free(wire);
	pr->busy = true;
	pr->sent_ns = now;
	pr->deadline_ns = now + u->timeout_ns;
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

static bool rcode_servfail(const ldns_pkt *pkt)
{
	int rc = ldns_pkt_get_rcode(pkt);

	return rc != LDNS_RCODE_NOERROR && rc != LDNS_RCODE_NXDOMAIN;
}

/* The reply to a DNSKEY probe: validated against the anchor, the keys kept. */
static void judge_dnskey(struct ep_dns_prober *p, struct upstream *u, struct probe *pr,
			 const ldns_pkt *pkt, uint64_t now)
{
	struct ep_dnssec_keys k;
	enum ep_dnssec_verdict v;
	char why[240];

	if (rcode_servfail(pkt)) {
		finish(u, pr, EP_PROBE_SERVFAIL,
		       ldns_pkt_get_rcode(pkt) == LDNS_RCODE_REFUSED ? "refused" : "servfail");
		return;
	}
	if (ldns_pkt_tc(pkt)) {
		finish(u, pr, EP_PROBE_SERVFAIL,
		       "truncated reply (larger than the 1232-byte EDNS0 buffer; probes do not use TCP)");
		return;
	}
	v = ep_dnssec_check_dnskey(p->anchor, pkt, time(NULL), &k, why, sizeof(why));
	if (v == EP_DNSSEC_ERROR) {
		abandon(u, pr);
		return;
	}
	if (v != EP_DNSSEC_SECURE) {
		/* Bogus keys: nothing this upstream says can be validated. */
		drop_keys(u, why);
		finish(u, pr, EP_PROBE_BOGUS, why);
		return;
	}
	ep_dnssec_keys_free(&u->keys);
	u->keys = k;
	u->keys_refresh_ns = now + (uint64_t)k.refresh_s * 1000000000ULL;
	u->keys_expire_ns = now + (uint64_t)k.expire_s * 1000000000ULL;
	snprintf(u->keys_note, sizeof(u->keys_note), "%s", why);
	finish(u, pr, EP_PROBE_OK, why);
}

/* DNSSEC verdict on an answer probe's reply. True when it settled the probe
 * (bogus, or dropped); false: judge the content as usual. */
static bool judge_dnssec(struct ep_dns_prober *p, struct upstream *u, struct probe *pr,
			 const ldns_pkt *pkt)
{
	enum ep_dnssec_verdict v;
	char why[240];

	if (pr->kind == PK_LIVENESS)
		return false; /* no denial-of-existence proofs: not validated */
	if (!ep_dnssec_in_zone(p->anchor, pr->qname))
		return false;
	if (!u->keys.keys) {
		/* The keys went away (bogus, or expired) while this probe was in
		 * flight; that was counted on the DNSKEY probe. */
		abandon(u, pr);
		return true;
	}
	v = ep_dnssec_check_answer(p->anchor, u->keys.keys, pkt, pr->qname, pr->qtype, time(NULL),
				   why, sizeof(why));
	if (v == EP_DNSSEC_ERROR) {
		abandon(u, pr);
		return true;
	}
	if (v != EP_DNSSEC_BOGUS)
		return false;
	if (ldns_pkt_tc(pkt))
		finish(u, pr, EP_PROBE_SERVFAIL, "truncated reply: signatures missing, probes do not use TCP");
	else
		finish(u, pr, EP_PROBE_BOGUS, why);
	return true;
}

static void judge_reply(struct ep_dns_prober *p, struct upstream *u, struct probe *pr,
			const ldns_pkt *pkt, uint64_t now)
{
	struct ep_dnsq_chain chain;
	struct ep_dnsq_answer ans = {};
	char detail[96];

	if (pr->kind == PK_DNSKEY) {
		judge_dnskey(p, u, pr, pkt, now);
		return;
	}
	if (p->anchor && judge_dnssec(p, u, pr, pkt))
		return;
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

/* Moves a timed-out probe's socket to the late list (the oldest there gives
 * way), so finish() does not close it. */
static void keep_listening(struct ep_dns_prober *p, struct upstream *u, struct probe *pr,
			   uint64_t now)
{
	struct late_probe *l = &u->late[0];
	uint64_t until = pr->sent_ns + p->timeout_ns;

	if (pr->fd < 0 || pr->kind == PK_DNSKEY || until <= now)
		return;
	for (size_t k = 0; k < MAX_LATE; k++) {
		if (u->late[k].fd < 0) {
			l = &u->late[k];
			break;
		}
		if (u->late[k].sent_ns < l->sent_ns)
			l = &u->late[k];
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = pr->fd;
	l->id = pr->id;
	l->qtype = pr->qtype;
	snprintf(l->qname, sizeof(l->qname), "%s", pr->qname);
	l->sent_ns = pr->sent_ns;
	l->until_ns = until;
	pr->fd = -1;
}

static void poll_probe(struct ep_dns_prober *p, struct upstream *u, struct probe *pr, uint64_t now)
{
	uint8_t buf[4096];
	ssize_t n;

	while ((n = recv(pr->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		ldns_pkt *pkt = NULL;

		/* Wrong id or question: someone else's answer, or a forgery.
		 * Keep waiting for the real one. */
		if (ep_dnsq_parse_reply(buf, (size_t)n, pr->qname, pr->qtype, pr->id, &pkt) != EP_DNSQ_OK)
			continue;
		judge_reply(p, u, pr, pkt, now);
		ldns_pkt_free(pkt);
		return;
	}
	if (n < 0 && errno == ECONNREFUSED) {
		finish(u, pr, EP_PROBE_TIMEOUT, "port unreachable");
		return;
	}
	if (now >= pr->deadline_ns) {
		keep_listening(p, u, pr, now);
		finish(u, pr, EP_PROBE_TIMEOUT, "no answer within the RTO");
	}
}

/* A late reply: the timeout was counted, the round trip still tells the
 * estimator how slow the upstream has become. */
static void poll_late(struct upstream *u, struct late_probe *l, uint64_t now)
{
	uint8_t buf[4096];
	ssize_t n;

	while ((n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		ldns_pkt *pkt = NULL;

		if (ep_dnsq_parse_reply(buf, (size_t)n, l->qname, l->qtype, l->id, &pkt) != EP_DNSQ_OK)
			continue;
		ldns_pkt_free(pkt);
		if (u->n_late_rtt < MAX_LATE)
			u->late_rtt_us[u->n_late_rtt++] = (now - l->sent_ns) / 1000;
		now = l->until_ns; /* done: close below */
		break;
	}
	if (now >= l->until_ns || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		close(l->fd);
		l->fd = -1;
	}
}

void ep_dns_prober_tick(struct ep_dns_prober *p, uint64_t now)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		struct upstream *u = &p->up[i];

		for (size_t k = 0; k < MAX_INFLIGHT; k++)
			if (u->inflight[k].busy)
				poll_probe(p, u, &u->inflight[k], now);
		for (size_t k = 0; k < MAX_LATE; k++)
			if (u->late[k].fd >= 0)
				poll_late(u, &u->late[k], now);
		if (now >= u->next_ns) {
			/* Catch up without bursts after a stall. */
			u->next_ns = u->next_ns + p->interval_ns > now ? u->next_ns + p->interval_ns
								       : now + p->interval_ns;
			start_probe(p, u, now);
		}
	}
}

void ep_dns_prober_set_timeout(struct ep_dns_prober *p, size_t i, uint64_t timeout_ns)
{
	if (!p || i >= p->n)
		return;
	p->up[i].timeout_ns = timeout_ns && timeout_ns < p->timeout_ns ? timeout_ns : p->timeout_ns;
}

size_t ep_dns_prober_late_rtts(struct ep_dns_prober *p, size_t i, uint64_t *us, size_t max)
{
	struct upstream *u;
	size_t n;

	if (!p || i >= p->n)
		return 0;
	u = &p->up[i];
	n = u->n_late_rtt < max ? u->n_late_rtt : max;
	memcpy(us, u->late_rtt_us, n * sizeof(*us));
	u->n_late_rtt = 0;
	return n;
}

void ep_dns_prober_take(struct ep_dns_prober *p, size_t i, struct ep_dns_window *w)
{
	uint64_t *c;

	if (!p || i >= p->n)
		return;
	c = p->up[i].counts;
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
	if (!p || i >= p->n)
		return "prober not running";
	return p->up[i].last;
}

uint64_t ep_dns_prober_total(const struct ep_dns_prober *p, size_t i, int result)
{
	if (!p || i >= p->n || result < 0 || result >= EP_PROBE_RESULTS)
		return 0;
	return p->up[i].totals[result];
}

const char *ep_dns_prober_dnssec(const struct ep_dns_prober *p, size_t i, char *buf, size_t len)
{
	const struct upstream *u;
	uint64_t now = ep_now_ns();

	if (!p || i >= p->n || !p->anchor) {
		snprintf(buf, len, "off");
		return buf;
	}
	u = &p->up[i];
	if (u->keys.keys)
		snprintf(buf, len, "zone %s: %s; fetched again in %llu s", ep_dnssec_anchor_zone(p->anchor),
			 u->keys_note,
			 (unsigned long long)(u->keys_refresh_ns > now ? (u->keys_refresh_ns - now) / 1000000000ULL
								       : 0));
	else
		snprintf(buf, len, "zone %s: no validated keys (%s)", ep_dnssec_anchor_zone(p->anchor),
			 u->keys_note);
	return buf;
}

void ep_dns_prober_free(struct ep_dns_prober *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		for (size_t k = 0; k < MAX_INFLIGHT; k++)
			if (p->up[i].inflight[k].fd >= 0)
				close(p->up[i].inflight[k].fd);
		for (size_t k = 0; k < MAX_LATE; k++)
			if (p->up[i].late[k].fd >= 0)
				close(p->up[i].late[k].fd);
		ep_dnssec_keys_free(&p->up[i].keys);
	}
	ep_dnssec_anchor_free(p->anchor);
	free(p);
}
