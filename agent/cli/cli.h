/*
 * The CLI's commands as one table (cli_commands.c): each row is a command path
 * ("dns status"), its arguments, its line in --help and how it runs. main()
 * and usage() only read the table, so --help, `edgeplane --list-commands`
 * (which tests/install/cli_docs.sh compares with the man page) and what
 * actually runs cannot disagree.
 *
 * A command that talks to the agent names its control command (the agent's
 * table, agent/core/commands.h; tests/unit/test_commands.c checks the name)
 * and the request field each argument goes to; the generic runner sends it
 * and prints the result as JSON (-o json) or through the row's text printer.
 * Printers live by concern: cli_status.c, cli_lb.c, cli_dns.c.
 * A command that runs locally (cache build) has its own option parser and
 * gets the rest of the command line untouched.
 *
 * A new agent command is two rows and two functions, e.g.
 *   agent, commands_canary.c:  {.name = "canary_set", .run = cmd_canary_set},
 *   CLI, cli_commands.c:       {.words = "canary set", .args = "SERVICE PERCENT",
 *                               .help = "...", .control = "canary_set",
 *                               .params = {"service", "percent"},
 *                               .print = ep_cli_print_canary_set},
 */
#ifndef EP_CLI_H
#define EP_CLI_H

#include <stdio.h>

#include <jansson.h>

#define EP_CLI_MAX_ARGS 4

/* Global options. */
struct ep_cli {
	const char *socket;
	int json;
};

struct ep_cli_command {
	const char *words; /* the command path, "backend drain" */
	const char *args;  /* synopsis of the arguments in --help, NULL for none */
	const char *help;  /* --help text; '\n' continues it on the next line */
	/* Talks to the agent: the control command it sends, the request field
	 * of each positional argument (their number is the arity) and the text
	 * form of the result (argv: the arguments). */
	const char *control;
	const char *params[EP_CLI_MAX_ARGS];
	int optional; /* how many of the last params may be left out */
	void (*print)(const struct ep_cli_command *cmd, char **argv, json_t *result);
	/* Runs locally instead: argv[0] is the last word of the path. */
	int (*local)(int argc, char **argv);
	/* Synopsis of the arguments in a usage error, when not args. */
	const char *usage;
};

/* The table, ending with a row whose words are NULL. */
extern const struct ep_cli_command ep_cli_commands[];

/* The local (or agent) row whose path is the longest run of first words
 * of argv, n of them; NULL if none. */
const struct ep_cli_command *ep_cli_find(int argc, char **argv, int local, int *n);
/* True when some row's path starts with word followed by more words. */
int ep_cli_is_group(const char *word, int local);
/* Number of positional arguments of an agent command. */
int ep_cli_arity(const struct ep_cli_command *cmd);
/* "usage: edgeplane dns status|refresh|..." for the group of word. */
void ep_cli_group_usage(FILE *f, const char *word, int local);
/* The command list of --help: agent commands, then local ones. */
void ep_cli_print_commands(FILE *f);

/* Runs an agent command with argv its arguments: 0, 1 (refused or
 * unreachable). */
int ep_cli_run(const struct ep_cli *c, const struct ep_cli_command *cmd, char **argv);

/* Text printers, by concern. */
void ep_cli_print_status(const struct ep_cli_command *cmd, char **argv, json_t *r);
void ep_cli_print_reload(const struct ep_cli_command *cmd, char **argv, json_t *r);
void ep_cli_print_services(const struct ep_cli_command *cmd, char **argv, json_t *r);
void ep_cli_print_backend(const struct ep_cli_command *cmd, char **argv, json_t *r);
void ep_cli_print_dns(const struct ep_cli_command *cmd, char **argv, json_t *r);
void ep_cli_print_dns_override(const struct ep_cli_command *cmd, char **argv, json_t *r);
void ep_cli_print_dns_refresh(const struct ep_cli_command *cmd, char **argv, json_t *r);
void ep_cli_print_canary(const struct ep_cli_command *cmd, char **argv, json_t *r);
void ep_cli_print_certs(const struct ep_cli_command *cmd, char **argv, json_t *r);

/* Helpers the printers share (the CLI is their only user). */
static inline const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k)) ?: "";
}

static inline long long jint(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static inline void human_duration(double s, char *buf, size_t len)
{
	long t = (long)s;

	if (t < 60)
		snprintf(buf, len, "%lds", t);
	else if (t < 3600)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

#endif
