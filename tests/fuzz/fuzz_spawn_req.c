/*
 * libFuzzer target: the requests the cache's spawner server reads from its
 * socket (lib/spawn.c, ep_spawn_req_parse): any bytes a client sends must be
 * refused or parsed into strings that all lie inside the message, with at
 * most EP_SPAWN_MAX_ARGS arguments and a NULL after the last. Seeds in
 * tests/fuzz/corpus/spawn_req/: a run, a reap, a run with an unterminated
 * string.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spawn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ep_spawn_req r;
	char *buf;
	int argc = 0;

	if (size > EP_SPAWN_MAX_REQ + 16)
		return 0;
	/* Exactly the received bytes: ASan sees any read past them. */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (ep_spawn_req_parse(buf, size, &r) == 0 && r.op == EP_SPAWN_RUN) {
		if (!r.file || r.file < buf || r.file + strlen(r.file) >= buf + size)
			abort();
		for (; r.argv[argc]; argc++) {
			if (argc >= EP_SPAWN_MAX_ARGS || r.argv[argc] < buf ||
			    r.argv[argc] + strlen(r.argv[argc]) >= buf + size)
				abort();
		}
		if (argc < 1)
			abort();
	}
	free(buf);
	return 0;
}
