/* Certificate sync control commands (see commands.h). */
#include "agent.h"
#include "certs.h"
#include "commands.h"

static int cmd_certs(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
		     json_t **result, char *err, size_t errlen)
{
	*result = ep_certs_status(a->certs);
	return 0;
}

const struct ep_control_command ep_certs_commands[] = {
	{.name = "certs", .run = cmd_certs},
	{},
};
