/*
 * The preload snapshot on disk: a hosts file in the format dnsmasq reads with
 * addn-hosts ("ADDRESS NAME" per line, '#' comments), written atomically, and
 * the loss guard that compares a new snapshot with the one it would replace.
 */
#ifndef EP_HOSTS_FILE_H
#define EP_HOSTS_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "dns_name.h"
#include "dns_query.h"
#include "util.h" /* ep_atomic_*: the preload and its report are written atomically */

/* "198.18.0.1" / "2001:db8::1" into buf (at least 46 bytes). */
const char *ep_dns_addr_str(const struct ep_dns_addr *a, char *buf, size_t len);
/* Orders A before AAAA, then by address bytes (for sorting and dedup). */
int ep_dns_addr_cmp(const void *a, const void *b);
/* Sorts and removes duplicates in place; returns the new count. */
size_t ep_dns_addr_sort_unique(struct ep_dns_addr *v, size_t n);

/*
 * Adds every name of a hosts file to names (lowercased; tokens that are not
 * valid names are skipped). Returns 0, -ENOENT when the file does not exist,
 * or another negative errno.
 */
int ep_hosts_read_names(const char *path, struct ep_nameset *names);

struct ep_loss {
	size_t old_names; /* names in the previous snapshot */
	size_t lost;	  /* of those, names absent from the new one */
	double lost_pct;  /* lost * 100 / old_names; 0 when there was none */
};

void ep_loss_compute(const struct ep_nameset *old, const struct ep_nameset *cur, struct ep_loss *l);
/* True when part is more than max_pct percent of whole (never when whole is
 * 0): the arithmetic of the loss and the change guards. */
bool ep_share_exceeds(size_t part, size_t whole, double max_pct);
/* True when the loss is more than max_pct percent of the old names. */
bool ep_loss_exceeds(const struct ep_loss *l, double max_pct);

#endif
