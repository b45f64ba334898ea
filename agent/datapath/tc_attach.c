/*
 * TC (clsact) filters: reverse NAT on pods ingress and uplink egress, DNS
 * observation and redirect, and flow health, on both directions of every
 * interface.
 *
 * Our filters sit at fixed handle/priority pairs and are recognised by
 * program name prefix, so a restarted agent replaces exactly its own filter
 * in one BPF_TC_F_REPLACE (no packet sees a hook without it) and never
 * touches a filter somebody else put on the same qdisc (docs/datapath.md).
 */
#include "datapath_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tc_slot.h"

#define EP_TC_HANDLE 0xe9
#define EP_TC_PRIO 0xe9
#define EP_TC_PROG_PREFIX "ep_tc_rnat"

/* One filter slot per program. DNS runs first (lower priority number) and
 * passes on (TC_ACT_UNSPEC) what it does not consume, so reverse NAT still
 * sees every packet. */

static const struct ep_tc_slot TC_RNAT = {EP_TC_HANDLE, EP_TC_PRIO, EP_TC_PROG_PREFIX,
					  "reverse NAT"};
static const struct ep_tc_slot TC_DNS = {0xe0, 0xe0, "ep_tc_dns", "DNS observation"};
/* Flow health must see a backend's answer before reverse NAT rewrites its
 * source into the VIP (and redirects it): a number between the two. */
static const struct ep_tc_slot TC_HEALTH = {0xe4, 0xe4, "ep_tc_health", "flow health"};

int ep_tc_slot_attach(int ifindex, enum bpf_tc_attach_point where, const struct ep_tc_slot *slot,
		      int prog_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = slot->handle, .priority = slot->prio,
		    .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE);
	int rc;

	/* An existing clsact qdisc (ours from before, or anybody's) is fine;
	 * libbpf would still log the kernel's "Exclusivity flag on" for it. */
	ep_log_lib_capture(true);
	rc = bpf_tc_hook_create(&hook);
	ep_log_lib_capture(false);
	ep_log_lib_flush(rc && rc != -EEXIST ? EP_LOG_WARN : EP_LOG_DEBUG);
	if (rc && rc != -EEXIST)
		return rc;
	return bpf_tc_attach(&hook, &opts);
}

bool ep_tc_slot_is_ours(int ifindex, enum bpf_tc_attach_point where,
			const struct ep_tc_slot *slot)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = slot->handle, .priority = slot->prio);
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	bool ours;
	int fd;

	if (bpf_tc_query(&hook, &opts) || !opts.prog_id)
		return false;
	fd = bpf_prog_get_fd_by_id(opts.prog_id);
	if (fd < 0)
		return false;
	ours = !bpf_obj_get_info_by_fd(fd, &info, &len) &&
	       !strncmp(info.name, slot->prefix, strlen(slot->prefix));
	close(fd);
	return ours;
}

static void tc_detach(int ifindex, enum bpf_tc_attach_point where, const struct ep_tc_slot *slot,
		      const char *ifname)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = slot->handle, .priority = slot->prio);

	if (!ep_tc_slot_is_ours(ifindex, where, slot))
		return;
	if (bpf_tc_detach(&hook, &opts))
		log_warn("cannot detach TC %s from %s", slot->what, ifname);
	else
		log_info("detached TC %s (%s) from %s", slot->what,
			 where == BPF_TC_INGRESS ? "ingress" : "egress", ifname);
}

/* A program on both hooks of an interface, first a then b; the first error
 * stops it. */
static int tc_attach_both(const struct ep_dp_iface *ifc, const struct ep_tc_slot *slot,
			  enum bpf_tc_attach_point a, int a_fd, enum bpf_tc_attach_point b,
			  int b_fd, char *err, size_t errlen)
{
	int rc = ep_tc_slot_attach(ifc->ifindex, a, slot, a_fd);

	if (!rc)
		rc = ep_tc_slot_attach(ifc->ifindex, b, slot, b_fd);
	if (rc)
		snprintf(err, errlen, "cannot attach TC %s to %s: %s", slot->what, ifc->name,
			 strerror(-rc));
	return rc;
}

int ep_dp_tc_rnat_attach(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			 size_t errlen)
{
	int rc;

	if (ifc->role == EP_ROLE_UPLINK)
		rc = ep_tc_slot_attach(ifc->ifindex, BPF_TC_EGRESS, &TC_RNAT, dp->rnat_eg_fd);
	else
		rc = ep_tc_slot_attach(ifc->ifindex, BPF_TC_INGRESS, &TC_RNAT, dp->rnat_in_fd);
	if (rc)
		snprintf(err, errlen, "cannot attach TC reverse NAT to %s: %s", ifc->name,
			 strerror(-rc));
	return rc;
}

void ep_dp_tc_rnat_detach(struct ep_dp_iface *ifc)
{
	if (ifc->role == EP_ROLE_UPLINK)
		tc_detach(ifc->ifindex, BPF_TC_EGRESS, &TC_RNAT, ifc->name);
	else
		tc_detach(ifc->ifindex, BPF_TC_INGRESS, &TC_RNAT, ifc->name);
}

/* DNS on both directions of every interface: queries count where they leave
 * the node (egress) and are redirected, when failed over, where they arrive
 * from pods (pods ingress); answers arrive from the upstream (ingress), and
 * the cache's replies to pods are translated back on pods egress. */
int ep_dp_tc_dns_attach(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			size_t errlen)
{
	return tc_attach_both(ifc, &TC_DNS, BPF_TC_INGRESS, dp->dns_in_fd, BPF_TC_EGRESS,
			      dp->dns_eg_fd, err, errlen);
}

void ep_dp_tc_dns_detach(struct ep_dp_iface *ifc)
{
	tc_detach(ifc->ifindex, BPF_TC_INGRESS, &TC_DNS, ifc->name);
	tc_detach(ifc->ifindex, BPF_TC_EGRESS, &TC_DNS, ifc->name);
}

/* Flow health: packets to backends leave through egress, their answers
 * arrive through ingress, whichever role the interface has. */
int ep_dp_tc_health_attach(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			   size_t errlen)
{
	return tc_attach_both(ifc, &TC_HEALTH, BPF_TC_EGRESS, dp->health_fwd_fd, BPF_TC_INGRESS,
			      dp->health_rev_fd, err, errlen);
}

void ep_dp_tc_health_detach(struct ep_dp_iface *ifc)
{
	tc_detach(ifc->ifindex, BPF_TC_EGRESS, &TC_HEALTH, ifc->name);
	tc_detach(ifc->ifindex, BPF_TC_INGRESS, &TC_HEALTH, ifc->name);
}
