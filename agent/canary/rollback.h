/*
 * The rollback rule, apart from any map or clock so it can be tested on
 * figures alone: canary and stable outcomes gathered over the same windows,
 * judged once the canary has min_samples of them.
 *
 *   roll back  <=>  canary_ratio > max_failure_ratio
 *                   and canary_ratio > stable_ratio + margin
 *
 * The second clause is what keeps stable's own failures (a broken shared
 * dependency, a stable backend dying) from ever rolling the canary back.
 */
#ifndef EP_CANARY_ROLLBACK_H
#define EP_CANARY_ROLLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct ep_canary_side {
	uint64_t samples, failures;
};

enum ep_canary_verdict {
	EP_CANARY_WAIT = 0, /* fewer than min_samples canary outcomes: keep gathering */
	EP_CANARY_HEALTHY,
	EP_CANARY_ROLLBACK,
};

/* why gets the figures behind the verdict ("canary 7/20 failed (35.0%),
 * stable 1/180 (0.6%), bound 5.0% and stable + 2.0%"). */
enum ep_canary_verdict ep_canary_judge(const struct ep_cfg_canary_rollback *r,
				       const struct ep_canary_side *canary,
				       const struct ep_canary_side *stable, char *why,
				       size_t whylen);

const char *ep_canary_verdict_str(enum ep_canary_verdict v);

#endif
