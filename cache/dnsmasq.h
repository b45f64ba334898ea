/*
 * dnsmasq, supervised: the agent writes its config, starts it, checks with a
 * real query that it answers, restarts it with backoff when it dies or stops
 * answering, and makes it re-read a new preload with SIGHUP (it keeps its
 * socket, so queries arriving meanwhile wait in the socket buffer instead of
 * being dropped).
 *
 * dnsmasq outlives the agent on purpose, like the datapath: a restarted (or
 * kill -9ed) agent must not interrupt a node answering from its cache. A new
 * agent adopts the running dnsmasq when it runs the exact config it would
 * write (pid file + /proc cmdline + config text), and replaces it otherwise.
 */
#ifndef EP_DNSMASQ_H
#define EP_DNSMASQ_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"

/* A name only dnsmasq answers (from its own config), for health checks. */
#define EP_DNSMASQ_HEALTH_NAME "edgeplane-health.invalid"
#define EP_DNSMASQ_HEALTH_ADDR "127.0.0.2"

struct ep_dnsmasq_opts {
	char bin[PATH_MAX];	    /* dnsmasq binary (PATH is searched when no '/') */
	struct ep_ip listen;	    /* answers on listen:53 */
	struct ep_ip listen6;	    /* and on listen6:53 (family 0: not) */
	char preload[PATH_MAX];	    /* addn-hosts file */
	uint32_t ttl;		    /* local-ttl */
	uint32_t cache_size;	    /* cache-size */
	char upstream[64];	    /* the policy responder, "127.0.0.1#299" */
	char runtime_dir[PATH_MAX]; /* dnsmasq.conf, dnsmasq.pid, dnsmasq.log */
};

struct ep_dnsmasq_status {
	pid_t pid;		/* 0 when not running */
	bool up;		/* answered the last health check */
	bool adopted;		/* started by an earlier agent */
	uint64_t restarts;	/* after the first start */
	uint64_t health_ok, health_failed;
	double started_at;	/* Unix time */
	double last_reload_at;	/* last SIGHUP (preload re-read) */
	double last_load_ms;	/* start or SIGHUP to the first answer, last time */
	uint64_t last_ok_ns;	/* monotonic time of the last answered health check; 0: never */
	char last_problem[256]; /* why it was last restarted, or "" */
};

struct ep_dnsmasq;

struct ep_dnsmasq *ep_dnsmasq_new(const struct ep_dnsmasq_opts *o);
/* Writes the config and adopts a matching running dnsmasq or starts one. */
int ep_dnsmasq_start(struct ep_dnsmasq *d, char *err, size_t errlen);
/* Called every 100 ms and when its pidfd turns readable: reaps,
 * health-checks, restarts, forwards its log. */
void ep_dnsmasq_tick(struct ep_dnsmasq *d, uint64_t now_ns);
/* New options: restarts dnsmasq only if its config text changes. */
int ep_dnsmasq_reconfigure(struct ep_dnsmasq *d, const struct ep_dnsmasq_opts *o, char *err,
			   size_t errlen);
/* SIGHUP: re-read the preload (and clear dnsmasq's cache). */
int ep_dnsmasq_reload(struct ep_dnsmasq *d);
void ep_dnsmasq_get_status(const struct ep_dnsmasq *d, struct ep_dnsmasq_status *st);
/* The running dnsmasq's pidfd (readable once it exits; ours or adopted) and
 * pid, or -1 and 0. The fd stays the supervisor's: dup it to watch it. */
int ep_dnsmasq_pidfd(const struct ep_dnsmasq *d, pid_t *pid);
/* Frees the supervisor; stops dnsmasq only when asked (--detach-on-exit). */
void ep_dnsmasq_free(struct ep_dnsmasq *d, bool stop_process);

#endif
