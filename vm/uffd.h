/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/uffd.h - the kernel primitives vm/ is built on: the userfaultfd and its ioctls
 * (vm/uffd.c), PAGEMAP_SCAN (vm/pagescan.c), and unmapping the alias (vm/alias.c).
 * Each call does what it says to a mapping or a range; none decides anything.
 */
#ifndef RINGPAGER_VM_UFFD_H
#define RINGPAGER_VM_UFFD_H

#include "vm/objects.h"

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
/* PAGEMAP_SCAN of [start, end), looking only: the pages that may have been written, a
 * superset of the written ones (a page not mapped there may count as written too). It
 * asks for nothing else, which takes the kernel's short way (each page table entry's
 * own bits, not its page's). Returns and sets as vm_pagemap_scan. */
int vm_pagemap_maybe_written(int pagemap_fd, uint64_t start, uint64_t end,
                             struct page_region *vec, size_t n, uint64_t *walk_end);
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
/* Puts pages [first, first + npages), the bytes at src, into the RAM handle and maps
 * them in m at once (UFFDIO_COPY: the kernel allocates the memfd pages, copies, maps;
 * write-protected in a tracked mapping unless writable), and wakes the threads faulting
 * on them there if wake (so the pages' states must say they are in before). m must map
 * all of them (-ERANGE otherwise, nothing done). 0, or -errno (-EEXIST: a page is in the
 * memfd or mapped already; -ENOENT: the mapping is gone), with the pages before the one
 * that failed put in and mapped. */
int vm_uffd_copy(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages,
                 const void *src, bool writable, bool wake);
/* Wakes the threads faulting on [start, start + len) of any mapping, without looking at a
 * mapping: callable after the handle's lock is dropped, when the mapping may be gone (a
 * thread woken where nothing is mapped faults again). */
void vm_uffd_wake_addr(struct vm *vm, uint64_t start, uint64_t len);
/* Makes [first, first+npages) of mapping m raise SIGBUS on access, waking waiters. */
void vm_uffd_poison(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages);
/* Undoes vm_uffd_poison over a range (mapping's own pages, not the handle's states). */
void vm_uffd_unpoison(struct vm *vm, struct rp_mapping *m, uint64_t first, uint64_t npages);
/* Unmaps [first, first + n) of the handle from its alias, batched with others: the pages
 * stay in the memfd. flush: now, with what is pending. fh->lock held. */
void vm_alias_zap(struct rp_fileh *fh, uint64_t first, uint64_t n, bool flush);

#endif
