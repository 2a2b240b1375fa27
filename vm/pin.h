/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/pin.h - pins, unpins and WILLNEED (vm/pin.c).
 */
#ifndef RINGPAGER_VM_PIN_H
#define RINGPAGER_VM_PIN_H

#include "vm/objects.h"

/* Releases every pin m holds. fh->lock held. */
void vm_unpin_all(struct rp_mapping *m);

#endif
