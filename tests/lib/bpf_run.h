/* One BPF_PROG_TEST_RUN harness for the BPF suites (tests/bpf/).
 *
 *   struct bpf_run r;
 *   bpf_run(prog_fd, frame, len, &r);     runs the program once on the frame:
 *                                         r.err (0 or -errno), r.verdict (the
 *                                         program's return value), r.out/r.outlen
 *                                         (the frame as the program left it)
 *   bpf_run_percpu_sum(map_fd, &key, sum, sizeof(*sum))
 *                                         a per-CPU map value summed over the CPUs;
 *                                         the value is a struct of __u64 counters
 *   bpf_run_share_maps(dst, src)          before loading dst: each of its maps
 *                                         reuses src's map of the same name (one
 *                                         conntrack for xdp_lb and tc_rnat)
 *   bpf_run_xdp_str(v), bpf_run_tc_str(v) verdict names for diagnostics
 *
 * Loading stays with the suites (each embeds its own skeleton); everything
 * here works on program and map fds and bpf_objects. */
#ifndef EP_TEST_BPF_RUN_H
#define EP_TEST_BPF_RUN_H

#include <stddef.h>
#include <stdint.h>

struct bpf_object;

#define BPF_RUN_OUT_MAX 8192

struct bpf_run {
	int err;	  /* 0, or -errno of bpf_prog_test_run_opts() */
	int verdict; /* XDP_* / TC_ACT_* as returned by the program */
	uint8_t out[BPF_RUN_OUT_MAX];
	size_t outlen;
};

int bpf_run(int prog_fd, const void *in, size_t len, struct bpf_run *r);

/* Possible CPUs (>= 1): the number of values a per-CPU map lookup returns. */
int bpf_run_ncpu(void);

/* Sums a per-CPU map's value at key over the CPUs into sum (size bytes, a
 * whole number of __u64 counters; the map's value size must equal size).
 * Returns 0, or -errno with sum zeroed. */
int bpf_run_percpu_sum(int map_fd, const void *key, void *sum, size_t size);

/* Every non-internal map of dst reuses the fd of src's map of the same name.
 * Call between open and load of dst. Returns the number shared, or -errno. */
int bpf_run_share_maps(struct bpf_object *dst, struct bpf_object *src);

const char *bpf_run_xdp_str(int verdict);
const char *bpf_run_tc_str(int verdict);

#endif
