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

#endif
