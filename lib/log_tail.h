/*
 * Following a helper's log file from the agent (dnsmasq's log-facility, the
 * policy responder's stderr): the helpers outlive the agent and may run in
 * another container, so they cannot write into the agent's stderr; the
 * agent reads what they appended and logs it as its own, whole lines only.
 * A file that only grows is truncated in place once read past max_bytes.
 */
#ifndef EP_LOG_TAIL_H
#define EP_LOG_TAIL_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct ep_log_tail {
	char path[PATH_MAX + 32];
	off_t off;
};

typedef void (*ep_log_tail_line_fn)(void *arg, const char *line);

void ep_log_tail_init(struct ep_log_tail *t, const char *path);
/* Starts from the file's end: an adopted helper's old lines were logged by
 * the agent before. */
void ep_log_tail_skip(struct ep_log_tail *t);
/* Calls fn for every whole line appended since the last call. */
void ep_log_tail_read(struct ep_log_tail *t, size_t max_bytes, ep_log_tail_line_fn fn, void *arg);

#endif
