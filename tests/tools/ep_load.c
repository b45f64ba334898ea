// SPDX-License-Identifier: GPL-2.0
/*
 * ep_load — client / load generator for edgeplane end-to-end tests and
 * benchmarks. Talks the ep_echo protocol (request line -> "ID <line>").
 *
 * Modes tcp-conns, udp-rr and hold run one epoll loop (non-blocking sockets,
 * every pending operation has a deadline kept in a sorted timer list).
 * Modes rr and crr run one thread per connection with blocking sockets and
 * SO_RCVTIMEO/SO_SNDTIMEO, which measures latency with the least overhead.
 *
 * The result is ONE JSON object on stdout; progress and errors go to stderr.
 * Standalone on purpose: no project library, only libc + pthread + libm.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sockaddr.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define ID_MAX        63
#define REQ_MAX       96
#define IN_MAX        256
#define NS_PER_SEC    1000000000ULL
#define NS_PER_MS     1000000ULL
#define FAIL_LOG_MAX  5
#define WORKER_STACK  (256 * 1024)
#define BACKOFF_NS    (10 * NS_PER_MS)
#define PATTERN_PERIOD 26
#define LAUNCH_BATCH  256

enum { E_CONNECT, E_TIMEOUT, E_RESET, E_SHORT, E_MISMATCH, E_N };
static const char *const err_names[E_N] = { "connect", "timeout", "reset", "short", "mismatch" };

enum mode { M_TCP_CONNS, M_UDP_RR, M_HOLD, M_RR, M_CRR };

static struct {
	enum mode mode;
	const char *mode_str;
	const char *target_str;
	struct sockaddr_storage target;
	socklen_t tlen;
	int family;
	struct sockaddr_storage bind;
	socklen_t blen;
	bool has_bind;
	uint64_t count;
	bool count_set;
	uint64_t concurrency;
	bool conc_set;
	uint64_t conns;
	bool conns_set;
	double duration;
	bool duration_set;
	uint64_t interval_ms;
	uint64_t timeout_ms;
	uint64_t retries;
	double warmup;
	double rate;
	const char *ready_file;
	uint64_t get_bytes;
	bool get_set;
	bool verbose;
} o = {
	.interval_ms = 100, .timeout_ms = 1000, .retries = 2,
};

static uint64_t g_timeout_ns;
static uint64_t g_run_start;
static int g_sfd = -1;        /* signalfd: SIGINT, SIGTERM, SIGUSR1 */
static bool g_interrupted;
static int g_fatal;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / NS_PER_SEC), .tv_nsec = (long)(t % NS_PER_SEC) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* ------------------------------------------------------------------------ */
/* Latency histogram: log-linear, 128 sub-buckets per power of two, exact    */
/* below 256 ns. Reported values are bucket midpoints: relative error <0.4%. */

#define H_SUB_BITS 7
#define H_SUB      (1u << H_SUB_BITS)
#define H_BUCKETS  (2 * H_SUB + (64 - H_SUB_BITS - 1) * H_SUB)

struct hist {
	uint64_t n, sum, min, max;
	uint64_t b[H_BUCKETS];
};

static unsigned h_index(uint64_t v)
{
	if (v < 2 * H_SUB)
		return (unsigned)v;
	unsigned k = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = k - H_SUB_BITS;
	unsigned sub = (unsigned)(v >> shift) & (H_SUB - 1);
	return 2 * H_SUB + (k - H_SUB_BITS - 1) * H_SUB + sub;
}

static uint64_t h_mid(unsigned idx)
{
	if (idx < 2 * H_SUB)
		return idx;
	unsigned j = idx - 2 * H_SUB;
	unsigned k = j / H_SUB + H_SUB_BITS + 1;
	unsigned shift = k - H_SUB_BITS;
	uint64_t lo = (uint64_t)(H_SUB + j % H_SUB) << shift;
	return lo + ((1ULL << shift) >> 1);
}

static struct hist *h_new(void)
{
	struct hist *h = calloc(1, sizeof(*h));
	if (!h) {
		perror("ep_load: calloc");
		exit(1);
	}
	h->min = UINT64_MAX;
	return h;
}

static void h_add(struct hist *h, uint64_t v)
{
	h->b[h_index(v)]++;
	h->n++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

static void h_merge(struct hist *d, const struct hist *s)
{
	for (unsigned i = 0; i < H_BUCKETS; i++)
		d->b[i] += s->b[i];
	d->n += s->n;
	d->sum += s->sum;
	if (s->min < d->min)
		d->min = s->min;
	if (s->max > d->max)
		d->max = s->max;
}

/* value at quantile q: the ceil(q*n)-th smallest sample */
static uint64_t h_quantile(const struct hist *h, double q)
{
	uint64_t rank = (uint64_t)ceil(q * (double)h->n);
	if (rank < 1)
		rank = 1;
	if (rank > h->n)
		rank = h->n;
	uint64_t cum = 0;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		cum += h->b[i];
		if (cum >= rank) {
			uint64_t v = h_mid(i);
			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

/* ------------------------------------------------------------------------ */
/* Backend id counters                                                       */

struct bent {
	char name[ID_MAX + 1];
	uint64_t n;
};
struct btab {
	struct bent *v;
	size_t n, cap;
};

static void bt_add(struct btab *t, const char *name, uint64_t n)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].name, name) == 0) {
			t->v[i].n += n;
			return;
		}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct bent *nv = realloc(t->v, cap * sizeof(*nv));
		if (!nv) {
			perror("ep_load: realloc");
			exit(1);
		}
		t->v = nv;
		t->cap = cap;
	}
	snprintf(t->v[t->n].name, sizeof(t->v[t->n].name), "%s", name);
	t->v[t->n].n = n;
	t->n++;
}

static void bt_add_one(struct btab *t, const char *name)
{
	bt_add(t, name, 1);
}

/* ------------------------------------------------------------------------ */
/* Results                                                                   */

struct result {
	uint64_t ok, failed, err[E_N], bytes;
	uint64_t ff_t; /* when the first failure happened */
	struct hist *h;
	struct btab bt;
	char first_failure[256];
	bool has_ff;
};

static atomic_uint_fast64_t g_logged;

static void note_failure(struct result *r, int cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note_failure(struct result *r, int cls, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->err[cls]++;
	if (!r->has_ff) {
		snprintf(r->first_failure, sizeof(r->first_failure), "%s", msg);
		r->has_ff = true;
		r->ff_t = now_ns();
	}
	uint64_t n = atomic_fetch_add(&g_logged, 1);
	if (o.verbose || n < FAIL_LOG_MAX)
		fprintf(stderr, "ep_load: %s failure: %s\n", err_names[cls], msg);
	if (!o.verbose && n + 1 == FAIL_LOG_MAX)
		fprintf(stderr, "ep_load: (further failures not logged; --verbose shows all)\n");
}

/* once: explain EADDRNOTAVAIL on connect */
static void hint_ports(int err)
{
	static atomic_bool said;
	if (err == EADDRNOTAVAIL && !atomic_exchange(&said, true))
		fprintf(stderr, "ep_load: hint: EADDRNOTAVAIL on connect means the ephemeral ports "
			"are used up (TIME_WAIT); widen net.ipv4.ip_local_port_range or set "
			"net.ipv4.tcp_tw_reuse=1 in the client namespace\n");
}

static void merge_result(struct result *d, struct result *s)
{
	d->ok += s->ok;
	d->failed += s->failed;
	d->bytes += s->bytes;
	for (int i = 0; i < E_N; i++)
		d->err[i] += s->err[i];
	h_merge(d->h, s->h);
	for (size_t i = 0; i < s->bt.n; i++)
		bt_add(&d->bt, s->bt.v[i].name, s->bt.v[i].n);
	if (s->has_ff && (!d->has_ff || s->ff_t < d->ff_t)) {
		memcpy(d->first_failure, s->first_failure, sizeof(d->first_failure));
		d->has_ff = true;
		d->ff_t = s->ff_t;
	}
}

/* ------------------------------------------------------------------------ */
/* JSON output                                                               */

static void j_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\u%04x", *p); /* bytes read as Latin-1: always valid JSON */
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void j_num(FILE *f, double v, int prec)
{
	if (!isfinite(v))
		v = 0;
	fprintf(f, "%.*f", prec, v);
}

static void j_key(FILE *f, bool *first, const char *k)
{
	fputs(*first ? "" : ",", f);
	*first = false;
	j_str(f, k);
	fputc(':', f);
}

static void j_u64(FILE *f, bool *first, const char *k, uint64_t v)
{
	j_key(f, first, k);
	fprintf(f, "%" PRIu64, v);
}

static void j_errors(FILE *f, bool *first, const struct result *r)
{
	j_key(f, first, "errors");
	fputc('{', f);
	for (int i = 0; i < E_N; i++)
		fprintf(f, "%s\"%s\":%" PRIu64, i ? "," : "", err_names[i], r->err[i]);
	fputc('}', f);
}

static void j_backends(FILE *f, bool *first, const struct btab *t)
{
	j_key(f, first, "backends");
	fputc('{', f);
	for (size_t i = 0; i < t->n; i++) {
		if (i)
			fputc(',', f);
		j_str(f, t->v[i].name);
		fprintf(f, ":%" PRIu64, t->v[i].n);
	}
	fputc('}', f);
}

static void j_latency(FILE *f, bool *first, const struct hist *h)
{
	static const struct {
		const char *k;
		double q;
	} qs[] = { { "p50", 0.50 }, { "p90", 0.90 }, { "p99", 0.99 }, { "p999", 0.999 } };
	j_key(f, first, "latency_us");
	fputc('{', f);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		fprintf(f, "\"%s\":", qs[i].k);
		if (h->n)
			j_num(f, (double)h_quantile(h, qs[i].q) / 1e3, 3);
		else
			fputs("null", f);
		fputc(',', f);
	}
	fputs("\"max\":", f);
	if (h->n)
		j_num(f, (double)h->max / 1e3, 3);
	else
		fputs("null", f);
	fputs(",\"mean\":", f);
	if (h->n)
		j_num(f, (double)h->sum / (double)h->n / 1e3, 3);
	else
		fputs("null", f);
	fprintf(f, ",\"samples\":%" PRIu64 "}", h->n);
}

static void j_first_failure(FILE *f, bool *first, const struct result *r)
{
	j_key(f, first, "first_failure");
	if (r->has_ff)
		j_str(f, r->first_failure);
	else
		fputs("null", f);
}

static void j_head(FILE *f, bool *first)
{
	fputc('{', f);
	j_key(f, first, "mode");
	j_str(f, o.mode_str);
	j_key(f, first, "target");
	j_str(f, o.target_str);
}

static void j_end(FILE *f, bool *first)
{
	j_key(f, first, "interrupted");
	fputs(g_interrupted ? "true" : "false", f);
	fputs("}\n", f);
	fflush(f);
}

/* ------------------------------------------------------------------------ */
/* Sockets                                                                   */

/* ADDR:PORT or [V6]:PORT */
static int parse_target(const char *s)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -1;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -1; /* bare IPv6 needs brackets */
	}
	size_t hl = (size_t)(colon - s);
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = 0;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
		return -1;
	if (sockaddr_parse_ip(host, &o.target, &o.tlen) < 0)
		return -1;
	if (o.target.ss_family == AF_INET)
		((struct sockaddr_in *)&o.target)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&o.target)->sin6_port = htons((uint16_t)port);
	o.family = o.target.ss_family;
	return 0;
}

static void set_timeo(int fd, int opt, uint64_t ns)
{
	struct timeval tv = { .tv_sec = (time_t)(ns / NS_PER_SEC),
			      .tv_usec = (suseconds_t)((ns % NS_PER_SEC) / 1000) };
	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		tv.tv_usec = 1; /* 0 would mean "no timeout" */
	(void)setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* TCP socket, optionally bound to --bind (port chosen at connect time). */
static int tcp_socket(bool nonblock, int *err)
{
	int one = 1;
	int fd = socket(o.family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o.has_bind) {
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&o.bind, o.blen) < 0) {
			*err = errno;
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* UDP: explicit, sequential source ports so every request is a new flow */
static struct {
	unsigned lo, hi, next;
} g_ports;

static void ports_init(void)
{
	unsigned lo = 32768, hi = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		unsigned a, b;
		if (fscanf(f, "%u %u", &a, &b) == 2 && a >= 1 && b <= 65535 && a < b)
			lo = a, hi = b;
		fclose(f);
	}
	g_ports.lo = lo;
	g_ports.hi = hi;
	g_ports.next = lo + (unsigned)((now_ns() / 1000) % (hi - lo + 1));
}

static int udp_socket(int *err)
{
	int fd = socket(o.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	struct sockaddr_storage sa;
	socklen_t sl;
	if (o.has_bind) {
		sa = o.bind;
		sl = o.blen;
	} else {
		memset(&sa, 0, sizeof(sa));
		sa.ss_family = (sa_family_t)o.family;
		sl = o.family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	}
	bool bound = false;
	for (int i = 0; i < 64 && !bound; i++) {
		unsigned p = g_ports.next++;
		if (g_ports.next > g_ports.hi)
			g_ports.next = g_ports.lo;
		if (o.family == AF_INET)
			((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)p);
		else
			((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)p);
		if (bind(fd, (struct sockaddr *)&sa, sl) == 0)
			bound = true;
		else if (errno != EADDRINUSE)
			break;
	}
	if (!bound) { /* let the kernel pick */
		if (o.family == AF_INET)
			((struct sockaddr_in *)&sa)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&sa)->sin6_port = 0;
		if (bind(fd, (struct sockaddr *)&sa, sl) < 0) {
			*err = errno;
			close(fd);
			return -1;
		}
	}
	if (connect(fd, (struct sockaddr *)&o.target, o.tlen) < 0) {
		*err = errno;
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Check a reply "ID <request>": returns -1 when fine (backend id copied to
 * id), else an error class.
 */
static int check_reply(const char *line, size_t len, const char *req, size_t req_len,
		       char id[ID_MAX + 1])
{
	const char *sp = memchr(line, ' ', len);
	if (!sp || sp == line || (size_t)(sp - line) > ID_MAX)
		return E_MISMATCH;
	size_t idl = (size_t)(sp - line);
	if (len - idl - 1 != req_len || memcmp(sp + 1, req, req_len) != 0)
		return E_MISMATCH;
	memcpy(id, line, idl);
	id[idl] = 0;
	return -1;
}

static int errno_class(int e)
{
	if (e == ETIMEDOUT || e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS)
		return E_TIMEOUT;
	return E_RESET;
}

/* ------------------------------------------------------------------------ */
/* Epoll engine for tcp-conns, udp-rr and hold                               */

enum cstate { S_FREE, S_CONNECTING, S_SENDING, S_WAITING, S_IDLE, S_DEAD };
enum phase { P_REQ, P_HELLO, P_PING };

struct ec {
	int fd;
	enum cstate state;
	enum phase phase;
	uint64_t idx;
	uint64_t t0;        /* transaction start */
	uint64_t deadline;
	struct ec *tprev, *tnext;
	bool on_timer;
	uint32_t ev;        /* registered epoll events */
	bool changed;       /* hold: backend changed at least once */
	bool bulk;          /* --get: reading payload */
	unsigned attempts;  /* udp */
	uint64_t bulk_got;
	size_t req_len, out_off, in_len;
	char req[REQ_MAX];
	char in[IN_MAX];
	char backend[ID_MAX + 1]; /* backend of the connection (first reply) */
	char rid[ID_MAX + 1];     /* backend id of the last reply */
};

static int g_ep = -1;
static struct ec *t_head, *t_tail;
static struct result R;

static void t_del(struct ec *c)
{
	if (!c->on_timer)
		return;
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		t_head = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	else
		t_tail = c->tprev;
	c->tprev = c->tnext = NULL;
	c->on_timer = false;
}

/* deadlines are nearly always appended in order: walk back from the tail */
static void t_set(struct ec *c, uint64_t dl)
{
	t_del(c);
	c->deadline = dl;
	struct ec *p = t_tail;
	while (p && p->deadline > dl)
		p = p->tprev;
	c->tprev = p;
	c->tnext = p ? p->tnext : t_head;
	if (c->tnext)
		c->tnext->tprev = c;
	else
		t_tail = c;
	if (p)
		p->tnext = c;
	else
		t_head = c;
	c->on_timer = true;
}

static int ep_ctl(int op, struct ec *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };
	int r = epoll_ctl(g_ep, op, c->fd, &e);
	if (r == 0)
		c->ev = ev;
	return r;
}

static void ec_want(struct ec *c, uint32_t ev)
{
	if (c->ev != ev)
		ep_ctl(EPOLL_CTL_MOD, c, ev);
}

static void ec_close(struct ec *c, enum cstate st)
{
	t_del(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = st;
}

/* mode specific completion: cls < 0 means success */
static void ec_done(struct ec *c, int cls, const char *what, int err);

static int epoll_setup(void)
{
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (g_ep < 0) {
		perror("ep_load: epoll_create1");
		return -1;
	}
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(g_ep, EPOLL_CTL_ADD, g_sfd, &e) < 0) {
		perror("ep_load: epoll_ctl");
		return -1;
	}
	return 0;
}

static bool read_signal(void)
{
	struct signalfd_siginfo si;
	if (read(g_sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return false;
	fprintf(stderr, "ep_load: signal %u, stopping\n", si.ssi_signo);
	g_interrupted = true;
	return true;
}

/* ---- TCP request/reply on an ec ---- */

static void tcp_send(struct ec *c)
{
	while (c->out_off < c->req_len) {
		ssize_t w = send(c->fd, c->req + c->out_off, c->req_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ec_want(c, EPOLLOUT);
				return;
			}
			ec_done(c, errno_class(errno), "send", errno);
			return;
		}
		c->out_off += (size_t)w;
	}
	c->state = S_WAITING;
	c->in_len = 0;
	c->bulk = false;
	c->bulk_got = 0;
	ec_want(c, EPOLLIN | EPOLLRDHUP);
	t_set(c, now_ns() + g_timeout_ns);
}

static void tcp_start_req(struct ec *c)
{
	c->out_off = 0;
	c->state = S_SENDING;
	t_set(c, now_ns() + g_timeout_ns);
	tcp_send(c);
}

/* open a non-blocking connection; the request in c->req goes out once up */
static void tcp_open(struct ec *c)
{
	int err = 0;
	c->t0 = now_ns();
	c->fd = tcp_socket(true, &err);
	if (c->fd < 0) {
		c->state = S_CONNECTING;
		ec_done(c, E_CONNECT, "socket/bind", err);
		return;
	}
	int r = connect(c->fd, (struct sockaddr *)&o.target, o.tlen);
	c->state = S_CONNECTING;
	if (r < 0 && errno != EINPROGRESS) {
		ec_done(c, E_CONNECT, "connect", errno);
		return;
	}
	if (ep_ctl(EPOLL_CTL_ADD, c, EPOLLOUT) < 0) {
		ec_done(c, E_CONNECT, "epoll_ctl", errno);
		return;
	}
	t_set(c, c->t0 + g_timeout_ns);
	if (r == 0)
		tcp_start_req(c);
}

/* payload byte i of a GET reply is 'a' + i % 26 */
static int bulk_consume(struct ec *c, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (c->bulk_got < o.get_bytes) {
			if (p[i] != (char)('a' + c->bulk_got % PATTERN_PERIOD))
				return E_MISMATCH;
			c->bulk_got++;
		} else if (p[i] == '\n' && i == n - 1) {
			return -1; /* complete */
		} else {
			return E_MISMATCH;
		}
	}
	return -2; /* need more */
}

static void tcp_readable(struct ec *c)
{
	static char scratch[65536];
	for (int loops = 0; loops < 64; loops++) {
		ssize_t r;
		if (c->bulk) {
			r = recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		} else {
			if (c->in_len >= sizeof(c->in) - 1) {
				ec_done(c, E_MISMATCH, "reply line too long", 0);
				return;
			}
			r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, MSG_DONTWAIT);
		}
		if (r == 0) {
			ec_done(c, E_SHORT, "connection closed by peer", 0);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			ec_done(c, errno_class(errno), "recv", errno);
			return;
		}
		if (c->state != S_WAITING) {
			ec_done(c, E_MISMATCH, "unexpected data on idle connection", 0);
			return;
		}
		t_set(c, now_ns() + g_timeout_ns); /* idle timeout: progress resets it */
		if (c->bulk) {
			int b = bulk_consume(c, scratch, (size_t)r);
			if (b == -1) {
				ec_done(c, -1, NULL, 0);
				return;
			}
			if (b >= 0) {
				ec_done(c, b, "GET payload corrupt", 0);
				return;
			}
			continue;
		}
		c->in_len += (size_t)r;
		c->in[c->in_len] = 0;
		char *nl = memchr(c->in, '\n', c->in_len);
		if (!nl)
			continue;
		size_t ll = (size_t)(nl - c->in);
		size_t extra = c->in_len - ll - 1;
		char id[ID_MAX + 1];
		int cls = check_reply(c->in, ll, c->req, c->req_len - 1, id);
		if (cls >= 0) {
			c->in[ll] = 0;
			ec_done(c, cls, "unexpected reply", 0);
			return;
		}
		memcpy(c->rid, id, sizeof(c->rid));
		if (c->phase != P_PING)
			memcpy(c->backend, id, sizeof(c->backend));
		if (o.get_set && c->phase == P_REQ) {
			c->bulk = true;
			int b = extra ? bulk_consume(c, nl + 1, extra) : -2;
			if (b == -1) {
				ec_done(c, -1, NULL, 0);
				return;
			}
			if (b >= 0) {
				ec_done(c, b, "GET payload corrupt", 0);
				return;
			}
			continue;
		}
		if (extra) {
			ec_done(c, E_MISMATCH, "extra data after reply", 0);
			return;
		}
		ec_done(c, -1, NULL, 0);
		return;
	}
}

static void tcp_event(struct ec *c, uint32_t ev)
{
	switch (c->state) {
	case S_CONNECTING: {
		int err = 0;
		socklen_t l = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err) {
			ec_done(c, err == ETIMEDOUT ? E_TIMEOUT : E_CONNECT, "connect", err);
			return;
		}
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			tcp_start_req(c);
		return;
	}
	case S_SENDING:
		if (ev & (EPOLLERR | EPOLLHUP)) {
			int err = 0;
			socklen_t l = sizeof(err);
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
			ec_done(c, err ? errno_class(err) : E_RESET, "send", err);
			return;
		}
		tcp_send(c);
		return;
	case S_WAITING:
	case S_IDLE:
		tcp_readable(c);
		return;
	default:
		return;
	}
}

static void ec_timeout(struct ec *c);

/* epoll_wait timeout in ms until `until` (ns, 0 = none), capped at 1 s */
static int wait_ms(uint64_t now, uint64_t until)
{
	uint64_t dl = until;
	if (t_head && (!dl || t_head->deadline < dl))
		dl = t_head->deadline;
	if (!dl)
		return 1000;
	if (dl <= now)
		return 0;
	uint64_t ms = (dl - now + NS_PER_MS - 1) / NS_PER_MS;
	return ms > 1000 ? 1000 : (int)ms;
}

/*
 * One epoll round: all ready events (drained, so a socket that is ready is
 * never timed out just because it had not been collected yet), then expired
 * timers. Returns false on a fatal error.
 */
#define EP_BATCH 512
static bool ep_round(uint64_t until, void (*handler)(struct ec *, uint32_t))
{
	struct epoll_event evs[EP_BATCH];
	int n = epoll_wait(g_ep, evs, EP_BATCH, wait_ms(now_ns(), until));
	for (int batch = 0;; batch++) {
		if (n < 0) {
			if (errno == EINTR)
				break;
			perror("ep_load: epoll_wait");
			g_fatal = 1;
			return false;
		}
		for (int i = 0; i < n; i++) {
			struct ec *c = evs[i].data.ptr;
			if (!c) {
				read_signal();
				continue;
			}
			if (c->fd >= 0)
				handler(c, evs[i].events);
		}
		if (n < EP_BATCH || batch >= 1000)
			break;
		n = epoll_wait(g_ep, evs, EP_BATCH, 0);
	}
	uint64_t now = now_ns();
	while (t_head && t_head->deadline <= now)
		ec_timeout(t_head);
	return true;
}

static uint64_t g_active;

/* ---- tcp-conns ---- */

static struct ec *g_free;

static void tc_done(struct ec *c, int cls, const char *what, int err)
{
	uint64_t now = now_ns();
	R.bytes += c->bulk_got;
	if (cls < 0) {
		R.ok++;
		h_add(R.h, now - c->t0);
		bt_add_one(&R.bt, c->backend);
	} else {
		R.failed++;
		char detail[160];
		hint_ports(err);
		if (err)
			snprintf(detail, sizeof(detail), "%s: %s", what, strerror(err));
		else if (cls == E_MISMATCH && c->in_len && !c->bulk)
			snprintf(detail, sizeof(detail), "%s \"%.*s\"", what,
				 (int)strnlen(c->in, 80), c->in);
		else
			snprintf(detail, sizeof(detail), "%s", what);
		note_failure(&R, cls, "connection %" PRIu64 " after %.3f s: %s", c->idx,
			     (double)(now - c->t0) / 1e9, detail);
	}
	ec_close(c, S_FREE);
	c->tnext = g_free; /* free list reuses tnext */
	g_free = c;
	g_active--;
}

/* ------------------------------------------------------------------------ */

/* Fills in a TCP connection's request and opens it. */
static void tcp_launch(struct ec *c)
{
	c->phase = P_REQ;
	c->bulk = false;
	c->bulk_got = 0;
	c->in_len = 0;
	if (o.get_set)
		c->req_len = (size_t)snprintf(c->req, sizeof(c->req), "GET %" PRIu64 "\n", o.get_bytes);
	else
		c->req_len = (size_t)snprintf(c->req, sizeof(c->req), "hello %" PRIu64 "\n", c->idx);
	tcp_open(c);
}

/* ---- udp-rr ---- */

static void ur_done(struct ec *c, int cls, const char *what, int err)
{
	uint64_t now = now_ns();
	if (cls < 0) {
		R.ok++;
		h_add(R.h, now - c->t0);
		bt_add_one(&R.bt, c->backend);
	} else {
		R.failed++;
		char detail[160];
		if (err)
			snprintf(detail, sizeof(detail), "%s: %s", what, strerror(err));
		else if (cls == E_MISMATCH)
			snprintf(detail, sizeof(detail), "%s \"%.*s\"", what,
				 (int)strnlen(c->in, 80), c->in);
		else
			snprintf(detail, sizeof(detail), "%s", what);
		note_failure(&R, cls, "request %" PRIu64 " after %.3f s, %u attempt(s): %s", c->idx,
			     (double)(now - c->t0) / 1e9, c->attempts, detail);
	}
	ec_close(c, S_FREE);
	c->tnext = g_free;
	g_free = c;
	g_active--;
}

static void udp_send(struct ec *c)
{
	c->attempts++;
	ssize_t w = send(c->fd, c->req, c->req_len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
		ec_done(c, E_CONNECT, "send", errno);
		return;
	}
	/* a send that did not go out is retried like a lost datagram */
	t_set(c, now_ns() + g_timeout_ns);
}

static void udp_event(struct ec *c, uint32_t ev)
{
	(void)ev;
	for (int i = 0; i < 8; i++) {
		ssize_t r = recv(c->fd, c->in, sizeof(c->in) - 1, MSG_DONTWAIT | MSG_TRUNC);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* ICMP error (port/host unreachable) reported on the socket */
			ec_done(c, E_CONNECT, "recv", errno);
			return;
		}
		size_t n = (size_t)r < sizeof(c->in) - 1 ? (size_t)r : sizeof(c->in) - 1;
		c->in[n] = 0;
		c->in_len = n;
		if ((size_t)r > n) {
			ec_done(c, E_MISMATCH, "reply too long", 0);
			return;
		}
		int cls = check_reply(c->in, n, c->req, c->req_len, c->backend);
		ec_done(c, cls, cls < 0 ? NULL : "unexpected reply", 0);
		return;
	}
}

static void udp_start(struct ec *c)
{
	int err = 0;
	c->t0 = now_ns();
	c->attempts = 0;
	c->state = S_WAITING;
	c->fd = udp_socket(&err);
	if (c->fd < 0) {
		ec_done(c, E_CONNECT, "socket/bind/connect", err);
		return;
	}
	if (ep_ctl(EPOLL_CTL_ADD, c, EPOLLIN) < 0) {
		ec_done(c, E_CONNECT, "epoll_ctl", errno);
		return;
	}
	udp_send(c);
}

static void udp_launch(struct ec *c)
{
	c->req_len = (size_t)snprintf(c->req, sizeof(c->req), "hello %" PRIu64, c->idx);
	udp_start(c);
}

/* tcp-conns and udp-rr: o.count exchanges, o.concurrency at a time, paced to
 * o.rate if set; a JSON report on stdout. */
struct counted_mode {
	const char *name, *unit; /* "tcp-conns", "connections" */
	bool udp;
	void (*launch)(struct ec *c);
	void (*on_event)(struct ec *c, uint32_t ev);
};

static int run_counted(const struct counted_mode *m)
{
	uint64_t C = o.concurrency ? o.concurrency : 1;
	if (C > o.count && o.count)
		C = o.count;
	struct ec *slots = calloc(C ? C : 1, sizeof(*slots));
	if (!slots) {
		perror("ep_load: calloc");
		return 1;
	}
	for (uint64_t i = 0; i < C; i++) {
		slots[i].fd = -1;
		slots[i].tnext = g_free;
		g_free = &slots[i];
	}
	if (epoll_setup() < 0) {
		free(slots);
		return 1;
	}
	if (m->udp)
		ports_init();
	uint64_t t_start = now_ns(), launched = 0;
	fprintf(stderr, "ep_load: %s %" PRIu64 " %s to %s, concurrency %" PRIu64 "\n", m->name,
		o.count, m->unit, o.target_str, C);
	for (;;) {
		uint64_t now = now_ns(), next_launch = 0;
		int budget = LAUNCH_BATCH; /* then look at events again */
		while (!g_interrupted && launched < o.count && g_free && budget--) {
			if (o.rate > 0) {
				uint64_t due = t_start + (uint64_t)((double)launched * 1e9 / o.rate);
				if (due > now) {
					next_launch = due;
					break;
				}
			}
			struct ec *c = g_free;
			g_free = c->tnext;
			c->tnext = NULL;
			c->idx = launched++;
			c->backend[0] = 0;
			g_active++;
			m->launch(c);
		}
		if (!g_active && (launched >= o.count || g_interrupted))
			break;
		if (!ep_round(budget < 0 ? now_ns() : next_launch, m->on_event))
			break;
	}
	double secs = (double)(now_ns() - t_start) / 1e9;
	for (uint64_t i = 0; i < C; i++)
		if (slots[i].fd >= 0)
			ec_close(&slots[i], S_FREE);
	free(slots);

	fprintf(stderr, "ep_load: %s done: ok %" PRIu64 " failed %" PRIu64 " in %.3f s\n", m->name,
		R.ok, R.failed, secs);
	bool first = true;
	FILE *f = stdout;
	j_head(f, &first);
	j_u64(f, &first, "count", o.count);
	j_u64(f, &first, "concurrency", C);
	j_u64(f, &first, "ok", R.ok);
	j_u64(f, &first, "failed", R.failed);
	j_errors(f, &first, &R);
	j_backends(f, &first, &R.bt);
	j_key(f, &first, "seconds");
	j_num(f, secs, 3);
	if (!m->udp && o.get_set) {
		j_u64(f, &first, "get_bytes", o.get_bytes);
		j_u64(f, &first, "bytes", R.bytes);
	}
	j_latency(f, &first, R.h);
	j_first_failure(f, &first, &R);
	j_end(f, &first);
	return g_fatal;
}

static int run_tcp_conns(void)
{
	static const struct counted_mode m = {"tcp-conns", "connections", false, tcp_launch,
					      tcp_event};

	return run_counted(&m);
}

static int run_udp_rr(void)
{
	static const struct counted_mode m = {"udp-rr", "requests", true, udp_launch, udp_event};

	return run_counted(&m);
}

/* ---- hold ---- */

static struct {
	uint64_t established, settled, broken, backend_changed, rounds, pings, ping_failures;
} H;

static void hold_done(struct ec *c, int cls, const char *what, int err)
{
	uint64_t now = now_ns();
	if (cls < 0) {
		if (c->phase == P_HELLO) {
			H.established++;
			H.settled++;
			g_active--;
			c->phase = P_PING;
			bt_add_one(&R.bt, c->backend);
		} else {
			h_add(R.h, now - c->t0);
			if (strcmp(c->rid, c->backend) != 0) {
				H.ping_failures++;
				if (!c->changed) {
					c->changed = true;
					H.backend_changed++;
				}
				note_failure(&R, E_MISMATCH,
					     "connection %" PRIu64 ": backend changed from %s to %s, "
					     "%.3f s into the run", c->idx, c->backend, c->rid,
					     (double)(now - g_run_start) / 1e9);
			}
		}
		t_del(c);
		c->state = S_IDLE;
		ec_want(c, EPOLLIN | EPOLLRDHUP);
		return;
	}
	char detail[160];
	if (err)
		snprintf(detail, sizeof(detail), "%s: %s", what, strerror(err));
	else if (cls == E_MISMATCH && c->in_len && !c->bulk)
		snprintf(detail, sizeof(detail), "%s \"%.*s\"", what, (int)strnlen(c->in, 80), c->in);
	else
		snprintf(detail, sizeof(detail), "%s", what);
	const char *when = c->phase == P_HELLO ? "while connecting" :
			   c->state == S_IDLE ? "while idle" : "on ping";
	note_failure(&R, cls, "connection %" PRIu64 " (%s) broken %s, %.3f s into the run: %s",
		     c->idx, c->backend[0] ? c->backend : "no backend yet", when,
		     (double)(now - g_run_start) / 1e9, detail);
	if (c->phase == P_HELLO) {
		H.settled++;
		g_active--;
	} else if (c->state != S_IDLE) {
		H.ping_failures++;
	}
	H.broken++;
	ec_close(c, S_DEAD);
}

static int write_ready_file(void)
{
	size_t n = strlen(o.ready_file) + 8;
	char *tmp = malloc(n);
	if (!tmp)
		return -1;
	snprintf(tmp, n, "%s.tmp", o.ready_file);
	FILE *f = fopen(tmp, "w");
	int rc = -1;
	if (f) {
		fprintf(f, "established %" PRIu64 " of %" PRIu64 "\n", H.established, o.conns);
		if (fclose(f) == 0 && rename(tmp, o.ready_file) == 0)
			rc = 0;
	}
	if (rc < 0) {
		fprintf(stderr, "ep_load: cannot write ready file %s: %s\n", o.ready_file,
			strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

static int run_hold(void)
{
	uint64_t K = o.conns;
	struct ec *cs = calloc(K ? K : 1, sizeof(*cs));
	if (!cs) {
		perror("ep_load: calloc");
		return 1;
	}
	for (uint64_t i = 0; i < K; i++) {
		cs[i].fd = -1;
		cs[i].idx = i;
	}
	if (epoll_setup() < 0) {
		free(cs);
		return 1;
	}
	uint64_t C = o.conc_set ? o.concurrency : 1000;
	if (!C)
		C = 1;
	fprintf(stderr, "ep_load: hold %" PRIu64 " connections to %s for %.3f s, ping every %" PRIu64 " ms\n",
		K, o.target_str, o.duration, o.interval_ms);
	uint64_t t_start = now_ns(), launched = 0;
	/* establish: at most C connection attempts in flight */
	while (!g_interrupted && H.settled < K) {
		int budget = LAUNCH_BATCH;
		while (launched < K && g_active < C && budget--) {
			struct ec *c = &cs[launched++];
			c->phase = P_HELLO;
			c->req_len = (size_t)snprintf(c->req, sizeof(c->req), "hello %" PRIu64 "\n", c->idx);
			g_active++;
			tcp_open(c);
		}
		if (H.settled >= K)
			break;
		if (!ep_round(budget < 0 ? now_ns() : 0, tcp_event))
			break;
	}
	uint64_t t_ready = now_ns();
	fprintf(stderr, "ep_load: hold: %" PRIu64 " of %" PRIu64 " connections established in %.3f s\n",
		H.established, K, (double)(t_ready - t_start) / 1e9);
	if (!g_interrupted && !g_fatal && o.ready_file && write_ready_file() < 0)
		g_fatal = 1;
	uint64_t t_end = t_ready + (uint64_t)(o.duration * 1e9);
	uint64_t iv = o.interval_ms * NS_PER_MS;
	uint64_t next_round = t_ready + iv;
	bool stopping = g_interrupted || g_fatal;
	while (!g_fatal) {
		uint64_t now = now_ns();
		if (!stopping && (g_interrupted || now >= t_end))
			stopping = true;
		if (!stopping && now >= next_round) {
			H.rounds++;
			for (uint64_t i = 0; i < K; i++) {
				struct ec *c = &cs[i];
				if (c->state != S_IDLE)
					continue; /* dead, or the last ping is still out */
				c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
							      "ping %" PRIu64 " %" PRIu64 "\n", c->idx,
							      H.rounds);
				c->t0 = now_ns(); /* per connection: the loop itself takes time */
				c->in_len = 0;
				H.pings++;
				tcp_start_req(c);
			}
			next_round += iv;
			if (next_round <= now)
				next_round = now + iv; /* we fell behind: skip missed rounds */
		}
		bool outstanding = false;
		if (stopping) {
			for (uint64_t i = 0; i < K && !outstanding; i++)
				outstanding = cs[i].state == S_SENDING || cs[i].state == S_WAITING ||
					      cs[i].state == S_CONNECTING;
			if (!outstanding)
				break;
		}
		uint64_t until = stopping ? 0 : (next_round < t_end ? next_round : t_end);
		if (!ep_round(until, tcp_event))
			break;
	}
	uint64_t t_stop = now_ns();
	uint64_t alive = 0;
	for (uint64_t i = 0; i < K; i++) {
		if (cs[i].state == S_IDLE)
			alive++;
		if (cs[i].fd >= 0)
			ec_close(&cs[i], S_DEAD);
	}
	free(cs);
	double secs = (double)(t_stop - t_ready) / 1e9;
	fprintf(stderr, "ep_load: hold done: alive %" PRIu64 " broken %" PRIu64 " backend_changed %" PRIu64
		" rounds %" PRIu64 " pings %" PRIu64 " ping_failures %" PRIu64 "\n",
		alive, H.broken, H.backend_changed, H.rounds, H.pings, H.ping_failures);
	bool first = true;
	FILE *f = stdout;
	j_head(f, &first);
	j_u64(f, &first, "conns", K);
	j_u64(f, &first, "established", H.established);
	j_u64(f, &first, "alive", alive);
	j_u64(f, &first, "broken", H.broken);
	j_u64(f, &first, "backend_changed", H.backend_changed);
	j_u64(f, &first, "rounds", H.rounds);
	j_u64(f, &first, "pings", H.pings);
	j_u64(f, &first, "ping_failures", H.ping_failures);
	j_errors(f, &first, &R);
	j_backends(f, &first, &R.bt);
	j_key(f, &first, "seconds");
	j_num(f, secs, 3);
	j_latency(f, &first, R.h);
	j_first_failure(f, &first, &R);
	j_end(f, &first);
	return g_fatal;
}

static void ec_done(struct ec *c, int cls, const char *what, int err)
{
	switch (o.mode) {
	case M_TCP_CONNS:
		tc_done(c, cls, what, err);
		break;
	case M_UDP_RR:
		ur_done(c, cls, what, err);
		break;
	case M_HOLD:
		hold_done(c, cls, what, err);
		break;
	default:
		break;
	}
}

static void ec_timeout(struct ec *c)
{
	t_del(c);
	if (o.mode == M_UDP_RR) {
		if (c->attempts <= o.retries) {
			udp_send(c);
			return;
		}
		ec_done(c, E_TIMEOUT, "no reply", 0);
		return;
	}
	const char *what = c->state == S_CONNECTING ? "connect timed out" :
			   c->state == S_SENDING ? "send timed out" :
			   c->bulk ? "GET payload stalled" : "no reply in time";
	ec_done(c, E_TIMEOUT, what, 0);
}

/* ------------------------------------------------------------------------ */
/* rr / crr: one thread per connection, blocking sockets                     */

static atomic_bool g_stop;
static _Atomic uint64_t g_te_eff;     /* successes must complete by this time */
static _Atomic uint64_t g_tickets;    /* count mode: measured transactions claimed */
static _Atomic uint64_t g_rate_tickets;
static uint64_t g_t0, g_tw, g_te;
/* start gate: workers connect, report ready, wait for "go" */
static pthread_mutex_t g_mx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static uint64_t g_nready;
static bool g_go;

/* sleep until t, waking at least every 50 ms to notice a stop */
static void w_sleep_until(uint64_t t)
{
	for (;;) {
		uint64_t now = now_ns();
		if (now >= t || atomic_load(&g_stop))
			return;
		uint64_t step = now + 50 * NS_PER_MS;
		sleep_until(t < step ? t : step);
	}
}

struct worker {
	pthread_t th;
	unsigned id;
	int fd;
	bool rcvtimeo_changed;
	uint64_t seq;
	struct result r;
};

static int blk_connect(struct worker *w, int *err)
{
	int fd = tcp_socket(false, err);
	if (fd < 0)
		return -E_CONNECT - 1;
	/* Linux applies SO_SNDTIMEO to a blocking connect() */
	set_timeo(fd, SO_SNDTIMEO, g_timeout_ns);
	set_timeo(fd, SO_RCVTIMEO, g_timeout_ns);
	while (connect(fd, (struct sockaddr *)&o.target, o.tlen) < 0) {
		if (errno == EINTR)
			continue;
		*err = errno;
		close(fd);
		return errno == EINPROGRESS || errno == EAGAIN || errno == ETIMEDOUT ?
			       -E_TIMEOUT - 1 : -E_CONNECT - 1;
	}
	w->rcvtimeo_changed = false;
	return fd;
}

/* send req, read one line into buf. -1 on success, else an error class. */
static int blk_rr(struct worker *w, int fd, const char *req, size_t req_len, uint64_t t_start,
		  char *buf, size_t cap, size_t *len, int *err)
{
	size_t off = 0;
	*err = 0;
	*len = 0;
	if (w->rcvtimeo_changed) {
		set_timeo(fd, SO_RCVTIMEO, g_timeout_ns);
		w->rcvtimeo_changed = false;
	}
	while (off < req_len) {
		ssize_t s = send(fd, req + off, req_len - off, MSG_NOSIGNAL);
		if (s < 0) {
			if (errno == EINTR)
				continue;
			*err = errno;
			return errno_class(errno);
		}
		off += (size_t)s;
	}
	uint64_t deadline = t_start + g_timeout_ns;
	for (;;) {
		ssize_t r = recv(fd, buf + *len, cap - 1 - *len, 0);
		if (r == 0)
			return E_SHORT;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*err = errno;
			return errno_class(errno);
		}
		*len += (size_t)r;
		char *nl = memchr(buf, '\n', *len);
		if (nl) {
			if ((size_t)(nl - buf) + 1 != *len) {
				buf[*len] = 0;
				return E_MISMATCH; /* extra data after the reply */
			}
			*nl = 0;
			*len = (size_t)(nl - buf);
			return -1;
		}
		buf[*len] = 0;
		if (*len >= cap - 1)
			return E_MISMATCH;
		uint64_t now = now_ns();
		if (now >= deadline)
			return E_TIMEOUT;
		/* partial line: wait only for what is left of the timeout */
		set_timeo(fd, SO_RCVTIMEO, deadline - now);
		w->rcvtimeo_changed = true;
	}
}

static void w_record(struct worker *w, int cls, uint64_t t1, uint64_t t2, const char *line,
		     size_t len, const char *req, size_t req_len, const char *what, int err)
{
	char id[ID_MAX + 1];
	if (t1 < g_tw)
		return; /* warmup */
	if (cls < 0) {
		cls = check_reply(line, len, req, req_len, id);
		if (cls < 0) {
			if (t2 > atomic_load(&g_te_eff))
				return; /* finished after the measurement window */
			w->r.ok++;
			h_add(w->r.h, t2 - t1);
			bt_add(&w->r.bt, id, 1);
			return;
		}
		what = "unexpected reply";
	}
	if (t1 >= atomic_load(&g_te_eff))
		return;
	w->r.failed++;
	hint_ports(err);
	if (err)
		note_failure(&w->r, cls, "conn %u transaction %" PRIu64 ": %s: %s", w->id, w->seq,
			     what, strerror(err));
	else if (cls == E_MISMATCH)
		note_failure(&w->r, cls, "conn %u transaction %" PRIu64 ": %s \"%.*s\"", w->id,
			     w->seq, what, (int)(len < 80 ? len : 80), line);
	else
		note_failure(&w->r, cls, "conn %u transaction %" PRIu64 ": %s", w->id, w->seq, what);
}

/* returns false when the run is over for this worker */
static bool w_claim(void)
{
	if (atomic_load(&g_stop))
		return false;
	if (o.rate > 0) {
		uint64_t t = atomic_fetch_add(&g_rate_tickets, 1);
		uint64_t due = g_t0 + (uint64_t)((double)t * 1e9 / o.rate);
		uint64_t lim = atomic_load(&g_te_eff);
		w_sleep_until(due < lim ? due : lim);
		if (atomic_load(&g_stop))
			return false;
	}
	if (o.count_set && now_ns() >= g_tw && atomic_fetch_add(&g_tickets, 1) >= o.count)
		return false;
	return true;
}

static void w_backoff(void)
{
	w_sleep_until(now_ns() + BACKOFF_NS);
}

static const char *cls_what(int cls)
{
	return cls == E_TIMEOUT ? "timeout" : cls == E_SHORT ? "connection closed by peer" :
	       cls == E_MISMATCH ? "bad reply" : "socket error";
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char req[REQ_MAX], buf[IN_MAX];
	int err = 0;
	w->fd = -1;
	if (o.mode == M_RR) {
		int fd = blk_connect(w, &err);
		if (fd >= 0)
			w->fd = fd;
		else
			fprintf(stderr, "ep_load: conn %u: initial connect failed: %s\n", w->id,
				strerror(err));
	}
	pthread_mutex_lock(&g_mx);
	g_nready++;
	pthread_cond_broadcast(&g_cv);
	while (!g_go)
		pthread_cond_wait(&g_cv, &g_mx);
	pthread_mutex_unlock(&g_mx);
	while (w_claim()) {
		w->seq++;
		size_t req_len = (size_t)snprintf(req, sizeof(req), "%s %u %" PRIu64 "\n",
						  o.mode == M_RR ? "rr" : "crr", w->id, w->seq);
		size_t len = 0;
		uint64_t t1 = now_ns();
		int fd = w->fd;
		if (fd < 0) {
			fd = blk_connect(w, &err);
			if (fd < 0) {
				int cls = -fd - 1;
				uint64_t t2 = now_ns();
				w_record(w, cls, t1, t2, NULL, 0, req, req_len - 1,
					 cls == E_TIMEOUT ? "connect timed out" : "connect", err);
				w_backoff(); /* e.g. out of ephemeral ports: do not spin */
				continue;
			}
		}
		int cls = blk_rr(w, fd, req, req_len, t1, buf, sizeof(buf), &len, &err);
		uint64_t t2 = now_ns();
		if (o.mode == M_CRR || cls >= 0) {
			close(fd);
			fd = -1;
		}
		w->fd = fd;
		w_record(w, cls, t1, t2, buf, len, req, req_len - 1, cls_what(cls), err);
	}
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	return NULL;
}

static int run_threads(void)
{
	uint64_t C = o.conns_set ? o.conns : o.conc_set ? o.concurrency : 1;
	if (!C)
		C = 1;
	struct worker *ws = calloc(C, sizeof(*ws));
	if (!ws) {
		perror("ep_load: calloc");
		return 1;
	}
	fprintf(stderr, "ep_load: %s to %s, %" PRIu64 " connection(s), %s\n", o.mode_str,
		o.target_str, C, o.duration_set ? "timed" : "counted");
	atomic_store(&g_te_eff, UINT64_MAX);
	g_tw = UINT64_MAX; /* nothing counts until the clock is set */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	uint64_t started = 0;
	for (; started < C; started++) {
		ws[started].id = (unsigned)started;
		ws[started].r.h = h_new();
		if (pthread_create(&ws[started].th, &attr, worker_main, &ws[started]) != 0) {
			fprintf(stderr, "ep_load: pthread_create failed after %" PRIu64
				" threads; running with those\n", started);
			free(ws[started].r.h);
			ws[started].r.h = NULL;
			g_fatal = 1;
			break;
		}
	}
	pthread_attr_destroy(&attr);
	C = started;

	/* every worker has its connection (or failed to get one): start */
	pthread_mutex_lock(&g_mx);
	while (g_nready < C)
		pthread_cond_wait(&g_cv, &g_mx);
	g_t0 = now_ns();
	g_tw = g_t0 + (uint64_t)(o.warmup * 1e9);
	g_te = o.duration_set ? g_tw + (uint64_t)(o.duration * 1e9) : UINT64_MAX;
	atomic_store(&g_te_eff, g_te);
	g_go = true;
	pthread_cond_broadcast(&g_cv);
	pthread_mutex_unlock(&g_mx);

	/* wait for the end, a signal, or (count mode) every ticket claimed */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGUSR1);
	while (C) {
		uint64_t now = now_ns();
		if (now >= g_te)
			break;
		if (o.count_set && atomic_load(&g_tickets) >= o.count)
			break; /* the workers finish their last transaction and exit */
		uint64_t left = g_te - now;
		if (left > 50 * NS_PER_MS)
			left = 50 * NS_PER_MS;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)left };
		int sig = sigtimedwait(&ss, NULL, &ts);
		if (sig > 0) {
			fprintf(stderr, "ep_load: signal %d, stopping\n", sig);
			g_interrupted = true;
			atomic_store(&g_te_eff, now_ns());
			break;
		}
	}
	atomic_store(&g_stop, true);
	for (uint64_t i = 0; i < C; i++)
		pthread_join(ws[i].th, NULL);
	uint64_t t_join = now_ns();
	uint64_t te = atomic_load(&g_te_eff);
	uint64_t t_end = t_join < te ? t_join : te;
	double secs = t_end > g_tw ? (double)(t_end - g_tw) / 1e9 : 0;
	R.h = h_new();
	for (uint64_t i = 0; i < C; i++) {
		merge_result(&R, &ws[i].r);
		free(ws[i].r.h);
		free(ws[i].r.bt.v);
	}
	free(ws);

	double tps = secs > 0 ? (double)R.ok / secs : 0;
	fprintf(stderr, "ep_load: %s done: %" PRIu64 " transactions, %" PRIu64 " failed, %.3f s, %.1f tps\n",
		o.mode_str, R.ok, R.failed, secs, tps);
	bool first = true;
	FILE *f = stdout;
	j_head(f, &first);
	j_u64(f, &first, "conns", C);
	j_u64(f, &first, "transactions", R.ok);
	j_u64(f, &first, "failed", R.failed);
	j_errors(f, &first, &R);
	j_backends(f, &first, &R.bt);
	j_key(f, &first, "seconds");
	j_num(f, secs, 3);
	j_key(f, &first, "warmup");
	j_num(f, o.warmup, 3);
	j_key(f, &first, "tps");
	j_num(f, tps, 1);
	j_latency(f, &first, R.h);
	j_first_failure(f, &first, &R);
	j_end(f, &first);
	return g_fatal;
}

/* ------------------------------------------------------------------------ */
/* CLI                                                                       */

static void usage(FILE *f)
{
	fputs(
"usage: ep_load --target ADDR:PORT|[V6]:PORT --mode MODE [options]\n"
"\n"
"Client / load generator for ep_echo backends (usually behind the edgeplane\n"
"load balancer). Prints ONE JSON object on stdout at the end; progress and\n"
"errors go to stderr. Exit status: 0 when the run completed (failed requests\n"
"are reported in the JSON, not in the exit status), 1 on a local fatal error\n"
"(e.g. cannot write --ready-file), 2 on bad usage.\n"
"\n"
"Modes:\n"
"  tcp-conns  --count N --concurrency C: N TCP connections, at most C at a\n"
"             time; each sends \"hello <i>\\n\", reads one reply line, closes.\n"
"             JSON: mode, target, count, concurrency, ok, failed, errors{},\n"
"             backends{}, seconds, latency_us{} (connect..reply), first_failure,\n"
"             interrupted; with --get also get_bytes, bytes.\n"
"  udp-rr     --count N --concurrency C: N UDP requests \"hello <i>\", each from\n"
"             its own new socket and source port (a new flow each), retried\n"
"             --retries times after --timeout-ms without a reply. Latency is\n"
"             measured from the first send. JSON as tcp-conns.\n"
"  hold       --conns K --duration S --interval-ms I: open K long-lived TCP\n"
"             connections (at most --concurrency, default 1000, connecting at\n"
"             once), learn each one's backend id, then every I ms send\n"
"             \"ping <conn> <round>\\n\" on every connection and check the reply\n"
"             arrives within --timeout-ms from the same backend. A connection\n"
"             is broken (and not reopened) when it errors, times out, is reset\n"
"             or closed by the peer (also detected while idle). Runs S seconds\n"
"             after all connections are set up, or until SIGUSR1/SIGTERM/SIGINT;\n"
"             then waits for outstanding pings and prints the JSON.\n"
"             --ready-file PATH is created (atomically) once every connection\n"
"             is established or has failed; it holds \"established E of K\".\n"
"             JSON: mode, target, conns, established, alive, broken,\n"
"             backend_changed (connections whose replies came from another\n"
"             backend at least once), rounds, pings, ping_failures, errors{},\n"
"             backends{} (connections per original backend), seconds (held),\n"
"             latency_us{} (ping round trips), first_failure, interrupted.\n"
"  rr         --duration S or --count N, --conns C: C persistent connections,\n"
"             one thread each, send a line / wait for the reply in a loop\n"
"             (TCP_RR). A failed connection is reopened (10 ms back-off after\n"
"             a failed connect).\n"
"  crr        as rr but every transaction is connect + line + reply + close\n"
"             (TCP_CRR). Connect failures, e.g. EADDRNOTAVAIL when ephemeral\n"
"             ports run out, are counted and backed off 10 ms, never spun on.\n"
"             rr/crr JSON: mode, target, conns, transactions (successful),\n"
"             failed, errors{}, backends{} (transactions per backend), seconds\n"
"             (measured, warmup excluded), warmup, tps, latency_us{},\n"
"             first_failure, interrupted. Both stop early on SIGINT/SIGTERM/\n"
"             SIGUSR1 and still print the JSON.\n"
"\n"
"Options:\n"
"  --target ADDR:PORT   IPv4 address or [IPv6]:port (numeric)\n"
"  --mode MODE          tcp-conns | udp-rr | hold | rr | crr\n"
"  --count N            requests/connections (tcp-conns, udp-rr; default 1000)\n"
"                       or measured transactions (rr, crr)\n"
"  --concurrency C      in flight at once (tcp-conns, udp-rr: default 100; hold:\n"
"                       connection attempts, default 1000; rr/crr: alias of --conns)\n"
"  --conns K            connections (hold: default 10; rr/crr: threads, default 1)\n"
"  --duration S         seconds, fractions allowed (hold: default 10; rr/crr:\n"
"                       default 10 unless --count is given; both may be given)\n"
"  --interval-ms I      hold: ping interval (default 100)\n"
"  --timeout-ms T       per step: connect, and reply (an idle timeout: any\n"
"                       progress restarts it) (default 1000)\n"
"  --retries R          udp-rr: resends after a timeout (default 2)\n"
"  --bind ADDR          source address for every socket\n"
"  --warmup S           rr/crr: seconds at the start not measured (default 0)\n"
"  --rate R             max transactions (connections) started per second,\n"
"                       over all connections (tcp-conns, udp-rr, rr, crr;\n"
"                       0 = unlimited, the default)\n"
"  --ready-file PATH    hold: see above\n"
"  --get N              tcp-conns: send \"GET N\\n\" instead of hello, expect the\n"
"                       ep_echo --bytes reply (id line, N payload bytes 'a'+i%26,\n"
"                       '\\n') and verify every byte\n"
"  --verbose            log every failure (default: the first 5)\n"
"  --help               this text\n"
"\n"
"JSON fields shared by modes:\n"
"  errors{}     failures by class: connect (connect() failed or refused;\n"
"               udp: socket error such as ICMP unreachable), timeout (connect\n"
"               or reply not within --timeout-ms, after all udp retries),\n"
"               reset (socket error after connecting, e.g. ECONNRESET),\n"
"               short (peer closed the connection before the full reply),\n"
"               mismatch (reply is not \"<id> <request>\", or corrupt payload,\n"
"               or hold: reply from another backend)\n"
"  backends{}   backend id (first word of the reply) -> count\n"
"  latency_us{} p50, p90, p99, p999, max, mean in microseconds, samples;\n"
"               from a log-linear histogram (error < 0.4%); null when empty\n"
"  first_failure  text of the first failure, or null\n"
"  interrupted  true when a signal stopped the run early\n", f);
}

static void die_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "ep_load: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "try 'ep_load --help'\n");
	exit(2);
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		die_usage(what, s);
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		die_usage(what, s);
	return v;
}

static double parse_secs(const char *s, const char *what)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e7)
		die_usage(what, s);
	return v;
}

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
	enum { O_TARGET = 256, O_MODE, O_COUNT, O_CONC, O_CONNS, O_DURATION, O_INTERVAL,
	       O_TIMEOUT, O_RETRIES, O_BIND, O_WARMUP, O_RATE, O_READY, O_GET, O_VERBOSE,
	       O_HELP };
	static const struct option opts[] = {
		{ "target", required_argument, NULL, O_TARGET },
		{ "mode", required_argument, NULL, O_MODE },
		{ "count", required_argument, NULL, O_COUNT },
		{ "concurrency", required_argument, NULL, O_CONC },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "interval-ms", required_argument, NULL, O_INTERVAL },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "retries", required_argument, NULL, O_RETRIES },
		{ "bind", required_argument, NULL, O_BIND },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "rate", required_argument, NULL, O_RATE },
		{ "ready-file", required_argument, NULL, O_READY },
		{ "get", required_argument, NULL, O_GET },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_TARGET:
			o.target_str = optarg;
			break;
		case O_MODE:
			o.mode_str = optarg;
			break;
		case O_COUNT:
			o.count = parse_u64(optarg, "bad --count");
			o.count_set = true;
			break;
		case O_CONC:
			o.concurrency = parse_u64(optarg, "bad --concurrency");
			o.conc_set = true;
			break;
		case O_CONNS:
			o.conns = parse_u64(optarg, "bad --conns");
			o.conns_set = true;
			break;
		case O_DURATION:
			o.duration = parse_secs(optarg, "bad --duration");
			o.duration_set = true;
			break;
		case O_INTERVAL:
			o.interval_ms = parse_u64(optarg, "bad --interval-ms");
			break;
		case O_TIMEOUT:
			o.timeout_ms = parse_u64(optarg, "bad --timeout-ms");
			break;
		case O_RETRIES:
			o.retries = parse_u64(optarg, "bad --retries");
			break;
		case O_BIND:
			if (sockaddr_parse_ip(optarg, &o.bind, &o.blen) < 0)
				die_usage("bad --bind address", optarg);
			o.has_bind = true;
			break;
		case O_WARMUP:
			o.warmup = parse_secs(optarg, "bad --warmup");
			break;
		case O_RATE:
			o.rate = parse_secs(optarg, "bad --rate");
			break;
		case O_READY:
			o.ready_file = optarg;
			break;
		case O_GET:
			o.get_bytes = parse_u64(optarg, "bad --get");
			o.get_set = true;
			break;
		case O_VERBOSE:
			o.verbose = true;
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
	if (!o.target_str)
		die_usage("--target is required", NULL);
	if (!o.mode_str)
		die_usage("--mode is required", NULL);
	if (parse_target(o.target_str) < 0)
		die_usage("bad --target (ADDR:PORT or [V6]:PORT)", o.target_str);
	if (o.has_bind && o.bind.ss_family != o.family)
		die_usage("--bind and --target address families differ", NULL);
	if (!strcmp(o.mode_str, "tcp-conns"))
		o.mode = M_TCP_CONNS;
	else if (!strcmp(o.mode_str, "udp-rr"))
		o.mode = M_UDP_RR;
	else if (!strcmp(o.mode_str, "hold"))
		o.mode = M_HOLD;
	else if (!strcmp(o.mode_str, "rr"))
		o.mode = M_RR;
	else if (!strcmp(o.mode_str, "crr"))
		o.mode = M_CRR;
	else
		die_usage("unknown --mode", o.mode_str);
	if (o.timeout_ms < 1 || o.timeout_ms > 3600 * 1000)
		die_usage("--timeout-ms must be 1..3600000", NULL);
	if (o.retries > 100)
		die_usage("--retries must be <= 100", NULL);
	if (o.get_set && o.mode != M_TCP_CONNS)
		die_usage("--get is only for --mode tcp-conns", NULL);
	if (o.ready_file && o.mode != M_HOLD)
		die_usage("--ready-file is only for --mode hold", NULL);
	if (o.rate > 0 && o.mode == M_HOLD)
		die_usage("--rate does not apply to --mode hold", NULL);
	if (o.conc_set && o.concurrency == 0)
		die_usage("--concurrency must be >= 1", NULL);
	if (o.conns_set && o.conns == 0 && o.mode != M_HOLD)
		die_usage("--conns must be >= 1", NULL);
	switch (o.mode) {
	case M_TCP_CONNS:
	case M_UDP_RR:
		if (!o.count_set)
			o.count = 1000;
		if (!o.conc_set)
			o.concurrency = 100;
		break;
	case M_HOLD:
		if (!o.conns_set)
			o.conns = 10;
		if (!o.duration_set)
			o.duration = 10;
		if (o.interval_ms < 1)
			die_usage("--interval-ms must be >= 1", NULL);
		if (o.conns > 10000000)
			die_usage("--conns too large", NULL);
		break;
	case M_RR:
	case M_CRR:
		if (!o.duration_set && !o.count_set) {
			o.duration = 10;
			o.duration_set = true;
		}
		if ((o.conns_set ? o.conns : o.concurrency) > 100000)
			die_usage("--conns too large for one thread per connection", NULL);
		break;
	}
	g_timeout_ns = o.timeout_ms * NS_PER_MS;

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &ss, NULL); /* inherited by the worker threads */
	g_sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	if (g_sfd < 0) {
		perror("ep_load: signalfd");
		return 1;
	}
	int rc;
	g_run_start = now_ns();
	if (o.mode == M_RR || o.mode == M_CRR) {
		rc = run_threads();
	} else {
		R.h = h_new();
		rc = o.mode == M_TCP_CONNS ? run_tcp_conns() :
		     o.mode == M_UDP_RR ? run_udp_rr() : run_hold();
	}
	free(R.h);
	free(R.bt.v);
	if (g_ep >= 0)
		close(g_ep);
	close(g_sfd);
	return rc;
}
