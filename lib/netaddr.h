/* Local addresses via rtnetlink: is an address on any interface of this
 * network namespace, and putting one on the loopback device (as
 * NodeLocal DNSCache does with its link-local address). */
#ifndef EP_NETADDR_H
#define EP_NETADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

bool ep_addr_is_local(const struct ep_ip *ip);
/* Adds ip/32 (/128) to lo. 0, or -errno with err filled. */
int ep_addr_add_lo(const struct ep_ip *ip, char *err, size_t errlen);
int ep_addr_del_lo(const struct ep_ip *ip);

#endif
