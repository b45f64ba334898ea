#include "datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include "log.h"
#include "map_prune.h"
#include "sock_dns.skel.h"
#include "tc_dns.skel.h"
#include "tc_rnat.skel.h"
#include "util.h"
#include "xdp_lb.skel.h"

/* Our TC filters: a fixed handle/priority so a restarted agent replaces its
 * own filter atomically and never touches anybody else's. */
#define EP_TC_HANDLE 0xe9
#define EP_TC_PRIO 0xe9

#define EP_XDP_PROG_NAME "ep_xdp_lb"
#define EP_TC_PROG_PREFIX "ep_tc_rnat"

bool ep_path_is_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && (unsigned long)st.f_type == BPF_FS_MAGIC;
}

static int ensure_bpffs(const char *root, char *err, size_t errlen)
{
	char parent[PATH_MAX], sub[PATH_MAX + 16];
	bool on_bpffs;

	/* The nearest existing ancestor tells whether root will be on a bpffs. */
	snprintf(parent, sizeof(parent), "%s", root);
	while (access(parent, F_OK) != 0) {
		char *slash = strrchr(parent, '/');

		if (!slash || slash == parent) {
			strcpy(parent, "/");
			break;
		}
		*slash = '\0';
	}
	on_bpffs = ep_path_is_bpffs(parent);
	if (ep_mkdir_p(root, 0700)) {
		snprintf(err, errlen, "cannot create %s: %s", root, strerror(errno));
		return -errno;
	}
	if (!on_bpffs && !ep_path_is_bpffs(root)) {
		if (mount("bpf", root, "bpf", 0, "mode=0700")) {
			snprintf(err, errlen, "no bpffs at %s and mounting one failed: %s", root,
				 strerror(errno));
			return -errno;
		}
		log_info("mounted bpffs at %s", root);
	}
	for (int i = 0; i < 2; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", root, i ? "progs" : "maps");
		if (ep_mkdir_p(sub, 0700)) {
			snprintf(err, errlen, "cannot create %s: %s", sub, strerror(errno));
			return -errno;
		}
	}
	/* libxdp keeps its dispatcher pins on a bpffs; point it at ours when the
	 * standard one is not there (e.g. inside `ip netns exec`). */
	if (!getenv("LIBXDP_BPFFS") && !ep_path_is_bpffs("/sys/fs/bpf"))
		setenv("LIBXDP_BPFFS", root, 1);
	return 0;
}

int ep_map_fds_from_obj(struct bpf_object *obj, struct ep_map_fds *out)
{
	const struct {
		const char *name;
		int *fd;
	} m[] = {
		{"ep_vips", &out->vips},
		{"ep_vip_filter", &out->vip_filter},
		{"ep_services", &out->services},
		{"ep_maglev", &out->maglev},
		{"ep_backends", &out->backends},
		{"ep_backend_rev", &out->backend_rev},
		{"ep_ct4", &out->ct.v4},
		{"ep_ct6", &out->ct.v6},
		{"ep_backend_stats", &out->backend_stats},
		{"ep_drops", &out->drops},
		{"ep_config", &out->config},
		{"ep_tx_ports", &out->tx_ports},
	};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		*m[i].fd = bpf_object__find_map_fd_by_name(obj, m[i].name);
		if (*m[i].fd < 0)
			return -ENOENT;
	}
	return 0;
}

/* Pins every ep_* map of obj under root/maps, so objects share them and they
 * outlive the agent. A pinned conntrack of another size cannot be reused:
 * say so instead of letting libbpf fail obscurely. */
static int pin_maps(struct bpf_object *obj, const char *root, uint32_t ct_size, char *err,
		    size_t errlen)
{
	struct bpf_map *map;
	char path[PATH_MAX + 64];

	bpf_object__for_each_map(map, obj)
	{
		const char *name = bpf_map__name(map);

		if (strncmp(name, "ep_", 3))
			continue;
		snprintf(path, sizeof(path), "%s/maps/%s", root, name);
		if (!strcmp(name, "ep_ct4") || !strcmp(name, "ep_ct6")) {
			struct bpf_map_info info = {};
			__u32 len = sizeof(info);
			int fd = bpf_obj_get(path);

			if (fd >= 0) {
				int rc = bpf_obj_get_info_by_fd(fd, &info, &len);

				close(fd);
				if (!rc && info.max_entries != ct_size) {
					snprintf(err, errlen,
						 "datapath.conntrack_size is %u but the pinned conntrack %s holds %u entries; "
						 "a live conntrack cannot be resized: set it back to %u, or stop the agent, "
						 "remove %s (forgets every tracked flow) and start again",
						 ct_size, path, info.max_entries, info.max_entries, path);
					return -EINVAL;
				}
			}
			bpf_map__set_max_entries(map, ct_size);
		}
		if (bpf_map__type(map) == BPF_MAP_TYPE_DEVMAP_HASH) {
			/* The kernel adds BPF_F_RDONLY_PROG to every devmap it creates,
			 * and libbpf 1.1 then sees a flags mismatch and refuses to
			 * reuse the pin: hand it the pinned fd ourselves. */
			int fd = bpf_obj_get(path);

			if (fd >= 0) {
				int rc = bpf_map__reuse_fd(map, fd);

				close(fd);
				if (rc) {
					snprintf(err, errlen, "cannot reuse pinned map %s: %s", path,
						 strerror(-rc));
					return rc;
				}
				continue;
			}
		}
		if (bpf_map__set_pin_path(map, path)) {
			snprintf(err, errlen, "cannot set pin path %s", path);
			return -EINVAL;
		}
	}
	return 0;
}

static void pin_prog(const char *root, const char *name, int fd)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/progs/%s", root, name);
	unlink(path);
	if (bpf_obj_pin(fd, path))
		log_warn("cannot pin program %s: %s", path, strerror(errno));
}

static uint64_t xdp_object_build_id(void)
{
	size_t sz;
	const unsigned char *b = xdp_lb__elf_bytes(&sz);

	return ep_hash64(b, sz);
}

int ep_datapath_open(struct ep_datapath *dp, const struct ep_cfg_datapath *cfg, char *err,
		     size_t errlen)
{
	struct ep_dp_config c = {};
	__u32 zero = 0;
	int rc;

	memset(dp, 0, sizeof(*dp));
	dp->rnat_in_fd = dp->rnat_eg_fd = dp->dns_in_fd = dp->dns_eg_fd = -1;
	snprintf(dp->root, sizeof(dp->root), "%s", cfg->bpffs);
	dp->xdp_mode = cfg->xdp_mode;
	dp->ct_size = cfg->conntrack_size;
	dp->xdp_build_id = xdp_object_build_id();

	rc = ensure_bpffs(dp->root, err, errlen);
	if (rc)
		return rc;

	dp->tc_skel = tc_rnat__open();
	if (!dp->tc_skel) {
		snprintf(err, errlen, "cannot open the TC object: %s", strerror(errno));
		return -errno;
	}
	rc = pin_maps(dp->tc_skel->obj, dp->root, dp->ct_size, err, errlen);
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

	if (bpf_map_lookup_elem(dp->maps.config, &zero, &c) == 0 && c.abi_version &&
	    c.abi_version != EP_ABI_VERSION) {
		snprintf(err, errlen,
			 "the datapath pinned under %s speaks ABI v%u, this agent v%u: stop the agent, remove %s "
			 "(forgets every tracked flow) and start again",
			 dp->root, c.abi_version, EP_ABI_VERSION, dp->root);
		rc = -EINVAL;
		goto fail;
	}
	c.abi_version = EP_ABI_VERSION;
	c.now_s = ep_datapath_clock_now();
	bpf_map_update_elem(dp->maps.config, &zero, &c, BPF_ANY);
	pin_prog(dp->root, "ep_tc_rnat", dp->rnat_in_fd);
	pin_prog(dp->root, "ep_tc_rnat_egress", dp->rnat_eg_fd);
	return 0;
fail:
	tc_rnat__destroy(dp->tc_skel);
	dp->tc_skel = NULL;
	return rc ? rc : -EINVAL;
}

/* ---- XDP ---------------------------------------------------------------- */

static enum xdp_attach_mode xdp_mode_of(enum ep_xdp_mode m)
{
	return m == EP_XDP_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE;
}

static const char *xdp_mode_name(enum ep_xdp_mode m)
{
	return m == EP_XDP_SKB ? "skb" : "native";
}

/* The edgeplane program attached to ifindex, if any (*mp must be closed).
 * *inspect_err is set when what is attached could not be examined. */
static struct xdp_program *xdp_find_ours_err(int ifindex, struct xdp_multiprog **mp_out,
					     int *inspect_err)
{
	struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
	struct xdp_program *p;
	long e = libxdp_get_error(mp);

	*mp_out = NULL;
	if (inspect_err)
		*inspect_err = (e && e != -ENOENT) ? (int)e : 0;
	if (e || !mp)
		return NULL;
	*mp_out = mp;
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		if (p && !strcmp(xdp_program__name(p), EP_XDP_PROG_NAME))
			return p;
		return NULL;
	}
	for (p = xdp_multiprog__next_prog(NULL, mp); p; p = xdp_multiprog__next_prog(p, mp))
		if (!strcmp(xdp_program__name(p), EP_XDP_PROG_NAME))
			return p;
	return NULL;
}

static struct xdp_program *xdp_find_ours(int ifindex, struct xdp_multiprog **mp_out)
{
	return xdp_find_ours_err(ifindex, mp_out, NULL);
}

static int xdp_open_skel(struct ep_datapath *dp, struct xdp_lb **out, char *err, size_t errlen)
{
	struct xdp_lb *skel = xdp_lb__open();
	int rc;

	if (!skel) {
		snprintf(err, errlen, "cannot open the XDP object: %s", strerror(errno));
		return -errno;
	}
	rc = pin_maps(skel->obj, dp->root, dp->ct_size, err, errlen);
	if (rc) {
		xdp_lb__destroy(skel);
		return rc;
	}
	*out = skel;
	return 0;
}

static void record_xdp_build(struct ep_datapath *dp)
{
	struct ep_dp_config c = {};
	__u32 zero = 0;

	bpf_map_lookup_elem(dp->maps.config, &zero, &c);
	c.abi_version = EP_ABI_VERSION;
	c.xdp_build_id = dp->xdp_build_id;
	c.xdp_mode = dp->xdp_mode;
	bpf_map_update_elem(dp->maps.config, &zero, &c, BPF_ANY);
}

static bool xdp_same_build(struct ep_datapath *dp, enum xdp_attach_mode attached_mode)
{
	struct ep_dp_config c = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(dp->maps.config, &zero, &c))
		return false;
	return c.xdp_build_id == dp->xdp_build_id && attached_mode == xdp_mode_of(dp->xdp_mode);
}

static int xdp_attach_fresh(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			    size_t errlen)
{
	struct xdp_program *xp;
	struct xdp_lb *skel;
	int rc;

	rc = xdp_open_skel(dp, &skel, err, errlen);
	if (rc)
		return rc;
	xp = xdp_program__from_bpf_obj(skel->obj, "xdp");
	rc = libxdp_get_error(xp);
	if (rc) {
		snprintf(err, errlen, "libxdp cannot use the XDP object: %s", strerror(-rc));
		xdp_lb__destroy(skel);
		return rc;
	}
	ep_log_lib_capture(true);
	rc = xdp_program__attach(xp, ifc->ifindex, xdp_mode_of(dp->xdp_mode), 0);
	ep_log_lib_capture(false);
	/* libxdp warns loudly when it falls back from its dispatcher to a single
	 * program; that is reported once below, so keep its chatter at debug
	 * unless the attach failed. */
	ep_log_lib_flush(rc ? EP_LOG_WARN : EP_LOG_DEBUG);
	if (rc) {
		struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifc->ifindex);

		if (!libxdp_get_error(mp) && mp && xdp_multiprog__is_legacy(mp)) {
			struct xdp_program *other = xdp_multiprog__main_prog(mp);

			snprintf(err, errlen,
				 "%s already runs XDP program '%s' (id %u) attached without the libxdp dispatcher; "
				 "edgeplane will not replace another program",
				 ifc->name, other ? xdp_program__name(other) : "?",
				 other ? xdp_program__id(other) : 0);
		} else {
			snprintf(err, errlen, "cannot attach XDP (%s mode) to %s: %s",
				 xdp_mode_name(dp->xdp_mode), ifc->name, strerror(-rc));
		}
		if (!libxdp_get_error(mp))
			xdp_multiprog__close(mp);
		xdp_program__close(xp);
		xdp_lb__destroy(skel);
		return rc;
	}
	pin_prog(dp->root, EP_XDP_PROG_NAME, xdp_program__fd(xp));
	xdp_program__close(xp);
	xdp_lb__destroy(skel);
	return 0;
}

/* Legacy (single program) attachment: the kernel swaps programs atomically
 * with XDP_FLAGS_REPLACE, so not one packet misses the balancer. */
static int xdp_replace_legacy(struct ep_datapath *dp, struct ep_dp_iface *ifc, int old_fd,
			      char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old_fd);
	__u32 flags = XDP_FLAGS_REPLACE |
		      (dp->xdp_mode == EP_XDP_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
	struct xdp_lb *skel;
	int rc;

	rc = xdp_open_skel(dp, &skel, err, errlen);
	if (rc)
		return rc;
	rc = xdp_lb__load(skel);
	if (!rc)
		rc = bpf_xdp_attach(ifc->ifindex, bpf_program__fd(skel->progs.ep_xdp_lb), flags,
				    &opts);
	if (rc)
		snprintf(err, errlen, "cannot replace the XDP program on %s: %s", ifc->name,
			 strerror(-rc));
	else
		pin_prog(dp->root, EP_XDP_PROG_NAME, bpf_program__fd(skel->progs.ep_xdp_lb));
	xdp_lb__destroy(skel);
	return rc;
}

static int xdp_detach_ours(struct ep_dp_iface *ifc)
{
	struct xdp_multiprog *mp;
	struct xdp_program *p = xdp_find_ours(ifc->ifindex, &mp);
	int rc = 0;

	if (p) {
		if (xdp_multiprog__is_legacy(mp))
			rc = xdp_multiprog__detach(mp);
		else
			rc = xdp_program__detach(p, ifc->ifindex, xdp_multiprog__attach_mode(mp), 0);
		if (rc)
			log_warn("cannot detach XDP from %s: %s", ifc->name, strerror(-rc));
		else
			log_info("detached XDP from %s", ifc->name);
	}
	if (mp)
		xdp_multiprog__close(mp);
	return rc;
}

static int xdp_sync(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err, size_t errlen)
{
	struct xdp_multiprog *mp;
	int inspect_err = 0;
	struct xdp_program *ours = xdp_find_ours_err(ifc->ifindex, &mp, &inspect_err);
	bool kept = false;
	int rc = 0;

	if (inspect_err) {
		/* Opening an attached program by id needs CAP_SYS_ADMIN; without
		 * it every restart would fail later with a puzzling EBUSY. */
		snprintf(err, errlen,
			 "cannot examine the XDP program attached to %s: %s%s", ifc->name,
			 strerror(-inspect_err),
			 inspect_err == -EPERM || inspect_err == -EACCES
				 ? " (the agent needs CAP_SYS_ADMIN to open attached programs by id)"
				 : "");
		return inspect_err;
	}
	if (!ours) {
		if (mp)
			xdp_multiprog__close(mp);
		rc = xdp_attach_fresh(dp, ifc, err, errlen);
		if (!rc)
			log_info("attached XDP load balancer to %s (%s mode)", ifc->name,
				 xdp_mode_name(dp->xdp_mode));
	} else if (xdp_same_build(dp, xdp_multiprog__attach_mode(mp))) {
		kept = true;
		log_debug("XDP load balancer already attached to %s (%s mode, same build): kept",
			  ifc->name, xdp_mode_name(dp->xdp_mode));
	} else if (xdp_multiprog__is_legacy(mp) &&
		   xdp_multiprog__attach_mode(mp) == xdp_mode_of(dp->xdp_mode)) {
		rc = xdp_replace_legacy(dp, ifc, xdp_program__fd(ours), err, errlen);
		if (!rc)
			log_info("replaced the XDP load balancer on %s atomically (new build)",
				 ifc->name);
	} else {
		/* Dispatcher: add the new program first, then remove the old one;
		 * only the first to see a VIP rewrites it, so no gap and no double
		 * translation. A mode change cannot be atomic. */
		bool legacy = xdp_multiprog__is_legacy(mp);

		if (legacy)
			xdp_detach_ours(ifc);
		rc = xdp_attach_fresh(dp, ifc, err, errlen);
		if (!rc && !legacy)
			xdp_program__detach(ours, ifc->ifindex, xdp_multiprog__attach_mode(mp), 0);
		if (!rc)
			log_info("re-attached the XDP load balancer to %s (%s mode)", ifc->name,
				 xdp_mode_name(dp->xdp_mode));
	}
	if (mp)
		xdp_multiprog__close(mp);
	if (!rc) {
		struct xdp_multiprog *now = xdp_multiprog__get_from_ifindex(ifc->ifindex);

		snprintf(ifc->xdp_mode, sizeof(ifc->xdp_mode), "%s", xdp_mode_name(dp->xdp_mode));
		ifc->xdp_dispatcher = !libxdp_get_error(now) && now && !xdp_multiprog__is_legacy(now);
		if (!ifc->xdp_dispatcher && !kept)
			log_info("%s: libxdp multi-program dispatcher unavailable on this kernel; XDP runs as the "
				 "interface's single program (other XDP programs cannot share %s)",
				 ifc->name, ifc->name);
		if (!libxdp_get_error(now) && now)
			xdp_multiprog__close(now);
		record_xdp_build(dp);
	}
	return rc;
}

/* ---- TC ----------------------------------------------------------------- */

/* Our TC filters sit at fixed handle/priority pairs so a restarted agent
 * replaces its own filter atomically and never touches anybody else's. DNS
 * runs first (lower priority number) and passes on (TC_ACT_UNSPEC) what it
 * does not consume, so reverse NAT still sees every packet. */
struct tc_slot {
	__u32 handle, prio;
	const char *prefix, *what;
};

static const struct tc_slot TC_RNAT = {EP_TC_HANDLE, EP_TC_PRIO, EP_TC_PROG_PREFIX, "reverse NAT"};
static const struct tc_slot TC_DNS = {0xe0, 0xe0, "ep_tc_dns", "DNS observation"};

static int tc_attach(int ifindex, enum bpf_tc_attach_point where, const struct tc_slot *slot,
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

/* Is one of our TC programs attached at this hook and slot? */
static bool tc_is_ours(int ifindex, enum bpf_tc_attach_point where, const struct tc_slot *slot)
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

static void tc_detach(int ifindex, enum bpf_tc_attach_point where, const struct tc_slot *slot,
		      const char *ifname)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = slot->handle, .priority = slot->prio);

	if (!tc_is_ours(ifindex, where, slot))
		return;
	if (bpf_tc_detach(&hook, &opts))
		log_warn("cannot detach TC %s from %s", slot->what, ifname);
	else
		log_info("detached TC %s (%s) from %s", slot->what,
			 where == BPF_TC_INGRESS ? "ingress" : "egress", ifname);
}

/* ---- interfaces --------------------------------------------------------- */

static void detach_dns_iface(struct ep_dp_iface *ifc)
{
	tc_detach(ifc->ifindex, BPF_TC_INGRESS, &TC_DNS, ifc->name);
	tc_detach(ifc->ifindex, BPF_TC_EGRESS, &TC_DNS, ifc->name);
}

static void detach_iface(struct ep_dp_iface *ifc)
{
	if (ifc->role == EP_ROLE_UPLINK) {
		xdp_detach_ours(ifc);
		tc_detach(ifc->ifindex, BPF_TC_EGRESS, &TC_RNAT, ifc->name);
	} else {
		tc_detach(ifc->ifindex, BPF_TC_INGRESS, &TC_RNAT, ifc->name);
	}
	detach_dns_iface(ifc);
}

/* DNS on both directions of every interface: queries are seen leaving the
 * node (uplink egress) or arriving from pods (pods ingress), answers arriving
 * from the upstream (ingress), and the cache's replies to pods are translated
 * back on pods egress. */
static int attach_dns_iface(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			    size_t errlen)
{
	int rc = tc_attach(ifc->ifindex, BPF_TC_INGRESS, &TC_DNS, dp->dns_in_fd);

	if (!rc)
		rc = tc_attach(ifc->ifindex, BPF_TC_EGRESS, &TC_DNS, dp->dns_eg_fd);
	if (rc)
		snprintf(err, errlen, "cannot attach TC DNS observation to %s: %s", ifc->name,
			 strerror(-rc));
	return rc;
}

static int attach_iface(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err,
			size_t errlen)
{
	int rc;

	if (ifc->role == EP_ROLE_UPLINK) {
		rc = xdp_sync(dp, ifc, err, errlen);
		if (rc)
			return rc;
		rc = tc_attach(ifc->ifindex, BPF_TC_EGRESS, &TC_RNAT, dp->rnat_eg_fd);
	} else {
		rc = tc_attach(ifc->ifindex, BPF_TC_INGRESS, &TC_RNAT, dp->rnat_in_fd);
	}
	if (rc) {
		snprintf(err, errlen, "cannot attach TC reverse NAT to %s: %s", ifc->name,
			 strerror(-rc));
		return rc;
	}
	if (dp->dns_skel)
		return attach_dns_iface(dp, ifc, err, errlen);
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
	for (size_t i = 0; i < cfg->n_ifaces; i++) {
		rc = attach_iface(dp, &want[i], err, errlen);
		if (rc)
			break;
	}
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

static void sock_skel_destroy(struct ep_datapath *dp)
{
	if (dp->sock_skel)
		sock_dns__destroy(dp->sock_skel);
	dp->sock_skel = NULL;
}

/* ---- DNS: socket hooks for the node's own processes ---------------------- */

/*
 * Processes on the node talk to the upstream through local sockets; a packet
 * rewritten in TC towards a local cache would not find its way back to the
 * socket that sent it. So, as Cilium's socket LB does, the socket calls are
 * translated instead (tc/sock_dns.bpf.c), attached to the root of the cgroup
 * v2 hierarchy: every process on the node, whatever cgroup it is in. The
 * programs themselves only act in the node's network namespace.
 *
 * The attachments are bpf_links pinned under <bpffs>/links: they outlive the
 * agent like the TC filters do (failed over, the node stays failed over while
 * the agent restarts), and a new agent swaps its programs into the same links
 * atomically (BPF_LINK_UPDATE) instead of detaching and re-attaching.
 */

#define SOCK_LINK_DIR "links"

/* The cgroup2 mount whose root is the hierarchy's root (mountinfo field 4
 * is "/"), or "" if there is none in this mount namespace. */
static void find_cgroup2(char *out, size_t outlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;

	out[0] = '\0';
	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		char root[PATH_MAX], mnt[PATH_MAX], *sep;
		char fstype[64];

		/* id parent maj:min root mountpoint opts... - fstype source superopts */
		if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2)
			continue;
		sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1)
			continue;
		if (!strcmp(fstype, "cgroup2") && !strcmp(root, "/")) {
			snprintf(out, outlen, "%s", mnt);
			break;
		}
	}
	free(line);
	fclose(f);
}

static int sock_link_path(const struct ep_datapath *dp, const struct bpf_program *prog, char *path,
			  size_t len)
{
	int n = snprintf(path, len, "%s/" SOCK_LINK_DIR "/%s", dp->root, bpf_program__name(prog));

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The cgroup the socket hooks go to: datapath.cgroup_root, or the root of
 * the cgroup2 hierarchy of this mount namespace, mounted under runtime_dir
 * for the moment if there is none (*mounted says where, to unmount). Returns
 * an O_RDONLY directory fd, or -errno with err set. */
static int open_hook_cgroup(struct ep_datapath *dp, const char *runtime_dir, char *cg, size_t cglen,
			    char *mounted, size_t mlen, char *err, size_t errlen)
{
	struct statfs sfs;
	int fd;

	mounted[0] = '\0';
	if (dp->cgroup_root[0]) {
		snprintf(cg, cglen, "%s", dp->cgroup_root);
	} else {
		find_cgroup2(cg, cglen);
		if (!cg[0]) {
			/* Inside `ip netns exec` (which mounts a fresh /sys) or a
			 * container without /sys/fs/cgroup: mount the hierarchy just
			 * long enough to attach; the links hold the cgroup, not the
			 * mount. */
			snprintf(mounted, mlen, "%s/cgroup2", runtime_dir);
			if (ep_mkdir_p(mounted, 0700) ||
			    (mount("cgroup2", mounted, "cgroup2", 0, NULL) && errno != EBUSY)) {
				int e = errno;

				snprintf(err, errlen,
					 "no cgroup v2 hierarchy is mounted and mounting one at %s failed: %s "
					 "(set datapath.cgroup_root; node processes' DNS cannot be redirected "
					 "without it)",
					 mounted, strerror(e));
				mounted[0] = '\0';
				return -e;
			}
			snprintf(cg, cglen, "%s", mounted);
		}
	}
	fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot open cgroup %s%s: %s", cg,
			 dp->cgroup_root[0] ? " (datapath.cgroup_root)" : "", strerror(e));
		return -e;
	}
	if (fstatfs(fd, &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC) {
		snprintf(err, errlen, "%s%s is not a cgroup v2 directory", cg,
			 dp->cgroup_root[0] ? " (datapath.cgroup_root)" : "");
		close(fd);
		return -ENOTDIR;
	}
	return fd;
}

/* The cgroup id a pinned cgroup link is attached to, or 0. */
static __u64 link_cgroup_id(int link_fd)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(link_fd, &info, &len) || info.type != BPF_LINK_TYPE_CGROUP)
		return 0;
	return info.cgroup.cgroup_id;
}

/* Returns how many hooks were attached anew (0: all were already linked to
 * that cgroup and just got the new programs), or -errno. */
static int sock_hooks_attach(struct ep_datapath *dp, const char *runtime_dir, char *err,
			     size_t errlen)
{
	char cg[PATH_MAX], path[PATH_MAX + 64], mounted[PATH_MAX] = "";
	struct bpf_program *prog;
	int rc, cgfd, updated = 0, attached = 0;
	struct stat st;
	__u64 cgid;

	if (!dp->sock_skel) {
		dp->sock_skel = sock_dns__open();
		if (!dp->sock_skel) {
			snprintf(err, errlen, "cannot open the socket hook object: %s", strerror(errno));
			return -errno;
		}
		rc = pin_maps(dp->sock_skel->obj, dp->root, dp->ct_size, err, errlen);
		if (!rc && (rc = sock_dns__load(dp->sock_skel)))
			snprintf(err, errlen, "cannot load the socket hook object: %s", strerror(-rc));
		if (rc) {
			sock_skel_destroy(dp);
			return rc;
		}
	}
	snprintf(path, sizeof(path), "%s/" SOCK_LINK_DIR, dp->root);
	if (mkdir(path, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -errno;
	}
	cgfd = open_hook_cgroup(dp, runtime_dir, cg, sizeof(cg), mounted, sizeof(mounted), err, errlen);
	if (cgfd < 0)
		return cgfd;
	/* On cgroup v2 the id of a cgroup is its directory's inode number. */
	cgid = fstat(cgfd, &st) ? 0 : (__u64)st.st_ino;
	rc = 0;
	bpf_object__for_each_program(prog, dp->sock_skel->obj)
	{
		struct bpf_link *link;
		int fd;

		if (sock_link_path(dp, prog, path, sizeof(path))) {
			rc = -ENAMETOOLONG;
			break;
		}
		fd = bpf_obj_get(path);
		if (fd >= 0) {
			/* Already linked there (an agent restart, a reload): swap the
			 * program in atomically. Linked to another cgroup
			 * (cgroup_root changed): detach, attach anew below. */
			if (cgid && link_cgroup_id(fd) == cgid) {
				if (bpf_link_update(fd, bpf_program__fd(prog), NULL)) {
					rc = -errno;
					snprintf(err, errlen, "cannot update the socket hook link %s: %s",
						 path, strerror(errno));
					close(fd);
					break;
				}
				close(fd);
				updated++;
				continue;
			}
			close(fd);
			unlink(path);
		}
		link = bpf_program__attach_cgroup(prog, cgfd);
		if (!link) {
			rc = -errno;
			snprintf(err, errlen, "cannot attach %s to cgroup %s: %s",
				 bpf_program__section_name(prog), cg, strerror(errno));
			break;
		}
		rc = bpf_link__pin(link, path);
		/* The pin holds the attachment; our handle is not needed. */
		bpf_link__destroy(link);
		if (rc) {
			snprintf(err, errlen, "cannot pin %s: %s", path, strerror(-rc));
			break;
		}
		attached++;
	}
	if (!rc)
		snprintf(dp->cgroup, sizeof(dp->cgroup), "%s %s%s (%d attached, %d already linked)",
			 dp->cgroup_root[0] ? "the cgroup" : "the cgroup v2 root", cg,
			 mounted[0] ? ", mounted for the attach, then unmounted" : "", attached, updated);
	close(cgfd);
	if (mounted[0])
		umount2(mounted, MNT_DETACH);
	return rc ? rc : attached;
}

/* Unpinning the last reference detaches the programs. */
static void sock_hooks_detach(struct ep_datapath *dp)
{
	char path[PATH_MAX + 64];

	/* The directory holds only these links. */
	snprintf(path, sizeof(path), "%s/" SOCK_LINK_DIR, dp->root);
	ep_rm_rf(path);
	dp->cgroup[0] = '\0';
	sock_skel_destroy(dp);
}

/* ---- DNS ------------------------------------------------------------------ */

int ep_datapath_dns_enable(struct ep_datapath *dp, const char *runtime_dir, char *err,
			   size_t errlen)
{
	int rc;

	/* A reload: the TC side stays; the socket hooks follow cgroup_root. */
	if (dp->dns_skel) {
		rc = sock_hooks_attach(dp, runtime_dir, err, errlen);
		if (rc > 0)
			log_info("DNS: host sockets hooked at %s", dp->cgroup);
		return rc < 0 ? rc : 0;
	}
	dp->dns_skel = tc_dns__open();
	if (!dp->dns_skel) {
		snprintf(err, errlen, "cannot open the DNS object: %s", strerror(errno));
		return -errno;
	}
	rc = pin_maps(dp->dns_skel->obj, dp->root, dp->ct_size, err, errlen);
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
	};
	dp->dns_in_fd = bpf_program__fd(dp->dns_skel->progs.ep_tc_dns_ingress);
	dp->dns_eg_fd = bpf_program__fd(dp->dns_skel->progs.ep_tc_dns_egress);
	pin_prog(dp->root, "ep_tc_dns_ingress", dp->dns_in_fd);
	pin_prog(dp->root, "ep_tc_dns_egress", dp->dns_eg_fd);
	for (size_t i = 0; i < dp->n_ifaces; i++) {
		rc = attach_dns_iface(dp, &dp->ifaces[i], err, errlen);
		if (rc)
			return rc;
	}
	rc = sock_hooks_attach(dp, runtime_dir, err, errlen);
	if (rc < 0)
		return rc;
	log_info("DNS observation attached to %zu interface(s); host sockets hooked at %s",
		 dp->n_ifaces, dp->cgroup);
	return 0;
}

void ep_datapath_dns_disable(struct ep_datapath *dp, bool remove_pins)
{
	char path[PATH_MAX + 64];

	for (size_t i = 0; i < dp->n_ifaces; i++)
		detach_dns_iface(&dp->ifaces[i]);
	sock_hooks_detach(dp);
	if (dp->dns_skel)
		tc_dns__destroy(dp->dns_skel);
	dp->dns_skel = NULL;
	dp->dns_in_fd = dp->dns_eg_fd = -1;
	memset(&dp->dns, 0, sizeof(dp->dns));
	if (!remove_pins)
		return;
	for (const char *const *m = (const char *const[]){"ep_dns_upstreams", "ep_dns_pending",
							   "ep_dns_stats", "ep_dns_config",
							   "ep_dns_redir", "ep_dns_snap",
							   "ep_dns_samples", "ep_dns_sk", NULL};
	     *m; m++) {
		snprintf(path, sizeof(path), "%s/maps/%s", dp->root, *m);
		unlink(path);
	}
	for (const char *const *p = (const char *const[]){"ep_tc_dns_ingress", "ep_tc_dns_egress",
							   NULL};
	     *p; p++) {
		snprintf(path, sizeof(path), "%s/progs/%s", dp->root, *p);
		unlink(path);
	}
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
	for (const char *const *d = (const char *const[]){"maps", "progs", SOCK_LINK_DIR, NULL}; *d;
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
		sock_skel_destroy(dp);
	if (dp->tc_skel)
		tc_rnat__destroy(dp->tc_skel);
	dp->tc_skel = NULL;
	free(dp->ifaces);
	dp->ifaces = NULL;
	dp->n_ifaces = 0;
}
