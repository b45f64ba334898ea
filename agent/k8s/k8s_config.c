/*
 * Config section of the Kubernetes client: whether to report to a cluster,
 * where the API server and service account are, and what the node label and
 * Events are called. Names are checked with the validators the client uses at
 * run time (cache/dns_name.h), so a file that --check-config accepts cannot
 * be refused when the client starts.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "config_schema.h"
#include "dns_name.h"

static const struct ep_cfg_enum k8s_enabled[] = {
	{ "auto", EP_K8S_AUTO },
	{ "true", EP_K8S_ON },
	{ "false", EP_K8S_OFF },
	{ NULL, 0 },
};

static bool valid_https_url(const char *s)
{
	return !strncmp(s, "https://", 8) && s[8] && !strpbrk(s, " \t\r\n");
}

static bool valid_namespace(const char *s)
{
	return ep_dns_label_ok(s, strlen(s));
}

static const struct ep_cfg_field k8s_fields[] = {
	{ .key = "enabled", .kind = EP_CFG_ENUM, EP_CFG_MEMBER(struct ep_cfg_kubernetes, enabled),
	  .enums = k8s_enabled },
	{ .key = "api_server", .kind = EP_CFG_STR,
	  EP_CFG_MEMBER(struct ep_cfg_kubernetes, api_server), .min = 9, .max = 255,
	  .expect = "an https:// URL", .valid_str = valid_https_url },
	{ .key = "token_file", .kind = EP_CFG_STR,
	  EP_CFG_MEMBER(struct ep_cfg_kubernetes, token_file), .min = 1, .max = PATH_MAX - 1,
	  .expect = "an absolute path", .valid_str = ep_cfg_valid_abspath },
	{ .key = "ca_file", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_cfg_kubernetes, ca_file),
	  .min = 1, .max = PATH_MAX - 1, .expect = "an absolute path",
	  .valid_str = ep_cfg_valid_abspath },
	{ .key = "dns_unhealthy_label", .kind = EP_CFG_STR,
	  EP_CFG_MEMBER(struct ep_cfg_kubernetes, dns_unhealthy_label), .min = 1, .max = 253,
	  .expect = "a Kubernetes label key (prefix/name)", .valid_str = ep_label_key_ok },
	{ .key = "event_namespace", .kind = EP_CFG_STR,
	  EP_CFG_MEMBER(struct ep_cfg_kubernetes, event_namespace), .min = 1, .max = 63,
	  .expect = "a namespace name", .valid_str = valid_namespace },
};

static const struct ep_cfg_schema k8s_schema = {
	.what = "a mapping (enabled, api_server, token_file, ca_file, dns_unhealthy_label, ...)",
	.fields = k8s_fields,
	.n_fields = EP_CFG_ARRAY_LEN(k8s_fields),
};

void ep_cfg_kubernetes_defaults(struct ep_cfg_kubernetes *k)
{
	k->enabled = EP_K8S_AUTO;
	snprintf(k->token_file, sizeof(k->token_file), "%s", EP_K8S_DEFAULT_TOKEN_FILE);
	snprintf(k->ca_file, sizeof(k->ca_file), "%s", EP_K8S_DEFAULT_CA_FILE);
	snprintf(k->dns_unhealthy_label, sizeof(k->dns_unhealthy_label), "%s",
		 EP_K8S_DEFAULT_LABEL);
	snprintf(k->event_namespace, sizeof(k->event_namespace), "%s", EP_K8S_DEFAULT_EVENT_NS);
}

static void k8s_defaults(struct ep_config *cfg)
{
	ep_cfg_kubernetes_defaults(&cfg->kubernetes);
}

const struct ep_cfg_section ep_cfg_kubernetes_section = {
	.field = { .key = "kubernetes", .kind = EP_CFG_MAP,
		   EP_CFG_MEMBER(struct ep_config, kubernetes), .sub = &k8s_schema },
	.defaults = k8s_defaults,
};
