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
#include "datapath_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "log.h"
#include "sock_dns.skel.h"
#include "util.h"

void ep_dp_sock_hooks_close(struct ep_datapath *dp)
{
	if (dp->sock_skel)
		sock_dns__destroy(dp->sock_skel);
	dp->sock_skel = NULL;
}

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
	int n = snprintf(path, len, "%s/" EP_DP_LINK_DIR "/%s", dp->root, bpf_program__name(prog));

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
int ep_dp_sock_hooks_attach(struct ep_datapath *dp, const char *runtime_dir, char *err,
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
		rc = ep_dp_pin_maps(dp->sock_skel->obj, dp->root, dp->ct_size, err, errlen);
		if (!rc && (rc = sock_dns__load(dp->sock_skel)))
			snprintf(err, errlen, "cannot load the socket hook object: %s", strerror(-rc));
		if (rc) {
			ep_dp_sock_hooks_close(dp);
			return rc;
		}
	}
	snprintf(path, sizeof(path), "%s/" EP_DP_LINK_DIR, dp->root);
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
void ep_dp_sock_hooks_detach(struct ep_datapath *dp)
{
	char path[PATH_MAX + 64];

	/* The directory holds only these links. */
	snprintf(path, sizeof(path), "%s/" EP_DP_LINK_DIR, dp->root);
	ep_rm_rf(path);
	dp->cgroup[0] = '\0';
	ep_dp_sock_hooks_close(dp);
}
