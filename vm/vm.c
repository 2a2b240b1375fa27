/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm/vm.c - one VM instance: the pool, the userfaultfd, the service threads, and closing
 * whatever the application left open.
 */
#include "vm/vm.h"
#include "vm/fault.h"
#include "vm/fileh.h"
#include "vm/reclaim.h"
#include "vm/service.h"
#include "vm/sigbus.h"
#include "vm/uffd.h"
#include "compat/kernel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/mman.h>

/* A pidfd of this process when process_madvise(MADV_DONTNEED) works on it (Linux 6.13;
 * vm_alias_zap batches with it), tried on a page of its own; else -1. */
static int pidfd_self(void)
{
	int fd = (int)syscall(__NR_pidfd_open, getpid(), 0);
	bool works = false;

	if (fd < 0)
		return -1;
	char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (page != MAP_FAILED) {
		struct iovec iov = {.iov_base = page, .iov_len = 4096};

		page[0] = 1;
		works = syscall(__NR_process_madvise, fd, &iov, (size_t)1, MADV_DONTNEED, 0u) == 4096 &&
		        page[0] == 0; /* the page was dropped: it reads zeros again */
		munmap(page, 4096);
	}
	if (works)
		return fd;
	close(fd);
	return -1;
}

/* Releases what vm_open takes before it starts threads (the pool, the userfaultfd and the
 * descriptors beside it, the locks): the end of vm_close, and of a vm_open that fails. */
static void vm_release(struct vm *vm)
{
	if (vm->uffd >= 0)
		close(vm->uffd);
	if (vm->poison_fd >= 0)
		close(vm->poison_fd);
	if (vm->pagemap_fd >= 0)
		close(vm->pagemap_fd);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	if (vm->pool)
		(void)ram_pool_close(vm->pool);
	free(vm->by_addr);
	pthread_rwlock_destroy(&vm->maps_lock);
	pthread_mutex_destroy(&vm->objs_lock);
	pthread_mutex_destroy(&vm->jobs_lock);
	pthread_cond_destroy(&vm->jobs_cv);
	free(vm);
}

/* What the service threads do with the faults they read. */
static const struct vm_fault_ops fault_ops = {vm_fault, vm_wp_fault};

int vm_open(struct vm **out, const struct vm_params *p)
{
	char msg[RAM_MSG_LEN], why[512];
	struct vm *vm = calloc(1, sizeof(*vm));
	int err;

	*out = NULL;
	if (!vm)
		return vm_errf(-ENOMEM, "out of memory");
	vm->uffd = -1;
	vm->poison_fd = -1;
	vm->pagemap_fd = -1;
	vm->pidfd = -1;
	pthread_rwlock_init(&vm->maps_lock, NULL);
	pthread_mutex_init(&vm->objs_lock, NULL);
	pthread_mutex_init(&vm->jobs_lock, NULL);
	pthread_cond_init(&vm->jobs_cv, NULL);

	err = ram_pool_open(&p->pool, &vm->pool, msg, sizeof(msg));
	if (err) {
		vm_release(vm);
		return vm_errf(err, "%s", msg);
	}
	vm->psz = vm->pool->page_size;
	vm->fault_self = p->fault_self;
	vm->no_copy = (p->flags & VM_FORCE_PWRITE) != 0;
	vm->no_bounce = (p->flags & VM_NO_BOUNCE) != 0;
	vm->ra_copy = p->readahead_copy && vm->psz == RAM_PAGE_4K;
	vm->no_thread_cpu = (p->flags & VM_NO_THREAD_CPU) != 0;
	err = vm_uffd_open(vm, p->flags, p->dirty, why, sizeof(why));
	if (err) {
		vm_release(vm);
		return vm_errf(err, "%s", why);
	}
	vm->pidfd = p->flags & VM_FORCE_MADVISE ? -1 : pidfd_self();
	/* A window larger than a quarter of the pool would evict the stream's own pages. */
	vm->ra_max = p->readahead_max / vm->psz;
	if (vm->ra_max > vm->pool->capacity / 4)
		vm->ra_max = vm->pool->capacity / 4;
	vm->ra_chunk = VM_RA_CHUNK_BYTES / vm->psz ? VM_RA_CHUNK_BYTES / vm->psz : 1;
	vm->scan_keep = p->scan_keep ? p->scan_keep / vm->psz
	                             : vm->pool->capacity * p->scan_keep_pct / 100;
	if ((p->scan_keep || p->scan_keep_pct) && !vm->scan_keep)
		vm->scan_keep = 1; /* asked for less than a page: a page */
	vm->spin_ns = p->fault_spin_ns;
	vm_spin_init(&vm->spin, vm->spin_ns ? (enum vm_spin_mode)p->fault_spin : VM_SPIN_NEVER);
	vm_spin_init(&vm->wo_spin, vm->spin_ns ? (enum vm_spin_mode)p->fault_spin : VM_SPIN_NEVER);
	vm->log_max = p->log_max;
	snprintf(vm->log_dir, sizeof(vm->log_dir), "%s", p->log_dir);
	vm->fault_ops = &fault_ops;
	err = vm_service_start(vm, p);
	struct vm_reclaim_params rp = p->reclaim;

	rp.flags = p->flags;
	if (!err && (err = vm_reclaim_start(vm, &rp)) < 0)
		vm_service_stop(vm);
	if (!err && vm->fault_self && (err = vm_sigbus_add(vm)) < 0) {
		vm_reclaim_stop(vm);
		vm_reclaim_fini(vm);
		vm_service_stop(vm);
	}
	if (err) {
		vm_release(vm);
		return err;
	}
	char ra[160] = "off", keep[64] = "all it read";

	if (vm->scan_keep)
		snprintf(keep, sizeof(keep), "up to %" PRIu64 " pages behind it", vm->scan_keep);
	if (vm->ra_max > 1)
		snprintf(ra, sizeof(ra), "windows up to %" PRIu64 " pages%s; a stream keeps %s",
		         vm->ra_max, vm->ra_copy ? ", a stream's copied into place" : "", keep);
	snprintf(vm->describe, sizeof(vm->describe),
	         "pool: %s%s%s\nio: %s\nfaults: %s; %u service thread%s%s; fault_spin %s, "
	         "fault_spin_us %" PRIu64 "\n"
	         "reclaim: CLOCK, background from %u%% (%" PRIu64 " pages) down to %u%% (%" PRIu64
	         " pages); dirty pages: %s, limit %" PRIu64 " pages; a load waits up to %u ms "
	         "for memory\nreadahead: %s (readahead_max %" PRIu64 " bytes%s)",
	         vm->pool->describe, vm->pool->warning[0] ? "; warning: " : "", vm->pool->warning,
	         vm_service_describe(vm), why, vm->nsvc, vm->nsvc == 1 ? "" : "s",
	         vm->bound ? ", one bound to each CPU" : "", vm_spin_name(vm->spin.mode),
	         vm->spin_ns / 1000, p->reclaim.high, vm->rc.high,
	         p->reclaim.low, vm->rc.low, vm_policy_name(p->reclaim.policy),
	         vm->rc.dirty_limit, p->reclaim.wait_ms,
	         ra, p->readahead_max,
	         vm->ra_max < p->readahead_max / vm->psz ? ", capped at a quarter of the pool" : "");
	*out = vm;
	return 0;
}

void vm_close(struct vm *vm)
{
	if (vm->fault_self)
		vm_sigbus_remove(vm);
	vm_reclaim_stop(vm);
	/* What the application left open goes, innermost first. */
	pthread_rwlock_wrlock(&vm->maps_lock);
	while (vm->nby_addr) {
		struct rp_mapping *m = vm->by_addr[vm->nby_addr - 1];

		pthread_rwlock_unlock(&vm->maps_lock);
		vm_unmap(m);
		pthread_rwlock_wrlock(&vm->maps_lock);
	}
	pthread_rwlock_unlock(&vm->maps_lock);
	while (vm->filehs)
		(void)vm_fileh_close(vm->filehs);
	while (vm->stores)
		vm_store_free(vm->stores);
	vm_store_close_kept(vm);
	vm_service_stop(vm);
	vm_reclaim_fini(vm);
	vm_release(vm);
}

const char *vm_describe(const struct vm *vm)
{
	return vm->describe;
}

size_t vm_page_size(const struct vm *vm)
{
	return vm->psz;
}

void vm_stats(struct vm *vm, struct rp_stats *out)
{
	const struct vm_counters *c = &vm->ctr;

	memset(out, 0, sizeof(*out));
	out->faults = atomic_load(&c->faults);
	out->minor_faults = atomic_load(&c->minor_faults);
	out->pages_loaded = atomic_load(&c->pages_loaded);
	out->bytes_read = atomic_load(&c->bytes_read);
	out->loads = atomic_load(&c->loads);
	out->load_errors = atomic_load(&c->load_errors);
	out->resident_pages = ram_pool_charged(vm->pool);
	out->pool_pages = vm->pool->capacity;
	out->metadata_bytes = ram_meta_bytes(vm->pool);
	out->dirty_pages = atomic_load(&c->dirty_pages);
	out->wp_faults = atomic_load(&c->wp_faults);
	out->writeouts = atomic_load(&c->writeouts);
	out->writeout_errors = atomic_load(&c->writeout_errors);
	out->write_requests = atomic_load(&c->write_requests);
	out->pages_written = atomic_load(&c->pages_written);
	out->bytes_written = atomic_load(&c->bytes_written);
	out->dirty_bytes = out->dirty_pages * vm->psz;
	out->pages_evicted = atomic_load(&c->evicted);
	out->reclaim_passes = atomic_load(&c->reclaim_passes);
	out->reference_hits = atomic_load(&c->ref_hits);
	out->hook_calls = atomic_load(&c->hook_calls);
	out->memory_waits = atomic_load(&c->mem_waits);
	out->memory_failures = atomic_load(&c->mem_failures);
	out->writebacks = atomic_load(&c->writebacks);
	out->readahead_pages = atomic_load(&c->ra_pages);
	out->readahead_used = atomic_load(&c->ra_used);
	out->readahead_wasted = atomic_load(&c->ra_wasted);
	out->readahead_windows = atomic_load(&c->ra_windows);
	out->readahead_window_avg =
	    out->readahead_windows ? out->readahead_pages / out->readahead_windows : 0;
	out->readahead_copied = atomic_load(&c->ra_copied);
	out->readahead_dropped = atomic_load(&c->ra_dropped);
	out->fault_reads_slept = atomic_load(&vm->spin.count[0]);
	out->fault_reads_polled = atomic_load(&vm->spin.count[1]);
	out->writeouts_by_caller = atomic_load(&c->writeouts_here);
}
