/*
 * FNV-1a, the hash of edgeplane's user space (see hash.h). Byte at a time:
 * the inputs are names, small structs and a config file, never a hot bulk
 * path, and the exact function is part of what is persisted.
 */
#include "hash.h"

#include <linux/types.h>
#include <string.h>

#include "ep_hash.h"

uint64_t ep_hash64_init(void)
{
	return EP_FNV64_OFFSET;
}

uint64_t ep_hash64_update(uint64_t h, const void *data, size_t len)
{
	const unsigned char *b = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * EP_FNV64_PRIME;
	return h;
}

uint64_t ep_hash64(const void *data, size_t len)
{
	return ep_hash64_update(EP_FNV64_OFFSET, data, len);
}

uint64_t ep_hash64_str(const char *s)
{
	return ep_hash64(s, strlen(s));
}

uint64_t ep_hash64_str_nocase(const char *s)
{
	uint64_t h = EP_FNV64_OFFSET;

	for (; *s; s++)
		h = ep_fnv64_byte(h, (__u8)*s);
	return h;
}
