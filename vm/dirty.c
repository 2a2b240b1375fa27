/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/dirty.c - noticing writes: collecting the ones page tables recorded (wp_async).
 * Marking a page dirty is vm/page.c's (vm_dirty_mark); the wp_sync fault is
 * vm/fault.c's (vm_wp_fault); dropping dirty pages (rp_discard) is vm/fileh.c's.
 *
 * A writable mapping is registered for write-protect faults as well as MISSING and MINOR
 * ones, and every page is mapped into it write-protected (UFFDIO_CONTINUE_MODE_WP), so
 * the first write to a clean page is noticed. Two mechanisms, one per engine, chosen by
 * probing (vm/uffd.c) or by the dirty_tracking key:
 *
 *   wp_async (Linux 6.7)  the userfaultfd has UFFD_FEATURE_WP_ASYNC: the kernel resolves
 *       the write-protect fault itself (about 1 us, no message to userspace) and the page
 *       table entry remembers the write. dirty_collect asks for the written pages with
 *       PAGEMAP_SCAN and protects them again (each region with UFFDIO_WRITEPROTECT, or,
 *       where there are many, a walk with PM_SCAN_WP_MATCHING: collect_exact), so a
 *       write that lands after that shows in the next collection (over a large range,
 *       after a cheaper walk that only looks: collect_span). The engine's page
 *       states lag the page tables until a collection: writeout, rp_fileh_dirty,
 *       rp_discard and rp_unmap collect first.
 *   wp_sync  the write-protect fault comes to a service thread (vm_wp_fault), which
 *       marks the page dirty and lifts the protection in the mapping that wrote. Each
 *       first write to a clean page costs a round trip through the service
 *       (docs/benchmarks.md, "Dirty tracking", has the figures); states are always
 *       current.
 *
 * A write fault on a page that is not mapped yet (MISSING or MINOR with the write flag)
 * marks the page dirty at once and maps it writable in the faulting mapping: one fault
 * instead of two (Wendelin's "a write loads the page and makes it dirty in one step").
 *
 * Making pages clean again (MARKSTORED): wp_async pages are protected already by the
 * collection that found them; wp_sync pages are protected again by writeout, run by run,
 * before their write is issued, so a write during the writeout faults and is seen.
 */
#include "vm/dirty.h"
#include "vm/page.h"
#include "vm/uffd.h"
#include "vm/testing.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* PAGEMAP_SCAN failed (it should not: the mapping is registered for WP_ASYNC): the
 * written pages are unknown, so every resident page the mapping covers counts as
 * written. Costs writes, loses nothing. */
static void collect_all(struct rp_fileh *fh, struct rp_mapping *m)
{
	uint64_t idx, w;

	for (uint64_t i = m->first; pagemap_next(&fh->pm, i, &idx, &w) && idx < m->first + m->npages;
	     i = idx + 1)
		(void)vm_dirty_mark(fh, idx);
}

/* Protecting written pages again. A PAGEMAP_SCAN walk with WP_MATCHING flushes the TLB
 * from the first page it protects in a page table (2 MiB of addresses) to where the walk
 * ends in that table: over 33 pages, the whole TLB on x86. This VM makes that dear: the
 * first whole flush after the application touched its pages cost 100-330 us here, the
 * next ones 13-33 us, where UFFDIO_WRITEPROTECT of one written region flushes its pages
 * alone, 6-8 us with the call. So the exact walk first only looks; up to PROTECT_REGIONS
 * regions are then protected one call each, and past that (many writes, where the whole
 * flushes are shared by many pages) a walk with WP_MATCHING takes the range.
 * docs/benchmarks.md, "Protecting written pages". */
#define PROTECT_REGIONS 64

struct exact {
	uint64_t r[PROTECT_REGIONS][2]; /* written regions found by the look, [first, end) */
	unsigned n;
	bool many; /* more than PROTECT_REGIONS: the look stopped */
};

/* vm_region_fn of the look: a region of present, written pages. */
static int exact_region(struct rp_fileh *fh, uint64_t first, uint64_t end, uint64_t cat,
                        void *arg)
{
	struct exact *x = arg;

	(void)fh;
	(void)cat;
	if (x->n == PROTECT_REGIONS) {
		x->many = true;
		return 1;
	}
	x->r[x->n][0] = first;
	x->r[x->n++][1] = end;
	return 0;
}

/* The exact walk: pages [first, end) of m present and written are made DIRTY and
 * protected again (a poison marker is neither write-protected nor a page). Each region is
 * protected before its pages are marked, so a write to it after the look lands either in
 * the page that writeout copies later or after the protection (collected next time).
 * Trade-off: it runs under the handle's lock, so faults on the handle wait for it; in
 * exchange a write it reports can never meet a page whose state changes meanwhile
 * (invalidated, reloaded, written out). */
static void collect_exact(struct rp_fileh *fh, struct rp_mapping *m, uint64_t first,
                          uint64_t end)
{
	const uint64_t base = (uintptr_t)m->addr, psz = fh->vm->psz;
	const uint64_t a = base + (first - m->first) * psz, b = base + (end - m->first) * psz;
	struct exact x = {.n = 0};
	bool ok;

	if (first >= end)
		return;
	ok = vm_pagemap_walk(fh->vm, m, a, b, false, 0, PAGE_IS_WRITTEN | PAGE_IS_PRESENT,
	                     exact_region, &x);
	if (x.many)
		ok = vm_pagemap_walk(fh->vm, m, a, b, true, 0, PAGE_IS_WRITTEN | PAGE_IS_PRESENT,
		                     vm_dirty_mark_region, NULL);
	else
		for (unsigned i = 0; ok && i < x.n; i++) {
			vm_uffd_protect(fh->vm, m, x.r[i][0], x.r[i][1] - x.r[i][0], true);
			(void)vm_dirty_mark_region(fh, x.r[i][0], x.r[i][1], 0, NULL);
		}
	if (!ok)
		collect_all(fh, m);
}

/* Collects the writes to pages [first, end) of m (within it). The exact walk works out
 * each mapped page's categories: 2-4 ns a page here, 3-5 ms for a 4 GiB mapping at every
 * commit. A walk that only asks which pages may have been written takes the kernel's
 * short way, about 1 ns a page, but it counts holes as written too. So, over a range
 * large enough, that walk goes first, and the exact walk then covers only the spans it
 * found, regions less than COLLECT_CALL_PAGES apart joined (holes cost the exact
 * walk little). It stops, and the exact walk takes the whole range, once walking the
 * spans one call each would cost as much (a call costs about what walking
 * COLLECT_CALL_PAGES mapped pages does, 2 us here; protecting the pages found costs the
 * same either way), or it found more than COLLECT_REGIONS regions or COLLECT_SPANS spans
 * (pages mapped here and there). docs/benchmarks.md, "A commit's collection" and
 * "Protecting written pages". */
#define COLLECT_CALL_PAGES 1024
#define COLLECT_REGIONS    2048
#define COLLECT_SPANS      128

uint64_t vm_collect_call_pages = COLLECT_CALL_PAGES; /* a test may lower it (vm/testing.h) */

static void collect_span(struct rp_fileh *fh, struct rp_mapping *m, uint64_t first,
                         uint64_t end)
{
	const uint64_t base = (uintptr_t)m->addr, psz = fh->vm->psz;
	struct page_region vec[128];
	uint64_t span[COLLECT_SPANS][2], at = first, seen = 0, cost = 0;
	unsigned ns = 0;

	if (end - first < 2 * vm_collect_call_pages) {
		collect_exact(fh, m, first, end);
		return;
	}
	while (at < end && seen <= COLLECT_REGIONS && cost < end - first) {
		uint64_t walk_end;
		int n = vm_pagemap_maybe_written(fh->vm->pagemap_fd, base + (at - m->first) * psz,
		                                 base + (end - m->first) * psz, vec,
		                                 sizeof(vec) / sizeof(vec[0]), &walk_end);

		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0)
			break;
		for (int i = 0; i < n && cost < end - first; i++) {
			const uint64_t a = m->first + (vec[i].start - base) / psz;
			const uint64_t b = m->first + (vec[i].end - base) / psz;

			if (ns && a - span[ns - 1][1] < vm_collect_call_pages) {
				cost += b - span[ns - 1][1];
				span[ns - 1][1] = b;
			} else if (ns < COLLECT_SPANS) {
				cost += vm_collect_call_pages + b - a;
				span[ns][0] = a;
				span[ns++][1] = b;
			} else {
				cost = UINT64_MAX; /* too many: the whole range */
			}
		}
		seen += (uint64_t)n;
		walk_end = m->first + (walk_end - base) / psz;
		if (walk_end <= at)
			break;
		at = walk_end;
	}
	if (at < end || seen > COLLECT_REGIONS || cost >= end - first) {
		collect_exact(fh, m, first, end);
		return;
	}
	for (unsigned i = 0; i < ns; i++)
		collect_exact(fh, m, span[i][0], span[i][1]);
}

static void collect_map(struct rp_fileh *fh, struct rp_mapping *m)
{
	collect_span(fh, m, m->first, m->first + m->npages);
}

void vm_dirty_collect(struct rp_fileh *fh, struct rp_mapping *only)
{
	if (fh->vm->dirty != VM_DIRTY_WP_ASYNC)
		return;
	if (only) {
		if (only->track)
			collect_map(fh, only);
		return;
	}
	for (struct rp_mapping *m = fh->maps; m; m = m->next)
		if (m->track)
			collect_map(fh, m);
}

void vm_dirty_collect_range(struct rp_fileh *fh, uint64_t first, uint64_t end)
{
	if (fh->vm->dirty != VM_DIRTY_WP_ASYNC)
		return;
	for (struct rp_mapping *m = fh->maps; m; m = m->next) {
		const uint64_t a = first > m->first ? first : m->first;
		const uint64_t b = end < m->first + m->npages ? end : m->first + m->npages;

		if (m->track && a < b)
			collect_span(fh, m, a, b);
	}
}

uint64_t vm_dirty_tracked_pages(const struct rp_fileh *fh)
{
	uint64_t n = 0;

	if (fh->vm->dirty != VM_DIRTY_WP_ASYNC)
		return 0;
	for (const struct rp_mapping *m = fh->maps; m; m = m->next)
		if (m->track)
			n += m->npages;
	return n;
}
