/*
 * Certificate sync, the last steps of the cycle (certs.c): after an
 * install, tell the consumer - a signal to the pid in its pidfile or a
 * command, bounded by reload.timeout_ms - and, when reload.verify is set,
 * wait until the endpoint serves the new serial. The set's result and the
 * cert_sync_seconds observation are written here, when the cycle ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "certs_int.h"
#include "evloop.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

#define VERIFY_EVERY_NS (20ULL * 1000000)

static void observe_sync(struct cert_set *s)
{
	double d;
	size_t i;

	if (!s->change_ns)
		return;
	d = (double)(ep_now_ns() - s->change_ns) / 1e9;
	for (i = 0; i < N_BUCKETS && d > sync_buckets[i]; i++)
		;
	s->hist[i]++;
	s->hist_sum += d;
	s->hist_n++;
	s->last_sync_s = d;
	s->change_ns = 0;
}

static void reload_done(struct cert_set *s, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reload_done(struct cert_set *s, bool ok, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ep_source_free(&s->reload_io);
	ep_timer_disarm(s->reload_timer);
	if (ok) {
		observe_sync(s);
		cert_set_result(s, "installed", "installed serial %s; %s (%.1f ms from the source change)",
			   s->inst.serial, msg, s->last_sync_s * 1000);
		log_info("certs %s: serial %s installed in %s; %s (%.1f ms)", s->cfg.name,
			 s->inst.serial, s->cfg.target, msg, s->last_sync_s * 1000);
	} else {
		s->rot[ROT_RELOAD_FAILED]++;
		s->change_ns = 0;
		cert_set_result(s, "installed", "installed serial %s; reload failed: %s", s->inst.serial,
			   msg);
		log_error("certs %s: serial %s installed but the consumer's reload failed: %s",
			  s->cfg.name, s->inst.serial, msg);
	}
}

bool cert_reload_busy(const struct cert_set *s)
{
	return s->cmd_pid > 0 || (s->reload_timer && ep_timer_armed(s->reload_timer));
}

static void verify_tick(struct cert_set *s)
{
	char serial[EP_CERT_SERIAL_MAX] = "", err[300] = "", crt[PATH_MAX], key[PATH_MAX];

	snprintf(crt, sizeof(crt), "%.4000s/tls.crt", s->cfg.target);
	snprintf(key, sizeof(key), "%.4000s/tls.key", s->cfg.target);
	if (!ep_cert_peer_serial(s->cfg.reload.verify, s->is_bundle ? NULL : crt,
				 s->is_bundle ? NULL : key, 500, serial, sizeof(serial), err,
				 sizeof(err)) &&
	    !strcmp(serial, s->inst.serial)) {
		reload_done(s, true, "%s serves it", s->cfg.reload.verify);
		return;
	}
	if (serial[0])
		snprintf(s->verify_seen, sizeof(s->verify_seen), "serial %s", serial);
	else
		snprintf(s->verify_seen, sizeof(s->verify_seen), "%.100s", err);
	if (ep_now_ns() >= s->reload_deadline_ns) {
		reload_done(s, false, "%s still shows %s after %u ms", s->cfg.reload.verify,
			    s->verify_seen, s->cfg.reload.timeout_ms);
		return;
	}
	ep_timer_arm(s->reload_timer, VERIFY_EVERY_NS);
}

/* The consumer was told; now wait for it to show the serial, or be done. */
static void after_signal(struct cert_set *s, const char *what)
{
	if (!s->cfg.reload.verify[0]) {
		reload_done(s, true, "%s", what);
		return;
	}
	s->verify_seen[0] = '\0';
	verify_tick(s);
}

int cert_reload_on_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct cert_set *s = userdata;

	cert_set_lock(s);
	if (s->cmd_pid > 0) {
		/* The command overran its timeout: kill it; its exit is still
		 * reaped through the pidfd source. */
		kill(s->cmd_pid, SIGKILL);
		reload_done(s, false, "reload command still running after %u ms: killed",
			    s->cfg.reload.timeout_ms);
		ep_spawn_reap(s->cmd_pid, true, NULL);
		close(s->cmd_pidfd);
		s->cmd_pid = 0;
		s->cmd_pidfd = -1;
	} else {
		verify_tick(s);
	}
	cert_set_unlock(s);
	return 0;
}

static int on_cmd_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct cert_set *s = userdata;
	int status = 0;

	cert_set_lock(s);
	ep_source_free(&s->reload_io);
	ep_timer_disarm(s->reload_timer);
	if (ep_spawn_reap(s->cmd_pid, true, &status) < 0)
		status = 0;
	close(s->cmd_pidfd);
	s->cmd_pid = 0;
	s->cmd_pidfd = -1;
	if (WIFEXITED(status) && !WEXITSTATUS(status))
		after_signal(s, "reload command succeeded");
	else if (WIFEXITED(status))
		reload_done(s, false, "reload command exited with status %d", WEXITSTATUS(status));
	else
		reload_done(s, false, "reload command killed by signal %d", WTERMSIG(status));
	cert_set_unlock(s);
	return 0;
}

static int read_pidfile(const char *path, pid_t *pid, char *err, size_t errlen)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ssize_t n;
	long v;
	char *end;

	if (fd < 0) {
		snprintf(err, errlen, "pidfile %.300s: %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		snprintf(err, errlen, "pidfile %.300s is empty", path);
		return -1;
	}
	buf[n] = '\0';
	v = strtol(buf, &end, 10);
	if (v <= 1 || v > INT32_MAX || (*end && *end != '\n')) {
		snprintf(err, errlen, "pidfile %.300s does not hold a pid", path);
		return -1;
	}
	*pid = (pid_t)v;
	return 0;
}

void cert_reload_start(struct cert_set *s)
{
	const struct ep_cfg_cert_reload *r = &s->cfg.reload;
	char err[400], what[128];
	pid_t pid;
	int rc;

	if (!r->present) {
		reload_done(s, true, "no reload configured");
		return;
	}
	s->reload_start_ns = ep_now_ns();
	s->reload_deadline_ns = s->reload_start_ns + (uint64_t)r->timeout_ms * 1000000;
	if (r->pidfile[0]) {
		if (read_pidfile(r->pidfile, &pid, err, sizeof(err))) {
			reload_done(s, false, "%s", err);
			return;
		}
		if (kill(pid, r->signal)) {
			reload_done(s, false, "signal %s to pid %d: %s", strsignal(r->signal), pid,
				    strerror(errno));
			return;
		}
		snprintf(what, sizeof(what), "signalled pid %d (%s)", pid, strsignal(r->signal));
		after_signal(s, what);
		return;
	}
	{
		char *argv[] = {"sh", "-c", (char *)r->command, NULL};
		int pidfd = -1;

		rc = ep_spawn_detached("/bin/sh", argv, &pid, &pidfd);
		if (rc) {
			reload_done(s, false, "cannot run the reload command: %s", strerror(-rc));
			return;
		}
		if (pidfd < 0 ||
		    sd_event_add_io(s->owner->ev, &s->reload_io, pidfd, EPOLLIN, on_cmd_exit, s) < 0) {
			/* No pidfd: wait for it here, bounded by the timeout. */
			int status = 0;
			uint64_t end = s->reload_deadline_ns;

			while (ep_spawn_reap(pid, false, &status) == 1 && ep_now_ns() < end)
				usleep(2000);
			if (pidfd >= 0)
				close(pidfd);
			if (ep_now_ns() >= end) {
				kill(pid, SIGKILL);
				ep_spawn_reap(pid, true, NULL);
				reload_done(s, false, "reload command timed out");
			} else if (WIFEXITED(status) && !WEXITSTATUS(status)) {
				after_signal(s, "reload command succeeded");
			} else {
				reload_done(s, false, "reload command failed (status %d)", status);
			}
			return;
		}
		s->cmd_pid = pid;
		s->cmd_pidfd = pidfd;
		ep_timer_arm(s->reload_timer, (uint64_t)r->timeout_ms * 1000000);
	}
}
