#include "dns_cache.h"
#include "dns_cache_privs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_build.h"
#include "dns_exempt.h"
#include "dnsmasq.h"
#include "edgeplane_abi.h"
#include "evloop.h"
#include "log.h"
#include "netaddr.h"
#include "policy_process.h"
#include "snapshot.h"
#include "spawn.h"
#include "util.h"

#define SNAPSHOT_CHECK_NS (500ULL * 1000000ULL)
/* dnsmasq supervision, snapshot checks and the refresh run at this cadence. */
#define TICK_NS (100ULL * 1000000ULL)

enum refresh_result { REFRESH_NONE = 0, REFRESH_OK, REFRESH_REFUSED, REFRESH_FAILED };
static const char *const refresh_names[] = {"none", "ok", "refused", "failed"};

struct ep_dns_cache {
	struct ep_cfg_dns cfg;	/* copy of the dns section (canaries not owned) */
	char runtime_dir[PATH_MAX];
	struct ep_policy_proc *policy; /* the responder, a process of its own */
	struct ep_dnsmasq *dm;

	/* the snapshot being served */
	pthread_mutex_t lock; /* snap (read by hijack checks from other threads) */
	struct ep_snapshot snap;
	bool have_snapshot;
	uint64_t snap_id;   /* identity of the file loaded (mtime/size/inode) */
	bool warned_missing;
	/* What dnsmasq holds. It reads the preload at start and on SIGHUP, and
	 * SIGHUP kills it before its handlers are set up: it is only signalled
	 * once it has answered a health check. Until then the responder knows
	 * only the names of both the old and the new snapshot (a name in
	 * neither's common part gets SERVFAIL, "try again", never NODATA); the
	 * full new set follows the SIGHUP. */
	pid_t dm_pid;		 /* the dnsmasq the next two are about */
	uint64_t dm_loaded_id;	 /* snapshot id it has read; 0 = not known */
	struct ep_nameset pending_names;
	bool have_pending_names;
	double loaded_at;
	uint64_t next_check_ns;
	uint64_t reloads;
	uint64_t generation;

	/* background refresh */
	struct ep_dns_exempt_map *exempt; /* its sockets; NULL: no datapath map */
	pthread_t thread;
	bool running; /* a refresh thread exists (joined in tick) */
	/*
	 * The thread's result, handed over under t_lock: the thread fills
	 * t_result and t_outcome and sets t_done, all under the lock; the loop
	 * takes them under the lock, once t_done is set. last_refresh and
	 * last_result are the loop's own copy, the only one status, metrics
	 * and logs read: the thread never writes them, so a status request
	 * while a refresh runs reads the previous result, not one being built.
	 */
	pthread_mutex_t t_lock;
	bool t_done;
	enum refresh_result t_outcome;
	struct ep_cache_build_result t_result;
	bool force_refresh;
	uint64_t next_refresh_ns;
	enum refresh_result last_refresh;
	struct ep_cache_build_result last_result;
	double last_refresh_at;
	uint64_t refreshes[4];
	/* The thread's own copy of what it needs: a reload may change c->cfg
	 * while it runs. */
	char resolvers[EP_CFG_MAX_UPSTREAMS][EP_IP_STRLEN];
	const char *resolver_ptrs[EP_CFG_MAX_UPSTREAMS];
	size_t t_n_resolvers;
	char t_domains[PATH_MAX], t_preload[PATH_MAX];
	double t_max_loss, t_max_change;

	/* on the agent's loop */
	sd_event *ev;
	sd_event_source *timer;
	sd_event_source *exit_watch; /* dnsmasq's pidfd (a dup), one-shot */
	pid_t watched_pid;
	sd_event_source *policy_watch; /* the responder's, the same way */
	pid_t policy_watched_pid;
	pthread_mutex_t *agent_lock;
	ep_dns_upstream_gate gate;
	void *gate_arg;
};

static void fill_dnsmasq_opts(const struct ep_dns_cache *c, struct ep_dnsmasq_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->bin, sizeof(o->bin), "%s", c->cfg.cache.dnsmasq);
	o->listen = c->cfg.cache.listen;
	o->listen6 = c->cfg.cache.listen6;
	snprintf(o->preload, sizeof(o->preload), "%s", c->cfg.cache.preload);
	o->ttl = c->cfg.cache.ttl;
	o->cache_size = c->cfg.cache.cache_size;
	snprintf(o->upstream, sizeof(o->upstream), "%s#%d", EP_POLICY_ADDR, EP_POLICY_PORT);
	snprintf(o->runtime_dir, sizeof(o->runtime_dir), "%s", c->runtime_dir);
}

static void fill_policy_opts(const struct ep_dns_cache *c, struct ep_policy_proc_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->addr, sizeof(o->addr), "%s", EP_POLICY_ADDR);
	o->port = EP_POLICY_PORT;
	o->ttl = c->cfg.cache.ttl;
	snprintf(o->runtime_dir, sizeof(o->runtime_dir), "%s", c->runtime_dir);
	for (size_t i = 0; i < c->cfg.cache.n_fallback && i < EP_FALLBACK_MAX_SERVERS; i++)
		ep_ip_str(&c->cfg.cache.fallback[i], o->fallback[o->n_fallback++], sizeof(o->fallback[0]));
	/* The probes' anchor validates the fallback's answers too: one zone
	 * the operator vouches for, wherever its answers come from. */
	snprintf(o->trust_anchor, sizeof(o->trust_anchor), "%s", c->cfg.health.trust_anchor);
	if (o->trust_anchor[0]) {
		char *text = NULL;
		size_t len = 0;

		/* The config check read it moments ago; unreadable now, the
		 * responder says so itself. */
		if (ep_read_file(o->trust_anchor, 1 << 20, &text, &len) == 0)
			o->trust_anchor_sum = ep_hash64(text, len);
		free(text);
	}
}

static uint64_t file_id(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return 0;
	return ep_hash64(&st.st_mtim, sizeof(st.st_mtim)) ^ (uint64_t)st.st_size ^
	       ((uint64_t)st.st_ino << 24);
}

/* dnsmasq drops to an unprivileged user ("nobody") before it reads the
 * preload, so the file must be world-readable and every directory above it
 * searchable, or it silently serves nothing. Returns a reason or NULL. */
static const char *unreadable_by_others(const char *path, char *buf, size_t len)
{
	char dir[PATH_MAX];
	struct stat st;
	char *slash;

	if (stat(path, &st) == 0 && !(st.st_mode & S_IROTH)) {
		snprintf(buf, len, "%s is not world-readable (chmod o+r)", path);
		return buf;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	while ((slash = strrchr(dir, '/')) && slash != dir) {
		*slash = '\0';
		if (stat(dir, &st) == 0 && !(st.st_mode & S_IXOTH)) {
			snprintf(buf, len, "directory %s is not searchable by others (chmod o+x)", dir);
			return buf;
		}
	}
	return NULL;
}

/* Makes the running dnsmasq hold the snapshot being served (see dm_loaded_id),
 * then gives the responder the snapshot's full name set. */
static void sync_dnsmasq(struct ep_dns_cache *c)
{
	struct ep_dnsmasq_status st;

	if (!c->dm)
		return; /* first snapshot, loaded before dnsmasq starts */
	ep_dnsmasq_get_status(c->dm, &st);
	if (st.pid != c->dm_pid) {
		/* Started, restarted or adopted: whatever it read, read it again
		 * once it answers (a second read of the same file is harmless). */
		c->dm_pid = st.pid;
		c->dm_loaded_id = 0;
	}
	if (!st.pid || !st.up || !c->snap_id || c->dm_loaded_id == c->snap_id)
		return;
	if (ep_dnsmasq_reload(c->dm))
		return;
	c->dm_loaded_id = c->snap_id;
	if (c->have_pending_names) {
		ep_policy_proc_set_names(c->policy, &c->pending_names);
		ep_nameset_free(&c->pending_names);
		c->have_pending_names = false;
	}
}

/* Loads the preload file if it changed; tells the responder and dnsmasq. */
static void check_snapshot(struct ep_dns_cache *c, bool force)
{
	uint64_t id = file_id(c->cfg.cache.preload);
	struct ep_snapshot fresh;
	struct ep_nameset names;
	int rc;

	if (!id) {
		if ((c->have_snapshot || force) && !c->warned_missing)
			log_warn("DNS cache: preload %s is missing: dnsmasq keeps serving what it loaded "
				 "until it restarts; the agent keeps checking for the file",
				 c->cfg.cache.preload);
		c->warned_missing = true;
		c->snap_id = 0;
		return;
	}
	c->warned_missing = false;
	if (id == c->snap_id && !force)
		return;
	{
		char why[PATH_MAX + 64];

		if (unreadable_by_others(c->cfg.cache.preload, why, sizeof(why)))
			log_error("DNS cache: dnsmasq runs unprivileged and cannot read the preload: %s",
				  why);
	}
	rc = ep_snapshot_load(c->cfg.cache.preload, &fresh);
	if (rc) {
		log_error("DNS cache: cannot read %s: %s; still serving the previous snapshot",
			  c->cfg.cache.preload, strerror(-rc));
		c->snap_id = id; /* do not retry every tick; a new file changes the id */
		return;
	}
	ep_nameset_init(&names);
	if (ep_snapshot_names(&fresh, &names) < 0) {
		log_error("DNS cache: out of memory loading %s", c->cfg.cache.preload);
		ep_nameset_free(&names);
		ep_snapshot_free(&fresh);
		return;
	}
	/* Until dnsmasq has re-read the file (sync_dnsmasq), the responder
	 * knows only names in both snapshots: a name being added or removed
	 * gets SERVFAIL meanwhile, never a NODATA that would be cached. */
	if (!c->dm) {
		/* The first snapshot, before dnsmasq starts: it will read this
		 * very file, so the responder can know every name now. */
		ep_policy_proc_set_names(c->policy, &names);
		ep_nameset_free(&names);
		ep_nameset_init(&names);
	} else {
		struct ep_nameset both, old;

		ep_nameset_init(&both);
		ep_nameset_init(&old);
		if (c->have_snapshot && ep_snapshot_names(&c->snap, &old) >= 0)
			for (size_t i = 0; i < names.n; i++)
				if (ep_nameset_has(&old, names.order[i]) &&
				    ep_nameset_add(&both, names.order[i]) < 0)
					break;
		ep_nameset_free(&old);
		ep_policy_proc_set_names(c->policy, &both);
		ep_nameset_free(&both);
	}
	if (c->have_pending_names)
		ep_nameset_free(&c->pending_names);
	c->pending_names = names; /* ownership moves (empty if given to the responder) */
	c->have_pending_names = names.n > 0;
	if (!c->have_pending_names)
		ep_nameset_free(&c->pending_names);
	pthread_mutex_lock(&c->lock);
	if (c->have_snapshot)
		ep_snapshot_free(&c->snap);
	c->snap = fresh;
	c->have_snapshot = true;
	c->generation++;
	pthread_mutex_unlock(&c->lock);
	c->snap_id = id;
	c->loaded_at = ep_wall_seconds();
	c->reloads++;
	sync_dnsmasq(c);
	log_info("DNS cache: serving %s: %zu names, %zu records", c->cfg.cache.preload,
		 fresh.n_names, fresh.records);
}

static void *refresh_thread(void *arg)
{
	struct ep_dns_cache *c = arg;
	struct ep_cache_build_opts o;
	struct ep_cache_build_result res;
	FILE *sink = fopen("/dev/null", "we");
	int rc;

	ep_cache_build_opts_init(&o);
	o.domains_path = c->t_domains;
	o.out_path = c->t_preload;
	o.resolvers = c->resolver_ptrs;
	o.n_resolvers = c->t_n_resolvers;
	o.max_loss_pct = c->t_max_loss;
	o.max_change_pct = c->t_max_change;
	o.quiet = true;
	o.progress = sink ? sink : stderr;
	/* The refresh asks the upstreams themselves: while failed over (a
	 * forced `dns refresh`) the socket hooks would otherwise hand its
	 * queries to the cache it is rebuilding. */
	o.exempt = c->exempt;
	/* Built into the thread's own struct: the loop's last_result is read by
	 * status requests meanwhile. */
	rc = ep_cache_build(&o, &res);
	if (sink)
		fclose(sink);
	pthread_mutex_lock(&c->t_lock);
	c->t_result = res;
	c->t_outcome = rc == EP_CACHE_BUILD_OK	    ? REFRESH_OK
		       : rc == EP_CACHE_BUILD_REFUSED ? REFRESH_REFUSED
						      : REFRESH_FAILED;
	c->t_done = true;
	pthread_mutex_unlock(&c->t_lock);
	return NULL;
}

static void start_refresh(struct ep_dns_cache *c)
{
	for (size_t i = 0; i < c->cfg.n_upstreams; i++) {
		ep_ip_str(&c->cfg.upstreams[i], c->resolvers[i], sizeof(c->resolvers[i]));
		c->resolver_ptrs[i] = c->resolvers[i];
	}
	c->t_n_resolvers = c->cfg.n_upstreams;
	snprintf(c->t_domains, sizeof(c->t_domains), "%s", c->cfg.cache.domains);
	snprintf(c->t_preload, sizeof(c->t_preload), "%s", c->cfg.cache.preload);
	c->t_max_loss = c->cfg.cache.max_loss_percent;
	c->t_max_change = c->cfg.cache.max_change_percent;
	c->t_done = false; /* no thread runs: nothing else touches it now */
	if (pthread_create(&c->thread, NULL, refresh_thread, c)) {
		log_error("DNS cache: cannot start the refresh thread");
		return;
	}
	c->running = true;
	log_info("DNS cache: refreshing the snapshot from %zu upstream(s)", c->cfg.n_upstreams);
}

/* Takes the finished thread's result, if it has finished. */
static bool take_refresh_result(struct ep_dns_cache *c)
{
	bool done;

	pthread_mutex_lock(&c->t_lock);
	done = c->t_done;
	if (done) {
		c->last_result = c->t_result;
		c->last_refresh = c->t_outcome;
	}
	pthread_mutex_unlock(&c->t_lock);
	return done;
}

static void finish_refresh(struct ep_dns_cache *c)
{
	const struct ep_cache_build_result *r = &c->last_result;

	pthread_join(c->thread, NULL);
	c->running = false;
	c->last_refresh_at = ep_wall_seconds();
	c->refreshes[c->last_refresh]++;
	switch (c->last_refresh) {
	case REFRESH_OK:
		log_info("DNS cache: refresh done: %u of %u names resolved, %u records, %.1f s",
			 r->resolved, r->names, r->records, r->seconds);
		check_snapshot(c, false);
		break;
	case REFRESH_REFUSED:
		/* The loss guard runs first; when it passed, the change guard
		 * refused (r->error says which, with the percentages). */
		log_warn("DNS cache: refresh refused by the loss guard (%u of %u previous names lost, "
			 "%u changed their addresses); the old snapshot keeps serving",
			 r->lost_names, r->previous_names, r->changed_names);
		break;
	default:
		log_warn("DNS cache: refresh failed: %s; the old snapshot keeps serving",
			 r->error[0] ? r->error : "unknown error");
		break;
	}
}

static bool refresh_configured(const struct ep_dns_cache *c)
{
	return c->cfg.cache.domains[0] && c->cfg.cache.refresh_s && c->cfg.n_upstreams;
}

static int ensure_one_listen(struct ep_dns_cache *c, const struct ep_ip *ip, char *err,
			     size_t errlen)
{
	char a[EP_IP_STRLEN];

	if (!ip->family || ep_addr_is_local(ip))
		return 0;
	if (ep_addr_add_lo(ip, err, errlen))
		return -1;
	log_info("DNS cache: put %s on lo (no interface held it)", ep_ip_str(ip, a, sizeof(a)));
	return 0;
}

static int ensure_listen(struct ep_dns_cache *c, char *err, size_t errlen)
{
	if (ensure_one_listen(c, &c->cfg.cache.listen, err, errlen))
		return -1;
	return ensure_one_listen(c, &c->cfg.cache.listen6, err, errlen);
}

/* The responder's port keeps local users out only while it is privileged:
 * a network namespace can lower net.ipv4.ip_unprivileged_port_start (some
 * container runtimes set it to 0 in pods). Say so rather than stay silent. */
static void on_tick(void *userdata, uint64_t now);

static int on_helper_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	on_tick(userdata, ep_now_ns());
	return 0;
}

/*
 * A helper's exit (dnsmasq's, the responder's) is seen the moment it
 * happens, not at the next tick: an io source on its pidfd. Not
 * sd_event_add_child_pidfd(): an adopted helper (started by an earlier
 * agent) is not our child, and the supervisor reaps its own. The source
 * watches a dup of the supervisor's pidfd, so the supervisor closing its fd
 * can never leave the loop watching a reused fd number; it is one-shot: it
 * fires once per process, and the 100 ms tick remains the fallback.
 */
static void watch_exit(struct ep_dns_cache *c, sd_event_source **src, pid_t *watched, int fd,
		       pid_t pid, const char *desc)
{
	int dfd;

	if (fd < 0)
		pid = 0;
	if (pid == *watched)
		return;
	ep_source_free(src);
	*watched = 0;
	if (!pid || !c->ev)
		return;
	dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return;
	if (sd_event_add_io(c->ev, src, dfd, EPOLLIN, on_helper_exit, c) < 0) {
		close(dfd);
		return;
	}
	sd_event_source_set_io_fd_own(*src, 1);
	sd_event_source_set_enabled(*src, SD_EVENT_ONESHOT);
	sd_event_source_set_description(*src, desc);
	*watched = pid;
}

static void watch_helpers(struct ep_dns_cache *c)
{
	pid_t pid = 0;
	int fd;

	fd = c->dm ? ep_dnsmasq_pidfd(c->dm, &pid) : -1;
	watch_exit(c, &c->exit_watch, &c->watched_pid, fd, pid, "dnsmasq-exit");
	pid = 0;
	fd = c->policy ? ep_policy_proc_pidfd(c->policy, &pid) : -1;
	watch_exit(c, &c->policy_watch, &c->policy_watched_pid, fd, pid, "cache-responder-exit");
}

int ep_dns_cache_start(struct ep_dns_cache **out, const struct ep_config *cfg,
		       const char *runtime_dir, int exempt_map_fd, sd_event *ev,
		       pthread_mutex_t *lock, ep_dns_upstream_gate gate, void *gate_arg, char *err,
		       size_t errlen)
{
	struct ep_dns_cache *c = calloc(1, sizeof(*c));
	struct ep_policy_proc_opts po;
	struct ep_dnsmasq_opts o;
	int rc;

	*out = NULL;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->t_lock, NULL);
	c->cfg = cfg->dns;
	c->cfg.health.canaries = NULL; /* owned by the config; not ours to keep */
	c->cfg.health.n_canaries = 0;
	snprintf(c->runtime_dir, sizeof(c->runtime_dir), "%s", runtime_dir);
	/* Our own copy of the fd: the datapath may close its own (dns section
	 * removed) while a refresh thread still runs. */
	if (exempt_map_fd >= 0 &&
	    !(c->exempt = ep_dns_exempt_map_new(exempt_map_fd, EP_DNS_EXEMPT_REFRESH))) {
		snprintf(err, errlen, "cannot open the DNS exemption map: %s", strerror(errno));
		goto fail;
	}
	if (ep_dns_cache_check_privs(err, errlen) || ensure_listen(c, err, errlen))
		goto fail;
	fill_policy_opts(c, &po);
	c->policy = ep_policy_proc_new(&po);
	if (!c->policy) {
		snprintf(err, errlen, "cannot set up the cache responder: %s", strerror(errno));
		goto fail;
	}
	/* The names file first: the responder (new or adopted) serves it. */
	check_snapshot(c, true);
	if (!c->have_snapshot) {
		struct ep_nameset none;

		ep_nameset_init(&none);
		ep_policy_proc_set_names(c->policy, &none);
		ep_nameset_free(&none);
	}
	if (ep_policy_proc_start(c->policy, err, errlen))
		goto fail;
	fill_dnsmasq_opts(c, &o);
	c->dm = ep_dnsmasq_new(&o);
	if (!c->dm) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (ep_dnsmasq_start(c->dm, err, errlen))
		goto fail;
	/* No snapshot yet and a way to build one: do it now, not in refresh_s. */
	c->next_refresh_ns = ep_now_ns() + (c->have_snapshot ? c->cfg.cache.refresh_s * 1000000000ULL : 0);
	if (!refresh_configured(c))
		log_info("DNS cache: no refresh (%s)",
			 !c->cfg.cache.domains[0] ? "dns.cache.domains not set" : "dns.cache.refresh_s is 0");
	c->ev = ev;
	c->agent_lock = lock;
	c->gate = gate;
	c->gate_arg = gate_arg;
	rc = ep_timer_repeat(ev, &c->timer, TICK_NS, false, on_tick, c, "dns-cache");
	if (rc) {
		snprintf(err, errlen, "cannot add the DNS cache timer: %s", strerror(-rc));
		goto fail;
	}
	watch_helpers(c);
	*out = c;
	return 0;
fail:
	ep_dns_cache_stop(c, false);
	return -EINVAL;
}

int ep_dns_cache_reconfigure(struct ep_dns_cache *c, const struct ep_config *cfg, char *err,
			     size_t errlen)
{
	struct ep_policy_proc_opts po;
	struct ep_dnsmasq_opts o;
	bool preload_changed = strcmp(c->cfg.cache.preload, cfg->dns.cache.preload);

	c->cfg = cfg->dns;
	c->cfg.health.canaries = NULL;
	c->cfg.health.n_canaries = 0;
	if (ensure_listen(c, err, errlen))
		return -1;
	/* The TTL is on the responder's command line: a new one restarts it. */
	fill_policy_opts(c, &po);
	if (ep_policy_proc_reconfigure(c->policy, &po, err, errlen))
		return -1;
	fill_dnsmasq_opts(c, &o);
	if (ep_dnsmasq_reconfigure(c->dm, &o, err, errlen))
		return -1;
	if (preload_changed)
		check_snapshot(c, true);
	return 0;
}

static void tick(struct ep_dns_cache *c, uint64_t now, bool upstream_healthy)
{
	ep_dnsmasq_tick(c->dm, now);
	ep_policy_proc_tick(c->policy, now);
	sync_dnsmasq(c);
	if (c->running && take_refresh_result(c))
		finish_refresh(c);
	if (now >= c->next_check_ns) {
		c->next_check_ns = now + SNAPSHOT_CHECK_NS;
		check_snapshot(c, false);
	}
	if (c->running || !(refresh_configured(c) || c->force_refresh))
		return;
	if (c->force_refresh || now >= c->next_refresh_ns) {
		c->next_refresh_ns = now + (uint64_t)c->cfg.cache.refresh_s * 1000000000ULL;
		if (!upstream_healthy && !c->force_refresh) {
			log_info("DNS cache: refresh skipped: upstream DNS is not healthy");
			return;
		}
		c->force_refresh = false;
		start_refresh(c);
	}
}

static void on_tick(void *userdata, uint64_t now)
{
	struct ep_dns_cache *c = userdata;

	pthread_mutex_lock(c->agent_lock);
	tick(c, now, !c->gate || c->gate(c->gate_arg));
	watch_helpers(c);
	pthread_mutex_unlock(c->agent_lock);
}

int ep_dns_cache_refresh_now(struct ep_dns_cache *c, char *err, size_t errlen)
{
	if (!c->cfg.cache.domains[0] || !c->cfg.n_upstreams) {
		snprintf(err, errlen, "no dns.cache.domains configured: nothing to refresh from");
		return -EINVAL;
	}
	if (c->running) {
		snprintf(err, errlen, "a refresh is already running");
		return -EBUSY;
	}
	c->force_refresh = true;
	return 0;
}

uint64_t ep_dns_cache_generation(struct ep_dns_cache *c)
{
	uint64_t g;

	pthread_mutex_lock(&c->lock);
	g = c->generation;
	pthread_mutex_unlock(&c->lock);
	return g;
}

void ep_dns_cache_with_snapshot(struct ep_dns_cache *c,
				void (*fn)(const struct ep_snapshot *s, void *arg), void *arg)
{
	pthread_mutex_lock(&c->lock);
	if (c->have_snapshot)
		fn(&c->snap, arg);
	pthread_mutex_unlock(&c->lock);
}

bool ep_dns_cache_pick(void *cache, char *name, size_t namelen, struct ep_dns_addr *addrs,
		       size_t *n, size_t max)
{
	struct ep_dns_cache *c = cache;
	bool found = false;

	*n = 0;
	pthread_mutex_lock(&c->lock);
	if (c->have_snapshot && c->snap.n_names) {
		/* Random probing from a random slot finds a used one quickly: the
		 * table is at most half full. */
		for (int tries = 0; tries < 64 && !found; tries++) {
			const struct ep_snapshot_entry *e = &c->snap.slots[(size_t)rand() % c->snap.n_slots];
			int fam;

			if (!e->name || !e->count)
				continue;
			fam = c->snap.addrs[e->first].family;
			snprintf(name, namelen, "%s", e->name);
			for (uint32_t i = 0; i < e->count && *n < max; i++)
				if (c->snap.addrs[e->first + i].family == fam)
					addrs[(*n)++] = c->snap.addrs[e->first + i];
			found = true;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

void ep_dns_cache_health(struct ep_dns_cache *c, uint64_t now, struct ep_dns_cache_health *h)
{
	struct ep_dnsmasq_status ds;

	memset(h, 0, sizeof(*h));
	ep_dnsmasq_get_status(c->dm, &ds);
	h->last_answer_age_s = ds.last_ok_ns ? (double)(now - ds.last_ok_ns) / 1e9 : -1;
	h->answering = ds.up && ds.pid && ds.last_ok_ns && now - ds.last_ok_ns <= EP_DNS_CACHE_FRESH_NS;
	pthread_mutex_lock(&c->lock);
	h->records = c->have_snapshot ? c->snap.records : 0;
	pthread_mutex_unlock(&c->lock);
	h->usable = h->answering && h->records > 0;
}

json_t *ep_dns_cache_status(struct ep_dns_cache *c)
{
	struct ep_dnsmasq_status ds;
	struct ep_policy_stats ps;
	char ip[EP_IP_STRLEN];
	json_t *o = json_object(), *dm = json_object(), *snap = json_object(), *ref = json_object();

	ep_dnsmasq_get_status(c->dm, &ds);
	ep_policy_proc_get_stats(c->policy, &ps);
	json_object_set_new(dm, "state", json_string(ds.up ? "answering" : ds.pid ? "starting or not answering"
										   : "restarting"));
	json_object_set_new(dm, "pid", json_integer(ds.pid));
	json_object_set_new(dm, "adopted", json_boolean(ds.adopted));
	json_object_set_new(dm, "restarts", json_integer((json_int_t)ds.restarts));
	json_object_set_new(dm, "health_ok", json_integer((json_int_t)ds.health_ok));
	json_object_set_new(dm, "health_failed", json_integer((json_int_t)ds.health_failed));
	json_object_set_new(dm, "started_at", json_real(ds.started_at));
	json_object_set_new(dm, "last_problem", ds.last_problem[0] ? json_string(ds.last_problem)
								   : json_null());
	pthread_mutex_lock(&c->lock);
	json_object_set_new(snap, "path", json_string(c->cfg.cache.preload));
	json_object_set_new(snap, "loaded", json_boolean(c->have_snapshot));
	json_object_set_new(snap, "names", json_integer((json_int_t)(c->have_snapshot ? c->snap.n_names : 0)));
	json_object_set_new(snap, "records", json_integer((json_int_t)(c->have_snapshot ? c->snap.records : 0)));
	json_object_set_new(snap, "file_age_seconds",
			    c->have_snapshot ? json_real(ep_wall_seconds() - (double)c->snap.mtime)
					     : json_null());
	pthread_mutex_unlock(&c->lock);
	json_object_set_new(snap, "loaded_at", json_real(c->loaded_at));
	json_object_set_new(ref, "configured", json_boolean(refresh_configured(c)));
	json_object_set_new(ref, "interval_seconds", json_integer(c->cfg.cache.refresh_s));
	json_object_set_new(ref, "running", json_boolean(c->running));
	json_object_set_new(ref, "last_result", json_string(refresh_names[c->last_refresh]));
	json_object_set_new(ref, "last_at", json_real(c->last_refresh_at));
	if (c->last_refresh != REFRESH_NONE)
		json_object_set_new(ref, "last_summary",
				    json_pack("{s:i, s:i, s:i, s:i, s:i, s:f, s:s}", "names",
					      c->last_result.names, "resolved", c->last_result.resolved,
					      "records", c->last_result.records, "lost_names",
					      c->last_result.lost_names, "changed_names",
					      c->last_result.changed_names, "seconds", c->last_result.seconds,
					      "error", c->last_result.error));
	json_object_set_new(o, "listen", json_string(ep_ip_str(&c->cfg.cache.listen, ip, sizeof(ip))));
	if (c->cfg.cache.listen6.family)
		json_object_set_new(o, "listen6",
				    json_string(ep_ip_str(&c->cfg.cache.listen6, ip, sizeof(ip))));
	json_object_set_new(o, "ttl", json_integer(c->cfg.cache.ttl));
	json_object_set_new(o, "dnsmasq", dm);
	json_object_set_new(o, "snapshot", snap);
	json_object_set_new(o, "refresh", ref);
	{
		struct ep_policy_proc_status rs;

		ep_policy_proc_get_status(c->policy, &rs);
		json_object_set_new(o, "responder",
				    json_pack("{s:s, s:i, s:b, s:I, s:f, s:o}", "state",
					      rs.up ? "answering" : rs.pid ? "starting or not answering"
								   : "restarting",
					      "pid", (int)rs.pid, "adopted", rs.adopted, "restarts",
					      (json_int_t)rs.restarts, "started_at", rs.started_at,
					      "last_problem",
					      rs.last_problem[0] ? json_string(rs.last_problem)
								 : json_null()));
	}
	{
		/* Who starts the helpers: in a pod, the cache container's spawner
		 * server; while it is unreachable a helper that dies stays down. */
		const char *sp = ep_spawner_remote_path();
		char why[200] = "";
		int rc = sp ? ep_spawner_remote_check(why, sizeof(why)) : 0;

		json_object_set_new(o, "spawner",
				    json_pack("{s:s, s:o, s:b, s:o}", "kind", sp ? "remote" : "local",
					      "socket", sp ? json_string(sp) : json_null(), "reachable",
					      rc == 0, "problem", rc ? json_string(why) : json_null()));
	}
	json_object_set_new(o, "policy_answers",
			    json_pack("{s:I, s:I, s:I}", "nodata", (json_int_t)ps.nodata, "servfail",
				      (json_int_t)ps.servfail, "formerr", (json_int_t)ps.formerr));
	{
		json_t *fb = json_array();

		for (size_t i = 0; i < c->cfg.cache.n_fallback; i++)
			json_array_append_new(fb, json_string(ep_ip_str(&c->cfg.cache.fallback[i], ip,
									  sizeof(ip))));
		json_object_set_new(o, "fallback",
				    json_pack("{s:o, s:I, s:I, s:I, s:o}", "resolvers", fb, "answered",
					      (json_int_t)ps.fallback_answered, "failed",
					      (json_int_t)ps.fallback_failed, "bogus",
					      (json_int_t)ps.fallback_bogus, "trust_anchor",
					      c->cfg.cache.n_fallback && c->cfg.health.trust_anchor[0]
						      ? json_string(c->cfg.health.trust_anchor)
						      : json_null()));
	}
	return o;
}

void ep_dns_cache_metrics(struct ep_dns_cache *c, struct ep_strbuf *b)
{
	struct ep_dnsmasq_status ds;
	struct ep_policy_stats ps;
	size_t records, names;
	double mtime;

	ep_dnsmasq_get_status(c->dm, &ds);
	ep_policy_proc_get_stats(c->policy, &ps);
	pthread_mutex_lock(&c->lock);
	records = c->have_snapshot ? c->snap.records : 0;
	names = c->have_snapshot ? c->snap.n_names : 0;
	mtime = c->have_snapshot ? (double)c->snap.mtime : 0;
	pthread_mutex_unlock(&c->lock);
	ep_sb_printf(b, "# HELP edgeplane_cache_records Address records in the preload snapshot dnsmasq serves.\n"
			"# TYPE edgeplane_cache_records gauge\nedgeplane_cache_records %zu\n",
		     records);
	ep_sb_printf(b, "# HELP edgeplane_cache_names Names in the preload snapshot.\n"
			"# TYPE edgeplane_cache_names gauge\nedgeplane_cache_names %zu\n",
		     names);
	ep_sb_printf(b, "# HELP edgeplane_cache_snapshot_timestamp_seconds When the snapshot file was written.\n"
			"# TYPE edgeplane_cache_snapshot_timestamp_seconds gauge\n"
			"edgeplane_cache_snapshot_timestamp_seconds %.0f\n",
		     mtime);
	ep_sb_printf(b, "# HELP edgeplane_cache_up 1 while dnsmasq runs and has not missed 3 health checks in a row.\n"
			"# TYPE edgeplane_cache_up gauge\nedgeplane_cache_up %d\n",
		     ds.up ? 1 : 0);
	if (ep_spawner_remote_path())
		/* Only in the chart's pod: while the cache container's spawner is
		 * unreachable, a helper that dies stays down. */
		ep_sb_printf(b, "# HELP edgeplane_cache_spawner_up 1 while the cache container's spawner "
				"server answers (agent --spawner).\n"
				"# TYPE edgeplane_cache_spawner_up gauge\nedgeplane_cache_spawner_up %d\n",
			     ep_spawner_remote_check(NULL, 0) == 0);
	ep_sb_printf(b, "# HELP edgeplane_cache_restarts_total dnsmasq restarts by the agent.\n"
			"# TYPE edgeplane_cache_restarts_total counter\nedgeplane_cache_restarts_total %llu\n",
		     (unsigned long long)ds.restarts);
	ep_sb_printf(b, "# HELP edgeplane_cache_health_checks_total dnsmasq health checks by result.\n"
			"# TYPE edgeplane_cache_health_checks_total counter\n"
			"edgeplane_cache_health_checks_total{result=\"ok\"} %llu\n"
			"edgeplane_cache_health_checks_total{result=\"failed\"} %llu\n",
		     (unsigned long long)ds.health_ok, (unsigned long long)ds.health_failed);
	ep_sb_printf(b, "# HELP edgeplane_cache_refreshes_total Background snapshot rebuilds by result.\n"
			"# TYPE edgeplane_cache_refreshes_total counter\n");
	for (int r = REFRESH_OK; r <= REFRESH_FAILED; r++)
		ep_sb_printf(b, "edgeplane_cache_refreshes_total{result=\"%s\"} %llu\n", refresh_names[r],
			     (unsigned long long)c->refreshes[r]);
	ep_sb_printf(b, "# HELP edgeplane_cache_policy_answers_total Answers for what the snapshot lacks: "
			"NODATA (known name, missing type) or SERVFAIL (unknown name).\n"
			"# TYPE edgeplane_cache_policy_answers_total counter\n"
			"edgeplane_cache_policy_answers_total{answer=\"nodata\"} %llu\n"
			"edgeplane_cache_policy_answers_total{answer=\"servfail\"} %llu\n",
		     (unsigned long long)ps.nodata, (unsigned long long)ps.servfail);
	ep_sb_printf(b, "# HELP edgeplane_cache_fallback_total Names outside the snapshot sent to dns.cache.fallback, by outcome (failed: none answered in time, SERVFAIL; bogus: answers failed DNSSEC validation, SERVFAIL).\n"
			"# TYPE edgeplane_cache_fallback_total counter\n"
			"edgeplane_cache_fallback_total{result=\"answered\"} %llu\n"
			"edgeplane_cache_fallback_total{result=\"failed\"} %llu\n"
			"edgeplane_cache_fallback_total{result=\"bogus\"} %llu\n",
		     (unsigned long long)ps.fallback_answered, (unsigned long long)ps.fallback_failed,
		     (unsigned long long)ps.fallback_bogus);
}

void ep_dns_cache_stop(struct ep_dns_cache *c, bool stop_dnsmasq)
{
	if (!c)
		return;
	ep_source_free(&c->timer);
	ep_source_free(&c->exit_watch);
	ep_source_free(&c->policy_watch);
	if (c->running) {
		log_info("DNS cache: waiting for the running refresh to finish");
		pthread_join(c->thread, NULL);
	}
	if (c->dm)
		ep_dnsmasq_free(c->dm, stop_dnsmasq);
	/* Like dnsmasq: it keeps answering after a plain stop. */
	ep_policy_proc_free(c->policy, stop_dnsmasq);
	/* The address was put on lo by this agent or an earlier one: both mean
	 * the cache's, and a detached agent leaves nothing behind. */
	if (stop_dnsmasq && ep_addr_del_lo(&c->cfg.cache.listen) == 0)
		log_info("DNS cache: removed its address from lo");
	if (stop_dnsmasq && c->cfg.cache.listen6.family && ep_addr_del_lo(&c->cfg.cache.listen6) == 0)
		log_info("DNS cache: removed its IPv6 address from lo");
	if (c->have_snapshot)
		ep_snapshot_free(&c->snap);
	if (c->have_pending_names)
		ep_nameset_free(&c->pending_names);
	ep_dns_exempt_map_free(c->exempt);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->t_lock);
	free(c);
}
