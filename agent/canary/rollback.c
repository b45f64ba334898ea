/* See rollback.h. Integer arithmetic only: ratios are compared by
 * cross-multiplying in basis points, so no rounding decides a rollback. */
#include "rollback.h"

#include <stdio.h>

static double pct(uint64_t f, uint64_t s)
{
	return s ? 100.0 * (double)f / (double)s : 0.0;
}

enum ep_canary_verdict ep_canary_judge(const struct ep_cfg_canary_rollback *r,
				       const struct ep_canary_side *c,
				       const struct ep_canary_side *st, char *why, size_t whylen)
{
	unsigned __int128 lhs, rhs;
	bool over_bound, over_stable;

	if (c->samples < r->min_samples) {
		snprintf(why, whylen, "canary %llu/%llu samples: waiting for %u",
			 (unsigned long long)c->failures, (unsigned long long)c->samples,
			 r->min_samples);
		return EP_CANARY_WAIT;
	}
	/* cf/cs > max/10000 */
	over_bound = (unsigned __int128)c->failures * 10000 >
		     (unsigned __int128)r->max_failure_bp * c->samples;
	/* cf/cs > sf/ss + margin/10000, i.e. 10000*(cf*ss - sf*cs) > margin*cs*ss;
	 * a stable side without samples counts as failure-free. */
	if (st->samples) {
		lhs = (unsigned __int128)10000 * c->failures * st->samples;
		rhs = (unsigned __int128)10000 * st->failures * c->samples +
		      (unsigned __int128)r->margin_bp * c->samples * st->samples;
	} else {
		lhs = (unsigned __int128)10000 * c->failures;
		rhs = (unsigned __int128)r->margin_bp * c->samples;
	}
	over_stable = lhs > rhs;
	snprintf(why, whylen,
		 "canary %llu/%llu failed (%.1f%%), stable %llu/%llu (%.1f%%); bound %.2f%% and "
		 "stable + %.2f%%",
		 (unsigned long long)c->failures, (unsigned long long)c->samples,
		 pct(c->failures, c->samples), (unsigned long long)st->failures,
		 (unsigned long long)st->samples, pct(st->failures, st->samples),
		 r->max_failure_bp / 100.0, r->margin_bp / 100.0);
	return over_bound && over_stable ? EP_CANARY_ROLLBACK : EP_CANARY_HEALTHY;
}

const char *ep_canary_verdict_str(enum ep_canary_verdict v)
{
	switch (v) {
	case EP_CANARY_WAIT:
		return "waiting";
	case EP_CANARY_HEALTHY:
		return "healthy";
	case EP_CANARY_ROLLBACK:
		return "rollback";
	}
	return "?";
}
