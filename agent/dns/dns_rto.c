#include "dns_rto.h"

static void recompute(struct ep_dns_rto *r)
{
	uint64_t v;

	if (!r->samples) {
		r->rto_us = r->ceil_us;
		return;
	}
	v = r->srtt_us + 4 * r->rttvar_us;
	if (v < r->floor_us)
		v = r->floor_us;
	if (v > r->ceil_us)
		v = r->ceil_us;
	r->rto_us = v;
}

void ep_dns_rto_set_ceiling(struct ep_dns_rto *r, uint32_t ceil_ms)
{
	r->ceil_us = (uint64_t)ceil_ms * 1000ULL;
	r->floor_us = (uint64_t)EP_DNS_RTO_FLOOR_MS * 1000ULL;
	if (r->floor_us > r->ceil_us)
		r->floor_us = r->ceil_us;
	recompute(r);
}

void ep_dns_rto_init(struct ep_dns_rto *r, uint32_t ceil_ms)
{
	*r = (struct ep_dns_rto){0};
	ep_dns_rto_set_ceiling(r, ceil_ms);
}

void ep_dns_rto_sample(struct ep_dns_rto *r, uint64_t rtt_us)
{
	if (!r->samples) {
		r->srtt_us = rtt_us;
		r->rttvar_us = rtt_us / 2;
	} else {
		uint64_t d = r->srtt_us > rtt_us ? r->srtt_us - rtt_us : rtt_us - r->srtt_us;

		/* beta 1/4, alpha 1/8, in that order (RFC 6298 2.3) */
		r->rttvar_us = (3 * r->rttvar_us + d) / 4;
		r->srtt_us = (7 * r->srtt_us + rtt_us) / 8;
	}
	r->samples++;
	recompute(r);
}

/* 0, 8, 4, 12, 2, ...: the bit-reversed order of 16 quantile positions, so
 * neither the fastest nor the slowest answers of a slot come last. */
static const unsigned char spread[EP_DNS_RTO_SLOT_SAMPLES] = {0, 8,  4, 12, 2, 10, 6, 14,
							      1, 9,  5, 13, 3, 11, 7, 15};

size_t ep_dns_rto_from_histogram(struct ep_dns_rto *r, const uint64_t lat[EP_DNS_LAT_BUCKETS],
				 uint64_t sum_us)
{
	uint64_t n = 0, vals[EP_DNS_RTO_SLOT_SAMPLES];
	double rep_sum = 0, scale;
	size_t k, fed = 0;

	for (int i = 0; i < EP_DNS_LAT_BUCKETS; i++)
		n += lat[i];
	if (!n)
		return 0;
	k = n < EP_DNS_RTO_SLOT_SAMPLES ? (size_t)n : EP_DNS_RTO_SLOT_SAMPLES;
	/* Quantile (j + 0.5) / k of the slot, each at its bucket's middle. */
	for (size_t j = 0; j < k; j++) {
		uint64_t want = (uint64_t)(((double)j + 0.5) * (double)n / (double)k), acc = 0;
		int b = 0;

		for (b = 0; b < EP_DNS_LAT_BUCKETS - 1; b++) {
			acc += lat[b];
			if (acc > want)
				break;
		}
		vals[j] = b ? (3ULL << b) / 2 : 1;
		rep_sum += (double)vals[j];
	}
	/* The buckets are a factor of two wide; the exact sum puts the level
	 * right, the quantiles keep the spread. */
	scale = rep_sum > 0 ? ((double)sum_us / (double)n) / (rep_sum / (double)k) : 1.0;
	for (size_t s = 0; s < EP_DNS_RTO_SLOT_SAMPLES; s++) {
		size_t j = spread[s];

		if (j >= k)
			continue;
		ep_dns_rto_sample(r, (uint64_t)((double)vals[j] * scale + 0.5));
		fed++;
	}
	return fed;
}
