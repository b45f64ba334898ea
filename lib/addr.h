/* IP address and endpoint parsing/formatting shared by agent, CLI and tests. */
#ifndef EP_ADDR_H
#define EP_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgeplane_abi.h"

/* Same layout rules as the datapath ABI: network order, IPv4 in word 0. */
struct ep_ip {
	uint8_t family; /* EP_FAMILY_V4 or EP_FAMILY_V6 */
	uint32_t addr[4];
};

#define EP_IP_STRLEN 46	      /* INET6_ADDRSTRLEN */
#define EP_ENDPOINT_STRLEN 56 /* "[v6]:port" */

/* "10.0.0.1" or "fd00::1"; returns 0 or -EINVAL. */
int ep_ip_parse(const char *s, struct ep_ip *out);
/* Formats into buf (at least EP_IP_STRLEN); returns buf. */
const char *ep_ip_str(const struct ep_ip *ip, char *buf, size_t len);
/* "10.0.0.1:80" or "[fd00::1]:80"; returns 0 or -EINVAL. */
/* A decimal port 1-65535, nothing else. */
int ep_port_parse(const char *s, uint16_t *port);
int ep_endpoint_parse(const char *s, struct ep_ip *ip, uint16_t *port);
/* "10.0.0.1:80" / "[fd00::1]:80" into buf (at least EP_ENDPOINT_STRLEN). */
const char *ep_endpoint_str(const struct ep_ip *ip, uint16_t port, char *buf, size_t len);
bool ep_ip_eq(const struct ep_ip *a, const struct ep_ip *b);
/* Host/port for listeners: "127.0.0.1:9464", "[::1]:9464", ":9464". */
int ep_hostport_parse(const char *s, char *host, size_t hostlen, uint16_t *port);

#endif
