/*
 * A TC (clsact) filter slot: a fixed handle/priority pair on one hook of
 * one interface, recognised as ours by its program's name prefix. The
 * datapath's filters (tc_attach.c) and the canary's mirror filter use the
 * same two operations, so "is this filter ours?" has one answer.
 */
#ifndef EP_TC_SLOT_H
#define EP_TC_SLOT_H

#include <bpf/libbpf.h>
#include <stdbool.h>

struct ep_tc_slot {
	__u32 handle, prio;
	const char *prefix, *what;
};

/* Creates the clsact qdisc if there is none (anybody's is fine) and puts
 * prog_fd in the slot, replacing what is there in one step. 0 or -errno. */
int ep_tc_slot_attach(int ifindex, enum bpf_tc_attach_point where, const struct ep_tc_slot *slot,
		      int prog_fd);
/* Is one of our programs (by name prefix) attached at this hook and slot? */
bool ep_tc_slot_is_ours(int ifindex, enum bpf_tc_attach_point where,
			const struct ep_tc_slot *slot);

#endif
