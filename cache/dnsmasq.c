#include "dnsmasq.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "log_tail.h"
#include "supervised.h"
#include "util.h"

#define HEALTH_INTERVAL_NS (1000ULL * 1000000ULL)
#define HEALTH_TIMEOUT_NS (500ULL * 1000000ULL)
#define HEALTH_FAILS_TO_RESTART 3
/* dnsmasq reads its hosts files before it answers anything, at start and on
 * SIGHUP: hundreds of milliseconds for 128k names, seconds for millions.
 * Missed health checks while it loads (and burns CPU doing so) are not a
 * hang; one that uses no CPU between two checks is hung, loading or not,
 * and one still not answering after this long is too. */
#define LOAD_GRACE_NS (60ULL * 1000000000ULL)
#define LOG_MAX_BYTES (16u << 20)

struct ep_dnsmasq {
	struct ep_dnsmasq_opts o;
	char conf_path[PATH_MAX + 32], pid_path[PATH_MAX + 32], log_path[PATH_MAX + 32];
	struct ep_sup sup; /* the process: spawn, adoption, exit, backoff */
	struct ep_dnsmasq_status st;
	struct ep_sup_probe probe; /* health check in flight */
	uint64_t next_health_ns;
	unsigned hfails;
	uint64_t loading_since_ns; /* start or SIGHUP not yet followed by an answer */
	const char *loading_what;
	unsigned long long loading_cpu; /* its CPU ticks at the last missed check */
	struct ep_log_tail log;
};

static char *render_conf(const struct ep_dnsmasq *d)
{
	char ip[2 * EP_IP_STRLEN + 1];
	char *s = NULL;

	ep_ip_str(&d->o.listen, ip, sizeof(ip));
	if (d->o.listen6.family) {
		size_t n = strlen(ip);

		ip[n] = ',';
		ep_ip_str(&d->o.listen6, ip + n + 1, sizeof(ip) - n - 1);
	}
	if (asprintf(&s,
		     "# Written by edgeplane-agent; it rewrites this file. Do not edit.\n"
		     "listen-address=%s\n"
		     /* Only that address, not every interface. */
		     "bind-interfaces\n"
		     "port=53\n"
		     "no-resolv\n"
		     "no-hosts\n"
		     "no-poll\n"
		     "addn-hosts=%s\n"
		     /* What the snapshot lacks goes to the policy responder:
		      * NODATA for a missing type, SERVFAIL for an unknown name. */
		     "server=%s\n"
		     "local-ttl=%u\n"
		     "cache-size=%u\n"
		     "dns-forward-max=4096\n"
		     "edns-packet-max=1232\n"
		     "log-facility=%s\n"
		     "pid-file=\n"
		     "host-record=" EP_DNSMASQ_HEALTH_NAME "," EP_DNSMASQ_HEALTH_ADDR "\n",
		     ip, d->o.preload, d->o.upstream, d->o.ttl, d->o.cache_size, d->log_path) < 0)
		return NULL;
	return s;
}

struct ep_dnsmasq *ep_dnsmasq_new(const struct ep_dnsmasq_opts *o)
{
	struct ep_dnsmasq *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->o = *o;
	snprintf(d->conf_path, sizeof(d->conf_path), "%s/dnsmasq.conf", o->runtime_dir);
	snprintf(d->pid_path, sizeof(d->pid_path), "%s/dnsmasq.pid", o->runtime_dir);
	snprintf(d->log_path, sizeof(d->log_path), "%s/dnsmasq.log", o->runtime_dir);
	ep_log_tail_init(&d->log, d->log_path);
	ep_sup_init(&d->sup, "dnsmasq", d->pid_path);
	ep_sup_probe_init(&d->probe);
	return d;
}

/* utime + stime of pid in clock ticks, or 0. */
static unsigned long long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* After "(comm)": state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
		return 0;
	return ut + st;
}

static void reset_health(struct ep_dnsmasq *d)
{
	ep_sup_probe_close(&d->probe);
	d->hfails = 0;
	d->next_health_ns = ep_now_ns() + 200ULL * 1000000ULL;
	d->loading_since_ns = ep_now_ns();
	d->loading_what = "start";
	d->loading_cpu = 0;
}

static int spawn(struct ep_dnsmasq *d, char *err, size_t errlen)
{
	char conf_arg[PATH_MAX + 48];
	char *argv[] = {"dnsmasq", "--keep-in-foreground", conf_arg, NULL};
	int rc;

	snprintf(conf_arg, sizeof(conf_arg), "--conf-file=%s", d->conf_path);
	/* In the foreground dnsmasq does not fork: it stays our child. */
	rc = ep_sup_spawn(&d->sup, d->o.bin, argv, err, errlen);
	if (rc)
		return rc;
	d->st.started_at = d->sup.started_at;
	d->st.adopted = false;
	reset_health(d);
	log_info("dnsmasq started (pid %d) on %s:53 with %s", (int)d->sup.pid,
		 ep_ip_str(&d->o.listen, conf_arg, sizeof(conf_arg)), d->o.preload);
	return 0;
}

int ep_dnsmasq_start(struct ep_dnsmasq *d, char *err, size_t errlen)
{
	char *conf = render_conf(d), *old = NULL, conf_arg[PATH_MAX + 48];
	pid_t running;
	bool same;
	int rc;

	if (!conf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (ep_mkdir_p(d->o.runtime_dir, 0755)) {
		snprintf(err, errlen, "cannot create %s: %s", d->o.runtime_dir, strerror(errno));
		free(conf);
		return -errno;
	}
	same = ep_read_file(d->conf_path, 1 << 20, &old, NULL) == 0 && !strcmp(old, conf);
	free(old);
	snprintf(conf_arg, sizeof(conf_arg), "--conf-file=%s", d->conf_path);
	running = ep_sup_find(&d->sup, "dnsmasq", conf_arg);
	if (running) {
		if (ep_sup_adopt(&d->sup, running) == 0 && same) {
			/* Same config: keep serving without a gap. */
			d->st.adopted = true;
			d->st.started_at = d->sup.started_at;
			ep_log_tail_skip(&d->log);
			reset_health(d);
			free(conf);
			log_info("adopted the running dnsmasq (pid %d, same config)", (int)running);
			return 0;
		}
		log_info("replacing the running dnsmasq (pid %d): its config differs", (int)running);
		ep_sup_kill(&d->sup, true);
	}
	rc = ep_write_file_atomic(d->conf_path, conf, strlen(conf), 0644);
	free(conf);
	if (rc) {
		snprintf(err, errlen, "cannot write %s: %s", d->conf_path, strerror(-rc));
		return rc;
	}
	return spawn(d, err, errlen);
}

int ep_dnsmasq_reconfigure(struct ep_dnsmasq *d, const struct ep_dnsmasq_opts *o, char *err,
			   size_t errlen)
{
	char *a, *b;
	bool changed;

	a = render_conf(d);
	d->o = *o;
	b = render_conf(d);
	changed = !a || !b || strcmp(a, b);
	free(a);
	free(b);
	if (!changed)
		return 0;
	log_info("dnsmasq config changed: restarting it");
	ep_sup_kill(&d->sup, true);
	return ep_dnsmasq_start(d, err, errlen);
}

int ep_dnsmasq_reload(struct ep_dnsmasq *d)
{
	if (d->sup.pid <= 0)
		return -ESRCH;
	if (kill(d->sup.pid, SIGHUP)) {
		static pid_t told; /* once per dnsmasq: the caller retries every tick */
		int e = errno;

		if (told != d->sup.pid)
			log_error("dnsmasq (pid %d): cannot send SIGHUP to re-read the preload: %s%s",
				  (int)d->sup.pid, strerror(e),
				  e == EPERM ? " (the agent needs CAP_KILL)" : "");
		told = d->sup.pid;
		return -e;
	}
	d->st.last_reload_at = ep_wall_seconds();
	d->loading_since_ns = ep_now_ns();
	d->loading_what = "re-reading the preload";
	d->loading_cpu = cpu_ticks(d->sup.pid);
	d->hfails = 0;
	return 0;
}

/* ---- health ------------------------------------------------------------- */

static void schedule_restart(struct ep_dnsmasq *d, uint64_t now, const char *why)
{
	ep_sup_schedule_restart(&d->sup, now, why);
	d->st.up = false;
}

/* dnsmasq has no levels in its log file; its failures read
 * "failed ..."/"cannot ..."/"error ...". */
static void log_line(void *arg, const char *line)
{
	const char *msg = strstr(line, "]: ");
	const char *text = msg ? msg + 3 : line;

	if (strstr(text, "failed") || strstr(text, "cannot") || strstr(text, "error") ||
	    strstr(text, "denied"))
		log_warn("dnsmasq: %s", text);
	else
		log_info("dnsmasq: %s", text);
}

static void forward_log(struct ep_dnsmasq *d)
{
	/* dnsmasq appends; a log that only grows is truncated in place. */
	ep_log_tail_read(&d->log, LOG_MAX_BYTES, log_line, NULL);
}

static int start_cb(void *arg, char *err, size_t errlen)
{
	return ep_dnsmasq_start(arg, err, errlen);
}

void ep_dnsmasq_tick(struct ep_dnsmasq *d, uint64_t now)
{
	bool down;

	forward_log(d);
	if (ep_sup_tick(&d->sup, now, start_cb, d, &down)) {
		if (down)
			d->st.up = false;
		return;
	}
	if (d->probe.sent_ns) {
		unsigned an = 0;
		int r = ep_sup_probe_poll(&d->probe, &an);

		/* NOERROR with at least one answer: dnsmasq is serving its data. */
		if (r == 0 && an >= 1) {
			d->probe.sent_ns = 0;
			d->hfails = 0;
			d->st.health_ok++;
			d->st.up = true;
			d->st.last_ok_ns = now;
			if (d->loading_since_ns) {
				double ms = (double)(now - d->loading_since_ns) / 1e6;

				if (ms > 1500)
					log_warn("dnsmasq answered only %.0f ms after %s: a large preload "
						 "(queries wait meanwhile)", ms, d->loading_what);
				else
					log_debug("dnsmasq answering %.0f ms after %s", ms, d->loading_what);
				d->st.last_load_ms = ms;
				d->loading_since_ns = 0;
			}
		} else if (r >= 0 || now - d->probe.sent_ns > HEALTH_TIMEOUT_NS) {
			d->probe.sent_ns = 0;
			d->st.health_failed++;
			/* Loading (start, SIGHUP) and busy doing it: not a hang,
			 * within the bound. */
			if (d->loading_since_ns && now - d->loading_since_ns < LOAD_GRACE_NS) {
				unsigned long long cpu = cpu_ticks(d->sup.pid);
				bool busy = cpu > d->loading_cpu;

				d->loading_cpu = cpu;
				if (busy)
					goto next;
			}
			if (++d->hfails >= HEALTH_FAILS_TO_RESTART) {
				schedule_restart(d, now, "stopped answering health checks");
				return;
			}
		}
	}
next:
	if (!d->probe.sent_ns && now >= d->next_health_ns) {
		d->next_health_ns = now + HEALTH_INTERVAL_NS;
		ep_sup_probe_send(&d->probe, &d->o.listen, 53, EP_DNSMASQ_HEALTH_NAME, now);
	}
}

void ep_dnsmasq_get_status(const struct ep_dnsmasq *d, struct ep_dnsmasq_status *st)
{
	*st = d->st;
	st->pid = d->sup.pid;
	st->restarts = d->sup.restarts;
	snprintf(st->last_problem, sizeof(st->last_problem), "%s", d->sup.last_problem);
}

int ep_dnsmasq_pidfd(const struct ep_dnsmasq *d, pid_t *pid)
{
	return ep_sup_pidfd(&d->sup, pid);
}

void ep_dnsmasq_free(struct ep_dnsmasq *d, bool stop_process)
{
	if (!d)
		return;
	forward_log(d);
	ep_sup_release(&d->sup, stop_process);
	ep_sup_probe_close(&d->probe);
	free(d);
}
