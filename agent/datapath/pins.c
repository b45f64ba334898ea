/*
 * Pins and the ABI check. The datapath outlives the agent: maps, programs
 * and links stay pinned under datapath.bpffs, and the next agent - the same
 * build after a restart, or a newer one after an upgrade - loads its objects
 * over the pinned maps instead of creating new ones, so conntrack, services
 * and the DNS mode carry over (docs/datapath.md).
 *
 * That only works if the names never change and nobody has to remember to
 * add one: the pin set is read from the BPF objects themselves (every map
 * named ep_*, ep_dp_map_is_pinned), not kept in a list here, and the same
 * walk removes them. What can make a pin unusable is checked before libbpf
 * gets to fail obscurely: a conntrack of another size, and a datapath
 * stamped with another ABI version (ep_config.abi_version).
 */
#include "datapath_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

bool ep_path_is_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && (unsigned long)st.f_type == BPF_FS_MAGIC;
}

int ep_dp_ensure_bpffs(const char *root, char *err, size_t errlen)
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
	out->maglev = bpf_object__find_map_fd_by_name(obj, "ep_rings");
	out->maglev_unpacked = out->maglev < 0 ? bpf_object__find_map_fd_by_name(obj, "ep_maglev") : -1;
	if (out->maglev < 0 && out->maglev_unpacked < 0)
		return -ENOENT;
	/* UDP conntrack maps: an object built before they existed (make
	 * bench's baseline) keeps UDP flows in the TCP maps. */
	/* Which buckets hold flows; an older object has no such map: every
	 * GC pass is then a full one. */
	out->ct.used = bpf_object__find_map_fd_by_name(obj, "ep_ct_used");
	out->ct.u4 = bpf_object__find_map_fd_by_name(obj, "ep_ctu4");
	out->ct.u6 = bpf_object__find_map_fd_by_name(obj, "ep_ctu6");
	if (out->ct.u4 < 0 || out->ct.u6 < 0) {
		out->ct.u4 = out->ct.v4;
		out->ct.u6 = out->ct.v6;
	}
	return 0;
}

int ep_dp_map_is_pinned(const char *name)
{
	return !strncmp(name, "ep_", 3);
}

int ep_dp_map_pin_path(const char *root, const char *name, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/maps/%s", root, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A conntrack pinned by an older build with another layout (a kernel LRU
 * hash map before the table of buckets; before that a 16-byte IPv4 key)
 * cannot be reused, and the operator has nothing to decide: the pin goes,
 * and a new table is made.
 * Established flows carry on as orphans (Maglev, same ring) until their
 * backends answer and reverse NAT records them again; the old programs
 * keep the old map until they are replaced (XDP first, ep_dp_xdp_ct_replaced). */
static int replace_old_ct(const char *path, const struct bpf_map_info *old,
			  const struct bpf_map *map, char *err, size_t errlen)
{
	if (unlink(path) && errno != ENOENT) {
		int rc = -errno;

		snprintf(err, errlen, "cannot remove %s, a conntrack of an older build: %s", path,
			 strerror(-rc));
		return rc;
	}
	log_info("replaced %s, a conntrack of an older build (map type %u, %u-byte keys, %u-byte "
		 "values; this build's: type %u, %u, %u): established flows are recorded again as "
		 "their backends answer",
		 path, old->type, old->key_size, old->value_size, bpf_map__type(map),
		 bpf_map__key_size(map), bpf_map__value_size(map));
	return 0;
}

/* Every ep_* map of obj pinned under root/maps, so objects share them and
 * they outlive the agent. A pinned conntrack of another size cannot be
 * reused: say so instead of letting libbpf fail obscurely (one of an older
 * layout is replaced, see replace_old_ct). */
int ep_dp_pin_maps(struct bpf_object *obj, const char *root, uint32_t ct_size, char *err,
		   size_t errlen)
{
	struct bpf_map *map;
	char path[PATH_MAX + 64];

	bpf_object__for_each_map(map, obj)
	{
		const char *name = bpf_map__name(map);

		if (!ep_dp_map_is_pinned(name))
			continue;
		if (ep_dp_map_pin_path(root, name, path, sizeof(path))) {
			snprintf(err, errlen, "pin path of %s under %s is too long", name, root);
			return -ENAMETOOLONG;
		}
		if (!strcmp(name, "ep_ct4") || !strcmp(name, "ep_ct6") || !strcmp(name, "ep_ctu4") ||
		    !strcmp(name, "ep_ctu6")) {
			struct bpf_map_info info = {};
			__u32 len = sizeof(info);
			int fd = bpf_obj_get(path);

			if (fd >= 0) {
				int rc = bpf_obj_get_info_by_fd(fd, &info, &len);

				close(fd);
				if (!rc && (info.type != bpf_map__type(map) ||
					    info.key_size != bpf_map__key_size(map) ||
					    info.value_size != bpf_map__value_size(map) ||
					    info.map_flags != bpf_map__map_flags(map))) {
					rc = replace_old_ct(path, &info, map, err, errlen);
					if (rc)
						return rc;
				} else if (!rc && info.max_entries != ep_ct_buckets(ct_size)) {
					/* the size it was made for, in flows */
					__u32 was = info.max_entries * EP_CT_WAYS / EP_CT_SLOTS_PER_FLOW;

					snprintf(err, errlen,
						 "datapath.conntrack_size is %u but the pinned conntrack %s holds %u entries; "
						 "a live conntrack cannot be resized: set it back to %u, or stop the agent, "
						 "remove %s (forgets every tracked flow) and start again",
						 ct_size, path, was, was, path);
					return -EINVAL;
				}
			}
			bpf_map__set_max_entries(map, ep_ct_buckets(ct_size));
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

void ep_dp_pin_prog(const char *root, const char *name, int fd)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/progs/%s", root, name);
	unlink(path);
	if (bpf_obj_pin(fd, path))
		log_warn("cannot pin program %s: %s", path, strerror(errno));
}

void ep_dp_pin_progs(struct bpf_object *obj, const char *root)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj)
		ep_dp_pin_prog(root, bpf_program__name(prog), bpf_program__fd(prog));
}

void ep_dp_unpin(struct bpf_object *obj, struct bpf_object *keep, const char *root, int progs)
{
	char path[PATH_MAX + 64];
	struct bpf_program *prog;
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj)
	{
		const char *name = bpf_map__name(map);

		/* A map the other object shares (the load balancer's) is not
		 * this object's to forget. */
		if (!ep_dp_map_is_pinned(name) ||
		    (keep && bpf_object__find_map_by_name(keep, name)))
			continue;
		if (!ep_dp_map_pin_path(root, name, path, sizeof(path)))
			unlink(path);
	}
	if (!progs)
		return;
	bpf_object__for_each_program(prog, obj)
	{
		snprintf(path, sizeof(path), "%s/progs/%s", root, bpf_program__name(prog));
		unlink(path);
	}
}

/* Pins that older builds made and this one no longer reads. Unpinned, such
 * a map is freed once no program holds it: an older XDP program still
 * attached keeps its own reference until this agent replaces it. */
static const char *const obsolete_pins[] = {
	"ep_maglev", /* Maglev rings with one slot per element; now ep_rings */
};

void ep_dp_remove_obsolete_pins(const char *root)
{
	char path[PATH_MAX + 64];

	for (size_t i = 0; i < sizeof(obsolete_pins) / sizeof(obsolete_pins[0]); i++) {
		if (ep_dp_map_pin_path(root, obsolete_pins[i], path, sizeof(path)))
			continue;
		if (unlink(path) == 0)
			log_info("removed %s, a pin of an older build that this one no longer uses",
				 path);
		else if (errno != ENOENT)
			log_warn("cannot remove %s, a pin of an older build: %s", path,
				 strerror(errno));
	}
}

int ep_dp_check_abi(struct ep_datapath *dp, char *err, size_t errlen)
{
	struct ep_dp_config c = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(dp->maps.config, &zero, &c) == 0 && c.abi_version &&
	    c.abi_version != EP_ABI_VERSION) {
		snprintf(err, errlen,
			 "the datapath pinned under %s speaks ABI v%u, this agent v%u: stop the agent, remove %s "
			 "(forgets every tracked flow) and start again",
			 dp->root, c.abi_version, EP_ABI_VERSION, dp->root);
		return -EINVAL;
	}
	c.abi_version = EP_ABI_VERSION;
	c.now_s = ep_datapath_clock_now();
	bpf_map_update_elem(dp->maps.config, &zero, &c, BPF_ANY);
	return 0;
}
