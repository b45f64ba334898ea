#include "snapshot.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"
#include "hosts_file.h"

/*
 * Not uthash, on purpose (the rest of the tree uses it, lib/ep_uthash.h):
 *  - agent/dns reads slots[] directly to sample a random name for upstream
 *    probes (ep_dns_cache_pick) and walks it to fill the BPF snapshot map
 *    (dns_failover.c, snap_fill). uthash has no uniform random pick, and
 *    moving those readers changes which names get probed: tried, and
 *    tests/e2e/dns_cache.sh (agent restarts after the upstream lost half
 *    its names) went from 2/2 to 1/3 passing runs.
 *  - Measured with 262,144 names (EP_DNS_SNAP_SIZE), shared 2-core box:
 *    uthash costs +10 MiB RSS (59 vs 49 MiB) for load and lookup times
 *    within noise of this table (load 0.6-1.3 s vs 1.2-2.0 s).
 */
static uint64_t name_hash(const char *s)
{
	/* tolower() in the C locale (nothing calls setlocale) is the ASCII
	 * fold of ep_hash64_str_nocase. */
	uint64_t h = ep_hash64_str_nocase(s);

	return h ^ (h >> 29);
}

static struct ep_snapshot_entry *slot_for(const struct ep_snapshot *s, const char *name)
{
	size_t mask = s->n_slots - 1, i = (size_t)name_hash(name) & mask;

	while (s->slots[i].name && strcasecmp(s->slots[i].name, name))
		i = (i + 1) & mask;
	return &s->slots[i];
}

static int grow(struct ep_snapshot *s)
{
	size_t n = s->n_slots ? s->n_slots * 2 : 1024;
	struct ep_snapshot old = *s;

	s->slots = calloc(n, sizeof(*s->slots));
	if (!s->slots) {
		s->slots = old.slots;
		return -ENOMEM;
	}
	s->n_slots = n;
	for (size_t i = 0; i < old.n_slots; i++)
		if (old.slots[i].name)
			*slot_for(s, old.slots[i].name) = old.slots[i];
	free(old.slots);
	return 0;
}

/* Addresses of one name are contiguous when the file lists a name's lines
 * together (the builder does); otherwise later lines start a new run and the
 * entry points at the newest run with all addresses copied into it. */
int ep_snapshot_add(struct ep_snapshot *s, const char *name, const struct ep_dns_addr *a)
{
	struct ep_snapshot_entry *e;

	if ((s->n_names + 1) * 2 > s->n_slots && grow(s))
		return -ENOMEM;
	if (s->n_addrs + 1 > s->cap_addrs) {
		size_t cap = s->cap_addrs ? s->cap_addrs * 2 : 4096;
		void *na = realloc(s->addrs, cap * sizeof(*s->addrs));

		if (!na)
			return -ENOMEM;
		s->addrs = na;
		s->cap_addrs = cap;
	}
	e = slot_for(s, name);
	if (!e->name) {
		e->name = strdup(name);
		if (!e->name)
			return -ENOMEM;
		for (char *p = e->name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		e->first = (uint32_t)s->n_addrs;
		e->count = 0;
		s->n_names++;
	} else if (e->first + e->count != s->n_addrs) {
		/* Not adjacent: move this name's run to the end. */
		size_t need = s->n_addrs + e->count + 1;

		if (need > s->cap_addrs) {
			void *na = realloc(s->addrs, need * 2 * sizeof(*s->addrs));

			if (!na)
				return -ENOMEM;
			s->addrs = na;
			s->cap_addrs = need * 2;
		}
		memmove(&s->addrs[s->n_addrs], &s->addrs[e->first], e->count * sizeof(*s->addrs));
		e->first = (uint32_t)s->n_addrs;
		s->n_addrs += e->count;
	}
	s->addrs[s->n_addrs++] = *a;
	e->count++;
	return 0;
}

int ep_snapshot_load(const char *path, struct ep_snapshot *s)
{
	FILE *f = fopen(path, "re");
	char line[2048];
	struct stat st;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) == 0)
		s->mtime = st.st_mtime;
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok, *hash = strchr(line, '#');
		struct ep_dns_addr a = {};

		if (hash)
			*hash = '\0';
		tok = strtok_r(line, " \t\r\n", &save);
		if (!tok)
			continue;
		if (inet_pton(AF_INET, tok, a.a) == 1)
			a.family = AF_INET;
		else if (inet_pton(AF_INET6, tok, a.a) == 1)
			a.family = AF_INET6;
		else
			continue; /* not an address line: dnsmasq skips it too */
		s->records++;
		while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
			size_t n = strlen(tok);

			if (n && tok[n - 1] == '.')
				tok[n - 1] = '\0';
			if (!*tok || n > 253)
				continue;
			rc = ep_snapshot_add(s, tok, &a);
			if (rc)
				goto out;
		}
	}
	if (ferror(f))
		rc = -EIO;
out:
	fclose(f);
	if (rc)
		ep_snapshot_free(s);
	return rc;
}

bool ep_snapshot_find(const struct ep_snapshot *s, const char *name, const struct ep_dns_addr **v,
		      size_t *n)
{
	const struct ep_snapshot_entry *e;
	char buf[256];
	size_t len = strlen(name);

	if (!s->n_slots || len >= sizeof(buf))
		return false;
	memcpy(buf, name, len + 1);
	if (len && buf[len - 1] == '.')
		buf[len - 1] = '\0';
	e = slot_for(s, buf);
	if (!e->name)
		return false;
	if (v)
		*v = &s->addrs[e->first];
	if (n)
		*n = e->count;
	return true;
}

int ep_snapshot_names(const struct ep_snapshot *s, struct ep_nameset *out)
{
	for (size_t i = 0; i < s->n_slots; i++) {
		int rc;

		if (!s->slots[i].name)
			continue;
		rc = ep_nameset_add(out, s->slots[i].name);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void ep_snapshot_free(struct ep_snapshot *s)
{
	for (size_t i = 0; i < s->n_slots; i++)
		free(s->slots[i].name);
	free(s->slots);
	free(s->addrs);
	memset(s, 0, sizeof(*s));
}

static bool addr_eq(const struct ep_dns_addr *x, const struct ep_dns_addr *y)
{
	return x->family == y->family && !memcmp(x->a, y->a, x->family == AF_INET ? 4 : 16);
}

static bool has_addr(const struct ep_dns_addr *v, size_t n, const struct ep_dns_addr *a)
{
	for (size_t i = 0; i < n; i++)
		if (addr_eq(&v[i], a))
			return true;
	return false;
}

/* Same set, whatever the order and duplicates. A name has a handful of
 * addresses (100 at most in practice): quadratic is cheaper than sorting
 * copies. */
static bool same_set(const struct ep_dns_addr *x, size_t nx, const struct ep_dns_addr *y, size_t ny)
{
	for (size_t i = 0; i < nx; i++)
		if (!has_addr(y, ny, &x[i]))
			return false;
	for (size_t i = 0; i < ny; i++)
		if (!has_addr(x, nx, &y[i]))
			return false;
	return true;
}

void ep_snapshot_change(const struct ep_snapshot *old, const struct ep_snapshot *cur,
			struct ep_change *ch, void (*each_changed)(const char *name, void *arg),
			void *arg)
{
	memset(ch, 0, sizeof(*ch));
	ch->old_names = old->n_names;
	for (size_t i = 0; i < old->n_slots; i++) {
		const struct ep_snapshot_entry *e = &old->slots[i];
		const struct ep_dns_addr *v;
		size_t n;

		if (!e->name || !ep_snapshot_find(cur, e->name, &v, &n))
			continue;
		ch->both++;
		if (same_set(&old->addrs[e->first], e->count, v, n))
			continue;
		ch->changed++;
		if (each_changed)
			each_changed(e->name, arg);
	}
	if (ch->old_names)
		ch->changed_pct = (double)ch->changed * 100.0 / (double)ch->old_names;
}

bool ep_change_exceeds(const struct ep_change *ch, double max_pct)
{
	return ep_share_exceeds(ch->changed, ch->old_names, max_pct);
}
