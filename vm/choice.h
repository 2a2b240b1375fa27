/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/choice.h - the fastest of a few ways to do one thing, chosen by measuring each
 * (vm/choice.c says how): poll or sleep for a fault's read (vm/spin.c), which service
 * thread runs a writeout (vm/service.c).
 */
#ifndef RP_VM_CHOICE_H
#define RP_VM_CHOICE_H

#include <stdatomic.h>
#include <stdint.h>

#define VM_CHOICE_MAX 64 /* ways at most */

struct vm_choice {
	unsigned n;                        /* ways, 1..VM_CHOICE_MAX */
	_Atomic uint64_t turns;            /* picks made: which one tries another way */
	_Atomic uint64_t avg[VM_CHOICE_MAX]; /* a way's smoothed latency, ns; 0: none yet */
};

void vm_choice_init(struct vm_choice *c, unsigned n);
/* The way the next turn takes, 0..n-1. */
unsigned vm_choice_pick(struct vm_choice *c);
/* A turn that took `way` took ns. */
void vm_choice_record(struct vm_choice *c, unsigned way, uint64_t ns);

#endif
