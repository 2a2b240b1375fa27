/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/memwait.c - waiting for memory. A load that finds the pool full sweeps the CLOCK
 * itself (vm/evict.c) and, when nothing can be freed, waits up to reclaim_wait for a
 * kick (vm_reclaim_alloc); a fault on a service thread, which must not block, parks
 * instead (vm_reclaim_park), and the reclaim thread retries it (vm/reclaim.c).
 */
#include "vm/reclaim.h"
#include "vm/vm.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int vm_reclaim_alloc(struct vm *vm, struct ram_handle *ram, uint64_t off, uint64_t len,
                     bool may_wait, unsigned ram_flags)
{
	struct vm_reclaim *rc = &vm->rc;
	const uint64_t need = len / vm->psz, want = need > RC_SYNC_MIN ? need : RC_SYNC_MIN;
	uint64_t deadline = 0;
	bool waited = false;
	int e;

	may_wait = may_wait && rc->p.wait_ms && !vm_on_service_thread();
	for (;;) {
		uint64_t got = vm_reclaim_pages(vm, want);

		e = ram_alloc(ram, off, len, ram_flags);
		if (e != -ENOMEM)
			break;
		if (got)
			continue; /* freed, and taken by another load meanwhile: sweep again */
		if (!may_wait)
			break;
		/* Nothing clean to evict: wait until memory may have been freed. */
		pthread_mutex_lock(&rc->wlock);
		if (!waited) {
			waited = true;
			deadline = vm_now_ns() + (uint64_t)rc->p.wait_ms * 1000000ull;
			atomic_fetch_add_explicit(&vm->ctr.mem_waits, 1, memory_order_relaxed);
		}
		uint64_t epoch = rc->epoch;
		struct timespec ts;
		int r = 0;

		rc->nwaiting++;
		atomic_fetch_add(&rc->waiters, 1);
		rc->kicked = true; /* the reclaim thread tells the hook, starts writeback */
		pthread_cond_broadcast(&rc->cv);
		vm_abs_time(deadline, &ts);
		while (rc->epoch == epoch && !rc->stop && r != ETIMEDOUT)
			r = pthread_cond_timedwait(&rc->mem_cv, &rc->wlock, &ts);
		rc->nwaiting--;
		atomic_fetch_sub(&rc->waiters, 1);
		bool stop = rc->stop;

		pthread_mutex_unlock(&rc->wlock);
		if (stop || (r == ETIMEDOUT && vm_now_ns() >= deadline)) {
			/* One last try, with a sweep: pages that became evictable without a kick
			 * must not be left unseen. */
			if (!stop)
				(void)vm_reclaim_pages(vm, want);
			e = ram_alloc(ram, off, len, ram_flags);
			break;
		}
	}
	if (e == -ENOMEM && waited)
		atomic_fetch_add_explicit(&vm->ctr.mem_failures, 1, memory_order_relaxed);
	else if (!e)
		vm_reclaim_check(vm);
	return e;
}

static bool parked_room(struct vm_reclaim *rc)
{
	if (rc->nparked < rc->cparked)
		return true;
	size_t c = rc->cparked ? 2 * rc->cparked : 16;
	struct vm_parked *a = realloc(rc->parked, c * sizeof(*a));

	if (!a)
		return false;
	rc->parked = a;
	rc->cparked = c;
	return true;
}

bool vm_reclaim_park(struct vm *vm, uint64_t addr, bool write, uint64_t deadline)
{
	struct vm_reclaim *rc = &vm->rc;
	uint64_t now = vm_now_ns();
	bool first = !deadline;

	if (!rc->started || !rc->p.wait_ms)
		return false;
	if (first)
		deadline = now + (uint64_t)rc->p.wait_ms * 1000000ull;
	else if (now >= deadline)
		return false;
	pthread_mutex_lock(&rc->wlock);
	if (rc->stop || !parked_room(rc)) {
		pthread_mutex_unlock(&rc->wlock);
		return false;
	}
	rc->parked[rc->nparked++] = (struct vm_parked){addr, write, deadline};
	atomic_fetch_add(&rc->waiters, 1);
	if (first) {
		/* A new waiter: the reclaim thread tells the hook and starts writeback. A
		 * retry parked again waits for memory to be freed, or for its deadline. */
		atomic_fetch_add_explicit(&vm->ctr.mem_waits, 1, memory_order_relaxed);
		rc->kicked = true;
		pthread_cond_broadcast(&rc->cv);
	}
	pthread_mutex_unlock(&rc->wlock);
	return true;
}
