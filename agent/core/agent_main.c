/* edgeplane-agent: the node daemon. */
#include <getopt.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "config.h"
#include "log.h"
#include "policy_process.h"
#include "spawn.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: edgeplane-agent --config FILE [options]\n"
		"\n"
		"Runs the edgeplane node agent in the foreground: loads the XDP/TC datapath,\n"
		"pins its maps under datapath.bpffs, applies FILE and keeps it applied.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE      configuration file (YAML, see docs/config.md)\n"
		"      --check-config     validate FILE exactly as a start would parse it, print every\n"
		"                         problem as FILE:LINE: KEY: MESSAGE, exit 0 (valid) or 2;\n"
		"                         touches nothing (missing interfaces are reported as notes,\n"
		"                         since the check may run on another host)\n"
		"      --log-format FMT   text (default) or json (one JSON object per line)\n"
		"      --log-level LEVEL  debug, info (default), warn or error\n"
		"      --detach-on-exit   on SIGTERM/SIGINT detach every program and remove the pins;\n"
		"                         by default the datapath stays attached and forwarding\n"
		"      --no-seccomp       do not confine the agent with its seccomp filter (to debug\n"
		"                         a \"seccomp: forbidden system call\" death); on by default\n"
		"      --spawner SOCKET   start the DNS cache's helpers (dnsmasq, the policy responder)\n"
		"                         through the spawner server listening on SOCKET, so they\n"
		"                         outlive the agent's container (the Helm chart sets it);\n"
		"                         by default the agent's own spawner starts them\n"
		"      --spawner-listen SOCKET\n"
		"                         run as the cache's spawner server instead of the agent:\n"
		"                         listen on SOCKET (mode 0600) and start and reap the\n"
		"                         programs an agent asks for; no --config (the Helm\n"
		"                         chart's \"cache\" container)\n"
		"  -V, --version          print the version\n"
		"  -h, --help             this text\n"
		"\n"
		"Signals: SIGHUP reloads FILE (so does any change to FILE); a bad reload is refused\n"
		"and the running config keeps serving. SIGTERM/SIGINT stop the agent.\n"
		"\n"
		"Exit status: 0 clean stop, 1 start failure, 2 bad config or usage.\n");
}

static int check_config(const char *path)
{
	struct ep_cfg_errors errs = {};
	struct ep_config cfg = {};
	size_t n_be = 0;

	if (ep_config_load(path, &cfg, &errs, NULL)) {
		ep_cfg_errors_print(&errs, path, stderr);
		fprintf(stderr, "%s: %zu problem%s\n", path, errs.n, errs.n == 1 ? "" : "s");
		ep_cfg_errors_free(&errs);
		return 2;
	}
	for (size_t i = 0; i < cfg.n_services; i++)
		n_be += cfg.services[i].n_backends;
	for (size_t i = 0; i < cfg.n_ifaces; i++)
		if (!if_nametoindex(cfg.ifaces[i].name))
			fprintf(stderr, "%s:%d: note: interfaces[%zu]: no interface '%s' here; the agent would not start on this host\n",
				path, cfg.ifaces[i].line, i, cfg.ifaces[i].name);
	printf("%s: OK (%zu services, %zu backends, %zu interfaces)\n", path, cfg.n_services, n_be,
	       cfg.n_ifaces);
	ep_config_free(&cfg);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'k'},
		{"log-format", required_argument, NULL, 'f'},
		{"log-level", required_argument, NULL, 'l'},
		{"detach-on-exit", no_argument, NULL, 'd'},
		{"no-seccomp", no_argument, NULL, 'S'},
		{"spawner", required_argument, NULL, 'P'},
		{"spawner-listen", required_argument, NULL, 'L'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	struct ep_agent_opts opts = {};
	enum ep_log_level level = EP_LOG_INFO;
	const char *listen = NULL;
	int json = 0, check = 0, c;

	/* Hidden: the cache's policy responder as a process of its own, started
	 * and supervised by the agent (docs/dns-cache.md). */
	if (argc > 1 && !strcmp(argv[1], EP_POLICY_PROCESS_FLAG))
		return ep_policy_process_main(argc, argv);
	while ((c = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opts.config_path = optarg;
			break;
		case 'k':
			check = 1;
			break;
		case 'f':
			if (strcmp(optarg, "json") && strcmp(optarg, "text")) {
				fprintf(stderr, "edgeplane-agent: --log-format must be text or json\n");
				return 2;
			}
			json = !strcmp(optarg, "json");
			break;
		case 'l':
			if (ep_log_level_parse(optarg, &level)) {
				fprintf(stderr, "edgeplane-agent: --log-level must be debug, info, warn or error\n");
				return 2;
			}
			break;
		case 'd':
			opts.detach_on_exit = true;
			break;
		case 'S':
			opts.no_seccomp = true;
			break;
		case 'P':
		case 'L':
			if (optarg[0] != '/' || strlen(optarg) >= 108) {
				fprintf(stderr, "edgeplane-agent: --%s must be an absolute path shorter than 108 bytes\n",
					c == 'P' ? "spawner" : "spawner-listen");
				return 2;
			}
			if (c == 'P')
				opts.spawner_path = optarg;
			else
				listen = optarg;
			break;
		case 'V':
			printf("edgeplane-agent %s\n", EP_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "edgeplane-agent: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (listen) {
		if (opts.config_path || opts.spawner_path || check) {
			fprintf(stderr, "edgeplane-agent: --spawner-listen runs the spawner server alone: no --config, --check-config or --spawner\n");
			return 2;
		}
		ep_log_setup(json, level);
		return ep_spawner_serve(listen);
	}
	if (!opts.config_path) {
		fprintf(stderr, "edgeplane-agent: --config FILE is required\n");
		usage(stderr);
		return 2;
	}
	if (check)
		return check_config(opts.config_path);
	opts.log_json = json;
	opts.argv = argv;
	ep_log_setup(json, level);
	ep_log_hook_libs();
	return ep_agent_run(&opts);
}
