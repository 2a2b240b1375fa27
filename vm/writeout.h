/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/writeout.h - writeouts: dirty pages taken in runs, written, synced, and made clean or
 * dirty again (vm/writeout.c).
 */
#ifndef RINGPAGER_VM_WRITEOUT_H
#define RINGPAGER_VM_WRITEOUT_H

#include "vm/service.h"

/* Largest write request a run of dirty pages is coalesced into (writeout). Larger runs
 * are split: the block layer splits them anyway, and the cap bounds how long one
 * request holds a queue slot. */
#define VM_WRITE_MAX_BYTES (8ul << 20)

/* One run of dirty pages written by one request (vm/writeout.c). */
struct vm_wrun {
	struct vm_job job; /* first member */
	struct vm_wo *wo;
	uint64_t first, n; /* pages */
	bool alias;        /* each page mapped in the alias by a copy (PG_ALIAS) when taken */
	int err;
	atomic_int done; /* custom stores: rp_store_done called */
	struct vm_service *stage; /* written from this thread's staging area (vm/writeout.c) ... */
	void *sbuf;               /* ... the copy there */
};

enum vm_wo_phase { WO_WRITE, WO_SYNC, WO_FINISH };

/* One writeout of one handle (vm/writeout.c). */
struct vm_wo {
	struct vm_job job; /* first member */
	struct rp_fileh *fh;
	int flags; /* RP_WRITEOUT_* */
	rp_done_fn done;
	void *arg;
	enum vm_wo_phase phase;
	struct vm_wrun *runs;
	size_t nruns, next; /* runs issued: [0, next) */
	atomic_size_t pending; /* runs issued and not completed, +1 while issuing */
	atomic_int err;        /* first error */
	_Atomic uint64_t err_page; /* first page of the run that failed first, or UINT64_MAX */
	char *msg;                 /* vm_writeout_wait: where the failure is told */
	size_t msglen;
	struct vm_wo *fh_next; /* fh->wo_pending */
	/* The file's size (STORE, not VM_WO_COLD): cut to `cut` before the writes (what the
	 * handle shrank away; UINT64_MAX: nothing), made `size` after them. */
	bool resize;
	uint64_t cut, size;
	struct vm_wo_group *group; /* a member of a group writeout (vm/group.c), or NULL */
	bool logged; /* RP_WRITEOUT_ATOMIC: the redo log was written (vm/atomic.c) */
	uint64_t sync_ns; /* when its fdatasync was issued */
	/* Run by the thread that asked, on this lent queue (vm_writeout_wait), or NULL; its
	 * writes all completed: the next phase is to be issued */
	struct vm_service *here;
	bool again;
};

/* A group writeout as its members see it: with SYNC, a member whose writes are done
 * calls arrive instead of syncing its store; the group syncs each store once and then
 * calls vm_wo_synced on every member. */
struct vm_wo_group {
	void (*arrive)(struct vm_wo_group *g, struct vm_wo *wo);
};

/* Internal writeout flag (beside RP_WRITEOUT_*): only DIRTY pages whose reference bit is
 * clear (reclaim's writeback of cold pages). */
#define VM_WO_COLD 0x100
/* Waiting for a writeout's done: vm_wo_waiter_start before the writeout starts, pass
 * vm_wo_waiter_done and the struct (its msg as the writeout's), then vm_wo_waiter_wait
 * returns the result, the message set (fn: ...). The wait polls first or sleeps as
 * vm->wo_spin chooses, and tells it how long the writeout took (vm/writeout.c). */
struct vm_wo_waiter {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool done; /* read without the lock while polling */
	int result;
	char msg[256];
	struct vm *vm;
	uint64_t t0;
	bool ran_here; /* the waiting thread ran the writeout (wo_run_here): nothing to choose */
};
#define VM_WO_WAITER_INIT                                                                  \
	{PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, "", NULL, 0, false}
void vm_wo_waiter_start(struct vm_wo_waiter *w, struct vm *vm);
void vm_wo_waiter_done(void *arg, int result);
int vm_wo_waiter_wait(struct vm_wo_waiter *w, const char *fn);
/* Starts a writeout of fh (flags checked by the caller), as a member of group g (NULL:
 * none); done(arg, result) runs on a service thread when it ends, after a failure is told
 * in msg (when not NULL). Returns 0, or -ENOMEM (then done is not called). */
int vm_writeout_in(struct rp_fileh *fh, int flags, rp_done_fn done, void *arg, char *msg,
                   size_t msglen, struct vm_wo_group *group);
/* The sync a writeout waited for at WO_SYNC ended with err: it finishes (on the calling
 * service thread). */
void vm_wo_synced(struct vm_wo *wo, int err);
/* Waits until no writeout of fh runs or waits. fh->lock held (dropped while waiting). */
void vm_wo_wait_idle(struct rp_fileh *fh);

#endif
