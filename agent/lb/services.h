/*
 * Services: turns the configured services into datapath map contents and
 * keeps them in step on every reload, applying only the difference.
 *
 * Identity: a service is its VIP:port/protocol (what the datapath keys on);
 * a backend is its address:port within a service. Ids live in the pinned
 * maps, so a restarted agent recovers them (and drain state) before applying
 * its config, and established flows keep their backend throughout.
 */
#ifndef EP_SERVICES_H
#define EP_SERVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "config.h"
#include "datapath.h"

struct ep_be_state {
	struct ep_ip addr;
	uint16_t port;
	uint32_t weight;
	bool canary;
	bool drained; /* runtime: `edgeplane backend drain` */
	bool removed; /* left the config; kept while flows may still use it */
	uint32_t id;
	char label[EP_ENDPOINT_STRLEN];
};

struct ep_svc_state {
	char name[EP_NAME_MAX];
	struct ep_endpoint key;
	struct ep_ip vip;
	uint16_t port;
	uint8_t proto;
	uint32_t id;
	uint32_t canary_bp; /* configured share */
	/* Runtime share set by agent/canary (rollback, ramp, operator); wins
	 * over canary_bp while set. */
	bool canary_override;
	uint32_t canary_override_bp;
	bool sticky_flow;
	struct ep_be_state *bes;
	size_t n_bes;
	uint64_t ring_sig[EP_RINGS_PER_SVC]; /* what the installed rings were built from */
	uint32_t ring_size[EP_RINGS_PER_SVC];
	uint32_t ring_members[EP_RINGS_PER_SVC];
	bool seen; /* scratch during apply */
};

struct ep_services {
	const struct ep_map_fds *maps;
	uint32_t table_size;
	struct ep_svc_state *svcs;
	size_t n_svcs;
	uint8_t *svc_ids; /* in-use bitmaps */
	uint8_t *be_ids;
};

int ep_services_init(struct ep_services *s, const struct ep_map_fds *maps);
/* Reads ids, backends and drain state back from the pinned maps. */
int ep_services_recover(struct ep_services *s);
/* Makes the maps match cfg. On error the message names what failed; maps may
 * hold part of the new config (every single write keeps them consistent). */
int ep_services_apply(struct ep_services *s, const struct ep_config *cfg, char *err, size_t errlen);
/* Drain (true) or undrain a backend "ADDR:PORT" of a service. */
int ep_services_drain(struct ep_services *s, const char *svc, const char *backend, bool drain,
		      char *err, size_t errlen);
/* Frees ids of removed backends no flow references (bitmap from the ct scan). */
void ep_services_release_unreferenced(struct ep_services *s, const uint8_t *ref_bitmap);
void ep_services_free(struct ep_services *s);

const struct ep_svc_state *ep_services_find(const struct ep_services *s, const char *name);

/* The share the datapath applies: the runtime one while set, else the
 * configured one; 0 without a canary backend. */
uint32_t ep_services_canary_share(const struct ep_svc_state *st);
/* Sets (override) or clears the runtime share of a service and writes it
 * to the datapath in one map update. */
int ep_services_set_canary(struct ep_services *s, const char *name, bool override, uint32_t bp);

#endif
