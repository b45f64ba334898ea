/*
 * The daemon: owns the applied config, the datapath and the services, runs
 * one sd-event loop (lib/evloop.h) on which every module registers its own
 * sources -- core: signals, config file watch, heartbeat, watchdog; control
 * socket clients; conntrack GC and clock; DNS failover and cache timers --
 * and serves metrics from a libmicrohttpd thread. `lock` guards everything
 * the metrics thread reads. Reports to systemd with sd_notify.
 */
#ifndef EP_AGENT_H
#define EP_AGENT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "clock_pub.h"
#include "config.h"
#include "conntrack.h"
#include "ct_gc.h"
#include "datapath.h"
#include "services.h"

#define EP_VERSION "0.1.0"

struct ep_agent_opts {
	const char *config_path;
	bool detach_on_exit;
	bool no_seccomp; /* --no-seccomp: skip self-confinement (debugging) */
	bool log_json;	 /* the log format, for the seccomp violation line */
	char **argv;	 /* main's, retitled in the spawner (lib/spawn.h) */
	const char *spawner_path; /* --spawner: the cache's spawner server, or NULL */
};

struct ep_mirror; /* agent/canary/mirror.h */
struct ep_metrics;
struct ep_control;
struct ep_dns_cache;
struct ep_dns_failover;
struct ep_canary;
struct ep_k8s;
struct ep_certs;

struct ep_agent {
	struct ep_agent_opts opts;
	pthread_mutex_t lock;
	struct ep_config cfg; /* the applied config */
	uint64_t cfg_hash;    /* of the file text that produced cfg */
	struct ep_datapath dp;
	struct ep_services svcs;
	struct ep_canary *canary; /* flow health, rollback, ramps (agent/canary) */
	/* Kubernetes client for canary Events, started at the first rollback. */
	struct ep_k8s *k8s_canary;
	bool k8s_canary_off; /* not in a cluster: said once, not retried */
	struct ep_dns_cache *cache; /* dns.cache, NULL when not configured */
	struct ep_dns_failover *failover; /* dns section, NULL when not configured */
	struct ep_mirror *mirror;	  /* traffic mirroring, NULL until first applied */
	struct ep_certs *certs; /* certs section, NULL when it has no entries */
	char runtime_dir[PATH_MAX]; /* dirname of the control socket */
	struct ep_metrics *metrics; /* the metrics server, NULL when off */
	char metrics_listen[128];
	char socket_path[PATH_MAX];
	/* The event loop; each module adds and removes its own sources. */
	sd_event *ev;
	struct ep_control *ctl;
	sd_event_source *sig_hup, *sig_term, *sig_int;
	sd_event_source *cfg_watch;    /* inotify on the config file's directory */
	sd_event_source *cfg_poll;     /* fallback polling of the config file */
	sd_event_source *reload_timer; /* debounced file-change reload */
	sd_event_source *heartbeat, *watchdog;
	bool ready;
	bool stopping;
	uint64_t start_ns;
	uint64_t heartbeat_ns; /* main loop liveness for /healthz */
	/* reload bookkeeping */
	uint64_t reloads_ok, reloads_failed;
	double last_reload_at;
	char last_reload_error[1024];
	uint64_t cfg_stat_id; /* identity of the config file at the last poll */
	/* conntrack housekeeping */
	struct ep_ct_gc gc;
	struct ep_clock_pub clock;
};

/* Runs the agent until SIGTERM/SIGINT. Returns the process exit code:
 * 0 clean stop, 2 bad config at start, 1 other start failure. */
int ep_agent_run(const struct ep_agent_opts *o);

/* Re-reads the config file and applies the difference (SIGHUP, file change).
 * A bad config is refused and the old one keeps serving. */
int ep_agent_reload(struct ep_agent *a, const char *why);

#endif
