#include "hosts_file.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

const char *ep_dns_addr_str(const struct ep_dns_addr *a, char *buf, size_t len)
{
	if (!inet_ntop(a->family, a->a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

int ep_dns_addr_cmp(const void *a, const void *b)
{
	const struct ep_dns_addr *x = a, *y = b;

	if (x->family != y->family)
		return x->family == AF_INET ? -1 : 1;
	return memcmp(x->a, y->a, x->family == AF_INET ? 4 : 16);
}

size_t ep_dns_addr_sort_unique(struct ep_dns_addr *v, size_t n)
{
	size_t i, out = 0;

	if (n < 2)
		return n;
	qsort(v, n, sizeof(*v), ep_dns_addr_cmp);
	for (i = 0; i < n; i++)
		if (!out || ep_dns_addr_cmp(&v[out - 1], &v[i]))
			v[out++] = v[i];
	return out;
}

int ep_hosts_read_names(const char *path, struct ep_nameset *names)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, norm[EP_DNS_NAME_BUF];
	size_t cap = 0;
	int ret = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) >= 0) {
		char *save = NULL, *tok, *hash = strchr(line, '#');
		bool first = true;

		if (hash)
			*hash = '\0';
		for (tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
			if (first) { /* the address */
				first = false;
				continue;
			}
			if (ep_dns_name_normalize(tok, strlen(tok), norm, NULL))
				continue;
			if (ep_nameset_add(names, norm) < 0) {
				ret = -ENOMEM;
				goto out;
			}
		}
	}
	if (ferror(f))
		ret = -EIO;
out:
	free(line);
	fclose(f);
	return ret;
}

void ep_loss_compute(const struct ep_nameset *old, const struct ep_nameset *cur, struct ep_loss *l)
{
	size_t i;

	memset(l, 0, sizeof(*l));
	l->old_names = old->n;
	for (i = 0; i < old->n; i++)
		if (!ep_nameset_has(cur, old->order[i]))
			l->lost++;
	if (l->old_names)
		l->lost_pct = (double)l->lost * 100.0 / (double)l->old_names;
}

bool ep_share_exceeds(size_t part, size_t whole, double max_pct)
{
	if (!whole)
		return false;
	/* Products, not the quotient, so that exactly max_pct percent is
	 * allowed and rounding never tips the boundary case. */
	return (double)part * 100.0 > max_pct * (double)whole + 1e-9;
}

bool ep_loss_exceeds(const struct ep_loss *l, double max_pct)
{
	return ep_share_exceeds(l->lost, l->old_names, max_pct);
}
