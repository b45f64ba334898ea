/* See health.h. */
#include "health.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ep_health_set_svc(const struct ep_health_fds *f, uint32_t svc_id, uint32_t flags)
{
	struct ep_health_svc v = {.flags = flags};

	return bpf_map_update_elem(f->svc, &svc_id, &v, BPF_ANY) ? -errno : 0;
}

int ep_health_set_watched(const struct ep_health_fds *f, uint32_t n)
{
	struct ep_health_cfg v = {.watched = n};
	__u32 zero = 0;

	return bpf_map_update_elem(f->cfg, &zero, &v, BPF_ANY) ? -errno : 0;
}

static int ncpus(void)
{
	int n = libbpf_num_possible_cpus();

	return n > 0 ? n : 1;
}

int ep_health_track_backend(const struct ep_health_fds *f, uint32_t backend_id, bool track)
{
	struct ep_health_stats *zero;
	int rc = 0, n = ncpus();

	if (!track)
		return bpf_map_delete_elem(f->stats, &backend_id) && errno != ENOENT ? -errno : 0;
	zero = calloc((size_t)n, sizeof(*zero));
	if (!zero)
		return -ENOMEM;
	/* NOEXIST: a restarted agent keeps the counters the kernel has. */
	if (bpf_map_update_elem(f->stats, &backend_id, zero, BPF_NOEXIST) && errno != EEXIST)
		rc = -errno;
	free(zero);
	return rc;
}

int ep_health_read(const struct ep_health_fds *f, uint32_t backend_id,
		   struct ep_health_counts *c)
{
	int n = ncpus();
	struct ep_health_stats *v = calloc((size_t)n, sizeof(*v));
	const size_t words = sizeof(struct ep_health_stats) / sizeof(uint64_t);

	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(f->stats, &backend_id, v)) {
		int rc = -errno;

		free(v);
		return rc;
	}
	memset(&c->k, 0, sizeof(c->k));
	for (int cpu = 0; cpu < n; cpu++) {
		const uint64_t *src = (const uint64_t *)&v[cpu];
		uint64_t *dst = (uint64_t *)&c->k;

		for (size_t i = 0; i < words; i++)
			dst[i] += src[i];
	}
	free(v);
	return 0;
}

/* Batches of this many entries per syscall: the whole map is looked at
 * every window, and HTTP services keep an entry per connection. */
#define SWEEP_BATCH 1024

int ep_health_sweep(const struct ep_health_fds *f, uint64_t now_ns, uint64_t window_ns,
		    uint64_t forget_ns, ep_health_unanswered_fn cb, void *arg)
{
	struct ep_flow_key *keys = calloc(SWEEP_BATCH, sizeof(*keys));
	struct ep_health_pend *vals = calloc(SWEEP_BATCH, sizeof(*vals));
	struct ep_flow_key cursor;
	void *in = NULL;
	int reported = 0, rc = 0;

	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (;;) {
		__u32 count = SWEEP_BATCH;
		int last;

		rc = bpf_map_lookup_batch(f->pend, in, &cursor, keys, vals, &count, NULL);
		last = rc != 0;
		if (rc && errno != ENOENT) {
			rc = -errno;
			break;
		}
		rc = 0;
		for (__u32 i = 0; i < count; i++) {
			const struct ep_health_pend *pe = &vals[i];
			uint64_t age = now_ns > pe->ts_ns ? now_ns - pe->ts_ns : 0;

			if (pe->state == EP_HEALTH_S_SYN_SENT || pe->state == EP_HEALTH_S_UDP_WAIT) {
				bool udp = pe->state == EP_HEALTH_S_UDP_WAIT;
				struct ep_health_pend upd;

				if (age < window_ns)
					continue;
				/* Re-read: TC may have answered (deleted) it since
				 * the batch was copied; then nothing is counted. */
				if (bpf_map_lookup_elem(f->pend, &keys[i], &upd) ||
				    upd.state != pe->state || upd.ts_ns != pe->ts_ns)
					continue;
				upd.state = udp ? EP_HEALTH_S_UDP_TIMED_OUT : EP_HEALTH_S_SYN_TIMED_OUT;
				/* BPF_EXIST: an answer deleting it in between wins. */
				if (bpf_map_update_elem(f->pend, &keys[i], &upd, BPF_EXIST))
					continue;
				reported++;
				if (cb)
					cb(pe->backend_id, udp, arg);
			} else if ((pe->state == EP_HEALTH_S_SYN_TIMED_OUT ||
				    pe->state == EP_HEALTH_S_UDP_TIMED_OUT) &&
				   age >= forget_ns) {
				bpf_map_delete_elem(f->pend, &keys[i]);
			}
		}
		if (last)
			break;
		in = &cursor;
	}
	free(keys);
	free(vals);
	return rc ? rc : reported;
}

void ep_health_diff(const struct ep_health_counts *a, const struct ep_health_counts *b,
		    struct ep_health_window *w)
{
#define D(field) (b->field >= a->field ? b->field - a->field : 0)
	memset(w, 0, sizeof(*w));
	w->refused = D(k.refused);
	w->syn_unanswered = D(syn_unanswered);
	w->rst = D(k.rst);
	w->http_5xx = D(k.http_5xx);
	w->udp_unanswered = D(udp_unanswered);
	w->failures = w->refused + w->syn_unanswered + w->rst + w->http_5xx + w->udp_unanswered;
	/* Every outcome is a sample: answered handshakes and UDP requests,
	 * read HTTP responses, and each failure not already among those. */
	w->samples = D(k.synack) + D(k.synack_unseen) + D(k.udp_reply) + D(k.http_resp) + w->refused +
		     w->syn_unanswered + w->rst + w->udp_unanswered;
#undef D
}

int ep_health_forget_backend(const struct ep_health_fds *f, uint32_t backend_id)
{
	struct ep_flow_key key, next;
	struct ep_health_pend pe;
	void *prev = NULL;
	int n = 0;

	while (bpf_map_get_next_key(f->pend, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(f->pend, &key, &pe) && pe.backend_id == backend_id &&
		    !bpf_map_delete_elem(f->pend, &key))
			n++;
	}
	return n;
}
