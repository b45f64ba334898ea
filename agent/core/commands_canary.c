/* The canary's control commands (see commands.h): canary_status,
 * canary_set. The work is agent/canary/canary.c's. */
#include <stdio.h>

#include "agent.h"
#include "canary.h"
#include "commands.h"

static int cmd_canary_status(struct ep_agent *a, const struct ep_control_command *cmd,
			     json_t *req, json_t **result, char *err, size_t errlen)
{
	const char *svc = json_string_value(json_object_get(req, "service"));

	*result = ep_canary_status(a->canary, svc, err, errlen);
	return *result ? 0 : -1;
}

static int cmd_canary_set(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
			  json_t **result, char *err, size_t errlen)
{
	const char *svc = json_string_value(json_object_get(req, "service"));
	const char *what = json_string_value(json_object_get(req, "value"));

	if (!svc || !what) {
		snprintf(err, errlen, "canary_set needs \"service\" and \"value\"");
		return -1;
	}
	if (ep_canary_set(a->canary, svc, what, err, errlen))
		return -1;
	*result = ep_canary_status(a->canary, svc, err, errlen);
	return *result ? 0 : -1;
}

const struct ep_control_command ep_canary_commands[] = {
	{.name = "canary_status", .run = cmd_canary_status},
	{.name = "canary_set", .run = cmd_canary_set},
	{},
};
