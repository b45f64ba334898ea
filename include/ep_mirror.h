/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Traffic mirroring arithmetic shared by tc/tc_mirror.bpf.c and user space:
 * which flows are sampled, and the token bucket that caps mirrored bytes.
 * User space needs the very same functions to predict the sampled flows
 * (tests, tests/tools/ep_mirror_pick) and to test the bucket without a
 * kernel, so they live here and nowhere else.
 */
#ifndef EP_MIRROR_H
#define EP_MIRROR_H

#include "edgeplane_abi.h"
#include "ep_hash.h"

#define EP_HASH_SEED_MIRROR 0x5eed0003u
#define EP_NS_PER_S 1000000000ULL
/* Idle time credited at most: with EP_MIRROR_MAX_RATE the refill product
 * stays below 2^64, and after a minute the bucket is full anyway. */
#define EP_MIRROR_MAX_IDLE_NS (60ULL * EP_NS_PER_S)

/*
 * The sampling hash of a flow, from its conntrack key (client -> VIP): both
 * directions and both sides of the NAT rebuild the same key, so a flow is
 * mirrored whole or not at all. Its own seed: with the flow hash that picks
 * the Maglev slot and the canary split, mirrored flows would be exactly the
 * canary's flows (sticky: flow) or cluster on some backends.
 */
EP_INLINE __u32 ep_mirror_hash(const struct ep_flow_key *k)
{
	__u32 ports = ((__u32)k->sport << 16) | k->dport;

	if (k->family == EP_FAMILY_V4)
		return ep_jhash_3words(k->src[0], ports, k->proto, EP_HASH_SEED_MIRROR);
	return ep_jhash_5words(k->src[0], k->src[1], k->src[2], k->src[3], ports ^ k->proto,
			       EP_HASH_SEED_MIRROR);
}

EP_INLINE int ep_mirror_sampled(__u32 hash, __u32 percent_bp)
{
	return hash % EP_BP_MAX < percent_bp;
}

/*
 * Token bucket: refills *tokens at rate bytes/s since *last_ns (up to
 * burst), then takes len bytes if there are that many. Returns 1 when the
 * packet may be cloned. A packet that does not fit takes nothing, so a
 * flood of big packets still lets small ones through as credit builds.
 * Callers serialise (bpf_spin_lock in BPF).
 */
EP_INLINE int ep_mirror_tb_take(__u64 *tokens, __u64 *last_ns, __u64 now, __u64 rate,
				__u64 burst, __u64 len)
{
	if (now > *last_ns && rate) {
		__u64 idle = now - *last_ns;
		__u64 part, add;

		if (idle > EP_MIRROR_MAX_IDLE_NS)
			idle = EP_MIRROR_MAX_IDLE_NS;
		/* whole seconds, then the rest: no 64-bit overflow below EP_MIRROR_MAX_RATE */
		part = (idle % EP_NS_PER_S) * rate;
		add = (idle / EP_NS_PER_S) * rate + part / EP_NS_PER_S;
		if (*tokens + add >= burst) {
			*tokens = burst;
			*last_ns = now;
		} else if (add) {
			*tokens += add;
			/* The fraction of a byte not credited stays owed: at a low
			 * rate under a flood every refill would round to 0. */
			*last_ns = now - (part % EP_NS_PER_S) / rate;
		}
	}
	if (*tokens < len)
		return 0;
	*tokens -= len;
	return 1;
}

#endif /* EP_MIRROR_H */
