/*
 * Per-upstream retransmission timeout, derived the way TCP derives its RTO
 * (RFC 6298): a smoothed round-trip time and its mean deviation, updated
 * from every answer's latency, and
 *
 *   rto = clamp(srtt + 4 * rttvar, floor, ceiling)
 *
 * with ceiling = dns.health.timeout_ms (also the value before the first
 * sample, like RFC 6298's initial 1 s) and floor EP_DNS_RTO_FLOOR_MS (or the
 * ceiling when that is lower). A query or probe unanswered after rto is a
 * timeout: an upstream that answers in 2 ms is judged in tens of
 * milliseconds, one that answers in 80 ms gets what it needs.
 *
 * No backoff on timeouts (RFC 6298 5.5 doubles the timer because TCP
 * retransmits; nothing is resent here): instead the probes listen on up to
 * the ceiling, and a reply that arrives after the rto still gives a sample,
 * so an upstream that became slower for good raises its own rto.
 *
 * Pure logic: integers in microseconds, no clock.
 */
#ifndef EP_DNS_RTO_H
#define EP_DNS_RTO_H

#include <stddef.h>
#include <stdint.h>

#include "edgeplane_abi.h"

/* Below this no timeout is counted: the agent scans pending queries every
 * 100 ms anyway, and a few tens of milliseconds of jitter (a busy node, a
 * softirq burst) must not read as an outage. */
#define EP_DNS_RTO_FLOOR_MS 50
/* Samples taken from one 100 ms slot of the datapath's latency histogram. */
#define EP_DNS_RTO_SLOT_SAMPLES 16

struct ep_dns_rto {
	uint64_t srtt_us, rttvar_us, rto_us;
	uint64_t floor_us, ceil_us;
	uint64_t samples;
};

void ep_dns_rto_init(struct ep_dns_rto *r, uint32_t ceil_ms);
/* A new ceiling (reloaded timeout_ms): the estimate is kept. */
void ep_dns_rto_set_ceiling(struct ep_dns_rto *r, uint32_t ceil_ms);
/* One measured round trip (RFC 6298 2.2, 2.3). */
void ep_dns_rto_sample(struct ep_dns_rto *r, uint64_t rtt_us);
/*
 * The answers of one slot from the datapath's log2 histogram (bucket i:
 * [2^i, 2^(i+1)) us; delta counts since the last read) and the exact sum of
 * their latencies: up to EP_DNS_RTO_SLOT_SAMPLES values at evenly spaced
 * quantiles, scaled so their mean is the exact mean, fed in an order that
 * does not end on the slowest. Returns the number of samples fed.
 */
size_t ep_dns_rto_from_histogram(struct ep_dns_rto *r, const uint64_t lat[EP_DNS_LAT_BUCKETS],
				 uint64_t sum_us);
static inline uint64_t ep_dns_rto_ns(const struct ep_dns_rto *r)
{
	return r->rto_us * 1000ULL;
}

#endif
