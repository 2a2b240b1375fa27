/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/fileh.h - handles, mappings (vm/fileh.c) and the address table (vm/addr.c).
 */
#ifndef RINGPAGER_VM_FILEH_H
#define RINGPAGER_VM_FILEH_H

#include "vm/objects.h"

/* The mapping that holds addr, or NULL. vm->maps_lock held (read). */
struct rp_mapping *vm_map_lookup(struct vm *vm, uint64_t addr);
/* For a fault at addr: its mapping, returned with vm->maps_lock held for reading (the
 * caller unlocks), and *page its page index in the handle; NULL, lock not held, when the
 * mapping went away since the fault was raised. */
struct rp_mapping *vm_fault_mapping(struct vm *vm, uint64_t addr, uint64_t *page);
/* Adds m to the address table (-ENOMEM), removes it. vm->maps_lock held for writing. */
int vm_addr_insert(struct vm *vm, struct rp_mapping *m);
void vm_addr_remove(struct vm *vm, struct rp_mapping *m);

/* Frees the store (no handle may be open). vm/store.c. */
void vm_store_free(struct rp_store *st);
/* Closes the descriptors rp_store_open_fd kept open (vm_close, the stores gone). */
void vm_store_close_kept(struct vm *vm);

#endif
