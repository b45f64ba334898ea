/* What mirror.c and mirror_vxlan.c share; nothing else includes it. */
#ifndef EP_MIRROR_INT_H
#define EP_MIRROR_INT_H

#include <net/if.h>
#include <stdint.h>

#include "addr.h"
#include "mirror.h"

#define EP_MIRROR_VXLAN_PREFIX "epmx"

/* "epmx<vni><port>": the device of a VNI and port. */
void ep_mirror_vxlan_name(uint32_t vni, uint16_t port, char name[IFNAMSIZ]);
/* Creates it up, encapsulating to remote; a device of that name is updated
 * in place. */
int ep_mirror_vxlan_add(const char *name, const struct ep_ip *remote, uint32_t vni,
			uint16_t port);
int ep_mirror_vxlan_del(const char *name);

#endif
