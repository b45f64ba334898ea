/*
 * The string set of agent/ and cache/: unique strings kept in insertion
 * order (the order a domain list or snapshot gave them, so output built
 * from a set is stable), with a uthash index for membership. Owns its
 * strings. Lookups are exact and case-sensitive: callers insert normalised
 * names (cache/dns_name.h).
 */
#ifndef EP_LIB_NAMESET_H
#define EP_LIB_NAMESET_H

#include <stdbool.h>
#include <stddef.h>

struct ep_nameset_item;

struct ep_nameset {
	char **order;  /* names in insertion order, n of them */
	size_t n;
	size_t order_cap;
	struct ep_nameset_item *index; /* uthash head; the strings live in its items */
};

void ep_nameset_init(struct ep_nameset *s);
/* Returns 1 if added, 0 if already present, -ENOMEM. */
int ep_nameset_add(struct ep_nameset *s, const char *name);
bool ep_nameset_has(const struct ep_nameset *s, const char *name);
void ep_nameset_free(struct ep_nameset *s);

#endif
