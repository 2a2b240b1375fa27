/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/vm.h - the virtual-memory core as engine/ sees it: the only vm/ header outside vm/
 * (tests add vm/testing.h). engine/ checks the arguments of the public API and calls
 * these; it touches no vm/ lock or field. vm/README.md has the layers inside; the
 * objects are described in vm/objects.h.
 */
#ifndef RINGPAGER_VM_VM_H
#define RINGPAGER_VM_VM_H

#include "ringpager.h"
#include "vm/err.h"
#include "vm/params.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

/* ---------------------------------------------------------------- the engine (vm/vm.c) */

/* Opens the pool and the userfaultfd (probing features), starts the service and reclaim
 * threads. On failure returns -errno with the message set (vm_errf). */
int vm_open(struct vm **out, const struct vm_params *p);
/* Closes stores, handles and mappings still open, stops the threads, frees the pool. */
void vm_close(struct vm *vm);
/* What was chosen at open (rp_engine_describe). */
const char *vm_describe(const struct vm *vm);
size_t vm_page_size(const struct vm *vm);
/* The counters (rp_stats). */
void vm_stats(struct vm *vm, struct rp_stats *out);
/* Evicts up to `want` clean pages, from any thread holding no vm/ lock (vm/evict.c).
 * Returns the pages freed. */
uint64_t vm_reclaim_pages(struct vm *vm, uint64_t want);
/* Sets the pressure hook (NULL: none); a call in progress ends first (vm/reclaim.c). */
void vm_reclaim_set_hook(struct vm *vm, void (*hook)(void *, int, uint64_t), void *arg);
/* True on a fault-service thread (of any engine): functions that wait for the service
 * refuse to run there (-EDEADLK). vm/service.c. */
bool vm_on_service_thread(void);
/* Serves the fault a SIGBUS reports when it is one of a sigbus engine's: true when the
 * access may be retried, false when the signal is not ringpager's to serve (another
 * address, another kind of SIGBUS, or a page that failed). Async-signal context.
 * vm/sigbus.c. */
bool vm_sigbus_serve(const siginfo_t *si, void *uc);

/* ---------------------------------------------------------------- stores (vm/store.c) */

int vm_store_open(struct vm *vm, const char *path, int flags, struct rp_store **out);
int vm_store_create(struct vm *vm, const rp_store_ops *ops, void *ctx, uint64_t size,
                    struct rp_store **out);
/* rp_store_open_fd: a store over the caller's descriptor fd (the header says how). */
int vm_store_open_fd(struct vm *vm, int fd, int flags, struct rp_store **out);
/* -EBUSY while handles are open. */
int vm_store_close(struct rp_store *st);
uint64_t vm_store_size(const struct rp_store *st);

/* ---------------------------------------------------------------- handles (vm/fileh.c) */

int vm_fileh_open(struct rp_store *st, struct rp_fileh **out);
int vm_fileh_close(struct rp_fileh *fh);
/* A handle's page size, its size, and its end: the size rounded up to a page. */
struct vm_extent {
	size_t psz;
	uint64_t size, end;
};
void vm_fileh_extent(struct rp_fileh *fh, struct vm_extent *out);
/* The handle's size, and rp_fileh_resize (the header says what it does). */
uint64_t vm_fileh_size(struct rp_fileh *fh);
int vm_fileh_resize(struct rp_fileh *fh, uint64_t size);
/* rp_fileh_refresh */
int vm_fileh_refresh(struct rp_fileh *fh);
/* 0 when the handle's store can keep a redo log (RP_WRITEOUT_ATOMIC); else -EOPNOTSUPP
 * (a custom store) or -EINVAL (a block device without atomic_log_dir), the message
 * naming fn. */
int vm_fileh_atomic_ok(const struct rp_fileh *fh, const char *fn);
/* The engine of a handle (to tell engines apart). */
struct vm *vm_fileh_vm(const struct rp_fileh *fh);
/* rp_fileh_stats. */
void vm_fileh_stats(struct rp_fileh *fh, struct rp_fileh_stats *out);
/* 0 when the handle's store takes writes; else -EBADF (opened O_RDONLY) or -EOPNOTSUPP
 * (a custom store without a store callback), the message naming fn. */
int vm_fileh_writable(const struct rp_fileh *fh, const char *fn);
/* Drops the pages of nr ranges (first page, pages; dirty ones too) from the handle, in
 * one hold of its lock: -EBUSY (nothing done) when one is pinned. */
int vm_invalidatev(struct rp_fileh *fh, const uint64_t (*r)[2], size_t nr);
int vm_discard(struct rp_fileh *fh);
int vm_fileh_dirty(struct rp_fileh *fh, uint64_t *pages);
/* Starts a writeout of fh (flags checked by the caller); done(arg, result) runs on a
 * service thread when it ends, after a failure is told in msg (when not NULL). Returns
 * 0, or -ENOMEM (then done is not called). vm/writeout.c. */
int vm_writeout(struct rp_fileh *fh, int flags, rp_done_fn done, void *arg, char *msg,
                size_t msglen);
/* vm_writeout, then waits for its result. */
int vm_writeout_wait(struct rp_fileh *fh, int flags);
/* A writeout of n handles as one (vm/group.c; arguments checked by the caller): done
 * as vm_writeout's. 0 or -ENOMEM (then done is not called). */
int vm_writeoutv(struct rp_fileh *const *fhs, size_t n, int flags, rp_done_fn done,
                 void *arg, char *msg, size_t msglen);
/* vm_writeoutv, then waits for its result. */
int vm_writeoutv_wait(struct rp_fileh *const *fhs, size_t n, int flags);

/* ---------------------------------------------------------------- mappings (vm/fileh.c) */

/* Maps len bytes of fh from store offset off (page-aligned; past the end: room to grow).
 * -EOPNOTSUPP for PROT_WRITE where the kernel cannot track writes. */
int vm_map(struct rp_fileh *fh, uint64_t off, size_t len, int prot, struct rp_mapping **out);
int vm_unmap(struct rp_mapping *m);
/* Where a mapping is and what of its handle it shows: pages [first, first + len/psz). */
struct vm_map_info {
	struct rp_fileh *fh;
	void *addr;
	size_t len, psz;
	uint64_t first;
};
void vm_mapping_info(const struct rp_mapping *m, struct vm_map_info *out);
/* Sets the advice of pages [first, first + n) of m: RP_ADVICE_NORMAL, _SEQUENTIAL or
 * _RANDOM. 0 or -ENOMEM. */
int vm_map_advise(struct rp_mapping *m, uint64_t first, uint64_t n, int advice);
/* Loads every absent page of ranges (page indexes of m's handle) and, with pin, pins them all
 * and maps them into m; without wait, only starts the loads (WILLNEED). Returns 0, -EIO
 * (or the load's error) when a page is poisoned, -ENOMEM when the pool is full,
 * -EOVERFLOW when a pin count would pass its limit. vm/pin.c. */
int vm_pin(struct rp_mapping *m, const uint64_t (*ranges)[2], size_t n, bool pin, bool wait);
/* rp_read (write false) and rp_write: copies between buf and [off, off + len) of the
 * handle, short at its end; loads what is absent, batched, and waits for memory as rp_pin
 * does. Bytes copied, or -errno when none were (-EIO: a load failed; -ENOMEM: the pool
 * cannot make room). vm/pin.c. */
int64_t vm_rw(struct rp_fileh *fh, uint64_t off, void *buf, size_t len, bool write);
/* Releases the pin that m took over exactly [first, first + n); -EINVAL if none. */
int vm_unpin(struct rp_mapping *m, uint64_t first, uint64_t n);
/* Drops the clean, unpinned pages of [first, first + n) from the pool (rp_advise
 * DONTNEED): their next touch reads the store again. Dirty pages stay (writes that
 * wp_async recorded in page tables are found first). vm/evict.c. */
int vm_dontneed(struct rp_mapping *m, uint64_t first, uint64_t n);

#endif
