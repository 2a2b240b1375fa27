/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/testing.c - the accessors of vm/testing.h, for tests only.
 */
#include "vm/testing.h"
#include "vm/dirty.h"
#include "vm/fault.h"
#include "vm/objects.h"
#include "vm/uffd.h"

struct vm *vm_test_vm(struct rp_fileh *fh)
{
	return fh->vm;
}

unsigned vm_test_page_state(struct rp_fileh *fh, uint64_t idx)
{
	pthread_mutex_lock(&fh->lock);
	vm_dirty_collect(fh, NULL);
	unsigned s = pg_state(pagemap_get(&fh->pm, idx));

	pthread_mutex_unlock(&fh->lock);
	return s;
}

bool vm_test_page_marked(struct rp_fileh *fh, uint64_t idx)
{
	pthread_mutex_lock(&fh->lock);
	const bool marked = (pagemap_get(&fh->pm, idx) & PG_RA_MARK) != 0;

	pthread_mutex_unlock(&fh->lock);
	return marked;
}

void vm_test_wp_fault(struct rp_mapping *m, uint64_t idx)
{
	uint64_t at, len;

	if (vm_map_overlap(m, idx, 1, &at, &len, m->fh->vm->psz))
		vm_wp_fault(m->fh->vm, at);
}

char *vm_test_alias(struct rp_fileh *fh)
{
	return fh->ram->alias;
}

bool vm_test_fault_self(const struct vm *vm)
{
	return vm->fault_self;
}

unsigned vm_test_nsvc(const struct vm *vm)
{
	return vm->nsvc;
}

int vm_test_uffd(const struct vm *vm)
{
	return vm->uffd;
}

struct vm_choice *vm_test_wo_ways(struct vm *vm)
{
	return &vm->wo_ways;
}

struct vm_spin *vm_test_wo_spin(struct vm *vm)
{
	return &vm->wo_spin;
}

void vm_test_lend(struct vm *vm, bool allow)
{
	pthread_mutex_lock(&vm->jobs_lock);
	vm->no_lend = !allow;
	pthread_mutex_unlock(&vm->jobs_lock);
}

bool vm_test_listen_chosen(const struct vm *vm)
{
	return vm->listen_chosen;
}

uint64_t vm_test_listen_mask(const struct vm *vm)
{
	return atomic_load(&vm->listen_mask);
}

struct rpio_dev *vm_test_dev(struct rp_store *st)
{
	return st->dev;
}

struct rp_store *vm_test_store(struct rp_fileh *fh)
{
	return fh->store;
}

bool vm_test_over_limit(const struct vm *vm)
{
	return atomic_load(&vm->rc.over_limit);
}

void vm_test_lose_dirty_index(struct rp_fileh *fh)
{
	pthread_mutex_lock(&fh->lock);
	fh->dirty_lost = true;
	pthread_mutex_unlock(&fh->lock);
}
