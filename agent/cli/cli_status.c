/* Text output of the core commands: status, reload. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

void ep_cli_print_status(const struct ep_cli_command *cmd, char **argv, json_t *r)
{
	json_t *cfg = json_object_get(r, "config"), *dp = json_object_get(r, "datapath");
	json_t *ct = json_object_get(dp, "conntrack"), *ifs = json_object_get(dp, "interfaces");
	json_t *drops = json_object_get(dp, "drops"), *sv = json_object_get(r, "services"), *v;
	const char *k;
	char up[32];
	size_t i;

	human_duration(json_real_value(json_object_get(r, "uptime_seconds")), up, sizeof(up));
	printf("node        %s (edgeplane %s, up %s, %s)\n", jstr(r, "node"), jstr(r, "version"), up,
	       json_is_true(json_object_get(r, "ready")) ? "ready" : "NOT ready");
	printf("config      %s (reloads: %lld ok, %lld failed)\n", jstr(cfg, "path"),
	       jint(cfg, "reloads_ok"), jint(cfg, "reloads_failed"));
	if (json_string_value(json_object_get(cfg, "last_reload_error")))
		printf("            last reload refused: %s\n", jstr(cfg, "last_reload_error"));
	printf("datapath    bpffs %s, xdp %s, forwarding %s\n", jstr(dp, "bpffs"), jstr(dp, "xdp_mode"),
	       jstr(dp, "forwarding"));
	printf("interfaces ");
	json_array_foreach(ifs, i, v)
	{
		printf("%s %s (%s%s%s%s)", i ? "," : "", jstr(v, "name"), jstr(v, "role"),
		       jstr(v, "xdp_mode")[0] ? ", xdp " : "", jstr(v, "xdp_mode"),
		       json_is_true(json_object_get(v, "xdp_dispatcher")) ? " via libxdp dispatcher" : "");
	}
	printf("%s\n", json_array_size(ifs) ? "" : " none");
	printf("conntrack   %lld entries: %lld IPv4, %lld IPv6 (up to %lld per family; %lld expired since start)\n",
	       jint(ct, "entries"), jint(ct, "ipv4"), jint(ct, "ipv6"), jint(ct, "capacity_per_family"),
	       jint(ct, "expired_total"));
	printf("services    %lld services, %lld backends\n", jint(sv, "count"), jint(sv, "backends"));
	printf("drops      ");
	i = 0;
	json_object_foreach(drops, k, v)
	{
		printf("%s %s %lld", i++ ? "," : "", k, (long long)json_integer_value(v));
	}
	printf("\n");
	{
		json_t *dns = json_object_get(r, "dns"), *cache = json_object_get(dns, "cache");

		if (json_is_object(cache))
			printf("dns         %s; cache %s, %lld names\n", jstr(dns, "mode"),
			       jstr(json_object_get(cache, "dnsmasq"), "state"),
			       jint(json_object_get(cache, "snapshot"), "names"));
		else
			printf("dns         %s\n", jstr(dns, "mode"));
	}
	{
		json_t *certs = json_object_get(r, "certs"), *cs;
		size_t ci, n = json_array_size(certs), inst = 0, bad = 0;

		json_array_foreach(certs, ci, cs)
		{
			inst += !json_is_null(json_object_get(cs, "serial"));
			bad += !strcmp(jstr(cs, "state"), "refused") || !strcmp(jstr(cs, "state"), "error");
		}
		if (n)
			printf("certs       %zu sets, %zu installed, %zu refused or failing (edgeplane certs)\n",
			       n, inst, bad);
		else
			printf("certs       none\n");
	}
}

void ep_cli_print_reload(const struct ep_cli_command *cmd, char **argv, json_t *r)
{
	printf("config reloaded\n");
}
