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
/* The same for pages [first, end) of the handle alone, in every mapping: each mapping's
 * walk costs a call, and the mapped pages it passes. fh->lock held. */
void vm_dirty_collect_range(struct rp_fileh *fh, uint64_t first, uint64_t end);
/* Pages that a whole collection walks: those of the mappings tracked by wp_async (0
 * under other mechanisms). fh->lock held. */
uint64_t vm_dirty_tracked_pages(const struct rp_fileh *fh);

#endif
