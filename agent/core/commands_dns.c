/* DNS failover and cache control commands (see commands.h). */
#include <stdio.h>

#include "agent.h"
#include "commands.h"
#include "dns_cache.h"
#include "dns_failover.h"
#include "status.h"

static int cmd_dns_status(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
			  json_t **result, char *err, size_t errlen)
{
	*result = ep_status_dns(a);
	return 0;
}

/* arg: the enum ep_dns_override to set */
static int cmd_dns_override(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
			    json_t **result, char *err, size_t errlen)
{
	enum ep_dns_override o = (enum ep_dns_override)cmd->arg;

	if (!a->failover) {
		snprintf(err, errlen, "no dns section configured");
		return -1;
	}
	ep_dns_failover_override(a->failover, o);
	*result = json_pack("{s:s}", "override", ep_dns_override_name(o));
	return 0;
}

static int cmd_dns_refresh(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
			   json_t **result, char *err, size_t errlen)
{
	if (!a->cache) {
		snprintf(err, errlen, "no dns.cache configured");
		return -1;
	}
	if (ep_dns_cache_refresh_now(a->cache, err, errlen))
		return -1;
	*result = json_pack("{s:b}", "started", 1);
	return 0;
}

const struct ep_control_command ep_dns_commands[] = {
	{.name = "dns_status", .run = cmd_dns_status},
	{.name = "dns_failover", .run = cmd_dns_override, .arg = EP_DNS_FORCE_CACHE},
	{.name = "dns_failback", .run = cmd_dns_override, .arg = EP_DNS_FORCE_UPSTREAM},
	{.name = "dns_auto", .run = cmd_dns_override, .arg = EP_DNS_AUTO},
	{.name = "dns_refresh", .run = cmd_dns_refresh},
	{},
};
