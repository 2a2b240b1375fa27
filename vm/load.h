/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/load.h - loads of pages from stores (vm/load.c). fh->lock held where said.
 */
#ifndef RINGPAGER_VM_LOAD_H
#define RINGPAGER_VM_LOAD_H

#include "vm/service.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest load request a range of absent pages is coalesced into (rp_pin, WILLNEED). */
#define VM_LOAD_MAX_BYTES (1ul << 20)

struct vm_load {
	struct vm_job job; /* first member */
	struct rp_fileh *fh;
	uint64_t first, npages; /* pages [first, first + npages) */
	int err;                /* result, 0 or -errno */
	bool stale;             /* invalidated while in flight: discard at completion */
	bool waited;            /* a pin waits for it: wake the handle's waiters */
	unsigned *pin_left;     /* a pin's count of its loads not finished: the last wakes it */
	struct rp_mapping *writer;   /* a write fault asked for it: mapped writable there */
	bool ra;                     /* a readahead window's: its pages stay unmapped until
	                                touched (vm/readahead.c), and an error only empties them */
	bool faulted;                /* a thread faulted on one of its pages while it loaded */
	struct rp_mapping *eager;    /* read ahead for a proven stream of this mapping: mapped
	                                there when it completes (vm/readahead.c) */
	bool fault;                  /* a fault's own read: its thread waits (service) */
	bool waited_read;            /* a thread waits for this read (vm_load_waited);
	                                job.spin: polling for it (vm/spin.c) */
	uint64_t issued_ns;          /* ... when it was issued */
	bool staged;                 /* read through a bounce page (the faulting thread's,
	                                vm/sigbus.c, or a service thread's), then put in the
	                                RAM handle: the alias was not touched */
	void *src;                   /* staged: the bounce page read, put in place at finish */
	struct vm_service *bsvc;     /* ... a service thread's, given back at finish */
	struct rp_mapping *dst;      /* staged: the mapping that faulted, where the page goes
	                                with UFFDIO_COPY; NULL once it is unmapped */
	bool touch;                  /* ... a pin's: read once there after the copy
	                                (load_copy_out) */
	bool copied;                 /* ... and went: finish need not map it there */
	bool copying;                /* ... going there now, fh->lock dropped (load_copy_out) */
	uint64_t copy_seq;           /* ... the handle's copy_seq when it started */
	bool written;                /* ... and a collection saw it written meanwhile: dirty
	                                once in (vm_dirty_mark_region) */
	uint64_t wake_at, wake_len;  /* ... its faults, woken once fh->lock is dropped */
	uint64_t zero_from;          /* fh->zero_from when it started: bytes from here read 0 */
	bool zero;                   /* wholly past zero_from: made of zeros, no I/O */
	bool by_write;               /* its pages were charged, not allocated (VM_LOAD_STAGED) */
	bool filled;                 /* zero and staged: src is the bytes rp_write writes over
	                                the whole page, put in place instead of zeros, and the
	                                page is dirty at once, as a write fault's */
	uint64_t *fill_count;        /* filled: counted here once in place (fh->lock) */
	struct vm_load *next, *prev; /* fh->loads */
	atomic_int done;             /* custom stores: rp_load_done called */
} __attribute__((aligned(16)));

/* EMPTY pages [first, first + n) (all EMPTY) -> LOADING under one new load, then
 * allocates their RAM pages with fh->lock dropped for the fallocate. A full pool is
 * reclaimed from (vm_reclaim_alloc; with VM_LOAD_MAY_WAIT, waiting up to reclaim_wait for
 * memory); when that fails, -ENOMEM and the pages are EMPTY again (VM_LOAD_FAULT: the
 * caller is a fault that will park; threads waiting on the pages are not woken). fh->lock
 * held on entry and on return. Returns the load or NULL with *err set. */
#define VM_LOAD_MAY_WAIT 1u
#define VM_LOAD_FAULT    2u
#define VM_LOAD_STAGED   4u /* read through a bounce page, then put in place by UFFDIO_COPY
                               or pwrite(2): the pages are charged, not fallocated
                               (RAM_ALLOC_BY_WRITE) */
/* VM_LOAD_STAGED for a load of n pages that goes through a bounce page, else 0. */
unsigned vm_load_stage_flag(const struct rp_fileh *fh, uint64_t n);
struct vm_load *vm_load_start(struct rp_fileh *fh, uint64_t first, uint64_t n, unsigned how,
                              int *err);
/* A thread waits for ld's read (a fault's own, a lone rp_read's): it is timed, and
 * vm/spin.c chooses whether the thread that waits polls for it (job.spin). Before the
 * load is issued. */
void vm_load_waited(struct vm_load *ld);
/* Issues ld's read on a queue (device store) or calls the custom store's load. Called
 * without fh->lock. With q NULL a device store's read is done on this thread, and ld is
 * finished before the return. Returns 0 once issued or completed, -EBUSY when the queue
 * is full (try again later). */
int vm_load_issue(struct vm_load *ld, struct rpio_queue *q);
/* Completes a load with err (0 or -errno): LOADING -> LOADED, POISONED or (stale) EMPTY,
 * maps or poisons its range in every mapping, wakes pin waiters, frees ld. Any thread. */
void vm_load_finish(struct vm_load *ld, int err);
/* Waits until the loads of the handle that were copying their pages into a mapping with
 * fh->lock dropped (load_copy_out) when it was called have ended their copies: such a
 * page is mapped already and may have been written, and is in (and dirty, if written)
 * once its copy ends. fh->lock held; dropped while waiting.
 * Not on the thread of such a copy (vm_copy_out_hook). */
void vm_load_wait_copies(struct rp_fileh *fh);
/* Loads started and not issued yet, chained through job.qnext. */
struct vm_load_batch {
	struct vm_load *head, *tail;
	struct vm_job *drop; /* pages behind a stream to drop, after the loads (vm/fault.c) */
};
static inline void vm_load_batch_add(struct vm_load_batch *b, struct vm_load *ld)
{
	ld->job.qnext = NULL;
	if (b->tail)
		b->tail->job.qnext = &ld->job;
	else
		b->head = ld;
	b->tail = ld;
}
/* Issues the batch's loads and empties it (no lock held): on svc's queue when called
 * from a service thread, else handed to one with a single wake-up. */
void vm_load_batch_submit(struct vm *vm, struct vm_service *svc, struct vm_load_batch *b);

/* This thread's bounce page for a fault's own read of len bytes, or NULL (larger than a
 * 4 KiB page, or no memory): vm_load_issue then reads into the alias. */
void *vm_load_bounce_self(size_t len);
/* Makes vm_load_bounce_self usable in a signal handler (its thread key); once. */
void vm_load_bounce_init(void);
/* A load ended (LOADING pages changed state): threads waiting in the handler look again. */
void vm_loads_ended_slow(struct vm *vm);
static inline void vm_loads_ended(struct vm *vm)
{
	if (vm->fault_self)
		vm_loads_ended_slow(vm);
}


#endif
