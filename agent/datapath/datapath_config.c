/*
 * Config sections of the datapath: datapath (pins, XDP mode, map sizes,
 * conntrack timeouts, the cgroup for socket hooks) and interfaces (which
 * device plays which role). The Maglev table must be prime because the
 * permutations need it (lb/maglev.c owns the test); that interfaces carry an
 * uplink whenever services exist is checked here, where roles are known.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "config_schema.h"
#include "edgeplane_abi.h"
#include "maglev.h"

#define DEFAULT_BPFFS "/sys/fs/bpf/edgeplane"
/* Keeps the duplicate-name check quadratic in something small. */
#define MAX_IFACES 256

static const struct ep_cfg_enum xdp_modes[] = {
	{ "native", EP_XDP_NATIVE },
	{ "skb", EP_XDP_SKB },
	{ NULL, 0 },
};

static const struct ep_cfg_enum fwd_modes[] = {
	{ "stack", EP_FWD_STACK },
	{ "redirect", EP_FWD_REDIRECT },
	{ NULL, 0 },
};

static const struct ep_cfg_enum roles[] = {
	{ "uplink", EP_ROLE_UPLINK },
	{ "pods", EP_ROLE_PODS },
	{ NULL, 0 },
};

static bool valid_prime(long long v, char *hint, size_t hintlen)
{
	long long lo = v - 1;

	if (ep_is_prime((uint32_t)v))
		return true;
	while (lo > 251 && !ep_is_prime((uint32_t)lo))
		lo--;
	if (lo >= 251)
		snprintf(hint, hintlen, " (not prime; nearest primes are %lld and %u)", lo,
			 ep_next_prime((uint32_t)v));
	else
		snprintf(hint, hintlen, " (not prime; the next prime is %u)",
			 ep_next_prime((uint32_t)v));
	return false;
}

static const struct ep_cfg_field datapath_fields[] = {
	{ .key = "bpffs", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_datapath, bpffs),
	  .min = 1, .max = PATH_MAX - 1, .expect = "an absolute path",
	  .valid_str = ep_cfg_valid_abspath },
	{ .key = "xdp_mode", .kind = EP_CFG_ENUM, EP_CFG_MEMBER(struct ep_cfg_datapath, xdp_mode),
	  .enums = xdp_modes },
	{ .key = "forwarding", .kind = EP_CFG_ENUM,
	  EP_CFG_MEMBER(struct ep_cfg_datapath, forwarding), .enums = fwd_modes },
	{ .key = "conntrack_size", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_datapath, conntrack_size), .min = 1024, .max = 16777216 },
	{ .key = "maglev_table_size", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_datapath, maglev_table_size), .min = 251,
	  .max = EP_MAGLEV_MAX_SIZE, .noun = "a prime number", .valid_int = valid_prime },
	{ .key = "conntrack_timeout_tcp_s", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_datapath, ct_timeout_tcp_s), .min = 1, .max = 604800 },
	{ .key = "conntrack_timeout_udp_s", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_datapath, ct_timeout_udp_s), .min = 1, .max = 86400 },
	{ .key = "cgroup_root", .kind = EP_CFG_STR,
	  EP_CFG_MEMBER(struct ep_cfg_datapath, cgroup_root), .min = 1, .max = PATH_MAX - 1,
	  .expect = "an absolute path", .valid_str = ep_cfg_valid_abspath },
};

_Static_assert(EP_CFG_ARRAY_LEN(datapath_fields) <= EP_CFG_MAX_FIELDS, "raise EP_CFG_MAX_FIELDS");

static const struct ep_cfg_schema datapath_schema = {
	.what = "a mapping (bpffs, xdp_mode, forwarding, ...)",
	.fields = datapath_fields,
	.n_fields = EP_CFG_ARRAY_LEN(datapath_fields),
};

static void datapath_defaults(struct ep_config *cfg)
{
	struct ep_cfg_datapath *d = &cfg->datapath;

	snprintf(d->bpffs, sizeof(d->bpffs), "%s", DEFAULT_BPFFS);
	d->xdp_mode = EP_XDP_NATIVE;
	d->forwarding = EP_FWD_STACK;
	d->conntrack_size = EP_CT_DEFAULT_SIZE;
	d->maglev_table_size = EP_MAGLEV_DEFAULT_SIZE;
	d->ct_timeout_tcp_s = 3600;
	d->ct_timeout_udp_s = 60;
}

const struct ep_cfg_section ep_cfg_datapath_section = {
	.field = { .key = "datapath", .kind = EP_CFG_MAP,
		   EP_CFG_MEMBER(struct ep_config, datapath), .sub = &datapath_schema },
	.defaults = datapath_defaults,
};

static const struct ep_cfg_field iface_fields[] = {
	{ .key = "name", .kind = EP_CFG_STR, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_iface, name), .min = 1, .max = IFNAMSIZ - 1,
	  .expect = "an interface name (1-15 characters of A-Z a-z 0-9 _ . @ -)",
	  .valid_str = ep_cfg_valid_ifname },
	{ .key = "role", .kind = EP_CFG_ENUM, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_iface, role), .enums = roles },
};

static const struct ep_cfg_schema iface_schema = {
	.what = "an interface mapping (name, role)",
	.fields = iface_fields,
	.n_fields = EP_CFG_ARRAY_LEN(iface_fields),
	.item_size = sizeof(struct ep_cfg_iface),
	.line_off = offsetof(struct ep_cfg_iface, line),
	.max_items = MAX_IFACES,
};

static void ifaces_check(struct ep_cfg_ctx *c, struct ep_config *cfg)
{
	char key[64];
	bool uplink = false;
	size_t i, j;

	for (i = 0; i < cfg->n_ifaces; i++) {
		const struct ep_cfg_iface *a = &cfg->ifaces[i];

		if (a->name[0] && a->role == EP_ROLE_UPLINK)
			uplink = true;
		for (j = 0; a->name[0] && j < i; j++) {
			if (strcmp(a->name, cfg->ifaces[j].name))
				continue;
			snprintf(key, sizeof(key), "interfaces[%zu].name", i);
			ep_cfg_err(c, ep_cfg_line(c, key, a->line), key,
				   "duplicate interface '%s' (also interfaces[%zu], line %d)", a->name,
				   j, cfg->ifaces[j].line);
			break;
		}
	}
	if (cfg->n_services && !uplink)
		ep_cfg_err(c, ep_cfg_line(c, "interfaces", ep_cfg_line(c, "services", 0)),
			   "interfaces",
			   "at least one interface with role uplink is required when services are "
			   "configured");
}

const struct ep_cfg_section ep_cfg_interfaces_section = {
	.field = { .key = "interfaces", .kind = EP_CFG_SEQ,
		   EP_CFG_MEMBER(struct ep_config, ifaces),
		   .count_off = offsetof(struct ep_config, n_ifaces), .sub = &iface_schema },
	.check = ifaces_check,
};
