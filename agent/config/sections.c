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
	X(kubernetes) /* agent/k8s/k8s_config.c */         \
	X(certs)      /* agent/certs/certs_config.c */

#define DECLARE(name) extern const struct ep_cfg_section ep_cfg_##name##_section;
#define ENTRY(name) &ep_cfg_##name##_section,

SECTIONS(DECLARE)

const struct ep_cfg_section *const ep_cfg_sections[] = { SECTIONS(ENTRY) };

const size_t ep_cfg_n_sections = EP_CFG_ARRAY_LEN(ep_cfg_sections);

_Static_assert(EP_CFG_ARRAY_LEN(ep_cfg_sections) <= EP_CFG_MAX_FIELDS, "raise EP_CFG_MAX_FIELDS");
