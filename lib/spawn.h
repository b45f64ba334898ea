/*
 * Starting detached helper programs (dnsmasq) from a process that confines
 * itself with seccomp. A seccomp filter is inherited across fork and exec
 * and can never be lifted, so anything the confined agent forked would run
 * under the agent's allow-list, and the list would have to grow by every
 * call the child makes. Instead the agent forks the spawner at the very
 * start, before threads and before the filter: a tiny process that waits on
 * a socketpair for "run ARGV" and "reap PID" requests. Programs it starts
 * run under their own confinement (the unit's SystemCallFilter=, the pod's
 * seccomp profile), never the agent's.
 *
 * Without a spawner (tools, unit tests) the calls fork and exec directly.
 */
#ifndef EP_SPAWN_H
#define EP_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

/* Forks the spawner. Call before any thread exists. argv (may be NULL): the
 * process's own, which the spawner overwrites with "edgeplane-agent: spawner"
 * so that ps, and scripts that find the agent by its command line, tell
 * the two apart. 0 or -errno. */
int ep_spawner_start(char **argv);
/* Closes the channel; the spawner exits (its children keep running). */
void ep_spawner_stop(void);
/* The spawner's pid, 0 when none runs. */
pid_t ep_spawner_pid(void);

/* Runs file (PATH searched when it has no '/') with argv, detached: own session, signals unblocked and
 * default, stdin/out/err on /dev/null, no other fds. On success *pid is set
 * and *pidfd (when pidfd is not NULL) is a pidfd of it, or -1 where the
 * kernel has none. 0 or -errno. */
int ep_spawn_detached(const char *file, char *const argv[], pid_t *pid, int *pidfd);
/* Reaps a process started by ep_spawn_detached; block: wait for it to
 * exit, otherwise 1 is returned while it still runs. *status (may be NULL)
 * as from waitpid. 0 reaped, 1 still running, -errno. */
int ep_spawn_reap(pid_t pid, bool block, int *status);

#endif
