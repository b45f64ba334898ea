/*
 * DNS names as the preload builder takes them from an operator's list:
 * validation and normalisation, and the domains-file reader (into the
 * string set of lib/nameset.h). Also the one definition of each name syntax
 * the agent checks elsewhere (config and run time share them, so they cannot
 * disagree): a DNS name, RFC 1123 labels and subdomains as Kubernetes uses
 * them for object names, and Kubernetes label keys.
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
/* What ep_dns_name_normalize accepts, for a NUL-terminated string. */
bool ep_dns_name_ok(const char *s);

/* RFC 1123 label as Kubernetes names use it: 1-63 of [a-z0-9-], alphanumeric
 * at both ends (a namespace). */
bool ep_dns_label_ok(const char *s, size_t len);
/* RFC 1123 subdomain: 1-253 characters, dot-separated labels as above, no
 * trailing dot (a Node name, a label key prefix). */
bool ep_dns_subdomain_ok(const char *s, size_t len);
/*
 * Kubernetes label key: an optional subdomain prefix and '/', then a name of
 * 1-63 characters [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?.
 */
bool ep_label_key_ok(const char *key);


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
