#include "log_tail.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ep_log_tail_init(struct ep_log_tail *t, const char *path)
{
	snprintf(t->path, sizeof(t->path), "%s", path);
	t->off = 0;
}

void ep_log_tail_skip(struct ep_log_tail *t)
{
	struct stat st;

	t->off = stat(t->path, &st) == 0 ? st.st_size : 0;
}

void ep_log_tail_read(struct ep_log_tail *t, size_t max_bytes, ep_log_tail_line_fn fn, void *arg)
{
	char buf[8192];
	ssize_t n;
	int fd = open(t->path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size < t->off)
		t->off = 0; /* truncated under us */
	while ((n = pread(fd, buf, sizeof(buf) - 1, t->off)) > 0) {
		char *line = buf, *nl;

		buf[n] = '\0';
		nl = strrchr(buf, '\n');
		if (!nl) {
			if ((size_t)n < sizeof(buf) - 1)
				break; /* wait for the rest of the line */
			/* A line longer than the buffer: pass it on in pieces
			 * rather than stall on it for ever. */
			t->off += n;
			fn(arg, buf);
			continue;
		}
		t->off += nl - buf + 1;
		*nl = '\0';
		while (line && *line) {
			char *next = strchr(line, '\n');

			if (next)
				*next++ = '\0';
			fn(arg, line);
			line = next;
		}
	}
	if (fstat(fd, &st) == 0 && (size_t)st.st_size > max_bytes && t->off >= st.st_size) {
		if (truncate(t->path, 0) == 0)
			t->off = 0;
	}
	close(fd);
}
