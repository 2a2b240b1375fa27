/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/load.c - loads of pages from stores: start, issue, finish. The state changes they
 * make are drawn in vm/page.h.
 *
 * A load covers a run of pages (one page for a fault; up to VM_LOAD_MAX_BYTES for a run
 * of absent pages that rp_pin or WILLNEED asked for). Its pages are LOADING from
 * vm_load_start until vm_load_finish, and every slot of the run points to it. It is
 * finished by whoever sees its completion: the service thread that reaped the I/O, or
 * the custom store's thread that called rp_load_done. Finishing maps the run into every
 * mapping of the handle with one UFFDIO_CONTINUE each, which wakes every thread that
 * faulted on any page of it; pin waiters are woken through the handle's condition
 * variable. Nobody polls. A staged load (read into a bounce page or a staging slot) is
 * put in place with UFFDIO_COPY instead, with the lock dropped (load_copy_out): a fault's
 * or a pin's lone page, or a run of a stream's window.
 *
 * Who starts loads, and decides which: the fault path (vm/fault.c), pins and WILLNEED
 * (vm/pin.c). Loads run on the service threads as jobs (vm/service.c), or, in
 * fault_mode=sigbus, on the faulting thread itself.
 */
#include "vm/load.h"
#include "vm/list.h"
#include "vm/reclaim.h"
#include "vm/uffd.h"
#include "vm/testing.h"
#include "compat/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void fh_link_load(struct rp_fileh *fh, struct vm_load *ld)
{
	VM_LIST_PUSH(fh->loads, ld);
	fh->nloads++;
}

static void fh_unlink_load(struct rp_fileh *fh, struct vm_load *ld)
{
	VM_LIST_REMOVE(fh->loads, ld);
	fh->nloads--;
}

/* Sets pages [first, first+n) to w (each checked). The slots exist already (the caller
 * stored non-zero words there), so only a store of 0 frees memory and none can fail. */
static void fh_set_run(struct rp_fileh *fh, uint64_t first, uint64_t n, uint64_t w)
{
	for (uint64_t i = first; i < first + n; i++)
		(void)vm_page_set(fh, i, w);
}

void (*vm_pin_hook)(struct rp_fileh *fh);
void (*vm_load_finish_hook)(struct rp_fileh *fh);
void (*vm_copy_out_hook)(struct rp_fileh *fh, uint64_t page);

/* Gives a staged load's buffer back to the service thread it came from. */
static void load_staging_put(struct vm_load *ld)
{
	if (ld->npages == 1)
		vm_service_bounce_put(ld->bsvc, ld->src);
	else
		vm_service_rstage_put(ld->bsvc, ld->src);
}

/* A load as a service thread's job. A staged load is read into one of the thread's
 * bounce pages (a lone page) or staging slots (a run of a stream's window; it waits for
 * one while all are held by runs in flight); where there is none, into the alias like any
 * other load. */
static int load_job_issue(struct vm_job *job, struct vm_service *s)
{
	struct vm_load *ld = (struct vm_load *)job;

	if (ld->staged && !ld->src) {
		if (ld->npages == 1)
			ld->src = vm_service_bounce_get(s);
		else if (ld->npages * ld->fh->vm->psz <= VM_RSTAGE_BYTES) {
			ld->src = vm_service_rstage_get(s);
			if (!ld->src && vm_service_rstage_held(s))
				return -EAGAIN; /* issued when a run in flight gives its slot back */
		}
		if (ld->src)
			ld->bsvc = s;
		else
			ld->staged = false;
	}
	int r = vm_load_issue(ld, vm_service_queue(s));

	if (r == -EBUSY && ld->bsvc) { /* tried again later, with a page then */
		load_staging_put(ld);
		ld->src = NULL;
		ld->bsvc = NULL;
	}
	return r;
}

static void load_job_complete(struct vm_job *job, int err)
{
	vm_load_finish((struct vm_load *)job, err);
}

static const struct vm_job_ops load_ops = {load_job_issue, load_job_complete};

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
	ld->job.ops = &load_ops;
	ld->fh = fh;
	ld->first = first;
	ld->npages = n;
	ld->fault = (how & VM_LOAD_FAULT) != 0;
	ld->zero_from = fh->zero_from;
	ld->zero = first * vm->psz >= fh->zero_from;
	for (uint64_t i = first; i < first + n; i++) {
		assert(pagemap_get(&fh->pm, i) == 0);
		if (vm_page_set(fh, i, pg_make_loading(ld)) < 0) {
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

	ld->staged = ld->by_write = (how & VM_LOAD_STAGED) != 0;
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
		vm_loads_ended(vm);
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
	if (how & VM_LOAD_FAULT)
		vm_load_waited(ld);
	if (!ld->zero) {
		atomic_fetch_add_explicit(&vm->ctr.loads, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&fh->n_loads, 1, memory_order_relaxed);
	}
	return ld;
nomem:
	*err = vm_errf(-ENOMEM, "out of memory for page metadata");
	return NULL;
}

void vm_load_waited(struct vm_load *ld)
{
	if (!ld->zero && ld->fh->store->dev) {
		ld->waited_read = true;
		atomic_store_explicit(&ld->job.urgent, true, memory_order_relaxed);
		ld->job.spin = vm_spin_pick(&ld->fh->vm->spin);
	}
}

/* VM_LOAD_STAGED for a load of n pages that goes through a bounce page: a lone 4 KiB
 * page of a device store (vm_load_issue says why), a fault's or a pin's; else 0. */
unsigned vm_load_stage_flag(const struct rp_fileh *fh, uint64_t n)
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
	if (st->dev && !q && ld->staged && !ld->src && !(ld->src = vm_load_bounce_self(len)))
		ld->staged = false;
	void *buf = ld->src ? ld->src : fh->ram->alias + off;

	if (ld->zero) {
		/* Past the store's end, or past what this handle cut off: zeros, without I/O.
		 * Pages charged to be written (staged) with no bounce page are allocated here:
		 * nothing else will. */
		r = 0;
		if (ld->src && !ld->filled)
			memset(ld->src, 0, len);
		else if (!ld->src && ld->by_write &&
		         fallocate(fh->ram->fd, 0, (off_t)off, (off_t)len) < 0)
			r = -errno;
		vm_load_finish(ld, r);
		return 0;
	}
	if (ld->waited_read)
		ld->issued_ns = vm_now_ns();
	if (st->dev && !q) {
		/* fault_mode=sigbus: the faulting thread reads its own page. */
		int64_t got = rpio_pread(st->dev, off, buf, len,
		                         ld->job.spin ? fh->vm->spin_ns : 0);

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

/* A loaded run's pages become LOADED (or DIRTY for a write fault that asked), referenced,
 * and counted. */
static void load_mark_in(struct rp_fileh *fh, struct vm_load *ld)
{
	struct vm *vm = fh->vm;
	/* Read ahead: left unmapped until touched (vm/readahead.c), the marker kept.
	 * Otherwise a write fault that asked for it makes it dirty at once, mapped writable
	 * for the writer. Referenced either way: the CLOCK gives a new page one pass before
	 * it may go. */
	const bool dirty = (ld->writer || ld->filled) && !ld->ra;
	const uint64_t base = (dirty ? PG_DIRTY : PG_LOADED) | PG_REF | (ld->ra ? PG_RA : 0);

	for (uint64_t i = ld->first; i < ld->first + ld->npages; i++) {
		uint64_t w = (pagemap_get(&fh->pm, i) & PG_RA_MARK) | base;

		(void)vm_page_set(fh, i, w);
	}
	if (dirty)
		vm_dirty_add(fh, (int64_t)ld->npages);
	if (ld->zero)
		return;
	atomic_fetch_add_explicit(&vm->ctr.pages_loaded, ld->npages, memory_order_relaxed);
	atomic_fetch_add_explicit(&fh->n_pages_loaded, ld->npages, memory_order_relaxed);
	atomic_fetch_add_explicit(&vm->ctr.bytes_read, ld->npages * vm->psz, memory_order_relaxed);
}

/* The page of ld's run that carries the readahead marker, or UINT64_MAX. fh->lock held:
 * a fault on the marker while the run loads clears it (vm/fault.c, ra_marker). */
static uint64_t load_marker(const struct vm_load *ld)
{
	for (uint64_t p = ld->first; ld->ra && p < ld->first + ld->npages; p++)
		if (pagemap_get(&ld->fh->pm, p) & PG_RA_MARK)
			return p;
	return UINT64_MAX;
}

/* A staged load into ld->dst, each stretch of pages around the marker `mark` with one
 * UFFDIO_COPY (which does not wake), the marker's page with pwrite(2), since it stays
 * unmapped until its touch (vm/readahead.c). 0 when every page is in the memfd and all
 * but the marker mapped. */
static int load_copy(struct vm_load *ld, uint64_t mark, bool writable)
{
	struct rp_fileh *fh = ld->fh;
	struct vm *vm = fh->vm;
	const uint64_t end = ld->first + ld->npages;

	for (uint64_t p = ld->first, q; p < end; p = q) {
		const char *src = (const char *)ld->src + (p - ld->first) * vm->psz;

		if (p == mark) {
			q = p + 1;
			if (pwrite(fh->ram->fd, src, vm->psz, (off_t)(p * vm->psz)) != (ssize_t)vm->psz)
				return -EIO;
			continue;
		}
		q = mark > p && mark < end ? mark : end;
		const int r = vm_uffd_copy(vm, ld->dst, p, q - p, src, writable, false);

		if (r)
			return r;
	}
	return 0;
}

/* A staged load's pages, read into ld->src, go into the RAM handle with pwrite(2), to be
 * mapped as any other load's: where the copy into ld->dst cannot be (no such mapping, a
 * page there already, VM_FORCE_PWRITE). fh->lock held. The pages are not marked in. */
static int load_place(struct vm_load *ld)
{
	struct rp_fileh *fh = ld->fh;
	const size_t len = ld->npages * fh->vm->psz;
	const ssize_t w = pwrite(fh->ram->fd, ld->src, len, (off_t)(ld->first * fh->vm->psz));

	return w == (ssize_t)len ? 0 : w < 0 ? -errno : -EIO;
}

/* A pin's pages, just copied into ld->dst, read once there (ld->touch), one byte each:
 * the thread that pinned them reads them next, and where the host shadows the guest's
 * page tables (shadow paging, nested virtualization) the first access to a newly mapped
 * page is an exit to the host, 5-6 us on the development VM. Made here, on the service
 * threads that copy a pin's pages (both CPUs at once), rather than one page after another
 * on the pinning thread (docs/benchmarks.md, "A pin's pages read where they are copied
 * in"); on bare metal it costs a TLB and a cache miss. The pages are LOADING and ld->dst
 * copying: nothing unmaps them meanwhile (rp_unmap and rp_invalidate wait), so the read
 * cannot fault. */
static void load_touch(const struct vm_load *ld)
{
	const size_t psz = ld->fh->vm->psz;
	uint64_t start, len;

	if (!vm_map_overlap(ld->dst, ld->first, ld->npages, &start, &len, psz))
		return;
	for (uint64_t a = start; a < start + len; a += psz)
		(void)*(const volatile char *)(uintptr_t)a;
}

/* A staged load's pages go into the mapping that asked for them (ld->dst) with fh->lock
 * dropped: a fault's or a pin's lone page, or a run of a stream's window. The UFFDIO_COPY
 * is the dearest step of a finish (5-12 us a lone page here; 0.3-3 ms a 1 MiB run, the
 * pages new to the host), and under the lock it held up every other finish and fault of
 * the handle (docs/benchmarks.md, "Copies outside the lock", "Runs copied outside the
 * lock"). The pages stay LOADING meanwhile, so nothing else maps, evicts, pins or
 * releases them; rp_unmap waits while m->copying, rp_invalidate while a load in its range
 * is copying, a writeout for the copies under way when it was called. The copy does not
 * wake: vm_load_finish does, after marking the pages in. A write fault that came
 * meanwhile gets a lone page writable; a write that a collection saw meanwhile makes the
 * load's pages dirty once in (`written`). fh->lock held on entry and on return. Whether
 * the pages went in. */
static bool load_copy_out(struct vm_load *ld)
{
	struct rp_fileh *fh = ld->fh;
	struct vm *vm = fh->vm;
	struct rp_mapping *m = ld->dst;
	const bool writable = ld->writer == m;
	const uint64_t mark = load_marker(ld);
	int r;

	ld->copying = true;
	ld->copy_seq = ++fh->copy_seq;
	m->copying++;
	pthread_mutex_unlock(&fh->lock);
	r = load_copy(ld, mark, writable);
	if (vm_copy_out_hook)
		vm_copy_out_hook(fh, ld->first);
	if (!r && ld->touch && mark == UINT64_MAX)
		load_touch(ld);
	pthread_mutex_lock(&fh->lock);
	ld->copying = false;
	m->copying--;
	if (fh->copy_waiters)
		pthread_cond_broadcast(&fh->cv);
	if (r)
		return false;
	if (ld->writer == m && !writable)
		vm_uffd_protect(vm, m, ld->first, ld->npages, false);
	return true;
}

/* A window read ahead for a proven stream of m (ld->eager) is mapped there at once, as
 * the pages it maps for the touch that uses them would be, but a window's run at a time,
 * not VM_RA_CHUNK_BYTES per fault: its pages count as used now. The marker stays
 * unmapped: its touch starts the next window. fh->lock held. */
static void load_map_eager(struct rp_fileh *fh, struct rp_mapping *m, struct vm_load *ld)
{
	struct vm *vm = fh->vm;
	const uint64_t end = ld->first + ld->npages;
	const bool mapped = ld->copied && ld->dst == m; /* by load_copy, markers apart */
	uint64_t run = 0, k = 0, used = 0;

	for (uint64_t p = ld->first; p <= end; p++) {
		const uint64_t w = p < end ? pagemap_get(&fh->pm, p) : 0;

		if ((w & PG_RA) && !(w & PG_RA_MARK) && pg_resident(w)) {
			(void)vm_page_set(fh, p, (w & ~PG_RA) | PG_REF);
			if (!k)
				run = p;
			k++;
		} else if (k) {
			if (!mapped)
				vm_uffd_continue(vm, m, run, k, false);
			used += k;
			k = 0;
		}
	}
	if (!used)
		return;
	atomic_fetch_add_explicit(&vm->ctr.ra_used, used, memory_order_relaxed);
	if (mapped)
		atomic_fetch_add_explicit(&vm->ctr.ra_copied, used, memory_order_relaxed);
	vm_ra_used(&m->ra, m->ra.prev, used);
}

void vm_load_wait_copies(struct rp_fileh *fh)
{
	/* Only the copies under way now: a write before this call can only be to their pages,
	 * and later ones could follow each other for as long as a scan runs. */
	const uint64_t upto = fh->copy_seq;
	struct vm_load *ld = fh->loads;

	while (ld) {
		if (!ld->copying || ld->copy_seq > upto) {
			ld = ld->next;
			continue;
		}
		fh->copy_waiters++;
		pthread_cond_wait(&fh->cv, &fh->lock);
		fh->copy_waiters--;
		ld = fh->loads; /* the list may have changed meanwhile: from its start again */
	}
}

void vm_load_finish(struct vm_load *ld, int err)
{
	struct rp_fileh *fh = ld->fh;
	struct vm *vm = fh->vm;
	uint64_t first = ld->first, n = ld->npages;

	bool in = false;

	if (ld->issued_ns && !err)
		vm_spin_record(&vm->spin, ld->job.spin, vm_now_ns() - ld->issued_ns);
	if (vm_load_finish_hook)
		vm_load_finish_hook(fh);
	pthread_mutex_lock(&fh->lock);
	/* Stale is read under the lock that vm_invalidate sets it under: read before, an
	 * invalidate between the two would be missed and the store's old bytes shown. A
	 * readahead window that failed is forgotten, not poisoned: the fault that wants one
	 * of its pages reads it again, and that load reports the error. */
	bool empty = ld->stale || (err && ld->ra);

	if (!empty && !err && !ld->zero && ld->zero_from < (first + n) * vm->psz) {
		/* Read across where this handle's store ends: what lies past it is zeros. */
		const uint64_t off = first * vm->psz, from = ld->zero_from > off ? ld->zero_from : off;

		memset(ld->src ? (char *)ld->src + (from - off) : fh->ram->alias + from, 0,
		       (first + n) * vm->psz - from);
	}
	if (ld->src && !empty && !err) {
		if (ld->dst && !vm->no_copy && load_copy_out(ld)) {
			ld->copied = true;
			empty = ld->stale;
			if (!empty) {
				load_mark_in(fh, ld);
				in = true;
				for (uint64_t p = first; ld->written && p < first + n; p++)
					(void)vm_dirty_mark(fh, p);
				/* A window's faults are woken below, in every mapping. */
				if (!ld->ra && !vm->fault_self && (ld->fault || ld->faulted))
					(void)vm_map_overlap(ld->dst, first, n, &ld->wake_at, &ld->wake_len,
					                     vm->psz);
			}
		} else {
			err = load_place(ld);
		}
	}
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
		if (ld->filled)
			(*ld->fill_count)++;
		/* The device wrote the pages through the alias, which left them mapped there
		 * too: unmap them from it, so that the process's RSS counts a resident page once
		 * (in the mappings that use it), not twice. Writeout maps them back for as long
		 * as its requests need, and rp_read/rp_write map those they copy (vm/pin.c);
		 * the memfd keeps the pages either way. */
		if (!ld->staged)
			vm_alias_zap(fh, first, n, false);
	}
	/* Memory may be had either way: the pages were released, or they are in and can be
	 * evicted (a load waiting while the pool was full of pages in flight, a WILLNEED of
	 * the whole pool, may take them). */
	vm_reclaim_kick(vm);
	for (struct rp_mapping *m = fh->maps; m; m = m->next) {
		if (!empty && !err && ld->eager == m)
			load_map_eager(fh, m, ld);
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
	if (ld->wake_len)
		vm_uffd_wake_addr(vm, ld->wake_at, ld->wake_len);
	vm_loads_ended(vm);
	if (ld->bsvc)
		load_staging_put(ld);
	ram_meta_free(vm->pool, ld);
}

void vm_load_batch_submit(struct vm *vm, struct vm_service *svc, struct vm_load_batch *b)
{
	struct vm_job *drop = b->drop;

	b->drop = NULL;
	if (b->head && !svc) {
		vm_service_hand(vm, &b->head->job, &b->tail->job);
	} else if (b->head) {
		for (struct vm_load *ld = b->head, *next; ld; ld = next) {
			next = (struct vm_load *)ld->job.qnext;
			vm_service_submit(vm, svc, &ld->job);
		}
	}
	b->head = b->tail = NULL;
	if (drop) /* after the loads, so that their reads start first */
		vm_service_submit(vm, svc, drop);
}

/* ---------------------------------------------------------------- fault_mode=sigbus */

/* Each faulting thread's bounce page (vm_load_bounce_self), unmapped when the thread
 * ends. */
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;
static pthread_key_t bounce_key;
static _Thread_local void *bounce;

static void bounce_free(void *p)
{
	munmap(p, RAM_PAGE_4K);
}

static void bounce_init(void)
{
	(void)pthread_key_create(&bounce_key, bounce_free);
}

void vm_load_bounce_init(void)
{
	(void)pthread_once(&bounce_once, bounce_init);
}

void *vm_load_bounce_self(size_t len)
{
	if (len > RAM_PAGE_4K)
		return NULL;
	if (!bounce) {
		/* mmap, not malloc: this runs in the signal handler. */
		void *p = mmap(NULL, RAM_PAGE_4K, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		if (p == MAP_FAILED)
			return NULL;
		bounce = p;
		(void)pthread_setspecific(bounce_key, p);
	}
	return bounce;
}

void vm_loads_ended_slow(struct vm *vm)
{
	atomic_fetch_add(&vm->load_gen, 1);
	if (atomic_load(&vm->load_waiters))
		(void)syscall(SYS_futex, (uint32_t *)&vm->load_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
		              NULL, 0);
}
