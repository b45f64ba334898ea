#include "agent.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "control.h"
#include "dns_cache.h"
#include "canary.h"
#include "dns_failover.h"
#include "k8s.h"
#include "certs.h"
#include "evloop.h"
#include "log.h"
#include "metrics.h"
#include "mirror.h"
#include "confine.h"
#include "spawn.h"
#include "util.h"

#define HEARTBEAT_NS (100ULL * 1000000ULL)
#define RELOAD_DEBOUNCE_NS (200ULL * 1000000ULL)
#define CONFIG_POLL_NS (2ULL * 1000000000ULL)

static void set_error(struct ep_agent *a, const char *msg)
{
	size_t n = strlen(msg);

	/* Truncation is fine here: the full text went to the log. */
	if (n >= sizeof(a->last_reload_error))
		n = sizeof(a->last_reload_error) - 1;
	memcpy(a->last_reload_error, msg, n);
	a->last_reload_error[n] = '\0';
}

/* Loads the config file as --check-config does; on failure logs every error
 * and leaves a one-line summary in a->last_reload_error. */
static int read_config(struct ep_agent *a, struct ep_config *out, uint64_t *hash)
{
	struct ep_cfg_errors errs = {};
	int rc;

	rc = ep_config_load(a->opts.config_path, out, &errs, hash);
	if (rc) {
		for (size_t i = 0; i < errs.n; i++) {
			const struct ep_cfg_error *e = &errs.v[i];

			log_error("%s:%d: %s%s%s", a->opts.config_path, e->line, e->key,
				  e->key[0] ? ": " : "", e->msg);
		}
		if (errs.n) {
			char msg[1024];

			snprintf(msg, sizeof(msg), "%s:%d: %s%s%s%s", a->opts.config_path,
				 errs.v[0].line, errs.v[0].key, errs.v[0].key[0] ? ": " : "",
				 errs.v[0].msg, errs.n > 1 ? " (and more, see the log)" : "");
			set_error(a, msg);
		}
		ep_cfg_errors_free(&errs);
	}
	return rc;
}

static void warn_forwarding_sysctls(const struct ep_config *cfg)
{
	static const char *const knobs[] = {"/proc/sys/net/ipv4/ip_forward",
					    "/proc/sys/net/ipv6/conf/all/forwarding"};

	if (!cfg->n_services)
		return;
	for (size_t i = 0; i < EP_ARRAY_SIZE(knobs); i++) {
		char *v = NULL;

		if (ep_read_file(knobs[i], 64, &v, NULL) == 0 && v[0] == '0')
			log_warn("%s is 0: balanced packets handed to the kernel (forwarding: stack) "
				 "will not be routed to backends; enable forwarding on this node",
				 knobs[i]);
		free(v);
	}
}

static size_t count_backends(const struct ep_config *cfg)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_services; i++)
		n += cfg->services[i].n_backends;
	return n;
}

/* Settings that need a restart: changing them live would lose state. */
static int check_immutable(const struct ep_config *old, const struct ep_config *nw, char *err,
			   size_t errlen)
{
	if (strcmp(old->datapath.bpffs, nw->datapath.bpffs)) {
		snprintf(err, errlen, "datapath.bpffs cannot change on reload (%.300s -> %.300s); restart the agent",
			 old->datapath.bpffs, nw->datapath.bpffs);
		return -EINVAL;
	}
	if (old->datapath.conntrack_size != nw->datapath.conntrack_size) {
		snprintf(err, errlen,
			 "datapath.conntrack_size cannot change on reload (%u -> %u): the live conntrack cannot be resized",
			 old->datapath.conntrack_size, nw->datapath.conntrack_size);
		return -EINVAL;
	}
	if (strcmp(old->control_socket, nw->control_socket)) {
		snprintf(err, errlen, "control.socket cannot change on reload; restart the agent");
		return -EINVAL;
	}
	return 0;
}

/* Starts, reconfigures or stops the DNS cache to match cfg. */
static int apply_dns_cache(struct ep_agent *a, const struct ep_config *cfg, char *err,
			   size_t errlen);

/* DNS observation and failover: datapath programs, then the cache, then the
 * health machinery that drives both. */
static int apply_dns(struct ep_agent *a, const struct ep_config *cfg, char *err, size_t errlen)
{
	int rc;

	if (!cfg->dns.configured) {
		if (a->failover) {
			log_info("DNS section removed from the config: failover off, datapath back to upstream");
			ep_dns_failover_override(a->failover, EP_DNS_FORCE_UPSTREAM);
			ep_dns_failover_stop(a->failover);
			a->failover = NULL;
		}
		/* Also when this agent never enabled it: a previous run with a
		 * dns section may have left filters, links and pins behind. */
		ep_datapath_dns_disable(&a->dp, true);
		return apply_dns_cache(a, cfg, err, errlen);
	}
	snprintf(a->dp.cgroup_root, sizeof(a->dp.cgroup_root), "%s", cfg->datapath.cgroup_root);
	rc = ep_datapath_dns_enable(&a->dp, a->runtime_dir, err, errlen);
	if (!rc)
		rc = apply_dns_cache(a, cfg, err, errlen);
	if (rc)
		return rc;
	if (a->failover)
		return ep_dns_failover_reconfigure(a->failover, cfg, a->cache, err, errlen);
	return ep_dns_failover_start(&a->failover, cfg, &a->dp.dns, a->cache, a->ev, &a->lock, err,
				     errlen);
}

/* The cache refreshes its snapshot only from an upstream failover trusts. */
static bool upstream_healthy(void *arg)
{
	struct ep_agent *a = arg;

	return !a->failover || ep_dns_failover_upstream_healthy(a->failover);
}

static int apply_dns_cache(struct ep_agent *a, const struct ep_config *cfg, char *err,
			   size_t errlen)
{
	if (!cfg->dns.cache.enabled) {
		if (a->cache) {
			log_info("DNS cache removed from the config: stopping dnsmasq");
			ep_dns_cache_stop(a->cache, true);
			a->cache = NULL;
		}
		return 0;
	}
	if (a->cache)
		return ep_dns_cache_reconfigure(a->cache, cfg, err, errlen);
	/* The DNS datapath's fds are zeroed while it is off. */
	return ep_dns_cache_start(&a->cache, cfg, a->runtime_dir,
				  a->dp.dns.exempt > 0 ? a->dp.dns.exempt : -1, a->ev, &a->lock,
				  upstream_healthy, a, err, errlen);
}

/* A canary rollback as a Kubernetes Event on the node. The client starts
 * at the first rollback: most nodes never need it. */
static void canary_event(void *arg, const char *service, const char *message)
{
	struct ep_agent *a = arg;
	char text[1024], err[256] = "";

	if (!a->k8s_canary && !a->k8s_canary_off) {
		struct ep_k8s_settings s;
		int mode = ep_k8s_resolve(&a->cfg.kubernetes, a->cfg.node_name, &s, err, sizeof(err));

		if (mode == 1)
			a->k8s_canary = ep_k8s_start(&s);
		if (!a->k8s_canary) {
			a->k8s_canary_off = true;
			log_info("canary: no Kubernetes Event for rollbacks (%s)",
				 mode == 1 ? "the client did not start" : err);
			return;
		}
	}
	snprintf(text, sizeof(text), "canary of service %s rolled back: %s", service, message);
	ep_k8s_post_event(a->k8s_canary, "Warning", "CanaryRollback", text);
}

/* Certificate sets: started with the first entry, stopped with the last. */
static int apply_certs(struct ep_agent *a, const struct ep_config *cfg, char *err, size_t errlen)
{
	if (!cfg->n_certs) {
		if (a->certs)
			log_info("certs section emptied: no longer syncing certificates "
				 "(installed sets stay in place)");
		ep_certs_stop(a->certs);
		a->certs = NULL;
		return 0;
	}
	if (a->certs)
		return ep_certs_reconfigure(a->certs, cfg, err, errlen);
	return ep_certs_start(&a->certs, cfg, a->ev, &a->lock, err, errlen);
}

static int apply_config(struct ep_agent *a, const struct ep_config *cfg, char *err, size_t errlen)
{
	int rc;

	a->dp.xdp_mode = cfg->datapath.xdp_mode;
	/* Pinned runtime shares first, so applying never moves one. */
	if (a->canary)
		ep_canary_prepare(a->canary, cfg);
	rc = ep_services_apply(&a->svcs, cfg, err, errlen);
	/* Services before interfaces: an upgrade's XDP program may read maps
	 * the older one did not fill (ep_rings), and must find them filled
	 * when it replaces that program (docs/install.md, Upgrades). */
	if (!rc)
		rc = ep_datapath_sync_ifaces(&a->dp, cfg, err, errlen);
	if (!rc && a->canary)
		rc = ep_canary_apply(a->canary, cfg, err, errlen);
	if (!rc)
		rc = ep_mirror_apply(&a->mirror, &a->dp, &a->svcs, cfg, err, errlen);
	if (!rc)
		rc = ep_datapath_set_forwarding(&a->dp, cfg->datapath.forwarding);
	if (!rc)
		rc = apply_dns(a, cfg, err, errlen);
	if (!rc)
		rc = apply_certs(a, cfg, err, errlen);
	return rc;
}

int ep_agent_reload(struct ep_agent *a, const char *why)
{
	struct ep_config nw = {};
	char err[1024] = "";
	uint64_t hash = 0;
	int rc;

	ep_timer_disarm(a->reload_timer);
	rc = read_config(a, &nw, &hash);
	if (rc) {
		a->reloads_failed++;
		log_error("reload (%s) refused: the running config keeps serving", why);
		sd_notifyf(0, "STATUS=reload (%s) refused: %s", why, a->last_reload_error);
		return rc;
	}
	if (hash == a->cfg_hash && strcmp(why, "SIGHUP") && strcmp(why, "control socket")) {
		ep_config_free(&nw);
		return 0; /* file touched, content unchanged */
	}
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading (%s)",
		   (unsigned long long)(ep_now_ns() / 1000), why);
	rc = check_immutable(&a->cfg, &nw, err, sizeof(err));
	if (!rc) {
		pthread_mutex_lock(&a->lock);
		rc = apply_config(a, &nw, err, sizeof(err));
		if (rc) {
			char err2[512] = "";

			/* Put the running config back: it is known to work. */
			if (apply_config(a, &a->cfg, err2, sizeof(err2)))
				log_error("restoring the previous config also failed: %s", err2);
		} else {
			/* Canary Events follow the new kubernetes settings. */
			if (memcmp(&a->cfg.kubernetes, &nw.kubernetes, sizeof(nw.kubernetes)) ||
			    strcmp(a->cfg.node_name, nw.node_name)) {
				ep_k8s_stop(a->k8s_canary);
				a->k8s_canary = NULL;
				a->k8s_canary_off = false;
			}
			ep_config_free(&a->cfg);
			a->cfg = nw;
			a->cfg_hash = hash;
			memset(&nw, 0, sizeof(nw));
		}
		pthread_mutex_unlock(&a->lock);
	}
	if (rc) {
		a->reloads_failed++;
		set_error(a, err);
		log_error("reload (%s) refused: %s; the running config keeps serving", why, err);
		sd_notifyf(0, "READY=1\nSTATUS=reload (%s) refused: %s", why, err);
		ep_config_free(&nw);
		return rc;
	}
	a->reloads_ok++;
	a->last_reload_at = ep_wall_seconds();
	a->last_reload_error[0] = '\0';
	if (strcmp(a->metrics_listen, a->cfg.metrics_listen)) {
		ep_metrics_stop(a);
		if (ep_metrics_start(a, a->cfg.metrics_listen, err, sizeof(err)))
			log_error("%s", err);
	}
	warn_forwarding_sysctls(&a->cfg);
	log_info("config reloaded (%s): %zu services, %zu backends, %zu interfaces", why,
		 a->cfg.n_services, count_backends(&a->cfg), a->cfg.n_ifaces);
	sd_notifyf(0, "READY=1\nSTATUS=config reloaded (%s): %zu services, %zu backends", why,
		   a->cfg.n_services, count_backends(&a->cfg));
	return 0;
}

/* ---- core sources on the loop ------------------------------------------- */

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	ep_agent_reload(userdata, "SIGHUP");
	return 0;
}

static int on_sigstop(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct ep_agent *a = userdata;

	log_info("%s received: stopping", si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
	a->stopping = true;
	sd_event_exit(a->ev, 0);
	return 0;
}

static int on_reload_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	ep_agent_reload(userdata, "file change");
	return 0;
}

/* Any change in the directory: reload once things have settled. */
static int on_cfg_event(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
	struct ep_agent *a = userdata;

	ep_timer_arm(a->reload_timer, RELOAD_DEBOUNCE_NS);
	return 0;
}

/* inotify can miss changes (bind mounts, some network filesystems): also
 * compare the file's identity every couple of seconds. */
static void on_cfg_poll(void *userdata, uint64_t now)
{
	struct ep_agent *a = userdata;
	struct stat st;
	uint64_t id;

	if (stat(a->opts.config_path, &st))
		return;
	id = ep_hash64(&st.st_mtim, sizeof(st.st_mtim)) ^ (uint64_t)st.st_size ^
	     ((uint64_t)st.st_ino << 20);
	if (a->cfg_stat_id && id != a->cfg_stat_id && !ep_timer_armed(a->reload_timer))
		ep_timer_arm(a->reload_timer, 0);
	a->cfg_stat_id = id;
}

static int watch_config(struct ep_agent *a)
{
	char dir[PATH_MAX];
	int rc;

	rc = ep_timer_oneshot(a->ev, &a->reload_timer, on_reload_timer, a, "config-reload");
	if (!rc)
		rc = ep_timer_repeat(a->ev, &a->cfg_poll, CONFIG_POLL_NS, true, on_cfg_poll, a,
				     "config-poll");
	if (rc)
		return rc;
	snprintf(dir, sizeof(dir), "%s", a->opts.config_path);
	/* The directory, not the file: editors and Kubernetes ConfigMaps replace
	 * the file (rename, ..data symlink swap) rather than write into it. */
	rc = sd_event_add_inotify(a->ev, &a->cfg_watch, dirname(dir),
				  IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB,
				  on_cfg_event, a);
	if (rc < 0)
		log_warn("cannot watch %s for changes (%s); SIGHUP still reloads", dir,
			 strerror(-rc));
	return 0;
}

/* /healthz fails when this stops moving: a hung loop is an unhealthy agent. */
static void on_heartbeat(void *userdata, uint64_t now)
{
	struct ep_agent *a = userdata;

	__atomic_store_n(&a->heartbeat_ns, now, __ATOMIC_RELAXED);
}

/* From a loop timer, not a thread: a hung loop stops pinging and systemd
 * (WatchdogSec=) restarts the agent. */
static void on_watchdog(void *userdata, uint64_t now)
{
	sd_notify(0, "WATCHDOG=1");
}

static int setup_loop(struct ep_agent *a)
{
	uint64_t wd_us = 0;
	int rc;

	rc = sd_event_add_signal(a->ev, &a->sig_hup, SIGHUP, on_sighup, a);
	if (rc >= 0)
		rc = sd_event_add_signal(a->ev, &a->sig_term, SIGTERM, on_sigstop, a);
	if (rc >= 0)
		rc = sd_event_add_signal(a->ev, &a->sig_int, SIGINT, on_sigstop, a);
	if (rc >= 0)
		rc = watch_config(a);
	if (rc >= 0)
		rc = ep_timer_repeat(a->ev, &a->heartbeat, HEARTBEAT_NS, false, on_heartbeat, a,
				     "heartbeat");
	if (rc >= 0 && sd_watchdog_enabled(0, &wd_us) > 0 && wd_us) {
		log_info("systemd watchdog: pinging every %llu ms",
			 (unsigned long long)(wd_us / 2000));
		rc = ep_timer_repeat(a->ev, &a->watchdog, wd_us / 2 * 1000, false, on_watchdog, a,
				     "watchdog");
	}
	if (rc >= 0)
		rc = ep_clock_pub_start(&a->clock, a->ev, &a->dp);
	return rc < 0 ? rc : 0;
}

static int start(struct ep_agent *a)
{
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	char err[1024] = "";
	int rc;

	/* Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK. */
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	snprintf(a->runtime_dir, sizeof(a->runtime_dir), "%s", a->cfg.control_socket);
	{
		char *slash = strrchr(a->runtime_dir, '/');

		if (slash && slash != a->runtime_dir)
			*slash = '\0';
		else
			snprintf(a->runtime_dir, sizeof(a->runtime_dir), "/run/edgeplane");
	}
	rc = sd_event_new(&a->ev);
	if (rc < 0) {
		snprintf(err, sizeof(err), "cannot create the event loop: %s", strerror(-rc));
		goto fail;
	}
	rc = ep_datapath_open(&a->dp, &a->cfg.datapath, err, sizeof(err));
	if (rc)
		goto fail;
	rc = ep_services_init(&a->svcs, &a->dp.maps);
	if (!rc)
		rc = ep_services_recover(&a->svcs);
	if (rc) {
		snprintf(err, sizeof(err), "cannot read the pinned datapath state: %s", strerror(-rc));
		goto fail;
	}
	{
		struct ep_canary_deps cd = {
			.svcs = &a->svcs, .fds = a->dp.health, .ct = &a->dp.maps.ct, .ev = a->ev,
			.lock = &a->lock, .event = canary_event, .event_arg = a,
		};

		rc = ep_canary_start(&a->canary, &cd);
		if (rc) {
			snprintf(err, sizeof(err), "cannot start canary control: %s", strerror(-rc));
			goto fail;
		}
	}
	rc = apply_config(a, &a->cfg, err, sizeof(err));
	if (rc)
		goto fail;
	warn_forwarding_sysctls(&a->cfg);
	snprintf(a->socket_path, sizeof(a->socket_path), "%s", a->cfg.control_socket);
	rc = ep_control_start(&a->ctl, a, a->ev, a->socket_path, err, sizeof(err));
	if (rc)
		goto fail;
	rc = ep_metrics_start(a, a->cfg.metrics_listen, err, sizeof(err));
	if (rc)
		goto fail;
	rc = setup_loop(a);
	if (!rc) {
		a->gc.ct = &a->dp.maps.ct;
		a->gc.cfg = &a->cfg.datapath;
		a->gc.svcs = &a->svcs;
		a->gc.lock = &a->lock;
		rc = ep_ct_gc_start(&a->gc, a->ev);
	}
	if (rc) {
		snprintf(err, sizeof(err), "event loop setup failed: %s", strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	log_error("cannot start: %s", err);
	return rc ? rc : -EINVAL;
}

/* Start-up is done: from here on only the calls the agent makes at run time
 * (reloads, probes, dnsmasq supervision, metrics, Kubernetes) are allowed.
 * A failure is a start failure, never a silently unconfined agent. */
static int confine(struct ep_agent *a)
{
	char err[256] = "";
	int rc;

	if (a->opts.no_seccomp) {
		log_warn("seccomp: off (--no-seccomp); the agent runs unconfined");
		return 0;
	}
	rc = ep_seccomp_install(a->opts.log_json, err, sizeof(err));
	if (rc) {
		log_error("cannot start: seccomp: %s", err);
		return rc;
	}
	log_info("seccomp: confined to %zu system calls (deploy/seccomp/edgeplane-agent.syscalls); "
		 "any other kills the agent", ep_seccomp_allowed());
	return 0;
}

static void stop(struct ep_agent *a)
{
	ep_metrics_stop(a);
	ep_control_stop(a->ctl);
	a->ctl = NULL;
	ep_ct_gc_stop(&a->gc);
	ep_clock_pub_stop(&a->clock);
	if (a->opts.detach_on_exit)
		ep_mirror_detach_all(a->mirror, &a->dp);
	ep_mirror_free(a->mirror);
	a->mirror = NULL;
	if (a->opts.detach_on_exit && a->dp.tc_skel)
		ep_datapath_detach_all(&a->dp);
	else if (a->dp.tc_skel)
		log_info("datapath left attached and forwarding (maps pinned under %s)", a->dp.root);
	/* DNS mode stays in the datapath (pinned) like everything else. */
	ep_dns_failover_stop(a->failover);
	a->failover = NULL;
	/* dnsmasq outlives the agent like the datapath does, unless told. */
	ep_dns_cache_stop(a->cache, a->opts.detach_on_exit);
	a->cache = NULL;
	ep_canary_stop(a->canary);
	a->canary = NULL;
	ep_k8s_stop(a->k8s_canary);
	a->k8s_canary = NULL;
	/* Installed certificates stay for their consumers. */
	ep_certs_stop(a->certs);
	a->certs = NULL;
	ep_services_free(&a->svcs);
	ep_datapath_close(&a->dp);
	ep_config_free(&a->cfg);
	ep_source_free(&a->sig_hup);
	ep_source_free(&a->sig_term);
	ep_source_free(&a->sig_int);
	ep_source_free(&a->cfg_watch);
	ep_source_free(&a->cfg_poll);
	ep_source_free(&a->reload_timer);
	ep_source_free(&a->heartbeat);
	ep_source_free(&a->watchdog);
	a->ev = sd_event_unref(a->ev);
	pthread_mutex_destroy(&a->lock);
}

int ep_agent_run(const struct ep_agent_opts *o)
{
	struct ep_agent a = {.opts = *o};
	sigset_t set;
	int rc;

	/* Block before any thread exists (libmicrohttpd starts one): every
	 * thread inherits the mask, so these signals only arrive through the
	 * loop's signal sources and never kill the agent through a thread that
	 * does not expect them. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Now, while the agent has one thread and no filter: whatever the
	 * spawner starts (dnsmasq) is not under the agent's seccomp filter. */
	rc = ep_spawner_start(a.opts.argv);
	if (rc) {
		log_error("cannot start: the spawner process: %s", strerror(-rc));
		return 1;
	}
	/* The cache's helpers through the cache container's spawner server
	 * (lib/spawn.h): never the local one there, whose children would die
	 * with this container. Reached on first use; unreachable, the cache
	 * says so and retries with its restart backoff. */
	if (a.opts.spawner_path) {
		char why[160];

		ep_spawner_remote_set(a.opts.spawner_path);
		if (ep_spawner_remote_check(why, sizeof(why)))
			log_warn("the cache's spawner is not reachable yet (%s)", why);
		else
			log_info("the cache's helpers are started by the spawner at %s",
				 a.opts.spawner_path);
	}
	pthread_mutex_init(&a.lock, NULL);
	a.start_ns = ep_now_ns();
	a.heartbeat_ns = a.start_ns;
	if (read_config(&a, &a.cfg, &a.cfg_hash)) {
		sd_notifyf(0, "STATUS=bad config: %s", a.last_reload_error);
		pthread_mutex_destroy(&a.lock);
		ep_spawner_stop();
		return 2;
	}
	log_info("edgeplane-agent %s starting on node %s: %zu services, %zu backends, %zu interfaces",
		 EP_VERSION, a.cfg.node_name, a.cfg.n_services, count_backends(&a.cfg),
		 a.cfg.n_ifaces);
	rc = start(&a);
	if (!rc)
		rc = confine(&a);
	if (rc) {
		sd_notifyf(0, "STATUS=cannot start: %s", strerror(-rc));
		stop(&a);
		ep_spawner_stop();
		return 1;
	}
	a.last_reload_at = ep_wall_seconds();
	__atomic_store_n(&a.ready, true, __ATOMIC_RELAXED);
	log_info("ready: control socket %s", a.socket_path);
	sd_notifyf(0, "READY=1\nSTATUS=ready: %zu services, %zu backends, control socket %s",
		   a.cfg.n_services, count_backends(&a.cfg), a.socket_path);
	/* Test only (tests/e2e/seccomp.sh): prove that a violation is logged
	 * and kills the agent (with --no-seccomp: that the call itself is
	 * harmless). Exactly "1", so a stray value does nothing. */
	if (getenv("EP_SECCOMP_SELFTEST") &&
	    !strcmp(getenv("EP_SECCOMP_SELFTEST"), "1"))
		ep_seccomp_selftest();

	rc = sd_event_loop(a.ev);
	if (rc < 0)
		log_error("event loop failed: %s", strerror(-rc));
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	__atomic_store_n(&a.ready, false, __ATOMIC_RELAXED);
	stop(&a);
	ep_spawner_stop();
	return rc < 0 ? 1 : 0;
}
