/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/alias.c - unmapping finished loads from the alias mapping of a RAM handle, in
 * batches (one process_madvise for many ranges).
 */
#include "vm/uffd.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Why batched: the device wrote each page through the alias, which left it mapped there,
 * and a madvise(MADV_DONTNEED) per load costs a TLB shootdown of every CPU running the
 * process (its service threads included); docs/benchmarks.md, "Design choices", has the
 * figures. process_madvise takes up to VM_ZAP_BATCH ranges in one call; where the kernel refuses
 * it (before 6.13) each range gets its madvise, at flush time. The delay is harmless: the
 * alias's mappings are only a second view of pages the memfd holds (RSS counts them once
 * when flushed), and a page evicted meanwhile leaves the alias with its hole punch. */
void vm_alias_zap(struct rp_fileh *fh, uint64_t first, uint64_t n, bool flush)
{
	struct vm *vm = fh->vm;

	if (n) {
		char *p = fh->ram->alias + first * vm->psz;
		const size_t len = n * vm->psz;
		struct iovec *last = fh->nzap ? &fh->zap[fh->nzap - 1] : NULL;

		if (last && (char *)last->iov_base + last->iov_len == p)
			last->iov_len += len;
		else
			fh->zap[fh->nzap++] = (struct iovec){.iov_base = p, .iov_len = len};
		fh->zap_bytes += len;
	}
	if (!fh->nzap ||
	    (!flush && fh->nzap < VM_ZAP_BATCH && fh->zap_bytes < VM_ZAP_BYTES))
		return;
	if (vm->pidfd < 0 || syscall(__NR_process_madvise, vm->pidfd, fh->zap, (size_t)fh->nzap,
	                             MADV_DONTNEED, 0u) != (long)fh->zap_bytes)
		for (unsigned i = 0; i < fh->nzap; i++)
			(void)madvise(fh->zap[i].iov_base, fh->zap[i].iov_len, MADV_DONTNEED);
	fh->nzap = 0;
	fh->zap_bytes = 0;
}
