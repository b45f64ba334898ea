/*
 * Grayscale control (docs/grayscale.md): every service with canary backends
 * is watched by the flow health tap; every canary.rollback.window_ms the
 * agent reads each backend's counters, adds them up per side (canary,
 * stable) and, once the canary has min_samples outcomes, judges them
 * (rollback.h). A rollback sets the share to 0 in one map update, logs the
 * figures, counts, reports an Event, and holds 0 until an operator sets a
 * share. Ramps (canary.steps) raise the share every step_interval_s while
 * no rollback happens.
 *
 * The runtime state of each service (share, step, paused, rolled back) is
 * pinned (ep_canary_state) and taken back by the next agent as long as the
 * service's canary config (percent, steps) is unchanged: a restart never
 * moves a share. A changed canary config is an operator's decision and
 * starts over from it.
 *
 * One timer on the agent's loop; everything the metrics thread and the
 * control commands read is under the agent's lock.
 */
#ifndef EP_CANARY_H
#define EP_CANARY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "conntrack.h"
#include "datapath.h"
#include "services.h"
#include "strbuf.h"

struct ep_canary;

/* Reports a rollback to the cluster (a Kubernetes Event), or NULL. */
typedef void (*ep_canary_event_fn)(void *arg, const char *service, const char *message);

struct ep_canary_deps {
	struct ep_services *svcs;
	struct ep_dp_health_fds fds;
	const struct ep_ct_fds *ct;
	sd_event *ev;
	pthread_mutex_t *lock;
	ep_canary_event_fn event;
	void *event_arg;
};

int ep_canary_start(struct ep_canary **out, const struct ep_canary_deps *d);

/* Before ep_services_apply: gives services whose canary config matches
 * the pinned state their runtime share back, so applying never moves it. */
void ep_canary_prepare(struct ep_canary *c, const struct ep_config *cfg);

/* After ep_services_apply: which services and backends are watched, their
 * rules and ramps. */
int ep_canary_apply(struct ep_canary *c, const struct ep_config *cfg, char *err, size_t errlen);

/* One window now (the timer's work; tests call it directly). */
void ep_canary_tick(struct ep_canary *c, uint64_t now_ns);

void ep_canary_stop(struct ep_canary *c);

/* `edgeplane canary set SERVICE PERCENT|pause|resume|promote`. Caller holds
 * the lock. 0, or -errno with err saying why. */
int ep_canary_set(struct ep_canary *c, const char *service, const char *what, char *err,
		  size_t errlen);

/* `edgeplane canary status [SERVICE]`: one object per service (NULL: all).
 * NULL with err when the service is unknown. Caller holds the lock. */
json_t *ep_canary_status(struct ep_canary *c, const char *service, char *err, size_t errlen);

/* canary_rollbacks_total, canary_flow_failures_total. Caller holds the lock. */
void ep_canary_metrics(struct ep_canary *c, struct ep_strbuf *b);

#endif
