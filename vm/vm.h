/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/vm.h - the virtual-memory core: the contract of the layer.
 *
 * vm/ turns stores into memory (memfd offset == store offset: docs/design.md):
 *   struct vm          one instance per engine: the RAM pool, one userfaultfd, the
 *                      fault-service threads (each with its own io/ queue), the table
 *                      of user mappings by address, the reclaim state and its thread
 *                      (vm/reclaim.c), and the counters.
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
#ifndef RINGPAGER_VM_H
#define RINGPAGER_VM_H

#include "ringpager.h"
#include "io/io.h"
#include "ram/ram.h"
#include "vm/page.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/uio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest load request a range of absent pages is coalesced into (rp_pin, WILLNEED). */
#define VM_LOAD_MAX_BYTES (1ul << 20)
/* Pages read ahead are mapped by the first touch in runs of up to this many bytes (not
 * all at load: an unmapped page is how the engine learns that a page read ahead was
 * used, and the CLOCK sees unused ones as cold). docs/benchmarks.md has the measurements. */
#define VM_RA_CHUNK_BYTES (256ul << 10)
/* Alias ranges of finished loads unmapped in one process_madvise (vm/load.c): at most
 * this many ranges, or this many bytes (what RSS may count twice meanwhile), wait. */
#define VM_ZAP_BATCH 64
#define VM_ZAP_BYTES (1ul << 20)
/* Largest write request a run of dirty pages is coalesced into (writeout). Larger runs
 * are split: the block layer splits them anyway, and the cap bounds how long one
 * request holds a queue slot. */
#define VM_WRITE_MAX_BYTES (8ul << 20)

/* ---------------------------------------------------------------- messages */

/* Sets this thread's message for rp_errmsg() and returns err (a negative errno). */
int vm_errf(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *vm_errmsg(void);
void vm_errclear(void);

/* ---------------------------------------------------------------- pagemap
 *
 * A radix table keyed by page index: nodes of 64 children, leaves of 64 slots, height
 * chosen from the handle's page count. Lookup walks at most ceil(log64(npages)) nodes;
 * adjacent pages share a leaf (512 bytes for 64 pages, 8 bytes a page when dense; a leaf
 * holding at most 14 pages is a small one of 32 to 128 bytes, vm/pagemap.c); a leaf is
 * freed when its last slot returns to 0, and a node when its last child goes, so the
 * table's size follows what is resident. Iteration is in page order. Not thread-safe: the
 * handle's lock protects it. Nodes come from the pool's metadata arena. */
#define PM_BITS   6
#define PM_FANOUT (1u << PM_BITS)

struct vm_pagemap {
	struct ram_pool *pool;
	uint64_t npages;
	unsigned height; /* levels of nodes above the leaves: 0 means the root is a leaf */
	void *root;
	uint64_t nodes; /* nodes and leaves allocated */
};

void pagemap_init(struct vm_pagemap *pm, struct ram_pool *pool, uint64_t npages);
/* Frees every node (the slots' meaning is the caller's business). */
void pagemap_fini(struct vm_pagemap *pm);
/* The slot of page idx, 0 when absent. */
uint64_t pagemap_get(const struct vm_pagemap *pm, uint64_t idx);
/* Stores w in the slot of page idx, creating the path (-ENOMEM when the arena cannot).
 * Storing 0 frees leaves and nodes left empty. */
int pagemap_set(struct vm_pagemap *pm, uint64_t idx, uint64_t w);
/* The first non-zero slot at index >= from: true with *idx and *w set, or false. */
bool pagemap_next(const struct vm_pagemap *pm, uint64_t from, uint64_t *idx, uint64_t *w);

/* ---------------------------------------------------------------- objects */

struct vm;
struct vm_service;

struct rp_store {
	struct vm *vm;
	uint64_t size;
	struct rpio_dev *dev;    /* device store, or NULL */
	const rp_store_ops *ops; /* custom store, or NULL */
	void *ctx;
	unsigned nfileh; /* open handles; under vm->objs_lock */
	struct rp_store *next, *prev;
};

/* Work for a fault-service thread: queued in its backlog (or the shared jobs list), and
 * the udata of the io/ requests it issues. Each kind of job (a load, a writeout, a
 * writeout's run) heads its own struct and brings its ops: the service threads run jobs
 * through them and know nothing of what they are. */
struct vm_job;
struct vm_job_ops {
	/* Starts the job on service thread s's queue (vm_service_queue): 0 when done with it
	 * (issued, or finished), -EBUSY when the queue is full (called again after
	 * completions). NULL for jobs that are never queued on their own. */
	int (*issue)(struct vm_job *job, struct vm_service *s);
	/* One of the job's requests completed: 0 or -errno. On the service thread that
	 * reaped it. */
	void (*complete)(struct vm_job *job, int err);
};

struct vm_job {
	const struct vm_job_ops *ops;
	struct vm_job *qnext; /* a service thread's backlog or the jobs list */
	bool spin;            /* a fault's own read: its service thread polls for it */
};

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
	bool fault;                  /* a fault's own read: its thread waits (service spin) */
	bool staged;                 /* read through a bounce page (the faulting thread's,
	                                vm/sigbus.c, or a service thread's), then put in the
	                                RAM handle: the alias was not touched */
	void *src;                   /* staged: the bounce page read, put in place at finish */
	struct vm_service *bsvc;     /* ... a service thread's, given back at finish */
	struct rp_mapping *dst;      /* staged: the mapping that faulted, where the page goes
	                                with UFFDIO_COPY; NULL once it is unmapped */
	bool copied;                 /* ... and went: finish need not map it there */
	struct vm_load *next, *prev; /* fh->loads */
	atomic_int done;             /* custom stores: rp_load_done called */
} __attribute__((aligned(16)));

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
};

struct rp_fileh {
	struct vm *vm;
	struct rp_store *store;
	struct ram_handle *ram;
	uint64_t npages;
	pthread_mutex_t lock;
	pthread_cond_t cv; /* a load of this handle completed */
	struct vm_pagemap pm;
	struct vm_load *loads; /* in flight */
	unsigned nloads;
	struct rp_mapping *maps; /* live mappings of this handle */
	unsigned nmaps;          /* under vm->objs_lock too, for rp_fileh_close */
	uint64_t ndirty;         /* DIRTY and WRITING pages */
	struct vm_wo *wo_active; /* the writeout running; one per handle at a time */
	struct vm_wo *wo_pending, *wo_pending_tail; /* writeouts waiting for it */
	uint64_t id;     /* order of opening: the reclaim hand moves through handles by it */
	uint64_t unmaps; /* times resident pages were unmapped from the mappings (rc_zap) */
	struct rp_fileh *next, *prev;
	/* Alias ranges loads have filled, to be unmapped from the alias in one call
	 * (vm_alias_zap, vm/load.c) */
	struct iovec zap[VM_ZAP_BATCH];
	unsigned nzap;
	size_t zap_bytes;
};

/* ---------------------------------------------------------------- readahead
 *
 * vm/readahead.c (the algorithm is explained at its top). The detector is pure: it sees
 * the pagemap only through vm_ra_env, so tests feed it access sequences. */

/* One stream's state (one per mapping, like the kernel's per open file): the last window
 * read, pages [start, start + size), whose marker is at start + size - async. */
struct vm_ra {
	uint64_t start, size, async;
	uint64_t prev;  /* the last page the stream touched; UINT64_MAX: none yet */
	unsigned miss;  /* misses, less pages read ahead and used: past RA_MISS_MAX, no guessing */
};

/* What the detector may look at. */
struct vm_ra_env {
	uint64_t max;    /* the largest window, pages (0 or 1: no readahead) */
	uint64_t lo, hi; /* the pages the stream may read: [lo, hi) */
	bool (*present)(void *arg, uint64_t idx); /* page idx resident or being loaded */
	void *arg;
};

/* A window to read: pages [start, start + size); mark: the page to carry the marker, or
 * UINT64_MAX. Pages already present are skipped when it is read. */
struct vm_ra_win {
	uint64_t start, size, mark;
};

void vm_ra_init(struct vm_ra *ra);
/* A fault found page idx absent; advice RP_ADVICE_NORMAL, _SEQUENTIAL or _RANDOM. True
 * with *w the window to read (the page idx itself is loaded by the caller either way);
 * false: idx alone. */
bool vm_ra_sync(struct vm_ra *ra, const struct vm_ra_env *e, int advice, uint64_t idx,
                struct vm_ra_win *w);
/* A fault found the marker on page idx: true with *w the next window (asynchronous). */
bool vm_ra_async(struct vm_ra *ra, const struct vm_ra_env *e, int advice, uint64_t idx,
                 struct vm_ra_win *w);
/* n pages read ahead were used, the last of them `last`: the back-off's credit. */
void vm_ra_used(struct vm_ra *ra, uint64_t last, uint64_t n);

/* A range of a mapping with advice other than NORMAL. */
struct vm_adv {
	uint64_t first, end; /* pages of the handle */
	int advice;          /* RP_ADVICE_SEQUENTIAL or RP_ADVICE_RANDOM */
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
	uint64_t (*pins)[2]; /* ranges pinned through this mapping: (first page, pages) */
	size_t npins, cpins; /* under fh->lock */
	struct vm_ra ra;     /* its readahead stream; under fh->lock */
	struct vm_adv *adv;  /* advice ranges, sorted and disjoint; under fh->lock */
	size_t nadv;
	struct rp_mapping *next, *prev; /* fh->maps */
};

/* How a failed load is shown to threads that touch it. */
enum vm_poison_mode {
	VM_POISON_UFFD = 0, /* UFFDIO_POISON (Linux 6.6): a marker in the page table */
	VM_POISON_REMAP,    /* the range is remapped to an empty memfd: access is past its
	                       end, SIGBUS with the address; invalidate maps the RAM back */
};

/* How writes to mappings are noticed (vm/dirty.c). */
enum vm_dirty_mode {
	VM_DIRTY_AUTO = 0,
	VM_DIRTY_WP_ASYNC, /* UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN (Linux 6.7) */
	VM_DIRTY_WP_SYNC,  /* write-protect faults served by the service threads */
	VM_DIRTY_NONE,     /* the kernel has neither: writable mappings are refused */
};

const char *vm_dirty_name(enum vm_dirty_mode d);

/* rp_config.internal_flags: for tests and benchmarks */
#define VM_FORCE_POISON_REMAP 1u /* use VM_POISON_REMAP even where UFFDIO_POISON works */
#define VM_FORCE_NO_WP        2u /* act as if the kernel had no write-protect for shmem */
#define VM_SLOW_ZAP           4u /* reclaim sleeps 100 us between its write scan and its zap,
                                    widening the race that the scan after the zap closes */
#define VM_FORCE_MADVISE      8u /* unmap the alias with madvise per range, as where the
                                    kernel refuses process_madvise(MADV_DONTNEED) */
/* a staged load's page goes into the RAM handle with pwrite(2), as where UFFDIO_COPY
 * cannot map it (the faulting mapping went) */
#define VM_FORCE_PWRITE 16u
/* service threads get no bounce pages: faults read into the alias, as when all are in use */
#define VM_NO_BOUNCE 32u

#define VM_MAX_FAULT_THREADS 64

/* What reclaim does with dirty victims (vm/reclaim.c). */
enum vm_dirty_policy {
	VM_POLICY_KEEP = 0,  /* never evicted: the application writes them out */
	VM_POLICY_WRITEBACK, /* the engine writes cold dirty pages back itself, then evicts */
};

const char *vm_policy_name(enum vm_dirty_policy p);

/* Why the pressure hook is called (the public RP_PRESSURE_* values). */
enum { VM_PRESSURE_DIRTY_LIMIT = 1, VM_PRESSURE_POOL_FULL = 2 };

struct vm_reclaim_params {
	unsigned flags;          /* VM_SLOW_ZAP */
	unsigned high, low;      /* percent of the pool: background reclaim from high down to low */
	uint64_t dirty_limit_bytes; /* the limit in bytes; 0: dirty_limit_pct */
	unsigned dirty_limit_pct;   /* ... or percent of the pool; both 0: no limit */
	enum vm_dirty_policy policy;
	unsigned wait_ms;        /* how long a load waits for memory before failing */
};

struct vm_params {
	struct ram_pool_params pool;
	struct rpio_queue_params queue; /* notify fields are the service's own */
	unsigned fault_threads; /* 0: one per CPU, each bound to its CPU */
	unsigned flags;         /* VM_FORCE_* */
	enum vm_dirty_mode dirty; /* VM_DIRTY_AUTO: the best the kernel has */
	struct vm_reclaim_params reclaim;
	uint64_t readahead_max; /* bytes; 0: no readahead */
	uint64_t fault_spin_ns; /* vm/service.c: polling for a fault's read before sleeping */
	bool fault_self;        /* fault_mode=sigbus (vm/sigbus.c) */
};

struct vm_counters {
	_Atomic uint64_t faults, minor_faults, pages_loaded, bytes_read, loads, load_errors;
	_Atomic uint64_t wp_faults, dirty_pages, writeouts, writeout_errors, pages_written,
	    bytes_written, write_requests;
	_Atomic uint64_t evicted, reclaim_passes, ref_hits, hook_calls, mem_waits, mem_failures,
	    writebacks;
	_Atomic uint64_t ra_pages, ra_used, ra_wasted, ra_windows;
};

/* A fault that found the pool full, waiting for memory (vm/reclaim.c). */
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

	pthread_mutex_t objs_lock; /* stores and handles lists, counts */
	struct rp_store *stores;
	struct rp_fileh *filehs;

	pthread_mutex_t jobs_lock;
	pthread_cond_t jobs_cv; /* a service thread did what was asked (detach) */
	struct vm_job *jobs_head, *jobs_tail; /* jobs to start, any service thread */
	unsigned next_kick;

	struct vm_service *svc;
	unsigned nsvc;
	bool bound; /* service threads bound to CPUs */
	/* the service threads that wait on the userfaultfd, a bit per index; chosen by the
	 * faulting threads' affinity when listen_chosen (vm/service.c says how) */
	_Atomic uint64_t listen_mask;
	bool listen_chosen;
	_Atomic uint64_t listen_all_ns; /* when a thread not bound to one CPU last faulted */
	atomic_bool stopping;

	struct vm_reclaim rc;
	uint64_t next_fh_id;
	uint64_t ra_max;   /* largest readahead window, pages (readahead_max, at most a quarter
	                      of the pool); 0 or 1: none */
	uint64_t ra_chunk; /* pages read ahead mapped by one touch */
	uint64_t spin_ns;  /* fault_spin_us, in ns */
	bool fault_self;   /* fault_mode=sigbus: faults are served by the faulting threads */
	_Atomic uint32_t load_gen;      /* bumped when a load ends; a futex for ... */
	_Atomic uint32_t load_waiters;  /* ... the faulting threads waiting in vm/sigbus.c */
	bool no_copy;      /* VM_FORCE_PWRITE */
	bool no_bounce;    /* VM_NO_BOUNCE */

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

/* vm/vm.c: opens the pool and the userfaultfd (probing features), starts the service
 * threads. On failure returns -errno with the message set (vm_errf). */
int vm_open(struct vm *vm, const struct vm_params *p);
/* Closes stores, handles and mappings still open, stops the threads, frees the pool. */
void vm_close(struct vm *vm);

/* vm/uffd.c: userfaultfd. */
/* Opens the engine's userfaultfd and chooses the dirty-tracking mechanism (`dirty`, or
 * the best there is for VM_DIRTY_AUTO); *why says what was chosen, or why it failed. */
int vm_uffd_open(struct vm *vm, unsigned flags, enum vm_dirty_mode dirty, char *why,
                 size_t len);
/* Registers a mapping for MISSING and MINOR faults, and write-protect ones with track. */
int vm_uffd_register(struct vm *vm, void *addr, size_t len, bool track);
void vm_uffd_unregister(struct vm *vm, void *addr, size_t len);
/* Maps [first, first+npages) of mapping m from the RAM handle's pages (UFFDIO_CONTINUE)
 * and wakes the threads faulting there; write-protected in a tracked mapping unless
 * `writable` (the page is dirty already). Pages already mapped are fine. */
void vm_uffd_continue(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages,
                      bool writable);
/* Write-protects (or unprotects, which wakes writers) [first, first+npages) in a tracked
 * mapping m; nothing for an untracked one. */
void vm_uffd_protect(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages,
                     bool protect);
struct page_region;
/* PAGEMAP_SCAN of [start, end) in this process: the written pages, write-protected again
 * in the same walk. Fills vec (n entries); returns the regions filled, or -errno; sets
 * *walk_end to where the walk stopped (end, unless vec filled up). */
int vm_pagemap_scan(int pagemap_fd, uint64_t start, uint64_t end, struct page_region *vec,
                    size_t n, uint64_t *walk_end);
/* For each region of pages in [start, end) of mapping m (addresses) whose categories,
 * XORed with `inverted`, hold every bit of `mask`: fn(fh, first, end, categories, arg),
 * first and end page indexes of the handle; a non-zero return stops the walk. With wp the
 * pages reported are write-protected in the same walk (wp_async mappings only). Returns
 * false when the kernel refused the scan or fn stopped it. */
typedef int (*vm_region_fn)(struct rp_fileh *fh, uint64_t first, uint64_t end, uint64_t cat,
                            void *arg);
bool vm_pagemap_walk(struct vm *vm, struct rp_mapping *m, uint64_t start, uint64_t end, bool wp,
                     uint64_t inverted, uint64_t mask, vm_region_fn fn, void *arg);
/* The part of pages [first, first + npages) that mapping m covers, as an address and a
 * length in bytes; false when they do not meet. */
bool vm_map_overlap(const struct rp_mapping *m, uint64_t first, uint64_t npages,
                    uint64_t *start, uint64_t *len, size_t psz);
/* Wakes threads faulting on [first, first+npages) of m: they fault again. */
void vm_uffd_wake(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages);
/* Maps those of [first, first+npages) that m does not map yet (fault-around): pages
 * already mapped are skipped, write-protected in a tracked mapping. */
void vm_uffd_map_around(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages);
/* Puts one page, the psz bytes at src, into the RAM handle and maps it in m at once
 * (UFFDIO_COPY: the kernel allocates the memfd page, copies, maps; write-protected in a
 * tracked mapping unless writable), and wakes the threads faulting on it there if wake
 * (so the page's state must say it is in before). 0, or -errno with nothing done, nobody
 * woken (-EEXIST: the page is in the memfd or mapped already; -ENOENT: the mapping is
 * gone). */
int vm_uffd_copy(struct vm *vm, struct rp_mapping *m, uint64_t page, const void *src,
                 bool writable, bool wake);
/* Makes [first, first+npages) of mapping m raise SIGBUS on access, waking waiters. */
void vm_uffd_poison(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages);
/* Undoes vm_uffd_poison over a range (mapping's own pages, not the handle's states). */
void vm_uffd_unpoison(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages);
/* Handles one MISSING or MINOR fault message: the address and whether it was a write.
 * deadline: 0 for a new fault; a parked fault retried (vm/reclaim.c) keeps its own. */
void vm_fault(struct vm *vm, struct vm_service *svc, uint64_t addr, bool write,
              uint64_t deadline);
/* What a fault served by the faulting thread itself came to (fault_mode=sigbus). */
enum vm_fault_outcome {
	VM_FAULT_NOT_MINE, /* no mapping of this engine holds the address */
	VM_FAULT_RETRY,    /* the page is mapped (or its load went to a custom store): retry */
	VM_FAULT_WAIT,     /* another load of the page is in flight: wait for load_gen */
	VM_FAULT_FAILED,   /* the page failed to load, or no memory: the access gets SIGBUS */
};
/* Maps the resident pages of idx's 64 KiB block into m and marks them referenced
 * (fault-around, vm/load.c). fh->lock held. */
#define VM_FAULT_AROUND_BYTES (64ul << 10)
void vm_fault_around(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx);
/* The same decision as vm_fault, taken on the faulting thread: the faulting page is read
 * on this thread (rpio_pread) and mapped before it returns; readahead windows go to the
 * service threads. No lock held on entry. */
enum vm_fault_outcome vm_fault_self(struct vm *vm, uint64_t addr, bool write);

/* vm/sigbus.c: fault_mode=sigbus, the process's SIGBUS handler. */
/* Adds vm to the engines the handler serves, installing the handler with the first. */
int vm_sigbus_add(struct vm *vm);
/* Serves the fault a SIGBUS reports when it is one of a sigbus engine's: true when the
 * access may be retried, false when the signal is not ringpager's to serve (another
 * address, another kind of SIGBUS, or a page that failed). Async-signal context. */
bool vm_sigbus_serve(const siginfo_t *si, void *uc);
/* Removes vm; the handler stays installed while the process's handler is still ours. */
void vm_sigbus_remove(struct vm *vm);
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

/* For tests: called by rp_pin between its walk that maps what is resident and its last
 * pass, with no lock held; NULL otherwise. */
extern void (*vm_pin_hook)(struct rp_fileh *fh);
/* For tests: called by vm_load_finish before it takes the handle's lock, on the thread
 * that finishes the load; NULL otherwise. */
extern void (*vm_load_finish_hook)(struct rp_fileh *fh);

/* vm/service.c: the fault-service threads. */
int vm_service_start(struct vm *vm, const struct vm_params *p);
void vm_service_stop(struct vm *vm);
/* Every service thread drops its queue's registration of dev (a store closes). */
void vm_service_detach(struct vm *vm, struct rpio_dev *dev);
/* The CPU service thread i is bound to, or -1. */
int vm_service_cpu(const struct vm *vm, unsigned i);
/* The service threads whose last sleep in poll(2) waited on the userfaultfd, as bits of
 * listen_mask (those that do listen, for tests). */
uint64_t vm_listening(const struct vm *vm);
/* Every service thread's bit of listen_mask. */
uint64_t vm_listen_all(const struct vm *vm);
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
/* Queues a job on this service thread's backlog when called on one of vm's, else hands
 * it to one. */
void vm_service_defer(struct vm *vm, struct vm_job *job);
/* Gives a staged load's bounce page back to service thread s (on that thread). */
void vm_service_bounce_put(struct vm_service *s, void *page);
/* True on a fault-service thread (of any engine): functions that wait for the service
 * refuse to run there (-EDEADLK). */
bool vm_on_service_thread(void);

/* vm/load.c: loads, pins, invalidation. fh->lock held where said. */
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
/* Issues ld's read on a queue (device store) or calls the custom store's load. Called
 * without fh->lock. With q NULL a device store's read is done on this thread, and ld is
 * finished before the return. Returns 0 once issued or completed, -EBUSY when the queue
 * is full (try again later). */
int vm_load_issue(struct vm_load *ld, struct rpio_queue *q);
/* Unmaps [first, first + n) of the handle from its alias, batched with others: the pages
 * stay in the memfd. flush: now, with what is pending. fh->lock held. */
void vm_alias_zap(struct rp_fileh *fh, uint64_t first, uint64_t n, bool flush);
/* Completes a load with err (0 or -errno): LOADING -> LOADED, POISONED or (stale) EMPTY,
 * maps or poisons its range in every mapping, wakes pin waiters, frees ld. Any thread. */
void vm_load_finish(struct vm_load *ld, int err);
/* Loads started and not issued yet, chained through job.qnext. */
struct vm_load_batch {
	struct vm_load *head, *tail;
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
/* Loads every absent page of ranges (page indexes of fh) and, with pin, pins them all
 * and maps them into m. Returns 0, -EIO (or the load's error) when a page is poisoned,
 * -ENOMEM when the pool is full, -EOVERFLOW when a pin count would pass PG_PIN_MAX. */
int vm_pin(struct rp_fileh *fh, struct rp_mapping *m, const uint64_t (*ranges)[2], size_t n,
           bool pin, bool wait);
/* Releases the pin that m took over exactly [first, first + n); -EINVAL if none. */
int vm_unpin(struct rp_mapping *m, uint64_t first, uint64_t n);
/* Releases every pin m holds. fh->lock held. */
void vm_unpin_all(struct rp_mapping *m);
int vm_invalidate(struct rp_fileh *fh, uint64_t first, uint64_t n);
/* Releases the RAM of pages in runs: vm_release_page for each page in ascending order,
 * then vm_release_flush. fh->lock held. */
struct vm_release {
	uint64_t lo, hi;
};
void vm_release_page(struct rp_fileh *fh, struct vm_release *r, uint64_t idx);
void vm_release_flush(struct rp_fileh *fh, struct vm_release *r);

/* vm/dirty.c: dirty tracking, discard. fh->lock held where said. */
/* Adds n (may be negative) to the handle's and the engine's dirty counts. fh->lock held. */
void vm_dirty_add(struct rp_fileh *fh, int64_t n);
/* A write was seen on page idx: LOADED -> DIRTY, WRITING -> redirtied. Returns false
 * when the page is not resident. fh->lock held. */
bool vm_dirty_mark(struct rp_fileh *fh, uint64_t idx);
/* A vm_region_fn: vm_dirty_mark for each page of [first, end). fh->lock held. */
int vm_dirty_mark_region(struct rp_fileh *fh, uint64_t first, uint64_t end, uint64_t cat,
                         void *arg);
/* wp_async: moves the pages written since the last collection in mapping `only` (NULL:
 * every mapping of fh) to DIRTY, protecting them again. Other mechanisms: nothing (their
 * states are current). fh->lock held. */
void vm_dirty_collect(struct rp_fileh *fh, struct rp_mapping *only);
/* wp_sync: serves a write-protect fault at addr. */
void vm_wp_fault(struct vm *vm, uint64_t addr);
/* Waits until no writeout of fh runs or waits. fh->lock held (dropped while waiting). */
void vm_wo_wait_idle(struct rp_fileh *fh);
int vm_fileh_dirty(struct rp_fileh *fh, uint64_t *pages);
int vm_discard(struct rp_fileh *fh);

/* vm/reclaim.c: reclaim (the design is at the top of the file). */
int vm_reclaim_start(struct vm *vm, const struct vm_reclaim_params *p);
/* Stops the reclaim thread; parked faults are dropped. Sweeps on request still work. */
void vm_reclaim_stop(struct vm *vm);
/* Frees what vm_reclaim_start made; no sweep may run any more. */
void vm_reclaim_fini(struct vm *vm);
/* Evicts up to `want` clean pages (CLOCK), from any thread holding no fh->lock. Returns
 * the pages freed. */
uint64_t vm_reclaim_pages(struct vm *vm, uint64_t want);
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
void vm_reclaim_set_hook(struct vm *vm, void (*hook)(void *, int, uint64_t), void *arg);
/* A page of fh was touched: the CLOCK reference. fh->lock held. */
static inline void vm_page_referenced(struct rp_fileh *fh, uint64_t idx, uint64_t w)
{
	if (!(w & PG_REF)) {
		(void)pagemap_set(&fh->pm, idx, w | PG_REF);
		atomic_fetch_add_explicit(&fh->vm->ctr.ref_hits, 1, memory_order_relaxed);
	}
}

/* vm/readahead.c: the fault path's side. fh->lock held, vm->maps_lock held for reading.
 * Loads that they start are collected in a batch (vm_load_batch), issued once the locks
 * are dropped. */
/* The fault on absent page idx of m started idx's own load: reads its window ahead. */
void vm_ra_miss(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx, struct vm_load_batch *b);
/* A fault on page idx of m, which is resident (word w): starts the next window when idx
 * carries the marker, and maps the page (a write under wp_sync: writable, and DIRTY),
 * with the pages read ahead after it that nothing mapped yet. */
void vm_ra_touch(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx, uint64_t w,
                 bool write, struct vm_load_batch *b);
/* A fault on page idx of m while it loads (word w): the marker starts the next window. */
void vm_ra_loading(struct rp_fileh *fh, struct rp_mapping *m, uint64_t idx, uint64_t w,
                   struct vm_load_batch *b);
/* Sets the advice of pages [first, first + n) of m: NORMAL, SEQUENTIAL, RANDOM. fh->lock
 * held. 0 or -ENOMEM. */
int vm_advise(struct rp_mapping *m, uint64_t first, uint64_t n, int advice);
/* The advice in force for page idx of m. fh->lock held. */
int vm_advice_at(const struct rp_mapping *m, uint64_t idx);
/* Drops the clean, unpinned pages of [first, first + n) from the pool (rp_advise
 * DONTNEED): their next touch reads the store again. Dirty pages stay (writes that
 * wp_async recorded in page tables are found first). vm/reclaim.c. */
int vm_dontneed(struct rp_fileh *fh, uint64_t first, uint64_t n);

/* vm/writeout.c: writeouts. */
/* Internal writeout flag (beside RP_WRITEOUT_*): only DIRTY pages whose reference bit is
 * clear (reclaim's writeback of cold pages). */
#define VM_WO_COLD 0x100
/* Starts a writeout of fh (flags checked by the caller); done(arg, result) runs on a
 * service thread when it ends, after a failure is told in msg (when not NULL). Returns
 * 0, or -ENOMEM (then done is not called). */
int vm_writeout(struct rp_fileh *fh, int flags, rp_done_fn done, void *arg, char *msg,
                size_t msglen);
/* vm_writeout, then waits for its result. */
int vm_writeout_wait(struct rp_fileh *fh, int flags);

/* vm/store.c: stores. */
int vm_store_open(struct vm *vm, const char *path, int flags, struct rp_store **out);
int vm_store_create(struct vm *vm, const rp_store_ops *ops, void *ctx, uint64_t size,
                    struct rp_store **out);
/* -EBUSY while handles are open. */
int vm_store_close(struct rp_store *st);
/* Frees the store (no handle may be open). */
void vm_store_free(struct rp_store *st);

/* vm/fileh.c: handles and mappings. */
int vm_fileh_open(struct rp_store *st, struct rp_fileh **out);
int vm_fileh_close(struct rp_fileh *fh);
int vm_map(struct rp_fileh *fh, uint64_t off, size_t len, int prot, struct rp_mapping **out);
int vm_unmap(struct rp_mapping *m);
/* The mapping that holds addr, or NULL. vm->maps_lock held (read). */
struct rp_mapping *vm_map_lookup(struct vm *vm, uint64_t addr);
/* For a fault at addr: its mapping, returned with vm->maps_lock held for reading (the
 * caller unlocks), and *page its page index in the handle; NULL, lock not held, when the
 * mapping went away since the fault was raised. */
struct rp_mapping *vm_fault_mapping(struct vm *vm, uint64_t addr, uint64_t *page);
/* Adds m to the address table (-ENOMEM), removes it. vm->maps_lock held for writing. */
int vm_addr_insert(struct vm *vm, struct rp_mapping *m);
void vm_addr_remove(struct vm *vm, struct rp_mapping *m);

#endif
