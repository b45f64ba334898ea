/*
 * Traffic mirroring (docs/grayscale.md#mirroring): the config keys of
 * services[].mirror and the runtime side. The agent loads tc/tc_mirror.bpf.c
 * (maps pinned like the others), attaches it to TC ingress of every
 * configured interface while some service is mirrored, creates and owns the
 * VXLAN devices of VXLAN targets, programs ep_mirror_cfg per service and
 * reads the per-CPU counters for metrics.
 */
#ifndef EP_MIRROR_AGENT_H
#define EP_MIRROR_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "edgeplane_abi.h"

struct ep_cfg_schema;
struct ep_cfg_ctx;
struct ep_datapath;
struct ep_services;
struct ep_strbuf;

/* mirror_config.c */
extern const struct ep_cfg_schema ep_cfg_mirror_schema;
/* Defaults and rules across keys; runs from the services section's check. */
void ep_cfg_mirror_check(struct ep_cfg_ctx *c, struct ep_config *cfg);

/* The token bucket's depth for a rate: 100 ms worth, and at least two
 * 64 KiB GSO packets so a cap below the traffic's burst still lets whole
 * packets through. */
uint64_t ep_mirror_burst(uint64_t rate);

/* mirror.c */
struct ep_mirror;

/* Makes the datapath mirror what cfg says (services already applied, so
 * every service has its id): loads the program on first use, attaches or
 * detaches it, creates or removes VXLAN devices, writes ep_mirror_cfg.
 * *mp is created on first use. 0, or -errno with err filled. */
int ep_mirror_apply(struct ep_mirror **mp, struct ep_datapath *dp, const struct ep_services *svcs,
		    const struct ep_config *cfg, char *err, size_t errlen);
/* mirror_packets_total{service}, mirror_drops_total{service,reason},
 * mirror_bytes_total{service}. m may be NULL (nothing mirrored yet). */
void ep_mirror_metrics(struct ep_mirror *m, const struct ep_services *svcs, struct ep_strbuf *b);
/* Per-service counters summed over CPUs; 0 or -errno. */
int ep_mirror_stats_read(int fd, uint32_t svc_id, struct ep_mirror_stats *sum);
/* --detach-on-exit: detach from every interface and delete our VXLAN devices. */
void ep_mirror_detach_all(struct ep_mirror *m, struct ep_datapath *dp);
/* Frees user-space handles; the kernel state (attachment, devices) stays. */
void ep_mirror_free(struct ep_mirror *m);

extern const char *const ep_mirror_drop_names[EP_MIRROR_DROP_MAX];

#endif
