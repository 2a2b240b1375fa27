/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/objects.h - the objects of vm/ and what they hold; which lock guards what.
 *
 * vm/ turns stores into memory (memfd offset == store offset: docs/design.md):
 *   struct vm          one instance per engine: the RAM pool, one userfaultfd, the
 *                      fault-service threads (each with its own io/ queue), the table
 *                      of user mappings by address, the reclaim state and its thread
 *                      (vm/reclaim.c and the files it names), and the counters.
 *   struct rp_store    where pages come from: an io/ device, or custom ops.
 *   struct rp_fileh    one view of a store: a RAM handle (sparse memfd, RAM offset ==
 *                      store offset), its pagemap (one word per page, vm/page.h), the
 *                      loads in flight, and its user mappings.
 *   struct rp_mapping  one MAP_SHARED mmap of a range of the RAM handle, registered with
 *                      the userfaultfd for MISSING and MINOR faults.
 *
 * Who serves a fault (docs/design.md, "Fault service"): a service thread reads the
 * userfaultfd, finds the mapping and the page, and either maps the resident page
 * (UFFDIO_CONTINUE), or allocates it in the RAM handle and starts a read of the store into
 * the alias mapping; when the read completes, the page is mapped into every mapping of the
 * handle at once (one UFFDIO_CONTINUE per mapping, which also wakes every thread that
 * faulted on it). A miss may also read a window ahead (vm/readahead.c): those pages stay
 * unmapped until touched. So a page is loaded once however many threads wait for it, waiters are
 * woken by the completion, and no lock is held across I/O: the handle's lock protects
 * its pagemap only while states change. With fault_mode=sigbus (vm/sigbus.c) the faulting
 * thread takes the same decision itself in a SIGBUS handler, reads its own page on the
 * spot, and waits for other loads on vm->load_gen; windows still go to the service threads.
 *
 * Locks, in the order they are taken:
 *   sig_rw (vm/sigbus.c)     the table of sigbus engines; held by the handler around all
 *                            of the below
 *   vm->maps_lock (rwlock)   the address table of mappings; read by the fault path
 *   vm->rc.lock              one reclaim sweep at a time (the CLOCK hand); taken with no
 *                            fh->lock held (a fault's load drops its own first), then
 *                            vm->objs_lock and each fh->lock inside it
 *   fh->lock                 the handle's pagemap, loads, mappings list; never held across
 *                            I/O or a custom store's load
 *   vm->jobs_lock            loads handed to the service threads
 * ram/ takes its handle lock inside fh->lock (ram_alloc, ram_release). vm->rc.wlock (reclaim
 * waiters and kicks) is a leaf, taken under any of the others.
 */
#ifndef RINGPAGER_VM_OBJECTS_H
#define RINGPAGER_VM_OBJECTS_H

#include "ringpager.h"
#include "io/io.h"
#include "ram/ram.h"
#include "vm/page.h"
#include "vm/pagemap.h"
#include "vm/params.h"
#include "vm/readahead.h"
#include "vm/spin.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

/* Alias ranges of finished loads unmapped in one process_madvise (vm/alias.c): at most
 * this many ranges, or this many bytes (what RSS may count twice meanwhile), wait. */
#define VM_ZAP_BATCH 64
#define VM_ZAP_BYTES (1ul << 20)
/* Pages read ahead are mapped by the first touch in runs of up to this many bytes (not
 * all at load: an unmapped page is how the engine learns that a page read ahead was
 * used, and the CLOCK sees unused ones as cold). docs/benchmarks.md has the measurements. */
#define VM_RA_CHUNK_BYTES (256ul << 10)

struct vm;
struct vm_service;
struct vm_job;
struct vm_load;
struct vm_wo;

struct rp_store {
	struct vm *vm;
	uint64_t size; /* bytes: as opened, or as the last writeout that changed it made it */
	struct rpio_dev *dev;    /* device store, or NULL */
	const rp_store_ops *ops; /* custom store, or NULL */
	void *ctx;
	unsigned nfileh; /* open handles; under vm->objs_lock */
	bool keep_fd;    /* rp_store_open_fd reopened the caller's file: the descriptor is kept
	                    open after the store closes (POSIX locks: vm_store_free) */
	char *log_path;  /* the redo log of atomic writeouts (vm/atomic.c), or NULL: none can be */
	int log_fd;      /* open once an atomic writeout needed it, else -1 */
	bool log_local;  /* log_fd's file is in the store's filesystem (vm/atomic.c) */
	atomic_bool log_busy; /* an atomic writeout of the store runs, or its log awaits an
	                         open to be applied (a failed one that could not roll forward) */
	struct rp_store *next, *prev;
};

struct rp_fileh {
	struct vm *vm;
	struct rp_store *store;
	struct ram_handle *ram;
	/* Size (docs/design.md, "Files that grow and shrink"); under lock. */
	uint64_t size;      /* bytes: the handle's size, what the next writeout makes the file */
	uint64_t npages;    /* pages covering size; a page at or past it is not the handle's */
	uint64_t disk_size; /* the store's size when opened or last written out (discard) */
	uint64_t zero_from; /* the store's bytes from here on are zero for this handle: the
	                       file ends there, or the handle shrank below it since */
	pthread_mutex_t lock;
	pthread_cond_t cv; /* a load of this handle completed */
	struct vm_pagemap pm;
	struct vm_pagemap dirty; /* 1 for each DIRTY or WRITING page (vm_page_set keeps it) */
	bool dirty_lost;         /* an insertion into it failed: vm_next_dirty walks pm */
	struct vm_load *loads; /* in flight */
	unsigned nloads;
	unsigned ndrops; /* drop jobs queued or running (vm/fault.c, drop_behind); close waits */
	unsigned copies; /* rp_read and rp_write copying through the alias or the memfd */
	unsigned copy_waiters; /* rp_unmap, rp_invalidate, writeouts... waiting on a load's
	                          copy (cv; vm_load_wait_copies) */
	uint64_t copy_seq;     /* copies into a mapping started so far (vm/load.c) */
	/* rp_fileh_stats (the engine's counters are in vm->ctr) */
	_Atomic uint64_t n_loads, n_pages_loaded, n_pages_written, n_evicted, n_writeouts;
	struct rp_mapping *maps; /* live mappings of this handle */
	unsigned nmaps;          /* under vm->objs_lock too, for rp_fileh_close */
	uint64_t ndirty;         /* DIRTY and WRITING pages */
	struct vm_wo *wo_active; /* the writeout running; one per handle at a time */
	struct vm_wo *wo_pending, *wo_pending_tail; /* writeouts waiting for it */
	uint64_t id;     /* order of opening: the reclaim hand moves through handles by it */
	uint64_t unmaps; /* times resident pages were unmapped from the mappings (rc_zap) */
	struct rp_fileh *next, *prev;
	/* Alias ranges loads have filled, to be unmapped from the alias in one call
	 * (vm_alias_zap, vm/alias.c) */
	struct iovec zap[VM_ZAP_BATCH];
	unsigned nzap;
	size_t zap_bytes;
};

struct rp_mapping {
	struct rp_fileh *fh;
	char *addr;
	size_t len;
	uint64_t off; /* store offset of addr */
	uint64_t first, npages;
	int prot;
	bool track;    /* writable: registered for write-protect (dirty tracking) */
	bool remapped; /* VM_POISON_REMAP: some range was remapped to the poison memfd */
	unsigned copying; /* loads copying a page into it with fh->lock dropped (vm/load.c) */
	uint64_t (*pins)[2]; /* ranges pinned through this mapping: (first page, pages) */
	size_t npins, cpins; /* under fh->lock */
	/* an index of pins by range (vm/pin.c): open addressing, 1 + the index in pins, 0
	 * empty; npin_slots a power of two, at least twice cpins */
	uint32_t *pin_slots;
	size_t npin_slots;
	struct vm_ra ra;     /* its readahead stream; under fh->lock */
	struct vm_advice advice; /* under fh->lock */
	struct rp_mapping *next, *prev; /* fh->maps */
};

/* A fault that found the pool full, waiting for memory (vm/memwait.c). */
struct vm_parked {
	uint64_t addr;
	bool write;
	uint64_t deadline; /* CLOCK_MONOTONIC ns: SIGBUS after it */
};

/* Reclaim state (vm/reclaim.c). Locks: rc.lock (one sweep at a time: the hand) is taken
 * before any fh->lock and never inside one; rc.wlock (waiters, kicks) is a leaf. */
struct vm_reclaim {
	struct vm_reclaim_params p;
	uint64_t high, low; /* pages */
	uint64_t dirty_limit; /* pages; 0: none */
	pthread_mutex_t lock;
	uint64_t hand_id, hand_idx; /* the CLOCK hand: a handle (by id) and a page in it */
	pthread_mutex_t wlock;
	pthread_cond_t cv;     /* the reclaim thread waits here */
	pthread_cond_t mem_cv; /* loads waiting for memory wait here */
	pthread_t thread;
	bool started, stop, kicked;
	uint64_t epoch;        /* bumped whenever memory may have been freed */
	struct vm_parked *parked;
	size_t nparked, cparked;
	unsigned nwaiting;     /* loads waiting in vm_reclaim_alloc */
	atomic_uint waiters;   /* nparked + nwaiting, read without the lock */
	atomic_bool busy;      /* background reclaim asked for or running */
	atomic_bool over_limit; /* dirty pages at or above dirty_limit (hook called) */
	bool full_told;        /* the hook was told the pool is full since memory was last freed */
	uint64_t wb_retry_ns;  /* after a failed writeback, none before this time */
	unsigned wb_running;   /* writebacks running, of handles wb_ids[] */
	uint64_t wb_ids[8];    /* RC_WB_MAX */
	void (*hook)(void *arg, int why, uint64_t dirty_bytes);
	bool in_hook; /* the reclaim thread is calling it */
	void *hook_arg;
	uint64_t last_collect_ns;
};

/* A synchronous reclaim frees at least this many pages. */
#define RC_SYNC_MIN 32
/* Handles met with cold dirty pages, for writeback (ids; a few are enough), and
 * writebacks running at once. */
#define RC_WB_MAX (sizeof(((struct vm_reclaim *)0)->wb_ids) / sizeof(uint64_t))

/* How the service threads hand on the faults they read (vm/fault.c's; vm_open sets it). */
struct vm_fault_ops {
	void (*fault)(struct vm *vm, struct vm_service *svc, uint64_t addr, bool write,
	              uint64_t deadline);
	void (*wp_fault)(struct vm *vm, uint64_t addr);
};

struct vm {
	const struct vm_fault_ops *fault_ops;
	struct ram_pool *pool;
	size_t psz;
	int uffd;
	uint64_t uffd_features;
	enum vm_poison_mode poison;
	int poison_fd; /* VM_POISON_REMAP: an empty memfd */
	enum vm_dirty_mode dirty;
	int pagemap_fd; /* /proc/self/pagemap, for PAGEMAP_SCAN (wp_async) */
	int pidfd;      /* this process, for process_madvise(MADV_DONTNEED); -1: madvise */

	pthread_rwlock_t maps_lock;
	struct rp_mapping **by_addr; /* sorted by address */
	size_t nby_addr, cby_addr;

	pthread_mutex_t objs_lock; /* stores and handles lists, counts, kept descriptors */
	struct rp_store *stores;
	struct rp_fileh *filehs;
	/* Descriptors rp_store_open_fd opened on the caller's files, kept open after their
	 * stores closed (vm/store.c says why), reused, closed by vm_close. */
	struct vm_kept_fd {
		int fd, acc;
		dev_t dev;
		ino_t ino;
	} *kept;
	size_t nkept, ckept;

	pthread_mutex_t jobs_lock;
	pthread_cond_t jobs_cv; /* a service thread did what was asked (detach) */
	struct vm_job *jobs_head, *jobs_tail; /* jobs to start, any service thread */
	unsigned next_kick;

	struct vm_service *svc;
	unsigned nsvc;
	bool bound; /* service threads bound to CPUs */
	struct vm_choice wo_ways; /* bound: which service thread a writeout goes to */
	/* Queues and staging areas lent to application threads that run a synchronous
	 * writeout themselves (vm_service_lend; jobs_lock): the idle ones, every one made,
	 * how many are lent out, and whether making one failed (then none is tried again). */
	struct vm_service *lend_free, *lend_all;
	unsigned nlend, nlend_out;
	bool lend_failed;
	bool no_lend; /* tests: lend none (vm_test_lend) */
	struct rpio_queue_params lend_qp;
	/* the service threads that wait on the userfaultfd, a bit per index; chosen by the
	 * faulting threads' affinity when listen_chosen (vm/service.c says how) */
	_Atomic uint64_t listen_mask;
	bool listen_chosen;
	bool no_thread_cpu;             /* VM_NO_THREAD_CPU */
	_Atomic uint64_t listen_all_ns; /* when a thread whose CPU is not known last faulted */
	_Atomic uint32_t unbound_tid;   /* the unbound faulting thread asked about last ... */
	_Atomic uint64_t unbound_ns;    /* ... when */
	atomic_bool stopping;

	struct vm_reclaim rc;
	uint64_t next_fh_id;
	uint64_t ra_max;   /* largest readahead window, pages (readahead_max, at most a quarter
	                      of the pool); 0 or 1: none */
	uint64_t ra_chunk; /* pages read ahead mapped by one touch */
	uint64_t scan_keep; /* pages a stream keeps behind it (scan_keep); 0: all */
	uint64_t spin_ns;  /* fault_spin_us, in ns */
	struct vm_spin spin; /* whether a fault's read is polled for (vm/spin.c) */
	struct vm_spin wo_spin; /* whether rp_writeout's caller polls for the end */
	bool fault_self;   /* fault_mode=sigbus: faults are served by the faulting threads */
	_Atomic uint32_t load_gen;      /* bumped when a load ends; a futex for ... */
	_Atomic uint32_t load_waiters;  /* ... the faulting threads waiting in vm/sigbus.c */
	bool no_copy;      /* VM_FORCE_PWRITE */
	bool no_bounce;    /* VM_NO_BOUNCE */
	bool ra_copy;      /* a stream's windows are staged and copied (vm/fault.c, ra_read) */
	uint64_t log_max;  /* atomic_log_max */
	char log_dir[VM_PATH_MAX];

	struct vm_counters ctr;
	char describe[2048];
};

static inline void vm_abs_time(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

/* CLOCK_MONOTONIC in nanoseconds (reclaim deadlines, the service threads' spin). */
static inline uint64_t vm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
