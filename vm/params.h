/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/params.h - what an engine is opened with (struct vm_params, vm_open), the modes
 * chosen among, and the counters behind rp_stats.
 */
#ifndef RINGPAGER_VM_PARAMS_H
#define RINGPAGER_VM_PARAMS_H

#include "io/io.h"
#include "ram/ram.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
/* the CPU an unbound faulting thread runs on is not read: every service thread listens
 * for it, as where /proc cannot be read (vm/service.c, "Who listens") */
#define VM_NO_THREAD_CPU 64u

#define VM_MAX_FAULT_THREADS 64
/* The longest a synchronous writeout's caller polls for its end before it sleeps. */
#define VM_WO_POLL_NS (10 * 1000000ull)

/* A minor fault maps the resident pages of its page's aligned block of this size. */
#define VM_FAULT_AROUND_BYTES (64ul << 10)

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

#define VM_PATH_MAX 256

struct vm_params {
	struct ram_pool_params pool;
	struct rpio_queue_params queue; /* notify fields are the service's own */
	unsigned fault_threads; /* 0: one per CPU, each bound to its CPU */
	unsigned flags;         /* VM_FORCE_* */
	enum vm_dirty_mode dirty; /* VM_DIRTY_AUTO: the best the kernel has */
	struct vm_reclaim_params reclaim;
	uint64_t readahead_max; /* bytes; 0: no readahead */
	bool readahead_copy;    /* a stream's windows staged and copied (vm/fault.c, ra_read) */
	uint64_t scan_keep;     /* bytes a stream keeps behind it; 0: scan_keep_pct applies */
	unsigned scan_keep_pct; /* percent of the pool; both 0: all stay (vm/fault.c) */
	uint64_t fault_spin_ns; /* vm/service.c: polling for a fault's read before sleeping */
	int fault_spin;          /* enum vm_spin_mode (vm/spin.c) */
	bool fault_self;        /* fault_mode=sigbus (vm/sigbus.c) */
	uint64_t log_max;       /* atomic_log_max */
	char log_dir[VM_PATH_MAX]; /* atomic_log_dir; empty: beside each store */
};

struct vm_counters {
	_Atomic uint64_t faults, minor_faults, pages_loaded, bytes_read, loads, load_errors;
	_Atomic uint64_t wp_faults, dirty_pages, writeouts, writeout_errors, pages_written,
	    bytes_written, write_requests;
	_Atomic uint64_t evicted, reclaim_passes, ref_hits, hook_calls, mem_waits, mem_failures,
	    writebacks;
	_Atomic uint64_t ra_pages, ra_used, ra_wasted, ra_windows, ra_copied, ra_dropped;
	_Atomic uint64_t writeouts_here; /* run by the thread in rp_writeout (vm/writeout.c) */
};

#endif
