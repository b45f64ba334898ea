/*
 * The control commands' registry and dispatcher, and the core commands.
 * control.c reads a request and hands it to ep_control_dispatch(), which looks
 * the command up in every concern's table (commands.h) and wraps the
 * handler's result or error into the reply.
 */
#include "commands.h"

#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "status.h"

/* One line per concern; a table's order is the order of its rows. */
static const struct ep_control_command *const tables[] = {
	ep_core_commands,
	ep_lb_commands,
	ep_dns_commands,
	ep_canary_commands,
	ep_certs_commands,
};

static int cmd_status(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
		      json_t **result, char *err, size_t errlen)
{
	*result = ep_status_summary(a);
	return 0;
}

/* Runs without agent->lock: ep_agent_reload() takes it itself. */
static int cmd_reload(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
		      json_t **result, char *err, size_t errlen)
{
	if (ep_agent_reload(a, "control socket")) {
		snprintf(err, errlen, "%s",
			 a->last_reload_error[0] ? a->last_reload_error : "reload failed");
		return -1;
	}
	*result = json_pack("{s:I}", "reloads_ok", (json_int_t)a->reloads_ok);
	return 0;
}

const struct ep_control_command ep_core_commands[] = {
	{.name = "status", .run = cmd_status},
	{.name = "reload", .run = cmd_reload},
	{},
};

const struct ep_control_command *ep_control_command_find(const char *name)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct ep_control_command *c = tables[t]; c->name; c++)
			if (!strcmp(c->name, name))
				return c;
	return NULL;
}

void ep_control_command_foreach(void (*f)(const struct ep_control_command *cmd, void *arg),
				void *arg)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct ep_control_command *c = tables[t]; c->name; c++)
			f(c, arg);
}

static json_t *err_reply(const char *msg)
{
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

json_t *ep_control_dispatch(struct ep_agent *a, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "command"));
	const struct ep_control_command *cmd;
	/* as large as a->last_reload_error, which a refused reload returns whole */
	char err[1024] = "";
	json_t *result = NULL;

	if (!name)
		return err_reply("request has no \"command\"");
	cmd = ep_control_command_find(name);
	if (!cmd) {
		snprintf(err, sizeof(err), "unknown command '%s'", name);
		return err_reply(err);
	}
	if (cmd->run(a, cmd, req, &result, err, sizeof(err)))
		return err_reply(err);
	return json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_null());
}
