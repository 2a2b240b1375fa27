/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/reclaim.h - keeping the pool within ram_size: the signals (vm/pressure.c), eviction
 * (vm/evict.c), waiting for memory (vm/memwait.c) and the reclaim thread (vm/reclaim.c).
 */
#ifndef RINGPAGER_VM_RECLAIM_H
#define RINGPAGER_VM_RECLAIM_H

#include "vm/objects.h"

int vm_reclaim_start(struct vm *vm, const struct vm_reclaim_params *p);
/* Stops the reclaim thread; parked faults are dropped. Sweeps on request still work. */
void vm_reclaim_stop(struct vm *vm);
/* Frees what vm_reclaim_start made; no sweep may run any more. */
void vm_reclaim_fini(struct vm *vm);
/* ram_alloc(ram_flags) failed with -ENOMEM for [off, off + len) of ram: reclaims and
 * retries; with may_wait (not on a service thread) waits up to reclaim_wait for memory.
 * Returns 0 once allocated, or -ENOMEM. No fh->lock held. */
int vm_reclaim_alloc(struct vm *vm, struct ram_handle *ram, uint64_t off, uint64_t len,
                     bool may_wait, unsigned ram_flags);
/* A fault found the pool full and nothing to free: it waits, parked, until memory comes
 * or its deadline (0: now + reclaim_wait) passes. False when it must fail at once. */
bool vm_reclaim_park(struct vm *vm, uint64_t addr, bool write, uint64_t deadline);
/* Something changed that reclaim cares about (memory freed, pages made clean, the pool
 * past the high watermark, dirty pages past the limit): wakes the reclaim thread when it
 * has reason to look. Cheap when not. */
void vm_reclaim_kick(struct vm *vm);
/* Wakes the reclaim thread whether or not anyone waits. */
void vm_reclaim_kick_thread(struct vm *vm);
/* One sweep of the CLOCK hand for `want` pages; with wb_ids, notes up to RC_WB_MAX
 * handles that have cold dirty pages (*nwb of them). Returns the pages freed. */
uint64_t vm_evict_sweep(struct vm *vm, uint64_t want, uint64_t *wb_ids, unsigned *nwb);
/* Drops the clean unpinned pages of fh in [first, first + n) from the pool (rp_advise
 * DONTNEED's work, for any range of the handle): how many it dropped, or -ENOMEM. No lock
 * held. */
int64_t vm_dontneed_fh(struct rp_fileh *fh, uint64_t first, uint64_t n);
/* The open handle with the smallest id >= id, or NULL. vm->objs_lock held. */
struct rp_fileh *vm_fileh_at(struct vm *vm, uint64_t id);
/* After a load: starts background reclaim when the pool is past the high watermark. */
void vm_reclaim_check(struct vm *vm);
/* The engine's dirty page count changed to `dirty`: wakes the reclaim thread when it
 * crossed dirty_limit (either way). */
void vm_reclaim_dirty(struct vm *vm, uint64_t dirty);
/* Waits until no sweep runs: one that picked a handle now leaving the handles list is
 * done with it. */
void vm_reclaim_forget(struct vm *vm);

#endif
