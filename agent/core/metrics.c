#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_cache.h"
#include "dns_failover.h"
#include "log.h"
#include "stats.h"
#include "strbuf.h"
#include "util.h"

#define HEALTH_STALE_NS (10ULL * 1000000000ULL)

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
		ep_sb_printf(b, "\"} %g\n",
			     st->ring_members[EP_RING_CANARY] ? st->canary_bp / 100.0 : 0.0);
	}
}

char *ep_metrics_render(struct ep_agent *a)
{
	struct ep_strbuf b = {};

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
	       "Size of each family's conntrack LRU map (datapath.conntrack_size).");
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
	if (a->cache)
		ep_dns_cache_metrics(a->cache, &b);
	if (a->failover)
		ep_dns_failover_metrics(a->failover, &b);
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
	struct ep_agent *a = cls;

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
	char host[64];
	uint16_t port;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	snprintf(a->metrics_listen, sizeof(a->metrics_listen), "%s", listen);
	if (!listen[0])
		return 0;
	if (ep_hostport_parse(listen, host, sizeof(host), &port)) {
		snprintf(err, errlen, "metrics.listen: '%s' is not host:port", listen);
		return -EINVAL;
	}
	if (!host[0]) {
		a->mhd = MHD_start_daemon(flags | MHD_USE_DUAL_STACK, port, NULL, NULL, handle, a,
					  MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	} else {
		if (strchr(host, ':')) {
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
		a->mhd = MHD_start_daemon(flags, port, NULL, NULL, handle, a, MHD_OPTION_SOCK_ADDR,
					  (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
					  MHD_OPTION_END);
	}
	if (!a->mhd) {
		snprintf(err, errlen, "cannot serve metrics on %s: %s", listen, strerror(errno));
		return -EADDRINUSE;
	}
	log_info("metrics on http://%s/metrics (also /healthz, /readyz)", listen);
	return 0;
}

void ep_metrics_stop(struct ep_agent *a)
{
	if (a->mhd)
		MHD_stop_daemon(a->mhd);
	a->mhd = NULL;
}
