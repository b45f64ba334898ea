#include "clock_pub.h"

#include "evloop.h"

#define CLOCK_CHECK_NS (100ULL * 1000000ULL)

static void on_clock(void *userdata, uint64_t now_ns)
{
	struct ep_clock_pub *c = userdata;
	uint32_t now_s = ep_datapath_clock_now();

	if (now_s != c->published_s) {
		c->published_s = now_s;
		ep_datapath_publish_clock(c->dp);
	}
}

int ep_clock_pub_start(struct ep_clock_pub *c, sd_event *ev, struct ep_datapath *dp)
{
	c->dp = dp;
	return ep_timer_repeat(ev, &c->timer, CLOCK_CHECK_NS, false, on_clock, c, "conntrack-clock");
}

void ep_clock_pub_stop(struct ep_clock_pub *c)
{
	ep_source_free(&c->timer);
}
