/*
 * uthash as edgeplane uses it: include this, never <uthash.h> directly.
 *  - Buckets are chosen with the project's one hash (lib/hash.h) rather
 *    than uthash's built-in Jenkins, so there is one hash function to know.
 *  - Out of memory is not fatal: uthash would exit() the process. With
 *    HASH_NONFATAL_OOM an add that cannot allocate leaves the item out
 *    (HASH_COUNT does not grow), and the caller returns -ENOMEM; a table
 *    that cannot grow its buckets keeps working, only slower.
 */
#ifndef EP_LIB_UTHASH_H
#define EP_LIB_UTHASH_H

#include "hash.h"

#define HASH_NONFATAL_OOM 1
#define HASH_FUNCTION(keyptr, keylen, hashv)                                                       \
	((hashv) = (unsigned)ep_hash64((keyptr), (size_t)(keylen)))

#include <uthash.h>

#endif
