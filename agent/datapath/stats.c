#include "stats.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conntrack.h"

const char *const ep_drop_names[EP_DROP_MAX] = EP_DROP_NAMES;

int ep_stats_backend(int fd, uint32_t id, struct ep_backend_stats *sum)
{
	int n = ep_ncpus();
	struct ep_backend_stats *v = calloc((size_t)n, sizeof(*v));

	memset(sum, 0, sizeof(*sum));
	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &id, v)) {
		free(v);
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		sum->packets += v[i].packets;
		sum->bytes += v[i].bytes;
		sum->flows += v[i].flows;
		sum->rnat_packets += v[i].rnat_packets;
	}
	free(v);
	return 0;
}

int ep_stats_drops(int fd, struct ep_drop_stats out[EP_DROP_MAX])
{
	int n = ep_ncpus();
	struct ep_drop_stats *v = calloc((size_t)n, sizeof(*v));

	memset(out, 0, sizeof(*out) * EP_DROP_MAX);
	if (!v)
		return -ENOMEM;
	for (__u32 r = 0; r < EP_DROP_MAX; r++) {
		if (bpf_map_lookup_elem(fd, &r, v))
			continue;
		for (int i = 0; i < n; i++) {
			out[r].packets += v[i].packets;
			out[r].bytes += v[i].bytes;
		}
	}
	free(v);
	return 0;
}
