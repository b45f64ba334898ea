/* Removing the keys of a BPF map that are no longer wanted. */
#ifndef EP_MAP_PRUNE_H
#define EP_MAP_PRUNE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Deletes every key of the map fd for which keep(key, arg) is false. The map
 * is walked once and the keys deleted afterwards: deleting the key a walk
 * stands on sends BPF_MAP_GET_NEXT_KEY back to the first key, which makes a
 * delete-while-walking prune quadratic in syscalls (a 262144-entry snapshot).
 * Returns how many keys were deleted, or -errno.
 */
long ep_map_prune(int fd, size_t key_size, bool (*keep)(const void *key, void *arg), void *arg);

#endif
