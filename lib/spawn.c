/*
 * The spawner (see spawn.h). One SOCK_SEQPACKET socketpair (the local
 * spawner) or connection (the cache's spawner server): each request is one
 * message, each answer one message, in order, from the one event-loop
 * thread that supervises dnsmasq (calls are serialised by a mutex anyway).
 *
 *   run:  {EP_SPAWN_RUN, 0, 0} + file and argv as NUL-separated strings
 *         -> {rc, pid, 0} (+ the pidfd as SCM_RIGHTS when rc == 0)
 *   reap: {EP_SPAWN_REAP, pid, block} -> {rc, pid, status}
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

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

static int send_answer(int fd, const struct ep_spawn_msg *m, int pass_fd)
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

int ep_spawn_req_parse(const char *buf, size_t n, struct ep_spawn_req *r)
{
	struct ep_spawn_msg m;
	const char *p, *end;
	int argc = 0;

	memset(r, 0, sizeof(*r));
	if (n < sizeof(m) || n > EP_SPAWN_MAX_REQ)
		return -EINVAL;
	memcpy(&m, buf, sizeof(m));
	r->op = m.op_or_rc;
	if (m.op_or_rc == EP_SPAWN_REAP) {
		if (n != sizeof(m) || m.pid <= 0 || (m.arg != 0 && m.arg != 1))
			return -EINVAL;
		r->pid = m.pid;
		r->block = m.arg;
		return 0;
	}
	if (m.op_or_rc != EP_SPAWN_RUN || m.pid || m.arg)
		return -EINVAL;
	p = buf + sizeof(m);
	end = buf + n;
	/* Every string NUL-terminated inside the message, the last one
	 * ending it exactly: nothing is read past what was received. */
	if (p == end || end[-1] != '\0')
		return -EINVAL;
	while (p < end) {
		size_t l = strlen(p);

		if (!l)
			return -EINVAL;
		if (argc == 0)
			r->file = p;
		else if (argc - 1 >= EP_SPAWN_MAX_ARGS)
			return -E2BIG;
		else
			r->argv[argc - 1] = (char *)p;
		argc++;
		p += l + 1;
	}
	if (argc < 2)
		return -EINVAL;
	r->argv[argc - 1] = NULL;
	return 0;
}

static void serve(int fd)
{
	static char req[EP_SPAWN_MAX_REQ + 1];

	for (;;) {
		struct ep_spawn_msg ans = {};
		struct ep_spawn_req r;
		ssize_t n = recv(fd, req, EP_SPAWN_MAX_REQ + 1, 0);
		int pidfd = -1;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < (ssize_t)sizeof(ans))
			_exit(0); /* the agent is gone (or spoke nonsense) */
		ans.op_or_rc = ep_spawn_req_parse(req, (size_t)n, &r);
		if (ans.op_or_rc) {
			/* answered -EINVAL/-E2BIG */
		} else if (r.op == EP_SPAWN_RUN) {
			ans.op_or_rc = fork_exec(r.file, r.argv, &ans.pid);
			if (!ans.op_or_rc)
				pidfd = pidfd_open_(ans.pid);
		} else {
			ans.pid = r.pid;
			ans.op_or_rc = reap(r.pid, r.block, &ans.arg);
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
/* One request, one answer on fd; *fd_out gets a passed fd or -1. *sent:
 * whether the request left (a failed send may be retried on a new
 * connection; a request that left may have been carried out). */
static int ask_on(int fd, const void *req, size_t len, struct ep_spawn_msg *ans, int *fd_out,
		  bool *sent)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = ans, .iov_len = sizeof(*ans)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	ssize_t n;

	if (fd_out)
		*fd_out = -1;
	*sent = false;
	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return errno ? -errno : -EIO;
	*sent = true;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (c = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int pfd;

			memcpy(&pfd, CMSG_DATA(c), sizeof(pfd));
			if (fd_out && *fd_out < 0 && n == (ssize_t)sizeof(*ans))
				*fd_out = pfd;
			else
				close(pfd);
		}
	}
	if (n != (ssize_t)sizeof(*ans))
		return n < 0 ? -errno : n == 0 ? -ECONNRESET : -EIO;
	return 0;
}

/* The run request for file + argv into req; its length or -E2BIG. */
static ssize_t build_run(char *req, const char *file, char *const argv[])
{
	struct ep_spawn_msg m = {.op_or_rc = EP_SPAWN_RUN};
	size_t len = sizeof(m);

	memcpy(req, &m, sizeof(m));
	for (int i = -1; i < 0 || argv[i]; i++) {
		const char *a = i < 0 ? file : argv[i];
		size_t l = strlen(a) + 1;

		if (i >= EP_SPAWN_MAX_ARGS || len + l > EP_SPAWN_MAX_REQ)
			return -E2BIG;
		memcpy(req + len, a, l);
		len += l;
	}
	return (ssize_t)len;
}

/* The answer to a run request: *pid and *pidfd (may be NULL) set on success. */
static int run_answer(int rc, const struct ep_spawn_msg *ans, int fd, pid_t *pid, int *pidfd)
{
	if (!rc)
		rc = ans->op_or_rc;
	if (rc) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	*pid = ans->pid;
	if (pidfd)
		*pidfd = fd;
	else if (fd >= 0)
		close(fd);
	return 0;
}

int ep_spawn_detached(const char *file, char *const argv[], pid_t *pid, int *pidfd)
{
	static char req[EP_SPAWN_MAX_REQ];
	struct ep_spawn_msg ans;
	ssize_t len;
	bool sent;
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
	len = build_run(req, file, argv);
	rc = len < 0 ? (int)len : ask_on(chan, req, (size_t)len, &ans, &fd, &sent);
	pthread_mutex_unlock(&chan_lock);
	if (len < 0)
		fd = -1;
	return run_answer(rc, &ans, fd, pid, pidfd);
}

int ep_spawn_reap(pid_t pid, bool block, int *status)
{
	struct ep_spawn_msg m = {.op_or_rc = EP_SPAWN_REAP, .pid = pid, .arg = block}, ans;
	bool sent;
	int rc;

	if (chan < 0)
		return reap(pid, block, status);
	pthread_mutex_lock(&chan_lock);
	rc = ask_on(chan, &m, sizeof(m), &ans, NULL, &sent);
	pthread_mutex_unlock(&chan_lock);
	if (rc)
		return rc;
	if (!ans.op_or_rc && status)
		*status = ans.arg;
	return ans.op_or_rc;
}

/* ---- the cache's spawner: client --------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool set;
	int fd;		/* -1: not connected */
	int last_err;	/* of the last connect or exchange; 0: fine */
	bool said_down; /* "unreachable" logged since the last good exchange */
} remote = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

int ep_spawner_remote_set(const char *path)
{
	if (path && (path[0] != '/' || strlen(path) >= sizeof(remote.path)))
		return -EINVAL;
	pthread_mutex_lock(&remote.lock);
	if (remote.fd >= 0)
		close(remote.fd);
	remote.fd = -1;
	remote.set = path != NULL;
	snprintf(remote.path, sizeof(remote.path), "%s", path ? path : "");
	remote.last_err = 0;
	remote.said_down = false;
	pthread_mutex_unlock(&remote.lock);
	return 0;
}

const char *ep_spawner_remote_path(void)
{
	return remote.set ? remote.path : NULL;
}

static void remote_down(int err)
{
	if (remote.fd >= 0)
		close(remote.fd);
	remote.fd = -1;
	remote.last_err = err;
	if (!remote.said_down)
		log_warn("the cache's spawner at %s is unreachable (%s): the cache's helpers cannot be "
			 "started until it is back (its container runs `edgeplane-agent --spawner-listen`)",
			 remote.path, strerror(-err));
	remote.said_down = true;
}

static void remote_up(void)
{
	if (remote.said_down)
		log_info("the cache's spawner at %s is reachable again", remote.path);
	remote.said_down = false;
	remote.last_err = 0;
}

/* Under remote.lock. A connection the server has closed (it restarted)
 * reads as EOF before any request: dropped here and made anew. */
static int remote_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = ANSWER_TIMEOUT_S};
	int fd;

	if (remote.fd >= 0) {
		struct pollfd p = {.fd = remote.fd, .events = POLLIN};

		if (poll(&p, 1, 0) == 0)
			return 0;
		/* Nothing is ever due unasked: readable means closed. */
		close(remote.fd);
		remote.fd = -1;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, remote.path, strlen(remote.path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;

		close(fd);
		return -e;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	remote.fd = fd;
	return 0;
}

/* One exchange with the server; a request that could not be sent on an old
 * connection is sent once more on a new one. */
static int remote_ask(const void *req, size_t len, struct ep_spawn_msg *ans, int *fd_out)
{
	bool sent = false;
	int rc = 0;

	if (fd_out)
		*fd_out = -1;
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = remote_connect();
		if (rc)
			break;
		rc = ask_on(remote.fd, req, len, ans, fd_out, &sent);
		if (!rc) {
			remote_up();
			return 0;
		}
		close(remote.fd);
		remote.fd = -1;
		if (sent)
			break;
	}
	remote_down(rc);
	return rc;
}

int ep_spawner_remote_check(char *why, size_t len)
{
	int rc;

	if (!remote.set)
		return 0;
	pthread_mutex_lock(&remote.lock);
	rc = remote_connect();
	if (rc)
		remote_down(rc);
	else
		remote_up();
	if (rc && why)
		snprintf(why, len, "%s: %s", remote.path, strerror(-rc));
	pthread_mutex_unlock(&remote.lock);
	return rc;
}

int ep_spawn_cache_detached(const char *file, char *const argv[], pid_t *pid, int *pidfd)
{
	char req[EP_SPAWN_MAX_REQ];
	struct ep_spawn_msg ans;
	ssize_t len;
	int rc, fd = -1;

	if (!remote.set)
		return ep_spawn_detached(file, argv, pid, pidfd);
	if (pidfd)
		*pidfd = -1;
	len = build_run(req, file, argv);
	if (len < 0)
		return (int)len;
	pthread_mutex_lock(&remote.lock);
	rc = remote_ask(req, (size_t)len, &ans, &fd);
	pthread_mutex_unlock(&remote.lock);
	return run_answer(rc, &ans, fd, pid, pidfd);
}

int ep_spawn_cache_reap(pid_t pid, bool block, int *status)
{
	struct ep_spawn_msg m = {.op_or_rc = EP_SPAWN_REAP, .pid = pid, .arg = block}, ans;
	int rc;

	if (!remote.set)
		return ep_spawn_reap(pid, block, status);
	pthread_mutex_lock(&remote.lock);
	rc = remote_ask(&m, sizeof(m), &ans, NULL);
	pthread_mutex_unlock(&remote.lock);
	if (rc)
		return rc;
	if (!ans.op_or_rc && status)
		*status = ans.arg;
	return ans.op_or_rc;
}

/* ---- the cache's spawner: server --------------------------------------------- */

void ep_spawn_exited_put(struct ep_spawn_exited *t, pid_t pid, int status)
{
	size_t slot = 0;

	for (size_t i = 0; i < EP_SPAWN_EXITED_MAX; i++) {
		if (!t->e[i].pid) {
			slot = i;
			break;
		}
		if (t->e[i].seq < t->e[slot].seq)
			slot = i;
	}
	t->e[slot].pid = pid;
	t->e[slot].status = status;
	t->e[slot].seq = ++t->seq;
}

bool ep_spawn_exited_take(struct ep_spawn_exited *t, pid_t pid, int *status)
{
	for (size_t i = 0; i < EP_SPAWN_EXITED_MAX; i++) {
		if (pid > 0 && t->e[i].pid == pid) {
			*status = t->e[i].status;
			t->e[i].pid = 0;
			return true;
		}
	}
	return false;
}

#define SERVE_MAX_CLIENTS 8
/* A blocking reap waits this long at most: the server answers every
 * client from one thread and the clients time out after ANSWER_TIMEOUT_S. */
#define SERVE_REAP_WAIT_MS 3000

static void reap_all(struct ep_spawn_exited *t)
{
	int st;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		if (WIFSIGNALED(st))
			log_info("spawner: pid %d died (signal %d)", (int)p, WTERMSIG(st));
		else
			log_info("spawner: pid %d exited (status %d)", (int)p, WEXITSTATUS(st));
		ep_spawn_exited_put(t, p, st);
	}
}

/* "reap PID": from the table when it was reaped already, else from the
 * kernel; -ECHILD for a pid that was never this server's child. */
static int serve_reap(struct ep_spawn_exited *t, pid_t pid, bool block, int *status)
{
	for (int waited = 0;; waited += 10) {
		pid_t r;

		if (ep_spawn_exited_take(t, pid, status))
			return 0;
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0)
			return -errno;
		if (!block || waited >= SERVE_REAP_WAIT_MS)
			return 1;
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000L}, NULL);
	}
}

static void serve_one(int fd, struct ep_spawn_exited *t)
{
	static char req[EP_SPAWN_MAX_REQ + 1];
	struct ep_spawn_msg ans = {};
	struct ep_spawn_req r;
	ssize_t n = recv(fd, req, sizeof(req), MSG_DONTWAIT);
	int pidfd = -1;

	if (n <= 0)
		return;
	ans.op_or_rc = ep_spawn_req_parse(req, (size_t)n, &r);
	if (ans.op_or_rc) {
		log_warn("spawner: refused a malformed request (%zd bytes): %s", n,
			 strerror(-ans.op_or_rc));
	} else if (r.op == EP_SPAWN_RUN) {
		ans.op_or_rc = fork_exec(r.file, r.argv, &ans.pid);
		if (!ans.op_or_rc) {
			pidfd = pidfd_open_(ans.pid);
			log_info("spawner: started %s (pid %d)", r.file, (int)ans.pid);
		} else {
			log_warn("spawner: cannot start %s: %s", r.file, strerror(-ans.op_or_rc));
		}
	} else {
		reap_all(t);
		ans.pid = r.pid;
		ans.op_or_rc = serve_reap(t, r.pid, r.block, &ans.arg);
	}
	send_answer(fd, &ans, pidfd);
	if (pidfd >= 0)
		close(pidfd);
}

/* The listening socket at path; a stale file is replaced, a live server is
 * not. -errno with msg filled. */
static int serve_listen(const char *path, char *msg, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t um;
	int fd, e;

	if (path[0] != '/' || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(msg, len, "%s: must be an absolute path shorter than %zu bytes", path,
			 sizeof(sa.sun_path));
		return -EINVAL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(msg, len, "%s exists and is not a socket", path);
			close(fd);
			return -EEXIST;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			snprintf(msg, len, "another spawner server is listening on %s", path);
			close(fd);
			return -EADDRINUSE;
		}
		/* A socket of a server that is gone (its container restarted). */
		close(fd);
		unlink(path);
		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
	}
	/* Created 0600: no window in which another user could connect. */
	um = umask(0077);
	e = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? errno : 0;
	umask(um);
	if (e || chmod(path, 0600) || listen(fd, SERVE_MAX_CLIENTS)) {
		e = e ? e : errno;
		close(fd);
		snprintf(msg, len, "%s: %s", path, strerror(e));
		return -e;
	}
	return fd;
fail:
	e = errno;
	snprintf(msg, len, "socket: %s", strerror(e));
	return -e;
}

int ep_spawner_serve(const char *path)
{
	struct pollfd fds[2 + SERVE_MAX_CLIENTS];
	static struct ep_spawn_exited exited;
	int clients[SERVE_MAX_CLIENTS];
	char msg[256];
	sigset_t set;
	int lfd, sfd, rc = 0;

	for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
		clients[i] = -1;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("spawner: signalfd: %s", strerror(errno));
		return 1;
	}
	lfd = serve_listen(path, msg, sizeof(msg));
	if (lfd < 0) {
		log_error("spawner: cannot listen: %s", msg);
		close(sfd);
		return 1;
	}
	log_info("spawner: listening on %s (pid %d): it starts the cache's helpers for the agent",
		 path, (int)getpid());
	for (;;) {
		struct signalfd_siginfo si;
		int n = 0;

		fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		fds[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
			fds[n++] = (struct pollfd){.fd = clients[i], .events = POLLIN};
		if (poll(fds, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("spawner: poll: %s", strerror(errno));
			rc = 1;
			break;
		}
		if (fds[0].revents) {
			bool stop = false;

			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				stop |= si.ssi_signo != SIGCHLD;
			reap_all(&exited);
			if (stop) {
				log_info("spawner: stopping; the programs it started keep running");
				break;
			}
		}
		for (int i = 0; i < SERVE_MAX_CLIENTS; i++) {
			short ev = fds[2 + i].revents;

			if (clients[i] < 0 || !ev)
				continue;
			if (ev & POLLIN)
				serve_one(clients[i], &exited);
			/* EOF (the agent is gone): readable and empty. */
			if ((ev & (POLLHUP | POLLERR)) ||
			    ((ev & POLLIN) && recv(clients[i], msg, 1, MSG_PEEK | MSG_DONTWAIT) == 0)) {
				log_info("spawner: a client disconnected");
				close(clients[i]);
				clients[i] = -1;
			}
		}
		if (fds[1].revents & POLLIN) {
			struct ucred cr;
			socklen_t cl = sizeof(cr);
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), slot = -1;

			if (c < 0)
				continue;
			for (int i = 0; i < SERVE_MAX_CLIENTS && slot < 0; i++)
				if (clients[i] < 0)
					slot = i;
			if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.uid != geteuid()) {
				log_warn("spawner: refused a client of uid %d (only uid %d is served)",
					 (int)cr.uid, (int)geteuid());
				close(c);
			} else if (slot < 0) {
				log_warn("spawner: refused a client: %d are connected already",
					 SERVE_MAX_CLIENTS);
				close(c);
			} else {
				log_info("spawner: client pid %d connected", (int)cr.pid);
				clients[slot] = c;
			}
		}
	}
	for (int i = 0; i < SERVE_MAX_CLIENTS; i++)
		if (clients[i] >= 0)
			close(clients[i]);
	close(lfd);
	unlink(path);
	close(sfd);
	return rc;
}
