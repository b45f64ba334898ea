/*
 * DNS health: per-upstream verdicts from one sliding window of signals, and
 * the node's failover state machine
 *
 *   healthy -> suspect -> failed-over -> recovering -> healthy
 *
 * with minimum sample sizes and hysteresis. Pure logic (no I/O, no clock):
 * the caller feeds windows and the time, and applies the mode it returns.
 */
#ifndef EP_DNS_HEALTH_H
#define EP_DNS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Everything observed about one upstream over the window. */
struct ep_dns_window {
	/* from the datapath (real traffic, and the agent's own probes too) */
	uint64_t queries, answers, timeouts, late, servfail, refused, unmatched, divergent;
	/* from the agent's probes */
	uint64_t probes, probe_ok, probe_timeout, probe_servfail, probe_wrong, probe_bogus;
	uint64_t probe_divergent; /* snapshot-name probes answered with other addresses */
	/* Set by the caller on the summed window, not per slot: */
	/* queries and probes past their RTO since the last answer of any kind,
	 * and for how many slots (100 ms) in a row nothing was answered */
	uint64_t silent_timeouts, silent_slots;
	/* the short horizon (the last EP_DNS_RECENT_SLOTS slots): answers of any
	 * kind (divergent ones the datapath dropped too) and divergent ones */
	uint64_t recent_answered, recent_divergent;
};

/* The short horizon for the hijack signal, in slots of 100 ms. */
#define EP_DNS_RECENT_SLOTS 3
/* Divergent answers within the short horizon before they count at all: one
 * stale snapshot name asked twice must not fail a node over. */
#define EP_DNS_HIJACK_FAST_MIN 3
/* Slots without any answer before a run of timeouts means "silent". */
#define EP_DNS_SILENT_SLOTS 2

/* Why an upstream is judged bad (bit set), or 0 when it is fine. */
#define EP_DNS_BAD_TIMEOUTS (1u << 0)
#define EP_DNS_BAD_SERVFAIL (1u << 1)
#define EP_DNS_BAD_HIJACK (1u << 2)  /* wrong canary answer, bogus DNSSEC, divergence */
#define EP_DNS_BAD_SPOOFING (1u << 3) /* answers matching no query outnumber real ones */
/* With EP_DNS_BAD_TIMEOUTS: the upstream went silent (min_samples queries
 * and probes past their RTO in a row, nothing answered for
 * EP_DNS_SILENT_SLOTS slots). Confirmed by itself: no confirm_ns wait. */
#define EP_DNS_BAD_SILENT (1u << 4)
/* Not enough samples in the window to judge (not bad, not clean either). */
#define EP_DNS_UNKNOWN (1u << 8)

struct ep_dns_thresholds {
	uint32_t timeout_bp, servfail_bp, hijack_bp; /* ratios in basis points */
	uint32_t min_samples;
	uint32_t spoof_min; /* unmatched answers in a window before spoofing counts */
	uint64_t confirm_ns;  /* a non-hijack problem must last this long to fail over */
	uint64_t failback_ns; /* clean this long before failing back */
};

enum ep_dns_state {
	EP_DNS_HEALTHY = 0,
	EP_DNS_SUSPECT,
	EP_DNS_FAILED_OVER,
	EP_DNS_RECOVERING,
	EP_DNS_STATES
};

enum ep_dns_override {
	EP_DNS_AUTO = 0,
	EP_DNS_FORCE_CACHE,	/* edgeplane dns failover */
	EP_DNS_FORCE_UPSTREAM,	/* edgeplane dns failback */
};

struct ep_dns_machine {
	struct ep_dns_thresholds t;
	enum ep_dns_state state;
	enum ep_dns_override override;
	uint64_t state_since_ns, bad_since_ns, clean_since_ns;
	bool cache_mode; /* what the datapath should do */
	char reason[256];
	uint64_t transitions[EP_DNS_STATES][EP_DNS_STATES];
	uint64_t failovers;
};

const char *ep_dns_state_name(enum ep_dns_state s);
const char *ep_dns_override_name(enum ep_dns_override o);

/* Verdict for one upstream: 0, EP_DNS_BAD_* bits, or EP_DNS_UNKNOWN. The
 * reason text (if why != NULL) says which figures crossed which bound. */
unsigned ep_dns_judge(const struct ep_dns_thresholds *t, const struct ep_dns_window *w, char *why,
		      size_t whylen);

/* The same without the spoofing signal (unmatched answers): what the state
 * machine judges by. Spoofing only sets the datapath's defences. */
unsigned ep_dns_judge_no_spoofing(const struct ep_dns_thresholds *t, const struct ep_dns_window *w,
				  char *why, size_t whylen);

/* Anything answered in one slot: answers, probe replies and divergent
 * answers to real queries (dropped ones are not in answers; forged answers
 * matching no query are in neither). Someone answers for the upstream: it
 * is not silent. A divergent answer the datapath let through counts twice,
 * which only makes the hijack ratio of the short horizon more cautious. */
uint64_t ep_dns_slot_answered(const struct ep_dns_window *slot);
/* The slot just closed moves an upstream's silence run (*timeouts, *slots):
 * any answer ends it; a slot with none adds its timeouts and probe timeouts.
 * The order within a slot is unknown, so a slot with both counts as
 * answered. */
void ep_dns_silence_track(uint64_t *timeouts, uint64_t *slots, const struct ep_dns_window *slot);
/* The short horizon into w->recent_*: the EP_DNS_RECENT_SLOTS slots up to
 * and including cur of the ring slots[n_slots]. */
void ep_dns_window_recent(struct ep_dns_window *w, const struct ep_dns_window *slots, size_t n_slots,
			  size_t cur);

void ep_dns_machine_init(struct ep_dns_machine *m, const struct ep_dns_thresholds *t, uint64_t now);

/*
 * One evaluation over the current windows of every upstream. The node fails
 * over when any upstream is hijacked, or when every upstream is
 * bad (timeouts, SERVFAIL) for confirm_ns, or at once when every upstream
 * is silent (EP_DNS_BAD_SILENT); it recovers when no upstream is
 * hijacked and at least one is clean, and fails back after
 * failback_ns of that. Returns true when the state changed; *changed_mode
 * says whether cache_mode flipped.
 */
bool ep_dns_machine_step(struct ep_dns_machine *m, const struct ep_dns_window *w,
			 const char *const *names, size_t n, uint64_t now, bool *changed_mode);

/* Manual override (drills); returns true when cache_mode flipped. */
bool ep_dns_machine_override(struct ep_dns_machine *m, enum ep_dns_override o, uint64_t now);

/*
 * The cache gate: the machine says when the node should answer from the
 * cache; the gate says whether the datapath may send traffic there. Never
 * to a dead or empty cache: a failover needs a cache that answers its
 * health checks and a snapshot with records; a cache that stops answering
 * while the node is failed over gets EP_DNS_CACHE_DOWN_LIFT_NS to come back
 * (a restart with a small preload takes a fraction of it), then the
 * redirect is lifted and traffic goes to the upstream again (the datapath
 * still drops answers that contradict the snapshot); it is applied again
 * once the cache answers. A forced failover (edgeplane dns failover) is the
 * operator's word and is not gated.
 */
#define EP_DNS_CACHE_DOWN_LIFT_NS (2000ULL * 1000000ULL)

enum ep_dns_gate_why {
	EP_GATE_OPEN = 0,	/* the cache is usable (or not wanted) */
	EP_GATE_REFUSED,	/* a failover was refused: the cache is not usable */
	EP_GATE_GRACE,		/* failed over, the cache stopped answering: waiting */
	EP_GATE_LIFTED,		/* ...for too long: traffic back to the upstream */
};

struct ep_dns_gate {
	bool applied;		 /* what the datapath does: true = the cache */
	enum ep_dns_gate_why why;
	uint64_t down_since_ns;	 /* the cache was first seen unusable; 0: usable */
	uint64_t refusals, lifts; /* counted once per episode */
};

/* One step: want is the machine's cache_mode, forced an override to the
 * cache, usable the cache's state now. Returns true when applied changed. */
bool ep_dns_gate_step(struct ep_dns_gate *g, bool want, bool forced, bool usable, uint64_t now);
const char *ep_dns_gate_why_name(enum ep_dns_gate_why w);

#endif
