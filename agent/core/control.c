#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "evloop.h"
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

/* ---- the server: non-blocking, one io source per client --------------- */

/*
 * The loop never waits for a client: the listening socket and every accepted
 * connection are io sources. A client's bytes go into its own line buffer
 * until the newline (or EOF, or CTL_MAX_MSG); the request is then handled
 * like before and the reply written as far as the socket takes it, the rest
 * when it turns writable. A client that sends or reads nothing for
 * CTL_IDLE_NS is closed; past CTL_MAX_CLIENTS the oldest one is closed to
 * make room, so idle connections cannot lock the CLI out either.
 */
#define CTL_MAX_CLIENTS 32
#define CTL_IDLE_NS (10ULL * 1000000000ULL)

struct ctl_client {
	struct ep_control *srv;
	struct ctl_client *prev, *next; /* oldest first */
	int fd;
	sd_event_source *io, *deadline;
	char *buf;	       /* request, then reply */
	size_t len, cap, off;  /* off: reply bytes written */
	bool replying;
};

struct ep_control {
	struct ep_agent *a;
	sd_event *ev;
	int fd;
	char path[PATH_MAX];
	sd_event_source *io;
	struct ctl_client *head, *tail;
	size_t n_clients;
};

static void client_close(struct ctl_client *c)
{
	struct ep_control *srv = c->srv;

	if (c->prev)
		c->prev->next = c->next;
	else
		srv->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		srv->tail = c->prev;
	srv->n_clients--;
	ep_source_free(&c->io);
	ep_source_free(&c->deadline);
	close(c->fd);
	free(c->buf);
	free(c);
}

static json_t *handle_request(struct ep_agent *a, const char *line)
{
	json_error_t jerr;
	json_t *req, *resp;

	req = json_loads(line, JSON_DISABLE_EOF_CHECK, &jerr);
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
	return resp;
}

/* Writes what the socket takes; 1 when the whole reply is out. */
static int client_flush(struct ctl_client *c)
{
	while (c->off < c->len) {
		ssize_t w = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w <= 0)
			return -1;
		c->off += (size_t)w;
	}
	return 1;
}

static void client_reply(struct ctl_client *c)
{
	json_t *resp;
	char *out, *grown;
	int rc;

	c->buf[c->len] = '\0';
	resp = handle_request(c->srv->a, c->buf);
	out = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	json_decref(resp);
	free(c->buf);
	c->buf = NULL;
	if (!out) {
		client_close(c);
		return;
	}
	c->len = strlen(out);
	c->cap = c->len + 2;
	grown = realloc(out, c->cap);
	if (!grown) {
		free(out);
		client_close(c);
		return;
	}
	c->buf = grown;
	c->buf[c->len++] = '\n';
	c->off = 0;
	c->replying = true;
	rc = client_flush(c);
	if (rc != 0) {
		client_close(c);
		return;
	}
	sd_event_source_set_io_events(c->io, EPOLLOUT);
	ep_timer_arm(c->deadline, CTL_IDLE_NS);
}

/* Reads what is there; the request is complete at a newline, at EOF or when
 * it reaches CTL_MAX_MSG (then it is answered as not being JSON). */
static void client_read(struct ctl_client *c)
{
	for (;;) {
		ssize_t r;

		if (c->len + 1024 + 1 > c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 4096;
			char *nb;

			if (c->cap >= CTL_MAX_MSG) {
				client_reply(c);
				return;
			}
			nb = realloc(c->buf, cap);
			if (!nb) {
				client_close(c);
				return;
			}
			c->buf = nb;
			c->cap = cap;
		}
		r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ep_timer_arm(c->deadline, CTL_IDLE_NS);
			return;
		}
		if (r <= 0) {
			if (r == 0 && c->len)
				client_reply(c);
			else
				client_close(c);
			return;
		}
		if (memchr(c->buf + c->len, '\n', (size_t)r)) {
			c->len += (size_t)r;
			client_reply(c);
			return;
		}
		c->len += (size_t)r;
	}
}

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct ctl_client *c = userdata;

	if (!c->replying) {
		client_read(c);
		return 0;
	}
	if (client_flush(c) != 0)
		client_close(c);
	else
		ep_timer_arm(c->deadline, CTL_IDLE_NS);
	return 0;
}

static int on_client_idle(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct ctl_client *c = userdata;

	log_debug("control socket: closing a client idle for %llu s",
		  (unsigned long long)(CTL_IDLE_NS / 1000000000ULL));
	client_close(c);
	return 0;
}

static void client_add(struct ep_control *srv, int fd)
{
	struct ctl_client *c;

	if (srv->n_clients >= CTL_MAX_CLIENTS) {
		log_warn("control socket: %d clients connected, closing the oldest", CTL_MAX_CLIENTS);
		client_close(srv->head);
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	if (sd_event_add_io(srv->ev, &c->io, fd, EPOLLIN, on_client_io, c) < 0 ||
	    ep_timer_oneshot(srv->ev, &c->deadline, on_client_idle, c, "control-client-idle") < 0 ||
	    ep_timer_arm(c->deadline, CTL_IDLE_NS)) {
		ep_source_free(&c->io);
		ep_source_free(&c->deadline);
		close(fd);
		free(c);
		return;
	}
	sd_event_source_set_description(c->io, "control-client");
	c->prev = srv->tail;
	if (srv->tail)
		srv->tail->next = c;
	else
		srv->head = c;
	srv->tail = c;
	srv->n_clients++;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct ep_control *srv = userdata;

	/* A bounded batch per wake-up: other sources get their turn. */
	for (int i = 0; i < 16; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("control socket: accept: %s", strerror(errno));
			break;
		}
		client_add(srv, cfd);
	}
	return 0;
}

int ep_control_start(struct ep_control **out, struct ep_agent *a, sd_event *ev, const char *path,
		     char *err, size_t errlen)
{
	struct ep_control *srv = calloc(1, sizeof(*srv));
	int rc;

	*out = NULL;
	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	srv->a = a;
	srv->ev = ev;
	snprintf(srv->path, sizeof(srv->path), "%s", path);
	srv->fd = ep_control_open(path, err, errlen);
	if (srv->fd < 0) {
		rc = srv->fd;
		free(srv);
		return rc;
	}
	rc = sd_event_add_io(ev, &srv->io, srv->fd, EPOLLIN, on_accept, srv);
	if (rc < 0) {
		snprintf(err, errlen, "control socket: cannot add it to the loop: %s", strerror(-rc));
		ep_control_close(srv->fd, srv->path);
		free(srv);
		return rc;
	}
	sd_event_source_set_description(srv->io, "control-listen");
	*out = srv;
	return 0;
}

void ep_control_stop(struct ep_control *srv)
{
	if (!srv)
		return;
	while (srv->head)
		client_close(srv->head);
	ep_source_free(&srv->io);
	ep_control_close(srv->fd, srv->path);
	free(srv);
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
