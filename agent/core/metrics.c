/*
 * The metrics server: /metrics, /healthz and /readyz over libmicrohttpd.
 *
 * The chart listens on the node's addresses, so anyone who can reach the node
 * can open connections here, and the kubelet's liveness probe must keep
 * getting through while they do: a probe that fails gets the agent
 * restarted. So:
 *   - epoll, not select(): no FD_SETSIZE ceiling (select() stopped the server
 *     at about 1,100 connections);
 *   - connections are admitted by pool. Peers on this node (loopback, or one
 *     of the node's own addresses: the kubelet probes the pod IP, which on
 *     the host network is the node's) have a pool of their own that remote
 *     peers cannot take. Remote peers share a smaller pool, and one source
 *     (an IPv4 address, an IPv6 /64) holds only a slice of it;
 *   - libmicrohttpd's own limit sits one above the pools: it never reaches
 *     it, so it never stops accepting. A refused connection is accepted and
 *     closed at once instead of queueing in the kernel's backlog ahead of
 *     the probe;
 *   - idle connections are closed after a few seconds.
 * The numbers and why are at their definitions; docs/metrics.md has them for
 * operators. The admission state is touched only by libmicrohttpd's one
 * internal thread (policy and notify callbacks, handlers), except the
 * counters the exposition reads, which are atomics.
 */
#include "metrics.h"
#include "canary.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs.h"
#include "dns_cache.h"
#include "dns_failover.h"
#include "log.h"
#include "mirror.h"
#include "stats.h"
#include "strbuf.h"
#include "util.h"

#define HEALTH_STALE_NS (10ULL * 1000000000ULL)

/*
 * Connections from this node: the kubelet's probes (one connection each, a
 * few per period), `curl` on the node, a node-local scraper. 64 is far more
 * than they use; only a process on the node can take these slots.
 */
#define LOCAL_MAX 64
/*
 * Connections from other hosts, all together: a Prometheus pair needs two.
 * 256 is generous for scrapers and keeps the server's descriptors (with the
 * local pool, 320) well below a 1,024 RLIMIT_NOFILE, the soft default under
 * systemd, next to the agent's own. Past that accept() fails with EMFILE and
 * libmicrohttpd stops accepting until a connection closes: the old failure.
 */
#define REMOTE_MAX 256
/*
 * From one IPv4 address or one IPv6 /64 (one host can use a whole /64):
 * room for several scrapers behind one NAT address, while it takes 16
 * sources to fill the remote pool.
 */
#define SOURCE_MAX 16
/*
 * Idle seconds before a connection is closed. The probes close after each
 * request; a scraper with keep-alive scrapes every 10 s or more and simply
 * reconnects. It bounds how long a flood holds remote slots for nothing.
 */
#define IDLE_TIMEOUT_S 5u
/* Above what the pools admit, so libmicrohttpd never stops accepting. */
#define MHD_CONN_LIMIT (LOCAL_MAX + REMOTE_MAX + 1)
/* How often the node's own addresses are read again, and only when a peer
 * that is not loopback connects. An address added in between counts as
 * remote until then. */
#define OWN_ADDRS_TTL_NS (1000ULL * 1000000ULL)
/* At most one warning about refused connections per minute. */
#define REFUSED_LOG_NS (60ULL * 1000000000ULL)

enum refuse_reason { REFUSE_SOURCE, REFUSE_REMOTE, REFUSE_LOCAL, REFUSE_MAX };

static const char *const refuse_names[REFUSE_MAX] = {
	[REFUSE_SOURCE] = "source_limit",
	[REFUSE_REMOTE] = "remote_limit",
	[REFUSE_LOCAL] = "local_limit",
};

/* A remote source holding connections; n == 0 marks a free slot. At most
 * REMOTE_MAX can hold any, so a flat table needs no allocation. */
struct source {
	struct in6_addr key; /* IPv4 as ::ffff:a.b.c.d, IPv6 masked to /64 */
	unsigned int n;
};

struct ep_metrics {
	struct ep_agent *a;
	struct MHD_Daemon *mhd;
	unsigned int local, remote; /* connections held, read by the exposition */
	uint64_t refused[REFUSE_MAX];
	uint64_t refused_logged_ns;
	struct source sources[REMOTE_MAX];
	struct in6_addr *own; /* the node's addresses, IPv4 mapped */
	size_t n_own;
	uint64_t own_read_ns;
	char local_tag; /* socket_context of a local connection: &local_tag */
};

struct peer {
	struct in6_addr key;
	bool local;
};

static void v4_mapped(struct in6_addr *out, const struct in_addr *in)
{
	memset(out, 0, sizeof(*out));
	out->s6_addr[10] = 0xff;
	out->s6_addr[11] = 0xff;
	memcpy(&out->s6_addr[12], in, 4);
}

static void read_own_addrs(struct ep_metrics *m)
{
	struct ifaddrs *ifa, *i;
	size_t n = 0;

	m->own_read_ns = ep_now_ns();
	/* On failure keep the old list: a peer not found counts as remote. */
	if (getifaddrs(&ifa))
		return;
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr &&
		    (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
			n++;
	free(m->own);
	m->own = calloc(n ? n : 1, sizeof(*m->own));
	m->n_own = 0;
	for (i = ifa; i && m->own; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			v4_mapped(&m->own[m->n_own++],
				  &((const struct sockaddr_in *)i->ifa_addr)->sin_addr);
		else if (i->ifa_addr->sa_family == AF_INET6)
			m->own[m->n_own++] = ((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
	}
	freeifaddrs(ifa);
}

/*
 * A peer whose address is one of the node's own is on the node: the kernel
 * drops packets from outside that claim a local source address (martian
 * source), and a TCP handshake needs the answer to come back.
 */
static bool is_own_addr(struct ep_metrics *m, const struct in6_addr *a)
{
	if (!m->own_read_ns || ep_now_ns() - m->own_read_ns > OWN_ADDRS_TTL_NS)
		read_own_addrs(m);
	for (size_t i = 0; i < m->n_own; i++)
		if (!memcmp(&m->own[i], a, sizeof(*a)))
			return true;
	return false;
}

static void peer_of(struct ep_metrics *m, const struct sockaddr *sa, struct peer *p)
{
	memset(p, 0, sizeof(*p));
	if (sa->sa_family == AF_INET) {
		v4_mapped(&p->key, &((const struct sockaddr_in *)sa)->sin_addr);
	} else if (sa->sa_family == AF_INET6) {
		p->key = ((const struct sockaddr_in6 *)sa)->sin6_addr;
	} else {
		return; /* not IP: one anonymous remote source */
	}
	if (IN6_IS_ADDR_LOOPBACK(&p->key) ||
	    (IN6_IS_ADDR_V4MAPPED(&p->key) && p->key.s6_addr[12] == 127) ||
	    is_own_addr(m, &p->key)) {
		p->local = true;
		return;
	}
	if (!IN6_IS_ADDR_V4MAPPED(&p->key))
		memset(&p->key.s6_addr[8], 0, 8);
}

static struct source *source_find(struct ep_metrics *m, const struct in6_addr *key)
{
	for (size_t i = 0; i < REMOTE_MAX; i++)
		if (m->sources[i].n && !memcmp(&m->sources[i].key, key, sizeof(*key)))
			return &m->sources[i];
	return NULL;
}

static enum MHD_Result refuse(struct ep_metrics *m, enum refuse_reason why, const struct peer *p)
{
	uint64_t now = ep_now_ns();
	char addr[INET6_ADDRSTRLEN] = "?";

	__atomic_add_fetch(&m->refused[why], 1, __ATOMIC_RELAXED);
	if (m->refused_logged_ns && now - m->refused_logged_ns < REFUSED_LOG_NS)
		return MHD_NO;
	m->refused_logged_ns = now;
	inet_ntop(AF_INET6, &p->key, addr, sizeof(addr));
	log_warn("metrics: refusing connections (%s, first from %s%s); "
		 "edgeplane_metrics_connections_refused_total counts them",
		 refuse_names[why], addr,
		 p->local || IN6_IS_ADDR_V4MAPPED(&p->key) ? "" : "/64");
	return MHD_NO;
}

/* libmicrohttpd's accept policy: right after accept(), before any byte. */
static enum MHD_Result admit(void *cls, const struct sockaddr *sa, socklen_t len)
{
	struct ep_metrics *m = cls;
	struct source *s;
	struct peer p;

	(void)len;
	peer_of(m, sa, &p);
	if (p.local)
		return m->local < LOCAL_MAX ? MHD_YES : refuse(m, REFUSE_LOCAL, &p);
	if (m->remote >= REMOTE_MAX)
		return refuse(m, REFUSE_REMOTE, &p);
	s = source_find(m, &p.key);
	if (s && s->n >= SOURCE_MAX)
		return refuse(m, REFUSE_SOURCE, &p);
	return MHD_YES;
}

/*
 * Counts admitted connections in and out. libmicrohttpd pairs STARTED with
 * CLOSED for every connection it set up, and calls STARTED right after
 * admit() in the same thread, so the pools cannot be overrun. socket_context
 * remembers what was counted.
 */
static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
			  enum MHD_ConnectionNotificationCode what)
{
	struct ep_metrics *m = cls;

	if (what == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		struct sockaddr_in6 none = { .sin6_family = AF_UNSPEC };
		struct source *s;
		struct peer p;

		peer_of(m, ci && ci->client_addr ? ci->client_addr : (struct sockaddr *)&none, &p);
		if (p.local) {
			__atomic_add_fetch(&m->local, 1, __ATOMIC_RELAXED);
			*ctx = &m->local_tag;
			return;
		}
		s = source_find(m, &p.key);
		for (size_t i = 0; !s && i < REMOTE_MAX; i++)
			if (!m->sources[i].n) {
				s = &m->sources[i];
				s->key = p.key;
			}
		/* admit() kept remote below REMOTE_MAX, so a slot was free. */
		if (s)
			s->n++;
		__atomic_add_fetch(&m->remote, 1, __ATOMIC_RELAXED);
		*ctx = s;
		return;
	}
	if (what != MHD_CONNECTION_NOTIFY_CLOSED)
		return;
	if (*ctx == &m->local_tag) {
		__atomic_sub_fetch(&m->local, 1, __ATOMIC_RELAXED);
	} else {
		struct source *s = *ctx;

		if (s)
			s->n--;
		__atomic_sub_fetch(&m->remote, 1, __ATOMIC_RELAXED);
	}
	*ctx = NULL;
}


static void family(struct ep_strbuf *b, const char *name, const char *type, const char *help)
{
	ep_sb_printf(b, "# HELP edgeplane_%s %s\n# TYPE edgeplane_%s %s\n", name, help, name, type);
}

static void svc_be_labels(struct ep_strbuf *b, const char *svc, const char *be)
{
	ep_sb_printf(b, "{service=\"");
	ep_sb_label(b, svc);
	ep_sb_printf(b, "\",backend=\"");
	ep_sb_label(b, be);
	ep_sb_printf(b, "\"}");
}

static void render_lb(struct ep_agent *a, struct ep_strbuf *b)
{
	static const struct {
		const char *name, *help;
	} per_backend[] = {
		{"lb_packets_total", "Packets balanced to the backend (client to backend)."},
		{"lb_bytes_total", "Bytes balanced to the backend (client to backend, L2 frame size)."},
		{"lb_flows_total", "Flows (conntrack entries) created for the backend."},
		{"lb_reply_packets_total", "Backend replies translated back to the VIP (reverse NAT)."},
	};
	struct ep_drop_stats drops[EP_DROP_MAX];

	for (size_t m = 0; m < EP_ARRAY_SIZE(per_backend); m++) {
		family(b, per_backend[m].name, "counter", per_backend[m].help);
		for (size_t i = 0; i < a->svcs.n_svcs; i++) {
			const struct ep_svc_state *st = &a->svcs.svcs[i];

			for (size_t j = 0; j < st->n_bes; j++) {
				struct ep_backend_stats s;
				uint64_t v;

				ep_stats_backend(a->dp.maps.backend_stats, st->bes[j].id, &s);
				v = m == 0 ? s.packets : m == 1 ? s.bytes : m == 2 ? s.flows : s.rnat_packets;
				ep_sb_printf(b, "edgeplane_%s", per_backend[m].name);
				svc_be_labels(b, st->name, st->bes[j].label);
				ep_sb_printf(b, " %llu\n", (unsigned long long)v);
			}
		}
	}
	family(b, "lb_backend_weight", "gauge", "Configured weight of the backend.");
	for (size_t i = 0; i < a->svcs.n_svcs; i++)
		for (size_t j = 0; j < a->svcs.svcs[i].n_bes; j++) {
			ep_sb_printf(b, "edgeplane_lb_backend_weight");
			svc_be_labels(b, a->svcs.svcs[i].name, a->svcs.svcs[i].bes[j].label);
			ep_sb_printf(b, " %u\n", a->svcs.svcs[i].bes[j].weight);
		}
	family(b, "lb_backend_active", "gauge",
	       "1 when the backend receives new flows (in config, weight > 0, not drained).");
	for (size_t i = 0; i < a->svcs.n_svcs; i++)
		for (size_t j = 0; j < a->svcs.svcs[i].n_bes; j++) {
			const struct ep_be_state *be = &a->svcs.svcs[i].bes[j];

			ep_sb_printf(b, "edgeplane_lb_backend_active");
			svc_be_labels(b, a->svcs.svcs[i].name, be->label);
			ep_sb_printf(b, " %d\n", !be->removed && !be->drained && be->weight > 0);
		}

	ep_stats_drops(a->dp.maps.drops, drops);
	family(b, "lb_drops_total", "counter", "Packets to a VIP dropped, by reason (docs/datapath.md).");
	for (int r = 0; r < EP_DROP_MAX; r++)
		ep_sb_printf(b, "edgeplane_lb_drops_total{reason=\"%s\"} %llu\n", ep_drop_names[r],
			     (unsigned long long)drops[r].packets);
	family(b, "lb_drop_bytes_total", "counter", "Bytes of packets to a VIP dropped, by reason.");
	for (int r = 0; r < EP_DROP_MAX; r++)
		ep_sb_printf(b, "edgeplane_lb_drop_bytes_total{reason=\"%s\"} %llu\n", ep_drop_names[r],
			     (unsigned long long)drops[r].bytes);

	family(b, "canary_percent", "gauge", "Share of new clients sent to the canary backends.");
	for (size_t i = 0; i < a->svcs.n_svcs; i++) {
		const struct ep_svc_state *st = &a->svcs.svcs[i];

		ep_sb_printf(b, "edgeplane_canary_percent{service=\"");
		ep_sb_label(b, st->name);
		ep_sb_printf(b, "\"} %g\n", ep_services_canary_share(st) / 100.0);
	}
	ep_canary_metrics(a->canary, b);
}

static void render_server(struct ep_metrics *m, struct ep_strbuf *b)
{
	family(b, "metrics_connections", "gauge",
	       "Connections open to this metrics server, by peer (local: this node).");
	ep_sb_printf(b, "edgeplane_metrics_connections{peer=\"local\"} %u\n",
		     __atomic_load_n(&m->local, __ATOMIC_RELAXED));
	ep_sb_printf(b, "edgeplane_metrics_connections{peer=\"remote\"} %u\n",
		     __atomic_load_n(&m->remote, __ATOMIC_RELAXED));
	family(b, "metrics_connections_refused_total", "counter",
	       "Connections to this metrics server closed at accept, by the limit they hit.");
	for (int r = 0; r < REFUSE_MAX; r++)
		ep_sb_printf(b, "edgeplane_metrics_connections_refused_total{reason=\"%s\"} %llu\n",
			     refuse_names[r],
			     (unsigned long long)__atomic_load_n(&m->refused[r], __ATOMIC_RELAXED));
}

char *ep_metrics_render(struct ep_agent *a)
{
	struct ep_strbuf b = {};
	struct ep_metrics *m;

	pthread_mutex_lock(&a->lock);
	render_lb(a, &b);
	family(&b, "conntrack_entries", "gauge",
	       "Tracked flows at the last conntrack pass (every few seconds).");
	ep_sb_printf(&b, "edgeplane_conntrack_entries %llu\n",
		     (unsigned long long)a->gc.last.entries);
	family(&b, "conntrack_family_entries", "gauge",
	       "Tracked flows per address family at the last conntrack pass.");
	ep_sb_printf(&b, "edgeplane_conntrack_family_entries{family=\"ipv4\"} %llu\n",
		     (unsigned long long)a->gc.last.entries4);
	ep_sb_printf(&b, "edgeplane_conntrack_family_entries{family=\"ipv6\"} %llu\n",
		     (unsigned long long)a->gc.last.entries6);
	family(&b, "conntrack_capacity", "gauge",
	       "Flows each conntrack table is sized for (datapath.conntrack_size).");
	ep_sb_printf(&b, "edgeplane_conntrack_capacity %u\n", a->dp.ct_size);
	family(&b, "conntrack_expired_total", "counter", "Flows forgotten after being idle too long.");
	ep_sb_printf(&b, "edgeplane_conntrack_expired_total %llu\n",
		     (unsigned long long)a->gc.expired_total);
	family(&b, "config_reloads_total", "counter", "Config reloads by result.");
	ep_sb_printf(&b, "edgeplane_config_reloads_total{result=\"ok\"} %llu\n",
		     (unsigned long long)a->reloads_ok);
	ep_sb_printf(&b, "edgeplane_config_reloads_total{result=\"failed\"} %llu\n",
		     (unsigned long long)a->reloads_failed);
	family(&b, "config_last_reload_timestamp_seconds", "gauge",
	       "When the config was last applied (Unix time).");
	ep_sb_printf(&b, "edgeplane_config_last_reload_timestamp_seconds %.3f\n", a->last_reload_at);
	family(&b, "datapath_interface_attached", "gauge",
	       "Interfaces the datapath is attached to (XDP mode for uplinks).");
	for (size_t i = 0; i < a->dp.n_ifaces; i++) {
		const struct ep_dp_iface *f = &a->dp.ifaces[i];

		ep_sb_printf(&b, "edgeplane_datapath_interface_attached{interface=\"");
		ep_sb_label(&b, f->name);
		ep_sb_printf(&b, "\",role=\"%s\",xdp_mode=\"%s\"} 1\n",
			     f->role == EP_ROLE_UPLINK ? "uplink" : "pods", f->xdp_mode);
	}
	ep_mirror_metrics(a->mirror, &a->svcs, &b);
	if (a->cache)
		ep_dns_cache_metrics(a->cache, &b);
	if (a->failover)
		ep_dns_failover_metrics(a->failover, &b);
	ep_certs_metrics(a->certs, &b);
	/* The server thread may answer before start() has published it. */
	m = __atomic_load_n(&a->metrics, __ATOMIC_ACQUIRE);
	if (m)
		render_server(m, &b);
	family(&b, "agent_info", "gauge", "Agent version and node.");
	ep_sb_printf(&b, "edgeplane_agent_info{version=\"%s\",node=\"", EP_VERSION);
	ep_sb_label(&b, a->cfg.node_name);
	ep_sb_printf(&b, "\"} 1\n");
	pthread_mutex_unlock(&a->lock);
	return ep_sb_take(&b);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
			     char *body, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), body, mode);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct ep_metrics *m = cls;
	struct ep_agent *a = m->a;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n",
			     MHD_RESPMEM_PERSISTENT);
	if (!strcmp(url, "/metrics")) {
		char *body = ep_metrics_render(a);

		if (!body)
			return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
				     "out of memory\n", MHD_RESPMEM_PERSISTENT);
		return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body,
			     MHD_RESPMEM_MUST_FREE);
	}
	if (!strcmp(url, "/healthz")) {
		uint64_t hb = __atomic_load_n(&a->heartbeat_ns, __ATOMIC_RELAXED);

		if (ep_now_ns() - hb > HEALTH_STALE_NS)
			return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
				     "event loop stalled\n", MHD_RESPMEM_PERSISTENT);
		return reply(c, MHD_HTTP_OK, "text/plain", "ok\n", MHD_RESPMEM_PERSISTENT);
	}
	if (!strcmp(url, "/readyz")) {
		if (!__atomic_load_n(&a->ready, __ATOMIC_RELAXED))
			return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
				     "datapath not ready\n", MHD_RESPMEM_PERSISTENT);
		return reply(c, MHD_HTTP_OK, "text/plain", "ready\n", MHD_RESPMEM_PERSISTENT);
	}
	return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "try /metrics, /healthz or /readyz\n",
		     MHD_RESPMEM_PERSISTENT);
}

int ep_metrics_start(struct ep_agent *a, const char *listen, char *err, size_t errlen)
{
	struct sockaddr_storage ss = {};
	struct ep_metrics *m;
	char host[64];
	uint16_t port;
	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

	snprintf(a->metrics_listen, sizeof(a->metrics_listen), "%s", listen);
	if (!listen[0])
		return 0;
	if (ep_hostport_parse(listen, host, sizeof(host), &port)) {
		snprintf(err, errlen, "metrics.listen: '%s' is not host:port", listen);
		return -EINVAL;
	}
	if (!host[0]) {
		flags |= MHD_USE_DUAL_STACK;
	} else if (strchr(host, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		inet_pton(AF_INET6, host, &s6->sin6_addr);
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		inet_pton(AF_INET, host, &s4->sin_addr);
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "cannot serve metrics on %s: out of memory", listen);
		return -ENOMEM;
	}
	m->a = a;
	/* Without a host the last option is END, and libmicrohttpd binds the
	 * wildcard of both families (MHD_USE_DUAL_STACK). */
	m->mhd = MHD_start_daemon(flags, port, admit, m, handle, m,
				  MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MHD_CONN_LIMIT,
				  MHD_OPTION_NOTIFY_CONNECTION, on_connection, m,
				  host[0] ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END,
				  (struct sockaddr *)&ss, MHD_OPTION_END);
	if (!m->mhd) {
		snprintf(err, errlen, "cannot serve metrics on %s: %s", listen, strerror(errno));
		free(m);
		return -EADDRINUSE;
	}
	__atomic_store_n(&a->metrics, m, __ATOMIC_RELEASE);
	log_info("metrics on http://%s/metrics (also /healthz, /readyz)", listen);
	return 0;
}

void ep_metrics_stop(struct ep_agent *a)
{
	struct ep_metrics *m = a->metrics;

	if (!m)
		return;
	/* Joins the server thread and closes its connections (CLOSED notifies
	 * still see m), so nothing uses m afterwards. */
	MHD_stop_daemon(m->mhd);
	__atomic_store_n(&a->metrics, NULL, __ATOMIC_RELEASE);
	free(m->own);
	free(m);
}
