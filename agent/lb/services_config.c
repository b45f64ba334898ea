/*
 * Config section of the load balancer: services, each with its backends,
 * canary split and mirroring (whose keys live in agent/canary/mirror_config.c).
 * Rules across keys live here because they are the datapath's limits seen
 * from the config: unique names and VIP:port/proto, backends of the VIP's
 * family, the backend map's capacity, the reverse NAT map's services per
 * backend, and a Maglev table large enough for the biggest service.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_schema.h"
#include "edgeplane_abi.h"
#include "maglev.h"
#include "mirror.h"

/* Maglev spreads well only when the table dwarfs the backend count. */
#define MAGLEV_FACTOR 10

static const struct ep_cfg_enum protos[] = {
	{ "tcp", IPPROTO_TCP },
	{ "udp", IPPROTO_UDP },
	{ NULL, 0 },
};

static const struct ep_cfg_enum stickies[] = {
	{ "client", 0 },
	{ "flow", 1 },
	{ NULL, 0 },
};

static const struct ep_cfg_field backend_fields[] = {
	{ .key = "address", .kind = EP_CFG_IP, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_backend, addr) },
	{ .key = "port", .kind = EP_CFG_INT, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_backend, port), .min = 1, .max = 65535 },
	{ .key = "weight", .kind = EP_CFG_INT, EP_CFG_MEMBER(struct ep_cfg_backend, weight),
	  .min = 0, .max = 65535 },
	{ .key = "canary", .kind = EP_CFG_BOOL, EP_CFG_MEMBER(struct ep_cfg_backend, canary) },
};

static const struct ep_cfg_enum on_rollbacks[] = {
	{ "keep", EP_CANARY_KEEP },
	{ "reset", EP_CANARY_RESET },
	{ NULL, 0 },
};

/* canary.rollback (agent/canary/rollback.c applies the rule). */
static const struct ep_cfg_field rollback_fields[] = {
	{ .key = "enabled", .kind = EP_CFG_BOOL,
	  EP_CFG_MEMBER(struct ep_cfg_canary_rollback, enabled) },
	{ .key = "window_ms", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_canary_rollback, window_ms), .min = 20, .max = 60000 },
	{ .key = "min_samples", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_canary_rollback, min_samples), .min = 1, .max = 1000000 },
	{ .key = "max_failure_ratio", .kind = EP_CFG_RATIO,
	  EP_CFG_MEMBER(struct ep_cfg_canary_rollback, max_failure_bp) },
	{ .key = "margin", .kind = EP_CFG_RATIO,
	  EP_CFG_MEMBER(struct ep_cfg_canary_rollback, margin_bp) },
};

static const struct ep_cfg_schema rollback_schema = {
	.what = "a mapping (enabled, window_ms, min_samples, max_failure_ratio, margin)",
	.fields = rollback_fields,
	.n_fields = EP_CFG_ARRAY_LEN(rollback_fields),
};

static const struct ep_cfg_field canary_fields[] = {
	{ .key = "percent", .kind = EP_CFG_PERCENT, EP_CFG_MEMBER(struct ep_cfg_canary, percent_bp) },
	{ .key = "sticky", .kind = EP_CFG_ENUM, EP_CFG_MEMBER(struct ep_cfg_canary, sticky_flow),
	  .enums = stickies },
	{ .key = "http", .kind = EP_CFG_BOOL, EP_CFG_MEMBER(struct ep_cfg_canary, http) },
	{ .key = "steps", .kind = EP_CFG_PERCENT_LIST, EP_CFG_MEMBER(struct ep_cfg_canary, steps_bp),
	  .count_off = offsetof(struct ep_cfg_canary, n_steps), .min = 1,
	  .max = EP_CFG_MAX_CANARY_STEPS },
	{ .key = "step_interval_s", .kind = EP_CFG_INT,
	  EP_CFG_MEMBER(struct ep_cfg_canary, step_interval_s), .min = 1, .max = 86400 },
	{ .key = "rollback", .kind = EP_CFG_MAP, EP_CFG_MEMBER(struct ep_cfg_canary, rollback),
	  .sub = &rollback_schema },
	{ .key = "on_rollback", .kind = EP_CFG_ENUM,
	  EP_CFG_MEMBER(struct ep_cfg_canary, on_rollback), .enums = on_rollbacks },
};

static void backend_defaults(void *item)
{
	struct ep_cfg_backend *b = item;

	b->weight = 1;
}

static const struct ep_cfg_schema backend_schema = {
	.what = "a backend mapping (address, port, weight, canary)",
	.fields = backend_fields,
	.n_fields = EP_CFG_ARRAY_LEN(backend_fields),
	.item_size = sizeof(struct ep_cfg_backend),
	.line_off = offsetof(struct ep_cfg_backend, line),
	.max_items = EP_CFG_MAX_BACKENDS_PER_SVC,
	.defaults = backend_defaults,
};

static const struct ep_cfg_schema canary_schema = {
	.what = "a mapping (percent, sticky, http, steps, step_interval_s, rollback, on_rollback)",
	.fields = canary_fields,
	.n_fields = EP_CFG_ARRAY_LEN(canary_fields),
};

/* Service names become metric labels and CLI arguments: keep them tame. */
static bool svc_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static bool valid_svc_name(const char *s)
{
	size_t i, len = strlen(s);

	if (!len || !svc_alnum(s[0]) || !svc_alnum(s[len - 1]))
		return false;
	for (i = 1; i + 1 < len; i++)
		if (!svc_alnum(s[i]) && !strchr("-_.", s[i]))
			return false;
	return true;
}

static const struct ep_cfg_field service_fields[] = {
	{ .key = "name", .kind = EP_CFG_STR, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_service, name), .min = 1, .max = 63,
	  .expect = "a service name ([a-z0-9]([-a-z0-9_.]*[a-z0-9])?, at most 63 characters)",
	  .valid_str = valid_svc_name },
	{ .key = "vip", .kind = EP_CFG_IP, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_service, vip) },
	{ .key = "port", .kind = EP_CFG_INT, .required = true,
	  EP_CFG_MEMBER(struct ep_cfg_service, port), .min = 1, .max = 65535 },
	{ .key = "protocol", .kind = EP_CFG_ENUM, EP_CFG_MEMBER(struct ep_cfg_service, proto),
	  .enums = protos },
	{ .key = "backends", .kind = EP_CFG_SEQ, EP_CFG_MEMBER(struct ep_cfg_service, backends),
	  .count_off = offsetof(struct ep_cfg_service, n_backends), .sub = &backend_schema },
	{ .key = "canary", .kind = EP_CFG_MAP, EP_CFG_MEMBER(struct ep_cfg_service, canary),
	  .sub = &canary_schema, .has_present = true,
	  .present_off = offsetof(struct ep_cfg_canary, present) },
	{ .key = "mirror", .kind = EP_CFG_MAP, EP_CFG_MEMBER(struct ep_cfg_service, mirror),
	  .sub = &ep_cfg_mirror_schema, .has_present = true,
	  .present_off = offsetof(struct ep_cfg_mirror, configured) },
};

_Static_assert(EP_CFG_ARRAY_LEN(service_fields) <= EP_CFG_MAX_FIELDS &&
		       EP_CFG_ARRAY_LEN(backend_fields) <= EP_CFG_MAX_FIELDS,
	       "raise EP_CFG_MAX_FIELDS");

static void service_defaults(void *item)
{
	struct ep_cfg_service *s = item;

	s->proto = IPPROTO_TCP;
	s->canary.step_interval_s = 60;
	s->canary.rollback = (struct ep_cfg_canary_rollback){
		.enabled = true, .window_ms = 100, .min_samples = 20, .max_failure_bp = 500,
		.margin_bp = 200,
	};
}

static const struct ep_cfg_schema service_schema = {
	.what = "a service mapping (name, vip, port, protocol, backends, canary, mirror)",
	.fields = service_fields,
	.n_fields = EP_CFG_ARRAY_LEN(service_fields),
	.item_size = sizeof(struct ep_cfg_service),
	.line_off = offsetof(struct ep_cfg_service, line),
	.max_items = EP_MAX_SERVICES,
	.defaults = service_defaults,
};

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "udp" : "tcp";
}

struct be_ref {
	const struct ep_cfg_backend *be;
	uint8_t proto;
	size_t svc, idx;
};

/* Orders by address:port/proto only: equal means "the same backend". */
static int be_ref_key_cmp(const struct be_ref *a, const struct be_ref *b)
{
	int d;

	if (a->be->addr.family != b->be->addr.family)
		return a->be->addr.family < b->be->addr.family ? -1 : 1;
	d = memcmp(a->be->addr.addr, b->be->addr.addr, sizeof(a->be->addr.addr));
	if (d)
		return d;
	if (a->be->port != b->be->port)
		return a->be->port < b->be->port ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return 0;
}

/* ...then in file order, so the service reported is the first one too many. */
static int be_ref_cmp(const void *pa, const void *pb)
{
	const struct be_ref *a = pa, *b = pb;
	int d = be_ref_key_cmp(a, b);

	if (d)
		return d;
	if (a->svc != b->svc)
		return a->svc < b->svc ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* The reverse NAT map holds at most EP_MAX_SVCS_PER_BACKEND services per
 * backend address:port/proto. */
static void check_shared_backends(struct ep_cfg_ctx *c, const struct ep_config *cfg, size_t total)
{
	struct be_ref *refs;
	size_t i, j, n = 0, start, nsvc;
	char key[96], ep[EP_ENDPOINT_STRLEN];

	if (!total)
		return;
	refs = calloc(total, sizeof(*refs));
	if (!refs) {
		ep_cfg_oom(c);
		return;
	}
	for (i = 0; i < cfg->n_services; i++) {
		for (j = 0; j < cfg->services[i].n_backends; j++) {
			const struct ep_cfg_backend *b = &cfg->services[i].backends[j];

			if (!b->addr.family || !b->port)
				continue;
			refs[n++] = (struct be_ref){ b, cfg->services[i].proto, i, j };
		}
	}
	qsort(refs, n, sizeof(*refs), be_ref_cmp);
	for (start = 0; start < n; start = i) {
		nsvc = 0;
		for (i = start; i < n && !be_ref_key_cmp(&refs[start], &refs[i]); i++) {
			if (i > start && refs[i].svc == refs[i - 1].svc)
				continue;
			if (++nsvc == EP_MAX_SVCS_PER_BACKEND + 1) {
				const struct ep_cfg_service *s = &cfg->services[refs[i].svc];

				snprintf(key, sizeof(key), "services[%zu].backends[%zu]",
					 refs[i].svc, refs[i].idx);
				ep_cfg_err(c, ep_cfg_line(c, key, 0), key,
					   "backend %s/%s is used by more than %d services ('%s' is "
					   "number %d; first is '%s')",
					   ep_endpoint_str(&refs[i].be->addr, refs[i].be->port, ep,
							   sizeof(ep)),
					   proto_name(refs[i].proto), EP_MAX_SVCS_PER_BACKEND, s->name,
					   EP_MAX_SVCS_PER_BACKEND + 1,
					   cfg->services[refs[start].svc].name);
			}
		}
	}
	free(refs);
}

/* A ramp decides the share itself, from its first step; a fixed percent
 * beside it would say two things. HTTP status lines only come over TCP. */
static void check_canary(struct ep_cfg_ctx *c, const struct ep_cfg_service *s, size_t i)
{
	char key[96];

	if (s->canary.n_steps && s->canary.percent_bp) {
		snprintf(key, sizeof(key), "services[%zu].canary.percent", i);
		ep_cfg_err(c, ep_cfg_line(c, key, s->line), key,
			   "give either percent or steps: a ramp starts at its first step");
	}
	if (s->canary.http && s->proto != IPPROTO_TCP) {
		snprintf(key, sizeof(key), "services[%zu].canary.http", i);
		ep_cfg_err(c, ep_cfg_line(c, key, s->line), key,
			   "HTTP status lines are read on TCP services only");
	}
}

static void services_check(struct ep_cfg_ctx *c, struct ep_config *cfg)
{
	size_t i, j, k, total = 0, max_be = 0, max_svc = 0;
	char key[96], a[EP_IP_STRLEN], ep[EP_ENDPOINT_STRLEN];

	for (i = 0; i < cfg->n_services; i++) {
		const struct ep_cfg_service *s = &cfg->services[i];

		for (j = 0; s->name[0] && j < i; j++) {
			if (strcmp(s->name, cfg->services[j].name))
				continue;
			snprintf(key, sizeof(key), "services[%zu].name", i);
			ep_cfg_err(c, ep_cfg_line(c, key, s->line), key,
				   "duplicate service name '%s' (also services[%zu], line %d)", s->name,
				   j, cfg->services[j].line);
			break;
		}
		for (j = 0; s->vip.family && s->port && j < i; j++) {
			const struct ep_cfg_service *o = &cfg->services[j];

			if (!ep_ip_eq(&s->vip, &o->vip) || s->port != o->port || s->proto != o->proto)
				continue;
			snprintf(key, sizeof(key), "services[%zu].vip", i);
			ep_cfg_err(c, ep_cfg_line(c, key, s->line), key,
				   "%s/%s is already used by service '%s' (services[%zu], line %d)",
				   ep_endpoint_str(&s->vip, s->port, ep, sizeof(ep)),
				   proto_name(s->proto), o->name, j, o->line);
			break;
		}
		for (j = 0; j < s->n_backends; j++) {
			const struct ep_cfg_backend *b = &s->backends[j];

			if (!b->addr.family)
				continue;
			snprintf(key, sizeof(key), "services[%zu].backends[%zu].address", i, j);
			if (s->vip.family && b->addr.family != s->vip.family)
				ep_cfg_err(c, ep_cfg_line(c, key, b->line), key,
					   "IPv%d backend for the IPv%d VIP %s: a backend must have the "
					   "VIP's address family",
					   b->addr.family, s->vip.family, ep_ip_str(&s->vip, a, sizeof(a)));
			else if (s->vip.family && ep_ip_eq(&b->addr, &s->vip))
				ep_cfg_err(c, ep_cfg_line(c, key, b->line), key,
					   "the backend is the service's own VIP");
			for (k = 0; b->port && k < j; k++) {
				if (!ep_ip_eq(&b->addr, &s->backends[k].addr) ||
				    b->port != s->backends[k].port)
					continue;
				snprintf(key, sizeof(key), "services[%zu].backends[%zu]", i, j);
				ep_cfg_err(c, ep_cfg_line(c, key, b->line), key,
					   "duplicate backend %s (also backends[%zu], line %d)",
					   ep_endpoint_str(&b->addr, b->port, ep, sizeof(ep)), k,
					   s->backends[k].line);
				break;
			}
		}
		check_canary(c, s, i);
		total += s->n_backends;
		if (s->n_backends > max_be) {
			max_be = s->n_backends;
			max_svc = i;
		}
	}
	if (total > EP_MAX_BACKENDS)
		ep_cfg_err(c, ep_cfg_line(c, "services", 0),
			   "services", "%zu backends in total; the datapath holds at most %d", total,
			   EP_MAX_BACKENDS);
	/* An invalid size was already reported; the default would only confuse. */
	if (max_be && !ep_cfg_has_error(c, "datapath.maglev_table_size") &&
	    cfg->datapath.maglev_table_size < MAGLEV_FACTOR * max_be) {
		snprintf(key, sizeof(key), "services[%zu].backends", max_svc);
		ep_cfg_err(c, ep_cfg_line(c, key, 0), key,
			   "service '%s' has %zu backends; datapath.maglev_table_size (%u) must be at "
			   "least %d times that (a prime >= %zu, e.g. %u)",
			   cfg->services[max_svc].name, max_be, cfg->datapath.maglev_table_size,
			   MAGLEV_FACTOR, MAGLEV_FACTOR * max_be,
			   ep_next_prime((uint32_t)(MAGLEV_FACTOR * max_be)));
	}
	check_shared_backends(c, cfg, total);
	ep_cfg_mirror_check(c, cfg);
}

const struct ep_cfg_section ep_cfg_services_section = {
	.field = { .key = "services", .kind = EP_CFG_SEQ,
		   EP_CFG_MEMBER(struct ep_config, services),
		   .count_off = offsetof(struct ep_config, n_services), .sub = &service_schema },
	.check = services_check,
};

const struct ep_cfg_service *ep_config_find_service(const struct ep_config *cfg, const char *name)
{
	size_t i;

	if (!cfg || !name)
		return NULL;
	for (i = 0; i < cfg->n_services; i++)
		if (!strcmp(cfg->services[i].name, name))
			return &cfg->services[i];
	return NULL;
}
