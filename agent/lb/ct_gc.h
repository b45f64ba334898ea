/*
 * Conntrack GC on the agent's loop: every 2 s one ep_ct_gc() pass, the
 * result kept for status and metrics, and backends no flow references any
 * more released (ep_services_release_unreferenced). `lock` is the agent's
 * lock, taken while the result and the services change (the metrics thread
 * reads both).
 */
#ifndef EP_CT_GC_H
#define EP_CT_GC_H

#include <pthread.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "config.h"
#include "conntrack.h"
#include "services.h"

struct ep_ct_gc {
	/* set by the caller before ep_ct_gc_start() */
	const struct ep_ct_fds *ct;
	const struct ep_cfg_datapath *cfg; /* timeouts; read at every pass */
	struct ep_services *svcs;
	pthread_mutex_t *lock;
	/* results, under *lock */
	struct ep_ct_gc_result last;
	uint64_t expired_total;
	uint64_t passes; /* the first one is full (ep_ct_gc) */
	sd_event_source *timer;
};

/* Runs one pass now, then every 2 s on ev. */
int ep_ct_gc_start(struct ep_ct_gc *g, sd_event *ev);
void ep_ct_gc_run(struct ep_ct_gc *g);
void ep_ct_gc_stop(struct ep_ct_gc *g);

#endif
