/*
 * A hand-built agent config for the BPF tests and benchmarks: services and
 * backends added one by one (storage for up to SVC_CFG_MAX_SVC services of
 * SVC_CFG_MAX_BE backends, one config per process), and the per-CPU backend
 * counters summed.
 */
#ifndef EP_TEST_SVC_CFG_H
#define EP_TEST_SVC_CFG_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "edgeplane_abi.h"

#define SVC_CFG_MAX_SVC 16
#define SVC_CFG_MAX_BE 8

/* Empties cfg (node "test", the given Maglev table size, default conntrack)
 * and points its services at the shared storage. */
void svc_cfg_reset(struct ep_config *cfg, uint32_t maglev_table_size);
struct ep_cfg_service *svc_cfg_add(struct ep_config *cfg, const char *name, const char *vip,
				   uint16_t port, uint8_t proto);
void svc_cfg_add_be(struct ep_cfg_service *s, const char *addr, uint16_t port, uint32_t weight);
/* web4 10.0.0.100:80/tcp, dns4 :53/udp (backends 10.1.0.11-13:8080), web6 and
 * dns6 on fd00::100 (backends fd00:1::11-13:8080), weight 1 each. */
void svc_cfg_add_web_dns(struct ep_config *cfg);
/* The service called name, or NULL. */
struct ep_cfg_service *svc_cfg_find(struct ep_config *cfg, const char *name);

/* ep_backend_stats of backend id, summed over ncpu CPUs (zero if absent). */
struct ep_backend_stats backend_stats_read(int map_fd, uint32_t id, int ncpu);

/* The id of the valid backend addr:port (port in host order) in the
 * ep_backends map: the ids the agent gives are among the first 1024. A TCP
 * SYN leaves no conntrack entry to read it from, only XDP's output. */
struct ep_ip;
bool backend_id_of(int backends_fd, const struct ep_ip *addr, uint16_t port, uint32_t *bid);

#endif
