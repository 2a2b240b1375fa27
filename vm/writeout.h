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
	int err;
	atomic_int done; /* custom stores: rp_store_done called */
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
};

/* Internal writeout flag (beside RP_WRITEOUT_*): only DIRTY pages whose reference bit is
 * clear (reclaim's writeback of cold pages). */
#define VM_WO_COLD 0x100
/* Starts a writeout of fh (flags checked by the caller); done(arg, result) runs on a
 * service thread when it ends, after a failure is told in msg (when not NULL). Returns
 * 0, or -ENOMEM (then done is not called). */
/* Waits until no writeout of fh runs or waits. fh->lock held (dropped while waiting). */
void vm_wo_wait_idle(struct rp_fileh *fh);

#endif
