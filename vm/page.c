/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/page.c - what every page that enters or leaves a state other than its own goes
 * through: the dirty counts (vm_dirty_add) and releasing the RAM of pages in runs
 * (vm_release_page, vm_release_flush). The page word itself is vm/page.h.
 */
#include "vm/page.h"
#include "vm/load.h"
#include "vm/objects.h"
#include "vm/reclaim.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
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

/* The state machine of vm/page.h: allowed[from][to]. A word may also change within its
 * state (pins, the marker, the reference and read-ahead bits) where from == to is set. */
static const bool allowed[PG_POISONED + 1][PG_POISONED + 1] = {
    /*              EMPTY  LOADING LOADED DIRTY  WRITING POISONED */
    [PG_EMPTY]    = {0,    1,      0,     0,     0,      0},
    [PG_LOADING]  = {1,    1,      1,     1,     0,      1},
    [PG_LOADED]   = {1,    0,      1,     1,     0,      0},
    [PG_DIRTY]    = {1,    0,      1,     1,     1,      0},
    [PG_WRITING]  = {0,    0,      1,     1,     1,      0},
    [PG_POISONED] = {1,    0,      0,     0,     0,      0},
};

bool vm_page_transition_ok(uint64_t from, uint64_t to)
{
	return allowed[pg_state(from)][pg_state(to)];
}

#ifndef NDEBUG
/* Whether this thread holds m: glibc records the owner's thread id in every mutex it
 * locks. Elsewhere, true (the check is only skipped). */
static bool lock_held(pthread_mutex_t *m)
{
#ifdef __GLIBC__
	static _Thread_local pid_t tid;

	if (!tid)
		tid = gettid();
	return m->__data.__owner == tid;
#else
	(void)m;
	return true;
#endif
}
#endif

int vm_page_set(struct rp_fileh *fh, uint64_t idx, uint64_t w)
{
	const uint64_t old = pagemap_get(&fh->pm, idx);

	vm_page_check(w);
#ifndef NDEBUG
	assert(lock_held(&fh->lock));
	assert(vm_page_transition_ok(old, w));
#endif
	int err = pagemap_set(&fh->pm, idx, w);

	/* The dirty index follows: writeout walks the dirty pages, not every resident one.
	 * Should it miss one for want of memory, it is given up for a walk of the whole
	 * pagemap (vm_next_dirty). */
	if (!err && pg_dirty(old) != pg_dirty(w) && !fh->dirty_lost &&
	    pagemap_set(&fh->dirty, idx, pg_dirty(w) ? 1 : 0) < 0)
		fh->dirty_lost = true;
	return err;
}

bool vm_next_dirty(const struct rp_fileh *fh, uint64_t from, uint64_t *idx, uint64_t *w)
{
	uint64_t one;

	if (fh->dirty_lost) {
		while (pagemap_next(&fh->pm, from, idx, w)) {
			if (pg_dirty(*w))
				return true;
			from = *idx + 1;
		}
		return false;
	}
	if (!pagemap_next(&fh->dirty, from, idx, &one))
		return false;
	*w = pagemap_get(&fh->pm, *idx);
	assert(pg_dirty(*w));
	return true;
}

void vm_page_referenced(struct rp_fileh *fh, uint64_t idx, uint64_t w)
{
	if (!(w & PG_REF)) {
		(void)vm_page_set(fh, idx, w | PG_REF);
		atomic_fetch_add_explicit(&fh->vm->ctr.ref_hits, 1, memory_order_relaxed);
	}
}

bool vm_dirty_mark(struct rp_fileh *fh, uint64_t idx)
{
	uint64_t w = pagemap_get(&fh->pm, idx);

	switch (pg_state(w)) {
	case PG_LOADED:
		(void)vm_page_set(fh, idx, pg_with_state(w, PG_DIRTY));
		vm_dirty_add(fh, 1);
		return true;
	case PG_WRITING:
		(void)vm_page_set(fh, idx, w | PG_REDIRTY);
		return true;
	case PG_DIRTY:
		return true;
	default:
		return false;
	}
}

int vm_dirty_mark_region(struct rp_fileh *fh, uint64_t first, uint64_t end, uint64_t cat,
                         void *arg)
{
	(void)cat;
	(void)arg;
	for (uint64_t p = first; p < end; p++) {
		const uint64_t w = pagemap_get(&fh->pm, p);

		if (pg_state(w) == PG_LOADING && pg_load(w)->copying)
			pg_load(w)->written = true;
		else
			(void)vm_dirty_mark(fh, p);
	}
	return 0;
}
