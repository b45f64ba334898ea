/*
 * The datapath: BPF objects loaded with their maps pinned under
 * datapath.bpffs, XDP attached to uplinks through libxdp, TC reverse NAT on
 * pods ingress and uplink egress. Everything stays in the kernel when the
 * agent exits, so forwarding never depends on the agent being alive.
 */
#ifndef EP_DATAPATH_H
#define EP_DATAPATH_H

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#include "conntrack.h"

struct ep_map_fds {
	int vips, vip_filter, services, maglev, backends, backend_rev, backend_stats, drops, config,
		tx_ports;
	struct ep_ct_fds ct;
};

struct ep_dp_iface {
	char name[IFNAMSIZ];
	int ifindex;
	enum ep_iface_role role;
	char xdp_mode[16]; /* "native", "skb", "" when no XDP */
	bool xdp_dispatcher; /* attached through the libxdp dispatcher (coexists) */
};

struct ep_datapath {
	char root[PATH_MAX];	     /* datapath.bpffs */
	struct ep_map_fds maps;
	int rnat_in_fd, rnat_eg_fd;  /* TC programs (owned by tc_skel) */
	struct tc_rnat *tc_skel;
	uint64_t xdp_build_id;
	enum ep_xdp_mode xdp_mode;
	uint32_t ct_size;
	struct ep_dp_iface *ifaces;
	size_t n_ifaces;
};

/* Mounts bpffs at (or above) root if needed, loads the TC object with pinned
 * maps (creating or reusing them) and opens every map. err gets a one-line
 * reason on failure. */
int ep_datapath_open(struct ep_datapath *dp, const struct ep_cfg_datapath *cfg, char *err,
		     size_t errlen);

/* Attaches to every interface of cfg and detaches from those no longer in it.
 * Attaching is idempotent: a program of the same build already attached is
 * left alone; another build is replaced atomically where the kernel allows. */
int ep_datapath_sync_ifaces(struct ep_datapath *dp, const struct ep_config *cfg, char *err,
			    size_t errlen);

int ep_datapath_set_forwarding(struct ep_datapath *dp, enum ep_forwarding fwd);

/* The datapath's conntrack clock (seconds, CLOCK_MONOTONIC_COARSE) and its
 * publication into the ep_config map, done every agent tick. */
uint32_t ep_datapath_clock_now(void);
int ep_datapath_publish_clock(struct ep_datapath *dp);

/* Detaches every program and removes the pins (--detach-on-exit). */
int ep_datapath_detach_all(struct ep_datapath *dp);

/* Frees user-space handles; kernel state stays. */
void ep_datapath_close(struct ep_datapath *dp);

/* Is path on a bpffs? */
bool ep_path_is_bpffs(const char *path);

#endif
