/*
 * The agent's conntrack housekeeping (agent/lb/conntrack.c) on the real
 * tables of xdp_lb (loaded, not attached): the four tables hold flows of
 * both families and protocols, IPv4 keys without a protocol (it is the
 * table's). Checks the tables' layout, that a lookup finds each protocol's
 * flow in its own table, that the GC pass expires by each protocol's
 * timeout and reports the backends still referenced, and that purging a
 * service or backends reaches every table that can hold their flows (UDP
 * ones included: a canary's on_rollback reset must cut its UDP flows too).
 * Then the table's own rules: a full bucket gives up its least recently
 * seen flow, and a slot a writer owns (odd seq) is nobody's to read or
 * write.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conntrack.h"
#include "datapath.h"
#include "edgeplane_abi.h"
#include "ep_hash.h"
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

/* Writes a flow where the datapath would. */
static int put(const struct ep_flow_key *k, uint32_t backend_id, uint32_t idle_s)
{
	struct ep_ct_entry v = {.backend_id = backend_id, .last_seen_s = NOW - idle_s,
				.bport = htons(8080)};

	return ep_ct_put(&fds.ct, k, &v);
}

static int total(void)
{
	return (int)ep_ct_count(&fds.ct, 0, 0);
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
			return -EIO;
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
	int rc = ep_ct_gc(&fds.ct, NOW, TCP_S, UDP_S, refs, false, &r);

	tap_ok(rc == 0 && !r.full, "gc: one pass over the four tables (rc %d)", rc);
	tap_ok(r.buckets >= 1 && r.buckets <= 12,
	       "gc: it reads only the buckets marked as holding flows (%llu of %u)",
	       (unsigned long long)r.buckets, 4 * ep_ct_buckets(EP_CT_DEFAULT_SIZE));
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
	rc = ep_ct_gc(&fds.ct, NOW, TCP_S, UDP_S, refs, false, &r);
	tap_ok(rc == 0 && r.scanned == 8 && r.buckets <= 8,
	       "gc: the emptied buckets lost their marks: the next pass reads %llu buckets for %llu "
	       "flows",
	       (unsigned long long)r.buckets, (unsigned long long)r.scanned);
	rc = ep_ct_gc(&fds.ct, NOW, TCP_S, UDP_S, refs, true, &r);
	tap_ok(rc == 0 && r.full && r.scanned == 8 &&
		       r.buckets == 4ULL * ep_ct_buckets(EP_CT_DEFAULT_SIZE),
	       "gc: a full pass reads every bucket (%llu) and finds the same %llu flows",
	       (unsigned long long)r.buckets, (unsigned long long)r.scanned);
}

/* A flow whose bucket lost its mark (written by a build without marks, or
 * before a pin was replaced) is found by the full pass a start begins with,
 * which marks it again. */
static void test_marks(void)
{
	struct ep_flow_key k = key(EP_FAMILY_V4, "192.0.2.11", "10.0.0.100", 42000, 80, IPPROTO_TCP);
	uint8_t refs[EP_MAX_BACKENDS / 8] = {0};
	struct ep_ct_gc_result r;
	size_t len = 4 * (size_t)EP_CT_USED_WORDS * sizeof(__u64);
	__u64 *bits = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds.ct.used, 0);
	int rc;

	if (!tap_ok(bits != MAP_FAILED, "marks: ep_ct_used maps into the test"))
		return;
	put(&k, 9, 1);
	memset(bits, 0, len);
	rc = ep_ct_gc(&fds.ct, NOW, TCP_S, UDP_S, refs, false, &r);
	tap_ok(rc == 0 && r.scanned == 0 && total() == 1,
	       "marks: without its mark a flow is not seen by a marks-only pass (%llu seen)",
	       (unsigned long long)r.scanned);
	rc = ep_ct_gc(&fds.ct, NOW, TCP_S, UDP_S, refs, true, &r);
	tap_ok(rc == 0 && r.scanned == 1, "marks: the full pass finds it (%llu)",
	       (unsigned long long)r.scanned);
	rc = ep_ct_gc(&fds.ct, NOW, TCP_S, UDP_S, refs, false, &r);
	tap_ok(rc == 0 && r.scanned == 1 && r.buckets == 1,
	       "marks: ... and marks its bucket: the next pass reads that one bucket (%llu, %llu)",
	       (unsigned long long)r.scanned, (unsigned long long)r.buckets);
	ep_ct_purge_backends(&fds.ct, (uint8_t[EP_MAX_BACKENDS / 8]){[1] = 1 << 1});
	tap_ok(total() == 0, "marks: purged (%d left)", total());
	munmap(bits, len);
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

static void test_layout(struct xdp_lb *skel)
{
	struct bpf_map *m[4] = {skel->maps.ep_ct4, skel->maps.ep_ctu4, skel->maps.ep_ct6,
				skel->maps.ep_ctu6};
	int ok = 0;

	for (int i = 0; i < 4; i++)
		ok += bpf_map__type(m[i]) == BPF_MAP_TYPE_ARRAY &&
		      (bpf_map__map_flags(m[i]) & BPF_F_MMAPABLE) &&
		      bpf_map__value_size(m[i]) == (i < 2 ? sizeof(struct ep_ct_bucket4)
							  : sizeof(struct ep_ct_bucket6)) &&
		      bpf_map__max_entries(m[i]) == ep_ct_buckets(EP_CT_DEFAULT_SIZE);
	tap_ok(ok == 4,
	       "tables: mmapable arrays of %u buckets of %d slots (%zu and %zu bytes), %d of 4",
	       ep_ct_buckets(EP_CT_DEFAULT_SIZE), EP_CT_WAYS, sizeof(struct ep_ct_bucket4),
	       sizeof(struct ep_ct_bucket6), ok);
	tap_ok(sizeof(struct ep_ct_slot4) == 56 && sizeof(struct ep_ct_slot6) == 80,
	       "slots: 56 bytes (IPv4), 80 (IPv6): %zu, %zu", sizeof(struct ep_ct_slot4),
	       sizeof(struct ep_ct_slot6));
}

/* The IPv4 TCP table's seed and size, as BPF reads them off the map. */
static void table4(uint32_t *seed, uint32_t *n)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	bpf_obj_get_info_by_fd(fds.ct.v4, &info, &len);
	*seed = info.id;
	*n = info.max_entries;
}

/* n flows to 10.0.0.100:80 that share one bucket: clients 198.18.0.x,
 * ports from 1024. */
static int same_bucket(struct ep_flow_key *out, int n)
{
	uint32_t seed, nb, want = 0;
	int got = 0;

	table4(&seed, &nb);
	for (uint32_t i = 0; i < 256 * 64512 && got < n; i++) {
		char src[32];
		struct ep_flow_key k;
		struct ep_flow_key4 k4;
		uint32_t b;

		snprintf(src, sizeof(src), "198.18.0.%u", i % 256);
		k = key(EP_FAMILY_V4, src, "10.0.0.100", (uint16_t)(1024 + i / 256), 80, IPPROTO_TCP);
		k4 = (struct ep_flow_key4){.src = k.src[0], .dst = k.dst[0], .sport = k.sport,
					   .dport = k.dport};
		b = ep_ct_index(ep_ct_hash4(&k4), seed, nb);
		if (!got)
			want = b;
		if (b == want)
			out[got++] = k;
	}
	return got;
}

static void test_bucket_full(void)
{
	/* idle seconds of the first four; the fifth is new */
	const uint32_t idle[4] = {5, 30, 1, 12};
	struct ep_flow_key k[5];
	struct ep_ct_entry e;
	int kept = 0;

	if (!tap_ok(same_bucket(k, 5) == 5, "bucket: five flows that share a bucket found"))
		return;
	for (int i = 0; i < 4; i++)
		put(&k[i], 10 + (uint32_t)i, idle[i]);
	tap_ok(put(&k[4], 20, 0) == 0 && ep_ct_get(&fds.ct, &k[4], &e) == 0 && e.backend_id == 20,
	       "bucket: a fifth flow goes into a full bucket");
	tap_ok(ep_ct_get(&fds.ct, &k[1], &e) == -ENOENT,
	       "bucket: ... in place of the least recently seen (idle 30 s)");
	for (int i = 0; i < 4; i++)
		kept += i != 1 && ep_ct_get(&fds.ct, &k[i], &e) == 0 && e.backend_id == 10 + (uint32_t)i;
	tap_ok(kept == 3, "bucket: the other three kept, entries intact (%d)", kept);
	tap_ok(put(&k[0], 30, 0) == 0 && ep_ct_get(&fds.ct, &k[0], &e) == 0 && e.backend_id == 30 &&
		       total() == 4,
	       "bucket: writing a tracked flow replaces its entry in place (%d flows)", total());
	ep_ct_purge_backends(&fds.ct, (uint8_t[EP_MAX_BACKENDS / 8]){[1] = 0xff, [2] = 0xff, [3] = 0xff});
	tap_ok(total() == 0, "bucket: purged (%d left)", total());
}

/* A slot whose seq is odd is owned by a writer: readers see no entry,
 * other writers give up, GC leaves it alone. */
static void test_slot_owned(void)
{
	struct ep_flow_key k = key(EP_FAMILY_V4, "192.0.2.10", "10.0.0.100", 41000, 80, IPPROTO_TCP);
	struct ep_ct_entry e;
	uint32_t seed, nb;
	struct ep_ct_bucket4 *t;
	struct ep_ct_slot4 *s = NULL;
	size_t len;
	uint8_t refs[EP_MAX_BACKENDS / 8] = {0};
	struct ep_ct_gc_result r;
	int rc;

	table4(&seed, &nb);
	len = (size_t)nb * sizeof(*t);
	t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds.ct.v4, 0);
	if (!tap_ok(t != MAP_FAILED, "owned: the table maps into the test"))
		return;
	put(&k, 7, 1);
	for (int w = 0; w < EP_CT_WAYS; w++) {
		struct ep_ct_bucket4 *b = &t[ep_ct_index(ep_ct_hash4(&(struct ep_flow_key4){
								 .src = k.src[0], .dst = k.dst[0],
								 .sport = k.sport, .dport = k.dport}),
							 seed, nb)];

		if (b->way[w].key.sport == k.sport && b->way[w].key.src == k.src[0])
			s = &b->way[w];
	}
	if (!tap_ok(s && !(s->seq & 1), "owned: the flow's slot found, seq even (%llu)",
		    s ? (unsigned long long)s->seq : 0ULL)) {
		munmap(t, len);
		return;
	}
	s->seq++;
	tap_ok(ep_ct_get(&fds.ct, &k, &e) == -EBUSY, "owned: a read while a writer owns the slot: -EBUSY");
	tap_ok(put(&k, 8, 0) == -EBUSY, "owned: another writer gives up");
	rc = ep_ct_gc(&fds.ct, NOW + 100000, 1, 1, refs, false, &r);
	tap_ok(rc == 0 && r.expired == 0, "owned: GC leaves it alone, however idle (%llu expired)",
	       (unsigned long long)r.expired);
	s->seq++;
	tap_ok(ep_ct_get(&fds.ct, &k, &e) == 0 && e.backend_id == 7,
	       "owned: released (seq even again), the entry is read as written");
	rc = ep_ct_gc(&fds.ct, NOW + 100000, 1, 1, refs, false, &r);
	tap_ok(rc == 0 && r.expired == 1 && total() == 0, "owned: and GC expires it now (%llu)",
	       (unsigned long long)r.expired);
	munmap(t, len);
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
	test_layout(skel);
	rc = ep_map_fds_from_obj(skel->obj, &fds);
	if (tap_ok(rc == 0, "the load balancer's maps found (rc %d)", rc)) {
		rc = fill();
		if (tap_ok(rc == 0 && total() == 12, "12 flows written (rc %d, %d in the maps)", rc,
			   total())) {
			test_get();
			test_gc();
			test_purge();
			test_bucket_full();
			test_slot_owned();
			test_marks();
		}
	}
	xdp_lb__destroy(skel);
	return tap_done();
}
