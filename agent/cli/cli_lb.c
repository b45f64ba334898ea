/* Text output of the load balancer's commands: services, backend drain|undrain. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

void ep_cli_print_services(const struct ep_cli_command *cmd, char **argv, json_t *r)
{
	json_t *s, *b;
	size_t i, j;

	if (!json_array_size(r)) {
		printf("no services configured\n");
		return;
	}
	json_array_foreach(r, i, s)
	{
		json_t *canary = json_object_get(s, "canary");
		const char *vip = jstr(s, "vip");
		int v6 = strchr(vip, ':') != NULL;

		printf("%s%s  %s%s%s:%lld/%s  backends %lld/%zu active  canary %g%%%s  flows %lld  packets %lld\n",
		       i ? "\n" : "", jstr(s, "name"), v6 ? "[" : "", vip, v6 ? "]" : "",
		       jint(s, "port"), jstr(s, "protocol"), jint(s, "active_backends"),
		       json_array_size(json_object_get(s, "backends")),
		       json_real_value(json_object_get(canary, "percent")),
		       json_is_true(json_object_get(canary, "active")) ? "" : " (no canary backend)",
		       jint(s, "flows"), jint(s, "packets"));
		printf("  %-40s %6s  %-8s %10s %12s %14s\n", "BACKEND", "WEIGHT", "STATE", "FLOWS",
		       "PACKETS", "BYTES");
		json_array_foreach(json_object_get(s, "backends"), j, b)
		{
			const char *state = json_is_true(json_object_get(b, "removed")) ? "removed"
					    : json_is_true(json_object_get(b, "drained")) ? "drained"
					    : jint(b, "weight") == 0			   ? "weight0"
											   : "active";

			printf("  %-40s %6lld  %-8s %10lld %12lld %14lld%s\n", jstr(b, "backend"),
			       jint(b, "weight"), state, jint(b, "flows"), jint(b, "packets"),
			       jint(b, "bytes"), json_is_true(json_object_get(b, "canary")) ? "  canary" : "");
		}
	}
}

/* argv: SERVICE ADDR:PORT */
void ep_cli_print_backend(const struct ep_cli_command *cmd, char **argv, json_t *r)
{
	bool drain = !strcmp(cmd->control, "backend_drain");

	printf("%s %s of service %s%s\n", drain ? "drained" : "undrained", argv[1], argv[0],
	       drain ? ": no new flows; existing flows continue" : "");
}
