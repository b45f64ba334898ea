#include "dns_health.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const state_names[EP_DNS_STATES] = {"healthy", "suspect", "failed-over",
							"recovering"};

const char *ep_dns_state_name(enum ep_dns_state s)
{
	return s < EP_DNS_STATES ? state_names[s] : "?";
}

const char *ep_dns_override_name(enum ep_dns_override o)
{
	return o == EP_DNS_FORCE_CACHE ? "failover" : o == EP_DNS_FORCE_UPSTREAM ? "failback" : "auto";
}

static bool ratio_at_least(uint64_t part, uint64_t whole, uint32_t bp)
{
	return whole && part * 10000ULL >= (uint64_t)bp * whole;
}

static void add_why(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (!why)
		return;
	n = strlen(why);
	if (n + 3 >= len)
		return;
	if (n) {
		memcpy(why + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(why + n, len - n, fmt, ap);
	va_end(ap);
}

unsigned ep_dns_judge(const struct ep_dns_thresholds *t, const struct ep_dns_window *w, char *why,
		      size_t whylen)
{
	/* Queries whose fate is known: answered (by the datapath's count),
	 * timed out, plus the probes. */
	uint64_t asked = w->answers + w->timeouts + w->probes;
	uint64_t answered = w->answers + w->probe_ok + w->probe_servfail + w->probe_wrong +
			    w->probe_bogus + w->probe_divergent;
	uint64_t timeouts = w->timeouts + w->probe_timeout;
	uint64_t servfail = w->servfail + w->probe_servfail;
	uint64_t divergent = w->divergent + w->probe_divergent;
	unsigned bad = 0;

	if (why && whylen)
		why[0] = '\0';
	/* A wrong canary answer or a bogus signature needs no statistics. */
	if (w->probe_wrong || w->probe_bogus) {
		bad |= EP_DNS_BAD_HIJACK;
		add_why(why, whylen, "%llu wrong canary answer(s), %llu bogus DNSSEC",
			(unsigned long long)w->probe_wrong, (unsigned long long)w->probe_bogus);
	}
	if (answered >= t->min_samples && ratio_at_least(divergent, answered, t->hijack_bp)) {
		bad |= EP_DNS_BAD_HIJACK;
		add_why(why, whylen, "%llu of %llu answers diverge from the trusted snapshot",
			(unsigned long long)divergent, (unsigned long long)answered);
	}
	/* The datapath's divergent answers over the short horizon: a path that
	 * tampers with some answers shows within a few hundred milliseconds,
	 * before a 1 s window's ratio moves or a canary probe is hit. */
	if (!(bad & EP_DNS_BAD_HIJACK) && w->recent_divergent >= EP_DNS_HIJACK_FAST_MIN &&
	    ratio_at_least(w->recent_divergent, w->recent_answered, t->hijack_bp)) {
		bad |= EP_DNS_BAD_HIJACK;
		add_why(why, whylen, "%llu of %llu answers in the last %d ms diverge from the trusted snapshot",
			(unsigned long long)w->recent_divergent, (unsigned long long)w->recent_answered,
			EP_DNS_RECENT_SLOTS * 100);
	}
	if (w->unmatched >= t->spoof_min && w->unmatched > w->answers) {
		bad |= EP_DNS_BAD_SPOOFING;
		add_why(why, whylen, "%llu answers matched no query (vs %llu real)",
			(unsigned long long)w->unmatched, (unsigned long long)w->answers);
	}
	if (w->silent_timeouts >= t->min_samples && w->silent_slots >= EP_DNS_SILENT_SLOTS) {
		bad |= EP_DNS_BAD_TIMEOUTS | EP_DNS_BAD_SILENT;
		add_why(why, whylen,
			"silent: %llu queries and probes in a row unanswered within the RTO, nothing "
			"answered for %llu ms",
			(unsigned long long)w->silent_timeouts, (unsigned long long)w->silent_slots * 100);
	} else if (asked >= t->min_samples && ratio_at_least(timeouts, asked, t->timeout_bp)) {
		bad |= EP_DNS_BAD_TIMEOUTS;
		add_why(why, whylen, "%llu of %llu queries timed out", (unsigned long long)timeouts,
			(unsigned long long)asked);
	}
	if (answered >= t->min_samples && ratio_at_least(servfail, answered, t->servfail_bp)) {
		bad |= EP_DNS_BAD_SERVFAIL;
		add_why(why, whylen, "%llu of %llu answers were SERVFAIL", (unsigned long long)servfail,
			(unsigned long long)answered);
	}
	if (!bad && asked < t->min_samples)
		return EP_DNS_UNKNOWN;
	return bad;
}

/* The verdict without the spoofing signal: what the upstream itself did. */
unsigned ep_dns_judge_no_spoofing(const struct ep_dns_thresholds *t, const struct ep_dns_window *w,
				  char *why, size_t whylen)
{
	struct ep_dns_window x = *w;

	x.unmatched = 0;
	return ep_dns_judge(t, &x, why, whylen);
}

uint64_t ep_dns_slot_answered(const struct ep_dns_window *w)
{
	return w->answers + w->divergent + w->probe_ok + w->probe_servfail + w->probe_wrong +
	       w->probe_bogus + w->probe_divergent;
}

void ep_dns_silence_track(uint64_t *timeouts, uint64_t *slots, const struct ep_dns_window *slot)
{
	if (ep_dns_slot_answered(slot)) {
		*timeouts = *slots = 0;
		return;
	}
	(*slots)++;
	*timeouts += slot->timeouts + slot->probe_timeout;
}

void ep_dns_window_recent(struct ep_dns_window *w, const struct ep_dns_window *slots, size_t n_slots,
			  size_t cur)
{
	size_t n = n_slots < EP_DNS_RECENT_SLOTS ? n_slots : EP_DNS_RECENT_SLOTS;

	w->recent_answered = w->recent_divergent = 0;
	for (size_t k = 0; k < n; k++) {
		const struct ep_dns_window *s = &slots[(cur + n_slots - k) % n_slots];

		w->recent_answered += ep_dns_slot_answered(s);
		w->recent_divergent += s->divergent + s->probe_divergent;
	}
}

static void go(struct ep_dns_machine *m, enum ep_dns_state to, uint64_t now)
{
	m->transitions[m->state][to]++;
	m->state = to;
	m->state_since_ns = now;
}

static bool apply_mode(struct ep_dns_machine *m)
{
	bool want;

	if (m->override == EP_DNS_FORCE_CACHE)
		want = true;
	else if (m->override == EP_DNS_FORCE_UPSTREAM)
		want = false;
	else
		want = m->state == EP_DNS_FAILED_OVER || m->state == EP_DNS_RECOVERING;
	if (want == m->cache_mode)
		return false;
	m->cache_mode = want;
	return true;
}

void ep_dns_machine_init(struct ep_dns_machine *m, const struct ep_dns_thresholds *t, uint64_t now)
{
	memset(m, 0, sizeof(*m));
	m->t = *t;
	m->state_since_ns = now;
	snprintf(m->reason, sizeof(m->reason), "starting");
}

bool ep_dns_machine_step(struct ep_dns_machine *m, const struct ep_dns_window *w,
			 const char *const *names, size_t n, uint64_t now, bool *changed_mode)
{
	enum ep_dns_state before = m->state;
	bool urgent = false, all_bad = n > 0, any_clean = false, all_silent = n > 0;
	char why[512] = "", one[256];

	for (size_t i = 0; i < n; i++) {
		unsigned v = ep_dns_judge(&m->t, &w[i], one, sizeof(one));

		/* Spoofing is not the upstream failing: anyone who knows the
		 * upstream's address can send answers matching no query, and a
		 * failover would hand them the node's DNS (names outside the
		 * snapshot fail from the cache). The datapath drops those answers
		 * (EP_DNS_UP_F_DROP_UNMATCHED, set from the verdict), and a forgery
		 * that guessed a pending query's id and contradicts the snapshot is
		 * divergent: a hijack, which does move the machine. */
		if (v & EP_DNS_BAD_SPOOFING) {
			v = ep_dns_judge_no_spoofing(&m->t, &w[i], one, sizeof(one));
		}
		if (v & EP_DNS_BAD_HIJACK)
			urgent = true;
		if (!(v & EP_DNS_BAD_SILENT))
			all_silent = false;
		if (!(v & (EP_DNS_BAD_TIMEOUTS | EP_DNS_BAD_SERVFAIL | EP_DNS_BAD_HIJACK)))
			all_bad = false;
		if (v == 0)
			any_clean = true;
		if (v && v != EP_DNS_UNKNOWN) {
			size_t l = strlen(why);

			snprintf(why + l, sizeof(why) - l, "%s%s: %s", l ? " | " : "", names[i], one);
		}
	}
	bool bad = urgent || all_bad;

	switch (m->state) {
	case EP_DNS_HEALTHY:
		if (!bad)
			break;
		m->bad_since_ns = now;
		snprintf(m->reason, sizeof(m->reason), "%s", why);
		go(m, EP_DNS_SUSPECT, now);
		/* Hijacking puts forged answers in front of clients: no waiting
		 * for confirmation. Silence is confirmed already: it lasted a
		 * few RTOs and two slots with nothing answered. */
		if (urgent || all_silent || !m->t.confirm_ns) {
			go(m, EP_DNS_FAILED_OVER, now);
			m->failovers++;
		}
		break;
	case EP_DNS_SUSPECT:
		if (!bad) {
			snprintf(m->reason, sizeof(m->reason), "the problem went away within %llu ms",
				 (unsigned long long)((now - m->bad_since_ns) / 1000000));
			go(m, EP_DNS_HEALTHY, now);
		} else if (urgent || all_silent || now - m->bad_since_ns >= m->t.confirm_ns) {
			snprintf(m->reason, sizeof(m->reason), "%s", why);
			go(m, EP_DNS_FAILED_OVER, now);
			m->failovers++;
		}
		break;
	case EP_DNS_FAILED_OVER:
		if (!bad && any_clean) {
			m->clean_since_ns = now;
			snprintf(m->reason, sizeof(m->reason),
				 "upstream answers correctly again; failing back after %llu s clean",
				 (unsigned long long)(m->t.failback_ns / 1000000000ULL));
			go(m, EP_DNS_RECOVERING, now);
		} else if (bad) {
			snprintf(m->reason, sizeof(m->reason), "%s", why);
		}
		break;
	case EP_DNS_RECOVERING:
		if (bad || !any_clean) {
			snprintf(m->reason, sizeof(m->reason), "%s",
				 bad ? why : "no upstream answered cleanly during recovery");
			go(m, EP_DNS_FAILED_OVER, now);
		} else if (now - m->clean_since_ns >= m->t.failback_ns) {
			snprintf(m->reason, sizeof(m->reason), "upstream clean for %llu s",
				 (unsigned long long)((now - m->clean_since_ns) / 1000000000ULL));
			go(m, EP_DNS_HEALTHY, now);
		}
		break;
	default:
		break;
	}
	*changed_mode = apply_mode(m);
	return m->state != before;
}

bool ep_dns_machine_override(struct ep_dns_machine *m, enum ep_dns_override o, uint64_t now)
{
	(void)now;
	m->override = o;
	return apply_mode(m);
}

const char *ep_dns_gate_why_name(enum ep_dns_gate_why w)
{
	switch (w) {
	case EP_GATE_REFUSED:
		return "failover refused: the cache is not usable";
	case EP_GATE_GRACE:
		return "the cache stopped answering; waiting for it to come back";
	case EP_GATE_LIFTED:
		return "redirect lifted: the cache is down, queries go to the upstream";
	default:
		return "open";
	}
}

bool ep_dns_gate_step(struct ep_dns_gate *g, bool want, bool forced, bool usable, uint64_t now)
{
	bool before = g->applied;
	enum ep_dns_gate_why was = g->why;

	if (usable)
		g->down_since_ns = 0;
	else if (!g->down_since_ns)
		g->down_since_ns = now ? now : 1;
	if (!want) {
		g->applied = false;
		g->why = EP_GATE_OPEN;
	} else if (forced || usable) {
		g->applied = true;
		g->why = EP_GATE_OPEN;
	} else if (!g->applied) {
		/* Not redirected yet (a new failover, or lifted before): stay. */
		g->why = g->why == EP_GATE_LIFTED ? EP_GATE_LIFTED : EP_GATE_REFUSED;
	} else if (now - g->down_since_ns >= EP_DNS_CACHE_DOWN_LIFT_NS) {
		g->applied = false;
		g->why = EP_GATE_LIFTED;
	} else {
		g->why = EP_GATE_GRACE;
	}
	if (g->why != was && g->why == EP_GATE_REFUSED)
		g->refusals++;
	if (g->why != was && g->why == EP_GATE_LIFTED)
		g->lifts++;
	return g->applied != before;
}
