/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/sigbus.h - fault_mode=sigbus: the process's SIGBUS handler (vm/sigbus.c).
 */
#ifndef RINGPAGER_VM_SIGBUS_H
#define RINGPAGER_VM_SIGBUS_H

#include "vm/objects.h"

/* Adds vm to the engines the handler serves, installing the handler with the first. */
int vm_sigbus_add(struct vm *vm);
/* Removes vm; the handler stays installed while the process's handler is still ours. */
void vm_sigbus_remove(struct vm *vm);

#endif
