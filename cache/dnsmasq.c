#include "dnsmasq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "spawn.h"
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
#define BACKOFF_MIN_NS (200ULL * 1000000ULL)
#define BACKOFF_MAX_NS (10ULL * 1000000000ULL)
#define STABLE_AFTER_NS (60ULL * 1000000000ULL) /* healthy this long resets the backoff */
#define LOG_MAX_BYTES (16u << 20)

struct ep_dnsmasq {
	struct ep_dnsmasq_opts o;
	char conf_path[PATH_MAX + 32], pid_path[PATH_MAX + 32], log_path[PATH_MAX + 32];
	pid_t pid;
	int pidfd;
	bool child; /* ours to reap (not adopted) */
	struct ep_dnsmasq_status st;
	uint64_t started_ns;
	uint64_t backoff_ns, restart_at_ns; /* pending restart */
	/* health check in flight */
	int hsock;
	uint16_t hid;
	uint64_t hsent_ns, next_health_ns;
	unsigned hfails;
	uint64_t loading_since_ns; /* start or SIGHUP not yet followed by an answer */
	const char *loading_what;
	unsigned long long loading_cpu; /* its CPU ticks at the last missed check */
	off_t log_off;
};

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

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
	d->pidfd = d->hsock = -1;
	snprintf(d->conf_path, sizeof(d->conf_path), "%s/dnsmasq.conf", o->runtime_dir);
	snprintf(d->pid_path, sizeof(d->pid_path), "%s/dnsmasq.pid", o->runtime_dir);
	snprintf(d->log_path, sizeof(d->log_path), "%s/dnsmasq.log", o->runtime_dir);
	d->backoff_ns = BACKOFF_MIN_NS;
	return d;
}

/* Is pid a dnsmasq started with our config file? */
static bool is_ours(const struct ep_dnsmasq *d, pid_t pid)
{
	char path[64], want[PATH_MAX + 48], *buf = NULL, *p;
	size_t len = 0;
	bool name = false, conf = false;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (ep_read_file(path, 65536, &buf, &len))
		return false;
	snprintf(want, sizeof(want), "--conf-file=%s", d->conf_path);
	for (p = buf; p < buf + len; p += strlen(p) + 1) {
		const char *base = strrchr(p, '/');

		if (p == buf)
			name = !strcmp(base ? base + 1 : p, "dnsmasq");
		if (!strcmp(p, want))
			conf = true;
	}
	free(buf);
	return name && conf;
}

static pid_t read_pidfile(const struct ep_dnsmasq *d)
{
	char *buf = NULL;
	long v = 0;

	if (ep_read_file(d->pid_path, 64, &buf, NULL) == 0)
		v = strtol(buf, NULL, 10);
	free(buf);
	return v > 1 ? (pid_t)v : 0;
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
	if (d->hsock >= 0)
		close(d->hsock);
	d->hsock = -1;
	d->hfails = 0;
	d->hsent_ns = 0;
	d->next_health_ns = ep_now_ns() + 200ULL * 1000000ULL;
	d->loading_since_ns = ep_now_ns();
	d->loading_what = "start";
	d->loading_cpu = 0;
}

static int spawn(struct ep_dnsmasq *d, char *err, size_t errlen)
{
	char conf_arg[PATH_MAX + 48];
	char *argv[] = {"dnsmasq", "--keep-in-foreground", conf_arg, NULL};
	pid_t pid;
	int rc;

	snprintf(conf_arg, sizeof(conf_arg), "--conf-file=%s", d->conf_path);
	/* Through the spawner (lib/spawn.h) when the agent has one: forked
	 * before the agent's seccomp filter, so dnsmasq runs under its own
	 * confinement, not the agent's. */
	rc = ep_spawn_detached(d->o.bin, argv, &pid, &d->pidfd);
	if (rc) {
		snprintf(err, errlen, "cannot start %s: %s", d->o.bin, strerror(-rc));
		return rc;
	}
	d->pid = pid;
	d->child = true;
	d->started_ns = ep_now_ns();
	d->st.started_at = ep_wall_seconds();
	d->st.adopted = false;
	{
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);

		ep_write_file_atomic(d->pid_path, buf, (size_t)n, 0644);
	}
	reset_health(d);
	log_info("dnsmasq started (pid %d) on %s:53 with %s", (int)pid,
		 ep_ip_str(&d->o.listen, conf_arg, sizeof(conf_arg)), d->o.preload);
	return 0;
}

/* Stops whatever dnsmasq we know of: SIGTERM, then SIGKILL after 2 s; a hung
 * one (graceful=false) gets SIGKILL at once. */
static void kill_process(struct ep_dnsmasq *d, bool graceful)
{
	if (d->pid <= 0)
		return;
	if (!graceful)
		goto hard;
	kill(d->pid, SIGTERM);
	for (int i = 0; i < 40; i++) {
		struct pollfd p = {.fd = d->pidfd, .events = POLLIN};

		if (d->pidfd >= 0 ? poll(&p, 1, 50) > 0 : kill(d->pid, 0) != 0)
			break;
		if (d->pidfd < 0)
			usleep(50000);
	}
hard:
	kill(d->pid, SIGKILL);
	if (d->child) {
		ep_spawn_reap(d->pid, true, NULL);
	} else if (d->pidfd >= 0) {
		/* Adopted, so not ours to reap: wait (bounded) until it is gone,
		 * or its successor could lose the race for port 53. */
		struct pollfd p = {.fd = d->pidfd, .events = POLLIN};

		poll(&p, 1, 1000);
	}
	if (d->pidfd >= 0)
		close(d->pidfd);
	d->pidfd = -1;
	d->pid = 0;
}

int ep_dnsmasq_start(struct ep_dnsmasq *d, char *err, size_t errlen)
{
	char *conf = render_conf(d), *old = NULL;
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
	running = read_pidfile(d);
	if (running && is_ours(d, running)) {
		d->pid = running;
		d->child = false;
		d->pidfd = pidfd_open_(running);
		if (same && d->pidfd >= 0) {
			/* Same config: keep serving without a gap. */
			struct stat lst;

			d->st.adopted = true;
			d->started_ns = ep_now_ns();
			d->st.started_at = ep_wall_seconds();
			if (stat(d->log_path, &lst) == 0)
				d->log_off = lst.st_size;
			reset_health(d);
			free(conf);
			log_info("adopted the running dnsmasq (pid %d, same config)", (int)running);
			return 0;
		}
		log_info("replacing the running dnsmasq (pid %d): its config differs", (int)running);
		kill_process(d, true);
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
	kill_process(d, true);
	return ep_dnsmasq_start(d, err, errlen);
}

int ep_dnsmasq_reload(struct ep_dnsmasq *d)
{
	if (d->pid <= 0)
		return -ESRCH;
	if (kill(d->pid, SIGHUP))
		return -errno;
	d->st.last_reload_at = ep_wall_seconds();
	d->loading_since_ns = ep_now_ns();
	d->loading_what = "re-reading the preload";
	d->loading_cpu = cpu_ticks(d->pid);
	d->hfails = 0;
	return 0;
}

/* ---- health ------------------------------------------------------------- */

static void health_send(struct ep_dnsmasq *d, uint64_t now)
{
	struct sockaddr_storage ss = {};
	socklen_t sl;
	uint8_t q[64];
	size_t n = 0;

	if (d->hsock < 0) {
		d->hsock = socket(d->o.listen.family == EP_FAMILY_V6 ? AF_INET6 : AF_INET,
				  SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (d->hsock < 0)
			return;
	}
	if (d->o.listen.family == EP_FAMILY_V6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(53);
		memcpy(&s6->sin6_addr, d->o.listen.addr, 16);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(53);
		memcpy(&s4->sin_addr, d->o.listen.addr, 4);
		sl = sizeof(*s4);
	}
	/* A minimal query for HEALTH_NAME/A, built by hand: no allocation. */
	d->hid = (uint16_t)(now ^ (now >> 16));
	q[n++] = (uint8_t)(d->hid >> 8);
	q[n++] = (uint8_t)d->hid;
	q[n++] = 0x01; /* RD */
	q[n++] = 0x00;
	q[n++] = 0;
	q[n++] = 1; /* QDCOUNT */
	memset(q + n, 0, 6);
	n += 6;
	for (const char *l = EP_DNSMASQ_HEALTH_NAME; *l;) {
		const char *dot = strchr(l, '.');
		size_t len = dot ? (size_t)(dot - l) : strlen(l);

		q[n++] = (uint8_t)len;
		memcpy(q + n, l, len);
		n += len;
		l += len + (dot ? 1 : 0);
	}
	q[n++] = 0;
	q[n++] = 0;
	q[n++] = 1; /* A */
	q[n++] = 0;
	q[n++] = 1; /* IN */
	/* Drain stale replies first so only this round's can count. */
	while (recv(d->hsock, (char[512]){0}, 512, MSG_DONTWAIT) > 0)
		;
	if (sendto(d->hsock, q, n, MSG_DONTWAIT, (struct sockaddr *)&ss, sl) == (ssize_t)n)
		d->hsent_ns = now;
}

/* 1 answered correctly, 0 nothing yet, -1 wrong answer. */
static int health_poll(struct ep_dnsmasq *d)
{
	uint8_t buf[512];
	ssize_t n;

	while ((n = recv(d->hsock, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		if (n < 12 || ((buf[0] << 8) | buf[1]) != d->hid)
			continue;
		/* NOERROR with at least one answer: dnsmasq is serving its data. */
		if ((buf[3] & 0x0f) == 0 && ((buf[6] << 8) | buf[7]) >= 1)
			return 1;
		return -1;
	}
	return 0;
}

static void schedule_restart(struct ep_dnsmasq *d, uint64_t now, const char *why)
{
	snprintf(d->st.last_problem, sizeof(d->st.last_problem), "%s", why);
	if (now - d->started_ns > STABLE_AFTER_NS)
		d->backoff_ns = BACKOFF_MIN_NS;
	d->restart_at_ns = now + d->backoff_ns;
	log_warn("dnsmasq %s: restarting in %.1f s", why, (double)d->backoff_ns / 1e9);
	d->backoff_ns = d->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : d->backoff_ns * 2;
	d->st.up = false;
}

static void forward_log(struct ep_dnsmasq *d)
{
	char buf[8192];
	ssize_t n;
	int fd = open(d->log_path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size < d->log_off)
		d->log_off = 0; /* truncated under us */
	while ((n = pread(fd, buf, sizeof(buf) - 1, d->log_off)) > 0) {
		char *line = buf, *nl;

		buf[n] = '\0';
		nl = strrchr(buf, '\n');
		if (!nl)
			break; /* wait for a whole line */
		d->log_off += nl - buf + 1;
		*nl = '\0';
		while (line && *line) {
			char *next = strchr(line, '\n');
			const char *msg = strstr(line, "]: ");

			if (next)
				*next++ = '\0';
			const char *text = msg ? msg + 3 : line;

			/* dnsmasq has no levels in its log file; its failures read
			 * "failed ..."/"cannot ..."/"error ...". */
			if (strstr(text, "failed") || strstr(text, "cannot") || strstr(text, "error") ||
			    strstr(text, "denied"))
				log_warn("dnsmasq: %s", text);
			else
				log_info("dnsmasq: %s", text);
			line = next;
		}
	}
	/* dnsmasq appends; a log that only grows is truncated in place. */
	if (fstat(fd, &st) == 0 && st.st_size > LOG_MAX_BYTES && d->log_off >= st.st_size) {
		if (truncate(d->log_path, 0) == 0)
			d->log_off = 0;
	}
	close(fd);
}

void ep_dnsmasq_tick(struct ep_dnsmasq *d, uint64_t now)
{
	char err[256];

	forward_log(d);
	if (d->restart_at_ns) {
		if (now < d->restart_at_ns)
			return;
		d->restart_at_ns = 0;
		/* It died or stopped answering: nothing graceful left to wait for. */
		kill_process(d, false);
		d->st.restarts++;
		if (ep_dnsmasq_start(d, err, sizeof(err)))
			schedule_restart(d, now, err);
		return;
	}
	if (d->pid <= 0)
		return;
	/* Exit notification: the pidfd turns readable. */
	if (d->pidfd >= 0) {
		struct pollfd p = {.fd = d->pidfd, .events = POLLIN};

		if (poll(&p, 1, 0) > 0) {
			int status = 0;
			char why[64];

			/* Exited (the pidfd says so): reaping does not block. */
			if (d->child && ep_spawn_reap(d->pid, true, &status))
				status = 0;
			if (d->child && WIFSIGNALED(status))
				snprintf(why, sizeof(why), "died (signal %d)", WTERMSIG(status));
			else if (d->child)
				snprintf(why, sizeof(why), "exited (status %d)", WEXITSTATUS(status));
			else
				snprintf(why, sizeof(why), "exited");
			close(d->pidfd);
			d->pidfd = -1;
			d->pid = 0;
			schedule_restart(d, now, why);
			return;
		}
	}
	if (d->hsent_ns) {
		int r = health_poll(d);

		if (r == 1) {
			d->hsent_ns = 0;
			d->hfails = 0;
			d->st.health_ok++;
			d->st.up = true;
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
		} else if (r < 0 || now - d->hsent_ns > HEALTH_TIMEOUT_NS) {
			d->hsent_ns = 0;
			d->st.health_failed++;
			/* Loading (start, SIGHUP) and busy doing it: not a hang,
			 * within the bound. */
			if (d->loading_since_ns && now - d->loading_since_ns < LOAD_GRACE_NS) {
				unsigned long long cpu = cpu_ticks(d->pid);
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
	if (!d->hsent_ns && now >= d->next_health_ns) {
		d->next_health_ns = now + HEALTH_INTERVAL_NS;
		health_send(d, now);
	}
}

void ep_dnsmasq_get_status(const struct ep_dnsmasq *d, struct ep_dnsmasq_status *st)
{
	*st = d->st;
	st->pid = d->pid;
}

int ep_dnsmasq_pidfd(const struct ep_dnsmasq *d, pid_t *pid)
{
	*pid = d->pidfd >= 0 ? d->pid : 0;
	return d->pid > 0 ? d->pidfd : -1;
}

void ep_dnsmasq_free(struct ep_dnsmasq *d, bool stop_process)
{
	if (!d)
		return;
	forward_log(d);
	if (stop_process) {
		kill_process(d, true);
		unlink(d->pid_path);
		log_info("dnsmasq stopped");
	} else if (d->pid > 0) {
		log_info("dnsmasq (pid %d) left running: it keeps answering from the cache", (int)d->pid);
	}
	if (d->pidfd >= 0)
		close(d->pidfd);
	if (d->hsock >= 0)
		close(d->hsock);
	free(d);
}
