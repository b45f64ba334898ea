/*
 * The agent's state as JSON: the one model behind `edgeplane status`,
 * `edgeplane services` and their -o json forms. Field names only grow.
 * Callers hold agent->lock.
 */
#include "status.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "stats.h"
#include "util.h"

static const char *proto_name(uint8_t p)
{
	return p == IPPROTO_UDP ? "udp" : "tcp";
}

static json_t *backend_json(const struct ep_agent *a, const struct ep_be_state *b)
{
	struct ep_backend_stats st;
	char ip[EP_IP_STRLEN];

	ep_stats_backend(a->dp.maps.backend_stats, b->id, &st);
	return json_pack("{s:s, s:s, s:i, s:i, s:b, s:b, s:b, s:i, s:I, s:I, s:I, s:I}", "backend",
			 b->label, "address", ep_ip_str(&b->addr, ip, sizeof(ip)), "port", b->port,
			 "weight", b->weight, "canary", b->canary, "drained", b->drained, "removed",
			 b->removed, "id", b->id, "packets", (json_int_t)st.packets, "bytes",
			 (json_int_t)st.bytes, "flows", (json_int_t)st.flows, "reply_packets",
			 (json_int_t)st.rnat_packets);
}

json_t *ep_status_services(const struct ep_agent *a)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < a->svcs.n_svcs; i++) {
		const struct ep_svc_state *st = &a->svcs.svcs[i];
		json_t *bes = json_array();
		json_int_t pk = 0, by = 0, fl = 0;
		int active = 0;
		char ip[EP_IP_STRLEN];

		for (size_t j = 0; j < st->n_bes; j++) {
			json_t *b = backend_json(a, &st->bes[j]);

			pk += json_integer_value(json_object_get(b, "packets"));
			by += json_integer_value(json_object_get(b, "bytes"));
			fl += json_integer_value(json_object_get(b, "flows"));
			if (!st->bes[j].removed && !st->bes[j].drained && st->bes[j].weight)
				active++;
			json_array_append_new(bes, b);
		}
		json_array_append_new(
			arr, json_pack("{s:s, s:s, s:i, s:s, s:i, s:{s:f, s:s, s:b}, s:i, s:i, s:I, s:I, s:I, s:o}",
				       "name", st->name, "vip", ep_ip_str(&st->vip, ip, sizeof(ip)), "port",
				       st->port, "protocol", proto_name(st->proto), "id", st->id, "canary",
				       "percent", st->canary_bp / 100.0, "sticky",
				       st->sticky_flow ? "flow" : "client", "active",
				       st->ring_members[EP_RING_CANARY] > 0, "active_backends", active,
				       "maglev_table_size", a->svcs.table_size, "packets", pk, "bytes", by,
				       "flows", fl, "backends", bes));
	}
	return arr;
}

json_t *ep_status_summary(const struct ep_agent *a)
{
	struct ep_drop_stats drops[EP_DROP_MAX];
	json_t *ifaces = json_array(), *jd = json_object();
	size_t n_bes = 0;

	for (size_t i = 0; i < a->dp.n_ifaces; i++) {
		const struct ep_dp_iface *f = &a->dp.ifaces[i];

		json_array_append_new(
			ifaces, json_pack("{s:s, s:s, s:i, s:s, s:b}", "name", f->name, "role",
					  f->role == EP_ROLE_UPLINK ? "uplink" : "pods", "ifindex",
					  f->ifindex, "xdp_mode", f->xdp_mode, "xdp_dispatcher",
					  f->xdp_dispatcher));
	}
	ep_stats_drops(a->dp.maps.drops, drops);
	for (int r = 0; r < EP_DROP_MAX; r++)
		json_object_set_new(jd, ep_drop_names[r], json_integer((json_int_t)drops[r].packets));
	for (size_t i = 0; i < a->svcs.n_svcs; i++)
		n_bes += a->svcs.svcs[i].n_bes;

	return json_pack(
		"{s:s, s:s, s:f, s:b, s:{s:s, s:I, s:I, s:f, s:s?}, s:{s:s, s:s, s:s, s:o, s:{s:I, s:i, s:I}, s:o}, "
		"s:{s:i, s:i}, s:{s:s}, s:[]}",
		"node", a->cfg.node_name, "version", EP_VERSION, "uptime_seconds",
		(double)(ep_now_ns() - a->start_ns) / 1e9, "ready", a->ready, "config", "path",
		a->opts.config_path, "reloads_ok", (json_int_t)a->reloads_ok, "reloads_failed",
		(json_int_t)a->reloads_failed, "last_reload_at", a->last_reload_at, "last_reload_error",
		a->last_reload_error[0] ? a->last_reload_error : NULL, "datapath", "bpffs", a->dp.root,
		"xdp_mode", a->cfg.datapath.xdp_mode == EP_XDP_SKB ? "skb" : "native", "forwarding",
		a->cfg.datapath.forwarding == EP_FWD_REDIRECT ? "redirect" : "stack", "interfaces",
		ifaces, "conntrack", "entries", (json_int_t)a->last_gc.entries, "capacity",
		(int)a->dp.ct_size, "expired_total", (json_int_t)a->ct_expired_total, "drops", jd,
		"services", "count", (int)a->svcs.n_svcs, "backends", (int)n_bes, "dns", "mode",
		"not configured", "certs");
}
