/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/service.h - the fault-service threads (vm/service.c): each reads faults off the
 * userfaultfd and hands them to vm->fault_ops, and runs jobs (loads, writeouts) on its
 * own io/ queue through each job's ops.
 */
#ifndef RINGPAGER_VM_SERVICE_H
#define RINGPAGER_VM_SERVICE_H

#include "vm/objects.h"

/* Work for a fault-service thread: queued in its backlog (or the shared jobs list), and
 * the udata of the io/ requests it issues. Each kind of job (a load, a writeout, a
 * writeout's run) heads its own struct and brings its ops: the service threads run jobs
 * through them and know nothing of what they are. */
struct vm_job;
struct vm_job_ops {
	/* Starts the job on service thread s's queue (vm_service_queue): 0 when done with it
	 * (issued, or finished), -EBUSY when the queue is full (called again after
	 * completions), -EAGAIN when it waits for something of s's that a completion gives
	 * back (called again then; the jobs queued behind it are issued meanwhile). NULL for
	 * jobs that are never queued on their own. */
	int (*issue)(struct vm_job *job, struct vm_service *s);
	/* One of the job's requests completed: 0 or -errno. On the service thread that
	 * reaped it. */
	void (*complete)(struct vm_job *job, int err);
};

struct vm_job {
	const struct vm_job_ops *ops;
	struct vm_job *qnext; /* a service thread's backlog or the jobs list */
	bool spin;            /* a fault's own read: its service thread polls for it */
	_Atomic bool urgent;  /* a thread waits for it: finished before other completions */
};

int vm_service_start(struct vm *vm, const struct vm_params *p);
void vm_service_stop(struct vm *vm);
/* Every service thread drops its queue's registration of dev (a store closes). */
void vm_service_detach(struct vm *vm, struct rpio_dev *dev);
/* The I/O backend in use, as rpio_queue_describe says it. */
const char *vm_service_describe(const struct vm *vm);
/* Starts a job (a load that vm_load_start prepared): on this service thread's queue when
 * called from one (svc != NULL), else handed to a service thread. */
void vm_service_submit(struct vm *vm, struct vm_service *svc, struct vm_job *job);
/* Service thread s's io/ queue, for its jobs' issue ops. */
struct rpio_queue *vm_service_queue(struct vm_service *s);
/* One of s's free bounce pages, or NULL (on that thread). */
void *vm_service_bounce_get(struct vm_service *s);
/* Hands a chain of jobs (linked by qnext, ending at tail) to a service thread, with one
 * wake-up: that of the caller's CPU where there is one (vm_service_hand), or the threads
 * in turn (vm_service_hand_spread, for the later batches of a long pin). */
void vm_service_hand(struct vm *vm, struct vm_job *head, struct vm_job *tail);
void vm_service_hand_spread(struct vm *vm, struct vm_job *head, struct vm_job *tail);
/* ... or to a thread of another CPU than the caller's (the others in turn), for it alone
 * (its share of a pin's loads); to the threads in turn where they are not bound or there
 * is one. */
void vm_service_hand_other(struct vm *vm, struct vm_job *head, struct vm_job *tail);
/* ... or to the caller's CPU's thread, for it alone; as vm_service_hand where the threads
 * are not bound or there is one. */
void vm_service_hand_this(struct vm *vm, struct vm_job *head, struct vm_job *tail);
/* Hands an atomic writeout's job to the service thread whose writeouts' fdatasyncs
 * finished soonest (the top of vm/service.c says why), or as vm_service_hand where
 * threads are not bound. */
void vm_service_hand_wo(struct vm *vm, struct vm_job *job);
/* A writeout's fdatasync that this service thread issued took ns (vm_service_hand_wo
 * learns from it; nothing on other threads). */
void vm_service_wo_synced(uint64_t ns);
/* Queues a job on this service thread's backlog when called on one of vm's, else hands
 * it to one. */
void vm_service_defer(struct vm *vm, struct vm_job *job);
/* Gives a staged load's bounce page back to service thread s (on that thread). */
void vm_service_bounce_put(struct vm_service *s, void *page);
/* Read staging for a run of a stream's window (vm/fault.c, ra_read): one of s's free
 * slots of VM_RSTAGE_BYTES, or NULL (on that thread; the slots are made at the first
 * ask), and giving one back. */
#define VM_RSTAGE_BYTES (1ul << 20)
void *vm_service_rstage_get(struct vm_service *s);
void vm_service_rstage_put(struct vm_service *s, void *slot);
/* Whether every slot of s is held by a run in flight (one is given back when it ends). */
bool vm_service_rstage_held(const struct vm_service *s);
/* len bytes of s's write staging area (vm/writeout.c says why), or NULL when it has not
 * that much free; given back with vm_service_wstage_put once the write completed (on
 * that thread). The area is reused from its start whenever nothing holds a part of it. */
void *vm_service_wstage_get(struct vm_service *s, size_t len);
void vm_service_wstage_put(struct vm_service *s);
/* A queue and staging area lent to the calling application thread, which runs a job's
 * issue op and vm_service_wait on it itself (a synchronous writeout, vm/writeout.c): a
 * struct vm_service with no thread, made on first need (at most a few; reused). NULL
 * when none is idle and no more can be made: hand the job to a service thread. Given back
 * with nothing in flight and no staged write held. */
struct vm_service *vm_service_lend(struct vm *vm);
void vm_service_give_back(struct vm *vm, struct vm_service *l);
/* On the thread lent l: waits for at least one of its requests to complete, and
 * completes every finished one through its job's ops. Returns how many, or -errno. */
int vm_service_wait(struct vm_service *l);

#endif
