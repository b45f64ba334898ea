#include "agent.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "control.h"
#include "dns_cache.h"
#include "dns_failover.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define TICK_MS 100
#define GC_INTERVAL_NS (2ULL * 1000000000ULL)
#define RELOAD_DEBOUNCE_NS (200ULL * 1000000ULL)
#define CONFIG_POLL_NS (2ULL * 1000000000ULL)

enum { EV_SIGNAL = 1, EV_INOTIFY, EV_TIMER, EV_CONTROL };

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
	return ep_dns_failover_start(&a->failover, cfg, &a->dp.dns, a->cache, err, errlen);
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
	return ep_dns_cache_start(&a->cache, cfg, a->runtime_dir, err, errlen);
}

static int apply_config(struct ep_agent *a, const struct ep_config *cfg, char *err, size_t errlen)
{
	int rc;

	a->dp.xdp_mode = cfg->datapath.xdp_mode;
	rc = ep_datapath_sync_ifaces(&a->dp, cfg, err, errlen);
	if (!rc)
		rc = ep_services_apply(&a->svcs, cfg, err, errlen);
	if (!rc)
		rc = ep_datapath_set_forwarding(&a->dp, cfg->datapath.forwarding);
	if (!rc)
		rc = apply_dns(a, cfg, err, errlen);
	return rc;
}

int ep_agent_reload(struct ep_agent *a, const char *why)
{
	struct ep_config nw = {};
	char err[1024] = "";
	uint64_t hash = 0;
	int rc;

	a->reload_pending_ns = 0;
	rc = read_config(a, &nw, &hash);
	if (rc) {
		a->reloads_failed++;
		log_error("reload (%s) refused: the running config keeps serving", why);
		return rc;
	}
	if (hash == a->cfg_hash && strcmp(why, "SIGHUP") && strcmp(why, "control socket")) {
		ep_config_free(&nw);
		return 0; /* file touched, content unchanged */
	}
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
	return 0;
}

static void run_gc(struct ep_agent *a)
{
	uint8_t *refs = calloc(EP_MAX_BACKENDS / 8, 1);
	struct ep_ct_gc_result res;

	if (!refs)
		return;
	if (ep_ct_gc(&a->dp.maps.ct, ep_datapath_clock_now(), a->cfg.datapath.ct_timeout_tcp_s,
		     a->cfg.datapath.ct_timeout_udp_s, refs, &res) == 0) {
		pthread_mutex_lock(&a->lock);
		a->last_gc = res;
		a->ct_expired_total += res.expired;
		ep_services_release_unreferenced(&a->svcs, refs);
		pthread_mutex_unlock(&a->lock);
	}
	free(refs);
}

static int watch_config(struct ep_agent *a)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", a->opts.config_path);
	a->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (a->inofd < 0)
		return -errno;
	/* The directory, not the file: editors and Kubernetes ConfigMaps replace
	 * the file (rename, ..data symlink swap) rather than write into it. */
	if (inotify_add_watch(a->inofd, dirname(dir),
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0) {
		log_warn("cannot watch %s for changes (%s); SIGHUP still reloads", dir,
			 strerror(errno));
	}
	return 0;
}

static int add_fd(struct ep_agent *a, int fd, int tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)tag};

	return epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void agent_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

static int setup_loop(struct ep_agent *a)
{
	struct itimerspec its = {
		.it_interval = {.tv_nsec = TICK_MS * 1000000L},
		.it_value = {.tv_nsec = TICK_MS * 1000000L},
	};
	sigset_t set;

	agent_sigset(&set);
	a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	a->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (a->sigfd < 0 || a->epfd < 0 || a->timerfd < 0)
		return -errno;
	timerfd_settime(a->timerfd, 0, &its, NULL);
	watch_config(a);
	if (add_fd(a, a->sigfd, EV_SIGNAL) || add_fd(a, a->timerfd, EV_TIMER) ||
	    (a->inofd >= 0 && add_fd(a, a->inofd, EV_INOTIFY)) ||
	    add_fd(a, a->ctl_fd, EV_CONTROL))
		return -errno;
	return 0;
}

static void on_signal(struct ep_agent *a)
{
	struct signalfd_siginfo si;

	while (read(a->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			ep_agent_reload(a, "SIGHUP");
		} else {
			log_info("%s received: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			a->stopping = true;
		}
	}
}

static void on_inotify(struct ep_agent *a)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(a->inofd, buf, sizeof(buf)) > 0)
		;
	a->reload_pending_ns = ep_now_ns() + RELOAD_DEBOUNCE_NS;
}

static void on_tick(struct ep_agent *a)
{
	uint64_t expirations, now = ep_now_ns();

	while (read(a->timerfd, &expirations, sizeof(expirations)) > 0)
		;
	__atomic_store_n(&a->heartbeat_ns, now, __ATOMIC_RELAXED);
	if (ep_datapath_clock_now() != a->published_s) {
		a->published_s = ep_datapath_clock_now();
		ep_datapath_publish_clock(&a->dp);
	}
	/* inotify can miss changes (bind mounts, some network filesystems): also
	 * compare the file's identity every couple of seconds. */
	if (now >= a->next_stat_ns) {
		struct stat st;

		a->next_stat_ns = now + CONFIG_POLL_NS;
		if (stat(a->opts.config_path, &st) == 0) {
			uint64_t id = ep_hash64(&st.st_mtim, sizeof(st.st_mtim)) ^ (uint64_t)st.st_size ^
				      ((uint64_t)st.st_ino << 20);

			if (a->cfg_stat_id && id != a->cfg_stat_id && !a->reload_pending_ns)
				a->reload_pending_ns = now;
			a->cfg_stat_id = id;
		}
	}
	if (a->reload_pending_ns && now >= a->reload_pending_ns)
		ep_agent_reload(a, "file change");
	if (now >= a->next_gc_ns) {
		run_gc(a);
		a->next_gc_ns = now + GC_INTERVAL_NS;
	}
	if (a->cache || a->failover) {
		pthread_mutex_lock(&a->lock);
		if (a->failover)
			ep_dns_failover_tick(a->failover, now);
		if (a->cache)
			ep_dns_cache_tick(a->cache, now,
					  !a->failover || ep_dns_failover_upstream_healthy(a->failover));
		pthread_mutex_unlock(&a->lock);
	}
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
	rc = apply_config(a, &a->cfg, err, sizeof(err));
	if (rc)
		goto fail;
	warn_forwarding_sysctls(&a->cfg);
	snprintf(a->socket_path, sizeof(a->socket_path), "%s", a->cfg.control_socket);
	a->ctl_fd = ep_control_open(a->socket_path, err, sizeof(err));
	if (a->ctl_fd < 0) {
		rc = a->ctl_fd;
		goto fail;
	}
	rc = ep_metrics_start(a, a->cfg.metrics_listen, err, sizeof(err));
	if (rc)
		goto fail;
	rc = setup_loop(a);
	if (rc) {
		snprintf(err, sizeof(err), "event loop setup failed: %s", strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	log_error("cannot start: %s", err);
	return rc ? rc : -EINVAL;
}

static void stop(struct ep_agent *a)
{
	ep_metrics_stop(a);
	ep_control_close(a->ctl_fd, a->socket_path);
	a->ctl_fd = -1;
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
	ep_services_free(&a->svcs);
	ep_datapath_close(&a->dp);
	ep_config_free(&a->cfg);
	if (a->epfd >= 0)
		close(a->epfd);
	if (a->sigfd >= 0)
		close(a->sigfd);
	if (a->inofd >= 0)
		close(a->inofd);
	if (a->timerfd >= 0)
		close(a->timerfd);
	pthread_mutex_destroy(&a->lock);
}

int ep_agent_run(const struct ep_agent_opts *o)
{
	struct ep_agent a = {
		.opts = *o,
		.ctl_fd = -1,
		.epfd = -1,
		.sigfd = -1,
		.inofd = -1,
		.timerfd = -1,
	};
	int rc;

	sigset_t set;

	/* Block before any thread exists (libmicrohttpd starts one): every
	 * thread inherits the mask, so these signals only arrive via signalfd
	 * and never kill the agent through a thread that does not expect them. */
	agent_sigset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&a.lock, NULL);
	a.start_ns = ep_now_ns();
	a.heartbeat_ns = a.start_ns;
	if (read_config(&a, &a.cfg, &a.cfg_hash)) {
		pthread_mutex_destroy(&a.lock);
		return 2;
	}
	log_info("edgeplane-agent %s starting on node %s: %zu services, %zu backends, %zu interfaces",
		 EP_VERSION, a.cfg.node_name, a.cfg.n_services, count_backends(&a.cfg),
		 a.cfg.n_ifaces);
	rc = start(&a);
	if (rc) {
		stop(&a);
		return 1;
	}
	a.last_reload_at = ep_wall_seconds();
	run_gc(&a);
	a.next_gc_ns = ep_now_ns() + GC_INTERVAL_NS;
	__atomic_store_n(&a.ready, true, __ATOMIC_RELAXED);
	log_info("ready: control socket %s", a.socket_path);

	while (!a.stopping) {
		struct epoll_event evs[8];
		int n = epoll_wait(a.epfd, evs, 8, 1000);

		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case EV_SIGNAL:
				on_signal(&a);
				break;
			case EV_INOTIFY:
				on_inotify(&a);
				break;
			case EV_TIMER:
				on_tick(&a);
				break;
			case EV_CONTROL:
				ep_control_serve_one(&a, a.ctl_fd);
				break;
			}
		}
	}
	__atomic_store_n(&a.ready, false, __ATOMIC_RELAXED);
	stop(&a);
	return 0;
}
