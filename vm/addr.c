/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/addr.c - the engine's table of user mappings by address: sorted, searched by a
 * fault's address under vm->maps_lock (read), changed by rp_map and rp_unmap (write).
 */
#include "vm/fileh.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Index of the first mapping whose address is > addr. maps_lock held. */
static size_t addr_upper(const struct vm *vm, uint64_t addr)
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
	size_t i = addr_upper(vm, addr);
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

int vm_addr_insert(struct vm *vm, struct rp_mapping *m)
{
	if (vm->nby_addr == vm->cby_addr) {
		size_t c = vm->cby_addr ? 2 * vm->cby_addr : 16;
		struct rp_mapping **a = realloc(vm->by_addr, c * sizeof(*a));

		if (!a)
			return -ENOMEM;
		vm->by_addr = a;
		vm->cby_addr = c;
	}
	size_t i = addr_upper(vm, (uintptr_t)m->addr);

	memmove(&vm->by_addr[i + 1], &vm->by_addr[i], (vm->nby_addr - i) * sizeof(m));
	vm->by_addr[i] = m;
	vm->nby_addr++;
	return 0;
}

void vm_addr_remove(struct vm *vm, struct rp_mapping *m)
{
	size_t i = addr_upper(vm, (uintptr_t)m->addr);

	assert(i > 0 && vm->by_addr[i - 1] == m);
	i--;
	memmove(&vm->by_addr[i], &vm->by_addr[i + 1], (vm->nby_addr - i - 1) * sizeof(m));
	vm->nby_addr--;
}
