/* Growable string for rendering metrics and text output. */
#ifndef EP_STRBUF_H
#define EP_STRBUF_H

#include <stddef.h>

struct ep_strbuf {
	char *s;
	size_t len, cap;
	int oom; /* sticky: once an append failed, the result is unusable */
};

void ep_sb_printf(struct ep_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v as a Prometheus label value (escapes \, " and newline). */
void ep_sb_label(struct ep_strbuf *b, const char *v);
/* Hands the string to the caller (NULL after OOM) and resets b. */
char *ep_sb_take(struct ep_strbuf *b);

#endif
