/*
 * Config sections of the daemon itself: node (who we are), metrics (where
 * the exporter listens) and control (the CLI's socket). The node name falls
 * back to $NODE_NAME, then the hostname, after the walk, so a name from the
 * file always wins and a bad $NODE_NAME is reported like a bad key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "config_schema.h"
#include "control.h"

#define DEFAULT_METRICS "127.0.0.1:9464"
/* bind() on a unix socket fails beyond sun_path. */
#define SOCK_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

static const struct ep_cfg_field node_fields[] = {
	{ .key = "name", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_config, node_name), .min = 1,
	  .max = 253, .expect = "a node name (1-253 characters)", .valid_str = ep_cfg_valid_text },
};

static const struct ep_cfg_schema node_schema = {
	.what = "a mapping (name)",
	.fields = node_fields,
	.n_fields = EP_CFG_ARRAY_LEN(node_fields),
};

static void node_check(struct ep_cfg_ctx *c, struct ep_config *cfg)
{
	const char *env = getenv("NODE_NAME");
	char host[256];

	if (cfg->node_name[0])
		return;
	if (env && *env) {
		if (strlen(env) > 253 || !ep_cfg_valid_text(env))
			ep_cfg_err(c, 0, "node.name",
				   "not set, and $NODE_NAME is not a valid default (1-253 characters)");
		else
			snprintf(cfg->node_name, sizeof(cfg->node_name), "%s", env);
		return;
	}
	if (gethostname(host, sizeof(host)) || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(cfg->node_name, sizeof(cfg->node_name), "%.253s", host);
}

const struct ep_cfg_section ep_cfg_node_section = {
	.field = { .key = "node", .kind = EP_CFG_MAP, .off = 0, .sub = &node_schema },
	.check = node_check,
};

static const struct ep_cfg_field metrics_fields[] = {
	{ .key = "listen", .kind = EP_CFG_HOSTPORT, EP_CFG_MEMBER(struct ep_config, metrics_listen),
	  .expect = "host:port with an IP address (127.0.0.1:9464, [::1]:9464, :9464) "
		    "or \"\" to disable" },
};

static const struct ep_cfg_schema metrics_schema = {
	.what = "a mapping (listen)",
	.fields = metrics_fields,
	.n_fields = EP_CFG_ARRAY_LEN(metrics_fields),
};

static void metrics_defaults(struct ep_config *cfg)
{
	snprintf(cfg->metrics_listen, sizeof(cfg->metrics_listen), "%s", DEFAULT_METRICS);
}

const struct ep_cfg_section ep_cfg_metrics_section = {
	.field = { .key = "metrics", .kind = EP_CFG_MAP, .off = 0, .sub = &metrics_schema },
	.defaults = metrics_defaults,
};

static const struct ep_cfg_field control_fields[] = {
	{ .key = "socket", .kind = EP_CFG_STR, EP_CFG_MEMBER(struct ep_config, control_socket),
	  .min = 1, .max = SOCK_PATH_MAX,
	  .expect = "an absolute path of at most 107 bytes (a unix socket)",
	  .valid_str = ep_cfg_valid_abspath },
};

static const struct ep_cfg_schema control_schema = {
	.what = "a mapping (socket)",
	.fields = control_fields,
	.n_fields = EP_CFG_ARRAY_LEN(control_fields),
};

static void control_defaults(struct ep_config *cfg)
{
	snprintf(cfg->control_socket, sizeof(cfg->control_socket), "%s", EP_DEFAULT_SOCKET);
}

const struct ep_cfg_section ep_cfg_control_section = {
	.field = { .key = "control", .kind = EP_CFG_MAP, .off = 0, .sub = &control_schema },
	.defaults = control_defaults,
};
