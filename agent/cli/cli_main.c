/* edgeplane: the operator CLI. Talks to the agent over its control socket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent.h"
#include "cache_build.h"
#include "control.h"
#include "util.h"

#define CALL_TIMEOUT_MS 10000

struct cli {
	const char *socket;
	int json;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: edgeplane [--socket PATH] [-o text|json] COMMAND [ARGS]\n"
		"\n"
		"Commands (talk to the running edgeplane-agent):\n"
		"  status                              datapath, interfaces, services, conntrack, drops,\n"
		"                                      DNS mode and certificates at a glance\n"
		"  services                            every service and backend with live counters\n"
		"  backend drain SERVICE ADDR:PORT     no new flows to that backend; existing flows stay\n"
		"  backend undrain SERVICE ADDR:PORT   the backend takes new flows again\n"
		"  reload                              re-read the agent's config file (like SIGHUP)\n"
		"  dns status                          DNS mode, upstreams, the local cache (dnsmasq state,\n"
		"                                      snapshot names/records/age, refresh)\n"
		"  dns refresh                         rebuild the cache snapshot from the upstreams now\n"
		"  dns failover                        answer from the local cache now (drills); stays until\n"
		"                                      dns auto\n"
		"  dns failback                        send queries to the upstreams now, whatever the health\n"
		"  dns auto                            back to automatic failover\n"
		"\n"
		"Commands that do not need the agent:\n"
		"  cache build --domains FILE --resolver ADDR[:PORT] [--resolver ...] --out FILE\n"
		"                                      resolve a domain list into a dnsmasq preload file\n"
		"                                      (edgeplane cache build --help for every option)\n"
		"\n"
		"Options (anywhere on the line):\n"
		"  --socket PATH   control socket (default " EP_DEFAULT_SOCKET ", or $EDGEPLANE_SOCKET)\n"
		"  -o json         machine-readable output (stable field names; they only grow)\n"
		"  -h, --help      this text;  --version  print the version\n"
		"\n"
		"IPv6 backends are written [ADDR]:PORT. Exit status: 0 ok, 1 the agent refused or\n"
		"could not be reached, 2 usage error.\n");
}

static json_t *call(const struct cli *c, json_t *req)
{
	char err[512];
	json_t *resp = ep_control_call(c->socket, req, CALL_TIMEOUT_MS, err, sizeof(err));

	json_decref(req);
	if (!resp) {
		fprintf(stderr, "edgeplane: %s\n", err);
		return NULL;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "edgeplane: %s\n",
			json_string_value(json_object_get(resp, "error")) ?: "the agent refused");
		json_decref(resp);
		return NULL;
	}
	return resp;
}

static void print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s)
		printf("%s\n", s);
	free(s);
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k)) ?: "";
}

static long long jint(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void human_duration(double s, char *buf, size_t len)
{
	long t = (long)s;

	if (t < 60)
		snprintf(buf, len, "%lds", t);
	else if (t < 3600)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

static void print_status(json_t *r)
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
	printf("certs       %s\n", json_array_size(json_object_get(r, "certs")) ? "see edgeplane certs" : "none");
}

static void print_services(json_t *r)
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

static int simple(const struct cli *c, const char *cmd, void (*printer)(json_t *))
{
	json_t *resp = call(c, json_pack("{s:s}", "command", cmd));

	if (!resp)
		return 1;
	if (c->json)
		print_json(json_object_get(resp, "result"));
	else
		printer(json_object_get(resp, "result"));
	json_decref(resp);
	return 0;
}

static int cmd_backend(const struct cli *c, int argc, char **argv)
{
	json_t *resp;
	bool drain;

	if (argc != 3 || (strcmp(argv[0], "drain") && strcmp(argv[0], "undrain"))) {
		fprintf(stderr, "usage: edgeplane backend drain|undrain SERVICE ADDR:PORT\n");
		return 2;
	}
	drain = !strcmp(argv[0], "drain");
	resp = call(c, json_pack("{s:s, s:s, s:s}", "command", drain ? "backend_drain" : "backend_undrain",
				 "service", argv[1], "backend", argv[2]));
	if (!resp)
		return 1;
	if (c->json)
		print_json(json_object_get(resp, "result"));
	else
		printf("%s %s of service %s%s\n", drain ? "drained" : "undrained", argv[2], argv[1],
		       drain ? ": no new flows; existing flows continue" : "");
	json_decref(resp);
	return 0;
}

static void ago(double t, char *buf, size_t len)
{
	if (t <= 0) {
		snprintf(buf, len, "never");
		return;
	}
	human_duration(ep_wall_seconds() - t, buf, len);
	strncat(buf, " ago", len - strlen(buf) - 1);
}

static void print_dns(json_t *r)
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

	printf("cache       dnsmasq %s on %s:53 (pid %lld%s, %lld restarts%s%s)\n", jstr(dm, "state"),
	       jstr(c, "listen"), jint(dm, "pid"),
	       json_is_true(json_object_get(dm, "adopted")) ? ", adopted" : "", jint(dm, "restarts"),
	       json_string_value(json_object_get(dm, "last_problem")) ? ", last: " : "",
	       json_string_value(json_object_get(dm, "last_problem")) ?: "");
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
}

static int cmd_dns(const struct cli *c, int argc, char **argv)
{
	json_t *resp;

	if (argc == 1 && !strcmp(argv[0], "status"))
		return simple(c, "dns_status", print_dns);
	if (argc == 1 && (!strcmp(argv[0], "failover") || !strcmp(argv[0], "failback") ||
			  !strcmp(argv[0], "auto"))) {
		char cmd[32];

		snprintf(cmd, sizeof(cmd), "dns_%s", argv[0]);
		resp = call(c, json_pack("{s:s}", "command", cmd));
		if (!resp)
			return 1;
		if (c->json)
			print_json(json_object_get(resp, "result"));
		else
			printf("DNS override: %s\n", argv[0]);
		json_decref(resp);
		return 0;
	}
	if (argc == 1 && !strcmp(argv[0], "refresh")) {
		resp = call(c, json_pack("{s:s}", "command", "dns_refresh"));
		if (!resp)
			return 1;
		if (c->json)
			print_json(json_object_get(resp, "result"));
		else
			printf("snapshot refresh started (edgeplane dns status shows the result)\n");
		json_decref(resp);
		return 0;
	}
	fprintf(stderr, "usage: edgeplane dns status|refresh|failover|failback|auto\n");
	return 2;
}

static void print_reload(json_t *r)
{
	(void)r;
	printf("config reloaded\n");
}

int main(int argc, char **argv)
{
	struct cli c = {.socket = getenv("EDGEPLANE_SOCKET") ?: EP_DEFAULT_SOCKET};
	char **args;
	int n = 0, rc;

	/* The builder has its own options (and --help): hand it the rest of
	 * the line untouched. */
	if (argc >= 3 && !strcmp(argv[1], "cache") && !strcmp(argv[2], "build"))
		return ep_cache_build_main(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "cache")) {
		fprintf(stderr, "usage: edgeplane cache build --domains FILE --resolver ADDR[:PORT] --out FILE\n");
		return 2;
	}
	args = calloc((size_t)argc + 1, sizeof(*args));
	if (!args)
		return 1;
	/* Global options may appear anywhere ("edgeplane services -o json"). */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") || !strcmp(argv[i], "-o")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "edgeplane: %s needs a value\n", argv[i]);
				free(args);
				return 2;
			}
			if (!strcmp(argv[i], "--socket")) {
				c.socket = argv[++i];
			} else {
				i++;
				if (strcmp(argv[i], "json") && strcmp(argv[i], "text")) {
					fprintf(stderr, "edgeplane: -o takes text or json\n");
					free(args);
					return 2;
				}
				c.json = !strcmp(argv[i], "json");
			}
		} else if (!strncmp(argv[i], "--socket=", 9)) {
			c.socket = argv[i] + 9;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			free(args);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("edgeplane %s\n", EP_VERSION);
			free(args);
			return 0;
		} else {
			args[n++] = argv[i];
		}
	}
	if (n == 0) {
		usage(stderr);
		rc = 2;
	} else if (!strcmp(args[0], "status") && n == 1) {
		rc = simple(&c, "status", print_status);
	} else if (!strcmp(args[0], "services") && n == 1) {
		rc = simple(&c, "services", print_services);
	} else if (!strcmp(args[0], "reload") && n == 1) {
		rc = simple(&c, "reload", print_reload);
	} else if (!strcmp(args[0], "dns")) {
		rc = cmd_dns(&c, n - 1, args + 1);
	} else if (!strcmp(args[0], "backend")) {
		rc = cmd_backend(&c, n - 1, args + 1);
	} else {
		fprintf(stderr, "edgeplane: unknown command '%s' (see edgeplane --help)\n", args[0]);
		rc = 2;
	}
	free(args);
	return rc;
}
