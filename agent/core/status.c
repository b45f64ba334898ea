/*
 * The agent's state as JSON: the one model behind `edgeplane status`,
 * `edgeplane services` and their -o json forms. Field names only grow.
 * Callers hold agent->lock.
 */
#include "status.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "certs.h"
#include "dns_cache.h"
#include "dns_failover.h"
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
				       "percent", (st->canary_override ? st->canary_override_bp : st->canary_bp) / 100.0, "sticky",
				       st->sticky_flow ? "flow" : "client", "active",
				       st->ring_members[EP_RING_CANARY] > 0, "active_backends", active,
				       "maglev_table_size", a->svcs.table_size, "packets", pk, "bytes", by,
				       "flows", fl, "backends", bes));
	}
	return arr;
}

static json_t *datapath_json(const struct ep_agent *a)
{
	struct ep_drop_stats drops[EP_DROP_MAX];
	json_t *dp = json_object(), *ifaces = json_array(), *ct = json_object(), *jd = json_object();

	for (size_t i = 0; i < a->dp.n_ifaces; i++) {
		const struct ep_dp_iface *f = &a->dp.ifaces[i];

		json_array_append_new(
			ifaces, json_pack("{s:s, s:s, s:i, s:s, s:b}", "name", f->name, "role",
					  f->role == EP_ROLE_UPLINK ? "uplink" : "pods", "ifindex",
					  f->ifindex, "xdp_mode", f->xdp_mode, "xdp_dispatcher",
					  f->xdp_dispatcher));
	}
	json_object_set_new(ct, "entries", json_integer((json_int_t)a->gc.last.entries));
	json_object_set_new(ct, "ipv4", json_integer((json_int_t)a->gc.last.entries4));
	json_object_set_new(ct, "ipv6", json_integer((json_int_t)a->gc.last.entries6));
	json_object_set_new(ct, "capacity_per_family", json_integer(a->dp.ct_size));
	json_object_set_new(ct, "expired_total", json_integer((json_int_t)a->gc.expired_total));
	ep_stats_drops(a->dp.maps.drops, drops);
	for (int r = 0; r < EP_DROP_MAX; r++)
		json_object_set_new(jd, ep_drop_names[r], json_integer((json_int_t)drops[r].packets));

	json_object_set_new(dp, "bpffs", json_string(a->dp.root));
	json_object_set_new(dp, "xdp_mode",
			    json_string(a->cfg.datapath.xdp_mode == EP_XDP_SKB ? "skb" : "native"));
	json_object_set_new(dp, "forwarding",
			    json_string(a->cfg.datapath.forwarding == EP_FWD_REDIRECT ? "redirect"
											: "stack"));
	json_object_set_new(dp, "interfaces", ifaces);
	json_object_set_new(dp, "conntrack", ct);
	json_object_set_new(dp, "drops", jd);
	return dp;
}

json_t *ep_status_dns(const struct ep_agent *a)
{
	json_t *o = json_object(), *ups;
	char ip[EP_IP_STRLEN];

	if (!a->cfg.dns.configured) {
		json_object_set_new(o, "mode", json_string("not configured"));
		return o;
	}
	ups = json_array();
	for (size_t i = 0; i < a->cfg.dns.n_upstreams; i++)
		json_array_append_new(ups, json_string(ep_ip_str(&a->cfg.dns.upstreams[i], ip, sizeof(ip))));
	json_object_set_new(o, "mode", json_string("upstream"));
	json_object_set_new(o, "upstreams", ups);
	if (a->failover) {
		json_t *fo = ep_dns_failover_status(a->failover);

		json_object_set(o, "mode", json_object_get(fo, "mode"));
		json_object_set(o, "state", json_object_get(fo, "state"));
		json_object_set_new(o, "failover", fo);
	}
	json_object_set_new(o, "cache", a->cache ? ep_dns_cache_status(a->cache) : json_null());
	return o;
}

json_t *ep_status_summary(const struct ep_agent *a)
{
	json_t *o = json_object(), *cfg = json_object(), *svc = json_object();
	size_t n_bes = 0;

	for (size_t i = 0; i < a->svcs.n_svcs; i++)
		n_bes += a->svcs.svcs[i].n_bes;
	json_object_set_new(cfg, "path", json_string(a->opts.config_path));
	json_object_set_new(cfg, "reloads_ok", json_integer((json_int_t)a->reloads_ok));
	json_object_set_new(cfg, "reloads_failed", json_integer((json_int_t)a->reloads_failed));
	json_object_set_new(cfg, "last_reload_at", json_real(a->last_reload_at));
	json_object_set_new(cfg, "last_reload_error",
			    a->last_reload_error[0] ? json_string(a->last_reload_error) : json_null());
	json_object_set_new(svc, "count", json_integer((json_int_t)a->svcs.n_svcs));
	json_object_set_new(svc, "backends", json_integer((json_int_t)n_bes));

	json_object_set_new(o, "node", json_string(a->cfg.node_name));
	json_object_set_new(o, "version", json_string(EP_VERSION));
	json_object_set_new(o, "uptime_seconds", json_real((double)(ep_now_ns() - a->start_ns) / 1e9));
	json_object_set_new(o, "ready", json_boolean(a->ready));
	json_object_set_new(o, "config", cfg);
	json_object_set_new(o, "datapath", datapath_json(a));
	json_object_set_new(o, "services", svc);
	json_object_set_new(o, "dns", ep_status_dns(a));
	/* The same per-set objects as `edgeplane certs`. */
	{
		json_t *c = ep_certs_status(a->certs);

		json_object_set(o, "certs", json_object_get(c, "sets"));
		json_decref(c);
	}
	return o;
}
