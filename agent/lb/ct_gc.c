#include "ct_gc.h"

#include <stdlib.h>

#include "datapath.h"
#include "evloop.h"

#define GC_INTERVAL_NS (2ULL * 1000000000ULL)

void ep_ct_gc_run(struct ep_ct_gc *g)
{
	uint8_t *refs = calloc(EP_MAX_BACKENDS / 8, 1);
	struct ep_ct_gc_result res;

	if (!refs)
		return;
	/* The first pass reads every bucket: the marks of which buckets hold
	 * flows may be missing for flows written before this agent (another
	 * build, a removed pin). */
	if (ep_ct_gc(g->ct, ep_datapath_clock_now(), g->cfg->ct_timeout_tcp_s,
		     g->cfg->ct_timeout_udp_s, refs, !g->passes, &res) == 0) {
		g->passes++;
		pthread_mutex_lock(g->lock);
		g->last = res;
		g->expired_total += res.expired;
		ep_services_release_unreferenced(g->svcs, refs);
		pthread_mutex_unlock(g->lock);
	}
	free(refs);
}

static void on_gc(void *userdata, uint64_t now_ns)
{
	ep_ct_gc_run(userdata);
}

int ep_ct_gc_start(struct ep_ct_gc *g, sd_event *ev)
{
	ep_ct_gc_run(g);
	return ep_timer_repeat(ev, &g->timer, GC_INTERVAL_NS, false, on_gc, g, "conntrack-gc");
}

void ep_ct_gc_stop(struct ep_ct_gc *g)
{
	ep_source_free(&g->timer);
}
