// SPDX-License-Identifier: GPL-2.0
/*
 * ep_mirror_pick — which client ports of a flow set the datapath mirrors:
 * the same ep_mirror_hash / ep_mirror_sampled the TC program runs
 * (include/ep_mirror.h), so a test knows the expected set in advance.
 *
 *   ep_mirror_pick CLIENT VIP VPORT tcp|udp PERCENT_BP FIRST_PORT LAST_PORT
 *
 * prints the sampled client ports, one a line.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "ep_mirror.h"

int main(int argc, char **argv)
{
	struct ep_flow_key k;
	struct ep_ip client, vip;
	unsigned long bp, first, last;

	if (argc != 8 || ep_ip_parse(argv[1], &client) || ep_ip_parse(argv[2], &vip) ||
	    client.family != vip.family) {
		fprintf(stderr, "usage: %s CLIENT VIP VPORT tcp|udp PERCENT_BP FIRST_PORT LAST_PORT\n",
			argv[0]);
		return 2;
	}
	bp = strtoul(argv[5], NULL, 10);
	first = strtoul(argv[6], NULL, 10);
	last = strtoul(argv[7], NULL, 10);
	memset(&k, 0, sizeof(k));
	memcpy(k.src, client.addr, sizeof(k.src));
	memcpy(k.dst, vip.addr, sizeof(k.dst));
	k.dport = htons((uint16_t)strtoul(argv[3], NULL, 10));
	k.proto = !strcmp(argv[4], "udp") ? 17 : 6;
	k.family = client.family;
	for (unsigned long p = first; p <= last && p < 65536; p++) {
		k.sport = htons((uint16_t)p);
		if (ep_mirror_sampled(ep_mirror_hash(&k), (uint32_t)bp))
			printf("%lu\n", p);
	}
	return 0;
}
