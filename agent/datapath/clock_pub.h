/*
 * Publishes the conntrack clock (ep_datapath_publish_clock) from the agent's
 * loop: checked every 100 ms, written when the second changes.
 */
#ifndef EP_CLOCK_PUB_H
#define EP_CLOCK_PUB_H

#include <stdint.h>

#include <systemd/sd-event.h>

#include "datapath.h"

struct ep_clock_pub {
	struct ep_datapath *dp;
	uint32_t published_s; /* last value written to the datapath */
	sd_event_source *timer;
};

int ep_clock_pub_start(struct ep_clock_pub *c, sd_event *ev, struct ep_datapath *dp);
void ep_clock_pub_stop(struct ep_clock_pub *c);

#endif
