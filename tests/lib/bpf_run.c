/* The BPF_PROG_TEST_RUN harness of the BPF suites: see bpf_run.h. */
#include "bpf_run.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <stdlib.h>
#include <string.h>

int bpf_run(int prog_fd, const void *in, size_t len, struct bpf_run *r)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (__u32)len,
		    .data_out = r->out, .data_size_out = sizeof(r->out), .repeat = 1);

	memset(r, 0, sizeof(*r));
	r->err = bpf_prog_test_run_opts(prog_fd, &o);
	if (r->err)
		r->err = -errno;
	r->verdict = (int)o.retval;
	r->outlen = o.data_size_out;
	return r->err;
}

int bpf_run_ncpu(void)
{
	int n = libbpf_num_possible_cpus();

	return n < 1 ? 1 : n;
}

int bpf_run_percpu_sum(int map_fd, const void *key, void *sum, size_t size)
{
	struct bpf_map_info info;
	__u32 il = sizeof(info);
	size_t words = size / sizeof(uint64_t), stride;
	uint64_t *v, *s = sum;
	int ncpu = bpf_run_ncpu(), rc = 0;

	memset(sum, 0, size);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(map_fd, &info, &il))
		return -errno;
	if (info.value_size != size || size % sizeof(uint64_t))
		return -EINVAL;
	stride = (size + 7) / 8 * 8; /* libbpf: per-CPU values are 8-byte aligned */
	v = calloc((size_t)ncpu, stride);
	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, key, v))
		rc = -errno;
	for (int c = 0; !rc && c < ncpu; c++)
		for (size_t w = 0; w < words; w++)
			s[w] += v[(size_t)c * stride / sizeof(uint64_t) + w];
	free(v);
	return rc;
}

int bpf_run_share_maps(struct bpf_object *dst, struct bpf_object *src)
{
	struct bpf_map *m;
	int n = 0;

	bpf_object__for_each_map(m, dst) {
		struct bpf_map *x = bpf_object__find_map_by_name(src, bpf_map__name(m));
		int e;

		if (!x || bpf_map__is_internal(m))
			continue; /* .rodata / .bss and friends are per object */
		e = bpf_map__reuse_fd(m, bpf_map__fd(x));
		if (e)
			return e;
		n++;
	}
	return n;
}

const char *bpf_run_xdp_str(int v)
{
	static const char *const names[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX",
					    "XDP_REDIRECT"};

	return v >= 0 && v < (int)(sizeof(names) / sizeof(names[0])) ? names[v] : "?";
}

const char *bpf_run_tc_str(int v)
{
	switch (v) {
	case TC_ACT_UNSPEC:
		return "TC_ACT_UNSPEC";
	case TC_ACT_OK:
		return "TC_ACT_OK";
	case TC_ACT_SHOT:
		return "TC_ACT_SHOT";
	case TC_ACT_REDIRECT:
		return "TC_ACT_REDIRECT";
	}
	return "?";
}
