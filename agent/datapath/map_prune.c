#include "map_prune.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

long ep_map_prune(int fd, size_t key_size, bool (*keep)(const void *key, void *arg), void *arg)
{
	unsigned char *cur = malloc(key_size), *next = malloc(key_size), *gone = NULL;
	size_t n = 0, cap = 0;
	long rc = 0;
	void *prev = NULL;

	if (!cur || !next) {
		rc = -ENOMEM;
		goto out;
	}
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		if (!keep(next, arg)) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				unsigned char *g = realloc(gone, ncap * key_size);

				if (!g) {
					rc = -ENOMEM;
					goto out;
				}
				gone = g;
				cap = ncap;
			}
			memcpy(gone + n * key_size, next, key_size);
			n++;
		}
		memcpy(cur, next, key_size);
		prev = cur;
	}
	for (size_t i = 0; i < n; i++)
		if (bpf_map_delete_elem(fd, gone + i * key_size) == 0)
			rc++;
out:
	free(cur);
	free(next);
	free(gone);
	return rc;
}
