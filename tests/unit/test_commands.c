/*
 * The CLI's command table (agent/cli/cli.h) against the agent's control
 * commands (agent/core/commands.h): every command the CLI sends exists in the
 * agent, every control command is reachable from the CLI, names are unique,
 * and each CLI row is whole (help, printer, as many request fields as its
 * synopsis has arguments) and found again by its own words. Then the replies
 * ep_control_dispatch() gives without a datapath, word for word. The man page
 * side is tests/install/cli_docs.sh.
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "cli.h"
#include "commands.h"
#include "tap.h"

#define MAX_CMDS 128

struct names {
	const char *v[MAX_CMDS];
	int n;
	int dup;
};

static void collect(const struct ep_control_command *cmd, void *arg)
{
	struct names *s = arg;

	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], cmd->name))
			s->dup = 1;
	if (s->n < MAX_CMDS)
		s->v[s->n++] = cmd->name;
}

static int cli_sends(const char *control)
{
	for (const struct ep_cli_command *c = ep_cli_commands; c->words; c++)
		if (c->control && !strcmp(c->control, control))
			return 1;
	return 0;
}

static int words_of(const char *s)
{
	int n = 0;

	for (const char *p = s ?: ""; *p; n++) {
		p += strspn(p, " ");
		if (!*p)
			break;
		p += strcspn(p, " ");
	}
	return n;
}

/* Replies that need no datapath, from an agent with nothing configured:
 * {"ok":false,"error":...} with the texts they always had. */
static void test_dispatch_errors(void)
{
	static const struct {
		const char *req, *error;
	} cases[] = {
		{"{}", "request has no \"command\""},
		{"{\"command\": 7}", "request has no \"command\""},
		{"{\"command\": \"nosuch\"}", "unknown command 'nosuch'"},
		{"{\"command\": \"backend_drain\", \"service\": \"web\"}",
		 "backend_drain needs \"service\" and \"backend\""},
		{"{\"command\": \"backend_undrain\", \"backend\": \"10.0.0.1:80\"}",
		 "backend_drain needs \"service\" and \"backend\""},
		{"{\"command\": \"dns_failover\"}", "no dns section configured"},
		{"{\"command\": \"dns_auto\"}", "no dns section configured"},
		{"{\"command\": \"dns_refresh\"}", "no dns.cache configured"},
	};
	struct ep_agent a = {};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *req = json_loads(cases[i].req, 0, NULL);
		json_t *resp = ep_control_dispatch(&a, req);
		const char *got = json_string_value(json_object_get(resp, "error"));

		tap_ok(json_is_false(json_object_get(resp, "ok")) && got && !strcmp(got, cases[i].error),
		       "%s: error '%s'", cases[i].req, got ?: "(none)");
		json_decref(req);
		json_decref(resp);
	}
}

int main(void)
{
	struct names ctl = {};
	int n_cli = 0;

	ep_control_command_foreach(collect, &ctl);
	tap_ok(ctl.n > 0 && !ctl.dup, "%d control commands, names unique across the tables", ctl.n);
	for (int i = 0; i < ctl.n; i++)
		tap_ok(cli_sends(ctl.v[i]), "control command %s is sent by a CLI command", ctl.v[i]);

	for (const struct ep_cli_command *c = ep_cli_commands; c->words; c++) {
		char buf[256], *argv[16];
		int argc = 0, n;

		n_cli++;
		for (const struct ep_cli_command *d = ep_cli_commands; d < c; d++)
			if (!strcmp(d->words, c->words))
				tap_ok(0, "'%s' appears twice in the CLI table", c->words);
		tap_ok(c->help && c->help[0], "'%s' has a --help line", c->words);
		if (c->local) {
			tap_ok(!c->control && !c->print, "'%s' runs locally and sends nothing", c->words);
		} else {
			tap_ok(c->control && ep_control_command_find(c->control),
			       "'%s' sends '%s', a command the agent has", c->words, c->control ?: "(none)");
			tap_ok(c->print != NULL, "'%s' has a text printer", c->words);
			tap_ok(ep_cli_arity(c) == words_of(c->args),
			       "'%s' has a request field per argument of '%s'", c->words, c->args ?: "");
		}
		snprintf(buf, sizeof(buf), "%s", c->words);
		for (char *w = strtok(buf, " "); w && argc < 16; w = strtok(NULL, " "))
			argv[argc++] = w;
		tap_ok(ep_cli_find(argc, argv, c->local != NULL, &n) == c && n == argc,
		       "'%s' is found by its words", c->words);
	}
	tap_diag("%d CLI commands", n_cli);
	test_dispatch_errors();
	return tap_done();
}
