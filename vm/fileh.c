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
#include "vm/vm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
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
	fh->npages = fh->ram->npages;
	pthread_mutex_init(&fh->lock, NULL);
	pthread_cond_init(&fh->cv, NULL);
	pagemap_init(&fh->pm, vm->pool, fh->npages);

	pthread_mutex_lock(&vm->objs_lock);
	fh->id = vm->next_fh_id++;
	st->nfileh++;
	fh->next = vm->filehs;
	if (vm->filehs)
		vm->filehs->prev = fh;
	vm->filehs = fh;
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
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		vm->filehs = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	pthread_mutex_unlock(&vm->objs_lock);
	vm_reclaim_forget(vm); /* out of the list: no sweep can find it any more */

	/* Loads of this handle may still be in flight (WILLNEED), and writeouts (async):
	 * wait for them. Dirty pages are dropped with the rest. */
	pthread_mutex_lock(&fh->lock);
	while (fh->nloads)
		pthread_cond_wait(&fh->cv, &fh->lock);
	vm_alias_zap(fh, 0, 0, true); /* nothing may stay for an alias about to go */
	vm_wo_wait_idle(fh);
	vm_dirty_add(fh, -(int64_t)fh->ndirty);
	pthread_mutex_unlock(&fh->lock);
	pagemap_fini(&fh->pm);
	ram_handle_close(fh->ram);
	pthread_mutex_destroy(&fh->lock);
	pthread_cond_destroy(&fh->cv);
	free(fh);
	return 0;
}

/* Index of the first mapping whose address is > addr. maps_lock held. */
static size_t by_addr_upper(const struct vm *vm, uint64_t addr)
{
	size_t lo = 0, hi = vm->nby_addr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if ((uintptr_t)vm->by_addr[mid]->addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct rp_mapping *vm_map_lookup(struct vm *vm, uint64_t addr)
{
	size_t i = by_addr_upper(vm, addr);
	struct rp_mapping *m;

	if (i == 0)
		return NULL;
	m = vm->by_addr[i - 1];
	return addr < (uintptr_t)m->addr + m->len ? m : NULL;
}

struct rp_mapping *vm_fault_mapping(struct vm *vm, uint64_t addr, uint64_t *page)
{
	struct rp_mapping *m;

	pthread_rwlock_rdlock(&vm->maps_lock);
	m = vm_map_lookup(vm, addr);
	if (!m) { /* unmapped since the fault was raised */
		pthread_rwlock_unlock(&vm->maps_lock);
		return NULL;
	}
	*page = m->first + (addr - (uintptr_t)m->addr) / vm->psz;
	return m;
}

static int by_addr_insert(struct vm *vm, struct rp_mapping *m)
{
	if (vm->nby_addr == vm->cby_addr) {
		size_t c = vm->cby_addr ? 2 * vm->cby_addr : 16;
		struct rp_mapping **a = realloc(vm->by_addr, c * sizeof(*a));

		if (!a)
			return -ENOMEM;
		vm->by_addr = a;
		vm->cby_addr = c;
	}
	size_t i = by_addr_upper(vm, (uintptr_t)m->addr);

	memmove(&vm->by_addr[i + 1], &vm->by_addr[i], (vm->nby_addr - i) * sizeof(m));
	vm->by_addr[i] = m;
	vm->nby_addr++;
	return 0;
}

static void by_addr_remove(struct vm *vm, struct rp_mapping *m)
{
	size_t i = by_addr_upper(vm, (uintptr_t)m->addr);

	assert(i > 0 && vm->by_addr[i - 1] == m);
	i--;
	memmove(&vm->by_addr[i], &vm->by_addr[i + 1], (vm->nby_addr - i - 1) * sizeof(m));
	vm->nby_addr--;
}

int vm_map(struct rp_fileh *fh, uint64_t off, size_t len, int prot, struct rp_mapping **out)
{
	struct vm *vm = fh->vm;
	struct rp_mapping *m = calloc(1, sizeof(*m));
	void *addr;
	int err;

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
	err = by_addr_insert(vm, m);
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
	m->next = fh->maps;
	if (fh->maps)
		fh->maps->prev = m;
	fh->maps = m;
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
	by_addr_remove(vm, m);
	pthread_rwlock_unlock(&vm->maps_lock);
	pthread_mutex_lock(&fh->lock);
	/* Writes through this mapping not collected yet become DIRTY states now: the page
	 * tables that remember them go with the mapping. */
	vm_dirty_collect(fh, m);
	(void)mprotect(m->addr, m->len, PROT_NONE);
	for (struct vm_load *ld = fh->loads; ld; ld = ld->next) {
		if (ld->writer == m)
			ld->writer = NULL;
		if (ld->dst == m)
			ld->dst = NULL;
	}
	if (m->prev)
		m->prev->next = m->next;
	else
		fh->maps = m->next;
	if (m->next)
		m->next->prev = m->prev;
	/* Pins taken through this mapping go with it, so the pages can be reclaimed. */
	vm_unpin_all(m);
	pthread_mutex_unlock(&fh->lock);
	vm_uffd_unregister(vm, m->addr, m->len);
	munmap(m->addr, m->len);
	pthread_mutex_lock(&vm->objs_lock);
	fh->nmaps--;
	pthread_mutex_unlock(&vm->objs_lock);
	free(m->pins);
	free(m->adv);
	free(m);
	return 0;
}
