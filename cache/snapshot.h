/*
 * A preload snapshot in memory: every name of the hosts file with its
 * addresses. The cache serves from the file; the agent keeps this to know
 * which names the snapshot has (policy responder) and what they resolve to
 * (hijack detection compares upstream answers with it).
 */
#ifndef EP_SNAPSHOT_H
#define EP_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dns_name.h"
#include "dns_query.h"

struct ep_snapshot_entry {
	char *name; /* lowercase, no trailing dot */
	uint32_t first, count; /* into addrs */
};

struct ep_snapshot {
	struct ep_snapshot_entry *slots; /* open addressing, power-of-two size */
	size_t n_slots, n_names;
	struct ep_dns_addr *addrs;
	size_t n_addrs, cap_addrs;
	size_t records; /* address lines read */
	time_t mtime;
};

/* Loads a hosts file ("ADDRESS NAME..." lines). 0, -ENOENT, -errno. */
int ep_snapshot_load(const char *path, struct ep_snapshot *s);
/* Addresses of name (case-insensitive); false when the name is not there. */
bool ep_snapshot_find(const struct ep_snapshot *s, const char *name, const struct ep_dns_addr **v,
		      size_t *n);
/* Copies the names into a nameset (for the policy responder). */
int ep_snapshot_names(const struct ep_snapshot *s, struct ep_nameset *out);
void ep_snapshot_free(struct ep_snapshot *s);
/* Adds one address of name (lowercased); 0 or -ENOMEM. For snapshots built
 * in memory (the builder's new one, tests). */
int ep_snapshot_add(struct ep_snapshot *s, const char *name, const struct ep_dns_addr *a);

/*
 * The change guard: poisoning looks like change, not loss. A name "changed"
 * when it is in both snapshots and its address set differs (an address
 * added, removed or replaced; order and duplicates do not count).
 */
struct ep_change {
	size_t old_names;   /* names in the previous snapshot */
	size_t both;	    /* of those, names also in the new one */
	size_t changed;	    /* of those, names whose address set differs */
	double changed_pct; /* changed * 100 / old_names; 0 when there was none */
};

/* Compares; calls each_changed (may be NULL) for every changed name. */
void ep_snapshot_change(const struct ep_snapshot *old, const struct ep_snapshot *cur,
			struct ep_change *ch, void (*each_changed)(const char *name, void *arg),
			void *arg);
/* True when more than max_pct percent of the old names changed. */
bool ep_change_exceeds(const struct ep_change *ch, double max_pct);

#endif
