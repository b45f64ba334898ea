/*
 * The policy responder as a process of its own, so the cache answers without
 * an agent: `edgeplane-agent --cache-responder ...` (a hidden mode of the
 * agent binary: nothing more to install or ship) runs the responder of
 * policy_responder.h until SIGTERM. It serves the names of a names file
 * (hosts format) that the agent writes, and reads it again on SIGHUP; its
 * counters go to a small stats file the agent reads.
 *
 * The agent supervises it like dnsmasq (supervised.h): spawns it, adopts it
 * across agent restarts when its command line is the one it would start,
 * restarts it when it exits or stops answering, and leaves it running on a
 * plain stop.
 */
#ifndef EP_POLICY_PROCESS_H
#define EP_POLICY_PROCESS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fallback.h"
#include "nameset.h"
#include "policy_responder.h"

#define EP_POLICY_PROCESS_FLAG "--cache-responder"

/* The process: argv is the whole command line (argv[1] is the flag). */
int ep_policy_process_main(int argc, char **argv);

struct ep_policy_proc_opts {
	char addr[64];		    /* listens on addr:port, UDP and TCP */
	uint16_t port;
	uint32_t ttl;		    /* of the NODATA SOA */
	char runtime_dir[PATH_MAX]; /* policy.names, policy.pid, policy.stats */
	/* dns.cache.fallback: resolvers for names outside the snapshot */
	char fallback[EP_FALLBACK_MAX_SERVERS][64];
	int n_fallback;
	/* dns.health.trust_anchor: the fallback's answers for the names of its
	 * zone are DNSSEC-validated; "" = none */
	char trust_anchor[PATH_MAX];
	/* a hash of its content: on the command line, so a reload after the
	 * file was rewritten in place (a KSK rollover) restarts the responder */
	uint64_t trust_anchor_sum;
};

struct ep_policy_proc_status {
	pid_t pid; /* 0: none */
	bool up;   /* answered the last health check */
	bool adopted;
	uint64_t restarts;
	double started_at;
	char last_problem[256];
};

struct ep_policy_proc;

struct ep_policy_proc *ep_policy_proc_new(const struct ep_policy_proc_opts *o);
/* Adopts the running responder when its command line matches, else starts
 * one; either way it serves the names file as it is now. */
int ep_policy_proc_start(struct ep_policy_proc *p, char *err, size_t errlen);
/* Every 100 ms and when its pidfd turns readable: reaps, health-checks,
 * restarts, reads the counters. */
void ep_policy_proc_tick(struct ep_policy_proc *p, uint64_t now_ns);
/* The names to answer NODATA for: written to the names file, then SIGHUP.
 * The set stays the caller's. 0 or -errno (the file could not be written). */
int ep_policy_proc_set_names(struct ep_policy_proc *p, const struct ep_nameset *names);
/* New options: restarts the responder only when its command line changes. */
int ep_policy_proc_reconfigure(struct ep_policy_proc *p, const struct ep_policy_proc_opts *o,
			       char *err, size_t errlen);
/* Answers since this agent started (or adopted it), health checks excluded. */
void ep_policy_proc_get_stats(const struct ep_policy_proc *p, struct ep_policy_stats *st);
void ep_policy_proc_get_status(const struct ep_policy_proc *p, struct ep_policy_proc_status *st);
/* Its pidfd (the supervisor's: dup it to watch it) and pid, or -1 and 0. */
int ep_policy_proc_pidfd(const struct ep_policy_proc *p, pid_t *pid);
/* Frees the supervisor; stops the responder only when asked. */
void ep_policy_proc_free(struct ep_policy_proc *p, bool stop_process);

#endif
