/*
 * The agent's own DNS traffic must reach the real upstream, also while the
 * node is failed over and the cgroup socket hooks (tc/sock_dns.bpf.c) send
 * every other process's DNS to the local cache: the health probes would
 * otherwise measure the agent's own cache and call a broken upstream healthy,
 * and a snapshot refresh would copy the cache into itself.
 *
 * Every socket the agent opens towards an upstream is exempted right after
 * socket(), before its first connect or send, by attaching struct
 * ep_dns_exempt to it in the pinned socket-storage map ep_dns_exempt. The
 * mark belongs to the socket, not to a process id: it holds in any PID
 * namespace (the agent as pid 1 of its container), in any cgroup layout, for
 * agents restarted or upgraded (the map is pinned; the storage dies with its
 * socket, so nothing is ever cleaned up), and only a process that may write
 * the pinned map can set it.
 *
 * A NULL struct ep_dns_exempt_map means "no exemption" (the CLI's cache build,
 * unit tests): ep_dns_exempt_socket then succeeds and does nothing.
 */
#ifndef EP_DNS_EXEMPT_H
#define EP_DNS_EXEMPT_H

#include <stdint.h>

struct ep_dns_exempt_map {
	int map_fd;	/* our own duplicate of the ep_dns_exempt map fd */
	uint32_t owner; /* EP_DNS_EXEMPT_* (edgeplane_abi.h) */
};

/* A handle on the map whose fd is map_fd (duplicated: the caller's fd may
 * close first, e.g. the datapath's while a refresh thread still runs).
 * Returns NULL with errno set. */
struct ep_dns_exempt_map *ep_dns_exempt_map_new(int map_fd, uint32_t owner);
void ep_dns_exempt_map_free(struct ep_dns_exempt_map *x);

/* Exempts socket fd from the DNS redirect; 0 or -errno. Call it before the
 * socket's first connect/sendto: the hooks decide at that moment. */
int ep_dns_exempt_socket(const struct ep_dns_exempt_map *x, int fd);

#endif
