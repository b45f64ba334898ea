/*
 * The preload builder: `edgeplane cache build`. Resolves a list of names for A
 * and AAAA against trusted resolvers and writes a dnsmasq hosts file that the
 * local cache serves while upstream DNS is down. The CLI and the agent (which
 * rebuilds snapshots in the background) share ep_cache_build().
 */
#ifndef EP_CACHE_BUILD_H
#define EP_CACHE_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct ep_dns_exempt_map;

#define EP_CACHE_BUILD_CONCURRENCY 256
#define EP_CACHE_BUILD_TIMEOUT_MS 1000
#define EP_CACHE_BUILD_RETRIES 2
#define EP_CACHE_BUILD_MAX_LOSS 10.0
#define EP_CACHE_BUILD_MAX_CHANGE 25.0

/* Exit codes of the CLI, also the return values of ep_cache_build(). */
enum {
	EP_CACHE_BUILD_OK = 0,	  /* snapshot written */
	EP_CACHE_BUILD_FAILED = 1,  /* runtime failure; nothing written */
	EP_CACHE_BUILD_USAGE = 2,	  /* bad options, unreadable domains file */
	EP_CACHE_BUILD_REFUSED = 3, /* the loss or change guard kept the old snapshot */
};

struct ep_cache_build_opts {
	const char *domains_path;
	const char *out_path;
	const char *report_path;	/* NULL: OUT.report */
	const char *const *resolvers;	/* "ADDR", "ADDR:PORT", "[V6]:PORT" */
	size_t n_resolvers;
	unsigned concurrency;		/* queries in flight */
	unsigned timeout_ms;		/* per attempt */
	unsigned retries;		/* attempts after the first */
	double max_loss_pct;		/* refuse when more of the old names are lost */
	double max_change_pct;		/* ... or when more of them changed their addresses */
	bool force;			/* write even past the loss and change guards */
	bool quiet;			/* no progress; the summary is still printed */
	FILE *progress;			/* progress, warnings, summary; NULL: stderr */
	const struct ep_dns_exempt_map *exempt; /* the agent's refresh: see ep_pool_opts */
};

struct ep_cache_build_result {
	unsigned names;	     /* unique valid names */
	unsigned resolved;   /* at least one A or AAAA */
	unsigned nodata;
	unsigned nxdomain;
	unsigned servfail;   /* SERVFAIL, other error rcodes, broken CNAME chains */
	unsigned refused;
	unsigned timeout;
	unsigned bad_lines;
	unsigned records;    /* address lines written */
	unsigned duplicates;
	unsigned previous_names; /* names in the snapshot being replaced */
	unsigned lost_names;	 /* of those, names missing from the new one */
	unsigned changed_names;	 /* of those, names whose address set changed */
	double seconds;
	bool written;
	char error[256];     /* why, when the return value is not 0 */
};

/* The defaults of the CLI. */
void ep_cache_build_opts_init(struct ep_cache_build_opts *o);

/*
 * Builds the snapshot. Returns one of the EP_CACHE_BUILD_* codes; fills *r in
 * every case. Never exits, frees everything it allocated.
 */
int ep_cache_build(const struct ep_cache_build_opts *o, struct ep_cache_build_result *r);

/* The CLI: argv[0] is "build". Returns the exit status. */
int ep_cache_build_main(int argc, char **argv);

#endif
