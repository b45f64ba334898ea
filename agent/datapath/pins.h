/*
 * Pins: where the datapath's maps and programs live on the bpffs, and the
 * check that what is pinned there can be reused by this build.
 *
 * The set of pinned maps is whatever the BPF objects declare: every map
 * whose name starts with "ep_" is pinned as <root>/maps/<name>, found by
 * walking the skeleton's object, so a map added to a .bpf.c is pinned (and
 * reused after a restart or an upgrade) without touching the loader. Maps
 * with other names are per-object scratch state (ep_dns_maps.bpf.h).
 * Programs are pinned as <root>/progs/<name>, cgroup links as
 * <root>/links/<program> (docs/datapath.md, docs/dns-failover.md).
 */
#ifndef EP_PINS_H
#define EP_PINS_H

#include <stddef.h>
#include <stdint.h>

struct bpf_object;

/* "<root>/maps/<name>", or -ENAMETOOLONG. */
int ep_dp_map_pin_path(const char *root, const char *name, char *path, size_t len);

/* Is name a map the datapath pins (as opposed to per-object scratch)? */
int ep_dp_map_is_pinned(const char *name);

/* Before loading obj: points every pinned map of obj at its pin, so the
 * load reuses a pinned map or creates and pins it. ct_size sizes the
 * conntrack maps; a pinned conntrack of another size is refused with a
 * reason in err. 0 or -errno. */
int ep_dp_pin_maps(struct bpf_object *obj, const char *root, uint32_t ct_size, char *err,
		   size_t errlen);

/* After loading obj: pins each of its programs as <root>/progs/<name>,
 * replacing an older pin (a failure is logged: the pin is for operators). */
void ep_dp_pin_progs(struct bpf_object *obj, const char *root);
void ep_dp_pin_prog(const char *root, const char *name, int fd);

/* Removes the pins of the maps obj declares, except those keep (may be
 * NULL) declares too; with progs, the pins of its programs as well. obj
 * only needs to be opened, not loaded. */
void ep_dp_unpin(struct bpf_object *obj, struct bpf_object *keep, const char *root, int progs);

#endif
