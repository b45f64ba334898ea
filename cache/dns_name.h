/*
 * DNS names as the preload builder takes them from an operator's list:
 * validation and normalisation, and the domains-file reader (into the
 * string set of lib/nameset.h).
 */
#ifndef EP_DNS_NAME_H
#define EP_DNS_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "nameset.h" /* ep_nameset: the set domain lists are read into */

/* Presentation length without the trailing dot (RFC 1035 wire limit 255). */
#define EP_DNS_NAME_MAX 253
#define EP_DNS_LABEL_MAX 63
#define EP_DNS_NAME_BUF (EP_DNS_NAME_MAX + 1)

/*
 * Validates IN[0..len) as a host name and writes it lowercased, without a
 * trailing dot, into out (EP_DNS_NAME_BUF bytes). Returns 0, or -EINVAL with
 * a static reason in *why.
 */
int ep_dns_name_normalize(const char *in, size_t len, char *out, const char **why);


/* Called for each rejected line; text is the trimmed line. */
typedef void (*ep_bad_line_fn)(void *ctx, unsigned line, const char *text, const char *why);

struct ep_domain_stats {
	unsigned lines;
	unsigned bad_lines;
	unsigned duplicates;
};

/*
 * Reads one name per line: '#' starts a comment, blank lines are skipped,
 * surrounding whitespace is trimmed. A bad line goes to bad() and is skipped;
 * duplicates are kept once. Returns 0 or a negative errno (read error, ENOMEM).
 */
int ep_domains_read(FILE *f, struct ep_nameset *names, struct ep_domain_stats *st,
		    ep_bad_line_fn bad, void *ctx);
/* Same from a path; -errno when the file cannot be opened. */
int ep_domains_load(const char *path, struct ep_nameset *names, struct ep_domain_stats *st,
		    ep_bad_line_fn bad, void *ctx);

#endif
