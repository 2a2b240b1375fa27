/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ringpager.h - the public API of ringpager, the only header a user includes.
 *
 * ringpager maps regions of files and block devices into memory and serves their page
 * faults in userspace: pages are loaded with O_DIRECT reads into ringpager's own RAM pool,
 * sequential runs are read ahead in batches, and modified pages are written back only
 * when the application asks (README.md; docs/design.md for the mechanisms).
 *
 * This header declares only what is implemented, and documents each function.
 *
 * Errors: every function that can fail returns a negative errno value; rp_strerror()
 * turns it into text. Nothing in the library aborts the process.
 */
#ifndef RINGPAGER_H
#define RINGPAGER_H

#ifdef __cplusplus
extern "C" {
#endif

/* Only the functions marked RP_API are exported by libringpager.so. */
#define RP_API __attribute__((visibility("default")))

#define RINGPAGER_VERSION_MAJOR 0
#define RINGPAGER_VERSION_MINOR 1
#define RINGPAGER_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH"; compare with the macros above to detect a
 * header/library mismatch. */
RP_API const char *rp_version(void);

/* Text for a ringpager error code: a negative errno value (or a positive one, taken as its
 * negation). Never returns NULL; unknown codes get "unknown error N". The returned string
 * is static or thread-local and stays valid until the next call on the same thread. */
RP_API const char *rp_strerror(int err);

/* The message of the last call that failed on this thread: it names the bad key, value,
 * path or offset ("rp_map: offset 4097 is not a multiple of the page size 4096"). Empty
 * when no call has failed. Valid until the next failing call on the same thread. */
RP_API const char *rp_errmsg(void);

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ configuration
 *
 * One set of keys, four ways to set them, applied in the order the application calls:
 *   rp_config_init       the defaults;
 *   rp_config_load       an INI file: "key = value" lines, '#' or ';' comments, an
 *                        optional [ringpager] section (other sections are refused);
 *   rp_config_load_env   RINGPAGER_<KEY> environment variables (RINGPAGER_RAM_SIZE=2G);
 *   rp_config_set        one key from code.
 * The engine never reads the environment by itself: the application decides whether the
 * environment may override it, by calling rp_config_load_env where it wants.
 *
 * Keys (README.md, "Configuration keys", has the table):
 *   ram_size       RAM pool size, bytes with an optional suffix k/M/G/T (powers of 1024).
 *                  Default: a quarter of the machine's RAM. A multiple of the page size
 *                  (2 MiB when huge pages are used).
 *   page_size      "4k" or "2m"; "auto" (default) follows `hugepages`.
 *   hugepages      "auto" (2 MiB pages when enough are reserved, else 4 KiB with a
 *                  warning; the default), "require", "off".
 *   io_backend     "auto" (default: io_uring, else libaio, else psync), "io_uring",
 *                  "libaio", "psync".
 *   queue_depth    I/O requests in flight per fault-service thread, 1..32768 (default 128).
 *   sqpoll         io_uring submission-queue polling thread: "true"/"false" (default false).
 *   fault_threads  fault-service threads: "auto" (default: one per CPU the process may
 *                  run on, each bound to its CPU, so a fault is served on the CPU that
 *                  raised it), or 1..64 unbound threads.
 *   dirty_tracking how writes to mappings are noticed: "auto" (default: the best the
 *                  kernel has), "wp_async" (Linux 6.7: writes take no fault; writeout
 *                  finds them with PAGEMAP_SCAN), "wp_sync" (a write-protect fault on the
 *                  first write to a clean page). rp_engine_describe says which is used.
 *   reclaim_high   percent of ram_size (1..100, "98" or "98%"; default 98) at which a
 *                  background thread starts evicting clean pages ...
 *   reclaim_low    ... until the pool is down to this percent (1..99, below reclaim_high;
 *                  default 95). A load that finds the pool full evicts by itself.
 *   reclaim_wait   milliseconds (0..3600000, default 5000) a load waits for memory when
 *                  the pool holds nothing that can be evicted (all dirty or pinned): then
 *                  the faulting thread gets SIGBUS and rp_pin -ENOMEM. 0: fail at once.
 *   dirty_limit    dirty pages at which the pressure hook is called: bytes ("256M"), a
 *                  percentage of ram_size ("25%"), or 0 for none. Default "50%".
 *   dirty_policy   "keep" (default: dirty pages are never evicted; the application writes
 *                  them out) or "writeback" (under pressure the engine writes cold dirty
 *                  pages back itself, as rp_writeout(STORE | MARKSTORED | SYNC) would, and
 *                  evicts them: for databases whose log makes that safe).
 *   readahead_max  the largest readahead window, bytes with a suffix ("32M", the default:
 *                  docs/benchmarks.md gives the measurements), at most a quarter of
 *                  ram_size is used; "0" turns readahead off.
 *   scan_keep      how much of what a sequential stream has read stays in the pool
 *                  behind the page it reads: bytes ("1G") or a percentage of ram_size
 *                  ("25%", the default). As the stream moves on, its older pages that are
 *                  clean and not pinned are dropped, so that a long scan reuses its own
 *                  memory rather than taking new memory and pushing the rest of the pool
 *                  out (databases' buffer pools keep large scans in a ring the same way).
 *                  "0": every page a stream read stays until reclaim evicts it.
 *   readahead_copy "true" (default) or "false": once a stream has proved itself, each
 *                  run of its windows is read into a service thread's staging buffer and
 *                  copied into the pool and the mapping with one UFFDIO_COPY, instead of
 *                  being read into the pool's pages through the engine's alias mapping
 *                  and then mapped (docs/design.md, "Readahead"). 4 KiB pages only.
 *   fault_spin     whether the thread that waits for a fault's own read (a service
 *                  thread; with fault_mode=sigbus the faulting thread) polls for its
 *                  completion before it sleeps: "auto" (default: both ways are timed as
 *                  faults come, and the faster is used; one read in 16, or in 64 when it
 *                  is far slower, tries the other), "always", "never". Polling wins
 *                  where an idle virtual CPU is slow to wake, sleeping where the
 *                  completion reaches a polling thread late (docs/tuning.md). rp_stats
 *                  counts the reads each way. The same choice, timed over whole
 *                  writeouts, decides whether the thread in rp_writeoutv, or in an
 *                  rp_writeout that a service thread runs (rp_writeout says when),
 *                  looks for the end (up to 10 ms, yielding its CPU between looks) or
 *                  sleeps until it is woken.
 *   fault_spin_us  microseconds (0..10000, default 200) it polls at most, on a CPU the
 *                  faulting thread has left idle; 0 turns polling off.
 *   fault_mode     who serves a fault: "uffd" (service threads reading the userfaultfd),
 *                  "sigbus" (the faulting thread itself, in a SIGBUS handler ringpager
 *                  installs: no wake-up of another thread, so a cold or minor fault costs
 *                  less; docs/benchmarks.md has the figures), or "auto" (default:
 *                  uffd). sigbus asks three things of the application, which is why it is
 *                  not the default: a system call that reads or writes a page of a mapping
 *                  that is not resident fails with EFAULT (rp_pin such ranges first);
 *                  a SIGBUS handler the application installs after rp_engine_open must
 *                  chain to the one it replaces (ringpager passes every SIGBUS that is not
 *                  its own to the handler installed before it); and threads that touch
 *                  mappings must not block SIGBUS. It needs dirty_tracking wp_async
 *                  (Linux 6.7) or read-only mappings.
 *   atomic_log_max the largest redo log of an RP_WRITEOUT_ATOMIC writeout (64k..1T,
 *                  default 64M): a writeout needing more is refused with -EFBIG.
 *   atomic_log_dir where the redo logs live; empty (the default): beside each store, as
 *                  FILE-rplog. A block device's store needs it set.
 * Values are refused (-EINVAL, rp_errmsg names the key and the value) when malformed
 * ("12X") or out of range; unknown keys are refused with their name. */
enum {
	RP_FAULT_MODE_AUTO = 0,
	RP_FAULT_MODE_UFFD = 1,
	RP_FAULT_MODE_SIGBUS = 2,
};

#define RP_PATH_MAX 256 /* bytes of a path key, with its terminating NUL */

typedef struct rp_config {
	uint64_t ram_size;
	size_t page_size; /* 0: auto */
	int hugepages;    /* 0 auto, 1 require, 2 off */
	int io_backend;   /* 0 auto, 1 io_uring, 2 libaio, 3 psync */
	unsigned queue_depth;
	int sqpoll;
	unsigned fault_threads; /* 0: auto */
	int dirty_tracking;     /* 0 auto, 1 wp_async, 2 wp_sync */
	unsigned reclaim_high;  /* percent */
	unsigned reclaim_low;   /* percent */
	unsigned reclaim_wait;  /* ms */
	uint64_t dirty_limit;   /* bytes; 0: dirty_limit_pct applies */
	unsigned dirty_limit_pct; /* percent of ram_size; both 0: no limit */
	int dirty_policy;       /* 0 keep, 1 writeback */
	uint64_t readahead_max; /* bytes; 0: no readahead */
	unsigned fault_spin_us; /* microseconds; 0: never spin */
	int fault_spin;         /* 0 auto, 1 always, 2 never */
	int fault_mode;         /* RP_FAULT_MODE_*: 0 auto, 1 uffd, 2 sigbus */
	uint64_t atomic_log_max; /* bytes */
	char atomic_log_dir[RP_PATH_MAX]; /* empty: beside each store */
	int readahead_copy;     /* a stream's windows staged and copied into place */
	uint64_t scan_keep;     /* bytes; 0: scan_keep_pct applies */
	unsigned scan_keep_pct; /* percent of ram_size; both 0: a stream keeps all it read */
	/* private: tests and benchmarks force fallbacks with it; leave it 0 */
	unsigned internal_flags;
} rp_config;

/* Fills *cfg with the defaults. Returns 0. */
RP_API int rp_config_init(rp_config *cfg);
/* Sets one key from its text form. -EINVAL for an unknown key or a bad value. */
RP_API int rp_config_set(rp_config *cfg, const char *key, const char *value);
/* Applies an INI file. -errno when it cannot be read; -EINVAL at the first bad line
 * (rp_errmsg gives the path, the line number and the key). Keys before the bad line
 * stay applied. */
RP_API int rp_config_load(rp_config *cfg, const char *path);
/* Applies every RINGPAGER_<KEY> environment variable whose key is known; an unknown
 * RINGPAGER_ variable (a typo) is refused with its name, -EINVAL. */
RP_API int rp_config_load_env(rp_config *cfg);
/* Writes the current value of `key` as text (the form rp_config_set accepts) into buf.
 * -EINVAL for an unknown key; -ERANGE when buf is too small. */
RP_API int rp_config_get(const rp_config *cfg, const char *key, char *buf, size_t len);

/* ------------------------------------------------------------------ engine
 *
 * An engine owns a RAM pool, a userfaultfd and its fault-service threads. Engines are
 * independent: several may live in one process. Every function below may be called from
 * any thread, except that a mapping's memory must not be touched from inside a custom
 * store's callbacks (the fault service would wait for itself). */
typedef struct rp_engine rp_engine;
typedef struct rp_store rp_store;
typedef struct rp_fileh rp_fileh;
typedef struct rp_mapping rp_mapping;

/* A range of bytes: of a mapping (rp_pinv: relative to it, page-aligned), or of a handle
 * (rp_invalidatev: store offsets). */
typedef struct rp_range {
	size_t off, len;
} rp_range;

/* Opens an engine with cfg (NULL: the defaults). Probes the kernel (userfaultfd features,
 * I/O backends, huge pages) and falls back where it can; rp_engine_describe says what was
 * chosen. -errno with rp_errmsg on failure (for instance -EPERM when userfaultfd is not
 * allowed: see README.md, "Requirements"). */
RP_API int rp_engine_open(const rp_config *cfg, rp_engine **out);
/* Closes the engine and everything still open on it: mappings are unmapped, file
 * handles and stores closed (their unwritten modifications are dropped). Waits for loads
 * in flight. The caller must make sure no thread touches the engine's mappings any more. */
RP_API void rp_engine_close(rp_engine *eng);
/* One line per subsystem: pool (page size, size, why), I/O backend, userfaultfd features
 * and fault service. Valid while the engine is open. */
RP_API const char *rp_engine_describe(const rp_engine *eng);
/* The pool's page size: offsets and lengths of rp_map, rp_pin, ... are multiples of it. */
RP_API size_t rp_engine_page_size(const rp_engine *eng);
/* For an application's own SIGBUS handler when engines run with fault_mode=sigbus: call it
 * first, with the handler's siginfo and ucontext arguments. Returns 1 when the signal was
 * one of ringpager's page faults and has been served (return from the handler: the access
 * is retried), 0 when it is not ringpager's to serve (another address, a signal sent by
 * kill, or a page that failed to load or found no memory: the application's case, with
 * si_addr). Async-signal context only. ringpager's own handler does the same and then
 * passes what it did not serve to the handler installed before it; an application whose
 * handler replaces ringpager's after rp_engine_open must call this instead. */
RP_API int rp_sigbus_handle(const siginfo_t *si, void *ucontext);

struct rp_stats {
	uint64_t faults;         /* page faults served (either fault_mode) */
	uint64_t minor_faults;   /* ... of which found the page resident (no I/O) */
	uint64_t pages_loaded;   /* pages read from stores */
	uint64_t bytes_read;     /* bytes read from stores */
	uint64_t loads;          /* load requests (a request may cover several pages) */
	uint64_t load_errors;    /* load requests that failed (their pages are poisoned) */
	uint64_t resident_pages; /* pages held in the pool now */
	uint64_t pool_pages;     /* the pool's capacity in pages */
	uint64_t metadata_bytes; /* engine metadata (pagemaps, descriptors) now */
	uint64_t dirty_pages;    /* pages known dirty now (writes since each handle's last
	                            collection, that is its last writeout, rp_fileh_dirty or
	                            unmap, are not counted yet under wp_async) */
	uint64_t wp_faults;      /* write-protect faults served (wp_sync) */
	uint64_t writeouts;      /* writeouts finished */
	uint64_t writeout_errors;/* ... of which failed */
	uint64_t write_requests; /* write requests issued (one per run of dirty pages) */
	uint64_t pages_written;  /* pages written to stores */
	uint64_t bytes_written;  /* bytes written to stores */
	uint64_t dirty_bytes;    /* dirty_pages in bytes */
	uint64_t pages_evicted;  /* clean pages reclaim took out of the pool */
	uint64_t reclaim_passes; /* sweeps of the CLOCK hand (background, on demand, rp_reclaim) */
	uint64_t reference_hits; /* touches of a page whose reference bit the hand had cleared */
	uint64_t hook_calls;     /* calls of the pressure hook */
	uint64_t memory_waits;   /* loads that found the pool full of dirty or pinned pages */
	uint64_t memory_failures;/* ... and gave up after reclaim_wait (SIGBUS, -ENOMEM) */
	uint64_t writebacks;     /* writeouts the engine started itself (dirty_policy=writeback) */
	uint64_t readahead_pages;   /* pages read ahead (read before any fault asked for them) */
	uint64_t readahead_used;    /* ... of which a fault or a pin used afterwards */
	uint64_t readahead_wasted;  /* ... of which left the pool unused (evicted, invalidated,
	                               dropped by DONTNEED) */
	uint64_t readahead_windows; /* readahead windows issued */
	uint64_t readahead_window_avg; /* readahead_pages / readahead_windows, pages */
	uint64_t readahead_copied;  /* pages read ahead that were copied into place from a
	                               staging buffer (readahead_copy) */
	uint64_t fault_reads_slept;  /* reads of a faulting page whose waiter slept ... */
	uint64_t fault_reads_polled; /* ... and polled for the completion (fault_spin) */
	uint64_t writeouts_by_caller; /* writeouts that the thread in rp_writeout ran itself
	                                 (a file or device store, none of the handle's running) */
	uint64_t readahead_dropped; /* pages a sequential stream dropped behind it (scan_keep) */
};

/* Copies the engine's counters into *out. Returns 0. */
RP_API int rp_stats(rp_engine *eng, struct rp_stats *out);

/* ------------------------------------------------------------------ memory pressure
 *
 * The pool holds at most ram_size. Clean pages are evicted by CLOCK (second chance):
 * in the background from reclaim_high down to reclaim_low, and by a load that finds the
 * pool full. Dirty pages stay until written out (dirty_policy=keep) or are written back
 * by the engine (writeback). When nothing can be evicted, a fault waits up to
 * reclaim_wait for the application to free memory (rp_writeout with MARKSTORED,
 * rp_discard, rp_unpin, rp_invalidate, rp_fileh_close), then raises SIGBUS in the
 * faulting thread; the page keeps raising SIGBUS in that mapping until rp_pin, WILLNEED
 * or rp_invalidate of it. rp_pin waits the same way and returns -ENOMEM. */

/* Evicts up to npages clean, unpinned pages now (the least recently touched first, as
 * the CLOCK sees them). Returns the pages freed (0 when none could be), or -EINVAL. */
RP_API long rp_reclaim(rp_engine *eng, long npages);

#define RP_PRESSURE_DIRTY_LIMIT 1 /* dirty pages reached dirty_limit */
#define RP_PRESSURE_POOL_FULL   2 /* a load waits: the pool holds nothing evictable */

/* Called on the engine's reclaim thread (one call at a time) when dirty pages reach
 * dirty_limit (again only after they fell below it) and when a load starts waiting for
 * memory (again only after memory was freed). dirty_bytes: the dirty bytes known then.
 * It may call rp_writeout (which waits), rp_writeout_async, rp_discard, rp_stats,
 * rp_fileh_dirty; it must not touch the engine's mappings nor call rp_pin (either could
 * wait for memory that only this very thread would find), nor close the engine. While it
 * runs, waiting faults are not retried. */
typedef void (*rp_pressure_fn)(void *arg, rp_engine *eng, int why, uint64_t dirty_bytes);
/* Registers the hook (fn NULL: none). Returns 0, or -EINVAL. */
RP_API int rp_set_pressure_hook(rp_engine *eng, rp_pressure_fn fn, void *arg);

/* ------------------------------------------------------------------ stores */

#define RP_LOAD_ASYNC  1 /* returned by rp_store_ops.load: rp_load_done() follows */
#define RP_STORE_ASYNC 1 /* returned by rp_store_ops.store: rp_store_done() follows */

typedef struct rp_load_token rp_load_token;
typedef struct rp_store_token rp_store_token;

/* A custom store (computed data, a remote object, a test double). */
typedef struct rp_store_ops {
	/* Fill buf with the store's bytes [off, off + len); off and len are multiples of the
	 * page size, and off + len may pass the store's size (fill that tail with zeros).
	 * Return 0 when buf is filled, a negative errno when the load failed (the pages are
	 * poisoned; a readahead window's are left absent instead, to be loaded again by the
	 * fault that wants one), or RP_LOAD_ASYNC after arranging for rp_load_done(tok, err) to be called
	 * later, from any thread, exactly once. A synchronous load runs on a fault-service
	 * thread and holds it: keep it short, or go asynchronous. buf stays valid until the
	 * load is done. Must not touch any mapping of the engine. */
	int (*load)(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok);
	/* Called once by rp_store_close (may be NULL). */
	void (*close)(void *ctx);
	/* Writeout (may be NULL: writeout with RP_WRITEOUT_STORE then fails with
	 * -EOPNOTSUPP). Write buf, the handle's bytes [off, off + len), to the store; off and
	 * len are multiples of the page size and off + len may pass the store's size (ignore
	 * that tail). One writeout calls it in ascending order of off, once per run of
	 * contiguous dirty pages, without waiting for earlier calls to complete. Return 0
	 * when stored, a negative errno on failure (the pages stay dirty), or RP_STORE_ASYNC
	 * after arranging for rp_store_done(tok, err) to be called later, from any thread,
	 * exactly once. Runs on a fault-service thread; buf stays valid and unchanged by the
	 * engine until the store is done (the application may still write to the pages: those
	 * writes go into the next writeout). Must not touch any mapping of the engine. */
	int (*store)(void *ctx, uint64_t off, const void *buf, size_t len, rp_store_token *tok);
	/* RP_WRITEOUT_SYNC (may be NULL: stores are durable when done): make every store
	 * completed so far durable. 0 or a negative errno. Runs on a fault-service thread. */
	int (*sync)(void *ctx);
	/* Writeout of a handle whose size changed (may be NULL: rp_fileh_resize then fails
	 * with -EOPNOTSUPP): make the store `size` bytes, dropping what lies past it or
	 * adding zeros. A writeout calls it before its stores (to cut what the handle shrank
	 * away) and after them (the handle's size). 0 or a negative errno. Runs on a
	 * fault-service thread. */
	int (*resize)(void *ctx, uint64_t size);
} rp_store_ops;

/* Completes an asynchronous load: err is 0 or a negative errno. */
RP_API void rp_load_done(rp_load_token *tok, int err);
/* Completes an asynchronous store: err is 0 or a negative errno. */
RP_API void rp_store_done(rp_store_token *tok, int err);

/* Opens a file or a block device as a store, O_DIRECT (buffered with a warning in
 * rp_engine_describe where the filesystem refuses O_DIRECT). flags: O_RDONLY or O_RDWR.
 * The store's size is the file's size at open; a writeout of a handle whose size changed
 * (rp_fileh_resize) changes it. */
RP_API int rp_store_open(rp_engine *eng, const char *path, int flags, rp_store **out);
/* Opens the file (or block device) behind the caller's descriptor fd as a store, as
 * rp_store_open does its path, for a caller that holds POSIX locks on its descriptor
 * (a database). ringpager reads and writes through a descriptor of its own, reopened
 * from fd with O_DIRECT (/proc/self/fd/fd), or through fd itself when it has O_DIRECT
 * already; fd is never closed, nor changed. Closing any descriptor of a file drops the
 * process's POSIX locks on it, so the reopened descriptor is not closed by
 * rp_store_close: the engine keeps it, reuses it when the same file is opened again, and
 * closes it in rp_engine_close (release the locks first, or expect them gone then).
 * flags: O_RDONLY or O_RDWR (then fd must be open for writing). -EBADF for a descriptor
 * that is not open, -EINVAL for one that is neither a file nor a block device. */
RP_API int rp_store_open_fd(rp_engine *eng, int fd, int flags, rp_store **out);
/* Creates a store of `size` bytes served by ops/ctx. */
RP_API int rp_store_create(rp_engine *eng, const rp_store_ops *ops, void *ctx, uint64_t size,
                           rp_store **out);
/* Closes a store: -EBUSY (nothing done) while it has open file handles. */
RP_API int rp_store_close(rp_store *st);
/* The store's size in bytes: as opened, or as the last writeout that changed it left it. */
RP_API uint64_t rp_store_size(const rp_store *st);

/* ------------------------------------------------------------------ file handles
 *
 * A file handle is one view of a store with its own cache (a sparse memfd as large as
 * the store: RAM offset == store offset). Every mapping of a handle shares its pages. */
RP_API int rp_fileh_open(rp_store *st, rp_fileh **out);
/* Closes the handle and releases its pages: -EBUSY (nothing done) while mappings of it
 * live. Waits for loads of it that are in flight. */
RP_API int rp_fileh_close(rp_fileh *fh);
/* Forgets the pages of [off, off + len), dirty ones included (the store was changed from
 * outside): the next touch loads them again. A load of the range in flight is discarded
 * when it completes; its stale data never becomes visible. Poisoned pages are cleared.
 * Waits for the handle's writeouts in flight. -EBUSY (nothing done) when a page of the
 * range is pinned. */
RP_API int rp_invalidate(rp_fileh *fh, uint64_t off, uint64_t len);
/* rp_invalidate of n ranges in one call (one wait for writeouts, one hold of the
 * handle's lock): all or nothing, -EBUSY when a page of any range is pinned. */
RP_API int rp_invalidatev(rp_fileh *fh, const rp_range *ranges, size_t n);

/* One handle's counters (rp_fileh_stats); rp_stats has the engine's. */
struct rp_fileh_stats {
	uint64_t size;           /* bytes (rp_fileh_size) */
	uint64_t resident_pages; /* pages of the handle in the pool */
	uint64_t dirty_pages;    /* as rp_fileh_dirty counts them */
	uint64_t loads;          /* read requests for the handle's pages */
	uint64_t pages_loaded;   /* pages read from the store */
	uint64_t pages_written;  /* pages written to the store by writeouts */
	uint64_t pages_evicted;  /* pages reclaim or DONTNEED dropped */
	uint64_t writeouts;      /* writeouts of the handle that ended */
};
/* The handle's counters since it was opened. 0 or -EINVAL. */
RP_API int rp_fileh_stats(rp_fileh *fh, struct rp_fileh_stats *out);

/* The handle's size in bytes: its store's when opened, then what rp_fileh_resize set. */
RP_API uint64_t rp_fileh_size(rp_fileh *fh);
/* Makes the handle `size` bytes (at most 2^50), in memory: growing adds pages that read
 * as zeros and are never read from the store; shrinking drops the pages past the new end
 * from the handle, dirty ones too, and the tail of a last page cut in the middle reads as
 * zeros. A touch of a mapping at or past the end raises SIGBUS, as past the end of a
 * file the kernel maps; after growing, the same mapping serves the new pages (rp_map
 * takes a range past the end for that). The store changes only at writeout: STORE makes
 * the file this size (ftruncate, or the custom store's resize callback), SYNC makes the
 * size durable with the pages, and a crash before leaves the file as it was. rp_discard
 * brings the size back to the store's. Waits for the handle's loads and writeouts in
 * flight. 0; -EINVAL for a block device (its size is fixed) or a size past 2^50; -EBADF
 * for a store opened O_RDONLY; -EOPNOTSUPP for a custom store without a resize callback;
 * -EBUSY (nothing done) when a page past the new end is pinned; -ENOMEM. */
RP_API int rp_fileh_resize(rp_fileh *fh, uint64_t size);

/* The store's file changed size from outside (another process wrote it): learns its
 * size again (fstat) and makes the handle that size. Pages past the new end are dropped;
 * pages the file grew by are read from the store when touched (the old last page too, if
 * it was cut in the middle). Bytes changed inside the old size are not detected: call
 * rp_invalidate or rp_invalidatev for them. For a handle with no unwritten changes:
 * -EBUSY when it has dirty pages or a size not written out, or when a page past the new
 * end is pinned; -EOPNOTSUPP for a custom store; 0 for a block device (its size is
 * fixed). Other handles of the same store keep the size they had until they call it. */
RP_API int rp_fileh_refresh(rp_fileh *fh);

/* Reads [off, off + len) of the handle into buf through its cache, as pread(2) reads a
 * file: pages in the pool are copied, absent ones are loaded first (at queue depth, a
 * batch at a time), and the count is short at the handle's end (0 at or past it).
 * Errors come back as values, never as a signal: -EIO (or the load's error) when a page
 * failed to load, -ENOMEM when the pool cannot make room (every page dirty under
 * dirty_policy=keep, or pinned, for reclaim_wait), -EINVAL for bad arguments, -EDEADLK
 * on a fault-service thread. After some bytes were copied an error ends the copy short
 * instead, and the next call reports it. No mapping is needed or touched. */
RP_API ssize_t rp_read(rp_fileh *fh, uint64_t off, void *buf, size_t len);
/* Writes buf to [off, off + len) of the handle through its cache, as pwrite(2) writes a
 * file that does not grow: the pages become dirty as a store through a mapping makes
 * them (rp_writeout writes them out), a page only partly written is loaded first, and
 * the count is short at the handle's end (grow it with rp_fileh_resize). Errors as
 * rp_read. */
RP_API ssize_t rp_write(rp_fileh *fh, uint64_t off, const void *buf, size_t len);

/* ------------------------------------------------------------------ dirty pages
 *
 * A write through a mapping makes its page dirty; the engine never writes a dirty page
 * back by itself. Each handle keeps its own modifications: a write through one handle is
 * not seen through another handle of the same store until it is written out and the
 * other handle invalidates the range. Dirty pages survive rp_unmap (mapping the range
 * again shows them) and are dropped by rp_discard, rp_invalidate and rp_fileh_close.
 *
 * Writeout flags:
 *   RP_WRITEOUT_STORE       write every dirty page of the handle to its store, in
 *                           ascending offset order, each run of contiguous dirty pages in
 *                           one request, straight from the handle's RAM (O_DIRECT); the
 *                           pages stay dirty unless MARKSTORED is given too.
 *   RP_WRITEOUT_MARKSTORED  make the pages clean (write-tracked again). Alone, it
 *                           stores nothing: the application says the store has them.
 *   RP_WRITEOUT_SYNC        with STORE: the data is durable (fdatasync, or the custom
 *                           store's sync) before the writeout reports success.
 *   RP_WRITEOUT_ATOMIC      with STORE and SYNC: after a crash at any moment the store
 *                           holds every page of the writeout and its size, or none of
 *                           them. The pages go first to a redo log (atomic_log_dir, or
 *                           FILE-rplog beside the file), made durable, then in place;
 *                           rp_store_open applies a complete log a crash left. Costs
 *                           each page written twice, one more fdatasync (the log's),
 *                           and a 4 KiB write that empties the log (with a second
 *                           fdatasync when atomic_log_dir is in another filesystem
 *                           than the store). One at a
 *                           time per store (-EBUSY); larger than atomic_log_max: -EFBIG;
 *                           not for custom stores (-EOPNOTSUPP) nor, without
 *                           atomic_log_dir, block devices (-EINVAL). A failure before
 *                           the log is durable leaves the store as it was; one after is
 *                           rolled forward at once (the store then holds all of it),
 *                           else at the store's next open.
 * A writeout takes the pages that are dirty when it starts. A write to one of them while
 * its writeout is in flight is never lost: the page stays dirty (it is not made clean
 * even with MARKSTORED) and goes into the next writeout; the store may have received
 * the old bytes, the new ones or a mix, which the next writeout overwrites. Writeouts of
 * one handle run one after the other, in the order they were asked for; writeouts of
 * different handles run at the same time.
 *
 * Failure: a writeout that fails (an I/O error, or the store's callback) returns the
 * first error; every page whose request failed stays dirty with its data, so calling
 * writeout again once the cause is gone stores it. With SYNC, a failure keeps every page
 * of the writeout dirty (which requests reached stable storage is unknown). */
#define RP_WRITEOUT_STORE      1
#define RP_WRITEOUT_MARKSTORED 2
#define RP_WRITEOUT_SYNC       4
#define RP_WRITEOUT_ORDERED    8 /* rp_writeoutv: each handle durable before the next */
#define RP_WRITEOUT_ATOMIC     16 /* all of the writeout, or none of it, after a crash */

/* Called once when an asynchronous writeout ends: result is 0 or a negative errno. */
typedef void (*rp_done_fn)(void *arg, int result);

/* Writes out the handle's dirty pages (flags above) and waits. 0 or a negative errno:
 * -EINVAL for bad flags, -EBADF when STORE is asked of a store opened O_RDONLY,
 * -EOPNOTSUPP when a custom store has no store callback, -EDEADLK when called on a
 * fault-service thread (from a done callback or a store callback), or the I/O error.
 * The calling thread runs the writeout itself (issues the writes, the redo log and the
 * fdatasync, and waits for them) when the store is a file or device and no other
 * writeout of the handle is running or waiting; otherwise a fault-service thread runs it
 * and the caller waits (rp_stats: writeouts_by_caller). */
RP_API int rp_writeout(rp_fileh *fh, int flags);
/* Starts a writeout and returns at once (0, or an error in the arguments as above; then
 * done is not called). done(arg, result) is called exactly once, on one of the engine's
 * fault-service threads, after the pages' states are final: it must return soon and
 * must not touch the engine's mappings (the thread serving the fault could be itself).
 * Functions that wait for the engine return -EDEADLK there (rp_writeout, rp_pin,
 * rp_pinv, rp_discard, rp_invalidate, rp_fileh_close), and rp_engine_close must not be
 * called there. It may call rp_writeout_async (queued after this one), rp_stats,
 * rp_fileh_dirty, or hand the result to the application's own threads. */
RP_API int rp_writeout_async(rp_fileh *fh, int flags, rp_done_fn done, void *arg);
/* A writeout of n handles of one engine as one (flags as rp_writeout's): every handle's
 * dirty pages are written, then, with SYNC, each store among them is synced once
 * (one fdatasync for two handles of one file). With RP_WRITEOUT_ORDERED (needs SYNC),
 * the handles are written in the order given, each durable before the next one's first
 * write starts (a journal before the file it protects); a failure stops there, and the
 * later handles are not written. Pages become clean (MARKSTORED) as in rp_writeout, only
 * when their writes succeeded; with SYNC a failed sync keeps every page of the handles
 * synced together (all of them, or the one ORDERED handle) dirty. Returns 0 or the
 * first error; -EINVAL also for a handle given twice or of another engine. */
RP_API int rp_writeoutv(rp_fileh *const *fhs, size_t n, int flags);
/* rp_writeoutv, asynchronous as rp_writeout_async: done(arg, result) once, at the end. */
RP_API int rp_writeoutv_async(rp_fileh *const *fhs, size_t n, int flags, rp_done_fn done,
                              void *arg);
/* Drops every dirty page's modifications: the next touch loads the page from the store
 * again. The handle's size goes back to the store's (rp_fileh_resize), and the pages its
 * changes of size touched are read again too. Waits for the handle's writeouts in
 * flight. -EBUSY (nothing done) when a dirty page (or one to be read again) is pinned. */
RP_API int rp_discard(rp_fileh *fh);
/* The handle's dirty pages, counted now (*pages). 0 or -EINVAL. */
RP_API int rp_fileh_dirty(rp_fileh *fh, uint64_t *pages);

/* ------------------------------------------------------------------ mappings
 *
 * rp_map maps [off, off + len) of a handle (off page-aligned) at an address the kernel
 * chooses. prot is PROT_READ or PROT_READ | PROT_WRITE. The range may pass the handle's
 * end, to leave room to grow: a touch at or past the end raises SIGBUS (si_addr the
 * address), and once rp_fileh_resize grows the handle the same addresses serve the new
 * pages. The memory reads like any other; the first touch of a page is served by the
 * engine (the bytes of the last page past the handle's size read as zeros).
 * Touching a page whose load failed raises SIGBUS with si_addr set to the address
 * touched; the engine goes on serving other pages. The mapping is not inherited by
 * child processes (MADV_DONTFORK): a child that touches it gets SIGSEGV, never stale data.
 * The mapping is the engine's: change it only through these functions (rp_advise, rp_pin,
 * rp_unmap, ...), never with mprotect, munmap, mremap or madvise, which the engine would
 * not know of (its own threads read pages they put in place: a page the application made
 * inaccessible would crash the process there). */
RP_API int rp_map(rp_fileh *fh, uint64_t off, size_t len, int prot, rp_mapping **out);
RP_API void *rp_mapping_addr(const rp_mapping *m);
RP_API size_t rp_mapping_len(const rp_mapping *m);
/* Unmaps. Pins taken through the mapping are dropped; the pages stay in the handle, dirty
 * ones with every write made through the mapping. A thread that still touches the mapping
 * while it goes gets SIGSEGV (the mapping becomes read-only, then inaccessible, first):
 * no write is silently lost. */
RP_API int rp_unmap(rp_mapping *m);

enum {
	RP_ADVICE_NORMAL = 0,     /* readahead as the access pattern suggests (the default) */
	RP_ADVICE_RANDOM = 1,     /* no readahead: a fault reads its own page only */
	RP_ADVICE_SEQUENTIAL = 2, /* readahead_max-sized windows from the first miss */
	RP_ADVICE_WILLNEED = 3,   /* start loading the range now; return at once */
	RP_ADVICE_DONTNEED = 4,   /* drop the range's clean pages from the pool now */
};
/* Gives advice about [off, off + len) of the mapping (offsets relative to the mapping).
 * NORMAL, RANDOM and SEQUENTIAL set how faults in the range read ahead (docs/design.md,
 * "Readahead"), until advice over the same pages changes it; they last as long as the
 * mapping. WILLNEED starts the loads of the absent pages asynchronously. DONTNEED drops
 * the range's clean, unpinned pages from the pool (writes made through wp_async
 * mappings are collected first, so a written page is dirty and stays); the next touch
 * reads the store again. Returns 0, or -EINVAL naming the bad argument, -ENOMEM. */
RP_API int rp_advise(rp_mapping *m, size_t off, size_t len, int advice);

/* Makes [off, off + len) of the mapping resident and mapped, without touching it: absent
 * pages are loaded at the engine's full queue depth, contiguous ones in one request.
 * Returns 0, or -EIO when a page of the range failed to load (then nothing is pinned),
 * -EINVAL for a range past the handle's end. Pinned pages stay resident until rp_unpin. */
RP_API int rp_pin(rp_mapping *m, size_t off, size_t len);
/* Releases pins taken by rp_pin over exactly the same pages; -EINVAL when a page of the
 * range is not pinned (nothing is released then). */
RP_API int rp_unpin(rp_mapping *m, size_t off, size_t len);

/* rp_pin over several ranges at once: every load is started before any is waited for,
 * so n random pages keep the queue full. All or nothing, like rp_pin. */
RP_API int rp_pinv(rp_mapping *m, const rp_range *ranges, size_t n);

#ifdef __cplusplus
}
#endif

#endif
