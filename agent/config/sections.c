/*
 * The registry of config sections. A section's descriptor (keys, defaults,
 * check; see config_schema.h) lives in its own file next to the code that
 * uses it, named ep_cfg_<name>_section; adding a section is that file plus
 * one X(<name>) line below. Order matters twice: it is the order of the
 * "allowed:" lists in unknown-key errors, and the order the checks run in
 * (the node name is settled before anything reports on it).
 */
#include "config_schema.h"

#define SECTIONS(X)                                   \
	X(node)	      /* agent/core/core_config.c */         \
	X(datapath)   /* agent/datapath/datapath_config.c */ \
	X(interfaces) /* agent/datapath/datapath_config.c */ \
	X(services)   /* agent/lb/services_config.c */       \
	X(metrics)    /* agent/core/core_config.c */         \
	X(control)    /* agent/core/core_config.c */         \
	X(dns)	      /* agent/dns/dns_config.c */           \
	X(kubernetes) /* agent/k8s/k8s_config.c */

#define DECLARE(name) extern const struct ep_cfg_section ep_cfg_##name##_section;
#define ENTRY(name) &ep_cfg_##name##_section,

SECTIONS(DECLARE)

/* A documented section (docs/config.md) this build refuses by name rather than as unknown. */
static const struct ep_cfg_section certs_section = {
	.field = { .key = "certs", .kind = EP_CFG_UNSUPPORTED,
		   .why = "certificate sync is not in this build" },
};

const struct ep_cfg_section *const ep_cfg_sections[] = { SECTIONS(ENTRY) &certs_section };

const size_t ep_cfg_n_sections = EP_CFG_ARRAY_LEN(ep_cfg_sections);

_Static_assert(EP_CFG_ARRAY_LEN(ep_cfg_sections) <= EP_CFG_MAX_FIELDS, "raise EP_CFG_MAX_FIELDS");
