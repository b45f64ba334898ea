/*
 * The spawner (see spawn.h). One SOCK_SEQPACKET socketpair: each request is
 * one message, each answer one message, in order, from the one event-loop
 * thread that supervises dnsmasq (calls are serialised by a mutex anyway).
 *
 *   run:  {SPAWN_RUN, 0, 0} + file and argv as NUL-separated strings
 *         -> {rc, pid, 0} (+ the pidfd as SCM_RIGHTS when rc == 0)
 *   reap: {SPAWN_REAP, pid, block} -> {rc, pid, status}
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SPAWN_RUN = 1, SPAWN_REAP = 2 };

struct spawn_msg {
	int32_t op_or_rc;
	int32_t pid;
	int32_t arg; /* reap: block; answer: wait status */
};

#define MAX_REQ 8192
#define MAX_ARGS 64
/* An answer never takes long (fork+exec, or reaping a process already
 * known dead); a stuck spawner must not hang the agent's loop. */
#define ANSWER_TIMEOUT_S 10

static int chan = -1;
static pid_t spawner;
static pthread_mutex_t chan_lock = PTHREAD_MUTEX_INITIALIZER;

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* In the child: become the detached program or _exit(127). */
static void exec_detached(const char *file, char *const argv[])
{
	sigset_t none;
	int devnull;

	/* A session of its own: outlives the agent and its signals. The agent
	 * blocks the signals it takes through signalfd; the program must get
	 * them the normal way. */
	setsid();
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
	}
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	execvp(file, argv);
	_exit(127);
}

static int fork_exec(const char *file, char *const argv[], pid_t *pid)
{
	pid_t p = fork();

	if (p < 0)
		return -errno;
	if (p == 0)
		exec_detached(file, argv);
	*pid = p;
	return 0;
}

static int reap(pid_t pid, bool block, int *status)
{
	int st = 0;
	pid_t r;

	do
		r = waitpid(pid, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 1;
	if (status)
		*status = st;
	return 0;
}

static int send_answer(int fd, const struct spawn_msg *m, int pass_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = {};
	struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (pass_fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static void serve(int fd)
{
	static char req[MAX_REQ + 1];

	for (;;) {
		struct spawn_msg m, ans = {};
		ssize_t n = recv(fd, req, MAX_REQ, 0);
		int pidfd = -1;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < (ssize_t)sizeof(m))
			_exit(0); /* the agent is gone (or spoke nonsense) */
		memcpy(&m, req, sizeof(m));
		if (m.op_or_rc == SPAWN_RUN) {
			char *argv[MAX_ARGS + 2], *p = req + sizeof(m), *end = req + n;
			int argc = 0;

			*end = '\0';
			while (p < end && argc < MAX_ARGS + 1) {
				argv[argc++] = p;
				p += strlen(p) + 1;
			}
			argv[argc] = NULL;
			/* argv[0] here is the file, then the program's argv. */
			ans.op_or_rc = argc >= 2 ? fork_exec(argv[0], argv + 1, &ans.pid) : -EINVAL;
			if (!ans.op_or_rc)
				pidfd = pidfd_open_(ans.pid);
		} else if (m.op_or_rc == SPAWN_REAP) {
			ans.pid = m.pid;
			ans.op_or_rc = reap(m.pid, m.arg, &ans.arg);
		} else {
			ans.op_or_rc = -EINVAL;
		}
		send_answer(fd, &ans, pidfd);
		if (pidfd >= 0)
			close(pidfd);
	}
}

/* Rewrites the command line in place (the kernel shows the argv area). */
static void retitle(char **argv)
{
	static const char title[] = "edgeplane-agent: spawner";
	char *start, *end;

	if (!argv || !argv[0])
		return;
	start = end = argv[0];
	for (int i = 0; argv[i] && argv[i] == end; i++)
		end = argv[i] + strlen(argv[i]) + 1;
	memset(start, 0, (size_t)(end - start));
	memcpy(start, title, (size_t)(end - start) < sizeof(title) ? (size_t)(end - start) - 1
								       : sizeof(title) - 1);
}

int ep_spawner_start(char **argv)
{
	int sv[2];
	pid_t p;

	if (chan >= 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	p = fork();
	if (p < 0) {
		int e = errno;

		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (p == 0) {
		/* Keep stderr (exec failures are reported by status 127 anyway),
		 * drop everything else the agent had open. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != sv[1])
				close(fd);
		prctl(PR_SET_NAME, "ep-spawner", 0, 0, 0);
		retitle(argv);
		/* Dies with the agent (EOF on the socket covers a clean exit;
		 * this covers a kill while a request is pending). */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		serve(sv[1]);
	}
	close(sv[1]);
	chan = sv[0];
	spawner = p;
	{
		struct timeval tv = {.tv_sec = ANSWER_TIMEOUT_S};

		setsockopt(chan, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	return 0;
}

void ep_spawner_stop(void)
{
	if (chan < 0)
		return;
	close(chan);
	chan = -1;
	/* It exits on EOF; reap it so no zombie stays behind. */
	if (spawner > 0)
		waitpid(spawner, NULL, 0);
	spawner = 0;
}

pid_t ep_spawner_pid(void)
{
	return spawner;
}

/* One request, one answer; *fd_out gets a passed fd or -1. */
static int ask(const void *req, size_t len, struct spawn_msg *ans, int *fd_out)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = ans, .iov_len = sizeof(*ans)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	ssize_t n;

	if (fd_out)
		*fd_out = -1;
	if (send(chan, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return errno ? -errno : -EIO;
	do
		n = recvmsg(chan, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*ans))
		return n < 0 ? -errno : -EIO;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int fd;

			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
			if (fd_out && *fd_out < 0)
				*fd_out = fd;
			else
				close(fd);
		}
	}
	return 0;
}

int ep_spawn_detached(const char *file, char *const argv[], pid_t *pid, int *pidfd)
{
	static char req[MAX_REQ];
	struct spawn_msg m = {.op_or_rc = SPAWN_RUN}, ans;
	size_t len = sizeof(m);
	int rc, fd;

	if (pidfd)
		*pidfd = -1;
	if (chan < 0) {
		rc = fork_exec(file, argv, pid);
		if (!rc && pidfd)
			*pidfd = pidfd_open_(*pid);
		return rc;
	}
	pthread_mutex_lock(&chan_lock);
	memcpy(req, &m, sizeof(m));
	for (int i = -1; i < 0 || argv[i]; i++) {
		const char *a = i < 0 ? file : argv[i];
		size_t l = strlen(a) + 1;

		if (i >= MAX_ARGS || len + l > MAX_REQ) {
			pthread_mutex_unlock(&chan_lock);
			return -E2BIG;
		}
		memcpy(req + len, a, l);
		len += l;
	}
	rc = ask(req, len, &ans, &fd);
	pthread_mutex_unlock(&chan_lock);
	if (!rc)
		rc = ans.op_or_rc;
	if (rc) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	*pid = ans.pid;
	if (pidfd)
		*pidfd = fd;
	else if (fd >= 0)
		close(fd);
	return 0;
}

int ep_spawn_reap(pid_t pid, bool block, int *status)
{
	struct spawn_msg m = {.op_or_rc = SPAWN_REAP, .pid = pid, .arg = block}, ans;
	int rc;

	if (chan < 0)
		return reap(pid, block, status);
	pthread_mutex_lock(&chan_lock);
	rc = ask(&m, sizeof(m), &ans, NULL);
	pthread_mutex_unlock(&chan_lock);
	if (rc)
		return rc;
	if (!ans.op_or_rc && status)
		*status = ans.arg;
	return ans.op_or_rc;
}
