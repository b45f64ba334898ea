/*
 * Traffic mirroring, the agent's side: tc/tc_mirror.bpf.c loaded with its
 * maps pinned next to the load balancer's, attached to TC ingress of every
 * configured interface while at least one service is mirrored (and detached
 * when none is, so an unmirrored node pays nothing), the VXLAN devices of
 * VXLAN targets (mirror_vxlan.c), one ep_mirror_cfg entry per service.
 *
 * The filter sits in a slot of its own (handle/priority 0xd0), ahead of DNS
 * observation (0xe0) and reverse NAT (0xe9) on the same hook: it must see
 * a backend's reply before reverse NAT rewrites and redirects it, and it
 * hands every packet on (TC_ACT_UNSPEC). Like the other slots it is
 * recognised by program name, so a restarted agent replaces exactly its own
 * filter and never touches anybody else's.
 */
#include "mirror.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conntrack.h"
#include "datapath.h"
#include "log.h"
#include "mirror_int.h"
#include "pins.h"
#include "services.h"
#include "stats.h"
#include "strbuf.h"
#include "tc_mirror.skel.h"
#include "tc_slot.h"

static const struct ep_tc_slot MIRROR_SLOT = {0xd0, 0xd0, "ep_tc_mirror", "mirroring"};

const char *const ep_mirror_drop_names[EP_MIRROR_DROP_MAX] = EP_MIRROR_DROP_NAMES;

struct vxdev {
	char name[IFNAMSIZ];
	struct ep_ip remote;
	uint32_t vni;
	uint16_t port;
};

struct ep_mirror {
	struct tc_mirror *skel;
	int prog_fd, cfg_fd, stats_fd;
	/* interfaces the program is attached to */
	int *ifindex;
	char (*ifname)[IFNAMSIZ];
	size_t n_if;
	/* VXLAN devices this agent made */
	struct vxdev *vx;
	size_t n_vx;
	/* ep_mirror_cfg entries written by the last apply */
	uint32_t *ids;
	size_t n_ids;
	bool swept; /* strays of a predecessor removed */
};

uint64_t ep_mirror_burst(uint64_t rate)
{
	uint64_t b = rate / 10;

	return b < 2 * 65536 ? 2 * 65536 : b;
}

/* ---- TC ------------------------------------------------------------------ */

static void tc_detach(int ifindex, const char *name)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = MIRROR_SLOT.handle, .priority = MIRROR_SLOT.prio);

	ep_log_lib_capture(true);
	if (ep_tc_slot_is_ours(ifindex, BPF_TC_INGRESS, &MIRROR_SLOT)) {
		if (bpf_tc_detach(&hook, &opts))
			log_warn("cannot detach TC mirroring from %s", name);
		else
			log_info("detached TC mirroring from %s", name);
	}
	ep_log_lib_capture(false);
	ep_log_lib_flush(EP_LOG_DEBUG);
}

/* First apply: a predecessor may have left the filter on interfaces that
 * are no longer configured, and VXLAN devices nobody wants now. */
static void sweep_strays(const struct ep_datapath *dp)
{
	struct if_nameindex *all = if_nameindex(), *i;

	if (!all)
		return;
	for (i = all; i->if_index; i++) {
		bool configured = false;

		for (size_t k = 0; k < dp->n_ifaces; k++)
			if (dp->ifaces[k].ifindex == (int)i->if_index)
				configured = true;
		if (!strncmp(i->if_name, EP_MIRROR_VXLAN_PREFIX, strlen(EP_MIRROR_VXLAN_PREFIX)))
			continue; /* kept or removed by the VXLAN sync */
		if (!configured)
			tc_detach((int)i->if_index, i->if_name);
	}
	if_freenameindex(all);
}

static int sync_attach(struct ep_mirror *m, const struct ep_datapath *dp, bool want, char *err,
		       size_t errlen)
{
	size_t n = want ? dp->n_ifaces : 0;
	int *idx = calloc(n ? n : 1, sizeof(*idx));
	char(*names)[IFNAMSIZ] = calloc(n ? n : 1, IFNAMSIZ);
	int rc = 0;

	if (!idx || !names) {
		free(idx);
		free(names);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->n_if; i++) {
		bool kept = false;

		for (size_t k = 0; k < n; k++)
			if (dp->ifaces[k].ifindex == m->ifindex[i])
				kept = true;
		if (!kept)
			tc_detach(m->ifindex[i], m->ifname[i]);
	}
	for (size_t k = 0; k < n; k++) {
		idx[k] = dp->ifaces[k].ifindex;
		snprintf(names[k], IFNAMSIZ, "%s", dp->ifaces[k].name);
		rc = ep_tc_slot_attach(idx[k], BPF_TC_INGRESS, &MIRROR_SLOT, m->prog_fd);
		if (rc) {
			snprintf(err, errlen, "cannot attach TC mirroring to %s: %s", names[k],
				 strerror(-rc));
			n = k;
			break;
		}
	}
	free(m->ifindex);
	free(m->ifname);
	m->ifindex = idx;
	m->ifname = names;
	m->n_if = n;
	return rc;
}

/* ---- VXLAN devices -------------------------------------------------------- */

static const struct vxdev *vx_find(const struct vxdev *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

/* Makes the agent's VXLAN devices exactly those cfg's targets need. */
static int sync_vxlan(struct ep_mirror *m, const struct ep_config *cfg, char *err, size_t errlen)
{
	struct vxdev *want = calloc(cfg->n_services ? cfg->n_services : 1, sizeof(*want));
	size_t n = 0;
	char a[EP_IP_STRLEN];
	int rc = 0;

	if (!want) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct ep_cfg_mirror *mc = &cfg->services[i].mirror;
		char name[IFNAMSIZ];

		if (!mc->configured || !mc->to.vxlan.present)
			continue;
		ep_mirror_vxlan_name(mc->to.vxlan.vni, mc->to.vxlan.port, name);
		if (vx_find(want, n, name))
			continue;
		snprintf(want[n].name, IFNAMSIZ, "%s", name);
		want[n].remote = mc->to.vxlan.remote;
		want[n].vni = mc->to.vxlan.vni;
		want[n].port = mc->to.vxlan.port;
		n++;
	}
	/* Devices no longer wanted, and a predecessor's we do not know. */
	for (size_t i = 0; i < m->n_vx; i++)
		if (!vx_find(want, n, m->vx[i].name) && !ep_mirror_vxlan_del(m->vx[i].name))
			log_info("mirror: removed VXLAN device %s", m->vx[i].name);
	if (!m->swept) {
		struct if_nameindex *all = if_nameindex(), *i;

		for (i = all; i && i->if_index; i++)
			if (!strncmp(i->if_name, EP_MIRROR_VXLAN_PREFIX,
				     strlen(EP_MIRROR_VXLAN_PREFIX)) &&
			    !vx_find(want, n, i->if_name) && !ep_mirror_vxlan_del(i->if_name))
				log_info("mirror: removed stray VXLAN device %s", i->if_name);
		if (all)
			if_freenameindex(all);
	}
	for (size_t i = 0; i < n; i++) {
		const struct vxdev *old = vx_find(m->vx, m->n_vx, want[i].name);

		if (old && ep_ip_eq(&old->remote, &want[i].remote) && if_nametoindex(want[i].name))
			continue;
		rc = ep_mirror_vxlan_add(want[i].name, &want[i].remote, want[i].vni, want[i].port);
		if (rc) {
			snprintf(err, errlen, "mirror: cannot create VXLAN device %s to %s: %s",
				 want[i].name, ep_ip_str(&want[i].remote, a, sizeof(a)),
				 strerror(-rc));
			n = i;
			break;
		}
		log_info("mirror: VXLAN device %s sends to %s", want[i].name,
			 ep_ip_str(&want[i].remote, a, sizeof(a)));
	}
	free(m->vx);
	m->vx = want;
	m->n_vx = n;
	return rc;
}

/* ---- apply ------------------------------------------------------------------- */

static int load(struct ep_mirror *m, const struct ep_datapath *dp, char *err, size_t errlen)
{
	int rc;

	m->skel = tc_mirror__open();
	if (!m->skel) {
		snprintf(err, errlen, "cannot open the mirroring object: %s", strerror(errno));
		return -errno;
	}
	rc = ep_dp_pin_maps(m->skel->obj, dp->root, dp->ct_size, err, errlen);
	if (!rc && (rc = tc_mirror__load(m->skel)))
		snprintf(err, errlen, "cannot load the mirroring object: %s", strerror(-rc));
	if (rc) {
		tc_mirror__destroy(m->skel);
		m->skel = NULL;
		return rc;
	}
	m->prog_fd = bpf_program__fd(m->skel->progs.ep_tc_mirror);
	m->cfg_fd = bpf_map__fd(m->skel->maps.ep_mirror_cfg);
	m->stats_fd = bpf_map__fd(m->skel->maps.ep_mirror_stats);
	ep_dp_pin_progs(m->skel->obj, dp->root);
	/* A predecessor's entries: the first write_cfg clears those of
	 * services that are not mirrored any more. */
	for (uint32_t id = 0; id < EP_MAX_SERVICES; id++) {
		struct ep_mirror_cfg v;

		if (bpf_map_lookup_elem(m->cfg_fd, &id, &v) || !v.ifindex)
			continue;
		uint32_t *ids = realloc(m->ids, (m->n_ids + 1) * sizeof(*ids));

		if (!ids)
			break;
		m->ids = ids;
		m->ids[m->n_ids++] = id;
	}
	return 0;
}

static int write_cfg(struct ep_mirror *m, const struct ep_services *svcs,
		     const struct ep_config *cfg, char *err, size_t errlen)
{
	uint32_t *ids = calloc(cfg->n_services ? cfg->n_services : 1, sizeof(*ids));
	size_t n = 0;

	if (!ids) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Resolve every target before writing anything. */
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct ep_cfg_mirror *mc = &cfg->services[i].mirror;
		const char *ifn = mc->to.interface;
		char vxname[IFNAMSIZ];

		if (!mc->configured)
			continue;
		if (mc->to.vxlan.present) {
			ep_mirror_vxlan_name(mc->to.vxlan.vni, mc->to.vxlan.port, vxname);
			ifn = vxname;
		}
		if (!if_nametoindex(ifn)) {
			snprintf(err, errlen,
				 "services[%zu].mirror.to: no interface named '%s' in this network "
				 "namespace",
				 i, ifn);
			free(ids);
			return -ENODEV;
		}
	}
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct ep_cfg_mirror *mc = &cfg->services[i].mirror;
		const struct ep_svc_state *st = ep_services_find(svcs, cfg->services[i].name);
		struct ep_mirror_cfg v = {};
		char vxname[IFNAMSIZ];

		if (!mc->configured || !st)
			continue;
		if (mc->to.vxlan.present)
			ep_mirror_vxlan_name(mc->to.vxlan.vni, mc->to.vxlan.port, vxname);
		v.ifindex = if_nametoindex(mc->to.vxlan.present ? vxname : mc->to.interface);
		v.percent_bp = (__u16)mc->percent_bp;
		v.rate_bps = mc->max_bytes_per_s;
		v.burst_bytes = ep_mirror_burst(mc->max_bytes_per_s);
		if (bpf_map_update_elem(m->cfg_fd, &st->id, &v, BPF_ANY)) {
			snprintf(err, errlen, "cannot write the mirror of service '%s': %s",
				 st->name, strerror(errno));
			free(ids);
			return -errno;
		}
		ids[n++] = st->id;
	}
	/* Services no longer mirrored (or gone: their id may be reused). */
	for (size_t i = 0; i < m->n_ids; i++) {
		bool kept = false;
		struct ep_mirror_cfg zero = {};

		for (size_t k = 0; k < n; k++)
			if (ids[k] == m->ids[i])
				kept = true;
		if (!kept)
			bpf_map_update_elem(m->cfg_fd, &m->ids[i], &zero, BPF_ANY);
	}
	free(m->ids);
	m->ids = ids;
	m->n_ids = n;
	return 0;
}

int ep_mirror_apply(struct ep_mirror **mp, struct ep_datapath *dp, const struct ep_services *svcs,
		    const struct ep_config *cfg, char *err, size_t errlen)
{
	struct ep_mirror *m = *mp;
	bool any = false;
	int rc;

	for (size_t i = 0; i < cfg->n_services; i++)
		any |= cfg->services[i].mirror.configured;
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		*mp = m;
	}
	if (!m->swept) {
		/* A predecessor may have attached to any interface. */
		sweep_strays(dp);
		free(m->ifindex);
		free(m->ifname);
		m->ifindex = calloc(dp->n_ifaces ? dp->n_ifaces : 1, sizeof(*m->ifindex));
		m->ifname = calloc(dp->n_ifaces ? dp->n_ifaces : 1, IFNAMSIZ);
		for (size_t i = 0; m->ifindex && m->ifname && i < dp->n_ifaces; i++) {
			m->ifindex[i] = dp->ifaces[i].ifindex;
			snprintf(m->ifname[i], IFNAMSIZ, "%s", dp->ifaces[i].name);
		}
		m->n_if = m->ifindex && m->ifname ? dp->n_ifaces : 0;
	}
	/* Loaded on first use only: a node that never mirrors never loads it. */
	if (!m->skel && any) {
		rc = load(m, dp, err, errlen);
		if (rc)
			return rc;
	}
	rc = sync_vxlan(m, cfg, err, errlen);
	m->swept = true;
	if (!rc && m->skel)
		rc = write_cfg(m, svcs, cfg, err, errlen);
	/* Attached only while something is mirrored: a node without mirrors
	 * runs no extra program. */
	if (!rc)
		rc = sync_attach(m, dp, any && m->skel, err, errlen);
	return rc;
}

/* ---- counters ----------------------------------------------------------- */

int ep_mirror_stats_read(int fd, uint32_t svc_id, struct ep_mirror_stats *sum)
{
	return ep_stats_percpu_sum(fd, &svc_id, sum, sizeof(*sum));
}

static void label(struct ep_strbuf *b, const char *metric, const char *svc)
{
	ep_sb_printf(b, "edgeplane_%s{service=\"", metric);
	ep_sb_label(b, svc);
	ep_sb_printf(b, "\"");
}

void ep_mirror_metrics(struct ep_mirror *m, const struct ep_services *svcs, struct ep_strbuf *b)
{
	struct ep_mirror_stats *s = calloc(svcs->n_svcs ? svcs->n_svcs : 1, sizeof(*s));

	if (!s)
		return;
	for (size_t i = 0; m && m->skel && i < svcs->n_svcs; i++)
		ep_mirror_stats_read(m->stats_fd, svcs->svcs[i].id, &s[i]);
	ep_sb_printf(b, "# HELP edgeplane_mirror_packets_total Packets of sampled flows cloned to "
			"the service's mirror target.\n# TYPE edgeplane_mirror_packets_total counter\n");
	for (size_t i = 0; i < svcs->n_svcs; i++) {
		label(b, "mirror_packets_total", svcs->svcs[i].name);
		ep_sb_printf(b, "} %llu\n", (unsigned long long)s[i].packets);
	}
	ep_sb_printf(b, "# HELP edgeplane_mirror_bytes_total Bytes of the cloned packets (frames "
			"as received, before any encapsulation).\n"
			"# TYPE edgeplane_mirror_bytes_total counter\n");
	for (size_t i = 0; i < svcs->n_svcs; i++) {
		label(b, "mirror_bytes_total", svcs->svcs[i].name);
		ep_sb_printf(b, "} %llu\n", (unsigned long long)s[i].bytes);
	}
	ep_sb_printf(b, "# HELP edgeplane_mirror_drops_total Packets of sampled flows not cloned, "
			"by reason (rate_limit: over max_bytes_per_s).\n"
			"# TYPE edgeplane_mirror_drops_total counter\n");
	for (size_t i = 0; i < svcs->n_svcs; i++)
		for (int r = 0; r < EP_MIRROR_DROP_MAX; r++) {
			label(b, "mirror_drops_total", svcs->svcs[i].name);
			ep_sb_printf(b, ",reason=\"%s\"} %llu\n", ep_mirror_drop_names[r],
				     (unsigned long long)s[i].drops[r]);
		}
	free(s);
}

/* ---- shutdown ------------------------------------------------------------ */

void ep_mirror_detach_all(struct ep_mirror *m, struct ep_datapath *dp)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_if; i++)
		tc_detach(m->ifindex[i], m->ifname[i]);
	m->n_if = 0;
	for (size_t i = 0; i < m->n_vx; i++)
		ep_mirror_vxlan_del(m->vx[i].name);
	m->n_vx = 0;
	/* The pins go with the datapath's (ep_datapath_detach_all). */
}

void ep_mirror_free(struct ep_mirror *m)
{
	if (!m)
		return;
	if (m->skel)
		tc_mirror__destroy(m->skel);
	free(m->ifindex);
	free(m->ifname);
	free(m->vx);
	free(m->ids);
	free(m);
}
