/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/pagescan.c - PAGEMAP_SCAN (Linux 6.7): which pages of a mapping were written, and
 * write-protecting them again in the same walk (wp_async dirty tracking, vm/dirty.c;
 * the scans around reclaim's zap, vm/evict.c).
 */
#include "vm/uffd.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The categories reported, unless a caller needs fewer. */
#define ALL_CATS (PAGE_IS_WRITTEN | PAGE_IS_PRESENT | PAGE_IS_SWAPPED)

/* One PAGEMAP_SCAN call: pages in [start, end) whose categories, XORed with `inverted`,
 * hold every bit of `mask`, reported with the categories in `ret`; with wp,
 * write-protected in the same walk. */
static int pagemap_query(int pagemap_fd, uint64_t start, uint64_t end, bool wp,
                         uint64_t inverted, uint64_t mask, uint64_t ret,
                         struct page_region *vec, size_t n, uint64_t *walk_end)
{
	struct pm_scan_arg a = {
	    .size = sizeof(a),
	    .flags = wp ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC : 0,
	    .start = start,
	    .end = end,
	    .vec = (uintptr_t)vec,
	    .vec_len = n,
	    .category_inverted = inverted,
	    .category_mask = mask,
	    .return_mask = ret,
	};
	int r = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);

	if (r < 0)
		return -errno;
	*walk_end = a.walk_end;
	return r;
}

int vm_pagemap_scan(int pagemap_fd, uint64_t start, uint64_t end, struct page_region *vec,
                    size_t n, uint64_t *walk_end)
{
	/* present and written: a poison marker is neither write-protected nor a page */
	return pagemap_query(pagemap_fd, start, end, true, 0, PAGE_IS_WRITTEN | PAGE_IS_PRESENT,
	                     ALL_CATS, vec, n, walk_end);
}

int vm_pagemap_maybe_written(int pagemap_fd, uint64_t start, uint64_t end,
                             struct page_region *vec, size_t n, uint64_t *walk_end)
{
	/* Only WRITTEN asked and returned, nothing inverted: the kernel's short way (6.7's
	 * pagemap_scan_pmd_entry), about 1 ns a mapped page against 2-4 when each page's
	 * categories are worked out (docs/benchmarks.md, "A commit's collection"). A page
	 * not mapped there, or a poison marker, counts as written to it. */
	return pagemap_query(pagemap_fd, start, end, false, 0, PAGE_IS_WRITTEN, PAGE_IS_WRITTEN,
	                     vec, n, walk_end);
}

bool vm_pagemap_walk(struct vm *vm, struct rp_mapping *m, uint64_t start, uint64_t end, bool wp,
                     uint64_t inverted, uint64_t mask, vm_region_fn fn, void *arg)
{
	struct page_region vec[64];
	uint64_t base = (uintptr_t)m->addr, walk_end = 0;

	while (start < end) {
		int n = pagemap_query(vm->pagemap_fd, start, end, wp, inverted, mask, ALL_CATS, vec,
		                      sizeof(vec) / sizeof(vec[0]), &walk_end);

		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0)
			return false;
		for (int i = 0; i < n; i++)
			if (fn(m->fh, m->first + (vec[i].start - base) / vm->psz,
			       m->first + (vec[i].end - base) / vm->psz, vec[i].categories, arg))
				return false;
		if (walk_end <= start)
			break;
		start = walk_end;
	}
	return true;
}
