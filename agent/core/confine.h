/*
 * Self-confinement: once start-up is done (datapath attached, sockets open,
 * threads running) the agent installs a seccomp filter that allows only the
 * system calls listed in deploy/seccomp/edgeplane-agent.syscalls, on every
 * thread at once (TSYNC). Any other call, or a call from a foreign ABI
 * (i386, x32), traps: a SIGSYS handler writes one log line naming the call
 * and the process dies by SIGSYS. Nothing degrades silently.
 *
 * The filter is inherited by every child and cannot be lifted, so the agent
 * forks nothing after it: dnsmasq is started by the spawner (lib/spawn.h),
 * a small process forked before confinement.
 */
#ifndef EP_CONFINE_H
#define EP_CONFINE_H

#include <stdbool.h>
#include <stddef.h>

/* Installs the filter on all threads. json: the log format, for the line
 * the SIGSYS handler writes by hand. 0 or -errno with err filled. */
int ep_seccomp_install(bool json, char *err, size_t errlen);

/* The number of system calls allowed on this architecture (after the last
 * install, or what an install would allow). */
size_t ep_seccomp_allowed(void);

/* Test hook (EP_SECCOMP_SELFTEST=1 in the environment, see docs/install.md):
 * makes a forbidden call from a new thread, which must kill the agent with
 * a log line naming it. Never returns when the filter is on. */
void ep_seccomp_selftest(void);

#endif
