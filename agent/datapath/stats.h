/* Reading the datapath's per-CPU counters (summed over CPUs). */
#ifndef EP_STATS_H
#define EP_STATS_H

#include <stdint.h>

#include "edgeplane_abi.h"

int ep_stats_backend(int fd, uint32_t id, struct ep_backend_stats *sum);
int ep_stats_drops(int fd, struct ep_drop_stats out[EP_DROP_MAX]);
extern const char *const ep_drop_names[EP_DROP_MAX];

#endif
