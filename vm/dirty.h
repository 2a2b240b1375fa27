/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/dirty.h - noticing writes (vm/dirty.c). fh->lock held where said.
 */
#ifndef RINGPAGER_VM_DIRTY_H
#define RINGPAGER_VM_DIRTY_H

#include "vm/objects.h"

/* wp_async: moves the pages written since the last collection in mapping `only` (NULL:
 * every mapping of fh) to DIRTY, protecting them again. Other mechanisms: nothing (their
 * states are current). fh->lock held. */
void vm_dirty_collect(struct rp_fileh *fh, struct rp_mapping *only);

#endif
