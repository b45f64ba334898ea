/*
 * The cache's spawner server (lib/spawn.c, ep_spawner_serve) and its client
 * (ep_spawner_remote_set, ep_spawn_cache_*): what the Helm chart's cache
 * container runs so that dnsmasq and the policy responder outlive the
 * agent's container. The server runs in a forked child here, the test is
 * the agent: it starts programs through the socket, they are the server's
 * children (not the test's), the server reaps them as they exit and answers
 * "reap PID" from its table, also to a client that connected after the
 * exit (the next agent); a client reconnects after the server restarted and
 * gets a clear error while it is down (never a local fallback); malformed
 * requests are refused and the connection keeps being served.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"
#include "tap.h"

static char sock_path[108];

static void msleep(int ms)
{
	nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

static pid_t server_start(void)
{
	pid_t p = fork();

	if (p == 0) {
		int fd = open("/dev/null", 1);

		/* Its log lines would interleave with TAP. */
		if (fd >= 0)
			dup2(fd, 2);
		_exit(ep_spawner_serve(sock_path));
	}
	/* Until it accepts (a killed one's socket file may still be there). */
	for (int i = 0; i < 500; i++) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		bool up;

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
		up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (up)
			break;
		msleep(10);
	}
	return p;
}

/* A process's state letter from /proc, or 0 when it is gone. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

static bool gone_within(pid_t pid, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (!proc_state(pid))
			return true;
		msleep(10);
	}
	return false;
}

static bool readable_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) > 0;
}

static void test_parser(void)
{
	char buf[EP_SPAWN_MAX_REQ + 64];
	struct ep_spawn_msg m = {.op_or_rc = EP_SPAWN_RUN};
	struct ep_spawn_req r;
	size_t n;

	memcpy(buf, &m, sizeof(m));
	memcpy(buf + sizeof(m), "/bin/true\0true\0-x", 18);
	n = sizeof(m) + 18;
	tap_ok(ep_spawn_req_parse(buf, n, &r) == 0 && r.op == EP_SPAWN_RUN &&
		       !strcmp(r.file, "/bin/true") && !strcmp(r.argv[0], "true") &&
		       !strcmp(r.argv[1], "-x") && !r.argv[2],
	       "parse: run with file, argv[0] and one argument");
	tap_ok(ep_spawn_req_parse(buf, n - 1, &r) == -EINVAL,
	       "parse: a last string without its NUL is refused (nothing read past the message)");
	tap_ok(ep_spawn_req_parse(buf, sizeof(m) + 10, &r) == -EINVAL,
	       "parse: run with a file but no argv[0] is refused");
	memcpy(buf + sizeof(m), "/bin/true\0\0x", 13);
	tap_ok(ep_spawn_req_parse(buf, sizeof(m) + 13, &r) == -EINVAL,
	       "parse: an empty string is refused");
	tap_ok(ep_spawn_req_parse(buf, sizeof(m), &r) == -EINVAL, "parse: run without strings is refused");
	tap_ok(ep_spawn_req_parse(buf, 5, &r) == -EINVAL, "parse: a message shorter than the header is refused");
	n = sizeof(m);
	memcpy(buf + n, "f", 2);
	n += 2;
	for (int i = 0; i < EP_SPAWN_MAX_ARGS + 1; i++) {
		memcpy(buf + n, "a", 2);
		n += 2;
	}
	tap_ok(ep_spawn_req_parse(buf, n, &r) == -E2BIG, "parse: %d arguments are refused (at most %d)",
	       EP_SPAWN_MAX_ARGS + 1, EP_SPAWN_MAX_ARGS);
	tap_ok(ep_spawn_req_parse(buf, n - 2, &r) == 0 && r.argv[EP_SPAWN_MAX_ARGS - 1] &&
		       !r.argv[EP_SPAWN_MAX_ARGS],
	       "parse: exactly %d arguments are taken", EP_SPAWN_MAX_ARGS);
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, &m, sizeof(m));
	buf[EP_SPAWN_MAX_REQ] = '\0';
	tap_ok(ep_spawn_req_parse(buf, EP_SPAWN_MAX_REQ + 1, &r) == -EINVAL,
	       "parse: a message longer than %d bytes is refused", EP_SPAWN_MAX_REQ);
	m = (struct ep_spawn_msg){.op_or_rc = EP_SPAWN_REAP, .pid = 42, .arg = 1};
	memcpy(buf, &m, sizeof(m));
	tap_ok(ep_spawn_req_parse(buf, sizeof(m), &r) == 0 && r.op == EP_SPAWN_REAP && r.pid == 42 &&
		       r.block,
	       "parse: reap pid 42, blocking");
	tap_ok(ep_spawn_req_parse(buf, sizeof(m) + 1, &r) == -EINVAL, "parse: reap with trailing bytes is refused");
	m.pid = 0;
	memcpy(buf, &m, sizeof(m));
	tap_ok(ep_spawn_req_parse(buf, sizeof(m), &r) == -EINVAL, "parse: reap of pid 0 is refused");
	m = (struct ep_spawn_msg){.op_or_rc = EP_SPAWN_REAP, .pid = -1, .arg = 0};
	memcpy(buf, &m, sizeof(m));
	tap_ok(ep_spawn_req_parse(buf, sizeof(m), &r) == -EINVAL,
	       "parse: reap of pid -1 (any child) is refused");
	m = (struct ep_spawn_msg){.op_or_rc = EP_SPAWN_REAP, .pid = 5, .arg = 2};
	memcpy(buf, &m, sizeof(m));
	tap_ok(ep_spawn_req_parse(buf, sizeof(m), &r) == -EINVAL, "parse: reap with block 2 is refused");
	m = (struct ep_spawn_msg){.op_or_rc = 3};
	memcpy(buf, &m, sizeof(m));
	tap_ok(ep_spawn_req_parse(buf, sizeof(m), &r) == -EINVAL, "parse: an unknown operation is refused");
}

static void test_table(void)
{
	static struct ep_spawn_exited t;
	int st = 0, found = 0;

	ep_spawn_exited_put(&t, 100, 7 << 8);
	tap_ok(ep_spawn_exited_take(&t, 100, &st) && st == 7 << 8 && !ep_spawn_exited_take(&t, 100, &st),
	       "exit table: a status is taken once");
	for (int i = 0; i < EP_SPAWN_EXITED_MAX + 10; i++)
		ep_spawn_exited_put(&t, 1000 + i, i);
	for (int i = 0; i < EP_SPAWN_EXITED_MAX + 10; i++)
		found += ep_spawn_exited_take(&t, 1000 + i, &st);
	tap_ok(found == EP_SPAWN_EXITED_MAX && !ep_spawn_exited_take(&t, 1000, &st),
	       "exit table: full, the oldest statuses give way (%d of %d kept)", found,
	       EP_SPAWN_EXITED_MAX + 10);
}

/* A raw client: the answer to one message. */
static int raw_ask(const void *req, size_t len, struct ep_spawn_msg *ans)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), rc = -1;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    send(fd, req, len, 0) == (ssize_t)len && readable_within(fd, 5000) &&
	    recv(fd, ans, sizeof(*ans), 0) == (ssize_t)sizeof(*ans))
		rc = 0;
	/* And the same connection is still served: a valid reap after it. */
	if (!rc) {
		struct ep_spawn_msg m = {.op_or_rc = EP_SPAWN_REAP, .pid = 1, .arg = 0}, a2;

		rc = send(fd, &m, sizeof(m), 0) == (ssize_t)sizeof(m) && readable_within(fd, 5000) &&
				     recv(fd, &a2, sizeof(a2), 0) == (ssize_t)sizeof(a2) &&
				     a2.op_or_rc == -ECHILD
			     ? 0
			     : -2;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

int main(void)
{
	char dir[] = "/tmp/ep-spawn-XXXXXX", why[256] = "";
	char *sh_exit7[] = {"sh", "-c", "exit 7", NULL};
	char *sleeper[] = {"sleep", "30", NULL};
	struct ep_spawn_msg ans;
	struct stat st;
	pid_t server, pid, pid2, other;
	int pidfd = -1, status = 0, rc;

	test_parser();
	test_table();
	if (!mkdtemp(dir)) {
		tap_ok(0, "mkdtemp: %s", strerror(errno));
		return tap_done();
	}
	snprintf(sock_path, sizeof(sock_path), "%s/spawner.sock", dir);
	tap_ok(ep_spawner_remote_set("relative.sock") == -EINVAL, "remote: a relative path is refused");
	ep_spawner_remote_set(sock_path);
	rc = ep_spawner_remote_check(why, sizeof(why));
	tap_ok(rc == -ENOENT, "remote: no server yet: unreachable, and said why (%s)", why);
	rc = ep_spawn_cache_detached("sleep", sleeper, &pid, &pidfd);
	tap_ok(rc == -ENOENT && pidfd == -1,
	       "remote: with the server down nothing is started (no local fallback): %s", strerror(-rc));

	server = server_start();
	memset(&st, 0, sizeof(st));
	stat(sock_path, &st);
	tap_ok(S_ISSOCK(st.st_mode) && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
	       "server: listening on a socket of mode 0600 (%o)", st.st_mode & 0777);
	tap_ok(ep_spawner_remote_check(why, sizeof(why)) == 0, "remote: reachable once the server runs");

	/* A second server on a live socket is refused. */
	other = fork();
	if (other == 0) {
		int fd = open("/dev/null", 1);

		if (fd >= 0)
			dup2(fd, 2);
		_exit(ep_spawner_serve(sock_path));
	}
	waitpid(other, &status, 0);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 1 && ep_spawner_remote_check(NULL, 0) == 0,
	       "server: a second one on the same live socket refuses to start; the first keeps serving");

	rc = ep_spawn_cache_detached("sh", sh_exit7, &pid, &pidfd);
	tap_ok(rc == 0 && pid > 0 && pidfd >= 0, "run: sh -c 'exit 7' started (pid %d) with a pidfd", (int)pid);
	tap_ok(pidfd >= 0 && readable_within(pidfd, 5000), "run: its pidfd says when it exits");
	tap_ok(waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD,
	       "run: it is the server's child, not this process's");
	tap_ok(gone_within(pid, 5000), "server: reaped it at once, unasked (no zombie left)");
	status = 0;
	rc = ep_spawn_cache_reap(pid, false, &status);
	tap_ok(rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 7,
	       "reap: answered from the server's table: exit status 7 (rc %d)", rc);
	tap_ok(ep_spawn_cache_reap(pid, false, &status) == -ECHILD, "reap: a second time: not a child (ECHILD)");
	if (pidfd >= 0)
		close(pidfd);

	rc = ep_spawn_cache_detached("sleep", sleeper, &pid, &pidfd);
	tap_ok(rc == 0 && ep_spawn_cache_reap(pid, false, &status) == 1,
	       "reap: a running child without blocking: 1 (still running)");
	kill(pid, SIGKILL);
	status = 0;
	tap_ok(ep_spawn_cache_reap(pid, true, &status) == 0 && WIFSIGNALED(status) &&
		       WTERMSIG(status) == SIGKILL,
	       "reap: blocking, after SIGKILL: died of signal 9");
	if (pidfd >= 0)
		close(pidfd);

	/* The agent restarts: its connection closes, its child keeps running
	 * and exits while no agent is connected; the next agent adopts it and
	 * asks the server. */
	rc = ep_spawn_cache_detached("sleep", sleeper, &pid2, &pidfd);
	ep_spawner_remote_set(NULL);
	msleep(100);
	tap_ok(rc == 0 && proc_state(pid2) && proc_state(pid2) != 'Z',
	       "disconnect: the child keeps running after its client went away");
	kill(pid2, SIGKILL);
	tap_ok(gone_within(pid2, 5000), "disconnect: it died with no client connected and was reaped");
	ep_spawner_remote_set(sock_path);
	status = 0;
	tap_ok(ep_spawn_cache_reap(pid2, true, &status) == 0 && WIFSIGNALED(status),
	       "reconnect: a new client gets its exit status from the table");
	if (pidfd >= 0)
		close(pidfd);

	/* Malformed requests on a raw connection. */
	{
		char junk[] = "xyzzy-not-a-request";
		struct ep_spawn_msg m = {.op_or_rc = EP_SPAWN_RUN};
		char req[sizeof(m) + 4];

		tap_ok(raw_ask(junk, sizeof(junk), &ans) == 0 && ans.op_or_rc == -EINVAL,
		       "bad message: garbage answered EINVAL, the connection still served");
		memcpy(req, &m, sizeof(m));
		memcpy(req + sizeof(m), "abcd", 4);
		tap_ok(raw_ask(req, sizeof(req), &ans) == 0 && ans.op_or_rc == -EINVAL,
		       "bad message: run with an unterminated string answered EINVAL");
	}

	/* The server restarts (its container does): the client's old
	 * connection is dead; it errs while none runs, reconnects after. */
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	rc = ep_spawn_cache_detached("sleep", sleeper, &pid, &pidfd);
	tap_ok(rc == -ECONNREFUSED, "server killed: a run fails with ECONNREFUSED, nothing started (%s)",
	       strerror(-rc));
	tap_ok(ep_spawner_remote_check(why, sizeof(why)) == -ECONNREFUSED, "server killed: status says so (%s)",
	       why);
	server = server_start();
	rc = ep_spawn_cache_detached("sh", sh_exit7, &pid, &pidfd);
	tap_ok(rc == 0 && ep_spawner_remote_check(NULL, 0) == 0,
	       "server restarted on the stale socket: the client reconnected and the run worked");
	if (!rc) {
		readable_within(pidfd, 5000);
		close(pidfd);
		tap_ok(ep_spawn_cache_reap(pid, true, &status) == 0 && WEXITSTATUS(status) == 7,
		       "server restarted: reap works on the new connection");
	}

	if (geteuid() == 0) {
		pid_t c = fork();

		if (c == 0) {
			struct sockaddr_un sa = {.sun_family = AF_UNIX};
			int fd;

			if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
				_exit(3);
			fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
			_exit(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : 1);
		}
		waitpid(c, &status, 0);
		tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 1,
		       "server: another user cannot connect (socket 0600)");
	} else {
		tap_skip("not root", "server: another user cannot connect (socket 0600)");
	}

	kill(server, SIGTERM);
	waitpid(server, &status, 0);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && stat(sock_path, &st) != 0,
	       "server: SIGTERM ends it with status 0 and removes its socket");
	ep_spawner_remote_set(NULL);
	rmdir(dir);
	return tap_done();
}
