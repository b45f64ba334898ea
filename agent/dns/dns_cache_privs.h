/*
 * What the DNS cache needs from the agent's privileges, checked once when
 * the cache starts, so that a missing one is said at start-up rather than
 * found out at the first preload nobody reads.
 */
#ifndef EP_DNS_CACHE_PRIVS_H
#define EP_DNS_CACHE_PRIVS_H

#include <stddef.h>

/* Warns when any user may bind the policy responder's port; refuses (-EPERM
 * and why in err) a root agent without CAP_KILL. 0 when the cache may start. */
int ep_dns_cache_check_privs(char *err, size_t errlen);

#endif
