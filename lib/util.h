/* Small helpers with no better home: files, paths, time. */
#ifndef EP_UTIL_H
#define EP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ep_hash64 moved to hash.h; included here so its callers need no change. */
#include "hash.h"

#define EP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

int ep_mkdir_p(const char *path, mode_t mode);
/* Removes a file or a directory tree (bpffs pins included). */
int ep_rm_rf(const char *path);
/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. */
int ep_read_file(const char *path, size_t max, char **out, size_t *len);
/*
 * A file replaced in one step, the one way every file the agent and the CLI
 * write is written (preload, report, dnsmasq.conf, dnsmasq.pid): a temporary
 * file with a unique name (mkostemp) in the target's directory (same file
 * system, so rename is atomic; two writers never share a temporary),
 * written, fsync()ed, renamed over the target, and the directory fsync()ed
 * so the rename itself survives a crash. Readers see the old file or the new
 * one, never a mix. The mode is set exactly (no umask).
 */
struct ep_atomic_file {
	FILE *f;
	char *path;
	char *tmp;
};

/* Returns 0 or -errno; on success write to af->f. */
int ep_atomic_open(struct ep_atomic_file *af, const char *path, mode_t mode);
/* Returns 0 or -errno; the temporary file is gone either way. */
int ep_atomic_commit(struct ep_atomic_file *af);
void ep_atomic_abort(struct ep_atomic_file *af);
/* data to path through ep_atomic_*. 0 or -errno. */
int ep_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
uint64_t ep_now_ns(void);	/* CLOCK_MONOTONIC */
uint64_t ep_boottime_ns(void);	/* CLOCK_BOOTTIME */
uint64_t ep_coarse_ns(void);	/* CLOCK_MONOTONIC_COARSE == bpf_ktime_get_coarse_ns() */
double ep_wall_seconds(void);	/* CLOCK_REALTIME */

#endif
