#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct ep_strbuf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	char *ns;

	if (b->oom)
		return -1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 1024;

	while (cap < need)
		cap *= 2;
	ns = realloc(b->s, cap);
	if (!ns) {
		b->oom = 1;
		return -1;
	}
	b->s = ns;
	b->cap = cap;
	return 0;
}

void ep_sb_printf(struct ep_strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void ep_sb_label(struct ep_strbuf *b, const char *v)
{
	for (; *v; v++) {
		if (reserve(b, 2))
			return;
		if (*v == '\\' || *v == '"') {
			b->s[b->len++] = '\\';
			b->s[b->len++] = *v;
		} else if (*v == '\n') {
			b->s[b->len++] = '\\';
			b->s[b->len++] = 'n';
		} else {
			b->s[b->len++] = *v;
		}
		b->s[b->len] = '\0';
	}
}

char *ep_sb_take(struct ep_strbuf *b)
{
	char *s = b->oom ? NULL : b->s;

	if (b->oom)
		free(b->s);
	if (!b->oom && !s)
		s = calloc(1, 1); /* an empty buffer is an empty string, not an error */
	memset(b, 0, sizeof(*b));
	return s;
}

