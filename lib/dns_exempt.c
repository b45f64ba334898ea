#include "dns_exempt.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "edgeplane_abi.h"

struct ep_dns_exempt_map *ep_dns_exempt_map_new(int map_fd, uint32_t owner)
{
	struct ep_dns_exempt_map *x;

	if (map_fd < 0) {
		errno = EBADF;
		return NULL;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->map_fd = fcntl(map_fd, F_DUPFD_CLOEXEC, 3);
	if (x->map_fd < 0) {
		int e = errno;

		free(x);
		errno = e;
		return NULL;
	}
	x->owner = owner;
	return x;
}

void ep_dns_exempt_map_free(struct ep_dns_exempt_map *x)
{
	if (!x)
		return;
	close(x->map_fd);
	free(x);
}

int ep_dns_exempt_socket(const struct ep_dns_exempt_map *x, int fd)
{
	struct ep_dns_exempt v = {.owner = x ? x->owner : 0};

	if (!x)
		return 0;
	/* The key of a socket-storage map is, from user space, an fd of the
	 * socket; the storage lives on the socket itself. */
	return bpf_map_update_elem(x->map_fd, &fd, &v, BPF_ANY) ? -errno : 0;
}
