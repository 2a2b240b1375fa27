/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/fileh.c - file handles and user mappings.
 *
 * A user mapping is one MAP_SHARED mmap of a range of the handle's RAM memfd, registered
 * with the engine's userfaultfd: one kernel VMA whatever is resident (no
 * vm.max_map_count ceiling), and two mappings of one range alias each other because they
 * map the same memfd pages. The engine keeps its mappings sorted by address so that a
 * fault's address finds its mapping by binary search.
 */
#include "vm/fileh.h"
#include "vm/dirty.h"
#include "vm/load.h"
#include "vm/pin.h"
#include "vm/readahead.h"
#include "vm/reclaim.h"
#include "vm/uffd.h"
#include "vm/writeout.h"
#include "vm/vm.h"
#include "vm/list.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>

int vm_fileh_open(struct rp_store *st, struct rp_fileh **out)
{
	struct vm *vm = st->vm;
	struct rp_fileh *fh = calloc(1, sizeof(*fh));
	char msg[RAM_MSG_LEN];
	int err;

	if (!fh)
		return vm_errf(-ENOMEM, "out of memory");
	err = ram_handle_open(vm->pool, st->size ? st->size : vm->psz, &fh->ram, msg, sizeof(msg));
	if (err) {
		free(fh);
		return vm_errf(err, "rp_fileh_open: %s", msg);
	}
	fh->vm = vm;
	fh->store = st;
	fh->size = fh->disk_size = fh->zero_from = st->size;
	fh->npages = (st->size + vm->psz - 1) / vm->psz;
	pthread_mutex_init(&fh->lock, NULL);
	pthread_cond_init(&fh->cv, NULL);
	pagemap_init(&fh->pm, vm->pool, fh->npages ? fh->npages : 1);
	pagemap_init(&fh->dirty, vm->pool, fh->npages ? fh->npages : 1);

	pthread_mutex_lock(&vm->objs_lock);
	fh->id = vm->next_fh_id++;
	st->nfileh++;
	VM_LIST_PUSH(vm->filehs, fh);
	pthread_mutex_unlock(&vm->objs_lock);
	*out = fh;
	return 0;
}

int vm_fileh_close(struct rp_fileh *fh)
{
	struct vm *vm = fh->vm;

	pthread_mutex_lock(&vm->objs_lock);
	if (fh->nmaps) {
		unsigned n = fh->nmaps;

		pthread_mutex_unlock(&vm->objs_lock);
		return vm_errf(-EBUSY, "rp_fileh_close: %u mapping%s of the handle still live", n,
		               n == 1 ? " is" : "s are");
	}
	fh->store->nfileh--;
	VM_LIST_REMOVE(vm->filehs, fh);
	pthread_mutex_unlock(&vm->objs_lock);
	vm_reclaim_forget(vm); /* out of the list: no sweep can find it any more */

	/* Loads of this handle may still be in flight (WILLNEED), and writeouts (async):
	 * wait for them. Dirty pages are dropped with the rest. */
	pthread_mutex_lock(&fh->lock);
	while (fh->nloads || fh->ndrops)
		pthread_cond_wait(&fh->cv, &fh->lock);
	vm_alias_zap(fh, 0, 0, true); /* nothing may stay for an alias about to go */
	vm_wo_wait_idle(fh);
	vm_dirty_add(fh, -(int64_t)fh->ndirty);
	pthread_mutex_unlock(&fh->lock);
	pagemap_fini(&fh->pm);
	pagemap_fini(&fh->dirty);
	ram_handle_close(fh->ram);
	pthread_mutex_destroy(&fh->lock);
	pthread_cond_destroy(&fh->cv);
	free(fh);
	return 0;
}

int vm_map(struct rp_fileh *fh, uint64_t off, size_t len, int prot, struct rp_mapping **out)
{
	struct vm *vm = fh->vm;
	struct rp_mapping *m = calloc(1, sizeof(*m));
	void *addr;
	int err;

	if ((prot & PROT_WRITE) && vm->dirty == VM_DIRTY_NONE) {
		free(m);
		return vm_errf(-EOPNOTSUPP, "rp_map: PROT_WRITE: this kernel cannot track writes to "
		                            "mappings (see rp_engine_describe); map PROT_READ");
	}
	if (!m)
		return vm_errf(-ENOMEM, "out of memory");
	err = ram_map(fh->ram, off, len, prot, NULL, &addr);
	if (err) {
		free(m);
		return vm_errf(err, "rp_map: mmap of %zu bytes: %s", len, strerror(-err));
	}
	m->fh = fh;
	m->addr = addr;
	vm_ra_init(&m->ra);
	m->len = len;
	m->off = off;
	m->first = off / vm->psz;
	m->npages = len / vm->psz;
	m->prot = prot;
	m->track = (prot & PROT_WRITE) != 0;
	/* A child process would see the memfd without the fault service: refuse it the
	 * mapping rather than let it read pages that are not loaded. */
	(void)madvise(addr, len, MADV_DONTFORK);
	err = vm_uffd_register(vm, addr, len, m->track);
	if (err) {
		munmap(addr, len);
		free(m);
		return vm_errf(err, "rp_map: UFFDIO_REGISTER: %s", strerror(-err));
	}
	pthread_rwlock_wrlock(&vm->maps_lock);
	err = vm_addr_insert(vm, m);
	pthread_rwlock_unlock(&vm->maps_lock);
	if (err) {
		vm_uffd_unregister(vm, addr, len);
		munmap(addr, len);
		free(m);
		return vm_errf(err, "out of memory");
	}
	pthread_mutex_lock(&vm->objs_lock);
	fh->nmaps++;
	pthread_mutex_unlock(&vm->objs_lock);
	/* From here on, loads of the handle map their pages into m as well. Pages that were
	 * resident before fault in as minor faults. */
	pthread_mutex_lock(&fh->lock);
	VM_LIST_PUSH(fh->maps, m);
	pthread_mutex_unlock(&fh->lock);
	*out = m;
	return 0;
}

int vm_unmap(struct rp_mapping *m)
{
	struct rp_fileh *fh = m->fh;
	struct vm *vm = fh->vm;

	/* A thread still using the mapping now is the application's bug; make it fault
	 * (SIGSEGV) rather than lose data: first no more writes, so that the collection below
	 * sees every write made through the mapping (under wp_async they live in its page
	 * tables only); then no access at all, so that nothing touches the memfd behind the
	 * engine's back once the range is unregistered. One VMA each time: no split. */
	if (m->track)
		(void)mprotect(m->addr, m->len, PROT_READ);
	pthread_rwlock_wrlock(&vm->maps_lock);
	vm_addr_remove(vm, m);
	pthread_rwlock_unlock(&vm->maps_lock);
	pthread_mutex_lock(&fh->lock);
	/* A load copying its page into the mapping (vm/load.c) finishes first: the range is
	 * not to be unregistered and unmapped under its copy. */
	fh->copy_waiters++;
	while (m->copying)
		pthread_cond_wait(&fh->cv, &fh->lock);
	fh->copy_waiters--;
	/* Writes through this mapping not collected yet become DIRTY states now: the page
	 * tables that remember them go with the mapping. */
	vm_dirty_collect(fh, m);
	(void)mprotect(m->addr, m->len, PROT_NONE);
	for (struct vm_load *ld = fh->loads; ld; ld = ld->next) {
		if (ld->writer == m)
			ld->writer = NULL;
		if (ld->dst == m)
			ld->dst = NULL;
		if (ld->eager == m)
			ld->eager = NULL;
	}
	VM_LIST_REMOVE(fh->maps, m);
	/* Pins taken through this mapping go with it, so the pages can be reclaimed. */
	vm_unpin_all(m);
	pthread_mutex_unlock(&fh->lock);
	vm_uffd_unregister(vm, m->addr, m->len);
	munmap(m->addr, m->len);
	pthread_mutex_lock(&vm->objs_lock);
	fh->nmaps--;
	pthread_mutex_unlock(&vm->objs_lock);
	free(m->pins);
	free(m->pin_slots);
	free(m->advice.r);
	free(m);
	return 0;
}

int vm_invalidatev(struct rp_fileh *fh, const uint64_t (*r)[2], size_t nr)
{
	struct vm *vm = fh->vm;
	struct vm_release rel = {0, 0};
	uint64_t idx, w;

	pthread_mutex_lock(&fh->lock);
again:
	vm_wo_wait_idle(fh); /* a WRITING page's RAM is being read by the device */
	for (size_t k = 0; k < nr; k++)
		for (uint64_t i = r[k][0]; pagemap_next(&fh->pm, i, &idx, &w) && idx < r[k][0] + r[k][1];
		     i = idx + 1) {
			if (pg_state(w) == PG_LOADING && pg_load(w)->copying) {
				/* Its page is going into a mapping with fh->lock dropped (vm/load.c):
				 * it finishes first, and is then released below like any other. */
				fh->copy_waiters++;
				pthread_cond_wait(&fh->cv, &fh->lock);
				fh->copy_waiters--;
				goto again;
			}
			if (pg_pins(w)) {
				pthread_mutex_unlock(&fh->lock);
				return vm_errf(-EBUSY, "rp_invalidate: the page at store offset %" PRIu64
				                       " is pinned",
				               idx * vm->psz);
			}
		}
	/* Clear resident (dirty ones too) and poisoned pages, releasing their RAM in runs;
	 * mark loads in flight stale (their RAM is being written by the device:
	 * vm_load_finish releases it). */
	for (size_t k = 0; k < nr; k++) {
		for (uint64_t i = r[k][0]; pagemap_next(&fh->pm, i, &idx, &w) && idx < r[k][0] + r[k][1];
		     i = idx + 1) {
			if (pg_state(w) == PG_LOADING) {
				pg_load(w)->stale = true;
				continue;
			}
			(void)vm_page_set(fh, idx, 0);
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
			vm_uffd_unpoison(vm, m, r[k][0], r[k][1]);
	}
	pthread_mutex_unlock(&fh->lock);
	return 0;
}

int vm_fileh_dirty(struct rp_fileh *fh, uint64_t *pages)
{
	pthread_mutex_lock(&fh->lock);
	vm_load_wait_copies(fh); /* a page written while being copied counts */
	vm_dirty_collect(fh, NULL);
	*pages = fh->ndirty;
	pthread_mutex_unlock(&fh->lock);
	return 0;
}

/* ---------------------------------------------------------------- size */

/* Waits until no load of fh is in flight and no writeout runs or waits, and flushes the
 * alias unmapping, so that the RAM handle may change (its alias move). fh->lock held
 * (dropped while waiting). */
static void quiesce(struct rp_fileh *fh)
{
	for (;;) {
		vm_wo_wait_idle(fh);
		if (!fh->nloads && !fh->copies)
			break;
		pthread_cond_wait(&fh->cv, &fh->lock);
	}
	vm_alias_zap(fh, 0, 0, true);
}

/* Sets the handle's size. Pages past the new end are dropped, dirty ones too, and the
 * tail of a last page cut in the middle reads zeros; grown pages are zeros, never read.
 * fh->lock held, quiesced. 0, -EBUSY (a page past the new end is pinned), -ENOMEM. */
static int set_size(struct rp_fileh *fh, uint64_t size, const char *fn)
{
	struct vm *vm = fh->vm;
	const size_t psz = vm->psz;
	const uint64_t npages = (size + psz - 1) / psz;
	uint64_t idx, w;
	int err;

	if (npages < fh->npages) {
		for (uint64_t i = npages; pagemap_next(&fh->pm, i, &idx, &w); i = idx + 1)
			if (pg_pins(w))
				return vm_errf(-EBUSY, "%s: the page at offset %" PRIu64
				                       " is pinned; it would be past the end",
				               fn, idx * psz);
		for (uint64_t i = npages; pagemap_next(&fh->pm, i, &idx, &w); i = idx + 1) {
			(void)vm_page_set(fh, idx, 0);
			if (pg_dirty(w))
				vm_dirty_add(fh, -1);
			if (w & PG_RA)
				atomic_fetch_add_explicit(&vm->ctr.ra_wasted, 1, memory_order_relaxed);
		}
		for (struct rp_mapping *m = fh->maps; m; m = m->next)
			vm_uffd_unpoison(vm, m, npages, fh->npages - npages);
	}
	if (size < fh->size && size % psz && pg_resident(pagemap_get(&fh->pm, size / psz))) {
		/* The last page's tail: zeros, as a file's is after ftruncate (and as a load of
		 * it will make them: zero_from). */
		const uint64_t end = (size / psz + 1) * psz;

		if (fallocate(fh->ram->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)size,
		              (off_t)(end - size)) < 0)
			return vm_errf(-errno, "%s: zeroing the last page's tail: %s", fn,
			               strerror(errno));
	}
	if ((err = pagemap_resize(&fh->pm, npages ? npages : 1)) < 0 ||
	    (err = pagemap_resize(&fh->dirty, npages ? npages : 1)) < 0)
		return vm_errf(err, "%s: out of memory for the page table", fn);
	/* The memfd as large as the handle (one page at least: a memfd cannot be empty, and
	 * that page is no page of the handle's when size is 0). Shrinking it unmaps what
	 * passed its end from every mapping: a touch there is SIGBUS. */
	err = ram_handle_resize(fh->ram, npages ? npages * psz : psz);
	if (err < 0)
		return vm_errf(err, "%s: resizing the RAM handle to %" PRIu64 " bytes: %s", fn,
		               npages * psz, strerror(-err));
	if (npages > fh->npages) /* markers of touches past the old end (an empty handle's) */
		for (struct rp_mapping *m = fh->maps; m; m = m->next)
			vm_uffd_unpoison(vm, m, fh->npages, npages - fh->npages);
	if (size < fh->zero_from)
		fh->zero_from = size;
	if (npages < fh->npages)
		vm_reclaim_kick(vm);
	fh->size = size;
	fh->npages = npages;
	return 0;
}

int vm_discard(struct rp_fileh *fh)
{
	struct vm *vm = fh->vm;
	struct vm_release rel = {0, 0};
	uint64_t idx, w;
	int err = 0;

	pthread_mutex_lock(&fh->lock);
	vm_load_wait_copies(fh); /* a write made before this call is dropped too */
	/* The size goes back to the store's: pages from where the handle's view of the store
	 * starts to differ (zero_from: a shrink zeroed a tail, or made zero pages of bytes
	 * the store has) are dropped too, clean or not, to be read again. */
	const bool resized = fh->size != fh->disk_size || fh->zero_from < fh->disk_size;
	const uint64_t from = resized ? fh->zero_from / vm->psz : UINT64_MAX;

	if (resized)
		quiesce(fh);
	else
		vm_wo_wait_idle(fh);
	vm_dirty_collect(fh, NULL);
	for (uint64_t i = 0; pagemap_next(&fh->pm, i, &idx, &w); i = idx + 1)
		if ((pg_dirty(w) || idx >= from) && pg_pins(w)) {
			pthread_mutex_unlock(&fh->lock);
			return vm_errf(-EBUSY, "rp_discard: the %spage at store offset %" PRIu64
			                       " is pinned",
			               pg_dirty(w) ? "dirty " : "", idx * vm->psz);
		}
	/* Release the dirty pages in runs: the hole punch unmaps them from every mapping, and
	 * the next touch loads the store's bytes. */
	for (uint64_t i = 0; pagemap_next(&fh->pm, i, &idx, &w); i = idx + 1) {
		if (!pg_dirty(w) && idx < from)
			continue;
		(void)vm_page_set(fh, idx, 0);
		if (pg_dirty(w))
			vm_dirty_add(fh, -1);
		vm_release_page(fh, &rel, idx);
	}
	vm_release_flush(fh, &rel);
	if (resized) {
		for (struct rp_mapping *m = fh->maps; m; m = m->next)
			vm_uffd_unpoison(vm, m, from, fh->npages > from ? fh->npages - from : 0);
		err = set_size(fh, fh->disk_size, "rp_discard");
		if (!err)
			fh->zero_from = fh->disk_size;
	}
	pthread_mutex_unlock(&fh->lock);
	return err;
}

void vm_fileh_extent(struct rp_fileh *fh, struct vm_extent *out)
{
	pthread_mutex_lock(&fh->lock);
	out->psz = fh->vm->psz;
	out->size = fh->size;
	out->end = fh->npages * fh->vm->psz;
	pthread_mutex_unlock(&fh->lock);
}

int vm_fileh_writable(const struct rp_fileh *fh, const char *fn)
{
	const struct rp_store *st = fh->store;

	if (st->dev && st->dev->rdonly)
		return vm_errf(-EBADF, "%s: the store %s was opened O_RDONLY", fn, st->dev->path);
	if (st->ops && !st->ops->store)
		return vm_errf(-EOPNOTSUPP, "%s: the custom store has no store callback", fn);
	return 0;
}

void vm_mapping_info(const struct rp_mapping *m, struct vm_map_info *out)
{
	*out = (struct vm_map_info){
	    .fh = m->fh, .addr = m->addr, .len = m->len, .psz = m->fh->vm->psz, .first = m->first};
}

int vm_map_advise(struct rp_mapping *m, uint64_t first, uint64_t n, int advice)
{
	pthread_mutex_lock(&m->fh->lock);
	int err = vm_advise(&m->advice, first, n, advice);

	pthread_mutex_unlock(&m->fh->lock);
	return err;
}

int vm_fileh_resize(struct rp_fileh *fh, uint64_t size)
{
	struct rp_store *st = fh->store;
	int err;

	if (st->dev && st->dev->blockdev)
		return vm_errf(-EINVAL, "rp_fileh_resize: %s is a block device: its size is fixed "
		                        "(%" PRIu64 " bytes)",
		               st->dev->path, st->size);
	if (st->dev && st->dev->rdonly)
		return vm_errf(-EBADF, "rp_fileh_resize: the store %s was opened O_RDONLY",
		               st->dev->path);
	if (st->ops && !st->ops->resize)
		return vm_errf(-EOPNOTSUPP, "rp_fileh_resize: the custom store has no resize "
		                            "callback");
	pthread_mutex_lock(&fh->lock);
	quiesce(fh);
	err = size == fh->size ? 0 : set_size(fh, size, "rp_fileh_resize");
	pthread_mutex_unlock(&fh->lock);
	return err;
}

int vm_fileh_refresh(struct rp_fileh *fh)
{
	struct rp_store *st = fh->store;
	struct vm *vm = fh->vm;
	const size_t psz = vm->psz;
	struct stat sb;
	int err;

	if (!st->dev)
		return vm_errf(-EOPNOTSUPP, "rp_fileh_refresh: a custom store has no size to learn");
	if (st->dev->blockdev)
		return 0;
	pthread_mutex_lock(&fh->lock);
	quiesce(fh);
	vm_dirty_collect(fh, NULL);
	if (fh->ndirty || fh->size != fh->disk_size || fh->zero_from < fh->disk_size) {
		pthread_mutex_unlock(&fh->lock);
		return vm_errf(-EBUSY, "rp_fileh_refresh: the handle of %s has changes not written "
		                       "out (write them out or discard them first)",
		               st->dev->path);
	}
	if (fstat(st->dev->fd, &sb) < 0) {
		err = -errno;
		pthread_mutex_unlock(&fh->lock);
		return vm_errf(err, "rp_fileh_refresh: fstat %s: %s", st->dev->path, strerror(-err));
	}
	const uint64_t size = (uint64_t)sb.st_size, old = fh->size;
	uint64_t w;

	/* Growing: the old last page, cut in the middle, holds zeros where the file has
	 * bytes now; it is read again. */
	if (size > old && old % psz && pg_resident(w = pagemap_get(&fh->pm, old / psz))) {
		struct vm_release rel = {0, 0};

		if (pg_pins(w)) {
			pthread_mutex_unlock(&fh->lock);
			return vm_errf(-EBUSY, "rp_fileh_refresh: the page at offset %" PRIu64
			                       " is pinned",
			               old / psz * psz);
		}
		(void)vm_page_set(fh, old / psz, 0);
		vm_release_page(fh, &rel, old / psz);
		vm_release_flush(fh, &rel);
	}
	err = size == old ? 0 : set_size(fh, size, "rp_fileh_refresh");
	if (!err) {
		__atomic_store_n(&st->size, size, __ATOMIC_RELEASE);
		fh->disk_size = fh->zero_from = size;
	}
	pthread_mutex_unlock(&fh->lock);
	return err;
}

uint64_t vm_fileh_size(struct rp_fileh *fh)
{
	pthread_mutex_lock(&fh->lock);
	uint64_t size = fh->size;

	pthread_mutex_unlock(&fh->lock);
	return size;
}

void vm_fileh_stats(struct rp_fileh *fh, struct rp_fileh_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&fh->lock);
	vm_dirty_collect(fh, NULL);
	out->size = fh->size;
	out->dirty_pages = fh->ndirty;
	pthread_mutex_unlock(&fh->lock);
	out->resident_pages = ram_handle_pages(fh->ram);
	out->loads = atomic_load(&fh->n_loads);
	out->pages_loaded = atomic_load(&fh->n_pages_loaded);
	out->pages_written = atomic_load(&fh->n_pages_written);
	out->pages_evicted = atomic_load(&fh->n_evicted);
	out->writeouts = atomic_load(&fh->n_writeouts);
}

struct vm *vm_fileh_vm(const struct rp_fileh *fh)
{
	return fh->vm;
}

int vm_fileh_atomic_ok(const struct rp_fileh *fh, const char *fn)
{
	const struct rp_store *st = fh->store;

	if (!st->dev)
		return vm_errf(-EOPNOTSUPP, "%s: RP_WRITEOUT_ATOMIC: a custom store keeps no redo log",
		               fn);
	if (!st->log_path)
		return vm_errf(-EINVAL, "%s: RP_WRITEOUT_ATOMIC: %s is a block device: set "
		                        "atomic_log_dir for its redo log",
		               fn, st->dev->path);
	return 0;
}
