// SPDX-License-Identifier: GPL-2.0
/*
 * ep_seccomp_exec — apply a Docker/OCI-format seccomp profile (the JSON of a
 * Kubernetes `seccompProfile: {type: Localhost}`) and exec a program, as an
 * OCI runtime (runc, crun) does as its last step before the container's
 * process. Used by the pod-shaped tests (tests/lib/pod.sh), where no runtime
 * can start containers.
 *
 *   ep_seccomp_exec [--no-new-privs] PROFILE.json -- PROGRAM [ARG...]
 *
 * The profile: defaultAction, defaultErrnoRet, architectures and/or archMap
 * (architecture + subArchitectures), syscalls[] {names | name, action,
 * errnoRet, args[] {index, value, valueTwo, op}, includes/excludes {caps,
 * arches, minKernel}} — the fields containerd's and runc's loaders read.
 * Syscall names this libseccomp does not know are skipped (as runtimes do).
 * includes/excludes caps are matched against this process's effective set.
 *
 * --no-new-privs sets PR_SET_NO_NEW_PRIVS first, as runtimes do for
 * allowPrivilegeEscalation: false; without it the filter is loaded with
 * CAP_SYS_ADMIN (as runtimes do when privilege escalation is allowed) and
 * the process keeps NoNewPrivs 0. Every fd above 2 is closed before the
 * exec (a runtime passes only stdio), so PROFILE may be a /proc/self/fd/N
 * opened outside a chroot.
 *
 * Static (see the Makefile): it runs inside the image's root filesystem.
 * Exit status 125 when the profile cannot be applied; the program's own
 * otherwise.
 */
#include <errno.h>
#include <jansson.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#define FAIL 125

static const char *const cap_names[] = {
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
	"SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
	"NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
	"SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
	"AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
};

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ep_seccomp_exec: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(FAIL);
}

static uint64_t cap_eff(void)
{
	char line[256];
	unsigned long long v = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &v) == 1)
			break;
	fclose(f);
	return v;
}

static bool have_cap(const char *name)
{
	if (!strncmp(name, "CAP_", 4))
		name += 4;
	for (size_t i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
		if (!strcmp(cap_names[i], name))
			return cap_eff() & (1ULL << i);
	return false;
}

static uint32_t arch_of(const char *name)
{
	static const struct {
		const char *n;
		uint32_t a;
	} t[] = {
		{ "SCMP_ARCH_X86", SCMP_ARCH_X86 },	    { "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 },
		{ "SCMP_ARCH_X32", SCMP_ARCH_X32 },	    { "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
		{ "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 }, { "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE },
		{ "SCMP_ARCH_S390X", SCMP_ARCH_S390X },	    { "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].n, name))
			return t[i].a;
	return 0;
}

static bool native_arch_in(json_t *arches)
{
	size_t i;
	json_t *a;

	json_array_foreach(arches, i, a)
	{
		uint32_t x = json_is_string(a) ? arch_of(json_string_value(a)) : 0;

		if (x && x == seccomp_arch_native())
			return true;
	}
	return false;
}

static int kernel_at_least(const char *v)
{
	struct utsname u;
	int ka = 0, kb = 0, va = 0, vb = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &ka, &kb) < 1 || sscanf(v, "%d.%d", &va, &vb) < 1)
		return 0;
	return ka > va || (ka == va && kb >= vb);
}

/* includes/excludes of a syscalls[] entry: does it apply here? */
static bool entry_applies(json_t *e)
{
	json_t *inc = json_object_get(e, "includes"), *exc = json_object_get(e, "excludes"), *x, *c;
	size_t i;

	if (json_is_object(inc)) {
		if ((x = json_object_get(inc, "caps")) && json_array_size(x))
			json_array_foreach(x, i, c) if (!json_is_string(c) || !have_cap(json_string_value(c)))
				return false;
		if ((x = json_object_get(inc, "arches")) && json_array_size(x) && !native_arch_in(x))
			return false;
		if ((x = json_object_get(inc, "minKernel")) && json_is_string(x) &&
		    !kernel_at_least(json_string_value(x)))
			return false;
	}
	if (json_is_object(exc)) {
		if ((x = json_object_get(exc, "caps")) && json_array_size(x))
			json_array_foreach(x, i, c) if (json_is_string(c) && have_cap(json_string_value(c)))
				return false;
		if ((x = json_object_get(exc, "arches")) && json_array_size(x) && native_arch_in(x))
			return false;
	}
	return true;
}

static uint32_t action_of(const char *name, json_t *errno_ret, json_t *def_errno)
{
	int e = EPERM;

	if (json_is_integer(errno_ret))
		e = (int)json_integer_value(errno_ret);
	else if (json_is_integer(def_errno))
		e = (int)json_integer_value(def_errno);
	if (!name)
		die("an action is missing");
	if (!strcmp(name, "SCMP_ACT_ALLOW"))
		return SCMP_ACT_ALLOW;
	if (!strcmp(name, "SCMP_ACT_ERRNO"))
		return SCMP_ACT_ERRNO(e);
	if (!strcmp(name, "SCMP_ACT_TRACE"))
		return SCMP_ACT_TRACE(e);
	if (!strcmp(name, "SCMP_ACT_KILL") || !strcmp(name, "SCMP_ACT_KILL_THREAD"))
		return SCMP_ACT_KILL_THREAD;
	if (!strcmp(name, "SCMP_ACT_KILL_PROCESS"))
		return SCMP_ACT_KILL_PROCESS;
	if (!strcmp(name, "SCMP_ACT_TRAP"))
		return SCMP_ACT_TRAP;
	if (!strcmp(name, "SCMP_ACT_LOG"))
		return SCMP_ACT_LOG;
	die("action %s is not supported by this loader", name);
}

static enum scmp_compare op_of(const char *name)
{
	static const struct {
		const char *n;
		enum scmp_compare op;
	} t[] = {
		{ "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT },
		{ "SCMP_CMP_LE", SCMP_CMP_LE }, { "SCMP_CMP_EQ", SCMP_CMP_EQ },
		{ "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
		{ "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
	};
	for (size_t i = 0; name && i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].n, name))
			return t[i].op;
	die("argument op %s is not supported", name ? name : "(missing)");
}

static void add_arch(scmp_filter_ctx ctx, const char *name)
{
	uint32_t a = arch_of(name);
	int rc;

	if (!a)
		die("unknown architecture %s", name);
	rc = seccomp_arch_add(ctx, a);
	if (rc && rc != -EEXIST)
		die("cannot add architecture %s: %s", name, strerror(-rc));
}

int main(int argc, char **argv)
{
	bool nnp = false;
	int i = 1, rc, rules = 0, unknown = 0;
	json_error_t jerr;
	json_t *root, *syscalls, *x, *e;
	uint32_t def;
	scmp_filter_ctx ctx;
	size_t k;

	if (i < argc && !strcmp(argv[i], "--no-new-privs")) {
		nnp = true;
		i++;
	}
	if (argc - i < 3 || strcmp(argv[i + 1], "--")) {
		fprintf(stderr, "usage: ep_seccomp_exec [--no-new-privs] PROFILE.json -- PROGRAM [ARG...]\n");
		return 2;
	}
	root = json_load_file(argv[i], 0, &jerr);
	if (!root)
		die("%s: %s", argv[i], jerr.text);
	x = json_object_get(root, "defaultAction");
	def = action_of(json_string_value(x), json_object_get(root, "defaultErrnoRet"), NULL);
	ctx = seccomp_init(def);
	if (!ctx)
		die("seccomp_init failed");
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0))
		die("cannot clear SCMP_FLTATR_CTL_NNP");
	json_array_foreach(json_object_get(root, "architectures"), k, x) add_arch(ctx, json_string_value(x));
	json_array_foreach(json_object_get(root, "archMap"), k, e)
	{
		size_t j;
		json_t *s;

		if (!json_is_string(json_object_get(e, "architecture")))
			continue;
		if (!native_arch_in(json_pack("[O]", json_object_get(e, "architecture"))))
			continue;
		add_arch(ctx, json_string_value(json_object_get(e, "architecture")));
		json_array_foreach(json_object_get(e, "subArchitectures"), j, s) add_arch(ctx, json_string_value(s));
	}
	syscalls = json_object_get(root, "syscalls");
	json_array_foreach(syscalls, k, e)
	{
		json_t *names = json_object_get(e, "names"), *args = json_object_get(e, "args"), *n;
		struct scmp_arg_cmp cmp[6];
		unsigned int ncmp = 0;
		uint32_t act;
		size_t j;

		if (!entry_applies(e))
			continue;
		act = action_of(json_string_value(json_object_get(e, "action")), json_object_get(e, "errnoRet"),
				json_object_get(root, "defaultErrnoRet"));
		json_array_foreach(args, j, x)
		{
			if (ncmp == 6)
				die("more than 6 argument conditions");
			cmp[ncmp].arg = (unsigned int)json_integer_value(json_object_get(x, "index"));
			cmp[ncmp].op = op_of(json_string_value(json_object_get(x, "op")));
			cmp[ncmp].datum_a = (scmp_datum_t)json_integer_value(json_object_get(x, "value"));
			cmp[ncmp].datum_b = (scmp_datum_t)json_integer_value(json_object_get(x, "valueTwo"));
			ncmp++;
		}
		if (!names && json_is_string(json_object_get(e, "name")))
			names = json_pack("[O]", json_object_get(e, "name"));
		json_array_foreach(names, j, n)
		{
			int nr = json_is_string(n) ? seccomp_syscall_resolve_name(json_string_value(n)) : __NR_SCMP_ERROR;

			if (nr == __NR_SCMP_ERROR) {
				unknown++;
				continue;
			}
			if (act == def)
				continue; /* libseccomp refuses a rule equal to the default */
			rc = seccomp_rule_add_array(ctx, act, nr, ncmp, cmp);
			if (rc)
				die("cannot add the rule for %s: %s", json_string_value(n), strerror(-rc));
			rules++;
		}
	}
	if (getenv("EP_SECCOMP_VERBOSE"))
		fprintf(stderr, "ep_seccomp_exec: %d rules, %d unknown syscall names skipped%s\n", rules, unknown,
			nnp ? ", no_new_privs" : "");
	json_decref(root);
	/* Only stdio reaches the program, as from a runtime. */
	syscall(SYS_close_range, 3U, ~0U, 0U);
	if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	rc = seccomp_load(ctx);
	if (rc)
		die("cannot load the filter: %s%s", strerror(-rc),
		    rc == -EACCES ? " (without --no-new-privs loading needs CAP_SYS_ADMIN)" : "");
	seccomp_release(ctx);
	i += 2;
	if (strchr(argv[i], '/'))
		execv(argv[i], argv + i);
	else
		execvp(argv[i], argv + i);
	die("cannot exec %s: %s", argv[i], strerror(errno));
}
