/*
 * A long-lived helper process of the cache (dnsmasq, the policy responder)
 * that outlives the agent: started as the agent's child in a session of its
 * own, named by a pid file the agent writes, adopted by the next agent when
 * the pid file names a live process whose command line matches, watched
 * through a pidfd (an adopted process is not our child), restarted with
 * backoff. One implementation so both helpers behave the same across agent
 * restarts.
 */
#ifndef EP_SUPERVISED_H
#define EP_SUPERVISED_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"

struct ep_sup {
	const char *what; /* "dnsmasq": for log lines */
	char pid_path[PATH_MAX + 32];
	pid_t pid;	  /* 0: none */
	int pidfd;	  /* readable once it exits; -1 without */
	bool child;	  /* ours to reap (not adopted) */
	bool adopted;
	uint64_t started_ns;
	double started_at; /* Unix time of the start or adoption */
	uint64_t backoff_ns, restart_at_ns; /* restart_at_ns: a pending restart */
	uint64_t restarts;
	char last_problem[256];
};

void ep_sup_init(struct ep_sup *s, const char *what, const char *pid_path);
/* The pid in the pid file when that process is alive and its command line
 * has program name prog and the exact argument arg; else 0. */
pid_t ep_sup_find(const struct ep_sup *s, const char *prog, const char *arg);
/* Does pid's command line have exactly argv's arguments (argv[0] aside)? */
bool ep_sup_cmdline_is(pid_t pid, char *const argv[]);
/* Takes pid over (not our child). 0, or -errno when no pidfd can be opened:
 * then it is known (ep_sup_kill works) but cannot be watched. */
int ep_sup_adopt(struct ep_sup *s, pid_t pid);
/* Starts file with argv detached (lib/spawn.h: own session, default
 * signals, stdio on /dev/null, no inherited fds) and writes the pid file. */
int ep_sup_spawn(struct ep_sup *s, const char *file, char *const argv[], char *err,
		 size_t errlen);
/* SIGTERM, SIGKILL after 2 s (graceful), or SIGKILL at once; waits until
 * it is gone (bounded for an adopted one). */
void ep_sup_kill(struct ep_sup *s, bool graceful);
/* True when the process has exited (reaped if ours); why says how. */
bool ep_sup_exited(struct ep_sup *s, char *why, size_t len);
/* At once the first time; then 0.2 s doubling to 10 s while it keeps dying;
 * back to "at once" after 60 s of running. */
void ep_sup_schedule_restart(struct ep_sup *s, uint64_t now, const char *why);
typedef int (*ep_sup_start_fn)(void *arg, char *err, size_t errlen);
/*
 * The common head of a supervisor's tick: a restart that is due (SIGKILL
 * whatever is left, start(arg) anew) or the process's exit (a restart is
 * scheduled). True when the tick ends there, with *down set when the
 * process is now known not to answer; false: it runs, go on checking it.
 */
bool ep_sup_tick(struct ep_sup *s, uint64_t now, ep_sup_start_fn start, void *arg, bool *down);
/* Its pidfd (the supervisor's: dup it to watch it) and pid, or -1 and 0. */
int ep_sup_pidfd(const struct ep_sup *s, pid_t *pid);
/* The supervisor lets go: stops the process and removes its pid file when
 * asked (--detach-on-exit, the cache removed), else leaves it running. */
void ep_sup_release(struct ep_sup *s, bool stop_process);

/* A UDP health query in flight: NAME/A to ip:port (name NULL: a query
 * without a question, which a DNS server answers FORMERR). */
struct ep_sup_probe {
	int sock;
	uint16_t id;
	uint64_t sent_ns; /* 0: none in flight */
};

void ep_sup_probe_init(struct ep_sup_probe *p);
void ep_sup_probe_send(struct ep_sup_probe *p, const struct ep_ip *ip, uint16_t port,
		       const char *name, uint64_t now);
/* The rcode of this round's reply (and its answer count), or -1: none yet. */
int ep_sup_probe_poll(struct ep_sup_probe *p, unsigned *ancount);
void ep_sup_probe_close(struct ep_sup_probe *p);

#endif
