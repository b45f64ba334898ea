/* The load balancer's control commands (see commands.h). */
#include <stdio.h>

#include "agent.h"
#include "commands.h"
#include "services.h"
#include "status.h"

static int cmd_services(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
			json_t **result, char *err, size_t errlen)
{
	*result = ep_status_services(a);
	return 0;
}

/* arg: 1 drain, 0 undrain */
static int cmd_backend_drain(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
			     json_t **result, char *err, size_t errlen)
{
	const char *svc = json_string_value(json_object_get(req, "service"));
	const char *be = json_string_value(json_object_get(req, "backend"));

	if (!svc || !be) {
		/* one message for both: it has always named backend_drain */
		snprintf(err, errlen, "backend_drain needs \"service\" and \"backend\"");
		return -1;
	}
	if (ep_services_drain(&a->svcs, svc, be, cmd->arg, err, errlen))
		return -1;
	*result = json_pack("{s:s, s:s, s:b}", "service", svc, "backend", be, "drained", cmd->arg);
	return 0;
}

const struct ep_control_command ep_lb_commands[] = {
	{.name = "services", .run = cmd_services},
	{.name = "backend_drain", .run = cmd_backend_drain, .arg = 1},
	{.name = "backend_undrain", .run = cmd_backend_drain, .arg = 0},
	{},
};
