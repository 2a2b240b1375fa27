/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/reclaim.c - keeping the pool within ram_size: CLOCK eviction in batches, the
 * watermarks, waiting for memory, the pressure hook, and writeback of cold dirty pages.
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
 *
 * Who reclaims.
 *   - Background: a load that brings the pool to reclaim_high percent kicks the reclaim
 *     thread, which evicts until the pool is at reclaim_low. Off the fault path.
 *   - Synchronous: a load that finds the pool full sweeps itself (vm_reclaim_alloc), on
 *     whatever thread it runs.
 *   - rp_reclaim(eng, n): on request.
 * When nothing can be freed (every page dirty under keep, or pinned): a fault is parked
 * (the kernel keeps its thread waiting) and rp_pin waits, both up to reclaim_wait ms;
 * the pressure hook is told (RP_PRESSURE_POOL_FULL) so that the application can write
 * out; whenever memory may have been freed (a hole punched, pages made clean, a load
 * completed) the waiters try again. When nothing can be freed means pages in flight too:
 * a pool filled by WILLNEED is evictable as soon as its loads complete. When the wait
 * ends (after one last sweep): the faulting thread gets SIGBUS (a poison marker, as for
 * a failed load: the page keeps raising SIGBUS in that mapping until it is loaded by
 * rp_pin or WILLNEED, or rp_invalidate clears it), and rp_pin returns -ENOMEM. The engine
 * never aborts.
 *
 * Dirty limit. When the engine's dirty pages reach dirty_limit the hook is called once
 * (RP_PRESSURE_DIRTY_LIMIT), and again only after they have fallen below. Under wp_async
 * a write to a loaded page is seen only at a collection, so while a hook and a limit are
 * set the reclaim thread collects every RC_COLLECT_MS (as the kernel's flusher wakes
 * periodically); under wp_sync the count is exact at every write.
 *
 * Writeback (dirty_policy=writeback). When a sweep could not free enough and met cold
 * dirty pages (bit clear), the reclaim thread starts a writeout of those pages of the
 * handle: STORE | MARKSTORED | SYNC, restricted to cold pages (VM_WO_COLD), so the same
 * order and durability rules as rp_writeout hold, and it runs in turn with the
 * application's writeouts of the handle. When it ends the pages are clean with their bit
 * clear, and the next sweep evicts them. A failed writeback keeps the pages dirty and is
 * not retried for RC_WB_RETRY_MS.
 */
#include "vm/vm.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RC_WINDOW      512  /* resident pages looked at per hold of a handle's lock */
#define RC_SYNC_MIN    32   /* a synchronous reclaim frees at least this many pages */
#define RC_BG_BATCH    4096 /* background reclaim: pages per sweep call */
#define RC_COLLECT_MS  100
#define RC_WB_RETRY_MS 1000

static const char *const policy_names[] = {"keep", "writeback"};

const char *vm_policy_name(enum vm_dirty_policy p)
{
	return (unsigned)p < 2 ? policy_names[p] : "?";
}

static void abs_time(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

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
		fh->unmaps++; /* rp_pin's last pass counts on it (vm/load.c) */
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
			(void)pagemap_set(&fh->pm, idx, w & ~PG_REF);
			if (!(w & PG_RA)) /* read ahead and unused: mapped nowhere */
				(void)runs_add_n(&zap, idx, 1);
		} else if (st == PG_DIRTY) {
			(*cold_dirty)++;
		} else if (freed < want) {
			/* No mapping maps it (its bit is clear); the hole punch runs by runs. */
			(void)pagemap_set(&fh->pm, idx, 0);
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
	if (freed)
		atomic_fetch_add_explicit(&vm->ctr.evicted, freed, memory_order_relaxed);
	return freed;
}

/* rp_advise DONTNEED: windows of at most RC_WINDOW resident pages, each under the
 * handle's lock: clean unpinned pages are zapped from every mapping, and those still
 * clean after the zap (wp_async: no write between the scans, as in rc_window) are
 * released. */
int vm_dontneed(struct rp_fileh *fh, uint64_t first, uint64_t n)
{
	struct vm *vm = fh->vm;
	struct rc_scratch *s = malloc(sizeof(*s));
	struct rc_runs present = {malloc(64 * sizeof(present.r[0])), 0, 64};
	uint64_t from = first, end = first + n, wasted = 0;

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
		if (!rc_span(fh, from, end, &lo, &hi)) {
			pthread_mutex_unlock(&fh->lock);
			break;
		}
		present.n = 0;
		struct rc_present *pres = pre_scan(vm, fh, lo, hi, &present);

		for (uint64_t i = lo; pagemap_next(&fh->pm, i, &idx, &w) && idx < hi; i = idx + 1)
			if (pg_state(w) == PG_LOADED && !pg_pins(w)) {
				(void)pagemap_set(&fh->pm, idx, w & ~PG_REF); /* zapped below */
				(void)runs_add_n(&zap, idx, 1);
			}
		rc_zap(vm, fh, &zap);
		post_scan(vm, fh, pres, &zap, lo, hi);
		for (size_t i = 0; i < zap.n; i++)
			for (uint64_t p = zap.r[i][0]; p < zap.r[i][0] + zap.r[i][1]; p++) {
				w = pagemap_get(&fh->pm, p);
				if (pg_state(w) != PG_LOADED || pg_pins(w))
					continue; /* written between the scans: dirty now */
				(void)pagemap_set(&fh->pm, p, 0);
				vm_release_page(fh, &rel, p);
				wasted += (w & PG_RA) != 0;
			}
		vm_release_flush(fh, &rel);
		pthread_mutex_unlock(&fh->lock);
		from = hi;
	}
	atomic_fetch_add_explicit(&vm->ctr.ra_wasted, wasted, memory_order_relaxed);
	free(s);
	free(present.r);
	return 0;
}

/* ---------------------------------------------------------------- sweeps */

/* The open handle with the smallest id >= id, or NULL. vm->objs_lock held. */
static struct rp_fileh *fh_at(struct vm *vm, uint64_t id)
{
	struct rp_fileh *best = NULL;

	for (struct rp_fileh *fh = vm->filehs; fh; fh = fh->next)
		if (fh->id >= id && (!best || fh->id < best->id))
			best = fh;
	return best;
}

/* Handles met with cold dirty pages, for writeback (ids; a few are enough), and
 * writebacks running at once. */
#define RC_WB_MAX (sizeof(((struct vm_reclaim *)0)->wb_ids) / sizeof(uint64_t))

static uint64_t sweep(struct vm *vm, uint64_t want, uint64_t *wb_ids, unsigned *nwb)
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
		struct rp_fileh *fh = fh_at(vm, rc->hand_id);

		if (!fh) {
			fh = fh_at(vm, 0);
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
	return sweep(vm, want, NULL, NULL);
}

void vm_reclaim_forget(struct vm *vm)
{
	if (!vm->rc.started)
		return;
	pthread_mutex_lock(&vm->rc.lock);
	pthread_mutex_unlock(&vm->rc.lock);
	/* A writeback of it may be running still: closing waits for writeouts anyway. */
}

/* ---------------------------------------------------------------- waiting for memory */

void vm_reclaim_kick(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;

	if (!rc->started || !atomic_load_explicit(&rc->waiters, memory_order_relaxed))
		return;
	pthread_mutex_lock(&rc->wlock);
	rc->epoch++;
	rc->full_told = false;
	rc->kicked = true;
	pthread_cond_broadcast(&rc->cv);
	pthread_cond_broadcast(&rc->mem_cv);
	pthread_mutex_unlock(&rc->wlock);
}

static void kick_always(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;

	pthread_mutex_lock(&rc->wlock);
	rc->kicked = true;
	pthread_cond_broadcast(&rc->cv);
	pthread_mutex_unlock(&rc->wlock);
}

void vm_reclaim_check(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;

	if (rc->started && ram_pool_charged(vm->pool) >= rc->high &&
	    !atomic_exchange_explicit(&rc->busy, true, memory_order_acq_rel))
		kick_always(vm);
}

int vm_reclaim_alloc(struct vm *vm, struct ram_handle *ram, uint64_t off, uint64_t len,
                     bool may_wait, unsigned ram_flags)
{
	struct vm_reclaim *rc = &vm->rc;
	const uint64_t need = len / vm->psz, want = need > RC_SYNC_MIN ? need : RC_SYNC_MIN;
	uint64_t deadline = 0;
	bool waited = false;
	int e;

	may_wait = may_wait && rc->p.wait_ms && !vm_on_service_thread();
	for (;;) {
		uint64_t got = vm_reclaim_pages(vm, want);

		e = ram_alloc(ram, off, len, ram_flags);
		if (e != -ENOMEM)
			break;
		if (got)
			continue; /* freed, and taken by another load meanwhile: sweep again */
		if (!may_wait)
			break;
		/* Nothing clean to evict: wait until memory may have been freed. */
		pthread_mutex_lock(&rc->wlock);
		if (!waited) {
			waited = true;
			deadline = vm_now_ns() + (uint64_t)rc->p.wait_ms * 1000000ull;
			atomic_fetch_add_explicit(&vm->ctr.mem_waits, 1, memory_order_relaxed);
		}
		uint64_t epoch = rc->epoch;
		struct timespec ts;
		int r = 0;

		rc->nwaiting++;
		atomic_fetch_add(&rc->waiters, 1);
		rc->kicked = true; /* the reclaim thread tells the hook, starts writeback */
		pthread_cond_broadcast(&rc->cv);
		abs_time(deadline, &ts);
		while (rc->epoch == epoch && !rc->stop && r != ETIMEDOUT)
			r = pthread_cond_timedwait(&rc->mem_cv, &rc->wlock, &ts);
		rc->nwaiting--;
		atomic_fetch_sub(&rc->waiters, 1);
		bool stop = rc->stop;

		pthread_mutex_unlock(&rc->wlock);
		if (stop || (r == ETIMEDOUT && vm_now_ns() >= deadline)) {
			/* One last try, with a sweep: pages that became evictable without a kick
			 * must not be left unseen. */
			if (!stop)
				(void)vm_reclaim_pages(vm, want);
			e = ram_alloc(ram, off, len, ram_flags);
			break;
		}
	}
	if (e == -ENOMEM && waited)
		atomic_fetch_add_explicit(&vm->ctr.mem_failures, 1, memory_order_relaxed);
	else if (!e)
		vm_reclaim_check(vm);
	return e;
}

static bool parked_room(struct vm_reclaim *rc)
{
	if (rc->nparked < rc->cparked)
		return true;
	size_t c = rc->cparked ? 2 * rc->cparked : 16;
	struct vm_parked *a = realloc(rc->parked, c * sizeof(*a));

	if (!a)
		return false;
	rc->parked = a;
	rc->cparked = c;
	return true;
}

bool vm_reclaim_park(struct vm *vm, uint64_t addr, bool write, uint64_t deadline)
{
	struct vm_reclaim *rc = &vm->rc;
	uint64_t now = vm_now_ns();
	bool first = !deadline;

	if (!rc->started || !rc->p.wait_ms)
		return false;
	if (first)
		deadline = now + (uint64_t)rc->p.wait_ms * 1000000ull;
	else if (now >= deadline)
		return false;
	pthread_mutex_lock(&rc->wlock);
	if (rc->stop || !parked_room(rc)) {
		pthread_mutex_unlock(&rc->wlock);
		return false;
	}
	rc->parked[rc->nparked++] = (struct vm_parked){addr, write, deadline};
	atomic_fetch_add(&rc->waiters, 1);
	if (first) {
		/* A new waiter: the reclaim thread tells the hook and starts writeback. A
		 * retry parked again waits for memory to be freed, or for its deadline. */
		atomic_fetch_add_explicit(&vm->ctr.mem_waits, 1, memory_order_relaxed);
		rc->kicked = true;
		pthread_cond_broadcast(&rc->cv);
	}
	pthread_mutex_unlock(&rc->wlock);
	return true;
}

void vm_reclaim_set_hook(struct vm *vm, void (*hook)(void *, int, uint64_t), void *arg)
{
	pthread_mutex_lock(&vm->rc.wlock);
	/* A call in progress ends first (unless this is it, changing the hook). */
	while (vm->rc.in_hook && !pthread_equal(pthread_self(), vm->rc.thread))
		pthread_cond_wait(&vm->rc.cv, &vm->rc.wlock);
	vm->rc.hook = hook;
	vm->rc.hook_arg = arg;
	atomic_store(&vm->rc.over_limit, false);
	pthread_mutex_unlock(&vm->rc.wlock);
	if (hook)
		kick_always(vm);
}

/* ---------------------------------------------------------------- the reclaim thread */

static void call_hook(struct vm *vm, int why)
{
	struct vm_reclaim *rc = &vm->rc;

	pthread_mutex_lock(&rc->wlock);
	void (*hook)(void *, int, uint64_t) = rc->hook;
	void *arg = rc->hook_arg;

	rc->in_hook = hook != NULL;
	pthread_mutex_unlock(&rc->wlock);
	if (!hook)
		return;
	atomic_fetch_add_explicit(&vm->ctr.hook_calls, 1, memory_order_relaxed);
	hook(arg, why, atomic_load(&vm->ctr.dirty_pages) * vm->psz);
	pthread_mutex_lock(&rc->wlock);
	rc->in_hook = false;
	pthread_cond_broadcast(&rc->cv);
	pthread_mutex_unlock(&rc->wlock);
}

/* Handles with a writeback running (ids), so that one handle has one at a time. */
static bool wb_claim(struct vm_reclaim *rc, uint64_t id)
{
	for (unsigned i = 0; i < rc->wb_running; i++)
		if (rc->wb_ids[i] == id)
			return false;
	if (rc->wb_running == RC_WB_MAX)
		return false;
	rc->wb_ids[rc->wb_running++] = id;
	return true;
}

static void wb_release(struct vm_reclaim *rc, uint64_t id, bool failed)
{
	for (unsigned i = 0; i < rc->wb_running; i++)
		if (rc->wb_ids[i] == id) {
			rc->wb_ids[i] = rc->wb_ids[--rc->wb_running];
			break;
		}
	if (failed)
		rc->wb_retry_ns = vm_now_ns() + RC_WB_RETRY_MS * 1000000ull;
	pthread_cond_broadcast(&rc->cv);
}

struct wb_arg {
	struct vm *vm;
	uint64_t id;
};

/* A writeback ended (on a service thread; the handle may be closed already). */
static void wb_done(void *arg, int result)
{
	struct wb_arg *a = arg;
	struct vm_reclaim *rc = &a->vm->rc;

	pthread_mutex_lock(&rc->wlock);
	wb_release(rc, a->id, result < 0);
	rc->epoch++;
	rc->full_told = false;
	rc->kicked = true;
	pthread_cond_broadcast(&rc->mem_cv);
	pthread_mutex_unlock(&rc->wlock);
	free(a);
}

/* Starts writebacks of the cold dirty pages of the handles named. */
static void start_writebacks(struct vm *vm, const uint64_t *ids, unsigned n)
{
	struct vm_reclaim *rc = &vm->rc;

	if (rc->p.policy != VM_POLICY_WRITEBACK || vm_now_ns() < rc->wb_retry_ns)
		return;
	pthread_mutex_lock(&rc->lock); /* handles stay open while rc->lock is held */
	for (unsigned i = 0; i < n; i++) {
		pthread_mutex_lock(&vm->objs_lock);
		struct rp_fileh *fh = fh_at(vm, ids[i]);

		pthread_mutex_unlock(&vm->objs_lock);
		if (!fh || fh->id != ids[i])
			continue;
		struct rp_store *st = fh->store;
		struct wb_arg *a = malloc(sizeof(*a));

		if (!a || (st->dev ? st->dev->rdonly : !st->ops->store)) {
			free(a);
			continue;
		}
		*a = (struct wb_arg){vm, fh->id};
		pthread_mutex_lock(&rc->wlock);
		bool ok = wb_claim(rc, fh->id);

		pthread_mutex_unlock(&rc->wlock);
		if (ok && vm_writeout(fh,
		                      RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC |
		                          VM_WO_COLD,
		                      wb_done, a, NULL, 0) == 0) {
			atomic_fetch_add_explicit(&vm->ctr.writebacks, 1, memory_order_relaxed);
			continue;
		}
		if (ok) {
			pthread_mutex_lock(&rc->wlock);
			wb_release(rc, fh->id, true);
			pthread_mutex_unlock(&rc->wlock);
		}
		free(a);
	}
	pthread_mutex_unlock(&rc->lock);
}

/* wp_async: brings the dirty counts up to date (only while a hook and a limit are set). */
static void collect_all(struct vm *vm)
{
	pthread_mutex_lock(&vm->rc.lock);
	pthread_mutex_lock(&vm->objs_lock);
	uint64_t id = 0;

	for (;;) {
		struct rp_fileh *fh = fh_at(vm, id);

		pthread_mutex_unlock(&vm->objs_lock);
		if (!fh)
			break;
		pthread_mutex_lock(&fh->lock);
		vm_dirty_collect(fh, NULL);
		pthread_mutex_unlock(&fh->lock);
		id = fh->id + 1;
		pthread_mutex_lock(&vm->objs_lock);
	}
	pthread_mutex_unlock(&vm->rc.lock);
}

void vm_reclaim_dirty(struct vm *vm, uint64_t dirty)
{
	struct vm_reclaim *rc = &vm->rc;

	if (rc->started && rc->dirty_limit &&
	    (dirty >= rc->dirty_limit) != atomic_load_explicit(&rc->over_limit, memory_order_relaxed))
		kick_always(vm);
}

static void check_dirty_limit(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;
	uint64_t dirty = atomic_load(&vm->ctr.dirty_pages);
	bool tell = false;

	if (!rc->dirty_limit)
		return;
	pthread_mutex_lock(&rc->wlock);
	if (dirty >= rc->dirty_limit && !atomic_load(&rc->over_limit)) {
		atomic_store(&rc->over_limit, true);
		tell = rc->hook != NULL; /* no hook: the crossing passes unseen */
	} else if (dirty < rc->dirty_limit)
		atomic_store(&rc->over_limit, false);
	pthread_mutex_unlock(&rc->wlock);
	if (tell)
		call_hook(vm, VM_PRESSURE_DIRTY_LIMIT);
}

/* Retries the parked faults: each either loads, parks again, or (deadline past) gets
 * SIGBUS. */
static void retry_parked(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;

	pthread_mutex_lock(&rc->wlock);
	struct vm_parked *p = rc->parked;
	size_t n = rc->nparked;

	rc->parked = NULL;
	rc->nparked = rc->cparked = 0;
	atomic_fetch_sub(&rc->waiters, (unsigned)n);
	pthread_mutex_unlock(&rc->wlock);
	for (size_t i = 0; i < n; i++)
		vm_fault(vm, NULL, p[i].addr, p[i].write, p[i].deadline);
	free(p);
}

static void *reclaim_main(void *arg)
{
	struct vm *vm = arg;
	struct vm_reclaim *rc = &vm->rc;

	pthread_mutex_lock(&rc->wlock);
	while (!rc->stop) {
		uint64_t now = vm_now_ns(), wake = UINT64_MAX;
		bool collect = vm->dirty == VM_DIRTY_WP_ASYNC && rc->hook && rc->dirty_limit;

		if (collect)
			wake = rc->last_collect_ns + RC_COLLECT_MS * 1000000ull;
		for (size_t i = 0; i < rc->nparked; i++)
			if (rc->parked[i].deadline < wake)
				wake = rc->parked[i].deadline;
		if (!rc->kicked && now < wake) {
			if (wake == UINT64_MAX)
				pthread_cond_wait(&rc->cv, &rc->wlock);
			else {
				struct timespec ts;

				abs_time(wake, &ts);
				(void)pthread_cond_timedwait(&rc->cv, &rc->wlock, &ts);
			}
			continue;
		}
		rc->kicked = false;
		bool waiting = rc->nparked || rc->nwaiting;

		pthread_mutex_unlock(&rc->wlock);

		if (collect && vm_now_ns() >= rc->last_collect_ns + RC_COLLECT_MS * 1000000ull) {
			collect_all(vm);
			rc->last_collect_ns = vm_now_ns();
		}
		check_dirty_limit(vm);

		/* Background reclaim: from the high watermark (vm_reclaim_check set busy) down
		 * to the low one; or for loads waiting. */
		uint64_t ids[RC_WB_MAX], freed = 0;
		unsigned nwb = 0;

		while ((atomic_load(&rc->busy) || waiting) && ram_pool_charged(vm->pool) > rc->low) {
			uint64_t over = ram_pool_charged(vm->pool) - rc->low;
			uint64_t got = sweep(vm, over < RC_BG_BATCH ? over : RC_BG_BATCH, ids, &nwb);

			freed += got;
			if (!got)
				break;
		}
		atomic_store(&rc->busy, false);
		if (waiting && !freed)
			freed = sweep(vm, RC_SYNC_MIN, ids, &nwb);
		if (nwb && (waiting || ram_pool_charged(vm->pool) > rc->low))
			start_writebacks(vm, ids, nwb);

		pthread_mutex_lock(&rc->wlock);
		if (freed) {
			rc->epoch++;
			rc->full_told = false;
			pthread_cond_broadcast(&rc->mem_cv);
		}
		/* Once per stall: full_told is cleared whenever memory is freed. */
		bool tell = waiting && !freed && !rc->full_told;

		if (tell)
			rc->full_told = true;
		pthread_mutex_unlock(&rc->wlock);
		if (tell)
			call_hook(vm, VM_PRESSURE_POOL_FULL);
		if (waiting)
			retry_parked(vm);
		pthread_mutex_lock(&rc->wlock);
	}
	pthread_mutex_unlock(&rc->wlock);
	return NULL;
}

int vm_reclaim_start(struct vm *vm, const struct vm_reclaim_params *p)
{
	struct vm_reclaim *rc = &vm->rc;
	uint64_t cap = vm->pool->capacity;

	rc->p = *p;
	rc->high = cap * p->high / 100;
	rc->low = cap * p->low / 100;
	if (rc->high < 1)
		rc->high = 1;
	if (p->dirty_limit_bytes)
		rc->dirty_limit = (p->dirty_limit_bytes + vm->psz - 1) / vm->psz;
	else
		rc->dirty_limit = cap * p->dirty_limit_pct / 100;
	pthread_mutex_init(&rc->lock, NULL);
	pthread_mutex_init(&rc->wlock, NULL);
	/* Deadlines are CLOCK_MONOTONIC times: the condition variables must wait on it. */
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rc->cv, &ca);
	pthread_cond_init(&rc->mem_cv, &ca);
	pthread_condattr_destroy(&ca);
	rc->last_collect_ns = vm_now_ns();
	int err = pthread_create(&rc->thread, NULL, reclaim_main, vm);

	if (err) {
		pthread_mutex_destroy(&rc->lock);
		pthread_mutex_destroy(&rc->wlock);
		pthread_cond_destroy(&rc->cv);
		pthread_cond_destroy(&rc->mem_cv);
		return vm_errf(-err, "cannot start the reclaim thread: %s", strerror(err));
	}
	rc->started = true;
	return 0;
}

void vm_reclaim_stop(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;

	if (!rc->started || rc->stop)
		return;
	pthread_mutex_lock(&rc->wlock);
	rc->stop = true;
	pthread_cond_broadcast(&rc->cv);
	pthread_cond_broadcast(&rc->mem_cv);
	pthread_mutex_unlock(&rc->wlock);
	pthread_join(rc->thread, NULL);
	/* Wait for writebacks: they call wb_done, which needs rc->wlock. */
	pthread_mutex_lock(&rc->wlock);
	while (rc->wb_running)
		pthread_cond_wait(&rc->cv, &rc->wlock);
	pthread_mutex_unlock(&rc->wlock);
	free(rc->parked);
	rc->parked = NULL;
	rc->nparked = 0;
	/* The locks stay usable: closing the handles still meets them (vm_reclaim_fini). */
}

void vm_reclaim_fini(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;

	if (!rc->started)
		return;
	rc->started = false;
	pthread_mutex_destroy(&rc->lock);
	pthread_mutex_destroy(&rc->wlock);
	pthread_cond_destroy(&rc->cv);
	pthread_cond_destroy(&rc->mem_cv);
}
