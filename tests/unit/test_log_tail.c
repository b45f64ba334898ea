/*
 * ep_log_tail (lib/log_tail.c): how the agent follows the log files of
 * dnsmasq and the policy responder. Whole lines only, each once; an
 * adopted helper's old lines are not logged again; a file truncated under
 * it is read from the start; a file read past its bound is truncated; a
 * line longer than the read buffer is passed on, not waited on for ever.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log_tail.h"
#include "tap.h"

static char got[64][256];
static int n_got;
static size_t long_total;

static void take(void *arg, const char *line)
{
	if (strlen(line) >= sizeof(got[0])) {
		long_total += strlen(line);
		return;
	}
	if (n_got < 64)
		snprintf(got[n_got++], sizeof(got[0]), "%s", line);
}

static void append(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static off_t size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

int main(void)
{
	char dir[] = "/tmp/ep_log_tail.XXXXXX", path[64];
	struct ep_log_tail t;
	char *big;

	if (!mkdtemp(dir))
		return tap_skip_all("no temporary directory");
	snprintf(path, sizeof(path), "%s/helper.log", dir);

	ep_log_tail_init(&t, path);
	ep_log_tail_read(&t, 1 << 20, take, NULL);
	tap_ok(n_got == 0, "a log that does not exist yet gives nothing");

	append(path, "one\ntwo\nthr");
	ep_log_tail_read(&t, 1 << 20, take, NULL);
	tap_ok(n_got == 2 && !strcmp(got[0], "one") && !strcmp(got[1], "two"),
	       "whole lines are passed on, in order (%d)", n_got);
	append(path, "ee\n");
	ep_log_tail_read(&t, 1 << 20, take, NULL);
	tap_ok(n_got == 3 && !strcmp(got[2], "three"),
	       "a line written in two parts is passed on once, whole");
	ep_log_tail_read(&t, 1 << 20, take, NULL);
	tap_ok(n_got == 3, "nothing new, nothing passed on");

	append(path, "old1\nold2\n");
	ep_log_tail_skip(&t);
	append(path, "new\n");
	ep_log_tail_read(&t, 1 << 20, take, NULL);
	tap_ok(n_got == 4 && !strcmp(got[3], "new"),
	       "after skip (an adopted helper) only lines written since are passed on");

	truncate(path, 0);
	append(path, "after truncate\n");
	ep_log_tail_read(&t, 1 << 20, take, NULL);
	tap_ok(n_got == 5 && !strcmp(got[4], "after truncate"),
	       "a file truncated under it is read from its start");

	append(path, "0123456789\n0123456789\n");
	ep_log_tail_read(&t, 16, take, NULL);
	tap_ok(n_got == 7 && size_of(path) == 0,
	       "read past its bound, the file is truncated in place (size %lld)",
	       (long long)size_of(path));
	append(path, "next\n");
	ep_log_tail_read(&t, 16, take, NULL);
	tap_ok(n_got == 8 && !strcmp(got[7], "next"), "and the next line is read from offset 0");

	big = malloc(20001);
	memset(big, 'x', 20000);
	big[20000] = '\0';
	append(path, big);
	append(path, "\nshort\n");
	ep_log_tail_read(&t, 1 << 20, take, NULL);
	tap_ok(long_total == 20000 && n_got == 9 && !strcmp(got[8], "short"),
	       "a line longer than the read buffer is passed on in pieces (%zu bytes), then the next",
	       long_total);
	free(big);

	unlink(path);
	rmdir(dir);
	return tap_done();
}
