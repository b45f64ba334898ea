/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The datapath ABI: every map key and value that BPF programs and user space
 * share. Pinned maps outlive the agent, so a layout change here must bump
 * EP_ABI_VERSION; the agent refuses to reuse pins written by another ABI.
 *
 * Addresses are stored as four big-endian 32-bit words; an IPv4 address sits in
 * word 0 with words 1..3 zero, so one key type serves both families.
 * Ports are kept in network byte order, exactly as they appear on the wire, so
 * the fast path never swaps bytes.
 */
#ifndef EDGEPLANE_ABI_H
#define EDGEPLANE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define EP_ABI_VERSION 1

#define EP_MAX_SERVICES 4096
#define EP_MAX_VIPS 4096
/* Backend ids index an array; id 0 means "none" so an empty Maglev slot is 0. */
#define EP_MAX_BACKENDS 131072
/* A backend address:port may serve at most this many VIP:ports (reverse NAT
 * tries each candidate against conntrack, so the bound keeps TC cheap). */
#define EP_MAX_SVCS_PER_BACKEND 8
#define EP_MAGLEV_DEFAULT_SIZE 16381
#define EP_MAGLEV_MAX_SIZE 1000003
#define EP_CT_DEFAULT_SIZE 262144

#define EP_FAMILY_V4 4
#define EP_FAMILY_V6 6

/* Maglev rings per service: outer index = svc_id * EP_RINGS_PER_SVC + ring. */
#define EP_RING_STABLE 0
#define EP_RING_CANARY 1
#define EP_RINGS_PER_SVC 2

/* A ring's slots are packed 16 to an element (one cache line): an array
 * map rounds every element up to 8 bytes, so one slot per element spent
 * half of each line on padding and a 16381-slot ring took 128 KiB, of which
 * a new flow reads one random line. Packed, it is 64 KiB (docs/benchmarks.md). */
#define EP_RING_CHUNK_SLOTS 16
#define EP_RING_CHUNKS(slots) (((slots) + EP_RING_CHUNK_SLOTS - 1) / EP_RING_CHUNK_SLOTS)

struct ep_ring_chunk {
	__u32 backend_id[EP_RING_CHUNK_SLOTS]; /* slot chunk * 16 + i; 0 = empty */
};

/* Canary shares are in basis points so 0.01% steps are possible. */
#define EP_BP_MAX 10000

/* VIP pre-filter: one bit per hash slot of a destination address, so the
 * common case (not a VIP) costs one array load. A set bit only means "maybe";
 * ep_vips is the exact answer, consulted before anything is dropped. */
#define EP_VIP_FILTER_BITS 16
#define EP_VIP_FILTER_WORDS ((1u << EP_VIP_FILTER_BITS) / 64)

/* Key of ep_vips (is this destination address a VIP at all?). */
struct ep_vip_key {
	__u32 addr[4];
	__u32 family;
};

/* An L4 endpoint: the key of ep_services (VIP:port/proto) and of
 * ep_backend_rev (backend:port/proto). */
struct ep_endpoint {
	__u32 addr[4];
	__u16 port; /* network order */
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 family;
};

#define EP_SVC_F_STICKY_FLOW (1u << 0) /* canary split per flow, not per client */

struct ep_service {
	__u32 id;
	__u32 table_size; /* Maglev ring size (prime) */
	__u32 flags;
	__u16 canary_bp; /* share of new clients sent to the canary ring */
	__u16 mirror_bp; /* share of packets cloned to the mirror target */
};

#define EP_BE_F_VALID (1u << 0)
#define EP_BE_F_DRAIN (1u << 1)	 /* out of the rings, existing flows continue */
#define EP_BE_F_CANARY (1u << 2)
#define EP_BE_F_REMOVED (1u << 3) /* gone from config; kept while flows use it */

struct ep_backend {
	__u32 addr[4];
	__u16 port; /* network order */
	__u8 family;
	__u8 flags;
	__u32 svc_id;
};

/* Conntrack key: the client's view of the flow (client -> VIP). IPv6 flows
 * are tracked with this key in ep_ct6/ep_ctu6; IPv4 flows with the 12-byte
 * ep_flow_key4 in ep_ct4/ep_ctu4. The protocol is the table's (TCP or UDP),
 * not part of an IPv4 key. */
struct ep_flow_key4 {
	__u32 src;
	__u32 dst;
	__u16 sport;
	__u16 dport;
};

struct ep_flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

/* TCP only: a FIN or RST was seen; the entry expires after
 * EP_CT_CLOSING_TIMEOUT_S instead of the idle timeout, and a new SYN on the
 * same 4-tuple is balanced afresh. */
#define EP_CT_F_CLOSING (1u << 0)
#define EP_CT_CLOSING_TIMEOUT_S 10

struct ep_ct_entry {
	__u32 baddr[4];
	__u16 bport;
	__u16 flags;
	__u32 backend_id;
	__u32 last_seen_s; /* ep_dp_config.now_s when the flow last sent a packet */
	/* TCP: the client's initial sequence number (network order). The
	 * backend's SYN-ACK must acknowledge it, or the entry belongs to an
	 * older connection and the reply is not ours to translate. */
	__u32 isn;
};

/*
 * Conntrack tables (docs/datapath.md, "The conntrack table"): arrays of
 * buckets, EP_CT_WAYS slots each, indexed by ep_ct_hash4/ep_ct_hash6
 * (include/ep_hash.h). A table of our own instead of the kernel's LRU hash
 * map because a conntrack hit was mostly the kernel hashing the key with
 * jhash (docs/benchmarks.md): a multiplicative hash and one inlined array
 * lookup cost a fifth of that.
 *
 * A slot is free while its key is zero (no flow has destination 0, nor
 * family 0). seq is a per-slot sequence: odd while a writer owns the slot.
 * Writers (XDP, reverse NAT, the agent through the mmapped table) claim a
 * slot by compare-and-swap from even to odd, write the entry and then the
 * key, and release it at the next even number; a writer that finds the
 * slot owned gives up (the flow stays without an entry, an orphan, and is
 * recorded again by its next answer). Readers never write seq: a key that
 * matches in a slot whose seq is odd is a miss.
 *
 * A full bucket evicts its least recently seen slot: an approximate LRU,
 * per bucket. Tables hold EP_CT_SLOTS_PER_FLOW slots per flow of
 * datapath.conntrack_size, so a bucket overflows rarely before the table
 * is nearly full.
 */
#define EP_CT_WAYS 4
#define EP_CT_SLOTS_PER_FLOW 2

struct ep_ct_slot4 {
	__u64 seq; /* 64 bits: BPF's compare-and-swap of 32 needs -mcpu=v3 */
	struct ep_flow_key4 key;
	struct ep_ct_entry v;
};

struct ep_ct_bucket4 {
	struct ep_ct_slot4 way[EP_CT_WAYS];
};

struct ep_ct_slot6 {
	__u64 seq;
	struct ep_flow_key key;
	struct ep_ct_entry v;
};

struct ep_ct_bucket6 {
	struct ep_ct_slot6 way[EP_CT_WAYS];
};

/* Which buckets hold flows: one bit per bucket, a bitmap per table in
 * ep_ct_used (EP_CT_USED_WORDS words each, tables in the order ct4, ctu4,
 * ct6, ctu6), sized for the largest conntrack_size so that a resize never
 * touches it. A writer sets its bucket's bit after recording a flow; the
 * agent's pass visits only buckets whose bit is set, clears the bit first
 * and sets it again if the bucket still holds a flow. So a pass costs what
 * the flows cost, not what the table does. */
#define EP_CT_MAX_SIZE 16777216
#define EP_CT_USED_WORDS ((EP_CT_MAX_SIZE * EP_CT_SLOTS_PER_FLOW / EP_CT_WAYS + 63) / 64)
#define EP_CT_TABLE_CT4 0
#define EP_CT_TABLE_CTU4 1
#define EP_CT_TABLE_CT6 2
#define EP_CT_TABLE_CTU6 3
#define EP_CT_TABLE_NO(family, udp) (((family) == EP_FAMILY_V4 ? 0 : 2) + ((udp) ? 1 : 0))

/* Buckets of a table sized for `flows` flows (its max_entries). */
static inline __u32 ep_ct_buckets(__u32 flows)
{
	return (__u32)(((__u64)flows * EP_CT_SLOTS_PER_FLOW + EP_CT_WAYS - 1) / EP_CT_WAYS);
}


/*
 * Half-open TCP handshakes. A SYN is balanced statelessly by Maglev and
 * leaves a record here instead of a conntrack entry: a direct-mapped table
 * where a newer SYN simply overwrites an older one (no lock, no allocation,
 * no eviction of anything that matters). The conntrack entry is created by
 * the client's next packet, the ACK completing the handshake, so spoofed
 * SYNs, whose sources never answer, never reach conntrack. The record is
 * what lets reverse NAT translate the backend's SYN-ACK before any entry
 * exists, and keeps a handshake on the backend that got its SYN when the
 * Maglev ring changes before the ACK.
 *
 * 16 bytes, both families in one table: the flow is named by a 32-bit
 * signature of its key (ep_syn_sig) and must also match the ISN, so a wrong
 * match needs 64 bits to agree. Every SYN writes its record twice, to two
 * slots chosen by different bits of the flow hash (ep_syn_slot: the slot
 * older builds used, so both find each other's records during an upgrade;
 * ep_syn_slot2), and a reader takes either copy. One copy lost the record
 * whenever any SYN hashing to its slot came between a SYN and its SYN-ACK:
 * 1 connection in about 20,000 of a lab smoke test waited out a SYN
 * retransmission (docs/datapath.md). If one copy was lost with
 * probability p, both are with about (2p)^2 (each slot takes twice the
 * writes). The SYN only stores, never loads: a
 * table that must be read first (ways to choose from) made every SYN wait
 * for a cold line (docs/benchmarks.md). Sized so that a record outlives the
 * SYN -> SYN-ACK time (the backend's answer, microseconds to milliseconds)
 * even under a flood: at 1M SYN/s a slot is overwritten every 8 ms on
 * average; 256 KiB, small enough to stay cached.
 */
#define EP_SYN_SLOTS 16384
/* A record older than this is no handshake in progress any more. */
#define EP_SYN_MAX_AGE_S 30

/*
 * Orphans: a TCP packet that is neither a SYN nor the ACK of a recorded
 * handshake, and has no conntrack entry (a flow whose entry was evicted or
 * forgotten - or a spoofed ACK). It is balanced by Maglev and leaves a
 * record with EP_SYN_F_ORPHAN set, no entry: reverse NAT creates the entry
 * when the backend answers it with anything but a RST, which a backend only
 * does for a connection it has. So a spoofed ACK flood, answered with RSTs,
 * never reaches conntrack either (the flag makes the id an invalid backend
 * index for code that does not know it).
 *
 * Orphan records have a table of their own, ep_orphans: a record lost
 * before the backend answers leaves the answer untranslated, and the client
 * resets the connection. In the handshakes' table every SYN could overwrite
 * one (a burst of new connections while a conntrack replaced at an upgrade
 * makes every live flow an orphan broke 1 in 50 in lb_flood.sh). Here a
 * bucket of EP_ORPHAN_WAYS records shares one cache line: an orphan takes
 * its own flow's way, else a free one, else the oldest, and reverse NAT
 * frees it once the backend has answered. Floods of spoofed ACKs still
 * overwrite records (docs/datapath.md).
 */
#define EP_SYN_F_ORPHAN (1u << 31)
#define EP_ORPHAN_WAYS 4
#define EP_ORPHAN_BUCKETS 4096

struct ep_syn {
	__u32 sig;	   /* ep_syn_sig() of the flow; 0 in an unused slot */
	__u32 backend_id;  /* where the SYN went; | EP_SYN_F_ORPHAN for an orphan */
	__u32 isn;	   /* the client's ISN (network order); an orphan's seq - 1 */
	__u32 last_seen_s; /* ep_dp_config.now_s of the (latest copy of the) SYN */
};

struct ep_orphan_bucket {
	struct ep_syn way[EP_ORPHAN_WAYS]; /* sig 0: free */
};

/* Reverse index: which VIP:ports a backend address:port serves. */
struct ep_rev_vip {
	__u32 addr[4];
	__u16 port;
	__u16 pad;
};

struct ep_backend_rev {
	__u32 count;
	__u32 pad;
	struct ep_rev_vip vips[EP_MAX_SVCS_PER_BACKEND];
};

/* Per-CPU, indexed by backend id. */
struct ep_backend_stats {
	__u64 packets;
	__u64 bytes;
	__u64 flows;
	__u64 rnat_packets;
};

/* Why a packet aimed at a VIP address was dropped. Names in ep_drop_names. */
enum ep_drop_reason {
	EP_DROP_TRUNCATED = 0, /* headers or payload shorter than they claim */
	EP_DROP_MALFORMED,     /* impossible header fields (ihl < 5, doff < 5, ...) */
	EP_DROP_IP_OPTIONS,    /* IPv4 options present */
	EP_DROP_IPV6_EXTHDR,   /* IPv6 extension header present */
	EP_DROP_FRAGMENT,      /* any IP fragment: cannot be balanced without reassembly */
	EP_DROP_NO_BACKEND,    /* service has no usable backend */
	EP_DROP_ICMP_NO_FLOW,  /* ICMP error quoting a flow conntrack does not know */
	EP_DROP_MAX,
};

#define EP_DROP_NAMES                                                                              \
	{                                                                                          \
		"truncated", "malformed", "ip_options", "ipv6_exthdr", "fragment", "no_backend",   \
			"icmp_no_flow"                                                             \
	}

/* Per-CPU, indexed by enum ep_drop_reason. */
struct ep_drop_stats {
	__u64 packets;
	__u64 bytes;
};

/* Global knobs, one entry at index 0 of the ep_config map. */
#define EP_CFG_F_XDP_REDIRECT (1u << 0) /* XDP_REDIRECT to the backend's interface via
					  * bpf_fib_lookup instead of XDP_PASS */

struct ep_dp_config {
	__u32 flags;
	__u32 abi_version;
	/* Identity of the XDP object attached by the agent that wrote this
	 * (hash of its ELF bytes): a restarted agent with the same build leaves
	 * the attached program alone instead of swapping it. */
	__u64 xdp_build_id;
	__u32 xdp_mode; /* 0 native, 1 skb: mode the build id was attached in */
	/* Seconds of CLOCK_MONOTONIC_COARSE, published by the agent every tick:
	 * conntrack timestamps cost a load here instead of a helper call per
	 * packet. While no agent runs it stands still, and so does expiry. */
	__u32 now_s;
};


/* traffic mirroring */
/* ==== traffic mirroring (tc/tc_mirror.bpf.c, agent/canary/mirror*.c) ==== */

#ifndef __VMLINUX_H__
#include <linux/bpf.h> /* struct bpf_spin_lock */
#endif

/* The cap's limit (10 GB/s): the refill arithmetic (include/ep_mirror.h)
 * stays inside 64 bits below it. */
#define EP_MIRROR_MAX_RATE 10000000000ULL

/* ep_mirror_cfg[svc_id]: which flows of a service are cloned, and where to.
 * ifindex 0 = the service is not mirrored. The share is of flows (basis
 * points of ep_mirror_hash), not of packets: a sampled flow is cloned whole. */
struct ep_mirror_cfg {
	__u32 ifindex;	    /* target: a local interface, or the agent's VXLAN device */
	__u16 percent_bp;   /* 0..EP_BP_MAX */
	__u16 pad;
	__u64 rate_bps;	    /* token bucket: bytes per second refilled */
	__u64 burst_bytes;  /* ...and its depth */
};

/* ep_mirror_tb[svc_id]: one bucket per service shared by every CPU, so the
 * cap holds however RSS spreads the flows; the lock is only taken for
 * packets of sampled flows. */
struct ep_mirror_tb {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 tokens;  /* bytes that may still be cloned */
	__u64 last_ns; /* bpf_ktime_get_ns() of the last refill */
};

/* Why a packet of a sampled flow was not cloned. Names in EP_MIRROR_DROP_NAMES. */
enum ep_mirror_drop_reason {
	EP_MIRROR_DROP_RATE_LIMIT = 0, /* the token bucket was empty */
	EP_MIRROR_DROP_CLONE,	       /* bpf_clone_redirect failed (target gone, no memory) */
	EP_MIRROR_DROP_MAX,
};

#define EP_MIRROR_DROP_NAMES { "rate_limit", "clone_failed" }

/* Per-CPU, indexed by svc_id (map ep_mirror_stats). */
struct ep_mirror_stats {
	__u64 packets; /* clones sent to the target */
	__u64 bytes;   /* their length (the original frame, before any encapsulation) */
	__u64 drops[EP_MIRROR_DROP_MAX];
	__u64 drop_bytes;
};
/* end traffic mirroring */

/* ==== DNS observation and failover (tc/tc_dns.bpf.c, tc/sock_dns.bpf.c) ==== */

#define EP_DNS_MAX_UPSTREAMS 8
#define EP_DNS_PORT 53
/* Latency histogram: bucket i counts answers that took [2^i, 2^(i+1)) us;
 * bucket 0 also takes < 1 us, the last one everything above. */
#define EP_DNS_LAT_BUCKETS 24
#define EP_DNS_SAMPLE_MAX 512 /* DNS payload bytes copied into a sample */
#define EP_DNS_PENDING_SIZE 65536
#define EP_DNS_REDIR_SIZE 65536
#define EP_DNS_SNAP_SIZE 262144

/* Key of ep_dns_upstreams: which destination addresses are the upstreams.
 * Value: struct ep_dns_upstream. */
struct ep_dns_upstream_key {
	__u32 addr[4];
	__u32 family;
};

struct ep_dns_upstream {
	__u32 idx; /* index into ep_dns_stats, 0..EP_DNS_MAX_UPSTREAMS-1 */
	__u32 flags; /* EP_DNS_UP_F_* */
};

/* Set by the agent for an upstream it suspects of hijacking: answers for
 * names in the snapshot whose addresses share nothing with it are dropped
 * (the stub retries, and in failed-over mode lands on the cache). */
#define EP_DNS_UP_F_DROP_DIVERGENT (1u << 0)
/* Set by the agent when it sees a flood of answers matching no query (a
 * spoofing attempt): such answers are dropped instead of reaching clients.
 * In cache mode every unmatched upstream answer is dropped anyway. */
#define EP_DNS_UP_F_DROP_UNMATCHED (1u << 1)

/* A query in flight (client -> upstream), for matching its answer. */
struct ep_dns_pending_key {
	__u32 client[4];
	__u32 upstream[4];
	__u16 cport; /* network order */
	__u16 txid;  /* network order */
	__u8 family;
	__u8 proto; /* IPPROTO_UDP / IPPROTO_TCP */
	__u16 pad;
};

struct ep_dns_pending {
	__u64 sent_ns; /* bpf_ktime_get_ns() */
	__u32 upstream_idx;
	__u16 flags; /* EP_DNS_PENDING_F_* */
	__u16 pad;
};

/* Set by the agent when it counted the query as a timeout; the entry stays
 * a while so a late answer is recognised as late, not as a spoofed one. */
#define EP_DNS_PENDING_F_TIMED_OUT (1u << 0)
/* Set by TC when the answer to this query arrived fragmented and was dropped
 * by the fragment rule (docs/dns-failover.md): the upstream answered, the
 * node refused the answer, so the agent does not count a timeout. The entry
 * stays so an unfragmented answer (a retry over TCP...) still matches. */
#define EP_DNS_PENDING_F_FRAG_DROPPED (1u << 1)

/* Per-CPU, indexed by upstream idx. */
struct ep_dns_stats {
	__u64 queries;	      /* distinct queries seen (first sighting only) */
	__u64 answers;	      /* answers matched to a query */
	__u64 unmatched;      /* answers from the upstream matching no query: spoofing sign */
	__u64 malformed;      /* DNS to/from the upstream that does not parse */
	__u64 redirected;     /* queries sent to the local cache instead (failed-over mode) */
	__u64 divergent;      /* answers whose addresses share nothing with the snapshot */
	__u64 divergent_dropped;
	__u64 rcode[16];
	__u64 lat[EP_DNS_LAT_BUCKETS];
	__u64 lat_sum_us;
	__u64 late;	      /* answers to queries already counted as timed out */
	__u64 unmatched_dropped;
};

/* Per-CPU, indexed by upstream idx (map ep_dns_hstats): DNS to and from the
 * upstream that needed more than the fixed IP header, and what became of it.
 * A map of its own, not fields appended to ep_dns_stats: a pinned map's value
 * size cannot change, so a new agent could not reuse the old pins. Counted
 * once per packet: answers where they arrive (ingress), queries where they
 * leave the node (egress). */
struct ep_dns_hdr_stats {
	__u64 frag_first;      /* first fragments (UDP and DNS headers in them): parsed */
	__u64 frag_later;      /* later fragments from/to the upstream: no ports, not DNS-checked */
	__u64 frag_dropped;    /* fragmented answers dropped by the fragment rule */
	__u64 ip_options;      /* IPv4 with options: parsed behind them */
	__u64 ipv6_exthdr;     /* IPv6 with extension headers: parsed behind them */
	__u64 unparsed;	       /* IPv6 header chains not walked (more than 8, truncated) */
	__u64 unparsed_dropped; /* ...of them from the upstream, dropped by the fragment rule */
	__u64 pad;
};

#define EP_DNS_MODE_UPSTREAM 0
#define EP_DNS_MODE_CACHE 1

/* ep_dns_config[0]. mode is the one switch between upstream and cache. */
struct ep_dns_config {
	__u32 mode;
	__u32 cache_family4;   /* 1 when cache_addr4 is set */
	__u32 cache_addr4;     /* the cache's IPv4 address (network order) */
	__u32 cache_family6;   /* 1 when cache_addr6 is set */
	__u32 cache_addr6[4];
	__u32 sample_every;    /* send 1 in N answers to the ring buffer (0 = none) */
	__u32 pad;
	/* Was the agent's tgid: a process id means nothing once the agent runs
	 * in a PID namespace of its own (ep_dns_exempt replaced it). Unused and
	 * kept 0; it stays so the layout, and ABI v1 pins, stay valid. */
	__u64 reserved0;
	__u64 netns_cookie;    /* sock hooks act only in the node's network namespace */
};

/* Value of ep_dns_exempt, socket storage the agent attaches to each of its
 * own DNS sockets (health probes, snapshot refreshes) before their first
 * connect/send: bpf_map_update_elem(map_fd, &socket_fd, &v, BPF_NOEXIST).
 * The socket hooks never redirect a socket that carries it, so the agent
 * keeps talking to the real upstream while the node is failed over. A
 * property of the socket, not of the process: it holds in any PID namespace
 * and cgroup, dies with the socket, and only whoever may write the pinned map
 * (root over the bpffs) can set it. */
struct ep_dns_exempt {
	__u32 owner; /* EP_DNS_EXEMPT_*: which part of the agent, for map dumps */
};

#define EP_DNS_EXEMPT_PROBE 1   /* agent/dns/dns_probe.c */
#define EP_DNS_EXEMPT_REFRESH 2 /* the snapshot refresh (cache/resolver_pool.c) */
#define EP_DNS_EXEMPT_TEST 99   /* tests/tools */

/* Redirected flows (pods): client -> original upstream, to translate the
 * cache's replies back (source = the upstream the client asked). */
struct ep_dns_redir_key {
	__u32 client[4];
	__u16 cport;
	__u8 proto;
	__u8 family;
};

struct ep_dns_redir {
	__u32 upstream[4];
	__u64 ts_ns;
};

/* Trusted snapshot for in-datapath divergence checks: key = ep_dns_name_hash()
 * of the question name, value = the addresses the snapshot has for it. */
#define EP_DNS_SNAP_ADDRS 8
struct ep_dns_snap_entry {
	__u32 n4, n6;
	__u32 a4[EP_DNS_SNAP_ADDRS];
	__u32 a6[4][4]; /* first 4 IPv6 addresses */
};

/* A sampled answer for the agent (ring buffer ep_dns_samples). */
struct ep_dns_sample {
	__u64 ts_ns;
	__u32 upstream_idx;
	__u16 len;   /* bytes of data used */
	__u8 family;
	__u8 flags;  /* EP_DNS_SAMPLE_F_* */
	__u32 client[4];
	__u32 upstream[4];
	__u8 data[EP_DNS_SAMPLE_MAX];
};

#define EP_DNS_SAMPLE_F_UNMATCHED (1u << 0)
#define EP_DNS_SAMPLE_F_DIVERGENT (1u << 1)
#define EP_DNS_SAMPLE_F_DROPPED (1u << 2)

/* canary flow health */
/* ==== (tc/tc_health.bpf.c, agent/canary/) ==== */

/* Handshake RTT histogram: bucket i counts handshakes that took
 * [2^i, 2^(i+1)) us; bucket 0 also takes < 1 us, the last one the rest. */
#define EP_HEALTH_RTT_BUCKETS 20
#define EP_HEALTH_PEND_SIZE 65536
/* Backends the tap keeps counters for (those of services it watches). */
#define EP_HEALTH_MAX_BACKENDS 8192
/* "HTTP/1.x NNN": the bytes a status code needs. */
#define EP_HEALTH_HTTP_STATUS_LEN 12

/* ep_health_svc[svc_id].flags: which services the tap watches. */
#define EP_HEALTH_F_ON (1u << 0)
#define EP_HEALTH_F_HTTP (1u << 1) /* canary.http: parse response status lines */
/* forwarding: redirect: client packets bypass TC egress, so a backend's
 * answer to a SYN is recognised by the ISN conntrack holds instead. */
#define EP_HEALTH_F_FWD_UNSEEN (1u << 2)

struct ep_health_svc {
	__u32 flags;
	__u32 pad;
};

/* ep_health_cfg[0]: how many services are watched. 0 (a node without
 * canaries) lets the tap return after one array load. */
struct ep_health_cfg {
	__u32 watched;
	__u32 pad;
};

/* Per-CPU, indexed by backend id (map ep_health_stats). Counted by TC, read
 * and differenced by the agent every window. Unanswered SYNs and UDP
 * requests are absences: the agent counts them itself from ep_health_pend. */
struct ep_health_stats {
	__u64 syn;	      /* connection attempts (first SYN of a connection) */
	__u64 syn_retrans;    /* the same SYN again: not a new attempt */
	__u64 synack;	      /* SYN answered by SYN-ACK */
	__u64 refused;	      /* SYN answered by RST */
	__u64 rst;	      /* RST from the backend on an established flow */
	__u64 late;	      /* SYN-ACK for a SYN the agent already counted unanswered */
	__u64 udp_req;	      /* UDP requests (a flow's packet with no request outstanding) */
	__u64 udp_reply;      /* ...answered */
	__u64 http_resp;      /* HTTP responses whose status line was read */
	__u64 http_5xx;	      /* ...with a 5xx status */
	__u64 http_split;     /* status lines cut across segments (reassembled) */
	__u64 http_unparsed;  /* first segments that were no HTTP/1.x status line */
	/* SYN-ACKs (answering the ISN conntrack holds) whose SYN the tap did
	 * not see: forwarding: redirect sends client packets past TC egress. */
	__u64 synack_unseen;
	__u64 rtt_sum_us;
	__u64 rtt[EP_HEALTH_RTT_BUCKETS];
};

/* A flow the tap waits on, key = struct ep_flow_key as the backend sees it
 * (src = client, dst = backend). */
#define EP_HEALTH_S_SYN_SENT 1	   /* SYN seen, no answer yet */
#define EP_HEALTH_S_SYN_TIMED_OUT 2 /* counted unanswered by the agent */
#define EP_HEALTH_S_ESTABLISHED 3  /* HTTP services: between responses */
#define EP_HEALTH_S_HTTP_WAIT 4	   /* request sent, response status not yet read */
#define EP_HEALTH_S_UDP_WAIT 5	   /* UDP request outstanding */
#define EP_HEALTH_S_UDP_TIMED_OUT 6 /* counted unanswered; the next request starts over */

struct ep_health_pend {
	__u64 ts_ns;	   /* bpf_ktime_get_ns() of the SYN / request */
	__u32 backend_id;
	__u32 isn;	   /* the SYN's sequence number (network order) */
	__u8 state;	   /* EP_HEALTH_S_* */
	__u8 nbytes;	   /* status-line bytes held in partial[] */
	__u16 pad;
	/* A power of two above the status line, so a masked index is provably
	 * inside the value. */
	__u8 partial[16];
	__u32 pad2;
};
/* The canary's runtime state per service, pinned (map ep_canary_state,
 * indexed by service id) so a restarted agent resumes it instead of
 * re-deriving the share from the config (agent/canary/canary.c). */
#define EP_CANARY_S_OVERRIDE (1u << 0)	  /* share_bp is the share, not canary.percent */
#define EP_CANARY_S_ROLLED_BACK (1u << 1) /* held at 0 until an operator sets it */
#define EP_CANARY_S_PAUSED (1u << 2)	  /* the ramp does not advance */
#define EP_CANARY_S_PROMOTED (1u << 3)	  /* the ramp is over at 100% */

struct ep_canary_state {
	__u64 cfg_sig;	     /* of the canary config (percent, steps) it belongs to */
	__u64 step_since_ns; /* CLOCK_MONOTONIC when the current step began */
	__u32 flags;	     /* EP_CANARY_S_* */
	__u32 share_bp;
	__u32 step;	     /* ramp: index into canary.steps */
	__u32 rollbacks;     /* since the service was created */
};
/* end canary flow health */

#endif /* EDGEPLANE_ABI_H */
