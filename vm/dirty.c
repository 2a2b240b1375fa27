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
 *       PAGEMAP_SCAN, PM_SCAN_WP_MATCHING, which protects them again in the same walk,
 *       so a write that lands after the walk shows in the next one. The engine's page
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
 * scan that collected them; wp_sync pages are protected again by writeout, run by run,
 * before their write is issued, so a write during the writeout faults and is seen.
 */
#include "vm/dirty.h"
#include "vm/page.h"
#include "vm/uffd.h"
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

/* Trade-off: the walk runs under the handle's lock, so faults on the handle wait for it
 * (the kernel's figure is about 31 ns per written page, less for the rest: a few ms for
 * 65,536 written pages); in exchange a write it reports can never meet a page whose
 * state changes meanwhile (invalidated, reloaded, written out). */
static void collect_map(struct rp_fileh *fh, struct rp_mapping *m)
{
	uint64_t base = (uintptr_t)m->addr;

	/* present and written: a poison marker is neither write-protected nor a page */
	if (!vm_pagemap_walk(fh->vm, m, base, base + m->len, true, 0,
	                     PAGE_IS_WRITTEN | PAGE_IS_PRESENT, vm_dirty_mark_region, NULL))
		collect_all(fh, m);
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
