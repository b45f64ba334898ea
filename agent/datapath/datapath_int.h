/*
 * What the pieces of the datapath loader share, and nothing outside
 * agent/datapath/ includes. The loader is split along its seams (pins.c,
 * xdp_attach.c, tc_attach.c, sock_hooks.c; datapath.c orchestrates) so each
 * kernel interface - bpffs, libxdp, TC clsact, cgroup links - is read in one
 * place; this header is the seam.
 */
#ifndef EP_DATAPATH_INT_H
#define EP_DATAPATH_INT_H

#include <stddef.h>
#include <stdint.h>

#include "datapath.h"
#include "pins.h"

/* Under datapath.bpffs: the socket hooks' pinned bpf_links. */
#define EP_DP_LINK_DIR "links"

/* pins.c */
/* Creates root (and maps/, progs/ under it), mounting a bpffs there when it
 * is not on one. */
int ep_dp_ensure_bpffs(const char *root, char *err, size_t errlen);
/* Refuses a datapath pinned by an agent of another ABI version; stamps ours
 * and the clock into ep_config otherwise. */
int ep_dp_check_abi(struct ep_datapath *dp, char *err, size_t errlen);
/* Unpins maps that older builds pinned and this one no longer uses. */
void ep_dp_remove_obsolete_pins(const char *root);

/* xdp_attach.c */
/* The XDP program of ours attached to ifc uses a TCP conntrack that is no
 * longer pinned (removed by hand, created anew by this agent). */
bool ep_dp_xdp_ct_replaced(struct ep_datapath *dp, const struct ep_dp_iface *ifc);
uint64_t ep_dp_xdp_build_id(void);
/* Attaches (or keeps, or replaces) the XDP load balancer on an uplink. */
int ep_dp_xdp_sync(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err, size_t errlen);
int ep_dp_xdp_detach(struct ep_dp_iface *ifc);

/* tc_attach.c */
/* Reverse NAT: ingress of a pods interface, egress of an uplink. */
int ep_dp_tc_rnat_attach(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			 size_t errlen);
void ep_dp_tc_rnat_detach(struct ep_dp_iface *ifc);
/* DNS observation and redirect: both directions of every interface. */
int ep_dp_tc_dns_attach(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			size_t errlen);
void ep_dp_tc_dns_detach(struct ep_dp_iface *ifc);

/* Flow health: egress and ingress of every interface, between DNS
 * observation and reverse NAT. */
int ep_dp_tc_health_attach(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			   size_t errlen);
void ep_dp_tc_health_detach(struct ep_dp_iface *ifc);

/* sock_hooks.c */
/* Loads the socket hook object (once) and links it to the cgroup. Returns
 * how many hooks were attached anew, or -errno. */
int ep_dp_sock_hooks_attach(struct ep_datapath *dp, const char *runtime_dir, char *err,
			    size_t errlen);
/* Unpins the links (detaching the hooks) and unloads the object. */
void ep_dp_sock_hooks_detach(struct ep_datapath *dp);
/* Unloads the object; the links stay. */
void ep_dp_sock_hooks_close(struct ep_datapath *dp);

#endif
