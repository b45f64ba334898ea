/*
 * services[].mirror: which share of a service's flows is cloned, where to
 * (a local interface, or VXLAN to a collector) and the byte rate cap. The
 * table is hooked into the service schema (agent/lb/services_config.c); the
 * rules across keys run from the services section's check.
 */
#include <stdio.h>
#include <string.h>

#include "config_schema.h"
#include "edgeplane_abi.h"
#include "mirror.h"

#define VXLAN_VNI_MAX 16777215
#define DEFAULT_RATE 10000000u /* 10 MB/s: the docs' example; an analyzer rarely needs more */

static const struct ep_cfg_field vxlan_fields[] = {
	{ .key = "remote", .kind = EP_CFG_IP, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_mirror, to.vxlan.remote) },
	{ .key = "vni", .kind = EP_CFG_INT, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_mirror, to.vxlan.vni), .min = 0, .max = VXLAN_VNI_MAX,
	  .noun = "a VXLAN network identifier" },
	{ .key = "port", .kind = EP_CFG_INT, EP_CFG_MEMBER(struct ep_cfg_mirror, to.vxlan.port),
	  .min = 1, .max = 65535 },
};

/* Offsets are from struct ep_cfg_mirror: the nested tables below all store
 * into it (their off is relative to the mirror struct, through to.). */
static const struct ep_cfg_schema vxlan_schema = {
	.what = "a mapping (remote, vni, port)",
	.fields = vxlan_fields,
	.n_fields = EP_CFG_ARRAY_LEN(vxlan_fields),
};

static const struct ep_cfg_field to_fields[] = {
	{ .key = "interface", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_mirror, to.interface),
	  .min = 1, .max = IFNAMSIZ - 1,
	  .expect = "an interface name (1-15 characters of A-Z a-z 0-9 _ . @ -)",
	  .valid_str = ep_cfg_valid_ifname },
	{ .key = "vxlan", .kind = EP_CFG_MAP, .off = 0, .size = sizeof(struct ep_cfg_mirror),
	  .sub = &vxlan_schema, .has_present = true,
	  .present_off = offsetof(struct ep_cfg_mirror, to.vxlan.present) },
};

static const struct ep_cfg_schema to_schema = {
	.what = "a mapping with one of interface, vxlan",
	.fields = to_fields,
	.n_fields = EP_CFG_ARRAY_LEN(to_fields),
};

static const struct ep_cfg_field mirror_fields[] = {
	{ .key = "percent", .kind = EP_CFG_PERCENT, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_mirror, percent_bp) },
	{ .key = "to", .kind = EP_CFG_MAP, .required = true, .off = 0,
	  .size = sizeof(struct ep_cfg_mirror), .sub = &to_schema },
	{ .key = "max_bytes_per_s", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_mirror, max_bytes_per_s), .min = 1000, .max = 4000000000LL,
	  .noun = "a byte rate" },
};

const struct ep_cfg_schema ep_cfg_mirror_schema = {
	.what = "a mapping (percent, to, max_bytes_per_s)",
	.fields = mirror_fields,
	.n_fields = EP_CFG_ARRAY_LEN(mirror_fields),
};

void ep_cfg_mirror_check(struct ep_cfg_ctx *c, struct ep_config *cfg)
{
	char key[96], a[EP_IP_STRLEN];

	for (size_t i = 0; i < cfg->n_services; i++) {
		struct ep_cfg_mirror *m = &cfg->services[i].mirror;

		if (!m->configured)
			continue;
		snprintf(key, sizeof(key), "services[%zu].mirror", i);
		m->line = ep_cfg_line(c, key, cfg->services[i].line);
		if (!m->max_bytes_per_s)
			m->max_bytes_per_s = DEFAULT_RATE;
		if (m->to.vxlan.present && !m->to.vxlan.port)
			m->to.vxlan.port = 4789;
		snprintf(key, sizeof(key), "services[%zu].mirror.to", i);
		if (!ep_cfg_has_error(c, key) && !!m->to.interface[0] == m->to.vxlan.present)
			ep_cfg_err(c, ep_cfg_line(c, key, m->line), key,
				   "give exactly one of interface, vxlan");
		/* XDP_REDIRECT hands packets to the next device past every TC
		 * hook: the client's side of a flow would never be seen. */
		if (cfg->datapath.forwarding == EP_FWD_REDIRECT)
			ep_cfg_err(c, m->line, key,
				   "mirroring needs datapath.forwarding: stack (redirected packets "
				   "skip the TC hook that clones them)");
		/* A clone sent on lo comes straight back in as received traffic,
		 * and the node would route copies of its clients' packets. */
		if (!strcmp(m->to.interface, "lo")) {
			snprintf(key, sizeof(key), "services[%zu].mirror.to.interface", i);
			ep_cfg_err(c, ep_cfg_line(c, key, m->line), key,
				   "lo cannot be a mirror target: the clones would come back in as "
				   "traffic to this node");
		}
		for (size_t k = 0; m->to.interface[0] && k < cfg->n_ifaces; k++)
			if (!strcmp(cfg->ifaces[k].name, m->to.interface)) {
				snprintf(key, sizeof(key), "services[%zu].mirror.to.interface", i);
				ep_cfg_err(c, ep_cfg_line(c, key, m->line), key,
					   "'%s' is interfaces[%zu]; a mirror target must be an "
					   "interface the datapath does not serve",
					   m->to.interface, k);
			}
		/* One VXLAN device per VNI and port: the kernel refuses a second
		 * one, so two services sharing them must agree on the collector. */
		for (size_t j = 0; m->to.vxlan.present && j < i; j++) {
			const struct ep_cfg_mirror *o = &cfg->services[j].mirror;

			if (!o->configured || !o->to.vxlan.present || o->to.vxlan.vni != m->to.vxlan.vni ||
			    o->to.vxlan.port != m->to.vxlan.port || ep_ip_eq(&o->to.vxlan.remote,
									      &m->to.vxlan.remote))
				continue;
			snprintf(key, sizeof(key), "services[%zu].mirror.to.vxlan.remote", i);
			ep_cfg_err(c, ep_cfg_line(c, key, m->line), key,
				   "VNI %u port %u already goes to %s (services[%zu]); one VNI and "
				   "port have one collector",
				   m->to.vxlan.vni, m->to.vxlan.port,
				   ep_ip_str(&o->to.vxlan.remote, a, sizeof(a)), j);
			break;
		}
	}
}
