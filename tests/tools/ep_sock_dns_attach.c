// SPDX-License-Identifier: GPL-2.0
/*
 * ep_sock_dns_attach — loads tc/sock_dns.bpf.c for tests, attaches its
 * cgroup socket-address programs to one cgroup (bpf_links pinned, so they
 * stay after the tool exits) and edits the DNS maps it pinned:
 *
 *   ep_sock_dns_attach attach   --cgroup DIR --pin DIR
 *   ep_sock_dns_attach config   --pin DIR [--mode cache|upstream] [--cache4 ADDR]
 *                               [--cache6 ADDR] [--netns-cookie N|self]
 *   ep_sock_dns_attach upstream --pin DIR ADDR IDX [FLAGS]
 *   ep_sock_dns_attach stats    --pin DIR IDX      prints "redirected=N queries=N"
 *   ep_sock_dns_attach cookie                      prints this network namespace's cookie
 *   ep_sock_dns_attach exempt   --pin DIR FD       exempts the socket open on (inherited) FD
 *                                                  from the redirect, as the agent does its own
 *
 * Maps are pinned as DIR/maps/<name>, links as DIR/links/<program>; removing
 * them (or unmounting the bpffs) detaches everything. `config` changes only
 * the fields it is given.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns_exempt.h"
#include "edgeplane_abi.h"
#include "pins.h"
#include "sock_dns.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

static const char *opt(int argc, char **argv, const char *name)
{
	for (int i = 2; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return NULL;
}

/* Positional arguments after the subcommand, skipping "--x value" pairs. */
static const char *pos(int argc, char **argv, int n)
{
	for (int i = 2; i < argc; i++) {
		if (!strncmp(argv[i], "--", 2)) {
			i++;
			continue;
		}
		if (n-- == 0)
			return argv[i];
	}
	return NULL;
}

static int die(const char *what)
{
	fprintf(stderr, "ep_sock_dns_attach: %s: %s\n", what, strerror(errno));
	return 1;
}

static int netns_cookie(uint64_t *c)
{
	socklen_t len = sizeof(*c);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), rc;

	if (fd < 0)
		return -1;
	rc = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, c, &len);
	close(fd);
	return rc;
}

static int map_fd(const char *pin, const char *name)
{
	char path[PATH_MAX];

	if (ep_dp_map_pin_path(pin, name, path, sizeof(path)))
		return -1;
	return bpf_obj_get(path);
}

static int cmd_attach(int argc, char **argv)
{
	const char *cg = opt(argc, argv, "--cgroup"), *pin = opt(argc, argv, "--pin");
	char path[PATH_MAX];
	struct sock_dns *skel;
	struct bpf_program *prog;
	char err[256];
	int cgfd, n = 0;

	if (!cg || !pin) {
		fprintf(stderr, "attach needs --cgroup DIR --pin DIR\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/maps", pin);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/links", pin);
	mkdir(path, 0700);
	skel = sock_dns__open();
	if (!skel)
		return die("open sock_dns");
	/* The agent's rule, so the tool pins exactly what an agent would. */
	if (ep_dp_pin_maps(skel->obj, pin, 0, err, sizeof(err))) {
		fprintf(stderr, "ep_sock_dns_attach: %s\n", err);
		return 1;
	}
	if (sock_dns__load(skel))
		return die("load sock_dns");
	cgfd = open(cg, O_RDONLY | O_DIRECTORY);
	if (cgfd < 0)
		return die(cg);
	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_link *link = bpf_program__attach_cgroup(prog, cgfd);

		if (!link)
			return die(bpf_program__section_name(prog));
		snprintf(path, sizeof(path), "%s/links/%s", pin, bpf_program__name(prog));
		if (bpf_link__pin(link, path))
			return die(path);
		n++;
	}
	printf("attached %d programs to %s\n", n, cg);
	close(cgfd);
	sock_dns__destroy(skel); /* the pins keep maps and links */
	return 0;
}

static int parse_addr(const char *s, __u32 out[4], int *family)
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out) == 1) {
		*family = EP_FAMILY_V4;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out) == 1) {
		*family = EP_FAMILY_V6;
		return 0;
	}
	fprintf(stderr, "bad address %s\n", s);
	return -1;
}

static int cmd_config(int argc, char **argv)
{
	const char *pin = opt(argc, argv, "--pin"), *v;
	struct ep_dns_config c;
	__u32 zero = 0, a[4];
	int fd, fam;

	if (!pin)
		return 2;
	fd = map_fd(pin, "ep_dns_config");
	if (fd < 0 || bpf_map_lookup_elem(fd, &zero, &c))
		return die("ep_dns_config");
	if ((v = opt(argc, argv, "--mode")))
		c.mode = !strcmp(v, "cache") ? EP_DNS_MODE_CACHE : EP_DNS_MODE_UPSTREAM;
	if ((v = opt(argc, argv, "--cache4"))) {
		if (parse_addr(v, a, &fam) || fam != EP_FAMILY_V4)
			return 2;
		c.cache_addr4 = a[0];
		c.cache_family4 = 1;
	}
	if ((v = opt(argc, argv, "--cache6"))) {
		if (parse_addr(v, a, &fam) || fam != EP_FAMILY_V6)
			return 2;
		memcpy(c.cache_addr6, a, 16);
		c.cache_family6 = 1;
	}
	if ((v = opt(argc, argv, "--netns-cookie"))) {
		uint64_t ck;

		if (!strcmp(v, "self")) {
			if (netns_cookie(&ck))
				return die("SO_NETNS_COOKIE");
		} else {
			ck = strtoull(v, NULL, 0);
		}
		c.netns_cookie = ck;
	}
	if (bpf_map_update_elem(fd, &zero, &c, BPF_ANY))
		return die("update ep_dns_config");
	return 0;
}

static int cmd_upstream(int argc, char **argv)
{
	const char *pin = opt(argc, argv, "--pin"), *a = pos(argc, argv, 0), *i = pos(argc, argv, 1),
		   *f = pos(argc, argv, 2);
	struct ep_dns_upstream_key k;
	struct ep_dns_upstream v;
	int fd, fam;

	if (!pin || !a || !i)
		return 2;
	memset(&k, 0, sizeof(k));
	if (parse_addr(a, k.addr, &fam))
		return 2;
	k.family = (__u32)fam;
	v.idx = (__u32)strtoul(i, NULL, 0);
	v.flags = f ? (__u32)strtoul(f, NULL, 0) : 0;
	fd = map_fd(pin, "ep_dns_upstreams");
	if (fd < 0 || bpf_map_update_elem(fd, &k, &v, BPF_ANY))
		return die("ep_dns_upstreams");
	return 0;
}

static int cmd_stats(int argc, char **argv)
{
	const char *pin = opt(argc, argv, "--pin"), *i = pos(argc, argv, 0);
	int ncpu = libbpf_num_possible_cpus(), fd;
	__u32 idx;
	uint64_t red = 0, q = 0;

	if (!pin || !i || ncpu < 1)
		return 2;
	idx = (__u32)strtoul(i, NULL, 0);
	{
		struct ep_dns_stats v[ncpu];

		fd = map_fd(pin, "ep_dns_stats");
		if (fd < 0 || bpf_map_lookup_elem(fd, &idx, v))
			return die("ep_dns_stats");
		for (int c = 0; c < ncpu; c++) {
			red += v[c].redirected;
			q += v[c].queries;
		}
	}
	printf("redirected=%llu queries=%llu\n", (unsigned long long)red, (unsigned long long)q);
	return 0;
}

/* Through the agent's own helper, so the test exercises what the agent does.
 * The socket is the caller's: it is inherited as FD, and the storage stays
 * on the socket after this process exits. */
static int cmd_exempt(int argc, char **argv)
{
	const char *pin = opt(argc, argv, "--pin"), *f = pos(argc, argv, 0);
	struct ep_dns_exempt_map *x;
	struct ep_dns_exempt v;
	int fd, mfd, rc;

	if (!pin || !f)
		return 2;
	fd = atoi(f);
	mfd = map_fd(pin, "ep_dns_exempt");
	if (mfd < 0)
		return die("ep_dns_exempt");
	x = ep_dns_exempt_map_new(mfd, EP_DNS_EXEMPT_TEST);
	if (!x)
		return die("ep_dns_exempt_map_new");
	rc = ep_dns_exempt_socket(x, fd);
	if (rc) {
		errno = -rc;
		return die("ep_dns_exempt_socket");
	}
	if (bpf_map_lookup_elem(mfd, &fd, &v) || v.owner != EP_DNS_EXEMPT_TEST)
		return die("reading the exemption back");
	ep_dns_exempt_map_free(x);
	close(mfd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		goto usage;
	if (!strcmp(argv[1], "attach"))
		return cmd_attach(argc, argv);
	if (!strcmp(argv[1], "config"))
		return cmd_config(argc, argv);
	if (!strcmp(argv[1], "upstream"))
		return cmd_upstream(argc, argv);
	if (!strcmp(argv[1], "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(argv[1], "exempt"))
		return cmd_exempt(argc, argv);
	if (!strcmp(argv[1], "cookie")) {
		uint64_t c;

		if (netns_cookie(&c))
			return die("SO_NETNS_COOKIE");
		printf("%llu\n", (unsigned long long)c);
		return 0;
	}
usage:
	fprintf(stderr, "usage: ep_sock_dns_attach attach|config|upstream|stats|cookie|exempt ... "
			"(see the comment at the top of tests/tools/ep_sock_dns_attach.c)\n");
	return 2;
}
