/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Maps of the DNS programs (tc/tc_dns.bpf.c, tc/sock_dns.bpf.c). Like
 * ep_maps.bpf.h, every object declares its own copy and the agent pins the
 * ep_* ones by name under <bpffs>/maps, so the TC and socket programs and the
 * agent see one set of maps, and the maps survive agent restarts.
 *
 * Maps whose names do not start with "ep_" are per-object scratch state the
 * agent never pins (the rate limiter and the parse buffer below).
 */
#ifndef EP_DNS_MAPS_BPF_H
#define EP_DNS_MAPS_BPF_H

#include "edgeplane_abi.h"
#include "ep_bpf.h"

/* Which addresses are the upstreams (IPv4 and IPv6 addresses of up to
 * EP_DNS_MAX_UPSTREAMS resolvers). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EP_DNS_MAX_UPSTREAMS * 2);
	__type(key, struct ep_dns_upstream_key);
	__type(value, struct ep_dns_upstream);
} ep_dns_upstreams SEC(".maps");

/* Queries in flight. LRU: a flood of queries that are never answered pushes
 * out the oldest entries instead of failing inserts; the agent scans it and
 * counts entries older than the timeout as timeouts (and deletes them). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EP_DNS_PENDING_SIZE);
	__type(key, struct ep_dns_pending_key);
	__type(value, struct ep_dns_pending);
} ep_dns_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EP_DNS_MAX_UPSTREAMS);
	__type(key, __u32);
	__type(value, struct ep_dns_stats);
} ep_dns_stats SEC(".maps");

/* Fragments, IPv4 options, IPv6 extension headers (struct ep_dns_hdr_stats). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EP_DNS_MAX_UPSTREAMS);
	__type(key, __u32);
	__type(value, struct ep_dns_hdr_stats);
} ep_dns_hstats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ep_dns_config);
} ep_dns_config SEC(".maps");

/* Pods' flows redirected to the cache: client addr/port/proto -> the
 * upstream it asked, to translate the cache's replies back. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EP_DNS_REDIR_SIZE);
	__type(key, struct ep_dns_redir_key);
	__type(value, struct ep_dns_redir);
} ep_dns_redir SEC(".maps");

/* The trusted snapshot, ep_dns_name_hash -> addresses. Written by the agent
 * only; not preallocated, so an empty or small snapshot costs no memory
 * (preallocated, 262144 entries would pin ~40 MiB). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EP_DNS_SNAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct ep_dns_snap_entry);
} ep_dns_snap SEC(".maps");

/* Sampled answers (struct ep_dns_sample) for the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} ep_dns_samples SEC(".maps");

/* Socket hooks: the upstream a redirected socket asked for, as the
 * application gave it (struct ep_endpoint: addr, port (network order),
 * proto, family EP_FAMILY_V4 for a sockaddr_in, EP_FAMILY_V6 for a
 * sockaddr_in6, v4-mapped included), so recvmsg/getpeername can report it
 * back instead of the cache. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ep_endpoint);
} ep_dns_sk SEC(".maps");

/* Socket hooks: the agent's own DNS sockets, never redirected (struct
 * ep_dns_exempt in edgeplane_abi.h). Written from user space only, keyed by
 * the socket's fd there; freed with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ep_dns_exempt);
} ep_dns_exempt SEC(".maps");

/* The upstream entry of a DNS server address, or NULL when it is not one of
 * the configured upstreams: TC asks it of packets, the socket hooks of
 * connect/sendmsg destinations. */
static __always_inline struct ep_dns_upstream *ep_dns_upstream_of(const __u32 *addr, __u32 family)
{
	struct ep_dns_upstream_key k = {};

	ep_addr_copy(k.addr, addr, 4);
	k.family = family;
	return bpf_map_lookup_elem(&ep_dns_upstreams, &k);
}

#endif /* EP_DNS_MAPS_BPF_H */
