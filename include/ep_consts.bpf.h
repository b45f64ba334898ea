/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Constants every edgeplane BPF program may need, defined once.
 * vmlinux.h carries the kernel's types but not its uapi macros, so the
 * protocol numbers, TCP flag bits and TC verdicts the programs test against
 * live here: one copy per program would let one drift from the others
 * unnoticed. BPF only: user space takes these from the system headers.
 */
#ifndef EP_CONSTS_BPF_H
#define EP_CONSTS_BPF_H

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_ALEN 6

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define NEXTHDR_MOBILITY 135
#define NEXTHDR_HIP 139
#define NEXTHDR_SHIM6 140
#define NEXTHDR_EXP1 253
#define NEXTHDR_EXP2 254

#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
#define ICMPV6_PARAMPROB 4

#define IPPROTO_ICMPV6 58

#define AF_INET 2
#define AF_INET6 10

/* TCP flag bits as in the 14th byte of the header (tcphdr's bitfields are
 * awkward to test several at once). */
#define EP_TCP_FIN 0x01
#define EP_TCP_SYN 0x02
#define EP_TCP_RST 0x04
#define EP_TCP_ACK 0x10

/* TC verdicts (uapi linux/pkt_cls.h). UNSPEC hands the packet to the next
 * filter on the hook: DNS observation runs before reverse NAT and must not
 * hide packets from it (see the top of tc/tc_dns.bpf.c). */
#define TC_ACT_UNSPEC (-1)
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

#endif
