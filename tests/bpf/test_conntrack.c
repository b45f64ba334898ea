/*
 * The agent's conntrack housekeeping (agent/lb/conntrack.c) on the real
 * maps of xdp_lb (loaded, not attached): the four maps hold flows of both
 * families and protocols, IPv4 keys without a protocol (it is the map's).
 * Checks that a lookup finds each protocol's flow in its own map, that the
 * GC pass expires by each protocol's timeout and reports the backends still
 * referenced, and that purging a service or backends reaches every map that
 * can hold their flows (UDP ones included: a canary's on_rollback reset
 * must cut its UDP flows too).
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conntrack.h"
#include "datapath.h"
#include "edgeplane_abi.h"
#include "log.h"
#include "tap.h"
#include "xdp_lb.skel.h"

#define NOW 100000u
#define TCP_S 3600u
#define UDP_S 60u

static struct ep_map_fds fds;

static struct ep_flow_key key(int family, const char *src, const char *dst, uint16_t sport,
			      uint16_t dport, uint8_t proto)
{
	struct ep_flow_key k = {.sport = htons(sport), .dport = htons(dport), .proto = proto,
				.family = (uint8_t)family};

	inet_pton(family == EP_FAMILY_V4 ? AF_INET : AF_INET6, src, k.src);
	inet_pton(family == EP_FAMILY_V4 ? AF_INET : AF_INET6, dst, k.dst);
	return k;
}

/* Writes a flow as the datapath would: IPv4 keys in their 12-byte layout. */
static int put(const struct ep_flow_key *k, uint32_t backend_id, uint32_t idle_s)
{
	struct ep_ct_entry v = {.backend_id = backend_id, .last_seen_s = NOW - idle_s,
				.bport = htons(8080)};
	int fd;

	if (k->family == EP_FAMILY_V4) {
		struct ep_flow_key4 k4 = {.src = k->src[0], .dst = k->dst[0], .sport = k->sport,
					  .dport = k->dport};

		fd = k->proto == IPPROTO_UDP ? fds.ct.u4 : fds.ct.v4;
		return bpf_map_update_elem(fd, &k4, &v, BPF_NOEXIST);
	}
	fd = k->proto == IPPROTO_UDP ? fds.ct.u6 : fds.ct.v6;
	return bpf_map_update_elem(fd, k, &v, BPF_NOEXIST);
}

static int count(int fd, size_t key_size)
{
	unsigned char cur[64], next[64];
	int n = 0;

	for (void *prev = NULL; bpf_map_get_next_key(fd, prev, next) == 0 && n < 100000; n++) {
		memcpy(cur, next, key_size);
		prev = cur;
	}
	return n;
}

static int total(void)
{
	return count(fds.ct.v4, sizeof(struct ep_flow_key4)) +
	       count(fds.ct.u4, sizeof(struct ep_flow_key4)) +
	       count(fds.ct.v6, sizeof(struct ep_flow_key)) +
	       count(fds.ct.u6, sizeof(struct ep_flow_key));
}

/* The same client 4-tuple to the same VIP:port over TCP (backend 1) and
 * UDP (backend 2), both families, plus flows of a second service and idle
 * ones. 12 flows. */
static int fill(void)
{
	const char *c4 = "192.0.2.7", *v4 = "10.0.0.100", *c6 = "2001:db8::7", *v6 = "fd00::100";
	struct {
		struct ep_flow_key k;
		uint32_t be, idle;
	} f[] = {
		{key(EP_FAMILY_V4, c4, v4, 40000, 80, IPPROTO_TCP), 1, 5},
		{key(EP_FAMILY_V4, c4, v4, 40000, 80, IPPROTO_UDP), 2, 5},
		{key(EP_FAMILY_V4, c4, v4, 40001, 80, IPPROTO_TCP), 3, TCP_S + 1}, /* idle */
		{key(EP_FAMILY_V4, c4, v4, 40001, 80, IPPROTO_UDP), 3, UDP_S + 1}, /* idle */
		{key(EP_FAMILY_V4, c4, v4, 40002, 80, IPPROTO_UDP), 4, UDP_S - 1},
		{key(EP_FAMILY_V4, c4, "10.0.0.101", 40000, 53, IPPROTO_UDP), 5, 1},
		{key(EP_FAMILY_V6, c6, v6, 40000, 80, IPPROTO_TCP), 1, 5},
		{key(EP_FAMILY_V6, c6, v6, 40000, 80, IPPROTO_UDP), 2, 5},
		{key(EP_FAMILY_V6, c6, v6, 40001, 80, IPPROTO_TCP), 3, TCP_S + 1}, /* idle */
		{key(EP_FAMILY_V6, c6, v6, 40001, 80, IPPROTO_UDP), 3, UDP_S + 1}, /* idle */
		{key(EP_FAMILY_V6, c6, v6, 40002, 80, IPPROTO_UDP), 2, 1},
		{key(EP_FAMILY_V6, c6, "fd00::101", 40000, 53, IPPROTO_UDP), 5, 1},
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (put(&f[i].k, f[i].be, f[i].idle))
			return -errno;
	return 0;
}

static void test_get(void)
{
	struct ep_flow_key t4 = key(EP_FAMILY_V4, "192.0.2.7", "10.0.0.100", 40000, 80, IPPROTO_TCP);
	struct ep_flow_key u4 = key(EP_FAMILY_V4, "192.0.2.7", "10.0.0.100", 40000, 80, IPPROTO_UDP);
	struct ep_flow_key u6 = key(EP_FAMILY_V6, "2001:db8::7", "fd00::100", 40000, 80, IPPROTO_UDP);
	struct ep_flow_key miss = key(EP_FAMILY_V4, "192.0.2.8", "10.0.0.100", 40000, 80, IPPROTO_TCP);
	struct ep_ct_entry e = {0};
	int rc;

	rc = ep_ct_get(&fds.ct, &t4, &e);
	tap_ok(rc == 0 && e.backend_id == 1,
	       "get: an IPv4 TCP flow is found in the TCP map (rc %d, backend %u, want 1)", rc,
	       e.backend_id);
	memset(&e, 0, sizeof(e));
	rc = ep_ct_get(&fds.ct, &u4, &e);
	tap_ok(rc == 0 && e.backend_id == 2,
	       "get: the same 4-tuple over UDP is another flow, in the UDP map (rc %d, backend %u, "
	       "want 2)",
	       rc, e.backend_id);
	memset(&e, 0, sizeof(e));
	rc = ep_ct_get(&fds.ct, &u6, &e);
	tap_ok(rc == 0 && e.backend_id == 2, "get: an IPv6 UDP flow (rc %d, backend %u, want 2)", rc,
	       e.backend_id);
	rc = ep_ct_get(&fds.ct, &miss, &e);
	tap_ok(rc == -ENOENT, "get: an unknown flow is -ENOENT (rc %d)", rc);
}

static void test_gc(void)
{
	uint8_t refs[EP_MAX_BACKENDS / 8] = {0};
	struct ep_ct_gc_result r;
	int rc = ep_ct_gc(&fds.ct, NOW, TCP_S, UDP_S, refs, &r);

	tap_ok(rc == 0, "gc: one pass over the four maps (rc %d)", rc);
	tap_ok(r.scanned == 12 && r.expired == 4,
	       "gc: 12 entries scanned, 4 idle past their protocol's timeout expired (%llu, %llu)",
	       (unsigned long long)r.scanned, (unsigned long long)r.expired);
	tap_ok(r.entries == 8 && r.entries4 == 4 && r.entries6 == 4,
	       "gc: 8 entries kept, 4 per family (%llu: %llu + %llu)", (unsigned long long)r.entries,
	       (unsigned long long)r.entries4, (unsigned long long)r.entries6);
	tap_ok(refs[0] == ((1 << 1) | (1 << 2) | (1 << 4) | (1 << 5)),
	       "gc: backends 1, 2, 4 and 5 still referenced, 3 (idle flows only) not (bits 0x%02x)",
	       refs[0]);
	tap_ok(total() == 8, "gc: the expired entries are gone from the maps (%d left)", total());
}

static void test_purge(void)
{
	struct ep_endpoint dns = {.port = htons(53), .proto = IPPROTO_UDP, .family = EP_FAMILY_V4};
	uint8_t ids[EP_MAX_BACKENDS / 8] = {0};
	long n;

	inet_pton(AF_INET, "10.0.0.101", dns.addr);
	n = ep_ct_purge_service(&fds.ct, &dns);
	tap_ok(n == 1 && total() == 7,
	       "purge service: the IPv4 UDP service's one flow deleted, nothing else (%ld, %d left)",
	       n, total());
	ids[0] = 1 << 2;
	n = ep_ct_purge_backends(&fds.ct, ids);
	tap_ok(n == 3 && total() == 4,
	       "purge backends: backend 2's flows deleted from the UDP maps of both families (%ld, "
	       "want 3; %d left)",
	       n, total());
	ids[0] = (1 << 1) | (1 << 4) | (1 << 5);
	n = ep_ct_purge_backends(&fds.ct, ids);
	tap_ok(n == 4 && total() == 0, "purge backends: TCP and UDP flows alike (%ld, %d left)", n,
	       total());
}

int main(void)
{
	struct xdp_lb *skel;
	int rc;

	ep_log_setup(0, EP_LOG_WARN);
	if (geteuid() != 0)
		return tap_skip_all("needs root (BPF)");
	skel = xdp_lb__open_and_load();
	if (!tap_ok(skel != NULL, "xdp_lb loaded (maps not pinned)"))
		return tap_done();
	tap_ok(bpf_map__key_size(skel->maps.ep_ct4) == 12 &&
		       bpf_map__key_size(skel->maps.ep_ctu4) == 12,
	       "IPv4 conntrack keys are 12 bytes (TCP %u, UDP %u)",
	       bpf_map__key_size(skel->maps.ep_ct4), bpf_map__key_size(skel->maps.ep_ctu4));
	rc = ep_map_fds_from_obj(skel->obj, &fds);
	if (tap_ok(rc == 0, "the load balancer's maps found (rc %d)", rc)) {
		rc = fill();
		if (tap_ok(rc == 0 && total() == 12, "12 flows written (rc %d, %d in the maps)", rc,
			   total())) {
			test_get();
			test_gc();
			test_purge();
		}
	}
	xdp_lb__destroy(skel);
	return tap_done();
}
