/* See udp_lo.h. */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include "udp_lo.h"

struct sockaddr_in udp_lo_addr(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	return sa;
}

int udp_lo_bound(uint16_t port)
{
	struct sockaddr_in sa = udp_lo_addr(port);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}
