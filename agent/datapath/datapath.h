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
	/* An object built before the rings were packed (make bench's
	 * baseline) has ep_maglev, one slot per element, and no ep_rings:
	 * then maglev is -1 and this is ep_maglev's fd; otherwise -1. */
	int maglev_unpacked;
};

struct bpf_object;
/* The load balancer's maps of a loaded object (tc_rnat or xdp_lb: both
 * declare them all). -ENOENT if one is missing. */
int ep_map_fds_from_obj(struct bpf_object *obj, struct ep_map_fds *out);

/* DNS maps (tc/tc_dns.bpf.c, tc/sock_dns.bpf.c), pinned like the others. */
struct ep_dns_map_fds {
	int upstreams, pending, stats, config, redir, snap, samples;
	int exempt; /* the agent's own DNS sockets (lib/dns_exempt.h) */
	int hstats; /* ep_dns_hstats: fragments, options, extension headers */
};

/* Canary flow health maps (tc/tc_health.bpf.c), pinned like the others. */
struct ep_dp_health_fds {
	int svc, stats, pend;
	int state; /* ep_canary_state */
	int cfg;   /* ep_health_cfg */
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
	/* Flow health tap: egress (to backends) and ingress (their answers) of
	 * every interface. */
	struct tc_health *health_skel;
	int health_fwd_fd, health_rev_fd;
	struct ep_dp_health_fds health;
	/* DNS, when a dns section is configured */
	struct tc_dns *dns_skel;
	int dns_in_fd, dns_eg_fd;
	struct ep_dns_map_fds dns;
	struct sock_dns *sock_skel;
	char cgroup[PATH_MAX]; /* where the socket hooks are attached (for the log) */
	char cgroup_root[PATH_MAX]; /* datapath.cgroup_root; "" = auto */
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

/* Loads the DNS programs (maps pinned), attaches TC DNS to every interface
 * and the socket hooks to the cgroup v2 root. runtime_dir is where a cgroup2
 * hierarchy gets mounted if /sys/fs/cgroup is not one (inside ip netns exec). */
int ep_datapath_dns_enable(struct ep_datapath *dp, const char *runtime_dir, char *err,
			   size_t errlen);
/* Detaches and unloads the DNS programs; remove_pins forgets their maps. */
void ep_datapath_dns_disable(struct ep_datapath *dp, bool remove_pins);

/* Frees user-space handles; kernel state stays. */
void ep_datapath_close(struct ep_datapath *dp);

/* Is path on a bpffs? */
bool ep_path_is_bpffs(const char *path);

#endif
