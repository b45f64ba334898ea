/*
 * The agent's seccomp filter (see confine.h).
 *
 * Why SCMP_ACT_TRAP and not KILL_PROCESS: a killed process leaves at most
 * an audit record in the kernel log, which a container's log never shows.
 * With TRAP the kernel sends SIGSYS to the offending thread with the call's
 * number; the handler below turns it into one line in the agent's own log
 * (text or JSON, as configured) and then dies by SIGSYS, so the exit looks
 * the same to systemd and the kubelet as a kernel kill would. The handler
 * may only use async-signal-safe means: names are resolved ahead of time
 * into a static table, the line is built by hand and written with write(2).
 */
#include "confine.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Generated at build time from deploy/seccomp/edgeplane-agent.syscalls. */
static const char *const allow_list[] = {
#include "ep_seccomp_syscalls.h"
};

#if defined(__SANITIZE_ADDRESS__)
#define EP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EP_SANITIZED 1
#endif
#endif

#ifdef EP_SANITIZED
/* The ASan/LSan runtime of `make asan` (tests/e2e/agent_asan.sh): at exit
 * LeakSanitizer stops the world with a tracer task (clone without
 * CLONE_THREAD) that ptraces every thread, and the runtime lists
 * /proc/self/task with raw open/getdents. Only in that build. */
static const char *const sanitizer_extra[] = {"ptrace", "wait4", "process_vm_readv", "open", "getdents",
					       "sched_getparam", "setrlimit"};
#endif

#ifdef EP_SECCOMP_LEARN
/* Building the list (docs/install.md, "Confinement"): a build made with
 * -DEP_SECCOMP_LEARN lets every call through and the kernel logs each one
 * outside the list ("audit: type=1326 ... syscall=N" in dmesg). Never in a
 * shipped binary: nothing at run time can select it. */
#define EP_DEFAULT_ACTION SCMP_ACT_LOG
#else
#define EP_DEFAULT_ACTION SCMP_ACT_TRAP
#endif

#define MAX_NR 1024

static const char *names[MAX_NR];
static uint32_t native_arch;
static bool log_json;
static size_t n_allowed;

/* ---- the SIGSYS handler: async-signal-safe only ------------------------- */

struct line {
	char buf[512];
	size_t n;
};

static void put(struct line *l, const char *s)
{
	while (*s && l->n < sizeof(l->buf) - 2)
		l->buf[l->n++] = *s++;
}

static void put_num(struct line *l, unsigned long long v, unsigned base, int width)
{
	char tmp[24];
	int i = 0;

	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && i < (int)sizeof(tmp));
	while (i < width && i < (int)sizeof(tmp))
		tmp[i++] = '0';
	while (i > 0 && l->n < sizeof(l->buf) - 2)
		l->buf[l->n++] = tmp[--i];
}

/* UTC time as the log prints it (lib/log.c), without gmtime_r: days to a
 * civil date (H. Hinnant's algorithm). */
static void put_time(struct line *l)
{
	struct timespec ts;
	long long days, z, era, doe, yoe, doy, mp, y;
	unsigned d, m, secs;

	clock_gettime(CLOCK_REALTIME, &ts);
	days = ts.tv_sec / 86400;
	secs = (unsigned)(ts.tv_sec % 86400);
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	y += m <= 2;
	put_num(l, (unsigned long long)y, 10, 4);
	put(l, "-");
	put_num(l, m, 10, 2);
	put(l, "-");
	put_num(l, d, 10, 2);
	put(l, "T");
	put_num(l, secs / 3600, 10, 2);
	put(l, ":");
	put_num(l, secs / 60 % 60, 10, 2);
	put(l, ":");
	put_num(l, secs % 60, 10, 2);
	put(l, ".");
	put_num(l, (unsigned long long)ts.tv_nsec / 1000000, 10, 3);
	put(l, "Z");
}

static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	struct rlimit nocore = {0, 0};
	struct line l = {.n = 0};
	int nr = si->si_syscall;
	const char *name = NULL;
	sigset_t set;

	if (si->si_arch == native_arch && nr >= 0 && nr < MAX_NR)
		name = names[nr];
	put(&l, log_json ? "{\"ts\":\"" : "");
	put_time(&l);
	put(&l, log_json ? "\",\"level\":\"error\",\"msg\":\"" : " error ");
	put(&l, "seccomp: forbidden system call ");
	put(&l, name ? name : "?");
	put(&l, " (nr ");
	put_num(&l, (unsigned)nr, 10, 1);
	if (si->si_arch != native_arch) {
		put(&l, ", foreign arch 0x");
		put_num(&l, si->si_arch, 16, 1);
	}
	put(&l, ") in thread ");
	put_num(&l, (unsigned long long)syscall(SYS_gettid), 10, 1);
	put(&l, " at 0x");
	put_num(&l, (uintptr_t)si->si_call_addr, 16, 1);
	put(&l, ": the agent dies (not in deploy/seccomp/edgeplane-agent.syscalls; "
		"--no-seccomp turns the filter off to debug)");
	put(&l, log_json ? "\"}\n" : "\n");
	if (write(STDERR_FILENO, l.buf, l.n) < 0) {
		/* Nothing left to tell it to. */
	}
	/* Die as a kernel kill would (SIGSYS), but without a core file of a
	 * root daemon's memory: the line above says what happened. */
	setrlimit(RLIMIT_CORE, &nocore);
	signal(SIGSYS, SIG_DFL);
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSYS);
	sigemptyset(&set);
	sigaddset(&set, SIGSYS);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	_exit(159); /* not reached: 128 + SIGSYS */
}

/* ---- building and loading the filter ------------------------------------ */

static int add_rule(scmp_filter_ctx ctx, const char *name, bool *skipped)
{
	int nr = seccomp_syscall_resolve_name(name);

	*skipped = false;
	if (nr == __NR_SCMP_ERROR) {
		/* Listed for another architecture (open, stat, ... on arm64). */
		*skipped = true;
		return 0;
	}
#ifndef EP_SANITIZED
	if (!strcmp(name, "clone"))
		/* Threads only: clone's first argument is the flags on x86_64
		 * and arm64. A fork (no CLONE_THREAD) traps. */
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
#endif
	if (!strcmp(name, "clone3"))
		/* Its flags sit in a struct a filter cannot read: ENOSYS makes
		 * glibc (2.34+) fall back to clone, which the rule above checks. */
		return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

static int build(scmp_filter_ctx ctx, size_t *allowed, char *err, size_t errlen)
{
	size_t n = 0;
	bool skipped;
	int rc;

	for (size_t i = 0; i < EP_ARRAY_SIZE(allow_list); i++) {
		rc = add_rule(ctx, allow_list[i], &skipped);
		if (rc) {
			snprintf(err, errlen, "seccomp rule for %s: %s", allow_list[i], strerror(-rc));
			return rc;
		}
		n += !skipped;
	}
#ifdef EP_SANITIZED
	for (size_t i = 0; i < EP_ARRAY_SIZE(sanitizer_extra); i++) {
		rc = add_rule(ctx, sanitizer_extra[i], &skipped);
		if (rc) {
			snprintf(err, errlen, "seccomp rule for %s: %s", sanitizer_extra[i],
				 strerror(-rc));
			return rc;
		}
	}
#endif
	*allowed = n;
	return 0;
}

size_t ep_seccomp_allowed(void)
{
	char err[256];
	size_t n = 0;
	scmp_filter_ctx ctx;

	if (n_allowed)
		return n_allowed;
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (ctx && build(ctx, &n, err, sizeof(err)))
		n = 0;
	seccomp_release(ctx);
	return n;
}

int ep_seccomp_install(bool json, char *err, size_t errlen)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
	scmp_filter_ctx ctx;
	size_t n = 0;
	int rc;

	log_json = json;
	native_arch = seccomp_arch_native();
	/* Resolved now: the handler cannot call into libseccomp (it allocates). */
	for (int nr = 0; nr < MAX_NR; nr++)
		if (!names[nr])
			names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	ctx = seccomp_init(EP_DEFAULT_ACTION);
	if (!ctx) {
		snprintf(err, errlen, "seccomp_init failed");
		return -ENOMEM;
	}
	/* A call through another ABI (int 0x80, x32) is a violation too. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, EP_DEFAULT_ACTION);
	/* Every thread at once: the metrics, Kubernetes and cache threads are
	 * already running. */
	if (!rc)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc) {
		snprintf(err, errlen, "seccomp attributes: %s", strerror(-rc));
		goto out;
	}
	rc = build(ctx, &n, err, errlen);
	if (rc)
		goto out;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL)) {
		rc = -errno;
		snprintf(err, errlen, "SIGSYS handler: %s", strerror(errno));
		goto out;
	}
	rc = seccomp_load(ctx);
	if (rc) {
		snprintf(err, errlen, "loading the seccomp filter: %s", strerror(-rc));
		goto out;
	}
	n_allowed = n;
out:
	seccomp_release(ctx);
	return rc;
}

static void *selftest_thread(void *arg)
{
	/* personality(0xffffffff) only reads the persona: harmless where the
	 * filter is off, a violation where it is on. */
	long r = syscall(SYS_personality, 0xffffffffUL);

	log_warn("seccomp selftest: personality() returned %ld: the filter is off", r);
	return NULL;
}

void ep_seccomp_selftest(void)
{
	pthread_t t;

	log_warn("seccomp selftest (EP_SECCOMP_SELFTEST=1): calling personality() from a new thread");
	if (pthread_create(&t, NULL, selftest_thread, NULL) == 0)
		pthread_join(t, NULL);
}
