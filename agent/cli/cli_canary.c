/* Text form of `edgeplane canary status|set` (the JSON is the agent's,
 * agent/canary/canary.c). */
#include <stdio.h>

#include "cli.h"

static void side(const char *name, json_t *o)
{
	printf("%s %lld/%lld failed (%.1f%%)", name, jint(o, "failures"), jint(o, "samples"),
	       100.0 * json_real_value(json_object_get(o, "failure_ratio")));
}

void ep_cli_print_canary(const struct ep_cli_command *cmd, char **argv, json_t *r)
{
	size_t i, k;
	json_t *s, *b;

	if (!json_array_size(r)) {
		printf("no service has canary backends\n");
		return;
	}
	json_array_foreach(r, i, s) {
		json_t *steps = json_object_get(s, "steps"), *rb = json_object_get(s, "rollback");
		json_t *last = json_object_get(s, "last_judged"), *dec = json_object_get(s, "last_decision");
		json_t *live = json_object_get(s, "live");

		printf("%s  share %g%%", jstr(s, "service"),
		       json_real_value(json_object_get(s, "share_percent")));
		if (json_array_size(steps)) {
			printf("  step %lld of %zu", jint(s, "step"), json_array_size(steps));
			if (json_real_value(json_object_get(s, "next_step_in_s")) > 0)
				printf(" (next in %.0fs)",
				       json_real_value(json_object_get(s, "next_step_in_s")));
		}
		if (json_is_true(json_object_get(s, "rolled_back")))
			printf("  ROLLED BACK (held at 0 until 'edgeplane canary set')");
		if (json_is_true(json_object_get(s, "paused")))
			printf("  paused");
		if (json_is_true(json_object_get(s, "promoted")))
			printf("  promoted");
		printf("  rollbacks %lld\n", jint(s, "rollbacks"));
		printf("  rule: %s, window %lld ms, min %lld samples, bound %g, margin %g, on_rollback %s\n",
		       json_is_true(json_object_get(rb, "enabled")) ? "on" : "off",
		       jint(rb, "window_ms"), jint(rb, "min_samples"),
		       json_real_value(json_object_get(rb, "max_failure_ratio")),
		       json_real_value(json_object_get(rb, "margin")), jstr(s, "on_rollback"));
		printf("  live: ");
		side("canary", json_object_get(live, "canary"));
		printf(", ");
		side("stable", json_object_get(live, "stable"));
		printf("\n");
		if (json_is_object(last)) {
			printf("  last judged (%s): ", jstr(last, "verdict"));
			side("canary", json_object_get(last, "canary"));
			printf(", ");
			side("stable", json_object_get(last, "stable"));
			printf("\n");
		}
		if (json_is_object(dec))
			printf("  last decision: %s\n", jstr(dec, "what"));
		json_array_foreach(json_object_get(s, "backends"), k, b) {
			json_t *f = json_object_get(b, "failures");

			printf("    %-24s %-6s attempts %lld answered %lld refused %lld unanswered %lld "
			       "rst %lld 5xx %lld rtt %.2f ms\n",
			       jstr(b, "backend"), json_is_true(json_object_get(b, "canary")) ? "canary" : "stable",
			       jint(b, "attempts"), jint(b, "answered"), jint(b, "refused"),
			       jint(f, "syn_unanswered"), jint(b, "rst"), jint(b, "http_5xx"),
			       json_real_value(json_object_get(b, "rtt_avg_ms")));
		}
	}
}
