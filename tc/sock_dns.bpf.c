// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * edgeplane DNS failover for processes on the node itself: cgroup
 * socket-address hooks. Pods' DNS is redirected in TC (tc_dns.bpf.c); the
 * node's own processes talk to the upstream through local sockets, whose
 * packets to a local cache never cross a TC hook that could rewrite them
 * both ways, so here the socket calls themselves are translated:
 *
 *   connect4/6, sendmsg4/6   destination upstream:53 -> cache:53, and the
 *                            socket remembers the upstream (ep_dns_sk);
 *   recvmsg4/6, getpeername4/6
 *                            source/peer cache:53 -> the remembered upstream,
 *                            so the application sees the resolver it asked.
 *
 * Only while failed over (ep_dns_config.mode == EP_DNS_MODE_CACHE), only in
 * the network namespace ep_dns_config.netns_cookie names (attaching at a
 * cgroup shared with other namespaces changes nothing there), never for the
 * agent's own DNS sockets (they carry ep_dns_exempt: its probes must reach the
 * real upstream, or it would be probing its own cache), only for UDP/TCP to an address of ep_dns_upstreams on port 53, and only
 * when the cache has an address of that family. recvmsg/getpeername act
 * only on sockets redirected here (they carry ep_dns_sk), also after
 * failback: answers still in flight keep their upstream source.
 *
 * IPv4-mapped IPv6 destinations (dual-stack sockets) are IPv4 upstreams and
 * go to the IPv4 cache address, mapped.
 *
 * Every program returns 1 (allow): redirect or not, the call goes on.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "ep_bpf.h"
#include "ep_dns_maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EP_SOCK_ALLOW 1

/* The configuration when this call may be redirected at all. */
static __always_inline struct ep_dns_config *ep_sock_cfg_active(struct bpf_sock_addr *ctx)
{
	struct ep_dns_config *cfg;
	__u32 zero = 0;

	if (ctx->user_port != bpf_htons(EP_DNS_PORT))
		return NULL;
	if (ctx->protocol != IPPROTO_UDP && ctx->protocol != IPPROTO_TCP)
		return NULL;
	cfg = bpf_map_lookup_elem(&ep_dns_config, &zero);
	if (!cfg || cfg->mode != EP_DNS_MODE_CACHE)
		return NULL;
	/* An unset cookie (0) matches no namespace: nothing happens until the
	 * agent says where. */
	if (bpf_get_netns_cookie(ctx) != cfg->netns_cookie)
		return NULL;
	/* The agent marks its sockets rather than being recognised by pid: a
	 * pid is only meaningful in one PID namespace, and the agent in a
	 * container sees itself as pid 1 while the kernel reports the host's. */
	if (bpf_sk_storage_get(&ep_dns_exempt, ctx->sk, 0, 0))
		return NULL;
	return cfg;
}

/* Remembers what the application asked for; 0 on success. Without the
 * memory nothing could be translated back, so then nothing is redirected. */
static __always_inline int ep_sock_remember(struct bpf_sock_addr *ctx, const __u32 *addr,
					    __u8 family)
{
	struct ep_endpoint *orig;

	orig = bpf_sk_storage_get(&ep_dns_sk, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return -1;
	ep_addr_copy(orig->addr, addr, 4);
	orig->port = bpf_htons(EP_DNS_PORT);
	orig->proto = ctx->protocol;
	orig->family = family;
	return 0;
}

static __always_inline void ep_sock_count(const struct ep_dns_upstream *up)
{
	__u32 idx = up->idx;
	struct ep_dns_stats *st = bpf_map_lookup_elem(&ep_dns_stats, &idx);

	/* Process context: TC may update the same per-CPU slot from a softirq
	 * that interrupts us, so the add must be atomic. */
	if (st)
		__sync_fetch_and_add(&st->redirected, 1);
}

static __always_inline int ep_is_v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/* connect4 / sendmsg4: upstream:53 -> cache:53. */
static __always_inline int ep_sock_redirect4(struct bpf_sock_addr *ctx)
{
	struct ep_dns_config *cfg = ep_sock_cfg_active(ctx);
	struct ep_dns_upstream *up;
	__u32 dst[4] = {};

	if (!cfg || !cfg->cache_family4 || !cfg->cache_addr4)
		return EP_SOCK_ALLOW;
	dst[0] = ctx->user_ip4;
	up = ep_dns_upstream_of(dst, EP_FAMILY_V4);
	if (!up || ep_sock_remember(ctx, dst, EP_FAMILY_V4))
		return EP_SOCK_ALLOW;
	ctx->user_ip4 = cfg->cache_addr4;
	ep_sock_count(up);
	return EP_SOCK_ALLOW;
}

/* connect6 / sendmsg6: IPv6 upstream -> IPv6 cache address; IPv4-mapped
 * upstream -> IPv4-mapped cache address. */
static __always_inline int ep_sock_redirect6(struct bpf_sock_addr *ctx)
{
	struct ep_dns_config *cfg = ep_sock_cfg_active(ctx);
	struct ep_dns_upstream *up;
	__u32 dst[4], to[4], key[4] = {};

	if (!cfg)
		return EP_SOCK_ALLOW;
	dst[0] = ctx->user_ip6[0];
	dst[1] = ctx->user_ip6[1];
	dst[2] = ctx->user_ip6[2];
	dst[3] = ctx->user_ip6[3];
	if (ep_is_v4mapped(dst)) {
		if (!cfg->cache_family4 || !cfg->cache_addr4)
			return EP_SOCK_ALLOW;
		key[0] = dst[3];
		up = ep_dns_upstream_of(key, EP_FAMILY_V4);
		to[0] = 0;
		to[1] = 0;
		to[2] = bpf_htonl(0xffff);
		to[3] = cfg->cache_addr4;
	} else {
		if (!cfg->cache_family6)
			return EP_SOCK_ALLOW;
		up = ep_dns_upstream_of(dst, EP_FAMILY_V6);
		ep_addr_copy(to, cfg->cache_addr6, 4);
	}
	if (!up || ep_sock_remember(ctx, dst, EP_FAMILY_V6))
		return EP_SOCK_ALLOW;
	ctx->user_ip6[0] = to[0];
	ctx->user_ip6[1] = to[1];
	ctx->user_ip6[2] = to[2];
	ctx->user_ip6[3] = to[3];
	ep_sock_count(up);
	return EP_SOCK_ALLOW;
}

/* What a socket redirected here asked for (NULL for any other socket, and
 * for anything but port 53). */
static __always_inline struct ep_endpoint *ep_sock_orig(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port != bpf_htons(EP_DNS_PORT))
		return NULL;
	return bpf_sk_storage_get(&ep_dns_sk, ctx->sk, 0, 0);
}

/* recvmsg4 / getpeername4: cache:53 -> the upstream. */
static __always_inline int ep_sock_restore4(struct bpf_sock_addr *ctx)
{
	struct ep_endpoint *orig = ep_sock_orig(ctx);
	struct ep_dns_config *cfg;
	__u32 zero = 0;

	if (!orig || orig->family != EP_FAMILY_V4)
		return EP_SOCK_ALLOW;
	cfg = bpf_map_lookup_elem(&ep_dns_config, &zero);
	if (!cfg || !cfg->cache_family4 || ctx->user_ip4 != cfg->cache_addr4)
		return EP_SOCK_ALLOW;
	ctx->user_ip4 = orig->addr[0];
	return EP_SOCK_ALLOW;
}

/* recvmsg6 / getpeername6: cache:53 (IPv6, or IPv4-mapped) -> the upstream
 * as the application gave it. A dual-stack socket that sent to a mapped
 * address went through sendmsg4 (the kernel hands mapped destinations to
 * the IPv4 code), so its record is IPv4: report it mapped. */
static __always_inline int ep_sock_restore6(struct bpf_sock_addr *ctx)
{
	struct ep_endpoint *orig = ep_sock_orig(ctx);
	struct ep_dns_config *cfg;
	__u32 src[4], to[4], zero = 0;

	if (!orig)
		return EP_SOCK_ALLOW;
	cfg = bpf_map_lookup_elem(&ep_dns_config, &zero);
	if (!cfg)
		return EP_SOCK_ALLOW;
	src[0] = ctx->user_ip6[0];
	src[1] = ctx->user_ip6[1];
	src[2] = ctx->user_ip6[2];
	src[3] = ctx->user_ip6[3];
	if (ep_is_v4mapped(src)) {
		if (!cfg->cache_family4 || src[3] != cfg->cache_addr4)
			return EP_SOCK_ALLOW;
		if (orig->family == EP_FAMILY_V4) {
			to[0] = 0;
			to[1] = 0;
			to[2] = bpf_htonl(0xffff);
			to[3] = orig->addr[0];
		} else if (ep_is_v4mapped(orig->addr)) {
			ep_addr_copy(to, orig->addr, 4);
		} else {
			return EP_SOCK_ALLOW;
		}
	} else {
		if (!cfg->cache_family6 || !ep_addr_eq(src, cfg->cache_addr6) ||
		    orig->family != EP_FAMILY_V6 || ep_is_v4mapped(orig->addr))
			return EP_SOCK_ALLOW;
		ep_addr_copy(to, orig->addr, 4);
	}
	ctx->user_ip6[0] = to[0];
	ctx->user_ip6[1] = to[1];
	ctx->user_ip6[2] = to[2];
	ctx->user_ip6[3] = to[3];
	return EP_SOCK_ALLOW;
}

SEC("cgroup/connect4")
int ep_sock_dns_connect4(struct bpf_sock_addr *ctx)
{
	return ep_sock_redirect4(ctx);
}

SEC("cgroup/connect6")
int ep_sock_dns_connect6(struct bpf_sock_addr *ctx)
{
	return ep_sock_redirect6(ctx);
}

SEC("cgroup/sendmsg4")
int ep_sock_dns_sendmsg4(struct bpf_sock_addr *ctx)
{
	return ep_sock_redirect4(ctx);
}

SEC("cgroup/sendmsg6")
int ep_sock_dns_sendmsg6(struct bpf_sock_addr *ctx)
{
	return ep_sock_redirect6(ctx);
}

SEC("cgroup/recvmsg4")
int ep_sock_dns_recvmsg4(struct bpf_sock_addr *ctx)
{
	return ep_sock_restore4(ctx);
}

SEC("cgroup/recvmsg6")
int ep_sock_dns_recvmsg6(struct bpf_sock_addr *ctx)
{
	return ep_sock_restore6(ctx);
}

SEC("cgroup/getpeername4")
int ep_sock_dns_getpeername4(struct bpf_sock_addr *ctx)
{
	return ep_sock_restore4(ctx);
}

SEC("cgroup/getpeername6")
int ep_sock_dns_getpeername6(struct bpf_sock_addr *ctx)
{
	return ep_sock_restore6(ctx);
}
