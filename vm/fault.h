/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/fault.h - the fault path (vm/fault.c).
 */
#ifndef RINGPAGER_VM_FAULT_H
#define RINGPAGER_VM_FAULT_H

#include "vm/objects.h"

/* Handles one MISSING or MINOR fault message: the address and whether it was a write.
 * deadline: 0 for a new fault; a parked fault retried (vm/reclaim.c) keeps its own. */
void vm_fault(struct vm *vm, struct vm_service *svc, uint64_t addr, bool write,
              uint64_t deadline);
/* What a fault served by the faulting thread itself came to (fault_mode=sigbus). */
enum vm_fault_outcome {
	VM_FAULT_NOT_MINE, /* no mapping of this engine holds the address */
	VM_FAULT_RETRY,    /* the page is mapped (or its load went to a custom store): retry */
	VM_FAULT_WAIT,     /* another load of the page is in flight: wait for load_gen */
	VM_FAULT_FAILED,   /* the page failed to load, or no memory: the access gets SIGBUS */
};
/* Maps the resident pages of idx's VM_FAULT_AROUND_BYTES block into m and marks them
 * referenced (fault-around). fh->lock held. */
void vm_fault_around(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx);
/* The same decision as vm_fault, taken on the faulting thread: the faulting page is read
 * on this thread (rpio_pread) and mapped before it returns; readahead windows go to the
 * service threads. No lock held on entry. */
enum vm_fault_outcome vm_fault_self(struct vm *vm, uint64_t addr, bool write);
/* wp_sync: serves a write-protect fault at addr. */
void vm_wp_fault(struct vm *vm, uint64_t addr);

#endif
