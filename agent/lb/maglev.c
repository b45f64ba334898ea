#include "maglev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

uint64_t ep_maglev_key(const char *identity)
{
	uint64_t h = ep_hash64_str(identity);

	/* splitmix64 finaliser: FNV alone leaves low bits poorly mixed, and
	 * offset/skip are taken modulo the table size. */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

int ep_is_prime(uint32_t m)
{
	if (m < 2)
		return 0;
	if (m % 2 == 0)
		return m == 2;
	for (uint32_t d = 3; (uint64_t)d * d <= m; d += 2)
		if (m % d == 0)
			return 0;
	return 1;
}

uint32_t ep_next_prime(uint32_t m)
{
	while (!ep_is_prime(m))
		m++;
	return m;
}

static int cmp_key(const void *a, const void *b)
{
	const struct ep_maglev_backend *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

struct perm {
	uint32_t id, weight;
	uint64_t offset, skip, next;
	uint64_t credit;
};

int ep_maglev_build(const struct ep_maglev_backend *be, size_t n, uint32_t m, uint32_t *table)
{
	struct ep_maglev_backend *sorted;
	struct perm *p;
	uint32_t maxw = 0, filled = 0;
	size_t k = 0;

	if (m < 2 || !ep_is_prime(m))
		return -EINVAL;
	memset(table, 0, (size_t)m * sizeof(*table));
	if (n == 0)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	p = calloc(n, sizeof(*p));
	if (!sorted || !p) {
		free(sorted);
		free(p);
		return -ENOMEM;
	}
	memcpy(sorted, be, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_key);
	for (size_t i = 0; i < n; i++) {
		if (!sorted[i].weight || !sorted[i].id)
			continue;
		p[k].id = sorted[i].id;
		p[k].weight = sorted[i].weight;
		p[k].offset = (sorted[i].key >> 32) % m;
		p[k].skip = (sorted[i].key & 0xffffffffULL) % (m - 1) + 1;
		if (p[k].weight > maxw)
			maxw = p[k].weight;
		k++;
	}
	if (k == 0)
		goto out;

	/* Every round each backend earns `weight` credit and claims one slot per
	 * `maxw` credit: the heaviest backend claims one slot per round. */
	while (filled < m) {
		for (size_t i = 0; i < k && filled < m; i++) {
			p[i].credit += p[i].weight;
			while (p[i].credit >= maxw && filled < m) {
				uint64_t c;

				p[i].credit -= maxw;
				do {
					c = (p[i].offset + p[i].next * p[i].skip) % m;
					p[i].next++;
				} while (table[c]);
				table[c] = p[i].id;
				filled++;
			}
		}
	}
out:
	free(sorted);
	free(p);
	return 0;
}
