#include "policy_process.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "dnssec_check.h"
#include "hosts_file.h"
#include "log.h"
#include "log_tail.h"
#include "supervised.h"
#include "util.h"

/* The counters the process publishes, read by the agent: a fixed layout in a
 * file of its own (the responder is another process, and the agent may be a
 * newer or older build: magic and version say whether it can read it). */
#define STATS_MAGIC 0x45505053u /* "EPPS" */
#define STATS_VERSION 3
struct stats_file {
	uint32_t magic, version;
	int32_t pid; /* the responder that writes it: a stale file names another */
	uint32_t names;
	uint64_t nodata, servfail, formerr, dropped;
	uint64_t loads; /* names file reads */
	/* version 2 */
	uint64_t fallback_answered, fallback_failed;
	/* version 3 */
	uint64_t fallback_bogus;
};
/* What a version 1 or 2 responder (an older build, adopted) writes. */
#define STATS_V1_SIZE offsetof(struct stats_file, fallback_answered)
#define STATS_V2_SIZE offsetof(struct stats_file, fallback_bogus)

#define PUBLISH_NS (100ULL * 1000000ULL)
#define HEALTH_INTERVAL_NS (1000ULL * 1000000ULL)
#define HEALTH_TIMEOUT_NS (500ULL * 1000000ULL)
#define HEALTH_FAILS_TO_RESTART 3
#define PROG "edgeplane-agent"

/* ---- the process --------------------------------------------------------- */

static int load_names(struct ep_policy_responder *r, const char *path, size_t *n)
{
	struct ep_nameset names;
	int rc;

	ep_nameset_init(&names);
	rc = ep_hosts_read_names(path, &names);
	if (rc) {
		ep_nameset_free(&names);
		return rc;
	}
	*n = names.n;
	ep_policy_set_names(r, &names);
	ep_nameset_free(&names);
	return 0;
}

static void publish(struct stats_file *sf, struct ep_policy_responder *r)
{
	struct ep_policy_stats st;

	ep_policy_get_stats(r, &st);
	__atomic_store_n(&sf->nodata, st.nodata, __ATOMIC_RELAXED);
	__atomic_store_n(&sf->servfail, st.servfail, __ATOMIC_RELAXED);
	__atomic_store_n(&sf->formerr, st.formerr, __ATOMIC_RELAXED);
	__atomic_store_n(&sf->dropped, st.dropped, __ATOMIC_RELAXED);
	__atomic_store_n(&sf->fallback_answered, st.fallback_answered, __ATOMIC_RELAXED);
	__atomic_store_n(&sf->fallback_failed, st.fallback_failed, __ATOMIC_RELAXED);
	__atomic_store_n(&sf->fallback_bogus, st.fallback_bogus, __ATOMIC_RELAXED);
}

static struct stats_file *map_stats(const char *path)
{
	struct stats_file *sf;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return NULL;
	/* Zeroed: counters of an earlier responder must not show as ours. */
	if (ftruncate(fd, 0) || ftruncate(fd, sizeof(*sf))) {
		close(fd);
		return NULL;
	}
	sf = mmap(NULL, sizeof(*sf), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (sf == MAP_FAILED)
		return NULL;
	sf->pid = (int32_t)getpid();
	sf->version = STATS_VERSION;
	__atomic_store_n(&sf->magic, STATS_MAGIC, __ATOMIC_RELEASE);
	return sf;
}

static int split_listen(char *s, uint16_t *port)
{
	char *colon = strrchr(s, ':'), *end;
	long v;

	if (!colon)
		return -1;
	*colon = '\0';
	v = strtol(colon + 1, &end, 10);
	if (*end || v <= 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	if (s[0] == '[' && colon[-1] == ']') { /* [V6]:PORT */
		colon[-1] = '\0';
		memmove(s, s + 1, strlen(s));
	}
	return 0;
}

/* The responder's log: its stats file's name with .log for .stats. */
static void responder_log_path(const char *stats, char *out, size_t len)
{
	size_t n = strlen(stats);

	if (n > 6 && !strcmp(stats + n - 6, ".stats"))
		snprintf(out, len, "%.*s.log", (int)(n - 6), stats);
	else
		snprintf(out, len, "%s.log", stats);
}

int ep_policy_process_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"cache-responder", no_argument, NULL, 'R'},
		{"listen", required_argument, NULL, 'L'},
		{"ttl", required_argument, NULL, 't'},
		{"names", required_argument, NULL, 'n'},
		{"stats", required_argument, NULL, 's'},
		{"log-format", required_argument, NULL, 'f'},
		{"fallback", required_argument, NULL, 'F'},
		{"trust-anchor", required_argument, NULL, 'A'},
		{"trust-anchor-sum", required_argument, NULL, 'a'}, /* for the agent only */
		{},
	};
	char listen[128] = "", err[256];
	const char *fallback[EP_FALLBACK_MAX_SERVERS];
	int n_fallback = 0;
	const char *names_path = NULL, *stats_path = NULL, *anchor_path = NULL;
	struct ep_dnssec_anchor *anchor = NULL;
	struct ep_policy_responder *r = NULL;
	struct stats_file *sf = NULL;
	unsigned long ttl = 30;
	uint16_t port = 0;
	sigset_t mask;
	size_t n = 0;
	int c, sfd, rc, ret = 1;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'R':
			break;
		case 'L':
			snprintf(listen, sizeof(listen), "%s", optarg);
			break;
		case 't':
			ttl = strtoul(optarg, NULL, 10);
			break;
		case 'n':
			names_path = optarg;
			break;
		case 's':
			stats_path = optarg;
			break;
		case 'f':
			ep_log_setup(!strcmp(optarg, "json"), EP_LOG_INFO);
			break;
		case 'F':
			if (n_fallback == EP_FALLBACK_MAX_SERVERS) {
				fprintf(stderr, "at most %d --fallback resolvers\n", EP_FALLBACK_MAX_SERVERS);
				return 2;
			}
			fallback[n_fallback++] = optarg;
			break;
		case 'A':
			anchor_path = optarg;
			break;
		case 'a':
			break;
		default:
			return 2;
		}
	}
	if (!names_path || !stats_path || split_listen(listen, &port)) {
		fprintf(stderr, "usage: edgeplane-agent " EP_POLICY_PROCESS_FLAG
				" --listen ADDR:PORT --ttl N --names FILE --stats FILE"
				" [--fallback ADDR[#PORT]]... [--trust-anchor FILE]\n");
		return 2;
	}
	/* Detached, its stderr is /dev/null: it logs into a file next to its
	 * stats instead, which the agent follows and logs as its own
	 * (lib/log_tail.h), so a bogus DNSSEC answer or a dead fallback is
	 * seen in the agent's log, the container's in the chart. */
	{
		char log_path[PATH_MAX + 32];
		int lfd;

		responder_log_path(stats_path, log_path, sizeof(log_path));
		lfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (lfd >= 0) {
			dup2(lfd, STDERR_FILENO);
			close(lfd);
		}
	}
	/* Signals through a signalfd, set up before the responder listens:
	 * the agent sends SIGHUP only to a responder that has answered. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("cache responder: signalfd: %s", strerror(errno));
		return 1;
	}
	/* The agent read the anchor when it took the config; should the file
	 * have gone bad since, unvalidated answers for the zone are worse than
	 * none: no fallback at all, SERVFAIL outside the snapshot. */
	if (n_fallback && anchor_path &&
	    ep_dnssec_anchor_load(anchor_path, &anchor, err, sizeof(err))) {
		log_error("cache responder: trust anchor: %s; running without dns.cache.fallback", err);
		n_fallback = 0;
	}
	if (anchor)
		log_info("cache responder: fallback answers for %s are DNSSEC-validated (anchor %s)",
			 ep_dnssec_anchor_zone(anchor), anchor_path);
	if (ep_policy_start_fallback(&r, listen, port, (uint32_t)ttl, fallback, n_fallback, 0, anchor,
				     err, sizeof(err))) {
		log_error("cache responder: %s", err);
		close(sfd);
		return 2;
	}
	sf = map_stats(stats_path);
	if (!sf)
		log_warn("cache responder: cannot map %s: %s; no counters for the agent", stats_path,
			 strerror(errno));
	rc = load_names(r, names_path, &n);
	if (rc)
		log_warn("cache responder: cannot read %s: %s; every name gets SERVFAIL", names_path,
			 strerror(-rc));
	else if (sf)
		sf->names = (uint32_t)n;
	log_info("cache responder (pid %d) answering on %s:%u for %zu names%s", (int)getpid(), listen,
		 port, n, n_fallback ? "; names outside them go to the fallback resolvers" : "");
	for (;;) {
		struct pollfd pfd = {.fd = sfd, .events = POLLIN};
		struct signalfd_siginfo si;

		if (sf)
			publish(sf, r);
		if (poll(&pfd, 1, (int)(PUBLISH_NS / 1000000)) <= 0)
			continue;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGHUP) {
			ret = 0;
			break;
		}
		/* The names file is replaced whole (rename): read the new one;
		 * the responder keeps answering from the old set meanwhile. */
		rc = load_names(r, names_path, &n);
		if (rc) {
			log_warn("cache responder: cannot read %s: %s; keeping the previous names",
				 names_path, strerror(-rc));
			continue;
		}
		if (sf) {
			sf->names = (uint32_t)n;
			sf->loads++;
		}
		log_debug("cache responder: %zu names", n);
	}
	if (sf) {
		publish(sf, r);
		munmap(sf, sizeof(*sf));
	}
	ep_policy_stop(r);
	close(sfd);
	return ret;
}

/* ---- the agent's side ---------------------------------------------------- */

/* The responder's log is truncated in place once read past this. */
#define LOG_MAX_BYTES (16u << 20)

struct ep_policy_proc {
	struct ep_policy_proc_opts o;
	char self[PATH_MAX]; /* the agent binary: the responder is a mode of it */
	char names_path[PATH_MAX + 32], pid_path[PATH_MAX + 32], stats_path[PATH_MAX + 32];
	struct ep_log_tail log; /* the responder's stderr (responder_log_path) */
	struct ep_sup sup;
	struct ep_sup_probe probe;
	uint64_t next_health_ns;
	unsigned hfails;
	bool up;
	/* A new names file it has not been told about: SIGHUP kills a
	 * responder that has not set up its signalfd yet, so a fresh one is
	 * signalled only once it has answered a health check (it sets up its
	 * signals before it listens). */
	bool hup_pending;
	/* Counters: base is what an adopted responder had counted before this
	 * agent; acc what earlier responders of this agent counted. */
	pid_t stats_pid;
	bool base_pending;
	uint64_t probes; /* FORMERR answers to our health checks, this pid */
	struct ep_policy_stats base, last, acc;
};

/* The command line; bufs hold its variable parts. */
struct args {
	char listen[96], ttl[32], names[PATH_MAX + 48], stats[PATH_MAX + 48], fmt[32];
	char fallback[EP_FALLBACK_MAX_SERVERS][96];
	char anchor[PATH_MAX + 32], anchor_sum[64];
	char *argv[10 + EP_FALLBACK_MAX_SERVERS];
};

static void render_args(const struct ep_policy_proc *p, struct args *a)
{
	snprintf(a->listen, sizeof(a->listen), strchr(p->o.addr, ':') ? "--listen=[%s]:%u" : "--listen=%s:%u",
		 p->o.addr, p->o.port);
	snprintf(a->ttl, sizeof(a->ttl), "--ttl=%u", p->o.ttl);
	snprintf(a->names, sizeof(a->names), "--names=%s", p->names_path);
	snprintf(a->stats, sizeof(a->stats), "--stats=%s", p->stats_path);
	snprintf(a->fmt, sizeof(a->fmt), "--log-format=%s", ep_log_json_format() ? "json" : "text");
	a->argv[0] = PROG;
	a->argv[1] = EP_POLICY_PROCESS_FLAG;
	a->argv[2] = a->listen;
	a->argv[3] = a->ttl;
	a->argv[4] = a->names;
	a->argv[5] = a->stats;
	a->argv[6] = a->fmt;
	int k = 7;

	for (int i = 0; i < p->o.n_fallback && i < EP_FALLBACK_MAX_SERVERS; i++) {
		snprintf(a->fallback[i], sizeof(a->fallback[i]), "--fallback=%s", p->o.fallback[i]);
		a->argv[k++] = a->fallback[i];
	}
	/* Only with a fallback: the command line of a responder without one
	 * stays what it was (adopted across an upgrade). */
	if (p->o.n_fallback && p->o.trust_anchor[0]) {
		snprintf(a->anchor, sizeof(a->anchor), "--trust-anchor=%s", p->o.trust_anchor);
		a->argv[k++] = a->anchor;
		snprintf(a->anchor_sum, sizeof(a->anchor_sum), "--trust-anchor-sum=%016llx",
			 (unsigned long long)p->o.trust_anchor_sum);
		a->argv[k++] = a->anchor_sum;
	}
	a->argv[k] = NULL;
}

static void set_paths(struct ep_policy_proc *p)
{
	snprintf(p->names_path, sizeof(p->names_path), "%s/policy.names", p->o.runtime_dir);
	snprintf(p->pid_path, sizeof(p->pid_path), "%s/policy.pid", p->o.runtime_dir);
	snprintf(p->stats_path, sizeof(p->stats_path), "%s/policy.stats", p->o.runtime_dir);
	responder_log_path(p->stats_path, p->log.path, sizeof(p->log.path));
	p->log.off = 0;
}

/* Lines the responder logged (already in the agent's format: it was told
 * --log-format), passed on as they are. */
static void pass_line(void *arg, const char *line)
{
	fprintf(stderr, "%s\n", line);
}

struct ep_policy_proc *ep_policy_proc_new(const struct ep_policy_proc_opts *o)
{
	struct ep_policy_proc *p = calloc(1, sizeof(*p));
	ssize_t n;

	if (!p)
		return NULL;
	p->o = *o;
	set_paths(p);
	ep_sup_init(&p->sup, "cache responder", p->pid_path);
	ep_sup_probe_init(&p->probe);
	/* Resolved now: after an upgrade replaced the file, restarts run the
	 * binary installed at that path. */
	n = readlink("/proc/self/exe", p->self, sizeof(p->self) - 1);
	if (n <= 0) {
		free(p);
		return NULL;
	}
	p->self[n] = '\0';
	if (n > 10 && !strcmp(p->self + n - 10, " (deleted)"))
		p->self[n - 10] = '\0';
	return p;
}

static void reset_health(struct ep_policy_proc *p)
{
	ep_sup_probe_close(&p->probe);
	p->hfails = 0;
	p->up = false;
	p->next_health_ns = ep_now_ns() + 200ULL * 1000000ULL;
}

static int spawn(struct ep_policy_proc *p, char *err, size_t errlen)
{
	struct args a;
	int rc;

	render_args(p, &a);
	ep_log_tail_skip(&p->log); /* what an earlier responder wrote was logged then */
	rc = ep_sup_spawn(&p->sup, p->self, a.argv, err, errlen);
	if (rc)
		return rc;
	reset_health(p);
	/* It reads the names file as it starts; a newer one written before
	 * it answers is signalled once it does (hup_pending). */
	p->hup_pending = false;
	log_info("cache responder started (pid %d) on %s:%u", (int)p->sup.pid, p->o.addr, p->o.port);
	return 0;
}

int ep_policy_proc_start(struct ep_policy_proc *p, char *err, size_t errlen)
{
	struct args a;
	pid_t running;

	if (ep_mkdir_p(p->o.runtime_dir, 0755)) {
		snprintf(err, errlen, "cannot create %s: %s", p->o.runtime_dir, strerror(errno));
		return -errno;
	}
	render_args(p, &a);
	running = ep_sup_find(&p->sup, PROG, EP_POLICY_PROCESS_FLAG);
	if (running) {
		if (ep_sup_adopt(&p->sup, running) == 0 && ep_sup_cmdline_is(running, a.argv)) {
			ep_log_tail_skip(&p->log);
			reset_health(p);
			p->base_pending = true;
			/* It serves the names file as it was; the caller has just
			 * written the current one. Running before this agent, it
			 * has long set up its signals. */
			kill(running, SIGHUP);
			p->hup_pending = false;
			log_info("adopted the running cache responder (pid %d, same command line)",
				 (int)running);
			return 0;
		}
		log_info("replacing the running cache responder (pid %d): its command line differs",
			 (int)running);
		ep_sup_kill(&p->sup, true);
	}
	return spawn(p, err, errlen);
}

int ep_policy_proc_reconfigure(struct ep_policy_proc *p, const struct ep_policy_proc_opts *o,
			       char *err, size_t errlen)
{
	struct args a, b;
	bool changed = false;

	render_args(p, &a);
	p->o = *o;
	set_paths(p);
	render_args(p, &b);
	for (int i = 0; a.argv[i] || b.argv[i]; i++)
		changed |= !a.argv[i] || !b.argv[i] || strcmp(a.argv[i], b.argv[i]) != 0;
	if (!changed)
		return 0;
	log_info("cache responder options changed: restarting it");
	ep_sup_kill(&p->sup, true);
	return spawn(p, err, errlen);
}

int ep_policy_proc_set_names(struct ep_policy_proc *p, const struct ep_nameset *names)
{
	struct ep_atomic_file af;
	int rc = ep_atomic_open(&af, p->names_path, 0644);

	if (rc)
		goto fail;
	fputs("# The names the cache's policy responder answers NODATA for; "
	      "edgeplane-agent rewrites this file.\n", af.f);
	for (size_t i = 0; i < names->n; i++)
		fprintf(af.f, "0.0.0.0 %s\n", names->order[i]);
	rc = ep_atomic_commit(&af);
	if (rc)
		goto fail;
	if (p->sup.pid > 0 && p->up)
		kill(p->sup.pid, SIGHUP);
	else
		p->hup_pending = true;
	return 0;
fail:
	log_error("cache responder: cannot write %s: %s", p->names_path, strerror(-rc));
	return rc;
}

static void stats_add(struct ep_policy_stats *acc, const struct ep_policy_stats *a,
		      const struct ep_policy_stats *b)
{
	acc->nodata += a->nodata - b->nodata;
	acc->servfail += a->servfail - b->servfail;
	acc->formerr += a->formerr - b->formerr;
	acc->dropped += a->dropped - b->dropped;
	acc->fallback_answered += a->fallback_answered - b->fallback_answered;
	acc->fallback_failed += a->fallback_failed - b->fallback_failed;
	acc->fallback_bogus += a->fallback_bogus - b->fallback_bogus;
}

static void read_stats(struct ep_policy_proc *p)
{
	struct stats_file f;
	struct ep_policy_stats cur;
	ssize_t n;
	int fd;

	if (p->sup.pid <= 0)
		return;
	fd = open(p->stats_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	memset(&f, 0, sizeof(f));
	n = pread(fd, &f, sizeof(f), 0);
	if (n < (ssize_t)STATS_V1_SIZE || f.magic != STATS_MAGIC ||
	    (f.version == 1 ? n < (ssize_t)STATS_V1_SIZE
	     : f.version == 2 ? n < (ssize_t)STATS_V2_SIZE : n != (ssize_t)sizeof(f)) ||
	    f.version < 1 || f.version > STATS_VERSION || f.pid != (int32_t)p->sup.pid) {
		close(fd);
		return;
	}
	if (f.version == 1)
		f.fallback_answered = f.fallback_failed = 0;
	if (f.version <= 2)
		f.fallback_bogus = 0;
	close(fd);
	/* The TCP slot counters stay in the responder process (tests read them
	 * there); the file carries the answer counts. */
	cur = (struct ep_policy_stats){.nodata = f.nodata, .servfail = f.servfail,
				       .formerr = f.formerr, .dropped = f.dropped,
				       .fallback_answered = f.fallback_answered,
				       .fallback_failed = f.fallback_failed,
				       .fallback_bogus = f.fallback_bogus};
	if (f.pid != (int32_t)p->stats_pid) {
		/* Another responder: bank what the last one counted. */
		stats_add(&p->acc, &p->last, &p->base);
		p->stats_pid = p->sup.pid;
		p->probes = 0;
		memset(&p->base, 0, sizeof(p->base));
		if (p->base_pending)
			p->base = cur;
		p->base_pending = false;
	}
	p->last = cur;
}

static void schedule_restart(struct ep_policy_proc *p, uint64_t now, const char *why)
{
	ep_sup_schedule_restart(&p->sup, now, why);
	p->up = false;
}

static int start_cb(void *arg, char *err, size_t errlen)
{
	return spawn(arg, err, errlen);
}

void ep_policy_proc_tick(struct ep_policy_proc *p, uint64_t now)
{
	struct ep_ip ip;
	bool down;

	read_stats(p);
	ep_log_tail_read(&p->log, LOG_MAX_BYTES, pass_line, NULL);
	if (ep_sup_tick(&p->sup, now, start_cb, p, &down)) {
		if (down)
			p->up = false;
		return;
	}
	if (p->probe.sent_ns) {
		unsigned an = 0;
		int r = ep_sup_probe_poll(&p->probe, &an);

		/* A query without a question: FORMERR, the one answer that
		 * counts in no metric (SERVFAIL would look like clients asking
		 * for unknown names). */
		if (r == 1) {
			p->probe.sent_ns = 0;
			p->hfails = 0;
			p->up = true;
			if (p->hup_pending && kill(p->sup.pid, SIGHUP) == 0)
				p->hup_pending = false;
			if (p->stats_pid == p->sup.pid)
				p->probes++;
		} else if (r >= 0 || now - p->probe.sent_ns > HEALTH_TIMEOUT_NS) {
			p->probe.sent_ns = 0;
			if (++p->hfails >= HEALTH_FAILS_TO_RESTART) {
				schedule_restart(p, now, "stopped answering health checks");
				return;
			}
		}
	}
	if (!p->probe.sent_ns && now >= p->next_health_ns && ep_ip_parse(p->o.addr, &ip) == 0) {
		p->next_health_ns = now + HEALTH_INTERVAL_NS;
		ep_sup_probe_send(&p->probe, &ip, p->o.port, NULL, now);
	}
}

void ep_policy_proc_get_stats(const struct ep_policy_proc *p, struct ep_policy_stats *st)
{
	*st = p->acc;
	stats_add(st, &p->last, &p->base);
	st->formerr = st->formerr > p->probes ? st->formerr - p->probes : 0;
}

void ep_policy_proc_get_status(const struct ep_policy_proc *p, struct ep_policy_proc_status *st)
{
	memset(st, 0, sizeof(*st));
	st->pid = p->sup.pid;
	st->up = p->up;
	st->adopted = p->sup.adopted;
	st->restarts = p->sup.restarts;
	st->started_at = p->sup.started_at;
	snprintf(st->last_problem, sizeof(st->last_problem), "%s", p->sup.last_problem);
}

int ep_policy_proc_pidfd(const struct ep_policy_proc *p, pid_t *pid)
{
	return ep_sup_pidfd(&p->sup, pid);
}

void ep_policy_proc_free(struct ep_policy_proc *p, bool stop_process)
{
	if (!p)
		return;
	ep_sup_release(&p->sup, stop_process);
	ep_sup_probe_close(&p->probe);
	free(p);
}
