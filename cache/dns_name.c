#include "dns_name.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

static bool label_char(unsigned char c)
{
	/* '_' is not LDH, but service-style names (_acme-challenge...) exist in real lists. */
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int ep_dns_name_normalize(const char *in, size_t len, char *out, const char **why)
{
	size_t i, label_start = 0;
	bool all_digits = true;
	const char *dummy;

	if (!why)
		why = &dummy;
	/* An absolute name ("example.com.") means the same thing here. */
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0) {
		*why = "empty name";
		return -EINVAL;
	}
	if (len > EP_DNS_NAME_MAX) {
		*why = "name longer than 253 characters";
		return -EINVAL;
	}
	for (i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)tolower((unsigned char)in[i]) : '.';

		if (c == '.') {
			size_t llen = i - label_start;

			if (llen == 0) {
				*why = "empty label";
				return -EINVAL;
			}
			if (llen > EP_DNS_LABEL_MAX) {
				*why = "label longer than 63 characters";
				return -EINVAL;
			}
			if (out[label_start] == '-' || out[i - 1] == '-') {
				*why = "label starts or ends with '-'";
				return -EINVAL;
			}
			if (i < len) {
				out[i] = '.';
				label_start = i + 1;
				all_digits = true;
			}
			continue;
		}
		if (!label_char(c)) {
			*why = "bad character";
			return -EINVAL;
		}
		if (!(c >= '0' && c <= '9'))
			all_digits = false;
		out[i] = (char)c;
	}
	/* "10.1.2.3" is an address, and a hosts file would read it as one. */
	if (all_digits) {
		*why = "numeric top-level label";
		return -EINVAL;
	}
	out[len] = '\0';
	return 0;
}

static uint64_t name_hash(const char *s)
{
	return ep_hash64_str(s);
}

void ep_nameset_init(struct ep_nameset *s)
{
	memset(s, 0, sizeof(*s));
}

static int nameset_grow(struct ep_nameset *s)
{
	size_t ncap = s->cap ? s->cap * 2 : 1024, i;
	char **ns = calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (i = 0; i < s->n; i++) {
		size_t j = name_hash(s->order[i]) & (ncap - 1);

		while (ns[j])
			j = (j + 1) & (ncap - 1);
		ns[j] = s->order[i];
	}
	free(s->slots);
	s->slots = ns;
	s->cap = ncap;
	return 0;
}

static char **nameset_slot(const struct ep_nameset *s, const char *name)
{
	size_t j;

	if (!s->cap)
		return NULL;
	j = name_hash(name) & (s->cap - 1);
	while (s->slots[j]) {
		if (!strcmp(s->slots[j], name))
			return &s->slots[j];
		j = (j + 1) & (s->cap - 1);
	}
	return &s->slots[j];
}

bool ep_nameset_has(const struct ep_nameset *s, const char *name)
{
	char **slot = nameset_slot(s, name);

	return slot && *slot;
}

int ep_nameset_add(struct ep_nameset *s, const char *name)
{
	char **slot, *copy;

	/* Load factor at most 1/2 keeps linear probing short. */
	if ((s->n + 1) * 2 > s->cap && nameset_grow(s))
		return -ENOMEM;
	slot = nameset_slot(s, name);
	if (*slot)
		return 0;
	if (s->n == s->order_cap) {
		size_t ncap = s->order_cap ? s->order_cap * 2 : 1024;
		char **no = realloc(s->order, ncap * sizeof(*no));

		if (!no)
			return -ENOMEM;
		s->order = no;
		s->order_cap = ncap;
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	s->order[s->n++] = copy;
	*slot = copy;
	return 1;
}

void ep_nameset_free(struct ep_nameset *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->order[i]);
	free(s->order);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

int ep_domains_read(FILE *f, struct ep_nameset *names, struct ep_domain_stats *st,
		    ep_bad_line_fn bad, void *ctx)
{
	char *line = NULL, norm[EP_DNS_NAME_BUF];
	size_t cap = 0;
	ssize_t n;
	int ret = 0;

	memset(st, 0, sizeof(*st));
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *s = line, *e, *hash;
		const char *why;
		size_t len;
		int rc;

		st->lines++;
		/* A NUL byte inside a line would silently truncate it: reject instead. */
		if (strlen(line) != (size_t)n) {
			st->bad_lines++;
			if (bad)
				bad(ctx, st->lines, "", "NUL byte in line");
			continue;
		}
		hash = strchr(s, '#');
		if (hash)
			*hash = '\0';
		while (*s && isspace((unsigned char)*s))
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = '\0';
		len = (size_t)(e - s);
		if (!len)
			continue;
		if (strpbrk(s, " \t\v\f\r")) {
			why = "more than one word";
			rc = -EINVAL;
		} else {
			rc = ep_dns_name_normalize(s, len, norm, &why);
		}
		if (rc) {
			st->bad_lines++;
			if (bad)
				bad(ctx, st->lines, s, why);
			continue;
		}
		rc = ep_nameset_add(names, norm);
		if (rc < 0) {
			ret = rc;
			break;
		}
		if (rc == 0)
			st->duplicates++;
	}
	if (!ret && ferror(f))
		ret = -EIO;
	free(line);
	return ret;
}

int ep_domains_load(const char *path, struct ep_nameset *names, struct ep_domain_stats *st,
		    ep_bad_line_fn bad, void *ctx)
{
	FILE *f = fopen(path, "re");
	int ret;

	if (!f)
		return -errno;
	ret = ep_domains_read(f, names, st, bad, ctx);
	fclose(f);
	return ret;
}
