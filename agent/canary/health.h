/*
 * Flow health as the agent reads it from tc/tc_health.bpf.c: per backend,
 * the kernel's per-CPU counters summed, plus what only an absence tells
 * (SYNs and UDP requests nobody answered), counted here by ageing out the
 * tap's pending entries. Knows maps and backend ids, not services: the
 * rollback logic (rollback.c) groups backends into canary and stable.
 */
#ifndef EP_CANARY_HEALTH_H
#define EP_CANARY_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "edgeplane_abi.h"

struct ep_health_fds {
	int svc;   /* ep_health_svc */
	int stats; /* ep_health_stats */
	int pend;  /* ep_health_pend */
	int cfg;   /* ep_health_cfg */
};

/* One backend's counters: the kernel's, summed over CPUs, and the agent's
 * own (unanswered). Monotonic; a window is the difference of two reads. */
struct ep_health_counts {
	struct ep_health_stats k;
	uint64_t syn_unanswered;
	uint64_t udp_unanswered;
};

/* What a window's differences say about a backend. */
struct ep_health_window {
	uint64_t samples;  /* attempts answered or failed, UDP requests, HTTP responses */
	uint64_t failures; /* refused + unanswered + RST + 5xx + UDP unanswered */
	uint64_t refused, syn_unanswered, rst, http_5xx, udp_unanswered;
};

/* How many services are watched; 0 turns the tap into one array load. */
int ep_health_set_watched(const struct ep_health_fds *f, uint32_t n);
/* Marks a service watched (flags = EP_HEALTH_F_*, 0 = not watched). */
int ep_health_set_svc(const struct ep_health_fds *f, uint32_t svc_id, uint32_t flags);
/* Creates (zeroed) or removes a backend's counter entry. */
int ep_health_track_backend(const struct ep_health_fds *f, uint32_t backend_id, bool track);
/* Reads a backend's kernel counters summed over CPUs into c->k (the
 * agent's own counters are left alone). -ENOENT when not tracked. */
int ep_health_read(const struct ep_health_fds *f, uint32_t backend_id,
		   struct ep_health_counts *c);

/* Ages the pending entries: a SYN or UDP request sent at or before
 * now_ns - window_ns without answer is reported once through cb and marked
 * so (a retransmitted SYN is not a new attempt, a late answer is counted as
 * late). Marked entries older than forget_ns are removed. Returns how many
 * were reported, or -errno. */
typedef void (*ep_health_unanswered_fn)(uint32_t backend_id, bool udp, void *arg);
int ep_health_sweep(const struct ep_health_fds *f, uint64_t now_ns, uint64_t window_ns,
		    uint64_t forget_ns, ep_health_unanswered_fn cb, void *arg);

/* b - a, classified. */
void ep_health_diff(const struct ep_health_counts *a, const struct ep_health_counts *b,
		    struct ep_health_window *w);

/* Deletes the pending entries of flows to one backend (on_rollback: reset
 * forgets what the tap waited for). Returns how many. */
int ep_health_forget_backend(const struct ep_health_fds *f, uint32_t backend_id);

#endif
