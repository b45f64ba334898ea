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
 * two per entry); the callback sees every key in the IPv6 layout and decides
 * which entries to delete afterwards. */
typedef int (*ct_visit_fn)(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg);

/* An IPv4 key carries no protocol: it is the map's. */
static void key_from4(struct ep_flow_key *k, const struct ep_flow_key4 *k4, __u8 proto)
{
	memset(k, 0, sizeof(*k));
	k->src[0] = k4->src;
	k->dst[0] = k4->dst;
	k->sport = k4->sport;
	k->dport = k4->dport;
	k->proto = proto;
	k->family = EP_FAMILY_V4;
}

static long ct_walk(int fd, int family, __u8 proto, ct_visit_fn fn, void *arg,
		    uint64_t *scanned)
{
	size_t ksz = family == EP_FAMILY_V4 ? sizeof(struct ep_flow_key4) : sizeof(struct ep_flow_key);
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);

	/* The batch writes keys of the map's size into ksz-sized slots. */
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return -errno;
	if (info.key_size != ksz)
		return -EINVAL;

	unsigned char *keys = calloc(CT_BATCH, ksz);
	struct ep_ct_entry *vals = calloc(CT_BATCH, sizeof(*vals));
	unsigned char *dead = NULL;
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
			struct ep_flow_key k;

			if (family == EP_FAMILY_V4)
				key_from4(&k, (const struct ep_flow_key4 *)(keys + i * ksz), proto);
			else
				memcpy(&k, keys + i * ksz, sizeof(k));
			if (scanned)
				(*scanned)++;
			if (!fn(&k, &vals[i], arg))
				continue;
			if (n_dead == cap_dead) {
				size_t nc = cap_dead ? cap_dead * 2 : 1024;
				void *nd = realloc(dead, nc * ksz);

				if (!nd)
					continue;
				dead = nd;
				cap_dead = nc;
			}
			memcpy(dead + n_dead++ * ksz, keys + i * ksz, ksz);
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
		if (bpf_map_delete_elem(fd, dead + i * ksz) == 0)
			deleted++;
	free(dead);
	free(keys);
	free(vals);
	return rc ? rc : deleted;
}

static int ct_fd(const struct ep_ct_fds *ct, int family, int proto)
{
	if (proto == IPPROTO_UDP)
		return family == EP_FAMILY_V4 ? ct->u4 : ct->u6;
	return family == EP_FAMILY_V4 ? ct->v4 : ct->v6;
}

int ep_ct_get(const struct ep_ct_fds *ct, const struct ep_flow_key *k, struct ep_ct_entry *out)
{
	int fd = ct_fd(ct, k->family, k->proto);

	if (k->family == EP_FAMILY_V4) {
		struct ep_flow_key4 k4 = {
			.src = k->src[0], .dst = k->dst[0], .sport = k->sport, .dport = k->dport,
		};

		return bpf_map_lookup_elem(fd, &k4, out) ? -errno : 0;
	}
	return bpf_map_lookup_elem(fd, k, out) ? -errno : 0;
}

/* The conntrack maps, each with the family and protocol of its flows. An
 * older object without UDP maps (make bench's baseline) hands the TCP ones
 * twice: they are listed once. */
struct ct_map {
	int fd, family;
	__u8 proto;
};

static size_t ct_maps(const struct ep_ct_fds *ct, struct ct_map out[4])
{
	const struct ct_map all[4] = {
		{ct->v4, EP_FAMILY_V4, IPPROTO_TCP},
		{ct->u4, EP_FAMILY_V4, IPPROTO_UDP},
		{ct->v6, EP_FAMILY_V6, IPPROTO_TCP},
		{ct->u6, EP_FAMILY_V6, IPPROTO_UDP},
	};
	size_t n = 0;

	for (size_t i = 0; i < 4; i++)
		if (!(i % 2 && all[i].fd == all[i - 1].fd))
			out[n++] = all[i];
	return n;
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

int ep_ct_gc(const struct ep_ct_fds *ct, uint32_t now_s, uint32_t tcp_timeout_s,
	     uint32_t udp_timeout_s, uint8_t *refs, struct ep_ct_gc_result *res)
{
	struct gc_arg a = {
		.now = now_s,
		.tcp_s = tcp_timeout_s,
		.udp_s = udp_timeout_s,
		.refs = refs,
	};
	struct ct_map maps[4];
	size_t n = ct_maps(ct, maps);

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i < n; i++) {
		uint64_t kept = a.kept;
		long d;

		d = ct_walk(maps[i].fd, maps[i].family, maps[i].proto, gc_visit, &a, &res->scanned);
		if (d < 0)
			return (int)d;
		res->expired += (uint64_t)d;
		if (maps[i].family == EP_FAMILY_V4)
			res->entries4 += a.kept - kept;
		else
			res->entries6 += a.kept - kept;
	}
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

long ep_ct_purge_service(const struct ep_ct_fds *ct, const struct ep_endpoint *svc)
{
	return ct_walk(ct_fd(ct, svc->family, svc->proto), svc->family, svc->proto, purge_visit,
		       (void *)svc, NULL);
}

static int purge_be_visit(const struct ep_flow_key *k, const struct ep_ct_entry *v, void *arg)
{
	const uint8_t *ids = arg;

	(void)k;
	return v->backend_id < EP_MAX_BACKENDS &&
	       (ids[v->backend_id / 8] & (1u << (v->backend_id % 8)));
}

long ep_ct_purge_backends(const struct ep_ct_fds *ct, const uint8_t *ids)
{
	struct ct_map maps[4];
	size_t n = ct_maps(ct, maps);
	long deleted = 0;

	for (size_t i = 0; i < n; i++) {
		long d = ct_walk(maps[i].fd, maps[i].family, maps[i].proto, purge_be_visit,
				 (void *)ids, NULL);

		if (d < 0)
			return d;
		deleted += d;
	}
	return deleted;
}
