// SPDX-License-Identifier: GPL-2.0
/*
 * ep_certs_drive - drives the agent's certificate sync (agent/certs/) without
 * a datapath, for tests/e2e/certs_*.sh and tests/bench/certs_sync.sh.
 *
 *   ep_certs_drive check DIR [--bundle] [--trust FILE] [--san NAME]...
 *                  [--skew S] [--max-bytes N]
 *       reads DIR as a source set and validates it exactly as the agent
 *       does; prints "ok serial=HEX not_after=T" (exit 0), "refused: WHY"
 *       (exit 1) or "again: WHY" (exit 3, the set changed while read).
 *
 *   ep_certs_drive run --config FILE --status FILE
 *       parses FILE (the agent's config; only certs matters), runs the
 *       certs module on its own sd-event loop and rewrites the status file
 *       (`edgeplane certs -o json` plus "metrics": the Prometheus text) every
 *       20 ms, atomically; SIGTERM or SIGINT stops it.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "cert_check.h"
#include "cert_store.h"
#include "certs.h"
#include "config.h"
#include "evloop.h"
#include "log.h"
#include "strbuf.h"

static int usage(void)
{
	fprintf(stderr, "usage: ep_certs_drive check DIR [--bundle] [--trust F] [--san N]... "
			"[--skew S] [--max-bytes N]\n"
			"       ep_certs_drive run --config FILE --status FILE\n");
	return 2;
}

static int do_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"bundle", no_argument, NULL, 'b'}, {"trust", required_argument, NULL, 't'},
		{"san", required_argument, NULL, 's'}, {"skew", required_argument, NULL, 'k'},
		{"max-bytes", required_argument, NULL, 'm'}, {},
	};
	struct ep_cert_policy p = {.now = time(NULL), .skew_s = 60, .max_bytes = 256 << 10};
	struct ep_cert_set set, trust = {};
	struct ep_cert_info info;
	const char *dir, *trust_dir = NULL;
	bool bundle = false;
	char err[600];
	int o, rc;

	if (argc < 2)
		return usage();
	dir = argv[1];
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'b': bundle = true; break;
		case 't': trust_dir = optarg; break;
		case 's':
			if (p.n_san < EP_CERT_MAX_SAN)
				p.san[p.n_san++] = optarg;
			break;
		case 'k': p.skew_s = (uint32_t)atoi(optarg); break;
		case 'm': p.max_bytes = (size_t)atol(optarg); break;
		default: return usage();
		}
	}
	rc = ep_cert_set_read(dir, bundle ? 1u << EP_CERT_CA : 7u, p.max_bytes, &set, err,
			      sizeof(err));
	if (rc == -EAGAIN) {
		printf("again: %s\n", err);
		return 3;
	}
	if (rc) {
		printf("refused: %s\n", err);
		return 1;
	}
	/* --trust names a directory holding ca.crt, read like a source. */
	if (trust_dir && ep_cert_set_read(trust_dir, 1u << EP_CERT_CA, p.max_bytes, &trust, err,
					  sizeof(err))) {
		printf("refused: trust: %s\n", err);
		return 1;
	}
	if (bundle)
		rc = ep_cert_check_bundle(set.data[EP_CERT_CA], set.len[EP_CERT_CA], &p, &info, err,
					  sizeof(err));
	else
		rc = ep_cert_check(set.data[EP_CERT_CRT], set.len[EP_CERT_CRT],
				   set.data[EP_CERT_KEY], set.len[EP_CERT_KEY],
				   trust_dir ? trust.data[EP_CERT_CA] : set.data[EP_CERT_CA],
				   trust_dir ? trust.len[EP_CERT_CA] : set.len[EP_CERT_CA], &p,
				   &info, err, sizeof(err));
	ep_cert_set_free(&set);
	ep_cert_set_free(&trust);
	if (rc) {
		printf("refused: %s\n", err);
		return 1;
	}
	printf("ok serial=%s not_after=%lld certs=%u\n", info.serial, (long long)info.not_after,
	       info.n_certs);
	return 0;
}

struct runner {
	struct ep_certs *certs;
	const char *status;
};

static void dump(void *userdata, uint64_t now)
{
	struct runner *r = userdata;
	json_t *st = ep_certs_status(r->certs);
	struct ep_strbuf b = {};
	char tmp[4096], *m;
	FILE *f;

	ep_certs_metrics(r->certs, &b);
	m = ep_sb_take(&b);
	json_object_set_new(st, "metrics", json_string(m ? m : ""));
	free(m);
	snprintf(tmp, sizeof(tmp), "%s.tmp", r->status);
	f = fopen(tmp, "w");
	if (f) {
		json_dumpf(st, f, JSON_INDENT(1));
		fclose(f);
		rename(tmp, r->status);
	}
	json_decref(st);
}

static int on_stop(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	sd_event_exit(sd_event_source_get_event(s), 0);
	return 0;
}

static int do_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"status", required_argument, NULL, 's'}, {},
	};
	struct ep_config cfg = {};
	struct ep_cfg_errors errs = {};
	struct runner r = {};
	const char *path = NULL;
	sd_event_source *tick = NULL, *s1 = NULL, *s2 = NULL;
	sd_event *ev = NULL;
	sigset_t set;
	char err[600] = "";
	int o, rc;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'c')
			path = optarg;
		else if (o == 's')
			r.status = optarg;
		else
			return usage();
	}
	if (!path || !r.status)
		return usage();
	if (ep_config_load(path, &cfg, &errs, NULL)) {
		ep_cfg_errors_print(&errs, path, stderr);
		ep_cfg_errors_free(&errs);
		return 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (sd_event_new(&ev) < 0)
		return 1;
	sd_event_add_signal(ev, &s1, SIGTERM, on_stop, NULL);
	sd_event_add_signal(ev, &s2, SIGINT, on_stop, NULL);
	rc = ep_certs_start(&r.certs, &cfg, ev, NULL, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "start: %s\n", err);
		return 1;
	}
	ep_timer_repeat(ev, &tick, 20ULL * 1000000, true, dump, &r, "dump");
	rc = sd_event_loop(ev);
	dump(&r, 0);
	ep_certs_stop(r.certs);
	ep_source_free(&tick);
	ep_source_free(&s1);
	ep_source_free(&s2);
	sd_event_unref(ev);
	ep_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	ep_log_setup(0, EP_LOG_INFO);
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "check"))
		return do_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return do_run(argc - 1, argv + 1);
	return usage();
}
