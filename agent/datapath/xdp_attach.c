/*
 * The XDP load balancer on uplinks, through libxdp so edgeplane coexists
 * with other XDP programs (docs/datapath.md, "Coexisting with other XDP
 * programs").
 *
 * An agent restart must not cost a packet: a program of the same build
 * (ep_config.xdp_build_id, a hash of the embedded object) already attached
 * is kept; another build replaces it atomically where the kernel allows
 * (XDP_FLAGS_REPLACE for a single program, add-then-remove behind the
 * dispatcher). Our program is recognised by its name, never by position,
 * so another tool's programs are left alone.
 */
#include "datapath_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/if_link.h>
#include <stdio.h>
#include <string.h>
#include <xdp/libxdp.h>

#include "log.h"
#include "util.h"
#include "xdp_lb.skel.h"

#define EP_XDP_PROG_NAME "ep_xdp_lb"

uint64_t ep_dp_xdp_build_id(void)
{
	size_t sz;
	const unsigned char *b = xdp_lb__elf_bytes(&sz);

	return ep_hash64(b, sz);
}

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
	rc = ep_dp_pin_maps(skel->obj, dp->root, dp->ct_size, err, errlen);
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

/* Does the program use every one of these maps? */
static bool xdp_uses_maps(int prog_fd, const int *fds, size_t n)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), ids[64];

	info.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	info.map_ids = (__u64)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return false;
	for (size_t i = 0; i < n; i++) {
		struct bpf_map_info mi = {};
		__u32 mlen = sizeof(mi);
		bool found = false;

		if (bpf_obj_get_info_by_fd(fds[i], &mi, &mlen))
			return false;
		for (__u32 k = 0; k < info.nr_map_ids && k < sizeof(ids) / sizeof(ids[0]); k++)
			found |= ids[k] == mi.id;
		if (!found)
			return false;
	}
	return true;
}

/* Does the attached program use the maps pinned now? A pin removed by hand
 * (a conntrack resized the documented way) leaves a program of the same
 * build working on the old map, while reverse NAT, loaded afresh, reads the
 * new one: new flows would be recorded where replies never look. */
static bool xdp_uses_pinned_maps(const struct ep_datapath *dp, int prog_fd)
{
	const int fds[] = {dp->maps.vips,    dp->maps.vip_filter, dp->maps.services,
			   dp->maps.maglev,  dp->maps.backends,	  dp->maps.backend_stats,
			   dp->maps.drops,   dp->maps.config,	  dp->maps.tx_ports,
			   dp->maps.ct.v4,   dp->maps.ct.v6,	  dp->maps.ct.u4,
			   dp->maps.ct.u6};

	return xdp_uses_maps(prog_fd, fds, sizeof(fds) / sizeof(fds[0]));
}

bool ep_dp_xdp_ct_replaced(struct ep_datapath *dp, const struct ep_dp_iface *ifc)
{
	const int ct[] = {dp->maps.ct.v4, dp->maps.ct.v6};
	struct xdp_multiprog *mp = NULL;
	struct xdp_program *ours = xdp_find_ours(ifc->ifindex, &mp);
	bool replaced = ours && !xdp_uses_maps(xdp_program__fd(ours), ct, 2);

	if (mp)
		xdp_multiprog__close(mp);
	return replaced;
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
	ep_dp_pin_prog(dp->root, EP_XDP_PROG_NAME, xdp_program__fd(xp));
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
		ep_dp_pin_prog(dp->root, EP_XDP_PROG_NAME, bpf_program__fd(skel->progs.ep_xdp_lb));
	xdp_lb__destroy(skel);
	return rc;
}

int ep_dp_xdp_detach(struct ep_dp_iface *ifc)
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

int ep_dp_xdp_sync(struct ep_datapath *dp, struct ep_dp_iface *ifc, char *err, size_t errlen)
{
	struct xdp_multiprog *mp;
	int inspect_err = 0;
	struct xdp_program *ours = xdp_find_ours_err(ifc->ifindex, &mp, &inspect_err);
	bool kept = false, same_build = false;
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
	} else if ((same_build = xdp_same_build(dp, xdp_multiprog__attach_mode(mp))) &&
		   xdp_uses_pinned_maps(dp, xdp_program__fd(ours))) {
		kept = true;
		log_debug("XDP load balancer already attached to %s (%s mode, same build): kept",
			  ifc->name, xdp_mode_name(dp->xdp_mode));
	} else if (xdp_multiprog__is_legacy(mp) &&
		   xdp_multiprog__attach_mode(mp) == xdp_mode_of(dp->xdp_mode)) {
		rc = xdp_replace_legacy(dp, ifc, xdp_program__fd(ours), err, errlen);
		if (!rc)
			log_info("replaced the XDP load balancer on %s atomically (%s)", ifc->name,
				 same_build ? "same build, but it used maps no longer pinned"
					    : "new build");
	} else {
		/* Dispatcher: add the new program first, then remove the old one;
		 * only the first to see a VIP rewrites it, so no gap and no double
		 * translation. A mode change cannot be atomic. */
		bool legacy = xdp_multiprog__is_legacy(mp);

		if (legacy)
			ep_dp_xdp_detach(ifc);
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
