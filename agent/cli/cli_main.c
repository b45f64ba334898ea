/*
 * edgeplane: the operator CLI. Talks to the agent over its control socket.
 * main() parses the global options and runs the row of the command table
 * (cli.h) that the rest of the line names; --help is generated from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "cli.h"
#include "control.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: edgeplane [--socket PATH] [-o text|json] COMMAND [ARGS]\n\n");
	ep_cli_print_commands(f);
	fprintf(f,
		"\n"
		"Options (anywhere on the line):\n"
		"  --socket PATH   control socket (default " EP_DEFAULT_SOCKET ", or $EDGEPLANE_SOCKET)\n"
		"  -o json         machine-readable output (stable field names; they only grow)\n"
		"  -h, --help      this text;  --version  print the version\n"
		"\n"
		"IPv6 backends are written [ADDR]:PORT. Exit status: 0 ok, 1 the agent refused or\n"
		"could not be reached, 2 usage error.\n");
}

/* Hidden: the table, one command per line (words TAB control command, or
 * "local"), for the tests that hold the man page to it. */
static void list_commands(void)
{
	for (const struct ep_cli_command *c = ep_cli_commands; c->words; c++)
		printf("%s\t%s\n", c->words, c->control ?: "local");
}

/* A command path given the wrong arguments is a usage error of its group
 * ("dns status x", "backend drain web"); a one-word command has no group
 * and is reported as unknown, as it always was ("status x"). */
static int run(const struct ep_cli *c, int n, char **args)
{
	const struct ep_cli_command *cmd;
	int k;

	cmd = ep_cli_find(n, args, 0, &k);
	if (cmd && n - k <= ep_cli_arity(cmd) && n - k >= ep_cli_arity(cmd) - cmd->optional)
		return ep_cli_run(c, cmd, args + k);
	if (ep_cli_is_group(args[0], 0)) {
		ep_cli_group_usage(stderr, args[0], 0);
		return 2;
	}
	fprintf(stderr, "edgeplane: unknown command '%s' (see edgeplane --help)\n", args[0]);
	return 2;
}

int main(int argc, char **argv)
{
	struct ep_cli c = {.socket = getenv("EDGEPLANE_SOCKET") ?: EP_DEFAULT_SOCKET};
	const struct ep_cli_command *local;
	char **args;
	int n = 0, rc;

	/* Local commands have their own options (and --help): hand them the
	 * rest of the line untouched. Only right after the program name, as
	 * the global options below are not theirs. */
	if (argc >= 2 && ep_cli_is_group(argv[1], 1)) {
		local = ep_cli_find(argc - 1, argv + 1, 1, &n);
		if (local)
			return local->local(argc - n, argv + n);
		ep_cli_group_usage(stderr, argv[1], 1);
		return 2;
	}
	args = calloc((size_t)argc + 1, sizeof(*args));
	if (!args)
		return 1;
	/* Global options may appear anywhere ("edgeplane services -o json"). */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") || !strcmp(argv[i], "-o")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "edgeplane: %s needs a value\n", argv[i]);
				free(args);
				return 2;
			}
			if (!strcmp(argv[i], "--socket")) {
				c.socket = argv[++i];
			} else {
				i++;
				if (strcmp(argv[i], "json") && strcmp(argv[i], "text")) {
					fprintf(stderr, "edgeplane: -o takes text or json\n");
					free(args);
					return 2;
				}
				c.json = !strcmp(argv[i], "json");
			}
		} else if (!strncmp(argv[i], "--socket=", 9)) {
			c.socket = argv[i] + 9;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			free(args);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("edgeplane %s\n", EP_VERSION);
			free(args);
			return 0;
		} else if (!strcmp(argv[i], "--list-commands")) {
			list_commands();
			free(args);
			return 0;
		} else {
			args[n++] = argv[i];
		}
	}
	if (n == 0) {
		usage(stderr);
		rc = 2;
	} else {
		rc = run(&c, n, args);
	}
	free(args);
	return rc;
}
