/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/page.c - what every page that enters or leaves a state other than its own goes
 * through: the dirty counts (vm_dirty_add) and releasing the RAM of pages in runs
 * (vm_release_page, vm_release_flush). The page word itself is vm/page.h.
 */
#include "vm/vm.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

void vm_release_page(struct rp_fileh *fh, struct vm_release *r, uint64_t idx)
{
	if (r->hi != idx) {
		vm_release_flush(fh, r);
		r->lo = idx;
	}
	r->hi = idx + 1;
}

void vm_release_flush(struct rp_fileh *fh, struct vm_release *r)
{
	if (r->hi > r->lo) {
		ram_release(fh->ram, r->lo * fh->vm->psz, (r->hi - r->lo) * fh->vm->psz);
		vm_reclaim_kick(fh->vm);
	}
	r->lo = r->hi = 0;
}

void vm_dirty_add(struct rp_fileh *fh, int64_t n)
{
	fh->ndirty = (uint64_t)((int64_t)fh->ndirty + n);
	uint64_t was = atomic_fetch_add_explicit(&fh->vm->ctr.dirty_pages, (uint64_t)n,
	                                         memory_order_relaxed);

	vm_reclaim_dirty(fh->vm, was + (uint64_t)n);
}
