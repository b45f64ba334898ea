/*
 * UDP sockets on 127.0.0.1 for the tests that play a DNS server's clients
 * and upstream resolvers themselves (test_cache_fallback*.c).
 */
#ifndef EP_TEST_UDP_LO_H
#define EP_TEST_UDP_LO_H

#include <netinet/in.h>
#include <stdint.h>

/* 127.0.0.1:PORT */
struct sockaddr_in udp_lo_addr(uint16_t port);

/* A UDP socket bound to 127.0.0.1:PORT, or -1. */
int udp_lo_bound(uint16_t port);

#endif
