#include "supervised.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "spawn.h"
#include "util.h"

/* The first death after a stable run restarts at once: the cache must answer
 * again within a second of a kill -9, and a 128k preload alone takes ~0.4 s
 * to load. Backoff starts with the second death in a row. */
#define BACKOFF_MIN_NS (200ULL * 1000000ULL)
#define BACKOFF_MAX_NS (10ULL * 1000000000ULL)
#define STABLE_AFTER_NS (60ULL * 1000000000ULL) /* running this long resets the backoff */

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

void ep_sup_init(struct ep_sup *s, const char *what, const char *pid_path)
{
	memset(s, 0, sizeof(*s));
	s->what = what;
	snprintf(s->pid_path, sizeof(s->pid_path), "%s", pid_path);
	s->pidfd = -1;
	s->backoff_ns = 0;
}

static pid_t read_pidfile(const char *path)
{
	char *buf = NULL;
	long v = 0;

	if (ep_read_file(path, 64, &buf, NULL) == 0)
		v = strtol(buf, NULL, 10);
	free(buf);
	return v > 1 ? (pid_t)v : 0;
}

pid_t ep_sup_find(const struct ep_sup *s, const char *prog, const char *arg)
{
	char path[64], *buf = NULL, *p;
	pid_t pid = read_pidfile(s->pid_path);
	size_t len = 0;
	bool name = false, found = false;

	if (!pid)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (ep_read_file(path, 65536, &buf, &len))
		return 0;
	for (p = buf; p < buf + len; p += strlen(p) + 1) {
		const char *base = strrchr(p, '/');

		if (p == buf)
			name = !strcmp(base ? base + 1 : p, prog);
		if (!strcmp(p, arg))
			found = true;
	}
	free(buf);
	return name && found ? pid : 0;
}

bool ep_sup_cmdline_is(pid_t pid, char *const argv[])
{
	char path[64], *buf = NULL, *p;
	size_t len = 0, i = 0;
	bool same = true;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (ep_read_file(path, 65536, &buf, &len))
		return false;
	for (p = buf; p < buf + len && same; p += strlen(p) + 1, i++)
		same = argv[i] && (i == 0 || !strcmp(p, argv[i]));
	same = same && !argv[i];
	free(buf);
	return same;
}

int ep_sup_adopt(struct ep_sup *s, pid_t pid)
{
	s->pid = pid;
	s->child = false;
	s->pidfd = pidfd_open_(pid);
	if (s->pidfd < 0)
		return -errno;
	s->adopted = true;
	s->started_ns = ep_now_ns();
	s->started_at = ep_wall_seconds();
	return 0;
}

int ep_sup_spawn(struct ep_sup *s, const char *file, char *const argv[], char *err,
		 size_t errlen)
{
	char buf[32];
	pid_t pid;
	int n, rc;

	/* Through the cache's spawner (lib/spawn.h): the agent's own, forked
	 * before its seccomp filter, so the helper runs under its own
	 * confinement, not the agent's; or, in a pod, the server in the cache's
	 * container, so the helper outlives the agent's container. */
	rc = ep_spawn_cache_detached(file, argv, &pid, &s->pidfd);
	if (rc) {
		snprintf(err, errlen, "cannot start %s: %s", file, strerror(-rc));
		return rc;
	}
	s->pid = pid;
	s->child = true;
	s->adopted = false;
	s->started_ns = ep_now_ns();
	s->started_at = ep_wall_seconds();
	n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	ep_write_file_atomic(s->pid_path, buf, (size_t)n, 0644);
	return 0;
}

void ep_sup_kill(struct ep_sup *s, bool graceful)
{
	if (s->pid <= 0)
		return;
	if (!graceful)
		goto hard;
	if (kill(s->pid, SIGTERM) && errno == EPERM)
		log_error("%s (pid %d): cannot signal it: %s (the agent needs CAP_KILL)", s->what,
			  (int)s->pid, strerror(errno));
	for (int i = 0; i < 40; i++) {
		struct pollfd p = {.fd = s->pidfd, .events = POLLIN};

		if (s->pidfd >= 0 ? poll(&p, 1, 50) > 0 : kill(s->pid, 0) != 0)
			break;
		if (s->pidfd < 0)
			usleep(50000);
	}
hard:
	kill(s->pid, SIGKILL);
	if (s->child) {
		ep_spawn_cache_reap(s->pid, true, NULL);
	} else if (s->pidfd >= 0) {
		/* Adopted, so not ours to reap: wait (bounded) until it is gone,
		 * or its successor could lose the race for its port. */
		struct pollfd p = {.fd = s->pidfd, .events = POLLIN};

		poll(&p, 1, 1000);
	}
	if (s->pidfd >= 0)
		close(s->pidfd);
	s->pidfd = -1;
	s->pid = 0;
}

bool ep_sup_exited(struct ep_sup *s, char *why, size_t len)
{
	struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
	int status = 0;

	if (s->pid <= 0 || s->pidfd < 0 || poll(&p, 1, 0) <= 0)
		return false;
	/* Exited (the pidfd says so): reaping does not block. */
	if (s->child && ep_spawn_cache_reap(s->pid, true, &status))
		status = 0;
	if (s->child && WIFSIGNALED(status))
		snprintf(why, len, "died (signal %d)", WTERMSIG(status));
	else if (s->child)
		snprintf(why, len, "exited (status %d)", WEXITSTATUS(status));
	else
		snprintf(why, len, "exited");
	close(s->pidfd);
	s->pidfd = -1;
	s->pid = 0;
	return true;
}

void ep_sup_schedule_restart(struct ep_sup *s, uint64_t now, const char *why)
{
	snprintf(s->last_problem, sizeof(s->last_problem), "%s", why);
	if (now - s->started_ns > STABLE_AFTER_NS)
		s->backoff_ns = 0;
	s->restart_at_ns = now + s->backoff_ns;
	if (s->backoff_ns)
		log_warn("%s %s: restarting in %.1f s", s->what, why, (double)s->backoff_ns / 1e9);
	else
		log_warn("%s %s: restarting now", s->what, why);
	s->backoff_ns = !s->backoff_ns ? BACKOFF_MIN_NS
		      : s->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : s->backoff_ns * 2;
}

bool ep_sup_tick(struct ep_sup *s, uint64_t now, ep_sup_start_fn start, void *arg, bool *down)
{
	char why[256];

	*down = false;
	if (s->restart_at_ns) {
		if (now < s->restart_at_ns)
			return true;
		s->restart_at_ns = 0;
		/* It died or stopped answering: nothing graceful left to wait for. */
		ep_sup_kill(s, false);
		s->restarts++;
		if (start(arg, why, sizeof(why))) {
			ep_sup_schedule_restart(s, now, why);
			*down = true;
		}
		return true;
	}
	if (s->pid <= 0)
		return true;
	if (ep_sup_exited(s, why, sizeof(why))) {
		ep_sup_schedule_restart(s, now, why);
		*down = true;
		return true;
	}
	return false;
}

int ep_sup_pidfd(const struct ep_sup *s, pid_t *pid)
{
	*pid = s->pidfd >= 0 ? s->pid : 0;
	return s->pid > 0 ? s->pidfd : -1;
}

void ep_sup_release(struct ep_sup *s, bool stop_process)
{
	if (stop_process) {
		ep_sup_kill(s, true);
		unlink(s->pid_path);
		log_info("%s stopped", s->what);
	} else if (s->pid > 0) {
		log_info("%s (pid %d) left running: it keeps answering from the cache", s->what,
			 (int)s->pid);
	}
	if (s->pidfd >= 0)
		close(s->pidfd);
	s->pidfd = -1;
}

/* ---- health queries ------------------------------------------------------ */

void ep_sup_probe_init(struct ep_sup_probe *p)
{
	memset(p, 0, sizeof(*p));
	p->sock = -1;
}

void ep_sup_probe_send(struct ep_sup_probe *p, const struct ep_ip *ip, uint16_t port,
		       const char *name, uint64_t now)
{
	struct sockaddr_storage ss = {};
	socklen_t sl;
	uint8_t q[300];
	size_t n = 0;

	if (p->sock < 0) {
		p->sock = socket(ip->family == EP_FAMILY_V6 ? AF_INET6 : AF_INET,
				 SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (p->sock < 0)
			return;
	}
	if (ip->family == EP_FAMILY_V6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, ip->addr, 16);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, ip->addr, 4);
		sl = sizeof(*s4);
	}
	/* A minimal query for name/A, built by hand: no allocation. */
	p->id = (uint16_t)(now ^ (now >> 16));
	q[n++] = (uint8_t)(p->id >> 8);
	q[n++] = (uint8_t)p->id;
	q[n++] = 0x01; /* RD */
	q[n++] = 0x00;
	q[n++] = 0;
	q[n++] = name ? 1 : 0; /* QDCOUNT */
	memset(q + n, 0, 6);
	n += 6;
	for (const char *l = name; l && *l && n < sizeof(q) - 70;) {
		const char *dot = strchr(l, '.');
		size_t len = dot ? (size_t)(dot - l) : strlen(l);

		if (len > 63)
			len = 63;
		q[n++] = (uint8_t)len;
		memcpy(q + n, l, len);
		n += len;
		l += len + (dot ? 1 : 0);
	}
	if (name) {
		q[n++] = 0;
		q[n++] = 0;
		q[n++] = 1; /* A */
		q[n++] = 0;
		q[n++] = 1; /* IN */
	}
	/* Drain stale replies first so only this round's can count. */
	while (recv(p->sock, (char[512]){0}, 512, MSG_DONTWAIT) > 0)
		;
	if (sendto(p->sock, q, n, MSG_DONTWAIT, (struct sockaddr *)&ss, sl) == (ssize_t)n)
		p->sent_ns = now;
}

int ep_sup_probe_poll(struct ep_sup_probe *p, unsigned *ancount)
{
	uint8_t buf[512];
	ssize_t n;

	while ((n = recv(p->sock, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		if (n < 12 || ((buf[0] << 8) | buf[1]) != p->id)
			continue;
		*ancount = (unsigned)((buf[6] << 8) | buf[7]);
		return buf[3] & 0x0f;
	}
	return -1;
}

void ep_sup_probe_close(struct ep_sup_probe *p)
{
	if (p->sock >= 0)
		close(p->sock);
	p->sock = -1;
	p->sent_ns = 0;
}
