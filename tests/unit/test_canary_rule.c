/*
 * The rollback rule (agent/canary/rollback.c) on figures: the bound, the
 * margin over stable, the sample minimum, and that stable's failures alone
 * never roll the canary back.
 */
#include <string.h>

#include "rollback.h"
#include "tap.h"

static const struct ep_cfg_canary_rollback R = {
	.enabled = true, .window_ms = 100, .min_samples = 20, .max_failure_bp = 500,
	.margin_bp = 200,
};

static enum ep_canary_verdict judge(uint64_t cs, uint64_t cf, uint64_t ss, uint64_t sf)
{
	struct ep_canary_side c = {cs, cf}, s = {ss, sf};
	char why[256];

	return ep_canary_judge(&R, &c, &s, why, sizeof(why));
}

int main(void)
{
	char why[256];
	struct ep_canary_side c = {20, 7}, s = {180, 1};

	tap_ok(judge(19, 19, 200, 0) == EP_CANARY_WAIT, "19 canary samples, all failed: still waiting (min 20)");
	tap_ok(judge(20, 20, 200, 0) == EP_CANARY_ROLLBACK, "20 samples all failed: rollback");
	tap_ok(judge(100, 5, 1000, 0) == EP_CANARY_HEALTHY, "exactly 5%% is not above the bound");
	tap_ok(judge(100, 6, 1000, 0) == EP_CANARY_ROLLBACK, "6%% against a clean stable: rollback");
	tap_ok(judge(100, 6, 1000, 50) == EP_CANARY_HEALTHY,
	       "6%% against stable at 5%%: within the 2%% margin, no rollback");
	tap_ok(judge(100, 8, 1000, 50) == EP_CANARY_ROLLBACK, "8%% against stable at 5%%: beyond the margin");
	tap_ok(judge(100, 7, 1000, 50) == EP_CANARY_HEALTHY, "7%% against 5%%: exactly the margin is not beyond it");
	tap_ok(judge(100, 0, 1000, 1000) == EP_CANARY_HEALTHY, "stable failing entirely, canary clean: no rollback");
	tap_ok(judge(100, 50, 1000, 600) == EP_CANARY_HEALTHY,
	       "stable worse than the canary, both above the bound: no rollback");
	tap_ok(judge(100, 6, 0, 0) == EP_CANARY_ROLLBACK, "no stable samples: compared with a clean stable");
	tap_ok(judge(0, 0, 0, 0) == EP_CANARY_WAIT, "nothing at all: waiting");
	ep_canary_judge(&R, &c, &s, why, sizeof(why));
	tap_ok(strstr(why, "canary 7/20 failed (35.0%)") && strstr(why, "stable 1/180 (0.6%)") &&
		       strstr(why, "bound 5.00%"),
	       "the reason carries the figures: %s", why);
	/* large counts do not overflow */
	tap_ok(judge(4000000000ULL, 300000000ULL, 4000000000ULL, 0) == EP_CANARY_ROLLBACK,
	       "billions of samples: no overflow");
	return tap_done();
}
