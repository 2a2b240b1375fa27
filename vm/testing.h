/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/testing.h - what tests may see of vm/ beyond the public API: hooks into races, the
 * test flags (VM_FORCE_*, vm/params.h), a page's state, the service threads' listening
 * masks, and the pure units they test directly (the pagemap, the readahead detector, the
 * order of reaped completions).
 * Implemented in vm/testing.c; nothing in the library calls these.
 */
#ifndef RINGPAGER_VM_TESTING_H
#define RINGPAGER_VM_TESTING_H

#include "vm/vm.h"
#include "vm/page.h"
#include "vm/pagemap.h"
#include "vm/readahead.h"
#include "vm/reaped.h"
#include "io/io.h"

/* Called by rp_pin between its walk that maps what is resident and its last pass, with
 * no lock held; NULL otherwise. */
extern void (*vm_pin_hook)(struct rp_fileh *fh);
/* Called by vm_load_finish before it takes the handle's lock, on the thread that
 * finishes the load; NULL otherwise. */
extern void (*vm_load_finish_hook)(struct rp_fileh *fh);

/* Called by vm_load_finish once it has copied a staged load (a fault's or a pin's lone
 * page, or a run of a stream's window; `page` its first) into its mapping with the
 * handle's lock dropped (vm/load.c, load_copy_out), before a pin's pages are read there
 * and before it takes the lock again; on the thread that finishes the load (for a fault's
 * page in fault_mode=sigbus, the faulting thread's signal handler). NULL otherwise. */
extern void (*vm_copy_out_hook)(struct rp_fileh *fh, uint64_t page);
/* A write-protect fault on page idx of m, as a service thread serves one (vm_wp_fault). */
void vm_test_wp_fault(struct rp_mapping *m, uint64_t idx);

/* The engine of a handle. */
struct vm *vm_test_vm(struct rp_fileh *fh);
/* The state (PG_*) of page idx of fh, after collecting the writes recorded in page
 * tables (wp_async). */
unsigned vm_test_page_state(struct rp_fileh *fh, uint64_t idx);
/* Whether page idx of fh carries a readahead window's marker (PG_RA_MARK). */
bool vm_test_page_marked(struct rp_fileh *fh, uint64_t idx);
/* The RAM handle's alias mapping: every page of the handle, at its store offset. */
char *vm_test_alias(struct rp_fileh *fh);
/* A device store's io/ device (rpio_dev_inject, its counters). */
struct rpio_dev *vm_test_dev(struct rp_store *st);
/* The store of a handle (a handle from a layer above, as the SQLite VFS's). */
struct rp_store *vm_test_store(struct rp_fileh *fh);
/* The dirty pages are at or above dirty_limit (the hook was told). */
bool vm_test_over_limit(const struct vm *vm);
/* Gives up the handle's dirty index, as a failed insertion would: writeout then walks
 * every resident page (the fallback of vm_next_dirty). */
void vm_test_lose_dirty_index(struct rp_fileh *fh);
/* fault_mode=sigbus. */
bool vm_test_fault_self(const struct vm *vm);

/* The service threads (vm/service.c): how many; the CPU thread i is bound to, or -1;
 * whether who listens is chosen by the faulting threads' affinity; the threads that
 * listen, the ones whose last sleep waited on the userfaultfd, and all, as bits. */
unsigned vm_test_nsvc(const struct vm *vm);
int vm_service_cpu(const struct vm *vm, unsigned i);
bool vm_test_listen_chosen(const struct vm *vm);
uint64_t vm_test_listen_mask(const struct vm *vm);
/* How long a CPU, or every one, listens after a thread's fault (LISTEN_KEEP_NS, 100 ms):
 * a test that needs two threads' faults to fall within it on a loaded machine lengthens
 * it before it opens its engine. */
extern uint64_t vm_listen_keep_ns;
/* What a collection's call costs, in mapped pages walked (vm/dirty.c,
 * COLLECT_CALL_PAGES): a test may lower it so that small mappings take the two walks. */
extern uint64_t vm_collect_call_pages;
/* UFFDIO_WRITEPROTECT calls made by wp_sync writeouts to protect their runs again
 * (vm/writeout.c, wo_protect), in all engines. */
extern atomic_ulong vm_wo_protect_calls;
uint64_t vm_listening(const struct vm *vm);
uint64_t vm_listen_all(const struct vm *vm);
/* Chains of jobs service thread `which` (-1: all of them) took from its own list
 * (vm_service_hand_other, vm_service_hand_this). */
uint64_t vm_service_own_taken(struct vm *vm, int which);
/* Fault messages the service threads read between two finishes of one reap. */
uint64_t vm_service_faults_between(struct vm *vm);
/* Requests the service threads started together, with their queue held, after a reap
 * that freed slots of a full queue (vm/service.c, reap). */
uint64_t vm_service_refilled(struct vm *vm);
/* The engine's userfaultfd: a test polls it to see a fault message waiting. */
int vm_test_uffd(const struct vm *vm);
/* Which service thread writeouts go to (vm_service_hand_wo): its measurements. */
struct vm_choice *vm_test_wo_ways(struct vm *vm);
/* Whether rp_writeout's caller polls for the end (vm/writeout.c): its counts. */
struct vm_spin *vm_test_wo_spin(struct vm *vm);
/* Whether rp_writeout may run a writeout on its caller's thread (vm_service_lend);
 * false: every writeout goes to the service threads, as where no queue can be lent. */
void vm_test_lend(struct vm *vm, bool allow);

#endif
