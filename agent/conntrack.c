#include "conntrack.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define CT_BATCH 4096

int ep_ncpus(void)
{
	static int n;

	if (!n) {
		n = libbpf_num_possible_cpus();
		if (n < 1)
			n = 1;
	}
	return n;
}

/* Visits every entry in batches (one syscall per CT_BATCH entries instead of
 * two per entry); the callback decides which keys to delete afterwards. */
typedef int (*ct_visit_fn)(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg);

static long ct_walk(int fd, ct_visit_fn fn, void *arg, uint64_t *scanned)
{
	struct ep_flow_key *keys = calloc(CT_BATCH, sizeof(*keys));
	struct ep_ct_entry *vals = calloc(CT_BATCH, sizeof(*vals));
	struct ep_flow_key *dead = NULL;
	size_t n_dead = 0, cap_dead = 0;
	__u8 batch_buf[sizeof(struct ep_flow_key)];
	void *in = NULL;
	long deleted = 0;
	int rc = 0;

	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (;;) {
		__u32 count = CT_BATCH;

		rc = bpf_map_lookup_batch(fd, in, batch_buf, keys, vals, &count, NULL);
		if (rc && errno != ENOENT) {
			rc = -errno;
			break;
		}
		for (__u32 i = 0; i < count; i++) {
			if (scanned)
				(*scanned)++;
			if (!fn(&keys[i], &vals[i], arg))
				continue;
			if (n_dead == cap_dead) {
				size_t nc = cap_dead ? cap_dead * 2 : 1024;
				void *nd = realloc(dead, nc * sizeof(*dead));

				if (!nd)
					continue;
				dead = nd;
				cap_dead = nc;
			}
			dead[n_dead++] = keys[i];
		}
		if (rc) { /* ENOENT: that was the last batch */
			rc = 0;
			break;
		}
		in = batch_buf;
	}
	/* Delete after the walk: deleting during a hash-bucket walk can make
	 * the batch cursor skip or repeat entries. */
	for (size_t i = 0; i < n_dead; i++)
		if (bpf_map_delete_elem(fd, &dead[i]) == 0)
			deleted++;
	free(dead);
	free(keys);
	free(vals);
	return rc ? rc : deleted;
}

struct gc_arg {
	uint32_t now, tcp_s, udp_s;
	uint8_t *refs;
	uint64_t kept;
};

static int gc_visit(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg)
{
	struct gc_arg *a = arg;
	uint32_t limit = k->proto == IPPROTO_TCP ? a->tcp_s : a->udp_s;

	if (v->flags & EP_CT_F_CLOSING)
		limit = EP_CT_CLOSING_TIMEOUT_S;

	/* Unsigned difference: correct across the (theoretical) wrap. */
	if (a->now - v->last_seen_s > limit && a->now - v->last_seen_s < (1u << 31))
		return 1;
	if (a->refs && v->backend_id < EP_MAX_BACKENDS)
		a->refs[v->backend_id / 8] |= (uint8_t)(1u << (v->backend_id % 8));
	a->kept++;
	return 0;
}

int ep_ct_gc(int ct_fd, uint32_t now_s, uint32_t tcp_timeout_s, uint32_t udp_timeout_s,
	     uint8_t *refs, struct ep_ct_gc_result *res)
{
	struct gc_arg a = {
		.now = now_s,
		.tcp_s = tcp_timeout_s,
		.udp_s = udp_timeout_s,
		.refs = refs,
	};
	long deleted;

	memset(res, 0, sizeof(*res));
	deleted = ct_walk(ct_fd, gc_visit, &a, &res->scanned);
	if (deleted < 0)
		return (int)deleted;
	res->expired = (uint64_t)deleted;
	res->entries = a.kept;
	return 0;
}

static int purge_visit(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg)
{
	const struct ep_endpoint *svc = arg;

	(void)v;
	return k->family == svc->family && k->proto == svc->proto && k->dport == svc->port &&
	       !memcmp(k->dst, svc->addr, sizeof(k->dst));
}

long ep_ct_purge_service(int ct_fd, const struct ep_endpoint *svc)
{
	return ct_walk(ct_fd, purge_visit, (void *)svc, NULL);
}
