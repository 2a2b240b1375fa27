/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/atomic.h - the redo log of RP_WRITEOUT_ATOMIC (vm/atomic.c says how it works).
 * Plain file I/O on descriptors (io/'s rpio_fd_rw): no vm/ object is touched.
 */
#ifndef RINGPAGER_VM_ATOMIC_H
#define RINGPAGER_VM_ATOMIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A run of pages to log: [first, first + n). */
struct vm_log_run {
	uint64_t first, n;
	const char *src; /* its n pages' bytes */
};

/* The log's checksum: h, then the 8-byte words of p (len a multiple of 8, p aligned to
 * 8) added to it; a log's sum starts from VM_LOG_SUM_SEED. */
#define VM_LOG_SUM_SEED 0xcbf29ce484222325ull
uint64_t vm_log_sum(uint64_t h, const void *p, size_t len);
/* The log's path for the store at store_path (descriptor fd): in dir as DEV-INO.rplog,
 * or, dir empty, beside it as store_path-rplog (-EINVAL for a block device then). 0, or
 * -errno. */
int vm_log_path(const char *dir, const char *store_path, int fd, char *out, size_t len);
/* Writes the pages of runs (each run's bytes at its src) and the store's size after
 * (and the cut before, UINT64_MAX: none) to the log, and makes it durable. -EFBIG when it
 * would pass max bytes; -errno otherwise, with msg set. */
int vm_log_write(int logfd, const struct vm_log_run *runs, size_t nruns, size_t psz,
                 uint64_t size, uint64_t cut, uint64_t max, char *msg, size_t msglen);
/* Empties the log (zeroes its head): the writeout it held is in place and durable.
 * durable false: the zero block is on the device, for the device's next flush to make
 * durable, where the log is O_DIRECT (vm/atomic.c says why that suffices in the store's
 * filesystem); durable true, or a log through the page cache: fdatasync too. 0 or
 * -errno. */
int vm_log_clear(int logfd, bool durable);
/* Whether the log holds a complete writeout to apply: 1, 0, or -errno. */
int vm_log_pending(int logfd);
/* At a store's open: a complete log is written in place again (pages, size) and the
 * store synced, then the log emptied: 1; an incomplete one is emptied, an empty one left:
 * 0; or -errno with msg set. */
int vm_log_recover(int logfd, int storefd, char *msg, size_t msglen);

#endif
