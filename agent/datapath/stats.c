#include "stats.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conntrack.h"

const char *const ep_drop_names[EP_DROP_MAX] = EP_DROP_NAMES;

int ep_stats_percpu_sum(int fd, const void *key, void *out, size_t size)
{
	int n = ep_ncpus();
	char *v = calloc((size_t)n, size);
	__u64 *dst = out;

	memset(out, 0, size);
	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, key, v)) {
		free(v);
		return -errno;
	}
	for (int c = 0; c < n; c++) {
		const __u64 *src = (const __u64 *)(v + (size_t)c * size);

		for (size_t k = 0; k < size / sizeof(__u64); k++)
			dst[k] += src[k];
	}
	free(v);
	return 0;
}

int ep_stats_backend(int fd, uint32_t id, struct ep_backend_stats *sum)
{
	return ep_stats_percpu_sum(fd, &id, sum, sizeof(*sum));
}

int ep_stats_drops(int fd, struct ep_drop_stats out[EP_DROP_MAX])
{
	memset(out, 0, sizeof(*out) * EP_DROP_MAX);
	for (__u32 r = 0; r < EP_DROP_MAX; r++)
		if (ep_stats_percpu_sum(fd, &r, &out[r], sizeof(out[r])) == -ENOMEM)
			return -ENOMEM;
	return 0;
}
