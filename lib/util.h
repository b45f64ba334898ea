/* Small helpers with no better home: files, paths, time. */
#ifndef EP_UTIL_H
#define EP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ep_hash64 moved to hash.h; included here so its callers need no change. */
#include "hash.h"

#define EP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

int ep_mkdir_p(const char *path, mode_t mode);
/* Removes a file or a directory tree (bpffs pins included). */
int ep_rm_rf(const char *path);
/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. */
int ep_read_file(const char *path, size_t max, char **out, size_t *len);
/* Writes data to path via a temporary file in the same directory + rename. */
int ep_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
uint64_t ep_now_ns(void);	/* CLOCK_MONOTONIC */
uint64_t ep_boottime_ns(void);	/* CLOCK_BOOTTIME */
uint64_t ep_coarse_ns(void);	/* CLOCK_MONOTONIC_COARSE == bpf_ktime_get_coarse_ns() */
double ep_wall_seconds(void);	/* CLOCK_REALTIME */

#endif
