/*
 * `edgeplane cache build`: the command-line front end of the preload builder
 * (cache_build.c). Kept apart so the builder reads as the resolution pipeline
 * it is and the option parsing, usage text and exit codes (0 written, 2 bad
 * usage, 3 refused by a guard; docs/man/edgeplane.8) live in one place.
 */
#include "cache_build.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: edgeplane cache build --domains FILE --resolver ADDR[:PORT] [--resolver ...]\n"
		"                             --out FILE [options]\n"
		"\n"
		"Resolves every name of FILE (one per line, '#' comments) for A and AAAA against\n"
		"the resolvers and writes a dnsmasq hosts file (addn-hosts) for the local cache.\n"
		"\n"
		"  -d, --domains FILE      names to resolve\n"
		"  -r, --resolver ADDR     resolver, ADDR, ADDR:PORT or [V6]:PORT; repeatable\n"
		"  -o, --out FILE          hosts file to write (atomically)\n"
		"      --report FILE       names left out and why (default OUT.report)\n"
		"      --concurrency N     queries in flight (default %u)\n"
		"      --timeout-ms MS     per attempt (default %u)\n"
		"      --retries N         attempts after the first, on another resolver (default %u)\n"
		"      --max-loss PCT      refuse when more than PCT%% of the names in the current OUT\n"
		"                          would be lost (default %g)\n"
		"      --max-change PCT    refuse when more than PCT%% of the names in the current\n"
		"                          OUT would change their addresses (default %g)\n"
		"      --force             replace OUT even past --max-loss and --max-change\n"
		"  -q, --quiet             no progress (the summary is still printed)\n"
		"  -h, --help\n"
		"\n"
		"Exit status: 0 written, 1 runtime failure (nothing written), 2 bad usage,\n"
		"3 refused by the loss or change guard (OUT untouched).\n",
		EP_CACHE_BUILD_CONCURRENCY, EP_CACHE_BUILD_TIMEOUT_MS, EP_CACHE_BUILD_RETRIES,
		EP_CACHE_BUILD_MAX_LOSS, EP_CACHE_BUILD_MAX_CHANGE);
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int parse_pct(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || isnan(v) || v < 0 || v > 100)
		return -EINVAL;
	*out = v;
	return 0;
}

int ep_cache_build_main(int argc, char **argv)
{
	enum { O_REPORT = 256, O_CONC, O_TIMEOUT, O_RETRIES, O_MAXLOSS, O_MAXCHANGE, O_FORCE };
	static const struct option lopts[] = {
		{ "domains", required_argument, NULL, 'd' },
		{ "resolver", required_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'o' },
		{ "report", required_argument, NULL, O_REPORT },
		{ "concurrency", required_argument, NULL, O_CONC },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "retries", required_argument, NULL, O_RETRIES },
		{ "max-loss", required_argument, NULL, O_MAXLOSS },
		{ "max-change", required_argument, NULL, O_MAXCHANGE },
		{ "force", no_argument, NULL, O_FORCE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ep_cache_build_opts o;
	struct ep_cache_build_result r;
	const char **res = NULL;
	size_t n_res = 0;
	int c, rc = EP_CACHE_BUILD_USAGE;

	ep_cache_build_opts_init(&o);
	res = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*res));
	if (!res) {
		fprintf(stderr, "edgeplane cache build: out of memory\n");
		return EP_CACHE_BUILD_FAILED;
	}
	/* The CLI may have run getopt already: 0 makes glibc start afresh. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:r:o:qh", lopts, NULL)) != -1) {
		switch (c) {
		case 'd': o.domains_path = optarg; break;
		case 'r': res[n_res++] = optarg; break;
		case 'o': o.out_path = optarg; break;
		case O_REPORT: o.report_path = optarg; break;
		case O_CONC:
			if (parse_uint(optarg, 1, 65536, &o.concurrency)) {
				fprintf(stderr, "edgeplane cache build: --concurrency wants 1..65536, not \"%s\"\n", optarg);
				goto out;
			}
			break;
		case O_TIMEOUT:
			if (parse_uint(optarg, 1, 600000, &o.timeout_ms)) {
				fprintf(stderr, "edgeplane cache build: --timeout-ms wants 1..600000, not \"%s\"\n", optarg);
				goto out;
			}
			break;
		case O_RETRIES:
			if (parse_uint(optarg, 0, 100, &o.retries)) {
				fprintf(stderr, "edgeplane cache build: --retries wants 0..100, not \"%s\"\n", optarg);
				goto out;
			}
			break;
		case O_MAXLOSS:
		case O_MAXCHANGE:
			if (parse_pct(optarg, c == O_MAXLOSS ? &o.max_loss_pct : &o.max_change_pct)) {
				fprintf(stderr, "edgeplane cache build: --%s wants a percentage 0..100, not \"%s\"\n",
					c == O_MAXLOSS ? "max-loss" : "max-change", optarg);
				goto out;
			}
			break;
		case O_FORCE: o.force = true; break;
		case 'q': o.quiet = true; break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		case ':':
			fprintf(stderr, "edgeplane cache build: %s needs a value\n", argv[optind - 1]);
			goto usage;
		default:
			fprintf(stderr, "edgeplane cache build: unknown option %s\n", argv[optind - 1]);
			goto usage;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "edgeplane cache build: unexpected argument \"%s\"\n", argv[optind]);
		goto usage;
	}
	if (!o.domains_path || !o.out_path || !n_res) {
		fprintf(stderr, "edgeplane cache build: --domains, --resolver and --out are required\n");
		goto usage;
	}
	o.resolvers = res;
	o.n_resolvers = n_res;
	rc = ep_cache_build(&o, &r);
	if (rc)
		fprintf(stderr, "edgeplane cache build: %s\n", r.error);
	else
		fprintf(stderr, "edgeplane cache build: wrote %s (%u records for %u names)\n", o.out_path,
			r.records, r.resolved);
	goto out;
usage:
	fprintf(stderr, "try 'edgeplane cache build --help'\n");
out:
	free(res);
	return rc;
}

#ifdef EP_CACHE_BUILD_STANDALONE
int main(int argc, char **argv)
{
	/* Test scripts call "$EP_CLI cache build ...": accept that form too. */
	if (argc > 2 && !strcmp(argv[1], "cache")) {
		argc--;
		argv++;
	}
	return ep_cache_build_main(argc - 1, argv + 1);
}
#endif
