#include "dns_cache_privs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns_cache.h"
#include "log.h"
#include "util.h"

static void warn_unprivileged_port(void)
{
	char *buf = NULL;
	long start;

	if (ep_read_file("/proc/sys/net/ipv4/ip_unprivileged_port_start", 64, &buf, NULL))
		return;
	start = strtol(buf, NULL, 10);
	free(buf);
	if (start <= EP_POLICY_PORT)
		log_warn("DNS cache: net.ipv4.ip_unprivileged_port_start is %ld in this network "
			 "namespace: any local user could bind the policy responder's port %d while "
			 "the responder is down or restarting; set it above %d",
			 start, EP_POLICY_PORT, EP_POLICY_PORT);
}

/*
 * dnsmasq started by root drops to "nobody", and root may signal a process
 * of another uid only with CAP_KILL: without it every SIGHUP (a new preload)
 * and SIGTERM (a config change, a hung dnsmasq) fails with EPERM, and the
 * cache serves a stale snapshot for ever. Refused at start rather than
 * found out at the first reload.
 */
static int check_cap_kill(char *err, size_t errlen)
{
	unsigned long long eff = 0;
	char *buf = NULL, *line;

	if (geteuid() != 0 || ep_read_file("/proc/self/status", 1 << 16, &buf, NULL))
		return 0;
	line = strstr(buf, "\nCapEff:");
	if (!line || sscanf(line, "\nCapEff: %llx", &eff) != 1) {
		free(buf);
		return 0;
	}
	free(buf);
	if (eff & (1ULL << 5 /* CAP_KILL */))
		return 0;
	snprintf(err, errlen,
		 "the DNS cache needs CAP_KILL: dnsmasq runs as nobody, and without it the agent "
		 "cannot signal it (reload a new preload, restart it). Add CAP_KILL next to "
		 "CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID (docs/install.md, \"DNS failover\")");
	return -EPERM;
}

int ep_dns_cache_check_privs(char *err, size_t errlen)
{
	warn_unprivileged_port();
	return check_cap_kill(err, errlen);
}
