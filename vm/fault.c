/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/fault.c - the fault path: what a fault on a page of a mapping does, whoever serves
 * it (a service thread that read the userfaultfd, vm_fault; the faulting thread in its
 * SIGBUS handler, vm_fault_self; the reclaim thread retrying a parked fault).
 *
 * One decision, by the page's state (vm/page.h): EMPTY starts its load (and readahead
 * may open a window: vm/readahead.c decides it, ra_read here starts its loads); LOADING
 * waits for vm_load_finish to map it; POISONED gets SIGBUS; resident is a minor fault,
 * mapped with its resident neighbours (fault-around) or with the run read ahead after it.
 * A write-protect fault (wp_sync) marks the page dirty and unprotects it.
 */
#include "vm/fault.h"
#include "vm/dirty.h"
#include "vm/fileh.h"
#include "vm/load.h"
#include "vm/readahead.h"
#include "vm/reclaim.h"
#include "vm/service.h"
#include "vm/uffd.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Fault-around, as the kernel's own (fault_around_bytes, 64 KiB by default): a minor
 * fault maps every resident page of the faulting page's aligned 64 KiB block into the
 * mapping too, so that touching them costs no fault. What a program pays for the pages
 * of a mapping that are in the pool but not mapped there (a new mapping of a warm file;
 * pages unmapped by the reclaim hand) then falls by up to 16x where they are dense, while
 * a lone page still costs one fault and 15 lookups.
 *   The neighbours are marked referenced, as a run of pages read ahead is when one of
 * them is touched. The kernel maps them "old" instead and learns of their use from the
 * accessed bit; ringpager sees a use only as a fault (vm/evict.c), so a page mapped
 * unreferenced could be used without the hand ever knowing, and hot pages would be
 * evicted. The price is one revolution of the hand for neighbours never touched.
 *   Pages read ahead and not yet used (their first touch must be seen), LOADING, WRITING
 * and POISONED pages are left alone, and so is a page whose mapping's advice is RANDOM (the
 * kernel does no fault-around under MADV_RANDOM either). Tracked mappings get them
 * write-protected. fh->lock held. */
void vm_fault_around(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx)
{
	const uint64_t k = VM_FAULT_AROUND_BYTES / fh->vm->psz;
	uint64_t lo = idx & ~(k - 1), hi = lo + k, run = 0, n = 0;

	/* As the kernel, none where the program said its accesses are random. */
	if (k < 2 || vm_advice_at(&m->advice, idx) == RP_ADVICE_RANDOM)
		return;
	if (lo < m->first)
		lo = m->first;
	if (hi > m->first + m->npages)
		hi = m->first + m->npages;
	if (hi > fh->npages)
		hi = fh->npages;
	for (uint64_t p = lo; p <= hi; p++) {
		bool take = false;

		if (p < hi && p != idx) {
			uint64_t w = pagemap_get(&fh->pm, p);
			unsigned st = pg_state(w);

			take = (st == PG_LOADED || st == PG_DIRTY) && !(w & (PG_RA | PG_RA_MARK));
			if (take && !(w & PG_REF)) /* not counted in reference_hits: not a touch */
				(void)vm_page_set(fh, p, w | PG_REF);
		}
		if (take) {
			if (!n)
				run = p;
			n++;
		} else if (n) {
			vm_uffd_map_around(fh->vm, m, run, n);
			n = 0;
		}
	}
}

/* ---------------------------------------------------------------- readahead
 *
 * The fault path's side of readahead: vm/readahead.c decides the windows, these start
 * their loads and map pages read ahead when they are touched. fh->lock held,
 * vm->maps_lock held for reading. The loads they start are collected in a batch
 * (vm_load_batch), issued once the locks are dropped. */

static bool fh_present(void *arg, uint64_t idx)
{
	uint64_t w = pagemap_get(&((struct rp_fileh *)arg)->pm, idx);

	return w && pg_state(w) != PG_POISONED;
}

/* What a stream of m may read: its mapping's pages, up to the handle's end and to where
 * the store's bytes end (zero pages past it need no reading ahead). */
static void ra_env(struct rp_fileh *fh, const struct rp_mapping *m, struct vm_ra_env *e)
{
	const size_t psz = fh->vm->psz;
	uint64_t hi = m->first + m->npages, zero = (fh->zero_from + psz - 1) / psz;

	if (hi > fh->npages)
		hi = fh->npages;
	if (hi > zero)
		hi = zero;
	*e = (struct vm_ra_env){.max = fh->vm->ra_max,
	                        .lo = m->first,
	                        .hi = hi > m->first ? hi : m->first,
	                        .present = fh_present,
	                        .arg = fh};
}

/* Starts the loads of the window's absent pages, in runs of at most the device's largest
 * request, and puts the marker on its page. A window of a stream that has proved itself
 * (eager: the mapping whose marker started it) is mapped there as each run completes
 * (vm_load_finish), not a chunk per touch. fh->lock held (dropped and retaken by each
 * vm_load_start). A run that finds no memory ends the window. */
static void ra_read(struct rp_fileh *fh, const struct vm_ra_win *win, struct rp_mapping *eager,
                    struct vm_load_batch *b)
{
	struct vm *vm = fh->vm;
	uint64_t end = win->start + win->size, p = win->start, started = 0;
	uint64_t max_io = fh->store->dev ? fh->store->dev->max_io / vm->psz : win->size;
	/* With readahead_copy, a proven stream's window is read into a service thread's
	 * staging slots, and each run put in place and mapped with one UFFDIO_COPY
	 * (load_copy_out; docs/benchmarks.md, "Copied windows"). */
	const bool copy = eager && vm->ra_copy && fh->store->dev; /* ra_copy: 4 KiB pages */

	if (copy && max_io > VM_RSTAGE_BYTES / vm->psz)
		max_io = VM_RSTAGE_BYTES / vm->psz;
	if (!max_io)
		max_io = 1;
	while (p < end) {
		uint64_t n = 0;
		int err;

		while (p + n < end && n < max_io && pagemap_get(&fh->pm, p + n) == 0)
			n++;
		if (!n) {
			p++;
			continue;
		}
		struct vm_load *ld = vm_load_start(fh, p, n, copy ? VM_LOAD_STAGED : 0, &err);

		if (!ld)
			break;
		ld->ra = true;
		ld->eager = eager;
		if (copy)
			ld->dst = eager;
		if (win->mark >= p && win->mark < p + n) {
			uint64_t w = pagemap_get(&fh->pm, win->mark);

			if (pg_state(w) == PG_LOADING && pg_load(w) == ld)
				(void)vm_page_set(fh, win->mark, w | PG_RA_MARK);
		}
		vm_load_batch_add(b, ld);
		started += n;
		p += n;
	}
	if (started) {
		atomic_fetch_add_explicit(&vm->ctr.ra_windows, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&vm->ctr.ra_pages, started, memory_order_relaxed);
	}
}

/* The fault on absent page idx of m started idx's own load: reads its window ahead. */
static void ra_miss(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx,
                    struct vm_load_batch *b)
{
	struct vm_ra_env e;
	struct vm_ra_win win;

	ra_env(fh, m, &e);
	if (vm_ra_sync(&m->ra, &e, vm_advice_at(&m->advice, idx), idx, &win))
		ra_read(fh, &win, NULL, b);
}

/* A stream's pages further behind it than scan_keep, dropped by a service thread (the
 * caller of vm_fault_self may be a signal handler): a long scan then reuses its own memory
 * rather than taking new memory and pushing the rest of the pool out. On a virtual machine
 * that gives freed memory back to its host, new memory costs many times what reused memory
 * does (docs/benchmarks.md, "Dropping behind a scan"). fh->ndrops keeps the handle open. */
struct drop_job {
	struct vm_job job;
	struct rp_fileh *fh;
	uint64_t first, n;
};

static int drop_issue(struct vm_job *job, struct vm_service *s)
{
	struct drop_job *d = (struct drop_job *)(void *)job;
	struct rp_fileh *fh = d->fh;
	struct ram_pool *pool = fh->vm->pool;
	const int64_t k = vm_dontneed_fh(fh, d->first, d->n); /* -ENOMEM: the pages stay */

	(void)s;
	if (k > 0)
		atomic_fetch_add_explicit(&fh->vm->ctr.ra_dropped, (uint64_t)k, memory_order_relaxed);
	pthread_mutex_lock(&fh->lock);
	if (--fh->ndrops == 0)
		pthread_cond_broadcast(&fh->cv);
	pthread_mutex_unlock(&fh->lock);
	ram_meta_free(pool, d);
	return 0;
}

static const struct vm_job_ops drop_ops = {drop_issue, NULL};

/* The stream of m reached page idx: its pages further behind than scan_keep go, in a job
 * added to b. fh->lock held. */
static void drop_behind(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx,
                        struct vm_load_batch *b)
{
	struct vm *vm = fh->vm;
	uint64_t first, n;

	if (b->drop || !vm_ra_behind(&m->ra, idx, vm->scan_keep, vm->ra_max, &first, &n))
		return;
	struct drop_job *d = ram_meta_alloc(vm->pool, sizeof(*d));

	if (!d)
		return; /* the pages stay until reclaim takes them */
	memset(d, 0, sizeof(*d));
	d->job.ops = &drop_ops;
	d->fh = fh;
	d->first = first;
	d->n = n;
	fh->ndrops++;
	b->drop = &d->job;
}

/* The marker on page idx (word w) was reached: the next window. */
static void ra_marker(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx, uint64_t w,
                      struct vm_load_batch *b)
{
	struct vm_ra_env e;
	struct vm_ra_win win;

	(void)vm_page_set(fh, idx, w & ~PG_RA_MARK);
	drop_behind(fh, m, idx, b);
	ra_env(fh, m, &e);
	/* Mapped whole as it completes, except in a mapping whose writes wp_sync tracks: a
	 * 2 MiB page mapped so during a writeout was seen to stay dirty after it (one run in
	 * 20 of vm_hugetlb's wp_sync test); such mappings map a chunk per touch, as before. */
	const bool eager = !m->track || fh->vm->dirty == VM_DIRTY_WP_ASYNC;

	if (vm_ra_async(&m->ra, &e, vm_advice_at(&m->advice, idx), idx, &win))
		ra_read(fh, &win, eager ? m : NULL, b);
}

/* A fault on page idx of m while it loads (word w): the marker starts the next window. */
static void ra_loading(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx, uint64_t w,
                       struct vm_load_batch *b)
{
	pg_load(w)->faulted = true;
	if (w & PG_RA_MARK)
		ra_marker(fh, m, idx, w, b);
}

/* A fault on page idx of m, which is resident (word w): starts the next window when idx
 * carries the marker, and maps the page (a write under wp_sync: writable, and DIRTY),
 * with the pages read ahead after it that nothing mapped yet. */
static void ra_touch(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx, uint64_t w,
                     bool write, struct vm_load_batch *b)
{
	struct vm *vm = fh->vm;
	uint64_t k = 1;

	if (w & PG_RA_MARK) {
		ra_marker(fh, m, idx, w, b);
		w = pagemap_get(&fh->pm, idx); /* ra_read may have dropped the lock */
		if (!pg_resident(w)) { /* evicted meanwhile: the thread faults again */
			vm_uffd_wake(vm, m, idx, 1);
			return;
		}
	}
	if (w & PG_RA) {
		/* Read ahead and used now: map it with the run of unused pages read ahead after
		 * it (a marker ends the run: its touch must be seen). */
		uint64_t end = idx + vm->ra_chunk, mend = m->first + m->npages;

		if (mend > fh->npages)
			mend = fh->npages;
		if (end > mend)
			end = mend;
		(void)vm_page_set(fh, idx, (w & ~PG_RA) | PG_REF);
		for (; idx + k < end; k++) {
			uint64_t w2 = pagemap_get(&fh->pm, idx + k);

			if (!(w2 & PG_RA) || (w2 & PG_RA_MARK))
				break;
			(void)vm_page_set(fh, idx + k, (w2 & ~PG_RA) | PG_REF);
		}
		atomic_fetch_add_explicit(&vm->ctr.ra_used, k, memory_order_relaxed);
		vm_ra_used(&m->ra, idx + k - 1, k);
	} else {
		vm_page_referenced(fh, idx, w);
		m->ra.prev = idx;
		vm_fault_around(fh, m, idx); /* its resident neighbours, before idx wakes */
	}
	/* A write under wp_async: mapped write-protected all the same, and the kernel records
	 * the write when the thread retries it. The message may be late: a run of pages read
	 * ahead, mapped for another fault, can map this page and wake the thread before its
	 * own message is read, and by then its write may have been written out; marking the
	 * page dirty here would make it dirty with nothing new in it. */
	write = write && m->track && vm->dirty != VM_DIRTY_WP_ASYNC;
	if (write)
		(void)vm_dirty_mark(fh, idx);
	/* The run first: mapping idx wakes the thread, whose next touches should find the
	 * run mapped, not fault on it again. */
	if (k > 1)
		vm_uffd_continue(vm, m, idx + 1, k - 1, false);
	vm_uffd_continue(vm, m, idx, 1, write);
}

void vm_wp_fault(struct vm *vm, uint64_t addr)
{
	uint64_t page;
	struct rp_mapping *m = vm_fault_mapping(vm, addr, &page);

	if (!m)
		return;
	struct rp_fileh *fh = m->fh;

	atomic_fetch_add_explicit(&vm->ctr.wp_faults, 1, memory_order_relaxed);
	pthread_mutex_lock(&fh->lock);
	const uint64_t w = pagemap_get(&fh->pm, page);

	if (pg_state(w) == PG_LOADING && pg_load(w)->copying && pg_load(w)->dst == m) {
		/* Copied into m write-protected a moment ago, and not finished: it finishes
		 * writable, and that wakes the writer (vm/load.c, load_copy_out). */
		struct vm_load *l = pg_load(w);

		if (l->npages == 1 && !l->writer)
			l->writer = m;
		l->faulted = true;
	} else if (vm_dirty_mark(fh, page))
		vm_uffd_protect(vm, m, page, 1, false); /* also wakes the writer */
	else
		vm_uffd_wake(vm, m, page, 1); /* gone meanwhile: it faults again */
	pthread_mutex_unlock(&fh->lock);
	pthread_rwlock_unlock(&vm->maps_lock);
}

/* ---------------------------------------------------------------- the decision */

/* The pages a fault on absent page `page` loads: itself, or, past where the store's
 * bytes end (zero_from), the absent pages from it to the end of its aligned block of
 * VM_RA_CHUNK_BYTES: zeros, made and mapped at once, so that appending through a
 * mapping faults once a block rather than once a page (and, for a write, takes no
 * write-protect fault per page either: the run is made dirty). fh->lock held. */
static uint64_t zero_run(struct rp_fileh *fh, uint64_t page)
{
	const uint64_t k = fh->vm->ra_chunk;
	uint64_t n = 1, end = (page / k + 1) * k;

	if (k < 2 || page * fh->vm->psz < fh->zero_from)
		return 1;
	if (end > fh->npages)
		end = fh->npages;
	while (page + n < end && pagemap_get(&fh->pm, page + n) == 0)
		n++;
	return n;
}

/* The fault path's decision, the same whoever serves the fault: a service thread reading
 * the userfaultfd (vm_fault), or the faulting thread itself (vm_fault_self, self = true).
 * *own is the load of the faulting page, started and not issued; *ra the readahead
 * windows the fault opened. */
static enum vm_fault_outcome fault_decide(struct vm *vm, uint64_t addr, bool write,
                                          uint64_t deadline, bool self, struct vm_load **own,
                                          struct vm_load_batch *ra)
{
	enum vm_fault_outcome out = VM_FAULT_RETRY;
	uint64_t page;
	int err = 0;

	/* MISSING or MINOR: the page's state says more than the fault's kind. */
	struct rp_mapping *m = vm_fault_mapping(vm, addr, &page);

	if (!m)
		return VM_FAULT_NOT_MINE;
	struct rp_fileh *fh = m->fh;

	pthread_mutex_lock(&fh->lock);
	if (page >= fh->npages) {
		/* Past the handle's end (a mapping's room to grow): the kernel raises SIGBUS
		 * there itself; a fault that came before the handle shrank is woken to meet
		 * it, and a SIGBUS (fault_mode=sigbus) is not ringpager's to serve. */
		if (!self) {
			/* (The memfd of an empty handle still has one page: poisoned, it raises
			 * SIGBUS as the kernel does past the end; growing clears the marker.) */
			vm_uffd_poison(vm, m, page, 1);
			vm_uffd_wake(vm, m, page, 1);
		}
		pthread_mutex_unlock(&fh->lock);
		pthread_rwlock_unlock(&vm->maps_lock);
		return VM_FAULT_NOT_MINE;
	}
	if (!deadline) /* a parked fault retried was counted when it came */
		atomic_fetch_add_explicit(&vm->ctr.faults, 1, memory_order_relaxed);
	uint64_t w = pagemap_get(&fh->pm, page);

	switch (pg_state(w)) {
	case PG_EMPTY: {
		/* A service thread must not block: a fault that finds the pool full parks (the
		 * kernel holds the thread) and is retried. A thread serving itself waits for
		 * memory in the load, as rp_pin does. Either reads a 4 KiB page of a device
		 * store through a bounce page (vm_load_issue says why). */
		const uint64_t n = zero_run(fh, page);
		const unsigned stage = vm_load_stage_flag(fh, n);
		struct vm_load *ld = vm_load_start(
		    fh, page, n, (self ? VM_LOAD_MAY_WAIT : VM_LOAD_FAULT) | stage, &err);

		if (!ld) {
			/* Pool full and nothing clean to evict: the faulting thread waits until
			 * memory is freed, or gets SIGBUS when its wait ends; the page stays EMPTY. */
			if (err != -ENOMEM || self || !vm_reclaim_park(vm, addr, write, deadline)) {
				vm_uffd_poison(vm, m, page, 1);
				for (struct rp_mapping *o = fh->maps; o; o = o->next)
					if (o != m) /* they fault again themselves */
						vm_uffd_wake(vm, o, page, 1);
				if (err == -ENOMEM)
					atomic_fetch_add_explicit(&vm->ctr.mem_failures, 1,
					                          memory_order_relaxed);
				out = VM_FAULT_FAILED;
			}
		} else {
			/* A write makes a zero run dirty and writable at once, all of it: the stores
			 * that follow (an append) take no write-protect fault each, and the writeout
			 * writes the run's zeros too. */
			if (write && m->track)
				ld->writer = m;
			if (stage)
				ld->dst = m;
			ra_miss(fh, m, page, ra);
			*own = ld;
		}
		break;
	}
	case PG_LOADING: { /* vm_load_finish maps it and wakes us */
		struct vm_load *l = pg_load(w);

		if (write && m->track && l->npages == 1 && !l->writer)
			l->writer = m;
		/* a window's run a thread now waits for goes before the runs nobody waits for */
		atomic_store_explicit(&l->job.urgent, true, memory_order_relaxed);
		ra_loading(fh, m, page, w, ra);
		out = VM_FAULT_WAIT;
		break;
	}
	case PG_POISONED:
		vm_uffd_poison(vm, m, page, 1);
		out = VM_FAULT_FAILED;
		break;
	default:
		atomic_fetch_add_explicit(&vm->ctr.minor_faults, 1, memory_order_relaxed);
		ra_touch(fh, m, page, w, write, ra);
		break;
	}
	pthread_mutex_unlock(&fh->lock);
	pthread_rwlock_unlock(&vm->maps_lock);
	return out;
}

void vm_fault(struct vm *vm, struct vm_service *svc, uint64_t addr, bool write,
              uint64_t deadline)
{
	struct vm_load *ld = NULL;
	struct vm_load_batch ra = {NULL, NULL, NULL};

	(void)fault_decide(vm, addr, write, deadline, false, &ld, &ra);
	if (ld) /* the faulting page first */
		vm_service_submit(vm, svc, &ld->job);
	vm_load_batch_submit(vm, svc, &ra);
}

enum vm_fault_outcome vm_fault_self(struct vm *vm, uint64_t addr, bool write)
{
	struct vm_load *ld = NULL;
	struct vm_load_batch ra = {NULL, NULL, NULL};
	enum vm_fault_outcome out = fault_decide(vm, addr, write, 0, true, &ld, &ra);

	/* The windows go to the service threads first, so that they are read while this
	 * thread reads its own page (the read blocks it). */
	vm_load_batch_submit(vm, NULL, &ra);
	if (ld) {
		vm_load_waited(ld);
		(void)vm_load_issue(ld, NULL);
	}
	return out;
}
