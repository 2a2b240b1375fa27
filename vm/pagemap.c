/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/pagemap.c - the radix table of page slots (contract in vm/pagemap.h).
 *
 * Why 64-way: a leaf of 64 slots is 512 bytes, so a dense run costs 8 bytes a page and
 * the height grows by one level per factor of 64: a 64 GiB store of 4 KiB pages (2^24
 * pages) has a root node, two levels of nodes and the leaves.
 *
 * Small leaves. Scattered pages would still cost a 512-byte leaf each: rp_pinv of 32,768
 * random pages of a 4 GiB file (3% of it) touches 14,000 of its 16,384 leaves, 2.3 pages
 * apiece, and measured 234 bytes of metadata per resident page. So a leaf starts small:
 * up to PM_SMALL_MAX slots held as sorted (index, word) pairs, 32 to 128 bytes, grown by
 * doubling and turned into a full leaf when one more page arrives. A lookup in a small
 * leaf compares at most PM_SMALL_MAX one-byte keys. A full leaf stays full until it is
 * empty: a leaf that was dense is likely to be again, and converting back and forth on
 * the boundary would cost more than the bytes it saves. A pointer to a small leaf has its
 * low bit set (the arena aligns every allocation to 16 bytes).
 */
#include "vm/pagemap.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define PM_SMALL_MAX 14 /* slots of the largest small leaf: 16 + 14 * 8 = 128 bytes */

struct pm_node {
	void *child[PM_FANOUT];
};

struct pm_leaf {
	uint64_t slot[PM_FANOUT];
};

struct pm_small {
	uint8_t n, cap;            /* pairs held, and room */
	uint8_t key[PM_SMALL_MAX]; /* slot numbers within the leaf, ascending */
	uint64_t val[];            /* their words, none zero */
};

static bool is_small(const void *leaf)
{
	return ((uintptr_t)leaf & 1) != 0;
}

static struct pm_small *small_of(const void *leaf)
{
	return (struct pm_small *)((uintptr_t)leaf & ~(uintptr_t)1);
}

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

int pagemap_resize(struct vm_pagemap *pm, uint64_t npages)
{
	/* More pages than the height reaches: the root goes one level down, as child 0 of a
	 * new root (the indexes of the pages it holds do not change). */
	while (pm->height < 10 && (npages - 1) >> pm_shift(pm->height + 1)) {
		if (pm->root) {
			struct pm_node *n = ram_meta_alloc(pm->pool, sizeof(*n));

			if (!n)
				return -ENOMEM;
			n->child[0] = pm->root;
			pm->root = n;
			pm->nodes++;
		}
		pm->height++;
	}
	pm->npages = npages;
	return 0;
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
	ram_meta_free(pm->pool, is_small(n) ? (void *)small_of(n) : n);
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
	if (!n)
		return 0;
	const unsigned k = idx & (PM_FANOUT - 1);

	if (is_small(n)) {
		const struct pm_small *sl = small_of(n);

		for (unsigned i = 0; i < sl->n && sl->key[i] <= k; i++)
			if (sl->key[i] == k)
				return sl->val[i];
		return 0;
	}
	return ((struct pm_leaf *)n)->slot[k];
}

static struct pm_small *small_alloc(struct vm_pagemap *pm, unsigned cap)
{
	struct pm_small *sl = ram_meta_alloc(pm->pool, sizeof(*sl) + cap * sizeof(uint64_t));

	if (sl)
		sl->cap = (uint8_t)cap;
	return sl;
}

/* Stores w (not 0) in slot k of the small leaf at *pp: in place, in a larger small leaf,
 * or in a full leaf that replaces it. */
static int small_put(struct vm_pagemap *pm, void **pp, unsigned k, uint64_t w)
{
	struct pm_small *sl = small_of(*pp);
	unsigned i = 0;

	while (i < sl->n && sl->key[i] < k)
		i++;
	if (i < sl->n && sl->key[i] == k) {
		sl->val[i] = w;
		return 0;
	}
	if (sl->n == sl->cap && sl->cap == PM_SMALL_MAX) { /* full: a leaf of 64 slots */
		struct pm_leaf *leaf = ram_meta_alloc(pm->pool, sizeof(*leaf));

		if (!leaf)
			return -ENOMEM;
		for (unsigned j = 0; j < sl->n; j++)
			leaf->slot[sl->key[j]] = sl->val[j];
		leaf->slot[k] = w;
		ram_meta_free(pm->pool, sl);
		*pp = leaf;
		return 0;
	}
	if (sl->n == sl->cap) {
		unsigned cap = sl->cap * 2 < PM_SMALL_MAX ? sl->cap * 2u : PM_SMALL_MAX;
		struct pm_small *big = small_alloc(pm, cap);

		if (!big)
			return -ENOMEM;
		big->n = sl->n;
		memcpy(big->key, sl->key, sl->n);
		memcpy(big->val, sl->val, sl->n * sizeof(uint64_t));
		ram_meta_free(pm->pool, sl);
		sl = big;
		*pp = (void *)((uintptr_t)sl | 1);
	}
	memmove(&sl->key[i + 1], &sl->key[i], sl->n - i);
	memmove(&sl->val[i + 1], &sl->val[i], (sl->n - i) * sizeof(uint64_t));
	sl->key[i] = (uint8_t)k;
	sl->val[i] = w;
	sl->n++;
	return 0;
}

/* Clears slot k of the leaf at leaf_p. Returns true when the leaf is left empty. */
static bool leaf_clear(void *leaf_p, unsigned k)
{
	if (!is_small(leaf_p)) {
		struct pm_leaf *leaf = leaf_p;

		leaf->slot[k] = 0;
		for (unsigned i = 0; i < PM_FANOUT; i++)
			if (leaf->slot[i])
				return false;
		return true;
	}
	struct pm_small *sl = small_of(leaf_p);

	for (unsigned i = 0; i < sl->n; i++)
		if (sl->key[i] == k) {
			memmove(&sl->key[i], &sl->key[i + 1], sl->n - i - 1u);
			memmove(&sl->val[i], &sl->val[i + 1], (sl->n - i - 1u) * sizeof(uint64_t));
			sl->n--;
			break;
		}
	return sl->n == 0;
}

static bool node_empty(const struct pm_node *node)
{
	for (unsigned i = 0; i < PM_FANOUT; i++)
		if (node->child[i])
			return false;
	return true;
}

int pagemap_set(struct vm_pagemap *pm, uint64_t idx, uint64_t w)
{
	void **path[12]; /* the parent pointer of each level, root first */
	void **pp = &pm->root;
	unsigned level = pm->height;
	const unsigned k = idx & (PM_FANOUT - 1);

	assert(idx < pm->npages);
	for (;;) {
		path[pm->height - level] = pp;
		if (!*pp) {
			if (!w)
				return 0; /* already absent */
			if (level == 0) { /* a new leaf: small, with this one slot */
				struct pm_small *sl = small_alloc(pm, 2);

				if (!sl)
					return -ENOMEM;
				sl->n = 1;
				sl->key[0] = (uint8_t)k;
				sl->val[0] = w;
				*pp = (void *)((uintptr_t)sl | 1);
				pm->nodes++;
				return 0;
			}
			*pp = ram_meta_alloc(pm->pool, sizeof(struct pm_node));
			if (!*pp)
				return -ENOMEM;
			pm->nodes++;
		}
		if (level == 0)
			break;
		pp = &((struct pm_node *)*pp)->child[(idx >> pm_shift(level)) & (PM_FANOUT - 1)];
		level--;
	}
	if (w) {
		if (is_small(*pp))
			return small_put(pm, pp, k, w);
		((struct pm_leaf *)*pp)->slot[k] = w;
		return 0;
	}
	if (!leaf_clear(*pp, k))
		return 0;
	/* Free what the cleared slot left empty, from the leaf up. */
	ram_meta_free(pm->pool, is_small(*pp) ? (void *)small_of(*pp) : *pp);
	pm->nodes--;
	*pp = NULL;
	for (int l = (int)pm->height - 1; l >= 0; l--) {
		void **p = path[l];

		if (!node_empty(*p))
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

	if (level == 0 && is_small(n)) {
		const struct pm_small *sl = small_of(n);

		for (unsigned j = 0; j < sl->n; j++)
			if (sl->key[j] >= i) {
				*idx = base + sl->key[j];
				*w = sl->val[j];
				return true;
			}
		return false;
	}
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
