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
 * The cache's spawner. The cache's helpers (dnsmasq, the policy responder)
 * must outlive the agent. On a systemd host the local spawner's children
 * do: they are reparented to init. In a pod they do not: the agent's
 * container takes every process it started with it when it restarts. There
 * a second container runs a long-lived spawner server
 * (`edgeplane-agent --spawner-listen PATH`, ep_spawner_serve) and the agent,
 * given `--spawner PATH` (ep_spawner_remote_set), starts the cache's helpers
 * through it (ep_spawn_cache_*), so they are that container's children. The
 * server reaps its children itself as they exit (the agent that started one
 * may be gone, and the next agent only adopts it) and answers a later
 * "reap PID" from a table of exit statuses. When the server cannot be
 * reached the cache calls fail with the reason; they never fall back to
 * the local spawner, whose children would die with the agent's container.
 *
 * Without a spawner (tools, unit tests) the calls fork and exec directly.
 */
#ifndef EP_SPAWN_H
#define EP_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/* ---- the cache's spawner --------------------------------------------------- */

/* The server at path (absolute, shorter than sun_path) starts the cache's
 * helpers from now on; NULL: the local spawner does (the default). Only
 * records the path: the connection is made on first use and remade after
 * the server went away. 0 or -EINVAL. */
int ep_spawner_remote_set(const char *path);
/* The path set, or NULL. */
const char *ep_spawner_remote_path(void);
/* Connects when not connected. 0: reachable; -errno with why filled. */
int ep_spawner_remote_check(char *why, size_t len);
/* As ep_spawn_detached / ep_spawn_reap, through the remote server when one
 * is set (a dead connection is remade once per call), else locally. */
int ep_spawn_cache_detached(const char *file, char *const argv[], pid_t *pid, int *pidfd);
int ep_spawn_cache_reap(pid_t pid, bool block, int *status);

/* Serves run/reap requests on a SOCK_SEQPACKET socket at path (mode 0600;
 * only clients of the server's own uid are answered) until SIGTERM or
 * SIGINT; reaps every child as it exits. A stale socket file is replaced;
 * a live server on it is an error. Returns the process's exit status. */
int ep_spawner_serve(const char *path);

/* ---- the wire format (exposed for tests and the fuzzer) -------------------- */

enum { EP_SPAWN_RUN = 1, EP_SPAWN_REAP = 2 };
#define EP_SPAWN_MAX_REQ 8192
#define EP_SPAWN_MAX_ARGS 64

struct ep_spawn_msg {
	int32_t op_or_rc;
	int32_t pid;
	int32_t arg; /* reap: block; answer: wait status */
};

struct ep_spawn_req {
	int op;
	pid_t pid;  /* reap */
	bool block; /* reap */
	const char *file; /* run */
	char *argv[EP_SPAWN_MAX_ARGS + 1]; /* run, NULL-terminated */
};

/* Parses one request of n bytes in buf (up to EP_SPAWN_MAX_REQ; the strings
 * point into buf). run: the header, then file and at least argv[0] as
 * NUL-terminated strings filling the rest exactly; reap: the header alone,
 * pid > 0, block 0 or 1. 0, or -EINVAL / -E2BIG. */
int ep_spawn_req_parse(const char *buf, size_t n, struct ep_spawn_req *r);

/* The exit statuses a server keeps for "reap PID" (exposed for tests). */
#define EP_SPAWN_EXITED_MAX 128
struct ep_spawn_exited {
	struct {
		pid_t pid; /* 0: free */
		int status;
		uint64_t seq;
	} e[EP_SPAWN_EXITED_MAX];
	uint64_t seq;
};
/* Records pid's status, replacing the oldest entry when full. */
void ep_spawn_exited_put(struct ep_spawn_exited *t, pid_t pid, int status);
/* Takes pid's status out of the table: true when it was there. */
bool ep_spawn_exited_take(struct ep_spawn_exited *t, pid_t pid, int *status);

#endif
