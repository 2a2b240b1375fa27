/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/load.c - loads of pages from stores, and everything that changes a page's state:
 * the fault path's decision, pins, WILLNEED, invalidation. The state machine these
 * functions implement is drawn in vm/page.h.
 *
 * A load covers a run of pages (one page for a fault; up to VM_LOAD_MAX_BYTES for a run
 * of absent pages that rp_pin or WILLNEED asked for). Its pages are LOADING from
 * vm_load_start until vm_load_finish, and every slot of the run points to it. It is
 * finished by whoever sees its completion: the service thread that reaped the I/O, or
 * the custom store's thread that called rp_load_done. Finishing maps the run into every
 * mapping of the handle with one UFFDIO_CONTINUE each, which wakes every thread that
 * faulted on any page of it; pin waiters are woken through the handle's condition
 * variable. Nobody polls.
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

static void fh_link_load(struct rp_fileh *fh, struct vm_load *ld)
{
	ld->prev = NULL;
	ld->next = fh->loads;
	if (fh->loads)
		fh->loads->prev = ld;
	fh->loads = ld;
	fh->nloads++;
}

static void fh_unlink_load(struct rp_fileh *fh, struct vm_load *ld)
{
	if (ld->prev)
		ld->prev->next = ld->next;
	else
		fh->loads = ld->next;
	if (ld->next)
		ld->next->prev = ld->prev;
	fh->nloads--;
}

/* Sets pages [first, first+n) to w (each checked). The slots exist already (the caller
 * stored non-zero words there), so only a store of 0 frees memory and none can fail. */
static void fh_set_run(struct rp_fileh *fh, uint64_t first, uint64_t n, uint64_t w)
{
	vm_page_check(w);
	for (uint64_t i = first; i < first + n; i++)
		(void)pagemap_set(&fh->pm, i, w);
}

void (*vm_pin_hook)(struct rp_fileh *fh);
void (*vm_load_finish_hook)(struct rp_fileh *fh);

struct vm_load *vm_load_start(struct rp_fileh *fh, uint64_t first, uint64_t n, unsigned how,
                              int *err)
{
	struct vm *vm = fh->vm;
	struct vm_load *ld;
	int e;

	assert(n > 0 && first + n <= fh->npages);
	ld = ram_meta_alloc(vm->pool, sizeof(*ld));
	if (!ld)
		goto nomem;
	ld->job.kind = VM_JOB_LOAD;
	ld->fh = fh;
	ld->first = first;
	ld->npages = n;
	ld->fault = (how & VM_LOAD_FAULT) != 0;
	for (uint64_t i = first; i < first + n; i++) {
		assert(pagemap_get(&fh->pm, i) == 0);
		if (pagemap_set(&fh->pm, i, pg_make_loading(ld)) < 0) {
			fh_set_run(fh, first, i - first, 0);
			ram_meta_free(vm->pool, ld);
			goto nomem;
		}
	}
	fh_link_load(fh, ld);
	/* The pages are claimed (LOADING): allocate them without the handle's lock, so that
	 * completions of other loads are not held up by the fallocate. Faults on them wait;
	 * an invalidate marks the load stale. */
	pthread_mutex_unlock(&fh->lock);
	const unsigned ram_flags = how & VM_LOAD_STAGED ? RAM_ALLOC_BY_WRITE : 0;

	ld->staged = (how & VM_LOAD_STAGED) != 0;
	e = ram_alloc(fh->ram, first * vm->psz, n * vm->psz, ram_flags);
	if (e == -ENOMEM)
		e = vm_reclaim_alloc(vm, fh->ram, first * vm->psz, n * vm->psz,
		                     (how & VM_LOAD_MAY_WAIT) != 0, ram_flags);
	else if (!e)
		vm_reclaim_check(vm);
	pthread_mutex_lock(&fh->lock);
	if (e) {
		fh_set_run(fh, first, n, 0);
		fh_unlink_load(fh, ld);
		/* Threads that faulted on the pages meanwhile fault again and meet the full pool
		 * themselves. Not for a fault: it parks, and its retry maps or poisons the page,
		 * which wakes them all; a wake now would only make it fault again. */
		if (!(how & VM_LOAD_FAULT))
			for (struct rp_mapping *m = fh->maps; m; m = m->next)
				vm_uffd_wake(vm, m, first, n);
		if (ld->waited || fh->nloads == 0)
			pthread_cond_broadcast(&fh->cv);
		vm_sigbus_loaded(vm);
		ram_meta_free(vm->pool, ld);
		*err = e == -ENOMEM ? vm_errf(e,
		                              "the RAM pool is full and nothing in it can be freed "
		                              "(ram_size %" PRIu64 " bytes, %" PRIu64
		                              " pages in use, %" PRIu64 " of them dirty)",
		                              vm->pool->capacity * vm->psz,
		                              ram_pool_charged(vm->pool),
		                              (uint64_t)atomic_load(&vm->ctr.dirty_pages))
		                    : e;
		return NULL;
	}
	atomic_fetch_add_explicit(&vm->ctr.loads, 1, memory_order_relaxed);
	return ld;
nomem:
	*err = vm_errf(-ENOMEM, "out of memory for page metadata");
	return NULL;
}

/* VM_LOAD_STAGED for a load of n pages that goes through a bounce page: a lone 4 KiB
 * page of a device store (vm_load_issue says why), a fault's or a pin's; else 0. */
static unsigned stage_flag(const struct rp_fileh *fh, uint64_t n)
{
	return n == 1 && fh->store->dev && fh->vm->psz == RAM_PAGE_4K ? VM_LOAD_STAGED : 0;
}

int vm_load_issue(struct vm_load *ld, struct rpio_queue *q)
{
	struct rp_fileh *fh = ld->fh;
	struct rp_store *st = fh->store;
	size_t psz = fh->vm->psz;
	uint64_t off = ld->first * psz;
	size_t len = ld->npages * psz;
	int r;

	/* A fault's own 4 KiB page (staged) is read into a bounce page that stays mapped:
	 * the faulting thread's in fault_mode=sigbus, a service thread's otherwise (given at
	 * issue, vm/service.c). vm_load_finish then copies it into the RAM handle (charged,
	 * not allocated yet: RAM_ALLOC_BY_WRITE) and maps it with one UFFDIO_COPY. A read
	 * straight into the alias would first fault the new page into the alias
	 * (get_user_pages, zeroing it, inside the submission) and later unmap it again: 6-10
	 * us dearer per fault in either mode (docs/benchmarks.md, "Fault service"). Without a
	 * bounce page, through the alias, and unmapped there after. */
	if (st->dev && !q && ld->staged && !(ld->src = vm_sigbus_bounce(len)))
		ld->staged = false;
	void *buf = ld->src ? ld->src : fh->ram->alias + off;

	if (st->dev && !q) {
		/* fault_mode=sigbus: the faulting thread reads its own page. */
		int64_t got = rpio_pread(st->dev, off, buf, len, fh->vm->spin_ns);

		vm_load_finish(ld, got < 0 ? (int)got : 0);
		return 0;
	}
	if (st->dev) {
		struct iovec iov = {.iov_base = buf, .iov_len = len};

		r = rpio_read(q, st->dev, off, &iov, 1, ld);
		if (r == -EBUSY)
			return r;
		if (r < 0)
			vm_load_finish(ld, r);
		return 0;
	}
	r = st->ops->load(st->ctx, off, buf, len, (rp_load_token *)ld);
	if (r == RP_LOAD_ASYNC)
		return 0;
	vm_load_finish(ld, r > 0 ? -EPROTO : r);
	return 0;
}

void rp_load_done(rp_load_token *tok, int err)
{
	struct vm_load *ld = (struct vm_load *)tok;

	/* Exactly once per load (the header says so). The flag turns a second call that
	 * races with the first into a no-op; a call after the load was finished cannot be
	 * detected, as the load is freed then. */
	if (!ld || atomic_exchange(&ld->done, 1))
		return;
	vm_load_finish(ld, err > 0 ? -err : err);
}

/* Why batched: the device wrote each page through the alias, which left it mapped there,
 * and a madvise(MADV_DONTNEED) per load costs a TLB shootdown of every CPU running the
 * process (its service threads included): rp_pinv of random pages ran at 39-43k pages/s
 * with a call per page, 49-56k batched, 54-60k with no call at all (same minutes; fio
 * io_uring depth 32 did 71k).
 * process_madvise takes up to VM_ZAP_BATCH ranges in one call; where the kernel refuses
 * it (before 6.13) each range gets its madvise, at flush time. The delay is harmless: the
 * alias's mappings are only a second view of pages the memfd holds (RSS counts them once
 * when flushed), and a page evicted meanwhile leaves the alias with its hole punch. */
void vm_alias_zap(struct rp_fileh *fh, uint64_t first, uint64_t n, bool flush)
{
	struct vm *vm = fh->vm;

	if (n) {
		char *p = fh->ram->alias + first * vm->psz;
		const size_t len = n * vm->psz;
		struct iovec *last = fh->nzap ? &fh->zap[fh->nzap - 1] : NULL;

		if (last && (char *)last->iov_base + last->iov_len == p)
			last->iov_len += len;
		else
			fh->zap[fh->nzap++] = (struct iovec){.iov_base = p, .iov_len = len};
		fh->zap_bytes += len;
	}
	if (!fh->nzap ||
	    (!flush && fh->nzap < VM_ZAP_BATCH && fh->zap_bytes < VM_ZAP_BYTES))
		return;
	if (vm->pidfd < 0 || syscall(__NR_process_madvise, vm->pidfd, fh->zap, (size_t)fh->nzap,
	                             MADV_DONTNEED, 0u) != (long)fh->zap_bytes)
		for (unsigned i = 0; i < fh->nzap; i++)
			(void)madvise(fh->zap[i].iov_base, fh->zap[i].iov_len, MADV_DONTNEED);
	fh->nzap = 0;
	fh->zap_bytes = 0;
}

/* A loaded run's pages become LOADED (or DIRTY for a write fault that asked), referenced,
 * and counted; load_unmark takes the counting back when the page could not be placed. */
static void load_mark_in(struct rp_fileh *fh, struct vm_load *ld)
{
	struct vm *vm = fh->vm;
	/* Read ahead: left unmapped until touched (vm/readahead.c), the marker kept.
	 * Otherwise a write fault that asked for it makes it dirty at once, mapped writable
	 * for the writer. Referenced either way: the CLOCK gives a new page one pass before
	 * it may go. */
	const bool dirty = ld->writer && !ld->ra;
	const uint64_t base = (dirty ? PG_DIRTY : PG_LOADED) | PG_REF | (ld->ra ? PG_RA : 0);

	for (uint64_t i = ld->first; i < ld->first + ld->npages; i++) {
		uint64_t w = (pagemap_get(&fh->pm, i) & PG_RA_MARK) | base;

		vm_page_check(w);
		(void)pagemap_set(&fh->pm, i, w);
	}
	if (dirty)
		vm_dirty_add(fh, (int64_t)ld->npages);
	atomic_fetch_add_explicit(&vm->ctr.pages_loaded, ld->npages, memory_order_relaxed);
	atomic_fetch_add_explicit(&vm->ctr.bytes_read, ld->npages * vm->psz, memory_order_relaxed);
}

static void load_unmark(struct rp_fileh *fh, struct vm_load *ld)
{
	struct vm *vm = fh->vm;

	if (ld->writer && !ld->ra)
		vm_dirty_add(fh, -(int64_t)ld->npages);
	atomic_fetch_sub_explicit(&vm->ctr.pages_loaded, ld->npages, memory_order_relaxed);
	atomic_fetch_sub_explicit(&vm->ctr.bytes_read, ld->npages * vm->psz, memory_order_relaxed);
}

/* A staged load's page, read into ld->src, goes into the RAM handle: with one ioctl that
 * allocates, fills and maps it in the mapping that faulted and wakes the threads waiting
 * there (UFFDIO_COPY), or, where that cannot be (the mapping went, a page is there
 * already), with pwrite(2), to be mapped as any other load's. Under fh->lock, so that the
 * mapping cannot go meanwhile. The copy wakes its faults, so the page is marked in
 * (state, counters) first: a woken thread that reads rp_stats or the page's state sees
 * it in, as it does when the wake-up comes after (one ioctl less per cold fault). *in
 * says whether the page is marked in (never on an error). */
static int load_place(struct vm_load *ld, bool *in)
{
	struct rp_fileh *fh = ld->fh;
	struct vm *vm = fh->vm;
	const size_t len = ld->npages * vm->psz;
	ssize_t w;

	*in = false;
	if (ld->dst && !vm->no_copy) {
		/* A pin's page nobody faulted on needs no wake-up (a fault whose message is
		 * read later finds the page mapped, and its CONTINUE wakes it); in sigbus mode
		 * the faulting thread is not asleep. */
		const bool wake = !vm->fault_self && (ld->fault || ld->faulted);

		load_mark_in(fh, ld);
		*in = true;
		if (vm_uffd_copy(vm, ld->dst, ld->first, ld->src, ld->writer == ld->dst, wake) == 0) {
			ld->copied = true;
			return 0;
		}
	}
	/* Marked in stays so unless the write fails too (a load error): taking it back and
	 * marking again would count a dirty page twice against dirty_limit's crossing. */
	w = pwrite(fh->ram->fd, ld->src, len, (off_t)(ld->first * vm->psz));
	if (w == (ssize_t)len)
		return 0;
	if (*in)
		load_unmark(fh, ld);
	*in = false;
	return w < 0 ? -errno : -EIO;
}

void vm_load_finish(struct vm_load *ld, int err)
{
	struct rp_fileh *fh = ld->fh;
	struct vm *vm = fh->vm;
	uint64_t first = ld->first, n = ld->npages;

	bool in = false;

	if (vm_load_finish_hook)
		vm_load_finish_hook(fh);
	pthread_mutex_lock(&fh->lock);
	/* Stale is read under the lock that vm_invalidate sets it under: read before, an
	 * invalidate between the two would be missed and the store's old bytes shown. A
	 * readahead window that failed is forgotten, not poisoned: the fault that wants one
	 * of its pages reads it again, and that load reports the error. */
	const bool empty = ld->stale || (err && ld->ra);

	if (ld->src && !empty && !err)
		err = load_place(ld, &in);
	if (empty || err) {
		fh_set_run(fh, first, n, empty ? 0 : pg_make_poisoned(err));
		ram_release(fh->ram, first * vm->psz, n * vm->psz);
		if (!empty)
			atomic_fetch_add_explicit(&vm->ctr.load_errors, 1, memory_order_relaxed);
		else if (ld->ra && !err) /* read ahead, then invalidated before any use */
			atomic_fetch_add_explicit(&vm->ctr.ra_wasted, n, memory_order_relaxed);
	} else {
		if (!in)
			load_mark_in(fh, ld);
		/* The device wrote the pages through the alias, which left them mapped there
		 * too: unmap them from it, so that the process's RSS counts a resident page once
		 * (in the mappings that use it), not twice. Writeout maps them back for as long
		 * as its requests need; the memfd keeps the pages either way. */
		if (!ld->staged)
			vm_alias_zap(fh, first, n, false);
	}
	/* Memory may be had either way: the pages were released, or they are in and can be
	 * evicted (a load waiting while the pool was full of pages in flight, a WILLNEED of
	 * the whole pool, may take them). */
	vm_reclaim_kick(vm);
	for (struct rp_mapping *m = fh->maps; m; m = m->next) {
		if (empty || ld->ra) {
			/* Stale or failed: they fault again and load afresh. Read ahead: the
			 * threads that came while it loaded fault again and map what they use. */
			if (empty || ld->faulted)
				vm_uffd_wake(vm, m, first, n);
		} else if (err)
			vm_uffd_poison(vm, m, first, n);
		else if (!(ld->copied && m == ld->dst)) /* the copy mapped it there, and woke */
			vm_uffd_continue(vm, m, first, n, m == ld->writer);
	}
	fh_unlink_load(fh, ld);
	if (fh->nloads == 0) /* quiet: what waits to leave the alias goes now */
		vm_alias_zap(fh, 0, 0, true);
	/* A pin waits on this load, or on the last of its own loads, or close on all. */
	bool wake = ld->waited || fh->nloads == 0;

	if (ld->pin_left && --*ld->pin_left == 0)
		wake = true;
	if (wake)
		pthread_cond_broadcast(&fh->cv);
	pthread_mutex_unlock(&fh->lock);
	vm_sigbus_loaded(vm);
	if (ld->bsvc)
		vm_service_bounce_put(ld->bsvc, ld->src);
	ram_meta_free(vm->pool, ld);
}

/* Fault-around, as the kernel's own (fault_around_bytes, 64 KiB by default): a minor
 * fault maps every resident page of the faulting page's aligned 64 KiB block into the
 * mapping too, so that touching them costs no fault. What a program pays for the pages
 * of a mapping that are in the pool but not mapped there (a new mapping of a warm file;
 * pages unmapped by the reclaim hand) then falls by up to 16x where they are dense, while
 * a lone page still costs one fault and 15 lookups.
 *   The neighbours are marked referenced, as a run of pages read ahead is when one of
 * them is touched. The kernel maps them "old" instead and learns of their use from the
 * accessed bit; ringpager sees a use only as a fault (vm/reclaim.c), so a page mapped
 * unreferenced could be used without the hand ever knowing: tried, the hot set of the
 * reclaim tests lost 10% of its hits. The price is one revolution of the hand for
 * neighbours never touched.
 *   Pages read ahead and not yet used (their first touch must be seen), LOADING, WRITING
 * and POISONED pages are left alone, and so is a page whose mapping's advice is RANDOM (the
 * kernel does no fault-around under MADV_RANDOM either). Tracked mappings get them
 * write-protected. fh->lock held. */
void vm_fault_around(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx)
{
	const uint64_t k = VM_FAULT_AROUND_BYTES / fh->vm->psz;
	uint64_t lo = idx & ~(k - 1), hi = lo + k, run = 0, n = 0;

	/* As the kernel, none where the program said its accesses are random. */
	if (k < 2 || vm_advice_at(m, idx) == RP_ADVICE_RANDOM)
		return;
	if (lo < m->first)
		lo = m->first;
	if (hi > m->first + m->npages)
		hi = m->first + m->npages;
	for (uint64_t p = lo; p <= hi; p++) {
		bool take = false;

		if (p < hi && p != idx) {
			uint64_t w = pagemap_get(&fh->pm, p);
			unsigned st = pg_state(w);

			take = (st == PG_LOADED || st == PG_DIRTY) && !(w & (PG_RA | PG_RA_MARK));
			if (take && !(w & PG_REF)) /* not counted in reference_hits: not a touch */
				(void)pagemap_set(&fh->pm, p, w | PG_REF);
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

	if (!deadline) /* a parked fault retried was counted when it came */
		atomic_fetch_add_explicit(&vm->ctr.faults, 1, memory_order_relaxed);
	pthread_mutex_lock(&fh->lock);
	uint64_t w = pagemap_get(&fh->pm, page);

	switch (pg_state(w)) {
	case PG_EMPTY: {
		/* A service thread must not block: a fault that finds the pool full parks (the
		 * kernel holds the thread) and is retried. A thread serving itself waits for
		 * memory in the load, as rp_pin does. Either reads a 4 KiB page of a device
		 * store through a bounce page (vm_load_issue says why). */
		const unsigned stage = stage_flag(fh, 1);
		struct vm_load *ld = vm_load_start(
		    fh, page, 1, (self ? VM_LOAD_MAY_WAIT : VM_LOAD_FAULT) | stage, &err);

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
			if (write && m->track)
				ld->writer = m;
			if (stage)
				ld->dst = m;
			vm_ra_miss(fh, m, page, ra);
			*own = ld;
		}
		break;
	}
	case PG_LOADING: { /* vm_load_finish maps it and wakes us */
		struct vm_load *l = pg_load(w);

		if (write && m->track && l->npages == 1 && !l->writer)
			l->writer = m;
		vm_ra_loading(fh, m, page, w, ra);
		out = VM_FAULT_WAIT;
		break;
	}
	case PG_POISONED:
		vm_uffd_poison(vm, m, page, 1);
		out = VM_FAULT_FAILED;
		break;
	default:
		atomic_fetch_add_explicit(&vm->ctr.minor_faults, 1, memory_order_relaxed);
		vm_ra_touch(fh, m, page, w, write, ra);
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
	struct vm_load_batch ra = {NULL, NULL};

	(void)fault_decide(vm, addr, write, deadline, false, &ld, &ra);
	if (ld) /* the faulting page first */
		vm_service_submit(vm, svc, ld);
	vm_load_batch_submit(vm, svc, &ra);
}

enum vm_fault_outcome vm_fault_self(struct vm *vm, uint64_t addr, bool write)
{
	struct vm_load *ld = NULL;
	struct vm_load_batch ra = {NULL, NULL};
	enum vm_fault_outcome out = fault_decide(vm, addr, write, 0, true, &ld, &ra);

	/* The windows go to the service threads first, so that they are read while this
	 * thread reads its own page (the read blocks it). */
	vm_load_batch_submit(vm, NULL, &ra);
	if (ld)
		(void)vm_load_issue(ld, NULL);
	return out;
}

void vm_load_batch_submit(struct vm *vm, struct vm_service *svc, struct vm_load_batch *b)
{
	if (!b->head)
		return;
	if (!svc) {
		vm_service_hand(vm, &b->head->job, &b->tail->job);
	} else {
		for (struct vm_load *ld = b->head, *next; ld; ld = next) {
			next = (struct vm_load *)ld->job.qnext;
			vm_service_submit(vm, svc, ld);
		}
	}
	b->head = b->tail = NULL;
}

/* ---------------------------------------------------------------- pins and WILLNEED */

/* Maps resident page p (word w) into m for a pin: referenced, and used if read ahead.
 * fh->lock held. */
static void pin_map(struct rp_fileh *fh, struct rp_mapping *m, uint64_t p, uint64_t w)
{
	if (w & PG_RA) {
		w &= ~PG_RA;
		(void)pagemap_set(&fh->pm, p, w);
		atomic_fetch_add_explicit(&fh->vm->ctr.ra_used, 1, memory_order_relaxed);
	}
	vm_page_referenced(fh, p, w);
	vm_uffd_continue(fh->vm, m, p, 1, false);
}

static int pins_record(struct rp_mapping *m, const uint64_t (*r)[2], size_t n);

struct pin_cursor {
	const uint64_t (*r)[2];
	size_t n, ri;
	uint64_t idx; /* page index within range ri */
	struct vm_load_batch batch; /* loads started and not yet handed over */
	unsigned nbatch;
	struct rp_mapping *map; /* pins: map resident pages into it */
	bool wait;              /* the caller waits (rp_pin): a load may wait for memory */
	unsigned *left;         /* ... for this many loads it started, counted by each finish */
	unsigned nflush;        /* batches handed over */
};

/* Loads are handed to the service threads in batches: one wake-up per batch rather than
 * per page, yet the first requests start before a long walk ends. The first
 * PIN_LOCAL_BATCHES go to the service thread of this CPU, the rest to the threads in turn
 * (vm_service_hand says why). rp_pinv of 32,768 random pages at depth 32 (six runs each,
 * alternating with the build before; the disk's speed moves every figure): every batch
 * local 62-76k pages/s, the rest spread 69-80k, every batch to the threads in turn
 * 73-88k; rpbench ringpager-pin (batches of 32, all local) 27-44k against 16-43k. */
#define PIN_BATCH 16
#define PIN_LOCAL_BATCHES 2

/* Hands the batch over. fh->lock held; dropped and retaken. */
static void pin_flush(struct rp_fileh *fh, struct pin_cursor *c)
{
	if (!c->nbatch)
		return;
	pthread_mutex_unlock(&fh->lock);
	if (c->nflush++ < PIN_LOCAL_BATCHES) {
		vm_load_batch_submit(fh->vm, NULL, &c->batch);
	} else {
		vm_service_hand_spread(fh->vm, &c->batch.head->job, &c->batch.tail->job);
		c->batch.head = c->batch.tail = NULL;
	}
	pthread_mutex_lock(&fh->lock);
	c->nbatch = 0;
}

static bool cursor_valid(const struct pin_cursor *c)
{
	return c->ri < c->n;
}

static uint64_t cursor_page(const struct pin_cursor *c)
{
	return c->r[c->ri][0] + c->idx;
}

static void cursor_skip(struct pin_cursor *c, uint64_t k)
{
	c->idx += k;
	while (c->ri < c->n && c->idx >= c->r[c->ri][1]) {
		c->idx -= c->r[c->ri][1];
		c->ri++;
	}
}

/* Starts a load for the run of EMPTY pages at the cursor (within its range, at most
 * VM_LOAD_MAX_BYTES) and adds it to the cursor's batch, handing the batch over when it is
 * full. fh->lock held (dropped and retaken then). Returns pages covered, or -errno. */
static int64_t pin_start_run(struct rp_fileh *fh, struct pin_cursor *c)
{
	struct vm *vm = fh->vm;
	uint64_t first = cursor_page(c);
	uint64_t left = c->r[c->ri][1] - c->idx;
	uint64_t max = VM_LOAD_MAX_BYTES / vm->psz ? VM_LOAD_MAX_BYTES / vm->psz : 1;
	uint64_t n = 1;
	int err = 0;

	while (n < left && n < max && pagemap_get(&fh->pm, first + n) == 0)
		n++;
	/* A lone 4 KiB page goes through a service thread's bounce page, as a fault's does:
	 * no fallocate here, no fault of the page into the alias in the submission, no
	 * unmapping after (rp_pinv of random pages on a fast device: 87-88k pages/s against
	 * 54-63k, alternating). A run is read in one request into the alias. */
	const unsigned stage = stage_flag(fh, n);
	/* Loads started and not handed over yet hold memory that a wait for memory could
	 * never see freed: hand them over first, then look at the page again. */
	const unsigned how = (c->wait && !c->nbatch ? VM_LOAD_MAY_WAIT : 0) | stage;
	struct vm_load *ld = vm_load_start(fh, first, n, how, &err);

	if (!ld && err == -ENOMEM && c->wait && c->nbatch) {
		pin_flush(fh, c);
		return 0;
	}
	if (!ld)
		return err;
	if (stage)
		ld->dst = c->map;
	if (c->left) {
		ld->pin_left = c->left;
		(*c->left)++;
	}
	vm_load_batch_add(&c->batch, ld);
	if (++c->nbatch >= PIN_BATCH)
		pin_flush(fh, c);
	return (int64_t)n;
}

/* Walks from the cursor while pages are resident. Starts loads of EMPTY runs when
 * `start`. Stops at the first page that is LOADING (returns 1), at the end (0), or at a
 * failure (-errno: -EIO for a poisoned page). Every load it started is handed over. */
static int pin_walk(struct rp_fileh *fh, struct pin_cursor *c, bool start, bool stop_at_loading)
{
	while (cursor_valid(c)) {
		uint64_t w = pagemap_get(&fh->pm, cursor_page(c));

		switch (pg_state(w)) {
		case PG_EMPTY:
			if (!start)
				return 1;
			int64_t k = pin_start_run(fh, c);

			if (k < 0)
				return (int)k;
			if (stop_at_loading)
				return 1;
			cursor_skip(c, (uint64_t)k);
			continue;
		case PG_LOADING:
			if (stop_at_loading)
				return 1;
			break;
		case PG_POISONED:
			return vm_errf(-EIO, "the page at store offset %" PRIu64 " failed to load: %s",
			               cursor_page(c) * fh->vm->psz, strerror(-pg_poison_err(w)));
		default:
			/* Resident before this walk: map it into the pin's mapping. Pages that
			 * loads bring in are mapped into every mapping by vm_load_finish. */
			if (c->map && start && !stop_at_loading)
				pin_map(fh, c->map, cursor_page(c), w);
			break;
		}
		cursor_skip(c, 1);
	}
	return 0;
}

static int pin_scan(struct rp_fileh *fh, struct pin_cursor *c, bool start, bool stop_at_loading)
{
	int r = pin_walk(fh, c, start, stop_at_loading);

	pin_flush(fh, c);
	return r;
}

/* Pins every page of the ranges if all are resident. fh->lock held. Returns 0, 1 when a
 * page is not resident (nothing pinned), or -EOVERFLOW. */
static int pin_take(struct rp_fileh *fh, const uint64_t (*r)[2], size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (uint64_t p = r[i][0]; p < r[i][0] + r[i][1]; p++) {
			uint64_t w = pagemap_get(&fh->pm, p);

			if (!pg_resident(w))
				return 1;
			if (pg_pins(w) == PG_PIN_MAX)
				return vm_errf(-EOVERFLOW,
				               "the page at store offset %" PRIu64
				               " is pinned %llu times already (the most)",
				               p * fh->vm->psz, PG_PIN_MAX);
		}
	for (size_t i = 0; i < n; i++)
		for (uint64_t p = r[i][0]; p < r[i][0] + r[i][1]; p++) {
			uint64_t w = pagemap_get(&fh->pm, p);

			(void)pagemap_set(&fh->pm, p, pg_with_pins(w, pg_pins(w) + 1));
		}
	return 0;
}

int vm_pin(struct rp_fileh *fh, struct rp_mapping *m, const uint64_t (*ranges)[2], size_t n,
           bool pin, bool wait)
{
	unsigned left = 0;
	struct pin_cursor c = {
	    .r = ranges, .n = n, .map = pin ? m : NULL, .wait = wait, .left = wait ? &left : NULL};
	uint64_t total = 0;
	int r;

	for (size_t i = 0; i < n; i++)
		total += ranges[i][1];
	if (pin && total > fh->vm->pool->capacity)
		return vm_errf(-ENOMEM,
		               "%" PRIu64 " pages to pin are more than the RAM pool holds (%" PRIu64
		               " pages)",
		               total, fh->vm->pool->capacity);
	pthread_mutex_lock(&fh->lock);
	const uint64_t unmaps = fh->unmaps;

	/* First pass: start every load, so that they all run at once. Then wait for the
	 * last of them: one wake-up, where waiting on each in turn woke this thread (and
	 * took the handle's lock from the service thread) once per completion. */
	r = pin_scan(fh, &c, true, false);
	while (left) /* also after a failure: the loads count on this frame */
		pthread_cond_wait(&fh->cv, &fh->lock);
	if (r < 0 || !wait)
		goto out;
	if (vm_pin_hook) {
		pthread_mutex_unlock(&fh->lock);
		vm_pin_hook(fh);
		pthread_mutex_lock(&fh->lock);
	}
	for (;;) {
		/* Wait pass: the cursor only moves forward over resident pages, so the whole
		 * wait costs one walk of the ranges plus one look per completion. */
		c = (struct pin_cursor){.r = ranges, .n = n, .wait = true};
		for (;;) {
			r = pin_scan(fh, &c, true, true);
			if (r <= 0)
				break;
			uint64_t w = pagemap_get(&fh->pm, cursor_page(&c));

			if (pg_state(w) == PG_LOADING) {
				pg_load(w)->waited = true;
				pthread_cond_wait(&fh->cv, &fh->lock);
			}
		}
		if (r < 0 || !pin)
			break;
		if ((r = pins_record(m, ranges, n)) < 0) /* room first: pin_take cannot undo */
			break;
		m->npins -= n;
		r = pin_take(fh, ranges, n);
		if (r == 0) {
			m->npins += n;
			/* Mapped, as promised: reclaim may have unmapped a page since the first
			 * pass (pinned now, it stays). A referenced page was mapped here by that
			 * pass or by its load, and stays so unless the reclaim hand unmapped
			 * pages since: its bit may then be a fault's in another mapping, which
			 * maps the page there only. So with no unmap since, only the pages not
			 * referenced (or read ahead) are mapped again; after one, all are. */
			const bool trust_ref = fh->unmaps == unmaps;

			for (size_t i = 0; i < n; i++)
				for (uint64_t p = ranges[i][0]; p < ranges[i][0] + ranges[i][1]; p++) {
					uint64_t w = pagemap_get(&fh->pm, p);

					if (trust_ref && (w & PG_REF) && !(w & PG_RA))
						continue;
					pin_map(fh, m, p, w);
				}
		}
		if (r <= 0)
			break;
		/* A page went away (invalidated or evicted) between the walk and the pin: walk
		 * again. */
	}
out:
	pthread_mutex_unlock(&fh->lock);
	return r;
}

static void pins_drop(struct rp_fileh *fh, uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++) {
		uint64_t w = pagemap_get(&fh->pm, p);

		assert(pg_pins(w) > 0);
		(void)pagemap_set(&fh->pm, p, pg_with_pins(w, pg_pins(w) - 1));
	}
}

int vm_unpin(struct rp_mapping *m, uint64_t first, uint64_t n)
{
	struct rp_fileh *fh = m->fh;

	pthread_mutex_lock(&fh->lock);
	for (size_t i = m->npins; i-- > 0;)
		if (m->pins[i][0] == first && m->pins[i][1] == n) {
			pins_drop(fh, first, n);
			m->pins[i][0] = m->pins[m->npins - 1][0];
			m->pins[i][1] = m->pins[m->npins - 1][1];
			m->npins--;
			pthread_mutex_unlock(&fh->lock);
			return 0;
		}
	pthread_mutex_unlock(&fh->lock);
	return vm_errf(-EINVAL,
	               "rp_unpin: no pin of this mapping covers exactly offset %" PRIu64
	               ", length %" PRIu64 " (relative to the mapping)",
	               (first - m->first) * fh->vm->psz, n * fh->vm->psz);
}

void vm_unpin_all(struct rp_mapping *m)
{
	for (size_t i = 0; i < m->npins; i++)
		pins_drop(m->fh, m->pins[i][0], m->pins[i][1]);
	m->npins = 0;
}

/* Records the pins of a successful vm_pin in m. fh->lock held. */
static int pins_record(struct rp_mapping *m, const uint64_t (*r)[2], size_t n)
{
	if (m->npins + n > m->cpins) {
		size_t c = m->cpins ? m->cpins : 8;

		while (c < m->npins + n)
			c *= 2;
		uint64_t(*a)[2] = realloc(m->pins, c * sizeof(*a));

		if (!a)
			return vm_errf(-ENOMEM, "out of memory");
		m->pins = a;
		m->cpins = c;
	}
	memcpy(m->pins + m->npins, r, n * sizeof(*r));
	m->npins += n;
	return 0;
}

/* ---------------------------------------------------------------- invalidation */

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

int vm_invalidate(struct rp_fileh *fh, uint64_t first, uint64_t n)
{
	struct vm *vm = fh->vm;
	struct vm_release rel = {0, 0};
	uint64_t idx, w;

	pthread_mutex_lock(&fh->lock);
	vm_wo_wait_idle(fh); /* a WRITING page's RAM is being read by the device */
	for (uint64_t i = first; pagemap_next(&fh->pm, i, &idx, &w) && idx < first + n;
	     i = idx + 1)
		if (pg_pins(w)) {
			pthread_mutex_unlock(&fh->lock);
			return vm_errf(-EBUSY, "rp_invalidate: the page at store offset %" PRIu64
			                       " is pinned",
			               idx * vm->psz);
		}
	/* Clear resident (dirty ones too) and poisoned pages, releasing their RAM in runs;
	 * mark loads in flight stale (their RAM is being written by the device:
	 * vm_load_finish releases it). */
	for (uint64_t i = first; pagemap_next(&fh->pm, i, &idx, &w) && idx < first + n;
	     i = idx + 1) {
		if (pg_state(w) == PG_LOADING) {
			pg_load(w)->stale = true;
			continue;
		}
		(void)pagemap_set(&fh->pm, idx, 0);
		if (pg_dirty(w))
			vm_dirty_add(fh, -1);
		if (w & PG_RA)
			atomic_fetch_add_explicit(&vm->ctr.ra_wasted, 1, memory_order_relaxed);
		vm_release_page(fh, &rel, idx);
	}
	vm_release_flush(fh, &rel);
	/* Drop what user mappings still show: poison markers (and, REMAP mode, the
	 * remapped ranges). The hole punch above unmapped the pages themselves. */
	for (struct rp_mapping *m = fh->maps; m; m = m->next)
		vm_uffd_unpoison(vm, m, first, n);
	pthread_mutex_unlock(&fh->lock);
	return 0;
}
