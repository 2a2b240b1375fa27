/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/pressure.c - the signals of memory pressure, the bottom of reclaim: memory may have
 * been freed (vm_reclaim_kick: the waiters look again), the pool passed the high
 * watermark (vm_reclaim_check: background reclaim), dirty pages crossed dirty_limit
 * (vm_reclaim_dirty). It only wakes: vm/evict.c frees, vm/memwait.c waits, the thread in
 * vm/reclaim.c acts.
 */
#include "vm/reclaim.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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

void vm_reclaim_kick_thread(struct vm *vm)
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
		vm_reclaim_kick_thread(vm);
}

void vm_reclaim_dirty(struct vm *vm, uint64_t dirty)
{
	struct vm_reclaim *rc = &vm->rc;

	if (rc->started && rc->dirty_limit &&
	    (dirty >= rc->dirty_limit) != atomic_load_explicit(&rc->over_limit, memory_order_relaxed))
		vm_reclaim_kick_thread(vm);
}
