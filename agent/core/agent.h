/*
 * The daemon: owns the applied config, the datapath and the services, runs
 * one event loop (signals, config file changes, control socket, timers), and
 * serves metrics from a libmicrohttpd thread. `lock` guards everything the
 * metrics thread reads.
 */
#ifndef EP_AGENT_H
#define EP_AGENT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conntrack.h"
#include "datapath.h"
#include "services.h"

#define EP_VERSION "0.1.0"

struct ep_agent_opts {
	const char *config_path;
	bool detach_on_exit;
};

struct MHD_Daemon;
struct ep_dns_cache;
struct ep_dns_failover;

struct ep_agent {
	struct ep_agent_opts opts;
	pthread_mutex_t lock;
	struct ep_config cfg; /* the applied config */
	uint64_t cfg_hash;    /* of the file text that produced cfg */
	struct ep_datapath dp;
	struct ep_services svcs;
	struct ep_dns_cache *cache; /* dns.cache, NULL when not configured */
	struct ep_dns_failover *failover; /* dns section, NULL when not configured */
	char runtime_dir[PATH_MAX]; /* dirname of the control socket */
	struct MHD_Daemon *mhd;
	char metrics_listen[128];
	char socket_path[PATH_MAX];
	int ctl_fd, epfd, sigfd, inofd, timerfd;
	bool ready;
	bool stopping;
	uint64_t start_ns;
	uint64_t heartbeat_ns; /* main loop liveness for /healthz */
	/* reload bookkeeping */
	uint64_t reloads_ok, reloads_failed;
	double last_reload_at;
	char last_reload_error[1024];
	uint64_t reload_pending_ns; /* debounce for file-change reloads */
	uint64_t next_stat_ns, cfg_stat_id; /* fallback polling of the config file */
	/* conntrack housekeeping */
	struct ep_ct_gc_result last_gc;
	uint64_t ct_expired_total;
	uint64_t next_gc_ns;
	uint32_t published_s; /* last conntrack clock value written to the datapath */
};

/* Runs the agent until SIGTERM/SIGINT. Returns the process exit code:
 * 0 clean stop, 2 bad config at start, 1 other start failure. */
int ep_agent_run(const struct ep_agent_opts *o);

/* Re-reads the config file and applies the difference (SIGHUP, file change).
 * A bad config is refused and the old one keeps serving. */
int ep_agent_reload(struct ep_agent *a, const char *why);

#endif
