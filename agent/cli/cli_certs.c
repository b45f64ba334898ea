/* Text output of `edgeplane certs`. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "util.h"

static void utc(json_t *v, char *buf, size_t len)
{
	time_t t;
	struct tm tm;

	if (!json_is_integer(v)) {
		snprintf(buf, len, "-");
		return;
	}
	t = (time_t)json_integer_value(v);
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

void ep_cli_print_certs(const struct ep_cli_command *cmd, char **argv, json_t *r)
{
	json_t *sets = json_object_get(r, "sets"), *s;
	size_t i;

	if (!json_array_size(sets)) {
		printf("no certificate sets configured\n");
		return;
	}
	json_array_foreach(sets, i, s)
	{
		json_t *rot = json_object_get(s, "rotations"), *ref = json_object_get(s, "refused");
		json_t *rel = json_object_get(s, "reload");
		char na[40], left[32] = "";

		utc(json_object_get(s, "not_after"), na, sizeof(na));
		if (json_is_integer(json_object_get(s, "expires_in_seconds")))
			human_duration((double)jint(s, "expires_in_seconds"), left, sizeof(left));
		printf("%s (%s)\n", jstr(s, "name"), jstr(s, "kind"));
		printf("  source       %s\n", jstr(s, "source"));
		printf("  target       %s\n", jstr(s, "target"));
		printf("  state        %s\n", jstr(s, "state"));
		printf("  serial       %s\n",
		       json_is_string(json_object_get(s, "serial")) ? jstr(s, "serial") : "-");
		printf("  not after    %s%s%s%s%s\n", na, left[0] ? " (in " : "", left, left[0] ? ")" : "",
		       json_is_true(json_object_get(s, "expiry_warning")) ? "  EXPIRING SOON" : "");
		printf("  last result  %s\n", jstr(s, "last_result"));
		if (json_is_object(ref))
			printf("  refused      serial %s: %s\n", jstr(ref, "serial")[0] ? jstr(ref, "serial") : "?",
			       jstr(ref, "reason"));
		printf("  reload       %s%s%s\n", jstr(rel, "kind"),
		       jstr(rel, "verify")[0] ? ", verified at " : "", jstr(rel, "verify"));
		printf("  rotations    %lld ok, %lld refused, %lld install failed, %lld reload failed\n",
		       jint(rot, "ok"), jint(rot, "refused"), jint(rot, "install_failed"),
		       jint(rot, "reload_failed"));
		if (json_is_integer(json_object_get(s, "next_renewal"))) {
			json_t *csr = json_object_get(s, "csr");
			char nr[40], in[32] = "";
			double d = (double)(jint(s, "next_renewal") - (long long)time(NULL));

			utc(json_object_get(s, "next_renewal"), nr, sizeof(nr));
			if (d > 0)
				human_duration(d, in, sizeof(in));
			printf("  next renewal %s%s%s%s\n", nr, in[0] ? " (in " : " (now)", in,
			       in[0] ? ")" : "");
			if (json_is_object(csr))
				printf("  csr          %s\n", jstr(csr, "state"));
		} else {
			printf("  next renewal when the source changes\n");
		}
	}
}
