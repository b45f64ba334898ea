/* See canary.h. */
#include "canary.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "evloop.h"
#include "hash.h"
#include "health.h"
#include "log.h"
#include "rollback.h"
#include "util.h"

#define NS_PER_MS 1000000ULL
#define NS_PER_S 1000000000ULL
/* Timed-out pending entries are kept this long so retransmitted SYNs and
 * late answers are recognised, then dropped. */
#define FORGET_NS (30ULL * NS_PER_S)

enum { R_REFUSED, R_SYN_UNANSWERED, R_RST, R_HTTP_5XX, R_UDP_UNANSWERED, R_MAX };
static const char *const reason_names[R_MAX] = {"refused", "syn_unanswered", "rst", "http_5xx",
						"udp_unanswered"};

struct cbe {
	uint32_t id;
	bool canary;
	char label[EP_ENDPOINT_STRLEN];
	bool have_prev;
	struct ep_health_counts prev; /* the last read, with our own counters */
	uint64_t syn_unans, udp_unans; /* counted by the sweep */
	uint64_t fail[R_MAX];	      /* totals since the agent started watching */
};

enum { SIDE_STABLE = 0, SIDE_CANARY = 1 };

struct csvc {
	char name[EP_NAME_MAX];
	uint32_t id;
	struct ep_cfg_canary cfg;
	uint64_t sig;
	struct cbe *bes;
	size_t n_bes;
	struct ep_canary_side acc[2];  /* gathering towards min_samples */
	struct ep_canary_side last[2]; /* the outcomes of the last verdict */
	struct ep_canary_side prev[2]; /* the last full batch (healthy) */
	uint64_t last_eval_ns;
	bool healthy_in_step; /* a healthy verdict since the current step began */
	struct ep_canary_state st; /* as pinned */
	enum ep_canary_verdict verdict;
	bool judged;
	char decision[384];
	double decision_at; /* wall clock */
};

struct ep_canary {
	struct ep_canary_deps d;
	struct csvc *v;
	size_t n;
	sd_event_source *timer;
	uint64_t tick_ns;
	uint32_t *watched; /* service ids marked in ep_health_svc */
	size_t n_watched;
};

static struct ep_health_fds hfds(const struct ep_canary *c)
{
	return (struct ep_health_fds){.svc = c->d.fds.svc, .stats = c->d.fds.stats,
				      .pend = c->d.fds.pend, .cfg = c->d.fds.cfg};
}

/* What decides the share: a new percent or ramp is an operator's word. The
 * service's VIP:port/proto is in it too, so a service id reused by another
 * service never inherits a stale state. */
static uint64_t canary_sig(const struct ep_cfg_service *cs)
{
	const struct ep_cfg_canary *k = &cs->canary;
	uint64_t h = ep_hash64_init();

	h = ep_hash64_update(h, "canary-v1", 9);
	h = ep_hash64_update(h, cs->vip.addr, sizeof(cs->vip.addr));
	h = ep_hash64_update(h, &cs->vip.family, sizeof(cs->vip.family));
	h = ep_hash64_update(h, &cs->port, sizeof(cs->port));
	h = ep_hash64_update(h, &cs->proto, sizeof(cs->proto));
	h = ep_hash64_update(h, &k->percent_bp, sizeof(k->percent_bp));
	h = ep_hash64_update(h, &k->n_steps, sizeof(k->n_steps));
	h = ep_hash64_update(h, k->steps_bp, sizeof(k->steps_bp[0]) * k->n_steps);
	return h ? h : 1;
}

static bool has_canary_backend(const struct ep_cfg_service *s)
{
	for (size_t i = 0; i < s->n_backends; i++)
		if (s->backends[i].canary)
			return true;
	return false;
}

static int state_read(const struct ep_canary *c, uint32_t id, struct ep_canary_state *st)
{
	memset(st, 0, sizeof(*st));
	return bpf_map_lookup_elem(c->d.fds.state, &id, st) ? -errno : 0;
}

static void state_write(const struct ep_canary *c, const struct csvc *s)
{
	if (bpf_map_update_elem(c->d.fds.state, &s->id, &s->st, BPF_ANY))
		log_warn("canary: cannot pin the state of service %s: %s", s->name, strerror(errno));
}

static struct csvc *find(struct ep_canary *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].name, name))
			return &c->v[i];
	return NULL;
}

static struct ep_svc_state *svc_state(struct ep_canary *c, const char *name)
{
	return (struct ep_svc_state *)ep_services_find(c->d.svcs, name);
}

static uint32_t share_of(struct ep_canary *c, const struct csvc *s)
{
	const struct ep_svc_state *st = ep_services_find(c->d.svcs, s->name);

	return st ? ep_services_canary_share(st) : 0;
}

/* The one map update that changes what new clients get. */
static int set_share(struct ep_canary *c, struct csvc *s, bool override, uint32_t bp)
{
	int rc = ep_services_set_canary(c->d.svcs, s->name, override, bp);

	if (rc)
		log_error("canary: cannot set the share of service %s: %s", s->name, strerror(-rc));
	return rc;
}

static void decide(struct csvc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void decide(struct csvc *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->decision, sizeof(s->decision), fmt, ap);
	va_end(ap);
	s->decision_at = ep_wall_seconds();
}

/* ---- configuration -------------------------------------------------------- */

void ep_canary_prepare(struct ep_canary *c, const struct ep_config *cfg)
{
	struct ep_services *svcs = c->d.svcs;

	for (size_t i = 0; i < svcs->n_svcs; i++) {
		struct ep_svc_state *st = &svcs->svcs[i];
		const struct ep_cfg_service *cs = NULL;
		struct ep_canary_state ps;

		for (size_t k = 0; k < cfg->n_services; k++) {
			const struct ep_cfg_service *x = &cfg->services[k];

			if (ep_ip_eq(&x->vip, &st->vip) && x->port == st->port && x->proto == st->proto)
				cs = x;
		}
		if (!cs || state_read(c, st->id, &ps))
			continue;
		if (ps.cfg_sig == canary_sig(cs) && (ps.flags & EP_CANARY_S_OVERRIDE)) {
			st->canary_override = true;
			st->canary_override_bp = ps.share_bp;
		} else {
			st->canary_override = false;
		}
	}
}

static void fill_backends(struct csvc *s, const struct ep_svc_state *st, const struct csvc *old)
{
	size_t n = 0;

	s->bes = calloc(st->n_bes ? st->n_bes : 1, sizeof(*s->bes));
	if (!s->bes)
		return;
	for (size_t i = 0; i < st->n_bes; i++) {
		const struct ep_be_state *b = &st->bes[i];
		struct cbe *e = &s->bes[n++];

		e->id = b->id;
		e->canary = b->canary;
		snprintf(e->label, sizeof(e->label), "%s", b->label);
		for (size_t k = 0; old && k < old->n_bes; k++)
			if (old->bes[k].id == b->id) {
				e->have_prev = old->bes[k].have_prev;
				e->prev = old->bes[k].prev;
				e->syn_unans = old->bes[k].syn_unans;
				e->udp_unans = old->bes[k].udp_unans;
				memcpy(e->fail, old->bes[k].fail, sizeof(e->fail));
			}
	}
	s->n_bes = n;
}

static void on_tick(void *userdata, uint64_t now_ns)
{
	ep_canary_tick(userdata, now_ns);
}

static void free_list(struct csvc *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].bes);
	free(v);
}

int ep_canary_apply(struct ep_canary *c, const struct ep_config *cfg, char *err, size_t errlen)
{
	struct ep_health_fds f = hfds(c);
	struct csvc *nv = calloc(cfg->n_services ? cfg->n_services : 1, sizeof(*nv));
	uint32_t *watched = calloc(cfg->n_services ? cfg->n_services : 1, sizeof(*watched));
	uint64_t now = ep_now_ns(), tick = 100 * NS_PER_MS;
	size_t n = 0;

	if (!nv || !watched) {
		free(nv);
		free(watched);
		snprintf(err, errlen, "canary: out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct ep_cfg_service *cs = &cfg->services[i];
		struct ep_svc_state *st = svc_state(c, cs->name);
		struct csvc *s, *old;
		struct ep_canary_state ps;

		if (!st || !has_canary_backend(cs))
			continue;
		s = &nv[n++];
		snprintf(s->name, sizeof(s->name), "%s", cs->name);
		s->id = st->id;
		s->cfg = cs->canary;
		s->sig = canary_sig(cs);
		old = find(c, cs->name);
		if (old && old->id != s->id)
			old = NULL;
		fill_backends(s, st, old);
		if (old) {
			memcpy(s->acc, old->acc, sizeof(s->acc));
			memcpy(s->last, old->last, sizeof(s->last));
			memcpy(s->prev, old->prev, sizeof(s->prev));
			s->last_eval_ns = old->last_eval_ns;
			s->healthy_in_step = old->healthy_in_step;
			s->verdict = old->verdict;
			s->judged = old->judged;
			memcpy(s->decision, old->decision, sizeof(s->decision));
			s->decision_at = old->decision_at;
		}
		state_read(c, s->id, &ps);
		if (ps.cfg_sig == s->sig) {
			s->st = ps;
		} else {
			/* New or changed canary config: it decides, from now. */
			s->st = (struct ep_canary_state){.cfg_sig = s->sig, .rollbacks = ps.rollbacks,
							 .step_since_ns = now};
			if (cs->canary.n_steps) {
				s->st.flags = EP_CANARY_S_OVERRIDE;
				s->st.share_bp = cs->canary.steps_bp[0];
			}
			if (ps.cfg_sig)
				decide(s, "config: canary settings changed; share %.2f%%%s",
				       (cs->canary.n_steps ? cs->canary.steps_bp[0] : cs->canary.percent_bp) /
					       100.0,
				       cs->canary.n_steps ? " (ramp step 1)" : "");
			memset(s->acc, 0, sizeof(s->acc));
			memset(s->prev, 0, sizeof(s->prev));
			state_write(c, s);
		}
		if ((s->st.flags & EP_CANARY_S_OVERRIDE) != st->canary_override ||
		    ((s->st.flags & EP_CANARY_S_OVERRIDE) && st->canary_override_bp != s->st.share_bp))
			set_share(c, s, s->st.flags & EP_CANARY_S_OVERRIDE, s->st.share_bp);
		ep_health_set_svc(&f, s->id,
				  EP_HEALTH_F_ON | (cs->canary.http ? EP_HEALTH_F_HTTP : 0) |
					  (cfg->datapath.forwarding == EP_FWD_REDIRECT
						   ? EP_HEALTH_F_FWD_UNSEEN
						   : 0));
		watched[n - 1] = s->id;
		for (size_t k = 0; k < s->n_bes; k++)
			ep_health_track_backend(&f, s->bes[k].id, true);
		if (cs->canary.rollback.window_ms * NS_PER_MS < tick)
			tick = cs->canary.rollback.window_ms * NS_PER_MS;
	}
	/* Services no longer watched: the tap forgets them, and so does the
	 * pinned state (a canary coming back later starts from its config). */
	for (size_t i = 0; i < c->n_watched; i++) {
		struct ep_canary_state zero = {};
		bool still = false;

		for (size_t k = 0; k < n; k++)
			still |= watched[k] == c->watched[i];
		if (!still) {
			ep_health_set_svc(&f, c->watched[i], 0);
			bpf_map_update_elem(c->d.fds.state, &c->watched[i], &zero, BPF_ANY);
		}
	}
	ep_health_set_watched(&f, (uint32_t)n);
	free_list(c->v, c->n);
	free(c->watched);
	c->v = nv;
	c->n = n;
	c->watched = watched;
	c->n_watched = n;
	if (tick != c->tick_ns || !c->timer) {
		int rc;

		ep_source_free(&c->timer);
		c->tick_ns = tick;
		rc = ep_timer_repeat(c->d.ev, &c->timer, tick, false, on_tick, c, "canary-window");
		if (rc < 0) {
			snprintf(err, errlen, "canary: cannot start the window timer: %s", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

int ep_canary_start(struct ep_canary **out, const struct ep_canary_deps *d)
{
	struct ep_canary *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->d = *d;
	*out = c;
	return 0;
}

void ep_canary_stop(struct ep_canary *c)
{
	if (!c)
		return;
	ep_source_free(&c->timer);
	free_list(c->v, c->n);
	free(c->watched);
	free(c);
}

/* ---- the window ----------------------------------------------------------- */

static void on_unanswered(uint32_t bid, bool udp, void *arg)
{
	struct ep_canary *c = arg;

	for (size_t i = 0; i < c->n; i++)
		for (size_t k = 0; k < c->v[i].n_bes; k++)
			if (c->v[i].bes[k].id == bid) {
				if (udp)
					c->v[i].bes[k].udp_unans++;
				else
					c->v[i].bes[k].syn_unans++;
				return;
			}
}

static void read_window(struct ep_canary *c, struct csvc *s)
{
	struct ep_health_fds f = hfds(c);

	for (size_t k = 0; k < s->n_bes; k++) {
		struct cbe *e = &s->bes[k];
		struct ep_health_counts now = {};
		struct ep_health_window w;
		struct ep_canary_side *side = &s->acc[e->canary ? SIDE_CANARY : SIDE_STABLE];

		if (ep_health_read(&f, e->id, &now))
			continue;
		now.syn_unanswered = e->syn_unans;
		now.udp_unanswered = e->udp_unans;
		if (e->have_prev) {
			ep_health_diff(&e->prev, &now, &w);
			side->samples += w.samples;
			side->failures += w.failures;
			e->fail[R_REFUSED] += w.refused;
			e->fail[R_SYN_UNANSWERED] += w.syn_unanswered;
			e->fail[R_RST] += w.rst;
			e->fail[R_HTTP_5XX] += w.http_5xx;
			e->fail[R_UDP_UNANSWERED] += w.udp_unanswered;
		}
		e->prev = now;
		e->have_prev = true;
	}
}

static void reset_flows(struct ep_canary *c, struct csvc *s)
{
	uint8_t *ids = calloc(EP_MAX_BACKENDS / 8, 1);
	struct ep_health_fds f = hfds(c);
	long n;

	if (!ids)
		return;
	for (size_t k = 0; k < s->n_bes; k++)
		if (s->bes[k].canary && s->bes[k].id < EP_MAX_BACKENDS) {
			ids[s->bes[k].id / 8] |= (uint8_t)(1u << (s->bes[k].id % 8));
			ep_health_forget_backend(&f, s->bes[k].id);
		}
	n = c->d.ct ? ep_ct_purge_backends(c->d.ct, ids) : 0;
	free(ids);
	if (n < 0)
		log_warn("canary: service %s: cannot reset the canary's flows: %s", s->name,
			 strerror((int)-n));
	else
		log_info("canary: service %s: on_rollback reset: %ld established canary flows cut",
			 s->name, n);
}

static void rollback(struct ep_canary *c, struct csvc *s, const char *why)
{
	uint32_t was = share_of(c, s);

	set_share(c, s, true, 0);
	s->st.flags |= EP_CANARY_S_OVERRIDE | EP_CANARY_S_ROLLED_BACK;
	s->st.flags &= ~EP_CANARY_S_PROMOTED;
	s->st.share_bp = 0;
	s->st.rollbacks++;
	state_write(c, s);
	char at[48] = "";

	if (s->cfg.n_steps)
		snprintf(at, sizeof(at), " (at ramp step %u of %zu)", s->st.step + 1, s->cfg.n_steps);
	decide(s, "rollback: %s; share %.2f%% -> 0%s", why, was / 100.0, at);
	log_warn("canary rollback: service %s: %s", s->name, s->decision);
	if (s->cfg.on_rollback == EP_CANARY_RESET)
		reset_flows(c, s);
	if (c->d.event)
		c->d.event(c->d.event_arg, s->name, s->decision);
}

static void ramp(struct ep_canary *c, struct csvc *s, uint64_t now)
{
	uint32_t next;

	if (!s->cfg.n_steps ||
	    (s->st.flags & (EP_CANARY_S_ROLLED_BACK | EP_CANARY_S_PAUSED | EP_CANARY_S_PROMOTED)) ||
	    s->st.step + 1 >= s->cfg.n_steps)
		return;
	if (now < s->st.step_since_ns ||
	    now - s->st.step_since_ns < (uint64_t)s->cfg.step_interval_s * NS_PER_S)
		return;
	/* "While the canary stays healthy": with the rule on, a step is only
	 * left after a healthy verdict in it, never on silence. */
	if (s->cfg.rollback.enabled && !s->healthy_in_step)
		return;
	next = s->cfg.steps_bp[s->st.step + 1];
	s->st.step++;
	s->st.step_since_ns = now;
	s->st.flags |= EP_CANARY_S_OVERRIDE;
	s->st.share_bp = next;
	s->healthy_in_step = false;
	state_write(c, s);
	set_share(c, s, true, next);
	decide(s, "ramp: step %u of %zu, share %.2f%%", s->st.step + 1, s->cfg.n_steps,
	       next / 100.0);
	log_info("canary: service %s: %s", s->name, s->decision);
}

/*
 * The outcomes judged are always the most recent ones: a full batch
 * (min_samples canary outcomes gathered since the last full batch) is
 * judged and becomes the previous batch; between full batches, new
 * outcomes are judged together with the previous batch, so a failure
 * burst is judged on the window it happens in instead of waiting for a
 * whole new batch. Only a full batch counts as "healthy" for a ramp.
 */
static void judge(struct ep_canary *c, struct csvc *s)
{
	const struct ep_cfg_canary_rollback *r = &s->cfg.rollback;
	struct ep_canary_side mix[2];
	enum ep_canary_verdict v;
	char why[320];
	bool full = s->acc[SIDE_CANARY].samples >= r->min_samples;

	if (!full && !s->acc[SIDE_CANARY].failures)
		return; /* nothing new that could change the last verdict */
	for (int k = 0; k < 2; k++) {
		mix[k] = s->acc[k];
		if (!full) {
			mix[k].samples += s->prev[k].samples;
			mix[k].failures += s->prev[k].failures;
		}
	}
	v = ep_canary_judge(r, &mix[SIDE_CANARY], &mix[SIDE_STABLE], why, sizeof(why));
	if (v == EP_CANARY_WAIT)
		return;
	memcpy(s->last, mix, sizeof(s->last));
	s->verdict = v;
	s->judged = true;
	if (v == EP_CANARY_ROLLBACK) {
		memset(s->acc, 0, sizeof(s->acc));
		memset(s->prev, 0, sizeof(s->prev));
		rollback(c, s, why);
		return;
	}
	if (!full)
		return;
	memcpy(s->prev, s->acc, sizeof(s->prev));
	memset(s->acc, 0, sizeof(s->acc));
	s->healthy_in_step = true;
	if (!s->decision[0] || !strncmp(s->decision, "healthy", 7))
		decide(s, "healthy: %s", why);
}

void ep_canary_tick(struct ep_canary *c, uint64_t now)
{
	struct ep_health_fds f = hfds(c);

	pthread_mutex_lock(c->d.lock);
	if (c->n)
		ep_health_sweep(&f, now, c->tick_ns, FORGET_NS, on_unanswered, c);
	for (size_t i = 0; i < c->n; i++) {
		struct csvc *s = &c->v[i];
		uint64_t win = (uint64_t)s->cfg.rollback.window_ms * NS_PER_MS;
		/* A service with a longer window than the tick skips ticks;
		 * a millisecond of slack absorbs timer jitter. */
		if (s->last_eval_ns && now - s->last_eval_ns + NS_PER_MS < win)
			continue;
		s->last_eval_ns = now;
		read_window(c, s);
		if (!share_of(c, s) || !s->cfg.rollback.enabled) {
			/* Nothing to protect (or nobody asked): no judgment. */
			memset(s->acc, 0, sizeof(s->acc));
			memset(s->prev, 0, sizeof(s->prev));
		} else {
			judge(c, s);
		}
		ramp(c, s, now);
	}
	pthread_mutex_unlock(c->d.lock);
}

/* ---- operators ------------------------------------------------------------ */

/* "25", "2.5", "0.25": basis points, or -1. */
static int parse_percent(const char *s)
{
	long whole = 0, frac = 0;
	int nd = 0, nf = 0;

	while (*s >= '0' && *s <= '9' && nd < 4)
		whole = whole * 10 + (*s++ - '0'), nd++;
	if (!nd)
		return -1;
	if (*s == '.') {
		s++;
		while (*s >= '0' && *s <= '9' && nf < 3)
			frac = frac * 10 + (*s++ - '0'), nf++;
		if (!nf || nf > 2)
			return -1;
		if (nf == 1)
			frac *= 10;
	}
	if (*s == '%')
		s++;
	if (*s || whole * 100 + frac > EP_BP_MAX)
		return -1;
	return (int)(whole * 100 + frac);
}

int ep_canary_set(struct ep_canary *c, const char *service, const char *what, char *err,
		  size_t errlen)
{
	struct csvc *s = find(c, service ? service : "");
	uint64_t now = ep_now_ns();
	int bp, rc;

	if (!s) {
		snprintf(err, errlen, "%s: no such service with canary backends",
			 service ? service : "(none)");
		return -ENOENT;
	}
	if (!what)
		what = "";
	if (!strcmp(what, "pause")) {
		if (!s->cfg.n_steps) {
			snprintf(err, errlen, "service %s has no ramp (canary.steps) to pause", s->name);
			return -EINVAL;
		}
		s->st.flags |= EP_CANARY_S_PAUSED;
		state_write(c, s);
		decide(s, "operator: ramp paused at step %u of %zu", s->st.step + 1, s->cfg.n_steps);
		log_info("canary: service %s: %s", s->name, s->decision);
		return 0;
	}
	if (!strcmp(what, "resume")) {
		uint32_t share = share_of(c, s), i = 0;

		if (!s->cfg.n_steps) {
			snprintf(err, errlen,
				 "service %s has no ramp (canary.steps); set a share with "
				 "'canary set %s PERCENT'",
				 s->name, s->name);
			return -EINVAL;
		}
		/* Back on the ramp at the first step not below the current
		 * share (after a rollback: the step it rolled back at). */
		if (!(s->st.flags & EP_CANARY_S_ROLLED_BACK)) {
			while (i + 1 < s->cfg.n_steps && s->cfg.steps_bp[i] < share)
				i++;
			s->st.step = i;
		}
		s->st.flags &= ~(EP_CANARY_S_PAUSED | EP_CANARY_S_ROLLED_BACK | EP_CANARY_S_PROMOTED);
		s->st.flags |= EP_CANARY_S_OVERRIDE;
		s->st.share_bp = s->cfg.steps_bp[s->st.step];
		s->st.step_since_ns = now;
		s->healthy_in_step = false;
		memset(s->acc, 0, sizeof(s->acc));
		memset(s->prev, 0, sizeof(s->prev));
		rc = set_share(c, s, true, s->st.share_bp);
		state_write(c, s);
		decide(s, "operator: ramp resumed at step %u of %zu, share %.2f%%", s->st.step + 1,
		       s->cfg.n_steps, s->st.share_bp / 100.0);
		log_info("canary: service %s: %s", s->name, s->decision);
		return rc;
	}
	if (!strcmp(what, "promote")) {
		bp = EP_BP_MAX;
		s->st.flags = EP_CANARY_S_OVERRIDE | EP_CANARY_S_PROMOTED;
		if (s->cfg.n_steps)
			s->st.step = (uint32_t)s->cfg.n_steps - 1;
	} else {
		bp = parse_percent(what);
		if (bp < 0) {
			snprintf(err, errlen,
				 "'%s': expected a percent 0-100 (at most 2 decimals), pause, resume "
				 "or promote",
				 what);
			return -EINVAL;
		}
		/* A share set by hand holds: the ramp waits for resume. */
		s->st.flags = EP_CANARY_S_OVERRIDE | (s->cfg.n_steps ? EP_CANARY_S_PAUSED : 0);
	}
	s->st.share_bp = (uint32_t)bp;
	s->st.step_since_ns = now;
	memset(s->acc, 0, sizeof(s->acc));
	memset(s->prev, 0, sizeof(s->prev));
	rc = set_share(c, s, true, (uint32_t)bp);
	if (rc) {
		snprintf(err, errlen, "cannot write the share of %s: %s", s->name, strerror(-rc));
		return rc;
	}
	state_write(c, s);
	decide(s, "operator: share set to %.2f%%%s", bp / 100.0,
	       !strcmp(what, "promote") ? " (promoted)" : "");
	log_info("canary: service %s: %s", s->name, s->decision);
	return 0;
}

/* ---- reporting ------------------------------------------------------------ */

static json_t *side_json(const struct ep_canary_side *x)
{
	return json_pack("{s:I, s:I, s:f}", "samples", (json_int_t)x->samples, "failures",
			 (json_int_t)x->failures,
			 "failure_ratio", x->samples ? (double)x->failures / (double)x->samples : 0.0);
}

static json_t *svc_json(struct ep_canary *c, const struct csvc *s)
{
	struct ep_health_fds f = hfds(c);
	json_t *bes = json_array(), *steps = json_array();
	uint64_t now = ep_now_ns();
	json_t *o;

	for (size_t i = 0; i < s->cfg.n_steps; i++)
		json_array_append_new(steps, json_real(s->cfg.steps_bp[i] / 100.0));
	for (size_t k = 0; k < s->n_bes; k++) {
		const struct cbe *e = &s->bes[k];
		struct ep_health_counts h = {};
		json_t *fails = json_object();

		ep_health_read(&f, e->id, &h);
		for (int r = 0; r < R_MAX; r++)
			json_object_set_new(fails, reason_names[r], json_integer((json_int_t)e->fail[r]));
		json_array_append_new(
			bes, json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o}", "backend",
				       e->label, "canary", e->canary, "attempts", (json_int_t)h.k.syn,
				       "answered", (json_int_t)h.k.synack, "refused",
				       (json_int_t)h.k.refused, "rst", (json_int_t)h.k.rst,
				       "http_responses", (json_int_t)h.k.http_resp, "http_5xx",
				       (json_int_t)h.k.http_5xx, "rtt_avg_ms",
				       h.k.synack ? (double)h.k.rtt_sum_us / (double)h.k.synack / 1000.0
						  : 0.0,
				       "failures", fails));
	}
	o = json_pack("{s:s, s:f, s:f, s:o, s:b, s:b, s:b, s:I}", "service", s->name,
		      "share_percent", share_of(c, s) / 100.0, "configured_percent",
		      s->cfg.percent_bp / 100.0, "steps", steps, "paused",
		      !!(s->st.flags & EP_CANARY_S_PAUSED), "rolled_back",
		      !!(s->st.flags & EP_CANARY_S_ROLLED_BACK), "promoted",
		      !!(s->st.flags & EP_CANARY_S_PROMOTED), "rollbacks",
		      (json_int_t)s->st.rollbacks);
	if (s->cfg.n_steps) {
		double left = (double)s->cfg.step_interval_s -
			      (double)(now - s->st.step_since_ns) / (double)NS_PER_S;

		json_object_set_new(o, "step", json_integer(s->st.step + 1));
		json_object_set_new(o, "step_interval_s", json_integer(s->cfg.step_interval_s));
		json_object_set_new(o, "next_step_in_s",
				    s->st.step + 1 < s->cfg.n_steps && left > 0 ? json_real(left)
										: json_real(0));
	} else {
		json_object_set_new(o, "step", json_null());
	}
	json_object_set_new(o, "http", json_boolean(s->cfg.http));
	json_object_set_new(o, "on_rollback",
			    json_string(s->cfg.on_rollback == EP_CANARY_RESET ? "reset" : "keep"));
	json_object_set_new(
		o, "rollback",
		json_pack("{s:b, s:i, s:i, s:f, s:f}", "enabled", s->cfg.rollback.enabled,
			  "window_ms", s->cfg.rollback.window_ms, "min_samples",
			  s->cfg.rollback.min_samples, "max_failure_ratio",
			  s->cfg.rollback.max_failure_bp / 10000.0, "margin",
			  s->cfg.rollback.margin_bp / 10000.0));
	json_object_set_new(o, "live",
			    json_pack("{s:o, s:o}", "canary", side_json(&s->acc[SIDE_CANARY]),
				      "stable", side_json(&s->acc[SIDE_STABLE])));
	json_object_set_new(o, "last_judged",
			    s->judged ? json_pack("{s:s, s:o, s:o}", "verdict",
						  ep_canary_verdict_str(s->verdict), "canary",
						  side_json(&s->last[SIDE_CANARY]), "stable",
						  side_json(&s->last[SIDE_STABLE]))
				      : json_null());
	json_object_set_new(o, "last_decision",
			    s->decision[0] ? json_pack("{s:s, s:f}", "what", s->decision, "at",
						       s->decision_at)
					   : json_null());
	json_object_set_new(o, "backends", bes);
	return o;
}

json_t *ep_canary_status(struct ep_canary *c, const char *service, char *err, size_t errlen)
{
	json_t *arr;

	if (service && *service) {
		struct csvc *s = find(c, service);

		if (!s) {
			snprintf(err, errlen, "%s: no such service with canary backends", service);
			return NULL;
		}
		arr = json_array();
		json_array_append_new(arr, svc_json(c, s));
		return arr;
	}
	arr = json_array();
	for (size_t i = 0; i < c->n; i++)
		json_array_append_new(arr, svc_json(c, &c->v[i]));
	return arr;
}

void ep_canary_metrics(struct ep_canary *c, struct ep_strbuf *b)
{
	ep_sb_printf(b, "# HELP edgeplane_canary_rollbacks_total Automatic canary rollbacks "
			"(docs/grayscale.md).\n# TYPE edgeplane_canary_rollbacks_total counter\n");
	for (size_t i = 0; c && i < c->n; i++) {
		ep_sb_printf(b, "edgeplane_canary_rollbacks_total{service=\"");
		ep_sb_label(b, c->v[i].name);
		ep_sb_printf(b, "\"} %u\n", c->v[i].st.rollbacks);
	}
	ep_sb_printf(b, "# HELP edgeplane_canary_flow_failures_total Failed flows seen by the flow "
			"health tap, by backend and reason.\n"
			"# TYPE edgeplane_canary_flow_failures_total counter\n");
	for (size_t i = 0; c && i < c->n; i++)
		for (size_t k = 0; k < c->v[i].n_bes; k++)
			for (int r = 0; r < R_MAX; r++) {
				ep_sb_printf(b, "edgeplane_canary_flow_failures_total{service=\"");
				ep_sb_label(b, c->v[i].name);
				ep_sb_printf(b, "\",backend=\"");
				ep_sb_label(b, c->v[i].bes[k].label);
				ep_sb_printf(b, "\",reason=\"%s\"} %llu\n", reason_names[r],
					     (unsigned long long)c->v[i].bes[k].fail[r]);
			}
}
