/*
 * The CLI's command table and what reads it: lookup, the generated command
 * list of --help and usage errors, and the runner of agent commands (see
 * cli.h). The order of the rows is the order of --help.
 */
#include <stdlib.h>
#include <string.h>

#include "cache_build.h"
#include "cli.h"
#include "control.h"

#define CALL_TIMEOUT_MS 10000
#define HELP_COLUMN 38 /* where the help text starts in --help */

const struct ep_cli_command ep_cli_commands[] = {
	{.words = "status",
	 .help = "datapath, interfaces, services, conntrack, drops,\n"
		 "DNS mode and certificates at a glance",
	 .control = "status", .print = ep_cli_print_status},
	{.words = "services", .help = "every service and backend with live counters",
	 .control = "services", .print = ep_cli_print_services},
	{.words = "backend drain", .args = "SERVICE ADDR:PORT",
	 .help = "no new flows to that backend; existing flows stay",
	 .control = "backend_drain", .params = {"service", "backend"}, .print = ep_cli_print_backend},
	{.words = "backend undrain", .args = "SERVICE ADDR:PORT",
	 .help = "the backend takes new flows again",
	 .control = "backend_undrain", .params = {"service", "backend"}, .print = ep_cli_print_backend},
	{.words = "reload", .help = "re-read the agent's config file (like SIGHUP)",
	 .control = "reload", .print = ep_cli_print_reload},
	{.words = "dns status",
	 .help = "DNS mode, upstreams, the local cache (dnsmasq state,\n"
		 "snapshot names/records/age, refresh)",
	 .control = "dns_status", .print = ep_cli_print_dns},
	{.words = "dns refresh", .help = "rebuild the cache snapshot from the upstreams now",
	 .control = "dns_refresh", .print = ep_cli_print_dns_refresh},
	{.words = "dns failover",
	 .help = "answer from the local cache now (drills); stays until\n"
		 "dns auto",
	 .control = "dns_failover", .print = ep_cli_print_dns_override},
	{.words = "dns failback", .help = "send queries to the upstreams now, whatever the health",
	 .control = "dns_failback", .print = ep_cli_print_dns_override},
	{.words = "dns auto", .help = "back to automatic failover",
	 .control = "dns_auto", .print = ep_cli_print_dns_override},
	{.words = "canary status", .args = "[SERVICE]",
	 .help = "canary share, ramp step, the live canary-vs-stable\n"
		 "comparison and the last decision, per service",
	 .control = "canary_status", .params = {"service"}, .optional = 1,
	 .print = ep_cli_print_canary},
	{.words = "canary set", .args = "SERVICE PERCENT|pause|resume|promote",
	 .help = "set the canary share (0 = roll back), or pause,\n"
		 "resume or finish (promote) its ramp",
	 .control = "canary_set", .params = {"service", "value"}, .print = ep_cli_print_canary},
	{.words = "certs",
	 .help = "certificate sets: source, serial, NotAfter, installed or\n"
		 "refused (and why), last result, reload",
	 .control = "certs", .print = ep_cli_print_certs},
	{.words = "cache build",
	 .args = "--domains FILE --resolver ADDR[:PORT] [--resolver ...] --out FILE",
	 .help = "resolve a domain list into a dnsmasq preload file\n"
		 "(edgeplane cache build --help for every option)",
	 .local = ep_cache_build_main, .usage = "--domains FILE --resolver ADDR[:PORT] --out FILE"},
	{},
};

#define for_each_command(c) for (const struct ep_cli_command *c = ep_cli_commands; c->words; c++)

/* Number of words of path that match argv in order, all of them or 0. */
static int path_match(const char *path, int argc, char **argv)
{
	int n = 0;

	for (const char *w = path; *w; n++) {
		size_t len = strcspn(w, " ");

		if (n >= argc || strlen(argv[n]) != len || strncmp(argv[n], w, len))
			return 0;
		w += len;
		w += *w == ' ';
	}
	return n;
}

static int is_local(const struct ep_cli_command *c)
{
	return c->local != NULL;
}

const struct ep_cli_command *ep_cli_find(int argc, char **argv, int local, int *n)
{
	const struct ep_cli_command *best = NULL;
	int k;

	*n = 0;
	for_each_command(c) {
		if (is_local(c) != !!local)
			continue;
		k = path_match(c->words, argc, argv);
		if (k > *n) {
			best = c;
			*n = k;
		}
	}
	return best;
}

/* The first word of the path is word, and more words follow. */
static int in_group(const struct ep_cli_command *c, const char *word)
{
	size_t len = strlen(word);

	return !strncmp(c->words, word, len) && c->words[len] == ' ';
}

int ep_cli_is_group(const char *word, int local)
{
	for_each_command(c)
		if (is_local(c) == !!local && in_group(c, word))
			return 1;
	return 0;
}

int ep_cli_arity(const struct ep_cli_command *cmd)
{
	int n = 0;

	while (n < EP_CLI_MAX_ARGS && cmd->params[n])
		n++;
	return n;
}

static const char *synopsis(const struct ep_cli_command *c)
{
	return c->usage ?: c->args ?: "";
}

/*
 * "usage: edgeplane backend drain|undrain SERVICE ADDR:PORT": the group's
 * alternatives joined when they take the same arguments, else one line each.
 */
void ep_cli_group_usage(FILE *f, const char *word, int local)
{
	const struct ep_cli_command *first = NULL;
	int same = 1;

	for_each_command(c) {
		if (is_local(c) != !!local || !in_group(c, word))
			continue;
		if (!first)
			first = c;
		else if (strcmp(synopsis(c), synopsis(first)))
			same = 0;
	}
	if (!first)
		return;
	fprintf(f, "usage: edgeplane %s ", word);
	for_each_command(c) {
		if (is_local(c) != !!local || !in_group(c, word))
			continue;
		if (same) {
			fprintf(f, "%s%s", c == first ? "" : "|", c->words + strlen(word) + 1);
		} else {
			if (c != first)
				fprintf(f, "\n       edgeplane %s ", word);
			fprintf(f, "%s%s%s", c->words + strlen(word) + 1, synopsis(c)[0] ? " " : "",
				synopsis(c));
		}
	}
	fprintf(f, "%s%s\n", same && synopsis(first)[0] ? " " : "", same ? synopsis(first) : "");
}

static void print_row(FILE *f, const struct ep_cli_command *c)
{
	const char *h = c->help;
	char path[256];
	int len;

	len = snprintf(path, sizeof(path), "%s%s%s", c->words, c->args ? " " : "", c->args ?: "");
	/* the help starts beside a short synopsis, below a long one */
	if (2 + len < HELP_COLUMN)
		fprintf(f, "  %-*s", HELP_COLUMN - 2, path);
	else
		fprintf(f, "  %s\n%*s", path, HELP_COLUMN, "");
	for (;;) {
		size_t n = strcspn(h, "\n");

		fprintf(f, "%.*s\n", (int)n, h);
		if (!h[n])
			break;
		h += n + 1;
		fprintf(f, "%*s", HELP_COLUMN, "");
	}
}

void ep_cli_print_commands(FILE *f)
{
	fprintf(f, "Commands (talk to the running edgeplane-agent):\n");
	for_each_command(c)
		if (!is_local(c))
			print_row(f, c);
	fprintf(f, "\nCommands that do not need the agent:\n");
	for_each_command(c)
		if (is_local(c))
			print_row(f, c);
}

static json_t *call(const struct ep_cli *c, json_t *req)
{
	char err[512];
	json_t *resp = ep_control_call(c->socket, req, CALL_TIMEOUT_MS, err, sizeof(err));

	json_decref(req);
	if (!resp) {
		fprintf(stderr, "edgeplane: %s\n", err);
		return NULL;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "edgeplane: %s\n",
			json_string_value(json_object_get(resp, "error")) ?: "the agent refused");
		json_decref(resp);
		return NULL;
	}
	return resp;
}

static void print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s)
		printf("%s\n", s);
	free(s);
}

int ep_cli_run(const struct ep_cli *c, const struct ep_cli_command *cmd, char **argv)
{
	json_t *req = json_pack("{s:s}", "command", cmd->control), *resp;

	/* argv ends with NULL: optional parameters left out are not sent. */
	for (int i = 0; req && i < ep_cli_arity(cmd) && argv[i]; i++) {
		/* a field that cannot be set (not UTF-8) spoils the whole request */
		if (json_object_set_new(req, cmd->params[i], json_string(argv[i]))) {
			json_decref(req);
			req = NULL;
		}
	}
	resp = call(c, req);
	if (!resp)
		return 1;
	if (c->json)
		print_json(json_object_get(resp, "result"));
	else
		cmd->print(cmd, argv, json_object_get(resp, "result"));
	json_decref(resp);
	return 0;
}
