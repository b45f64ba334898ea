#include "dns_name.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

bool ep_dns_name_ok(const char *s)
{
	char buf[EP_DNS_NAME_BUF];

	return !ep_dns_name_normalize(s, strlen(s), buf, NULL);
}

static bool alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool ep_dns_label_ok(const char *s, size_t len)
{
	if (!len || len > EP_DNS_LABEL_MAX || !alnum(s[0]) || !alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

bool ep_dns_subdomain_ok(const char *s, size_t len)
{
	size_t start = 0;

	if (!len || len > EP_DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (!ep_dns_label_ok(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

bool ep_label_key_ok(const char *key)
{
	const char *slash = strrchr(key, '/');
	const char *name = slash ? slash + 1 : key;
	size_t len = strlen(name);

	if (slash && !ep_dns_subdomain_ok(key, (size_t)(slash - key)))
		return false;
	if (!len || len > EP_DNS_LABEL_MAX || !alnum(name[0]) || !alnum(name[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!alnum(name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
			return false;
	return true;
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
