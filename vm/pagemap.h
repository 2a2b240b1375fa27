/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/pagemap.h - a handle's table of page words (vm/pagemap.c).
 *
 * A radix table keyed by page index: nodes of 64 children, leaves of 64 slots, height
 * chosen from the handle's page count. Lookup walks at most ceil(log64(npages)) nodes;
 * adjacent pages share a leaf (512 bytes for 64 pages, 8 bytes a page when dense; a leaf
 * holding at most 14 pages is a small one of 32 to 128 bytes); a leaf is freed when its
 * last slot returns to 0, and a node when its last child goes, so the table's size
 * follows what is resident. Iteration is in page order. Not thread-safe: the handle's
 * lock protects it. Nodes come from the pool's metadata arena.
 */
#ifndef RINGPAGER_VM_PAGEMAP_H
#define RINGPAGER_VM_PAGEMAP_H

#include "ram/ram.h"

#include <stdbool.h>
#include <stdint.h>

#define PM_BITS   6
#define PM_FANOUT (1u << PM_BITS)

struct vm_pagemap {
	struct ram_pool *pool;
	uint64_t npages;
	unsigned height; /* levels of nodes above the leaves: 0 means the root is a leaf */
	void *root;
	uint64_t nodes; /* nodes and leaves allocated */
};

void pagemap_init(struct vm_pagemap *pm, struct ram_pool *pool, uint64_t npages);
/* Sets the number of pages: growing may add levels above the root (-ENOMEM when the
 * arena cannot); shrinking keeps them (the slots past the new end must be 0). */
int pagemap_resize(struct vm_pagemap *pm, uint64_t npages);
/* Frees every node (the slots' meaning is the caller's business). */
void pagemap_fini(struct vm_pagemap *pm);
/* The slot of page idx, 0 when absent. */
uint64_t pagemap_get(const struct vm_pagemap *pm, uint64_t idx);
/* Stores w in the slot of page idx, creating the path (-ENOMEM when the arena cannot).
 * Storing 0 frees leaves and nodes left empty. */
int pagemap_set(struct vm_pagemap *pm, uint64_t idx, uint64_t w);
/* The first non-zero slot at index >= from: true with *idx and *w set, or false. */
bool pagemap_next(const struct vm_pagemap *pm, uint64_t from, uint64_t *idx, uint64_t *w);

#endif
