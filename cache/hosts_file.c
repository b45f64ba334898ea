#include "hosts_file.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int ep_atomic_open(struct ep_atomic_file *af, const char *path, mode_t mode)
{
	char *dcopy = NULL, *bcopy = NULL;
	int fd = -1, ret;

	memset(af, 0, sizeof(*af));
	af->path = strdup(path);
	dcopy = strdup(path);
	bcopy = strdup(path);
	if (!af->path || !dcopy || !bcopy) {
		ret = -ENOMEM;
		goto fail;
	}
	/* A hidden name in the same directory: rename(2) is only atomic within a
	 * file system, and dnsmasq must never pick up a half-written file. */
	if (asprintf(&af->tmp, "%s/.%s.tmp.XXXXXX", dirname(dcopy), basename(bcopy)) < 0) {
		af->tmp = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	fd = mkostemp(af->tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		free(af->tmp);
		af->tmp = NULL;
		goto fail;
	}
	/* mkstemp makes 0600; dnsmasq rereads addn-hosts after dropping root. */
	if (fchmod(fd, mode)) {
		ret = -errno;
		goto fail;
	}
	af->f = fdopen(fd, "w");
	if (!af->f) {
		ret = -errno;
		goto fail;
	}
	free(dcopy);
	free(bcopy);
	return 0;
fail:
	if (fd >= 0) {
		close(fd);
		unlink(af->tmp);
	}
	free(dcopy);
	free(bcopy);
	free(af->path);
	free(af->tmp);
	memset(af, 0, sizeof(*af));
	return ret;
}

void ep_atomic_abort(struct ep_atomic_file *af)
{
	if (af->f)
		fclose(af->f);
	if (af->tmp)
		unlink(af->tmp);
	free(af->tmp);
	free(af->path);
	memset(af, 0, sizeof(*af));
}

static int fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, ret = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
	} else {
		if (fsync(fd))
			ret = -errno;
		close(fd);
	}
	free(copy);
	return ret;
}

int ep_atomic_commit(struct ep_atomic_file *af)
{
	int ret = 0;

	if (fflush(af->f) || ferror(af->f))
		ret = -(errno ? errno : EIO);
	else if (fsync(fileno(af->f)))
		ret = -errno;
	if (fclose(af->f) && !ret)
		ret = -errno;
	af->f = NULL;
	if (!ret && rename(af->tmp, af->path))
		ret = -errno;
	/* The rename itself must reach the disk before we call it written. */
	if (!ret)
		ret = fsync_dir(af->path);
	else
		unlink(af->tmp);
	free(af->tmp);
	free(af->path);
	memset(af, 0, sizeof(*af));
	return ret;
}

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

bool ep_loss_exceeds(const struct ep_loss *l, double max_pct)
{
	if (!l->old_names)
		return false;
	/* Products, not the quotient, so that losing exactly max_pct percent is
	 * allowed and rounding never tips the boundary case. */
	return (double)l->lost * 100.0 > max_pct * (double)l->old_names + 1e-9;
}
