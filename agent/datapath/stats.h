/* Reading the datapath's per-CPU counters (summed over CPUs). */
#ifndef EP_STATS_H
#define EP_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "edgeplane_abi.h"

/* A per-CPU value made only of __u64 counters (size bytes) summed over the
 * CPUs into out (zeroed first). 0, -ENOMEM, or -errno of the lookup. */
int ep_stats_percpu_sum(int fd, const void *key, void *out, size_t size);
int ep_stats_backend(int fd, uint32_t id, struct ep_backend_stats *sum);
int ep_stats_drops(int fd, struct ep_drop_stats out[EP_DROP_MAX]);
extern const char *const ep_drop_names[EP_DROP_MAX];

#endif
