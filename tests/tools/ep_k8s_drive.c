// SPDX-License-Identifier: GPL-2.0
/*
 * ep_k8s_drive - drives the agent's Kubernetes client (agent/k8s/) for
 * tests/e2e/k8s_client.sh, against tests/k8s/fake_apiserver.py.
 *
 *   ep_k8s_drive resolve --enabled auto|true|false [--api-server URL]
 *                [--token-file F] [--ca-file F] [--node N] [--namespace NS]
 *       runs ep_k8s_resolve (with the process environment) and prints
 *       rc=, api_server=, token_file=, ca_file=, namespace=, err= lines.
 *
 *   ep_k8s_drive --api-server URL --token-file F --ca-file F --node N
 *                [--timeout-ms N] [--forbidden-retry-ms N] [--backoff-max-ms N]
 *                [--label KEY] [--log-level debug|info|warn] CMD... | -
 *       runs commands, given as arguments or (with "-") one per line on
 *       stdin, and answers each with one line on stdout, "ok ..." or
 *       "err ...". The exit status is 1 if any command failed.
 *
 * Commands:
 *   start                         ep_k8s_start (implicit before the first use)
 *   unhealthy [REASON [MESSAGE]]  ep_k8s_set_dns_state(true, ...); "ok set_us=T"
 *   healthy [REASON [MESSAGE]]    ep_k8s_set_dns_state(false, ...)
 *   burst N                       N alternating calls; "ok max_us=T total_us=T"
 *   wait-sync SECONDS             until in_sync; "ok sync_ms=T" or "err timeout ..."
 *   status                        "ok in_sync=0|1 desired_set= desired_unhealthy=
 *                                  requests= failures= retries= events=
 *                                  last_success_age_s= last_error=..."
 *   sleep MS
 *   stop                          ep_k8s_stop; "ok stop_ms=T"
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "k8s.h"
#include "log.h"
#include "util.h"

static struct ep_k8s_settings S;
static struct ep_k8s *K;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int ensure_started(void)
{
	if (K)
		return 0;
	K = ep_k8s_start(&S);
	return K ? 0 : -1;
}

static void print_status(const char *prefix)
{
	struct ep_k8s_status st;

	ep_k8s_get_status(K, &st);
	printf("%s in_sync=%d desired_set=%d desired_unhealthy=%d requests=%llu failures=%llu "
	       "retries=%llu events=%llu last_success_age_s=%.3f last_error=%s\n", prefix,
	       st.in_sync, st.desired_set, st.desired_unhealthy,
	       (unsigned long long)st.requests, (unsigned long long)st.failures,
	       (unsigned long long)st.retries, (unsigned long long)st.events_posted,
	       st.last_success_at ? ep_wall_seconds() - st.last_success_at : -1.0,
	       st.last_error);
}

/* Runs one command (argv[0] is its name); returns how many words it took,
 * or -1 after an "err" line. */
static int run_cmd(int argc, char **argv)
{
	const char *cmd = argv[0];

	if (!strcmp(cmd, "start")) {
		if (ensure_started())
			goto fail_start;
		printf("ok started\n");
		return 1;
	}
	if (!strcmp(cmd, "unhealthy") || !strcmp(cmd, "healthy")) {
		/* Optional words: stop at the next command name in argv mode. */
		const char *reason = argc > 1 ? argv[1] : NULL, *msg = argc > 2 ? argv[2] : NULL;
		double t0, t1;

		if (ensure_started())
			goto fail_start;
		t0 = now_us();
		ep_k8s_set_dns_state(K, cmd[0] == 'u', reason, msg);
		t1 = now_us();
		printf("ok set_us=%.1f\n", t1 - t0);
		return 1 + (reason ? 1 : 0) + (msg ? 1 : 0);
	}
	if (!strcmp(cmd, "burst") && argc > 1) {
		int n = atoi(argv[1]);
		double max = 0, total = 0;

		if (ensure_started())
			goto fail_start;
		for (int i = 0; i < n; i++) {
			double t0 = now_us(), d;

			ep_k8s_set_dns_state(K, i % 2 == 0, "Burst", "burst of state changes");
			d = now_us() - t0;
			total += d;
			if (d > max)
				max = d;
		}
		printf("ok max_us=%.1f total_us=%.1f\n", max, total);
		return 2;
	}
	if (!strcmp(cmd, "wait-sync") && argc > 1) {
		double limit = atof(argv[1]) * 1e6, t0 = now_us();
		struct ep_k8s_status st;

		if (ensure_started())
			goto fail_start;
		for (;;) {
			ep_k8s_get_status(K, &st);
			if (st.in_sync) {
				printf("ok sync_ms=%.0f\n", (now_us() - t0) / 1e3);
				return 2;
			}
			if (now_us() - t0 > limit)
				break;
			struct timespec ts = { 0, 20 * 1000000L };

			nanosleep(&ts, NULL);
		}
		print_status("err timeout");
		return -1;
	}
	if (!strcmp(cmd, "status")) {
		if (ensure_started())
			goto fail_start;
		print_status("ok");
		return 1;
	}
	if (!strcmp(cmd, "sleep") && argc > 1) {
		long ms = atol(argv[1]);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		printf("ok slept\n");
		return 2;
	}
	if (!strcmp(cmd, "stop")) {
		double t0 = now_us();

		ep_k8s_stop(K);
		K = NULL;
		printf("ok stop_ms=%.1f\n", (now_us() - t0) / 1e3);
		return 1;
	}
	printf("err unknown command or missing argument: %s\n", cmd);
	return -1;

fail_start:
	printf("err ep_k8s_start failed\n");
	return -1;
}

static bool is_cmd(const char *s)
{
	static const char *const cmds[] = { "start", "unhealthy", "healthy", "burst", "wait-sync",
					    "status", "sleep", "stop" };

	for (size_t i = 0; i < EP_ARRAY_SIZE(cmds); i++)
		if (!strcmp(s, cmds[i]))
			return true;
	return false;
}

static int do_resolve(struct ep_cfg_kubernetes *cfg, const char *node)
{
	struct ep_k8s_settings out;
	char err[512];
	int rc = ep_k8s_resolve(cfg, node, &out, err, sizeof(err));

	printf("rc=%d\napi_server=%s\ntoken_file=%s\nca_file=%s\nnamespace=%s\nlabel=%s\n"
	       "timeout_ms=%u\nerr=%s\n", rc, out.api_server, out.token_file, out.ca_file,
	       out.event_namespace, out.label_key, out.timeout_ms, err);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: ep_k8s_drive resolve --enabled auto|true|false [options]\n"
			"       ep_k8s_drive --api-server URL --token-file F --ca-file F --node N "
			"[options] CMD... | -\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "api-server", required_argument, NULL, 'a' },
		{ "token-file", required_argument, NULL, 't' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "label", required_argument, NULL, 'l' },
		{ "namespace", required_argument, NULL, 's' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "forbidden-retry-ms", required_argument, NULL, 'F' },
		{ "backoff-max-ms", required_argument, NULL, 'B' },
		{ "enabled", required_argument, NULL, 'e' },
		{ "log-level", required_argument, NULL, 'L' },
		{ 0 },
	};
	struct ep_cfg_kubernetes cfg = { .enabled = EP_K8S_AUTO };
	enum ep_log_level lvl = EP_LOG_INFO;
	const char *node = "edge-01";
	unsigned timeout = 0, forbidden = 0, backoff = 0;
	int c, failed = 0;

	ep_cfg_kubernetes_defaults(&cfg);

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			snprintf(cfg.api_server, sizeof(cfg.api_server), "%s", optarg);
			break;
		case 't':
			snprintf(cfg.token_file, sizeof(cfg.token_file), "%s", optarg);
			break;
		case 'c':
			snprintf(cfg.ca_file, sizeof(cfg.ca_file), "%s", optarg);
			break;
		case 'n':
			node = optarg;
			break;
		case 'l':
			snprintf(cfg.dns_unhealthy_label, sizeof(cfg.dns_unhealthy_label), "%s",
				 optarg);
			break;
		case 's':
			snprintf(cfg.event_namespace, sizeof(cfg.event_namespace), "%s", optarg);
			break;
		case 'T':
			timeout = (unsigned)atoi(optarg);
			break;
		case 'F':
			forbidden = (unsigned)atoi(optarg);
			break;
		case 'B':
			backoff = (unsigned)atoi(optarg);
			break;
		case 'e':
			cfg.enabled = !strcmp(optarg, "true")  ? EP_K8S_ON :
				      !strcmp(optarg, "false") ? EP_K8S_OFF :
								 EP_K8S_AUTO;
			break;
		case 'L':
			if (ep_log_level_parse(optarg, &lvl)) {
				usage();
				return 2;
			}
			break;
		default:
			usage();
			return 2;
		}
	}
	ep_log_setup(0, lvl);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (optind >= argc) {
		usage();
		return 2;
	}
	/* getopt_long moved the options first: argv[optind] is "resolve" or
	 * the first command. */
	if (!strcmp(argv[optind], "resolve"))
		return do_resolve(&cfg, node);
	/* Not a cluster question: resolve must say 1 for what we were given. */
	{
		char err[512];
		int rc;

		cfg.enabled = EP_K8S_ON;
		rc = ep_k8s_resolve(&cfg, node, &S, err, sizeof(err));
		if (rc != 1) {
			fprintf(stderr, "ep_k8s_drive: resolve: %d: %s\n", rc, err);
			return 2;
		}
		if (timeout)
			S.timeout_ms = timeout;
		if (forbidden)
			S.forbidden_retry_ms = forbidden;
		if (backoff)
			S.backoff_max_ms = backoff;
	}

	if (!strcmp(argv[optind], "-")) {
		char line[4096];

		while (fgets(line, sizeof(line), stdin)) {
			char *words[4] = { 0 }, *save = NULL, *w;
			int n = 0;

			line[strcspn(line, "\n")] = '\0';
			/* Words are separated by tabs so messages can hold spaces. */
			for (w = strtok_r(line, "\t", &save); w && n < 3;
			     w = strtok_r(NULL, "\t", &save))
				words[n++] = w;
			if (!n)
				continue;
			if (run_cmd(n, words) < 0)
				failed = 1;
		}
	} else {
		for (int i = optind; i < argc;) {
			int n = 1;

			/* A command's optional words end at the next command name. */
			while (i + n < argc && !is_cmd(argv[i + n]))
				n++;
			int used = run_cmd(n, argv + i);

			if (used < 0)
				failed = 1;
			i += n;
		}
	}
	ep_k8s_stop(K);
	return failed;
}
