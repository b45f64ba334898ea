/* Text output of the DNS commands: dns status|refresh|failover|failback|auto. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static void ago(double t, char *buf, size_t len)
{
	if (t <= 0) {
		snprintf(buf, len, "never");
		return;
	}
	human_duration(ep_wall_seconds() - t, buf, len);
	strncat(buf, " ago", len - strlen(buf) - 1);
}

/* "(pid N, adopted, N restarts, last: WHY)" of a supervised cache process. */
static void print_process(json_t *p)
{
	const char *last = json_string_value(json_object_get(p, "last_problem"));

	printf("(pid %lld%s, %lld restarts%s%s)\n", jint(p, "pid"),
	       json_is_true(json_object_get(p, "adopted")) ? ", adopted" : "", jint(p, "restarts"),
	       last ? ", last: " : "", last ?: "");
}

void ep_cli_print_dns(const struct ep_cli_command *cmd, char **argv, json_t *r)
{
	json_t *c = json_object_get(r, "cache"), *v;
	size_t i;
	char t1[48], t2[48];

	json_t *fo = json_object_get(r, "failover");

	printf("mode        %s\n", jstr(r, "mode"));
	if (!strcmp(jstr(r, "mode"), "not configured"))
		return;
	if (json_is_object(fo)) {
		char since[32];
		json_t *ks = json_object_get(fo, "kubernetes");

		human_duration(json_real_value(json_object_get(fo, "state_since_seconds")), since,
			       sizeof(since));
		printf("state       %s for %s (override: %s, %lld automatic failovers)\n", jstr(fo, "state"),
		       since, jstr(fo, "override"), jint(fo, "failovers"));
		printf("reason      %s\n", jstr(fo, "reason"));
		{
			json_t *g = json_object_get(fo, "cache_gate");
			json_t *age = json_object_get(g, "last_answer_age_seconds");
			char a2[48] = "never";

			if (json_is_number(age))
				snprintf(a2, sizeof(a2), "%.1f s ago", json_number_value(age));
			if (json_is_object(g))
				printf("cache gate  %s: answering %s (last answer %s), snapshot %lld records; %s\n",
				       json_is_true(json_object_get(g, "cache_usable")) ? "usable" : "NOT usable",
				       json_is_true(json_object_get(g, "cache_answering")) ? "yes" : "no", a2,
				       jint(g, "snapshot_records"), jstr(g, "gate"));
		}
		json_array_foreach(json_object_get(fo, "upstream_health"), i, v)
		{
			printf("upstream    %s: %s\n", jstr(v, "address"), jstr(v, "verdict"));
			printf("              %lld queries, %lld answers, %lld timeouts, %lld late, %lld unmatched, "
			       "%lld divergent, %lld redirected; p50 %.1f ms p99 %.1f ms\n",
			       jint(v, "queries"), jint(v, "answers"), jint(v, "timeouts"),
			       jint(v, "late_answers"), jint(v, "unmatched_answers"),
			       jint(v, "divergent_answers"), jint(v, "redirected_to_cache"),
			       1000 * json_real_value(json_object_get(v, "latency_p50_seconds")),
			       1000 * json_real_value(json_object_get(v, "latency_p99_seconds")));
			{
				json_t *rt = json_object_get(v, "rtt");

				if (json_is_number(json_object_get(rt, "srtt_ms")))
					printf("              rtt: srtt %.1f ms, rttvar %.1f ms -> timeout (rto) %.0f ms "
					       "(floor %.0f, ceiling %.0f; %lld samples)\n",
					       json_number_value(json_object_get(rt, "srtt_ms")),
					       json_number_value(json_object_get(rt, "rttvar_ms")),
					       json_number_value(json_object_get(rt, "rto_ms")),
					       json_number_value(json_object_get(rt, "floor_ms")),
					       json_number_value(json_object_get(rt, "ceiling_ms")), jint(rt, "samples"));
				else
					printf("              rtt: no answer yet -> timeout (rto) %.0f ms (the ceiling)\n",
					       json_number_value(json_object_get(rt, "rto_ms")));
			}
			printf("              last probe: %s\n", jstr(v, "last_probe"));
		}
		printf("kubernetes  %s%s%s\n", jstr(ks, "state"),
		       json_string_value(json_object_get(ks, "why")) ? ": " : "",
		       json_string_value(json_object_get(ks, "why")) ?: "");
	}
	printf("upstreams  ");
	json_array_foreach(json_object_get(r, "upstreams"), i, v)
		printf("%s %s", i ? "," : "", json_string_value(v));
	printf("\n");
	if (!json_is_object(c)) {
		printf("cache       not configured\n");
		return;
	}
	json_t *dm = json_object_get(c, "dnsmasq"), *snap = json_object_get(c, "snapshot");
	json_t *ref = json_object_get(c, "refresh"), *pol = json_object_get(c, "policy_answers");

	printf("cache       dnsmasq %s on %s:53 ", jstr(dm, "state"), jstr(c, "listen"));
	print_process(dm);
	if (json_is_true(json_object_get(snap, "loaded"))) {
		human_duration(json_real_value(json_object_get(snap, "file_age_seconds")), t1, sizeof(t1));
		printf("snapshot    %s: %lld names, %lld records, written %s ago, TTL %lld s\n",
		       jstr(snap, "path"), jint(snap, "names"), jint(snap, "records"), t1, jint(c, "ttl"));
	} else {
		printf("snapshot    %s: not loaded (missing?)\n", jstr(snap, "path"));
	}
	if (json_is_true(json_object_get(ref, "configured"))) {
		ago(json_real_value(json_object_get(ref, "last_at")), t2, sizeof(t2));
		printf("refresh     every %lld s%s; last: %s (%s)\n", jint(ref, "interval_seconds"),
		       json_is_true(json_object_get(ref, "running")) ? ", running now" : "",
		       jstr(ref, "last_result"), t2);
	} else {
		printf("refresh     off (needs dns.cache.domains and refresh_s > 0)\n");
	}
	printf("policy      %lld NODATA (known name, missing type), %lld SERVFAIL (not in the snapshot)\n",
	       jint(pol, "nodata"), jint(pol, "servfail"));
	if (json_is_object(json_object_get(c, "responder"))) {
		printf("responder   %s ", jstr(json_object_get(c, "responder"), "state"));
		print_process(json_object_get(c, "responder"));
	}
	{
		json_t *sp = json_object_get(c, "spawner");

		if (json_is_object(sp) && !strcmp(jstr(sp, "kind"), "remote"))
			if (json_is_true(json_object_get(sp, "reachable")))
				printf("spawner     %s: reachable (the cache container starts the helpers)\n",
				       jstr(sp, "socket"));
			else
				printf("spawner     UNREACHABLE (%s): a helper that dies stays down until it is back\n",
				       jstr(sp, "problem"));
		else if (json_is_object(sp))
			printf("spawner     the agent's own\n");
	}
	{
		json_t *fb = json_object_get(c, "fallback"), *rs = json_object_get(fb, "resolvers"), *addr;
		size_t k;

		if (json_array_size(rs)) {
			printf("fallback   ");
			json_array_foreach(rs, k, addr)
				printf(" %s", json_string_value(addr));
			printf(": %lld answered, %lld unanswered (SERVFAIL)", jint(fb, "answered"),
			       jint(fb, "failed"));
			if (json_is_string(json_object_get(fb, "trust_anchor")))
				printf(", %lld bogus (SERVFAIL); DNSSEC anchor %s", jint(fb, "bogus"),
				       jstr(fb, "trust_anchor"));
			printf("\n");
		}
	}
}

/* "DNS override: failover": the command's last word, as typed */
void ep_cli_print_dns_override(const struct ep_cli_command *cmd, char **argv, json_t *r)
{
	printf("DNS override: %s\n", strrchr(cmd->words, ' ') + 1);
}

void ep_cli_print_dns_refresh(const struct ep_cli_command *cmd, char **argv, json_t *r)
{
	printf("snapshot refresh started (edgeplane dns status shows the result)\n");
}
