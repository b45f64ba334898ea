/*
 * Active DNS probes: every upstream is asked, every probe interval, for a
 * canary name with known answers (or, without canaries, a name of the
 * trusted snapshot, or a name that must not exist). Own non-blocking
 * sockets, connected to the upstream so the kernel drops datagrams from
 * any other source; a reply must also carry the query's id and question
 * (RFC 5452) or it is ignored. ldns builds and parses the messages.
 */
#ifndef EP_DNS_PROBE_H
#define EP_DNS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dns_health.h"
#include "dns_query.h"

/* What the snapshot says a name resolves to (for probes without canaries). */
typedef bool (*ep_probe_pick_fn)(void *arg, char *name, size_t namelen, struct ep_dns_addr *addrs,
				 size_t *n_addrs, size_t max);

struct ep_dns_prober;

struct ep_dns_prober *ep_dns_prober_new(const struct ep_cfg_dns *cfg, ep_probe_pick_fn pick,
					void *pick_arg);
/* Sends due probes, reads replies, expires unanswered ones. */
void ep_dns_prober_tick(struct ep_dns_prober *p, uint64_t now_ns);
/* Adds the results gathered for upstream i since the last call to *w. */
void ep_dns_prober_take(struct ep_dns_prober *p, size_t i, struct ep_dns_window *w);
/* Last probe outcome of upstream i, for status ("ok", "timeout", "wrong answer ..."). */
const char *ep_dns_prober_last(const struct ep_dns_prober *p, size_t i);
uint64_t ep_dns_prober_total(const struct ep_dns_prober *p, size_t i, int result);
void ep_dns_prober_free(struct ep_dns_prober *p);

enum ep_probe_result {
	EP_PROBE_OK = 0,
	EP_PROBE_TIMEOUT,
	EP_PROBE_SERVFAIL,
	EP_PROBE_WRONG,
	EP_PROBE_BOGUS,
	EP_PROBE_DIVERGENT,
	EP_PROBE_RESULTS
};
extern const char *const ep_probe_result_names[EP_PROBE_RESULTS];

#endif
