/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/evict.c - CLOCK eviction in batches: which pages leave the pool, and how without
 * losing a write. Who calls it and when is in vm/reclaim.c; waiting when nothing can be
 * freed in vm/memwait.c.
 *
 * The reference bit. A database touches its hot pages through mappings, and a touch of a
 * mapped page is invisible to the engine: the hardware accessed bit lives in page tables
 * that userspace cannot read (/proc/self/pagemap has no accessed bit; PAGEMAP_SCAN has
 * no "accessed" category; idle-page tracking needs root and physical frame numbers). So
 * the reference is made observable the way the issue suggests: when the CLOCK hand finds
 * a page referenced, it clears the page's PG_REF bit and zaps the page's PTEs in every
 * user mapping (MADV_DONTNEED over runs); the page stays in the memfd, so the next touch
 * is a MINOR fault, which sets PG_REF again (vm_page_referenced) and maps the page. A
 * page whose bit is still clear when the hand comes round again was not touched for a
 * whole revolution: it is the victim. Loads set the bit (a new page gets one revolution),
 * and so does every other path that maps a page (minor faults, pins).
 *   Cost: a hot page pays one minor fault per revolution of the hand (a few us), and only
 * under memory pressure, since the hand moves only when pages must be freed. The
 * alternatives cost more: Wendelin's per-page mprotect splits the VMA (max_map_count),
 * and umap's FIFO ignores use altogether.
 *   A consequence used below: a LOADED page whose bit is clear has no PTE in any user
 * mapping (its PTEs were zapped when the bit was cleared, and every path that maps a page
 * sets the bit), so evicting it cannot race with a write through a mapping.
 *
 * Writes and the zap (wp_async). A write to a clean page of a writable mapping is
 * recorded only in its PTE (vm/dirty.c); zapping the PTE would forget it. So before the
 * zap, the window's range is scanned in each writable mapping (PAGEMAP_SCAN,
 * WP_MATCHING): written pages become DIRTY, and the clean present ones are remembered.
 * A write can still land between that scan and the zap. The kernel tells which: zapping
 * a write-protected PTE leaves a uffd-wp marker behind, zapping a written one leaves
 * nothing (checked on this kernel: vm/README.md). A second scan after the zap asks for
 * the markers; a remembered page without one was written in between and becomes DIRTY.
 * On a kernel that left no markers every such page would count as written: writes
 * wasted, nothing lost. (wp_sync needs none of this: a write to a clean page waits in
 * the kernel for the service, which takes the handle's lock that the sweep holds.)
 *
 * The sweep (vm_reclaim_pages). The hand is a position (handle, page index); it walks the
 * resident pages of each handle in index order (pagemap_next), handle after handle by
 * id, and wraps around. One window at a time, under that handle's lock: at most
 * RC_WINDOW resident pages; LOADED and unpinned pages are either zapped (bit set: cleared)
 * or evicted (bit clear); DIRTY pages are kept (dirty_policy=keep) or, with writeback,
 * aged like clean ones, and the cold ones are counted for writeback. Zaps and evictions
 * are coalesced into runs: for each run, one MADV_DONTNEED in each mapping that covers it
 * and, for evictions, one hole punch of the RAM handle (vm_release_page). A sweep stops
 * when it has freed what was asked, or after two revolutions (everything dirty or pinned).
 */
#include "vm/reclaim.h"
#include "vm/dirty.h"
#include "vm/uffd.h"
#include "vm/vm.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RC_WINDOW      512  /* resident pages looked at per hold of a handle's lock */

/* ---------------------------------------------------------------- one window */

/* Runs of page indexes, ascending and disjoint. */
struct rc_runs {
	uint64_t (*r)[2]; /* first, count */
	size_t n, cap;    /* cap 0: fixed storage of RC_WINDOW runs */
};

static int runs_add_n(struct rc_runs *rs, uint64_t first, uint64_t n)
{
	if (rs->n && rs->r[rs->n - 1][0] + rs->r[rs->n - 1][1] == first) {
		rs->r[rs->n - 1][1] += n;
		return 0;
	}
	if (rs->cap && rs->n == rs->cap) {
		uint64_t(*a)[2] = realloc(rs->r, 2 * rs->cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		rs->r = a;
		rs->cap *= 2;
	}
	rs->r[rs->n][0] = first;
	rs->r[rs->n][1] = n;
	rs->n++;
	return 0;
}

static bool runs_has(const struct rc_runs *rs, uint64_t idx)
{
	size_t lo = 0, hi = rs->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (rs->r[mid][0] + rs->r[mid][1] <= idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < rs->n && rs->r[lo][0] <= idx;
}

/* Scratch space of a sweep: the zaps of one window (pages of it, so at most RC_WINDOW
 * runs). */
struct rc_scratch {
	uint64_t zap[RC_WINDOW][2];
};

static bool tracked_async(const struct vm *vm, const struct rp_mapping *m)
{
	return m->track && vm->dirty == VM_DIRTY_WP_ASYNC;
}

/* The part of pages [lo, hi) that mapping m covers, as addresses [*a, *b); false when
 * none. */
static bool map_span(const struct vm *vm, const struct rp_mapping *m, uint64_t lo, uint64_t hi,
                     uint64_t *a, uint64_t *b)
{
	uint64_t len;

	if (!vm_map_overlap(m, lo, hi - lo, a, &len, vm->psz))
		return false;
	*b = *a + len;
	return true;
}

/* Before the zap: written pages become DIRTY; clean present ones are remembered. */
static int pre_region(struct rp_fileh *fh, uint64_t first, uint64_t end, uint64_t cat, void *arg)
{
	if (cat & PAGE_IS_WRITTEN)
		return vm_dirty_mark_region(fh, first, end, cat, NULL);
	return runs_add_n(arg, first, end - first);
}

struct post_arg {
	const struct rc_runs *present, *zapped;
};

/* After the zap, a region of empty PTEs (no page, no marker): a page in it that was
 * clean and present before, and was zapped, was written in between. */
static int post_region(struct rp_fileh *fh, uint64_t first, uint64_t end, uint64_t cat, void *arg)
{
	struct post_arg *pa = arg;

	(void)cat;
	for (size_t i = 0; i < pa->present->n; i++) {
		uint64_t l = pa->present->r[i][0], h = l + pa->present->r[i][1];

		l = l > first ? l : first;
		h = h < end ? h : end;
		for (uint64_t p = l; p < h; p++)
			if (runs_has(pa->zapped, p))
				(void)vm_dirty_mark(fh, p);
	}
	return 0;
}

static int cmp_run(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts runs and merges overlapping ones (runs of several mappings interleave). */
static void runs_normalize(struct rc_runs *rs)
{
	size_t k = 0;

	if (rs->n < 2)
		return;
	qsort(rs->r, rs->n, sizeof(rs->r[0]), cmp_run);
	for (size_t i = 1; i < rs->n; i++) {
		uint64_t end = rs->r[k][0] + rs->r[k][1], e2 = rs->r[i][0] + rs->r[i][1];

		if (rs->r[i][0] <= end) {
			if (e2 > end)
				rs->r[k][1] = e2 - rs->r[k][0];
		} else {
			k++;
			rs->r[k][0] = rs->r[i][0];
			rs->r[k][1] = rs->r[i][1];
		}
	}
	rs->n = k + 1;
}

/* The clean present pages of each writable mapping (wp_async), found before the zap. */
struct rc_present {
	struct rp_mapping *m;
	struct rc_runs runs;
	struct rc_present *next;
};

/* wp_async, before the zap: collects writes in [lo, hi) of every writable mapping and
 * remembers each one's clean present pages; *all gets their union. fh->lock held. A
 * mapping whose scan fails counts every resident page of the span as written. */
static struct rc_present *pre_scan(struct vm *vm, struct rp_fileh *fh, uint64_t lo, uint64_t hi,
                                   struct rc_runs *all)
{
	struct rc_present *head = NULL;
	uint64_t a, b, idx, w;

	for (struct rp_mapping *m = fh->maps; m; m = m->next) {
		if (!tracked_async(vm, m) || !map_span(vm, m, lo, hi, &a, &b))
			continue;
		struct rc_present *p = calloc(1, sizeof(*p));

		if (p)
			p->runs = (struct rc_runs){malloc(64 * sizeof(p->runs.r[0])), 0, 64};
		if (!p || !p->runs.r ||
		    !vm_pagemap_walk(vm, m, a, b, true, 0, PAGE_IS_PRESENT, pre_region, &p->runs)) {
			for (uint64_t i = lo; pagemap_next(&fh->pm, i, &idx, &w) && idx < hi; i = idx + 1)
				if (idx >= m->first && idx < m->first + m->npages)
					(void)vm_dirty_mark(fh, idx);
			if (p)
				free(p->runs.r);
			free(p);
			continue;
		}
		p->m = m;
		p->next = head;
		head = p;
		for (size_t i = 0; i < p->runs.n; i++)
			if (runs_add_n(all, p->runs.r[i][0], p->runs.r[i][1]) < 0)
				all->n = 0; /* only costs a bit set wrongly clear: see the caller */
	}
	runs_normalize(all);
	return head;
}

/* wp_async, after the zap: pages written between pre_scan and the zap become DIRTY, and
 * the lists are freed. fh->lock held. */
static void post_scan(struct vm *vm, struct rp_fileh *fh, struct rc_present *head,
                      const struct rc_runs *zapped, uint64_t lo, uint64_t hi)
{
	while (head) {
		struct rc_present *p = head;
		struct post_arg pa = {&p->runs, zapped};
		uint64_t a, b;

		head = p->next;
		if (p->runs.n && zapped->n && map_span(vm, p->m, lo, hi, &a, &b) &&
		    !vm_pagemap_walk(vm, p->m, a, b, false, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		                     PAGE_IS_PRESENT | PAGE_IS_SWAPPED, post_region, &pa))
			/* cannot tell: every remembered page that was zapped counts as written */
			for (size_t i = 0; i < p->runs.n; i++)
				for (uint64_t q = p->runs.r[i][0]; q < p->runs.r[i][0] + p->runs.r[i][1];
				     q++)
					if (runs_has(zapped, q))
						(void)vm_dirty_mark(fh, q);
		free(p->runs.r);
		free(p);
	}
}

/* The window from page `from`: the span [*lo, *hi) of the next RC_WINDOW resident pages
 * below `end`. False when there are none. fh->lock held. */
static bool rc_span(struct rp_fileh *fh, uint64_t from, uint64_t end, uint64_t *lo,
                    uint64_t *hi)
{
	uint64_t idx, w, seen = 0;

	for (uint64_t i = from; seen < RC_WINDOW && pagemap_next(&fh->pm, i, &idx, &w) && idx < end;
	     i = idx + 1) {
		if (!seen)
			*lo = idx;
		*hi = idx + 1;
		seen++;
	}
	return seen > 0;
}

/* Unmaps the runs of `zap` from every mapping of fh: one MADV_DONTNEED per run and
 * mapping. fh->lock held. */
static void rc_zap(struct vm *vm, struct rp_fileh *fh, const struct rc_runs *zap)
{
	if (zap->n)
		fh->unmaps++; /* rp_pin's last pass counts on it (vm/pin.c) */
	for (struct rp_mapping *m = fh->maps; m; m = m->next) {
		uint64_t a, b;

		for (size_t i = 0; i < zap->n; i++)
			if (map_span(vm, m, zap->r[i][0], zap->r[i][0] + zap->r[i][1], &a, &b))
				(void)madvise((void *)(uintptr_t)a, b - a, MADV_DONTNEED);
	}
}

/* One window of fh from page `from`, freeing at most `want` pages. fh->lock not held.
 * Returns pages freed; *next is where the hand goes (fh->npages: past the end); *looked
 * counts the resident pages looked at; *cold_dirty the cold dirty pages met. */
static uint64_t rc_window(struct vm *vm, struct rp_fileh *fh, uint64_t from, uint64_t want,
                          struct rc_scratch *s, uint64_t *next, uint64_t *looked,
                          uint64_t *cold_dirty)
{
	const bool age_dirty = vm->rc.p.policy == VM_POLICY_WRITEBACK;
	struct rc_runs zap = {s->zap, 0, 0};
	struct rc_runs present = {malloc(64 * sizeof(present.r[0])), 0, 64};
	struct vm_release rel = {0, 0};
	uint64_t idx, w, lo = from, hi = from, freed = 0;

	if (!present.r)
		return *next = from, 0;
	pthread_mutex_lock(&fh->lock);
	if (!rc_span(fh, from, UINT64_MAX, &lo, &hi)) {
		pthread_mutex_unlock(&fh->lock);
		free(present.r);
		*next = fh->npages;
		return 0;
	}
	/* wp_async: writes recorded in the page tables become DIRTY before anything is
	 * zapped, and a page present in a writable mapping counts as referenced, whatever
	 * its bit says (see the top of the file). Had the union not fitted in memory, the
	 * bits alone decide, which the invariant there makes safe. */
	struct rc_present *pres = pre_scan(vm, fh, lo, hi, &present);

	*next = hi;
	for (uint64_t i = lo; pagemap_next(&fh->pm, i, &idx, &w) && idx < hi; i = idx + 1) {
		unsigned st = pg_state(w);

		(*looked)++;
		if (pg_pins(w) || (st != PG_LOADED && !(st == PG_DIRTY && age_dirty)))
			continue;
		if ((w & PG_REF) || runs_has(&present, idx)) {
			(void)vm_page_set(fh, idx, w & ~PG_REF);
			if (!(w & PG_RA)) /* read ahead and unused: mapped nowhere */
				(void)runs_add_n(&zap, idx, 1);
		} else if (st == PG_DIRTY) {
			(*cold_dirty)++;
		} else if (freed < want) {
			/* No mapping maps it (its bit is clear); the hole punch runs by runs. */
			(void)vm_page_set(fh, idx, 0);
			(void)runs_add_n(&zap, idx, 1);
			vm_release_page(fh, &rel, idx);
			freed++;
			if (w & PG_RA)
				atomic_fetch_add_explicit(&vm->ctr.ra_wasted, 1, memory_order_relaxed);
		} else {
			*next = idx; /* enough: the hand stops at the next victim */
			break;
		}
	}
	if (pres && (vm->rc.p.flags & VM_SLOW_ZAP))
		usleep(100);
	/* The victims are zapped too: nothing of them may stay, a poison marker included;
	 * their RAM goes by one hole punch per run. */
	rc_zap(vm, fh, &zap);
	post_scan(vm, fh, pres, &zap, lo, hi);
	vm_release_flush(fh, &rel);
	pthread_mutex_unlock(&fh->lock);
	free(present.r);
	if (freed) {
		atomic_fetch_add_explicit(&vm->ctr.evicted, freed, memory_order_relaxed);
		atomic_fetch_add_explicit(&fh->n_evicted, freed, memory_order_relaxed);
	}
	return freed;
}

/* rp_advise DONTNEED, and a stream's pages dropped behind it (vm/fault.c): windows of at
 * most RC_WINDOW resident pages, each under the handle's lock: clean unpinned pages are
 * zapped from every mapping, and those still clean after the zap (wp_async: no write
 * between the scans, as in rc_window) are released. */
int64_t vm_dontneed_fh(struct rp_fileh *fh, uint64_t first, uint64_t n)
{
	struct vm *vm = fh->vm;
	struct rc_scratch *s = malloc(sizeof(*s));
	struct rc_runs present = {malloc(64 * sizeof(present.r[0])), 0, 64};
	uint64_t from = first, end = first + n, wasted = 0, dropped = 0;

	if (!s || !present.r) {
		free(s);
		free(present.r);
		return vm_errf(-ENOMEM, "out of memory");
	}
	while (from < end) {
		struct rc_runs zap = {s->zap, 0, 0};
		struct vm_release rel = {0, 0};
		uint64_t idx, w, lo = from, hi = from;

		pthread_mutex_lock(&fh->lock);
		if (end > fh->npages) /* the handle shrank meanwhile */
			end = fh->npages;
		if (from >= end || !rc_span(fh, from, end, &lo, &hi)) {
			pthread_mutex_unlock(&fh->lock);
			break;
		}
		present.n = 0;
		struct rc_present *pres = pre_scan(vm, fh, lo, hi, &present);

		for (uint64_t i = lo; pagemap_next(&fh->pm, i, &idx, &w) && idx < hi; i = idx + 1)
			if (pg_state(w) == PG_LOADED && !pg_pins(w)) {
				(void)vm_page_set(fh, idx, w & ~PG_REF); /* zapped below */
				(void)runs_add_n(&zap, idx, 1);
			}
		rc_zap(vm, fh, &zap);
		post_scan(vm, fh, pres, &zap, lo, hi);
		for (size_t i = 0; i < zap.n; i++)
			for (uint64_t p = zap.r[i][0]; p < zap.r[i][0] + zap.r[i][1]; p++) {
				w = pagemap_get(&fh->pm, p);
				if (pg_state(w) != PG_LOADED || pg_pins(w))
					continue; /* written between the scans: dirty now */
				(void)vm_page_set(fh, p, 0);
				vm_release_page(fh, &rel, p);
				wasted += (w & PG_RA) != 0;
				dropped++;
			}
		vm_release_flush(fh, &rel);
		pthread_mutex_unlock(&fh->lock);
		from = hi;
	}
	atomic_fetch_add_explicit(&vm->ctr.ra_wasted, wasted, memory_order_relaxed);
	atomic_fetch_add_explicit(&fh->n_evicted, dropped, memory_order_relaxed);
	free(s);
	free(present.r);
	return (int64_t)dropped;
}

int vm_dontneed(struct rp_mapping *m, uint64_t first, uint64_t n)
{
	const int64_t r = vm_dontneed_fh(m->fh, first, n);

	return r < 0 ? (int)r : 0;
}

/* ---------------------------------------------------------------- sweeps */

/* The open handle with the smallest id >= id, or NULL. vm->objs_lock held. */
struct rp_fileh *vm_fileh_at(struct vm *vm, uint64_t id)
{
	struct rp_fileh *best = NULL;

	for (struct rp_fileh *fh = vm->filehs; fh; fh = fh->next)
		if (fh->id >= id && (!best || fh->id < best->id))
			best = fh;
	return best;
}


uint64_t vm_evict_sweep(struct vm *vm, uint64_t want, uint64_t *wb_ids, unsigned *nwb)
{
	struct vm_reclaim *rc = &vm->rc;
	struct rc_scratch *s = malloc(sizeof(*s));
	uint64_t freed = 0, looked = 0, limit;

	if (!s)
		return 0;
	pthread_mutex_lock(&rc->lock);
	atomic_fetch_add_explicit(&vm->ctr.reclaim_passes, 1, memory_order_relaxed);
	/* Two revolutions: the first may only clear bits. */
	limit = 2 * ram_pool_charged(vm->pool) + 2 * RC_WINDOW;
	while (freed < want && looked <= limit) {
		uint64_t next, cold = 0, before = looked;

		pthread_mutex_lock(&vm->objs_lock);
		struct rp_fileh *fh = vm_fileh_at(vm, rc->hand_id);

		if (!fh) {
			fh = vm_fileh_at(vm, 0);
			rc->hand_idx = 0;
		}
		pthread_mutex_unlock(&vm->objs_lock);
		if (!fh)
			break;
		/* fh stays open: closing it waits for rc->lock (vm_reclaim_forget). */
		if (fh->id != rc->hand_id) {
			rc->hand_id = fh->id;
			rc->hand_idx = 0;
		}
		freed += rc_window(vm, fh, rc->hand_idx, want - freed, s, &next, &looked, &cold);
		if (cold && nwb && *nwb < RC_WB_MAX &&
		    (*nwb == 0 || wb_ids[*nwb - 1] != fh->id))
			wb_ids[(*nwb)++] = fh->id;
		if (next >= fh->npages) {
			rc->hand_id = fh->id + 1;
			rc->hand_idx = 0;
			looked += (looked == before); /* an empty handle still counts as a step */
		} else
			rc->hand_idx = next;
	}
	pthread_mutex_unlock(&rc->lock);
	free(s);
	return freed;
}

uint64_t vm_reclaim_pages(struct vm *vm, uint64_t want)
{
	return vm_evict_sweep(vm, want, NULL, NULL);
}

void vm_reclaim_forget(struct vm *vm)
{
	if (!vm->rc.started)
		return;
	pthread_mutex_lock(&vm->rc.lock);
	pthread_mutex_unlock(&vm->rc.lock);
	/* A writeback of it may be running still: closing waits for writeouts anyway. */
}
