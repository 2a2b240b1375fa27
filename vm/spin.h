/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/spin.h - whether the thread that waits for a fault's own read polls for it or
 * sleeps (fault_spin). vm/spin.c says how auto decides.
 */
#ifndef RP_VM_SPIN_H
#define RP_VM_SPIN_H

#include "vm/choice.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum vm_spin_mode {
	VM_SPIN_AUTO = 0,   /* measure both ways, poll while polling is faster */
	VM_SPIN_ALWAYS = 1, /* poll for up to fault_spin_us, then sleep */
	VM_SPIN_NEVER = 2,  /* sleep */
};

struct vm_spin {
	enum vm_spin_mode mode;
	struct vm_choice ways;     /* auto: way 0 sleeps, way 1 polls */
	_Atomic uint64_t count[2]; /* reads measured each way */
};

const char *vm_spin_name(enum vm_spin_mode m);
void vm_spin_init(struct vm_spin *s, enum vm_spin_mode mode);
/* Whether the next fault read polls. */
bool vm_spin_pick(struct vm_spin *s);
/* A fault read, from its issue to its completion as its waiter saw it, took ns. */
void vm_spin_record(struct vm_spin *s, bool polled, uint64_t ns);

#endif
