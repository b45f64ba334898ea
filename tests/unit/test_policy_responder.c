/*
 * The policy responder's TCP side (cache/policy_responder.c): 64 slots, an
 * idle timeout and eviction of the quietest slot when all are taken, so that
 * idle connections cannot lock dnsmasq's TCP queries out. Runs the real
 * server thread in a network namespace of its own (needs root).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dns_name.h"
#include "own_netns.h"
#include "policy_responder.h"
#include "tap.h"

#define PORT 299
#define IDLE_MS 1500
#define N_IDLE 70

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int tcp_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* A query for NAME/AAAA with the RFC 7766 length prefix, or 0. */
static size_t tcp_query(uint8_t *q, size_t cap, uint16_t id, const char *name)
{
	ldns_pkt *p = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;

	if (ldns_pkt_query_new_frm_str(&p, name, LDNS_RR_TYPE_AAAA, LDNS_RR_CLASS_IN, LDNS_RD) !=
	    LDNS_STATUS_OK)
		return 0;
	ldns_pkt_set_id(p, id);
	if (ldns_pkt2wire(&wire, p, &len) != LDNS_STATUS_OK || len + 2 > cap)
		len = 0;
	if (len) {
		q[0] = (uint8_t)(len >> 8);
		q[1] = (uint8_t)len;
		memcpy(q + 2, wire, len);
		len += 2;
	}
	free(wire);
	ldns_pkt_free(p);
	return len;
}

/* Sends a query on fd and waits up to timeout_ms for the framed reply:
 * returns its rcode, or -1. */
static int ask(int fd, uint16_t id, int timeout_ms)
{
	uint8_t q[300], r[600];
	size_t n = tcp_query(q, sizeof(q), id, "a.example"), got = 0;
	double end = now_s() + timeout_ms / 1000.0;

	if (!n || send(fd, q, n, MSG_NOSIGNAL) != (ssize_t)n)
		return -1;
	while (now_s() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, 50) <= 0)
			continue;
		k = recv(fd, r + got, sizeof(r) - got, 0);
		if (k <= 0)
			return -1;
		got += (size_t)k;
		if (got >= 2 && got >= 2 + ((size_t)r[0] << 8 | r[1]) && got >= 14)
			return ((r[2] << 8 | r[3]) == id) ? (r[5] & 0x0f) : -1;
	}
	return -1;
}

/* The server closed fd: EOF or a reset. */
static bool closed_by_server(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, 0) <= 0)
		return false;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

static int count_closed(const int *fds, int n)
{
	int closed = 0;

	for (int i = 0; i < n; i++)
		if (fds[i] >= 0 && closed_by_server(fds[i]))
			closed++;
	return closed;
}

int main(void)
{
	struct ep_policy_responder *r = NULL;
	struct ep_policy_stats st;
	struct ep_nameset names;
	int idle[N_IDLE], busy, rc, closed;
	char err[256];
	double t0, t;

	rc = ep_test_own_netns();
	if (rc) {
		printf("1..0 # SKIP needs a network namespace of its own (root): %s\n", strerror(-rc));
		return 0;
	}
	if (ep_policy_start(&r, "127.0.0.1", PORT, 30, err, sizeof(err))) {
		tap_ok(0, "policy responder starts: %s", err);
		return tap_done();
	}
	ep_policy_set_tcp_idle_ms(r, IDLE_MS);
	ep_nameset_init(&names);
	ep_nameset_add(&names, "a.example");
	ep_policy_set_names(r, &names);

	/* 70 connections that say nothing: more than the 64 slots. */
	for (int i = 0; i < N_IDLE; i++) {
		idle[i] = tcp_connect();
		usleep(2000); /* accepted one by one, so "oldest" is well defined */
	}
	usleep(100000);
	{
		int ok = 0;

		for (int i = 0; i < N_IDLE; i++)
			ok += idle[i] >= 0;
		tap_ok(ok == N_IDLE, "%d idle TCP connections opened (%d)", N_IDLE, ok);
	}
	closed = count_closed(idle, N_IDLE);
	tap_ok(closed == N_IDLE - 64, "all 64 slots taken: the %d oldest were evicted (%d closed)",
	       N_IDLE - 64, closed);
	tap_ok(closed_by_server(idle[0]) && !closed_by_server(idle[N_IDLE - 1]),
	       "... the oldest went, the newest stayed");

	/* A real query now still gets a slot and an answer, at once. */
	t0 = now_s();
	busy = tcp_connect();
	rc = busy >= 0 ? ask(busy, 0x1234, 1000) : -1;
	t = now_s() - t0;
	tap_ok(rc == 0, "a TCP query after 64+ idle connections is answered (NOERROR/NODATA, rcode %d)", rc);
	tap_ok(rc == 0 && t < 0.5, "... within 0.5 s (%.3f s)", t);
	ep_policy_get_stats(r, &st);
	tap_ok(st.tcp_evicted == N_IDLE - 64 + 1, "evictions counted (%llu)",
	       (unsigned long long)st.tcp_evicted);

	/* Idle ones go after the timeout; the one that keeps asking stays. */
	for (int i = 0; i < 5; i++) {
		usleep(500000);
		if (ask(busy, (uint16_t)(0x2000 + i), 1000) != 0)
			break;
	}
	t = now_s() - t0;
	closed = count_closed(idle, N_IDLE);
	tap_ok(closed == N_IDLE, "after %.1f s every idle connection was closed (%d of %d; timeout %d ms)",
	       t, closed, N_IDLE, IDLE_MS);
	tap_ok(ask(busy, 0x3000, 1000) == 0,
	       "a connection that kept asking every 0.5 s outlived the idle timeout and is still answered");
	ep_policy_get_stats(r, &st);
	tap_ok(st.tcp_idle_closed >= 63, "idle closes counted (%llu)", (unsigned long long)st.tcp_idle_closed);
	usleep((IDLE_MS + 700) * 1000);
	tap_ok(closed_by_server(busy), "once it stops asking, it is closed too");

	for (int i = 0; i < N_IDLE; i++)
		if (idle[i] >= 0)
			close(idle[i]);
	if (busy >= 0)
		close(busy);
	ep_policy_stop(r);
	return tap_done();
}
