/*
 * The string set of nameset.h on uthash. Each item carries its string
 * inline, so one name costs one allocation; order[] points into the items.
 */
#include "nameset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ep_uthash.h"

struct ep_nameset_item {
	UT_hash_handle hh;
	char name[];
};

void ep_nameset_init(struct ep_nameset *s)
{
	memset(s, 0, sizeof(*s));
}

static struct ep_nameset_item *find(const struct ep_nameset *s, const char *name, size_t len)
{
	struct ep_nameset_item *head = s->index, *it = NULL;

	HASH_FIND(hh, head, name, len, it);
	return it;
}

bool ep_nameset_has(const struct ep_nameset *s, const char *name)
{
	return find(s, name, strlen(name)) != NULL;
}

int ep_nameset_add(struct ep_nameset *s, const char *name)
{
	size_t len = strlen(name);
	struct ep_nameset_item *it;
	unsigned before;

	if (find(s, name, len))
		return 0;
	if (s->n == s->order_cap) {
		size_t ncap = s->order_cap ? s->order_cap * 2 : 1024;
		char **no = realloc(s->order, ncap * sizeof(*no));

		if (!no)
			return -ENOMEM;
		s->order = no;
		s->order_cap = ncap;
	}
	it = malloc(sizeof(*it) + len + 1);
	if (!it)
		return -ENOMEM;
	memcpy(it->name, name, len + 1);
	before = HASH_COUNT(s->index);
	HASH_ADD_KEYPTR(hh, s->index, it->name, len, it);
	if (HASH_COUNT(s->index) == before) { /* uthash could not allocate */
		free(it);
		return -ENOMEM;
	}
	s->order[s->n++] = it->name;
	return 1;
}

void ep_nameset_free(struct ep_nameset *s)
{
	struct ep_nameset_item *it, *tmp;

	HASH_ITER(hh, s->index, it, tmp) {
		HASH_DEL(s->index, it);
		free(it);
	}
	free(s->order);
	memset(s, 0, sizeof(*s));
}
