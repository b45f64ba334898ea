/*
 * The control commands: what the agent does for each request of the control
 * socket (control.h has the wire format). Each concern keeps its commands in
 * its own table, in its own file next to the others of the agent's glue:
 *
 *   commands.c      the registry (the list of tables), ep_control_dispatch(),
 *                   and the core commands: status, reload
 *   commands_lb.c   services, backend_drain, backend_undrain
 *   commands_dns.c  dns_status, dns_failover, dns_failback, dns_auto, dns_refresh
 *   commands_canary.c canary_status, canary_set
 *   commands_certs.c certs
 *
 * A new command is one row in its concern's table plus its handler; a new
 * concern (canary, certs) adds a file with its table and one line to the list
 * in commands.c. The handlers live in core because they reach into struct
 * ep_agent, which only core knows; the modules below stay agent-agnostic.
 *
 * The CLI names the control command each of its commands sends
 * (agent/cli/cli.h); tests/unit/test_commands.c checks every such name against
 * ep_control_command_find(), so the two tables cannot drift apart.
 */
#ifndef EP_COMMANDS_H
#define EP_COMMANDS_H

#include <stddef.h>

#include <jansson.h>

struct ep_agent;

struct ep_control_command {
	const char *name; /* the request's "command" */
	/* Runs the command with agent->lock held (except reload: control.c).
	 * 0 with *result set (a new reference; NULL answers null), or
	 * nonzero with err filled: the reply is {"ok":false,"error":err}. */
	int (*run)(struct ep_agent *a, const struct ep_control_command *cmd, json_t *req,
		   json_t **result, char *err, size_t errlen);
	int arg; /* lets one handler serve several rows (drain/undrain, ...) */
};

/* Each concern's table ends with a row whose name is NULL. */
extern const struct ep_control_command ep_core_commands[];
extern const struct ep_control_command ep_lb_commands[];
extern const struct ep_control_command ep_dns_commands[];
extern const struct ep_control_command ep_canary_commands[];
extern const struct ep_control_command ep_certs_commands[];

/* The row named name in any table, or NULL. */
const struct ep_control_command *ep_control_command_find(const char *name);

/* Calls f on every command of every table, in table order. */
void ep_control_command_foreach(void (*f)(const struct ep_control_command *cmd, void *arg),
				void *arg);

/* Answers one request (a JSON object): always a reply object, or NULL when
 * out of memory. */
json_t *ep_control_dispatch(struct ep_agent *a, json_t *req);

#endif
