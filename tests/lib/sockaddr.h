/* Socket addresses for the traffic tools. */
#ifndef EP_TEST_SOCKADDR_H
#define EP_TEST_SOCKADDR_H

#include <sys/socket.h>

/* An IPv4 or IPv6 address, bare or in brackets, into *ss (port 0).
 * Returns 0 or -1. */
int sockaddr_parse_ip(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
