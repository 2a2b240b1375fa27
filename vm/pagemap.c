/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/pagemap.c - the radix table of page slots (contract in vm/vm.h).
 *
 * Why 64-way: a leaf of 64 slots is 512 bytes, so a lone resident page among sparse ones
 * costs at most 512 bytes of leaf plus its share of nodes, while a dense run costs 8 bytes
 * a page; 512-way leaves would cost 4 KiB per lone page, as much as the page itself. The
 * height grows by one level per factor of 64: a 64 GiB store of 4 KiB pages (2^24 pages)
 * has a root node, two levels of nodes and the leaves.
 */
#include "vm/vm.h"

#include <errno.h>
#include <string.h>

struct pm_node {
	void *child[PM_FANOUT];
};

struct pm_leaf {
	uint64_t slot[PM_FANOUT];
};

static unsigned pm_shift(unsigned level)
{
	return PM_BITS * level; /* level 0: the leaf's own index bits */
}

void pagemap_init(struct vm_pagemap *pm, struct ram_pool *pool, uint64_t npages)
{
	memset(pm, 0, sizeof(*pm));
	pm->pool = pool;
	pm->npages = npages;
	/* Levels of nodes needed above the leaves so that 64^(height+1) >= npages. */
	while (pm->height < 10 && (npages - 1) >> pm_shift(pm->height + 1))
		pm->height++;
}

static void pm_free(struct vm_pagemap *pm, void *n, unsigned level)
{
	if (!n)
		return;
	if (level > 0) {
		struct pm_node *node = n;

		for (unsigned i = 0; i < PM_FANOUT; i++)
			pm_free(pm, node->child[i], level - 1);
	}
	ram_meta_free(pm->pool, n);
	pm->nodes--;
}

void pagemap_fini(struct vm_pagemap *pm)
{
	pm_free(pm, pm->root, pm->height);
	pm->root = NULL;
}

uint64_t pagemap_get(const struct vm_pagemap *pm, uint64_t idx)
{
	void *n = pm->root;

	for (unsigned level = pm->height; n && level > 0; level--)
		n = ((struct pm_node *)n)->child[(idx >> pm_shift(level)) & (PM_FANOUT - 1)];
	return n ? ((struct pm_leaf *)n)->slot[idx & (PM_FANOUT - 1)] : 0;
}

static bool pm_empty(void *const *p)
{
	for (unsigned i = 0; i < PM_FANOUT; i++)
		if (p[i])
			return false;
	return true;
}

int pagemap_set(struct vm_pagemap *pm, uint64_t idx, uint64_t w)
{
	void **path[12]; /* the parent pointer of each level, root first */
	void **pp = &pm->root;
	unsigned level = pm->height;

	assert(idx < pm->npages);
	for (;;) {
		path[pm->height - level] = pp;
		if (!*pp) {
			if (!w)
				return 0; /* already absent */
			*pp = ram_meta_alloc(pm->pool, level ? sizeof(struct pm_node)
			                                     : sizeof(struct pm_leaf));
			if (!*pp)
				return -ENOMEM;
			pm->nodes++;
		}
		if (level == 0)
			break;
		pp = &((struct pm_node *)*pp)->child[(idx >> pm_shift(level)) & (PM_FANOUT - 1)];
		level--;
	}
	struct pm_leaf *leaf = *pp;

	leaf->slot[idx & (PM_FANOUT - 1)] = w;
	if (w)
		return 0;
	/* Free what the cleared slot left empty, from the leaf up. */
	for (int l = (int)pm->height; l >= 0; l--) {
		void **p = path[l];
		/* uint64_t slots and child pointers are both 8 bytes; zero means empty */
		if (!pm_empty((void *const *)*p))
			break;
		ram_meta_free(pm->pool, *p);
		pm->nodes--;
		*p = NULL;
	}
	return 0;
}

static bool pm_next(const struct vm_pagemap *pm, void *n, unsigned level, uint64_t base,
                    uint64_t from, uint64_t *idx, uint64_t *w)
{
	unsigned shift = pm_shift(level);
	unsigned i = from > base ? (unsigned)((from - base) >> shift) : 0;

	for (; i < PM_FANOUT; i++) {
		uint64_t b = base + ((uint64_t)i << shift);

		if (level == 0) {
			uint64_t s = ((struct pm_leaf *)n)->slot[i];

			if (s && b >= from) {
				*idx = b;
				*w = s;
				return true;
			}
		} else {
			void *c = ((struct pm_node *)n)->child[i];

			if (c && pm_next(pm, c, level - 1, b, from, idx, w))
				return true;
		}
	}
	return false;
}

bool pagemap_next(const struct vm_pagemap *pm, uint64_t from, uint64_t *idx, uint64_t *w)
{
	if (!pm->root || from >= pm->npages)
		return false;
	return pm_next(pm, pm->root, pm->height, 0, from, idx, w);
}
