#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "log.h"
#include "util.h"

#define CTL_MAX_MSG (1 << 20)

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

int ep_control_open(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	char dir[PATH_MAX];
	char *slash;
	int fd, probe;

	if (fill_addr(&sa, path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (ep_mkdir_p(dir, 0755)) {
			snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
			return -errno;
		}
	}
	/* A socket file that still answers belongs to a live agent. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(probe);
		snprintf(err, errlen, "another agent answers on %s", path);
		return -EADDRINUSE;
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	/* Create it 0600 from the start: no window where others could connect. */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));

	umask(old);
	if (rc || listen(fd, 16)) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -errno;
	}
	chmod(path, 0600);
	return fd;
}

void ep_control_close(int fd, const char *path)
{
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
}

/* Reads one line (the request or reply) within timeout_ms. */
static char *read_line(int fd, int timeout_ms)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	uint64_t deadline = ep_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	if (!buf)
		return NULL;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = (int64_t)(deadline - ep_now_ns()) / 1000000;
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (n + 1024 + 1 > cap) {
			char *nb;

			if (cap >= CTL_MAX_MSG)
				break;
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (memchr(buf, '\n', n))
			return buf;
	}
	if (n) {
		buf[n] = '\0';
		return buf;
	}
	free(buf);
	return NULL;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);

		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				struct pollfd p = {.fd = fd, .events = POLLOUT};

				if (poll(&p, 1, 2000) <= 0)
					return -1;
				continue;
			}
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static json_t *err_reply(const char *msg)
{
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

void ep_control_serve_one(struct ep_agent *a, int listen_fd)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	json_error_t jerr;
	json_t *req, *resp;
	char *line, *out;

	if (fd < 0)
		return;
	line = read_line(fd, 2000);
	if (!line) {
		close(fd);
		return;
	}
	req = json_loads(line, JSON_DISABLE_EOF_CHECK, &jerr);
	free(line);
	if (!req || !json_is_object(req)) {
		resp = err_reply("request is not a JSON object");
	} else if (!strcmp(json_string_value(json_object_get(req, "command")) ?: "", "reload")) {
		/* reload takes the lock itself */
		resp = ep_control_dispatch(a, req);
	} else {
		pthread_mutex_lock(&a->lock);
		resp = ep_control_dispatch(a, req);
		pthread_mutex_unlock(&a->lock);
	}
	json_decref(req);
	out = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	json_decref(resp);
	if (out) {
		write_all(fd, out, strlen(out));
		write_all(fd, "\n", 1);
		free(out);
	}
	close(fd);
}

json_t *ep_control_call(const char *path, json_t *req, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	json_error_t jerr;
	json_t *resp;
	char *out, *line;
	int fd;

	if (fill_addr(&sa, path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return NULL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		snprintf(err, errlen, "cannot reach the agent at %s: %s (is edgeplane-agent running? --socket sets the path)",
			 path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	out = json_dumps(req, JSON_COMPACT);
	if (!out || write_all(fd, out, strlen(out)) || write_all(fd, "\n", 1)) {
		snprintf(err, errlen, "cannot send the request: %s", strerror(errno));
		free(out);
		close(fd);
		return NULL;
	}
	free(out);
	line = read_line(fd, timeout_ms);
	close(fd);
	if (!line) {
		snprintf(err, errlen, "no answer from the agent within %d ms", timeout_ms);
		return NULL;
	}
	resp = json_loads(line, JSON_DISABLE_EOF_CHECK, &jerr);
	free(line);
	if (!resp) {
		snprintf(err, errlen, "unreadable answer from the agent: %s", jerr.text);
		return NULL;
	}
	return resp;
}
