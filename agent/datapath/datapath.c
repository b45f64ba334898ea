/*
 * The datapath's life cycle: open (pins reused or created, ABI checked),
 * interfaces synced to the config, DNS enabled and disabled, detached or
 * closed. The kernel-facing work lives next door, one file per interface to
 * the kernel - pins.c (bpffs), xdp_attach.c (libxdp), tc_attach.c (clsact),
 * sock_hooks.c (cgroup links) - so this file reads as the order of things:
 * what runs first, what is undone when a step fails, what survives the
 * agent (docs/datapath.md).
 */
#include "datapath_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "map_prune.h"
#include "sock_dns.skel.h"
#include "tc_dns.skel.h"
#include "tc_health.skel.h"
#include "tc_rnat.skel.h"
#include "util.h"

/* The flow health tap shares the load balancer's pinned maps and pins its
 * own; it is always loaded: which services it watches is a map entry. */
static int health_open(struct ep_datapath *dp, char *err, size_t errlen)
{
	int rc;

	dp->health_skel = tc_health__open();
	if (!dp->health_skel) {
		snprintf(err, errlen, "cannot open the flow health object: %s", strerror(errno));
		return -errno;
	}
	rc = ep_dp_pin_maps(dp->health_skel->obj, dp->root, dp->ct_size, err, errlen);
	if (!rc && (rc = tc_health__load(dp->health_skel)))
		snprintf(err, errlen, "cannot load the flow health object: %s", strerror(-rc));
	if (rc) {
		tc_health__destroy(dp->health_skel);
		dp->health_skel = NULL;
		return rc;
	}
	dp->health = (struct ep_dp_health_fds){
		.svc = bpf_map__fd(dp->health_skel->maps.ep_health_svc),
		.stats = bpf_map__fd(dp->health_skel->maps.ep_health_stats),
		.pend = bpf_map__fd(dp->health_skel->maps.ep_health_pend),
		.state = bpf_map__fd(dp->health_skel->maps.ep_canary_state),
		.cfg = bpf_map__fd(dp->health_skel->maps.ep_health_cfg),
	};
	dp->health_fwd_fd = bpf_program__fd(dp->health_skel->progs.ep_tc_health_fwd);
	dp->health_rev_fd = bpf_program__fd(dp->health_skel->progs.ep_tc_health_rev);
	ep_dp_pin_progs(dp->health_skel->obj, dp->root);
	return 0;
}

int ep_datapath_open(struct ep_datapath *dp, const struct ep_cfg_datapath *cfg, char *err,
		     size_t errlen)
{
	int rc;

	memset(dp, 0, sizeof(*dp));
	dp->rnat_in_fd = dp->rnat_eg_fd = dp->dns_in_fd = dp->dns_eg_fd = -1;
	dp->health_fwd_fd = dp->health_rev_fd = -1;
	snprintf(dp->root, sizeof(dp->root), "%s", cfg->bpffs);
	dp->xdp_mode = cfg->xdp_mode;
	dp->ct_size = cfg->conntrack_size;
	dp->xdp_build_id = ep_dp_xdp_build_id();

	rc = ep_dp_ensure_bpffs(dp->root, err, errlen);
	if (rc)
		return rc;

	dp->tc_skel = tc_rnat__open();
	if (!dp->tc_skel) {
		snprintf(err, errlen, "cannot open the TC object: %s", strerror(errno));
		return -errno;
	}
	rc = ep_dp_pin_maps(dp->tc_skel->obj, dp->root, dp->ct_size, err, errlen);
	if (rc)
		goto fail;
	rc = tc_rnat__load(dp->tc_skel);
	if (rc) {
		snprintf(err, errlen,
			 "cannot load the TC object (maps pinned under %s/maps may come from an incompatible build): %s",
			 dp->root, strerror(-rc));
		goto fail;
	}
	rc = ep_map_fds_from_obj(dp->tc_skel->obj, &dp->maps);
	if (rc) {
		snprintf(err, errlen, "the TC object lacks a load balancer map");
		goto fail;
	}
	dp->rnat_in_fd = bpf_program__fd(dp->tc_skel->progs.ep_tc_rnat);
	dp->rnat_eg_fd = bpf_program__fd(dp->tc_skel->progs.ep_tc_rnat_egress);

	rc = ep_dp_check_abi(dp, err, errlen);
	if (rc)
		goto fail;
	ep_dp_remove_obsolete_pins(dp->root);
	ep_dp_pin_progs(dp->tc_skel->obj, dp->root);
	rc = health_open(dp, err, errlen);
	if (rc)
		goto fail;
	return 0;
fail:
	tc_rnat__destroy(dp->tc_skel);
	dp->tc_skel = NULL;
	return rc ? rc : -EINVAL;
}

/* ---- interfaces --------------------------------------------------------- */

static void detach_iface(struct ep_dp_iface *ifc)
{
	if (ifc->role == EP_ROLE_UPLINK)
		ep_dp_xdp_detach(ifc);
	ep_dp_tc_rnat_detach(ifc);
	ep_dp_tc_dns_detach(ifc);
	ep_dp_tc_health_detach(ifc);
}

/* The TC programs of an interface (XDP is attached after every interface's
 * TC, see ep_datapath_sync). */
static int attach_iface_tc(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			   size_t errlen)
{
	int rc = ep_dp_tc_rnat_attach(dp, ifc, err, errlen);

	if (rc)
		return rc;
	if (dp->health_skel && (rc = ep_dp_tc_health_attach(dp, ifc, err, errlen)))
		return rc;
	if (dp->dns_skel)
		return ep_dp_tc_dns_attach(dp, ifc, err, errlen);
	return 0;
}

/* First sync after start: programs may sit on interfaces that left the
 * config while no agent ran. Find and remove them. */
static void detach_strays(const struct ep_config *cfg)
{
	struct if_nameindex *all = if_nameindex(), *i;

	if (!all)
		return;
	for (i = all; i->if_index; i++) {
		bool configured = false;

		for (size_t k = 0; k < cfg->n_ifaces; k++)
			if (!strcmp(cfg->ifaces[k].name, i->if_name))
				configured = true;
		if (configured)
			continue;
		struct ep_dp_iface ifc = {.ifindex = (int)i->if_index};

		snprintf(ifc.name, sizeof(ifc.name), "%s", i->if_name);
		ifc.role = EP_ROLE_UPLINK;
		detach_iface(&ifc);
		ifc.role = EP_ROLE_PODS;
		detach_iface(&ifc);
	}
	if_freenameindex(all);
}

static bool tx_port_keep(const void *key, void *arg)
{
	const struct ep_datapath *dp = arg;

	for (size_t i = 0; i < dp->n_ifaces; i++)
		if ((__u32)dp->ifaces[i].ifindex == *(const __u32 *)key)
			return true;
	return false;
}

static int update_tx_ports(struct ep_datapath *dp)
{
	/* Rebuild: drop entries for interfaces we no longer serve. */
	ep_map_prune(dp->maps.tx_ports, sizeof(__u32), tx_port_keep, dp);
	for (size_t i = 0; i < dp->n_ifaces; i++) {
		__u32 idx = (__u32)dp->ifaces[i].ifindex;

		if (bpf_map_update_elem(dp->maps.tx_ports, &idx, &idx, BPF_ANY))
			log_warn("cannot add %s to the XDP redirect map: %s", dp->ifaces[i].name,
				 strerror(errno));
	}
	return 0;
}

static int attach_tc_all(struct ep_datapath *dp, struct ep_dp_iface *ifs, size_t n, char *err,
			 size_t errlen)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++)
		rc = attach_iface_tc(dp, &ifs[i], err, errlen);
	return rc;
}

static int sync_xdp_all(struct ep_datapath *dp, struct ep_dp_iface *ifs, size_t n, char *err,
			size_t errlen)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++)
		if (ifs[i].role == EP_ROLE_UPLINK)
			rc = ep_dp_xdp_sync(dp, &ifs[i], err, errlen);
	return rc;
}

int ep_datapath_sync_ifaces(struct ep_datapath *dp, const struct ep_config *cfg, char *err,
			    size_t errlen)
{
	struct ep_dp_iface *want;
	bool first = dp->ifaces == NULL;
	int rc = 0;

	want = calloc(cfg->n_ifaces ? cfg->n_ifaces : 1, sizeof(*want));
	if (!want) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Resolve every name before touching anything: a typo must not leave
	 * half the interfaces reconfigured. */
	for (size_t i = 0; i < cfg->n_ifaces; i++) {
		snprintf(want[i].name, sizeof(want[i].name), "%s", cfg->ifaces[i].name);
		want[i].role = cfg->ifaces[i].role;
		want[i].ifindex = (int)if_nametoindex(want[i].name);
		if (!want[i].ifindex) {
			snprintf(err, errlen, "interfaces[%zu]: no interface named '%s' in this network namespace",
				 i, want[i].name);
			free(want);
			return -ENODEV;
		}
	}
	if (first) {
		/* Querying interfaces without a clsact qdisc makes the kernel
		 * complain; that is expected here. */
		ep_log_lib_capture(true);
		detach_strays(cfg);
		ep_log_lib_capture(false);
		ep_log_lib_flush(EP_LOG_DEBUG);
	}
	/* Detach from interfaces that left the config or changed role. */
	for (size_t i = 0; i < dp->n_ifaces; i++) {
		bool kept = false;

		for (size_t k = 0; k < cfg->n_ifaces; k++)
			if (want[k].ifindex == dp->ifaces[i].ifindex && want[k].role == dp->ifaces[i].role)
				kept = true;
		if (!kept)
			detach_iface(&dp->ifaces[i]);
	}
	/* Reverse NAT everywhere before XDP on any uplink: on an upgrade, a new
	 * XDP program may rely on what only the new TC program understands
	 * (a SYN leaves a half-open record, not a conntrack entry), while an
	 * old XDP program next to a new TC program is fine. Except when the
	 * conntrack itself was replaced (removed by hand to resize it): then
	 * the old TC programs hold the only copy of the established flows, and
	 * keep translating their replies until the new XDP program has made
	 * those flows orphans that the new TC programs record again. */
	bool xdp_first = false;

	for (size_t i = 0; i < cfg->n_ifaces; i++)
		if (want[i].role == EP_ROLE_UPLINK && ep_dp_xdp_ct_replaced(dp, &want[i]))
			xdp_first = true;
	if (xdp_first)
		log_info("the pinned conntrack is new: XDP is replaced before reverse NAT, whose "
			 "programs still hold the old one");
	if (xdp_first)
		rc = sync_xdp_all(dp, want, cfg->n_ifaces, err, errlen);
	if (!rc)
		rc = attach_tc_all(dp, want, cfg->n_ifaces, err, errlen);
	if (!rc && !xdp_first)
		rc = sync_xdp_all(dp, want, cfg->n_ifaces, err, errlen);
	free(dp->ifaces);
	dp->ifaces = want;
	dp->n_ifaces = cfg->n_ifaces;
	update_tx_ports(dp);
	return rc;
}

int ep_datapath_set_forwarding(struct ep_datapath *dp, enum ep_forwarding fwd)
{
	struct ep_dp_config c = {};
	__u32 zero = 0;

	bpf_map_lookup_elem(dp->maps.config, &zero, &c);
	if (fwd == EP_FWD_REDIRECT)
		c.flags |= EP_CFG_F_XDP_REDIRECT;
	else
		c.flags &= ~EP_CFG_F_XDP_REDIRECT;
	c.abi_version = EP_ABI_VERSION;
	return bpf_map_update_elem(dp->maps.config, &zero, &c, BPF_ANY) ? -errno : 0;
}

/* ---- DNS ------------------------------------------------------------------ */

/* Forgets the DNS maps and programs: whatever the DNS objects pin, read
 * from freshly opened (not loaded) objects, since this also runs when this
 * agent never loaded them (a previous run did). Maps the load balancer
 * shares stay. */
static void dns_unpin(struct ep_datapath *dp)
{
	struct bpf_object *keep = dp->tc_skel ? dp->tc_skel->obj : NULL;
	struct tc_dns *tc = tc_dns__open();
	struct sock_dns *sock = tc ? sock_dns__open() : NULL;

	if (!tc || !sock) {
		log_warn("cannot open the DNS objects to remove their pins under %s: %s", dp->root,
			 strerror(errno));
	} else {
		/* Programs: only TC's are pinned; the socket hooks are links. */
		ep_dp_unpin(tc->obj, keep, dp->root, 1);
		ep_dp_unpin(sock->obj, keep, dp->root, 0);
	}
	sock_dns__destroy(sock);
	tc_dns__destroy(tc);
}

int ep_datapath_dns_enable(struct ep_datapath *dp, const char *runtime_dir, char *err,
			   size_t errlen)
{
	int rc;

	/* A reload: the TC side stays; the socket hooks follow cgroup_root. */
	if (dp->dns_skel) {
		rc = ep_dp_sock_hooks_attach(dp, runtime_dir, err, errlen);
		if (rc > 0)
			log_info("DNS: host sockets hooked at %s", dp->cgroup);
		return rc < 0 ? rc : 0;
	}
	dp->dns_skel = tc_dns__open();
	if (!dp->dns_skel) {
		snprintf(err, errlen, "cannot open the DNS object: %s", strerror(errno));
		return -errno;
	}
	rc = ep_dp_pin_maps(dp->dns_skel->obj, dp->root, dp->ct_size, err, errlen);
	if (!rc && (rc = tc_dns__load(dp->dns_skel)))
		snprintf(err, errlen, "cannot load the DNS object: %s", strerror(-rc));
	if (rc) {
		tc_dns__destroy(dp->dns_skel);
		dp->dns_skel = NULL;
		return rc;
	}
	dp->dns = (struct ep_dns_map_fds){
		.upstreams = bpf_map__fd(dp->dns_skel->maps.ep_dns_upstreams),
		.pending = bpf_map__fd(dp->dns_skel->maps.ep_dns_pending),
		.stats = bpf_map__fd(dp->dns_skel->maps.ep_dns_stats),
		.config = bpf_map__fd(dp->dns_skel->maps.ep_dns_config),
		.redir = bpf_map__fd(dp->dns_skel->maps.ep_dns_redir),
		.snap = bpf_map__fd(dp->dns_skel->maps.ep_dns_snap),
		.samples = bpf_map__fd(dp->dns_skel->maps.ep_dns_samples),
		.exempt = bpf_map__fd(dp->dns_skel->maps.ep_dns_exempt),
		.hstats = bpf_map__fd(dp->dns_skel->maps.ep_dns_hstats),
	};
	dp->dns_in_fd = bpf_program__fd(dp->dns_skel->progs.ep_tc_dns_ingress);
	dp->dns_eg_fd = bpf_program__fd(dp->dns_skel->progs.ep_tc_dns_egress);
	ep_dp_pin_progs(dp->dns_skel->obj, dp->root);
	for (size_t i = 0; i < dp->n_ifaces; i++) {
		rc = ep_dp_tc_dns_attach(dp, &dp->ifaces[i], err, errlen);
		if (rc)
			return rc;
	}
	rc = ep_dp_sock_hooks_attach(dp, runtime_dir, err, errlen);
	if (rc < 0)
		return rc;
	log_info("DNS observation attached to %zu interface(s); host sockets hooked at %s",
		 dp->n_ifaces, dp->cgroup);
	return 0;
}

void ep_datapath_dns_disable(struct ep_datapath *dp, bool remove_pins)
{
	for (size_t i = 0; i < dp->n_ifaces; i++)
		ep_dp_tc_dns_detach(&dp->ifaces[i]);
	ep_dp_sock_hooks_detach(dp);
	if (dp->dns_skel)
		tc_dns__destroy(dp->dns_skel);
	dp->dns_skel = NULL;
	dp->dns_in_fd = dp->dns_eg_fd = -1;
	memset(&dp->dns, 0, sizeof(dp->dns));
	if (remove_pins)
		dns_unpin(dp);
}

uint32_t ep_datapath_clock_now(void)
{
	return (uint32_t)(ep_coarse_ns() / 1000000000ULL);
}

int ep_datapath_publish_clock(struct ep_datapath *dp)
{
	struct ep_dp_config c = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(dp->maps.config, &zero, &c))
		return -errno;
	c.now_s = ep_datapath_clock_now();
	return bpf_map_update_elem(dp->maps.config, &zero, &c, BPF_ANY) ? -errno : 0;
}

int ep_datapath_detach_all(struct ep_datapath *dp)
{
	char path[PATH_MAX + 64];

	ep_datapath_dns_disable(dp, false);
	for (size_t i = 0; i < dp->n_ifaces; i++)
		detach_iface(&dp->ifaces[i]);
	for (const char *const *d = (const char *const[]){"maps", "progs", EP_DP_LINK_DIR, NULL}; *d;
	     d++) {
		snprintf(path, sizeof(path), "%s/%s", dp->root, *d);
		ep_rm_rf(path);
	}
	log_info("detached from every interface and removed the pins under %s", dp->root);
	return 0;
}

void ep_datapath_close(struct ep_datapath *dp)
{
	if (dp->dns_skel)
		tc_dns__destroy(dp->dns_skel);
	dp->dns_skel = NULL;
	if (dp->sock_skel)
		ep_dp_sock_hooks_close(dp);
	if (dp->health_skel)
		tc_health__destroy(dp->health_skel);
	dp->health_skel = NULL;
	if (dp->tc_skel)
		tc_rnat__destroy(dp->tc_skel);
	dp->tc_skel = NULL;
	free(dp->ifaces);
	dp->ifaces = NULL;
	dp->n_ifaces = 0;
}
