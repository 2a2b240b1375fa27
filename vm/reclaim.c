/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/reclaim.c - keeping the pool within ram_size: the reclaim thread, the watermarks,
 * the pressure hook, and writeback of cold dirty pages. Eviction itself is vm/evict.c
 * (the CLOCK, the reference bit); waiting for memory is vm/memwait.c; the signals that
 * wake this thread are vm/pressure.c.
 *
 * Who reclaims.
 *   - Background: a load that brings the pool to reclaim_high percent kicks the reclaim
 *     thread, which evicts until the pool is at reclaim_low. Off the fault path.
 *   - Synchronous: a load that finds the pool full sweeps itself (vm_reclaim_alloc), on
 *     whatever thread it runs.
 *   - rp_reclaim(eng, n): on request.
 * When nothing can be freed (every page dirty under keep, or pinned): a fault is parked
 * (the kernel keeps its thread waiting) and rp_pin waits, both up to reclaim_wait ms;
 * the pressure hook is told (RP_PRESSURE_POOL_FULL) so that the application can write
 * out; whenever memory may have been freed (a hole punched, pages made clean, a load
 * completed) the waiters try again. When nothing can be freed means pages in flight too:
 * a pool filled by WILLNEED is evictable as soon as its loads complete. When the wait
 * ends (after one last sweep): the faulting thread gets SIGBUS (a poison marker, as for
 * a failed load: the page keeps raising SIGBUS in that mapping until it is loaded by
 * rp_pin or WILLNEED, or rp_invalidate clears it), and rp_pin returns -ENOMEM. The engine
 * never aborts.
 *
 * Dirty limit. When the engine's dirty pages reach dirty_limit the hook is called once
 * (RP_PRESSURE_DIRTY_LIMIT), and again only after they have fallen below. Under wp_async
 * a write to a loaded page is seen only at a collection, so while a hook and a limit are
 * set the reclaim thread collects every RC_COLLECT_MS (as the kernel's flusher wakes
 * periodically); under wp_sync the count is exact at every write.
 *
 * Writeback (dirty_policy=writeback). When a sweep could not free enough and met cold
 * dirty pages (bit clear), the reclaim thread starts a writeout of those pages of the
 * handle: STORE | MARKSTORED | SYNC, restricted to cold pages (VM_WO_COLD), so the same
 * order and durability rules as rp_writeout hold, and it runs in turn with the
 * application's writeouts of the handle. When it ends the pages are clean with their bit
 * clear, and the next sweep evicts them. A failed writeback keeps the pages dirty and is
 * not retried for RC_WB_RETRY_MS.
 */
#include "vm/reclaim.h"
#include "vm/dirty.h"
#include "vm/fault.h"
#include "vm/writeout.h"
#include "vm/vm.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RC_BG_BATCH    4096 /* background reclaim: pages per sweep call */
#define RC_COLLECT_MS  100
#define RC_WB_RETRY_MS 1000

static const char *const policy_names[] = {"keep", "writeback"};

const char *vm_policy_name(enum vm_dirty_policy p)
{
	return (unsigned)p < 2 ? policy_names[p] : "?";
}

/* ---------------------------------------------------------------- waiting for memory */

void vm_reclaim_set_hook(struct vm *vm, void (*hook)(void *, int, uint64_t), void *arg)
{
	pthread_mutex_lock(&vm->rc.wlock);
	/* A call in progress ends first (unless this is it, changing the hook). */
	while (vm->rc.in_hook && !pthread_equal(pthread_self(), vm->rc.thread))
		pthread_cond_wait(&vm->rc.cv, &vm->rc.wlock);
	vm->rc.hook = hook;
	vm->rc.hook_arg = arg;
	atomic_store(&vm->rc.over_limit, false);
	pthread_mutex_unlock(&vm->rc.wlock);
	if (hook)
		vm_reclaim_kick_thread(vm);
}

/* ---------------------------------------------------------------- the reclaim thread */

static void call_hook(struct vm *vm, int why)
{
	struct vm_reclaim *rc = &vm->rc;

	pthread_mutex_lock(&rc->wlock);
	void (*hook)(void *, int, uint64_t) = rc->hook;
	void *arg = rc->hook_arg;

	rc->in_hook = hook != NULL;
	pthread_mutex_unlock(&rc->wlock);
	if (!hook)
		return;
	atomic_fetch_add_explicit(&vm->ctr.hook_calls, 1, memory_order_relaxed);
	hook(arg, why, atomic_load(&vm->ctr.dirty_pages) * vm->psz);
	pthread_mutex_lock(&rc->wlock);
	rc->in_hook = false;
	pthread_cond_broadcast(&rc->cv);
	pthread_mutex_unlock(&rc->wlock);
}

/* Handles with a writeback running (ids), so that one handle has one at a time. */
static bool wb_claim(struct vm_reclaim *rc, uint64_t id)
{
	for (unsigned i = 0; i < rc->wb_running; i++)
		if (rc->wb_ids[i] == id)
			return false;
	if (rc->wb_running == RC_WB_MAX)
		return false;
	rc->wb_ids[rc->wb_running++] = id;
	return true;
}

static void wb_release(struct vm_reclaim *rc, uint64_t id, bool failed)
{
	for (unsigned i = 0; i < rc->wb_running; i++)
		if (rc->wb_ids[i] == id) {
			rc->wb_ids[i] = rc->wb_ids[--rc->wb_running];
			break;
		}
	if (failed)
		rc->wb_retry_ns = vm_now_ns() + RC_WB_RETRY_MS * 1000000ull;
	pthread_cond_broadcast(&rc->cv);
}

struct wb_arg {
	struct vm *vm;
	uint64_t id;
};

/* A writeback ended (on a service thread; the handle may be closed already). */
static void wb_done(void *arg, int result)
{
	struct wb_arg *a = arg;
	struct vm_reclaim *rc = &a->vm->rc;

	pthread_mutex_lock(&rc->wlock);
	wb_release(rc, a->id, result < 0);
	rc->epoch++;
	rc->full_told = false;
	rc->kicked = true;
	pthread_cond_broadcast(&rc->mem_cv);
	pthread_mutex_unlock(&rc->wlock);
	free(a);
}

/* Starts writebacks of the cold dirty pages of the handles named. */
static void start_writebacks(struct vm *vm, const uint64_t *ids, unsigned n)
{
	struct vm_reclaim *rc = &vm->rc;

	if (rc->p.policy != VM_POLICY_WRITEBACK || vm_now_ns() < rc->wb_retry_ns)
		return;
	pthread_mutex_lock(&rc->lock); /* handles stay open while rc->lock is held */
	for (unsigned i = 0; i < n; i++) {
		pthread_mutex_lock(&vm->objs_lock);
		struct rp_fileh *fh = vm_fileh_at(vm, ids[i]);

		pthread_mutex_unlock(&vm->objs_lock);
		if (!fh || fh->id != ids[i])
			continue;
		struct rp_store *st = fh->store;
		struct wb_arg *a = malloc(sizeof(*a));

		if (!a || (st->dev ? st->dev->rdonly : !st->ops->store)) {
			free(a);
			continue;
		}
		*a = (struct wb_arg){vm, fh->id};
		pthread_mutex_lock(&rc->wlock);
		bool ok = wb_claim(rc, fh->id);

		pthread_mutex_unlock(&rc->wlock);
		if (ok && vm_writeout(fh,
		                      RP_WRITEOUT_STORE | RP_WRITEOUT_MARKSTORED | RP_WRITEOUT_SYNC |
		                          VM_WO_COLD,
		                      wb_done, a, NULL, 0) == 0) {
			atomic_fetch_add_explicit(&vm->ctr.writebacks, 1, memory_order_relaxed);
			continue;
		}
		if (ok) {
			pthread_mutex_lock(&rc->wlock);
			wb_release(rc, fh->id, true);
			pthread_mutex_unlock(&rc->wlock);
		}
		free(a);
	}
	pthread_mutex_unlock(&rc->lock);
}

/* wp_async: brings the dirty counts up to date (only while a hook and a limit are set). */
static void collect_all(struct vm *vm)
{
	pthread_mutex_lock(&vm->rc.lock);
	pthread_mutex_lock(&vm->objs_lock);
	uint64_t id = 0;

	for (;;) {
		struct rp_fileh *fh = vm_fileh_at(vm, id);

		pthread_mutex_unlock(&vm->objs_lock);
		if (!fh)
			break;
		pthread_mutex_lock(&fh->lock);
		vm_dirty_collect(fh, NULL);
		pthread_mutex_unlock(&fh->lock);
		id = fh->id + 1;
		pthread_mutex_lock(&vm->objs_lock);
	}
	pthread_mutex_unlock(&vm->rc.lock);
}

static void check_dirty_limit(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;
	uint64_t dirty = atomic_load(&vm->ctr.dirty_pages);
	bool tell = false;

	if (!rc->dirty_limit)
		return;
	pthread_mutex_lock(&rc->wlock);
	if (dirty >= rc->dirty_limit && !atomic_load(&rc->over_limit)) {
		atomic_store(&rc->over_limit, true);
		tell = rc->hook != NULL; /* no hook: the crossing passes unseen */
	} else if (dirty < rc->dirty_limit)
		atomic_store(&rc->over_limit, false);
	pthread_mutex_unlock(&rc->wlock);
	if (tell)
		call_hook(vm, VM_PRESSURE_DIRTY_LIMIT);
}

/* Retries the parked faults: each either loads, parks again, or (deadline past) gets
 * SIGBUS. */
static void retry_parked(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;

	pthread_mutex_lock(&rc->wlock);
	struct vm_parked *p = rc->parked;
	size_t n = rc->nparked;

	rc->parked = NULL;
	rc->nparked = rc->cparked = 0;
	atomic_fetch_sub(&rc->waiters, (unsigned)n);
	pthread_mutex_unlock(&rc->wlock);
	for (size_t i = 0; i < n; i++)
		vm_fault(vm, NULL, p[i].addr, p[i].write, p[i].deadline);
	free(p);
}

static void *reclaim_main(void *arg)
{
	struct vm *vm = arg;
	struct vm_reclaim *rc = &vm->rc;

	pthread_mutex_lock(&rc->wlock);
	while (!rc->stop) {
		uint64_t now = vm_now_ns(), wake = UINT64_MAX;
		bool collect = vm->dirty == VM_DIRTY_WP_ASYNC && rc->hook && rc->dirty_limit;

		if (collect)
			wake = rc->last_collect_ns + RC_COLLECT_MS * 1000000ull;
		for (size_t i = 0; i < rc->nparked; i++)
			if (rc->parked[i].deadline < wake)
				wake = rc->parked[i].deadline;
		if (!rc->kicked && now < wake) {
			if (wake == UINT64_MAX)
				pthread_cond_wait(&rc->cv, &rc->wlock);
			else {
				struct timespec ts;

				vm_abs_time(wake, &ts);
				(void)pthread_cond_timedwait(&rc->cv, &rc->wlock, &ts);
			}
			continue;
		}
		rc->kicked = false;
		bool waiting = rc->nparked || rc->nwaiting;

		pthread_mutex_unlock(&rc->wlock);

		if (collect && vm_now_ns() >= rc->last_collect_ns + RC_COLLECT_MS * 1000000ull) {
			collect_all(vm);
			rc->last_collect_ns = vm_now_ns();
		}
		check_dirty_limit(vm);

		/* Background reclaim: from the high watermark (vm_reclaim_check set busy) down
		 * to the low one; or for loads waiting. */
		uint64_t ids[RC_WB_MAX], freed = 0;
		unsigned nwb = 0;

		while ((atomic_load(&rc->busy) || waiting) && ram_pool_charged(vm->pool) > rc->low) {
			uint64_t over = ram_pool_charged(vm->pool) - rc->low;
			uint64_t got = vm_evict_sweep(vm, over < RC_BG_BATCH ? over : RC_BG_BATCH, ids, &nwb);

			freed += got;
			if (!got)
				break;
		}
		atomic_store(&rc->busy, false);
		if (waiting && !freed)
			freed = vm_evict_sweep(vm, RC_SYNC_MIN, ids, &nwb);
		if (nwb && (waiting || ram_pool_charged(vm->pool) > rc->low))
			start_writebacks(vm, ids, nwb);

		pthread_mutex_lock(&rc->wlock);
		if (freed) {
			rc->epoch++;
			rc->full_told = false;
			pthread_cond_broadcast(&rc->mem_cv);
		}
		/* Once per stall: full_told is cleared whenever memory is freed. */
		bool tell = waiting && !freed && !rc->full_told;

		if (tell)
			rc->full_told = true;
		pthread_mutex_unlock(&rc->wlock);
		if (tell)
			call_hook(vm, VM_PRESSURE_POOL_FULL);
		if (waiting)
			retry_parked(vm);
		pthread_mutex_lock(&rc->wlock);
	}
	pthread_mutex_unlock(&rc->wlock);
	return NULL;
}

int vm_reclaim_start(struct vm *vm, const struct vm_reclaim_params *p)
{
	struct vm_reclaim *rc = &vm->rc;
	uint64_t cap = vm->pool->capacity;

	rc->p = *p;
	rc->high = cap * p->high / 100;
	rc->low = cap * p->low / 100;
	if (rc->high < 1)
		rc->high = 1;
	if (p->dirty_limit_bytes)
		rc->dirty_limit = (p->dirty_limit_bytes + vm->psz - 1) / vm->psz;
	else
		rc->dirty_limit = cap * p->dirty_limit_pct / 100;
	pthread_mutex_init(&rc->lock, NULL);
	pthread_mutex_init(&rc->wlock, NULL);
	/* Deadlines are CLOCK_MONOTONIC times: the condition variables must wait on it. */
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rc->cv, &ca);
	pthread_cond_init(&rc->mem_cv, &ca);
	pthread_condattr_destroy(&ca);
	rc->last_collect_ns = vm_now_ns();
	int err = pthread_create(&rc->thread, NULL, reclaim_main, vm);

	if (err) {
		pthread_mutex_destroy(&rc->lock);
		pthread_mutex_destroy(&rc->wlock);
		pthread_cond_destroy(&rc->cv);
		pthread_cond_destroy(&rc->mem_cv);
		return vm_errf(-err, "cannot start the reclaim thread: %s", strerror(err));
	}
	rc->started = true;
	return 0;
}

void vm_reclaim_stop(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;

	if (!rc->started || rc->stop)
		return;
	pthread_mutex_lock(&rc->wlock);
	rc->stop = true;
	pthread_cond_broadcast(&rc->cv);
	pthread_cond_broadcast(&rc->mem_cv);
	pthread_mutex_unlock(&rc->wlock);
	pthread_join(rc->thread, NULL);
	/* Wait for writebacks: they call wb_done, which needs rc->wlock. */
	pthread_mutex_lock(&rc->wlock);
	while (rc->wb_running)
		pthread_cond_wait(&rc->cv, &rc->wlock);
	pthread_mutex_unlock(&rc->wlock);
	free(rc->parked);
	rc->parked = NULL;
	rc->nparked = 0;
	/* The locks stay usable: closing the handles still meets them (vm_reclaim_fini). */
}

void vm_reclaim_fini(struct vm *vm)
{
	struct vm_reclaim *rc = &vm->rc;

	if (!rc->started)
		return;
	rc->started = false;
	pthread_mutex_destroy(&rc->lock);
	pthread_mutex_destroy(&rc->wlock);
	pthread_cond_destroy(&rc->cv);
	pthread_cond_destroy(&rc->mem_cv);
}
