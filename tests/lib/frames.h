/*
 * Packet crafting and checking for the BPF tests and benchmarks: Ethernet
 * (VLAN, QinQ), IPv4 (options, fragments) and IPv6 (extension headers), TCP,
 * UDP, ICMP and ICMP errors, all with correct checksums, and a parser that
 * verifies every checksum of a frame from scratch.
 *
 * Every TCP packet carries sequence number 0x01020304 and, with ACK set,
 * acknowledges 0x01020305: what a backend's SYN-ACK to that SYN would say.
 */
#ifndef EP_TEST_FRAMES_H
#define EP_TEST_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "csum.h"
#include "edgeplane_abi.h"

#define P_ICMP 1
#define P_TCP 6
#define P_UDP 17
#define P_ICMP6 58
#define TCP_SYN 0x02
#define TCP_ACK 0x10
#define TCP_FIN 0x01
#define TCP_RST 0x04
#define FRAME_MAX 2048

struct ipopt {
	uint8_t ttl;	    /* 0: 64 */
	uint16_t frag_off;  /* IPv4 flags + fragment offset field */
	size_t v4_optlen;   /* bytes of IPv4 options (multiple of 4) */
	const uint8_t *ext; /* IPv6 extension headers, already chained */
	size_t ext_len;
	uint8_t ext_first; /* IPv6 next header of the fixed header when ext_len > 0 */
	bool no_l4_csum;   /* leave the L4 checksum field as it is */
};

extern const uint8_t MAC_DST[6];
extern const uint8_t MAC_SRC[6];

/* A flow as the client sees it. */
struct flow {
	struct ep_ip client, vip;
	uint16_t cport, vport;
	uint8_t proto;
};

/* What a frame holds, with every checksum verified from scratch. */
struct parsed {
	bool ok;
	int nvlan;
	size_t l3off, l4off, l4len;
	int family;
	struct ep_ip src, dst;
	uint8_t proto, ttl;
	uint16_t sport, dport;
	bool ip_csum_ok; /* IPv4 header checksum (true for IPv6) */
	bool l4_csum_ok; /* full L4 checksum incl. pseudo header (ICMPv4: message only) */
	bool udp_nocsum; /* IPv4 UDP without checksum */
	bool icmp_err;
	struct ep_ip qsrc, qdst;
	uint8_t qproto;
	uint16_t qsport, qdport;
	bool q_ip_csum_ok;
};

int l4_csum_off(uint8_t proto);
void l4_csum_fill(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto, uint8_t *l4,
		  size_t len);
void ip4_recsum(uint8_t *ip);
void fill_payload(uint8_t *p, size_t n);
size_t mk_tcp(uint8_t *o, uint16_t sport, uint16_t dport, uint8_t flags, size_t payload);
size_t mk_udp(uint8_t *o, uint16_t sport, uint16_t dport, size_t payload);
size_t mk_icmp_echo(uint8_t *o, int family, size_t payload);
size_t mk_icmp_err(uint8_t *o, uint8_t type, uint8_t code, uint32_t word, const uint8_t *quoted,
		   size_t qlen);
size_t mk_ip(uint8_t *o, const struct ep_ip *src, const struct ep_ip *dst, uint8_t proto,
	     const uint8_t *l4, size_t l4len, const struct ipopt *opt);
size_t mk_eth(uint8_t *o, int nvlan, bool qinq, uint16_t ethertype, const uint8_t *l3,
	      size_t l3len);
uint16_t udp_zero_csum_word(const struct ep_ip *src, uint16_t sport, const struct ep_ip *dst,
			    uint16_t dport, size_t payload);
uint16_t ethertype_of(int family);
struct ep_ip IP(const char *s);
/* Static buffer: for messages. */
const char *ipstr(const struct ep_ip *ip);
bool ip_eq_raw(const struct ep_ip *a, const __u32 *addr, int family);
struct flow mkflow(const char *client, uint16_t cport, const char *vip, uint16_t vport,
		   uint8_t proto);
size_t pkt_between(uint8_t *frame, const struct ep_ip *src, uint16_t sport, const struct ep_ip *dst,
		   uint16_t dport, uint8_t proto, uint8_t tcp_flags, int nvlan, bool qinq,
		   size_t payload);
/* Untagged frames only: recompute the L4 checksum after an edit; set a TCP
 * packet's sequence number (e.g. ISN + 1 for a handshake's ACK). */
void l4_recsum_frame(uint8_t *frame, size_t n);
void tcp_set_seq(uint8_t *frame, size_t n, uint32_t seq);
/* Client ISN of every TCP packet pkt_between builds. */
#define FRAME_ISN 0x01020304u
/* The client's ACK completing f's handshake (untagged, seq = ISN + 1): the
 * packet that creates a TCP flow's conntrack entry. */
size_t flow_ack_pkt(uint8_t *frame, const struct flow *f);
size_t flow_pkt(uint8_t *frame, const struct flow *f, int nvlan, bool qinq, size_t payload);
struct ep_flow_key flow_key(const struct flow *f);
void parse_frame(const uint8_t *f, size_t len, struct parsed *p);
void mask_csums(uint8_t *f, size_t len);
bool same_but_csums(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
