// SPDX-License-Identifier: GPL-2.0
/*
 * ep_echo — line echo backend for edgeplane end-to-end tests and benchmarks.
 *
 * TCP: one epoll loop (level triggered, non-blocking sockets, bounded work
 * per event so no client can starve the others). For every '\n'-terminated
 * request line it answers "NAME <line>\n". Partial reads/writes, pipelined
 * lines, half-closed and vanished clients are handled; a client that does
 * not read its replies is throttled (we stop reading from it) instead of
 * growing memory without bound.
 *
 * UDP: each datagram is answered with "NAME <payload>", sent from the local
 * address the datagram was addressed to (IP_PKTINFO / IPV6_PKTINFO).
 *
 * Standalone on purpose: no project library, only libc + pthread + libm.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockaddr.h"

#define MAX_PORTS     64
#define MAX_BINDS     16
#define MAX_LINE      (64 * 1024)   /* longest request line accepted */
#define IN_START      4096
#define OUT_HIGH      (256 * 1024)  /* stop reading a client above this */
#define FLUSH_BUDGET  (1024 * 1024) /* bytes written per event per client */
#define SERVICE_ITERS 16
#define UDP_BUF       65536
#define UDP_BATCH     64
#define UDP_RCVBUF    (8 * 1024 * 1024)
#define ACCEPT_BATCH  256
#define PATTERN_LEN   65536
#define BACKLOG_DEF   4096

enum kind { K_SIGNAL = 1, K_LISTEN, K_UDP, K_CONN };

struct lsock {
	enum kind kind;
	int fd;
	int family;
	char desc[96];
};

struct conn {
	enum kind kind;
	int fd;
	uint32_t ev;
	bool rd_eof;
	bool bulk;          /* a GET payload is being streamed */
	uint64_t bulk_left; /* payload bytes still to send */
	uint64_t bulk_sent;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_off, out_len, out_cap;
	struct conn *prev, *next;
};

static const char *g_id;
static size_t g_id_len;
static uint64_t g_bytes_max; /* 0: GET disabled */
static bool g_verbose;
static int g_ep = -1;
static int g_spare_fd = -1;
static struct conn *g_conns;
static char g_pattern[PATTERN_LEN + 32];
static unsigned char g_udp_buf[UDP_BUF];

static struct {
	uint64_t accepted, closed, lines, bulk_bytes, too_long, udp_rx, udp_tx,
		udp_err, accept_err;
	uint64_t open, max_open;
} st;

static void usage(FILE *f)
{
	fprintf(f,
"usage: ep_echo --id NAME [--port P ...] [--tcp-port P ...] [--udp-port P ...]\n"
"               [--bind ADDR ...] [--bytes MAX] [--backlog N] [--verbose]\n"
"\n"
"Line echo backend for edgeplane tests. Runs until SIGTERM or SIGINT.\n"
"\n"
"  --id NAME        backend identity put in front of every reply (required;\n"
"                   1-63 printable characters, no spaces)\n"
"  --port P         listen on TCP and UDP port P (repeatable)\n"
"  --tcp-port P     listen on TCP port P only (repeatable)\n"
"  --udp-port P     listen on UDP port P only (repeatable)\n"
"  --bind ADDR      local address (repeatable). Default \"::\" as a dual-stack\n"
"                   socket (IPV6_V6ONLY=0), so IPv4 and IPv6 both work; falls\n"
"                   back to 0.0.0.0 when IPv6 is unavailable. An IPv4 ADDR\n"
"                   gives an IPv4 socket, an IPv6 ADDR an IPv6 socket.\n"
"  --bytes MAX      enable bulk replies: the request line \"GET N\" (N <= MAX,\n"
"                   suffixes k/m/g = KiB/MiB/GiB allowed for MAX) is answered\n"
"                   with \"NAME GET N\\n\", then N payload bytes, then \"\\n\".\n"
"                   Payload byte i is 'a' + (i %% 26). N > MAX is answered\n"
"                   \"NAME ERR GET N exceeds MAX\\n\". Without --bytes, GET lines\n"
"                   are echoed like any other line.\n"
"  --backlog N      listen backlog (default %d)\n"
"  --verbose        log connection errors to stderr\n"
"  --help           this text\n"
"\n"
"TCP protocol: every request line terminated by '\\n' gets one reply line\n"
"\"NAME <line>\\n\" (a trailing '\\r' of the request is dropped). Lines may be\n"
"pipelined; replies come in order. Lines longer than %d bytes close the\n"
"connection. After the client's FIN, pending replies are still sent.\n"
"UDP protocol: each datagram gets \"NAME <payload>\" (payload verbatim), sent\n"
"from the address the datagram was sent to.\n"
"\n"
"Prints \"ready\" on stdout once every socket listens; on exit prints counters\n"
"to stderr. Exit status: 0 on SIGTERM/SIGINT, 1 on setup errors, 2 on bad usage.\n",
		BACKLOG_DEF, MAX_LINE);
}

static void die_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "ep_echo: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "try 'ep_echo --help'\n");
	exit(2);
}

static int parse_port(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 65535)
		die_usage("bad port", s);
	return (int)v;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		die_usage("bad size", s);
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		die_usage("bad size", s);
	uint64_t mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1ULL << 10, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1ULL << 20, end++;
	else if (*end == 'g' || *end == 'G')
		mul = 1ULL << 30, end++;
	if (*end || v > UINT64_MAX / mul)
		die_usage("bad size", s);
	return (uint64_t)v * mul;
}

/* ---- listening sockets ---- */

static void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static void addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	}
}

static int open_listener(const struct sockaddr_storage *addr, socklen_t alen,
			 int port, bool tcp, int backlog, struct lsock *ls)
{
	struct sockaddr_storage sa = *addr;
	int one = 1, zero = 0;
	set_port(&sa, port);
	int fd = socket(sa.ss_family,
			(tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (sa.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)
		goto fail;
	if (!tcp) {
		/* one socket serves every client: a big queue avoids drops under
		 * load (FORCE works as root, else capped by net.core.rmem_max) */
		int rb = UDP_RCVBUF;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof(rb)) < 0)
			(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
		if (sa.ss_family == AF_INET6) {
			if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
				goto fail;
		} else if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0) {
			goto fail;
		}
	} else {
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&sa, alen) < 0)
		goto fail;
	if (tcp && listen(fd, backlog) < 0)
		goto fail;
	/* report the real port (P may be 0) */
	socklen_t sl = sizeof(sa);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	ls->kind = tcp ? K_LISTEN : K_UDP;
	ls->fd = fd;
	ls->family = sa.ss_family;
	char a[80];
	addr_str(&sa, a, sizeof(a));
	snprintf(ls->desc, sizeof(ls->desc), "%s %s", tcp ? "tcp" : "udp", a);
	return 0;
fail:;
	int e = errno;
	close(fd);
	return -e;
}

/* ---- TCP connections ---- */

static void ep_mod(struct conn *c, uint32_t want)
{
	if (want == c->ev)
		return;
	struct epoll_event e = { .events = want, .data.ptr = c };
	if (epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->ev = want;
}

static void conn_close(struct conn *c, const char *why, int err)
{
	if (g_verbose && why)
		fprintf(stderr, "ep_echo: closing connection fd %d: %s%s%s\n", c->fd, why,
			err ? ": " : "", err ? strerror(err) : "");
	close(c->fd); /* also removes it from epoll */
	if (c->prev)
		c->prev->next = c->next;
	else
		g_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->in);
	free(c->out);
	free(c);
	st.closed++;
	st.open--;
}

static int out_append(struct conn *c, const void *p, size_t n)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n > c->out_cap) {
		if (c->out_off) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		if (c->out_len + n > c->out_cap) {
			size_t cap = c->out_cap ? c->out_cap : 1024;
			while (cap < c->out_len + n)
				cap *= 2;
			char *nb = realloc(c->out, cap);
			if (!nb)
				return -1;
			c->out = nb;
			c->out_cap = cap;
		}
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* "GET <digits>" exactly */
static bool parse_get(const char *l, size_t n, uint64_t *val)
{
	if (n < 5 || memcmp(l, "GET ", 4) != 0 || n - 4 > 19)
		return false;
	uint64_t v = 0;
	for (size_t i = 4; i < n; i++) {
		if (l[i] < '0' || l[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(l[i] - '0');
	}
	*val = v;
	return true;
}

static bool has_line(const struct conn *c)
{
	return c->in_len && memchr(c->in, '\n', c->in_len) != NULL;
}

/* Answer complete lines until a bulk reply starts or output is too full. */
static int conn_process(struct conn *c)
{
	size_t off = 0;
	while (!c->bulk && c->out_len - c->out_off < OUT_HIGH && off < c->in_len) {
		char *nl = memchr(c->in + off, '\n', c->in_len - off);
		if (!nl)
			break;
		const char *line = c->in + off;
		size_t len = (size_t)(nl - line);
		off += len + 1;
		if (len && line[len - 1] == '\r')
			len--;
		st.lines++;
		uint64_t n;
		int rc = 0;
		if (g_bytes_max && parse_get(line, len, &n)) {
			if (n > g_bytes_max) {
				char msg[160];
				int m = snprintf(msg, sizeof(msg), " ERR GET %" PRIu64 " exceeds %" PRIu64 "\n",
						 n, g_bytes_max);
				rc |= out_append(c, g_id, g_id_len);
				rc |= out_append(c, msg, (size_t)m);
			} else {
				c->bulk = true;
				c->bulk_left = n;
				c->bulk_sent = 0;
			}
			if (!c->bulk)
				goto next;
		}
		rc |= out_append(c, g_id, g_id_len);
		rc |= out_append(c, " ", 1);
		rc |= out_append(c, line, len);
		rc |= out_append(c, "\n", 1);
next:
		if (rc)
			return -1;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return 0;
}

/* Write what we can. Returns -errno on a dead connection, 0 otherwise. */
static int conn_flush(struct conn *c)
{
	size_t budget = FLUSH_BUDGET;
	while (budget) {
		ssize_t w;
		if (c->out_len > c->out_off) {
			size_t n = c->out_len - c->out_off;
			w = send(c->fd, c->out + c->out_off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return 0;
				return -errno;
			}
			c->out_off += (size_t)w;
			budget -= (size_t)w < budget ? (size_t)w : budget;
			if (c->out_off == c->out_len) {
				c->out_off = c->out_len = 0;
				if (c->out_cap > 64 * 1024) { /* give back big buffers */
					free(c->out);
					c->out = NULL;
					c->out_cap = 0;
				}
			}
			continue;
		}
		if (!c->bulk)
			return 0;
		if (c->bulk_left == 0) {
			c->bulk = false;
			if (out_append(c, "\n", 1))
				return -ENOMEM;
			continue;
		}
		size_t n = c->bulk_left < PATTERN_LEN ? (size_t)c->bulk_left : PATTERN_LEN;
		w = send(c->fd, g_pattern + (c->bulk_sent % 26), n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		c->bulk_left -= (uint64_t)w;
		c->bulk_sent += (uint64_t)w;
		st.bulk_bytes += (uint64_t)w;
		budget -= (size_t)w < budget ? (size_t)w : budget;
	}
	return 0;
}

static void conn_service(struct conn *c)
{
	for (int i = 0; i < SERVICE_ITERS; i++) {
		if (conn_process(c) < 0) {
			conn_close(c, "out of memory", 0);
			return;
		}
		int r = conn_flush(c);
		if (r < 0) {
			conn_close(c, "send", -r);
			return;
		}
		if (c->bulk || c->out_len > c->out_off || !has_line(c))
			break;
	}
	bool line = has_line(c);
	bool pending = c->bulk || c->out_len > c->out_off;
	if (c->rd_eof && !pending && !line) {
		conn_close(c, NULL, 0);
		return;
	}
	if (!line && c->in_len >= MAX_LINE) {
		st.too_long++;
		conn_close(c, "request line too long", 0);
		return;
	}
	uint32_t want = 0;
	if (!c->rd_eof && !c->bulk && c->in_len < MAX_LINE &&
	    c->out_len - c->out_off < OUT_HIGH)
		want |= EPOLLIN;
	if (pending || line)
		want |= EPOLLOUT;
	ep_mod(c, want);
}

static void conn_event(struct conn *c, uint32_t ev)
{
	if (ev & (EPOLLERR | EPOLLHUP)) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		conn_close(c, "connection error", err);
		return;
	}
	if (ev & EPOLLIN) {
		if (c->in_len == c->in_cap) {
			size_t cap = c->in_cap ? c->in_cap * 2 : IN_START;
			if (cap > MAX_LINE)
				cap = MAX_LINE;
			if (cap > c->in_cap) {
				char *nb = realloc(c->in, cap);
				if (!nb) {
					conn_close(c, "out of memory", 0);
					return;
				}
				c->in = nb;
				c->in_cap = cap;
			}
		}
		if (c->in_len < c->in_cap) {
			ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
			if (r > 0) {
				c->in_len += (size_t)r;
			} else if (r == 0) {
				c->rd_eof = true;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				conn_close(c, "recv", errno);
				return;
			}
		}
	}
	conn_service(c);
}

static void do_accept(struct lsock *ls)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			st.accept_err++;
			if ((errno == EMFILE || errno == ENFILE) && g_spare_fd >= 0) {
				/* out of descriptors: accept and drop one connection so
				 * the level-triggered listener does not spin */
				close(g_spare_fd);
				fd = accept(ls->fd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				if (st.accept_err < 10 || g_verbose)
					fprintf(stderr, "ep_echo: out of file descriptors, dropping a connection\n");
				return;
			}
			fprintf(stderr, "ep_echo: accept: %s\n", strerror(errno));
			return;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			return;
		}
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->kind = K_CONN;
		c->fd = fd;
		c->ev = EPOLLIN;
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e) < 0) {
			fprintf(stderr, "ep_echo: epoll_ctl: %s\n", strerror(errno));
			close(fd);
			free(c);
			return;
		}
		c->next = g_conns;
		if (g_conns)
			g_conns->prev = c;
		g_conns = c;
		st.accepted++;
		if (++st.open > st.max_open)
			st.max_open = st.open;
	}
}

/* ---- UDP ---- */

static void do_udp(struct lsock *ls)
{
	for (int i = 0; i < UDP_BATCH; i++) {
		struct sockaddr_storage peer;
		union {
			char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
				 CMSG_SPACE(sizeof(struct in_pktinfo)) + 64];
			struct cmsghdr align;
		} cin, cout;
		struct iovec iov = { g_udp_buf, sizeof(g_udp_buf) };
		struct msghdr m = {
			.msg_name = &peer, .msg_namelen = sizeof(peer),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cin.buf, .msg_controllen = sizeof(cin.buf),
		};
		ssize_t n = recvmsg(ls->fd, &m, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			st.udp_err++;
			continue;
		}
		st.udp_rx++;
		if (m.msg_flags & MSG_TRUNC)
			n = sizeof(g_udp_buf);

		/* reply from the address the request was sent to */
		memset(&cout, 0, sizeof(cout));
		size_t clen = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
			if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO &&
			    ls->family == AF_INET6) {
				struct in6_pktinfo pi;
				memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
				if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr))
					break;
				if (!IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
					pi.ipi6_ifindex = 0;
				struct cmsghdr *o = (struct cmsghdr *)cout.buf;
				o->cmsg_level = IPPROTO_IPV6;
				o->cmsg_type = IPV6_PKTINFO;
				o->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(o), &pi, sizeof(pi));
				clen = CMSG_SPACE(sizeof(pi));
				break;
			}
			if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
			    ls->family == AF_INET) {
				struct in_pktinfo pi, po;
				memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
				if (IN_MULTICAST(ntohl(pi.ipi_addr.s_addr)) ||
				    pi.ipi_addr.s_addr == htonl(INADDR_BROADCAST))
					break;
				memset(&po, 0, sizeof(po));
				po.ipi_spec_dst = pi.ipi_addr;
				struct cmsghdr *o = (struct cmsghdr *)cout.buf;
				o->cmsg_level = IPPROTO_IP;
				o->cmsg_type = IP_PKTINFO;
				o->cmsg_len = CMSG_LEN(sizeof(po));
				memcpy(CMSG_DATA(o), &po, sizeof(po));
				clen = CMSG_SPACE(sizeof(po));
				break;
			}
		}
		struct iovec oiov[3] = {
			{ (void *)g_id, g_id_len }, { (void *)" ", 1 }, { g_udp_buf, (size_t)n },
		};
		struct msghdr om = {
			.msg_name = &peer, .msg_namelen = m.msg_namelen,
			.msg_iov = oiov, .msg_iovlen = 3,
			.msg_control = clen ? cout.buf : NULL, .msg_controllen = clen,
		};
		if (sendmsg(ls->fd, &om, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			st.udp_err++;
			if (g_verbose)
				fprintf(stderr, "ep_echo: udp sendmsg: %s\n", strerror(errno));
		} else {
			st.udp_tx++;
		}
	}
}

/* ---- main ---- */

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	int tcp_ports[MAX_PORTS], udp_ports[MAX_PORTS], ntcp = 0, nudp = 0;
	const char *binds[MAX_BINDS];
	int nbinds = 0, backlog = BACKLOG_DEF;
	enum { O_ID = 256, O_PORT, O_TCP, O_UDP, O_BIND, O_BYTES, O_BACKLOG, O_VERBOSE, O_HELP };
	static const struct option opts[] = {
		{ "id", required_argument, NULL, O_ID },
		{ "port", required_argument, NULL, O_PORT },
		{ "tcp-port", required_argument, NULL, O_TCP },
		{ "udp-port", required_argument, NULL, O_UDP },
		{ "bind", required_argument, NULL, O_BIND },
		{ "bytes", required_argument, NULL, O_BYTES },
		{ "backlog", required_argument, NULL, O_BACKLOG },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_ID:
			g_id = optarg;
			break;
		case O_PORT:
		case O_TCP:
		case O_UDP: {
			int p = parse_port(optarg);
			if ((o != O_UDP && ntcp == MAX_PORTS) || (o != O_TCP && nudp == MAX_PORTS))
				die_usage("too many ports", NULL);
			if (o != O_UDP)
				tcp_ports[ntcp++] = p;
			if (o != O_TCP)
				udp_ports[nudp++] = p;
			break;
		}
		case O_BIND:
			if (nbinds == MAX_BINDS)
				die_usage("too many --bind", NULL);
			binds[nbinds++] = optarg;
			break;
		case O_BYTES:
			g_bytes_max = parse_size(optarg);
			if (!g_bytes_max)
				die_usage("--bytes must be > 0", optarg);
			break;
		case O_BACKLOG: {
			char *end;
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 1 || v > INT_MAX)
				die_usage("bad backlog", optarg);
			backlog = (int)v;
			break;
		}
		case O_VERBOSE:
			g_verbose = true;
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			die_usage("bad option", NULL);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument", argv[optind]);
	if (!g_id)
		die_usage("--id is required", NULL);
	g_id_len = strlen(g_id);
	if (g_id_len == 0 || g_id_len > 63)
		die_usage("--id must be 1-63 characters", g_id);
	for (size_t i = 0; i < g_id_len; i++)
		if (!isgraph((unsigned char)g_id[i]))
			die_usage("--id must be printable without spaces", g_id);
	if (ntcp + nudp == 0)
		die_usage("give at least one --port, --tcp-port or --udp-port", NULL);

	for (size_t i = 0; i < sizeof(g_pattern); i++)
		g_pattern[i] = (char)('a' + i % 26);

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	int sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || g_ep < 0) {
		perror("ep_echo: signalfd/epoll");
		return 1;
	}
	static enum kind sig_kind = K_SIGNAL;
	struct epoll_event se = { .events = EPOLLIN, .data.ptr = &sig_kind };
	epoll_ctl(g_ep, EPOLL_CTL_ADD, sfd, &se);
	g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* resolve bind addresses; default is a dual-stack "::" */
	struct sockaddr_storage baddr[MAX_BINDS];
	socklen_t blen[MAX_BINDS];
	bool dflt = nbinds == 0;
	if (dflt)
		binds[nbinds++] = "::";
	for (int i = 0; i < nbinds; i++)
		if (sockaddr_parse_ip(binds[i], &baddr[i], &blen[i]) < 0)
			die_usage("bad --bind address", binds[i]);

	int nls = nbinds * (ntcp + nudp);
	struct lsock *ls = calloc((size_t)nls, sizeof(*ls));
	if (!ls) {
		perror("ep_echo: calloc");
		return 1;
	}
	int k = 0, rc = 0;
	for (int b = 0; b < nbinds && !rc; b++) {
		for (int i = 0; i < ntcp + nudp && !rc; i++) {
			bool tcp = i < ntcp;
			int port = tcp ? tcp_ports[i] : udp_ports[i - ntcp];
			int r = open_listener(&baddr[b], blen[b], port, tcp, backlog, &ls[k]);
			if (r == -EAFNOSUPPORT && dflt) {
				/* no IPv6 in this namespace: fall back to IPv4 */
				struct sockaddr_storage v4;
				socklen_t l4;
				sockaddr_parse_ip("0.0.0.0", &v4, &l4);
				baddr[b] = v4;
				blen[b] = l4;
				r = open_listener(&baddr[b], blen[b], port, tcp, backlog, &ls[k]);
			}
			if (r < 0) {
				fprintf(stderr, "ep_echo: cannot listen on %s %s port %d: %s\n",
					tcp ? "tcp" : "udp", binds[b], port, strerror(-r));
				rc = 1;
				break;
			}
			struct epoll_event e = { .events = EPOLLIN, .data.ptr = &ls[k] };
			if (epoll_ctl(g_ep, EPOLL_CTL_ADD, ls[k].fd, &e) < 0) {
				perror("ep_echo: epoll_ctl");
				close(ls[k].fd);
				rc = 1;
				break;
			}
			fprintf(stderr, "ep_echo %s: listening %s\n", g_id, ls[k].desc);
			k++;
		}
	}
	if (rc) {
		for (int i = 0; i < k; i++)
			close(ls[i].fd);
		free(ls);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	struct epoll_event evs[256];
	bool stop = false;
	while (!stop) {
		int n = epoll_wait(g_ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("ep_echo: epoll_wait");
			rc = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			enum kind kd = *(enum kind *)evs[i].data.ptr;
			if (kd == K_SIGNAL) {
				struct signalfd_siginfo si;
				if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
					fprintf(stderr, "ep_echo %s: signal %u, exiting\n", g_id, si.ssi_signo);
				stop = true;
			} else if (kd == K_LISTEN) {
				do_accept(evs[i].data.ptr);
			} else if (kd == K_UDP) {
				do_udp(evs[i].data.ptr);
			}
		}
		/* connection events last: a conn closed above is never touched */
		for (int i = 0; i < n && !stop; i++)
			if (*(enum kind *)evs[i].data.ptr == K_CONN)
				conn_event(evs[i].data.ptr, evs[i].events);
	}
	fprintf(stderr,
		"ep_echo %s: tcp accepted %" PRIu64 " max_open %" PRIu64 " lines %" PRIu64
		" bulk_bytes %" PRIu64 " too_long %" PRIu64 " accept_errors %" PRIu64
		"; udp rx %" PRIu64 " tx %" PRIu64 " errors %" PRIu64 "\n",
		g_id, st.accepted, st.max_open, st.lines, st.bulk_bytes, st.too_long,
		st.accept_err, st.udp_rx, st.udp_tx, st.udp_err);
	while (g_conns)
		conn_close(g_conns, NULL, 0);
	for (int i = 0; i < k; i++)
		close(ls[i].fd);
	free(ls);
	close(sfd);
	close(g_ep);
	if (g_spare_fd >= 0)
		close(g_spare_fd);
	return rc;
}
