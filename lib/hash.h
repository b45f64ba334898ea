/*
 * Hashing for user space: the one FNV-1a (64-bit) that agent/ and cache/
 * call. The offset basis and prime come from include/ep_hash.h, where the
 * BPF programs get them, and the case-folding walk is ep_fnv64_byte itself,
 * so ep_hash64_str_nocase() of a byte string equals what tc_dns computes
 * over the same bytes. Results are persisted (config content hash, Maglev
 * backend keys and ring signatures, the XDP build id in the pinned config
 * map): the function must never change.
 */
#ifndef EP_LIB_HASH_H
#define EP_LIB_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Continues a hash over more bytes; start from ep_hash64_init(). */
uint64_t ep_hash64_init(void);
uint64_t ep_hash64_update(uint64_t h, const void *data, size_t len);

uint64_t ep_hash64(const void *data, size_t len);
/* Over the bytes of a C string, the terminating NUL not included. */
uint64_t ep_hash64_str(const char *s);
/* The same with ASCII letters folded to lower case (as BPF folds names). */
uint64_t ep_hash64_str_nocase(const char *s);

#endif
