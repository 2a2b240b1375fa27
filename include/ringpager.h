/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ringpager.h - the public API of ringpager, the only header a user includes.
 *
 * ringpager maps regions of files and block devices into memory and serves their page
 * faults in userspace: pages are loaded with O_DIRECT reads into ringpager's own RAM pool,
 * sequential runs are read ahead in batches, and modified pages are written back only
 * when the application asks (see the README).
 *
 * This header grows with the library: it declares only what is implemented. Dirty
 * tracking and writeout, reclaim and readahead arrive with their issues.
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

#include <stddef.h>
#include <stdint.h>

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
 * Keys (README, "Configuration", has the full table):
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
 * Values are refused (-EINVAL, rp_errmsg names the key and the value) when malformed
 * ("12X") or out of range; unknown keys are refused with their name. */
typedef struct rp_config {
	uint64_t ram_size;
	size_t page_size; /* 0: auto */
	int hugepages;    /* 0 auto, 1 require, 2 off */
	int io_backend;   /* 0 auto, 1 io_uring, 2 libaio, 3 psync */
	unsigned queue_depth;
	int sqpoll;
	unsigned fault_threads; /* 0: auto */
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

/* Opens an engine with cfg (NULL: the defaults). Probes the kernel (userfaultfd features,
 * I/O backends, huge pages) and falls back where it can; rp_engine_describe says what was
 * chosen. -errno with rp_errmsg on failure (for instance -EPERM when userfaultfd is not
 * allowed: see the README, "Requirements"). */
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

struct rp_stats {
	uint64_t faults;         /* userfaultfd faults served */
	uint64_t minor_faults;   /* ... of which found the page resident (no I/O) */
	uint64_t pages_loaded;   /* pages read from stores */
	uint64_t bytes_read;     /* bytes read from stores */
	uint64_t loads;          /* load requests (a request may cover several pages) */
	uint64_t load_errors;    /* load requests that failed (their pages are poisoned) */
	uint64_t resident_pages; /* pages held in the pool now */
	uint64_t pool_pages;     /* the pool's capacity in pages */
	uint64_t metadata_bytes; /* engine metadata (pagemaps, descriptors) now */
};

/* Copies the engine's counters into *out. Returns 0. */
RP_API int rp_stats(rp_engine *eng, struct rp_stats *out);

/* ------------------------------------------------------------------ stores */

#define RP_LOAD_ASYNC 1 /* returned by rp_store_ops.load: rp_load_done() follows */

typedef struct rp_load_token rp_load_token;

/* A custom store (computed data, a remote object, a test double). */
typedef struct rp_store_ops {
	/* Fill buf with the store's bytes [off, off + len); off and len are multiples of the
	 * page size, and off + len may pass the store's size (fill that tail with zeros).
	 * Return 0 when buf is filled, a negative errno when the load failed (the pages are
	 * poisoned), or RP_LOAD_ASYNC after arranging for rp_load_done(tok, err) to be called
	 * later, from any thread, exactly once. A synchronous load runs on a fault-service
	 * thread and holds it: keep it short, or go asynchronous. buf stays valid until the
	 * load is done. Must not touch any mapping of the engine. */
	int (*load)(void *ctx, uint64_t off, void *buf, size_t len, rp_load_token *tok);
	/* Called once by rp_store_close (may be NULL). */
	void (*close)(void *ctx);
} rp_store_ops;

/* Completes an asynchronous load: err is 0 or a negative errno. */
RP_API void rp_load_done(rp_load_token *tok, int err);

/* Opens a file or a block device as a store, O_DIRECT (buffered with a warning in
 * rp_engine_describe where the filesystem refuses O_DIRECT). flags: O_RDONLY or O_RDWR.
 * The store's size is the file's size at open. */
RP_API int rp_store_open(rp_engine *eng, const char *path, int flags, rp_store **out);
/* Creates a store of `size` bytes served by ops/ctx. */
RP_API int rp_store_create(rp_engine *eng, const rp_store_ops *ops, void *ctx, uint64_t size,
                           rp_store **out);
/* Closes a store: -EBUSY (nothing done) while it has open file handles. */
RP_API int rp_store_close(rp_store *st);
/* The store's size in bytes. */
RP_API uint64_t rp_store_size(const rp_store *st);

/* ------------------------------------------------------------------ file handles
 *
 * A file handle is one view of a store with its own cache (a sparse memfd as large as
 * the store: RAM offset == store offset). Every mapping of a handle shares its pages. */
RP_API int rp_fileh_open(rp_store *st, rp_fileh **out);
/* Closes the handle and releases its pages: -EBUSY (nothing done) while mappings of it
 * live. Waits for loads of it that are in flight. */
RP_API int rp_fileh_close(rp_fileh *fh);
/* Forgets the resident pages of [off, off + len) (the store was changed from outside):
 * the next touch loads them again. A load of the range in flight is discarded when it
 * completes; its stale data never becomes visible. Poisoned pages are cleared. -EBUSY
 * (nothing done) when a page of the range is pinned. */
RP_API int rp_invalidate(rp_fileh *fh, uint64_t off, uint64_t len);

/* ------------------------------------------------------------------ mappings
 *
 * rp_map maps [off, off + len) of a handle (page-aligned; the range must lie inside the
 * store, rounded up to a whole page) at an address the kernel chooses. prot is PROT_READ
 * or PROT_READ | PROT_WRITE. The memory reads like any other; the first touch of a page
 * is served by the engine (a page past the end of the store reads as zeros).
 * Touching a page whose load failed raises SIGBUS with si_addr set to the address
 * touched; the engine goes on serving other pages. The mapping is not inherited by
 * child processes (MADV_DONTFORK): a child that touches it gets SIGSEGV, never stale data. */
RP_API int rp_map(rp_fileh *fh, uint64_t off, size_t len, int prot, rp_mapping **out);
RP_API void *rp_mapping_addr(const rp_mapping *m);
RP_API size_t rp_mapping_len(const rp_mapping *m);
/* Unmaps. Pins taken through the mapping are dropped; the pages stay in the handle. */
RP_API int rp_unmap(rp_mapping *m);

enum {
	RP_ADVICE_NORMAL = 0,
	RP_ADVICE_WILLNEED = 3, /* start loading the range now; return at once */
};
/* Gives advice about [off, off + len) of the mapping (offsets relative to the mapping).
 * WILLNEED starts the loads of the absent pages asynchronously. */
RP_API int rp_advise(rp_mapping *m, size_t off, size_t len, int advice);

/* Makes [off, off + len) of the mapping resident and mapped, without touching it: absent
 * pages are loaded at the engine's full queue depth, contiguous ones in one request.
 * Returns 0, or -EIO when a page of the range failed to load (then nothing is pinned).
 * Pinned pages stay resident until rp_unpin. */
RP_API int rp_pin(rp_mapping *m, size_t off, size_t len);
/* Releases pins taken by rp_pin over exactly the same pages; -EINVAL when a page of the
 * range is not pinned (nothing is released then). */
RP_API int rp_unpin(rp_mapping *m, size_t off, size_t len);

typedef struct rp_range {
	size_t off, len; /* relative to the mapping, page-aligned */
} rp_range;
/* rp_pin over several ranges at once: every load is started before any is waited for,
 * so n random pages keep the queue full. All or nothing, like rp_pin. */
RP_API int rp_pinv(rp_mapping *m, const rp_range *ranges, size_t n);

#ifdef __cplusplus
}
#endif

#endif
