/* See svc_cfg.h. */
#include "svc_cfg.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <stdio.h>
#include <string.h>

#include "frames.h"

static struct ep_cfg_service svcs[SVC_CFG_MAX_SVC];
static struct ep_cfg_backend bes[SVC_CFG_MAX_SVC][SVC_CFG_MAX_BE];

void svc_cfg_reset(struct ep_config *cfg, uint32_t maglev_table_size)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->node_name, sizeof(cfg->node_name), "test");
	cfg->datapath.maglev_table_size = maglev_table_size;
	cfg->datapath.conntrack_size = EP_CT_DEFAULT_SIZE;
	cfg->services = svcs;
}

struct ep_cfg_service *svc_cfg_add(struct ep_config *cfg, const char *name, const char *vip,
				   uint16_t port, uint8_t proto)
{
	struct ep_cfg_service *s = &svcs[cfg->n_services];

	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->vip = IP(vip);
	s->port = port;
	s->proto = proto;
	s->backends = bes[cfg->n_services];
	cfg->n_services++;
	return s;
}

void svc_cfg_add_be(struct ep_cfg_service *s, const char *addr, uint16_t port, uint32_t weight)
{
	struct ep_cfg_backend *b = &s->backends[s->n_backends++];

	memset(b, 0, sizeof(*b));
	b->addr = IP(addr);
	b->port = port;
	b->weight = weight;
}

void svc_cfg_add_web_dns(struct ep_config *cfg)
{
	static const struct {
		const char *name, *vip, *be[3];
		uint16_t port;
		uint8_t proto;
	} std[] = {
		{"web4", "10.0.0.100", {"10.1.0.11", "10.1.0.12", "10.1.0.13"}, 80, P_TCP},
		{"dns4", "10.0.0.100", {"10.1.0.11", "10.1.0.12", "10.1.0.13"}, 53, P_UDP},
		{"web6", "fd00::100", {"fd00:1::11", "fd00:1::12", "fd00:1::13"}, 80, P_TCP},
		{"dns6", "fd00::100", {"fd00:1::11", "fd00:1::12", "fd00:1::13"}, 53, P_UDP},
	};

	for (size_t i = 0; i < sizeof(std) / sizeof(std[0]); i++) {
		struct ep_cfg_service *s = svc_cfg_add(cfg, std[i].name, std[i].vip, std[i].port,
						       std[i].proto);

		for (int b = 0; b < 3; b++)
			svc_cfg_add_be(s, std[i].be[b], 8080, 1);
	}
}

struct ep_cfg_service *svc_cfg_find(struct ep_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_services; i++)
		if (!strcmp(cfg->services[i].name, name))
			return &cfg->services[i];
	return NULL;
}

struct ep_backend_stats backend_stats_read(int map_fd, uint32_t id, int ncpu)
{
	struct ep_backend_stats v[ncpu], sum = {0};

	if (bpf_map_lookup_elem(map_fd, &id, v) == 0) {
		for (int c = 0; c < ncpu; c++) {
			sum.packets += v[c].packets;
			sum.bytes += v[c].bytes;
			sum.flows += v[c].flows;
			sum.rnat_packets += v[c].rnat_packets;
		}
	}
	return sum;
}

bool backend_id_of(int backends_fd, const struct ep_ip *addr, uint16_t port, uint32_t *bid)
{
	for (uint32_t id = 0; id < 1024; id++) {
		struct ep_backend be;

		if (!bpf_map_lookup_elem(backends_fd, &id, &be) && (be.flags & EP_BE_F_VALID) &&
		    be.port == htons(port) && be.family == addr->family &&
		    !memcmp(be.addr, addr->addr, sizeof(be.addr))) {
			*bid = id;
			return true;
		}
	}
	return false;
}
